//! The base URL of an `exhunt serve` (`https://fleet.example:8443`, optionally with a path
//! prefix when a reverse proxy serves it under one). Parsed strictly: no credentials, query or
//! fragment, nothing that could end up in a request line or header unchecked.

use std::fmt;
use std::net::IpAddr;

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// `https` (true) or `http`.
    pub(crate) tls: bool,
    /// Host name (lower case) or IP address, IPv6 without brackets.
    pub(crate) host: String,
    /// Port (443 or 80 when the URL names none).
    pub(crate) port: u16,
    /// Path prefix without a trailing `/` (empty for none), e.g. `/exhunt`.
    pub(crate) prefix: String,
}

impl BaseUrl {
    /// Parses `s`; the error says what is wrong without repeating the text (it could hold a
    /// secret someone pasted).
    pub(crate) fn parse(s: &str) -> Result<BaseUrl, String> {
        const SHAPE: &str = "expected the base URL of exhunt serve, https://HOST[:PORT][/PATH]";
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("--upload: spaces or control characters; {SHAPE}"));
        }
        let lower = s.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &s[8..])
        } else if lower.starts_with("http://") {
            (false, &s[7..])
        } else {
            return Err(format!("--upload: not an http(s) URL; {SHAPE}"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(
                "--upload: the URL holds credentials (USER@ or TOKEN@); they are refused there: the API token goes in EXHUNT_UPLOAD_TOKEN or --upload-token-file"
                    .into(),
            );
        }
        if path.contains(['?', '#']) {
            return Err(format!(
                "--upload: a query or fragment is not allowed; {SHAPE}"
            ));
        }
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b))
        {
            return Err(format!(
                "--upload: the path may hold letters, digits and -._~/% only; {SHAPE}"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("--upload: unclosed [ in the host; {SHAPE}"))?;
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("--upload: not an IPv6 address in [ ]; {SHAPE}"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("--upload: text after ]; {SHAPE}"))?,
                ),
            };
            (ip.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("--upload: no host; {SHAPE}"));
        }
        if host.parse::<IpAddr>().is_err()
            && !(host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }))
        {
            return Err(format!("--upload: not a host name or IP address; {SHAPE}"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("--upload: port must be 1 to 65535; {SHAPE}")),
            },
        };
        Ok(BaseUrl {
            tls,
            host,
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// Whether the host is written as a loopback address or is `localhost` (for a name, the
    /// addresses it resolves to are checked again when connecting).
    pub(crate) fn names_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host == "localhost" || self.host.ends_with(".localhost"),
        }
    }

    /// The `Host` header's value.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_parsed_strictly() {
        let u = BaseUrl::parse("https://Fleet.Example:8443/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.prefix.as_str()),
            (true, "fleet.example", 8443, "")
        );
        assert_eq!(u.to_string(), "https://fleet.example:8443");
        let u = BaseUrl::parse("HTTP://[::1]/exhunt/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "::1", 80));
        assert_eq!(u.prefix, "/exhunt");
        assert_eq!(u.host_header(), "[::1]");
        assert!(u.names_loopback());
        let u = BaseUrl::parse("https://10.1.2.3").unwrap();
        assert_eq!((u.port, u.names_loopback()), (443, false));
        assert!(
            BaseUrl::parse("http://localhost:8080")
                .unwrap()
                .names_loopback()
        );
        assert!(
            !BaseUrl::parse("http://localhost.example")
                .unwrap()
                .names_loopback()
        );
        for bad in [
            "fleet.example",
            "ftp://fleet.example",
            "https://",
            "https://:443",
            "https://fleet.example:0",
            "https://fleet.example:65536",
            "https://fleet.example:x",
            "https://fleet.example/a?b=c",
            "https://fleet.example/#x",
            "https://[::1",
            "https://[nope]:1",
            "https://fle et.example",
            "https://fleet.example/a\r\nX: y",
            "https://bad_host.example",
            "https://fleet.example/<script>",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        let secret = "exh_0123456789abcdef0123456789abcdef";
        let e = BaseUrl::parse(&format!("https://{secret}@fleet.example")).unwrap_err();
        assert!(e.contains("credentials") && !e.contains(secret), "{e}");
        let e = BaseUrl::parse(&format!("https://fleet.example/?token={secret}")).unwrap_err();
        assert!(!e.contains(secret), "{e}");
    }
}
