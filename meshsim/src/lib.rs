//! meshsim: a virtual Terragraph-like mesh made of real `meshlift-minion` processes, for the demo
//! and the end-to-end tests.
//!
//! meshsim plays the hardware (DESIGN.md §10): it runs one process per topology node with its own
//! data dir, restarts a node after its boot delay when the process exits (exit code 10 is a
//! requested reboot, anything else a crash), owns the radio links (up iff both ends run and no
//! fault cuts it) and writes each node's link view to `<data>/radio.json` for the minion's
//! file-backed radio, and relays each node's management TCP traffic to the controller only while
//! the node has a path of up links to a POP (management is in-band). It injects faults (kill,
//! hang/resume, power off/on, cut/restore a link, power cut during a flash) and measures
//! **collateral isolation**: seconds during which a running node has no path to the controller.
//!
//! Layout: [`model`] is the pure core (links, paths, isolation; fake clock in tests),
//! [`relay`] the in-band path of one node, [`MeshSim`] the async shell around them, and
//! [`generate_mesh`] builds topologies of any size.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshlift_meshsim::MeshError> {
//! use meshlift_meshsim::{generate_mesh, MeshConfig, MeshSim};
//! use std::time::Duration;
//!
//! let mut config = MeshConfig::new(generate_mesh(30, 1), "target/debug/meshlift-minion", "/tmp/mesh");
//! config.node_template.board = "sim-board".into();
//! config.node_template.trusted_keys = vec!["/tmp/keys/demo.pub".into()];
//! config.node_template.factory_image = "/tmp/images/v1.mlimg".into();
//! config.node_template.extra_toml = "confirm_timeout_s = 60\n".into();
//! config.boot_delay = Duration::from_secs(2);
//! let sim = MeshSim::start(config).await?;
//! let mut events = sim.subscribe();
//! // ... run the upgrade against the controller at tcp://127.0.0.1:7007 ...
//! # let _ = events.try_recv();
//! println!("{}", sim.isolation().to_prometheus());
//! sim.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Panics
//! Nothing here panics on a topology, a node's behaviour or an operator's request: unknown names
//! and I/O failures are errors. The `expect`s guard lock poisoning, which cannot happen because
//! no code holding those locks panics.

pub mod generate;
pub mod isolation;
pub mod lab;
pub mod model;
pub mod node_config;
pub mod relay;
mod sim;
mod supervisor;

pub use generate::generate_mesh;
pub use isolation::{IsolationMeter, IsolationReport};
pub use model::{
    Change, DownCause, Effect, LinkView, MeshEvent, MeshModel, ModelError, NodeState, RadioView,
};
pub use node_config::{NodeConfig, NodeTemplate, RenderError};
pub use relay::{Relay, RelayCounts};
pub use sim::{
    node_file_stem, Customize, IsolationProbe, MeshConfig, MeshError, MeshSim, MeshSummary, NodeStats,
    DEFAULT_CONTROLLER_ENDPOINT, REBOOT_EXIT_CODE,
};
