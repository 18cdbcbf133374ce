//! What the controller knows about every node from its status reports: the last report, when it
//! arrived, whether the node is online, and which wireless links are alive.
//!
//! Rules (Terragraph's, made explicit):
//! - a node is **online** iff a report arrived within `node_alive_timeout` (controller clock, not
//!   the node's `timestamp`, which may be skewed);
//! - a **wireless link is alive** iff both ends are online and both report it up: one end alone
//!   cannot tell a link that is up from a link it believes is up;
//! - an **ethernet link** is alive iff it is alive in the configured topology and both ends are
//!   online.
//!
//! The live topology given to the planner is the configured topology with these node states and
//! link states.

use std::collections::HashMap;

use meshlift_protocol::topology::NodeStatus;
use meshlift_protocol::{LinkType, StatusReport, Topology};

/// A node's last report and when it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub report: StatusReport,
    pub at: u64,
    /// Reports received from this node since the engine started (1 for the first): tells a
    /// report that arrived after a dispatch from one that arrived at the same millisecond before it.
    pub rx: u64,
}

impl Seen {
    /// Whether this node reports `link` up (a node has a handful of links: a scan is cheaper
    /// than building an index per report).
    fn reports_up(&self, link: &str) -> bool {
        self.report.links.iter().any(|l| l.up && l.name == link)
    }
}

/// Reports by node name, plus the indexes the engine needs per report.
#[derive(Debug, Clone)]
pub struct Fleet {
    seen: HashMap<String, Seen>,
    /// Node → (wireless link name, peer node).
    wireless: HashMap<String, Vec<(String, String)>>,
    alive_timeout_ms: u64,
}

impl Fleet {
    pub fn new(topology: &Topology, alive_timeout_ms: u64) -> Fleet {
        let mut wireless: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for l in topology.links.iter().filter(|l| l.link_type == LinkType::Wireless) {
            wireless.entry(l.a_node_name.clone()).or_default().push((l.name.clone(), l.z_node_name.clone()));
            wireless.entry(l.z_node_name.clone()).or_default().push((l.name.clone(), l.a_node_name.clone()));
        }
        Fleet { seen: HashMap::new(), wireless, alive_timeout_ms }
    }

    /// Record a report. Returns whether the node was offline (or never seen) before.
    pub fn record(&mut self, node: &str, report: StatusReport, now: u64) -> bool {
        let mut seen = Seen { report, at: now, rx: 1 };
        match self.seen.get_mut(node) {
            Some(old) => {
                let was_offline = now.saturating_sub(old.at) > self.alive_timeout_ms;
                seen.rx = old.rx + 1;
                *old = seen;
                was_offline
            }
            None => {
                self.seen.insert(node.to_string(), seen);
                true
            }
        }
    }

    pub fn get(&self, node: &str) -> Option<&Seen> {
        self.seen.get(node)
    }

    /// Reports received from `node` so far.
    pub fn rx(&self, node: &str) -> u64 {
        self.seen.get(node).map_or(0, |s| s.rx)
    }

    pub fn last_seen(&self, node: &str) -> Option<u64> {
        self.seen.get(node).map(|s| s.at)
    }

    pub fn online(&self, node: &str, now: u64) -> bool {
        self.seen.get(node).is_some_and(|s| now.saturating_sub(s.at) <= self.alive_timeout_ms)
    }

    /// Wireless links of `node` with their peer.
    pub fn wireless_links(&self, node: &str) -> &[(String, String)] {
        self.wireless.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A wireless link is alive iff both ends are online and report it up.
    pub fn wireless_alive(&self, link: &str, a: &str, z: &str, now: u64) -> bool {
        let up = |n: &str| {
            self.seen
                .get(n)
                .is_some_and(|s| now.saturating_sub(s.at) <= self.alive_timeout_ms && s.reports_up(link))
        };
        up(a) && up(z)
    }

    /// Wireless links of `node` that are not alive now.
    pub fn dead_links(&self, node: &str, now: u64) -> Vec<String> {
        self.wireless_links(node)
            .iter()
            .filter(|(l, peer)| !self.wireless_alive(l, node, peer, now))
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// The configured topology with live node and link states.
    pub fn live_topology(&self, configured: &Topology, now: u64) -> Topology {
        let mut t = configured.clone();
        for n in &mut t.nodes {
            n.status = if self.online(&n.name, now) { NodeStatus::Online } else { NodeStatus::Offline };
        }
        for l in &mut t.links {
            let both_online = self.online(&l.a_node_name, now) && self.online(&l.z_node_name, now);
            l.is_alive = match l.link_type {
                LinkType::Wireless => self.wireless_alive(&l.name, &l.a_node_name, &l.z_node_name, now),
                LinkType::Ethernet => l.is_alive && both_online,
            };
        }
        t
    }

    /// Nodes currently online.
    pub fn online_count(&self, now: u64) -> usize {
        self.seen.values().filter(|s| now.saturating_sub(s.at) <= self.alive_timeout_ms).count()
    }

    /// Earliest time at which an online node goes offline if it stays silent.
    pub fn next_offline_at(&self, now: u64) -> Option<u64> {
        self.seen.values().map(|s| s.at + self.alive_timeout_ms + 1).filter(|&t| t > now).min()
    }
}
