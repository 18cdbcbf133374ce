//! What the `zeromq` crate leaves to us, against a real controller process: garbage, oversized
//! and wrong-version frames are refused and the controller keeps serving; a node that is not in
//! the topology is refused; a minion that restarts (same MAC, new boot id) is reached on its new
//! connection; a controller restart needs no minion restart.

use bytes::Bytes;
use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

async fn raw_dealer(endpoint: &str, identity: &str) -> zeromq::DealerSocket {
    let mut opts = zeromq::SocketOptions::default();
    opts.peer_identity(zeromq::util::PeerIdentity::try_from(identity.as_bytes().to_vec()).expect("identity"));
    let mut s = zeromq::DealerSocket::with_options(opts);
    s.connect(endpoint).await.expect("connect");
    s
}

async fn send_recv(s: &mut zeromq::DealerSocket, payload: Vec<u8>) -> Envelope {
    s.send(ZmqMessage::try_from(vec![Bytes::from_static(b"test"), Bytes::from(payload)]).expect("frames"))
        .await
        .expect("send");
    let reply =
        tokio::time::timeout(Duration::from_secs(10), s.recv()).await.expect("a reply").expect("recv");
    decode(reply.into_vec().last().expect("a frame"), MAX_FRAME_DEFAULT)
        .expect("the controller's reply decodes")
}

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

    // Garbage, oversized and wrong-version frames on both sockets: refused, loop keeps going.
    for ep in [minion_ep.clone(), lab.app_endpoint()] {
        let mut raw = raw_dealer(&ep, "garbage-sender").await;
        refused(&send_recv(&mut raw, vec![0, 1, 0xff, 0xff, 0xff, 0x07]).await, "malformed");
        refused(&send_recv(&mut raw, vec![0u8; 2 << 20]).await, "exceeds the maximum");
        let mut wrong =
            encode(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).expect("encode");
        wrong[1] = 99;
        refused(&send_recv(&mut raw, wrong).await, "unsupported protocol version 99");
    }
    assert!(lab.state().await.is_ok(), "the controller still answers operators");

    // A node that is not in the topology.
    let mut stranger = raw_dealer(&minion_ep, "de:ad:be:ef:00:01/boot").await;
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
    };
    let env = send_recv(
        &mut stranger,
        encode(&Envelope::new(1, Message::StatusReport(Box::new(report)))).expect("encode"),
    )
    .await;
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
