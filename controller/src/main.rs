//! `meshlift-controller [--config FILE]`: the controller process (default config
//! `/etc/meshlift/controller.toml`, as the packaged systemd unit runs it).

use clap::Parser;
use meshlift_controller::config::ControllerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// meshlift controller: keeps signed images and seeds them (BitTorrent, HTTP fallback), drives
/// the minions over ZeroMQ, answers operator requests, keeps its state in SQLite and publishes
/// Prometheus metrics.
///
/// Configuration (TOML), every key optional except `topology_file`:
///   topology_file         Terragraph topology JSON (required)
///   data_dir              state.db and images/ (default /var/lib/meshlift/controller)
///   minion_endpoint       ROUTER for minions (default tcp://*:7007: IPv6 and IPv4)
///   app_endpoint          ROUTER for operator tools (default tcp://127.0.0.1:17077)
///   http_listen           /metrics, /healthz, /announce, /images; the seeder binds the same
///                         address (default [::]:8080: IPv6 and IPv4)
///   public_host           name, IPv4 or IPv6 address minions reach us by, in magnet/HTTP URIs
///                         (default 127.0.0.1)
///   node_alive_timeout_s  node offline after this long without a report (default 30)
///   tick_interval_ms      engine tick (default 1000)
///   max_frame_bytes       largest accepted frame (default 1048576)
///   trusted_keys          public keys whose images `image add` accepts
///   confirm_timeout_s     trial-boot confirm timeout for commits (default 120)
///   image_min_free_bytes  free space kept by `image add` (default 1 GiB)
///   journal_keep_days     journal lines older than this are pruned, at start and hourly (90)
///   journal_max_rows      at most this many journal lines are kept, the newest (100000)
///   [bittorrent] listen_port (6881), tracker_url ("" = embedded tracker), upload_limit (bytes/s)
///   [security]   CurveZMQ on both sockets: key_file (keys/controller.key), node_keys_file
///                (node_keys.toml), operator_limit_cap (50), [[security.operators]] name, role
///                (viewer|operator|admin), key; insecure = true for plain text (never default)
///                [[security.api_tokens]] name, role, sha256 (`meshlift token new`)
///   [http]       tls_cert, tls_key (HTTPS via rustls), max_upload_bytes (4 GiB),
///                api_without_tokens (false): the API at /api/v1 and the dashboard at /
/// Relative paths in the file are relative to the file's directory.
///
/// Under systemd (Type=notify) it reports READY=1 once its sockets are bound.
#[derive(Parser)]
#[command(name = "meshlift-controller", version, verbatim_doc_comment)]
struct Args {
    /// Path of the TOML configuration file. Default /etc/meshlift/controller.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), overrides RUST_LOG. Default "info".
    #[arg(long)]
    log: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,librqbit=warn".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .init();
    let cfg = match ControllerConfig::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshlift-controller: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshlift-controller: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(meshlift_controller::server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshlift-controller: {e:#}");
            ExitCode::from(1)
        }
    }
}
