//! The structure of a topology, interned once: what stays the same while nodes reboot and links
//! flap.
//!
//! The controller asks for a batch on the *live* topology before every batch, and the live
//! topology differs from the configured one only in `node.status` and `link.is_alive`. Turning
//! ~900 000 names into indices (nodes, sites, link ends, at 100 000 sites) cost more than the
//! whole rest of a batch, so a [`Mesh`] does it once: node and site indices, each site's nodes
//! sorted by name, and the site-level adjacency with the links behind every site pair. A batch
//! then reads the live states by index and builds its site graph with linear passes over flat
//! arrays ([`crate::site_graph::SiteGraph::build`]).

use meshlift_protocol::Topology;
use rustc_hash::FxHashMap;

/// Interned structure of one topology. Build it once per configured topology (the controller's
/// engine keeps one) and pass live copies of that topology to [`Mesh::next_batch`] and
/// [`Mesh::plan_all`].
pub struct Mesh {
    /// Node names in topology order.
    pub(crate) node_names: Vec<Box<str>>,
    /// Position of each node's name in name order: a batch's nodes are sorted by it, not by
    /// comparing strings (a first batch on a large mesh holds ~100 000 nodes).
    pub(crate) node_rank: Vec<u32>,
    /// Nodes in name order (the inverse of `node_rank`): pending names, which come sorted, are
    /// matched against it by a galloping merge instead of ~250 000 hash lookups.
    pub(crate) by_name: Vec<u32>,
    pub(crate) link_names: Vec<Box<str>>,
    /// Names of the sites that hold nodes, by site index. Site indices follow a breadth-first
    /// order of the mesh, not name order, so that neighbours sit close together in every
    /// per-site array: on a mesh whose names say nothing about geography, a traversal in name
    /// order misses the cache at nearly every neighbour (that was half of a plan's time).
    pub(crate) site_names: Vec<Box<str>>,
    /// Position of each site's name in name order; every "by name" in the planner compares these.
    pub(crate) site_rank: Vec<u32>,
    /// Sites in name order (the inverse of `site_rank`).
    pub(crate) by_rank: Vec<u32>,
    /// Site of every node.
    pub(crate) site_of_node: Vec<u32>,
    /// Nodes of site `s`: `site_nodes[site_node_start[s]..site_node_start[s + 1]]`, by name.
    pub(crate) site_node_start: Vec<u32>,
    pub(crate) site_nodes: Vec<u32>,
    /// Site pairs joined by at least one link between different sites, both directions: the
    /// neighbours of site `s` are `pair_site[pair_start[s]..pair_start[s + 1]]` (by name), and
    /// the links of pair `p` are `pair_links[pair_link_start[p]..pair_link_start[p + 1]]`.
    pub(crate) pair_start: Vec<u32>,
    pub(crate) pair_site: Vec<u32>,
    pub(crate) pair_link_start: Vec<u32>,
    pub(crate) pair_links: Vec<u32>,
}

impl Mesh {
    pub fn new(topology: &Topology) -> Mesh {
        // A fast (non-DoS-resistant, fine for a validated local topology) hasher: string hashing
        // dominates building a mesh.
        let mut node_index: FxHashMap<&str, u32> =
            FxHashMap::with_capacity_and_hasher(topology.nodes.len(), Default::default());
        let mut site_names: Vec<&str> = Vec::new();
        for (i, node) in topology.nodes.iter().enumerate() {
            node_index.insert(node.name.as_str(), i as u32);
            if site_names.last() != Some(&node.site_name.as_str()) {
                site_names.push(node.site_name.as_str());
            }
        }
        site_names.sort_unstable();
        site_names.dedup();
        let site_index: FxHashMap<&str, u32> =
            site_names.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect();
        let n = site_names.len();

        let mut site_of_node = Vec::with_capacity(topology.nodes.len());
        let mut last: (&str, u32) = ("", 0);
        for node in &topology.nodes {
            let s = if node.site_name == last.0 && !site_of_node.is_empty() {
                last.1
            } else {
                *site_index.get(node.site_name.as_str()).expect("every node's site was interned above")
            };
            last = (node.site_name.as_str(), s);
            site_of_node.push(s);
        }

        // (site, other site, link) for every link between two sites, both directions.
        let mut ends: Vec<(u32, u32, u32)> = Vec::with_capacity(topology.links.len() * 2);
        for (l, link) in topology.links.iter().enumerate() {
            let (Some(&a), Some(&z)) =
                (node_index.get(link.a_node_name.as_str()), node_index.get(link.z_node_name.as_str()))
            else {
                continue; // Topology::new guarantees both ends exist
            };
            let (sa, sz) = (site_of_node[a as usize], site_of_node[z as usize]);
            if sa != sz {
                ends.push((sa, sz, l as u32));
                ends.push((sz, sa, l as u32));
            }
        }
        ends.sort_unstable();
        let mut pair_start = vec![0u32; n + 1];
        let mut pair_site = Vec::new();
        let mut pair_link_start = Vec::new();
        let mut pair_links = Vec::with_capacity(ends.len());
        for (i, &(s, t, l)) in ends.iter().enumerate() {
            if i == 0 || (ends[i - 1].0, ends[i - 1].1) != (s, t) {
                pair_start[s as usize + 1] += 1;
                pair_site.push(t);
                pair_link_start.push(pair_links.len() as u32);
            }
            pair_links.push(l);
        }
        pair_link_start.push(pair_links.len() as u32);
        for s in 0..n {
            pair_start[s + 1] += pair_start[s];
        }

        // Everything so far is indexed by name rank. Renumber the sites breadth-first (roots and
        // neighbours by name, so the numbering is as deterministic as the names).
        let mut by_rank = vec![NO_SITE; n];
        let mut queue: Vec<u32> = Vec::with_capacity(n);
        for root in 0..n as u32 {
            if by_rank[root as usize] != NO_SITE {
                continue;
            }
            by_rank[root as usize] = queue.len() as u32;
            queue.push(root);
            let mut head = queue.len() - 1;
            while head < queue.len() {
                let r = queue[head] as usize;
                head += 1;
                for &t in &pair_site[pair_start[r] as usize..pair_start[r + 1] as usize] {
                    if by_rank[t as usize] == NO_SITE {
                        by_rank[t as usize] = queue.len() as u32;
                        queue.push(t);
                    }
                }
            }
        }
        // `queue` lists ranks by new index; `by_rank[rank]` is the new index.
        let site_rank = queue;
        for s in &mut site_of_node {
            *s = by_rank[*s as usize];
        }
        let (mut new_start, mut new_site, mut new_link_start, mut new_links) =
            (vec![0u32; n + 1], Vec::with_capacity(pair_site.len()), Vec::new(), Vec::new());
        for (s, &r) in site_rank.iter().enumerate() {
            for p in pair_start[r as usize] as usize..pair_start[r as usize + 1] as usize {
                new_site.push(by_rank[pair_site[p] as usize]);
                new_link_start.push(new_links.len() as u32);
                new_links.extend_from_slice(
                    &pair_links[pair_link_start[p] as usize..pair_link_start[p + 1] as usize],
                );
            }
            new_start[s + 1] = new_site.len() as u32;
        }
        new_link_start.push(new_links.len() as u32);
        let (pair_start, pair_site, pair_link_start, pair_links) =
            (new_start, new_site, new_link_start, new_links);
        let site_names: Vec<Box<str>> = site_rank.iter().map(|&r| site_names[r as usize].into()).collect();

        let mut by_name: Vec<u32> = (0..topology.nodes.len() as u32).collect();
        by_name
            .sort_unstable_by(|a, b| topology.nodes[*a as usize].name.cmp(&topology.nodes[*b as usize].name));
        let mut node_rank = vec![0u32; by_name.len()];
        for (rank, &i) in by_name.iter().enumerate() {
            node_rank[i as usize] = rank as u32;
        }

        let (site_node_start, mut site_nodes) = group_by(n, site_of_node.iter().copied().zip(0u32..));
        for s in 0..n {
            let range = site_node_start[s] as usize..site_node_start[s + 1] as usize;
            site_nodes[range].sort_unstable_by_key(|&i| node_rank[i as usize]);
        }

        Mesh {
            node_names: topology.nodes.iter().map(|n| n.name.as_str().into()).collect(),
            node_rank,
            by_name,
            link_names: topology.links.iter().map(|l| l.name.as_str().into()).collect(),
            site_names,
            site_rank,
            by_rank,
            site_of_node,
            site_node_start,
            site_nodes,
            pair_start,
            pair_site,
            pair_link_start,
            pair_links,
        }
    }

    /// `topology` has this mesh's nodes and links in the same order (a live copy of the topology
    /// it was built from): the same counts, and the same names at the first, the last and about
    /// a thousand evenly spread positions of each list (every position in debug builds). A
    /// mismatch would plan the wrong mesh; comparing all ~600 000 names of a 100 000-site mesh
    /// would cost a tenth of a batch, and a different topology differs nearly everywhere.
    pub fn fits(&self, topology: &Topology) -> bool {
        fn same<T>(live: &[T], kept: &[Box<str>], name: impl Fn(&T) -> &str) -> bool {
            if live.len() != kept.len() {
                return false;
            }
            let step = if cfg!(debug_assertions) { 1 } else { (live.len() / 1024).max(1) };
            let last = live.len().checked_sub(1);
            (0..live.len()).step_by(step).chain(last).all(|i| name(&live[i]) == &*kept[i])
        }
        same(&topology.nodes, &self.node_names, |n| n.name.as_str())
            && same(&topology.links, &self.link_names, |l| l.name.as_str())
    }

    /// Indices of the named nodes; names not in the mesh are returned apart. `names` must be in
    /// ascending order (a `BTreeSet` is): each name is found by galloping forward from the last
    /// match, ~2 comparisons per name when most nodes are named, ~log n when few are.
    pub(crate) fn find_sorted<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        mut found: impl FnMut(u32),
        mut unknown: impl FnMut(&'a str),
    ) {
        let key = |i: u32| &*self.node_names[i as usize];
        let mut rest = &self.by_name[..];
        for name in names {
            // Most often the next name in the mesh is the one asked for: one comparison.
            match rest.first().map(|&i| key(i).cmp(name)) {
                Some(std::cmp::Ordering::Equal) => {
                    found(rest[0]);
                    rest = &rest[1..];
                    continue;
                }
                Some(std::cmp::Ordering::Greater) | None => {
                    unknown(name);
                    continue;
                }
                Some(std::cmp::Ordering::Less) => {}
            }
            let mut hi = 2;
            while hi <= rest.len() && key(rest[hi - 1]) < name {
                hi *= 2;
            }
            let lo = hi / 2;
            let pos = lo + rest[lo..hi.min(rest.len())].partition_point(|&i| key(i) < name);
            if pos < rest.len() && key(rest[pos]) == name {
                found(rest[pos]);
                rest = &rest[pos + 1..];
            } else {
                unknown(name);
                rest = &rest[pos..];
            }
        }
    }

    pub(crate) fn sites(&self) -> usize {
        self.site_names.len()
    }

    pub(crate) fn nodes_of(&self, s: u32) -> &[u32] {
        &self.site_nodes
            [self.site_node_start[s as usize] as usize..self.site_node_start[s as usize + 1] as usize]
    }

    /// Neighbour sites of `s` and, per neighbour, the pair index for [`Mesh::links_of_pair`].
    pub(crate) fn pairs_of(&self, s: u32) -> impl Iterator<Item = (u32, usize)> + '_ {
        let range = self.pair_start[s as usize] as usize..self.pair_start[s as usize + 1] as usize;
        self.pair_site[range.clone()].iter().copied().zip(range)
    }

    pub(crate) fn links_of_pair(&self, p: usize) -> &[u32] {
        &self.pair_links[self.pair_link_start[p] as usize..self.pair_link_start[p + 1] as usize]
    }
}

/// Marks a site not yet numbered.
const NO_SITE: u32 = u32::MAX;

/// Counting sort of `(key, value)` pairs by key into CSR form: `(start, values)` with the values
/// of key `k` at `values[start[k]..start[k + 1]]`, in input order.
pub(crate) fn group_by(keys: usize, pairs: impl Iterator<Item = (u32, u32)> + Clone) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; keys + 1];
    for (k, _) in pairs.clone() {
        start[k as usize + 1] += 1;
    }
    for k in 0..keys {
        start[k + 1] += start[k];
    }
    let mut fill = start.clone();
    let mut values = vec![0u32; start[keys] as usize];
    for (k, v) in pairs {
        values[fill[k as usize] as usize] = v;
        fill[k as usize] += 1;
    }
    (start, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::{Node, NodeStatus, NodeType};
    use std::collections::BTreeSet;

    fn topology(names: &[String]) -> Topology {
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                node_type: NodeType::Dn,
                mac_addr: format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff),
                pop_node: i == 0,
                status: NodeStatus::Online,
                site_name: format!("site{}", i % 7),
            })
            .collect();
        let sites =
            (0..7).map(|i| meshlift_protocol::Site { name: format!("site{i}"), location: None }).collect();
        Topology::new("t".into(), nodes, Vec::new(), sites).expect("valid")
    }

    #[test]
    fn sorted_names_are_found_like_a_map_would_find_them() {
        // Node names in a scrambled topology order; queries mix known and unknown names, sparse
        // and dense, before, between and after the known ones.
        let names: Vec<String> = (0..300).map(|i| format!("n{:03}", (i * 7919) % 300)).collect();
        let mesh = Mesh::new(&topology(&names));
        let index: std::collections::HashMap<&str, u32> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        for (every, extra) in [(1, 0), (2, 5), (37, 3), (150, 40), (1000, 10)] {
            let mut query: BTreeSet<String> = (0..300).step_by(every).map(|i| format!("n{i:03}")).collect();
            query.extend((0..extra).map(|i| format!("n{:03}x", i * 7)));
            query.insert("a-before-all".into());
            query.insert("z-after-all".into());
            let (mut found, mut unknown) = (Vec::new(), Vec::new());
            mesh.find_sorted(query.iter().map(String::as_str), |i| found.push(i), |n| unknown.push(n));
            let want_found: Vec<u32> = query.iter().filter_map(|n| index.get(n.as_str()).copied()).collect();
            let want_unknown: Vec<&str> =
                query.iter().map(String::as_str).filter(|n| !index.contains_key(n)).collect();
            assert_eq!(found, want_found, "every {every}");
            assert_eq!(unknown, want_unknown, "every {every}");
        }
    }
}
