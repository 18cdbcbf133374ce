//! An HTTP server that sends more than the image: the download is cut off as the extra bytes
//! arrive, never holds or writes more than the image's length, and fails with the reason.

mod download_harness;

use download_harness::raw_http_server;
use meshlift_minion::download::{self, DownloadError, DownloadJob};
use meshlift_protocol::{Sha256Digest, UpgradeReq, UpgradeReqType};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sending_more_than_the_image_is_cut_off() {
    // Connection-delimited and endless: nothing but counting stops it.
    let addr = raw_http_server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 1 << 40).await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "overlong");
    req.sha256 = Some(Sha256Digest([7; 32]));
    req.http_url = Some(format!("http://{addr}/images/x.mlimg"));
    req.image_size = Some(256 << 10);
    req.download_attempts = 2;
    req.torrent_params.download_timeout_s = 30;
    let work_dir = dir.path().join("download");
    let started = Instant::now();
    let mut h = download::start(DownloadJob { req, work_dir: work_dir.clone(), bt_listen: None });
    let err = h.finished().await.expect_err("the body never matches the image");
    let text = err.to_string();
    assert!(matches!(err, DownloadError::AllSourcesFailed(_)), "{text}");
    assert!(text.contains("sent more than the 262144 bytes expected"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    for entry in std::fs::read_dir(&work_dir).unwrap() {
        let len = entry.unwrap().metadata().unwrap().len();
        assert!(len <= 256 << 10, "{len} bytes written for a 256 KiB image");
    }
}
