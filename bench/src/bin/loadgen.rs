//! Control-plane load bench (issue 6 item 5): a real `meshlift-controller` process, N simulated
//! minions each sending a full `StatusReport` once a second, and an operator polling
//! `upgrade state` while that goes on.
//!
//! Measured: the controller's CPU (utime + stime from `/proc/<pid>/stat` over the window, as a
//! share of one core), its RSS (`VmRSS`, and the peak `VmHWM`), the p50/p99 round trip of
//! `UpgradeStateReq` through `transport::request` (a fresh connection per request, as the CLI
//! does), and how many status reports were acknowledged, so a controller that silently drops
//! reports cannot look fast. Target (issue 6): N = 10 000, CPU ≤ 50 % of a core, p99 ≤ 50 ms.
//!
//! The simulated minions are light: one reconnecting `Dealer` per node with the identity
//! `<mac>/<boot id>` the real minion uses, speaking the real protocol, but no slots, no downloads.
//! They run in this process, which shares the machine's cores with the controller: the report
//! prints this process's own CPU too, so a reader can tell when the load generator was the
//! bottleneck.
//!
//! `cargo build --release -p meshlift-controller -p meshlift-bench --bin loadgen` then
//! `target/release/loadgen --nodes 10000 --seconds 30 --controller-bin target/release/meshlift-controller`.

use anyhow::{bail, Context};
use clap::Parser;
use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology};
use meshlift_protocol::transport::{request, Dealer, DealerConfig, DealerEvent};
use meshlift_protocol::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "Control-plane load bench: N minions against a real controller")]
struct Args {
    /// Simulated nodes (one minion connection each).
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Length of the measurement window, seconds (after every minion connected and the warm-up).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The `meshlift-controller` binary to start.
    #[arg(long, default_value = "target/release/meshlift-controller")]
    controller_bin: PathBuf,
    /// Seconds between the last minion connecting and the start of the window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// `upgrade state` requests per second during the window (sequential, one at a time).
    #[arg(long, default_value_t = 10)]
    state_rate: u32,
    /// Status report period of every minion, milliseconds.
    #[arg(long, default_value_t = 1000)]
    report_ms: u64,
    /// Working directory for the topology, config, state and controller log (default: a new
    /// directory under the system temp dir, removed afterwards unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the working directory (controller log, state.db) for inspection.
    #[arg(long)]
    keep: bool,
    /// Print one JSON object with the figures.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes == 0 || args.seconds == 0 {
        bail!("--nodes and --seconds must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("meshlift-loadgen-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = rt.block_on(run(&args, &work));
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print();
    }
    Ok(())
}

/// Figures of one run.
struct Report {
    nodes: usize,
    window_s: f64,
    controller_cpu_pct: f64,
    loadgen_cpu_pct: f64,
    rss_kib: u64,
    hwm_kib: u64,
    state_p50_ms: f64,
    state_p99_ms: f64,
    state_max_ms: f64,
    state_requests: usize,
    state_failures: usize,
    reports_sent_per_s: f64,
    acks_per_s: f64,
    refused_acks: u64,
    connected: u64,
}

impl Report {
    fn print(&self) {
        println!("nodes                      {}", self.nodes);
        println!("minions connected          {}", self.connected);
        println!("window                     {:.1} s", self.window_s);
        println!("controller CPU             {:.1} % of one core", self.controller_cpu_pct);
        println!("controller RSS             {} MiB (peak {} MiB)", self.rss_kib / 1024, self.hwm_kib / 1024);
        println!("loadgen CPU (same machine) {:.1} % of one core", self.loadgen_cpu_pct);
        println!("status reports sent        {:.0} /s", self.reports_sent_per_s);
        println!("status acks received       {:.0} /s ({} refused)", self.acks_per_s, self.refused_acks);
        println!(
            "upgrade state latency      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests, {} failed)",
            self.state_p50_ms, self.state_p99_ms, self.state_max_ms, self.state_requests, self.state_failures
        );
        let cpu_ok = self.controller_cpu_pct <= 50.0;
        let p99_ok = self.state_p99_ms <= 50.0 && self.state_failures == 0;
        println!(
            "target (CPU <= 50 %, p99 <= 50 ms): CPU {}, p99 {}",
            if cpu_ok { "met" } else { "MISSED" },
            if p99_ok { "met" } else { "MISSED" }
        );
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "nodes": self.nodes,
            "connected": self.connected,
            "window_s": self.window_s,
            "controller_cpu_pct": self.controller_cpu_pct,
            "controller_rss_kib": self.rss_kib,
            "controller_peak_rss_kib": self.hwm_kib,
            "loadgen_cpu_pct": self.loadgen_cpu_pct,
            "reports_sent_per_s": self.reports_sent_per_s,
            "acks_per_s": self.acks_per_s,
            "refused_acks": self.refused_acks,
            "state_p50_ms": self.state_p50_ms,
            "state_p99_ms": self.state_p99_ms,
            "state_max_ms": self.state_max_ms,
            "state_requests": self.state_requests,
            "state_failures": self.state_failures,
        })
    }
}

/// Counters shared by every simulated minion.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    sent: AtomicU64,
    acks: AtomicU64,
    refused: AtomicU64,
}

async fn run(args: &Args, work: &Path) -> anyhow::Result<Report> {
    let topo = generate_topology(args.nodes);
    let topo_path = work.join("topology.json");
    std::fs::write(&topo_path, serde_json::to_vec(&topo.to_json())?)?;
    let minion_port = free_port()?;
    let app_port = free_port()?;
    let http_port = free_port()?;
    let minion_ep = format!("tcp://127.0.0.1:{minion_port}");
    let app_ep = format!("tcp://127.0.0.1:{app_port}");
    let config = format!(
        "topology_file = {topo:?}\n\
         data_dir = {data:?}\n\
         minion_endpoint = {minion_ep:?}\n\
         app_endpoint = {app_ep:?}\n\
         http_listen = \"127.0.0.1:{http_port}\"\n",
        topo = topo_path.display().to_string(),
        data = work.join("data").display().to_string(),
    );
    let config_path = work.join("controller.toml");
    std::fs::write(&config_path, config)?;

    let mut controller = Controller::start(&args.controller_bin, &config_path, &work.join("controller.log"))?;
    wait_until_answering(&app_ep, &mut controller.child, Duration::from_secs(60)).await?;
    eprintln!("controller pid {} answering on {app_ep}; connecting {} minions", controller.pid, args.nodes);

    let counters = Arc::new(Counters::default());
    let report_every = Duration::from_millis(args.report_ms.max(10));
    let boot_id = format!("{:x}", now_ms());
    let mut minions = Vec::with_capacity(args.nodes);
    for (i, node) in topo.nodes.iter().enumerate() {
        let identity = format!("{}/{boot_id}", node.mac_addr);
        let cfg = DealerConfig::new(&minion_ep, identity, "minion");
        // Spread first reports over the period so the load is steady, as with real nodes.
        let phase = report_every.mul_f64(i as f64 / args.nodes as f64);
        minions.push(tokio::spawn(minion(
            cfg,
            node.mac_addr.clone(),
            boot_id.clone(),
            phase,
            report_every,
            counters.clone(),
        )));
        if i % 500 == 499 {
            // Let the controller accept connections in bursts rather than one storm.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while (counters.connected.load(Ordering::Relaxed) as usize) < args.nodes {
        if Instant::now() > connect_deadline {
            eprintln!(
                "only {} of {} minions connected after 120 s; measuring anyway",
                counters.connected.load(Ordering::Relaxed),
                args.nodes
            );
            break;
        }
        controller.check_alive()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    controller.check_alive()?;

    // The window.
    let cpu0 = proc_cpu_ticks(controller.pid)?;
    let self0 = proc_cpu_ticks(std::process::id())?;
    let sent0 = counters.sent.load(Ordering::Relaxed);
    let acks0 = counters.acks.load(Ordering::Relaxed);
    let refused0 = counters.refused.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.state_rate.max(1)));
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut next = Instant::now();
    while t0.elapsed() < window {
        let start = Instant::now();
        match request(&app_ep, Message::UpgradeStateReq(UpgradeStateReq {}), Duration::from_secs(5)).await {
            Ok(env) if matches!(env.body, Message::UpgradeStateDump(_)) => {
                latencies.push(start.elapsed().as_secs_f64() * 1000.0)
            }
            Ok(env) => {
                failures += 1;
                eprintln!("unexpected reply {}", env.body.kind());
            }
            Err(e) => {
                failures += 1;
                eprintln!("upgrade state failed: {e}");
            }
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = proc_cpu_ticks(controller.pid)?;
    let self1 = proc_cpu_ticks(std::process::id())?;
    let (rss_kib, hwm_kib) = proc_rss_kib(controller.pid)?;
    let tick = clock_ticks_per_s();
    latencies.sort_by(f64::total_cmp);
    let report = Report {
        nodes: args.nodes,
        window_s: elapsed,
        controller_cpu_pct: (cpu1 - cpu0) as f64 / tick / elapsed * 100.0,
        loadgen_cpu_pct: (self1 - self0) as f64 / tick / elapsed * 100.0,
        rss_kib,
        hwm_kib,
        state_p50_ms: percentile(&latencies, 0.50),
        state_p99_ms: percentile(&latencies, 0.99),
        state_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        state_requests: latencies.len() + failures,
        state_failures: failures,
        reports_sent_per_s: (counters.sent.load(Ordering::Relaxed) - sent0) as f64 / elapsed,
        acks_per_s: (counters.acks.load(Ordering::Relaxed) - acks0) as f64 / elapsed,
        refused_acks: counters.refused.load(Ordering::Relaxed) - refused0,
        connected: counters.connected.load(Ordering::Relaxed),
    };
    for m in minions {
        m.abort();
    }
    controller.stop();
    Ok(report)
}

/// One simulated minion: connect, then a full status report every period; count the acks.
async fn minion(
    cfg: DealerConfig,
    mac: String,
    boot_id: String,
    phase: Duration,
    every: Duration,
    counters: Arc<Counters>,
) {
    let (dealer, mut events) = Dealer::spawn(cfg);
    let mut seq = 0u64;
    let mut first_connect = true;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => return,
                Some(DealerEvent::Connected) => {
                    if first_connect {
                        first_connect = false;
                        counters.connected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(DealerEvent::Message(env)) => {
                    if let Message::StatusReportAck(ack) = env.body {
                        counters.acks.fetch_add(1, Ordering::Relaxed);
                        if ack.refused.is_some() {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(_) => {}
            },
            _ = ticker.tick() => {
                seq += 1;
                let report = status_report(&mac, &boot_id, seq);
                if dealer.send(&Envelope::new(seq, Message::StatusReport(Box::new(report)))).is_ok() {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A full report of an idle node on version 1.0 (what a real minion sends between upgrades).
fn status_report(mac: &str, boot_id: &str, seq: u64) -> StatusReport {
    let slot = |slot, version: Option<&str>| SlotReport {
        slot,
        version: version.map(str::to_string),
        sha256: None,
        confirmed: version.is_some(),
    };
    StatusReport {
        mac: mac.to_string(),
        boot_id: boot_id.to_string(),
        timestamp: now_ms(),
        version: "1.0".into(),
        hardware_board_id: "SIM".into(),
        upgrade_status: UpgradeStatus::default(),
        slots: SlotsReport {
            active: SlotId::A,
            booted: SlotId::A,
            a: slot(SlotId::A, Some("1.0")),
            b: slot(SlotId::B, None),
        },
        links: Vec::new(),
        bgp_peers_up: None,
        last_fallback: None,
        seq,
    }
}

/// N nodes, one site each, one POP per 1 000 nodes; node i links to (i-1)/4 (a 4-ary tree from
/// the POPs) and to i-1 (a second path), like a mesh with some redundancy.
fn generate_topology(n: usize) -> Topology {
    let name = |i: usize| format!("n{i:05}");
    let mut nodes = Vec::with_capacity(n);
    let mut sites = Vec::with_capacity(n);
    let mut links = Vec::new();
    for i in 0..n {
        sites.push(Site { name: format!("s{i:05}"), location: None });
        nodes.push(Node {
            name: name(i),
            node_type: NodeType::Dn,
            mac_addr: format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                (i >> 24) & 0xff,
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ),
            pop_node: i % 1000 == 0,
            status: NodeStatus::Online,
            site_name: format!("s{i:05}"),
        });
        let mut peers = Vec::new();
        if i > 0 {
            peers.push((i - 1) / 4);
            if i >= 2 && (i - 1) / 4 != i - 1 {
                peers.push(i - 1);
            }
        }
        for p in peers {
            links.push(Link {
                name: format!("link-{}-{}", name(p), name(i)),
                a_node_name: name(p),
                z_node_name: name(i),
                link_type: LinkType::Wireless,
                is_alive: true,
            });
        }
    }
    // Generated names and MACs are unique by construction.
    Topology::new(format!("loadgen-{n}"), nodes, links, sites).expect("generated topology is valid")
}

/// The controller process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Controller {
    child: Child,
    pid: u32,
}

impl Controller {
    fn start(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<Controller> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("--log")
            .arg("warn")
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start controller {}", bin.display()))?;
        let pid = child.id();
        Ok(Controller { child, pid })
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("controller exited during the bench: {status} (see its log in the work dir; --keep)");
        }
        Ok(())
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_until_answering(app_ep: &str, child: &mut Child, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("controller exited at start: {status} (see controller.log in the work dir; --keep)");
        }
        if let Ok(env) =
            request(app_ep, Message::UpgradeStateReq(UpgradeStateReq {}), Duration::from_secs(1)).await
        {
            if matches!(env.body, Message::UpgradeStateDump(_)) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("controller did not answer on {app_ep} within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn proc_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 → index 11, stime index 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// (VmRSS, VmHWM) in KiB.
fn proc_rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// `getconf CLK_TCK` (100 on every Linux we know of, but ask).
fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
