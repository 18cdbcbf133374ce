//! The minion's librqbit session: leech the image from the swarm, then seed it to the rest of
//! the batch.
//!
//! librqbit picks pieces in index order, so nodes that start together fetch the same pieces at
//! the same time and the controller ends up sending almost everything. We do not patch librqbit:
//! the torrent is added paused with a small request window, a stream is opened and seeked to
//! this node's start offset (see `metainfo::start_offset`) before unpausing, and read to the end
//! and then from the start. The stream's read-ahead window makes librqbit ask for the pieces
//! after that offset first, so each node begins somewhere else and has pieces the others lack.

use librqbit::{
    api::TorrentIdOrHash, limits::LimitsConfig, AddTorrent, AddTorrentOptions, ListenerMode, ListenerOptions,
    ManagedTorrent, PeerConnectionOptions, Session, SessionOptions,
};
use meshlift_protocol::TorrentParams;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Outstanding chunk requests per peer. librqbit's default (128) queues so much ahead that the
/// stream's priority pieces are requested late; 16 measured well on 127.0.0.1 (DESIGN §7).
const MAX_REQUEST_WINDOW: usize = 16;

/// Peer-id prefix of minions; the controller's tracker (`dist/tracker.rs`) knows the same bytes.
const MINION_PEER_ID_PREFIX: &[u8; 8] = b"-MLM010-";

pub type TorrentHandle = Arc<ManagedTorrent>;

/// Swarm figures read from librqbit. Session counters keep counting across pause/unpause.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwarmStats {
    pub have_bytes: u64,
    pub finished: bool,
    pub fetched_bytes: u64,
    pub uploaded_bytes: u64,
    pub peers: u32,
    /// Live peers that hold every piece.
    pub seeds: u32,
    /// Live peers plus connections still being set up (seed 003 counts half-open ones).
    pub connections: u32,
    pub error: bool,
}

/// Start a session with a TCP listener on `listen`, DHT and local discovery off.
pub async fn open_session(listen: SocketAddr, work_dir: &Path) -> Result<Arc<Session>, String> {
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
        client_name_and_version: Some(concat!("meshlift-minion ", env!("CARGO_PKG_VERSION")).into()),
        // The controller's tracker recognises minions by this prefix and leaves its own seeder out
        // of their peer lists: a minion decides itself when to use the seeder (`SeederGate`).
        peer_id: Some(librqbit::generate_peer_id(MINION_PEER_ID_PREFIX)),
        ..Default::default()
    };
    Session::new_with_opts(work_dir.to_path_buf(), opts)
        .await
        .map_err(|e| format!("cannot start BitTorrent on {listen}: {e:#}"))
}

/// Add the image torrent (paused) with the request's limits and initial peers. Data goes to
/// `work_dir/<torrent name>`; existing data there is checked and kept (resume after restart).
pub async fn add(
    session: &Arc<Session>,
    source: AddTorrent<'static>,
    params: &TorrentParams,
    initial_peers: Vec<SocketAddr>,
    work_dir: &Path,
) -> Result<TorrentHandle, String> {
    let opts = AddTorrentOptions {
        paused: true,
        overwrite: true,
        output_folder: Some(work_dir.to_string_lossy().into_owned()),
        peer_opts: Some(PeerConnectionOptions {
            max_request_window: Some(MAX_REQUEST_WINDOW),
            ..Default::default()
        }),
        ratelimits: LimitsConfig {
            upload_bps: params.upload_limit.and_then(to_bps),
            download_bps: params.download_limit.and_then(to_bps),
        },
        peer_limit: params.max_connections.map(|c| c as usize),
        initial_peers: Some(initial_peers),
        ..Default::default()
    };
    let handle = session
        .add_torrent(source, Some(opts))
        .await
        .map_err(|e| format!("{e:#}"))?
        .into_handle()
        .ok_or_else(|| "librqbit returned no torrent handle".to_string())?;
    handle.wait_until_initialized().await.map_err(|e| format!("{e:#}"))?;
    Ok(handle)
}

/// Unpause with the stream trick: start the priority window at `offset`, then let it run to the
/// end and wrap to 0. The returned task ends when the file has been read once round; dropping or
/// aborting it releases the stream.
pub async fn unpause_from(
    session: &Arc<Session>,
    handle: &TorrentHandle,
    offset: u64,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut stream = handle.clone().stream(0).await.map_err(|e| format!("{e:#}"))?;
    let len = stream.len();
    stream.seek(std::io::SeekFrom::Start(offset.min(len))).await.map_err(|e| e.to_string())?;
    session.unpause(handle).await.map_err(|e| format!("{e:#}"))?;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 256 << 10];
        let mut read = 0u64;
        while read < len {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    if stream.seek(std::io::SeekFrom::Start(0)).await.is_err() {
                        return;
                    }
                }
                Ok(n) => read += n as u64,
                Err(_) => return,
            }
        }
    }))
}

/// Drop every connection and connect again, once this node holds at least one piece.
///
/// librqbit 9.1 sends no bitfield while it has no pieces, and sends a HAVE to a peer only when
/// it knows that peer's bitfield (`should_transmit_have` treats an unknown bitfield as "has
/// everything"). Two leechers that connect while both are empty therefore never tell each other
/// about any piece, and simultaneous starters share nothing. After a pause and unpause every new
/// connection starts with our bitfield, so the other side learns our pieces and we learn its.
pub async fn rejoin(session: &Arc<Session>, handle: &TorrentHandle) -> Result<(), String> {
    session.pause(handle).await.map_err(|e| format!("{e:#}"))?;
    session.unpause(handle).await.map_err(|e| format!("{e:#}"))
}

pub fn stats(session: &Session, handle: &TorrentHandle) -> SwarmStats {
    let s = handle.stats();
    let counters = session.stats_snapshot().counters;
    SwarmStats {
        have_bytes: s.progress_bytes,
        finished: s.finished,
        fetched_bytes: counters.fetched_bytes,
        uploaded_bytes: counters.uploaded_bytes,
        peers: s.live.as_ref().map_or(0, |l| l.snapshot.peer_stats.live),
        seeds: s.live.as_ref().map_or(0, |l| l.snapshot.peer_stats.live_seeders),
        connections: s
            .live
            .as_ref()
            .map_or(0, |l| l.snapshot.peer_stats.live.saturating_add(l.snapshot.peer_stats.connecting)),
        error: s.error.is_some(),
    }
}

/// Client name (BEP 10 `v`) of the controller's seeder, as `dist/seeder.rs` sets it.
const SEEDER_CLIENT_NAME: &str = "meshlift-controller ";

/// Bytes fetched from the seeder over the torrent's live connections, and the number of live
/// connections to other peers. librqbit keys its per-peer figures by the peer's address: a
/// connection to one of `seeders` is the seeder, and so is one whose client calls itself the
/// controller (the seeder connecting to us, from another port).
pub fn seeder_figures(handle: &TorrentHandle, seeders: &[SocketAddr]) -> (u64, u32) {
    let Some(live) = handle.live() else { return (0, 0) };
    let snap = live.per_peer_stats_snapshot(Default::default());
    let mut fetched = 0;
    let mut others = 0;
    for (addr, p) in &snap.peers {
        let named = p.client_name.as_deref().is_some_and(|c| c.starts_with(SEEDER_CLIENT_NAME));
        // librqbit's keys are `SocketAddr::to_string()`: parse each once rather than format
        // every seeder address for every peer on every poll.
        if named || addr.parse::<SocketAddr>().is_ok_and(|a| seeders.contains(&a)) {
            fetched += p.counters.fetched_bytes;
        } else {
            others += 1;
        }
    }
    (fetched, others)
}

/// Which pieces this node holds (`None`: librqbit cannot say, e.g. while the torrent
/// initialises).
pub fn have_pieces(session: &Arc<Session>, handle: &TorrentHandle) -> Option<Vec<bool>> {
    // `Api` is librqbit's own front end; its `api_dump_haves` is the public way to the bitfield.
    let api = librqbit::Api::new(session.clone(), None);
    let (have, count) = api.api_dump_haves(TorrentIdOrHash::Id(handle.id())).ok()?;
    Some((0..count as usize).map(|i| have.get(i).is_some_and(|b| *b)).collect())
}

/// The torrent's `.torrent` bytes (for a magnet: the info dictionary with its trackers), to add
/// it again with other initial peers.
pub fn torrent_bytes(handle: &TorrentHandle) -> Option<bytes::Bytes> {
    handle.metadata.load_full().map(|m| m.torrent_bytes.clone())
}

/// Remove the torrent from the session, leaving its data on disk.
pub async fn remove(session: &Arc<Session>, handle: &TorrentHandle) {
    let _ = session.delete(TorrentIdOrHash::Id(handle.id()), false).await;
}

fn to_bps(v: u64) -> Option<NonZeroU32> {
    NonZeroU32::new(v.min(u64::from(u32::MAX)) as u32)
}
