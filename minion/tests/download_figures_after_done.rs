//! A finished download's figures stay in the status reports until the commit (the controller's
//! per-node `upgrade.bt.*` series), but its receive rate drops to zero: a node that is flashing or
//! waiting for its COMMIT receives nothing, and a frozen rate would show it still downloading.
//! What it sends while it seeds to the rest of the batch goes on counting.

mod harness;

use harness::Node;
use meshlift_protocol::{DownloadProgress, UpgradeStatusType as S};

#[test]
fn rates_drop_to_zero_and_byte_counts_stay_once_the_download_is_done() {
    let mut node = Node::new();
    let img = node.image("p1", "2.0.0", b"rootfs v2.0.0", &[]);
    node.prepare("p1", &img);
    let progress = DownloadProgress {
        total_bytes: 1000,
        have_bytes: 1000,
        bt_downloaded_bytes: 900,
        bt_uploaded_bytes: 300,
        http_downloaded_bytes: 100,
        peers: 3,
        source: "bittorrent".into(),
        seeds: 1,
        connections: 4,
        download_bytes_per_second: 50_000,
        upload_bytes_per_second: 20_000,
    };
    node.with_agent(|a, _| a.handle_download_progress(progress.clone()));
    assert_eq!(node.agent().status().progress.as_ref(), Some(&progress), "reported while downloading");

    node.finish_download(Ok(img));
    assert_eq!(node.status(), S::Flashed);
    let after = node.agent().status().progress.clone().expect("FLASHED keeps the download's figures");
    assert_eq!((after.download_bytes_per_second, after.upload_bytes_per_second), (0, 0));
    assert_eq!(
        (after.bt_downloaded_bytes, after.bt_uploaded_bytes, after.http_downloaded_bytes),
        (900, 300, 100),
        "cumulative byte counts are kept"
    );

    // Seeding to the batch while FLASHED: the upload counts on, the receive figures do not.
    let seeding = DownloadProgress {
        bt_uploaded_bytes: 800,
        upload_bytes_per_second: 30_000,
        download_bytes_per_second: 999,
        bt_downloaded_bytes: 5,
        peers: 2,
        ..progress
    };
    node.with_agent(|a, _| a.handle_download_progress(seeding));
    let p = node.agent().status().progress.clone().expect("figures kept");
    assert_eq!((p.bt_uploaded_bytes, p.upload_bytes_per_second, p.peers), (800, 30_000, 2));
    assert_eq!((p.bt_downloaded_bytes, p.download_bytes_per_second), (900, 0), "{p:?}");
    assert_eq!(node.status(), S::Flashed);
}
