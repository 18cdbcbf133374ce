//! A peer that serves a corrupt piece: the piece fails its hash, is refused, and is fetched again
//! (here over HTTP, since the lying peer is the only one in the swarm).

mod download_harness;

use download_harness::*;
use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use meshlift_minion::download;
use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_piece_is_caught_and_fetched_again() {
    let ctl = controller(CtlOpts::default()).await;
    let (img, bytes) = add_image(&ctl, 2 << 20, 7).await;
    let torrent = ctl.store.torrent_bytes(&img.name).unwrap();
    let pieces = meshlift_minion::download::metainfo::Pieces::from_torrent_bytes(&torrent).unwrap();

    // A liar: seeds the right torrent, then has one piece on disk overwritten.
    let liar_dir = tempfile::tempdir().unwrap();
    std::fs::write(liar_dir.path().join(&pieces.name), &bytes).unwrap();
    let liar_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let liar = Session::new_with_opts(
        liar_dir.path().to_path_buf(),
        SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            disable_trackers: true,
            listen: Some(ListenerOptions {
                listen_addr: liar_addr,
                announce_port: Some(liar_addr.port()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = liar
        .add_torrent(
            AddTorrent::TorrentFileBytes(torrent.clone().into()),
            Some(AddTorrentOptions { overwrite: true, ..Default::default() }),
        )
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    h.wait_until_initialized().await.unwrap();
    assert!(h.stats().finished);
    let bad_piece = 3;
    let (start, _) = pieces.range(bad_piece);
    let mut f = std::fs::OpenOptions::new().write(true).open(liar_dir.path().join(&pieces.name)).unwrap();
    f.seek(SeekFrom::Start(start + 100)).unwrap();
    f.write_all(b"garbage").unwrap();
    f.sync_all().unwrap();

    // The minion only knows the liar (no tracker in the magnet); HTTP works.
    let dir = tempfile::tempdir().unwrap();
    let mut j = job(&ctl, &img, dir.path(), params(2, 60));
    j.req.image_url = Some(format!("magnet:?xt=urn:btih:{}", hex::encode(pieces.info_hash)));
    j.req.initial_peers = vec![liar_addr.to_string()];
    let mut dl = download::start(j);
    let path = dl.finished().await.expect("download");
    assert_eq!(std::fs::read(path).unwrap(), bytes, "corrupt bytes reached the image");
    let p = dl.progress.borrow().clone();
    // The swarm delivered every piece it verified; HTTP only fetched what was missing. Swarm bytes
    // received but never counted as verified are the corrupt piece the downloader refused.
    let (s, e) = pieces.range(bad_piece);
    let verified_from_swarm = img.size - p.http_downloaded_bytes;
    assert!(verified_from_swarm > 0, "the swarm delivered nothing: {p:?}");
    assert!(p.bt_downloaded_bytes >= verified_from_swarm + (e - s), "no refused piece: {p:?}");
    assert!(p.http_downloaded_bytes >= e - s, "{p:?}");
    liar.stop().await;
}
