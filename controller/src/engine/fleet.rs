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
//!
//! Nodes are kept by [`NodeId`], their position in the configured topology (which never changes
//! while the engine runs): a status report is found by MAC once, and everything after that is a
//! `Vec` index rather than a string-keyed lookup. At 10 000 nodes reporting every 5 s, string
//! hashing and comparing was most of the engine's time.

use std::collections::HashMap;

use meshlift_protocol::topology::{normalize_mac, NodeStatus};
use meshlift_protocol::{LinkType, StatusReport, Topology};

/// A node's position in the configured topology's `nodes`.
pub type NodeId = usize;

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

/// A wireless link of a node, seen from that node.
#[derive(Debug, Clone)]
pub struct WirelessLink {
    pub link: String,
    pub peer: NodeId,
}

/// Reports by node, plus the indexes the engine needs per report.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Last report by [`NodeId`].
    seen: Vec<Option<Seen>>,
    /// Node name → id.
    ids: HashMap<String, NodeId>,
    /// MACs of the usual `hh:hh:hh:hh:hh:hh` form as numbers ([`mac_number`]), sorted, with
    /// their node: found by a binary search over integers, without hashing or comparing a
    /// string (reports from nodes of a site, whose MACs are close, touch the same cache lines).
    mac_numbers: Vec<(u64, NodeId)>,
    /// Any other MAC, normalized (as `normalize_mac` makes it) → id. Together the two follow
    /// `Topology::node_by_mac`, whose duplicates `Topology::new` refuses.
    macs: HashMap<String, NodeId>,
    /// Wireless links by node id.
    wireless: Vec<Vec<WirelessLink>>,
    alive_timeout_ms: u64,
}

impl Fleet {
    pub fn new(topology: &Topology, alive_timeout_ms: u64) -> Fleet {
        let count = topology.nodes.len();
        let ids: HashMap<String, NodeId> =
            topology.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        let mut mac_numbers = Vec::with_capacity(count);
        let mut macs = HashMap::new();
        for (i, n) in topology.nodes.iter().enumerate().filter(|(_, n)| !n.mac_addr.is_empty()) {
            match mac_number(&n.mac_addr) {
                Some(m) => mac_numbers.push((m, i)),
                None => {
                    macs.insert(normalize_mac(&n.mac_addr), i);
                }
            }
        }
        mac_numbers.sort_unstable();
        let mut wireless: Vec<Vec<WirelessLink>> = vec![Vec::new(); count];
        for l in topology.links.iter().filter(|l| l.link_type == LinkType::Wireless) {
            // `Topology::new` guarantees both ends exist.
            let (Some(&a), Some(&z)) = (ids.get(&l.a_node_name), ids.get(&l.z_node_name)) else { continue };
            wireless[a].push(WirelessLink { link: l.name.clone(), peer: z });
            wireless[z].push(WirelessLink { link: l.name.clone(), peer: a });
        }
        Fleet { seen: vec![None; count], ids, mac_numbers, macs, wireless, alive_timeout_ms }
    }

    /// The id of a node of the topology.
    pub fn id(&self, node: &str) -> Option<NodeId> {
        self.ids.get(node).copied()
    }

    /// The node a MAC belongs to: case-insensitive, `:` or `-` (as `Topology::node_by_mac`).
    pub fn id_by_mac(&self, mac: &str) -> Option<NodeId> {
        // Two MACs normalize alike iff both are of the usual form with the same number, or
        // neither is and their normalized strings are equal: each index answers for its kind.
        match mac_number(mac) {
            Some(m) => {
                self.mac_numbers.binary_search_by_key(&m, |&(k, _)| k).ok().map(|i| self.mac_numbers[i].1)
            }
            // An exact hit is right: keys are normalized and normalizing is idempotent.
            None => self.macs.get(mac).or_else(|| self.macs.get(&normalize_mac(mac))).copied(),
        }
    }

    /// Record a report. Returns whether the node was offline (or never seen) before.
    pub fn record(&mut self, id: NodeId, report: StatusReport, now: u64) -> bool {
        let Some(slot) = self.seen.get_mut(id) else { return false };
        match slot {
            Some(old) => {
                let was_offline = now.saturating_sub(old.at) > self.alive_timeout_ms;
                old.report = report;
                old.at = now;
                old.rx += 1;
                was_offline
            }
            None => {
                *slot = Some(Seen { report, at: now, rx: 1 });
                true
            }
        }
    }

    pub fn get(&self, node: &str) -> Option<&Seen> {
        self.id(node).and_then(|i| self.get_id(i))
    }

    pub fn get_id(&self, id: NodeId) -> Option<&Seen> {
        self.seen.get(id).and_then(Option::as_ref)
    }

    /// Reports received from `node` so far.
    pub fn rx(&self, node: &str) -> u64 {
        self.get(node).map_or(0, |s| s.rx)
    }

    pub fn last_seen(&self, node: &str) -> Option<u64> {
        self.get(node).map(|s| s.at)
    }

    pub fn online(&self, node: &str, now: u64) -> bool {
        self.id(node).is_some_and(|i| self.online_id(i, now))
    }

    pub fn online_id(&self, id: NodeId, now: u64) -> bool {
        self.get_id(id).is_some_and(|s| self.fresh(s, now))
    }

    fn fresh(&self, s: &Seen, now: u64) -> bool {
        now.saturating_sub(s.at) <= self.alive_timeout_ms
    }

    /// Wireless links of `node` with their peer.
    pub fn wireless_links(&self, node: &str) -> &[WirelessLink] {
        self.id(node).map_or(&[], |i| self.wireless_links_id(i))
    }

    pub fn wireless_links_id(&self, id: NodeId) -> &[WirelessLink] {
        self.wireless.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A wireless link is alive iff both ends are online and report it up.
    pub fn wireless_alive(&self, link: &str, a: &str, z: &str, now: u64) -> bool {
        match (self.id(a), self.id(z)) {
            (Some(a), Some(z)) => self.wireless_alive_id(link, a, z, now),
            _ => false,
        }
    }

    pub fn wireless_alive_id(&self, link: &str, a: NodeId, z: NodeId, now: u64) -> bool {
        let up = |n: NodeId| self.get_id(n).is_some_and(|s| self.fresh(s, now) && s.reports_up(link));
        up(a) && up(z)
    }

    /// Wireless links of `node` that are not alive now.
    pub fn dead_links(&self, node: &str, now: u64) -> Vec<String> {
        let Some(id) = self.id(node) else { return Vec::new() };
        self.wireless_links_id(id)
            .iter()
            .filter(|w| !self.wireless_alive_id(&w.link, id, w.peer, now))
            .map(|w| w.link.clone())
            .collect()
    }

    /// The configured topology with live node and link states.
    pub fn live_topology(&self, configured: &Topology, now: u64) -> Topology {
        let mut t = configured.clone();
        for (i, n) in t.nodes.iter_mut().enumerate() {
            n.status = if self.online_id(i, now) { NodeStatus::Online } else { NodeStatus::Offline };
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
        self.seen.iter().flatten().filter(|s| self.fresh(s, now)).count()
    }

    /// Whether some node is online at `now` but has not reported after `since`. Runs on every
    /// report while a COMMIT stage settles: a scan by id, no name lookups.
    /// Some node of the topology has not reported since this controller started.
    pub fn any_unreported(&self) -> bool {
        self.seen.iter().any(Option::is_none)
    }

    pub fn any_online_silent_since(&self, since: u64, now: u64) -> bool {
        self.seen.iter().flatten().any(|s| self.fresh(s, now) && s.at <= since)
    }

    /// Earliest time at which an online node goes offline if it stays silent.
    pub fn next_offline_at(&self, now: u64) -> Option<u64> {
        self.seen.iter().flatten().map(|s| s.at + self.alive_timeout_ms + 1).filter(|&t| t > now).min()
    }
}

/// A MAC of the form `hh:hh:hh:hh:hh:hh` (hex digits in either case, `:` or `-` between them,
/// surrounding whitespace ignored, as `normalize_mac` ignores it) as a number; `None` for any
/// other string. Two such MACs normalize to the same string iff their numbers are equal.
fn mac_number(mac: &str) -> Option<u64> {
    // Trimming is needed only when the MAC does not parse as it is (a MAC that parses starts
    // and ends with a hex digit, so trimming would not change it).
    mac_bytes_number(mac.as_bytes()).or_else(|| mac_bytes_number(mac.trim().as_bytes()))
}

fn mac_bytes_number(b: &[u8]) -> Option<u64> {
    if b.len() != 17 {
        return None;
    }
    let mut v = 0u64;
    for (i, &c) in b.iter().enumerate() {
        if i % 3 == 2 {
            if c != b':' && c != b'-' {
                return None;
            }
            continue;
        }
        v = v << 4 | u64::from(char::from(c).to_digit(16)?);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::topology::{Node, NodeType, Site};

    fn topology(macs: &[&str]) -> Topology {
        let nodes = macs
            .iter()
            .enumerate()
            .map(|(i, m)| Node {
                name: format!("n{i}"),
                node_type: NodeType::Dn,
                mac_addr: m.to_string(),
                pop_node: false,
                status: NodeStatus::Online,
                site_name: "S".into(),
            })
            .collect();
        Topology::new("t".into(), nodes, Vec::new(), vec![Site { name: "S".into(), location: None }])
            .expect("valid topology")
    }

    #[test]
    fn mac_numbers_only_for_the_usual_form() {
        assert_eq!(mac_number("0a:00:00:00:01:ff"), Some(0x0a00_0000_01ff));
        assert_eq!(mac_number(" 0A-00-00:00-01-FF\t"), Some(0x0a00_0000_01ff));
        for odd in [
            "",
            "0a:00:00:00:01",
            "0a:00:00:00:01:ff:00",
            "0a.00.00.00.01.ff",
            "0a:00:00:00:01:fg",
            "a:0:0:0:1:ff",
        ] {
            assert_eq!(mac_number(odd), None, "{odd:?}");
        }
    }

    /// The fleet finds a node by MAC exactly when `Topology::node_by_mac` does.
    #[test]
    fn id_by_mac_agrees_with_the_topology() {
        let t = topology(&["0A:00:00:00:01:FF", "02-00-00-00-00-01", "a:0:0:0:1:ff", "node-7", ""]);
        let f = Fleet::new(&t, 30_000);
        let asks = [
            "0a:00:00:00:01:ff",
            "0A-00-00-00-01-ff",
            " 0a:00:00:00:01:ff ",
            "02:00:00:00:00:01",
            "02-00-00-00-00-01",
            "A:0:0:0:1:FF",
            "a-0-0-0-1-ff",
            "NODE:7",
            "node-7",
            "node_7",
            "0a:00:00:00:01:fe",
            "",
            "a:0:0:0:1:f",
        ];
        for mac in asks {
            let want = t.node_by_mac(mac).map(|n| n.name.clone());
            let got = f.id_by_mac(mac).map(|i| t.nodes[i].name.clone());
            assert_eq!(got, want, "{mac:?}");
        }
        assert_eq!(f.id_by_mac("0a-00-00-00-01-FF"), Some(0));
        assert_eq!(f.id_by_mac("NODE:7"), Some(3));
        assert_eq!(f.id_by_mac(""), None);
    }
}
