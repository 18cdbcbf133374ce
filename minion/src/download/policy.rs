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
    fn backoff_doubles_and_caps() {
        let got: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, vec![0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(attempts(0), 3);
        assert_eq!(attempts(11), 3);
        assert_eq!(attempts(5), 5);
    }
}
