//! The controller's `/metrics` is valid Prometheus exposition text (`promtool check metrics`),
//! during an upgrade when every family has series.

use meshlift_protocol::*;
use meshlift_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_check() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let mut prep = full_upgrade_request("e2e-metrics", &image, 60);
    prep.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    let id = lab.submit(prep).await.expect("accepted");
    let mut log = BatchLog::default();
    finish(&lab, &id, &mut log).await;
    // Gauges are refreshed on the controller's tick; give it a few.
    let mut text = String::new();
    for _ in 0..20 {
        text = lab.metrics().await.expect("metrics");
        if text.contains("meshlift_node_online{node=\"leaf1\"} 1")
            && text.contains("meshlift_node_outcomes{outcome=\"succeeded\"} 5")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(text.contains("meshlift_node_online{node=\"leaf1\"} 1"), "{text}");
    assert!(text.contains("meshlift_node_outcomes{outcome=\"succeeded\"} 5"), "{text}");
    assert!(text.contains("meshlift_bt_progress_ppm"), "{text}");
    let meshsim = lab.meshsim_metrics().await.expect("meshsim metrics");
    assert!(meshsim.contains("meshlift_collateral_isolation_seconds_total 0"), "{meshsim}");
    promtool_check(&text);
    promtool_check(&meshsim);
    lab.stop().await;
}
