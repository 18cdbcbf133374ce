//! Collateral isolation: seconds during which a node that is running (not itself rebooting) has no
//! in-band path to the controller. This is the cost a commit plan must keep at zero: a rebooting
//! node expects to be offline, its neighbours behind it do not, and Terragraph's GraphHelper exists
//! to avoid exactly that (reference §3).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

/// Totals so far. `per_node` lists only nodes that were isolated at some point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IsolationReport {
    pub total_s: f64,
    pub per_node: BTreeMap<String, f64>,
}

impl IsolationReport {
    /// Prometheus text exposition (counters), for the controller's `/metrics` or the demo's output.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP meshlift_collateral_isolation_seconds_total Seconds running nodes spent without an in-band path to the controller.\n\
             # TYPE meshlift_collateral_isolation_seconds_total counter\n",
        );
        // Writing to a String cannot fail.
        let _ = writeln!(out, "meshlift_collateral_isolation_seconds_total {}", self.total_s);
        out.push_str(
            "# HELP meshlift_node_collateral_isolation_seconds_total Per node: seconds running without an in-band path to the controller.\n\
             # TYPE meshlift_node_collateral_isolation_seconds_total counter\n",
        );
        for (node, secs) in &self.per_node {
            let _ = writeln!(
                out,
                "meshlift_node_collateral_isolation_seconds_total{{node=\"{}\"}} {secs}",
                escape_label(node)
            );
        }
        out
    }

    /// Nodes that were isolated at some point, sorted by name.
    pub fn isolated_nodes(&self) -> Vec<&str> {
        self.per_node.keys().map(String::as_str).collect()
    }
}

/// Accumulates isolated seconds between updates. Pure: `now` comes from the caller and must not
/// go backwards (an earlier `now` adds nothing rather than panicking).
#[derive(Debug, Clone)]
pub struct IsolationMeter {
    last: Instant,
    isolated: BTreeSet<String>,
    /// Start of each currently open isolation interval.
    since: BTreeMap<String, Instant>,
    per_node: BTreeMap<String, f64>,
}

impl IsolationMeter {
    pub fn new(now: Instant) -> IsolationMeter {
        IsolationMeter {
            last: now,
            isolated: BTreeSet::new(),
            since: BTreeMap::new(),
            per_node: BTreeMap::new(),
        }
    }

    /// Close the interval since the last update for the nodes that were isolated during it, then
    /// start a new interval with `isolated`.
    pub fn update(&mut self, now: Instant, isolated: BTreeSet<String>) {
        let mut per_node = std::mem::take(&mut self.per_node);
        self.accumulate_into(now, &mut per_node);
        self.per_node = per_node;
        for node in &isolated {
            self.per_node.entry(node.clone()).or_default();
        }
        let now = now.max(self.last);
        self.since.retain(|n, _| isolated.contains(n));
        for node in &isolated {
            self.since.entry(node.clone()).or_insert(now);
        }
        self.last = now;
        self.isolated = isolated;
    }

    /// `node` is going down for its own reboot. If it lost its path less than `grace` ago, that
    /// isolation was the start of its own outage, not collateral damage: the nodes of one commit
    /// batch receive the COMMIT together but exit a few hundred milliseconds apart, and the first
    /// one to go briefly cuts off its batch mates. The interval is forgotten; a longer one (the
    /// node really sat cut off before its turn came) stays counted.
    pub fn forgive_own_reboot(&mut self, now: Instant, node: &str, grace: std::time::Duration) {
        let current = self.isolated.clone();
        self.update(now, current);
        let Some(start) = self.since.get(node).copied() else { return };
        let open = self.last.saturating_duration_since(start);
        if open > grace {
            return;
        }
        if let Some(total) = self.per_node.get_mut(node) {
            *total -= open.as_secs_f64();
            if *total <= 1e-9 {
                self.per_node.remove(node);
            }
        }
        // It is going down: no longer isolated from here on.
        self.since.remove(node);
        self.isolated.remove(node);
    }

    /// Totals including the interval still open at `now`.
    pub fn report(&self, now: Instant) -> IsolationReport {
        let mut per_node = self.per_node.clone();
        self.accumulate_into(now, &mut per_node);
        per_node.retain(|_, s| *s > 1e-9);
        // An empty f64 sum is -0.0; exposition must read 0.
        let total_s = per_node.values().fold(0.0_f64, |a, b| a + b).max(0.0);
        IsolationReport { total_s, per_node }
    }

    /// Nodes isolated right now.
    pub fn currently_isolated(&self) -> &BTreeSet<String> {
        &self.isolated
    }

    fn accumulate_into(&self, now: Instant, per_node: &mut BTreeMap<String, f64>) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        for node in &self.isolated {
            *per_node.entry(node.clone()).or_default() += elapsed;
        }
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sums_intervals_per_node() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = IsolationMeter::new(t0);
        m.update(t0 + s(1), set(&["a", "b"]));
        m.update(t0 + s(3), set(&["b"]));
        m.update(t0 + s(4), set(&[]));
        let r = m.report(t0 + s(50));
        assert_eq!(r.per_node["a"], 2.0);
        assert_eq!(r.per_node["b"], 3.0);
        assert_eq!(r.total_s, 5.0);
        // Time going backwards adds nothing.
        m.update(t0, set(&["a"]));
        assert_eq!(m.report(t0).total_s, 5.0);
    }

    #[test]
    fn a_short_isolation_ending_in_the_nodes_own_reboot_is_forgiven() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = IsolationMeter::new(t0);
        m.update(t0, set(&["a", "b"]));
        // a reboots 300 ms after losing its path (its batch mate went first): not collateral.
        m.forgive_own_reboot(t0 + ms(300), "a", ms(2000));
        m.update(t0 + ms(300), set(&["b"]));
        // b sat isolated for 5 s before its own reboot: that counts.
        m.forgive_own_reboot(t0 + ms(5000), "b", ms(2000));
        m.update(t0 + ms(5000), set(&[]));
        let r = m.report(t0 + ms(9000));
        assert_eq!(r.per_node.get("a"), None);
        assert_eq!(r.per_node["b"], 5.0);
    }

    #[test]
    fn prometheus_text_has_total_and_per_node_series() {
        let r = IsolationReport { total_s: 2.5, per_node: [("n\"1".to_string(), 2.5)].into() };
        let text = r.to_prometheus();
        assert!(text.contains("meshlift_collateral_isolation_seconds_total 2.5\n"));
        assert!(text.contains("meshlift_node_collateral_isolation_seconds_total{node=\"n\\\"1\"} 2.5\n"));
        assert!(text.contains("# TYPE meshlift_collateral_isolation_seconds_total counter"));
    }
}
