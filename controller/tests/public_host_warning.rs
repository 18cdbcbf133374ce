//! The real controller binary warns at start when `public_host` would send nodes to themselves:
//! the default `127.0.0.1` on a listener open to the network (`[::]`). The same controller on
//! `::1` with `public_host = "::1"` (a one-host lab over IPv6) starts without that warning.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The controller process, killed when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("[::]:0").expect("IPv6 is available").local_addr().unwrap().port()
}

/// Start a controller with `http_listen` and `public_host`, wait until it logs that it listens,
/// and return its log so far.
fn start_and_log(dir: &Path, name: &str, http_listen: &str, public_host: &str) -> String {
    let (minion, app, bt) = (free_port(), free_port(), free_port());
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "topology_file = \"topology.json\"\ndata_dir = \"{name}-state\"\n\
             minion_endpoint = \"tcp://127.0.0.1:{minion}\"\napp_endpoint = \"tcp://127.0.0.1:{app}\"\n\
             http_listen = \"{http_listen}\"\npublic_host = \"{public_host}\"\n\
             [bittorrent]\nlisten_port = {bt}\n[security]\ninsecure = true\n"
        ),
    )
    .unwrap();
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_meshlift-controller"))
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("controller listening") {
            return text;
        }
        assert!(Instant::now() < deadline, "the controller did not start within 60 s:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_loopback_public_host_on_a_network_listener_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("topology.json"),
        r#"{"name":"one","sites":[{"name":"P"}],"nodes":[{"name":"pop","node_type":2,
        "mac_addr":"02:00:00:00:01:01","pop_node":true,"status":2,"site_name":"P"}],"links":[]}"#,
    )
    .unwrap();

    let log = start_and_log(dir.path(), "wide", &format!("[::]:{}", free_port()), "127.0.0.1");
    let warning = log.lines().find(|l| l.contains("is a loopback address")).unwrap_or_else(|| {
        panic!("no loopback warning:\n{log}");
    });
    assert!(warning.contains("WARN"), "logged as a warning: {warning}");

    let log = start_and_log(dir.path(), "lab6", &format!("[::1]:{}", free_port()), "::1");
    assert!(!log.contains("is a loopback address"), "no warning for a one-host lab:\n{log}");
    assert!(
        !log.lines().any(|l| l.contains("WARN") && l.contains("public_host")),
        "no public_host warning:\n{log}"
    );
}
