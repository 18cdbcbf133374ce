//! The controller's side of systemd's service protocol (`sd_notify(3)`), for the packaged
//! `Type=notify` unit: `READY=1` once every socket is bound, so units ordered after it (and
//! `systemctl start`, which waits for it) never see a controller that refuses connections;
//! `STOPPING=1` when a signal starts the shutdown.
//!
//! Outside systemd `NOTIFY_SOCKET` is unset and every call does nothing (meshsim, the tests, a
//! shell). A failed send is logged and otherwise ignored: the notification socket is systemd's
//! business, and the worst outcome — systemd never seeing READY=1 — is its start timeout, which
//! the journal then explains.

use sd_notify::NotifyState;

/// Every socket is bound; `status` is shown by `systemctl status`.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)], "READY=1");
}

/// Shutting down (SIGTERM or SIGINT): systemd shows the unit as deactivating at once.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(states: &[NotifyState<'_>], what: &str) {
    // `false`: keep NOTIFY_SOCKET, later notifications need it (and changing the environment of a
    // running multi-threaded process is a data race).
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd of {what}");
    }
}
