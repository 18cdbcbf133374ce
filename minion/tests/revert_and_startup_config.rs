//! REVERT_TO_STANDBY and the startup configuration kept per slot, through the agent with real
//! files: the boot step, file-backed slots and boot environment, the real flasher, and the same
//! `startup_config` calls the minion binary makes.

mod harness;

use harness::{Node, FACTORY_PAYLOAD};
use meshlift_image::HookKind;
use meshlift_minion::startup_config::{active_path, digest};
use meshlift_minion::{slots_report, FileSlotStore, NodeFacts};
use meshlift_protocol::{SlotId, StartupConfig, UpgradeReq, UpgradeReqType, UpgradeStatusType as S};
use std::path::Path;

const V2: &[u8] = b"rootfs v2.0.0 with the new radio stack";
const V3: &[u8] = b"rootfs v3.0.0 that breaks the radio";
const FAIL: &str = "#!/bin/sh\necho radio firmware mismatch\nexit 3\n";

fn doc(text: &str) -> StartupConfig {
    StartupConfig { text: text.into(), sha256: digest(text.as_bytes()), version: 1 }
}

fn prepare_with(node: &mut Node, id: &str, image: &Path, config: Option<StartupConfig>) {
    let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, id);
    req.sha256 = Some(meshlift_image::verify_file(image, &node.trusted).unwrap().file_sha256);
    req.image_url = Some(format!("file://{}", image.display()));
    req.startup_config = config;
    assert!(node.request(req).success);
    if node.status() == S::DownloadingImage {
        node.finish_download(Ok(image.to_path_buf()));
    }
}

fn upgrade(node: &mut Node, id: &str, image: &Path, config: Option<StartupConfig>) {
    prepare_with(node, &format!("{id}-prep"), image, config);
    assert_eq!(node.status(), S::Flashed, "{:?}", node.agent().status());
    assert!(node.commit(&format!("{id}-commit")).success);
    node.ack();
}

fn revert(node: &mut Node, id: &str) -> meshlift_protocol::Ack {
    node.request(UpgradeReq::new(UpgradeReqType::RevertToStandby, id))
}

/// The digest the node puts in its status reports.
fn reported_config(node: &mut Node) -> Option<meshlift_protocol::Sha256Digest> {
    let slots = FileSlotStore::open(&node.data(), node.running_slot).unwrap();
    let report = slots_report(&slots, &node.env());
    let facts = NodeFacts { mac: "m".into(), boot_id: "b".into(), hardware_board_id: "sim".into() };
    let now = node.now;
    node.agent().status_report(&facts, report, None, 1, now).startup_config
}

#[test]
fn revert_is_refused_on_an_empty_or_never_confirmed_standby() {
    let mut node = Node::new();
    let ack = revert(&mut node, "revert-1");
    assert!(ack.success, "{ack:?}");
    assert_eq!(node.status(), S::CommitFailed);
    assert_eq!(node.agent().status().reason, "standby slot b is empty: nothing to revert to");

    // v2 written to slot B but never booted: not trusted to boot without a trial.
    let v2 = node.image("v2", "2.0.0", V2, &[]);
    prepare_with(&mut node, "prep-2", &v2, None);
    assert_eq!(node.status(), S::Flashed);
    revert(&mut node, "revert-2");
    assert_eq!(node.status(), S::CommitFailed);
    assert_eq!(
        node.agent().status().reason,
        "standby slot b holds 2.0.0, never confirmed on this node: revert refused"
    );
    // Nothing changed on the node: same slot, same bytes, same boot environment.
    assert_eq!(node.boots, 1);
    assert_eq!((node.running_slot, node.env().active), (SlotId::A, SlotId::A));
    assert_eq!(node.slot_bytes(SlotId::A), FACTORY_PAYLOAD);
}

#[test]
fn revert_after_an_upgrade_boots_the_old_slot_without_a_trial() {
    let mut node = Node::new();
    let v2 = node.image("v2", "2.0.0", V2, &[]);
    upgrade(&mut node, "up-2", &v2, None);
    assert_eq!(node.status(), S::Confirmed);
    assert_eq!(node.running_slot, SlotId::B);

    let boots = node.boots;
    assert!(revert(&mut node, "revert-3").success);
    assert_eq!(node.boots, boots + 1, "one reboot");
    assert_eq!((node.running_slot, node.env().active), (SlotId::A, SlotId::A));
    assert!(node.env().attempt.is_none() && node.env().trial.is_none(), "no trial was armed");
    assert_eq!(node.status(), S::None);
    let st = node.agent().status().clone();
    assert_eq!(st.upgrade_req_id, "revert-3");
    assert!(st.reason.contains("reverted to slot a (1.0.0) without a trial"), "{}", st.reason);
    assert_eq!(&node.chain[node.chain.len() - 2..], &[S::Rebooting, S::None]);

    // And back again: v2 in slot B was confirmed here, so it may be reverted to as well.
    assert!(revert(&mut node, "revert-4").success);
    assert_eq!((node.running_slot, node.env().active), (SlotId::B, SlotId::B));
}

#[test]
fn each_slot_keeps_its_configuration_and_a_fallback_brings_the_old_one_back() {
    let mut node = Node::new();
    assert_eq!(reported_config(&mut node), None, "the factory image came without a configuration");
    let v2 = node.image("v2", "2.0.0", V2, &[]);
    let c2 = doc("{\"radio\": {\"channel\": 2}}\n");
    upgrade(&mut node, "up-2", &v2, Some(c2.clone()));
    assert_eq!(node.status(), S::Confirmed);
    assert_eq!(std::fs::read_to_string(active_path(&node.data())).unwrap(), c2.text);
    assert_eq!(reported_config(&mut node), Some(c2.sha256));

    // v3 with its own configuration fails its post-boot check: the node falls back to v2 and
    // to v2's configuration, not v3's.
    let v3 = node.image("v3", "3.0.0", V3, &[(HookKind::PostBootCheck, FAIL)]);
    let c3 = doc("{\"radio\": {\"channel\": 3}}\n");
    prepare_with(&mut node, "prep-3", &v3, Some(c3.clone()));
    assert_eq!(node.status(), S::Flashed);
    assert_eq!(
        std::fs::read_to_string(active_path(&node.data())).unwrap(),
        c2.text,
        "not active before it boots"
    );
    assert!(node.commit("commit-3").success);
    assert_eq!(node.status(), S::FellBack, "{:?}", node.agent().status());
    assert_eq!(node.running_slot, SlotId::B);
    assert_eq!(std::fs::read_to_string(active_path(&node.data())).unwrap(), c2.text);
    assert_eq!(reported_config(&mut node), Some(c2.sha256));

    // A revert to the factory image brings back its (empty) configuration.
    let mut node2 = Node::new();
    let v2 = node2.image("v2", "2.0.0", V2, &[]);
    upgrade(&mut node2, "up-2", &v2, Some(c2.clone()));
    assert!(revert(&mut node2, "revert-5").success);
    assert_eq!(node2.running_slot, SlotId::A);
    assert!(!active_path(&node2.data()).exists());
    assert_eq!(reported_config(&mut node2), None);
}

#[test]
fn a_configuration_whose_digest_does_not_match_refuses_the_prepare() {
    let mut node = Node::new();
    let v2 = node.image("v2", "2.0.0", V2, &[]);
    let mut bad = doc("{\"radio\": {\"channel\": 2}}\n");
    bad.sha256 = digest(b"what the controller meant to send");
    prepare_with(&mut node, "prep-bad", &v2, Some(bad));
    assert_eq!(node.status(), S::DownloadFailed);
    assert!(node.agent().status().reason.starts_with("startup configuration refused: its sha256 is"));
    assert!(node.slot_bytes(SlotId::B).is_empty(), "nothing was written");
}
