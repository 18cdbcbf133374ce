//! The controller's BitTorrent seeder: one librqbit session that seeds every image in the store.
//!
//! Settings follow what was measured with librqbit 9.1 (DESIGN §7): an explicit listener with an
//! explicit `announce_port` (otherwise a loopback listener announces 4240), DHT and local service
//! discovery off (trackers and initial peers only, as in Terragraph), and `overwrite: true` so an
//! existing file is checked and seeded rather than refused. librqbit re-hashes a file when it is
//! added (no fast-resume without persistence); the data is never downloaded again.

use librqbit::{
    api::TorrentIdOrHash, limits::LimitsConfig, AddTorrent, AddTorrentOptions, ListenerMode, ListenerOptions,
    Session, SessionOptions,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the initial check of a seeded file may take before we call it failed.
const INITIAL_CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// A librqbit failure while seeding; the text is librqbit's.
#[derive(Debug, thiserror::Error)]
#[error("BitTorrent seeder: {0}")]
pub struct SeedError(pub String);

fn seed_err(e: impl std::fmt::Display) -> SeedError {
    SeedError(format!("{e:#}"))
}

/// A torrent the seeder serves.
#[derive(Debug, Clone)]
pub struct SeededTorrent {
    pub info_hash: [u8; 20],
    /// The `.torrent` file (bencoded metainfo), for clients that want it instead of a magnet.
    pub torrent_bytes: Vec<u8>,
}

/// Seeder figures for the controller's `meshlift_seeder_*` metrics. Byte totals are kept by the
/// session and do not restart when a torrent is paused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeederStats {
    pub uploaded_bytes: u64,
    pub upload_bytes_per_s: f64,
    /// Live peer connections over all torrents.
    pub peers: u32,
    pub torrents: u32,
}

pub struct Seeder {
    session: Arc<Session>,
    listen: SocketAddr,
    by_hash: Mutex<HashMap<[u8; 20], usize>>,
}

impl Seeder {
    /// Start the session listening on `listen` (TCP). `upload_limit` caps the seeder's total
    /// upload in bytes per second.
    pub async fn start(
        listen: SocketAddr,
        upload_limit: Option<NonZeroU32>,
        default_dir: &Path,
    ) -> Result<Seeder, SeedError> {
        let opts = SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            fastresume: false,
            persistence: None,
            listen: Some(ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: listen,
                announce_port: Some(listen.port()),
                ipv4_only: listen.is_ipv4(),
                ..Default::default()
            }),
            ratelimits: LimitsConfig { upload_bps: upload_limit, download_bps: None },
            client_name_and_version: Some(concat!("meshlift-controller ", env!("CARGO_PKG_VERSION")).into()),
            // The tracker recognises the controller's seeder by this prefix and keeps it out of the
            // peer lists minions get (they use it as a last resort, see `tracker.rs`).
            peer_id: Some(librqbit::generate_peer_id(super::tracker::CONTROLLER_PEER_ID_PREFIX)),
            ..Default::default()
        };
        let session = Session::new_with_opts(default_dir.to_path_buf(), opts).await.map_err(seed_err)?;
        let listen = session.listen_addr().unwrap_or(listen);
        Ok(Seeder { session, listen, by_hash: Mutex::new(HashMap::new()) })
    }

    /// The address peers connect to (what goes into `initial_peers`).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Hash `file` into single-file metainfo (no seeding yet), so the caller can register the
    /// info-hash with the tracker before the seeder's first announce.
    pub async fn build_torrent(
        &self,
        file: &Path,
        piece_length: u32,
        tracker: &str,
    ) -> Result<SeededTorrent, SeedError> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| SeedError(format!("file name of {} is not UTF-8", file.display())))?
            .to_string();
        let (file2, tracker) = (file.to_path_buf(), tracker.to_string());
        tokio::task::spawn_blocking(move || super::torrent::build(&file2, &name, piece_length, &tracker))
            .await
            .map_err(seed_err)?
            .map_err(seed_err)
    }

    /// Seed `torrent` from `file` where it lies; librqbit checks the file first.
    pub async fn seed(&self, file: &Path, torrent: &SeededTorrent) -> Result<(), SeedError> {
        let dir = file
            .parent()
            .and_then(|d| d.to_str())
            .ok_or_else(|| SeedError(format!("directory of {} is not UTF-8", file.display())))?
            .to_string();
        let bytes = bytes::Bytes::from(torrent.torrent_bytes.clone());
        let info_hash = torrent.info_hash;
        let handle = self
            .session
            .add_torrent(
                AddTorrent::TorrentFileBytes(bytes.clone()),
                Some(AddTorrentOptions { overwrite: true, output_folder: Some(dir), ..Default::default() }),
            )
            .await
            .map_err(seed_err)?
            .into_handle()
            .ok_or_else(|| SeedError("librqbit did not return a torrent handle".into()))?;
        tokio::time::timeout(INITIAL_CHECK_TIMEOUT, handle.wait_until_initialized())
            .await
            .map_err(|_| SeedError("initial check of the image timed out".into()))?
            .map_err(seed_err)?;
        let stats = handle.stats();
        if !stats.finished {
            let _ = self.session.delete(TorrentIdOrHash::Id(handle.id()), false).await;
            return Err(SeedError(format!(
                "the stored file does not match its own torrent ({} of {} bytes verified)",
                stats.progress_bytes, stats.total_bytes
            )));
        }
        self.lock().insert(info_hash, handle.id());
        Ok(())
    }

    /// Stop seeding; the file is left for the caller to remove.
    pub async fn unseed(&self, info_hash: &[u8; 20]) -> Result<(), SeedError> {
        let id = self.lock().remove(info_hash);
        if let Some(id) = id {
            self.session.delete(TorrentIdOrHash::Id(id), false).await.map_err(seed_err)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> SeederStats {
        let s = self.session.stats_snapshot();
        SeederStats {
            uploaded_bytes: s.counters.uploaded_bytes,
            upload_bytes_per_s: s.upload_speed.mbps * 1024.0 * 1024.0,
            peers: s.peers.live,
            torrents: self.lock().len() as u32,
        }
    }

    /// Stop the session (all torrents, the listener).
    pub async fn stop(&self) {
        self.session.stop().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 20], usize>> {
        // A panic while holding this lock would be a bug in a few lines of map code above.
        self.by_hash.lock().expect("seeder torrent map lock poisoned")
    }
}
