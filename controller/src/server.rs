//! The controller's shell: binds the two ROUTER sockets and the HTTP server, feeds the engine
//! with status reports, operator requests and ticks, and carries out what the engine asks.
//!
//! Everything that decides lives in [`crate::engine`]; this file only moves bytes and time. One
//! task owns the engine (no locks around decisions); slow work (adding an image: download,
//! verification, hashing, torrent creation) runs in its own task and comes back as a message.

use crate::config::ControllerConfig;
use crate::dist::{self, DistConfig, ImageStore};
use crate::engine::{Action, Engine, EngineConfig, EventLevel};
use crate::metrics::Metrics;
use crate::store::Store;
use anyhow::Context;
use bytes::Bytes;
use meshlift_protocol::transport::{Incoming, Router};
use meshlift_protocol::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

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
}

#[derive(Clone, Copy)]
enum ImageOp {
    Added,
    Deleted,
}

/// Run an image-store operation in its own task (a download or hashing must not stall status
/// handling) and send its result back to the engine task.
fn spawn_image_op<F>(
    done: &mpsc::Sender<Done>,
    op: ImageOp,
    identity: Bytes,
    request_id: u64,
    operator: Operator,
    work: F,
) where
    F: std::future::Future<Output = Result<UpgradeImage, String>> + Send + 'static,
{
    let done = done.clone();
    tokio::spawn(async move {
        let result = work.await;
        let _ = done.send(Done { op, identity, request_id, result, operator }).await;
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

    let http_addr: SocketAddr =
        cfg.http_listen.parse().with_context(|| format!("invalid http_listen {:?}", cfg.http_listen))?;
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot bind HTTP server on {http_addr}"))?;
    let http_port = http_listener.local_addr()?.port();
    let http_base = format!("http://{}", host_port(&cfg.public_host, http_port));

    let bt_listen: SocketAddr =
        SocketAddr::new("0.0.0.0".parse().expect("literal address"), cfg.bittorrent.listen_port);
    let mut dist_cfg = DistConfig::new(bt_listen, http_base.clone(), Arc::new(TrustedKeysVerifier { keys }));
    dist_cfg.bt_public_addr = format!("{}:{}", cfg.public_host, cfg.bittorrent.listen_port).parse().ok();
    if !cfg.bittorrent.tracker_url.is_empty() {
        dist_cfg.tracker_url = Some(cfg.bittorrent.tracker_url.clone());
    }
    dist_cfg.seed_upload_limit =
        cfg.bittorrent.upload_limit.and_then(|l| std::num::NonZeroU32::new(l.min(u32::MAX as u64) as u32));
    dist_cfg.min_free_bytes = cfg.image_min_free_bytes;
    let images =
        ImageStore::open(cfg.data_dir.join("images"), dist_cfg).await.context("cannot open image store")?;

    let store = Store::open(&cfg.data_dir.join("state.db")).context("cannot open state database")?;
    let ecfg = EngineConfig {
        node_alive_timeout_ms: cfg.node_alive_timeout_s * 1000,
        confirm_timeout_s: cfg.confirm_timeout_s,
        ..EngineConfig::default()
    };
    let mut engine =
        Engine::open(store, topology.clone(), ecfg, now_ms()).context("cannot load upgrade state")?;
    // Images on disk are the truth for what can be served; tell the engine about any it lacks.
    let known: std::collections::HashSet<String> = engine.images().map(|i| i.name.clone()).collect();
    for img in images.list() {
        if !known.contains(&img.name) {
            let op = Operator {
                who: "controller".into(),
                reason: Some("found in the image store at start-up".into()),
            };
            engine.add_image(img, op, now_ms());
        }
    }

    let metrics = Arc::new(std::sync::Mutex::new(Metrics::new()));
    let send_timeout = Duration::from_secs(2);
    let (minion_router, mut minion_rx) =
        Router::bind(&cfg.minion_endpoint, cfg.max_frame_bytes, send_timeout)
            .await
            .with_context(|| format!("cannot bind minion socket {}", cfg.minion_endpoint))?;
    let (app_router, mut app_rx) = Router::bind(&cfg.app_endpoint, cfg.max_frame_bytes, send_timeout)
        .await
        .with_context(|| format!("cannot bind app socket {}", cfg.app_endpoint))?;
    let minion_router = Arc::new(minion_router);
    let app_router = Arc::new(app_router);
    tracing::info!(minion = %minion_router.endpoint(), app = %app_router.endpoint(), http = %http_addr, "controller listening");

    // HTTP: /metrics, /healthz, tracker and images.
    let m2 = metrics.clone();
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
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .merge(dist::router(images.clone()));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        let svc = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(http_listener, svc)
            .with_graceful_shutdown(async {
                let _ = http_stop_rx.await;
            })
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
    let mut routes: HashMap<String, Route> = HashMap::new();
    let mut shadow = MetricShadow::default();
    let mut undelivered: HashMap<String, UpgradeReq> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.tick_interval_ms.max(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    loop {
        // Biased, in this order: signals, operators, finished slow work, the tick, then minion
        // reports. Ten thousand minions reporting every second must not make an operator wait
        // behind their queue, nor starve the tick.
        tokio::select! {
            biased;
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); break; }
            Some(inc) = app_rx.recv() => {
                on_app_frame(&mut engine, &images, &app_router, &metrics, &done_tx, inc).await;
            }
            Some(done) = done_rx.recv() => {
                on_done(&mut engine, &app_router, done).await;
            }
            _ = tick.tick() => {
                engine.tick(now_ms());
                if let Ok(mut m) = metrics.lock() {
                    update_metrics(&mut m, &mut shadow, &engine, &images, now_ms());
                }
            }
            Some(inc) = minion_rx.recv() => {
                on_minion_frame(&mut engine, &mut routes, &mut undelivered, &minion_router, &metrics, inc).await;
            }
        }
        drain_actions(&mut engine, &routes, &mut undelivered, &minion_router, &images).await;
    }

    if let Some(e) = engine.store_error() {
        tracing::error!(error = %e, "the state database reported an error during this run");
    }
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(3), http_task).await;
    images.shutdown().await;
    tracing::info!("controller stopped; state flushed");
    Ok(())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn drain_actions(
    engine: &mut Engine,
    routes: &HashMap<String, Route>,
    undelivered: &mut HashMap<String, UpgradeReq>,
    router: &Router,
    images: &ImageStore,
) {
    while let Some(action) = engine.poll_action() {
        match action {
            Action::SendToNode { node, mac, mut req } => {
                // The newest order to a node replaces one kept from a failed send.
                undelivered.remove(&normalize(&mac));
                // The seeder is every node's first peer: leechers meet each other through the
                // tracker, but the controller must be reachable even when the tracker is not.
                if req.ur_type == UpgradeReqType::PrepareUpgrade && req.initial_peers.is_empty() {
                    req.initial_peers = images.initial_peers();
                }
                let Some(route) = routes.get(&normalize(&mac)) else {
                    tracing::warn!(%node, %mac, req = %req.upgrade_req_id, "no connection to node; UPGRADE_REQ not sent");
                    continue;
                };
                let env = Envelope::new(0, Message::UpgradeReq(*req));
                if let Err(e) = router.send(&route.identity, b"ctrl-upgrade", &env).await {
                    // The node's connection went away between its report and this send (it is
                    // reconnecting): deliver on its next report instead of waiting for the batch
                    // timeout. The request is taken back out of the envelope, so a send that
                    // succeeds (the usual case) copies nothing.
                    tracing::warn!(%node, boot = %route.boot_id, error = %e, "UPGRADE_REQ send failed; kept for the node's next report");
                    if let Message::UpgradeReq(req) = env.body {
                        undelivered.insert(normalize(&mac), req);
                    }
                }
            }
            Action::Event(ev) => {
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
}

fn normalize(mac: &str) -> String {
    meshlift_protocol::topology::normalize_mac(mac)
}

async fn on_minion_frame(
    engine: &mut Engine,
    routes: &mut HashMap<String, Route>,
    undelivered: &mut HashMap<String, UpgradeReq>,
    router: &Router,
    metrics: &std::sync::Mutex<Metrics>,
    inc: Incoming,
) {
    let peer = inc.identity_str();
    let Some(env) = accept_frame("minion", router, metrics, &inc.identity, inc.frame).await else { return };
    match env.body {
        Message::StatusReport(report) => {
            let mac = normalize(&report.mac);
            // Download figures are recorded as they arrive: a prepare can finish between two
            // ticks, and seed 003's per-node `upgrade.bt.*` figures must not be lost.
            if let (Some(p), Some(node)) =
                (&report.upgrade_status.progress, engine.topology().node_by_mac(&mac))
            {
                if let Ok(m) = metrics.lock() {
                    let n = node.name.as_str();
                    m.bt_progress_ppm.with_label_values(&[n]).set(p.ppm() as i64);
                    m.bt_downloaded_bytes.with_label_values(&[n]).set(p.bt_downloaded_bytes as i64);
                    m.bt_uploaded_bytes.with_label_values(&[n]).set(p.bt_uploaded_bytes as i64);
                    m.http_downloaded_bytes.with_label_values(&[n]).set(p.http_downloaded_bytes as i64);
                    m.bt_peers.with_label_values(&[n]).set(p.peers as i64);
                }
            }
            let seq = report.seq;
            let boot_id = report.boot_id.clone();
            let _span = tracing::debug_span!("status", %peer, %mac).entered();
            match engine.handle_status_report(*report, now_ms()) {
                Ok(()) => {
                    let newer = routes.get(&mac).map(|r| r.identity != inc.identity).unwrap_or(true);
                    if newer {
                        tracing::info!(%mac, %peer, "node connected (new route)");
                    }
                    // A kept PREPARE or COMMIT goes out only while the node is still waited for
                    // in that request's batch; a RESET_STATUS is never stale.
                    let still_wanted = |req: &UpgradeReq| {
                        req.ur_type == UpgradeReqType::ResetStatus
                            || engine
                                .topology()
                                .node_by_mac(&mac)
                                .is_some_and(|n| engine.awaits(&n.name, &req.upgrade_req_id))
                    };
                    if let Some(req) = undelivered.remove(&mac).filter(|r| still_wanted(r)) {
                        let env = Envelope::new(0, Message::UpgradeReq(req.clone()));
                        match router.send(&inc.identity, b"ctrl-upgrade", &env).await {
                            Ok(()) => {
                                tracing::info!(%mac, req = %req.upgrade_req_id, "UPGRADE_REQ delivered on the node's new connection")
                            }
                            Err(e) => {
                                tracing::warn!(%mac, error = %e, "UPGRADE_REQ send failed again");
                                undelivered.insert(mac.clone(), req);
                            }
                        }
                    }
                    routes.insert(mac, Route { identity: inc.identity.clone(), boot_id });
                    let ack = StatusReportAck { seq, request_full_status_report: false, refused: None };
                    let _ = router
                        .send(
                            &inc.identity,
                            b"ctrl-status",
                            &Envelope::new(env.request_id, Message::StatusReportAck(ack)),
                        )
                        .await;
                }
                Err(e) => {
                    tracing::warn!(%peer, %mac, error = %e, "status report refused");
                    if let Ok(m) = metrics.lock() {
                        m.frames_refused.with_label_values(&["minion", "unknown_node"]).inc();
                    }
                    let ack = StatusReportAck {
                        seq,
                        request_full_status_report: false,
                        refused: Some(e.to_string()),
                    };
                    let _ = router
                        .send(
                            &inc.identity,
                            b"ctrl-status",
                            &Envelope::new(env.request_id, Message::StatusReportAck(ack)),
                        )
                        .await;
                }
            }
        }
        other => {
            tracing::warn!(%peer, kind = other.kind(), "unexpected message on the minion socket");
            let reply = Envelope::new(
                env.request_id,
                Message::Ack(Ack::refused(format!("{} not accepted on the minion socket", other.kind()))),
            );
            let _ = router.send(&inc.identity, b"ctrl", &reply).await;
        }
    }
}

/// The envelope of a frame, or `None` after refusing it: counted, answered with a refusal (the
/// transport has already logged it with the peer's identity).
async fn accept_frame(
    socket: &str,
    router: &Router,
    metrics: &std::sync::Mutex<Metrics>,
    identity: &Bytes,
    frame: Result<Envelope, DecodeError>,
) -> Option<Envelope> {
    match frame {
        Ok(env) => Some(env),
        Err(e) => {
            if let Ok(m) = metrics.lock() {
                m.frames_refused.with_label_values(&[socket, "malformed"]).inc();
            }
            let reply = Envelope::new(0, Message::Ack(Ack::refused(format!("refused frame: {e}"))));
            let _ = router.send(identity, b"ctrl", &reply).await;
            None
        }
    }
}

async fn on_app_frame(
    engine: &mut Engine,
    images: &ImageStore,
    router: &Arc<Router>,
    metrics: &std::sync::Mutex<Metrics>,
    done: &mpsc::Sender<Done>,
    inc: Incoming,
) {
    let peer = inc.identity_str();
    let Some(env) = accept_frame("app", router, metrics, &inc.identity, inc.frame).await else { return };
    let rid = env.request_id;
    let _span = tracing::info_span!("app", %peer, kind = env.body.kind()).entered();
    let reply = match env.body {
        Message::UpgradeAddImageReq(req) => {
            let images = images.clone();
            let url = req.image_url;
            spawn_image_op(done, ImageOp::Added, inc.identity.clone(), rid, req.operator, async move {
                images.add(&url).await.map_err(|e| e.to_string())
            });
            return;
        }
        Message::UpgradeDelImageReq(req) => {
            // The engine refuses while a request still needs the image; only then is the file removed.
            if let Err(e) = engine.remove_image(&req.name, req.operator.clone(), now_ms()) {
                if images.get(&req.name).is_none()
                    || !matches!(e, crate::engine::EngineError::UnknownImage(_))
                {
                    let _ = router
                        .send(
                            &inc.identity,
                            b"ctrl",
                            &Envelope::new(rid, Message::Ack(Ack::refused(e.to_string()))),
                        )
                        .await;
                    return;
                }
            }
            let images = images.clone();
            let name = req.name;
            spawn_image_op(done, ImageOp::Deleted, inc.identity.clone(), rid, req.operator, async move {
                images.del(&name).await.map_err(|e| e.to_string())
            });
            return;
        }
        Message::UpgradeListImagesReq(_) => {
            Message::UpgradeListImagesResp(UpgradeListImagesResp { images: images.list() })
        }
        other => engine.handle_operator(other, now_ms()),
    };
    if let Err(e) = router.send(&inc.identity, b"ctrl", &Envelope::new(rid, reply)).await {
        tracing::warn!(%peer, error = %e, "reply not sent");
    }
}

async fn on_done(engine: &mut Engine, router: &Router, done: Done) {
    let Done { op, identity, request_id, result, operator } = done;
    let ack = match (op, result) {
        (ImageOp::Added, Ok(img)) => {
            let msg = format!("Added and seeding image {} ({})", img.name, img.sha256.short());
            engine.add_image(img, operator, now_ms());
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
    let _ = router.send(&identity, b"ctrl", &Envelope::new(request_id, Message::Ack(ack))).await;
}

/// What the per-node gauges were last set to: a tick touches only the series that changed, so a
/// 10 000-node controller does not spend its loop relabelling gauges while operators wait.
#[derive(Default)]
struct MetricShadow {
    /// By position in the topology's `nodes`.
    nodes: Vec<NodeShadow>,
    retried: std::collections::BTreeSet<String>,
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
    for (node, sh) in nodes.iter().zip(&mut shadow.nodes) {
        let n = node.name.as_str();
        let online = engine.node_online(n, now);
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
    let seed = images.seeder_stats();
    m.bt_uploaded_bytes.with_label_values(&["controller"]).set(seed.uploaded_bytes as i64);
    m.images.set(images.list().len() as i64);
    m.request_in_flight.set(engine.current_request_id().is_some() as i64);
    m.requests_queued.set(engine.queue_len() as i64);
    m.batch_index.set(engine.current_batch_index() as i64);
    m.batch_size.set(engine.in_flight_count() as i64);
    let retries = engine.retries();
    for gone in shadow.retried.iter().filter(|n| !retries.contains_key(*n)) {
        let _ = m.node_retries.remove_label_values(&[gone.as_str()]);
    }
    for (n, r) in &retries {
        m.node_retries.with_label_values(&[n.as_str()]).set(*r as i64);
    }
    shadow.retried = retries.into_keys().collect();
    let counts = engine.outcome_counts();
    for kind in [
        OutcomeKind::Succeeded,
        OutcomeKind::Failed,
        OutcomeKind::FellBack,
        OutcomeKind::SkippedNotReady,
        OutcomeKind::SkippedOffline,
        OutcomeKind::AlreadyAtVersion,
        OutcomeKind::Excluded,
        OutcomeKind::Aborted,
    ] {
        m.outcomes.with_label_values(&[kind.as_str()]).set(counts.get(&kind).copied().unwrap_or(0) as i64);
    }
}
