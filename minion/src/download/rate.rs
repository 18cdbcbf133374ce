//! Receive rate of the HTTP fallback, for seed 003's `upgrade.bt.downloadBps` when the swarm is
//! not the source.
//!
//! librqbit estimates its own rates; an HTTP body has no such figure, so the rate is the bytes
//! received over a sliding window. A window of a few seconds follows a link's real throughput
//! without jumping with every chunk (a chunk arrives every few milliseconds at full speed, and
//! not at all while a Range request waits for its first byte). Time is passed in: the shell
//! reads the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks: the controller reads reports every few seconds (`5 s` status
/// interval), so one report's rate covers about one report's bytes.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The shortest time a rate is taken over: a rate limiter lets a burst through at the start of
/// a transfer, and 1.2 MB in the first 200 ms read as 6 MB/s under a 1 MiB/s limit.
const MIN_SPAN: Duration = Duration::from_secs(1);

/// At most this many samples are kept; older ones are merged away, so a fast link that reports
/// thousands of chunks a second costs a bounded buffer.
const MAX_SAMPLES: usize = 64;

/// Bytes per second over the last [`WINDOW`], from a running byte total.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    /// (when, cumulative bytes at that time), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter { window, samples: VecDeque::new() }
    }

    /// Record that `total` bytes have arrived so far at `now` and return the rate in bytes per
    /// second over the window. A total that goes down (a new transfer) starts the meter again.
    /// `now` earlier than the last sample is taken as the last sample's time.
    pub fn observe(&mut self, total: u64, now: Instant) -> u64 {
        let now = self.samples.back().map_or(now, |(t, _)| now.max(*t));
        if self.samples.back().is_some_and(|(_, b)| total < *b) {
            self.samples.clear();
        }
        // Keep one sample at or before the window's start: it is the baseline of the rate.
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
        if self.samples.len() >= MAX_SAMPLES {
            // Drop the second-oldest: the baseline stays, the spacing of the rest grows.
            self.samples.remove(1);
        }
        self.samples.push_back((now, total));
        let (t0, b0) = self.samples[0];
        let span = now.duration_since(t0);
        if span.is_zero() {
            return 0;
        }
        ((total - b0) as f64 / span.max(MIN_SPAN).as_secs_f64()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_as_its_rate() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(WINDOW);
        let mut rate = 0;
        // 1 MB every 100 ms for 10 s: 10 MB/s.
        for i in 0..=100u64 {
            rate = m.observe(i * 1_000_000, t0 + Duration::from_millis(i * 100));
        }
        assert!((9_900_000..=10_100_000).contains(&rate), "{rate}");
    }

    #[test]
    fn a_stall_brings_the_rate_down_within_the_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(WINDOW);
        for i in 0..=50u64 {
            m.observe(i * 1_000_000, t0 + Duration::from_millis(i * 100));
        }
        // Nothing more for 6 s: the window holds no new byte.
        let rate = m.observe(50_000_000, t0 + Duration::from_secs(11));
        assert_eq!(rate, 0);
    }

    #[test]
    fn a_new_transfer_starts_the_meter_again() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(WINDOW);
        m.observe(0, t0);
        m.observe(80_000_000, t0 + Duration::from_secs(1));
        // The total went down: a new transfer. Its first sample has no rate yet; the next does.
        assert_eq!(m.observe(0, t0 + Duration::from_secs(2)), 0);
        let rate = m.observe(2_000_000, t0 + Duration::from_secs(3));
        assert_eq!(rate, 2_000_000);
    }

    #[test]
    fn a_burst_at_the_start_does_not_read_as_a_rate_above_what_arrived_in_a_second() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(WINDOW);
        m.observe(0, t0);
        assert_eq!(m.observe(1_200_000, t0 + Duration::from_millis(200)), 1_200_000);
    }

    #[test]
    fn thousands_of_chunks_keep_a_bounded_buffer() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(WINDOW);
        let mut rate = 0;
        for i in 0..10_000u64 {
            rate = m.observe(i * 1_000, t0 + Duration::from_micros(i * 400));
        }
        assert!(m.samples.len() <= MAX_SAMPLES);
        // 1 000 bytes every 400 µs: 2.5 MB/s.
        assert!((2_400_000..=2_600_000).contains(&rate), "{rate}");
    }
}
