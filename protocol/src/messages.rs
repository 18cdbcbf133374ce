//! The upgrade interface: every message exchanged between operator tools, the controller and the
//! minions.
//!
//! Names and fields follow Terragraph's `Controller.thrift` (see
//! `shared/reference/terragraph-upgrade.md` §1.4) in Rust style, with these deliberate changes:
//! - integrity is SHA-256 ([`Sha256Digest`]), never MD5;
//! - operator requests carry `who` and an optional `reason`, journaled by the controller (FAS asks
//!   "why are you doing this?");
//! - status reports carry both slots, link states and fallback records, so the controller judges a
//!   commit by what the node booted and confirmed, not by a version string alone;
//! - the state dump carries per-node outcomes with reasons: nothing is dropped silently.
//!
//! Socket roles: operator tools and minions connect DEALERs to the controller's two ROUTER
//! sockets. Frames are `[app-id, envelope]`; see [`crate::codec`].
//!
//! Every type here must stay bincode-friendly: no `serde(flatten)`, no untagged enums, no
//! `skip_serializing_if`, no `serde_json::Value`.

use crate::sha::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds since the UNIX epoch. Wall-clock time as the sender saw it; used for display and
/// journaling, never for timeouts (those use the receiver's own clock).
pub type UnixMillis = u64;

/// Every message body. One enum so that the codec can refuse anything it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    // ---- operator → controller ----
    /// UPGRADE_GROUP_REQ (441): start a prepare / commit / full upgrade / reset. Reply: [`Ack`] whose
    /// message is the request id on success.
    UpgradeGroupReq(UpgradeGroupReq),
    /// UPGRADE_STATE_REQ (442). Reply: [`Message::UpgradeStateDump`].
    UpgradeStateReq(UpgradeStateReq),
    /// UPGRADE_ABORT_REQ (443). Reply: [`Ack`].
    UpgradeAbortReq(UpgradeAbortReq),
    /// UPGRADE_COMMIT_PLAN_REQ (444): dry run of the commit planner. Reply:
    /// [`Message::UpgradeCommitPlan`].
    UpgradeCommitPlanReq(UpgradeCommitPlanReq),
    /// UPGRADE_ADD_IMAGE_REQ (445): add an image from a path on the controller or an http(s) URL.
    /// Reply: [`Ack`] once the image is verified and seeding, or refused.
    UpgradeAddImageReq(UpgradeAddImageReq),
    /// UPGRADE_DEL_IMAGE_REQ (446). Reply: [`Ack`].
    UpgradeDelImageReq(UpgradeDelImageReq),
    /// UPGRADE_LIST_IMAGES_REQ (447). Reply: [`Message::UpgradeListImagesResp`].
    UpgradeListImagesReq(UpgradeListImagesReq),
    /// Per-node status table for `meshlift status`. Reply: [`Message::NodeStatusDump`].
    NodeStatusReq(NodeStatusReq),

    // ---- controller → operator ----
    /// UPGRADE_STATE_DUMP (451).
    UpgradeStateDump(UpgradeStateDump),
    /// UPGRADE_COMMIT_PLAN (452).
    UpgradeCommitPlan(UpgradeCommitPlan),
    /// UPGRADE_LIST_IMAGES_RESP (453).
    UpgradeListImagesResp(UpgradeListImagesResp),
    /// Reply to [`Message::NodeStatusReq`].
    NodeStatusDump(NodeStatusDump),

    // ---- controller ↔ minion ----
    /// UPGRADE_REQ (401): controller → minion.
    UpgradeReq(UpgradeReq),
    /// STATUS_REPORT: minion → controller every 5 s and at once on every state change.
    StatusReport(Box<StatusReport>),
    /// STATUS_REPORT_ACK: controller → minion. Carries refusals (a node not in the topology, a
    /// key enrolled for another node) and the request for a full report; the trial boot's
    /// "controller reachable" check counts it. Connection liveness is libzmq's (ZMTP heartbeats).
    StatusReportAck(StatusReportAck),

    // ---- generic ----
    /// E2EAck: success flag and a human-readable message.
    Ack(Ack),

    // ---- operator → controller: node keys (appended: earlier variants keep their numbers) ----
    /// Enroll (or replace) a node's CURVE public key: admin only, journaled. Reply: [`Ack`].
    NodeEnrollReq(NodeEnrollReq),
    /// List enrolled node keys. Reply: [`Message::NodeKeysResp`].
    NodeKeysReq(NodeKeysReq),
    /// Reply to [`Message::NodeKeysReq`].
    NodeKeysResp(NodeKeysResp),

    // ---- operator → controller: the golden-image loop (appended) ----
    /// Change the golden-image loop (target, pause, window, blacklist, quarantine), journaled
    /// with who and why. Reply: [`Ack`].
    GoldenReq(GoldenReq),
    /// The loop's state per board. Reply: [`Message::GoldenShow`].
    GoldenShowReq(GoldenShowReq),
    /// Reply to [`Message::GoldenShowReq`].
    GoldenShow(GoldenShow),

    // ---- operator → controller: fleet operations (issue 17; appended) ----
    /// Active and standby version of every node (DMI `GetSoftwareVersion`). Reply:
    /// [`Message::FleetVersions`].
    VersionsReq(crate::fleet::VersionsReq),
    /// Reply to [`Message::VersionsReq`].
    FleetVersions(crate::fleet::FleetVersions),
    /// Image records with tags, filtered. Reply: [`Message::ImageRecords`].
    ImageRecordsReq(crate::fleet::ImageRecordsReq),
    /// Reply to [`Message::ImageRecordsReq`].
    ImageRecords(crate::fleet::ImageRecords),
    /// Tag or untag an image. Reply: [`Ack`].
    ImageTagReq(crate::fleet::ImageTagReq),
    /// Create, delete or restore a snapshot. Reply: [`Ack`], or [`Message::SnapshotCampaign`]
    /// for a restore dry run.
    SnapshotReq(crate::fleet::SnapshotReq),
    /// List or show snapshots. Reply: [`Message::Snapshots`].
    SnapshotShowReq(crate::fleet::SnapshotShowReq),
    /// Reply to [`Message::SnapshotShowReq`].
    Snapshots(crate::fleet::Snapshots),
    /// Reply to a restore dry run.
    SnapshotCampaign(Box<crate::fleet::SnapshotCampaign>),
    // ---- operator → controller: startup configuration (appended) ----
    /// Set (or clear) the startup configuration of a node, a board or the fleet: a new version,
    /// journaled with who and why. Reply: [`Ack`] naming the version.
    ConfigSetReq(ConfigSetReq),
    /// The effective startup configuration of a node (or every stored document). Reply:
    /// [`Message::ConfigShow`].
    ConfigShowReq(ConfigShowReq),
    /// Reply to [`Message::ConfigShowReq`].
    ConfigShow(ConfigShow),
}

impl Message {
    /// The operator block of a request that carries one: the controller overwrites its `who` with
    /// the authenticated operator name, so the journal never records a name a client made up.
    pub fn operator_mut(&mut self) -> Option<&mut Operator> {
        match self {
            Message::UpgradeGroupReq(r) => Some(&mut r.operator),
            Message::UpgradeAbortReq(r) => Some(&mut r.operator),
            Message::UpgradeAddImageReq(r) => Some(&mut r.operator),
            Message::UpgradeDelImageReq(r) => Some(&mut r.operator),
            Message::NodeEnrollReq(r) => Some(&mut r.operator),
            Message::GoldenReq(r) => Some(&mut r.operator),
            Message::ImageTagReq(r) => Some(&mut r.operator),
            Message::SnapshotReq(r) => Some(&mut r.operator),
            Message::ConfigSetReq(r) => Some(&mut r.operator),
            _ => None,
        }
    }

    /// Terragraph-style name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::UpgradeGroupReq(_) => "UPGRADE_GROUP_REQ",
            Message::UpgradeStateReq(_) => "UPGRADE_STATE_REQ",
            Message::UpgradeAbortReq(_) => "UPGRADE_ABORT_REQ",
            Message::UpgradeCommitPlanReq(_) => "UPGRADE_COMMIT_PLAN_REQ",
            Message::UpgradeAddImageReq(_) => "UPGRADE_ADD_IMAGE_REQ",
            Message::UpgradeDelImageReq(_) => "UPGRADE_DEL_IMAGE_REQ",
            Message::UpgradeListImagesReq(_) => "UPGRADE_LIST_IMAGES_REQ",
            Message::NodeStatusReq(_) => "NODE_STATUS_REQ",
            Message::UpgradeStateDump(_) => "UPGRADE_STATE_DUMP",
            Message::UpgradeCommitPlan(_) => "UPGRADE_COMMIT_PLAN",
            Message::UpgradeListImagesResp(_) => "UPGRADE_LIST_IMAGES_RESP",
            Message::NodeStatusDump(_) => "NODE_STATUS_DUMP",
            Message::UpgradeReq(_) => "UPGRADE_REQ",
            Message::StatusReport(_) => "STATUS_REPORT",
            Message::StatusReportAck(_) => "STATUS_REPORT_ACK",
            Message::Ack(_) => "ACK",
            Message::NodeEnrollReq(_) => "NODE_ENROLL_REQ",
            Message::NodeKeysReq(_) => "NODE_KEYS_REQ",
            Message::NodeKeysResp(_) => "NODE_KEYS_RESP",
            Message::GoldenReq(_) => "GOLDEN_REQ",
            Message::GoldenShowReq(_) => "GOLDEN_SHOW_REQ",
            Message::GoldenShow(_) => "GOLDEN_SHOW",
            Message::VersionsReq(_) => "VERSIONS_REQ",
            Message::FleetVersions(_) => "FLEET_VERSIONS",
            Message::ImageRecordsReq(_) => "IMAGE_RECORDS_REQ",
            Message::ImageRecords(_) => "IMAGE_RECORDS",
            Message::ImageTagReq(_) => "IMAGE_TAG_REQ",
            Message::SnapshotReq(_) => "SNAPSHOT_REQ",
            Message::SnapshotShowReq(_) => "SNAPSHOT_SHOW_REQ",
            Message::Snapshots(_) => "SNAPSHOTS",
            Message::SnapshotCampaign(_) => "SNAPSHOT_CAMPAIGN",
            Message::ConfigSetReq(_) => "CONFIG_SET_REQ",
            Message::ConfigShowReq(_) => "CONFIG_SHOW_REQ",
            Message::ConfigShow(_) => "CONFIG_SHOW",
        }
    }
}

/// What an operator key may do on the controller (`[[security.operators]] role`). Ordered: each
/// role has every right of the ones before it. Shared by the controller, which enforces it, and by
/// the tools that write its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// State, status, lists, dry runs.
    Viewer,
    /// Prepare, commit, full, abort, reset, image add and delete.
    Operator,
    /// Adds `allow_downgrade`, batch limits below 0 or above the cap, node key enrollment.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Enroll a node key: the node named `node` (a node of the topology) may then connect with the
/// CURVE key `public_key` (40 Z85 characters) and speak only for itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEnrollReq {
    pub node: String,
    pub public_key: String,
    pub operator: Operator,
}

/// List the enrolled node keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeKeysReq {}

/// The enrolled node keys, and the topology's nodes that have none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeKeysResp {
    /// (node, Z85 public key), sorted by node.
    pub enrolled: Vec<(String, String)>,
    /// Nodes of the topology without a key: they cannot connect.
    pub missing: Vec<String>,
}

/// Bounds on what a status report may hold, checked when it is decoded: a node has a handful of
/// links and short names; anything beyond these is a broken or hostile peer, refused with the
/// field named before any logic sees it.
pub mod report_limits {
    /// Links in one report (a Terragraph node has at most 16 wireless sectors' worth).
    pub const MAX_LINKS: usize = 64;
    /// Any string field of a report (MAC, names, versions, reasons).
    pub const MAX_STRING: usize = 512;
    /// Board ids listed in a report's image metadata.
    pub const MAX_BOARDS: usize = 32;
}

impl StatusReport {
    /// Check [`report_limits`]; the error names the field.
    pub fn check_bounds(&self) -> Result<(), String> {
        use report_limits::*;
        let s = |name: &str, v: &str| {
            if v.len() > MAX_STRING {
                Err(format!("status report field {name} is {} bytes (limit {MAX_STRING})", v.len()))
            } else {
                Ok(())
            }
        };
        s("mac", &self.mac)?;
        s("boot_id", &self.boot_id)?;
        s("version", &self.version)?;
        s("hardware_board_id", &self.hardware_board_id)?;
        let u = &self.upgrade_status;
        s("upgrade_status.reason", &u.reason)?;
        s("upgrade_status.upgrade_req_id", &u.upgrade_req_id)?;
        s("upgrade_status.next_image.version", u.next_image.version.as_deref().unwrap_or(""))?;
        if u.next_image.hardware_board_ids.len() > MAX_BOARDS {
            return Err(format!(
                "status report lists {} board ids (limit {MAX_BOARDS})",
                u.next_image.hardware_board_ids.len()
            ));
        }
        for b in &u.next_image.hardware_board_ids {
            s("upgrade_status.next_image.hardware_board_ids", b)?;
        }
        if let Some(p) = &u.progress {
            s("upgrade_status.progress.source", &p.source)?;
        }
        for slot in [&self.slots.a, &self.slots.b] {
            s("slots.version", slot.version.as_deref().unwrap_or(""))?;
        }
        if self.links.len() > MAX_LINKS {
            return Err(format!("status report lists {} links (limit {MAX_LINKS})", self.links.len()));
        }
        for l in &self.links {
            s("links.name", &l.name)?;
        }
        if let Some(f) = &self.last_fallback {
            s("last_fallback.upgrade_req_id", &f.upgrade_req_id)?;
            s("last_fallback.version", &f.version)?;
            s("last_fallback.reason", &f.reason)?;
        }
        Ok(())
    }
}

/// E2EAck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub success: bool,
    pub message: String,
}

impl Ack {
    pub fn ok(message: impl Into<String>) -> Self {
        Ack { success: true, message: message.into() }
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Ack { success: false, message: message.into() }
    }
}

/// Who asked and why: journaled with every operator command.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Operator {
    /// User or system that sent the command (`$USER@host` for the CLI, `golden-image` for the loop).
    pub who: String,
    /// Free text: why this is being done. Optional, but journaled when given.
    pub reason: Option<String>,
}

/// UpgradeReqType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpgradeReqType {
    /// Download, verify and write the standby slot.
    PrepareUpgrade,
    /// Boot the prepared slot on trial; confirm or fall back.
    CommitUpgrade,
    /// Cancel downloads and scheduled commits; back to NONE. Immediate, never queued.
    ResetStatus,
    /// PREPARE then COMMIT under one request id.
    FullUpgrade,
    /// VOLTHA DMI `RevertToStandbyImage`: boot the standby slot as active, without a trial or
    /// post-boot checks, only where that slot holds an image already confirmed on this node (a
    /// version that ran here before). The controller orders it like a COMMIT (planner batches on
    /// the live topology); the minion refuses it, with the reason, when the standby slot is empty
    /// or was never confirmed.
    RevertToStandby,
}

/// UpgradeGroupType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpgradeGroupType {
    /// The listed `nodes`.
    Nodes,
    /// Every node of the topology except `exclude_nodes`, evaluated when the request starts.
    Network,
}

/// Articulation-point policy of the commit planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ApPolicy {
    /// Terragraph: an AP is upgraded together with everything it cuts off.
    #[default]
    Group,
    /// What an AP isolates goes first in batches that isolate no one else; the AP goes last.
    DependentsFirst,
}

/// How the commit planner chooses batches. Both keep the same safety rules (every site outside a
/// batch keeps a live path to a POP site that stays up; AP groups whole; `limit`;
/// `max_pops_per_batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PlanStrategy {
    /// Terragraph's GraphHelper: leaves of one biased traversal, so a batch Terragraph could give.
    #[default]
    Terragraph,
    /// As few batches (reboot cycles of the network) as the safety rules allow.
    FewestBatches,
}

/// UpgradeTorrentParams. `-1`/`None` means unlimited, as in Terragraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentParams {
    /// Seconds the whole download may take before it fails.
    pub download_timeout_s: u64,
    /// Bytes per second, `None` = unlimited.
    pub download_limit: Option<u64>,
    /// Bytes per second, `None` = unlimited.
    pub upload_limit: Option<u64>,
    /// Peer connections per torrent, `None` = unlimited.
    pub max_connections: Option<u32>,
    /// Seconds without progress in the swarm before falling back to HTTP.
    pub bt_stall_timeout_s: u64,
}

impl Default for TorrentParams {
    fn default() -> Self {
        TorrentParams {
            download_timeout_s: 180,
            download_limit: None,
            upload_limit: None,
            max_connections: None,
            bt_stall_timeout_s: 20,
        }
    }
}

/// UPGRADE_REQ: what a minion is asked to do. Also nested in [`UpgradeGroupReq`] as the template
/// the controller sends to every node of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeReq {
    pub ur_type: UpgradeReqType,
    /// Unique id of the request (CLI: `%Y%m%d%H%M%S`-style or given by the operator).
    pub upgrade_req_id: String,
    /// PREPARE: expected SHA-256 of the whole `.mlimg` file.
    pub sha256: Option<Sha256Digest>,
    /// PREPARE: image name (= version) in the controller's store.
    pub image_name: Option<String>,
    /// PREPARE: `magnet:?…` URI of the image swarm.
    pub image_url: Option<String>,
    /// PREPARE: HTTP fallback URI.
    pub http_url: Option<String>,
    /// PREPARE: image size in bytes (progress and disk checks before downloading).
    pub image_size: Option<u64>,
    /// COMMIT: seconds before the reboot (0 = now).
    pub schedule_to_commit_s: u64,
    /// PREPARE over HTTP: attempts (1..10, default 3).
    pub download_attempts: u32,
    /// PREPARE over BitTorrent.
    pub torrent_params: TorrentParams,
    /// PREPARE: boards the image supports; a node whose board is not listed refuses.
    pub hardware_board_ids: Vec<String>,
    /// Expected image version (PREPARE: skip if already running; COMMIT: flashed image must match).
    pub version: Option<String>,
    /// PREPARE: a downgrade is allowed (and recorded).
    pub allow_downgrade: bool,
    /// COMMIT: link names the post-boot check ignores.
    pub skip_links: Vec<String>,
    /// COMMIT: seconds the trial boot has to pass its checks before falling back.
    pub confirm_timeout_s: u64,
    /// BitTorrent peers to try first (the controller's seeder as `host:port`).
    pub initial_peers: Vec<String>,
    /// Which dispatch of this request to this node (1 = first, 2 = first retry, …). The minion
    /// echoes it in [`UpgradeStatus::attempt`], so a report still describing the failed attempt
    /// (sent before the retry arrived) is never taken for the retry's result.
    pub attempt: u32,
    /// PREPARE: this node's place among the `swarm_size` nodes of its batch (0-based). The
    /// swarm uses it to give each node a distinct slice to fetch from the controller's seeder,
    /// so the seeder sends each byte about once. `swarm_size == 0`: unknown.
    pub swarm_index: u32,
    pub swarm_size: u32,
    /// PREPARE: the startup configuration that goes with the image (Terragraph's
    /// `nextNodeConfigJson`, DMI `UpdateStartupConfiguration`), written beside the standby slot
    /// and made active only when that slot boots. `None`: the node has no configuration for it.
    pub startup_config: Option<StartupConfig>,
}

impl UpgradeReq {
    /// A request of `ur_type` with Terragraph's defaults and nothing image-specific set.
    pub fn new(ur_type: UpgradeReqType, upgrade_req_id: impl Into<String>) -> Self {
        UpgradeReq {
            ur_type,
            upgrade_req_id: upgrade_req_id.into(),
            sha256: None,
            image_name: None,
            image_url: None,
            http_url: None,
            image_size: None,
            schedule_to_commit_s: 0,
            download_attempts: 3,
            torrent_params: TorrentParams::default(),
            hardware_board_ids: Vec::new(),
            version: None,
            allow_downgrade: false,
            skip_links: Vec::new(),
            confirm_timeout_s: 120,
            initial_peers: Vec::new(),
            attempt: 1,
            swarm_index: 0,
            swarm_size: 0,
            startup_config: None,
        }
    }
}

/// UPGRADE_GROUP_REQ: an operator request over a set of nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeGroupReq {
    pub ug_type: UpgradeGroupType,
    /// `Nodes`: node names (all must exist).
    pub nodes: Vec<String>,
    /// `Network`: node names to exclude (all must exist).
    pub exclude_nodes: Vec<String>,
    /// The request sent to each node.
    pub ur_req: UpgradeReq,
    /// Per-batch timeout in seconds; must be > 0 except for RESET_STATUS.
    pub timeout_s: u64,
    /// true: a node that exhausted its retries is dropped and the request goes on.
    pub skip_failure: bool,
    /// true: no extra uplink/BGP check on POPs, and a failing POP does not stop the request.
    pub skip_pop_failure: bool,
    /// Skip nodes already running it; on commit require the flashed image to be it.
    pub version: Option<String>,
    /// Link names excluded from the post-commit link check.
    pub skip_links: Vec<String>,
    /// Commit: <0 all at once, 0 staged unlimited, >0 staged max N nodes per batch.
    /// Prepare: <=0 all at once, >0 max N nodes per batch.
    pub limit: i64,
    /// Max retries per node.
    pub retry_limit: u32,
    /// Articulation-point policy for commit batches.
    pub ap_policy: ApPolicy,
    /// POP sites allowed in one commit batch (Terragraph: 1).
    pub max_pops_per_batch: u32,
    /// How commit batches are chosen (Terragraph's by default).
    #[serde(default)]
    pub strategy: PlanStrategy,
    pub operator: Operator,
}

impl UpgradeGroupReq {
    /// A request with Terragraph's defaults (retry limit 3, limit 0, one POP per batch).
    pub fn new(ug_type: UpgradeGroupType, ur_req: UpgradeReq, timeout_s: u64) -> Self {
        UpgradeGroupReq {
            ug_type,
            nodes: Vec::new(),
            exclude_nodes: Vec::new(),
            ur_req,
            timeout_s,
            skip_failure: false,
            skip_pop_failure: false,
            version: None,
            skip_links: Vec::new(),
            limit: 0,
            retry_limit: 3,
            ap_policy: ApPolicy::Group,
            max_pops_per_batch: 1,
            strategy: PlanStrategy::Terragraph,
            operator: Operator::default(),
        }
    }
}

/// UPGRADE_STATE_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeStateReq {}

/// UPGRADE_ABORT_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeAbortReq {
    pub abort_all: bool,
    pub req_ids: Vec<String>,
    /// Also send RESET_STATUS to every node of the aborted requests.
    pub reset_status: bool,
    pub operator: Operator,
}

/// UPGRADE_COMMIT_PLAN_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeCommitPlanReq {
    pub limit: i64,
    pub exclude_nodes: Vec<String>,
    pub ap_policy: ApPolicy,
    pub max_pops_per_batch: u32,
    #[serde(default)]
    pub strategy: PlanStrategy,
    /// Only nodes FLASHED with this image version count as pending (readiness-aware dry run).
    pub version: Option<String>,
    /// Plan a REVERT_TO_STANDBY instead of a commit: the pending nodes are those whose standby
    /// slot holds an image confirmed there before (`version`, if set, must be that image's).
    pub revert: bool,
}

/// UPGRADE_COMMIT_PLAN: the dry run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeCommitPlan {
    /// Node names per batch, in order, sorted within each batch.
    pub commit_batches: Vec<Vec<String>>,
    /// Pending AP site → every site it cuts off, as computed before the first batch.
    pub ap_groups: BTreeMap<String, Vec<String>>,
    /// Nodes that can never be planned, with the reason.
    pub unplanned: Vec<NodeReason>,
    /// Nodes filtered before planning (not ready, already at version…), with the reason.
    pub filtered: Vec<NodeReason>,
    /// Planner warnings (a batch larger than the limit, …).
    pub warnings: Vec<String>,
    /// Human-readable explanation of every batch.
    pub explanation: String,
    /// What the whole plan costs under each strategy (same pending nodes, same safety rules), so
    /// an operator can choose: Terragraph's first, then fewest-batches.
    pub costs: Vec<StrategyCost>,
}

/// The cost of one strategy's whole plan on the live topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyCost {
    pub strategy: PlanStrategy,
    /// Reboot cycles of the network.
    pub batches: u64,
    /// Site outages summed over all sites (a site down or cut off in a batch counts one).
    pub total_outages: u64,
    /// The most outages any one site sees.
    pub max_outages_per_site: u32,
    /// Sites down or cut off in the worst batch.
    pub largest_blast_radius: u64,
}

/// A node with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReason {
    pub node: String,
    pub reason: String,
}

/// How a node's part in a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutcomeKind {
    Succeeded,
    Failed,
    FellBack,
    SkippedNotReady,
    SkippedOffline,
    AlreadyAtVersion,
    Excluded,
    Aborted,
}

impl OutcomeKind {
    /// snake_case name used in JSON output and the journal.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Failed => "failed",
            OutcomeKind::FellBack => "fell_back",
            OutcomeKind::SkippedNotReady => "skipped_not_ready",
            OutcomeKind::SkippedOffline => "skipped_offline",
            OutcomeKind::AlreadyAtVersion => "already_at_version",
            OutcomeKind::Excluded => "excluded",
            OutcomeKind::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => OutcomeKind::Succeeded,
            "failed" => OutcomeKind::Failed,
            "fell_back" => OutcomeKind::FellBack,
            "skipped_not_ready" => OutcomeKind::SkippedNotReady,
            "skipped_offline" => OutcomeKind::SkippedOffline,
            "already_at_version" => OutcomeKind::AlreadyAtVersion,
            "excluded" => OutcomeKind::Excluded,
            "aborted" => OutcomeKind::Aborted,
            _ => return None,
        })
    }
}

/// The final word on one node in one request stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOutcome {
    pub request_id: String,
    /// PREPARE or COMMIT (a FULL_UPGRADE has one of each).
    pub stage: UpgradeReqType,
    pub node: String,
    pub outcome: OutcomeKind,
    pub reason: String,
    pub started_at: UnixMillis,
    pub finished_at: UnixMillis,
}

/// One node of the in-flight batch in the state dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchNodeView {
    pub node: String,
    pub state: UpgradeStatusType,
    /// What the controller is waiting for ("Waiting for links …").
    pub detail: String,
    pub retries: u32,
    pub last_seen: Option<UnixMillis>,
    /// Download progress in parts per million, if downloading.
    pub progress_ppm: Option<u32>,
}

/// Summary of a request in the state dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub request: UpgradeGroupReq,
    /// The stage running now (PREPARE or COMMIT for a FULL_UPGRADE).
    pub stage: UpgradeReqType,
    pub submitted_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
}

/// UPGRADE_STATE_DUMP.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeStateDump {
    pub cur_req: Option<RequestView>,
    /// Index (from 1) of the in-flight batch within the current stage.
    pub cur_batch_index: u32,
    pub cur_batch: Vec<BatchNodeView>,
    /// Nodes of the current request still waiting for a batch.
    pub pending_nodes: Vec<String>,
    /// Batches already dispatched for the current request stage, in order.
    pub done_batches: Vec<Vec<String>>,
    pub pending_reqs: Vec<RequestView>,
    /// Outcomes so far of the current request, and of the most recently finished requests.
    pub outcomes: Vec<NodeOutcome>,
    /// Request ids finished (with success flag), most recent last.
    pub finished_reqs: Vec<FinishedReq>,
}

/// A finished request in the state dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedReq {
    pub request_id: String,
    pub success: bool,
    pub summary: String,
    pub finished_at: UnixMillis,
}

/// UpgradeImage: one image in the controller's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeImage {
    /// Unique key; the image's version (as in Terragraph).
    pub name: String,
    pub version: String,
    pub magnet_uri: String,
    pub http_uri: String,
    /// SHA-256 of the whole `.mlimg` file.
    pub sha256: Sha256Digest,
    pub size: u64,
    pub hardware_board_ids: Vec<String>,
}

/// UPGRADE_ADD_IMAGE_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeAddImageReq {
    /// A path on the controller's file system or an http(s) URL.
    pub image_url: String,
    pub operator: Operator,
    /// Tags stored with the image once it is added (`image add --tag`).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// UPGRADE_DEL_IMAGE_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeDelImageReq {
    pub name: String,
    pub operator: Operator,
}

/// UPGRADE_LIST_IMAGES_REQ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeListImagesReq {}

/// UPGRADE_LIST_IMAGES_RESP.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeListImagesResp {
    pub images: Vec<UpgradeImage>,
}

/// Request for the per-node status table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeStatusReq {}

/// One row of `meshlift status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatusRow {
    pub name: String,
    pub site: String,
    pub mac: String,
    pub online: bool,
    pub is_pop: bool,
    /// Hardware board id as last reported, if the node ever reported.
    #[serde(default)]
    pub board: Option<String>,
    /// Running version, if the node ever reported.
    pub version: Option<String>,
    pub slots: Option<SlotsReport>,
    pub upgrade_status: Option<UpgradeStatus>,
    pub last_seen: Option<UnixMillis>,
    /// SHA-256 of the startup configuration the node reports running (`None`: none, or never
    /// reported).
    pub startup_config: Option<Sha256Digest>,
}

/// Reply to [`NodeStatusReq`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeStatusDump {
    pub nodes: Vec<NodeStatusRow>,
}

/// UpgradeStatusType, extended with the trial-boot states of meshlift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UpgradeStatusType {
    None,
    DownloadingImage,
    DownloadFailed,
    FlashingImage,
    FlashFailed,
    /// Standby slot holds the verified image; ready for commit.
    Flashed,
    /// COMMIT received with `schedule_to_commit_s > 0`; reboot at `when_to_commit`.
    CommitScheduled,
    /// Trial flag set; the node is going down.
    Rebooting,
    /// Booted the new slot once; post-boot checks running.
    Trial,
    /// Trial passed; the new slot is active.
    Confirmed,
    /// Trial failed; the node rebooted into the old slot. `reason` says why.
    FellBack,
    /// The commit could not be carried out.
    CommitFailed,
}

impl UpgradeStatusType {
    pub fn as_str(&self) -> &'static str {
        match self {
            UpgradeStatusType::None => "NONE",
            UpgradeStatusType::DownloadingImage => "DOWNLOADING_IMAGE",
            UpgradeStatusType::DownloadFailed => "DOWNLOAD_FAILED",
            UpgradeStatusType::FlashingImage => "FLASHING_IMAGE",
            UpgradeStatusType::FlashFailed => "FLASH_FAILED",
            UpgradeStatusType::Flashed => "FLASHED",
            UpgradeStatusType::CommitScheduled => "COMMIT_SCHEDULED",
            UpgradeStatusType::Rebooting => "REBOOTING",
            UpgradeStatusType::Trial => "TRIAL",
            UpgradeStatusType::Confirmed => "CONFIRMED",
            UpgradeStatusType::FellBack => "FELL_BACK",
            UpgradeStatusType::CommitFailed => "COMMIT_FAILED",
        }
    }
}

/// ImageMeta: what a node knows about the image of its current upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    pub sha256: Option<Sha256Digest>,
    pub version: Option<String>,
    pub hardware_board_ids: Vec<String>,
}

/// Download progress of a prepare (the `upgrade.bt.*` figures of seed 003).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DownloadProgress {
    pub total_bytes: u64,
    pub have_bytes: u64,
    /// Bytes received from the BitTorrent swarm.
    pub bt_downloaded_bytes: u64,
    /// Bytes this node sent to its peers.
    pub bt_uploaded_bytes: u64,
    /// Bytes received over HTTP fallback.
    pub http_downloaded_bytes: u64,
    /// Connected swarm peers (seed 003's `upgrade.bt.peers`).
    pub peers: u32,
    /// "bittorrent" or "http".
    pub source: String,
    /// Connected peers that hold the whole image (`upgrade.bt.seeds`); 0 over HTTP.
    pub seeds: u32,
    /// Peer connections, half-open ones included (`upgrade.bt.connections`); 0 over HTTP.
    pub connections: u32,
    /// Receive rate in bytes per second, over the swarm or HTTP (`upgrade.bt.downloadBps`, in
    /// bytes rather than bits: Prometheus' base unit).
    pub download_bytes_per_second: u64,
    /// Send rate to peers in bytes per second (`upgrade.bt.uploadBps`).
    pub upload_bytes_per_second: u64,
}

impl DownloadProgress {
    /// Progress in parts per million (seed 003's `upgrade.bt.progress_ppm`).
    pub fn ppm(&self) -> u32 {
        if self.total_bytes == 0 {
            return 0;
        }
        ((self.have_bytes.min(self.total_bytes) as u128 * 1_000_000) / self.total_bytes as u128) as u32
    }
}

/// UpgradeStatus: embedded in every status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeStatus {
    pub us_type: UpgradeStatusType,
    pub next_image: ImageMeta,
    /// Failure reason, or progress text.
    pub reason: String,
    /// Id of the request that produced this status.
    pub upgrade_req_id: String,
    /// UNIX ms of the scheduled reboot (0 = none).
    pub when_to_commit: UnixMillis,
    pub progress: Option<DownloadProgress>,
    /// [`UpgradeReq::attempt`] of the request this status belongs to.
    pub attempt: u32,
}

impl Default for UpgradeStatus {
    fn default() -> Self {
        UpgradeStatus {
            us_type: UpgradeStatusType::None,
            next_image: ImageMeta::default(),
            reason: String::new(),
            upgrade_req_id: String::new(),
            when_to_commit: 0,
            progress: None,
            attempt: 0,
        }
    }
}

/// A/B slot name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SlotId {
    A,
    B,
}

impl SlotId {
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
}

/// What one slot holds (VOLTHA DMI `GetSoftwareVersion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotReport {
    pub slot: SlotId,
    pub version: Option<String>,
    pub sha256: Option<Sha256Digest>,
    /// This slot's image passed a trial boot here (or was the factory image).
    pub confirmed: bool,
}

/// Both slots and which one is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsReport {
    /// Slot booted when no trial is pending.
    pub active: SlotId,
    /// Slot running now (differs from `active` during a trial).
    pub booted: SlotId,
    pub a: SlotReport,
    pub b: SlotReport,
}

impl SlotsReport {
    pub fn slot(&self, id: SlotId) -> &SlotReport {
        match id {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }
    pub fn running(&self) -> &SlotReport {
        self.slot(self.booted)
    }
    pub fn standby(&self) -> &SlotReport {
        self.slot(self.booted.other())
    }
}

/// A link as one end sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkReport {
    /// Topology link name.
    pub name: String,
    pub up: bool,
}

/// A fallback the node went through, reported until the controller has seen it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackRecord {
    pub upgrade_req_id: String,
    pub version: String,
    pub reason: String,
    pub at: UnixMillis,
}

/// STATUS_REPORT: the node's heartbeat. meshlift always sends the full report (version, both slots,
/// board, links): it is a few hundred bytes, and it spares the controller Terragraph's back-filling
/// of partial reports from a cache. A minion resends at once until it gets a matching ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// MAC address: the node's identity in the topology.
    pub mac: String,
    /// New on every process start; the routing identity is `<mac>/<boot_id>`.
    pub boot_id: String,
    pub timestamp: UnixMillis,
    /// Running image version.
    pub version: String,
    pub hardware_board_id: String,
    pub upgrade_status: UpgradeStatus,
    pub slots: SlotsReport,
    pub links: Vec<LinkReport>,
    /// POPs only: uplink / BGP peers that are up.
    pub bgp_peers_up: Option<u32>,
    pub last_fallback: Option<FallbackRecord>,
    /// Sequence number, per boot, for ack matching.
    pub seq: u64,
    /// SHA-256 of the startup configuration the running slot booted with (`None`: none).
    pub startup_config: Option<Sha256Digest>,
}

/// STATUS_REPORT_ACK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReportAck {
    pub seq: u64,
    pub request_full_status_report: bool,
    /// The controller does not know this MAC: the node is not in the topology.
    pub refused: Option<String>,
}

/// A change to the golden-image loop (`meshlift golden …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoldenCmd {
    /// Make image `image` (a name in the controller's store) the target of `board`, or, with no
    /// board, of every board the image supports (`meshlift upgrade … --set-golden`).
    SetTarget {
        board: Option<String>,
        image: String,
    },
    /// The board has no target any more: the loop leaves its nodes alone.
    UnsetTarget {
        board: String,
    },
    Enable,
    Disable,
    /// Stop starting waves (a running wave finishes); the rollout position is kept.
    Pause,
    Resume,
    /// `None`: always open. Text form `"<days> <HH:MM-HH:MM>[,…] <IANA zone>"`.
    SetWindow {
        window: Option<String>,
    },
    /// Never give `version` to `node` (until `expires_at`, UNIX ms, if set). The reason is the
    /// operator's `reason`.
    BlacklistAdd {
        node: String,
        version: String,
        expires_at: Option<UnixMillis>,
    },
    /// Remove the node's entry for `version`, or all its entries.
    BlacklistDel {
        node: String,
        version: Option<String>,
    },
    /// Lift a quarantine (admin only): the loop may give `version` to nodes again.
    Unquarantine {
        version: String,
    },
}

/// A golden-loop change with who asked and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenReq {
    pub cmd: GoldenCmd,
    pub operator: Operator,
}

/// Ask for the golden-image loop's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GoldenShowReq {}

/// The golden-image loop's state (`meshlift golden show`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GoldenShow {
    pub enabled: bool,
    pub paused: bool,
    /// Window text, `None` = always open.
    pub window: Option<String>,
    pub window_open: bool,
    /// When the window next opens (now if open), if it ever does.
    pub next_window_open: Option<UnixMillis>,
    pub check_interval_s: u64,
    /// When the loop last started a wave.
    pub last_run_at: Option<UnixMillis>,
    pub boards: Vec<GoldenBoard>,
    pub blacklist: Vec<GoldenBlacklistEntry>,
    pub quarantined: Vec<GoldenQuarantine>,
}

/// One board's golden target and rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenBoard {
    pub board: String,
    pub image: String,
    pub version: String,
    /// Nodes of the board (that reported it).
    pub nodes: u32,
    /// Nodes running an older version than the target.
    pub behind: u32,
    /// `disabled`, `paused`, `quarantined`, `canary`, `baking`, `widening`, `converged`, …
    pub state: String,
    /// Label of the wave in flight or next (`canary`, `wave 2`, …).
    pub current_wave: Option<String>,
    pub waves: Vec<GoldenWave>,
}

/// One wave the loop started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenWave {
    pub label: String,
    pub request_id: String,
    pub nodes: Vec<String>,
    pub submitted_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    pub upgraded: Vec<String>,
    pub failed: Vec<String>,
}

/// A node the loop must not give a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenBlacklistEntry {
    pub node: String,
    pub version: String,
    pub reason: String,
    pub who: String,
    pub at: UnixMillis,
    pub expires_at: Option<UnixMillis>,
}

/// An image the loop stopped giving out fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenQuarantine {
    pub version: String,
    pub reason: String,
    pub at: UnixMillis,
    /// The nodes that fell back or failed on it.
    pub nodes: Vec<String>,
}

/// Largest startup configuration document, in bytes: a node's configuration is a few KiB of JSON
/// or TOML; anything near this bound is a mistake, and the document travels in every PREPARE.
pub const MAX_STARTUP_CONFIG: usize = 64 * 1024;

/// A startup configuration document as delivered with a PREPARE: the text and its digest, which
/// the minion checks before it marks the slot prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupConfig {
    /// JSON or TOML text, at most [`MAX_STARTUP_CONFIG`] bytes.
    pub text: String,
    pub sha256: Sha256Digest,
    /// The controller's version number of the document (for display and the journal).
    pub version: u64,
}

/// Which nodes a stored startup configuration applies to. A node's effective document is the
/// most specific one: node, then board, then fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigScope {
    Node(String),
    Board(String),
    Fleet,
}

impl ConfigScope {
    /// `node:NAME`, `board:ID` or `fleet`, as the journal and the store name it.
    pub fn label(&self) -> String {
        match self {
            ConfigScope::Node(n) => format!("node:{n}"),
            ConfigScope::Board(b) => format!("board:{b}"),
            ConfigScope::Fleet => "fleet".to_string(),
        }
    }
}

/// Set the document of `scope` (a new version), or clear it with `text: None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSetReq {
    pub scope: ConfigScope,
    pub text: Option<String>,
    pub operator: Operator,
}

/// Ask for the effective document of `node`, or, with no node, every stored document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigShowReq {
    pub node: Option<String>,
}

/// One stored startup configuration version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDoc {
    pub scope: ConfigScope,
    pub version: u64,
    pub sha256: Sha256Digest,
    pub text: String,
    pub who: String,
    pub reason: Option<String>,
    pub at: UnixMillis,
}

/// Reply to [`ConfigShowReq`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigShow {
    /// The node asked about, if any.
    pub node: Option<String>,
    /// With a node: its effective document (`None`: no document applies). Without: unused.
    pub effective: Option<ConfigDoc>,
    /// With a node: the digest of the configuration it reports running (`None`: none, or it
    /// never reported).
    pub running: Option<Sha256Digest>,
    /// Without a node: the current document of every scope, most specific first.
    pub documents: Vec<ConfigDoc>,
}
