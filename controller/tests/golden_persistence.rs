//! The golden-image loop's state lives in the controller's SQLite store: a controller that stops
//! in the middle of a wave and starts again (engine and loop reloaded from the database) resumes
//! that wave and never starts it again. Driven through `golden::drive`, the glue the controller's
//! shell uses.

mod engine_support;

use engine_support::*;
use meshlift_controller::golden::{drive, GoldenConfig, Reconciler};
use meshlift_controller::store::Store;
use meshlift_protocol::*;

const V2: &str = "2.0.0";

fn config() -> GoldenConfig {
    toml::from_str(
        r#"
        enabled = true
        check_interval_s = 10
        bake_s = 30
        retry_limit = 0
        batch_timeout_s = 120
        [[targets]]
        board = "MVL_ARMADA39X_P"
        image = "2.0.0"
        "#,
    )
    .expect("[golden] parses")
}

fn set_v1(sim: &mut Sim) {
    for m in sim.fleet.values_mut() {
        m.version = "1.0.0".into();
        m.slots.a.version = Some("1.0.0".into());
    }
    let img = UpgradeImage { name: V2.into(), version: V2.into(), ..image() };
    sim.engine.add_image(img, Operator::default(), sim.now);
    sim.report_all();
}

fn step(sim: &mut Sim, golden: &mut Reconciler) {
    sim.step();
    let store = sim.outbox.as_ref().map(|o| &o.store().store);
    drive::turn(&mut sim.engine, golden, store, sim.now);
    sim.deliver();
}

fn golden_row(sim: &Sim) -> Option<String> {
    sim.store().and_then(|s| s.golden().unwrap())
}

fn waves(golden: &Reconciler) -> Vec<String> {
    golden.state().rollouts.values().flat_map(|r| r.waves.iter().map(|w| w.request_id.clone())).collect()
}

#[test]
fn a_restarted_controller_resumes_the_golden_wave_in_flight_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let topology = grid(3, 3, &[("l1", "n11")]);
    let mut sim = Sim::with_store(topology.clone(), Some(Store::open(&db).unwrap()));
    set_v1(&mut sim);
    let mut golden = drive::open(golden_row(&sim).as_deref(), &config()).unwrap();
    for _ in 0..400 {
        if golden.state().rollouts.values().any(|r| r.waves.len() == 3) {
            break;
        }
        step(&mut sim, &mut golden);
    }
    let in_flight = golden.state().in_flight.clone();
    assert_eq!(in_flight.len(), 1, "wave 2 in flight: {:?}", golden.state());
    let before = waves(&golden);

    // Restart: both cores rebuilt from the database alone.
    let now = sim.now;
    sim.restart(Store::open(&db).unwrap(), now);
    let mut golden = drive::open(golden_row(&sim).as_deref(), &GoldenConfig::default()).unwrap();
    assert_eq!(golden.state().in_flight, in_flight, "the wave in flight was reloaded");
    assert!(golden.state().settings.enabled, "settings come from the database, not the (default) config");
    sim.report_all();
    for _ in 0..600 {
        let all_v2 = sim.fleet.values().all(|m| m.slots.slot(m.slots.active).version.as_deref() == Some(V2));
        if all_v2 && golden.state().in_flight.is_empty() {
            break;
        }
        step(&mut sim, &mut golden);
    }
    assert!(sim.fleet.values().all(|m| m.slots.slot(m.slots.active).version.as_deref() == Some(V2)));
    let after = waves(&golden);
    assert_eq!(&after[..before.len()], &before[..], "no wave was started again");
    assert_eq!(after.len(), before.len() + 1, "only the last wave came after the restart: {after:?}");
    // The journal has the loop's lines with its name.
    let store = Store::open(&db).unwrap();
    let journal = store.journal(0, 10_000).unwrap();
    assert!(journal.iter().any(|e| e.operator.as_ref().is_some_and(|o| o.who == "golden-image loop")
        && e.message.contains("canary of 2.0.0 finished")));
}

#[test]
fn golden_config_is_checked_at_start() {
    let bad: GoldenConfig = toml::from_str("window = \"mon 25:00-01:00 UTC\"").unwrap();
    assert!(bad.reconciler().is_err());
    let bad: GoldenConfig = toml::from_str("waves_pct = [50, 10]").unwrap();
    assert!(bad.reconciler().is_err());
    let bad: GoldenConfig = toml::from_str("[[targets]]\nboard = \"b\"\nimage = \"latest\"").unwrap();
    assert!(bad.reconciler().is_err());
    assert!(toml::from_str::<GoldenConfig>("enabeld = true").is_err(), "typos are refused");
}
