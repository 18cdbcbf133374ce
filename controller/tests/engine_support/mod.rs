//! Scenario harness for the engine: a generated mesh, a scripted fake fleet of minions that answer
//! `UpgradeReq`s with status-report sequences, and a fake clock.
//!
//! Each `step` is one status interval (5 s): deliver the engine's actions to the fake minions,
//! let them move on, send every running minion's report, tick the engine. The harness also
//! checks, at every step, the property the whole design exists for: a node that is running and
//! not rebooting always has a path of live links to a POP ("collateral isolation").
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use meshlift_controller::engine::{Action, Engine, EngineConfig};
use meshlift_controller::outbox::{Outbox, StateStore};
use meshlift_controller::store::Store;
use meshlift_controller::store::{StoreError, StoreOp};
use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site};
use meshlift_protocol::*;

pub const STEP_MS: u64 = 5_000;
pub const T0: u64 = 1_700_000_000_000;
pub const OLD: &str = "meshlift-1.0";
pub const NEW: &str = "meshlift-2.0";
pub const BOARD: &str = "MVL_ARMADA39X_P";

pub fn sha(b: u8) -> Sha256Digest {
    Sha256Digest([b; 32])
}

pub fn image() -> UpgradeImage {
    UpgradeImage {
        name: NEW.into(),
        version: NEW.into(),
        magnet_uri: "magnet:?xt=urn:btih:abc".into(),
        http_uri: "http://ctrl/images/new.mlimg".into(),
        sha256: sha(7),
        size: 1 << 20,
        hardware_board_ids: vec![BOARD.into()],
    }
}

/// A `rows × cols` grid of one-node sites; `n00` is a POP, and so is the far corner when the grid
/// has 6 sites or more (one POP would be an articulation point for the whole mesh). Extra leaf sites hang off named
/// nodes (`leaves`: (leaf name, parent)).
pub fn grid(rows: usize, cols: usize, leaves: &[(&str, &str)]) -> Topology {
    let name = |r: usize, c: usize| format!("n{r}{c}");
    let mut nodes = Vec::new();
    let mut sites = Vec::new();
    let mut links = Vec::new();
    let mut i = 0u32;
    let mut add = |n: String, pop: bool, nodes: &mut Vec<Node>, sites: &mut Vec<Site>| {
        i += 1;
        sites.push(Site { name: format!("S-{n}"), location: None });
        nodes.push(Node {
            name: n.clone(),
            node_type: NodeType::Dn,
            mac_addr: format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
            pop_node: pop,
            status: NodeStatus::Online,
            site_name: format!("S-{n}"),
        });
    };
    for r in 0..rows {
        for c in 0..cols {
            let pop = (r == 0 && c == 0) || (rows * cols >= 6 && r == rows - 1 && c == cols - 1);
            add(name(r, c), pop, &mut nodes, &mut sites);
            if c + 1 < cols {
                links.push(wl(&name(r, c), &name(r, c + 1)));
            }
            if r + 1 < rows {
                links.push(wl(&name(r, c), &name(r + 1, c)));
            }
        }
    }
    for (leaf, parent) in leaves {
        add(leaf.to_string(), false, &mut nodes, &mut sites);
        links.push(wl(parent, leaf));
    }
    Topology::new("grid".into(), nodes, links, sites).expect("generated topology is valid")
}

fn wl(a: &str, z: &str) -> Link {
    Link {
        name: format!("link-{a}-{z}"),
        a_node_name: a.into(),
        z_node_name: z.into(),
        link_type: LinkType::Wireless,
        is_alive: true,
    }
}

/// How a fake minion answers a COMMIT.
#[derive(Debug, Clone, PartialEq)]
pub enum OnCommit {
    /// Reboot, trial, confirm.
    Confirm,
    /// Reboot, trial fails, reboot into the old slot, report FELL_BACK with this reason.
    FallBack(String),
    /// Report COMMIT_FAILED.
    Fail(String),
    /// Ignore it (still FLASHED).
    Ignore,
    /// Confirm, but its links stay down afterwards.
    ConfirmLinksDown,
}

#[derive(Debug, Clone)]
enum Timer {
    Flash {
        at: u64,
        req_id: String,
        sha: Sha256Digest,
        version: String,
    },
    Reboot {
        at: u64,
        req_id: String,
    },
    Boot {
        at: u64,
        req_id: String,
    },
    Decide {
        at: u64,
        req_id: String,
    },
    BackAfterFallback {
        at: u64,
        req_id: String,
    },
    /// REVERT_TO_STANDBY: boot the standby slot as active, no trial.
    RevertBoot {
        at: u64,
        req_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct FakeMinion {
    pub name: String,
    pub mac: String,
    pub version: String,
    pub board: String,
    pub slots: SlotsReport,
    pub status: UpgradeStatus,
    pub boot: u64,
    /// Process running (false while rebooting or when killed).
    pub running: bool,
    /// Killed by the test: no reports at all.
    pub killed: bool,
    pub prepare_failures: u32,
    /// Prepares that never finish (no report change).
    pub prepare_hangs: bool,
    pub on_commit: OnCommit,
    pub bgp: Option<u32>,
    pub links_down_after_boot: bool,
    pub last_fallback: Option<FallbackRecord>,
    pub received: Vec<UpgradeReq>,
    /// The minion's own check refuses a REVERT with this reason (its boot environment disagrees
    /// with what its last report said).
    pub refuse_revert: Option<String>,
    timers: VecDeque<Timer>,
    seq: u64,
}

impl FakeMinion {
    fn new(node: &Node) -> FakeMinion {
        let slot = |id, v: Option<&str>| SlotReport {
            slot: id,
            version: v.map(str::to_string),
            sha256: None,
            confirmed: v.is_some(),
        };
        FakeMinion {
            name: node.name.clone(),
            mac: node.mac_addr.clone(),
            version: OLD.into(),
            board: BOARD.into(),
            slots: SlotsReport {
                active: SlotId::A,
                booted: SlotId::A,
                a: slot(SlotId::A, Some(OLD)),
                b: slot(SlotId::B, None),
            },
            status: UpgradeStatus::default(),
            boot: 1,
            running: true,
            killed: false,
            prepare_failures: 0,
            prepare_hangs: false,
            on_commit: OnCommit::Confirm,
            bgp: if node.pop_node { Some(2) } else { None },
            links_down_after_boot: false,
            last_fallback: None,
            received: Vec::new(),
            refuse_revert: None,
            timers: VecDeque::new(),
            seq: 0,
        }
    }

    pub fn alive(&self) -> bool {
        self.running && !self.killed
    }

    fn receive(&mut self, req: UpgradeReq, now: u64) {
        self.received.push(req.clone());
        match req.ur_type {
            UpgradeReqType::PrepareUpgrade => {
                self.status = UpgradeStatus {
                    us_type: UpgradeStatusType::DownloadingImage,
                    upgrade_req_id: req.upgrade_req_id.clone(),
                    next_image: ImageMeta { sha256: req.sha256, ..Default::default() },
                    // A real minion echoes the dispatch's attempt (UpgradeReq::attempt).
                    attempt: req.attempt,
                    ..Default::default()
                };
                if self.prepare_failures > 0 {
                    self.prepare_failures -= 1;
                    self.status.us_type = UpgradeStatusType::DownloadFailed;
                    self.status.reason = "tracker unreachable and HTTP 503".into();
                } else if !self.prepare_hangs {
                    self.timers.push_back(Timer::Flash {
                        at: now + 2 * STEP_MS,
                        req_id: req.upgrade_req_id,
                        sha: req.sha256.unwrap_or_default(),
                        version: req.version.unwrap_or_default(),
                    });
                }
            }
            UpgradeReqType::CommitUpgrade => match &self.on_commit {
                OnCommit::Ignore => {}
                OnCommit::Fail(r) => {
                    self.status.us_type = UpgradeStatusType::CommitFailed;
                    self.status.reason = r.clone();
                    self.status.upgrade_req_id = req.upgrade_req_id;
                }
                _ => {
                    self.status.upgrade_req_id = req.upgrade_req_id.clone();
                    let at = now + req.schedule_to_commit_s * 1000;
                    if req.schedule_to_commit_s > 0 {
                        self.status.us_type = UpgradeStatusType::CommitScheduled;
                        self.status.when_to_commit = at;
                    } else {
                        self.status.us_type = UpgradeStatusType::Rebooting;
                    }
                    self.timers.push_back(Timer::Reboot { at, req_id: req.upgrade_req_id });
                }
            },
            UpgradeReqType::ResetStatus => {
                self.timers.clear();
                self.status = UpgradeStatus::default();
            }
            UpgradeReqType::FullUpgrade => {}
            UpgradeReqType::RevertToStandby => {
                self.status.upgrade_req_id = req.upgrade_req_id.clone();
                let standby = self.slots.standby().clone();
                let refusal = if let Some(r) = &self.refuse_revert {
                    Some(r.clone())
                } else if standby.version.is_none() {
                    Some(format!("standby slot {} is empty", standby.slot.as_str()))
                } else if !standby.confirmed {
                    Some(format!("standby slot {} was never confirmed", standby.slot.as_str()))
                } else {
                    None
                };
                match refusal {
                    Some(reason) => {
                        self.status.us_type = UpgradeStatusType::CommitFailed;
                        self.status.reason = reason;
                    }
                    None => {
                        self.status.us_type = UpgradeStatusType::Rebooting;
                        self.running = false;
                        self.timers.push_back(Timer::RevertBoot {
                            at: now + 3 * STEP_MS,
                            req_id: req.upgrade_req_id,
                        });
                    }
                }
            }
        }
    }

    fn advance(&mut self, now: u64) {
        while let Some(t) = self.timers.front().cloned() {
            let at = match &t {
                Timer::Flash { at, .. }
                | Timer::Reboot { at, .. }
                | Timer::Boot { at, .. }
                | Timer::Decide { at, .. }
                | Timer::BackAfterFallback { at, .. }
                | Timer::RevertBoot { at, .. } => *at,
            };
            if at > now {
                return;
            }
            self.timers.pop_front();
            match t {
                Timer::Flash { req_id, sha, version, .. } => {
                    self.status = UpgradeStatus {
                        us_type: UpgradeStatusType::Flashed,
                        upgrade_req_id: req_id,
                        next_image: ImageMeta {
                            sha256: Some(sha),
                            version: Some(version.clone()),
                            hardware_board_ids: vec![],
                        },
                        ..Default::default()
                    };
                    let standby = self.slots.booted.other();
                    let s = match standby {
                        SlotId::A => &mut self.slots.a,
                        SlotId::B => &mut self.slots.b,
                    };
                    s.version = Some(version);
                    s.sha256 = Some(sha);
                    s.confirmed = false;
                }
                Timer::Reboot { req_id, .. } => {
                    self.running = false;
                    self.status.us_type = UpgradeStatusType::Rebooting;
                    self.timers.push_back(Timer::Boot { at: now + 3 * STEP_MS, req_id });
                }
                Timer::Boot { req_id, .. } => {
                    self.running = true;
                    self.boot += 1;
                    self.slots.booted = self.slots.booted.other();
                    self.version = self.slots.running().version.clone().unwrap_or_default();
                    self.status.us_type = UpgradeStatusType::Trial;
                    self.status.upgrade_req_id = req_id.clone();
                    self.timers.push_back(Timer::Decide { at: now + STEP_MS, req_id });
                }
                Timer::Decide { req_id, .. } => match self.on_commit.clone() {
                    OnCommit::FallBack(reason) => {
                        self.running = false;
                        self.timers.push_back(Timer::BackAfterFallback { at: now + 2 * STEP_MS, req_id });
                        self.status.reason = reason;
                    }
                    other => {
                        self.slots.active = self.slots.booted;
                        match self.slots.booted {
                            SlotId::A => self.slots.a.confirmed = true,
                            SlotId::B => self.slots.b.confirmed = true,
                        }
                        self.status.us_type = UpgradeStatusType::Confirmed;
                        self.status.upgrade_req_id = req_id;
                        if other == OnCommit::ConfirmLinksDown {
                            self.links_down_after_boot = true;
                        }
                    }
                },
                Timer::RevertBoot { req_id, .. } => {
                    self.running = true;
                    self.boot += 1;
                    self.slots.booted = self.slots.booted.other();
                    self.slots.active = self.slots.booted;
                    self.version = self.slots.running().version.clone().unwrap_or_default();
                    self.status = UpgradeStatus {
                        us_type: UpgradeStatusType::None,
                        upgrade_req_id: req_id,
                        reason: "reverted".into(),
                        ..Default::default()
                    };
                }
                Timer::BackAfterFallback { req_id, .. } => {
                    self.running = true;
                    self.boot += 1;
                    self.slots.booted = self.slots.active;
                    self.version = self.slots.running().version.clone().unwrap_or_default();
                    let reason = self.status.reason.clone();
                    self.status = UpgradeStatus {
                        us_type: UpgradeStatusType::FellBack,
                        upgrade_req_id: req_id.clone(),
                        reason: reason.clone(),
                        ..Default::default()
                    };
                    self.last_fallback =
                        Some(FallbackRecord { upgrade_req_id: req_id, version: NEW.into(), reason, at: now });
                }
            }
        }
    }
}

/// The engine, a fake fleet, and a fake clock.
pub struct Sim {
    pub engine: Engine,
    pub topology: Topology,
    pub fleet: BTreeMap<String, FakeMinion>,
    pub now: u64,
    /// Every commit batch as dispatched (nodes sent a COMMIT at the same step).
    pub commit_waves: Vec<Vec<String>>,
    /// Nodes that were running, not rebooting, and had no live path to a POP, per step.
    pub isolation_events: Vec<(u64, String)>,
    pub all_actions: Vec<Action>,
    /// The controller shell's write gate on the store (when the scenario has a store): the
    /// engine's `Persist` ops go through it exactly as in `server.rs`.
    pub outbox: Option<Outbox<TestStore>>,
}

/// The real SQLite store, with a fault a scenario switches on and off: while `fail_with` is set,
/// every write fails as SQLite fails on a full disk, and nothing is written.
pub struct TestStore {
    pub store: Store,
    /// The error text of the injected failure (`None`: writes go through).
    pub fail_with: Option<String>,
    /// Write attempts (transactions) so far, failed or not.
    pub attempts: u32,
}

impl TestStore {
    pub fn new(store: Store) -> TestStore {
        TestStore { store, fail_with: None, attempts: 0 }
    }
}

impl StateStore for TestStore {
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        self.attempts += 1;
        if let Some(msg) = &self.fail_with {
            // SQLITE_FULL, as SQLite reports a full disk.
            let code = rusqlite::ffi::Error::new(13);
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, Some(msg.clone()))));
        }
        self.store.apply(ops)
    }
}

impl Sim {
    pub fn new(topology: Topology) -> Sim {
        Sim::with_store(topology, None)
    }

    pub fn with_store(topology: Topology, store: Option<Store>) -> Sim {
        let engine = match &store {
            Some(s) => {
                let snapshot = s.snapshot().expect("the store reads");
                Engine::from_snapshot(topology.clone(), EngineConfig::default(), snapshot, T0)
                    .expect("engine starts")
            }
            None => Engine::new(topology.clone(), EngineConfig::default(), T0),
        };
        let fleet = topology.nodes.iter().map(|n| (n.name.clone(), FakeMinion::new(n))).collect();
        let mut sim = Sim {
            engine,
            topology,
            fleet,
            now: T0,
            commit_waves: Vec::new(),
            isolation_events: Vec::new(),
            all_actions: Vec::new(),
            outbox: store.map(|s| Outbox::new(TestStore::new(s))),
        };
        sim.engine.add_image(image(), Operator { who: "test".into(), reason: None }, T0);
        sim.report_all();
        sim
    }

    pub fn node(&mut self, name: &str) -> &mut FakeMinion {
        self.fleet.get_mut(name).expect("node of the generated topology")
    }

    pub fn operator(&mut self, msg: Message) -> Message {
        let reply = self.engine.handle_operator(msg, self.now);
        self.deliver();
        reply
    }

    pub fn submit(&mut self, req: UpgradeGroupReq) -> Ack {
        match self.operator(Message::UpgradeGroupReq(req)) {
            Message::Ack(a) => a,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    pub fn dump(&mut self) -> UpgradeStateDump {
        match self.operator(Message::UpgradeStateReq(UpgradeStateReq {})) {
            Message::UpgradeStateDump(d) => d,
            other => panic!("expected a dump, got {other:?}"),
        }
    }

    /// A controller restart at `now`: a new engine rebuilt from what the store holds (the old
    /// engine, and anything it had not written, is gone).
    pub fn restart(&mut self, store: Store, now: u64) {
        let snapshot = store.snapshot().expect("the store reads");
        self.engine = Engine::from_snapshot(self.topology.clone(), EngineConfig::default(), snapshot, now)
            .expect("engine restarts from its store");
        self.outbox = Some(Outbox::new(TestStore::new(store)));
        self.now = now;
    }

    /// The store, for reads (journal, outcomes).
    pub fn store(&self) -> Option<&Store> {
        self.outbox.as_ref().map(|o| &o.store().store)
    }

    /// The next action the controller shell would carry out: through the outbox when there is a
    /// store (a write that fails holds everything after it), straight from the engine otherwise.
    fn next_action(&mut self) -> Option<Action> {
        match self.outbox.as_mut() {
            Some(outbox) => {
                if let Some(a) = outbox.pop_ready() {
                    return Some(a);
                }
                outbox.push_engine(&mut self.engine);
                let report = outbox.flush(self.now);
                if outbox.store().fail_with.is_none() {
                    assert_eq!(report.failed, None, "the scenario's store refused a write");
                }
                outbox.pop_ready()
            }
            None => loop {
                match self.engine.poll_action()? {
                    Action::Persist(_) => continue,
                    a => return Some(a),
                }
            },
        }
    }

    /// Deliver pending engine actions to the fake minions.
    pub fn deliver(&mut self) {
        let mut commits = Vec::new();
        while let Some(a) = self.next_action() {
            if let Action::SendToNode { node, req, .. } = &a {
                if matches!(req.ur_type, UpgradeReqType::CommitUpgrade | UpgradeReqType::RevertToStandby) {
                    commits.push(node.clone());
                }
                if let Some(m) = self.fleet.get_mut(node) {
                    if m.alive() {
                        m.receive((**req).clone(), self.now);
                    }
                }
            }
            self.all_actions.push(a);
        }
        if !commits.is_empty() {
            commits.sort();
            self.commit_waves.push(commits);
        }
    }

    fn link_up(&self, l: &Link) -> bool {
        let up = |n: &str| self.fleet.get(n).is_some_and(|m| m.alive() && !m.links_down_after_boot);
        up(&l.a_node_name) && up(&l.z_node_name)
    }

    pub fn report(&mut self, name: &str) {
        let links: Vec<LinkReport> = self
            .topology
            .links
            .iter()
            .filter(|l| l.a_node_name == name || l.z_node_name == name)
            .map(|l| LinkReport { name: l.name.clone(), up: self.link_up(l) })
            .collect();
        let now = self.now;
        let m = self.fleet.get_mut(name).expect("known node");
        if !m.alive() {
            return;
        }
        m.seq += 1;
        let r = StatusReport {
            mac: m.mac.clone(),
            boot_id: format!("boot-{}", m.boot),
            timestamp: now,
            version: m.version.clone(),
            hardware_board_id: m.board.clone(),
            upgrade_status: m.status.clone(),
            slots: m.slots.clone(),
            links,
            bgp_peers_up: m.bgp,
            last_fallback: m.last_fallback.clone(),
            seq: m.seq,
            startup_config: None,
        };
        self.engine.handle_status_report(r, now).expect("known MAC");
    }

    pub fn report_all(&mut self) {
        let names: Vec<String> = self.fleet.keys().cloned().collect();
        for n in names {
            self.report(&n);
        }
        self.deliver();
    }

    /// One status interval.
    pub fn step(&mut self) {
        self.now += STEP_MS;
        let now = self.now;
        for m in self.fleet.values_mut() {
            m.advance(now);
        }
        self.check_isolation();
        self.report_all();
        self.engine.tick(now);
        self.deliver();
    }

    /// Step until no request is running or queued, at most `max` steps.
    pub fn run_to_idle(&mut self, max: usize) {
        for _ in 0..max {
            if self.engine.current_request_id().is_none() && self.engine.queue_len() == 0 {
                return;
            }
            self.step();
        }
        panic!("engine still busy after {max} steps: {:#?}", self.engine.state_dump());
    }

    pub fn run_until(&mut self, max: usize, mut f: impl FnMut(&Sim) -> bool) {
        for _ in 0..max {
            if f(self) {
                return;
            }
            self.step();
        }
        panic!("condition not reached after {max} steps: {:#?}", self.engine.state_dump());
    }

    /// Running, non-rebooting nodes without a live path to a running POP.
    fn check_isolation(&mut self) {
        let alive: BTreeSet<&str> =
            self.fleet.values().filter(|m| m.alive()).map(|m| m.name.as_str()).collect();
        let mut reach: BTreeSet<&str> = self
            .topology
            .nodes
            .iter()
            .filter(|n| n.pop_node && alive.contains(n.name.as_str()))
            .map(|n| n.name.as_str())
            .collect();
        loop {
            let mut grew = false;
            for l in &self.topology.links {
                if !self.link_up(l) {
                    continue;
                }
                let (a, z) = (l.a_node_name.as_str(), l.z_node_name.as_str());
                if reach.contains(a) && !reach.contains(z) {
                    reach.insert(z);
                    grew = true;
                } else if reach.contains(z) && !reach.contains(a) {
                    reach.insert(a);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        let cut: Vec<String> = alive.iter().filter(|n| !reach.contains(*n)).map(|n| n.to_string()).collect();
        for n in cut {
            self.isolation_events.push((self.now, n));
        }
    }

    /// Final outcome of each node in a request stage.
    pub fn outcomes(&self, stage: UpgradeReqType) -> BTreeMap<String, (OutcomeKind, String)> {
        self.engine
            .state_dump()
            .outcomes
            .into_iter()
            .filter(|o| o.stage == stage)
            .map(|o| (o.node, (o.outcome, o.reason)))
            .collect()
    }

    pub fn last_finished(&self) -> FinishedReq {
        self.engine.finished_requests().last().cloned().expect("a finished request")
    }

    /// COMMITs sent to `node` so far.
    pub fn commits_sent(&self, node: &str) -> usize {
        self.all_actions
            .iter()
            .filter(|a| matches!(a, Action::SendToNode { node: n, req, .. } if n == node && req.ur_type == UpgradeReqType::CommitUpgrade))
            .count()
    }
}

/// A FULL_UPGRADE of the whole network to the test image.
pub fn full_upgrade(id: &str) -> UpgradeGroupReq {
    let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, id);
    ur.image_name = Some(NEW.into());
    let mut g = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, 120);
    g.operator = Operator { who: "alice@noc".into(), reason: Some("quarterly upgrade".into()) };
    g
}

pub fn prepare(id: &str, nodes: &[&str]) -> UpgradeGroupReq {
    let mut ur = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, id);
    ur.image_name = Some(NEW.into());
    let mut g = UpgradeGroupReq::new(UpgradeGroupType::Nodes, ur, 120);
    g.nodes = nodes.iter().map(|s| s.to_string()).collect();
    g
}

pub fn commit(id: &str, nodes: &[&str]) -> UpgradeGroupReq {
    let ur = UpgradeReq::new(UpgradeReqType::CommitUpgrade, id);
    let mut g = UpgradeGroupReq::new(UpgradeGroupType::Nodes, ur, 120);
    g.nodes = nodes.iter().map(|s| s.to_string()).collect();
    g.version = Some(NEW.into());
    g
}

/// Make every listed node FLASHED with the test image, as after a PREPARE.
pub fn flash(sim: &mut Sim, nodes: &[&str]) {
    let a = sim.submit(prepare("prep", nodes));
    assert!(a.success, "{a:?}");
    sim.run_to_idle(50);
    for n in nodes {
        assert_eq!(sim.engine.node_upgrade_status(n), Some(UpgradeStatusType::Flashed), "{n}");
    }
}

/// What the engine remembers of a node whose last report carried `status` (the `rx`-th report).
#[allow(dead_code)]
pub fn seen_with_status(status: UpgradeStatus, rx: u64) -> meshlift_controller::engine::fleet::Seen {
    let slot = |id| SlotReport { slot: id, version: Some("1.0.0".into()), sha256: None, confirmed: true };
    meshlift_controller::engine::fleet::Seen {
        report: StatusReport {
            mac: "00:00:00:00:00:01".into(),
            boot_id: "boot-1".into(),
            timestamp: 0,
            version: "1.0.0".into(),
            hardware_board_id: "b".into(),
            upgrade_status: status,
            slots: SlotsReport {
                active: SlotId::A,
                booted: SlotId::A,
                a: slot(SlotId::A),
                b: slot(SlotId::B),
            },
            links: Vec::new(),
            bgp_peers_up: None,
            last_fallback: None,
            seq: rx,
            startup_config: None,
        },
        at: 0,
        rx,
    }
}
