//! Shared harness of the end-to-end tests: real controller and minion processes on 127.0.0.1,
//! driven through the operator protocol and the `meshlift` CLI. One scenario per test file.
//!
//! The binaries must be built first (`cargo build --bins`; `.ci/run` does it).

use meshlift_meshsim::lab::{self, Lab, LabConfig};
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

/// Run the `meshlift` CLI against the lab's controller.
pub fn cli(lab: &Lab, args: &[&str]) -> Output {
    std::process::Command::new(bin_dir().join("meshlift"))
        .args(args)
        .env("MESHLIFT_CONTROLLER", lab.app_endpoint())
        .output()
        .expect("meshlift runs")
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
