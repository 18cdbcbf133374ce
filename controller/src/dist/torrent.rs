//! Single-file v1 metainfo for a stored image.
//!
//! Built here rather than with `librqbit::create_torrent`: librqbit 9.1 appends the hash of an
//! empty piece when the file length is an exact multiple of the piece length, and strict clients
//! (and our own downloader) reject such a torrent because its piece count does not match the
//! length. The layout is deterministic in the file and its size, so a re-seeded image keeps its
//! info-hash and magnet URI.

use super::seeder::SeededTorrent;
use librqbit_sha1_wrapper::{ISha1, Sha1};
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Hash `file` in pieces of `piece_length` and build the metainfo announcing to `tracker`.
pub fn build(file: &Path, name: &str, piece_length: u32, tracker: &str) -> std::io::Result<SeededTorrent> {
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; piece_length as usize];
    let mut pieces = Vec::new();
    let mut length = 0u64;
    loop {
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..])? {
                0 => break,
                n => got += n,
            }
        }
        if got == 0 {
            break;
        }
        length += got as u64;
        let mut h = Sha1::new();
        h.update(&buf[..got]);
        pieces.extend_from_slice(&h.finish());
        if got < buf.len() {
            break;
        }
    }
    let mut info = HashMap::new();
    info.insert(b"length".to_vec(), Value::Int(length as i64));
    info.insert(b"name".to_vec(), Value::Bytes(name.as_bytes().to_vec()));
    info.insert(b"piece length".to_vec(), Value::Int(i64::from(piece_length)));
    info.insert(b"pieces".to_vec(), Value::Bytes(pieces));
    let info = Value::Dict(info);
    let info_bytes = encode(&info);
    let mut h = Sha1::new();
    h.update(&info_bytes);
    let info_hash = h.finish();
    let mut top = HashMap::new();
    top.insert(b"announce".to_vec(), Value::Bytes(tracker.as_bytes().to_vec()));
    top.insert(
        b"announce-list".to_vec(),
        Value::List(vec![Value::List(vec![Value::Bytes(tracker.as_bytes().to_vec())])]),
    );
    top.insert(b"created by".to_vec(), Value::Bytes(b"meshlift-controller".to_vec()));
    top.insert(b"info".to_vec(), info);
    Ok(SeededTorrent { info_hash, torrent_bytes: encode(&Value::Dict(top)) })
}

fn encode(v: &Value) -> Vec<u8> {
    // Encoding an in-memory Value cannot fail: no I/O, all keys are byte strings.
    serde_bencode::to_bytes(v).expect("bencoding a Value into memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_multiple_has_no_extra_piece_and_librqbit_agrees_on_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("img");
        std::fs::write(&f, vec![7u8; 64 * 1024]).unwrap();
        let m = build(&f, "img", 16 * 1024, "http://t/announce").unwrap();
        let t = librqbit::torrent_from_bytes(&m.torrent_bytes).unwrap();
        assert_eq!(t.info.data.pieces.0.len(), 4 * 20);
        assert_eq!(t.info.data.length, Some(64 * 1024));
        assert_eq!(t.info_hash.0, m.info_hash);
        std::fs::write(&f, vec![7u8; 64 * 1024 + 1]).unwrap();
        let m = build(&f, "img", 16 * 1024, "http://t/announce").unwrap();
        let t = librqbit::torrent_from_bytes(&m.torrent_bytes).unwrap();
        assert_eq!(t.info.data.pieces.0.len(), 5 * 20);
    }
}
