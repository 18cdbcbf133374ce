//! The journal's retention policy: lines older than `journal_keep_days` and beyond the newest
//! `journal_max_rows` are pruned by the engine at start and hourly, through its `Persist`; no
//! other DELETE gets through.

mod engine_support;

use engine_support::{grid, T0};
use meshlift_controller::engine::{Action, Engine, EngineConfig, DAY_MS, JOURNAL_PRUNE_EVERY_MS};
use meshlift_controller::store::{JournalEntry, JournalKind, Store, StoreOp};
use meshlift_protocol::Operator;

fn line(at: u64, message: &str) -> StoreOp {
    StoreOp::Journal(JournalEntry {
        seq: 0,
        at,
        kind: JournalKind::Transition,
        request_id: None,
        node: None,
        operator: None,
        message: message.into(),
    })
}

fn messages(store: &Store) -> Vec<String> {
    store.journal(0, 100_000).unwrap().into_iter().map(|e| e.message).collect()
}

#[test]
fn prune_drops_lines_older_than_the_cutoff_and_beyond_the_row_cap() {
    let mut s = Store::open_in_memory().unwrap();
    let ops: Vec<StoreOp> = (0..10).map(|d| line(T0 + d * DAY_MS, &format!("day {d}"))).collect();
    s.apply(&ops).unwrap();
    // Age first: days 0–4 are older than the cutoff.
    s.apply(&[StoreOp::PruneJournal { before: T0 + 5 * DAY_MS, keep_rows: 100 }]).unwrap();
    assert_eq!(messages(&s), ["day 5", "day 6", "day 7", "day 8", "day 9"]);
    // Then the cap: the newest 3 stay.
    s.apply(&[StoreOp::PruneJournal { before: 0, keep_rows: 3 }]).unwrap();
    assert_eq!(messages(&s), ["day 7", "day 8", "day 9"]);
    // Lines written later get new sequence numbers: a reader following `seq` misses nothing.
    s.apply(&[line(T0 + 11 * DAY_MS, "day 11")]).unwrap();
    let seqs: Vec<i64> = s.journal(0, 10).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [8, 9, 10, 11]);
}

#[test]
fn a_delete_outside_the_retention_policy_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let mut s = Store::open(&db).unwrap();
    s.apply(&[line(T0, "kept"), StoreOp::PruneJournal { before: 0, keep_rows: 10 }]).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let err = c.execute("DELETE FROM journal", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(c.execute("UPDATE journal SET message = 'edited'", []).is_err());
    assert_eq!(messages(&s), ["kept"]);
}

/// Apply the engine's writes; returns the prunes among them.
fn drain(engine: &mut Engine, store: &mut Store) -> Vec<StoreOp> {
    let mut prunes = Vec::new();
    while let Some(a) = engine.poll_action() {
        if let Action::Persist(ops) = &a {
            prunes.extend(ops.iter().filter(|o| matches!(o, StoreOp::PruneJournal { .. })).cloned());
            store.apply(ops).unwrap();
        }
    }
    prunes
}

#[test]
fn the_engine_prunes_at_start_and_then_hourly() {
    let config =
        EngineConfig { journal_keep_ms: 2 * DAY_MS, journal_max_rows: 1_000, ..EngineConfig::default() };
    let mut store = Store::open_in_memory().unwrap();
    // Three old lines and one recent one, from an earlier run.
    store.apply(&[line(T0, "old 1"), line(T0 + DAY_MS, "old 2"), line(T0 + 2 * DAY_MS, "old 3")]).unwrap();
    let start = T0 + 4 * DAY_MS;
    store.apply(&[line(start - 1_000, "recent")]).unwrap();
    let snapshot = store.snapshot().unwrap();
    let mut engine = Engine::from_snapshot(grid(2, 2, &[]), config, snapshot, start).unwrap();
    let prunes = drain(&mut engine, &mut store);
    assert_eq!(prunes, [StoreOp::PruneJournal { before: start - 2 * DAY_MS, keep_rows: 1_000 }]);
    assert_eq!(messages(&store), ["old 3", "recent"], "pruned at start");

    // Within the hour: no prune; an hour later: one.
    let op = Operator { who: "op".into(), reason: None };
    engine.journal_command(&op, "a command".into(), start + 10_000);
    engine.tick(start + JOURNAL_PRUNE_EVERY_MS - 1);
    assert!(drain(&mut engine, &mut store).is_empty());
    engine.tick(start + JOURNAL_PRUNE_EVERY_MS);
    assert_eq!(drain(&mut engine, &mut store).len(), 1);
    // Two days on, "old 3" and "recent" are past the cutoff; the command is younger.
    let later = start + 2 * DAY_MS + 2_000;
    engine.tick(later);
    drain(&mut engine, &mut store);
    let left = messages(&store);
    assert!(!left.iter().any(|m| m == "old 3" || m == "recent"), "{left:?}");
    assert!(left.iter().any(|m| m == "a command"), "{left:?}");
}
