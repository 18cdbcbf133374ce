//! The golden-image loop: the fleet converges on one target image per hardware board by itself,
//! in waves, through the same engine requests an operator would send (Terragraph's
//! `goldenImageUpgrade`, reference §7, without the sharp edges of §7 and §10 item 9).
//!
//! # What it does
//! Per board with a target (image name + version), nodes whose running version — the version of
//! their **confirmed active slot**, never a trial — is older than the target by the documented
//! order of [`version`] are *behind*. When the loop may act (below), it picks the next wave of
//! behind nodes of each board and returns a FULL_UPGRADE `UpgradeGroupReq` (type NODES, the
//! wave's nodes, `version` set, `who = "golden-image loop"`, a reason naming the wave) for the
//! shell to submit through `Engine::handle_operator`, like an operator's: planning, readiness,
//! outcomes and the journal are the engine's.
//!
//! A rollout of a version to a board goes:
//! 1. **canary**: the named canary nodes, or the N safest behind nodes ([`canary`]: smallest blast
//!    radius, AP groups whole); repeated with other nodes until one canary wave upgrades at least one node and none
//!    fails (each failure is blacklisted and counts towards quarantine);
//! 2. **bake**: `bake` time during which every canary stays online, on the target, not fallen
//!    back; an unhealthy canary restarts the bake clock, a canary found on an older version again
//!    sends the rollout back to the canary stage;
//! 3. **widening waves**: cumulative shares of the board's nodes (default 10 % → 50 % → 100 %),
//!    safest first; after the last, catch-up waves take whatever is behind again (a node that came
//!    online, a node reset to the old version).
//!
//! # When it acts (all of them)
//! enabled and not paused; at most every `check_interval` (Terragraph's timer); the engine idle —
//! no request running or queued, which includes the loop's own; the window open. A wave in
//! flight when the window closes finishes; no new one starts. Waves of all boards started at one
//! check share the global `wave_cap`.
//!
//! # Never
//! - a downgrade: only strictly older nodes are picked, and the engine's own intake refuses a
//!   downgrade without `allow_downgrade`, which the loop sets only for a snapshot restore an
//!   operator asked for ([`restore`]: per-node targets that go before every board's target while
//!   the restore runs, each request's reason naming the operator);
//! - a quarantined version: K distinct nodes (default 2) that fell back or failed on a version
//!   quarantine it fleet-wide; every board targeting it stops until an admin unquarantines it;
//! - a blacklisted (node, version): a node whose golden upgrade failed is blacklisted for that
//!   version with the failure as reason, for `failure_blacklist` (if set);
//! - a change of target by a manual upgrade: only `SetTarget` changes it.
//!
//! # Contract with the shell
//! Pure: no clock, socket or file. Every input takes `now` (UNIX ms); time never goes backwards
//! (an earlier `now` counts as the latest seen). Inputs:
//! - [`Reconciler::handle_tick`] on the shell's timer (at the latest at
//!   [`Reconciler::next_deadline`]) with a [`FleetView`] from the engine and whether the engine is
//!   idle;
//! - [`Reconciler::handle_request_finished`] when a request the loop submitted finishes, with its
//!   node outcomes; [`Reconciler::handle_submit_refused`] if the engine refused one;
//! - [`Reconciler::handle_command`] for an operator's change.
//!
//! Each returns [`GoldenAction`]s to carry out in order: submit a request, journal a line. The
//! whole state ([`GoldenState`]) is a serde value: the shell persists it after every input whose
//! [`Reconciler::take_dirty`] says so, and [`Reconciler::from_state`] resumes where it stood — a
//! wave in flight stays in flight and is judged when its request finishes; it is never restarted.
//!
//! # Panics
//! None: operator text and node reports become errors or "unknown version" entries.

pub mod canary;
pub mod config;
pub mod drive;
pub mod restore;
pub mod version;
pub mod window;

use std::collections::{BTreeMap, BTreeSet};

use meshlift_protocol::{
    GoldenBlacklistEntry, GoldenBoard, GoldenCmd, GoldenQuarantine, GoldenShow, GoldenWave, NodeOutcome,
    Operator, OutcomeKind, Topology, UpgradeGroupReq, UpgradeGroupType, UpgradeReq, UpgradeReqType,
    UpgradeStatusType,
};
use serde::{Deserialize, Serialize};

pub use config::{GoldenConfig, GoldenConfigError};
pub use restore::{NodeTarget, Restore};
pub use version::{BadGoldenVersion, GoldenVersion};
pub use window::{BadWindow, Window};

/// `who` of everything the loop does.
pub const LOOP_WHO: &str = "golden-image loop";

/// How the canary wave is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Canary {
    /// These nodes (those of the board that are behind and eligible).
    Nodes(Vec<String>),
    /// The N safest behind nodes ([`canary::safest_first`]).
    Safest(u32),
}

/// The loop's policy (controller config, then changed at run time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub enabled: bool,
    pub paused: bool,
    pub check_interval_ms: u64,
    /// `None`: always open.
    pub window: Option<Window>,
    pub canary: Canary,
    /// Cumulative percentages of a board's nodes after each widening wave.
    pub waves_pct: Vec<u8>,
    pub bake_ms: u64,
    /// Most nodes in the waves started at one check, all boards together (0 = no cap).
    pub wave_cap: u32,
    /// Distinct nodes failing or falling back on one version before it is quarantined.
    pub quarantine_k: u32,
    /// How long a failed node stays blacklisted for the version (`None`: until removed).
    pub failure_blacklist_ms: Option<u64>,
    /// `timeout_s` of the loop's requests (per batch).
    pub batch_timeout_s: u64,
    /// `retry_limit` of the loop's requests. A fallback is a strong signal: the default retries
    /// once, not Terragraph's three times.
    pub retry_limit: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            paused: false,
            check_interval_ms: 60_000,
            window: None,
            canary: Canary::Safest(1),
            waves_pct: vec![10, 50, 100],
            bake_ms: 600_000,
            wave_cap: 0,
            quarantine_k: 2,
            failure_blacklist_ms: Some(7 * 24 * 3600 * 1000),
            batch_timeout_s: 600,
            retry_limit: 1,
        }
    }
}

/// A board's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub image: String,
    pub version: String,
    pub set_by: String,
    pub set_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    pub node: String,
    pub version: String,
    pub reason: String,
    pub who: String,
    pub at: u64,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub reason: String,
    pub at: u64,
    pub nodes: Vec<String>,
}

/// Where a board's rollout of one version stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// No canary wave has passed yet.
    Canary,
    /// The canaries passed; every one must stay healthy for `bake` from `healthy_since`.
    Baking { healthy_since: Option<u64> },
    /// Widening wave `next` (index into `waves_pct`; past its end: catch-up waves).
    Widening { next: usize },
}

/// One wave started by the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub label: String,
    pub request_id: String,
    pub nodes: Vec<String>,
    pub submitted_at: u64,
    pub finished_at: Option<u64>,
    pub upgraded: Vec<String>,
    pub failed: Vec<String>,
}

/// A board's rollout of its target version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub version: String,
    pub stage: Stage,
    /// Canary nodes of the passing canary wave (watched while baking).
    pub canaries: Vec<String>,
    /// Nodes of the board when the rollout started: the base of the wave percentages.
    pub fleet_size: usize,
    pub waves: Vec<Wave>,
}

/// Everything the loop knows; serialisable so the shell persists it and a restart resumes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GoldenState {
    pub settings: Settings,
    pub targets: BTreeMap<String, Target>,
    pub rollouts: BTreeMap<String, Rollout>,
    pub blacklist: Vec<BlacklistEntry>,
    /// By version.
    pub quarantined: BTreeMap<String, Quarantine>,
    /// Version → nodes that fell back or failed on it (quarantine counts distinct nodes).
    pub failures: BTreeMap<String, BTreeSet<String>>,
    /// Request id → board, for the loop's requests not finished yet.
    pub in_flight: BTreeMap<String, String>,
    /// Requests of `in_flight` told to stop after their in-flight batch (the window closed).
    #[serde(default)]
    pub stopping: BTreeSet<String>,
    pub last_check_at: Option<u64>,
    /// When the loop last started a wave.
    pub last_run_at: Option<u64>,
    pub seq: u64,
    /// A snapshot restore in progress: its per-node targets go before every golden target.
    #[serde(default)]
    pub restore: Option<Restore>,
}

/// One node as the loop sees it (from the engine's last report of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// `None`: the node never reported.
    pub board: Option<String>,
    /// Version of the confirmed active slot; `None` if unknown (no report, unconfirmed slot).
    pub version: Option<String>,
    pub online: bool,
    pub status: Option<UpgradeStatusType>,
}

/// The fleet at one instant.
#[derive(Debug, Clone, Default)]
pub struct FleetView {
    pub nodes: Vec<NodeView>,
    /// The live topology, for the safest-first order (`None`: by name).
    pub live: Option<Topology>,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum GoldenAction {
    /// Submit through `Engine::handle_operator`; report a refusal back with
    /// [`Reconciler::handle_submit_refused`].
    Submit { board: String, wave: String, request: Box<UpgradeGroupReq> },
    /// The window closed while this wave runs: let it finish its in-flight batch and start no
    /// further one (`Engine::stop_after_batch`). Its request then finishes as usual.
    StopAfterBatch { request_id: String, reason: String },
    /// A journal line (command when `operator.who` is an operator, the loop's own otherwise).
    Journal { operator: Operator, message: String },
}

/// An operator change the loop refuses; the message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoldenError {
    #[error(transparent)]
    Version(#[from] BadGoldenVersion),
    #[error(transparent)]
    Window(#[from] BadWindow),
    #[error("unknown image {0:?}; add it first (meshlift image add)")]
    UnknownImage(String),
    #[error("image {image:?} does not support board {board:?} (it supports {supported:?})")]
    WrongBoard { image: String, board: String, supported: Vec<String> },
    #[error("image {0:?} supports no board: name the board")]
    NoBoard(String),
    #[error("version {0} is quarantined; `meshlift golden unquarantine {0}` (admin) first")]
    Quarantined(String),
    #[error("board {0:?} has no golden target")]
    NoTarget(String),
    #[error("no blacklist entry for node {0:?}")]
    NotBlacklisted(String),
    #[error("version {0:?} is not quarantined")]
    NotQuarantined(String),
    #[error("node {0:?} is not in the topology")]
    UnknownNode(String),
}

/// Image facts the loop needs for `SetTarget` (the shell looks them up in the engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    pub name: String,
    pub version: String,
    pub boards: Vec<String>,
}

/// The golden-image loop. See the module docs for the contract.
#[derive(Debug, Clone)]
pub struct Reconciler {
    state: GoldenState,
    now: u64,
    dirty: bool,
}

/// How often a baking rollout's canaries are looked at (the minions' status interval).
pub const BAKE_POLL_MS: u64 = 5_000;
/// How often a snapshot restore waiting for an idle engine is looked at (see `next_deadline`).
pub const RESTORE_POLL_MS: u64 = 1_000;

impl Reconciler {
    pub fn new(settings: Settings) -> Reconciler {
        Reconciler { state: GoldenState { settings, ..Default::default() }, now: 0, dirty: true }
    }

    /// Resume from a persisted state.
    pub fn from_state(state: GoldenState) -> Reconciler {
        Reconciler { state, now: 0, dirty: false }
    }

    pub fn state(&self) -> &GoldenState {
        &self.state
    }

    /// Whether the state changed since the last call (the shell persists it then).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Set a target without an operator request (the controller config's initial targets). Not
    /// validated against the image store: a target whose image is missing starts nothing (the
    /// engine refuses the request) until the image is added.
    pub fn set_initial_target(
        &mut self,
        board: &str,
        image: &str,
        version: &str,
    ) -> Result<(), BadGoldenVersion> {
        GoldenVersion::parse(version)?;
        if self.state.targets.get(board).is_some_and(|t| t.version == version && t.image == image) {
            return Ok(());
        }
        let t = Target {
            image: image.into(),
            version: version.into(),
            set_by: "config".into(),
            set_at: self.now,
        };
        self.state.targets.insert(board.to_string(), t);
        self.dirty = true;
        Ok(())
    }

    /// When the loop must be called next at the latest: the next check, the window opening, a
    /// bake's health poll, a blacklist expiry, or the window closing on a wave in flight. The
    /// shell also calls it after any input that finished an engine request.
    pub fn next_deadline(&self) -> Option<u64> {
        let s = &self.state;
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |x| x.min(t)));
        if s.settings.enabled && !s.settings.paused {
            let check = s.last_check_at.map_or(self.now, |c| c.saturating_add(s.settings.check_interval_ms));
            let open = s.settings.window.as_ref().map_or(Some(check), |w| w.next_open(check));
            if let Some(o) = open {
                at(o.max(check));
            }
        }
        for r in s.rollouts.values() {
            if let Stage::Baking { healthy_since } = r.stage {
                // The canaries' health is read from the fleet, which changes with reports, not
                // with time: polled every status interval, and at the end of the bake.
                at(self.now.saturating_add(BAKE_POLL_MS));
                if let Some(since) = healthy_since {
                    at(since.saturating_add(s.settings.bake_ms));
                }
            }
        }
        // A window is a set of whole minutes: it can only close at a minute boundary.
        if s.settings.window.is_some() && s.in_flight.keys().any(|id| !s.stopping.contains(id)) {
            at((self.now / 60_000 + 1) * 60_000);
        }
        for e in &s.blacklist {
            if let Some(x) = e.expires_at {
                at(x);
            }
        }
        // A snapshot restore acts whether or not the loop is enabled, as soon as the engine is
        // idle. Its requests starting and finishing wake the loop (the server's cue), but the
        // first one and one waiting for another request to end need a poll: once a second, as
        // the loop ran before it slept until its deadline.
        if s.restore.is_some() {
            at(self.now.saturating_add(RESTORE_POLL_MS));
        }
        d
    }

    // ---- inputs ----

    /// The shell's timer: blacklist expiry, bake, then (if the loop may act) the next waves.
    pub fn handle_tick(&mut self, fleet: &FleetView, engine_idle: bool, now: u64) -> Vec<GoldenAction> {
        let now = self.clock(now);
        let mut out = Vec::new();
        self.expire_blacklist(now, &mut out);
        self.bake(fleet, now, &mut out);
        self.stop_outside_window(now, &mut out);
        if self.restore_tick(fleet, engine_idle, now, &mut out) {
            return out;
        }
        let s = &self.state.settings;
        if !s.enabled || s.paused {
            return out;
        }
        if self.state.last_check_at.is_some_and(|c| now < c.saturating_add(s.check_interval_ms)) {
            return out;
        }
        self.state.last_check_at = Some(now);
        self.dirty = true;
        if !engine_idle || !self.state.in_flight.is_empty() {
            return out;
        }
        if self.state.settings.window.as_ref().is_some_and(|w| !w.is_open(now)) {
            return out;
        }
        self.start_waves(fleet, now, &mut out);
        out
    }

    /// A request the loop submitted finished: judge its wave, blacklist and count failures,
    /// quarantine, move the rollout on. Outcomes of requests the loop did not submit are ignored
    /// (a manual upgrade never changes the target or the loop's state).
    pub fn handle_request_finished(
        &mut self,
        request_id: &str,
        outcomes: &[NodeOutcome],
        now: u64,
    ) -> Vec<GoldenAction> {
        let now = self.clock(now);
        let mut out = Vec::new();
        if self.restore_finished(request_id, outcomes, &mut out) {
            return out;
        }
        let Some(board) = self.state.in_flight.remove(request_id) else { return out };
        self.state.stopping.remove(request_id);
        self.dirty = true;
        let Some(rollout) = self.state.rollouts.get_mut(&board) else { return out };
        let version = rollout.version.clone();
        let Some(wave) = rollout.waves.iter_mut().rev().find(|w| w.request_id == request_id) else {
            return out;
        };
        // The last outcome of each node wins (a FULL_UPGRADE has a PREPARE and a COMMIT one).
        let mut last: BTreeMap<&str, &NodeOutcome> = BTreeMap::new();
        for o in outcomes.iter().filter(|o| o.request_id == request_id) {
            last.insert(o.node.as_str(), o);
        }
        let mut failed: Vec<(String, String)> = Vec::new();
        for node in &wave.nodes {
            match last.get(node.as_str()) {
                // Upgraded = its COMMIT succeeded (a PREPARE alone, in a wave stopped between
                // its stages, changed nothing on the running slot) or it already ran the target.
                Some(o)
                    if (o.outcome == OutcomeKind::Succeeded && o.stage == UpgradeReqType::CommitUpgrade)
                        || o.outcome == OutcomeKind::AlreadyAtVersion =>
                {
                    wave.upgraded.push(node.clone())
                }
                Some(o) if matches!(o.outcome, OutcomeKind::Failed | OutcomeKind::FellBack) => {
                    wave.failed.push(node.clone());
                    failed.push((node.clone(), format!("{}: {}", o.outcome.as_str(), o.reason)));
                }
                _ => {}
            }
        }
        wave.finished_at = Some(now);
        let label = wave.label.clone();
        let (upgraded, n_failed) = (wave.upgraded.clone(), wave.failed.len());
        let is_canary = label.starts_with("canary");
        rollout.stage = match (&rollout.stage, is_canary) {
            (Stage::Canary, true) if n_failed == 0 && !upgraded.is_empty() => {
                rollout.canaries = upgraded.clone();
                Stage::Baking { healthy_since: Some(now) }
            }
            (Stage::Widening { next }, false) => Stage::Widening { next: next + 1 },
            (s, _) => s.clone(),
        };
        out.push(journal_loop(format!(
            "{board}: {label} of {version} finished: {} upgraded, {n_failed} failed",
            upgraded.len()
        )));
        let ttl = self.state.settings.failure_blacklist_ms;
        for (node, reason) in failed {
            self.state.blacklist.retain(|e| !(e.node == node && e.version == version));
            self.state.blacklist.push(BlacklistEntry {
                node: node.clone(),
                version: version.clone(),
                reason: format!("golden upgrade failed ({request_id}): {reason}"),
                who: LOOP_WHO.into(),
                at: now,
                expires_at: ttl.map(|t| now.saturating_add(t)),
            });
            out.push(journal_loop(format!("blacklisted {node} for {version}: {reason}")));
            self.state.failures.entry(version.clone()).or_default().insert(node);
        }
        let failures = self.state.failures.get(&version).map_or(0, BTreeSet::len);
        let k = self.state.settings.quarantine_k.max(1) as usize;
        if failures >= k && !self.state.quarantined.contains_key(&version) {
            let nodes: Vec<String> = self.state.failures[&version].iter().cloned().collect();
            let reason = format!(
                "{failures} nodes fell back or failed on {version} (quarantine after {k}): {}",
                nodes.join(", ")
            );
            out.push(journal_loop(format!(
                "quarantined {version} fleet-wide: {reason}; the loop stops for every board targeting it until \
                 `meshlift golden unquarantine {version}`"
            )));
            self.state.quarantined.insert(version, Quarantine { reason, at: now, nodes });
        }
        out
    }

    /// The engine refused a request the loop submitted: the wave is dropped (the rollout stays
    /// where it was) and the next check tries again.
    pub fn handle_submit_refused(&mut self, request_id: &str, reason: &str, now: u64) -> Vec<GoldenAction> {
        let now = self.clock(now);
        let mut out = Vec::new();
        if self.restore_refused(request_id, reason, &mut out) {
            return out;
        }
        let Some(board) = self.state.in_flight.remove(request_id) else { return Vec::new() };
        self.dirty = true;
        if let Some(r) = self.state.rollouts.get_mut(&board) {
            r.waves.retain(|w| w.request_id != request_id);
        }
        let _ = now;
        vec![journal_loop(format!("{board}: the engine refused wave {request_id}: {reason}"))]
    }

    /// An operator's change. `image` looks an image up by name (the engine's image list).
    /// Returns the reply text and the journal lines (the change with who and why).
    pub fn handle_command(
        &mut self,
        cmd: GoldenCmd,
        operator: &Operator,
        image: impl Fn(&str) -> Option<ImageFacts>,
        known_node: impl Fn(&str) -> bool,
        now: u64,
    ) -> Result<(String, Vec<GoldenAction>), GoldenError> {
        let now = self.clock(now);
        let s = &mut self.state;
        let msg = match cmd {
            GoldenCmd::SetTarget { board, image: name } => {
                let img = image(&name).ok_or_else(|| GoldenError::UnknownImage(name.clone()))?;
                GoldenVersion::parse(&img.version)?;
                if s.quarantined.contains_key(&img.version) {
                    return Err(GoldenError::Quarantined(img.version));
                }
                let boards = match board {
                    Some(b) if img.boards.is_empty() || img.boards.contains(&b) => vec![b],
                    Some(b) => {
                        return Err(GoldenError::WrongBoard { image: name, board: b, supported: img.boards })
                    }
                    None if img.boards.is_empty() => return Err(GoldenError::NoBoard(name)),
                    None => img.boards.clone(),
                };
                for b in &boards {
                    let t = Target {
                        image: img.name.clone(),
                        version: img.version.clone(),
                        set_by: operator.who.clone(),
                        set_at: now,
                    };
                    s.targets.insert(b.clone(), t);
                }
                format!(
                    "golden target of {} set to {} (version {})",
                    boards.join(", "),
                    img.name,
                    img.version
                )
            }
            GoldenCmd::UnsetTarget { board } => {
                s.targets.remove(&board).ok_or_else(|| GoldenError::NoTarget(board.clone()))?;
                s.rollouts.remove(&board);
                format!("golden target of {board} removed")
            }
            GoldenCmd::Enable => {
                s.settings.enabled = true;
                "golden-image loop enabled".into()
            }
            GoldenCmd::Disable => {
                s.settings.enabled = false;
                "golden-image loop disabled".into()
            }
            GoldenCmd::Pause => {
                s.settings.paused = true;
                "golden-image loop paused (a wave in flight finishes)".into()
            }
            GoldenCmd::Resume => {
                s.settings.paused = false;
                "golden-image loop resumed".into()
            }
            GoldenCmd::SetWindow { window } => {
                let w = window.as_deref().map(str::parse::<Window>).transpose()?;
                let text = w.as_ref().map_or("always open".to_string(), |w| w.to_string());
                s.settings.window = w;
                format!("golden window set: {text}")
            }
            GoldenCmd::BlacklistAdd { node, version, expires_at } => {
                if !known_node(&node) {
                    return Err(GoldenError::UnknownNode(node));
                }
                GoldenVersion::parse(&version)?;
                s.blacklist.retain(|e| !(e.node == node && e.version == version));
                let reason = operator.reason.clone().unwrap_or_default();
                s.blacklist.push(BlacklistEntry {
                    node: node.clone(),
                    version: version.clone(),
                    reason,
                    who: operator.who.clone(),
                    at: now,
                    expires_at,
                });
                let until = expires_at.map_or(String::new(), |e| format!(" until {e} (UNIX ms)"));
                format!("blacklisted {node} for {version}{until}")
            }
            GoldenCmd::BlacklistDel { node, version } => {
                let before = s.blacklist.len();
                s.blacklist.retain(|e| !(e.node == node && version.as_ref().is_none_or(|v| *v == e.version)));
                if s.blacklist.len() == before {
                    return Err(GoldenError::NotBlacklisted(node));
                }
                format!(
                    "blacklist entries of {node} removed ({})",
                    version.as_deref().unwrap_or("all versions")
                )
            }
            GoldenCmd::Unquarantine { version } => {
                s.quarantined.remove(&version).ok_or_else(|| GoldenError::NotQuarantined(version.clone()))?;
                // Start counting afresh: the old failures are why it was quarantined, and they
                // stay blacklisted; K new ones quarantine it again.
                s.failures.remove(&version);
                format!("{version} unquarantined")
            }
        };
        self.dirty = true;
        let journal = GoldenAction::Journal { operator: operator.clone(), message: format!("golden: {msg}") };
        Ok((msg, vec![journal]))
    }

    // ---- views ----

    /// `meshlift golden show`.
    pub fn show(&self, fleet: &FleetView, now: u64) -> GoldenShow {
        let s = &self.state;
        let boards = s
            .targets
            .iter()
            .map(|(board, t)| {
                let nodes = fleet.nodes.iter().filter(|n| n.board.as_deref() == Some(board)).count();
                let behind = self.behind(fleet, board, &t.version).len();
                let rollout = s.rollouts.get(board).filter(|r| r.version == t.version);
                let in_flight = rollout.and_then(|r| r.waves.iter().find(|w| w.finished_at.is_none()));
                GoldenBoard {
                    board: board.clone(),
                    image: t.image.clone(),
                    version: t.version.clone(),
                    nodes: nodes as u32,
                    behind: behind as u32,
                    state: self.board_state(board, &t.version, behind, now).to_string(),
                    current_wave: in_flight.map(|w| w.label.clone()).or_else(|| {
                        (behind > 0).then(|| rollout.map_or("canary".into(), |r| self.next_label(r)))
                    }),
                    waves: rollout.map_or_else(Vec::new, |r| {
                        r.waves
                            .iter()
                            .map(|w| GoldenWave {
                                label: w.label.clone(),
                                request_id: w.request_id.clone(),
                                nodes: w.nodes.clone(),
                                submitted_at: w.submitted_at,
                                finished_at: w.finished_at,
                                upgraded: w.upgraded.clone(),
                                failed: w.failed.clone(),
                            })
                            .collect()
                    }),
                }
            })
            .collect();
        GoldenShow {
            enabled: s.settings.enabled,
            paused: s.settings.paused,
            window: s.settings.window.as_ref().map(|w| w.to_string()),
            window_open: s.settings.window.as_ref().is_none_or(|w| w.is_open(now)),
            next_window_open: s.settings.window.as_ref().map_or(Some(now), |w| w.next_open(now)),
            check_interval_s: s.settings.check_interval_ms / 1000,
            last_run_at: s.last_run_at,
            boards,
            blacklist: s
                .blacklist
                .iter()
                .map(|e| GoldenBlacklistEntry {
                    node: e.node.clone(),
                    version: e.version.clone(),
                    reason: e.reason.clone(),
                    who: e.who.clone(),
                    at: e.at,
                    expires_at: e.expires_at,
                })
                .collect(),
            quarantined: s
                .quarantined
                .iter()
                .map(|(v, q)| GoldenQuarantine {
                    version: v.clone(),
                    reason: q.reason.clone(),
                    at: q.at,
                    nodes: q.nodes.clone(),
                })
                .collect(),
        }
    }

    /// Nodes of `board` strictly older than `version` (any state, online or not).
    pub fn behind(&self, fleet: &FleetView, board: &str, version: &str) -> Vec<String> {
        let Ok(target) = GoldenVersion::parse(version) else { return Vec::new() };
        fleet
            .nodes
            .iter()
            .filter(|n| n.board.as_deref() == Some(board))
            .filter(|n| {
                n.version.as_deref().and_then(|v| GoldenVersion::parse(v).ok()).is_some_and(|v| v < target)
            })
            .map(|n| n.name.clone())
            .collect()
    }

    /// One word for the board's loop state (metrics, `golden show`).
    pub fn board_state(&self, board: &str, version: &str, behind: usize, now: u64) -> &'static str {
        let s = &self.state;
        let rollout = s.rollouts.get(board).filter(|r| r.version == version);
        if s.quarantined.contains_key(version) {
            "quarantined"
        } else if !s.settings.enabled {
            "disabled"
        } else if s.in_flight.values().any(|b| b == board) {
            "wave_running"
        } else if s.settings.paused {
            "paused"
        } else if behind == 0 {
            "converged"
        } else if s.settings.window.as_ref().is_some_and(|w| !w.is_open(now)) {
            "window_closed"
        } else {
            match rollout.map(|r| &r.stage) {
                None | Some(Stage::Canary) => "canary",
                Some(Stage::Baking { .. }) => "baking",
                Some(Stage::Widening { .. }) => "widening",
            }
        }
    }

    // ---- internals ----

    fn clock(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn blacklisted(&self, node: &str, version: &str) -> bool {
        self.state.blacklist.iter().any(|e| e.node == node && e.version == version)
    }

    fn expire_blacklist(&mut self, now: u64, out: &mut Vec<GoldenAction>) {
        let (gone, kept): (Vec<BlacklistEntry>, Vec<BlacklistEntry>) =
            std::mem::take(&mut self.state.blacklist)
                .into_iter()
                .partition(|e| e.expires_at.is_some_and(|x| x <= now));
        self.state.blacklist = kept;
        for e in gone {
            self.dirty = true;
            out.push(journal_loop(format!(
                "blacklist entry expired: {} for {} ({})",
                e.node, e.version, e.reason
            )));
        }
    }

    /// Baking rollouts: every canary online, on the target or newer, not fallen back.
    fn bake(&mut self, fleet: &FleetView, now: u64, out: &mut Vec<GoldenAction>) {
        let bake_ms = self.state.settings.bake_ms;
        let by_name: BTreeMap<&str, &NodeView> = fleet.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        for (board, r) in self.state.rollouts.iter_mut() {
            let Stage::Baking { healthy_since } = r.stage else { continue };
            let Ok(target) = GoldenVersion::parse(&r.version) else { continue };
            let version_of = |n: &str| {
                by_name.get(n).and_then(|v| v.version.as_deref()).and_then(|v| GoldenVersion::parse(v).ok())
            };
            if let Some(back) = r.canaries.iter().find(|c| version_of(c).is_some_and(|v| v < target)) {
                out.push(journal_loop(format!(
                    "{board}: canary {back} runs an older version than {} again: canary stage again",
                    r.version
                )));
                r.stage = Stage::Canary;
                self.dirty = true;
                continue;
            }
            let healthy = r.canaries.iter().all(|c| {
                by_name.get(c.as_str()).is_some_and(|n| {
                    n.online
                        && n.status != Some(UpgradeStatusType::FellBack)
                        && version_of(c).is_some_and(|v| v >= target)
                })
            });
            let next = match (healthy, healthy_since) {
                (false, Some(_)) => Stage::Baking { healthy_since: None },
                (true, None) => Stage::Baking { healthy_since: Some(now) },
                (true, Some(since)) if now >= since.saturating_add(bake_ms) => {
                    out.push(journal_loop(format!(
                        "{board}: canaries {} healthy on {} for the bake time: widening waves next",
                        r.canaries.join(", "),
                        r.version
                    )));
                    Stage::Widening { next: 0 }
                }
                _ => continue,
            };
            r.stage = next;
            self.dirty = true;
        }
    }

    /// A wave in flight when the window closes finishes its current batch and starts no other.
    fn stop_outside_window(&mut self, now: u64, out: &mut Vec<GoldenAction>) {
        let Some(w) = &self.state.settings.window else { return };
        if w.is_open(now) {
            return;
        }
        let ids: Vec<String> =
            self.state.in_flight.keys().filter(|id| !self.state.stopping.contains(*id)).cloned().collect();
        for request_id in ids {
            let reason = format!("golden-image loop: the window {w} closed; the in-flight batch finishes");
            out.push(journal_loop(format!("{request_id}: {reason}")));
            out.push(GoldenAction::StopAfterBatch { request_id: request_id.clone(), reason });
            self.state.stopping.insert(request_id);
            self.dirty = true;
        }
    }

    fn next_label(&self, r: &Rollout) -> String {
        match r.stage {
            Stage::Canary | Stage::Baking { .. } => "canary".into(),
            Stage::Widening { next } if next < self.state.settings.waves_pct.len() => {
                format!("wave {}", next + 1)
            }
            Stage::Widening { .. } => "catch-up".into(),
        }
    }

    /// The next wave of every board that has one, within the global cap.
    fn start_waves(&mut self, fleet: &FleetView, now: u64, out: &mut Vec<GoldenAction>) {
        let cap = match self.state.settings.wave_cap {
            0 => usize::MAX,
            c => c as usize,
        };
        let mut used = 0usize;
        let targets: Vec<(String, Target)> =
            self.state.targets.iter().map(|(b, t)| (b.clone(), t.clone())).collect();
        for (board, target) in targets {
            if used >= cap {
                break;
            }
            if self.state.quarantined.contains_key(&target.version) {
                continue;
            }
            let Ok(tv) = GoldenVersion::parse(&target.version) else { continue };
            let board_nodes: Vec<&NodeView> =
                fleet.nodes.iter().filter(|n| n.board.as_deref() == Some(&board)).collect();
            let behind: BTreeSet<&str> = board_nodes
                .iter()
                .filter(|n| {
                    n.version.as_deref().and_then(|v| GoldenVersion::parse(v).ok()).is_some_and(|v| v < tv)
                })
                .map(|n| n.name.as_str())
                .collect();
            let eligible: Vec<String> = board_nodes
                .iter()
                .filter(|n| behind.contains(n.name.as_str()) && n.online)
                .filter(|n| !busy(n.status))
                .filter(|n| !self.blacklisted(&n.name, &target.version))
                .map(|n| n.name.clone())
                .collect();
            if self.state.rollouts.get(&board).is_none_or(|r| r.version != target.version) {
                let r = Rollout {
                    version: target.version.clone(),
                    stage: Stage::Canary,
                    canaries: Vec::new(),
                    fleet_size: board_nodes.len(),
                    waves: Vec::new(),
                };
                self.state.rollouts.insert(board.clone(), r);
                self.dirty = true;
            }
            if eligible.is_empty() {
                continue;
            }
            let units = canary::safest_units(fleet.live.as_ref(), &eligible);
            let room = cap - used;
            let settings = &self.state.settings;
            let Some(rollout) = self.state.rollouts.get_mut(&board) else { continue };
            let (label, nodes) = match rollout.stage {
                Stage::Baking { .. } => continue,
                Stage::Canary => {
                    let nodes: Vec<String> = match &settings.canary {
                        Canary::Nodes(named) => {
                            let mut v: Vec<String> =
                                eligible.iter().filter(|n| named.contains(n)).cloned().collect();
                            v.truncate(room);
                            v
                        }
                        Canary::Safest(n) => canary::take(&units, (*n).max(1) as usize, room),
                    };
                    if nodes.is_empty() {
                        // Every named canary is already on the target (or blacklisted, or
                        // offline): the ones on the target are the canaries to bake.
                        if let Canary::Nodes(named) = &settings.canary {
                            let done: Vec<String> = named
                                .iter()
                                .filter(|c| {
                                    board_nodes.iter().any(|n| &n.name == *c) && !behind.contains(c.as_str())
                                })
                                .cloned()
                                .collect();
                            if !done.is_empty() {
                                rollout.canaries = done;
                                rollout.stage = Stage::Baking { healthy_since: None };
                                self.dirty = true;
                            }
                        }
                        continue;
                    }
                    let tries = rollout.waves.iter().filter(|w| w.label.starts_with("canary")).count();
                    (
                        if tries == 0 { "canary".to_string() } else { format!("canary (try {})", tries + 1) },
                        nodes,
                    )
                }
                Stage::Widening { next } => {
                    let pct = settings.waves_pct.get(next).copied().unwrap_or(100).min(100) as usize;
                    let cumulative = (pct * rollout.fleet_size.max(board_nodes.len())).div_ceil(100);
                    let at_target = board_nodes.len() - behind.len();
                    let size = cumulative.saturating_sub(at_target).max(1);
                    let label = if next < settings.waves_pct.len() {
                        format!("wave {} ({pct} %)", next + 1)
                    } else {
                        "catch-up".to_string()
                    };
                    (label, canary::take(&units, size, room))
                }
            };
            if nodes.is_empty() {
                out.push(journal_loop(format!(
                    "{board}: no whole AP group of the next wave fits under wave_cap {room}: raise the cap"
                )));
                continue;
            }
            used += nodes.len();
            self.state.seq += 1;
            let request_id = format!("golden-{}-{}", now, self.state.seq);
            let reason = format!(
                "golden-image loop: {label} of {} (image {}) for board {board}: {}",
                target.version,
                target.image,
                nodes.join(", ")
            );
            let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, request_id.clone());
            ur.image_name = Some(target.image.clone());
            ur.version = Some(target.version.clone());
            let mut req = UpgradeGroupReq::new(UpgradeGroupType::Nodes, ur, settings.batch_timeout_s);
            req.nodes = nodes.clone();
            req.version = Some(target.version.clone());
            req.skip_failure = true;
            req.retry_limit = settings.retry_limit;
            req.operator = Operator { who: LOOP_WHO.into(), reason: Some(reason) };
            rollout.waves.push(Wave {
                label: label.clone(),
                request_id: request_id.clone(),
                nodes,
                submitted_at: now,
                finished_at: None,
                upgraded: Vec::new(),
                failed: Vec::new(),
            });
            self.state.in_flight.insert(request_id, board.clone());
            self.state.last_run_at = Some(now);
            self.dirty = true;
            out.push(GoldenAction::Submit { board, wave: label, request: Box::new(req) });
        }
    }
}

/// A node in the middle of an upgrade the loop did not start (an operator's): left alone.
pub(crate) fn busy(status: Option<UpgradeStatusType>) -> bool {
    matches!(
        status,
        Some(
            UpgradeStatusType::DownloadingImage
                | UpgradeStatusType::FlashingImage
                | UpgradeStatusType::CommitScheduled
                | UpgradeStatusType::Rebooting
                | UpgradeStatusType::Trial
        )
    )
}

pub(crate) fn journal_loop(message: String) -> GoldenAction {
    GoldenAction::Journal {
        operator: Operator { who: LOOP_WHO.into(), reason: None },
        message: format!("golden: {message}"),
    }
}
