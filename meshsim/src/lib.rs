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
//! # Panics
//! Nothing here panics on a topology, a node's behaviour or an operator's request: unknown names
//! and I/O failures are errors. The `expect`s guard lock poisoning, which cannot happen because
//! no code holding those locks panics.

pub mod generate;
pub mod isolation;
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
    Customize, MeshConfig, MeshError, MeshSim, MeshSummary, NodeStats, DEFAULT_CONTROLLER_ENDPOINT,
    REBOOT_EXIT_CODE,
};
