//! The whole-plan dry run and its human rendering.

use crate::ap_groups::Groups;
use crate::batch::{Chosen, Planner};
use crate::fewest_batches::FewestPlanner;
use crate::mesh::Mesh;
use crate::site_graph::{SiteGraph, NONE};
use crate::{unknown_warning, ApPolicy, Batch, Plan, PlanRequest, PlanStrategy};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Sites listed one by one in the rendered outage table; larger meshes get a histogram.
const OUTAGE_TABLE_MAX: usize = 200;

/// The planner of the request's strategy, over its live topology (which fits `mesh`), and the
/// pending names that are not in it.
pub(crate) fn planner_for<'m>(mesh: &'m Mesh, req: &PlanRequest) -> (Chooser<'m>, Vec<String>) {
    let g = SiteGraph::build(mesh, req.topology);
    let mut node_pending = vec![false; req.topology.nodes.len()];
    let mut unknown = Vec::new();
    mesh.find_sorted(
        req.pending.iter().map(String::as_str),
        |i| node_pending[i as usize] = true,
        |name| unknown.push(name.to_string()),
    );
    let (policy, limit, pops) = (req.ap_policy, req.limit, req.max_pops_per_batch);
    let chooser = match req.strategy {
        PlanStrategy::Terragraph => {
            Chooser::Terragraph(Box::new(Planner::new(g, node_pending, policy, limit, pops)))
        }
        PlanStrategy::FewestBatches => {
            Chooser::Fewest(Box::new(FewestPlanner::new(g, node_pending, policy, limit, pops)))
        }
    };
    (chooser, unknown)
}

/// One planner per strategy, asked the same way.
pub(crate) enum Chooser<'m> {
    Terragraph(Box<Planner<'m>>),
    Fewest(Box<FewestPlanner<'m>>),
}

impl<'m> Chooser<'m> {
    pub fn next(&mut self) -> Chosen {
        match self {
            Chooser::Terragraph(p) => p.next(),
            Chooser::Fewest(p) => p.next(),
        }
    }

    fn apply(&mut self, chosen: &Chosen) {
        match self {
            Chooser::Terragraph(p) => p.apply(chosen),
            Chooser::Fewest(p) => p.apply(chosen),
        }
    }

    fn g(&self) -> &SiteGraph<'m> {
        match self {
            Chooser::Terragraph(p) => &p.g,
            Chooser::Fewest(p) => &p.g,
        }
    }

    fn node_pending(&self) -> &[bool] {
        match self {
            Chooser::Terragraph(p) => &p.node_pending,
            Chooser::Fewest(p) => &p.node_pending,
        }
    }

    /// Terragraph's AP groups for the pending set as it is now.
    fn group_keys(&self) -> Vec<bool> {
        match self {
            Chooser::Terragraph(p) if p.policy == ApPolicy::Group => p.groups().is_key.clone(),
            Chooser::Terragraph(p) => Groups::compute(&p.g, &p.site_pending, ApPolicy::Group).is_key,
            Chooser::Fewest(p) => Groups::compute(&p.g, &p.site_pending, ApPolicy::Group).is_key,
        }
    }
}

pub(crate) fn plan_all(mesh: &Mesh, req: &PlanRequest) -> Plan {
    let (mut planner, unknown) = planner_for(mesh, req);
    let mut warnings: Vec<String> = unknown_warning(&unknown).into_iter().collect();

    let ap_groups = {
        let is_key = planner.group_keys();
        let g = planner.g();
        (0..g.len() as u32)
            .filter(|&k| is_key[k as usize])
            .map(|k| {
                let mut cut: Vec<String> = g.cut_off(k).map(|s| g.name(s).to_string()).collect();
                cut.sort_unstable();
                (g.name(k).to_string(), cut)
            })
            .collect()
    };

    let mut outage = vec![0u32; planner.g().len()];
    let mut batches = Vec::new();
    let mut blast_radius = Vec::new();
    loop {
        let chosen = planner.next();
        if chosen.nodes.is_empty() {
            break;
        }
        for &s in &chosen.down {
            outage[s as usize] += 1;
        }
        let radius = chosen.down.len();
        planner.apply(&chosen);
        let n = batches.len() + 1;
        warnings.extend(chosen.warnings.iter().map(|w| format!("batch {n}: {w}")));
        blast_radius.push(radius);
        batches.push(Batch {
            nodes: chosen.nodes,
            sites: chosen.sites,
            explanation: chosen.explanation,
            warnings: chosen.warnings,
        });
    }

    let g = planner.g();
    let node_pending = planner.node_pending();
    let mut unplanned = Vec::new();
    for (i, node) in req.topology.nodes.iter().enumerate() {
        if !node_pending[i] {
            continue;
        }
        let s = g.site_of_node[i];
        let reason = if s == NONE {
            "node is offline".to_string()
        } else if !g.tree.reachable(s) {
            format!("site {} is cut off from every POP", node.site_name)
        } else {
            // Invariant 3 of the reference says this cannot happen; report rather than loop.
            format!("no safe batch could be found for site {}", node.site_name)
        };
        unplanned.push((node.name.clone(), reason));
    }
    unplanned.sort();
    if !unplanned.is_empty() {
        warnings.push(format!("{} pending node(s) cannot be planned (see unplanned)", unplanned.len()));
    }

    let mut outages: BTreeMap<String, u32> = req.topology.sites.iter().map(|s| (s.name.clone(), 0)).collect();
    for (v, &count) in outage.iter().enumerate() {
        outages.insert(g.name(v as u32).to_string(), count);
    }

    Plan {
        batches,
        ap_groups,
        unplanned,
        outages,
        warnings,
        blast_radius,
        limit: req.limit,
        ap_policy: req.ap_policy,
        max_pops_per_batch: req.max_pops_per_batch.max(1),
        strategy: req.strategy,
    }
}

/// What a plan costs the network, to compare strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanCost {
    /// Reboot cycles of the network.
    pub batches: usize,
    /// Site outages summed over all sites (each batch a site is down or cut off in counts one).
    pub total_outages: u64,
    /// The most outages any one site sees.
    pub max_outages_per_site: u32,
    /// Sites down or cut off in the worst batch.
    pub largest_blast_radius: usize,
}

impl Plan {
    pub fn cost(&self) -> PlanCost {
        PlanCost {
            batches: self.batches.len(),
            total_outages: self.outages.values().map(|&c| u64::from(c)).sum(),
            max_outages_per_site: self.outages.values().copied().max().unwrap_or(0),
            largest_blast_radius: self.blast_radius.iter().copied().max().unwrap_or(0),
        }
    }

    /// Operator-facing dry run: batches with explanations, AP groups, unplanned nodes, outages and
    /// warnings.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let nodes: usize = self.batches.iter().map(|b| b.nodes.len()).sum();
        let policy = match self.ap_policy {
            ApPolicy::Group => "group",
            ApPolicy::DependentsFirst => "dependents-first",
        };
        let limit = if self.limit > 0 { self.limit.to_string() } else { "none".to_string() };
        let strategy = match self.strategy {
            PlanStrategy::Terragraph => "terragraph",
            PlanStrategy::FewestBatches => "fewest-batches",
        };
        let _ = writeln!(
            out,
            "Plan: {} batch(es), {nodes} node(s); strategy {strategy}, ap-policy {policy}, limit {limit}, max {} POP \
             site(s) per batch",
            self.batches.len(),
            self.max_pops_per_batch
        );
        let cost = self.cost();
        let _ = writeln!(
            out,
            "Cost: {} site outage(s) in total, at most {} per site; largest blast radius {} site(s)",
            cost.total_outages, cost.max_outages_per_site, cost.largest_blast_radius
        );

        if self.ap_groups.is_empty() {
            out.push_str("\nAP groups: none\n");
        } else {
            out.push_str("\nAP groups (pending articulation point: sites it cuts off from every POP):\n");
            for (key, cut) in &self.ap_groups {
                let _ = writeln!(out, "  {key}: {}", cut.join(", "));
            }
        }

        for (i, b) in self.batches.iter().enumerate() {
            let radius = self.blast_radius.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "\nBatch {} — {} node(s) at {} site(s), blast radius {radius} site(s)",
                i + 1,
                b.nodes.len(),
                b.sites.len()
            );
            let _ = writeln!(out, "  sites: {}", b.sites.join(", "));
            let _ = writeln!(out, "  nodes: {}", b.nodes.join(", "));
            for line in b.explanation.lines() {
                let _ = writeln!(out, "  {line}");
            }
            for w in &b.warnings {
                let _ = writeln!(out, "  WARNING: {w}");
            }
        }

        if !self.unplanned.is_empty() {
            out.push_str("\nUnplanned (never in any batch):\n");
            for (node, reason) in &self.unplanned {
                let _ = writeln!(out, "  {node}: {reason}");
            }
        }

        out.push_str("\nOutages per site (own reboots + reboots of sites it depends on):\n");
        if self.outages.len() <= OUTAGE_TABLE_MAX {
            for (site, count) in &self.outages {
                let _ = writeln!(out, "  {site}: {count}");
            }
        } else {
            let mut histogram: BTreeMap<u32, usize> = BTreeMap::new();
            for &c in self.outages.values() {
                *histogram.entry(c).or_default() += 1;
            }
            for (count, sites) in histogram {
                let _ = writeln!(out, "  {sites} site(s) with {count} outage(s)");
            }
        }

        if !self.warnings.is_empty() {
            out.push_str("\nWarnings:\n");
            for w in &self.warnings {
                let _ = writeln!(out, "  {w}");
            }
        }
        out
    }
}
