//! Control-plane load bench (issue 6 item 5, issue 12 item 7): a real `meshlift-controller`
//! process, N simulated minions each sending a full `StatusReport` once a second over libzmq with
//! CurveZMQ (each with its own enrolled key, as real nodes), and an operator polling
//! `upgrade state` with an operator key while that goes on. `--insecure` runs the same load in
//! plain text (`[security] insecure = true`) for comparison.
//!
//! Measured: the controller's CPU (utime + stime from `/proc/<pid>/stat` over the window, as a
//! share of one core, and split by thread name from `/proc/<pid>/task`, with the share of the
//! window each thread spent runnable but waiting for a CPU, from its `schedstat`), its RSS
//! (`VmRSS`, and the peak `VmHWM`), the p50/p99 round trip of `UpgradeStateReq` through `transport::request` (a
//! fresh connection and CURVE handshake per request, as the CLI does), and how many status
//! reports were acknowledged (and how many of those acks were refusals), so a controller that
//! silently drops or refuses reports cannot look fast. Target (issue 12): N = 10 000 with CURVE
//! on, CPU ≤ 40 % of a core, p99 ≤ 20 ms. The load average at the start and end of the window is
//! printed with the figures: the machine is shared.
//!
//! The simulated minions are light: a raw `zmq::DEALER` per node with the routing id the real
//! minion uses (its MAC), the same socket limits and heartbeats as `transport::Dealer`, speaking
//! the real protocol, but no slots, no downloads. 10 000 `transport::Dealer`s (a thread, a wake
//! pipe and a monitor socket each) do not fit in one process under a 20 000 open-files limit, and
//! libzmq caps a context at 1023 sockets, so this program starts itself as worker processes
//! (hidden `--worker` mode, `--per-worker` minions each); each worker runs a few threads, each
//! owning at most `--per-thread` sockets on its own `zmq::Context` and sending every report when
//! its turn comes (reports are spread evenly over the period, across all workers) and reading
//! acks from the sockets whose `ZMQ_FD` a poll(2) reports, at most every 5 ms. A minion counts as
//! connected once a report of it is acknowledged; the window starts when all are (or after
//! 120 s, or 30 s without progress: a controller that cannot hold N connections plateaus, and the
//! window then measures what it does with the ones it holds). Workers print their counters on
//! stdout ten times a second and stop when their stdin closes. `--minion-heartbeat-ms 0` (for
//! diagnosis only) takes the ZMTP heartbeats off the simulated minions. They share the machine's cores with
//! the controller: the report prints the load generator's own CPU (all processes) too, so a
//! reader can tell when the load generator was the bottleneck.
//!
//! `cargo build --release -p meshlift-controller && cargo build --release -p meshlift-bench --bin loadgen`
//! (one command with both `-p` and `--bin loadgen` builds only `loadgen`), then
//! `target/release/loadgen --nodes 10000 --seconds 30 --controller-bin target/release/meshlift-controller`
//! (add `--insecure` for the plain-text comparison).

use anyhow::{bail, Context};
use clap::Parser;
use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology};
use meshlift_protocol::transport::{request, ClientSecurity, CurveKeyPair, RequestConfig, SocketLimits};
use meshlift_protocol::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{BufRead, Write};
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
    /// Plain text: the controller runs with `[security] insecure = true`, minions and the operator
    /// connect without CURVE. For comparison only.
    #[arg(long)]
    insecure: bool,
    /// Simulated minions per worker process (each minion costs two file descriptors there).
    #[arg(long, default_value_t = 2500)]
    per_worker: usize,
    /// Minion sockets per worker thread, each thread with its own libzmq context (libzmq allows
    /// 1023 sockets per context).
    #[arg(long, default_value_t = 850)]
    per_thread: usize,
    /// New minion connections per second, over all workers (each is a CURVE handshake and a ZAP
    /// request at the controller).
    #[arg(long, default_value_t = 1000)]
    connect_rate: u32,
    /// Diagnosis only: the simulated minions' ZMTP heartbeat interval, ms (0 = no heartbeats, unlike
    /// real minions). Default: what `transport::Dealer` sets (`SocketLimits::default()`).
    #[arg(long)]
    minion_heartbeat_ms: Option<u64>,
    /// Working directory for the topology, keys, config, state and controller log (default: a new
    /// directory under the system temp dir, removed afterwards unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the working directory (controller log, state.db) for inspection.
    #[arg(long)]
    keep: bool,
    /// Print one JSON object with the figures.
    #[arg(long)]
    json: bool,

    // Worker mode, started by the parent: not for people.
    #[arg(long, hide = true)]
    worker: bool,
    /// Worker: the minions file (`<mac> <public z85> <secret z85>` per line).
    #[arg(long, hide = true)]
    minions_file: Option<PathBuf>,
    /// Worker: first line of the minions file this worker simulates.
    #[arg(long, hide = true, default_value_t = 0)]
    first: usize,
    /// Worker: how many minions from `first`.
    #[arg(long, hide = true, default_value_t = 0)]
    count: usize,
    /// Worker: the controller's minion endpoint.
    #[arg(long, hide = true, default_value = "")]
    minion_endpoint: String,
    /// Worker: the controller's public key (Z85); absent = plain text.
    #[arg(long, hide = true)]
    server_key: Option<String>,
    /// Worker: Unix time (ms) of the first report of minion 0; minion g reports first at
    /// `start + period × g / nodes`.
    #[arg(long, hide = true, default_value_t = 0)]
    start_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.worker {
        return worker_main(&args);
    }
    if args.nodes == 0 || args.seconds == 0 {
        bail!("--nodes and --seconds must be positive");
    }
    if args.per_thread == 0 || args.per_thread > 1000 || args.per_worker == 0 {
        bail!("--per-thread must be 1..=1000 (libzmq allows 1023 sockets per context) and --per-worker positive");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
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
    insecure: bool,
    workers: usize,
    worker_threads: usize,
    window_s: f64,
    loadavg_start: String,
    loadavg_end: String,
    controller_cpu_pct: f64,
    /// Controller CPU by thread name, % of one core, largest first; and the share of the window
    /// those threads spent runnable but waiting for a CPU (the machine is shared).
    controller_threads: Vec<(String, f64, f64)>,
    loadgen_cpu_pct: f64,
    rss_kib: u64,
    hwm_kib: u64,
    state_p50_ms: f64,
    state_p99_ms: f64,
    state_max_ms: f64,
    state_requests: usize,
    state_failures: usize,
    reports_sent_per_s: f64,
    not_sent: u64,
    acks_per_s: f64,
    refused_acks: u64,
    connected: u64,
}

/// Issue 12's target.
const TARGET_CPU_PCT: f64 = 40.0;
const TARGET_P99_MS: f64 = 20.0;

impl Report {
    fn print(&self) {
        println!("nodes                      {}", self.nodes);
        println!(
            "security                   {}",
            if self.insecure { "INSECURE (plain text)" } else { "CURVE" }
        );
        println!("minions connected (acked)  {}", self.connected);
        println!(
            "load generator             {} worker processes, {} threads",
            self.workers, self.worker_threads
        );
        println!("window                     {:.1} s", self.window_s);
        println!("load average               {} at start, {} at end", self.loadavg_start, self.loadavg_end);
        println!("controller CPU             {:.1} % of one core", self.controller_cpu_pct);
        let threads: Vec<String> = self
            .controller_threads
            .iter()
            .map(|(name, pct, wait)| format!("{name} {pct:.1} % (waited {wait:.0} % for a CPU)"))
            .collect();
        println!("  by thread                {}", threads.join(", "));
        println!("controller RSS             {} MiB (peak {} MiB)", self.rss_kib / 1024, self.hwm_kib / 1024);
        println!("loadgen CPU (same machine) {:.1} % of one core (all processes)", self.loadgen_cpu_pct);
        println!(
            "status reports sent        {:.0} /s ({} not sent: not connected)",
            self.reports_sent_per_s, self.not_sent
        );
        println!("status acks received       {:.0} /s ({} refused)", self.acks_per_s, self.refused_acks);
        println!(
            "upgrade state latency      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests, {} failed)",
            self.state_p50_ms, self.state_p99_ms, self.state_max_ms, self.state_requests, self.state_failures
        );
        let (cpu_ok, p99_ok) = self.targets_met();
        println!(
            "target (issue 12: CPU <= {TARGET_CPU_PCT} %, p99 <= {TARGET_P99_MS} ms): CPU {}, p99 {}",
            if cpu_ok { "met" } else { "MISSED" },
            if p99_ok { "met" } else { "MISSED" }
        );
    }

    fn targets_met(&self) -> (bool, bool) {
        let cpu_ok = self.controller_cpu_pct <= TARGET_CPU_PCT;
        let p99_ok = self.state_p99_ms <= TARGET_P99_MS && self.state_failures == 0;
        (cpu_ok, p99_ok)
    }

    fn to_json(&self) -> serde_json::Value {
        let (cpu_ok, p99_ok) = self.targets_met();
        let threads: serde_json::Map<String, serde_json::Value> = self
            .controller_threads
            .iter()
            .map(|(n, p, w)| (n.clone(), serde_json::json!({ "cpu_pct": p, "runnable_waiting_pct": w })))
            .collect();
        serde_json::json!({
            "nodes": self.nodes,
            "insecure": self.insecure,
            "connected": self.connected,
            "workers": self.workers,
            "worker_threads": self.worker_threads,
            "window_s": self.window_s,
            "loadavg_start": self.loadavg_start,
            "loadavg_end": self.loadavg_end,
            "controller_cpu_pct": self.controller_cpu_pct,
            "controller_cpu_pct_by_thread": threads,
            "controller_rss_kib": self.rss_kib,
            "controller_peak_rss_kib": self.hwm_kib,
            "loadgen_cpu_pct": self.loadgen_cpu_pct,
            "reports_sent_per_s": self.reports_sent_per_s,
            "reports_not_sent": self.not_sent,
            "acks_per_s": self.acks_per_s,
            "refused_acks": self.refused_acks,
            "state_p50_ms": self.state_p50_ms,
            "state_p99_ms": self.state_p99_ms,
            "state_max_ms": self.state_max_ms,
            "state_requests": self.state_requests,
            "state_failures": self.state_failures,
            "target_cpu_met": cpu_ok,
            "target_p99_met": p99_ok,
        })
    }
}

async fn run(args: &Args, work: &Path) -> anyhow::Result<Report> {
    let topo = generate_topology(args.nodes);
    let topo_path = work.join("topology.json");
    std::fs::write(&topo_path, serde_json::to_vec(&topo.to_json())?)?;
    let minion_port = free_port()?;
    let app_port = free_port()?;
    let http_port = free_port()?;
    let bt_port = free_port()?;
    let minion_ep = format!("tcp://127.0.0.1:{minion_port}");
    let app_ep = format!("tcp://127.0.0.1:{app_port}");

    // Keys: one per node (enrolled in node_keys.toml), the controller's, one viewer operator's.
    let keys_dir = work.join("keys");
    let minions_file = work.join("minions.keys");
    write_node_keys(&topo, &minions_file, &work.join("node_keys.toml"))?;
    let (security_toml, operator, server_key) = if args.insecure {
        ("[security]\ninsecure = true\n".to_string(), ClientSecurity::Insecure, None)
    } else {
        CurveKeyPair::generate()?.save(&keys_dir, "controller")?;
        let (op_key, _) = CurveKeyPair::generate()?.save(&keys_dir, "operator")?;
        let controller = CurveKeyPair::load(&keys_dir.join("controller.key"))?;
        let keys = CurveKeyPair::load(&op_key)?;
        let toml = format!(
            "[security]\n\
             key_file = {key:?}\n\
             node_keys_file = {nodes:?}\n\
             [[security.operators]]\n\
             name = \"loadgen\"\n\
             role = \"viewer\"\n\
             key = {op:?}\n",
            key = keys_dir.join("controller.key").display().to_string(),
            nodes = work.join("node_keys.toml").display().to_string(),
            op = keys.public().to_z85(),
        );
        (
            toml,
            ClientSecurity::Curve { keys, server: controller.public() },
            Some(controller.public().to_z85()),
        )
    };
    let config = format!(
        "topology_file = {topo:?}\n\
         data_dir = {data:?}\n\
         minion_endpoint = {minion_ep:?}\n\
         app_endpoint = {app_ep:?}\n\
         http_listen = \"127.0.0.1:{http_port}\"\n\
         [bittorrent]\n\
         listen_port = {bt_port}\n\
         {security_toml}",
        topo = topo_path.display().to_string(),
        data = work.join("data").display().to_string(),
    );
    let config_path = work.join("controller.toml");
    std::fs::write(&config_path, config)?;
    let state_req = RequestConfig::new(&app_ep, operator, Duration::from_secs(5));
    let probe_req = RequestConfig { timeout: Duration::from_secs(1), ..state_req.clone() };

    let mut controller = Controller::start(&args.controller_bin, &config_path, &work.join("controller.log"))?;
    wait_until_answering(&probe_req, &mut controller.child, Duration::from_secs(60)).await?;

    // Workers, and when the first report goes out: after every connection had time to open.
    let n_workers = args.nodes.div_ceil(args.per_worker);
    let connect_s = args.nodes as f64 / f64::from(args.connect_rate.max(1));
    let start_ms = now_ms() + (connect_s * 1000.0) as u64 + 2000;
    let mut workers = Workers { procs: Vec::new() };
    let mut threads = 0;
    for w in 0..n_workers {
        let (first, count) = split(args.nodes, n_workers, w);
        threads += count.div_ceil(args.per_thread);
        workers.procs.push(WorkerProc::spawn(
            args,
            w,
            first,
            count,
            &minions_file,
            &minion_ep,
            server_key.as_deref(),
            start_ms,
        )?);
    }
    eprintln!(
        "controller pid {} answering on {app_ep} ({}); {} minions in {n_workers} worker processes, {threads} threads",
        controller.pid,
        if args.insecure { "INSECURE" } else { "CURVE" },
        args.nodes
    );

    // Wait for every minion's first ack: at most 120 s after the connections were opened, and
    // no longer than 30 s without progress (a controller that cannot take them all plateaus).
    let connect_deadline = Instant::now() + Duration::from_secs(120) + Duration::from_secs_f64(connect_s);
    let mut last_print = Instant::now();
    let (mut best, mut best_at) = (0, Instant::now());
    loop {
        let connected = workers.totals().connected;
        if connected as usize >= args.nodes {
            break;
        }
        if connected > best {
            (best, best_at) = (connected, Instant::now());
        }
        let stalled = best_at.elapsed() > Duration::from_secs(30);
        if Instant::now() > connect_deadline || stalled {
            eprintln!(
                "only {connected} of {} minions acknowledged ({}); measuring anyway",
                args.nodes,
                if stalled { "no progress for 30 s" } else { "after 120 s" }
            );
            break;
        }
        controller.check_alive()?;
        workers.check_alive()?;
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            let t = workers.totals();
            eprintln!("  {} of {} minions acknowledged ({} reports sent)", t.connected, args.nodes, t.sent);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    controller.check_alive()?;
    workers.check_alive()?;

    // The window.
    let loadavg_start = loadavg();
    let cpu0 = proc_cpu_ticks(controller.pid)?;
    let threads0 = proc_thread_ticks(controller.pid);
    let self0 = proc_cpu_ticks(std::process::id())? + workers.cpu_ticks();
    let c0 = workers.totals();
    let t0 = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.state_rate.max(1)));
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut next = Instant::now();
    while t0.elapsed() < window {
        let start = Instant::now();
        match request(&state_req, Message::UpgradeStateReq(UpgradeStateReq {})).await {
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
    let threads1 = proc_thread_ticks(controller.pid);
    let self1 = proc_cpu_ticks(std::process::id())? + workers.cpu_ticks();
    let c1 = workers.totals();
    let loadavg_end = loadavg();
    let (rss_kib, hwm_kib) = proc_rss_kib(controller.pid)?;
    let tick = clock_ticks_per_s();
    let pct = |ticks: u64| ticks as f64 / tick / elapsed * 100.0;
    let mut controller_threads: Vec<(String, f64, f64)> = threads1
        .iter()
        .map(|(name, (t1, w1))| {
            let (t0, w0) = threads0.get(name).copied().unwrap_or((0, 0));
            (name.clone(), pct(t1.saturating_sub(t0)), w1.saturating_sub(w0) as f64 / 1e9 / elapsed * 100.0)
        })
        .filter(|(_, p, _)| *p >= 0.05)
        .collect();
    controller_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    latencies.sort_by(f64::total_cmp);
    let report = Report {
        nodes: args.nodes,
        insecure: args.insecure,
        workers: n_workers,
        worker_threads: threads,
        window_s: elapsed,
        loadavg_start,
        loadavg_end,
        controller_cpu_pct: pct(cpu1 - cpu0),
        controller_threads,
        loadgen_cpu_pct: pct(self1.saturating_sub(self0)),
        rss_kib,
        hwm_kib,
        state_p50_ms: percentile(&latencies, 0.50),
        state_p99_ms: percentile(&latencies, 0.99),
        state_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        state_requests: latencies.len() + failures,
        state_failures: failures,
        reports_sent_per_s: (c1.sent - c0.sent) as f64 / elapsed,
        not_sent: c1.not_sent - c0.not_sent,
        acks_per_s: (c1.acks - c0.acks) as f64 / elapsed,
        refused_acks: c1.refused - c0.refused,
        connected: c1.connected,
    };
    drop(workers);
    controller.stop();
    Ok(report)
}

/// Part `w` of `n` items split over `k` parts as evenly as possible: (first, count).
fn split(n: usize, k: usize, w: usize) -> (usize, usize) {
    let base = n / k;
    let extra = n % k;
    let first = w * base + w.min(extra);
    (first, base + usize::from(w < extra))
}

/// One CURVE key pair per node: the public halves enrolled in `node_keys` (what the controller
/// reads), and `<mac> <public> <secret>` lines (Z85) in `minions` (mode 0600) for the workers.
fn write_node_keys(topo: &Topology, minions: &Path, node_keys: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut enrolled = String::from("# loadgen: node name = CURVE public key (Z85)\n[nodes]\n");
    let mut lines = String::new();
    for node in &topo.nodes {
        let kp =
            zmq::CurveKeyPair::new().context("cannot generate a CURVE key pair (libzmq without CURVE?)")?;
        let public = zmq::z85_encode(&kp.public_key).context("z85")?;
        let secret = zmq::z85_encode(&kp.secret_key).context("z85")?;
        enrolled.push_str(&format!("{} = \"{public}\"\n", node.name));
        lines.push_str(&format!("{} {public} {secret}\n", node.mac_addr));
    }
    std::fs::write(node_keys, enrolled)?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(minions)?;
    f.write_all(lines.as_bytes())?;
    Ok(())
}

/// Cumulative counters of one worker (or of all).
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    /// Minions whose first report was acknowledged.
    connected: u64,
    sent: u64,
    /// Reports due while the minion's connection was not up (libzmq refused the send).
    not_sent: u64,
    acks: u64,
    refused: u64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.connected += o.connected;
        self.sent += o.sent;
        self.not_sent += o.not_sent;
        self.acks += o.acks;
        self.refused += o.refused;
    }
}

/// The counters as shared atomics (worker threads add, the reporter reads; in the parent, the
/// reader of a worker's stdout stores its latest line).
#[derive(Default)]
struct SharedTotals {
    connected: AtomicU64,
    sent: AtomicU64,
    not_sent: AtomicU64,
    acks: AtomicU64,
    refused: AtomicU64,
}

impl SharedTotals {
    fn load(&self) -> Totals {
        Totals {
            connected: self.connected.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            not_sent: self.not_sent.load(Ordering::Relaxed),
            acks: self.acks.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn store(&self, t: Totals) {
        self.connected.store(t.connected, Ordering::Relaxed);
        self.sent.store(t.sent, Ordering::Relaxed);
        self.not_sent.store(t.not_sent, Ordering::Relaxed);
        self.acks.store(t.acks, Ordering::Relaxed);
        self.refused.store(t.refused, Ordering::Relaxed);
    }
}

/// Worker → parent: `stats <connected> <sent> <not_sent> <acks> <refused>`.
fn format_stats(t: Totals) -> String {
    format!("stats {} {} {} {} {}", t.connected, t.sent, t.not_sent, t.acks, t.refused)
}

fn parse_stats(line: &str) -> Option<Totals> {
    let mut it = line.strip_prefix("stats ")?.split_whitespace().map(|v| v.parse::<u64>().ok());
    let mut next = || it.next().flatten();
    Some(Totals { connected: next()?, sent: next()?, not_sent: next()?, acks: next()?, refused: next()? })
}

/// The worker processes; stopped (stdin closed, then killed) when dropped.
struct Workers {
    procs: Vec<WorkerProc>,
}

struct WorkerProc {
    child: Child,
    pid: u32,
    totals: Arc<SharedTotals>,
}

impl WorkerProc {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        args: &Args,
        index: usize,
        first: usize,
        count: usize,
        minions_file: &Path,
        minion_ep: &str,
        server_key: Option<&str>,
        start_ms: u64,
    ) -> anyhow::Result<WorkerProc> {
        let exe = std::env::current_exe().context("cannot find this program to start workers")?;
        let mut cmd = Command::new(exe);
        cmd.arg("--worker")
            .arg("--nodes")
            .arg(args.nodes.to_string())
            .arg("--report-ms")
            .arg(args.report_ms.to_string())
            .arg("--per-thread")
            .arg(args.per_thread.to_string())
            .arg("--connect-rate")
            .arg(
                ((f64::from(args.connect_rate) * count as f64 / args.nodes as f64).ceil() as u32)
                    .max(1)
                    .to_string(),
            )
            .arg("--minions-file")
            .arg(minions_file)
            .arg("--first")
            .arg(first.to_string())
            .arg("--count")
            .arg(count.to_string())
            .arg("--minion-endpoint")
            .arg(minion_ep)
            .arg("--start-ms")
            .arg(start_ms.to_string());
        if let Some(k) = server_key {
            cmd.arg("--server-key").arg(k);
        }
        if let Some(ms) = args.minion_heartbeat_ms {
            cmd.arg("--minion-heartbeat-ms").arg(ms.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start worker {index}"))?;
        let pid = child.id();
        let totals = Arc::new(SharedTotals::default());
        let stdout = child.stdout.take().context("worker stdout")?;
        let t = totals.clone();
        std::thread::Builder::new().name(format!("worker-{index}")).spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = parse_stats(&line) {
                    t.store(v);
                }
            }
        })?;
        Ok(WorkerProc { child, pid, totals })
    }
}

impl Workers {
    fn totals(&self) -> Totals {
        let mut sum = Totals::default();
        for p in &self.procs {
            sum += p.totals.load();
        }
        sum
    }

    fn cpu_ticks(&self) -> u64 {
        self.procs.iter().map(|p| proc_cpu_ticks(p.pid).unwrap_or(0)).sum()
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (i, p) in self.procs.iter_mut().enumerate() {
            if let Some(status) = p.child.try_wait()? {
                bail!("load generator worker {i} exited: {status}");
            }
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // A worker stops when its stdin closes.
        for p in &mut self.procs {
            drop(p.child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in &mut self.procs {
            while Instant::now() < deadline {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(p.child.try_wait(), Ok(Some(_))) {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

/// Worker mode: simulate minions `first .. first + count` of the minions file until stdin closes.
fn worker_main(args: &Args) -> anyhow::Result<()> {
    let path = args.minions_file.as_ref().context("--worker needs --minions-file")?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let server = match &args.server_key {
        Some(z) => Some(decode_key(z)?),
        None => None,
    };
    let mut specs = Vec::with_capacity(args.count);
    for (g, line) in text.lines().enumerate().skip(args.first).take(args.count) {
        let mut parts = line.split_whitespace();
        let (Some(mac), Some(public), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("malformed line {} in {}", g + 1, path.display());
        };
        let keys = match server {
            Some(_) => Some((decode_key(public)?, decode_key(secret)?)),
            None => None,
        };
        specs.push(MinionSpec { global: g, mac: mac.to_string(), keys });
    }
    let threads = specs.len().div_ceil(args.per_thread.max(1)).max(1);
    let cfg = Arc::new(WorkerCfg {
        endpoint: args.minion_endpoint.clone(),
        server,
        period: Duration::from_millis(args.report_ms.max(10)),
        nodes: args.nodes.max(1),
        start: instant_of_unix_ms(args.start_ms),
        connect_every: Duration::from_secs_f64(threads as f64 / f64::from(args.connect_rate.max(1))),
        heartbeat_ms: args.minion_heartbeat_ms,
    });
    let totals = Arc::new(SharedTotals::default());
    let mut chunks = Vec::with_capacity(threads);
    let n = specs.len();
    for t in (0..threads).rev() {
        let (first, _) = split(n, threads, t);
        chunks.push(specs.split_off(first));
    }
    for (t, chunk) in chunks.into_iter().enumerate() {
        let (cfg, totals) = (cfg.clone(), totals.clone());
        std::thread::Builder::new().name(format!("minions-{t}")).spawn(move || {
            if let Err(e) = minion_thread(chunk, &cfg, &totals) {
                eprintln!("loadgen worker thread failed: {e:#}");
                std::process::exit(1);
            }
        })?;
    }
    let reporter = totals.clone();
    std::thread::Builder::new().name("stats".into()).spawn(move || {
        let mut out = std::io::stdout();
        loop {
            if writeln!(out, "{}", format_stats(reporter.load())).is_err() {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })?;
    // Run until the parent closes our stdin (or goes away).
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    std::process::exit(0);
}

fn decode_key(z85: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = zmq::z85_decode(z85).map_err(|e| anyhow::anyhow!("bad Z85 key {z85:?}: {e}"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("key {z85:?} is not 32 bytes"))
}

fn instant_of_unix_ms(ms: u64) -> Instant {
    let now = now_ms();
    if ms >= now {
        Instant::now() + Duration::from_millis(ms - now)
    } else {
        Instant::now().checked_sub(Duration::from_millis(now - ms)).unwrap_or_else(Instant::now)
    }
}

struct MinionSpec {
    /// Line of the minions file: the minion's place in the report schedule.
    global: usize,
    mac: String,
    /// (public, secret); `None` in plain text.
    keys: Option<([u8; 32], [u8; 32])>,
}

struct WorkerCfg {
    endpoint: String,
    server: Option<[u8; 32]>,
    period: Duration,
    nodes: usize,
    start: Instant,
    /// One new connection per this long, per thread.
    connect_every: Duration,
    /// `--minion-heartbeat-ms`.
    heartbeat_ms: Option<u64>,
}

/// One simulated minion: its socket and report sequence.
struct Sim {
    sock: zmq::Socket,
    mac: String,
    boot_id: String,
    seq: u64,
    /// Whether a report of this minion was acknowledged yet (it counts as connected from then).
    acked: bool,
}

/// The real minion's app id.
const APP_ID: &[u8] = b"minion-upgrade";

/// A DEALER set up as `transport::Dealer` sets up the real minion's (same limits, heartbeats,
/// reconnect, immediate, routing id = MAC), without the I/O thread and monitor.
fn minion_socket(ctx: &zmq::Context, spec: &MinionSpec, cfg: &WorkerCfg) -> anyhow::Result<zmq::Socket> {
    let mut lim = SocketLimits::default();
    if let Some(ivl) = cfg.heartbeat_ms {
        lim.heartbeat_ivl = Duration::from_millis(ivl);
        if ivl == 0 {
            lim.heartbeat_timeout = Duration::ZERO;
            lim.heartbeat_ttl = Duration::ZERO;
        }
    }
    let s = ctx.socket(zmq::DEALER)?;
    lim.apply(&s)?;
    s.set_identity(spec.mac.as_bytes())?;
    s.set_immediate(true)?;
    s.set_reconnect_ivl(100)?;
    s.set_reconnect_ivl_max(2000)?;
    if let (Some(server), Some((public, secret))) = (&cfg.server, &spec.keys) {
        s.set_curve_serverkey(server)?;
        s.set_curve_publickey(public)?;
        s.set_curve_secretkey(secret)?;
    }
    s.connect(&cfg.endpoint).with_context(|| format!("cannot connect to {}", cfg.endpoint))?;
    Ok(s)
}

/// A thread of a worker: its own context, its share of the minions, a report each when due.
fn minion_thread(specs: Vec<MinionSpec>, cfg: &WorkerCfg, totals: &SharedTotals) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let boot_id = format!("{:016x}", now_ms() ^ (u64::from(std::process::id()) << 40));
    let mut sims = Vec::with_capacity(specs.len());
    let mut due = BinaryHeap::with_capacity(specs.len());
    let mut next_connect = Instant::now();
    for (i, spec) in specs.iter().enumerate() {
        // Pace the connections: each is a CURVE handshake and a ZAP request at the controller.
        if let Some(wait) = next_connect.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next_connect += cfg.connect_every;
        sims.push(Sim {
            sock: minion_socket(&ctx, spec, cfg)?,
            mac: spec.mac.clone(),
            boot_id: boot_id.clone(),
            seq: 0,
            acked: false,
        });
        let phase = cfg.period.mul_f64(spec.global as f64 / cfg.nodes as f64);
        due.push(Reverse((cfg.start + phase, i)));
    }
    // Readiness through each socket's ZMQ_FD (signalled when libzmq has news for the socket):
    // one poll(2) over plain descriptors, then only the sockets that were signalled are read.
    // zmq_poll on socket items would query every socket on every turn.
    let mut items = Vec::with_capacity(sims.len());
    for sim in &sims {
        items.push(zmq::PollItem::from_fd(sim.sock.get_fd()?, zmq::POLLIN));
    }
    loop {
        let now = Instant::now();
        while let Some(&Reverse((at, i))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let sim = &mut sims[i];
            sim.seq += 1;
            let env = Envelope::new(
                sim.seq,
                Message::StatusReport(Box::new(status_report(&sim.mac, &sim.boot_id, sim.seq))),
            );
            let bytes = encode(&env)?;
            let parts: [&[u8]; 2] = [APP_ID, &bytes];
            match sim.sock.send_multipart(parts, zmq::DONTWAIT) {
                Ok(()) => {
                    totals.sent.fetch_add(1, Ordering::Relaxed);
                }
                // Not connected yet (immediate): this turn is lost, as with a real minion.
                Err(_) => {
                    totals.not_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A send processes the socket's pending commands, which may clear its ZMQ_FD signal
            // while a reply is waiting: read now, or that reply would wait for the next signal.
            sim.drain(totals);
            // Keep the schedule; a thread that fell a whole period behind starts afresh.
            let mut next = at + cfg.period;
            if next <= now {
                next = now + cfg.period;
            }
            due.push(Reverse((next, i)));
        }
        let wake = due.peek().map(|Reverse((at, _))| *at).unwrap_or(now + Duration::from_millis(100));
        let timeout = wake.saturating_duration_since(Instant::now()).as_millis().min(100) as i64;
        if zmq::poll(&mut items, timeout)? > 0 {
            for (sim, item) in sims.iter_mut().zip(&items) {
                if item.is_readable() {
                    sim.drain(totals);
                }
            }
            // Batch: poll(2) over ~850 descriptors costs tens of microseconds (measured: with one
            // poll per millisecond it was most of the load generator's CPU), so at most one per
            // 5 ms; acks wait that much longer, which nothing here measures.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Sim {
    /// Read every message waiting on this socket (which also re-arms its ZMQ_FD).
    fn drain(&mut self, totals: &SharedTotals) {
        while let Ok(frames) = self.sock.recv_multipart(zmq::DONTWAIT) {
            let Some(last) = frames.last() else { continue };
            if let Ok(Envelope { body: Message::StatusReportAck(ack), .. }) = decode(last, MAX_FRAME_DEFAULT)
            {
                totals.acks.fetch_add(1, Ordering::Relaxed);
                if ack.refused.is_some() {
                    totals.refused.fetch_add(1, Ordering::Relaxed);
                }
                if !self.acked {
                    self.acked = true;
                    totals.connected.fetch_add(1, Ordering::Relaxed);
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
        startup_config: None,
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

async fn wait_until_answering(req: &RequestConfig, child: &mut Child, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("controller exited at start: {status} (see controller.log in the work dir; --keep)");
        }
        let last_err = match request(req, Message::UpgradeStateReq(UpgradeStateReq {})).await {
            Ok(env) if matches!(env.body, Message::UpgradeStateDump(_)) => return Ok(()),
            Ok(env) => format!("unexpected reply {}", env.body.kind()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("controller did not answer on {} within {} s: {last_err}", req.endpoint, limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn proc_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_ticks(&stat).map(|(_, t)| t)
}

/// (command name, utime + stime) of a `/proc/…/stat` line.
fn stat_ticks(stat: &str) -> anyhow::Result<(String, u64)> {
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let (head, after) = stat.rsplit_once(')').context("malformed /proc stat")?;
    let name = head.split_once('(').map(|(_, n)| n.to_string()).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 → index 11, stime index 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((name, utime + stime))
}

/// Per thread name (summed): utime + stime in clock ticks, and nanoseconds spent runnable but
/// waiting for a CPU (`/proc/…/task/<tid>/schedstat`, second field), which tells a thread that
/// is starved by the machine's other load from one that is simply idle.
fn proc_thread_ticks(pid: u32) -> BTreeMap<String, (u64, u64)> {
    let mut by_name = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by_name };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let wait_ns = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        if let Ok((name, ticks)) = stat_ticks(&stat) {
            let e = by_name.entry(name).or_insert((0, 0));
            e.0 += ticks;
            e.1 += wait_ns;
        }
    }
    by_name
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

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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
