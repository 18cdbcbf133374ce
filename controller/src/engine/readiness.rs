//! Readiness filters, run on every pending node before every batch.
//!
//! Terragraph drops unready nodes silently (reference §2.5, sharp edge §2.12.7): they end up
//! neither succeeded nor failed. Here every filtered node gets an outcome with a reason, and a
//! node already rebooting from an earlier commit of the same request is *watched*, never sent a
//! second COMMIT.

use meshlift_protocol::{Node, OutcomeKind, UpgradeStatusType};

use super::fleet::{Fleet, Seen};
use super::request::RequestRun;

/// What to do with a pending node at batch formation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Send it the request.
    Dispatch,
    /// It is already working on this request (an earlier COMMIT of the same request is still
    /// going through its reboot): put it in the batch and watch it, send nothing.
    Watch(String),
    /// It leaves the request now with this outcome.
    Outcome(OutcomeKind, String),
}

/// The node's last report, or the outcome of a node that has none worth reading: offline is
/// checked first by every stage, as nothing else about a silent node is current.
fn last_report<'a>(fleet: &'a Fleet, node: &Node, now: u64) -> Result<&'a Seen, Readiness> {
    if !fleet.online(&node.name, now) {
        let why = match fleet.last_seen(&node.name) {
            Some(at) => format!("offline: last status report {}s ago", now.saturating_sub(at) / 1000),
            None => "offline: no status report since the controller started".to_string(),
        };
        return Err(Readiness::Outcome(OutcomeKind::SkippedOffline, why));
    }
    fleet
        .get(&node.name)
        .ok_or_else(|| Readiness::Outcome(OutcomeKind::SkippedOffline, "never reported".into()))
}

/// PREPARE readiness (Terragraph's `isPrepareReady`, with reasons).
pub fn prepare(run: &RequestRun, fleet: &Fleet, node: &Node, now: u64) -> Readiness {
    let seen = match last_report(fleet, node, now) {
        Ok(seen) => seen,
        Err(r) => return r,
    };
    let r = &seen.report;
    if let Some(v) = run.target_version() {
        if r.version.trim() == v.trim() {
            return Readiness::Outcome(OutcomeKind::AlreadyAtVersion, format!("already running {v}"));
        }
    }
    let us = &r.upgrade_status;
    if us.us_type == UpgradeStatusType::CommitScheduled {
        return Readiness::Outcome(
            OutcomeKind::SkippedNotReady,
            format!("a commit is scheduled on the node (request {:?}); reset it first", us.upgrade_req_id),
        );
    }
    if let Some(sha) = run.target_sha() {
        if us.us_type == UpgradeStatusType::Flashed && us.next_image.sha256 == Some(sha) {
            return Readiness::Outcome(
                OutcomeKind::Succeeded,
                "standby slot already holds this image".into(),
            );
        }
    }
    if let Some(image) = &run.image {
        if !image.hardware_board_ids.is_empty()
            && !r.hardware_board_id.is_empty()
            && !image.hardware_board_ids.iter().any(|b| b == &r.hardware_board_id)
        {
            return Readiness::Outcome(
                OutcomeKind::SkippedNotReady,
                format!(
                    "hardware board {:?} is not one of the image's boards {:?}",
                    r.hardware_board_id, image.hardware_board_ids
                ),
            );
        }
    }
    Readiness::Dispatch
}

/// COMMIT readiness (Terragraph's `isCommitReady`, with reasons, and never a blind re-commit).
pub fn commit(run: &RequestRun, fleet: &Fleet, node: &Node, now: u64) -> Readiness {
    let seen = match last_report(fleet, node, now) {
        Ok(seen) => seen,
        Err(r) => return r,
    };
    let r = &seen.report;
    let us = &r.upgrade_status;
    let confirmed_slot = r.slots.booted == r.slots.active && r.slots.running().confirmed;
    let sent = run.node_state.get(&node.name).is_some_and(|s| s.commit_sent);
    if let Some(v) = run.target_version() {
        if r.version.trim() == v.trim() && confirmed_slot {
            return if sent {
                Readiness::Outcome(OutcomeKind::Succeeded, format!("running {v} from a confirmed slot"))
            } else {
                Readiness::Outcome(OutcomeKind::AlreadyAtVersion, format!("already running {v}"))
            };
        }
    }
    if sent
        && us.upgrade_req_id == run.id
        && matches!(
            us.us_type,
            UpgradeStatusType::CommitScheduled
                | UpgradeStatusType::Rebooting
                | UpgradeStatusType::Trial
                | UpgradeStatusType::Confirmed
        )
    {
        return Readiness::Watch(format!("still {} from an earlier COMMIT", us.us_type.as_str()));
    }
    if us.us_type != UpgradeStatusType::Flashed {
        let mut why = format!("upgrade status is {}, not FLASHED", us.us_type.as_str());
        if !us.reason.is_empty() {
            why.push_str(&format!(" ({})", us.reason));
        }
        return Readiness::Outcome(OutcomeKind::SkippedNotReady, why);
    }
    if let Some(v) = run.target_version() {
        if us.next_image.version.as_deref().map(str::trim) != Some(v.trim()) {
            return Readiness::Outcome(
                OutcomeKind::SkippedNotReady,
                format!("flashed image is version {:?}, the request wants {v:?}", us.next_image.version),
            );
        }
    }
    if let Some(sha) = run.target_sha() {
        if us.next_image.sha256 != Some(sha) {
            return Readiness::Outcome(
                OutcomeKind::SkippedNotReady,
                "flashed image's sha256 differs from the request's image".into(),
            );
        }
    }
    Readiness::Dispatch
}

/// REVERT_TO_STANDBY readiness (DMI `RevertToStandbyImage`): only a node whose standby slot holds
/// an image confirmed on that node before is sent a REVERT; every other node gets an outcome that
/// says what its standby slot holds. The minion checks the same rule again against its boot
/// environment, in case the report was out of date.
pub fn revert(run: &RequestRun, fleet: &Fleet, node: &Node, now: u64) -> Readiness {
    let seen = match last_report(fleet, node, now) {
        Ok(seen) => seen,
        Err(r) => return r,
    };
    let r = &seen.report;
    let us = &r.upgrade_status;
    let sent = run.node_state.get(&node.name).is_some_and(|s| s.commit_sent);
    if sent && us.upgrade_req_id == run.id && us.us_type == UpgradeStatusType::Rebooting {
        return Readiness::Watch("still rebooting from an earlier REVERT".into());
    }
    let slots = &r.slots;
    let standby = slots.standby();
    // Retried after a batch timeout, but the first REVERT did take effect: sending another one
    // would flip the node back to the image it just left.
    if sent
        && us.upgrade_req_id == run.id
        && us.us_type == UpgradeStatusType::None
        && slots.booted == slots.active
    {
        return Readiness::Outcome(
            OutcomeKind::Succeeded,
            format!(
                "reverted earlier in this request: running {} from slot {}",
                r.version,
                slots.booted.as_str()
            ),
        );
    }
    if slots.booted != slots.active {
        return Readiness::Outcome(
            OutcomeKind::SkippedNotReady,
            format!(
                "a trial boot of slot {} is in progress (status {}); wait for it to confirm or fall back",
                slots.booted.as_str(),
                us.us_type.as_str()
            ),
        );
    }
    if matches!(
        us.us_type,
        UpgradeStatusType::DownloadingImage
            | UpgradeStatusType::FlashingImage
            | UpgradeStatusType::CommitScheduled
            | UpgradeStatusType::Rebooting
            | UpgradeStatusType::Trial
    ) {
        return Readiness::Outcome(
            OutcomeKind::SkippedNotReady,
            format!("the node is busy ({}); reset it or wait", us.us_type.as_str()),
        );
    }
    let Some(version) = standby.version.as_deref() else {
        return Readiness::Outcome(
            OutcomeKind::SkippedNotReady,
            format!("standby slot {} is empty: nothing to revert to", standby.slot.as_str()),
        );
    };
    if !standby.confirmed {
        return Readiness::Outcome(
            OutcomeKind::SkippedNotReady,
            format!(
                "standby slot {} holds {version}, never confirmed on this node: revert refused",
                standby.slot.as_str()
            ),
        );
    }
    if standby.sha256.is_some() && standby.sha256 == slots.running().sha256 {
        return Readiness::Outcome(
            OutcomeKind::AlreadyAtVersion,
            format!("standby slot {} holds the running image ({version})", standby.slot.as_str()),
        );
    }
    if let Some(want) = run.target_version() {
        if r.version.trim() == want.trim() {
            return Readiness::Outcome(OutcomeKind::AlreadyAtVersion, format!("already running {want}"));
        }
        if version.trim() != want.trim() {
            return Readiness::Outcome(
                OutcomeKind::SkippedNotReady,
                format!("standby slot {} holds {version}, the request wants {want}", standby.slot.as_str()),
            );
        }
    }
    Readiness::Dispatch
}
