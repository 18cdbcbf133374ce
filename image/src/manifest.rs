//! The signed manifest: what an image is, for which boards, and which payload it vouches for.

use meshlift_protocol::Sha256Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What the signature vouches for. Stored as JSON so an operator can read it with any tool; the
/// signature covers the stored bytes, so re-serialising is never needed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Image name (shown to operators; the controller's store is keyed by version).
    pub name: String,
    /// Version, ordered by [`crate::Version`].
    pub version: String,
    /// Boards this image runs on; a node whose board is not listed refuses the image.
    pub hardware_board_ids: Vec<String>,
    pub payload_sha256: Sha256Digest,
    pub payload_size: u64,
    /// UNIX milliseconds when the image was built.
    pub created: u64,
    /// Executables run by the minion at fixed points of the upgrade (Mender's update-interface
    /// protocol: `<hook> <state> <work-dir> <node> [args]`).
    #[serde(default)]
    pub hooks: Vec<Hook>,
}

impl Manifest {
    pub fn hook(&self, kind: HookKind) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.kind == kind)
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// After verification, before the first byte is written to the standby slot. Failure aborts
    /// the flash (FLASH_FAILED).
    PreFlash,
    /// After the standby slot was written and read back. Failure marks the flash failed.
    PostFlash,
    /// In the trial boot, before confirming. Failure or a hang means fallback.
    PostBootCheck,
}

impl HookKind {
    pub const ALL: [HookKind; 3] = [HookKind::PreFlash, HookKind::PostFlash, HookKind::PostBootCheck];

    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreFlash => "pre-flash",
            HookKind::PostFlash => "post-flash",
            HookKind::PostBootCheck => "post-boot-check",
        }
    }

    pub fn parse(s: &str) -> Option<HookKind> {
        HookKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One embedded executable. The content sits hex-encoded inside the manifest, so the manifest's
/// signature covers it without a second hashing scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub kind: HookKind,
    #[serde(serialize_with = "hex_ser", deserialize_with = "hex_de")]
    pub content: Vec<u8>,
}

fn hex_ser<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn hex_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}
