//! A whole test network on one machine: signing keys, two signed images, a real controller
//! process and a [`MeshSim`] of real minion processes — what `meshlift demo` runs and what the
//! end-to-end tests drive.
//!
//! The lab only sets things up and talks the real protocol (the operator's app socket, the
//! controller's `/metrics`); every decision is made by the controller and the minions. Every
//! process it starts dies with it (drop, error or Ctrl-C of the owner).
//!
//! CurveZMQ is on unless [`LabConfig::insecure`]: the lab generates a key pair for the
//! controller, one per node (enrolled in the controller's `node_keys.toml`), one for its own
//! operator ([`LAB_OPERATOR`], role admin) and one per [`LabConfig::extra_operators`], all under
//! `<work>/keys/` ([`LabKeys`]). Its own requests use its operator key; [`Lab::cli`] runs the
//! `meshlift` CLI with the same keys in its environment.

use crate::{node_file_stem, MeshConfig, MeshSim, NodeTemplate};
use meshlift_image::{BuildOptions, HookKind};
use meshlift_protocol::transport::{
    request, ClientSecurity, CurveKeyPair, CurvePublicKey, RequestConfig, TransportError,
};
use meshlift_protocol::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::process::{Child, Command};

/// Board id of every simulated node.
pub const SIM_BOARD: &str = "meshsim-board";
/// Version installed at the factory.
pub const V1: &str = "1.0.0";
/// Version rolled out.
pub const V2: &str = "2.0.0";

/// Why the lab could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot find {0}: build the workspace binaries first (cargo build --bins)")]
    MissingBinary(String),
    #[error("lab setup: {0}")]
    Setup(String),
    #[error("controller: {0}")]
    Controller(String),
    #[error("mesh: {0}")]
    Mesh(#[from] crate::MeshError),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What to build and start.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub topology: Topology,
    /// Everything lives under it (keys, images, controller data, one folder per node).
    pub work_dir: PathBuf,
    /// Directory holding `meshlift-controller` and `meshlift-minion`.
    pub bin_dir: PathBuf,
    /// Payload size of the images.
    pub image_bytes: usize,
    /// Nodes on which v2's post-boot check fails (they must fall back).
    pub bad_image_nodes: Vec<String>,
    pub boot_delay: Duration,
    pub status_interval_s: u64,
    pub node_alive_timeout_s: u64,
    pub confirm_timeout_s: u64,
    /// Cap of the controller seeder's upload, bytes/s.
    pub seed_upload_limit: Option<u64>,
    /// Plain text and no keys on both ZeroMQ sockets (`security.insecure = true`). Default
    /// false: CurveZMQ with generated keys.
    pub insecure: bool,
    /// Operators besides the lab's own admin: a key pair each (`keys/operators/<name>.key`),
    /// listed in the controller config with their role. See [`Lab::operator_key`],
    /// [`Lab::ask_as`] and [`Lab::cli_as`].
    pub extra_operators: Vec<(String, Role)>,
    /// A `[golden]` section for the controller config (the golden-image loop's settings and
    /// targets), appended as is. Default none: the loop is off.
    pub golden_toml: Option<String>,
    /// Everything on `::1` instead of `127.0.0.1`: the controller's ZeroMQ sockets, HTTP server,
    /// tracker and seeder, `public_host`, and the nodes' relays; the minions then announce,
    /// fetch and trade pieces over IPv6 (Terragraph's management network is IPv6). Default false.
    pub ipv6: bool,
}

/// Name of the lab's own operator key (role admin); the controller journals its actions under it.
pub const LAB_OPERATOR: &str = "meshlift-demo";

/// An operator's role on the controller (`[[security.operators]] role`).
pub use meshlift_protocol::Role;

/// One CURVE key pair on disk.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// Secret key file (mode 0600): `key_file` of a node, `MESHLIFT_KEY` of an operator.
    pub key: PathBuf,
    /// Public key file (`<stem>.pub`).
    pub public_file: PathBuf,
    pub public: CurvePublicKey,
}

/// Every CURVE key the lab generated, under `<work>/keys/`.
#[derive(Debug, Clone)]
pub struct LabKeys {
    /// `keys/controller.{key,pub}`: the controller's `security.key_file`; every node and
    /// operator is given `controller.pub`.
    pub controller: KeyFiles,
    /// `keys/operators/meshlift-demo.{key,pub}`: the lab's own operator ([`LAB_OPERATOR`], admin).
    pub operator: KeyFiles,
    /// `keys/operators/<name>.{key,pub}` with their role, by operator name.
    pub extra_operators: BTreeMap<String, (Role, KeyFiles)>,
    /// `keys/nodes/<node_file_stem(node)>.{key,pub}`, by node name; all enrolled.
    pub nodes: BTreeMap<String, KeyFiles>,
}

impl LabKeys {
    /// Generate every key pair under `keys_dir` (which must not hold them yet: keys are never
    /// overwritten).
    pub fn generate(
        keys_dir: &Path,
        topology: &Topology,
        extra: &[(String, Role)],
    ) -> Result<LabKeys, LabError> {
        let controller = new_pair(keys_dir, "controller")?;
        let ops_dir = keys_dir.join("operators");
        let operator = new_pair(&ops_dir, LAB_OPERATOR)?;
        let mut stems = BTreeMap::from([(LAB_OPERATOR.to_string(), LAB_OPERATOR.to_string())]);
        let mut extra_operators = BTreeMap::new();
        for (name, role) in extra {
            let stem = node_file_stem(name);
            if let Some(other) = stems.insert(stem.clone(), name.clone()) {
                return Err(LabError::Setup(format!(
                    "operators {other:?} and {name:?} would share the key file {stem}.key"
                )));
            }
            extra_operators.insert(name.clone(), (*role, new_pair(&ops_dir, &stem)?));
        }
        let nodes_dir = keys_dir.join("nodes");
        let mut node_stems: BTreeMap<String, &str> = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for node in &topology.nodes {
            let stem = node_file_stem(&node.name);
            if let Some(other) = node_stems.insert(stem.clone(), &node.name) {
                return Err(LabError::Setup(format!(
                    "nodes {other:?} and {:?} would share the key file {stem}.key",
                    node.name
                )));
            }
            nodes.insert(node.name.clone(), new_pair(&nodes_dir, &stem)?);
        }
        Ok(LabKeys { controller, operator, extra_operators, nodes })
    }

    /// `node_keys.toml` for the controller: `[nodes]`, then `"name" = "Z85"` for every node.
    pub fn node_keys_toml(&self) -> Result<String, LabError> {
        #[derive(serde::Serialize)]
        struct File<'a> {
            nodes: BTreeMap<&'a str, String>,
        }
        let file = File { nodes: self.nodes.iter().map(|(n, k)| (n.as_str(), k.public.to_z85())).collect() };
        let body = toml::to_string(&file).map_err(|e| LabError::Setup(format!("node_keys.toml: {e}")))?;
        Ok(format!("# meshlift enrolled node keys: node name = CURVE public key (Z85)\n{body}"))
    }

    /// The controller config's `[security]` table (CURVE on).
    fn security_toml(&self, node_keys_file: &Path) -> Result<String, LabError> {
        let mut operators = vec![SecurityOperator {
            name: LAB_OPERATOR,
            role: Role::Admin.as_str(),
            key: self.operator.public.to_z85(),
        }];
        for (name, (role, files)) in &self.extra_operators {
            operators.push(SecurityOperator { name, role: role.as_str(), key: files.public.to_z85() });
        }
        let table = SecurityTable {
            security: Security {
                insecure: false,
                key_file: Some(&self.controller.key),
                node_keys_file: Some(node_keys_file),
                operators,
            },
        };
        toml::to_string(&table).map_err(|e| LabError::Setup(format!("controller [security]: {e}")))
    }
}

#[derive(serde::Serialize)]
struct SecurityTable<'a> {
    security: Security<'a>,
}

#[derive(serde::Serialize)]
struct Security<'a> {
    insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_keys_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    operators: Vec<SecurityOperator<'a>>,
}

#[derive(serde::Serialize)]
struct SecurityOperator<'a> {
    name: &'a str,
    role: &'static str,
    key: String,
}

fn new_pair(dir: &Path, stem: &str) -> Result<KeyFiles, LabError> {
    let kp = CurveKeyPair::generate().map_err(|e| LabError::Setup(e.to_string()))?;
    let (key, public_file) = kp.save(dir, stem).map_err(|e| LabError::Setup(e.to_string()))?;
    Ok(KeyFiles { key, public_file, public: kp.public() })
}

impl LabConfig {
    /// Demo defaults: 4 MiB images, 1 s boot delay, reports every second.
    pub fn new(topology: Topology, work_dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> LabConfig {
        LabConfig {
            topology,
            work_dir: work_dir.into(),
            bin_dir: bin_dir.into(),
            image_bytes: 4 << 20,
            bad_image_nodes: Vec::new(),
            boot_delay: Duration::from_secs(1),
            status_interval_s: 1,
            node_alive_timeout_s: 10,
            confirm_timeout_s: 30,
            seed_upload_limit: None,
            insecure: false,
            extra_operators: Vec::new(),
            golden_toml: None,
            ipv6: false,
        }
    }

    /// The loopback address every process of the lab uses: `::1` with [`LabConfig::ipv6`], else
    /// `127.0.0.1`.
    pub fn loopback(&self) -> IpAddr {
        if self.ipv6 {
            Ipv6Addr::LOCALHOST.into()
        } else {
            Ipv4Addr::LOCALHOST.into()
        }
    }
}

/// Find the workspace binaries next to the running executable (`target/<profile>/`, or its
/// parent when running from `target/<profile>/deps/`).
pub fn find_bin_dir() -> Result<PathBuf, LabError> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d.join("meshlift-controller").exists() && d.join("meshlift-minion").exists() {
            return Ok(d);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Err(LabError::MissingBinary("meshlift-controller and meshlift-minion next to this executable".into()))
}

/// Ports chosen for one lab.
#[derive(Debug, Clone)]
pub struct LabPorts {
    pub minion: u16,
    pub app: u16,
    pub http: u16,
    pub bt: u16,
}

/// A running lab.
pub struct Lab {
    pub cfg: LabConfig,
    pub mesh: MeshSim,
    pub ports: LabPorts,
    pub v1_path: PathBuf,
    pub v2_path: PathBuf,
    controller: Option<Child>,
    controller_config: PathBuf,
    controller_starts: u32,
    meshsim_metrics: std::net::SocketAddr,
    /// `None` when insecure.
    keys: Option<LabKeys>,
    /// How the lab's own requests reach the app socket (its operator key, or plain text).
    client: RequestConfig,
    /// HTTP API bearer tokens (`[[security.api_tokens]]`), by name: one for the lab's own
    /// operator ([`LAB_OPERATOR`], admin) and one per extra operator, with the same role.
    api_tokens: BTreeMap<String, String>,
}

/// A free port on `ip` below the ephemeral range (librqbit listeners there collide with
/// outgoing connections).
fn free_low_port(ip: IpAddr) -> Result<u16, LabError> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) as u64
        ^ (std::process::id() as u64) << 7;
    for i in 0..2000u64 {
        let p = 20000 + ((seed.wrapping_mul(6364136223846793005).wrapping_add(i * 7919)) % 12000) as u16;
        if std::net::TcpListener::bind((ip, p)).is_ok() {
            return Ok(p);
        }
    }
    Err(LabError::Setup("no free port in 20000-32000".into()))
}

impl Lab {
    /// Generate keys and images, start the controller, start the mesh, and wait until every
    /// online node has reported. v2 is only built (at `v2_path`): adding it is the caller's step.
    pub async fn start(cfg: LabConfig) -> Result<Lab, LabError> {
        for bin in ["meshlift-controller", "meshlift-minion"] {
            if !cfg.bin_dir.join(bin).exists() {
                return Err(LabError::MissingBinary(cfg.bin_dir.join(bin).display().to_string()));
            }
        }
        std::fs::create_dir_all(&cfg.work_dir)?;
        let work = cfg.work_dir.canonicalize()?;
        let keys = meshlift_image::generate_keypair(&work.join("keys"))
            .map_err(|e| LabError::Setup(e.to_string()))?;
        let signing =
            meshlift_image::load_signing_key(&keys.private).map_err(|e| LabError::Setup(e.to_string()))?;
        let images_dir = work.join("images");
        std::fs::create_dir_all(&images_dir)?;
        let v1_path = images_dir.join("v1.mlimg");
        let v2_path = images_dir.join("v2.mlimg");
        build_sim_image(&images_dir, &signing, V1, cfg.image_bytes, 1, &[], &v1_path)?;
        build_sim_image(&images_dir, &signing, V2, cfg.image_bytes, 2, &cfg.bad_image_nodes, &v2_path)?;

        let topo_path = work.join("topology.json");
        std::fs::write(&topo_path, cfg.topology.to_json().to_string())?;
        let (curve, security_toml) = if cfg.insecure {
            (None, "[security]\ninsecure = true\n".to_string())
        } else {
            let curve = LabKeys::generate(&work.join("keys"), &cfg.topology, &cfg.extra_operators)?;
            let node_keys_file = work.join("node_keys.toml");
            std::fs::write(&node_keys_file, curve.node_keys_toml()?)?;
            let section = curve.security_toml(&node_keys_file)?;
            (Some(curve), section)
        };
        let security = match &curve {
            Some(k) => ClientSecurity::Curve {
                keys: CurveKeyPair::load(&k.operator.key).map_err(|e| LabError::Setup(e.to_string()))?,
                server: k.controller.public,
            },
            None => ClientSecurity::Insecure,
        };
        let (api_tokens, api_tokens_toml) = api_tokens(&cfg.extra_operators);
        let security_toml = security_toml + &api_tokens_toml;
        let controller_config = work.join("controller.toml");
        let lo = cfg.loopback();
        // Start the controller before the mesh, on ports below the ephemeral range (outgoing
        // connections of other processes can take an ephemeral port between our probe and the
        // controller's bind); should one be taken anyway, pick new ones and try again.
        let mut attempt = 0;
        let (ports, controller) = loop {
            attempt += 1;
            let ports = LabPorts {
                minion: free_low_port(lo)?,
                app: free_low_port(lo)?,
                http: free_low_port(lo)?,
                bt: free_low_port(lo)?,
            };
            write_controller_config(
                &cfg,
                &work,
                &ports,
                &keys.public,
                &topo_path,
                &security_toml,
                &controller_config,
            )?;
            let probe = RequestConfig::new(
                format!("tcp://{}", SocketAddr::new(lo, ports.app)),
                security.clone(),
                Duration::from_secs(1),
            );
            match spawn_controller(&cfg.bin_dir, &controller_config, &work, &probe).await {
                Ok(child) => break (ports, child),
                Err(e) if attempt < 5 && controller_log_says(&work, "Address already in use") => {
                    tracing::warn!(error = %e, "controller port taken; retrying with new ports");
                    continue;
                }
                Err(e) => return Err(e),
            }
        };

        let mut mcfg =
            MeshConfig::new(cfg.topology.clone(), cfg.bin_dir.join("meshlift-minion"), work.join("nodes"));
        mcfg.controller_endpoint = format!("tcp://{}", SocketAddr::new(lo, ports.minion));
        mcfg.boot_delay = cfg.boot_delay;
        mcfg.node_template = NodeTemplate {
            board: SIM_BOARD.to_string(),
            trusted_keys: vec![keys.public.clone()],
            factory_image: v1_path.clone(),
            status_interval_s: cfg.status_interval_s,
            controller_key: curve.as_ref().map(|k| k.controller.public_file.display().to_string()),
            key_dir: curve.as_ref().map(|_| work.join("keys").join("nodes")),
            insecure: cfg.insecure,
            extra_toml: String::new(),
        };
        let mesh = MeshSim::start(mcfg).await?;
        // Every mesh event with its time, for explaining a summary afterwards.
        let mut events = mesh.subscribe();
        let log_path = work.join("mesh-events.log");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let Ok(mut f) = tokio::fs::File::create(&log_path).await else { return };
            let t0 = Instant::now();
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        let line = format!("{:>9.3} {:?}\n", t0.elapsed().as_secs_f64(), ev);
                        let _ = f.write_all(line.as_bytes()).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
        // meshsim's own figures (collateral isolation) for Prometheus: the controller cannot see
        // them, only the simulated hardware can.
        let probe = mesh.isolation_probe();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let probe = probe.clone();
                async move { probe.report().to_prometheus() }
            }),
        );
        let listener = tokio::net::TcpListener::bind((lo, 0)).await?;
        let meshsim_metrics = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut lab_cfg = cfg.clone();
        lab_cfg.work_dir = work.clone();
        let lab = Lab {
            cfg: lab_cfg,
            mesh,
            v1_path,
            v2_path,
            controller: Some(controller),
            controller_config,
            controller_starts: attempt,
            meshsim_metrics,
            client: RequestConfig::new(
                format!("tcp://{}", SocketAddr::new(lo, ports.app)),
                security,
                Duration::from_secs(30),
            ),
            ports,
            keys: curve,
            api_tokens,
        };
        lab.wait_all_reported(Duration::from_secs(60)).await?;
        Ok(lab)
    }

    /// The operator endpoint (`--controller` of the CLI).
    pub fn app_endpoint(&self) -> String {
        format!("tcp://{}", SocketAddr::new(self.cfg.loopback(), self.ports.app))
    }

    /// meshsim's `/metrics`: collateral isolation, total and per node.
    pub fn meshsim_metrics_url(&self) -> String {
        format!("http://{}/metrics", self.meshsim_metrics)
    }

    /// meshsim's metrics text.
    pub async fn meshsim_metrics(&self) -> Result<String, LabError> {
        http_get(self.meshsim_metrics, "/metrics").await
    }

    /// The controller's HTTP server (API, dashboard, metrics), as `http://<loopback>:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.cfg.loopback(), self.ports.http))
    }

    /// The HTTP API bearer token of operator `name` ([`LAB_OPERATOR`] or an extra operator).
    pub fn api_token(&self, name: &str) -> Option<&str> {
        self.api_tokens.get(name).map(String::as_str)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", SocketAddr::new(self.cfg.loopback(), self.ports.http))
    }

    /// Start (or restart) the controller process on the same config and data.
    pub async fn start_controller(&mut self) -> Result<(), LabError> {
        self.controller_starts += 1;
        let probe = RequestConfig { timeout: Duration::from_secs(1), ..self.client.clone() };
        let child =
            spawn_controller(&self.cfg.bin_dir, &self.controller_config, &self.cfg.work_dir, &probe).await?;
        self.controller = Some(child);
        Ok(())
    }

    /// SIGKILL the controller (a crash, not a clean stop).
    pub async fn kill_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM the controller and wait for it to exit (a clean stop flushes its state).
    pub async fn terminate_controller(&mut self) -> Option<std::process::ExitStatus> {
        sigterm_and_wait(self.controller.take()?, Duration::from_secs(10)).await
    }

    /// How many times the controller was started.
    pub fn controller_starts(&self) -> u32 {
        self.controller_starts
    }

    /// One operator request, as the lab's own operator ([`LAB_OPERATOR`], admin).
    pub async fn ask(&self, msg: Message) -> Result<Message, LabError> {
        request(&self.client, msg).await.map(|e| e.body).map_err(|e| LabError::Controller(e.to_string()))
    }

    /// One request as the extra operator `name` ([`LabConfig::extra_operators`]); the transport's
    /// error is kept so a test can tell a refused key from a timeout.
    pub async fn ask_as(
        &self,
        name: &str,
        msg: Message,
    ) -> Result<Result<Message, TransportError>, LabError> {
        let files = self.operator_key(name)?;
        let keys = CurveKeyPair::load(&files.key).map_err(|e| LabError::Setup(e.to_string()))?;
        let server = self.keys.as_ref().map(|k| k.controller.public).ok_or_else(insecure_lab)?;
        let cfg = RequestConfig { security: ClientSecurity::Curve { keys, server }, ..self.client.clone() };
        Ok(request(&cfg, msg).await.map(|e| e.body))
    }

    /// How the lab's own requests are secured (clone it with another endpoint or timeout).
    pub fn client_config(&self) -> &RequestConfig {
        &self.client
    }

    /// Every key the lab generated; `None` when it runs insecure.
    pub fn keys(&self) -> Option<&LabKeys> {
        self.keys.as_ref()
    }

    /// The lab operator's secret key file (`MESHLIFT_KEY`); `None` when insecure.
    pub fn operator_key_path(&self) -> Option<&Path> {
        self.keys.as_ref().map(|k| k.operator.key.as_path())
    }

    /// The controller's public key (`MESHLIFT_CONTROLLER_KEY`); `None` when insecure.
    pub fn controller_public_key(&self) -> Option<CurvePublicKey> {
        self.keys.as_ref().map(|k| k.controller.public)
    }

    /// The controller's `controller.pub`; `None` when insecure.
    pub fn controller_public_key_path(&self) -> Option<&Path> {
        self.keys.as_ref().map(|k| k.controller.public_file.as_path())
    }

    /// The key files of extra operator `name`.
    pub fn operator_key(&self, name: &str) -> Result<&KeyFiles, LabError> {
        let keys = self.keys.as_ref().ok_or_else(insecure_lab)?;
        keys.extra_operators.get(name).map(|(_, files)| files).ok_or_else(|| {
            LabError::Setup(format!("no extra operator {name:?} in LabConfig::extra_operators"))
        })
    }

    /// Node `node`'s key files (its minion's `key_file`, enrolled on the controller).
    pub fn node_key(&self, node: &str) -> Result<&KeyFiles, LabError> {
        let keys = self.keys.as_ref().ok_or_else(insecure_lab)?;
        keys.nodes.get(node).ok_or_else(|| LabError::Setup(format!("{node} is not a node of the lab")))
    }

    /// The controller's config file.
    pub fn controller_config_path(&self) -> &Path {
        &self.controller_config
    }

    /// What an operator exports to use the `meshlift` CLI on this lab as its admin:
    /// `MESHLIFT_CONTROLLER`, and `MESHLIFT_KEY` + `MESHLIFT_CONTROLLER_KEY` (or
    /// `MESHLIFT_INSECURE=1`).
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("MESHLIFT_CONTROLLER", self.app_endpoint())];
        match &self.keys {
            Some(k) => {
                env.push(("MESHLIFT_KEY", k.operator.key.display().to_string()));
                env.push(("MESHLIFT_CONTROLLER_KEY", k.controller.public_file.display().to_string()));
            }
            None => env.push(("MESHLIFT_INSECURE", "1".to_string())),
        }
        env
    }

    /// The `meshlift` CLI (next to the other binaries) with [`Lab::cli_env`] set and every other
    /// `MESHLIFT_*` variable of this process removed; add the arguments and run it.
    pub fn cli(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.cfg.bin_dir.join("meshlift"));
        for var in ["MESHLIFT_CONTROLLER", "MESHLIFT_KEY", "MESHLIFT_CONTROLLER_KEY", "MESHLIFT_INSECURE"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.cli_env());
        cmd
    }

    /// [`Lab::cli`] with the key of extra operator `name` as `MESHLIFT_KEY`.
    pub fn cli_as(&self, name: &str) -> Result<std::process::Command, LabError> {
        let key = self.operator_key(name)?.key.clone();
        let mut cmd = self.cli();
        cmd.env("MESHLIFT_KEY", key);
        Ok(cmd)
    }

    /// Add v2 (or any image path) to the controller's store.
    pub async fn add_image(&self, path: &Path) -> Result<Ack, LabError> {
        match self
            .ask(Message::UpgradeAddImageReq(UpgradeAddImageReq {
                image_url: path.display().to_string(),
                operator: lab_operator("add the image to roll out"),
                tags: Vec::new(),
            }))
            .await?
        {
            Message::Ack(a) => Ok(a),
            other => Err(LabError::Controller(format!("unexpected reply {}", other.kind()))),
        }
    }

    pub async fn node_status(&self) -> Result<NodeStatusDump, LabError> {
        match self.ask(Message::NodeStatusReq(NodeStatusReq {})).await? {
            Message::NodeStatusDump(d) => Ok(d),
            other => Err(LabError::Controller(format!("unexpected reply {}", other.kind()))),
        }
    }

    pub async fn state(&self) -> Result<UpgradeStateDump, LabError> {
        match self.ask(Message::UpgradeStateReq(UpgradeStateReq {})).await? {
            Message::UpgradeStateDump(d) => Ok(d),
            other => Err(LabError::Controller(format!("unexpected reply {}", other.kind()))),
        }
    }

    /// The controller's stored image of `version` (its `name` is what requests refer to).
    pub async fn stored_image(&self, version: &str) -> Result<UpgradeImage, LabError> {
        match self.ask(Message::UpgradeListImagesReq(UpgradeListImagesReq {})).await? {
            Message::UpgradeListImagesResp(r) => r
                .images
                .into_iter()
                .find(|i| i.version == version)
                .ok_or_else(|| LabError::Controller(format!("{version} missing from the image list"))),
            other => Err(LabError::Controller(format!("unexpected reply {}", other.kind()))),
        }
    }

    /// Wait until every node the mesh runs has reported to the controller (online).
    pub async fn wait_all_reported(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(d) = self.node_status().await {
                let missing: Vec<&str> =
                    d.nodes.iter().filter(|n| !n.online).map(|n| n.name.as_str()).collect();
                if missing.is_empty() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(LabError::Timeout(format!("nodes never reported: {}", missing.join(", "))));
                }
            } else if Instant::now() > deadline {
                return Err(LabError::Timeout("controller unreachable".into()));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Submit a request; `Ok(id)` if accepted.
    pub async fn submit(&self, req: UpgradeGroupReq) -> Result<String, LabError> {
        match self.ask(Message::UpgradeGroupReq(req)).await? {
            Message::Ack(a) if a.success => Ok(a.message),
            Message::Ack(a) => Err(LabError::Controller(format!("request refused: {}", a.message))),
            other => Err(LabError::Controller(format!("unexpected reply {}", other.kind()))),
        }
    }

    /// Poll the state until `request_id` has finished; calls `on_poll` with every dump (live
    /// progress for the demo).
    pub async fn wait_finished(
        &self,
        request_id: &str,
        timeout: Duration,
        mut on_poll: impl FnMut(&UpgradeStateDump),
    ) -> Result<UpgradeStateDump, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(dump) = self.state().await {
                on_poll(&dump);
                if dump.finished_reqs.iter().any(|f| f.request_id == request_id) {
                    return Ok(dump);
                }
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!("request {request_id} did not finish")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The controller's `/metrics` text.
    pub async fn metrics(&self) -> Result<String, LabError> {
        http_get(SocketAddr::new(self.cfg.loopback(), self.ports.http), "/metrics").await
    }

    /// Stop everything: mesh first (its nodes stop talking), then the controller (SIGTERM, so it
    /// flushes its state), killing it if it does not exit in time.
    pub async fn stop(mut self) {
        self.mesh.stop().await;
        if let Some(c) = self.controller.take() {
            sigterm_and_wait(c, Duration::from_secs(5)).await;
        }
    }
}

/// SIGTERM `child` and wait up to `grace` for it to exit; SIGKILL it if it does not.
async fn sigterm_and_wait(mut child: Child, grace: Duration) -> Option<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            None
        }
    }
}

/// A fresh API token for the lab's operator and each extra operator (same name and role), and
/// the `[[security.api_tokens]]` entries that admit them.
fn api_tokens(extra: &[(String, Role)]) -> (BTreeMap<String, String>, String) {
    let mut tokens = BTreeMap::new();
    let mut toml = String::new();
    let all = std::iter::once((LAB_OPERATOR.to_string(), Role::Admin)).chain(extra.iter().cloned());
    for (name, role) in all {
        let token = meshlift_protocol::api_token::token_from_secret(&rand::random::<[u8; 32]>());
        let sha = meshlift_protocol::api_token::token_sha256_hex(&token);
        toml.push('\n');
        toml.push_str(&meshlift_protocol::api_token::config_entry(&name, role, &sha));
        tokens.insert(name, token);
    }
    (tokens, toml)
}

fn insecure_lab() -> LabError {
    LabError::Setup("the lab runs insecure (LabConfig::insecure): it has no CURVE keys".into())
}

fn write_controller_config(
    cfg: &LabConfig,
    work: &Path,
    ports: &LabPorts,
    public_key: &Path,
    topo_path: &Path,
    security_toml: &str,
    out: &Path,
) -> Result<(), LabError> {
    let lo = cfg.loopback();
    let mut toml = format!(
        "topology_file = {:?}\ndata_dir = {:?}\nminion_endpoint = \"tcp://{}\"\napp_endpoint = \"tcp://{}\"\nhttp_listen = \"{}\"\npublic_host = \"{}\"\nnode_alive_timeout_s = {}\ntick_interval_ms = 250\nconfirm_timeout_s = {}\ntrusted_keys = [{:?}]\nimage_min_free_bytes = 0\n\n[bittorrent]\nlisten_port = {}\n",
        topo_path,
        work.join("controller"),
        SocketAddr::new(lo, ports.minion),
        SocketAddr::new(lo, ports.app),
        SocketAddr::new(lo, ports.http),
        lo,
        cfg.node_alive_timeout_s,
        cfg.confirm_timeout_s,
        public_key,
        ports.bt
    );
    if let Some(l) = cfg.seed_upload_limit {
        toml.push_str(&format!("upload_limit = {l}\n"));
    }
    toml.push('\n');
    toml.push_str(security_toml);
    if let Some(golden) = &cfg.golden_toml {
        toml.push('\n');
        toml.push_str(golden);
        toml.push('\n');
    }
    std::fs::write(out, toml)?;
    Ok(())
}

fn controller_log_says(work: &Path, needle: &str) -> bool {
    std::fs::read_to_string(work.join("controller.log")).is_ok_and(|t| t.contains(needle))
}

/// Start the controller process and wait until its app socket answers `probe` (the lab's own
/// operator key, one-second timeout).
async fn spawn_controller(
    bin_dir: &Path,
    config: &Path,
    work: &Path,
    probe: &RequestConfig,
) -> Result<Child, LabError> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(work.join("controller.log"))?;
    let mut child = Command::new(bin_dir.join("meshlift-controller"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LabError::Controller(format!("cannot start: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match request(probe, Message::UpgradeListImagesReq(UpgradeListImagesReq {})).await {
            Ok(_) => return Ok(child),
            // Waiting longer will not help: the controller does not admit the lab's key.
            Err(e @ TransportError::AuthRefused { .. }) => {
                return Err(LabError::Controller(format!(
                    "{e}; see {}",
                    work.join("controller.log").display()
                )))
            }
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::Controller(format!(
                "exited at start ({status}); see {}",
                work.join("controller.log").display()
            )));
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout("controller did not answer on its app socket".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Operator identity used by the lab.
pub fn lab_operator(reason: &str) -> Operator {
    Operator { who: "meshlift-demo".into(), reason: Some(reason.into()) }
}

/// A full upgrade of the whole network to `image` with demo settings.
pub fn full_upgrade_request(id: &str, image: &str, batch_timeout_s: u64) -> UpgradeGroupReq {
    let mut ur = UpgradeReq::new(UpgradeReqType::FullUpgrade, id);
    ur.image_name = Some(image.to_string());
    ur.torrent_params.download_timeout_s = 120;
    ur.torrent_params.bt_stall_timeout_s = 10;
    let mut req = UpgradeGroupReq::new(UpgradeGroupType::Network, ur, batch_timeout_s);
    req.skip_failure = true;
    req.retry_limit = 1;
    req.version = Some(image.to_string());
    req.operator = lab_operator("roll out the new release");
    req
}

/// Build a simulated image: a deterministic pseudo-random payload (different per version) and,
/// when `bad_nodes` is non-empty, a `post-boot-check` hook that fails on those nodes.
fn build_sim_image(
    dir: &Path,
    key: &meshlift_image::SigningKey,
    version: &str,
    bytes: usize,
    seed: u64,
    bad_nodes: &[String],
    out: &Path,
) -> Result<(), LabError> {
    let payload = dir.join(format!("payload-{version}.bin"));
    let mut data = vec![0u8; bytes];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    std::fs::write(&payload, &data)?;
    let mut hooks = Vec::new();
    if !bad_nodes.is_empty() {
        let hook = dir.join(format!("post-boot-check-{version}.sh"));
        let cases = bad_nodes.iter().map(|n| shell_quote(n)).collect::<Vec<_>>().join("|");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\n# $1 state, $2 work dir, $3 node name\ncase \"$3\" in\n  {cases})\n    echo \"radio calibration check failed on $3\" >&2\n    exit 1;;\nesac\nexit 0\n"
            ),
        )?;
        hooks.push((HookKind::PostBootCheck, hook));
    }
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let opts = BuildOptions {
        name: format!("meshsim-{version}"),
        version: version.to_string(),
        hardware_board_ids: vec![SIM_BOARD.to_string()],
        payload,
        hooks,
        created,
    };
    meshlift_image::build_image(&opts, Some(key), out).map_err(|e| LabError::Setup(e.to_string()))?;
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Minimal HTTP/1.0 GET on the lab's loopback (metrics scraping; no client library needed for
/// one line).
async fn http_get(addr: SocketAddr, path: &str) -> Result<String, LabError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .map_err(|_| LabError::Timeout("metrics".into()))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Sum a metric family over its label sets, optionally only where `label` has `value`.
pub fn metric_sum(text: &str, name: &str, filter: Option<(&str, &str)>) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((lhs, value)) = line.rsplit_once(' ') else { continue };
        let (metric, labels) = match lhs.split_once('{') {
            Some((m, l)) => (m, l.trim_end_matches('}')),
            None => (lhs, ""),
        };
        if metric != name {
            continue;
        }
        if let Some((k, v)) = filter {
            let want = format!("{k}=\"{v}\"");
            if !labels.split(',').any(|l| l == want) {
                continue;
            }
        }
        total += value.parse::<f64>().unwrap_or(0.0);
    }
    total
}

/// Batches of the COMMIT stage as they happened, collected from state dumps while waiting.
#[derive(Debug, Default, Clone)]
pub struct BatchLog {
    pub batches: BTreeMap<u32, BTreeSet<String>>,
}

impl BatchLog {
    pub fn observe(&mut self, d: &UpgradeStateDump) {
        if d.cur_req.as_ref().is_some_and(|r| {
            matches!(r.stage, UpgradeReqType::CommitUpgrade | UpgradeReqType::RevertToStandby)
        }) && d.cur_batch_index > 0
            && !d.cur_batch.is_empty()
        {
            self.batches
                .entry(d.cur_batch_index)
                .or_default()
                .extend(d.cur_batch.iter().map(|n| n.node.clone()));
        }
    }
}

/// Per-node download figures collected while a prepare runs (reports lose them after reboot).
#[derive(Debug, Clone, Default)]
pub struct TransferTally {
    pub per_node: BTreeMap<String, DownloadProgress>,
}

impl TransferTally {
    pub fn observe(&mut self, status: &NodeStatusDump) {
        for row in &status.nodes {
            if let Some(p) = row.upgrade_status.as_ref().and_then(|u| u.progress.as_ref()) {
                let e = self.per_node.entry(row.name.clone()).or_default();
                e.total_bytes = e.total_bytes.max(p.total_bytes);
                e.have_bytes = e.have_bytes.max(p.have_bytes);
                e.bt_downloaded_bytes = e.bt_downloaded_bytes.max(p.bt_downloaded_bytes);
                e.bt_uploaded_bytes = e.bt_uploaded_bytes.max(p.bt_uploaded_bytes);
                e.http_downloaded_bytes = e.http_downloaded_bytes.max(p.http_downloaded_bytes);
            }
        }
    }

    pub fn bt_downloaded(&self) -> u64 {
        self.per_node.values().map(|p| p.bt_downloaded_bytes).sum()
    }

    pub fn http_downloaded(&self) -> u64 {
        self.per_node.values().map(|p| p.http_downloaded_bytes).sum()
    }
}

/// What the controller sent to distribute an image: the demo's summary line ("controller sent
/// N× the image") and the end-to-end tests' bound both come from here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerUpload {
    /// The seeder's upload (`meshlift_seeder_uploaded_bytes_total`).
    pub seeder_bytes: u64,
    /// Every node's HTTP fallback bytes (served by the controller's `/images/`).
    pub http_bytes: u64,
}

impl ControllerUpload {
    pub fn total(&self) -> u64 {
        self.seeder_bytes + self.http_bytes
    }

    /// Bytes nodes fetched from each other over the swarm (their BitTorrent downloads minus what
    /// the seeder sent).
    pub fn peer_bytes(&self, tally: &TransferTally) -> u64 {
        tally.bt_downloaded().saturating_sub(self.seeder_bytes)
    }
}

impl Lab {
    /// The controller's upload so far: its seeder metric now, plus the HTTP bytes `tally`
    /// collected from the nodes' reports. An unreachable `/metrics` counts the seeder as 0.
    pub async fn controller_upload(&self, tally: &TransferTally) -> ControllerUpload {
        let metrics = self.metrics().await.unwrap_or_default();
        let seeder = metric_sum(&metrics, "meshlift_seeder_uploaded_bytes_total", None);
        ControllerUpload { seeder_bytes: seeder as u64, http_bytes: tally.http_downloaded() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A generated mesh with its first nodes renamed: only node names matter to the keys.
    fn topology(names: &[&str]) -> Topology {
        let mut t = crate::generate_mesh(names.len().max(2), 1);
        for (node, name) in t.nodes.iter_mut().zip(names) {
            node.name = name.to_string();
        }
        t
    }

    #[test]
    fn lab_keys_are_private_enrolled_and_listed_with_their_roles() {
        let dir = tempfile::tempdir().unwrap();
        let t = topology(&["pop.a", "leaf 1", "q\"uote"]);
        let extra = vec![("vera".to_string(), Role::Viewer), ("otto".to_string(), Role::Operator)];
        let keys = LabKeys::generate(&dir.path().join("keys"), &t, &extra).unwrap();

        // Every secret key is 0600 and loads back to the public key recorded for it.
        let all = [&keys.controller, &keys.operator]
            .into_iter()
            .chain(keys.extra_operators.values().map(|(_, f)| f))
            .chain(keys.nodes.values());
        for files in all {
            let mode = std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", files.key.display());
            assert_eq!(CurveKeyPair::load(&files.key).unwrap().public(), files.public);
            assert_eq!(CurvePublicKey::load(&files.public_file).unwrap(), files.public);
        }
        // Node key files are named as meshsim names node directories.
        assert_eq!(keys.nodes["leaf 1"].key, dir.path().join("keys/nodes/leaf_1.key"));

        // node_keys.toml: `[nodes]`, every node (quoted names included) with its public key.
        #[derive(serde::Deserialize)]
        struct NodeKeysFile {
            nodes: BTreeMap<String, String>,
        }
        let parsed: NodeKeysFile = toml::from_str(&keys.node_keys_toml().unwrap()).unwrap();
        let expected: BTreeMap<String, String> =
            keys.nodes.iter().map(|(n, f)| (n.clone(), f.public.to_z85())).collect();
        assert_eq!(parsed.nodes, expected);
        assert!(parsed.nodes.contains_key("q\"uote"));

        // [security]: the controller's key file, the node keys file, the operators and roles.
        let node_keys_file = dir.path().join("node_keys.toml");
        let table: toml::Table = keys.security_toml(&node_keys_file).unwrap().parse().unwrap();
        let sec = table["security"].as_table().unwrap();
        assert_eq!(sec["insecure"].as_bool(), Some(false));
        assert_eq!(sec["key_file"].as_str(), keys.controller.key.to_str());
        assert_eq!(sec["node_keys_file"].as_str(), node_keys_file.to_str());
        let ops: Vec<(String, String, String)> = sec["operators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let s = |k: &str| o[k].as_str().unwrap().to_string();
                (s("name"), s("role"), s("key"))
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                (LAB_OPERATOR.into(), "admin".into(), keys.operator.public.to_z85()),
                ("otto".into(), "operator".into(), keys.extra_operators["otto"].1.public.to_z85()),
                ("vera".into(), "viewer".into(), keys.extra_operators["vera"].1.public.to_z85()),
            ]
        );
    }

    #[test]
    fn names_that_would_share_a_key_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = LabKeys::generate(&dir.path().join("a"), &topology(&["x y", "x_y"]), &[]).unwrap_err();
        assert!(err.to_string().contains("would share the key file x_y.key"), "{err}");
        let extra = vec![("a b".to_string(), Role::Viewer), ("a_b".to_string(), Role::Admin)];
        let err = LabKeys::generate(&dir.path().join("b"), &topology(&["n1", "n2"]), &extra).unwrap_err();
        assert!(err.to_string().contains("operators"), "{err}");
        let extra = vec![(LAB_OPERATOR.to_string(), Role::Viewer)];
        assert!(LabKeys::generate(&dir.path().join("c"), &topology(&["n1", "n2"]), &extra).is_err());
    }
}
