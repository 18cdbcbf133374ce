//! Reading and verifying images: cheap checks first (header, lengths, signature), then one
//! streamed pass over the payload.

use crate::format::{Header, HEADER_LEN, SIGNATURE_BLOCK_LEN};
use crate::keys::{key_id, KeyId};
use crate::{ImageError, Manifest, Version};
use ed25519_dalek::{Signature, VerifyingKey};
use meshlift_protocol::Sha256Digest;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc::sync_channel;

/// Chunk size of the streamed pass: large enough that per-chunk overhead vanishes, small enough
/// that memory stays at a few MiB whatever the image size.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the reading thread and the payload hasher.
const CHUNKS_IN_FLIGHT: usize = 4;

/// An image whose signature was checked against a trusted key and whose payload matched the
/// signed manifest. Only [`verify_file`] makes one, so holding it means "verified".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    pub manifest: Manifest,
    /// SHA-256 of the whole `.mlimg` file (what `UpgradeReq.sha256` carries).
    pub file_sha256: Sha256Digest,
    pub key_id: KeyId,
    /// Offset of the payload in the file, for the flasher's copy.
    pub payload_offset: u64,
}

impl VerifiedImage {
    /// The install policy a node applies after verification: its board must be listed, and the
    /// image must not be older than `installed_version` unless `allow_downgrade` (RAUC's
    /// `min-bundle-version`, updog's "only increases").
    pub fn check_install(
        &self,
        board: &str,
        installed_version: &str,
        allow_downgrade: bool,
    ) -> Result<(), ImageError> {
        if !self.manifest.hardware_board_ids.iter().any(|b| b == board) {
            return Err(ImageError::WrongBoard {
                board: board.to_string(),
                supported: self.manifest.hardware_board_ids.clone(),
            });
        }
        let offered = Version::parse(&self.manifest.version)?;
        // An installed version we cannot parse cannot be ordered against: only an explicit
        // downgrade permission lets such a node move.
        let older = match Version::parse(installed_version) {
            Ok(installed) => offered < installed,
            Err(_) => true,
        };
        if older && !allow_downgrade {
            return Err(ImageError::Downgrade {
                installed: installed_version.to_string(),
                offered: self.manifest.version.clone(),
            });
        }
        Ok(())
    }
}

/// Who signed an image, as the image itself claims (not yet checked against any trust list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub public_key: VerifyingKey,
    pub key_id: KeyId,
    /// The signature matches the manifest under `public_key` (self-consistent; says nothing about
    /// trust).
    pub signature_valid: bool,
}

/// Header, manifest and claimed signer, read without hashing the payload (for `inspect`).
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub header: Header,
    pub manifest: Manifest,
    pub signer: Option<Signer>,
    /// Actual file size (may differ from what the header says for a damaged file).
    pub file_len: u64,
}

/// Reads header, manifest and signature block. Refuses files whose size does not match the header.
pub fn read_manifest(path: &Path) -> Result<ImageSummary, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| ImageError::io(path, e))?.len();
    let (summary, _, _) = read_front(&mut file, file_len, path)?;
    Ok(summary)
}

/// [`read_manifest`] on bytes already in memory (an upload, a fuzz input): the same checks, with
/// `bytes.len()` as the file length. Memory stays bounded by the header's limits, whatever the
/// bytes claim.
pub fn read_manifest_from_bytes(bytes: &[u8]) -> Result<ImageSummary, ImageError> {
    let (summary, _, _) =
        read_front(&mut std::io::Cursor::new(bytes), bytes.len() as u64, Path::new("<memory>"))?;
    Ok(summary)
}

/// Verifies an image file against `trusted` keys: format, lengths, signature by a trusted key,
/// payload SHA-256 and size. Streams the file once; memory use is constant.
pub fn verify_file(path: &Path, trusted: &[VerifyingKey]) -> Result<VerifiedImage, ImageError> {
    verify_file_with(path, trusted, None)
}

/// [`verify_file`], also requiring the whole file to hash to `expected_file_sha256` (the digest
/// the controller announced).
pub fn verify_file_with(
    path: &Path,
    trusted: &[VerifyingKey],
    expected_file_sha256: Option<Sha256Digest>,
) -> Result<VerifiedImage, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| ImageError::io(path, e))?.len();
    let (summary, front_bytes, signature) = read_front(&mut file, file_len, path)?;
    let Some(signer) = summary.signer.as_ref() else {
        return Err(ImageError::Unsigned);
    };
    if !trusted.contains(&signer.public_key) {
        return Err(ImageError::UnknownKey { key_id: signer.key_id.to_string() });
    }
    let manifest_bytes = &front_bytes[HEADER_LEN..HEADER_LEN + summary.header.manifest_len as usize];
    let signature = signature.ok_or(ImageError::Unsigned)?;
    signer
        .public_key
        .verify_strict(manifest_bytes, &signature)
        .map_err(|_| ImageError::BadSignature { key_id: signer.key_id.to_string() })?;

    let mut file_hasher = Sha256::new();
    file_hasher.update(&front_bytes);
    file.seek(SeekFrom::Start(summary.header.payload_offset())).map_err(|e| ImageError::io(path, e))?;
    let payload_sha256 = hash_payload(&mut file, path, summary.header.payload_len, &mut file_hasher)?;
    if payload_sha256 != summary.manifest.payload_sha256 {
        return Err(ImageError::CorruptPayload {
            expected: summary.manifest.payload_sha256,
            actual: payload_sha256,
        });
    }
    let file_sha256 = Sha256Digest(file_hasher.finalize().into());
    if let Some(expected) = expected_file_sha256 {
        if expected != file_sha256 {
            return Err(ImageError::FileDigestMismatch { expected, actual: file_sha256 });
        }
    }
    Ok(VerifiedImage {
        payload_offset: summary.header.payload_offset(),
        key_id: signer.key_id.clone(),
        manifest: summary.manifest,
        file_sha256,
    })
}

/// Returns the summary, the raw bytes before the payload (header ‖ manifest ‖ signature block) and
/// the parsed signature.
fn read_front(
    file: &mut impl Read,
    file_len: u64,
    path: &Path,
) -> Result<(ImageSummary, Vec<u8>, Option<Signature>), ImageError> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    file.by_ref().take(HEADER_LEN as u64).read_to_end(&mut head).map_err(|e| ImageError::io(path, e))?;
    let header = Header::decode(&head)?;
    if file_len < header.file_len() {
        return Err(ImageError::Truncated { expected: header.file_len(), actual: file_len });
    }
    if file_len > header.file_len() {
        return Err(ImageError::TrailingData { extra: file_len - header.file_len() });
    }
    let front_len = header.payload_offset() as usize;
    let mut front = head;
    front.resize(front_len, 0);
    file.read_exact(&mut front[HEADER_LEN..]).map_err(|e| ImageError::io(path, e))?;

    let manifest_bytes = &front[HEADER_LEN..HEADER_LEN + header.manifest_len as usize];
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| ImageError::BadManifest(e.to_string()))?;
    if manifest.payload_size != header.payload_len {
        return Err(ImageError::BadManifest(format!(
            "manifest says payload is {} bytes, header says {}",
            manifest.payload_size, header.payload_len
        )));
    }
    let (signer, signature) = if header.signature_len == SIGNATURE_BLOCK_LEN {
        let block = &front[HEADER_LEN + header.manifest_len as usize..];
        let mut key_bytes = [0u8; 32];
        key_bytes.copy_from_slice(&block[..32]);
        let public_key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| ImageError::BadManifest("signature block holds an invalid public key".into()))?;
        let signature = Signature::from_slice(&block[32..96])
            .map_err(|_| ImageError::BadManifest("signature block holds a malformed signature".into()))?;
        let signature_valid = public_key.verify_strict(manifest_bytes, &signature).is_ok();
        (Some(Signer { key_id: key_id(&public_key), public_key, signature_valid }), Some(signature))
    } else {
        (None, None)
    };
    Ok((ImageSummary { header, manifest, signer, file_len }, front, signature))
}

/// Hashes `len` payload bytes into a fresh payload hasher *and* into `file_hasher`, on two
/// threads: this thread reads and feeds the file hash, a helper feeds the payload hash, with a
/// small pool of recycled buffers between them. Two hashes at the cost of one in wall time.
pub(crate) fn hash_payload(
    reader: &mut impl Read,
    path: &Path,
    len: u64,
    file_hasher: &mut Sha256,
) -> Result<Sha256Digest, ImageError> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(CHUNKS_IN_FLIGHT);
        let (free_tx, free_rx) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        for _ in 0..CHUNKS_IN_FLIGHT {
            free_tx.send(vec![0u8; CHUNK]).expect("receiver is alive: it is in this scope");
        }
        let payload_hasher = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for (buf, n) in full_rx {
                hasher.update(&buf[..n]);
                // The reader may have stopped early (error); a closed pool is fine then.
                let _ = free_tx.send(buf);
            }
            Sha256Digest(hasher.finalize().into())
        });
        let mut remaining = len;
        let mut done = 0u64;
        while remaining > 0 {
            let mut buf =
                free_rx.recv().expect("the hasher thread returns every buffer until we close its queue");
            let want = remaining.min(CHUNK as u64) as usize;
            let n = read_full(reader, &mut buf[..want]).map_err(|e| ImageError::io(path, e))?;
            if n < want {
                return Err(ImageError::Truncated { expected: len, actual: done + n as u64 });
            }
            file_hasher.update(&buf[..n]);
            full_tx.send((buf, n)).expect("the hasher thread runs until we close its queue");
            remaining -= n as u64;
            done += n as u64;
        }
        drop(full_tx);
        Ok(payload_hasher.join().expect("the hasher thread does not panic: it only hashes bytes"))
    })
}

/// Reads until `buf` is full or the reader is at its end.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
