//! Counters fed from someone else's cumulative figure.
//!
//! A minion reports the bytes of its download session as running totals, the seeder's librqbit
//! session counts its upload the same way, and the engine counts outcomes since it started. A
//! Prometheus counter may only go up, so the figure is exported as the sum of its forward moves:
//! when the figure goes down, its source started again from zero (a minion restart, a new
//! download session) and the new value is all new — exactly how `rate()` treats a counter
//! reset. The exported counter never goes down, and restarts only of this controller reset it.
//!
//! The one case this cannot see is a source that restarted and overtook its old total between
//! two reports: those bytes are counted short, never twice (Prometheus has the same blind spot).

use prometheus::{IntCounter, IntCounterVec};
use std::collections::HashMap;

/// The last value seen of one cumulative figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forward {
    last: u64,
}

impl Forward {
    /// How much to add to the counter for the figure's new value.
    pub fn advance(&mut self, value: u64) -> u64 {
        let delta = if value >= self.last { value - self.last } else { value };
        self.last = value;
        delta
    }

    /// The source started over (a new request): its next value counts in full.
    pub fn restart(&mut self) {
        self.last = 0;
    }
}

/// A counter per label value (a node), each following its own cumulative figure.
pub struct ForwardCounterVec {
    counter: IntCounterVec,
    last: HashMap<String, Forward>,
}

impl ForwardCounterVec {
    pub fn new(counter: IntCounterVec) -> Self {
        ForwardCounterVec { counter, last: HashMap::new() }
    }

    /// The figure of `label` is now `value`. Labels are node names from the topology, so the map
    /// is bounded by the topology's size.
    pub fn observe(&mut self, label: &str, value: u64) {
        let delta = match self.last.get_mut(label) {
            Some(f) => f.advance(value),
            None => {
                let mut f = Forward::default();
                let d = f.advance(value);
                self.last.insert(label.to_string(), f);
                d
            }
        };
        // Touch the series even for 0: a counter that exists from its first report lets
        // `increase()` see its first real move.
        self.counter.with_label_values(&[label]).inc_by(delta);
    }

    /// Whether `label` was ever observed.
    pub fn knows(&self, label: &str) -> bool {
        self.last.contains_key(label)
    }

    /// Every source started over (a new request): their next values count in full.
    pub fn restart_all(&mut self) {
        self.last.values_mut().for_each(Forward::restart);
    }
}

/// One counter following one cumulative figure.
pub struct ForwardCounter {
    counter: IntCounter,
    last: Forward,
}

impl ForwardCounter {
    pub fn new(counter: IntCounter) -> Self {
        ForwardCounter { counter, last: Forward::default() }
    }

    pub fn observe(&mut self, value: u64) {
        self.counter.inc_by(self.last.advance(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn vec() -> (IntCounterVec, ForwardCounterVec) {
        let c = IntCounterVec::new(Opts::new("t_bytes_total", "test"), &["node"]).unwrap();
        (c.clone(), ForwardCounterVec::new(c))
    }

    #[test]
    fn a_restarted_minion_never_moves_the_counter_back() {
        let (c, mut f) = vec();
        f.observe("n1", 1000);
        f.observe("n1", 5000);
        assert_eq!(c.with_label_values(&["n1"]).get(), 5000);
        // The minion restarted: its session counts from zero again.
        f.observe("n1", 200);
        assert_eq!(c.with_label_values(&["n1"]).get(), 5200);
        f.observe("n1", 700);
        assert_eq!(c.with_label_values(&["n1"]).get(), 5700);
    }

    #[test]
    fn nodes_count_apart_and_a_repeated_report_adds_nothing() {
        let (c, mut f) = vec();
        f.observe("n1", 10);
        f.observe("n2", 30);
        f.observe("n1", 10);
        assert_eq!(c.with_label_values(&["n1"]).get(), 10);
        assert_eq!(c.with_label_values(&["n2"]).get(), 30);
    }

    #[test]
    fn after_a_restart_of_every_source_the_next_values_count_in_full() {
        let (c, mut f) = vec();
        f.observe("n1", 2);
        f.restart_all();
        // A new request whose retries reached 2 again: 2 more, not 0.
        f.observe("n1", 2);
        assert_eq!(c.with_label_values(&["n1"]).get(), 4);
    }

    #[test]
    fn a_single_counter_follows_its_figure() {
        let c = IntCounter::new("t_total", "test").unwrap();
        let mut f = ForwardCounter::new(c.clone());
        f.observe(100);
        f.observe(150);
        f.observe(20);
        assert_eq!(c.get(), 170);
    }
}
