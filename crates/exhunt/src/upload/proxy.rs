//! `--upload` through an HTTP proxy: a tunnel asked for with `CONNECT host:port`, inside which
//! the client speaks TLS to `exhunt serve` exactly as without a proxy (the proxy sees neither
//! the token nor the evidence, and the server's certificate is still verified by its name).
//!
//! Which proxy: `--upload-proxy http://HOST:PORT` (or `none`), else, for an https:// server,
//! the environment's `HTTPS_PROXY` / `https_proxy`, then `ALL_PROXY` / `all_proxy` (a plain
//! http:// server goes through a proxy only when the flag names one: the proxy would read the
//! token); `NO_PROXY` / `no_proxy` names the hosts reached directly (`*`, host names, `.domain`
//! or `domain` for a domain and its subdomains, IP addresses, networks). Loopback is always
//! reached directly. Credentials (`http://USER:PASSWORD@…`,
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
/// Time the proxy's whole answer to CONNECT may take (a proxy that trickles bytes cannot hold
/// the upload: each read alone has the client's inactivity timeout).
const ANSWER_TIME: std::time::Duration = std::time::Duration::from_secs(60);

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

    /// The proxy for `url`: `flag` (`--upload-proxy`; `none` for no proxy) first, else (for an
    /// https:// server only) the environment as read by `env`. `None` for a direct connection.
    /// A flag that cannot be read is an error; an environment variable that cannot be read
    /// (set for other tools: `socks5://…`, no port) is a warning (the second value) and the
    /// connection goes direct, as before exhunt read proxies.
    pub(crate) fn choose(
        url: &BaseUrl,
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Option<Proxy>, Option<String>), String> {
        if let Some(f) = flag {
            if matches!(f.trim().to_ascii_lowercase().as_str(), "none" | "direct") {
                return Ok((None, None));
            }
            // Read (and credentials refused) even when it will not be used.
            let p = Proxy::parse(f, "--upload-proxy", false)?;
            return Ok(((!url.names_loopback()).then_some(p), None));
        }
        // Plain http:// goes through a proxy only when the flag says so: the proxy would read
        // the token and the evidence, and the environment's proxy is there for other tools.
        if url.names_loopback() || !url.tls {
            return Ok((None, None));
        }
        let var = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let Some((name, value)) =
            var(["HTTPS_PROXY", "https_proxy"]).or_else(|| var(["ALL_PROXY", "all_proxy"]))
        else {
            return Ok((None, None));
        };
        if let Some((_, list)) = var(["NO_PROXY", "no_proxy"])
            && bypassed(&url.host, &list)
        {
            return Ok((None, None));
        }
        match Proxy::parse(&value, name, true) {
            Ok(p) => Ok((Some(p), None)),
            Err(e) => Ok((
                None,
                Some(format!(
                    "{e}; the upload connects directly (--upload-proxy http://HOST:PORT names a proxy for it, --upload-proxy none silences this)"
                )),
            )),
        }
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
        let deadline = std::time::Instant::now() + ANSWER_TIME;
        let _ = tcp.set_read_timeout(Some(ANSWER_TIME));
        while !answer.ends_with(b"\r\n\r\n") {
            if std::time::Instant::now() > deadline {
                return Err(Failure::Transient(format!(
                    "{via} did not answer CONNECT within {} s",
                    ANSWER_TIME.as_secs()
                )));
            }
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
        let status = status_of(&answer).ok_or_else(|| {
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

/// The status of an answer head: `HTTP/1.x` and three digits, then a space or the line's end.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let version = words.next()?;
    if !(version.starts_with(b"HTTP/1.") && version.len() == 8 && version[7].is_ascii_digit()) {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Whether `addr` lies in `net` (`address/prefix`).
fn in_cidr(addr: std::net::IpAddr, net: &str) -> bool {
    use std::net::IpAddr;
    let Some((base, bits)) = net.split_once('/') else {
        return false;
    };
    let (Ok(base), Ok(bits)) = (base.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let (a, b, width) = match (addr, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    bits == 0 || (a >> shift) == (b >> shift)
}

/// Whether `host` is in a `NO_PROXY` list.
fn bypassed(host: &str, list: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip = host.parse::<std::net::IpAddr>().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        // A network (`10.0.0.0/8`, `fd00::/8`) holds the addresses written as the host.
        if entry.contains('/') {
            return host_ip.is_some_and(|ip| in_cidr(ip, entry));
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
        if let (Some(h), Ok(e)) = (host_ip, entry.parse::<std::net::IpAddr>()) {
            return h == e;
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
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
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
            (
                "NO_PROXY",
                "intranet.example, .lan,10.1.2.3,192.168.0.0/16,[fd00::1],fd10::/16",
            ),
        ]);
        let chosen = |u: &BaseUrl, flag: Option<&str>, e: &dyn Fn(&str) -> Option<String>| {
            let (p, warning) = Proxy::choose(u, flag, e).unwrap();
            assert_eq!(warning, None);
            p.map(|p| (p.authority(), p.from))
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
        // NO_PROXY: a domain and its subdomains, a leading dot, addresses (IPv6 compared as
        // addresses), networks; not a look-alike.
        for direct in [
            "https://intranet.example",
            "https://fleet.intranet.example",
            "https://fleet.lan",
            "https://10.1.2.3",
            "https://192.168.7.9",
            "https://[fd00:0::1]",
            "https://[fd10:1::5]:8443",
        ] {
            assert_eq!(chosen(&url(direct), None, &corp), None, "{direct}");
        }
        for proxied in [
            "https://notintranet.example",
            "https://10.1.2.30",
            "https://lan.example",
            "https://192.169.0.1",
            "https://[fd00::2]",
            "https://[fd11::1]",
        ] {
            assert!(chosen(&url(proxied), None, &corp).is_some(), "{proxied}");
        }
        // Loopback is direct whatever is set.
        assert_eq!(chosen(&url("https://localhost:8443"), None, &corp), None);
        assert_eq!(
            chosen(&url("https://127.0.0.1:8443"), Some("http://p:1"), &corp),
            None
        );
        // Plain http:// reads no proxy from the environment (the proxy would read the token);
        // only the flag sends it through one.
        let plain = url("http://fleet.example");
        let all = env(&[
            ("http_proxy", "http://web:2"),
            ("HTTP_PROXY", "http://upper:3"),
            ("ALL_PROXY", "http://all:4"),
            ("HTTPS_PROXY", "http://tls:5"),
        ]);
        assert_eq!(chosen(&plain, None, &all), None);
        assert_eq!(
            chosen(&plain, Some("http://p:1"), &all),
            Some(("p:1".into(), "--upload-proxy"))
        );
        // ALL_PROXY after HTTPS_PROXY; NO_PROXY=* is everything.
        assert_eq!(
            chosen(&fleet, None, &env(&[("all_proxy", "http://all:4")])),
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

    #[test]
    fn an_unreadable_environment_proxy_is_a_warning_and_a_bad_flag_an_error() {
        let fleet = url("https://fleet.example");
        for value in [
            "socks5h://127.0.0.1:1080",
            "https://proxy:3128",
            "http://proxy",
            "http://bad_host:3128",
        ] {
            let env = move |k: &str| (k == "ALL_PROXY").then(|| value.to_string());
            let (p, warning) = Proxy::choose(&fleet, None, &env).unwrap();
            assert_eq!(p, None, "{value}");
            let w = warning.unwrap_or_default();
            assert!(
                w.contains("ALL_PROXY") && w.contains("--upload-proxy none"),
                "{w}"
            );
            assert!(!w.contains(value), "the value is not repeated: {w}");
        }
        let none = |_: &str| None;
        assert!(Proxy::choose(&fleet, Some("socks5://p:1"), &none).is_err());
        // Credentials in the flag are refused even where the flag would not be used.
        let e = Proxy::choose(
            &url("https://localhost"),
            Some("http://u:hunter2@p:1"),
            &none,
        )
        .unwrap_err();
        assert!(e.contains("process list") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn status_lines_are_read_strictly() {
        for (head, want) in [
            (
                &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
                Some(200),
            ),
            (b"HTTP/1.0 200\r\n\r\n", Some(200)),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                Some(407),
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", None),
            (b"HTTP/1.1 +20 OK\r\n\r\n", None),
            (b"HTTP/2 200\r\n\r\n", None),
            (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None),
            (b"\r\n\r\n", None),
        ] {
            assert_eq!(status_of(head), want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    /// A proxy on loopback that reads one request head and answers `answer`.
    fn scripted(answer: &'static [u8]) -> (TcpStream, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = s.write_all(answer);
            String::from_utf8_lossy(&head).into_owned()
        });
        (TcpStream::connect(addr).unwrap(), t)
    }

    #[test]
    fn a_tunnel_is_opened_only_on_a_2xx_and_every_refusal_says_what_to_do() {
        let target = url("https://fleet.example:8443");
        let proxy = Proxy::parse("http://svc:pw@127.0.0.1:3128", "HTTPS_PROXY", true).unwrap();
        let bare = Proxy::parse("http://127.0.0.1:3128", "--upload-proxy", false).unwrap();
        // A 200 (HTTP/1.0 too) opens it; bytes after the head stay for the tunnel.
        let (mut tcp, seen) = scripted(b"HTTP/1.0 200 OK\r\n\r\nTLS");
        proxy.tunnel(&mut tcp, &target).unwrap();
        let mut rest = [0u8; 3];
        tcp.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"TLS");
        let head = seen.join().unwrap();
        assert!(
            head.starts_with("CONNECT fleet.example:8443 HTTP/1.1\r\nHost: fleet.example:8443\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(b"svc:pw")
        )));
        let (mut tcp, seen) = scripted(b"HTTP/1.1 200 OK\r\n\r\n");
        bare.tunnel(&mut tcp, &target).unwrap();
        assert!(!seen.join().unwrap().contains("Proxy-Authorization"));
        // Refusals.
        for (p, answer, permanent, says) in [
            (
                &bare,
                &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
                true,
                "asks for credentials (407)",
            ),
            (
                &proxy,
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                true,
                "refused the credentials",
            ),
            (
                &proxy,
                b"HTTP/1.1 403 Forbidden\r\n\r\n",
                true,
                "allow CONNECT to this port",
            ),
            (
                &proxy,
                b"HTTP/1.1 502 Bad Gateway\r\n\r\n",
                false,
                "could not open a tunnel",
            ),
            (
                &proxy,
                b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                true,
                "is it an HTTP proxy",
            ),
            (&proxy, b"HTTP/1.1 200", false, "closed the connection"),
        ] {
            let (mut tcp, seen) = scripted(answer);
            let e = p.tunnel(&mut tcp, &target).unwrap_err();
            let _ = seen.join();
            assert_eq!(matches!(e, Failure::Permanent(_)), permanent, "{e}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        // A head that never ends is cut at its limit.
        let long: &'static [u8] = Box::leak(
            [b"HTTP/1.1 200 OK\r\n".to_vec(), vec![b'x'; HEAD_LIMIT + 10]]
                .concat()
                .into_boxed_slice(),
        );
        let (mut tcp, seen) = scripted(long);
        let e = proxy.tunnel(&mut tcp, &target).unwrap_err();
        let _ = seen.join();
        assert!(e.to_string().contains("bytes of head"), "{e}");
    }
}
