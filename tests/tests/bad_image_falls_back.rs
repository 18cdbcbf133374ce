//! v2's post-boot check fails on two nodes: they boot it on trial, fail, fall back to v1 and say
//! why; every other node ends on v2.

use meshlift_protocol::*;
use meshlift_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_nodes_fall_back_and_the_rest_succeed() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.bad_image_nodes = vec!["leaf1".into(), "relay2".into()];
    let lab = start_with_v2(cfg).await;
    let image = v2_name(&lab).await;
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
    lab.stop().await;
}
