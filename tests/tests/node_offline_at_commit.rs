//! A node that prepared fine but is powered off when the commit starts ends `skipped_offline`
//! with a reason; the others are upgraded.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offline_at_commit_is_skipped_offline() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, image) = start_with_v2(cfg).await;
    // Prepare first, as its own request.
    let mut prep = full_upgrade_request("e2e-offline-prep", &image, 60);
    prep.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    let pid = lab.submit(prep).await.expect("prepare accepted");
    let mut log = BatchLog::default();
    finish(&lab, &pid, &mut log).await;

    // leaf2 loses power, and stays down past the controller's node_alive_timeout.
    lab.mesh.power_off("leaf2").expect("power off");
    tokio::time::sleep(Duration::from_secs(lab.cfg.node_alive_timeout_s + 2)).await;

    let mut commit = full_upgrade_request("e2e-offline-commit", &image, 60);
    commit.ur_req.ur_type = UpgradeReqType::CommitUpgrade;
    commit.retry_limit = 0;
    let cid = lab.submit(commit).await.expect("commit accepted");
    let dump = finish(&lab, &cid, &mut log).await;
    let commits = outcomes(&dump, &cid, UpgradeReqType::CommitUpgrade);
    assert_eq!(commits["leaf2"].outcome, OutcomeKind::SkippedOffline, "{:?}", commits["leaf2"]);
    assert!(!commits["leaf2"].reason.is_empty());
    for node in ["pop", "relay", "relay2", "leaf1"] {
        assert_eq!(commits[node].outcome, OutcomeKind::Succeeded, "{node}: {:?}", commits[node]);
    }
    assert_eq!(lab.mesh.reboots("leaf2"), 0, "an offline node is never committed");
    lab.stop().await;
}
