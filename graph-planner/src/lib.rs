//! The commit planner: which nodes may reboot together without cutting any running node off
//! from the controller.
//!
//! Management traffic is in-band, so a node reaches the controller only through the mesh and a
//! POP. [`PlanStrategy::Terragraph`] (the default) is Terragraph's `GraphHelper::getBatch`
//! (terragraph/meta-terragraph, `e2e/controller/GraphHelper.cpp`; reference study §3): a site
//! graph of the live topology, articulation points relative to the POPs through a virtual root, AP
//! groups with sub-AP absorption, and a traversal biased toward upgraded sites whose leaves form
//! the batch (at most one POP site, `limit` nodes with first-fit packing). With
//! [`ApPolicy::Group`] every batch is one that `GraphHelper` returns for the same input under some
//! hash order: the tests port `GraphHelper.cpp` line by line and search its iteration orders
//! (exhaustively for meshes of up to 8 sites).
//!
//! Upstream behaviours meshlift **keeps** in Terragraph mode, odd ones included:
//! - a site is in the graph iff one of its nodes is not offline; a live link joins the sites of
//!   its ends whatever their nodes' status; links inside one site and duplicate links add nothing;
//! - a site is pending iff one of its *online* nodes is pending; only those nodes are rebooted;
//! - `limit <= 0` caps a batch at the topology's node count; the first candidate may exceed
//!   `limit` (an AP group bigger than it reboots whole; meshlift warns);
//! - a pending POP site with no live link to another site is a leaf and is planned. Upstream does
//!   it by accident (removing the fake root leaves the POP an empty adjacency entry, which the
//!   traversal does not skip), but it is safe — nobody reaches a POP through it — and it is what
//!   makes a one-site network upgradable at all;
//! - a site no POP reaches is never in a batch.
//!
//! Upstream behaviours meshlift **refuses**:
//! - hash order: one fixed order instead (upgraded sites first, then by name), so the dry run is
//!   the plan the controller will follow on an unchanged topology;
//! - when `getBatch` returns nothing while nodes remain, upstream's `UpgradeApp` commits all of
//!   them at once ("Committing alive nodes unreachable via topology"). Those nodes have no path to
//!   a POP in the topology, so nobody can say what rebooting them cuts off or whether they will
//!   come back; the controller's engine instead gives each an outcome (`skipped_not_ready`) with
//!   the planner's reason (cut off from every POP, offline), and the dry run lists them as
//!   unplanned with the same reason. An operator who wants upstream's behaviour asks for it
//!   explicitly with `limit < 0` on a request for those nodes.
//!
//! What meshlift adds (none of it on by default):
//! - [`ApPolicy::DependentsFirst`] and `max_pops_per_batch` (see [`PlanRequest`]);
//! - [`PlanStrategy::FewestBatches`]: as few reboot cycles as the same safety rules allow, not
//!   bound to the leaves of one traversal (`fewest_batches`);
//! - **explanations** per batch (sites, AP groups, why each waiting site waits), **costs** per
//!   plan ([`Plan::cost`]: batches, outages per site, largest blast radius) so operators can
//!   compare strategies, and **warnings** when an AP group forces a batch larger than `limit`;
//! - **speed** for meshes of 100 000 sites: a [`Mesh`] interns the topology once (the controller
//!   keeps one and plans every batch on a live copy by index), and a whole Terragraph plan records
//!   its traversal so that each batch replays only from the first step the previous batch changed
//!   (`walk`). Figures are in `bench/RESULTS.md`.
//!
//! The planner is pure: it takes a validated [`meshlift_protocol::Topology`] and returns values;
//! there is no I/O and no error type. Panics are bugs: every `expect` states the invariant it
//! relies on, and no input (however odd the topology or pending set) may trigger one.

mod ap_groups;
mod batch;
mod fewest_batches;
mod mesh;
mod plan;
mod site_graph;
mod walk;

pub use mesh::Mesh;
use meshlift_protocol::Topology;
pub use meshlift_protocol::{ApPolicy, PlanStrategy};
pub use plan::PlanCost;
use std::collections::{BTreeMap, BTreeSet};

/// One planning question. The engine asks it before every batch with the live topology.
pub struct PlanRequest<'a> {
    /// Live topology: `node.status` and `link.is_alive` are current.
    pub topology: &'a Topology,
    /// Node names still to upgrade; every other node counts as upgraded. Unknown names are
    /// ignored with a warning.
    pub pending: &'a BTreeSet<String>,
    /// 0 = staged, unlimited; >0 = max nodes per batch (first-fit, the first candidate may exceed
    /// it, as in Terragraph). Negative values are handled by the engine; here they mean 0.
    pub limit: i64,
    pub ap_policy: ApPolicy,
    /// POP sites allowed in one batch; 0 is treated as 1 (Terragraph's rule). More than one is
    /// safe because a batch is always made of leaves (Terragraph) or whole subtrees (fewest
    /// batches) of a tree rooted at the POPs: every site outside the batch keeps its tree path to
    /// a POP that stays up.
    pub max_pops_per_batch: u32,
    /// Terragraph's batches, or as few batches as the same safety rules allow.
    pub strategy: PlanStrategy,
}

/// Nodes to reboot together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Sorted node names. Empty means nothing can be planned now.
    pub nodes: Vec<String>,
    /// Sites with nodes in the batch, sorted.
    pub sites: Vec<String>,
    /// Why these sites, the AP groups involved, and why each waiting site waits.
    pub explanation: String,
    pub warnings: Vec<String>,
}

/// A whole dry run: batches until nothing pending can be planned.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub batches: Vec<Batch>,
    /// AP groups before the first batch (Terragraph's grouping, whatever the policy): each pending
    /// articulation point and every site it cuts off from all POPs.
    pub ap_groups: BTreeMap<String, Vec<String>>,
    /// Pending nodes no batch will contain, with the reason.
    pub unplanned: Vec<(String, String)>,
    /// Per site: batches during which it is down or cut off from every POP (its own reboot and
    /// those of sites it depends on).
    pub outages: BTreeMap<String, u32>,
    pub warnings: Vec<String>,
    /// Per batch: sites without a path to a POP while the batch reboots (its own sites included).
    pub blast_radius: Vec<usize>,
    pub limit: i64,
    pub ap_policy: ApPolicy,
    pub max_pops_per_batch: u32,
    pub strategy: PlanStrategy,
}

/// The next batch for the live topology. Interns the topology first; a caller asking again and
/// again about one mesh keeps a [`Mesh`] and calls [`Mesh::next_batch`].
pub fn next_batch(req: &PlanRequest) -> Batch {
    next_batch_on(&Mesh::new(req.topology), req)
}

/// Dry run of a whole upgrade on an unchanging topology: every batch is removed from the pending
/// set before the next one is chosen, as the controller would after a successful commit.
pub fn plan_all(req: &PlanRequest) -> Plan {
    plan::plan_all(&Mesh::new(req.topology), req)
}

impl Mesh {
    /// [`next_batch`] without interning: `req.topology` is a live copy of the topology this mesh
    /// was built from. One that does not fit ([`Mesh::fits`]) is interned on the spot, so a
    /// mismatch costs time, never a wrong batch.
    pub fn next_batch(&self, req: &PlanRequest) -> Batch {
        if !self.fits(req.topology) {
            return next_batch_on(&Mesh::new(req.topology), req);
        }
        next_batch_on(self, req)
    }

    /// [`plan_all`] without interning, on the same terms as [`Mesh::next_batch`].
    pub fn plan_all(&self, req: &PlanRequest) -> Plan {
        if !self.fits(req.topology) {
            return plan::plan_all(&Mesh::new(req.topology), req);
        }
        plan::plan_all(self, req)
    }
}

fn next_batch_on(mesh: &Mesh, req: &PlanRequest) -> Batch {
    let (mut planner, unknown) = plan::planner_for(mesh, req);
    let chosen = planner.next();
    let mut warnings = unknown_warning(&unknown).into_iter().collect::<Vec<_>>();
    warnings.extend(chosen.warnings);
    Batch { nodes: chosen.nodes, sites: chosen.sites, explanation: chosen.explanation, warnings }
}

fn unknown_warning(unknown: &[String]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    let shown: Vec<&str> = unknown.iter().take(10).map(String::as_str).collect();
    let more = if unknown.len() > 10 { format!(" and {} more", unknown.len() - 10) } else { String::new() };
    Some(format!(
        "{} pending node name(s) not in the topology, ignored: {}{more}",
        unknown.len(),
        shown.join(", ")
    ))
}
