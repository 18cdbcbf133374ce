//! Fuzz the embedded tracker: announce query strings from any address, fed in sequence to one
//! tracker with small caps. Every query gets a peer list or a typed refusal, never a panic; the
//! table never outgrows its caps; responses are well-formed compact lists that bencode and decode.
//!
//! Input: records of `[addr selector][seconds][len][query bytes…]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlift_controller::dist::tracker::{failure_bencode, parse_announce, Tracker};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const MAX_PEERS: usize = 16;
const MAX_PER_IP: usize = 2;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut tracker = Tracker::with_caps(Duration::from_secs(30), Duration::from_secs(120), MAX_PEERS, MAX_PER_IP);
    // Two swarms are tracked; the info-hashes are the ones a query spells as 20 × 'a' / 20 × 'b'.
    tracker.track([b'a'; 20]);
    tracker.track([b'b'; 20]);
    let mut rest = data;
    while rest.len() >= 3 {
        let (sel, secs, len) = (rest[0], rest[1], rest[2] as usize);
        rest = &rest[3..];
        let take = len.min(rest.len());
        let query = String::from_utf8_lossy(&rest[..take]).into_owned();
        rest = &rest[take..];
        now += Duration::from_secs(u64::from(secs));
        let remote = match sel % 4 {
            0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, sel >> 2)),
            1 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(sel >> 2))),
            2 => IpAddr::V6(Ipv4Addr::new(192, 0, 2, sel >> 2).to_ipv6_mapped()),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        match parse_announce(&query, remote) {
            Ok(a) => match tracker.handle_announce(&a, now) {
                Ok(resp) => {
                    assert_eq!(resp.peers.len() % 6, 0);
                    assert_eq!(resp.peers6.len() % 18, 0);
                    assert!(resp.peers.len() / 6 + resp.peers6.len() / 18 <= a.numwant.max(1) * 2);
                    let bytes = resp.to_bencode();
                    serde_bencode::from_bytes::<serde_bencode::value::Value>(&bytes).expect("response bencodes");
                    // Loopback is exempt from the per-address cap, never from the swarm cap.
                    assert!(tracker.peer_count(&a.info_hash, now) <= MAX_PEERS);
                }
                Err(e) => {
                    serde_bencode::from_bytes::<serde_bencode::value::Value>(&failure_bencode(&e.to_string()))
                        .expect("failure bencodes");
                }
            },
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
