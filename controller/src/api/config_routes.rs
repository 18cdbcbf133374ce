//! `/api/v1/config`: startup configuration documents (the CLI's `meshlift config`), same roles,
//! same journal: `GET` (viewer) a node's effective document and the digest it runs, or every
//! stored document; `POST` (operator) a new version of a scope's document, or its removal.

use super::problem::Problem;
use super::routes::{ack_message, ask, parse_json, parse_query, Auth};
use super::ApiState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::Json;
use meshlift_protocol as p;
use meshlift_protocol::Message;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A config change as JSON: exactly one of `node`, `board`, `fleet`; `text` (JSON or TOML, at most
/// 64 KiB) or `clear`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
    #[serde(default)]
    pub fleet: bool,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub clear: bool,
    /// Journaled with who asked.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One stored document version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigDocDto {
    /// `node:NAME`, `board:ID` or `fleet`.
    pub scope: String,
    pub version: u64,
    pub sha256: String,
    pub text: String,
    pub who: String,
    pub reason: Option<String>,
    pub at: u64,
}

/// A node's effective document and the digest it reports running, or every document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigShowDto {
    pub node: Option<String>,
    pub effective: Option<ConfigDocDto>,
    pub running: Option<String>,
    /// With a node: effective digest == running digest.
    pub in_sync: Option<bool>,
    pub documents: Vec<ConfigDocDto>,
}

impl From<&p::ConfigDoc> for ConfigDocDto {
    fn from(d: &p::ConfigDoc) -> Self {
        ConfigDocDto {
            scope: d.scope.label(),
            version: d.version,
            sha256: d.sha256.to_hex(),
            text: d.text.clone(),
            who: d.who.clone(),
            reason: d.reason.clone(),
            at: d.at,
        }
    }
}

/// CONFIG_SHOW_REQ.
#[utoipa::path(get, path = "/api/v1/config", tag = "config", security(("bearer" = [])),
    params(("node" = Option<String>, Query, description = "a node: its effective document and running digest")),
    responses((status = 200, body = ConfigShowDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn config_show(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<ConfigShowDto>, Problem> {
    let q = parse_query(q.as_deref(), &["node"])?;
    let node = q.get("node").cloned();
    match ask(&s, c, Message::ConfigShowReq(p::ConfigShowReq { node })).await? {
        Message::ConfigShow(show) => Ok(Json(ConfigShowDto {
            in_sync: show.node.as_ref().map(|_| show.effective.as_ref().map(|d| d.sha256) == show.running),
            node: show.node.clone(),
            effective: show.effective.as_ref().map(ConfigDocDto::from),
            running: show.running.map(|d| d.to_hex()),
            documents: show.documents.iter().map(ConfigDocDto::from).collect(),
        })),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// CONFIG_SET_REQ (operator), journaled.
#[utoipa::path(post, path = "/api/v1/config", tag = "config", security(("bearer" = [])),
    request_body = ConfigBody,
    responses((status = 200, body = super::dto::AckDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn config_set(
    State(s): State<ApiState>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<super::dto::AckDto>, Problem> {
    let b: ConfigBody = parse_json(&body)?;
    let scope = match (b.node, b.board, b.fleet) {
        (Some(n), None, false) => p::ConfigScope::Node(n),
        (None, Some(bd), false) => p::ConfigScope::Board(bd),
        (None, None, true) => p::ConfigScope::Fleet,
        _ => return Err(Problem::bad_field("node", "give exactly one of node, board, fleet")),
    };
    let text = match (b.text, b.clear) {
        (Some(t), false) => Some(t),
        (None, true) => None,
        _ => return Err(Problem::bad_field("text", "give text or clear = true")),
    };
    let req = p::ConfigSetReq { scope, text, operator: p::Operator { who: String::new(), reason: b.reason } };
    let message = ack_message(ask(&s, c, Message::ConfigSetReq(req)).await?)?;
    Ok(Json(super::dto::AckDto { message }))
}
