//! Read commands: `upgrade state`, `status`, `image list`, `commit --dry-run`, `image add/del`:
//! what is sent, what is printed, and `--json` giving one parseable object.

mod remote_fake;

use meshlift_protocol::*;
use remote_fake::{stderr, stdout, FakeController};
use std::collections::BTreeMap;

fn image() -> UpgradeImage {
    UpgradeImage {
        name: "mesh-2.0".into(),
        version: "2.0".into(),
        magnet_uri: "magnet:?xt=urn:btih:abcd".into(),
        http_uri: "http://127.0.0.1:8080/images/mesh-2.0.mlimg".into(),
        sha256: Sha256Digest([0x11; 32]),
        size: 4096,
        hardware_board_ids: vec!["SIM_A".into(), "SIM_B".into()],
    }
}

fn plan() -> UpgradeCommitPlan {
    UpgradeCommitPlan {
        commit_batches: vec![vec!["leaf1".into(), "leaf2".into()], vec!["hub".into()]],
        ap_groups: BTreeMap::from([("hub-site".to_string(), vec!["leaf-site".to_string()])]),
        unplanned: vec![NodeReason { node: "ghost".into(), reason: "offline".into() }],
        filtered: vec![NodeReason { node: "old".into(), reason: "not flashed".into() }],
        warnings: vec![],
        explanation: "leaves before the hub".into(),
        costs: vec![],
    }
}

fn serving() -> FakeController {
    FakeController::start(Box::new(|_, m| match m {
        Message::ImageRecordsReq(r) if r.tag.as_deref() == Some("nope") => {
            Message::ImageRecords(Default::default())
        }
        Message::ImageRecordsReq(_) => Message::ImageRecords(fleet::ImageRecords {
            images: vec![fleet::ImageRecord { image: image(), tags: vec!["stable".into()] }],
        }),
        Message::UpgradeCommitPlanReq(_) => Message::UpgradeCommitPlan(plan()),
        Message::VersionsReq(r) => {
            let node = |n: &str| fleet::NodeVersions {
                name: n.into(),
                site: "S".into(),
                board: None,
                online: true,
                active: None,
                standby: None,
                on_trial: false,
                last_seen: None,
            };
            let nodes = ["a", "b", "c"]
                .into_iter()
                .filter(|n| r.filter.nodes.is_empty() || r.filter.nodes.iter().any(|x| x == n))
                .map(node)
                .collect();
            Message::FleetVersions(fleet::FleetVersions { nodes, ..Default::default() })
        }
        Message::UpgradeStateReq(_) => Message::UpgradeStateDump(UpgradeStateDump {
            finished_reqs: vec![FinishedReq {
                request_id: "r0".into(),
                success: true,
                summary: "3 ok".into(),
                finished_at: 0,
            }],
            ..Default::default()
        }),
        Message::NodeStatusReq(_) => Message::NodeStatusDump(NodeStatusDump {
            nodes: vec![NodeStatusRow {
                name: "n1".into(),
                site: "S1".into(),
                mac: "00:00:00:00:00:01".into(),
                online: true,
                is_pop: true,
                board: None,
                version: Some("1.0".into()),
                slots: None,
                upgrade_status: None,
                last_seen: None,
                startup_config: None,
            }],
        }),
        Message::UpgradeAddImageReq(r) => Message::Ack(Ack::ok(format!("added {}", r.image_url))),
        Message::UpgradeDelImageReq(_) => Message::Ack(Ack::refused("image mesh-9 is not in the store")),
        _ => Message::Ack(Ack::refused("unexpected")),
    }))
}

#[test]
fn image_list_table_and_json() {
    let fake = serving();
    let out = fake.run(&["image", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for want in [
        "mesh-2.0",
        "SIM_A,SIM_B",
        "4096",
        &"11".repeat(32),
        "magnet:?xt=urn:btih:abcd",
        "http://127.0.0.1:8080",
        "stable",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let out = fake.run(&["image", "list", "--json"]);
    let back: fleet::ImageRecords = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(back.images[0].image, image());
    let out = fake.run(&["image", "list", "--tag", "nope"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("No image matches"), "{}", stdout(&out));
}

#[test]
fn dry_run_sends_plan_request_and_prints_the_plan() {
    let fake = serving();
    let out = fake.run(&[
        "upgrade",
        "network",
        "-e",
        "x",
        "commit",
        "--dry-run",
        "--batch-size",
        "4",
        "--ap-policy",
        "dependents-first",
        "--version",
        "2.0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    match fake.received().as_slice() {
        [Message::UpgradeCommitPlanReq(r)] => {
            assert_eq!(r.limit, 4);
            assert_eq!(r.exclude_nodes, ["x"]);
            assert_eq!(r.ap_policy, ApPolicy::DependentsFirst);
            assert_eq!(r.max_pops_per_batch, 1);
            assert_eq!(r.version.as_deref(), Some("2.0"));
        }
        other => panic!("{other:?}"),
    }
    let text = stdout(&out);
    for want in [
        "Batch 1 (2 node(s)): leaf1, leaf2",
        "Batch 2 (1 node(s)): hub",
        "hub-site: leaf-site",
        "offline (1): ghost",
        "not flashed (1): old",
        "leaves before the hub",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let out = fake.run(&["upgrade", "network", "commit", "--dry-run", "--json"]);
    let back: UpgradeCommitPlan = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(back, plan());
}

#[test]
fn dry_run_of_a_node_list_plans_only_those_nodes_and_sends_no_commit() {
    let fake = serving();
    let out = fake.run(&["upgrade", "nodes", "-n", "a", "commit", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Commit plan:"), "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing was changed"), "{}", stdout(&out));
    let got = fake.received();
    assert!(!got.iter().any(|m| matches!(m, Message::UpgradeGroupReq(_))), "{got:?}");
    let plan = got.iter().find_map(|m| match m {
        Message::UpgradeCommitPlanReq(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(plan.expect("the plan was asked for").exclude_nodes, ["b", "c"]);
}

#[test]
fn state_and_status_print_tables_and_json() {
    let fake = serving();
    let out = fake.run(&["upgrade", "state"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("No request is running."));
    assert!(stdout(&out).contains("r0"));
    let out = fake.run(&["upgrade", "state", "--json"]);
    let back: UpgradeStateDump = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(back.finished_reqs[0].summary, "3 ok");

    let out = fake.run(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with("NODE"), "{text}");
    assert!(text.lines().nth(1).unwrap().contains("never"), "{text}");
    let out = fake.run(&["status", "--json"]);
    let back: NodeStatusDump = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(back.nodes[0].name, "n1");
}

#[test]
fn image_add_sends_an_absolute_path_and_del_reports_refusal() {
    let fake = serving();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.mlimg");
    std::fs::write(&file, b"x").unwrap();
    let out = fake.run(&["image", "add", file.to_str().unwrap(), "--reason", "new release"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = fake.run(&["image", "del", "mesh-9", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("image mesh-9 is not in the store"));
    match fake.received().as_slice() {
        [Message::UpgradeAddImageReq(a), Message::UpgradeDelImageReq(d)] => {
            assert_eq!(a.image_url, file.canonicalize().unwrap().to_str().unwrap());
            assert_eq!(a.operator.reason.as_deref(), Some("new release"));
            assert_eq!(d.name, "mesh-9");
        }
        other => panic!("{other:?}"),
    }
}
