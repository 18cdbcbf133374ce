//! The forest's batch without the forest, once every pending site a POP reaches is a POP site or
//! in a POP's AP group (under [`crate::ApPolicy::Group`]).
//!
//! With one POP site per batch that is most of a plan: the 100 000-site meshes need ~3 000 such
//! batches, and growing a forest over every site for each was ~13 ms a batch, 40 s a plan.
//!
//! Why it is the same batch: in the 0-1 BFS the upgraded POPs (cost 0) first flood their
//! components of upgraded sites (*anchored* components). No pending site is entered from them: the
//! pending POPs are roots already at distance 1, and a POP's group members are reachable only
//! through it. Then the pending POPs settle in name order, each flooding, at distance 1, the
//! components of upgraded sites that are not anchored and that no earlier pending POP touched
//! (they *claim* them), before the next one settles. A pending POP's subtree can go down whole iff
//! it claimed nothing but its own AP group's members (which are cut off with it anyway); its
//! pending group members hang below it at distance 2. Nothing else is pending, so the greedy takes
//! the pending POPs that claimed nothing, in name order, while the limit and the POP quota allow
//! — which is what [`PopPhase::choose`] does with a union-find of the upgraded sites (upgrades
//! only ever merge its components).

use super::FewestChoice;
use crate::ap_groups::Groups;
use crate::site_graph::SiteGraph;
use petgraph::unionfind::UnionFind;

pub(super) struct PopPhase {
    /// Components of upgraded sites (live links between sites with no pending node).
    upgraded: UnionFind<u32>,
    /// Per component root: it holds an upgraded POP site.
    anchored: Vec<bool>,
    /// Per component root: `claimed[root] == epoch` when a pending POP claimed it this batch.
    claimed: Vec<u32>,
    epoch: u32,
}

impl PopPhase {
    pub fn new(g: &SiteGraph, site_pending: &[u32]) -> PopPhase {
        let n = g.len();
        let mut upgraded = UnionFind::new(n);
        for v in 0..n as u32 {
            if site_pending[v as usize] == 0 {
                for &m in g.neighbors(v) {
                    if m > v && site_pending[m as usize] == 0 {
                        upgraded.union(v, m);
                    }
                }
            }
        }
        let mut anchored = vec![false; n];
        for &p in &g.pops {
            if site_pending[p as usize] == 0 {
                let root = upgraded.find_mut(p);
                anchored[root as usize] = true;
            }
        }
        PopPhase { upgraded, anchored, claimed: vec![0; n], epoch: 0 }
    }

    /// Site `s` has just turned upgraded (`site_pending[s]` is already 0).
    pub fn upgraded(&mut self, g: &SiteGraph, site_pending: &[u32], s: u32) {
        let mut anchored = g.pop[s as usize] || self.anchored[self.upgraded.find_mut(s) as usize];
        for &m in g.neighbors(s) {
            if site_pending[m as usize] == 0 {
                anchored |= self.anchored[self.upgraded.find_mut(m) as usize];
                self.upgraded.union(s, m);
            }
        }
        let root = self.upgraded.find_mut(s);
        self.anchored[root as usize] = anchored;
    }

    /// The batch: pending POP sites (by name) that claim no component but their own group's, while
    /// `cap` nodes and `max_pops` POP sites allow. Empty when none can go.
    pub fn choose(
        &mut self,
        g: &SiteGraph,
        site_pending: &[u32],
        groups: &Groups,
        pending_pops: &[u32],
        cap: usize,
        max_pops: u32,
    ) -> FewestChoice {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut c = FewestChoice { sites: Vec::new(), down: Vec::new(), nodes: 0, pops: 0, fallback: false };
        for &p in pending_pops {
            if c.nodes >= cap || c.pops >= max_pops {
                // No later POP can join, and claims only matter to later POPs.
                break;
            }
            let mut claims = false;
            for &m in g.neighbors(p) {
                if site_pending[m as usize] > 0 || groups.member_of[m as usize] == p {
                    continue;
                }
                let root = self.upgraded.find_mut(m) as usize;
                if !self.anchored[root] && self.claimed[root] != epoch {
                    self.claimed[root] = epoch;
                    claims = true;
                }
            }
            if claims {
                continue;
            }
            let size = groups.cand_nodes[p as usize] as usize;
            if c.nodes + size <= cap || c.nodes == 0 {
                c.nodes += size;
                c.pops += 1;
                for s in g.with_group(p, groups.is_key[p as usize]) {
                    c.down.push(s);
                    if site_pending[s as usize] > 0 {
                        c.sites.push(s);
                    }
                }
            }
        }
        c
    }
}
