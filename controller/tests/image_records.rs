//! Image records (issue 17 item 7): tags stored in SQLite with the image survive a controller
//! restart, listings filter by board, version and tag, and `latest`/`earliest` in an upgrade
//! request resolve on the controller (an unresolvable one is refused naming what was looked for).

mod engine_support;

use engine_support::*;
use meshlift_controller::engine::{Engine, EngineConfig};
use meshlift_controller::store::Store;
use meshlift_protocol::fleet::{ImageRecordsReq, ImageTagReq};
use meshlift_protocol::*;

fn img(version: &str, boards: &[&str]) -> UpgradeImage {
    UpgradeImage {
        name: version.into(),
        version: version.into(),
        hardware_board_ids: boards.iter().map(|b| b.to_string()).collect(),
        ..image()
    }
}

fn op(reason: &str) -> Operator {
    Operator { who: "vera".into(), reason: Some(reason.into()) }
}

fn names(engine: &mut Engine, req: ImageRecordsReq) -> Vec<String> {
    match engine.handle_operator(Message::ImageRecordsReq(req), T0) {
        Message::ImageRecords(r) => r.images.into_iter().map(|r| r.image.name).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tags_survive_a_restart_and_filter_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let topology = grid(2, 2, &[]);
    {
        let mut sim = Sim::with_store(topology.clone(), Some(Store::open(&db).unwrap()));
        let e = &mut sim.engine;
        e.add_image(img("1.0.0", &[BOARD]), op("base"), T0);
        e.add_image(img("2.0.0", &[BOARD, "OTHER"]), op("next"), T0);
        let tag = |name: &str, add: &[&str], remove: &[&str]| {
            Message::ImageTagReq(ImageTagReq {
                name: name.into(),
                add: add.iter().map(|s| s.to_string()).collect(),
                remove: remove.iter().map(|s| s.to_string()).collect(),
                operator: op("release"),
            })
        };
        let ack = e.handle_operator(tag("latest", &["stable", "lab"], &[]), T0);
        assert_eq!(ack, Message::Ack(Ack::ok("image 2.0.0 tags: none → lab, stable")));
        let ack = e.handle_operator(tag("1.0.0", &["stable"], &[]), T0);
        assert!(matches!(ack, Message::Ack(Ack { success: true, .. })), "{ack:?}");
        let ack = e.handle_operator(tag("2.0.0", &[], &["lab"]), T0);
        assert!(matches!(ack, Message::Ack(Ack { success: true, .. })), "{ack:?}");
        let bad = e.handle_operator(tag("2.0.0", &["no spaces"], &[]), T0);
        assert!(matches!(bad, Message::Ack(Ack { success: false, .. })), "{bad:?}");
        // The engine's writes reach SQLite through the shell's outbox.
        sim.deliver();
    }
    let store = Store::open(&db).unwrap();
    let mut e =
        Engine::from_snapshot(topology, EngineConfig::default(), store.snapshot().unwrap(), T0 + 1).unwrap();
    let tagged = |t: &str| ImageRecordsReq { tag: Some(t.into()), ..Default::default() };
    assert_eq!(names(&mut e, tagged("stable")), ["1.0.0", "2.0.0"], "tags reloaded from SQLite");
    assert!(names(&mut e, tagged("lab")).is_empty(), "the untag was stored too");
    let board =
        ImageRecordsReq { board: Some("OTHER".into()), tag: Some("stable".into()), ..Default::default() };
    assert_eq!(names(&mut e, board), ["2.0.0"]);
    assert_eq!(e.image_tags("2.0.0"), ["stable"]);
    // A deleted image takes its tags with it.
    e.remove_image("2.0.0", op("gone"), T0 + 2).unwrap();
    e.add_image(img("2.0.0", &[BOARD]), op("back"), T0 + 3);
    assert!(e.image_tags("2.0.0").is_empty());
}

#[test]
fn latest_and_earliest_resolve_in_an_upgrade_request_and_a_miss_is_named() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    sim.engine.remove_image(NEW, op("only dotted versions here"), sim.now).unwrap();
    sim.engine.add_image(img("1.0.0", &[BOARD]), op("a"), sim.now);
    sim.engine.add_image(img("1.10.0", &[BOARD]), op("b"), sim.now);
    sim.engine.add_image(img("1.9.0", &[BOARD]), op("c"), sim.now);
    sim.report_all();
    let mut req = prepare("r-latest", &["n00"]);
    req.ur_req.image_name = Some("latest".into());
    let ack = sim.submit(req);
    assert!(ack.success, "{ack:?}");
    let d = sim.dump();
    let running =
        d.cur_req.or_else(|| d.pending_reqs.first().cloned()).expect("the request is queued or running");
    assert_eq!(running.request.ur_req.image_name.as_deref(), Some("1.10.0"), "by version order, not by name");

    let mut req = prepare("r-miss", &["n00"]);
    req.ur_req.image_name = Some("earliest:NO_SUCH_BOARD".into());
    let ack = sim.submit(req);
    assert!(!ack.success);
    assert_eq!(
        ack.message,
        "no image matches earliest (images for board NO_SUCH_BOARD); stored: 1.0.0, 1.10.0, 1.9.0"
    );
}
