//! Human-readable output of the controller's replies: aligned tables and plan text.
//!
//! Pure functions from reply (and `now`, for "12s ago") to text, so tests can check what an
//! operator reads without a controller.

use meshlift_protocol::{
    BatchNodeView, NodeKeysResp, NodeOutcome, NodeStatusDump, PlanStrategy, RequestView, SlotReport,
    UnixMillis, UpgradeCommitPlan, UpgradeGroupType, UpgradeReqType, UpgradeStateDump,
};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lists longer than this are cut with "… and N more" so a 10 000-node network stays readable.
const MAX_LISTED: usize = 20;

pub fn now_millis() -> UnixMillis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Columns padded to their widest cell; the last column is not padded.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(cols) {
                if i + 1 < cols {
                    let _ = write!(line, "{c:<w$}  ", w = widths[i]);
                } else {
                    line.push_str(c);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// "12s ago", "3m ago", "2h ago", "4d ago"; "never" when the node never reported.
pub fn ago(then: Option<UnixMillis>, now: UnixMillis) -> String {
    let Some(then) = then else { return "never".into() };
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Download progress as a percentage, "-" when not downloading.
pub fn percent(ppm: Option<u32>) -> String {
    ppm.map_or("-".into(), |p| format!("{}%", p.min(1_000_000) / 10_000))
}

pub fn stage_name(t: UpgradeReqType) -> &'static str {
    match t {
        UpgradeReqType::PrepareUpgrade => "prepare",
        UpgradeReqType::CommitUpgrade => "commit",
        UpgradeReqType::ResetStatus => "reset",
        UpgradeReqType::FullUpgrade => "full",
        UpgradeReqType::RevertToStandby => "revert",
    }
}

fn list(names: &[String]) -> String {
    if names.len() <= MAX_LISTED {
        return names.join(", ");
    }
    format!("{}, … and {} more", names[..MAX_LISTED].join(", "), names.len() - MAX_LISTED)
}

fn describe_request(v: &RequestView, now: UnixMillis) -> String {
    let r = &v.request;
    let group = match r.ug_type {
        UpgradeGroupType::Network if r.exclude_nodes.is_empty() => "network".to_string(),
        UpgradeGroupType::Network => format!("network except {}", list(&r.exclude_nodes)),
        UpgradeGroupType::Nodes => format!("nodes {}", list(&r.nodes)),
    };
    let mut s = format!(
        "{} {} of {group}, submitted {} by {}",
        r.ur_req.upgrade_req_id,
        stage_name(r.ur_req.ur_type),
        ago(Some(v.submitted_at), now),
        r.operator.who
    );
    if let Some(reason) = &r.operator.reason {
        let _ = write!(s, " ({reason})");
    }
    s
}

/// `meshlift upgrade state`
pub fn state_text(d: &UpgradeStateDump, now: UnixMillis) -> String {
    let mut out = String::new();
    match &d.cur_req {
        None => out.push_str("No request is running.\n"),
        Some(cur) => {
            let _ = writeln!(out, "Running: {}", describe_request(cur, now));
            let _ = writeln!(
                out,
                "Stage {}: batch {}, {} batch(es) done, {} node(s) waiting for a batch",
                stage_name(cur.stage),
                d.cur_batch_index,
                d.done_batches.len(),
                d.pending_nodes.len()
            );
            if !d.cur_batch.is_empty() {
                out.push('\n');
                out.push_str(&batch_table(&d.cur_batch, now));
                out.push('\n');
            }
            if !d.pending_nodes.is_empty() {
                let _ = writeln!(out, "\nWaiting: {}", list(&d.pending_nodes));
            }
        }
    }
    if !d.pending_reqs.is_empty() {
        out.push_str("\nQueued requests:\n");
        let mut t = Table::new(&["REQUEST", "TYPE", "NODES", "SUBMITTED", "BY"]);
        for v in &d.pending_reqs {
            let r = &v.request;
            t.row(vec![
                r.ur_req.upgrade_req_id.clone(),
                stage_name(r.ur_req.ur_type).into(),
                match r.ug_type {
                    UpgradeGroupType::Network => "network".into(),
                    UpgradeGroupType::Nodes => r.nodes.len().to_string(),
                },
                ago(Some(v.submitted_at), now),
                r.operator.who.clone(),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    if !d.finished_reqs.is_empty() {
        out.push_str("\nFinished requests:\n");
        let mut t = Table::new(&["REQUEST", "RESULT", "FINISHED", "SUMMARY"]);
        for f in &d.finished_reqs {
            t.row(vec![
                f.request_id.clone(),
                if f.success { "ok" } else { "FAILED" }.into(),
                ago(Some(f.finished_at), now),
                f.summary.clone(),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The in-flight batch: node, state, progress, retries, last seen, what we wait for.
pub fn batch_table(batch: &[BatchNodeView], now: UnixMillis) -> String {
    let mut t = Table::new(&["NODE", "STATE", "PROGRESS", "RETRIES", "LAST SEEN", "DETAIL"]);
    for n in batch {
        t.row(vec![
            n.node.clone(),
            n.state.as_str().into(),
            percent(n.progress_ppm),
            n.retries.to_string(),
            ago(n.last_seen, now),
            n.detail.clone(),
        ]);
    }
    t.render()
}

/// Outcomes of one request, one row per node and stage.
pub fn outcomes_table(outcomes: &[&NodeOutcome]) -> String {
    let mut t = Table::new(&["NODE", "STAGE", "OUTCOME", "REASON"]);
    for o in outcomes {
        t.row(vec![o.node.clone(), stage_name(o.stage).into(), o.outcome.as_str().into(), o.reason.clone()]);
    }
    t.render()
}

fn slot_cell(s: &SlotReport) -> String {
    let version = s.version.as_deref().unwrap_or("empty");
    let mark = if s.version.is_none() {
        ""
    } else if s.confirmed {
        " (confirmed)"
    } else {
        " (unconfirmed)"
    };
    format!("{}:{version}{mark}", s.slot.as_str())
}

/// `meshlift status`: one row per node.
pub fn status_table(d: &NodeStatusDump, now: UnixMillis) -> String {
    let mut t = Table::new(&[
        "NODE",
        "SITE",
        "VERSION",
        "CONFIG",
        "ACTIVE",
        "STANDBY",
        "STATE",
        "PROGRESS",
        "REASON",
        "LAST SEEN",
    ]);
    let mut rows: Vec<_> = d.nodes.iter().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    for n in rows {
        let (active, standby) = match &n.slots {
            Some(s) => (slot_cell(s.slot(s.active)), slot_cell(s.slot(s.active.other()))),
            None => ("-".into(), "-".into()),
        };
        let (state, progress, reason) = match &n.upgrade_status {
            Some(u) => (
                u.us_type.as_str().to_string(),
                percent(u.progress.as_ref().map(|p| p.ppm())),
                u.reason.clone(),
            ),
            None => ("-".into(), "-".into(), String::new()),
        };
        let seen =
            if n.online { ago(n.last_seen, now) } else { format!("{} (offline)", ago(n.last_seen, now)) };
        t.row(vec![
            n.name.clone(),
            n.site.clone(),
            n.version.clone().unwrap_or_else(|| "-".into()),
            // The running startup configuration's digest, short as in `config show`.
            n.startup_config.map_or_else(|| "-".into(), |d| d.to_hex()[..12].to_string()),
            active,
            standby,
            state,
            progress,
            reason,
            seen,
        ]);
    }
    t.render()
}

/// `meshlift image list`: oldest version first, with tags.
pub fn images_table(r: &meshlift_protocol::fleet::ImageRecords, filtered: bool) -> String {
    if r.images.is_empty() {
        return if filtered { "No image matches.".into() } else { "No images.".into() };
    }
    let mut t = Table::new(&["NAME", "VERSION", "BOARDS", "TAGS", "SIZE", "SHA256", "MAGNET", "HTTP"]);
    for rec in &r.images {
        let i = &rec.image;
        t.row(vec![
            i.name.clone(),
            i.version.clone(),
            i.hardware_board_ids.join(","),
            if rec.tags.is_empty() { "-".into() } else { rec.tags.join(",") },
            i.size.to_string(),
            i.sha256.to_hex(),
            i.magnet_uri.clone(),
            if i.http_uri.is_empty() { "-".into() } else { i.http_uri.clone() },
        ]);
    }
    t.render()
}

/// `meshlift node keys`: every enrolled key (the operator checks them one by one), then the nodes
/// that cannot connect for want of one (cut after [`MAX_LISTED`] names).
pub fn node_keys_text(r: &NodeKeysResp) -> String {
    let mut out = if r.enrolled.is_empty() {
        "No node keys enrolled.".to_string()
    } else {
        let mut t = Table::new(&["NODE", "PUBLIC KEY"]);
        for (node, key) in &r.enrolled {
            t.row(vec![node.clone(), key.clone()]);
        }
        t.render()
    };
    if !r.missing.is_empty() {
        let _ = write!(
            out,
            "\n\n{} node(s) without a key (they cannot connect; `meshlift node enroll NAME --key PUB`): {}",
            r.missing.len(),
            list(&r.missing)
        );
    }
    out
}

/// `meshlift upgrade commit --dry-run`
pub fn plan_text(p: &UpgradeCommitPlan) -> String {
    let mut out = String::new();
    let nodes: usize = p.commit_batches.iter().map(Vec::len).sum();
    let _ = writeln!(out, "Commit plan: {} batch(es), {nodes} node(s)", p.commit_batches.len());
    for (i, b) in p.commit_batches.iter().enumerate() {
        let _ = writeln!(out, "  Batch {} ({} node(s)): {}", i + 1, b.len(), list(b));
    }
    if !p.ap_groups.is_empty() {
        out.push_str("\nArticulation points (site: sites it cuts off):\n");
        for (ap, cut) in &p.ap_groups {
            let _ = writeln!(out, "  {ap}: {}", list(cut));
        }
    }
    for (title, rows) in [("Never planned", &p.unplanned), ("Filtered before planning", &p.filtered)] {
        if !rows.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            // Grouped by reason: on a large network one reason usually covers many nodes.
            let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for r in rows.iter() {
                by_reason.entry(r.reason.trim()).or_default().push(r.node.clone());
            }
            for (reason, nodes) in by_reason {
                let _ = writeln!(out, "  {reason} ({}): {}", nodes.len(), list(&nodes));
            }
        }
    }
    if !p.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &p.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    if !p.costs.is_empty() {
        out.push_str("\nCost of each strategy (same safety rules; --strategy to choose):\n");
        for c in &p.costs {
            let name = match c.strategy {
                PlanStrategy::Terragraph => "terragraph",
                PlanStrategy::FewestBatches => "fewest-batches",
            };
            let _ = writeln!(
                out,
                "  {name:<15} {} batch(es), {} site outage(s) in all, at most {} per site, largest blast radius {} site(s)",
                c.batches, c.total_outages, c.max_outages_per_site, c.largest_blast_radius
            );
        }
    }
    if !p.explanation.trim().is_empty() {
        let _ = writeln!(out, "\nWhy:\n{}", p.explanation.trim_end());
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::*;

    #[test]
    fn node_keys_lists_enrolled_and_missing() {
        let r = NodeKeysResp {
            enrolled: vec![("a.1".into(), "k".repeat(40))],
            missing: (0..25).map(|i| format!("n{i}")).collect(),
        };
        let text = node_keys_text(&r);
        assert!(text.starts_with("NODE"), "{text}");
        assert!(text.contains(&format!("a.1   {}", "k".repeat(40))), "{text}");
        assert!(text.contains("25 node(s) without a key"), "{text}");
        assert!(text.contains("… and 5 more"), "{text}");
        let none = node_keys_text(&NodeKeysResp::default());
        assert_eq!(none, "No node keys enrolled.");
    }

    #[test]
    fn ago_and_percent() {
        assert_eq!(ago(None, 5_000), "never");
        assert_eq!(ago(Some(1_000), 13_500), "12s ago");
        assert_eq!(ago(Some(0), 185_000), "3m ago");
        assert_eq!(ago(Some(0), 7_300_000), "2h ago");
        assert_eq!(ago(Some(10_000), 5_000), "0s ago"); // clock skew: never negative
        assert_eq!(percent(Some(456_789)), "45%");
        assert_eq!(percent(Some(2_000_000)), "100%");
        assert_eq!(percent(None), "-");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["A", "BB", "C"]);
        t.row(vec!["xxx".into(), "y".into(), "z".into()]);
        assert_eq!(t.render(), "A    BB  C\nxxx  y   z");
    }

    #[test]
    fn status_shows_slots_state_and_last_seen() {
        let slot = |slot, v: Option<&str>, confirmed| SlotReport {
            slot,
            version: v.map(str::to_string),
            sha256: None,
            confirmed,
        };
        let dump = NodeStatusDump {
            nodes: vec![NodeStatusRow {
                name: "n1".into(),
                site: "S1".into(),
                mac: "00:00:00:00:00:01".into(),
                online: true,
                is_pop: false,
                board: None,
                version: Some("1.0".into()),
                slots: Some(SlotsReport {
                    active: SlotId::A,
                    booted: SlotId::A,
                    a: slot(SlotId::A, Some("1.0"), true),
                    b: slot(SlotId::B, Some("1.1"), false),
                }),
                upgrade_status: Some(UpgradeStatus {
                    us_type: UpgradeStatusType::DownloadingImage,
                    reason: "bittorrent, 3 peers".into(),
                    progress: Some(DownloadProgress {
                        total_bytes: 100,
                        have_bytes: 42,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                last_seen: Some(88_000),
                startup_config: None,
            }],
        };
        let text = status_table(&dump, 100_000);
        let row = text.lines().nth(1).unwrap();
        for want in
            ["n1", "S1", "a:1.0 (confirmed)", "b:1.1 (unconfirmed)", "DOWNLOADING_IMAGE", "42%", "12s ago"]
        {
            assert!(row.contains(want), "{want} missing in {row}");
        }
    }

    #[test]
    fn plan_text_lists_batches_and_reasons() {
        let plan = UpgradeCommitPlan {
            commit_batches: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
            ap_groups: [("S1".to_string(), vec!["S2".to_string()])].into_iter().collect(),
            unplanned: vec![NodeReason { node: "z".into(), reason: "offline".into() }],
            filtered: vec![],
            warnings: vec!["batch 1 exceeds limit".into()],
            explanation: "leaves first".into(),
            costs: vec![StrategyCost {
                strategy: PlanStrategy::FewestBatches,
                batches: 1,
                total_outages: 3,
                max_outages_per_site: 1,
                largest_blast_radius: 3,
            }],
        };
        let t = plan_text(&plan);
        assert!(t.contains("2 batch(es), 3 node(s)"));
        assert!(t.contains("Batch 1 (2 node(s)): a, b"));
        assert!(t.contains("S1: S2"));
        assert!(t.contains("offline (1): z"), "{t}");
        assert!(t.contains("batch 1 exceeds limit"));
        assert!(t.contains("leaves first"));
        assert!(t.contains("fewest-batches  1 batch(es), 3 site outage(s)"), "{t}");
    }
}
