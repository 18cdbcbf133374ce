//! Seeds that found a real bug, kept so the bug stays fixed.

/// Seeds 8467 and 8865: a POP's fallback stopped the request (`skip_pop_failure = false`) while
/// a batch mate that had lost power arming its trial sat FLASHED; at the batch timeout the
/// engine queued that node for a retry that a stopped request never runs, and the request
/// finished with no COMMIT outcome for it. Fixed in `engine/run.rs`: no retry once stopped.
#[test]
fn a_node_timed_out_after_the_request_stopped_still_gets_its_outcome() {
    for seed in [8467, 8865] {
        let report = meshlift_fleetsim::run_seed(seed);
        assert!(report.ok_but_known(), "seed {seed}:\n{}", meshlift_fleetsim::describe(&report));
    }
}
