//! One controller loop serves every node and every operator, so no peer may stall it: while a
//! peer that never reads sits on the app socket with thousands of unread replies queued, and
//! operators flood `upgrade state` from four connections, a full upgrade still reboots its nodes
//! on trial and every one of them is acked in time and confirms.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_nodes_confirm_under_a_state_flood_and_a_peer_that_never_reads() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let stop = Arc::new(AtomicBool::new(false));

    // A peer with the operator's key that asks for the state thousands of times and never reads.
    let ep = lab.app_endpoint();
    let key = lab.operator_key_path().expect("CURVE lab").to_path_buf();
    let server = lab.controller_public_key();
    let stop2 = stop.clone();
    let silent = tokio::task::spawn_blocking(move || {
        let raw = raw_dealer(&ep, Some(&key), server, "never-reads");
        raw.set_rcvhwm(1).expect("hwm");
        raw.set_rcvbuf(4096).expect("rcvbuf");
        let req = encode(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).expect("encode");
        let mut sent = 0u64;
        while !stop2.load(Ordering::Relaxed) && sent < 20_000 {
            if raw.send_multipart([&b"x"[..], &req[..]], zmq::DONTWAIT).is_ok() {
                sent += 1;
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Hold the connection open, unread, until the upgrade is over.
        while !stop2.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });

    // Four operators polling the state as fast as they are answered.
    let answered = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..4 {
        let cfg = lab.client_config().clone();
        let (stop, answered) = (stop.clone(), answered.clone());
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = Message::UpgradeStateReq(UpgradeStateReq {});
                if meshlift_protocol::transport::request(&cfg, req).await.is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let id = lab.submit(full_upgrade_request("e2e-no-stall", &image, 120)).await.expect("accepted");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    let sent = silent.await.expect("silent peer");
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    assert_eq!(commits.len(), lab.cfg.topology.nodes.len(), "{commits:#?}");
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node} did not confirm under load: {o:?}");
    }
    let served = answered.load(Ordering::Relaxed);
    eprintln!("state requests answered during the upgrade: {served}; unread requests sent: {sent}");
    assert!(served > 20, "the flood really ran ({served} answers)");
    assert!(sent > 100, "the silent peer really sent ({sent})");
    let status = lab.node_status().await.expect("status");
    for n in &status.nodes {
        assert_eq!(n.version.as_deref(), Some(V2), "{} runs {:?}", n.name, n.version);
    }
    lab.stop().await;
}
