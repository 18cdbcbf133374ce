//! `PlanStrategy::FewestBatches` on random meshes: the safety rules on every batch of every plan,
//! every pending node a POP reaches planned exactly once, and the same plan however the topology
//! is listed or asked (whole, or batch by batch as the controller does).

mod common;

use common::meshes::random_case;
use common::*;
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy, Mesh, PlanRequest, PlanStrategy};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn fewest<'a>(c: &'a common::meshes::Case, pending: &'a BTreeSet<String>) -> PlanRequest<'a> {
    PlanRequest {
        strategy: PlanStrategy::FewestBatches,
        ..req(&c.topo, pending, c.limit, c.policy, c.max_pops)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_batch_is_safe_and_every_reachable_node_is_planned_once(
        seed in any::<u64>(), n_sites in 1usize..=60, n_pops in 1usize..=4,
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let plan = plan_all(&fewest(&c, &c.pending));
        if let Err(e) = check_plan(&c, &plan, |_, _, _| Ok(())) {
            prop_assert!(false, "limit {} max_pops {} {:?}: {e}", c.limit, c.max_pops, c.policy);
        }
    }

    #[test]
    fn the_plan_is_the_same_however_listed_or_asked(
        seed in any::<u64>(), n_sites in 1usize..=60, n_pops in 1usize..=4, perm in any::<u64>(),
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let plan = plan_all(&fewest(&c, &c.pending));
        let other = shuffled(&c.topo, perm);
        let again = plan_all(&PlanRequest { topology: &other, ..fewest(&c, &c.pending) });
        prop_assert_eq!(&plan, &again);
        // Batch by batch, as the controller asks before every batch.
        let mesh = Mesh::new(&c.topo);
        let mut pending = c.pending.clone();
        for (i, b) in plan.batches.iter().enumerate() {
            let asked = mesh.next_batch(&fewest(&c, &pending));
            prop_assert_eq!(&asked.nodes, &b.nodes, "batch {}", i + 1);
            pending.retain(|n| !b.nodes.contains(n));
        }
        prop_assert!(next_batch(&fewest(&c, &pending)).nodes.is_empty());
    }
}

/// A street of six one-node sites with a POP at each end: Terragraph peels it from the leaves of
/// its traversal; with the POP quota lifted, fewest-batches reboots it in one batch, and with a
/// limit packs it in ceil(6 / limit).
#[test]
fn a_street_between_two_pops_needs_far_fewer_batches() {
    let t = simple("ABCDEF", "AF", &["AB", "BC", "CD", "DE", "EF"]);
    let pending = all_nodes(&t);
    let terragraph = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 2));
    let one = plan_all(&PlanRequest {
        strategy: PlanStrategy::FewestBatches,
        ..req(&t, &pending, 0, ApPolicy::Group, 2)
    });
    assert!(terragraph.batches.len() > 1, "{:?}", batches(&terragraph));
    assert_eq!(batches(&one).len(), 1);
    let three = plan_all(&PlanRequest {
        strategy: PlanStrategy::FewestBatches,
        ..req(&t, &pending, 3, ApPolicy::Group, 2)
    });
    assert_eq!(batches(&three).len(), 2, "{:?}", batches(&three));
    assert!(three.render_human().contains("strategy fewest-batches"));
}

#[test]
fn an_ap_group_goes_whole_even_when_it_carries_an_upgraded_site() {
    // A—B—C—D, A the only POP and upgraded, C upgraded: B cuts C and D off, so B goes with its
    // whole group (D), and C, upgraded, is cut off meanwhile as in Terragraph.
    let t = simple("ABCD", "A", &["AB", "BC", "CD"]);
    let pending = set(&["b1", "d1"]);
    let r = req(&t, &pending, 0, ApPolicy::Group, 1);
    let plan = plan_all(&PlanRequest { strategy: PlanStrategy::FewestBatches, ..r });
    assert_eq!(batches(&plan), vec![vec!["b1".to_string(), "d1".to_string()]]);
    assert_eq!(plan.blast_radius, vec![3]);
}

#[test]
fn a_site_that_carries_an_upgraded_one_waits_for_another_path() {
    // Ring A—B—C—D—A, A the POP (upgraded), C upgraded: B and D each could carry C, but not both
    // at once, so they go in two batches whatever the limit.
    let t = simple("ABCD", "A", &["AB", "BC", "CD", "DA"]);
    let pending = set(&["b1", "d1"]);
    let r = req(&t, &pending, 0, ApPolicy::Group, 1);
    let plan = plan_all(&PlanRequest { strategy: PlanStrategy::FewestBatches, ..r });
    assert_eq!(batches(&plan).len(), 2, "{:?}", batches(&plan));
}
