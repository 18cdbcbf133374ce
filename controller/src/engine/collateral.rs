//! The last check before a REVERT_TO_STANDBY batch goes out: no running node that is *not* part
//! of the batch may lose its last path to a POP while the batch reboots.
//!
//! The planner counts every node that is not pending as done (Terragraph's rule): a node the
//! readiness filters left out (a standby never confirmed there) is running, but an articulation
//! point in front of it may be planned, and its reboot cuts the left-out node off the mesh.
//! Here the batch is checked on the live topology and such an articulation point is held back,
//! with the name of the node it would cut off as its reason.
//!
//! Cost: one breadth-first search over the live topology per batch node tried, only for reverts
//! whose batch would cut someone off.

use std::collections::{BTreeSet, VecDeque};

use meshlift_protocol::Topology;

/// Online nodes outside `down` that no online POP outside `down` reaches over live links whose
/// ends are both up.
pub fn cut_off(live: &Topology, down: &BTreeSet<&str>) -> BTreeSet<String> {
    let up = |name: &str| !down.contains(name) && live.node(name).is_some_and(|n| n.status.is_online());
    let mut reached: BTreeSet<&str> =
        live.nodes.iter().filter(|n| n.pop_node && up(&n.name)).map(|n| n.name.as_str()).collect();
    let mut queue: VecDeque<&str> = reached.iter().copied().collect();
    while let Some(at) = queue.pop_front() {
        for l in live.links.iter().filter(|l| l.is_alive) {
            let next = if l.a_node_name == at {
                l.z_node_name.as_str()
            } else if l.z_node_name == at {
                l.a_node_name.as_str()
            } else {
                continue;
            };
            if up(next) && reached.insert(next) {
                queue.push_back(next);
            }
        }
    }
    live.nodes
        .iter()
        .filter(|n| up(&n.name) && !reached.contains(n.name.as_str()))
        .map(|n| n.name.clone())
        .collect()
}

/// Splits `batch` into the nodes that may reboot and the ones held back, each with the running
/// nodes outside the batch its reboot would cut off. Nodes already cut off before the batch do
/// not count.
pub fn hold_back(live: &Topology, batch: Vec<String>) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let before = cut_off(live, &BTreeSet::new());
    let collateral = |down: &[String]| -> BTreeSet<String> {
        let set: BTreeSet<&str> = down.iter().map(String::as_str).collect();
        cut_off(live, &set).into_iter().filter(|n| !before.contains(n)).collect()
    };
    let mut kept = batch;
    let mut held = Vec::new();
    loop {
        let cut = collateral(&kept);
        if cut.is_empty() {
            return (kept, held);
        }
        // The batch node whose staying up spares the most of them.
        let best = (0..kept.len())
            .map(|i| {
                let mut without = kept.clone();
                without.remove(i);
                (i, cut.len() - collateral(&without).len().min(cut.len()))
            })
            .filter(|(_, spared)| *spared > 0)
            .max_by_key(|(i, spared)| (*spared, std::cmp::Reverse(*i)));
        match best {
            Some((i, _)) => {
                let node = kept.remove(i);
                let spared: Vec<String> = cut.difference(&collateral(&kept)).cloned().collect();
                held.push((node, spared));
            }
            // No single node explains it: nothing of this batch goes.
            None => {
                let all: Vec<String> = cut.into_iter().collect();
                held.extend(kept.drain(..).map(|n| (n, all.clone())));
                return (kept, held);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site};

    /// pop — relay — leaf, and pop — other.
    fn chain() -> Topology {
        let node = |n: &str, pop: bool| Node {
            name: n.into(),
            node_type: NodeType::Dn,
            mac_addr: String::new(),
            pop_node: pop,
            status: NodeStatus::Online,
            site_name: format!("S-{n}"),
        };
        let link = |a: &str, z: &str| Link {
            name: format!("{a}-{z}"),
            a_node_name: a.into(),
            z_node_name: z.into(),
            link_type: LinkType::Wireless,
            is_alive: true,
        };
        let names = ["pop", "relay", "leaf", "other"];
        Topology::new(
            "t".into(),
            vec![node("pop", true), node("relay", false), node("leaf", false), node("other", false)],
            vec![link("pop", "relay"), link("relay", "leaf"), link("pop", "other")],
            names.iter().map(|n| Site { name: format!("S-{n}"), location: None }).collect(),
        )
        .unwrap()
    }

    #[test]
    fn an_articulation_point_in_front_of_a_running_node_is_held_back() {
        let t = chain();
        let (kept, held) = hold_back(&t, vec!["relay".into(), "other".into()]);
        assert_eq!(kept, vec!["other".to_string()]);
        assert_eq!(held, vec![("relay".to_string(), vec!["leaf".to_string()])]);
        // With the leaf in the batch too, nobody outside it is cut off.
        let (kept, held) = hold_back(&t, vec!["leaf".into(), "relay".into()]);
        assert_eq!((kept.len(), held.len()), (2, 0));
    }
}
