//! What the engine is doing, as one value: nothing, a request between two batches, or a request
//! with its batch in flight. The earlier engine kept `current: Option<RequestRun>` and
//! `batch: Option<Batch>` side by side, which could hold a batch of no request; this type
//! cannot. A request that must dispatch no further batch (`RequestRun::stop_reason`: a failure
//! with `skip_failure = false`, a POP failure, an abort, the golden window closing) but still has
//! a batch in flight is *draining* (`InBatch` with a stop reason): the reason stays in the request's
//! record because it is persisted with it, and a restarted engine must keep draining.

use super::request::{Batch, RequestRun};

#[derive(Debug, Default)]
pub(super) enum Work {
    /// No request running (some may be queued).
    #[default]
    Idle,
    /// A request is running and no batch is in flight: the next one forms when the request's
    /// waits allow (start-up grace, commit settle), or the stage ends.
    Running(RequestRun),
    /// A request with its batch in flight.
    InBatch(RequestRun, Batch),
}

impl Work {
    pub(super) fn run(&self) -> Option<&RequestRun> {
        match self {
            Work::Idle => None,
            Work::Running(run) | Work::InBatch(run, _) => Some(run),
        }
    }

    pub(super) fn run_mut(&mut self) -> Option<&mut RequestRun> {
        match self {
            Work::Idle => None,
            Work::Running(run) | Work::InBatch(run, _) => Some(run),
        }
    }

    pub(super) fn batch(&self) -> Option<&Batch> {
        match self {
            Work::InBatch(_, batch) => Some(batch),
            _ => None,
        }
    }

    pub(super) fn batch_mut(&mut self) -> Option<&mut Batch> {
        match self {
            Work::InBatch(_, batch) => Some(batch),
            _ => None,
        }
    }

    /// The request and its batch at once (a verdict reads one and writes the other).
    pub(super) fn parts_mut(&mut self) -> (Option<&mut RequestRun>, Option<&mut Batch>) {
        match self {
            Work::Idle => (None, None),
            Work::Running(run) => (Some(run), None),
            Work::InBatch(run, batch) => (Some(run), Some(batch)),
        }
    }

    /// Close the batch in flight: back to `Running`.
    pub(super) fn take_batch(&mut self) -> Option<Batch> {
        match std::mem::take(self) {
            Work::InBatch(run, batch) => {
                *self = Work::Running(run);
                Some(batch)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Put a batch taken with [`Work::take_batch`] back (a request between batches only).
    pub(super) fn restore_batch(&mut self, batch: Batch) {
        if let Work::Running(run) = std::mem::take(self) {
            *self = Work::InBatch(run, batch);
        }
    }

    /// The request (and its batch, if any) leaves: back to `Idle`.
    pub(super) fn take_run(&mut self) -> Option<(RequestRun, Option<Batch>)> {
        match std::mem::take(self) {
            Work::Idle => None,
            Work::Running(run) => Some((run, None)),
            Work::InBatch(run, batch) => Some((run, Some(batch))),
        }
    }

    /// The state for a request and, optionally, its batch.
    pub(super) fn of(run: RequestRun, batch: Option<Batch>) -> Work {
        match batch {
            Some(batch) => Work::InBatch(run, batch),
            None => Work::Running(run),
        }
    }
}
