//! Swarm bench: one controller seeder and N minion downloaders on 127.0.0.1 (one process,
//! separate librqbit sessions), an image of S bytes. Reports the wall time until every node has
//! the verified image and the controller's upload divided by S, for BitTorrent and for HTTP only.
//!
//! `--cap-mbps` caps the controller's upload (seeder and HTTP server alike) in MB/s, which is what
//! makes the difference between a swarm and a star visible on one machine.

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::response::Response;
use clap::Parser;
use futures::StreamExt;
use governor::{Quota, RateLimiter};
use meshlift_controller::dist::{router, DistConfig, ImageStore, ImageVerifier, VerifiedImageInfo};
use meshlift_minion::download::{self, DownloadJob};
use meshlift_protocol::{TorrentParams, UpgradeReq, UpgradeReqType};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Image size in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Numbers of downloaders, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,30,50")]
    nodes: Vec<usize>,
    /// `bt`, `http` or `both`.
    #[arg(long, default_value = "both")]
    mode: String,
    /// Controller upload cap in MB/s (10^6 bytes), none if absent.
    #[arg(long)]
    cap_mbps: Option<f64>,
    /// Nodes of the batch that never start (the engine numbered them, so their slices are
    /// missing from the swarm): every node whose index is a multiple of N / absent.
    #[arg(long, default_value_t = 0)]
    absent: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
}

/// Any file is an image here; the bench measures transport, not verification.
struct Opaque;

impl ImageVerifier for Opaque {
    fn verify(&self, _path: &Path) -> Result<VerifiedImageInfo, String> {
        Ok(VerifiedImageInfo { name: "bench".into(), version: "bench".into(), hardware_board_ids: vec![] })
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let modes: Vec<bool> = match args.mode.as_str() {
        "bt" => vec![true],
        "http" => vec![false],
        "both" => vec![true, false],
        m => bail!("unknown mode {m}"),
    };
    println!("| N | mode | S (MiB) | cap (MB/s) | wall time (s) | controller upload / S |");
    println!("|---|---|---|---|---|---|");
    for &n in &args.nodes {
        for &bt in &modes {
            let (secs, ratio) = run(&args, n, bt).await?;
            println!(
                "| {n} | {} | {} | {} | {secs:.1} | {ratio:.2} |",
                if bt { "BitTorrent" } else { "HTTP only" },
                args.size_mib,
                args.cap_mbps.map_or("none".to_string(), |c| format!("{c}")),
            );
        }
    }
    Ok(())
}

async fn run(args: &Args, n: usize, bt: bool) -> Result<(f64, f64)> {
    let size = args.size_mib << 20;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("image.mlimg");
    write_image(&src, size)?;
    let cap = args.cap_mbps.map(|c| (c * 1e6) as u32).and_then(NonZeroU32::new);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = listener.local_addr()?;
    // Every listener gets its own port: a probe only says a port is free now, and the sessions
    // bind later, so two probes may return the same port (a node that cannot listen gives up on
    // BitTorrent and downloads the whole image over HTTP).
    let mut ports = std::collections::HashSet::new();
    let mut cfg = DistConfig::new(
        SocketAddr::from(([127, 0, 0, 1], free_port(&mut ports))),
        format!("http://{http_addr}"),
        Arc::new(Opaque),
    );
    cfg.min_free_bytes = 0;
    cfg.announce_interval = Duration::from_secs(5);
    cfg.seed_upload_limit = cap;
    let store = ImageStore::open(dir.path().join("store"), cfg).await?;
    let img = store.add(src.to_str().context("path")?).await?;

    // HTTP bytes sent, and the same cap as the seeder (a shared token bucket).
    let http_sent = Arc::new(AtomicU64::new(0));
    let limiter = cap.map(|c| Arc::new(RateLimiter::direct(Quota::per_second(c))));
    let counted = {
        let http_sent = http_sent.clone();
        axum::middleware::map_response(move |resp: Response| {
            let http_sent = http_sent.clone();
            let limiter = limiter.clone();
            async move {
                let (parts, body) = resp.into_parts();
                let stream = body.into_data_stream().then(move |chunk| {
                    let http_sent = http_sent.clone();
                    let limiter = limiter.clone();
                    async move {
                        if let Ok(c) = &chunk {
                            if let (Some(l), Some(n)) = (&limiter, NonZeroU32::new(c.len() as u32)) {
                                let _ = l.until_n_ready(n).await;
                            }
                            http_sent.fetch_add(c.len() as u64, Ordering::Relaxed);
                        }
                        chunk
                    }
                });
                Response::from_parts(parts, Body::from_stream(stream))
            }
        })
    };
    let app = router(store.clone()).layer(counted);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });

    let seeded_before = store.seeder_stats().uploaded_bytes;
    let started = Instant::now();
    let mut handles = Vec::new();
    let work = tempfile::tempdir()?;
    // Absent nodes: indices 0, step, 2·step, … (`absent` of them), spread over the batch.
    let step = (n / args.absent.clamp(1, n.max(1))).max(1);
    let absent = |i: usize| i.is_multiple_of(step) && i / step < args.absent;
    for i in (0..n).filter(|i| !absent(*i)) {
        let mut req = UpgradeReq::new(UpgradeReqType::PrepareUpgrade, "bench");
        // As the controller's engine does for the nodes of one PREPARE batch.
        req.swarm_index = i as u32;
        req.swarm_size = n as u32;
        req.sha256 = Some(img.sha256);
        req.image_size = Some(img.size);
        req.http_url = Some(img.http_uri.clone());
        if bt {
            req.image_url = Some(img.magnet_uri.clone());
            req.initial_peers = store.initial_peers();
        }
        req.torrent_params = TorrentParams {
            download_timeout_s: args.timeout_s,
            bt_stall_timeout_s: 60,
            ..Default::default()
        };
        let job = DownloadJob {
            req,
            work_dir: work.path().join(format!("node-{i}")),
            bt_listen: Some(SocketAddr::from(([127, 0, 0, 1], free_port(&mut ports)))),
        };
        handles.push(download::start(job));
    }
    let mut http_fallbacks = 0;
    for h in handles.iter_mut() {
        h.finished().await.context("a downloader failed")?;
        if h.progress.borrow().http_downloaded_bytes > 0 {
            http_fallbacks += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let sent = store.seeder_stats().uploaded_bytes - seeded_before + http_sent.load(Ordering::Relaxed);
    if bt && http_fallbacks > 0 {
        eprintln!("note: {http_fallbacks} of {n} nodes used HTTP fallback");
    }
    drop(handles);
    store.shutdown().await;
    server.abort();
    Ok((secs, sent as f64 / size as f64))
}

fn write_image(path: &Path, size: u64) -> Result<()> {
    use rand::RngCore;
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// A listen port below the ephemeral range (32768–60999), free when probed and not in `taken`
/// (where it is added).
fn free_port(taken: &mut std::collections::HashSet<u16>) -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
}
