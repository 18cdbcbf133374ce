//! The `/api/v1` handlers. Each authenticates, turns JSON into the app socket's message, hands it
//! to the controller loop ([`ApiState::call`]) and maps the reply: an `Ack` that refuses is a 409
//! with the engine's reason, a role refusal a 403, bad input a 400 naming the field.

use super::dto::*;
use super::problem::Problem;
use super::{ApiOp, ApiReply, ApiState};
use crate::auth::Role;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Json;
use futures::StreamExt;
use meshlift_protocol as p;
use meshlift_protocol::Message;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use utoipa::OpenApi;

/// Reads and commands: the loop answers within a turn; a minute means it is stuck.
const CALL_WAIT: Duration = Duration::from_secs(60);
/// An image add verifies and hashes the whole file and builds its torrent.
const IMAGE_WAIT: Duration = Duration::from_secs(15 * 60);
/// Largest JSON body.
const JSON_MAX: usize = 1 << 20;

#[derive(OpenApi)]
#[openapi(
    info(title = "meshlift controller API", description = "Operator requests of the app socket over HTTP/JSON. Bearer tokens: `meshlift token new`."),
    paths(whoami, list_images, upload_image, delete_image, create_upgrade, abort, state, commit_plan, nodes, journal, map, golden_show, golden_change, super::config_routes::config_show, super::config_routes::config_set, super::events::events, openapi, super::fleet::versions, super::fleet::tag_image, super::fleet::list_snapshots, super::fleet::show_snapshot, super::fleet::create_snapshot, super::fleet::delete_snapshot, super::fleet::restore_snapshot),
    components(schemas(Problem, WhoAmI, AckDto, Accepted, ImageDto, NodeDto, NodePage, SlotsDto, SlotDto, StateDto, RequestDto, BatchNodeDto, OutcomeDto, FinishedDto, CommitPlanDto, CostDto, NodeReasonDto, JournalDto, MapDto, MapSite, MapNode, MapLink, EventDto, NodeChange, UpgradeRequestBody, UpgradeKind, ApPolicyDto, StrategyDto, AbortBody, CommitPlanBody, GoldenBody, GoldenDto, GoldenBoardDto, GoldenWaveDto, GoldenBlacklistDto, GoldenQuarantineDto, super::fleet::VersionsDto, super::fleet::NodeVersionsDto, super::fleet::SlotVersionDto, super::fleet::VersionTotalDto, super::fleet::TagBody, super::fleet::SnapshotDto, super::fleet::SnapshotNodeDto, super::fleet::SnapshotImageDto, super::fleet::CampaignDto, super::fleet::CampaignStepDto, super::fleet::SnapshotBody, super::fleet::RestoreBody, super::fleet::RestoreDto, super::config_routes::ConfigBody, super::config_routes::ConfigDocDto, super::config_routes::ConfigShowDto)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router(api: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/images", get(list_images))
        .route("/api/v1/images", post(upload_image).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/images/{name}", delete(delete_image))
        .route("/api/v1/upgrades", post(create_upgrade))
        .route("/api/v1/abort", post(abort))
        .route("/api/v1/state", get(state))
        .route("/api/v1/commit-plan", post(commit_plan))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/journal", get(journal))
        .route("/api/v1/map", get(map))
        .route("/api/v1/golden", get(golden_show).post(golden_change))
        .route(
            "/api/v1/config",
            get(super::config_routes::config_show).post(super::config_routes::config_set),
        )
        .route("/api/v1/events", get(super::events::events))
        .route("/api/v1/versions", get(super::fleet::versions))
        .route("/api/v1/images/{name}/tags", post(super::fleet::tag_image))
        .route("/api/v1/snapshots", get(super::fleet::list_snapshots).post(super::fleet::create_snapshot))
        .route(
            "/api/v1/snapshots/{name}",
            get(super::fleet::show_snapshot).delete(super::fleet::delete_snapshot),
        )
        .route("/api/v1/snapshots/{name}/restore", post(super::fleet::restore_snapshot))
        .fallback(|| async { Problem::not_found("no such route; see /api/v1/openapi.json") })
        .with_state(api)
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// The authenticated caller (401 otherwise).
pub struct Auth(pub super::tokens::Caller);

impl FromRequestParts<ApiState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        state.authenticate(bearer(&parts.headers)).map(Auth)
    }
}

/// A JSON body into `T`, or a 400 naming the field (`serde_path_to_error` gives its path).
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    if body.len() > JSON_MAX {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Body too large",
            format!("JSON bodies are limited to {JSON_MAX} bytes"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // An unknown field is named by serde in the message; its path is the parent's.
        let msg = inner.to_string();
        let field = match msg.strip_prefix("unknown field `") {
            Some(rest) => rest.split('`').next().unwrap_or("").to_string(),
            None if path == "." => "body".to_string(),
            None => path,
        };
        Problem::bad_field(field, msg)
    })
}

/// Query parameters as a map, refusing any key not in `known` (a typo is named, not ignored).
pub(super) fn parse_query(raw: Option<&str>, known: &[&str]) -> Result<HashMap<String, String>, Problem> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(Problem::bad_field(
                k.into_owned(),
                format!("unknown query parameter; known: {}", known.join(", ")),
            ));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str) -> Result<Option<T>, Problem> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => {
            v.parse().map(Some).map_err(|_| Problem::bad_field(key, format!("{v:?} is not a valid number")))
        }
    }
}

/// The loop's reply, for requests answered with a plain `Ack`.
fn ack(reply: ApiReply) -> Result<String, Problem> {
    match reply {
        ApiReply::Message(m) => ack_message(*m),
        other => unexpected(other),
    }
}

pub(super) fn ack_message(m: Message) -> Result<String, Problem> {
    match m {
        Message::Ack(a) if a.success => Ok(a.message),
        Message::Ack(a) => Err(Problem::refused(a.message)),
        _ => Err(Problem::internal("the controller answered with an unexpected message")),
    }
}

fn unexpected<T>(reply: ApiReply) -> Result<T, Problem> {
    match reply {
        ApiReply::Forbidden(why) => Err(Problem::forbidden(why)),
        ApiReply::Message(m) => match *m {
            Message::Ack(a) if !a.success => Err(Problem::refused(a.message)),
            _ => Err(Problem::internal("the controller answered with an unexpected message")),
        },
        _ => Err(Problem::internal("the controller answered with an unexpected message")),
    }
}

/// Ask the loop with an operator message; its answer message (a refusal or a role refusal as
/// the matching problem).
pub(super) async fn ask(
    s: &ApiState,
    caller: super::tokens::Caller,
    msg: Message,
) -> Result<Message, Problem> {
    match s.call(caller, ApiOp::Message(Box::new(msg)), CALL_WAIT).await? {
        ApiReply::Message(m) => match *m {
            Message::Ack(a) if !a.success => Err(Problem::refused(a.message)),
            m => Ok(m),
        },
        other => unexpected(other),
    }
}

/// The OpenAPI document of this API (no token needed: it holds no data).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The caller's name and role, as the controller knows them from the token.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "meta", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn whoami(Auth(c): Auth) -> Json<WhoAmI> {
    Json(WhoAmI { name: c.name, role: c.role.as_str().into() })
}

/// The images the controller stores and seeds, with their tags, oldest version first; filtered
/// by `board`, `version` and `tag` (each optional).
#[utoipa::path(get, path = "/api/v1/images", tag = "images", security(("bearer" = [])),
    params(("board" = Option<String>, Query, description = "only images for this board"),
        ("version" = Option<String>, Query, description = "only this version"),
        ("tag" = Option<String>, Query, description = "only images with this tag")),
    responses((status = 200, body = [ImageDto]), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_images(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<ImageDto>>, Problem> {
    let q = parse_query(q.as_deref(), &["board", "version", "tag"])?;
    let req = p::fleet::ImageRecordsReq {
        board: q.get("board").cloned(),
        version: q.get("version").cloned(),
        tag: q.get("tag").cloned(),
    };
    match ask(&s, c, Message::ImageRecordsReq(req)).await? {
        Message::ImageRecords(r) => Ok(Json(
            r.images.iter().map(|r| ImageDto { tags: r.tags.clone(), ..ImageDto::from(&r.image) }).collect(),
        )),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// UPGRADE_ADD_IMAGE_REQ by upload: the body is the `.mlimg` file. It is streamed to a part file
/// (at most `[http] max_upload_bytes`), then added through the image store's normal path
/// (signature, manifest, hash, torrent). Answers once the image is verified and seeding.
#[utoipa::path(post, path = "/api/v1/images", tag = "images", security(("bearer" = [])),
    params(("reason" = Option<String>, Query, description = "journaled with who asked"),
        ("tag" = Option<String>, Query, description = "tags stored with the image, comma separated")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the .mlimg file"),
    responses((status = 201, body = ImageDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused by the image store (bad signature, …)", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json")))]
pub async fn upload_image(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<ImageDto>), Problem> {
    let q = parse_query(q.as_deref(), &["reason", "tag"])?;
    // Checked again in the loop; here so that a viewer's upload is never stored. The body is
    // still read (and dropped, up to the upload bound): a client that is still sending when
    // the connection closes sees a broken pipe instead of the 403.
    if c.role < Role::Operator {
        let mut stream = body.into_data_stream();
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > s.max_upload() {
                break;
            }
        }
        return Err(Problem::forbidden(format!(
            "image add needs role operator; {} has role {}",
            c.name,
            c.role.as_str()
        )));
    }
    let part = UploadFile(s.next_upload_path());
    let mut file =
        tokio::fs::File::create(&part.0).await.map_err(|e| Problem::internal(format!("upload file: {e}")))?;
    let max = s.max_upload();
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_field("body", format!("upload interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > max {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Upload too large",
                format!("images are limited to {max} bytes ([http] max_upload_bytes)"),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| Problem::internal(format!("upload file: {e}")))?;
    }
    file.flush().await.map_err(|e| Problem::internal(format!("upload file: {e}")))?;
    drop(file);
    if received == 0 {
        return Err(Problem::bad_field("body", "empty: send the .mlimg file as the request body"));
    }
    let req = p::UpgradeAddImageReq {
        image_url: part.0.display().to_string(),
        operator: p::Operator { who: String::new(), reason: q.get("reason").cloned() },
        tags: q.get("tag").map_or_else(Vec::new, |t| t.split(',').map(|s| s.trim().to_string()).collect()),
    };
    match s.call(c, ApiOp::Message(Box::new(Message::UpgradeAddImageReq(req))), IMAGE_WAIT).await? {
        ApiReply::Image(img) => Ok((StatusCode::CREATED, Json(ImageDto::from(img.as_ref())))),
        other => unexpected(other),
    }
}

/// An uploaded file, removed when the request ends however it ends (the image store has its own
/// copy by then, or the add failed).
struct UploadFile(std::path::PathBuf);

impl Drop for UploadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// UPGRADE_DEL_IMAGE_REQ. Refused (409) while a queued or running request needs the image.
#[utoipa::path(delete, path = "/api/v1/images/{name}", tag = "images", security(("bearer" = [])),
    params(("name" = String, Path, description = "image name"), ("reason" = Option<String>, Query, description = "journaled")),
    responses((status = 200, body = AckDto), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_image(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<AckDto>, Problem> {
    let q = parse_query(q.as_deref(), &["reason"])?;
    let req = p::UpgradeDelImageReq {
        name,
        operator: p::Operator { who: String::new(), reason: q.get("reason").cloned() },
    };
    let reply = s.call(c, ApiOp::Message(Box::new(Message::UpgradeDelImageReq(req))), IMAGE_WAIT).await?;
    Ok(Json(AckDto { message: ack(reply)? }))
}

/// UPGRADE_GROUP_REQ: queue a prepare, commit, full upgrade or revert (`"type": "revert"`), or
/// send a reset.
#[utoipa::path(post, path = "/api/v1/upgrades", tag = "upgrades", security(("bearer" = [])),
    request_body = UpgradeRequestBody,
    responses((status = 202, body = Accepted), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_upgrade(
    State(s): State<ApiState>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<(StatusCode, Json<Accepted>), Problem> {
    let b: UpgradeRequestBody = parse_json(&body)?;
    let default_id = format!("api-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"));
    let req = b.into_request(default_id).map_err(|(field, why)| Problem::bad_field(field, why))?;
    let id = req.ur_req.upgrade_req_id.clone();
    let message = ack_message(ask(&s, c, Message::UpgradeGroupReq(req)).await?)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { request_id: id, message })))
}

/// UPGRADE_ABORT_REQ.
#[utoipa::path(post, path = "/api/v1/abort", tag = "upgrades", security(("bearer" = [])),
    request_body = AbortBody,
    responses((status = 200, body = AckDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn abort(State(s): State<ApiState>, Auth(c): Auth, body: Bytes) -> Result<Json<AckDto>, Problem> {
    let b: AbortBody = parse_json(&body)?;
    if !b.all && b.request_ids.is_empty() {
        return Err(Problem::bad_field("request_ids", "name the requests to abort, or set all = true"));
    }
    let req = p::UpgradeAbortReq {
        abort_all: b.all,
        req_ids: b.request_ids,
        reset_status: b.reset_status,
        operator: p::Operator { who: String::new(), reason: b.reason },
    };
    Ok(Json(AckDto { message: ack_message(ask(&s, c, Message::UpgradeAbortReq(req)).await?)? }))
}

/// UPGRADE_STATE_REQ: the running request, its batch, queued and finished requests, outcomes.
#[utoipa::path(get, path = "/api/v1/state", tag = "upgrades", security(("bearer" = [])),
    responses((status = 200, body = StateDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn state(State(s): State<ApiState>, Auth(c): Auth) -> Result<Json<StateDto>, Problem> {
    match ask(&s, c, Message::UpgradeStateReq(p::UpgradeStateReq {})).await? {
        Message::UpgradeStateDump(d) => Ok(Json(StateDto::from(&d))),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// UPGRADE_COMMIT_PLAN_REQ: the commit dry run with AP groups and each strategy's blast radius.
#[utoipa::path(post, path = "/api/v1/commit-plan", tag = "upgrades", security(("bearer" = [])),
    request_body = CommitPlanBody,
    responses((status = 200, body = CommitPlanDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn commit_plan(
    State(s): State<ApiState>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<CommitPlanDto>, Problem> {
    let b: CommitPlanBody = if body.is_empty() {
        CommitPlanBody { max_pops_per_batch: 1, ..Default::default() }
    } else {
        parse_json(&body)?
    };
    match ask(&s, c, Message::UpgradeCommitPlanReq(b.into())).await? {
        Message::UpgradeCommitPlan(pl) => Ok(Json(CommitPlanDto::from(&pl))),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// The node table, filtered by site, state and version, a page at a time.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", security(("bearer" = [])), params(NodeQuery),
    responses((status = 200, body = NodePage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn nodes(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<NodePage>, Problem> {
    let q = parse_query(q.as_deref(), &["site", "state", "version", "offset", "limit"])?;
    let offset: usize = number(&q, "offset")?.unwrap_or(0);
    let limit: usize = number(&q, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_field("limit", "between 1 and 1000"));
    }
    let dump = match ask(&s, c, Message::NodeStatusReq(p::NodeStatusReq {})).await? {
        Message::NodeStatusDump(d) => d,
        _ => return Err(Problem::internal("unexpected reply")),
    };
    let want_state = q.get("state").map(|s| s.to_ascii_uppercase());
    let rows: Vec<&p::NodeStatusRow> = dump
        .nodes
        .iter()
        .filter(|r| q.get("site").is_none_or(|s| &r.site == s))
        .filter(|r| q.get("version").is_none_or(|v| r.version.as_ref() == Some(v)))
        .filter(|r| {
            want_state.as_deref().is_none_or(|w| match &r.upgrade_status {
                Some(u) => u.us_type.as_str() == w,
                None => w == "UNKNOWN",
            })
        })
        .collect();
    let total = rows.len();
    let nodes = rows.into_iter().skip(offset).take(limit).map(NodeDto::from).collect();
    Ok(Json(NodePage { total, offset, limit, nodes }))
}

/// The journal: operator commands (who, why) and transitions, oldest first.
#[utoipa::path(get, path = "/api/v1/journal", tag = "nodes", security(("bearer" = [])), params(JournalQuery),
    responses((status = 200, body = [JournalDto]), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn journal(
    State(s): State<ApiState>,
    Auth(c): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<JournalDto>>, Problem> {
    let q = parse_query(q.as_deref(), &["after", "last", "limit"])?;
    let after: Option<i64> = number(&q, "after")?;
    let last: Option<u32> = number(&q, "last")?;
    let limit: u32 = number(&q, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_field("limit", "between 1 and 1000"));
    }
    if last.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(Problem::bad_field("last", "between 1 and 1000"));
    }
    match s.call(c, ApiOp::Journal { after, last, limit }, CALL_WAIT).await? {
        ApiReply::Journal(Ok(lines)) => Ok(Json(lines.iter().map(JournalDto::from).collect())),
        ApiReply::Journal(Err(e)) => Err(Problem::internal(format!("journal: {e}"))),
        other => unexpected(other),
    }
}

/// The mesh for a map: sites with coordinates, nodes, links with their live state.
#[utoipa::path(get, path = "/api/v1/map", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, body = MapDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn map(State(s): State<ApiState>, Auth(c): Auth) -> Result<Json<MapDto>, Problem> {
    match s.call(c, ApiOp::Map, CALL_WAIT).await? {
        ApiReply::Map(t) => Ok(Json(MapDto::from(t.as_ref()))),
        other => unexpected(other),
    }
}

/// GOLDEN_SHOW_REQ: the golden-image loop's targets, waves, window, blacklist, quarantines.
#[utoipa::path(get, path = "/api/v1/golden", tag = "golden", security(("bearer" = [])),
    responses((status = 200, body = GoldenDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn golden_show(State(s): State<ApiState>, Auth(c): Auth) -> Result<Json<GoldenDto>, Problem> {
    match ask(&s, c, Message::GoldenShowReq(p::GoldenShowReq {})).await? {
        Message::GoldenShow(g) => Ok(Json(GoldenDto::from(&g))),
        _ => Err(Problem::internal("unexpected reply")),
    }
}

/// GOLDEN_REQ: change the golden-image loop (operator; `unquarantine` admin), journaled.
#[utoipa::path(post, path = "/api/v1/golden", tag = "golden", security(("bearer" = [])),
    request_body = GoldenBody,
    responses((status = 200, body = AckDto), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn golden_change(
    State(s): State<ApiState>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<AckDto>, Problem> {
    let b: GoldenBody = parse_json(&body)?;
    let message = ack_message(ask(&s, c, Message::GoldenReq(b.into_request())).await?)?;
    Ok(Json(AckDto { message }))
}
