//! Image downloader: BitTorrent first, HTTP fallback. (Interface stub; the distribution work
//! replaces the body, keeping the signatures.)
//!
//! The minion's shell calls [`start`] when its core asks for a download, forwards every progress
//! update into the core, and hands the finished file to verification. The downloader never writes
//! a slot: it only produces a file in `work_dir`.

use meshlift_protocol::{DownloadProgress, UpgradeReq};
use std::path::PathBuf;

/// What to download and where.
#[derive(Debug, Clone)]
pub struct DownloadJob {
    /// The PREPARE request: magnet URI, HTTP URL, sha256, size, torrent params, initial peers.
    pub req: UpgradeReq,
    /// Directory owned by the downloader for partial data and resume state; survives restarts.
    pub work_dir: PathBuf,
    /// Local address for the BitTorrent listener (peers connect here to fetch pieces from us).
    pub bt_listen: Option<std::net::SocketAddr>,
}

/// Why a download failed; the text goes to the operator as the DOWNLOAD_FAILED reason.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("download timed out after {0} s")]
    Timeout(u64),
    #[error("no source could deliver the image: {0}")]
    AllSourcesFailed(String),
    #[error("downloaded image does not match the requested sha256")]
    HashMismatch,
    #[error("download cancelled")]
    Cancelled,
    #[error("i/o error in the download directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("not implemented yet")]
    NotImplemented,
}

/// A running download. Dropping it cancels the download (and stops seeding).
pub struct DownloadHandle {
    pub progress: tokio::sync::watch::Receiver<DownloadProgress>,
    result: Option<tokio::sync::oneshot::Receiver<Result<PathBuf, DownloadError>>>,
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

/// Start downloading. Must be called inside a tokio runtime.
pub fn start(job: DownloadJob) -> DownloadHandle {
    let _ = job;
    let (_ptx, prx) = tokio::sync::watch::channel(DownloadProgress::default());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(Err(DownloadError::NotImplemented));
    DownloadHandle { progress: prx, result: Some(rx) }
}
