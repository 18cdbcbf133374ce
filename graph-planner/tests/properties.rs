//! Property tests on random meshes (reference §4.4, widened): 2–60 sites, 1–4 POPs, 1–3 nodes per
//! site, dead links, offline nodes, islands, random pending sets, limits, policies and POP quotas.

mod common;

use common::*;
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy, Plan};
use meshlift_protocol::Topology;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

struct Case {
    topo: Topology,
    pending: BTreeSet<String>,
    limit: i64,
    max_pops: u32,
    policy: ApPolicy,
}

fn random_case(seed: u64, n_sites: usize, n_pops: usize) -> Case {
    let mut rng = SplitMix(seed);
    let n_pops = n_pops.min(n_sites);
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
    let node_of = |rng: &mut SplitMix, specs: &[SiteSpec], s: usize| {
        let nodes = &specs[s].nodes;
        nodes[rng.below(nodes.len() as u64) as usize].0.clone()
    };
    let mut links = Vec::new();
    // A random tree (a few edges dropped to make islands), then extra edges for redundancy.
    for i in 1..n_sites {
        if rng.chance(4) {
            continue;
        }
        let j = rng.below(i as u64) as usize;
        let (a, z) = (node_of(&mut rng, &specs, i), node_of(&mut rng, &specs, j));
        links.push((a, z, !rng.chance(10)));
    }
    for _ in 0..rng.below(n_sites as u64 / 2 + 1) {
        let (i, j) = (rng.below(n_sites as u64) as usize, rng.below(n_sites as u64) as usize);
        if i != j {
            let (a, z) = (node_of(&mut rng, &specs, i), node_of(&mut rng, &specs, j));
            links.push((a, z, !rng.chance(15)));
        }
    }
    let topo = build(&specs, &links);
    let pending = topo.nodes.iter().filter(|_| rng.chance(75)).map(|n| n.name.clone()).collect();
    let limit = [0, 0, 1, 2, 3, 5, 10][rng.below(7) as usize];
    let max_pops = [1, 1, 1, 2, 3][rng.below(5) as usize];
    let policy = if rng.chance(70) { ApPolicy::Group } else { ApPolicy::DependentsFirst };
    Case { topo, pending, limit, max_pops, policy }
}

fn shuffled(t: &Topology, seed: u64) -> Topology {
    let mut rng = SplitMix(seed);
    let (mut nodes, mut links, mut sites) = (t.nodes.clone(), t.links.clone(), t.sites.clone());
    rng.shuffle(&mut nodes);
    rng.shuffle(&mut links);
    rng.shuffle(&mut sites);
    Topology::new(t.name.clone(), nodes, links, sites).expect("a permutation of a valid topology")
}

fn check_plan(c: &Case, plan: &Plan) -> Result<(), String> {
    let mut pending = c.pending.clone();
    let full = Naive::new(&c.topo, &c.pending);
    let before = full.connected(&BTreeSet::new());
    let mut outages: BTreeMap<String, u32> = BTreeMap::new();
    for (i, b) in plan.batches.iter().enumerate() {
        check_batch(&c.topo, &pending, &b.nodes, c.limit, c.max_pops, c.policy)
            .map_err(|e| format!("batch {}: {e}", i + 1))?;
        // Exactness: the naive GraphHelper with our fixed order gives the same batch.
        let naive = Naive::new(&c.topo, &pending).batch(c.limit, c.max_pops, c.policy, &mut canonical);
        let ours: BTreeSet<String> = b.nodes.iter().cloned().collect();
        if naive != ours {
            return Err(format!("batch {}: ours {ours:?}, naive GraphHelper {naive:?}", i + 1));
        }
        // Outages recounted from connectivity: down or cut off from every POP.
        let g = Naive::new(&c.topo, &pending);
        let down: BTreeSet<String> =
            b.nodes.iter().map(|n| c.topo.node(n).expect("planned node exists").site_name.clone()).collect();
        let after = g.connected(&down);
        for s in &before {
            if down.contains(s) || !after.contains(s) {
                *outages.entry(s.clone()).or_default() += 1;
            }
        }
        for n in &b.nodes {
            if !pending.remove(n) {
                return Err(format!("{n} planned twice"));
            }
        }
    }
    // Coverage: exactly the pending nodes of reachable, linked sites are planned; the rest are
    // reported as unplanned.
    let plannable: BTreeSet<String> = c
        .pending
        .iter()
        .filter(|n| {
            let node = c.topo.node(n).expect("pending names come from the topology");
            node.status.is_online()
                && before.contains(&node.site_name)
                && full.adj.contains_key(&node.site_name)
        })
        .cloned()
        .collect();
    let planned: BTreeSet<String> = plan.batches.iter().flat_map(|b| b.nodes.iter().cloned()).collect();
    if planned != plannable {
        return Err(format!("planned {planned:?} != plannable {plannable:?}"));
    }
    let unplanned: BTreeSet<String> = plan.unplanned.iter().map(|(n, _)| n.clone()).collect();
    let expected: BTreeSet<String> = c.pending.difference(&plannable).cloned().collect();
    if unplanned != expected {
        return Err(format!("unplanned {unplanned:?} != {expected:?}"));
    }
    for (site, &count) in &plan.outages {
        let want = outages.get(site).copied().unwrap_or(0);
        if count != want {
            return Err(format!("site {site}: {count} outages reported, {want} recounted"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_the_invariants_cover_everything_and_match_graphhelper(
        seed in any::<u64>(), n_sites in 2usize..=60, n_pops in 1usize..=4,
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let r = req(&c.topo, &c.pending, c.limit, c.policy, c.max_pops);
        let plan = plan_all(&r);
        if let Err(e) = check_plan(&c, &plan) {
            prop_assert!(false, "limit {} max_pops {} {:?}: {e}", c.limit, c.max_pops, c.policy);
        }
        // next_batch is the first step of plan_all.
        let first = next_batch(&r);
        prop_assert_eq!(first.nodes, plan.batches.first().map(|b| b.nodes.clone()).unwrap_or_default());
    }

    #[test]
    fn the_same_input_in_any_order_gives_the_same_plan(
        seed in any::<u64>(), n_sites in 2usize..=60, n_pops in 1usize..=4, perm in any::<u64>(),
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let plan = plan_all(&req(&c.topo, &c.pending, c.limit, c.policy, c.max_pops));
        let other = shuffled(&c.topo, perm);
        let again = plan_all(&req(&other, &c.pending, c.limit, c.policy, c.max_pops));
        prop_assert_eq!(plan, again);
    }
}
