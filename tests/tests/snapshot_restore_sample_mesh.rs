//! Snapshots on real processes (issue 17): `versions --json` shows every node of the sample mesh;
//! a snapshot taken on v1; a destructive command run without a terminal and without `--yes` is
//! refused and changes nothing; the mesh is upgraded to v2; `snapshot restore --dry-run` shows the
//! campaign; `snapshot restore --yes` takes every node back to v1 — from a confirmed slot, through
//! the golden reconciler, in planned batches — with no running node ever cut off.

use meshlift_protocol::fleet::{FleetVersions, SnapshotCampaign};
use meshlift_tests::*;
use std::time::{Duration, Instant};

fn json<T: serde::de::DeserializeOwned>(out: &std::process::Output) -> T {
    assert!(out.status.success(), "meshlift failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn active_versions(v: &FleetVersions) -> Vec<(String, Option<String>, bool)> {
    v.nodes
        .iter()
        .map(|n| {
            let a = n.active.as_ref();
            (n.name.clone(), a.and_then(|a| a.version.clone()), a.is_some_and(|a| a.confirmed))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_upgrade_and_restore_brings_the_sample_mesh_back_with_zero_collateral_isolation() {
    let started = Instant::now();
    let (cfg, _dir) = lab_config(sample_topology());
    let (lab, v2) = start_with_v2(cfg).await;
    let ack = lab.add_image(&lab.v1_path).await.expect("controller answers");
    assert!(ack.success, "v1 accepted: {}", ack.message);
    lab.wait_all_reported(Duration::from_secs(60)).await.expect("every node reports");
    let n = lab.cfg.topology.nodes.len();

    // Every node, on v1 from a confirmed slot.
    let before: FleetVersions = json(&cli(&lab, &["versions", "--json"]));
    assert_eq!(before.nodes.len(), n, "versions lists every node");
    assert!(active_versions(&before).iter().all(|(_, v, c)| v.as_deref() == Some(V1) && *c), "{before:?}");
    assert_eq!(before.by_version.get(V1), Some(&(n as u32)));

    let out = cli(&lab, &["snapshot", "create", "before-v2", "--reason", "e2e: known good"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // No terminal, no --yes, no --dry-run: refused, nothing sent.
    let out = cli(&lab, &["upgrade", "network", "full", "--image", &v2, "--reason", "forgot --yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin is not a terminal"));
    let d = lab.state().await.expect("state");
    assert!(
        d.cur_req.is_none() && d.pending_reqs.is_empty() && d.finished_reqs.is_empty(),
        "nothing queued: {d:?}"
    );

    // Upgrade to v2.
    let id = lab.submit(full_upgrade_request("e2e-to-v2", &v2, 90)).await.expect("accepted");
    let mut log = BatchLog::default();
    finish(&lab, &id, &mut log).await;
    let upgraded: FleetVersions = json(&cli(&lab, &["versions", "--json", "--version", V2]));
    assert_eq!(upgraded.nodes.len(), n, "every node on v2: {upgraded:?}");

    // The dry run: every node back to v1 (a downgrade), nothing missing, batches planned.
    let c: SnapshotCampaign = json(&cli(&lab, &["snapshot", "restore", "before-v2", "--dry-run", "--json"]));
    assert_eq!(c.steps.len(), n, "{c:?}");
    assert!(c.steps.iter().all(|s| s.downgrade && s.to_version == V1 && s.image.is_some()), "{c:?}");
    assert!(c.missing_images.is_empty(), "{c:?}");
    assert!(c.plan.commit_batches.len() >= 2, "staged: {:?}", c.plan.commit_batches);
    assert!(lab.state().await.expect("state").cur_req.is_none(), "the dry run started nothing");

    let out =
        cli(&lab, &["snapshot", "restore", "before-v2", "--yes", "--reason", "e2e: back to known good"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Back on v1, every node, from a confirmed active slot.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let v: FleetVersions = json(&cli(&lab, &["versions", "--json"]));
        let d = lab.state().await.expect("state");
        if active_versions(&v).iter().all(|(_, ver, c)| ver.as_deref() == Some(V1) && *c)
            && d.cur_req.is_none()
        {
            break;
        }
        assert!(Instant::now() < deadline, "not restored: {v:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        let slots = row.slots.as_ref().expect("slots");
        assert_eq!(slots.booted, slots.active, "{}: running its active slot", row.name);
        assert_eq!(slots.running().version.as_deref(), Some(V1), "{}", row.name);
        assert!(slots.running().confirmed, "{}: confirmed", row.name);
        assert_eq!(lab.mesh.reboots(&row.name), 2, "{}: once to v2, once back", row.name);
    }
    let iso = lab.mesh.isolation();
    assert_eq!(iso.total_s, 0.0, "collateral isolation: {:?}", iso.per_node);
    // The restore's requests are journaled with the operator and the reason that allowed the downgrade.
    let queued: Vec<_> = journal(&lab)
        .into_iter()
        .filter(|e| {
            e.message.contains("request queued")
                && e.request_id.as_deref().is_some_and(|r| r.starts_with("restore-"))
        })
        .collect();
    assert!(!queued.is_empty());
    for e in &queued {
        let r = e.operator.as_ref().and_then(|o| o.reason.clone()).unwrap_or_default();
        assert!(r.contains("restore of snapshot before-v2") && r.contains("downgrade is allowed"), "{r}");
    }
    eprintln!("snapshot/upgrade/restore of {n} nodes took {:.1} s", started.elapsed().as_secs_f64());
    lab.stop().await;
}
