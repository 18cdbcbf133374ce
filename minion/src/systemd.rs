//! The minion's side of systemd's service protocol (`sd_notify(3)`), for the packaged
//! `Type=notify` unit with `WatchdogSec=`.
//!
//! - `READY=1` once the boot step is done and the main loop is about to run: a node whose boot
//!   step fails (no boot environment, a refused factory image) never counts as started.
//! - `WATCHDOG=1` from the main loop, every half of the interval systemd passes in
//!   `WATCHDOG_USEC` (the margin `sd_watchdog_enabled(3)` recommends). The pings come from the
//!   same `select!` that handles the controller's messages and the agent's timers, so a loop that
//!   hangs — a blocking call on the runtime, a deadlock — stops pinging and systemd kills and
//!   restarts the minion. A minion stuck during a trial boot is restarted too, and the boot step
//!   then falls back like after any unconfirmed trial.
//!
//! Outside systemd (meshsim, tests, a shell) `NOTIFY_SOCKET` and `WATCHDOG_USEC` are unset and
//! all of this is a no-op. Failed sends are logged, never fatal: the notification socket is
//! systemd's, and a lost ping at worst gets the minion restarted — what the watchdog is for.

use sd_notify::NotifyState;
use std::time::Duration;

/// Where the shell's main loop pings systemd. Created by [`Watchdog::ready`], which also reports
/// READY=1.
pub struct Watchdog {
    /// `None` when systemd asked for no watchdog (or is not there): [`Watchdog::tick`] then
    /// never completes.
    timer: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Report READY=1 (`status` goes to `systemctl status`) and arm the ping timer when
    /// `WATCHDOG_USEC` (and `WATCHDOG_PID`, if set) are meant for this process.
    pub fn ready(status: &str) -> Watchdog {
        send(&[NotifyState::Ready, NotifyState::Status(status)], "READY=1");
        let interval = watchdog_usec().and_then(ping_interval);
        if let Some(every) = interval {
            tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog: pinging");
        }
        let timer = interval.map(|every| {
            let mut t = tokio::time::interval(every);
            // A late tick (the loop was busy) pings once, not in a burst: one ping proves as much.
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Watchdog { timer }
    }

    /// Completes when the next ping is due; pending forever without a watchdog. Cancel-safe, so
    /// it can sit in the main loop's `select!`.
    pub async fn tick(&mut self) {
        match self.timer.as_mut() {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// WATCHDOG=1: the main loop is turning.
    pub fn ping(&self) {
        send(&[NotifyState::Watchdog], "WATCHDOG=1");
    }
}

/// Sleep `total` while still pinging the watchdog, for a deliberate wait inside the main loop
/// (after a reboot command, for the shutdown to stop us): parked on purpose is not hung, and a
/// watchdog restart there would only race the shutdown. Without a watchdog, a plain sleep.
pub async fn sleep_pinging(total: Duration) {
    let every = watchdog_usec().and_then(ping_interval);
    sleep_calling(total, every, || send(&[NotifyState::Watchdog], "WATCHDOG=1")).await;
}

/// Sleep `total`, calling `ping` every `every` (and once at the end); a plain sleep for `None`.
async fn sleep_calling(total: Duration, every: Option<Duration>, mut ping: impl FnMut()) {
    let Some(every) = every else {
        tokio::time::sleep(total).await;
        return;
    };
    let end = tokio::time::Instant::now() + total;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep_until((tokio::time::Instant::now() + every).min(end)).await;
        ping();
    }
}

/// Half the watchdog timeout, the ping period `sd_watchdog_enabled(3)` recommends; `None` for a
/// zero timeout (systemd's "off").
pub fn ping_interval(watchdog_usec: u64) -> Option<Duration> {
    (watchdog_usec > 0).then(|| Duration::from_micros(watchdog_usec / 2).max(Duration::from_millis(1)))
}

/// `WATCHDOG_USEC` when it is meant for this process. Like `sd_watchdog_enabled(3)`, a
/// `WATCHDOG_PID` naming another process (a child that inherited the environment) disables it,
/// and a missing `WATCHDOG_PID` does not.
fn watchdog_usec() -> Option<u64> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?.trim().parse::<u64>().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

fn send(states: &[NotifyState<'_>], what: &str) {
    // `false`: keep NOTIFY_SOCKET for the pings to come (and changing the environment of a running
    // multi-threaded process is a data race).
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd of {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deliberate_wait_keeps_pinging() {
        let mut pings = 0;
        let started = std::time::Instant::now();
        sleep_calling(Duration::from_millis(200), Some(Duration::from_millis(40)), || pings += 1).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Every 40 ms over 200 ms: 5 pings, fewer only if the machine stalled a whole period.
        assert!((3..=5).contains(&pings), "{pings} pings");

        let mut none = 0;
        sleep_calling(Duration::from_millis(50), None, || none += 1).await;
        assert_eq!(none, 0, "no watchdog, no ping");
    }

    #[test]
    fn pings_at_half_the_watchdog_timeout_and_never_for_zero() {
        assert_eq!(ping_interval(30_000_000), Some(Duration::from_secs(15)));
        assert_eq!(ping_interval(1), Some(Duration::from_millis(1)));
        assert_eq!(ping_interval(0), None);
    }
}
