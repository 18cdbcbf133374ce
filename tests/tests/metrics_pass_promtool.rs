//! The controller's `/metrics` is valid Prometheus exposition text (`promtool check metrics`)
//! after a full upgrade of the small mesh, when every family has series, and the series say what
//! happened: per-node swarm/HTTP byte counters that cover the image, the seeder's own upload,
//! both histograms observed, the fleet counted on its new version.

use meshlift_tests::*;

/// The value of the series `series` (name with its labels, as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_check() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let size = lab.stored_image(V2).await.expect("v2 stored").size as f64;
    let id = lab.submit(full_upgrade_request("e2e-metrics", &image, 60)).await.expect("accepted");
    let mut log = BatchLog::default();
    finish(&lab, &id, &mut log).await;
    let nodes: Vec<String> = lab.cfg.topology.nodes.iter().map(|n| n.name.clone()).collect();
    let n = nodes.len() as f64;
    // Gauges are refreshed on the controller's tick; give it a few.
    let succeeded = r#"meshlift_node_outcomes_total{outcome="succeeded"}"#;
    let mut text = String::new();
    for _ in 0..20 {
        text = lab.metrics().await.expect("metrics");
        if text.contains("meshlift_node_online{node=\"leaf1\"} 1") && value(&text, succeeded) == Some(2.0 * n)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(text.contains("meshlift_node_online{node=\"leaf1\"} 1"), "{text}");
    assert_eq!(value(&text, succeeded), Some(2.0 * n), "a prepare and a commit per node: {text}");
    assert!(text.contains("# TYPE meshlift_node_outcomes_total counter"), "{text}");

    // Every node got the whole image from the network, over the swarm or HTTP, and says so in
    // its counters; the seeder's upload is its own series, not a node's.
    for node in &nodes {
        let got = value(&text, &format!(r#"meshlift_bt_downloaded_bytes_total{{node="{node}"}}"#))
            .unwrap_or(0.0)
            + value(&text, &format!(r#"meshlift_http_downloaded_bytes_total{{node="{node}"}}"#))
                .unwrap_or(0.0);
        assert!(got >= size, "{node} received {got} bytes of a {size}-byte image");
        let ratio = value(&text, &format!(r#"meshlift_bt_progress_ratio{{node="{node}"}}"#));
        assert_eq!(ratio, Some(1.0), "{node}: progress ratio");
        for series in
            ["meshlift_bt_seeds", "meshlift_bt_connections", "meshlift_bt_download_bytes_per_second"]
        {
            assert!(
                value(&text, &format!(r#"{series}{{node="{node}"}}"#)).is_some(),
                "{node}: {series}\n{text}"
            );
        }
    }
    let seeder = value(&text, "meshlift_seeder_uploaded_bytes_total").expect("seeder series");
    assert!(seeder > 0.0, "the seeder sent the first copies");
    assert!(!text.contains(r#"node="controller""#), "the seeder is not a node: {text}");

    // One prepare batch and the commit batches, each timed; every node's reboot-to-confirm.
    let batches =
        |stage: &str| value(&text, &format!(r#"meshlift_batch_duration_seconds_count{{stage="{stage}"}}"#));
    assert!(batches("prepare").is_some_and(|c| c >= 1.0), "{text}");
    assert!(batches("commit").is_some_and(|c| c >= 1.0), "{text}");
    assert_eq!(value(&text, "meshlift_node_reboot_to_confirm_seconds_count"), Some(n), "{text}");
    let confirm_sum = value(&text, "meshlift_node_reboot_to_confirm_seconds_sum").unwrap_or(0.0);
    assert!(confirm_sum > 0.0 && confirm_sum < 240.0 * n, "reboot-to-confirm total {confirm_sum} s");

    // The fleet on its new version, counted by board, version and state.
    let on_v2: f64 = text
        .lines()
        .filter(|l| l.starts_with("meshlift_nodes{") && l.contains(&format!(r#"version="{V2}""#)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(on_v2, n, "{text}");
    assert!(text.lines().any(|l| l.starts_with("meshlift_build_info{") && l.ends_with(" 1")), "{text}");
    assert_eq!(value(&text, "meshlift_collateral_offline_total"), Some(0.0), "{text}");
    // The stuck-request alert's clock: the request's end is its last move, a moment ago.
    let now_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let moved = value(&text, "meshlift_request_last_progress_timestamp_seconds").unwrap_or(0.0);
    assert!((now_s - 120.0..=now_s + 1.0).contains(&moved), "last progress at {moved}, now {now_s}");

    let meshsim = lab.meshsim_metrics().await.expect("meshsim metrics");
    assert!(meshsim.contains("meshlift_collateral_isolation_seconds_total 0"), "{meshsim}");
    if std::env::var_os("MESHLIFT_SHOW_METRICS").is_some() {
        eprintln!("{text}");
    }
    promtool_check(&text);
    promtool_check(&meshsim);
    lab.stop().await;
}
