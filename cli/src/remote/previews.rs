//! What a destructive command would do, asked from the controller before it is sent (the
//! `--dry-run` output and the text shown before the question): the commit planner's batches for
//! the nodes it reboots, their versions now, the record it deletes.

use meshlift_protocol::fleet::{FleetVersions, ImageRecordsReq, NodeFilter, SnapshotShowReq, VersionsReq};
use meshlift_protocol::{GoldenShowReq, Message, UpgradeCommitPlanReq, UpgradeGroupType};
use std::fmt::Write as _;

use super::connection::Controller;
use super::group_req::Target;
use super::{render, versions};

fn ask(ctrl: &Controller, m: Message) -> Result<Message, String> {
    match ctrl.call(m) {
        Ok(Message::Ack(a)) if !a.success => Err(format!("refused by the controller: {}", a.message)),
        Ok(m) => Ok(m),
        Err(e) => Err(e.to_string()),
    }
}

fn fleet(ctrl: &Controller, filter: NodeFilter) -> Result<FleetVersions, String> {
    match ask(ctrl, Message::VersionsReq(VersionsReq { filter }))? {
        Message::FleetVersions(v) => Ok(v),
        other => Err(format!("unexpected {} reply", other.kind())),
    }
}

/// The target's node names, from the controller's node table.
fn target_nodes(ctrl: &Controller, target: &Target) -> Result<Vec<String>, String> {
    let all = fleet(ctrl, NodeFilter::default())?;
    Ok(all
        .nodes
        .into_iter()
        .map(|n| n.name)
        .filter(|n| match target.ug_type {
            UpgradeGroupType::Nodes => target.names.contains(n),
            UpgradeGroupType::Network => !target.names.contains(n),
        })
        .collect())
}

/// The target's versions now, then the commit planner's batches for it (`version`: only nodes
/// flashed with it count, as a COMMIT would filter them).
pub fn reboot(
    ctrl: &Controller,
    what: &str,
    target: &Target,
    plan: UpgradeCommitPlanReq,
) -> Result<String, String> {
    let nodes = target_nodes(ctrl, target)?;
    let all = fleet(ctrl, NodeFilter::default())?;
    let exclude: Vec<String> =
        all.nodes.iter().map(|n| n.name.clone()).filter(|n| !nodes.contains(n)).collect();
    let now = fleet(ctrl, NodeFilter { nodes: nodes.clone(), ..Default::default() })?;
    let mut out = format!("{what} on {} node(s). Their versions now:\n", nodes.len());
    out.push_str(&versions::text(&now, render::now_millis()));
    let req = UpgradeCommitPlanReq { exclude_nodes: exclude, ..plan };
    match ask(ctrl, Message::UpgradeCommitPlanReq(req))? {
        Message::UpgradeCommitPlan(p) => {
            out.push_str("\n\nReboots, in the controller's commit plan (on the live topology now):\n");
            out.push_str(&render::plan_text(&p));
        }
        other => return Err(format!("unexpected {} reply", other.kind())),
    }
    Ok(out)
}

/// A reset: which nodes lose their downloads and scheduled reboots.
pub fn reset(ctrl: &Controller, target: &Target) -> Result<String, String> {
    let nodes = target_nodes(ctrl, target)?;
    Ok(format!(
        "RESET_STATUS to {} node(s): downloads and scheduled reboots are cancelled, nodes back to NONE:\n{}",
        nodes.len(),
        nodes.join(", ")
    ))
}

/// The image record to delete, and the nodes that run it.
pub fn image_del(ctrl: &Controller, name: &str) -> Result<String, String> {
    let recs = match ask(ctrl, Message::ImageRecordsReq(ImageRecordsReq::default()))? {
        Message::ImageRecords(r) => r,
        other => return Err(format!("unexpected {} reply", other.kind())),
    };
    let Some(rec) = recs.images.iter().find(|r| r.image.name == name) else {
        return Err(format!("no image named {name:?} in the controller's store"));
    };
    let users = fleet(ctrl, NodeFilter { versions: vec![rec.image.version.clone()], ..Default::default() })?;
    let mut out = String::from("Deletes this image record and its file (nodes keep what they run):\n");
    let one = meshlift_protocol::fleet::ImageRecords { images: vec![rec.clone()] };
    out.push_str(&render::images_table(&one, false));
    let _ = write!(out, "\n{} node(s) run version {} now.", users.nodes.len(), rec.image.version);
    Ok(out)
}

/// A golden target change: the image, the board's current target, the board's versions.
pub fn golden_set(ctrl: &Controller, board: Option<&str>, image: &str) -> Result<String, String> {
    let mut out = format!("Golden target of {} → {image}", board.unwrap_or("every board the image supports"));
    if let Message::GoldenShow(g) = ask(ctrl, Message::GoldenShowReq(GoldenShowReq {}))? {
        for b in g.boards.iter().filter(|b| board.is_none_or(|x| x == b.board)) {
            let _ = write!(out, "\n  {}: now {} ({} node(s) behind it)", b.board, b.image, b.behind);
        }
        let _ = write!(
            out,
            "\nThe loop is {}: {}",
            if g.enabled { "enabled" } else { "disabled" },
            if g.enabled && !g.paused {
                "it will start upgrading (canary first) at its next check inside the window"
            } else {
                "nothing is upgraded until it is enabled and resumed"
            }
        );
    }
    let filter =
        NodeFilter { boards: board.map(|b| vec![b.to_string()]).unwrap_or_default(), ..Default::default() };
    let v = fleet(ctrl, filter)?;
    let per = v.by_version.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ");
    let _ = write!(out, "\nNodes per active version now: {per}");
    Ok(out)
}

/// The snapshot to delete.
pub fn snapshot_del(ctrl: &Controller, name: &str) -> Result<String, String> {
    match ask(ctrl, Message::SnapshotShowReq(SnapshotShowReq { name: Some(name.to_string()) }))? {
        Message::Snapshots(s) => Ok(format!(
            "Deletes this snapshot (the images stay):\n{}",
            super::snapshot::show_text(&s.snapshots, true)
        )),
        other => Err(format!("unexpected {} reply", other.kind())),
    }
}
