//! The minion's TOML configuration.

use serde::Deserialize;
use std::path::{Path, PathBuf};

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
}
