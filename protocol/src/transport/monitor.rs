//! libzmq's socket monitor (`zmq_socket_monitor`): how a client learns that its handshake failed
//! and why (wrong server key, key refused by the server's ZAP handler), or that it is connected.

use super::unique_suffix;
use zmq::SocketEvent as E;

/// What the monitor reported, reduced to what an owner acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MonitorEvent {
    /// The ZMTP (and CURVE) handshake completed: messages flow.
    Connected,
    /// The connection closed; libzmq reconnects by itself.
    Disconnected,
    /// The server's ZAP handler refused our key (status code, e.g. 400).
    AuthRefused(u32),
    /// The handshake failed: with CURVE, most often the wrong server key.
    HandshakeFailed(&'static str),
    /// Anything else (connect retried, delayed…).
    Other,
}

pub(crate) struct Monitor {
    sock: zmq::Socket,
}

impl Monitor {
    /// Start monitoring `target` (before it connects, so no event is missed).
    pub(crate) fn attach(ctx: &zmq::Context, target: &zmq::Socket) -> Result<Monitor, zmq::Error> {
        let endpoint = format!("inproc://meshlift-monitor-{:x}", unique_suffix());
        let events = E::HANDSHAKE_SUCCEEDED.to_raw()
            | E::DISCONNECTED.to_raw()
            | E::HANDSHAKE_FAILED_AUTH.to_raw()
            | E::HANDSHAKE_FAILED_PROTOCOL.to_raw()
            | E::HANDSHAKE_FAILED_NO_DETAIL.to_raw();
        target.monitor(&endpoint, events as i32)?;
        let sock = ctx.socket(zmq::PAIR)?;
        sock.connect(&endpoint)?;
        Ok(Monitor { sock })
    }

    pub(crate) fn socket(&self) -> &zmq::Socket {
        &self.sock
    }

    /// The next event, if one is waiting.
    pub(crate) fn next(&self) -> Option<MonitorEvent> {
        let frames = self.sock.recv_multipart(zmq::DONTWAIT).ok()?;
        let head = frames.first()?;
        if head.len() < 6 {
            return Some(MonitorEvent::Other);
        }
        let event = u16::from_ne_bytes([head[0], head[1]]);
        let value = u32::from_ne_bytes([head[2], head[3], head[4], head[5]]);
        Some(match event {
            e if e == E::HANDSHAKE_SUCCEEDED.to_raw() => MonitorEvent::Connected,
            e if e == E::DISCONNECTED.to_raw() => MonitorEvent::Disconnected,
            e if e == E::HANDSHAKE_FAILED_AUTH.to_raw() => MonitorEvent::AuthRefused(value),
            e if e == E::HANDSHAKE_FAILED_PROTOCOL.to_raw() => {
                MonitorEvent::HandshakeFailed("protocol error during the handshake")
            }
            e if e == E::HANDSHAKE_FAILED_NO_DETAIL.to_raw() => MonitorEvent::HandshakeFailed(
                "handshake failed (wrong controller key, or not a CURVE server)",
            ),
            _ => MonitorEvent::Other,
        })
    }
}
