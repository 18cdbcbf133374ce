//! ZeroMQ shells shared by the controller, the minion and the CLI (feature `transport`).
//!
//! The `zeromq` crate (pure Rust) leaves several things to us (DESIGN §4); each is handled here:
//! - **Reconnect.** A DEALER never reconnects by itself after the ROUTER restarts (its `recv`
//!   hangs). [`Dealer`] watches the socket monitor for `Disconnected`, treats a failed or timed-out
//!   send the same way, and accepts [`Dealer::reconnect`] from its owner (who knows when acks stop
//!   coming): each rebuilds the socket and connects again with exponential backoff.
//! - **Delivery and liveness.** A successful send means nothing was delivered; there are no ZMTP
//!   heartbeats. Liveness comes from our own status reports and acks, above this layer.
//! - **Bounded sends.** A ROUTER send to a stalled peer blocks once its queue fills: every send
//!   here has a timeout, and the DEALER's outgoing queue is bounded (full = error, not a wait).
//! - **Takeover race.** Identities are chosen by the caller; minions use `<mac>/<boot id>`, new on
//!   every start, so a stale connection's late disconnect cannot close the new one.
//!
//! Frames: a DEALER sends `[app-id, envelope]`; the ROUTER receives `[identity, app-id, envelope]`.
//! A frame that fails to decode is delivered to the owner as an error (with the peer identity) so
//! it can be logged and answered; it never stops a loop.

use crate::codec::{decode, encode, DecodeError, EncodeError, Envelope};
use crate::messages::Message;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use zeromq::{Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Could not bind: the port is in use or the endpoint is malformed.
    #[error("cannot bind {endpoint}: {reason}")]
    Bind { endpoint: String, reason: String },
    /// Could not reach the peer: is the controller running at this endpoint?
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// No answer in time: the peer is down, stalled, or cut off.
    #[error("no reply from {endpoint} within {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    /// The outgoing queue is full: the peer is not reading.
    #[error("send queue to {0} is full")]
    QueueFull(String),
    /// The socket task has stopped (shutdown).
    #[error("transport closed")]
    Closed,
    /// The peer answered with a frame we cannot decode.
    #[error("bad reply from {endpoint}: {source}")]
    BadReply { endpoint: String, source: DecodeError },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("zeromq error: {0}")]
    Zmq(String),
}

/// Configuration of a [`Dealer`].
#[derive(Debug, Clone)]
pub struct DealerConfig {
    /// `tcp://host:port` of the ROUTER.
    pub endpoint: String,
    /// Routing identity (unique per process start).
    pub identity: String,
    /// Sender app id, first frame of every message.
    pub app_id: String,
    pub max_frame: usize,
    /// Bound on one send (and on one connect attempt).
    pub send_timeout: Duration,
    /// Outgoing queue length; a full queue refuses new messages.
    pub queue: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl DealerConfig {
    pub fn new(endpoint: impl Into<String>, identity: impl Into<String>, app_id: impl Into<String>) -> Self {
        DealerConfig {
            endpoint: endpoint.into(),
            identity: identity.into(),
            app_id: app_id.into(),
            max_frame: crate::codec::MAX_FRAME_DEFAULT,
            send_timeout: Duration::from_secs(5),
            queue: 256,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// What the dealer task reports to its owner besides messages.
#[derive(Debug)]
// Events are moved once, from the socket task to the owner; boxing the common case would cost an
// allocation per message to save a few hundred bytes on the rare ones.
#[allow(clippy::large_enum_variant)]
pub enum DealerEvent {
    /// A decoded envelope from the ROUTER.
    Message(Envelope),
    /// A frame that did not decode (logged already).
    BadFrame(DecodeError),
    /// A (re)connection succeeded; the owner should resend whatever the peer must know (a full
    /// status report).
    Connected,
    /// The connection was lost; the task is reconnecting with backoff.
    Disconnected(String),
}

enum Control {
    Send(ZmqMessage),
    Reconnect,
}

/// A DEALER that reconnects by itself. Cheap to clone; the socket lives in a background task
/// that ends when every clone is dropped.
#[derive(Clone)]
pub struct Dealer {
    tx: mpsc::Sender<Control>,
    endpoint: Arc<str>,
    app_id: Bytes,
    next_id: Arc<AtomicU64>,
}

impl Dealer {
    /// Start the socket task. Events (messages, connects, disconnects) arrive on the receiver.
    pub fn spawn(cfg: DealerConfig) -> (Dealer, mpsc::Receiver<DealerEvent>) {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let dealer = Dealer {
            tx,
            endpoint: cfg.endpoint.clone().into(),
            app_id: Bytes::from(cfg.app_id.clone().into_bytes()),
            next_id: Arc::new(AtomicU64::new(1)),
        };
        tokio::spawn(dealer_task(cfg, rx, ev_tx));
        (dealer, ev_rx)
    }

    /// A fresh request id for envelopes sent through this dealer.
    pub fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue one envelope. Fails at once when the queue is full or the task has ended.
    pub fn send(&self, env: &Envelope) -> Result<(), TransportError> {
        let bytes = encode(env)?;
        let msg = ZmqMessage::try_from(vec![self.app_id.clone(), Bytes::from(bytes)])
            .map_err(|e| TransportError::Zmq(e.to_string()))?;
        self.tx.try_send(Control::Send(msg)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::QueueFull(self.endpoint.to_string()),
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }

    /// Drop the current connection and connect again (the owner saw no ack for too long).
    pub fn reconnect(&self) {
        let _ = self.tx.try_send(Control::Reconnect);
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

async fn connect(cfg: &DealerConfig) -> Result<zeromq::DealerSocket, TransportError> {
    let mut opts = zeromq::SocketOptions::default();
    opts.peer_identity(
        zeromq::util::PeerIdentity::try_from(cfg.identity.clone().into_bytes())
            .map_err(|e| TransportError::Zmq(e.to_string()))?,
    );
    opts.connect_timeout(cfg.send_timeout);
    let mut sock = zeromq::DealerSocket::with_options(opts);
    match tokio::time::timeout(cfg.send_timeout, sock.connect(&cfg.endpoint)).await {
        Ok(Ok(())) => Ok(sock),
        Ok(Err(e)) => Err(TransportError::Connect { endpoint: cfg.endpoint.clone(), reason: e.to_string() }),
        Err(_) => Err(TransportError::Connect { endpoint: cfg.endpoint.clone(), reason: "timed out".into() }),
    }
}

async fn dealer_task(cfg: DealerConfig, mut ctl: mpsc::Receiver<Control>, events: mpsc::Sender<DealerEvent>) {
    let mut backoff = cfg.backoff_min;
    loop {
        let mut sock = loop {
            match connect(&cfg).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::debug!(endpoint = %cfg.endpoint, error = %e, "connect failed; retrying");
                    // Drain sends queued while we are down: they would be stale by the time we
                    // connect, and the owner resends its state on `Connected` anyway.
                    let sleep = tokio::time::sleep(backoff);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            c = ctl.recv() => if c.is_none() { return },
                        }
                    }
                    backoff = (backoff * 2).min(cfg.backoff_max);
                }
            }
        };
        backoff = cfg.backoff_min;
        let mut monitor = sock.monitor();
        if events.send(DealerEvent::Connected).await.is_err() {
            return;
        }
        let reason = loop {
            tokio::select! {
                c = ctl.recv() => match c {
                    None => return,
                    Some(Control::Reconnect) => break "reconnect requested".to_string(),
                    Some(Control::Send(msg)) => {
                        match tokio::time::timeout(cfg.send_timeout, sock.send(msg)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => break format!("send failed: {e}"),
                            Err(_) => break "send timed out".to_string(),
                        }
                    }
                },
                ev = futures_next(&mut monitor) => match ev {
                    Some(SocketEvent::Disconnected(_)) | Some(SocketEvent::Closed) | None => break "peer disconnected".to_string(),
                    Some(_) => {}
                },
                m = sock.recv() => match m {
                    Ok(msg) => {
                        let frames = msg.into_vec();
                        // [app-id?, envelope]: the envelope is always the last frame.
                        let Some(last) = frames.last() else { continue };
                        let ev = match decode(last, cfg.max_frame) {
                            Ok(env) => DealerEvent::Message(env),
                            Err(e) => {
                                tracing::warn!(endpoint = %cfg.endpoint, error = %e, "refused frame from controller");
                                DealerEvent::BadFrame(e)
                            }
                        };
                        if events.send(ev).await.is_err() { return; }
                    }
                    Err(e) => break format!("receive failed: {e}"),
                },
            }
        };
        tracing::info!(endpoint = %cfg.endpoint, %reason, "connection lost; reconnecting");
        if events.send(DealerEvent::Disconnected(reason)).await.is_err() {
            return;
        }
        drop(sock);
        tokio::time::sleep(cfg.backoff_min).await;
    }
}

async fn futures_next<T>(rx: &mut futures_channel_receiver::Receiver<T>) -> Option<T> {
    use futures_channel_receiver::StreamExt;
    rx.next().await
}

/// The monitor channel type of the `zeromq` crate (futures' mpsc), re-exported for the select.
mod futures_channel_receiver {
    pub use futures::channel::mpsc::Receiver;
    pub use futures::StreamExt;
}

/// One request, one reply: what operator tools do. Connects, sends, waits for the reply with the
/// same request id, and gives up after `timeout` with an error naming the endpoint.
pub async fn request(endpoint: &str, body: Message, timeout: Duration) -> Result<Envelope, TransportError> {
    let identity = format!("app-{}-{}", std::process::id(), unique_suffix());
    let mut cfg = DealerConfig::new(endpoint, identity, "meshlift-cli");
    cfg.send_timeout = timeout;
    let fut = async {
        let sock = connect(&cfg).await?;
        let (mut send, mut recv) = sock.split();
        let env = Envelope::new(1, body);
        let msg = ZmqMessage::try_from(vec![Bytes::from_static(b"meshlift-cli"), Bytes::from(encode(&env)?)])
            .map_err(|e| TransportError::Zmq(e.to_string()))?;
        send.send(msg).await.map_err(|e| TransportError::Zmq(e.to_string()))?;
        loop {
            let msg = recv.recv().await.map_err(|e| TransportError::Zmq(e.to_string()))?;
            let frames = msg.into_vec();
            let Some(last) = frames.last() else { continue };
            let reply = decode(last, cfg.max_frame)
                .map_err(|source| TransportError::BadReply { endpoint: endpoint.to_string(), source })?;
            if reply.request_id == env.request_id {
                return Ok(reply);
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => {
            Err(TransportError::Timeout { endpoint: endpoint.to_string(), secs: timeout.as_secs().max(1) })
        }
    }
}

fn unique_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A frame received by a [`Router`].
#[derive(Debug)]
pub struct Incoming {
    /// Routing identity of the sender (a minion's `<mac>/<boot id>`, or an app id).
    pub identity: Bytes,
    /// The sender's app id frame (empty if absent).
    pub app_id: Bytes,
    /// The decoded envelope, or why it was refused.
    pub frame: Result<Envelope, DecodeError>,
}

impl Incoming {
    pub fn identity_str(&self) -> String {
        String::from_utf8_lossy(&self.identity).into_owned()
    }
}

/// A bound ROUTER. Receiving runs in a background task; sends are bounded by a timeout so one
/// stalled peer cannot block the controller.
pub struct Router {
    send: tokio::sync::Mutex<zeromq::RouterSendHalf>,
    send_timeout: Duration,
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Router {
    /// Dropping the router closes the socket (the receive task owns half of it).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Router {
    /// Bind and start receiving. `endpoint` like `tcp://0.0.0.0:7007` (port 0 picks one; see
    /// [`Router::endpoint`]).
    pub async fn bind(
        endpoint: &str,
        max_frame: usize,
        send_timeout: Duration,
    ) -> Result<(Router, mpsc::Receiver<Incoming>), TransportError> {
        let mut sock = zeromq::RouterSocket::new();
        let bound = sock
            .bind(endpoint)
            .await
            .map_err(|e| TransportError::Bind { endpoint: endpoint.to_string(), reason: e.to_string() })?;
        let (send, mut recv) = sock.split();
        let (tx, rx) = mpsc::channel(8192);
        let ep = bound.to_string();
        let ep2 = ep.clone();
        let task = tokio::spawn(async move {
            loop {
                let msg = match recv.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(endpoint = %ep2, error = %e, "router receive error");
                        continue;
                    }
                };
                let mut frames = msg.into_vec().into_iter();
                let identity = frames.next().unwrap_or_default();
                let rest: Vec<Bytes> = frames.collect();
                let (app_id, frame) = match rest.as_slice() {
                    [app, env] => (app.clone(), decode(env, max_frame)),
                    [env] => (Bytes::new(), decode(env, max_frame)),
                    _ => (
                        Bytes::new(),
                        Err(DecodeError::Malformed(format!(
                            "expected [app-id, envelope], got {} frames",
                            rest.len()
                        ))),
                    ),
                };
                if let Err(e) = &frame {
                    tracing::warn!(peer = %String::from_utf8_lossy(&identity), error = %e, "refused frame");
                }
                if tx.send(Incoming { identity, app_id, frame }).await.is_err() {
                    return;
                }
            }
        });
        Ok((Router { send: tokio::sync::Mutex::new(send), send_timeout, endpoint: ep, task }, rx))
    }

    /// The endpoint actually bound (port resolved).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Send an envelope to one peer. Bounded by the send timeout; an unknown identity is an error.
    pub async fn send(&self, identity: &Bytes, app_id: &[u8], env: &Envelope) -> Result<(), TransportError> {
        let bytes = encode(env)?;
        let msg =
            ZmqMessage::try_from(vec![identity.clone(), Bytes::copy_from_slice(app_id), Bytes::from(bytes)])
                .map_err(|e| TransportError::Zmq(e.to_string()))?;
        let mut half = self.send.lock().await;
        match tokio::time::timeout(self.send_timeout, half.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TransportError::Zmq(e.to_string())),
            Err(_) => Err(TransportError::Timeout {
                endpoint: String::from_utf8_lossy(identity).into_owned(),
                secs: self.send_timeout.as_secs(),
            }),
        }
    }
}
