//! Addresses the controller hands out and the listeners it binds, on IPv4, IPv6 or both.
//!
//! Terragraph's in-band management network is IPv6; labs and small sites are often IPv4. Every
//! place that joins a host and a port goes through the types here, never through
//! `format!("{host}:{port}")`: an IPv6 literal needs brackets in a URL and in `host:port` text
//! (`[fd00::1]:6881`), and text that lacks them does not parse (the seeder's address once came out
//! as `fd00::1:6881`, and every minion fell back to HTTP).
//!
//! - [`Host`] is what an operator writes as `public_host`: a DNS name, an IPv4 or an IPv6 address
//!   (with or without brackets). A name stays a name in URLs and peer addresses, so each minion
//!   resolves it with its own resolver; the controller resolves it only to check it at start
//!   ([`advertise_warnings`]).
//! - [`listen_addr`] and [`bind_tcp`]: the wildcard `[::]` means "both families" (the socket is
//!   dual-stack, `IPV6_V6ONLY` off, whatever the host's `bindv6only` says) and becomes `0.0.0.0` on
//!   a host without IPv6, so one default works on IPv6-only, IPv4-only and dual-stack hosts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A host as configured: an address, or a DNS name resolved by whoever connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A syntactically valid DNS name (RFC 1123 labels), without a trailing dot.
    Name(String),
}

/// Why a `public_host` value was refused; the operator fixes the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    /// `host:port` given where only a host belongs.
    #[error("{0:?} has a port: give the host only (ports come from http_listen and bittorrent.listen_port)")]
    HasPort(String),
    /// `fe80::1%eth0`: a scope only means something on the host that wrote it.
    #[error("{0:?} is a scoped (link-local) address, which other hosts cannot use: give a global or ULA address or a name")]
    Scoped(String),
    /// Brackets around something that is not an IPv6 address, or an unparsable IPv6 literal.
    #[error("{0:?} is not a valid IPv6 address")]
    BadIpv6(String),
    /// Not an address and not a valid DNS name.
    #[error("{0:?} is neither an IP address nor a valid host name")]
    BadName(String),
}

impl FromStr for Host {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Host, HostError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(HostError::Empty);
        }
        if s.contains('%') {
            return Err(HostError::Scoped(s.into()));
        }
        if let Some(inner) = s.strip_prefix('[') {
            return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
                Some(Ok(v6)) => Ok(Host::Ip(IpAddr::V6(v6))),
                _ if s.parse::<SocketAddr>().is_ok() => Err(HostError::HasPort(s.into())),
                _ => Err(HostError::BadIpv6(s.into())),
            };
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if s.parse::<SocketAddr>().is_ok() {
            return Err(HostError::HasPort(s.into()));
        }
        if s.contains(':') {
            // Only IPv6 literals contain colons; a name with a port (`ctrl:8080`) lands here too.
            let name_part = s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>().is_ok()));
            return match name_part {
                Some((h, true)) if valid_name(h) => Err(HostError::HasPort(s.into())),
                _ => Err(HostError::BadIpv6(s.into())),
            };
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if valid_name(name) {
            Ok(Host::Name(name.to_ascii_lowercase()))
        } else {
            Err(HostError::BadName(s.into()))
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1–63 bytes
/// each, 253 in all.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for Host {
    /// The host as written in configs: IPv6 without brackets (brackets belong to `host:port`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Host {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Host, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Host {
    /// `host:port` for this host: a [`SocketAddr`] for an address (brackets for IPv6), or a name
    /// with a port for a name.
    pub fn with_port(&self, port: u16) -> HostPort {
        HostPort { host: self.clone(), port }
    }

    /// `http://host:port` (no trailing slash), brackets around an IPv6 address. The URL is
    /// assembled by the `url` crate, which applies RFC 3986's rules for each host kind.
    pub fn http_base_url(&self, port: u16) -> String {
        // A fixed, valid URL whose host and port are then replaced: neither step can fail for a
        // parsed `Host` (an IP or an RFC 1123 name) and a u16 port on an `http` URL.
        let mut url = url::Url::parse("http://host.invalid/").expect("a fixed valid URL");
        match self {
            Host::Ip(ip) => url.set_ip_host(*ip).expect("http URLs take IP hosts"),
            Host::Name(n) => url.set_host(Some(n)).expect("an RFC 1123 name is a valid URL host"),
        }
        url.set_port(Some(port)).expect("http URLs take a port");
        url.as_str().trim_end_matches('/').to_string()
    }

    /// The addresses this host stands for (a name is looked up; an address is itself).
    pub async fn resolve(&self, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(n) => Ok(tokio::net::lookup_host((n.as_str(), port)).await?.collect()),
        }
    }
}

/// A host and a port: `192.0.2.1:6881`, `[fd00::1]:6881` or `ctrl.example:6881`. This is the
/// form of `initial_peers` on the wire, which minions resolve with `lookup_host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.port).fmt(f),
            // A name is not a socket address; it is the one case joined by hand, and has no colon.
            Host::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

impl From<SocketAddr> for HostPort {
    fn from(a: SocketAddr) -> HostPort {
        HostPort { host: Host::Ip(a.ip()), port: a.port() }
    }
}

/// The address to bind for `wanted`: the IPv6 wildcard becomes the IPv4 one on a host that has
/// no IPv6 at all (kernel without it, or `ipv6.disable=1`), so the default `[::]` works there too.
pub fn listen_addr(wanted: SocketAddr, ipv6_available: bool) -> SocketAddr {
    match wanted {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() && !ipv6_available => {
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), wanted.port())
        }
        other => other,
    }
}

/// Whether this host can open an IPv6 socket at all (probe: create one, bind nothing).
pub fn ipv6_available() -> bool {
    socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).is_ok()
}

/// Bind a TCP listener on [`listen_addr`]`(wanted)`: `[::]` dual-stack (IPv4 clients arrive as
/// mapped addresses, which the tracker turns back into IPv4), any other address as given.
pub fn bind_tcp(wanted: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = listen_addr(wanted, ipv6_available());
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        sock.set_only_v6(false)?;
    }
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// What is wrong with advertising `public` (the addresses `public_host` resolves to) to minions
/// while the server listens on `bind`; each line goes to the log as a warning at start.
///
/// The classic mistake is the default `public_host = 127.0.0.1` left on a controller that
/// listens on the network: every node is then told to fetch from itself and falls back, slowly,
/// to nothing. A family mismatch (an IPv6 `public_host` on an IPv4-only listener) fails the same
/// way.
pub fn advertise_warnings(host: &Host, public: &[IpAddr], bind: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    let public: Vec<IpAddr> = public.iter().map(|ip| ip.to_canonical()).collect();
    if public.is_empty() {
        return vec![format!(
            "public_host {host} does not resolve here; minions must resolve it themselves (magnet and HTTP URIs carry the name)"
        )];
    }
    let bind_ip = bind.ip().to_canonical();
    if public.iter().all(IpAddr::is_loopback) && !bind_ip.is_loopback() {
        out.push(format!(
            "public_host {host} is a loopback address but the controller listens on {bind}: nodes on \
             other hosts would be told to fetch the image from themselves; set public_host to an \
             address or name the nodes reach this controller by"
        ));
    }
    let reachable = |ip: &IpAddr| match (bind_ip, ip) {
        (b, _) if b.is_unspecified() && bind.is_ipv6() => true,
        (IpAddr::V4(b), IpAddr::V4(_)) => b.is_unspecified() || b == *ip,
        (IpAddr::V6(b), IpAddr::V6(_)) => b == *ip,
        _ => false,
    };
    if !public.iter().any(reachable) {
        out.push(format!(
            "public_host {host} ({}) is not an address the controller listens on ({bind}): nodes \
             would be sent where nothing answers",
            public.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn hosts_parse_as_ipv4_ipv6_with_or_without_brackets_and_names() {
        assert_eq!(host("192.0.2.7"), Host::Ip("192.0.2.7".parse().unwrap()));
        assert_eq!(host("fd00::1"), Host::Ip("fd00::1".parse().unwrap()));
        assert_eq!(host("[fd00::1]"), Host::Ip("fd00::1".parse().unwrap()));
        assert_eq!(host(" ::1 "), Host::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(host("Ctrl-1.Mesh.example."), Host::Name("ctrl-1.mesh.example".into()));
        assert_eq!(host("localhost"), Host::Name("localhost".into()));
    }

    #[test]
    fn bad_hosts_are_refused_with_the_reason() {
        assert_eq!("".parse::<Host>(), Err(HostError::Empty));
        for with_port in ["192.0.2.7:8080", "[fd00::1]:8080", "ctrl.example:8080"] {
            assert_eq!(with_port.parse::<Host>(), Err(HostError::HasPort(with_port.into())), "{with_port}");
        }
        assert_eq!("fe80::1%eth0".parse::<Host>(), Err(HostError::Scoped("fe80::1%eth0".into())));
        assert_eq!("fd00::1::2".parse::<Host>(), Err(HostError::BadIpv6("fd00::1::2".into())));
        assert_eq!("[ctrl]".parse::<Host>(), Err(HostError::BadIpv6("[ctrl]".into())));
        for bad in ["-ctrl", "ctrl_1", "a..b", "ctrl/x", &"a".repeat(64)] {
            assert!(matches!(bad.parse::<Host>(), Err(HostError::BadName(_))), "{bad}");
        }
        let err: Result<crate::config::ControllerConfig, _> =
            toml::from_str("topology_file = \"t\"\npublic_host = \"fd00::1:8080:x\"");
        assert!(err.unwrap_err().to_string().contains("not a valid IPv6 address"));
    }

    #[test]
    fn host_and_port_are_joined_as_socket_addresses_with_brackets_for_ipv6() {
        assert_eq!(host("192.0.2.7").with_port(6881).to_string(), "192.0.2.7:6881");
        assert_eq!(host("fd00::1").with_port(6881).to_string(), "[fd00::1]:6881");
        assert_eq!(host("ctrl.example").with_port(6881).to_string(), "ctrl.example:6881");
        // What minions do with it: an address parses back to the same socket address.
        let back: SocketAddr = host("[fd00::1]").with_port(6881).to_string().parse().unwrap();
        assert_eq!(back, SocketAddr::new("fd00::1".parse().unwrap(), 6881));
    }

    #[test]
    fn http_urls_bracket_ipv6_hosts() {
        assert_eq!(host("192.0.2.7").http_base_url(8080), "http://192.0.2.7:8080");
        assert_eq!(host("fd00::1").http_base_url(8080), "http://[fd00::1]:8080");
        assert_eq!(host("::1").http_base_url(8080), "http://[::1]:8080");
        assert_eq!(host("ctrl.example").http_base_url(8080), "http://ctrl.example:8080");
        let url = url::Url::parse(&format!("{}/announce", host("fd00::1").http_base_url(8080))).unwrap();
        assert_eq!(url.host(), Some(url::Host::Ipv6("fd00::1".parse().unwrap())));
        assert_eq!(url.port(), Some(8080));
    }

    #[tokio::test]
    async fn names_are_resolved_where_an_address_is_needed() {
        let addrs = host("localhost").resolve(6881).await.unwrap();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 6881),
            "{addrs:?}"
        );
        assert_eq!(host("fd00::1").resolve(1).await.unwrap(), vec!["[fd00::1]:1".parse().unwrap()]);
    }

    #[test]
    fn the_wildcard_falls_back_to_ipv4_on_a_host_without_ipv6() {
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(listen_addr(any6, true), any6);
        assert_eq!(listen_addr(any6, false), "0.0.0.0:8080".parse().unwrap());
        let one: SocketAddr = "[fd00::1]:8080".parse().unwrap();
        assert_eq!(listen_addr(one, false), one, "a specific address is bound as given (and fails loudly)");
    }

    #[test]
    fn a_wildcard_listener_is_dual_stack() {
        let l = bind_tcp("[::]:0".parse().unwrap()).expect("IPv6 is available on the test machine");
        let port = l.local_addr().unwrap().port();
        for ip in [IpAddr::from(Ipv6Addr::LOCALHOST), IpAddr::from(Ipv4Addr::LOCALHOST)] {
            std::net::TcpStream::connect((ip, port)).unwrap_or_else(|e| panic!("{ip}: {e}"));
        }
    }

    #[test]
    fn advertising_loopback_or_the_wrong_family_is_warned_about() {
        let lo4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let lo6: IpAddr = Ipv6Addr::LOCALHOST.into();
        let ula: IpAddr = "fd00::1".parse().unwrap();
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        let any4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        // The default public_host on a network-facing listener: warned.
        let w = advertise_warnings(&host("127.0.0.1"), &[lo4], any6);
        assert!(w.len() == 1 && w[0].contains("loopback"), "{w:?}");
        let w = advertise_warnings(&host("localhost"), &[lo6, lo4], any4);
        assert!(w.len() == 1 && w[0].contains("loopback"), "{w:?}");
        // Loopback everywhere (a lab, the demo), or a real address on the wildcard: fine.
        assert!(advertise_warnings(&host("::1"), &[lo6], "[::1]:8080".parse().unwrap()).is_empty());
        assert!(advertise_warnings(&host("127.0.0.1"), &[lo4], "127.0.0.1:8080".parse().unwrap()).is_empty());
        assert!(advertise_warnings(&host("fd00::1"), &[ula], any6).is_empty());
        assert!(advertise_warnings(&host("192.0.2.7"), &["192.0.2.7".parse().unwrap()], any6).is_empty());
        // An IPv6 public_host on an IPv4-only listener, or another specific address: warned.
        let w = advertise_warnings(&host("fd00::1"), &[ula], any4);
        assert!(w.len() == 1 && w[0].contains("not an address the controller listens on"), "{w:?}");
        let w = advertise_warnings(&host("fd00::1"), &[ula], "[fd00::2]:8080".parse().unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        // A name that does not resolve here.
        let w = advertise_warnings(&host("ctrl.example"), &[], any6);
        assert!(w.len() == 1 && w[0].contains("does not resolve"), "{w:?}");
    }
}
