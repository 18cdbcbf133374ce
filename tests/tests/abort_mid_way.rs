//! Aborting a request during its commit stage: the batch in flight cannot be called back (its
//! nodes are rebooting), but no further batch starts, and every node not yet reached ends
//! `aborted` without ever rebooting.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_way_starts_no_further_batch() {
    let (cfg, _dir) = lab_config(sample_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let id = lab.submit(full_upgrade_request("e2e-abort", &image, 60)).await.expect("accepted");
    let mut log = BatchLog::default();
    wait_state(&lab, Duration::from_secs(120), "commit never started", |d| {
        log.observe(d);
        !log.batches.is_empty()
    })
    .await;
    let out = cli(&lab, &["upgrade", "abort", "-r", &id, "--reason", "e2e: stop the rollout"]);
    assert!(out.status.success(), "abort: {}", String::from_utf8_lossy(&out.stderr));

    let dump = finish(&lab, &id, &mut log).await;
    // Give a wrongly started batch time to show itself.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let d = lab.state().await.expect("state");
    log.observe(&d);
    assert_eq!(log.batches.len(), 1, "only the batch in flight ever ran: {:?}", log.batches);
    let in_flight = log.batches.values().next().cloned().unwrap_or_default();
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    let mut never_reached = 0;
    for node in lab.cfg.topology.nodes.iter().map(|n| n.name.clone()) {
        if in_flight.contains(&node) {
            continue;
        }
        never_reached += 1;
        let o = commits.get(&node).unwrap_or_else(|| panic!("{node} has a commit outcome: {commits:?}"));
        assert_eq!(o.outcome, OutcomeKind::Aborted, "{node}: {o:?}");
        assert!(
            o.reason.contains("e2e: stop the rollout"),
            "{node}: the operator's reason is kept: {}",
            o.reason
        );
        assert_eq!(lab.mesh.reboots(&node), 0, "{node} was never committed");
    }
    assert!(never_reached > 0, "the abort came before the last batch");
    lab.stop().await;
}
