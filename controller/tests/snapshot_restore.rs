//! Snapshot, upgrade, restore on the engine's simulated fleet with a fake clock (issue 17 item 4):
//! the restore runs through the golden-image reconciler's per-node targets, takes every node back
//! to the recorded version (a downgrade, allowed because the operator asked and journaled as
//! such), never isolates a running node (the harness checks it at every step), and a snapshot
//! whose image was deleted is refused with the image's name.

mod engine_support;

use engine_support::*;
use meshlift_controller::golden::{drive, GoldenConfig};
use meshlift_controller::snapshot;
use meshlift_controller::store::Store;
use meshlift_protocol::fleet::{NodeFilter, SnapshotCmd, SnapshotReq};
use meshlift_protocol::*;

const V1: &str = "1.0.0";
const V2: &str = "2.0.0";

fn img(v: &str, sha: u8) -> UpgradeImage {
    UpgradeImage { name: v.into(), version: v.into(), sha256: engine_support::sha(sha), ..image() }
}

fn vera(reason: &str) -> Operator {
    Operator { who: "vera".into(), reason: Some(reason.into()) }
}

fn active_versions(sim: &Sim) -> Vec<Option<String>> {
    sim.fleet.values().map(|m| m.slots.slot(m.slots.active).version.clone()).collect()
}

#[test]
fn snapshot_upgrade_restore_returns_every_node_to_the_snapshot_through_the_reconciler() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim =
        Sim::with_store(grid(3, 3, &[("l1", "n11")]), Some(Store::open(&dir.path().join("s.db")).unwrap()));
    for m in sim.fleet.values_mut() {
        m.version = V1.into();
        m.slots.a.version = Some(V1.into());
    }
    sim.engine.add_image(img(V1, 1), vera("base"), sim.now);
    sim.engine.add_image(img(V2, 2), vera("next"), sim.now);
    sim.report_all();
    let row = sim.store().and_then(|s| s.golden().unwrap());
    let mut golden = drive::open(row.as_deref(), &GoldenConfig::default()).unwrap();
    assert!(!golden.state().settings.enabled, "the restore does not need the golden loop enabled");

    let ask = |sim: &mut Sim, golden: &mut _, cmd| {
        let req = SnapshotReq { cmd, operator: vera("before v2") };
        let m = snapshot::command(&mut sim.engine, golden, req, sim.now);
        sim.deliver();
        m
    };
    let created = ask(
        &mut sim,
        &mut golden,
        SnapshotCmd::Create { name: "before-v2".into(), filter: NodeFilter::default() },
    );
    assert!(
        matches!(&created, Message::Ack(a) if a.success && a.message.contains("10 node(s) on 1.0.0")),
        "{created:?}"
    );

    // Upgrade everything to v2 by hand.
    let mut req = full_upgrade("to-v2");
    req.ur_req.image_name = Some(V2.into());
    req.version = Some(V2.into());
    assert!(sim.submit(req).success);
    sim.run_to_idle(400);
    assert!(active_versions(&sim).iter().all(|v| v.as_deref() == Some(V2)));

    // The dry run: every node changes, a downgrade each, batches from the planner.
    let dry = ask(&mut sim, &mut golden, SnapshotCmd::Restore { name: "before-v2".into(), dry_run: true });
    let Message::SnapshotCampaign(c) = dry else { panic!("{dry:?}") };
    assert_eq!(c.steps.len(), 10);
    assert!(c
        .steps
        .iter()
        .all(|s| s.downgrade && s.image.as_deref() == Some(V1) && s.from_version.as_deref() == Some(V2)));
    assert!(c.missing_images.is_empty() && c.unchanged.is_empty());
    let planned: usize = c.plan.commit_batches.iter().map(Vec::len).sum();
    assert_eq!(planned, 10, "{:?}", c.plan);
    assert!(golden.restore().is_none(), "a dry run starts nothing");

    let started =
        ask(&mut sim, &mut golden, SnapshotCmd::Restore { name: "before-v2".into(), dry_run: false });
    assert!(matches!(&started, Message::Ack(a) if a.success), "{started:?}");
    let Message::Snapshots(listed) = snapshot::show(&sim.engine, &golden, None) else { panic!("snapshots") };
    let running = listed.restore.expect("the running restore is listed");
    assert_eq!(
        (running.snapshot.as_str(), running.pending.len(), running.who.as_str()),
        ("before-v2", 10, "vera")
    );
    let again = ask(&mut sim, &mut golden, SnapshotCmd::Restore { name: "before-v2".into(), dry_run: false });
    assert!(
        matches!(&again, Message::Ack(a) if !a.success && a.message.contains("a restore is running already")),
        "{again:?}"
    );
    for _ in 0..600 {
        if golden.restore().is_none() {
            break;
        }
        sim.step();
        let store = sim.outbox.as_ref().map(|o| &o.store().store);
        drive::turn(&mut sim.engine, &mut golden, store, sim.now);
        sim.deliver();
    }
    assert!(golden.restore().is_none(), "the restore finished");
    for m in sim.fleet.values() {
        let active = m.slots.slot(m.slots.active);
        assert_eq!(
            (active.version.as_deref(), active.confirmed),
            (Some(V1), true),
            "{} back on v1 from a confirmed slot",
            m.name
        );
    }
    assert!(sim.isolation_events.is_empty(), "collateral isolation: {:?}", sim.isolation_events);
    // The restore's request carried allow_downgrade with the operator's name in its reason.
    let journal = sim.store().unwrap().journal(0, 10_000).unwrap();
    assert!(
        journal.iter().any(|e| e.operator.as_ref().is_some_and(|o| o.who == "vera"
            && o.reason
                .as_deref()
                .is_some_and(|r| r.contains("restore of snapshot before-v2 asked by vera")
                    && r.contains("downgrade is allowed because the operator asked")))),
        "journal: {journal:#?}"
    );
    assert!(journal.iter().any(|e| e
        .message
        .contains("restore of snapshot before-v2 finished: 10 node(s) on their recorded version, 0 not")));

    // Nothing left to do now; and once v1 is deleted, a restore of a snapshot needing it is refused by name.
    let nothing =
        ask(&mut sim, &mut golden, SnapshotCmd::Restore { name: "before-v2".into(), dry_run: false });
    assert!(
        matches!(&nothing, Message::Ack(a) if !a.success && a.message.contains("nothing to restore")),
        "{nothing:?}"
    );
    let mut req = full_upgrade("to-v2-again");
    req.ur_req.image_name = Some(V2.into());
    req.version = Some(V2.into());
    assert!(sim.submit(req).success);
    sim.run_to_idle(400);
    sim.engine.remove_image(V1, vera("retired"), sim.now).unwrap();
    let refused =
        ask(&mut sim, &mut golden, SnapshotCmd::Restore { name: "before-v2".into(), dry_run: false });
    assert!(
        matches!(&refused, Message::Ack(a) if !a.success && a.message.contains("needs images the store no longer holds: 1.0.0")),
        "{refused:?}"
    );
    assert!(golden.restore().is_none());

    // Delete; the list is empty afterwards and the record survives nowhere.
    let del = ask(&mut sim, &mut golden, SnapshotCmd::Delete { name: "before-v2".into() });
    assert!(matches!(&del, Message::Ack(a) if a.success), "{del:?}");
    assert_eq!(snapshot::show(&sim.engine, &golden, None), Message::Snapshots(Default::default()));
}
