//! Requests and batches as the engine keeps them (and as the store persists them), and request
//! intake: the checks that turn an operator's `UpgradeGroupReq` into a queued request or a clear
//! refusal.
//!
//! Terragraph accepts requests with an unknown image, a reused id, or no image hash at all
//! (reference §2.3) and only fails later, node by node. meshlift refuses them at the door, with a
//! message that names the field.

use std::collections::{BTreeMap, BTreeSet};

use meshlift_protocol::{
    FinishedReq, OutcomeKind, Sha256Digest, SlotId, Topology, UpgradeGroupReq, UpgradeGroupType,
    UpgradeImage, UpgradeReqType,
};
use serde::{Deserialize, Serialize};

use super::fleet::NodeId;

/// The two stages that run batches. A FULL_UPGRADE runs `Prepare` then `Commit` under one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    Prepare,
    Commit,
}

impl Stage {
    /// The stage as the wire names it (for `NodeOutcome.stage`).
    pub fn req_type(self) -> UpgradeReqType {
        match self {
            Stage::Prepare => UpgradeReqType::PrepareUpgrade,
            Stage::Commit => UpgradeReqType::CommitUpgrade,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Commit => "commit",
        }
    }

    /// First stage of a request type (`None` for RESET_STATUS, which never queues).
    pub fn first_of(t: UpgradeReqType) -> Option<Stage> {
        match t {
            UpgradeReqType::PrepareUpgrade | UpgradeReqType::FullUpgrade => Some(Stage::Prepare),
            // A revert reboots nodes like a commit: same planner, same batches, same waits.
            UpgradeReqType::CommitUpgrade | UpgradeReqType::RevertToStandby => Some(Stage::Commit),
            UpgradeReqType::ResetStatus => None,
        }
    }
}

/// Where a request is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Queued,
    Running(Stage),
    Finished(FinishedReq),
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Running(_) => "running",
            Phase::Finished(_) => "finished",
        }
    }
}

/// A request and everything the engine needs to resume it after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRun {
    pub id: String,
    /// Submission order: the queue is FIFO by `seq`.
    pub seq: u64,
    pub req: UpgradeGroupReq,
    pub submitted_at: u64,
    pub started_at: Option<u64>,
    pub phase: Phase,
    /// The image of a PREPARE, captured at intake: removing the image from the store later does
    /// not change what a running request sends.
    pub image: Option<UpgradeImage>,
    /// The node set, evaluated when the request started (not at submission).
    pub nodes: Vec<String>,
    /// Nodes of the current stage still waiting for a batch; retried nodes go to the front.
    pub pending: Vec<String>,
    /// Per-node state, persisted one row per node (see [`RequestNode`]).
    #[serde(skip)]
    pub node_state: BTreeMap<String, RequestNode>,
    pub stage_started_at: u64,
    /// Batches dispatched in the current stage (their node lists), in order.
    pub done_batches: Vec<Vec<String>>,
    /// Set when the request must not dispatch any more batches (a node failed with
    /// `skip_failure = false`, a POP failed, the operator aborted): the in-flight batch is still
    /// watched to its end so every node gets its real outcome.
    pub stop_reason: Option<String>,
}

/// One node's part in a request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestNode {
    /// Retries used in this request.
    pub retries: u32,
    /// A COMMIT was sent for this request: never send another one unless the node reports
    /// FLASHED and idle again.
    pub commit_sent: bool,
    /// What the first COMMIT captured; a node watched in a later batch is judged against it.
    pub baseline: Option<CommitBaseline>,
    /// When its part in the current stage started (first dispatch).
    pub started_at: Option<u64>,
    /// Final outcome, latest stage wins (the summary, and who goes on from PREPARE to COMMIT).
    pub outcome: Option<OutcomeKind>,
}

impl RequestRun {
    pub fn stage(&self) -> Option<Stage> {
        match &self.phase {
            Phase::Running(s) => Some(*s),
            Phase::Queued => Stage::first_of(self.req.ur_req.ur_type),
            Phase::Finished(_) => None,
        }
    }

    /// The version a node must end up running, when known before dispatch.
    pub fn target_version(&self) -> Option<String> {
        self.req.version.clone().or_else(|| self.image.as_ref().map(|i| i.version.clone()))
    }

    pub fn target_sha(&self) -> Option<Sha256Digest> {
        self.image.as_ref().map(|i| i.sha256).or(self.req.ur_req.sha256)
    }

    /// A REVERT_TO_STANDBY request: its COMMIT-stage batches send REVERTs and are judged by
    /// [`super::verdict::revert`].
    pub fn is_revert(&self) -> bool {
        self.req.ur_req.ur_type == UpgradeReqType::RevertToStandby
    }

    /// The stage as node outcomes name it: a revert's batches are COMMIT-stage batches, but its
    /// outcomes say REVERT_TO_STANDBY.
    pub fn outcome_stage(&self, stage: Stage) -> UpgradeReqType {
        if self.is_revert() {
            UpgradeReqType::RevertToStandby
        } else {
            stage.req_type()
        }
    }
}

/// One node in a dispatched batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchNode {
    pub mac: String,
    pub dispatched_at: u64,
    /// Reports received from the node before dispatch; only later ones are judged. Reset to 0
    /// on reload (the restarted engine has seen no report yet).
    #[serde(default)]
    pub rx_at_dispatch: u64,
    /// `UpgradeReq::attempt` sent: a failure report must carry it to count (a report still
    /// describing the previous, failed attempt says nothing about this one). 0 = not known
    /// (reloaded from an older store): any failure counts.
    #[serde(default)]
    pub attempt: u32,
    pub progress: Progress,
    /// COMMIT only: what the node must come back to.
    pub commit: Option<CommitBaseline>,
}

/// A batch node's progress. `InFlight` is the only state that can still change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// Sent (or, for a node already rebooting from an earlier commit, only watched).
    InFlight { detail: String },
    /// Left the batch with a final outcome.
    Done { outcome: OutcomeKind, reason: String },
    /// Left the batch to be tried again in a later one.
    Retrying { reason: String },
}

/// Captured at COMMIT dispatch (Terragraph's `nodeToNextImage_`, `skipLinks`, `bgpPeers`, kept per
/// batch node so a later batch never consults an earlier batch's map — sharp edge §2.12.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBaseline {
    pub expected_version: String,
    pub expected_sha: Option<Sha256Digest>,
    /// Wireless links of the node that were already dead at dispatch, plus the request's
    /// `skip_links`: not waited for after the reboot.
    pub ignored_links: Vec<String>,
    /// POPs (unless `skip_pop_failure`): uplink/BGP peers up at dispatch.
    pub bgp_peers: Option<u32>,
    /// The node's boot id at dispatch: a report under a new boot id proves it rebooted.
    pub boot_id: String,
    /// REVERT_TO_STANDBY: the slot the node must be running (its standby slot at dispatch).
    #[serde(default)]
    pub expected_slot: Option<SlotId>,
}

/// The in-flight batch of the current request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub request_id: String,
    pub stage: Stage,
    /// From 1 within the stage.
    pub index: u32,
    pub started_at: u64,
    /// Absolute time (ms) at which every node still in flight fails with a timeout.
    pub deadline: u64,
    #[serde(skip)]
    pub nodes: BatchNodes,
    pub explanation: String,
    /// Nodes still in flight; kept as a count so that judging one report is O(1) even when a
    /// 10 000-node prepare runs as one batch.
    #[serde(skip)]
    pub in_flight: usize,
}

impl Batch {
    pub fn recount(&mut self) {
        self.in_flight =
            self.nodes.values().filter(|n| matches!(n.progress, Progress::InFlight { .. })).count();
    }
}

/// A batch's nodes in name order, also found by [`NodeId`] (a node's position in the
/// topology). The set is fixed when the batch is formed (or reloaded); only the nodes' progress
/// changes after that. Judging a report looks its node up here, for every report of every node
/// of a batch that can hold the whole mesh: by id that is an index, by name it was a string
/// search.
#[derive(Debug, Clone, Default)]
pub struct BatchNodes {
    /// Sorted by name, names unique.
    entries: Vec<(String, BatchNode)>,
    /// [`NodeId`] → position in `entries` ([`BatchNodes::ABSENT`] if not in the batch).
    by_id: Vec<u32>,
}

impl BatchNodes {
    const ABSENT: u32 = u32::MAX;

    /// The batch nodes; a name given twice keeps its last entry. `id_of` maps a name to its
    /// [`NodeId`] (`None` for a node no longer in the topology, reloaded from the store: found by
    /// name only).
    pub fn new(
        entries: impl IntoIterator<Item = (String, BatchNode)>,
        id_of: impl Fn(&str) -> Option<NodeId>,
    ) -> BatchNodes {
        // Sorted by name, the last entry of a name kept: what `BTreeMap` collection does.
        let unique: Vec<(String, BatchNode)> =
            entries.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect();
        let mut by_id = Vec::new();
        for (pos, (name, _)) in unique.iter().enumerate() {
            if let Some(id) = id_of(name) {
                if by_id.len() <= id {
                    by_id.resize(id + 1, Self::ABSENT);
                }
                by_id[id] = pos as u32;
            }
        }
        BatchNodes { entries: unique, by_id }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok()
    }

    pub fn get(&self, name: &str) -> Option<&BatchNode> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut BatchNode> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    /// The node with this id, if it is in the batch.
    pub fn by_id_mut(&mut self, id: NodeId) -> Option<&mut BatchNode> {
        let pos = *self.by_id.get(id)?;
        self.entries.get_mut(pos as usize).map(|(_, bn)| bn)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &BatchNode)> {
        self.entries.iter().map(|(n, bn)| (n, bn))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(n, _)| n)
    }

    pub fn values(&self) -> impl Iterator<Item = &BatchNode> {
        self.entries.iter().map(|(_, bn)| bn)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why an operator request was refused at intake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Ids key the journal and the outcomes: reusing one would mix two runs.
    #[error("request id {0:?} was already used; pick a new one")]
    DuplicateId(String),
    #[error("request id is empty")]
    EmptyId,
    #[error("the nodes field is empty (a NODES request must name its nodes)")]
    NoNodes,
    #[error("invalid node: {0} is not in the topology")]
    UnknownNode(String),
    #[error("invalid timeout: {0} (the per-batch timeout must be > 0 seconds)")]
    BadTimeout(u64),
    #[error("a {0} request needs image_name (the image to prepare)")]
    NoImage(&'static str),
    #[error("unknown image {0:?}; add it first (meshlift image add) or check `meshlift image list`")]
    UnknownImage(String),
    #[error("version {asked:?} does not match image {image:?} (version {actual:?})")]
    VersionMismatch { asked: String, image: String, actual: String },
    #[error("request type FULL_UPGRADE/PREPARE/COMMIT/REVERT_TO_STANDBY expected here, got {0:?}")]
    NotQueueable(UpgradeReqType),
}

/// The node set a request names, checked against the topology. Refuses unknown names (in
/// `nodes` and in `exclude_nodes`), as Terragraph does.
pub fn check_node_names(req: &UpgradeGroupReq, topology: &Topology) -> Result<(), Refusal> {
    match req.ug_type {
        UpgradeGroupType::Nodes => {
            if req.nodes.is_empty() {
                return Err(Refusal::NoNodes);
            }
            for n in &req.nodes {
                if topology.node(n).is_none() {
                    return Err(Refusal::UnknownNode(n.clone()));
                }
            }
        }
        UpgradeGroupType::Network => {
            for n in &req.exclude_nodes {
                if topology.node(n).is_none() {
                    return Err(Refusal::UnknownNode(n.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Validate a queueable request (PREPARE, COMMIT, FULL_UPGRADE). Returns the image a PREPARE
/// will send. `retry_limit >= 0` holds by type (`u32`).
pub fn validate(
    req: &UpgradeGroupReq,
    topology: &Topology,
    images: &BTreeMap<String, UpgradeImage>,
    id_used: impl Fn(&str) -> bool,
) -> Result<Option<UpgradeImage>, Refusal> {
    let id = &req.ur_req.upgrade_req_id;
    if id.trim().is_empty() {
        return Err(Refusal::EmptyId);
    }
    if id_used(id) {
        return Err(Refusal::DuplicateId(id.clone()));
    }
    check_node_names(req, topology)?;
    if req.timeout_s == 0 {
        return Err(Refusal::BadTimeout(req.timeout_s));
    }
    match req.ur_req.ur_type {
        UpgradeReqType::PrepareUpgrade | UpgradeReqType::FullUpgrade => {
            let what =
                if req.ur_req.ur_type == UpgradeReqType::FullUpgrade { "FULL_UPGRADE" } else { "PREPARE" };
            let name = req.ur_req.image_name.as_ref().ok_or(Refusal::NoImage(what))?;
            let image = images.get(name).ok_or_else(|| Refusal::UnknownImage(name.clone()))?;
            if let Some(v) = &req.version {
                if v.trim() != image.version.trim() {
                    return Err(Refusal::VersionMismatch {
                        asked: v.clone(),
                        image: image.name.clone(),
                        actual: image.version.clone(),
                    });
                }
            }
            Ok(Some(image.clone()))
        }
        UpgradeReqType::CommitUpgrade | UpgradeReqType::RevertToStandby => Ok(None),
        t @ UpgradeReqType::ResetStatus => Err(Refusal::NotQueueable(t)),
    }
}

/// The node set of a request when it starts, sorted, and the nodes it excludes.
pub fn node_set(req: &UpgradeGroupReq, topology: &Topology) -> (Vec<String>, Vec<String>) {
    match req.ug_type {
        UpgradeGroupType::Nodes => {
            let set: BTreeSet<String> =
                req.nodes.iter().filter(|n| topology.node(n).is_some()).cloned().collect();
            (set.into_iter().collect(), Vec::new())
        }
        UpgradeGroupType::Network => {
            let excluded: BTreeSet<&String> = req.exclude_nodes.iter().collect();
            let mut nodes: Vec<String> =
                topology.nodes.iter().map(|n| &n.name).filter(|n| !excluded.contains(n)).cloned().collect();
            nodes.sort();
            let mut ex: Vec<String> = excluded.into_iter().cloned().collect();
            ex.sort();
            (nodes, ex)
        }
    }
}
