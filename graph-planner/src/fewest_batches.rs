//! [`PlanStrategy::FewestBatches`](crate::PlanStrategy): as few reboot cycles as the safety rules
//! allow.
//!
//! Terragraph's batch is the leaves of one biased traversal, so a mesh takes about as many batches
//! as that tree is deep (6 on the 10 000-site street grid with POPs unlimited, where one batch
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

use crate::ap_groups::Groups;
use crate::batch::{Chosen, Planner};
use crate::site_graph::{SiteGraph, NONE};
use crate::ApPolicy;
use std::collections::VecDeque;
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
        FewestPlanner { g, node_pending, site_pending, policy, cap, limit, max_pops: max_pops.max(1) }
    }

    /// Choose the next batch without applying it.
    pub fn next(&self) -> Chosen {
        let g = &self.g;
        let c = choose(g, &self.site_pending, self.policy, self.cap, self.max_pops, || {
            Planner::new(g.clone(), self.node_pending.clone(), self.policy, self.limit, self.max_pops)
        });
        let mut nodes: Vec<u32> = c
            .sites
            .iter()
            .flat_map(|&s| g.nodes(s).iter().copied().filter(|&node| self.node_pending[node as usize]))
            .collect();
        let rank = &g.mesh.node_rank;
        nodes.sort_unstable_by_key(|&node| rank[node as usize]);
        let mut sites = c.sites.clone();
        sites.sort_unstable_by_key(|&s| g.mesh.site_rank[s as usize]);
        let waiting = self.site_pending.iter().filter(|&&p| p > 0).count() - c.sites.len();
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
            for &node in self.g.nodes(s) {
                self.node_pending[node as usize] = false;
            }
            self.site_pending[s as usize] = 0;
        }
    }
}

/// One batch chosen by the fewest-batches strategy.
struct FewestChoice {
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
    if down.is_empty() && site_pending.iter().enumerate().any(|(v, &p)| p > 0 && g.tree.reachable(v as u32)) {
        let mut planner = terragraph();
        let chosen = planner.next();
        let mut c = FewestChoice { sites: Vec::new(), down: Vec::new(), nodes: 0, pops: 0, fallback: true };
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
        return c;
    }
    let sites: Vec<u32> = down.iter().copied().filter(|&v| site_pending[v as usize] > 0).collect();
    FewestChoice { sites, down, nodes: used, pops: pops_used, fallback: false }
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

/// A spanning forest of the sites a POP reaches, grown from every POP site at once.
struct Forest {
    /// Tree parent; `NONE` for a root (a POP site) and for unreachable sites.
    parent: Vec<u32>,
    /// Reached sites, parents before children.
    order: Vec<u32>,
}

impl Forest {
    /// 0-1 BFS: a pending site costs 1 to enter (a POP root costs its own pending flag), an
    /// upgraded one 0. Ties go to the first to reach a site (POPs and neighbours by name).
    fn grow(g: &SiteGraph, site_pending: &[u32]) -> Forest {
        let n = g.len();
        let cost = |v: u32| u32::from(site_pending[v as usize] > 0);
        let mut dist = vec![u32::MAX; n];
        let mut parent = vec![NONE; n];
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(g.tree.order.len());
        let mut queue: VecDeque<u32> = VecDeque::with_capacity(n);
        for &p in &g.pops {
            if cost(p) == 0 {
                dist[p as usize] = 0;
                queue.push_back(p);
            }
        }
        for &p in &g.pops {
            if cost(p) == 1 {
                dist[p as usize] = 1;
                queue.push_back(p);
            }
        }
        while let Some(v) = queue.pop_front() {
            let vi = v as usize;
            if done[vi] {
                continue;
            }
            done[vi] = true;
            order.push(v);
            for &w in g.neighbors(v) {
                let wi = w as usize;
                let d = dist[vi] + cost(w);
                if !done[wi] && d < dist[wi] {
                    dist[wi] = d;
                    parent[wi] = v;
                    if d == dist[vi] {
                        queue.push_front(w);
                    } else {
                        queue.push_back(w);
                    }
                }
            }
        }
        Forest { parent, order }
    }
}
