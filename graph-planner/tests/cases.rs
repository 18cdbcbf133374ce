//! Fixed cases built from the rules of reference §3: what an operator would see on small meshes.

mod common;

use common::*;
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy};
use std::collections::BTreeSet;

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn plan_of(t: &meshlift_protocol::Topology, pending: &BTreeSet<String>, limit: i64) -> Vec<Vec<String>> {
    batches(&plan_all(&req(t, pending, limit, ApPolicy::Group, 1)))
}

#[test]
fn single_pop_line_goes_in_one_batch_with_a_warning() {
    let t = simple("ABCD", "A", &["AB", "BC", "CD"]);
    let pending = all_nodes(&t);
    let plan = plan_all(&req(&t, &pending, 1, ApPolicy::Group, 1));
    assert_eq!(batches(&plan), vec![v(&["a1", "b1", "c1", "d1"])]);
    assert_eq!(plan.ap_groups.get("A"), Some(&v(&["B", "C", "D"])));
    assert!(plan.warnings.iter().any(|w| w.contains("only POP site")), "{:?}", plan.warnings);
}

#[test]
fn single_pop_ring_goes_in_one_batch() {
    let t = simple("ABCD", "A", &["AB", "BC", "CD", "DA"]);
    let pending = all_nodes(&t);
    assert_eq!(plan_of(&t, &pending, 2), vec![v(&["a1", "b1", "c1", "d1"])]);
}

#[test]
fn excluding_the_single_pop_stages_the_ring() {
    let t = simple("ABCD", "A", &["AB", "BC", "CD", "DA"]);
    let pending = set(&["b1", "c1", "d1"]);
    // A (upgraded) pushes B and D; B is popped first and discovers C; C and D are leaves.
    assert_eq!(plan_of(&t, &pending, 0), vec![v(&["c1", "d1"]), v(&["b1"])]);
    assert_eq!(plan_of(&t, &pending, 1), vec![v(&["c1"]), v(&["d1"]), v(&["b1"])]);
}

#[test]
fn sub_aps_are_absorbed_into_the_outer_group() {
    let t = simple("ABCD", "A", &["AB", "BC", "CD"]);
    let pending = set(&["b1", "c1", "d1"]);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(plan.ap_groups.len(), 1);
    assert_eq!(plan.ap_groups.get("B"), Some(&v(&["C", "D"])));
    assert_eq!(batches(&plan), vec![v(&["b1", "c1", "d1"])]);
}

#[test]
fn dependents_first_upgrades_the_tail_before_its_articulation_points() {
    let t = simple("ABCD", "A", &["AB", "BC", "CD"]);
    let pending = set(&["b1", "c1", "d1"]);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::DependentsFirst, 1));
    assert_eq!(batches(&plan), vec![v(&["d1"]), v(&["c1"]), v(&["b1"])]);
    // More outages (D is cut off three times), smaller blast radius (one site at a time for D).
    assert_eq!(plan.outages["D"], 3);
    assert_eq!(plan.outages["C"], 2);
    assert_eq!(plan.outages["B"], 1);
    assert_eq!(plan.blast_radius, vec![1, 2, 3]);
    let group = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(group.blast_radius, vec![3]);
    assert!(group.outages.values().all(|&c| c <= 1));
    assert!(plan.render_human().contains("dependents-first"));
}

#[test]
fn offline_sites_vanish_and_what_hangs_behind_them_is_unplanned() {
    let specs = vec![
        SiteSpec { name: "A".into(), pop: true, nodes: vec![("a1".into(), true)] },
        SiteSpec { name: "B".into(), pop: false, nodes: vec![("b1".into(), false)] },
        SiteSpec { name: "C".into(), pop: false, nodes: vec![("c1".into(), true)] },
        SiteSpec { name: "D".into(), pop: false, nodes: vec![("d1".into(), true)] },
    ];
    let links = vec![
        ("a1".into(), "b1".into(), true),
        ("b1".into(), "c1".into(), true),
        ("a1".into(), "d1".into(), true),
    ];
    let t = build(&specs, &links);
    let pending = all_nodes(&t);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(batches(&plan), vec![v(&["a1", "d1"])]);
    assert_eq!(plan.unplanned.len(), 2);
    assert_eq!(plan.unplanned[0], ("b1".to_string(), "node is offline".to_string()));
    assert_eq!(plan.unplanned[1].0, "c1");
    assert!(plan.unplanned[1].1.contains("cut off from every POP"));
}

#[test]
fn dead_links_do_not_count() {
    // A–B is dead, so B hangs off C: C is an AP with group {B}.
    let specs: Vec<SiteSpec> = "ABC"
        .chars()
        .map(|c| SiteSpec {
            name: c.to_string(),
            pop: c == 'A',
            nodes: vec![(format!("{}1", c.to_ascii_lowercase()), true)],
        })
        .collect();
    let links = vec![
        ("a1".into(), "b1".into(), false),
        ("a1".into(), "c1".into(), true),
        ("c1".into(), "b1".into(), true),
    ];
    let t = build(&specs, &links);
    let pending = set(&["b1", "c1"]);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(plan.ap_groups.get("C"), Some(&v(&["B"])));
    assert_eq!(batches(&plan), vec![v(&["b1", "c1"])]);
}

#[test]
fn islands_without_a_pop_are_reported_not_planned() {
    let t = simple("ABXY", "A", &["AB", "XY"]);
    let pending = all_nodes(&t);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(batches(&plan), vec![v(&["a1", "b1"])]);
    let unplanned: Vec<&str> = plan.unplanned.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(unplanned, vec!["x1", "y1"]);
    assert!(plan.render_human().contains("x1: site X is cut off from every POP"));
}

#[test]
fn a_one_node_pop_network_plans_that_node() {
    // Upstream's `removeVertex` of the fake root leaves the POP an empty adjacency entry, so its
    // traversal finds the POP a leaf and takes it.
    let t = simple("A", "A", &[]);
    let pending = all_nodes(&t);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(batches(&plan), vec![v(&["a1"])]);
    assert!(plan.unplanned.is_empty());
}

#[test]
fn pop_sites_without_live_links_are_planned_one_per_batch() {
    let t = simple("AB", "AB", &[]);
    let pending = all_nodes(&t);
    assert_eq!(plan_of(&t, &pending, 0), vec![v(&["a1"]), v(&["b1"])]);
    let both = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 2));
    assert_eq!(batches(&both), vec![v(&["a1", "b1"])]);
}

#[test]
fn only_pending_nodes_of_a_partially_pending_site_reboot() {
    let specs = vec![
        SiteSpec { name: "A".into(), pop: true, nodes: vec![("a1".into(), true)] },
        SiteSpec {
            name: "B".into(),
            pop: false,
            nodes: vec![("b1".into(), true), ("b2".into(), true), ("b3".into(), true)],
        },
        SiteSpec { name: "C".into(), pop: false, nodes: vec![("c1".into(), true)] },
    ];
    let links = vec![
        ("a1".into(), "b1".into(), true),
        ("a1".into(), "c1".into(), true),
        ("b3".into(), "c1".into(), true),
    ];
    let t = build(&specs, &links);
    let pending = set(&["b2", "c1"]);
    let b = next_batch(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(b.nodes, v(&["b2", "c1"]));
    assert_eq!(b.sites, v(&["B", "C"]));
}

#[test]
fn limit_counts_nodes_with_first_fit_packing() {
    // A (upgraded POP) with leaves B (1 node), C (3 nodes), D (1 node); limit 2.
    let specs = vec![
        SiteSpec { name: "A".into(), pop: true, nodes: vec![("a1".into(), true)] },
        SiteSpec { name: "B".into(), pop: false, nodes: vec![("b1".into(), true)] },
        SiteSpec {
            name: "C".into(),
            pop: false,
            nodes: vec![("c1".into(), true), ("c2".into(), true), ("c3".into(), true)],
        },
        SiteSpec { name: "D".into(), pop: false, nodes: vec![("d1".into(), true)] },
    ];
    let links = vec![
        ("a1".into(), "b1".into(), true),
        ("a1".into(), "c1".into(), true),
        ("a1".into(), "d1".into(), true),
    ];
    let t = build(&specs, &links);
    let pending = set(&["b1", "c1", "c2", "c3", "d1"]);
    let first = next_batch(&req(&t, &pending, 2, ApPolicy::Group, 1));
    assert_eq!(first.nodes, v(&["b1", "d1"]), "C does not fit, D still does");
    assert!(first.explanation.contains("do not fit"), "{}", first.explanation);
    // C alone exceeds the limit: accepted as the first candidate, with a warning.
    let plan = plan_all(&req(&t, &pending, 2, ApPolicy::Group, 1));
    assert_eq!(batches(&plan), vec![v(&["b1", "d1"]), v(&["c1", "c2", "c3"])]);
    assert!(plan.batches[1].warnings[0].contains("more than limit 2"));
}

#[test]
fn one_pop_per_batch_unless_more_are_allowed() {
    // Three POPs around an upgraded hub H. P is popped first and discovers H, so P is the
    // trunk; Q and R are leaves.
    let t = simple("HPQR", "PQR", &["HP", "HQ", "HR"]);
    let pending = set(&["p1", "q1", "r1"]);
    assert_eq!(plan_of(&t, &pending, 0), vec![v(&["q1"]), v(&["p1"]), v(&["r1"])]);
    let plan = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 2));
    assert_eq!(batches(&plan), vec![v(&["q1", "r1"]), v(&["p1"])]);
    let one = plan_all(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert!(
        one.batches[0].explanation.contains("POP site(s), the most allowed: R"),
        "{}",
        one.batches[0].explanation
    );
    // 0 means Terragraph's 1.
    assert_eq!(batches(&plan_all(&req(&t, &pending, 0, ApPolicy::Group, 0))).len(), 3);
}

#[test]
fn unknown_pending_names_are_ignored_with_a_warning() {
    let t = simple("AB", "A", &["AB"]);
    let pending = set(&["b1", "ghost"]);
    let b = next_batch(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert_eq!(b.nodes, v(&["b1"]));
    assert!(b.warnings.iter().any(|w| w.contains("ghost")));
}

#[test]
fn nothing_pending_means_an_empty_batch() {
    let t = simple("AB", "A", &["AB"]);
    let b = next_batch(&req(&t, &BTreeSet::new(), 0, ApPolicy::Group, 1));
    assert!(b.nodes.is_empty());
}

#[test]
fn waiting_sites_are_explained() {
    let t = simple("ABC", "A", &["AB", "BC"]);
    let pending = set(&["a1", "b1", "c1"]);
    // Single POP: everything in one group. Exclude the POP to see per-site reasons.
    let pending_without_pop = set(&["b1", "c1"]);
    let b = next_batch(&req(&t, &pending_without_pop, 0, ApPolicy::DependentsFirst, 1));
    assert_eq!(b.nodes, v(&["c1"]));
    assert!(
        b.explanation.contains("other sites still reach a POP through them: B (for C)"),
        "{}",
        b.explanation
    );
    let b = next_batch(&req(&t, &pending, 0, ApPolicy::Group, 1));
    assert!(b.explanation.contains("AP group {B, C}"), "{}", b.explanation);
}
