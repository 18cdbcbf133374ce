//! Snapshots of what runs where, and their restore (Cray FAS `/snapshots`, issue 17 item 4).
//!
//! A snapshot records, per node, the image of its active slot (version and sha256), its standby,
//! the controller image that carries that version, and when. Restoring it is a *campaign*: the
//! nodes whose active version differs get the recorded image through the golden-image
//! reconciler's per-node targets ([`crate::golden::Restore`]), one FULL_UPGRADE request per image,
//! planned, batched, judged and journaled by the engine like any other request. A downgrade is
//! allowed there only because an operator asked for this restore, and the request says so.
//!
//! The pure part ([`take`], [`campaign`]) works on the node table and the image list, so a unit
//! test drives it with made-up rows and a fake clock; [`command`] is the glue the shell calls.

use std::collections::BTreeMap;

use meshlift_protocol::fleet::{
    CampaignStep, NodeFilter, RestoreStatus, Snapshot, SnapshotCampaign, SnapshotCmd, SnapshotImage,
    SnapshotNode, SnapshotReq, Snapshots,
};
use meshlift_protocol::{Ack, Message, NodeReason, NodeStatusRow, Operator, UpgradeImage};

use crate::engine::Engine;
use crate::golden::{GoldenVersion, NodeTarget, Reconciler};

/// Snapshots kept at most (each is one row per node; a controller is not an archive).
pub const MAX_SNAPSHOTS: usize = 256;

/// Why a snapshot command was refused: the operator's input or the store's contents, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot name {0:?} is not 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("a snapshot named {0:?} exists; delete it first or pick another name")]
    Exists(String),
    #[error("no snapshot named {0:?} (see `meshlift snapshot list`)")]
    Unknown(String),
    #[error("the filter names {0:?}, which is not a node of the topology")]
    UnknownNode(String),
    #[error("no node matches the filter with a reported active image: nothing to record")]
    Empty,
    #[error("{MAX_SNAPSHOTS} snapshots stored already; delete old ones first")]
    Full,
    /// The image a node needs is gone from the store: the restore cannot be carried out.
    #[error("snapshot {snapshot:?} needs images the store no longer holds: {missing}; add them back first (meshlift image add)")]
    MissingImages { snapshot: String, missing: String },
    #[error("nothing to restore: every node of snapshot {0:?} runs its recorded version (or is left out)")]
    NothingToDo(String),
    #[error("a restore is running already (snapshot {0:?}); wait for it to finish")]
    RestoreRunning(String),
}

/// Check a snapshot name.
pub fn check_name(name: &str) -> Result<(), SnapshotError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::BadName(name.chars().take(65).collect()))
    }
}

/// Record what the nodes of `rows` that pass `filter` run now. A node that never reported, or
/// whose active slot holds no version, is listed in `skipped` with why (a restore leaves it alone).
pub fn take(
    name: &str,
    filter: &NodeFilter,
    rows: &[NodeStatusRow],
    images: &[UpgradeImage],
    operator: &Operator,
    now: u64,
) -> Result<Snapshot, SnapshotError> {
    check_name(name)?;
    if let Some(n) = filter.nodes.iter().find(|n| !rows.iter().any(|r| &r.name == *n)) {
        return Err(SnapshotError::UnknownNode(n.clone()));
    }
    let mut snap = Snapshot {
        name: name.to_string(),
        created_at: now,
        created_by: operator.who.clone(),
        reason: operator.reason.clone(),
        filter: filter.clone(),
        nodes: Vec::new(),
        skipped: Vec::new(),
    };
    for r in rows {
        let active = r.slots.as_ref().map(|s| s.slot(s.active));
        let version = active.and_then(|a| a.version.as_deref());
        if !filter.matches(&r.name, &r.site, r.board.as_deref(), version) {
            continue;
        }
        let (Some(slots), Some(board), Some(active), Some(version)) = (&r.slots, &r.board, active, version)
        else {
            snap.skipped.push(NodeReason {
                node: r.name.clone(),
                reason: "never reported: no image to record".into(),
            });
            continue;
        };
        let standby = slots.slot(slots.active.other());
        let image_name = image_for(images, version, active.sha256.as_ref()).map(|i| i.name.clone());
        snap.nodes.push(SnapshotNode {
            node: r.name.clone(),
            site: r.site.clone(),
            board: board.clone(),
            active: SnapshotImage {
                version: version.to_string(),
                sha256: active.sha256,
                confirmed: active.confirmed,
            },
            standby: standby.version.as_ref().map(|v| SnapshotImage {
                version: v.clone(),
                sha256: standby.sha256,
                confirmed: standby.confirmed,
            }),
            image_name,
            config_digest: r.startup_config,
            reported_at: r.last_seen.unwrap_or(now),
        });
    }
    if snap.nodes.is_empty() {
        return Err(SnapshotError::Empty);
    }
    Ok(snap)
}

/// The stored image carrying `version`: the one whose file hash matches the slot's, else the
/// first of that version by name.
fn image_for<'a>(
    images: &'a [UpgradeImage],
    version: &str,
    sha: Option<&meshlift_protocol::Sha256Digest>,
) -> Option<&'a UpgradeImage> {
    let same: Vec<&UpgradeImage> = images.iter().filter(|i| i.version == version).collect();
    same.iter().find(|i| Some(&i.sha256) == sha).or(same.first()).copied()
}

/// What restoring `snap` takes now: per node the image it needs, the nodes already there, the
/// nodes left out and why, and the images missing from the store (named as the snapshot recorded
/// them). `plan` is left empty: the engine's commit planner fills it ([`Engine::commit_plan`]).
pub fn campaign(snap: &Snapshot, rows: &[NodeStatusRow], images: &[UpgradeImage]) -> SnapshotCampaign {
    let by_name: BTreeMap<&str, &NodeStatusRow> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut c = SnapshotCampaign { snapshot: snap.name.clone(), ..Default::default() };
    for n in &snap.nodes {
        let Some(row) = by_name.get(n.node.as_str()) else {
            c.left_out
                .push(NodeReason { node: n.node.clone(), reason: "not in the topology any more".into() });
            continue;
        };
        let Some(slots) = &row.slots else {
            c.left_out.push(NodeReason {
                node: n.node.clone(),
                reason: "has not reported since the controller started".into(),
            });
            continue;
        };
        let active = slots.slot(slots.active);
        let now_version = active.confirmed.then(|| active.version.clone()).flatten();
        if now_version.as_deref() == Some(n.active.version.as_str()) {
            c.unchanged.push(n.node.clone());
            continue;
        }
        if !row.online {
            c.left_out.push(NodeReason { node: n.node.clone(), reason: "offline".into() });
            continue;
        }
        let image = image_for(images, &n.active.version, n.active.sha256.as_ref()).map(|i| i.name.clone());
        if image.is_none() {
            let missing = n.image_name.clone().unwrap_or_else(|| format!("version {}", n.active.version));
            if !c.missing_images.contains(&missing) {
                c.missing_images.push(missing);
            }
        }
        let order = |v: &str| GoldenVersion::parse(v).ok();
        let downgrade = match (now_version.as_deref().and_then(order), order(&n.active.version)) {
            (Some(from), Some(to)) => to < from,
            _ => false,
        };
        c.steps.push(CampaignStep {
            node: n.node.clone(),
            from_version: now_version,
            to_version: n.active.version.clone(),
            image,
            downgrade,
        });
    }
    c
}

/// Targets for the reconciler from a campaign without missing images.
pub fn targets(c: &SnapshotCampaign) -> BTreeMap<String, NodeTarget> {
    c.steps
        .iter()
        .filter_map(|s| {
            let image = s.image.clone()?;
            Some((s.node.clone(), NodeTarget { image, version: s.to_version.clone() }))
        })
        .collect()
}

/// `meshlift snapshot …` on the controller (role already checked by the shell): create, delete
/// and restore go through the engine's store and journal; a restore starts the reconciler's
/// per-node targets.
pub fn command(engine: &mut Engine, golden: &mut Reconciler, req: SnapshotReq, now: u64) -> Message {
    let SnapshotReq { cmd, operator } = req;
    let refused = |engine: &mut Engine, e: SnapshotError, what: &str| {
        engine.journal_command(&operator, format!("snapshot: refused {what}: {e}"), now);
        Message::Ack(Ack::refused(e.to_string()))
    };
    match cmd {
        SnapshotCmd::Create { name, filter } => {
            match engine.create_snapshot(&name, &filter, &operator, now) {
                Ok(msg) => Message::Ack(Ack::ok(msg)),
                Err(e) => refused(engine, e, &format!("create {name}")),
            }
        }
        SnapshotCmd::Delete { name } => match engine.delete_snapshot(&name, &operator, now) {
            Ok(msg) => Message::Ack(Ack::ok(msg)),
            Err(e) => refused(engine, e, &format!("delete {name}")),
        },
        SnapshotCmd::Restore { name, dry_run } => {
            let c = match engine.snapshot_campaign(&name, now) {
                Ok(c) => c,
                Err(e) => return refused(engine, e, &format!("restore {name}")),
            };
            if dry_run {
                return Message::SnapshotCampaign(Box::new(c));
            }
            if !c.missing_images.is_empty() {
                let e = SnapshotError::MissingImages {
                    snapshot: name.clone(),
                    missing: c.missing_images.join(", "),
                };
                return refused(engine, e, &format!("restore {name}"));
            }
            if c.steps.is_empty() {
                return refused(engine, SnapshotError::NothingToDo(name.clone()), &format!("restore {name}"));
            }
            if let Some(r) = golden.restore() {
                let e = SnapshotError::RestoreRunning(r.snapshot.clone());
                return refused(engine, e, &format!("restore {name}"));
            }
            let downgrades = c.steps.iter().filter(|s| s.downgrade).count();
            let msg = format!(
                "restore of snapshot {name} started: {} node(s) to change ({downgrades} downgrade(s), allowed because \
                 {} asked for this restore), {} unchanged, {} left out; {} commit batch(es) planned now",
                c.steps.len(),
                if operator.who.is_empty() { "the operator" } else { operator.who.as_str() },
                c.unchanged.len(),
                c.left_out.len(),
                c.plan.commit_batches.len()
            );
            engine.journal_command(&operator, format!("snapshot: {msg}"), now);
            let actions = golden.start_restore(&name, targets(&c), &operator, now);
            crate::golden::drive::apply_actions(engine, golden, actions, now);
            Message::Ack(Ack::ok(msg))
        }
    }
}

/// `meshlift snapshot list|show`, with the restore in progress.
pub fn show(engine: &Engine, golden: &Reconciler, name: Option<&str>) -> Message {
    let restore = golden.restore().map(|r| RestoreStatus {
        snapshot: r.snapshot.clone(),
        started_at: r.started_at,
        who: r.who.clone(),
        pending: r
            .targets
            .keys()
            .filter(|n| !r.restored.contains(*n) && !r.failed.contains_key(*n))
            .cloned()
            .collect(),
        restored: r.restored.iter().cloned().collect(),
        failed: r.failed.iter().map(|(n, why)| NodeReason { node: n.clone(), reason: why.clone() }).collect(),
        request_id: r.in_flight.clone(),
    });
    match name {
        None => Message::Snapshots(Snapshots { snapshots: engine.snapshots().cloned().collect(), restore }),
        Some(n) => match engine.snapshots().find(|s| s.name == n) {
            Some(s) => Message::Snapshots(Snapshots { snapshots: vec![s.clone()], restore }),
            None => Message::Ack(Ack::refused(SnapshotError::Unknown(n.to_string()).to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::{Sha256Digest, SlotId, SlotReport, SlotsReport};

    const T0: u64 = 1_700_000_000_000;

    fn row(
        name: &str,
        site: &str,
        active: Option<&str>,
        standby: Option<&str>,
        online: bool,
    ) -> NodeStatusRow {
        let slot = |slot, v: Option<&str>| SlotReport {
            slot,
            version: v.map(str::to_string),
            sha256: v.map(|v| Sha256Digest([v.len() as u8; 32])),
            confirmed: v.is_some(),
        };
        NodeStatusRow {
            name: name.into(),
            site: site.into(),
            mac: String::new(),
            online,
            is_pop: false,
            board: active.map(|_| "rev5".to_string()),
            version: active.map(str::to_string),
            slots: active.map(|a| SlotsReport {
                active: SlotId::A,
                booted: SlotId::A,
                a: slot(SlotId::A, Some(a)),
                b: slot(SlotId::B, standby),
            }),
            upgrade_status: None,
            startup_config: None,
            last_seen: Some(T0 - 1_000),
        }
    }

    fn img(v: &str) -> UpgradeImage {
        UpgradeImage {
            name: v.into(),
            version: v.into(),
            magnet_uri: String::new(),
            http_uri: String::new(),
            sha256: Sha256Digest([9; 32]),
            size: 1,
            hardware_board_ids: vec!["rev5".into()],
        }
    }

    fn vera() -> Operator {
        Operator { who: "vera".into(), reason: Some("before the v2 rollout".into()) }
    }

    #[test]
    fn a_snapshot_records_active_and_standby_per_matching_node_and_says_who_was_skipped() {
        let rows = vec![
            row("a1", "A", Some("1.0.0"), None, true),
            row("a2", "A", None, None, false),
            row("b1", "B", Some("1.0.0"), Some("0.9.0"), true),
        ];
        let all = take("before-v2", &NodeFilter::default(), &rows, &[img("1.0.0")], &vera(), T0).unwrap();
        assert_eq!(all.nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["a1", "b1"]);
        assert_eq!(
            all.skipped,
            [NodeReason { node: "a2".into(), reason: "never reported: no image to record".into() }]
        );
        let b1 = &all.nodes[1];
        assert_eq!(b1.active.version, "1.0.0");
        assert_eq!(b1.standby.as_ref().unwrap().version, "0.9.0");
        assert_eq!(b1.image_name.as_deref(), Some("1.0.0"));
        assert_eq!((all.created_at, all.created_by.as_str(), b1.reported_at), (T0, "vera", T0 - 1_000));
        assert_eq!(b1.config_digest, None);

        let site_b = NodeFilter { sites: vec!["B".into()], ..Default::default() };
        assert_eq!(take("b", &site_b, &rows, &[], &vera(), T0).unwrap().nodes.len(), 1);
        let ghost = NodeFilter { nodes: vec!["zz".into()], ..Default::default() };
        assert_eq!(take("g", &ghost, &rows, &[], &vera(), T0), Err(SnapshotError::UnknownNode("zz".into())));
        let none = NodeFilter { boards: vec!["rev9".into()], ..Default::default() };
        assert_eq!(take("n", &none, &rows, &[], &vera(), T0), Err(SnapshotError::Empty));
        assert!(matches!(
            take("bad name", &NodeFilter::default(), &rows, &[], &vera(), T0),
            Err(SnapshotError::BadName(_))
        ));
    }

    #[test]
    fn the_campaign_lists_changes_downgrades_unchanged_left_out_and_missing_images() {
        let before = vec![
            row("a1", "A", Some("1.0.0"), None, true),
            row("a2", "A", Some("1.0.0"), None, true),
            row("b1", "B", Some("0.9.0"), None, true),
            row("c1", "C", Some("1.0.0"), None, true),
        ];
        let store = [img("1.0.0"), img("0.9.0"), img("2.0.0")];
        let snap = take("s", &NodeFilter::default(), &before, &store, &vera(), T0).unwrap();
        // Later: a1 and b1 upgraded to 2.0.0, a2 untouched, c1 offline on 2.0.0.
        let after = vec![
            row("a1", "A", Some("2.0.0"), Some("1.0.0"), true),
            row("a2", "A", Some("1.0.0"), None, true),
            row("b1", "B", Some("2.0.0"), Some("0.9.0"), true),
            row("c1", "C", Some("2.0.0"), None, false),
        ];
        let c = campaign(&snap, &after, &store);
        assert_eq!(c.unchanged, ["a2"]);
        assert_eq!(c.left_out, [NodeReason { node: "c1".into(), reason: "offline".into() }]);
        assert_eq!(
            c.steps,
            [
                CampaignStep {
                    node: "a1".into(),
                    from_version: Some("2.0.0".into()),
                    to_version: "1.0.0".into(),
                    image: Some("1.0.0".into()),
                    downgrade: true
                },
                CampaignStep {
                    node: "b1".into(),
                    from_version: Some("2.0.0".into()),
                    to_version: "0.9.0".into(),
                    image: Some("0.9.0".into()),
                    downgrade: true
                },
            ]
        );
        assert!(c.missing_images.is_empty());
        assert_eq!(targets(&c)["b1"], NodeTarget { image: "0.9.0".into(), version: "0.9.0".into() });

        // 0.9.0 deleted from the store since: the campaign names the image as recorded.
        let c = campaign(&snap, &after, &[img("1.0.0"), img("2.0.0")]);
        assert_eq!(c.missing_images, ["0.9.0"]);
        assert_eq!(c.steps[1].image, None);
        assert_eq!(targets(&c).len(), 1, "a node without an image gets no target");
    }
}
