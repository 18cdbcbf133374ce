//! Terragraph's management network is IPv6: the sample mesh upgraded with every socket on `::1`
//! (controller ZeroMQ, relays, tracker, seeder, HTTP, the minions' swarm). Every node confirms
//! v2, no running node is cut off, and the swarm carries the image: the controller sends at most
//! 3 × the image (the demo's accounting), as on IPv4. Without IPv6 loopback this test fails, it
//! does not skip: IPv6 is a product requirement.

use meshlift_meshsim::lab::{ControllerUpload, TransferTally};
use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_mesh_upgrades_over_ipv6_with_the_swarm_carrying_the_image() {
    if let Err(e) = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)) {
        panic!("IPv6 loopback (::1) is unavailable on this machine ({e}): this test needs it; check `ip -6 addr show lo`");
    }
    let (mut cfg, _dir) = lab_config(sample_topology());
    cfg.ipv6 = true;
    // The demo's default image size (the per-node cost of leaving the seeder is fixed, so a tiny
    // image would measure that cost rather than the swarm).
    cfg.image_bytes = 16 << 20;
    let (lab, image) = start_with_v2(cfg).await;
    assert!(lab.app_endpoint().starts_with("tcp://[::1]:"), "{}", lab.app_endpoint());
    let v2 = lab.stored_image(V2).await.expect("v2 listed");
    assert!(v2.http_uri.starts_with("http://[::1]:"), "HTTP URI on IPv6: {}", v2.http_uri);
    assert!(
        v2.magnet_uri.contains("tr=http%3A%2F%2F%5B%3A%3A1%5D%3A"),
        "tracker on [::1]: {}",
        v2.magnet_uri
    );
    for node in &lab.cfg.topology.nodes {
        let relay = lab.mesh.relay_endpoint(&node.name).expect("a relay per node");
        assert!(relay.starts_with("tcp://[::1]:"), "{}: {relay}", node.name);
    }

    let id = lab.submit(full_upgrade_request("e2e-ipv6", &image, 90)).await.expect("accepted");
    let mut log = BatchLog::default();
    let mut tally = TransferTally::default();
    let deadline = Instant::now() + Duration::from_secs(300);
    let dump = loop {
        if let Ok(status) = lab.node_status().await {
            tally.observe(&status);
        }
        let d = lab.state().await.expect("state");
        log.observe(&d);
        if d.finished_reqs.iter().any(|f| f.request_id == id) {
            break d;
        }
        assert!(Instant::now() < deadline, "request {id} did not finish in 300 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let commits = outcomes(&dump, &id, UpgradeReqType::CommitUpgrade);
    let n = lab.cfg.topology.nodes.len();
    assert_eq!(commits.len(), n, "every node has a commit outcome: {commits:?}");
    for (node, o) in &commits {
        assert_eq!(o.outcome, OutcomeKind::Succeeded, "{node}: {}", o.reason);
    }
    let status = lab.node_status().await.expect("status");
    for row in &status.nodes {
        assert_eq!(row.version.as_deref(), Some(V2), "{}", row.name);
        assert!(row.slots.as_ref().expect("slots reported").running().confirmed, "{}: confirmed", row.name);
    }
    let iso = lab.mesh.isolation();
    assert_eq!(iso.total_s, 0.0, "collateral isolation: {:?}", iso.per_node);

    let upload: ControllerUpload = lab.controller_upload(&tally).await;
    let ratio = upload.total() as f64 / v2.size as f64;
    eprintln!(
        "IPv6: controller sent {} bytes ({ratio:.2}× the {}-byte image: seeder {}, HTTP {}); peers exchanged {}",
        upload.total(),
        v2.size,
        upload.seeder_bytes,
        upload.http_bytes,
        upload.peer_bytes(&tally)
    );
    assert!(upload.seeder_bytes > 0, "the seeder served over IPv6: {upload:?}");
    assert!(
        upload.peer_bytes(&tally) > v2.size,
        "nodes traded pieces with each other over IPv6: {upload:?}, {tally:?}"
    );
    assert!(ratio <= 3.0, "the controller sent {ratio:.2}× the image (at most 3×): {upload:?}");
    lab.stop().await;
}
