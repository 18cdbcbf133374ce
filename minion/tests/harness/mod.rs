//! One simulated node with real files: boot step, file-backed slots and boot env, the real
//! flasher and hooks, the agent driven with a fake clock. A "reboot" or "crash" drops the agent
//! and boots again from what is on disk, exactly as the minion binary would.

#![allow(dead_code)]

use meshlift_image::{
    build_image, generate_keypair, load_public_key, load_signing_key, BuildOptions, HookKind,
};
use meshlift_image::{SigningKey, VerifyingKey};
use meshlift_minion::boot::{arm_trial, confirm_trial, record_trial_failure, Factory};
use meshlift_minion::hooks::{run_hook, HookContext};
use meshlift_minion::state::{load_state, save_state};
use meshlift_minion::{
    boot, slots_report, verify_and_flash, Action, Agent, AgentInit, BootEnv, Bootloader, FileBootloader,
    FileSlotStore, FlashRequest, SlotStore,
};
use meshlift_protocol::{
    LinkReport, SlotId, UpgradeReq, UpgradeReqType, UpgradeStatus, UpgradeStatusType as S,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BOARD: &str = "sim";
pub const FACTORY_PAYLOAD: &[u8] = b"factory rootfs v1.0.0";

/// What the shell does wrong, injected by a test.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Process dies when about to carry out an action of this name (`"Reboot"`, `"Confirm"`,
    /// `"Persist"`…); `crash_times` times (u32::MAX = forever).
    pub crash_at: Option<&'static str>,
    pub crash_times: u32,
    /// The boot environment cannot be written when arming the trial.
    pub arm_fails: bool,
}

pub struct Node {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub trusted: Vec<VerifyingKey>,
    pub agent: Option<Agent>,
    pub now: u64,
    /// Status types in the order the controller would receive them (consecutive repeats folded).
    pub chain: Vec<S>,
    pub reports: Vec<UpgradeStatus>,
    pub pending_download: Option<UpgradeReq>,
    pub links: Vec<LinkReport>,
    pub faults: Faults,
    pub boots: u32,
    pub hook_timeout: Duration,
    /// The slot the last boot step chose.
    pub running_slot: SlotId,
}

impl Node {
    /// A node after its first boot from the factory image (version 1.0.0 in slot A).
    pub fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate_keypair(&dir.path().join("keys")).unwrap();
        let key = load_signing_key(&paths.private).unwrap();
        let trusted = vec![load_public_key(&paths.public).unwrap()];
        let mut node = Node {
            dir,
            key,
            trusted,
            agent: None,
            now: 1_000_000,
            chain: Vec::new(),
            reports: Vec::new(),
            pending_download: None,
            links: vec![link("l1", true), link("l2", true), link("l3", false)],
            faults: Faults::default(),
            boots: 0,
            hook_timeout: Duration::from_millis(400),
            running_slot: SlotId::A,
        };
        node.image("factory", "1.0.0", FACTORY_PAYLOAD, &[]);
        node.start();
        node
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Builds a signed image in the test dir.
    pub fn image(&self, file: &str, version: &str, payload: &[u8], hooks: &[(HookKind, &str)]) -> PathBuf {
        let payload_path = self.dir.path().join(format!("{file}.payload"));
        std::fs::write(&payload_path, payload).unwrap();
        let mut hook_files = Vec::new();
        for (kind, script) in hooks {
            let p = self.dir.path().join(format!("{file}.{kind}"));
            std::fs::write(&p, script).unwrap();
            hook_files.push((*kind, p));
        }
        let out = self.dir.path().join(format!("{file}.mlimg"));
        let options = BuildOptions {
            name: "os".into(),
            version: version.into(),
            hardware_board_ids: vec![BOARD.into()],
            payload: payload_path,
            hooks: hook_files,
            created: 0,
        };
        build_image(&options, Some(&self.key), &out).unwrap();
        out
    }

    /// Process start: boot step, then the agent from what is persisted.
    pub fn start(&mut self) {
        self.boots += 1;
        let factory = self.dir.path().join("factory.mlimg");
        let outcome = boot::boot(
            &self.data(),
            Factory { image: Some(&factory), trusted_keys: &self.trusted, board: BOARD },
            self.now,
        )
        .unwrap();
        self.running_slot = outcome.booted;
        let slots = FileSlotStore::open(&self.data(), outcome.booted).unwrap();
        let running_hooks = slots
            .image(outcome.booted)
            .unwrap()
            .map(|i| i.manifest.hooks.iter().map(|h| h.kind).collect())
            .unwrap_or_default();
        let report = slots_report(&slots, &outcome.env);
        let startup_config = meshlift_minion::startup_config::activate(&self.data(), &slots).unwrap();
        let persisted = load_state(&self.state_path()).unwrap();
        self.agent = Some(Agent::new(AgentInit {
            persisted,
            boot: outcome,
            slots: report,
            running_hooks,
            board: BOARD.into(),
            startup_config,
            now: self.now,
        }));
        self.drain();
        let links = self.links.clone();
        self.with_agent(|a, now| a.handle_links(links, now));
    }

    /// Where the shell's downloader would leave its files.
    pub fn download_dir(&self) -> PathBuf {
        self.data().join("download")
    }

    fn state_path(&self) -> PathBuf {
        self.data().join("upgrade_state.json")
    }

    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("node is running")
    }

    pub fn with_agent<R>(&mut self, f: impl FnOnce(&mut Agent, u64) -> R) -> R {
        let now = self.now;
        let r = f(self.agent(), now);
        self.drain();
        r
    }

    pub fn status(&self) -> S {
        self.agent.as_ref().expect("node is running").status().us_type
    }

    pub fn request(&mut self, req: UpgradeReq) -> meshlift_protocol::Ack {
        self.with_agent(|a, now| a.handle_upgrade_req(req, now))
    }

    pub fn prepare(&mut self, id: &str, image: &Path) -> meshlift_protocol::Ack {
        let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, id);
        req.sha256 = Some(
            meshlift_image::verify_file(image, &self.trusted).map(|v| v.file_sha256).unwrap_or_default(),
        );
        req.image_url = Some(format!("file://{}", image.display()));
        req.confirm_timeout_s = 60;
        self.request(req)
    }

    pub fn commit(&mut self, id: &str) -> meshlift_protocol::Ack {
        let mut req = UpgradeReq::new(UpgradeReqType::CommitUpgrade, id);
        req.confirm_timeout_s = 60;
        self.request(req)
    }

    /// The downloader finishes with this result.
    pub fn finish_download(&mut self, result: Result<PathBuf, String>) {
        assert!(self.pending_download.take().is_some(), "no download was started");
        self.with_agent(|a, now| a.handle_download_done(result, now));
    }

    pub fn ack(&mut self) {
        self.with_agent(|a, now| a.handle_controller_ack(now));
    }

    pub fn set_links(&mut self, links: Vec<LinkReport>) {
        self.links = links.clone();
        self.with_agent(|a, now| a.handle_links(links, now));
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        let due = self.agent.as_ref().and_then(|a| a.next_deadline()).is_some_and(|d| d <= self.now);
        if due {
            self.with_agent(|a, now| a.handle_timeout(now));
        }
    }

    /// The process is killed (or the power cut): nothing more runs; boot again from disk.
    pub fn crash(&mut self) {
        self.agent = None;
        self.pending_download = None;
        self.now += 5_000;
        self.start();
    }

    pub fn env(&self) -> BootEnv {
        FileBootloader::new(&self.data()).load().unwrap().unwrap()
    }

    pub fn slot_bytes(&self, slot: SlotId) -> Vec<u8> {
        std::fs::read(self.data().join("slots").join(format!("{}.img", slot.as_str()))).unwrap_or_default()
    }

    fn drain(&mut self) {
        loop {
            let Some(action) = self.agent.as_mut().and_then(|a| a.poll_action()) else { return };
            let name = action_name(&action);
            if self.faults.crash_at == Some(name) && self.faults.crash_times > 0 {
                self.faults.crash_times = self.faults.crash_times.saturating_sub(1);
                self.crash();
                return;
            }
            match action {
                Action::StartDownload(req) => self.pending_download = Some(req),
                Action::CancelDownload => self.pending_download = None,
                Action::Flash { image_path, allow_downgrade, expected_sha256, startup_config } => {
                    let result =
                        self.flash(&image_path, allow_downgrade, expected_sha256, startup_config.as_ref());
                    let now = self.now;
                    self.agent().handle_flash_done(result, now);
                }
                Action::RunHook { kind, state } => {
                    let slots = FileSlotStore::open(&self.data(), self.running_slot).unwrap();
                    let image = slots.image(self.running_slot).unwrap().unwrap();
                    let hook = image.manifest.hook(kind).unwrap().clone();
                    let result = run_hook(&hook, state, &self.hook_ctx()).map_err(|e| e.to_string());
                    let now = self.now;
                    self.agent().handle_hook_done(kind, result, now);
                }
                Action::Persist(state) => save_state(&self.state_path(), &state).unwrap(),
                Action::SendStatusNow => {
                    let status = self.agent.as_ref().unwrap().status().clone();
                    if self.chain.last() != Some(&status.us_type) {
                        self.chain.push(status.us_type);
                    }
                    self.reports.push(status);
                }
                Action::Reboot { attempt } => {
                    let mut bl = FileBootloader::new(&self.data());
                    if self.faults.arm_fails {
                        let now = self.now;
                        self.agent().handle_commit_failed("boot environment is read-only".into(), now);
                        continue;
                    }
                    arm_trial(&mut bl, attempt).unwrap();
                    self.crash();
                    return;
                }
                Action::Confirm { slot, image_sha256 } => {
                    confirm_trial(&mut FileBootloader::new(&self.data()), slot, image_sha256).unwrap();
                }
                Action::FallBack { reason } => {
                    record_trial_failure(&mut FileBootloader::new(&self.data()), &reason).unwrap();
                    self.crash();
                    return;
                }
                Action::Revert { .. } => {
                    let slots = FileSlotStore::open(&self.data(), self.running_slot).unwrap();
                    let mut bl = FileBootloader::new(&self.data());
                    match boot::revert_to_standby(&mut bl, &slots) {
                        Ok(_) => {
                            self.crash();
                            return;
                        }
                        Err(e) => {
                            let now = self.now;
                            self.agent().handle_revert_failed(e.to_string(), now);
                        }
                    }
                }
                Action::CleanDownloads => {
                    self.pending_download = None;
                    match std::fs::remove_dir_all(self.download_dir()) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
                        _ => {}
                    }
                }
            }
        }
    }

    fn hook_ctx(&self) -> HookContext {
        HookContext {
            work_dir: self.data().join("hooks"),
            node: "node-1".into(),
            timeout: self.hook_timeout,
            args: vec![],
        }
    }

    fn flash(
        &mut self,
        image: &Path,
        allow_downgrade: bool,
        expected: Option<meshlift_protocol::Sha256Digest>,
        startup_config: Option<&meshlift_protocol::StartupConfig>,
    ) -> Result<meshlift_minion::FlashedImage, String> {
        let env = self.env();
        let mut slots = FileSlotStore::open(&self.data(), self.running_slot).unwrap();
        let installed =
            slots.image(self.running_slot).unwrap().map(|i| i.manifest.version).unwrap_or_default();
        let ctx = self.hook_ctx();
        let req = FlashRequest {
            image_path: image,
            trusted_keys: &self.trusted,
            board: BOARD,
            installed_version: Some(&installed),
            allow_downgrade,
            expected_sha256: expected,
            failed_images: &env.failed,
            hooks: Some(&ctx),
        };
        let mut standby = slots.standby();
        let mut flashed = verify_and_flash(&req, standby.as_mut()).map_err(|e| e.to_string())?;
        meshlift_minion::startup_config::attach(
            &self.data(),
            standby.as_mut(),
            &mut flashed.image,
            startup_config,
        )
        .map_err(|e| e.to_string())?;
        Ok(flashed)
    }
}

pub fn link(name: &str, up: bool) -> LinkReport {
    LinkReport { name: name.into(), up }
}

pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::StartDownload(_) => "StartDownload",
        Action::CancelDownload => "CancelDownload",
        Action::Flash { .. } => "Flash",
        Action::RunHook { .. } => "RunHook",
        Action::Persist(_) => "Persist",
        Action::SendStatusNow => "SendStatusNow",
        Action::Reboot { .. } => "Reboot",
        Action::Confirm { .. } => "Confirm",
        Action::FallBack { .. } => "FallBack",
        Action::Revert { .. } => "Revert",
        Action::CleanDownloads => "CleanDownloads",
    }
}
