//! Read-only views: the state dump, the per-node status table, and the commit dry run.
//!
//! The dry run (Terragraph's UPGRADE_COMMIT_PLAN, reference §2.10) ignores readiness there, so the
//! real run can differ from it. Here it goes through the same readiness filter and the same batch
//! choice ([`super::run::choose_commit_batch`]) as execution, on the live topology, and says which
//! nodes were filtered and why.

use std::collections::BTreeSet;

use meshlift_graph_planner::PlanRequest;
use meshlift_protocol::{
    BatchNodeView, NodeReason, NodeStatusDump, NodeStatusRow, PlanStrategy, RequestView, StrategyCost,
    UpgradeCommitPlan, UpgradeCommitPlanReq, UpgradeGroupReq, UpgradeGroupType, UpgradeReq, UpgradeReqType,
    UpgradeStateDump, UpgradeStatusType,
};

use super::readiness::{self, Readiness};
use super::request::{Phase, Progress, RequestRun};
use super::run::choose_commit_batch;
use super::Engine;

impl Engine {
    /// UPGRADE_STATE_DUMP.
    pub fn state_dump(&self) -> UpgradeStateDump {
        let view = |r: &RequestRun| RequestView {
            request: r.req.clone(),
            stage: r.stage().map_or(r.req.ur_req.ur_type, |s| r.outcome_stage(s)),
            submitted_at: r.submitted_at,
            started_at: r.started_at,
        };
        let mut dump = UpgradeStateDump {
            cur_req: self.work.run().map(view),
            pending_reqs: self.queue.iter().map(view).collect(),
            finished_reqs: self.finished.iter().cloned().collect(),
            ..Default::default()
        };
        if let Some(run) = self.work.run() {
            dump.pending_nodes = run.pending.clone();
            dump.done_batches = run.done_batches.clone();
            if self.work.batch().is_some() {
                dump.done_batches.pop();
            }
        }
        if let Some(b) = self.work.batch() {
            dump.cur_batch_index = b.index;
            dump.cur_batch = b
                .nodes
                .iter()
                .map(|(name, bn)| {
                    let seen = self.fleet.get(name);
                    let us = seen.map(|s| &s.report.upgrade_status);
                    BatchNodeView {
                        node: name.clone(),
                        state: us.map_or(UpgradeStatusType::None, |u| u.us_type),
                        detail: match &bn.progress {
                            Progress::InFlight { detail } => detail.clone(),
                            Progress::Done { outcome, reason } => format!("{}: {reason}", outcome.as_str()),
                            Progress::Retrying { reason } => format!("will retry: {reason}"),
                        },
                        retries: self
                            .work
                            .run()
                            .and_then(|r| r.node_state.get(name))
                            .map_or(0, |s| s.retries),
                        last_seen: seen.map(|s| s.at),
                        progress_ppm: us.and_then(|u| u.progress.as_ref()).map(|p| p.ppm()),
                    }
                })
                .collect();
        } else if let Some(run) = self.work.run() {
            dump.cur_batch_index = run.done_batches.len() as u32;
        }
        dump.outcomes = self.outcomes.clone();
        for past in self.recent_outcomes.iter().rev() {
            dump.outcomes.extend(past.iter().cloned());
        }
        dump
    }

    /// What `meshlift status` shows, from the last reports.
    pub fn node_status(&self, now: u64) -> NodeStatusDump {
        NodeStatusDump {
            nodes: self
                .topology
                .nodes
                .iter()
                .map(|n| {
                    let seen = self.fleet.get(&n.name);
                    NodeStatusRow {
                        name: n.name.clone(),
                        site: n.site_name.clone(),
                        mac: n.mac_addr.clone(),
                        online: self.fleet.online(&n.name, now),
                        is_pop: n.pop_node,
                        board: seen.map(|s| s.report.hardware_board_id.clone()),
                        version: seen.map(|s| s.report.version.clone()),
                        slots: seen.map(|s| s.report.slots.clone()),
                        upgrade_status: seen.map(|s| s.report.upgrade_status.clone()),
                        last_seen: seen.map(|s| s.at),
                        startup_config: seen.and_then(|s| s.report.startup_config),
                    }
                })
                .collect(),
        }
    }

    /// UPGRADE_COMMIT_PLAN: the dry run. With `version` set, only nodes FLASHED with that
    /// version (and online, not already at it) count as pending, exactly as a COMMIT request with
    /// that version would filter them at its first batch.
    pub fn commit_plan(&self, req: &UpgradeCommitPlanReq, now: u64) -> UpgradeCommitPlan {
        let mut plan = UpgradeCommitPlan::default();
        let kind = if req.revert { UpgradeReqType::RevertToStandby } else { UpgradeReqType::CommitUpgrade };
        let mut group = UpgradeGroupReq::new(UpgradeGroupType::Network, UpgradeReq::new(kind, "dry-run"), 1);
        group.exclude_nodes = req.exclude_nodes.clone();
        group.limit = req.limit;
        group.ap_policy = req.ap_policy;
        group.max_pops_per_batch = req.max_pops_per_batch;
        group.strategy = req.strategy;
        group.version = req.version.clone();
        for n in &req.exclude_nodes {
            if self.topology.node(n).is_none() {
                plan.warnings.push(format!("exclude_nodes names {n:?}, which is not in the topology"));
            }
        }
        let (nodes, _) = super::request::node_set(&group, &self.topology);
        let run = RequestRun {
            id: "dry-run".into(),
            seq: 0,
            req: group.clone(),
            submitted_at: now,
            started_at: Some(now),
            phase: Phase::Running(super::Stage::Commit),
            image: None,
            nodes: nodes.clone(),
            pending: Vec::new(),
            node_state: Default::default(),
            stage_started_at: now,
            done_batches: Vec::new(),
            stop_reason: None,
        };
        let mut pending = BTreeSet::new();
        for n in nodes {
            let Some(node) = self.topology.node(&n) else { continue };
            let r = if req.revert {
                readiness::revert(&run, &self.fleet, node, now)
            } else if req.version.is_some() {
                readiness::commit(&run, &self.fleet, node, now)
            } else {
                Readiness::Dispatch
            };
            match r {
                Readiness::Outcome(kind, reason) => {
                    plan.filtered.push(NodeReason { node: n, reason: format!("{}: {reason}", kind.as_str()) })
                }
                _ => {
                    pending.insert(n);
                }
            }
        }
        let live = self.fleet.live_topology(&self.topology, now);
        let whole = self.mesh.plan_all(&PlanRequest {
            topology: &live,
            pending: &pending,
            limit: req.limit.max(0),
            ap_policy: req.ap_policy,
            max_pops_per_batch: req.max_pops_per_batch,
            strategy: req.strategy,
        });
        // Both strategies' costs: the requested plan is at hand, the other is computed once more.
        for strategy in [PlanStrategy::Terragraph, PlanStrategy::FewestBatches] {
            let cost = if strategy == req.strategy {
                whole.cost()
            } else {
                self.mesh
                    .plan_all(&PlanRequest {
                        topology: &live,
                        pending: &pending,
                        limit: req.limit.max(0),
                        ap_policy: req.ap_policy,
                        max_pops_per_batch: req.max_pops_per_batch,
                        strategy,
                    })
                    .cost()
            };
            plan.costs.push(StrategyCost {
                strategy,
                batches: cost.batches as u64,
                total_outages: cost.total_outages,
                max_outages_per_site: cost.max_outages_per_site,
                largest_blast_radius: cost.largest_blast_radius as u64,
            });
        }
        plan.ap_groups = whole.ap_groups;
        let mut explanation = Vec::new();
        while !pending.is_empty() {
            let c = choose_commit_batch(&self.mesh, &live, &pending, &group);
            plan.warnings.extend(c.warnings);
            if c.nodes.is_empty() {
                for n in &pending {
                    plan.unplanned.push(NodeReason { node: n.clone(), reason: c.explanation.clone() });
                }
                break;
            }
            let nodes = if req.revert {
                // The same check the revert makes before each batch (see `collateral`).
                let (kept, held) = super::collateral::hold_back(&live, c.nodes.clone());
                for (n, spared) in held {
                    pending.remove(&n);
                    let reason = format!(
                        "skipped_not_ready: held back: reverting it would cut off {}, left out of this revert, from every POP",
                        spared.join(", ")
                    );
                    plan.filtered.push(NodeReason { node: n, reason });
                }
                if kept.is_empty() {
                    continue;
                }
                kept
            } else {
                c.nodes
            };
            explanation.push(format!("batch {}: {}", plan.commit_batches.len() + 1, c.explanation));
            for n in &nodes {
                pending.remove(n);
            }
            let mut b = nodes;
            b.sort();
            plan.commit_batches.push(b);
        }
        plan.explanation = explanation.join("\n");
        plan
    }
}
