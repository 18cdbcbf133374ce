//! The `upgrade.bt.*` figures a minion reports while it downloads (seed 003): seeds, peers and
//! connections from librqbit's live stats over the swarm, rates from the bytes received over a
//! few seconds; over HTTP a rate and no swarm figures.

mod download_harness;

use download_harness::*;
use meshlift_minion::download;
use meshlift_protocol::DownloadProgress;
use std::cell::RefCell;

/// The largest value each figure reached while `h` downloaded `size` bytes.
async fn peaks(h: &mut download::DownloadHandle, size: u64) -> DownloadProgress {
    let peak = RefCell::new(DownloadProgress::default());
    wait_progress(h, 30, |p| {
        let mut m = peak.borrow_mut();
        m.seeds = m.seeds.max(p.seeds);
        m.peers = m.peers.max(p.peers);
        m.connections = m.connections.max(p.connections);
        m.download_bytes_per_second = m.download_bytes_per_second.max(p.download_bytes_per_second);
        p.have_bytes >= size
    })
    .await;
    peak.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_swarm_the_seeder_counts_as_a_seed_and_the_rate_follows_its_limit() {
    // 4 MiB at 1 MiB/s: about four seconds of live figures.
    let ctl = controller(CtlOpts { seed_upload_limit: Some(1 << 20), ..Default::default() }).await;
    let (img, _) = add_image(&ctl, 4 << 20, 7).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = download::start(job(&ctl, &img, dir.path(), params(10, 60)));
    let peak = peaks(&mut h, img.size).await;
    h.finished().await.expect("download");
    eprintln!("peaks: {peak:?}");
    assert!(peak.seeds >= 1, "the controller's seeder holds every piece: {peak:?}");
    assert!(peak.peers >= peak.seeds && peak.connections >= peak.peers, "{peak:?}");
    // Under a 1 MiB/s limit: well above nothing, well below 4 MiB/s (librqbit's own estimator
    // read 10.8 MB/s here, which is why the minion measures the rate itself).
    let rate = peak.download_bytes_per_second;
    assert!((100 << 10..4 << 20).contains(&rate), "peak rate {rate} B/s");
    assert_eq!(h.progress.borrow().source, "bittorrent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_http_the_rate_comes_from_the_bytes_and_there_is_no_swarm() {
    let ctl = controller(CtlOpts::default()).await;
    let (img, bytes) = add_image(&ctl, 4 << 20, 8).await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = job(&ctl, &img, dir.path(), params(10, 60));
    j.req.image_url = None; // no magnet: HTTP only
    let mut h = download::start(j);
    let peak = peaks(&mut h, img.size).await;
    let path = h.finished().await.expect("download over HTTP");
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert!(peak.download_bytes_per_second > 0, "{peak:?}");
    assert_eq!((peak.seeds, peak.peers, peak.connections), (0, 0, 0), "{peak:?}");
    let last = h.progress.borrow().clone();
    assert_eq!((last.source.as_str(), last.download_bytes_per_second), ("http", 0), "done: {last:?}");
    assert_eq!(last.http_downloaded_bytes, img.size);
}
