//! The ZeroMQ shells on 127.0.0.1: request/reply, garbage refused without stopping the router,
//! and a DEALER that reconnects by itself after the ROUTER restarts.

use meshlift_protocol::transport::{request, Dealer, DealerConfig, DealerEvent, Router};
use meshlift_protocol::*;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn echo_router(endpoint: &str) -> tokio::task::JoinHandle<()> {
    let (router, mut rx) = Router::bind(endpoint, MAX_FRAME_DEFAULT, Duration::from_secs(2)).await.unwrap();
    tokio::spawn(async move {
        while let Some(inc) = rx.recv().await {
            let reply = match inc.frame {
                Ok(env) => Envelope::new(env.request_id, Message::Ack(Ack::ok(env.body.kind()))),
                Err(e) => Envelope::new(0, Message::Ack(Ack::refused(e.to_string()))),
            };
            let _ = router.send(&inc.identity, b"ctrl", &reply).await;
        }
    })
}

#[tokio::test]
async fn request_gets_its_reply() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let _r = echo_router(&ep).await;
    let reply =
        request(&ep, Message::UpgradeStateReq(UpgradeStateReq {}), Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply.body, Message::Ack(Ack::ok("UPGRADE_STATE_REQ")));
}

#[tokio::test]
async fn request_to_nobody_times_out_naming_the_endpoint() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let err = request(&ep, Message::UpgradeStateReq(UpgradeStateReq {}), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&ep.replace("tcp://", "")) || err.to_string().contains(&ep), "{err}");
}

#[tokio::test]
async fn garbage_is_refused_and_router_keeps_serving() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let _r = echo_router(&ep).await;
    // A raw DEALER sending junk.
    use zeromq::{Socket, SocketRecv, SocketSend};
    let mut raw = zeromq::DealerSocket::new();
    raw.connect(&ep).await.unwrap();
    raw.send(
        zeromq::ZmqMessage::try_from(vec![
            bytes::Bytes::from_static(b"x"),
            bytes::Bytes::from_static(b"\x00\x01\xff\xff\xff"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let reply = raw.recv().await.unwrap().into_vec();
    let env = decode(reply.last().unwrap(), MAX_FRAME_DEFAULT).unwrap();
    match env.body {
        Message::Ack(a) => assert!(!a.success && a.message.contains("malformed"), "{a:?}"),
        other => panic!("unexpected {other:?}"),
    }
    // Still serving well-formed requests.
    let ok = request(&ep, Message::UpgradeListImagesReq(UpgradeListImagesReq {}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok.body, Message::Ack(Ack::ok("UPGRADE_LIST_IMAGES_REQ")));
}

#[tokio::test]
async fn dealer_reconnects_after_router_restart() {
    let port = free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let (router, mut rx) = Router::bind(&ep, MAX_FRAME_DEFAULT, Duration::from_secs(2)).await.unwrap();
    let mut cfg = DealerConfig::new(&ep, "00:00:00:00:00:01/boot1", "minion");
    cfg.backoff_max = Duration::from_millis(300);
    let (dealer, mut events) = Dealer::spawn(cfg);
    assert!(matches!(events.recv().await.unwrap(), DealerEvent::Connected));
    dealer.send(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).unwrap();
    let inc = rx.recv().await.unwrap();
    assert_eq!(inc.identity_str(), "00:00:00:00:00:01/boot1");
    // Kill the router (drop the socket and its receiver task's channel).
    drop(router);
    drop(rx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tries = 0;
    let (router2, mut rx2) = loop {
        tries += 1;
        assert!(tries < 100, "port never freed after the router was dropped");
        match Router::bind(&ep, MAX_FRAME_DEFAULT, Duration::from_secs(2)).await {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // The owner notices missing acks and asks for a reconnect; the dealer gets there by itself too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        dealer.reconnect();
        let _ = dealer.send(&Envelope::new(2, Message::UpgradeStateReq(UpgradeStateReq {})));
        if let Ok(Some(inc)) = tokio::time::timeout(Duration::from_millis(500), rx2.recv()).await {
            break inc;
        }
        assert!(tokio::time::Instant::now() < deadline, "dealer never reached the restarted router");
    };
    assert!(got.frame.is_ok());
    // And replies flow back to it.
    router2.send(&got.identity, b"ctrl", &Envelope::new(9, Message::Ack(Ack::ok("hi")))).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            DealerEvent::Message(env) => {
                assert_eq!(env.request_id, 9);
                break;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn router_sends_to_a_stalled_peer_time_out_instead_of_blocking() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let (router, mut rx) = Router::bind(&ep, MAX_FRAME_DEFAULT, Duration::from_millis(300)).await.unwrap();
    // A peer that connects, says hello once, and then never reads again.
    use zeromq::{Socket, SocketSend};
    let mut stalled = zeromq::DealerSocket::new();
    stalled.connect(&ep).await.unwrap();
    let hello = encode(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).unwrap();
    stalled
        .send(
            zeromq::ZmqMessage::try_from(vec![bytes::Bytes::from_static(b"x"), bytes::Bytes::from(hello)])
                .unwrap(),
        )
        .await
        .unwrap();
    let inc = rx.recv().await.unwrap();
    let big = Envelope::new(2, Message::Ack(Ack::ok("x".repeat(64 * 1024))));
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..1_000_000u32 {
            if let Err(e) = router.send(&inc.identity, b"ctrl", &big).await {
                return (i, e.to_string());
            }
        }
        (u32::MAX, String::new())
    })
    .await
    .expect("sends to a stalled peer must fail in bounded time, never hang");
    assert!(
        outcome.1.contains("no reply") || outcome.1.contains("within"),
        "a timeout error, got {outcome:?}"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_dealer_queue_is_bounded_while_the_controller_is_away() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut cfg = DealerConfig::new(&ep, "00:00:00:00:00:02/boot", "minion");
    cfg.queue = 4;
    let (dealer, _events) = Dealer::spawn(cfg);
    let env = Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}));
    let mut refused = None;
    for i in 0..100 {
        if let Err(e) = dealer.send(&env) {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (i, e) = refused.expect("a full queue refuses instead of growing");
    assert!(i <= 8 && e.contains("full"), "{i}: {e}");
}
