//! The engine's named timers: a shell that ticks the engine only at `next_deadline()` — never
//! on a fixed period — sees nodes go offline and batches time out exactly when they should.

mod engine_support;

use engine_support::*;
use meshlift_controller::engine::{Action, Timer, JOURNAL_PRUNE_EVERY_MS};

/// Tick at the engine's next deadline only; returns the timer that fired and its events.
fn fire(sim: &mut Sim) -> (Timer, u64, Vec<String>) {
    let (timer, at) = sim.engine.next_timer().expect("a timer is armed");
    // A moment earlier changes nothing that is due at `at`.
    sim.engine.tick(at - 1);
    let early = events(sim);
    sim.now = at;
    sim.engine.tick(at);
    let mut ev = events(sim);
    ev.retain(|e| !early.contains(e));
    (timer, at, ev)
}

fn events(sim: &mut Sim) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(a) = sim.engine.poll_action() {
        if let Action::Event(e) = a {
            out.push(format!("{} {}", e.node.unwrap_or_default(), e.message));
        }
    }
    out
}

#[test]
fn nodes_go_offline_at_the_liveness_deadline_and_the_journal_is_pruned_hourly() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    events(&mut sim);
    // At start: the journal's retention runs first.
    assert_eq!(sim.engine.next_timer(), Some((Timer::JournalPrune, T0)));
    sim.engine.tick(T0);
    events(&mut sim);
    // Every node reported at T0: the first can go offline 30 s later, not a millisecond before.
    let (timer, at, ev) = fire(&mut sim);
    assert_eq!((timer, at), (Timer::Liveness, T0 + 30_001));
    assert_eq!(
        ev.iter().filter(|e| e.ends_with("offline: no status report within node_alive_timeout")).count(),
        4
    );
    // Nobody online: the next timer is the hourly prune.
    assert_eq!(sim.engine.next_timer(), Some((Timer::JournalPrune, T0 + JOURNAL_PRUNE_EVERY_MS)));
}

#[test]
fn a_batch_times_out_at_its_deadline_with_no_tick_in_between() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    sim.engine.tick(T0);
    events(&mut sim);
    let mut req = prepare("p1", &["n01"]);
    req.timeout_s = 20;
    assert!(sim.submit(req).success);
    // The node took the order and then went silent (killed), but is not yet offline.
    sim.node("n01").killed = true;
    let timers = sim.engine.timers();
    assert!(timers.contains(&(Timer::BatchTimeout, T0 + 20_000)), "{timers:?}");
    let (timer, _, ev) = fire(&mut sim);
    assert_eq!(timer, Timer::BatchTimeout);
    assert!(ev.iter().any(|e| e.starts_with("n01 ") && e.contains("batch timed out after 20s")), "{ev:?}");
}
