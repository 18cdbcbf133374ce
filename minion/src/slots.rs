//! The two A/B slots. The running slot is read-only by construction: writing goes through
//! [`StandbySlot`], and a [`SlotStore`] only ever hands out the slot it did not boot from.

use crate::boot_env::BootEnv;
use crate::durable::{format_v1, is_format_v1, is_newer_format, write_atomically, Extra, STATE_FORMAT};
use meshlift_image::Manifest;
use meshlift_protocol::{Sha256Digest, SlotId, SlotReport, SlotsReport};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What a slot holds: the verified manifest (hooks included, so the trial boot can run its
/// `post-boot-check`) and the digest of the image file it came from.
///
/// Unknown fields are kept in `extra` and only a newer `format` is refused: after a fallback the
/// older image's minion reads metadata the newer one wrote. (The manifest itself is the image
/// crate's and still refuses unknown fields: a manifest from a newer image format shows as an
/// unreadable slot.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotImage {
    /// [`crate::durable::STATE_FORMAT`] of the writer; absent in files from before it existed.
    #[serde(default = "format_v1", skip_serializing_if = "is_format_v1")]
    pub format: u32,
    pub manifest: Manifest,
    pub file_sha256: Sha256Digest,
    pub key_id: String,
    /// SHA-256 of the startup configuration written beside this slot
    /// ([`crate::startup_config`]), recorded only after it was read back and matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_config: Option<Sha256Digest>,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Both slots: files ([`FileSlotStore`]) or raw partitions ([`crate::block_slots::BlockSlotStore`]).
pub trait SlotStore {
    /// The slot this process runs from; fixed for the store's lifetime.
    fn booted(&self) -> SlotId;
    /// What `slot` holds; `None` if empty or if a write to it never completed.
    fn image(&self, slot: SlotId) -> Result<Option<SlotImage>, SlotError>;
    /// Reads a slot's payload (for checks and tests; reading the running slot is harmless).
    fn open_payload(&self, slot: SlotId) -> Result<Box<dyn Read + '_>, SlotError>;
    /// The only way to write: the slot that is *not* running.
    fn standby(&mut self) -> Box<dyn StandbySlot + '_>;
}

/// Write access to the standby slot, in the order the flasher uses it.
pub trait StandbySlot {
    fn id(&self) -> SlotId;
    /// Forgets what the slot holds *before* it is overwritten, so that a power cut mid-write
    /// leaves an empty slot, never one whose metadata describes bytes that are not there.
    fn invalidate(&mut self) -> Result<(), SlotError>;
    /// Replaces the payload with `len` bytes from `src`, then fsyncs. Fails if `src` is short.
    fn write_payload(&mut self, src: &mut dyn Read, len: u64) -> Result<(), SlotError>;
    /// Reads the payload back from the medium (the flasher hashes it).
    fn read_back(&self) -> Result<Box<dyn Read + '_>, SlotError>;
    /// Records what the slot now holds; only after a successful read-back.
    fn record(&mut self, image: &SlotImage) -> Result<(), SlotError>;
}

/// A slot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Disk full, permissions, I/O error on the slot medium.
    #[error("slot I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The source ended before `len` bytes: the image file changed or was truncated under us.
    #[error("short write to slot {slot}: source ended after {written} of {expected} bytes")]
    ShortSource { slot: &'static str, written: u64, expected: u64 },
    /// The slot's metadata file is unreadable (edited by hand, or a different version).
    #[error("bad slot metadata {path}: {message}")]
    BadMetadata { path: PathBuf, message: String },
    /// Written by a newer minion in a format whose fields this one could misread; the slot is
    /// treated as unreadable (never booted without checks, overwritten by the next flash).
    #[error("slot metadata {path} has format {found}, newer than the {supported} this minion understands")]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    /// The standby partition is mounted (at `/`: it is the running system). The slot paths in the
    /// config are swapped or wrong, or the bootloader booted another slot than the minion thinks;
    /// nothing was written.
    #[error("slot {path} is mounted at {mount_point}: refusing to write it")]
    Mounted { path: PathBuf, mount_point: String },
    /// The image's payload does not fit the partition; nothing was written.
    #[error("image payload of {len} bytes does not fit slot {path} ({capacity} bytes)")]
    TooLarge { path: PathBuf, len: u64, capacity: u64 },
}

/// `<data>/slots/{a,b}.img` plus `{a,b}.meta.json`.
#[derive(Debug)]
pub struct FileSlotStore {
    dir: PathBuf,
    booted: SlotId,
}

impl FileSlotStore {
    pub fn open(data_dir: &Path, booted: SlotId) -> Result<FileSlotStore, SlotError> {
        let dir = data_dir.join("slots");
        fs::create_dir_all(&dir).map_err(|source| SlotError::Io { path: dir.clone(), source })?;
        Ok(FileSlotStore { dir, booted })
    }

    pub fn payload_path(&self, slot: SlotId) -> PathBuf {
        self.dir.join(format!("{}.img", slot.as_str()))
    }

    fn meta_path(&self, slot: SlotId) -> PathBuf {
        self.dir.join(format!("{}.meta.json", slot.as_str()))
    }
}

impl SlotStore for FileSlotStore {
    fn booted(&self) -> SlotId {
        self.booted
    }

    fn image(&self, slot: SlotId) -> Result<Option<SlotImage>, SlotError> {
        read_meta(&self.meta_path(slot))
    }

    fn open_payload(&self, slot: SlotId) -> Result<Box<dyn Read + '_>, SlotError> {
        let path = self.payload_path(slot);
        let file = File::open(&path).map_err(|source| SlotError::Io { path, source })?;
        Ok(Box::new(file))
    }

    fn standby(&mut self) -> Box<dyn StandbySlot + '_> {
        let slot = self.booted.other();
        Box::new(FileStandby { payload: self.payload_path(slot), meta: self.meta_path(slot), slot })
    }
}

struct FileStandby {
    slot: SlotId,
    payload: PathBuf,
    meta: PathBuf,
}

impl StandbySlot for FileStandby {
    fn id(&self) -> SlotId {
        self.slot
    }

    fn invalidate(&mut self) -> Result<(), SlotError> {
        remove_meta(&self.meta)
    }

    fn write_payload(&mut self, src: &mut dyn Read, len: u64) -> Result<(), SlotError> {
        let io_err = |source| SlotError::Io { path: self.payload.clone(), source };
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).open(&self.payload).map_err(io_err)?;
        let written = io::copy(&mut src.take(len), &mut file).map_err(io_err)?;
        if written != len {
            return Err(SlotError::ShortSource { slot: self.slot.as_str(), written, expected: len });
        }
        file.flush().map_err(io_err)?;
        file.sync_all().map_err(io_err)
    }

    fn read_back(&self) -> Result<Box<dyn Read + '_>, SlotError> {
        let file = File::open(&self.payload)
            .map_err(|source| SlotError::Io { path: self.payload.clone(), source })?;
        Ok(Box::new(file))
    }

    fn record(&mut self, image: &SlotImage) -> Result<(), SlotError> {
        write_meta(&self.meta, image)
    }
}

/// A slot's metadata file: `None` when absent (empty slot, or a write that never completed).
pub(crate) fn read_meta(path: &Path) -> Result<Option<SlotImage>, SlotError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SlotError::Io { path: path.to_path_buf(), source }),
    };
    let image: SlotImage = serde_json::from_slice(&bytes)
        .map_err(|e| SlotError::BadMetadata { path: path.to_path_buf(), message: e.to_string() })?;
    if is_newer_format(image.format) {
        return Err(SlotError::NewerFormat {
            path: path.to_path_buf(),
            found: image.format,
            supported: STATE_FORMAT,
        });
    }
    Ok(Some(image))
}

/// Removes the metadata durably (the directory is fsynced): after a power cut the slot still
/// reads as empty.
pub(crate) fn remove_meta(path: &Path) -> Result<(), SlotError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(SlotError::Io { path: path.to_path_buf(), source }),
    }
    let dir = path.parent().expect("slot metadata lives in the slots directory");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SlotError::Io { path: dir.to_path_buf(), source })
}

pub(crate) fn write_meta(path: &Path, image: &SlotImage) -> Result<(), SlotError> {
    let bytes = serde_json::to_vec_pretty(image).expect("SlotImage serialises: plain data");
    write_atomically(path, &bytes).map_err(|source| SlotError::Io { path: path.to_path_buf(), source })
}

/// Both slots as the controller sees them (VOLTHA DMI `GetSoftwareVersion`): version, digest and
/// whether the image there was confirmed on this node. An unreadable slot reports as empty.
pub fn slots_report(slots: &dyn SlotStore, env: &BootEnv) -> SlotsReport {
    let report = |slot: SlotId| {
        let image = slots.image(slot).ok().flatten();
        let sha256 = image.as_ref().map(|i| i.file_sha256);
        SlotReport {
            slot,
            version: image.map(|i| i.manifest.version),
            confirmed: sha256.is_some() && env.confirmed(slot) == sha256,
            sha256,
        }
    };
    SlotsReport { active: env.active, booted: slots.booted(), a: report(SlotId::A), b: report(SlotId::B) }
}
