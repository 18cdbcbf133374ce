//! `/api/v1` routes of the fleet operations (issue 17): versions, image records and tags,
//! snapshots. Same path as every other route: JSON into the app socket's message, the loop's role
//! check and journal, the reply mapped to JSON or a problem document.

use super::dto::AckDto;
use super::problem::Problem;
use super::routes::{ack_message, ask, parse_json, parse_query, Auth};
use super::ApiState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use meshlift_protocol as p;
use meshlift_protocol::fleet as f;
use meshlift_protocol::Message;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};

/// A comma-separated query value as a list (`site=A,B`).
fn list(q: &HashMap<String, String>, key: &str) -> Vec<String> {
    q.get(key)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Filters of `GET /api/v1/versions`: comma-separated lists, each empty = any.
#[derive(Debug, Clone, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Only nodes of these sites.
    pub site: Option<String>,
    /// Only nodes of these boards.
    pub board: Option<String>,
    /// Only nodes whose active slot holds one of these versions.
    pub version: Option<String>,
    /// Only these nodes.
    pub node: Option<String>,
}

/// One slot of a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotVersionDto {
    pub slot: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub confirmed: bool,
}

impl From<&p::SlotReport> for SlotVersionDto {
    fn from(s: &p::SlotReport) -> Self {
        SlotVersionDto {
            slot: s.slot.as_str().into(),
            version: s.version.clone(),
            sha256: s.sha256.map(|d| d.to_hex()),
            confirmed: s.confirmed,
        }
    }
}

/// One node's active and standby image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeVersionsDto {
    pub name: String,
    pub site: String,
    pub board: Option<String>,
    pub online: bool,
    pub active: Option<SlotVersionDto>,
    pub standby: Option<SlotVersionDto>,
    pub on_trial: bool,
    pub last_seen: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionTotalDto {
    pub board: String,
    pub version: String,
    pub nodes: u32,
}

/// The fleet's versions with totals (active version; `unknown` for nodes that never reported).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionsDto {
    pub nodes: Vec<NodeVersionsDto>,
    pub by_version: BTreeMap<String, u32>,
    pub by_board: BTreeMap<String, u32>,
    pub by_board_version: Vec<VersionTotalDto>,
}

impl From<&f::FleetVersions> for VersionsDto {
    fn from(v: &f::FleetVersions) -> Self {
        VersionsDto {
            nodes: v
                .nodes
                .iter()
                .map(|n| NodeVersionsDto {
                    name: n.name.clone(),
                    site: n.site.clone(),
                    board: n.board.clone(),
                    online: n.online,
                    active: n.active.as_ref().map(SlotVersionDto::from),
                    standby: n.standby.as_ref().map(SlotVersionDto::from),
                    on_trial: n.on_trial,
                    last_seen: n.last_seen,
                })
                .collect(),
            by_version: v.by_version.clone(),
            by_board: v.by_board.clone(),
            by_board_version: v
                .by_board_version
                .iter()
                .map(|t| VersionTotalDto {
                    board: t.board.clone(),
                    version: t.version.clone(),
                    nodes: t.nodes,
                })
                .collect(),
        }
    }
}

/// Active and standby version of every node (DMI `GetSoftwareVersion`), filtered, with totals.
#[utoipa::path(get, path = "/api/v1/versions", tag = "nodes", security(("bearer" = [])), params(VersionsQuery),
    responses((status = 200, body = VersionsDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn versions(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<VersionsDto>, Problem> {
    let q = parse_query(q.as_deref(), &["site", "board", "version", "node"])?;
    let filter = f::NodeFilter {
        sites: list(&q, "site"),
        boards: list(&q, "board"),
        versions: list(&q, "version"),
        nodes: list(&q, "node"),
    };
    match ask(&s, c, Message::VersionsReq(f::VersionsReq { filter })).await? {
        Message::FleetVersions(v) => Ok(Json(VersionsDto::from(&v))),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// Tags to add to and remove from an image.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// Journaled with who asked.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Tag or untag an image (operator), journaled. `name` may be a selector (`latest`, `earliest:BOARD`).
#[utoipa::path(post, path = "/api/v1/images/{name}/tags", tag = "images", security(("bearer" = [])),
    params(("name" = String, Path, description = "image name or selector")), request_body = TagBody,
    responses((status = 200, body = AckDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn tag_image(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<AckDto>, Problem> {
    let b: TagBody = parse_json(&body)?;
    let req = f::ImageTagReq {
        name,
        add: b.add,
        remove: b.remove,
        operator: p::Operator { who: String::new(), reason: b.reason },
    };
    Ok(Json(AckDto { message: ack_message(ask(&s, c, Message::ImageTagReq(req)).await?)? }))
}
