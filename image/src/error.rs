//! Everything that can be wrong with an image, sorted by whose fault it is.

use meshlift_protocol::Sha256Digest;
use std::path::PathBuf;

/// Why an image was refused or could not be built. The `Display` text is the reason that goes on
/// the wire and into the operator's status table, so each one says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read or written (missing, permissions, disk full).
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the `.mlimg` magic: not an image at all (wrong file given).
    #[error("not a meshlift image (bad magic)")]
    NotAnImage,
    /// Built by a newer (or broken) tool; upgrade the reader or rebuild the image.
    #[error("unsupported image format version {0} (this build reads version 1)")]
    UnsupportedFormat(u16),
    /// The file ends before the lengths in its header say it should: an interrupted download or
    /// copy. Fetch it again.
    #[error("truncated image: expected {expected} bytes, file has {actual}")]
    Truncated { expected: u64, actual: u64 },
    /// More bytes than the header accounts for: the file was appended to or mangled.
    #[error("corrupt image: {extra} bytes after the payload")]
    TrailingData { extra: u64 },
    /// The manifest is not valid JSON of the expected shape, or is inconsistent with the header.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// No signature at all. Sign the image with `meshlift image build --key`.
    #[error("unsigned image: nodes only accept images signed by a trusted key")]
    Unsigned,
    /// Signed, but by a key this node does not trust: add the public key to the node's
    /// `trusted_keys`, or sign with a trusted key.
    #[error("image signed by unknown key {key_id}")]
    UnknownKey { key_id: String },
    /// The signature does not match the manifest: the manifest was altered after signing.
    #[error("bad signature by key {key_id}: the manifest was altered after signing")]
    BadSignature { key_id: String },
    /// The payload's SHA-256 or size differs from the signed manifest: corrupted in transit or on
    /// disk. Fetch it again.
    #[error("corrupt payload: manifest says sha256 {expected}, payload has {actual}")]
    CorruptPayload { expected: Sha256Digest, actual: Sha256Digest },
    /// The whole file differs from the SHA-256 the controller announced.
    #[error("image file sha256 is {actual}, the request expected {expected}")]
    FileDigestMismatch { expected: Sha256Digest, actual: Sha256Digest },
    /// The image does not list this node's hardware board.
    #[error("image is for boards [{}], this node is {board}", supported.join(", "))]
    WrongBoard { board: String, supported: Vec<String> },
    /// Older than what is installed; a downgrade needs `allow_downgrade` in the request.
    #[error("image version {offered} is older than installed {installed} (downgrade not allowed)")]
    Downgrade { installed: String, offered: String },
    /// A version string that is not dotted numeric (see [`crate::Version`]).
    #[error(transparent)]
    BadVersion(#[from] crate::BadVersion),
    /// A key file that is not a PEM ed25519 key of the expected kind.
    #[error("bad key file {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    /// Operator input to `build` that cannot make a valid image.
    #[error("cannot build image: {0}")]
    BadBuildInput(String),
}

impl ImageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io { path: path.into(), source }
    }
}
