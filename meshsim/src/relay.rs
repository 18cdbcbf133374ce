//! The in-band management path of one node: a TCP relay from the node's minion to the controller
//! that only carries traffic while the node has a path of up links to a POP.
//!
//! Terragraph manages nodes in-band: a node behind a rebooting neighbour loses its controller
//! session exactly like a TCP connection whose route vanished. The relay makes that visible to a
//! real minion on one machine: when the path goes, new connections are refused (accepted and
//! closed at once) and open ones are cut.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Counters of one relay, for tests and the demo's summary.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections carried to the controller.
    pub forwarded: AtomicU64,
    /// Connections closed at once because the node had no path (or the controller refused).
    pub refused: AtomicU64,
    /// Open connections cut because the path went away.
    pub cut: AtomicU64,
}

/// A snapshot of [`RelayStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayCounts {
    pub forwarded: u64,
    pub refused: u64,
    pub cut: u64,
}

impl RelayStats {
    pub fn snapshot(&self) -> RelayCounts {
        RelayCounts {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
        }
    }
}

/// One node's relay. Dropping it stops listening and cuts every connection it carries.
#[derive(Debug)]
pub struct Relay {
    local_addr: SocketAddr,
    path: watch::Sender<bool>,
    stats: Arc<RelayStats>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listen on an ephemeral loopback port and forward to `upstream` (`tcp://host:port` or
    /// `host:port`). The relay listens on the loopback of the upstream's address family (`::1`
    /// for an IPv6 controller, `127.0.0.1` otherwise), so a mesh run over IPv6 stays IPv6 from the
    /// minion to the controller. Starts with no path.
    pub async fn bind(upstream: &str) -> io::Result<Relay> {
        let upstream = upstream.strip_prefix("tcp://").unwrap_or(upstream).to_string();
        let listener = TcpListener::bind((loopback_for(&upstream), 0)).await?;
        let local_addr = listener.local_addr()?;
        let (path, path_rx) = watch::channel(false);
        let stats = Arc::new(RelayStats::default());
        let task = tokio::spawn(accept_loop(listener, upstream, path_rx, stats.clone()));
        Ok(Relay { local_addr, path, stats, task })
    }

    /// The address the node's minion connects to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `tcp://127.0.0.1:<port>` or `tcp://[::1]:<port>`, the form minion configs use.
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.local_addr)
    }

    /// Open or close the path. Closing cuts the open connections.
    pub fn set_path(&self, has_path: bool) {
        self.path.send_replace(has_path);
    }

    pub fn has_path(&self) -> bool {
        *self.path.borrow()
    }

    pub fn stats(&self) -> RelayCounts {
        self.stats.snapshot()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// `::1` when `upstream` (`host:port`) is an IPv6 socket address, else `127.0.0.1` (IPv4 or a
/// name).
fn loopback_for(upstream: &str) -> IpAddr {
    match upstream.parse::<SocketAddr>() {
        Ok(SocketAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
        _ => Ipv4Addr::LOCALHOST.into(),
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    path: watch::Receiver<bool>,
    stats: Arc<RelayStats>,
) {
    let mut connections = JoinSet::new();
    loop {
        let inbound = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let inbound = match inbound {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "relay accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !*path.borrow() {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(inbound);
            continue;
        }
        connections.spawn(carry(inbound, upstream.clone(), path.clone(), stats.clone()));
    }
}

async fn carry(
    mut inbound: TcpStream,
    upstream: String,
    mut path: watch::Receiver<bool>,
    stats: Arc<RelayStats>,
) {
    let mut outbound = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, %upstream, "controller unreachable; closing relayed connection");
            stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    stats.forwarded.fetch_add(1, Ordering::Relaxed);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        lost = path.wait_for(|p| !*p) => {
            // An Err means the relay itself is gone; either way the connection ends here.
            if lost.is_ok() {
                stats.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_relay_to_an_ipv6_controller_listens_and_forwards_on_ipv6() {
        let upstream =
            TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.expect("IPv6 loopback (::1) is available");
        let up_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, peer) = upstream.accept().await.unwrap();
            assert!(peer.is_ipv6(), "the relay reaches the controller over IPv6: {peer}");
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let relay = Relay::bind(&format!("tcp://{up_addr}")).await.unwrap();
        assert_eq!(relay.local_addr().ip(), IpAddr::from(Ipv6Addr::LOCALHOST));
        assert!(relay.endpoint().starts_with("tcp://[::1]:"), "{}", relay.endpoint());
        relay.set_path(true);
        let mut conn = TcpStream::connect(relay.local_addr()).await.unwrap();
        conn.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"hello");
        // An IPv4 or named upstream keeps the relay on 127.0.0.1.
        assert_eq!(loopback_for("127.0.0.1:7007"), IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(loopback_for("controller:7007"), IpAddr::from(Ipv4Addr::LOCALHOST));
    }
}
