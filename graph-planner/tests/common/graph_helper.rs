//! The test oracle: a line-by-line port of upstream Terragraph's `GraphHelper::getBatch`
//! (terragraph/meta-terragraph, `src/terragraph-e2e/e2e/controller/GraphHelper.cpp`, 358 lines).
//! `Lnnn` in the comments is the upstream line a step comes from.
//!
//! Upstream keeps everything in `std::unordered_set`/`unordered_map`, so its batch depends on hash
//! order. Here every iteration over such a container goes through [`Orders`], which says in what
//! order the container yields its elements; [`Canonical`] is the order the planner documents
//! (pushes in descending name order, so the smallest name is popped first), [`Hashed`] is a random
//! but self-consistent order (one keyed hash per container, so a set iterated twice yields the
//! same order, and removing the fake root keeps the others' order, as `unordered_set` does).
//!
//! [`GraphHelper::can_return`] answers "is there *any* iteration order under which upstream returns
//! this batch?" by searching the traversal's choices (see there). Shares no code with the planner.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use meshlift_protocol::topology::Topology;

/// Upstream's `kFakeRootSiteName` (L15).
const FAKE_ROOT: &str = "";

/// An unordered container of upstream whose iteration order can change the batch.
#[derive(Clone, Copy, Debug)]
pub enum Container<'a> {
    /// `adjacencies_[site]` (iterated at L106, L160, L275).
    Adjacency(&'a str),
    /// `popSiteNames_` (iterated at L182 and L233).
    PopSites,
    /// The keys of `aps` (L198).
    Aps,
    /// `aps[ap]` (L204).
    ApChildren(&'a str),
}

/// The iteration order of each unordered container: returns `items` (in name order) reordered.
pub trait Orders {
    fn order(&mut self, c: Container, items: Vec<String>) -> Vec<String>;
}

/// Descending name order everywhere: `push_front` of the last element puts the smallest name at
/// the front of a stack, which is the order the planner documents (smallest name popped first).
pub struct Canonical;

impl Orders for Canonical {
    fn order(&mut self, _: Container, mut items: Vec<String>) -> Vec<String> {
        items.reverse();
        items
    }
}

/// A random order that stays the same for one container however often it is iterated (sorted by
/// a keyed hash of the container and the element).
pub struct Hashed(pub u64);

impl Orders for Hashed {
    fn order(&mut self, c: Container, mut items: Vec<String>) -> Vec<String> {
        let salt = match c {
            Container::Adjacency(s) => hash(self.0, &format!("adj:{s}")),
            Container::PopSites => hash(self.0, "pops"),
            Container::Aps => hash(self.0, "aps"),
            Container::ApChildren(s) => hash(self.0, &format!("apc:{s}")),
        };
        items.sort_by_key(|i| hash(salt, i));
        items
    }
}

fn hash(seed: u64, s: &str) -> u64 {
    // FNV-1a, then a splitmix finaliser: stable across runs and platforms.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 31)
}

/// AP key site → the sites it cuts off (upstream's `apGroups`, L173).
pub type ApGroups = BTreeMap<String, BTreeSet<String>>;

/// Upstream's member variables (GraphHelper.h), with ordered containers: order is applied where
/// upstream iterates.
pub struct GraphHelper {
    vertices: BTreeSet<String>,
    adjacencies: BTreeMap<String, BTreeSet<String>>,
    pop_site_names: BTreeSet<String>,
    site_name_2_node_names: BTreeMap<String, BTreeSet<String>>,
    nodes_pending_update: BTreeSet<String>,
    sites_pending_update: BTreeSet<String>,
    batch_size_limit: usize,
    discover_time: i64,
    /// meshlift's `max_pops_per_batch`; upstream's `popAlreadyAdded` (L247) is 1.
    max_pops: usize,
}

/// The answer of [`GraphHelper::can_return`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some iteration order gives exactly this batch.
    Yes,
    /// No iteration order does (the search was exhaustive).
    No,
    /// The search stopped at its budget without finding one.
    Unknown,
}

impl GraphHelper {
    /// `getBatch` up to the AP groups (L339–346); [`GraphHelper::get_batch`] finishes it.
    pub fn new(t: &Topology, pending: &BTreeSet<String>, limit: i64, max_pops: u32) -> Self {
        let mut g = GraphHelper {
            vertices: BTreeSet::new(),
            adjacencies: BTreeMap::new(),
            pop_site_names: BTreeSet::new(),
            site_name_2_node_names: BTreeMap::new(),
            // L339
            nodes_pending_update: pending.clone(),
            sites_pending_update: BTreeSet::new(),
            batch_size_limit: 0,
            discover_time: 0,
            max_pops: max_pops.max(1) as usize,
        };
        // L342
        g.build_graph(t);
        // L343: `limit > 0 ? limit : getNodesCount()` (every node, offline ones included).
        g.batch_size_limit = if limit > 0 { limit as usize } else { t.nodes.len() };
        g
    }

    /// The whole of `getBatch` (L333–355) under the orders `o`.
    pub fn get_batch(
        t: &Topology,
        pending: &BTreeSet<String>,
        limit: i64,
        max_pops: u32,
        o: &mut dyn Orders,
    ) -> BTreeSet<String> {
        let mut g = GraphHelper::new(t, pending, limit, max_pops);
        // L346
        let groups = g.get_ap_groups(o);
        // L353
        g.get_candidate_nodes(&groups, o)
    }

    /// L18–55.
    fn build_graph(&mut self, t: &Topology) {
        // L20: every site of the topology.
        for site in &t.sites {
            // L21: `siteName2nodeNames_[site.name]` creates the entry even for offline sites.
            self.site_name_2_node_names.entry(site.name.clone()).or_default();
            let mut update_candidate_site = false;
            let mut add_site = false;
            // L24
            for node in t.nodes.iter().filter(|n| n.site_name == site.name) {
                // L25: only nodes that are not OFFLINE.
                if node.status.is_online() {
                    add_site = true;
                    self.site_name_2_node_names
                        .entry(site.name.clone())
                        .or_default()
                        .insert(node.name.clone());
                    // L28
                    if self.nodes_pending_update.contains(&node.name) {
                        update_candidate_site = true;
                    }
                    // L31
                    if node.pop_node {
                        self.pop_site_names.insert(site.name.clone());
                    }
                }
            }
            // L36
            if add_site {
                self.add_vertex(&site.name);
            }
            // L40
            if update_candidate_site {
                self.sites_pending_update.insert(site.name.clone());
            }
        }
        // L46–54: live links, whatever the status of their end nodes.
        for link in t.links.iter().filter(|l| l.is_alive) {
            let (Some(a), Some(z)) = (t.node(&link.a_node_name), t.node(&link.z_node_name)) else {
                continue;
            };
            self.add_edge(&a.site_name.clone(), &z.site_name.clone());
        }
    }

    /// L58–69: both ends must be vertices, and different.
    fn add_edge(&mut self, v: &str, w: &str) {
        if self.vertices.contains(v) && self.vertices.contains(w) && v != w {
            self.adjacencies.entry(v.to_string()).or_default().insert(w.to_string());
            self.adjacencies.entry(w.to_string()).or_default().insert(v.to_string());
        }
    }

    /// L72–74.
    fn add_vertex(&mut self, v: &str) {
        self.vertices.insert(v.to_string());
    }

    /// L77–89. Erases `v` from its neighbours' sets but leaves their (possibly now empty) entries:
    /// a POP site whose only neighbour was the fake root keeps an empty adjacency entry, so L260
    /// does not skip it and L296 finds it a leaf.
    fn remove_vertex(&mut self, v: &str) {
        if let Some(nbrs) = self.adjacencies.get(v).cloned() {
            for n in nbrs {
                if let Some(set) = self.adjacencies.get_mut(&n) {
                    set.remove(v);
                }
            }
            self.adjacencies.remove(v);
        }
        self.vertices.remove(v);
    }

    /// L92–135, recursive as upstream (test meshes are small).
    #[allow(clippy::too_many_arguments)]
    fn find_articulation_points(
        &mut self,
        u: &str,
        visited: &mut BTreeSet<String>,
        discovery: &mut BTreeMap<String, i64>,
        lowest: &mut BTreeMap<String, i64>,
        parent: &mut BTreeMap<String, String>,
        aps: &mut BTreeMap<String, BTreeSet<String>>,
        o: &mut dyn Orders,
    ) {
        // L100–104
        let mut num_children = 0;
        visited.insert(u.to_string());
        self.discover_time += 1;
        discovery.insert(u.to_string(), self.discover_time);
        lowest.insert(u.to_string(), self.discover_time);
        // L106: `adjacencies_[u]` (operator[] creates an empty entry for a root without POPs).
        let nbrs: Vec<String> = self.adjacencies.entry(u.to_string()).or_default().iter().cloned().collect();
        for neighbor in o.order(Container::Adjacency(u), nbrs) {
            if !visited.contains(&neighbor) {
                // L108–111
                num_children += 1;
                parent.insert(neighbor.clone(), u.to_string());
                self.find_articulation_points(&neighbor, visited, discovery, lowest, parent, aps, o);
                // L115
                let low = lowest[u].min(lowest[&neighbor]);
                lowest.insert(u.to_string(), low);
                // L122–128
                if !parent.contains_key(u) && num_children > 1 {
                    // The fake root: not an AP.
                } else if parent.contains_key(u)
                    && lowest[&neighbor] >= discovery[u]
                    && self.sites_pending_update.contains(u)
                {
                    aps.entry(u.to_string()).or_default().insert(neighbor.clone());
                }
            } else {
                // L129: `parent[u]` is operator[]: at the root it inserts "" as the root's parent,
                // after which `parent.count(root)` is 1 (harmless: "" is never a pending site).
                let p = parent.entry(u.to_string()).or_default().clone();
                if neighbor != p {
                    // L131
                    let low = lowest[u].min(discovery[&neighbor]);
                    lowest.insert(u.to_string(), low);
                }
            }
        }
    }

    /// L138–169: the sites reachable from `root` without passing `exclude` (the root may be
    /// queued twice, as upstream; the result is a set).
    fn bfs(&self, root: &str, exclude: &str, o: &mut dyn Orders) -> BTreeSet<String> {
        let mut curr: VecDeque<String> = VecDeque::from([root.to_string()]);
        let mut seen: BTreeSet<String> = BTreeSet::from([exclude.to_string()]);
        let mut visited = BTreeSet::new();
        while let Some(cur) = curr.pop_front() {
            visited.insert(cur.clone());
            // L154–158
            let Some(adj) = self.adjacencies.get(&cur) else { continue };
            // L160
            for nbr in o.order(Container::Adjacency(&cur), adj.iter().cloned().collect()) {
                if seen.insert(nbr.clone()) {
                    curr.push_back(nbr);
                }
            }
        }
        visited
    }

    /// L172–219: pending articulation points relative to a fake root joined to every POP site, and
    /// everything each cuts off; sub-groups absorbed.
    pub fn get_ap_groups(&mut self, o: &mut dyn Orders) -> ApGroups {
        let mut ap_groups = ApGroups::new();
        let (mut visited, mut discovery, mut lowest, mut parent, mut aps) =
            (BTreeSet::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        // L181–184
        self.add_vertex(FAKE_ROOT);
        let pops: Vec<String> = self.pop_site_names.iter().cloned().collect();
        for pop in o.order(Container::PopSites, pops) {
            self.add_edge(FAKE_ROOT, &pop);
        }
        // L187
        self.find_articulation_points(
            FAKE_ROOT,
            &mut visited,
            &mut discovery,
            &mut lowest,
            &mut parent,
            &mut aps,
            o,
        );
        // L197–215
        let mut all_dep_sites: BTreeSet<String> = BTreeSet::new();
        for ap in o.order(Container::Aps, aps.keys().cloned().collect()) {
            if all_dep_sites.contains(&ap) {
                continue; // L199: a sub-group of a group already added
            }
            all_dep_sites.insert(ap.clone());
            for child in o.order(Container::ApChildren(&ap), aps[&ap].iter().cloned().collect()) {
                // L205
                for dep in self.bfs(&child, &ap, o) {
                    // L207–209: absorb a sub-group added before.
                    ap_groups.remove(&dep);
                    ap_groups.entry(ap.clone()).or_default().insert(dep.clone());
                    all_dep_sites.insert(dep);
                }
            }
        }
        // L217
        self.remove_vertex(FAKE_ROOT);
        ap_groups
    }

    /// Pending nodes that go with `site` when it is taken (L298–316).
    fn candidate(&self, site: &str, groups: &ApGroups) -> BTreeSet<String> {
        let pending_of = |s: &str| -> Vec<String> {
            self.site_name_2_node_names
                .get(s)
                .into_iter()
                .flatten()
                .filter(|n| self.nodes_pending_update.contains(*n))
                .cloned()
                .collect()
        };
        // L301–305
        let mut cand: BTreeSet<String> = pending_of(site).into_iter().collect();
        // L308–316
        for child in groups.get(site).into_iter().flatten() {
            cand.extend(pending_of(child));
        }
        cand
    }

    /// L222–331: the biased traversal; the batch is the leaves it picks.
    pub fn get_candidate_nodes(&self, groups: &ApGroups, o: &mut dyn Orders) -> BTreeSet<String> {
        let mut nodes_to_update = BTreeSet::new();
        // L231–239: `push_front` onto two deques.
        let (mut updated, mut pending): (VecDeque<String>, VecDeque<String>) = Default::default();
        for pop in o.order(Container::PopSites, self.pop_site_names.iter().cloned().collect()) {
            if self.sites_pending_update.contains(&pop) {
                pending.push_front(pop);
            } else {
                updated.push_front(pop);
            }
        }
        // L241–243
        let mut seen: BTreeSet<String> = self.pop_site_names.clone();
        // L247 (generalised: meshlift allows `max_pops` POP sites, upstream 1).
        let mut pops_added = 0usize;
        // L250–258: upgraded sites first.
        while let Some(cur) = updated.pop_front().or_else(|| pending.pop_front()) {
            // L260–264
            let Some(adj) = self.adjacencies.get(&cur) else { continue };
            // L266–269
            let mut is_leaf = true;
            let is_pop = self.pop_site_names.contains(&cur);
            let ap_children = groups.get(&cur);
            // L275–290
            for nbr in o.order(Container::Adjacency(&cur), adj.iter().cloned().collect()) {
                if ap_children.is_some_and(|c| c.contains(&nbr)) {
                    continue; // L277: don't dive into an AP's group
                }
                if seen.insert(nbr.clone()) {
                    if self.sites_pending_update.contains(&nbr) {
                        pending.push_front(nbr);
                    } else {
                        updated.push_front(nbr);
                    }
                    is_leaf = false;
                }
            }
            // L296–297
            if is_leaf && self.sites_pending_update.contains(&cur) && (!is_pop || pops_added < self.max_pops)
            {
                let cand = self.candidate(&cur, groups);
                // L321–327: first fit; the first candidate may exceed the limit.
                if nodes_to_update.len() + cand.len() <= self.batch_size_limit || nodes_to_update.is_empty() {
                    nodes_to_update.extend(cand);
                    pops_added += usize::from(is_pop);
                }
            }
        }
        nodes_to_update
    }

    /// Is there an iteration order under which [`GraphHelper::get_candidate_nodes`] returns
    /// exactly `target`? `budget`: states to expand before giving up (`None`: exhaustive).
    ///
    /// The AP groups do not depend on any order (each is a maximal pending articulation point and
    /// everything it cuts off; a test checks this), so only the traversal is searched. Its
    /// choices are the order in which each site's unseen neighbours are pushed (L275) and the POP
    /// seeding order (L233). A set pushed at once onto a LIFO stack is popped, in whatever order it
    /// was pushed, before anything below it; so the stacks are searched as stacks of *blocks*
    /// (the sets pushed together), and each pop chooses any element of the top block. That is the
    /// same set of traversals as every permutation of every container, with far fewer states.
    /// The search tries the smallest name first ([`Canonical`]'s choice), memoises states, and
    /// prunes as soon as the batch holds a node not in `target` or a site whose nodes are in
    /// `target` is popped without being taken (a site is popped at most once, and a group's
    /// members are never popped, so its nodes cannot join later).
    pub fn can_return(&self, groups: &ApGroups, target: &BTreeSet<String>, budget: Option<usize>) -> Verdict {
        let split = |sites: Vec<String>| -> (Vec<String>, Vec<String>) {
            sites.into_iter().partition(|s| !self.sites_pending_update.contains(s))
        };
        let (upd, pend) = split(self.pop_site_names.iter().cloned().collect());
        let start = SearchState {
            upd: if upd.is_empty() { vec![] } else { vec![upd] },
            pend: if pend.is_empty() { vec![] } else { vec![pend] },
            seen: self.pop_site_names.clone(),
            batch: BTreeSet::new(),
            pops: 0,
        };
        let mut stack = vec![start];
        let mut memo: HashSet<SearchState> = HashSet::new();
        let mut expanded = 0usize;
        while let Some(st) = stack.pop() {
            if !memo.insert(st.clone()) {
                continue;
            }
            expanded += 1;
            if budget.is_some_and(|b| expanded > b) {
                return Verdict::Unknown;
            }
            let side_is_upd = !st.upd.is_empty();
            let blocks = if side_is_upd { &st.upd } else { &st.pend };
            let Some(top) = blocks.last() else {
                if st.batch == *target {
                    return Verdict::Yes;
                }
                continue;
            };
            // Reverse, so the smallest name is expanded first (the stack is LIFO).
            for i in (0..top.len()).rev() {
                let mut next = st.clone();
                let blocks = if side_is_upd { &mut next.upd } else { &mut next.pend };
                let top = blocks.last_mut().expect("checked non-empty above");
                let cur = top.remove(i);
                if top.is_empty() {
                    blocks.pop();
                }
                if self.visit(&mut next, &cur, groups, target) {
                    stack.push(next);
                }
            }
        }
        Verdict::No
    }

    /// One pop of the search (L260–328 on blocks). False: `target` is out of reach.
    fn visit(&self, st: &mut SearchState, cur: &str, groups: &ApGroups, target: &BTreeSet<String>) -> bool {
        let Some(adj) = self.adjacencies.get(cur) else { return true };
        let ap_children = groups.get(cur);
        let (mut upd, mut pend) = (Vec::new(), Vec::new());
        for nbr in adj {
            if ap_children.is_some_and(|c| c.contains(nbr)) || !st.seen.insert(nbr.clone()) {
                continue;
            }
            if self.sites_pending_update.contains(nbr) {
                pend.push(nbr.clone());
            } else {
                upd.push(nbr.clone());
            }
        }
        let is_leaf = upd.is_empty() && pend.is_empty();
        if !upd.is_empty() {
            st.upd.push(upd);
        }
        if !pend.is_empty() {
            st.pend.push(pend);
        }
        if !self.sites_pending_update.contains(cur) {
            return true;
        }
        let is_pop = self.pop_site_names.contains(cur);
        let cand = self.candidate(cur, groups);
        if is_leaf
            && (!is_pop || st.pops < self.max_pops)
            && (st.batch.len() + cand.len() <= self.batch_size_limit || st.batch.is_empty())
        {
            st.batch.extend(cand);
            st.pops += usize::from(is_pop);
            st.batch.is_subset(target)
        } else {
            cand.is_disjoint(target)
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SearchState {
    /// Stacks of blocks; the last block is the top, its elements in name order.
    upd: Vec<Vec<String>>,
    pend: Vec<Vec<String>>,
    seen: BTreeSet<String>,
    batch: BTreeSet<String>,
    pops: usize,
}
