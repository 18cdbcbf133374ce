//! The boot environment: which slot boots, the one-shot trial request, confirmed and failed images.
//!
//! Two backends: [`FileBootloader`], a JSON file replaced atomically (meshsim, tests), and
//! [`crate::uboot::UBootBootloader`], U-Boot's own environment through libubootenv. Whatever the
//! backend, a write must be all-or-nothing: a half-written boot environment is a bricked node.

use crate::durable::{format_v1, is_format_v1, is_newer_format, write_atomically, Extra, STATE_FORMAT};
use meshlift_protocol::{FallbackRecord, Sha256Digest, SlotId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many failed images are remembered; older entries drop off (an operator can clear them
/// sooner).
pub const MAX_FAILED_IMAGES: usize = 16;

/// The variables U-Boot would hold.
///
/// Read by older and newer minions alike (a fallback runs the older image's minion on what the
/// newer one wrote): unknown fields are kept in `extra` and written back, and only a newer
/// `format` is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEnv {
    /// [`crate::durable::STATE_FORMAT`] of the writer; absent in files from before it existed.
    #[serde(default = "format_v1", skip_serializing_if = "is_format_v1")]
    pub format: u32,
    /// Slot booted when no trial is pending.
    pub active: SlotId,
    /// One-shot request to boot the other slot; the boot step clears it before booting, so any
    /// later reboot returns to `active` (Terragraph's "testcode is one time thing").
    pub trial: Option<SlotId>,
    /// The trial in progress, from commit until confirm or fallback. Still set when the boot step
    /// finds itself on `active`, it means the trial did not confirm: a fallback.
    pub attempt: Option<TrialAttempt>,
    /// File SHA-256 of the image confirmed in slot A, if the image there now is that one.
    pub confirmed_a: Option<Sha256Digest>,
    pub confirmed_b: Option<Sha256Digest>,
    /// Images that failed a trial here: refused until an operator clears them (no reboot loops).
    pub failed: Vec<FailedImage>,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

impl BootEnv {
    /// A fresh environment after the factory install: slot A active and confirmed.
    pub fn factory(image_sha256: Sha256Digest) -> BootEnv {
        BootEnv {
            format: STATE_FORMAT,
            active: SlotId::A,
            trial: None,
            attempt: None,
            confirmed_a: Some(image_sha256),
            confirmed_b: None,
            failed: Vec::new(),
            extra: Extra::new(),
        }
    }

    pub fn confirmed(&self, slot: SlotId) -> Option<Sha256Digest> {
        match slot {
            SlotId::A => self.confirmed_a,
            SlotId::B => self.confirmed_b,
        }
    }

    pub fn set_confirmed(&mut self, slot: SlotId, digest: Option<Sha256Digest>) {
        match slot {
            SlotId::A => self.confirmed_a = digest,
            SlotId::B => self.confirmed_b = digest,
        }
    }

    pub fn failed_image(&self, sha256: &Sha256Digest) -> Option<&FailedImage> {
        self.failed.iter().rev().find(|f| &f.sha256 == sha256)
    }

    pub(crate) fn push_failed(&mut self, failed: FailedImage) {
        self.failed.retain(|f| f.sha256 != failed.sha256);
        self.failed.push(failed);
        let excess = self.failed.len().saturating_sub(MAX_FAILED_IMAGES);
        self.failed.drain(..excess);
    }
}

/// The trial being attempted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialAttempt {
    pub slot: SlotId,
    pub image_sha256: Sha256Digest,
    pub version: String,
    pub upgrade_req_id: String,
    /// Set by the minion when its post-boot checks failed, just before it reboots; absent when
    /// the trial died without a word (crash, hang, power cut).
    pub fail_reason: Option<String>,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An image that failed its trial on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedImage {
    pub sha256: Sha256Digest,
    pub version: String,
    pub upgrade_req_id: String,
    pub reason: String,
    /// UNIX ms when the fallback was noticed.
    pub at: u64,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FailedImage {
    pub fn to_record(&self) -> FallbackRecord {
        FallbackRecord {
            upgrade_req_id: self.upgrade_req_id.clone(),
            version: self.version.clone(),
            reason: self.reason.clone(),
            at: self.at,
        }
    }
}

/// Where the boot environment lives: a file ([`FileBootloader`]) or U-Boot's environment
/// ([`crate::uboot::UBootBootloader`], whose `fw_setenv` writes the redundant copy atomically).
pub trait Bootloader {
    /// `Ok(None)`: no environment yet (first boot).
    fn load(&self) -> Result<Option<BootEnv>, BootEnvError>;
    /// All-or-nothing replacement.
    fn store(&mut self, env: &BootEnv) -> Result<(), BootEnvError>;
}

/// The boot environment could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BootEnvError {
    /// Disk or permission problem on the data directory.
    #[error("cannot access boot environment {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a boot environment (edited by hand, or a different version).
    /// The node cannot decide which slot to boot; an operator must repair or remove it.
    #[error("invalid boot environment {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Written by a newer minion in a format whose fields this one could misread (which slot to
    /// boot, which images failed). Boot the newer image, or have an operator rewrite the file.
    #[error(
        "boot environment {path} has format {found}, newer than the {supported} this minion understands: \
         refusing to act on it"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    /// `fw_printenv`/`fw_setenv` failed: not installed (`libubootenv-tool`), a wrong
    /// `fw_env.config`, an environment device that cannot be opened, or an environment lock held
    /// by another process. The tool's stderr is in the message.
    #[error("U-Boot environment: {0}")]
    Tool(#[from] crate::command::CommandError),
    /// What meshlift would write to the U-Boot environment exceeds the budget it keeps there
    /// (`crate::uboot`): a newer minion's extra fields, most likely. Nothing was written.
    #[error("U-Boot variable {name} would take {len} bytes, over the {limit}-byte limit: not written")]
    TooLarge { name: String, len: usize, limit: usize },
}

/// `<data>/bootenv.json`.
#[derive(Debug, Clone)]
pub struct FileBootloader {
    path: PathBuf,
}

impl FileBootloader {
    pub fn new(data_dir: &Path) -> FileBootloader {
        FileBootloader { path: data_dir.join("bootenv.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Bootloader for FileBootloader {
    fn load(&self) -> Result<Option<BootEnv>, BootEnvError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BootEnvError::Io { path: self.path.clone(), source }),
        };
        let env: BootEnv = serde_json::from_slice(&bytes)
            .map_err(|e| BootEnvError::Invalid { path: self.path.clone(), message: e.to_string() })?;
        if is_newer_format(env.format) {
            return Err(BootEnvError::NewerFormat {
                path: self.path.clone(),
                found: env.format,
                supported: STATE_FORMAT,
            });
        }
        Ok(Some(env))
    }

    fn store(&mut self, env: &BootEnv) -> Result<(), BootEnvError> {
        let bytes = serde_json::to_vec_pretty(env).expect("BootEnv serialises: plain data, string keys");
        write_atomically(&self.path, &bytes)
            .map_err(|source| BootEnvError::Io { path: self.path.clone(), source })
    }
}
