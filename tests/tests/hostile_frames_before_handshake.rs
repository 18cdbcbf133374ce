//! Hostile bytes before any handshake, on both controller sockets (CURVE on): a ZMTP greeting
//! followed by a frame header declaring a 2^62-byte body (74 bytes that aborted the controller on
//! the `zeromq` crate), from many connections, and a stream of small "more" frames that never
//! ends. The controller stays up, its memory grows by less than 64 MiB, and `meshlift upgrade
//! state` still answers.

use meshlift_meshsim::lab::Lab;
use meshlift_tests::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// ZMTP 3.0 greeting (NULL mechanism), then one long-frame header declaring 2^62 bytes.
fn hostile_header() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    g.extend_from_slice(b"NULL");
    g.resize(64, 0);
    g.push(0x02);
    g.extend_from_slice(&(1u64 << 62).to_be_bytes());
    g.push(0);
    g
}

/// Connect and write the greeting, then "more" frames of 255 bytes for `limit` or until the
/// controller closes the connection; returns the bytes it accepted.
fn endless_more_frames(addr: &str, limit: Duration) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut greeting = hostile_header();
    greeting.truncate(64);
    if s.write_all(&greeting).is_err() {
        return 0;
    }
    let frame: Vec<u8> = [0x01u8, 255].into_iter().chain(std::iter::repeat_n(b'x', 255)).collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < limit {
        match s.write_all(&frame) {
            Ok(()) => sent += frame.len() as u64,
            Err(_) => break,
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frame_headers_and_endless_frames_leave_the_controller_serving() {
    let (cfg, _dir) = lab_config(small_topology());
    let lab = Lab::start(cfg).await.expect("lab starts");
    let pid = controller_pid(&lab);
    let before = rss_kib(pid);
    let addrs = [format!("127.0.0.1:{}", lab.ports.minion), format!("127.0.0.1:{}", lab.ports.app)];
    let accepted = tokio::task::spawn_blocking(move || {
        let mut accepted = Vec::new();
        for addr in &addrs {
            for _ in 0..50 {
                if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                    let _ = s.write_all(&hostile_header());
                }
            }
            accepted.push(endless_more_frames(addr, Duration::from_secs(5)));
        }
        accepted
    })
    .await
    .expect("attacker");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the controller died");
    let after = rss_kib(pid);
    let grown = after.saturating_sub(before);
    eprintln!("controller RSS {before} KiB -> {after} KiB; stream bytes accepted before close: {accepted:?}");
    assert!(grown < 64 * 1024, "controller memory grew by {grown} KiB");
    let out = cli(&lab, &["upgrade", "state"]);
    assert!(out.status.success(), "upgrade state: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(controller_pid(&lab), pid, "the same controller process answers");
    lab.stop().await;
}
