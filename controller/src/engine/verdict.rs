//! Judging a dispatched node from its reports.
//!
//! Terragraph counts a commit as good when the node reports status NONE and the expected version
//! string (reference §2.7): a node that booted the new image but has not yet decided whether to
//! keep it would pass. meshlift asks for more: the new version **from a confirmed slot** (booted
//! == active, slot confirmed), the node's wireless links back (except `skip_links` and links that
//! were already dead at dispatch) and, on a POP, its uplink/BGP peers back.

use std::fmt::Write as _;

use meshlift_protocol::{OutcomeKind, UpgradeStatusType};

use super::fleet::{Fleet, Seen};
use super::request::CommitBaseline;

/// What the latest report says about a dispatched node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still working; the text says on what (shown in the state dump).
    Pending(String),
    Success(String),
    /// `retry`: another attempt could help (a failed download, a commit that could not start);
    /// a fallback is final — the node refuses an image that already failed its trial.
    Failure {
        outcome: OutcomeKind,
        reason: String,
        retry: bool,
    },
}

/// Only reports that arrived after the dispatch count: the one before says nothing about it
/// (a DOWNLOAD_FAILED from the previous attempt would fail the retry at once).
fn fresh(seen: Option<&Seen>, rx_at_dispatch: u64) -> Option<&Seen> {
    seen.filter(|s| s.rx > rx_at_dispatch)
}

/// PREPARE: success is FLASHED with the image's sha256 (Terragraph: `nextImage.md5`).
pub fn prepare(
    req_id: &str,
    sha: Option<meshlift_protocol::Sha256Digest>,
    seen: Option<&Seen>,
    rx_at_dispatch: u64,
    attempt: u32,
) -> Verdict {
    let Some(s) = fresh(seen, rx_at_dispatch) else {
        return Verdict::Pending("waiting for a status report since the PREPARE was sent".into());
    };
    let us = &s.report.upgrade_status;
    // A failure counts only for the attempt it belongs to; a success counts whatever attempt
    // produced it (the image is on the slot either way).
    let stale_failure =
        matches!(us.us_type, UpgradeStatusType::DownloadFailed | UpgradeStatusType::FlashFailed)
            && attempt != 0
            && us.attempt != attempt;
    if stale_failure {
        return Verdict::Pending(format!("waiting for the node to start attempt {attempt}"));
    }
    match us.us_type {
        UpgradeStatusType::Flashed if sha.is_some() && us.next_image.sha256 == sha => {
            Verdict::Success("standby slot written and verified".into())
        }
        UpgradeStatusType::DownloadFailed | UpgradeStatusType::FlashFailed if us.upgrade_req_id == req_id => {
            Verdict::Failure {
                outcome: OutcomeKind::Failed,
                reason: format!("{}: {}", us.us_type.as_str(), us.reason),
                retry: true,
            }
        }
        t => {
            // One allocation: this runs for every report of every node of a 10 000-node batch.
            let mut text = String::with_capacity(t.as_str().len() + 12 + us.reason.len());
            text.push_str(t.as_str());
            if let Some(p) = &us.progress {
                let ppm = p.ppm();
                let _ = write!(text, " {}.{}%", ppm / 10_000, (ppm / 1_000) % 10);
            }
            if !us.reason.is_empty() {
                let _ = write!(text, " ({})", us.reason);
            }
            Verdict::Pending(text)
        }
    }
}

/// COMMIT: see the module docs.
pub fn commit(
    req_id: &str,
    node: &str,
    base: &CommitBaseline,
    fleet: &Fleet,
    rx_at_dispatch: u64,
    boot_id_at_dispatch: &str,
    now: u64,
) -> Verdict {
    let Some(s) = fresh(fleet.get(node), rx_at_dispatch) else {
        return Verdict::Pending("waiting for a status report since the COMMIT was sent".into());
    };
    let r = &s.report;
    let us = &r.upgrade_status;
    if us.us_type == UpgradeStatusType::FellBack && us.upgrade_req_id == req_id {
        return Verdict::Failure {
            outcome: OutcomeKind::FellBack,
            reason: format!("fell back to {}: {}", r.version, us.reason),
            retry: false,
        };
    }
    if let Some(f) = r.last_fallback.as_ref().filter(|f| f.upgrade_req_id == req_id) {
        return Verdict::Failure {
            outcome: OutcomeKind::FellBack,
            reason: format!("fell back from {}: {}", f.version, f.reason),
            retry: false,
        };
    }
    if us.us_type == UpgradeStatusType::CommitFailed && us.upgrade_req_id == req_id {
        return Verdict::Failure {
            outcome: OutcomeKind::Failed,
            reason: format!("COMMIT_FAILED: {}", us.reason),
            retry: true,
        };
    }
    let confirmed_slot = r.slots.booted == r.slots.active && r.slots.running().confirmed;
    let rebooted = r.boot_id != boot_id_at_dispatch;
    let claims_done = (us.us_type == UpgradeStatusType::Confirmed && us.upgrade_req_id == req_id)
        || (us.us_type == UpgradeStatusType::None && rebooted && confirmed_slot);
    if claims_done {
        if r.version.trim() != base.expected_version.trim() {
            return Verdict::Failure {
                outcome: OutcomeKind::Failed,
                reason: format!("rebooted and runs {:?}, expected {:?}", r.version, base.expected_version),
                retry: false,
            };
        }
        if !confirmed_slot {
            return Verdict::Pending(format!(
                "runs {} but slot {} is not confirmed yet",
                r.version,
                r.slots.booted.as_str()
            ));
        }
        if let (Some(want), Some(have)) = (base.expected_sha, r.slots.running().sha256) {
            if want != have {
                return Verdict::Failure {
                    outcome: OutcomeKind::Failed,
                    reason: "running slot's sha256 differs from the committed image".into(),
                    retry: false,
                };
            }
        }
        if let Some(waiting) = links_and_peers_back(node, base, fleet, r.bgp_peers_up, now) {
            return Verdict::Pending(waiting);
        }
        return Verdict::Success(format!(
            "running {} from confirmed slot {}, links back",
            r.version,
            r.slots.booted.as_str()
        ));
    }
    Verdict::Pending(match us.us_type {
        UpgradeStatusType::Flashed => "FLASHED: waiting for the reboot".to_string(),
        UpgradeStatusType::CommitScheduled => format!("commit scheduled at {}", us.when_to_commit),
        UpgradeStatusType::Rebooting => "rebooting".to_string(),
        UpgradeStatusType::Trial => "trial boot: post-boot checks running".to_string(),
        t => format!("status {}", t.as_str()),
    })
}

/// REVERT_TO_STANDBY: success is a report under a new boot id from the slot that was the
/// standby at dispatch, now booted **and** active, running the version that slot held, with the
/// node's links (and a POP's BGP peers) back as for a commit. A revert has no trial, so the
/// minion's refusal (standby empty or never confirmed here) comes back as COMMIT_FAILED with the
/// reason, which is final: nothing on the node changed, and trying again changes nothing.
pub fn revert(
    req_id: &str,
    node: &str,
    base: &CommitBaseline,
    fleet: &Fleet,
    rx_at_dispatch: u64,
    now: u64,
) -> Verdict {
    let Some(s) = fresh(fleet.get(node), rx_at_dispatch) else {
        return Verdict::Pending("waiting for a status report since the REVERT was sent".into());
    };
    let r = &s.report;
    let us = &r.upgrade_status;
    if us.us_type == UpgradeStatusType::CommitFailed && us.upgrade_req_id == req_id {
        return Verdict::Failure { outcome: OutcomeKind::Failed, reason: us.reason.clone(), retry: false };
    }
    if r.boot_id == base.boot_id {
        return Verdict::Pending(match us.us_type {
            UpgradeStatusType::Rebooting => "rebooting into the standby slot".to_string(),
            t => format!("status {}: waiting for the reboot", t.as_str()),
        });
    }
    let slots = &r.slots;
    if let Some(want) = base.expected_slot {
        if slots.booted != want || slots.active != want {
            return Verdict::Failure {
                outcome: OutcomeKind::Failed,
                reason: format!(
                    "rebooted into slot {} (active {}), expected slot {}",
                    slots.booted.as_str(),
                    slots.active.as_str(),
                    want.as_str()
                ),
                retry: false,
            };
        }
    }
    if r.version.trim() != base.expected_version.trim() {
        return Verdict::Failure {
            outcome: OutcomeKind::Failed,
            reason: format!("rebooted and runs {:?}, expected {:?}", r.version, base.expected_version),
            retry: false,
        };
    }
    if let (Some(want), Some(have)) = (base.expected_sha, slots.running().sha256) {
        if want != have {
            return Verdict::Failure {
                outcome: OutcomeKind::Failed,
                reason: "running slot's sha256 differs from the standby image at dispatch".into(),
                retry: false,
            };
        }
    }
    if let Some(waiting) = links_and_peers_back(node, base, fleet, r.bgp_peers_up, now) {
        return Verdict::Pending(waiting);
    }
    Verdict::Success(format!(
        "reverted: running {} from slot {} (confirmed here before), links back",
        r.version,
        slots.booted.as_str()
    ))
}

/// What a rebooted node still waits for (its wireless links, a POP's BGP peers), or `None` when
/// everything is back.
fn links_and_peers_back(
    node: &str,
    base: &CommitBaseline,
    fleet: &Fleet,
    bgp_peers_up: Option<u32>,
    now: u64,
) -> Option<String> {
    let id = fleet.id(node);
    let waiting: Vec<&str> = fleet
        .wireless_links(node)
        .iter()
        .filter(|w| !base.ignored_links.contains(&w.link))
        .filter(|w| !id.is_some_and(|i| fleet.wireless_alive_id(&w.link, i, w.peer, now)))
        .map(|w| w.link.as_str())
        .collect();
    if !waiting.is_empty() {
        return Some(format!("waiting for links to come back: {}", waiting.join(", ")));
    }
    if let Some(want) = base.bgp_peers {
        let have = bgp_peers_up.unwrap_or(0);
        if have < want {
            return Some(format!("waiting for BGP peers (expecting {want}, have {have})"));
        }
    }
    None
}
