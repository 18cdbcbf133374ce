//! The controller's upgrade engine: a sans-IO state machine (Terragraph's `UpgradeApp`, reference
//! §2, without its sharp edges §2.12).
//!
//! # What it does
//! Operator requests (PREPARE, COMMIT, FULL_UPGRADE = PREPARE then COMMIT under one id) queue
//! FIFO; one runs at a time. A request's node set is evaluated when it starts. Before every batch
//! each pending node goes through the readiness filters ([`readiness`]); a node that is filtered
//! out gets an outcome with a reason there and then. PREPARE batches take up to `limit` nodes in
//! a stable order (retried nodes first, then by name); COMMIT batches come from the commit planner
//! (`meshlift-graph-planner`) run on the *live* topology before every batch. A dispatched node is
//! judged from its reports ([`verdict`]) until it succeeds, fails, or the batch times out; a
//! failure is retried up to `retry_limit` times, after which `skip_failure` decides whether the
//! request goes on. A failing POP stops the request unless `skip_pop_failure`. Stopping a request
//! (failure, POP failure) dispatches no further batch but still watches the in-flight one to its
//! end, so every node that was sent something gets its real outcome. Scheduled commits
//! (`schedule_to_commit_s`) are watched like any other commit; their batch deadline is extended
//! by the delay.
//!
//! Every node of a request ends with exactly one outcome per stage it entered
//! ([`meshlift_protocol::OutcomeKind`]); a FULL_UPGRADE carries only the nodes whose PREPARE
//! succeeded into its COMMIT stage.
//!
//! # Contract with the shell
//! The engine never reads a clock, a socket or a file of its own — not even its database; the
//! shell owns them.
//! - Build it with [`Engine::new`] (no history) or [`Engine::from_snapshot`] (the rows the shell
//!   read from the store with `Store::snapshot`: the engine resumes — see *Restart* below).
//! - Feed it inputs, each with the current time `now` in UNIX milliseconds. **Time never goes
//!   backwards** between calls (an earlier `now` is treated as the latest one seen):
//!   - [`Engine::handle_status_report`] for every `StatusReport` (the node is found by MAC; an
//!     unknown MAC is an `Err` the shell turns into a refused `StatusReportAck`);
//!   - [`Engine::handle_operator`] for every operator message; it returns the reply to send;
//!   - [`Engine::add_image`] / [`Engine::remove_image`] after the shell's image store has added
//!     or deleted the file;
//!   - [`Engine::tick`] at [`Engine::next_deadline`], the earliest of the named [`Timer`]s
//!     (batch timeout, start-up grace, commit settle, liveness, journal retention): online/offline
//!     transitions, batch timeouts and link waits are evaluated there. No periodic tick is needed.
//! - After each input, drain [`Engine::poll_action`] until it returns `None`, and carry out the
//!   actions in order ([`Action::Persist`]: write the ops in one transaction;
//!   [`Action::SendToNode`]: send the `UpgradeReq` to the node's current routing identity;
//!   [`Action::Event`]: log / count).
//! - Every input that changed stored state yields **one `Persist`, first**, then its other
//!   actions. The shell (`crate::outbox`) releases those only once the `Persist` is durable, and
//!   holds them (retrying the write, controller degraded) while it is not. So if the controller
//!   dies between the write and the send, the restarted engine finds the node dispatched but
//!   silent, waits for its reports, and re-dispatches only after the batch timeout and only if the
//!   node still reports FLASHED and idle; and if it dies before the write, nothing was sent. It
//!   never re-sends a COMMIT blindly, and never sends one it has no record of.
//!
//! # Restart
//! [`Engine::from_snapshot`] of a store that holds a running request resumes it: the open batch is
//! reloaded with each node's progress and the baseline captured at dispatch, and its nodes are
//! judged from the reports that arrive. No batch is formed until every pending node has reported
//! or `node_alive_timeout` has passed since start, so a fresh controller does not mistake "no
//! report yet" for "offline".
//!
//! # Store failures
//! Not the engine's to see: it hands its writes over and goes on deciding in memory. The shell
//! holds every decision that is not on disk (`crate::outbox`), reports itself degraded
//! (`/healthz`, `meshlift_controller_degraded`) and refuses new state-changing operator requests
//! until the write succeeds.
//!
//! # Panics
//! Nothing from a report, an operator or the store panics the engine: unknown nodes, stale
//! reports and corrupt rows become errors, refusals or events.

mod collateral;
pub mod dump;
pub mod fleet;
mod persist;
pub mod readiness;
mod records;
pub mod request;
mod run;
mod snapshots;
pub mod startup_config;
pub mod timer;
pub mod verdict;
pub mod versions;
mod work;

use std::collections::{BTreeMap, HashSet, VecDeque};

use meshlift_graph_planner::Mesh;
use meshlift_protocol::{
    Ack, FinishedReq, Message, NodeOutcome, Operator, OutcomeKind, StatusReport, Topology, UpgradeImage,
    UpgradeListImagesResp, UpgradeReq, UpgradeStatusType,
};

use crate::store::{JournalEntry, JournalKind, Snapshot, StoreOp};
use request::RequestRun;
pub use request::{Refusal, Stage};
pub use timer::Timer;

/// Engine settings (controller config).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A node is online iff a status report arrived within this time (Terragraph: 30 s).
    pub node_alive_timeout_ms: u64,
    /// Sent in COMMITs whose template has `confirm_timeout_s == 0`.
    pub confirm_timeout_s: u64,
    /// Finished requests kept in memory for the state dump (all stay in the store).
    pub finished_kept: usize,
    /// Journal retention: lines older than this are pruned (config `journal_keep_days`).
    pub journal_keep_ms: u64,
    /// Journal retention: at most this many lines are kept, the newest (config `journal_max_rows`).
    pub journal_max_rows: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_alive_timeout_ms: 30_000,
            confirm_timeout_s: 120,
            finished_kept: 20,
            journal_keep_ms: 90 * DAY_MS,
            journal_max_rows: 100_000,
        }
    }
}

/// One day in ms.
pub const DAY_MS: u64 = 24 * 3_600_000;
/// How often the journal's retention policy runs (and once at start): the journal grows by a few
/// lines per node per request, so an hour's growth is small next to `journal_max_rows`.
pub const JOURNAL_PRUNE_EVERY_MS: u64 = 3_600_000;

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these ops to the store in **one transaction**, and release the actions that follow
    /// it (up to the next `Persist` or the end of the drain) only once that transaction is
    /// durable. First among an input's actions, at most one per input, and only when the input
    /// changed something stored.
    Persist(Vec<StoreOp>),
    /// Send `req` to the node (MAC as in the topology).
    SendToNode { node: String, mac: String, req: Box<UpgradeReq> },
    /// A line for the log and the event stream.
    Event(EngineEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLevel {
    Info,
    Warn,
    Error,
}

/// A state transition or problem worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub level: EventLevel,
    pub request_id: Option<String>,
    pub node: Option<String>,
    pub message: String,
}

/// Errors the shell can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A status report from a MAC that is not in the topology: refuse it (the node is not ours,
    /// or the topology file is out of date).
    #[error("unknown MAC {0}: not a node of the topology")]
    UnknownMac(String),
    /// An image removal that names no stored image.
    #[error("no image named {0:?}")]
    UnknownImage(String),
    /// Removing an image a queued or running request will send would break that request.
    #[error("image {name:?} is used by request {request_id:?}; abort or finish it first")]
    ImageInUse { name: String, request_id: String },
    /// A row of the start-up snapshot does not parse (written by an incompatible build, or
    /// edited by hand): refuse to start rather than resume from a guess.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The upgrade engine. See the module docs for the contract.
pub struct Engine {
    topology: Topology,
    /// The topology interned once for the planner: every batch is planned on a live copy of
    /// `topology`, and interning ~900 000 names per batch at 100 000 sites cost more than the plan.
    mesh: Mesh,
    config: EngineConfig,
    fleet: fleet::Fleet,
    images: BTreeMap<String, UpgradeImage>,
    /// Image name → tags (`image_tags` table).
    tags: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Snapshots by name (`snapshots` table).
    snapshots: BTreeMap<String, meshlift_protocol::fleet::Snapshot>,
    queue: VecDeque<RequestRun>,
    /// Idle, a request between batches, or a request with its batch in flight ([`work::Work`]).
    work: work::Work,
    /// Outcomes of the current request, then of the last finished ones (for the dump).
    outcomes: Vec<NodeOutcome>,
    recent_outcomes: VecDeque<Vec<NodeOutcome>>,
    outcome_counts: BTreeMap<OutcomeKind, u64>,
    finished: VecDeque<FinishedReq>,
    used_ids: HashSet<String>,
    next_seq: u64,
    started_at: u64,
    now: u64,
    /// When the last COMMIT batch closed, or the COMMIT stage of a FULL_UPGRADE began: the next
    /// batch waits for a fresh view (see `run::Engine::settling`).
    last_commit_closed_at: Option<u64>,
    /// Actions of the input being handled; released after its `Persist`.
    staged: Vec<Action>,
    actions: VecDeque<Action>,
    ops: Vec<StoreOp>,
    dirty: Dirty,
    /// By [`fleet::NodeId`]: online at the last tick (for online/offline transition events).
    online: Vec<bool>,
    /// When the journal's retention policy runs next (at the first tick, then hourly).
    next_prune_at: u64,
    /// [`Timer::Liveness`]: no later than the first moment an online node goes offline.
    liveness_at: Option<u64>,
    /// Startup configuration documents, delivered with every PREPARE.
    configs: startup_config::ConfigDocs,
}

/// What must be written at the end of the current input.
#[derive(Default)]
struct Dirty {
    request: bool,
    request_nodes: std::collections::BTreeSet<String>,
    batch: bool,
    batch_nodes: std::collections::BTreeSet<String>,
}

impl Engine {
    /// A new engine with no history (an empty store).
    pub fn new(topology: Topology, config: EngineConfig, now: u64) -> Engine {
        Engine::blank(topology, config, now)
    }

    /// The engine as the store left it: requests, the open batch with each node's progress and
    /// baseline, outcomes and images are reloaded from `snapshot` (read by the shell with
    /// [`crate::store::Store::snapshot`]) and the running request resumes (see the module docs).
    /// The first drain carries a `Persist` journaling the resumption.
    pub fn from_snapshot(
        topology: Topology,
        config: EngineConfig,
        snapshot: Snapshot,
        now: u64,
    ) -> Result<Engine, EngineError> {
        let mut engine = Engine::blank(topology, config, now);
        engine.load(snapshot)?;
        engine.prune_journal_if_due(now);
        engine.flush();
        Ok(engine)
    }

    fn blank(topology: Topology, config: EngineConfig, now: u64) -> Engine {
        let fleet = fleet::Fleet::new(&topology, config.node_alive_timeout_ms);
        let mesh = Mesh::new(&topology);
        let online = vec![false; topology.nodes.len()];
        Engine {
            topology,
            mesh,
            config,
            fleet,
            images: BTreeMap::new(),
            tags: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            queue: VecDeque::new(),
            work: work::Work::Idle,
            outcomes: Vec::new(),
            recent_outcomes: VecDeque::new(),
            outcome_counts: BTreeMap::new(),
            finished: VecDeque::new(),
            used_ids: HashSet::new(),
            next_seq: 1,
            started_at: now,
            now,
            last_commit_closed_at: None,
            staged: Vec::new(),
            actions: VecDeque::new(),
            ops: Vec::new(),
            dirty: Dirty::default(),
            online,
            next_prune_at: now,
            liveness_at: None,
            configs: Default::default(),
        }
    }

    /// A status report from a node. Judges the node (and its wireless neighbours, whose links
    /// it reports) if they are in the in-flight batch.
    pub fn handle_status_report(&mut self, report: StatusReport, now: u64) -> Result<(), EngineError> {
        let now = self.clock(now);
        let Some(id) = self.fleet.id_by_mac(&report.mac) else {
            return Err(EngineError::UnknownMac(report.mac));
        };
        let came_online = self.fleet.record(id, report, now);
        self.arm_liveness(now);
        if came_online && !self.online[id] {
            self.online[id] = true;
            let name = self.topology.nodes[id].name.clone();
            self.event(EventLevel::Info, None, Some(&name), "online".into());
        }
        // The node itself, then (commit only) its wireless neighbours, whose link state it
        // just reported: a rebooted node is done only when its peers see the links up too.
        self.judge_id(id, now);
        if self.work.batch().is_some_and(|b| b.stage == Stage::Commit) {
            let peers: Vec<fleet::NodeId> = self.fleet.wireless_links_id(id).iter().map(|w| w.peer).collect();
            for p in peers {
                self.judge_id(p, now);
            }
        }
        self.advance(now);
        self.flush();
        Ok(())
    }

    /// An operator message; returns the reply.
    pub fn handle_operator(&mut self, msg: Message, now: u64) -> Message {
        let now = self.clock(now);
        let reply = match msg {
            Message::UpgradeGroupReq(mut req) => match self.resolve_request_image(&mut req) {
                Ok(()) => Message::Ack(self.intake(req, now)),
                Err(why) => Message::Ack(Ack::refused(why)),
            },
            Message::ImageRecordsReq(req) => Message::ImageRecords(self.image_records(&req)),
            Message::ImageTagReq(req) => Message::Ack(self.tag_image(req, now)),
            Message::UpgradeAbortReq(req) => Message::Ack(self.abort(req, now)),
            Message::UpgradeStateReq(_) => Message::UpgradeStateDump(self.state_dump()),
            Message::UpgradeCommitPlanReq(req) => Message::UpgradeCommitPlan(self.commit_plan(&req, now)),
            Message::UpgradeListImagesReq(_) => Message::UpgradeListImagesResp(UpgradeListImagesResp {
                images: self.images.values().cloned().collect(),
            }),
            Message::NodeStatusReq(_) => Message::NodeStatusDump(self.node_status(now)),
            Message::VersionsReq(req) => Message::FleetVersions(self.fleet_versions(&req.filter, now)),
            Message::ConfigSetReq(req) => Message::Ack(self.config_set(req, now)),
            Message::ConfigShowReq(req) => match self.config_show(&req) {
                Ok(show) => Message::ConfigShow(show),
                Err(why) => Message::Ack(Ack::refused(why)),
            },
            Message::UpgradeAddImageReq(_) | Message::UpgradeDelImageReq(_) => Message::Ack(Ack::refused(
                "image add/delete is carried out by the controller's image store, not the upgrade engine",
            )),
            other => Message::Ack(Ack::refused(format!("{} is not an operator request", other.kind()))),
        };
        self.advance(now);
        self.flush();
        reply
    }

    /// A node refused an UPGRADE_REQ (its `Ack` said no: "download running", wrong board, …).
    /// The node's attempt fails at once with the node's own reason instead of waiting for the
    /// batch timeout; a refusal for an order the node is no longer awaited on is stale and ignored.
    pub fn handle_node_refusal(&mut self, node: &str, upgrade_req_id: &str, reason: &str, now: u64) -> bool {
        let now = self.clock(now);
        if !self.awaits(node, upgrade_req_id) {
            return false;
        }
        self.node_failed(node, OutcomeKind::Failed, format!("the node refused: {reason}"), true, now);
        self.advance(now);
        self.flush();
        true
    }

    /// Journal an operator action the shell decided on (an authorisation refusal, a key
    /// enrollment): same journal, same `who`, as the engine's own commands.
    pub fn journal_command(&mut self, operator: &Operator, message: String, now: u64) {
        let now = self.clock(now);
        self.command(now, None, operator, message);
        self.flush();
    }

    /// The shell's timer, at [`Engine::next_deadline`] (calling it earlier or more often is
    /// harmless): online/offline transitions, batch timeout, link and BGP waits, the end of the
    /// start-up grace and of a commit settle, journal retention.
    pub fn tick(&mut self, now: u64) {
        let now = self.clock(now);
        let liveness_due = self.liveness_at.is_some_and(|at| now >= at);
        for id in (0..self.online.len()).filter(|_| liveness_due) {
            if self.online[id] && !self.fleet.online_id(id, now) {
                self.online[id] = false;
                let name = self.topology.nodes[id].name.clone();
                self.event(
                    EventLevel::Warn,
                    None,
                    Some(&name),
                    "offline: no status report within node_alive_timeout".into(),
                );
            }
        }
        if liveness_due {
            self.rearm_liveness(now);
        }
        // A PREPARE verdict depends only on the node's own report, judged when it arrives; a
        // COMMIT verdict also on links and peers, so those are re-judged here.
        if let Some(b) = self.work.batch().filter(|b| b.stage == Stage::Commit) {
            let in_flight: Vec<String> = b
                .nodes
                .iter()
                .filter(|(_, n)| matches!(n.progress, request::Progress::InFlight { .. }))
                .map(|(k, _)| k.clone())
                .collect();
            for n in &in_flight {
                self.judge(n, now);
            }
        }
        if self.work.batch().is_some_and(|b| now >= b.deadline) {
            self.time_out_batch(now);
        }
        self.prune_journal_if_due(now);
        self.advance(now);
        self.flush();
    }

    /// Next action, in order. Drain until `None` after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// An image the shell's image store has verified and is seeding.
    pub fn add_image(&mut self, image: UpgradeImage, operator: Operator, now: u64) {
        let now = self.clock(now);
        let msg = format!(
            "image added: {} (version {}, sha256 {})",
            image.name,
            image.version,
            image.sha256.short()
        );
        self.command(now, None, &operator, msg);
        self.ops.push(StoreOp::PutImage { image: image.clone(), at: now });
        self.images.insert(image.name.clone(), image);
        self.flush();
    }

    /// Forget an image. Refused while a queued or running request will send it.
    pub fn remove_image(&mut self, name: &str, operator: Operator, now: u64) -> Result<(), EngineError> {
        let now = self.clock(now);
        if !self.images.contains_key(name) {
            return Err(EngineError::UnknownImage(name.to_string()));
        }
        let user =
            self.work.run().into_iter().chain(self.queue.iter()).find(|r| {
                r.image.as_ref().is_some_and(|i| i.name == name) && r.stage() == Some(Stage::Prepare)
            });
        if let Some(r) = user {
            return Err(EngineError::ImageInUse { name: name.to_string(), request_id: r.id.clone() });
        }
        self.images.remove(name);
        self.tags.remove(name);
        self.command(now, None, &operator, format!("image removed: {name}"));
        self.ops.push(StoreOp::DeleteImage { name: name.to_string() });
        self.flush();
        Ok(())
    }

    // ---- read-only accessors (metrics, tests) ----

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn images(&self) -> impl Iterator<Item = &UpgradeImage> {
        self.images.values()
    }

    /// Id of the running request.
    pub fn current_request_id(&self) -> Option<&str> {
        self.work.run().map(|r| r.id.as_str())
    }

    /// Stage of the running request.
    pub fn current_stage(&self) -> Option<Stage> {
        self.work.run().and_then(|r| r.stage())
    }

    /// Index (from 1) of the in-flight batch in the current stage, 0 if none.
    pub fn current_batch_index(&self) -> u32 {
        self.work.batch().map_or(0, |b| b.index)
    }

    /// The in-flight batch (its request, stage, index and start time), if any.
    pub fn current_batch(&self) -> Option<&request::Batch> {
        self.work.batch()
    }

    /// The node's last status report.
    pub fn node_report(&self, node: &str) -> Option<&StatusReport> {
        self.fleet.get(node).map(|s| &s.report)
    }

    /// Nodes of the in-flight batch still being waited for.
    pub fn in_flight_nodes(&self) -> Vec<&str> {
        self.work.batch().map_or_else(Vec::new, |b| {
            b.nodes
                .iter()
                .filter(|(_, n)| matches!(n.progress, request::Progress::InFlight { .. }))
                .map(|(k, _)| k.as_str())
                .collect()
        })
    }

    /// `node` is still waited for in the current batch of request `request_id`: an UPGRADE_REQ of
    /// that request that could not be sent to it is still worth delivering. Once the request has
    /// moved on (the node timed out, the request finished or was aborted), it is not.
    pub fn awaits(&self, node: &str, request_id: &str) -> bool {
        self.current_request_id() == Some(request_id)
            && self
                .work
                .batch()
                .and_then(|b| b.nodes.get(node))
                .is_some_and(|n| matches!(n.progress, request::Progress::InFlight { .. }))
    }

    /// How many nodes of the in-flight batch are still being waited for (the batch's own count:
    /// no list is built).
    pub fn in_flight_count(&self) -> usize {
        self.work.batch().map_or(0, |b| b.in_flight)
    }

    /// Last reported upgrade status of a node.
    pub fn node_upgrade_status(&self, node: &str) -> Option<UpgradeStatusType> {
        self.fleet.get(node).map(|s| s.report.upgrade_status.us_type)
    }

    /// Whether a node reported within `node_alive_timeout` of `now`.
    pub fn node_online(&self, node: &str, now: u64) -> bool {
        self.fleet.online(node, now)
    }

    /// UNIX ms of the node's last status report.
    pub fn node_last_seen(&self, node: &str) -> Option<u64> {
        self.fleet.last_seen(node)
    }

    pub fn online_count(&self, now: u64) -> usize {
        self.fleet.online_count(now)
    }

    /// Outcomes recorded since this engine started, by kind.
    pub fn outcome_counts(&self) -> &BTreeMap<OutcomeKind, u64> {
        &self.outcome_counts
    }

    /// Retries used per node in the running request.
    pub fn retries(&self) -> BTreeMap<String, u32> {
        self.work.run().map_or_else(BTreeMap::new, |r| {
            r.node_state.iter().filter(|(_, s)| s.retries > 0).map(|(k, s)| (k.clone(), s.retries)).collect()
        })
    }

    /// Requests waiting behind the running one.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Outcomes of the running request so far (or of the last finished one).
    pub fn outcomes(&self) -> &[NodeOutcome] {
        if self.work.run().is_some() || self.recent_outcomes.is_empty() {
            &self.outcomes
        } else {
            self.recent_outcomes.back().map(Vec::as_slice).unwrap_or(&[])
        }
    }

    /// Finished requests, most recent last.
    pub fn finished_requests(&self) -> impl Iterator<Item = &FinishedReq> {
        self.finished.iter()
    }

    /// Write the golden-image loop's state (its JSON) in the same store, in one transaction with
    /// whatever else this input staged: the loop's state and the engine's never drift apart on
    /// disk by more than one input.
    pub fn save_golden(&mut self, body: String, now: u64) {
        let now = self.clock(now);
        self.ops.push(StoreOp::PutGolden { at: now, body });
        self.flush();
    }

    /// Let the running request `request_id` finish its in-flight batch and dispatch no further
    /// one (the golden-image loop's window closed): the nodes still waiting get an `aborted`
    /// outcome with `reason`, the nodes being upgraded are watched to their real outcome, as when
    /// a request stops on a failure. Returns false if that request is not the running one.
    pub fn stop_after_batch(
        &mut self,
        request_id: &str,
        operator: &Operator,
        reason: &str,
        now: u64,
    ) -> bool {
        let now = self.clock(now);
        if self.current_request_id() != Some(request_id) {
            return false;
        }
        self.command(now, Some(request_id), operator, format!("stop after the in-flight batch: {reason}"));
        self.stop(reason.to_string(), now);
        self.advance(now);
        self.flush();
        true
    }

    /// No request running or queued: the golden-image loop may act (Terragraph's rule).
    pub fn is_idle(&self) -> bool {
        self.work.run().is_none() && self.queue.is_empty()
    }

    /// The fleet as the golden-image loop sees it: per node its board and running version as
    /// last reported, the version from the **confirmed active slot** only (a node on trial, or
    /// whose active slot was never confirmed, has no version the loop may compare), online, and
    /// last upgrade status; and the live topology for the safest-first order.
    pub fn golden_fleet(&self, now: u64) -> crate::golden::FleetView {
        let nodes = self
            .topology
            .nodes
            .iter()
            .enumerate()
            .map(|(id, n)| {
                let seen = self.fleet.get_id(id);
                let version = seen.and_then(|s| {
                    let active = s.report.slots.slot(s.report.slots.active);
                    active.confirmed.then(|| active.version.clone()).flatten()
                });
                crate::golden::NodeView {
                    name: n.name.clone(),
                    board: seen.map(|s| s.report.hardware_board_id.clone()),
                    version,
                    online: self.fleet.online_id(id, now),
                    status: seen.map(|s| s.report.upgrade_status.us_type),
                }
            })
            .collect();
        crate::golden::FleetView { nodes, live: Some(self.fleet.live_topology(&self.topology, now)) }
    }

    /// Node outcomes of a request that finished recently (the last few are kept in memory).
    pub fn finished_outcomes(&self, request_id: &str) -> Option<&[NodeOutcome]> {
        self.recent_outcomes
            .iter()
            .rev()
            .find(|o| o.first().is_some_and(|x| x.request_id == request_id))
            .map(Vec::as_slice)
    }

    // ---- internals shared by the submodules ----

    fn clock(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn event(&mut self, level: EventLevel, request_id: Option<&str>, node: Option<&str>, message: String) {
        self.staged.push(Action::Event(EngineEvent {
            level,
            request_id: request_id.map(str::to_string),
            node: node.map(str::to_string),
            message,
        }));
    }

    /// Journal a state transition and log it.
    fn transition(&mut self, now: u64, request_id: Option<&str>, node: Option<&str>, message: String) {
        self.ops.push(StoreOp::Journal(JournalEntry {
            seq: 0,
            at: now,
            kind: JournalKind::Transition,
            request_id: request_id.map(str::to_string),
            node: node.map(str::to_string),
            operator: None,
            message: message.clone(),
        }));
        self.event(EventLevel::Info, request_id, node, message);
    }

    /// Journal an operator command with who and why. Every text is cut to [`JOURNAL_TEXT_MAX`]
    /// bytes: a request (even a refused one) can carry a reason as large as a frame, and a
    /// journal that keeps megabytes per line fills the disk of the controller.
    fn command(&mut self, now: u64, request_id: Option<&str>, operator: &Operator, message: String) {
        let operator =
            Operator { who: bounded(&operator.who), reason: operator.reason.as_deref().map(bounded) };
        let message = bounded(&message);
        self.ops.push(StoreOp::Journal(JournalEntry {
            seq: 0,
            at: now,
            kind: JournalKind::Command,
            request_id: request_id.map(bounded),
            node: None,
            operator: Some(operator.clone()),
            message: message.clone(),
        }));
        let who = if operator.who.is_empty() { "unknown operator" } else { operator.who.as_str() };
        self.event(EventLevel::Info, request_id, None, format!("{who}: {message}"));
    }
}

/// Longest text the journal keeps per field (operator name, reason, message, request id).
pub const JOURNAL_TEXT_MAX: usize = 1024;

/// `text` cut to [`JOURNAL_TEXT_MAX`] bytes at a character boundary, marked when cut.
pub(crate) fn bounded(text: &str) -> String {
    if text.len() <= JOURNAL_TEXT_MAX {
        return text.to_string();
    }
    let mut end = JOURNAL_TEXT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end)
}
