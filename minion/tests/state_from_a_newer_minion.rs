//! After a fallback the older image's minion runs on the files the newer one wrote: boot
//! environment, upgrade state, slot metadata. Fields it does not know are kept (and written back);
//! only a newer format, whose fields it could misread, is refused, with an error and no panic.

mod harness;

use harness::{Node, BOARD};
use meshlift_minion::boot::{self, Factory};
use meshlift_minion::boot_env::BootEnvError;
use meshlift_minion::slots::SlotError;
use meshlift_minion::state::{load_state, StateError};
use meshlift_minion::{slots_report, Bootloader, FileBootloader, FileSlotStore, SlotStore};
use meshlift_protocol::{SlotId, UpgradeStatusType as S};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn edit(path: &Path, f: impl FnOnce(&mut Map<String, Value>)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn read(path: &Path) -> Map<String, Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v.as_object().unwrap().clone()
}

fn keys(map: &Map<String, Value>) -> BTreeSet<&str> {
    map.keys().map(String::as_str).collect()
}

struct Files {
    env: PathBuf,
    state: PathBuf,
    meta_b: PathBuf,
}

/// A node with 2.0.0 flashed on slot B, ready to commit.
fn flashed_node() -> (Node, Files) {
    let mut node = Node::new();
    let img = node.image("v2", "2.0.0", b"rootfs v2.0.0", &[]);
    node.prepare("p1", &img);
    node.finish_download(Ok(img));
    assert_eq!(node.status(), S::Flashed);
    let files = Files {
        env: node.data().join("bootenv.json"),
        state: node.data().join("upgrade_state.json"),
        meta_b: node.data().join("slots/b.meta.json"),
    };
    (node, files)
}

#[test]
fn unknown_fields_are_read_and_survive_the_upgrade_that_rewrites_the_files() {
    let (mut node, files) = flashed_node();
    edit(&files.env, |m| {
        m.insert("boot_counter".into(), json!(3));
    });
    edit(&files.state, |m| {
        m.insert("download_stats".into(), json!({"peers": 4}));
        m["flashed"].as_object_mut().unwrap().insert("slot_offset".into(), json!(4096));
    });
    edit(&files.meta_b, |m| {
        m.insert("written_by".into(), json!("3.1.0"));
    });

    // The minion restarts on those files: it still knows what it flashed.
    node.crash();
    assert_eq!(node.status(), S::Flashed);
    let flashed = node.agent().persisted().flashed.clone().unwrap();
    assert_eq!(flashed.extra["slot_offset"], json!(4096));

    node.commit("c1");
    assert_eq!(node.running_slot, SlotId::B, "the trial boots the flashed slot");
    node.ack();
    assert_eq!(node.status(), S::Confirmed);
    assert_eq!(node.env().active, SlotId::B);

    // Every file was rewritten on the way (arm, confirm, persist) and kept the unknown fields.
    assert_eq!(read(&files.env)["boot_counter"], json!(3));
    assert_eq!(read(&files.state)["download_stats"], json!({"peers": 4}));
    assert_eq!(read(&files.meta_b)["written_by"], json!("3.1.0"));
    let slots = FileSlotStore::open(&node.data(), SlotId::B).unwrap();
    assert_eq!(slots.image(SlotId::B).unwrap().unwrap().manifest.version, "2.0.0");
}

#[test]
fn nested_unknown_fields_in_a_failed_trial_are_kept() {
    let (mut node, files) = flashed_node();
    node.commit("c1");
    assert_eq!(node.status(), S::Trial);
    // A newer minion wrote the attempt with a field of its own, then the trial died silently.
    edit(&files.env, |m| {
        m["attempt"].as_object_mut().unwrap().insert("watchdog".into(), json!("armed"));
    });
    node.crash();
    assert_eq!(node.running_slot, SlotId::A, "back on the old slot");
    assert_eq!(node.status(), S::FellBack);
    let env = node.env();
    assert_eq!(env.failed.len(), 1);
    assert_eq!(env.active, SlotId::A);
}

#[test]
fn files_from_this_build_carry_only_the_fields_older_minions_know() {
    // Minions built before the format field refuse unknown fields: format 1 and an empty `extra`
    // must not appear in the files, or a fallback to such a minion could not read them.
    let (node, files) = flashed_node();
    let env = read(&files.env);
    assert_eq!(
        keys(&env),
        BTreeSet::from(["active", "trial", "attempt", "confirmed_a", "confirmed_b", "failed"])
    );
    let state = read(&files.state);
    assert_eq!(
        keys(&state),
        BTreeSet::from(["status", "flashed", "trial", "recent_requests", "last_fallback"])
    );
    assert_eq!(
        keys(state["flashed"].as_object().unwrap()),
        BTreeSet::from(["slot", "sha256", "version", "upgrade_req_id"])
    );
    assert_eq!(keys(&read(&files.meta_b)), BTreeSet::from(["manifest", "file_sha256", "key_id"]));
    drop(node);
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error() {
    let (node, files) = flashed_node();

    // An explicit format 1 is what an absent one means.
    edit(&files.state, |m| {
        m.insert("format".into(), json!(1));
    });
    assert!(load_state(&files.state).unwrap().is_some());

    edit(&files.state, |m| {
        m.insert("format".into(), json!(2));
    });
    let err = load_state(&files.state).unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, supported: 1, .. }), "{err}");
    assert!(err.to_string().contains("format 2"), "{err}");

    edit(&files.meta_b, |m| {
        m.insert("format".into(), json!(7));
    });
    let slots = FileSlotStore::open(&node.data(), SlotId::A).unwrap();
    let err = slots.image(SlotId::B).unwrap_err();
    assert!(matches!(err, SlotError::NewerFormat { found: 7, .. }), "{err}");
    let report = slots_report(&slots, &node.env());
    assert_eq!(report.b.version, None, "an unreadable slot reports as empty");

    edit(&files.env, |m| {
        m.insert("format".into(), json!(2));
    });
    let err = FileBootloader::new(&node.data()).load().unwrap_err();
    assert!(matches!(err, BootEnvError::NewerFormat { found: 2, supported: 1, .. }), "{err}");
    assert!(err.to_string().contains("newer than the 1 this minion understands"), "{err}");
    // The boot step refuses too: it cannot tell which slot the newer minion meant to boot.
    let factory = node.dir.path().join("factory.mlimg");
    let err = boot::boot(
        &node.data(),
        Factory { image: Some(&factory), trusted_keys: &node.trusted, board: BOARD },
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("format 2"), "{err}");
}
