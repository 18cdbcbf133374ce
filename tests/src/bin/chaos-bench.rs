//! Runs chaos seeds one after another on the sample mesh (or `--topology FILE`) and prints one
//! line per seed and a summary: seeds run, seeds with 0 violations, nodes upgraded, wall time.
//!
//! `chaos-bench --seeds 100 [--first 1000]`; `CHAOS_SEED=n chaos-bench --seeds 1` replays one seed.
//! The workspace binaries must be built (`cargo build --bins`).

use anyhow::Context;
use meshlift_protocol::Topology;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let seeds: u64 = value("--seeds").map_or(Ok(100), |v| v.parse()).context("--seeds")?;
    let first: u64 = match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().context("CHAOS_SEED")?,
        Err(_) => value("--first").map_or(Ok(1), |v| v.parse()).context("--first")?,
    };
    let topology = match value("--topology") {
        Some(p) => Topology::from_json(&std::fs::read_to_string(&p).with_context(|| p.clone())?)?,
        None => meshlift_tests::sample_topology(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mut clean, mut upgraded, mut nodes) = (0u64, 0usize, 0usize);
    let started = std::time::Instant::now();
    for seed in first..first + seeds {
        let r = rt.block_on(meshlift_tests::chaos::run(seed, topology.clone()));
        println!(
            "seed {seed}: {}/{} faults fired ({} link cuts dropped: PREPARE over), {} violations, {} upgraded, {} not, collateral isolation {:.1} s (power-cycled or frozen nodes {:.1} s), {:.0} s",
            r.fired,
            r.planned,
            r.dropped,
            r.violations.len(),
            r.succeeded,
            r.failed,
            r.collateral_isolation_s,
            r.victim_isolation_s,
            r.wall_s
        );
        for v in &r.violations {
            println!("  {v}");
        }
        clean += u64::from(r.violations.is_empty());
        upgraded += r.succeeded;
        nodes += r.succeeded + r.failed;
    }
    println!(
        "chaos-bench: {seeds} seeds, {clean} with 0 violations, {upgraded}/{nodes} node upgrades succeeded, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if clean < seeds {
        std::process::exit(1);
    }
    Ok(())
}
