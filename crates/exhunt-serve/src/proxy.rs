//! The client's address behind a reverse proxy (`exhunt serve --trusted-proxy CIDR`).
//!
//! Behind a proxy every connection comes from the proxy: the login throttle would count all
//! clients as one (and anyone could lock everyone out), and the audit log would name the proxy.
//! A request whose connection comes from a trusted proxy is taken to come from the right-most
//! address of its `X-Forwarded-For` that is not itself a trusted proxy; what a client wrote
//! further left is its own claim and is not believed. A connection from anywhere else is its
//! own client, whatever header it sends.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// One address of an `X-Forwarded-For` list: `ip`, `ip:port` or `[ipv6]:port`.
fn address(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(ip);
    }
    item.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The client of a request that arrived from `peer`.
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| {
        let ip = ip.to_canonical();
        trusted.iter().any(|n| n.contains(&ip))
    };
    if trusted.is_empty() || !is_trusted(&peer.ip()) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one list; right-most first.
    let list: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for item in list.iter().rev() {
        match address(item) {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return SocketAddr::new(ip, 0),
            // Garbage where an address should be: nothing left of it can be believed; the
            // request is the last trusted hop's.
            None => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append("x-forwarded-for", v.parse().expect("header"));
        }
        m
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let from_proxy: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let ip = |a: SocketAddr| a.ip().to_string();
        // The proxy appended the client; what the client claimed further left is ignored.
        assert_eq!(
            ip(client(from_proxy, &h(&["1.2.3.4, 203.0.113.9"]), &proxies)),
            "203.0.113.9"
        );
        // Two proxies in a row, the inner one trusted too; ports and brackets.
        assert_eq!(
            ip(client(
                from_proxy,
                &h(&["[2001:db8::7]:5555", "10.0.0.9:80"]),
                &proxies
            )),
            "2001:db8::7"
        );
        // Near misses: a connection from outside the trusted ranges is its own client,
        // whatever it claims; no header or garbage: the proxy.
        let direct: SocketAddr = "198.51.100.1:1234".parse().unwrap();
        assert_eq!(client(direct, &h(&["203.0.113.9"]), &proxies), direct);
        assert_eq!(client(from_proxy, &h(&[]), &proxies), from_proxy);
        assert_eq!(
            client(from_proxy, &h(&["1.2.3.4, nonsense"]), &proxies),
            from_proxy
        );
        // Nothing trusted (the default): the header means nothing.
        assert_eq!(client(from_proxy, &h(&["203.0.113.9"]), &[]), from_proxy);
        // An IPv4 proxy seen on an IPv6 socket.
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:4000".parse().unwrap();
        assert_eq!(
            ip(client(mapped, &h(&["203.0.113.9"]), &proxies)),
            "203.0.113.9"
        );
    }
}
