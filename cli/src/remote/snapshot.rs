//! `meshlift snapshot …`: what runs where, recorded and restored (Cray FAS snapshots).
//!
//! `list` and `show` need the viewer role, `create` and `restore` the operator role, `delete`
//! admin. `restore` and `delete` show what they will do and ask first (see [`super::confirm`]);
//! `restore --dry-run` prints the campaign: which nodes need which image, the images missing from
//! the controller's store, and the commit planner's batches.

use clap::{Args, Subcommand};
use meshlift_protocol::fleet::{
    NodeFilter, Snapshot, SnapshotCampaign, SnapshotCmd, SnapshotReq, SnapshotShowReq,
};
use meshlift_protocol::Message;
use std::fmt::Write as _;

use super::confirm::{guard, ConfirmOpts, Go};
use super::render::Table;
use super::{command, group_req, read, to_json, ControllerOpts, EXIT_OK, READ_TIMEOUT};

/// `meshlift snapshot …`
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Record the active and standby image of every matching node (all nodes without filters).
    Create {
        name: String,
        /// Only nodes of these sites (comma separated or repeated).
        #[arg(long, value_delimiter = ',')]
        site: Vec<String>,
        /// Only nodes of these boards.
        #[arg(long, value_delimiter = ',')]
        board: Vec<String>,
        /// Only these nodes.
        #[arg(long, short = 'n', value_delimiter = ',')]
        node: Vec<String>,
    },
    /// Every snapshot: name, when, who, why, nodes, versions.
    List,
    /// One snapshot, node by node.
    Show { name: String },
    /// Forget a snapshot (admin); the images stay.
    Delete {
        name: String,
        #[command(flatten)]
        confirm: ConfirmOpts,
    },
    /// Bring every node of the snapshot back to its recorded image, through the golden-image
    /// reconciler (downgrades allowed for this restore only); `--dry-run` prints the campaign.
    Restore {
        name: String,
        #[command(flatten)]
        confirm: ConfirmOpts,
    },
}

pub fn run(args: SnapshotArgs) -> u8 {
    let opts = args.opts;
    let operator = || group_req::operator(opts.reason.clone());
    match args.command {
        SnapshotCommand::Create { name, site, board, node } => {
            let filter = NodeFilter { sites: site, boards: board, versions: Vec::new(), nodes: node };
            let msg = Message::SnapshotReq(SnapshotReq {
                cmd: SnapshotCmd::Create { name, filter },
                operator: operator(),
            });
            command(&opts, READ_TIMEOUT, "snapshot create", msg)
        }
        SnapshotCommand::List => show(&opts, None),
        SnapshotCommand::Show { name } => show(&opts, Some(name)),
        SnapshotCommand::Delete { name, confirm } => {
            if let Go::Exit(code) =
                guard(&opts, &confirm, "snapshot delete", |ctrl| super::previews::snapshot_del(ctrl, &name))
            {
                return code;
            }
            let msg =
                Message::SnapshotReq(SnapshotReq { cmd: SnapshotCmd::Delete { name }, operator: operator() });
            command(&opts, READ_TIMEOUT, "snapshot delete", msg)
        }
        SnapshotCommand::Restore { name, confirm } => {
            if confirm.dry_run {
                return dry_run(&opts, &name);
            }
            let preview = |ctrl: &super::connection::Controller| {
                let req = SnapshotReq {
                    cmd: SnapshotCmd::Restore { name: name.clone(), dry_run: true },
                    operator: operator(),
                };
                match ctrl.call(Message::SnapshotReq(req)) {
                    Ok(Message::SnapshotCampaign(c)) => Ok(campaign_text(&c)),
                    Ok(Message::Ack(a)) => Err(format!("refused by the controller: {}", a.message)),
                    Ok(other) => Err(format!("unexpected {} reply", other.kind())),
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Go::Exit(code) = guard(&opts, &confirm, "snapshot restore", preview) {
                return code;
            }
            let msg = Message::SnapshotReq(SnapshotReq {
                cmd: SnapshotCmd::Restore { name, dry_run: false },
                operator: operator(),
            });
            command(&opts, READ_TIMEOUT, "snapshot restore", msg)
        }
    }
}

fn dry_run(opts: &ControllerOpts, name: &str) -> u8 {
    let req = SnapshotReq {
        cmd: SnapshotCmd::Restore { name: name.to_string(), dry_run: true },
        operator: group_req::operator(opts.reason.clone()),
    };
    let code = read(opts, "snapshot restore --dry-run", Message::SnapshotReq(req), |reply| match reply {
        Message::SnapshotCampaign(c) => Some(if opts.json { to_json(&c) } else { campaign_text(&c) }),
        _ => None,
    });
    if code == EXIT_OK && !opts.json {
        emit!("(dry run: nothing was changed)");
    }
    code
}

fn show(opts: &ControllerOpts, name: Option<String>) -> u8 {
    let whole = name.is_some();
    read(opts, "snapshot", Message::SnapshotShowReq(SnapshotShowReq { name }), |reply| match reply {
        Message::Snapshots(s) => Some(if opts.json {
            to_json(&s)
        } else {
            let mut t = show_text(&s.snapshots, whole);
            if let Some(r) = &s.restore {
                let _ = write!(
                    t,
                    "\n\nRestore of {} running (asked by {}): {} pending, {} restored, {} failed{}",
                    r.snapshot,
                    r.who,
                    r.pending.len(),
                    r.restored.len(),
                    r.failed.len(),
                    r.request_id.as_deref().map_or(String::new(), |id| format!("; request {id} in flight"))
                );
                for f in &r.failed {
                    let _ = write!(t, "\n  {}: {}", f.node, f.reason);
                }
            }
            t
        }),
        _ => None,
    })
}

/// A summary line per snapshot; with `nodes`, every node of each.
pub fn show_text(snaps: &[Snapshot], nodes: bool) -> String {
    if snaps.is_empty() {
        return "No snapshots.".into();
    }
    let mut t = Table::new(&["NAME", "TAKEN", "BY", "NODES", "VERSIONS", "REASON"]);
    for s in snaps {
        let mut versions: Vec<&str> = s.nodes.iter().map(|n| n.active.version.as_str()).collect();
        versions.sort();
        versions.dedup();
        t.row(vec![
            s.name.clone(),
            super::render::ago(Some(s.created_at), super::render::now_millis()),
            s.created_by.clone(),
            s.nodes.len().to_string(),
            versions.join(","),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut out = t.render();
    if nodes {
        for s in snaps {
            let mut t = Table::new(&["NODE", "SITE", "BOARD", "ACTIVE", "STANDBY", "IMAGE", "SHA256"]);
            for n in &s.nodes {
                t.row(vec![
                    n.node.clone(),
                    n.site.clone(),
                    n.board.clone(),
                    n.active.version.clone(),
                    n.standby.as_ref().map_or("-".into(), |s| s.version.clone()),
                    n.image_name.clone().unwrap_or_else(|| "(none stored)".into()),
                    n.active.sha256.map_or("-".into(), |d| d.short()),
                ]);
            }
            let _ = write!(out, "\n\n{}:\n{}", s.name, t.render());
            for r in &s.skipped {
                let _ = write!(out, "\n  skipped {}: {}", r.node, r.reason);
            }
        }
    }
    out
}

/// The restore campaign: changes, missing images, left out, batches.
pub fn campaign_text(c: &SnapshotCampaign) -> String {
    let mut out = format!("Restore of snapshot {}: {} node(s) to change\n", c.snapshot, c.steps.len());
    if !c.steps.is_empty() {
        let mut t = Table::new(&["NODE", "FROM", "TO", "IMAGE", ""]);
        for s in &c.steps {
            t.row(vec![
                s.node.clone(),
                s.from_version.clone().unwrap_or_else(|| "?".into()),
                s.to_version.clone(),
                s.image.clone().unwrap_or_else(|| "MISSING".into()),
                if s.downgrade { "downgrade".into() } else { String::new() },
            ]);
        }
        out.push_str(&t.render());
    }
    if !c.missing_images.is_empty() {
        let _ = write!(
            out,
            "\nMissing from the image store (the restore is refused until they are added back): {}",
            c.missing_images.join(", ")
        );
    }
    if !c.unchanged.is_empty() {
        let _ = write!(out, "\nAlready on their recorded version: {}", c.unchanged.join(", "));
    }
    for r in &c.left_out {
        let _ = write!(out, "\nLeft out: {}: {}", r.node, r.reason);
    }
    if !c.steps.is_empty() {
        out.push_str("\n\n");
        out.push_str(&super::render::plan_text(&c.plan));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::fleet::CampaignStep;

    #[test]
    fn campaign_text_names_missing_images_downgrades_and_batches() {
        let c = SnapshotCampaign {
            snapshot: "before-v2".into(),
            steps: vec![CampaignStep {
                node: "n1".into(),
                from_version: Some("2.0.0".into()),
                to_version: "1.0.0".into(),
                image: None,
                downgrade: true,
            }],
            missing_images: vec!["1.0.0".into()],
            plan: meshlift_protocol::UpgradeCommitPlan {
                commit_batches: vec![vec!["n1".into()]],
                ..Default::default()
            },
            ..Default::default()
        };
        let t = campaign_text(&c);
        for want in [
            "1 node(s) to change",
            "MISSING",
            "downgrade",
            "refused until they are added back): 1.0.0",
            "1 batch(es)",
        ] {
            assert!(t.contains(want), "{want} missing:\n{t}");
        }
    }
}
