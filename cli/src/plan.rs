//! `meshlift plan`: offline dry run of the commit planner on a topology file.
//!
//! Like Terragraph's commit-plan request, every node of the topology except the excluded ones is
//! pending, and batches are removed one after another as if each commit succeeded. Excluded nodes
//! count as already upgraded and online (the operator is telling us they are fine).

use clap::{Args, ValueEnum};
use meshlift_graph_planner::{plan_all, ApPolicy, PlanRequest};
use meshlift_protocol::topology::{NodeStatus, Topology};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Args)]
pub struct PlanArgs {
    /// Terragraph topology JSON file.
    #[arg(long)]
    pub topology: PathBuf,
    /// Max nodes per batch; 0 = no limit (an AP group may still exceed it, with a warning).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Nodes to leave alone (treated as already upgraded), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// What to do with articulation points.
    #[arg(long, value_enum, default_value_t = PolicyArg::Group)]
    pub ap_policy: PolicyArg,
    /// POP sites allowed in one batch (Terragraph: 1).
    #[arg(long, default_value_t = 1)]
    pub max_pops_per_batch: u32,
    /// Print one JSON object {ap_groups, batches, unplanned} instead of the human report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Terragraph: an articulation point reboots with everything it cuts off.
    Group,
    /// What an articulation point isolates goes first, the articulation point last.
    DependentsFirst,
}

pub fn run(args: PlanArgs) -> u8 {
    match run_inner(&args) {
        Ok(out) => {
            println!("{out}");
            0
        }
        Err(msg) => {
            eprintln!("meshlift plan: {msg}");
            2
        }
    }
}

fn run_inner(args: &PlanArgs) -> Result<String, String> {
    let text = std::fs::read_to_string(&args.topology)
        .map_err(|e| format!("cannot read {}: {e}", args.topology.display()))?;
    let mut topology = Topology::from_json(&text).map_err(|e| format!("{}: {e}", args.topology.display()))?;

    let mut excluded = BTreeSet::new();
    for name in args.exclude.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let node = topology.node_mut(name).ok_or_else(|| format!("--exclude: unknown node {name:?}"))?;
        if !node.status.is_online() {
            node.status = NodeStatus::Online;
        }
        excluded.insert(name.to_string());
    }
    let pending: BTreeSet<String> =
        topology.nodes.iter().map(|n| n.name.clone()).filter(|n| !excluded.contains(n)).collect();

    let plan = plan_all(&PlanRequest {
        topology: &topology,
        pending: &pending,
        limit: args.limit,
        ap_policy: match args.ap_policy {
            PolicyArg::Group => ApPolicy::Group,
            PolicyArg::DependentsFirst => ApPolicy::DependentsFirst,
        },
        max_pops_per_batch: args.max_pops_per_batch,
    });

    if !args.json {
        return Ok(plan.render_human().trim_end().to_string());
    }
    let ap_groups: BTreeMap<&String, &Vec<String>> = plan.ap_groups.iter().collect();
    let batches: Vec<&Vec<String>> = plan.batches.iter().map(|b| &b.nodes).collect();
    let unplanned: Vec<&String> = plan.unplanned.iter().map(|(node, _)| node).collect();
    Ok(json!({"ap_groups": ap_groups, "batches": batches, "unplanned": unplanned}).to_string())
}
