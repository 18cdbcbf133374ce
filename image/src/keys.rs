//! Signing keys on disk: PKCS#8 / SPKI PEM, the same text `openssl pkey` reads and writes, so an
//! operator can inspect or produce keys with standard tools.

use crate::ImageError;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Short, stable name of a public key: the first 8 bytes of SHA-256 over its 32 raw bytes, in hex.
/// Shown by `inspect` and in refusals ("signed by unknown key …") so operators can tell keys apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn key_id(key: &VerifyingKey) -> KeyId {
    let digest = Sha256::digest(key.as_bytes());
    KeyId(hex::encode(&digest[..8]))
}

/// Where [`generate_keypair`] wrote the two files.
#[derive(Debug, Clone)]
pub struct KeyPairPaths {
    /// `DIR/meshlift.key`, PKCS#8 PEM, mode 0600.
    pub private: PathBuf,
    /// `DIR/meshlift.pub`, SPKI PEM.
    pub public: PathBuf,
    pub key_id: KeyId,
}

/// Creates `dir/meshlift.key` (private, 0600) and `dir/meshlift.pub`. Refuses to overwrite an
/// existing private key: losing a signing key strands every node that trusts only it.
pub fn generate_keypair(dir: &Path) -> Result<KeyPairPaths, ImageError> {
    fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
    let private = dir.join("meshlift.key");
    let public = dir.join("meshlift.pub");
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let private_pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| ImageError::BadKey { path: private.clone(), reason: e.to_string() })?;
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ImageError::BadKey { path: public.clone(), reason: e.to_string() })?;

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&private).map_err(|e| ImageError::io(&private, e))?;
    file.write_all(private_pem.as_bytes()).map_err(|e| ImageError::io(&private, e))?;
    file.sync_all().map_err(|e| ImageError::io(&private, e))?;
    fs::write(&public, public_pem.as_bytes()).map_err(|e| ImageError::io(&public, e))?;
    Ok(KeyPairPaths { private, public, key_id: key_id(&signing.verifying_key()) })
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, ImageError> {
    let text = fs::read_to_string(path).map_err(|e| ImageError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| ImageError::BadKey {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 private key in PKCS#8 PEM ({e})"),
    })
}

pub fn load_public_key(path: &Path) -> Result<VerifyingKey, ImageError> {
    let text = fs::read_to_string(path).map_err(|e| ImageError::io(path, e))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| ImageError::BadKey {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 public key in SPKI PEM ({e})"),
    })
}
