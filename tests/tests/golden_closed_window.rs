//! A closed window starts nothing, on real processes: the loop is enabled with a target and the
//! image in the store, but its window opens later; no request is sent and no node is touched,
//! and `golden show` says when the window opens.

use meshlift_meshsim::lab::{Lab, SIM_BOARD};
use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn golden_show(lab: &Lab) -> GoldenShow {
    match lab.ask(Message::GoldenShowReq(GoldenShowReq {})).await.expect("controller answers") {
        Message::GoldenShow(s) => s,
        other => panic!("expected GoldenShow, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_starts_nothing() {
    // A window that opens two hours from now (UTC) and lasts half an hour.
    let hour = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 3600 % 24;
    let opens = (hour + 2) % 24;
    let window = format!("any {opens:02}:00-{opens:02}:30 UTC");
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.golden_toml = Some(format!(
        "[golden]\nenabled = true\ncheck_interval_s = 1\nbake_s = 1\nwindow = \"{window}\"\n\n\
         [[golden.targets]]\nboard = \"{SIM_BOARD}\"\nimage = \"{V2}\"\n"
    ));
    let (lab, _image) = start_with_v2(cfg).await;
    lab.wait_all_reported(Duration::from_secs(30)).await.expect("every node reports");
    // Five check intervals with the engine idle, a target behind, and the image in the store.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let show = golden_show(&lab).await;
    assert!(!show.window_open);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let next = show.next_window_open.expect("the window opens");
    assert!(next > now + 3_600_000 && next <= now + 2 * 3_600_000, "opens at the top of hour {opens}");
    let board = &show.boards[0];
    assert_eq!(board.state, "window_closed");
    assert!(board.behind > 0);
    assert!(board.waves.is_empty(), "{:?}", board.waves);
    let dump = lab.state().await.expect("state");
    assert!(dump.cur_req.is_none() && dump.pending_reqs.is_empty() && dump.finished_reqs.is_empty());
    for row in &lab.node_status().await.expect("status").nodes {
        assert_eq!(row.version.as_deref(), Some(V1), "{}", row.name);
        assert!(
            row.upgrade_status.as_ref().is_none_or(|u| u.upgrade_req_id.is_empty()),
            "{} untouched",
            row.name
        );
    }
    // Opening the window (an operator's change, journaled) lets the loop start.
    let open = GoldenReq {
        cmd: GoldenCmd::SetWindow { window: None },
        operator: Operator { who: "test".into(), reason: Some("maintenance now".into()) },
    };
    assert!(matches!(lab.ask(Message::GoldenReq(open)).await.expect("answer"), Message::Ack(a) if a.success));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while golden_show(&lab).await.boards[0].waves.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no wave after the window opened");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    lab.stop().await;
}
