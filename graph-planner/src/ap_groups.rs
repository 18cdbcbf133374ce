//! AP groups (reference §3.3), recomputed for every batch from the static DFS tree.
//!
//! Terragraph records only *pending* articulation points and keeps one group per maximal one
//! (sub-APs are absorbed). With the DFS tree, "`d` is cut off by `u`" means "`d` lies in the
//! subtree of an AP child of `u`", so one preorder pass assigns every site to the outermost
//! pending AP above it: the same result as Terragraph's BFS-and-absorb loop, in O(sites).

use crate::site_graph::{SiteGraph, NONE, ROOT};
use crate::ApPolicy;

pub(crate) struct Groups {
    /// `v` is the key of an AP group this batch.
    pub is_key: Vec<bool>,
    /// The key whose group `v` belongs to, `NONE` otherwise (a key is not its own member).
    pub member_of: Vec<u32>,
    /// Pending nodes rebooted when `v` is chosen: its own, plus its members' when it is a key.
    pub cand_nodes: Vec<u32>,
}

impl Groups {
    /// A placeholder while the planner's groups are lent out.
    pub fn empty() -> Groups {
        Groups { is_key: Vec::new(), member_of: Vec::new(), cand_nodes: Vec::new() }
    }

    /// `pending[v]` = pending online nodes of site `v`.
    ///
    /// With [`ApPolicy::Group`] every maximal pending AP is a key (Terragraph). With
    /// [`ApPolicy::DependentsFirst`] a pending AP becomes a key only once nothing it cuts off is
    /// pending: until then the traversal walks through it, so its dependents are planned as ordinary
    /// leaves (isolating nobody) and the AP itself, never a leaf while it has undiscovered
    /// dependents, waits.
    pub fn compute(g: &SiteGraph, pending: &[u32], policy: ApPolicy) -> Groups {
        let n = g.len();
        let t = &g.tree;
        let mut is_key = vec![false; n];
        let mut member_of = vec![NONE; n];
        let mut cand_nodes = pending.to_vec();

        // Pending sites in each subtree, for the dependents-first rule.
        let subtree_pending = match policy {
            ApPolicy::Group => Vec::new(),
            ApPolicy::DependentsFirst => {
                let mut sp: Vec<u32> = (0..n).map(|v| u32::from(pending[v] > 0)).collect();
                for &v in t.order.iter().rev() {
                    let p = t.parent[v as usize];
                    if p != ROOT {
                        sp[p as usize] += sp[v as usize];
                    }
                }
                sp
            }
        };

        for &v in &t.order {
            let vi = v as usize;
            let p = t.parent[vi];
            if p != ROOT {
                let pi = p as usize;
                member_of[vi] = if is_key[pi] && t.ap_child[vi] { p } else { member_of[pi] };
            }
            if member_of[vi] == NONE && pending[vi] > 0 && t.has_ap_child[vi] {
                is_key[vi] = match policy {
                    ApPolicy::Group => true,
                    ApPolicy::DependentsFirst => {
                        // Own pending count is 1 in subtree_pending; non-AP children are not cut off.
                        let mut cut_pending = 0;
                        let end = t.pre[vi] + t.size[vi];
                        let mut q = t.pre[vi] + 1;
                        while q < end {
                            let c = t.order[q as usize] as usize;
                            if t.ap_child[c] {
                                cut_pending += subtree_pending[c];
                            }
                            q += t.size[c];
                        }
                        cut_pending == 0
                    }
                };
            }
        }
        for &v in &t.order {
            let k = member_of[v as usize];
            if k != NONE {
                cand_nodes[k as usize] += pending[v as usize];
            }
        }
        Groups { is_key, member_of, cand_nodes }
    }
}
