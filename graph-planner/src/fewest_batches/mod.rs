//! [`PlanStrategy::FewestBatches`](crate::PlanStrategy): as few reboot cycles as the safety rules
//! allow.
//!
//! Terragraph's batch is the leaves of one biased traversal, so a mesh takes about as many batches
//! as that tree is deep (8 on the 10 000-site street grid with POPs unlimited, where one batch
//! would do). The rules themselves ask less: every site outside the batch keeps a live path to a
//! POP site that stays up (members of a rebooting AP group excepted, as in Terragraph), AP groups
//! go whole, at most `limit` nodes (one indivisible unit may exceed it, as in Terragraph) and
//! `max_pops_per_batch` POP sites.
//!
//! Each batch is chosen on a fresh spanning forest of the live site graph, rooted at the POP sites
//! and grown by a 0-1 BFS in which entering a pending site costs 1 and an upgraded one 0: upgraded
//! sites hang off upgraded POPs through upgraded sites wherever the mesh allows, so pending sites
//! end up in subtrees of their own. Any union of whole subtrees that hold no upgraded site (AP
//! group members excepted) is safe: every other site keeps its tree path to its root POP. The batch
//! takes such subtrees in BFS order (POP roots first, so upgraded regions come with a POP of their
//! own and never wait on a pending one), whole when they fit, else their children.
//!
//! When the forest offers nothing (every pending site carries an upgraded one, e.g. pending POPs
//! that each hold up part of an upgraded mesh), the batch is Terragraph's, which always makes
//! progress while a POP reaches a pending site. Each batch depends only on the live topology and
//! the pending set, so asking batch by batch (the controller) gives the dry run's plan.

mod forest;
mod pop_phase;

use crate::ap_groups::Groups;
use crate::batch::{Chosen, Planner};
use crate::site_graph::{SiteGraph, NONE};
use crate::ApPolicy;
use forest::Forest;
use pop_phase::PopPhase;
use std::fmt::Write;

/// Per-plan state: the live site graph (built once) and what is still pending.
pub(crate) struct FewestPlanner<'m> {
    pub g: SiteGraph<'m>,
    pub node_pending: Vec<bool>,
    pub site_pending: Vec<u32>,
    pub policy: ApPolicy,
    pub cap: usize,
    pub limit: i64,
    pub max_pops: u32,
    /// Sites with a pending node.
    pending_sites: usize,
    /// Terragraph's AP groups under [`ApPolicy::Group`]: a batch only ever takes whole groups, so
    /// they only lose the keys batches take (kept for the POP phase).
    groups: Option<Groups>,
    /// Pending sites a POP reaches that are neither POP sites nor in a POP's AP group. At zero
    /// (most of a plan with one POP per batch) the batch is found without growing a forest.
    pending_other: usize,
    /// Pending POP sites, by name.
    pending_pops: Vec<u32>,
    pop_phase: Option<PopPhase>,
}

impl<'m> FewestPlanner<'m> {
    pub fn new(
        g: SiteGraph<'m>,
        node_pending: Vec<bool>,
        policy: ApPolicy,
        limit: i64,
        max_pops: u32,
    ) -> Self {
        let mut site_pending = vec![0u32; g.len()];
        for (i, &p) in node_pending.iter().enumerate() {
            let s = g.site_of_node[i];
            if p && s != NONE {
                site_pending[s as usize] += 1;
            }
        }
        let cap = if limit > 0 { usize::try_from(limit).unwrap_or(usize::MAX) } else { g.total_nodes() };
        let groups = (policy == ApPolicy::Group).then(|| Groups::compute(&g, &site_pending, policy));
        let pending_other = match &groups {
            Some(groups) => (0..g.len() as u32).filter(|&v| is_other(&g, &site_pending, groups, v)).count(),
            None => usize::MAX,
        };
        let pending_pops = g.pops.iter().copied().filter(|&p| site_pending[p as usize] > 0).collect();
        FewestPlanner {
            pending_sites: site_pending.iter().filter(|&&p| p > 0).count(),
            g,
            node_pending,
            site_pending,
            policy,
            cap,
            limit,
            max_pops: max_pops.max(1),
            groups,
            pending_other,
            pending_pops,
            pop_phase: None,
        }
    }

    /// Choose the next batch without applying it.
    pub fn next(&mut self) -> Chosen {
        let g = &self.g;
        let (node_pending, policy, limit, max_pops) =
            (&self.node_pending, self.policy, self.limit, self.max_pops);
        let terragraph = || Planner::new(g.clone(), node_pending.clone(), policy, limit, max_pops);
        let c = match &self.groups {
            Some(groups) if self.pending_other == 0 => {
                let phase = self.pop_phase.get_or_insert_with(|| PopPhase::new(g, &self.site_pending));
                let c = phase.choose(g, &self.site_pending, groups, &self.pending_pops, self.cap, max_pops);
                if c.sites.is_empty() {
                    fallback(g, &self.site_pending, terragraph)
                } else {
                    c
                }
            }
            _ => choose(g, &self.site_pending, policy, self.cap, max_pops, terragraph),
        };
        let mut nodes: Vec<u32> = c
            .sites
            .iter()
            .flat_map(|&s| g.nodes(s).iter().copied().filter(|&node| self.node_pending[node as usize]))
            .collect();
        let rank = &g.mesh.node_rank;
        nodes.sort_unstable_by_key(|&node| rank[node as usize]);
        let mut sites = c.sites.clone();
        sites.sort_unstable_by_key(|&s| g.mesh.site_rank[s as usize]);
        let waiting = self.pending_sites - c.sites.len();
        let mut warnings = Vec::new();
        if self.limit > 0 && c.nodes > self.cap {
            if let Some(&first) = sites.first() {
                warnings.push(format!(
                    "site {} (with its AP group, if any) alone has {} pending nodes, more than limit {}",
                    g.name(first),
                    c.nodes,
                    self.limit
                ));
            }
        }
        Chosen {
            candidates: c.sites.clone(),
            is_key: vec![false; c.sites.len()],
            nodes: nodes.iter().map(|&node| g.mesh.node_names[node as usize].to_string()).collect(),
            sites: sites.iter().map(|&s| g.name(s).to_string()).collect(),
            explanation: explain(&c, self.limit, waiting),
            warnings,
            down: c.down,
        }
    }

    /// Mark the chosen sites upgraded (`candidates` are exactly the batch's pending sites).
    pub fn apply(&mut self, chosen: &Chosen) {
        for &s in &chosen.candidates {
            let si = s as usize;
            if self.site_pending[si] == 0 {
                continue;
            }
            if let Some(groups) = &mut self.groups {
                if is_other(&self.g, &self.site_pending, groups, s) {
                    self.pending_other -= 1;
                }
                // A taken key's group is upgraded now; its members never come back as pending.
                groups.is_key[si] = false;
            }
            for &node in self.g.nodes(s) {
                self.node_pending[node as usize] = false;
            }
            self.site_pending[si] = 0;
            self.pending_sites -= 1;
            if let Some(phase) = &mut self.pop_phase {
                phase.upgraded(&self.g, &self.site_pending, s);
            }
        }
        let site_pending = &self.site_pending;
        self.pending_pops.retain(|&p| site_pending[p as usize] > 0);
    }
}

/// A pending site a POP reaches that is neither a POP site nor in a POP's AP group: while one is
/// left, batches need the forest.
fn is_other(g: &SiteGraph, site_pending: &[u32], groups: &Groups, v: u32) -> bool {
    let vi = v as usize;
    let key = groups.member_of[vi];
    site_pending[vi] > 0 && !g.pop[vi] && g.tree.reachable(v) && !(key != NONE && g.pop[key as usize])
}

/// One batch chosen by the fewest-batches strategy.
pub(super) struct FewestChoice {
    /// Pending sites in the batch.
    pub sites: Vec<u32>,
    /// Sites down or cut off while the batch reboots (the batch, plus upgraded members of AP
    /// groups whose key is in it).
    pub down: Vec<u32>,
    pub nodes: usize,
    pub pops: u32,
    /// Terragraph's traversal chose it (the forest had nothing safe).
    pub fallback: bool,
}

/// The next batch for `site_pending` (pending online nodes per site) on `g`.
/// `terragraph` builds Terragraph's planner for the same state, used when the forest has nothing.
fn choose<'m>(
    g: &SiteGraph<'m>,
    site_pending: &[u32],
    policy: ApPolicy,
    cap: usize,
    max_pops: u32,
    terragraph: impl FnOnce() -> Planner<'m>,
) -> FewestChoice {
    let groups = Groups::compute(g, site_pending, policy);
    let forest = Forest::grow(g, site_pending);
    let n = g.len();
    let order = &forest.order;

    // Bottom-up: can the subtree go down whole (`ok`), its pending nodes and POP sites.
    let mut ok: Vec<bool> = (0..n).map(|v| site_pending[v] > 0 || groups.member_of[v] != NONE).collect();
    let mut size: Vec<usize> = site_pending.iter().map(|&p| p as usize).collect();
    let mut pops: Vec<u32> = (0..n).map(|v| u32::from(g.pop[v] && site_pending[v] > 0)).collect();
    for &v in order.iter().rev() {
        let p = forest.parent[v as usize];
        if p != NONE {
            let (v, p) = (v as usize, p as usize);
            ok[p] &= ok[v];
            size[p] += size[v];
            pops[p] += pops[v];
        }
    }

    // Top-down first fit over whole subtrees; a subtree that does not fit leaves its children to
    // be tried on their own.
    let mut taken = vec![false; n];
    let (mut used, mut pops_used) = (0usize, 0u32);
    for &v in order {
        let vi = v as usize;
        let p = forest.parent[vi];
        if p != NONE && taken[p as usize] {
            taken[vi] = true;
            continue;
        }
        if used >= cap || !ok[vi] || groups.member_of[vi] != NONE || size[vi] == 0 {
            continue;
        }
        if pops_used + pops[vi] > max_pops {
            continue;
        }
        // A unit that alone exceeds the limit goes on its own, as in Terragraph.
        let alone = size[vi] == groups.cand_nodes[vi] as usize;
        if used + size[vi] <= cap || (used == 0 && alone) {
            taken[vi] = true;
            used += size[vi];
            pops_used += pops[vi];
        }
    }

    let down: Vec<u32> = order.iter().copied().filter(|&v| taken[v as usize]).collect();
    if down.is_empty() {
        return fallback(g, site_pending, terragraph);
    }
    let sites: Vec<u32> = down.iter().copied().filter(|&v| site_pending[v as usize] > 0).collect();
    FewestChoice { sites, down, nodes: used, pops: pops_used, fallback: false }
}

/// Terragraph's batch, when the forest offers nothing safe while a POP still reaches a pending
/// site (Terragraph always makes progress then).
fn fallback<'m>(
    g: &SiteGraph<'m>,
    site_pending: &[u32],
    terragraph: impl FnOnce() -> Planner<'m>,
) -> FewestChoice {
    let mut c = FewestChoice { sites: Vec::new(), down: Vec::new(), nodes: 0, pops: 0, fallback: true };
    if !site_pending.iter().enumerate().any(|(v, &p)| p > 0 && g.tree.reachable(v as u32)) {
        return c;
    }
    let chosen = terragraph().next();
    for (&k, &is_key) in chosen.candidates.iter().zip(&chosen.is_key) {
        for s in g.with_group(k, is_key) {
            c.down.push(s);
            if site_pending[s as usize] > 0 {
                c.sites.push(s);
                c.nodes += site_pending[s as usize] as usize;
                c.pops += u32::from(g.pop[s as usize]);
            }
        }
    }
    c
}

/// Why these sites, in a few lines (the forest has no per-site story worth telling).
fn explain(c: &FewestChoice, limit: i64, waiting: usize) -> String {
    let mut out = String::new();
    if c.sites.is_empty() {
        out.push_str("nothing can be upgraded now\n");
        return out;
    }
    let limit = if limit > 0 { limit.to_string() } else { "none".to_string() };
    let _ = writeln!(
        out,
        "{} nodes at {} site(s), {} POP site(s); limit {limit}; strategy fewest-batches",
        c.nodes,
        c.sites.len(),
        c.pops
    );
    if c.fallback {
        out.push_str(
            "  every pending site still carries an upgraded one on its way to a POP: Terragraph's \
             traversal chose this batch\n",
        );
    } else {
        out.push_str(
            "  whole subtrees of pending sites: every other site keeps its path to a POP that stays up\n",
        );
    }
    let cut = c.down.len() - c.sites.len();
    if cut > 0 {
        let _ = writeln!(
            out,
            "  {cut} upgraded site(s) in the AP groups of rebooting sites lose every POP meanwhile"
        );
    }
    if waiting > 0 {
        let _ = writeln!(
            out,
            "{waiting} pending site(s) wait: the limit, the POP quota, or other sites still reach a POP through them"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::Mesh;
    use meshlift_protocol::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology};

    /// A random mesh: `n` sites of 1–2 nodes, ~n/8 POP sites, a random tree plus extra links,
    /// some dead links and offline nodes (xorshift, so the test needs no generator crate).
    fn mesh(seed: u64, n: usize) -> (Topology, Vec<bool>) {
        let mut x = seed | 1;
        let mut rnd = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        };
        let (mut nodes, mut links, mut sites) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..n {
            sites.push(Site { name: format!("s{s:03}"), location: None });
            for j in 0..1 + rnd(2) as usize {
                nodes.push(Node {
                    name: format!("n{s:03}_{j}"),
                    node_type: NodeType::Dn,
                    mac_addr: format!("02:00:00:00:{:02x}:{:02x}", nodes.len() >> 8, nodes.len() & 0xff),
                    pop_node: j == 0 && (s == 0 || rnd(8) == 0),
                    status: if rnd(20) == 0 { NodeStatus::Offline } else { NodeStatus::Online },
                    site_name: format!("s{s:03}"),
                });
            }
        }
        let mut link = |a: usize, z: usize, alive: bool| {
            links.push(Link {
                name: format!("l{}", links.len()),
                a_node_name: format!("n{a:03}_0"),
                z_node_name: format!("n{z:03}_0"),
                link_type: LinkType::Wireless,
                is_alive: alive,
            })
        };
        for s in 1..n {
            link(s, rnd(s as u64) as usize, rnd(12) != 0);
        }
        for _ in 0..n / 2 {
            let (a, z) = (rnd(n as u64) as usize, rnd(n as u64) as usize);
            if a != z {
                link(a, z, true);
            }
        }
        let pending = (0..nodes.len()).map(|_| rnd(10) != 0).collect();
        (Topology::new("t".into(), nodes, links, sites).expect("valid"), pending)
    }

    /// The POP phase gives exactly the forest's batches (the forest is forced by pretending a
    /// non-POP site is always pending).
    #[test]
    fn the_pop_phase_chooses_what_the_forest_chooses() {
        let mut phases = 0;
        for seed in 1..200u64 {
            let n = 5 + (seed as usize * 7) % 60;
            let (t, pending) = mesh(seed, n);
            let m = Mesh::new(&t);
            let (limit, max_pops) = ([0, 0, 2, 5][seed as usize % 4], [1, 1, 2][seed as usize % 3]);
            let new = || {
                FewestPlanner::new(
                    SiteGraph::build(&m, &t),
                    pending.clone(),
                    ApPolicy::Group,
                    limit,
                    max_pops,
                )
            };
            let (mut fast, mut slow) = (new(), new());
            loop {
                phases += usize::from(fast.pending_other == 0);
                slow.pending_other = usize::MAX;
                let (a, b) = (fast.next(), slow.next());
                assert_eq!(a.nodes, b.nodes, "seed {seed}");
                let (mut da, mut db) = (a.down.clone(), b.down.clone());
                da.sort_unstable();
                db.sort_unstable();
                assert_eq!(da, db, "seed {seed}");
                assert_eq!(a.explanation, b.explanation, "seed {seed}");
                if a.nodes.is_empty() {
                    break;
                }
                fast.apply(&a);
                slow.apply(&b);
            }
        }
        assert!(phases > 100, "the POP phase ran for {phases} batches only");
    }
}
