//! Startup configuration documents in the engine: versioned and journaled, the most specific one
//! (node > board > fleet) delivered with each node's PREPARE, kept across a controller restart.

mod engine_support;

use engine_support::*;
use meshlift_controller::engine::startup_config::digest;
use meshlift_controller::engine::{Engine, EngineConfig};
use meshlift_controller::store::Store;
use meshlift_protocol::*;

fn set(sim: &mut Sim, scope: ConfigScope, text: Option<&str>) -> Ack {
    let req = ConfigSetReq {
        scope,
        text: text.map(str::to_string),
        operator: Operator { who: "carol@noc".into(), reason: Some("channel plan".into()) },
    };
    match sim.operator(Message::ConfigSetReq(req)) {
        Message::Ack(a) => a,
        other => panic!("{other:?}"),
    }
}

fn show(engine: &mut Engine, node: &str, now: u64) -> ConfigShow {
    match engine.handle_operator(Message::ConfigShowReq(ConfigShowReq { node: Some(node.into()) }), now) {
        Message::ConfigShow(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_prepare_carries_the_nodes_effective_document_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let topo = grid(2, 2, &[]);
    let mut sim = Sim::with_store(topo.clone(), Some(Store::open(&db).unwrap()));

    assert!(set(&mut sim, ConfigScope::Fleet, Some("[radio]\nchannel = 1\n")).success);
    assert!(set(&mut sim, ConfigScope::Board(BOARD.into()), Some("{\"radio\": {\"channel\": 2}}")).success);
    let ack = set(&mut sim, ConfigScope::Node("n00".into()), Some("{\"radio\": {\"channel\": 3}}"));
    assert!(ack.message.contains("version 3"), "{ack:?}");
    let refused = set(&mut sim, ConfigScope::Node("n00".into()), Some("{radio"));
    assert!(!refused.success && refused.message.contains("neither valid JSON"), "{refused:?}");
    assert!(!set(&mut sim, ConfigScope::Node("nope".into()), Some("{}")).success);

    assert!(sim.submit(prepare("prep-1", &["n00", "n01", "n11"])).success);
    sim.run_to_idle(100);
    let sent = |sim: &Sim, n: &str| {
        sim.fleet[n]
            .received
            .iter()
            .find(|r| r.ur_type == UpgradeReqType::PrepareUpgrade)
            .and_then(|r| r.startup_config.clone())
            .expect("a PREPARE with a document")
    };
    let n00 = sent(&sim, "n00");
    assert_eq!((n00.version, n00.sha256), (3, digest("{\"radio\": {\"channel\": 3}}")));
    assert_eq!(sent(&sim, "n01").version, 2, "the board's document");
    assert_eq!(sent(&sim, "n11").version, 2, "the board's document beats the fleet's");
    assert_eq!(sent(&sim, "n11").text, "{\"radio\": {\"channel\": 2}}");

    // Clearing the node's document makes the board's apply again; versions go on counting.
    let ack = set(&mut sim, ConfigScope::Node("n00".into()), None);
    assert!(ack.success && ack.message.contains("cleared (version 4)"), "{ack:?}");
    let later = sim.now + 1_000;
    sim.deliver();
    let store = Store::open(&db).unwrap();
    let mut engine =
        Engine::from_snapshot(topo, EngineConfig::default(), store.snapshot().unwrap(), later).unwrap();
    // Before n00 reports its board, only its own and the fleet's documents can apply.
    let s = show(&mut engine, "n00", later);
    assert_eq!(s.effective.as_ref().map(|d| d.version), Some(1), "{s:?}");
    let all = match engine.handle_operator(Message::ConfigShowReq(ConfigShowReq { node: None }), later) {
        Message::ConfigShow(s) => s.documents,
        other => panic!("{other:?}"),
    };
    assert_eq!(all.iter().map(|d| d.version).collect::<Vec<_>>(), vec![2, 1]);
    let journal = store.journal(0, 1000).unwrap();
    let lines: Vec<&str> = journal
        .iter()
        .filter(|e| e.message.starts_with("startup configuration"))
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(journal.iter().any(|e| e.operator.as_ref().is_some_and(|o| o.who == "carol@noc")));
}
