//! The controller's HTTP/JSON API under `/api/v1`, its OpenAPI document, the server-sent event
//! stream and the dashboard at `/` (issue 18).
//!
//! # How a call reaches the engine
//! A handler never touches the engine. It authenticates the bearer token ([`tokens`]), turns the
//! JSON into the protocol message the app socket would carry, and sends it with a oneshot reply
//! slot into the controller loop over a bounded channel ([`LoopMsg`], [`API_QUEUE`] deep). The loop
//! takes it on its own turn, like an app-socket request: the same
//! [`crate::auth::required_role`] check, the same journal line with the token's name as `who`,
//! the same 250 ms snapshots for state and plan. A full queue is a 503, never a wait without end.
//!
//! # Authentication
//! Every `/api/v1` route but `openapi.json` needs `Authorization: Bearer <token>`; tokens are
//! listed hashed in `[[security.api_tokens]]`. A missing or unknown token is 401, a known token
//! whose role is too low 403. The event stream also takes the token as `?access_token=`, because a
//! browser's `EventSource` cannot send headers; only that route reads it. `/metrics`, `/healthz`,
//! the tracker, the image files and the dashboard's static files stay open (the dashboard asks for
//! a token and keeps it in `sessionStorage`). `security.insecure` (plain ZeroMQ) does **not** open
//! the API: only `[http] api_without_tokens = true` does, and every call is then an admin named
//! `anonymous`, with a warning at start.
//!
//! # Panics
//! Nothing a client sends panics: bodies are bounded (JSON 1 MiB, uploads `max_upload_bytes`),
//! parse errors are 400 problem documents naming the field.

pub mod config_routes;
pub mod dashboard;
pub mod dto;
pub mod events;
pub mod fleet;
pub mod problem;
pub mod routes;
pub mod tls;
pub mod tokens;

use crate::auth::Role;
use meshlift_protocol::{Message, Operator, Topology, UpgradeImage};
use problem::Problem;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokens::{Caller, TokenBook};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use tokens::ApiTokenConfig;

/// Calls waiting for the loop; beyond this a caller gets a 503.
pub const API_QUEUE: usize = 64;
/// Events buffered per event-stream subscriber; one that falls further behind skips ahead (and
/// is told so by a `lagged` event) instead of holding memory for it.
pub const EVENT_BUFFER: usize = 1024;

/// `[http]` in the controller config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// PEM certificate chain; with `tls_key`, the HTTP server speaks only HTTPS (rustls).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest image upload accepted by `POST /api/v1/images`. Default 4 GiB.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Answer API calls without a token, as an admin named `anonymous`. Only for a lab on a
    /// closed machine. Default false; `security.insecure` does not change it.
    #[serde(default)]
    pub api_without_tokens: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            tls_cert: None,
            tls_key: None,
            max_upload_bytes: default_max_upload(),
            api_without_tokens: false,
        }
    }
}

fn default_max_upload() -> u64 {
    4 << 30
}

/// What the API sends into the controller loop.
pub enum LoopMsg {
    Call(ApiCall),
    /// An image add or delete the loop started has finished (its slow part ran in a task).
    ImageDone(ImageDone),
}

/// One API request for the loop.
pub struct ApiCall {
    pub caller: Caller,
    pub op: ApiOp,
    pub reply: oneshot::Sender<ApiReply>,
}

pub enum ApiOp {
    /// An operator message, exactly as the app socket would carry it (`who` is overwritten).
    Message(Box<Message>),
    /// Journal lines (viewer).
    Journal { after: Option<i64>, last: Option<u32>, limit: u32 },
    /// The live topology (viewer).
    Map,
}

pub enum ApiReply {
    Message(Box<Message>),
    /// The role check refused, with the same words the app socket answers.
    Forbidden(String),
    Journal(Result<Vec<crate::store::JournalEntry>, String>),
    Map(Box<Topology>),
    /// An image added by upload, verified and seeding.
    Image(Box<UpgradeImage>),
}

/// The result of an image store operation, back in the loop.
pub struct ImageDone {
    pub added: bool,
    pub result: Result<UpgradeImage, String>,
    pub operator: Operator,
    /// Tags to store with an added image.
    pub tags: Vec<String>,
    pub reply: oneshot::Sender<ApiReply>,
}

/// The loop's side of the API: what the event stream publishes. (The channel's receiving end is
/// returned beside it by [`new`], for the loop's `select!`.)
pub struct LoopSide {
    /// To send finished image work back into the loop.
    pub calls_tx: mpsc::Sender<LoopMsg>,
    pub events: broadcast::Sender<dto::EventDto>,
    /// Node rows as last published on the event stream, by topology position.
    pub published: Vec<dto::NodeChange>,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    calls: mpsc::Sender<LoopMsg>,
    tokens: TokenBook,
    without_tokens: bool,
    events: broadcast::Sender<dto::EventDto>,
    upload_dir: PathBuf,
    max_upload: u64,
    uploads: AtomicU64,
}

/// Why the API could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum ApiSetupError {
    #[error(transparent)]
    Tokens(#[from] tokens::TokenConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The upload directory cannot be created (permissions on the data directory).
    #[error("cannot create the upload directory {path}: {source}")]
    UploadDir { path: PathBuf, source: std::io::Error },
}

/// The API's two halves: the state its handlers share, and the loop's end.
pub fn new(
    token_cfg: &[ApiTokenConfig],
    http: &HttpConfig,
    data_dir: &std::path::Path,
) -> Result<(ApiState, LoopSide, mpsc::Receiver<LoopMsg>), ApiSetupError> {
    let tokens = TokenBook::new(token_cfg)?;
    if http.api_without_tokens {
        tracing::warn!(
            "[http] api_without_tokens = true: anyone who reaches the HTTP port is an admin of the API"
        );
    } else if tokens.is_empty() {
        tracing::warn!(
            "no [[security.api_tokens]] configured: every /api/v1 call will be refused (meshlift token new)"
        );
    }
    let upload_dir = data_dir.join("uploads");
    std::fs::create_dir_all(&upload_dir)
        .map_err(|source| ApiSetupError::UploadDir { path: upload_dir.clone(), source })?;
    // Uploads cut off by a crash are never resumed.
    if let Ok(entries) = std::fs::read_dir(&upload_dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let (tx, rx) = mpsc::channel(API_QUEUE);
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let state = ApiState {
        inner: Arc::new(Inner {
            calls: tx.clone(),
            tokens,
            without_tokens: http.api_without_tokens,
            events: events.clone(),
            upload_dir,
            max_upload: http.max_upload_bytes,
            uploads: AtomicU64::new(0),
        }),
    };
    Ok((state, LoopSide { calls_tx: tx, events, published: Vec::new() }, rx))
}

/// `/api/v1/…` and the dashboard, to merge into the controller's router.
pub fn router(state: ApiState) -> axum::Router {
    routes::router(state.clone()).merge(dashboard::router())
}

impl ApiState {
    /// The caller of a request with `token` (from the header, or the event stream's query).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, Problem> {
        if self.inner.without_tokens {
            return Ok(Caller { name: "anonymous".into(), role: Role::Admin });
        }
        let Some(token) = token else {
            return Err(Problem::unauthorized("send Authorization: Bearer <token> (meshlift token new)"));
        };
        match self.inner.tokens.identify(token) {
            Some(c) => Ok(c.clone()),
            None => {
                tracing::warn!("API call with an unknown token refused");
                Err(Problem::unauthorized("this token is not in the controller's [[security.api_tokens]]"))
            }
        }
    }

    /// Send an operation to the controller loop and wait for its answer.
    pub async fn call(&self, caller: Caller, op: ApiOp, wait: Duration) -> Result<ApiReply, Problem> {
        let (reply, rx) = oneshot::channel();
        let msg = LoopMsg::Call(ApiCall { caller, op, reply });
        match tokio::time::timeout(Duration::from_secs(5), self.inner.calls.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Problem::unavailable("the controller is stopping")),
            Err(_) => {
                return Err(Problem::unavailable("the controller loop did not take the request within 5 s"))
            }
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(Problem::unavailable("the controller dropped the request (stopping)")),
            Err(_) => Err(Problem::unavailable(format!("no answer from the controller within {wait:?}"))),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<dto::EventDto> {
        self.inner.events.subscribe()
    }

    fn next_upload_path(&self) -> PathBuf {
        let n = self.inner.uploads.fetch_add(1, Ordering::Relaxed);
        self.inner.upload_dir.join(format!("{}-{n}.upload", std::process::id()))
    }

    fn max_upload(&self) -> u64 {
        self.inner.max_upload
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ControllerConfig;

    #[test]
    fn http_and_api_tokens_parse_with_paths_relative_to_the_config_and_typos_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.toml");
        let sha = "ab".repeat(32);
        std::fs::write(
            &path,
            format!(
                "topology_file = \"t.json\"\n[http]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/etc/k.pem\"\n\
                 [security]\n[[security.api_tokens]]\nname = \"nms\"\nrole = \"viewer\"\nsha256 = \"{sha}\"\n"
            ),
        )
        .unwrap();
        let cfg = ControllerConfig::load(&path).unwrap();
        assert_eq!(cfg.http.tls_cert, Some(dir.path().join("tls/cert.pem")));
        assert_eq!(cfg.http.tls_key, Some("/etc/k.pem".into()));
        assert!(!cfg.http.api_without_tokens, "tokens are required unless switched off explicitly");
        assert_eq!(cfg.http.max_upload_bytes, 4 << 30);
        assert_eq!(cfg.security.api_tokens.len(), 1);
        assert!(super::TokenBook::new(&cfg.security.api_tokens).is_ok());

        std::fs::write(&path, "topology_file = \"t.json\"\n[http]\ntls_crt = \"c.pem\"\n").unwrap();
        let err = ControllerConfig::load(&path).unwrap_err();
        assert!(err.to_string().contains("tls_crt"), "{err}");
    }

    #[tokio::test]
    async fn an_upload_over_the_bound_is_a_413_and_leaves_no_file() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let token = meshlift_protocol::api_token::token_from_secret(&[3; 32]);
        let entry = super::ApiTokenConfig {
            name: "otto".into(),
            role: crate::auth::Role::Operator,
            sha256: meshlift_protocol::api_token::token_sha256_hex(&token),
        };
        let http = super::HttpConfig { max_upload_bytes: 1000, ..Default::default() };
        let (state, _side, _rx) = super::new(&[entry], &http, dir.path()).unwrap();
        let app = super::router(state);
        let req = |body: Vec<u8>, token: Option<&str>| {
            let mut b = axum::http::Request::post("/api/v1/images");
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            b.body(axum::body::Body::from(body)).unwrap()
        };
        let resp = app.clone().oneshot(req(vec![7; 5000], Some(&token))).await.unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads")).unwrap().count(),
            0,
            "the part file is gone"
        );
        let resp = app.oneshot(req(vec![7; 10], None)).await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
}
