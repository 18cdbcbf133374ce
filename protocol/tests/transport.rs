//! The libzmq shells on 127.0.0.1 with CURVE on: request/reply, keys admitted or refused by the
//! ZAP handler and the reason a client sees, user ids on frames, garbage and hostile frame headers
//! refused without stopping the router, reconnect after a router restart, and sends that never
//! wait on a peer.

use meshlift_protocol::transport::zap::{Authorizer, ZapRequest};
use meshlift_protocol::transport::{
    request, ClientSecurity, CurveKeyPair, CurvePublicKey, Dealer, DealerConfig, DealerEvent, RequestConfig,
    Router, RouterConfig, RouterEvent, ServerSecurity, TransportError,
};
use meshlift_protocol::*;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn domain() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("test-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Admits the keys it was given, under their names; remembers every refusal.
struct Keys {
    admitted: HashMap<CurvePublicKey, String>,
    refused: Mutex<Vec<String>>,
}

impl Authorizer for Keys {
    fn authorize(&self, req: &ZapRequest) -> Result<String, String> {
        match req.key.and_then(|k| self.admitted.get(&k)) {
            Some(name) => Ok(name.clone()),
            None => {
                let why = format!("unknown key {:?} from {}", req.key.map(|k| k.to_z85()), req.address);
                self.refused.lock().unwrap().push(why.clone());
                Err(why)
            }
        }
    }
}

struct Server {
    endpoint: String,
    keys: CurveKeyPair,
    auth: Arc<Keys>,
}

/// A CURVE router admitting `clients` (name, key pair), answering every frame with an Ack that
/// names the sender's user id.
fn echo_server(clients: &[(&str, &CurveKeyPair)]) -> Server {
    let keys = CurveKeyPair::generate().unwrap();
    let auth = Arc::new(Keys {
        admitted: clients.iter().map(|(n, k)| (k.public(), n.to_string())).collect(),
        refused: Mutex::new(Vec::new()),
    });
    let security = ServerSecurity::Curve { keys: keys.clone(), domain: domain(), auth: auth.clone() };
    let (router, mut rx) = Router::bind(RouterConfig::new("tcp://127.0.0.1:0", security)).unwrap();
    let endpoint = router.endpoint().to_string();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let RouterEvent::Frame(inc) = ev else { continue };
            let reply = match inc.frame {
                Ok(env) => Envelope::new(
                    env.request_id,
                    Message::Ack(Ack::ok(format!(
                        "{} from {}",
                        env.body.kind(),
                        inc.user_id.unwrap_or_default()
                    ))),
                ),
                Err(e) => Envelope::new(0, Message::Ack(Ack::refused(e.to_string()))),
            };
            let _ = router.send(&inc.identity, b"ctrl", reply);
        }
    });
    Server { endpoint, keys, auth }
}

fn client(server: &Server, keys: &CurveKeyPair) -> RequestConfig {
    let security = ClientSecurity::Curve { keys: keys.clone(), server: server.keys.public() };
    RequestConfig::new(&server.endpoint, security, Duration::from_secs(5))
}

fn state_req() -> Message {
    Message::UpgradeStateReq(UpgradeStateReq {})
}

#[tokio::test]
async fn an_admitted_key_gets_its_reply_stamped_with_its_user_id() {
    let alice = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let reply = request(&client(&server, &alice), state_req()).await.unwrap();
    assert_eq!(reply.body, Message::Ack(Ack::ok("UPGRADE_STATE_REQ from alice")));
}

#[tokio::test]
async fn an_unknown_key_is_refused_and_the_client_is_told_why() {
    let alice = CurveKeyPair::generate().unwrap();
    let mallory = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let err = request(&client(&server, &mallory), state_req()).await.unwrap_err();
    assert!(matches!(err, TransportError::AuthRefused { .. }), "{err}");
    assert!(err.to_string().contains("refused this client's CURVE key"), "{err}");
    let refused = server.auth.refused.lock().unwrap().clone();
    assert!(refused.iter().any(|r| r.contains(&mallory.public().to_z85())), "{refused:?}");
}

#[tokio::test]
async fn a_client_with_the_wrong_server_key_gets_no_answer_and_a_hint() {
    let alice = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let impostor = CurveKeyPair::generate().unwrap();
    let mut cfg = RequestConfig::new(
        &server.endpoint,
        ClientSecurity::Curve { keys: alice.clone(), server: impostor.public() },
        Duration::from_millis(1500),
    );
    cfg.limits.handshake = Duration::from_millis(500);
    let err = request(&cfg, state_req()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TransportError::Timeout { .. }), "{text}");
    assert!(text.contains("handshake") || text.contains("key"), "{text}");
}

#[tokio::test]
async fn a_plain_text_client_cannot_talk_to_a_curve_router() {
    let alice = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let cfg = RequestConfig::new(&server.endpoint, ClientSecurity::Insecure, Duration::from_millis(1500));
    assert!(request(&cfg, state_req()).await.is_err());
}

#[tokio::test]
async fn request_to_nobody_times_out_naming_the_endpoint() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let cfg = RequestConfig::new(&ep, ClientSecurity::Insecure, Duration::from_millis(500));
    let err = request(&cfg, state_req()).await.unwrap_err();
    assert!(err.to_string().contains(&ep), "{err}");
    assert!(err.to_string().contains("no connection"), "{err}");
}

/// A raw libzmq DEALER with alice's key sends garbage; the router answers and keeps serving.
#[tokio::test]
async fn garbage_is_refused_and_router_keeps_serving() {
    let alice = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let (ep, spub) = (server.endpoint.clone(), server.keys.public());
    let alice2 = alice.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let raw = zmq_client(&ep, &alice2, spub);
        let garbage = [&PROTOCOL_VERSION.to_be_bytes()[..], &[0xff, 0xff, 0xff]].concat();
        raw.send_multipart([&b"x"[..], &garbage[..]], 0).unwrap();
        raw.recv_multipart(0).unwrap()
    })
    .await
    .unwrap();
    let env = decode(reply.last().unwrap(), MAX_FRAME_DEFAULT).unwrap();
    match env.body {
        Message::Ack(a) => assert!(!a.success && a.message.contains("malformed"), "{a:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let ok = request(&client(&server, &alice), Message::UpgradeListImagesReq(UpgradeListImagesReq {}))
        .await
        .unwrap();
    assert_eq!(ok.body, Message::Ack(Ack::ok("UPGRADE_LIST_IMAGES_REQ from alice")));
}

fn zmq_client(ep: &str, keys: &CurveKeyPair, server: CurvePublicKey) -> zmq::Socket {
    let ctx = meshlift_protocol::transport::context();
    let s = ctx.socket(zmq::DEALER).unwrap();
    ClientSecurity::Curve { keys: keys.clone(), server }.apply(&s).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.connect(ep).unwrap();
    s
}

/// RSS of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

/// ZMTP 3.0 greeting (NULL mechanism) followed by one frame header that declares a body of
/// 2^62 bytes: 74 bytes that made the `zeromq` crate reserve 4 EiB and abort the process.
fn hostile_header() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    g.extend_from_slice(b"NULL");
    g.resize(32, 0);
    g.push(0); // as-server
    g.resize(64, 0);
    g.push(0x02); // long frame
    g.extend_from_slice(&(1u64 << 62).to_be_bytes());
    g.push(0);
    g
}

#[tokio::test]
async fn a_frame_header_declaring_an_exabyte_allocates_nothing_and_the_router_serves_on() {
    let alice = CurveKeyPair::generate().unwrap();
    let server = echo_server(&[("alice", &alice)]);
    let (insecure, mut irx) =
        Router::bind(RouterConfig::new("tcp://127.0.0.1:0", ServerSecurity::Insecure)).unwrap();
    let before = rss();
    for ep in [server.endpoint.clone(), insecure.endpoint().to_string()] {
        let addr = ep.trim_start_matches("tcp://").to_string();
        for _ in 0..20 {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let _ = s.write_all(&hostile_header());
        }
        // And an endless stream of small "more" frames on one connection: refused at the size limit.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let mut g = hostile_header();
        g.truncate(64);
        let _ = s.write_all(&g);
        let frame = [0x01u8, 255].iter().copied().chain(std::iter::repeat_n(0u8, 255)).collect::<Vec<u8>>();
        for _ in 0..8192 {
            if s.write_all(&frame).is_err() {
                break; // the router dropped us: the point
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    // Both still serve.
    request(&client(&server, &alice), state_req()).await.unwrap();
    let cfg = RequestConfig::new(insecure.endpoint(), ClientSecurity::Insecure, Duration::from_secs(5));
    let h = tokio::spawn(async move { request(&cfg, state_req()).await });
    match irx.recv().await.unwrap() {
        RouterEvent::Frame(inc) => {
            assert!(inc.user_id.is_none());
            let env = inc.frame.unwrap();
            insecure
                .send(&inc.identity, b"ctrl", Envelope::new(env.request_id, Message::Ack(Ack::ok("ok"))))
                .unwrap();
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.await.unwrap().unwrap().body, Message::Ack(Ack::ok("ok")));
}

#[tokio::test]
async fn dealer_reconnects_after_router_restart_and_keeps_its_identity() {
    let node = CurveKeyPair::generate().unwrap();
    let server_keys = CurveKeyPair::generate().unwrap();
    let auth = Arc::new(Keys {
        admitted: [(node.public(), "node-a".to_string())].into(),
        refused: Mutex::new(Vec::new()),
    });
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let bind = || {
        let sec = ServerSecurity::Curve { keys: server_keys.clone(), domain: domain(), auth: auth.clone() };
        Router::bind(RouterConfig::new(&ep, sec))
    };
    let (router, mut rx) = bind().unwrap();
    let mut cfg = DealerConfig::new(
        &ep,
        "00:00:00:00:00:01",
        "minion",
        ClientSecurity::Curve { keys: node.clone(), server: server_keys.public() },
    );
    cfg.reconnect_max = Duration::from_millis(300);
    let (dealer, mut events) = Dealer::spawn(cfg).unwrap();
    assert!(matches!(next_event(&mut events).await, DealerEvent::Connected));
    dealer.send(&Envelope::new(1, state_req())).unwrap();
    let RouterEvent::Frame(inc) = rx.recv().await.unwrap() else { panic!() };
    assert_eq!(inc.identity_str(), "00:00:00:00:00:01");
    assert_eq!(inc.user_id.as_deref(), Some("node-a"));
    drop(router);
    drop(rx);
    let mut tries = 0;
    let (router2, mut rx2) = loop {
        tries += 1;
        assert!(tries < 100, "port never freed after the router was dropped");
        match bind() {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // libzmq reconnects by itself; the owner resends on Connected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "dealer never reconnected");
        if let DealerEvent::Connected = next_event(&mut events).await {
            break;
        }
    }
    dealer.send(&Envelope::new(2, state_req())).unwrap();
    let RouterEvent::Frame(got) = rx2.recv().await.unwrap() else { panic!() };
    assert_eq!(got.identity_str(), "00:00:00:00:00:01");
    router2.send(&got.identity, b"ctrl", Envelope::new(9, Message::Ack(Ack::ok("hi")))).unwrap();
    loop {
        if let DealerEvent::Message(env) = next_event(&mut events).await {
            assert_eq!(env.request_id, 9);
            break;
        }
    }
}

async fn next_event(events: &mut tokio::sync::mpsc::Receiver<DealerEvent>) -> DealerEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no dealer event in 10 s")
        .unwrap()
}

#[tokio::test]
async fn sends_to_a_peer_that_never_reads_fail_at_once_and_come_back() {
    let mut cfg = RouterConfig::new("tcp://127.0.0.1:0", ServerSecurity::Insecure);
    cfg.limits.send_hwm = 8;
    let (router, mut rx) = Router::bind(cfg).unwrap();
    let ep = router.endpoint().to_string();
    // A peer that says hello once, then never reads again (tiny buffers so TCP fills fast).
    let stalled = tokio::task::spawn_blocking(move || {
        let s = meshlift_protocol::transport::context().socket(zmq::DEALER).unwrap();
        s.set_rcvhwm(1).unwrap();
        s.set_rcvbuf(4096).unwrap();
        s.connect(&ep).unwrap();
        let hello = encode(&Envelope::new(1, state_req())).unwrap();
        s.send_multipart([&b"x"[..], &hello[..]], 0).unwrap();
        s
    })
    .await
    .unwrap();
    let RouterEvent::Frame(inc) = rx.recv().await.unwrap() else { panic!() };
    let big = || Envelope::new(2, Message::Ack(Ack::ok("x".repeat(64 * 1024))));
    let started = std::time::Instant::now();
    for _ in 0..2000 {
        router.send(&inc.identity, b"ctrl", big()).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2), "queueing sends must not wait on the peer");
    let undeliverable = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(RouterEvent::Undeliverable(u)) = rx.recv().await {
                return u;
            }
        }
    })
    .await
    .expect("a peer that does not read makes sends fail, in bounded time");
    assert_eq!(undeliverable.reason, "peer not reading");
    assert_eq!(undeliverable.envelope.request_id, 2);
    // An unknown identity fails too, with its own reason.
    router.send(&bytes::Bytes::from_static(b"nobody"), b"ctrl", big()).unwrap();
    let reason = loop {
        if let Some(RouterEvent::Undeliverable(u)) = rx.recv().await {
            if &u.identity[..] == b"nobody" {
                break u.reason;
            }
        }
    };
    assert_eq!(reason, "no such peer");
    drop(stalled);
}

/// What a minion sends while the controller is away is dropped, not queued: after a reconnect the
/// controller sees only what was sent since (the owner resends its full state on `Connected`).
#[tokio::test]
async fn nothing_stale_reaches_the_controller_after_an_outage() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut cfg = DealerConfig::new(&ep, "00:00:00:00:00:02", "minion", ClientSecurity::Insecure);
    cfg.reconnect_max = Duration::from_millis(200);
    let (dealer, mut events) = Dealer::spawn(cfg).unwrap();
    for i in 0..50 {
        dealer.send(&Envelope::new(100 + i, state_req())).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_router, mut rx) = Router::bind(RouterConfig::new(&ep, ServerSecurity::Insecure)).unwrap();
    loop {
        if let DealerEvent::Connected = next_event(&mut events).await {
            break;
        }
    }
    dealer.send(&Envelope::new(7, state_req())).unwrap();
    let RouterEvent::Frame(inc) = rx.recv().await.unwrap() else { panic!() };
    assert_eq!(inc.frame.unwrap().request_id, 7, "a message from before the connection arrived");
}
