//! Prometheus metrics of the controller (`/metrics`).
//!
//! Names follow Prometheus' conventions: base units (bytes, seconds, ratios), `_total` on every
//! counter, `_bytes_per_second` on rates. Seed 003's eight `upgrade.bt.*` figures are per node
//! (`meshlift_bt_*{node}`, from the minions' status reports); the controller's own seeder has its
//! own series (`meshlift_seeder_*`). Cumulative figures reported by others (a minion's bytes, the
//! seeder's upload, the engine's outcome counts) are exported as counters that only move forward
//! ([`forward`]). Gauges are set from the engine's state after every tick, so a scrape never races
//! the engine; the histograms are observed by the shell from what the engine shows ([`timing`]).

pub mod census;
pub mod forward;
pub mod timing;

use forward::{ForwardCounter, ForwardCounterVec};
use meshlift_protocol::{DownloadProgress, OutcomeKind};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Batch lengths on a mesh: a small COMMIT batch confirms in a minute or two, a PREPARE of a large
/// image over slow links takes an hour or more.
const BATCH_BUCKETS: &[f64] =
    &[10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0];
/// From the COMMIT (or its scheduled reboot) to CONFIRMED: a reboot, the links re-igniting and
/// the post-boot checks; seconds on a bench, minutes on a real radio, `confirm_timeout_s` at most.
const CONFIRM_BUCKETS: &[f64] =
    &[10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0];

/// Every outcome kind, so each counter exists (at 0) from the start: `increase()` then sees the
/// first real one.
pub const OUTCOME_KINDS: [OutcomeKind; 8] = [
    OutcomeKind::Succeeded,
    OutcomeKind::Failed,
    OutcomeKind::FellBack,
    OutcomeKind::SkippedNotReady,
    OutcomeKind::SkippedOffline,
    OutcomeKind::AlreadyAtVersion,
    OutcomeKind::Excluded,
    OutcomeKind::Aborted,
];

/// All controller metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    pub node_online: IntGaugeVec,
    pub node_state: IntGaugeVec,
    /// Retries used by the node in the current request (a gauge: it starts at 0 per request).
    pub node_retries: IntGaugeVec,
    /// Every retry since this controller started, per node.
    pub node_retries_total: ForwardCounterVec,
    pub node_last_seen: GaugeVec,
    /// Seed 003's `upgrade.bt.*` figures and the HTTP fallback's, per node.
    pub bt: NodeDownloadMetrics,
    /// Node outcomes by kind, from the engine's counts.
    pub outcomes: OutcomeCounters,
    pub requests_queued: IntGauge,
    pub request_in_flight: IntGauge,
    pub request_last_progress: Gauge,
    pub batch_index: IntGauge,
    pub batch_size: IntGauge,
    pub batch_duration: HistogramVec,
    pub reboot_to_confirm: Histogram,
    /// Nodes per board, running version and upgrade state; rebuilt on every update.
    pub nodes: IntGaugeVec,
    pub collateral_offline: IntCounter,
    pub frames_refused: IntCounterVec,
    /// Orders (UPGRADE_REQ) a node refused; each is a failed attempt of that node.
    pub orders_refused: IntCounter,
    pub images: IntGauge,
    /// 1 while a state-database write is failing and the controller holds its actions
    /// (`crate::outbox`, `crate::health`).
    pub degraded: IntGauge,
    pub seeder: SeederMetrics,
    pub build_info: IntGaugeVec,
    /// Golden-image loop (see `crate::golden`).
    pub golden: GoldenMetrics,
}

/// Per node, from the `DownloadProgress` of its status reports.
pub struct NodeDownloadMetrics {
    pub progress: GaugeVec,
    pub seeds: IntGaugeVec,
    pub peers: IntGaugeVec,
    pub connections: IntGaugeVec,
    pub download_rate: IntGaugeVec,
    pub upload_rate: IntGaugeVec,
    pub http_download_rate: IntGaugeVec,
    pub downloaded: ForwardCounterVec,
    pub uploaded: ForwardCounterVec,
    pub http_downloaded: ForwardCounterVec,
}

/// The controller's own BitTorrent seeder (its librqbit session).
pub struct SeederMetrics {
    pub uploaded: ForwardCounter,
    pub upload_rate: IntGauge,
    pub peers: IntGauge,
    pub torrents: IntGauge,
}

/// `meshlift_node_outcomes_total{outcome}`, following the engine's per-kind counts.
pub struct OutcomeCounters {
    counter: IntCounterVec,
    last: [forward::Forward; 8],
}

impl OutcomeCounters {
    /// The engine's count of `kind` is now `count`.
    pub fn observe(&mut self, kind: OutcomeKind, count: u64) {
        if let Some(i) = OUTCOME_KINDS.iter().position(|k| *k == kind) {
            let delta = self.last[i].advance(count);
            self.counter.with_label_values(&[kind.as_str()]).inc_by(delta);
        }
    }
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

/// A registry that remembers the names registered in it: Prometheus' registry lists only
/// families that have series, and the dashboard and alert tests check names before any exist.
#[derive(Default)]
struct Reg {
    registry: Registry,
    names: std::cell::RefCell<Vec<String>>,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(reg: &Reg, c: C) -> C {
    reg.names.borrow_mut().extend(c.desc().iter().map(|d| d.fq_name.clone()));
    reg.registry.register(Box::new(c.clone())).expect("each metric name is registered once");
    c
}

fn gauge_vec(reg: &Reg, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(reg, IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid"))
}

fn float_gauge_vec(reg: &Reg, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(reg, GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid"))
}

fn gauge(reg: &Reg, name: &str, help: &str) -> IntGauge {
    register(reg, IntGauge::new(name, help).expect("static metric definition is valid"))
}

fn counter_vec(reg: &Reg, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        reg,
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid"),
    )
}

fn node_counter(reg: &Reg, name: &str, help: &str) -> ForwardCounterVec {
    ForwardCounterVec::new(counter_vec(reg, name, help, &["node"]))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Reg::default();
        let outcomes = counter_vec(
            &r,
            "meshlift_node_outcomes_total",
            "Node outcomes recorded by this controller process, by kind.",
            &["outcome"],
        );
        for kind in OUTCOME_KINDS {
            outcomes.with_label_values(&[kind.as_str()]);
        }
        let build_info = gauge_vec(
            &r,
            "meshlift_build_info",
            "1, labelled with the controller's version, git commit (empty when unknown) and wire protocol.",
            &["version", "git_commit", "protocol"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("MESHLIFT_GIT_COMMIT").unwrap_or(""),
                &meshlift_protocol::PROTOCOL_VERSION.to_string(),
            ])
            .set(1);

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
            node_retries_total: node_counter(
                &r,
                "meshlift_node_retries_total",
                "Retries of the node since this controller started.",
            ),
            node_last_seen: float_gauge_vec(
                &r,
                "meshlift_node_last_seen_timestamp_seconds",
                "UNIX time of the node's last status report.",
                &["node"],
            ),
            bt: NodeDownloadMetrics {
                progress: float_gauge_vec(
                    &r,
                    "meshlift_bt_progress_ratio",
                    "Download progress of the node's image, as a ratio from 0 to 1 (seed 003's progressPpm / 1e6).",
                    &["node"],
                ),
                seeds: gauge_vec(
                    &r,
                    "meshlift_bt_seeds",
                    "Connected swarm peers that hold the whole image.",
                    &["node"],
                ),
                peers: gauge_vec(&r, "meshlift_bt_peers", "Connected swarm peers.", &["node"]),
                connections: gauge_vec(
                    &r,
                    "meshlift_bt_connections",
                    "Swarm peer connections, half-open ones included.",
                    &["node"],
                ),
                download_rate: gauge_vec(
                    &r,
                    "meshlift_bt_download_bytes_per_second",
                    "Payload receive rate from the swarm.",
                    &["node"],
                ),
                upload_rate: gauge_vec(
                    &r,
                    "meshlift_bt_upload_bytes_per_second",
                    "Payload send rate to swarm peers.",
                    &["node"],
                ),
                http_download_rate: gauge_vec(
                    &r,
                    "meshlift_http_download_bytes_per_second",
                    "Receive rate of the HTTP fallback.",
                    &["node"],
                ),
                downloaded: node_counter(
                    &r,
                    "meshlift_bt_downloaded_bytes_total",
                    "Payload bytes received from the swarm.",
                ),
                uploaded: node_counter(&r, "meshlift_bt_uploaded_bytes_total", "Payload bytes sent to swarm peers."),
                http_downloaded: node_counter(
                    &r,
                    "meshlift_http_downloaded_bytes_total",
                    "Bytes received over the HTTP fallback.",
                ),
            },
            outcomes: OutcomeCounters { counter: outcomes, last: Default::default() },
            requests_queued: gauge(&r, "meshlift_requests_queued", "Requests waiting behind the current one."),
            request_in_flight: gauge(&r, "meshlift_request_in_flight", "1 while a request is running."),
            request_last_progress: register(
                &r,
                Gauge::new(
                    "meshlift_request_last_progress_timestamp_seconds",
                    "UNIX time the running request last moved: a batch formed or closed, or a node got its outcome (0: never).",
                )
                .expect("static metric definition is valid"),
            ),
            batch_index: gauge(&r, "meshlift_batch_index", "Index of the in-flight batch in the current stage."),
            batch_size: gauge(&r, "meshlift_batch_nodes", "Nodes still pending in the in-flight batch."),
            batch_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "meshlift_batch_duration_seconds",
                        "Time from a batch's start to its end, by stage.",
                    )
                    .buckets(BATCH_BUCKETS.to_vec()),
                    &["stage"],
                )
                .expect("static metric definition is valid"),
            ),
            reboot_to_confirm: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "meshlift_node_reboot_to_confirm_seconds",
                        "Time from a node's COMMIT (its scheduled reboot) to its confirmed success.",
                    )
                    .buckets(CONFIRM_BUCKETS.to_vec()),
                )
                .expect("static metric definition is valid"),
            ),
            nodes: gauge_vec(
                &r,
                "meshlift_nodes",
                "Nodes by board, running version and upgrade state (\"unknown\" until a node reports).",
                &["board", "version", "state"],
            ),
            collateral_offline: register(
                &r,
                IntCounter::new(
                    "meshlift_collateral_offline_total",
                    "Nodes that went offline during a COMMIT stage while not rebooting in its batch: what the controller can see of collateral isolation.",
                )
                .expect("static metric definition is valid"),
            ),
            frames_refused: counter_vec(
                &r,
                "meshlift_frames_refused_total",
                "Frames refused (malformed, oversized, unknown version, unknown node).",
                &["socket", "reason"],
            ),
            orders_refused: register(
                &r,
                IntCounter::new(
                    "meshlift_node_orders_refused_total",
                    "UPGRADE_REQs a node refused (busy, wrong board, no space, …); each is a failed attempt.",
                )
                .expect("static metric definition is valid"),
            ),
            images: gauge(&r, "meshlift_images", "Images in the store."),
            degraded: gauge(
                &r,
                "meshlift_controller_degraded",
                "1 while a state-database write is failing: actions held, state-changing requests refused.",
            ),
            seeder: SeederMetrics {
                uploaded: ForwardCounter::new(register(
                    &r,
                    IntCounter::new(
                        "meshlift_seeder_uploaded_bytes_total",
                        "Payload bytes the controller's BitTorrent seeder sent to nodes.",
                    )
                    .expect("static metric definition is valid"),
                )),
                upload_rate: gauge(
                    &r,
                    "meshlift_seeder_upload_bytes_per_second",
                    "Send rate of the controller's BitTorrent seeder.",
                ),
                peers: gauge(&r, "meshlift_seeder_peers", "Peers connected to the controller's seeder."),
                torrents: gauge(&r, "meshlift_seeder_torrents", "Images the controller seeds."),
            },
            build_info,
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
                last_run: register(
                    &r,
                    prometheus::Gauge::new(
                        "meshlift_golden_last_run_timestamp_seconds",
                        "UNIX time the golden-image loop last started a wave (0: never).",
                    )
                    .expect("static metric definition is valid"),
                ),
            },
            registry: r.registry,
            names: r.names.into_inner(),
        }
    }

    /// Every metric family this controller exports (series or not).
    pub fn family_names(&self) -> &[String] {
        &self.names
    }

    /// A node's status report carried `progress` (`None`: no download now). Byte figures are the
    /// minion's running totals for its download session; the rates, peers and seeds are now.
    pub fn observe_download(&mut self, node: &str, progress: Option<&DownloadProgress>) {
        let bt = &mut self.bt;
        let Some(p) = progress else {
            // Nothing arrives and no swarm is joined. Only nodes that have download series get
            // zeros: ten thousand idle nodes must not each get a row of them.
            if bt.downloaded.knows(node) {
                for g in [
                    &bt.download_rate,
                    &bt.upload_rate,
                    &bt.http_download_rate,
                    &bt.peers,
                    &bt.seeds,
                    &bt.connections,
                ] {
                    g.with_label_values(&[node]).set(0);
                }
            }
            return;
        };
        bt.progress.with_label_values(&[node]).set(f64::from(p.ppm()) / 1e6);
        bt.seeds.with_label_values(&[node]).set(i64::from(p.seeds));
        bt.peers.with_label_values(&[node]).set(i64::from(p.peers));
        bt.connections.with_label_values(&[node]).set(i64::from(p.connections));
        // The minion's download rate is from whichever source runs now.
        let (swarm, http) = if p.source == "http" {
            (0, p.download_bytes_per_second)
        } else {
            (p.download_bytes_per_second, 0)
        };
        bt.download_rate.with_label_values(&[node]).set(clamp(swarm));
        bt.http_download_rate.with_label_values(&[node]).set(clamp(http));
        bt.upload_rate.with_label_values(&[node]).set(clamp(p.upload_bytes_per_second));
        bt.downloaded.observe(node, p.bt_downloaded_bytes);
        bt.uploaded.observe(node, p.bt_uploaded_bytes);
        bt.http_downloaded.observe(node, p.http_downloaded_bytes);
    }

    /// The seeder's session figures now (its upload is a running total).
    pub fn observe_seeder(&mut self, s: &crate::dist::SeederStats) {
        self.seeder.uploaded.observe(s.uploaded_bytes);
        self.seeder.upload_rate.set(s.upload_bytes_per_s.max(0.0) as i64);
        self.seeder.peers.set(i64::from(s.peers));
        self.seeder.torrents.set(i64::from(s.torrents));
    }

    /// What [`timing::Timings`] worked out after an input: a batch that ended, reboot-to-confirm
    /// times, and when the running request last moved (UNIX ms).
    pub fn observe_timings(
        &self,
        ended: Option<timing::BatchEnded>,
        confirmed: &[f64],
        last_progress: Option<u64>,
    ) {
        if let Some(b) = ended {
            self.batch_duration.with_label_values(&[b.stage.as_str()]).observe(b.seconds);
        }
        for secs in confirmed {
            self.reboot_to_confirm.observe(*secs);
        }
        if let Some(at) = last_progress {
            self.request_last_progress.set(at as f64 / 1000.0);
        }
    }

    /// Replace `meshlift_nodes` with these counts: a combination no node has any more is gone,
    /// not left at its last value.
    pub fn set_nodes<'a>(&self, counts: impl IntoIterator<Item = ([&'a str; 3], i64)>) {
        self.nodes.reset();
        for (labels, n) in counts {
            self.nodes.with_label_values(&labels).set(n);
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

/// A minion's u64 as a gauge value (a hostile report cannot wrap it negative).
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Stage;
    use meshlift_protocol::{NodeOutcome, UpgradeReqType};

    /// The value of the one series `series` (name with labels, as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_batch_and_a_confirmed_node_land_in_their_histograms() {
        let m = Metrics::new();
        let mut t = timing::Timings::default();
        t.batch(
            Some(timing::BatchView { request_id: "r1", stage: Stage::Commit, index: 1, started_at: 0 }),
            0,
        );
        t.commit_sent("leaf1", 0, 1_000);
        let ok = NodeOutcome {
            request_id: "r1".into(),
            stage: UpgradeReqType::CommitUpgrade,
            node: "leaf1".into(),
            outcome: OutcomeKind::Succeeded,
            reason: String::new(),
            started_at: 1_000,
            finished_at: 46_000,
        };
        let confirmed = t.outcomes(&[ok], 46_000);
        let ended = t.batch(None, 50_000);
        m.observe_timings(ended, &confirmed, t.last_progress());
        let text = m.render();
        assert_eq!(
            value(&text, r#"meshlift_batch_duration_seconds_count{stage="commit"}"#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&text, r#"meshlift_batch_duration_seconds_sum{stage="commit"}"#), Some(50.0));
        assert_eq!(
            value(&text, r#"meshlift_batch_duration_seconds_bucket{stage="commit",le="30"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(&text, r#"meshlift_batch_duration_seconds_bucket{stage="commit",le="60"}"#),
            Some(1.0)
        );
        assert_eq!(value(&text, "meshlift_node_reboot_to_confirm_seconds_sum"), Some(45.0));
        assert_eq!(value(&text, r#"meshlift_node_reboot_to_confirm_seconds_bucket{le="45"}"#), Some(1.0));
        assert_eq!(value(&text, r#"meshlift_node_reboot_to_confirm_seconds_bucket{le="30"}"#), Some(0.0));
        assert_eq!(value(&text, "meshlift_request_last_progress_timestamp_seconds"), Some(50.0));
    }

    #[test]
    fn a_node_s_bytes_are_counters_and_its_rates_follow_the_source() {
        let mut m = Metrics::new();
        let mut p = DownloadProgress {
            total_bytes: 1000,
            have_bytes: 250,
            bt_downloaded_bytes: 250,
            bt_uploaded_bytes: 40,
            peers: 3,
            seeds: 1,
            connections: 5,
            download_bytes_per_second: 1000,
            upload_bytes_per_second: 200,
            source: "bittorrent".into(),
            ..Default::default()
        };
        m.observe_download("n1", Some(&p));
        // The minion restarted and fell back to HTTP: its session totals start again.
        p = DownloadProgress {
            total_bytes: 1000,
            have_bytes: 600,
            bt_downloaded_bytes: 0,
            http_downloaded_bytes: 350,
            download_bytes_per_second: 700,
            source: "http".into(),
            ..Default::default()
        };
        m.observe_download("n1", Some(&p));
        let text = m.render();
        let v = |s: &str| value(&text, s);
        assert_eq!(v(r#"meshlift_bt_downloaded_bytes_total{node="n1"}"#), Some(250.0), "{text}");
        assert_eq!(v(r#"meshlift_bt_uploaded_bytes_total{node="n1"}"#), Some(40.0));
        assert_eq!(v(r#"meshlift_http_downloaded_bytes_total{node="n1"}"#), Some(350.0));
        assert_eq!(v(r#"meshlift_http_download_bytes_per_second{node="n1"}"#), Some(700.0));
        assert_eq!(v(r#"meshlift_bt_download_bytes_per_second{node="n1"}"#), Some(0.0));
        assert_eq!(v(r#"meshlift_bt_progress_ratio{node="n1"}"#), Some(0.6));
        assert!(text.contains("# TYPE meshlift_bt_downloaded_bytes_total counter"));
        // No download any more: the rates are zero, the counters stay.
        m.observe_download("n1", None);
        let text = m.render();
        assert_eq!(value(&text, r#"meshlift_http_download_bytes_per_second{node="n1"}"#), Some(0.0));
        assert_eq!(value(&text, r#"meshlift_http_downloaded_bytes_total{node="n1"}"#), Some(350.0));
        // A node that never downloaded gets no row of zeros.
        m.observe_download("n2", None);
        assert!(!m.render().contains(r#"node="n2""#));
    }

    #[test]
    fn the_seeder_has_its_own_series_and_build_info_is_one() {
        let mut m = Metrics::new();
        let s = |up| crate::dist::SeederStats {
            uploaded_bytes: up,
            upload_bytes_per_s: 5e5,
            peers: 2,
            torrents: 1,
        };
        m.observe_seeder(&s(1000));
        m.observe_seeder(&s(3000));
        let text = m.render();
        assert_eq!(value(&text, "meshlift_seeder_uploaded_bytes_total"), Some(3000.0));
        assert_eq!(value(&text, "meshlift_seeder_upload_bytes_per_second"), Some(500000.0));
        assert_eq!(value(&text, "meshlift_seeder_peers"), Some(2.0));
        assert!(!text.contains(r#"node="controller""#));
        let build = text.lines().find(|l| l.starts_with("meshlift_build_info{")).expect("build info");
        assert!(build.ends_with(" 1"), "{build}");
        assert!(build.contains(&format!(r#"protocol="{}""#, meshlift_protocol::PROTOCOL_VERSION)), "{build}");
        assert!(build.contains(concat!(r#"version=""#, env!("CARGO_PKG_VERSION"), '"')), "{build}");
    }

    /// Every `meshlift_*` name in `text`, without a histogram's `_bucket`/`_sum`/`_count`.
    fn names_in(text: &str, exported: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("meshlift_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            rest = &rest[at + name.len()..];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| exported.iter().any(|e| e == b)))
                .map_or(name.clone(), str::to_string);
            out.push(base);
        }
        out
    }

    #[test]
    fn the_dashboard_and_the_alert_rules_use_only_exported_names() {
        let exported = Metrics::new().family_names().to_vec();
        let dashboard = include_str!("../../configs/grafana/meshlift.json");
        let json: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
        assert_eq!(json["uid"], "meshlift");
        let rules = include_str!("../../configs/prometheus/meshlift-alerts.yml");
        for (file, text) in [("meshlift.json", dashboard), ("meshlift-alerts.yml", rules)] {
            let used = names_in(text, &exported);
            assert!(used.len() > 5, "{file} names metrics");
            for name in used {
                assert!(exported.contains(&name), "{file} uses {name}, which the controller does not export");
            }
        }
    }

    #[test]
    fn counters_end_in_total_and_nothing_is_left_in_the_old_names() {
        let m = Metrics::new();
        let text = m.render();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
        for old in ["meshlift_bt_progress_ppm", "meshlift_node_outcomes", "meshlift_bt_uploaded_bytes"] {
            assert!(!m.family_names().iter().any(|n| n == old), "{old} is still exported");
        }
    }

    #[test]
    fn outcome_counters_exist_from_the_start_and_only_go_up() {
        let mut m = Metrics::new();
        let text = m.render();
        assert_eq!(value(&text, r#"meshlift_node_outcomes_total{outcome="fell_back"}"#), Some(0.0), "{text}");
        m.outcomes.observe(OutcomeKind::FellBack, 2);
        m.outcomes.observe(OutcomeKind::FellBack, 3);
        let text = m.render();
        assert_eq!(value(&text, r#"meshlift_node_outcomes_total{outcome="fell_back"}"#), Some(3.0));
    }
}
