//! A radio link is cut in the middle of the upgrade (during the prepare stage): the commit
//! batches are planned on the live topology without it — the plan the planner gives for the cut
//! network, not the one for the intact network — and still no running node is cut off.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

/// The offline planner's batches (`meshlift plan --json`) for a topology.
fn offline_plan(topology: &Topology) -> Vec<Vec<String>> {
    let path = std::env::temp_dir().join(format!(
        "meshlift-plan-{}-{}.json",
        std::process::id(),
        topology.links.len()
    ));
    std::fs::write(&path, topology.to_json().to_string()).expect("write topology");
    let out = std::process::Command::new(bin_dir().join("meshlift"))
        .args(["plan", "--json", "--topology"])
        .arg(&path)
        .output()
        .expect("meshlift plan runs");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    serde_json::from_value(v["batches"].clone()).expect("batches")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_upgrade_changes_the_next_batches() {
    const CUT: &str = "link-elm.b-pine.a";
    let topology = sample_topology();
    let mut cut = topology.clone();
    cut.link_mut(CUT).expect("the sample has this link").is_alive = false;
    let intact_plan = offline_plan(&topology);
    let cut_plan = offline_plan(&cut);
    assert_ne!(intact_plan[0], cut_plan[0], "the cut must matter for this test to mean anything");

    let (cfg, _dir) = lab_config(topology);
    let (lab, image) = start_with_v2(cfg).await;
    let id = lab.submit(full_upgrade_request("e2e-cut", &image, 90)).await.expect("accepted");
    // Cut the link while the nodes download.
    wait_state(&lab, Duration::from_secs(60), "prepare never started", |d| {
        d.cur_req.as_ref().is_some_and(|r| r.stage == UpgradeReqType::PrepareUpgrade)
    })
    .await;
    lab.mesh.cut_link(CUT).expect("cut");
    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;

    let first: Vec<String> =
        log.batches.values().next().expect("a commit batch ran").iter().cloned().collect();
    assert_eq!(first, cut_plan[0], "first commit batch follows the cut network's plan");
    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
    }
    assert_eq!(commits.len(), lab.cfg.topology.nodes.len());
    let iso = lab.mesh.isolation();
    assert_eq!(iso.total_s, 0.0, "collateral isolation: {:?}", iso.per_node);
    lab.stop().await;
}
