//! One request, one reply with the controller, on a small single-threaded tokio runtime.
//!
//! The CLI is synchronous; only the ZeroMQ socket needs async. A current-thread runtime keeps the
//! process at one thread and starts in microseconds.
//!
//! Failures are told in the operator's terms: a key the controller refused, a handshake that
//! failed (most often the wrong controller key, or CURVE on one side only), or nothing answering.

use super::credentials::{Credentials, Origin};
use meshlift_protocol::transport::{request, RequestConfig, TransportError};
use meshlift_protocol::Message;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A controller endpoint, the keys to talk to it, and the runtime used to do so.
pub struct Controller {
    cfg: RequestConfig,
    credentials: Credentials,
    rt: tokio::runtime::Runtime,
}

/// Why a call produced no usable reply.
#[derive(Debug)]
pub enum CallError {
    /// Nothing answered at the endpoint: the controller is down, the address is wrong, or the
    /// management path is cut.
    Unreachable { endpoint: String, detail: String },
    /// Something answered but the CURVE handshake did not complete: the controller key is wrong,
    /// or only one side runs CURVE.
    Handshake { endpoint: String, detail: String, advice: String },
    /// The controller does not admit our operator key.
    KeyRefused { endpoint: String, key: Option<(String, PathBuf, Origin)> },
    /// The controller answered with a frame we cannot read: an incompatible build.
    BadReply { endpoint: String, detail: String },
}

impl CallError {
    pub fn exit_code(&self) -> u8 {
        super::EXIT_USAGE
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable { endpoint, detail } => {
                write!(f, "cannot reach controller at {endpoint}: {detail}")
            }
            CallError::Handshake { endpoint, detail, advice } => {
                write!(f, "cannot reach controller at {endpoint}: {detail}\n  {advice}")
            }
            CallError::KeyRefused { endpoint, key: Some((public, path, origin)) } => write!(
                f,
                "the controller at {endpoint} refused operator key {public} ({}, from {origin}): it is \
                 not listed under the controller's [[security.operators]]; ask its admin to add your \
                 public key ({}) with a role",
                path.display(),
                path.with_extension("pub").display()
            ),
            CallError::KeyRefused { endpoint, key: None } => {
                write!(f, "the controller at {endpoint} refused this client's key")
            }
            CallError::BadReply { endpoint, detail } => {
                write!(f, "unreadable reply from controller at {endpoint}: {detail}")
            }
        }
    }
}

impl Controller {
    /// Refuses an endpoint that is not `tcp://host:port` before trying anything, so a typo gets a
    /// precise message instead of a timeout.
    pub fn new(
        endpoint: &str,
        credentials: Credentials,
        reply_timeout: Duration,
    ) -> Result<Controller, String> {
        check_endpoint(endpoint)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let cfg = RequestConfig::new(endpoint, credentials.security(), reply_timeout);
        Ok(Controller { cfg, credentials, rt })
    }

    pub fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    /// Send `body`, wait for the reply.
    pub fn call(&self, body: Message) -> Result<Message, CallError> {
        match self.rt.block_on(request(&self.cfg, body)) {
            Ok(env) => Ok(env.body),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: TransportError) -> CallError {
        let endpoint = self.cfg.endpoint.clone();
        match e {
            TransportError::BadReply { source, .. } => {
                CallError::BadReply { endpoint, detail: source.to_string() }
            }
            TransportError::AuthRefused { .. } => {
                let key = match &self.credentials {
                    Credentials::Curve { keys, key_path, key_origin, .. } => {
                        Some((keys.public().to_z85(), key_path.clone(), key_origin.clone()))
                    }
                    Credentials::Insecure => None,
                };
                CallError::KeyRefused { endpoint, key }
            }
            TransportError::Timeout { secs, hint, .. } => {
                let detail = format!("no reply within {secs} s{hint}");
                match handshake_advice(&hint, &self.credentials) {
                    Some(advice) => CallError::Handshake { endpoint, detail, advice },
                    None => CallError::Unreachable { endpoint, detail },
                }
            }
            TransportError::Connect { reason, .. } => CallError::Unreachable { endpoint, detail: reason },
            other => CallError::Unreachable { endpoint, detail: other.to_string() },
        }
    }
}

/// What to check when the transport saw a connection whose handshake never completed. `None`
/// when it saw no connection at all (nothing to say beyond "no reply").
fn handshake_advice(hint: &str, credentials: &Credentials) -> Option<String> {
    let saw_handshake = hint.contains("handshake") || hint.contains("controller key");
    if !saw_handshake {
        return None;
    }
    Some(match credentials {
        Credentials::Curve { server, server_origin, .. } => {
            format!(
                "check the controller key: {server_origin} gives {server}, which must be the controller's \
                 controller.pub (it logs its public key at start); a controller running with \
                 security.insecure = true needs --insecure instead"
            )
        }
        Credentials::Insecure => "this client runs without CURVE (--insecure or MESHLIFT_INSECURE): the \
                                  controller most likely runs with CURVE on, so drop --insecure and give \
                                  --key and --controller-key"
            .to_string(),
    })
}

pub(super) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let bad = || format!("bad controller endpoint {endpoint:?}: expected tcp://host:port");
    let rest = endpoint.strip_prefix("tcp://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_connecting() {
        assert!(check_endpoint("tcp://127.0.0.1:17077").is_ok());
        assert!(check_endpoint("tcp://[::1]:17077").is_ok());
        assert!(check_endpoint("tcp://controller.example:1").is_ok());
        for bad in ["127.0.0.1:17077", "tcp://127.0.0.1", "tcp://:17077", "tcp://h:99999", "ipc:///x"] {
            let e = check_endpoint(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_timeout_without_a_connection_is_unreachable_and_a_failed_handshake_names_the_key() {
        let ctrl =
            Controller::new("tcp://127.0.0.1:1", Credentials::Insecure, Duration::from_secs(1)).unwrap();
        let timeout = |hint: &str| TransportError::Timeout {
            endpoint: "tcp://127.0.0.1:1".into(),
            secs: 1,
            hint: hint.into(),
        };
        let e = ctrl.classify(timeout(": no connection (is the controller running at this endpoint?)"));
        assert!(matches!(e, CallError::Unreachable { .. }), "{e:?}");
        let e = ctrl.classify(timeout(": protocol error during the handshake"));
        assert!(
            matches!(&e, CallError::Handshake { advice, .. } if advice.contains("drop --insecure")),
            "{e:?}"
        );
        let e = ctrl.classify(TransportError::AuthRefused { endpoint: "tcp://127.0.0.1:1".into() });
        assert!(e.to_string().contains("refused this client's key"), "{e}");
    }
}
