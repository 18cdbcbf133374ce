//! Property tests on random meshes (reference §4.4, widened; see `common::meshes` for the corners
//! the generator reaches): 1–60 sites, 1–4 POPs, 1–3 nodes per site, dead and duplicate links,
//! offline nodes and sites, islands, random pending sets, limits, policies and POP quotas.

mod common;

use common::graph_helper::{ApGroups, Canonical, GraphHelper, Hashed, Verdict};
use common::meshes::{random_case, Case};
use common::*;
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy, Plan};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Meshes up to this many sites get an exhaustive search of GraphHelper's iteration orders;
/// larger ones a bounded one (which tries the planner's documented order first).
const EXHAUSTIVE_SITES: usize = 8;
const SEARCH_BUDGET: usize = 20_000;

/// The batch the upstream port gives in the planner's documented order; for dependents-first the
/// same traversal over that policy's AP groups (not upstream: meshlift's own policy).
fn oracle_batch(c: &Case, pending: &BTreeSet<String>) -> BTreeSet<String> {
    match c.policy {
        ApPolicy::Group => GraphHelper::get_batch(&c.topo, pending, c.limit, c.max_pops, &mut Canonical),
        ApPolicy::DependentsFirst => {
            let groups: ApGroups = Naive::new(&c.topo, pending).groups(ApPolicy::DependentsFirst);
            let mut gh = GraphHelper::new(&c.topo, pending, c.limit, c.max_pops);
            // Upstream's groups are dropped, but computing them leaves every POP site an
            // adjacency entry (the fake root's), which the traversal needs.
            gh.get_ap_groups(&mut Canonical);
            gh.get_candidate_nodes(&groups, &mut Canonical)
        }
    }
}

/// The invariants, coverage and outage counts of `common::check_plan`, plus exactness: the
/// GraphHelper port in the planner's documented order gives the same batches, and nothing more
/// once the plan stops.
fn check_exact_plan(c: &Case, plan: &Plan) -> Result<(), String> {
    check_plan(c, plan, |i, pending, ours| {
        let oracle = oracle_batch(c, pending);
        if oracle != *ours {
            return Err(format!("batch {}: ours {ours:?}, GraphHelper {oracle:?}", i + 1));
        }
        Ok(())
    })?;
    let planned: BTreeSet<String> = plan.batches.iter().flat_map(|b| b.nodes.iter().cloned()).collect();
    let left: BTreeSet<String> = c.pending.difference(&planned).cloned().collect();
    if !oracle_batch(c, &left).is_empty() {
        return Err(format!("the plan stops while GraphHelper still has a batch for {left:?}"));
    }
    Ok(())
}

/// Every batch of the plan is one upstream GraphHelper returns under some iteration order.
fn check_fidelity(c: &Case, plan: &Plan, n_sites: usize) -> Result<(), String> {
    let budget = (n_sites > EXHAUSTIVE_SITES).then_some(SEARCH_BUDGET);
    let mut pending = c.pending.clone();
    for (i, b) in plan.batches.iter().enumerate() {
        let mut gh = GraphHelper::new(&c.topo, &pending, c.limit, c.max_pops);
        let groups = gh.get_ap_groups(&mut Canonical);
        let ours: BTreeSet<String> = b.nodes.iter().cloned().collect();
        match gh.can_return(&groups, &ours, budget) {
            Verdict::Yes => {}
            v => {
                return Err(format!("batch {} {ours:?}: GraphHelper under no iteration order ({v:?})", i + 1))
            }
        }
        pending.retain(|n| !ours.contains(n));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The issue-13 property: with `ap_policy = group`, every batch of every plan is one that
    /// upstream GraphHelper returns under some iteration order (exhaustive search up to 8 sites).
    #[test]
    fn every_group_batch_is_one_graphhelper_can_return(
        seed in any::<u64>(), n_sites in 1usize..=14, n_pops in 1usize..=3,
    ) {
        let mut c = random_case(seed, n_sites, n_pops);
        c.policy = ApPolicy::Group;
        let plan = plan_all(&req(&c.topo, &c.pending, c.limit, c.policy, c.max_pops));
        if let Err(e) = check_fidelity(&c, &plan, n_sites) {
            prop_assert!(false, "limit {} max_pops {}: {e}", c.limit, c.max_pops);
        }
    }

    /// The oracle's own claims: AP groups do not depend on iteration order, and the search finds
    /// every batch GraphHelper returns under a random order.
    #[test]
    fn the_order_search_finds_what_graphhelper_returns_under_random_orders(
        seed in any::<u64>(), n_sites in 1usize..=EXHAUSTIVE_SITES, n_pops in 1usize..=3, order in any::<u64>(),
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let batch = GraphHelper::get_batch(&c.topo, &c.pending, c.limit, c.max_pops, &mut Hashed(order));
        let mut gh = GraphHelper::new(&c.topo, &c.pending, c.limit, c.max_pops);
        let groups = gh.get_ap_groups(&mut Canonical);
        let mut other = GraphHelper::new(&c.topo, &c.pending, c.limit, c.max_pops);
        prop_assert_eq!(&other.get_ap_groups(&mut Hashed(order)), &groups);
        prop_assert_eq!(gh.can_return(&groups, &batch, None), Verdict::Yes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_the_invariants_cover_everything_and_match_graphhelper(
        seed in any::<u64>(), n_sites in 1usize..=60, n_pops in 1usize..=4,
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let r = req(&c.topo, &c.pending, c.limit, c.policy, c.max_pops);
        let plan = plan_all(&r);
        if let Err(e) = check_exact_plan(&c, &plan) {
            prop_assert!(false, "limit {} max_pops {} {:?}: {e}", c.limit, c.max_pops, c.policy);
        }
        // next_batch is the first step of plan_all.
        let first = next_batch(&r);
        prop_assert_eq!(first.nodes, plan.batches.first().map(|b| b.nodes.clone()).unwrap_or_default());
    }

    #[test]
    fn the_same_input_in_any_order_gives_the_same_plan(
        seed in any::<u64>(), n_sites in 1usize..=60, n_pops in 1usize..=4, perm in any::<u64>(),
    ) {
        let c = random_case(seed, n_sites, n_pops);
        let plan = plan_all(&req(&c.topo, &c.pending, c.limit, c.policy, c.max_pops));
        let other = shuffled(&c.topo, perm);
        let again = plan_all(&req(&other, &c.pending, c.limit, c.policy, c.max_pops));
        prop_assert_eq!(plan, again);
    }
}
