//! The spanning forest each fewest-batches batch is chosen on.

use crate::site_graph::{SiteGraph, NONE};
use std::collections::VecDeque;

/// A spanning forest of the sites a POP reaches, grown from every POP site at once.
pub(super) struct Forest {
    /// Tree parent; `NONE` for a root (a POP site) and for unreachable sites.
    pub parent: Vec<u32>,
    /// Reached sites, parents before children.
    pub order: Vec<u32>,
}

impl Forest {
    /// 0-1 BFS: a pending site costs 1 to enter (a POP root costs its own pending flag), an
    /// upgraded one 0. Ties go to the first to reach a site (POPs and neighbours by name).
    pub fn grow(g: &SiteGraph, site_pending: &[u32]) -> Forest {
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
