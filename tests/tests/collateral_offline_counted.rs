//! A node that goes offline during a COMMIT stage while it is not rebooting in the batch is what
//! the controller can see of collateral isolation: `meshlift_collateral_offline_total` counts it
//! (the MeshliftCollateralIsolation alert reads it); the node the batch reboots is not counted.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_outside_the_commit_batch_is_counted() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.node_alive_timeout_s = 3;
    let (lab, image) = start_with_v2(cfg).await;
    // Only the POP, with its reboot 15 s after the COMMIT: the batch stays open meanwhile.
    let mut req = full_upgrade_request("e2e-collateral", &image, 90);
    req.ug_type = UpgradeGroupType::Nodes;
    req.nodes = vec!["pop".into()];
    req.ur_req.schedule_to_commit_s = 15;
    let id = lab.submit(req).await.expect("accepted");
    wait_state(&lab, Duration::from_secs(60), "the commit stage never started", |d| {
        d.cur_req.as_ref().is_some_and(|r| {
            r.request.ur_req.upgrade_req_id == id && r.stage == UpgradeReqType::CommitUpgrade
        })
    })
    .await;
    let count = |text: &str| metric_sum(text, "meshlift_collateral_offline_total", None);
    assert_eq!(count(&lab.metrics().await.expect("metrics")), 0.0);

    lab.mesh.power_off("leaf2").expect("power off");
    let mut text = String::new();
    for _ in 0..40 {
        text = lab.metrics().await.expect("metrics");
        if count(&text) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(count(&text), 1.0, "leaf2 went offline outside the batch: {text}");
    assert!(text.contains(r#"meshlift_node_online{node="leaf2"} 0"#), "{text}");
    assert!(text.contains(r#"meshlift_node_online{node="pop"} 1"#), "pop has not rebooted yet: {text}");
    lab.stop().await;
}
