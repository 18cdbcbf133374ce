//! One request, one reply with the controller, on a small single-threaded tokio runtime.
//!
//! The CLI is synchronous; only the ZeroMQ socket needs async. A current-thread runtime keeps the
//! process at one thread and starts in microseconds.

use meshlift_protocol::transport::{request, TransportError};
use meshlift_protocol::Message;
use std::fmt;
use std::time::Duration;

/// A controller endpoint and the runtime used to talk to it.
pub struct Controller {
    endpoint: String,
    reply_timeout: Duration,
    rt: tokio::runtime::Runtime,
}

/// Why a call produced no usable reply.
#[derive(Debug)]
pub enum CallError {
    /// Nothing answered at the endpoint: the controller is down, the address is wrong, or the
    /// management path is cut.
    Unreachable { endpoint: String, detail: String },
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
            CallError::BadReply { endpoint, detail } => {
                write!(f, "unreadable reply from controller at {endpoint}: {detail}")
            }
        }
    }
}

impl Controller {
    /// Refuses an endpoint that is not `tcp://host:port` before trying anything, so a typo gets a
    /// precise message instead of a timeout.
    pub fn new(endpoint: &str, reply_timeout: Duration) -> Result<Controller, String> {
        check_endpoint(endpoint)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        Ok(Controller { endpoint: endpoint.to_string(), reply_timeout, rt })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Send `body`, wait for the reply.
    pub fn call(&self, body: Message) -> Result<Message, CallError> {
        let result = self.rt.block_on(request(&self.endpoint, body, self.reply_timeout));
        match result {
            Ok(env) => Ok(env.body),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: TransportError) -> CallError {
        let endpoint = self.endpoint.clone();
        match e {
            TransportError::BadReply { source, .. } => {
                CallError::BadReply { endpoint, detail: source.to_string() }
            }
            TransportError::Timeout { secs, .. } => {
                CallError::Unreachable { endpoint, detail: format!("no reply within {secs} s") }
            }
            // zeromq keeps retrying a refused connection until our timeout: say it the same way.
            TransportError::Connect { reason, .. } if reason.contains("timed out") => {
                CallError::Unreachable {
                    endpoint,
                    detail: format!("no reply within {} s", self.reply_timeout.as_secs().max(1)),
                }
            }
            TransportError::Connect { reason, .. } => CallError::Unreachable { endpoint, detail: reason },
            other => CallError::Unreachable { endpoint, detail: other.to_string() },
        }
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
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
}
