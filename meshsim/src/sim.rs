//! The async shell: real minion processes, relays and link-view files around the pure
//! [`MeshModel`].

use crate::isolation::IsolationReport;
use crate::model::{Change, Effect, MeshEvent, MeshModel, ModelError, NodeState, RadioView};
use crate::node_config::{NodeConfig, NodeTemplate, RenderError};
use crate::relay::{Relay, RelayCounts};
use crate::supervisor::{signal_group, supervise, Control};
use meshlift_protocol::{Node, NodeStatus, Topology};
use nix::sys::signal::Signal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Exit code with which a minion asks to be rebooted (a commit or a fallback).
pub const REBOOT_EXIT_CODE: i32 = 10;
/// Where the demo's controller listens for minions.
pub const DEFAULT_CONTROLLER_ENDPOINT: &str = "tcp://127.0.0.1:7007";

/// Per-node adjustment of the rendered minion config (e.g. a different board for some nodes).
pub type Customize = Arc<dyn Fn(&Node, &mut NodeConfig) + Send + Sync>;

/// Everything [`MeshSim::start`] needs.
#[derive(Clone)]
pub struct MeshConfig {
    pub topology: Topology,
    /// The `meshlift-minion` binary (or a stand-in taking `--config <file>`).
    pub minion_bin: PathBuf,
    /// Per node: `<work_dir>/<node>/{minion.toml, minion.log, data/}`.
    pub work_dir: PathBuf,
    /// The real controller endpoint the relays forward to (`tcp://host:port`).
    pub controller_endpoint: String,
    /// Time from a node's exit to its restart.
    pub boot_delay: Duration,
    /// Exit code meaning "reboot requested"; any other exit counts as a crash.
    pub reboot_exit_code: i32,
    pub node_template: NodeTemplate,
    pub customize: Option<Customize>,
}

impl MeshConfig {
    /// Defaults: controller at [`DEFAULT_CONTROLLER_ENDPOINT`], 2 s boot delay, exit code 10,
    /// status every 5 s, empty template otherwise.
    pub fn new(
        topology: Topology,
        minion_bin: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
    ) -> MeshConfig {
        MeshConfig {
            topology,
            minion_bin: minion_bin.into(),
            work_dir: work_dir.into(),
            controller_endpoint: DEFAULT_CONTROLLER_ENDPOINT.to_string(),
            boot_delay: Duration::from_secs(2),
            reboot_exit_code: REBOOT_EXIT_CODE,
            node_template: NodeTemplate { status_interval_s: 5, ..NodeTemplate::default() },
            customize: None,
        }
    }
}

impl std::fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("topology", &self.topology.name)
            .field("minion_bin", &self.minion_bin)
            .field("work_dir", &self.work_dir)
            .field("controller_endpoint", &self.controller_endpoint)
            .field("boot_delay", &self.boot_delay)
            .field("reboot_exit_code", &self.reboot_exit_code)
            .field("node_template", &self.node_template)
            .field("customize", &self.customize.is_some())
            .finish()
    }
}

/// Why a meshsim call failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The caller named a node or link the topology does not have.
    #[error(transparent)]
    Unknown(#[from] ModelError),
    /// Work dir, config or log could not be written: check permissions and free space.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller's template or customization produced an unrenderable config.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Two node names map to one directory after replacing characters unsafe in file names.
    #[error("nodes {a:?} and {b:?} would share the directory {dir:?}")]
    DirCollision { a: String, b: String, dir: String },
    /// The fault needs a running process and the node has none (rebooting or powered off).
    #[error("node {0:?} has no running process")]
    NotRunning(String),
    /// A signal could not be delivered (the process vanished in between).
    #[error("cannot signal node {node:?}: {source}")]
    Signal {
        node: String,
        #[source]
        source: nix::Error,
    },
    /// A wait helper gave up.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
}

/// Process counters of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// Process starts, the first boot included.
    pub starts: u64,
    /// Exits with the reboot exit code.
    pub reboots: u64,
    /// Other exits (crashes), and failures to start the process.
    pub crashes: u64,
    /// Kills by fault injection (power cycles, power cuts during flash, power-offs).
    pub kills: u64,
}

impl NodeStats {
    /// Starts after the first one, whatever caused them.
    pub fn restarts(&self) -> u64 {
        self.starts.saturating_sub(1)
    }
}

/// What the demo prints at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeshSummary {
    pub isolation: IsolationReport,
    pub nodes: BTreeMap<String, NodeStats>,
}

/// State shared between the API and the supervisors.
pub(crate) struct Shared {
    model: Mutex<MeshModel>,
    relays: BTreeMap<String, Relay>,
    pub(crate) nodes: BTreeMap<String, NodeHandle>,
    events: broadcast::Sender<MeshEvent>,
    pub(crate) minion_bin: PathBuf,
    pub(crate) boot_delay: Duration,
    pub(crate) reboot_exit_code: i32,
}

pub(crate) struct NodeHandle {
    control: mpsc::UnboundedSender<Control>,
    /// Group leader pid of the running process, 0 when none.
    pub(crate) pid: AtomicU32,
    pub(crate) stats: Mutex<NodeStats>,
    pub(crate) node_dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) config_path: PathBuf,
    pub(crate) log_path: PathBuf,
    radio_path: PathBuf,
}

impl Shared {
    /// Feed one change to the model and carry out its effects, in order, under the model lock so
    /// that link-view files and relay states never go back in time.
    pub(crate) fn apply(&self, change: Change) {
        if let Err(e) = self.try_apply(change) {
            // Supervisors only send changes for their own (known) node.
            tracing::error!(error = %e, "meshsim bug: change refused");
        }
    }

    fn try_apply(&self, change: Change) -> Result<(), ModelError> {
        let mut model = self.model.lock().expect("model lock is never poisoned: the model does not panic");
        let effects = model.handle(change, Instant::now())?;
        self.carry_out(effects);
        Ok(())
    }

    fn carry_out(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::WriteRadio { node, view } => {
                    if let Some(handle) = self.nodes.get(&node) {
                        if let Err(e) = write_radio(&handle.radio_path, view) {
                            tracing::warn!(%node, error = %e, "cannot write link view");
                        }
                    }
                }
                Effect::SetPath { node, has_path } => {
                    if let Some(relay) = self.relays.get(&node) {
                        relay.set_path(has_path);
                    }
                }
                Effect::Event(event) => {
                    tracing::debug!(?event, "mesh event");
                    // No subscribers is fine.
                    let _ = self.events.send(event);
                }
            }
        }
    }
}

/// Reads collateral isolation of a running mesh; see [`MeshSim::isolation_probe`].
#[derive(Clone)]
pub struct IsolationProbe(Arc<Shared>);

impl IsolationProbe {
    pub fn report(&self) -> IsolationReport {
        self.0
            .model
            .lock()
            .expect("model lock is never poisoned: the model does not panic")
            .isolation(Instant::now())
    }
}

/// A running virtual mesh. Dropping it kills every node process (and its process group).
pub struct MeshSim {
    shared: Arc<Shared>,
    supervisors: Vec<JoinHandle<()>>,
    topology: Topology,
}

impl MeshSim {
    /// Prepare every node's directory, config and relay, then start one process per node whose
    /// topology status is online (offline nodes start powered off).
    pub async fn start(config: MeshConfig) -> Result<MeshSim, MeshError> {
        let MeshConfig {
            topology,
            minion_bin,
            work_dir,
            controller_endpoint,
            boot_delay,
            reboot_exit_code,
            node_template,
            customize,
        } = config;
        create_dir(&work_dir)?;

        let mut relays = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        let mut receivers = Vec::new();
        let mut dirs: BTreeMap<String, String> = BTreeMap::new();
        for node in &topology.nodes {
            let dir_name = safe_dir_name(&node.name);
            if let Some(other) = dirs.insert(dir_name.clone(), node.name.clone()) {
                return Err(MeshError::DirCollision { a: other, b: node.name.clone(), dir: dir_name });
            }
            let node_dir = work_dir.join(&dir_name);
            let data_dir = node_dir.join("data");
            create_dir(&data_dir)?;
            let relay = Relay::bind(&controller_endpoint)
                .await
                .map_err(|source| MeshError::Io { path: "relay listener (loopback)".into(), source })?;
            let mut node_config = NodeConfig {
                name: node.name.clone(),
                mac: node.mac_addr.clone(),
                data_dir: data_dir.clone(),
                controller: relay.endpoint(),
                board: node_template.board.clone(),
                trusted_keys: node_template.trusted_keys.clone(),
                factory_image: node_template.factory_image.clone(),
                radio_file: data_dir.join("radio.json"),
                status_interval_s: node_template.status_interval_s,
                controller_key: node_template.controller_key.clone(),
                key_file: node_template.key_dir.as_ref().map(|d| d.join(format!("{dir_name}.key"))),
                insecure: node_template.insecure,
                reboot: "exit".into(),
                extra_toml: node_template.extra_toml.clone(),
            };
            if let Some(customize) = &customize {
                customize(node, &mut node_config);
            }
            let config_path = node_dir.join("minion.toml");
            write_file(&config_path, node_config.render()?.as_bytes())?;
            let (control, rx) = mpsc::unbounded_channel();
            receivers.push((node.name.clone(), rx, node.status != NodeStatus::Offline));
            nodes.insert(
                node.name.clone(),
                NodeHandle {
                    control,
                    pid: AtomicU32::new(0),
                    stats: Mutex::new(NodeStats::default()),
                    log_path: node_dir.join("minion.log"),
                    radio_path: node_config.radio_file.clone(),
                    node_dir,
                    data_dir,
                    config_path,
                },
            );
            relays.insert(node.name.clone(), relay);
        }

        let (model, initial) = MeshModel::new(topology.clone(), Instant::now());
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            relays,
            nodes,
            events,
            minion_bin,
            boot_delay,
            reboot_exit_code,
        });
        shared.carry_out(initial);
        let supervisors = receivers
            .into_iter()
            .map(|(name, rx, powered)| tokio::spawn(supervise(shared.clone(), name, rx, powered)))
            .collect();
        Ok(MeshSim { shared, supervisors, topology })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Events from now on: node up/down (with the cause: reboot, crash, kill), hang/resume, link
    /// up/down, path lost/restored. A slow subscriber misses the oldest events (`Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<MeshEvent> {
        self.shared.events.subscribe()
    }

    pub fn node_state(&self, node: &str) -> Option<NodeState> {
        self.model().node_state(node)
    }

    pub fn stats(&self, node: &str) -> Option<NodeStats> {
        self.shared.nodes.get(node).map(|h| *h.stats.lock().expect("node stats lock is never poisoned"))
    }

    /// Restarts after the first start, whatever the cause (0 for an unknown node).
    pub fn restarts(&self, node: &str) -> u64 {
        self.stats(node).map(|s| s.restarts()).unwrap_or(0)
    }

    /// Exits with the reboot exit code (0 for an unknown node).
    pub fn reboots(&self, node: &str) -> u64 {
        self.stats(node).map(|s| s.reboots).unwrap_or(0)
    }

    /// Exits other than reboots and fault-injected kills (0 for an unknown node).
    pub fn crashes(&self, node: &str) -> u64 {
        self.stats(node).map(|s| s.crashes).unwrap_or(0)
    }

    /// Pid of the node's running process (its process group id too).
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.shared.nodes.get(node).map(|h| h.pid.load(Ordering::SeqCst)).filter(|&p| p != 0)
    }

    pub fn has_path(&self, node: &str) -> Option<bool> {
        self.model().has_path(node)
    }

    pub fn link_is_up(&self, link: &str) -> Option<bool> {
        self.model().link_is_up(link)
    }

    /// The link view last written for `node`.
    pub fn radio_view(&self, node: &str) -> RadioView {
        self.model().radio_view(node)
    }

    /// Nodes running without a path right now.
    pub fn isolated_nodes(&self) -> BTreeSet<String> {
        self.model().isolated_nodes()
    }

    /// Collateral isolation so far, intervals still open counted up to now.
    pub fn isolation(&self) -> IsolationReport {
        self.model().isolation(Instant::now())
    }

    /// A cheap handle that reads the isolation figures from another task (a metrics endpoint).
    pub fn isolation_probe(&self) -> IsolationProbe {
        IsolationProbe(self.shared.clone())
    }

    pub fn summary(&self) -> MeshSummary {
        let nodes =
            self.topology.nodes.iter().filter_map(|n| Some((n.name.clone(), self.stats(&n.name)?))).collect();
        MeshSummary { isolation: self.isolation(), nodes }
    }

    /// `<work_dir>/<node>/data`: the node's slots, boot env, state and radio file.
    pub fn data_dir(&self, node: &str) -> Option<&Path> {
        self.shared.nodes.get(node).map(|h| h.data_dir.as_path())
    }

    /// `<work_dir>/<node>/minion.log`: the node's stdout and stderr across all boots.
    pub fn log_path(&self, node: &str) -> Option<&Path> {
        self.shared.nodes.get(node).map(|h| h.log_path.as_path())
    }

    pub fn config_path(&self, node: &str) -> Option<&Path> {
        self.shared.nodes.get(node).map(|h| h.config_path.as_path())
    }

    /// `tcp://127.0.0.1:<port>` (or `tcp://[::1]:<port>` for an IPv6 controller) of the node's
    /// in-band relay (what its config names as controller).
    pub fn relay_endpoint(&self, node: &str) -> Option<String> {
        self.shared.relays.get(node).map(Relay::endpoint)
    }

    pub fn relay_stats(&self, node: &str) -> Option<RelayCounts> {
        self.shared.relays.get(node).map(Relay::stats)
    }

    /// Power-cycle: SIGKILL the node's process group now; it restarts after the boot delay.
    pub fn kill_node(&self, node: &str) -> Result<(), MeshError> {
        self.send(node, Control::Kill)
    }

    /// Power off: SIGKILL and keep the node down until [`MeshSim::power_on`].
    pub fn power_off(&self, node: &str) -> Result<(), MeshError> {
        self.send(node, Control::PowerOff)
    }

    /// Power on a node that was powered off (or offline in the topology); it boots after the
    /// boot delay. No effect on a running node.
    pub fn power_on(&self, node: &str) -> Result<(), MeshError> {
        self.send(node, Control::PowerOn)
    }

    /// Freeze the node's agent (SIGSTOP to its process group). Its radio keeps forwarding, so
    /// neighbours keep their paths; the controller hears nothing from it.
    pub fn hang_node(&self, node: &str) -> Result<(), MeshError> {
        self.signal(node, Signal::SIGSTOP)?;
        self.shared.try_apply(Change::NodeHung(node.to_string()))?;
        Ok(())
    }

    /// Thaw a node frozen by [`MeshSim::hang_node`].
    pub fn resume_node(&self, node: &str) -> Result<(), MeshError> {
        self.signal(node, Signal::SIGCONT)?;
        self.shared.try_apply(Change::NodeResumed(node.to_string()))?;
        Ok(())
    }

    /// Cut a link whatever its ends do (rain fade, a pulled cable).
    pub fn cut_link(&self, link: &str) -> Result<(), MeshError> {
        Ok(self.shared.try_apply(Change::CutLink(link.to_string()))?)
    }

    /// Undo a cut; a wireless link the topology lists as not alive comes up too.
    pub fn restore_link(&self, link: &str) -> Result<(), MeshError> {
        Ok(self.shared.try_apply(Change::RestoreLink(link.to_string()))?)
    }

    /// Power cut during a flash: wait until a file under `<data>/slots/` grows (the flasher is
    /// writing the standby slot), then SIGKILL the node. Call it once the node has finished its
    /// first boot (slot A filled from the factory image), before asking for the download.
    ///
    /// Polls every 5 ms: a flash that starts and ends within one poll is missed and the kill comes
    /// after it; use an image large enough to take longer.
    pub async fn kill_during_flash(&self, node: &str, timeout: Duration) -> Result<(), MeshError> {
        let slots =
            self.data_dir(node).ok_or_else(|| ModelError::UnknownNode(node.to_string()))?.join("slots");
        let baseline = slot_sizes(&slots);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = slot_sizes(&slots);
            let grew = now.iter().any(|(name, &size)| size > baseline.get(name).copied().unwrap_or(0));
            if grew {
                return self.kill_node(node);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MeshError::Timeout { what: format!("{node} to start flashing"), after: timeout });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until `node` is in `state` (polling; for tests and the demo).
    pub async fn wait_for_state(
        &self,
        node: &str,
        state: NodeState,
        timeout: Duration,
    ) -> Result<(), MeshError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.node_state(node) {
                None => return Err(ModelError::UnknownNode(node.to_string()).into()),
                Some(s) if s == state => return Ok(()),
                Some(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MeshError::Timeout { what: format!("{node} to be {state:?}"), after: timeout });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Kill every node and wait for the supervisors to finish. After this no node process is
    /// left; link views show everything down.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        for handle in self.shared.nodes.values() {
            let _ = handle.control.send(Control::Stop);
        }
        for task in self.supervisors.drain(..) {
            let _ = task.await;
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, MeshModel> {
        self.shared.model.lock().expect("model lock is never poisoned: the model does not panic")
    }

    fn send(&self, node: &str, control: Control) -> Result<(), MeshError> {
        let handle = self.shared.nodes.get(node).ok_or_else(|| ModelError::UnknownNode(node.to_string()))?;
        // The supervisor only ends on Stop, which needs `self` by value or Drop.
        let _ = handle.control.send(control);
        Ok(())
    }

    fn signal(&self, node: &str, signal: Signal) -> Result<(), MeshError> {
        let pid = match self.shared.nodes.get(node) {
            None => return Err(ModelError::UnknownNode(node.to_string()).into()),
            Some(h) => h.pid.load(Ordering::SeqCst),
        };
        if pid == 0 {
            return Err(MeshError::NotRunning(node.to_string()));
        }
        signal_group(pid, signal).map_err(|source| MeshError::Signal { node: node.to_string(), source })
    }
}

impl Drop for MeshSim {
    /// Children must never outlive the simulation, even when it is dropped without `stop`, or by
    /// a panicking test: SIGKILL every process group now, synchronously, then abort the
    /// supervisors (whose `Child` handles also kill on drop).
    fn drop(&mut self) {
        for handle in self.shared.nodes.values() {
            let pid = handle.pid.swap(0, Ordering::SeqCst);
            if pid != 0 {
                let _ = signal_group(pid, Signal::SIGKILL);
            }
        }
        for task in &self.supervisors {
            task.abort();
        }
    }
}

fn write_radio(path: &Path, mut view: RadioView) -> std::io::Result<()> {
    view.updated_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let text = serde_json::to_vec(&view).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    // Rename is atomic: the minion never reads half a file.
    std::fs::rename(&tmp, path)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), MeshError> {
    std::fs::write(path, bytes).map_err(|source| MeshError::Io { path: path.to_path_buf(), source })
}

fn create_dir(path: &Path) -> Result<(), MeshError> {
    std::fs::create_dir_all(path).map_err(|source| MeshError::Io { path: path.to_path_buf(), source })
}

/// The file name meshsim uses for a node: its directory under the work dir, and the stem of its
/// key file under [`NodeTemplate::key_dir`]. Characters other than ASCII letters, digits, `.`,
/// `_` and `-` become `_`, so a name from an operator's file cannot escape a directory.
pub fn node_file_stem(name: &str) -> String {
    safe_dir_name(name)
}

/// Node names come from an operator's file: keep them from escaping the work dir.
fn safe_dir_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

fn slot_sizes(dir: &Path) -> BTreeMap<std::ffi::OsString, u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries.filter_map(Result::ok).filter_map(|e| Some((e.file_name(), e.metadata().ok()?.len()))).collect()
}

#[cfg(test)]
mod tests {
    use super::safe_dir_name;

    #[test]
    fn dir_names_cannot_escape_the_work_dir() {
        assert_eq!(safe_dir_name("../etc"), ".._etc");
        assert_eq!(safe_dir_name(".."), "_..");
        assert_eq!(safe_dir_name("a/b c"), "a_b_c");
        assert_eq!(safe_dir_name("pop-north.a"), "pop-north.a");
    }
}
