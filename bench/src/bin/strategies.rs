//! `strategies [SITES [LIMITS [POPS [RUNS]]]]` (lists comma separated, POPS 0 = unlimited):
//! batches and planning time of both planner strategies on the generated
//! street grid and geometric meshes (default 10 000 sites, every node pending, `ap_policy =
//! group`), at limit 0, 500 and 1 000, with POPs unlimited and with one POP site per batch. Prints
//! one markdown table row per case, next to the lower bound: ceil(pending nodes / limit), and with
//! one POP per batch at least one batch per POP site.
//!
//! Planning time is the best of RUNS (default three) runs of `Mesh::plan_all` on a mesh interned beforehand (as
//! the controller keeps it); interning is printed apart. Run it in release.

use anyhow::{Context, Result};
use meshlift_bench::meshgen::{generate, MeshSpec, Shape};
use meshlift_graph_planner::{ApPolicy, Mesh, PlanRequest, PlanStrategy};
use std::collections::BTreeSet;
use std::time::Instant;

fn main() -> Result<()> {
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or_else(|| default.to_string());
    let list = |s: String| -> Result<Vec<u64>> {
        s.split(',')
            .map(|x| x.trim().parse::<u64>().with_context(|| format!("not a number: {x:?}")))
            .collect()
    };
    let sites = list(arg(1, "10000"))?.first().copied().context("SITES")? as usize;
    let limits = list(arg(2, "0,500,1000"))?;
    let pops_per_batch: Vec<u32> =
        list(arg(3, "0,1"))?.into_iter().map(|p| if p == 0 { u32::MAX } else { p as u32 }).collect();
    let runs = list(arg(4, "3"))?.first().copied().context("RUNS")?.max(1);
    println!("| mesh | limit | POPs per batch | bound | terragraph: batches / time | fewest-batches: batches / time | fewest: largest blast radius / max outages per site |");
    println!("|---|---|---|---|---|---|---|");
    for shape in [Shape::StreetGrid, Shape::Geometric] {
        let topology = generate(&MeshSpec::new(shape, sites));
        let pending: BTreeSet<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
        let pop_sites: BTreeSet<&str> =
            topology.nodes.iter().filter(|n| n.pop_node).map(|n| n.site_name.as_str()).collect();
        let start = Instant::now();
        let mesh = Mesh::new(&topology);
        eprintln!("{shape:?}/{sites}: {} nodes, interned in {:.1} ms", pending.len(), ms(start));
        for &limit in &limits {
            let limit = limit as i64;
            for &max_pops in &pops_per_batch {
                let bound_nodes = if limit > 0 { pending.len().div_ceil(limit as usize) } else { 1 };
                let bound = bound_nodes.max(pop_sites.len().div_ceil(max_pops as usize));
                let mut cells = Vec::new();
                let mut fewest_cost = None;
                for strategy in [PlanStrategy::Terragraph, PlanStrategy::FewestBatches] {
                    let req = PlanRequest {
                        topology: &topology,
                        pending: &pending,
                        limit,
                        ap_policy: ApPolicy::Group,
                        max_pops_per_batch: max_pops,
                        strategy,
                    };
                    let mut best = f64::MAX;
                    let mut plan = None;
                    for _ in 0..runs {
                        let start = Instant::now();
                        let p = mesh.plan_all(&req);
                        best = best.min(ms(start));
                        plan = Some(p);
                    }
                    let plan = plan.context("at least one run")?;
                    if strategy == PlanStrategy::FewestBatches {
                        fewest_cost = Some(plan.cost());
                    }
                    cells.push(format!("{} / {}", plan.batches.len(), fmt_ms(best)));
                }
                let cost = fewest_cost.context("fewest-batches ran")?;
                println!(
                    "| {shape:?} {sites} | {limit} | {} | {bound} | {} | {} | {} / {} |",
                    if max_pops == u32::MAX { "unlimited".to_string() } else { max_pops.to_string() },
                    cells[0],
                    cells[1],
                    cost.largest_blast_radius,
                    cost.max_outages_per_site
                );
            }
        }
    }
    Ok(())
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else {
        format!("{ms:.1} ms")
    }
}
