//! Startup configuration documents (DMI `UpdateStartupConfiguration`, Terragraph's
//! `nextNodeConfigJson`): stored per node, per board or fleet-wide, versioned and journaled, and
//! delivered with every PREPARE as the node's *effective* document (node > board > fleet).
//!
//! The document travels with the image on purpose: the minion writes it beside the standby slot
//! and makes it active only when that slot boots, so a fallback or a revert brings the old
//! configuration back with the old image. A document set while nodes already run an image
//! reaches them with their next PREPARE; `meshlift config diff` shows who runs what.

use std::collections::BTreeMap;

use meshlift_protocol::{
    Ack, ConfigDoc, ConfigScope, ConfigSetReq, ConfigShow, ConfigShowReq, Sha256Digest, StartupConfig,
    MAX_STARTUP_CONFIG,
};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::store::StoreOp;

/// The current document of each scope.
#[derive(Debug, Default)]
pub struct ConfigDocs {
    docs: BTreeMap<ConfigScope, ConfigDoc>,
    /// Highest version ever given (versions are global and never reused, cleared ones included).
    last_version: u64,
}

/// Why a `config set` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRefusal {
    #[error("startup configuration of {0} bytes is over the {MAX_STARTUP_CONFIG}-byte limit")]
    TooLarge(usize),
    /// Neither JSON nor TOML: the node's services could not read it either.
    #[error("startup configuration is neither valid JSON ({json}) nor valid TOML ({toml})")]
    NotParseable { json: String, toml: String },
    #[error("invalid node: {0} is not in the topology")]
    UnknownNode(String),
    #[error("empty board id")]
    EmptyBoard,
    #[error("{0} has no startup configuration to clear")]
    NothingToClear(String),
}

impl ConfigDocs {
    pub fn new(docs: Vec<ConfigDoc>, last_version: u64) -> ConfigDocs {
        let last_version = docs.iter().map(|d| d.version).max().unwrap_or(0).max(last_version);
        ConfigDocs { docs: docs.into_iter().map(|d| (d.scope.clone(), d)).collect(), last_version }
    }

    /// The document that applies to a node: its own, else its board's, else the fleet's.
    pub fn effective(&self, node: &str, board: Option<&str>) -> Option<&ConfigDoc> {
        self.docs
            .get(&ConfigScope::Node(node.to_string()))
            .or_else(|| board.and_then(|b| self.docs.get(&ConfigScope::Board(b.to_string()))))
            .or_else(|| self.docs.get(&ConfigScope::Fleet))
    }

    /// Every current document, most specific scope first (the order of [`ConfigScope`]).
    pub fn all(&self) -> Vec<ConfigDoc> {
        self.docs.values().cloned().collect()
    }
}

/// SHA-256 of a document's text: what the minion checks and reports.
pub fn digest(text: &str) -> Sha256Digest {
    Sha256Digest(Sha256::digest(text.as_bytes()).into())
}

/// A document must be small and readable as JSON or TOML.
pub fn check_text(text: &str) -> Result<(), ConfigRefusal> {
    if text.len() > MAX_STARTUP_CONFIG {
        return Err(ConfigRefusal::TooLarge(text.len()));
    }
    let json = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => return Ok(()),
        Err(e) => e.to_string(),
    };
    match toml::from_str::<toml::Table>(text) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConfigRefusal::NotParseable { json, toml: e.to_string().trim().to_string() }),
    }
}

impl Engine {
    /// CONFIG_SET_REQ: a new version of a scope's document (or its removal), journaled.
    pub(super) fn config_set(&mut self, req: ConfigSetReq, now: u64) -> Ack {
        let label = req.scope.label();
        let checked = match &req.scope {
            ConfigScope::Node(n) if self.topology.node(n).is_none() => {
                Err(ConfigRefusal::UnknownNode(n.clone()))
            }
            ConfigScope::Board(b) if b.trim().is_empty() => Err(ConfigRefusal::EmptyBoard),
            _ => match &req.text {
                Some(t) => check_text(t),
                None if !self.configs.docs.contains_key(&req.scope) => {
                    Err(ConfigRefusal::NothingToClear(label.clone()))
                }
                None => Ok(()),
            },
        };
        if let Err(refusal) = checked {
            self.command(
                now,
                None,
                &req.operator,
                format!("startup configuration of {label} refused: {refusal}"),
            );
            return Ack::refused(refusal.to_string());
        }
        self.configs.last_version += 1;
        let version = self.configs.last_version;
        let text = req.text.clone().unwrap_or_default();
        let doc = ConfigDoc {
            scope: req.scope.clone(),
            version,
            sha256: digest(&text),
            text,
            who: req.operator.who.clone(),
            reason: req.operator.reason.clone(),
            at: now,
        };
        let cleared = req.text.is_none();
        let message = if cleared {
            format!("startup configuration of {label} cleared (version {version})")
        } else {
            format!(
                "startup configuration of {label} set: version {version}, {} bytes, sha256 {}",
                doc.text.len(),
                doc.sha256.short()
            )
        };
        self.command(now, None, &req.operator, message.clone());
        self.ops.push(StoreOp::PutStartupConfig { doc: doc.clone(), cleared });
        if cleared {
            self.configs.docs.remove(&req.scope);
        } else {
            self.configs.docs.insert(req.scope, doc);
        }
        Ack::ok(message)
    }

    /// CONFIG_SHOW_REQ: a node's effective document and the digest it reports running, or every
    /// stored document.
    pub(super) fn config_show(&self, req: &ConfigShowReq) -> Result<ConfigShow, String> {
        let Some(node) = &req.node else {
            return Ok(ConfigShow { documents: self.configs.all(), ..Default::default() });
        };
        if self.topology.node(node).is_none() {
            return Err(format!("invalid node: {node} is not in the topology"));
        }
        let seen = self.fleet.get(node);
        let board = seen.map(|s| s.report.hardware_board_id.as_str()).filter(|b| !b.is_empty());
        Ok(ConfigShow {
            node: Some(node.clone()),
            effective: self.configs.effective(node, board).cloned(),
            running: seen.and_then(|s| s.report.startup_config),
            documents: Vec::new(),
        })
    }

    /// What a PREPARE to `node` carries: its effective document, if any.
    pub(super) fn startup_config_for(&self, node: &str) -> Option<StartupConfig> {
        let board =
            self.fleet.get(node).map(|s| s.report.hardware_board_id.as_str()).filter(|b| !b.is_empty());
        self.configs.effective(node, board).map(|d| StartupConfig {
            text: d.text.clone(),
            sha256: d.sha256,
            version: d.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(scope: ConfigScope, version: u64, text: &str) -> ConfigDoc {
        ConfigDoc {
            scope,
            version,
            sha256: digest(text),
            text: text.into(),
            who: "t".into(),
            reason: None,
            at: 0,
        }
    }

    #[test]
    fn the_most_specific_document_applies() {
        let docs = ConfigDocs::new(
            vec![
                doc(ConfigScope::Fleet, 1, "{}"),
                doc(ConfigScope::Board("b1".into()), 2, "x = 1"),
                doc(ConfigScope::Node("n1".into()), 3, "x = 2"),
            ],
            3,
        );
        assert_eq!(docs.effective("n1", Some("b1")).map(|d| d.version), Some(3));
        assert_eq!(docs.effective("n2", Some("b1")).map(|d| d.version), Some(2));
        assert_eq!(docs.effective("n2", Some("b2")).map(|d| d.version), Some(1));
        assert_eq!(docs.effective("n2", None).map(|d| d.version), Some(1));
        assert_eq!(ConfigDocs::default().effective("n1", None), None);
    }

    #[test]
    fn documents_must_be_json_or_toml_and_small() {
        assert!(check_text("{\"radio\": {\"channel\": 2}}").is_ok());
        assert!(check_text("[radio]\nchannel = 2\n").is_ok());
        assert!(matches!(check_text("{radio: "), Err(ConfigRefusal::NotParseable { .. })));
        let big = format!("x = \"{}\"", "a".repeat(MAX_STARTUP_CONFIG));
        assert_eq!(check_text(&big), Err(ConfigRefusal::TooLarge(big.len())));
    }
}
