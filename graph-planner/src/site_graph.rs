//! The site graph of reference §3.1 and its DFS tree from the virtual POP root (§3.2).
//!
//! Built once per plan (and once per batch the controller asks for): in a dry run the topology
//! does not change between batches, only the pending set does, and articulation points depend on
//! the structure alone (whether an AP is *recorded* depends on the pending set, which
//! [`crate::ap_groups`] applies). Building it reads the live node and link states by index
//! against an interned [`Mesh`]: no name is hashed per batch.

use crate::mesh::Mesh;
use meshlift_protocol::topology::Topology;

/// Marks "no vertex" (also the virtual root's parent) in the `u32` index arrays.
pub(crate) const NONE: u32 = u32::MAX;
/// The virtual root joined to every POP site; never a real site index.
pub(crate) const ROOT: u32 = u32::MAX - 1;

/// Every site of the mesh is a vertex (see [`Mesh`] for the numbering); a site with no online node has no
/// edges, is no POP and is never reached, which is what leaving it out of the graph means.
#[derive(Clone)]
pub(crate) struct SiteGraph<'m> {
    pub mesh: &'m Mesh,
    /// Sites with an online POP node.
    pub pop: Vec<bool>,
    /// The same sites listed by name: the virtual root's children, and the walk's seeds.
    pub pops: Vec<u32>,
    /// Online nodes of site `s` (by name): `online[online_start[s]..online_start[s + 1]]`.
    online_start: Vec<u32>,
    online: Vec<u32>,
    /// Site of every topology node, `NONE` for offline nodes (they are not in the graph).
    pub site_of_node: Vec<u32>,
    /// Live inter-site links, both directions, neighbours by name: the neighbours of `v` are
    /// `adj[adj_start[v]..adj_start[v + 1]]`. (A plain CSR rather than petgraph's, which wants
    /// neighbours in index order.)
    adj_start: Vec<u32>,
    adj: Vec<u32>,
    pub tree: DfsTree,
}

/// Hopcroft–Tarjan DFS from the virtual root, computed iteratively (100k-site meshes would
/// overflow the stack with recursion).
#[derive(Clone)]
pub(crate) struct DfsTree {
    /// Tree parent; `ROOT` for a POP discovered from the root, `NONE` when unreachable.
    pub parent: Vec<u32>,
    /// Vertices reachable from a POP, in DFS preorder.
    pub order: Vec<u32>,
    /// Position of each vertex in `order` (`NONE` when unreachable).
    pub pre: Vec<u32>,
    /// Subtree size: the subtree of `v` is `order[pre[v] .. pre[v] + size[v]]`.
    pub size: Vec<u32>,
    /// `low[c] >= disc[parent[c]]` with a real-site parent: removing the parent cuts `c`'s whole
    /// subtree off from every POP.
    pub ap_child: Vec<bool>,
    /// Some child of `v` is an `ap_child`: `v` is an articulation point relative to the POPs.
    pub has_ap_child: Vec<bool>,
}

impl<'m> SiteGraph<'m> {
    /// `live` must fit `mesh` ([`Mesh::fits`]).
    pub fn build(mesh: &'m Mesh, live: &Topology) -> SiteGraph<'m> {
        let n = mesh.sites();
        let mut pop = vec![false; n];
        let mut present = vec![false; n];
        let mut site_of_node = vec![NONE; live.nodes.len()];
        for (i, node) in live.nodes.iter().enumerate() {
            if node.status.is_online() {
                let s = mesh.site_of_node[i];
                site_of_node[i] = s;
                present[s as usize] = true;
                pop[s as usize] |= node.pop_node;
            }
        }
        let mut online_start = Vec::with_capacity(n + 1);
        let mut online = Vec::with_capacity(live.nodes.len());
        for s in 0..n as u32 {
            online_start.push(online.len() as u32);
            online.extend(mesh.nodes_of(s).iter().filter(|&&i| site_of_node[i as usize] != NONE));
        }
        online_start.push(online.len() as u32);

        // One sequential pass: the pairs below visit links in site order, and a `Link` is a wide
        // struct, so reading `is_alive` through them directly misses the cache at every link.
        let alive: Vec<bool> = live.links.iter().map(|l| l.is_alive).collect();
        let mut adj_start = vec![0u32; n + 1];
        let mut adj: Vec<u32> = Vec::with_capacity(mesh.pair_site.len());
        for s in 0..n as u32 {
            adj_start[s as usize] = adj.len() as u32;
            if !present[s as usize] {
                continue;
            }
            for (t, pair) in mesh.pairs_of(s) {
                // Terragraph maps a live link to the sites of its ends whatever the ends' status:
                // a live link of an offline node still joins two sites with other online nodes.
                if present[t as usize] && mesh.links_of_pair(pair).iter().any(|&l| alive[l as usize]) {
                    adj.push(t);
                }
            }
        }
        adj_start[n] = adj.len() as u32;

        let pops: Vec<u32> = mesh.by_rank.iter().copied().filter(|&p| pop[p as usize]).collect();
        let tree = DfsTree::compute(
            |v| &adj[adj_start[v as usize] as usize..adj_start[v as usize + 1] as usize],
            n,
            &pops,
            &pop,
        );
        SiteGraph { mesh, pop, pops, online_start, online, site_of_node, adj_start, adj, tree }
    }

    /// Online nodes of site `v`, by name.
    pub fn nodes(&self, v: u32) -> &[u32] {
        &self.online[self.online_start[v as usize] as usize..self.online_start[v as usize + 1] as usize]
    }

    /// Node count of the whole topology: Terragraph's cap when `limit <= 0`.
    pub fn total_nodes(&self) -> usize {
        self.site_of_node.len()
    }

    pub fn len(&self) -> usize {
        self.pop.len()
    }

    /// Live neighbour sites of `v`, by name.
    pub fn neighbors(&self, v: u32) -> &[u32] {
        &self.adj[self.adj_start[v as usize] as usize..self.adj_start[v as usize + 1] as usize]
    }

    pub fn name(&self, v: u32) -> &'m str {
        &self.mesh.site_names[v as usize]
    }

    /// The sites a chosen candidate takes down: itself, and its AP group when it is a key.
    pub fn with_group(&self, c: u32, is_key: bool) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(c).chain(is_key.then(|| self.cut_off(c)).into_iter().flatten())
    }

    /// Sites cut off by `key` (the AP children's subtrees), in preorder.
    pub fn cut_off(&self, key: u32) -> impl Iterator<Item = u32> + '_ {
        let t = &self.tree;
        let start = t.pre[key as usize] as usize + 1;
        let end = t.pre[key as usize] as usize + t.size[key as usize] as usize;
        // Walk the children of `key` (each child's subtree is contiguous in preorder).
        let mut children = Vec::new();
        let mut p = start;
        while p < end {
            let c = t.order[p];
            children.push(c);
            p += t.size[c as usize] as usize;
        }
        children.into_iter().filter(|c| t.ap_child[*c as usize]).flat_map(move |c| {
            t.order[t.pre[c as usize] as usize..(t.pre[c as usize] + t.size[c as usize]) as usize]
                .iter()
                .copied()
        })
    }
}

impl DfsTree {
    /// `roots`: the POP sites by name (the virtual root's children in Terragraph's order).
    fn compute<'a>(neighbors: impl Fn(u32) -> &'a [u32], n: usize, roots: &[u32], pop: &[bool]) -> DfsTree {
        let mut disc = vec![u32::MAX; n];
        let mut low = vec![u32::MAX; n];
        let mut parent = vec![NONE; n];
        let mut pre = vec![NONE; n];
        let mut size = vec![0u32; n];
        let mut ap_child = vec![false; n];
        let mut has_ap_child = vec![false; n];
        let mut order = Vec::with_capacity(n);
        // The root has discovery time 0; real sites start at 1.
        let mut clock = 1u32;
        let mut stack: Vec<(u32, usize)> = Vec::new();
        for &root_child in roots {
            if disc[root_child as usize] != u32::MAX {
                continue;
            }
            parent[root_child as usize] = ROOT;
            disc[root_child as usize] = clock;
            low[root_child as usize] = clock;
            clock += 1;
            pre[root_child as usize] = order.len() as u32;
            order.push(root_child);
            stack.push((root_child, 0));
            while let Some(top) = stack.last_mut() {
                let u = top.0;
                let nb = neighbors(u);
                if top.1 < nb.len() {
                    let w = nb[top.1];
                    top.1 += 1;
                    if disc[w as usize] == u32::MAX {
                        parent[w as usize] = u;
                        disc[w as usize] = clock;
                        low[w as usize] = clock;
                        clock += 1;
                        pre[w as usize] = order.len() as u32;
                        order.push(w);
                        stack.push((w, 0));
                    } else if w != parent[u as usize] {
                        low[u as usize] = low[u as usize].min(disc[w as usize]);
                    }
                    continue;
                }
                stack.pop();
                // A POP's edge to the virtual root is a back edge unless it is its tree edge.
                if pop[u as usize] && parent[u as usize] != ROOT {
                    low[u as usize] = 0;
                }
                size[u as usize] = order.len() as u32 - pre[u as usize];
                if let Some(&(p, _)) = stack.last() {
                    low[p as usize] = low[p as usize].min(low[u as usize]);
                    if low[u as usize] >= disc[p as usize] {
                        ap_child[u as usize] = true;
                        has_ap_child[p as usize] = true;
                    }
                }
            }
        }
        DfsTree { parent, order, pre, size, ap_child, has_ap_child }
    }

    pub fn reachable(&self, v: u32) -> bool {
        self.pre[v as usize] != NONE
    }
}
