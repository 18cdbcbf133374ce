//! The minion under systemd (`Type=notify`, `WatchdogSec=`): the real binary, with
//! `NOTIFY_SOCKET` pointing at a datagram socket this test binds in systemd's place, reports
//! READY=1 once booted and then pings WATCHDOG=1 from its main loop at half the interval — so a
//! minion whose loop hangs stops pinging and systemd restarts it. Without `WATCHDOG_USEC` it never
//! pings.

mod harness;

use harness::Node;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The minion process, killed when dropped (a failed assertion must not leave it running).
struct Minion(Child);

impl Drop for Minion {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the minion as systemd would: `WATCHDOG_PID` is its own pid (`exec` keeps the shell's).
fn start(config: &Path, notify: &Path, watchdog_usec: Option<u64>) -> Minion {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_meshlift-minion"))
        .arg(config)
        .env("NOTIFY_SOCKET", notify)
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    Minion(cmd.spawn().unwrap())
}

/// A node booted once (slot A holds its factory image), with a config whose controller is never
/// there: readiness and the watchdog must not wait for the controller.
fn booted_node() -> (Node, std::path::PathBuf) {
    let node = Node::new();
    let config = node.dir.path().join("minion.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"node-1\"\nmac = \"00:00:00:00:00:01\"\ndata_dir = \"{}\"\n\
             controller = \"tcp://127.0.0.1:1\"\nboard = \"sim\"\ntrusted_keys = []\ninsecure = true\n",
            node.data().display()
        ),
    )
    .unwrap();
    (node, config)
}

/// Every datagram received until `until` says stop or `limit` passes, with its arrival time.
fn receive(
    sock: &UnixDatagram,
    limit: Duration,
    mut until: impl FnMut(&[(Instant, String)]) -> bool,
) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(&got) {
        sock.set_read_timeout(Some(
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                break
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    got
}

fn is_ping(msg: &str) -> bool {
    msg.lines().any(|l| l == "WATCHDOG=1")
}

#[test]
fn ready_after_boot_then_watchdog_pings_at_half_the_interval() {
    let (_node, config) = booted_node();
    let notify = tempfile::tempdir().unwrap();
    let sock_path = notify.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();

    // WatchdogSec=400ms: a ping every 200 ms.
    let _minion = start(&config, &sock_path, Some(400_000));
    let got =
        receive(&sock, Duration::from_secs(30), |got| got.iter().filter(|(_, m)| is_ping(m)).count() >= 5);

    let first = got.first().map(|(_, m)| m.as_str()).unwrap_or("nothing");
    assert!(first.lines().any(|l| l == "READY=1"), "first notification is READY=1, got {got:?}");
    assert!(first.contains("STATUS=booted slot a"), "{first:?}");
    let pings: Vec<Instant> = got.iter().filter(|(_, m)| is_ping(m)).map(|(t, _)| *t).collect();
    assert!(pings.len() >= 5, "repeated WATCHDOG=1 pings, got {got:?}");
    // Periodic, not a burst: five pings span at least three 200 ms periods (some slack for a
    // loaded machine on the lower side only; a late tick is allowed, an early one is not).
    let span = pings[4] - pings[0];
    assert!(span >= Duration::from_millis(600), "5 pings within {span:?}: {got:?}");
}

#[test]
fn without_a_watchdog_only_readiness_is_reported() {
    let (_node, config) = booted_node();
    let notify = tempfile::tempdir().unwrap();
    let sock_path = notify.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();

    let _minion = start(&config, &sock_path, None);
    let ready = receive(&sock, Duration::from_secs(30), |got| !got.is_empty());
    assert!(
        ready.first().is_some_and(|(_, m)| m.lines().any(|l| l == "READY=1")),
        "READY=1 without a watchdog too, got {ready:?}"
    );
    // Well past several would-be ping periods: nothing more.
    let after = receive(&sock, Duration::from_millis(1200), |_| false);
    assert!(after.iter().all(|(_, m)| !is_ping(m)), "pinged without WATCHDOG_USEC: {after:?}");
}
