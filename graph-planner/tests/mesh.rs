//! A [`Mesh`] interned once answers for every live copy of its topology exactly as planning from
//! scratch does; a topology that does not fit it is planned from scratch, never misread.

mod common;

use common::*;
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy, Mesh};
use meshlift_protocol::{NodeStatus, Topology};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// A random mesh: a tree of sites plus extra links, some POPs, 1–3 nodes per site.
fn random_mesh(rng: &mut SplitMix, n_sites: usize) -> Topology {
    let mut specs = Vec::new();
    for i in 0..n_sites {
        let k = 1 + rng.below(3) as usize;
        let nodes = (0..k).map(|j| (format!("n{i}_{j}"), true)).collect();
        specs.push(SiteSpec { name: format!("s{i:02}"), pop: i == 0 || rng.chance(10), nodes });
    }
    let node = |rng: &mut SplitMix, s: usize| format!("n{s}_{}", rng.below(specs[s].nodes.len() as u64));
    let mut links = Vec::new();
    for i in 1..n_sites {
        let j = rng.below(i as u64) as usize;
        links.push((node(rng, i), node(rng, j), true));
    }
    for _ in 0..n_sites / 2 {
        let (i, j) = (rng.below(n_sites as u64) as usize, rng.below(n_sites as u64) as usize);
        if i != j {
            links.push((node(rng, i), node(rng, j), true));
        }
    }
    build(&specs, &links)
}

/// A live copy: some nodes offline, some links down, as reports would have it mid-upgrade.
fn live_copy(rng: &mut SplitMix, t: &Topology) -> Topology {
    let mut live = t.clone();
    for n in &mut live.nodes {
        if rng.chance(10) {
            n.status = NodeStatus::Offline;
        }
    }
    for l in &mut live.links {
        if rng.chance(15) {
            l.is_alive = false;
        }
    }
    live
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn a_kept_mesh_plans_every_live_copy_like_a_fresh_one(seed in any::<u64>(), n_sites in 2usize..=40) {
        let mut rng = SplitMix(seed);
        let configured = random_mesh(&mut rng, n_sites);
        let mesh = Mesh::new(&configured);
        prop_assert!(mesh.fits(&configured));
        for _ in 0..4 {
            let live = live_copy(&mut rng, &configured);
            prop_assert!(mesh.fits(&live));
            let pending: BTreeSet<String> =
                live.nodes.iter().filter(|_| rng.chance(70)).map(|n| n.name.clone()).collect();
            let limit = [0, 1, 3, 5][rng.below(4) as usize];
            let policy = if rng.chance(70) { ApPolicy::Group } else { ApPolicy::DependentsFirst };
            let r = req(&live, &pending, limit, policy, 1);
            prop_assert_eq!(mesh.next_batch(&r), next_batch(&r));
            prop_assert_eq!(mesh.plan_all(&r), plan_all(&r));
        }
    }
}

#[test]
fn a_topology_that_does_not_fit_is_planned_from_scratch() {
    let mut rng = SplitMix(7);
    let configured = random_mesh(&mut rng, 30);
    let other = random_mesh(&mut rng, 25);
    let mesh = Mesh::new(&configured);
    assert!(!mesh.fits(&other));

    // Same counts, one node renamed: still not the same mesh.
    let mut renamed = configured.clone();
    renamed.nodes[3].name.push('x');
    assert!(!mesh.fits(&renamed));

    let pending = all_nodes(&other);
    let r = req(&other, &pending, 0, ApPolicy::Group, 1);
    assert_eq!(mesh.next_batch(&r), next_batch(&r));
    assert_eq!(mesh.plan_all(&r), plan_all(&r));
    assert!(!mesh.next_batch(&r).nodes.is_empty(), "the other mesh has something to plan");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A whole plan replays its recorded traversal from the first step each batch changed; asking
    /// from scratch before every batch (as the controller does) must give the same batches. This
    /// checks the replay on meshes far larger than the naive GraphHelper can follow.
    #[test]
    fn a_whole_plan_is_the_batches_asked_for_one_by_one(seed in any::<u64>(), n_sites in 100usize..=800) {
        let mut rng = SplitMix(seed);
        let configured = random_mesh(&mut rng, n_sites);
        let topo = live_copy(&mut rng, &configured);
        let mut pending: BTreeSet<String> =
            topo.nodes.iter().filter(|_| rng.chance(90)).map(|n| n.name.clone()).collect();
        let limit = [0, 0, 5, 20][rng.below(4) as usize];
        let max_pops = [1, 1, 2][rng.below(3) as usize];
        let policy = if rng.chance(80) { ApPolicy::Group } else { ApPolicy::DependentsFirst };
        let plan = plan_all(&req(&topo, &pending, limit, policy, max_pops));
        let mesh = Mesh::new(&topo);
        for (i, b) in plan.batches.iter().enumerate() {
            let asked = mesh.next_batch(&req(&topo, &pending, limit, policy, max_pops));
            prop_assert_eq!(&asked.nodes, &b.nodes, "batch {}", i + 1);
            prop_assert_eq!(&asked.explanation, &b.explanation, "batch {}", i + 1);
            for n in &b.nodes {
                pending.remove(n);
            }
        }
        prop_assert!(mesh.next_batch(&req(&topo, &pending, limit, policy, max_pops)).nodes.is_empty());
    }
}
