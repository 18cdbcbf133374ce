//! Image downloader: BitTorrent first, HTTP fallback.
//!
//! The minion's shell calls [`start`] when its core asks for a download, forwards every progress
//! update into the core, and hands the finished file to verification. The downloader never writes
//! a slot: it only produces a file in `work_dir`.
//!
//! Order of sources: the swarm (magnet URI, the controller's seeder as initial peer, peers from
//! the tracker); when the swarm makes no progress for `bt_stall_timeout_s` or fails, HTTP Range
//! requests fill the pieces still missing, `download_attempts` times with exponential backoff.
//! Everything must finish within `download_timeout_s`. State lives in `work_dir` (the data file
//! and the cached `.torrent`), so a restarted minion resumes instead of starting from zero.
//! After success the handle keeps seeding to the rest of the batch until it is dropped.

mod http;
pub mod metainfo;
pub mod policy;
mod rate;
mod swarm;

use librqbit::{AddTorrent, Session};
use meshlift_protocol::{DownloadProgress, Sha256Digest, UpgradeReq};
use metainfo::Pieces;
use policy::{SeederGate, SeederMove, StallWatch, SwarmFigures};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarm::TorrentHandle;

/// How often progress is published (and the swarm checked for stalls).
const POLL: Duration = Duration::from_millis(200);
/// How long peers may deliver nothing new before this node fetches from the controller's seeder
/// again (see `SeederGate`). Well below `bt_stall_timeout_s`, which gives up on the swarm.
const HUNGRY: Duration = Duration::from_secs(4);
/// How long one connection to the seeder may last before a use goes on over a new one: librqbit
/// sends a peer our peer list 10 s after connecting (PEX), and a seeder that learns minions that
/// way connects out to them, where they cannot tell it from a peer (see `SeederMove::Renew`).
const RENEW_SEEDER_AFTER: Duration = Duration::from_secs(7);

/// What to download and where.
#[derive(Debug, Clone)]
pub struct DownloadJob {
    /// The PREPARE request: magnet URI, HTTP URL, sha256, size, torrent params, initial peers.
    pub req: UpgradeReq,
    /// Directory owned by the downloader for partial data and resume state; survives restarts.
    pub work_dir: PathBuf,
    /// Local address for the BitTorrent listener (peers connect here to fetch pieces from us).
    /// `None`: all interfaces of both families ([`listen_any`]), a free port outside the
    /// ephemeral range.
    pub bt_listen: Option<std::net::SocketAddr>,
}

/// Why a download failed; the text goes to the operator as the DOWNLOAD_FAILED reason.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// `download_timeout_s` passed before any source delivered the whole image.
    #[error("download timed out after {0} s")]
    Timeout(u64),
    /// Every source was tried; the text says what each one did.
    #[error("no source could deliver the image: {0}")]
    AllSourcesFailed(String),
    /// The sources agree on bytes that are not the requested image (wrong magnet or URL).
    #[error("downloaded image does not match the requested sha256")]
    HashMismatch,
    /// The handle was dropped before the download finished.
    #[error("download cancelled")]
    Cancelled,
    /// The work directory cannot be written; check the node's disk.
    #[error("i/o error in the download directory: {0}")]
    Io(#[from] std::io::Error),
    /// The request lacks what a download needs (the controller sent an incomplete PREPARE).
    #[error("bad download request: {0}")]
    BadRequest(String),
    /// The download filesystem has less room than the image plus a margin: refused before a
    /// byte is fetched, rather than failing late with a full disk that the state files share.
    #[error(
        "not enough free space in {}: {free} bytes free, {needed} needed (the image plus {} MiB)",
        .dir.display(), policy::FREE_SPACE_MARGIN >> 20
    )]
    NoSpace { dir: PathBuf, free: u64, needed: u64 },
}

/// A running download. Dropping it cancels the download (and stops seeding).
pub struct DownloadHandle {
    pub progress: tokio::sync::watch::Receiver<DownloadProgress>,
    result: Option<tokio::sync::oneshot::Receiver<Result<PathBuf, DownloadError>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl DownloadHandle {
    /// Wait for the verified file (whole `.mlimg`, sha256 checked against `req.sha256`).
    /// After completion the handle keeps seeding to peers until dropped.
    pub async fn finished(&mut self) -> Result<PathBuf, DownloadError> {
        match self.result.take() {
            Some(rx) => rx.await.unwrap_or(Err(DownloadError::Cancelled)),
            None => Err(DownloadError::Cancelled),
        }
    }
}

/// Start downloading. Must be called inside a (multi-threaded) tokio runtime.
pub fn start(job: DownloadJob) -> DownloadHandle {
    let (ptx, prx) = tokio::sync::watch::channel(DownloadProgress::default());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut dl = Downloader::new(job, ptx);
        let result = tokio::select! {
            r = dl.run() => r,
            _ = &mut stop_rx => Err(DownloadError::Cancelled),
        };
        let ok = result.is_ok();
        if let Err(e) = &result {
            tracing::warn!(error = %e, "image download failed");
        }
        let _ = tx.send(result);
        if ok {
            dl.seed_until(stop_rx).await;
        }
        dl.shutdown().await;
    });
    DownloadHandle { progress: prx, result: Some(rx), _stop: stop_tx }
}

struct Downloader {
    job: DownloadJob,
    progress_tx: tokio::sync::watch::Sender<DownloadProgress>,
    progress: DownloadProgress,
    session: Option<Arc<Session>>,
    torrent: Option<TorrentHandle>,
    reader: Option<tokio::task::JoinHandle<()>>,
    pieces: Option<Pieces>,
    /// Swarm receive and send rates, from the session's running byte totals.
    down_rate: rate::RateMeter,
    up_rate: rate::RateMeter,
}

impl Downloader {
    fn new(job: DownloadJob, progress_tx: tokio::sync::watch::Sender<DownloadProgress>) -> Self {
        let progress = DownloadProgress {
            total_bytes: job.req.image_size.unwrap_or(0),
            source: "bittorrent".into(),
            ..Default::default()
        };
        Downloader {
            job,
            progress_tx,
            progress,
            session: None,
            torrent: None,
            reader: None,
            pieces: None,
            down_rate: rate::RateMeter::new(rate::WINDOW),
            up_rate: rate::RateMeter::new(rate::WINDOW),
        }
    }

    async fn run(&mut self) -> Result<PathBuf, DownloadError> {
        let sha = self
            .job
            .req
            .sha256
            .ok_or_else(|| DownloadError::BadRequest("no sha256 in the request".into()))?;
        tokio::fs::create_dir_all(&self.job.work_dir).await?;
        let secs = self.job.req.torrent_params.download_timeout_s;
        match tokio::time::timeout(Duration::from_secs(secs), self.run_sources(sha)).await {
            Ok(r) => r,
            Err(_) => Err(DownloadError::Timeout(secs)),
        }
    }

    async fn run_sources(&mut self, sha: Sha256Digest) -> Result<PathBuf, DownloadError> {
        self.pieces = self.load_cached_torrent(&sha).await;
        if let Some(path) = self.already_complete(&sha).await? {
            return Ok(path);
        }
        self.check_free_space(&sha).await?;
        let mut reasons = Vec::new();
        let magnet = self.job.req.image_url.clone().filter(|u| u.starts_with("magnet:"));
        if magnet.is_some() || self.pieces.is_some() {
            match self.bittorrent(&sha, magnet).await {
                Ok(()) => return self.check_sha(&sha).await,
                Err(e) => {
                    tracing::info!(reason = %e, "swarm gave up, falling back to HTTP");
                    reasons.push(format!("BitTorrent: {e}"));
                }
            }
            self.stop_torrent().await;
        }
        let Some(url) = self.job.req.http_url.clone() else {
            reasons.push("HTTP: no URL in the request".into());
            return Err(DownloadError::AllSourcesFailed(reasons.join("; ")));
        };
        let attempts = policy::attempts(self.job.req.download_attempts);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DownloadError::BadRequest(format!("HTTP client: {e}")))?;
        let mut last = String::new();
        for attempt in 1..=attempts {
            tokio::time::sleep(policy::backoff(attempt)).await;
            self.progress.source = "http".into();
            match self.http(&client, &url, &sha).await {
                Ok(()) => match self.check_sha(&sha).await {
                    Ok(path) => return Ok(path),
                    Err(DownloadError::HashMismatch) if self.pieces.is_none() => {
                        // Unverifiable bytes only: drop them and fetch again.
                        let _ = tokio::fs::remove_file(self.data_path(&sha)).await;
                        last = "the downloaded file has the wrong sha256".into();
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => last = e,
            }
            tracing::info!(attempt, error = %last, "HTTP download attempt failed");
        }
        reasons.push(format!("HTTP: {last} (after {attempts} attempts)"));
        Err(DownloadError::AllSourcesFailed(reasons.join("; ")))
    }

    /// A previous run (before a restart) may have finished already.
    async fn already_complete(&mut self, sha: &Sha256Digest) -> Result<Option<PathBuf>, DownloadError> {
        let path = self.data_path(sha);
        let Ok(meta) = tokio::fs::metadata(&path).await else { return Ok(None) };
        if self.job.req.image_size.is_some_and(|s| s != meta.len()) {
            return Ok(None);
        }
        match self.check_sha(sha).await {
            Ok(p) => Ok(Some(p)),
            Err(DownloadError::HashMismatch) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Refuses the download when the image (from the request; the cached torrent when the request
    /// has no size) would not fit, counting what an earlier run already wrote.
    async fn check_free_space(&self, sha: &Sha256Digest) -> Result<(), DownloadError> {
        let Some(size) = self.job.req.image_size.or(self.pieces.as_ref().map(|p| p.total_len)) else {
            return Ok(());
        };
        let on_disk = match tokio::fs::metadata(self.data_path(sha)).await {
            // Allocated bytes, not the length: a resumed file may be sparse.
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512),
            Err(_) => 0,
        };
        let dir = self.job.work_dir.clone();
        let stat = rustix::fs::statvfs(&dir).map_err(|e| DownloadError::Io(e.into()))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        let needed = policy::space_needed(size, on_disk);
        if free < needed {
            return Err(DownloadError::NoSpace { dir, free, needed });
        }
        Ok(())
    }

    /// Leech from the swarm until done; `Err` says why the swarm was given up.
    async fn bittorrent(&mut self, sha: &Sha256Digest, magnet: Option<String>) -> Result<(), String> {
        let stall = Duration::from_secs(self.job.req.torrent_params.bt_stall_timeout_s.max(1));
        let session = self.session().await?;
        let peers = resolve_peers(&self.job.req.initial_peers).await;
        let source = match (&self.pieces, magnet) {
            (Some(_), _) => AddTorrent::TorrentFileBytes(
                tokio::fs::read(self.torrent_cache_path(sha)).await.map_err(|e| e.to_string())?.into(),
            ),
            (None, Some(m)) => AddTorrent::Url(m.into()),
            (None, None) => return Err("no magnet URI".into()),
        };
        let params = self.job.req.torrent_params.clone();
        let work_dir = self.job.work_dir.clone();
        let handle =
            tokio::time::timeout(stall, swarm::add(&session, source, &params, peers.clone(), &work_dir))
                .await
                .map_err(|_| format!("no peer sent the torrent metadata within {} s", stall.as_secs()))??;
        self.torrent = Some(handle.clone());
        if self.pieces.is_none() {
            let bytes = handle
                .metadata
                .load_full()
                .map(|m| m.torrent_bytes.clone())
                .ok_or("torrent metadata missing after add")?;
            let pieces = Pieces::from_torrent_bytes(&bytes).map_err(|e| e.to_string())?;
            if self.job.req.image_size.is_some_and(|s| s != pieces.total_len) {
                return Err(format!(
                    "the swarm's image is {} bytes, the request says {:?}",
                    pieces.total_len, self.job.req.image_size
                ));
            }
            // Cache it: after a restart the download resumes without waiting for metadata, and
            // HTTP fallback can verify pieces.
            // Atomic, so a restart never finds a torn cache (a cache that does not parse is
            // ignored, but costs the wait for metadata again).
            let cache = self.torrent_cache_path(sha);
            let cached = bytes.clone();
            match tokio::task::spawn_blocking(move || crate::durable::write_atomically(&cache, &cached)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::info!(error = %e, "cannot cache the torrent metadata"),
                Err(e) => tracing::info!(error = %e, "cannot cache the torrent metadata"),
            }
            self.pieces = Some(pieces);
        }
        let pieces = self.pieces.clone().ok_or("no piece layout")?;
        self.progress.total_bytes = pieces.total_len;
        let identity = format!("{:?}|{}", self.job.bt_listen, self.job.work_dir.display());
        // The controller's place for us in the batch gives a slice distinct from every other
        // node's; without it, a hash of our identity spreads the nodes at random.
        let (swarm_index, swarm_size) = (self.job.req.swarm_index, self.job.req.swarm_size);
        let slice = metainfo::slice(swarm_index, swarm_size, &pieces);
        let start = metainfo::slice_offset(swarm_index, swarm_size, &pieces)
            .unwrap_or_else(|| metainfo::start_offset(identity.as_bytes(), &pieces));
        self.reader = Some(swarm::unpause_from(&session, &handle, start).await?);
        let torrent_bytes = swarm::torrent_bytes(&handle).ok_or("torrent metadata missing after add")?;
        let mut handle = handle;
        let mut watch = StallWatch::new(stall, Instant::now());
        let first = swarm::stats(&session, &handle);
        let mut gate = SeederGate::new(
            HUNGRY,
            RENEW_SEEDER_AFTER,
            pieces.total_len.saturating_sub(first.have_bytes),
            Instant::now(),
        );
        let mut rejoined = false;
        let mut uses = 0u32;
        loop {
            let s = swarm::stats(&session, &handle);
            self.publish_swarm(s);
            if s.finished {
                return Ok(());
            }
            if !rejoined && s.have_bytes > 0 {
                swarm::rejoin(&session, &handle).await?;
                rejoined = true;
            }
            let (from_seeder, others) = swarm::seeder_figures(&handle, &peers);
            let min_share = pieces.piece_length;
            // The batch size, when the controller gave it, is the swarm: live peers say less early
            // on (a too-large share would send the same bytes to many nodes), and librqbit lists
            // a peer twice when both sides connected.
            let swarm = if swarm_size > 0 { swarm_size } else { others + 1 };
            let figures = SwarmFigures {
                have: s.have_bytes,
                total: pieces.total_len,
                received: s.fetched_bytes,
                from_seeder,
                swarm_size: swarm,
                min_share,
                // Reading the bitfield costs a copy of it every poll: only while the gate reads it.
                slice_left: slice.clone().filter(|_| gate.needs_slice_left()).and_then(|r| {
                    let have = swarm::have_pieces(&session, &handle)?;
                    Some(r.filter(|i| !have.get(*i).copied().unwrap_or(false)).count())
                }),
            };
            let step = gate.observe(&figures, Instant::now());
            if step != SeederMove::Keep && !peers.is_empty() {
                uses += u32::from(step == SeederMove::Use);
                tracing::debug!(?step, from_seeder, others, have = s.have_bytes, "seeder use changes");
                if step == SeederMove::Renew {
                    // Same peers, new connections: no need to add the torrent again.
                    swarm::rejoin(&session, &handle).await?;
                    gate.restarted(Instant::now());
                    continue;
                }
                let initial = if step == SeederMove::Drop { Vec::new() } else { peers.clone() };
                // The first use stays on the slice. A later use starts at this node's part of the
                // pieces still missing, so nodes that use the seeder again at the same time ask it
                // for different ones; without a place in the batch, at a new hashed offset.
                let part = || {
                    let have = swarm::have_pieces(&session, &handle)?;
                    metainfo::part_of_missing(&have, swarm_index, swarm_size)
                };
                let offset = if uses == 0 {
                    start
                } else if let Some(p) = part() {
                    p as u64 * pieces.piece_length
                } else {
                    metainfo::start_offset(format!("{identity}|{uses}").as_bytes(), &pieces)
                };
                handle = self.readd(&session, torrent_bytes.clone(), initial, offset).await?;
                gate.restarted(Instant::now());
                continue;
            }
            if s.error {
                return Err(handle.stats().error.unwrap_or_else(|| "torrent error".into()));
            }
            if watch.observe(s.have_bytes, Instant::now()) {
                return Err(format!(
                    "no progress for {} s ({} of {} bytes, {} peers)",
                    stall.as_secs(),
                    s.have_bytes,
                    pieces.total_len,
                    s.peers
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Add the torrent again with other initial peers (librqbit has no way to drop one peer or to
    /// add one later): the verified pieces on disk are kept (librqbit checks them again), the
    /// tracker is asked again for peers, and the stream restarts at `offset`.
    async fn readd(
        &mut self,
        session: &Arc<Session>,
        torrent_bytes: bytes::Bytes,
        initial_peers: Vec<SocketAddr>,
        offset: u64,
    ) -> Result<TorrentHandle, String> {
        self.stop_torrent().await;
        let params = self.job.req.torrent_params.clone();
        let work_dir = self.job.work_dir.clone();
        let handle = swarm::add(
            session,
            AddTorrent::TorrentFileBytes(torrent_bytes),
            &params,
            initial_peers,
            &work_dir,
        )
        .await?;
        self.torrent = Some(handle.clone());
        self.reader = Some(swarm::unpause_from(session, &handle, offset).await?);
        Ok(handle)
    }

    /// One HTTP attempt: fill missing pieces (or continue the file without metainfo).
    async fn http(&mut self, client: &reqwest::Client, url: &str, sha: &Sha256Digest) -> Result<(), String> {
        let path = self.data_path(sha);
        let mut have = match self.pieces.clone() {
            Some(pieces) => {
                let path2 = path.clone();
                let have = tokio::task::spawn_blocking(move || pieces.verified_on_disk(&path2))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                Some(have)
            }
            None => None,
        };
        self.progress.have_bytes = match (&self.pieces, &have) {
            (Some(p), Some(h)) => (0..p.count()).filter(|i| h[*i]).map(|i| p.range(i).1 - p.range(i).0).sum(),
            _ => tokio::fs::metadata(&path).await.map_or(0, |m| m.len()),
        };
        // Over HTTP there is no swarm: no peers, no seeds, no connections, nothing sent.
        let p = &mut self.progress;
        (p.peers, p.seeds, p.connections, p.upload_bytes_per_second) = (0, 0, 0, 0);
        self.progress_tx.send_replace(self.progress.clone());
        let tx = self.progress_tx.clone();
        let mut progress = self.progress.clone();
        let mut meter = rate::RateMeter::new(rate::WINDOW);
        meter.observe(progress.http_downloaded_bytes, Instant::now());
        let mut on_bytes = move |n: u64| {
            progress.http_downloaded_bytes += n;
            progress.have_bytes += n;
            progress.download_bytes_per_second =
                meter.observe(progress.http_downloaded_bytes, Instant::now());
            tx.send_replace(progress.clone());
        };
        let result = match (&self.pieces, &mut have) {
            (Some(pieces), Some(have)) => {
                http::fill_pieces(client, url, &path, pieces, have, &mut on_bytes).await
            }
            _ => http::fetch_rest(client, url, &path, self.job.req.image_size, &mut on_bytes).await,
        };
        self.progress = self.progress_tx.borrow().clone();
        // The attempt is over: nothing is arriving any more (a failed one waits for its backoff).
        self.progress.download_bytes_per_second = 0;
        self.progress_tx.send_replace(self.progress.clone());
        result
    }

    /// Check the whole file against the requested sha256 (the only identity that counts).
    async fn check_sha(&mut self, sha: &Sha256Digest) -> Result<PathBuf, DownloadError> {
        let path = self.data_path(sha);
        let p2 = path.clone();
        let got = tokio::task::spawn_blocking(move || metainfo::sha256_file(&p2))
            .await
            .map_err(|e| DownloadError::Io(std::io::Error::other(e)))??;
        if got != sha.0 {
            return Err(DownloadError::HashMismatch);
        }
        self.progress.have_bytes = tokio::fs::metadata(&path).await?.len();
        self.progress.total_bytes = self.progress.have_bytes;
        self.progress_tx.send_replace(self.progress.clone());
        Ok(path)
    }

    /// Keep seeding (and publishing upload figures) until the handle is dropped.
    async fn seed_until(&mut self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        if self.torrent.is_none() && self.pieces.is_some() {
            // Finished over HTTP: offer the file to the swarm again.
            if let Err(e) = self.start_seeding().await {
                tracing::info!(error = %e, "cannot seed the downloaded image");
            }
        }
        loop {
            if let (Some(s), Some(t)) = (&self.session, &self.torrent) {
                let st = swarm::stats(s, t);
                self.publish_swarm(st);
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn start_seeding(&mut self) -> Result<(), String> {
        let sha = self.job.req.sha256.ok_or("no sha256")?;
        let session = self.session().await?;
        let bytes = tokio::fs::read(self.torrent_cache_path(&sha)).await.map_err(|e| e.to_string())?;
        let peers = resolve_peers(&self.job.req.initial_peers).await;
        let h = swarm::add(
            &session,
            AddTorrent::TorrentFileBytes(bytes.into()),
            &self.job.req.torrent_params,
            peers,
            &self.job.work_dir,
        )
        .await?;
        session.unpause(&h).await.map_err(|e| format!("{e:#}"))?;
        self.torrent = Some(h);
        Ok(())
    }

    async fn stop_torrent(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
            let _ = r.await;
        }
        if let (Some(s), Some(t)) = (&self.session, self.torrent.take()) {
            swarm::remove(s, &t).await;
        }
    }

    async fn shutdown(&mut self) {
        self.stop_torrent().await;
        if let Some(s) = self.session.take() {
            s.stop().await;
        }
    }

    async fn session(&mut self) -> Result<Arc<Session>, String> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let s = match self.job.bt_listen {
            Some(addr) => swarm::open_session(addr, &self.job.work_dir).await?,
            None => {
                let mut last = String::new();
                let mut opened = None;
                for _ in 0..20 {
                    let addr = listen_any(free_port());
                    match swarm::open_session(addr, &self.job.work_dir).await {
                        Ok(s) => {
                            opened = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                opened.ok_or(last)?
            }
        };
        self.session = Some(s.clone());
        Ok(s)
    }

    fn publish_swarm(&mut self, s: swarm::SwarmStats) {
        self.progress.have_bytes = self.progress.have_bytes.max(s.have_bytes);
        self.progress.bt_downloaded_bytes = s.fetched_bytes;
        self.progress.bt_uploaded_bytes = s.uploaded_bytes;
        self.progress.peers = s.peers;
        self.progress.seeds = s.seeds;
        self.progress.connections = s.connections;
        // Rates from the session's byte counters, not librqbit's per-torrent estimators: those
        // start again at every pause, unpause and re-add (`rejoin`, `readd`) and read 10.8 MB/s
        // under a 1 MiB/s seeder limit in `tests/download_figures.rs`.
        let now = Instant::now();
        self.progress.download_bytes_per_second = self.down_rate.observe(s.fetched_bytes, now);
        self.progress.upload_bytes_per_second = self.up_rate.observe(s.uploaded_bytes, now);
        self.progress_tx.send_replace(self.progress.clone());
    }

    async fn load_cached_torrent(&self, sha: &Sha256Digest) -> Option<Pieces> {
        let bytes = tokio::fs::read(self.torrent_cache_path(sha)).await.ok()?;
        Pieces::from_torrent_bytes(&bytes).ok()
    }

    fn data_path(&self, sha: &Sha256Digest) -> PathBuf {
        match &self.pieces {
            Some(p) => self.job.work_dir.join(&p.name),
            None => self.job.work_dir.join(format!("{}.mlimg", sha.to_hex())),
        }
    }

    fn torrent_cache_path(&self, sha: &Sha256Digest) -> PathBuf {
        self.job.work_dir.join(format!("{}.torrent", sha.to_hex()))
    }
}

/// Empties the download directory (the shell's part of [`crate::agent::Action::CleanDownloads`]).
/// Drop the download's handle first, so nothing is seeding from it.
pub fn remove_work_dir(work_dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(work_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `host:port` strings from the request; unresolvable ones are skipped (the tracker may still
/// supply peers).
async fn resolve_peers(peers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for p in peers {
        match tokio::net::lookup_host(p.as_str()).await {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::info!(peer = %p, error = %e, "initial peer not resolvable"),
        }
    }
    out
}

/// Every local address on `port`, for the swarm listener: `[::]`, which librqbit makes
/// dual-stack (peers reach us over IPv6 on Terragraph's management network, over IPv4 in a lab),
/// or `0.0.0.0` on a host without IPv6, where binding `[::]` would fail.
pub fn listen_any(port: u16) -> SocketAddr {
    let v6 = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port);
    if std::net::TcpListener::bind(SocketAddr::new(v6.ip(), 0)).is_ok() {
        v6
    } else {
        SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port)
    }
}

/// A port in 20000..32000, below Linux's ephemeral range (32768–60999) where a listener would
/// collide with outgoing connections; probed by binding once on the address family the listener
/// will use (probing `::` alone never succeeded on an IPv4-only host, and looped forever).
fn free_port() -> u16 {
    let any = listen_any(0).ip();
    loop {
        let port = 20_000 + (rand_u32() % 12_000) as u16;
        if std::net::TcpListener::bind((any, port)).is_ok() {
            return port;
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}
