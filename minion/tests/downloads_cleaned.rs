//! The download directory is emptied once no upgrade needs its files: after CONFIRMED, FELL_BACK
//! and RESET_STATUS (and again at the next start if a crash came first). A failed download keeps
//! its files for the controller's retry.

mod harness;

use harness::{Faults, Node};
use meshlift_image::HookKind;
use meshlift_protocol::{UpgradeReq, UpgradeReqType, UpgradeStatusType as S};
use std::path::PathBuf;

/// PREPARE, with the image "downloaded" into the download directory as the downloader would.
fn downloaded(node: &mut Node, id: &str, hooks: &[(HookKind, &str)]) -> PathBuf {
    let img = node.image(id, "2.0.0", b"rootfs v2.0.0", hooks);
    node.prepare(id, &img);
    std::fs::create_dir_all(node.download_dir()).unwrap();
    let in_download_dir = node.download_dir().join("image.mlimg");
    std::fs::copy(&img, &in_download_dir).unwrap();
    std::fs::write(node.download_dir().join("image.torrent"), b"metadata").unwrap();
    in_download_dir
}

#[test]
fn confirmed_empties_the_download_directory() {
    let mut node = Node::new();
    let img = downloaded(&mut node, "p1", &[]);
    node.finish_download(Ok(img));
    assert_eq!(node.status(), S::Flashed);
    assert!(node.download_dir().exists(), "FLASHED keeps the image (it seeds the batch)");
    node.commit("c1");
    assert_eq!(node.status(), S::Trial);
    node.ack();
    assert_eq!(node.status(), S::Confirmed);
    assert!(!node.download_dir().exists());
}

#[test]
fn fell_back_empties_the_download_directory() {
    let mut node = Node::new();
    let img = downloaded(&mut node, "p1", &[(HookKind::PostBootCheck, "#!/bin/sh\necho no radio\nexit 1\n")]);
    node.finish_download(Ok(img));
    node.commit("c1");
    assert_eq!(node.status(), S::FellBack);
    assert!(!node.download_dir().exists());
}

#[test]
fn reset_empties_the_download_directory_and_a_failed_download_keeps_it() {
    let mut node = Node::new();
    downloaded(&mut node, "p1", &[]);
    node.finish_download(Err("no source could deliver the image".into()));
    assert_eq!(node.status(), S::DownloadFailed);
    assert!(node.download_dir().join("image.mlimg").exists(), "kept for the retry to resume");

    node.prepare("p1", &node.dir.path().join("p1.mlimg"));
    assert_eq!(node.status(), S::DownloadingImage);
    node.request(UpgradeReq::new(UpgradeReqType::ResetStatus, "r1"));
    assert_eq!(node.status(), S::None);
    assert!(node.pending_download.is_none(), "the download was stopped");
    assert!(!node.download_dir().exists());
}

#[test]
fn a_crash_before_the_cleanup_cleans_at_the_next_start() {
    let mut node = Node::new();
    let img = downloaded(&mut node, "p1", &[]);
    node.finish_download(Ok(img));
    node.commit("c1");
    node.faults = Faults { crash_at: Some("CleanDownloads"), crash_times: 1, ..Faults::default() };
    node.ack();
    assert_eq!(node.status(), S::Confirmed);
    assert_eq!(node.boots, 3, "factory boot, trial boot, restart after the crash");
    assert!(!node.download_dir().exists());
}
