//! Distribution on an IPv6 controller (`public_host = "::1"`): URIs carry bracketed addresses,
//! the initial peer is the seeder's IPv6 socket address, the image is served over IPv6, and the
//! seeder (listening on `::1`) announces itself over IPv6, so the tracker hands it out in
//! `peers6` (BEP 7). Fails, not skips, without IPv6 loopback.

use meshlift_controller::address::Host;
use meshlift_controller::dist::{router, DistConfig, ImageStore, ImageVerifier, VerifiedImageInfo};
use serde_bencode::value::Value;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct AnyImage;

impl ImageVerifier for AnyImage {
    fn verify(&self, _path: &Path) -> Result<VerifiedImageInfo, String> {
        Ok(VerifiedImageInfo {
            name: "v6".into(),
            version: "v6".into(),
            hardware_board_ids: vec!["b".into()],
        })
    }
}

fn free_port_v6() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_controller_serves_seeds_and_tracks_over_ipv6() {
    let listener = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        .await
        .expect("IPv6 loopback (::1) is available: distribution over IPv6 is tested on it");
    let http = listener.local_addr().unwrap();
    let host: Host = "::1".parse().unwrap();
    let bt_port = free_port_v6();
    let mut cfg = DistConfig::new(
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), bt_port),
        host.http_base_url(http.port()),
        Arc::new(AnyImage),
    );
    cfg.bt_public_addr = Some(host.with_port(bt_port));
    cfg.min_free_bytes = 0;
    cfg.announce_interval = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images"), cfg).await.unwrap();
    let app = router(store.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });

    let src = dir.path().join("v6.src");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &payload).unwrap();
    let img = store.add(src.to_str().unwrap()).await.unwrap();
    assert_eq!(img.http_uri, format!("http://[::1]:{}/images/{}.mlimg", http.port(), img.sha256));
    let tracker = format!("http://[::1]:{}/announce", http.port());
    let encoded: String = url::form_urlencoded::byte_serialize(tracker.as_bytes()).collect();
    assert!(img.magnet_uri.contains(&format!("tr={encoded}")), "{} lacks {encoded}", img.magnet_uri);
    assert_eq!(store.initial_peers(), vec![format!("[::1]:{bt_port}")]);

    // The image over IPv6.
    let client = reqwest::Client::new();
    let body = client.get(&img.http_uri).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], &payload[..]);

    // A client announcing over IPv6 learns the seeder's IPv6 address in `peers6`, once the seeder
    // has announced itself (librqbit does so right after the image is added).
    let info_hash = hex::decode(img.magnet_uri.split("btih:").nth(1).unwrap().get(..40).unwrap()).unwrap();
    let q = |b: &[u8]| -> String { url::form_urlencoded::byte_serialize(b).collect() };
    let url = format!(
        "{tracker}?info_hash={}&peer_id={}&port=7001&uploaded=0&downloaded=0&left=1&compact=1",
        q(&info_hash),
        q(b"-XX0001-abcdefghijkl")
    );
    let mut want = Ipv6Addr::LOCALHOST.octets().to_vec();
    want.extend_from_slice(&bt_port.to_be_bytes());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = client.get(&url).send().await.unwrap().bytes().await.unwrap();
        let Value::Dict(d) = serde_bencode::from_bytes::<Value>(&resp).unwrap() else { panic!("not a dict") };
        if d.get(&b"peers6"[..]) == Some(&Value::Bytes(want.clone())) {
            break;
        }
        assert!(Instant::now() < deadline, "the seeder never showed up in peers6: {d:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    store.shutdown().await;
}
