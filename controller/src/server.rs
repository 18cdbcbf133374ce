//! The controller's shell: binds the two ROUTER sockets and the HTTP server, feeds the engine
//! with status reports, operator requests and ticks, and carries out what the engine asks.
//!
//! Everything that decides lives in [`crate::engine`]; this file only moves bytes and time. One
//! task owns the engine (no locks around decisions); slow work (adding an image: download,
//! verification, hashing, torrent creation) runs in its own task and comes back as a message.

use crate::auth::{self, AppAuth, AuthRefusal, Keyring, MinionAuth, NodeKeys, Role};
use crate::config::ControllerConfig;
use crate::dist::{self, DistConfig, ImageStore};
use crate::engine::{Action, Engine, EngineConfig, EventLevel};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::Store;
use anyhow::Context;
use bytes::Bytes;
use meshlift_protocol::fleet::ImageTagReq;
use meshlift_protocol::transport::{
    CurveKeyPair, CurvePublicKey, Incoming, Router, RouterConfig, RouterEvent, ServerSecurity, SocketLimits,
    Undeliverable,
};
use meshlift_protocol::*;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

#[path = "api/loop_side.rs"]
mod api_loop;

/// Wall clock in UNIX ms: the only clock the engine ever sees.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where a node can be reached now: the identity of its latest connection.
#[derive(Debug, Clone)]
struct Route {
    identity: Bytes,
    boot_id: String,
}

/// Results of slow work coming back to the engine task: an image added or deleted by the
/// image store, with who asked and where the reply goes.
struct Done {
    op: ImageOp,
    identity: Bytes,
    request_id: u64,
    result: Result<UpgradeImage, String>,
    operator: Operator,
    /// Tags to store with an added image (`image add --tag`).
    tags: Vec<String>,
}

#[derive(Clone, Copy)]
enum ImageOp {
    Added,
    Deleted,
    /// A stored image passed its background re-verification at start-up (no one to answer).
    Found,
}

/// Run an image-store operation in its own task (a download or hashing must not stall status
/// handling) and send its result back to the engine task.
fn spawn_image_op<F>(
    done: &mpsc::Sender<Done>,
    op: ImageOp,
    identity: Bytes,
    request_id: u64,
    operator: Operator,
    tags: Vec<String>,
    work: F,
) where
    F: std::future::Future<Output = Result<UpgradeImage, String>> + Send + 'static,
{
    let done = done.clone();
    tokio::spawn(async move {
        let result = work.await;
        let _ = done.send(Done { op, identity, request_id, result, operator, tags }).await;
    });
}

/// Verifies images with `meshlift-image` against the configured trusted keys.
struct TrustedKeysVerifier {
    keys: Vec<meshlift_image::VerifyingKey>,
}

impl dist::ImageVerifier for TrustedKeysVerifier {
    fn verify(&self, path: &std::path::Path) -> Result<dist::VerifiedImageInfo, String> {
        let v = meshlift_image::verify_file(path, &self.keys).map_err(|e| e.to_string())?;
        Ok(dist::VerifiedImageInfo {
            name: v.manifest.version.clone(),
            version: v.manifest.version.clone(),
            hardware_board_ids: v.manifest.hardware_board_ids.clone(),
        })
    }
}

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(cfg: ControllerConfig) -> anyhow::Result<()> {
    let topo_text = std::fs::read_to_string(&cfg.topology_file)
        .with_context(|| format!("cannot read topology {}", cfg.topology_file.display()))?;
    let topology = Topology::from_json(&topo_text)
        .with_context(|| format!("invalid topology {}", cfg.topology_file.display()))?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;

    let keys = cfg
        .trusted_keys
        .iter()
        .map(|p| meshlift_image::load_public_key(p).with_context(|| format!("trusted key {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() {
        tracing::warn!("no trusted_keys configured: every `image add` will be refused");
    }

    let http_listener = crate::address::bind_tcp(cfg.http_listen)
        .and_then(tokio::net::TcpListener::from_std)
        .with_context(|| format!("cannot bind HTTP server on {}", cfg.http_listen))?;
    let http_addr = http_listener.local_addr()?;
    let http_base = cfg.public_host.http_base_url(http_addr.port());
    warn_about_public_host(&cfg.public_host, http_addr).await;

    // The seeder listens where the HTTP server does (same address, so the same family and
    // interfaces): `[::]` is dual-stack in librqbit too.
    let bt_listen = SocketAddr::new(http_addr.ip(), cfg.bittorrent.listen_port);
    let mut dist_cfg = DistConfig::new(bt_listen, http_base.clone(), Arc::new(TrustedKeysVerifier { keys }));
    dist_cfg.bt_public_addr = Some(cfg.public_host.with_port(cfg.bittorrent.listen_port));
    if !cfg.bittorrent.tracker_url.is_empty() {
        dist_cfg.tracker_url = Some(cfg.bittorrent.tracker_url.clone());
    }
    dist_cfg.seed_upload_limit =
        cfg.bittorrent.upload_limit.and_then(|l| std::num::NonZeroU32::new(l.min(u32::MAX as u64) as u32));
    dist_cfg.min_free_bytes = cfg.image_min_free_bytes;
    // Stored images are checked after the sockets are bound (see below), not before.
    let (images, stored_images) = ImageStore::open_deferred(cfg.data_dir.join("images"), dist_cfg)
        .await
        .context("cannot open image store")?;

    let store = Store::open(&cfg.data_dir.join("state.db")).context("cannot open state database")?;
    let ecfg = EngineConfig {
        node_alive_timeout_ms: cfg.node_alive_timeout_s * 1000,
        confirm_timeout_s: cfg.confirm_timeout_s,
        journal_keep_ms: cfg.journal_keep_days.saturating_mul(crate::engine::DAY_MS),
        journal_max_rows: cfg.journal_max_rows,
        ..EngineConfig::default()
    };
    // The engine never touches the database: it is rebuilt from a snapshot read here, and its
    // writes come back as `Action::Persist`, applied by the outbox before anything else it asks.
    let snapshot = store.snapshot().context("cannot read upgrade state")?;
    let golden_row = snapshot.golden.clone();
    let mut engine = Engine::from_snapshot(topology.clone(), ecfg, snapshot, now_ms())
        .context("cannot load upgrade state")?;
    let outbox = Outbox::new(store);
    // Images on disk are the truth for what can be served: once re-verified in the background,
    // each comes back to the loop as `ImageOp::Found` and the engine learns any it lacks.

    let metrics = Arc::new(std::sync::Mutex::new(Metrics::new()));
    let (refusal_tx, mut refusal_rx) = mpsc::channel::<AuthRefusal>(256);
    let (minion_security, app_security, keyring) = security(&cfg, &topology, refusal_tx)?;
    let limits = SocketLimits { max_msg_bytes: cfg.max_frame_bytes, ..SocketLimits::server() };
    // Minions on libzmq's first I/O thread, operators on the second: an operator's handshake never
    // waits behind ten thousand nodes' reports.
    let bind = |endpoint: &str, security: ServerSecurity, affinity: u64| {
        let rc = RouterConfig { limits: limits.clone(), affinity, ..RouterConfig::new(endpoint, security) };
        Router::bind(rc).with_context(|| format!("cannot bind {endpoint}"))
    };
    let (minion_router, mut minion_rx) = bind(&cfg.minion_endpoint, minion_security, 0b01)?;
    let (app_router, mut app_rx) = bind(&cfg.app_endpoint, app_security, 0b10)?;
    tracing::info!(minion = %minion_router.endpoint(), app = %app_router.endpoint(), http = %http_addr, "controller listening");

    // HTTP: /metrics, /healthz, tracker and images; the API and the dashboard (crate::api).
    let (api_state, api_side, mut api_rx) =
        crate::api::new(&cfg.security.api_tokens, &cfg.http, &cfg.data_dir)?;
    let tls = crate::api::tls::server_config(cfg.http.tls_cert.as_deref(), cfg.http.tls_key.as_deref())?;
    let m2 = metrics.clone();
    let health = Health::new();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = m2.clone();
                async move {
                    let text = m.lock().map(|m| m.render()).unwrap_or_default();
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
                }
            }),
        )
        .merge(health.router())
        .merge(dist::router(images.clone()))
        .merge(crate::api::router(api_state));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        if let Err(e) = crate::api::tls::serve(http_listener, app, tls, http_stop_rx).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let golden = crate::golden::drive::open(golden_row.as_deref(), &cfg.golden)
        .context("cannot start the golden-image loop")?;
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
    let mut sh = Shell {
        routes: HashMap::new(),
        undelivered: HashMap::new(),
        pending_acks: BTreeMap::new(),
        next_envelope_id: 1,
        reads: ReadCache::default(),
        refusals_journaled: HashMap::new(),
        keyring,
        limit_cap: cfg.security.operator_limit_cap,
        metrics: metrics.clone(),
        timings: Default::default(),
        last_progress: None,
        golden,
        api: api_side,
        outbox,
        health,
    };
    let mut shadow = MetricShadow::default();
    // The only periodic wake-up left: gauges (online, last seen, state per node) and the API's node
    // table are views of what every report changes; refreshing them per report would cost more
    // than the reports at 10 000 nodes, so they are sampled every `tick_interval_ms`. Nothing is
    // decided there: the engine and the golden-image loop are woken at their own deadlines.
    let mut refresh = tokio::time::interval(Duration::from_millis(cfg.tick_interval_ms.max(50)));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut golden_cue = GoldenCue::of(&engine);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    // Ready: both ROUTERs and the HTTP listener are bound, and SIGTERM is handled — so a
    // `systemctl stop` right after start is a clean shutdown, not the default signal action.
    crate::systemd::notify_ready(&format!(
        "listening: minions {}, operators {}, http {http_addr}",
        minion_router.endpoint(),
        app_router.endpoint()
    ));
    // Re-verify the stored images now, in the background: the sockets answer meanwhile, so a
    // restart mid-commit never keeps nodes on trial waiting for gigabytes to be hashed. An image
    // is served, seeded and tracked only once its check passed.
    {
        let (images, done) = (images.clone(), done_tx.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let of = stored_images.len();
            let found = images.reverify(stored_images).await;
            tracing::info!(
                passed = found.len(),
                of,
                secs = started.elapsed().as_secs_f64(),
                "stored images re-verified"
            );
            for img in found {
                let operator = Operator {
                    who: "controller".into(),
                    reason: Some("found in the image store at start-up".into()),
                };
                let done_msg = Done {
                    op: ImageOp::Found,
                    identity: Bytes::new(),
                    request_id: 0,
                    result: Ok(img),
                    operator,
                    tags: Vec::new(),
                };
                if done.send(done_msg).await.is_err() {
                    break;
                }
            }
        });
    }
    loop {
        // Sleep until the earliest deadline: the engine's named timers, the golden-image loop's
        // (not while degraded: it starts nothing then), a held write's retry.
        let golden_due = if sh.outbox.degraded().is_none() { sh.golden.next_deadline() } else { None };
        let wake =
            [engine.next_deadline(), golden_due, sh.outbox.next_deadline()].into_iter().flatten().min();
        // Signals, finished slow work and the timers first; then minion frames and operator
        // requests in random order (tokio's fair select), with a budget: each turn takes up to
        // MINION_BUDGET minion frames but one operator request. A flood of operator reads can
        // then never starve status acks (nodes on trial must hear from us in time), and ten
        // thousand minions reporting every second never make an operator wait behind their queue.
        // No branch awaits a peer: every send is queued to the socket's I/O thread.
        tokio::select! {
            biased;
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); crate::systemd::notify_stopping(); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); crate::systemd::notify_stopping(); break; }
            Some(done) = done_rx.recv() => {
                sh.reads.clear();
                on_done(&mut sh, &mut engine, &app_router, done);
            }
            _ = until(wake) => {
                let now = now_ms();
                if engine.next_deadline().is_some_and(|d| d <= now) {
                    sh.reads.clear();
                    engine.tick(now);
                }
                // The golden-image loop's deadline and a held write's retry are served below.
            }
            _ = refresh.tick() => {
                let now = now_ms();
                sh.api_publish_nodes(&engine);
                if let Ok(mut m) = metrics.lock() {
                    update_metrics(&mut m, &mut shadow, &engine, &images, now);
                    let fleet = crate::golden::drive::fleet(&engine, &sh.golden, now);
                    crate::golden::drive::update_metrics(&m, &sh.golden, &fleet, now);
                }
            }
            Some(r) = refusal_rx.recv() => sh.journal_refusal(&mut engine, r),
            Some(m) = api_rx.recv() => sh.on_api(&mut engine, &images, m),
            ev = next_fair(&mut minion_rx, &mut app_rx) => match ev {
                Fair::Minion(ev) => {
                    sh.on_minion_event(&mut engine, &minion_router, ev);
                    for _ in 1..MINION_BUDGET {
                        let Ok(ev) = minion_rx.try_recv() else { break };
                        sh.on_minion_event(&mut engine, &minion_router, ev);
                        sh.drain_actions(&mut engine, &minion_router, &images);
                    }
                }
                Fair::App(ev) => sh.on_app_event(&mut engine, &images, &app_router, &done_tx, ev),
                Fair::Closed => { tracing::error!("a socket thread stopped"); break; }
            },
        }
        // The golden-image loop at its deadline, or when an engine request started or finished
        // (a wave is judged, and the loop sees the engine idle, in the same turn). Not while
        // degraded: a wave started now could not be recorded.
        let now = now_ms();
        let cue = GoldenCue::of(&engine);
        if sh.outbox.degraded().is_none()
            && (cue != golden_cue || sh.golden.next_deadline().is_some_and(|d| d <= now))
        {
            sh.reads.clear();
            let store = Some(sh.outbox.store());
            crate::golden::drive::turn(&mut engine, &mut sh.golden, store, now);
            golden_cue = GoldenCue::of(&engine);
        }
        sh.drain_actions(&mut engine, &minion_router, &images);
    }

    // One last attempt for writes held by a failing store; what is still held is lost with the
    // process, and so are the actions that depended on it (none of them was sent).
    sh.drain_actions(&mut engine, &minion_router, &images);
    if let Some(d) = sh.outbox.degraded() {
        tracing::error!(
            error = %d.error,
            held = sh.outbox.backlog(),
            "stopping while the state database refuses writes: the held decisions were never acted upon"
        );
    }
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(3), http_task).await;
    images.shutdown().await;
    tracing::info!("controller stopped; state flushed");
    Ok(())
}

/// What the golden-image loop reacts to in the engine besides time: whether it is idle, and
/// which request runs and which finished last.
#[derive(PartialEq)]
struct GoldenCue {
    idle: bool,
    current: Option<String>,
    last_finished: Option<String>,
}

impl GoldenCue {
    fn of(engine: &Engine) -> GoldenCue {
        GoldenCue {
            idle: engine.is_idle(),
            current: engine.current_request_id().map(str::to_string),
            last_finished: engine.finished_requests().last().map(|f| f.request_id.clone()),
        }
    }
}

/// Sleep until `deadline` (UNIX ms, the engine's clock), forever if there is none.
async fn until(deadline: Option<u64>) {
    match deadline {
        Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
        None => std::future::pending().await,
    }
}

/// Log (WARN) what is wrong with advertising `public_host` to minions while listening on
/// `bind`: a loopback address on a network-facing listener, or an address the listener does not
/// cover. A name is resolved here only for this check (minions resolve it themselves).
async fn warn_about_public_host(host: &crate::address::Host, bind: SocketAddr) {
    let resolved = tokio::time::timeout(Duration::from_secs(5), host.resolve(bind.port())).await;
    let ips: Vec<std::net::IpAddr> = match resolved {
        Ok(Ok(addrs)) => addrs.iter().map(SocketAddr::ip).collect(),
        Ok(Err(e)) => {
            tracing::warn!(public_host = %host, error = %e, "public_host does not resolve on the controller");
            return;
        }
        Err(_) => {
            tracing::warn!(public_host = %host, "public_host did not resolve within 5 s on the controller");
            return;
        }
    };
    for warning in crate::address::advertise_warnings(host, &ips, bind) {
        tracing::warn!(public_host = %host, listen = %bind, "{warning}");
    }
}

/// Minion frames handled per loop turn before an operator request gets its chance.
const MINION_BUDGET: usize = 256;
/// UPGRADE_REQs whose `Ack` is still awaited; beyond this the oldest are forgotten (a node that
/// never answers is judged by its reports and the batch timeout anyway).
const PENDING_ACKS_MAX: usize = 65_536;
/// An operator read (state, plan) answered from a snapshot at most this old; any operator action,
/// finished image work or tick drops the snapshot, so what an operator just did is always seen.
const READ_SNAPSHOT_MS: u128 = 250;

/// The shell's own state beside the engine: routes to nodes, orders kept for a node's next
/// connection, and what it needs to authorise and journal operators.
struct Shell {
    routes: HashMap<String, Route>,
    undelivered: HashMap<String, UpgradeReq>,
    /// Envelope id of an UPGRADE_REQ → (node, upgrade request id): a minion's refusal in its
    /// `Ack` reaches the engine as that node's failed attempt.
    pending_acks: BTreeMap<u64, (String, String)>,
    next_envelope_id: u64,
    reads: ReadCache,
    /// Refused handshakes journaled per address, with when: one line per address a minute, so a
    /// client retrying with a bad key cannot flood the journal (every one is still counted).
    refusals_journaled: HashMap<String, u64>,
    keyring: Option<Arc<Keyring>>,
    limit_cap: i64,
    metrics: Arc<std::sync::Mutex<Metrics>>,
    /// Batch and reboot-to-confirm times for the histograms, and when the request last moved.
    timings: crate::metrics::timing::Timings,
    last_progress: Option<u64>,
    /// The golden-image loop (its state is in the engine's store).
    golden: crate::golden::Reconciler,
    /// The HTTP API's event stream and image work coming back (`api_loop`).
    api: crate::api::LoopSide,
    /// The engine's writes, applied before the actions that depend on them (owns the store).
    outbox: Outbox<Store>,
    health: Health,
}

/// Snapshots of the expensive operator reads.
#[derive(Default)]
struct ReadCache {
    state: Option<(std::time::Instant, Message)>,
    plan: Option<(std::time::Instant, UpgradeCommitPlanReq, Message)>,
}

impl ReadCache {
    fn clear(&mut self) {
        self.state = None;
        self.plan = None;
    }

    fn state(&mut self, engine: &mut Engine) -> Message {
        if let Some((at, m)) = &self.state {
            if at.elapsed().as_millis() < READ_SNAPSHOT_MS {
                return m.clone();
            }
        }
        let m = engine.handle_operator(Message::UpgradeStateReq(UpgradeStateReq {}), now_ms());
        self.state = Some((std::time::Instant::now(), m.clone()));
        m
    }

    fn plan(&mut self, engine: &mut Engine, req: UpgradeCommitPlanReq) -> Message {
        if let Some((at, r, m)) = &self.plan {
            if *r == req && at.elapsed().as_millis() < READ_SNAPSHOT_MS {
                return m.clone();
            }
        }
        let m = engine.handle_operator(Message::UpgradeCommitPlanReq(req.clone()), now_ms());
        self.plan = Some((std::time::Instant::now(), req, m.clone()));
        m
    }
}

enum Fair {
    Minion(RouterEvent),
    App(RouterEvent),
    Closed,
}

/// The next event of either socket, neither preferred (tokio's select picks a ready branch at
/// random).
async fn next_fair(minion: &mut mpsc::Receiver<RouterEvent>, app: &mut mpsc::Receiver<RouterEvent>) -> Fair {
    tokio::select! {
        ev = minion.recv() => ev.map_or(Fair::Closed, Fair::Minion),
        ev = app.recv() => ev.map_or(Fair::Closed, Fair::App),
    }
}

/// The two sockets' security, from the config: CURVE with the ZAP decisions of [`crate::auth`],
/// or plain text behind an explicit `insecure = true`.
fn security(
    cfg: &ControllerConfig,
    topology: &Topology,
    refusals: mpsc::Sender<AuthRefusal>,
) -> anyhow::Result<(ServerSecurity, ServerSecurity, Option<Arc<Keyring>>)> {
    let sec = &cfg.security;
    if sec.insecure {
        tracing::warn!(
            "security.insecure = true: both ZeroMQ sockets are plain text and unauthenticated; \
             anyone who reaches them can command the fleet and speak for any node"
        );
        return Ok((ServerSecurity::Insecure, ServerSecurity::Insecure, None));
    }
    let keys = CurveKeyPair::load(&sec.key_file).with_context(|| {
        format!(
            "cannot load the controller's CURVE key (create it with `meshlift keygen --curve --out {} --name controller`, \
             or set security.insecure = true for a lab)",
            sec.key_file.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into())
        )
    })?;
    let nodes = NodeKeys::load(&sec.node_keys_file)?;
    let names = topology.nodes.iter().map(|n| n.name.clone()).collect();
    let keyring = Arc::new(Keyring::new(nodes, names, &sec.operators, &cfg.base_dir, refusals)?);
    if keyring.operator_count() == 0 {
        tracing::warn!("no [[security.operators]] configured: the app socket admits nobody");
    }
    tracing::info!(public_key = %keys.public(), "CURVE on; minions and operators need this controller key");
    let minion = ServerSecurity::Curve {
        keys: keys.clone(),
        domain: "minion".into(),
        auth: Arc::new(MinionAuth(keyring.clone())),
    };
    let app = ServerSecurity::Curve { keys, domain: "app".into(), auth: Arc::new(AppAuth(keyring.clone())) };
    Ok((minion, app, Some(keyring)))
}

fn normalize(mac: &str) -> String {
    meshlift_protocol::topology::normalize_mac(mac)
}

impl Shell {
    /// Take the engine's actions into the outbox and write what is due; log a failure or a
    /// recovery and show it on `/healthz` and the gauge.
    fn settle(&mut self, engine: &mut Engine) {
        self.outbox.push_engine(engine);
        let report = self.outbox.flush(now_ms());
        if let Some(error) = &report.failed {
            tracing::error!(
                %error,
                held = self.outbox.backlog(),
                "state database write failed: holding this input's actions, retrying; controller degraded"
            );
        }
        if report.recovered {
            tracing::warn!("state database writes succeed again: held actions released, degraded cleared");
        }
        if let Ok(m) = self.metrics.lock() {
            self.health.update(self.outbox.degraded(), &m);
        }
    }

    /// The refusal for a state-changing operator request while a store write is failing.
    fn refuse_if_degraded(&self) -> Option<String> {
        self.outbox.degraded().map(crate::outbox::degraded_refusal)
    }

    /// An operator's state-changing request was answered with `ack`: if the write it caused is
    /// not durable yet (it just failed), say so rather than let the operator believe it is done.
    fn note_if_held(&mut self, engine: &mut Engine, answer: &mut Message) {
        self.settle(engine);
        if let (Some(d), Message::Ack(ack)) = (self.outbox.degraded(), answer) {
            if !ack.success {
                return;
            }
            ack.message = format!(
                "{} (held: the state database refused the write ({}); nothing is sent until it is written)",
                ack.message, d.error
            );
        }
    }

    fn drain_actions(&mut self, engine: &mut Engine, router: &Router, images: &ImageStore) {
        self.settle(engine);
        while let Some(action) = self.outbox.pop_ready() {
            match action {
                // The outbox consumed every `Persist`; none reaches the ready queue.
                Action::Persist(_) => {}
                Action::SendToNode { node, mac, mut req } => {
                    let mac = normalize(&mac);
                    // The newest order to a node replaces one kept from a failed send.
                    self.undelivered.remove(&mac);
                    // The seeder is every node's first peer: leechers meet each other through the
                    // tracker, but the controller must be reachable even when the tracker is not.
                    if req.ur_type == UpgradeReqType::PrepareUpgrade && req.initial_peers.is_empty() {
                        req.initial_peers = images.initial_peers();
                    }
                    let Some(route) = self.routes.get(&mac) else {
                        tracing::warn!(%node, %mac, req = %req.upgrade_req_id, "no connection to node; kept for its next report");
                        self.undelivered.insert(mac, *req);
                        continue;
                    };
                    let identity = route.identity.clone();
                    self.send_order(router, &node, &identity, *req);
                }
                Action::Event(ev) => {
                    self.api_engine_event(&ev);
                    let req = ev.request_id.as_deref().unwrap_or("-");
                    let node = ev.node.as_deref().unwrap_or("-");
                    match ev.level {
                        EventLevel::Info => tracing::info!(request = req, node, "{}", ev.message),
                        EventLevel::Warn => tracing::warn!(request = req, node, "{}", ev.message),
                        EventLevel::Error => tracing::error!(request = req, node, "{}", ev.message),
                    }
                }
            }
        }
        self.observe_timings(engine);
    }

    /// Batch lengths and reboot-to-confirm times, from what the engine shows after an input.
    fn observe_timings(&mut self, engine: &Engine) {
        let now = now_ms();
        let view = engine.current_batch().map(|b| crate::metrics::timing::BatchView {
            request_id: &b.request_id,
            stage: b.stage,
            index: b.index,
            started_at: b.started_at,
        });
        self.timings.request(engine.current_request_id(), now);
        let ended = self.timings.batch(view, now);
        let confirmed = self.timings.outcomes(engine.outcomes(), now);
        if ended.is_none() && confirmed.is_empty() && self.timings.last_progress() == self.last_progress {
            return;
        }
        self.last_progress = self.timings.last_progress();
        if let Ok(m) = self.metrics.lock() {
            m.observe_timings(ended, &confirmed, self.last_progress);
        }
    }

    /// Queue an UPGRADE_REQ under a fresh envelope id whose `Ack` we then expect.
    fn send_order(&mut self, router: &Router, node: &str, identity: &Bytes, req: UpgradeReq) {
        if req.ur_type == UpgradeReqType::CommitUpgrade {
            self.timings.commit_sent(node, req.schedule_to_commit_s, now_ms());
        }
        let id = self.next_envelope_id;
        self.next_envelope_id += 1;
        self.pending_acks.insert(id, (node.to_string(), req.upgrade_req_id.clone()));
        while self.pending_acks.len() > PENDING_ACKS_MAX {
            self.pending_acks.pop_first();
        }
        if let Err(e) = router.send(identity, b"ctrl-upgrade", Envelope::new(id, Message::UpgradeReq(req))) {
            tracing::warn!(%node, error = %e, "UPGRADE_REQ not queued");
        }
    }

    fn on_minion_event(&mut self, engine: &mut Engine, router: &Router, ev: RouterEvent) {
        match ev {
            RouterEvent::Frame(inc) => self.on_minion_frame(engine, router, inc),
            RouterEvent::Undeliverable(u) => self.on_undeliverable(u),
        }
    }

    /// The node's connection went away between its report and this send (it is rebooting or
    /// reconnecting), or it does not read: an UPGRADE_REQ is delivered on its next report instead
    /// of waiting for the batch timeout; anything else is dropped (acks are per report).
    fn on_undeliverable(&mut self, u: Undeliverable) {
        let Undeliverable { identity, envelope, reason } = u;
        let peer = String::from_utf8_lossy(&identity).into_owned();
        if let Message::UpgradeReq(req) = envelope.body {
            let mac = self.routes.iter().find(|(_, r)| r.identity == identity).map(|(m, _)| m.clone());
            self.pending_acks.remove(&envelope.request_id);
            if let Some(mac) = mac {
                tracing::warn!(%peer, reason, req = %req.upgrade_req_id, "UPGRADE_REQ not delivered; kept for the node's next report");
                self.undelivered.insert(mac, req);
            }
        } else {
            tracing::debug!(%peer, reason, kind = envelope.body.kind(), "message not delivered");
        }
    }

    fn count_refused(&self, socket: &str, reason: &str) {
        if let Ok(m) = self.metrics.lock() {
            m.frames_refused.with_label_values(&[socket, reason]).inc();
        }
    }

    /// The envelope of a frame, or `None` after refusing it: counted, answered with a refusal (the
    /// transport has already logged it with the peer's identity).
    fn accept_frame(&self, socket: &str, router: &Router, inc: &mut Incoming) -> Option<Envelope> {
        let frame = std::mem::replace(&mut inc.frame, Err(DecodeError::TooShort { len: 0 }));
        match frame {
            Ok(env) => Some(env),
            Err(e) => {
                let label = if matches!(e, DecodeError::OverLimit(_)) { "over_limit" } else { "malformed" };
                self.count_refused(socket, label);
                let reply = Envelope::new(0, Message::Ack(Ack::refused(format!("refused frame: {e}"))));
                let _ = router.send(&inc.identity, b"ctrl", reply);
                None
            }
        }
    }

    fn on_minion_frame(&mut self, engine: &mut Engine, router: &Router, mut inc: Incoming) {
        let peer = inc.identity_str();
        let Some(env) = self.accept_frame("minion", router, &mut inc) else { return };
        match env.body {
            Message::StatusReport(report) => {
                self.on_status_report(engine, router, &inc, env.request_id, report)
            }
            Message::Ack(ack) => {
                let Some((node, _)) = self.pending_acks.get(&env.request_id) else {
                    tracing::debug!(%peer, "ack for no pending order (late or duplicate)");
                    return;
                };
                // Only the node the order went to may answer it (and a forged answer must not
                // consume the pending entry the real one will need).
                if inc.user_id.as_deref().is_some_and(|u| u != node) {
                    tracing::warn!(%peer, user = ?inc.user_id, %node, "ack from another node's key refused");
                    self.count_refused("minion", "wrong_node");
                    return;
                }
                let Some((node, req_id)) = self.pending_acks.remove(&env.request_id) else { return };
                if ack.success {
                    tracing::debug!(%node, req = %req_id, "order accepted: {}", ack.message);
                } else if engine.handle_node_refusal(&node, &req_id, &ack.message, now_ms()) {
                    tracing::warn!(%node, req = %req_id, reason = %ack.message, "node refused its order");
                    if let Ok(m) = self.metrics.lock() {
                        m.orders_refused.inc();
                    }
                } else {
                    tracing::info!(%node, req = %req_id, reason = %ack.message, "stale refusal ignored");
                }
            }
            other => {
                tracing::warn!(%peer, kind = other.kind(), "unexpected message on the minion socket");
                self.count_refused("minion", "unexpected");
                let reply = Envelope::new(
                    env.request_id,
                    Message::Ack(Ack::refused(format!("{} not accepted on the minion socket", other.kind()))),
                );
                let _ = router.send(&inc.identity, b"ctrl", reply);
            }
        }
    }

    fn on_status_report(
        &mut self,
        engine: &mut Engine,
        router: &Router,
        inc: &Incoming,
        request_id: u64,
        report: Box<StatusReport>,
    ) {
        let peer = inc.identity_str();
        let mac = normalize(&report.mac);
        let seq = report.seq;
        let refuse = |why: String| {
            let ack = StatusReportAck { seq, request_full_status_report: false, refused: Some(why) };
            let _ = router.send(
                &inc.identity,
                b"ctrl-status",
                Envelope::new(request_id, Message::StatusReportAck(ack)),
            );
        };
        let node = engine.topology().node_by_mac(&mac).map(|n| n.name.clone());
        // A key speaks only for its own node: a report naming another node's MAC is refused and
        // never moves a route or a verdict.
        if let (Some(user), Some(node)) = (inc.user_id.as_deref(), node.as_deref()) {
            if user != node {
                tracing::warn!(%peer, key_of = user, claims = node, "status report for another node refused");
                self.count_refused("minion", "wrong_node");
                refuse(format!("this key is enrolled for {user}, not for {node}"));
                return;
            }
        }
        // Download figures are recorded as they arrive: a prepare can finish between two ticks,
        // and seed 003's per-node `upgrade.bt.*` figures must not be lost.
        if let (Some(n), Ok(mut m)) = (node.as_deref(), self.metrics.lock()) {
            m.observe_download(n, report.upgrade_status.progress.as_ref());
        }
        let boot_id = report.boot_id.clone();
        let _span = tracing::debug_span!("status", %peer, %mac).entered();
        match engine.handle_status_report(*report, now_ms()) {
            Ok(()) => {
                let newer = self
                    .routes
                    .get(&mac)
                    .map(|r| r.identity != inc.identity || r.boot_id != boot_id)
                    .unwrap_or(true);
                if newer {
                    tracing::info!(%mac, %peer, boot = %boot_id, "node connected (new route)");
                }
                self.routes.insert(mac.clone(), Route { identity: inc.identity.clone(), boot_id });
                // A kept PREPARE or COMMIT goes out only while the node is still waited for in
                // that request's batch; a RESET_STATUS is never stale.
                if let Some(req) = self.undelivered.remove(&mac) {
                    let wanted = req.ur_type == UpgradeReqType::ResetStatus
                        || node.as_deref().is_some_and(|n| engine.awaits(n, &req.upgrade_req_id));
                    if wanted {
                        tracing::info!(%mac, req = %req.upgrade_req_id, "UPGRADE_REQ delivered on the node's new connection");
                        let n = node.clone().unwrap_or_default();
                        self.send_order(router, &n, &inc.identity, req);
                    }
                }
                let ack = StatusReportAck { seq, request_full_status_report: false, refused: None };
                let _ = router.send(
                    &inc.identity,
                    b"ctrl-status",
                    Envelope::new(request_id, Message::StatusReportAck(ack)),
                );
            }
            Err(e) => {
                tracing::warn!(%peer, %mac, error = %e, "status report refused");
                self.count_refused("minion", "unknown_node");
                refuse(e.to_string());
            }
        }
    }

    fn on_app_event(
        &mut self,
        engine: &mut Engine,
        images: &ImageStore,
        router: &Router,
        done: &mpsc::Sender<Done>,
        ev: RouterEvent,
    ) {
        match ev {
            RouterEvent::Frame(inc) => self.on_app_frame(engine, images, router, done, inc),
            // Debug only: a client that stops reading would otherwise fill the log, one line per reply.
            RouterEvent::Undeliverable(u) => {
                tracing::debug!(peer = %String::from_utf8_lossy(&u.identity), reason = u.reason, "reply to an operator not delivered")
            }
        }
    }

    fn on_app_frame(
        &mut self,
        engine: &mut Engine,
        images: &ImageStore,
        router: &Router,
        done: &mpsc::Sender<Done>,
        mut inc: Incoming,
    ) {
        let peer = inc.identity_str();
        let Some(mut env) = self.accept_frame("app", router, &mut inc) else { return };
        let rid = env.request_id;
        let _span = tracing::info_span!("app", %peer, user = ?inc.user_id, kind = env.body.kind()).entered();
        let reply_to = inc.identity.clone();
        let reply = |m: Message| {
            if let Err(e) = router.send(&reply_to, b"ctrl", Envelope::new(rid, m)) {
                tracing::warn!(error = %e, "reply not queued");
            }
        };
        // Who is asking: the operator the ZAP handler named (CURVE), with that operator's role.
        if let (Some(keyring), user) = (&self.keyring, inc.user_id.as_deref()) {
            let who = user.unwrap_or("unauthenticated").to_string();
            let role = keyring.role_of(&who);
            let (need, what) = auth::required_role(&env.body, self.limit_cap);
            if role.is_none_or(|r| r < need) {
                let has = role.map_or("none", Role::as_str);
                let why = format!("refused: {what} needs role {}; {who} has role {has}", need.as_str());
                tracing::warn!(%who, "{why}");
                self.count_refused("app", "forbidden");
                let op = Operator { who: who.clone(), reason: Some(why.clone()) };
                engine.journal_command(&op, format!("refused {}: {why}", env.body.kind()), now_ms());
                return reply(Message::Ack(Ack::refused(why)));
            }
            if let Some(op) = env.body.operator_mut() {
                op.who = who;
            }
        }
        let is_read = matches!(
            env.body,
            Message::UpgradeStateReq(_)
                | Message::UpgradeCommitPlanReq(_)
                | Message::UpgradeListImagesReq(_)
                | Message::NodeStatusReq(_)
                | Message::NodeKeysReq(_)
                | Message::GoldenShowReq(_)
                | Message::VersionsReq(_)
                | Message::ImageRecordsReq(_)
                | Message::SnapshotShowReq(_)
        );
        if !is_read {
            self.reads.clear();
            if let Some(why) = self.refuse_if_degraded() {
                self.count_refused("app", "degraded");
                return reply(Message::Ack(Ack::refused(why)));
            }
        }
        let mut answer = match env.body {
            Message::UpgradeAddImageReq(req) => {
                if let Err(e) = crate::catalog::retag("", &Default::default(), &req.tags, &[]) {
                    return reply(Message::Ack(Ack::refused(e.to_string())));
                }
                let images = images.clone();
                let url = req.image_url;
                spawn_image_op(
                    done,
                    ImageOp::Added,
                    reply_to.clone(),
                    rid,
                    req.operator,
                    req.tags,
                    async move { images.add(&url).await.map_err(|e| e.to_string()) },
                );
                return;
            }
            Message::UpgradeDelImageReq(req) => {
                // The engine refuses while a request still needs the image; only then is the file removed.
                if let Err(e) = engine.remove_image(&req.name, req.operator.clone(), now_ms()) {
                    if images.get(&req.name).is_none()
                        || !matches!(e, crate::engine::EngineError::UnknownImage(_))
                    {
                        return reply(Message::Ack(Ack::refused(e.to_string())));
                    }
                }
                let images = images.clone();
                let name = req.name;
                spawn_image_op(
                    done,
                    ImageOp::Deleted,
                    reply_to.clone(),
                    rid,
                    req.operator,
                    Vec::new(),
                    async move { images.del(&name).await.map_err(|e| e.to_string()) },
                );
                return;
            }
            Message::UpgradeListImagesReq(_) => {
                Message::UpgradeListImagesResp(UpgradeListImagesResp { images: images.list() })
            }
            Message::NodeEnrollReq(req) => Message::Ack(self.enroll(engine, req)),
            Message::GoldenReq(req) => {
                Message::Ack(crate::golden::drive::command(engine, &mut self.golden, req, now_ms()))
            }
            Message::GoldenShowReq(_) => {
                Message::GoldenShow(crate::golden::drive::show(engine, &self.golden, now_ms()))
            }
            Message::SnapshotReq(req) => crate::snapshot::command(engine, &mut self.golden, req, now_ms()),
            Message::SnapshotShowReq(req) => crate::snapshot::show(engine, &self.golden, req.name.as_deref()),
            Message::NodeKeysReq(_) => match &self.keyring {
                Some(k) => {
                    let (enrolled, missing) = k.node_keys();
                    Message::NodeKeysResp(NodeKeysResp { enrolled, missing })
                }
                None => Message::Ack(Ack::refused(
                    "the controller runs with security.insecure = true: no node keys",
                )),
            },
            Message::UpgradeStateReq(_) => self.reads.state(engine),
            Message::UpgradeCommitPlanReq(req) => self.reads.plan(engine, req),
            other => engine.handle_operator(other, now_ms()),
        };
        if !is_read {
            self.note_if_held(engine, &mut answer);
        }
        reply(answer);
    }

    fn enroll(&mut self, engine: &mut Engine, req: NodeEnrollReq) -> Ack {
        let Some(keyring) = &self.keyring else {
            return Ack::refused("the controller runs with security.insecure = true: nothing to enroll");
        };
        let key = match CurvePublicKey::from_z85(&req.public_key) {
            Ok(k) => k,
            Err(e) => return Ack::refused(e.to_string()),
        };
        match keyring.enroll(&req.node, key) {
            Ok(old) => {
                let what = match old {
                    Some(old) if old == key => format!("node key of {} re-enrolled ({key})", req.node),
                    Some(old) => format!("node key of {} replaced: {old} → {key}", req.node),
                    None => format!("node key of {} enrolled: {key}", req.node),
                };
                engine.journal_command(&req.operator, what.clone(), now_ms());
                Ack::ok(what)
            }
            Err(e) => Ack::refused(e.to_string()),
        }
    }

    fn journal_refusal(&mut self, engine: &mut Engine, r: AuthRefusal) {
        self.count_refused(r.socket, "unknown_key");
        let now = now_ms();
        if self.refusals_journaled.get(&r.address).is_some_and(|at| now.saturating_sub(*at) < 60_000) {
            return;
        }
        if self.refusals_journaled.len() >= 4096 {
            self.refusals_journaled.retain(|_, at| now.saturating_sub(*at) < 60_000);
        }
        self.refusals_journaled.insert(r.address.clone(), now);
        tracing::warn!(socket = r.socket, address = %r.address, reason = %r.reason, "connection refused");
        let op = Operator { who: format!("unauthenticated {}", r.address), reason: Some(r.reason.clone()) };
        engine.journal_command(&op, format!("refused a {} connection: {}", r.socket, r.reason), now);
    }
}

fn on_done(sh: &mut Shell, engine: &mut Engine, router: &Router, done: Done) {
    let Done { op, identity, request_id, result, operator, tags } = done;
    let ack = match (op, result) {
        (ImageOp::Found, Ok(img)) => {
            if !engine.images().any(|i| i.name == img.name) {
                engine.add_image(img, operator, now_ms());
            }
            return;
        }
        (ImageOp::Found, Err(_)) => return,
        (ImageOp::Added, Ok(img)) => {
            let mut msg = format!("Added and seeding image {} ({})", img.name, img.sha256.short());
            let name = img.name.clone();
            engine.add_image(img, operator.clone(), now_ms());
            if !tags.is_empty() {
                let req = ImageTagReq { name, add: tags, remove: Vec::new(), operator };
                let ack = engine.tag_image(req, now_ms());
                msg = format!("{msg}; {}", ack.message);
            }
            Ack::ok(msg)
        }
        (ImageOp::Deleted, Ok(img)) => {
            tracing::info!(who = %operator.who, image = %img.name, "image deleted");
            Ack::ok(format!("Deleted image {}", img.name))
        }
        (ImageOp::Added, Err(e)) => {
            tracing::warn!(who = %operator.who, reason = %e, "image add refused");
            Ack::refused(e)
        }
        (ImageOp::Deleted, Err(e)) => Ack::refused(e),
    };
    let mut answer = Message::Ack(ack);
    sh.note_if_held(engine, &mut answer);
    let _ = router.send(&identity, b"ctrl", Envelope::new(request_id, answer));
}

/// What the per-node gauges were last set to: a tick touches only the series that changed, so a
/// 10 000-node controller does not spend its loop relabelling gauges while operators wait.
#[derive(Default)]
struct MetricShadow {
    /// By position in the topology's `nodes`.
    nodes: Vec<NodeShadow>,
    retried: std::collections::BTreeSet<String>,
    /// The request whose retries `meshlift_node_retries_total` follows.
    request: Option<String>,
}

#[derive(Default, PartialEq)]
struct NodeShadow {
    online: Option<bool>,
    state: Option<UpgradeStatusType>,
    seen_s: u64,
}

fn update_metrics(
    m: &mut Metrics,
    shadow: &mut MetricShadow,
    engine: &Engine,
    images: &ImageStore,
    now: u64,
) {
    let nodes = &engine.topology().nodes;
    shadow.nodes.resize_with(nodes.len(), NodeShadow::default);
    let mut went_offline = Vec::new();
    for (node, sh) in nodes.iter().zip(&mut shadow.nodes) {
        let n = node.name.as_str();
        let online = engine.node_online(n, now);
        if sh.online == Some(true) && !online {
            went_offline.push(n);
        }
        if sh.online != Some(online) {
            m.node_online.with_label_values(&[n]).set(online as i64);
            sh.online = Some(online);
        }
        if let Some(seen) = engine.node_last_seen(n) {
            let seen_s = seen / 1000;
            if seen_s != sh.seen_s {
                m.node_last_seen.with_label_values(&[n]).set(seen as f64 / 1000.0);
                sh.seen_s = seen_s;
            }
        }
        let state = engine.node_upgrade_status(n);
        if state != sh.state {
            if let Some(old) = sh.state {
                // Exactly one state series per node is present, with value 1.
                let _ = m.node_state.remove_label_values(&[n, old.as_str()]);
            }
            if let Some(new) = state {
                m.node_state.with_label_values(&[n, new.as_str()]).set(1);
            }
            sh.state = state;
        }
    }
    m.observe_seeder(&images.seeder_stats());
    m.images.set(images.list().len() as i64);
    m.request_in_flight.set(engine.current_request_id().is_some() as i64);
    m.requests_queued.set(engine.queue_len() as i64);
    m.batch_index.set(engine.current_batch_index() as i64);
    m.batch_size.set(engine.in_flight_count() as i64);
    let retries = engine.retries();
    for gone in shadow.retried.iter().filter(|n| !retries.contains_key(*n)) {
        let _ = m.node_retries.remove_label_values(&[gone.as_str()]);
    }
    if engine.current_request_id() != shadow.request.as_deref() {
        // A new request counts its retries from zero.
        m.node_retries_total.restart_all();
        shadow.request = engine.current_request_id().map(str::to_string);
    }
    for (n, r) in &retries {
        m.node_retries.with_label_values(&[n.as_str()]).set(*r as i64);
        m.node_retries_total.observe(n, u64::from(*r));
    }
    shadow.retried = retries.into_keys().collect();
    let counts = engine.outcome_counts();
    for kind in crate::metrics::OUTCOME_KINDS {
        m.outcomes.observe(kind, counts.get(&kind).copied().unwrap_or(0));
    }
    m.set_nodes(crate::metrics::census::count_nodes(engine));
    if !went_offline.is_empty() {
        let rebooting = engine.in_flight_nodes();
        let collateral =
            crate::metrics::census::collateral(&went_offline, engine.current_stage(), &rebooting);
        m.collateral_offline.inc_by(collateral as u64);
    }
}
