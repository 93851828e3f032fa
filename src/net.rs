//! Address parsing and port picking with errors a person can act on.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

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
    fn port_zero_becomes_a_free_port() {
        let addr = pick_free_udp_port("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
    }
}
