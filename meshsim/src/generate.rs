//! Generated meshes for `meshlift demo --nodes N` and for tests that want a mesh of a given size.

use meshlift_protocol::topology::Location;
use meshlift_protocol::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Share of sites that hold two nodes joined by an ethernet cable (a tower with two sectors).
const MULTI_NODE_SITE_CHANCE: f64 = 0.25;
/// Chance that a grid site also links to the site above it, beyond the links keeping the mesh
/// connected. Low enough that some sites stay articulation points, as in real deployments.
const REDUNDANT_LINK_CHANCE: f64 = 0.4;
/// Grid spacing in degrees of latitude/longitude, about 150 m: a plausible 60 GHz hop.
const SPACING_DEG: f64 = 0.0014;

/// A connected grid-like mesh of `nodes` nodes, identical for the same `(nodes, seed)`.
///
/// Sites sit on a square grid; each site links to its left neighbour (or, first in a row, to the
/// site above), which keeps everything connected; extra links to the site above add redundancy
/// at random. About a quarter of the sites carry two nodes joined by ethernet. The first node of
/// the first and of the last site are POPs (one POP when there is a single site). Every node is
/// an online DN and every link alive. `nodes == 0` gives an empty topology.
pub fn generate_mesh(nodes: usize, seed: u64) -> Topology {
    let mut rng = StdRng::seed_from_u64(seed);

    // Split the nodes into sites of one or two nodes.
    let mut site_sizes = Vec::new();
    let mut left = nodes;
    while left > 0 {
        let size = if left >= 2 && rng.gen_bool(MULTI_NODE_SITE_CHANCE) { 2 } else { 1 };
        site_sizes.push(size);
        left -= size;
    }
    let site_count = site_sizes.len();
    let width = (site_count as f64).sqrt().ceil().max(1.0) as usize;

    let mut sites = Vec::with_capacity(site_count);
    let mut node_list: Vec<Node> = Vec::with_capacity(nodes);
    let mut site_nodes: Vec<Vec<usize>> = Vec::with_capacity(site_count);
    let mut links = Vec::new();
    for (i, &size) in site_sizes.iter().enumerate() {
        let (row, col) = (i / width, i % width);
        let site_name = format!("site-{i:03}");
        sites.push(Site {
            name: site_name.clone(),
            location: Some(Location {
                latitude: micro_degrees(37.4800 + row as f64 * SPACING_DEG),
                longitude: micro_degrees(-122.1500 + col as f64 * SPACING_DEG),
                altitude: 20.0,
                accuracy: 1.0,
            }),
        });
        let mut members = Vec::with_capacity(size);
        for k in 0..size {
            let index = node_list.len();
            let pop_node = k == 0 && (i == 0 || (i == site_count - 1 && site_count > 1));
            node_list.push(Node {
                name: format!("{site_name}.{}", (b'a' + k as u8) as char),
                node_type: NodeType::Dn,
                mac_addr: format!("02:6d:6c:00:{:02x}:{:02x}", index >> 8, index & 0xff),
                pop_node,
                status: NodeStatus::Online,
                site_name: site_name.clone(),
            });
            members.push(index);
        }
        for pair in members.windows(2) {
            links.push(link(&node_list[pair[0]].name, &node_list[pair[1]].name, LinkType::Ethernet));
        }
        site_nodes.push(members);
    }

    // Wireless links between sites; a site's links alternate over its nodes like sectors.
    let mut next_sector = vec![0usize; site_count];
    let pick = |site: usize, next_sector: &mut Vec<usize>| {
        let members = &site_nodes[site];
        let node = members[next_sector[site] % members.len()];
        next_sector[site] += 1;
        node
    };
    for i in 1..site_count {
        let (row, col) = (i / width, i % width);
        let spine = if col > 0 { i - 1 } else { i - width };
        let mut neighbours = vec![spine];
        if col > 0 && row > 0 && rng.gen_bool(REDUNDANT_LINK_CHANCE) {
            neighbours.push(i - width);
        }
        for other in neighbours {
            let a = pick(other, &mut next_sector);
            let z = pick(i, &mut next_sector);
            links.push(link(&node_list[a].name, &node_list[z].name, LinkType::Wireless));
        }
    }

    Topology::new(format!("generated-{nodes}-{seed}"), node_list, links, sites)
        .expect("generated names and MACs are unique by construction and every link end exists")
}

/// Six decimals (about 0.1 m), as surveyed coordinates are written.
fn micro_degrees(deg: f64) -> f64 {
    (deg * 1e6).round() / 1e6
}

fn link(a: &str, z: &str, link_type: LinkType) -> Link {
    Link {
        name: format!("link-{a}-{z}"),
        a_node_name: a.to_string(),
        z_node_name: z.to_string(),
        link_type,
        is_alive: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn connected(t: &Topology) -> bool {
        let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for l in &t.links {
            adj.entry(&l.a_node_name).or_default().push(&l.z_node_name);
            adj.entry(&l.z_node_name).or_default().push(&l.a_node_name);
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![t.nodes[0].name.as_str()];
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(adj.get(n).into_iter().flatten().copied());
            }
        }
        seen.len() == t.nodes.len()
    }

    #[test]
    fn generated_meshes_are_connected_with_two_pops_and_redundancy() {
        for n in [2usize, 5, 20, 57, 200] {
            for seed in 0..5 {
                let t = generate_mesh(n, seed);
                assert_eq!(t.nodes.len(), n);
                assert!(connected(&t), "n={n} seed={seed} not connected");
                assert_eq!(
                    t.nodes.iter().filter(|x| x.pop_node).count(),
                    if t.sites.len() > 1 { 2 } else { 1 }
                );
                if n >= 20 {
                    assert!(t.links.iter().any(|l| l.link_type == LinkType::Ethernet), "no multi-node site");
                    let wireless = t.links.iter().filter(|l| l.link_type == LinkType::Wireless).count();
                    assert!(wireless >= t.sites.len(), "no redundant link (n={n} seed={seed})");
                }
                // Round-trips through Terragraph JSON (coordinates aside: JSON floats may differ
                // in the last bit).
                let again = Topology::from_json(&t.to_json().to_string()).unwrap();
                assert_eq!((&again.nodes, &again.links), (&t.nodes, &t.links));
            }
        }
        assert_eq!(generate_mesh(30, 7), generate_mesh(30, 7));
        assert_ne!(generate_mesh(30, 7), generate_mesh(30, 8));
        assert!(generate_mesh(0, 1).nodes.is_empty());
    }
}
