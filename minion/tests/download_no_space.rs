//! A download that cannot fit is refused before a byte is fetched, with the figures in the reason.

use meshlift_minion::download::{self, policy::FREE_SPACE_MARGIN, DownloadError, DownloadJob};
use meshlift_protocol::{Sha256Digest, UpgradeReq, UpgradeReqType};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_larger_than_the_free_space_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "big");
    req.sha256 = Some(Sha256Digest([7; 32]));
    // Nothing listens here: a download that started would fail much later, and differently.
    req.http_url = Some("http://127.0.0.1:9/images/x.mlimg".into());
    req.image_size = Some(1 << 60);
    req.torrent_params.download_timeout_s = 30;
    let work_dir = dir.path().join("download");
    let started = Instant::now();
    let mut h = download::start(DownloadJob { req, work_dir: work_dir.clone(), bt_listen: None });
    let err = h.finished().await.expect_err("1 EiB does not fit");
    assert!(started.elapsed() < Duration::from_secs(5), "refused before any source was tried");
    match &err {
        DownloadError::NoSpace { dir, free, needed } => {
            assert_eq!(dir, &work_dir);
            assert_eq!(*needed, (1u64 << 60) + FREE_SPACE_MARGIN);
            assert!(free < needed);
        }
        other => panic!("expected NoSpace, got {other}"),
    }
    assert!(err.to_string().starts_with("not enough free space in "), "{err}");
    assert_eq!(std::fs::read_dir(&work_dir).unwrap().count(), 0, "nothing was written");
}
