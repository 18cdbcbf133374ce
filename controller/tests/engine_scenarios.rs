//! Engine scenarios on generated meshes with a scripted fleet and a fake clock.

mod engine_support;

use engine_support::*;
use meshlift_controller::engine::Action;
use meshlift_protocol::*;

fn kinds(sim: &Sim, stage: UpgradeReqType) -> std::collections::BTreeMap<String, OutcomeKind> {
    sim.outcomes(stage).into_iter().map(|(k, (o, _))| (k, o)).collect()
}

#[test]
fn full_upgrade_of_a_20_site_mesh_isolates_no_one() {
    let mut sim = Sim::new(grid(4, 5, &[]));
    let ack = sim.submit(full_upgrade("full-1"));
    assert!(ack.success, "{ack:?}");
    assert_eq!(ack.message, "full-1");
    sim.run_to_idle(300);

    let f = sim.last_finished();
    assert!(f.success, "{f:?}");
    let prep = kinds(&sim, UpgradeReqType::PrepareUpgrade);
    let com = kinds(&sim, UpgradeReqType::CommitUpgrade);
    assert_eq!(prep.len(), 20);
    assert_eq!(com.len(), 20);
    assert!(com.values().all(|k| *k == OutcomeKind::Succeeded), "{com:?}");
    for m in sim.fleet.values() {
        assert_eq!(m.version, NEW, "{}", m.name);
        assert_eq!(m.slots.active, m.slots.booted);
    }
    // Staged: more than one wave, every node committed exactly once, no running node cut off.
    assert!(sim.commit_waves.len() > 1, "{:?}", sim.commit_waves);
    for m in sim.fleet.keys() {
        assert_eq!(sim.commits_sent(m), 1, "{m}");
    }
    assert!(sim.isolation_events.is_empty(), "{:?}", sim.isolation_events);
    // PREPARE carried the image fields from the store.
    let prep_req =
        sim.fleet["n12"].received.iter().find(|r| r.ur_type == UpgradeReqType::PrepareUpgrade).unwrap();
    assert_eq!(prep_req.sha256, Some(sha(7)));
    assert_eq!(prep_req.image_url.as_deref(), Some("magnet:?xt=urn:btih:abc"));
    assert_eq!(prep_req.http_url.as_deref(), Some("http://ctrl/images/new.mlimg"));
    assert_eq!(prep_req.image_size, Some(1 << 20));
    assert_eq!(prep_req.hardware_board_ids, vec![BOARD.to_string()]);
    assert_eq!(prep_req.version.as_deref(), Some(NEW));
    let commit_req =
        sim.fleet["n12"].received.iter().find(|r| r.ur_type == UpgradeReqType::CommitUpgrade).unwrap();
    assert_eq!(commit_req.confirm_timeout_s, 120);
}

#[test]
fn a_node_failing_prepare_is_retried_then_succeeds() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    sim.node("n11").prepare_failures = 2;
    assert!(sim.submit(prepare("p1", &["n01", "n11"])).success);
    sim.run_to_idle(60);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n11"].0, OutcomeKind::Succeeded);
    let prepares =
        sim.fleet["n11"].received.iter().filter(|r| r.ur_type == UpgradeReqType::PrepareUpgrade).count();
    assert_eq!(prepares, 3, "two failures, two retries");
    assert!(sim.last_finished().success);
}

#[test]
fn a_node_failing_prepare_beyond_its_retries_fails_with_the_minions_reason() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    sim.node("n11").prepare_failures = 10;
    let mut req = prepare("p1", &["n01", "n11"]);
    req.retry_limit = 1;
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(60);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n11"].0, OutcomeKind::Failed);
    assert!(out["n11"].1.contains("tracker unreachable"), "{}", out["n11"].1);
    assert!(out["n11"].1.contains("after 1 retries"), "{}", out["n11"].1);
    assert_eq!(out["n01"].0, OutcomeKind::Succeeded);
    assert!(!sim.last_finished().success);
}

#[test]
fn a_node_falling_back_on_commit_is_fell_back_with_its_reason_and_not_recommitted() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02", "n12"]);
    sim.node("n02").on_commit = OnCommit::FallBack("post-boot check: link-n01-n02 stayed down".into());
    let mut req = commit("c1", &["n01", "n02", "n12"]);
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    assert_eq!(out["n02"].0, OutcomeKind::FellBack, "{out:?}");
    assert!(out["n02"].1.contains("link-n01-n02 stayed down"), "{}", out["n02"].1);
    assert_eq!(sim.commits_sent("n02"), 1);
    assert_eq!(out["n01"].0, OutcomeKind::Succeeded);
    assert_eq!(out["n12"].0, OutcomeKind::Succeeded);
    assert_eq!(sim.fleet["n02"].version, OLD);
}

#[test]
fn a_node_offline_at_batch_formation_is_skipped_offline_and_stops_the_request_without_skip_failure() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02", "n12"]);
    sim.node("n12").killed = true;
    for _ in 0..8 {
        sim.step();
    }
    assert!(!sim.engine.node_online("n12", sim.now));
    assert!(sim.submit(commit("c1", &["n01", "n02", "n12"])).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    assert_eq!(out["n12"].0, OutcomeKind::SkippedOffline);
    assert!(out["n12"].1.contains("offline"), "{}", out["n12"].1);
    // skip_failure = false: nothing was committed, the others are aborted with the reason.
    assert_eq!(out["n01"].0, OutcomeKind::Aborted);
    assert!(out["n01"].1.contains("n12 failed"), "{}", out["n01"].1);
    assert_eq!(sim.commits_sent("n01"), 0);
    assert!(!sim.last_finished().success);
}

#[test]
fn with_skip_failure_an_offline_node_is_skipped_and_the_rest_upgrade() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02", "n12"]);
    sim.node("n12").killed = true;
    for _ in 0..8 {
        sim.step();
    }
    let mut req = commit("c1", &["n01", "n02", "n12"]);
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    assert_eq!(out["n12"].0, OutcomeKind::SkippedOffline);
    assert_eq!(out["n01"].0, OutcomeKind::Succeeded);
    assert_eq!(out["n02"].0, OutcomeKind::Succeeded);
}

#[test]
fn batch_timeout_retries_then_fails_and_skip_failure_off_stops_the_request() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    sim.node("n02").prepare_hangs = true;
    let mut req = prepare("p1", &["n02", "n11", "n12"]);
    req.limit = 1;
    req.retry_limit = 1;
    req.timeout_s = 30;
    assert!(sim.submit(req).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n02"].0, OutcomeKind::Failed);
    assert!(out["n02"].1.contains("batch timed out after 30s"), "{}", out["n02"].1);
    assert!(out["n02"].1.contains("DOWNLOADING_IMAGE"), "{}", out["n02"].1);
    // n02 goes first (name order), so the others never got their turn.
    assert_eq!(out["n11"].0, OutcomeKind::Aborted);
    assert_eq!(out["n12"].0, OutcomeKind::Aborted);
    assert!(sim.fleet["n11"].received.is_empty());
}

#[test]
fn batch_timeout_with_skip_failure_goes_on() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    sim.node("n02").prepare_hangs = true;
    let mut req = prepare("p1", &["n02", "n11", "n12"]);
    req.limit = 1;
    req.retry_limit = 0;
    req.timeout_s = 30;
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n02"].0, OutcomeKind::Failed);
    assert_eq!(out["n11"].0, OutcomeKind::Succeeded);
    assert_eq!(out["n12"].0, OutcomeKind::Succeeded);
}

#[test]
fn a_failing_pop_stops_the_request_unless_skip_pop_failure() {
    for skip_pop in [false, true] {
        let mut sim = Sim::new(grid(2, 3, &[]));
        flash(&mut sim, &["n00", "n01", "n02", "n10", "n11", "n12"]);
        sim.node("n00").on_commit = OnCommit::Fail("bootenv write failed".into());
        let mut req = commit("c1", &["n00", "n01", "n02", "n10", "n11", "n12"]);
        req.skip_failure = true;
        req.skip_pop_failure = skip_pop;
        req.limit = 1;
        req.retry_limit = 0;
        assert!(sim.submit(req).success);
        sim.run_to_idle(200);
        let out = kinds(&sim, UpgradeReqType::CommitUpgrade);
        assert_eq!(out["n00"], OutcomeKind::Failed);
        if skip_pop {
            assert!(
                out.iter().filter(|(k, _)| *k != "n00").all(|(_, o)| *o == OutcomeKind::Succeeded),
                "{out:?}"
            );
        } else {
            // The POP is planned last (leaves first); whatever was still pending is aborted.
            assert!(sim.last_finished().summary.contains("POP n00 failed"), "{:?}", sim.last_finished());
            assert_eq!(sim.commits_sent("n00"), 1);
        }
    }
}

#[test]
fn a_pop_that_does_not_get_its_bgp_peers_back_is_not_a_success() {
    let mut sim = Sim::new(grid(1, 2, &[]));
    flash(&mut sim, &["n00"]);
    let mut req = commit("c1", &["n00"]);
    req.timeout_s = 60;
    req.retry_limit = 0;
    assert!(sim.submit(req).success);
    sim.run_until(20, |s| s.fleet["n00"].status.us_type == UpgradeStatusType::Trial);
    sim.node("n00").bgp = Some(1); // had 2 at dispatch
    sim.step();
    sim.step();
    let d = sim.dump();
    assert!(
        d.cur_batch[0].detail.contains("waiting for BGP peers (expecting 2, have 1)"),
        "{:?}",
        d.cur_batch
    );
    sim.run_to_idle(40);
    assert_eq!(kinds(&sim, UpgradeReqType::CommitUpgrade)["n00"], OutcomeKind::Failed);
}

#[test]
fn abort_mid_commit_aborts_in_flight_and_pending_nodes_and_resets_on_request() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02", "n11", "n12"]);
    let mut req = commit("c1", &["n01", "n02", "n11", "n12"]);
    req.limit = 1;
    assert!(sim.submit(req).success);
    assert!(sim.submit(commit("c2", &["n01"])).success);
    sim.step();
    let in_flight: Vec<String> = sim.engine.in_flight_nodes().iter().map(|s| s.to_string()).collect();
    assert_eq!(in_flight.len(), 1);
    let reply = sim.operator(Message::UpgradeAbortReq(UpgradeAbortReq {
        abort_all: true,
        req_ids: vec![],
        reset_status: true,
        operator: Operator { who: "bob".into(), reason: Some("storm coming".into()) },
    }));
    assert!(matches!(&reply, Message::Ack(a) if a.success), "{reply:?}");
    assert_eq!(sim.engine.current_request_id(), None);
    assert_eq!(sim.engine.queue_len(), 0);
    let c1: Vec<_> = sim.engine.state_dump().outcomes.into_iter().filter(|o| o.request_id == "c1").collect();
    assert_eq!(c1.len(), 4);
    assert!(c1
        .iter()
        .all(|o| o.outcome == OutcomeKind::Aborted && o.reason.contains("aborted by bob: storm coming")));
    let resets = sim
        .all_actions
        .iter()
        .filter(|a| matches!(a, Action::SendToNode { req, .. } if req.ur_type == UpgradeReqType::ResetStatus))
        .count();
    assert_eq!(resets, 4);
    assert!(sim.engine.finished_requests().any(|f| f.request_id == "c2" && !f.success));
}

#[test]
fn intake_refuses_with_clear_reasons() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    let refuse = |sim: &mut Sim, r: UpgradeGroupReq, want: &str| {
        let a = sim.submit(r);
        assert!(!a.success && a.message.contains(want), "{a:?} should say {want:?}");
    };
    refuse(&mut sim, prepare("x", &["n00", "ghost"]), "invalid node: ghost");
    refuse(&mut sim, prepare("x", &[]), "nodes field is empty");
    let mut r = prepare("x", &["n00"]);
    r.timeout_s = 0;
    refuse(&mut sim, r, "invalid timeout: 0");
    let mut r = prepare("x", &["n00"]);
    r.ur_req.image_name = Some("nope".into());
    refuse(&mut sim, r, "unknown image \"nope\"");
    let mut r = prepare("x", &["n00"]);
    r.ur_req.image_name = None;
    refuse(&mut sim, r, "needs image_name");
    let mut r = prepare("x", &["n00"]);
    r.version = Some("meshlift-9".into());
    refuse(&mut sim, r, "does not match image");
    let mut r = full_upgrade("x");
    r.exclude_nodes = vec!["ghost".into()];
    refuse(&mut sim, r, "invalid node: ghost");
    assert!(sim.submit(prepare("x", &["n00"])).success);
    refuse(&mut sim, prepare("x", &["n01"]), "already used");
    // The journal holds every command with who and why, refusals included.
    sim.run_to_idle(30);
}

#[test]
fn readiness_filters_give_every_node_an_outcome_with_a_reason() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    sim.node("n01").version = NEW.into(); // already at version
    sim.node("n02").board = "OTHER_BOARD".into(); // board mismatch
    sim.report_all();
    let mut req = full_upgrade("f1");
    req.exclude_nodes = vec!["n12".into()];
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(200);
    let prep = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(prep["n01"].0, OutcomeKind::AlreadyAtVersion);
    assert_eq!(prep["n02"].0, OutcomeKind::SkippedNotReady);
    assert!(prep["n02"].1.contains("OTHER_BOARD"), "{}", prep["n02"].1);
    assert_eq!(prep["n12"].0, OutcomeKind::Excluded);
    let com = kinds(&sim, UpgradeReqType::CommitUpgrade);
    assert_eq!(com.len(), 3, "only prepared nodes go on to commit: {com:?}");
    assert!(com.values().all(|k| *k == OutcomeKind::Succeeded));
    // A commit of nodes that are not FLASHED: skipped_not_ready with the status in the reason.
    let mut c = commit("c2", &["n02"]);
    c.skip_failure = true;
    assert!(sim.submit(c).success);
    sim.run_to_idle(20);
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    assert_eq!(out["n02"].0, OutcomeKind::SkippedNotReady);
    assert!(out["n02"].1.contains("not FLASHED"), "{}", out["n02"].1);
}

#[test]
fn dry_run_is_readiness_aware_and_matches_execution() {
    let mut sim = Sim::new(grid(3, 3, &[]));
    let all: Vec<String> = sim.topology.nodes.iter().map(|n| n.name.clone()).collect();
    let all_ref: Vec<&str> = all.iter().map(String::as_str).collect();
    flash(&mut sim, &all_ref[..8]); // n22 not flashed
    let plan = match sim.operator(Message::UpgradeCommitPlanReq(UpgradeCommitPlanReq {
        limit: 0,
        exclude_nodes: vec![],
        ap_policy: ApPolicy::Group,
        max_pops_per_batch: 1,
        strategy: PlanStrategy::Terragraph,
        version: Some(NEW.into()),
        revert: false,
    })) {
        Message::UpgradeCommitPlan(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(plan.filtered.len(), 1);
    assert_eq!(plan.filtered[0].node, "n22");
    assert!(plan.filtered[0].reason.contains("not FLASHED"));
    let planned: usize = plan.commit_batches.iter().map(Vec::len).sum();
    assert_eq!(planned, 8);
    let mut req = commit("c1", &all_ref);
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(200);
    assert_eq!(sim.commit_waves, plan.commit_batches, "execution follows the dry run on an unchanged mesh");
}

#[test]
fn fewest_batches_reaches_the_planner_in_the_dry_run_and_in_execution() {
    let mut sim = Sim::new(grid(3, 3, &[]));
    let names: Vec<String> =
        sim.topology.nodes.iter().filter(|n| !n.pop_node).map(|n| n.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    flash(&mut sim, &refs);
    let mut plan = |strategy| {
        let req = UpgradeCommitPlanReq {
            limit: 3,
            exclude_nodes: vec![],
            ap_policy: ApPolicy::Group,
            max_pops_per_batch: 1,
            strategy,
            version: Some(NEW.into()),
            revert: false,
        };
        match sim.operator(Message::UpgradeCommitPlanReq(req)) {
            Message::UpgradeCommitPlan(p) => p,
            other => panic!("{other:?}"),
        }
    };
    let terragraph = plan(PlanStrategy::Terragraph);
    let fewest = plan(PlanStrategy::FewestBatches);
    let planned: usize = fewest.commit_batches.iter().map(Vec::len).sum();
    assert_eq!(planned, names.len());
    assert!(fewest.commit_batches.len() <= terragraph.commit_batches.len());
    let mut req = commit("c1", &refs);
    req.limit = 3;
    req.strategy = PlanStrategy::FewestBatches;
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(200);
    assert_eq!(sim.commit_waves, fewest.commit_batches, "execution follows the fewest-batches dry run");
}

#[test]
fn reset_status_is_immediate_and_node_status_dump_shows_reports() {
    let mut sim = Sim::new(grid(1, 3, &[]));
    let mut r =
        UpgradeGroupReq::new(UpgradeGroupType::Nodes, UpgradeReq::new(UpgradeReqType::ResetStatus, "r1"), 0);
    r.nodes = vec!["n01".into()];
    let a = sim.submit(r);
    assert!(a.success, "{a:?}");
    assert_eq!(sim.fleet["n01"].received.len(), 1);
    assert_eq!(sim.engine.current_request_id(), None);
    let st = match sim.operator(Message::NodeStatusReq(NodeStatusReq {})) {
        Message::NodeStatusDump(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(st.nodes.len(), 3);
    assert!(st.nodes.iter().all(|n| n.online && n.version.as_deref() == Some(OLD)));
    assert!(st.nodes.iter().find(|n| n.name == "n00").unwrap().is_pop);
}

#[test]
fn unknown_mac_is_refused() {
    let mut sim = Sim::new(grid(1, 2, &[]));
    let mut r = StatusReport {
        mac: "ff:ff:ff:ff:ff:ff".into(),
        boot_id: "x".into(),
        timestamp: 0,
        version: OLD.into(),
        hardware_board_id: BOARD.into(),
        upgrade_status: UpgradeStatus::default(),
        slots: sim.fleet["n00"].slots.clone(),
        links: vec![],
        bgp_peers_up: None,
        last_fallback: None,
        seq: 1,
        startup_config: None,
    };
    let now = sim.now;
    let e = sim.engine.handle_status_report(r.clone(), now).unwrap_err();
    assert!(e.to_string().contains("unknown MAC ff:ff:ff:ff:ff:ff"));
    r.mac = sim.fleet["n00"].mac.to_uppercase();
    assert!(sim.engine.handle_status_report(r, now).is_ok());
}

/// A report that still describes the failed attempt, arriving after the retry was sent (the node
/// sent it before it read the retry), must not count as the retry failing too.
#[test]
fn a_stale_failure_report_does_not_burn_the_retry() {
    use meshlift_controller::engine::verdict::{prepare, Verdict};
    use meshlift_protocol::{Sha256Digest, UpgradeStatus, UpgradeStatusType};
    let status = UpgradeStatus {
        us_type: UpgradeStatusType::DownloadFailed,
        upgrade_req_id: "r1".into(),
        reason: "minion restarted during the download".into(),
        attempt: 1,
        ..Default::default()
    };
    let seen = engine_support::seen_with_status(status.clone(), 5);
    let sha = Some(Sha256Digest([1; 32]));
    assert!(
        matches!(prepare("r1", sha, Some(&seen), 4, 2), Verdict::Pending(_)),
        "attempt 2 is not judged by attempt 1's report"
    );
    assert!(
        matches!(prepare("r1", sha, Some(&seen), 4, 1), Verdict::Failure { .. }),
        "attempt 1's own failure counts"
    );
}

/// Each node of a PREPARE batch learns its place in the batch, so the swarm can give every node a
/// distinct slice to fetch from the controller's seeder.
#[test]
fn prepare_batches_number_their_nodes_for_the_swarm() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    let names = ["n00", "n01", "n10", "n11"];
    assert!(sim.submit(prepare("p1", &names)).success);
    sim.run_to_idle(60);
    let mut places: Vec<(u32, u32)> = names
        .iter()
        .map(|n| {
            let r = sim.fleet[*n]
                .received
                .iter()
                .find(|r| r.ur_type == UpgradeReqType::PrepareUpgrade)
                .expect("a PREPARE");
            (r.swarm_index, r.swarm_size)
        })
        .collect();
    places.sort();
    assert_eq!(places, vec![(0, 4), (1, 4), (2, 4), (3, 4)]);
}

/// After a COMMIT batch closes, the next one is planned only once every online node has reported
/// since (a neighbour's older report may still say the rebooted node's links are down), and a
/// node silent since the close holds the next batch until it reports or goes offline.
#[test]
fn the_next_commit_batch_waits_for_a_fresh_report_from_every_online_node() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02"]);
    let mut req = commit("c1", &["n01", "n02"]);
    req.limit = 1;
    assert!(sim.submit(req).success);
    sim.run_until(100, |s| !s.engine.outcomes().is_empty());
    assert_eq!(sim.commit_waves.len(), 1, "no second batch in the step the first one closed");
    // n12 (not in the request) stops reporting: online, but silent since the close.
    sim.node("n12").killed = true;
    let closed_at = sim.now;
    sim.run_until(100, |s| s.commit_waves.len() == 2);
    assert!(
        sim.now >= closed_at + meshlift_controller::engine::EngineConfig::default().node_alive_timeout_ms,
        "second batch at +{} ms, before the settle bound (node_alive_timeout) for the silent n12",
        sim.now - closed_at
    );
    sim.run_to_idle(100);
    assert!(sim.last_finished().success, "{:?}", sim.last_finished());
}

#[test]
fn a_node_is_awaited_only_while_in_flight_in_the_current_request() {
    // The shell delivers an UPGRADE_REQ kept from a failed send only while this holds.
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n01", "n02", "n11", "n12"]);
    let mut req = commit("c1", &["n01", "n02", "n11", "n12"]);
    req.limit = 1;
    assert!(sim.submit(req).success);
    sim.step();
    let in_flight: Vec<String> = sim.engine.in_flight_nodes().iter().map(|s| s.to_string()).collect();
    assert_eq!(in_flight.len(), 1);
    let node = in_flight[0].as_str();
    let waiting = ["n01", "n02", "n11", "n12"].into_iter().find(|n| *n != node).expect("four nodes");
    assert!(sim.engine.awaits(node, "c1"));
    assert!(!sim.engine.awaits(node, "c2"), "another request's order is stale");
    assert!(!sim.engine.awaits(waiting, "c1"), "{waiting} is not dispatched yet");
    let reply = sim.operator(Message::UpgradeAbortReq(UpgradeAbortReq {
        abort_all: true,
        req_ids: vec![],
        reset_status: false,
        operator: Operator { who: "bob".into(), reason: None },
    }));
    assert!(matches!(&reply, Message::Ack(a) if a.success), "{reply:?}");
    assert!(!sim.engine.awaits(node, "c1"), "an aborted request awaits no one");
}

#[test]
fn a_nodes_refusal_fails_its_attempt_at_once_and_a_stale_one_is_ignored() {
    let mut sim = Sim::new(grid(2, 2, &[]));
    let mut req = prepare("p-refused", &["n01", "n11"]);
    req.retry_limit = 0;
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    assert!(sim.engine.awaits("n01", "p-refused"), "the PREPARE went out");
    // A refusal naming another request, or a node not awaited, changes nothing.
    assert!(!sim.engine.handle_node_refusal("n01", "some-older-request", "busy", sim.now));
    assert!(!sim.engine.handle_node_refusal("n00", "p-refused", "busy", sim.now));
    assert!(sim.engine.handle_node_refusal("n01", "p-refused", "a download is running", sim.now));
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n01"].0, OutcomeKind::Failed);
    assert!(out["n01"].1.contains("the node refused: a download is running"), "{:?}", out["n01"]);
    // The same refusal again is stale now: the node is no longer awaited.
    assert!(!sim.engine.handle_node_refusal("n01", "p-refused", "a download is running", sim.now));
    sim.run_to_idle(60);
    assert_eq!(sim.outcomes(UpgradeReqType::PrepareUpgrade)["n11"].0, OutcomeKind::Succeeded);
}

#[test]
fn a_refused_request_with_a_huge_reason_leaves_a_bounded_journal_line() {
    use meshlift_controller::store::Store;
    let mut sim = Sim::with_store(grid(2, 2, &[]), Some(Store::open_in_memory().unwrap()));
    let mut req = prepare("p-huge", &["no-such-node"]);
    req.operator = Operator { who: "w".repeat(100_000), reason: Some("é".repeat(500_000)) };
    assert!(!sim.submit(req).success, "an unknown node is refused");
    let journal = sim.store().unwrap().journal(0, 1000).unwrap();
    let line = journal.iter().find(|e| e.message.contains("refused")).expect("the refusal is journaled");
    let op = line.operator.as_ref().unwrap();
    let size = line.message.len() + op.who.len() + op.reason.as_ref().map_or(0, |r| r.len());
    assert!(size < 4 * 1024, "journal line of {size} bytes");
    assert!(op.reason.as_ref().unwrap().contains("bytes cut"), "the cut is marked");
}

#[test]
fn the_dry_run_gives_the_cost_of_both_strategies() {
    let mut sim = Sim::new(grid(4, 5, &[]));
    let req = UpgradeCommitPlanReq { max_pops_per_batch: 100, ..UpgradeCommitPlanReq::default() };
    let Message::UpgradeCommitPlan(plan) = sim.operator(Message::UpgradeCommitPlanReq(req)) else {
        panic!("a commit plan")
    };
    let strategies: Vec<PlanStrategy> = plan.costs.iter().map(|c| c.strategy).collect();
    assert_eq!(strategies, vec![PlanStrategy::Terragraph, PlanStrategy::FewestBatches]);
    let (tg, fewest) = (&plan.costs[0], &plan.costs[1]);
    assert_eq!(
        tg.batches,
        plan.commit_batches.len() as u64,
        "the requested strategy's cost is the plan shown"
    );
    assert!(fewest.batches >= 1 && fewest.batches <= tg.batches, "{:?}", plan.costs);
    assert!(tg.largest_blast_radius >= 1 && tg.total_outages >= tg.batches);
}
