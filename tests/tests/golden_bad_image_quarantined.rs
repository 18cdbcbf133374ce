//! A bad golden image, on real processes: v2 fails its post-boot check on the canaries, both
//! fall back to v1, v2 is quarantined fleet-wide after K = 2 fallbacks, and no node beyond the
//! canaries is ever sent anything.

use meshlift_controller::golden::canary::{safest_units, take};
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
async fn a_bad_golden_image_is_quarantined_and_nobody_beyond_the_canaries_is_touched() {
    let topology = sample_topology();
    let all: Vec<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
    let canaries = take(&safest_units(Some(&topology), &all), 2, usize::MAX);
    assert_eq!(canaries.len(), 2, "{canaries:?}");
    let (mut cfg, _dir) = lab_config(topology);
    cfg.bad_image_nodes = canaries.clone();
    let names: Vec<String> = canaries.iter().map(|c| format!("{c:?}")).collect();
    cfg.golden_toml = Some(format!(
        "[golden]\nenabled = true\ncheck_interval_s = 2\nbake_s = 3\ncanary_nodes = [{}]\nretry_limit = 0\n\
         quarantine_after = 2\nbatch_timeout_s = 90\n",
        names.join(", ")
    ));
    let (lab, image) = start_with_v2(cfg).await;
    let set = GoldenReq {
        cmd: GoldenCmd::SetTarget { board: Some(SIM_BOARD.into()), image },
        operator: Operator { who: "test".into(), reason: Some("roll out v2".into()) },
    };
    assert!(matches!(lab.ask(Message::GoldenReq(set)).await.expect("answer"), Message::Ack(a) if a.success));
    let deadline = Instant::now() + Duration::from_secs(240);
    let show = loop {
        let s = golden_show(&lab).await;
        if !s.quarantined.is_empty() && s.boards[0].waves.iter().all(|w| w.finished_at.is_some()) {
            break s;
        }
        assert!(Instant::now() < deadline, "not quarantined: {s:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(show.quarantined.len(), 1);
    assert_eq!(show.quarantined[0].version, V2);
    assert_eq!(show.boards[0].state, "quarantined");
    let mut in_waves: Vec<String> = show.boards[0].waves.iter().flat_map(|w| w.nodes.clone()).collect();
    in_waves.sort();
    let mut expected = canaries.clone();
    expected.sort();
    assert_eq!(in_waves, expected, "only the canaries were in a wave");
    for c in &canaries {
        let e = show.blacklist.iter().find(|e| &e.node == c).expect("canary blacklisted");
        assert!(e.reason.contains("fell_back"), "{}", e.reason);
    }
    // The loop stopped: a few more checks start nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(golden_show(&lab).await.boards[0].waves.len(), show.boards[0].waves.len());
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        assert_eq!(row.version.as_deref(), Some(V1), "{} still on v1", row.name);
        if !canaries.contains(&row.name) {
            let us = row.upgrade_status.as_ref().expect("reported");
            assert_eq!(us.us_type, UpgradeStatusType::None, "{} untouched", row.name);
            assert!(us.upgrade_req_id.is_empty(), "{} was never sent a request", row.name);
            assert_eq!(lab.mesh.reboots(&row.name), 0, "{} never rebooted", row.name);
        }
    }
    assert!(journal(&lab).iter().any(|e| e.message.contains("quarantined 2.0.0 fleet-wide")));
    // The gauges are refreshed every `tick_interval_ms`: wait for the refresh after the verdict.
    let mut m = lab.metrics().await.expect("metrics");
    for _ in 0..40 {
        if metric_sum(&m, "meshlift_golden_quarantined", Some(("version", V2))) == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        m = lab.metrics().await.expect("metrics");
    }
    assert_eq!(metric_sum(&m, "meshlift_golden_quarantined", Some(("version", V2))), 1.0, "{m}");
    lab.stop().await;
}
