//! The libzmq shells over IPv6 (Terragraph's management network): a CURVE router bound on `::1`
//! answers a one-shot request and a long-lived dealer, the ZAP handler sees the client's IPv6
//! address, and a wildcard bind serves IPv4 and IPv6 clients alike. These fail (not skip) on a
//! host without IPv6 loopback: the product must work there.

use meshlift_protocol::transport::zap::{Authorizer, ZapRequest};
use meshlift_protocol::transport::{
    request, ClientSecurity, CurveKeyPair, Dealer, DealerConfig, DealerEvent, RequestConfig, Router,
    RouterConfig, RouterEvent, ServerSecurity,
};
use meshlift_protocol::*;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Admits one key and records the address of every ZAP request.
struct OneKey {
    key: meshlift_protocol::transport::CurvePublicKey,
    addresses: Mutex<Vec<String>>,
}

impl Authorizer for OneKey {
    fn authorize(&self, req: &ZapRequest) -> Result<String, String> {
        self.addresses.lock().unwrap().push(req.address.clone());
        if req.key == Some(self.key) {
            Ok("alice".into())
        } else {
            Err("unknown key".into())
        }
    }
}

fn ipv6_loopback_port() -> u16 {
    let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)))
        .expect("IPv6 loopback (::1) must be available: meshlift's IPv6 support is tested on it");
    l.local_addr().unwrap().port()
}

/// An echo router on `endpoint` admitting `alice`; returns its key, the authorizer and the
/// endpoint libzmq reports.
fn echo_router(endpoint: &str, alice: &CurveKeyPair) -> (CurveKeyPair, Arc<OneKey>, String) {
    let keys = CurveKeyPair::generate().unwrap();
    let auth = Arc::new(OneKey { key: alice.public(), addresses: Mutex::new(Vec::new()) });
    let security = ServerSecurity::Curve {
        keys: keys.clone(),
        domain: format!("v6-{}", ipv6_loopback_port()),
        auth: auth.clone(),
    };
    let (router, mut rx) = Router::bind(RouterConfig::new(endpoint, security)).unwrap();
    let bound = router.endpoint().to_string();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let RouterEvent::Frame(inc) = ev else { continue };
            if let Ok(env) = inc.frame {
                let who = inc.user_id.unwrap_or_default();
                let reply = Envelope::new(env.request_id, Message::Ack(Ack::ok(format!("hello {who}"))));
                let _ = router.send(&inc.identity, b"ctrl", reply);
            }
        }
    });
    (keys, auth, bound)
}

fn state_req() -> Message {
    Message::UpgradeStateReq(UpgradeStateReq {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curve_router_on_ipv6_loopback_serves_requests_and_dealers() {
    let alice = CurveKeyPair::generate().unwrap();
    let (server_keys, auth, bound) = echo_router("tcp://[::1]:0", &alice);
    assert!(bound.starts_with("tcp://[::1]:"), "libzmq reports the IPv6 endpoint: {bound}");

    // One-shot request (the CLI's path).
    let security = ClientSecurity::Curve { keys: alice.clone(), server: server_keys.public() };
    let cfg = RequestConfig::new(&bound, security.clone(), Duration::from_secs(5));
    let reply = request(&cfg, state_req()).await.expect("a reply over IPv6");
    assert_eq!(reply.body, Message::Ack(Ack::ok("hello alice")));
    assert!(
        auth.addresses.lock().unwrap().iter().any(|a| a == "::1"),
        "the ZAP handler saw the IPv6 client: {:?}",
        auth.addresses.lock().unwrap()
    );

    // Long-lived dealer (the minion's path): connects, sends, gets the reply.
    let dcfg = DealerConfig::new(&bound, "02:00:00:00:00:01", "minion", security);
    let (dealer, mut events) = Dealer::spawn(dcfg).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sent = false;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the dealer hears back over IPv6 within 10 s")
            .expect("dealer events");
        match ev {
            DealerEvent::Connected if !sent => {
                dealer.send(&Envelope::new(7, state_req())).unwrap();
                sent = true;
            }
            DealerEvent::Message(env) => {
                assert_eq!(env.request_id, 7);
                assert_eq!(env.body, Message::Ack(Ack::ok("hello alice")));
                break;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_bind_serves_ipv4_and_ipv6_clients() {
    let alice = CurveKeyPair::generate().unwrap();
    let port = ipv6_loopback_port();
    let (server_keys, _auth, _bound) = echo_router(&format!("tcp://*:{port}"), &alice);
    let security = ClientSecurity::Curve { keys: alice.clone(), server: server_keys.public() };
    for addr in [SocketAddr::from((Ipv6Addr::LOCALHOST, port)), SocketAddr::from(([127, 0, 0, 1], port))] {
        let cfg = RequestConfig::new(format!("tcp://{addr}"), security.clone(), Duration::from_secs(5));
        let reply = request(&cfg, state_req()).await.unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert_eq!(reply.body, Message::Ack(Ack::ok("hello alice")), "{addr}");
    }
}
