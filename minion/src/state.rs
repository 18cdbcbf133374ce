//! The upgrade state that survives restarts and reboots: `<data>/upgrade_state.json`.
//!
//! Terragraph's `UpgradeStateCache` keeps FLASHED across a minion restart or an unrelated reboot
//! between prepare and commit (reference §5.7); meshlift also keeps the trial plan across the
//! trial reboot, and the last fallback until a new upgrade starts.

use crate::durable::write_atomically;
use meshlift_protocol::{FallbackRecord, Sha256Digest, SlotId, UpgradeReqType, UpgradeStatus};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Requests remembered for idempotency.
pub const RECENT_REQUESTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub status: UpgradeStatus,
    /// The verified image on the standby slot, ready for commit.
    pub flashed: Option<FlashedInfo>,
    /// Written at commit, read back by the trial boot.
    pub trial: Option<TrialPlan>,
    /// `(request id, type)` of recent requests: a repeat is answered without acting again.
    pub recent_requests: Vec<(String, UpgradeReqType)>,
    pub last_fallback: Option<FallbackRecord>,
}

/// What the flasher left on the standby slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashedInfo {
    pub slot: SlotId,
    pub sha256: Sha256Digest,
    pub version: String,
    pub upgrade_req_id: String,
}

/// What the trial boot must check, fixed at commit time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialPlan {
    pub upgrade_req_id: String,
    pub slot: SlotId,
    pub sha256: Sha256Digest,
    pub version: String,
    /// Links that were up at commit, minus `skip_links`: each must come back.
    pub links_required: Vec<String>,
    pub confirm_timeout_s: u64,
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
}

/// `Ok(None)` when there is no state file yet.
pub fn load_state(path: &Path) -> Result<Option<PersistedState>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path: path.to_path_buf(), source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}

pub fn save_state(path: &Path, state: &PersistedState) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(state).expect("PersistedState serialises: plain data");
    write_atomically(path, &bytes).map_err(|source| StateError::Io { path: path.to_path_buf(), source })
}
