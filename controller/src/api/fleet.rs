//! `/api/v1` routes of the fleet operations (issue 17): versions, image records and tags,
//! snapshots. Same path as every other route: JSON into the app socket's message, the loop's role
//! check and journal, the reply mapped to JSON or a problem document.

use super::dto::{AckDto, CommitPlanDto, NodeReasonDto};
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

/// An image as a slot held it when the snapshot was taken.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotImageDto {
    pub version: String,
    pub sha256: Option<String>,
    pub confirmed: bool,
}

impl From<&f::SnapshotImage> for SnapshotImageDto {
    fn from(i: &f::SnapshotImage) -> Self {
        SnapshotImageDto {
            version: i.version.clone(),
            sha256: i.sha256.map(|d| d.to_hex()),
            confirmed: i.confirmed,
        }
    }
}

/// One node of a snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotNodeDto {
    pub node: String,
    pub site: String,
    pub board: String,
    pub active: SnapshotImageDto,
    pub standby: Option<SnapshotImageDto>,
    pub image_name: Option<String>,
    pub config_digest: Option<String>,
    pub reported_at: u64,
}

/// A snapshot: what ran where, when, who took it and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotDto {
    pub name: String,
    pub created_at: u64,
    pub created_by: String,
    pub reason: Option<String>,
    pub nodes: Vec<SnapshotNodeDto>,
    pub skipped: Vec<NodeReasonDto>,
}

impl From<&f::Snapshot> for SnapshotDto {
    fn from(s: &f::Snapshot) -> Self {
        SnapshotDto {
            name: s.name.clone(),
            created_at: s.created_at,
            created_by: s.created_by.clone(),
            reason: s.reason.clone(),
            nodes: s
                .nodes
                .iter()
                .map(|n| SnapshotNodeDto {
                    node: n.node.clone(),
                    site: n.site.clone(),
                    board: n.board.clone(),
                    active: SnapshotImageDto::from(&n.active),
                    standby: n.standby.as_ref().map(SnapshotImageDto::from),
                    image_name: n.image_name.clone(),
                    config_digest: n.config_digest.map(|d| d.to_hex()),
                    reported_at: n.reported_at,
                })
                .collect(),
            skipped: s
                .skipped
                .iter()
                .map(|r| NodeReasonDto { node: r.node.clone(), reason: r.reason.clone() })
                .collect(),
        }
    }
}

/// One node's change in a restore campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignStepDto {
    pub node: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub image: Option<String>,
    pub downgrade: bool,
}

/// What restoring a snapshot takes (the dry run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignDto {
    pub snapshot: String,
    pub steps: Vec<CampaignStepDto>,
    pub unchanged: Vec<String>,
    pub left_out: Vec<NodeReasonDto>,
    pub missing_images: Vec<String>,
    pub plan: CommitPlanDto,
}

impl From<&f::SnapshotCampaign> for CampaignDto {
    fn from(c: &f::SnapshotCampaign) -> Self {
        CampaignDto {
            snapshot: c.snapshot.clone(),
            steps: c
                .steps
                .iter()
                .map(|s| CampaignStepDto {
                    node: s.node.clone(),
                    from_version: s.from_version.clone(),
                    to_version: s.to_version.clone(),
                    image: s.image.clone(),
                    downgrade: s.downgrade,
                })
                .collect(),
            unchanged: c.unchanged.clone(),
            left_out: c
                .left_out
                .iter()
                .map(|r| NodeReasonDto { node: r.node.clone(), reason: r.reason.clone() })
                .collect(),
            missing_images: c.missing_images.clone(),
            plan: CommitPlanDto::from(&c.plan),
        }
    }
}

/// Take a snapshot (operator).
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotBody {
    pub name: String,
    #[serde(default)]
    pub sites: Vec<String>,
    #[serde(default)]
    pub boards: Vec<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Restore a snapshot (operator), or only compute its campaign (`dry_run`, viewer).
#[derive(Debug, Clone, Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

async fn snapshots_of(
    s: &ApiState,
    c: super::tokens::Caller,
    name: Option<String>,
) -> Result<Vec<SnapshotDto>, Problem> {
    match ask(s, c, Message::SnapshotShowReq(f::SnapshotShowReq { name })).await? {
        Message::Snapshots(v) => Ok(v.snapshots.iter().map(SnapshotDto::from).collect()),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// Every snapshot, oldest first.
#[utoipa::path(get, path = "/api/v1/snapshots", tag = "snapshots", security(("bearer" = [])),
    responses((status = 200, body = [SnapshotDto]), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_snapshots(
    State(s): State<ApiState>,
    Auth(c): Auth,
) -> Result<Json<Vec<SnapshotDto>>, Problem> {
    Ok(Json(snapshots_of(&s, c, None).await?))
}

/// One snapshot.
#[utoipa::path(get, path = "/api/v1/snapshots/{name}", tag = "snapshots", security(("bearer" = [])),
    params(("name" = String, Path, description = "snapshot name")),
    responses((status = 200, body = SnapshotDto), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no such snapshot", body = Problem, content_type = "application/problem+json")))]
pub async fn show_snapshot(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
) -> Result<Json<SnapshotDto>, Problem> {
    let mut v = snapshots_of(&s, c, Some(name)).await?;
    v.pop().map(Json).ok_or_else(|| Problem::internal("empty reply"))
}

/// Take a snapshot of the filtered nodes (operator), journaled.
#[utoipa::path(post, path = "/api/v1/snapshots", tag = "snapshots", security(("bearer" = [])), request_body = SnapshotBody,
    responses((status = 200, body = AckDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_snapshot(
    State(s): State<ApiState>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<AckDto>, Problem> {
    let b: SnapshotBody = parse_json(&body)?;
    let filter = f::NodeFilter { sites: b.sites, boards: b.boards, versions: Vec::new(), nodes: b.nodes };
    let req = f::SnapshotReq {
        cmd: f::SnapshotCmd::Create { name: b.name, filter },
        operator: p::Operator { who: String::new(), reason: b.reason },
    };
    Ok(Json(AckDto { message: ack_message(ask(&s, c, Message::SnapshotReq(req)).await?)? }))
}

/// Delete a snapshot (admin), journaled.
#[utoipa::path(delete, path = "/api/v1/snapshots/{name}", tag = "snapshots", security(("bearer" = [])),
    params(("name" = String, Path, description = "snapshot name"), ("reason" = Option<String>, Query, description = "journaled")),
    responses((status = 200, body = AckDto), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_snapshot(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<AckDto>, Problem> {
    let q = parse_query(q.as_deref(), &["reason"])?;
    let req = f::SnapshotReq {
        cmd: f::SnapshotCmd::Delete { name },
        operator: p::Operator { who: String::new(), reason: q.get("reason").cloned() },
    };
    Ok(Json(AckDto { message: ack_message(ask(&s, c, Message::SnapshotReq(req)).await?)? }))
}

/// What a restore did or would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RestoreDto {
    /// Set for a dry run.
    pub campaign: Option<CampaignDto>,
    /// Set when the restore started.
    pub message: Option<String>,
}

/// Restore a snapshot through the golden-image reconciler (operator), or with `dry_run` only
/// compute the campaign (viewer). Refused (409) when an image it needs is gone from the store.
#[utoipa::path(post, path = "/api/v1/snapshots/{name}/restore", tag = "snapshots", security(("bearer" = [])),
    params(("name" = String, Path, description = "snapshot name")), request_body = RestoreBody,
    responses((status = 200, body = RestoreDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn restore_snapshot(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<RestoreDto>, Problem> {
    let b: RestoreBody = if body.is_empty() { RestoreBody::default() } else { parse_json(&body)? };
    let req = f::SnapshotReq {
        cmd: f::SnapshotCmd::Restore { name, dry_run: b.dry_run },
        operator: p::Operator { who: String::new(), reason: b.reason },
    };
    match ask(&s, c, Message::SnapshotReq(req)).await? {
        Message::SnapshotCampaign(c) => {
            Ok(Json(RestoreDto { campaign: Some(CampaignDto::from(c.as_ref())), message: None }))
        }
        m => Ok(Json(RestoreDto { campaign: None, message: Some(ack_message(m)?) })),
    }
}
