//! Per-node targets of a snapshot restore ([`crate::snapshot`]), run by the golden-image
//! reconciler rather than by a second loop: the same engine requests, the same "only when the
//! engine is idle" rule, the same journal.
//!
//! While a restore is active its targets take precedence over every board's golden target: the
//! loop starts no golden wave at all (a wave could otherwise move a node the operator is taking
//! back). The restore does not wait for the loop to be enabled, for the window or the check
//! interval: an operator asked for it now, as for a manual upgrade. Each step is one FULL_UPGRADE
//! request for the pending nodes of one image, with `allow_downgrade` set — the only place the
//! loop ever sets it, and the request's reason says which operator's restore allowed it.
//!
//! A node leaves the restore when its confirmed active slot runs its target version, or when its
//! request ends without that (failed, fell back, skipped: the outcome's reason is kept); the
//! restore ends when no node is pending, with a journal line naming the nodes that did not make it.

use std::collections::{BTreeMap, BTreeSet};

use meshlift_protocol::{
    NodeOutcome, Operator, OutcomeKind, UpgradeGroupReq, UpgradeGroupType, UpgradeReq, UpgradeReqType,
};
use serde::{Deserialize, Serialize};

use super::{busy, journal_loop, FleetView, GoldenAction, Reconciler};

/// What one node must run at the end of the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTarget {
    pub image: String,
    pub version: String,
}

/// A restore in progress (part of the loop's persisted state: a restart resumes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    pub snapshot: String,
    pub targets: BTreeMap<String, NodeTarget>,
    pub who: String,
    pub reason: Option<String>,
    pub started_at: u64,
    /// The request of the current step, until it finishes.
    pub in_flight: Option<String>,
    /// Nodes on their target.
    pub restored: BTreeSet<String>,
    /// Nodes that did not get there, with why.
    pub failed: BTreeMap<String, String>,
}

impl Reconciler {
    /// The restore in progress, if any.
    pub fn restore(&self) -> Option<&Restore> {
        self.state.restore.as_ref()
    }

    /// Start restoring `targets` (the caller refused a second restore and missing images).
    pub fn start_restore(
        &mut self,
        snapshot: &str,
        targets: BTreeMap<String, NodeTarget>,
        operator: &Operator,
        now: u64,
    ) -> Vec<GoldenAction> {
        let now = self.clock(now);
        let n = targets.len();
        self.state.restore = Some(Restore {
            snapshot: snapshot.to_string(),
            targets,
            who: operator.who.clone(),
            reason: operator.reason.clone(),
            started_at: now,
            in_flight: None,
            restored: BTreeSet::new(),
            failed: BTreeMap::new(),
        });
        self.dirty = true;
        vec![journal_loop(format!(
            "restore of snapshot {snapshot}: per-node targets for {n} node(s) take precedence over the golden targets until it ends"
        ))]
    }

    /// The restore's step at a tick; returns true while a restore is active (no golden wave then).
    pub(super) fn restore_tick(
        &mut self,
        fleet: &FleetView,
        engine_idle: bool,
        now: u64,
        out: &mut Vec<GoldenAction>,
    ) -> bool {
        let retry_limit = self.state.settings.retry_limit;
        let timeout = self.state.settings.batch_timeout_s;
        let Some(r) = self.state.restore.as_mut() else { return false };
        if r.in_flight.is_some() || !engine_idle {
            return true;
        }
        let by_name: BTreeMap<&str, _> = fleet.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        // Nodes on their target by now leave the pending set (also ones that got there otherwise).
        for (node, t) in &r.targets {
            if by_name.get(node.as_str()).and_then(|n| n.version.as_deref()) == Some(t.version.as_str()) {
                r.failed.remove(node);
                if r.restored.insert(node.clone()) {
                    self.dirty = true;
                }
            }
        }
        let pending: Vec<(&String, &NodeTarget)> = r
            .targets
            .iter()
            .filter(|(n, _)| !r.restored.contains(*n) && !r.failed.contains_key(*n))
            .collect();
        // One image per step, in name order: its nodes that can take an upgrade now.
        let mut step: Option<(NodeTarget, Vec<String>)> = None;
        let mut offline = Vec::new();
        for (node, t) in pending {
            let Some(view) = by_name.get(node.as_str()) else {
                offline.push((node.clone(), "not in the fleet view".to_string()));
                continue;
            };
            if !view.online {
                offline.push((node.clone(), "offline when its restore step came".to_string()));
                continue;
            }
            if busy(view.status) {
                continue;
            }
            match &mut step {
                None => step = Some((t.clone(), vec![node.clone()])),
                Some((st, nodes)) if st == t => nodes.push(node.clone()),
                Some(_) => {}
            }
        }
        for (node, why) in offline {
            out.push(journal_loop(format!("restore of {}: {node} left out: {why}", r.snapshot)));
            r.failed.insert(node, why);
            self.dirty = true;
        }
        let Some((target, nodes)) = step else {
            if r.targets.keys().any(|n| !r.restored.contains(n) && !r.failed.contains_key(n)) {
                return true; // pending nodes busy with someone else's upgrade: wait for them
            }
            let failed: Vec<String> = r.failed.iter().map(|(n, why)| format!("{n} ({why})")).collect();
            out.push(journal_loop(format!(
                "restore of snapshot {} finished: {} node(s) on their recorded version, {} not: {}",
                r.snapshot,
                r.restored.len(),
                r.failed.len(),
                if failed.is_empty() { "none".to_string() } else { failed.join(", ") }
            )));
            self.state.restore = None;
            self.dirty = true;
            return false;
        };
        self.state.seq += 1;
        let request_id = format!("restore-{}-{}", now, self.state.seq);
        let asked = if r.who.is_empty() { "the operator" } else { r.who.as_str() };
        let reason = format!(
            "restore of snapshot {} asked by {asked}{}: {} to {} (image {}); a downgrade is allowed because the operator asked for this restore",
            r.snapshot,
            r.reason.as_deref().map_or(String::new(), |w| format!(" ({w})")),
            nodes.join(", "),
            target.version,
            target.image
        );
        let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, request_id.clone());
        ur.image_name = Some(target.image.clone());
        ur.version = Some(target.version.clone());
        ur.allow_downgrade = true;
        let mut req = UpgradeGroupReq::new(UpgradeGroupType::Nodes, ur, timeout);
        req.nodes = nodes;
        req.version = Some(target.version.clone());
        req.skip_failure = true;
        req.retry_limit = retry_limit;
        req.operator = Operator { who: r.who.clone(), reason: Some(reason) };
        r.in_flight = Some(request_id);
        self.dirty = true;
        out.push(GoldenAction::Submit {
            board: "restore".into(),
            wave: r.snapshot.clone(),
            request: Box::new(req),
        });
        true
    }

    /// The restore's request finished: each of its nodes restored or failed with the outcome's reason.
    /// Returns false if `request_id` is not the restore's.
    pub(super) fn restore_finished(
        &mut self,
        request_id: &str,
        outcomes: &[NodeOutcome],
        out: &mut Vec<GoldenAction>,
    ) -> bool {
        let Some(r) = self.state.restore.as_mut() else { return false };
        if r.in_flight.as_deref() != Some(request_id) {
            return false;
        }
        r.in_flight = None;
        self.dirty = true;
        let mut last: BTreeMap<&str, &NodeOutcome> = BTreeMap::new();
        for o in outcomes.iter().filter(|o| o.request_id == request_id) {
            last.insert(o.node.as_str(), o);
        }
        let mut n_ok = 0;
        for (node, o) in last {
            let ok = (o.outcome == OutcomeKind::Succeeded && o.stage == UpgradeReqType::CommitUpgrade)
                || o.outcome == OutcomeKind::AlreadyAtVersion;
            if ok {
                r.restored.insert(node.to_string());
                n_ok += 1;
            } else if r.targets.contains_key(node) {
                r.failed.insert(node.to_string(), format!("{}: {}", o.outcome.as_str(), o.reason));
            }
        }
        out.push(journal_loop(format!(
            "restore of {}: request {request_id} finished, {n_ok} node(s) restored",
            r.snapshot
        )));
        true
    }

    /// The engine refused the restore's request: its nodes fail with the engine's reason.
    pub(super) fn restore_refused(
        &mut self,
        request_id: &str,
        reason: &str,
        out: &mut Vec<GoldenAction>,
    ) -> bool {
        let Some(r) = self.state.restore.as_mut() else { return false };
        if r.in_flight.as_deref() != Some(request_id) {
            return false;
        }
        r.in_flight = None;
        let pending: Vec<String> = r
            .targets
            .keys()
            .filter(|n| !r.restored.contains(*n) && !r.failed.contains_key(*n))
            .cloned()
            .collect();
        for n in pending {
            r.failed.insert(n, format!("the engine refused the restore request: {reason}"));
        }
        self.dirty = true;
        out.push(journal_loop(format!(
            "restore of {}: the engine refused {request_id}: {reason}",
            r.snapshot
        )));
        true
    }

    /// Request id of the restore step in flight.
    pub fn restore_in_flight(&self) -> Option<&str> {
        self.state.restore.as_ref().and_then(|r| r.in_flight.as_deref())
    }
}
