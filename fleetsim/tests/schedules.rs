//! The simulator suite: thousands of seeded fault schedules on meshes of 5–60 nodes, every
//! invariant checked after every event (see `meshlift_fleetsim::check`).
//!
//! `FLEETSIM_SCHEDULES` (default 2 000) and `FLEETSIM_FIRST_SEED` (default 0) choose the seeds;
//! a failing seed is printed with its schedule and replays with
//! `FLEETSIM_SEED=<seed> cargo test -p meshlift-fleetsim replay`.

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn seeded_schedules_keep_every_invariant() {
    let count = env_u64("FLEETSIM_SCHEDULES", 2_000);
    let first = env_u64("FLEETSIM_FIRST_SEED", 0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = std::time::Instant::now();
    let (failures, totals) = meshlift_fleetsim::run_many(first, count, threads);
    eprintln!(
        "{} schedules in {:.1} s: {} clean, {} with known gaps only, {} nodes, {} faults, {} commits, {} trials, {} fallbacks, \
         {} controller restarts, {} excused isolations, {} events",
        totals.runs,
        started.elapsed().as_secs_f64(),
        totals.clean,
        totals.known_gap_only,
        totals.nodes,
        totals.faults,
        totals.commits_sent,
        totals.trials_armed,
        totals.fallbacks,
        totals.controller_restarts,
        totals.isolation_excused,
        totals.events
    );
    assert_eq!(totals.runs, count);
    // The suite must exercise what it claims to: upgrades that commit, and faults.
    assert!(totals.trials_armed > totals.runs, "too few trials: {totals:?}");
    assert!(totals.controller_restarts > 0 && totals.fallbacks > 0, "{totals:?}");
    for f in failures.iter().take(5) {
        eprintln!("{}", meshlift_fleetsim::describe(f));
    }
    assert!(
        failures.is_empty(),
        "{} of {} schedules broke an invariant (beyond the known gaps); seeds: {:?}",
        failures.len(),
        totals.runs,
        failures.iter().map(|f| f.schedule.seed).collect::<Vec<_>>()
    );
}
