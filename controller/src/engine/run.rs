//! Running requests: intake, starting, forming and dispatching batches, judging nodes, retries,
//! stopping, aborting, finishing.
//!
//! How meshlift differs from Terragraph's `UpgradeApp` here (reference §2.12):
//! - stopping a request never clears the batch under the timeout check (§2.12.1): a stop only
//!   forbids new batches; the in-flight batch is watched to its end;
//! - an offline node at batch formation is a failure that `skip_failure = false` enforces
//!   (§2.12.2);
//! - a failing POP stops the current request: no more batches, pending nodes aborted (§2.12.3);
//! - commit baselines (dead links, BGP peers, expected image) live in each batch node (§2.12.4);
//! - every UpgradeReq is built per node from the request template (§2.12.5);
//! - filtered and dropped nodes get outcomes (§2.12.7);
//! - scheduled commits are watched to the end like any other (§2.12.8);
//! - PREPARE batches take retried nodes first, then names in order; all maps are ordered
//!   (§2.12.9, §2.12.10).

use std::collections::BTreeSet;

use meshlift_graph_planner::{Mesh, PlanRequest};
use meshlift_protocol::{
    Ack, FinishedReq, NodeOutcome, OutcomeKind, StatusReport, Topology, UpgradeAbortReq, UpgradeGroupReq,
    UpgradeImage, UpgradeReq, UpgradeReqType,
};

use super::fleet::{Fleet, NodeId, Seen};
use super::readiness::{self, Readiness};
use super::request::{
    self, Batch, BatchNode, BatchNodes, CommitBaseline, Phase, Progress, RequestRun, Stage,
};
use super::verdict::{self, Verdict};
use super::work::Work;
use super::{Engine, EventLevel};

/// A commit batch chosen by the planner (or "all at once" for `limit < 0`).
pub(super) struct Chosen {
    pub nodes: Vec<String>,
    pub explanation: String,
    pub warnings: Vec<String>,
}

/// The batch choice shared by execution and the dry run. `live` is a live copy of the topology
/// `mesh` was built from.
pub(super) fn choose_commit_batch(
    mesh: &Mesh,
    live: &Topology,
    pending: &BTreeSet<String>,
    req: &UpgradeGroupReq,
) -> Chosen {
    if req.limit < 0 {
        return Chosen {
            nodes: pending.iter().cloned().collect(),
            explanation: "limit < 0: every ready node at once (operator's choice; no isolation check)".into(),
            warnings: Vec::new(),
        };
    }
    let b = mesh.next_batch(&PlanRequest {
        topology: live,
        pending,
        limit: req.limit,
        ap_policy: req.ap_policy,
        max_pops_per_batch: req.max_pops_per_batch,
        strategy: req.strategy,
    });
    Chosen { nodes: b.nodes, explanation: b.explanation, warnings: b.warnings }
}

impl Engine {
    // ---- intake ----

    pub(super) fn intake(&mut self, req: UpgradeGroupReq, now: u64) -> Ack {
        let id = req.ur_req.upgrade_req_id.clone();
        let kind = format!("{:?}", req.ur_req.ur_type);
        if req.ur_req.ur_type == UpgradeReqType::ResetStatus {
            return self.reset_status(req, now);
        }
        let used = |i: &str| self.used_ids.contains(i);
        match request::validate(&req, &self.topology, &self.images, used) {
            Err(refusal) => {
                self.command(now, Some(&id), &req.operator, format!("{kind} request refused: {refusal}"));
                Ack::refused(refusal.to_string())
            }
            Ok(image) => {
                self.command(now, Some(&id), &req.operator, format!("{kind} request queued"));
                let run = RequestRun {
                    id: id.clone(),
                    seq: self.next_seq,
                    req,
                    submitted_at: now,
                    started_at: None,
                    phase: Phase::Queued,
                    image,
                    nodes: Vec::new(),
                    pending: Vec::new(),
                    node_state: Default::default(),
                    stage_started_at: 0,
                    done_batches: Vec::new(),
                    stop_reason: None,
                };
                self.next_seq += 1;
                self.used_ids.insert(id.clone());
                self.put_request(&run, now);
                self.queue.push_back(run);
                Ack::ok(id)
            }
        }
    }

    /// RESET_STATUS: immediate, never queued (Terragraph §2.10).
    fn reset_status(&mut self, req: UpgradeGroupReq, now: u64) -> Ack {
        let id = req.ur_req.upgrade_req_id.clone();
        if let Err(refusal) = request::check_node_names(&req, &self.topology) {
            self.command(now, Some(&id), &req.operator, format!("RESET_STATUS refused: {refusal}"));
            return Ack::refused(refusal.to_string());
        }
        let (nodes, _) = request::node_set(&req, &self.topology);
        self.command(now, Some(&id), &req.operator, format!("RESET_STATUS sent to {} nodes", nodes.len()));
        for n in &nodes {
            self.send(n, UpgradeReq::new(UpgradeReqType::ResetStatus, id.clone()));
        }
        Ack::ok(format!("reset sent to {} nodes", nodes.len()))
    }

    fn send(&mut self, node: &str, req: UpgradeReq) {
        if let Some(n) = self.topology.node(node) {
            if !n.mac_addr.is_empty() {
                self.staged.push(super::Action::SendToNode {
                    node: node.to_string(),
                    mac: n.mac_addr.clone(),
                    req: Box::new(req),
                });
            }
        }
    }

    // ---- abort ----

    pub(super) fn abort(&mut self, req: UpgradeAbortReq, now: u64) -> Ack {
        let who =
            if req.operator.who.is_empty() { "an operator".to_string() } else { req.operator.who.clone() };
        let why = match &req.operator.reason {
            Some(r) => format!("aborted by {who}: {r}"),
            None => format!("aborted by {who}"),
        };
        let mut ids: Vec<String> = if req.abort_all {
            self.work.run().into_iter().chain(self.queue.iter()).map(|r| r.id.clone()).collect()
        } else {
            req.req_ids.clone()
        };
        ids.dedup();
        let known: Vec<String> = ids
            .iter()
            .filter(|i| {
                self.work.run().is_some_and(|r| &r.id == *i) || self.queue.iter().any(|r| &r.id == *i)
            })
            .cloned()
            .collect();
        let unknown: Vec<String> = ids.iter().filter(|i| !known.contains(i)).cloned().collect();
        let summary = format!(
            "abort {} (reset_status: {}){}",
            if req.abort_all { "all".to_string() } else { ids.join(", ") },
            req.reset_status,
            if unknown.is_empty() {
                String::new()
            } else {
                format!("; not running or queued: {}", unknown.join(", "))
            }
        );
        self.command(now, None, &req.operator, summary);
        if known.is_empty() && !req.abort_all {
            return Ack::refused(format!("no running or queued request with id {}", unknown.join(", ")));
        }
        // Queued requests first: they never started.
        let queued: Vec<RequestRun> = {
            let (gone, keep): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|r| known.contains(&r.id));
            self.queue = keep.into();
            gone
        };
        for mut run in queued {
            let stage = run.stage().unwrap_or(Stage::Prepare);
            let (nodes, _) = request::node_set(&run.req, &self.topology);
            for n in &nodes {
                let o = outcome(
                    &run.id,
                    run.outcome_stage(stage),
                    n,
                    OutcomeKind::Aborted,
                    format!("{why} before it started"),
                    now,
                    now,
                );
                self.save_outcome(o);
            }
            run.nodes = nodes;
            let f = FinishedReq {
                request_id: run.id.clone(),
                success: false,
                summary: format!("{why} before it started"),
                finished_at: now,
            };
            run.phase = Phase::Finished(f.clone());
            self.put_request(&run, now);
            self.remember_finished(f);
            self.transition(now, Some(&run.id), None, format!("request {why} before it started"));
        }
        let current_hit = self.work.run().is_some_and(|r| known.contains(&r.id));
        if current_hit {
            if let Some(mut batch) = self.work.take_batch() {
                let names: Vec<String> = batch.nodes.keys().cloned().collect();
                for n in names {
                    let Some(bn) = batch.nodes.get_mut(&n) else { continue };
                    if let Progress::InFlight { detail } = &bn.progress {
                        let reason = format!("{why} while in flight ({detail})");
                        bn.progress =
                            Progress::Done { outcome: OutcomeKind::Aborted, reason: reason.clone() };
                        self.dirty.batch_nodes.insert(n.clone());
                        self.record_outcome(&n, OutcomeKind::Aborted, reason, now);
                    }
                }
                batch.in_flight = 0;
                self.work.restore_batch(batch);
                self.close_batch(now);
            }
            self.stop(why.clone(), now);
            let nodes = self.work.run().map(|r| r.nodes.clone()).unwrap_or_default();
            let id = self.work.run().map(|r| r.id.clone()).unwrap_or_default();
            if req.reset_status {
                for n in &nodes {
                    self.send(n, UpgradeReq::new(UpgradeReqType::ResetStatus, id.clone()));
                }
            }
            self.finish(now);
        }
        Ack::ok(if req.abort_all {
            "aborted all requests".to_string()
        } else {
            format!("aborted {}", known.join(", "))
        })
    }

    // ---- the main loop ----

    /// Move the current request forward as far as possible without new input.
    pub(super) fn advance(&mut self, now: u64) {
        // Each round either returns, or finishes something (a batch, a stage, a request) or
        // shrinks the pending set; the bound only guards against a bug looping forever.
        for _ in 0..100_000 {
            if let Some(b) = self.work.batch() {
                if b.in_flight > 0 {
                    return;
                }
                self.close_batch(now);
                continue;
            }
            let Some(run) = self.work.run() else {
                match self.queue.pop_front() {
                    Some(run) => {
                        self.start_request(run, now);
                        continue;
                    }
                    None => return,
                }
            };
            if run.stop_reason.is_some() || run.pending.is_empty() {
                self.end_stage(now);
                continue;
            }
            if self.warming_up(now) || self.settling(now) {
                return;
            }
            self.form_batch(now);
        }
        self.event(EventLevel::Error, None, None, "bug: advance did not settle".into());
    }

    /// After a COMMIT batch closes, the next one is planned only on a fresh view: every online
    /// node must have reported since. The nodes just confirmed report their links back at once,
    /// but their neighbours' last reports may still say those links are down, and a planner fed
    /// that stale view takes a path for dead and can reboot the only way out of a node it does
    /// not know depends on it. Bounded by `node_alive_timeout` (a node silent that long is offline
    /// and does not count).
    fn settling(&self, now: u64) -> bool {
        let Some(closed) = self.last_commit_closed_at else { return false };
        if self.work.run().and_then(|r| r.stage()) != Some(Stage::Commit) {
            return false;
        }
        if now >= closed.saturating_add(self.config.node_alive_timeout_ms) {
            return false;
        }
        self.fleet.any_online_silent_since(closed, now)
    }

    /// Right after start no node has reported yet: wait for them (or for the alive timeout)
    /// rather than skip them all as offline. Every node, not only the pending ones: the planner
    /// judges a batch on the live links, and a link is live only once its ends have reported. A
    /// restarted controller that planned as soon as the last pending node reported, with two
    /// upgraded nodes still silent, took their links for down and rebooted all three neighbours
    /// of an upgraded node in one batch (chaos-bench seed 15: 1 s collateral isolation).
    fn warming_up(&self, now: u64) -> bool {
        now < self.started_at + self.config.node_alive_timeout_ms
            && self.work.run().is_some()
            && self.fleet.any_unreported()
    }

    fn start_request(&mut self, mut run: RequestRun, now: u64) {
        let (nodes, excluded) = request::node_set(&run.req, &self.topology);
        let stage = run.stage().unwrap_or(Stage::Commit);
        run.phase = Phase::Running(stage);
        run.started_at = Some(now);
        run.stage_started_at = now;
        run.pending = nodes.clone();
        run.nodes = nodes;
        let id = run.id.clone();
        let count = run.nodes.len();
        self.outcomes.clear();
        self.work = Work::Running(run);
        self.mark_request();
        self.transition(
            now,
            Some(&id),
            None,
            format!("request started: {} stage, {count} nodes", stage.as_str()),
        );
        for n in excluded {
            self.record_outcome(
                &n,
                OutcomeKind::Excluded,
                "excluded by the request (exclude_nodes)".into(),
                now,
            );
        }
    }

    /// Filter the pending nodes, choose a batch and dispatch it.
    fn form_batch(&mut self, now: u64) {
        let Some((mut run, batch)) = self.work.take_run() else { return };
        let stage = run.stage().unwrap_or(Stage::Commit);
        let mut kept = Vec::new();
        let mut watch = BTreeSet::new();
        let mut filtered = Vec::new();
        for n in std::mem::take(&mut run.pending) {
            let r = match self.topology.node(&n) {
                None => Readiness::Outcome(OutcomeKind::SkippedNotReady, "no longer in the topology".into()),
                Some(node) => match stage {
                    Stage::Prepare => readiness::prepare(&run, &self.fleet, node, now),
                    Stage::Commit if run.is_revert() => readiness::revert(&run, &self.fleet, node, now),
                    Stage::Commit => readiness::commit(&run, &self.fleet, node, now),
                },
            };
            match r {
                Readiness::Dispatch => kept.push(n),
                Readiness::Watch(_) => {
                    watch.insert(n.clone());
                    kept.push(n);
                }
                Readiness::Outcome(kind, reason) => filtered.push((n, kind, reason)),
            }
        }
        run.pending = kept;
        self.work = Work::of(run, batch);
        self.mark_request();
        for (n, kind, reason) in filtered {
            self.record_outcome(&n, kind, reason.clone(), now);
            if kind == OutcomeKind::SkippedOffline {
                self.apply_failure_policy(&n, &reason, now);
            }
        }
        let Some(run) = self.work.run() else { return };
        if run.stop_reason.is_some() || run.pending.is_empty() {
            return;
        }
        let (chosen, explanation) = match stage {
            Stage::Prepare => {
                let take = if run.req.limit <= 0 { run.pending.len() } else { run.req.limit as usize };
                let nodes: Vec<String> = run.pending.iter().take(take).cloned().collect();
                let why = format!(
                    "{} of {} pending nodes (limit {})",
                    nodes.len(),
                    run.pending.len(),
                    run.req.limit
                );
                (nodes, why)
            }
            Stage::Commit if !watch.is_empty() => {
                // Nodes still rebooting from an earlier COMMIT go first and alone: the planner
                // cannot reason about a batch that is half down already.
                (watch.iter().cloned().collect(), "watching nodes still busy with an earlier COMMIT".into())
            }
            Stage::Commit => {
                let live = self.fleet.live_topology(&self.topology, now);
                let pending: BTreeSet<String> = run.pending.iter().cloned().collect();
                let c = choose_commit_batch(&self.mesh, &live, &pending, &run.req);
                let id = run.id.clone();
                for w in &c.warnings {
                    self.event(EventLevel::Warn, Some(&id), None, format!("planner: {w}"));
                }
                let Some(run) = self.work.run() else { return };
                if c.nodes.is_empty() {
                    let reason = format!("the planner found no safe batch: {}", c.explanation);
                    let rest = run.pending.clone();
                    for n in rest {
                        self.record_outcome(&n, OutcomeKind::SkippedNotReady, reason.clone(), now);
                    }
                    if let Some(run) = self.work.run_mut() {
                        run.pending.clear();
                    }
                    return;
                }
                if !run.is_revert() {
                    (c.nodes, c.explanation)
                } else {
                    let (kept, held) = super::collateral::hold_back(&live, c.nodes);
                    for (n, spared) in held {
                        if let Some(run) = self.work.run_mut() {
                            run.pending.retain(|p| p != &n);
                        }
                        let reason = format!(
                            "held back: reverting it would cut off {}, left out of this revert, from every POP",
                            spared.join(", ")
                        );
                        self.record_outcome(&n, OutcomeKind::SkippedNotReady, reason, now);
                    }
                    if kept.is_empty() {
                        return;
                    }
                    (kept, c.explanation)
                }
            }
        };
        self.dispatch(stage, chosen, &watch, explanation, now);
    }

    fn dispatch(
        &mut self,
        stage: Stage,
        chosen: Vec<String>,
        watch: &BTreeSet<String>,
        explanation: String,
        now: u64,
    ) {
        // Called by `form_batch` only, when no batch is in flight.
        let Some((mut run, _)) = self.work.take_run() else { return };
        let index = run.done_batches.len() as u32 + 1;
        let mut timeout_ms = run.req.timeout_s.saturating_mul(1000);
        if stage == Stage::Commit {
            timeout_ms = timeout_ms.saturating_add(run.req.ur_req.schedule_to_commit_s.saturating_mul(1000));
        }
        let mut batch = Batch {
            request_id: run.id.clone(),
            stage,
            index,
            started_at: now,
            deadline: now.saturating_add(timeout_ms),
            nodes: Default::default(),
            explanation: explanation.clone(),
            in_flight: 0,
        };
        let chosen_set: BTreeSet<&String> = chosen.iter().collect();
        run.pending.retain(|n| !chosen_set.contains(n));
        let mut sends = Vec::new();
        let mut batch_nodes = Vec::with_capacity(chosen.len());
        let target_version = run.target_version();
        let target_sha = run.target_sha();
        let revert = run.is_revert();
        for n in &chosen {
            let Some(node) = self.topology.node(n) else { continue };
            let seen = self.fleet.get(n);
            let state = run.node_state.entry(n.clone()).or_default();
            state.started_at.get_or_insert(now);
            let attempt = state.retries + 1;
            let mut commit = None;
            let detail;
            if watch.contains(n) {
                commit = state.baseline.clone();
                detail = "watching: busy with an earlier COMMIT of this request".to_string();
            } else {
                let req = match stage {
                    Stage::Prepare => {
                        let mut r = prepare_req(&run.id, &run.req, run.image.as_ref());
                        r.startup_config = self.startup_config_for(n);
                        r
                    }
                    Stage::Commit => {
                        let report = seen.map(|s| &s.report);
                        let mut ignored = run.req.skip_links.clone();
                        ignored.extend(self.fleet.dead_links(n, now));
                        let base = CommitBaseline {
                            expected_version: target_version
                                .clone()
                                .or_else(|| report.and_then(|r| r.upgrade_status.next_image.version.clone()))
                                .unwrap_or_default(),
                            expected_sha: report
                                .and_then(|r| r.upgrade_status.next_image.sha256)
                                .or(target_sha),
                            ignored_links: ignored,
                            bgp_peers: if node.pop_node && !run.req.skip_pop_failure {
                                report.and_then(|r| r.bgp_peers_up)
                            } else {
                                None
                            },
                            boot_id: report.map(|r| r.boot_id.clone()).unwrap_or_default(),
                            expected_slot: None,
                        };
                        let base = if revert { revert_baseline(base, report) } else { base };
                        state.commit_sent = true;
                        state.baseline = Some(base.clone());
                        commit = Some(base);
                        if revert {
                            revert_req(&run.id, &run.req)
                        } else {
                            commit_req(
                                &run.id,
                                &run.req,
                                target_version.clone(),
                                self.config.confirm_timeout_s,
                            )
                        }
                    }
                };
                detail = if revert {
                    "REVERT sent".to_string()
                } else {
                    format!("{} sent", stage.as_str().to_uppercase())
                };
                let mut req = req;
                req.attempt = attempt;
                if stage == Stage::Prepare {
                    req.swarm_index = sends.len() as u32;
                }
                sends.push((n.clone(), req));
            }
            batch_nodes.push((
                n.clone(),
                BatchNode {
                    mac: node.mac_addr.clone(),
                    dispatched_at: now,
                    rx_at_dispatch: self.fleet.rx(n),
                    attempt,
                    progress: Progress::InFlight { detail },
                    commit,
                },
            ));
        }
        batch.nodes = BatchNodes::new(batch_nodes, |n| self.fleet.id(n));
        batch.recount();
        run.done_batches.push(chosen.clone());
        let id = run.id.clone();
        let nodes: Vec<String> = batch.nodes.keys().cloned().collect();
        self.work = Work::InBatch(run, batch);
        self.mark_request();
        self.mark_batch();
        for n in &nodes {
            self.mark_request_node(n);
            self.mark_batch_node(n);
        }
        self.transition(
            now,
            Some(&id),
            None,
            format!(
                "{} batch {index} dispatched: {} ({explanation})",
                if revert { "revert" } else { stage.as_str() },
                chosen.join(", ")
            ),
        );
        let swarm_size = sends.len() as u32;
        for (n, mut req) in sends {
            if stage == Stage::Prepare {
                req.swarm_size = swarm_size;
            }
            self.send(&n, req);
        }
    }

    // ---- judging ----

    /// Judge a batch node by name (a node reloaded from the store may no longer be in the
    /// topology: it has no id, and no report can arrive for it).
    pub(super) fn judge(&mut self, node: &str, now: u64) {
        match self.fleet.id(node) {
            Some(id) => self.judge_id(id, now),
            None => {
                let (Some(run), Some(batch)) = self.work.parts_mut() else { return };
                let stage = batch.stage;
                let Some(bn) = batch.nodes.get_mut(node) else { return };
                if !matches!(bn.progress, Progress::InFlight { .. }) {
                    return;
                }
                let v = node_verdict(run, stage, bn, node, self.fleet.get(node), &self.fleet, now);
                self.apply_verdict(node, v, now);
            }
        }
    }

    /// Judge a node of the topology if it is in flight in the batch. This runs for every report
    /// of every node of a batch that can hold the whole mesh: one index into the batch, and no
    /// allocation but the progress text while the node is still pending.
    pub(super) fn judge_id(&mut self, id: NodeId, now: u64) {
        let (Some(run), Some(batch)) = self.work.parts_mut() else { return };
        let stage = batch.stage;
        let Some(bn) = batch.nodes.by_id_mut(id) else { return };
        if !matches!(bn.progress, Progress::InFlight { .. }) {
            return;
        }
        let Some(node) = self.topology.nodes.get(id) else { return };
        match node_verdict(run, stage, bn, &node.name, self.fleet.get_id(id), &self.fleet, now) {
            Verdict::Pending(text) => {
                if let Progress::InFlight { detail } = &mut bn.progress {
                    *detail = text;
                }
            }
            v => {
                let name = node.name.clone();
                self.apply_verdict(&name, v, now);
            }
        }
    }

    fn apply_verdict(&mut self, node: &str, v: Verdict, now: u64) {
        match v {
            Verdict::Pending(text) => {
                let bn = self.work.batch_mut().and_then(|b| b.nodes.get_mut(node));
                if let Some(BatchNode { progress: Progress::InFlight { detail }, .. }) = bn {
                    *detail = text;
                }
            }
            Verdict::Success(reason) => self.node_done(node, OutcomeKind::Succeeded, reason, now),
            Verdict::Failure { outcome, reason, retry } => {
                self.node_failed(node, outcome, reason, retry, now)
            }
        }
    }

    pub(super) fn time_out_batch(&mut self, now: u64) {
        let Some(b) = self.work.batch() else { return };
        let secs = now.saturating_sub(b.started_at) / 1000;
        let late: Vec<(String, String)> = b
            .nodes
            .iter()
            .filter_map(|(n, bn)| match &bn.progress {
                Progress::InFlight { detail } => Some((n.clone(), detail.clone())),
                _ => None,
            })
            .collect();
        for (n, detail) in late {
            let seen = match self.fleet.last_seen(&n) {
                Some(at) => format!("last report {}s ago", now.saturating_sub(at) / 1000),
                None => "never reported".to_string(),
            };
            let reason = format!("batch timed out after {secs}s ({detail}; {seen})");
            self.node_failed(&n, OutcomeKind::Failed, reason, true, now);
        }
    }

    fn node_done(&mut self, node: &str, kind: OutcomeKind, reason: String, now: u64) {
        if let Some(b) = self.work.batch_mut() {
            if let Some(bn) = b.nodes.get_mut(node) {
                bn.progress = Progress::Done { outcome: kind, reason: reason.clone() };
                b.in_flight = b.in_flight.saturating_sub(1);
            }
        }
        self.mark_batch_node(node);
        self.record_outcome(node, kind, reason, now);
    }

    /// A dispatched node failed: retry it, or give it its final outcome and apply
    /// `skip_pop_failure` / `skip_failure`.
    pub(super) fn node_failed(
        &mut self,
        node: &str,
        kind: OutcomeKind,
        reason: String,
        retry: bool,
        now: u64,
    ) {
        let Some(run) = self.work.run() else { return };
        let stage = run.stage().unwrap_or(Stage::Commit);
        let is_pop = self.topology.node(node).is_some_and(|n| n.pop_node);
        if stage == Stage::Commit && is_pop && !run.req.skip_pop_failure {
            self.node_done(node, kind, reason.clone(), now);
            self.stop(format!("POP {node} failed to upgrade ({reason}) and skip_pop_failure is false"), now);
            return;
        }
        let used = run.node_state.get(node).map_or(0, |s| s.retries);
        let limit = run.req.retry_limit;
        let id = run.id.clone();
        // A stopped request forms no batch again: a retry queued now would never run and the node
        // would finish with no outcome (fleetsim seeds 8467, 8865: a COMMIT batch timed out after
        // a POP failure had stopped the request). Its failure is final instead.
        let stopped = run.stop_reason.is_some();
        if retry && used < limit && !stopped {
            if let Some(run) = self.work.run_mut() {
                run.node_state.entry(node.to_string()).or_default().retries = used + 1;
                run.pending.insert(0, node.to_string());
            }
            if let Some(b) = self.work.batch_mut() {
                if let Some(bn) = b.nodes.get_mut(node) {
                    bn.progress = Progress::Retrying { reason: reason.clone() };
                    b.in_flight = b.in_flight.saturating_sub(1);
                }
            }
            self.mark_request();
            self.mark_request_node(node);
            self.mark_batch_node(node);
            self.transition(now, Some(&id), Some(node), format!("{reason}; retry {}/{limit}", used + 1));
            return;
        }
        let reason = match (retry, stopped && used < limit) {
            (true, true) => format!("{reason} (not retried: the request is stopped)"),
            (true, false) => format!("{reason} (after {used} retries)"),
            (false, _) => reason,
        };
        self.node_done(node, kind, reason.clone(), now);
        self.apply_failure_policy(node, &reason, now);
    }

    /// `skip_failure = false`: a node's final failure stops the request.
    fn apply_failure_policy(&mut self, node: &str, reason: &str, now: u64) {
        if self.work.run().is_some_and(|r| !r.req.skip_failure) {
            self.stop(format!("{node} failed ({reason}) and skip_failure is false"), now);
        }
    }

    /// No further batches for the current request; pending nodes are aborted with the reason.
    pub(super) fn stop(&mut self, reason: String, now: u64) {
        let Some(run) = self.work.run_mut() else { return };
        if run.stop_reason.is_some() {
            return;
        }
        run.stop_reason = Some(reason.clone());
        let pending = std::mem::take(&mut run.pending);
        let id = run.id.clone();
        self.mark_request();
        self.transition(now, Some(&id), None, format!("request stopped: {reason}"));
        for n in pending {
            self.record_outcome(&n, OutcomeKind::Aborted, format!("request stopped: {reason}"), now);
        }
    }

    fn close_batch(&mut self, now: u64) {
        let Some(batch) = self.work.take_batch() else { return };
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for bn in batch.nodes.values() {
            let k = match &bn.progress {
                Progress::Done { outcome, .. } => outcome.as_str(),
                Progress::Retrying { .. } => "retrying",
                Progress::InFlight { .. } => "in_flight",
            };
            *counts.entry(k).or_default() += 1;
        }
        let text: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        if batch.stage == Stage::Commit {
            self.last_commit_closed_at = Some(now);
        }
        self.put_batch(&batch, false);
        self.transition(
            now,
            Some(&batch.request_id),
            None,
            format!("{} batch {} closed: {}", batch.stage.as_str(), batch.index, text.join(", ")),
        );
    }

    /// The current stage has nothing left: go on to COMMIT (FULL_UPGRADE) or finish.
    fn end_stage(&mut self, now: u64) {
        let Some(run) = self.work.run_mut() else { return };
        let full = run.req.ur_req.ur_type == UpgradeReqType::FullUpgrade;
        if run.stop_reason.is_none() && full && run.stage() == Some(Stage::Prepare) {
            let next: Vec<String> = run
                .nodes
                .iter()
                .filter(|n| run.node_state.get(*n).and_then(|s| s.outcome) == Some(OutcomeKind::Succeeded))
                .cloned()
                .collect();
            if !next.is_empty() {
                run.phase = Phase::Running(Stage::Commit);
                run.stage_started_at = now;
                // The first COMMIT batch waits for a report from every online node, as each later
                // one does after a batch closes ([`Engine::settling`]): a link that went down
                // during PREPARE is known only once its ends have reported it (chaos-bench seed
                // 24: a cut 0.5 s before the stage ended was planned over, and the batch cut off
                // twelve nodes for a second).
                let settle_from = now;
                run.done_batches.clear();
                for s in run.node_state.values_mut() {
                    s.started_at = None;
                    s.retries = 0;
                }
                let nodes: Vec<String> = run.node_state.keys().cloned().collect();
                run.pending = next;
                let id = run.id.clone();
                let count = run.pending.len();
                self.last_commit_closed_at = Some(settle_from);
                self.mark_request();
                for n in nodes {
                    self.mark_request_node(&n);
                }
                self.transition(
                    now,
                    Some(&id),
                    None,
                    format!("commit stage started: {count} prepared nodes"),
                );
                return;
            }
        }
        self.finish(now);
    }

    fn finish(&mut self, now: u64) {
        let Some((mut run, _)) = self.work.take_run() else { return };
        let mut counts = std::collections::BTreeMap::<OutcomeKind, usize>::new();
        for n in &run.nodes {
            if let Some(k) = run.node_state.get(n).and_then(|s| s.outcome) {
                *counts.entry(k).or_default() += 1;
            }
        }
        let bad =
            [OutcomeKind::Failed, OutcomeKind::FellBack, OutcomeKind::SkippedOffline, OutcomeKind::Aborted];
        let success = run.stop_reason.is_none() && !bad.iter().any(|k| counts.contains_key(k));
        let mut summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {}", k.as_str())).collect();
        if let Some(r) = &run.stop_reason {
            summary.push(format!("stopped: {r}"));
        }
        let what = if run.is_revert() { "revert" } else { "upgrade" };
        let summary =
            format!("{what} {}: {}", if success { "succeeded" } else { "failed" }, summary.join(", "));
        let f =
            FinishedReq { request_id: run.id.clone(), success, summary: summary.clone(), finished_at: now };
        run.phase = Phase::Finished(f.clone());
        self.put_request(&run, now);
        self.dirty.request = false;
        self.dirty.request_nodes.clear();
        self.transition(now, Some(&run.id), None, summary);
        self.remember_finished(f);
        let done = std::mem::take(&mut self.outcomes);
        self.recent_outcomes.push_back(done);
        while self.recent_outcomes.len() > 3 {
            self.recent_outcomes.pop_front();
        }
    }

    fn remember_finished(&mut self, f: FinishedReq) {
        self.finished.push_back(f);
        while self.finished.len() > self.config.finished_kept {
            self.finished.pop_front();
        }
    }

    /// Give a node of the current request its outcome for the current stage.
    pub(super) fn record_outcome(&mut self, node: &str, kind: OutcomeKind, reason: String, now: u64) {
        let Some(run) = self.work.run_mut() else { return };
        let stage = run.stage().unwrap_or(Stage::Commit);
        let stage = run.outcome_stage(stage);
        let state = run.node_state.entry(node.to_string()).or_default();
        state.outcome = Some(kind);
        let started = state.started_at.unwrap_or(run.stage_started_at);
        let o = outcome(&run.id, stage, node, kind, reason, started, now);
        self.mark_request_node(node);
        self.save_outcome(o);
    }

    fn save_outcome(&mut self, o: NodeOutcome) {
        *self.outcome_counts.entry(o.outcome).or_default() += 1;
        let msg = format!("{} {}: {}", o.outcome.as_str(), request_stage_name(o.stage), o.reason);
        let level = match o.outcome {
            OutcomeKind::Failed | OutcomeKind::FellBack | OutcomeKind::SkippedOffline => EventLevel::Warn,
            _ => EventLevel::Info,
        };
        self.ops.push(crate::store::StoreOp::Journal(crate::store::JournalEntry {
            seq: 0,
            at: o.finished_at,
            kind: crate::store::JournalKind::Transition,
            request_id: Some(o.request_id.clone()),
            node: Some(o.node.clone()),
            operator: None,
            message: msg.clone(),
        }));
        self.event(level, Some(&o.request_id), Some(&o.node), msg);
        self.ops.push(crate::store::StoreOp::PutOutcome(o.clone()));
        if self.work.run().is_some_and(|r| r.id == o.request_id) {
            self.outcomes.push(o);
        }
    }
}

/// What the fleet's latest reports say about an in-flight batch node.
fn node_verdict(
    run: &RequestRun,
    stage: Stage,
    bn: &BatchNode,
    node: &str,
    seen: Option<&Seen>,
    fleet: &Fleet,
    now: u64,
) -> Verdict {
    match stage {
        Stage::Prepare => verdict::prepare(&run.id, run.target_sha(), seen, bn.rx_at_dispatch, bn.attempt),
        Stage::Commit => match &bn.commit {
            Some(base) if run.is_revert() => {
                verdict::revert(&run.id, node, base, fleet, bn.rx_at_dispatch, now)
            }
            Some(base) => verdict::commit(&run.id, node, base, fleet, bn.rx_at_dispatch, &base.boot_id, now),
            None => Verdict::Pending("no commit baseline recorded; waiting for the batch timeout".into()),
        },
    }
}

fn request_stage_name(t: UpgradeReqType) -> &'static str {
    match t {
        UpgradeReqType::PrepareUpgrade => "prepare",
        UpgradeReqType::CommitUpgrade => "commit",
        UpgradeReqType::ResetStatus => "reset",
        UpgradeReqType::FullUpgrade => "full upgrade",
        UpgradeReqType::RevertToStandby => "revert",
    }
}

fn outcome(
    request_id: &str,
    stage: UpgradeReqType,
    node: &str,
    kind: OutcomeKind,
    reason: String,
    started_at: u64,
    finished_at: u64,
) -> NodeOutcome {
    NodeOutcome {
        request_id: request_id.to_string(),
        stage,
        node: node.to_string(),
        outcome: kind,
        reason,
        started_at,
        finished_at,
    }
}

/// The PREPARE a node receives: the request's template with everything about the image filled
/// in from the stored image (never from another node's request: §2.12.5).
fn prepare_req(id: &str, req: &UpgradeGroupReq, image: Option<&UpgradeImage>) -> UpgradeReq {
    let mut r = req.ur_req.clone();
    r.ur_type = UpgradeReqType::PrepareUpgrade;
    r.upgrade_req_id = id.to_string();
    if let Some(img) = image {
        r.sha256 = Some(img.sha256);
        r.image_name = Some(img.name.clone());
        r.image_url = Some(img.magnet_uri.clone());
        r.http_url = if img.http_uri.is_empty() { None } else { Some(img.http_uri.clone()) };
        r.image_size = Some(img.size);
        r.hardware_board_ids = img.hardware_board_ids.clone();
        r.version = Some(img.version.clone());
    }
    r
}

/// The COMMIT a node receives.
fn commit_req(
    id: &str,
    req: &UpgradeGroupReq,
    version: Option<String>,
    default_confirm_s: u64,
) -> UpgradeReq {
    let mut r = req.ur_req.clone();
    r.ur_type = UpgradeReqType::CommitUpgrade;
    r.upgrade_req_id = id.to_string();
    r.skip_links = req.skip_links.clone();
    if r.confirm_timeout_s == 0 {
        r.confirm_timeout_s = default_confirm_s;
    }
    if r.version.is_none() {
        r.version = version;
    }
    r
}

/// The REVERT a node receives: no image, no trial settings; `version` (if the operator gave one)
/// is the version the standby slot must hold.
fn revert_req(id: &str, req: &UpgradeGroupReq) -> UpgradeReq {
    let mut r = UpgradeReq::new(UpgradeReqType::RevertToStandby, id);
    r.version = req.version.clone();
    r.skip_links = req.skip_links.clone();
    r
}

/// A revert is judged against the node's standby slot at dispatch: the slot it must come back
/// on, and the version and image that slot held.
fn revert_baseline(mut base: CommitBaseline, report: Option<&StatusReport>) -> CommitBaseline {
    if let Some(r) = report {
        let standby = r.slots.standby();
        base.expected_slot = Some(standby.slot);
        base.expected_version = standby.version.clone().unwrap_or_default();
        base.expected_sha = standby.sha256;
    }
    base
}
