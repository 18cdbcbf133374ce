//! One batch: the biased traversal and leaf selection of reference §3.4, plus the explanation.
//!
//! The traversal is Terragraph's two-stack LIFO walk with one fixed iteration order (POPs and
//! neighbours by name, pushed in reverse so the smallest name is popped first; upgraded sites
//! always before pending ones), so the batch is one GraphHelper could return and never depends on
//! hashing.

use crate::ap_groups::Groups;
use crate::site_graph::{SiteGraph, NONE};
use crate::walk::{Rules, Wait, Walk};
use crate::ApPolicy;
use petgraph::unionfind::UnionFind;
use std::fmt::Write;

/// Sites listed by name per reason in an explanation; the rest are counted. A 100 000-site plan
/// would otherwise carry gigabytes of "waits because…" text.
const EXAMPLES_PER_REASON: usize = 12;

/// Mutable per-plan state over a static [`SiteGraph`].
pub(crate) struct Planner<'t> {
    pub g: SiteGraph<'t>,
    /// Pending flag per topology node (offline ones included, they just never get chosen).
    pub node_pending: Vec<bool>,
    /// Pending online nodes per site.
    pub site_pending: Vec<u32>,
    pub policy: ApPolicy,
    pub cap: usize,
    pub limit: i64,
    pub max_pops: u32,
    epoch: u32,
    /// Terragraph's traversal, kept between batches and replayed only where the last batch
    /// changed it.
    walk: Walk,
    /// AP groups of the current pending set. With [`ApPolicy::Group`] they only ever lose the keys
    /// a batch takes (a group goes whole, and no site outside a group is an articulation point
    /// that could become a key), so they are computed once per plan; with
    /// [`ApPolicy::DependentsFirst`] keys appear as dependents finish, and they are recomputed.
    groups: Groups,
    /// Pending sites reachable from a POP that are neither POP sites nor in the AP group of a
    /// pending POP site. At zero the traversal takes the POP-only shortcut (pending sites cut off
    /// from every POP never enter the traversal, and a real mesh usually has a few for the whole
    /// plan; a POP's group is reachable only through that POP, which skips it).
    pending_non_pop: usize,
    /// Connected components of the upgraded sites (live inter-site links between sites with no
    /// pending node), built the first time only POP sites are pending and kept up to date by
    /// [`Planner::apply`]: upgrades only ever merge components.
    upgraded: Option<UnionFind<u32>>,
    /// `comp_seen[root] == epoch`: the traversal has flooded that upgraded component.
    comp_seen: Vec<u32>,
    /// Sites with a pending node, by name: the per-batch bookkeeping (reasons,
    /// explanation) walks these instead of every site, which matters once few are left.
    pending_sites: Vec<u32>,
    /// `in_batch[v] == epoch`: `v` is in the batch being chosen.
    in_batch: Vec<u32>,
}

/// What [`Planner::next`] chose.
pub(crate) struct Chosen {
    /// Candidate sites taken (keys stand for their group), in traversal order.
    pub candidates: Vec<u32>,
    /// Per candidate: it is the key of an AP group, whose sites go with it.
    pub is_key: Vec<bool>,
    pub nodes: Vec<String>,
    pub sites: Vec<String>,
    pub explanation: String,
    pub warnings: Vec<String>,
    /// Sites down or cut off from every POP while the batch reboots (its own sites and the
    /// upgraded members of AP groups it takes): the batch's blast radius.
    pub down: Vec<u32>,
}

impl<'t> Planner<'t> {
    pub fn new(
        g: SiteGraph<'t>,
        node_pending: Vec<bool>,
        policy: ApPolicy,
        limit: i64,
        max_pops: u32,
    ) -> Planner<'t> {
        let mut site_pending = vec![0u32; g.len()];
        for (i, &p) in node_pending.iter().enumerate() {
            let s = g.site_of_node[i];
            if p && s != NONE {
                site_pending[s as usize] += 1;
            }
        }
        let cap = if limit > 0 { usize::try_from(limit).unwrap_or(usize::MAX) } else { g.total_nodes() };
        let n = g.len();
        let by_name = &g.mesh.by_rank;
        let groups = Groups::compute(&g, &site_pending, policy);
        let pending_non_pop =
            (0..n as u32).filter(|&v| Self::blocks_shortcut(&g, &site_pending, &groups, v)).count();
        let pending_sites: Vec<u32> =
            by_name.iter().copied().filter(|&v| site_pending[v as usize] > 0).collect();
        let walk = Walk::new(n, g.pops.len());
        Planner {
            g,
            node_pending,
            site_pending,
            policy,
            cap,
            limit,
            max_pops: max_pops.max(1),
            epoch: 0,
            walk,
            groups,
            pending_non_pop,
            upgraded: None,
            comp_seen: vec![0; n],
            pending_sites,
            in_batch: vec![0; n],
        }
    }

    /// A pending, reachable site that is neither a POP site nor in a POP's AP group: the
    /// traversal could push it after the seeding.
    fn blocks_shortcut(g: &SiteGraph, site_pending: &[u32], groups: &Groups, v: u32) -> bool {
        let vi = v as usize;
        let key = groups.member_of[vi];
        site_pending[vi] > 0 && !g.pop[vi] && g.tree.reachable(v) && !(key != NONE && g.pop[key as usize])
    }

    /// AP groups of the pending set as it is now.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Choose the next batch without applying it.
    pub fn next(&mut self) -> Chosen {
        if self.policy == ApPolicy::DependentsFirst && self.epoch > 0 {
            self.groups = Groups::compute(&self.g, &self.site_pending, self.policy);
        }
        let groups = std::mem::replace(&mut self.groups, Groups::empty());
        self.epoch += 1;

        let (candidates, batch_nodes, pops_taken) = if self.pending_non_pop == 0 {
            self.walk.clear();
            self.walk_pops_only(&groups)
        } else {
            let rules = Rules {
                g: &self.g,
                pops: &self.g.pops,
                pending: &self.site_pending,
                groups: &groups,
                cap: self.cap,
                max_pops: self.max_pops,
            };
            let (batch_nodes, pops_taken) = self.walk.run(&rules, self.policy);
            (self.walk.candidates(), batch_nodes, pops_taken)
        };
        let g = &self.g;
        let pending = &self.site_pending;

        let epoch = self.epoch;
        let in_batch = &mut self.in_batch;
        let mut batch_nodes_idx: Vec<u32> = Vec::with_capacity(batch_nodes);
        let mut sites: Vec<u32> = Vec::new();
        for &c in &candidates {
            for s in g.with_group(c, groups.is_key[c as usize]) {
                if pending[s as usize] == 0 {
                    continue;
                }
                in_batch[s as usize] = epoch;
                sites.push(s);
                batch_nodes_idx.extend(g.nodes(s).iter().filter(|&&node| self.node_pending[node as usize]));
            }
        }
        let rank = &g.mesh.node_rank;
        batch_nodes_idx.sort_unstable_by_key(|&node| rank[node as usize]);
        let node_names: Vec<String> =
            batch_nodes_idx.iter().map(|&node| g.mesh.node_names[node as usize].to_string()).collect();
        sites.sort_unstable_by_key(|&s| g.mesh.site_rank[s as usize]);

        let warnings = self.oversize_warning(&candidates, &groups, batch_nodes).into_iter().collect();
        let explanation = self.explain(&candidates, &groups, batch_nodes, pops_taken);
        let is_key: Vec<bool> = candidates.iter().map(|&c| groups.is_key[c as usize]).collect();
        let down = candidates.iter().zip(&is_key).flat_map(|(&c, &k)| g.with_group(c, k)).collect();
        self.groups = groups;
        Chosen {
            candidates,
            is_key,
            nodes: node_names,
            sites: sites.iter().map(|&s| g.name(s).to_string()).collect(),
            explanation,
            warnings,
            down,
        }
    }

    /// The same traversal when every pending site is a POP site, which is most of a plan: with
    /// one POP site per batch, a mesh with 3 000 POP sites needs 3 000 batches once everything
    /// else is upgraded, and walking 100 000 sites for each of them was the bulk of a plan.
    ///
    /// Why it gives the same result: all POP sites are seeded before the walk and every other
    /// pending site is cut off from them, so no pending site is ever pushed later and the order of the upgraded-first flood cannot matter; a flood from
    /// an upgraded site covers exactly its component of upgraded sites. So the walk is: flood the
    /// components of the upgraded POP sites, then pop the pending POP sites by name; each one is
    /// a leaf unless some neighbour (not one of its AP group) lies in a component not yet flooded,
    /// in which case the smallest such neighbour is its first child and those components are
    /// flooded now. Members of a pending POP's AP group are reachable only through it, so no
    /// flood reaches them.
    fn walk_pops_only(&mut self, groups: &Groups) -> (Vec<u32>, usize, u32) {
        let g = &self.g;
        let pending = &self.site_pending;
        let epoch = self.epoch;
        let uf = self.upgraded.get_or_insert_with(|| {
            let mut uf = UnionFind::new(g.len());
            for v in 0..g.len() as u32 {
                if pending[v as usize] == 0 {
                    for &m in g.neighbors(v) {
                        if m > v && pending[m as usize] == 0 {
                            uf.union(v, m);
                        }
                    }
                }
            }
            uf
        });
        let comp_seen = &mut self.comp_seen;
        let wait = &mut self.walk.wait;
        for &p in &g.pops {
            wait[p as usize] = Wait::None;
        }
        for &p in &g.pops {
            if pending[p as usize] == 0 {
                let root = uf.find_mut(p);
                comp_seen[root as usize] = epoch;
            }
        }
        let mut candidates = Vec::new();
        let mut batch_nodes = 0usize;
        let mut pops_taken = 0u32;
        for &cur in &g.pops {
            let ci = cur as usize;
            if pending[ci] == 0 {
                continue;
            }
            let nb = g.neighbors(cur);
            let skips = |m: u32| groups.is_key[ci] && groups.member_of[m as usize] == cur;
            // Every pending site is a seeded POP site, hence seen; an upgraded neighbour is seen
            // once its component has been flooded.
            let mut first_child = NONE;
            for &m in nb {
                if skips(m) || pending[m as usize] > 0 {
                    continue;
                }
                if comp_seen[uf.find_mut(m) as usize] != epoch {
                    first_child = m;
                    break;
                }
            }
            if first_child != NONE {
                for &m in nb {
                    if !skips(m) && pending[m as usize] == 0 {
                        let root = uf.find_mut(m);
                        comp_seen[root as usize] = epoch;
                    }
                }
                wait[ci] = Wait::NotLeaf(first_child);
            } else if pops_taken >= self.max_pops {
                wait[ci] = Wait::PopRule;
            } else {
                let cand = groups.cand_nodes[ci] as usize;
                if batch_nodes + cand <= self.cap || batch_nodes == 0 {
                    batch_nodes += cand;
                    candidates.push(cur);
                    pops_taken += 1;
                    if batch_nodes >= self.cap {
                        break;
                    }
                } else {
                    wait[ci] = Wait::Limit;
                }
            }
        }
        (candidates, batch_nodes, pops_taken)
    }

    /// Mark the chosen nodes upgraded.
    pub fn apply(&mut self, chosen: &Chosen) {
        for (&c, &is_key) in chosen.candidates.iter().zip(&chosen.is_key) {
            for s in self.g.with_group(c, is_key) {
                for &node in self.g.nodes(s) {
                    self.node_pending[node as usize] = false;
                }
                if Self::blocks_shortcut(&self.g, &self.site_pending, &self.groups, s) {
                    self.pending_non_pop -= 1;
                }
                if self.site_pending[s as usize] > 0 {
                    self.walk.upgraded(&self.g, s);
                }
                self.site_pending[s as usize] = 0;
                if let Some(uf) = &mut self.upgraded {
                    for &m in self.g.neighbors(s) {
                        if self.site_pending[m as usize] == 0 {
                            uf.union(s, m);
                        }
                    }
                }
            }
        }
        let site_pending = &self.site_pending;
        self.pending_sites.retain(|&s| site_pending[s as usize] > 0);
        // A taken key's group is upgraded now; its members never come back as pending.
        for (&c, &is_key) in chosen.candidates.iter().zip(&chosen.is_key) {
            if is_key {
                self.groups.is_key[c as usize] = false;
            }
        }
    }

    /// Terragraph lets the first candidate exceed `limit`; say so, because an operator who asked
    /// for batches of 10 should not discover a 400-node reboot in the middle of the night.
    fn oversize_warning(&self, candidates: &[u32], groups: &Groups, batch_nodes: usize) -> Option<String> {
        if self.limit <= 0 || batch_nodes <= self.cap {
            return None;
        }
        let first = *candidates.first()?;
        let g = &self.g;
        let name = g.name(first);
        if groups.is_key[first as usize] {
            let cut = g.cut_off(first).count();
            let mut w = format!(
                "AP group {name} ({} sites, {batch_nodes} pending nodes) exceeds limit {}: every site in it \
                 is cut off from all POPs while {name} reboots, so Terragraph reboots the group at once",
                cut + 1,
                self.limit
            );
            if g.pop[first as usize] && cut + 1 == g.tree.order.len() {
                w.push_str(&format!(
                    "; {name} is the only POP site: exclude its nodes and upgrade them last to stage the network"
                ));
            }
            Some(w)
        } else {
            Some(format!("site {name} alone has {batch_nodes} pending nodes, more than limit {}", self.limit))
        }
    }

    fn explain(&self, candidates: &[u32], groups: &Groups, batch_nodes: usize, pops: u32) -> String {
        let g = &self.g;
        let mut out = String::new();
        if candidates.is_empty() {
            out.push_str("nothing can be upgraded now\n");
        } else {
            let _ = writeln!(
                out,
                "{} nodes at {} candidate site(s), {} POP site(s); limit {}",
                batch_nodes,
                candidates.len(),
                pops,
                if self.limit > 0 { self.limit.to_string() } else { "none".to_string() }
            );
            for &c in candidates {
                let name = g.name(c);
                if groups.is_key[c as usize] {
                    let cut: Vec<&str> = g.cut_off(c).map(|s| g.name(s)).collect();
                    let _ = writeln!(
                        out,
                        "  {name}: a leaf of the upgrade tree and an articulation point; its AP group {{{}}} \
                         loses every POP while it reboots, so it goes along",
                        list(&cut)
                    );
                } else {
                    let kind = if g.pop[c as usize] { "POP site, " } else { "" };
                    let _ = writeln!(out, "  {name}: {kind}a leaf of the upgrade tree: nobody depends on it");
                }
            }
        }
        // Bucket by reason without formatting per site: explanations are built for every batch of
        // plans with thousands of batches over 100 000 sites.
        const KINDS: usize = 6;
        let mut count = [0usize; KINDS];
        let mut examples: [Vec<String>; KINDS] = Default::default();
        for &v in &self.pending_sites {
            let v = v as usize;
            if self.in_batch[v] == self.epoch {
                continue;
            }
            let wait = match self.walk.wait[v] {
                Wait::None if groups.member_of[v] != NONE => Wait::InGroup(groups.member_of[v]),
                Wait::None if !g.tree.reachable(v as u32) => Wait::CutOff,
                // Reachable, not hidden behind a key, yet never popped: the walk stopped early.
                Wait::None => Wait::BatchFull,
                w => w,
            };
            let (kind, label) = match wait {
                Wait::None => continue,
                Wait::NotLeaf(c) => (0, Some(c)),
                Wait::PopRule => (1, None),
                Wait::Limit => (2, None),
                Wait::BatchFull => (3, None),
                Wait::InGroup(k) => (4, Some(k)),
                Wait::CutOff => (5, None),
            };
            count[kind] += 1;
            if examples[kind].len() < EXAMPLES_PER_REASON {
                examples[kind].push(match (kind, label) {
                    (0, Some(c)) => format!("{} (for {})", g.name(v as u32), g.name(c)),
                    (4, Some(k)) => format!("{} (group {})", g.name(v as u32), g.name(k)),
                    _ => g.name(v as u32).to_string(),
                });
            }
        }
        let waiting: usize = count.iter().sum();
        if waiting > 0 {
            let _ = writeln!(out, "{waiting} pending site(s) wait:");
            let reasons = [
                "other sites still reach a POP through them".to_string(),
                format!("the batch already has {} POP site(s), the most allowed", self.max_pops),
                "their nodes do not fit in what is left of the limit".to_string(),
                "the batch was full before the traversal reached them".to_string(),
                "in the AP group of an articulation point that waits".to_string(),
                "cut off from every POP".to_string(),
            ];
            for kind in 0..KINDS {
                if count[kind] == 0 {
                    continue;
                }
                let mut names = examples[kind].join(", ");
                if count[kind] > examples[kind].len() {
                    let _ = write!(names, " … and {} more", count[kind] - examples[kind].len());
                }
                let _ = writeln!(out, "  {}: {names}", reasons[kind]);
            }
        }
        out
    }
}

/// Names joined with ", ", the tail summarised as "… and N more".
fn list(names: &[&str]) -> String {
    let mut s = names.iter().take(EXAMPLES_PER_REASON).copied().collect::<Vec<_>>().join(", ");
    if names.len() > EXAMPLES_PER_REASON {
        let _ = write!(s, " … and {} more", names.len() - EXAMPLES_PER_REASON);
    }
    s
}
