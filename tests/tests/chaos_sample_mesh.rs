//! Chaos during a full upgrade of the sample mesh (see `meshlift_tests::chaos`): minions
//! power-cycled and frozen, a link cut, the controller killed and restarted — and still every node
//! ends on a confirmed slot with complete outcomes and 0 s collateral isolation. Two seeds here;
//! `chaos-bench` runs any number.

use meshlift_tests::chaos;
use meshlift_tests::sample_topology;

async fn seed(seed: u64) {
    let report = chaos::run(seed, sample_topology()).await;
    assert!(report.violations.is_empty(), "seed {seed}: {:#?}", report.violations);
    eprintln!("seed {seed}: {report:?}");
    assert!(report.succeeded > 0, "seed {seed}: nothing was upgraded");
    assert!(
        report.fired >= report.planned / 2,
        "seed {seed}: only {} of {} faults fired",
        report.fired,
        report.planned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_seed_1() {
    seed(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_seed_2() {
    seed(2).await;
}
