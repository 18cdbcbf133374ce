//! Random meshes for the property tests, shaped to reach the corners where planners and
//! GraphHelper ports have disagreed: isolated online sites, POP sites without a live link,
//! single-site and single-POP networks, two links between one pair of nodes with different
//! liveness, links inside one site, offline one-node sites in the middle of a path, excluded POPs,
//! small limits with multi-node sites.

use super::{build, SiteSpec, SplitMix};
use meshlift_graph_planner::ApPolicy;
use meshlift_protocol::Topology;
use std::collections::BTreeSet;

pub struct Case {
    pub topo: Topology,
    pub pending: BTreeSet<String>,
    pub limit: i64,
    pub max_pops: u32,
    pub policy: ApPolicy,
}

/// `n_sites` ≥ 1 sites, `n_pops` (≥ 1, at most `n_sites`) of them POP sites.
pub fn random_case(seed: u64, n_sites: usize, n_pops: usize) -> Case {
    let mut rng = SplitMix(seed);
    let n_sites = n_sites.max(1);
    let n_pops = n_pops.clamp(1, n_sites);
    let mut specs = Vec::new();
    for i in 0..n_sites {
        let k = 1 + rng.below(3) as usize;
        let nodes = (0..k).map(|j| (format!("n{i}_{j}"), !rng.chance(8))).collect();
        specs.push(SiteSpec { name: format!("s{i:02}"), pop: false, nodes });
    }
    let mut order: Vec<usize> = (0..n_sites).collect();
    rng.shuffle(&mut order);
    for &i in order.iter().take(n_pops) {
        specs[i].pop = true;
    }
    // Some one-node sites that are offline: when they sit on a path, the path is cut there.
    for s in specs.iter_mut().filter(|s| !s.pop) {
        if rng.chance(6) {
            s.nodes.truncate(1);
            s.nodes[0].1 = false;
        }
    }
    // Some sites get no link at all (isolated online sites, POP sites with no live link).
    let isolated: Vec<bool> = (0..n_sites).map(|_| rng.chance(8)).collect();
    let node_of = |rng: &mut SplitMix, specs: &[SiteSpec], s: usize| {
        let nodes = &specs[s].nodes;
        nodes[rng.below(nodes.len() as u64) as usize].0.clone()
    };
    let mut links = Vec::new();
    let mut link = |rng: &mut SplitMix, i: usize, j: usize, dead_percent: u64| {
        if isolated[i] || isolated[j] {
            return;
        }
        let (a, z) = (node_of(rng, &specs, i), node_of(rng, &specs, j));
        if a == z {
            return;
        }
        let alive = !rng.chance(dead_percent);
        links.push((a.clone(), z.clone(), alive));
        // Now and then a second link between the same two nodes, with the other liveness.
        if rng.chance(10) {
            links.push((z, a, !alive));
        }
    };
    // A random tree (a few edges dropped to make islands), then extra edges for redundancy.
    for i in 1..n_sites {
        if !rng.chance(4) {
            let j = rng.below(i as u64) as usize;
            link(&mut rng, i, j, 10);
        }
    }
    for _ in 0..rng.below(n_sites as u64 / 2 + 1) {
        let (i, j) = (rng.below(n_sites as u64) as usize, rng.below(n_sites as u64) as usize);
        if i != j {
            link(&mut rng, i, j, 15);
        }
    }
    // Radio links between two nodes of one site: they never join two sites.
    for i in 0..n_sites {
        if rng.chance(10) {
            link(&mut rng, i, i, 30);
        }
    }
    let topo = build(&specs, &links);
    // Pending: most nodes; POP nodes are excluded more often (operators upgrade POPs last).
    let pending = topo
        .nodes
        .iter()
        .filter(|n| rng.chance(if n.pop_node { 55 } else { 75 }))
        .map(|n| n.name.clone())
        .collect();
    let limit = [0, 0, 1, 2, 3, 1, 2, 3, 5, 10][rng.below(10) as usize];
    let max_pops = [1, 1, 1, 2, 3][rng.below(5) as usize];
    let policy = if rng.chance(70) { ApPolicy::Group } else { ApPolicy::DependentsFirst };
    Case { topo, pending, limit, max_pops, policy }
}
