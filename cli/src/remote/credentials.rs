//! Which CURVE keys a remote command uses, and where they come from.
//!
//! - the operator's secret key: `--key FILE`, else `$MESHLIFT_KEY`, else
//!   `~/.config/meshlift/operator.key` (if that file exists);
//! - the controller's public key: `--controller-key FILE|Z85`, else `$MESHLIFT_CONTROLLER_KEY`;
//! - `--insecure` or `MESHLIFT_INSECURE=1`: plain text, no keys (a controller with
//!   `security.insecure = true`).
//!
//! A flag always beats the environment, the environment beats the default path. Missing keys are
//! an error that says how to get them; a key that cannot be used names the file and where its
//! name came from.

use meshlift_protocol::transport::{ClientSecurity, CurveKeyPair, CurvePublicKey, KeyError};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the operator's secret key file.
pub const ENV_KEY: &str = "MESHLIFT_KEY";
/// Environment variable holding the controller's public key (file or Z85).
pub const ENV_CONTROLLER_KEY: &str = "MESHLIFT_CONTROLLER_KEY";
/// Environment variable asking for plain text (`1`).
pub const ENV_INSECURE: &str = "MESHLIFT_INSECURE";
/// Default operator key, relative to `$HOME`.
pub const DEFAULT_KEY: &str = ".config/meshlift/operator.key";

/// What the command line said about keys (the environment is read separately).
#[derive(Debug, Clone, Default)]
pub struct KeyFlags {
    pub key: Option<PathBuf>,
    pub controller_key: Option<String>,
    pub insecure: bool,
}

/// Where a key's file name or text came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    DefaultPath,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::Env(var) => write!(f, "${var}"),
            Origin::DefaultPath => write!(f, "the default path ~/{DEFAULT_KEY}"),
        }
    }
}

/// The keys of one client, loaded.
#[derive(Debug, Clone)]
pub enum Credentials {
    Curve {
        keys: CurveKeyPair,
        key_path: PathBuf,
        key_origin: Origin,
        server: CurvePublicKey,
        server_origin: Origin,
    },
    Insecure,
}

impl Credentials {
    pub fn security(&self) -> ClientSecurity {
        match self {
            Credentials::Curve { keys, server, .. } => {
                ClientSecurity::Curve { keys: keys.clone(), server: *server }
            }
            Credentials::Insecure => ClientSecurity::Insecure,
        }
    }
}

/// Which key is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// No `--key`, no `$MESHLIFT_KEY`, and nothing at the default path (`None`: no `$HOME`).
    OperatorKey { default_path: Option<PathBuf> },
    /// No `--controller-key` and no `$MESHLIFT_CONTROLLER_KEY`.
    ControllerKey,
}

/// Why no usable credentials were found. Every variant is a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{}", missing_message(.0))]
    Missing(Vec<Missing>),
    /// A key was named but cannot be used (unreadable, malformed, readable by others).
    #[error("{which} from {origin}: {source}")]
    Unusable {
        which: &'static str,
        origin: Origin,
        #[source]
        source: KeyError,
    },
    #[error("${ENV_INSECURE}={0:?}: expected 1 (plain text) or 0")]
    BadInsecure(String),
}

fn missing_message(missing: &[Missing]) -> String {
    let mut text = String::from("no CURVE key to talk to the controller with (CurveZMQ is on by default):");
    for m in missing {
        match m {
            Missing::OperatorKey { default_path } => {
                let default = default_path
                    .as_ref()
                    .map_or_else(|| format!("~/{DEFAULT_KEY}"), |p| p.display().to_string());
                text.push_str(&format!(
                    "\n  - your operator key: pass --key FILE (--operator-key for `meshlift node`), set {ENV_KEY}=FILE, or put it at {default}. \
                     Create one with `meshlift keygen --curve --out ~/.config/meshlift --name operator` \
                     and ask the controller's admin to list operator.pub under [[security.operators]]"
                ));
            }
            Missing::ControllerKey => text.push_str(&format!(
                "\n  - the controller's public key: pass --controller-key FILE|Z85 or set \
                 {ENV_CONTROLLER_KEY} (its controller.pub, from the controller's admin; the controller \
                 logs it at start)"
            )),
        }
    }
    text.push_str(
        "\n  (a controller running with security.insecure = true takes --insecure or MESHLIFT_INSECURE=1 instead)",
    );
    text
}

/// Find and load the keys: flags first, then `env`, then the default path under `home`.
pub fn resolve(
    flags: &KeyFlags,
    env: &dyn Fn(&str) -> Option<OsString>,
    home: Option<&Path>,
) -> Result<Credentials, CredentialError> {
    if flags.insecure || insecure_env(env)? {
        return Ok(Credentials::Insecure);
    }
    let set = |var: &str| env(var).filter(|v| !v.is_empty());
    let default_path = home.map(|h| h.join(DEFAULT_KEY));
    let key = match (&flags.key, set(ENV_KEY)) {
        (Some(p), _) => Some((p.clone(), Origin::Flag("--key"))),
        (None, Some(v)) => Some((PathBuf::from(v), Origin::Env(ENV_KEY))),
        (None, None) => {
            default_path.as_ref().filter(|p| p.exists()).map(|p| (p.clone(), Origin::DefaultPath))
        }
    };
    let server = match (&flags.controller_key, set(ENV_CONTROLLER_KEY)) {
        (Some(spec), _) => Some((spec.clone(), Origin::Flag("--controller-key"))),
        (None, Some(v)) => Some((v.to_string_lossy().into_owned(), Origin::Env(ENV_CONTROLLER_KEY))),
        (None, None) => None,
    };
    let mut missing = Vec::new();
    if key.is_none() {
        missing.push(Missing::OperatorKey { default_path });
    }
    if server.is_none() {
        missing.push(Missing::ControllerKey);
    }
    let (Some((key_path, key_origin)), Some((spec, server_origin))) = (key, server) else {
        return Err(CredentialError::Missing(missing));
    };
    let keys = CurveKeyPair::load(&key_path).map_err(|source| CredentialError::Unusable {
        which: "operator key",
        origin: key_origin.clone(),
        source,
    })?;
    let server = CurvePublicKey::from_file_or_z85(&spec).map_err(|source| CredentialError::Unusable {
        which: "controller key",
        origin: server_origin.clone(),
        source,
    })?;
    Ok(Credentials::Curve { keys, key_path, key_origin, server, server_origin })
}

fn insecure_env(env: &dyn Fn(&str) -> Option<OsString>) -> Result<bool, CredentialError> {
    let Some(v) = env(ENV_INSECURE) else { return Ok(false) };
    match v.to_string_lossy().trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "" | "0" | "false" | "no" => Ok(false),
        _ => Err(CredentialError::BadInsecure(v.to_string_lossy().into_owned())),
    }
}

/// The process's own environment and home directory.
pub fn from_process(flags: &KeyFlags) -> Result<Credentials, CredentialError> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    resolve(flags, &|var| std::env::var_os(var), home.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Keys {
        _dir: tempfile::TempDir,
        home: PathBuf,
        flag: (PathBuf, CurvePublicKey),
        env: (PathBuf, CurvePublicKey),
        default: CurvePublicKey,
        controller: (PathBuf, CurvePublicKey),
    }

    fn pair(dir: &Path, stem: &str) -> (PathBuf, PathBuf, CurvePublicKey) {
        let kp = CurveKeyPair::generate().unwrap();
        let (key, public) = kp.save(dir, stem).unwrap();
        (key, public, kp.public())
    }

    fn keys() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let (flag, _, flag_pub) = pair(dir.path(), "flag");
        let (env, _, env_pub) = pair(dir.path(), "env");
        let (_, _, default) = pair(&home.join(".config/meshlift"), "operator");
        let (_, ctrl_pub_path, ctrl) = pair(dir.path(), "controller");
        Keys {
            home,
            flag: (flag, flag_pub),
            env: (env, env_pub),
            default,
            controller: (ctrl_pub_path, ctrl),
            _dir: dir,
        }
    }

    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> =
            vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    fn operator_public(c: &Credentials) -> (CurvePublicKey, Origin) {
        match c {
            Credentials::Curve { keys, key_origin, .. } => (keys.public(), key_origin.clone()),
            Credentials::Insecure => panic!("expected CURVE credentials"),
        }
    }

    #[test]
    fn operator_key_flag_beats_env_beats_default_path() {
        let k = keys();
        let ctrl = k.controller.0.display().to_string();
        let env = env_of(&[(ENV_KEY, &k.env.0)]);
        let with_flag =
            KeyFlags { key: Some(k.flag.0.clone()), controller_key: Some(ctrl.clone()), insecure: false };
        let without_flag = KeyFlags { key: None, ..with_flag.clone() };

        let c = resolve(&with_flag, &env, Some(&k.home)).unwrap();
        assert_eq!(operator_public(&c), (k.flag.1, Origin::Flag("--key")));
        let c = resolve(&without_flag, &env, Some(&k.home)).unwrap();
        assert_eq!(operator_public(&c), (k.env.1, Origin::Env(ENV_KEY)));
        let c = resolve(&without_flag, &env_of(&[]), Some(&k.home)).unwrap();
        assert_eq!(operator_public(&c), (k.default, Origin::DefaultPath));
        // An empty variable counts as unset.
        let c = resolve(&without_flag, &env_of(&[(ENV_KEY, Path::new(""))]), Some(&k.home)).unwrap();
        assert_eq!(operator_public(&c).1, Origin::DefaultPath);
    }

    #[test]
    fn controller_key_flag_beats_env_and_takes_z85_or_a_file() {
        let k = keys();
        let other = CurveKeyPair::generate().unwrap().public();
        let z85 = other.to_z85();
        let env = env_of(&[(ENV_CONTROLLER_KEY, Path::new(&z85))]);
        let server = |c: Credentials| match c {
            Credentials::Curve { server, server_origin, .. } => (server, server_origin),
            Credentials::Insecure => panic!("expected CURVE credentials"),
        };
        let flags = KeyFlags {
            key: Some(k.flag.0.clone()),
            controller_key: Some(k.controller.0.display().to_string()),
            insecure: false,
        };
        let c = resolve(&flags, &env, None).unwrap();
        assert_eq!(server(c), (k.controller.1, Origin::Flag("--controller-key")));
        let flags = KeyFlags { controller_key: None, ..flags };
        let c = resolve(&flags, &env, None).unwrap();
        assert_eq!(server(c), (other, Origin::Env(ENV_CONTROLLER_KEY)));
    }

    #[test]
    fn missing_keys_say_how_to_get_them() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&KeyFlags::default(), &env_of(&[]), Some(dir.path())).unwrap_err();
        match &err {
            CredentialError::Missing(m) => assert_eq!(m.len(), 2, "{m:?}"),
            other => panic!("expected Missing, got {other:?}"),
        }
        let text = err.to_string();
        for want in [
            "--key FILE",
            ENV_KEY,
            &dir.path().join(DEFAULT_KEY).display().to_string(),
            "meshlift keygen --curve",
            "[[security.operators]]",
            "--controller-key",
            ENV_CONTROLLER_KEY,
            "--insecure",
        ] {
            assert!(text.contains(want), "missing {want:?} in: {text}");
        }
        // Only the controller key missing: only it is named.
        let k = keys();
        let flags = KeyFlags { key: Some(k.flag.0.clone()), ..KeyFlags::default() };
        let err = resolve(&flags, &env_of(&[]), None).unwrap_err();
        assert!(matches!(&err, CredentialError::Missing(m) if m == &[Missing::ControllerKey]), "{err:?}");
        assert!(!err.to_string().contains("your operator key"), "{err}");
    }

    #[test]
    fn unusable_keys_name_the_file_and_its_origin() {
        let k = keys();
        let ctrl = Some(k.controller.0.display().to_string());
        let env = env_of(&[(ENV_KEY, Path::new("/nonexistent/op.key"))]);
        let err = resolve(&KeyFlags { controller_key: ctrl.clone(), ..KeyFlags::default() }, &env, None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("$MESHLIFT_KEY") && text.contains("/nonexistent/op.key"), "{text}");
        // A secret key others can read is refused, as the transport refuses it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k.flag.0, std::fs::Permissions::from_mode(0o644)).unwrap();
        let flags = KeyFlags { key: Some(k.flag.0.clone()), controller_key: ctrl, insecure: false };
        let err = resolve(&flags, &env_of(&[]), None).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let flags = KeyFlags { controller_key: Some("not a key".into()), ..flags };
        std::fs::set_permissions(&k.flag.0, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = resolve(&flags, &env_of(&[]), None).unwrap_err();
        assert!(err.to_string().starts_with("controller key from --controller-key"), "{err}");
    }

    #[test]
    fn insecure_needs_no_keys_and_the_env_value_is_checked() {
        let flags = KeyFlags { insecure: true, ..KeyFlags::default() };
        assert!(matches!(resolve(&flags, &env_of(&[]), None), Ok(Credentials::Insecure)));
        let on = env_of(&[(ENV_INSECURE, Path::new("1"))]);
        assert!(matches!(resolve(&KeyFlags::default(), &on, None), Ok(Credentials::Insecure)));
        let off = env_of(&[(ENV_INSECURE, Path::new("0"))]);
        assert!(matches!(resolve(&KeyFlags::default(), &off, None), Err(CredentialError::Missing(_))));
        let typo = env_of(&[(ENV_INSECURE, Path::new("ture"))]);
        assert!(matches!(resolve(&KeyFlags::default(), &typo, None), Err(CredentialError::BadInsecure(_))));
    }
}
