//! What the downloader does when parts of the controller are down.

mod download_harness;

use download_harness::*;
use meshlift_minion::download::{self, DownloadError};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeder_killed_mid_download_http_completes_from_where_bt_stopped() {
    let ctl = controller(CtlOpts { seed_upload_limit: Some(1 << 20), ..Default::default() }).await;
    let (img, bytes) = add_image(&ctl, 4 << 20, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(2, 60)));
    wait_progress(&mut h, 20, |p| p.have_bytes >= img.size / 4).await;
    ctl.store.shutdown().await;
    let path = h.finished().await.expect("HTTP fallback");
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    let p = h.progress.borrow().clone();
    assert_eq!(p.source, "http");
    assert!(p.bt_downloaded_bytes >= img.size / 4, "{p:?}");
    assert!(p.http_downloaded_bytes > 0, "{p:?}");
    assert!(
        p.http_downloaded_bytes <= img.size - img.size / 4,
        "HTTP re-fetched verified swarm bytes: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tracker_down_initial_peer_still_serves() {
    let dead = format!("http://127.0.0.1:{}/announce", free_port());
    let ctl = controller(CtlOpts { tracker_url: Some(dead), ..Default::default() }).await;
    let (img, bytes) = add_image(&ctl, 2 << 20, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(10, 30)));
    let path = h.finished().await.expect("download through the initial peer");
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    let p = h.progress.borrow().clone();
    assert_eq!((p.source.as_str(), p.http_downloaded_bytes), ("bittorrent", 0), "{p:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_down_bittorrent_still_works() {
    let ctl = controller(CtlOpts::default()).await;
    let (img, bytes) = add_image(&ctl, 2 << 20, 4).await;
    ctl.stop_http(); // image serving and the embedded tracker
    let dir = tempfile::tempdir().unwrap();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(10, 30)));
    let path = h.finished().await.expect("download over BitTorrent");
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert_eq!(h.progress.borrow().http_downloaded_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_down_fails_with_reasons_for_each_source() {
    let ctl = controller(CtlOpts::default()).await;
    let (img, _) = add_image(&ctl, 1 << 20, 5).await;
    ctl.stop_http();
    ctl.store.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(1, 30)));
    let err = h.finished().await.expect_err("nothing can serve the image");
    let text = err.to_string();
    assert!(matches!(err, DownloadError::AllSourcesFailed(_)), "{text}");
    assert!(text.contains("BitTorrent: no peer sent the torrent metadata within 1 s"), "{text}");
    assert!(text.contains("HTTP: ") && text.contains("after 2 attempts"), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(2), "stall timeout + backoff not honoured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overall_timeout_is_reported() {
    let ctl = controller(CtlOpts { seed_upload_limit: Some(256 << 10), ..Default::default() }).await;
    let (img, _) = add_image(&ctl, 4 << 20, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(30, 2)));
    let err = h.finished().await.expect_err("4 MiB at 256 KiB/s cannot finish in 2 s");
    assert!(matches!(err, DownloadError::Timeout(2)), "{err}");
}
