//! Terragraph's traversal (reference §3.4), recorded so that the next batch of a plan replays only
//! the part the last batch changed.
//!
//! The walk pops upgraded sites before pending ones, so late in a plan every batch floods nearly
//! the whole upgraded mesh before it reaches the few pending sites that make the batch: walking
//! ~100 000 sites for each of thousands of batches was most of the cost of a 100 000-site plan.
//!
//! The walk is a deterministic sequence of steps: pop a site, push its unseen neighbours in a fixed
//! order (pending ones on one stack, upgraded ones on the other), and decide whether a popped
//! pending site is a leaf that joins the batch. Between two batches of a plan the topology does not
//! change; only the sites of the last batch turn from pending to upgraded (and, under
//! [`ApPolicy::Group`], the AP groups lose exactly the keys that batch took). A step reads a site's
//! pending flag first when it pushes that site, so every step before the first push of a changed
//! site is what a fresh walk would do again. POP sites are never pushed: they are seeded, the
//! upgraded ones popped in name order whenever the upgraded stack runs dry, then the pending ones
//! likewise after the pending stack. A changed POP site therefore first matters at the first step
//! that popped a later upgraded seed, or a pending site.
//!
//! So the walk keeps, per step, the state before its pop (the two stacks as tops of persistent
//! linked stacks in one arena, the seed cursors, the batch so far), the sites each step pushed, and
//! the reasons it gave; after a batch it rolls back to the first step the change can affect and
//! walks on from there. The batch sites are found at the end of the walk, so the replay is usually
//! short. [`ApPolicy::DependentsFirst`] gains keys as dependents finish, which can change any
//! step, so it walks from scratch every batch.
//!
//! The result is exactly that of a fresh walk: the graph-planner tests compare every batch of every
//! plan with a line-by-line port of upstream GraphHelper in the same order.

use crate::ap_groups::Groups;
use crate::site_graph::{SiteGraph, NONE};
use crate::ApPolicy;

/// `mark[v]`: `v` was neither seeded nor pushed.
const UNSEEN: u32 = u32::MAX;
/// `mark[v]`: `v` is a POP site, seen from the start.
const SEED: u32 = u32::MAX - 1;

/// Why a pending site is not in this batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Wait {
    None,
    /// Other sites reach their POP through it (it discovered `child`).
    NotLeaf(u32),
    /// The batch already holds the allowed number of POP sites.
    PopRule,
    /// Its candidate does not fit in what is left of `limit`.
    Limit,
    /// The batch was full before the traversal reached it.
    BatchFull,
    /// Member of the AP group of a key that waits.
    InGroup(u32),
    /// No path to any POP.
    CutOff,
}

/// The walk's state before a step's pop (20 bytes: a 100 000-site walk records ~100 000 steps).
#[derive(Clone, Copy)]
struct Step {
    /// Tops of the pushed parts of the two stacks (arena indices, `NONE` when empty).
    upd: u32,
    pend: u32,
    /// Next position in the POP list to look for an upgraded / pending seed.
    upd_seed: u32,
    pend_seed: u32,
    /// Pushes so far (= arena length).
    pushed: u32,
}

/// A site taken into the batch, and the batch's size with it.
#[derive(Clone, Copy)]
struct Taken {
    step: u32,
    site: u32,
    batch_nodes: usize,
    pops_taken: u32,
}

/// The fixed inputs of one walk.
pub(crate) struct Rules<'a, 'g> {
    pub g: &'a SiteGraph<'g>,
    /// POP sites, by name.
    pub pops: &'a [u32],
    /// Pending online nodes per site.
    pub pending: &'a [u32],
    pub groups: &'a Groups,
    pub cap: usize,
    pub max_pops: u32,
}

pub(crate) struct Walk {
    /// False: start from the seeds on the next [`Walk::run`].
    ready: bool,
    /// First step to replay; `usize::MAX` (or anything past the end) when nothing changed.
    resume: usize,
    /// The state before the next step.
    state: Step,
    /// The walk ended because the batch was full (not because the stacks ran dry).
    full: bool,
    /// Both stacks' pushes in order, as persistent linked stacks: `(site, arena index of the entry
    /// below)`. Entry `i` is push number `i`.
    arena: Vec<(u32, u32)>,
    /// Per step: the state before it.
    steps: Vec<Step>,
    /// Per step: the site it popped.
    popped: Vec<u32>,
    /// Per site: the step that pushed it, or [`UNSEEN`], or [`SEED`].
    mark: Vec<u32>,
    /// Per POP site (by position in the POP list): the step that popped it, `NONE` if none did.
    seed_popped: Vec<u32>,
    /// First step that popped from the pending side, `NONE` if none did.
    first_pend_step: u32,
    /// Candidate sites taken, in traversal order, and when.
    taken: Vec<Taken>,
    /// Per site: the reason the walk gave it (pending sites only).
    pub wait: Vec<Wait>,
    /// POP sites turned upgraded since the last run (they change the seeds).
    changed_pops: Vec<u32>,
}

const START: Step = Step { upd: NONE, pend: NONE, upd_seed: 0, pend_seed: 0, pushed: 0 };

impl Walk {
    pub fn new(n: usize, pops: usize) -> Walk {
        Walk {
            ready: false,
            resume: usize::MAX,
            state: START,
            full: false,
            // A walk takes about one step and one push per reachable site.
            arena: Vec::with_capacity(n),
            steps: Vec::with_capacity(n),
            popped: Vec::with_capacity(n),
            mark: vec![UNSEEN; n],
            seed_popped: vec![NONE; pops],
            first_pend_step: NONE,
            taken: Vec::new(),
            wait: vec![Wait::None; n],
            changed_pops: Vec::new(),
        }
    }

    /// Undo everything the recorded walk marked (the POP-only shortcut takes over for good).
    pub fn clear(&mut self) {
        self.truncate(0);
        self.ready = false;
    }

    /// Site `v` has just turned from pending to upgraded.
    pub fn upgraded(&mut self, g: &SiteGraph, v: u32) {
        if !self.ready {
            return;
        }
        let m = self.mark[v as usize];
        if g.pop[v as usize] {
            self.changed_pops.push(v);
        } else if m != UNSEEN && m != SEED {
            self.resume = self.resume.min(m as usize);
        }
    }

    /// Candidate sites of this batch, in traversal order.
    pub fn candidates(&self) -> Vec<u32> {
        self.taken.iter().map(|t| t.site).collect()
    }

    /// The walk for the current pending set: [`Walk::candidates`] and [`Walk::wait`] are this
    /// batch's. Returns `(batch_nodes, pops_taken)`.
    pub fn run(&mut self, r: &Rules, policy: ApPolicy) -> (usize, u32) {
        if policy == ApPolicy::DependentsFirst {
            self.ready = false;
        }
        if self.ready && !self.changed_pops.is_empty() {
            self.seed_change(r);
        }
        self.changed_pops.clear();
        if !self.ready {
            self.truncate(0);
            for &p in r.pops {
                self.mark[p as usize] = SEED;
            }
            self.ready = true;
        } else if self.resume < self.steps.len() {
            self.truncate(self.resume);
        } else if self.full {
            // Nothing the last walk did changed, yet it had filled a batch: that batch was not
            // applied (a caller asking twice); it is the answer again.
            return self.batch_size();
        }
        self.resume = usize::MAX;
        self.walk_on(r);
        self.batch_size()
    }

    fn batch_size(&self) -> (usize, u32) {
        self.taken.last().map_or((0, 0), |t| (t.batch_nodes, t.pops_taken))
    }

    /// Where a POP site turned upgraded first changes the walk: when the old walk popped the next
    /// upgraded seed after it, or first popped a pending site (the new upgraded seed would have
    /// come before either). More than one changed POP at once: start over.
    fn seed_change(&mut self, r: &Rules) {
        let [p] = self.changed_pops[..] else {
            self.ready = false;
            return;
        };
        let rank = &r.g.mesh.site_rank;
        let pos = r.pops.partition_point(|&q| rank[q as usize] < rank[p as usize]);
        let next_seed = (pos + 1..r.pops.len()).find(|&i| r.pending[r.pops[i] as usize] == 0);
        let mut at = self.first_pend_step;
        if let Some(i) = next_seed {
            at = at.min(self.seed_popped[i]);
        }
        if at == NONE {
            // The old walk ended before either; it cannot have ended full (its candidates were
            // pending pops), so it ran dry: walk on from its end.
            at = self.steps.len() as u32;
        }
        self.resume = self.resume.min(at as usize);
    }

    /// Back to the state before step `k` (0: before the first step; seeds stay marked).
    fn truncate(&mut self, k: usize) {
        let state = self.steps.get(k).copied().unwrap_or(if k == 0 { START } else { self.state });
        for &(v, _) in &self.arena[state.pushed as usize..] {
            self.mark[v as usize] = UNSEEN;
        }
        for &v in &self.popped[k..] {
            self.wait[v as usize] = Wait::None;
        }
        for s in &mut self.seed_popped {
            if *s != NONE && *s as usize >= k {
                *s = NONE;
            }
        }
        self.arena.truncate(state.pushed as usize);
        self.steps.truncate(k);
        self.popped.truncate(k);
        while self.taken.last().is_some_and(|t| t.step as usize >= k) {
            self.taken.pop();
        }
        debug_assert!(
            k == 0 || self.taken.is_empty(),
            "every candidate is a changed site, pushed or seeded after step {k}"
        );
        if self.first_pend_step != NONE && self.first_pend_step as usize >= k {
            self.first_pend_step = NONE;
        }
        self.state = state;
        self.full = false;
    }

    /// The next site: pushed upgraded sites, then upgraded seeds in name order, then pushed pending
    /// sites, then pending seeds in name order. Also returns the seed's position when it is one.
    fn pop(&mut self, r: &Rules) -> Option<(u32, bool, u32)> {
        for pending_side in [false, true] {
            let st = &mut self.state;
            let (top, seed) = if pending_side {
                (&mut st.pend, &mut st.pend_seed)
            } else {
                (&mut st.upd, &mut st.upd_seed)
            };
            if *top != NONE {
                let (v, below) = self.arena[*top as usize];
                *top = below;
                return Some((v, pending_side, NONE));
            }
            while (*seed as usize) < r.pops.len() {
                let i = *seed;
                *seed += 1;
                let p = r.pops[i as usize];
                if (r.pending[p as usize] > 0) == pending_side {
                    return Some((p, pending_side, i));
                }
            }
        }
        None
    }

    fn walk_on(&mut self, r: &Rules) {
        let g = r.g;
        let (mut batch_nodes, mut pops_taken) = self.batch_size();
        loop {
            let before = self.state;
            let Some((cur, from_pend, seed)) = self.pop(r) else { return };
            let k = self.steps.len() as u32;
            self.steps.push(before);
            self.popped.push(cur);
            if seed != NONE {
                self.seed_popped[seed as usize] = k;
            }
            if from_pend && self.first_pend_step == NONE {
                self.first_pend_step = k;
            }
            let ci = cur as usize;
            let nb = g.neighbors(cur);
            let key = r.groups.is_key[ci];
            let mut first_child = NONE;
            for &m in nb.iter().rev() {
                let mi = m as usize;
                if self.mark[mi] != UNSEEN || (key && r.groups.member_of[mi] == cur) {
                    continue;
                }
                self.mark[mi] = k;
                let top = if r.pending[mi] > 0 { &mut self.state.pend } else { &mut self.state.upd };
                self.arena.push((m, *top));
                *top = self.state.pushed;
                self.state.pushed += 1;
                first_child = m;
            }
            if r.pending[ci] == 0 {
                continue;
            }
            if first_child != NONE {
                self.wait[ci] = Wait::NotLeaf(first_child);
            } else if g.pop[ci] && pops_taken >= r.max_pops {
                self.wait[ci] = Wait::PopRule;
            } else {
                let cand = r.groups.cand_nodes[ci] as usize;
                if batch_nodes + cand <= r.cap || batch_nodes == 0 {
                    batch_nodes += cand;
                    pops_taken += u32::from(g.pop[ci]);
                    self.taken.push(Taken { step: k, site: cur, batch_nodes, pops_taken });
                    if batch_nodes >= r.cap {
                        // Every candidate has at least one node: nothing else can fit.
                        self.full = true;
                        return;
                    }
                } else {
                    self.wait[ci] = Wait::Limit;
                }
            }
        }
    }
}
