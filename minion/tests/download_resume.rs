//! A download cut by a minion restart continues from the verified bytes in its work directory.

mod download_harness;

use download_harness::*;
use meshlift_minion::download;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_resumes_instead_of_starting_again() {
    let ctl = controller(CtlOpts { seed_upload_limit: Some(1 << 20), ..Default::default() }).await;
    let (img, bytes) = add_image(&ctl, 4 << 20, 8).await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = download::start(job(&ctl, &img, dir.path(), params(20, 60)));
    wait_progress(&mut first, 20, |p| p.have_bytes >= img.size / 3).await;
    let had = first.progress.borrow().have_bytes;
    drop(first); // the minion "restarts"
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let mut second = download::start(job(&ctl, &img, dir.path(), params(20, 60)));
    let path = second.finished().await.expect("resumed download");
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    let p = second.progress.borrow().clone();
    let fetched = p.bt_downloaded_bytes + p.http_downloaded_bytes;
    assert!(fetched <= img.size - had / 2, "fetched {fetched} again after having {had}: {p:?}");
}
