//! Interop: a standard BitTorrent client (transmission-cli, Debian package `transmission-cli`)
//! downloads an image from the controller's seeder, finding it through the embedded tracker.

use meshlift_controller::dist::{router, DistConfig, ImageStore, ImageVerifier, VerifiedImageInfo};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opaque;

impl ImageVerifier for Opaque {
    fn verify(&self, _path: &Path) -> Result<VerifiedImageInfo, String> {
        Ok(VerifiedImageInfo { name: "interop".into(), version: "1".into(), hardware_board_ids: vec![] })
    }
}

fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_downloads_from_seeder_via_embedded_tracker() {
    if std::process::Command::new("transmission-cli").arg("--version").output().is_err() {
        // .ci/run installs it; say so loudly instead of passing silently.
        panic!("transmission-cli is not installed (apt-get install transmission-cli)");
    }
    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = l.local_addr().unwrap();
    let mut cfg = DistConfig::new(
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        format!("http://{http}"),
        Arc::new(Opaque),
    );
    cfg.min_free_bytes = 0;
    // transmission's first announce (right after adding) has come back without the seeder in
    // some runs; a short interval bounds how long it waits for the next one.
    cfg.announce_interval = Duration::from_secs(3);
    let store = ImageStore::open(dir.path().join("images"), cfg).await.unwrap();
    let app = router(store.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let img = store.add(src.to_str().unwrap()).await.unwrap();

    // The .torrent carries no peers: transmission can only learn the seeder from the tracker.
    let torrent = dir.path().join("image.torrent");
    std::fs::write(&torrent, store.torrent_bytes(&img.name).unwrap()).unwrap();
    let out = dir.path().join("out");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&out).unwrap();
    let mut child = tokio::process::Command::new("transmission-cli")
        .arg("-w")
        .arg(&out)
        .arg("-g")
        .arg(&conf)
        .args(["-p", &free_port().to_string(), "-M", "-et"])
        .arg(&torrent)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let target = out.join(format!("{}.mlimg", img.sha256));
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut got = false;
    while Instant::now() < deadline {
        if std::fs::read(&target).is_ok_and(|b| b == bytes) {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill().await;
    server.abort();
    let uploaded = store.seeder_stats().uploaded_bytes;
    store.shutdown().await;
    assert!(got, "transmission did not finish the image (seeder uploaded {uploaded} bytes)");
    assert!(uploaded >= bytes.len() as u64, "the bytes came from our seeder: {uploaded}");
}
