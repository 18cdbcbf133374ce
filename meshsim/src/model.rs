//! The mesh as hardware sees it, without any I/O: which nodes are powered, which radio links are
//! up, which nodes have an in-band path to a POP, and how long running nodes spent cut off.
//!
//! Call order: build with [`MeshModel::new`], then feed every change with [`MeshModel::handle`]
//! and carry out the returned [`Effect`]s in order. `now` must never go backwards between calls.
//! The async shell ([`crate::MeshSim`]) owns the clock and the processes; tests drive this core
//! with a fake clock.

use crate::isolation::{IsolationMeter, IsolationReport};
use meshlift_protocol::{LinkType, Topology};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

/// What the hardware knows about a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Process not running: never started, rebooting, crashed and waiting for its boot delay, or
    /// powered off. Its radio links are down.
    Down,
    /// Process running. Its links come up with it.
    Up,
    /// Process frozen with SIGSTOP. The radio and the data plane keep working (only the agent is
    /// stuck), so links and the in-band path stay as they were; what the controller sees is a
    /// silent node.
    Hung,
}

impl NodeState {
    /// Whether the node's radio is on: its process exists (running or frozen).
    pub fn is_powered(self) -> bool {
        !matches!(self, NodeState::Down)
    }
}

/// One input to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The node's process was started.
    NodeUp(String),
    /// The node's process exited, was killed or the node was powered off, and why.
    NodeDown(String, DownCause),
    /// The node's process was frozen (SIGSTOP).
    NodeHung(String),
    /// The node's process was thawed (SIGCONT).
    NodeResumed(String),
    /// A fault cuts a link (rain fade, a pulled cable): down whatever its ends do.
    CutLink(String),
    /// Undo a cut; also brings up a wireless link the topology file lists as not alive.
    RestoreLink(String),
}

/// What the shell must do after a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Rewrite this node's link view (its file-backed radio reads it).
    WriteRadio { node: String, view: RadioView },
    /// Open (true) or close (false) this node's management relay. Closing also cuts the
    /// connections it carries, as a rebooting upstream node would.
    SetPath { node: String, has_path: bool },
    /// Tell subscribers.
    Event(MeshEvent),
}

/// Something observable happened in the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeshEvent {
    NodeUp {
        node: String,
    },
    NodeDown {
        node: String,
        cause: DownCause,
    },
    NodeHung {
        node: String,
    },
    NodeResumed {
        node: String,
    },
    LinkUp {
        link: String,
    },
    LinkDown {
        link: String,
    },
    /// The node has an in-band path to a POP again.
    PathRestored {
        node: String,
    },
    /// The node lost its last in-band path to a POP.
    PathLost {
        node: String,
    },
}

/// Why a node went down; the shell knows, the model does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownCause {
    /// The agent exited with the reboot exit code (a commit or a fallback).
    Reboot,
    /// The agent exited with another code or died on a signal it did not ask for.
    Crash { code: Option<i32> },
    /// meshsim killed it (fault injection: power cycle, power cut during flash).
    Killed,
    /// Powered off by the caller; stays down until powered on.
    PoweredOff,
    /// The simulation is stopping.
    Stopped,
}

/// A node's view of its radio links: the file format of the minion's file-backed `Radio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RadioView {
    pub links: Vec<LinkView>,
    /// Set by the shell when writing (unix ms); the model leaves it 0.
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub name: String,
    pub peer: String,
    pub up: bool,
}

/// Why the model refused a change: the caller named something the topology does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Node name not in the topology; check the spelling against the topology file.
    #[error("no node named {0:?} in the topology")]
    UnknownNode(String),
    /// Link name not in the topology; check the spelling against the topology file.
    #[error("no link named {0:?} in the topology")]
    UnknownLink(String),
}

/// How long before its own reboot a node may already be cut off without that counting as
/// collateral (see [`IsolationMeter::forgive_own_reboot`]).
pub const REBOOT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The pure mesh model. See the module docs for the call order.
#[derive(Debug)]
pub struct MeshModel {
    topology: Topology,
    state: BTreeMap<String, NodeState>,
    cut: BTreeSet<String>,
    /// Wireless links not alive in the file but restored by the caller.
    restored: BTreeSet<String>,
    link_up: BTreeMap<String, bool>,
    has_path: BTreeMap<String, bool>,
    /// Nodes that started and have not yet reached the controller since: still coming up. A node
    /// of a commit batch that boots faster than the articulation point it hangs off is finishing
    /// its own outage, not suffering collateral damage; a node that never went down is never here.
    booting: BTreeSet<String>,
    isolation: IsolationMeter,
}

impl MeshModel {
    /// Every node starts down (not yet booted), so nothing is isolated and nothing has a path.
    /// The returned effects write every node's initial (all down) link view.
    pub fn new(topology: Topology, now: Instant) -> (MeshModel, Vec<Effect>) {
        let state = topology.nodes.iter().map(|n| (n.name.clone(), NodeState::Down)).collect();
        let link_up = topology.links.iter().map(|l| (l.name.clone(), false)).collect();
        let has_path = topology.nodes.iter().map(|n| (n.name.clone(), false)).collect();
        let model = MeshModel {
            topology,
            state,
            cut: BTreeSet::new(),
            restored: BTreeSet::new(),
            link_up,
            has_path,
            booting: BTreeSet::new(),
            isolation: IsolationMeter::new(now),
        };
        let effects = model
            .topology
            .nodes
            .iter()
            .map(|n| Effect::WriteRadio { node: n.name.clone(), view: model.radio_view(&n.name) })
            .collect();
        (model, effects)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn node_state(&self, node: &str) -> Option<NodeState> {
        self.state.get(node).copied()
    }

    pub fn link_is_up(&self, link: &str) -> Option<bool> {
        self.link_up.get(link).copied()
    }

    pub fn link_is_cut(&self, link: &str) -> bool {
        self.cut.contains(link)
    }

    pub fn has_path(&self, node: &str) -> Option<bool> {
        self.has_path.get(node).copied()
    }

    /// Nodes whose process runs but that cannot reach the controller: collateral damage. A node
    /// still coming up from its own restart (it has not had a path since) is not counted.
    pub fn isolated_nodes(&self) -> BTreeSet<String> {
        self.state
            .iter()
            .filter(|(n, s)| {
                s.is_powered() && !self.has_path[n.as_str()] && !self.booting.contains(n.as_str())
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn isolation(&self, now: Instant) -> IsolationReport {
        self.isolation.report(now)
    }

    /// Apply one change at `now` (never earlier than the previous call's `now`).
    pub fn handle(&mut self, change: Change, now: Instant) -> Result<Vec<Effect>, ModelError> {
        let mut effects = Vec::new();
        match change {
            Change::NodeUp(node) => {
                let from = self.set_state(&node, NodeState::Up)?;
                if from == NodeState::Down {
                    self.booting.insert(node.clone());
                }
                if from != NodeState::Up {
                    effects.push(Effect::Event(MeshEvent::NodeUp { node }));
                }
            }
            Change::NodeDown(node, cause) => {
                if cause == DownCause::Reboot {
                    self.isolation.forgive_own_reboot(now, &node, REBOOT_GRACE);
                }
                if self.set_state(&node, NodeState::Down)? != NodeState::Down {
                    effects.push(Effect::Event(MeshEvent::NodeDown { node, cause }));
                }
            }
            Change::NodeHung(node) => {
                if self.set_state(&node, NodeState::Hung)? == NodeState::Up {
                    effects.push(Effect::Event(MeshEvent::NodeHung { node }));
                }
            }
            Change::NodeResumed(node) => {
                if self.set_state(&node, NodeState::Up)? == NodeState::Hung {
                    effects.push(Effect::Event(MeshEvent::NodeResumed { node }));
                }
            }
            Change::CutLink(link) => {
                self.check_link(&link)?;
                self.cut.insert(link);
            }
            Change::RestoreLink(link) => {
                self.check_link(&link)?;
                self.cut.remove(&link);
                self.restored.insert(link);
            }
        }
        self.recompute(now, &mut effects);
        Ok(effects)
    }

    /// The current link view of `node` (empty for an unknown node).
    pub fn radio_view(&self, node: &str) -> RadioView {
        let links = self
            .topology
            .links_of(node)
            .map(|l| LinkView {
                name: l.name.clone(),
                peer: if l.a_node_name == node { l.z_node_name.clone() } else { l.a_node_name.clone() },
                up: self.link_up[&l.name],
            })
            .collect();
        RadioView { links, updated_ms: 0 }
    }

    fn set_state(&mut self, node: &str, to: NodeState) -> Result<NodeState, ModelError> {
        let slot = self.state.get_mut(node).ok_or_else(|| ModelError::UnknownNode(node.to_string()))?;
        // A frozen process stays frozen until resumed; "up" only thaws it via NodeResumed.
        let from = *slot;
        let to = match (from, to) {
            (NodeState::Down, NodeState::Hung) => NodeState::Down,
            _ => to,
        };
        *slot = to;
        Ok(from)
    }

    fn check_link(&self, link: &str) -> Result<(), ModelError> {
        match self.topology.link(link) {
            Some(_) => Ok(()),
            None => Err(ModelError::UnknownLink(link.to_string())),
        }
    }

    /// Whether a link carries traffic given the current node states and faults.
    fn compute_link_up(&self, link: &meshlift_protocol::Link) -> bool {
        let ends_up =
            self.state[&link.a_node_name].is_powered() && self.state[&link.z_node_name].is_powered();
        let not_cut = !self.cut.contains(&link.name);
        let alive = match link.link_type {
            // Intra-site cables have no ignition: they carry traffic whenever both ends run.
            LinkType::Ethernet => true,
            LinkType::Wireless => link.is_alive || self.restored.contains(&link.name),
        };
        ends_up && not_cut && alive
    }

    /// Re-derive link states and paths, emitting effects for what changed, then account isolation.
    fn recompute(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let mut touched_nodes = BTreeSet::new();
        for link in &self.topology.links {
            let up = self.compute_link_up(link);
            if self.link_up[&link.name] != up {
                touched_nodes.insert(link.a_node_name.clone());
                touched_nodes.insert(link.z_node_name.clone());
                effects.push(Effect::Event(if up {
                    MeshEvent::LinkUp { link: link.name.clone() }
                } else {
                    MeshEvent::LinkDown { link: link.name.clone() }
                }));
            }
        }
        for link in &self.topology.links {
            let up = self.compute_link_up(link);
            self.link_up.insert(link.name.clone(), up);
        }
        for node in touched_nodes {
            let view = self.radio_view(&node);
            effects.push(Effect::WriteRadio { node, view });
        }

        let reachable = self.reachable_from_pops();
        for node in &self.topology.nodes {
            let now_path = reachable.contains(&node.name);
            if now_path {
                self.booting.remove(&node.name);
            }
            let before = self.has_path.insert(node.name.clone(), now_path);
            if before != Some(now_path) {
                effects.push(Effect::SetPath { node: node.name.clone(), has_path: now_path });
                // Only running nodes lose or regain a path in a way anyone can notice.
                if self.state[&node.name].is_powered() {
                    effects.push(Effect::Event(if now_path {
                        MeshEvent::PathRestored { node: node.name.clone() }
                    } else {
                        MeshEvent::PathLost { node: node.name.clone() }
                    }));
                }
            }
        }
        let isolated = self.isolated_nodes();
        self.isolation.update(now, isolated);
    }

    /// Breadth-first search over up links from every powered POP node (wired to the core).
    fn reachable_from_pops(&self) -> BTreeSet<String> {
        let mut adjacency: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for link in &self.topology.links {
            if self.link_up[&link.name] {
                adjacency.entry(&link.a_node_name).or_default().push(&link.z_node_name);
                adjacency.entry(&link.z_node_name).or_default().push(&link.a_node_name);
            }
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        for node in &self.topology.nodes {
            if node.pop_node && self.state[&node.name].is_powered() && seen.insert(&node.name) {
                queue.push_back(&node.name);
            }
        }
        while let Some(n) = queue.pop_front() {
            for &m in adjacency.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    queue.push_back(m);
                }
            }
        }
        seen.into_iter().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::{Link, Node, NodeStatus, NodeType, Site};
    use std::time::Duration;

    /// pop1 -- ap -- leaf, plus ap's site partner ap2 (ethernet), and a dead spare link pop1--leaf.
    fn chain() -> Topology {
        let node = |name: &str, site: &str, pop: bool, mac: u8| Node {
            name: name.into(),
            node_type: NodeType::Dn,
            mac_addr: format!("00:00:00:00:00:{mac:02x}"),
            pop_node: pop,
            status: NodeStatus::Online,
            site_name: site.into(),
        };
        let link = |name: &str, a: &str, z: &str, t: LinkType, alive: bool| Link {
            name: name.into(),
            a_node_name: a.into(),
            z_node_name: z.into(),
            link_type: t,
            is_alive: alive,
        };
        Topology::new(
            "chain".into(),
            vec![
                node("pop1", "P", true, 1),
                node("ap", "A", false, 2),
                node("ap2", "A", false, 3),
                node("leaf", "L", false, 4),
            ],
            vec![
                link("pop1-ap", "pop1", "ap", LinkType::Wireless, true),
                link("ap-ap2", "ap", "ap2", LinkType::Ethernet, true),
                link("ap2-leaf", "ap2", "leaf", LinkType::Wireless, true),
                link("pop1-leaf", "pop1", "leaf", LinkType::Wireless, false),
            ],
            ["P", "A", "L"].iter().map(|s| Site { name: s.to_string(), location: None }).collect(),
        )
        .unwrap()
    }

    fn all_up(model: &mut MeshModel, now: Instant) {
        for n in ["pop1", "ap", "ap2", "leaf"] {
            model.handle(Change::NodeUp(n.into()), now).unwrap();
        }
    }

    #[test]
    fn links_need_both_ends_up_and_no_cut_and_alive() {
        let t0 = Instant::now();
        let (mut m, initial) = MeshModel::new(chain(), t0);
        assert_eq!(initial.len(), 4, "one initial radio view per node");
        all_up(&mut m, t0);
        assert_eq!(m.link_is_up("pop1-ap"), Some(true));
        assert_eq!(m.link_is_up("ap-ap2"), Some(true));
        assert_eq!(m.link_is_up("pop1-leaf"), Some(false), "not alive in the file");
        assert!(m.isolated_nodes().is_empty());

        let fx = m.handle(Change::CutLink("pop1-ap".into()), t0).unwrap();
        assert_eq!(m.link_is_up("pop1-ap"), Some(false));
        assert!(fx.contains(&Effect::Event(MeshEvent::LinkDown { link: "pop1-ap".into() })));
        assert!(fx.contains(&Effect::SetPath { node: "leaf".into(), has_path: false }));
        assert_eq!(m.isolated_nodes().into_iter().collect::<Vec<_>>(), ["ap", "ap2", "leaf"]);
        let pop_view = m.radio_view("pop1");
        assert_eq!(
            pop_view.links,
            vec![
                LinkView { name: "pop1-ap".into(), peer: "ap".into(), up: false },
                LinkView { name: "pop1-leaf".into(), peer: "leaf".into(), up: false },
            ]
        );

        // Restoring a link the file calls dead brings it up: leaf has its own way out and carries
        // ap2 and ap with it.
        m.handle(Change::RestoreLink("pop1-leaf".into()), t0).unwrap();
        assert_eq!(m.link_is_up("pop1-leaf"), Some(true));
        assert!(m.isolated_nodes().is_empty());
    }

    #[test]
    fn isolation_counts_the_node_behind_a_rebooting_ap_not_the_ap() {
        let t0 = Instant::now();
        let (mut m, _) = MeshModel::new(chain(), t0);
        all_up(&mut m, t0);
        let t1 = t0 + Duration::from_secs(10);
        let fx = m.handle(Change::NodeDown("ap".into(), DownCause::Reboot), t1).unwrap();
        assert!(
            fx.contains(&Effect::Event(MeshEvent::NodeDown { node: "ap".into(), cause: DownCause::Reboot }))
        );
        assert!(fx.contains(&Effect::Event(MeshEvent::PathLost { node: "leaf".into() })));
        assert!(!fx.iter().any(|e| *e == Effect::Event(MeshEvent::PathLost { node: "ap".into() })));
        // ap2 shares the site: the ethernet link to ap is down, and its only way out was ap.
        let t2 = t1 + Duration::from_secs(3);
        m.handle(Change::NodeUp("ap".into()), t2).unwrap();
        let report = m.isolation(t2 + Duration::from_secs(100));
        assert_eq!(report.per_node.get("leaf").copied(), Some(3.0));
        assert_eq!(report.per_node.get("ap2").copied(), Some(3.0));
        assert_eq!(report.per_node.get("ap"), None, "a rebooting node is not collateral");
        assert_eq!(report.total_s, 6.0);
    }

    #[test]
    fn a_batch_mate_booting_before_its_ap_is_not_collateral() {
        let t0 = Instant::now();
        let (mut m, _) = MeshModel::new(chain(), t0);
        all_up(&mut m, t0);
        // ap and leaf reboot together (one commit batch); leaf comes back first.
        let t1 = t0 + Duration::from_secs(10);
        m.handle(Change::NodeDown("ap".into(), DownCause::Reboot), t1).unwrap();
        m.handle(Change::NodeDown("leaf".into(), DownCause::Reboot), t1).unwrap();
        m.handle(Change::NodeUp("leaf".into()), t1 + Duration::from_secs(1)).unwrap();
        m.handle(Change::NodeUp("ap".into()), t1 + Duration::from_secs(3)).unwrap();
        // Later the ap reboots alone: now leaf, which is up and long past its own boot, suffers.
        let t2 = t1 + Duration::from_secs(20);
        m.handle(Change::NodeDown("ap".into(), DownCause::Reboot), t2).unwrap();
        m.handle(Change::NodeUp("ap".into()), t2 + Duration::from_secs(2)).unwrap();
        let report = m.isolation(t2 + Duration::from_secs(100));
        assert_eq!(report.per_node.get("leaf").copied(), Some(2.0), "only the second outage counts for leaf");
        // ap2 never went down: both outages of its site mate count.
        assert_eq!(report.per_node.get("ap2").copied(), Some(5.0));
    }

    #[test]
    fn ongoing_isolation_is_counted_up_to_now() {
        let t0 = Instant::now();
        let (mut m, _) = MeshModel::new(chain(), t0);
        all_up(&mut m, t0);
        m.handle(Change::NodeDown("pop1".into(), DownCause::Killed), t0).unwrap();
        let report = m.isolation(t0 + Duration::from_millis(1500));
        assert_eq!(report.total_s, 4.5, "three nodes, 1.5 s each");
    }

    #[test]
    fn hung_node_keeps_its_links_and_path() {
        let t0 = Instant::now();
        let (mut m, _) = MeshModel::new(chain(), t0);
        all_up(&mut m, t0);
        let fx = m.handle(Change::NodeHung("ap".into()), t0).unwrap();
        assert_eq!(fx, vec![Effect::Event(MeshEvent::NodeHung { node: "ap".into() })]);
        assert_eq!(m.node_state("ap"), Some(NodeState::Hung));
        assert_eq!(m.has_path("leaf"), Some(true));
        m.handle(Change::NodeResumed("ap".into()), t0).unwrap();
        assert_eq!(m.node_state("ap"), Some(NodeState::Up));
    }

    #[test]
    fn unknown_names_are_refused() {
        let (mut m, _) = MeshModel::new(chain(), Instant::now());
        let now = Instant::now();
        assert_eq!(
            m.handle(Change::NodeUp("ghost".into()), now),
            Err(ModelError::UnknownNode("ghost".into()))
        );
        assert_eq!(
            m.handle(Change::CutLink("nope".into()), now),
            Err(ModelError::UnknownLink("nope".into()))
        );
    }
}
