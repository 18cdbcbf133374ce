//! The in-band relay carries a node's management bytes only while the node has a path to a POP.

mod common;

use common::*;
use meshlift_meshsim::NodeState;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A controller stand-in that echoes every byte.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    format!("tcp://{addr}")
}

async fn echo_once(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await??;
    Ok(buf)
}

/// The relay is closed: the connection ends (EOF or reset) without echoing anything.
async fn assert_closed(stream: &mut TcpStream) {
    let _ = stream.write_all(b"ping").await;
    let mut buf = [0u8; 16];
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("closed promptly");
    assert!(matches!(read, Ok(0) | Err(_)), "expected a closed connection, got {read:?}");
}

#[tokio::test]
async fn relay_forwards_while_a_path_exists_and_cuts_when_upstream_goes_down() {
    let (mut config, work) = config_chain(Duration::from_millis(200));
    config.controller_endpoint = echo_server().await;
    let (sim, _work) = start_with((config, work)).await;

    let endpoint = sim.relay_endpoint("leaf").unwrap();
    let addr = endpoint.strip_prefix("tcp://").unwrap().to_string();
    let config_text = std::fs::read_to_string(sim.config_path("leaf").unwrap()).unwrap();
    assert!(config_text.contains(&format!("controller = \"{endpoint}\"")), "{config_text}");

    let mut conn = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(echo_once(&mut conn, b"hello").await.unwrap(), b"hello");

    // The AP on leaf's only path reboots: the open session is cut, new ones refused.
    sim.power_off("ap").unwrap();
    wait_until("ap down", Duration::from_secs(5), || sim.node_state("ap") == Some(NodeState::Down)).await;
    assert_eq!(sim.has_path("leaf"), Some(false));
    assert_closed(&mut conn).await;
    let mut refused = TcpStream::connect(&addr).await.unwrap();
    assert_closed(&mut refused).await;
    // The POP itself keeps its own session.
    let pop_addr = sim.relay_endpoint("pop").unwrap().strip_prefix("tcp://").unwrap().to_string();
    let mut pop_conn = TcpStream::connect(&pop_addr).await.unwrap();
    assert_eq!(echo_once(&mut pop_conn, b"pop").await.unwrap(), b"pop");

    // Back up: leaf can reach the controller again.
    sim.power_on("ap").unwrap();
    wait_until("leaf path", Duration::from_secs(5), || sim.has_path("leaf") == Some(true)).await;
    let mut again = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(echo_once(&mut again, b"again").await.unwrap(), b"again");

    let stats = sim.relay_stats("leaf").unwrap();
    assert_eq!((stats.forwarded, stats.cut), (2, 1), "{stats:?}");
    assert!(stats.refused >= 1);
    sim.stop().await;
}
