//! Generated meshes shaped like real deployments, for planner benchmarks and demos.
//!
//! Two shapes: a *street grid* (sites at intersections, links along streets, some missing and a
//! few diagonals across squares, so there are both redundant rings and dangling tails) and a
//! *random geometric* mesh (sites scattered over a square, each linked to its nearest neighbours
//! within radio range). 2–4 % of sites are POPs and every site has 1–4 nodes joined by wired
//! links, as a Terragraph pole with several sectors. Output is a validated [`Topology`], so it can
//! be written as a Terragraph topology file with [`Topology::to_json`].

use meshlift_protocol::topology::{Link, LinkType, Location, Node, NodeStatus, NodeType, Site, Topology};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Layout of the generated mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    StreetGrid,
    Geometric,
}

/// What to generate. The same spec always gives the same mesh.
#[derive(Debug, Clone)]
pub struct MeshSpec {
    pub shape: Shape,
    pub sites: usize,
    /// Share of sites with a POP node, in percent (real deployments: 2–4).
    pub pop_percent: f64,
    pub seed: u64,
}

impl MeshSpec {
    pub fn new(shape: Shape, sites: usize) -> MeshSpec {
        MeshSpec { shape, sites, pop_percent: 3.0, seed: 1 }
    }
}

/// Build the mesh described by `spec`.
pub fn generate(spec: &MeshSpec) -> Topology {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let n = spec.sites.max(1);
    let (positions, site_edges) = match spec.shape {
        Shape::StreetGrid => street_grid(n, &mut rng),
        Shape::Geometric => geometric(n, &mut rng),
    };

    let pops = ((n as f64 * spec.pop_percent / 100.0).round() as usize).clamp(1, n);
    let mut is_pop = vec![false; n];
    let mut chosen = 0;
    while chosen < pops {
        let s = rng.gen_range(0..n);
        if !is_pop[s] {
            is_pop[s] = true;
            chosen += 1;
        }
    }

    let mut sites = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n * 5 / 2);
    let mut links = Vec::with_capacity(site_edges.len() + n * 2);
    let mut site_nodes: Vec<Vec<usize>> = Vec::with_capacity(n);
    for (s, (x, y)) in positions.iter().enumerate() {
        let name = format!("site-{s:06}");
        sites.push(Site {
            name: name.clone(),
            location: Some(Location { latitude: *y, longitude: *x, altitude: 0.0, accuracy: 1.0 }),
        });
        let k = rng.gen_range(1..=4);
        let mut mine: Vec<usize> = Vec::with_capacity(k);
        for j in 0..k {
            let id = nodes.len();
            nodes.push(Node {
                name: format!("node-{s:06}-{j}"),
                node_type: NodeType::Dn,
                mac_addr: format!(
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    (id >> 32) & 0xff,
                    (id >> 24) & 0xff,
                    (id >> 16) & 0xff,
                    (id >> 8) & 0xff,
                    id & 0xff
                ),
                pop_node: is_pop[s] && j == 0,
                status: NodeStatus::OnlineInitiator,
                site_name: name.clone(),
            });
            if j > 0 {
                links.push(Link {
                    name: format!("wired-{s:06}-0-{j}"),
                    a_node_name: nodes[mine[0]].name.clone(),
                    z_node_name: nodes[id].name.clone(),
                    link_type: LinkType::Ethernet,
                    is_alive: true,
                });
            }
            mine.push(id);
        }
        site_nodes.push(mine);
    }
    for (a, z) in site_edges {
        // Each radio link uses one sector (node) of each pole.
        let na = site_nodes[a][rng.gen_range(0..site_nodes[a].len())];
        let nz = site_nodes[z][rng.gen_range(0..site_nodes[z].len())];
        links.push(Link {
            name: format!("link-{}-{}", nodes[na].name, nodes[nz].name),
            a_node_name: nodes[na].name.clone(),
            z_node_name: nodes[nz].name.clone(),
            link_type: LinkType::Wireless,
            // A few links are down at any time in a live network.
            is_alive: !rng.gen_bool(0.02),
        });
    }
    Topology::new(format!("{:?}-{n}", spec.shape), nodes, links, sites)
        .expect("generated names and MACs are unique and every link names generated nodes")
}

type Layout = (Vec<(f64, f64)>, Vec<(usize, usize)>);

/// Intersections of a near-square grid; 85 % of street segments carry a link, 5 % of squares get
/// a diagonal.
fn street_grid(n: usize, rng: &mut StdRng) -> Layout {
    let w = (n as f64).sqrt().ceil() as usize;
    let positions = (0..n).map(|i| ((i % w) as f64 * 1e-3, (i / w) as f64 * 1e-3)).collect();
    let mut edges = Vec::with_capacity(n * 2);
    for i in 0..n {
        let x = i % w;
        if x + 1 < w && i + 1 < n && rng.gen_bool(0.85) {
            edges.push((i, i + 1));
        }
        if i + w < n && rng.gen_bool(0.85) {
            edges.push((i, i + w));
        }
        if x + 1 < w && i + w + 1 < n && rng.gen_bool(0.05) {
            edges.push((i, i + w + 1));
        }
    }
    (positions, edges)
}

/// Sites uniform in a unit square, each linked to up to 3 nearest neighbours within a range that
/// gives an average degree near 4 (bucketed so 100 000 sites take well under a second).
fn geometric(n: usize, rng: &mut StdRng) -> Layout {
    let positions: Vec<(f64, f64)> = (0..n).map(|_| (rng.gen::<f64>(), rng.gen::<f64>())).collect();
    let range = (6.0 / (std::f64::consts::PI * n as f64)).sqrt();
    let cells = ((1.0 / range).floor() as usize).max(1);
    let cell_of = |p: (f64, f64)| {
        let cx = ((p.0 * cells as f64) as usize).min(cells - 1);
        let cy = ((p.1 * cells as f64) as usize).min(cells - 1);
        (cx, cy)
    };
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); cells * cells];
    for (i, p) in positions.iter().enumerate() {
        let (cx, cy) = cell_of(*p);
        grid[cy * cells + cx].push(i);
    }
    let mut edges = Vec::with_capacity(n * 2);
    let mut near: Vec<(f64, usize)> = Vec::new();
    for (i, p) in positions.iter().enumerate() {
        let (cx, cy) = cell_of(*p);
        near.clear();
        for gy in cy.saturating_sub(1)..=(cy + 1).min(cells - 1) {
            for gx in cx.saturating_sub(1)..=(cx + 1).min(cells - 1) {
                for &j in &grid[gy * cells + gx] {
                    let q = positions[j];
                    let d = (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2);
                    if j != i && d <= range * range {
                        near.push((d, j));
                    }
                }
            }
        }
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, j) in near.iter().take(3) {
            edges.push((i.min(j), i.max(j)));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    (positions, edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meshes_have_the_requested_size_pops_and_nodes_per_site() {
        for shape in [Shape::StreetGrid, Shape::Geometric] {
            let t = generate(&MeshSpec::new(shape, 2_000));
            assert_eq!(t.sites.len(), 2_000);
            let pops = t.nodes.iter().filter(|n| n.pop_node).count();
            assert_eq!(pops, 60, "{shape:?}");
            assert!(t.nodes.len() >= 2_000 && t.nodes.len() <= 8_000);
            let wireless = t.links.iter().filter(|l| l.link_type == LinkType::Wireless).count();
            assert!(wireless > 2_000, "{shape:?}: {wireless} radio links is too sparse for a mesh");
            // Deterministic.
            assert!(generate(&MeshSpec::new(shape, 2_000)) == t);
            // Round trip as a Terragraph file (coordinates may lose their last bit in serde_json).
            let back = Topology::from_json(&t.to_json().to_string()).unwrap();
            assert!(back.nodes == t.nodes && back.links == t.links);
        }
    }
}
