//! The shell's write-ahead gate between the engine and the world: an input's writes are made
//! durable before any of that input's other actions (a COMMIT to a node above all) goes out.
//!
//! The engine is sans-IO: each input's state changes leave it as one
//! [`Action::Persist`] at the head of that input's actions. [`Outbox::push_engine`] takes the
//! engine's drained actions and cuts them into *units* (one `Persist` and the actions after it);
//! [`Outbox::flush`] applies the units' writes in order, one transaction each, and moves a unit's
//! actions to the ready queue only once its transaction committed.
//!
//! # When the store fails
//! Terragraph keeps its upgrade state in memory only; the first meshlift engine wrote SQLite but,
//! when a write failed, dropped the writes and sent the actions anyway — a COMMIT could go out
//! with no record that it did, and a restarted controller would send it again. Here a failed
//! write releases **nothing** of its unit: the ops and the actions are kept, the write is retried
//! with a backoff (100 ms doubling to 5 s: a full disk or a locked file clears in seconds to
//! minutes, and a tighter loop would only burn the CPU the loop needs for status acks), and the
//! controller is *degraded* ([`Outbox::degraded`]) until a retry succeeds. Units pushed meanwhile
//! queue behind the failed one (order is what makes them correct: a batch's COMMITs after the
//! write that records them), so no new action goes out until the whole backlog is durable. The
//! recovery is journaled in the same transaction as the first write that succeeds.
//!
//! The backlog is bounded in units ([`UNITS_MAX`]); past it, new units are merged into the last
//! one (still in order, still all-or-nothing). Its ops are bounded by what the engine writes,
//! which is one row per state transition, not per status report.
//!
//! No clock here either: `now` comes from the shell, so the backoff is tested with a fake clock.

use std::collections::VecDeque;

use crate::engine::{Action, Engine};
use crate::store::{JournalEntry, JournalKind, Store, StoreError, StoreOp};

/// First retry after a failed write.
pub const RETRY_FIRST_MS: u64 = 100;
/// Longest wait between two retries.
pub const RETRY_MAX_MS: u64 = 5_000;
/// Units kept apart in the backlog; beyond, new units are merged into the last one.
pub const UNITS_MAX: usize = 1024;

/// Where the ops go: the SQLite [`Store`] in the controller, a store that fails on demand in
/// tests.
pub trait StateStore {
    /// Apply `ops` in one transaction: all or nothing, durable when it returns `Ok`.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
}

impl StateStore for Store {
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        Store::apply(self, ops)
    }
}

/// Why and since when the controller is degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// The store's last error, as text for `/healthz` and the journal.
    pub error: String,
    /// UNIX ms of the first failure of this episode.
    pub since: u64,
    /// Failed attempts in this episode.
    pub failures: u32,
    /// When the next attempt is due.
    pub retry_at: u64,
    backoff_ms: u64,
}

/// What a [`Outbox::flush`] changed, for the shell's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// A write failed in this flush (the first failure of an episode, or a failed retry).
    pub failed: Option<String>,
    /// The controller was degraded and the backlog is durable again.
    pub recovered: bool,
}

/// One input's writes and the actions released once they are durable.
#[derive(Debug)]
struct Unit {
    ops: Vec<StoreOp>,
    actions: Vec<Action>,
}

/// See the module docs.
pub struct Outbox<S> {
    store: S,
    pending: VecDeque<Unit>,
    ready: VecDeque<Action>,
    degraded: Option<Degraded>,
}

impl<S: StateStore> Outbox<S> {
    pub fn new(store: S) -> Outbox<S> {
        Outbox { store, pending: VecDeque::new(), ready: VecDeque::new(), degraded: None }
    }

    /// The store, for the shell's reads (journal listing, outcomes of old requests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to switch a test's fault on and off.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Drain the engine and queue what it asked for, cut into units at each `Persist`. Actions
    /// before the first `Persist` (an input that wrote nothing) form a unit without writes: it is
    /// still released only after everything queued before it.
    pub fn push_engine(&mut self, engine: &mut Engine) {
        while let Some(action) = engine.poll_action() {
            match action {
                Action::Persist(ops) => self.push_unit(Unit { ops, actions: Vec::new() }),
                other => match self.pending.back_mut() {
                    Some(unit) => unit.actions.push(other),
                    None => self.push_unit(Unit { ops: Vec::new(), actions: vec![other] }),
                },
            }
        }
    }

    fn push_unit(&mut self, unit: Unit) {
        if self.pending.len() >= UNITS_MAX {
            if let Some(last) = self.pending.back_mut() {
                last.ops.extend(unit.ops);
                last.actions.extend(unit.actions);
                return;
            }
        }
        self.pending.push_back(unit);
    }

    /// Write what is due, in order, and move the actions of every durable unit to the ready
    /// queue. While degraded, nothing is attempted before [`Degraded::retry_at`].
    pub fn flush(&mut self, now: u64) -> FlushReport {
        let mut report = FlushReport::default();
        if self.degraded.as_ref().is_some_and(|d| now < d.retry_at) {
            return report;
        }
        while let Some(unit) = self.pending.front_mut() {
            if !unit.ops.is_empty() {
                let recovery = self.degraded.as_ref().map(|d| recovery_line(d, now));
                let result = match &recovery {
                    // The recovery is journaled with the first write that succeeds, in its
                    // transaction: the journal never says "recovered" for a write that is not there.
                    Some(line) => {
                        let mut ops = unit.ops.clone();
                        ops.push(line.clone());
                        self.store.apply(&ops)
                    }
                    None => self.store.apply(&unit.ops),
                };
                if let Err(e) = result {
                    let error = e.to_string();
                    let d = self.degraded.get_or_insert(Degraded {
                        error: error.clone(),
                        since: now,
                        failures: 0,
                        retry_at: now,
                        backoff_ms: RETRY_FIRST_MS / 2,
                    });
                    d.error = error.clone();
                    d.failures += 1;
                    d.backoff_ms = (d.backoff_ms * 2).clamp(RETRY_FIRST_MS, RETRY_MAX_MS);
                    d.retry_at = now.saturating_add(d.backoff_ms);
                    report.failed = Some(error);
                    return report;
                }
                if recovery.is_some() {
                    self.degraded = None;
                    report.recovered = true;
                }
            }
            let unit = self.pending.pop_front().expect("front_mut returned a unit");
            self.ready.extend(unit.actions);
        }
        report
    }

    /// The next action whose writes are durable.
    pub fn pop_ready(&mut self) -> Option<Action> {
        self.ready.pop_front()
    }

    /// Why the controller is degraded (a store write is failing), if it is.
    pub fn degraded(&self) -> Option<&Degraded> {
        self.degraded.as_ref()
    }

    /// When [`Outbox::flush`] must run next: the retry of a failed write.
    pub fn next_deadline(&self) -> Option<u64> {
        self.degraded.as_ref().map(|d| d.retry_at)
    }

    /// Inputs whose writes are not durable yet (their actions are held).
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }
}

fn recovery_line(d: &Degraded, now: u64) -> StoreOp {
    StoreOp::Journal(JournalEntry {
        seq: 0,
        at: now,
        kind: JournalKind::Transition,
        request_id: None,
        node: None,
        operator: None,
        message: format!(
            "store writes durable again after {} failed attempts over {} ms (last error: {}); held actions released",
            d.failures,
            now.saturating_sub(d.since),
            crate::engine::bounded(&d.error)
        ),
    })
}

/// The refusal an operator gets for a request that would change state while the controller is
/// degraded: its decision could not be recorded, so it is not taken.
pub fn degraded_refusal(d: &Degraded) -> String {
    format!(
        "controller degraded: store write failing: {} ({} failed attempts so far); retry later",
        d.error, d.failures
    )
}
