//! When to give up on the swarm and how long to wait between HTTP attempts. Pure: time is passed
//! in, so the rules are tested without sleeping.

use std::time::{Duration, Instant};

/// Watches swarm progress; the swarm has stalled when the number of verified bytes has not grown
/// for `stall_timeout` (no peers, a tracker that never answers, peers that only send garbage).
#[derive(Debug, Clone)]
pub struct StallWatch {
    stall_timeout: Duration,
    best: u64,
    since: Instant,
}

impl StallWatch {
    pub fn new(stall_timeout: Duration, now: Instant) -> Self {
        StallWatch { stall_timeout, best: 0, since: now }
    }

    /// Feed the verified byte count; returns true once the swarm counts as stalled.
    pub fn observe(&mut self, have: u64, now: Instant) -> bool {
        if have > self.best {
            self.best = have;
            self.since = now;
        }
        now.saturating_duration_since(self.since) >= self.stall_timeout
    }

    /// When the swarm will count as stalled if nothing arrives.
    pub fn deadline(&self) -> Instant {
        self.since + self.stall_timeout
    }
}

/// What to do with the connection to the controller's seeder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeederMove {
    Keep,
    /// Stop fetching from the seeder: this node has had its share; the rest comes from peers.
    Drop,
    /// Fetch from the seeder again: the peers have had nothing new for us for a while.
    Use,
}

/// The controller's seeder as a last resort (it is capped, and whatever it sends twice is
/// wasted). A node fetches from it only its own share of what it misses — the missing bytes
/// divided by the swarm's size — then drops it and trades with peers; when the peers have had
/// nothing new for `hungry`, it uses the seeder again for a new share of what is still missing.
/// A node alone with the seeder has the whole image as its share.
#[derive(Debug, Clone)]
pub struct SeederGate {
    hungry: Duration,
    using: bool,
    /// Bytes missing when the current use of the seeder began.
    missing_at_use: u64,
    best: u64,
    since_progress: Instant,
}

impl SeederGate {
    /// Starts using the seeder, with `missing` bytes to fetch.
    pub fn new(hungry: Duration, missing: u64, now: Instant) -> Self {
        SeederGate { hungry, using: true, missing_at_use: missing, best: 0, since_progress: now }
    }

    pub fn using(&self) -> bool {
        self.using
    }

    /// The bytes this node may take from the seeder in the current use: its share of what was
    /// missing, at least `min_share` (one piece, so each use makes progress).
    pub fn share(&self, swarm_size: u32, min_share: u64) -> u64 {
        (self.missing_at_use / u64::from(swarm_size.max(1))).max(min_share)
    }

    /// Feed the figures: verified bytes, total size, bytes fetched from the seeder in the
    /// current use, and the swarm size (this node and its live peers, the seeder not counted).
    pub fn observe(
        &mut self,
        have: u64,
        total: u64,
        from_seeder: u64,
        swarm_size: u32,
        min_share: u64,
        now: Instant,
    ) -> SeederMove {
        if have > self.best {
            self.best = have;
            self.since_progress = now;
        }
        if have >= total {
            return SeederMove::Keep;
        }
        if self.using {
            if from_seeder >= self.share(swarm_size, min_share) && swarm_size > 1 {
                self.using = false;
                self.since_progress = now;
                return SeederMove::Drop;
            }
        } else if from_seeder >= min_share && swarm_size > 1 {
            // A peer passed the seeder's address on (PEX) and librqbit connected to it.
            self.since_progress = now;
            return SeederMove::Drop;
        } else if now.saturating_duration_since(self.since_progress) >= self.hungry {
            self.using = true;
            self.missing_at_use = total - have;
            self.since_progress = now;
            return SeederMove::Use;
        }
        SeederMove::Keep
    }
}

/// Wait before HTTP attempt `attempt` (1-based; the first attempt does not wait): 1 s, 2 s, 4 s,
/// … capped at 30 s, so a controller that is restarting is not hammered but is retried soon.
pub fn backoff(attempt: u32) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64 << (attempt - 2).min(5)).min(Duration::from_secs(30))
}

/// Terragraph accepts 1..=10 attempts and uses 3 otherwise.
pub fn attempts(requested: u32) -> u32 {
    if (1..=10).contains(&requested) {
        requested
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_resets_on_progress_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs(5);
        let mut w = StallWatch::new(s, t0);
        assert!(!w.observe(0, t0 + Duration::from_secs(4)));
        assert!(!w.observe(10, t0 + Duration::from_secs(6)));
        assert!(!w.observe(10, t0 + Duration::from_secs(10)));
        assert!(!w.observe(5, t0 + Duration::from_secs(10)), "going backwards is not progress");
        assert!(w.observe(10, t0 + Duration::from_secs(11)));
        assert_eq!(w.deadline(), t0 + Duration::from_secs(11));
    }

    #[test]
    fn seeder_is_dropped_after_the_share_and_used_again_when_hungry() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let mut g = SeederGate::new(Duration::from_secs(2), 1000, t0);
        assert!(g.using());
        assert_eq!(g.observe(50, 1000, 90, 10, 10, s(100)), SeederMove::Keep, "share is 1000 / 10");
        assert_eq!(g.observe(120, 1000, 100, 10, 10, s(200)), SeederMove::Drop);
        assert!(!g.using());
        assert_eq!(g.observe(500, 1000, 0, 10, 10, s(1500)), SeederMove::Keep, "peers deliver");
        assert_eq!(g.observe(500, 1000, 10, 10, 10, s(1600)), SeederMove::Drop, "seeder learnt by PEX");
        assert_eq!(g.observe(500, 1000, 0, 10, 10, s(3500)), SeederMove::Keep);
        assert_eq!(g.observe(500, 1000, 0, 10, 10, s(3600)), SeederMove::Use, "2 s without progress");
        assert_eq!(g.share(10, 10), 50, "a share of the 500 still missing");
        assert_eq!(g.share(100, 10), 10, "never less than one piece");
        assert_eq!(g.observe(1000, 1000, 0, 10, 10, s(9000)), SeederMove::Keep, "done");
    }

    #[test]
    fn a_node_alone_keeps_the_seeder() {
        let t0 = Instant::now();
        let mut g = SeederGate::new(Duration::from_secs(2), 1000, t0);
        assert_eq!(g.observe(900, 1000, 900, 1, 10, t0), SeederMove::Keep);
        assert!(g.using());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let got: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, vec![0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(attempts(0), 3);
        assert_eq!(attempts(11), 3);
        assert_eq!(attempts(5), 5);
    }
}
