//! Round trips of every message, and garbage that must give an error, never a panic.

use meshlift_protocol::*;
use proptest::prelude::*;

fn samples() -> Vec<Message> {
    let mut prep = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "r1");
    prep.sha256 = Some(Sha256Digest([7; 32]));
    prep.image_url = Some("magnet:?xt=urn:btih:00".into());
    prep.hardware_board_ids = vec!["board-x".into()];
    let mut group = UpgradeGroupReq::new(UpgradeGroupType::Network, prep.clone(), 180);
    group.exclude_nodes = vec!["n1".into()];
    group.operator = Operator { who: "ops@noc".into(), reason: Some("CVE fix".into()) };
    let slots = SlotsReport {
        active: SlotId::A,
        booted: SlotId::B,
        a: SlotReport { slot: SlotId::A, version: Some("1.0".into()), sha256: None, confirmed: true },
        b: SlotReport {
            slot: SlotId::B,
            version: Some("2.0".into()),
            sha256: Some(Sha256Digest([1; 32])),
            confirmed: false,
        },
    };
    let report = StatusReport {
        mac: "00:00:00:00:00:01".into(),
        boot_id: "b00t".into(),
        timestamp: 1_700_000_000_000,
        version: "2.0".into(),
        hardware_board_id: "board-x".into(),
        upgrade_status: UpgradeStatus {
            us_type: UpgradeStatusType::Trial,
            progress: Some(DownloadProgress { total_bytes: 10, have_bytes: 5, ..Default::default() }),
            ..Default::default()
        },
        slots: slots.clone(),
        links: vec![LinkReport { name: "l1".into(), up: true }],
        bgp_peers_up: Some(2),
        last_fallback: Some(FallbackRecord {
            upgrade_req_id: "r0".into(),
            version: "1.5".into(),
            reason: "hook failed".into(),
            at: 5,
        }),
        seq: 9,
        startup_config: None,
    };
    let outcome = NodeOutcome {
        request_id: "r1".into(),
        stage: UpgradeReqType::CommitUpgrade,
        node: "n2".into(),
        outcome: OutcomeKind::FellBack,
        reason: "post-boot-check exited 1".into(),
        started_at: 1,
        finished_at: 2,
    };
    vec![
        Message::UpgradeGroupReq(group.clone()),
        Message::UpgradeStateReq(UpgradeStateReq {}),
        Message::UpgradeAbortReq(UpgradeAbortReq {
            abort_all: false,
            req_ids: vec!["r1".into()],
            reset_status: true,
            operator: Operator::default(),
        }),
        Message::UpgradeCommitPlanReq(UpgradeCommitPlanReq {
            limit: 3,
            exclude_nodes: vec![],
            ap_policy: ApPolicy::DependentsFirst,
            max_pops_per_batch: 2,
            strategy: PlanStrategy::FewestBatches,
            version: None,
            revert: true,
        }),
        Message::UpgradeAddImageReq(UpgradeAddImageReq {
            image_url: "/tmp/x.mlimg".into(),
            operator: Operator::default(),
            tags: vec!["lab".into()],
        }),
        Message::UpgradeDelImageReq(UpgradeDelImageReq { name: "2.0".into(), operator: Operator::default() }),
        Message::UpgradeListImagesReq(UpgradeListImagesReq {}),
        Message::NodeStatusReq(NodeStatusReq {}),
        Message::UpgradeStateDump(UpgradeStateDump {
            cur_req: Some(RequestView {
                request: group,
                stage: UpgradeReqType::PrepareUpgrade,
                submitted_at: 1,
                started_at: Some(2),
            }),
            cur_batch_index: 1,
            cur_batch: vec![BatchNodeView {
                node: "n1".into(),
                state: UpgradeStatusType::Flashed,
                detail: String::new(),
                retries: 1,
                last_seen: Some(3),
                progress_ppm: None,
            }],
            pending_nodes: vec!["n3".into()],
            done_batches: vec![vec!["n0".into()]],
            pending_reqs: vec![],
            outcomes: vec![outcome],
            finished_reqs: vec![FinishedReq {
                request_id: "r0".into(),
                success: true,
                summary: "ok".into(),
                finished_at: 4,
            }],
        }),
        Message::UpgradeCommitPlan(UpgradeCommitPlan {
            commit_batches: vec![vec!["a".into(), "b".into()]],
            ..Default::default()
        }),
        Message::UpgradeListImagesResp(UpgradeListImagesResp {
            images: vec![UpgradeImage {
                name: "2.0".into(),
                version: "2.0".into(),
                magnet_uri: "magnet:?".into(),
                http_uri: "http://x".into(),
                sha256: Sha256Digest([3; 32]),
                size: 42,
                hardware_board_ids: vec!["b".into()],
            }],
        }),
        Message::NodeStatusDump(NodeStatusDump {
            nodes: vec![NodeStatusRow {
                name: "n1".into(),
                site: "S".into(),
                mac: "m".into(),
                online: true,
                is_pop: false,
                board: None,
                version: Some("1".into()),
                slots: Some(slots),
                upgrade_status: None,
                last_seen: Some(1),
                startup_config: None,
            }],
        }),
        Message::UpgradeReq(prep),
        Message::StatusReport(Box::new(report)),
        Message::StatusReportAck(StatusReportAck { seq: 9, request_full_status_report: true, refused: None }),
        Message::Ack(Ack::refused("Invalid node: x")),
        Message::NodeEnrollReq(NodeEnrollReq {
            node: "pole-1.a".into(),
            public_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7".into(),
            operator: Operator { who: "root".into(), reason: None },
        }),
        Message::NodeKeysReq(NodeKeysReq {}),
        Message::NodeKeysResp(NodeKeysResp {
            enrolled: vec![("a".into(), "k".into())],
            missing: vec!["b".into()],
        }),
    ]
}

fn report_from_samples() -> StatusReport {
    samples()
        .into_iter()
        .find_map(|m| match m {
            Message::StatusReport(r) => Some(*r),
            _ => None,
        })
        .unwrap()
}

#[test]
fn status_reports_beyond_their_bounds_are_refused_naming_the_field() {
    use meshlift_protocol::messages::report_limits::*;
    let check = |r: StatusReport, needle: &str| {
        let bytes = encode(&Envelope::new(1, Message::StatusReport(Box::new(r)))).unwrap();
        match decode(&bytes, MAX_FRAME_DEFAULT) {
            Err(DecodeError::OverLimit(why)) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected an over-limit refusal naming {needle}, got {other:?}"),
        }
    };
    let mut r = report_from_samples();
    r.links = (0..=MAX_LINKS).map(|i| LinkReport { name: format!("l{i}"), up: true }).collect();
    check(r, "links");
    let mut r = report_from_samples();
    r.upgrade_status.reason = "x".repeat(MAX_STRING + 1);
    check(r, "upgrade_status.reason");
    let mut r = report_from_samples();
    r.mac = "m".repeat(MAX_STRING + 1);
    check(r, "mac");
    // At the limits, accepted.
    let mut r = report_from_samples();
    r.links = (0..MAX_LINKS).map(|i| LinkReport { name: format!("l{i}"), up: true }).collect();
    r.upgrade_status.reason = "x".repeat(MAX_STRING);
    let bytes = encode(&Envelope::new(1, Message::StatusReport(Box::new(r)))).unwrap();
    assert!(decode(&bytes, MAX_FRAME_DEFAULT).is_ok());
}

#[test]
fn every_message_round_trips() {
    for (i, m) in samples().into_iter().enumerate() {
        let env = Envelope::new(i as u64, m);
        let bytes = encode(&env).unwrap();
        assert_eq!(decode(&bytes, MAX_FRAME_DEFAULT).unwrap(), env, "{}", env.body.kind());
    }
}

#[test]
fn oversized_frame_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_FRAME_DEFAULT + 1];
    assert_eq!(
        decode(&bytes, MAX_FRAME_DEFAULT),
        Err(DecodeError::TooLarge { len: MAX_FRAME_DEFAULT + 1, max: MAX_FRAME_DEFAULT })
    );
}

#[test]
fn unknown_version_is_named() {
    let mut bytes = encode(&Envelope::new(1, Message::UpgradeStateReq(UpgradeStateReq {}))).unwrap();
    bytes[1] = 9;
    assert_eq!(
        decode(&bytes, MAX_FRAME_DEFAULT),
        Err(DecodeError::UnsupportedVersion { got: 9, supported: PROTOCOL_VERSION })
    );
}

#[test]
fn trailing_and_short_frames_are_refused() {
    let mut bytes = encode(&Envelope::new(1, Message::Ack(Ack::ok("x")))).unwrap();
    bytes.push(0);
    assert_eq!(decode(&bytes, MAX_FRAME_DEFAULT), Err(DecodeError::TrailingBytes { extra: 1 }));
    assert_eq!(decode(&[0], MAX_FRAME_DEFAULT), Err(DecodeError::TooShort { len: 1 }));
}

#[test]
fn huge_length_prefix_does_not_allocate() {
    // version 1, request id 0, variant 0, then a string length of 2^60: must fail, not allocate.
    let mut bytes = vec![0, 1, 1, 0, 0];
    bytes.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    assert!(decode(&bytes, MAX_FRAME_DEFAULT).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, MAX_FRAME_DEFAULT);
    }

    #[test]
    fn random_bytes_with_valid_version_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = PROTOCOL_VERSION.to_be_bytes().to_vec();
        bytes.extend(tail);
        let _ = decode(&bytes, MAX_FRAME_DEFAULT);
    }

    #[test]
    fn every_truncation_is_an_error(idx in 0usize..16, cut in 0usize..10_000) {
        let msgs = samples();
        let env = Envelope::new(7, msgs[idx % msgs.len()].clone());
        let bytes = encode(&env).unwrap();
        let cut = cut % bytes.len();
        prop_assert!(decode(&bytes[..cut], MAX_FRAME_DEFAULT).is_err());
    }

    #[test]
    fn bit_flips_never_panic(idx in 0usize..16, pos in 0usize..10_000, bit in 0u8..8) {
        let msgs = samples();
        let mut bytes = encode(&Envelope::new(7, msgs[idx % msgs.len()].clone())).unwrap();
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        let _ = decode(&bytes, MAX_FRAME_DEFAULT);
    }
}
