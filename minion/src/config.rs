//! The minion's TOML configuration.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config read when `--config` is not given: where the Debian package puts its commented
/// sample (`configs/minion.toml`) and the systemd unit's `ConfigurationDirectory=meshlift` points.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/meshlift/minion.toml";

/// `data_dir` when the config does not set one: the unit's `StateDirectory=meshlift/minion`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/meshlift/minion";

/// Node configuration. Unknown keys are refused: a misspelt `trusted_keys` silently ignored would
/// leave a node that refuses every image (or, worse, a typo'd option that the operator believes
/// is in effect).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinionConfig {
    /// Node name in the topology (passed to hooks).
    pub name: String,
    /// MAC address: the node's identity towards the controller.
    pub mac: String,
    /// Holds `slots/`, `bootenv.json`, `upgrade_state.json`, downloads and hook work dirs.
    /// Default [`DEFAULT_DATA_DIR`]. Relative paths in this file (here and in every other path
    /// option) are taken from the process's working directory, as meshsim relies on; the
    /// packaged config uses absolute paths (systemd starts services in `/`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Controller minion-socket endpoint, e.g. `tcp://127.0.0.1:7007` or `tcp://[fd00::1]:7007`.
    pub controller: String,
    /// The controller's CURVE public key: the path of its `.pub` file, or the 40 Z85 characters.
    /// Authenticates the controller; required unless `insecure`.
    #[serde(default)]
    pub controller_key: Option<String>,
    /// This node's CURVE secret key file (`meshlift keygen --curve`, mode 0600), enrolled on the
    /// controller for this node; required unless `insecure`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Plain text to the controller, no authentication: only towards a controller that runs with
    /// `security.insecure = true` (a lab). Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Hardware board id; images that do not list it are refused.
    pub board: String,
    /// Public keys (SPKI PEM) whose signatures this node accepts.
    pub trusted_keys: Vec<PathBuf>,
    /// Image installed into slot A on first boot (no boot environment yet).
    #[serde(default)]
    pub factory_image: Option<PathBuf>,
    /// Link-state file written by meshsim; default `<data_dir>/radio.json`.
    #[serde(default)]
    pub radio_file: Option<PathBuf>,
    #[serde(default = "default_status_interval_s")]
    pub status_interval_s: u64,
    /// Seconds a hook may run before it is killed and counted as failed.
    #[serde(default = "default_hook_timeout_s")]
    pub hook_timeout_s: u64,
    /// BitTorrent listen port of the downloader, on every address of both families (IPv4 only
    /// on a host without IPv6). None: the downloader picks a free one.
    #[serde(default)]
    pub bt_listen_port: Option<u16>,
    /// POPs: file listing uplink/BGP peers that are up (meshsim writes it).
    #[serde(default)]
    pub uplink_peers_file: Option<PathBuf>,
    /// A command that prints the node's links as the JSON of `radio_file` (on a device: asks the
    /// radio driver); when set, `radio_file` is not read. See [`crate::radio::CommandRadio`].
    #[serde(default)]
    pub radio_command: Option<Vec<String>>,
    /// How to reboot: `"command"` (default: run `reboot_command`) or `"exit"` (exit code 10 for a
    /// supervisor that restarts the process: meshsim).
    #[serde(default)]
    pub reboot: crate::platform::RebootMethod,
    /// Default `["systemctl", "reboot"]`.
    #[serde(default = "crate::platform::default_reboot_command")]
    pub reboot_command: Vec<String>,
    /// `[boot]`: the boot environment backend (`"file"` or `"uboot"`) and libubootenv's paths.
    #[serde(default)]
    pub boot: crate::platform::BootConfig,
    /// `[slots]`: the slot backend (`"file"` or `"block"`) and the partitions.
    #[serde(default)]
    pub slots: crate::platform::SlotsConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_status_interval_s() -> u64 {
    5
}

fn default_hook_timeout_s() -> u64 {
    60
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `--config` was given and the default file does not exist: a node where neither the
    /// package's sample nor the provisioning's file is in place.
    #[error(
        "no minion config at {path} (read when --config is not given): install the meshlift-minion \
         package, which puts a commented sample there (configs/minion.toml in the source), set this \
         node's name, mac, controller, board and keys, or pass --config FILE"
    )]
    MissingDefault { path: PathBuf },
    /// The file is missing or unreadable.
    #[error("cannot read minion config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, a missing required key, or an unknown key (the message names it).
    #[error("invalid minion config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl MinionConfig {
    /// The file named by `--config`, else [`DEFAULT_CONFIG_PATH`]; a missing default file is
    /// [`ConfigError::MissingDefault`], which says how to create one.
    pub fn load_or_default(explicit: Option<&Path>) -> Result<MinionConfig, ConfigError> {
        match explicit {
            Some(path) => Self::load(path),
            None => Self::load_default(Path::new(DEFAULT_CONFIG_PATH)),
        }
    }

    /// [`Self::load`] for a path the operator did not name, so a missing file is told apart.
    fn load_default(path: &Path) -> Result<MinionConfig, ConfigError> {
        Self::load(path).map_err(|e| match e {
            ConfigError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                ConfigError::MissingDefault { path }
            }
            e => e,
        })
    }

    pub fn load(path: &Path) -> Result<MinionConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })
    }

    pub fn parse(text: &str) -> Result<MinionConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn radio_file(&self) -> PathBuf {
        self.radio_file.clone().unwrap_or_else(|| self.data_dir.join("radio.json"))
    }

    pub fn upgrade_state_file(&self) -> PathBuf {
        self.data_dir.join("upgrade_state.json")
    }

    /// Where downloads of request `req_id` go (the downloader's `work_dir`).
    pub fn download_dir(&self) -> PathBuf {
        self.data_dir.join("download")
    }

    /// Working directory handed to hooks.
    pub fn hook_work_dir(&self) -> PathBuf {
        self.data_dir.join("hooks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "node-1"
        mac = "00:00:00:00:00:01"
        data_dir = "/tmp/n1"
        controller = "tcp://127.0.0.1:7007"
        board = "sim"
        trusted_keys = ["/keys/meshlift.pub"]
    "#;

    #[test]
    fn defaults_apply_and_unknown_keys_are_refused() {
        let c = MinionConfig::parse(MINIMAL).unwrap();
        assert_eq!(c.status_interval_s, 5);
        assert_eq!(c.hook_timeout_s, 60);
        assert_eq!(c.radio_file(), PathBuf::from("/tmp/n1/radio.json"));
        let err = MinionConfig::parse(&format!("{MINIMAL}\ntrusted_key = []\n")).unwrap_err();
        assert!(err.contains("trusted_key"), "{err}");
        assert!(MinionConfig::parse("name = 1").is_err());
    }

    #[test]
    fn data_dir_defaults_to_the_state_directory() {
        let without: String =
            MINIMAL.lines().filter(|l| !l.contains("data_dir")).collect::<Vec<_>>().join("\n");
        let c = MinionConfig::parse(&without).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/meshlift/minion"));
        assert_eq!(c.upgrade_state_file(), PathBuf::from("/var/lib/meshlift/minion/upgrade_state.json"));
    }

    #[test]
    fn a_missing_default_config_says_where_and_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("minion.toml");
        let err = MinionConfig::load_default(&absent).unwrap_err();
        assert!(matches!(err, ConfigError::MissingDefault { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&absent.display().to_string()) && text.contains("--config"), "{text}");
        let err = MinionConfig::load(&absent).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    }

    /// The packaged sample is what a node starts from: it must parse as shipped, with absolute
    /// paths (systemd starts the service in `/`) and CURVE on.
    #[test]
    fn the_sample_config_parses_with_absolute_paths() {
        let c = MinionConfig::parse(include_str!("../../configs/minion.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(!c.insecure);
        let key_file = c.key_file.as_deref().expect("the sample names the node's key");
        assert!(key_file.is_absolute(), "{key_file:?}");
        assert!(c.trusted_keys.iter().all(|k| k.is_absolute()), "{:?}", c.trusted_keys);
    }
}
