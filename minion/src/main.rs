//! `meshlift-minion [--config FILE]`: the node agent process (default config
//! `/etc/meshlift/minion.toml`, as the packaged systemd unit runs it).
//!
//! The shell around [`meshlift_minion::agent::Agent`]: it runs the boot step (what U-Boot does on
//! a device), owns the ZeroMQ DEALER to the controller, the status timer, the radio, the
//! downloader, the flasher and hooks (blocking tasks), and process exit for a reboot. Every
//! decision is the agent's.

use anyhow::Context;
use clap::Parser;
use meshlift_image::{HookKind, VerifyingKey};
use meshlift_minion::agent::{Action, Agent, AgentInit, NodeFacts, REBOOT_EXIT_CODE};
use meshlift_minion::boot::{self, Factory};
use meshlift_minion::config::MinionConfig;
use meshlift_minion::data_lock::DataDirLock;
use meshlift_minion::download::{self, DownloadHandle, DownloadJob};
use meshlift_minion::flasher::{self, FlashRequest, FlashedImage};
use meshlift_minion::hooks::{self, HookContext};
use meshlift_minion::platform::{self, Platform, RebootMethod};
use meshlift_minion::radio::Radio;
use meshlift_minion::slots::{slots_report, SlotStore};
use meshlift_minion::startup_config;
use meshlift_minion::state;
use meshlift_protocol::transport::{
    ClientSecurity, CurveKeyPair, CurvePublicKey, Dealer, DealerConfig, DealerEvent,
};
use meshlift_protocol::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// meshlift minion: downloads a signed image, verifies it, writes the standby slot, and on commit
/// boots it once on trial, checks itself, then confirms or falls back to the old slot.
///
/// Configuration (TOML): name, mac, data_dir, controller (tcp://host:port), board, trusted_keys,
/// factory_image (first boot only), radio_file (default <data_dir>/radio.json), status_interval_s
/// (default 5), hook_timeout_s (default 60), bt_listen_port, uplink_peers_file, controller_key
/// (controller.pub path or Z85) and key_file (this node's CURVE secret key), insecure (default false),
/// radio_command, reboot ("command" or "exit") and reboot_command (default systemctl reboot),
/// [boot] backend ("file" or "uboot") with fw_env_config, [slots] backend ("file" or "block")
/// with a and b (see configs/uboot/README.md).
///
/// With reboot = "exit" (meshsim), exit code 10 asks the supervisor for a reboot. Under systemd (Type=notify) it
/// reports READY=1 after the boot step and pings the watchdog from its main loop (WatchdogSec=).
#[derive(Parser)]
#[command(name = "meshlift-minion", version, verbatim_doc_comment)]
struct Args {
    /// Path of the TOML configuration file. Default /etc/meshlift/minion.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), overrides RUST_LOG. Default "info".
    #[arg(long)]
    log: Option<String>,
    /// Print both slots (VOLTHA DMI GetSoftwareVersion: active and standby version, confirmed or
    /// not) as JSON and exit.
    #[arg(long, conflicts_with_all = ["revert_to_standby", "clear_failed"])]
    versions: bool,
    /// Make the standby slot active without a trial (VOLTHA DMI RevertToStandbyImage) and exit;
    /// refused unless that slot holds an image confirmed on this node before. Takes effect at the
    /// next start (the supervisor's restart).
    #[arg(long, conflicts_with = "clear_failed")]
    revert_to_standby: bool,
    /// Forget failed trials so an image may be tried again: a sha256, or "all". Then exit.
    #[arg(long, value_name = "SHA256|all")]
    clear_failed: Option<String>,
}

/// Offline operator actions on the node's slots and boot environment (no controller needed).
/// Each holds the data-directory lock, so none runs under a running minion.
fn node_action(args: &Args, cfg: &MinionConfig) -> Option<ExitCode> {
    if !(args.versions || args.revert_to_standby || args.clear_failed.is_some()) {
        return None;
    }
    if !cfg.data_dir.is_dir() {
        eprintln!("meshlift-minion: no boot environment in {} (never booted)", cfg.data_dir.display());
        return Some(ExitCode::from(1));
    }
    let _lock = match DataDirLock::acquire(&cfg.data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            return Some(ExitCode::from(1));
        }
    };
    let platform = match Platform::new(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            return Some(ExitCode::from(2));
        }
    };
    let mut bl = platform.bootloader();
    let env = match bl.load() {
        Ok(Some(env)) => env,
        Ok(None) => {
            eprintln!("meshlift-minion: no boot environment in {} (never booted)", cfg.data_dir.display());
            return Some(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            return Some(ExitCode::from(1));
        }
    };
    // The process that would run now boots `active` (any pending trial is consumed at start).
    let slots = match platform.open_slots(env.active) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            return Some(ExitCode::from(1));
        }
    };
    if args.versions {
        let report = slots_report(slots.as_ref(), &env);
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Some(ExitCode::SUCCESS);
    }
    if args.revert_to_standby {
        return Some(match boot::revert_to_standby(bl.as_mut(), slots.as_ref()) {
            Ok(slot) => {
                println!("slot {} is now active; restart the node to boot it", slot.as_str());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshlift-minion: revert refused: {e}");
                ExitCode::from(1)
            }
        });
    }
    let which = args.clear_failed.as_deref().unwrap_or("all");
    let only = if which == "all" {
        None
    } else {
        match which.parse::<Sha256Digest>() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("meshlift-minion: {e}");
                return Some(ExitCode::from(2));
            }
        }
    };
    Some(match boot::clear_failed(bl.as_mut(), only) {
        Ok(n) => {
            println!("cleared {n} failed-trial record(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            ExitCode::from(1)
        }
    })
}

/// How long the minion waits to be stopped after a successful reboot command.
const REBOOT_GRACE: Duration = Duration::from_secs(300);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,librqbit=warn".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = match MinionConfig::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshlift-minion: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(code) = node_action(&args, &cfg) {
        return code;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshlift-minion: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let node = cfg.name.clone();
    let span = tracing::info_span!("minion", node = %node);
    let _g = span.enter();
    match rt.block_on(run(cfg)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("meshlift-minion: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Results of background work, fed back into the agent.
enum Work {
    Downloaded(u64, Result<PathBuf, String>),
    Flashed(Box<Result<FlashedImage, String>>),
    Hook(HookKind, Result<(), String>),
}

/// A download in progress, or finished and still seeding to the batch's other nodes. Dropping it
/// stops the task, which drops the downloader's handle (and so stops downloading or seeding).
struct RunningDownload {
    id: u64,
    progress: tokio::sync::watch::Receiver<DownloadProgress>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Shell {
    cfg: MinionConfig,
    keys: Vec<VerifyingKey>,
    slots: Box<dyn SlotStore + Send>,
    platform: Platform,
    agent: Agent,
    facts: NodeFacts,
    dealer: Dealer,
    seq: u64,
    download: Option<RunningDownload>,
    next_download_id: u64,
    work_tx: mpsc::Sender<Work>,
    exit: Option<i32>,
}

/// CURVE towards the controller (its public key authenticates it; ours is enrolled for this node),
/// or plain text only when the config says `insecure = true`.
fn client_security(cfg: &MinionConfig) -> anyhow::Result<ClientSecurity> {
    if cfg.insecure {
        tracing::warn!("insecure = true: plain text to the controller, no authentication either way");
        return Ok(ClientSecurity::Insecure);
    }
    let (Some(server), Some(key_file)) = (&cfg.controller_key, &cfg.key_file) else {
        anyhow::bail!(
            "controller_key and key_file are required (CURVE is on by default): create this node's key with \
             `meshlift keygen --curve --out DIR --name NODE`, enroll its .pub on the controller with \
             `meshlift node enroll NODE --key DIR/NODE.pub`, and set controller_key to the controller's .pub"
        );
    };
    let server = CurvePublicKey::from_file_or_z85(server).context("controller_key")?;
    let keys = CurveKeyPair::load(key_file).context("key_file")?;
    tracing::info!(node_key = %keys.public(), controller_key = %server, "CURVE on");
    Ok(ClientSecurity::Curve { keys, server })
}

async fn run(cfg: MinionConfig) -> anyhow::Result<i32> {
    let keys = cfg
        .trusted_keys
        .iter()
        .map(|p| meshlift_image::load_public_key(p).with_context(|| format!("trusted key {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("data dir {}", cfg.data_dir.display()))?;
    // Held until the process exits: no offline tool changes slots or boot environment under us,
    // and a second minion on the same node is refused.
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    // Under the lock no other write is in flight: temp files here are from writes a crash cut.
    for dir in [cfg.data_dir.clone(), cfg.data_dir.join("slots")] {
        match meshlift_minion::remove_stale_temps(&dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(dir = %dir.display(), n, "removed temp files of interrupted writes"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove stale temp files"),
        }
    }

    // The boot step: consume a pending trial, or boot the active slot (first boot: factory image).
    let platform = Platform::new(&cfg)?;
    let outcome = platform
        .boot(
            Factory { image: cfg.factory_image.as_deref(), trusted_keys: &keys, board: &cfg.board },
            now_ms(),
        )
        .context("boot step failed")?;
    tracing::info!(
        slot = outcome.booted.as_str(),
        trial = outcome.trial,
        first_boot = outcome.first_boot,
        "booted"
    );
    let slots = platform.open_slots(outcome.booted).context("cannot open slots")?;
    let running_hooks = slots
        .image(outcome.booted)
        .ok()
        .flatten()
        .map(|img| img.manifest.hooks.iter().map(|h| h.kind).collect())
        .unwrap_or_default();
    let persisted = match state::load_state(&cfg.upgrade_state_file()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "upgrade state unreadable; starting from NONE");
            None
        }
    };
    let report = slots_report(slots.as_ref(), &outcome.env);
    // The booted slot's startup configuration becomes the running one; a fallback or a revert
    // brings back the document of the slot it boots.
    let startup_config = match startup_config::activate(&cfg.data_dir, slots.as_ref()) {
        Ok(digest) => digest,
        Err(e) => {
            tracing::error!(error = %e, "startup configuration of the booted slot not activated");
            None
        }
    };
    let agent = Agent::new(AgentInit {
        persisted,
        boot: outcome,
        slots: report,
        running_hooks,
        board: cfg.board.clone(),
        startup_config,
        now: now_ms(),
    });

    let boot_id = format!("{:016x}", rand_u64());
    let facts =
        NodeFacts { mac: cfg.mac.clone(), boot_id: boot_id.clone(), hardware_board_id: cfg.board.clone() };
    // The routing id is the MAC, stable across restarts: with the controller's ROUTER_HANDOVER a
    // restarted minion takes over its own stale connection at once.
    let security = client_security(&cfg)?;
    let mut dcfg = DealerConfig::new(&cfg.controller, cfg.mac.clone(), "minion-upgrade", security);
    dcfg.reconnect_max = Duration::from_secs(2);
    let (dealer, mut events) = Dealer::spawn(dcfg).context("cannot create the controller socket")?;
    let (work_tx, mut work_rx) = mpsc::channel(8);
    let radio = platform.radio();
    let interval = Duration::from_secs(cfg.status_interval_s.max(1));

    let mut sh = Shell {
        cfg,
        keys,
        slots,
        platform,
        agent,
        facts,
        dealer,
        seq: 0,
        download: None,
        next_download_id: 0,
        work_tx,
        exit: None,
    };
    sh.poll_radio(radio.as_ref());
    sh.drain().await;

    // The boot step is done and the loop starts: READY=1, then a watchdog ping from this loop.
    let mut watchdog =
        meshlift_minion::systemd::Watchdog::ready(&format!("booted slot {}", sh.slots.booted().as_str()));
    let mut status_timer = tokio::time::interval(interval);
    let mut radio_timer = tokio::time::interval(Duration::from_millis(500));
    loop {
        if let Some(code) = sh.exit {
            return Ok(code);
        }
        let deadline = sh.agent.next_deadline().map(|d| {
            let wait = d.saturating_sub(now_ms());
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        let progress_changed = async {
            match sh.download.as_mut() {
                Some(d) => {
                    if d.progress.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => match ev {
                None => anyhow::bail!("transport task ended"),
                Some(DealerEvent::Connected) => {
                    tracing::info!(controller = %sh.cfg.controller, "connected to controller");
                    sh.send_status();
                }
                Some(DealerEvent::Disconnected(why)) => tracing::warn!(%why, "controller connection lost"),
                Some(DealerEvent::BadFrame(e)) => tracing::warn!(error = %e, "refused frame from controller"),
                Some(DealerEvent::Message(env)) => match env.body {
                    Message::StatusReportAck(ack) => {
                        if let Some(why) = ack.refused {
                            tracing::error!(%why, "controller refuses this node");
                        } else {
                            sh.agent.handle_controller_ack(now_ms());
                            if ack.request_full_status_report {
                                sh.send_status();
                            }
                        }
                    }
                    Message::UpgradeReq(req) => {
                        let _span = tracing::info_span!("request", req = %req.upgrade_req_id, kind = ?req.ur_type).entered();
                        let ack = sh.agent.handle_upgrade_req(req, now_ms());
                        if ack.success { tracing::info!("{}", ack.message) } else { tracing::warn!("{}", ack.message) }
                        let reply = Envelope::new(env.request_id, Message::Ack(ack));
                        if let Err(e) = sh.dealer.send(&reply) {
                            tracing::warn!(error = %e, "ack not sent");
                        }
                    }
                    other => tracing::warn!(kind = other.kind(), "unexpected message from controller"),
                },
            },
            // A broken path or a restarted controller is libzmq's to notice (heartbeats) and
            // repair (reconnect); `Connected` then triggers a full report.
            _ = status_timer.tick() => sh.send_status(),
            _ = radio_timer.tick() => sh.poll_radio(radio.as_ref()),
            _ = watchdog.tick() => watchdog.ping(),
            _ = progress_changed => {
                if let Some(d) = sh.download.as_ref() {
                    let p = d.progress.borrow().clone();
                    sh.agent.handle_download_progress(p);
                }
            }
            Some(w) = work_rx.recv() => match w {
                Work::Downloaded(id, r) => {
                    // A result from a download that was cancelled or replaced is stale.
                    if sh.download.as_ref().is_some_and(|d| d.id == id) {
                        match &r {
                            Ok(p) => tracing::info!(path = %p.display(), "download complete"),
                            Err(e) => tracing::warn!(error = %e, "download failed"),
                        }
                        if r.is_err() {
                            sh.download = None;
                        }
                        sh.agent.handle_download_done(r, now_ms());
                    }
                }
                Work::Flashed(r) => sh.agent.handle_flash_done(*r, now_ms()),
                Work::Hook(kind, r) => sh.agent.handle_hook_done(kind, r, now_ms()),
            },
            _ = sleep_until(deadline) => sh.agent.handle_timeout(now_ms()),
        }
        sh.drain().await;
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    h.finish()
}

impl Shell {
    /// A radio command may take a moment: the runtime is told this thread blocks.
    fn poll_radio(&mut self, radio: &(dyn Radio + Send)) {
        match tokio::task::block_in_place(|| radio.links()) {
            Ok(links) => self.agent.handle_links(links, now_ms()),
            Err(e) => tracing::debug!(error = %e, "radio unreadable"),
        }
    }

    fn uplink_peers(&self) -> Option<u32> {
        let path = self.cfg.uplink_peers_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        text.trim().parse().ok()
    }

    fn send_status(&mut self) {
        self.seq += 1;
        let Some(env) = self.read_env() else { return };
        let slots = slots_report(self.slots.as_ref(), &env);
        let report = self.agent.status_report(&self.facts, slots, self.uplink_peers(), self.seq, now_ms());
        let env = Envelope::new(self.dealer.next_request_id(), Message::StatusReport(Box::new(report)));
        if let Err(e) = self.dealer.send(&env) {
            tracing::debug!(error = %e, "status report not queued");
        }
    }

    fn start_download(&mut self, job: DownloadJob) {
        self.next_download_id += 1;
        let id = self.next_download_id;
        let mut handle: DownloadHandle = download::start(job);
        let progress = handle.progress.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let tx = self.work_tx.clone();
        tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            tokio::select! {
                r = handle.finished() => {
                    let _ = tx.send(Work::Downloaded(id, r.map_err(|e| e.to_string()))).await;
                }
                _ = &mut stop_rx => return,
            }
            // Finished: keep the handle (and so the seeding) alive until the shell drops us.
            let _ = stop_rx.await;
            drop(handle);
        });
        self.download = Some(RunningDownload { id, progress, _stop: stop_tx });
    }

    /// How hooks of the running image are run: `<hook> <state> <work-dir> <node>`.
    fn hook_context(&self) -> HookContext {
        HookContext {
            work_dir: self.cfg.hook_work_dir(),
            node: self.cfg.name.clone(),
            timeout: Duration::from_secs(self.cfg.hook_timeout_s),
            args: Vec::new(),
        }
    }

    /// Reboots the node the configured way: exit code 10 for a supervisor (meshsim), or the
    /// reboot command. Once the system has accepted the command nothing new may start (a restarted
    /// minion would run the boot step on the old system before the reboot), so this waits to be
    /// stopped by the shutdown; if that never comes, or the command fails, the process exits with
    /// an error and the next start sorts out the armed trial (disarmed when the kernel command
    /// line shows the node never left the old slot).
    async fn reboot(&mut self) {
        if self.platform.reboot == RebootMethod::Exit {
            self.exit = Some(REBOOT_EXIT_CODE);
            return;
        }
        let argv = self.platform.reboot_command.clone();
        let requested =
            tokio::task::spawn_blocking(move || platform::request_reboot(&argv, Duration::from_secs(60)))
                .await;
        match requested {
            Ok(Ok(())) => {
                tracing::info!(command = ?self.platform.reboot_command, "reboot requested; waiting for the shutdown");
                // Still pinging systemd's watchdog: waiting for the shutdown is not a hang.
                meshlift_minion::systemd::sleep_pinging(REBOOT_GRACE).await;
                tracing::error!("still running {}s after the reboot request", REBOOT_GRACE.as_secs());
            }
            Ok(Err(e)) => tracing::error!(error = %e, "reboot command failed"),
            Err(e) => tracing::error!(error = %e, "reboot task failed"),
        }
        self.exit = Some(1);
    }

    fn read_env(&self) -> Option<meshlift_minion::boot_env::BootEnv> {
        // fw_printenv on U-Boot: a short process, but this thread waits for it.
        match tokio::task::block_in_place(|| self.platform.bootloader().load()) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(error = %e, "boot environment unreadable");
                None
            }
        }
    }

    async fn drain(&mut self) {
        while let Some(action) = self.agent.poll_action() {
            tracing::debug!(?action, "action");
            match action {
                Action::StartDownload(req) => {
                    let bt_listen = self.cfg.bt_listen_port.map(download::listen_any);
                    let job = DownloadJob { req, work_dir: self.cfg.download_dir(), bt_listen };
                    self.start_download(job);
                }
                Action::CancelDownload => {
                    self.download = None;
                }
                Action::CleanDownloads => {
                    self.download = None;
                    let dir = self.cfg.download_dir();
                    match download::remove_work_dir(&dir) {
                        Ok(()) => tracing::debug!(dir = %dir.display(), "download directory emptied"),
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot empty the download directory")
                        }
                    }
                }
                Action::Flash { image_path, allow_downgrade, expected_sha256, startup_config } => {
                    let data_dir = self.cfg.data_dir.clone();
                    let keys = self.keys.clone();
                    let board = self.cfg.board.clone();
                    let platform = self.platform.clone();
                    let booted = self.slots.booted();
                    let installed =
                        self.slots.image(booted).ok().flatten().map(|i| i.manifest.version.clone());
                    let failed = self.read_env().map(|e| e.failed).unwrap_or_default();
                    let hook_ctx = self.hook_context();
                    let tx = self.work_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let r = (|| -> Result<FlashedImage, String> {
                            let mut slots = platform.open_slots(booted).map_err(|e| e.to_string())?;
                            let req = FlashRequest {
                                image_path: &image_path,
                                expected_sha256,
                                trusted_keys: &keys,
                                board: &board,
                                installed_version: installed.as_deref(),
                                allow_downgrade,
                                failed_images: &failed,
                                hooks: Some(&hook_ctx),
                            };
                            let mut standby = slots.standby();
                            let mut flashed = flasher::verify_and_flash(&req, standby.as_mut())
                                .map_err(|e| e.to_string())?;
                            startup_config::attach(
                                &data_dir,
                                standby.as_mut(),
                                &mut flashed.image,
                                startup_config.as_ref(),
                            )
                            .map_err(|e| e.to_string())?;
                            Ok(flashed)
                        })();
                        let _ = tx.blocking_send(Work::Flashed(Box::new(r)));
                    });
                }
                Action::RunHook { kind, state } => {
                    let hook = self
                        .slots
                        .image(self.slots.booted())
                        .ok()
                        .flatten()
                        .and_then(|img| img.manifest.hook(kind).cloned());
                    let ctx = self.hook_context();
                    let tx = self.work_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let r = match hook {
                            Some(h) => hooks::run_hook(&h, state, &ctx).map_err(|e| e.to_string()),
                            None => Ok(()),
                        };
                        let _ = tx.blocking_send(Work::Hook(kind, r));
                    });
                }
                Action::Persist(st) => {
                    if let Err(e) = state::save_state(&self.cfg.upgrade_state_file(), &st) {
                        tracing::error!(error = %e, "cannot persist upgrade state");
                    }
                }
                Action::SendStatusNow => self.send_status(),
                Action::Reboot { attempt } => {
                    let mut bl = self.platform.bootloader();
                    match boot::arm_trial(bl.as_mut(), attempt) {
                        Ok(()) => {
                            tracing::info!("trial armed; rebooting");
                            self.send_status();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            self.reboot().await;
                        }
                        Err(e) => self.agent.handle_commit_failed(e.to_string(), now_ms()),
                    }
                }
                Action::Confirm { slot, image_sha256 } => {
                    let mut bl = self.platform.bootloader();
                    match boot::confirm_trial(bl.as_mut(), slot, image_sha256) {
                        Ok(()) => tracing::info!(slot = slot.as_str(), "trial confirmed"),
                        Err(e) => self.agent.handle_confirm_failed(e.to_string(), now_ms()),
                    }
                }
                Action::Revert { slot } => {
                    let mut bl = self.platform.bootloader();
                    match boot::revert_to_standby(bl.as_mut(), self.slots.as_ref()) {
                        Ok(active) => {
                            tracing::info!(
                                slot = active.as_str(),
                                expected = slot.as_str(),
                                "standby slot made active; rebooting"
                            );
                            self.send_status();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            self.reboot().await;
                        }
                        Err(e) => self.agent.handle_revert_failed(e.to_string(), now_ms()),
                    }
                }
                Action::FallBack { reason } => {
                    let mut bl = self.platform.bootloader();
                    if let Err(e) = boot::record_trial_failure(bl.as_mut(), &reason) {
                        tracing::error!(error = %e, "cannot record the trial failure");
                    }
                    tracing::warn!(%reason, "trial failed; rebooting into the old slot");
                    self.reboot().await;
                }
            }
        }
    }
}
