//! Planner speed on generated meshes shaped like real deployments (see `meshgen`): one batch, and
//! a whole plan with limit 0 and limit 50 (Terragraph's one POP per batch, so at least as many
//! batches as POP sites). Targets (release, one core): one batch ≤ 5 ms at 10k sites and ≤ 50 ms at
//! 100k; whole plan ≤ 0.5 s at 10k and ≤ 10 s at 100k.
//!
//! "One batch" is what the controller pays before every batch: `Mesh::next_batch` on the live
//! topology with the mesh interned once per configured topology (the engine keeps it). Interning
//! (`mesh_new`) and a batch from scratch (`one_batch_fresh`, the free `next_batch`) are measured
//! beside it.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use meshlift_bench::meshgen::{generate, MeshSpec, Shape};
use meshlift_graph_planner::{next_batch, plan_all, ApPolicy, Mesh, PlanRequest, PlanStrategy};
use std::collections::BTreeSet;
use std::time::Duration;

fn planner(c: &mut Criterion) {
    let sizes: Vec<usize> = match std::env::var("MESHLIFT_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![1_000, 10_000, 100_000],
    };
    for shape in [Shape::StreetGrid, Shape::Geometric] {
        for &sites in &sizes {
            let topology = generate(&MeshSpec::new(shape, sites));
            let pending: BTreeSet<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
            let req = |limit| PlanRequest {
                topology: &topology,
                pending: &pending,
                limit,
                ap_policy: ApPolicy::Group,
                max_pops_per_batch: 1,
                strategy: PlanStrategy::Terragraph,
            };
            let label = format!("{shape:?}/{sites}");
            let mut group = c.benchmark_group("planner");
            group.sample_size(10);
            if sites >= 100_000 {
                group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
            } else {
                group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
            }
            let mesh = Mesh::new(&topology);
            // A live copy, as the engine passes it (the fit check by name is part of the cost).
            let live = topology.clone();
            let live_req = PlanRequest { topology: &live, ..req(0) };
            group.bench_function(BenchmarkId::new("one_batch", &label), |b| {
                b.iter(|| mesh.next_batch(&live_req))
            });
            group.bench_function(BenchmarkId::new("mesh_new", &label), |b| b.iter(|| Mesh::new(&topology)));
            group.bench_function(BenchmarkId::new("one_batch_fresh", &label), |b| {
                b.iter(|| next_batch(&req(0)))
            });
            // A whole 100k-site plan is thousands of batches; criterion's minimum of 10 samples
            // would take many minutes, so that size gets one timed run, printed.
            for limit in [0, 50] {
                if sites >= 100_000 {
                    let start = std::time::Instant::now();
                    let plan = plan_all(&req(limit));
                    eprintln!(
                        "planner/plan_limit{limit}/{label}: one run {:.2} s, {} batches",
                        start.elapsed().as_secs_f64(),
                        plan.batches.len()
                    );
                    continue;
                }
                let plan = plan_all(&req(limit));
                eprintln!(
                    "{label} limit {limit}: {} batches, {} POP sites, {} nodes",
                    plan.batches.len(),
                    topology.nodes.iter().filter(|n| n.pop_node).count(),
                    topology.nodes.len()
                );
                group.bench_function(BenchmarkId::new(format!("plan_limit{limit}"), &label), |b| {
                    b.iter(|| plan_all(&req(limit)))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, planner);
criterion_main!(benches);
