//! Image distribution on the controller: the image store, the librqbit seeder, the embedded
//! tracker, and the HTTP routes that serve images and announces.
//!
//! Flow: `ImageStore::add` verifies an image, stores it as `<dir>/<sha256>.mlimg`, creates its
//! torrent and seeds it, and registers its info-hash with the tracker. The upgrade engine puts
//! the image's `magnet_uri`, `http_uri`, `sha256` and the store's `initial_peers()` into each
//! PREPARE request; minions fetch from the swarm and fall back to `/images/…` over HTTP.

mod http;
mod seeder;
mod store;
mod torrent;
pub mod tracker;
mod verify;

pub use http::router;
pub use seeder::{SeedError, SeederStats};
pub use store::{
    magnet_uri, piece_length_for, AddProgress, DistConfig, ImageStore, ImageStoreError, StoredFiles,
    IMAGE_EXT,
};
pub use verify::{ImageVerifier, VerifiedImageInfo};
