//! Controller configuration (TOML). Every option has a documented default, so a minimal file
//! names only the topology; unknown keys are refused so a typo never silently falls back to a
//! default.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config read when `--config` is not given: where the Debian package puts its sample and
/// the systemd unit's `ConfigurationDirectory=meshlift` points.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/meshlift/controller.toml";

/// `data_dir` when the config does not set one: the unit's `StateDirectory=meshlift/controller`.
/// An absolute path, so a controller never writes its database into whatever directory it was
/// started from.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/meshlift/controller";

/// `meshlift-controller --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Terragraph topology JSON: nodes, links, sites. Node status and link liveness are then
    /// updated live from the minions' reports.
    pub topology_file: PathBuf,
    /// State database (`state.db`), image store (`images/`). Default [`DEFAULT_DATA_DIR`]; a
    /// relative path is taken relative to the config file's directory, like every path here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// ROUTER socket for minions. Default `tcp://*:7007` (Terragraph's port): every address,
    /// IPv6 and IPv4 (dual-stack; IPv4 only on a host without IPv6). `tcp://[fd00::1]:7007` binds
    /// one IPv6 address.
    #[serde(default = "default_minion_endpoint")]
    pub minion_endpoint: String,
    /// ROUTER socket for operator tools. Default `tcp://127.0.0.1:17077`: operators on the
    /// controller's host; bind a management address explicitly to reach it from elsewhere.
    #[serde(default = "default_app_endpoint")]
    pub app_endpoint: String,
    /// HTTP server: `/metrics`, `/healthz`, `/announce` (tracker), `/images/…`, as a socket
    /// address (`[fd00::1]:8080`, `192.0.2.1:8080`). Default `[::]:8080`: both families
    /// (dual-stack), IPv4 only on a host without IPv6. The seeder listens on the same address.
    #[serde(default = "default_http_listen")]
    pub http_listen: std::net::SocketAddr,
    /// How minions reach this controller's HTTP server, tracker and seeder (goes into magnet and
    /// HTTP URIs and their initial peers): a DNS name (each node resolves it), an IPv4 or an IPv6
    /// address (`fd00::1` or `[fd00::1]`), never with a port. Default `127.0.0.1`; a loopback
    /// value on a listener that is not loopback is warned about at start.
    #[serde(default = "default_public_host")]
    pub public_host: crate::address::Host,
    /// A node is offline when no status report arrived for this long. Default 30 s (Terragraph).
    #[serde(default = "default_alive")]
    pub node_alive_timeout_s: u64,
    /// Engine tick period. Default 1000 ms (Terragraph: 5 s; faster ticks cost nothing here).
    #[serde(default = "default_tick")]
    pub tick_interval_ms: u64,
    /// Journal retention: journal lines (operator commands, transitions) older than this many
    /// days are pruned, at start and hourly. Default 90. Requests, batches and node outcomes are
    /// kept; the refused-request lines are also cut to 1 KiB each and limited to one per address
    /// a minute.
    #[serde(default = "default_journal_keep_days")]
    pub journal_keep_days: u64,
    /// Journal retention: at most this many lines are kept (the newest). Default 100 000 (~30 MB
    /// at most with 1 KiB texts, a few MB in practice).
    #[serde(default = "default_journal_max_rows")]
    pub journal_max_rows: u64,
    /// Largest accepted frame. Default 1 MiB.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Public keys (`meshlift keygen` `.pub` files) whose images `image add` accepts.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Trial-boot confirm timeout sent with every COMMIT unless the request sets one. Default 120 s.
    #[serde(default = "default_confirm")]
    pub confirm_timeout_s: u64,
    /// Refuse `image add` when less than this many bytes would stay free. Default 1 GiB.
    #[serde(default = "default_min_free")]
    pub image_min_free_bytes: u64,
    #[serde(default)]
    pub bittorrent: BitTorrentConfig,
    /// CurveZMQ keys, enrolled nodes and operators.
    #[serde(default)]
    pub security: SecurityConfig,
    /// The HTTP server's TLS and API settings (`crate::api::HttpConfig`).
    #[serde(default)]
    pub http: crate::api::HttpConfig,
    /// `[golden]`: the golden-image loop's initial settings and targets ([`crate::golden::config`]).
    #[serde(default)]
    pub golden: crate::golden::GoldenConfig,
    /// The config file's directory: relative key paths of operators resolve against it.
    #[serde(skip, default = "default_base")]
    pub base_dir: PathBuf,
}

fn default_base() -> PathBuf {
    PathBuf::from(".")
}

/// Authentication and encryption of both ZeroMQ sockets (CurveZMQ, on unless `insecure`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Plain text and no authentication on both sockets: anyone who reaches them commands the
    /// fleet. Only for a lab; logged as a warning at start. Default false.
    #[serde(default)]
    pub insecure: bool,
    /// The controller's CURVE secret key file (`meshlift keygen --curve`). Default
    /// `keys/controller.key` next to the config. Its `.pub` twin is what minions and operators
    /// need.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Enrolled node keys (`[nodes] name = "Z85"`), rewritten by `meshlift node enroll`.
    /// Default `node_keys.toml` next to the config.
    #[serde(default = "default_node_keys")]
    pub node_keys_file: PathBuf,
    /// Largest batch limit a non-admin operator may ask for; larger, or below 0 (all at once),
    /// needs the admin role. Default 50.
    #[serde(default = "default_limit_cap")]
    pub operator_limit_cap: i64,
    /// Operator keys allowed on the app socket, each with a name (journaled as `who`) and a role.
    #[serde(default)]
    pub operators: Vec<crate::auth::OperatorConfig>,
    /// Bearer tokens of the HTTP API (`meshlift token new`), by SHA-256, each with a name and a
    /// role. Required even with `insecure = true` (see `crate::api`).
    #[serde(default)]
    pub api_tokens: Vec<crate::api::ApiTokenConfig>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            insecure: false,
            key_file: default_key_file(),
            node_keys_file: default_node_keys(),
            operator_limit_cap: default_limit_cap(),
            operators: Vec::new(),
            api_tokens: Vec::new(),
        }
    }
}

fn default_key_file() -> PathBuf {
    PathBuf::from("keys/controller.key")
}
fn default_node_keys() -> PathBuf {
    PathBuf::from("node_keys.toml")
}
fn default_limit_cap() -> i64 {
    50
}

/// The controller's BitTorrent seeder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitTorrentConfig {
    /// Seeder listen port. Default 6881 (outside the ephemeral range, which collides with
    /// outgoing connections).
    #[serde(default = "default_bt_port")]
    pub listen_port: u16,
    /// External tracker announce URL (opentracker, chihaya). Empty = the embedded tracker at
    /// `http://<public_host>:<http port>/announce`.
    #[serde(default)]
    pub tracker_url: String,
    /// Seeder upload limit in bytes/s (like a POP's in-band uplink). None = unlimited.
    #[serde(default)]
    pub upload_limit: Option<u64>,
}

impl Default for BitTorrentConfig {
    fn default() -> Self {
        BitTorrentConfig { listen_port: default_bt_port(), tracker_url: String::new(), upload_limit: None }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_minion_endpoint() -> String {
    "tcp://*:7007".into()
}
fn default_app_endpoint() -> String {
    "tcp://127.0.0.1:17077".into()
}
fn default_http_listen() -> std::net::SocketAddr {
    (std::net::Ipv6Addr::UNSPECIFIED, 8080).into()
}
fn default_public_host() -> crate::address::Host {
    crate::address::Host::Ip(std::net::Ipv4Addr::LOCALHOST.into())
}
fn default_alive() -> u64 {
    30
}
fn default_tick() -> u64 {
    1000
}
fn default_journal_keep_days() -> u64 {
    90
}
fn default_journal_max_rows() -> u64 {
    100_000
}
fn default_max_frame() -> usize {
    meshlift_protocol::MAX_FRAME_DEFAULT
}
fn default_confirm() -> u64 {
    120
}
fn default_min_free() -> u64 {
    1 << 30
}
fn default_bt_port() -> u16 {
    6881
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `--config` was given and the default file does not exist: a fresh host where neither
    /// the package's sample nor an operator's file is in place.
    #[error(
        "no config at {path} (read when --config is not given): install the meshlift-controller \
         package, which puts a sample there, or write one from configs/controller.toml (only \
         topology_file is required), or pass --config FILE"
    )]
    MissingDefault { path: PathBuf },
    /// The file is missing or unreadable (permissions: the packaged unit runs as user `meshlift`).
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, a missing required key, or an unknown key (the message names it).
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ControllerConfig {
    /// The file named by `--config`, else [`DEFAULT_CONFIG_PATH`]; a missing default file is
    /// [`ConfigError::MissingDefault`], which says how to create one.
    pub fn load_or_default(explicit: Option<&Path>) -> Result<ControllerConfig, ConfigError> {
        match explicit {
            Some(path) => Self::load(path),
            None => Self::load_default(Path::new(DEFAULT_CONFIG_PATH)),
        }
    }

    /// [`Self::load`] for a path the operator did not name, so a missing file is told apart.
    fn load_default(path: &Path) -> Result<ControllerConfig, ConfigError> {
        Self::load(path).map_err(|e| match e {
            ConfigError::Read { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                ConfigError::MissingDefault { path }
            }
            e => e,
        })
    }

    /// Load a TOML file; relative paths inside it are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<ControllerConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut cfg: ControllerConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.topology_file = resolve(base, &cfg.topology_file);
        cfg.data_dir = resolve(base, &cfg.data_dir);
        cfg.trusted_keys = cfg.trusted_keys.iter().map(|k| resolve(base, k)).collect();
        cfg.security.key_file = resolve(base, &cfg.security.key_file);
        cfg.security.node_keys_file = resolve(base, &cfg.security.node_keys_file);
        cfg.http.tls_cert = cfg.http.tls_cert.as_deref().map(|p| resolve(base, p));
        cfg.http.tls_key = cfg.http.tls_key.as_deref().map(|p| resolve(base, p));
        cfg.base_dir = base.to_path_buf();
        Ok(cfg)
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let cfg: ControllerConfig = toml::from_str(r#"topology_file = "t.json""#).unwrap();
        assert_eq!(cfg.minion_endpoint, "tcp://*:7007");
        assert_eq!(cfg.http_listen, "[::]:8080".parse().unwrap());
        assert_eq!(cfg.public_host.to_string(), "127.0.0.1");
        assert_eq!(cfg.node_alive_timeout_s, 30);
        assert_eq!(cfg.bittorrent.listen_port, 6881);
    }

    #[test]
    fn the_sample_config_parses() {
        let cfg: ControllerConfig = toml::from_str(include_str!("../../configs/controller.toml")).unwrap();
        assert_eq!(cfg.bittorrent.listen_port, 6881);
    }

    #[test]
    fn data_dir_defaults_to_the_state_directory_and_relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let minimal = dir.path().join("minimal.toml");
        std::fs::write(&minimal, "topology_file = \"t.json\"\n").unwrap();
        let cfg = ControllerConfig::load(&minimal).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/meshlift/controller"));
        assert_eq!(cfg.topology_file, dir.path().join("t.json"));

        let relative = dir.path().join("relative.toml");
        std::fs::write(&relative, "topology_file = \"t.json\"\ndata_dir = \"state\"\n").unwrap();
        assert_eq!(ControllerConfig::load(&relative).unwrap().data_dir, dir.path().join("state"));
    }

    #[test]
    fn a_missing_default_config_says_where_and_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("controller.toml");
        let err = ControllerConfig::load_default(&absent).unwrap_err();
        assert!(matches!(err, ConfigError::MissingDefault { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&absent.display().to_string()), "{text}");
        assert!(text.contains("--config") && text.contains("configs/controller.toml"), "{text}");
        // A file the operator named stays a plain read error.
        let err = ControllerConfig::load(&absent).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }

    #[test]
    fn the_packaged_config_parses_and_keeps_runtime_state_out_of_etc() {
        let cfg: ControllerConfig =
            toml::from_str(include_str!("../../configs/debian/controller.toml")).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        // `meshlift node enroll` rewrites node_keys.toml; the unit's ProtectSystem=strict leaves
        // /etc read-only, so the packaged config keeps it in the state directory.
        assert!(
            cfg.security.node_keys_file.starts_with(DEFAULT_DATA_DIR),
            "{:?}",
            cfg.security.node_keys_file
        );
        assert!(!cfg.security.insecure);
    }

    #[test]
    fn typos_are_refused() {
        let err =
            toml::from_str::<ControllerConfig>("topology_file = \"t\"\nnode_alive_timout_s = 3").unwrap_err();
        assert!(err.to_string().contains("node_alive_timout_s"), "{err}");
    }
}
