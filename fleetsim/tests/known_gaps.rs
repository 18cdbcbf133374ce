//! The gaps the simulator found and that are not fixed yet, each pinned to a seed that shows it
//! (see `meshlift_fleetsim::check::KNOWN_GAPS`). When one is fixed, its test fails: remove the gap
//! from `KNOWN_GAPS` and this test with it, and the main suite holds the fix.

use meshlift_fleetsim::check::{GAP_AP_GROUP_ISOLATES_UNPREPARED, GAP_INTRA_SITE_CUT_INVISIBLE};

fn gaps_of(seed: u64) -> Vec<&'static str> {
    let report = meshlift_fleetsim::run_seed(seed);
    assert!(report.ok_but_known(), "seed {seed}:\n{}", meshlift_fleetsim::describe(&report));
    report.violations.iter().filter_map(|v| v.known).collect()
}

/// Seed 48: site-002.b's PREPARE failed (corrupt download, no retries); its site mate site-002.a,
/// its only way out, is committed and cuts it off for the whole reboot.
#[test]
fn an_ap_commit_cuts_off_a_node_whose_prepare_failed() {
    assert!(gaps_of(48).contains(&GAP_AP_GROUP_ISOLATES_UNPREPARED));
}

/// Seed 1577: the cable between site-003.a and site-003.b is cut; site-003.b then reaches a POP
/// only through site-004.a and site-001.a, and site-001.a is committed without it.
#[test]
fn a_cut_inside_a_site_is_invisible_to_the_planner() {
    assert!(gaps_of(1577).contains(&GAP_INTRA_SITE_CUT_INVISIBLE));
}
