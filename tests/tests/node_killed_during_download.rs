//! A node loses power in the middle of its download: it comes back, the controller retries its
//! prepare, and the download resumes from the bytes already on disk instead of starting over.

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_download_resumes() {
    let (mut cfg, _dir) = lab_config(small_topology());
    cfg.image_bytes = 8 << 20;
    // A slow seeder (like a POP's in-band uplink) so the download is still running when killed.
    cfg.seed_upload_limit = Some(2_000_000);
    let (lab, image) = start_with_v2(cfg).await;
    let mut req = full_upgrade_request("e2e-resume", &image, 120);
    req.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    req.ug_type = UpgradeGroupType::Nodes;
    req.nodes = vec!["leaf1".into()];
    req.retry_limit = 2;
    // Keep the swarm in charge: no early HTTP fallback while the node is down.
    req.ur_req.torrent_params.bt_stall_timeout_s = 60;
    let id = lab.submit(req).await.expect("accepted");

    // Wait until leaf1 has some but not all of the image.
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        let st = lab.node_status().await.expect("status");
        let row = st.nodes.iter().find(|r| r.name == "leaf1").expect("leaf1");
        if let Some(p) = row.upgrade_status.as_ref().and_then(|u| u.progress.as_ref()) {
            if p.have_bytes > p.total_bytes / 8 && p.have_bytes < p.total_bytes {
                break p.total_bytes;
            }
        }
        assert!(Instant::now() < deadline, "leaf1 never got into the middle of its download");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    lab.mesh.kill_node("leaf1").expect("kill");

    let mut log = BatchLog::default();
    let dump = finish(&lab, &id, &mut log).await;
    let prep = outcomes(&dump, &id, UpgradeReqType::PrepareUpgrade);
    assert_eq!(prep["leaf1"].outcome, OutcomeKind::Succeeded, "{:?}", prep["leaf1"]);
    // The final attempt fetched less than the whole image: it resumed.
    let st = lab.node_status().await.expect("status");
    let row = st.nodes.iter().find(|r| r.name == "leaf1").expect("leaf1");
    let p = row
        .upgrade_status
        .as_ref()
        .and_then(|u| u.progress.clone())
        .expect("final download figures reported");
    let fetched = p.bt_downloaded_bytes + p.http_downloaded_bytes;
    assert!(fetched < total, "resumed download fetched {fetched} of {total} bytes: it started over");
    assert!(lab.mesh.crashes("leaf1") + lab.mesh.restarts("leaf1") >= 1);
    lab.stop().await;
}
