//! The SQLite store: schema versioning, the append-only journal, round trips.

use meshlift_controller::store::{JournalEntry, JournalKind, Store, StoreError, StoreOp, MIGRATIONS};
use meshlift_protocol::{NodeOutcome, Operator, OutcomeKind, Sha256Digest, UpgradeImage, UpgradeReqType};

fn entry(i: u64) -> StoreOp {
    StoreOp::Journal(JournalEntry {
        seq: 0,
        at: i,
        kind: if i.is_multiple_of(2) { JournalKind::Command } else { JournalKind::Transition },
        request_id: Some("r1".into()),
        node: Some(format!("n{i}")),
        operator: i
            .is_multiple_of(2)
            .then(|| Operator { who: "alice".into(), reason: Some("why not".into()) }),
        message: format!("transition {i}"),
    })
}

#[test]
fn fresh_database_is_at_the_latest_schema_and_reopens_without_migrating_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let s = Store::open(&db).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
    drop(s);
    let s = Store::open(&db).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
}

#[test]
fn a_v1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute("INSERT INTO journal (at, kind, message) VALUES (1, 'command', 'old line')", []).unwrap();
        // v1 had no append-only trigger.
        c.execute("UPDATE journal SET message = 'edited' WHERE seq = 1", []).unwrap();
    }
    let s = Store::open(&db).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
    assert_eq!(s.journal(0, 10).unwrap()[0].message, "edited");
    drop(s);
    let c = rusqlite::Connection::open(&db).unwrap();
    let err = c.execute("UPDATE journal SET message = 'again' WHERE seq = 1", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(c.execute("DELETE FROM journal", []).is_err());
}

#[test]
fn a_database_from_a_newer_controller_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    match Store::open(&db) {
        Err(StoreError::TooNew { found: 99, .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

#[test]
fn journal_keeps_who_and_why_in_order_and_outcomes_images_round_trip() {
    let mut s = Store::open_in_memory().unwrap();
    let ops: Vec<StoreOp> = (0..1000).map(entry).collect();
    s.apply(&ops).unwrap();
    assert_eq!(s.journal_len().unwrap(), 1000);
    let page = s.journal(0, 3).unwrap();
    assert_eq!(page[0].operator, Some(Operator { who: "alice".into(), reason: Some("why not".into()) }));
    assert_eq!(page[1].operator, None);
    assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
    let o = NodeOutcome {
        request_id: "r1".into(),
        stage: UpgradeReqType::CommitUpgrade,
        node: "n1".into(),
        outcome: OutcomeKind::FellBack,
        reason: "links down".into(),
        started_at: 5,
        finished_at: 9,
    };
    let img = UpgradeImage {
        name: "v2".into(),
        version: "v2".into(),
        magnet_uri: "magnet:?x".into(),
        http_uri: String::new(),
        sha256: Sha256Digest([3; 32]),
        size: 10,
        hardware_board_ids: vec!["B".into()],
    };
    s.apply(&[StoreOp::PutOutcome(o.clone()), StoreOp::PutImage { image: img.clone(), at: 1 }]).unwrap();
    assert_eq!(s.outcomes("r1").unwrap(), vec![o]);
    assert_eq!(s.images().unwrap(), vec![img]);
    s.apply(&[StoreOp::DeleteImage { name: "v2".into() }]).unwrap();
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn a_failing_op_rolls_back_the_whole_input() {
    let mut s = Store::open_in_memory().unwrap();
    s.apply(&[entry(1)]).unwrap();
    let bad = StoreOp::PutRequest {
        id: "a".into(),
        seq: 1,
        state: "queued".into(),
        submitted_at: 0,
        at: 0,
        body: "{}".into(),
    };
    let clash = StoreOp::PutRequest {
        id: "b".into(),
        seq: 1, // seq is UNIQUE
        state: "queued".into(),
        submitted_at: 0,
        at: 0,
        body: "{}".into(),
    };
    assert!(s.apply(&[entry(2), bad, clash]).is_err());
    assert_eq!(s.journal_len().unwrap(), 1);
    assert!(!s.has_request("a").unwrap());
}

/// A power cut must not roll back the record that a COMMIT was sent: every commit of the store is
/// fsynced (`synchronous = FULL`; NORMAL in WAL mode may lose the last transactions).
#[test]
fn the_store_syncs_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(s.synchronous().unwrap(), 2, "synchronous = FULL");
}
