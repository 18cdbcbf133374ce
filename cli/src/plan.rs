//! `meshlift plan`: offline dry run of the commit planner on a topology file.
//!
//! Like Terragraph's commit-plan request (`UpgradeAppUtil::getCommitPlan`), every node of the
//! topology except the excluded ones is pending, and batches are removed one after another as if
//! each commit succeeded. Excluded nodes count as already upgraded and keep the status the file
//! gives them: an offline excluded node still carries no traffic, so a site that reaches a POP
//! only through it is cut off and unplanned, as upstream would have it (turning it online once
//! put such sites in batches GraphHelper never gives).

use clap::{Args, ValueEnum};
use meshlift_graph_planner::{ApPolicy, Mesh, PlanCost, PlanRequest, PlanStrategy};
use meshlift_protocol::topology::Topology;
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
    /// How batches are chosen; the report also gives the other strategy's cost.
    #[arg(long, value_enum, default_value_t = StrategyArg::Terragraph)]
    pub strategy: StrategyArg,
    /// Print one JSON object {ap_groups, batches, unplanned, costs} instead of the human report.
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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StrategyArg {
    /// Terragraph's GraphHelper: a batch Terragraph could give.
    Terragraph,
    /// As few batches (reboot cycles) as the same safety rules allow.
    FewestBatches,
}

impl From<StrategyArg> for PlanStrategy {
    fn from(s: StrategyArg) -> PlanStrategy {
        match s {
            StrategyArg::Terragraph => PlanStrategy::Terragraph,
            StrategyArg::FewestBatches => PlanStrategy::FewestBatches,
        }
    }
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
    let topology = Topology::from_json(&text).map_err(|e| format!("{}: {e}", args.topology.display()))?;

    let mut excluded = BTreeSet::new();
    for name in args.exclude.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if topology.node(name).is_none() {
            return Err(format!("--exclude: unknown node {name:?}"));
        }
        excluded.insert(name.to_string());
    }
    let pending: BTreeSet<String> =
        topology.nodes.iter().map(|n| n.name.clone()).filter(|n| !excluded.contains(n)).collect();

    let chosen: PlanStrategy = args.strategy.into();
    let req = PlanRequest {
        topology: &topology,
        pending: &pending,
        limit: args.limit,
        ap_policy: match args.ap_policy {
            PolicyArg::Group => ApPolicy::Group,
            PolicyArg::DependentsFirst => ApPolicy::DependentsFirst,
        },
        max_pops_per_batch: args.max_pops_per_batch,
        strategy: chosen,
    };
    // Both strategies on one interned mesh: the operator chooses seeing both costs.
    let mesh = Mesh::new(&topology);
    let plan = mesh.plan_all(&req);
    let costs: Vec<(PlanStrategy, PlanCost)> = [PlanStrategy::Terragraph, PlanStrategy::FewestBatches]
        .into_iter()
        .map(|s| {
            (
                s,
                if s == chosen {
                    plan.cost()
                } else {
                    mesh.plan_all(&PlanRequest { strategy: s, ..req }).cost()
                },
            )
        })
        .collect();

    if !args.json {
        let mut out = plan.render_human().trim_end().to_string();
        out.push_str("\n\nCost of each strategy (same safety rules):\n");
        for (s, c) in &costs {
            let mark = if *s == chosen { " (this plan)" } else { "" };
            out.push_str(&format!(
                "  {:<15} {} batch(es), {} site outage(s) in total, at most {} per site, largest blast radius {} \
                 site(s){mark}\n",
                strategy_name(*s),
                c.batches,
                c.total_outages,
                c.max_outages_per_site,
                c.largest_blast_radius
            ));
        }
        return Ok(out.trim_end().to_string());
    }
    let ap_groups: BTreeMap<&String, &Vec<String>> = plan.ap_groups.iter().collect();
    let batches: Vec<&Vec<String>> = plan.batches.iter().map(|b| &b.nodes).collect();
    let unplanned: Vec<&String> = plan.unplanned.iter().map(|(node, _)| node).collect();
    let costs: serde_json::Map<String, serde_json::Value> = costs
        .iter()
        .map(|(s, c)| {
            let v = json!({
                "batches": c.batches,
                "total_outages": c.total_outages,
                "max_outages_per_site": c.max_outages_per_site,
                "largest_blast_radius": c.largest_blast_radius,
            });
            (strategy_name(*s).to_string(), v)
        })
        .collect();
    Ok(json!({
        "strategy": strategy_name(chosen),
        "ap_groups": ap_groups,
        "batches": batches,
        "unplanned": unplanned,
        "costs": costs,
    })
    .to_string())
}

fn strategy_name(s: PlanStrategy) -> &'static str {
    match s {
        PlanStrategy::Terragraph => "terragraph",
        PlanStrategy::FewestBatches => "fewest-batches",
    }
}
