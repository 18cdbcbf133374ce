//! The controller is killed (SIGKILL) in the middle of a commit batch and started again on the
//! same state: the request completes and no node is committed twice.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_mid_commit_resumes_without_double_commits() {
    let (cfg, _dir) = lab_config(small_topology());
    let (mut lab, image) = start_with_v2(cfg).await;
    let mut req = full_upgrade_request("e2e-crash", &image, 60);
    req.limit = 1; // one node per batch: several commit batches, so one is surely in flight
    let id = lab.submit(req).await.expect("accepted");

    // Wait until a commit batch is in flight with a node rebooting or on trial.
    wait_state(&lab, Duration::from_secs(120), "no commit batch started", |d| {
        d.cur_req.as_ref().is_some_and(|r| r.stage == UpgradeReqType::CommitUpgrade)
            && d.cur_batch_index >= 1
            && !d.cur_batch.is_empty()
    })
    .await;
    lab.kill_controller().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.start_controller().await.expect("controller restarts");

    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    assert_eq!(commits.len(), lab.cfg.topology.nodes.len(), "{commits:?}");
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
        assert_eq!(lab.mesh.reboots(node), 1, "{node} was committed exactly once");
    }
    assert_eq!(lab.controller_starts(), 2);
    lab.stop().await;
}
