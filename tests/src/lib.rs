//! Shared harness of the end-to-end tests: real controller and minion processes on 127.0.0.1,
//! driven through the operator protocol and the `meshlift` CLI. One scenario per test file.
//!
//! The binaries must be built first (`cargo build --bins`; `.ci/run` does it).

pub mod chaos;

use meshlift_meshsim::lab::{self, Lab, LabConfig};
use meshlift_protocol::transport;
use meshlift_protocol::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

pub use meshlift_meshsim::lab::{full_upgrade_request, metric_sum, BatchLog, V1, V2};

/// The sample mesh of the demo.
pub fn sample_topology() -> Topology {
    let text = std::fs::read_to_string(workspace_root().join("configs/topologies/sample.json"))
        .expect("configs/topologies/sample.json is part of the repository");
    Topology::from_json(&text).expect("the sample topology is valid")
}

/// A small topology: one POP, a relay and two leaves on separate sites, one two-node site.
pub fn small_topology() -> Topology {
    Topology::from_json(
        r#"{"name":"small","sites":[{"name":"P"},{"name":"R"},{"name":"L1"},{"name":"L2"}],
        "nodes":[
          {"name":"pop","node_type":2,"mac_addr":"02:00:00:00:01:01","pop_node":true,"status":2,"site_name":"P"},
          {"name":"relay","node_type":2,"mac_addr":"02:00:00:00:01:02","pop_node":false,"status":2,"site_name":"R"},
          {"name":"relay2","node_type":2,"mac_addr":"02:00:00:00:01:05","pop_node":false,"status":2,"site_name":"R"},
          {"name":"leaf1","node_type":1,"mac_addr":"02:00:00:00:01:03","pop_node":false,"status":2,"site_name":"L1"},
          {"name":"leaf2","node_type":1,"mac_addr":"02:00:00:00:01:04","pop_node":false,"status":2,"site_name":"L2"}],
        "links":[
          {"name":"pop-relay","a_node_name":"pop","z_node_name":"relay","link_type":1,"is_alive":true},
          {"name":"relay-relay2","a_node_name":"relay","z_node_name":"relay2","link_type":2,"is_alive":true},
          {"name":"relay-leaf1","a_node_name":"relay","z_node_name":"leaf1","link_type":1,"is_alive":true},
          {"name":"relay2-leaf2","a_node_name":"relay2","z_node_name":"leaf2","link_type":1,"is_alive":true}]}"#,
    )
    .expect("the small topology is valid")
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

/// Directory of the workspace binaries.
pub fn bin_dir() -> PathBuf {
    lab::find_bin_dir().expect("workspace binaries are built (cargo build --bins)")
}

/// A test's work directory: removed when the test passes, kept (and named on stderr) when it
/// fails, so the controller's and every node's logs can be read.
pub struct WorkDir(PathBuf);

impl WorkDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Keep the directory (a failed chaos seed's logs) and return its path.
    pub fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed; logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A lab config in a fresh temporary directory.
pub fn lab_config(topology: Topology) -> (LabConfig, WorkDir) {
    let dir = tempfile::Builder::new().prefix("meshlift-e2e-").tempdir().expect("temp dir").keep();
    eprintln!("lab work dir: {}", dir.display());
    let cfg = LabConfig::new(topology, &dir, bin_dir());
    (cfg, WorkDir(dir))
}

/// Start a lab and add v2; returns the lab and v2's stored name (what requests refer to).
pub async fn start_with_v2(cfg: LabConfig) -> (Lab, String) {
    let lab = Lab::start(cfg).await.expect("lab starts");
    let ack = lab.add_image(&lab.v2_path).await.expect("controller answers");
    assert!(ack.success, "v2 accepted: {}", ack.message);
    let image = lab.stored_image(V2).await.expect("v2 is in the store").name;
    (lab, image)
}

/// Run the `meshlift` CLI against the lab's controller, as the lab's admin operator.
pub fn cli(lab: &Lab, args: &[&str]) -> Output {
    lab.cli().args(args).output().expect("meshlift runs")
}

/// A raw libzmq DEALER on the lab's controller socket `endpoint`, authenticated with the CURVE key
/// pair in `key` (a `meshlift keygen --curve` secret key file) unless `key` is `None` (plain
/// text), with routing id `identity`. For tests that speak the wire protocol by hand.
pub fn raw_dealer(
    endpoint: &str,
    key: Option<&std::path::Path>,
    server: Option<transport::CurvePublicKey>,
    identity: &str,
) -> zmq::Socket {
    let s = transport::context().socket(zmq::DEALER).expect("socket");
    if let (Some(key), Some(server)) = (key, server) {
        let keys = transport::CurveKeyPair::load(key).expect("key file");
        transport::ClientSecurity::Curve { keys, server }.apply(&s).expect("CURVE options");
    }
    s.set_identity(identity.as_bytes()).expect("identity");
    s.set_rcvtimeo(10_000).expect("rcvtimeo");
    s.set_linger(0).expect("linger");
    s.connect(endpoint).expect("connect");
    s
}

/// Send one envelope's bytes on a raw dealer and wait (10 s at most) for the reply.
pub fn raw_send_recv(s: &zmq::Socket, payload: &[u8]) -> Envelope {
    s.send_multipart([&b"test"[..], payload], 0).expect("send");
    let reply = s.recv_multipart(0).expect("a reply within 10 s");
    decode(reply.last().expect("a frame"), MAX_FRAME_DEFAULT).expect("the controller's reply decodes")
}

/// The controller's journal, read from its database (SQLite WAL lets a reader in beside it).
pub fn journal(lab: &Lab) -> Vec<meshlift_controller::store::JournalEntry> {
    let db = lab.cfg.work_dir.join("controller").join("state.db");
    let store = meshlift_controller::store::Store::open(&db).expect("state.db opens");
    store.journal(0, 100_000).expect("journal reads")
}

/// The pid of the lab's controller process (found by its config path on its command line).
pub fn controller_pid(lab: &Lab) -> u32 {
    let needle = lab.controller_config_path().display().to_string();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("meshlift-controller") && cmd.contains(&needle) {
            return pid;
        }
    }
    panic!("no controller process with config {needle}");
}

/// Resident memory of a process, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Outcomes of one request and stage, by node.
pub fn outcomes(
    dump: &UpgradeStateDump,
    id: &str,
    stage: UpgradeReqType,
) -> std::collections::BTreeMap<String, NodeOutcome> {
    dump.outcomes
        .iter()
        .filter(|o| o.request_id == id && o.stage == stage)
        .map(|o| (o.node.clone(), o.clone()))
        .collect()
}

/// Wait for a request to finish, logging commit batches.
pub async fn finish(lab: &Lab, id: &str, log: &mut BatchLog) -> UpgradeStateDump {
    lab.wait_finished(id, Duration::from_secs(240), |d| log.observe(d)).await.expect("request finishes")
}

/// Poll the controller's state until `done` holds for a dump (returned); panics with `what` once
/// `timeout` has passed.
pub async fn wait_state(
    lab: &Lab,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&UpgradeStateDump) -> bool,
) -> UpgradeStateDump {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let d = lab.state().await.expect("state");
        if done(&d) {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `promtool check metrics` on a Prometheus exposition; panics with promtool's words if invalid.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; .ci/setup installs it)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
