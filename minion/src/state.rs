//! The upgrade state that survives restarts and reboots: `<data>/upgrade_state.json`.
//!
//! Terragraph's `UpgradeStateCache` keeps FLASHED across a minion restart or an unrelated reboot
//! between prepare and commit (reference §5.7); meshlift also keeps the trial plan across the
//! trial reboot, and the last fallback until a new upgrade starts.

use crate::durable::{format_v1, is_format_v1, is_newer_format, write_atomically, Extra, STATE_FORMAT};
use meshlift_protocol::{FallbackRecord, Sha256Digest, SlotId, UpgradeReqType, UpgradeStatus};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Requests remembered for idempotency.
pub const RECENT_REQUESTS: usize = 16;

/// Unknown fields are kept in `extra` and written back and only a newer `format` is refused, so
/// the older image's minion, run again after a fallback, reads what the newer one wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// [`crate::durable::STATE_FORMAT`] of the writer; absent in files from before it existed.
    #[serde(default = "format_v1", skip_serializing_if = "is_format_v1")]
    pub format: u32,
    pub status: UpgradeStatus,
    /// The verified image on the standby slot, ready for commit.
    pub flashed: Option<FlashedInfo>,
    /// Written at commit, read back by the trial boot.
    pub trial: Option<TrialPlan>,
    /// `(request id, type)` of recent requests: a repeat is answered without acting again.
    pub recent_requests: Vec<(String, UpgradeReqType)>,
    pub last_fallback: Option<FallbackRecord>,
    /// Written when a REVERT_TO_STANDBY is carried out, read at the next start to tell whether
    /// the node now runs the slot it reverted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<RevertPlan>,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A revert in progress: the slot that must be running after the reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertPlan {
    pub upgrade_req_id: String,
    pub slot: SlotId,
    pub version: Option<String>,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for PersistedState {
    fn default() -> PersistedState {
        PersistedState {
            format: STATE_FORMAT,
            status: UpgradeStatus::default(),
            flashed: None,
            trial: None,
            recent_requests: Vec::new(),
            last_fallback: None,
            revert: None,
            extra: Extra::new(),
        }
    }
}

/// What the flasher left on the standby slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashedInfo {
    pub slot: SlotId,
    pub sha256: Sha256Digest,
    pub version: String,
    pub upgrade_req_id: String,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What the trial boot must check, fixed at commit time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialPlan {
    pub upgrade_req_id: String,
    pub slot: SlotId,
    pub sha256: Sha256Digest,
    pub version: String,
    /// Links that were up at commit, minus `skip_links`: each must come back.
    pub links_required: Vec<String>,
    pub confirm_timeout_s: u64,
    /// Fields written by a newer minion, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot access upgrade state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Unreadable (hand-edited, older format). The shell logs it and starts from NONE: losing a
    /// FLASHED costs a re-download, not a broken node.
    #[error("invalid upgrade state {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Written by a newer minion in a format whose fields this one could misread. Handled like
    /// `Invalid`: start from NONE.
    #[error("upgrade state {path} has format {found}, newer than the {supported} this minion understands")]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
}

/// `Ok(None)` when there is no state file yet.
pub fn load_state(path: &Path) -> Result<Option<PersistedState>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path: path.to_path_buf(), source }),
    };
    let state: PersistedState = serde_json::from_slice(&bytes)
        .map_err(|e| StateError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
    if is_newer_format(state.format) {
        return Err(StateError::NewerFormat {
            path: path.to_path_buf(),
            found: state.format,
            supported: STATE_FORMAT,
        });
    }
    Ok(Some(state))
}

pub fn save_state(path: &Path, state: &PersistedState) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(state).expect("PersistedState serialises: plain data");
    write_atomically(path, &bytes).map_err(|source| StateError::Io { path: path.to_path_buf(), source })
}
