//! The simulator: one event queue, a simulated clock that jumps from event to event, the real
//! controller [`Engine`] with its SQLite [`Store`], one real minion [`Agent`] per node, and
//! meshsim's pure link model.
//!
//! # What plays which part
//! - **Controller shell**: what `controller/src/server.rs` does around the engine — routes by the
//!   node's current connection, orders kept for a node without one and sent on its next report if
//!   the engine still awaits it, a refusing `Ack` turned into [`Engine::handle_node_refusal`], a
//!   `StatusReportAck` per report, the engine ticked only at its `next_deadline()`, never on a
//!   period (a wait the engine forgot to name is then served only by the next report, ≤ 5 s
//!   later: a delay the checks see only if it pushes the run past its liveness bound). A crash drops the engine (and with it the
//!   routes, the kept orders and every message not yet delivered) and restarts it later with
//!   `Engine::from_snapshot(…, store reopened .snapshot(), now)`. The engine's writes go through
//!   the shell's real [`Outbox`]: an action is carried out only once its `Persist` is written.
//! - **Minion shell**: what `minion/src/main.rs` does around the agent — the boot step at every
//!   power-on, a status report every 5 s and on `SendStatusNow`, a full report when the
//!   connection comes back, the radio polled within 500 ms of a change, and each [`Action`] carried
//!   out against the in-memory hardware with the minion's own boot functions.
//! - **Network**: a message travels only while its node has an in-band path to a POP
//!   ([`MeshModel::has_path`]); one sent over a broken path waits in the TCP connection and
//!   goes on when the path returns, and is lost when either end restarts (the connection resets).
//!
//! # The clock
//! Simulated UNIX ms, starting at [`T0`]. The next event is the earliest of: message deliveries,
//! the agents' and the engine's deadlines, status and tick timers, downloads, flashes, hooks,
//! boot delays and the fault schedule. Nothing reads a wall clock; the only `Instant` is the
//! model's epoch, and only differences from it are used.

use crate::check::{self, Checker, Violation};
use crate::hardware::Disk;
use crate::images::{finish_flash, start_flash, ImageKind, SimImage, BOARD};
use crate::node::{Proc, SimNode};
use crate::schedule::{Fault, Schedule};
use meshlift_controller::engine::{Action as EngineAction, Engine, EngineConfig};
use meshlift_controller::outbox::Outbox;
use meshlift_controller::store::Store;
use meshlift_image::HookKind;
use meshlift_meshsim::{Change, DownCause, Effect, MeshModel};
use meshlift_minion::boot::{arm_trial, boot_step, confirm_trial, record_trial_failure};
use meshlift_minion::boot_env::{BootEnv, Bootloader};
use meshlift_minion::{Action, Agent, AgentInit, NodeFacts};
use meshlift_protocol::{
    Ack, LinkReport, Message, Operator, StatusReport, UpgradeGroupReq, UpgradeGroupType, UpgradeReq,
    UpgradeReqType,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// Start of simulated time (UNIX ms).
pub const T0: u64 = 1_700_000_000_000;
/// The minion's default `status_interval_s`.
pub const STATUS_INTERVAL_MS: u64 = 5_000;
/// After the last fault has healed, the run must reach a quiet end within this much simulated
/// time, or it counts as a liveness violation.
pub const SETTLE_LIMIT_MS: u64 = 4 * 3_600_000;
/// The request every run submits.
pub const REQUEST_ID: &str = "fleetsim-upgrade";
const OLD_VERSION: &str = "1.0.0";
const NEW_VERSION: &str = "2.0.0";

/// Unique names for the per-run in-memory databases (runs go on in parallel threads).
static STORE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Something that happens at a simulated time.
#[derive(Debug, Clone)]
pub enum Ev {
    Fault(usize),
    RestoreLink(String),
    Resume(String, u64),
    PowerOn(String),
    /// Kill a node's current life (power cut mid-flash, crash in a state).
    Kill(String, u64, DownCause),
    /// The agent exits for its reboot, 200 ms after asking (as the minion shell does).
    ExitForReboot(String, u64),
    StatusTimer(String, u64),
    AgentDeadline(String, u64),
    RadioPoll(String, u64),
    Reconnect(String, u64),
    DownloadDone(String, u64, u64, Result<(), String>),
    FlashDone(String, u64),
    HookDone(String, u64, HookKind, bool),
    ToNode {
        node: String,
        life: u64,
        epoch: u64,
        msg: ToNode,
    },
    ToController {
        node: String,
        life: u64,
        epoch: u64,
        msg: ToController,
    },
    ControllerStart,
    ControllerTick(u64),
    Operator,
}

#[derive(Debug, Clone)]
pub enum ToNode {
    Order(Box<UpgradeReq>),
    ReportAck,
}

#[derive(Debug, Clone)]
pub enum ToController {
    Report(Box<StatusReport>),
    OrderAck { upgrade_req_id: String, ack: Ack },
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` pops the earliest (time, then insertion order).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The controller process and its shell state.
struct Controller {
    engine: Option<Engine>,
    /// The shell's write gate on this process's connection to the store.
    outbox: Option<Outbox<Store>>,
    /// Bumped at every crash: messages of an earlier process are lost with its connections.
    epoch: u64,
    /// Node → the life of the node whose connection the controller last heard from.
    routes: BTreeMap<String, u64>,
    /// Orders that found no connection, sent on the node's next report (server.rs: `undelivered`).
    undelivered: BTreeMap<String, UpgradeReq>,
    /// When the earliest pending `ControllerTick` fires (the shell's sleep until the engine's
    /// next deadline).
    timer_at: Option<u64>,
}

/// What a run did, for the report and the bench.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub nodes: usize,
    pub events: u64,
    pub sim_ms: u64,
    pub faults: usize,
    pub commits_sent: u64,
    pub trials_armed: u64,
    pub fallbacks: u64,
    pub controller_restarts: u64,
    /// Collateral isolation forgiven because a fault changed the mesh under the planner.
    pub isolation_excused: u64,
    pub succeeded: usize,
}

/// The result of one schedule.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub schedule: Schedule,
    pub violations: Vec<Violation>,
    pub stats: RunStats,
}

impl RunReport {
    /// No violation at all, known gaps included.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// No violation other than the known gaps ([`crate::check::KNOWN_GAPS`]).
    pub fn ok_but_known(&self) -> bool {
        self.violations.iter().all(|v| v.known.is_some())
    }
}

/// Run the schedule of `seed` to its end and check every invariant on the way.
pub fn run_seed(seed: u64) -> RunReport {
    run(Schedule::from_seed(seed))
}

/// Run one schedule.
pub fn run(schedule: Schedule) -> RunReport {
    let mut sim = Sim::new(schedule);
    sim.run_to_end();
    let Sim { schedule, checker, stats, .. } = sim;
    RunReport { schedule, violations: checker.into_violations(), stats }
}

pub(crate) struct Sim {
    pub(crate) schedule: Schedule,
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    rng: ChaCha8Rng,
    epoch0: Instant,
    pub(crate) nodes: BTreeMap<String, SimNode>,
    /// The mesh as it is.
    pub(crate) model: MeshModel,
    /// The mesh without upgrade reboots: a node isolated in `model` but not here is isolated
    /// because of another node's upgrade (collateral), not because of a fault.
    pub(crate) shadow: MeshModel,
    ctrl: Controller,
    store_uri: String,
    /// Keeps the in-memory database alive while the controller is down.
    pub(crate) keeper: Store,
    pub(crate) new: SimImage,
    pub(crate) checker: Checker,
    pub(crate) stats: RunStats,
    /// Simulated times of faults that change the mesh or the controller's view of it.
    pub(crate) mesh_faults: Vec<u64>,
    /// Durable view of the engine taken when the controller crashed.
    saved_view: Option<String>,
    faults_over_at: u64,
    /// `FLEETSIM_TRACE=1`: print every event (for replaying a failing seed).
    trace: bool,
    /// The model changed since isolation was last checked (it can only change with the model).
    mesh_changed: bool,
}

impl Sim {
    fn new(schedule: Schedule) -> Sim {
        let rng = ChaCha8Rng::seed_from_u64(schedule.seed ^ 0x5eed_f1ee_7517_0000);
        let epoch0 = Instant::now();
        let (model, _) = MeshModel::new(schedule.topology.clone(), epoch0);
        let (shadow, _) = MeshModel::new(schedule.topology.clone(), epoch0);
        let old = SimImage::new(OLD_VERSION, ImageKind::Good);
        let new = SimImage::new(NEW_VERSION, schedule.image);
        let nodes = schedule
            .topology
            .nodes
            .iter()
            .map(|n| {
                // The factory install, as `meshlift_minion::boot` does it: slot A, confirmed.
                let disk = Disk {
                    env: Some(BootEnv::factory(old.file_sha256)),
                    slot_a: crate::hardware::SlotData {
                        meta: Some(old.slot_image()),
                        payload: old.payload.clone(),
                    },
                    ..Disk::default()
                };
                (n.name.clone(), SimNode::new(n.name.clone(), n.mac_addr.clone(), n.pop_node, disk))
            })
            .collect();
        let store_uri = format!(
            "file:fleetsim-{}-{}?mode=memory&cache=shared",
            schedule.seed,
            STORE_COUNTER.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let keeper =
            Store::open(std::path::Path::new(&store_uri)).expect("an in-memory SQLite database opens");
        let engine = Engine::new(schedule.topology.clone(), EngineConfig::default(), T0);
        let outbox = Outbox::new(
            Store::open(std::path::Path::new(&store_uri)).expect("second connection to the same database"),
        );
        let faults_over_at = schedule
            .faults
            .iter()
            .map(|(at, f)| {
                at + match f {
                    Fault::Hang { for_ms, .. }
                    | Fault::CutLink { for_ms, .. }
                    | Fault::DiskFull { for_ms, .. } => *for_ms,
                    Fault::ControllerCrash { down_ms } => *down_ms,
                    _ => 0,
                }
            })
            .max()
            .unwrap_or(0);
        let stats = RunStats {
            nodes: schedule.topology.nodes.len(),
            faults: schedule.faults.len(),
            ..Default::default()
        };
        let mut sim = Sim {
            now: T0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng,
            epoch0,
            nodes,
            model,
            shadow,
            ctrl: Controller {
                engine: Some(engine),
                outbox: Some(outbox),
                epoch: 0,
                routes: BTreeMap::new(),
                undelivered: BTreeMap::new(),
                timer_at: None,
            },
            store_uri,
            keeper,
            new,
            checker: Checker::default(),
            stats,
            mesh_faults: Vec::new(),
            saved_view: None,
            faults_over_at: T0 + faults_over_at,
            trace: std::env::var_os("FLEETSIM_TRACE").is_some(),
            mesh_changed: false,
            schedule,
        };
        let image = sim.new.upgrade_image();
        if let Some(e) = sim.ctrl.engine.as_mut() {
            e.add_image(image, operator(), T0);
        }
        sim.ctrl_drain();
        for i in 0..sim.schedule.faults.len() {
            let at = T0 + sim.schedule.faults[i].0;
            sim.at(at, Ev::Fault(i));
        }
        let names: Vec<String> = sim.nodes.keys().cloned().collect();
        for n in names {
            let d = sim.rng.gen_range(0..5_000);
            sim.after(d, Ev::PowerOn(n));
        }
        sim.after(1_000, Ev::Operator);
        sim
    }

    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled { at: at.max(self.now), seq: self.seq, ev });
    }

    fn after(&mut self, ms: u64, ev: Ev) {
        self.at(self.now + ms, ev);
    }

    fn instant(&self) -> Instant {
        self.epoch0 + Duration::from_millis(self.now - T0)
    }

    /// Put a message on its node's connection: a random latency, but never ahead of a message
    /// sent earlier in the same direction (one TCP connection delivers in order; a stale report
    /// overtaking a fresh one would show the engine a node going back in time).
    fn transmit(&mut self, ev: Ev) {
        let latency = self.rng.gen_range(2..120);
        let (name, up) = match &ev {
            Ev::ToNode { node, .. } => (node, false),
            Ev::ToController { node, .. } => (node, true),
            _ => return self.after(latency, ev),
        };
        let Some(node) = self.nodes.get_mut(name) else { return };
        let fifo = if up { &mut node.fifo_up } else { &mut node.fifo_down };
        let at = (self.now + latency).max(*fifo);
        *fifo = at;
        self.at(at, ev);
    }

    fn run_to_end(&mut self) {
        let cap = self.faults_over_at + SETTLE_LIMIT_MS;
        while let Some(Scheduled { at, ev, .. }) = self.queue.pop() {
            if at > cap {
                break;
            }
            self.now = at;
            self.stats.events += 1;
            if self.trace {
                eprintln!("t+{:>8} {}", at - T0, brief(&ev));
            }
            let touched = self.handle(ev);
            if let Some(name) = touched {
                check::node_step(self, &name);
            }
            if std::mem::take(&mut self.mesh_changed) {
                check::isolation_step(self);
            }
            if self.now >= self.faults_over_at && self.stats.events.is_multiple_of(16) && self.quiet() {
                break;
            }
        }
        self.stats.sim_ms = self.now - T0;
        check::at_end(self);
    }

    /// The request is over, the controller is up, and every node runs with no upgrade step in
    /// flight: nothing more will happen.
    fn quiet(&self) -> bool {
        let Some(engine) = self.ctrl.engine.as_ref() else { return false };
        if engine.current_request_id().is_some()
            || engine.queue_len() > 0
            || !engine.finished_requests().any(|f| f.request_id == REQUEST_ID)
        {
            return false;
        }
        self.nodes.values().all(|n| {
            n.proc == Proc::Up
                && n.disk.env().is_some_and(|e| e.trial.is_none())
                && !n.flashing
                && n.status().is_some_and(|s| {
                    use meshlift_protocol::UpgradeStatusType as S;
                    !matches!(s, S::Trial | S::Rebooting | S::FlashingImage | S::CommitScheduled)
                })
        })
    }

    /// Carry out one event; returns the node it touched, if any.
    fn handle(&mut self, ev: Ev) -> Option<String> {
        // Events for a frozen process wait for it.
        if let Some((name, life)) = node_event_target(&ev) {
            let node = self.nodes.get_mut(&name)?;
            if node.life != life || node.proc == Proc::Down {
                return None;
            }
            if node.proc == Proc::Hung {
                node.deferred.push(ev);
                return None;
            }
        }
        match ev {
            Ev::Fault(i) => return self.fault(i),
            Ev::RestoreLink(link) => {
                self.mesh_faults.push(self.now);
                self.mesh(Change::RestoreLink(link), true);
            }
            Ev::Resume(name, life) => {
                let node = self.nodes.get_mut(&name)?;
                if node.life != life || node.proc != Proc::Hung {
                    return None;
                }
                node.proc = Proc::Up;
                let deferred = std::mem::take(&mut node.deferred);
                self.mesh_faults.push(self.now);
                self.mesh(Change::NodeResumed(name.clone()), true);
                for ev in deferred {
                    self.after(0, ev);
                }
                return Some(name);
            }
            Ev::PowerOn(name) => {
                self.power_on(&name);
                return Some(name);
            }
            Ev::Kill(name, _, cause) => {
                self.kill(&name, cause, false);
                return Some(name);
            }
            Ev::ExitForReboot(name, _) => {
                self.kill(&name, DownCause::Reboot, true);
                return Some(name);
            }
            Ev::StatusTimer(name, life) => {
                self.send_report(&name);
                self.after(STATUS_INTERVAL_MS, Ev::StatusTimer(name, life));
            }
            Ev::AgentDeadline(name, _) => {
                let now = self.now;
                let node = self.nodes.get_mut(&name)?;
                node.deadline_scheduled = None;
                let agent = node.agent.as_mut()?;
                if agent.next_deadline().is_some_and(|d| d <= now) {
                    agent.handle_timeout(now);
                }
                self.drain_node(&name);
                return Some(name);
            }
            Ev::RadioPoll(name, _) => {
                let links: Vec<LinkReport> = self
                    .model
                    .radio_view(&name)
                    .links
                    .into_iter()
                    .map(|l| LinkReport { name: l.name, up: l.up })
                    .collect();
                let now = self.now;
                self.nodes.get_mut(&name)?.agent.as_mut()?.handle_links(links, now);
                self.drain_node(&name);
            }
            Ev::Reconnect(name, _) => self.send_report(&name),
            Ev::DownloadDone(name, _, job, result) => {
                let now = self.now;
                let node = self.nodes.get_mut(&name)?;
                if node.job != job {
                    return None;
                }
                let result = result.map(|()| image_path(&self.new));
                node.agent.as_mut()?.handle_download_done(result, now);
                self.drain_node(&name);
            }
            Ev::FlashDone(name, _) => {
                let now = self.now;
                let new = self.new.clone();
                let node = self.nodes.get_mut(&name)?;
                node.flashing = false;
                let no_space = node.armed.disk_full_until > now;
                let booted = node.booted;
                let mut slots = node.disk.slots(booted, no_space);
                let result = finish_flash(&new, &mut slots).map_err(|e| e.to_string());
                node.agent.as_mut()?.handle_flash_done(result, now);
                self.drain_node(&name);
                return Some(name);
            }
            Ev::HookDone(name, _, kind, ok) => {
                let now = self.now;
                let result =
                    if ok { Ok(()) } else { Err("post-boot-check exited with status 1".to_string()) };
                self.nodes.get_mut(&name)?.agent.as_mut()?.handle_hook_done(kind, result, now);
                self.drain_node(&name);
                return Some(name);
            }
            Ev::ToNode { node, epoch, msg, .. } => {
                if epoch != self.ctrl.epoch {
                    return None;
                }
                if self.model.has_path(&node) != Some(true) {
                    // Waits in the TCP connection until the path is back.
                    if self.trace {
                        let isolated = self.model.isolated_nodes();
                        eprintln!(
                            "           (no path to {node}: waits; state {:?}; isolated {isolated:?})",
                            self.model.node_state(&node)
                        );
                    }
                    let n = self.nodes.get_mut(&node)?;
                    let life = n.life;
                    n.deferred.push(Ev::ToNode { node: node.clone(), life, epoch, msg });
                    return None;
                }
                return self.node_receive(&node, msg);
            }
            Ev::ToController { node, life, epoch, msg } => {
                // Lost with the connection if either end restarted since it was sent.
                let same_life = self.nodes.get(&node).is_some_and(|n| n.life == life && n.proc != Proc::Down);
                if epoch != self.ctrl.epoch || self.ctrl.engine.is_none() || !same_life {
                    return None;
                }
                if self.model.has_path(&node) != Some(true) {
                    if let Some(n) = self.nodes.get_mut(&node) {
                        n.deferred.push(Ev::ToController { node: node.clone(), life, epoch, msg });
                    }
                    return None;
                }
                self.controller_receive(&node, life, msg);
            }
            Ev::ControllerStart => self.controller_start(),
            Ev::ControllerTick(epoch) => {
                if epoch != self.ctrl.epoch {
                    return None;
                }
                let now = self.now;
                if self.ctrl.timer_at == Some(now) {
                    self.ctrl.timer_at = None;
                }
                if let Some(e) = self.ctrl.engine.as_mut() {
                    // An event left over from a deadline that moved is harmless: the engine is
                    // ticked only when something is due.
                    if e.next_deadline().is_some_and(|d| d <= now) {
                        e.tick(now);
                    }
                    self.ctrl_drain();
                }
            }
            Ev::Operator => {
                let now = self.now;
                let req = self.request();
                if let Some(e) = self.ctrl.engine.as_mut() {
                    match e.handle_operator(Message::UpgradeGroupReq(req), now) {
                        Message::Ack(a) if a.success => {}
                        other => {
                            self.checker.violation(now, format!("the upgrade request was refused: {other:?}"))
                        }
                    }
                    self.ctrl_drain();
                } else {
                    // The operator retries once the controller is back.
                    self.after(5_000, Ev::Operator);
                }
            }
        }
        None
    }

    fn request(&self) -> UpgradeGroupReq {
        let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, REQUEST_ID);
        ur.image_name = Some(NEW_VERSION.into());
        let mut g = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, 300);
        g.limit = self.schedule.limit;
        g.retry_limit = self.schedule.retry_limit;
        g.skip_failure = self.schedule.skip_failure;
        g.operator = operator();
        g
    }

    // ---- faults ----

    fn fault(&mut self, i: usize) -> Option<String> {
        let fault = self.schedule.faults[i].1.clone();
        match fault {
            Fault::Crash { node } => {
                self.kill(&node, DownCause::Crash { code: None }, false);
                return Some(node);
            }
            Fault::CrashInState { node, state } => {
                self.nodes.get_mut(&node)?.armed.crash_in_state = Some(state)
            }
            Fault::Hang { node, for_ms } => {
                let n = self.nodes.get_mut(&node)?;
                if n.proc == Proc::Up {
                    n.proc = Proc::Hung;
                    let life = n.life;
                    self.mesh_faults.push(self.now);
                    self.mesh(Change::NodeHung(node.clone()), true);
                    self.after(for_ms, Ev::Resume(node, life));
                }
            }
            Fault::PowerCutDuringFlash { node } => self.nodes.get_mut(&node)?.armed.power_cut_flash = true,
            Fault::PowerCutDuringEnvWrite { node, applied } => {
                self.nodes.get_mut(&node)?.disk.env_cut = Some(applied)
            }
            Fault::CutLink { link, for_ms } => {
                self.mesh_faults.push(self.now);
                self.mesh(Change::CutLink(link.clone()), true);
                self.after(for_ms, Ev::RestoreLink(link));
            }
            Fault::ControllerCrash { down_ms } => {
                if let Some(engine) = self.ctrl.engine.take() {
                    self.saved_view = Some(check::durable_view(&engine.state_dump()));
                    drop(engine);
                    self.ctrl.outbox = None;
                    self.ctrl.epoch += 1;
                    self.ctrl.routes.clear();
                    self.ctrl.undelivered.clear();
                    self.mesh_faults.push(self.now);
                    self.after(down_ms, Ev::ControllerStart);
                }
            }
            Fault::DiskFull { node, for_ms } => {
                let until = self.now + for_ms;
                let n = self.nodes.get_mut(&node)?;
                n.armed.disk_full_until = n.armed.disk_full_until.max(until);
            }
            Fault::StuckDownload { node } => self.nodes.get_mut(&node)?.armed.stuck_download = true,
            Fault::CorruptDownload { node } => self.nodes.get_mut(&node)?.armed.corrupt_download = true,
        }
        None
    }

    // ---- mesh ----

    /// Apply a change to the model (and to the shadow unless it is an upgrade reboot), then
    /// carry out the effects: radio views are polled by the agents, a restored path reconnects.
    fn mesh(&mut self, change: Change, to_shadow: bool) {
        self.mesh_changed = true;
        let now = self.instant();
        if to_shadow {
            let _ = self.shadow.handle(change.clone(), now);
        }
        let effects = match self.model.handle(change, now) {
            Ok(e) => e,
            Err(e) => {
                self.checker.violation(self.now, format!("simulator bug: mesh model refused a change: {e}"));
                return;
            }
        };
        for effect in effects {
            match effect {
                Effect::WriteRadio { node, .. } => {
                    if let Some(n) = self.nodes.get(&node).filter(|n| n.proc != Proc::Down) {
                        let life = n.life;
                        let d = self.rng.gen_range(0..500);
                        self.after(d, Ev::RadioPoll(node, life));
                    }
                }
                Effect::SetPath { node, has_path: true } => {
                    if let Some(n) = self.nodes.get_mut(&node).filter(|n| n.proc != Proc::Down) {
                        let life = n.life;
                        let stalled: Vec<Ev> = std::mem::take(&mut n.deferred);
                        let (msgs, rest): (Vec<Ev>, Vec<Ev>) = stalled
                            .into_iter()
                            .partition(|e| matches!(e, Ev::ToNode { .. } | Ev::ToController { .. }));
                        n.deferred = rest;
                        for m in msgs {
                            self.transmit(m);
                        }
                        let d = self.rng.gen_range(100..2_000);
                        self.after(d, Ev::Reconnect(node, life));
                    }
                }
                Effect::SetPath { .. } | Effect::Event(_) => {}
            }
        }
    }

    // ---- nodes ----

    /// U-Boot, then the minion's start: the boot step, the slots opened on the booted slot, the
    /// persisted state, [`Agent::new`].
    fn power_on(&mut self, name: &str) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(name) else { return };
        if node.proc != Proc::Down {
            return;
        }
        let outcome = boot_step(&mut node.disk.bootloader(), now);
        if node.disk.power_lost {
            // The power went again while the boot step wrote the environment: try later.
            node.disk.power_lost = false;
            let d = self.rng.gen_range(3_000..15_000);
            let name = name.to_string();
            if node.upgrade_down {
                node.upgrade_down = false;
                let _ = self.shadow.handle(Change::NodeDown(name.clone(), DownCause::Killed), self.instant());
                self.mesh_changed = true;
            }
            self.after(d, Ev::PowerOn(name));
            return;
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.checker.violation(now, format!("{name} bricked: the boot step failed: {e}"));
                return;
            }
        };
        let slot = node.disk.slot(outcome.booted);
        if !slot.bootable() {
            if outcome.trial {
                // The trial slot does not boot; the one-shot trial is consumed, so the reset
                // returns to the active slot (a fallback, caused by the upgrade).
                let d = self.rng.gen_range(3_000..15_000);
                self.after(d, Ev::PowerOn(name.to_string()));
            } else {
                self.checker.violation(
                    now,
                    format!(
                        "{name} bricked: active slot {} holds no bootable image",
                        outcome.booted.as_str()
                    ),
                );
            }
            return;
        }
        node.running_bytes = Sha256::digest(&slot.payload).into();
        let running_hooks: Vec<HookKind> =
            slot.meta.as_ref().map(|m| m.manifest.hooks.iter().map(|h| h.kind).collect()).unwrap_or_default();
        node.booted = outcome.booted;
        node.life += 1;
        node.proc = Proc::Up;
        node.upgrade_down = false;
        node.flashing = false;
        node.deadline_scheduled = None;
        node.deferred.clear();
        let Some(slots) = node.disk.slots_report(outcome.booted) else { return };
        node.agent = Some(Agent::new(AgentInit {
            persisted: node.disk.state.clone(),
            boot: outcome,
            slots,
            running_hooks,
            board: BOARD.into(),
            startup_config: None,
            now,
        }));
        let life = node.life;
        self.mesh(Change::NodeUp(name.to_string()), true);
        let phase = self.rng.gen_range(0..STATUS_INTERVAL_MS);
        self.after(phase, Ev::StatusTimer(name.to_string(), life));
        let d = self.rng.gen_range(0..500);
        self.after(d, Ev::RadioPoll(name.to_string(), life));
        self.drain_node(name);
    }

    /// The node's process ends (`upgrade`: it is the reboot an upgrade asked for).
    fn kill(&mut self, name: &str, cause: DownCause, upgrade: bool) {
        let Some(node) = self.nodes.get_mut(name) else { return };
        if node.proc == Proc::Down {
            return;
        }
        node.proc = Proc::Down;
        node.agent = None;
        node.life += 1;
        node.flashing = false;
        node.deferred.clear();
        node.disk.power_lost = false;
        node.upgrade_down = upgrade;
        // A power cut is a fault even when it hits a node about to reboot for its upgrade: it
        // can come before the batch mates behind the node got their COMMITs.
        if !upgrade || cause == DownCause::Killed {
            self.mesh_faults.push(self.now);
        }
        self.mesh(Change::NodeDown(name.to_string(), cause), !upgrade);
        let d = self.rng.gen_range(3_000..15_000);
        self.after(d, Ev::PowerOn(name.to_string()));
    }

    fn facts(node: &SimNode) -> NodeFacts {
        NodeFacts {
            mac: node.mac.clone(),
            boot_id: format!("boot-{}", node.life),
            hardware_board_id: BOARD.into(),
        }
    }

    fn send_report(&mut self, name: &str) {
        let now = self.now;
        let epoch = self.ctrl.epoch;
        let Some(node) = self.nodes.get_mut(name) else { return };
        if node.proc != Proc::Up {
            return;
        }
        node.seq += 1;
        let Some(slots) = node.disk.slots_report(node.booted) else { return };
        let bgp = node.pop.then_some(2);
        let Some(agent) = node.agent.as_ref() else { return };
        let report = agent.status_report(&Self::facts(node), slots, bgp, node.seq, now);
        let life = node.life;
        self.transmit(Ev::ToController {
            node: name.to_string(),
            life,
            epoch,
            msg: ToController::Report(Box::new(report)),
        });
    }

    fn node_receive(&mut self, name: &str, msg: ToNode) -> Option<String> {
        let now = self.now;
        let epoch = self.ctrl.epoch;
        let node = self.nodes.get_mut(name)?;
        let life = node.life;
        let agent = node.agent.as_mut()?;
        if self.trace {
            eprintln!("           {name} handles it");
        }
        match msg {
            ToNode::Order(req) => {
                let id = req.upgrade_req_id.clone();
                let ack = agent.handle_upgrade_req(*req, now);
                self.transmit(Ev::ToController {
                    node: name.to_string(),
                    life,
                    epoch,
                    msg: ToController::OrderAck { upgrade_req_id: id, ack },
                });
            }
            ToNode::ReportAck => agent.handle_controller_ack(now),
        }
        self.drain_node(name);
        Some(name.to_string())
    }

    /// Carry out the agent's actions as the minion shell does.
    fn drain_node(&mut self, name: &str) {
        loop {
            let now = self.now;
            let Some(node) = self.nodes.get_mut(name) else { return };
            if node.proc != Proc::Up {
                return;
            }
            let life = node.life;
            let Some(action) = node.agent.as_mut().and_then(Agent::poll_action) else { break };
            match action {
                Action::StartDownload(req) => {
                    node.job += 1;
                    let job = node.job;
                    if std::mem::take(&mut node.armed.stuck_download) {
                        continue; // never finishes
                    }
                    let corrupt = std::mem::take(&mut node.armed.corrupt_download);
                    let full = node.armed.disk_full_until > now;
                    let want = req.sha256;
                    let (d, result) = if full {
                        (
                            self.rng.gen_range(100..2_000),
                            Err("no space left on device (os error 28)".to_string()),
                        )
                    } else if corrupt {
                        (
                            self.rng.gen_range(2_000..20_000),
                            Err("downloaded file does not match the announced sha256".to_string()),
                        )
                    } else if want != Some(self.new.file_sha256) {
                        (self.rng.gen_range(100..1_000), Err("no such image at the controller".to_string()))
                    } else {
                        (self.rng.gen_range(2_000..20_000), Ok(()))
                    };
                    self.after(d, Ev::DownloadDone(name.to_string(), life, job, result));
                }
                Action::CancelDownload | Action::CleanDownloads => node.job += 1,
                Action::Flash { image_path: path, .. } => {
                    let image = if path == image_path(&self.new) { Some(self.new.clone()) } else { None };
                    let failed = node.disk.env().map(|e| e.failed.clone()).unwrap_or_default();
                    let no_space = node.armed.disk_full_until > now;
                    let booted = node.booted;
                    let started = match &image {
                        None => Err("cannot read image file: not found".to_string()),
                        Some(image) => {
                            let mut slots = node.disk.slots(booted, no_space);
                            let mut standby = meshlift_minion::SlotStore::standby(&mut slots);
                            start_flash(image, &failed, standby.as_mut()).map_err(|e| e.to_string())
                        }
                    };
                    match started {
                        Err(reason) => {
                            let agent = node.agent.as_mut().expect("a running node has an agent");
                            agent.handle_flash_done(Err(reason), now);
                        }
                        Ok(()) => {
                            node.flashing = true;
                            let d = self.rng.gen_range(1_000..8_000);
                            if std::mem::take(&mut node.armed.power_cut_flash) {
                                let cut = self.rng.gen_range(0..d);
                                self.after(cut, Ev::Kill(name.to_string(), life, DownCause::Killed));
                            }
                            self.after(d, Ev::FlashDone(name.to_string(), life));
                        }
                    }
                }
                Action::RunHook { kind, .. } => {
                    let running_new = node.disk.slot(node.booted).meta.as_ref().map(|m| m.file_sha256)
                        == Some(self.new.file_sha256);
                    let ok = !(running_new && self.new.kind == ImageKind::FailsTrial);
                    let d = self.rng.gen_range(200..3_000);
                    self.after(d, Ev::HookDone(name.to_string(), life, kind, ok));
                }
                Action::Persist(state) => node.disk.state = Some(*state),
                Action::SendStatusNow => self.send_report(name),
                Action::Reboot { attempt } => {
                    let key = (
                        attempt.upgrade_req_id.clone(),
                        node.agent.as_ref().map_or(0, |a| a.status().attempt),
                    );
                    let r = arm_trial(&mut node.disk.bootloader(), attempt);
                    if node.disk.power_lost {
                        self.kill(name, DownCause::Killed, true);
                        return;
                    }
                    match r {
                        Ok(()) => {
                            self.stats.trials_armed += 1;
                            self.checker.trial_armed(now, name, key);
                            self.send_report(name);
                            self.after(200, Ev::ExitForReboot(name.to_string(), life));
                        }
                        Err(e) => {
                            let agent = node.agent.as_mut().expect("a running node has an agent");
                            agent.handle_commit_failed(e.to_string(), now);
                        }
                    }
                }
                Action::Confirm { slot, image_sha256 } => {
                    let r = confirm_trial(&mut node.disk.bootloader(), slot, image_sha256);
                    if node.disk.power_lost {
                        self.kill(name, DownCause::Killed, false);
                        return;
                    }
                    if let Err(e) = r {
                        let agent = node.agent.as_mut().expect("a running node has an agent");
                        agent.handle_confirm_failed(e.to_string(), now);
                    }
                }
                Action::Revert { slot } => {
                    // The same rule as `boot::revert_to_standby`: only a slot confirmed here.
                    let confirmed =
                        node.disk.slots_report(node.booted).is_some_and(|r| r.slot(slot).confirmed);
                    let mut bl = node.disk.bootloader();
                    let written = match bl.load() {
                        Ok(Some(mut env)) if confirmed => {
                            env.active = slot;
                            env.trial = None;
                            env.attempt = None;
                            bl.store(&env).map_err(|e| e.to_string())
                        }
                        Ok(_) => Err(format!("standby slot {} is not confirmed here", slot.as_str())),
                        Err(e) => Err(e.to_string()),
                    };
                    match written {
                        Ok(()) => self.after(200, Ev::ExitForReboot(name.to_string(), life)),
                        Err(e) => {
                            let agent = node.agent.as_mut().expect("a running node has an agent");
                            agent.handle_revert_failed(e, now);
                        }
                    }
                }
                Action::FallBack { reason } => {
                    let _ = record_trial_failure(&mut node.disk.bootloader(), &reason);
                    self.stats.fallbacks += 1;
                    if node.disk.power_lost {
                        self.kill(name, DownCause::Killed, true);
                        return;
                    }
                    self.after(200, Ev::ExitForReboot(name.to_string(), life));
                }
            }
        }
        // After the drain: the agent's next deadline, and a crash armed for the state it is in.
        let node = self.nodes.get_mut(name).expect("checked above");
        let life = node.life;
        let deadline = node.agent.as_ref().and_then(Agent::next_deadline);
        if let Some(d) = deadline {
            if node.deadline_scheduled != Some(d) {
                node.deadline_scheduled = Some(d);
                self.at(d, Ev::AgentDeadline(name.to_string(), life));
            }
        }
        let node = self.nodes.get_mut(name).expect("checked above");
        if node.armed.crash_in_state.is_some() && node.armed.crash_in_state == node.status() {
            node.armed.crash_in_state = None;
            let d = self.rng.gen_range(0..1_500);
            self.after(d, Ev::Kill(name.to_string(), life, DownCause::Crash { code: None }));
        }
    }

    // ---- controller ----

    fn controller_start(&mut self) {
        let now = self.now;
        let store = match Store::open(std::path::Path::new(&self.store_uri)) {
            Ok(s) => s,
            Err(e) => {
                self.checker.violation(now, format!("the store does not reopen: {e}"));
                return;
            }
        };
        let snapshot = match store.snapshot() {
            Ok(s) => s,
            Err(e) => {
                self.checker.violation(now, format!("the store does not read back: {e}"));
                return;
            }
        };
        match Engine::from_snapshot(self.schedule.topology.clone(), EngineConfig::default(), snapshot, now) {
            Ok(engine) => {
                if let Some(before) = self.saved_view.take() {
                    let after = check::durable_view(&engine.state_dump());
                    if before != after {
                        self.checker.violation(
                            now,
                            format!(
                                "the store reloads to a different state: {}",
                                check::first_difference(&before, &after)
                            ),
                        );
                    }
                }
                self.ctrl.engine = Some(engine);
                self.ctrl.outbox = Some(Outbox::new(store));
                self.stats.controller_restarts += 1;
            }
            Err(e) => {
                self.checker.violation(now, format!("the controller does not restart from its store: {e}"));
                return;
            }
        }
        self.ctrl.timer_at = None;
        self.ctrl_drain();
        // Every minion's connection comes back, each followed by a full report.
        let up: Vec<(String, u64)> =
            self.nodes.values().filter(|n| n.proc == Proc::Up).map(|n| (n.name.clone(), n.life)).collect();
        for (name, life) in up {
            let d = self.rng.gen_range(100..3_000);
            self.after(d, Ev::Reconnect(name, life));
        }
    }

    fn controller_receive(&mut self, node: &str, life: u64, msg: ToController) {
        let now = self.now;
        let epoch = self.ctrl.epoch;
        let Some(engine) = self.ctrl.engine.as_mut() else { return };
        match msg {
            ToController::Report(report) => {
                let seq = report.seq;
                if let Err(e) = engine.handle_status_report(*report, now) {
                    self.checker.violation(now, format!("simulator bug: report refused: {e}"));
                    return;
                }
                let _ = seq;
                self.ctrl.routes.insert(node.to_string(), life);
                if let Some(req) = self.ctrl.undelivered.remove(node) {
                    let wanted = req.ur_type == UpgradeReqType::ResetStatus
                        || engine.awaits(node, &req.upgrade_req_id);
                    if wanted {
                        self.transmit(Ev::ToNode {
                            node: node.to_string(),
                            life,
                            epoch,
                            msg: ToNode::Order(Box::new(req)),
                        });
                    }
                }
                self.transmit(Ev::ToNode { node: node.to_string(), life, epoch, msg: ToNode::ReportAck });
            }
            ToController::OrderAck { upgrade_req_id, ack } => {
                if !ack.success {
                    engine.handle_node_refusal(node, &upgrade_req_id, &ack.message, now);
                }
            }
        }
        self.ctrl_drain();
    }

    /// Carry out the engine's actions as the controller shell does, then sleep until the
    /// engine's next deadline (a `ControllerTick` then, unless an earlier one is pending).
    fn ctrl_drain(&mut self) {
        self.ctrl_release();
        let Some(deadline) = self.ctrl.engine.as_ref().and_then(Engine::next_deadline) else { return };
        let at = deadline.max(self.now);
        if self.ctrl.timer_at.is_none_or(|t| at < t) {
            self.ctrl.timer_at = Some(at);
            let epoch = self.ctrl.epoch;
            self.at(at, Ev::ControllerTick(epoch));
        }
    }

    fn ctrl_release(&mut self) {
        let now = self.now;
        let epoch = self.ctrl.epoch;
        if let (Some(engine), Some(outbox)) = (self.ctrl.engine.as_mut(), self.ctrl.outbox.as_mut()) {
            outbox.push_engine(engine);
            if let Some(e) = outbox.flush(now).failed {
                self.checker.violation(now, format!("the controller's store refused a write: {e}"));
            }
        }
        loop {
            let Some(outbox) = self.ctrl.outbox.as_mut() else { return };
            let Some(action) = outbox.pop_ready() else { return };
            let EngineAction::SendToNode { node, req, .. } = action else {
                if let (true, EngineAction::Event(e)) = (self.trace, &action) {
                    eprintln!(
                        "           engine: {:?} {}: {}",
                        e.level,
                        e.node.as_deref().unwrap_or("-"),
                        e.message
                    );
                }
                continue;
            };
            if matches!(req.ur_type, UpgradeReqType::CommitUpgrade | UpgradeReqType::FullUpgrade) {
                self.stats.commits_sent += 1;
                self.checker.commit_sent(now, &node, &req.upgrade_req_id, req.attempt);
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.last_commit_at = Some(now);
                }
            }
            self.ctrl.undelivered.remove(&node);
            let live = self.nodes.get(&node).filter(|n| n.proc != Proc::Down).map(|n| n.life);
            match self.ctrl.routes.get(&node).copied() {
                Some(life) if Some(life) == live => {
                    self.transmit(Ev::ToNode { node, life, epoch, msg: ToNode::Order(req) });
                }
                // No connection from this node's current life: kept for its next report.
                _ => {
                    self.ctrl.undelivered.insert(node, *req);
                }
            }
        }
    }

    /// A second engine on the same store, as a restarted controller would build it.
    pub(crate) fn reloaded_view(&mut self) -> Result<String, String> {
        let store = Store::open(std::path::Path::new(&self.store_uri)).map_err(|e| e.to_string())?;
        let snapshot = store.snapshot().map_err(|e| e.to_string())?;
        let engine = Engine::from_snapshot(
            self.schedule.topology.clone(),
            EngineConfig::default(),
            snapshot,
            self.now,
        )
        .map_err(|e| e.to_string())?;
        Ok(check::durable_view(&engine.state_dump()))
    }

    pub(crate) fn engine(&self) -> Option<&Engine> {
        self.ctrl.engine.as_ref()
    }
}

/// Where the simulated downloader leaves an image (only its identity matters).
fn image_path(image: &SimImage) -> PathBuf {
    PathBuf::from(format!("sim:/downloads/{}.mlimg", image.file_sha256.short()))
}

fn operator() -> Operator {
    Operator { who: "fleetsim".into(), reason: Some("simulated fleet upgrade".into()) }
}

/// One line per event for `FLEETSIM_TRACE`.
fn brief(ev: &Ev) -> String {
    match ev {
        Ev::ToNode { node, msg: ToNode::Order(req), .. } => {
            format!("→ {node}: {:?} {} attempt {}", req.ur_type, req.upgrade_req_id, req.attempt)
        }
        Ev::ToNode { node, msg: ToNode::ReportAck, .. } => format!("→ {node}: report ack"),
        Ev::ToController { node, msg: ToController::Report(r), .. } => format!(
            "{node} → controller: report {} {:?} \"{}\" links up {:?}",
            r.version,
            r.upgrade_status.us_type,
            r.upgrade_status.reason,
            r.links.iter().filter(|l| l.up).map(|l| l.name.as_str()).collect::<Vec<_>>()
        ),
        Ev::ToController { node, msg: ToController::OrderAck { ack, .. }, .. } => {
            format!("{node} → controller: ack {} {}", ack.success, ack.message)
        }
        other => format!("{other:?}"),
    }
}

/// The node and life an event belongs to, for events that only make sense in that life.
fn node_event_target(ev: &Ev) -> Option<(String, u64)> {
    match ev {
        Ev::Kill(n, l, _)
        | Ev::ExitForReboot(n, l)
        | Ev::StatusTimer(n, l)
        | Ev::AgentDeadline(n, l)
        | Ev::RadioPoll(n, l)
        | Ev::Reconnect(n, l)
        | Ev::DownloadDone(n, l, _, _)
        | Ev::FlashDone(n, l)
        | Ev::HookDone(n, l, _, _)
        | Ev::ToNode { node: n, life: l, .. } => Some((n.clone(), *l)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `seed` until `until` ms of simulated time (no end-of-run checks).
    fn run_until(seed: u64, until: u64) -> Sim {
        let mut sim = Sim::new(Schedule::from_seed(seed));
        while let Some(next) = sim.queue.peek() {
            if next.at > T0 + until {
                break;
            }
            let Scheduled { at, ev, .. } = sim.queue.pop().expect("peeked");
            sim.now = at;
            let _ = sim.handle(ev);
        }
        sim
    }

    /// The checks can fail: a torn active slot is reported as a bricked node, and bytes changed
    /// under a running slot are reported too.
    #[test]
    fn a_torn_active_slot_and_changed_running_bytes_are_violations() {
        let mut sim = run_until(1, 20_000);
        let name = sim.nodes.keys().next().expect("a node").clone();
        let node = sim.nodes.get_mut(&name).expect("the node");
        assert_eq!(node.proc, Proc::Up, "booted within 20 s");
        node.disk.slot_a.payload[0] ^= 0xff;
        node.disk.writes += 1;
        check::node_step(&mut sim, &name);
        let v = sim.checker.into_violations();
        assert!(v.iter().any(|v| v.what.contains("bricked")), "{v:?}");
        assert!(v.iter().any(|v| v.what.contains("running slot")), "{v:?}");
    }

    /// The checks can fail: an engine that sent a COMMIT twice for one attempt is reported.
    #[test]
    fn a_second_commit_for_the_same_attempt_is_a_violation() {
        let mut checker = Checker::default();
        checker.commit_sent(T0, "n1", "r", 1);
        checker.commit_sent(T0, "n1", "r", 2);
        assert!(checker.into_violations().is_empty());
        let mut checker = Checker::default();
        checker.commit_sent(T0, "n1", "r", 1);
        checker.commit_sent(T0 + 5, "n1", "r", 1);
        assert_eq!(checker.into_violations().len(), 1);
    }

    /// The checks can fail: a node taken down for an "upgrade" while others depend on it, with
    /// no fault anywhere near, is collateral isolation.
    #[test]
    fn an_upgrade_reboot_that_cuts_others_off_is_a_violation() {
        let schedule = Schedule { faults: Vec::new(), ..Schedule::from_seed(1) };
        let mut sim = Sim::new(schedule);
        while let Some(Scheduled { at, ev, .. }) = sim.queue.pop() {
            if at > T0 + 20_000 {
                break;
            }
            sim.now = at;
            let _ = sim.handle(ev);
        }
        check::isolation_step(&mut sim);
        // Reboot, "for an upgrade", each node in turn until one cuts somebody else off.
        let names: Vec<String> = sim.nodes.keys().cloned().collect();
        for n in names {
            if sim.schedule.topology.nodes.iter().any(|x| x.name == n && x.pop_node) {
                continue;
            }
            sim.kill(&n, DownCause::Reboot, true);
            check::isolation_step(&mut sim);
            if !sim.checker.isolated_since.is_empty() {
                break;
            }
        }
        sim.now += 60_000;
        check::isolation_step(&mut sim);
        let open: Vec<_> = sim.checker.isolated_since.clone().into_iter().collect();
        let now = sim.now;
        for (n, since) in open {
            super::check::judge_isolation(&mut sim, &n, since, now);
        }
        let v = sim.checker.into_violations();
        assert!(v.iter().any(|v| v.what.contains("collateral isolation") && v.known.is_none()), "{v:?}");
    }
}
