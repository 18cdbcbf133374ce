//! Verify, then write the standby slot, then prove the write by reading it back.
//!
//! Blocking (it streams gigabytes); the shell runs it in a blocking task and reports the result to
//! the agent with [`crate::Agent::handle_flash_done`]. Every refusal happens before the first byte
//! reaches the slot.

use crate::boot_env::FailedImage;
use crate::durable::STATE_FORMAT;
use crate::hooks::{run_hook, HookContext, HookError};
use crate::slots::{SlotError, SlotImage, StandbySlot};
use meshlift_image::{verify_file_with, HookKind, ImageError, VerifiedImage, VerifyingKey};
use meshlift_protocol::{Sha256Digest, SlotId};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Everything the flasher needs besides the slot.
#[derive(Debug, Clone)]
pub struct FlashRequest<'a> {
    pub image_path: &'a Path,
    /// From the node's config: only images signed by one of these are written.
    pub trusted_keys: &'a [VerifyingKey],
    pub board: &'a str,
    /// Version running now; `None` for the factory install (nothing to downgrade from).
    pub installed_version: Option<&'a str>,
    pub allow_downgrade: bool,
    /// The file digest the controller announced, if any.
    pub expected_sha256: Option<Sha256Digest>,
    /// The boot environment's failed list: these images are refused.
    pub failed_images: &'a [FailedImage],
    /// Where to run `pre-flash`/`post-flash` hooks; `None` skips them (factory install).
    pub hooks: Option<&'a HookContext>,
}

/// What is now on the standby slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashedImage {
    pub slot: SlotId,
    pub image: SlotImage,
}

impl FlashedImage {
    pub fn version(&self) -> &str {
        &self.image.manifest.version
    }

    pub fn sha256(&self) -> Sha256Digest {
        self.image.file_sha256
    }
}

/// Why nothing (or nothing usable) was written. `Display` is the status reason.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The image itself was refused (unsigned, unknown key, bad signature, truncated, corrupt,
    /// wrong board, downgrade…).
    #[error("image refused: {0}")]
    Image(#[from] ImageError),
    /// This image already failed a trial boot here. An operator must clear it before it is tried
    /// again, otherwise a bad image would loop through reboots.
    #[error("image {version} failed its trial on this node before ({reason}); clear it to retry")]
    PreviouslyFailed { version: String, reason: String },
    /// Writing or reading the slot failed (disk full, I/O error).
    #[error("slot write failed: {0}")]
    Slot(#[from] SlotError),
    /// The slot does not read back what was written: a bad medium, or the image file changed.
    #[error("read-back of slot {slot} does not match: wrote sha256 {expected}, read {actual}")]
    ReadBack { slot: &'static str, expected: Sha256Digest, actual: Sha256Digest },
    /// A `pre-flash` or `post-flash` hook said no.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The image file could not be reopened for the copy.
    #[error("cannot read image file: {0}")]
    Io(#[from] std::io::Error),
}

pub fn verify_and_flash(
    req: &FlashRequest<'_>,
    standby: &mut dyn StandbySlot,
) -> Result<FlashedImage, FlashError> {
    let verified = verify_file_with(req.image_path, req.trusted_keys, req.expected_sha256)?;
    if let Some(failed) = req.failed_images.iter().find(|f| f.sha256 == verified.file_sha256) {
        return Err(FlashError::PreviouslyFailed {
            version: failed.version.clone(),
            reason: failed.reason.clone(),
        });
    }
    verified.check_install(req.board, req.installed_version.unwrap_or("0"), req.allow_downgrade)?;
    if let (Some(ctx), Some(hook)) = (req.hooks, verified.manifest.hook(HookKind::PreFlash)) {
        run_hook(hook, "FLASHING_IMAGE", ctx)?;
    }

    standby.invalidate()?;
    write_and_read_back(req.image_path, &verified, standby)?;
    if let (Some(ctx), Some(hook)) = (req.hooks, verified.manifest.hook(HookKind::PostFlash)) {
        // The slot stays invalidated on failure: nothing is recorded, so nothing can be committed.
        run_hook(hook, "FLASHED", ctx)?;
    }
    let image = SlotImage {
        format: STATE_FORMAT,
        manifest: verified.manifest,
        file_sha256: verified.file_sha256,
        key_id: verified.key_id.0,
        startup_config: None,
        extra: Default::default(),
    };
    standby.record(&image)?;
    Ok(FlashedImage { slot: standby.id(), image })
}

/// First boot of a device whose slot A was written at the factory and is running now (the
/// mounted root, which no one may write): the factory image is verified like any image, and slot
/// A's bytes are read and compared with its payload instead of being written. Only a match is
/// recorded; otherwise the node refuses to start ([`FlashError::ReadBack`]) rather than claim an
/// image it does not run.
pub fn adopt_running(
    req: &FlashRequest<'_>,
    standby: &mut dyn StandbySlot,
) -> Result<FlashedImage, FlashError> {
    let verified = verify_file_with(req.image_path, req.trusted_keys, req.expected_sha256)?;
    verified.check_install(req.board, req.installed_version.unwrap_or("0"), req.allow_downgrade)?;
    read_back_and_compare(&verified, standby)?;
    let image = SlotImage {
        format: STATE_FORMAT,
        manifest: verified.manifest,
        file_sha256: verified.file_sha256,
        key_id: verified.key_id.0,
        startup_config: None,
        extra: Default::default(),
    };
    standby.record(&image)?;
    Ok(FlashedImage { slot: standby.id(), image })
}

fn write_and_read_back(
    path: &Path,
    verified: &VerifiedImage,
    standby: &mut dyn StandbySlot,
) -> Result<(), FlashError> {
    let size = verified.manifest.payload_size;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(verified.payload_offset))?;
    standby.write_payload(&mut file, size)?;
    read_back_and_compare(verified, standby)
}

/// Hashes the first `payload_size` bytes the slot holds and compares them with the manifest.
fn read_back_and_compare(verified: &VerifiedImage, standby: &mut dyn StandbySlot) -> Result<(), FlashError> {
    let size = verified.manifest.payload_size;
    let mut reader = standby.read_back()?.take(size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(FlashError::Io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = Sha256Digest(hasher.finalize().into());
    if actual != verified.manifest.payload_sha256 {
        return Err(FlashError::ReadBack {
            slot: standby.id().as_str(),
            expected: verified.manifest.payload_sha256,
            actual,
        });
    }
    Ok(())
}
