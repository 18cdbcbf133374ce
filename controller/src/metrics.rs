//! Prometheus metrics of the controller (`/metrics`).
//!
//! Names follow seed 003's `upgrade.bt.*` figures as `meshlift_bt_*`, per node (from the minions'
//! status reports) and for the controller's own seeder (`node="controller"`). Gauges are set from
//! the engine's state at every refresh (`tick_interval_ms`), so a scrape never races the engine.

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// All controller metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub node_online: IntGaugeVec,
    pub node_state: IntGaugeVec,
    pub node_retries: IntGaugeVec,
    pub node_last_seen: GaugeVec,
    pub bt_progress_ppm: IntGaugeVec,
    pub bt_downloaded_bytes: IntGaugeVec,
    pub bt_uploaded_bytes: IntGaugeVec,
    pub http_downloaded_bytes: IntGaugeVec,
    pub bt_peers: IntGaugeVec,
    pub outcomes: IntGaugeVec,
    pub requests_queued: IntGauge,
    pub request_in_flight: IntGauge,
    pub batch_index: IntGauge,
    pub batch_size: IntGauge,
    pub frames_refused: IntCounterVec,
    pub images: IntGauge,
    /// 1 while a state-database write is failing and the controller holds its actions
    /// (`crate::outbox`, `crate::health`).
    pub degraded: IntGauge,
    /// Golden-image loop (see `crate::golden`).
    pub golden: GoldenMetrics,
}

/// The golden-image loop's gauges: is it converging, where, and has it stopped on a bad image.
pub struct GoldenMetrics {
    pub enabled: IntGauge,
    pub paused: IntGauge,
    pub nodes_behind: IntGaugeVec,
    /// 1 for the board's current state label (`canary`, `baking`, `widening`, `converged`,
    /// `quarantined`, …).
    pub state: IntGaugeVec,
    /// Waves started so far in the board's rollout of its target (1 = the canary).
    pub current_wave: IntGaugeVec,
    pub quarantined: IntGaugeVec,
    pub last_run: prometheus::Gauge,
}

fn gauge_vec(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
    reg.register(Box::new(g.clone())).expect("each metric name is registered once");
    g
}

fn gauge(reg: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition is valid");
    reg.register(Box::new(g.clone())).expect("each metric name is registered once");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let frames_refused = IntCounterVec::new(
            Opts::new(
                "meshlift_frames_refused_total",
                "Frames refused (malformed, oversized, unknown version, unknown node).",
            ),
            &["socket", "reason"],
        )
        .expect("static metric definition is valid");
        r.register(Box::new(frames_refused.clone())).expect("registered once");

        Metrics {
            node_online: gauge_vec(
                &r,
                "meshlift_node_online",
                "1 if the node reported within node_alive_timeout.",
                &["node"],
            ),
            node_state: gauge_vec(
                &r,
                "meshlift_node_upgrade_state",
                "Node upgrade state (1 for the current state label).",
                &["node", "state"],
            ),
            node_retries: gauge_vec(
                &r,
                "meshlift_node_retries",
                "Retries used by the node in the current request.",
                &["node"],
            ),
            node_last_seen: {
                let g = GaugeVec::new(
                    Opts::new(
                        "meshlift_node_last_seen_timestamp_seconds",
                        "UNIX time of the node's last status report.",
                    ),
                    &["node"],
                )
                .expect("static metric definition is valid");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            bt_progress_ppm: gauge_vec(
                &r,
                "meshlift_bt_progress_ppm",
                "Download progress in parts per million.",
                &["node"],
            ),
            bt_downloaded_bytes: gauge_vec(
                &r,
                "meshlift_bt_downloaded_bytes",
                "Bytes received from the swarm.",
                &["node"],
            ),
            bt_uploaded_bytes: gauge_vec(&r, "meshlift_bt_uploaded_bytes", "Bytes sent to peers.", &["node"]),
            http_downloaded_bytes: gauge_vec(
                &r,
                "meshlift_http_downloaded_bytes",
                "Bytes received over HTTP.",
                &["node"],
            ),
            bt_peers: gauge_vec(&r, "meshlift_bt_peers", "Connected swarm peers.", &["node"]),
            outcomes: gauge_vec(
                &r,
                "meshlift_node_outcomes",
                "Node outcomes recorded by this controller process, by kind.",
                &["outcome"],
            ),
            requests_queued: gauge(
                &r,
                "meshlift_requests_queued",
                "Requests waiting behind the current one.",
            ),
            request_in_flight: gauge(&r, "meshlift_request_in_flight", "1 while a request is running."),
            batch_index: gauge(
                &r,
                "meshlift_batch_index",
                "Index of the in-flight batch in the current stage.",
            ),
            batch_size: gauge(&r, "meshlift_batch_nodes", "Nodes still pending in the in-flight batch."),
            frames_refused,
            images: gauge(&r, "meshlift_images", "Images in the store."),
            degraded: gauge(
                &r,
                "meshlift_controller_degraded",
                "1 while a state-database write is failing: actions held, state-changing requests refused.",
            ),
            golden: GoldenMetrics {
                enabled: gauge(&r, "meshlift_golden_enabled", "1 if the golden-image loop is enabled."),
                paused: gauge(&r, "meshlift_golden_paused", "1 if the golden-image loop is paused."),
                nodes_behind: gauge_vec(
                    &r,
                    "meshlift_golden_nodes_behind",
                    "Nodes of the board running an older version than its golden target.",
                    &["board"],
                ),
                state: gauge_vec(
                    &r,
                    "meshlift_golden_state",
                    "Golden-image loop state of the board (1 for the current state label).",
                    &["board", "state"],
                ),
                current_wave: gauge_vec(
                    &r,
                    "meshlift_golden_wave",
                    "Waves started in the board's rollout of its target (1 = the canary).",
                    &["board"],
                ),
                quarantined: gauge_vec(
                    &r,
                    "meshlift_golden_quarantined",
                    "1 for each image version quarantined fleet-wide by the golden-image loop.",
                    &["version"],
                ),
                last_run: {
                    let g = prometheus::Gauge::new(
                        "meshlift_golden_last_run_timestamp_seconds",
                        "UNIX time the golden-image loop last started a wave (0: never).",
                    )
                    .expect("static metric definition is valid");
                    r.register(Box::new(g.clone())).expect("registered once");
                    g
                },
            },
            registry: r,
        }
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
