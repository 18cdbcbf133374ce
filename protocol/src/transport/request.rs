//! One request, one reply: what operator tools do. Connects, sends, waits for the reply with the
//! same request id, and gives up after the timeout with an error that says what the socket
//! monitor saw (key refused, handshake failed, never connected), so an operator with the wrong
//! key is told so instead of "no reply".

use super::monitor::{Monitor, MonitorEvent};
use super::{ClientSecurity, SocketLimits, TransportError};
use crate::codec::{decode, encode, Envelope};
use crate::messages::Message;
use std::time::{Duration, Instant};

/// Where and how to send one request.
#[derive(Debug, Clone)]
pub struct RequestConfig {
    /// `tcp://host:port` of the controller's app socket.
    pub endpoint: String,
    pub security: ClientSecurity,
    pub timeout: Duration,
    pub limits: SocketLimits,
}

impl RequestConfig {
    pub fn new(endpoint: impl Into<String>, security: ClientSecurity, timeout: Duration) -> Self {
        RequestConfig { endpoint: endpoint.into(), security, timeout, limits: SocketLimits::default() }
    }
}

/// Send `body` and wait for its reply. The socket work runs on a blocking thread.
pub async fn request(cfg: &RequestConfig, body: Message) -> Result<Envelope, TransportError> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || request_blocking(&cfg, body))
        .await
        .map_err(|e| TransportError::Zmq(format!("request thread failed: {e}")))?
}

fn request_blocking(cfg: &RequestConfig, body: Message) -> Result<Envelope, TransportError> {
    let endpoint = cfg.endpoint.as_str();
    let ctx = super::context();
    let sock = ctx.socket(zmq::DEALER)?;
    cfg.limits.apply(&sock)?;
    sock.set_immediate(true)?;
    cfg.security.apply(&sock)?;
    let monitor = Monitor::attach(&ctx, &sock)?;
    sock.connect(endpoint)
        .map_err(|e| TransportError::Connect { endpoint: endpoint.to_string(), reason: e.to_string() })?;
    let env = Envelope::new(super::unique_suffix() | 1, body);
    let bytes = encode(&env)?;
    let deadline = Instant::now() + cfg.timeout;
    let mut sent = false;
    let mut hint = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if hint.is_empty() && !sent {
                hint = ": no connection (is the controller running at this endpoint?)".into();
            }
            return Err(TransportError::Timeout {
                endpoint: endpoint.to_string(),
                secs: cfg.timeout.as_secs().max(1),
                hint,
            });
        }
        let mut items = [sock.as_poll_item(zmq::POLLIN), monitor.socket().as_poll_item(zmq::POLLIN)];
        zmq::poll(&mut items, left.as_millis().min(i64::MAX as u128) as i64)?;
        if items[1].is_readable() {
            while let Some(ev) = monitor.next() {
                match ev {
                    MonitorEvent::Connected if !sent => {
                        let parts: [&[u8]; 2] = [b"meshlift-cli", &bytes];
                        sock.send_multipart(parts, zmq::DONTWAIT)?;
                        sent = true;
                    }
                    MonitorEvent::AuthRefused(_) => {
                        return Err(TransportError::AuthRefused { endpoint: endpoint.to_string() })
                    }
                    MonitorEvent::HandshakeFailed(why) => hint = format!(": {why}"),
                    MonitorEvent::Disconnected if !sent => {
                        hint = ": the connection closed during the handshake (is the controller key \
                                right, and does the controller run with CURVE on?)"
                            .into()
                    }
                    _ => {}
                }
            }
        }
        if items[0].is_readable() {
            while let Ok(frames) = sock.recv_multipart(zmq::DONTWAIT) {
                let Some(last) = frames.last() else { continue };
                let reply = decode(last, cfg.limits.max_msg_bytes)
                    .map_err(|source| TransportError::BadReply { endpoint: endpoint.to_string(), source })?;
                if reply.request_id == env.request_id {
                    return Ok(reply);
                }
            }
        }
    }
}
