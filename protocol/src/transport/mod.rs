//! ZeroMQ shells shared by the controller, the minion and the CLI (feature `transport`), on libzmq
//! (the reference implementation, through the `zmq` crate, linked against the system's libzmq
//! built with libsodium so CurveZMQ works).
//!
//! What libzmq does for us, and how each socket is set up ([`SocketLimits`]):
//! - **Bounded input.** `ZMQ_MAXMSGSIZE`: a peer that announces a frame larger than the limit is
//!   disconnected before one byte of it is allocated (the `zeromq` crate reserved whatever a
//!   frame header declared, so 74 bytes could abort the controller). `ZMQ_HANDSHAKE_IVL` drops a
//!   peer that never finishes its greeting.
//! - **Liveness.** Each client PINGs (ZMTP heartbeats, `HEARTBEAT_IVL`/`TIMEOUT`) and closes a
//!   dead connection itself, then reconnects with backoff (`RECONNECT_IVL`/`_MAX`). A server
//!   ([`SocketLimits::server`]) answers PINGs but arms no heartbeat timer of its own, and clients
//!   send no TTL: libzmq 4.3 cancels a timer by walking its whole timer list, and one timer per
//!   connection re-armed on every frame made the controller's I/O thread quadratic in the number
//!   of nodes (measured: saturated at ≈ 4 600 of 10 000 nodes, `bench/RESULTS.md`). The server
//!   finds dead connections with TCP keepalive, and a node that comes back takes over its routing
//!   id (`ROUTER_HANDOVER`).
//! - **Takeover.** A ROUTER sets `ROUTER_HANDOVER`: a node that reconnects with its routing id takes
//!   it over from its own stale connection.
//! - **Bounded output.** `SNDHWM` per peer, every send `DONTWAIT`, and `ROUTER_MANDATORY`: a send to
//!   a peer that is gone or not reading fails at once and is reported as
//!   [`RouterEvent::Undeliverable`]; nothing ever waits on a peer.
//! - **Both address families.** `ZMQ_IPV6` on every socket: `tcp://[fd00::1]:7007`, names with
//!   only AAAA records and dual-stack `tcp://*:7007` binds all work; IPv4 keeps working.
//! - **Authentication and encryption.** CurveZMQ ([`curve`]); the server side asks a ZAP handler
//!   ([`zap`], RFC 27) which client keys it admits, and every frame then carries the user id the
//!   handler gave that key, so the controller knows which node or operator sent it.
//!
//! libzmq sockets are not thread-safe, and their calls block: each socket lives on a dedicated I/O
//! thread ([`router`], [`dealer`]) that the async side talks to through channels and a wake-up
//! pipe, so no socket call ever runs on (or blocks) the tokio runtime.
//!
//! Frames: a DEALER sends `[app-id, envelope]`; the ROUTER receives `[identity, app-id, envelope]`.
//! A frame that fails to decode is delivered to the owner as an error (with the peer identity) so
//! it can be logged and answered; it never stops a loop.

pub mod curve;
mod dealer;
mod monitor;
mod request;
mod router;
mod wake;
pub mod zap;

pub use curve::{CurveKeyPair, CurvePublicKey, KeyError};
pub use dealer::{Dealer, DealerConfig, DealerEvent};
pub use request::{request, RequestConfig};
pub use router::{Incoming, Router, RouterConfig, RouterEvent, ServerSecurity, Undeliverable};

use crate::codec::{DecodeError, EncodeError};
use std::sync::OnceLock;
use std::time::Duration;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Could not bind: the port is in use or the endpoint is malformed.
    #[error("cannot bind {endpoint}: {reason}")]
    Bind { endpoint: String, reason: String },
    /// Could not reach the peer: is the controller running at this endpoint?
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// No answer in time: the peer is down, stalled, cut off, or (with CURVE) the handshake did not
    /// complete; `hint` says what the socket monitor saw.
    #[error("no reply from {endpoint} within {secs} s{hint}")]
    Timeout { endpoint: String, secs: u64, hint: String },
    /// The server refused our key (ZAP status 400): this key is not enrolled or not an operator's.
    #[error("{endpoint} refused this client's CURVE key (not enrolled; ask an admin to add it)")]
    AuthRefused { endpoint: String },
    /// The outgoing queue is full: the I/O thread is far behind or the peer is not reading.
    #[error("send queue to {0} is full")]
    QueueFull(String),
    /// The socket thread has stopped (shutdown).
    #[error("transport closed")]
    Closed,
    /// The peer answered with a frame we cannot decode.
    #[error("bad reply from {endpoint}: {source}")]
    BadReply { endpoint: String, source: DecodeError },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A key file or key string could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// libzmq refused a call (a bug or resource exhaustion: too many sockets, no memory).
    #[error("zeromq error: {0}")]
    Zmq(String),
}

impl From<zmq::Error> for TransportError {
    fn from(e: zmq::Error) -> Self {
        TransportError::Zmq(e.to_string())
    }
}

/// Limits every socket of this crate sets. Defaults suit an in-band management network: a few
/// hundred KiB per message at most, peers that answer within seconds.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// `ZMQ_MAXMSGSIZE`, and the decoder's own bound. Default 1 MiB.
    pub max_msg_bytes: usize,
    /// `ZMQ_HANDSHAKE_IVL`: a peer that has not completed the ZMTP (and CURVE) handshake by then is
    /// dropped. Default 5 s.
    pub handshake: Duration,
    /// `ZMQ_HEARTBEAT_IVL`: a PING every so often on an idle connection. Default 2 s; zero sends
    /// none (a server's setting, see the module docs).
    pub heartbeat_ivl: Duration,
    /// `ZMQ_HEARTBEAT_TIMEOUT`: no traffic for this long after a PING closes the connection.
    /// Default 10 s.
    pub heartbeat_timeout: Duration,
    /// `ZMQ_HEARTBEAT_TTL`: how long the peer may wait for our traffic before it drops us. Default
    /// zero (none): a TTL makes the server arm a timer per connection (see the module docs).
    pub heartbeat_ttl: Duration,
    /// `ZMQ_TCP_KEEPALIVE` idle time: the kernel probes a silent connection after this long and
    /// closes it after three failed probes 10 s apart. Default 60 s; zero leaves the OS default.
    pub tcp_keepalive_idle: Duration,
    /// `ZMQ_SNDHWM`: messages queued per peer before a send to it fails. Default 1000.
    pub send_hwm: i32,
    /// `ZMQ_RCVHWM`: messages queued per peer before libzmq stops reading from it. Default 1000.
    pub recv_hwm: i32,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            max_msg_bytes: crate::codec::MAX_FRAME_DEFAULT,
            handshake: Duration::from_secs(5),
            heartbeat_ivl: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(10),
            heartbeat_ttl: Duration::ZERO,
            tcp_keepalive_idle: Duration::from_secs(60),
            send_hwm: 1000,
            recv_hwm: 1000,
        }
    }
}

impl SocketLimits {
    /// A server socket's limits: the defaults without heartbeats of its own (clients PING it; see
    /// the module docs for why it arms no timer per connection).
    pub fn server() -> Self {
        SocketLimits { heartbeat_ivl: Duration::ZERO, ..SocketLimits::default() }
    }

    /// Apply to a socket before it binds or connects (public for tools that drive raw libzmq
    /// sockets, such as the load generator, so they set exactly what the real peers set).
    pub fn apply(&self, sock: &zmq::Socket) -> Result<(), zmq::Error> {
        sock.set_maxmsgsize(self.max_msg_bytes.min(i64::MAX as usize) as i64)?;
        sock.set_handshake_ivl(ms(self.handshake))?;
        sock.set_heartbeat_ivl(ms(self.heartbeat_ivl))?;
        sock.set_heartbeat_timeout(ms(self.heartbeat_timeout))?;
        // TTL is carried in deciseconds on the wire; libzmq rounds.
        sock.set_heartbeat_ttl(ms(self.heartbeat_ttl))?;
        if !self.tcp_keepalive_idle.is_zero() {
            sock.set_tcp_keepalive(1)?;
            sock.set_tcp_keepalive_idle(self.tcp_keepalive_idle.as_secs().clamp(1, i32::MAX as u64) as i32)?;
            sock.set_tcp_keepalive_intvl(10)?;
            sock.set_tcp_keepalive_cnt(3)?;
        }
        sock.set_sndhwm(self.send_hwm)?;
        sock.set_rcvhwm(self.recv_hwm)?;
        // `ZMQ_IPV6`: without it libzmq refuses `tcp://[::1]:7007` and resolves names to IPv4
        // only, so a node on Terragraph's IPv6 management network could never reach us. With it a
        // `tcp://*:port` bind is dual-stack (IPv4 clients arrive as mapped addresses), and libzmq
        // falls back to IPv4 on a host without IPv6.
        sock.set_ipv6(true)?;
        // Never keep a closing socket alive for undelivered messages: the owner resends state.
        sock.set_linger(0)?;
        Ok(())
    }
}

/// Milliseconds for a libzmq option (which takes an `int`).
pub(crate) fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// How a client (DEALER) secures its connection.
#[derive(Debug, Clone)]
pub enum ClientSecurity {
    /// CurveZMQ: our own key pair, and the server's public key (which authenticates the server).
    Curve { keys: CurveKeyPair, server: CurvePublicKey },
    /// Plain text, no authentication. Only behind an explicit `insecure = true`.
    Insecure,
}

impl ClientSecurity {
    /// Set the CURVE client options on a socket before it connects (nothing when insecure).
    pub fn apply(&self, sock: &zmq::Socket) -> Result<(), zmq::Error> {
        if let ClientSecurity::Curve { keys, server } = self {
            sock.set_curve_serverkey(server.as_bytes())?;
            sock.set_curve_publickey(keys.public().as_bytes())?;
            sock.set_curve_secretkey(keys.secret_bytes())?;
        }
        Ok(())
    }
}

/// The process's libzmq context: one, so that every CURVE server socket finds the ZAP handler
/// bound on it (`inproc://` endpoints are per context). Two I/O threads: a server pins its
/// sockets to different ones ([`RouterConfig::affinity`]) so that operators are never queued
/// behind ten thousand nodes' traffic. Bench programs that open thousands of sockets create their
/// own contexts ([`DealerConfig::context`]).
pub fn context() -> zmq::Context {
    static CTX: OnceLock<zmq::Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = zmq::Context::new();
        // Before the first socket exists, libzmq accepts this; failing it leaves the default (1).
        if let Err(e) = ctx.set_io_threads(IO_THREADS) {
            tracing::warn!(error = %e, "libzmq kept one I/O thread");
        }
        ctx
    })
    .clone()
}

/// I/O threads of [`context`].
pub const IO_THREADS: i32 = 2;

/// Whether the linked libzmq can do CurveZMQ (it needs libsodium or tweetnacl at build time).
pub fn has_curve() -> bool {
    zmq::has("curve").unwrap_or(false)
}

/// Fresh suffix for inproc endpoint names and client identities.
pub(crate) fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48) ^ std::process::id() as u64
}
