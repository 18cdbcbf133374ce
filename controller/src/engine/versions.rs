//! `meshlift versions` (VOLTHA DMI `GetSoftwareVersion` for the whole fleet): per node the image
//! of its active slot and of its standby slot, confirmed or not, with totals per version and
//! board. Computed from the node table ([`Engine::node_status`]), so the CLI, the API and the
//! dashboard count the same nodes the same way.

use std::collections::BTreeMap;

use meshlift_protocol::fleet::{FleetVersions, NodeFilter, NodeVersions, VersionTotal};
use meshlift_protocol::NodeStatusRow;

use super::Engine;

/// Name under which nodes without a report are counted in the totals.
pub const UNKNOWN: &str = "unknown";

impl Engine {
    /// The fleet's versions, filtered.
    pub fn fleet_versions(&self, filter: &NodeFilter, now: u64) -> FleetVersions {
        versions(&self.node_status(now).nodes, filter)
    }
}

/// The rows of `rows` that pass `filter` (site, board, **active** version, node), with totals.
/// The active slot is the one the node boots when no trial is pending: during a trial the node
/// runs its standby, and counting that as "its version" would count an image that may fall back.
pub fn versions(rows: &[NodeStatusRow], filter: &NodeFilter) -> FleetVersions {
    let mut out = FleetVersions::default();
    let mut pairs: BTreeMap<(String, String), u32> = BTreeMap::new();
    for r in rows {
        let active = r.slots.as_ref().map(|s| s.slot(s.active).clone());
        let standby = r.slots.as_ref().map(|s| s.slot(s.active.other()).clone());
        let active_version = active.as_ref().and_then(|a| a.version.as_deref());
        if !filter.matches(&r.name, &r.site, r.board.as_deref(), active_version) {
            continue;
        }
        let version = active_version.unwrap_or(UNKNOWN).to_string();
        let board = r.board.clone().unwrap_or_else(|| UNKNOWN.to_string());
        *out.by_version.entry(version.clone()).or_default() += 1;
        *out.by_board.entry(board.clone()).or_default() += 1;
        *pairs.entry((board, version)).or_default() += 1;
        out.nodes.push(NodeVersions {
            name: r.name.clone(),
            site: r.site.clone(),
            board: r.board.clone(),
            online: r.online,
            on_trial: r.slots.as_ref().is_some_and(|s| s.booted != s.active),
            active,
            standby,
            last_seen: r.last_seen,
        });
    }
    out.by_board_version =
        pairs.into_iter().map(|((board, version), nodes)| VersionTotal { board, version, nodes }).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::{SlotId, SlotReport, SlotsReport};

    fn row(
        name: &str,
        site: &str,
        board: Option<&str>,
        active: Option<(&str, bool)>,
        standby: Option<&str>,
    ) -> NodeStatusRow {
        let slots = active.map(|(v, confirmed)| SlotsReport {
            active: SlotId::B,
            booted: SlotId::B,
            a: SlotReport {
                slot: SlotId::A,
                version: standby.map(str::to_string),
                sha256: None,
                confirmed: true,
            },
            b: SlotReport { slot: SlotId::B, version: Some(v.into()), sha256: None, confirmed },
        });
        NodeStatusRow {
            name: name.into(),
            site: site.into(),
            mac: String::new(),
            online: slots.is_some(),
            is_pop: false,
            board: board.map(str::to_string),
            version: active.map(|(v, _)| v.to_string()),
            slots,
            upgrade_status: None,
            startup_config: None,
            last_seen: None,
        }
    }

    fn fleet() -> Vec<NodeStatusRow> {
        vec![
            row("a1", "A", Some("rev5"), Some(("2.0", true)), Some("1.0")),
            row("a2", "A", Some("rev5"), Some(("1.0", true)), None),
            row("b1", "B", Some("rev6"), Some(("2.0", false)), Some("1.0")),
            row("c1", "C", None, None, None),
        ]
    }

    #[test]
    fn every_node_is_listed_with_active_and_standby_and_counted_once() {
        let v = versions(&fleet(), &NodeFilter::default());
        assert_eq!(v.nodes.len(), 4);
        let a1 = &v.nodes[0];
        assert_eq!(a1.active.as_ref().unwrap().version.as_deref(), Some("2.0"));
        assert_eq!(a1.standby.as_ref().unwrap().version.as_deref(), Some("1.0"));
        assert!(!v.nodes[2].active.as_ref().unwrap().confirmed, "b1's active slot was never confirmed");
        assert_eq!(
            v.by_version,
            BTreeMap::from([("1.0".into(), 1), ("2.0".into(), 2), ("unknown".into(), 1)])
        );
        assert_eq!(
            v.by_board,
            BTreeMap::from([("rev5".into(), 2), ("rev6".into(), 1), ("unknown".into(), 1)])
        );
        let total: u32 = v.by_board_version.iter().map(|t| t.nodes).sum();
        assert_eq!(total, 4);
        assert!(v.by_board_version.contains(&VersionTotal {
            board: "rev5".into(),
            version: "2.0".into(),
            nodes: 1
        }));
    }

    #[test]
    fn filters_combine_site_board_and_active_version() {
        let f = |sites: &[&str], boards: &[&str], versions_: &[&str]| NodeFilter {
            sites: sites.iter().map(|s| s.to_string()).collect(),
            boards: boards.iter().map(|s| s.to_string()).collect(),
            versions: versions_.iter().map(|s| s.to_string()).collect(),
            nodes: Vec::new(),
        };
        let names = |v: FleetVersions| v.nodes.into_iter().map(|n| n.name).collect::<Vec<_>>();
        assert_eq!(names(versions(&fleet(), &f(&["A"], &[], &[]))), ["a1", "a2"]);
        assert_eq!(names(versions(&fleet(), &f(&[], &["rev5", "rev6"], &["2.0"]))), ["a1", "b1"]);
        assert_eq!(names(versions(&fleet(), &f(&["A"], &["rev6"], &[]))), Vec::<String>::new());
        // A standby version is not what the node runs: --version 1.0 does not match a1.
        assert_eq!(names(versions(&fleet(), &f(&[], &[], &["1.0"]))), ["a2"]);
        // A node that never reported has no board: a board filter leaves it out.
        assert!(!names(versions(&fleet(), &f(&[], &["rev5"], &[]))).contains(&"c1".to_string()));
        let v = versions(&fleet(), &f(&["A"], &[], &[]));
        assert_eq!(v.by_version.values().sum::<u32>(), 2, "totals count only the filtered nodes");
    }
}
