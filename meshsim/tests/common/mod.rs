//! Shared harness for meshsim's integration tests: a small topology, the fake node binary, and
//! polling helpers. Each test file uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use meshlift_meshsim::{MeshConfig, MeshSim, RadioView};
use meshlift_protocol::Topology;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// pop ─(wireless)─ ap ═(ethernet, site A)═ ap2 ─(wireless)─ leaf, plus a wireless link pop─leaf
/// that the file lists as not alive (a spare that needs `restore_link`).
pub const CHAIN: &str = r#"{
  "name": "chain",
  "nodes": [
    {"name": "pop",  "node_type": 2, "mac_addr": "02:00:00:00:00:01", "pop_node": true,  "status": 2, "site_name": "P"},
    {"name": "ap",   "node_type": 2, "mac_addr": "02:00:00:00:00:02", "pop_node": false, "status": 2, "site_name": "A"},
    {"name": "ap2",  "node_type": 2, "mac_addr": "02:00:00:00:00:03", "pop_node": false, "status": 2, "site_name": "A"},
    {"name": "leaf", "node_type": 1, "mac_addr": "02:00:00:00:00:04", "pop_node": false, "status": 2, "site_name": "L"}
  ],
  "links": [
    {"name": "link-pop-ap",    "a_node_name": "pop", "z_node_name": "ap",   "link_type": 1, "is_alive": true},
    {"name": "link-ap-ap2",    "a_node_name": "ap",  "z_node_name": "ap2",  "link_type": 2, "is_alive": true},
    {"name": "link-ap2-leaf",  "a_node_name": "ap2", "z_node_name": "leaf", "link_type": 1, "is_alive": true},
    {"name": "link-pop-leaf",  "a_node_name": "pop", "z_node_name": "leaf", "link_type": 1, "is_alive": false}
  ],
  "sites": [{"name": "P"}, {"name": "A"}, {"name": "L"}]
}"#;

pub const ALL: [&str; 4] = ["pop", "ap", "ap2", "leaf"];

pub fn fake_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim-fake-node"))
}

pub fn config(topology: &str, work: &TempDir, boot_delay: Duration) -> MeshConfig {
    let topology = Topology::from_json(topology).expect("test topology is valid");
    let mut config = MeshConfig::new(topology, fake_node(), work.path());
    config.boot_delay = boot_delay;
    config
}

/// Start the chain mesh and wait until every fake node has booted once.
pub async fn start_chain(boot_delay: Duration) -> (MeshSim, TempDir) {
    start_with(config_chain(boot_delay)).await
}

pub fn config_chain(boot_delay: Duration) -> (MeshConfig, TempDir) {
    let work = TempDir::new().unwrap();
    (config(CHAIN, &work, boot_delay), work)
}

pub async fn start_with((config, work): (MeshConfig, TempDir)) -> (MeshSim, TempDir) {
    let names: Vec<String> = config.topology.nodes.iter().map(|n| n.name.clone()).collect();
    let sim = MeshSim::start(config).await.unwrap();
    for name in &names {
        wait_until(&format!("{name} booted"), Duration::from_secs(10), || boots(&sim, name) >= 1).await;
    }
    (sim, work)
}

/// Poll `cond` every 5 ms; panic with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many times the fake node has started (lines in its boots.log).
pub fn boots(sim: &MeshSim, node: &str) -> usize {
    let path = sim.data_dir(node).unwrap().join("boots.log");
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// Tell a fake node to do something (written atomically so it never reads half a command).
pub fn command(sim: &MeshSim, node: &str, command: &str) {
    let dir = sim.data_dir(node).unwrap();
    let tmp = dir.join("command.tmp");
    std::fs::write(&tmp, command).unwrap();
    std::fs::rename(tmp, dir.join("command")).unwrap();
}

/// The node's link view as its radio would read it from disk.
pub fn radio_file(sim: &MeshSim, node: &str) -> RadioView {
    let text = std::fs::read_to_string(sim.data_dir(node).unwrap().join("radio.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Whether `link` is up in `node`'s radio file.
pub fn radio_says(sim: &MeshSim, node: &str, link: &str) -> bool {
    radio_file(sim, node)
        .links
        .iter()
        .find(|l| l.name == link)
        .unwrap_or_else(|| panic!("{link} not in {node}'s view"))
        .up
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised command name, is the state.
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The state letter of a live process (`T` when stopped).
pub fn proc_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().next().map(str::to_string)
}
