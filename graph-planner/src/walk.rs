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
//! plan with a naive GraphHelper.

use crate::ap_groups::Groups;
use crate::site_graph::{SiteGraph, NONE};
use crate::ApPolicy;

/// `seen[v] == TRACED`: `v` is a seed or was pushed by the recorded walk.
const TRACED: u32 = u32::MAX;

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
    /// A POP site with no live link to another site: Terragraph's traversal skips it.
    NoLinks,
    /// No path to any POP.
    CutOff,
}

/// The walk's state before a step's pop.
#[derive(Clone, Copy)]
struct State {
    /// Tops of the pushed parts of the two stacks (arena indices, `NONE` when empty).
    upd: u32,
    pend: u32,
    /// Next position in the POP list to look for an upgraded / pending seed.
    upd_seed: u32,
    pend_seed: u32,
    batch_nodes: usize,
    pops_taken: u32,
}

#[derive(Clone, Copy)]
struct Step {
    before: State,
    /// The site this step popped.
    site: u32,
    arena_len: u32,
    pushes_len: u32,
    candidates_len: u32,
}

/// The fixed inputs of one walk.
pub(crate) struct Rules<'a, 'g> {
    pub g: &'a SiteGraph<'g>,
    /// POP sites, ascending (= by name).
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
    state: State,
    /// The walk ended because the batch was full (not because the stacks ran dry).
    full: bool,
    /// Persistent linked stacks: `(site, arena index of the entry below)`.
    arena: Vec<(u32, u32)>,
    steps: Vec<Step>,
    /// Sites pushed, in order (seeds excluded).
    pushes: Vec<u32>,
    /// Per site: step that pushed it, `NONE` if none did.
    push_step: Vec<u32>,
    /// Per site: step that popped it, `NONE` if none did.
    pop_step: Vec<u32>,
    /// First step that popped from the pending side, `NONE` if none did.
    first_pend_step: u32,
    /// `seen[v] == TRACED`: seeded or pushed.
    seen: Vec<u32>,
    /// Candidate sites taken, in traversal order.
    pub candidates: Vec<u32>,
    /// Per site: the reason the walk gave it (pending sites only).
    pub wait: Vec<Wait>,
    /// POP sites turned upgraded since the last run (they change the seeds).
    changed_pops: Vec<u32>,
}

const START: State =
    State { upd: NONE, pend: NONE, upd_seed: 0, pend_seed: 0, batch_nodes: 0, pops_taken: 0 };

impl Walk {
    pub fn new(n: usize) -> Walk {
        Walk {
            ready: false,
            resume: usize::MAX,
            state: START,
            full: false,
            arena: Vec::new(),
            steps: Vec::new(),
            pushes: Vec::new(),
            push_step: vec![NONE; n],
            pop_step: vec![NONE; n],
            first_pend_step: NONE,
            seen: vec![0; n],
            candidates: Vec::new(),
            wait: vec![Wait::None; n],
            changed_pops: Vec::new(),
        }
    }

    /// Undo everything the recorded walk marked (the POP-only shortcut takes over for good).
    pub fn clear(&mut self) {
        self.unmark();
        self.pushes.clear();
        self.steps.clear();
        self.arena.clear();
        self.candidates.clear();
        self.ready = false;
    }

    fn unmark(&mut self) {
        for &v in &self.pushes {
            self.seen[v as usize] = 0;
            self.push_step[v as usize] = NONE;
        }
        for s in &self.steps {
            self.pop_step[s.site as usize] = NONE;
            self.wait[s.site as usize] = Wait::None;
        }
    }

    /// Site `v` has just turned from pending to upgraded.
    pub fn upgraded(&mut self, g: &SiteGraph, v: u32) {
        if !self.ready {
            return;
        }
        if g.pop[v as usize] {
            self.changed_pops.push(v);
        } else if self.push_step[v as usize] != NONE {
            self.resume = self.resume.min(self.push_step[v as usize] as usize);
        }
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
            self.restart(r);
        } else if self.resume < self.steps.len() {
            self.rollback(self.resume);
        } else if self.full {
            // Nothing the last walk did changed, yet it had filled a batch: that batch was not
            // applied (a caller asking twice); it is the answer again.
            return (self.state.batch_nodes, self.state.pops_taken);
        }
        self.resume = usize::MAX;
        self.walk_on(r);
        (self.state.batch_nodes, self.state.pops_taken)
    }

    /// Where a POP site turned upgraded first changes the walk: when the old walk popped the next
    /// upgraded seed after it, or first popped a pending site (the new upgraded seed would have
    /// come before either). More than one changed POP at once: start over.
    fn seed_change(&mut self, r: &Rules) {
        let [p] = self.changed_pops[..] else {
            self.ready = false;
            return;
        };
        let pos = r.pops.partition_point(|&q| q < p);
        let next_seed = r.pops[pos + 1..].iter().copied().find(|&q| r.pending[q as usize] == 0);
        let mut at = self.first_pend_step;
        if let Some(q) = next_seed {
            at = at.min(self.pop_step[q as usize]);
        }
        if at == NONE {
            // The old walk ended before either; it cannot have ended full (its candidates were
            // pending pops), so it ran dry: walk on from its end.
            at = self.steps.len() as u32;
        }
        self.resume = self.resume.min(at as usize);
    }

    fn restart(&mut self, r: &Rules) {
        self.unmark();
        self.pushes.clear();
        self.steps.clear();
        self.arena.clear();
        self.candidates.clear();
        for &p in r.pops {
            self.seen[p as usize] = TRACED;
        }
        self.state = START;
        self.first_pend_step = NONE;
        self.full = false;
        self.ready = true;
    }

    /// Back to the state before step `k`.
    fn rollback(&mut self, k: usize) {
        let s = self.steps[k];
        for &v in &self.pushes[s.pushes_len as usize..] {
            self.seen[v as usize] = 0;
            self.push_step[v as usize] = NONE;
        }
        for later in &self.steps[k..] {
            self.pop_step[later.site as usize] = NONE;
            self.wait[later.site as usize] = Wait::None;
        }
        self.pushes.truncate(s.pushes_len as usize);
        self.arena.truncate(s.arena_len as usize);
        self.candidates.truncate(s.candidates_len as usize);
        self.steps.truncate(k);
        debug_assert!(
            self.candidates.is_empty(),
            "every candidate is a changed site, pushed or seeded after step {k}"
        );
        if self.first_pend_step != NONE && self.first_pend_step as usize >= k {
            self.first_pend_step = NONE;
        }
        self.state = s.before;
        self.full = false;
    }

    fn push(&mut self, top: u32, v: u32) -> u32 {
        self.arena.push((v, top));
        (self.arena.len() - 1) as u32
    }

    /// The next site: pushed upgraded sites, then upgraded seeds in name order, then pushed pending
    /// sites, then pending seeds in name order.
    fn pop(&mut self, r: &Rules) -> Option<(u32, bool)> {
        let st = &mut self.state;
        if st.upd != NONE {
            let (v, below) = self.arena[st.upd as usize];
            st.upd = below;
            return Some((v, false));
        }
        while (st.upd_seed as usize) < r.pops.len() {
            let p = r.pops[st.upd_seed as usize];
            st.upd_seed += 1;
            if r.pending[p as usize] == 0 {
                return Some((p, false));
            }
        }
        if st.pend != NONE {
            let (v, below) = self.arena[st.pend as usize];
            st.pend = below;
            return Some((v, true));
        }
        while (st.pend_seed as usize) < r.pops.len() {
            let p = r.pops[st.pend_seed as usize];
            st.pend_seed += 1;
            if r.pending[p as usize] > 0 {
                return Some((p, true));
            }
        }
        None
    }

    fn walk_on(&mut self, r: &Rules) {
        let g = r.g;
        loop {
            let step = Step {
                before: self.state,
                site: NONE,
                arena_len: self.arena.len() as u32,
                pushes_len: self.pushes.len() as u32,
                candidates_len: self.candidates.len() as u32,
            };
            let Some((cur, from_pend)) = self.pop(r) else { return };
            let k = self.steps.len() as u32;
            self.steps.push(Step { site: cur, ..step });
            self.pop_step[cur as usize] = k;
            if from_pend && self.first_pend_step == NONE {
                self.first_pend_step = k;
            }
            let ci = cur as usize;
            let nb = g.neighbors(cur);
            if nb.is_empty() {
                if r.pending[ci] > 0 {
                    self.wait[ci] = Wait::NoLinks;
                }
                continue;
            }
            let key = r.groups.is_key[ci];
            let mut first_child = NONE;
            for &m in nb.iter().rev() {
                let mi = m as usize;
                if self.seen[mi] == TRACED || (key && r.groups.member_of[mi] == cur) {
                    continue;
                }
                self.seen[mi] = TRACED;
                self.push_step[mi] = k;
                self.pushes.push(m);
                if r.pending[mi] > 0 {
                    self.state.pend = self.push(self.state.pend, m);
                } else {
                    self.state.upd = self.push(self.state.upd, m);
                }
                first_child = m;
            }
            if r.pending[ci] == 0 {
                continue;
            }
            let st = &mut self.state;
            if first_child != NONE {
                self.wait[ci] = Wait::NotLeaf(first_child);
            } else if g.pop[ci] && st.pops_taken >= r.max_pops {
                self.wait[ci] = Wait::PopRule;
            } else {
                let cand = r.groups.cand_nodes[ci] as usize;
                if st.batch_nodes + cand <= r.cap || st.batch_nodes == 0 {
                    st.batch_nodes += cand;
                    self.candidates.push(cur);
                    st.pops_taken += u32::from(g.pop[ci]);
                    if st.batch_nodes >= r.cap {
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
