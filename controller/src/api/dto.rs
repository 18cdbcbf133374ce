//! The JSON shapes of the HTTP API, with their OpenAPI schemas.
//!
//! The protocol types are bincode-first (see `meshlift_protocol::messages`); these mirror them
//! for JSON with plain names (`"FLASHED"`, `"succeeded"`, `"fewest-batches"`) and are converted
//! explicitly, so the published schema is exactly what is sent. Request bodies refuse unknown
//! fields: a typo is a 400 naming it, never a silent default.

use meshlift_protocol as p;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------- requests

/// What an upgrade request asks for (`UpgradeReqType`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeKind {
    Prepare,
    Commit,
    Full,
    Reset,
    /// REVERT_TO_STANDBY (DMI `RevertToStandbyImage`): boot each node's standby slot where it
    /// holds an image confirmed on that node; batches as for a commit.
    Revert,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApPolicyDto {
    #[default]
    Group,
    DependentsFirst,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyDto {
    #[default]
    Terragraph,
    FewestBatches,
}

/// UPGRADE_GROUP_REQ as JSON: the same fields, Terragraph's defaults when left out. `nodes`
/// empty means the whole network (minus `exclude_nodes`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequestBody {
    #[serde(rename = "type")]
    pub kind: UpgradeKind,
    /// Request id; default `api-<UTC timestamp>`.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Image name in the controller's store (prepare, full).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub exclude_nodes: Vec<String>,
    /// Per-batch timeout, seconds (> 0 except for reset). Default 600.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    #[serde(default)]
    pub skip_failure: bool,
    #[serde(default)]
    pub skip_pop_failure: bool,
    /// Skip nodes already running it; on commit the flashed image must be it.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub skip_links: Vec<String>,
    /// Commit: < 0 all at once, 0 staged unlimited, > 0 at most N nodes per batch.
    #[serde(default)]
    pub limit: i64,
    #[serde(default = "default_retry")]
    pub retry_limit: u32,
    #[serde(default)]
    pub ap_policy: ApPolicyDto,
    #[serde(default = "default_pops")]
    pub max_pops_per_batch: u32,
    #[serde(default)]
    pub strategy: StrategyDto,
    #[serde(default)]
    pub allow_downgrade: bool,
    #[serde(default)]
    pub schedule_to_commit_s: u64,
    /// Trial-boot confirm timeout; 0 = the controller's default.
    #[serde(default)]
    pub confirm_timeout_s: u64,
    #[serde(default)]
    pub download_timeout_s: Option<u64>,
    #[serde(default)]
    pub bt_stall_timeout_s: Option<u64>,
    /// Journaled with who asked.
    #[serde(default)]
    pub reason: Option<String>,
}

fn default_timeout() -> u64 {
    600
}
fn default_retry() -> u32 {
    3
}
fn default_pops() -> u32 {
    1
}

impl UpgradeRequestBody {
    /// The protocol request, or the field that is wrong. `who` is set by the loop from the token.
    pub fn into_request(self, default_id: String) -> Result<p::UpgradeGroupReq, (&'static str, String)> {
        let ur_type = match self.kind {
            UpgradeKind::Prepare => p::UpgradeReqType::PrepareUpgrade,
            UpgradeKind::Commit => p::UpgradeReqType::CommitUpgrade,
            UpgradeKind::Full => p::UpgradeReqType::FullUpgrade,
            UpgradeKind::Reset => p::UpgradeReqType::ResetStatus,
            UpgradeKind::Revert => p::UpgradeReqType::RevertToStandby,
        };
        if self.timeout_s == 0 && self.kind != UpgradeKind::Reset {
            return Err(("timeout_s", "must be above 0".into()));
        }
        if matches!(self.kind, UpgradeKind::Prepare | UpgradeKind::Full) && self.image.is_none() {
            return Err(("image", "a prepare or full upgrade needs the image to install".into()));
        }
        let id = self.request_id.unwrap_or(default_id);
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(("request_id", "1 to 128 printable characters".into()));
        }
        let mut ur = p::UpgradeReq::new(ur_type, id);
        ur.image_name = self.image;
        ur.allow_downgrade = self.allow_downgrade;
        ur.schedule_to_commit_s = self.schedule_to_commit_s;
        ur.confirm_timeout_s = self.confirm_timeout_s;
        ur.skip_links = self.skip_links.clone();
        if let Some(t) = self.download_timeout_s {
            ur.torrent_params.download_timeout_s = t;
        }
        if let Some(t) = self.bt_stall_timeout_s {
            ur.torrent_params.bt_stall_timeout_s = t;
        }
        let group =
            if self.nodes.is_empty() { p::UpgradeGroupType::Network } else { p::UpgradeGroupType::Nodes };
        let mut req = p::UpgradeGroupReq::new(group, ur, self.timeout_s);
        req.nodes = self.nodes;
        req.exclude_nodes = self.exclude_nodes;
        req.skip_failure = self.skip_failure;
        req.skip_pop_failure = self.skip_pop_failure;
        req.version = self.version;
        req.skip_links = self.skip_links;
        req.limit = self.limit;
        req.retry_limit = self.retry_limit;
        req.ap_policy = self.ap_policy.into();
        req.max_pops_per_batch = self.max_pops_per_batch;
        req.strategy = self.strategy.into();
        req.operator = p::Operator { who: String::new(), reason: self.reason };
        Ok(req)
    }
}

impl From<ApPolicyDto> for p::ApPolicy {
    fn from(a: ApPolicyDto) -> Self {
        match a {
            ApPolicyDto::Group => p::ApPolicy::Group,
            ApPolicyDto::DependentsFirst => p::ApPolicy::DependentsFirst,
        }
    }
}

impl From<StrategyDto> for p::PlanStrategy {
    fn from(s: StrategyDto) -> Self {
        match s {
            StrategyDto::Terragraph => p::PlanStrategy::Terragraph,
            StrategyDto::FewestBatches => p::PlanStrategy::FewestBatches,
        }
    }
}

fn strategy_name(s: p::PlanStrategy) -> &'static str {
    match s {
        p::PlanStrategy::Terragraph => "terragraph",
        p::PlanStrategy::FewestBatches => "fewest-batches",
    }
}

/// UPGRADE_ABORT_REQ as JSON.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    /// Abort the running and every queued request.
    #[serde(default)]
    pub all: bool,
    /// Or these request ids.
    #[serde(default)]
    pub request_ids: Vec<String>,
    /// Also send RESET_STATUS to every node of the aborted requests.
    #[serde(default)]
    pub reset_status: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// UPGRADE_COMMIT_PLAN_REQ as JSON (the dry run).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitPlanBody {
    #[serde(default)]
    pub limit: i64,
    #[serde(default)]
    pub exclude_nodes: Vec<String>,
    #[serde(default)]
    pub ap_policy: ApPolicyDto,
    #[serde(default = "default_pops")]
    pub max_pops_per_batch: u32,
    #[serde(default)]
    pub strategy: StrategyDto,
    /// Only nodes FLASHED with this version count as pending.
    #[serde(default)]
    pub version: Option<String>,
    /// Plan a revert: pending are the nodes whose standby slot holds an image confirmed there.
    #[serde(default)]
    pub revert: bool,
}

impl From<CommitPlanBody> for p::UpgradeCommitPlanReq {
    fn from(b: CommitPlanBody) -> Self {
        p::UpgradeCommitPlanReq {
            limit: b.limit,
            exclude_nodes: b.exclude_nodes,
            ap_policy: b.ap_policy.into(),
            max_pops_per_batch: b.max_pops_per_batch,
            strategy: b.strategy.into(),
            version: b.version,
            revert: b.revert,
        }
    }
}

/// Filters and paging of the node table.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NodeQuery {
    /// Only nodes of this site.
    pub site: Option<String>,
    /// Only nodes in this upgrade state (`FLASHED`, `CONFIRMED`, …; `unknown` = never reported).
    pub state: Option<String>,
    /// Only nodes running this version.
    pub version: Option<String>,
    /// Rows to skip. Default 0.
    pub offset: Option<usize>,
    /// Rows to return, 1..=1000. Default 100.
    pub limit: Option<usize>,
}

/// Which journal lines.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JournalQuery {
    /// Lines with a sequence number above this one, oldest first.
    pub after: Option<i64>,
    /// Or the last N lines (ignored when `after` is given).
    pub last: Option<u32>,
    /// At most this many lines, 1..=1000. Default 100.
    pub limit: Option<u32>,
}

/// Who and why, for image deletes (query string).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReasonQuery {
    /// Journaled with who asked.
    pub reason: Option<String>,
}

// ---------------------------------------------------------------- replies

/// The caller as the controller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub role: String,
}

/// An acknowledged command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AckDto {
    pub message: String,
}

/// A queued upgrade request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub request_id: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageDto {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub magnet_uri: String,
    pub http_uri: String,
    pub hardware_board_ids: Vec<String>,
    /// Tags stored with the image.
    pub tags: Vec<String>,
}

impl From<&p::UpgradeImage> for ImageDto {
    fn from(i: &p::UpgradeImage) -> Self {
        ImageDto {
            name: i.name.clone(),
            version: i.version.clone(),
            sha256: i.sha256.to_hex(),
            size: i.size,
            magnet_uri: i.magnet_uri.clone(),
            http_uri: i.http_uri.clone(),
            hardware_board_ids: i.hardware_board_ids.clone(),
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotDto {
    pub slot: String,
    pub version: Option<String>,
    pub confirmed: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotsDto {
    pub active: String,
    pub booted: String,
    pub a: SlotDto,
    pub b: SlotDto,
}

impl From<&p::SlotsReport> for SlotsDto {
    fn from(s: &p::SlotsReport) -> Self {
        let slot = |r: &p::SlotReport| SlotDto {
            slot: r.slot.as_str().into(),
            version: r.version.clone(),
            confirmed: r.confirmed,
        };
        SlotsDto {
            active: s.active.as_str().into(),
            booted: s.booted.as_str().into(),
            a: slot(&s.a),
            b: slot(&s.b),
        }
    }
}

/// One row of the node table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeDto {
    pub name: String,
    pub site: String,
    pub mac: String,
    pub pop: bool,
    pub online: bool,
    pub version: Option<String>,
    /// Upgrade state as last reported (`NONE`, `FLASHED`, `CONFIRMED`, …); null if never reported.
    pub state: Option<String>,
    /// The node's own words on its state (failure reason, progress).
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// Download progress, parts per million.
    pub progress_ppm: Option<u32>,
    pub slots: Option<SlotsDto>,
    /// UNIX ms of the last status report.
    pub last_seen: Option<u64>,
}

impl From<&p::NodeStatusRow> for NodeDto {
    fn from(r: &p::NodeStatusRow) -> Self {
        let us = r.upgrade_status.as_ref();
        NodeDto {
            name: r.name.clone(),
            site: r.site.clone(),
            mac: r.mac.clone(),
            pop: r.is_pop,
            online: r.online,
            version: r.version.clone(),
            state: us.map(|u| u.us_type.as_str().to_string()),
            reason: us.map(|u| u.reason.clone()).filter(|r| !r.is_empty()),
            request_id: us.map(|u| u.upgrade_req_id.clone()).filter(|r| !r.is_empty()),
            progress_ppm: us.and_then(|u| u.progress.as_ref()).map(|p| p.ppm()),
            slots: r.slots.as_ref().map(SlotsDto::from),
            last_seen: r.last_seen,
        }
    }
}

/// A page of the node table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodePage {
    /// Rows matching the filters (before paging).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub nodes: Vec<NodeDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestDto {
    pub request_id: String,
    /// `prepare`, `commit`, `full`, `reset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The stage running now.
    pub stage: String,
    pub image: Option<String>,
    pub version: Option<String>,
    pub nodes: Vec<String>,
    pub exclude_nodes: Vec<String>,
    pub limit: i64,
    pub strategy: String,
    pub who: String,
    pub reason: Option<String>,
    pub submitted_at: u64,
    pub started_at: Option<u64>,
}

fn kind_name(t: p::UpgradeReqType) -> &'static str {
    match t {
        p::UpgradeReqType::PrepareUpgrade => "prepare",
        p::UpgradeReqType::CommitUpgrade => "commit",
        p::UpgradeReqType::FullUpgrade => "full",
        p::UpgradeReqType::ResetStatus => "reset",
        p::UpgradeReqType::RevertToStandby => "revert",
    }
}

impl From<&p::RequestView> for RequestDto {
    fn from(v: &p::RequestView) -> Self {
        let r = &v.request;
        RequestDto {
            request_id: r.ur_req.upgrade_req_id.clone(),
            kind: kind_name(r.ur_req.ur_type).into(),
            stage: kind_name(v.stage).into(),
            image: r.ur_req.image_name.clone(),
            version: r.version.clone(),
            nodes: r.nodes.clone(),
            exclude_nodes: r.exclude_nodes.clone(),
            limit: r.limit,
            strategy: strategy_name(r.strategy).into(),
            who: r.operator.who.clone(),
            reason: r.operator.reason.clone(),
            submitted_at: v.submitted_at,
            started_at: v.started_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchNodeDto {
    pub node: String,
    pub state: String,
    /// What the controller waits for.
    pub detail: String,
    pub retries: u32,
    pub last_seen: Option<u64>,
    pub progress_ppm: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutcomeDto {
    pub request_id: String,
    pub stage: String,
    pub node: String,
    /// `succeeded`, `failed`, `fell_back`, `skipped_not_ready`, …
    pub outcome: String,
    pub reason: String,
    pub started_at: u64,
    pub finished_at: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinishedDto {
    pub request_id: String,
    pub success: bool,
    pub summary: String,
    pub finished_at: u64,
}

/// UPGRADE_STATE_DUMP as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StateDto {
    pub current: Option<RequestDto>,
    /// Index (from 1) of the in-flight batch in the current stage.
    pub batch_index: u32,
    pub batch: Vec<BatchNodeDto>,
    /// Nodes of the current request still waiting for a batch.
    pub pending_nodes: Vec<String>,
    pub done_batches: Vec<Vec<String>>,
    pub queued: Vec<RequestDto>,
    pub outcomes: Vec<OutcomeDto>,
    pub finished: Vec<FinishedDto>,
}

impl From<&p::UpgradeStateDump> for StateDto {
    fn from(d: &p::UpgradeStateDump) -> Self {
        StateDto {
            current: d.cur_req.as_ref().map(RequestDto::from),
            batch_index: d.cur_batch_index,
            batch: d
                .cur_batch
                .iter()
                .map(|b| BatchNodeDto {
                    node: b.node.clone(),
                    state: b.state.as_str().into(),
                    detail: b.detail.clone(),
                    retries: b.retries,
                    last_seen: b.last_seen,
                    progress_ppm: b.progress_ppm,
                })
                .collect(),
            pending_nodes: d.pending_nodes.clone(),
            done_batches: d.done_batches.clone(),
            queued: d.pending_reqs.iter().map(RequestDto::from).collect(),
            outcomes: d
                .outcomes
                .iter()
                .map(|o| OutcomeDto {
                    request_id: o.request_id.clone(),
                    stage: kind_name(o.stage).into(),
                    node: o.node.clone(),
                    outcome: o.outcome.as_str().into(),
                    reason: o.reason.clone(),
                    started_at: o.started_at,
                    finished_at: o.finished_at,
                })
                .collect(),
            finished: d
                .finished_reqs
                .iter()
                .map(|f| FinishedDto {
                    request_id: f.request_id.clone(),
                    success: f.success,
                    summary: f.summary.clone(),
                    finished_at: f.finished_at,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeReasonDto {
    pub node: String,
    pub reason: String,
}

/// What a whole plan costs under one strategy: its blast radius.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostDto {
    pub strategy: String,
    pub batches: u64,
    pub total_outages: u64,
    pub max_outages_per_site: u32,
    /// Sites down or cut off in the worst batch.
    pub largest_blast_radius: u64,
}

/// UPGRADE_COMMIT_PLAN as JSON: batches, AP groups (what each articulation-point site cuts off)
/// and the cost of each strategy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommitPlanDto {
    pub batches: Vec<Vec<String>>,
    pub ap_groups: BTreeMap<String, Vec<String>>,
    pub unplanned: Vec<NodeReasonDto>,
    pub filtered: Vec<NodeReasonDto>,
    pub warnings: Vec<String>,
    pub explanation: String,
    pub costs: Vec<CostDto>,
}

impl From<&p::UpgradeCommitPlan> for CommitPlanDto {
    fn from(pl: &p::UpgradeCommitPlan) -> Self {
        let nr = |v: &[p::NodeReason]| {
            v.iter().map(|n| NodeReasonDto { node: n.node.clone(), reason: n.reason.clone() }).collect()
        };
        CommitPlanDto {
            batches: pl.commit_batches.clone(),
            ap_groups: pl.ap_groups.clone(),
            unplanned: nr(&pl.unplanned),
            filtered: nr(&pl.filtered),
            warnings: pl.warnings.clone(),
            explanation: pl.explanation.clone(),
            costs: pl
                .costs
                .iter()
                .map(|c| CostDto {
                    strategy: strategy_name(c.strategy).into(),
                    batches: c.batches,
                    total_outages: c.total_outages,
                    max_outages_per_site: c.max_outages_per_site,
                    largest_blast_radius: c.largest_blast_radius,
                })
                .collect(),
        }
    }
}

/// One journal line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JournalDto {
    pub seq: i64,
    pub at: u64,
    /// `command` (an operator's, with who and why) or `transition`.
    pub kind: String,
    pub request_id: Option<String>,
    pub node: Option<String>,
    pub who: Option<String>,
    pub reason: Option<String>,
    pub message: String,
}

impl From<&crate::store::JournalEntry> for JournalDto {
    fn from(e: &crate::store::JournalEntry) -> Self {
        JournalDto {
            seq: e.seq,
            at: e.at,
            kind: match e.kind {
                crate::store::JournalKind::Command => "command".into(),
                crate::store::JournalKind::Transition => "transition".into(),
            },
            request_id: e.request_id.clone(),
            node: e.node.clone(),
            who: e.operator.as_ref().map(|o| o.who.clone()),
            reason: e.operator.as_ref().and_then(|o| o.reason.clone()),
            message: e.message.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapSite {
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapNode {
    pub name: String,
    pub site: String,
    pub pop: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapLink {
    pub name: String,
    pub a: String,
    pub z: String,
    pub wireless: bool,
    /// Up now, as the nodes at its ends last reported (the configured state before any report).
    pub alive: bool,
}

/// The mesh for the dashboard's map: sites with their coordinates, nodes, links with liveness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapDto {
    pub name: String,
    pub sites: Vec<MapSite>,
    pub nodes: Vec<MapNode>,
    pub links: Vec<MapLink>,
}

impl From<&p::Topology> for MapDto {
    fn from(t: &p::Topology) -> Self {
        MapDto {
            name: t.name.clone(),
            sites: t
                .sites
                .iter()
                .map(|s| MapSite {
                    name: s.name.clone(),
                    latitude: s.location.as_ref().map(|l| l.latitude),
                    longitude: s.location.as_ref().map(|l| l.longitude),
                })
                .collect(),
            nodes: t
                .nodes
                .iter()
                .map(|n| MapNode { name: n.name.clone(), site: n.site_name.clone(), pop: n.pop_node })
                .collect(),
            links: t
                .links
                .iter()
                .map(|l| MapLink {
                    name: l.name.clone(),
                    a: l.a_node_name.clone(),
                    z: l.z_node_name.clone(),
                    wireless: l.link_type == p::LinkType::Wireless,
                    alive: l.is_alive,
                })
                .collect(),
        }
    }
}

/// One server-sent event (`event:` is the `kind`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EventDto {
    /// An engine event: a transition or a command (the same line as the log).
    Engine { level: String, request_id: Option<String>, node: Option<String>, message: String },
    /// Nodes whose state, version or liveness changed since the last event.
    Nodes { nodes: Vec<NodeChange> },
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct NodeChange {
    pub name: String,
    pub state: Option<String>,
    pub version: Option<String>,
    pub online: bool,
}

/// A change to the golden-image loop (`GoldenCmd`), with why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum GoldenBody {
    /// Make `image` the target of `board` (or of every board it supports).
    SetTarget {
        #[serde(default)]
        board: Option<String>,
        image: String,
        #[serde(default)]
        reason: Option<String>,
    },
    UnsetTarget {
        board: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Enable {
        #[serde(default)]
        reason: Option<String>,
    },
    Disable {
        #[serde(default)]
        reason: Option<String>,
    },
    Pause {
        #[serde(default)]
        reason: Option<String>,
    },
    Resume {
        #[serde(default)]
        reason: Option<String>,
    },
    /// `"<days> <HH:MM-HH:MM>[,…] <IANA zone>"`; null = always open.
    SetWindow {
        #[serde(default)]
        window: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    BlacklistAdd {
        node: String,
        version: String,
        #[serde(default)]
        expires_at: Option<u64>,
        #[serde(default)]
        reason: Option<String>,
    },
    BlacklistDel {
        node: String,
        #[serde(default)]
        version: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Admin only.
    Unquarantine {
        version: String,
        #[serde(default)]
        reason: Option<String>,
    },
}

impl GoldenBody {
    pub fn into_request(self) -> p::GoldenReq {
        use p::GoldenCmd as C;
        let (cmd, reason) = match self {
            GoldenBody::SetTarget { board, image, reason } => (C::SetTarget { board, image }, reason),
            GoldenBody::UnsetTarget { board, reason } => (C::UnsetTarget { board }, reason),
            GoldenBody::Enable { reason } => (C::Enable, reason),
            GoldenBody::Disable { reason } => (C::Disable, reason),
            GoldenBody::Pause { reason } => (C::Pause, reason),
            GoldenBody::Resume { reason } => (C::Resume, reason),
            GoldenBody::SetWindow { window, reason } => (C::SetWindow { window }, reason),
            GoldenBody::BlacklistAdd { node, version, expires_at, reason } => {
                (C::BlacklistAdd { node, version, expires_at }, reason)
            }
            GoldenBody::BlacklistDel { node, version, reason } => (C::BlacklistDel { node, version }, reason),
            GoldenBody::Unquarantine { version, reason } => (C::Unquarantine { version }, reason),
        };
        p::GoldenReq { cmd, operator: p::Operator { who: String::new(), reason } }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldenWaveDto {
    pub label: String,
    pub request_id: String,
    pub nodes: Vec<String>,
    pub submitted_at: u64,
    pub finished_at: Option<u64>,
    pub upgraded: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldenBoardDto {
    pub board: String,
    pub image: String,
    pub version: String,
    pub nodes: u32,
    pub behind: u32,
    pub state: String,
    pub current_wave: Option<String>,
    pub waves: Vec<GoldenWaveDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldenBlacklistDto {
    pub node: String,
    pub version: String,
    pub reason: String,
    pub who: String,
    pub at: u64,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldenQuarantineDto {
    pub version: String,
    pub reason: String,
    pub at: u64,
    pub nodes: Vec<String>,
}

/// The golden-image loop's state (`meshlift golden show`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldenDto {
    pub enabled: bool,
    pub paused: bool,
    pub window: Option<String>,
    pub window_open: bool,
    pub next_window_open: Option<u64>,
    pub check_interval_s: u64,
    pub last_run_at: Option<u64>,
    pub boards: Vec<GoldenBoardDto>,
    pub blacklist: Vec<GoldenBlacklistDto>,
    pub quarantined: Vec<GoldenQuarantineDto>,
}

impl From<&p::GoldenShow> for GoldenDto {
    fn from(g: &p::GoldenShow) -> Self {
        GoldenDto {
            enabled: g.enabled,
            paused: g.paused,
            window: g.window.clone(),
            window_open: g.window_open,
            next_window_open: g.next_window_open,
            check_interval_s: g.check_interval_s,
            last_run_at: g.last_run_at,
            boards: g
                .boards
                .iter()
                .map(|b| GoldenBoardDto {
                    board: b.board.clone(),
                    image: b.image.clone(),
                    version: b.version.clone(),
                    nodes: b.nodes,
                    behind: b.behind,
                    state: b.state.clone(),
                    current_wave: b.current_wave.clone(),
                    waves: b
                        .waves
                        .iter()
                        .map(|w| GoldenWaveDto {
                            label: w.label.clone(),
                            request_id: w.request_id.clone(),
                            nodes: w.nodes.clone(),
                            submitted_at: w.submitted_at,
                            finished_at: w.finished_at,
                            upgraded: w.upgraded.clone(),
                            failed: w.failed.clone(),
                        })
                        .collect(),
                })
                .collect(),
            blacklist: g
                .blacklist
                .iter()
                .map(|b| GoldenBlacklistDto {
                    node: b.node.clone(),
                    version: b.version.clone(),
                    reason: b.reason.clone(),
                    who: b.who.clone(),
                    at: b.at,
                    expires_at: b.expires_at,
                })
                .collect(),
            quarantined: g
                .quarantined
                .iter()
                .map(|q| GoldenQuarantineDto {
                    version: q.version.clone(),
                    reason: q.reason.clone(),
                    at: q.at,
                    nodes: q.nodes.clone(),
                })
                .collect(),
        }
    }
}
