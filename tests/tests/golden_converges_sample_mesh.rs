//! The golden-image loop on real processes: the sample mesh gets a golden target from the
//! controller config and converges on it with no operator request — canary, bake, widening
//! waves — with no running node ever cut off from the controller.

use meshlift_meshsim::lab::{Lab, SIM_BOARD};
use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::{Duration, Instant};

async fn golden_show(lab: &Lab) -> GoldenShow {
    match lab.ask(Message::GoldenShowReq(GoldenShowReq {})).await.expect("controller answers") {
        Message::GoldenShow(s) => s,
        other => panic!("expected GoldenShow, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_mesh_converges_on_its_golden_image_with_no_operator_request() {
    let (mut cfg, _dir) = lab_config(sample_topology());
    cfg.golden_toml = Some(format!(
        "[golden]\nenabled = true\ncheck_interval_s = 2\nbake_s = 3\ncanary_count = 2\nretry_limit = 0\n\
         batch_timeout_s = 90\n\n[[golden.targets]]\nboard = \"{SIM_BOARD}\"\nimage = \"{V2}\"\n"
    ));
    // The target names v2 before it is in the store: the loop waits for the image.
    let (lab, _image) = start_with_v2(cfg).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let show = loop {
        let s = golden_show(&lab).await;
        let b = &s.boards[0];
        if b.behind == 0 && !b.waves.is_empty() && b.waves.iter().all(|w| w.finished_at.is_some()) {
            break s;
        }
        assert!(Instant::now() < deadline, "not converged: {s:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let board = &show.boards[0];
    assert_eq!(board.state, "converged");
    let labels: Vec<&str> = board.waves.iter().map(|w| w.label.as_str()).collect();
    assert_eq!(labels[0], "canary", "{labels:?}");
    assert!(labels.len() >= 3, "canary then widening waves: {labels:?}");
    assert_eq!(board.waves[0].nodes.len(), 2, "two canaries");
    // Every node runs v2 from its confirmed active slot, rebooted once.
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        assert_eq!(row.version.as_deref(), Some(V2), "{}", row.name);
        assert!(row.slots.as_ref().expect("slots").running().confirmed, "{}", row.name);
        assert_eq!(lab.mesh.reboots(&row.name), 1, "{} rebooted once", row.name);
    }
    // No running node was ever cut off.
    let iso = lab.mesh.isolation();
    assert_eq!(iso.total_s, 0.0, "collateral isolation: {:?}", iso.per_node);
    // Every upgrade request was the loop's, journaled under its name with the wave as reason.
    let queued: Vec<_> = journal(&lab).into_iter().filter(|e| e.message.contains("request queued")).collect();
    assert_eq!(queued.len(), board.waves.len(), "{queued:?}");
    for e in &queued {
        let op = e.operator.as_ref().expect("who");
        assert_eq!(op.who, "golden-image loop");
        assert!(op.reason.as_deref().is_some_and(|r| r.contains("golden-image loop:")), "{op:?}");
    }
    // The metrics say so too, once their next refresh (every `tick_interval_ms`) has run: the
    // gauges are a periodic copy of the engine's and the loop's state, so a scrape right after
    // the last CONFIRMED may still show the wave running.
    let mut m = lab.metrics().await.expect("metrics");
    for _ in 0..40 {
        if metric_sum(&m, "meshlift_golden_state", Some(("state", "converged"))) == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        m = lab.metrics().await.expect("metrics");
    }
    assert_eq!(metric_sum(&m, "meshlift_golden_nodes_behind", Some(("board", SIM_BOARD))), 0.0, "{m}");
    assert_eq!(metric_sum(&m, "meshlift_golden_state", Some(("state", "converged"))), 1.0);
    assert!(metric_sum(&m, "meshlift_golden_last_run_timestamp_seconds", None) > 0.0);
    promtool_check(&m);
    lab.stop().await;
}
