//! Fuzz the topology reader and the planner behind it: any text gives a validated topology or a
//! typed error naming the culprit — never a panic. An accepted topology must write back to JSON
//! that reads to the same topology, and a whole dry run (both strategies) must plan each node at
//! most once and only nodes it was asked about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlift_graph_planner::{plan_all, ApPolicy, PlanRequest, PlanStrategy};
use meshlift_protocol::Topology;
use std::collections::BTreeSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(topology) = Topology::from_json(text) else { return };
    let json = topology.to_json().to_string();
    let again = Topology::from_json(&json).expect("a written topology reads back");
    assert_eq!(again, topology);
    let pending: BTreeSet<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
    for strategy in [PlanStrategy::Terragraph, PlanStrategy::FewestBatches] {
        let plan = plan_all(&PlanRequest {
            topology: &topology,
            pending: &pending,
            limit: i64::from(data.len() as u8 % 4),
            ap_policy: ApPolicy::default(),
            max_pops_per_batch: 1,
            strategy,
        });
        let mut seen = BTreeSet::new();
        for batch in &plan.batches {
            for n in &batch.nodes {
                assert!(pending.contains(n), "planned a node nobody asked about: {n}");
                assert!(seen.insert(n.clone()), "node {n} planned twice");
            }
        }
    }
});
