//! Collateral isolation counts the seconds running nodes spend cut off, never the rebooting node.

mod common;

use common::*;
use meshlift_meshsim::NodeState;
use std::time::Duration;

const BOOT_DELAY: Duration = Duration::from_millis(500);

#[tokio::test]
async fn isolation_counts_the_nodes_behind_a_rebooting_ap_not_the_ap() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    assert_eq!(sim.isolation().total_s, 0.0);
    assert!(sim.isolated_nodes().is_empty());

    command(&sim, "ap", "reboot");
    wait_until("ap down", Duration::from_secs(5), || sim.node_state("ap") == Some(NodeState::Down)).await;
    let during: Vec<String> = sim.isolated_nodes().into_iter().collect();
    assert_eq!(during, ["ap2", "leaf"], "ap2 (same site, wired to ap) and leaf are cut off");
    wait_until("ap back", Duration::from_secs(5), || sim.has_path("leaf") == Some(true)).await;

    let report = sim.isolation();
    assert_eq!(report.isolated_nodes(), ["ap2", "leaf"]);
    for node in ["ap2", "leaf"] {
        let s = report.per_node[node];
        // At least the boot delay; the upper bound only guards against counting forever.
        assert!(s >= BOOT_DELAY.as_secs_f64() - 0.01 && s < 5.0, "{node}: {s}");
    }
    assert!((report.total_s - report.per_node.values().sum::<f64>()).abs() < 1e-9);
    // Settled: nothing accumulates any more.
    let settled = sim.isolation().total_s;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.isolation().total_s, settled);

    let metrics = report.to_prometheus();
    assert!(metrics.contains("meshlift_node_collateral_isolation_seconds_total{node=\"leaf\"}"), "{metrics}");
    assert!(!metrics.contains("node=\"ap\""), "{metrics}");
    let summary = sim.summary();
    assert_eq!(summary.nodes["ap"].reboots, 1);
    assert_eq!(summary.isolation.isolated_nodes(), ["ap2", "leaf"]);
    sim.stop().await;
}

#[tokio::test]
async fn a_redundant_path_avoids_isolation() {
    let (sim, _work) = start_chain(BOOT_DELAY).await;
    sim.restore_link("link-pop-leaf").unwrap();
    sim.power_off("ap").unwrap();
    wait_until("ap down", Duration::from_secs(5), || sim.node_state("ap") == Some(NodeState::Down)).await;
    assert!(sim.isolated_nodes().is_empty(), "leaf and ap2 reach the POP over the spare link");
    assert_eq!(sim.isolation().total_s, 0.0);
    sim.stop().await;
}
