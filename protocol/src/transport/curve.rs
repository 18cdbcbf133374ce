//! CurveZMQ keys (RFC 26): Z85 text in files, loaded with the checks an operator expects.
//!
//! A secret key file holds two lines, `public <z85>` and `secret <z85>` (libzmq cannot derive the
//! public half from the secret one through the `zmq` crate, and keeping both lets a tool print the
//! public key of a secret file). It must not be readable by group or others: a secret key that
//! anyone on the box can read authenticates anyone as that node or operator, so such a file is
//! refused, as OpenSSH refuses a private key with loose permissions.
//!
//! A public key is 40 Z85 characters, alone in a `.pub` file or given inline.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a key could not be used. Every variant names the file or the text at fault.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read (missing, permissions).
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A secret key readable by group or others: fix with `chmod 600`.
    #[error("secret key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    LooseMode { path: PathBuf, mode: u32 },
    /// Not a key: wrong length or not Z85.
    #[error("{what} is not a CURVE key: {reason}")]
    Malformed { what: String, reason: String },
    /// Writing a key file failed.
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// libzmq could not make a key pair (built without CURVE).
    #[error("cannot generate a CURVE key pair: {0}")]
    Generate(String),
}

/// A CURVE public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurvePublicKey([u8; 32]);

impl CurvePublicKey {
    pub fn from_bytes(b: [u8; 32]) -> Self {
        CurvePublicKey(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parse 40 Z85 characters (surrounding white space ignored).
    pub fn from_z85(text: &str) -> Result<Self, KeyError> {
        decode32(text.trim(), "public key")
    }

    /// Z85 text (40 characters), as operators see and paste keys.
    pub fn to_z85(&self) -> String {
        z85(&self.0)
    }

    /// From a `.pub` file, or inline Z85 when `spec` is exactly 40 characters and no such file
    /// exists: the CLI's `--controller-key` takes either.
    pub fn from_file_or_z85(spec: &str) -> Result<Self, KeyError> {
        let path = Path::new(spec);
        if spec.trim().len() == 40 && !path.exists() {
            return Self::from_z85(spec);
        }
        Self::load(path)
    }

    /// Read a `.pub` file (one line of Z85), or the public line of a secret key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_bounded(path)?;
        let line = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("public ").or(if l.len() == 40 { Some(l) } else { None }))
            .ok_or_else(|| KeyError::Malformed {
                what: path.display().to_string(),
                reason: "no 40-character Z85 public key line".into(),
            })?;
        decode32(line.trim(), &path.display().to_string())
    }
}

impl fmt::Debug for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurvePublicKey({})", self.to_z85())
    }
}

impl fmt::Display for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

/// A CURVE key pair. The secret half never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct CurveKeyPair {
    public: CurvePublicKey,
    secret: [u8; 32],
}

impl fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurveKeyPair {{ public: {}, secret: <hidden> }}", self.public)
    }
}

impl CurveKeyPair {
    /// A fresh key pair from libzmq (libsodium's `crypto_box_keypair`).
    pub fn generate() -> Result<Self, KeyError> {
        let kp = zmq::CurveKeyPair::new().map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(CurveKeyPair { public: CurvePublicKey(kp.public_key), secret: kp.secret_key })
    }

    pub fn public(&self) -> CurvePublicKey {
        self.public
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Load a secret key file written by [`CurveKeyPair::save`] (`meshlift keygen --curve`),
    /// refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        check_private_mode(path)?;
        let text = read_bounded(path)?;
        let what = path.display().to_string();
        let mut public = None;
        let mut secret = None;
        for line in text.lines().map(str::trim) {
            if let Some(z) = line.strip_prefix("public ") {
                public = Some(decode32(z.trim(), &what)?);
            } else if let Some(z) = line.strip_prefix("secret ") {
                secret = Some(decode32(z.trim(), &what)?.0);
            }
        }
        match (public, secret) {
            (Some(public), Some(secret)) => Ok(CurveKeyPair { public, secret }),
            _ => Err(KeyError::Malformed {
                what,
                reason: "a secret key file needs a `public <z85>` and a `secret <z85>` line".into(),
            }),
        }
    }

    /// Write `<stem>.key` (secret, mode 0600, created with that mode so it is never readable by
    /// others, not even for a moment) and `<stem>.pub` (public, mode 0644) in `dir`.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write { path: dir.to_path_buf(), source })?;
        let key_path = dir.join(format!("{stem}.key"));
        let pub_path = dir.join(format!("{stem}.pub"));
        let text = format!(
            "# meshlift CURVE secret key: keep private (mode 0600)\npublic {}\nsecret {}\n",
            self.public.to_z85(),
            z85(&self.secret)
        );
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Write { path, source }
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(write_err(&key_path))?;
        f.write_all(text.as_bytes()).map_err(write_err(&key_path))?;
        f.sync_all().map_err(write_err(&key_path))?;
        std::fs::write(&pub_path, format!("{}\n", self.public.to_z85())).map_err(write_err(&pub_path))?;
        Ok((key_path, pub_path))
    }
}

fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::LooseMode { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Key files are tiny; refuse to read a large one (or a FIFO that never ends) into memory.
fn read_bounded(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    let mut text = String::new();
    f.take(4096)
        .read_to_string(&mut text)
        .map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    Ok(text)
}

fn decode32(z: &str, what: &str) -> Result<CurvePublicKey, KeyError> {
    if z.len() != 40 {
        return Err(KeyError::Malformed {
            what: what.to_string(),
            reason: format!("expected 40 Z85 characters, got {}", z.len()),
        });
    }
    // libzmq silently accepts characters outside the Z85 alphabet (and decodes them to garbage).
    if let Some(c) = z.chars().find(|c| !Z85_ALPHABET.contains(*c)) {
        return Err(KeyError::Malformed {
            what: what.to_string(),
            reason: format!("{c:?} is not a Z85 character"),
        });
    }
    let bytes = zmq::z85_decode(z)
        .map_err(|e| KeyError::Malformed { what: what.to_string(), reason: e.to_string() })?;
    let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| KeyError::Malformed {
        what: what.to_string(),
        reason: format!("decodes to {} bytes, not 32", b.len()),
    })?;
    Ok(CurvePublicKey(arr))
}

/// ZeroMQ RFC 32.
const Z85_ALPHABET: &str =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

fn z85(b: &[u8; 32]) -> String {
    // 32 bytes is a multiple of 4, the only way Z85 encoding can fail.
    zmq::z85_encode(b).expect("32 bytes always encode to Z85")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_keys_load_back_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kp = CurveKeyPair::generate().unwrap();
        let (key, public) = kp.save(dir.path(), "node").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let back = CurveKeyPair::load(&key).unwrap();
        assert_eq!(back.public(), kp.public());
        assert_eq!(back.secret_bytes(), kp.secret_bytes());
        assert_eq!(CurvePublicKey::load(&public).unwrap(), kp.public());
        assert_eq!(CurvePublicKey::from_file_or_z85(&kp.public().to_z85()).unwrap(), kp.public());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = CurveKeyPair::load(&key).unwrap_err();
        assert!(matches!(err, KeyError::LooseMode { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        // Never overwrites an existing key.
        assert!(kp.save(dir.path(), "node").is_err());
    }

    #[test]
    fn malformed_keys_name_the_culprit() {
        let err = CurvePublicKey::from_z85("short").unwrap_err();
        assert!(err.to_string().contains("40 Z85"), "{err}");
        let err = CurvePublicKey::from_z85(&"~".repeat(40)).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        assert!(!format!("{:?}", CurveKeyPair::generate().unwrap()).contains("secret: ["));
    }
}
