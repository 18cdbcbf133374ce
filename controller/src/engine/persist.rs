//! The engine's state as store writes at the end of every input, and rebuilt from a snapshot of
//! the store at start.
//!
//! Writes are collected while an input is handled (`ops`, `dirty`) and handed to the shell by
//! [`Engine::flush`] as one `Action::Persist`, queued *before* the input's other actions: the
//! shell applies it in one transaction and releases the rest only once it is durable, so a
//! message to a node is never sent for a state the disk does not hold. The engine itself never
//! touches the disk.

use super::request::{Batch, BatchNode, BatchNodes, Phase, RequestNode, RequestRun};
use super::work::Work;
use super::{Action, Engine, EngineError};
use crate::store::{from_json, stage_str, to_json, Snapshot, StoreOp};

impl Engine {
    pub(super) fn mark_request(&mut self) {
        self.dirty.request = true;
    }

    pub(super) fn mark_request_node(&mut self, node: &str) {
        self.dirty.request_nodes.insert(node.to_string());
    }

    pub(super) fn mark_batch_node(&mut self, node: &str) {
        self.dirty.batch_nodes.insert(node.to_string());
    }

    pub(super) fn mark_batch(&mut self) {
        self.dirty.batch = true;
    }

    /// A write for a request that is not the current one (queued, finished).
    pub(super) fn put_request(&mut self, run: &RequestRun, now: u64) {
        self.ops.push(StoreOp::PutRequest {
            id: run.id.clone(),
            seq: run.seq,
            state: run.phase.as_str().to_string(),
            submitted_at: run.submitted_at,
            at: now,
            body: to_json(run),
        });
    }

    /// Write the batch header now (used when a batch closes and is dropped from memory).
    pub(super) fn put_batch(&mut self, batch: &Batch, open: bool) {
        let stage = stage_str(batch.stage.req_type()).to_string();
        for n in std::mem::take(&mut self.dirty.batch_nodes) {
            if let Some(bn) = batch.nodes.get(&n) {
                self.ops.push(StoreOp::PutBatchNode {
                    request_id: batch.request_id.clone(),
                    stage: stage.clone(),
                    index: batch.index,
                    node: n,
                    body: to_json(bn),
                });
            }
        }
        self.ops.push(StoreOp::PutBatch {
            request_id: batch.request_id.clone(),
            stage,
            index: batch.index,
            open,
            started_at: batch.started_at,
            body: to_json(batch),
        });
        self.dirty.batch = false;
    }

    /// The journal's retention policy, at start and then every [`super::JOURNAL_PRUNE_EVERY_MS`]:
    /// lines older than `journal_keep_ms` and beyond the newest `journal_max_rows` are deleted
    /// in this input's `Persist`. Requests, batches and outcomes are not pruned: they are one row
    /// per node per request, and a restarted engine needs the running request's.
    pub(super) fn prune_journal_if_due(&mut self, now: u64) {
        if now < self.next_prune_at {
            return;
        }
        self.next_prune_at = now.saturating_add(super::JOURNAL_PRUNE_EVERY_MS);
        self.ops.push(StoreOp::PruneJournal {
            before: now.saturating_sub(self.config.journal_keep_ms),
            keep_rows: self.config.journal_max_rows,
        });
    }

    /// End of an input: its writes become one `Action::Persist`, queued before the input's
    /// other actions (the shell releases those only once the write is durable).
    pub(super) fn flush(&mut self) {
        let now = self.now;
        // Most inputs (a report from a node still pending) change nothing that is stored: the
        // request and batch are only taken out (moved) when there is something to write.
        let request_dirty = self.dirty.request || !self.dirty.request_nodes.is_empty();
        let batch_dirty = self.dirty.batch || !self.dirty.batch_nodes.is_empty();
        if request_dirty || batch_dirty {
            let work = std::mem::take(&mut self.work);
            if let Some(run) = work.run().filter(|_| request_dirty) {
                if std::mem::take(&mut self.dirty.request) {
                    self.put_request(run, now);
                }
                for n in std::mem::take(&mut self.dirty.request_nodes) {
                    if let Some(s) = run.node_state.get(&n) {
                        self.ops.push(StoreOp::PutRequestNode {
                            request_id: run.id.clone(),
                            node: n,
                            body: to_json(s),
                        });
                    }
                }
            }
            if let Some(batch) = work.batch().filter(|_| batch_dirty) {
                self.put_batch(batch, true);
            }
            self.work = work;
            self.dirty = Default::default();
        }
        if !self.ops.is_empty() {
            self.actions.push_back(Action::Persist(std::mem::take(&mut self.ops)));
        }
        self.actions.extend(self.staged.drain(..));
    }

    /// Rebuild the state from the start-up snapshot.
    pub(super) fn load(&mut self, snapshot: Snapshot) -> Result<(), EngineError> {
        let Snapshot {
            images,
            requests,
            running: running_rows,
            golden: _,
            image_tags,
            snapshots,
            startup_configs,
            last_config_version,
        } = snapshot;
        for image in images {
            self.images.insert(image.name.clone(), image);
        }
        self.tags = image_tags;
        for (name, body) in snapshots {
            let snap: meshlift_protocol::fleet::Snapshot = from_json(&format!("snapshots({name})"), &body)?;
            self.snapshots.insert(name, snap);
        }
        self.configs = super::startup_config::ConfigDocs::new(startup_configs, last_config_version);
        let mut current: Option<RequestRun> = None;
        let mut queue = Vec::new();
        let mut finished = Vec::new();
        for row in requests {
            self.used_ids.insert(row.id.clone());
            self.next_seq = self.next_seq.max(row.seq + 1);
            let run: RequestRun = from_json(&format!("requests({})", row.id), &row.body)?;
            match &run.phase {
                Phase::Queued => queue.push(run),
                Phase::Running(_) => {
                    // At most one request runs; if a corrupt file held two, the later one waits.
                    if current.is_none() {
                        current = Some(run);
                    } else {
                        let mut run = run;
                        run.phase = Phase::Queued;
                        queue.push(run);
                    }
                }
                Phase::Finished(f) => finished.push(f.clone()),
            }
        }
        let mut batch = None;
        if let Some(run) = current.as_mut() {
            let rows = running_rows.into_iter().find(|r| r.request_id == run.id).unwrap_or_default();
            for (node, body) in rows.request_nodes {
                let s: RequestNode = from_json(&format!("request_nodes({}, {node})", run.id), &body)?;
                run.node_state.insert(node, s);
            }
            for (row, node_rows) in rows.open_batches {
                let mut b: Batch =
                    from_json(&format!("batches({}, {})", row.request_id, row.index), &row.body)?;
                let mut nodes = Vec::new();
                for (node, body) in node_rows {
                    let mut bn: BatchNode = from_json(&format!("batch_nodes({}, {node})", run.id), &body)?;
                    bn.rx_at_dispatch = 0;
                    nodes.push((node, bn));
                }
                b.nodes = BatchNodes::new(nodes, |n| self.fleet.id(n));
                b.recount();
                batch = Some(b);
            }
            self.outcomes = rows.outcomes;
        }
        finished.sort_by_key(|f| f.finished_at);
        let keep = finished.len().saturating_sub(self.config.finished_kept);
        self.finished = finished.into_iter().skip(keep).collect();
        self.queue = queue.into();
        if let Some(run) = &current {
            let in_flight = batch.as_ref().map_or(0, |b: &Batch| b.in_flight);
            let msg = format!(
                "controller restarted: resuming request {} ({} nodes in flight, {} pending, {} queued behind it)",
                run.id,
                in_flight,
                run.pending.len(),
                self.queue.len()
            );
            let id = run.id.clone();
            self.transition(self.now, Some(&id), None, msg);
        }
        self.work = match current {
            Some(run) => Work::of(run, batch),
            None => Work::Idle,
        };
        Ok(())
    }
}
