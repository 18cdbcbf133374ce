//! Building and signing an image (`meshlift image build`, the controller's test fixtures, the demo).

use crate::format::{Header, MAX_MANIFEST_LEN, SIGNATURE_BLOCK_LEN};
use crate::verify::{hash_payload, read_full};
use crate::{Hook, HookKind, ImageError, Manifest, Version};
use ed25519_dalek::{Signer as _, SigningKey};
use meshlift_protocol::Sha256Digest;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub name: String,
    /// Must parse as a [`Version`]: an image nobody can order would be refused by every node.
    pub version: String,
    pub hardware_board_ids: Vec<String>,
    pub payload: PathBuf,
    /// Executables to embed, at most one per kind.
    pub hooks: Vec<(HookKind, PathBuf)>,
    /// UNIX milliseconds stamped into the manifest.
    pub created: u64,
}

/// The result of [`build_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub manifest: Manifest,
    /// SHA-256 of the written `.mlimg` file.
    pub file_sha256: Sha256Digest,
    pub file_len: u64,
}

/// Writes `out` (via `out.tmp` and a rename, so a half-written image never carries the final
/// name). `key = None` builds an unsigned image, which nodes refuse: only useful for tests.
pub fn build_image(
    options: &BuildOptions,
    key: Option<&SigningKey>,
    out: &Path,
) -> Result<BuiltImage, ImageError> {
    Version::parse(&options.version)?;
    if options.name.trim().is_empty() {
        return Err(ImageError::BadBuildInput("empty image name".into()));
    }
    if options.hardware_board_ids.is_empty() || options.hardware_board_ids.iter().any(|b| b.trim().is_empty())
    {
        return Err(ImageError::BadBuildInput("at least one non-empty hardware board id is required".into()));
    }
    let mut hooks = Vec::new();
    for (kind, path) in &options.hooks {
        if hooks.iter().any(|h: &Hook| h.kind == *kind) {
            return Err(ImageError::BadBuildInput(format!("hook {kind} given twice")));
        }
        let content = fs::read(path).map_err(|e| ImageError::io(path, e))?;
        hooks.push(Hook { kind: *kind, content });
    }

    let payload_path = &options.payload;
    let payload_len = fs::metadata(payload_path).map_err(|e| ImageError::io(payload_path, e))?.len();
    let mut payload = File::open(payload_path).map_err(|e| ImageError::io(payload_path, e))?;
    let payload_sha256 = hash_payload(&mut payload, payload_path, payload_len, &mut Sha256::new())?;

    let manifest = Manifest {
        name: options.name.clone(),
        version: options.version.clone(),
        hardware_board_ids: options.hardware_board_ids.clone(),
        payload_sha256,
        payload_size: payload_len,
        created: options.created,
        hooks,
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ImageError::BadManifest(e.to_string()))?;
    if manifest_bytes.len() > MAX_MANIFEST_LEN as usize {
        return Err(ImageError::BadBuildInput(format!(
            "manifest of {} bytes exceeds {MAX_MANIFEST_LEN} (hooks too large?)",
            manifest_bytes.len()
        )));
    }
    let signature_block: Vec<u8> = match key {
        Some(key) => {
            let mut block = key.verifying_key().to_bytes().to_vec();
            block.extend_from_slice(&key.sign(&manifest_bytes).to_bytes());
            block
        }
        None => Vec::new(),
    };
    let header = Header {
        manifest_len: manifest_bytes.len() as u32,
        signature_len: if key.is_some() { SIGNATURE_BLOCK_LEN } else { 0 },
        payload_len,
    };

    let tmp = out.with_extension("mlimg.tmp");
    let result = write_image(&tmp, &header, &manifest_bytes, &signature_block, payload_path, payload_sha256);
    let file_sha256 = match result {
        Ok(digest) => digest,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, out).map_err(|e| ImageError::io(out, e))?;
    Ok(BuiltImage { manifest, file_sha256, file_len: header.file_len() })
}

fn write_image(
    tmp: &Path,
    header: &Header,
    manifest: &[u8],
    signature_block: &[u8],
    payload_path: &Path,
    payload_sha256: Sha256Digest,
) -> Result<Sha256Digest, ImageError> {
    let file = File::create(tmp).map_err(|e| ImageError::io(tmp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut file_hasher = Sha256::new();
    let mut payload_hasher = Sha256::new();
    for part in [&header.encode()[..], manifest, signature_block] {
        file_hasher.update(part);
        out.write_all(part).map_err(|e| ImageError::io(tmp, e))?;
    }
    let mut payload = File::open(payload_path).map_err(|e| ImageError::io(payload_path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = read_full(&mut payload, &mut buf).map_err(|e| ImageError::io(payload_path, e))?;
        if n == 0 {
            break;
        }
        file_hasher.update(&buf[..n]);
        payload_hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| ImageError::io(tmp, e))?;
        copied += n as u64;
    }
    // The payload was hashed in a first pass; if it changed since, the manifest would lie.
    let copied_sha256 = Sha256Digest(payload_hasher.finalize().into());
    if copied != header.payload_len || copied_sha256 != payload_sha256 {
        return Err(ImageError::BadBuildInput(format!(
            "{} changed while the image was built",
            payload_path.display()
        )));
    }
    let file = out.into_inner().map_err(|e| ImageError::io(tmp, e.into_error()))?;
    file.sync_all().map_err(|e| ImageError::io(tmp, e))?;
    Ok(Sha256Digest(file_hasher.finalize().into()))
}
