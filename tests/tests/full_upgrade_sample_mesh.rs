//! The main job: a full upgrade of the sample mesh over the swarm, every node confirmed on v2,
//! and no running node ever cut off from the controller.

use meshlift_protocol::*;
use meshlift_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_upgrade_of_the_sample_mesh_with_zero_collateral_isolation() {
    let (cfg, _dir) = lab_config(sample_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let id = lab.submit(full_upgrade_request("e2e-full", &image, 90)).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;

    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    let n = lab.cfg.topology.nodes.len();
    assert_eq!(commits.len(), n, "every node has a commit outcome: {commits:?}");
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
    }
    // Every node runs v2 from a confirmed slot, and rebooted exactly once.
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        assert_eq!(row.version.as_deref(), Some(V2), "{}", row.name);
        let slots = row.slots.as_ref().expect("slots reported");
        assert_eq!(slots.booted, slots.active, "{}: running the active slot", row.name);
        assert!(slots.running().confirmed, "{}: confirmed", row.name);
        assert_eq!(lab.mesh.reboots(&row.name), 1, "{} rebooted once", row.name);
    }
    assert!(log.batches.len() >= 2, "staged commit: {:?}", log.batches);
    let iso = lab.mesh.isolation();
    assert_eq!(iso.total_s, 0.0, "collateral isolation: {:?}", iso.per_node);
    lab.stop().await;
}
