//! `meshlift upgrade … revert` and `meshlift config …` build the requests the operator asked for.

mod remote_fake;

use meshlift_protocol::*;
use remote_fake::{stderr, stdout, FakeController};

fn accepting() -> FakeController {
    FakeController::start(Box::new(|_, m| match m {
        Message::UpgradeGroupReq(g) => Message::Ack(Ack::ok(g.ur_req.upgrade_req_id.clone())),
        Message::UpgradeCommitPlanReq(_) => Message::UpgradeCommitPlan(UpgradeCommitPlan {
            commit_batches: vec![vec!["a".into()], vec!["b".into()]],
            ..Default::default()
        }),
        _ => Message::Ack(Ack::ok("ok")),
    }))
}

#[test]
fn nodes_revert_sends_revert_to_standby_with_the_planner_options_and_the_reason() {
    let fake = accepting();
    let out = fake.run(&[
        "upgrade",
        "nodes",
        "-n",
        "a,b",
        "revert",
        "--reason",
        "2.0 drops links",
        "--version",
        "1.0",
        "--strategy",
        "fewest-batches",
        "--request-id",
        "R9",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let g = match fake.received().as_slice() {
        [Message::UpgradeGroupReq(g)] => g.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((g.ug_type, g.nodes.clone()), (UpgradeGroupType::Nodes, vec!["a".to_string(), "b".into()]));
    assert_eq!(g.ur_req.ur_type, UpgradeReqType::RevertToStandby);
    assert_eq!(g.ur_req.upgrade_req_id, "R9");
    assert_eq!(g.ur_req.version.as_deref(), Some("1.0"));
    assert_eq!(g.strategy, PlanStrategy::FewestBatches);
    assert!(!g.skip_failure && !g.skip_pop_failure, "like a commit: a node that does not come back stops it");
    assert_eq!(g.operator.reason.as_deref(), Some("2.0 drops links"));
}

#[test]
fn revert_needs_a_reason_and_its_dry_run_asks_for_the_revert_plan() {
    let fake = accepting();
    let out = fake.run(&["upgrade", "network", "revert"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--reason is required"), "{}", stderr(&out));
    assert!(fake.received().is_empty());
    let out = fake.run(&["upgrade", "network", "-e", "c", "revert", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    match fake.received().as_slice() {
        [Message::UpgradeCommitPlanReq(r)] => {
            assert!(r.revert);
            assert_eq!(r.exclude_nodes, ["c"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(stdout(&out).contains('a') && stdout(&out).contains('b'));
}

#[test]
fn config_set_sends_the_document_for_its_scope() {
    let fake = accepting();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("radio.toml");
    std::fs::write(&file, "[radio]\nchannel = 2\n").unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(fake.run(&["config", "set", "--board", "B1", f]).status.code(), Some(2), "needs --reason");
    assert_eq!(
        fake.run(&["config", "set", "--node", "n", "--fleet", f, "--reason", "x"]).status.code(),
        Some(2)
    );
    let out = fake.run(&["config", "set", "--board", "B1", f, "--reason", "channel plan"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let out = fake.run(&["config", "set", "--node", "n1", "--clear", "--reason", "back to the board's"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    match fake.received().as_slice() {
        [Message::ConfigSetReq(a), Message::ConfigSetReq(b)] => {
            assert_eq!(a.scope, ConfigScope::Board("B1".into()));
            assert_eq!(a.text.as_deref(), Some("[radio]\nchannel = 2\n"));
            assert_eq!(a.operator.reason.as_deref(), Some("channel plan"));
            assert_eq!((b.scope.clone(), b.text.clone()), (ConfigScope::Node("n1".into()), None));
        }
        other => panic!("{other:?}"),
    }
}
