//! The state database refuses writes (disk full) just as the engine decides to COMMIT a node:
//! the COMMIT is held — never sent for a decision the disk does not hold — the controller says it
//! is degraded on `/healthz` and in `meshlift_controller_degraded`, the write is retried with a
//! backoff, and once it succeeds the COMMIT goes out exactly once, the degraded state clears and
//! the recovery is journaled.

mod engine_support;

use engine_support::*;
use meshlift_controller::health::Health;
use meshlift_controller::metrics::Metrics;
use meshlift_controller::outbox::{degraded_refusal, RETRY_FIRST_MS, RETRY_MAX_MS};
use meshlift_controller::store::Store;
use meshlift_protocol::*;
use tower::ServiceExt;

const DISK_FULL: &str = "database or disk is full";

/// `/healthz` as the HTTP server answers it: status and body.
async fn healthz(health: &Health) -> (u16, String) {
    let req = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
    let resp = health.router().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn gauge(metrics: &Metrics) -> String {
    metrics.render().lines().find(|l| l.starts_with("meshlift_controller_degraded ")).unwrap().to_string()
}

fn fail_writes(sim: &mut Sim, on: bool) {
    sim.outbox.as_mut().unwrap().store_mut().fail_with = on.then(|| DISK_FULL.to_string());
}

#[tokio::test]
async fn a_commit_whose_write_fails_is_held_until_the_write_succeeds() {
    let topo = grid(2, 2, &[]);
    let mut sim = Sim::with_store(topo, Some(Store::open_in_memory().unwrap()));
    let health = Health::new();
    let metrics = Metrics::new();
    flash(&mut sim, &["n01"]);
    // The disk fills up; the request's intake dispatches the COMMIT batch at once.
    fail_writes(&mut sim, true);
    assert!(sim.submit(commit("c1", &["n01"])).success);
    for _ in 0..4 {
        sim.step();
        let outbox = sim.outbox.as_ref().unwrap();
        health.update(outbox.degraded(), &metrics);
    }
    assert_eq!(sim.engine.current_batch_index(), 1, "the engine decided the COMMIT batch");
    assert_eq!(sim.engine.in_flight_nodes(), vec!["n01"]);
    assert_eq!(sim.commits_sent("n01"), 0, "a COMMIT whose record is not on disk was sent");
    let outbox = sim.outbox.as_ref().unwrap();
    let degraded = outbox.degraded().expect("degraded while writes fail");
    assert!(degraded.error.contains(DISK_FULL), "{degraded:?}");
    assert!(degraded.failures >= 2, "retried: {degraded:?}");
    assert!(outbox.backlog() >= 1);
    assert!(degraded_refusal(degraded).starts_with("controller degraded: store write failing: "));
    let (status, body) = healthz(&health).await;
    assert_eq!(status, 503);
    assert!(body.contains(DISK_FULL), "{body}");
    assert_eq!(gauge(&metrics), "meshlift_controller_degraded 1");
    // Nothing of the held decision is on disk either.
    assert!(sim.store().unwrap().batches("c1").unwrap().is_empty());

    // The disk has room again: the next retry writes the backlog and releases the COMMIT.
    fail_writes(&mut sim, false);
    sim.step();
    let outbox = sim.outbox.as_ref().unwrap();
    health.update(outbox.degraded(), &metrics);
    assert_eq!(outbox.degraded(), None);
    assert_eq!(outbox.backlog(), 0);
    assert_eq!(sim.commits_sent("n01"), 1, "the COMMIT goes out once its write is durable");
    assert_eq!(healthz(&health).await, (200, "ok\n".to_string()));
    assert_eq!(gauge(&metrics), "meshlift_controller_degraded 0");
    let store = sim.store().unwrap();
    assert_eq!(store.batches("c1").unwrap().len(), 1, "the batch is recorded");
    let journal = store.journal(0, 10_000).unwrap();
    let recovery = journal
        .iter()
        .find(|e| e.message.starts_with("store writes durable again"))
        .expect("the recovery is journaled");
    assert!(recovery.message.contains(DISK_FULL), "{}", recovery.message);

    sim.run_to_idle(60);
    assert!(sim.last_finished().success);
    assert_eq!(sim.commits_sent("n01"), 1, "exactly one COMMIT");
}

#[test]
fn a_failed_write_is_retried_after_100_ms_doubling_to_5_s() {
    let mut sim = Sim::with_store(grid(2, 2, &[]), Some(Store::open_in_memory().unwrap()));
    sim.deliver();
    fail_writes(&mut sim, true);
    let t0 = sim.now;
    // An input that writes: a journaled operator command.
    sim.engine.journal_command(&Operator { who: "op".into(), reason: None }, "note".into(), t0);
    let outbox = sim.outbox.as_mut().unwrap();
    outbox.push_engine(&mut sim.engine);
    let attempts = |o: &meshlift_controller::outbox::Outbox<TestStore>| o.store().attempts;
    let base = attempts(outbox);
    assert!(outbox.flush(t0).failed.is_some());
    let mut at = t0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let due = outbox.next_deadline().unwrap();
        // Not a moment before it is due.
        let before = attempts(outbox);
        outbox.flush(due - 1);
        assert_eq!(attempts(outbox), before, "retried before the backoff ran out");
        assert!(outbox.flush(due).failed.is_some());
        waits.push(due - at);
        at = due;
    }
    assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert_eq!(waits[0], RETRY_FIRST_MS);
    assert_eq!(*waits.last().unwrap(), RETRY_MAX_MS);
    assert_eq!(attempts(outbox) - base, 10);
    outbox.store_mut().fail_with = None;
    let report = outbox.flush(outbox.next_deadline().unwrap());
    assert!(report.recovered);
    assert_eq!(outbox.backlog(), 0);
    let journal = sim.store().unwrap().journal(0, 1000).unwrap();
    assert!(journal.iter().any(|e| e.message == "note"), "the held write landed");
    assert!(journal.iter().any(|e| e.message.contains("after 10 failed attempts")));
}

#[test]
fn a_long_outage_keeps_a_bounded_backlog_and_releases_everything_in_order() {
    use meshlift_controller::engine::Action;
    use meshlift_controller::outbox::UNITS_MAX;
    let mut sim = Sim::with_store(grid(2, 2, &[]), Some(Store::open_in_memory().unwrap()));
    sim.deliver();
    fail_writes(&mut sim, true);
    let op = Operator { who: "op".into(), reason: None };
    let inputs = UNITS_MAX + 100;
    for i in 0..inputs {
        sim.engine.journal_command(&op, format!("note {i}"), sim.now);
        let outbox = sim.outbox.as_mut().unwrap();
        outbox.push_engine(&mut sim.engine);
        outbox.flush(sim.now);
        assert!(outbox.pop_ready().is_none(), "nothing is released while the store fails");
    }
    let outbox = sim.outbox.as_mut().unwrap();
    assert_eq!(outbox.backlog(), UNITS_MAX, "later inputs are merged into the last unit");
    outbox.store_mut().fail_with = None;
    assert!(outbox.flush(outbox.next_deadline().unwrap()).recovered);
    let mut released = Vec::new();
    while let Some(a) = outbox.pop_ready() {
        if let Action::Event(e) = a {
            released.push(e.message);
        }
    }
    let expected: Vec<String> = (0..inputs).map(|i| format!("op: note {i}")).collect();
    assert_eq!(released, expected, "every held action, once, in order");
    let journal = sim.store().unwrap().journal(0, 100_000).unwrap();
    let notes = journal.iter().filter(|e| e.message.starts_with("note ")).count();
    assert_eq!(notes, inputs, "every held write landed");
}
