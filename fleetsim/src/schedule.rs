//! A schedule: the mesh, the request and the faults, all drawn from one `u64` seed.
//!
//! Everything random in a run comes from [`ChaCha8Rng`] streams derived from the seed (the
//! schedule here, the latencies and durations in [`crate::sim`]), so a seed is a complete
//! description of a run: `FLEETSIM_SEED=<seed> cargo test -p meshlift-fleetsim replay` replays
//! it event for event.

use crate::images::ImageKind;
use meshlift_protocol::{Topology, UpgradeStatusType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// The topology files shipped in `configs/topologies/` (5–60 sites), used by some schedules.
const TOPOLOGY_FILES: &[(&str, &str)] = &[
    ("configs/topologies/sample.json", include_str!("../../configs/topologies/sample.json")),
    ("configs/topologies/figure.json", include_str!("../../configs/topologies/figure.json")),
    (
        "configs/topologies/single-pop-line.json",
        include_str!("../../configs/topologies/single-pop-line.json"),
    ),
    ("configs/topologies/two-pops-tail.json", include_str!("../../configs/topologies/two-pops-tail.json")),
];

/// Which mesh a schedule runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshSource {
    File(&'static str),
    /// [`meshlift_meshsim::generate_mesh`]`(nodes, seed)`.
    Generated {
        nodes: usize,
        seed: u64,
    },
}

/// One fault. Times are offsets in ms from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node's process dies (crash or power cycle); it boots again after its boot delay.
    Crash { node: String },
    /// Crash the node as soon as its agent reports this state (crash "in any state").
    CrashInState { node: String, state: UpgradeStatusType },
    /// The process freezes (SIGSTOP): silent, timers stopped, radio and data plane still up.
    Hang { node: String, for_ms: u64 },
    /// Power cut in the middle of the node's next flash.
    PowerCutDuringFlash { node: String },
    /// Power cut during the node's next boot-environment write; `applied`: the new environment
    /// made it to the medium (the write is atomic: old or new).
    PowerCutDuringEnvWrite { node: String, applied: bool },
    /// A link is cut (rain fade, pulled cable) and restored later.
    CutLink { link: String, for_ms: u64 },
    /// The controller process dies and restarts from its store after `down_ms`.
    ControllerCrash { down_ms: u64 },
    /// The node's disk is full for a while: downloads and slot writes fail with "no space".
    DiskFull { node: String, for_ms: u64 },
    /// The node's next download makes no progress, ever (until the process restarts or is reset).
    StuckDownload { node: String },
    /// The node's next download arrives corrupt (its SHA-256 does not match the request).
    CorruptDownload { node: String },
}

/// Everything a run needs, drawn from the seed.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    pub mesh: MeshSource,
    pub topology: Topology,
    pub image: ImageKind,
    /// Request settings: batch size limit for PREPARE (COMMIT batches come from the planner).
    pub limit: i64,
    pub retry_limit: u32,
    pub skip_failure: bool,
    /// `(at_ms, fault)`, in time order.
    pub faults: Vec<(u64, Fault)>,
}

impl Schedule {
    /// The schedule of `seed`.
    pub fn from_seed(seed: u64) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mesh = if rng.gen_bool(0.2) {
            MeshSource::File(TOPOLOGY_FILES[rng.gen_range(0..TOPOLOGY_FILES.len())].0)
        } else {
            // Mostly small meshes (they find most bugs and run fast), some up to 60 nodes.
            let nodes = if rng.gen_bool(0.8) { rng.gen_range(5..=20) } else { rng.gen_range(21..=60) };
            MeshSource::Generated { nodes, seed: rng.gen() }
        };
        let topology = match &mesh {
            MeshSource::File(path) => {
                let text =
                    TOPOLOGY_FILES.iter().find(|(p, _)| p == path).map(|(_, t)| *t).unwrap_or_default();
                Topology::from_json(text).expect("the shipped topology files parse (checked by a test)")
            }
            MeshSource::Generated { nodes, seed } => meshlift_meshsim::generate_mesh(*nodes, *seed),
        };
        let image = match rng.gen_range(0..100) {
            0..=7 => ImageKind::BadSignature,
            8..=15 => ImageKind::FailsTrial,
            _ => ImageKind::Good,
        };
        let limit = [0, 0, 1, 3, 10][rng.gen_range(0..5)];
        let retry_limit = rng.gen_range(0..=3);
        let skip_failure = rng.gen_bool(0.6);

        let n = topology.nodes.len().max(1);
        // An upgrade of n nodes takes a few minutes plus about a commit batch per node or two;
        // faults land across that window so every phase gets hit.
        let horizon = 120_000 + 40_000 * n as u64;
        let count = rng.gen_range(0..=(3 + n / 4).min(12));
        let node = |rng: &mut ChaCha8Rng| topology.nodes[rng.gen_range(0..n)].name.clone();
        let mut faults = Vec::with_capacity(count);
        for _ in 0..count {
            let at = rng.gen_range(0..horizon);
            let fault = match rng.gen_range(0..100) {
                0..=14 => Fault::Crash { node: node(&mut rng) },
                15..=29 => {
                    let state = [
                        UpgradeStatusType::DownloadingImage,
                        UpgradeStatusType::FlashingImage,
                        UpgradeStatusType::Flashed,
                        UpgradeStatusType::Rebooting,
                        UpgradeStatusType::Trial,
                        UpgradeStatusType::Confirmed,
                        UpgradeStatusType::FellBack,
                    ][rng.gen_range(0..7)];
                    Fault::CrashInState { node: node(&mut rng), state }
                }
                30..=39 => Fault::Hang { node: node(&mut rng), for_ms: rng.gen_range(1_000..90_000) },
                40..=47 => Fault::PowerCutDuringFlash { node: node(&mut rng) },
                48..=57 => Fault::PowerCutDuringEnvWrite { node: node(&mut rng), applied: rng.gen_bool(0.5) },
                58..=72 if !topology.links.is_empty() => Fault::CutLink {
                    link: topology.links[rng.gen_range(0..topology.links.len())].name.clone(),
                    for_ms: rng.gen_range(1_000..120_000),
                },
                73..=82 => Fault::ControllerCrash { down_ms: rng.gen_range(500..60_000) },
                83..=87 => Fault::DiskFull { node: node(&mut rng), for_ms: rng.gen_range(5_000..120_000) },
                88..=93 => Fault::StuckDownload { node: node(&mut rng) },
                _ => Fault::CorruptDownload { node: node(&mut rng) },
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|(at, _)| *at);
        Schedule { seed, mesh, topology, image, limit, retry_limit, skip_failure, faults }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mesh = match &self.mesh {
            MeshSource::File(p) => p.to_string(),
            MeshSource::Generated { nodes, seed } => format!("generate_mesh({nodes}, {seed})"),
        };
        writeln!(
            f,
            "seed {} (replay: FLEETSIM_SEED={} cargo test -p meshlift-fleetsim replay)",
            self.seed, self.seed
        )?;
        writeln!(
            f,
            "  mesh {mesh}: {} nodes, {} links; image {:?}; limit {}, retry_limit {}, skip_failure {}",
            self.topology.nodes.len(),
            self.topology.links.len(),
            self.image,
            self.limit,
            self.retry_limit,
            self.skip_failure
        )?;
        for (at, fault) in &self.faults {
            writeln!(f, "  t+{:>7} ms  {fault:?}", at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_topologies_parse_and_are_5_to_60_sites() {
        for (path, text) in TOPOLOGY_FILES {
            let t = Topology::from_json(text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!((2..=60).contains(&t.sites.len()), "{path}: {} sites", t.sites.len());
        }
    }

    #[test]
    fn a_seed_gives_the_same_schedule_every_time() {
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(Schedule::from_seed(seed).to_string(), Schedule::from_seed(seed).to_string());
        }
        assert_ne!(Schedule::from_seed(1).to_string(), Schedule::from_seed(2).to_string());
    }
}
