//! The node agent: the sans-IO upgrade state machine of one minion.
//!
//! ```text
//! NONE ─PREPARE→ DOWNLOADING_IMAGE ─→ DOWNLOAD_FAILED
//!                      └─→ FLASHING_IMAGE ─→ FLASH_FAILED
//!                               └─→ FLASHED ─COMMIT→ [COMMIT_SCHEDULED →] REBOOTING
//!   (reboot; boot step consumes the trial) → TRIAL ─checks pass→ CONFIRMED
//!                                                └─fail/timeout→ (reboot to old slot) FELL_BACK
//! COMMIT when not FLASHED → COMMIT_FAILED;  RESET_STATUS → NONE (cancels download / scheduled commit)
//! REVERT_TO_STANDBY ─standby confirmed here before→ REBOOTING (no trial) → NONE on the standby slot
//!                   └─empty / never confirmed / busy→ COMMIT_FAILED with the reason
//! ```
//!
//! # Contract with the shell (the `meshlift-minion` binary)
//! 1. At start: [`crate::boot::boot`] (the U-Boot step), open the slots with the booted slot,
//!    [`crate::state::load_state`], then [`Agent::new`].
//! 2. Feed events as they happen, each with `now` (UNIX ms; never going backwards within a
//!    process): `handle_upgrade_req` (reply its [`Ack`] to the controller), `handle_controller_ack`
//!    (any `StatusReportAck`), `handle_links` (radio polls), `handle_download_progress`,
//!    `handle_download_done`, `handle_flash_done`, `handle_hook_done`, `handle_confirm_failed`,
//!    and `handle_timeout` when [`Agent::next_deadline`] has passed.
//! 3. After every call, drain [`Agent::poll_action`] until `None` and carry out each [`Action`] in
//!    order (see each variant). Then sleep until the next event, the status timer, or
//!    `next_deadline()`.
//! 4. Status reports: [`Agent::status_report`] every `status_interval_s` and on `SendStatusNow`.
//!
//! Nothing here commits without a controller request: the only path to `Reboot` is a COMMIT (or
//! FULL_UPGRADE) request, and the only path to `Revert` a REVERT_TO_STANDBY request.

use crate::boot::{BootOutcome, SILENT_TRIAL_FAILURE};
use crate::boot_env::TrialAttempt;
use crate::flasher::FlashedImage;
use crate::state::{FlashedInfo, PersistedState, RevertPlan, TrialPlan, RECENT_REQUESTS};
use meshlift_image::HookKind;
use meshlift_protocol::{
    Ack, DownloadProgress, FallbackRecord, ImageMeta, LinkReport, Sha256Digest, SlotId, SlotsReport,
    StartupConfig, StatusReport, UpgradeReq, UpgradeReqType, UpgradeStatus, UpgradeStatusType as S,
};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Exit code with which the minion asks its supervisor (meshsim, systemd) for a reboot.
pub const REBOOT_EXIT_CODE: i32 = 10;

pub fn exit_code_reboot() -> i32 {
    REBOOT_EXIT_CODE
}

/// What the shell must do, in the order drained.
// Actions are few and short-lived; boxing the request would only add noise for the shell.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the downloader for this request (work dir: `MinionConfig::download_dir`).
    StartDownload(UpgradeReq),
    /// Stop the running download (RESET_STATUS).
    CancelDownload,
    /// Run [`crate::flasher::verify_and_flash`] on the standby slot in a blocking task, then
    /// [`crate::startup_config::attach`] with `startup_config` (the slot is prepared only once
    /// both passed), then call `handle_flash_done`.
    Flash {
        image_path: PathBuf,
        allow_downgrade: bool,
        expected_sha256: Option<Sha256Digest>,
        startup_config: Option<StartupConfig>,
    },
    /// Run the running slot's hook of this kind ([`crate::hooks::run_hook`], state argument
    /// `state`) in a blocking task, then call `handle_hook_done`.
    RunHook { kind: HookKind, state: &'static str },
    /// Write this to `<data>/upgrade_state.json` ([`crate::state::save_state`]) before acting on
    /// anything drained after it.
    Persist(Box<PersistedState>),
    /// Send a status report now (state changed).
    SendStatusNow,
    /// Commit: [`crate::boot::arm_trial`] with this attempt, then exit with [`REBOOT_EXIT_CODE`].
    /// If arming fails, call `handle_commit_failed`.
    Reboot { attempt: TrialAttempt },
    /// The trial passed: [`crate::boot::confirm_trial`]. If it fails, call `handle_confirm_failed`.
    Confirm { slot: SlotId, image_sha256: Sha256Digest },
    /// The trial failed: [`crate::boot::record_trial_failure`] with `reason`, then exit with
    /// [`REBOOT_EXIT_CODE`] (the boot step returns to the old slot).
    FallBack { reason: String },
    /// REVERT_TO_STANDBY: [`crate::boot::revert_to_standby`] (which checks again, against the
    /// boot environment, that `slot` holds an image confirmed here), then reboot. If it refuses,
    /// call `handle_revert_failed`.
    Revert { slot: SlotId },
    /// Stop any download or seeding and empty the download directory. Queued once no upgrade
    /// needs its files (CONFIRMED, FELL_BACK, RESET_STATUS, and at every start in those states, in
    /// case a crash came between the state and the cleanup): without it every image a node ever
    /// fetched stays on its disk until a download finds no room. Failed downloads keep their
    /// files, so the controller's retry resumes them.
    CleanDownloads,
}

/// Everything the agent learns at start.
#[derive(Debug, Clone)]
pub struct AgentInit {
    pub persisted: Option<PersistedState>,
    pub boot: BootOutcome,
    pub slots: SlotsReport,
    /// Hook kinds the running slot's image carries.
    pub running_hooks: Vec<HookKind>,
    pub board: String,
    /// SHA-256 of the startup configuration the booted slot runs with
    /// ([`crate::startup_config::activate`]); reported to the controller.
    pub startup_config: Option<Sha256Digest>,
    pub now: u64,
}

/// Facts for a status report that the agent does not own.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub mac: String,
    pub boot_id: String,
    pub hardware_board_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Downloading {
        req: UpgradeReq,
    },
    /// `cancelled`: a reset arrived while the (uninterruptible) flash ran; its result is dropped.
    Flashing {
        req: UpgradeReq,
        cancelled: bool,
    },
    Flashed,
    CommitScheduled {
        req: UpgradeReq,
        at: u64,
    },
    Rebooting,
    Trial(TrialChecks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TrialChecks {
    deadline: u64,
    acked: bool,
    hook: HookCheck,
    confirm_sent: bool,
}

/// The standby slot, for deciding a revert without touching the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StandbyView {
    slot: SlotId,
    /// `None`: the slot is empty.
    version: Option<String>,
    /// The image there passed a trial here (or was the factory image).
    confirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HookCheck {
    NotNeeded,
    Running,
    Passed,
}

/// The state machine. See the module docs for the call order.
#[derive(Debug)]
pub struct Agent {
    phase: Phase,
    state: PersistedState,
    board: String,
    booted: SlotId,
    running_version: String,
    running_sha: Option<Sha256Digest>,
    running_config: Option<Sha256Digest>,
    /// What the standby slot holds, as far as this process knows: `None` once a flash started
    /// and did not finish (the slot may be anything; the shell's check against the boot
    /// environment decides a revert then).
    standby: Option<StandbyView>,
    links: Vec<LinkReport>,
    actions: VecDeque<Action>,
    /// Side effects held back until the state that announces them is persisted, so a crash never
    /// leaves work running that the state file does not know about.
    after_persist: Vec<Action>,
}

impl Agent {
    /// Reconciles what was persisted with what actually booted: a crash or reboot anywhere
    /// resumes from disk, and in-flight work that cannot survive a restart (download, flash)
    /// ends as failed with a reason instead of hanging.
    pub fn new(init: AgentInit) -> Agent {
        let AgentInit { persisted, boot, slots, running_hooks, board, startup_config, now } = init;
        let running = slots.running().clone();
        let standby_sha = slots.standby().sha256;
        let standby = slots.standby();
        let standby = StandbyView {
            slot: standby.slot,
            version: standby.version.clone(),
            confirmed: standby.confirmed,
        };
        let mut agent = Agent {
            phase: Phase::Idle,
            state: persisted.unwrap_or_default(),
            board,
            booted: boot.booted,
            running_version: running.version.clone().unwrap_or_default(),
            running_sha: running.sha256,
            running_config: startup_config,
            standby: Some(standby),
            links: Vec::new(),
            actions: VecDeque::new(),
            after_persist: Vec::new(),
        };
        let before = agent.state.clone();

        if let Some(failed) = &boot.fallback {
            agent.state.last_fallback = Some(failed.to_record());
            agent.state.flashed = None;
            agent.state.trial = None;
            agent.set_status(S::FellBack, &failed.reason);
            agent.state.status.upgrade_req_id = failed.upgrade_req_id.clone();
            agent.state.status.next_image.version = Some(failed.version.clone());
            agent.state.status.next_image.sha256 = Some(failed.sha256);
        } else if boot.trial {
            agent.start_trial(&boot, &running_hooks, now);
        } else {
            agent.resume_after_restart(&boot, standby_sha);
        }
        if agent.state != before || !agent.after_persist.is_empty() {
            agent.persist_and_report();
        } else {
            agent.actions.push_back(Action::SendStatusNow);
        }
        if matches!(agent.state.status.us_type, S::None | S::Confirmed | S::FellBack)
            && !agent.actions.contains(&Action::CleanDownloads)
        {
            agent.actions.push_back(Action::CleanDownloads);
        }
        agent
    }

    fn start_trial(&mut self, boot: &BootOutcome, running_hooks: &[HookKind], now: u64) {
        let plan = match self.state.trial.clone().filter(|p| p.slot == boot.booted) {
            Some(plan) => plan,
            // The plan was lost (state file unreadable): check what we can, the controller ack.
            None => {
                let attempt = boot.env.attempt.clone();
                TrialPlan {
                    upgrade_req_id: attempt.as_ref().map(|a| a.upgrade_req_id.clone()).unwrap_or_default(),
                    slot: boot.booted,
                    sha256: self.running_sha.unwrap_or_default(),
                    version: self.running_version.clone(),
                    links_required: Vec::new(),
                    confirm_timeout_s: UpgradeReq::new(UpgradeReqType::CommitUpgrade, "").confirm_timeout_s,
                    extra: Default::default(),
                }
            }
        };
        let hook = if running_hooks.contains(&HookKind::PostBootCheck) {
            self.after_persist
                .push(Action::RunHook { kind: HookKind::PostBootCheck, state: S::Trial.as_str() });
            HookCheck::Running
        } else {
            HookCheck::NotNeeded
        };
        self.phase = Phase::Trial(TrialChecks {
            deadline: now.saturating_add(plan.confirm_timeout_s.saturating_mul(1000)),
            acked: false,
            hook,
            confirm_sent: false,
        });
        self.state.status.us_type = S::Trial;
        self.state.status.reason = "post-boot checks running".into();
        self.state.status.upgrade_req_id = plan.upgrade_req_id.clone();
        self.state.status.next_image.version = Some(plan.version.clone());
        self.state.status.next_image.sha256 = Some(plan.sha256);
        self.state.status.when_to_commit = 0;
        self.state.trial = Some(plan);
    }

    fn resume_after_restart(&mut self, boot: &BootOutcome, standby_sha: Option<Sha256Digest>) {
        let flashed_still_there = self.state.flashed.as_ref().is_some_and(|f| Some(f.sha256) == standby_sha);
        if let Some(plan) = self.state.revert.take() {
            self.state.flashed = None;
            self.state.trial = None;
            self.state.status.upgrade_req_id = plan.upgrade_req_id.clone();
            if boot.booted == plan.slot {
                let reason = format!(
                    "reverted to slot {} ({}) without a trial: confirmed on this node before",
                    plan.slot.as_str(),
                    plan.version.as_deref().unwrap_or("unknown version")
                );
                self.set_status(S::None, &reason);
            } else {
                let reason = format!(
                    "revert to slot {} did not take effect: the node runs slot {}",
                    plan.slot.as_str(),
                    boot.booted.as_str()
                );
                self.set_status(S::CommitFailed, &reason);
            }
            return;
        }
        match self.state.status.us_type {
            S::DownloadingImage => {
                self.set_status(S::DownloadFailed, "minion restarted during the download");
            }
            S::FlashingImage => {
                self.state.flashed = None;
                self.set_status(
                    S::FlashFailed,
                    "minion restarted during the flash; standby slot left invalid",
                );
            }
            S::Flashed | S::CommitScheduled | S::Rebooting if flashed_still_there => {
                let reason = match self.state.status.us_type {
                    S::CommitScheduled => "restarted before the scheduled commit; commit again",
                    S::Rebooting => "restarted before the trial boot was armed; commit again",
                    _ => self.state.status.reason.as_str(),
                }
                .to_string();
                self.state.status.when_to_commit = 0;
                self.state.trial = None;
                self.set_status(S::Flashed, &reason);
                self.phase = Phase::Flashed;
            }
            S::Flashed | S::CommitScheduled | S::Rebooting => {
                self.state.flashed = None;
                self.state.trial = None;
                self.set_status(S::None, "standby slot no longer holds the flashed image");
            }
            S::Trial => {
                let plan = self.state.trial.take();
                let target = plan.as_ref().map(|p| p.sha256);
                let confirmed_here = target.is_some()
                    && target == self.running_sha
                    && boot.env.confirmed(boot.booted) == target;
                if confirmed_here {
                    // Confirmed in the boot environment, then crashed before persisting it.
                    self.state.flashed = None;
                    self.set_status(S::Confirmed, "");
                } else {
                    let failed = target.and_then(|sha| boot.env.failed_image(&sha).cloned());
                    let reason = failed
                        .as_ref()
                        .map(|f| f.reason.clone())
                        .unwrap_or_else(|| SILENT_TRIAL_FAILURE.into());
                    if let Some(f) = failed {
                        self.state.last_fallback = Some(f.to_record());
                    }
                    self.state.flashed = None;
                    self.set_status(S::FellBack, &reason);
                }
            }
            _ => {}
        }
        if self.state.flashed.is_some() && self.phase == Phase::Idle {
            // FLASHED survives in the idle states too only if it is still on the slot.
            if !flashed_still_there {
                self.state.flashed = None;
            }
        }
    }

    // ---- inputs ----

    /// UPGRADE_REQ from the controller. The returned [`Ack`] is the answer to send back.
    pub fn handle_upgrade_req(&mut self, req: UpgradeReq, now: u64) -> Ack {
        let key = (req.upgrade_req_id.clone(), req.ur_type);
        // A repeat of a request whose last attempt failed here is the controller's retry: a new
        // attempt (a download resumes from what is on disk). Any other repeat is a duplicate.
        let retry_after_failure = self.state.status.upgrade_req_id == req.upgrade_req_id
            && matches!(self.state.status.us_type, S::DownloadFailed | S::FlashFailed | S::CommitFailed);
        if retry_after_failure {
            self.state.recent_requests.retain(|k| k != &key);
        }
        if self.state.recent_requests.contains(&key) {
            return Ack::ok(format!(
                "request {} ({:?}) already handled; status {}",
                req.upgrade_req_id,
                req.ur_type,
                self.state.status.us_type.as_str()
            ));
        }
        // Remembered before acting, so that the state persisted by the action already knows it.
        self.state.recent_requests.push(key.clone());
        let excess = self.state.recent_requests.len().saturating_sub(RECENT_REQUESTS);
        self.state.recent_requests.drain(..excess);
        let (req_type, req_attempt) = (req.ur_type, req.attempt);
        let ack = match req.ur_type {
            UpgradeReqType::ResetStatus => self.reset(&req),
            UpgradeReqType::PrepareUpgrade | UpgradeReqType::FullUpgrade => self.prepare(req),
            UpgradeReqType::CommitUpgrade => self.commit(req, now),
            UpgradeReqType::RevertToStandby => self.revert(req),
        };
        if ack.success {
            if matches!(
                req_type,
                UpgradeReqType::PrepareUpgrade
                    | UpgradeReqType::FullUpgrade
                    | UpgradeReqType::CommitUpgrade
                    | UpgradeReqType::RevertToStandby
            ) {
                self.state.status.attempt = req_attempt;
            }
            self.persist_unless_rebooting();
        } else {
            self.state.recent_requests.retain(|k| k != &key);
        }
        ack
    }

    /// A `StatusReportAck` arrived: the controller session is up.
    pub fn handle_controller_ack(&mut self, now: u64) {
        if let Phase::Trial(checks) = &mut self.phase {
            checks.acked = true;
            self.check_trial(now);
        }
    }

    /// The radio's current view (call on every poll).
    /// A changed link view is reported at once: the controller plans the next commit batch from
    /// the links the nodes report, and a stale "down" can make it misjudge who depends on whom.
    pub fn handle_links(&mut self, links: Vec<LinkReport>, now: u64) {
        if links != self.links {
            self.links = links;
            self.actions.push_back(Action::SendStatusNow);
        }
        self.check_trial(now);
    }

    pub fn handle_download_progress(&mut self, progress: DownloadProgress) {
        match self.phase {
            Phase::Downloading { .. } => {
                self.state.status.reason =
                    format!("downloading: {:.1}% via {}", progress.ppm() as f64 / 1e4, progress.source);
                self.state.status.progress = Some(progress);
            }
            // Downloaded, and seeding to the rest of the batch until the commit: what this node
            // sends goes on counting (seed 003's uploadPayloadBytes is per session, and it is
            // what the swarm saves the controller); nothing is received any more.
            Phase::Flashing { .. } | Phase::Flashed => {
                if let Some(p) = &mut self.state.status.progress {
                    p.bt_uploaded_bytes = p.bt_uploaded_bytes.max(progress.bt_uploaded_bytes);
                    p.upload_bytes_per_second = progress.upload_bytes_per_second;
                    (p.peers, p.seeds, p.connections) =
                        (progress.peers, progress.seeds, progress.connections);
                }
            }
            _ => {}
        }
    }

    /// The downloader finished: a file whose SHA-256 matched the request, or why not.
    pub fn handle_download_done(&mut self, result: Result<PathBuf, String>, _now: u64) {
        let Phase::Downloading { req } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        // The figures stay in the reports (see `set_status`), but nothing arrives any more: a
        // rate frozen at its last value would show a finished node still downloading.
        if let Some(p) = &mut self.state.status.progress {
            (p.download_bytes_per_second, p.upload_bytes_per_second) = (0, 0);
        }
        match result {
            Ok(image_path) => {
                self.after_persist.push(Action::Flash {
                    image_path,
                    allow_downgrade: req.allow_downgrade,
                    expected_sha256: req.sha256,
                    startup_config: req.startup_config.clone(),
                });
                // The flasher invalidates the slot before writing: until it reports, the slot
                // may hold anything.
                self.standby = None;
                self.phase = Phase::Flashing { req, cancelled: false };
                self.set_status(S::FlashingImage, "");
            }
            Err(reason) => self.set_status(S::DownloadFailed, &reason),
        }
        self.persist_and_report();
    }

    /// The flasher finished (the `Err` is the [`crate::flasher::FlashError`] text).
    pub fn handle_flash_done(&mut self, result: Result<FlashedImage, String>, now: u64) {
        let Phase::Flashing { req, cancelled } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        if cancelled {
            // RESET_STATUS already reported NONE; the slot may hold the image but nobody asked
            // for it any more, so it is not offered for commit. Its cleanup waited for the
            // flasher to stop reading the image.
            self.actions.push_back(Action::CleanDownloads);
            return;
        }
        match result {
            Ok(flashed) => {
                let reason = if is_downgrade(&self.running_version, flashed.version()) {
                    format!(
                        "downgrade from {} to {} allowed by request {}",
                        self.running_version,
                        flashed.version(),
                        req.upgrade_req_id
                    )
                } else {
                    String::new()
                };
                self.state.flashed = Some(FlashedInfo {
                    slot: flashed.slot,
                    sha256: flashed.sha256(),
                    version: flashed.version().to_string(),
                    upgrade_req_id: req.upgrade_req_id.clone(),
                    extra: Default::default(),
                });
                self.standby = Some(StandbyView {
                    slot: flashed.slot,
                    version: Some(flashed.version().to_string()),
                    confirmed: false,
                });
                self.state.status.next_image.version = Some(flashed.version().to_string());
                self.state.status.next_image.sha256 = Some(flashed.sha256());
                self.phase = Phase::Flashed;
                self.set_status(S::Flashed, &reason);
                if req.ur_type == UpgradeReqType::FullUpgrade {
                    let _ = self.commit(req, now);
                }
            }
            Err(reason) => {
                self.state.flashed = None;
                self.set_status(S::FlashFailed, &reason);
            }
        }
        self.persist_unless_rebooting();
    }

    /// A hook run by [`Action::RunHook`] finished (the `Err` is the [`crate::hooks::HookError`] text).
    pub fn handle_hook_done(&mut self, kind: HookKind, result: Result<(), String>, now: u64) {
        let Phase::Trial(checks) = &mut self.phase else { return };
        if kind != HookKind::PostBootCheck || checks.hook != HookCheck::Running || checks.confirm_sent {
            return;
        }
        match result {
            Ok(()) => {
                checks.hook = HookCheck::Passed;
                self.check_trial(now);
            }
            Err(reason) => self.fall_back(reason),
        }
    }

    /// [`Action::Confirm`] could not be written: the trial cannot be made permanent, so fall back.
    pub fn handle_confirm_failed(&mut self, reason: String, _now: u64) {
        self.fall_back(format!("could not confirm the trial slot: {reason}"));
    }

    /// [`Action::Reboot`] could not arm the trial: nothing changed on the node.
    pub fn handle_commit_failed(&mut self, reason: String, _now: u64) {
        if self.phase != Phase::Rebooting {
            return;
        }
        self.state.trial = None;
        self.phase = Phase::Flashed;
        self.set_status(S::CommitFailed, &format!("could not arm the trial boot: {reason}"));
        self.phase = Phase::Idle;
        self.state.flashed = None;
        self.persist_and_report();
    }

    /// [`Action::Revert`] was refused by the boot-environment check or could not be written:
    /// nothing changed on the node.
    pub fn handle_revert_failed(&mut self, reason: String, _now: u64) {
        if self.phase != Phase::Rebooting || self.state.revert.is_none() {
            return;
        }
        self.state.revert = None;
        self.phase = Phase::Idle;
        self.set_status(S::CommitFailed, &format!("revert refused: {reason}"));
        self.persist_and_report();
    }

    /// Call when `next_deadline()` has passed.
    pub fn handle_timeout(&mut self, now: u64) {
        match &self.phase {
            Phase::CommitScheduled { req, at } if now >= *at => {
                let req = req.clone();
                self.phase = Phase::Flashed;
                self.commit_now(&req);
            }
            Phase::Trial(checks) if now >= checks.deadline && !checks.confirm_sent => {
                let reason = format!(
                    "post-boot checks not passed within {}s: {}",
                    self.state.trial.as_ref().map(|p| p.confirm_timeout_s).unwrap_or_default(),
                    self.missing_checks().join("; ")
                );
                self.fall_back(reason);
            }
            _ => {}
        }
    }

    // ---- outputs ----

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn next_deadline(&self) -> Option<u64> {
        match &self.phase {
            Phase::CommitScheduled { at, .. } => Some(*at),
            Phase::Trial(checks) if !checks.confirm_sent => Some(checks.deadline),
            _ => None,
        }
    }

    pub fn status(&self) -> &UpgradeStatus {
        &self.state.status
    }

    pub fn last_fallback(&self) -> Option<&FallbackRecord> {
        self.state.last_fallback.as_ref()
    }

    pub fn persisted(&self) -> &PersistedState {
        &self.state
    }

    /// The full report the controller receives.
    pub fn status_report(
        &self,
        node: &NodeFacts,
        slots: SlotsReport,
        bgp_peers_up: Option<u32>,
        seq: u64,
        now: u64,
    ) -> StatusReport {
        StatusReport {
            mac: node.mac.clone(),
            boot_id: node.boot_id.clone(),
            timestamp: now,
            version: self.running_version.clone(),
            hardware_board_id: node.hardware_board_id.clone(),
            upgrade_status: self.state.status.clone(),
            slots,
            links: self.links.clone(),
            bgp_peers_up,
            last_fallback: self.state.last_fallback.clone(),
            seq,
            startup_config: self.running_config,
        }
    }

    // ---- transitions ----

    fn busy(&self) -> Option<&'static str> {
        match self.phase {
            Phase::Downloading { .. } => Some("a download is running"),
            Phase::Flashing { .. } => Some("a flash is running"),
            Phase::CommitScheduled { .. } => Some("a commit is scheduled"),
            Phase::Rebooting => Some("the node is rebooting into its trial"),
            Phase::Trial(_) => Some("a trial boot is being checked"),
            Phase::Idle | Phase::Flashed => None,
        }
    }

    fn prepare(&mut self, req: UpgradeReq) -> Ack {
        if let Some(why) = self.busy() {
            return Ack::refused(format!("PREPARE {} refused: {why}", req.upgrade_req_id));
        }
        self.state.status = UpgradeStatus {
            upgrade_req_id: req.upgrade_req_id.clone(),
            next_image: ImageMeta {
                sha256: req.sha256,
                version: req.version.clone(),
                hardware_board_ids: req.hardware_board_ids.clone(),
            },
            ..UpgradeStatus::default()
        };
        self.state.flashed = None;
        self.state.last_fallback = None;
        if req.sha256.is_none() || (req.image_url.is_none() && req.http_url.is_none()) {
            self.set_status(S::DownloadFailed, "PREPARE needs sha256 and an image or http URL");
            return Ack::ok("accepted; download failed at once");
        }
        // The configuration's integrity is checked before anything is fetched; the flash checks
        // the bytes written to disk again before the slot counts as prepared.
        if let Some(Err(e)) = req.startup_config.as_ref().map(crate::startup_config::check) {
            self.set_status(S::DownloadFailed, &e.to_string());
            return Ack::ok("accepted; refused the startup configuration");
        }
        if !req.hardware_board_ids.is_empty() && !req.hardware_board_ids.contains(&self.board) {
            let reason = format!(
                "image is for boards [{}], this node is {}",
                req.hardware_board_ids.join(", "),
                self.board
            );
            self.set_status(S::DownloadFailed, &reason);
            return Ack::ok("accepted; refused the image for this board");
        }
        self.set_status(S::DownloadingImage, "");
        self.after_persist.push(Action::StartDownload(req.clone()));
        self.phase = Phase::Downloading { req };
        Ack::ok("PREPARE accepted")
    }

    fn commit(&mut self, req: UpgradeReq, now: u64) -> Ack {
        if let Some(why) = self.busy() {
            return Ack::refused(format!("COMMIT {} refused: {why}", req.upgrade_req_id));
        }
        self.state.status.upgrade_req_id = req.upgrade_req_id.clone();
        let Some(flashed) = self.state.flashed.clone().filter(|_| self.phase == Phase::Flashed) else {
            let reason = format!("not ready to commit: status is {}", self.state.status.us_type.as_str());
            self.set_status(S::CommitFailed, &reason);
            return Ack::ok("accepted; commit failed at once");
        };
        if let Some(want) = &req.version {
            if want != &flashed.version {
                let reason = format!("commit asks for version {want}, standby holds {}", flashed.version);
                self.phase = Phase::Idle;
                self.set_status(S::CommitFailed, &reason);
                return Ack::ok("accepted; commit failed at once");
            }
        }
        if req.schedule_to_commit_s > 0 {
            let at = now.saturating_add(req.schedule_to_commit_s.saturating_mul(1000));
            self.state.status.when_to_commit = at;
            self.set_status(S::CommitScheduled, "");
            self.phase = Phase::CommitScheduled { req, at };
            return Ack::ok("COMMIT scheduled");
        }
        self.commit_now(&req);
        Ack::ok("COMMIT accepted; rebooting into the trial slot")
    }

    /// VOLTHA DMI `RevertToStandbyImage`: boot the standby slot as active, without a trial: only
    /// an image that already passed a trial here (or the factory image) is trusted to boot
    /// unchecked. Anything else is refused with a reason the controller shows as the node's
    /// outcome. The shell checks again against the boot environment before writing it.
    fn revert(&mut self, req: UpgradeReq) -> Ack {
        if let Some(why) = self.busy() {
            return Ack::refused(format!("REVERT {} refused: {why}", req.upgrade_req_id));
        }
        self.state.status.upgrade_req_id = req.upgrade_req_id.clone();
        self.state.status.when_to_commit = 0;
        let standby = self.standby.clone();
        let refusal = match &standby {
            Some(StandbyView { slot, version: None, .. }) => {
                Some(format!("standby slot {} is empty: nothing to revert to", slot.as_str()))
            }
            Some(StandbyView { slot, version: Some(v), confirmed: false }) => Some(format!(
                "standby slot {} holds {v}, never confirmed on this node: revert refused",
                slot.as_str()
            )),
            Some(StandbyView { slot, version: Some(v), confirmed: true }) => {
                req.version.as_ref().filter(|want| want.trim() != v.trim()).map(|want| {
                    format!("revert asks for version {want}, standby slot {} holds {v}", slot.as_str())
                })
            }
            None => None,
        };
        if let Some(reason) = refusal {
            self.set_status(S::CommitFailed, &reason);
            return Ack::ok("accepted; revert refused");
        }
        let slot = standby.as_ref().map_or(self.booted.other(), |s| s.slot);
        let version = standby.and_then(|s| s.version);
        self.state.flashed = None;
        self.state.trial = None;
        self.state.revert = Some(RevertPlan {
            upgrade_req_id: req.upgrade_req_id.clone(),
            slot,
            version: version.clone(),
            extra: Default::default(),
        });
        self.phase = Phase::Rebooting;
        let reason = format!(
            "reverting to slot {} ({}) without a trial",
            slot.as_str(),
            version.as_deref().unwrap_or("unknown version")
        );
        self.set_status(S::Rebooting, &reason);
        self.persist_and_report();
        self.actions.push_back(Action::Revert { slot });
        Ack::ok("REVERT accepted; rebooting into the standby slot")
    }

    /// Snapshots the links, moves to REBOOTING, persists (the trial plan must be on disk before
    /// the trial is armed) and queues the reboot.
    fn commit_now(&mut self, req: &UpgradeReq) {
        let flashed =
            self.state.flashed.clone().expect("commit_now is only reached from FLASHED with flashed info");
        let links_required = self
            .links
            .iter()
            .filter(|l| l.up && !req.skip_links.contains(&l.name))
            .map(|l| l.name.clone())
            .collect();
        self.state.trial = Some(TrialPlan {
            upgrade_req_id: req.upgrade_req_id.clone(),
            slot: flashed.slot,
            sha256: flashed.sha256,
            version: flashed.version.clone(),
            links_required,
            confirm_timeout_s: req.confirm_timeout_s,
            extra: Default::default(),
        });
        self.state.status.upgrade_req_id = req.upgrade_req_id.clone();
        self.state.status.when_to_commit = 0;
        self.phase = Phase::Rebooting;
        self.set_status(S::Rebooting, "");
        self.persist_and_report();
        self.actions.push_back(Action::Reboot {
            attempt: TrialAttempt {
                slot: flashed.slot,
                image_sha256: flashed.sha256,
                version: flashed.version,
                upgrade_req_id: req.upgrade_req_id.clone(),
                fail_reason: None,
                extra: Default::default(),
            },
        });
    }

    /// Persists and reports, unless a reboot is already queued (which persisted just before it:
    /// nothing after a reboot runs).
    fn persist_unless_rebooting(&mut self) {
        if !matches!(self.actions.back(), Some(Action::Reboot { .. } | Action::Revert { .. })) {
            self.persist_and_report();
        }
    }

    fn reset(&mut self, req: &UpgradeReq) -> Ack {
        match &mut self.phase {
            Phase::Rebooting | Phase::Trial(_) => {
                return Ack::refused(format!(
                "RESET_STATUS {} refused: a trial boot is in progress; it confirms or falls back on its own",
                req.upgrade_req_id
            ))
            }
            Phase::Downloading { .. } => self.actions.push_back(Action::CancelDownload),
            Phase::Flashing { cancelled, .. } => *cancelled = true,
            Phase::Idle | Phase::Flashed | Phase::CommitScheduled { .. } => {}
        }
        if matches!(self.phase, Phase::Flashing { .. }) {
            // The flasher still reads the image: clean when it is done (`handle_flash_done`).
        } else {
            self.phase = Phase::Idle;
            self.queue_clean_downloads();
        }
        self.state.flashed = None;
        self.state.trial = None;
        self.state.status =
            UpgradeStatus { upgrade_req_id: req.upgrade_req_id.clone(), ..UpgradeStatus::default() };
        Ack::ok("RESET_STATUS done")
    }

    fn check_trial(&mut self, now: u64) {
        let Phase::Trial(checks) = &self.phase else { return };
        if checks.confirm_sent || now >= checks.deadline || !self.missing_checks().is_empty() {
            return;
        }
        let plan = self.state.trial.clone().expect("a trial phase always has a plan (set in start_trial)");
        self.actions.push_back(Action::Confirm { slot: self.booted, image_sha256: plan.sha256 });
        if let Phase::Trial(checks) = &mut self.phase {
            checks.confirm_sent = true;
        }
        self.state.trial = None;
        self.state.flashed = None;
        self.set_status(S::Confirmed, "");
        self.phase = Phase::Idle;
        self.persist_and_report();
    }

    /// What the trial still waits for, in words for the FELL_BACK reason.
    fn missing_checks(&self) -> Vec<String> {
        let Phase::Trial(checks) = &self.phase else { return Vec::new() };
        let mut missing = Vec::new();
        if !checks.acked {
            missing.push("no ack from the controller".to_string());
        }
        let required = self.state.trial.as_ref().map(|p| p.links_required.clone()).unwrap_or_default();
        let down: Vec<String> =
            required.into_iter().filter(|name| !self.links.iter().any(|l| &l.name == name && l.up)).collect();
        if !down.is_empty() {
            missing.push(format!("links still down: {}", down.join(", ")));
        }
        if checks.hook == HookCheck::Running {
            missing.push("post-boot-check hook has not finished".to_string());
        }
        missing
    }

    /// Ends the trial: the shell records `reason` in the boot environment and reboots into the old
    /// slot, where the boot step turns it into FELL_BACK.
    fn fall_back(&mut self, reason: String) {
        self.phase = Phase::Rebooting;
        self.state.status.us_type = S::Trial;
        self.state.status.reason = format!("falling back: {reason}");
        self.persist_and_report();
        self.actions.push_back(Action::FallBack { reason });
    }

    fn set_status(&mut self, us_type: S, reason: &str) {
        self.state.status.us_type = us_type;
        self.state.status.reason = reason.to_string();
        if matches!(us_type, S::Confirmed | S::FellBack) {
            self.queue_clean_downloads();
        }
        // The download's final figures (bytes from the swarm, from HTTP, sent to peers) stay in
        // the reports until the commit: seed 003's per-node `upgrade.bt.*` figures, and what the
        // controller needs to tell how much the swarm saved.
        if !matches!(
            us_type,
            S::DownloadingImage | S::DownloadFailed | S::FlashingImage | S::FlashFailed | S::Flashed
        ) {
            self.state.status.progress = None;
        }
    }

    /// After the state that says why is persisted: a crash in between cleans at the next start.
    fn queue_clean_downloads(&mut self) {
        if !self.after_persist.contains(&Action::CleanDownloads) {
            self.after_persist.push(Action::CleanDownloads);
        }
    }

    fn persist_and_report(&mut self) {
        self.actions.push_back(Action::Persist(Box::new(self.state.clone())));
        self.actions.push_back(Action::SendStatusNow);
        self.actions.extend(self.after_persist.drain(..));
    }
}

fn is_downgrade(running: &str, new: &str) -> bool {
    match (meshlift_image::Version::parse(running), meshlift_image::Version::parse(new)) {
        (Ok(r), Ok(n)) => n < r,
        _ => false,
    }
}
