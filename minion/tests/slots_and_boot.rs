//! Slots, boot environment and request handling on real files: power cuts, revert, refusals.

mod harness;

use harness::{Node, BOARD, FACTORY_PAYLOAD};
use meshlift_image::HookKind;
use meshlift_minion::boot::{revert_to_standby, RevertError};
use meshlift_minion::{slots_report, Bootloader, FileBootloader, FileSlotStore};
use meshlift_protocol::{SlotId, UpgradeReq, UpgradeReqType, UpgradeStatusType as S};

#[test]
fn first_boot_installs_factory_image_active_and_confirmed() {
    let node = Node::new();
    let env = node.env();
    assert_eq!(env.active, SlotId::A);
    let slots = FileSlotStore::open(&node.data(), SlotId::A).unwrap();
    let report = slots_report(&slots, &env);
    assert_eq!(report.a.version.as_deref(), Some("1.0.0"));
    assert!(report.a.confirmed);
    assert_eq!(report.b.version, None);
    assert_eq!(node.slot_bytes(SlotId::A), FACTORY_PAYLOAD);
}

#[test]
fn power_cut_during_boot_env_write_keeps_the_old_env() {
    let mut node = Node::new();
    let before = node.env();
    // A write that never reached its rename: a torn temp file next to the real one.
    std::fs::write(node.data().join("bootenv.json.tmp"), b"{\"active\":\"B\",\"tri").unwrap();
    node.crash();
    assert_eq!(node.env(), before);
    assert_eq!(node.running_slot, SlotId::A);
    // The next write does not trip over the leftover (it writes a temp file of its own), and the
    // minion's start, under the data-directory lock, removes it.
    let mut bl = FileBootloader::new(&node.data());
    bl.store(&before).unwrap();
    assert_eq!(node.env(), before);
    assert_eq!(meshlift_minion::remove_stale_temps(&node.data()).unwrap(), 1);
    assert!(!node.data().join("bootenv.json.tmp").exists());
}

#[test]
fn refusals_happen_before_a_byte_reaches_the_slot() {
    let mut node = Node::new();
    let other = Node::new();
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (other.image("foreign", "2.0.0", b"x", &[]), "unknown key"),
        (node.image("old", "0.9.0", b"x", &[]), "older than installed"),
        (
            {
                let p = node.image("short", "2.0.0", &[5u8; 4096], &[]);
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
                p
            },
            "truncated",
        ),
    ];
    std::fs::write(node.data().join("slots/b.img"), b"previous standby content").unwrap();
    for (i, (img, reason)) in cases.into_iter().enumerate() {
        node.prepare(&format!("p{i}"), &img);
        node.finish_download(Ok(img));
        assert_eq!(node.status(), S::FlashFailed);
        assert!(node.agent().status().reason.contains(reason), "{}", node.agent().status().reason);
        assert_eq!(node.slot_bytes(SlotId::B), b"previous standby content");
    }
    // Wrong board is refused from the request already.
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "board");
    req.hardware_board_ids = vec!["other".into()];
    req.sha256 = Some(Default::default());
    req.image_url = Some("magnet:?".into());
    node.request(req);
    assert_eq!(node.status(), S::DownloadFailed);
    assert!(node.agent().status().reason.contains(&format!("this node is {BOARD}")));
    // A downgrade with allow_downgrade is flashed and recorded in the reason.
    let old = node.image("old2", "0.9.0", b"older", &[]);
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "down");
    req.sha256 = Some(meshlift_image::verify_file(&old, &node.trusted).unwrap().file_sha256);
    req.image_url = Some("magnet:?".into());
    req.allow_downgrade = true;
    node.request(req);
    node.finish_download(Ok(old));
    assert_eq!(node.status(), S::Flashed);
    assert!(node.agent().status().reason.contains("downgrade from 1.0.0 to 0.9.0 allowed by request down"));
}

#[test]
fn repeated_and_busy_requests() {
    let mut node = Node::new();
    let img = node.image("new", "2.0.0", b"new", &[]);
    assert!(node.prepare("p1", &img).success);
    let chain_len = node.chain.len();
    let again = node.prepare("p1", &img);
    assert!(again.success && again.message.contains("already handled"));
    assert_eq!(node.chain.len(), chain_len, "a repeat changes nothing");
    let busy = node.prepare("p2", &img);
    assert!(!busy.success && busy.message.contains("a download is running"), "{}", busy.message);
    let busy = node.commit("c1");
    assert!(!busy.success);
    // RESET_STATUS cancels the download and returns to NONE.
    node.request(UpgradeReq::new(UpgradeReqType::ResetStatus, "r1"));
    assert_eq!(node.status(), S::None);
    assert!(node.pending_download.is_none());
    // Commit without a flashed image fails with a reason, never reboots.
    node.commit("c2");
    assert_eq!(node.status(), S::CommitFailed);
    assert_eq!(node.running_slot, SlotId::A);
    assert_eq!(node.boots, 1);
}

#[test]
fn revert_only_to_a_previously_confirmed_image() {
    let mut node = Node::new();
    let img = node.image("new", "2.0.0", b"new", &[(HookKind::PostBootCheck, "#!/bin/sh\nexit 0\n")]);
    node.prepare("p", &img);
    node.finish_download(Ok(img));
    // Standby B holds 2.0.0, never confirmed: refused.
    let slots = FileSlotStore::open(&node.data(), SlotId::A).unwrap();
    let err = revert_to_standby(&mut FileBootloader::new(&node.data()), &slots).unwrap_err();
    assert!(matches!(err, RevertError::NotConfirmed { .. }), "{err}");
    node.commit("c");
    node.ack();
    assert_eq!(node.status(), S::Confirmed);
    // Now running B; standby A holds the factory image, confirmed at first boot: allowed.
    let slots = FileSlotStore::open(&node.data(), SlotId::B).unwrap();
    assert_eq!(revert_to_standby(&mut FileBootloader::new(&node.data()), &slots).unwrap(), SlotId::A);
    node.crash();
    assert_eq!(node.running_slot, SlotId::A);
    let report = slots_report(&FileSlotStore::open(&node.data(), SlotId::A).unwrap(), &node.env());
    assert!(report.a.confirmed && report.b.confirmed);
}

#[test]
fn flashed_survives_restart_only_while_the_slot_holds_it() {
    let mut node = Node::new();
    let img = node.image("new", "2.0.0", b"new", &[]);
    node.prepare("p", &img);
    node.finish_download(Ok(img));
    node.crash();
    assert_eq!(node.status(), S::Flashed);
    std::fs::remove_file(node.data().join("slots/b.meta.json")).unwrap();
    node.crash();
    assert_eq!(node.status(), S::None);
    node.commit("c");
    assert_eq!(node.status(), S::CommitFailed);
}

#[test]
fn the_same_request_after_a_failure_is_a_retry() {
    let mut node = Node::new();
    let img = node.image("new", "2.0.0", b"new", &[]);
    assert!(node.prepare("p1", &img).success);
    node.finish_download(Err("swarm and HTTP both unreachable".into()));
    assert_eq!(node.status(), S::DownloadFailed);
    // The controller retries under the same request id: a new attempt, not a duplicate.
    let again = node.prepare("p1", &img);
    assert!(again.success && !again.message.contains("already handled"), "{}", again.message);
    assert_eq!(node.status(), S::DownloadingImage);
    node.finish_download(Ok(img));
    assert_eq!(node.status(), S::Flashed);
}
