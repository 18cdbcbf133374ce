//! A node key speaks only for its own node: leaf1's enrolled key sending a status report in
//! leaf2's name (claiming a confirmed new version and a dead link) is refused, counted and
//! logged; leaf2's state is unchanged, and its route too (an order to leaf2 still reaches the real
//! leaf2, which prepares).

use meshlift_protocol::*;
use meshlift_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_for_another_node_is_refused_and_moves_nothing() {
    let (cfg, _dir) = lab_config(small_topology());
    let (lab, image) = start_with_v2(cfg).await;
    let leaf2_mac = lab.cfg.topology.node("leaf2").expect("leaf2").mac_addr.clone();
    let before = lab.node_status().await.expect("status");
    let leaf2_before = before.nodes.iter().find(|n| n.name == "leaf2").expect("leaf2 row").clone();

    let forged = StatusReport {
        mac: leaf2_mac.clone(),
        boot_id: "forged-boot".into(),
        timestamp: 0,
        version: "9.9.9".into(),
        hardware_board_id: "sim".into(),
        upgrade_status: UpgradeStatus { us_type: UpgradeStatusType::Flashed, ..UpgradeStatus::default() },
        slots: SlotsReport {
            active: SlotId::B,
            booted: SlotId::B,
            a: SlotReport { slot: SlotId::A, version: Some(V1.into()), sha256: None, confirmed: true },
            b: SlotReport { slot: SlotId::B, version: Some("9.9.9".into()), sha256: None, confirmed: true },
        },
        links: vec![LinkReport { name: "relay2-leaf2".into(), up: false }],
        bgp_peers_up: None,
        last_fallback: None,
        seq: 1,
        startup_config: None,
    };
    let payload = encode(&Envelope::new(1, Message::StatusReport(Box::new(forged)))).expect("encode");
    let ep = format!("tcp://127.0.0.1:{}", lab.ports.minion);
    let leaf1_key = lab.node_key("leaf1").expect("leaf1 key").key.clone();
    let server = lab.controller_public_key();
    // The refusal rests on the key's node (the ZAP user id), not on the routing id or the MAC.
    let reply = tokio::task::spawn_blocking(move || {
        let raw = raw_dealer(&ep, Some(&leaf1_key), server, "impostor");
        raw_send_recv(&raw, &payload)
    })
    .await
    .expect("impostor");
    match &reply.body {
        Message::StatusReportAck(a) => {
            let why = a.refused.as_deref().unwrap_or("");
            assert!(why.contains("enrolled for leaf1, not for leaf2"), "{a:?}")
        }
        other => panic!("expected a refused ack, got {other:?}"),
    }
    let metrics = lab.metrics().await.expect("metrics");
    let refused = metric_sum(&metrics, "meshlift_frames_refused_total", Some(("reason", "wrong_node")));
    assert!(refused >= 1.0, "the forged report is counted:\n{metrics}");
    let log = std::fs::read_to_string(lab.cfg.work_dir.join("controller.log")).expect("log");
    assert!(log.contains("status report for another node refused"), "and logged");

    let after = lab.node_status().await.expect("status");
    let leaf2 = after.nodes.iter().find(|n| n.name == "leaf2").expect("leaf2 row");
    assert_eq!(leaf2.version, leaf2_before.version, "leaf2's version is what leaf2 reported");
    assert_ne!(leaf2.version.as_deref(), Some("9.9.9"));
    assert!(
        leaf2.slots.as_ref().is_some_and(|s| s.b.version.as_deref() != Some("9.9.9")),
        "{:?}",
        leaf2.slots
    );

    // The route to leaf2 is still the real leaf2: a PREPARE reaches it and it flashes.
    let mut req = full_upgrade_request("e2e-route-kept", &image, 90);
    req.ur_req.ur_type = UpgradeReqType::PrepareUpgrade;
    req.ug_type = UpgradeGroupType::Nodes;
    req.nodes = vec!["leaf2".into()];
    let id = lab.submit(req).await.expect("accepted");
    let dump = lab.wait_finished(&id, Duration::from_secs(120), |_| {}).await.expect("finishes");
    let o = &outcomes(&dump, &id, UpgradeReqType::PrepareUpgrade)["leaf2"];
    assert_eq!(o.outcome, OutcomeKind::Succeeded, "{o:?}");
    lab.stop().await;
}
