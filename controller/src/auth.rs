//! Who may talk to the controller, and what each may do.
//!
//! Both ROUTER sockets run CurveZMQ; the ZAP handler asks this module about every client key:
//! - **minion socket**: only a key enrolled for a node of the topology ([`NodeKeys`]); the user id
//!   libzmq then stamps on every frame of that connection is the node's name, and the server
//!   accepts a status report only for that node.
//! - **app socket**: only an operator key listed in the controller config, each with a name and a
//!   [`Role`]; the operator's name replaces whatever `who` a request carries.
//!
//! Refused handshakes are sent to the controller loop (bounded, never blocking the ZAP thread),
//! which counts and journals them; a client hammering with an unknown key fills that queue and the
//! rest are dropped (the ZAP handler logs each at debug level).

use meshlift_protocol::fleet::SnapshotCmd;
use meshlift_protocol::transport::zap::{Authorizer, ZapRequest};
use meshlift_protocol::transport::{CurvePublicKey, KeyError};
use meshlift_protocol::{GoldenCmd, Message};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

pub use meshlift_protocol::Role;

/// The role `msg` needs, and the reason in words (for the refusal an operator sees).
/// `limit_cap`: the largest commit/prepare batch limit an operator may ask for.
pub fn required_role(msg: &Message, limit_cap: i64) -> (Role, String) {
    match msg {
        Message::UpgradeStateReq(_)
        | Message::UpgradeCommitPlanReq(_)
        | Message::UpgradeListImagesReq(_)
        | Message::NodeStatusReq(_)
        | Message::NodeKeysReq(_)
        | Message::VersionsReq(_)
        | Message::ImageRecordsReq(_)
        | Message::SnapshotShowReq(_)
        | Message::ConfigShowReq(_) => (Role::Viewer, format!("{} (read only)", msg.kind())),
        Message::UpgradeGroupReq(req) => {
            if req.ur_req.allow_downgrade {
                (Role::Admin, "allow_downgrade".into())
            } else if req.limit < 0 {
                (Role::Admin, format!("a batch limit below 0 ({}: every node at once)", req.limit))
            } else if req.limit > limit_cap {
                (Role::Admin, format!("a batch limit above {limit_cap} ({})", req.limit))
            } else {
                (Role::Operator, format!("{:?} {:?}", req.ug_type, req.ur_req.ur_type).to_lowercase())
            }
        }
        Message::UpgradeAbortReq(_) => (Role::Operator, "abort".into()),
        Message::UpgradeAddImageReq(_) => (Role::Operator, "image add".into()),
        Message::UpgradeDelImageReq(_) => (Role::Operator, "image delete".into()),
        Message::ImageTagReq(_) => (Role::Operator, "image tag".into()),
        Message::SnapshotReq(r) => match &r.cmd {
            SnapshotCmd::Create { .. } => (Role::Operator, "snapshot create".into()),
            SnapshotCmd::Restore { dry_run: true, .. } => {
                (Role::Viewer, "snapshot restore --dry-run (read only)".into())
            }
            SnapshotCmd::Restore { .. } => (Role::Operator, "snapshot restore".into()),
            SnapshotCmd::Delete { .. } => (Role::Admin, "snapshot delete".into()),
        },
        Message::NodeEnrollReq(_) => (Role::Admin, "node key enrollment".into()),
        Message::ConfigSetReq(r) => (Role::Operator, format!("startup configuration of {}", r.scope.label())),
        Message::GoldenShowReq(_) => (Role::Viewer, format!("{} (read only)", msg.kind())),
        Message::GoldenReq(r) => match &r.cmd {
            GoldenCmd::Unquarantine { .. } => (Role::Admin, "golden unquarantine".into()),
            _ => (Role::Operator, "golden-image loop settings".into()),
        },
        // Replies and minion messages are refused by the engine; no role makes them valid.
        other => (Role::Admin, other.kind().to_string()),
    }
}

/// An operator allowed on the app socket (`[[security.operators]]` in the controller config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Journaled as `who` for every action of this key.
    pub name: String,
    pub role: Role,
    /// The operator's public key: 40 Z85 characters, or the path of a `.pub` file.
    pub key: String,
}

/// A handshake the ZAP handler refused, for the journal.
#[derive(Debug, Clone)]
pub struct AuthRefusal {
    pub socket: &'static str,
    pub address: String,
    pub key: Option<CurvePublicKey>,
    pub reason: String,
}

/// Why the key configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The node keys file could not be read, parsed or written.
    #[error("node keys file {path}: {message}")]
    NodeKeys { path: PathBuf, message: String },
    /// Two operators (or two nodes) share a key: it could not tell them apart.
    #[error("key {key} is listed twice ({a} and {b}); every operator and node needs its own")]
    DuplicateKey { key: String, a: String, b: String },
    /// Enrollment for a name that is not a node of the topology.
    #[error("{0} is not a node of the topology")]
    UnknownNode(String),
}

/// Enrolled node keys: node name → public key, kept in a TOML file (`node = "Z85"` lines under
/// `[nodes]`) that `meshlift node enroll` rewrites atomically.
#[derive(Debug, Default)]
pub struct NodeKeys {
    path: Option<PathBuf>,
    by_node: BTreeMap<String, CurvePublicKey>,
    by_key: HashMap<CurvePublicKey, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeKeysFile {
    #[serde(default)]
    nodes: BTreeMap<String, String>,
}

impl NodeKeys {
    /// Load `path`; a missing file is an empty list (nodes are enrolled later).
    pub fn load(path: &Path) -> Result<NodeKeys, AuthError> {
        let err = |message: String| AuthError::NodeKeys { path: path.to_path_buf(), message };
        let mut keys = NodeKeys { path: Some(path.to_path_buf()), ..NodeKeys::default() };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(e) => return Err(err(e.to_string())),
        };
        let file: NodeKeysFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for (node, z85) in file.nodes {
            let key = CurvePublicKey::from_z85(&z85).map_err(|e| err(format!("node {node}: {e}")))?;
            keys.insert(node, key)?;
        }
        Ok(keys)
    }

    fn insert(&mut self, node: String, key: CurvePublicKey) -> Result<(), AuthError> {
        if let Some(other) = self.by_key.get(&key).filter(|o| **o != node) {
            return Err(AuthError::DuplicateKey { key: key.to_z85(), a: other.clone(), b: node });
        }
        if let Some(old) = self.by_node.insert(node.clone(), key) {
            self.by_key.remove(&old);
        }
        self.by_key.insert(key, node);
        Ok(())
    }

    pub fn node_of(&self, key: &CurvePublicKey) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &CurvePublicKey)> {
        self.by_node.iter()
    }

    /// Enroll (or replace) a key and rewrite the file; returns the key it replaced. On a failed
    /// write nothing changes in memory either.
    pub fn enroll(&mut self, node: &str, key: CurvePublicKey) -> Result<Option<CurvePublicKey>, AuthError> {
        let before = (self.by_node.clone(), self.by_key.clone());
        let old = self.by_node.get(node).copied();
        self.insert(node.to_string(), key)?;
        if let Err(e) = self.save() {
            (self.by_node, self.by_key) = before;
            return Err(e);
        }
        Ok(old)
    }

    fn save(&self) -> Result<(), AuthError> {
        let Some(path) = &self.path else { return Ok(()) };
        let err = |e: std::io::Error| AuthError::NodeKeys { path: path.clone(), message: e.to_string() };
        let mut text =
            String::from("# meshlift enrolled node keys: node name = CURVE public key (Z85)\n[nodes]\n");
        for (node, key) in &self.by_node {
            text.push_str(&format!("{} = \"{}\"\n", toml_key(node), key.to_z85()));
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// A TOML key for a node name (quoted unless bare-safe).
fn toml_key(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Everything the ZAP handler and the server consult: enrolled node keys, operator keys and roles.
pub struct Keyring {
    nodes: RwLock<NodeKeys>,
    topology_nodes: HashSet<String>,
    operators: HashMap<CurvePublicKey, (String, Role)>,
    refusals: mpsc::Sender<AuthRefusal>,
}

impl Keyring {
    pub fn new(
        nodes: NodeKeys,
        topology_nodes: HashSet<String>,
        operators: &[OperatorConfig],
        base: &Path,
        refusals: mpsc::Sender<AuthRefusal>,
    ) -> Result<Keyring, AuthError> {
        let mut ops: HashMap<CurvePublicKey, (String, Role)> = HashMap::new();
        for op in operators {
            let key = load_public(&op.key, base)?;
            if let Some((other, _)) = ops.get(&key) {
                return Err(AuthError::DuplicateKey {
                    key: key.to_z85(),
                    a: other.clone(),
                    b: op.name.clone(),
                });
            }
            ops.insert(key, (op.name.clone(), op.role));
        }
        Ok(Keyring { nodes: RwLock::new(nodes), topology_nodes, operators: ops, refusals })
    }

    /// The role of an authenticated operator name (the ZAP user id of an app connection).
    pub fn role_of(&self, operator: &str) -> Option<Role> {
        self.operators.values().find(|(n, _)| n == operator).map(|(_, r)| *r)
    }

    pub fn operator_count(&self) -> usize {
        self.operators.len()
    }

    pub fn enroll(&self, node: &str, key: CurvePublicKey) -> Result<Option<CurvePublicKey>, AuthError> {
        if !self.topology_nodes.contains(node) {
            return Err(AuthError::UnknownNode(node.to_string()));
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        nodes.enroll(node, key)
    }

    /// (enrolled node → key), and the topology's nodes without a key, both sorted.
    pub fn node_keys(&self) -> (Vec<(String, String)>, Vec<String>) {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let enrolled: Vec<(String, String)> = nodes.iter().map(|(n, k)| (n.clone(), k.to_z85())).collect();
        let mut missing: Vec<String> =
            self.topology_nodes.iter().filter(|n| !nodes.by_node.contains_key(*n)).cloned().collect();
        missing.sort();
        (enrolled, missing)
    }

    fn refuse(&self, socket: &'static str, req: &ZapRequest, reason: String) -> String {
        let _ = self.refusals.try_send(AuthRefusal {
            socket,
            address: req.address.clone(),
            key: req.key,
            reason: reason.clone(),
        });
        reason
    }
}

fn load_public(spec: &str, base: &Path) -> Result<CurvePublicKey, KeyError> {
    let trimmed = spec.trim();
    if trimmed.len() == 40 && !base.join(trimmed).exists() {
        return CurvePublicKey::from_z85(trimmed);
    }
    let p = Path::new(trimmed);
    CurvePublicKey::load(&if p.is_absolute() { p.to_path_buf() } else { base.join(p) })
}

/// The minion socket's ZAP decision: an enrolled key of a node of the topology.
pub struct MinionAuth(pub Arc<Keyring>);

impl Authorizer for MinionAuth {
    fn authorize(&self, req: &ZapRequest) -> Result<String, String> {
        let Some(key) = req.key else {
            return Err(self.0.refuse("minion", req, "no CURVE key".into()));
        };
        let nodes = self.0.nodes.read().unwrap_or_else(|p| p.into_inner());
        match nodes.node_of(&key) {
            Some(node) => Ok(node.to_string()),
            None => Err(self.0.refuse("minion", req, format!("node key {} is not enrolled", key.to_z85()))),
        }
    }
}

/// The app socket's ZAP decision: an operator key from the controller config.
pub struct AppAuth(pub Arc<Keyring>);

impl Authorizer for AppAuth {
    fn authorize(&self, req: &ZapRequest) -> Result<String, String> {
        let Some(key) = req.key else {
            return Err(self.0.refuse("app", req, "no CURVE key".into()));
        };
        match self.0.operators.get(&key) {
            Some((name, _)) => Ok(name.clone()),
            None => {
                Err(self.0.refuse("app", req, format!("operator key {} is not configured", key.to_z85())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlift_protocol::transport::CurveKeyPair;
    use meshlift_protocol::*;

    #[test]
    fn roles_follow_the_request() {
        let mut req = UpgradeGroupReq::new(
            UpgradeGroupType::Network,
            UpgradeReq::new(UpgradeReqType::CommitUpgrade, "r"),
            60,
        );
        let m = |r: &UpgradeGroupReq| required_role(&Message::UpgradeGroupReq(r.clone()), 50).0;
        assert_eq!(m(&req), Role::Operator);
        req.limit = -1;
        assert_eq!(m(&req), Role::Admin);
        req.limit = 51;
        assert_eq!(m(&req), Role::Admin);
        req.limit = 50;
        req.ur_req.allow_downgrade = true;
        assert_eq!(m(&req), Role::Admin);
        assert_eq!(required_role(&Message::UpgradeStateReq(UpgradeStateReq {}), 50).0, Role::Viewer);
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }

    #[test]
    fn enrollment_persists_and_a_key_speaks_for_one_node_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_keys.toml");
        let (a, b) = (CurveKeyPair::generate().unwrap().public(), CurveKeyPair::generate().unwrap().public());
        let mut keys = NodeKeys::load(&path).unwrap();
        assert_eq!(keys.enroll("pole-1.a", a).unwrap(), None);
        let err = keys.enroll("pole 2", a).unwrap_err();
        assert!(matches!(err, AuthError::DuplicateKey { .. }), "{err}");
        keys.enroll("pole 2", b).unwrap();
        let back = NodeKeys::load(&path).unwrap();
        assert_eq!(back.node_of(&a), Some("pole-1.a"));
        assert_eq!(back.node_of(&b), Some("pole 2"));
        // Replacing a node's key forgets the old one.
        let c = CurveKeyPair::generate().unwrap().public();
        let mut keys = back;
        assert_eq!(keys.enroll("pole-1.a", c).unwrap(), Some(a));
        assert_eq!(keys.node_of(&a), None);
    }
}
