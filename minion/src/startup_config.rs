//! The startup configuration that goes with an image (DMI `UpdateStartupConfiguration`,
//! Terragraph's `nextNodeConfigJson`): one document per slot, made active only when that slot
//! boots.
//!
//! Files (data directory, whatever the slot backend):
//! - `slots/<slot>.config`: the document delivered with the PREPARE that wrote `<slot>`; its
//!   SHA-256 is recorded in the slot's metadata ([`SlotImage::startup_config`]) only after the
//!   bytes on disk were read back and matched the digest the controller sent, so a slot is never
//!   marked prepared with a configuration that is not the one asked for.
//! - `startup-config`: the running slot's document (JSON or TOML text, as the operator wrote it),
//!   rewritten at every start by [`activate`]. Services on the node read this file. A fallback or
//!   a revert boots the other slot, and with it that slot's own document: the old configuration
//!   comes back with the old image, never the new configuration with the old image.

use crate::durable::write_atomically;
use crate::slots::{SlotError, SlotImage, SlotStore, StandbySlot};
use meshlift_protocol::{Sha256Digest, SlotId, StartupConfig, MAX_STARTUP_CONFIG};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the running configuration in the data directory.
pub const ACTIVE_FILE: &str = "startup-config";

/// Why a startup configuration was refused or could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum StartupConfigError {
    /// The controller sent a document whose digest does not match its text: corrupted in
    /// transit or a controller bug. The PREPARE is refused; retrying sends it again.
    #[error("startup configuration refused: its sha256 is {actual}, the request says {expected}")]
    DigestMismatch { expected: Sha256Digest, actual: Sha256Digest },
    /// Larger than [`MAX_STARTUP_CONFIG`]: refused before it reaches the disk.
    #[error("startup configuration of {len} bytes refused (limit {MAX_STARTUP_CONFIG})")]
    TooLarge { len: usize },
    /// Disk full, permissions: the slot is left unprepared.
    #[error("startup configuration file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Slot(#[from] SlotError),
}

/// SHA-256 of a document's bytes.
pub fn digest(text: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(text).into())
}

/// The integrity check of a delivered document, before anything is written: size bound, then
/// digest.
pub fn check(config: &StartupConfig) -> Result<(), StartupConfigError> {
    if config.text.len() > MAX_STARTUP_CONFIG {
        return Err(StartupConfigError::TooLarge { len: config.text.len() });
    }
    let actual = digest(config.text.as_bytes());
    if actual != config.sha256 {
        return Err(StartupConfigError::DigestMismatch { expected: config.sha256, actual });
    }
    Ok(())
}

/// `<data>/slots/<slot>.config`.
pub fn slot_path(data_dir: &Path, slot: SlotId) -> PathBuf {
    data_dir.join("slots").join(format!("{}.config", slot.as_str()))
}

/// `<data>/startup-config`.
pub fn active_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ACTIVE_FILE)
}

/// After the flasher recorded `image` on the standby slot: write the slot's document (or remove
/// the old one when the PREPARE carried none), read it back, check its digest, and record the
/// digest in the slot's metadata. On any failure the standby slot is invalidated, so nothing that
/// lacks its configuration can be committed or reverted to.
pub fn attach(
    data_dir: &Path,
    standby: &mut dyn StandbySlot,
    image: &mut SlotImage,
    config: Option<&StartupConfig>,
) -> Result<(), StartupConfigError> {
    let result = write_slot(data_dir, standby.id(), config);
    match result {
        Ok(digest) => {
            image.startup_config = digest;
            standby.record(image)?;
            Ok(())
        }
        Err(e) => {
            if let Err(inv) = standby.invalidate() {
                tracing::error!(error = %inv, "cannot invalidate the standby slot after a configuration failure");
            }
            Err(e)
        }
    }
}

fn write_slot(
    data_dir: &Path,
    slot: SlotId,
    config: Option<&StartupConfig>,
) -> Result<Option<Sha256Digest>, StartupConfigError> {
    let path = slot_path(data_dir, slot);
    let io_err = |source| StartupConfigError::Io { path: path.clone(), source };
    let Some(config) = config else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
            _ => return Ok(None),
        }
    };
    check(config)?;
    write_atomically(&path, config.text.as_bytes()).map_err(io_err)?;
    let back = read_bounded(&path).map_err(io_err)?;
    let actual = digest(&back);
    if actual != config.sha256 {
        return Err(StartupConfigError::DigestMismatch { expected: config.sha256, actual });
    }
    Ok(Some(config.sha256))
}

/// At start, after the boot step: make the booted slot's document the running one
/// (`<data>/startup-config`), or remove that file when the slot has none. Returns the digest of
/// the running document. A slot document that does not match the digest in the slot's metadata
/// (edited or damaged on disk) is not made active: the file is removed and the error returned,
/// so the node reports that it runs no configuration rather than one nobody sent.
pub fn activate(data_dir: &Path, slots: &dyn SlotStore) -> Result<Option<Sha256Digest>, StartupConfigError> {
    let booted = slots.booted();
    let active = active_path(data_dir);
    let want = slots.image(booted)?.and_then(|i| i.startup_config);
    let remove_active = || match std::fs::remove_file(&active) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StartupConfigError::Io { path: active.clone(), source: e })
        }
        _ => Ok(()),
    };
    let Some(want) = want else {
        remove_active()?;
        return Ok(None);
    };
    let path = slot_path(data_dir, booted);
    let text = read_bounded(&path).map_err(|source| StartupConfigError::Io { path: path.clone(), source })?;
    let actual = digest(&text);
    if actual != want {
        remove_active()?;
        return Err(StartupConfigError::DigestMismatch { expected: want, actual });
    }
    let current = read_bounded(&active).ok();
    if current.as_deref() != Some(text.as_slice()) {
        write_atomically(&active, &text)
            .map_err(|source| StartupConfigError::Io { path: active.clone(), source })?;
    }
    Ok(Some(want))
}

/// Reads at most one byte more than [`MAX_STARTUP_CONFIG`]: a file grown on disk cannot make us
/// allocate without bound, and its digest simply will not match.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(MAX_STARTUP_CONFIG as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::FileSlotStore;

    fn doc(text: &str) -> StartupConfig {
        StartupConfig { text: text.into(), sha256: digest(text.as_bytes()), version: 1 }
    }

    /// A slot image as the flasher records it (manifest contents do not matter here).
    fn image() -> SlotImage {
        serde_json::from_value(serde_json::json!({
            "manifest": {
                "name": "os", "version": "1.0.0", "hardware_board_ids": ["sim"],
                "payload_size": 0, "payload_sha256": Sha256Digest::default(), "hooks": [], "created": 0
            },
            "file_sha256": Sha256Digest::default(),
            "key_id": "k"
        }))
        .expect("a valid slot image")
    }

    #[test]
    fn a_document_whose_digest_does_not_match_is_refused() {
        let mut bad = doc("{\"radio\": {\"channel\": 2}}");
        bad.sha256 = digest(b"something else");
        assert!(matches!(check(&bad), Err(StartupConfigError::DigestMismatch { .. })));
        let big = doc(&"x".repeat(MAX_STARTUP_CONFIG + 1));
        assert!(matches!(check(&big), Err(StartupConfigError::TooLarge { .. })));
        assert!(check(&doc("channel = 2\n")).is_ok());
    }

    #[test]
    fn each_slot_keeps_its_own_document_and_the_booted_one_is_active() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        // Booted from A: B is the standby; it gets the new document.
        let mut from_a = FileSlotStore::open(data, SlotId::A).unwrap();
        let mut img = image();
        attach(data, from_a.standby().as_mut(), &mut img, Some(&doc("channel = 2\n"))).unwrap();
        assert_eq!(activate(data, &from_a).unwrap(), None, "slot A has no document yet");
        assert!(!active_path(data).exists());

        // Boot B: its document becomes the running one.
        let from_b = FileSlotStore::open(data, SlotId::B).unwrap();
        assert_eq!(activate(data, &from_b).unwrap(), Some(digest(b"channel = 2\n")));
        assert_eq!(std::fs::read_to_string(active_path(data)).unwrap(), "channel = 2\n");

        // Boot A again (a fallback, a revert): A's (empty) configuration comes back.
        assert_eq!(activate(data, &from_a).unwrap(), None);
        assert!(!active_path(data).exists());
    }

    #[test]
    fn a_slot_document_changed_on_disk_is_not_made_active() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let mut from_a = FileSlotStore::open(data, SlotId::A).unwrap();
        let mut img = image();
        attach(data, from_a.standby().as_mut(), &mut img, Some(&doc("channel = 2\n"))).unwrap();
        std::fs::write(slot_path(data, SlotId::B), "channel = 666\n").unwrap();
        let from_b = FileSlotStore::open(data, SlotId::B).unwrap();
        assert!(matches!(activate(data, &from_b), Err(StartupConfigError::DigestMismatch { .. })));
        assert!(!active_path(data).exists());
    }
}
