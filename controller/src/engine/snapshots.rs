//! Snapshots on the engine: kept in memory for reads, written in the input's store transaction
//! with the journal line that records who took or deleted one and why.

use meshlift_protocol::fleet::{NodeFilter, Snapshot, SnapshotCampaign};
use meshlift_protocol::{Operator, UpgradeCommitPlanReq, UpgradeImage};

use super::Engine;
use crate::snapshot::{self, SnapshotError};
use crate::store::StoreOp;

impl Engine {
    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        let mut v: Vec<&Snapshot> = self.snapshots.values().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.name.cmp(&b.name)));
        v.into_iter()
    }

    /// Record what the filtered nodes run now.
    pub fn create_snapshot(
        &mut self,
        name: &str,
        filter: &NodeFilter,
        operator: &Operator,
        now: u64,
    ) -> Result<String, SnapshotError> {
        let now = self.clock(now);
        if self.snapshots.contains_key(name) {
            return Err(SnapshotError::Exists(name.to_string()));
        }
        if self.snapshots.len() >= snapshot::MAX_SNAPSHOTS {
            return Err(SnapshotError::Full);
        }
        let images: Vec<UpgradeImage> = self.images.values().cloned().collect();
        let snap = snapshot::take(name, filter, &self.node_status(now).nodes, &images, operator, now)?;
        let mut versions: Vec<String> = snap.nodes.iter().map(|n| n.active.version.clone()).collect();
        versions.sort();
        versions.dedup();
        let msg = format!(
            "snapshot {name} taken: {} node(s) on {}{}",
            snap.nodes.len(),
            versions.join(", "),
            if snap.skipped.is_empty() { String::new() } else { format!(", {} skipped", snap.skipped.len()) }
        );
        self.command(now, None, operator, msg.clone());
        self.ops.push(StoreOp::PutSnapshot {
            name: name.to_string(),
            at: now,
            body: crate::store::to_json(&snap),
        });
        self.snapshots.insert(name.to_string(), snap);
        self.flush();
        Ok(msg)
    }

    /// Forget a snapshot.
    pub fn delete_snapshot(
        &mut self,
        name: &str,
        operator: &Operator,
        now: u64,
    ) -> Result<String, SnapshotError> {
        let now = self.clock(now);
        if self.snapshots.remove(name).is_none() {
            return Err(SnapshotError::Unknown(name.to_string()));
        }
        let msg = format!("snapshot {name} deleted");
        self.command(now, None, operator, msg.clone());
        self.ops.push(StoreOp::DeleteSnapshot { name: name.to_string() });
        self.flush();
        Ok(msg)
    }

    /// What restoring `name` takes now, with the commit planner's batches for the nodes that
    /// change (same planner, same live topology as a commit).
    pub fn snapshot_campaign(&self, name: &str, now: u64) -> Result<SnapshotCampaign, SnapshotError> {
        let snap = self.snapshots.get(name).ok_or_else(|| SnapshotError::Unknown(name.to_string()))?;
        let images: Vec<UpgradeImage> = self.images.values().cloned().collect();
        let mut c = snapshot::campaign(snap, &self.node_status(now).nodes, &images);
        let changing: std::collections::BTreeSet<&str> = c.steps.iter().map(|s| s.node.as_str()).collect();
        if !changing.is_empty() {
            let req = UpgradeCommitPlanReq {
                exclude_nodes: self
                    .topology
                    .nodes
                    .iter()
                    .filter(|n| !changing.contains(n.name.as_str()))
                    .map(|n| n.name.clone())
                    .collect(),
                max_pops_per_batch: 1,
                ..Default::default()
            };
            c.plan = self.commit_plan(&req, now);
        }
        Ok(c)
    }
}
