//! Runs any number of fleetsim schedules over threads and prints schedules per second and how
//! many ran with 0 violations.
//!
//! `cargo run --release -p meshlift-fleetsim --bin fleetsim-bench -- [COUNT] [THREADS] [FIRST_SEED]`
//! (defaults: 10 000 schedules, all cores, seed 0). Failing seeds are printed with their
//! schedules; exit code 1 if any.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let threads: usize = match args.next() {
        Some(a) => a.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let first: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let chunk = 10_000u64;
    let started = Instant::now();
    let mut done = 0u64;
    let mut clean = 0u64;
    let mut known = 0u64;
    let mut events = 0u64;
    let mut failures = Vec::new();
    while done < count {
        let n = chunk.min(count - done);
        let (failed, totals) = meshlift_fleetsim::run_many(first + done, n, threads);
        done += totals.runs;
        clean += totals.clean;
        known += totals.known_gap_only;
        events += totals.events;
        for f in &failed {
            eprintln!("{}", meshlift_fleetsim::describe(f));
        }
        failures.extend(failed.into_iter().map(|f| f.schedule.seed));
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{done}/{count} schedules, {clean} with 0 violations, {known} with known gaps only, {:.1} schedules/s, {:.0} events/s",
            done as f64 / secs,
            events as f64 / secs
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "schedules {done} (seeds {first}..{}), threads {threads}, {secs:.1} s, {:.1} schedules/s, {clean} with 0 violations, {known} with only known-gap violations ({:?}), {} with other violations",
        first + done,
        done as f64 / secs,
        meshlift_fleetsim::check::KNOWN_GAPS,
        failures.len()
    );
    if !failures.is_empty() {
        println!("failing seeds: {failures:?}");
        std::process::exit(1);
    }
    Ok(())
}
