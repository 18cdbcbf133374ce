//! What U-Boot does at power-on, and the few boot-environment changes the minion makes.
//!
//! The minion binary calls [`boot`] first thing at start, before it talks to anyone. Every
//! function here is one read-modify-write of the boot environment, so each is atomic.

use crate::boot_env::{BootEnv, BootEnvError, Bootloader, FailedImage, FileBootloader, TrialAttempt};
use crate::flasher::{verify_and_flash, FlashError, FlashRequest};
use crate::slots::{FileSlotStore, SlotError, SlotStore};
use meshlift_image::VerifyingKey;
use meshlift_protocol::{Sha256Digest, SlotId};
use std::path::Path;

/// Reason recorded when a trial never confirmed and left no word (crash, hang, power cut, or a
/// watchdog reboot).
pub const SILENT_TRIAL_FAILURE: &str = "rebooted before the trial was confirmed";

/// The result of the boot step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOutcome {
    /// The slot this process now runs from.
    pub booted: SlotId,
    /// Booted a trial slot (one shot): post-boot checks must confirm it or fall back.
    pub trial: bool,
    /// A trial that failed and was noticed at this boot (report `FELL_BACK` with its reason).
    pub fallback: Option<FailedImage>,
    /// Slot A was just filled from the factory image.
    pub first_boot: bool,
    /// The environment after the boot step.
    pub env: BootEnv,
}

/// Why the node cannot boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    BootEnv(#[from] BootEnvError),
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// First boot without `factory_image` in the config: there is nothing to run.
    #[error("no boot environment and no factory_image configured: nothing to boot")]
    NoFactoryImage,
    /// The factory image was refused (same checks as any image).
    #[error("factory image refused: {0}")]
    Factory(#[from] FlashError),
}

/// First-boot inputs: the factory image and what it is verified against.
#[derive(Debug, Clone, Copy)]
pub struct Factory<'a> {
    pub image: Option<&'a Path>,
    pub trusted_keys: &'a [VerifyingKey],
    pub board: &'a str,
}

/// The file-backed boot: `<data>/bootenv.json`, `<data>/slots/`. First boot installs the factory
/// image into slot A (verified like any image), then writes the boot environment last, so a power
/// cut during the install simply repeats it.
pub fn boot(data_dir: &Path, factory: Factory<'_>, now_ms: u64) -> Result<BootOutcome, BootError> {
    let mut bootloader = FileBootloader::new(data_dir);
    if bootloader.load()?.is_none() {
        let image = factory.image.ok_or(BootError::NoFactoryImage)?;
        // Nothing runs yet. Opening the store "booted from B" makes A the standby slot, the only
        // one the API lets us write.
        let mut slots = FileSlotStore::open(data_dir, SlotId::B)?;
        let request = FlashRequest {
            image_path: image,
            trusted_keys: factory.trusted_keys,
            board: factory.board,
            installed_version: None,
            allow_downgrade: true,
            expected_sha256: None,
            failed_images: &[],
            hooks: None,
        };
        let flashed = verify_and_flash(&request, slots.standby().as_mut())?;
        bootloader.store(&BootEnv::factory(flashed.sha256()))?;
        let mut outcome = boot_step(&mut bootloader, now_ms)?;
        outcome.first_boot = true;
        return Ok(outcome);
    }
    boot_step(&mut bootloader, now_ms)
}

/// U-Boot's part: consume a pending trial and boot it, else boot `active`. Finding an unfinished
/// attempt while booting `active` means the trial did not confirm: record the image as failed.
pub fn boot_step(bootloader: &mut dyn Bootloader, now_ms: u64) -> Result<BootOutcome, BootError> {
    let Some(mut env) = bootloader.load()? else {
        return Err(BootError::NoFactoryImage);
    };
    let before = env.clone();
    let (booted, trial) = match env.trial.take() {
        Some(slot) => (slot, true),
        None => (env.active, false),
    };
    let mut fallback = None;
    if !trial {
        if let Some(attempt) = env.attempt.take() {
            if attempt.slot != booted {
                let failed = FailedImage {
                    sha256: attempt.image_sha256,
                    version: attempt.version,
                    upgrade_req_id: attempt.upgrade_req_id,
                    reason: attempt.fail_reason.unwrap_or_else(|| SILENT_TRIAL_FAILURE.to_string()),
                    at: now_ms,
                    extra: Default::default(),
                };
                env.push_failed(failed.clone());
                fallback = Some(failed);
            }
        }
    }
    if env != before {
        bootloader.store(&env)?;
    }
    Ok(BootOutcome { booted, trial, fallback, first_boot: false, env })
}

/// Commit: request a one-shot boot of `attempt.slot`. The caller then reboots.
pub fn arm_trial(bootloader: &mut dyn Bootloader, attempt: TrialAttempt) -> Result<(), BootError> {
    let mut env = load(bootloader)?;
    env.trial = Some(attempt.slot);
    env.attempt = Some(attempt);
    Ok(bootloader.store(&env)?)
}

/// The trial passed: the running slot becomes `active` and its image confirmed.
pub fn confirm_trial(
    bootloader: &mut dyn Bootloader,
    booted: SlotId,
    image_sha256: Sha256Digest,
) -> Result<(), BootError> {
    let mut env = load(bootloader)?;
    env.active = booted;
    env.set_confirmed(booted, Some(image_sha256));
    env.attempt = None;
    env.trial = None;
    Ok(bootloader.store(&env)?)
}

/// The trial failed its checks: write down why, so the next boot (into the old slot) reports it.
/// The caller then reboots.
pub fn record_trial_failure(bootloader: &mut dyn Bootloader, reason: &str) -> Result<(), BootError> {
    let mut env = load(bootloader)?;
    if let Some(attempt) = env.attempt.as_mut() {
        attempt.fail_reason = Some(reason.to_string());
    }
    env.trial = None;
    Ok(bootloader.store(&env)?)
}

/// Why a revert is refused.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("standby slot {0} is empty: nothing to revert to")]
    Empty(&'static str),
    /// Only an image that already ran confirmed on this node is booted without checks.
    #[error("standby slot {slot} holds {version}, which was never confirmed on this node: revert refused")]
    NotConfirmed { slot: &'static str, version: String },
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// VOLTHA DMI `RevertToStandbyImage`: make the standby slot active (no trial, no checks), only if
/// it holds an image confirmed here before. Returns the new active slot; the caller reboots.
pub fn revert_to_standby(
    bootloader: &mut dyn Bootloader,
    slots: &dyn SlotStore,
) -> Result<SlotId, RevertError> {
    let standby = slots.booted().other();
    let image = slots.image(standby).map_err(BootError::from)?.ok_or(RevertError::Empty(standby.as_str()))?;
    let mut env = load(bootloader)?;
    if env.confirmed(standby) != Some(image.file_sha256) {
        return Err(RevertError::NotConfirmed { slot: standby.as_str(), version: image.manifest.version });
    }
    env.active = standby;
    env.trial = None;
    env.attempt = None;
    bootloader.store(&env).map_err(BootError::from)?;
    Ok(standby)
}

/// Operator: forget failed trials (all, or one image) so the image may be tried again.
/// Returns how many records were removed.
pub fn clear_failed(bootloader: &mut dyn Bootloader, only: Option<Sha256Digest>) -> Result<usize, BootError> {
    let mut env = load(bootloader)?;
    let before = env.failed.len();
    env.failed.retain(|f| only.is_some_and(|sha| sha != f.sha256));
    let removed = before - env.failed.len();
    if removed > 0 {
        bootloader.store(&env)?;
    }
    Ok(removed)
}

fn load(bootloader: &dyn Bootloader) -> Result<BootEnv, BootError> {
    bootloader.load()?.ok_or(BootError::NoFactoryImage)
}
