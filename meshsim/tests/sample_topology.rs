//! `configs/topologies/sample.json`, the demo mesh, has what the demo needs to show: enough
//! sites, two POPs, articulation points (sites whose reboot cuts others off), a multi-node site,
//! and redundant links. And it runs under meshsim.

mod common;

use common::*;
use meshlift_meshsim::{MeshConfig, NodeState};
use meshlift_protocol::{LinkType, NodeStatus, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SAMPLE: &str = include_str!("../../configs/topologies/sample.json");

fn sample() -> Topology {
    Topology::from_json(SAMPLE).expect("sample topology parses")
}

/// Site adjacency over alive links between different sites.
fn site_graph(t: &Topology) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        t.sites.iter().map(|s| (s.name.clone(), BTreeSet::new())).collect();
    for l in t.links.iter().filter(|l| l.is_alive) {
        let a = &t.node(&l.a_node_name).unwrap().site_name;
        let z = &t.node(&l.z_node_name).unwrap().site_name;
        if a != z {
            graph.get_mut(a).unwrap().insert(z.clone());
            graph.get_mut(z).unwrap().insert(a.clone());
        }
    }
    graph
}

fn pop_sites(t: &Topology) -> BTreeSet<String> {
    t.nodes.iter().filter(|n| n.pop_node).map(|n| n.site_name.clone()).collect()
}

/// Sites that lose every path to a POP site when `removed` goes down.
fn cut_off_by(t: &Topology, removed: &str) -> BTreeSet<String> {
    let graph = site_graph(t);
    let mut seen: BTreeSet<String> = pop_sites(t).into_iter().filter(|s| s != removed).collect();
    let mut stack: Vec<String> = seen.iter().cloned().collect();
    while let Some(s) = stack.pop() {
        for n in &graph[&s] {
            if n != removed && seen.insert(n.clone()) {
                stack.push(n.clone());
            }
        }
    }
    graph.keys().filter(|s| *s != removed && !seen.contains(*s)).cloned().collect()
}

#[test]
fn sample_topology_has_the_shape_the_demo_needs() {
    let t = sample();
    assert!(t.nodes.len() >= 20, "{} nodes", t.nodes.len());
    assert!(t.sites.len() >= 15, "{} sites", t.sites.len());
    assert_eq!(pop_sites(&t).len(), 2, "two POP sites");
    assert!(t.nodes.iter().all(|n| n.status == NodeStatus::Online));
    assert!(t.links.iter().all(|l| l.is_alive));

    // Connected: nothing is cut off with everything up.
    assert!(cut_off_by(&t, "").is_empty());

    // Articulation points relative to the POPs.
    let aps: BTreeMap<String, BTreeSet<String>> = t
        .sites
        .iter()
        .map(|s| (s.name.clone(), cut_off_by(&t, &s.name)))
        .filter(|(_, cut)| !cut.is_empty())
        .collect();
    let pine: Vec<&str> = aps["pine"].iter().map(String::as_str).collect();
    assert_eq!(pine, ["ash", "birch", "poplar", "willow"], "pine's reboot cuts off its branch");
    assert!(aps.contains_key("alder") && aps.contains_key("rowan"), "nested APs: {aps:?}");
    // Redundancy: the core ring survives any single site.
    for site in ["oak", "elm", "pop-north"] {
        assert!(!aps.contains_key(site), "{site} should have a redundant path around it");
    }
    let graph = site_graph(&t);
    let edges: usize = graph.values().map(BTreeSet::len).sum::<usize>() / 2;
    assert!(edges >= t.sites.len(), "cycles exist: {edges} site edges for {} sites", t.sites.len());

    // Multi-node sites whose nodes are wired together.
    let mut per_site: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &t.nodes {
        per_site.entry(&n.site_name).or_default().push(&n.name);
    }
    let multi: Vec<&str> = per_site.iter().filter(|(_, n)| n.len() >= 2).map(|(s, _)| *s).collect();
    assert!(multi.len() >= 2 && per_site["alder"].len() == 3, "{multi:?}");
    for site in multi {
        let wired = t.links.iter().filter(|l| {
            l.link_type == LinkType::Ethernet && t.node(&l.a_node_name).unwrap().site_name == site
        });
        assert!(wired.count() >= per_site[site].len() - 1, "{site} nodes joined by ethernet");
    }
    assert!(t.links.iter().all(|l| {
        let same_site =
            t.node(&l.a_node_name).unwrap().site_name == t.node(&l.z_node_name).unwrap().site_name;
        (l.link_type == LinkType::Ethernet) == same_site
    }));
}

#[tokio::test]
async fn sample_runs_under_meshsim_and_an_ap_cuts_off_its_branch() {
    let work = tempfile::TempDir::new().unwrap();
    let mut config = MeshConfig::new(sample(), fake_node(), work.path());
    config.boot_delay = Duration::from_millis(200);
    let (sim, _work) = start_with((config, work)).await;
    assert!(sim.isolated_nodes().is_empty());

    sim.power_off("pine.a").unwrap();
    wait_until("pine down", Duration::from_secs(5), || sim.node_state("pine.a") == Some(NodeState::Down))
        .await;
    let isolated: Vec<String> = sim.isolated_nodes().into_iter().collect();
    assert_eq!(isolated, ["ash.a", "ash.b", "birch.a", "poplar.a", "willow.a"]);

    sim.power_on("pine.a").unwrap();
    wait_until("branch back", Duration::from_secs(5), || sim.isolated_nodes().is_empty()).await;
    assert_eq!(sim.isolation().isolated_nodes(), ["ash.a", "ash.b", "birch.a", "poplar.a", "willow.a"]);
    sim.stop().await;
}
