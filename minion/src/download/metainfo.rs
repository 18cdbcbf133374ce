//! What the downloader knows about the image's torrent: piece size and SHA-1 piece hashes.
//!
//! The piece hashes are what make HTTP fallback resumable: bytes are kept only for pieces whose
//! hash matches, whoever delivered them, so a half-finished swarm download (or a download cut by
//! a restart) is continued over HTTP without trusting a single unverified byte.

use librqbit_sha1_wrapper::{ISha1, Sha1};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// The largest piece length accepted from torrent metadata. A piece is held in memory whole
/// (checked before it is written, read back to find verified pieces), and the length comes from
/// the swarm: without a bound a peer's metadata could size a multi-GiB allocation. The
/// controller's torrents use pieces of at most 4 MiB (`piece_length_for`).
pub const MAX_PIECE_LENGTH: u64 = 16 << 20;

/// Piece layout of a single-file torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pieces {
    pub info_hash: [u8; 20],
    /// File name inside the torrent (the controller uses `<sha256>.mlimg`).
    pub name: String,
    pub piece_length: u64,
    pub total_len: u64,
    pub hashes: Vec<[u8; 20]>,
}

/// The metainfo cannot be used: the swarm or the cache gave us something we cannot download.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unusable torrent metainfo: {0}")]
pub struct BadMetainfo(pub String);

impl Pieces {
    /// Parse `.torrent` bytes; only single-file v1 torrents are images.
    pub fn from_torrent_bytes(bytes: &[u8]) -> Result<Pieces, BadMetainfo> {
        let t = librqbit::torrent_from_bytes(bytes).map_err(|e| BadMetainfo(e.to_string()))?;
        let info = &t.info.data;
        let total_len = info.length.ok_or_else(|| BadMetainfo("more than one file in the torrent".into()))?;
        let name = info
            .name
            .as_ref()
            .and_then(|n| std::str::from_utf8(n.0).ok())
            .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains('\\') && *n != "..")
            .ok_or_else(|| BadMetainfo("missing or unsafe file name".into()))?
            .to_string();
        let piece_length = u64::from(info.piece_length);
        if piece_length == 0 || info.pieces.0.len() % 20 != 0 {
            return Err(BadMetainfo("bad piece length or piece hash list".into()));
        }
        if piece_length > MAX_PIECE_LENGTH {
            return Err(BadMetainfo(format!(
                "piece length {piece_length} is above the {MAX_PIECE_LENGTH} bytes this node accepts"
            )));
        }
        let hashes: Vec<[u8; 20]> = info
            .pieces
            .0
            .chunks_exact(20)
            .map(|c| c.try_into().expect("chunks_exact(20) yields 20-byte slices"))
            .collect();
        if hashes.len() as u64 != total_len.div_ceil(piece_length) {
            return Err(BadMetainfo("piece count does not match the file length".into()));
        }
        Ok(Pieces { info_hash: t.info_hash.0, name, piece_length, total_len, hashes })
    }

    pub fn count(&self) -> usize {
        self.hashes.len()
    }

    /// Byte range `[start, end)` of piece `i`.
    pub fn range(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.piece_length;
        (start, (start + self.piece_length).min(self.total_len))
    }

    pub fn piece_ok(&self, i: usize, data: &[u8]) -> bool {
        let mut h = Sha1::new();
        h.update(data);
        h.finish() == self.hashes[i]
    }

    /// Which pieces of `file` already hold the right bytes (a missing or short file has none).
    pub fn verified_on_disk(&self, file: &Path) -> std::io::Result<Vec<bool>> {
        let mut have = vec![false; self.count()];
        let mut f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(have),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; self.piece_length as usize];
        for (i, slot) in have.iter_mut().enumerate() {
            let (s, e) = self.range(i);
            let want = (e - s) as usize;
            if read_full(&mut f, &mut buf[..want])? < want {
                break;
            }
            *slot = self.piece_ok(i, &buf[..want]);
        }
        Ok(have)
    }
}

/// SHA-256 of a whole file (the image identity the controller asked for).
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// The offset this node starts reading the swarm at: piece-aligned, spread over the file by a
/// hash of the node's identity. Nodes that start together then ask for different pieces first and
/// have something to trade at once; librqbit on its own fetches in index order (lockstep).
pub fn start_offset(identity: &[u8], pieces: &Pieces) -> u64 {
    let h: [u8; 32] = Sha256::digest(identity).into();
    let x = u64::from_le_bytes(h[..8].try_into().expect("8 bytes of a 32-byte digest"));
    (x % pieces.count().max(1) as u64) * pieces.piece_length
}

/// This node's slice of the pieces when the controller told it its place in the batch: node `i`
/// of `n` takes pieces `i·count/n .. (i+1)·count/n`, so the slices are distinct and together
/// cover the image. It fetches exactly these from the seeder and the rest from its peers.
pub fn slice(index: u32, size: u32, pieces: &Pieces) -> Option<std::ops::Range<usize>> {
    if size == 0 || index >= size {
        return None;
    }
    let count = pieces.count() as u64;
    let at = |i: u32| (u64::from(i) * count / u64::from(size)) as usize;
    Some(at(index)..at(index + 1))
}

/// The start of this node's slice (see [`slice`]) as a byte offset.
pub fn slice_offset(index: u32, size: u32, pieces: &Pieces) -> Option<u64> {
    slice(index, size, pieces).map(|r| r.start as u64 * pieces.piece_length)
}

/// Where node `index` of `size` starts when it uses the seeder again: at its part of the pieces
/// still missing (`have[i]` false), node `i` taking the one at `i·missing/size`. Nodes that miss
/// the same pieces (the swarm has converged and lacks what only the seeder holds, e.g. the slice
/// of a node that never came) then ask the seeder for different ones. `None`: nothing missing or
/// no place in a batch.
pub fn part_of_missing(have: &[bool], index: u32, size: u32) -> Option<usize> {
    if size == 0 || index >= size {
        return None;
    }
    let missing: Vec<usize> = (0..have.len()).filter(|i| !have[*i]).collect();
    let k = (u64::from(index) * missing.len() as u64 / u64::from(size)) as usize;
    missing.get(k).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_for(data: &[u8], piece_length: u64) -> Pieces {
        let hashes = data
            .chunks(piece_length as usize)
            .map(|c| {
                let mut h = Sha1::new();
                h.update(c);
                h.finish()
            })
            .collect();
        Pieces { info_hash: [0; 20], name: "x".into(), piece_length, total_len: data.len() as u64, hashes }
    }

    /// A one-piece single-file torrent, bencoded by hand (keys sorted, as bencode requires).
    fn torrent(len: u64, piece_length: u64) -> Vec<u8> {
        let mut info =
            format!("d6:lengthi{len}e4:name3:img12:piece lengthi{piece_length}e6:pieces20:").into_bytes();
        info.extend_from_slice(&[0u8; 20]);
        info.push(b'e');
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&info);
        t.push(b'e');
        t
    }

    #[test]
    fn a_piece_length_above_the_bound_is_refused() {
        let ok = Pieces::from_torrent_bytes(&torrent(1000, 16 << 10)).unwrap();
        assert_eq!((ok.piece_length, ok.count()), (16 << 10, 1));
        Pieces::from_torrent_bytes(&torrent(1000, MAX_PIECE_LENGTH)).unwrap();
        let err = Pieces::from_torrent_bytes(&torrent(1000, MAX_PIECE_LENGTH * 2)).unwrap_err();
        assert!(err.0.contains("piece length 33554432 is above"), "{err}");
    }

    #[test]
    fn verified_on_disk_finds_good_pieces_only() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let p = pieces_for(&data, 1024);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("img");
        assert_eq!(p.verified_on_disk(&f).unwrap(), vec![false; 10]);
        let mut bad = data.clone();
        bad[3000] ^= 1;
        bad.truncate(9500);
        std::fs::write(&f, &bad).unwrap();
        let have = p.verified_on_disk(&f).unwrap();
        assert_eq!(have, vec![true, true, false, true, true, true, true, true, true, false]);
        std::fs::write(&f, &data).unwrap();
        assert!(p.verified_on_disk(&f).unwrap().iter().all(|h| *h));
    }

    #[test]
    fn slices_are_distinct_and_cover_the_file() {
        let p = pieces_for(&vec![7u8; 100 * 16], 16);
        let offs: Vec<u64> = (0..8).map(|i| slice_offset(i, 8, &p).unwrap()).collect();
        assert_eq!(offs[0], 0);
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "{offs:?}");
        assert!(offs.iter().all(|o| o % 16 == 0 && *o < 100 * 16));
        assert_eq!(slice_offset(3, 0, &p), None);
        assert_eq!(slice_offset(8, 8, &p), None);
        let slices: Vec<_> = (0..8).map(|i| slice(i, 8, &p).unwrap()).collect();
        assert_eq!(slices[0].start, 0);
        assert_eq!(slices[7].end, 100);
        assert!(slices.windows(2).all(|w| w[0].end == w[1].start && !w[0].is_empty()), "{slices:?}");
        let more = (0..150).map(|i| slice(i, 150, &p).unwrap()).filter(|r| !r.is_empty()).count();
        assert_eq!(more, 100, "more nodes than pieces: some slices are empty");
    }

    #[test]
    fn parts_of_the_missing_pieces_differ_between_nodes() {
        let mut have = vec![true; 100];
        for i in (10..20).chain(60..70) {
            have[i] = false;
        }
        let starts: Vec<usize> = (0..10).map(|i| part_of_missing(&have, i, 10).unwrap()).collect();
        assert_eq!(starts, vec![10, 12, 14, 16, 18, 60, 62, 64, 66, 68]);
        let starts: Vec<usize> = (0..40).map(|i| part_of_missing(&have, i, 40).unwrap()).collect();
        assert_eq!(
            starts.iter().collect::<std::collections::HashSet<_>>().len(),
            20,
            "more nodes than pieces"
        );
        assert_eq!(part_of_missing(&[true; 5], 0, 3), None, "nothing missing");
        assert_eq!(part_of_missing(&have, 3, 0), None);
    }

    #[test]
    fn start_offsets_are_aligned_and_spread() {
        let p = pieces_for(&vec![0u8; 64 * 1024], 1024);
        let offs: std::collections::HashSet<u64> =
            (0..20).map(|i| start_offset(format!("node-{i}").as_bytes(), &p)).collect();
        assert!(offs.iter().all(|o| o % 1024 == 0 && *o < 64 * 1024));
        assert!(offs.len() >= 15, "offsets should differ between nodes: {offs:?}");
    }
}
