//! The `.mlimg` signed image format: build, inspect and verify.
//!
//! An image is one file:
//!
//! ```text
//! +----------------------+  32 bytes, see [`format::Header`]
//! | magic "MLIMG\0\r\n"  |
//! | format version (u16) |
//! | manifest length      |
//! | signature length     |  0 = unsigned, 96 = ed25519 (public key ‖ signature)
//! | payload length       |
//! +----------------------+
//! | manifest (JSON)      |  name, version, boards, payload sha256 + size, created, hooks
//! +----------------------+
//! | signature            |  ed25519 over the manifest bytes exactly as stored
//! +----------------------+
//! | payload              |  what is written to the standby slot
//! +----------------------+
//! ```
//!
//! The signature covers the manifest, and the manifest pins the payload by SHA-256 and size, so a
//! verified manifest vouches for every payload byte. Hooks (executables such as a
//! `post-boot-check` script) live inside the manifest and are therefore signed too.
//!
//! Two different hashes matter: the *payload* SHA-256 (in the signed manifest, what the slot
//! holds) and the *file* SHA-256 (the whole `.mlimg`, what `UpgradeReq.sha256` and
//! `UpgradeImage.sha256` carry, so a node can check a download before parsing it).
//! [`verify_file`] computes both in one streamed pass, hashing them on two threads so that
//! verification runs at the speed of a single `sha256sum`, in constant memory whatever the size.
//!
//! Versions compare with [`Version`]: dotted numeric, semver-like (documented there).
//!
//! # Panics
//! Nothing here panics on a file's content: every malformed header, manifest, key or signature is
//! an [`ImageError`] naming what is wrong. A panic is a bug.

mod build;
mod error;
pub mod format;
mod keys;
mod manifest;
mod verify;
mod version;

pub use build::{build_image, BuildOptions, BuiltImage};
pub use error::ImageError;
pub use keys::{generate_keypair, key_id, load_public_key, load_signing_key, KeyId, KeyPairPaths};
pub use manifest::{Hook, HookKind, Manifest};
pub use meshlift_protocol::Sha256Digest;
pub use verify::{
    read_manifest, read_manifest_from_bytes, verify_file, verify_file_with, ImageSummary, Signer,
    VerifiedImage,
};
pub use version::{BadVersion, Version};

/// Re-exported so that callers name keys without depending on `ed25519-dalek` themselves.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
