//! The fixed 32-byte header that starts every `.mlimg` file.

use crate::ImageError;

/// `MLIMG\0\r\n`: the `\r\n` catches text-mode transfers that rewrite line endings.
pub const MAGIC: [u8; 8] = *b"MLIMG\0\r\n";
/// The only format this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 32;
/// Length of the signature block of a signed v1 image: public key (32) ‖ ed25519 signature (64).
/// Carrying the public key lets `inspect` name the signer even without the trusted key at hand.
pub const SIGNATURE_BLOCK_LEN: u32 = 96;
/// Manifests are small (hooks are scripts); a larger length means a corrupt or hostile header, and
/// refusing it early keeps memory bounded.
pub const MAX_MANIFEST_LEN: u32 = 4 * 1024 * 1024;

/// The header: magic, format version and the lengths of the three sections, little endian.
///
/// ```text
/// 0..8   magic         8..10  format version   10..12 reserved (0)
/// 12..16 manifest len  16..20 signature len    20..24 reserved (0)
/// 24..32 payload len
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub manifest_len: u32,
    pub signature_len: u32,
    pub payload_len: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.manifest_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.signature_len.to_le_bytes());
        out[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        out
    }

    /// Parses the first bytes of a file; `bytes` may be shorter than a header (a truncated file).
    pub fn decode(bytes: &[u8]) -> Result<Header, ImageError> {
        if bytes.len() < MAGIC.len() || bytes[0..8] != MAGIC {
            if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
                return Err(ImageError::Truncated {
                    expected: HEADER_LEN as u64,
                    actual: bytes.len() as u64,
                });
            }
            return Err(ImageError::NotAnImage);
        }
        if bytes.len() < HEADER_LEN {
            return Err(ImageError::Truncated { expected: HEADER_LEN as u64, actual: bytes.len() as u64 });
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let version = u16_at(8);
        if version != FORMAT_VERSION {
            return Err(ImageError::UnsupportedFormat(version));
        }
        if bytes[10..12] != [0, 0] || bytes[20..24] != [0, 0, 0, 0] {
            // Reserved bytes are not covered by the signature; refusing non-zero ones keeps every
            // header bit meaningful (a flipped bit anywhere is caught).
            return Err(ImageError::BadManifest("non-zero reserved header bytes".into()));
        }
        let mut payload = [0u8; 8];
        payload.copy_from_slice(&bytes[24..32]);
        let header = Header {
            manifest_len: u32_at(12),
            signature_len: u32_at(16),
            payload_len: u64::from_le_bytes(payload),
        };
        if header.manifest_len == 0 || header.manifest_len > MAX_MANIFEST_LEN {
            return Err(ImageError::BadManifest(format!(
                "manifest length {} out of range",
                header.manifest_len
            )));
        }
        if header.signature_len != 0 && header.signature_len != SIGNATURE_BLOCK_LEN {
            return Err(ImageError::BadManifest(format!(
                "signature block of {} bytes (want 0 or {SIGNATURE_BLOCK_LEN})",
                header.signature_len
            )));
        }
        if header.payload_offset().checked_add(header.payload_len).is_none() {
            // `file_len` would overflow: no file is that long, and the sum must stay exact.
            return Err(ImageError::BadManifest(format!(
                "payload length {} out of range",
                header.payload_len
            )));
        }
        Ok(header)
    }

    /// Offset of the first payload byte.
    pub fn payload_offset(&self) -> u64 {
        HEADER_LEN as u64 + self.manifest_len as u64 + self.signature_len as u64
    }

    /// Size the whole file must have.
    pub fn file_len(&self) -> u64 {
        self.payload_offset() + self.payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_garbage() {
        let h = Header { manifest_len: 300, signature_len: 96, payload_len: 5 << 30 };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        assert!(matches!(Header::decode(b"#!/bin/sh\n"), Err(ImageError::NotAnImage)));
        assert!(matches!(Header::decode(&h.encode()[..20]), Err(ImageError::Truncated { .. })));
        assert!(matches!(Header::decode(b"MLI"), Err(ImageError::Truncated { .. })));
        // A payload length whose file length overflows u64 (found by reading for the fuzz target).
        let huge = Header { manifest_len: 300, signature_len: 96, payload_len: u64::MAX - 100 };
        assert!(matches!(Header::decode(&huge.encode()), Err(ImageError::BadManifest(_))));
        let mut v2 = h.encode();
        v2[8] = 2;
        assert!(matches!(Header::decode(&v2), Err(ImageError::UnsupportedFormat(2))));
        let mut reserved = h.encode();
        reserved[21] = 1;
        assert!(Header::decode(&reserved).is_err());
    }
}
