//! REVERT_TO_STANDBY (DMI `RevertToStandbyImage`) through the engine: ordered like a commit by the
//! planner on the live topology, judged from each node's next report, refused (with the reason)
//! where the standby slot holds nothing confirmed on that node.

mod engine_support;

use engine_support::*;
use meshlift_protocol::*;

fn revert_network(id: &str) -> UpgradeGroupReq {
    let ur = UpgradeReq::new(UpgradeReqType::RevertToStandby, id);
    let mut g = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, 120);
    g.skip_failure = true;
    g.operator = Operator { who: "bob@noc".into(), reason: Some("2.0 drops links at night".into()) };
    g
}

fn reverts_sent(sim: &Sim, node: &str) -> usize {
    sim.all_actions
        .iter()
        .filter(|a| {
            matches!(a, meshlift_controller::engine::Action::SendToNode { node: n, req, .. }
                if n == node && req.ur_type == UpgradeReqType::RevertToStandby)
        })
        .count()
}

/// A 4x5 mesh upgraded to v2 then reverted: every node back on v1 from its confirmed slot, in
/// staged batches, and no running node ever cut off from a POP.
#[test]
fn fleet_revert_after_an_upgrade_goes_back_to_v1_in_safe_batches() {
    let mut sim = Sim::new(grid(4, 5, &[]));
    assert!(sim.submit(full_upgrade("full-1")).success);
    sim.run_to_idle(300);
    assert!(sim.last_finished().success, "{:?}", sim.last_finished());
    assert!(sim.fleet.values().all(|m| m.version == NEW));

    // The dry run shows the batches of the revert before anything reboots.
    let plan = match sim.operator(Message::UpgradeCommitPlanReq(UpgradeCommitPlanReq {
        revert: true,
        max_pops_per_batch: 1,
        ..Default::default()
    })) {
        Message::UpgradeCommitPlan(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(plan.commit_batches.len() > 1, "{plan:?}");
    assert_eq!(plan.commit_batches.iter().map(Vec::len).sum::<usize>(), 20, "{plan:?}");
    assert!(plan.filtered.is_empty(), "{:?}", plan.filtered);

    let waves_before = sim.commit_waves.len();
    sim.isolation_events.clear();
    let ack = sim.submit(revert_network("revert-1"));
    assert!(ack.success, "{ack:?}");
    sim.run_to_idle(300);

    let f = sim.last_finished();
    assert!(f.success, "{f:?}");
    assert!(f.summary.starts_with("revert succeeded"), "{}", f.summary);
    let out = sim.outcomes(UpgradeReqType::RevertToStandby);
    assert_eq!(out.len(), 20);
    for (node, (kind, reason)) in &out {
        assert_eq!(*kind, OutcomeKind::Succeeded, "{node}: {reason}");
        assert!(reason.contains("reverted: running meshlift-1.0 from slot a"), "{node}: {reason}");
    }
    for m in sim.fleet.values() {
        assert_eq!(m.version, OLD, "{}", m.name);
        assert_eq!((m.slots.booted, m.slots.active), (SlotId::A, SlotId::A), "{}", m.name);
        assert_eq!(reverts_sent(&sim, &m.name), 1, "{}", m.name);
    }
    assert!(sim.commit_waves.len() - waves_before > 1, "staged: {:?}", &sim.commit_waves[waves_before..]);
    assert!(sim.isolation_events.is_empty(), "{:?}", sim.isolation_events);
    // Journaled with who asked (the command event mirrors the journal line).
    assert!(sim.all_actions.iter().any(|a| matches!(a,
        meshlift_controller::engine::Action::Event(e)
            if e.message.contains("bob@noc") && e.message.contains("RevertToStandby request queued"))));
}

/// Nodes whose standby slot is empty or was never confirmed are not sent a REVERT: their
/// outcome says what the slot holds. A node whose own check refuses (its report was out of date)
/// fails with the node's reason, once, without retries.
#[test]
fn nodes_without_a_confirmed_standby_are_refused_with_their_reason() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    // n01 and n02 get v2 flashed but never committed: their standby holds an unconfirmed image.
    assert!(sim.submit(prepare("prep-1", &["n01", "n02"])).success);
    sim.run_to_idle(100);
    // n10 reports a confirmed standby, but its boot environment says otherwise.
    sim.node("n10").slots.b =
        SlotReport { slot: SlotId::B, version: Some(NEW.into()), sha256: Some(sha(7)), confirmed: true };
    sim.node("n10").refuse_revert = Some(
        "standby slot b holds meshlift-2.0, which was never confirmed on this node: revert refused".into(),
    );
    sim.report_all();

    assert!(sim.submit(revert_network("revert-2")).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::RevertToStandby);
    let (kind, reason) = &out["n01"];
    assert_eq!(*kind, OutcomeKind::SkippedNotReady);
    assert_eq!(reason, "standby slot b holds meshlift-2.0, never confirmed on this node: revert refused");
    let (kind, reason) = &out["n00"];
    assert_eq!(*kind, OutcomeKind::SkippedNotReady);
    assert_eq!(reason, "standby slot b is empty: nothing to revert to");
    let (kind, reason) = &out["n10"];
    assert_eq!(*kind, OutcomeKind::Failed);
    assert!(reason.contains("never confirmed on this node"), "{reason}");
    assert_eq!(reverts_sent(&sim, "n10"), 1, "a refusal is final: nothing changed, retrying changes nothing");
    assert_eq!(reverts_sent(&sim, "n01"), 0);
    assert!(sim.fleet.values().all(|m| m.version == OLD && m.slots.booted == SlotId::A));
    assert!(!sim.last_finished().success, "a failed node fails the request");
}

/// A leaf whose v2 fell back is left out of the revert; the relay in front of it is its only
/// path to a POP, so reverting the relay would cut the running leaf off: the relay is held back
/// with the leaf's name as the reason, and nobody is isolated.
#[test]
fn a_relay_in_front_of_a_left_out_node_is_held_back() {
    let mut sim = Sim::new(grid(2, 3, &[("leaf", "n01")]));
    sim.node("leaf").on_commit = OnCommit::FallBack("radio calibration failed".into());
    let mut up = full_upgrade("full-2");
    up.skip_failure = true;
    assert!(sim.submit(up).success);
    sim.run_to_idle(300);
    assert_eq!(sim.fleet["leaf"].version, OLD);

    sim.isolation_events.clear();
    let plan = match sim.operator(Message::UpgradeCommitPlanReq(UpgradeCommitPlanReq {
        revert: true,
        max_pops_per_batch: 1,
        ..Default::default()
    })) {
        Message::UpgradeCommitPlan(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(plan.filtered.iter().any(|f| f.node == "n01" && f.reason.contains("cut off leaf")), "{plan:?}");
    assert!(plan.commit_batches.iter().flatten().all(|n| n != "n01" && n != "leaf"), "{plan:?}");
    assert!(sim.submit(revert_network("revert-3")).success);
    sim.run_to_idle(300);
    let out = sim.outcomes(UpgradeReqType::RevertToStandby);
    assert_eq!(out["leaf"].0, OutcomeKind::SkippedNotReady, "{:?}", out["leaf"]);
    let (kind, reason) = &out["n01"];
    assert_eq!(*kind, OutcomeKind::SkippedNotReady);
    assert!(reason.starts_with("held back: reverting it would cut off leaf"), "{reason}");
    assert_eq!(reverts_sent(&sim, "n01"), 0);
    for n in ["n00", "n02", "n10", "n11", "n12"] {
        assert_eq!(out[n].0, OutcomeKind::Succeeded, "{n}: {:?}", out[n]);
        assert_eq!(sim.fleet[n].version, OLD, "{n}");
    }
    assert!(sim.isolation_events.is_empty(), "{:?}", sim.isolation_events);
}
