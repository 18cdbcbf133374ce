//! What the engine is rebuilt from at start: the rows of the store, read by the shell in one go.
//!
//! The engine never opens the database (it is sans-IO: its writes leave it as
//! `Action::Persist`), so the shell reads the store once at start into this plain struct and
//! hands it to `Engine::from_snapshot`. The rows keep their JSON bodies: parsing them is the
//! engine's business (it owns the record types), reading them is the store's.

use meshlift_protocol::{NodeOutcome, UpgradeImage};

use super::{BatchRow, RequestRow, Store, StoreError};

/// The store's contents as the engine needs them to resume.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every stored image.
    pub images: Vec<UpgradeImage>,
    /// Every request, in submission order (queued, running and finished).
    pub requests: Vec<RequestRow>,
    /// For each request whose `state` column says `running`, what is needed to resume it.
    pub running: Vec<RunningRows>,
    /// The golden-image loop's state (JSON), if it was ever written.
    pub golden: Option<String>,
    /// Image name → its tags (`image_tags`).
    pub image_tags: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    /// (name, body) of every stored fleet snapshot (`snapshots`).
    pub snapshots: Vec<(String, String)>,
    /// The current startup configuration of every scope (`startup_configs`).
    pub startup_configs: Vec<meshlift_protocol::ConfigDoc>,
    /// The highest configuration version ever written (versions are never reused).
    pub last_config_version: u64,
}

/// The per-node rows, open batches and outcomes of one running request.
#[derive(Debug, Clone, Default)]
pub struct RunningRows {
    pub request_id: String,
    /// (node, body) of `request_nodes`.
    pub request_nodes: Vec<(String, String)>,
    /// Open batches with their (node, body) rows of `batch_nodes`.
    pub open_batches: Vec<(BatchRow, Vec<(String, String)>)>,
    pub outcomes: Vec<NodeOutcome>,
}

impl Store {
    /// Read everything the engine resumes from (see [`Snapshot`]).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let requests = self.requests()?;
        let mut running = Vec::new();
        for row in requests.iter().filter(|r| r.state == "running") {
            let mut open_batches = Vec::new();
            for b in self.batches(&row.id)?.into_iter().filter(|b| b.open) {
                let nodes = self.batch_nodes(&row.id, &b.stage, b.index)?;
                open_batches.push((b, nodes));
            }
            running.push(RunningRows {
                request_id: row.id.clone(),
                request_nodes: self.request_nodes(&row.id)?,
                open_batches,
                outcomes: self.outcomes(&row.id)?,
            });
        }
        let (startup_configs, last_config_version) = self.startup_configs()?;
        Ok(Snapshot {
            startup_configs,
            last_config_version,
            images: self.images()?,
            requests,
            running,
            golden: self.golden()?,
            image_tags: self.image_tags()?,
            snapshots: self.snapshots()?,
        })
    }
}
