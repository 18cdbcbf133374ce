//! The seam between the image store and image verification (crate `meshlift-image`).
//!
//! The store never accepts a file it has not verified: a signature over the manifest by a trusted
//! key, and a payload matching the manifest. Verification sits behind a trait so the store's own
//! tests can run on opaque bytes where the image format is not the point.

use std::path::Path;

/// What the store needs to know about a verified image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImageInfo {
    /// Unique key in the store (Terragraph uses the version as the name).
    pub name: String,
    pub version: String,
    pub hardware_board_ids: Vec<String>,
}

/// Checks a candidate image file before the store accepts it. Runs on a blocking thread.
pub trait ImageVerifier: Send + Sync + 'static {
    /// `Err` carries the operator-readable reason the image was refused.
    fn verify(&self, path: &Path) -> Result<VerifiedImageInfo, String>;
}
