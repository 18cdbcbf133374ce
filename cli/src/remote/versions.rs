//! `meshlift versions`: the active and standby image of every node (VOLTHA DMI
//! `GetSoftwareVersion` for the whole fleet), with totals per version and per board. The filters
//! are applied by the controller, so the CLI and `GET /api/v1/versions` count the same nodes.

use clap::Args;
use meshlift_protocol::fleet::{FleetVersions, NodeFilter, VersionsReq};
use meshlift_protocol::{Message, SlotReport};
use std::fmt::Write as _;

use super::render::{ago, now_millis, Table};
use super::{read, to_json, ControllerOpts};

/// `meshlift versions`
#[derive(Args, Debug)]
pub struct VersionsArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
    /// Only nodes of these sites (comma separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub site: Vec<String>,
    /// Only nodes of these boards.
    #[arg(long, value_delimiter = ',')]
    pub board: Vec<String>,
    /// Only nodes whose active slot holds one of these versions.
    #[arg(long, value_delimiter = ',')]
    pub version: Vec<String>,
}

pub fn run(args: VersionsArgs) -> u8 {
    let filter =
        NodeFilter { sites: args.site, boards: args.board, versions: args.version, nodes: Vec::new() };
    let opts = args.opts;
    read(&opts, "versions", Message::VersionsReq(VersionsReq { filter }), |reply| match reply {
        Message::FleetVersions(v) => Some(if opts.json { to_json(&v) } else { text(&v, now_millis()) }),
        _ => None,
    })
}

fn slot(s: Option<&SlotReport>) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let v = s.version.as_deref().unwrap_or("empty");
            let mark = match (s.version.is_some(), s.confirmed) {
                (false, _) => "",
                (true, true) => " ✓",
                (true, false) => " (unconfirmed)",
            };
            format!("{}:{v}{mark}", s.slot.as_str())
        }
    }
}

/// The node table, then the totals.
pub fn text(v: &FleetVersions, now: u64) -> String {
    if v.nodes.is_empty() {
        return "No node matches.".into();
    }
    let mut t = Table::new(&["NODE", "SITE", "BOARD", "ACTIVE", "STANDBY", "LAST SEEN"]);
    for n in &v.nodes {
        let mut active = slot(n.active.as_ref());
        if n.on_trial {
            active.push_str(" [standby on trial]");
        }
        let seen =
            if n.online { ago(n.last_seen, now) } else { format!("{} (offline)", ago(n.last_seen, now)) };
        t.row(vec![
            n.name.clone(),
            n.site.clone(),
            n.board.clone().unwrap_or_else(|| "-".into()),
            active,
            slot(n.standby.as_ref()),
            seen,
        ]);
    }
    let mut out = t.render();
    let _ = write!(out, "\n\n{} node(s). ✓ = confirmed by a trial boot on the node.\n", v.nodes.len());
    let mut t = Table::new(&["BOARD", "VERSION", "NODES"]);
    for x in &v.by_board_version {
        t.row(vec![x.board.clone(), x.version.clone(), x.nodes.to_string()]);
    }
    out.push_str(&t.render());
    let per = |m: &std::collections::BTreeMap<String, u32>| {
        m.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
    };
    let _ = write!(out, "\nper version: {}\nper board:   {}", per(&v.by_version), per(&v.by_board));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::fleet::{NodeVersions, VersionTotal};
    use meshlift_protocol::SlotId;

    #[test]
    fn table_marks_confirmed_slots_trials_and_totals() {
        let s =
            |slot, v: &str, confirmed| SlotReport { slot, version: Some(v.into()), sha256: None, confirmed };
        let v = FleetVersions {
            nodes: vec![NodeVersions {
                name: "n1".into(),
                site: "S1".into(),
                board: Some("rev5".into()),
                online: true,
                active: Some(s(SlotId::A, "1.0", true)),
                standby: Some(s(SlotId::B, "2.0", false)),
                on_trial: true,
                last_seen: Some(1_000),
            }],
            by_version: [("1.0".to_string(), 1)].into(),
            by_board: [("rev5".to_string(), 1)].into(),
            by_board_version: vec![VersionTotal { board: "rev5".into(), version: "1.0".into(), nodes: 1 }],
        };
        let out = text(&v, 3_000);
        assert!(out.contains("a:1.0 ✓ [standby on trial]"), "{out}");
        assert!(out.contains("b:2.0 (unconfirmed)"), "{out}");
        assert!(out.contains("per version: 1.0: 1"), "{out}");
        assert!(out.contains("rev5"), "{out}");
    }
}
