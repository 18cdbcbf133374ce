//! Simulated images and the fake flasher.
//!
//! An image here is a small payload with a real [`Manifest`] and file digest, so the slot
//! metadata, the boot environment's confirmed digests and the agent's checks all see the same
//! kinds of values as on a device. What is faked is the signature check: an image is "bad" by
//! construction ([`ImageKind::BadSignature`]) and the flash refuses it with the same error the
//! real flasher gives ([`meshlift_minion::FlashError`]). The flash itself goes through the
//! minion's [`StandbySlot`] trait in the real flasher's order: invalidate, write, read back and
//! compare, record. A flash takes simulated time: the first half of the bytes is written when it
//! starts, the rest when it ends, so a power cut in between leaves an invalidated slot holding a
//! torn payload, as on a device.

use meshlift_image::{Hook, HookKind, ImageError, Manifest};
use meshlift_minion::boot_env::FailedImage;
use meshlift_minion::slots::{SlotImage, SlotStore, StandbySlot};
use meshlift_minion::{FlashError, FlashedImage, STATE_FORMAT};
use meshlift_protocol::{Sha256Digest, UpgradeImage};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::io::Read;

/// Board of every simulated node.
pub const BOARD: &str = "SIM_BOARD";

/// What an image does once it reaches a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// Verifies, boots, passes its post-boot check.
    Good,
    /// Its signature does not verify: every flash refuses it (FLASH_FAILED), nothing is written.
    BadSignature,
    /// Verifies and boots, but its `post-boot-check` hook fails: every trial falls back.
    FailsTrial,
}

/// One image: the payload, its manifest and the digest of the whole file.
#[derive(Debug, Clone)]
pub struct SimImage {
    pub manifest: Manifest,
    pub payload: Vec<u8>,
    pub file_sha256: Sha256Digest,
    pub kind: ImageKind,
}

impl SimImage {
    /// A deterministic image for `version`: the payload is a function of the version and kind.
    pub fn new(version: &str, kind: ImageKind) -> SimImage {
        let seed = format!("{version}/{kind:?}");
        let payload: Vec<u8> = (0..512u32)
            .map(|i| Sha256::digest(format!("{seed}/{}", i / 32).as_bytes())[(i % 32) as usize])
            .collect();
        let manifest = Manifest {
            name: format!("meshlift-{version}"),
            version: version.to_string(),
            hardware_board_ids: vec![BOARD.to_string()],
            payload_sha256: Sha256Digest(Sha256::digest(&payload).into()),
            payload_size: payload.len() as u64,
            created: 0,
            // Every image carries a post-boot check, so the trial always waits for a hook too.
            hooks: vec![Hook { kind: HookKind::PostBootCheck, content: b"#!/bin/sh\nexit 0\n".to_vec() }],
        };
        let mut file = serde_json::to_vec(&manifest).expect("a manifest serialises: plain data");
        file.extend_from_slice(&payload);
        let file_sha256 = Sha256Digest(Sha256::digest(&file).into());
        SimImage { manifest, payload, file_sha256, kind }
    }

    /// What the controller's image store would announce for it.
    pub fn upgrade_image(&self) -> UpgradeImage {
        UpgradeImage {
            name: self.manifest.version.clone(),
            version: self.manifest.version.clone(),
            magnet_uri: format!("magnet:?xt=urn:btih:{}", self.file_sha256.short()),
            http_uri: format!("http://controller/images/{}.mlimg", self.file_sha256.short()),
            sha256: self.file_sha256,
            size: self.payload.len() as u64,
            hardware_board_ids: vec![BOARD.to_string()],
        }
    }

    /// Slot metadata as the flasher records it.
    pub fn slot_image(&self) -> SlotImage {
        SlotImage {
            format: STATE_FORMAT,
            manifest: self.manifest.clone(),
            file_sha256: self.file_sha256,
            key_id: "sim-key".into(),
            startup_config: None,
            extra: Default::default(),
        }
    }
}

/// The checks the real flasher makes before the first byte is written, then invalidate the
/// standby slot and write the first half of the payload.
pub fn start_flash(
    image: &SimImage,
    failed: &[FailedImage],
    standby: &mut dyn StandbySlot,
) -> Result<(), FlashError> {
    if image.kind == ImageKind::BadSignature {
        return Err(FlashError::Image(ImageError::BadSignature { key_id: "sim-key".into() }));
    }
    if let Some(f) = failed.iter().find(|f| f.sha256 == image.file_sha256) {
        return Err(FlashError::PreviouslyFailed { version: f.version.clone(), reason: f.reason.clone() });
    }
    standby.invalidate()?;
    let half = image.payload.len() / 2;
    standby.write_payload(&mut Cursor::new(&image.payload[..half]), half as u64)?;
    Ok(())
}

/// The rest of the flash: the whole payload, read back and compared, then recorded.
pub fn finish_flash(image: &SimImage, slots: &mut dyn SlotStore) -> Result<FlashedImage, FlashError> {
    let mut standby = slots.standby();
    let len = image.payload.len() as u64;
    standby.write_payload(&mut Cursor::new(image.payload.as_slice()), len)?;
    let mut back = Vec::new();
    standby.read_back()?.take(len).read_to_end(&mut back)?;
    let actual = Sha256Digest(Sha256::digest(&back).into());
    if actual != image.manifest.payload_sha256 {
        return Err(FlashError::ReadBack {
            slot: standby.id().as_str(),
            expected: image.manifest.payload_sha256,
            actual,
        });
    }
    let meta = image.slot_image();
    standby.record(&meta)?;
    Ok(FlashedImage { slot: standby.id(), image: meta })
}
