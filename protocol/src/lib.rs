//! meshlift wire protocol and topology model.
//!
//! Everything that crosses a process boundary lives here: the upgrade messages (Terragraph's names
//! and fields in Rust style, SHA-256 instead of MD5), the envelope with its protocol version, the
//! bincode codec that refuses oversized or malformed frames before they reach any logic, and the
//! topology model that reads Terragraph's topology JSON.
//!
//! The optional `transport` feature adds the ZeroMQ shells (DEALER client with reconnect, ROUTER
//! server with identity tracking) shared by the controller, the minion and the CLI; without it the
//! crate does no I/O.
//!
//! # Panics
//! Nothing in this crate panics on input from the network or from a file: every decode returns a
//! typed error. A panic here is a bug.

pub mod api_token;
pub mod codec;
pub mod fleet;
pub mod messages;
pub mod sha;
pub mod topology;
#[cfg(feature = "transport")]
pub mod transport;

pub use codec::{decode, encode, DecodeError, EncodeError, Envelope, MAX_FRAME_DEFAULT, PROTOCOL_VERSION};
pub use messages::*;
pub use sha::Sha256Digest;
pub use topology::{Link, LinkType, Node, NodeStatus, NodeType, Site, Topology, TopologyError};
