//! The ZAP handler (RFC 27): libzmq asks it, during every CURVE handshake on a server socket,
//! whether the client's public key is admitted, and stamps the user id it answers on every frame
//! that connection delivers (message property `User-Id`).
//!
//! One handler per process, bound on [`super::context`] at `inproc://zeromq.zap.01` before the
//! first CURVE server socket binds: libzmq admits every client when no handler is bound, so the
//! order matters and [`register`] enforces it. Each server socket names its ZAP domain, and each
//! domain has its own [`Authorizer`] (the controller: `minion` admits enrolled node keys, `app`
//! operator keys).

use super::curve::CurvePublicKey;
use super::TransportError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// One handshake to decide on.
#[derive(Debug, Clone)]
pub struct ZapRequest {
    /// The server socket's ZAP domain.
    pub domain: String,
    /// The client's IP address as libzmq saw it.
    pub address: String,
    /// The client's CURVE public key (`None` for a NULL-mechanism request).
    pub key: Option<CurvePublicKey>,
}

/// Decides which clients a server socket admits.
pub trait Authorizer: Send + Sync {
    /// `Ok(user id)` admits the client and names it on every frame it sends; `Err(reason)`
    /// refuses the handshake (ZAP status 400; the client's monitor sees an authentication failure).
    /// Runs on the ZAP thread: answer from memory, never block.
    fn authorize(&self, req: &ZapRequest) -> Result<String, String>;
}

type Registry = Mutex<HashMap<String, Arc<dyn Authorizer>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Keeps a domain registered; dropping it refuses every later handshake in that domain.
pub struct ZapGuard {
    domain: String,
}

impl Drop for ZapGuard {
    fn drop(&mut self) {
        if let Ok(mut reg) = registry().lock() {
            reg.remove(&self.domain);
        }
    }
}

/// Register `auth` for `domain`, starting the process's ZAP handler first if needed. Fails if the
/// domain is taken (two sockets sharing one domain would share one key list by accident).
pub fn register(domain: &str, auth: Arc<dyn Authorizer>) -> Result<ZapGuard, TransportError> {
    start_handler()?;
    let mut reg = registry().lock().map_err(|_| TransportError::Zmq("ZAP registry poisoned".into()))?;
    if reg.contains_key(domain) {
        return Err(TransportError::Zmq(format!("ZAP domain {domain:?} is already registered")));
    }
    reg.insert(domain.to_string(), auth);
    Ok(ZapGuard { domain: domain.to_string() })
}

fn start_handler() -> Result<(), TransportError> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let sock = super::context().socket(zmq::REP).map_err(|e| e.to_string())?;
            // Bound here, before any server socket exists: see the module docs.
            sock.bind(ZAP_ENDPOINT).map_err(|e| format!("cannot bind the ZAP handler: {e}"))?;
            std::thread::Builder::new()
                .name("zap".into())
                .spawn(move || serve(sock))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(TransportError::Zmq)
}

fn serve(sock: zmq::Socket) {
    loop {
        let frames = match sock.recv_multipart(0) {
            Ok(f) => f,
            Err(zmq::Error::ETERM) => return,
            Err(e) => {
                tracing::warn!(error = %e, "ZAP handler receive error");
                continue;
            }
        };
        let reply = answer(&frames);
        if let Err(e) = sock.send_multipart(reply, 0) {
            tracing::warn!(error = %e, "ZAP handler send error");
        }
    }
}

/// RFC 27 request: version, request id, domain, address, identity, mechanism, credentials…
/// Reply: version, request id, status code, status text, user id, metadata.
fn answer(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let request_id = frames.get(1).cloned().unwrap_or_default();
    let reply = |code: &str, text: &str, user: &str| {
        vec![
            b"1.0".to_vec(),
            request_id.clone(),
            code.as_bytes().to_vec(),
            text.as_bytes().to_vec(),
            user.as_bytes().to_vec(),
            Vec::new(),
        ]
    };
    if frames.len() < 6 || frames[0] != b"1.0" {
        return reply("500", "malformed ZAP request", "");
    }
    let text = |i: usize| String::from_utf8_lossy(&frames[i]).into_owned();
    let mechanism = text(5);
    let key = match (mechanism.as_str(), frames.get(6)) {
        ("CURVE", Some(k)) => match <[u8; 32]>::try_from(k.as_slice()) {
            Ok(k) => Some(CurvePublicKey::from_bytes(k)),
            Err(_) => return reply("400", "malformed CURVE key", ""),
        },
        ("CURVE", None) => return reply("400", "no CURVE key", ""),
        _ => None,
    };
    let req = ZapRequest { domain: text(2), address: text(3), key };
    let auth = registry().lock().ok().and_then(|r| r.get(&req.domain).cloned());
    let Some(auth) = auth else {
        return reply("400", "unknown ZAP domain", "");
    };
    match auth.authorize(&req) {
        Ok(user) => reply("200", "OK", &user),
        Err(why) => {
            tracing::debug!(domain = %req.domain, address = %req.address, %why, "ZAP refused a client");
            reply("400", &why, "")
        }
    }
}
