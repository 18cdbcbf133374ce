//! The controller under systemd (`Type=notify`): the real binary, with `NOTIFY_SOCKET` pointing
//! at a datagram socket this test binds in systemd's place, reports READY=1 only once its
//! sockets are bound — at that moment the HTTP server and both ZeroMQ ports accept connections —
//! and STOPPING=1 when SIGTERM starts its shutdown.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The controller process, killed when dropped (a failed assertion must not leave it running).
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The next datagram, or `None` after `limit`.
fn next_notification(sock: &UnixDatagram, limit: Duration) -> Option<String> {
    sock.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
        Err(e) => panic!("notify socket: {e}"),
    }
}

#[test]
fn ready_once_the_sockets_are_bound_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("topology.json"),
        r#"{"name":"one","sites":[{"name":"P"}],"nodes":[{"name":"pop","node_type":2,
        "mac_addr":"02:00:00:00:01:01","pop_node":true,"status":2,"site_name":"P"}],"links":[]}"#,
    )
    .unwrap();
    let (minion, app, http, bt) = (free_port(), free_port(), free_port(), free_port());
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "topology_file = \"topology.json\"\ndata_dir = \"state\"\n\
             minion_endpoint = \"tcp://127.0.0.1:{minion}\"\napp_endpoint = \"tcp://127.0.0.1:{app}\"\n\
             http_listen = \"127.0.0.1:{http}\"\npublic_host = \"127.0.0.1\"\n\
             [bittorrent]\nlisten_port = {bt}\n[security]\ninsecure = true\n"
        ),
    )
    .unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();

    let mut controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_meshlift-controller"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let ready = next_notification(&sock, Duration::from_secs(60)).expect("READY=1 within 60 s");
    assert!(ready.lines().any(|l| l == "READY=1"), "first notification is READY=1: {ready:?}");
    // (libzmq reports the bound address, IPv4-mapped on a dual-stack socket: check the ports.)
    assert!(ready.contains("STATUS=listening: minions tcp://"), "{ready:?}");
    assert!(
        ready.contains(&format!(":{minion}, operators ")) && ready.contains(&format!(":{app}, http ")),
        "{ready:?}"
    );
    // Ready means bound: every listening port takes a connection right away.
    for port in [minion, app, http] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("port {port} not accepting at READY=1: {e}"));
    }

    let kill = Command::new("kill").arg("-TERM").arg(controller.0.id().to_string()).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stopping = false;
    while !stopping && Instant::now() < deadline {
        match next_notification(&sock, deadline.saturating_duration_since(Instant::now())) {
            Some(m) => stopping = m.lines().any(|l| l == "STOPPING=1"),
            None => break,
        }
    }
    assert!(stopping, "STOPPING=1 after SIGTERM");
    let status = controller.0.wait().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}
