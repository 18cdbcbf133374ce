//! Shared harness for the downloader tests: a controller image store (seeder + embedded tracker +
//! HTTP routes) on 127.0.0.1, images of random bytes, and download jobs pointing at it.
#![allow(dead_code)]

use meshlift_controller::dist::{router, DistConfig, ImageStore, ImageVerifier, VerifiedImageInfo};
use meshlift_minion::download::DownloadJob;
use meshlift_protocol::{TorrentParams, UpgradeImage, UpgradeReq, UpgradeReqType};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Accepts any file; names it after its sha256 (these tests are about transport, not format).
pub struct OpaqueVerifier;

impl ImageVerifier for OpaqueVerifier {
    fn verify(&self, path: &Path) -> Result<VerifiedImageInfo, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let name = format!("test-{}", &hex::encode(Sha256::digest(&bytes))[..12]);
        Ok(VerifiedImageInfo { name: name.clone(), version: name, hardware_board_ids: vec!["test".into()] })
    }
}

pub struct Controller {
    pub store: ImageStore,
    pub http_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Controller {
    /// Stop the HTTP server (image serving and the embedded tracker); the seeder keeps running.
    pub fn stop_http(&self) {
        self.server.abort();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Default)]
pub struct CtlOpts {
    pub seed_upload_limit: Option<u32>,
    /// Use this tracker URL instead of the embedded one.
    pub tracker_url: Option<String>,
}

pub async fn controller(opts: CtlOpts) -> Controller {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = listener.local_addr().unwrap();
    let mut cfg = DistConfig::new(
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        format!("http://{http_addr}"),
        Arc::new(OpaqueVerifier),
    );
    cfg.min_free_bytes = 0;
    cfg.announce_interval = Duration::from_secs(2);
    cfg.tracker_url = opts.tracker_url;
    cfg.seed_upload_limit = opts.seed_upload_limit.and_then(std::num::NonZeroU32::new);
    let store = ImageStore::open(dir.path().join("images"), cfg).await.unwrap();
    let app = router(store.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Controller { store, http_addr, dir, server }
}

/// Write `size` pseudo-random bytes to a file in `dir` and add it to the store.
pub async fn add_image(ctl: &Controller, size: usize, seed: u64) -> (UpgradeImage, Vec<u8>) {
    let bytes = image_bytes(size, seed);
    let src = ctl.dir.path().join(format!("src-{seed}.mlimg"));
    std::fs::write(&src, &bytes).unwrap();
    let img = ctl.store.add(src.to_str().unwrap()).await.unwrap();
    (img, bytes)
}

pub fn image_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    let mut block: [u8; 32] = Sha256::digest(seed.to_le_bytes()).into();
    while out.len() < size {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(size);
    out
}

/// A port for a BitTorrent listener: below the ephemeral range, free when probed.
pub fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn params(stall_s: u64, timeout_s: u64) -> TorrentParams {
    TorrentParams { download_timeout_s: timeout_s, bt_stall_timeout_s: stall_s, ..Default::default() }
}

pub fn job(ctl: &Controller, img: &UpgradeImage, work_dir: &Path, params: TorrentParams) -> DownloadJob {
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "test");
    req.sha256 = Some(img.sha256);
    req.image_name = Some(img.name.clone());
    req.image_url = Some(img.magnet_uri.clone());
    req.http_url = Some(img.http_uri.clone());
    req.image_size = Some(img.size);
    req.torrent_params = params;
    req.initial_peers = ctl.store.initial_peers();
    req.download_attempts = 2;
    DownloadJob {
        req,
        work_dir: work_dir.to_path_buf(),
        bt_listen: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
    }
}

/// Wait until `f(progress)` holds, or panic after `secs`.
pub async fn wait_progress(
    h: &mut meshlift_minion::download::DownloadHandle,
    secs: u64,
    f: impl Fn(&meshlift_protocol::DownloadProgress) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f(&h.progress.borrow()) {
            return;
        }
        if tokio::time::timeout_at(deadline, h.progress.changed()).await.is_err() {
            panic!("progress condition not reached: {:?}", *h.progress.borrow());
        }
    }
}

/// A stand-in for the controller's HTTP server that answers every request with `head` and then
/// `body_len` bytes (whatever was asked): for servers that send more than they announce.
pub async fn raw_http_server(head: &'static str, body_len: u64) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![0x5a; 64 << 10];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len() as u64);
                    if conn.write_all(&chunk[..n as usize]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}
