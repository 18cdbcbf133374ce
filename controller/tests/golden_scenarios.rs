//! The golden-image loop on the real engine and a fake fleet, with a fake clock: every wave the
//! loop starts goes through `Engine::handle_operator` as an operator's request would, and the
//! fake minions prepare, reboot, confirm or fall back as the engine tells them.

mod engine_support;

use std::collections::BTreeMap;

use engine_support::*;
use meshlift_controller::golden::{
    Canary, FleetView, GoldenAction, GoldenState, ImageFacts, NodeView, Reconciler, Settings, Window,
    LOOP_WHO,
};
use meshlift_protocol::*;

const V1: &str = "1.0.0";
const V2: &str = "2.0.0";
const ADMIN: &str = "alice@noc";

/// The engine sim plus the loop, driven the way the controller's shell drives them.
struct Golden {
    sim: Sim,
    rec: Reconciler,
    /// Every wave submitted: (label, nodes).
    waves: Vec<(String, Vec<String>)>,
    /// When each wave was submitted and finished.
    wave_times: Vec<(u64, Option<u64>)>,
    journal: Vec<(String, String)>,
    /// Waves told to stop after their in-flight batch.
    stopped: Vec<String>,
}

fn settings() -> Settings {
    Settings {
        enabled: true,
        check_interval_ms: 10_000,
        bake_ms: 30_000,
        canary: Canary::Safest(1),
        retry_limit: 0,
        batch_timeout_s: 120,
        ..Settings::default()
    }
}

fn image_v2() -> UpgradeImage {
    UpgradeImage { name: V2.into(), version: V2.into(), ..image() }
}

impl Golden {
    /// A 3×3 grid with two leaves (`l1` off `n11`, `l2` off `n22`), every node on 1.0.0, image
    /// 2.0.0 in the store and made the target of the board.
    fn new(settings: Settings) -> Golden {
        let topology = grid(3, 3, &[("l1", "n11"), ("l2", "n12")]);
        let mut sim = Sim::new(topology);
        for m in sim.fleet.values_mut() {
            set_version(m, V1);
        }
        sim.engine.add_image(image_v2(), Operator { who: "test".into(), reason: None }, sim.now);
        sim.report_all();
        let mut g = Golden {
            sim,
            rec: Reconciler::new(settings),
            waves: Vec::new(),
            wave_times: Vec::new(),
            journal: Vec::new(),
            stopped: Vec::new(),
        };
        g.command(GoldenCmd::SetTarget { board: Some(BOARD.into()), image: V2.into() }).expect("target set");
        g
    }

    fn command(&mut self, cmd: GoldenCmd) -> Result<String, String> {
        let op = Operator { who: ADMIN.into(), reason: Some("test".into()) };
        let images: Vec<UpgradeImage> = self.sim.engine.images().cloned().collect();
        let topo = self.sim.topology.clone();
        let r = self.rec.handle_command(
            cmd,
            &op,
            |name| {
                images.iter().find(|i| i.name == name).map(|i| ImageFacts {
                    name: i.name.clone(),
                    version: i.version.clone(),
                    boards: i.hardware_board_ids.clone(),
                })
            },
            |n| topo.node(n).is_some(),
            self.sim.now,
        );
        match r {
            Ok((msg, actions)) => {
                self.apply(actions);
                Ok(msg)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn apply(&mut self, actions: Vec<GoldenAction>) {
        for a in actions {
            match a {
                GoldenAction::Submit { wave, request, .. } => {
                    let id = request.ur_req.upgrade_req_id.clone();
                    assert_eq!(request.operator.who, LOOP_WHO);
                    assert_eq!(request.ur_req.ur_type, UpgradeReqType::FullUpgrade);
                    assert_eq!(request.ug_type, UpgradeGroupType::Nodes);
                    assert!(!request.ur_req.allow_downgrade);
                    self.waves.push((wave, request.nodes.clone()));
                    self.wave_times.push((self.sim.now, None));
                    match self.sim.operator(Message::UpgradeGroupReq(*request)) {
                        Message::Ack(a) if a.success => {}
                        other => {
                            let why = format!("{other:?}");
                            let more = self.rec.handle_submit_refused(&id, &why, self.sim.now);
                            self.apply(more);
                        }
                    }
                }
                GoldenAction::StopAfterBatch { request_id, reason } => {
                    let op = Operator { who: LOOP_WHO.into(), reason: Some(reason.clone()) };
                    assert!(self.sim.engine.stop_after_batch(&request_id, &op, &reason, self.sim.now));
                    self.sim.deliver();
                    self.stopped.push(request_id);
                }
                GoldenAction::Journal { operator, message } => self.journal.push((operator.who, message)),
            }
        }
    }

    /// What the shell does on its timer and after every input.
    fn tick(&mut self) {
        let now = self.sim.now;
        let finished: Vec<String> = self
            .rec
            .state()
            .in_flight
            .keys()
            .filter(|id| self.sim.engine.finished_requests().any(|f| &f.request_id == *id))
            .cloned()
            .collect();
        for id in finished {
            let outcomes = self.sim.engine.finished_outcomes(&id).unwrap_or(&[]).to_vec();
            let a = self.rec.handle_request_finished(&id, &outcomes, now);
            if let Some(i) =
                self.rec.state().rollouts.values().flat_map(|r| &r.waves).position(|w| w.request_id == id)
            {
                let _ = i;
            }
            if let Some(t) = self.wave_times.iter_mut().rev().find(|t| t.1.is_none()) {
                t.1 = Some(now);
            }
            self.apply(a);
        }
        let fleet = self.sim.engine.golden_fleet(now);
        let idle = self.sim.engine.is_idle();
        let a = self.rec.handle_tick(&fleet, idle, now);
        self.apply(a);
    }

    fn step(&mut self) {
        self.sim.step();
        self.tick();
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
    }

    fn run_until(&mut self, max: usize, what: &str, mut f: impl FnMut(&Golden) -> bool) {
        for _ in 0..max {
            if f(self) {
                return;
            }
            self.step();
        }
        panic!("{what}: not reached after {max} steps; waves {:?}; journal {:#?}", self.waves, self.journal);
    }

    fn versions(&self) -> BTreeMap<String, String> {
        self.sim.fleet.values().map(|m| (m.name.clone(), active_version(m))).collect()
    }

    fn on(&self, version: &str) -> Vec<String> {
        self.versions().into_iter().filter(|(_, v)| v == version).map(|(n, _)| n).collect()
    }

    /// Nodes that were ever sent an UPGRADE_REQ.
    fn touched(&self) -> Vec<String> {
        self.sim.fleet.values().filter(|m| !m.received.is_empty()).map(|m| m.name.clone()).collect()
    }

    fn converged(&self) -> bool {
        self.on(V2).len() == self.sim.fleet.len() && self.rec.state().in_flight.is_empty()
    }

    fn restart_loop(&mut self) {
        let text = serde_json::to_string(self.rec.state()).expect("state serialises");
        let state: GoldenState = serde_json::from_str(&text).expect("state deserialises");
        self.rec = Reconciler::from_state(state);
    }
}

fn set_version(m: &mut FakeMinion, v: &str) {
    m.version = v.into();
    m.slots.active = SlotId::A;
    m.slots.booted = SlotId::A;
    m.slots.a = SlotReport { slot: SlotId::A, version: Some(v.into()), sha256: None, confirmed: true };
    m.slots.b = SlotReport { slot: SlotId::B, version: None, sha256: None, confirmed: false };
}

fn active_version(m: &FakeMinion) -> String {
    m.slots.slot(m.slots.active).version.clone().unwrap_or_default()
}

#[test]
fn canary_bake_then_widening_waves_converge_the_board_with_no_operator_request() {
    let mut g = Golden::new(settings());
    g.run_until(2000, "converged", Golden::converged);
    let labels: Vec<&str> = g.waves.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["canary", "wave 1 (10 %)", "wave 2 (50 %)", "wave 3 (100 %)"], "{:?}", g.waves);
    let sizes: Vec<usize> = g.waves.iter().map(|(_, n)| n.len()).collect();
    // 11 nodes: canary 1; 10 % → 2 at target (1 more); 50 % → 6 (4 more); the rest (5).
    assert_eq!(sizes, [1, 1, 4, 5], "{:?}", g.waves);
    // The canary is a node whose reboot cuts nobody off, that no AP cuts off, and not a POP.
    let canary = &g.waves[0].1[0];
    assert!(!["n00", "n22", "n11", "n12", "l1", "l2"].contains(&canary.as_str()), "canary {canary}");
    // An AP and the leaf it cuts off are always in the same wave (rebooted together by the
    // planner), so neither leaf is ever cut off while it runs.
    for (ap, leaf) in [("n11", "l1"), ("n12", "l2")] {
        let wave_of = |n: &str| g.waves.iter().position(|(_, w)| w.iter().any(|x| x == n));
        assert_eq!(wave_of(ap), wave_of(leaf), "{:?}", g.waves);
    }
    // The first widening wave waited for the bake time after the canary finished.
    let canary_done = g.wave_times[0].1.expect("canary finished");
    assert!(g.wave_times[1].0 >= canary_done + 30_000, "{:?}", g.wave_times);
    // Every request came from the loop; nobody was cut off by a reboot of someone else.
    assert!(g.sim.engine.finished_requests().all(|f| f.request_id.starts_with("golden-")));
    assert!(g.sim.isolation_events.is_empty(), "{:?}", g.sim.isolation_events);
    // Converged: the loop starts nothing more.
    g.run(40);
    assert_eq!(g.waves.len(), 4);
}

#[test]
fn a_closed_window_starts_nothing_until_it_opens() {
    // T0 is Tuesday 2023-11-14 22:13:20 UTC; the window opens at 23:00 UTC.
    let mut s = settings();
    s.window = Some("any 23:00-23:30 UTC".parse::<Window>().unwrap());
    let mut g = Golden::new(s);
    let opens = 1_700_002_800_000; // 23:00:00 UTC
    while g.sim.now + STEP_MS < opens {
        g.step();
    }
    assert!(g.waves.is_empty(), "a closed window started {:?}", g.waves);
    assert!(g.touched().is_empty());
    g.run(5);
    assert_eq!(g.waves.len(), 1, "the window opened: the canary starts");
    assert_eq!(g.waves[0].0, "canary");
}

#[test]
fn a_bad_image_is_quarantined_after_k_fallbacks_and_nobody_beyond_the_canaries_is_touched() {
    let mut g = Golden::new(settings());
    for m in g.sim.fleet.values_mut() {
        m.on_commit = OnCommit::FallBack("post-boot check failed: radio firmware crashed".into());
    }
    g.run_until(2000, "quarantined", |g| g.rec.state().quarantined.contains_key(V2));
    let labels: Vec<&str> = g.waves.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["canary", "canary (try 2)"]);
    let canaries: Vec<String> = g.waves.iter().flat_map(|(_, n)| n.clone()).collect();
    assert_eq!(g.touched(), {
        let mut c = canaries.clone();
        c.sort();
        c
    });
    assert_eq!(g.on(V1).len(), g.sim.fleet.len(), "every node still runs 1.0.0");
    // Both canaries are blacklisted for 2.0.0 with the failure as the reason.
    for c in &canaries {
        let e = g.rec.state().blacklist.iter().find(|e| &e.node == c).expect("blacklisted");
        assert_eq!(e.version, V2);
        assert!(e.reason.contains("fell_back"), "{}", e.reason);
        assert_eq!(e.who, LOOP_WHO);
    }
    assert!(g.journal.iter().any(|(who, m)| who == LOOP_WHO && m.contains("quarantined 2.0.0")));
    // The loop has stopped for the board.
    g.run(100);
    assert_eq!(g.waves.len(), 2);
    assert!(g.command(GoldenCmd::SetTarget { board: Some(BOARD.into()), image: V2.into() }).is_err());
    // An admin lifts the quarantine (after fixing the nodes): the loop goes on, never with the
    // blacklisted canaries.
    for m in g.sim.fleet.values_mut() {
        m.on_commit = OnCommit::Confirm;
    }
    g.command(GoldenCmd::Unquarantine { version: V2.into() }).expect("unquarantine");
    g.run_until(200, "a new canary", |g| g.waves.len() == 3);
    assert!(g.waves[2].1.iter().all(|n| !canaries.contains(n)));
}

#[test]
fn a_blacklisted_node_is_left_alone_until_its_entry_expires() {
    let mut g = Golden::new(settings());
    let expires = g.sim.now + 20 * 60_000;
    g.command(GoldenCmd::BlacklistAdd { node: "n01".into(), version: V2.into(), expires_at: Some(expires) })
        .expect("blacklist");
    g.run_until(2000, "all but n01", |g| {
        g.on(V2).len() == g.sim.fleet.len() - 1 && g.rec.state().in_flight.is_empty()
    });
    assert!(g.sim.now < expires);
    g.run(20);
    assert_eq!(g.on(V1), ["n01"]);
    assert!(g.sim.fleet["n01"].received.is_empty());
    g.run_until(2000, "converged", Golden::converged);
    assert!(g.sim.now >= expires);
    assert!(g.journal.iter().any(|(_, m)| m.contains("blacklist entry expired: n01")));
    assert_eq!(g.waves.last().unwrap().1, ["n01"]);
}

#[test]
fn a_node_that_comes_online_mid_wave_is_taken_by_a_later_wave() {
    let mut g = Golden::new(settings());
    g.sim.node("l2").killed = true;
    // Long enough for the engine to see l2 offline.
    g.run_until(2000, "wave 2 running", |g| g.waves.len() == 3);
    assert!(g.waves.iter().all(|(_, n)| !n.contains(&"l2".to_string())));
    g.sim.node("l2").killed = false;
    g.run_until(2000, "converged", Golden::converged);
    let (label, _) = g.waves.iter().find(|(_, n)| n.contains(&"l2".to_string())).expect("l2 in a wave");
    assert_ne!(label, "canary");
}

#[test]
fn a_node_reset_to_the_old_version_later_is_upgraded_again() {
    let mut g = Golden::new(settings());
    g.run_until(2000, "converged", Golden::converged);
    let waves = g.waves.len();
    set_version(g.sim.node("n20"), V1);
    g.run_until(400, "converged again", Golden::converged);
    assert_eq!(g.waves.len(), waves + 1);
    assert_eq!(g.waves.last().unwrap(), &("catch-up".to_string(), vec!["n20".to_string()]));
}

#[test]
fn pause_stops_new_waves_and_resume_continues_where_it_stood() {
    let mut g = Golden::new(settings());
    g.run_until(2000, "canary done", |g| g.wave_times.first().is_some_and(|t| t.1.is_some()));
    g.command(GoldenCmd::Pause).unwrap();
    g.run(200);
    assert_eq!(g.waves.len(), 1, "paused: no new wave");
    g.command(GoldenCmd::Resume).unwrap();
    g.run_until(2000, "converged", Golden::converged);
    assert_eq!(g.waves[1].0, "wave 1 (10 %)", "resumed after the canary, not from the start");
    assert!(g.journal.iter().any(|(who, m)| who == ADMIN && m.contains("paused")));
}

#[test]
fn a_restarted_loop_resumes_the_wave_in_flight_and_never_restarts_it() {
    let mut g = Golden::new(settings());
    g.run_until(2000, "wave 2 in flight", |g| g.waves.len() == 3);
    let in_flight = g.rec.state().in_flight.clone();
    assert_eq!(in_flight.len(), 1);
    g.restart_loop();
    assert_eq!(g.rec.state().in_flight, in_flight);
    g.run_until(2000, "converged", Golden::converged);
    let labels: Vec<&str> = g.waves.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["canary", "wave 1 (10 %)", "wave 2 (50 %)", "wave 3 (100 %)"]);
    // Restart again while baking: the bake goes on, no canary again.
    let mut g = Golden::new(settings());
    g.run_until(2000, "baking", |g| g.wave_times.first().is_some_and(|t| t.1.is_some()));
    g.restart_loop();
    g.run_until(2000, "converged", Golden::converged);
    assert_eq!(g.waves.iter().filter(|(l, _)| l.starts_with("canary")).count(), 1);
}

#[test]
fn never_a_downgrade_and_unknown_versions_are_left_alone() {
    let mut g = Golden::new(settings());
    set_version(g.sim.node("n02"), "3.1.0");
    set_version(g.sim.node("n10"), "weird-build");
    g.sim.report_all();
    g.run_until(2000, "the rest converged", |g| {
        g.on(V2).len() == g.sim.fleet.len() - 2 && g.rec.state().in_flight.is_empty()
    });
    g.run(40);
    assert!(g.sim.fleet["n02"].received.is_empty());
    assert!(g.sim.fleet["n10"].received.is_empty());
    assert_eq!(active_version(&g.sim.fleet["n02"]), "3.1.0");
    // A target nobody can order is refused.
    let bad = UpgradeImage { name: "nightly".into(), version: "nightly".into(), ..image() };
    g.sim.engine.add_image(bad, Operator::default(), g.sim.now);
    let e =
        g.command(GoldenCmd::SetTarget { board: Some(BOARD.into()), image: "nightly".into() }).unwrap_err();
    assert!(e.contains("neither a meshlift version"), "{e}");
}

#[test]
fn the_global_cap_bounds_every_wave() {
    let mut s = settings();
    s.wave_cap = 2;
    let mut g = Golden::new(s);
    g.run_until(4000, "converged", Golden::converged);
    assert!(g.waves.iter().all(|(_, n)| n.len() <= 2), "{:?}", g.waves);
}

#[test]
fn a_manual_upgrade_changes_neither_the_target_nor_the_loop() {
    let mut g = Golden::new(Settings { enabled: false, ..settings() });
    let before = g.rec.state().clone();
    let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, "manual-1");
    ur.image_name = Some(V2.into());
    let mut req = UpgradeGroupReq::new(UpgradeGroupType::Nodes, ur, 120);
    req.nodes = vec!["l1".into()];
    req.operator = Operator { who: ADMIN.into(), reason: None };
    assert!(matches!(g.sim.operator(Message::UpgradeGroupReq(req)), Message::Ack(a) if a.success));
    g.sim.run_to_idle(200);
    let outcomes = g.sim.engine.finished_outcomes("manual-1").unwrap().to_vec();
    assert!(g.rec.handle_request_finished("manual-1", &outcomes, g.sim.now).is_empty());
    assert_eq!(g.rec.state().targets, before.targets);
    assert!(g.waves.is_empty());
}

/// The view the loop is given: only confirmed active slots count as the running version.
#[test]
fn a_node_on_trial_has_no_version_the_loop_compares() {
    let mut g = Golden::new(settings());
    let m = g.sim.node("l1");
    m.slots.b = SlotReport { slot: SlotId::B, version: Some(V2.into()), sha256: None, confirmed: false };
    m.slots.booted = SlotId::B;
    g.sim.report_all();
    let view: FleetView = g.sim.engine.golden_fleet(g.sim.now);
    let l1: &NodeView = view.nodes.iter().find(|n| n.name == "l1").unwrap();
    assert_eq!(l1.version.as_deref(), Some(V1));
    assert_eq!(l1.board.as_deref(), Some(BOARD));
}

#[test]
fn a_window_closing_mid_wave_lets_the_batch_finish_and_starts_nothing_more() {
    let mut g = Golden::new(settings());
    g.run_until(2000, "wave 2 in prepare", |g| {
        g.waves.len() == 3
            && g.sim.engine.current_stage() == Some(meshlift_controller::engine::Stage::Prepare)
            && g.sim.engine.current_batch_index() > 0
    });
    let wave2 = g.waves[2].1.clone();
    // The window closes now (it opens at 03:00 UTC, hours away).
    g.command(GoldenCmd::SetWindow { window: Some("any 03:00-04:00 UTC".into()) }).unwrap();
    g.run_until(400, "the wave finished", |g| g.rec.state().in_flight.is_empty());
    assert_eq!(g.stopped.len(), 1, "told to stop once");
    // The in-flight PREPARE batch finished; its COMMIT never started: nobody rebooted, nobody
    // counts as upgraded or failed, nobody is blacklisted.
    let w = &g.rec.state().rollouts[BOARD].waves[2];
    assert!(w.upgraded.is_empty() && w.failed.is_empty(), "{w:?}");
    assert!(g.rec.state().blacklist.is_empty());
    for n in &wave2 {
        assert_eq!(active_version(&g.sim.fleet[n]), V1, "{n}");
        assert_eq!(g.sim.commits_sent(n), 0, "{n}");
    }
    g.run(100);
    assert_eq!(g.waves.len(), 3, "closed: nothing new");
    // The window opens again: the loop carries on and converges.
    g.command(GoldenCmd::SetWindow { window: None }).unwrap();
    g.run_until(2000, "converged", Golden::converged);
}
