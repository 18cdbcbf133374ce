//! v2's post-boot check fails on two nodes: they boot it on trial, fail, fall back to v1 and say
//! why; every other node ends on v2.

use meshlift_protocol::*;
use meshlift_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_nodes_fall_back_and_the_rest_succeed() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.bad_image_nodes = vec!["leaf1".into(), "relay2".into()];
    let (lab, image) = start_with_v2(cfg).await;
    let id = lab.submit(full_upgrade_request("e2e-bad", &image, 60)).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;

    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    for bad in ["leaf1", "relay2"] {
        let o = &commits[bad];
        assert_eq!(o.outcome, OutcomeKind::FellBack, "{bad}: {o:?}");
        assert!(
            o.reason.contains("radio calibration check failed"),
            "{bad}: reason carries the hook output: {}",
            o.reason
        );
    }
    for good in ["pop", "relay", "leaf2"] {
        assert_eq!(commits[good].outcome, OutcomeKind::Succeeded, "{good}: {:?}", commits[good]);
    }
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        let want = if ["leaf1", "relay2"].contains(&row.name.as_str()) { V1 } else { V2 };
        assert_eq!(row.version.as_deref(), Some(want), "{}", row.name);
        let slots = row.slots.as_ref().expect("slots");
        assert_eq!(slots.booted, slots.active, "{} runs its active slot", row.name);
    }
    // The CLI shows the same outcomes as JSON.
    let out = cli(&lab, &["upgrade", "state", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let text = v.to_string();
    assert!(text.contains("FellBack") || text.contains("fell_back"), "{text}");
    // What the MeshliftNodeFellBack alert reads (counters refresh on the controller's tick), and
    // only the three successes have a reboot-to-confirm time.
    let fell_back = r#"meshlift_node_outcomes_total{outcome="fell_back"} 2"#;
    let mut metrics = String::new();
    for _ in 0..20 {
        metrics = lab.metrics().await.expect("metrics");
        if metrics.contains(fell_back) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(metrics.contains(fell_back), "{metrics}");
    assert!(metrics.contains("meshlift_node_reboot_to_confirm_seconds_count 3"), "{metrics}");

    // On the node itself (mesh stopped): the version query shows the unconfirmed v2 on standby;
    // reverting to it is refused, reverting a good node to its confirmed v1 is allowed; the
    // operator can clear the failed-trial record.
    let leaf1 = lab.mesh.config_path("leaf1").expect("config").to_path_buf();
    let pop = lab.mesh.config_path("pop").expect("config").to_path_buf();
    lab.stop().await;
    let minion = |cfg: &std::path::Path, args: &[&str]| {
        std::process::Command::new(bin_dir().join("meshlift-minion"))
            .arg("--config")
            .arg(cfg)
            .args(args)
            .output()
            .expect("runs")
    };
    let v = minion(&leaf1, &["--versions"]);
    let slots: SlotsReport = serde_json::from_slice(&v.stdout).expect("slots JSON");
    assert_eq!(slots.running().version.as_deref(), Some(V1));
    assert_eq!((slots.standby().version.as_deref(), slots.standby().confirmed), (Some(V2), false));
    let refused = minion(&leaf1, &["--revert-to-standby"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("never confirmed"));
    let cleared = minion(&leaf1, &["--clear-failed", "all"]);
    assert!(String::from_utf8_lossy(&cleared.stdout).contains("cleared 1"), "{cleared:?}");
    let reverted = minion(&pop, &["--revert-to-standby"]);
    assert!(reverted.status.success(), "{reverted:?}");
    let v: SlotsReport = serde_json::from_slice(&minion(&pop, &["--versions"]).stdout).expect("slots JSON");
    assert_eq!(v.slot(v.active).version.as_deref(), Some(V1), "pop boots v1 at its next start");
}
