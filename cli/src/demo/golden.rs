//! `meshlift demo --golden`: nobody sends an upgrade request. The demo makes v2 the golden image
//! of the mesh's board and watches the controller's golden-image loop upgrade every node in waves
//! (canary, bake, 10 % → 50 % → rest). With `--bad-image`, v2 fails its post-boot check on the
//! canary nodes: they fall back, v2 is quarantined after K = 2 fallbacks, and every other node
//! stays on v1, untouched.

use meshlift_graph_planner::{plan_all, ApPolicy, PlanRequest, PlanStrategy};
use meshlift_meshsim::lab::{self, Lab, TransferTally};
use meshlift_protocol::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{say, NodeResult, Summary};

/// The `"golden"` object of the `--json` summary.
#[derive(Debug, Serialize)]
pub struct GoldenSummary {
    /// Nodes of each wave the loop started, in order.
    pub waves: Vec<Vec<String>>,
    /// Nodes the loop upgraded.
    pub upgraded: usize,
    /// Versions quarantined fleet-wide.
    pub quarantined: Vec<String>,
    #[serde(skip)]
    pub labels: Vec<String>,
    /// The demo's verdict (see [`run`]).
    #[serde(skip)]
    pub passed: bool,
    #[serde(skip)]
    pub verdict: String,
}

/// Canary count of the good run: the controller picks the safest nodes itself.
const CANARIES: usize = 2;

/// The `[golden]` section of the lab controller's config: short intervals for a demo.
pub fn config_toml(named_canaries: &[String]) -> String {
    let canary = if named_canaries.is_empty() {
        format!("canary_count = {CANARIES}")
    } else {
        let names: Vec<String> = named_canaries.iter().map(|n| format!("{n:?}")).collect();
        format!("canary_nodes = [{}]", names.join(", "))
    };
    format!(
        "[golden]\nenabled = true\ncheck_interval_s = 2\nbake_s = 5\n{canary}\nwaves_pct = [10, 50, 100]\n\
         quarantine_after = 2\nretry_limit = 0\nbatch_timeout_s = 90\nfailure_blacklist_s = 3600\n"
    )
}

/// The `n` safest nodes, as the controller's loop ranks them on a healthy mesh: not a POP, not
/// an articulation point and not behind one (their reboot cuts nobody off, now or later), by
/// name. `--bad-image` names them as the canaries and makes v2 fail there.
pub fn safest_nodes(t: &Topology, n: usize) -> Vec<String> {
    let pending: BTreeSet<String> = t.nodes.iter().map(|x| x.name.clone()).collect();
    let plan = plan_all(&PlanRequest {
        topology: t,
        pending: &pending,
        limit: 0,
        ap_policy: ApPolicy::Group,
        max_pops_per_batch: 1,
        strategy: PlanStrategy::Terragraph,
    });
    let grouped: BTreeSet<&str> = plan
        .ap_groups
        .iter()
        .flat_map(|(ap, cut)| std::iter::once(ap.as_str()).chain(cut.iter().map(String::as_str)))
        .collect();
    let mut sites = BTreeSet::new();
    let mut names: Vec<&Node> =
        t.nodes.iter().filter(|x| !x.pop_node && !grouped.contains(x.site_name.as_str())).collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    names.into_iter().filter(|x| sites.insert(x.site_name.clone())).take(n).map(|x| x.name.clone()).collect()
}

/// Set the target, watch the loop, and judge: the good run passes when every node runs v2 with
/// no fallback and no collateral isolation, and only the loop sent requests; the bad run when v2
/// is quarantined and every node outside the canary waves is still on v1 and was never sent
/// anything.
pub async fn run(lab: &Lab, json: bool, bad: bool) -> Result<Summary, String> {
    say(json, format!("adding image v2 ({}) to the controller...", lab.v2_path.display()));
    let ack = lab.add_image(&lab.v2_path).await.map_err(|e| e.to_string())?;
    if !ack.success {
        return Err(format!("image add refused: {}", ack.message));
    }
    let image = lab.stored_image(lab::V2).await.map_err(|e| e.to_string())?;
    let set = GoldenReq {
        cmd: GoldenCmd::SetTarget { board: Some(lab::SIM_BOARD.into()), image: image.name.clone() },
        operator: lab::lab_operator("demo: v2 is the golden image of the mesh"),
    };
    match lab.ask(Message::GoldenReq(set)).await.map_err(|e| e.to_string())? {
        Message::Ack(a) if a.success => say(json, format!("  {}", a.message)),
        other => return Err(format!("golden set refused: {other:?}")),
    }
    say(json, "no upgrade request is sent: the golden-image loop upgrades the mesh in waves by itself");

    let start = Instant::now();
    let deadline = start + Duration::from_secs(900);
    let (mut prepare_s, mut commit_s) = (0.0f64, 0.0f64);
    let mut last = Instant::now();
    let mut batches: BTreeMap<(u64, String, u32), BTreeSet<String>> = BTreeMap::new();
    let mut tally = TransferTally::default();
    let mut printed: BTreeMap<String, bool> = BTreeMap::new();
    let mut requests: BTreeSet<String> = BTreeSet::new();
    let show = loop {
        let show = match lab.ask(Message::GoldenShowReq(GoldenShowReq {})).await.map_err(|e| e.to_string())? {
            Message::GoldenShow(s) => s,
            other => return Err(format!("golden show: unexpected reply {other:?}")),
        };
        let dump = lab.state().await.map_err(|e| e.to_string())?;
        if let Ok(st) = lab.node_status().await {
            tally.observe(&st);
        }
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        if let Some(cur) = &dump.cur_req {
            let id = cur.request.ur_req.upgrade_req_id.clone();
            requests.insert(id.clone());
            if cur.stage == UpgradeReqType::CommitUpgrade {
                commit_s += dt;
                if dump.cur_batch_index > 0 && !dump.cur_batch.is_empty() {
                    batches
                        .entry((cur.submitted_at, id, dump.cur_batch_index))
                        .or_default()
                        .extend(dump.cur_batch.iter().map(|n| n.node.clone()));
                }
            } else {
                prepare_s += dt;
            }
        }
        requests.extend(dump.finished_reqs.iter().map(|f| f.request_id.clone()));
        let board = show.boards.first();
        for w in board.map_or(&[][..], |b| &b.waves[..]) {
            let done = w.finished_at.is_some();
            if printed.get(&w.request_id) != Some(&done) {
                printed.insert(w.request_id.clone(), done);
                if done {
                    say(
                        json,
                        format!(
                            "  {} finished: {} upgraded, {} fell back or failed",
                            w.label,
                            w.upgraded.len(),
                            w.failed.len()
                        ),
                    );
                } else {
                    say(json, format!("  {} started ({}): {}", w.label, w.request_id, w.nodes.join(", ")));
                }
            }
        }
        let running = board.is_some_and(|b| b.waves.iter().any(|w| w.finished_at.is_none()));
        let converged = board.is_some_and(|b| b.behind == 0 && !b.waves.is_empty());
        if !running && dump.cur_req.is_none() && (converged || !show.quarantined.is_empty()) {
            break show;
        }
        if Instant::now() > deadline {
            return Err("the golden-image loop did not finish within 15 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let status = lab.node_status().await.map_err(|e| e.to_string())?;
    let board = show.boards.first();
    let waves: Vec<&GoldenWave> = board.map(|b| b.waves.iter().collect()).unwrap_or_default();
    let upgraded: BTreeSet<&str> = waves.iter().flat_map(|w| w.upgraded.iter().map(String::as_str)).collect();
    let failed: BTreeSet<&str> = waves.iter().flat_map(|w| w.failed.iter().map(String::as_str)).collect();
    let in_waves: BTreeSet<&str> = waves.iter().flat_map(|w| w.nodes.iter().map(String::as_str)).collect();
    let mut outcomes = BTreeMap::new();
    for row in &status.nodes {
        let n = row.name.as_str();
        let (outcome, reason) = if upgraded.contains(n) {
            ("succeeded", String::new())
        } else if failed.contains(n) {
            let why =
                show.blacklist.iter().find(|e| e.node == n).map(|e| e.reason.clone()).unwrap_or_default();
            ("fell_back", why)
        } else if in_waves.contains(n) {
            ("skipped", "in a wave, no final outcome".to_string())
        } else {
            ("untouched", format!("running {}", row.version.as_deref().unwrap_or("?")))
        };
        outcomes.insert(row.name.clone(), NodeResult { outcome: outcome.into(), reason });
    }
    let on = |v: &str| status.nodes.iter().filter(|r| r.version.as_deref() == Some(v)).count();
    let untouched = |r: &NodeStatusRow| {
        r.upgrade_status
            .as_ref()
            .is_none_or(|u| u.us_type == UpgradeStatusType::None && u.upgrade_req_id.is_empty())
    };
    let isolation = lab.mesh.isolation();
    let collateral = (isolation.total_s * 1000.0).round() / 1000.0;
    let quarantined: Vec<String> = show.quarantined.iter().map(|q| q.version.clone()).collect();
    let only_loop = requests.iter().all(|r| r.starts_with("golden-"));
    let n = status.nodes.len();
    let (passed, verdict) = if bad {
        let outside_ok = status
            .nodes
            .iter()
            .filter(|r| !in_waves.contains(r.name.as_str()))
            .all(|r| r.version.as_deref() == Some(lab::V1) && untouched(r));
        let ok = quarantined.iter().any(|v| v == lab::V2) && outside_ok && only_loop;
        (
            ok,
            format!(
                "v2 quarantined: {}; {} nodes outside the canary waves on v1 and untouched: {outside_ok}",
                quarantined.iter().any(|v| v == lab::V2),
                n - in_waves.len()
            ),
        )
    } else {
        let ok = on(lab::V2) == n && failed.is_empty() && collateral == 0.0 && only_loop;
        (ok, format!("{} of {n} nodes on v2, only the loop sent requests: {only_loop}", on(lab::V2)))
    };
    let upload = lab.controller_upload(&tally).await;
    Ok(Summary {
        nodes: n,
        address_family: if lab.cfg.ipv6 { "ipv6" } else { "ipv4" },
        controller_upload_bytes: upload.total(),
        peer_bytes: upload.peer_bytes(&tally),
        succeeded: upgraded.len(),
        fell_back: failed.len(),
        failed: 0,
        skipped: n - upgraded.len() - failed.len(),
        batches: batches.into_values().map(|s| s.into_iter().collect()).collect(),
        collateral_isolation_s: collateral,
        isolated_nodes: isolation.per_node.clone(),
        image_bytes: image.size,
        prepare_s: (prepare_s * 10.0).round() / 10.0,
        commit_s: (commit_s * 10.0).round() / 10.0,
        outcomes,
        request_id: "golden-image loop".into(),
        workdir: lab.cfg.work_dir.display().to_string(),
        golden: Some(GoldenSummary {
            waves: waves.iter().map(|w| w.nodes.clone()).collect(),
            upgraded: upgraded.len(),
            quarantined,
            labels: waves.iter().map(|w| w.label.clone()).collect(),
            passed,
            verdict,
        }),
    })
}

/// The waves, for the text summary.
pub fn print(g: &GoldenSummary) {
    println!("golden-image loop waves ({}):", g.waves.len());
    for (i, (label, nodes)) in g.labels.iter().zip(&g.waves).enumerate() {
        println!("  {:>2}. {label:<16} {}", i + 1, nodes.join(", "));
    }
    println!(
        "golden: {} upgraded; quarantined: {}",
        g.upgraded,
        if g.quarantined.is_empty() { "none".to_string() } else { g.quarantined.join(", ") }
    );
    println!("golden verdict: {}", g.verdict);
}
