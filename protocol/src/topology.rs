//! The network model, read from Terragraph's topology JSON.
//!
//! `{name, nodes:[{name, node_type, mac_addr, pop_node, status, site_name, …}],
//!   links:[{name, a_node_name, z_node_name, link_type, is_alive, …}], sites:[{name, location}]}`
//! with Terragraph's numeric enums. Unknown fields are ignored (real files carry dozens). A file is
//! refused as a whole when a required field is missing, a name is duplicated, a link names an
//! unknown node or a node an unknown site: every error names the culprit, because an operator
//! fixing a 10 000-node file needs the line to look at, not "invalid type at column 12 345".

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Terragraph `NodeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// Client node (1): a leaf that never relays.
    Cn,
    /// Distribution node (2).
    Dn,
}

/// Terragraph `NodeStatusType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    Offline,
    Online,
    /// Online and initiating links (a DN that has ignited).
    OnlineInitiator,
}

impl NodeStatus {
    pub fn is_online(self) -> bool {
        !matches!(self, NodeStatus::Offline)
    }
}

/// Terragraph `LinkType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    Wireless,
    /// Wired link, typically between nodes of one site.
    Ethernet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub node_type: NodeType,
    pub mac_addr: String,
    pub pop_node: bool,
    pub status: NodeStatus,
    pub site_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub name: String,
    pub a_node_name: String,
    pub z_node_name: String,
    pub link_type: LinkType,
    pub is_alive: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub altitude: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    pub location: Option<Location>,
}

/// Why a topology file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    /// Not JSON, or not an object of the expected shape.
    #[error("topology is not valid JSON: {0}")]
    Json(String),
    /// A required field is absent or has the wrong type.
    #[error("{what} is missing required field `{field}` (or it has the wrong type)")]
    MissingField { what: String, field: &'static str },
    /// An enum field holds a number Terragraph does not define.
    #[error("{what}: `{field}` = {value} is not a valid value")]
    BadEnum { what: String, field: &'static str, value: i64 },
    /// Two nodes, links or sites share a name.
    #[error("duplicate {kind} name {name:?}")]
    Duplicate { kind: &'static str, name: String },
    /// Two nodes share a MAC address: their minions could not be told apart.
    #[error("nodes {a:?} and {b:?} share MAC address {mac:?}")]
    DuplicateMac { mac: String, a: String, b: String },
    /// A link endpoint is not a node of the file.
    #[error("link {link:?} refers to unknown node {node:?}")]
    UnknownNode { link: String, node: String },
    /// A node's site is not a site of the file.
    #[error("node {node:?} is in unknown site {site:?}")]
    UnknownSite { node: String, site: String },
    /// A link from a node to itself.
    #[error("link {link:?} connects node {node:?} to itself")]
    SelfLink { link: String, node: String },
}

/// A validated topology: every link end and every node's site exist, names are unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub name: String,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub sites: Vec<Site>,
    node_index: HashMap<String, usize>,
    site_index: HashMap<String, usize>,
    link_index: HashMap<String, usize>,
    mac_index: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct RawTopology {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    nodes: Option<Vec<Value>>,
    #[serde(default)]
    links: Option<Vec<Value>>,
    #[serde(default)]
    sites: Option<Vec<Value>>,
}

fn describe(kind: &str, i: usize, v: &Value) -> String {
    match v.get("name").and_then(Value::as_str) {
        Some(n) => format!("{kind} {n:?}"),
        None => format!("{kind} #{i}"),
    }
}

fn field_str(v: &Value, what: &str, field: &'static str) -> Result<String, TopologyError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| TopologyError::MissingField { what: what.to_string(), field })
}

fn field_bool(v: &Value, what: &str, field: &'static str) -> Result<bool, TopologyError> {
    v.get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| TopologyError::MissingField { what: what.to_string(), field })
}

fn field_int(v: &Value, what: &str, field: &'static str) -> Result<i64, TopologyError> {
    v.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| TopologyError::MissingField { what: what.to_string(), field })
}

impl Topology {
    /// Parse and validate Terragraph topology JSON.
    pub fn from_json(text: &str) -> Result<Topology, TopologyError> {
        let raw: RawTopology = serde_json::from_str(text).map_err(|e| TopologyError::Json(e.to_string()))?;
        let nodes_raw =
            raw.nodes.ok_or(TopologyError::MissingField { what: "topology".into(), field: "nodes" })?;
        let links_raw = raw.links.unwrap_or_default();
        let sites_raw =
            raw.sites.ok_or(TopologyError::MissingField { what: "topology".into(), field: "sites" })?;

        let mut sites = Vec::with_capacity(sites_raw.len());
        for (i, v) in sites_raw.iter().enumerate() {
            let what = describe("site", i, v);
            let name = field_str(v, &what, "name")?;
            let location = v.get("location").map(|l| Location {
                latitude: l.get("latitude").and_then(Value::as_f64).unwrap_or_default(),
                longitude: l.get("longitude").and_then(Value::as_f64).unwrap_or_default(),
                altitude: l.get("altitude").and_then(Value::as_f64).unwrap_or_default(),
                accuracy: l.get("accuracy").and_then(Value::as_f64).unwrap_or_default(),
            });
            sites.push(Site { name, location });
        }

        let mut nodes = Vec::with_capacity(nodes_raw.len());
        for (i, v) in nodes_raw.iter().enumerate() {
            let what = describe("node", i, v);
            let name = field_str(v, &what, "name")?;
            let node_type = match field_int(v, &what, "node_type")? {
                1 => NodeType::Cn,
                2 => NodeType::Dn,
                value => return Err(TopologyError::BadEnum { what, field: "node_type", value }),
            };
            let mac_addr = field_str(v, &what, "mac_addr")?;
            let pop_node = field_bool(v, &what, "pop_node")?;
            let status = match field_int(v, &what, "status")? {
                1 => NodeStatus::Offline,
                2 => NodeStatus::Online,
                3 => NodeStatus::OnlineInitiator,
                value => return Err(TopologyError::BadEnum { what, field: "status", value }),
            };
            let site_name = field_str(v, &what, "site_name")?;
            nodes.push(Node { name, node_type, mac_addr, pop_node, status, site_name });
        }

        let mut links = Vec::with_capacity(links_raw.len());
        for (i, v) in links_raw.iter().enumerate() {
            let what = describe("link", i, v);
            let name = field_str(v, &what, "name")?;
            let a_node_name = field_str(v, &what, "a_node_name")?;
            let z_node_name = field_str(v, &what, "z_node_name")?;
            let link_type = match field_int(v, &what, "link_type")? {
                1 => LinkType::Wireless,
                2 => LinkType::Ethernet,
                value => return Err(TopologyError::BadEnum { what, field: "link_type", value }),
            };
            let is_alive = field_bool(v, &what, "is_alive")?;
            links.push(Link { name, a_node_name, z_node_name, link_type, is_alive });
        }

        Topology::new(raw.name.unwrap_or_default(), nodes, links, sites)
    }

    /// Build and validate a topology from parts (generators and tests).
    pub fn new(
        name: String,
        nodes: Vec<Node>,
        links: Vec<Link>,
        sites: Vec<Site>,
    ) -> Result<Topology, TopologyError> {
        let mut site_index = HashMap::with_capacity(sites.len());
        for (i, s) in sites.iter().enumerate() {
            if site_index.insert(s.name.clone(), i).is_some() {
                return Err(TopologyError::Duplicate { kind: "site", name: s.name.clone() });
            }
        }
        let mut node_index = HashMap::with_capacity(nodes.len());
        let mut mac_index: HashMap<String, usize> = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if node_index.insert(n.name.clone(), i).is_some() {
                return Err(TopologyError::Duplicate { kind: "node", name: n.name.clone() });
            }
            if !site_index.contains_key(&n.site_name) {
                return Err(TopologyError::UnknownSite { node: n.name.clone(), site: n.site_name.clone() });
            }
            if !n.mac_addr.is_empty() {
                let mac = normalize_mac(&n.mac_addr);
                if let Some(&j) = mac_index.get(&mac) {
                    return Err(TopologyError::DuplicateMac {
                        mac,
                        a: nodes[j].name.clone(),
                        b: n.name.clone(),
                    });
                }
                mac_index.insert(mac, i);
            }
        }
        let mut link_index = HashMap::with_capacity(links.len());
        for (i, l) in links.iter().enumerate() {
            if link_index.insert(l.name.clone(), i).is_some() {
                return Err(TopologyError::Duplicate { kind: "link", name: l.name.clone() });
            }
            for end in [&l.a_node_name, &l.z_node_name] {
                if !node_index.contains_key(end) {
                    return Err(TopologyError::UnknownNode { link: l.name.clone(), node: end.clone() });
                }
            }
            if l.a_node_name == l.z_node_name {
                return Err(TopologyError::SelfLink { link: l.name.clone(), node: l.a_node_name.clone() });
            }
        }
        Ok(Topology { name, nodes, links, sites, node_index, site_index, link_index, mac_index })
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.node_index.get(name).map(|&i| &mut self.nodes[i])
    }

    /// The node with this MAC: case-insensitive, `:` or `-`. A MAC already in normalized form
    /// (what minions send) is found without allocating: the index keys are normalized and
    /// normalizing is idempotent, so an exact hit is the right node.
    pub fn node_by_mac(&self, mac: &str) -> Option<&Node> {
        self.mac_index.get(mac).or_else(|| self.mac_index.get(&normalize_mac(mac))).map(|&i| &self.nodes[i])
    }

    pub fn site(&self, name: &str) -> Option<&Site> {
        self.site_index.get(name).map(|&i| &self.sites[i])
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.link_index.get(name).map(|&i| &self.links[i])
    }

    pub fn link_mut(&mut self, name: &str) -> Option<&mut Link> {
        self.link_index.get(name).map(|&i| &mut self.links[i])
    }

    /// Links with `node` at either end.
    pub fn links_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.a_node_name == node || l.z_node_name == node)
    }

    /// Serialize back to Terragraph JSON (numeric enums), e.g. for generated meshes.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "nodes": self.nodes.iter().map(|n| json!({
                "name": n.name,
                "node_type": match n.node_type { NodeType::Cn => 1, NodeType::Dn => 2 },
                "mac_addr": n.mac_addr,
                "pop_node": n.pop_node,
                "status": match n.status { NodeStatus::Offline => 1, NodeStatus::Online => 2, NodeStatus::OnlineInitiator => 3 },
                "site_name": n.site_name,
            })).collect::<Vec<_>>(),
            "links": self.links.iter().map(|l| json!({
                "name": l.name,
                "a_node_name": l.a_node_name,
                "z_node_name": l.z_node_name,
                "link_type": match l.link_type { LinkType::Wireless => 1, LinkType::Ethernet => 2 },
                "is_alive": l.is_alive,
            })).collect::<Vec<_>>(),
            "sites": self.sites.iter().map(|s| match &s.location {
                Some(loc) => json!({"name": s.name, "location": {
                    "latitude": loc.latitude, "longitude": loc.longitude,
                    "altitude": loc.altitude, "accuracy": loc.accuracy}}),
                None => json!({"name": s.name}),
            }).collect::<Vec<_>>(),
        })
    }
}

/// MACs compare case-insensitively and with either `:` or `-`.
pub fn normalize_mac(mac: &str) -> String {
    mac.trim().to_ascii_lowercase().replace('-', ":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written and read back, a site's location is the same number to the last bit (the topology
    /// fuzz target found `1.6666666666666665e55` coming back one ULP off before serde_json's
    /// `float_roundtrip`).
    #[test]
    fn locations_survive_a_write_and_read_exactly() {
        let mut t = Topology::from_json(GOOD).unwrap();
        for (i, x) in [1.6666666666666665e55, 52.520008, 13.404954, 0.1 + 0.2, f64::MIN_POSITIVE, -1e-300]
            .iter()
            .enumerate()
        {
            let loc = t.sites[0].location.as_mut().unwrap();
            match i % 4 {
                0 => loc.accuracy = *x,
                1 => loc.latitude = *x,
                2 => loc.longitude = *x,
                _ => loc.altitude = *x,
            }
            let again = Topology::from_json(&t.to_json().to_string()).unwrap();
            assert_eq!(again, t, "value {x:e}");
        }
    }

    const GOOD: &str = r#"{
      "name": "t",
      "nodes": [
        {"name": "a1", "node_type": 2, "mac_addr": "00:00:00:00:00:01", "pop_node": true, "status": 2, "site_name": "A", "ant_azimuth": 1.5},
        {"name": "b1", "node_type": 1, "mac_addr": "00:00:00:00:00:02", "pop_node": false, "status": 1, "site_name": "B"}
      ],
      "links": [{"name": "link-a1-b1", "a_node_name": "a1", "z_node_name": "b1", "link_type": 1, "is_alive": true, "linkup_attempts": 3}],
      "sites": [{"name": "A", "location": {"latitude": 1.0, "longitude": 2.0}}, {"name": "B"}],
      "config": {"whatever": true}
    }"#;

    #[test]
    fn parses_terragraph_json_and_ignores_unknown_fields() {
        let t = Topology::from_json(GOOD).unwrap();
        assert_eq!(t.nodes.len(), 2);
        let a1 = t.node("a1").unwrap();
        assert!(a1.pop_node);
        assert_eq!(a1.node_type, NodeType::Dn);
        assert_eq!(t.node("b1").unwrap().status, NodeStatus::Offline);
        assert_eq!(t.link("link-a1-b1").unwrap().link_type, LinkType::Wireless);
        assert_eq!(t.node_by_mac("00-00-00-00-00-02").unwrap().name, "b1");
        // Round trip through to_json.
        let again = Topology::from_json(&t.to_json().to_string()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn node_by_mac_ignores_case_separator_and_surrounding_space() {
        let t = Topology::from_json(&GOOD.replace("00:00:00:00:00:02", "0A-00-00-00-00-BC")).unwrap();
        for mac in ["0a:00:00:00:00:bc", "0A:00:00:00:00:BC", "0a-00-00-00-00-bc", " 0A-00-00-00-00-Bc\n"] {
            assert_eq!(t.node_by_mac(mac).map(|n| n.name.as_str()), Some("b1"), "{mac:?}");
        }
        assert_eq!(t.node_by_mac("00:00:00:00:00:01").unwrap().name, "a1");
        assert!(t.node_by_mac("0a:00:00:00:00:bd").is_none());
        assert!(t.node_by_mac("").is_none());
    }

    fn err(text: &str) -> String {
        Topology::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn refusals_name_the_culprit() {
        assert!(err(&GOOD.replace(r#""site_name": "B""#, r#""site_name": "Z""#))
            .contains("\"b1\" is in unknown site \"Z\""));
        assert!(err(&GOOD.replace(r#""z_node_name": "b1""#, r#""z_node_name": "ghost""#))
            .contains("unknown node \"ghost\""));
        assert!(
            err(&GOOD.replace(r#""name": "b1""#, r#""name": "a1""#)).contains("duplicate node name \"a1\"")
        );
        assert!(
            err(&GOOD.replace(r#""name": "B"}"#, r#""name": "A"}"#)).contains("duplicate site name \"A\"")
        );
        assert!(err(&GOOD.replace(r#""node_type": 1, "#, ""))
            .contains("node \"b1\" is missing required field `node_type`"));
        assert!(err(&GOOD.replace(r#""is_alive": true, "#, ""))
            .contains("link \"link-a1-b1\" is missing required field `is_alive`"));
        assert!(err(&GOOD.replace(r#""status": 1"#, r#""status": 9"#)).contains("`status` = 9"));
        assert!(err(&GOOD.replace("00:00:00:00:00:02", "00:00:00:00:00:01")).contains("share MAC"));
        assert!(err("{not json").contains("not valid JSON"));
        assert!(err(r#"{"nodes": []}"#).contains("`sites`"));
    }
}
