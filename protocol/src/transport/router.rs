//! A bound ROUTER on its own I/O thread: frames in as [`RouterEvent`]s on a tokio channel, sends
//! out through a bounded command queue. Nothing on the async side ever waits on a peer.

use super::curve::CurveKeyPair;
use super::wake::{self, WakeReader, Waker};
use super::zap::{self, Authorizer, ZapGuard};
use super::{SocketLimits, TransportError};
use crate::codec::{decode, encode, DecodeError, Envelope};
use bytes::Bytes;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How a [`Router`] is secured.
#[derive(Clone)]
pub enum ServerSecurity {
    /// CurveZMQ server with our key pair; `auth` decides on each client key in ZAP `domain`.
    Curve { keys: CurveKeyPair, domain: String, auth: Arc<dyn Authorizer> },
    /// Plain text; every frame's user id is `None`. Only behind an explicit `insecure = true`.
    Insecure,
}

impl std::fmt::Debug for ServerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerSecurity::Curve { keys, domain, .. } => {
                write!(f, "Curve {{ public: {}, domain: {domain} }}", keys.public())
            }
            ServerSecurity::Insecure => f.write_str("Insecure"),
        }
    }
}

/// Configuration of a [`Router`].
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// `tcp://host:port`; port 0 picks one (see [`Router::endpoint`]).
    pub endpoint: String,
    pub limits: SocketLimits,
    pub security: ServerSecurity,
    /// Commands (sends) queued for the I/O thread before [`Router::send`] fails. Default 65 536.
    pub send_queue: usize,
    /// Frames queued for the owner before the I/O thread stops reading (libzmq then queues up to
    /// `recv_hwm` per peer and TCP pushes back). Default 8192.
    pub recv_queue: usize,
    /// `ZMQ_AFFINITY`: the libzmq I/O threads (bit i = thread i of [`super::context`]) that serve
    /// this socket's connections; 0 = any. A controller gives its minion and app sockets
    /// different ones.
    pub affinity: u64,
}

impl RouterConfig {
    pub fn new(endpoint: impl Into<String>, security: ServerSecurity) -> Self {
        RouterConfig {
            endpoint: endpoint.into(),
            limits: SocketLimits::server(),
            security,
            send_queue: 65_536,
            recv_queue: 8192,
            affinity: 0,
        }
    }
}

/// A frame received by a [`Router`].
#[derive(Debug)]
pub struct Incoming {
    /// Routing identity of the sender's connection (a minion's MAC, or a random one libzmq chose).
    pub identity: Bytes,
    /// The sender's app id frame (empty if absent).
    pub app_id: Bytes,
    /// Who the ZAP handler said this connection's key belongs to (node or operator name); `None`
    /// only on an insecure socket.
    pub user_id: Option<String>,
    /// The peer's IP address, for logs and the journal of refusals.
    pub peer_address: Option<String>,
    /// The decoded envelope, or why it was refused.
    pub frame: Result<Envelope, DecodeError>,
}

impl Incoming {
    pub fn identity_str(&self) -> String {
        String::from_utf8_lossy(&self.identity).into_owned()
    }
}

/// A message the I/O thread could not hand to libzmq, given back to the owner.
#[derive(Debug)]
pub struct Undeliverable {
    pub identity: Bytes,
    pub envelope: Envelope,
    /// `no such peer` (gone or never connected) or `peer not reading` (its queue is full).
    pub reason: &'static str,
}

/// What a [`Router`]'s receiver yields.
#[derive(Debug)]
pub enum RouterEvent {
    Frame(Incoming),
    Undeliverable(Undeliverable),
}

enum Command {
    Send { identity: Bytes, app_id: &'static [u8], envelope: Envelope },
}

/// A bound ROUTER. Dropping it stops its thread and closes the socket.
pub struct Router {
    /// `None` only while dropping: closed first so the woken thread sees the channel gone.
    cmd: Option<std_mpsc::SyncSender<Command>>,
    waker: Waker,
    endpoint: String,
    _zap: Option<ZapGuard>,
}

impl Drop for Router {
    fn drop(&mut self) {
        // The thread sees the command channel closed on this wake-up.
        drop(self.cmd.take());
        self.waker.wake();
    }
}

impl Router {
    /// Bind and start the I/O thread.
    pub fn bind(cfg: RouterConfig) -> Result<(Router, mpsc::Receiver<RouterEvent>), TransportError> {
        let bind_err = |reason: String| TransportError::Bind { endpoint: cfg.endpoint.clone(), reason };
        let ctx = super::context();
        let sock = ctx.socket(zmq::ROUTER)?;
        cfg.limits.apply(&sock)?;
        sock.set_affinity(cfg.affinity)?;
        sock.set_router_mandatory(true)?;
        sock.set_router_handover(true)?;
        let zap_guard = match &cfg.security {
            ServerSecurity::Curve { keys, domain, auth } => {
                if !super::has_curve() {
                    return Err(bind_err("this libzmq was built without CURVE (install libzmq3-dev)".into()));
                }
                let guard = zap::register(domain, auth.clone())?;
                sock.set_zap_domain(domain)?;
                sock.set_curve_server(true)?;
                sock.set_curve_secretkey(keys.secret_bytes())?;
                Some(guard)
            }
            ServerSecurity::Insecure => None,
        };
        sock.bind(&cfg.endpoint).map_err(|e| bind_err(e.to_string()))?;
        let endpoint = match sock.get_last_endpoint() {
            Ok(Ok(ep)) => ep,
            _ => cfg.endpoint.clone(),
        };
        let (cmd_tx, cmd_rx) = std_mpsc::sync_channel(cfg.send_queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(cfg.recv_queue.max(1));
        let (waker, wake_rx) = wake::pair().map_err(|e| bind_err(e.to_string()))?;
        let io = IoThread {
            sock,
            cmd: cmd_rx,
            events: ev_tx,
            wake: wake_rx,
            max: cfg.limits.max_msg_bytes,
            held: None,
            endpoint: endpoint.clone(),
        };
        std::thread::Builder::new()
            .name(format!("zmq-router {endpoint}"))
            .spawn(move || io.run())
            .map_err(|e| bind_err(e.to_string()))?;
        Ok((Router { cmd: Some(cmd_tx), waker, endpoint, _zap: zap_guard }, ev_rx))
    }

    /// The endpoint actually bound (port resolved).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queue an envelope for one peer. Never waits: fails at once when the queue to the I/O thread
    /// is full; a peer that is gone or not reading comes back as [`RouterEvent::Undeliverable`].
    pub fn send(
        &self,
        identity: &Bytes,
        app_id: &'static [u8],
        envelope: Envelope,
    ) -> Result<(), TransportError> {
        let cmd = self.cmd.as_ref().ok_or(TransportError::Closed)?;
        cmd.try_send(Command::Send { identity: identity.clone(), app_id, envelope }).map_err(
            |e| match e {
                std_mpsc::TrySendError::Full(_) => TransportError::QueueFull(self.endpoint.clone()),
                std_mpsc::TrySendError::Disconnected(_) => TransportError::Closed,
            },
        )?;
        self.waker.wake();
        Ok(())
    }
}

struct IoThread {
    sock: zmq::Socket,
    cmd: std_mpsc::Receiver<Command>,
    events: mpsc::Sender<RouterEvent>,
    wake: WakeReader,
    max: usize,
    /// An event the owner had no room for yet (its queue was full): delivered before reading more.
    held: Option<RouterEvent>,
    endpoint: String,
}

/// Frames read per turn before sends get their turn again.
const RECV_BUDGET: usize = 256;

impl IoThread {
    fn run(mut self) {
        loop {
            // With an event held back the owner is behind: poll briefly so we retry it soon,
            // without reading more from the socket.
            let timeout = if self.held.is_some() { 5 } else { -1 };
            let sock_events = if self.held.is_some() { zmq::PollEvents::empty() } else { zmq::POLLIN };
            let mut items =
                [self.sock.as_poll_item(sock_events), zmq::PollItem::from_fd(self.wake.fd(), zmq::POLLIN)];
            if let Err(e) = zmq::poll(&mut items, timeout) {
                if e == zmq::Error::ETERM {
                    return;
                }
                continue;
            }
            if items[1].is_readable() {
                self.wake.drain();
            }
            if !self.send_queued() {
                return;
            }
            if !self.deliver_held() {
                continue;
            }
            for _ in 0..RECV_BUDGET {
                let Some(ev) = self.recv_one() else { break };
                match self.events.try_send(ev) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(ev)) => {
                        self.held = Some(ev);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
    }

    /// Hand every queued command to libzmq. `false` when the owner has dropped the router.
    fn send_queued(&mut self) -> bool {
        loop {
            match self.cmd.try_recv() {
                Ok(Command::Send { identity, app_id, envelope }) => self.send(identity, app_id, envelope),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn send(&mut self, identity: Bytes, app_id: &'static [u8], envelope: Envelope) {
        let bytes = match encode(&envelope) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a reply (bug)");
                return;
            }
        };
        let parts: [&[u8]; 3] = [&identity, app_id, &bytes];
        let reason = match self.sock.send_multipart(parts, zmq::DONTWAIT) {
            Ok(()) => return,
            Err(zmq::Error::EHOSTUNREACH) => "no such peer",
            Err(zmq::Error::EAGAIN) => "peer not reading",
            Err(e) => {
                tracing::warn!(endpoint = %self.endpoint, error = %e, "send failed");
                "send failed"
            }
        };
        let ev = RouterEvent::Undeliverable(Undeliverable { identity, envelope, reason });
        // Best effort: if the owner is this far behind, the failure is logged instead.
        if let Err(e) = self.events.try_send(ev) {
            if let RouterEvent::Undeliverable(u) = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            } {
                tracing::warn!(peer = %String::from_utf8_lossy(&u.identity), reason = u.reason, "message dropped");
            }
        }
    }

    /// `false` while an event is still held back.
    fn deliver_held(&mut self) -> bool {
        let Some(ev) = self.held.take() else { return true };
        match self.events.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev)) => {
                self.held = Some(ev);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// One whole message from the socket, if one is ready.
    fn recv_one(&mut self) -> Option<RouterEvent> {
        let mut parts: Vec<zmq::Message> = Vec::with_capacity(3);
        loop {
            let mut msg = zmq::Message::new();
            match self.sock.recv(&mut msg, zmq::DONTWAIT) {
                Ok(()) => {}
                Err(_) if parts.is_empty() => return None,
                // The rest of a multipart message is always there once its first part is.
                Err(_) => break,
            }
            let more = msg.get_more();
            // At most identity, app id, envelope: more parts are dropped (still received, since
            // libzmq delivers a message whole) and the frame is refused below.
            if parts.len() < 4 {
                parts.push(msg);
            }
            if !more {
                break;
            }
        }
        // Connection metadata rides on the parts that came from the peer (not on the identity
        // frame the ROUTER adds).
        let user_id =
            parts.last_mut().and_then(|m| m.gets("User-Id").map(str::to_owned)).filter(|u| !u.is_empty());
        let peer_address = parts.last_mut().and_then(|m| m.gets("Peer-Address").map(str::to_owned));
        let identity = Bytes::copy_from_slice(&parts[0]);
        let (app_id, frame) = match &parts[1..] {
            [app, env] => (Bytes::copy_from_slice(app), decode(env, self.max)),
            [env] => (Bytes::new(), decode(env, self.max)),
            rest => (
                Bytes::new(),
                Err(DecodeError::Malformed(format!(
                    "expected [app-id, envelope], got {} or more frames",
                    rest.len()
                ))),
            ),
        };
        if let Err(e) = &frame {
            tracing::warn!(peer = %String::from_utf8_lossy(&identity), user = ?user_id, error = %e, "refused frame");
        }
        Some(RouterEvent::Frame(Incoming { identity, app_id, user_id, peer_address, frame }))
    }
}
