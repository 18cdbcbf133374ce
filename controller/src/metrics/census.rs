//! `meshlift_nodes{board,version,state}`: how many nodes run which version on which board, and
//! where their upgrade stands — the figure an operator graphs to watch a version take over.
//!
//! Rebuilt from scratch on every update (see `Metrics::set_nodes`): a combination no node has any
//! more must disappear, and keeping a shadow of the old combinations would cost as much as the
//! count itself (one pass over the topology, no string copied).

use crate::engine::Engine;
use std::collections::BTreeMap;

/// Label value for what a node has not reported (yet): Prometheus reads an empty label value as
/// no label at all.
pub const UNKNOWN: &str = "unknown";

/// Count nodes by `[board, version, state]`; `None` or empty fields count as [`UNKNOWN`].
pub fn count<'a>(
    nodes: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<[&'a str; 3], i64> {
    let known = |v: Option<&'a str>| v.filter(|s| !s.is_empty()).unwrap_or(UNKNOWN);
    let mut out = BTreeMap::new();
    for (board, version, state) in nodes {
        *out.entry([known(board), known(version), known(state)]).or_default() += 1;
    }
    out
}

/// The engine's nodes, by their last report.
pub fn count_nodes(engine: &Engine) -> BTreeMap<[&str; 3], i64> {
    count(engine.topology().nodes.iter().map(|n| {
        let report = engine.node_report(&n.name);
        (
            report.map(|r| r.hardware_board_id.as_str()),
            report.map(|r| r.version.as_str()),
            report.map(|r| r.upgrade_status.us_type.as_str()),
        )
    }))
}

/// How many of the nodes that just went offline count as collateral: only during a COMMIT stage
/// (a node lost during a PREPARE is not the upgrade's doing), and only those not rebooting in the
/// batch (`rebooting`: its nodes still in flight). The controller cannot see isolation itself;
/// this is the part of it a controller can know, whatever the cause (a reboot that cut a node
/// off, or a link that failed meanwhile).
pub fn collateral(went_offline: &[&str], stage: Option<crate::engine::Stage>, rebooting: &[&str]) -> usize {
    if stage != Some(crate::engine::Stage::Commit) {
        return 0;
    }
    went_offline.iter().filter(|n| !rebooting.contains(n)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Stage;

    #[test]
    fn only_nodes_lost_outside_the_rebooting_batch_of_a_commit_are_collateral() {
        let gone = ["relay", "leaf1", "leaf2"];
        assert_eq!(collateral(&gone, Some(Stage::Commit), &["relay"]), 2);
        assert_eq!(collateral(&gone, Some(Stage::Commit), &["relay", "leaf1", "leaf2"]), 0);
        assert_eq!(collateral(&gone, Some(Stage::Prepare), &[]), 0, "not during a prepare");
        assert_eq!(collateral(&gone, None, &[]), 0, "not without a request");
    }

    #[test]
    fn nodes_are_counted_by_board_version_and_state() {
        let c = count([
            (Some("nxp"), Some("1.0"), Some("NONE")),
            (Some("nxp"), Some("1.0"), Some("NONE")),
            (Some("nxp"), Some("2.0"), Some("CONFIRMED")),
            (Some("qca"), Some("1.0"), Some("FLASHED")),
            (None, None, None),
            (Some(""), Some("1.0"), Some("NONE")),
        ]);
        assert_eq!(c[&["nxp", "1.0", "NONE"]], 2);
        assert_eq!(c[&["nxp", "2.0", "CONFIRMED"]], 1);
        assert_eq!(c[&["qca", "1.0", "FLASHED"]], 1);
        assert_eq!(c[&[UNKNOWN, UNKNOWN, UNKNOWN]], 1);
        assert_eq!(c[&[UNKNOWN, "1.0", "NONE"]], 1);
        assert_eq!(c.values().sum::<i64>(), 6);
    }

    #[test]
    fn a_combination_no_node_has_any_more_disappears_from_the_export() {
        let m = crate::metrics::Metrics::new();
        m.set_nodes(count([(Some("nxp"), Some("1.0"), Some("FLASHED"))]));
        assert!(m.render().contains(r#"meshlift_nodes{board="nxp",state="FLASHED",version="1.0"} 1"#));
        m.set_nodes(count([(Some("nxp"), Some("2.0"), Some("CONFIRMED"))]));
        let text = m.render();
        assert!(text.contains(r#"meshlift_nodes{board="nxp",state="CONFIRMED",version="2.0"} 1"#), "{text}");
        assert!(!text.contains(r#"version="1.0""#), "{text}");
    }
}
