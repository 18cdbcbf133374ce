//! HTTP fallback: fetch what the swarm did not deliver, with Range requests, from the
//! controller's `/images/<sha256>.mlimg`.
//!
//! With the torrent's piece hashes known, only missing pieces are requested and each one is
//! checked before it is written, so bytes already verified (from the swarm or an earlier run)
//! are kept. Without them (the swarm never delivered metadata), the file is continued from its
//! length and the caller checks the whole file's sha256 at the end.

use super::metainfo::Pieces;
use reqwest::{header, StatusCode};
use std::path::Path;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// At most this many bytes per Range request, so a failure loses little.
const MAX_RUN_BYTES: u64 = 4 << 20;

/// Fill every piece marked `false` in `have`; `on_bytes` is told about each verified piece.
pub async fn fill_pieces(
    client: &reqwest::Client,
    url: &str,
    file: &Path,
    pieces: &Pieces,
    have: &mut [bool],
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<(), String> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    if f.metadata().await.map_err(|e| e.to_string())?.len() < pieces.total_len {
        f.set_len(pieces.total_len).await.map_err(|e| e.to_string())?;
    }
    let mut i = 0;
    while i < have.len() {
        if have[i] {
            i += 1;
            continue;
        }
        let first = i;
        let (start, mut end) = pieces.range(first);
        while i + 1 < have.len() && !have[i + 1] && pieces.range(i + 1).1 - start <= MAX_RUN_BYTES {
            i += 1;
            end = pieces.range(i).1;
        }
        let body = get_range(client, url, start, end).await?;
        for p in first..=i {
            let (s, e) = pieces.range(p);
            let data = &body[(s - start) as usize..(e - start) as usize];
            if !pieces.piece_ok(p, data) {
                return Err(format!("the HTTP server sent a corrupt piece {p}"));
            }
        }
        f.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| e.to_string())?;
        f.write_all(&body).await.map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        for slot in have.iter_mut().take(i + 1).skip(first) {
            *slot = true;
        }
        on_bytes(end - start);
        i += 1;
    }
    f.sync_all().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Continue `file` from its current length to the end of the resource.
pub async fn fetch_rest(
    client: &reqwest::Client,
    url: &str,
    file: &Path,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<(), String> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let len = f.metadata().await.map_err(|e| e.to_string())?.len();
    let mut req = client.get(url);
    if len > 0 {
        req = req.header(header::RANGE, format!("bytes={len}-"));
    }
    let mut resp = req.send().await.map_err(describe)?;
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::OK => {
            // The server ignored the range: start again from zero.
            f.set_len(0).await.map_err(|e| e.to_string())?;
        }
        StatusCode::RANGE_NOT_SATISFIABLE if len > 0 => return Ok(()),
        s => return Err(format!("HTTP {s} from {url}")),
    }
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        f.write_all(&chunk).await.map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        on_bytes(chunk.len() as u64);
    }
    f.sync_all().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn get_range(client: &reqwest::Client, url: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let resp = client
        .get(url)
        .header(header::RANGE, format!("bytes={start}-{}", end - 1))
        .send()
        .await
        .map_err(describe)?;
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        return Err(format!("HTTP {} for a Range request to {url}", resp.status()));
    }
    let body = resp.bytes().await.map_err(describe)?;
    if body.len() as u64 != end - start {
        return Err(format!("short Range response: {} of {} bytes", body.len(), end - start));
    }
    Ok(body.to_vec())
}

/// reqwest's top-level message hides the cause ("error sending request"); keep the chain.
fn describe(e: reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
