//! The wire envelope and its bincode codec.
//!
//! A frame is refused before any decoding when it is larger than the configured maximum, so a
//! hostile or broken peer cannot make us allocate. The protocol version is read from a fixed
//! two-byte prefix before the body is decoded, so an incompatible peer gets a precise error
//! ("unsupported protocol version 7") instead of a garbled decode failure.

use crate::messages::Message;
use serde::{Deserialize, Serialize};

/// Version of this wire protocol. Bump on any incompatible change of [`Message`]. 2: the
/// commit planner's `strategy` on commit and plan requests, node key messages. 3: seeds,
/// connections and rates in `DownloadProgress` (all eight `upgrade.bt.*` figures), the
/// REVERT_TO_STANDBY request, startup configuration (with PREPARE, in status reports, CONFIG_*).
pub const PROTOCOL_VERSION: u16 = 3;

/// Default maximum frame size (1 MiB): far above any real message (a state dump of a 10 000-node
/// request is a few hundred KiB), far below what would hurt a controller.
pub const MAX_FRAME_DEFAULT: usize = 1 << 20;

/// Hard ceiling of the decoder's allocation limit, whatever `max_frame` a caller passes.
const DECODE_LIMIT: usize = 64 << 20;

/// What travels in one ZeroMQ frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub protocol_version: u16,
    /// Correlates a reply with its request; chosen by the sender of the request.
    pub request_id: u64,
    pub body: Message,
}

impl Envelope {
    pub fn new(request_id: u64, body: Message) -> Self {
        Envelope { protocol_version: PROTOCOL_VERSION, request_id, body }
    }
}

/// Why a frame was refused. Every variant is the peer's fault, never ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame exceeds the maximum size: a broken or hostile peer.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// Fewer bytes than the version prefix: a truncated frame.
    #[error("frame of {len} bytes is too short to hold a protocol version")]
    TooShort { len: usize },
    /// The peer speaks another protocol version: upgrade one side.
    #[error("unsupported protocol version {got} (this build speaks {supported})")]
    UnsupportedVersion { got: u16, supported: u16 },
    /// The bytes are not a valid envelope: corrupt, truncated, or not meshlift at all.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A well-formed message beyond the protocol's bounds (too many links, an overlong string).
    #[error("message over limits: {0}")]
    OverLimit(String),
    /// A valid envelope followed by extra bytes: corrupt or hostile.
    #[error("malformed frame: {extra} trailing bytes after the message")]
    TrailingBytes { extra: usize },
}

/// Encoding can only fail on a bug (a type serde cannot encode with bincode).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message (bug): {0}")]
pub struct EncodeError(String);

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encode: 2-byte big-endian protocol version, then the bincode envelope.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let mut out = env.protocol_version.to_be_bytes().to_vec();
    let body = bincode::serde::encode_to_vec(env, config()).map_err(|e| EncodeError(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode one frame, refusing anything larger than `max_frame` before looking at it.
pub fn decode(bytes: &[u8], max_frame: usize) -> Result<Envelope, DecodeError> {
    if bytes.len() > max_frame {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: max_frame });
    }
    if bytes.len() < 2 {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { got: version, supported: PROTOCOL_VERSION });
    }
    let (env, used): (Envelope, usize) = bincode::serde::decode_from_slice(&bytes[2..], config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if env.protocol_version != version {
        return Err(DecodeError::Malformed(format!(
            "version prefix {version} disagrees with envelope version {}",
            env.protocol_version
        )));
    }
    let extra = bytes.len() - 2 - used;
    if extra != 0 {
        return Err(DecodeError::TrailingBytes { extra });
    }
    if let Message::StatusReport(r) = &env.body {
        r.check_bounds().map_err(DecodeError::OverLimit)?;
    }
    if let Message::UpgradeReq(r) = &env.body {
        if let Some(c) = r.startup_config.as_ref().filter(|c| c.text.len() > crate::MAX_STARTUP_CONFIG) {
            return Err(DecodeError::OverLimit(format!(
                "startup configuration of {} bytes (limit {})",
                c.text.len(),
                crate::MAX_STARTUP_CONFIG
            )));
        }
    }
    Ok(env)
}
