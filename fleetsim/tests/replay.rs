//! Replays one seed: `FLEETSIM_SEED=<seed> cargo test -p meshlift-fleetsim replay -- --nocapture`.
//! Without `FLEETSIM_SEED` it replays seed 1 twice and checks that both runs are identical, which
//! is what makes a printed seed worth anything.

#[test]
fn replay() {
    let seed =
        std::env::var("FLEETSIM_SEED").ok().map(|s| s.trim().parse::<u64>().expect("FLEETSIM_SEED is a u64"));
    let seed = seed.unwrap_or(1);
    let a = meshlift_fleetsim::run_seed(seed);
    let b = meshlift_fleetsim::run_seed(seed);
    eprintln!("{}", meshlift_fleetsim::describe(&a));
    eprintln!("{:?}", a.stats);
    assert_eq!(a.violations, b.violations, "seed {seed} does not replay identically");
    assert_eq!(
        (a.stats.events, a.stats.sim_ms),
        (b.stats.events, b.stats.sim_ms),
        "seed {seed} does not replay identically"
    );
    assert!(a.ok_but_known(), "seed {seed} broke an invariant:\n{}", meshlift_fleetsim::describe(&a));
}
