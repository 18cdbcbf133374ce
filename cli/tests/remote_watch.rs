//! `--watch` follows a request through the controller's state dumps and ends with an exit code
//! that says whether every node made it.

mod remote_fake;

use meshlift_protocol::*;
use remote_fake::{stderr, stdout, FakeController};

fn running(id: &str, batch: &[(&str, UpgradeStatusType, Option<u32>)], pending: &[&str]) -> UpgradeStateDump {
    UpgradeStateDump {
        cur_req: Some(RequestView {
            request: UpgradeGroupReq::new(
                UpgradeGroupType::Network,
                UpgradeReq::new(UpgradeReqType::PrepareUpgrade, id),
                180,
            ),
            stage: UpgradeReqType::PrepareUpgrade,
            submitted_at: 0,
            started_at: Some(0),
        }),
        cur_batch_index: 1,
        cur_batch: batch
            .iter()
            .map(|(n, s, p)| BatchNodeView {
                node: n.to_string(),
                state: *s,
                detail: String::new(),
                retries: 0,
                last_seen: None,
                progress_ppm: *p,
            })
            .collect(),
        pending_nodes: pending.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn finished(id: &str, success: bool, outcomes: &[(&str, OutcomeKind)]) -> UpgradeStateDump {
    UpgradeStateDump {
        outcomes: outcomes
            .iter()
            .map(|(n, o)| NodeOutcome {
                request_id: id.into(),
                stage: UpgradeReqType::PrepareUpgrade,
                node: n.to_string(),
                outcome: *o,
                reason: format!("{} because", o.as_str()),
                started_at: 0,
                finished_at: 0,
            })
            .collect(),
        finished_reqs: vec![FinishedReq {
            request_id: id.into(),
            success,
            summary: "done".into(),
            finished_at: 0,
        }],
        ..Default::default()
    }
}

/// Accepts the request, reports it running for two polls, then finished with `outcomes`.
fn scripted(success: bool, outcomes: Vec<(&'static str, OutcomeKind)>) -> FakeController {
    let mut polls = 0;
    FakeController::start(Box::new(move |_, m| match m {
        Message::UpgradeGroupReq(g) => Message::Ack(Ack::ok(g.ur_req.upgrade_req_id.clone())),
        Message::UpgradeStateReq(_) => {
            polls += 1;
            Message::UpgradeStateDump(match polls {
                1 => running("W1", &[("a", UpgradeStatusType::DownloadingImage, Some(300_000))], &["b"]),
                2 => running("W1", &[("b", UpgradeStatusType::FlashingImage, None)], &[]),
                _ => finished("W1", success, &outcomes),
            })
        }
        _ => Message::Ack(Ack::refused("unexpected")),
    }))
}

fn watch(fake: &FakeController, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "upgrade",
        "network",
        "prepare",
        "-i",
        "img",
        "--request-id",
        "W1",
        "--watch",
        "--poll-ms",
        "50",
    ];
    args.extend_from_slice(extra);
    fake.run(&args)
}

#[test]
fn watch_exits_0_when_every_node_succeeded() {
    let fake = scripted(true, vec![("a", OutcomeKind::Succeeded), ("b", OutcomeKind::AlreadyAtVersion)]);
    let out = watch(&fake, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "stdout: {text}\nstderr: {}", stderr(&out));
    // Without a terminal: plain progress lines, then the outcome table.
    assert!(text.contains("W1: prepare batch 1: 0/2 done | a DOWNLOADING_IMAGE 30%"), "{text}");
    assert!(text.contains("b FLASHING_IMAGE"), "{text}");
    assert!(text.contains("already_at_version"), "{text}");
    // Submission plus three polls.
    assert_eq!(fake.received().len(), 4);
}

#[test]
fn watch_exits_1_when_a_node_fell_back() {
    let fake = scripted(true, vec![("a", OutcomeKind::Succeeded), ("b", OutcomeKind::FellBack)]);
    let out = watch(&fake, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("fell_back because"));
}

#[test]
fn watch_json_prints_one_object_with_outcomes() {
    let fake = scripted(false, vec![("a", OutcomeKind::Failed)]);
    let out = watch(&fake, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("exactly one JSON object");
    assert_eq!(v["request_id"], "W1");
    assert_eq!(v["success"], false);
    assert_eq!(v["outcomes"][0]["outcome"], "Failed");
}

#[test]
fn state_watch_follows_the_running_request() {
    let fake = scripted(true, vec![("a", OutcomeKind::Succeeded)]);
    let out = fake.run(&["upgrade", "state", "--watch", "--poll-ms", "50"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("W1: finished, ok"), "{}", stdout(&out));
}
