//! Which nodes are the safest to upgrade first: those whose reboot cuts the fewest sites off
//! from every POP (the smallest blast radius), as the commit planner sees the live topology.
//!
//! A canary that is an articulation point takes the sites behind it down with it; if the image is
//! bad, they all pay for the test. So the canary wave and the widening waves take nodes in this
//! order: blast radius (1 + sites the node's site cuts off, from the planner's AP groups), then
//! non-POP before POP (a POP reboot moves every path through it), then name for determinism.

use std::collections::{BTreeMap, BTreeSet};

use meshlift_graph_planner::{plan_all, ApPolicy, PlanRequest, PlanStrategy};
use meshlift_protocol::Topology;

/// Nodes that must be upgraded in the same wave, with their blast radius.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Sites down or cut off while the unit reboots (`usize::MAX`: the planner cannot plan it).
    pub radius: usize,
    pub has_pop: bool,
    pub nodes: Vec<String>,
}

/// `candidates` grouped into units and sorted safest first. `live` is the live topology (node
/// status and link state current); without one every node is its own unit of radius 1, by name.
///
/// A unit is a site, or an **AP group** (an articulation point with every pending site it cuts
/// off, as the planner groups them). A group goes whole: upgrading the leaf behind an AP first
/// would cut that leaf off later, when its AP reboots alone — collateral isolation the loop
/// could have avoided by taking both in one wave, where the planner reboots them together.
pub fn safest_units(live: Option<&Topology>, candidates: &[String]) -> Vec<Unit> {
    let Some(topology) = live else {
        let mut v = candidates.to_vec();
        v.sort();
        v.dedup();
        return v.into_iter().map(|n| Unit { radius: 1, has_pop: false, nodes: vec![n] }).collect();
    };
    let pending: BTreeSet<String> = candidates.iter().cloned().collect();
    let plan = plan_all(&PlanRequest {
        topology,
        pending: &pending,
        limit: 0,
        ap_policy: ApPolicy::Group,
        max_pops_per_batch: 1,
        strategy: PlanStrategy::Terragraph,
    });
    let unplanned: BTreeSet<&str> = plan.unplanned.iter().map(|(n, _)| n.as_str()).collect();
    // Site → its unit key (the AP's site for a group member, itself otherwise) and the radius.
    let mut unit_of: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for (ap, cut) in &plan.ap_groups {
        let radius = 1 + cut.len();
        unit_of.insert(ap.as_str(), (ap.as_str(), radius));
        for c in cut {
            unit_of.entry(c.as_str()).or_insert((ap.as_str(), radius));
        }
    }
    let mut units: BTreeMap<&str, Unit> = BTreeMap::new();
    for name in &pending {
        let Some(node) = topology.node(name) else { continue };
        let site = node.site_name.as_str();
        let (key, radius) = unit_of.get(site).copied().unwrap_or((site, 1));
        let u = units.entry(key).or_insert(Unit { radius, has_pop: false, nodes: Vec::new() });
        if unplanned.contains(name.as_str()) {
            u.radius = usize::MAX;
        }
        u.has_pop |= node.pop_node;
        u.nodes.push(name.clone());
    }
    let mut v: Vec<Unit> = units.into_values().collect();
    v.sort_by(|a, b| (a.radius, a.has_pop, &a.nodes).cmp(&(b.radius, b.has_pop, &b.nodes)));
    v
}

/// Whole units, safest first, until at least `want` nodes (the first unit is taken even if
/// larger), never beyond `cap` nodes: a unit that does not fit under the cap is left for a
/// later wave.
pub fn take(units: &[Unit], want: usize, cap: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in units {
        if out.len() >= want {
            break;
        }
        if out.len() + u.nodes.len() > cap {
            continue;
        }
        out.extend(u.nodes.iter().cloned());
    }
    out
}
