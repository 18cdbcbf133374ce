//! The management plane against a real controller process, CURVE on: garbage and
//! wrong-version frames from authenticated peers are refused and the controller keeps serving; a
//! frame over the size limit closes that connection before it is read; a node that is not in the
//! topology is refused; a minion that restarts is reached on its new connection; a controller
//! restart needs no minion restart.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

fn refused(env: &Envelope, needle: &str) {
    match &env.body {
        Message::Ack(a) => assert!(!a.success && a.message.contains(needle), "{a:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_unknown_nodes_restarts() {
    let (cfg, _dir) = lab_config(small_topology());
    let (mut lab, image) = start_with_v2(cfg).await;
    let minion_ep = format!("tcp://127.0.0.1:{}", lab.ports.minion);
    let server = lab.controller_public_key();
    let node_key = lab.node_key("leaf2").expect("leaf2 has a key").key.clone();
    let operator_key = lab.operator_key_path().expect("the lab runs CURVE").to_path_buf();

    // Garbage, oversized and wrong-version frames on both sockets, from peers whose keys are
    // admitted: refused, the loop keeps going.
    for (ep, key) in [(minion_ep.clone(), node_key.clone()), (lab.app_endpoint(), operator_key.clone())] {
        tokio::task::spawn_blocking(move || {
            let raw = raw_dealer(&ep, Some(&key), server, "garbage-sender");
            let garbage = [&PROTOCOL_VERSION.to_be_bytes()[..], &[0xff, 0xff, 0xff, 0x07]].concat();
            refused(&raw_send_recv(&raw, &garbage), "malformed");
            let mut wrong =
                encode(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).expect("encode");
            wrong[1] = 99;
            refused(&raw_send_recv(&raw, &wrong), "unsupported protocol version 99");
            // Over the size limit: libzmq drops the connection before reading the body.
            raw.send_multipart([&b"test"[..], &vec![0u8; 2 << 20][..]], 0).expect("send");
            raw.set_rcvtimeo(1500).expect("rcvtimeo");
            assert!(raw.recv_multipart(0).is_err(), "no reply to an oversized frame");
        })
        .await
        .expect("raw peer");
    }
    assert!(lab.state().await.is_ok(), "the controller still answers operators");

    // A node that is not in the topology (an enrolled key, a report for an unknown MAC).
    let report = StatusReport {
        mac: "de:ad:be:ef:00:01".into(),
        boot_id: "boot".into(),
        timestamp: 0,
        version: V1.into(),
        hardware_board_id: "x".into(),
        upgrade_status: UpgradeStatus::default(),
        slots: SlotsReport {
            active: SlotId::A,
            booted: SlotId::A,
            a: SlotReport { slot: SlotId::A, version: Some(V1.into()), sha256: None, confirmed: true },
            b: SlotReport { slot: SlotId::B, version: None, sha256: None, confirmed: false },
        },
        links: vec![],
        bgp_peers_up: None,
        last_fallback: None,
        seq: 1,
        startup_config: None,
    };
    let payload = encode(&Envelope::new(1, Message::StatusReport(Box::new(report)))).expect("encode");
    let ep = minion_ep.clone();
    let env = tokio::task::spawn_blocking(move || {
        let raw = raw_dealer(&ep, Some(&node_key), server, "de:ad:be:ef:00:01");
        raw_send_recv(&raw, &payload)
    })
    .await
    .expect("raw peer");
    match env.body {
        Message::StatusReportAck(ack) => {
            assert!(
                ack.refused.as_deref().is_some_and(|r| r.contains("not a node of the topology")),
                "{ack:?}"
            )
        }
        other => panic!("expected a refused ack, got {other:?}"),
    }
    let log = std::fs::read_to_string(lab.cfg.work_dir.join("controller.log")).expect("controller log");
    assert!(log.contains("status report refused"), "the refusal is logged");

    // A minion restart: same MAC, new boot id, new connection; the controller reaches it there.
    lab.mesh.kill_node("leaf1").expect("kill");
    tokio::time::sleep(Duration::from_secs(3)).await;
    lab.wait_all_reported(Duration::from_secs(30)).await.expect("leaf1 back");
    let mut req = full_upgrade_request("e2e-restarted-minion", &image, 60);
    req.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    req.ug_type = UpgradeGroupType::Nodes;
    req.nodes = vec!["leaf1".into()];
    let id = lab.submit(req).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    assert_eq!(outcomes(&dump, &id, UpgradeReqType::PrepareUpgrade)["leaf1"].outcome, OutcomeKind::Succeeded);

    // A controller restart: the minions reconnect by themselves, none restarts.
    let restarts_before: Vec<u64> =
        lab.cfg.topology.nodes.iter().map(|n| lab.mesh.restarts(&n.name)).collect();
    lab.kill_controller().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.start_controller().await.expect("restart");
    lab.wait_all_reported(Duration::from_secs(30)).await.expect("every minion reconnected");
    let restarts_after: Vec<u64> =
        lab.cfg.topology.nodes.iter().map(|n| lab.mesh.restarts(&n.name)).collect();
    assert_eq!(restarts_before, restarts_after, "no minion restarted");
    let mut req = full_upgrade_request("e2e-after-controller-restart", &image, 60);
    req.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    let id = lab.submit(req).await.expect("accepted");
    let dump = finish(&lab, &id, &mut log).await;
    for (node, o) in outcomes(&dump, &id, UpgradeReqType::PrepareUpgrade) {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {o:?}");
    }

    // SIGTERM: a clean exit, and the finished request is still known after the next start.
    let status = lab.terminate_controller().await.expect("the controller exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    lab.start_controller().await.expect("restart");
    let d = lab.state().await.expect("state");
    assert!(d.finished_reqs.iter().any(|f| f.request_id == id), "{:?}", d.finished_reqs);
    lab.stop().await;
}
