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
    /// Keep using the seeder over a new connection: the current one is about to reach the age at
    /// which librqbit sends it our peer list (PEX, 10 s after connecting); the seeder would then
    /// connect out to those peers, and they could not tell it from a minion and drop it.
    Renew,
}

/// What the downloader reads from its swarm for [`SeederGate::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmFigures {
    /// Verified bytes.
    pub have: u64,
    pub total: u64,
    /// Bytes received from all peers so far, pieces not yet verified included (a node whose CPU
    /// is busy receives before it verifies; that is not hunger).
    pub received: u64,
    /// Bytes fetched from the seeder over the current connection to it.
    pub from_seeder: u64,
    /// The batch size when the controller gave it, else this node and its live peers (the seeder
    /// not counted).
    pub swarm_size: u32,
    /// One piece: the least a use of the seeder fetches.
    pub min_share: u64,
    /// Pieces of this node's slice (its place in the batch, `metainfo::slice`) it still misses;
    /// `None` when the controller gave it no place.
    pub slice_left: Option<usize>,
}

/// The controller's seeder as a last resort (it is capped, and whatever it sends twice is
/// wasted). The first use fetches this node's slice: every piece of it when the controller gave
/// the node its place in the batch (the slices together cover the image, so the seeder sends
/// each piece about once), else the missing bytes divided by the swarm's size. Then the node
/// drops the seeder and trades with peers; when the peers have had nothing new for `hungry`, it
/// uses the seeder again for a share of what is still missing. A node alone with the seeder has
/// the whole image as its share.
#[derive(Debug, Clone)]
pub struct SeederGate {
    hungry: Duration,
    renew_after: Duration,
    using: bool,
    /// When the current connection to the seeder began.
    connected_at: Instant,
    /// Bytes fetched from the seeder in the current use over earlier connections (renewed).
    carried: u64,
    /// Uses of the seeder that ended; the slice rule holds for the first use only.
    ended_uses: u32,
    /// Bytes missing when the current use of the seeder began.
    missing_at_use: u64,
    best: u64,
    best_received: u64,
    since_progress: Instant,
}

impl SeederGate {
    /// Starts using the seeder, with `missing` bytes to fetch. Uses last longer than
    /// `renew_after` go on over a new connection.
    pub fn new(hungry: Duration, renew_after: Duration, missing: u64, now: Instant) -> Self {
        SeederGate {
            hungry,
            renew_after,
            using: true,
            connected_at: now,
            carried: 0,
            ended_uses: 0,
            missing_at_use: missing,
            best: 0,
            best_received: 0,
            since_progress: now,
        }
    }

    /// The torrent was added again (to drop or use the seeder) or paused and unpaused (to renew)
    /// and is live now: librqbit checked the file and connects anew, which takes seconds on a
    /// busy machine and is not hunger.
    pub fn restarted(&mut self, now: Instant) {
        self.since_progress = now;
        self.connected_at = now;
    }

    pub fn using(&self) -> bool {
        self.using
    }

    /// Whether [`SwarmFigures::slice_left`] is read at the next [`observe`](Self::observe): only
    /// during the first use of the seeder (see `use_done`). Otherwise the caller may pass `None`
    /// and skip reading the bitfield.
    pub fn needs_slice_left(&self) -> bool {
        self.using && self.ended_uses == 0
    }

    /// The bytes this node may take from the seeder in a use without a slice: its share of what
    /// was missing, at least `min_share` (one piece, so each use makes progress).
    pub fn share(&self, swarm_size: u32, min_share: u64) -> u64 {
        (self.missing_at_use / u64::from(swarm_size.max(1))).max(min_share)
    }

    /// Whether the current use has fetched what it should.
    fn use_done(&self, f: &SwarmFigures) -> bool {
        let share = self.share(f.swarm_size, f.min_share);
        let fetched = self.carried + f.from_seeder;
        match f.slice_left.filter(|_| self.ended_uses == 0) {
            // Pieces of the slice may come from peers too; a seeder sending far more than a share
            // while the slice stays incomplete is not what this rule is for.
            Some(left) => left == 0 || fetched >= share.saturating_mul(2),
            None => fetched >= share,
        }
    }

    /// Feed the figures; says what to do with the connection to the seeder.
    pub fn observe(&mut self, f: &SwarmFigures, now: Instant) -> SeederMove {
        if f.have > self.best || f.received > self.best_received {
            self.best = self.best.max(f.have);
            self.best_received = self.best_received.max(f.received);
            self.since_progress = now;
        }
        if f.have >= f.total {
            return SeederMove::Keep;
        }
        if self.using {
            if f.swarm_size > 1 && self.use_done(f) {
                self.using = false;
                self.ended_uses += 1;
                self.carried = 0;
                self.since_progress = now;
                return SeederMove::Drop;
            }
            if f.swarm_size > 1 && now.saturating_duration_since(self.connected_at) >= self.renew_after {
                self.carried += f.from_seeder;
                self.connected_at = now;
                return SeederMove::Renew;
            }
        } else if f.from_seeder >= f.min_share && f.swarm_size > 1 {
            // A peer passed the seeder's address on (PEX) and librqbit connected to it, or the
            // seeder learnt ours that way and connected to us.
            self.since_progress = now;
            return SeederMove::Drop;
        } else if now.saturating_duration_since(self.since_progress) >= self.hungry {
            self.using = true;
            self.missing_at_use = f.total - f.have;
            self.carried = 0;
            self.since_progress = now;
            self.connected_at = now;
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

/// Free space kept beyond the image on the download filesystem: the torrent metadata cache, the
/// state files, the boot environment and hook logs may share it, and a disk filled to the last
/// block makes those writes fail (an upgrade state that cannot be persisted, a trial that cannot
/// be armed).
pub const FREE_SPACE_MARGIN: u64 = 16 << 20;

/// Bytes the download filesystem must have free before a download of `image_size` bytes starts,
/// `on_disk` of which a previous run already wrote.
pub fn space_needed(image_size: u64, on_disk: u64) -> u64 {
    image_size.saturating_sub(on_disk).saturating_add(FREE_SPACE_MARGIN)
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

    /// Figures with 1000 bytes in all, pieces of 10 bytes, a swarm of 10 and no slice.
    fn figs(have: u64, from_seeder: u64) -> SwarmFigures {
        SwarmFigures {
            have,
            total: 1000,
            received: have,
            from_seeder,
            swarm_size: 10,
            min_share: 10,
            slice_left: None,
        }
    }

    #[test]
    fn seeder_is_dropped_after_the_share_and_used_again_when_hungry() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        assert!(g.using());
        assert_eq!(g.observe(&figs(50, 90), s(100)), SeederMove::Keep, "share is 1000 / 10");
        assert_eq!(g.observe(&figs(120, 100), s(200)), SeederMove::Drop);
        assert!(!g.using());
        assert_eq!(g.observe(&figs(500, 0), s(1500)), SeederMove::Keep, "peers deliver");
        assert_eq!(g.observe(&figs(500, 10), s(1600)), SeederMove::Drop, "seeder learnt by PEX");
        assert_eq!(g.observe(&figs(500, 0), s(3500)), SeederMove::Keep);
        assert_eq!(g.observe(&figs(500, 0), s(3600)), SeederMove::Use, "2 s without progress");
        assert_eq!(g.share(10, 10), 50, "a share of the 500 still missing");
        assert_eq!(g.share(100, 10), 10, "never less than one piece");
        assert_eq!(g.observe(&figs(1000, 0), s(9000)), SeederMove::Keep, "done");
    }

    #[test]
    fn receiving_or_restarting_is_not_hunger() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        assert_eq!(g.observe(&figs(100, 100), s(100)), SeederMove::Drop);
        let busy = SwarmFigures { received: 150, ..figs(100, 0) };
        assert_eq!(g.observe(&busy, s(1900)), SeederMove::Keep, "chunks arrive, not verified yet");
        assert_eq!(g.observe(&busy, s(3800)), SeederMove::Keep);
        g.restarted(s(3850));
        assert_eq!(g.observe(&busy, s(5800)), SeederMove::Keep, "2 s count from the restart");
        assert_eq!(g.observe(&busy, s(5850)), SeederMove::Use);
    }

    #[test]
    fn a_long_use_goes_on_over_a_new_connection_and_counts_all_of_it() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        assert_eq!(g.observe(&figs(60, 60), s(7900)), SeederMove::Keep);
        assert_eq!(g.observe(&figs(70, 70), s(8000)), SeederMove::Renew, "8 s on one connection");
        assert!(g.using());
        g.restarted(s(8500));
        assert_eq!(g.observe(&figs(90, 20), s(9000)), SeederMove::Keep, "70 + 20 < share 100");
        assert_eq!(g.observe(&figs(100, 30), s(9200)), SeederMove::Drop, "70 + 30 = share");
        assert_eq!(g.observe(&figs(100, 0), s(11200)), SeederMove::Use);
        assert_eq!(
            g.observe(&figs(100, 0), s(19100)),
            SeederMove::Keep,
            "8 s from the use, not from the start"
        );
        assert_eq!(g.observe(&figs(100, 0), s(19200)), SeederMove::Renew);
        let alone = SwarmFigures { swarm_size: 1, ..figs(100, 0) };
        assert_eq!(g.observe(&alone, s(40000)), SeederMove::Keep, "alone, PEX has no one to tell of");
    }

    #[test]
    fn a_node_alone_keeps_the_seeder() {
        let t0 = Instant::now();
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        let alone = SwarmFigures { swarm_size: 1, slice_left: Some(0), ..figs(900, 900) };
        assert_eq!(g.observe(&alone, t0), SeederMove::Keep);
        assert!(g.using());
    }

    #[test]
    fn with_a_slice_the_first_use_ends_when_the_slice_is_complete() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        let sliced =
            |have, from_seeder, left| SwarmFigures { slice_left: Some(left), ..figs(have, from_seeder) };
        assert!(g.needs_slice_left(), "the first use reads the slice");
        assert_eq!(
            g.observe(&sliced(300, 150, 2), s(100)),
            SeederMove::Keep,
            "more than a share, slice incomplete"
        );
        assert_eq!(g.observe(&sliced(320, 170, 0), s(200)), SeederMove::Drop, "slice complete");
        assert!(!g.needs_slice_left(), "not while the seeder is dropped");
        assert_eq!(g.observe(&sliced(320, 0, 0), s(2300)), SeederMove::Use, "hungry");
        assert!(!g.needs_slice_left(), "nor in later uses");
        assert_eq!(
            g.observe(&sliced(330, 10, 0), s(2400)),
            SeederMove::Keep,
            "later uses take a share, not the slice"
        );
        assert_eq!(g.observe(&sliced(400, 68, 0), s(2500)), SeederMove::Drop, "680 / 10");
        let mut g = SeederGate::new(Duration::from_secs(2), Duration::from_secs(8), 1000, t0);
        assert_eq!(g.observe(&sliced(300, 200, 5), s(100)), SeederMove::Drop, "twice the share: stop anyway");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let got: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, vec![0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(attempts(0), 3);
        assert_eq!(attempts(11), 3);
        assert_eq!(attempts(5), 5);
    }

    #[test]
    fn space_needed_counts_what_is_left_to_fetch_plus_the_margin() {
        assert_eq!(space_needed(100 << 20, 0), (100 << 20) + FREE_SPACE_MARGIN);
        assert_eq!(space_needed(100 << 20, 60 << 20), (40 << 20) + FREE_SPACE_MARGIN);
        assert_eq!(space_needed(10, 1 << 30), FREE_SPACE_MARGIN, "a larger stale file needs no more");
        assert_eq!(space_needed(u64::MAX, 0), u64::MAX, "no overflow on a hostile size");
    }
}
