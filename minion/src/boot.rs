//! What U-Boot does at power-on, and the few boot-environment changes the minion makes.
//!
//! The minion binary calls [`boot_on`] (meshsim: [`boot`]) first thing at start, before it talks
//! to anyone. Every function here is one read-modify-write of the boot environment (one
//! `fw_setenv` on U-Boot), so each is atomic.

use crate::boot_env::{BootEnv, BootEnvError, Bootloader, FailedImage, FileBootloader, TrialAttempt};
use crate::flasher::{adopt_running, verify_and_flash, FlashError, FlashRequest};
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

/// The file-backed boot: `<data>/bootenv.json`, `<data>/slots/` (meshsim and the tests). First
/// boot installs the factory image into slot A (verified like any image), then writes the boot
/// environment last, so a power cut during the install simply repeats it.
pub fn boot(data_dir: &Path, factory: Factory<'_>, now_ms: u64) -> Result<BootOutcome, BootError> {
    let mut bootloader = FileBootloader::new(data_dir);
    let open = |booted: SlotId| -> Result<Box<dyn SlotStore>, SlotError> {
        Ok(Box::new(FileSlotStore::open(data_dir, booted)?))
    };
    boot_on(BootTarget { bootloader: &mut bootloader, open_slots: &open, running: None }, factory, now_ms)
}

/// The hardware one boot step runs on, whatever its backends.
pub struct BootTarget<'a> {
    pub bootloader: &'a mut dyn Bootloader,
    /// Opens the slots as a process booted from the given slot sees them (its standby is the
    /// other one).
    pub open_slots: &'a dyn Fn(SlotId) -> Result<Box<dyn SlotStore>, SlotError>,
    /// The slot the running system was booted from, when the platform can tell (the kernel
    /// command line's `meshlift.slot=`, which the U-Boot script sets). `None`: the boot
    /// environment says (meshsim, where a process start *is* a boot).
    pub running: Option<SlotId>,
}

/// The boot step on any backend. First boot (no environment yet) puts the factory image in slot
/// A: written there, or, when the system already runs from slot A (a device flashed at the
/// factory, whose slot A is the mounted root), only checked against the slot's bytes and recorded.
pub fn boot_on(target: BootTarget<'_>, factory: Factory<'_>, now_ms: u64) -> Result<BootOutcome, BootError> {
    let BootTarget { bootloader, open_slots, running } = target;
    if bootloader.load()?.is_none() {
        let image = factory.image.ok_or(BootError::NoFactoryImage)?;
        // Opening the store "booted from B" makes A the standby slot, the only one the API lets
        // us write (or record).
        let mut slots = open_slots(SlotId::B)?;
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
        let adopted = match running {
            Some(SlotId::A) => match adopt_running(&request, slots.standby().as_mut()) {
                Ok(flashed) => Some(flashed),
                // Slot A does not hold the factory image (or cannot be read): write it, which
                // the slot store refuses if A is the mounted root.
                Err(e) => {
                    tracing::warn!(error = %e, "slot A does not hold the factory image; writing it");
                    None
                }
            },
            _ => None,
        };
        let flashed = match adopted {
            Some(flashed) => flashed,
            None => verify_and_flash(&request, slots.standby().as_mut())?,
        };
        bootloader.store(&BootEnv::factory(flashed.sha256()))?;
        let mut outcome = boot_step_on(bootloader, running, now_ms)?;
        outcome.first_boot = true;
        return Ok(outcome);
    }
    boot_step_on(bootloader, running, now_ms)
}

/// U-Boot's part: consume a pending trial and boot it, else boot `active`. Finding an unfinished
/// attempt while booting `active` means the trial did not confirm: record the image as failed.
pub fn boot_step(bootloader: &mut dyn Bootloader, now_ms: u64) -> Result<BootOutcome, BootError> {
    boot_step_on(bootloader, None, now_ms)
}

/// [`boot_step`] when the platform knows the slot it runs from (`running`). That matters where a
/// process start is not a boot: a minion restarted after arming a trial whose reboot never came
/// (a failed reboot command, a crash in between) still runs the old slot, and must neither
/// believe it runs the trial nor count the untried image as failed: the trial is disarmed and the
/// agent reports that the commit must be repeated.
pub fn boot_step_on(
    bootloader: &mut dyn Bootloader,
    running: Option<SlotId>,
    now_ms: u64,
) -> Result<BootOutcome, BootError> {
    let Some(mut env) = bootloader.load()? else {
        return Err(BootError::NoFactoryImage);
    };
    let before = env.clone();
    let (booted, trial) = match (env.trial.take(), running) {
        (Some(slot), None) => (slot, true),
        (Some(slot), Some(r)) if slot == r => (slot, true),
        (Some(_), Some(r)) => {
            tracing::warn!(running = r.as_str(), "a trial was armed but the node did not boot it: disarmed");
            env.attempt = None;
            (r, false)
        }
        // The minion restarted (no reboot) while its trial runs: the trial goes on.
        (None, Some(r)) if r != env.active && env.attempt.as_ref().is_some_and(|a| a.slot == r) => (r, true),
        (None, Some(r)) => {
            if r != env.active {
                tracing::warn!(
                    running = r.as_str(),
                    active = env.active.as_str(),
                    "running a slot that is not the active one"
                );
            }
            (r, false)
        }
        (None, None) => (env.active, false),
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
