//! `--upload` through an HTTP proxy: a tunnel asked for with `CONNECT host:port`, inside which
//! the client speaks TLS to `exhunt serve` exactly as without a proxy (the proxy sees neither
//! the token nor the evidence, and the server's certificate is still verified by its name).
//!
//! Which proxy: `--upload-proxy http://HOST:PORT` (or `none`), else the environment's
//! `HTTPS_PROXY` / `https_proxy` for an https:// server (`HTTP_PROXY` / `http_proxy` for
//! http://), then `ALL_PROXY` / `all_proxy`; `NO_PROXY` / `no_proxy` names the hosts reached
//! directly (`*`, host names, `.domain` or `domain` for a domain and its subdomains, IP
//! addresses). Loopback is always reached directly. Credentials (`http://USER:PASSWORD@…`,
//! percent-encoded) are taken from the environment only, never from the command line, where
//! other users would read them in the process list; they are sent as `Proxy-Authorization:
//! Basic` to the proxy alone. Windows' system proxy setting (WinHTTP) is not read: set
//! `HTTPS_PROXY` or give `--upload-proxy`.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;

use super::client::Failure;
use super::url::BaseUrl;

/// Largest answer head read from a proxy.
const HEAD_LIMIT: usize = 16 * 1024;

/// An HTTP proxy.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    /// Host name (lower case) or IP address, IPv6 without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Basic` credentials, base64 of `user:password`.
    auth: Option<String>,
    /// Where it was named, for messages (`--upload-proxy`, `HTTPS_PROXY`, …).
    pub(crate) from: &'static str,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({} from {}", self.authority(), self.from)?;
        if self.auth.is_some() {
            f.write_str(", credentials redacted")?;
        }
        f.write_str(")")
    }
}

impl Proxy {
    /// `host:port` as written in a request line.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses a proxy URL `http://[USER:PASSWORD@]HOST:PORT[/]`. Credentials are refused
    /// unless `credentials_allowed` (the environment). Errors never repeat the text.
    pub(crate) fn parse(
        s: &str,
        from: &'static str,
        credentials_allowed: bool,
    ) -> Result<Proxy, String> {
        const SHAPE: &str = "expected http://HOST:PORT";
        let s = s.trim();
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{from}: spaces or control characters; {SHAPE}"));
        }
        let lower = s.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &s[7..]
        } else if lower.starts_with("https://") || lower.starts_with("socks") {
            return Err(format!(
                "{from}: only an http:// proxy is supported (the tunnel to exhunt serve is TLS of its own); {SHAPE}"
            ));
        } else if !lower.contains("://") {
            // `host:port` without a scheme, as many tools accept.
            s
        } else {
            return Err(format!("{from}: not an http:// proxy URL; {SHAPE}"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "{from}: a path, query or fragment is not allowed; {SHAPE}"
            ));
        }
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((creds, hp)) => {
                if !credentials_allowed {
                    return Err(format!(
                        "{from}: credentials are refused on the command line, where other users read them in the process list: give them in HTTPS_PROXY (http://USER:PASSWORD@HOST:PORT) instead"
                    ));
                }
                let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
                let plain = format!("{}:{}", percent_decode(user)?, percent_decode(pass)?);
                (Some(base64(plain.as_bytes())), hp)
            }
            None => (None, rest),
        };
        // The host and port are parsed as a base URL's (same rules, no credentials left).
        let url = BaseUrl::parse(&format!("http://{hostport}"))
            .map_err(|_| format!("{from}: not a host name or IP address and port; {SHAPE}"))?;
        let has_port = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && !p.contains(']'));
        if !has_port {
            return Err(format!("{from}: no port; {SHAPE}"));
        }
        Ok(Proxy {
            host: url.host,
            port: url.port,
            auth,
            from,
        })
    }

    /// The proxy for `url`: `flag` (`--upload-proxy`; `none` for no proxy) first, else the
    /// environment as read by `env`. `None` for a direct connection.
    pub(crate) fn choose(
        url: &BaseUrl,
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>, String> {
        if let Some(f) = flag {
            if matches!(f.trim().to_ascii_lowercase().as_str(), "none" | "direct") {
                return Ok(None);
            }
            if url.names_loopback() {
                return Ok(None);
            }
            return Proxy::parse(f, "--upload-proxy", false).map(Some);
        }
        if url.names_loopback() {
            return Ok(None);
        }
        let var = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let named = if url.tls {
            var(["HTTPS_PROXY", "https_proxy"])
        } else {
            // Lower case first: `HTTP_PROXY` can be set by a web server's request (httpoxy).
            var(["http_proxy", "HTTP_PROXY"])
        }
        .or_else(|| var(["ALL_PROXY", "all_proxy"]));
        let Some((name, value)) = named else {
            return Ok(None);
        };
        if let Some((_, list)) = var(["NO_PROXY", "no_proxy"])
            && bypassed(&url.host, &list)
        {
            return Ok(None);
        }
        Proxy::parse(&value, name, true).map(Some)
    }

    /// Asks the proxy, over `tcp` (connected to it), for a tunnel to `url`'s host and port.
    pub(crate) fn tunnel(&self, tcp: &mut TcpStream, url: &BaseUrl) -> Result<(), Failure> {
        let target = if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let mut head = format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: exhunt/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(a) = &self.auth {
            head.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
        }
        head.push_str("\r\n");
        let via = format!("the proxy {} ({})", self.authority(), self.from);
        tcp.write_all(head.as_bytes())
            .and_then(|()| tcp.flush())
            .map_err(|e| Failure::Transient(format!("asking {via} for a tunnel: {e}")))?;
        // Read byte by byte up to the end of the head: what follows belongs to the tunnel.
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte) {
                Ok(0) => {
                    return Err(Failure::Transient(format!(
                        "{via} closed the connection without answering CONNECT"
                    )));
                }
                Ok(_) => answer.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "waiting for {via} to open a tunnel: {e}"
                    )));
                }
            }
            if answer.len() > HEAD_LIMIT {
                return Err(Failure::Permanent(format!(
                    "{via} answered CONNECT with more than {HEAD_LIMIT} bytes of head: is it an HTTP proxy?"
                )));
            }
        }
        let line = String::from_utf8_lossy(&answer);
        let line = line.lines().next().unwrap_or_default();
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                Failure::Permanent(format!(
                    "{via} did not answer CONNECT in HTTP: is it an HTTP proxy?"
                ))
            })?;
        match status {
            200..=299 => Ok(()),
            407 if self.auth.is_some() => Err(Failure::Permanent(format!(
                "{via} refused the credentials given in {} (407)",
                self.from
            ))),
            407 => Err(Failure::Permanent(format!(
                "{via} asks for credentials (407): give them in HTTPS_PROXY as http://USER:PASSWORD@HOST:PORT"
            ))),
            403 | 405 => Err(Failure::Permanent(format!(
                "{via} refuses a tunnel to {target} ({status}): ask its administrators to allow CONNECT to this port, or set NO_PROXY for this host if it is reached directly"
            ))),
            s => Err(Failure::Transient(format!(
                "{via} could not open a tunnel to {target} ({s})"
            ))),
        }
    }
}

/// Whether `host` is in a `NO_PROXY` list.
fn bypassed(host: &str, list: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        // An entry may carry a port (`host:8443`) or brackets (`[::1]`): the host alone counts.
        let entry = entry.trim_start_matches('[');
        let entry = match entry.split_once(']') {
            Some((v6, _)) => v6,
            None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(entry),
            None => entry,
        };
        let entry = entry
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if entry.is_empty() {
            return false;
        }
        if host == entry {
            return true;
        }
        // A domain covers its subdomains; an IP address only itself.
        entry.parse::<std::net::IpAddr>().is_err()
            && host.parse::<std::net::IpAddr>().is_err()
            && host.ends_with(&format!(".{entry}"))
    })
}

/// `%XX` decoded (credentials in a proxy URL); other text as it is.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the proxy's credentials hold a % that is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the proxy's credentials are not UTF-8 once decoded".into())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for k in 0..4 {
            if k <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> BaseUrl {
        BaseUrl::parse(s).unwrap()
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
    }

    #[test]
    fn proxy_urls_are_parsed_and_credentials_only_from_the_environment() {
        let p = Proxy::parse("http://Proxy.Corp.Example:3128/", "--upload-proxy", false).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.auth.is_none()),
            ("proxy.corp.example", 3128, true)
        );
        let p = Proxy::parse("10.0.0.1:8080", "HTTPS_PROXY", true).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("10.0.0.1", 8080));
        let p = Proxy::parse("http://[fd00::1]:3128", "HTTPS_PROXY", true).unwrap();
        assert_eq!(p.authority(), "[fd00::1]:3128");
        let p = Proxy::parse("http://svc%40corp:p%3Ass@proxy:3128", "HTTPS_PROXY", true).unwrap();
        assert_eq!(p.auth.as_deref(), Some(base64(b"svc@corp:p:ss").as_str()));
        assert!(!format!("{p:?}").contains(&base64(b"svc@corp:p:ss")));
        let e = Proxy::parse("http://svc:hunter2@proxy:3128", "--upload-proxy", false).unwrap_err();
        assert!(e.contains("HTTPS_PROXY") && !e.contains("hunter2"), "{e}");
        for bad in [
            "http://proxy",
            "https://proxy:3128",
            "socks5://proxy:1080",
            "ftp://proxy:21",
            "http://proxy:3128/path",
            "http://proxy:0",
            "http://pro xy:3128",
            "http://proxy:3128\r\nX: y",
            "http://u:%zz@proxy:3128",
        ] {
            assert!(Proxy::parse(bad, "HTTPS_PROXY", true).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_proxy_comes_from_the_flag_then_the_environment_and_no_proxy_is_kept() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let fleet = url("https://fleet.example:8443");
        let corp = env(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "intranet.example, .lan,10.1.2.3"),
        ]);
        let chosen = |u: &BaseUrl, flag: Option<&str>, e: &dyn Fn(&str) -> Option<String>| {
            Proxy::choose(u, flag, e)
                .unwrap()
                .map(|p| (p.authority(), p.from))
        };
        assert_eq!(
            chosen(&fleet, None, &corp),
            Some(("proxy:3128".into(), "HTTPS_PROXY"))
        );
        // The flag wins, and `none` turns the environment's proxy off.
        assert_eq!(
            chosen(&fleet, Some("http://other:8080"), &corp),
            Some(("other:8080".into(), "--upload-proxy"))
        );
        assert_eq!(chosen(&fleet, Some("none"), &corp), None);
        // NO_PROXY: a domain and its subdomains, a leading dot, an address; not a look-alike.
        for direct in [
            "https://intranet.example",
            "https://fleet.intranet.example",
            "https://fleet.lan",
            "https://10.1.2.3",
        ] {
            assert_eq!(chosen(&url(direct), None, &corp), None, "{direct}");
        }
        for proxied in [
            "https://notintranet.example",
            "https://10.1.2.30",
            "https://lan.example",
        ] {
            assert!(chosen(&url(proxied), None, &corp).is_some(), "{proxied}");
        }
        // Loopback is direct whatever is set.
        assert_eq!(chosen(&url("https://localhost:8443"), None, &corp), None);
        assert_eq!(
            chosen(&url("https://127.0.0.1:8443"), Some("http://p:1"), &corp),
            None
        );
        // http:// reads http_proxy (lower case first), https:// does not; ALL_PROXY last.
        let plain = url("http://fleet.example");
        let both = env(&[
            ("HTTPS_PROXY", "http://tls-only:1"),
            ("http_proxy", "http://web:2"),
            ("HTTP_PROXY", "http://upper:3"),
        ]);
        assert_eq!(
            chosen(&plain, None, &both),
            Some(("web:2".into(), "http_proxy"))
        );
        let all = env(&[("all_proxy", "http://all:4")]);
        assert_eq!(
            chosen(&fleet, None, &all),
            Some(("all:4".into(), "all_proxy"))
        );
        assert_eq!(
            chosen(
                &fleet,
                None,
                &env(&[("NO_PROXY", "*"), ("HTTPS_PROXY", "http://p:1")])
            ),
            None
        );
        assert_eq!(chosen(&fleet, None, &env(&[])), None);
    }
}
