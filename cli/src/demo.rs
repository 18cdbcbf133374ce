//! `meshlift demo`: a virtual mesh of real minion processes upgraded end to end.
//!
//! Generates keys and two signed images (v1 on every node, v2 to roll out), starts the
//! controller and the mesh (meshsim), adds v2, runs a full upgrade over the swarm with live
//! progress, and ends with a summary. Every process it starts ends with it (exit, error, Ctrl-C).
//!
//! CurveZMQ is on, as in production: the lab generates the controller's key pair, one per node
//! (enrolled) and an admin operator key; `--keep` prints the exports that let an operator use the
//! CLI on the running mesh. `--insecure` runs everything in plain text instead.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use meshlift_meshsim::lab::{self, BatchLog, Lab, LabConfig, TransferTally};
use meshlift_protocol::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod golden;

/// The sample mesh (22 nodes, 16 sites, 2 POPs), built in so the demo runs from anywhere.
const SAMPLE_TOPOLOGY: &str = include_str!("../../configs/topologies/sample.json");

#[derive(Args)]
pub struct DemoArgs {
    /// Terragraph topology JSON to simulate (default: the built-in 22-node sample mesh).
    #[arg(long, conflicts_with = "nodes")]
    topology: Option<PathBuf>,
    /// Simulate a generated grid-like mesh of N nodes instead.
    #[arg(long)]
    nodes: Option<usize>,
    /// v2 fails its post-boot check on a few nodes: they fall back to v1, the rest succeed.
    #[arg(long)]
    bad_image: bool,
    /// Leave controller and mesh running after the upgrade, to explore with the CLI (Ctrl-C ends).
    #[arg(long)]
    keep: bool,
    /// Working directory (keys, images, logs, node slots). Default: a fresh temporary directory,
    /// removed at the end unless --keep or an error.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Plain text and no keys on the management plane (security.insecure = true), instead of
    /// CurveZMQ with generated keys.
    #[arg(long)]
    insecure: bool,
    /// Run everything over IPv6 loopback (`::1`): the controller's ZeroMQ sockets, HTTP server,
    /// tracker and seeder, the nodes' relays, and the swarm between the minions.
    #[arg(long)]
    ipv6: bool,
    /// Image payload size in MiB. The default is large enough to show the swarm's sharing: what
    /// each node costs the seeder beyond its share (requests in flight when it leaves the seeder,
    /// a piece or two when it goes hungry) is fixed per node, so on a 4 MiB image it is most of
    /// what the controller sends (3.5× the image on the sample mesh; 1.7× at 16 MiB).
    #[arg(long, default_value_t = 16)]
    image_mib: usize,
    /// Send no upgrade request: make v2 the golden image and let the controller's golden-image
    /// loop upgrade the mesh in waves (canary, bake, 10 % → 50 % → rest). With --bad-image, v2
    /// fails on the canaries and is quarantined; no other node is touched.
    #[arg(long)]
    golden: bool,
}

/// The summary `--json` prints.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub nodes: usize,
    /// `ipv4` (127.0.0.1) or `ipv6` (::1, `--ipv6`).
    pub address_family: &'static str,
    pub succeeded: usize,
    pub fell_back: usize,
    pub failed: usize,
    pub skipped: usize,
    pub batches: Vec<Vec<String>>,
    pub collateral_isolation_s: f64,
    /// Nodes that were isolated, with seconds (empty when the plan was safe).
    pub isolated_nodes: BTreeMap<String, f64>,
    pub image_bytes: u64,
    pub controller_upload_bytes: u64,
    pub peer_bytes: u64,
    pub prepare_s: f64,
    pub commit_s: f64,
    pub outcomes: BTreeMap<String, NodeResult>,
    pub request_id: String,
    pub workdir: String,
    /// `--golden` only: the loop's waves, nodes upgraded, versions quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub golden: Option<golden::GoldenSummary>,
}

#[derive(Debug, Serialize)]
pub struct NodeResult {
    pub outcome: String,
    pub reason: String,
}

pub fn run(args: DemoArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshlift demo: cannot start runtime: {e}");
            return 2;
        }
    };
    rt.block_on(async move {
        tokio::select! {
            code = demo(args) => code,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted: stopping the controller and every node");
                // Dropping the demo future drops the lab: every child is killed.
                130
            }
        }
    })
}

fn say(json: bool, msg: impl AsRef<str>) {
    if !json {
        eprintln!("{}", msg.as_ref());
    }
}

async fn demo(args: DemoArgs) -> u8 {
    let topology = match load_topology(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshlift demo: {e}");
            return 2;
        }
    };
    let bin_dir = match lab::find_bin_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("meshlift demo: {e}");
            return 2;
        }
    };
    let (work_dir, temp) = match &args.workdir {
        Some(d) => (d.clone(), None),
        None => match tempfile::Builder::new().prefix("meshlift-demo-").tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("meshlift demo: cannot create a work directory: {e}");
                return 2;
            }
        },
    };
    let mut cfg = LabConfig::new(topology.clone(), &work_dir, bin_dir);
    cfg.image_bytes = args.image_mib.max(1) << 20;
    cfg.insecure = args.insecure;
    cfg.ipv6 = args.ipv6;
    if args.ipv6 {
        if let Err(e) = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)) {
            eprintln!("meshlift demo: --ipv6 needs IPv6 loopback (::1), which this host lacks ({e}); check `ip -6 addr show lo`");
            return 2;
        }
    }
    if args.golden {
        // The bad image fails exactly on the canaries the loop is told to use.
        let canaries = if args.bad_image { golden::safest_nodes(&topology, 2) } else { Vec::new() };
        cfg.golden_toml = Some(golden::config_toml(&canaries));
        cfg.bad_image_nodes = canaries;
    } else if args.bad_image {
        cfg.bad_image_nodes = pick_bad_nodes(&topology);
    }
    let json = args.json;
    let sites: BTreeSet<&str> = topology.nodes.iter().map(|n| n.site_name.as_str()).collect();
    say(
        json,
        format!(
            "meshlift demo: {} nodes on {} sites ({} POP nodes); work dir {}",
            topology.nodes.len(),
            sites.len(),
            topology.nodes.iter().filter(|n| n.pop_node).count(),
            work_dir.display()
        ),
    );
    if !cfg.bad_image_nodes.is_empty() {
        say(
            json,
            format!("--bad-image: v2's post-boot check will fail on {}", cfg.bad_image_nodes.join(", ")),
        );
    }
    say(
        json,
        if args.insecure {
            "starting the controller and one minion process per node (factory image v1), insecure: plain text, no keys..."
        } else {
            "starting the controller and one minion process per node (factory image v1), CurveZMQ on..."
        },
    );
    if args.ipv6 {
        say(json, "--ipv6: controller, relays, tracker, seeder, HTTP and the minions' swarm all on ::1");
    }
    let lab = match Lab::start(cfg).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("meshlift demo: {e}");
            if let Some(t) = temp {
                eprintln!("logs kept in {}", t.keep().display());
            }
            return 1;
        }
    };
    let result = if args.golden {
        golden::run(&lab, json, args.bad_image).await
    } else {
        run_upgrade(&lab, json).await
    };
    let code = match result {
        Ok(summary) => {
            if json {
                println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            } else {
                print_summary(&summary);
                if let Some(g) = &summary.golden {
                    golden::print(g);
                }
            }
            let ok = match &summary.golden {
                Some(g) => g.passed,
                None => {
                    summary.collateral_isolation_s == 0.0
                        && summary.failed == 0
                        && (args.bad_image || summary.fell_back == 0)
                        && summary.succeeded + summary.fell_back == summary.nodes
                }
            };
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("meshlift demo: {e}");
            1
        }
    };
    if args.keep {
        say(false, tour(&lab));
        let _ = tokio::signal::ctrl_c().await;
    }
    lab.stop().await;
    match temp {
        Some(t) if code != 0 || args.keep => {
            let kept = t.keep();
            say(json, format!("logs kept in {}", kept.display()));
        }
        _ => {}
    }
    code
}

fn load_topology(args: &DemoArgs) -> Result<Topology, String> {
    if let Some(n) = args.nodes {
        if n < 2 {
            return Err("--nodes must be at least 2".into());
        }
        return Ok(meshlift_meshsim::generate_mesh(n, 1));
    }
    let text = match &args.topology {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read topology {}: {e}", p.display()))?
        }
        None => SAMPLE_TOPOLOGY.to_string(),
    };
    Topology::from_json(&text).map_err(|e| format!("invalid topology: {e}"))
}

/// Two non-POP nodes, deterministic: the v2 post-boot check fails there.
fn pick_bad_nodes(t: &Topology) -> Vec<String> {
    let mut names: Vec<&str> = t.nodes.iter().filter(|n| !n.pop_node).map(|n| n.name.as_str()).collect();
    names.sort();
    names.iter().rev().step_by(3).take(2).map(|s| s.to_string()).collect()
}

async fn run_upgrade(lab: &Lab, json: bool) -> Result<Summary, String> {
    say(json, format!("adding image v2 ({}) to the controller...", lab.v2_path.display()));
    let ack = lab.add_image(&lab.v2_path).await.map_err(|e| e.to_string())?;
    if !ack.success {
        return Err(format!("image add refused: {}", ack.message));
    }
    say(json, format!("  {}", ack.message));
    let image = lab.stored_image(lab::V2).await.map_err(|e| e.to_string())?;
    let image_bytes = image.size;

    let id = format!("demo-{}", std::process::id());
    let req = lab::full_upgrade_request(&id, &image.name, 90);
    lab.submit(req).await.map_err(|e| e.to_string())?;
    say(json, format!("full upgrade {id} accepted: prepare over the swarm, then commit in planned batches"));

    let total = lab.cfg.topology.nodes.len() as u64;
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let start = Instant::now();
    let mut commit_started: Option<Instant> = None;
    let mut batches = BatchLog::default();
    let mut tally = TransferTally::default();
    let mut last_line = String::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let final_dump = loop {
        let dump = lab.state().await.map_err(|e| e.to_string())?;
        if let Ok(st) = lab.node_status().await {
            tally.observe(&st);
        }
        batches.observe(&dump);
        if let Some(cur) = &dump.cur_req {
            if cur.stage == UpgradeReqType::CommitUpgrade {
                commit_started.get_or_insert_with(Instant::now);
            }
            let stage = if cur.stage == UpgradeReqType::CommitUpgrade { "commit" } else { "prepare" };
            let states: Vec<String> = dump
                .cur_batch
                .iter()
                .map(|n| match n.progress_ppm {
                    Some(p) if n.state == UpgradeStatusType::DownloadingImage => {
                        format!("{} {}%", n.node, p / 10_000)
                    }
                    _ => format!("{} {}", n.node, n.state.as_str()),
                })
                .collect();
            let line = format!("{stage} batch {}: {}", dump.cur_batch_index, states.join(", "));
            bar.set_message(line.clone());
            if bar.is_hidden() && line != last_line && !json {
                eprintln!("  {line}");
            }
            last_line = line;
        }
        let done = dump
            .outcomes
            .iter()
            .filter(|o| o.request_id == id && o.stage == UpgradeReqType::CommitUpgrade)
            .count()
            + dump
                .outcomes
                .iter()
                .filter(|o| {
                    o.request_id == id
                        && o.stage == UpgradeReqType::PrepareUpgrade
                        && o.outcome != OutcomeKind::Succeeded
                })
                .count();
        bar.set_position(done as u64);
        if dump.finished_reqs.iter().any(|f| f.request_id == id) {
            break dump;
        }
        if Instant::now() > deadline {
            return Err(format!("request {id} did not finish within 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    bar.finish_and_clear();
    let end = Instant::now();
    let prepare_s = commit_started.unwrap_or(end).duration_since(start).as_secs_f64();
    let commit_s = commit_started.map(|c| end.duration_since(c).as_secs_f64()).unwrap_or(0.0);

    // One outcome per node: the COMMIT one if the node got that far, else the PREPARE one.
    let mut outcomes: BTreeMap<String, NodeResult> = BTreeMap::new();
    for stage in [UpgradeReqType::PrepareUpgrade, UpgradeReqType::CommitUpgrade] {
        for o in final_dump.outcomes.iter().filter(|o| o.request_id == id && o.stage == stage) {
            if stage == UpgradeReqType::PrepareUpgrade && o.outcome == OutcomeKind::Succeeded {
                outcomes
                    .entry(o.node.clone())
                    .or_insert(NodeResult { outcome: "prepared".into(), reason: String::new() });
                continue;
            }
            outcomes.insert(
                o.node.clone(),
                NodeResult { outcome: o.outcome.as_str().into(), reason: o.reason.clone() },
            );
        }
    }
    let count = |k: &str| outcomes.values().filter(|r| r.outcome == k).count();
    let succeeded = count("succeeded");
    let fell_back = count("fell_back");
    let failed = count("failed") + count("aborted") + count("prepared");
    let skipped = outcomes.len() - succeeded - fell_back - failed;

    let upload = lab.controller_upload(&tally).await;
    let controller_upload_bytes = upload.total();
    let peer_bytes = upload.peer_bytes(&tally);
    let isolation = lab.mesh.isolation();
    Ok(Summary {
        nodes: lab.cfg.topology.nodes.len(),
        address_family: if lab.cfg.ipv6 { "ipv6" } else { "ipv4" },
        succeeded,
        fell_back,
        failed,
        skipped,
        batches: batches.batches.into_values().map(|s| s.into_iter().collect()).collect(),
        collateral_isolation_s: (isolation.total_s * 1000.0).round() / 1000.0,
        isolated_nodes: isolation.per_node.clone(),
        image_bytes,
        controller_upload_bytes,
        peer_bytes,
        prepare_s: (prepare_s * 10.0).round() / 10.0,
        commit_s: (commit_s * 10.0).round() / 10.0,
        outcomes,
        request_id: id,
        workdir: lab.cfg.work_dir.display().to_string(),
        golden: None,
    })
}

fn print_summary(s: &Summary) {
    println!();
    println!("== meshlift demo summary ({})", s.request_id);
    println!("commit batches ({}):", s.batches.len());
    for (i, b) in s.batches.iter().enumerate() {
        println!("  {:>2}. {}", i + 1, b.join(", "));
    }
    println!("outcomes:");
    for (node, r) in &s.outcomes {
        if r.reason.is_empty() {
            println!("  {node:<14} {}", r.outcome);
        } else {
            println!("  {node:<14} {:<12} {}", r.outcome, r.reason);
        }
    }
    println!(
        "nodes {}: {} succeeded, {} fell back, {} failed, {} skipped",
        s.nodes, s.succeeded, s.fell_back, s.failed, s.skipped
    );
    println!("time: prepare {:.1} s, commit {:.1} s", s.prepare_s, s.commit_s);
    let net = if s.address_family == "ipv6" { "IPv6 (::1)" } else { "IPv4 (127.0.0.1)" };
    println!("network: {net} for the controller, the swarm, the tracker and HTTP");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "bytes: image {:.1} MiB; controller sent {:.1} MiB ({:.2}× the image); peers exchanged {:.1} MiB",
        mib(s.image_bytes),
        mib(s.controller_upload_bytes),
        if s.image_bytes > 0 { s.controller_upload_bytes as f64 / s.image_bytes as f64 } else { 0.0 },
        mib(s.peer_bytes)
    );
    println!("collateral isolation: {:.3} s (must be 0)", s.collateral_isolation_s);
    for (node, secs) in &s.isolated_nodes {
        println!("  {node} isolated for {secs:.3} s");
    }
}

fn tour(lab: &Lab) -> String {
    let exports: String =
        lab.cli_env().iter().map(|(k, v)| format!("  export {k}={}\n", shell_word(v))).collect();
    let keys = match lab.keys() {
        Some(_) => "  meshlift node keys\n",
        None => "",
    };
    // The lab's own admin token: this is a local demo; a real controller's tokens come from
    // `meshlift token new`, one per person or system.
    let token = lab.api_token(meshlift_meshsim::lab::LAB_OPERATOR).unwrap_or("");
    let dashboard = format!(
        "\nDashboard: {url}/  (paste the token {token})\n  \
         curl -s -H 'Authorization: Bearer {token}' {url}/api/v1/state\n",
        url = lab.http_url()
    );
    format!(
        "\nThe mesh keeps running (Ctrl-C stops everything). Try, in another shell:\n  \
         export PATH={}:$PATH\n\
         {exports}  \
         meshlift status\n  \
         meshlift image list\n  \
         meshlift upgrade state\n  \
         meshlift upgrade network commit --dry-run\n\
         {keys}  \
         curl -s {} | grep meshlift_node_upgrade_state\n  \
         curl -s {}    # meshsim: collateral isolation\n\
         {dashboard}",
        shell_word(&lab.cfg.bin_dir.display().to_string()),
        lab.metrics_url(),
        lab.meshsim_metrics_url()
    )
}

/// `s` as one shell word: unchanged when it is plain, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:+=@,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn exports_survive_a_shell() {
        assert_eq!(shell_word("tcp://127.0.0.1:20001"), "tcp://127.0.0.1:20001");
        assert_eq!(
            shell_word("/tmp/meshlift-demo-x/keys/controller.pub"),
            "/tmp/meshlift-demo-x/keys/controller.pub"
        );
        assert_eq!(shell_word("/tmp/a b/it's"), "'/tmp/a b/it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
