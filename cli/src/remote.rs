//! Commands that talk to a running controller: `upgrade`, `status`, `image add/del/list`,
//! `node enroll/keys`.
//!
//! Every command sends one request to the controller's app socket and waits for one reply
//! ([`meshlift_protocol::transport::request`]); `--watch` repeats a state request once a second.
//! The connection is CurveZMQ unless `--insecure`: the operator's key and the controller's public
//! key come from flags, the environment or the default path ([`credentials`]).
//! Exit codes, the same for every command: 0 done, 1 refused by the controller or failed, 2 usage
//! error, missing or refused keys, or the controller could not be reached (the message names the
//! endpoint tried).
//!
//! Operator requests carry the free-text `--reason`; the controller journals it with the name of
//! the operator key that sent the request (the `who` this CLI fills in, `$USER@host`, only counts
//! on a controller running without CURVE), so "who rebooted half the network at 3 am, and why"
//! has an answer.

/// `println!` that does not panic when stdout is closed early (`meshlift status | head`): the
/// output is best effort, the exit code still tells what happened.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod config;
pub mod confirm;
mod connection;
pub mod credentials;
pub mod golden;
mod group_req;
mod previews;
mod render;
pub mod snapshot;
pub mod versions;
mod watch;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use connection::{CallError, Controller};
use credentials::KeyFlags;
use meshlift_protocol::fleet::{ImageRecordsReq, ImageTagReq};
use meshlift_protocol::transport::CurvePublicKey;
use meshlift_protocol::{
    ApPolicy, Message, NodeEnrollReq, NodeKeysReq, UpgradeAbortReq, UpgradeAddImageReq, UpgradeDelImageReq,
    UpgradeStateReq,
};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// The controller refused, or the upgrade finished with failed nodes.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage, or the controller could not be reached.
pub const EXIT_USAGE: u8 = 2;

/// Where the controller listens when neither `--controller` nor `MESHLIFT_CONTROLLER` say otherwise
/// (DESIGN §4: the app socket is port 17077).
pub const DEFAULT_CONTROLLER: &str = "tcp://127.0.0.1:17077";

/// Options shared by every remote command.
#[derive(Args, Debug, Clone)]
pub struct ControllerOpts {
    /// Controller app socket.
    #[arg(long, global = true, env = "MESHLIFT_CONTROLLER", default_value = DEFAULT_CONTROLLER)]
    pub controller: String,
    /// Your operator CURVE secret key file [default: $MESHLIFT_KEY, else
    /// ~/.config/meshlift/operator.key].
    #[arg(long, visible_alias = "operator-key", global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The controller's CURVE public key: its controller.pub file or the 40 Z85 characters
    /// [default: $MESHLIFT_CONTROLLER_KEY].
    #[arg(long, global = true, value_name = "FILE|Z85")]
    pub controller_key: Option<String>,
    /// Plain text, no keys: only for a controller running with security.insecure = true
    /// [default: $MESHLIFT_INSECURE=1].
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Seconds to wait for each reply [default: 5; 300 for `image add`, which verifies the image
    /// before answering].
    #[arg(long, global = true, value_name = "SECS")]
    pub reply_timeout: Option<u64>,
    /// Why this is being done; journaled by the controller with who did it.
    #[arg(long, global = true)]
    pub reason: Option<String>,
    /// Print exactly one JSON object instead of tables and progress.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ControllerOpts {
    fn connect(&self, default_timeout: Duration) -> Result<Controller, u8> {
        let timeout = self.reply_timeout.map(Duration::from_secs).unwrap_or(default_timeout);
        let usage = |e: String| {
            eprintln!("meshlift: {e}");
            EXIT_USAGE
        };
        // The endpoint first: a typo there is reported as such, whatever the keys.
        connection::check_endpoint(&self.controller).map_err(usage)?;
        let flags = KeyFlags {
            key: self.key.clone(),
            controller_key: self.controller_key.clone(),
            insecure: self.insecure,
        };
        let credentials = credentials::from_process(&flags).map_err(|e| usage(e.to_string()))?;
        Controller::new(&self.controller, credentials, timeout).map_err(usage)
    }
}

const READ_TIMEOUT: Duration = Duration::from_secs(5);
const IMAGE_ADD_TIMEOUT: Duration = Duration::from_secs(300);

/// `meshlift upgrade …`
#[derive(Args, Debug)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
    /// Boxed: the upgrade options are large and `main`'s command enum holds this by value.
    #[command(subcommand)]
    pub command: Box<UpgradeCommand>,
}

#[derive(Subcommand, Debug)]
pub enum UpgradeCommand {
    /// Every node of the topology (as it is when the request starts), except `--exclude`.
    Network {
        /// Nodes to leave out, comma separated.
        #[arg(long, short = 'e', value_delimiter = ',')]
        exclude: Vec<String>,
        #[command(subcommand)]
        action: Action,
    },
    /// Only the listed nodes.
    Nodes {
        /// Node names, comma separated.
        #[arg(long = "nodes", short = 'n', value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[command(subcommand)]
        action: Action,
    },
    /// Abort queued or running requests.
    Abort(AbortArgs),
    /// Show the controller's upgrade state (current batch, queue, outcomes).
    State(StateArgs),
}

/// What to do with the selected nodes.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Download, verify and write the image to each node's standby slot.
    Prepare(PrepareArgs),
    /// Reboot prepared nodes into the new slot in batches that cut no one off; `--dry-run` shows
    /// the plan instead.
    Commit(CommitArgs),
    /// Prepare then commit, under one request id.
    Full(FullArgs),
    /// Cancel downloads and scheduled commits on the nodes; immediate, not queued.
    Reset(confirm::ConfirmOpts),
    /// Boot each node's standby slot as active without a trial (VOLTHA DMI RevertToStandbyImage),
    /// where that slot holds an image confirmed on the node before; other nodes are left alone
    /// with the reason. Batches as for a commit; `--dry-run` shows them. Needs `--reason`.
    Revert(RevertArgs),
}

#[derive(Args, Debug)]
pub struct RevertArgs {
    #[command(flatten)]
    pub batch: BatchOpts,
    /// Link names the controller does not wait for after the reboot, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub skip_links: Vec<String>,
    /// What to do with articulation points.
    #[arg(long, value_enum, default_value_t = ApPolicyArg::Group)]
    pub ap_policy: ApPolicyArg,
    /// POP sites allowed in one batch.
    #[arg(long, default_value_t = 1)]
    pub max_pops_per_batch: u32,
    /// How batches are chosen.
    #[arg(long, value_enum, default_value_t = crate::plan::StrategyArg::Terragraph)]
    pub strategy: crate::plan::StrategyArg,
    /// `--dry-run`: the batches (and the nodes left out, with why), nothing reverted; `--yes`:
    /// revert without asking.
    #[command(flatten)]
    pub confirm: confirm::ConfirmOpts,
    #[command(flatten)]
    pub submit: SubmitOpts,
}

impl RevertArgs {
    /// The planner options a revert shares with a commit (no reboot delay, no trial).
    pub fn commit_opts(&self) -> CommitOpts {
        CommitOpts {
            delay: 0,
            skip_links: self.skip_links.clone(),
            ap_policy: self.ap_policy,
            max_pops_per_batch: self.max_pops_per_batch,
            strategy: self.strategy,
            confirm_timeout: 0,
        }
    }
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Image name in the controller's store (see `meshlift image list`).
    #[arg(long, short = 'i')]
    pub image: String,
    #[command(flatten)]
    pub batch: BatchOpts,
    #[command(flatten)]
    pub torrent: TorrentOpts,
    /// Allow an image older than the running one (recorded in the journal).
    #[arg(long)]
    pub allow_downgrade: bool,
    #[command(flatten)]
    pub submit: SubmitOpts,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    #[command(flatten)]
    pub batch: BatchOpts,
    #[command(flatten)]
    pub commit: CommitOpts,
    /// `--dry-run`: the commit plan (batches, AP groups, nodes left out and why), nothing
    /// committed; `--yes`: commit without asking.
    #[command(flatten)]
    pub confirm: confirm::ConfirmOpts,
    #[command(flatten)]
    pub submit: SubmitOpts,
}

#[derive(Args, Debug)]
pub struct FullArgs {
    /// Image name in the controller's store (see `meshlift image list`).
    #[arg(long, short = 'i')]
    pub image: String,
    #[command(flatten)]
    pub batch: BatchOpts,
    #[command(flatten)]
    pub torrent: TorrentOpts,
    #[command(flatten)]
    pub commit: CommitOpts,
    /// Allow an image older than the running one (recorded in the journal).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Also make this image the golden target of every board it supports (otherwise a manual
    /// upgrade never changes the golden-image loop's target).
    #[arg(long)]
    pub set_golden: bool,
    #[command(flatten)]
    pub confirm: confirm::ConfirmOpts,
    #[command(flatten)]
    pub submit: SubmitOpts,
}

/// Batching, retries and failure policy (Terragraph `UpgradeGroupReq` fields).
#[derive(Args, Debug, Clone)]
pub struct BatchOpts {
    /// Per-batch timeout in seconds [default: prepare 180, commit 300, full 300].
    #[arg(long, short = 't', value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Max nodes per batch. Prepare: 0 or less = all at once. Commit: -1 = all at once,
    /// 0 = staged by the planner without a size limit, N = staged, at most N per batch.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Retries per node before it counts as failed.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Drop a node that failed and go on (`--skip-failure=false` to stop the request instead)
    /// [default: true for prepare and full, false for commit].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_failure: Option<bool>,
    /// No uplink check on POPs, and a failing POP does not stop the request
    /// [default: true for prepare, false for commit and full].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_pop_failure: Option<bool>,
    /// Expected image version: nodes already running it are skipped; a commit requires the
    /// flashed image to be it.
    #[arg(long)]
    pub version: Option<String>,
}

/// BitTorrent and HTTP download limits (Terragraph `UpgradeTorrentParams`).
#[derive(Args, Debug, Clone)]
pub struct TorrentOpts {
    /// Download rate limit per node, bytes per second [default: unlimited].
    #[arg(long, value_name = "BYTES_PER_S")]
    pub download_limit: Option<u64>,
    /// Upload rate limit per node, bytes per second [default: unlimited].
    #[arg(long, value_name = "BYTES_PER_S")]
    pub upload_limit: Option<u64>,
    /// Peer connections per torrent [default: unlimited].
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// Seconds the whole download may take [default: the batch timeout].
    #[arg(long, value_name = "SECS")]
    pub download_timeout: Option<u64>,
    /// HTTP download attempts (1..=10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub download_attempts: u32,
}

/// Commit policy: reboot delay, link check, planner policy, trial boot.
#[derive(Args, Debug, Clone)]
pub struct CommitOpts {
    /// Seconds between the commit command and the reboot.
    #[arg(long, short = 'd', default_value_t = 0, value_name = "SECS")]
    pub delay: u64,
    /// Link names the post-boot link check ignores, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub skip_links: Vec<String>,
    /// What to do with articulation points.
    #[arg(long, value_enum, default_value_t = ApPolicyArg::Group)]
    pub ap_policy: ApPolicyArg,
    /// POP sites allowed in one commit batch.
    #[arg(long, default_value_t = 1)]
    pub max_pops_per_batch: u32,
    /// How commit batches are chosen.
    #[arg(long, value_enum, default_value_t = crate::plan::StrategyArg::Terragraph)]
    pub strategy: crate::plan::StrategyArg,
    /// Seconds a trial boot has to pass its checks before the node falls back.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub confirm_timeout: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ApPolicyArg {
    /// Terragraph: an articulation point reboots with everything it cuts off.
    Group,
    /// What an articulation point isolates goes first, the articulation point last.
    DependentsFirst,
}

impl From<ApPolicyArg> for ApPolicy {
    fn from(p: ApPolicyArg) -> ApPolicy {
        match p {
            ApPolicyArg::Group => ApPolicy::Group,
            ApPolicyArg::DependentsFirst => ApPolicy::DependentsFirst,
        }
    }
}

/// How a request is submitted and followed.
#[derive(Args, Debug, Clone)]
pub struct SubmitOpts {
    /// Request id [default: UTC time as %Y%m%d%H%M%S plus a random suffix].
    #[arg(long)]
    pub request_id: Option<String>,
    /// Follow the request until it finishes; exit 0 only if every node succeeded.
    #[arg(long)]
    pub watch: bool,
    /// Poll period of `--watch`, milliseconds (tests shorten it).
    #[arg(long, default_value_t = 1000, hide = true)]
    pub poll_ms: u64,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "request_ids"])))]
pub struct AbortArgs {
    /// Abort the running request and every queued one.
    #[arg(long)]
    pub all: bool,
    /// Request ids to abort, comma separated or repeated.
    #[arg(long = "request-id", short = 'r', value_delimiter = ',', num_args = 1..)]
    pub request_ids: Vec<String>,
    /// Also send RESET_STATUS to every node of the aborted requests (cancels downloads and
    /// scheduled reboots; without it they still happen).
    #[arg(long)]
    pub reset: bool,
}

#[derive(Args, Debug)]
pub struct StateArgs {
    /// Follow a request (the running one unless `--request-id`) until it finishes.
    #[arg(long)]
    pub watch: bool,
    /// Request to follow with `--watch`.
    #[arg(long, short = 'r')]
    pub request_id: Option<String>,
    /// Poll period of `--watch`, milliseconds.
    #[arg(long, default_value_t = 1000, hide = true)]
    pub poll_ms: u64,
}

/// `meshlift status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub opts: ControllerOpts,
}

/// `meshlift image add PATH|URL`
#[derive(Args, Debug)]
pub struct ImageAddArgs {
    /// An .mlimg file (a local file is sent as an absolute path: the controller reads it from the
    /// same file system) or an http(s) URL the controller downloads.
    pub source: String,
    /// A tag stored with the image (`stable`, `lab`, …); repeat for more.
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub opts: ControllerOpts,
}

/// `meshlift image del NAME`
#[derive(Args, Debug)]
pub struct ImageDelArgs {
    /// Image name (see `meshlift image list`).
    pub name: String,
    #[command(flatten)]
    pub confirm: confirm::ConfirmOpts,
    #[command(flatten)]
    pub opts: ControllerOpts,
}

/// `meshlift image list`
#[derive(Args, Debug)]
pub struct ImageListArgs {
    /// Only images for this board.
    #[arg(long, short = 'b')]
    pub board: Option<String>,
    /// Only this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Only images with this tag.
    #[arg(long, short = 't')]
    pub tag: Option<String>,
    #[command(flatten)]
    pub opts: ControllerOpts,
}

/// `meshlift image tag|untag NAME TAG…`
#[derive(Args, Debug)]
pub struct ImageTagArgs {
    /// Image name, or `latest` / `earliest[:BOARD]`.
    pub name: String,
    /// Tags to add (`tag`) or remove (`untag`).
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub opts: ControllerOpts,
}

/// `meshlift node …`
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub opts: NodeOpts,
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// [`ControllerOpts`] for `meshlift node`, where `--key` names the node's key: the operator's key
/// is `--operator-key` here.
#[derive(Args, Debug, Clone)]
pub struct NodeOpts {
    /// Controller app socket.
    #[arg(long, global = true, env = "MESHLIFT_CONTROLLER", default_value = DEFAULT_CONTROLLER)]
    pub controller: String,
    /// Your operator CURVE secret key file (`--key` of the other commands) [default:
    /// $MESHLIFT_KEY, else ~/.config/meshlift/operator.key].
    #[arg(long, global = true, value_name = "FILE")]
    pub operator_key: Option<PathBuf>,
    /// The controller's CURVE public key: its controller.pub file or the 40 Z85 characters
    /// [default: $MESHLIFT_CONTROLLER_KEY].
    #[arg(long, global = true, value_name = "FILE|Z85")]
    pub controller_key: Option<String>,
    /// Plain text, no keys: only for a controller running with security.insecure = true
    /// [default: $MESHLIFT_INSECURE=1].
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Seconds to wait for each reply [default: 5].
    #[arg(long, global = true, value_name = "SECS")]
    pub reply_timeout: Option<u64>,
    /// Why this is being done; journaled by the controller with who did it.
    #[arg(long, global = true)]
    pub reason: Option<String>,
    /// Print exactly one JSON object instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl From<NodeOpts> for ControllerOpts {
    fn from(o: NodeOpts) -> ControllerOpts {
        ControllerOpts {
            controller: o.controller,
            key: o.operator_key,
            controller_key: o.controller_key,
            insecure: o.insecure,
            reply_timeout: o.reply_timeout,
            reason: o.reason,
            json: o.json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Enroll (or replace) a node's CURVE public key: the node may then connect, and speak only
    /// for itself. Needs the admin role; journaled.
    Enroll(EnrollArgs),
    /// List the enrolled node keys, and the topology's nodes that have none (they cannot connect).
    Keys,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Node name, as in the topology.
    pub name: String,
    /// The node's public key: its .pub file (`meshlift keygen --curve`) or the 40 Z85 characters.
    #[arg(long, value_name = "PUB")]
    pub key: String,
}

pub fn node(args: NodeArgs) -> u8 {
    let opts = ControllerOpts::from(args.opts);
    match args.command {
        NodeCommand::Enroll(e) => enroll(&opts, e),
        NodeCommand::Keys => {
            read(&opts, "node keys", Message::NodeKeysReq(NodeKeysReq {}), |reply| match reply {
                Message::NodeKeysResp(resp) => Some(if opts.json {
                    let enrolled: Vec<_> = resp
                        .enrolled
                        .iter()
                        .map(|(node, key)| json!({"node": node, "public_key": key}))
                        .collect();
                    to_json(&json!({"enrolled": enrolled, "missing": resp.missing}))
                } else {
                    render::node_keys_text(&resp)
                }),
                _ => None,
            })
        }
    }
}

fn enroll(opts: &ControllerOpts, e: EnrollArgs) -> u8 {
    let name = e.name.trim().to_string();
    if name.is_empty() {
        eprintln!("meshlift node enroll: empty node name");
        return EXIT_USAGE;
    }
    // Checked here so a typo is told before anything is sent; the controller checks it again.
    let key = match CurvePublicKey::from_file_or_z85(e.key.trim()) {
        Ok(k) => k,
        Err(err) => {
            eprintln!("meshlift node enroll: --key {}: {err}", e.key);
            return EXIT_USAGE;
        }
    };
    let msg = Message::NodeEnrollReq(NodeEnrollReq {
        node: name,
        public_key: key.to_z85(),
        operator: group_req::operator(opts.reason.clone()),
    });
    command(opts, READ_TIMEOUT, "node enroll", msg)
}

pub fn upgrade(args: UpgradeArgs) -> u8 {
    let opts = args.opts;
    match *args.command {
        UpgradeCommand::Network { exclude, action } => {
            submit(&opts, group_req::Target::network(exclude), action)
        }
        UpgradeCommand::Nodes { nodes, action } => submit(&opts, group_req::Target::nodes(nodes), action),
        UpgradeCommand::Abort(a) => abort(&opts, a),
        UpgradeCommand::State(s) => state(&opts, s),
    }
}

pub fn status(args: StatusArgs) -> u8 {
    let opts = args.opts;
    read(&opts, "status", Message::NodeStatusReq(Default::default()), |reply| match reply {
        Message::NodeStatusDump(dump) => {
            Some(if opts.json { to_json(&dump) } else { render::status_table(&dump, render::now_millis()) })
        }
        _ => None,
    })
}

pub fn image_add(args: ImageAddArgs) -> u8 {
    let image_url = match group_req::image_source(&args.source) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meshlift image add: {e}");
            return EXIT_USAGE;
        }
    };
    let msg = Message::UpgradeAddImageReq(UpgradeAddImageReq {
        image_url,
        operator: group_req::operator(args.opts.reason.clone()),
        tags: args.tags,
    });
    command(&args.opts, IMAGE_ADD_TIMEOUT, "image add", msg)
}

pub fn image_del(args: ImageDelArgs) -> u8 {
    if let confirm::Go::Exit(code) =
        confirm::guard(&args.opts, &args.confirm, "image del", |ctrl| previews::image_del(ctrl, &args.name))
    {
        return code;
    }
    let msg = Message::UpgradeDelImageReq(UpgradeDelImageReq {
        name: args.name,
        operator: group_req::operator(args.opts.reason.clone()),
    });
    command(&args.opts, READ_TIMEOUT, "image del", msg)
}

pub fn image_list(args: ImageListArgs) -> u8 {
    let opts = args.opts;
    let req = ImageRecordsReq { board: args.board, version: args.version, tag: args.tag };
    let filtered = req != ImageRecordsReq::default();
    read(&opts, "image list", Message::ImageRecordsReq(req), |reply| match reply {
        Message::ImageRecords(resp) => {
            Some(if opts.json { to_json(&resp) } else { render::images_table(&resp, filtered) })
        }
        _ => None,
    })
}

/// `image tag` (`untag == false`) and `image untag`.
pub fn image_tag(args: ImageTagArgs, untag: bool) -> u8 {
    let (add, remove) = if untag { (Vec::new(), args.tags) } else { (args.tags, Vec::new()) };
    let msg = Message::ImageTagReq(ImageTagReq {
        name: args.name,
        add,
        remove,
        operator: group_req::operator(args.opts.reason.clone()),
    });
    command(&args.opts, READ_TIMEOUT, if untag { "image untag" } else { "image tag" }, msg)
}

/// Submit a prepare / commit / full / reset request (or ask for the commit plan).
fn submit(opts: &ControllerOpts, target: group_req::Target, action: Action) -> u8 {
    let target = match target.validated() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshlift upgrade: {e}");
            return EXIT_USAGE;
        }
    };
    if let Action::Commit(c) = &action {
        if c.confirm.dry_run && target.ug_type == meshlift_protocol::UpgradeGroupType::Network {
            return dry_run(opts, group_req::commit_plan_req(&target, &c.batch, &c.commit, false));
        }
    }
    if let Action::Revert(r) = &action {
        if r.confirm.dry_run && target.ug_type == meshlift_protocol::UpgradeGroupType::Network {
            return dry_run(opts, group_req::commit_plan_req(&target, &r.batch, &r.commit_opts(), true));
        }
        if !r.confirm.dry_run && opts.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            eprintln!("meshlift upgrade revert: --reason is required (journaled with who asked)");
            return EXIT_USAGE;
        }
    }
    if let Some(code) = confirm_action(opts, &target, &action) {
        return code;
    }
    let (req, submit) = match group_req::build(&target, &action, group_req::operator(opts.reason.clone())) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("meshlift upgrade: {e}");
            return EXIT_USAGE;
        }
    };
    let ctrl = match opts.connect(READ_TIMEOUT) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let our_id = req.ur_req.upgrade_req_id.clone();
    let kind = format!("{:?}", req.ur_req.ur_type);
    let ack = match ctrl.call(Message::UpgradeGroupReq(req)) {
        Ok(Message::Ack(ack)) => ack,
        Ok(other) => return unexpected(&ctrl, "upgrade", &other),
        Err(e) => return report_call_error("upgrade", e),
    };
    if !ack.success {
        if opts.json {
            emit!("{}", json!({"request_id": our_id, "accepted": false, "message": ack.message}));
        }
        eprintln!("meshlift upgrade: refused by the controller: {}", ack.message);
        return EXIT_FAILED;
    }
    // The controller answers with the request id; it is ours unless it had to change it.
    let request_id = accepted_id(&ack.message).unwrap_or(our_id);
    if let Action::Full(FullArgs { set_golden: true, image, .. }) = &action {
        let cmd = meshlift_protocol::GoldenCmd::SetTarget { board: None, image: image.clone() };
        let code = golden::set(&ControllerOpts { json: false, ..opts.clone() }, cmd);
        if code != EXIT_OK {
            eprintln!("meshlift upgrade: request {request_id} accepted, but --set-golden failed");
            return code;
        }
    }
    if submit.as_ref().is_some_and(|s| s.watch) {
        let poll = Duration::from_millis(submit.as_ref().map_or(1000, |s| s.poll_ms));
        return watch::follow(&ctrl, &request_id, poll, opts.json);
    }
    if opts.json {
        emit!("{}", json!({"request_id": request_id, "accepted": true}));
    } else {
        emit!("{kind} request {request_id} accepted");
        emit!("follow it with: meshlift upgrade state --watch -r {request_id}");
    }
    EXIT_OK
}

/// Dry run first for the actions that reboot or reset nodes (prepare only writes the standby
/// slot: nothing to confirm). `Some(code)`: stop with it.
fn confirm_action(opts: &ControllerOpts, target: &group_req::Target, action: &Action) -> Option<u8> {
    let plan =
        |c: &CommitOpts, b: &BatchOpts, version: Option<String>| meshlift_protocol::UpgradeCommitPlanReq {
            limit: b.batch_size,
            exclude_nodes: Vec::new(),
            ap_policy: c.ap_policy.into(),
            max_pops_per_batch: c.max_pops_per_batch,
            strategy: c.strategy.into(),
            version,
            revert: false,
        };
    let go = match action {
        Action::Prepare(_) => return None,
        Action::Commit(c) => confirm::guard(opts, &c.confirm, "upgrade commit", |ctrl| {
            previews::reboot(
                ctrl,
                "COMMIT (reboot into the prepared image)",
                target,
                plan(&c.commit, &c.batch, c.batch.version.clone()),
            )
        }),
        Action::Full(f) => confirm::guard(opts, &f.confirm, "upgrade full", |ctrl| {
            let what = format!("FULL_UPGRADE to image {} (prepare, then reboot)", f.image);
            previews::reboot(ctrl, &what, target, plan(&f.commit, &f.batch, None))
        }),
        Action::Reset(c) => confirm::guard(opts, c, "upgrade reset", |ctrl| previews::reset(ctrl, target)),
        Action::Revert(r) => confirm::guard(opts, &r.confirm, "upgrade revert", |ctrl| {
            let req = meshlift_protocol::UpgradeCommitPlanReq {
                revert: true,
                ..plan(&r.commit_opts(), &r.batch, r.batch.version.clone())
            };
            previews::reboot(ctrl, "REVERT_TO_STANDBY (boot the standby slot, no trial)", target, req)
        }),
    };
    match go {
        confirm::Go::Proceed => None,
        confirm::Go::Exit(code) => Some(code),
    }
}

/// The request id in a success ack, when the message is one (a single word).
fn accepted_id(message: &str) -> Option<String> {
    let m = message.trim();
    (!m.is_empty() && !m.contains(char::is_whitespace)).then(|| m.to_string())
}

fn dry_run(opts: &ControllerOpts, req: Result<meshlift_protocol::UpgradeCommitPlanReq, String>) -> u8 {
    let what = if req.as_ref().is_ok_and(|r| r.revert) {
        "upgrade revert --dry-run"
    } else {
        "upgrade commit --dry-run"
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshlift {what}: {e}");
            return EXIT_USAGE;
        }
    };
    read(opts, what, Message::UpgradeCommitPlanReq(req), |reply| match reply {
        Message::UpgradeCommitPlan(plan) => {
            Some(if opts.json { to_json(&plan) } else { render::plan_text(&plan) })
        }
        _ => None,
    })
}

fn abort(opts: &ControllerOpts, a: AbortArgs) -> u8 {
    let msg = Message::UpgradeAbortReq(UpgradeAbortReq {
        abort_all: a.all,
        req_ids: a.request_ids.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        reset_status: a.reset,
        operator: group_req::operator(opts.reason.clone()),
    });
    command(opts, READ_TIMEOUT, "upgrade abort", msg)
}

fn state(opts: &ControllerOpts, s: StateArgs) -> u8 {
    if s.watch {
        let ctrl = match opts.connect(READ_TIMEOUT) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let request_id = match s.request_id {
            Some(id) => id,
            None => match ctrl.call(Message::UpgradeStateReq(UpgradeStateReq {})) {
                Ok(Message::UpgradeStateDump(d)) => match d.cur_req {
                    Some(cur) => cur.request.ur_req.upgrade_req_id,
                    None => {
                        eprintln!("meshlift upgrade state --watch: no request is running");
                        return EXIT_OK;
                    }
                },
                Ok(other) => return unexpected(&ctrl, "upgrade state", &other),
                Err(e) => return report_call_error("upgrade state", e),
            },
        };
        return watch::follow(&ctrl, &request_id, Duration::from_millis(s.poll_ms), opts.json);
    }
    read(opts, "upgrade state", Message::UpgradeStateReq(UpgradeStateReq {}), |reply| match reply {
        Message::UpgradeStateDump(dump) => {
            Some(if opts.json { to_json(&dump) } else { render::state_text(&dump, render::now_millis()) })
        }
        _ => None,
    })
}

/// A read: one request, print what `show` makes of the reply.
fn read(opts: &ControllerOpts, what: &str, msg: Message, show: impl FnOnce(Message) -> Option<String>) -> u8 {
    let ctrl = match opts.connect(READ_TIMEOUT) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctrl.call(msg) {
        Ok(Message::Ack(ack)) if !ack.success => {
            eprintln!("meshlift {what}: refused by the controller: {}", ack.message);
            EXIT_FAILED
        }
        Ok(reply) => {
            let shown = show(reply.clone());
            match shown {
                Some(text) => {
                    emit!("{text}");
                    EXIT_OK
                }
                None => unexpected(&ctrl, what, &reply),
            }
        }
        Err(e) => report_call_error(what, e),
    }
}

/// A command answered by an [`meshlift_protocol::Ack`].
fn command(opts: &ControllerOpts, default_timeout: Duration, what: &str, msg: Message) -> u8 {
    let ctrl = match opts.connect(default_timeout) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctrl.call(msg) {
        Ok(Message::Ack(ack)) => {
            if opts.json {
                emit!("{}", json!({"accepted": ack.success, "message": ack.message}));
            } else if ack.success {
                emit!("{}", ack.message);
            }
            if ack.success {
                EXIT_OK
            } else {
                eprintln!("meshlift {what}: refused by the controller: {}", ack.message);
                EXIT_FAILED
            }
        }
        Ok(other) => unexpected(&ctrl, what, &other),
        Err(e) => report_call_error(what, e),
    }
}

fn report_call_error(what: &str, e: CallError) -> u8 {
    eprintln!("meshlift {what}: {e}");
    e.exit_code()
}

fn unexpected(ctrl: &Controller, what: &str, reply: &Message) -> u8 {
    eprintln!(
        "meshlift {what}: unexpected {} reply from the controller at {} (incompatible versions?)",
        reply.kind(),
        ctrl.endpoint()
    );
    EXIT_USAGE
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing our own protocol types to JSON cannot fail: they hold no maps with non-string
    // keys and no non-finite floats.
    serde_json::to_string_pretty(v).expect("protocol types serialize to JSON")
}
