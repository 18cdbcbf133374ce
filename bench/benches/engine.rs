//! Controller engine benches.
//! - `engine_tick_10k`: one status interval of a 10 000-node mesh with a 10 000-node PREPARE in
//!   flight — a fresh report from every node (judged against the batch) and one tick. Target
//!   ≤ 10 ms.
//! - `journal_append`: journal lines written to a WAL SQLite file, 1 000 per transaction (the
//!   engine writes one transaction per input). Target ≥ 20 000 transitions/s.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meshlift_controller::engine::{Engine, EngineConfig};
use meshlift_controller::store::{JournalEntry, JournalKind, Store, StoreOp};
use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site};
use meshlift_protocol::*;

const SIDE: usize = 100;
const T0: u64 = 1_700_000_000_000;

fn mesh() -> Topology {
    let name = |r: usize, c: usize| format!("n{r:03}-{c:03}");
    let mut nodes = Vec::new();
    let mut sites = Vec::new();
    let mut links = Vec::new();
    for r in 0..SIDE {
        for c in 0..SIDE {
            let i = r * SIDE + c;
            sites.push(Site { name: format!("S{i}"), location: None });
            nodes.push(Node {
                name: name(r, c),
                node_type: NodeType::Dn,
                mac_addr: format!("02:00:00:{:02x}:{:02x}:{:02x}", i >> 16, (i >> 8) & 0xff, i & 0xff),
                pop_node: c == 0 && r % 10 == 0,
                status: NodeStatus::Online,
                site_name: format!("S{i}"),
            });
            for (rr, cc) in [(r, c + 1), (r + 1, c)] {
                if rr < SIDE && cc < SIDE {
                    links.push(Link {
                        name: format!("l-{}-{}", name(r, c), name(rr, cc)),
                        a_node_name: name(r, c),
                        z_node_name: name(rr, cc),
                        link_type: LinkType::Wireless,
                        is_alive: true,
                    });
                }
            }
        }
    }
    Topology::new("bench".into(), nodes, links, sites).expect("valid generated mesh")
}

fn report(topo: &Topology, node: &Node, us: UpgradeStatus, seq: u64) -> StatusReport {
    let slot = |id, v: Option<&str>| SlotReport {
        slot: id,
        version: v.map(str::to_string),
        sha256: None,
        confirmed: true,
    };
    StatusReport {
        mac: node.mac_addr.clone(),
        boot_id: "b1".into(),
        timestamp: 0,
        version: "v1".into(),
        hardware_board_id: "B".into(),
        upgrade_status: us,
        slots: SlotsReport {
            active: SlotId::A,
            booted: SlotId::A,
            a: slot(SlotId::A, Some("v1")),
            b: slot(SlotId::B, None),
        },
        links: topo.links_of(&node.name).map(|l| LinkReport { name: l.name.clone(), up: true }).collect(),
        bgp_peers_up: None,
        last_fallback: None,
        seq,
        startup_config: None,
    }
}

fn engine_tick(c: &mut Criterion) {
    let topo = mesh();
    let mut engine = Engine::new(topo.clone(), EngineConfig::default(), T0);
    let image = UpgradeImage {
        name: "v2".into(),
        version: "v2".into(),
        magnet_uri: "magnet:?x".into(),
        http_uri: String::new(),
        sha256: Sha256Digest([9; 32]),
        size: 1 << 20,
        hardware_board_ids: vec!["B".into()],
    };
    engine.add_image(image, Operator::default(), T0);
    for n in &topo.nodes {
        engine.handle_status_report(report(&topo, n, UpgradeStatus::default(), 1), T0).expect("known MAC");
    }
    let mut ur = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "bench");
    ur.image_name = Some("v2".into());
    let mut req = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, 3600);
    req.skip_failure = true;
    let reply = engine.handle_operator(Message::UpgradeGroupReq(req), T0);
    assert!(matches!(reply, Message::Ack(ref a) if a.success), "{reply:?}");
    while engine.poll_action().is_some() {}
    assert_eq!(engine.in_flight_nodes().len(), SIDE * SIDE);
    let downloading = |seq: u64| UpgradeStatus {
        us_type: UpgradeStatusType::DownloadingImage,
        upgrade_req_id: "bench".into(),
        progress: Some(DownloadProgress { total_bytes: 100, have_bytes: seq % 100, ..Default::default() }),
        ..Default::default()
    };
    let reports: Vec<StatusReport> = topo.nodes.iter().map(|n| report(&topo, n, downloading(2), 2)).collect();
    let mut now = T0;
    let mut g = c.benchmark_group("engine_tick_10k");
    g.sample_size(20);
    g.bench_function("10k_reports_plus_tick", |b| {
        b.iter_batched(
            || reports.clone(),
            |reports| {
                now += 5_000;
                for r in reports {
                    engine.handle_status_report(r, now).expect("known MAC");
                }
                engine.tick(now);
                while engine.poll_action().is_some() {}
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    assert_eq!(engine.in_flight_nodes().len(), SIDE * SIDE, "nothing finished or timed out during the bench");
}

fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    let per_txn = 1_000u64;
    let ops: Vec<StoreOp> = (0..per_txn)
        .map(|i| {
            StoreOp::Journal(JournalEntry {
                seq: 0,
                at: T0 + i,
                kind: JournalKind::Transition,
                request_id: Some("bench".into()),
                node: Some(format!("n{i}")),
                operator: None,
                message: format!("succeeded commit: running v2 from confirmed slot b, links back ({i})"),
            })
        })
        .collect();
    let mut g = c.benchmark_group("journal_append");
    g.throughput(Throughput::Elements(per_txn));
    g.bench_function("1000_per_transaction_wal_file", |b| b.iter(|| store.apply(&ops).expect("write")));
    g.finish();
}

criterion_group!(benches, engine_tick, journal);
criterion_main!(benches);
