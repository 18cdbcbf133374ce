//! meshlift controller: the upgrade engine (sans-IO), its SQLite store, image distribution, and
//! the shells that connect them to ZeroMQ, HTTP and disk.

pub mod address;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dist;
pub mod engine;
pub mod golden;
pub mod health;
pub mod metrics;
pub mod outbox;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod systemd;
