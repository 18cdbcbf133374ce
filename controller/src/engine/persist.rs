//! Writing the engine's state to the store at the end of every input, and reading it back at
//! start.
//!
//! Writes are collected while an input is handled (`ops`, `dirty`) and applied in one transaction
//! by [`Engine::flush`] *before* the input's actions are released to the shell: a message to a
//! node is never sent for a state the disk does not hold.

use super::request::{Batch, BatchNode, BatchNodes, Phase, RequestNode, RequestRun};
use super::{Engine, EngineError, EventLevel};
use crate::store::{from_json, stage_str, to_json, StoreOp};

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

    /// Apply the collected writes in one transaction, then release the staged actions.
    pub(super) fn flush(&mut self) {
        let now = self.now;
        // Most inputs (a report from a node still pending) change nothing that is stored: the
        // request and batch are only taken out (moved) when there is something to write.
        let request_dirty = self.dirty.request || !self.dirty.request_nodes.is_empty();
        if let Some(run) = self.current.take_if(|_| request_dirty) {
            if std::mem::take(&mut self.dirty.request) {
                self.put_request(&run, now);
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
            self.current = Some(run);
        }
        let batch_dirty = self.dirty.batch || !self.dirty.batch_nodes.is_empty();
        if let Some(batch) = self.batch.take_if(|_| batch_dirty) {
            self.put_batch(&batch, true);
            self.batch = Some(batch);
        }
        if request_dirty || batch_dirty {
            self.dirty = Default::default();
        }
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = store.apply(&self.ops) {
                let msg = format!("store write failed ({} changes kept in memory only): {e}", self.ops.len());
                self.store_error = Some(msg.clone());
                self.event(EventLevel::Error, None, None, msg);
            }
        }
        self.ops.clear();
        self.actions.extend(self.staged.drain(..));
    }

    /// Reload state from the store (no-op without one).
    pub(super) fn load(&mut self) -> Result<(), EngineError> {
        let Some(store) = self.store.as_ref() else { return Ok(()) };
        for image in store.images()? {
            self.images.insert(image.name.clone(), image);
        }
        let (docs, last_version) = store.startup_configs()?;
        self.configs = super::startup_config::ConfigDocs::new(docs, last_version);
        let mut current: Option<RequestRun> = None;
        let mut queue = Vec::new();
        let mut finished = Vec::new();
        for row in store.requests()? {
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
            for (node, body) in store.request_nodes(&run.id)? {
                let s: RequestNode = from_json(&format!("request_nodes({}, {node})", run.id), &body)?;
                run.node_state.insert(node, s);
            }
            for row in store.batches(&run.id)?.into_iter().filter(|b| b.open) {
                let mut b: Batch =
                    from_json(&format!("batches({}, {})", row.request_id, row.index), &row.body)?;
                let mut nodes = Vec::new();
                for (node, body) in store.batch_nodes(&run.id, &row.stage, row.index)? {
                    let mut bn: BatchNode = from_json(&format!("batch_nodes({}, {node})", run.id), &body)?;
                    bn.rx_at_dispatch = 0;
                    nodes.push((node, bn));
                }
                b.nodes = BatchNodes::new(nodes, |n| self.fleet.id(n));
                b.recount();
                batch = Some(b);
            }
            self.outcomes = store.outcomes(&run.id)?;
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
        self.current = current;
        self.batch = batch;
        Ok(())
    }
}
