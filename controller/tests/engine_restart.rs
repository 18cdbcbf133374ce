//! The controller dies in the middle of a commit batch; a new engine on the same store finishes
//! the request without committing anyone twice.

mod engine_support;

use engine_support::*;
use meshlift_controller::store::{Store, StoreOp};
use meshlift_protocol::*;

#[test]
fn engine_rebuilt_from_the_store_mid_commit_finishes_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ctrl.db");
    let topo = grid(3, 3, &[]);
    let mut sim = Sim::with_store(topo.clone(), Some(Store::open(&db).unwrap()));
    let all: Vec<String> = topo.nodes.iter().map(|n| n.name.clone()).collect();
    let all_ref: Vec<&str> = all.iter().map(String::as_str).collect();
    flash(&mut sim, &all_ref);
    let mut req = commit("c1", &all_ref);
    req.limit = 2;
    assert!(sim.submit(req).success);
    // Run until a batch is rebooting.
    sim.run_until(50, |s| {
        s.engine.current_batch_index() >= 2
            && s.engine
                .in_flight_nodes()
                .iter()
                .any(|n| s.fleet[*n].status.us_type == UpgradeStatusType::Rebooting)
    });
    let in_flight: Vec<String> = sim.engine.in_flight_nodes().iter().map(|s| s.to_string()).collect();
    let batch_index = sim.engine.current_batch_index();
    let sent_before: Vec<usize> = all.iter().map(|n| sim.commits_sent(n)).collect();

    // Crash: drop the engine (and its store), start a new one on the same file.
    let later = sim.now + 1_000;
    sim.restart(Store::open(&db).unwrap(), later);
    assert_eq!(sim.engine.current_request_id(), Some("c1"));
    assert_eq!(sim.engine.current_batch_index(), batch_index);
    let mut reloaded: Vec<String> = sim.engine.in_flight_nodes().iter().map(|s| s.to_string()).collect();
    reloaded.sort();
    assert_eq!(reloaded, in_flight);
    sim.all_actions.clear();
    sim.run_to_idle(200);

    let f = sim.last_finished();
    assert!(f.success, "{f:?}");
    // The nodes that were rebooting at the crash were judged from their reports, never re-sent.
    for n in &in_flight {
        assert_eq!(sim.commits_sent(n), 0, "{n} was committed again after the restart");
    }
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    for n in &all {
        assert_eq!(out.get(n).map(|o| o.0), Some(OutcomeKind::Succeeded), "{n}: {out:?}");
        assert_eq!(sim.fleet[n].version, NEW);
    }
    let total: usize =
        all.iter().map(|n| sim.commits_sent(n)).sum::<usize>() + sent_before.iter().sum::<usize>();
    assert_eq!(total, all.len(), "exactly one COMMIT per node across both engines");
    assert!(sim.isolation_events.is_empty());
}

#[test]
fn store_dropped_mid_transaction_keeps_the_last_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ctrl.db");
    let topo = grid(2, 3, &[]);
    {
        let mut sim = Sim::with_store(topo.clone(), Some(Store::open(&db).unwrap()));
        assert!(sim.submit(prepare("p1", &["n01", "n02"])).success);
        sim.step();
        assert_eq!(sim.engine.current_request_id(), Some("p1"));
    }
    // A half-written transaction: a bogus request row and journal lines, never committed.
    {
        let mut store = Store::open(&db).unwrap();
        let before = store.journal_len().unwrap();
        let mut txn = store.begin().unwrap();
        txn.write(&StoreOp::PutRequest {
            id: "ghost".into(),
            seq: 999,
            state: "running".into(),
            submitted_at: 0,
            at: 0,
            body: "{not json".into(),
        })
        .unwrap();
        txn.write(&StoreOp::DeleteImage { name: NEW.into() }).unwrap();
        drop(txn); // crash before commit
        drop(store);
        let store = Store::open(&db).unwrap();
        assert_eq!(store.journal_len().unwrap(), before);
        assert!(!store.has_request("ghost").unwrap());
        assert_eq!(store.images().unwrap().len(), 1);
    }
    // The engine reopens on it and finishes p1.
    let mut sim = Sim::with_store(topo, Some(Store::open(&db).unwrap()));
    assert_eq!(sim.engine.current_request_id(), Some("p1"));
    sim.run_to_idle(50);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n01"].0, OutcomeKind::Succeeded);
    assert_eq!(out["n02"].0, OutcomeKind::Succeeded);
    // Request ids stay used across restarts.
    assert!(!sim.submit(prepare("p1", &["n01"])).success);
}
