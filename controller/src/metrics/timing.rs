//! Durations for the histograms, worked out from what the engine shows the shell: its in-flight
//! batch, the COMMITs it sends, and the node outcomes it records.
//!
//! Pure and fed with times from outside (UNIX ms), like the engine: the shell calls
//! [`Timings::batch`] and [`Timings::outcomes`] after every input it gave the engine, and
//! [`Timings::commit_sent`] for every COMMIT it sends.

use crate::engine::Stage;
use meshlift_protocol::{NodeOutcome, OutcomeKind, UpgradeReqType};
use std::collections::HashMap;

/// The in-flight batch as the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchView<'a> {
    pub request_id: &'a str,
    pub stage: Stage,
    /// From 1 within the stage.
    pub index: u32,
    /// When the engine formed it (UNIX ms; from its store after a restart).
    pub started_at: u64,
}

/// A batch that ended, with its length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchEnded {
    pub stage: Stage,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenBatch {
    request_id: String,
    stage: Stage,
    index: u32,
    started_at: u64,
}

/// What has been seen so far; see the module docs for the calls.
#[derive(Debug, Default)]
pub struct Timings {
    batch: Option<OpenBatch>,
    /// Node → when its reboot was due for its latest COMMIT (UNIX ms): the send time plus the
    /// request's `schedule_to_commit_s`. Nodes of the topology only, so bounded by it.
    reboot_due: HashMap<String, u64>,
    /// The running request last seen.
    request: Option<String>,
    /// The outcome list last looked at: its request and how many were seen.
    outcomes_of: Option<String>,
    outcomes_seen: usize,
    /// When the running request last moved (a batch formed or closed, a node got its outcome).
    last_progress: Option<u64>,
}

impl Timings {
    /// The engine's in-flight batch is now `current` (`None`: none). Returns the batch that ended
    /// since the last call, if one did: a batch ends when another takes its place or none is left.
    pub fn batch(&mut self, current: Option<BatchView<'_>>, now: u64) -> Option<BatchEnded> {
        let same = match (&self.batch, &current) {
            (Some(open), Some(cur)) => {
                open.request_id == cur.request_id && open.stage == cur.stage && open.index == cur.index
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            return None;
        }
        self.last_progress = Some(now);
        let ended = self.batch.take().map(|b| BatchEnded {
            stage: b.stage,
            seconds: now.saturating_sub(b.started_at) as f64 / 1000.0,
        });
        self.batch = current.map(|c| OpenBatch {
            request_id: c.request_id.to_string(),
            stage: c.stage,
            index: c.index,
            started_at: c.started_at,
        });
        ended
    }

    /// The engine's running request is now `current`: a request that starts (or ends) is a move
    /// of its own, before any batch forms.
    pub fn request(&mut self, current: Option<&str>, now: u64) {
        if current != self.request.as_deref() {
            self.request = current.map(str::to_string);
            self.last_progress = Some(now);
        }
    }

    /// A COMMIT went to `node` at `now`; it reboots `schedule_to_commit_s` later.
    pub fn commit_sent(&mut self, node: &str, schedule_to_commit_s: u64, now: u64) {
        let due = now.saturating_add(schedule_to_commit_s.saturating_mul(1000));
        self.reboot_due.insert(node.to_string(), due);
    }

    /// The engine's outcome list (of the running request, or of the last finished one). Returns
    /// the reboot-to-confirm time, in seconds, of each new COMMIT success whose COMMIT this
    /// process sent (a controller restarted mid-commit cannot say when the node rebooted).
    pub fn outcomes(&mut self, outcomes: &[NodeOutcome], now: u64) -> Vec<f64> {
        let request = outcomes.first().map(|o| o.request_id.as_str());
        if request != self.outcomes_of.as_deref() {
            self.outcomes_of = request.map(str::to_string);
            self.outcomes_seen = 0;
        }
        let new = outcomes.get(self.outcomes_seen..).unwrap_or_default();
        self.outcomes_seen = outcomes.len();
        if !new.is_empty() {
            self.last_progress = Some(now);
        }
        let mut confirmed = Vec::new();
        for o in new.iter().filter(|o| o.stage == UpgradeReqType::CommitUpgrade) {
            // Any commit outcome ends the wait: a node that failed must not count later.
            let Some(due) = self.reboot_due.remove(&o.node) else { continue };
            if o.outcome == OutcomeKind::Succeeded {
                confirmed.push(o.finished_at.saturating_sub(due) as f64 / 1000.0);
            }
        }
        confirmed
    }

    /// When the running request last moved (UNIX ms), if anything was seen.
    pub fn last_progress(&self) -> Option<u64> {
        self.last_progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(index: u32, stage: Stage, started_at: u64) -> BatchView<'static> {
        BatchView { request_id: "r1", stage, index, started_at }
    }

    fn outcome(node: &str, stage: UpgradeReqType, kind: OutcomeKind, finished_at: u64) -> NodeOutcome {
        NodeOutcome {
            request_id: "r1".into(),
            stage,
            node: node.into(),
            outcome: kind,
            reason: String::new(),
            started_at: 0,
            finished_at,
        }
    }

    #[test]
    fn a_batch_lasts_from_its_start_to_when_the_next_one_replaces_it() {
        let mut t = Timings::default();
        assert_eq!(t.batch(Some(view(1, Stage::Prepare, 1_000)), 1_200), None);
        assert_eq!(t.batch(Some(view(1, Stage::Prepare, 1_000)), 30_000), None, "still the same batch");
        let ended = t.batch(Some(view(2, Stage::Prepare, 91_000)), 91_000);
        assert_eq!(ended, Some(BatchEnded { stage: Stage::Prepare, seconds: 90.0 }));
        let ended = t.batch(None, 151_000);
        assert_eq!(ended, Some(BatchEnded { stage: Stage::Prepare, seconds: 60.0 }));
        assert_eq!(t.batch(None, 200_000), None);
        assert_eq!(t.last_progress(), Some(151_000));
    }

    #[test]
    fn a_request_that_starts_has_moved_before_its_first_batch() {
        let mut t = Timings::default();
        assert_eq!(t.last_progress(), None);
        t.request(Some("r1"), 5_000);
        t.request(Some("r1"), 9_000);
        assert_eq!(t.last_progress(), Some(5_000));
    }

    #[test]
    fn the_first_commit_batch_ends_the_last_prepare_batch() {
        let mut t = Timings::default();
        t.batch(Some(view(3, Stage::Prepare, 0)), 0);
        let ended = t.batch(Some(view(1, Stage::Commit, 12_000)), 12_000);
        assert_eq!(ended, Some(BatchEnded { stage: Stage::Prepare, seconds: 12.0 }));
    }

    #[test]
    fn reboot_to_confirm_runs_from_the_commit_sent_to_the_success() {
        let mut t = Timings::default();
        t.commit_sent("a", 0, 10_000);
        t.commit_sent("b", 30, 10_000);
        t.commit_sent("c", 0, 10_000);
        let mut list = vec![outcome("a", UpgradeReqType::CommitUpgrade, OutcomeKind::Succeeded, 85_000)];
        assert_eq!(t.outcomes(&list, 85_000), vec![75.0]);
        // b reboots 30 s after its COMMIT; c fell back and is not a confirm time.
        list.push(outcome("b", UpgradeReqType::CommitUpgrade, OutcomeKind::Succeeded, 100_000));
        list.push(outcome("c", UpgradeReqType::CommitUpgrade, OutcomeKind::FellBack, 100_000));
        assert_eq!(t.outcomes(&list, 100_000), vec![60.0]);
        // Seen once only.
        assert!(t.outcomes(&list, 101_000).is_empty());
        assert_eq!(t.last_progress(), Some(100_000));
    }

    #[test]
    fn prepare_outcomes_and_commits_not_sent_here_give_no_confirm_time() {
        let mut t = Timings::default();
        let list = vec![
            outcome("a", UpgradeReqType::PrepareUpgrade, OutcomeKind::Succeeded, 5_000),
            outcome("b", UpgradeReqType::CommitUpgrade, OutcomeKind::Succeeded, 6_000),
        ];
        assert!(t.outcomes(&list, 6_000).is_empty());
    }

    #[test]
    fn a_new_request_s_outcomes_are_all_new() {
        let mut t = Timings::default();
        t.outcomes(&[outcome("a", UpgradeReqType::PrepareUpgrade, OutcomeKind::Succeeded, 1)], 1);
        t.commit_sent("a", 0, 1_000);
        let mut o = outcome("a", UpgradeReqType::CommitUpgrade, OutcomeKind::Succeeded, 4_000);
        o.request_id = "r2".into();
        assert_eq!(t.outcomes(&[o], 4_000), vec![3.0]);
    }
}
