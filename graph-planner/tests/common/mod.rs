//! Shared harness: topology builders, random meshes (`meshes`), the upstream GraphHelper port
//! that judges the planner (`graph_helper`), and the §3.6 invariant checker over a naive site
//! graph (string-keyed maps, BFS connectivity: no code shared with the planner).
#![allow(dead_code)]

pub mod graph_helper;
pub mod meshes;

use meshes::Case;
use meshlift_graph_planner::{ApPolicy, Plan, PlanRequest, PlanStrategy};
use meshlift_protocol::topology::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A site: name, POP, and its nodes as (name, online).
pub struct SiteSpec {
    pub name: String,
    pub pop: bool,
    pub nodes: Vec<(String, bool)>,
}

/// One-node online sites named like the site in lower case + "1"; `pops` are POP sites;
/// `edges` join sites by their single nodes with live wireless links.
pub fn simple(sites: &str, pops: &str, edges: &[&str]) -> Topology {
    let specs: Vec<SiteSpec> = sites
        .chars()
        .map(|c| SiteSpec {
            name: c.to_string(),
            pop: pops.contains(c),
            nodes: vec![(format!("{}1", c.to_ascii_lowercase()), true)],
        })
        .collect();
    let links: Vec<(String, String, bool)> = edges
        .iter()
        .map(|e| {
            let mut cs = e.chars();
            let a = cs.next().expect("edge has two sites").to_ascii_lowercase();
            let z = cs.next().expect("edge has two sites").to_ascii_lowercase();
            (format!("{a}1"), format!("{z}1"), true)
        })
        .collect();
    build(&specs, &links)
}

/// Build a topology; links are (a node, z node, alive), wireless. The first node of a POP site is
/// the POP node. Nodes of one site are joined by live wired links (they vanish in the site graph).
pub fn build(sites: &[SiteSpec], links: &[(String, String, bool)]) -> Topology {
    let mut nodes = Vec::new();
    let mut all_links = Vec::new();
    let mut mac = 0u32;
    for s in sites {
        for (i, (name, online)) in s.nodes.iter().enumerate() {
            mac += 1;
            nodes.push(Node {
                name: name.clone(),
                node_type: NodeType::Dn,
                mac_addr: format!("02:00:00:{:02x}:{:02x}:{:02x}", mac >> 16, (mac >> 8) & 0xff, mac & 0xff),
                pop_node: s.pop && i == 0,
                status: if *online { NodeStatus::Online } else { NodeStatus::Offline },
                site_name: s.name.clone(),
            });
            if i > 0 {
                all_links.push(Link {
                    name: format!("wired-{}-{}", s.nodes[0].0, name),
                    a_node_name: s.nodes[0].0.clone(),
                    z_node_name: name.clone(),
                    link_type: LinkType::Ethernet,
                    is_alive: true,
                });
            }
        }
    }
    for (i, (a, z, alive)) in links.iter().enumerate() {
        all_links.push(Link {
            name: format!("link-{i}-{a}-{z}"),
            a_node_name: a.clone(),
            z_node_name: z.clone(),
            link_type: LinkType::Wireless,
            is_alive: *alive,
        });
    }
    let sites = sites.iter().map(|s| Site { name: s.name.clone(), location: None }).collect();
    Topology::new("test".into(), nodes, all_links, sites).expect("test topology is valid")
}

pub fn all_nodes(t: &Topology) -> BTreeSet<String> {
    t.nodes.iter().map(|n| n.name.clone()).collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn req<'a>(
    t: &'a Topology,
    pending: &'a BTreeSet<String>,
    limit: i64,
    ap_policy: ApPolicy,
    max_pops: u32,
) -> PlanRequest<'a> {
    PlanRequest {
        topology: t,
        pending,
        limit,
        ap_policy,
        max_pops_per_batch: max_pops,
        strategy: PlanStrategy::Terragraph,
    }
}

pub fn batches(plan: &Plan) -> Vec<Vec<String>> {
    plan.batches.iter().map(|b| b.nodes.clone()).collect()
}

/// The site graph of reference §3.1, with names.
pub struct Naive {
    pub site_nodes: BTreeMap<String, Vec<String>>,
    pub pending_sites: BTreeSet<String>,
    pub pops: BTreeSet<String>,
    /// Only sites with at least one live inter-site link have an entry (as in GraphHelper).
    pub adj: BTreeMap<String, BTreeSet<String>>,
    pub pending: BTreeSet<String>,
}

impl Naive {
    pub fn new(t: &Topology, pending: &BTreeSet<String>) -> Naive {
        let mut site_nodes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut pops = BTreeSet::new();
        let mut pending_sites = BTreeSet::new();
        for n in t.nodes.iter().filter(|n| n.status.is_online()) {
            site_nodes.entry(n.site_name.clone()).or_default().push(n.name.clone());
            if n.pop_node {
                pops.insert(n.site_name.clone());
            }
            if pending.contains(&n.name) {
                pending_sites.insert(n.site_name.clone());
            }
        }
        let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in t.links.iter().filter(|l| l.is_alive) {
            let a = &t.node(&l.a_node_name).expect("valid").site_name;
            let z = &t.node(&l.z_node_name).expect("valid").site_name;
            if a == z || !site_nodes.contains_key(a) || !site_nodes.contains_key(z) {
                continue;
            }
            adj.entry(a.clone()).or_default().insert(z.clone());
            adj.entry(z.clone()).or_default().insert(a.clone());
        }
        Naive { site_nodes, pending_sites, pops, adj, pending: pending.clone() }
    }

    /// Sites connected to some POP not in `down`, through sites not in `down`.
    pub fn connected(&self, down: &BTreeSet<String>) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = self.pops.iter().filter(|p| !down.contains(*p)).cloned().collect();
        let mut queue: VecDeque<String> = seen.iter().cloned().collect();
        while let Some(u) = queue.pop_front() {
            for w in self.adj.get(&u).into_iter().flatten() {
                if !down.contains(w) && seen.insert(w.clone()) {
                    queue.push_back(w.clone());
                }
            }
        }
        seen
    }

    /// Sites cut off from every POP when `u` alone goes down.
    pub fn cut_off(&self, u: &str) -> BTreeSet<String> {
        let before = self.connected(&BTreeSet::new());
        let after = self.connected(&set(&[u]));
        before.into_iter().filter(|s| s != u && !after.contains(s)).collect()
    }

    /// AP groups per policy: Terragraph keeps maximal pending APs; dependents-first only pending
    /// APs that cut off nothing pending.
    pub fn groups(&self, policy: ApPolicy) -> BTreeMap<String, BTreeSet<String>> {
        let recorded: BTreeMap<String, BTreeSet<String>> = self
            .pending_sites
            .iter()
            .map(|u| (u.clone(), self.cut_off(u)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        match policy {
            ApPolicy::Group => recorded
                .iter()
                .filter(|(u, _)| !recorded.iter().any(|(w, c)| w != *u && c.contains(*u)))
                .map(|(u, c)| (u.clone(), c.clone()))
                .collect(),
            ApPolicy::DependentsFirst => recorded
                .into_iter()
                .filter(|(_, c)| c.iter().all(|s| !self.pending_sites.contains(s)))
                .collect(),
        }
    }

    pub fn pending_nodes_of(&self, site: &str) -> Vec<String> {
        self.site_nodes[site].iter().filter(|n| self.pending.contains(*n)).cloned().collect()
    }
}

/// Invariants 1–6 on every batch of `plan` (chosen in turn from what earlier batches left
/// pending), every pending node a POP reaches planned exactly once and the rest reported
/// unplanned, and the outages per site recounted from connectivity. `each(i, pending, batch)`
/// adds a check per batch.
pub fn check_plan(
    c: &Case,
    plan: &Plan,
    mut each: impl FnMut(usize, &BTreeSet<String>, &BTreeSet<String>) -> Result<(), String>,
) -> Result<(), String> {
    let mut pending = c.pending.clone();
    let full = Naive::new(&c.topo, &c.pending);
    let before = full.connected(&BTreeSet::new());
    let mut outages: BTreeMap<String, u32> = BTreeMap::new();
    for (i, b) in plan.batches.iter().enumerate() {
        check_batch(&c.topo, &pending, &b.nodes, c.limit, c.max_pops, c.policy)
            .map_err(|e| format!("batch {}: {e}", i + 1))?;
        let ours: BTreeSet<String> = b.nodes.iter().cloned().collect();
        each(i, &pending, &ours)?;
        // Outages recounted from connectivity: down or cut off from every POP.
        let g = Naive::new(&c.topo, &pending);
        let down: BTreeSet<String> =
            b.nodes.iter().map(|n| c.topo.node(n).expect("planned node exists").site_name.clone()).collect();
        let after = g.connected(&down);
        for s in &before {
            if down.contains(s) || !after.contains(s) {
                *outages.entry(s.clone()).or_default() += 1;
            }
        }
        for n in &b.nodes {
            if !pending.remove(n) {
                return Err(format!("{n} planned twice"));
            }
        }
    }
    // Coverage: exactly the pending online nodes of sites a POP reaches are planned; the rest are
    // reported as unplanned.
    let plannable: BTreeSet<String> = c
        .pending
        .iter()
        .filter(|n| {
            let node = c.topo.node(n).expect("pending names come from the topology");
            node.status.is_online() && before.contains(&node.site_name)
        })
        .cloned()
        .collect();
    let planned: BTreeSet<String> = plan.batches.iter().flat_map(|b| b.nodes.iter().cloned()).collect();
    if planned != plannable {
        return Err(format!("planned {planned:?} != plannable {plannable:?}"));
    }
    let unplanned: BTreeSet<String> = plan.unplanned.iter().map(|(n, _)| n.clone()).collect();
    let expected: BTreeSet<String> = c.pending.difference(&plannable).cloned().collect();
    if unplanned != expected {
        return Err(format!("unplanned {unplanned:?} != {expected:?}"));
    }
    for (site, &count) in &plan.outages {
        let want = outages.get(site).copied().unwrap_or(0);
        if count != want {
            return Err(format!("site {site}: {count} outages reported, {want} recounted"));
        }
    }
    Ok(())
}

/// A permutation of `t`'s nodes, links and sites: the same network, listed differently.
pub fn shuffled(t: &Topology, seed: u64) -> Topology {
    let mut rng = SplitMix(seed);
    let (mut nodes, mut links, mut sites) = (t.nodes.clone(), t.links.clone(), t.sites.clone());
    rng.shuffle(&mut nodes);
    rng.shuffle(&mut links);
    rng.shuffle(&mut sites);
    Topology::new(t.name.clone(), nodes, links, sites).expect("a permutation of a valid topology")
}

/// A small deterministic PRNG (splitmix64) for random orders and random meshes.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Check invariants 1–6 of reference §3.6 (1 generalised to `max_pops` POP sites) for `batch`
/// chosen from `pending`. Returns a description of the first violation.
pub fn check_batch(
    t: &Topology,
    pending: &BTreeSet<String>,
    batch: &[String],
    limit: i64,
    max_pops: u32,
    policy: ApPolicy,
) -> Result<(), String> {
    let g = Naive::new(t, pending);
    let groups = g.groups(policy);
    let mut batch_sites = BTreeSet::new();
    for name in batch {
        let node = t.node(name).ok_or(format!("unknown node {name}"))?;
        // 6: offline nodes never appear; the node was pending.
        if !node.status.is_online() || !pending.contains(name) {
            return Err(format!("{name} is offline or not pending"));
        }
        batch_sites.insert(node.site_name.clone());
    }
    let before = g.connected(&BTreeSet::new());
    // 6: sites unreachable from every POP never contribute nodes (a POP site with no live link
    // reaches itself).
    for s in &batch_sites {
        if !before.contains(s) {
            return Err(format!("site {s} is cut off from every POP but is in the batch"));
        }
    }
    // 1: nobody outside the batch loses every remaining POP, except dependents of a key in it.
    let after = g.connected(&batch_sites);
    let excused: BTreeSet<&String> =
        groups.iter().filter(|(k, _)| batch_sites.contains(*k)).flat_map(|(_, c)| c).collect();
    for s in &before {
        if !batch_sites.contains(s) && !after.contains(s) && !excused.contains(s) {
            return Err(format!("site {s} is isolated by batch {batch:?}"));
        }
    }
    // 2: POP sites per batch.
    let pops = batch_sites.iter().filter(|s| g.pops.contains(*s)).count();
    if pops > max_pops.max(1) as usize {
        return Err(format!("{pops} POP sites in one batch"));
    }
    // 3: progress whenever some pending site is reachable (and has a live link).
    let reachable_pending = g.pending_sites.iter().any(|s| before.contains(s));
    if reachable_pending && batch.is_empty() {
        return Err("empty batch although a pending site is reachable".into());
    }
    // 5: AP groups all-or-nothing.
    for (k, members) in &groups {
        let key_in = batch_sites.contains(k);
        for m in members.iter().filter(|m| g.pending_sites.contains(*m)) {
            if key_in != batch_sites.contains(m) {
                return Err(format!("AP group {k} split: member {m}"));
            }
        }
    }
    // Every pending node of a chosen site is in the batch (sites are the unit).
    for s in &batch_sites {
        for n in g.pending_nodes_of(s) {
            if !batch.contains(&n) {
                return Err(format!("pending node {n} of chosen site {s} left out"));
            }
        }
    }
    // 4: limit, unless the batch is exactly one candidate.
    if limit > 0 && batch.len() as i64 > limit {
        let one_candidate = batch_sites.iter().any(|k| {
            let mut cand: BTreeSet<String> = g.pending_nodes_of(k).into_iter().collect();
            for m in groups.get(k).into_iter().flatten().filter(|m| g.pending_sites.contains(*m)) {
                cand.extend(g.pending_nodes_of(m));
            }
            cand.len() == batch.len()
        });
        if !one_candidate {
            return Err(format!("batch of {} nodes exceeds limit {limit}", batch.len()));
        }
    }
    Ok(())
}
