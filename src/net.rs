//! Address parsing and port picking with errors a person can act on, and the form of a server's
//! API address in gossip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use anyhow::{Context, bail};

/// Parses `HOST:PORT` (a name is resolved), naming the flag in the error.
pub fn parse_addr(flag: &str, value: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    if !value.contains(':') {
        bail!("{flag} {value:?} is not an address: expected HOST:PORT, e.g. 127.0.0.1:7946");
    }
    value
        .to_socket_addrs()
        .with_context(|| {
            format!("{flag} {value:?} does not resolve: expected HOST:PORT, e.g. 127.0.0.1:7946")
        })?
        .next()
        .with_context(|| format!("{flag} {value:?} resolves to no address"))
}

/// A seed is kept as text so chitchat can re-resolve names; it must still look like HOST:PORT.
pub fn check_seed(value: &str) -> anyhow::Result<String> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(value.to_string())
        }
        _ => bail!(
            "--join {value:?} is not an address: expected HOST:PORT of a node's gossip port, e.g. 127.0.0.1:7946"
        ),
    }
}

/// Replaces port 0 with a free UDP port on the same interface, so that several workers can run on
/// one host without choosing ports by hand.
pub fn pick_free_udp_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let socket =
        UdpSocket::bind(addr).with_context(|| format!("cannot bind a UDP socket on {addr}"))?;
    Ok(socket.local_addr()?)
}

/// A server's API address as it announces it in gossip (`NodeInfo::api_addr`): bare `HOST:PORT`
/// for plain HTTP, as every version has read it, and `https://HOST:PORT` when served over TLS.
pub fn advertised_api(addr: SocketAddr, tls: bool) -> String {
    if tls {
        format!("https://{addr}")
    } else {
        addr.to_string()
    }
}

/// The base URL of a server's API from its gossip announcement: `HOST:PORT` means
/// `http://HOST:PORT`; a URL must be `http://` or `https://` with a host and nothing after the
/// port. The error says what is wrong, for the caller to log with the member it came from.
pub fn api_url_from_gossip(advertised: &str) -> Result<url::Url, String> {
    let text = if advertised.contains("://") {
        advertised.to_string()
    } else {
        format!("http://{advertised}")
    };
    let url = url::Url::parse(&text).map_err(|error| format!("{advertised:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "{advertised:?} is neither HOST:PORT nor an http(s):// URL"
        ));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{advertised:?} has more than a scheme, host and port"
        ));
    }
    Ok(url)
}

/// An address a client on this host can connect to: an unspecified bind address (0.0.0.0, ::)
/// read as loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// The host's name, for default node ids.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_with_the_flag_named() {
        assert_eq!(parse_addr("--api", "127.0.0.1:7070").unwrap().port(), 7070);
        let error = parse_addr("--api", "nonsense").unwrap_err().to_string();
        assert!(
            error.contains("--api") && error.contains("HOST:PORT"),
            "{error}"
        );
        assert!(check_seed("127.0.0.1:7946").is_ok());
        assert!(check_seed("localhost:7946").is_ok());
        assert!(check_seed("localhost").is_err());
        assert!(check_seed("host:0").is_err());
        assert!(check_seed(":7946").is_err());
    }

    #[test]
    fn gossip_api_addresses_keep_their_scheme_and_bare_ones_mean_http() {
        let addr: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(advertised_api(addr, false), "127.0.0.1:7070");
        assert_eq!(advertised_api(addr, true), "https://127.0.0.1:7070");
        let url = |text: &str| api_url_from_gossip(text).map(|u| u.to_string());
        assert_eq!(url("127.0.0.1:7070"), Ok("http://127.0.0.1:7070/".into()));
        assert_eq!(
            url("https://127.0.0.1:7070"),
            Ok("https://127.0.0.1:7070/".into())
        );
        assert_eq!(
            url("http://shoal.example:7070"),
            Ok("http://shoal.example:7070/".into())
        );
        for bad in [
            "ftp://h:1",
            "https://h:1/api",
            "https://u@h:1",
            "https://h:99999",
            "::",
        ] {
            assert!(url(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            reachable("0.0.0.0:7070".parse().unwrap()),
            "127.0.0.1:7070".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn port_zero_becomes_a_free_port() {
        let addr = pick_free_udp_port("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
    }
}
