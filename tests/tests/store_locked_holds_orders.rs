//! The controller's state database is locked by another process (an operator's `sqlite3` left in
//! a write transaction, a second controller on the same file) when an upgrade is submitted: the
//! write fails after SQLite's busy timeout, so the controller sends nothing — no node starts a
//! download — reports itself degraded (`/healthz` 503 naming the error, the gauge at 1) and
//! refuses further state-changing requests. Once the lock is gone the held write goes through,
//! the orders go out, and the upgrade completes.

use meshlift_controller::store::{JournalEntry, JournalKind, Store, StoreOp};
use meshlift_meshsim::lab::Lab;
use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

async fn healthz(lab: &Lab) -> (u16, String) {
    let resp = reqwest::get(format!("{}/healthz", lab.http_url())).await.expect("/healthz answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn degraded_gauge(lab: &Lab) -> String {
    let text = reqwest::get(lab.metrics_url()).await.expect("/metrics").text().await.unwrap();
    text.lines().find(|l| l.starts_with("meshlift_controller_degraded ")).unwrap_or("missing").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_holds_every_order_until_the_write_succeeds() {
    let (cfg, _dir) = lab_config(sample_topology());
    let (lab, image) = start_with_v2(cfg).await;
    assert_eq!(healthz(&lab).await.0, 200);

    // Another writer takes the database's write lock and keeps it.
    let db = lab.cfg.work_dir.join("controller").join("state.db");
    let mut other = Store::open(&db).expect("state.db opens");
    let mut txn = other.begin().expect("a transaction");
    txn.write(&StoreOp::Journal(JournalEntry {
        seq: 0,
        at: 0,
        kind: JournalKind::Command,
        request_id: None,
        node: None,
        operator: None,
        message: "another writer".into(),
    }))
    .expect("the write lock");

    let reply = lab.submit(full_upgrade_request("e2e-locked", &image, 90)).await.expect("accepted");
    assert!(reply.contains("held"), "the operator is told the request is not recorded yet: {reply}");
    let (status, body) = healthz(&lab).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database is locked"), "{body}");
    assert_eq!(degraded_gauge(&lab).await, "meshlift_controller_degraded 1");
    // A further state-changing request is refused, with the reason.
    let abort = UpgradeAbortReq {
        abort_all: false,
        req_ids: vec!["e2e-locked".into()],
        reset_status: false,
        operator: Operator { who: "e2e".into(), reason: Some("e2e".into()) },
    };
    match lab.ask(Message::UpgradeAbortReq(abort)).await.expect("a reply") {
        Message::Ack(a) => assert!(
            !a.success && a.message.starts_with("controller degraded: store write failing: "),
            "{a:?}"
        ),
        other => panic!("an ack, not {}", other.kind()),
    }
    // No order left the controller: no node is downloading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let nodes = lab.ask(Message::NodeStatusReq(NodeStatusReq {})).await.expect("node status");
    let Message::NodeStatusDump(nodes) = nodes else { panic!("a node status dump") };
    for n in &nodes.nodes {
        let st = n.upgrade_status.as_ref().map(|u| u.us_type);
        assert!(
            matches!(st, None | Some(UpgradeStatusType::None)),
            "{} got an order whose record was never written: {st:?}",
            n.name
        );
    }

    // The lock goes away: the held write lands, the orders go out, the upgrade completes.
    drop(txn);
    drop(other);
    let mut log = BatchLog::default();
    let dump = finish(&lab, "e2e-locked", &mut log).await;
    assert_eq!(healthz(&lab).await, (200, "ok\n".to_string()));
    assert_eq!(degraded_gauge(&lab).await, "meshlift_controller_degraded 0");
    let commits = outcomes(&dump, "e2e-locked", UpgradeReqType::CommitUpgrade);
    assert_eq!(commits.len(), lab.cfg.topology.nodes.len());
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
    }
    let journal = journal(&lab);
    assert!(journal.iter().any(|e| e.message.starts_with("store writes durable again")));
    assert!(
        !journal.iter().any(|e| e.message == "another writer"),
        "the other writer's line was rolled back"
    );
    lab.stop().await;
}
