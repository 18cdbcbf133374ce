//! Embedded BitTorrent HTTP tracker: a pure core (no sockets, no clock) and its query parsing.
//!
//! Only the info-hashes of images in the store are tracked, so the controller cannot be used as
//! an open tracker for arbitrary swarms. librqbit 9.1 only ever announces `event=started` (never
//! `completed` or `stopped`), so peers are expired by time: a peer that has not announced for
//! `peer_expiry` is forgotten. Responses are always compact (BEP 23: `peers` holds 6 bytes per
//! IPv4 peer, BEP 7: `peers6` 18 bytes per IPv6 peer), which every client we meet understands.

use serde_bencode::value::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A 20-byte BitTorrent v1 info-hash.
pub type InfoHash = [u8; 20];

/// Peers handed out per announce when the client does not say (`numwant`).
const DEFAULT_NUMWANT: usize = 50;
/// Upper bound on `numwant`, so one announce cannot make a huge response.
const MAX_NUMWANT: usize = 200;
/// Peers kept per swarm: a mesh of 10 000 nodes fits several times over; beyond it new peers get
/// answers but are not listed, so announces with made-up peer ids cannot grow the table.
pub const MAX_PEERS_PER_SWARM: usize = 65_536;
/// Peer ids kept per IP address and swarm: a node has one downloader; a client cycling peer ids
/// only ever replaces its own oldest entry. An IPv6 address counts by its /64: a host owns a
/// whole /64 (SLAAC, privacy addresses; a Terragraph node gets one per node) and could otherwise
/// announce from a fresh address each time. Loopback is exempt: every node of meshsim (and of the
/// tests) runs on 127.0.0.1 or ::1, and a process on the controller's own host is trusted anyway.
pub const MAX_PEERS_PER_IP: usize = 8;

/// Peer-id prefix of the controller's own seeder (set in `seeder.rs`).
pub const CONTROLLER_PEER_ID_PREFIX: &[u8; 8] = b"-MLC010-";
/// Peer-id prefix of meshlift minions (the minion's downloader sets the same bytes).
pub const MINION_PEER_ID_PREFIX: &[u8; 8] = b"-MLM010-";

/// The controller's seeder is a last resort for minions: they get it in `initial_peers` and
/// decide themselves when to fetch from it (their own share of pieces, or when the swarm stalls).
/// Listing it to them here would have every leecher ask the capped seeder for pieces other
/// leechers already hold; for the same reason the seeder is not told about minions (it would
/// connect out to them). Other clients (transmission, …) and the seeder see each other as usual.
fn hidden_from(requester: &[u8; 20], peer: &[u8; 20]) -> bool {
    let (minion, controller) = (MINION_PEER_ID_PREFIX, CONTROLLER_PEER_ID_PREFIX);
    (requester.starts_with(minion) && peer.starts_with(controller))
        || (requester.starts_with(controller) && peer.starts_with(minion))
}

/// One parsed announce (BEP 3 parameters we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// Address the peer accepts connections on (its IP with the announced port).
    pub addr: SocketAddr,
    pub numwant: usize,
    /// `left=0`: the peer has the whole image (counted as a seeder).
    pub seeding: bool,
    pub stopped: bool,
}

/// Why an announce is refused; the text goes back as bencoded `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The client sent a malformed query (missing or wrong-length parameter).
    #[error("malformed announce: {0}")]
    Malformed(String),
    /// The info-hash is not one of the images this controller serves.
    #[error("unknown info_hash: this tracker only tracks images in the controller's store")]
    UnknownInfoHash,
}

/// Compact peer lists for one announce response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    pub interval: Duration,
    pub complete: u32,
    pub incomplete: u32,
    /// BEP 23: 4-byte IPv4 + 2-byte port per peer.
    pub peers: Vec<u8>,
    /// BEP 7: 16-byte IPv6 + 2-byte port per peer.
    pub peers6: Vec<u8>,
}

#[derive(Debug, Clone)]
struct PeerEntry {
    addr: SocketAddr,
    seeding: bool,
    last_seen: Instant,
}

/// The tracker's state: known swarms and their peers. Time is passed in by the caller and must
/// never go backwards between calls.
#[derive(Debug)]
pub struct Tracker {
    interval: Duration,
    peer_expiry: Duration,
    swarms: HashMap<InfoHash, BTreeMap<[u8; 20], PeerEntry>>,
    max_peers: usize,
    max_per_ip: usize,
}

impl Tracker {
    /// A tracker with the default caps ([`MAX_PEERS_PER_SWARM`], [`MAX_PEERS_PER_IP`]).
    pub fn new(interval: Duration, peer_expiry: Duration) -> Self {
        Self::with_caps(interval, peer_expiry, MAX_PEERS_PER_SWARM, MAX_PEERS_PER_IP)
    }

    /// A tracker keeping at most `max_peers` peers per swarm and `max_per_ip` per address.
    pub fn with_caps(interval: Duration, peer_expiry: Duration, max_peers: usize, max_per_ip: usize) -> Self {
        Tracker { interval, peer_expiry, swarms: HashMap::new(), max_peers, max_per_ip: max_per_ip.max(1) }
    }

    /// Start tracking a swarm (called when an image is added or re-seeded).
    pub fn track(&mut self, info_hash: InfoHash) {
        self.swarms.entry(info_hash).or_default();
    }

    /// Stop tracking a swarm (image deleted): later announces for it are refused.
    pub fn untrack(&mut self, info_hash: &InfoHash) {
        self.swarms.remove(info_hash);
    }

    pub fn tracked(&self) -> HashSet<InfoHash> {
        self.swarms.keys().copied().collect()
    }

    /// Live peers of a swarm at `now` (expired ones not counted).
    pub fn peer_count(&self, info_hash: &InfoHash, now: Instant) -> usize {
        self.swarms.get(info_hash).map_or(0, |s| {
            s.values().filter(|p| now.saturating_duration_since(p.last_seen) < self.peer_expiry).count()
        })
    }

    /// Record the announce and answer with other live peers of the swarm.
    pub fn handle_announce(&mut self, a: &Announce, now: Instant) -> Result<AnnounceResponse, AnnounceError> {
        let expiry = self.peer_expiry;
        let swarm = self.swarms.get_mut(&a.info_hash).ok_or(AnnounceError::UnknownInfoHash)?;
        swarm.retain(|_, p| now.saturating_duration_since(p.last_seen) < expiry);
        if a.stopped {
            swarm.remove(&a.peer_id);
        } else if swarm.contains_key(&a.peer_id)
            || make_room(swarm, a.addr.ip(), self.max_peers, self.max_per_ip)
        {
            swarm.insert(a.peer_id, PeerEntry { addr: a.addr, seeding: a.seeding, last_seen: now });
        }
        let mut resp = AnnounceResponse { interval: self.interval, ..Default::default() };
        for p in swarm.values() {
            if p.seeding {
                resp.complete += 1;
            } else {
                resp.incomplete += 1;
            }
        }
        // Peers of the requester's own address family first (those it can surely reach: it just
        // reached us over that family), then the other family to fill `numwant` (a dual-stack
        // client may reach them; librqbit announces once per tracker URL, not once per local
        // address as BEP 7 suggests). Within a family, start at a position derived from the
        // requester's id, so that with more peers than `numwant` different peers learn different
        // subsets (deterministic, no RNG).
        let mut budget = a.numwant;
        for same_family in [true, false] {
            let others: Vec<&PeerEntry> = swarm
                .iter()
                .filter(|(id, p)| {
                    **id != a.peer_id
                        && !hidden_from(&a.peer_id, id)
                        && (p.addr.is_ipv4() == a.addr.is_ipv4()) == same_family
                })
                .map(|(_, p)| p)
                .collect();
            if others.is_empty() {
                continue;
            }
            let start = usize::from(a.peer_id[19]) % others.len();
            let take = others.len().min(budget);
            budget -= take;
            for p in others.iter().cycle().skip(start).take(take) {
                match p.addr {
                    SocketAddr::V4(v4) => {
                        resp.peers.extend_from_slice(&v4.ip().octets());
                        resp.peers.extend_from_slice(&v4.port().to_be_bytes());
                    }
                    SocketAddr::V6(v6) => {
                        resp.peers6.extend_from_slice(&v6.ip().octets());
                        resp.peers6.extend_from_slice(&v6.port().to_be_bytes());
                    }
                }
            }
        }
        Ok(resp)
    }
}

/// Whether a new peer from `ip` may be listed: at most `max_per_ip` per address (per /64 for
/// IPv6; the oldest entry gives way) and `max_peers` in all.
fn make_room(
    swarm: &mut BTreeMap<[u8; 20], PeerEntry>,
    ip: IpAddr,
    max_peers: usize,
    max_per_ip: usize,
) -> bool {
    if !ip.is_loopback() {
        let owner = address_owner(ip);
        let mut same: Vec<([u8; 20], Instant)> = swarm
            .iter()
            .filter(|(_, p)| address_owner(p.addr.ip()) == owner)
            .map(|(id, p)| (*id, p.last_seen))
            .collect();
        if same.len() >= max_per_ip {
            same.sort_by_key(|(_, seen)| *seen);
            for (id, _) in &same[..=same.len() - max_per_ip] {
                swarm.remove(id);
            }
        }
    }
    swarm.len() < max_peers
}

/// What the per-address cap counts by: an IPv4 address, or an IPv6 address's /64.
fn address_owner(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl AnnounceResponse {
    /// Bencoded response body.
    pub fn to_bencode(&self) -> Vec<u8> {
        let mut d = HashMap::new();
        d.insert(b"interval".to_vec(), Value::Int(self.interval.as_secs() as i64));
        // librqbit re-announces at `min interval` when given: keep it equal to `interval`.
        d.insert(b"min interval".to_vec(), Value::Int(self.interval.as_secs() as i64));
        d.insert(b"complete".to_vec(), Value::Int(i64::from(self.complete)));
        d.insert(b"incomplete".to_vec(), Value::Int(i64::from(self.incomplete)));
        d.insert(b"peers".to_vec(), Value::Bytes(self.peers.clone()));
        d.insert(b"peers6".to_vec(), Value::Bytes(self.peers6.clone()));
        encode(Value::Dict(d))
    }
}

/// Bencoded `failure reason` body (BEP 3), sent with status 200 as clients expect.
pub fn failure_bencode(reason: &str) -> Vec<u8> {
    let mut d = HashMap::new();
    d.insert(b"failure reason".to_vec(), Value::Bytes(reason.as_bytes().to_vec()));
    encode(Value::Dict(d))
}

fn encode(v: Value) -> Vec<u8> {
    // Encoding an in-memory Value into a Vec cannot fail (no I/O, keys are byte strings).
    serde_bencode::to_bytes(&v).expect("bencoding a Value into memory cannot fail")
}

/// Parse the raw (still percent-encoded) query string of an announce. `info_hash` and `peer_id`
/// are arbitrary bytes, so the query is decoded byte-wise with `percent-encoding` rather than as
/// UTF-8 text. `remote` is the address the request came from; the `ip` parameter is ignored (a
/// peer could otherwise point the swarm at a third party).
pub fn parse_announce(raw_query: &str, remote: IpAddr) -> Result<Announce, AnnounceError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut numwant = DEFAULT_NUMWANT;
    let mut left = None;
    let mut stopped = false;
    for pair in raw_query.as_bytes().split(|b| *b == b'&') {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = decode(kv.next().unwrap_or_default());
        let value = decode(kv.next().unwrap_or_default());
        match key.as_slice() {
            b"info_hash" => info_hash = Some(to20(&value, "info_hash")?),
            b"peer_id" => peer_id = Some(to20(&value, "peer_id")?),
            b"port" => port = Some(parse_num::<u16>(&value, "port")?),
            b"numwant" => numwant = parse_num::<usize>(&value, "numwant")?.min(MAX_NUMWANT),
            b"left" => left = Some(parse_num::<u64>(&value, "left")?),
            b"event" => stopped = value == b"stopped",
            _ => {}
        }
    }
    let info_hash = info_hash.ok_or_else(|| AnnounceError::Malformed("missing info_hash".into()))?;
    let peer_id = peer_id.ok_or_else(|| AnnounceError::Malformed("missing peer_id".into()))?;
    let port = port.ok_or_else(|| AnnounceError::Malformed("missing port".into()))?;
    if port == 0 {
        return Err(AnnounceError::Malformed("port 0".into()));
    }
    let ip = match remote {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    };
    Ok(Announce {
        info_hash,
        peer_id,
        addr: SocketAddr::new(ip, port),
        numwant,
        seeding: left == Some(0),
        stopped,
    })
}

/// `application/x-www-form-urlencoded` decoding of one key or value, as bytes.
fn decode(raw: &[u8]) -> Vec<u8> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_encoding::percent_decode(&plus_as_space).collect()
}

fn to20(v: &[u8], what: &str) -> Result<[u8; 20], AnnounceError> {
    v.try_into().map_err(|_| AnnounceError::Malformed(format!("{what} must be 20 bytes, got {}", v.len())))
}

fn parse_num<T: std::str::FromStr>(v: &[u8], what: &str) -> Result<T, AnnounceError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AnnounceError::Malformed(format!("{what} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn enc(b: &[u8]) -> String {
        percent_encoding::percent_encode(b, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn query(ih: &[u8; 20], id: &[u8; 20], port: u16, left: u64) -> String {
        format!(
            "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1&event=started",
            enc(ih),
            enc(id)
        )
    }

    #[test]
    fn parses_raw_byte_info_hash() {
        let ih: [u8; 20] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(200));
        let id = [b'-'; 20];
        let a = parse_announce(&query(&ih, &id, 6881, 5), "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(a.info_hash, ih);
        assert_eq!(a.addr, "127.0.0.1:6881".parse().unwrap());
        assert!(!a.seeding);
    }

    #[test]
    fn rejects_short_info_hash_and_missing_port() {
        let q = format!("info_hash={}&peer_id={}&port=1", enc(&[1; 19]), enc(&[2; 20]));
        assert!(matches!(parse_announce(&q, "::1".parse().unwrap()), Err(AnnounceError::Malformed(_))));
        let q = format!("info_hash={}&peer_id={}", enc(&[1; 20]), enc(&[2; 20]));
        assert!(matches!(parse_announce(&q, "::1".parse().unwrap()), Err(AnnounceError::Malformed(_))));
    }

    #[test]
    fn mapped_v4_is_reported_as_v4() {
        let q = query(&[1; 20], &[2; 20], 7000, 0);
        let a = parse_announce(&q, "::ffff:10.0.0.7".parse().unwrap()).unwrap();
        assert_eq!(a.addr, "10.0.0.7:7000".parse().unwrap());
    }

    fn with_prefix(prefix: &[u8; 8], last: u8) -> [u8; 20] {
        let mut id = [last; 20];
        id[..8].copy_from_slice(prefix);
        id
    }

    #[test]
    fn controller_seeder_and_minions_are_hidden_from_each_other() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(30), Duration::from_secs(90));
        let ih = [7u8; 20];
        t.track(ih);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let seeder =
            parse_announce(&query(&ih, &with_prefix(CONTROLLER_PEER_ID_PREFIX, 1), 7000, 0), lo).unwrap();
        let minion =
            parse_announce(&query(&ih, &with_prefix(MINION_PEER_ID_PREFIX, 2), 7001, 9), lo).unwrap();
        let other = parse_announce(&query(&ih, &[3; 20], 7002, 9), lo).unwrap();
        t.handle_announce(&seeder, t0).unwrap();
        t.handle_announce(&minion, t0).unwrap();
        let r = t.handle_announce(&other, t0).unwrap();
        assert_eq!(r.peers.len(), 12, "another client sees the seeder and the minion");
        let r = t.handle_announce(&minion, t0).unwrap();
        assert_eq!(r.peers, vec![127, 0, 0, 1, 0x1b, 0x5a], "a minion sees the other client only");
        let r = t.handle_announce(&seeder, t0).unwrap();
        assert_eq!(r.peers, vec![127, 0, 0, 1, 0x1b, 0x5a], "the seeder sees the other client only");
        assert_eq!((r.complete, r.incomplete), (1, 2));
    }

    #[test]
    fn unknown_swarm_is_refused_and_peers_are_compact_and_expire() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(30), Duration::from_secs(90));
        let ih = [9u8; 20];
        let a1 = parse_announce(&query(&ih, &[1; 20], 7001, 10), "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(t.handle_announce(&a1, t0), Err(AnnounceError::UnknownInfoHash));
        t.track(ih);
        let r1 = t.handle_announce(&a1, t0).unwrap();
        assert!(r1.peers.is_empty(), "a peer is never told about itself");
        let a2 = parse_announce(&query(&ih, &[2; 20], 7002, 0), IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap();
        let r2 = t.handle_announce(&a2, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(r2.peers, vec![127, 0, 0, 1, 0x1b, 0x59]);
        assert_eq!((r2.complete, r2.incomplete), (1, 1));
        let r1 = t.handle_announce(&a1, t0 + Duration::from_secs(20)).unwrap();
        let mut want6 = Ipv6Addr::LOCALHOST.octets().to_vec();
        want6.extend_from_slice(&7002u16.to_be_bytes());
        assert_eq!(r1.peers6, want6);
        // a2 silent for 90 s: expired.
        let r1 = t.handle_announce(&a1, t0 + Duration::from_secs(101)).unwrap();
        assert!(r1.peers6.is_empty());
        assert_eq!(t.peer_count(&ih, t0 + Duration::from_secs(101)), 1);
    }

    #[test]
    fn response_is_bencoded_with_binary_peers() {
        let r = AnnounceResponse {
            interval: Duration::from_secs(30),
            complete: 1,
            incomplete: 0,
            peers: vec![127, 0, 0, 1, 0x1b, 0x59],
            peers6: vec![],
        };
        let b = r.to_bencode();
        let v: Value = serde_bencode::from_bytes(&b).unwrap();
        let Value::Dict(d) = v else { panic!("not a dict") };
        assert_eq!(d.get(&b"peers"[..]), Some(&Value::Bytes(vec![127, 0, 0, 1, 0x1b, 0x59])));
        assert_eq!(d.get(&b"interval"[..]), Some(&Value::Int(30)));
        assert!(failure_bencode("nope").starts_with(b"d14:failure reason4:nope"));
    }

    #[test]
    fn ipv6_peers_go_in_compact_peers6_and_ipv4_peers_in_peers() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(30), Duration::from_secs(90));
        let ih = [5u8; 20];
        t.track(ih);
        let v6 = parse_announce(&query(&ih, &[1; 20], 7001, 9), "fd00::7".parse().unwrap()).unwrap();
        let v4 = parse_announce(&query(&ih, &[2; 20], 7002, 9), "10.0.0.2".parse().unwrap()).unwrap();
        t.handle_announce(&v6, t0).unwrap();
        t.handle_announce(&v4, t0).unwrap();
        let me = parse_announce(&query(&ih, &[3; 20], 7003, 9), "fd00::3".parse().unwrap()).unwrap();
        let r = t.handle_announce(&me, t0).unwrap();
        let mut want6: Vec<u8> = "fd00::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        want6.extend_from_slice(&7001u16.to_be_bytes());
        assert_eq!(r.peers6, want6, "18 bytes: 16 of address, 2 of port (BEP 7)");
        assert_eq!(r.peers, vec![10, 0, 0, 2, 0x1b, 0x5a], "6 bytes: 4 of address, 2 of port (BEP 23)");
        // Bencoded under both keys, as librqbit reads them.
        let Value::Dict(d) = serde_bencode::from_bytes::<Value>(&r.to_bencode()).unwrap() else { panic!() };
        assert_eq!(d.get(&b"peers6"[..]), Some(&Value::Bytes(want6)));
    }

    #[test]
    fn the_announcing_family_is_served_first_when_numwant_is_short() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(30), Duration::from_secs(90));
        let ih = [6u8; 20];
        t.track(ih);
        for i in 0..3u8 {
            let v4 = format!("10.0.0.{}", i + 1);
            let v6 = format!("fd00::{}", i + 1);
            t.handle_announce(
                &parse_announce(&query(&ih, &[10 + i; 20], 7000, 9), v4.parse().unwrap()).unwrap(),
                t0,
            )
            .unwrap();
            t.handle_announce(
                &parse_announce(&query(&ih, &[20 + i; 20], 7000, 9), v6.parse().unwrap()).unwrap(),
                t0,
            )
            .unwrap();
        }
        let ask = |ip: &str, numwant: usize| {
            let mut a = parse_announce(&query(&ih, &[99; 20], 7009, 9), ip.parse().unwrap()).unwrap();
            a.numwant = numwant;
            a
        };
        // An IPv6 client asking for 4 gets the 3 IPv6 peers and 1 IPv4 peer.
        let r = t.handle_announce(&ask("fd00::99", 4), t0).unwrap();
        assert_eq!((r.peers6.len() / 18, r.peers.len() / 6), (3, 1));
        // An IPv4 client (same peer id, now from IPv4) asking for 2 gets IPv4 peers only.
        let r = t.handle_announce(&ask("10.0.0.99", 2), t0).unwrap();
        assert_eq!((r.peers.len() / 6, r.peers6.len()), (2, 0));
        // With room for everyone, everyone is listed.
        let r = t.handle_announce(&ask("fd00::99", 50), t0).unwrap();
        assert_eq!((r.peers6.len() / 18, r.peers.len() / 6), (3, 3));
    }

    #[test]
    fn an_ipv6_host_cycling_addresses_in_its_64_is_capped_like_one_address() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::from_secs(30), Duration::from_secs(90));
        let ih = [8u8; 20];
        t.track(ih);
        for i in 0..100u32 {
            let ip = format!("fd00:1:2:3::{:x}", i + 1);
            let mut id = [b'y'; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let a = parse_announce(&query(&ih, &id, 7000, 9), ip.parse().unwrap()).unwrap();
            t.handle_announce(&a, t0 + Duration::from_millis(i.into())).unwrap();
        }
        assert_eq!(t.peer_count(&ih, t0 + Duration::from_secs(1)), MAX_PEERS_PER_IP);
        // The next /64 is another node and gets its own entries; ::1 is exempt like 127.0.0.1.
        let a = parse_announce(&query(&ih, &[1; 20], 7000, 9), "fd00:1:2:4::1".parse().unwrap()).unwrap();
        t.handle_announce(&a, t0 + Duration::from_secs(1)).unwrap();
        for i in 0..20u8 {
            let a = parse_announce(&query(&ih, &[100 + i; 20], 7000, 9), "::1".parse().unwrap()).unwrap();
            t.handle_announce(&a, t0 + Duration::from_secs(1)).unwrap();
        }
        assert_eq!(t.peer_count(&ih, t0 + Duration::from_secs(1)), MAX_PEERS_PER_IP + 1 + 20);
    }

    #[test]
    fn the_peer_table_is_capped_per_address_and_per_swarm() {
        let ih = [9u8; 20];
        const SWARM: usize = 300;
        let mut t =
            Tracker::with_caps(Duration::from_secs(30), Duration::from_secs(120), SWARM, MAX_PEERS_PER_IP);
        t.track(ih);
        let t0 = Instant::now();
        let announce = |id: u32, ip: &str| Announce {
            info_hash: ih,
            peer_id: std::array::from_fn(|i| if i < 4 { id.to_be_bytes()[i] } else { b'x' }),
            addr: SocketAddr::new(ip.parse().unwrap(), 6881),
            numwant: 50,
            seeding: false,
            stopped: false,
        };
        // One address cycling peer ids keeps at most MAX_PEERS_PER_IP entries, its newest.
        for id in 0..1000u32 {
            t.handle_announce(&announce(id, "10.0.0.7"), t0 + Duration::from_millis(id.into())).unwrap();
        }
        assert_eq!(t.peer_count(&ih, t0 + Duration::from_secs(1)), MAX_PEERS_PER_IP);
        // Another address is not crowded out by it.
        t.handle_announce(&announce(5000, "10.0.0.8"), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(t.peer_count(&ih, t0 + Duration::from_secs(1)), MAX_PEERS_PER_IP + 1);
        // Loopback (meshsim) is exempt from the per-address cap, not from the swarm cap.
        let now = t0 + Duration::from_secs(2);
        for id in 10_000..10_000 + SWARM as u32 {
            t.handle_announce(&announce(id, "127.0.0.1"), now).unwrap();
        }
        assert_eq!(t.peer_count(&ih, now), SWARM);
        // A peer beyond the cap still gets an answer.
        let r = t.handle_announce(&announce(1, "10.0.0.9"), now).unwrap();
        assert!(!r.peers.is_empty());
        assert_eq!(t.peer_count(&ih, now), SWARM);
    }
}
