//! Fuzz the status-report path into the controller engine, the way the shell drives it: frames
//! decoded from the wire, plus reports built from fuzz bytes by a scripted fleet that answers the
//! engine's own UPGRADE_REQs (so the fuzzer reaches prepare, commit, trial and the verdicts, not
//! only refusals), ticks with jumps in time, operator requests and node refusals.
//!
//! Whatever arrives: no panic, every node of a request gets at most one outcome per stage, and
//! no node is sent two COMMITs for one request and attempt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlift_controller::engine::{Action, Engine, EngineConfig};
use meshlift_protocol::{
    decode, ImageMeta, LinkReport, Message, Operator, Sha256Digest, SlotId, SlotReport, SlotsReport, StatusReport,
    Topology, UpgradeAbortReq, UpgradeCommitPlanReq, UpgradeGroupReq, UpgradeGroupType, UpgradeImage, UpgradeReq,
    UpgradeReqType, UpgradeStateReq, UpgradeStatus, UpgradeStatusType, MAX_FRAME_DEFAULT,
};
use std::collections::{BTreeMap, BTreeSet};

const SAMPLE: &str = include_str!("../../configs/topologies/sample.json");
const STATUSES: [UpgradeStatusType; 12] = [
    UpgradeStatusType::None,
    UpgradeStatusType::DownloadingImage,
    UpgradeStatusType::DownloadFailed,
    UpgradeStatusType::FlashingImage,
    UpgradeStatusType::FlashFailed,
    UpgradeStatusType::Flashed,
    UpgradeStatusType::CommitScheduled,
    UpgradeStatusType::Rebooting,
    UpgradeStatusType::Trial,
    UpgradeStatusType::Confirmed,
    UpgradeStatusType::FellBack,
    UpgradeStatusType::CommitFailed,
];

fn op() -> Operator {
    Operator { who: "fuzz".into(), reason: None }
}

struct Fleet {
    topology: Topology,
    /// Last UPGRADE_REQ the engine sent to each node.
    last_req: BTreeMap<String, UpgradeReq>,
    /// (request, attempt, node) of every COMMIT sent.
    commits: BTreeSet<(String, u32, String)>,
    seq: u64,
}

impl Fleet {
    fn drain(&mut self, engine: &mut Engine) {
        while let Some(a) = engine.poll_action() {
            if let Action::SendToNode { node, req, .. } = a {
                if matches!(req.ur_type, UpgradeReqType::CommitUpgrade) {
                    let key = (req.upgrade_req_id.clone(), req.attempt, node.clone());
                    assert!(self.commits.insert(key), "COMMIT sent twice to {node} for one request and attempt");
                }
                self.last_req.insert(node, *req);
            }
        }
    }

    /// A report for node `idx` shaped by four fuzz bytes: status, version/slot bits, link bits,
    /// and whether it answers the last request it was sent (id and attempt) or a made-up one.
    fn report(&mut self, idx: u8, b: [u8; 4], now: u64) -> StatusReport {
        let node = &self.topology.nodes[idx as usize % self.topology.nodes.len()];
        let name = node.name.clone();
        let req = self.last_req.get(&name);
        let answers = b[3] & 1 == 1;
        let (req_id, attempt) = match (answers, req) {
            (true, Some(r)) => (r.upgrade_req_id.clone(), r.attempt),
            _ => (format!("r{}", b[3] >> 1), u32::from(b[3] >> 4)),
        };
        let v = |bit: u8| if b[1] & bit != 0 { "2.0.0".to_string() } else { "1.0.0".to_string() };
        let slot = |id, bit: u8, conf: u8| SlotReport {
            slot: id,
            version: Some(v(bit)),
            sha256: Some(Sha256Digest([bit; 32])),
            confirmed: b[1] & conf != 0,
        };
        let active = if b[1] & 0x10 != 0 { SlotId::B } else { SlotId::A };
        let booted = if b[1] & 0x20 != 0 { active.other() } else { active };
        let links: Vec<LinkReport> = self
            .topology
            .links
            .iter()
            .filter(|l| l.a_node_name == name || l.z_node_name == name)
            .enumerate()
            .map(|(i, l)| LinkReport { name: l.name.clone(), up: b[2] & (1 << (i % 8)) != 0 })
            .collect();
        self.seq += 1;
        StatusReport {
            mac: node.mac_addr.clone(),
            boot_id: "boot".into(),
            timestamp: now,
            version: v(if booted == SlotId::A { 0x01 } else { 0x02 }),
            hardware_board_id: "NXP_LS1048A_PUMA".into(),
            upgrade_status: UpgradeStatus {
                us_type: STATUSES[b[0] as usize % STATUSES.len()],
                next_image: ImageMeta {
                    sha256: Some(Sha256Digest([7; 32])),
                    version: Some("2.0.0".into()),
                    hardware_board_ids: vec![],
                },
                reason: String::new(),
                upgrade_req_id: req_id,
                when_to_commit: 0,
                progress: None,
                attempt,
            },
            slots: SlotsReport { active, booted, a: slot(SlotId::A, 0x01, 0x04), b: slot(SlotId::B, 0x02, 0x08) },
            links,
            bgp_peers_up: (b[2] & 0x80 != 0).then_some(1),
            last_fallback: None,
            seq: self.seq,
            startup_config: None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static TOPOLOGY: std::sync::OnceLock<Topology> = std::sync::OnceLock::new();
    let topology = TOPOLOGY.get_or_init(|| Topology::from_json(SAMPLE).expect("sample topology")).clone();
    let mut now = 1_000_000u64;
    let mut engine = Engine::new(topology.clone(), EngineConfig::default(), now);
    engine.add_image(
        UpgradeImage {
            name: "2.0.0".into(),
            version: "2.0.0".into(),
            magnet_uri: "magnet:?xt=urn:btih:0000000000000000000000000000000000000000".into(),
            http_uri: "http://127.0.0.1:1/images/x".into(),
            sha256: Sha256Digest([7; 32]),
            size: 1024,
            hardware_board_ids: vec![],
        },
        op(),
        now,
    );
    let mut fleet = Fleet { topology, last_req: BTreeMap::new(), commits: BTreeSet::new(), seq: 0 };
    let mut rest = data;
    while let Some((&opcode, tail)) = rest.split_first() {
        rest = tail;
        match opcode % 8 {
            // Time passes, then the engine's tick.
            0 => {
                let Some((&dt, tail)) = rest.split_first() else { break };
                rest = tail;
                now += u64::from(dt) * 500;
                engine.tick(now);
            }
            // A frame off the wire: whatever decodes as a status report goes in.
            1 => {
                let Some((&len, tail)) = rest.split_first() else { break };
                let take = (len as usize).min(tail.len());
                if let Ok(env) = decode(&tail[..take], MAX_FRAME_DEFAULT) {
                    if let Message::StatusReport(r) = env.body {
                        let _ = engine.handle_status_report(*r, now);
                    }
                }
                rest = &tail[take..];
            }
            // A scripted node report.
            2..=4 => {
                if rest.len() < 5 {
                    break;
                }
                let r = fleet.report(rest[0], [rest[1], rest[2], rest[3], rest[4]], now);
                rest = &rest[5..];
                engine.handle_status_report(r, now).expect("a topology MAC is known");
            }
            // An operator request.
            5 => {
                let Some((&kind, tail)) = rest.split_first() else { break };
                rest = tail;
                let msg = match kind % 5 {
                    0 | 1 => {
                        let ur_type = if kind % 5 == 0 { UpgradeReqType::FullUpgrade } else { UpgradeReqType::CommitUpgrade };
                        let mut ur = UpgradeReq::new(ur_type, format!("req-{kind}"));
                        ur.image_name = Some("2.0.0".into());
                        let mut g = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, u64::from(kind % 7) * 10);
                        g.version = Some("2.0.0".into());
                        g.limit = i64::from(kind as i8 % 4);
                        g.skip_failure = kind & 0x40 != 0;
                        g.operator = op();
                        Message::UpgradeGroupReq(g)
                    }
                    2 => Message::UpgradeAbortReq(UpgradeAbortReq {
                        abort_all: kind & 0x80 != 0,
                        req_ids: vec![format!("req-{}", kind >> 3)],
                        reset_status: kind & 0x40 != 0,
                        operator: op(),
                    }),
                    3 => Message::UpgradeStateReq(UpgradeStateReq {}),
                    _ => Message::UpgradeCommitPlanReq(UpgradeCommitPlanReq {
                        limit: i64::from(kind as i8 % 3),
                        ..Default::default()
                    }),
                };
                let _ = engine.handle_operator(msg, now);
            }
            // A node refuses the last order it got.
            _ => {
                let Some((&idx, tail)) = rest.split_first() else { break };
                rest = tail;
                let node = fleet.topology.nodes[idx as usize % fleet.topology.nodes.len()].name.clone();
                if let Some(r) = fleet.last_req.get(&node) {
                    let id = r.upgrade_req_id.clone();
                    engine.handle_node_refusal(&node, &id, "download running", now);
                }
            }
        }
        fleet.drain(&mut engine);
        let mut seen = BTreeSet::new();
        for o in engine.outcomes() {
            assert!(
                seen.insert((o.request_id.clone(), format!("{:?}", o.stage), o.node.clone())),
                "two outcomes for {} in one stage of {}",
                o.node,
                o.request_id
            );
        }
    }
    // The state dump and the node table are built from whatever state was reached.
    let _ = engine.handle_operator(Message::UpgradeStateReq(UpgradeStateReq {}), now);
});
