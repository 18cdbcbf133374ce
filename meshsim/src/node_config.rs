//! The per-node `meshlift-minion` config file that meshsim writes before starting each node.

use serde::Serialize;
use std::path::PathBuf;

/// One minion's config, as `meshlift-minion --config <file.toml>` reads it.
///
/// meshsim fills `name`, `mac`, `data_dir`, `controller` (the node's in-band relay) and
/// `radio_file`; the caller supplies the rest through [`NodeTemplate`] and may adjust any field per
/// node with [`crate::MeshConfig::customize`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeConfig {
    pub name: String,
    pub mac: String,
    /// Slots, boot environment, state and downloads live under it.
    pub data_dir: PathBuf,
    /// `tcp://127.0.0.1:<relay port>`: management traffic goes through meshsim's relay so that it
    /// stops when the node has no in-band path.
    pub controller: String,
    pub board: String,
    pub trusted_keys: Vec<PathBuf>,
    /// Used only on first boot to fill slot A.
    pub factory_image: PathBuf,
    pub radio_file: PathBuf,
    pub status_interval_s: u64,
    /// The controller's CURVE public key (its `.pub` path or 40 Z85 characters); omitted when
    /// `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_key: Option<String>,
    /// This node's CURVE secret key file (mode 0600); omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Plain text to the controller (a controller with `security.insecure = true`); written only
    /// when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// How the minion reboots: always `"exit"` here (exit code 10; meshsim's supervisor restarts
    /// the process, which is the node's reboot). Written out explicitly because the minion's
    /// default is to run `systemctl reboot`.
    pub reboot: String,
    /// Appended verbatim after the rendered fields, so callers can pass options meshsim does not
    /// know about. Must be valid TOML on its own (top-level keys, then tables).
    #[serde(skip)]
    pub extra_toml: String,
}

/// What every node shares; meshsim derives each [`NodeConfig`] from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeTemplate {
    pub board: String,
    pub trusted_keys: Vec<PathBuf>,
    pub factory_image: PathBuf,
    pub status_interval_s: u64,
    /// The controller's CURVE public key, the same for every node.
    pub controller_key: Option<String>,
    /// Where each node's CURVE secret key lives: `<key_dir>/<node_file_stem(name)>.key`
    /// ([`crate::node_file_stem`]); `None` leaves `key_file` unset.
    pub key_dir: Option<PathBuf>,
    /// Every node talks plain text (`insecure = true`).
    pub insecure: bool,
    pub extra_toml: String,
}

/// The config could not be rendered; a bug in the caller's values (e.g. a non-UTF-8 path).
#[derive(Debug, thiserror::Error)]
#[error("cannot render node config for {node:?}: {source}")]
pub struct RenderError {
    node: String,
    #[source]
    source: toml::ser::Error,
}

impl NodeConfig {
    /// TOML text: the known fields, then `extra_toml`.
    pub fn render(&self) -> Result<String, RenderError> {
        let mut text =
            toml::to_string(self).map_err(|source| RenderError { node: self.name.clone(), source })?;
        if !self.extra_toml.trim().is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&self.extra_toml);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_fields_and_appends_extra() {
        let cfg = NodeConfig {
            name: "n \"1\"".into(),
            mac: "00:00:00:00:00:01".into(),
            data_dir: "/tmp/x/n1".into(),
            controller: "tcp://127.0.0.1:4000".into(),
            board: "sim-board".into(),
            trusted_keys: vec!["/k/a.pub".into()],
            factory_image: "/img/v1.mlimg".into(),
            radio_file: "/tmp/x/n1/radio.json".into(),
            status_interval_s: 5,
            controller_key: Some("/k/controller.pub".into()),
            key_file: Some("/k/nodes/n__1_.key".into()),
            insecure: false,
            reboot: "exit".into(),
            extra_toml: "confirm_timeout_s = 30\n[hooks]\nx = 1".into(),
        };
        let text = cfg.render().unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["name"].as_str(), Some("n \"1\""));
        assert_eq!(parsed["controller"].as_str(), Some("tcp://127.0.0.1:4000"));
        assert_eq!(parsed["trusted_keys"].as_array().unwrap()[0].as_str(), Some("/k/a.pub"));
        assert_eq!(parsed["status_interval_s"].as_integer(), Some(5));
        assert_eq!(parsed["confirm_timeout_s"].as_integer(), Some(30));
        assert_eq!(parsed["hooks"]["x"].as_integer(), Some(1));
        assert!(!text.contains("extra_toml"));
        assert_eq!(parsed["controller_key"].as_str(), Some("/k/controller.pub"));
        assert_eq!(parsed["key_file"].as_str(), Some("/k/nodes/n__1_.key"));
        assert!(!parsed.contains_key("insecure"), "written only when true");
        assert_eq!(parsed["reboot"].as_str(), Some("exit"), "meshsim's reboot is the exit code");
    }

    #[test]
    fn insecure_nodes_carry_no_keys() {
        let cfg = NodeConfig {
            name: "n".into(),
            mac: "00:00:00:00:00:01".into(),
            data_dir: "/d".into(),
            controller: "tcp://127.0.0.1:4000".into(),
            board: "b".into(),
            trusted_keys: vec![],
            factory_image: "/img".into(),
            radio_file: "/d/radio.json".into(),
            status_interval_s: 1,
            controller_key: None,
            key_file: None,
            insecure: true,
            reboot: "exit".into(),
            extra_toml: String::new(),
        };
        let parsed: toml::Table = cfg.render().unwrap().parse().unwrap();
        assert_eq!(parsed["insecure"].as_bool(), Some(true));
        assert!(!parsed.contains_key("controller_key") && !parsed.contains_key("key_file"));
    }
}
