//! Chaos with real processes: a full upgrade of a mesh while minions are SIGKILLed (power
//! cycles) and frozen (SIGSTOP/SIGCONT), links are cut and restored, and the controller is
//! SIGKILLed and started again on the same state — all drawn from one seed. Afterwards the
//! invariants are checked from the outside only (the controller's answers, the nodes' reports and
//! meshsim's isolation meter):
//! - the request finishes, and every node has exactly one PREPARE outcome and, if its PREPARE
//!   succeeded, exactly one COMMIT outcome;
//! - every node ends up running a confirmed slot, on v2 if its COMMIT succeeded and on v1 if not;
//! - 0 s collateral isolation of every node the chaos did not power-cycle or freeze itself (see
//!   [`ChaosReport::victim_isolation_s`] for why their own time is reported apart).
//!
//! The faults are chosen so that the chaos itself never cuts a running node off (that would be
//! the fault's doing, not the upgrade's): only nodes with a single link are power-cycled or frozen
//! (no path runs through them, so their late reboot after a thaw cuts nobody off), and
//! a cut link is one whose loss leaves every node a path, checked on meshsim's own model.
//!
//! A failing seed is printed with its plan; `CHAOS_SEED=<n> cargo run -p meshlift-tests --bin
//! chaos-bench -- --seeds 1` replays it (same faults at the same points of the upgrade; the
//! processes' own timing still varies).

use crate::{finish, lab_config, outcomes, start_with_v2};
use meshlift_meshsim::lab::{full_upgrade_request, BatchLog, V1, V2};
use meshlift_meshsim::model::{Change, MeshModel};
use meshlift_protocol::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// When a fault fires: a stage of the upgrade and a delay into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prepare,
    Commit,
}

/// One fault of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the node's process group; meshsim boots it again after the boot delay.
    PowerCycle { node: String },
    /// SIGSTOP the node for `for_ms`, then SIGCONT.
    Freeze { node: String, for_ms: u64 },
    /// Cut the link, restore it after `for_ms` (or never, with `None`).
    CutLink { link: String, for_ms: Option<u64> },
    /// SIGKILL the controller; start it again on the same state after `down_ms`.
    KillController { down_ms: u64 },
}

/// A fault at a point of the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub phase: Phase,
    pub after_ms: u64,
    pub fault: Fault,
}

/// Everything a seed decides, in firing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosPlan {
    pub seed: u64,
    pub faults: Vec<Scheduled>,
}

impl fmt::Display for ChaosPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos seed {} ({} faults):", self.seed, self.faults.len())?;
        for s in &self.faults {
            writeln!(f, "  {:?} +{} ms: {:?}", s.phase, s.after_ms, s.fault)?;
        }
        Ok(())
    }
}

/// Nodes that carry nobody's path: exactly one link in the topology.
fn single_link_nodes(t: &Topology) -> Vec<String> {
    t.nodes.iter().filter(|n| t.links_of(&n.name).count() == 1).map(|n| n.name.clone()).collect()
}

/// Radio links whose cut leaves every node of the mesh (all up) a path to a POP, per meshsim's
/// model. Wired links inside a site are never cut: the planner, like Terragraph's, treats a site
/// as one switch (a first run of seed 1 cut `maple.a–maple.b` and a POP's reboot then cut off the
/// half of the site behind it — outside the model, not a planner bug).
fn redundant_links(t: &Topology) -> Vec<String> {
    let now = Instant::now();
    t.links
        .iter()
        .filter(|l| l.is_alive && l.link_type == LinkType::Wireless)
        .filter(|l| {
            let (mut model, _) = MeshModel::new(t.clone(), now);
            for n in &t.nodes {
                let _ = model.handle(Change::NodeUp(n.name.clone()), now);
            }
            let before = model.isolated_nodes();
            let _ = model.handle(Change::CutLink(l.name.clone()), now);
            model.isolated_nodes() == before
        })
        .map(|l| l.name.clone())
        .collect()
}

/// The plan a seed gives for a topology: two to four power cycles of single-link nodes, one or
/// two freezes of single-link nodes, at most one cut of a redundant link (during PREPARE, so the commit plan is made
/// on the cut network, restored later or never), and one controller kill.
pub fn plan(seed: u64, t: &Topology) -> ChaosPlan {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let phase =
        |rng: &mut rand_chacha::ChaCha8Rng| if rng.gen_bool(0.5) { Phase::Prepare } else { Phase::Commit };
    let mut faults = Vec::new();
    let leaves = single_link_nodes(t);
    if !leaves.is_empty() {
        for _ in 0..rng.gen_range(2..=4) {
            let node = leaves[rng.gen_range(0..leaves.len())].clone();
            faults.push(Scheduled {
                phase: phase(&mut rng),
                after_ms: rng.gen_range(0..5_000),
                fault: Fault::PowerCycle { node },
            });
        }
    }
    for _ in 0..rng.gen_range(1..=2) {
        // Only a node that carries nobody's path is frozen: a frozen batch member reboots when
        // thawed, seconds after its batch mates came back, and cuts them off again (seeds 25, 26,
        // 43, 47 of the first chaos-bench run; bench/RESULTS.md), and a freeze begun in PREPARE
        // can last into COMMIT. That is the hang's doing, and meshsim cannot tell it from a bad
        // plan. The frozen node's own time cut off is reported apart, like a power-cycled one's.
        let phase = phase(&mut rng);
        let pool: Vec<String> =
            if leaves.is_empty() { t.nodes.iter().map(|n| n.name.clone()).collect() } else { leaves.clone() };
        let node = pool[rng.gen_range(0..pool.len())].clone();
        faults.push(Scheduled {
            phase,
            after_ms: rng.gen_range(0..5_000),
            fault: Fault::Freeze { node, for_ms: rng.gen_range(1_000..6_000) },
        });
    }
    let links = redundant_links(t);
    if !links.is_empty() && rng.gen_bool(0.7) {
        let link = links[rng.gen_range(0..links.len())].clone();
        let for_ms = rng.gen_bool(0.5).then(|| rng.gen_range(2_000..20_000));
        faults.push(Scheduled {
            phase: Phase::Prepare,
            after_ms: rng.gen_range(0..3_000),
            fault: Fault::CutLink { link, for_ms },
        });
    }
    faults.push(Scheduled {
        phase: phase(&mut rng),
        after_ms: rng.gen_range(0..4_000),
        fault: Fault::KillController { down_ms: rng.gen_range(500..3_000) },
    });
    faults.sort_by_key(|s| (s.phase == Phase::Commit, s.after_ms));
    ChaosPlan { seed, faults }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub seed: u64,
    pub succeeded: usize,
    pub failed: usize,
    pub collateral_isolation_s: f64,
    /// Seconds the power-cycled and frozen nodes themselves spent cut off: a node that comes back while the
    /// batch in flight reboots the node in front of it (planned while it was down, so not in
    /// that batch) waits out that reboot. The race is the fault's, not the plan's; it is
    /// reported, not counted as collateral.
    pub victim_isolation_s: f64,
    pub wall_s: f64,
    /// Faults of the plan that fired before the request finished (the rest came too late).
    pub fired: usize,
    /// Link cuts dropped because PREPARE was over when their time came.
    pub dropped: usize,
    pub planned: usize,
    /// Broken invariants; empty when the run passed.
    pub violations: Vec<String>,
}

/// Run one seed on `topology`: start a lab, run a full upgrade to v2 with the seed's faults,
/// check the invariants. Panics only if the lab cannot start at all.
pub async fn run(seed: u64, topology: Topology) -> ChaosReport {
    let started = Instant::now();
    let plan = plan(seed, &topology);
    eprintln!("{plan}");
    let (cfg, dir) = lab_config(topology);
    let (mut lab, image) = start_with_v2(cfg).await;
    let mut req = full_upgrade_request(&format!("chaos-{seed}"), &image, 60);
    req.retry_limit = 3;
    let id = lab.submit(req).await.expect("the request is accepted");
    let mut report = ChaosReport { seed, planned: plan.faults.len(), ..ChaosReport::default() };

    // Fire the faults at their points of the upgrade; restores are pending timers.
    let mut pending: Vec<(Instant, Fault)> = Vec::new();
    let mut stage_start: BTreeMap<&'static str, Instant> = BTreeMap::new();
    let mut queue = plan.faults.clone().into_iter().peekable();
    let mut log = BatchLog::default();
    let deadline = Instant::now() + Duration::from_secs(400);
    let mut controller_down_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > deadline {
            report.violations.push(format!("request {id} did not finish within 400 s"));
            break;
        }
        // Undo what is due (thaw, restore), restart a killed controller.
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = later;
        for (_, undo) in due {
            match undo {
                Fault::Freeze { node, .. } => {
                    let _ = lab.mesh.resume_node(&node);
                }
                Fault::CutLink { link, .. } => {
                    let _ = lab.mesh.restore_link(&link);
                }
                _ => {}
            }
        }
        if controller_down_until.is_some_and(|t| t <= now) {
            lab.start_controller().await.expect("the controller starts again on its state");
            controller_down_until = None;
        }
        if controller_down_until.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let Ok(dump) = lab.state().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        log.observe(&dump);
        if dump.finished_reqs.iter().any(|f| f.request_id == id) {
            break;
        }
        if let Some(stage) =
            dump.cur_req.as_ref().filter(|r| r.request.ur_req.upgrade_req_id == id).map(|r| r.stage)
        {
            let key = if stage == UpgradeReqType::CommitUpgrade { "commit" } else { "prepare" };
            stage_start.entry(key).or_insert(now);
        }
        while let Some(next) = queue.peek() {
            let key = if next.phase == Phase::Commit { "commit" } else { "prepare" };
            let Some(start) = stage_start.get(key) else { break };
            if now < *start + Duration::from_millis(next.after_ms) {
                break;
            }
            let s = queue.next().expect("peeked");
            // A cut is meant for PREPARE, so that the commit plan is made on the cut network. When
            // PREPARE ended before its time came, it is dropped: cutting a redundant link while a
            // COMMIT batch is down is a second fault no plan can foresee (chaos-bench seed 8: the
            // cut fired 0.3 s into commit batch 1 and cut off the nodes whose other path ran
            // through that batch).
            if matches!(s.fault, Fault::CutLink { .. }) && stage_start.contains_key("commit") {
                eprintln!(
                    "chaos {seed}: {:?} +{} ms: {:?} not fired: PREPARE was over",
                    s.phase, s.after_ms, s.fault
                );
                report.dropped += 1;
                continue;
            }
            report.fired += 1;
            eprintln!("chaos {seed}: {:?} +{} ms: {:?}", s.phase, s.after_ms, s.fault);
            match &s.fault {
                Fault::PowerCycle { node } => {
                    let _ = lab.mesh.kill_node(node);
                }
                Fault::Freeze { node, for_ms } => {
                    if lab.mesh.hang_node(node).is_ok() {
                        pending.push((now + Duration::from_millis(*for_ms), s.fault.clone()));
                    }
                }
                Fault::CutLink { link, for_ms } => {
                    if lab.mesh.cut_link(link).is_ok() {
                        if let Some(ms) = for_ms {
                            pending.push((now + Duration::from_millis(*ms), s.fault.clone()));
                        }
                    }
                }
                Fault::KillController { down_ms } => {
                    lab.kill_controller().await;
                    controller_down_until = Some(now + Duration::from_millis(*down_ms));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Undo whatever is still pending, then let every node settle and report.
    for (_, undo) in pending.drain(..) {
        match undo {
            Fault::Freeze { node, .. } => {
                let _ = lab.mesh.resume_node(&node);
            }
            Fault::CutLink { link, .. } => {
                let _ = lab.mesh.restore_link(&link);
            }
            _ => {}
        }
    }
    if controller_down_until.is_some() {
        lab.start_controller().await.expect("the controller starts again on its state");
    }
    if report.violations.is_empty() {
        let dump = finish(&lab, &id, &mut log).await;
        check(&lab, &dump, &id, &mut report).await;
    }
    let victims: std::collections::BTreeSet<&str> = plan
        .faults
        .iter()
        .filter_map(|s| match &s.fault {
            Fault::PowerCycle { node } | Fault::Freeze { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    let iso = lab.mesh.isolation();
    for (node, secs) in &iso.per_node {
        if victims.contains(node.as_str()) {
            report.victim_isolation_s += secs;
        } else {
            report.collateral_isolation_s += secs;
        }
    }
    if report.collateral_isolation_s > 0.0 {
        report
            .violations
            .push(format!("collateral isolation {:?} (power-cycled or frozen: {victims:?})", iso.per_node));
    }
    report.wall_s = started.elapsed().as_secs_f64();
    if !report.violations.is_empty() {
        eprintln!("chaos seed {seed} FAILED:\n{plan}violations: {:#?}", report.violations);
        // Keep the controller's and the nodes' logs for the post-mortem.
        eprintln!("logs kept in {}", dir.keep().display());
    }
    lab.stop().await;
    report
}

async fn check(
    lab: &meshlift_meshsim::lab::Lab,
    dump: &UpgradeStateDump,
    id: &str,
    report: &mut ChaosReport,
) {
    let nodes: Vec<String> = lab.cfg.topology.nodes.iter().map(|n| n.name.clone()).collect();
    let prepares = outcomes(dump, id, UpgradeReqType::PrepareUpgrade);
    let commits = outcomes(dump, id, UpgradeReqType::CommitUpgrade);
    let count = |stage: UpgradeReqType, node: &str| {
        dump.outcomes.iter().filter(|o| o.request_id == id && o.stage == stage && o.node == node).count()
    };
    for n in &nodes {
        if count(UpgradeReqType::PrepareUpgrade, n) != 1 {
            report
                .violations
                .push(format!("{n}: {} PREPARE outcomes", count(UpgradeReqType::PrepareUpgrade, n)));
        }
        let prepared = prepares.get(n).is_some_and(|o| o.outcome == OutcomeKind::Succeeded);
        let want_commit = usize::from(prepared);
        if count(UpgradeReqType::CommitUpgrade, n) != want_commit {
            report.violations.push(format!(
                "{n}: {} COMMIT outcomes, PREPARE {:?}",
                count(UpgradeReqType::CommitUpgrade, n),
                prepares.get(n).map(|o| o.outcome)
            ));
        }
    }
    // Every node back up, reporting, on a confirmed slot with the version its outcome says.
    let settle = Instant::now() + Duration::from_secs(90);
    loop {
        let status = lab.node_status().await.map(|s| s.nodes).unwrap_or_default();
        let mut problems = Vec::new();
        for n in &nodes {
            let Some(row) = status.iter().find(|r| &r.name == n) else {
                problems.push(format!("{n}: not in the node table"));
                continue;
            };
            let succeeded = commits.get(n).is_some_and(|o| o.outcome == OutcomeKind::Succeeded);
            let want = if succeeded { V2 } else { V1 };
            match &row.slots {
                _ if !row.online => problems.push(format!("{n}: offline")),
                None => problems.push(format!("{n}: no slots reported")),
                Some(s) if s.booted != s.active || !s.running().confirmed => problems
                    .push(format!("{n}: running slot {:?} not confirmed (active {:?})", s.booted, s.active)),
                Some(s) if s.running().version.as_deref() != Some(want) => problems.push(format!(
                    "{n}: runs {:?}, outcome says {want} ({:?})",
                    s.running().version,
                    commits.get(n).map(|o| (o.outcome, o.reason.clone()))
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            break;
        }
        if Instant::now() > settle {
            report.violations.extend(problems);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.succeeded = commits.values().filter(|o| o.outcome == OutcomeKind::Succeeded).count();
    report.failed = nodes.len() - report.succeeded;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_replay_and_spare_the_mesh() {
        let t = crate::sample_topology();
        assert_eq!(plan(7, &t), plan(7, &t), "a seed gives the same plan every time");
        assert_ne!(plan(7, &t), plan(8, &t));
        let leaves = single_link_nodes(&t);
        let links = redundant_links(&t);
        assert!(!leaves.is_empty() && !links.is_empty(), "the sample mesh has targets for every fault");
        for seed in 0..40 {
            let p = plan(seed, &t);
            assert!(p.faults.iter().any(|s| matches!(s.fault, Fault::KillController { .. })));
            for s in &p.faults {
                match &s.fault {
                    Fault::PowerCycle { node } => assert!(leaves.contains(node), "{node} carries paths"),
                    Fault::Freeze { node, .. } => assert!(leaves.contains(node), "{node} carries paths"),
                    Fault::CutLink { link, .. } => {
                        assert!(links.contains(link), "{link} is not redundant");
                        assert_eq!(s.phase, Phase::Prepare);
                    }
                    _ => {}
                }
            }
        }
        // A link whose loss isolates a site is never picked: every sample leaf's only link.
        for leaf in &leaves {
            let only = t.links_of(leaf).next().expect("one link");
            assert!(!links.contains(&only.name), "{} isolates {leaf}", only.name);
        }
    }
}
