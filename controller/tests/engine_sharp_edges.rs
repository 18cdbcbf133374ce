//! One test per sharp edge of Terragraph's controller (reference §2.12), showing what meshlift
//! does instead. §2.12.6 (golden-image blacklist) belongs to the golden-image loop, not the engine.

mod engine_support;

use engine_support::*;
use meshlift_controller::engine::Action;
use meshlift_protocol::*;

/// §2.12.1: retries exhausted with `skip_failure = false` in the same tick as the batch timeout.
/// Terragraph dereferences a cleared request; here the stop only forbids new batches and the
/// timeout still judges the in-flight batch.
#[test]
fn edge1_stop_and_timeout_in_the_same_tick() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    sim.node("n01").prepare_failures = 10;
    sim.node("n02").prepare_hangs = true;
    let mut req = prepare("p1", &["n01", "n02", "n11"]);
    req.retry_limit = 0;
    req.timeout_s = 5;
    req.limit = 2;
    assert!(sim.submit(req).success);
    sim.run_to_idle(20);
    let out = sim.outcomes(UpgradeReqType::PrepareUpgrade);
    assert_eq!(out["n01"].0, OutcomeKind::Failed);
    assert_eq!(out["n02"].0, OutcomeKind::Failed);
    assert!(out["n02"].1.contains("timed out"), "{}", out["n02"].1);
    assert_eq!(out["n11"].0, OutcomeKind::Aborted);
    assert!(!sim.last_finished().success);
}

/// §2.12.2: an offline node at batch formation with `skip_failure = false` must stop the request
/// even when it is the only pending node.
#[test]
fn edge2_offline_node_enforces_skip_failure_false() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n11"]);
    sim.node("n11").killed = true;
    for _ in 0..8 {
        sim.step();
    }
    assert!(sim.submit(commit("c1", &["n11"])).success);
    sim.run_to_idle(10);
    let f = sim.last_finished();
    assert!(!f.success);
    assert!(f.summary.contains("n11 failed") && f.summary.contains("skip_failure is false"), "{f:?}");
}

/// §2.12.3: a failing POP stops the current request: no later batch is dispatched.
#[test]
fn edge3_pop_failure_stops_the_current_request() {
    let mut sim = Sim::new(grid(1, 3, &[]));
    // n00 is the only POP: the planner must commit it, and it fails.
    flash(&mut sim, &["n00", "n01", "n02"]);
    sim.node("n00").on_commit = OnCommit::Fail("bootenv write failed".into());
    let mut req = commit("c1", &["n00", "n01", "n02"]);
    req.skip_failure = true;
    req.retry_limit = 3;
    req.limit = 1;
    assert!(sim.submit(req).success);
    sim.run_to_idle(100);
    let out = sim.outcomes(UpgradeReqType::CommitUpgrade);
    assert_eq!(out["n00"].0, OutcomeKind::Failed);
    assert_eq!(sim.commits_sent("n00"), 1, "a POP failure is not retried");
    let wave_of_pop = sim.commit_waves.iter().position(|w| w.contains(&"n00".to_string())).unwrap();
    let later: Vec<&String> = sim.commit_waves[wave_of_pop + 1..].iter().flatten().collect();
    assert!(later.is_empty(), "batches after the POP failure: {later:?}");
    for (n, (k, _)) in &out {
        if sim.commits_sent(n) == 0 {
            assert_eq!(*k, OutcomeKind::Aborted, "{n}");
        }
    }
    assert!(sim.last_finished().summary.contains("POP n00 failed"));
}

/// §2.12.4: the BGP baseline is per node and per dispatch; a non-POP in a later batch is never
/// judged against a POP's peer count from an earlier batch.
#[test]
fn edge4_bgp_baseline_belongs_to_its_node() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    flash(&mut sim, &["n00", "n01"]);
    assert!(sim.submit(commit("c1", &["n00"])).success);
    assert!(sim.submit(commit("c2", &["n01"])).success);
    sim.run_to_idle(100);
    assert_eq!(sim.commit_waves, vec![vec!["n00".to_string()], vec!["n01".to_string()]]);
    let d = sim.engine.state_dump();
    let got =
        |id: &str, n: &str| d.outcomes.iter().find(|o| o.request_id == id && o.node == n).map(|o| o.outcome);
    assert_eq!(got("c1", "n00"), Some(OutcomeKind::Succeeded));
    // n01 reports no BGP figure at all: judged without any POP baseline.
    assert_eq!(got("c2", "n01"), Some(OutcomeKind::Succeeded));
}

/// §2.12.5: every UpgradeReq is built from the request template alone; nothing leaks from one
/// node's request into another's.
#[test]
fn edge5_requests_are_built_per_node_from_the_template() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    let all = ["n01", "n02", "n10", "n11"];
    flash(&mut sim, &all);
    let mut req = commit("c1", &all);
    req.limit = -1;
    req.skip_links = vec!["link-n01-n02".into()];
    assert!(sim.submit(req).success);
    sim.run_to_idle(60);
    let sent: Vec<&UpgradeReq> = sim
        .all_actions
        .iter()
        .filter_map(|a| match a {
            Action::SendToNode { req, .. } if req.ur_type == UpgradeReqType::CommitUpgrade => Some(&**req),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 4);
    assert!(sent.windows(2).all(|w| w[0] == w[1]), "per-node COMMITs differ: {sent:#?}");
    assert_eq!(sent[0].skip_links, vec!["link-n01-n02".to_string()]);
    assert_eq!(sent[0].version.as_deref(), Some(NEW));
}

/// §2.12.7: nobody is dropped silently — every node of the request has exactly one outcome per
/// stage it entered.
#[test]
fn edge7_every_node_gets_an_outcome() {
    let mut sim = Sim::new(grid(3, 3, &[]));
    sim.node("n01").version = NEW.into();
    sim.node("n02").board = "OTHER".into();
    sim.node("n21").killed = true;
    for _ in 0..8 {
        sim.step();
    }
    let mut req = full_upgrade("f1");
    req.exclude_nodes = vec!["n22".into()];
    req.skip_failure = true;
    assert!(sim.submit(req).success);
    sim.run_to_idle(300);
    let d = sim.engine.state_dump();
    let prep: Vec<&NodeOutcome> =
        d.outcomes.iter().filter(|o| o.stage == UpgradeReqType::PrepareUpgrade).collect();
    assert_eq!(prep.len(), 9, "{prep:#?}");
    let names: std::collections::BTreeSet<&str> = prep.iter().map(|o| o.node.as_str()).collect();
    assert_eq!(names.len(), 9, "one outcome per node");
    assert!(prep.iter().all(|o| !o.reason.is_empty()));
    let commits: Vec<&NodeOutcome> =
        d.outcomes.iter().filter(|o| o.stage == UpgradeReqType::CommitUpgrade).collect();
    assert_eq!(commits.len(), 5, "the 5 prepared nodes: {commits:#?}");
}

/// §2.12.8: scheduled commits are watched to the end; the next batch waits for the previous one
/// to be confirmed instead of firing every batch at once.
#[test]
fn edge8_scheduled_commits_are_monitored() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    let all = ["n00", "n01", "n02", "n10", "n11", "n12"];
    flash(&mut sim, &all);
    let mut req = commit("c1", &all);
    req.ur_req.schedule_to_commit_s = 20;
    assert!(sim.submit(req).success);
    let mut waves_when_confirmed = Vec::new();
    for _ in 0..200 {
        if sim.engine.current_request_id().is_none() {
            break;
        }
        let before = sim.commit_waves.len();
        sim.step();
        if sim.commit_waves.len() > before && before > 0 {
            // A new wave: every node of the earlier waves is confirmed already.
            for n in sim.commit_waves[..before].iter().flatten() {
                waves_when_confirmed.push((n.clone(), sim.fleet[n].status.us_type));
            }
        }
    }
    assert!(sim.commit_waves.len() > 1);
    assert!(
        waves_when_confirmed.iter().all(|(_, s)| *s == UpgradeStatusType::Confirmed),
        "{waves_when_confirmed:?}"
    );
    assert!(sim.last_finished().success);
    assert!(sim.isolation_events.is_empty());
}

/// §2.12.9: PREPARE with `limit` takes retried nodes first, then names in order: predictable.
#[test]
fn edge9_prepare_limit_is_deterministic() {
    let mut sim = Sim::new(grid(2, 3, &[]));
    let mut req = prepare("p1", &["n12", "n02", "n11", "n01"]);
    req.limit = 2;
    assert!(sim.submit(req).success);
    let firsts: Vec<String> = sim
        .all_actions
        .iter()
        .filter_map(|a| match a {
            Action::SendToNode { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(firsts, vec!["n01", "n02"]);
    sim.run_to_idle(50);
    assert!(sim.last_finished().success);
}

/// §2.12.10: no hash-order dependence: the same mesh and script give the same batches.
#[test]
fn edge10_same_input_same_batches() {
    let run = || {
        let mut sim = Sim::new(grid(4, 4, &[("leaf", "n22")]));
        assert!(sim.submit(full_upgrade("f1")).success);
        sim.run_to_idle(400);
        assert!(sim.last_finished().success, "{:?}", sim.last_finished());
        sim.commit_waves
    };
    let a = run();
    assert!(a.len() > 1);
    assert_eq!(a, run());
}
