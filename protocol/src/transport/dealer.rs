//! A DEALER on its own I/O thread. libzmq connects, reconnects with backoff after the controller
//! restarts or the path breaks, and closes a dead connection on missed heartbeats; the owner
//! learns of each (re)connection through [`DealerEvent::Connected`] and resends what the peer must
//! know (a full status report).

use super::monitor::{Monitor, MonitorEvent};
use super::wake::{self, WakeReader, Waker};
use super::{ClientSecurity, SocketLimits, TransportError};
use crate::codec::{decode, encode, DecodeError, Envelope};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Configuration of a [`Dealer`].
#[derive(Clone)]
pub struct DealerConfig {
    /// `tcp://host:port` of the ROUTER.
    pub endpoint: String,
    /// Routing identity: stable per node (its MAC), so that with the ROUTER's handover a
    /// reconnecting node takes over its own stale connection. Empty: libzmq picks one.
    pub identity: String,
    /// Sender app id, first frame of every message.
    pub app_id: String,
    pub limits: SocketLimits,
    pub security: ClientSecurity,
    /// Outgoing queue length; a full queue refuses new messages.
    pub queue: usize,
    /// libzmq's first reconnect delay and its ceiling (doubling in between).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// The libzmq context; `None` = the process's ([`super::context`]). A load generator with
    /// thousands of dealers spreads them over several contexts (libzmq caps sockets per context).
    pub context: Option<zmq::Context>,
}

impl std::fmt::Debug for DealerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerConfig")
            .field("endpoint", &self.endpoint)
            .field("identity", &self.identity)
            .field("app_id", &self.app_id)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl DealerConfig {
    pub fn new(
        endpoint: impl Into<String>,
        identity: impl Into<String>,
        app_id: impl Into<String>,
        security: ClientSecurity,
    ) -> Self {
        DealerConfig {
            endpoint: endpoint.into(),
            identity: identity.into(),
            app_id: app_id.into(),
            limits: SocketLimits::default(),
            security,
            queue: 256,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            context: None,
        }
    }
}

/// What the dealer reports to its owner besides messages.
#[derive(Debug)]
// Events are moved once, from the socket thread to the owner; boxing the common case would cost an
// allocation per message to save a few hundred bytes on the rare ones.
#[allow(clippy::large_enum_variant)]
pub enum DealerEvent {
    /// A decoded envelope from the ROUTER.
    Message(Envelope),
    /// A frame that did not decode (logged already).
    BadFrame(DecodeError),
    /// The handshake with the peer completed (again): resend whatever it must know.
    Connected,
    /// The connection was lost or refused; libzmq is reconnecting with backoff.
    Disconnected(String),
}

/// A DEALER that reconnects by itself. Cheap to clone; the socket's thread ends when every clone
/// is dropped.
#[derive(Clone)]
pub struct Dealer {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping: closed first so the woken thread sees the channel gone.
    cmd: Option<std_mpsc::SyncSender<Vec<u8>>>,
    waker: Waker,
    endpoint: String,
    next_id: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.cmd.take());
        self.waker.wake();
    }
}

impl Dealer {
    /// Create the socket, connect (in the background) and start its thread. Fails only when
    /// libzmq refuses the set-up (no CURVE support, too many sockets).
    pub fn spawn(cfg: DealerConfig) -> Result<(Dealer, mpsc::Receiver<DealerEvent>), TransportError> {
        let connect_err = |reason: String| TransportError::Connect { endpoint: cfg.endpoint.clone(), reason };
        let ctx = cfg.context.clone().unwrap_or_else(super::context);
        let sock = ctx.socket(zmq::DEALER)?;
        cfg.limits.apply(&sock)?;
        if !cfg.identity.is_empty() {
            sock.set_identity(cfg.identity.as_bytes())?;
        }
        // Queue nothing for a connection that is not up: the owner resends state on `Connected`,
        // and a backlog would reach the controller stale.
        sock.set_immediate(true)?;
        sock.set_reconnect_ivl(super::ms(cfg.reconnect_min))?;
        sock.set_reconnect_ivl_max(super::ms(cfg.reconnect_max))?;
        if matches!(cfg.security, ClientSecurity::Curve { .. }) && !super::has_curve() {
            return Err(connect_err("this libzmq was built without CURVE (install libzmq3-dev)".into()));
        }
        cfg.security.apply(&sock)?;
        let monitor = Monitor::attach(&ctx, &sock)?;
        sock.connect(&cfg.endpoint).map_err(|e| connect_err(e.to_string()))?;
        let (cmd_tx, cmd_rx) = std_mpsc::sync_channel(cfg.queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let (waker, wake_rx) = wake::pair().map_err(|e| connect_err(e.to_string()))?;
        let io = IoThread {
            sock,
            monitor,
            cmd: cmd_rx,
            events: ev_tx,
            wake: wake_rx,
            max: cfg.limits.max_msg_bytes,
            endpoint: cfg.endpoint.clone(),
            app_id: cfg.app_id.clone().into_bytes(),
        };
        std::thread::Builder::new()
            .name("zmq-dealer".into())
            .spawn(move || io.run())
            .map_err(|e| connect_err(e.to_string()))?;
        let inner = Inner { cmd: Some(cmd_tx), waker, endpoint: cfg.endpoint, next_id: AtomicU64::new(1) };
        Ok((Dealer { inner: Arc::new(inner) }, ev_rx))
    }

    /// A fresh request id for envelopes sent through this dealer.
    pub fn next_request_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue one envelope. Fails at once when the queue is full or the thread has ended; a message
    /// sent while no connection is up is dropped by the thread (the owner resends on `Connected`).
    pub fn send(&self, env: &Envelope) -> Result<(), TransportError> {
        let bytes = encode(env)?;
        let cmd = self.inner.cmd.as_ref().ok_or(TransportError::Closed)?;
        cmd.try_send(bytes).map_err(|e| match e {
            std_mpsc::TrySendError::Full(_) => TransportError::QueueFull(self.inner.endpoint.clone()),
            std_mpsc::TrySendError::Disconnected(_) => TransportError::Closed,
        })?;
        self.inner.waker.wake();
        Ok(())
    }

    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }
}

struct IoThread {
    sock: zmq::Socket,
    monitor: Monitor,
    cmd: std_mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<DealerEvent>,
    wake: WakeReader,
    max: usize,
    endpoint: String,
    app_id: Vec<u8>,
}

impl IoThread {
    fn run(mut self) {
        loop {
            let mut items = [
                self.sock.as_poll_item(zmq::POLLIN),
                self.monitor.socket().as_poll_item(zmq::POLLIN),
                zmq::PollItem::from_fd(self.wake.fd(), zmq::POLLIN),
            ];
            if let Err(e) = zmq::poll(&mut items, -1) {
                if e == zmq::Error::ETERM {
                    return;
                }
                continue;
            }
            let (sock_ready, mon_ready, wake_ready) =
                (items[0].is_readable(), items[1].is_readable(), items[2].is_readable());
            if wake_ready {
                self.wake.drain();
            }
            loop {
                match self.cmd.try_recv() {
                    Ok(bytes) => {
                        let parts: [&[u8]; 2] = [&self.app_id, &bytes];
                        if let Err(e) = self.sock.send_multipart(parts, zmq::DONTWAIT) {
                            tracing::debug!(endpoint = %self.endpoint, error = %e, "not connected; message dropped");
                        }
                    }
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            }
            if mon_ready {
                while let Some(ev) = self.monitor.next() {
                    let out = match ev {
                        MonitorEvent::Connected => DealerEvent::Connected,
                        MonitorEvent::Disconnected => DealerEvent::Disconnected("connection closed".into()),
                        MonitorEvent::AuthRefused(code) => DealerEvent::Disconnected(format!(
                            "the controller refused this key (ZAP status {code}): is it enrolled?"
                        )),
                        MonitorEvent::HandshakeFailed(why) => DealerEvent::Disconnected(why.into()),
                        MonitorEvent::Other => continue,
                    };
                    if self.events.blocking_send(out).is_err() {
                        return;
                    }
                }
            }
            if sock_ready {
                while let Ok(frames) = self.sock.recv_multipart(zmq::DONTWAIT) {
                    // [app-id?, envelope]: the envelope is always the last frame.
                    let Some(last) = frames.last() else { continue };
                    let ev = match decode(last, self.max) {
                        Ok(env) => DealerEvent::Message(env),
                        Err(e) => {
                            tracing::warn!(endpoint = %self.endpoint, error = %e, "refused frame from controller");
                            DealerEvent::BadFrame(e)
                        }
                    };
                    if self.events.blocking_send(ev).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
