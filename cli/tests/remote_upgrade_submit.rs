//! `meshlift upgrade …` builds the request the operator asked for, and reports the controller's
//! answer with the right exit code.

mod remote_fake;

use meshlift_protocol::*;
use remote_fake::{stderr, stdout, FakeController};

fn accepting() -> FakeController {
    FakeController::start(Box::new(|_, m| match m {
        Message::UpgradeGroupReq(g) => Message::Ack(Ack::ok(g.ur_req.upgrade_req_id.clone())),
        _ => Message::Ack(Ack::ok("ok")),
    }))
}

fn only_group_req(fake: &FakeController) -> UpgradeGroupReq {
    match fake.received().as_slice() {
        [Message::UpgradeGroupReq(g)] => g.clone(),
        other => panic!("expected one UpgradeGroupReq, got {other:?}"),
    }
}

#[test]
fn network_prepare_carries_flags_image_name_and_operator() {
    let fake = accepting();
    let out = fake.run(&[
        "upgrade",
        "network",
        "--exclude",
        "n7,n9",
        "prepare",
        "--image",
        "mesh-2.0",
        "--batch-size",
        "5",
        "--retries",
        "1",
        "--download-limit",
        "1000000",
        "--max-connections",
        "8",
        "--reason",
        "CVE fix",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let g = only_group_req(&fake);
    assert_eq!(g.ug_type, UpgradeGroupType::Network);
    assert_eq!(g.exclude_nodes, ["n7", "n9"]);
    assert!(g.nodes.is_empty());
    assert_eq!(g.ur_req.ur_type, UpgradeReqType::PrepareUpgrade);
    assert_eq!(g.ur_req.image_name.as_deref(), Some("mesh-2.0"));
    // The controller fills these from its image store.
    assert_eq!(
        (g.ur_req.sha256, g.ur_req.image_url.as_deref(), g.ur_req.http_url.as_deref()),
        (None, None, None)
    );
    assert_eq!((g.limit, g.retry_limit, g.timeout_s), (5, 1, 180));
    assert!(g.skip_failure && g.skip_pop_failure, "prepare skips failures by default");
    assert_eq!(g.ur_req.torrent_params.download_limit, Some(1_000_000));
    assert_eq!(g.ur_req.torrent_params.max_connections, Some(8));
    assert_eq!(g.ur_req.torrent_params.download_timeout_s, 180);
    assert_eq!(g.operator.who, "alice@noc1");
    assert_eq!(g.operator.reason.as_deref(), Some("CVE fix"));
    // A timestamp id: 14 digits, a dash, 4 hex digits; and it is printed.
    let id = &g.ur_req.upgrade_req_id;
    assert_eq!(id.len(), 19, "{id}");
    assert!(id[..14].chars().all(|c| c.is_ascii_digit()) && &id[14..15] == "-", "{id}");
    assert!(stdout(&out).contains(id.as_str()), "{}", stdout(&out));
}

#[test]
fn nodes_commit_carries_skip_flags_and_prints_json() {
    let fake = accepting();
    let out = fake.run(&[
        "upgrade",
        "nodes",
        "-n",
        "a,b",
        "commit",
        "--skip-failure",
        "--skip-pop-failure",
        "--skip-links",
        "l1,l2",
        "--batch-size",
        "-1",
        "--retries",
        "0",
        "--version",
        "2.0",
        "--delay",
        "30",
        "--ap-policy",
        "dependents-first",
        "--max-pops-per-batch",
        "2",
        "--strategy",
        "fewest-batches",
        "--confirm-timeout",
        "90",
        "--timeout",
        "400",
        "--request-id",
        "R1",
        "--json",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let g = only_group_req(&fake);
    assert_eq!(g.ug_type, UpgradeGroupType::Nodes);
    assert_eq!(g.nodes, ["a", "b"]);
    assert_eq!(g.ur_req.ur_type, UpgradeReqType::CommitUpgrade);
    assert_eq!(g.ur_req.upgrade_req_id, "R1");
    assert!(g.skip_failure && g.skip_pop_failure);
    assert_eq!(g.skip_links, ["l1", "l2"]);
    assert_eq!(g.ur_req.skip_links, ["l1", "l2"]);
    assert_eq!((g.limit, g.retry_limit, g.timeout_s), (-1, 0, 400));
    assert_eq!(g.version.as_deref(), Some("2.0"));
    assert_eq!(g.ur_req.version.as_deref(), Some("2.0"));
    assert_eq!(g.ur_req.schedule_to_commit_s, 30);
    assert_eq!(g.ur_req.confirm_timeout_s, 90);
    assert_eq!((g.ap_policy, g.max_pops_per_batch), (ApPolicy::DependentsFirst, 2));
    assert_eq!(g.strategy, PlanStrategy::FewestBatches);
    assert_eq!(g.operator.reason, None);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(v, serde_json::json!({"request_id": "R1", "accepted": true}));
}

#[test]
fn commit_and_full_defaults_stop_on_failure_where_terragraph_does() {
    let fake = accepting();
    assert_eq!(fake.run(&["upgrade", "network", "commit", "--yes"]).status.code(), Some(0));
    assert_eq!(
        fake.run(&["upgrade", "network", "full", "-i", "img", "--skip-pop-failure=true", "-y"]).status.code(),
        Some(0)
    );
    assert_eq!(fake.run(&["upgrade", "nodes", "-n", "a", "reset", "--yes"]).status.code(), Some(0));
    let got = fake.received();
    let [Message::UpgradeGroupReq(commit), Message::UpgradeGroupReq(full), Message::UpgradeGroupReq(reset)] =
        got.as_slice()
    else {
        panic!("{got:?}")
    };
    assert!(!commit.skip_failure && !commit.skip_pop_failure);
    assert_eq!((commit.timeout_s, commit.limit, commit.retry_limit), (300, 0, 3));
    assert_eq!(commit.strategy, PlanStrategy::Terragraph);
    assert_eq!(full.ur_req.ur_type, UpgradeReqType::FullUpgrade);
    assert!(full.skip_failure && full.skip_pop_failure);
    assert_eq!(full.ur_req.image_name.as_deref(), Some("img"));
    assert_eq!(reset.ur_req.ur_type, UpgradeReqType::ResetStatus);
    assert_eq!((reset.timeout_s, reset.nodes.as_slice()), (0, ["a".to_string()].as_slice()));
}

#[test]
fn refused_request_exits_1_with_the_controllers_message() {
    let fake = FakeController::start(Box::new(|_, _| Message::Ack(Ack::refused("unknown image \"nope\""))));
    let out = fake.run(&["upgrade", "network", "prepare", "--image", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown image \"nope\""), "{}", stderr(&out));
}

#[test]
fn abort_sends_ids_reset_and_reason() {
    let fake = FakeController::start(Box::new(|_, _| Message::Ack(Ack::ok("Aborted all valid requests"))));
    let out = fake.run(&["upgrade", "abort", "-r", "r1,r2", "--reset", "--reason", "wrong image"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Aborted all valid requests"));
    match fake.received().as_slice() {
        [Message::UpgradeAbortReq(a)] => {
            assert!(!a.abort_all && a.reset_status);
            assert_eq!(a.req_ids, ["r1", "r2"]);
            assert_eq!(a.operator.reason.as_deref(), Some("wrong image"));
            assert_eq!(a.operator.who, "alice@noc1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_usage_exits_2_without_sending_anything() {
    let fake = accepting();
    assert_eq!(fake.run(&["upgrade", "nodes", "-n", "a,a", "commit"]).status.code(), Some(2));
    assert_eq!(fake.run(&["upgrade", "network", "prepare"]).status.code(), Some(2));
    assert_eq!(fake.run(&["upgrade", "abort"]).status.code(), Some(2));
    assert_eq!(
        fake.run(&["upgrade", "network", "prepare", "-i", "x", "--download-attempts", "11"]).status.code(),
        Some(2)
    );
    assert!(fake.received().is_empty());
}

#[test]
fn a_destructive_command_without_a_terminal_needs_yes_or_dry_run_and_sends_nothing() {
    let fake = accepting();
    for cmd in [
        &["upgrade", "network", "commit"][..],
        &["upgrade", "network", "full", "-i", "img"],
        &["upgrade", "nodes", "-n", "a", "reset"],
        &["image", "del", "img"],
        &["golden", "set", "-i", "img"],
        &["snapshot", "delete", "s1"],
        &["snapshot", "restore", "s1"],
    ] {
        let out = fake.run(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        assert!(
            err.contains("stdin is not a terminal") && err.contains("--yes") && err.contains("--dry-run"),
            "{cmd:?}: {err}"
        );
    }
    assert!(fake.received().is_empty(), "nothing was sent: {:?}", fake.received());
}
