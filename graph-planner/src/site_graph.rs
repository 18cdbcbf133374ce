//! The site graph of reference §3.1 and its DFS tree from the virtual POP root (§3.2).
//!
//! Built once per plan: in a dry run the topology does not change between batches, only the
//! pending set does, and articulation points depend on the structure alone (whether an AP is
//! *recorded* depends on the pending set, which [`crate::ap_groups`] applies per batch). That is
//! what makes a 3 000-batch plan of a 100 000-site mesh affordable: the per-batch work is a few
//! linear passes over flat arrays, never a rebuild.

use meshlift_protocol::topology::Topology;
use petgraph::csr::Csr;
use petgraph::Directed;
use rustc_hash::FxHashMap;

/// Marks "no vertex" (also the virtual root's parent) in the `u32` index arrays.
pub(crate) const NONE: u32 = u32::MAX;
/// The virtual root joined to every POP site; never a real site index.
pub(crate) const ROOT: u32 = u32::MAX - 1;

/// Sites with at least one online node, their live inter-site adjacency, and the static DFS tree.
pub(crate) struct SiteGraph<'t> {
    pub topo: &'t Topology,
    /// Vertex names sorted ascending: vertex index order *is* name order, which makes every
    /// "iterate by name" in the planner a plain index loop.
    pub names: Vec<&'t str>,
    pub pop: Vec<bool>,
    /// Online nodes of each site (indices into `topo.nodes`), sorted by node name.
    pub nodes: Vec<Vec<u32>>,
    /// Site index of every topology node, `NONE` for offline nodes (they are not in the graph).
    pub site_of_node: Vec<u32>,
    /// Topology node index by name.
    pub node_index: FxHashMap<&'t str, u32>,
    /// Live inter-site links, both directions, neighbours sorted (= by name).
    adj: Csr<(), (), Directed, u32>,
    /// Node count of the whole topology: Terragraph's cap when `limit <= 0`.
    pub total_nodes: usize,
    pub tree: DfsTree,
}

/// Hopcroft–Tarjan DFS from the virtual root, computed iteratively (100k-site meshes would
/// overflow the stack with recursion).
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

impl<'t> SiteGraph<'t> {
    pub fn build(topo: &'t Topology) -> SiteGraph<'t> {
        // One pass over the nodes with a fast (non-DoS-resistant, fine for a validated local
        // file) hasher: string hashing dominates the cost of a single batch on a large mesh.
        let mut node_index: FxHashMap<&'t str, u32> =
            FxHashMap::with_capacity_and_hasher(topo.nodes.len(), Default::default());
        let mut online_sites: Vec<&str> = Vec::new();
        let mut last_site = "";
        for (i, node) in topo.nodes.iter().enumerate() {
            node_index.insert(node.name.as_str(), i as u32);
            if node.status.is_online() && (online_sites.is_empty() || node.site_name != last_site) {
                online_sites.push(node.site_name.as_str());
                last_site = node.site_name.as_str();
            }
        }
        online_sites.sort_unstable();
        online_sites.dedup();
        let index: FxHashMap<&str, u32> =
            online_sites.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect();
        let n = online_sites.len();

        let mut pop = vec![false; n];
        let mut nodes: Vec<Vec<u32>> = vec![Vec::new(); n];
        // Vertex of every node's site (also for offline nodes: their live links still count).
        let mut vertex_of_node = vec![NONE; topo.nodes.len()];
        let mut site_of_node = vec![NONE; topo.nodes.len()];
        let (mut last_site, mut last_vertex) = ("", NONE);
        for (i, node) in topo.nodes.iter().enumerate() {
            let v = if node.site_name == last_site && i > 0 {
                last_vertex
            } else {
                index.get(node.site_name.as_str()).copied().unwrap_or(NONE)
            };
            (last_site, last_vertex) = (node.site_name.as_str(), v);
            vertex_of_node[i] = v;
            if !node.status.is_online() {
                continue;
            }
            site_of_node[i] = v;
            nodes[v as usize].push(i as u32);
            pop[v as usize] |= node.pop_node;
        }
        for list in &mut nodes {
            if list.len() > 1 {
                list.sort_unstable_by(|a, b| topo.nodes[*a as usize].name.cmp(&topo.nodes[*b as usize].name));
            }
        }

        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(topo.links.len() * 2);
        for link in topo.links.iter().filter(|l| l.is_alive) {
            let (Some(&a), Some(&z)) =
                (node_index.get(link.a_node_name.as_str()), node_index.get(link.z_node_name.as_str()))
            else {
                continue; // Topology::new guarantees both ends exist
            };
            // Terragraph maps a live link to the sites of its ends whatever the ends' status: a
            // live link of an offline node still joins two sites that have other online nodes.
            let (sa, sz) = (vertex_of_node[a as usize], vertex_of_node[z as usize]);
            if sa == NONE || sz == NONE || sa == sz {
                continue; // a site with no online node is not a vertex; intra-site links vanish
            }
            edges.push((sa, sz));
            edges.push((sz, sa));
        }
        edges.sort_unstable();
        edges.dedup();
        let mut adj = Csr::<(), (), Directed, u32>::from_sorted_edges(&edges)
            .expect("edges were sorted and deduplicated just above");
        while adj.node_count() < n {
            adj.add_node(());
        }

        let tree = DfsTree::compute(&adj, &pop);
        SiteGraph {
            topo,
            names: online_sites,
            pop,
            nodes,
            site_of_node,
            node_index,
            adj,
            total_nodes: topo.nodes.len(),
            tree,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn neighbors(&self, v: u32) -> &[u32] {
        self.adj.neighbors_slice(v)
    }

    pub fn name(&self, v: u32) -> &'t str {
        self.names[v as usize]
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
    fn compute(adj: &Csr<(), (), Directed, u32>, pop: &[bool]) -> DfsTree {
        let n = pop.len();
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
        for root_child in (0..n as u32).filter(|&p| pop[p as usize]) {
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
                let nb = adj.neighbors_slice(u);
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
