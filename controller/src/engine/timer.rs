//! The engine's deadlines, by name (quinn-proto's `connection/timer.rs`, str0m's
//! `Output::Timeout`): the shell sleeps until [`Engine::next_deadline`] — or the next input —
//! and then calls [`Engine::tick`]. Nothing in the engine needs a tick between two deadlines:
//! everything else it waits for arrives as an input (a report, an operator request).

use super::Engine;

/// Why the engine wants to be ticked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The in-flight batch's deadline: every node still in flight fails with a timeout.
    BatchTimeout,
    /// Right after start, the running request waits for every pending node's first report, at
    /// most `node_alive_timeout` (a fresh controller must not take "no report yet" for offline).
    StartupGrace,
    /// After a COMMIT batch closed, the next one waits for a fresh view of the mesh, at most
    /// `node_alive_timeout` (`run::Engine::settling`).
    CommitSettle,
    /// The earliest moment an online node goes offline for want of a report: the offline event,
    /// and the links through it are dead for the COMMIT verdicts of its neighbours. At most this
    /// early — a report since then only pushes the node's own expiry later.
    Liveness,
    /// The journal's retention policy (at start, then hourly).
    JournalPrune,
}

impl Engine {
    /// Every armed timer with its deadline (UNIX ms).
    pub fn timers(&self) -> Vec<(Timer, u64)> {
        let mut t = Vec::with_capacity(5);
        if let Some(b) = self.work.batch() {
            t.push((Timer::BatchTimeout, b.deadline));
        }
        if self.work.run().is_some() && self.work.batch().is_none() {
            let grace = self.started_at.saturating_add(self.config.node_alive_timeout_ms);
            if grace > self.now {
                t.push((Timer::StartupGrace, grace));
            }
            if let Some(closed) = self.last_commit_closed_at {
                let settle = closed.saturating_add(self.config.node_alive_timeout_ms);
                if settle > self.now {
                    t.push((Timer::CommitSettle, settle));
                }
            }
        }
        if let Some(at) = self.liveness_at {
            t.push((Timer::Liveness, at));
        }
        t.push((Timer::JournalPrune, self.next_prune_at));
        t
    }

    /// The earliest armed timer.
    pub fn next_timer(&self) -> Option<(Timer, u64)> {
        self.timers().into_iter().min_by_key(|&(timer, at)| (at, timer))
    }

    /// When [`Engine::tick`] must run next: the earliest of [`Engine::timers`].
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_timer().map(|(_, at)| at)
    }

    /// A report from a node arrived at `now`: it stays online until `now + node_alive_timeout`,
    /// so the liveness deadline is at most that (O(1); the exact earliest expiry over all nodes
    /// is recomputed when the timer fires).
    pub(super) fn arm_liveness(&mut self, now: u64) {
        let expiry = now.saturating_add(self.config.node_alive_timeout_ms).saturating_add(1);
        self.liveness_at = Some(self.liveness_at.map_or(expiry, |at| at.min(expiry)));
    }

    /// After a tick's offline transitions: the earliest expiry of a node still online.
    pub(super) fn rearm_liveness(&mut self, now: u64) {
        self.liveness_at = self.fleet.next_offline_at(now);
    }
}
