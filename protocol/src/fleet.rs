//! Fleet operations beyond Terragraph's upgrade interface (issue 17): the fleet's versions (VOLTHA
//! DMI `GetSoftwareVersion` for every node), image records with tags and filters, and snapshots of
//! what runs where with their restore (Cray FAS `/snapshots`).
//!
//! Same rules as [`crate::messages`]: bincode-friendly types only (no `flatten`, no untagged
//! enums, no `skip_serializing_if`).

use crate::messages::{Operator, SlotReport, UnixMillis, UpgradeCommitPlan, UpgradeImage};
use crate::sha::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which nodes a fleet command is about. Each list empty = any; within a list any entry matches;
/// all non-empty lists must match (site AND board AND version AND node).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeFilter {
    pub sites: Vec<String>,
    pub boards: Vec<String>,
    /// Matched against the version of the node's **active** slot (what it boots).
    pub versions: Vec<String>,
    pub nodes: Vec<String>,
}

impl NodeFilter {
    /// Whether a node with these facts passes. A node that never reported has no board or
    /// version, so a board or version filter leaves it out.
    pub fn matches(&self, node: &str, site: &str, board: Option<&str>, version: Option<&str>) -> bool {
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        any(&self.nodes, Some(node))
            && any(&self.sites, Some(site))
            && any(&self.boards, board)
            && any(&self.versions, version)
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty() && self.boards.is_empty() && self.versions.is_empty() && self.nodes.is_empty()
    }
}

/// `meshlift versions`: per node the active and standby image. Reply: [`FleetVersions`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionsReq {
    pub filter: NodeFilter,
}

/// One node's software (DMI `GetSoftwareVersion`: active and standby).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersions {
    pub name: String,
    pub site: String,
    /// Board as the node last reported it; `None` if it never reported.
    pub board: Option<String>,
    pub online: bool,
    /// The slot the node boots when no trial is pending; `None` if it never reported.
    pub active: Option<SlotReport>,
    /// The other slot.
    pub standby: Option<SlotReport>,
    /// The node runs its standby slot on trial right now (booted differs from active).
    pub on_trial: bool,
    pub last_seen: Option<UnixMillis>,
}

/// Reply to [`VersionsReq`]: the rows that passed the filter, and their totals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FleetVersions {
    pub nodes: Vec<NodeVersions>,
    /// Active version → nodes (`"unknown"` for nodes that never reported).
    pub by_version: BTreeMap<String, u32>,
    /// Board → nodes (`"unknown"` likewise).
    pub by_board: BTreeMap<String, u32>,
    /// (board, active version) → nodes, sorted by board then version.
    pub by_board_version: Vec<VersionTotal>,
}

/// Nodes of one board on one active version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTotal {
    pub board: String,
    pub version: String,
    pub nodes: u32,
}

/// Image records, filtered (`meshlift image list --board --version --tag`). Reply:
/// [`ImageRecords`]. Each filter `None` = any.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageRecordsReq {
    pub board: Option<String>,
    pub version: Option<String>,
    pub tag: Option<String>,
}

/// An image of the controller's store with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image: UpgradeImage,
    pub tags: Vec<String>,
}

/// Reply to [`ImageRecordsReq`], ordered by version (the golden order), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageRecords {
    pub images: Vec<ImageRecord>,
}

/// Add and remove tags of a stored image (journaled). Reply: [`crate::Ack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTagReq {
    /// Image name, or a selector (`latest`, `earliest[:BOARD]`).
    pub name: String,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub operator: Operator,
}

/// A snapshot command (`meshlift snapshot …`), with who and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotReq {
    pub cmd: SnapshotCmd,
    pub operator: Operator,
}

/// What to do with snapshots. Replies: [`crate::Ack`], except `Restore { dry_run: true }`:
/// [`crate::Message::SnapshotCampaign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotCmd {
    /// Record what the matching nodes run now under `name` (refused if the name is taken).
    Create { name: String, filter: NodeFilter },
    /// Forget a snapshot (the images stay).
    Delete { name: String },
    /// Bring every node of the snapshot back to its recorded image, through the golden-image
    /// reconciler; `dry_run` only computes the campaign.
    Restore { name: String, dry_run: bool },
}

/// List snapshots (`name: None`) or show one. Reply: [`Snapshots`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotShowReq {
    pub name: Option<String>,
}

/// Reply to [`SnapshotShowReq`], oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshots {
    pub snapshots: Vec<Snapshot>,
    /// The restore in progress, if any.
    pub restore: Option<RestoreStatus>,
}

/// Where a running restore stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStatus {
    pub snapshot: String,
    pub started_at: UnixMillis,
    pub who: String,
    /// Nodes still to bring back.
    pub pending: Vec<String>,
    pub restored: Vec<String>,
    /// Nodes that did not get there, with why.
    pub failed: Vec<crate::messages::NodeReason>,
    /// The engine request of the step in flight.
    pub request_id: Option<String>,
}

/// A point-in-time record of what runs where (FAS: SNAPSHOT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub reason: Option<String>,
    /// The filter the snapshot was taken with.
    pub filter: NodeFilter,
    pub nodes: Vec<SnapshotNode>,
    /// Nodes the filter matched that could not be recorded (never reported, no confirmed active
    /// image), with why: a restore leaves them alone.
    pub skipped: Vec<crate::messages::NodeReason>,
}

/// One node in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotNode {
    pub node: String,
    pub site: String,
    pub board: String,
    /// The active slot's image: what a restore brings back.
    pub active: SnapshotImage,
    pub standby: Option<SnapshotImage>,
    /// The controller image of that version and hash when the snapshot was taken, if any.
    pub image_name: Option<String>,
    /// Digest of the startup configuration the node ran (filled once nodes report one).
    pub config_digest: Option<Sha256Digest>,
    /// When this node's record was taken (its last report).
    pub reported_at: UnixMillis,
}

/// An image as a slot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotImage {
    pub version: String,
    pub sha256: Option<Sha256Digest>,
    pub confirmed: bool,
}

/// What restoring a snapshot would do (the dry run), and what a restore does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotCampaign {
    pub snapshot: String,
    /// Nodes that must change, with the image each needs, in node order.
    pub steps: Vec<CampaignStep>,
    /// Nodes already on their recorded version (nothing to do).
    pub unchanged: Vec<String>,
    /// Nodes left out, with why (offline, not in the topology any more, never reported).
    pub left_out: Vec<crate::messages::NodeReason>,
    /// Images the campaign needs that the store no longer holds: a restore is refused.
    pub missing_images: Vec<String>,
    /// The commit planner's batches for the nodes that change, on the live topology now.
    pub plan: UpgradeCommitPlan,
}

/// One node's change in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStep {
    pub node: String,
    pub from_version: Option<String>,
    pub to_version: String,
    /// Image of the controller's store that carries `to_version`; `None` if missing.
    pub image: Option<String>,
    /// Older than what runs: allowed only because the operator asked for this restore.
    pub downgrade: bool,
}
