//! HTTP fallback: fetch what the swarm did not deliver, with Range requests, from the
//! controller's `/images/<sha256>.mlimg`.
//!
//! With the torrent's piece hashes known, only missing pieces are requested and each one is
//! checked before it is written, so bytes already verified (from the swarm or an earlier run)
//! are kept. Without them (the swarm never delivered metadata), the file is continued from its
//! length and the caller checks the whole file's sha256 at the end.
//!
//! Bodies are checked as they arrive: a server (or whatever answers at its address) that sends
//! more than was asked for is cut off at the first byte too many, so it can neither grow the
//! minion's memory (a Range body is held until its pieces are checked) nor fill its disk.

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

/// Continue `file` from its current length to the end of the resource, which is `image_len`
/// bytes long when the request said so (a longer body is refused as it arrives).
pub async fn fetch_rest(
    client: &reqwest::Client,
    url: &str,
    file: &Path,
    image_len: Option<u64>,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<(), String> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut len = f.metadata().await.map_err(|e| e.to_string())?.len();
    if image_len.is_some_and(|total| len > total) {
        // Longer than the image: not a prefix of it. Start again.
        f.set_len(0).await.map_err(|e| e.to_string())?;
        len = 0;
    }
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
            len = 0;
        }
        StatusCode::RANGE_NOT_SATISFIABLE if len > 0 => return Ok(()),
        s => return Err(format!("HTTP {s} from {url}")),
    }
    let mut body = BodyLimit::new(image_len.map(|total| total - len), &resp)?;
    let streamed: Result<(), String> = async {
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            body.take(&chunk)?;
            f.write_all(&chunk).await.map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            on_bytes(chunk.len() as u64);
        }
        Ok(())
    }
    .await;
    // tokio's `File` finishes a write in the background after `write_all` returns: wait for it
    // on every exit, so what was reported is on disk when we return (a body cut off for being
    // too long once left its last chunk still in flight, and the next attempt resumed from a
    // shorter file than the progress said).
    let flushed = f.flush().await.map_err(|e| format!("cannot write {}: {e}", file.display()));
    streamed?;
    flushed?;
    f.sync_all().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn get_range(client: &reqwest::Client, url: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let want = end - start;
    // Bounded by our own layout: runs of at most MAX_RUN_BYTES, or one piece of at most
    // MAX_PIECE_LENGTH (`Pieces` refuses more), never by what the server says.
    let capacity = usize::try_from(want).map_err(|_| format!("a Range of {want} bytes is too large"))?;
    let mut resp = client
        .get(url)
        .header(header::RANGE, format!("bytes={start}-{}", end - 1))
        .send()
        .await
        .map_err(describe)?;
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        return Err(format!("HTTP {} for a Range request to {url}", resp.status()));
    }
    let mut limit = BodyLimit::new(Some(want), &resp)?;
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        limit.take(&chunk)?;
        body.extend_from_slice(&chunk);
    }
    if body.len() as u64 != want {
        return Err(format!("short Range response: {} of {want} bytes", body.len()));
    }
    Ok(body)
}

/// The length a body may have, checked on the announced length before the body and on every
/// chunk as it arrives (a chunked or connection-delimited body announces nothing).
struct BodyLimit {
    max: Option<u64>,
    got: u64,
}

impl BodyLimit {
    fn new(max: Option<u64>, resp: &reqwest::Response) -> Result<BodyLimit, String> {
        if let (Some(max), Some(announced)) = (max, resp.content_length()) {
            if announced > max {
                return Err(format!("the HTTP server announces {announced} bytes where {max} were expected"));
            }
        }
        Ok(BodyLimit { max, got: 0 })
    }

    fn take(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.got = self.got.saturating_add(chunk.len() as u64);
        match self.max {
            Some(max) if self.got > max => {
                Err(format!("the HTTP server sent more than the {max} bytes expected; cut off"))
            }
            _ => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncReadExt;

    /// A server that answers every request with `head` and then up to `body_len` bytes, and
    /// counts what it managed to send before the client hung up.
    async fn server(head: &'static str, body_len: u64) -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/images/x.mlimg", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    if conn.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![0x5a; 64 << 10];
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64);
                        if conn.write_all(&chunk[..n as usize]).await.is_err() {
                            return;
                        }
                        counter.fetch_add(n, Ordering::Relaxed);
                        left -= n;
                    }
                });
            }
        });
        (url, sent)
    }

    const ENDLESS: u64 = 1 << 40;

    #[tokio::test]
    async fn a_range_body_longer_than_asked_is_cut_off_as_it_arrives() {
        // No Content-Length: the body ends when the connection does, so only counting stops it.
        let (url, sent) = server("HTTP/1.1 206 Partial Content\r\nConnection: close\r\n\r\n", ENDLESS).await;
        let started = Instant::now();
        let err = get_range(&reqwest::Client::new(), &url, 0, 1024).await.unwrap_err();
        assert!(err.contains("sent more than the 1024 bytes expected"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = sent.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sent.load(Ordering::Relaxed), before, "the client hung up; the server can send no more");
        assert!(before < 64 << 20, "{before} bytes sent before the client hung up");
    }

    #[tokio::test]
    async fn a_range_response_announcing_more_is_refused_before_its_body() {
        let head = "HTTP/1.1 206 Partial Content\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n";
        let (url, _) = server(head, ENDLESS).await;
        let err = get_range(&reqwest::Client::new(), &url, 0, 1024).await.unwrap_err();
        assert!(err.contains("announces 1073741824 bytes where 1024 were expected"), "{err}");
    }

    #[tokio::test]
    async fn a_whole_file_body_longer_than_the_image_never_reaches_the_disk() {
        let (url, _) = server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", ENDLESS).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.mlimg");
        let mut seen = 0u64;
        let err = fetch_rest(&reqwest::Client::new(), &url, &file, Some(100_000), &mut |n| seen += n)
            .await
            .unwrap_err();
        assert!(err.contains("sent more than the 100000 bytes expected"), "{err}");
        let len = std::fs::metadata(&file).unwrap().len();
        assert!(len <= 100_000 && seen == len, "{len} bytes on disk, {seen} reported");
    }

    #[tokio::test]
    async fn a_body_of_the_expected_length_is_accepted() {
        let (url, _) = server("HTTP/1.1 206 Partial Content\r\nConnection: close\r\n\r\n", 1024).await;
        assert_eq!(get_range(&reqwest::Client::new(), &url, 0, 1024).await.unwrap(), vec![0x5a; 1024]);
    }
}
