//! DMI RevertToStandbyImage for the fleet: the sample mesh is upgraded to v2 (one leaf's v2 fails
//! its post-boot check and falls back, so its standby holds a v2 that never confirmed there), then
//! `meshlift upgrade network revert` takes every node back to v1 from its confirmed slot, in
//! planner batches that cut no running node off; the leaf is refused with its reason.

use meshlift_protocol::*;
use meshlift_tests::*;

/// Has two disjoint paths to POPs (pop-south.a directly, elm → oak → pop-north). A refused node
/// hanging behind an articulation point (`larch.a`, behind `cedar.a`) would be cut off while that
/// point reverts: the planner counts nodes that are not pending as done (Terragraph's rule, the
/// same for a COMMIT with a node filtered out); see ARCHITECTURE.md.
const BAD: &str = "pine.a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_revert_of_the_sample_mesh_back_to_v1_with_zero_collateral_isolation() {
    let (mut cfg, _dir) = lab_config(sample_topology());
    cfg.bad_image_nodes = vec![BAD.into()];
    let (lab, image) = start_with_v2(cfg).await;
    let id = lab.submit(full_upgrade_request("e2e-up", &image, 90)).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    assert_eq!(commits[BAD].outcome, OutcomeKind::FellBack, "{:?}", commits[BAD]);
    let n = lab.cfg.topology.nodes.len();
    // The leaf's fallback reboot during the upgrade cuts off what hangs behind it (a fallback is
    // not planned); the revert is measured on its own.
    let before = lab.mesh.isolation();

    // The dry run lists the batches and leaves the leaf out, with why.
    let out = cli(&lab, &["upgrade", "network", "revert", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: UpgradeCommitPlan = serde_json::from_slice(&out.stdout).expect("the plan as JSON");
    assert!(plan.commit_batches.len() >= 2, "{:?}", plan.commit_batches);
    assert_eq!(plan.commit_batches.iter().map(Vec::len).sum::<usize>(), n - 1, "{plan:?}");
    assert!(plan.filtered.iter().any(|f| f.node == BAD && f.reason.contains("never confirmed")), "{plan:?}");

    // Without --reason it is refused before anything is sent.
    let out = cli(&lab, &["upgrade", "network", "revert"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = cli(
        &lab,
        &[
            "upgrade",
            "network",
            "revert",
            "--reason",
            "v2 drops links at night",
            "--yes",
            "--json",
            "--request-id",
            "e2e-revert",
            "-t",
            "60",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut log = BatchLog::default();
    let dump = finish(&lab, "e2e-revert", &mut log).await;
    let reverts = outcomes(&dump, "e2e-revert", UpgradeReqType::RevertToStandby);
    assert_eq!(reverts.len(), n, "every node has an outcome: {reverts:?}");
    let bad = &reverts[BAD];
    assert_eq!(bad.outcome, OutcomeKind::SkippedNotReady, "{bad:?}");
    assert_eq!(bad.reason, "standby slot b holds 2.0.0, never confirmed on this node: revert refused");
    for (node, o) in reverts.iter().filter(|(k, _)| k.as_str() != BAD) {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
    }
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        assert_eq!(row.version.as_deref(), Some(V1), "{}", row.name);
        let slots = row.slots.as_ref().expect("slots");
        assert_eq!((slots.booted, slots.active), (SlotId::A, SlotId::A), "{}", row.name);
        assert!(slots.running().confirmed, "{}: back on a confirmed slot", row.name);
        if row.name != BAD {
            assert_eq!(lab.mesh.reboots(&row.name), 2, "{}: the upgrade's reboot and the revert's", row.name);
        }
    }
    assert!(log.batches.len() >= 2, "staged revert: {:?}", log.batches);
    let after = lab.mesh.isolation();
    let during: Vec<(&String, f64)> = after
        .per_node
        .iter()
        .map(|(k, v)| (k, v - before.per_node.get(k).copied().unwrap_or(0.0)))
        // Float sums re-added in another order differ by ~1e-16: that is not a cut.
        .filter(|(_, d)| *d > 1e-6)
        .collect();
    assert!(during.is_empty(), "collateral isolation during the revert: {during:?}");
    // Journaled with who and why.
    let j = journal(&lab);
    assert!(
        j.iter().any(|e| e.message.contains("RevertToStandby request queued")
            && e.operator.as_ref().is_some_and(|o| o.reason.as_deref() == Some("v2 drops links at night"))),
        "journal: {j:?}"
    );
    lab.stop().await;
}
