//! A minion's refusal reaches the engine at once: a node still downloading an earlier request's
//! image (that request was aborted, which does not stop the node) refuses the next PREPARE ("a
//! download is running"), and the controller records that node's failure with the node's own
//! reason within two seconds, instead of waiting for the batch timeout (here 120 s).

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_refusal_fails_its_attempt_at_once() {
    let (mut cfg, _dir) = lab_config(small_topology());
    // A slow seeder keeps the first download running for minutes.
    cfg.seed_upload_limit = Some(32 * 1024);
    let (lab, image) = start_with_v2(cfg).await;

    let prepare = |id: &str| {
        let mut req = full_upgrade_request(id, &image, 120);
        req.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
        req.ug_type = UpgradeGroupType::Nodes;
        req.nodes = vec!["leaf1".into()];
        req.retry_limit = 0;
        req.skip_failure = true;
        req
    };
    let first = lab.submit(prepare("e2e-slow-download")).await.expect("accepted");
    wait_state(&lab, Duration::from_secs(30), "leaf1 starts downloading", |_| true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = lab.node_status().await.expect("status");
        let leaf1 = st.nodes.iter().find(|n| n.name == "leaf1").expect("leaf1");
        if leaf1.upgrade_status.as_ref().is_some_and(|u| u.us_type == UpgradeStatusType::DownloadingImage) {
            break;
        }
        assert!(Instant::now() < deadline, "leaf1 never started downloading: {leaf1:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ack = lab
        .ask(Message::UpgradeAbortReq(UpgradeAbortReq {
            abort_all: false,
            req_ids: vec![first.clone()],
            reset_status: false,
            operator: Operator { who: String::new(), reason: Some("test: leave leaf1 downloading".into()) },
        }))
        .await
        .expect("abort answered");
    assert!(matches!(&ack, Message::Ack(a) if a.success), "{ack:?}");

    let submitted = Instant::now();
    let second = lab.submit(prepare("e2e-refused-prepare")).await.expect("accepted");
    let dump = wait_state(&lab, Duration::from_secs(10), "the refusal is recorded", |d| {
        outcomes(d, &second, UpgradeReqType::PrepareUpgrade).contains_key("leaf1")
    })
    .await;
    let took = submitted.elapsed();
    let o = &outcomes(&dump, &second, UpgradeReqType::PrepareUpgrade)["leaf1"];
    assert_eq!(o.outcome, OutcomeKind::Failed, "{o:?}");
    assert!(o.reason.contains("a download is running"), "the node's own reason: {o:?}");
    assert!(took < Duration::from_secs(2), "recorded after {took:?}, not at once");
    let log = std::fs::read_to_string(lab.cfg.work_dir.join("controller.log")).expect("log");
    assert!(!log.contains("unexpected message on the minion socket"), "the minion's acks are accepted");
    let metrics = lab.metrics().await.expect("metrics");
    assert_eq!(metric_sum(&metrics, "meshlift_node_orders_refused_total", None), 1.0, "{metrics}");
    lab.stop().await;
}
