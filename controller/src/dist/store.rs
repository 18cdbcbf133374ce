//! The controller's image store: verified `.mlimg` files kept as `<dir>/<sha256>.mlimg`, each
//! seeded over BitTorrent and served over HTTP.
//!
//! An image enters the store only after its signature and manifest are verified and its sha256
//! is computed; a file on disk whose name does not match its content is never served. At
//! start-up every stored image is verified and seeded again (the magnet URI stays the same, since
//! the torrent is built deterministically from the file and its size).

use super::seeder::{SeedError, Seeder, SeederStats};
use super::tracker::{self, AnnounceError, InfoHash, Tracker};
use super::verify::{ImageVerifier, VerifiedImageInfo};
use meshlift_protocol::{Sha256Digest, UpgradeImage};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Extension of stored images; the HTTP path is `/images/<sha256>.mlimg`.
pub const IMAGE_EXT: &str = "mlimg";
/// Suffix of files being added; removed at start-up if a crash left them behind.
const PART_SUFFIX: &str = ".part";

/// Configuration of distribution on the controller.
#[derive(Clone)]
pub struct DistConfig {
    /// BitTorrent listen address of the seeder. Keep the port outside the ephemeral range
    /// (32768–60999), where it collides with outgoing connections.
    pub bt_listen: SocketAddr,
    /// The seeder's address as minions reach it (their `initial_peers`: `public_host` with the
    /// seeder's port; a name stays a name); `None` = `bt_listen`.
    pub bt_public_addr: Option<crate::address::HostPort>,
    /// Base URL of the controller's HTTP server as minions reach it, e.g. `http://[fd00::1]:8080`.
    /// HTTP URIs and the embedded tracker's URL are built from it.
    pub http_base_url: String,
    /// An external tracker (opentracker, chihaya) instead of the embedded `/announce`.
    pub tracker_url: Option<String>,
    /// Announce interval told to peers.
    pub announce_interval: Duration,
    /// A peer that has not announced for this long is dropped (librqbit never sends `stopped`).
    pub peer_expiry: Duration,
    /// Cap on the seeder's upload, bytes per second.
    pub seed_upload_limit: Option<NonZeroU32>,
    /// `image add` is refused unless this much space stays free after storing the image.
    pub min_free_bytes: u64,
    /// Time limit for adding an image: downloading one given by URL, or copying a local file.
    pub add_download_timeout: Duration,
    /// Largest image `image add` accepts (a local file growing while it is copied, or a download
    /// longer than announced, is cut off here). Default 8 GiB.
    pub max_image_bytes: u64,
    /// Signature and manifest check run before an image is accepted.
    pub verifier: Arc<dyn ImageVerifier>,
}

impl DistConfig {
    /// Defaults with the given listen address, HTTP base URL and verifier.
    pub fn new(
        bt_listen: SocketAddr,
        http_base_url: impl Into<String>,
        verifier: Arc<dyn ImageVerifier>,
    ) -> Self {
        DistConfig {
            bt_listen,
            bt_public_addr: None,
            http_base_url: http_base_url.into(),
            tracker_url: None,
            announce_interval: Duration::from_secs(30),
            peer_expiry: Duration::from_secs(120),
            seed_upload_limit: None,
            min_free_bytes: 1 << 30,
            add_download_timeout: Duration::from_secs(600),
            max_image_bytes: 8 << 30,
            verifier,
        }
    }

    /// The tracker URL put into every torrent and magnet URI.
    pub fn announce_url(&self) -> String {
        match &self.tracker_url {
            Some(url) => url.clone(),
            None => format!("{}/announce", self.http_base_url.trim_end_matches('/')),
        }
    }
}

/// Why an image operation failed. The `Display` text is the reason sent to the operator.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    /// The operator gave a path or URL that cannot be read; check it on the controller host.
    #[error("cannot read image source {source_name}: {reason}")]
    Source { source_name: String, reason: String },
    /// Not enough room in the image directory; delete old images or grow the disk.
    #[error("out of disk space: {needed} bytes needed (image plus reserve), {free} free")]
    OutOfDiskSpace { needed: u64, free: u64 },
    /// The same file (same sha256) is already in the store.
    #[error("image already in the store as {name} (sha256 {sha256})")]
    DuplicateFile { name: String, sha256: Sha256Digest },
    /// The source is not a regular file (a FIFO, a device such as /dev/zero, a directory): it
    /// could block forever or never end.
    #[error("image source {0} is not a regular file")]
    NotRegularFile(String),
    /// The image is larger than `max_image_bytes`, or grew past its announced size.
    #[error("image source {source_name} exceeds {limit} bytes")]
    TooLarge { source_name: String, limit: u64 },
    /// Another image with the same name (version) exists; delete it first.
    #[error("another image named {0} is already in the store")]
    DuplicateName(String),
    /// Signature, manifest or payload check failed; the image is not trustworthy.
    #[error("image refused: {0}")]
    Invalid(String),
    /// No image with that name.
    #[error("no image named {0} in the store")]
    NotFound(String),
    /// librqbit could not create or seed the torrent.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The image directory could not be read or written.
    #[error("image directory: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
struct StoredImage {
    image: UpgradeImage,
    info_hash: InfoHash,
    path: PathBuf,
    torrent_bytes: Vec<u8>,
}

/// Image files found in the store's directory at open, not checked yet.
#[derive(Debug, Default)]
pub struct StoredFiles(Vec<PathBuf>);

impl StoredFiles {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The image store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    cfg: DistConfig,
    seeder: Seeder,
    images: Mutex<BTreeMap<String, StoredImage>>,
    tracker: Mutex<Tracker>,
    /// Serialises `add`/`del`, so duplicate checks and the rename into place cannot race.
    write: tokio::sync::Mutex<()>,
    part_counter: AtomicU64,
}

/// Progress of an `image add` (bytes copied or downloaded so far, total if known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddProgress {
    pub have_bytes: u64,
    pub total_bytes: Option<u64>,
}

impl ImageStore {
    /// Open (creating) the image directory, start the seeder, and verify and re-seed every stored
    /// image. An image that fails its check is logged and left out, never served.
    pub async fn open(dir: impl Into<PathBuf>, cfg: DistConfig) -> Result<ImageStore, ImageStoreError> {
        let (store, stored) = ImageStore::open_deferred(dir, cfg).await?;
        store.reverify(stored).await;
        Ok(store)
    }

    /// Open the store without checking what it holds: returns at once with the stored image files
    /// still to [`ImageStore::reverify`]. The controller binds its sockets in between, so a
    /// restart mid-commit answers the nodes on trial at once instead of after hashing gigabytes
    /// of images several times (each file is hashed, verified, then hashed into a torrent).
    /// Until its check passes an image is neither seeded, tracked nor served over HTTP.
    pub async fn open_deferred(
        dir: impl Into<PathBuf>,
        cfg: DistConfig,
    ) -> Result<(ImageStore, StoredFiles), ImageStoreError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        let seeder = Seeder::start(cfg.bt_listen, cfg.seed_upload_limit, &dir).await?;
        let tracker = Tracker::new(cfg.announce_interval, cfg.peer_expiry);
        let store = ImageStore {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                cfg,
                seeder,
                images: Mutex::new(BTreeMap::new()),
                tracker: Mutex::new(tracker),
                write: tokio::sync::Mutex::new(()),
                part_counter: AtomicU64::new(0),
            }),
        };
        let mut entries = tokio::fs::read_dir(&dir).await?;
        let mut files = Vec::new();
        while let Some(e) = entries.next_entry().await? {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(PART_SUFFIX) {
                let _ = tokio::fs::remove_file(&path).await;
            } else if path.extension().is_some_and(|x| x == IMAGE_EXT) {
                files.push(path);
            }
        }
        files.sort();
        Ok((store, StoredFiles(files)))
    }

    /// Verify and re-seed the files [`ImageStore::open_deferred`] found, one after the other;
    /// returns the images that passed. One that fails is logged and left out, never served.
    pub async fn reverify(&self, stored: StoredFiles) -> Vec<UpgradeImage> {
        let mut ok = Vec::new();
        for path in stored.0 {
            match self.reseed(&path).await {
                Ok(image) => ok.push(image),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "stored image not seeded"),
            }
        }
        ok
    }

    /// Add an image from a path on the controller or an http(s) URL.
    pub async fn add(&self, source: &str) -> Result<UpgradeImage, ImageStoreError> {
        self.add_with_progress(source, None).await
    }

    /// Like [`ImageStore::add`], reporting copy/download progress into `progress`.
    pub async fn add_with_progress(
        &self,
        source: &str,
        progress: Option<tokio::sync::watch::Sender<AddProgress>>,
    ) -> Result<UpgradeImage, ImageStoreError> {
        let part = self.inner.dir.join(format!(
            ".add-{}-{}{PART_SUFFIX}",
            std::process::id(),
            self.inner.part_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.add_locked(source, &part, progress).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    async fn add_locked(
        &self,
        source: &str,
        part: &Path,
        progress: Option<tokio::sync::watch::Sender<AddProgress>>,
    ) -> Result<UpgradeImage, ImageStoreError> {
        // The copy or download, hashing and verification run without the store's write lock (each
        // add has its own part file): a slow source never blocks another add or a delete.
        let t = self.inner.cfg.add_download_timeout;
        let timed_out = |_| src_err(source, format!("adding timed out after {} s", t.as_secs()));
        let sha256 = if source.starts_with("http://") || source.starts_with("https://") {
            tokio::time::timeout(t, self.download(source, part, progress)).await.map_err(timed_out)??
        } else {
            tokio::time::timeout(t, self.copy_local(source, part, progress)).await.map_err(timed_out)??
        };
        if let Some(existing) = self.find_by_sha(&sha256) {
            return Err(ImageStoreError::DuplicateFile { name: existing.image.name, sha256 });
        }
        let info = self.verify(part).await?;
        let _write = self.inner.write.lock().await;
        if let Some(existing) = self.find_by_sha(&sha256) {
            return Err(ImageStoreError::DuplicateFile { name: existing.image.name, sha256 });
        }
        if self.lock_images().contains_key(&info.name) {
            return Err(ImageStoreError::DuplicateName(info.name));
        }
        let final_path = self.inner.dir.join(format!("{}.{IMAGE_EXT}", sha256.to_hex()));
        tokio::fs::rename(part, &final_path).await?;
        sync_dir(&self.inner.dir).await;
        match self.seed_verified(&final_path, sha256, info).await {
            Ok(image) => {
                tracing::info!(name = %image.name, sha256 = %sha256.short(), "added and seeding image");
                Ok(image)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&final_path).await;
                Err(e)
            }
        }
    }

    /// Stop seeding the image and remove its file.
    pub async fn del(&self, name: &str) -> Result<UpgradeImage, ImageStoreError> {
        let _write = self.inner.write.lock().await;
        let stored =
            self.lock_images().remove(name).ok_or_else(|| ImageStoreError::NotFound(name.to_string()))?;
        self.lock_tracker().untrack(&stored.info_hash);
        self.inner.seeder.unseed(&stored.info_hash).await?;
        tokio::fs::remove_file(&stored.path).await?;
        sync_dir(&self.inner.dir).await;
        Ok(stored.image)
    }

    /// Every image, ordered by name.
    pub fn list(&self) -> Vec<UpgradeImage> {
        self.lock_images().values().map(|s| s.image.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<UpgradeImage> {
        self.lock_images().get(name).map(|s| s.image.clone())
    }

    /// The seeder's address for `UpgradeReq::initial_peers`.
    pub fn initial_peers(&self) -> Vec<String> {
        let public = self.inner.cfg.bt_public_addr.clone();
        vec![public.unwrap_or_else(|| self.inner.seeder.listen_addr().into()).to_string()]
    }

    /// The `.torrent` file of an image (same info-hash as its magnet URI).
    pub fn torrent_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.lock_images().get(name).map(|s| s.torrent_bytes.clone())
    }

    /// Seeder figures for the `meshlift_seeder_*` metrics.
    pub fn seeder_stats(&self) -> SeederStats {
        self.inner.seeder.stats()
    }

    /// Live peers the embedded tracker knows for an image.
    pub fn tracker_peers(&self, name: &str) -> usize {
        let Some(ih) = self.lock_images().get(name).map(|s| s.info_hash) else { return 0 };
        self.lock_tracker().peer_count(&ih, Instant::now())
    }

    /// Stop seeding everything (shutdown).
    pub async fn shutdown(&self) {
        self.inner.seeder.stop().await;
    }

    /// Path of a stored image by sha256, for HTTP serving. Only known images are served.
    pub(crate) fn path_by_sha(&self, sha256: &Sha256Digest) -> Option<PathBuf> {
        self.find_by_sha(sha256).map(|s| s.path)
    }

    /// Answer a raw announce query (the embedded tracker's shell).
    pub(crate) fn announce(&self, raw_query: &str, remote: IpAddr) -> Vec<u8> {
        let result = tracker::parse_announce(raw_query, remote)
            .and_then(|a| self.lock_tracker().handle_announce(&a, Instant::now()));
        match result {
            Ok(resp) => resp.to_bencode(),
            Err(e @ AnnounceError::Malformed(_)) | Err(e @ AnnounceError::UnknownInfoHash) => {
                tracker::failure_bencode(&e.to_string())
            }
        }
    }

    async fn reseed(&self, path: &Path) -> Result<UpgradeImage, ImageStoreError> {
        let sha256 = hash_file(path).await?;
        let expected = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if sha256.to_hex() != expected {
            return Err(ImageStoreError::Invalid(format!(
                "{} does not match its name (sha256 {sha256})",
                path.display()
            )));
        }
        let info = self.verify(path).await?;
        if self.lock_images().contains_key(&info.name) {
            return Err(ImageStoreError::DuplicateName(info.name));
        }
        self.seed_verified(path, sha256, info).await
    }

    async fn seed_verified(
        &self,
        path: &Path,
        sha256: Sha256Digest,
        info: VerifiedImageInfo,
    ) -> Result<UpgradeImage, ImageStoreError> {
        let size = tokio::fs::metadata(path).await?.len();
        let announce = self.inner.cfg.announce_url();
        let torrent = self.inner.seeder.build_torrent(path, piece_length_for(size), &announce).await?;
        let info_hash = torrent.info_hash;
        self.lock_tracker().track(info_hash);
        if let Err(e) = self.inner.seeder.seed(path, &torrent).await {
            self.lock_tracker().untrack(&info_hash);
            return Err(e.into());
        }
        let torrent_bytes = torrent.torrent_bytes;
        let file_name = format!("{}.{IMAGE_EXT}", sha256.to_hex());
        let image = UpgradeImage {
            name: info.name.clone(),
            version: info.version,
            magnet_uri: magnet_uri(&info_hash, &file_name, &announce),
            http_uri: format!("{}/images/{file_name}", self.inner.cfg.http_base_url.trim_end_matches('/')),
            sha256,
            size,
            hardware_board_ids: info.hardware_board_ids,
        };
        self.lock_images().insert(
            info.name,
            StoredImage { image: image.clone(), info_hash, path: path.to_path_buf(), torrent_bytes },
        );
        Ok(image)
    }

    async fn verify(&self, path: &Path) -> Result<VerifiedImageInfo, ImageStoreError> {
        let verifier = self.inner.cfg.verifier.clone();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || verifier.verify(&path))
            .await
            .map_err(|e| ImageStoreError::Invalid(format!("verification did not finish: {e}")))?
            .map_err(ImageStoreError::Invalid)
    }

    async fn copy_local(
        &self,
        source: &str,
        part: &Path,
        progress: Option<tokio::sync::watch::Sender<AddProgress>>,
    ) -> Result<Sha256Digest, ImageStoreError> {
        // Look before opening: opening a FIFO blocks until a writer comes. Then check the opened
        // file again (the path may have been swapped in between), with O_NONBLOCK so even that
        // open cannot block.
        let meta = tokio::fs::metadata(source).await.map_err(|e| src_err(source, e))?;
        if !meta.is_file() {
            return Err(ImageStoreError::NotRegularFile(source.to_string()));
        }
        let std_file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(source)
                .map_err(|e| src_err(source, e))?
        };
        let mut input = tokio::fs::File::from_std(std_file);
        let meta = input.metadata().await.map_err(|e| src_err(source, e))?;
        if !meta.is_file() {
            return Err(ImageStoreError::NotRegularFile(source.to_string()));
        }
        let size = meta.len();
        let limit = self.inner.cfg.max_image_bytes;
        if size > limit {
            return Err(ImageStoreError::TooLarge { source_name: source.to_string(), limit });
        }
        self.check_space(size)?;
        let mut out = tokio::fs::File::create(part).await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut have = 0u64;
        loop {
            let n = input.read(&mut buf).await.map_err(|e| src_err(source, e))?;
            if n == 0 {
                break;
            }
            have += n as u64;
            // A file that grows while it is copied is not the file that was checked.
            if have > size {
                return Err(src_err(source, format!("the file grew past {size} bytes while it was copied")));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).await?;
            if let Some(p) = &progress {
                let _ = p.send(AddProgress { have_bytes: have, total_bytes: Some(size) });
            }
        }
        out.sync_all().await?;
        Ok(Sha256Digest(hasher.finalize().into()))
    }

    async fn download(
        &self,
        url: &str,
        part: &Path,
        progress: Option<tokio::sync::watch::Sender<AddProgress>>,
    ) -> Result<Sha256Digest, ImageStoreError> {
        let mut resp =
            reqwest::get(url).await.and_then(|r| r.error_for_status()).map_err(|e| src_err(url, e))?;
        let total = resp.content_length();
        let limit = self.inner.cfg.max_image_bytes;
        if total.is_some_and(|t| t > limit) {
            return Err(ImageStoreError::TooLarge { source_name: url.to_string(), limit });
        }
        self.check_space(total.unwrap_or(0))?;
        let mut out = tokio::fs::File::create(part).await?;
        let mut hasher = Sha256::new();
        let mut have = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| src_err(url, e))? {
            have += chunk.len() as u64;
            if have > total.unwrap_or(limit).min(limit) {
                return Err(ImageStoreError::TooLarge {
                    source_name: url.to_string(),
                    limit: total.unwrap_or(limit).min(limit),
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await?;
            if let Some(p) = &progress {
                let _ = p.send(AddProgress { have_bytes: have, total_bytes: total });
            }
            if total.is_none() && have % (64 << 20) < chunk.len() as u64 {
                // Unknown length: re-check the disk as the file grows.
                self.check_space(0)?;
            }
        }
        out.sync_all().await?;
        Ok(Sha256Digest(hasher.finalize().into()))
    }

    fn check_space(&self, incoming: u64) -> Result<(), ImageStoreError> {
        let free = free_bytes(&self.inner.dir)?;
        let needed = incoming.saturating_add(self.inner.cfg.min_free_bytes);
        if free < needed {
            return Err(ImageStoreError::OutOfDiskSpace { needed, free });
        }
        Ok(())
    }

    fn find_by_sha(&self, sha256: &Sha256Digest) -> Option<StoredImage> {
        self.lock_images().values().find(|s| s.image.sha256 == *sha256).cloned()
    }

    fn lock_images(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredImage>> {
        // Only plain map operations run under this lock; poisoning would mean a bug there.
        self.inner.images.lock().expect("image map lock poisoned")
    }

    fn lock_tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // The tracker core does not panic on any input (tested); poisoning would be a bug.
        self.inner.tracker.lock().expect("tracker lock poisoned")
    }
}

/// Piece length for an image of `size` bytes: about 512 pieces, between 16 KiB and 4 MiB, a
/// power of two. Many small pieces let simultaneous leechers start at different places and trade
/// sooner; the bounds keep the metainfo small and per-piece overhead low. Deterministic in the
/// size, so a re-seeded image keeps its info-hash and magnet URI.
pub fn piece_length_for(size: u64) -> u32 {
    let target = (size / 512).clamp(16 << 10, 4 << 20);
    let p = target.next_power_of_two().min(4 << 20);
    p as u32
}

/// `magnet:?xt=urn:btih:<hex>&dn=<file>&tr=<tracker>`, with the values URL-encoded.
pub fn magnet_uri(info_hash: &InfoHash, file_name: &str, tracker: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("magnet:?xt=urn:btih:{}&dn={}&tr={}", hex::encode(info_hash), enc(file_name), enc(tracker))
}

fn src_err(source: &str, e: impl std::fmt::Display) -> ImageStoreError {
    ImageStoreError::Source { source_name: source.to_string(), reason: e.to_string() }
}

async fn hash_file(path: &Path) -> Result<Sha256Digest, ImageStoreError> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(Sha256Digest(hasher.finalize().into()));
        }
        hasher.update(&buf[..n]);
    }
}

fn free_bytes(dir: &Path) -> Result<u64, ImageStoreError> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Make a rename durable; best effort (some file systems refuse fsync on directories).
async fn sync_dir(dir: &Path) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_length_is_a_bounded_power_of_two() {
        assert_eq!(piece_length_for(1 << 20), 16 << 10);
        assert_eq!(piece_length_for(64 << 20), 128 << 10);
        assert_eq!(piece_length_for(100 << 30), 4 << 20);
        assert_eq!(piece_length_for(3_000_001).count_ones(), 1);
    }

    #[test]
    fn magnet_uri_encodes_tracker() {
        let m = magnet_uri(&[0xab; 20], "x.mlimg", "http://[::1]:8080/announce");
        assert!(m.starts_with("magnet:?xt=urn:btih:abab"));
        assert!(m.ends_with("&tr=http%3A%2F%2F%5B%3A%3A1%5D%3A8080%2Fannounce"), "{m}");
    }
}
