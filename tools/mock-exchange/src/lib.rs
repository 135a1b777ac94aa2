//! A mock Exchange server for `exhunt probe` tests and benchmarks. Test-only: it is not part of
//! the exhunt binary.
//!
//! Each [`Site`] is one listening socket on a loopback address (127.0.0.0/8 or ::1; anything else
//! is refused) with a [`Profile`]: an Exchange front end of a given build whose version
//! signals (X-OWA-Version header, OWA logon page path, ECP export-tool manifest) and whose
//! behaviour on the public detection probes (ProxyLogon cookie check, ProxyShell autodiscover
//! status, Microsoft's URL Rewrite mitigations, which abort the request) can each be switched;
//! or a broken server: not Exchange, reset connections, garbage bytes, TLS garbage, endless or
//! giant headers, silence.
//!
//! The mock answers the probe's requests the way the public sources describe Exchange answering
//! them (probe-and-ecosystem.md A1, A2); it implements no Exchange functionality and holds no
//! exploit.

#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How a site answers a public detection probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// As an unpatched server.
    Vulnerable,
    /// As a patched server.
    Patched,
    /// As a server with Microsoft's URL Rewrite mitigation: the request is aborted.
    Mitigated,
}

/// An Exchange front end.
#[derive(Debug, Clone)]
pub struct ExchangeSite {
    /// The four-part build, e.g. `15.2.1118.20`.
    pub build: String,
    /// Whether the logon page carries the `X-OWA-Version` header.
    pub owa_version_header: bool,
    /// Whether the logon page links its resources under `/owa/auth/<3-part build>/`.
    pub owa_path: bool,
    /// Whether the ECP export-tool manifest answers under `Current`.
    pub exporttool_current: bool,
    /// Whether the export-tool manifest answers under its build folder.
    pub exporttool_by_build: bool,
    /// The ProxyLogon `X-AnonResource` cookie check.
    pub proxylogon: Behaviour,
    /// The ProxyShell autodiscover probe.
    pub proxyshell: Behaviour,
    /// Whether the ProxyNotShell URL Rewrite rule (autodiscover + powershell) is installed.
    pub pns_mitigated: bool,
}

impl ExchangeSite {
    /// A server of `build` that shows its build everywhere and behaves patched.
    pub fn new(build: &str) -> ExchangeSite {
        ExchangeSite {
            build: build.to_string(),
            owa_version_header: true,
            owa_path: true,
            exporttool_current: true,
            exporttool_by_build: true,
            proxylogon: Behaviour::Patched,
            proxyshell: Behaviour::Patched,
            pns_mitigated: false,
        }
    }

    fn three_part(&self) -> String {
        self.build
            .splitn(4, '.')
            .take(3)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// What a site does.
#[derive(Debug, Clone)]
pub enum Profile {
    /// An Exchange front end.
    Exchange(ExchangeSite),
    /// A web server that is not Exchange.
    NotExchange,
    /// Accepts the connection (and the TLS handshake) and resets it at the first request.
    Reset,
    /// Answers every request with bytes that are not HTTP.
    Garbage,
    /// Accepts and never sends a byte.
    Silent,
    /// Sends a status line, then a header every 5 ms, forever.
    EndlessHeaders,
    /// Sends a status line and one 1 MiB header.
    GiantHeaders,
}

/// The transport of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP.
    Plain,
    /// TLS with a self-signed certificate for `mail.mock.test`, valid now.
    Tls,
    /// TLS with a self-signed certificate that expired in 2020.
    TlsExpired,
    /// Not TLS at all: bytes that are neither a TLS record nor HTTP, then close.
    TlsGarbage,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct Site {
    /// Loopback address and port (0 = any free port).
    pub addr: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Behaviour.
    pub profile: Profile,
}

impl Site {
    /// A TLS site on `ip`, any free port.
    pub fn tls(ip: IpAddr, profile: Profile) -> Site {
        Site {
            addr: SocketAddr::new(ip, 0),
            transport: Transport::Tls,
            profile,
        }
    }
}

/// A running mock; it stops when dropped.
pub struct Mock {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// The bound addresses, in the order of the sites.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Loopback addresses `127.<a>.<b>.<c>` counting up from `first`.
pub fn loopback_range(first: Ipv4Addr, count: u32) -> impl Iterator<Item = IpAddr> {
    let base = u32::from(first);
    (0..count).map(move |i| IpAddr::V4(Ipv4Addr::from(base + i)))
}

/// `count` TLS sites on consecutive loopback addresses from `first`, all on one port (`port`, or
/// a free one when 0), `profile(i)` for the i-th; returns the mock and the port. A free port of
/// the first address can be taken on another address before all are bound (the ephemeral range
/// is shared by every test running at the time): then another port is tried.
pub fn start_range(
    first: Ipv4Addr,
    count: u32,
    port: u16,
    profile: impl Fn(u32) -> Profile,
    threads: usize,
) -> anyhow::Result<(Mock, u16)> {
    let mut attempt = 0;
    loop {
        let p = if port == 0 {
            std::net::TcpListener::bind((first, 0))?
                .local_addr()?
                .port()
        } else {
            port
        };
        let sites = loopback_range(first, count)
            .zip(0..)
            .map(|(ip, i)| Site {
                addr: SocketAddr::new(ip, p),
                transport: Transport::Tls,
                profile: profile(i),
            })
            .collect();
        match start(sites, threads) {
            Ok(m) => return Ok((m, p)),
            Err(e)
                if port == 0
                    && attempt < 20
                    && e.chain().any(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
                    }) =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

struct Tls {
    valid: tokio_rustls::TlsAcceptor,
    expired: tokio_rustls::TlsAcceptor,
}

fn acceptor(expired: bool) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mut params = rcgen::CertificateParams::new(vec!["mail.mock.test".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mail.mock.test");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "exhunt mock");
    if expired {
        params.not_before = rcgen::date_time_ymd(2018, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    } else {
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    }
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds every site and serves them on a runtime of `threads` worker threads in a background
/// thread. Refuses any address that is not loopback.
pub fn start(sites: Vec<Site>, threads: usize) -> anyhow::Result<Mock> {
    for s in &sites {
        if !s.addr.ip().is_loopback() {
            bail!(
                "mock-exchange binds loopback addresses only, not {}",
                s.addr
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let tls = Arc::new(Tls {
        valid: acceptor(false)?,
        expired: acceptor(true)?,
    });
    let (stop, stop_rx) = watch::channel(false);
    let mut listeners = Vec::with_capacity(sites.len());
    let mut addrs = Vec::with_capacity(sites.len());
    {
        let _g = rt.enter();
        for s in &sites {
            let std_l = std::net::TcpListener::bind(s.addr)
                .with_context(|| format!("binding {}", s.addr))?;
            std_l.set_nonblocking(true)?;
            addrs.push(std_l.local_addr()?);
            listeners.push(TcpListener::from_std(std_l)?);
        }
    }
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            for (l, site) in listeners.into_iter().zip(sites) {
                let tls = tls.clone();
                let mut stop_rx = stop_rx.clone();
                let site = Arc::new(site);
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop_rx.changed() => break,
                            acc = l.accept() => {
                                let Ok((sock, _)) = acc else { continue };
                                let _ = sock.set_nodelay(true);
                                tokio::spawn(serve(sock, site.clone(), tls.clone()));
                            }
                        }
                    }
                });
            }
            let mut rx = stop_rx;
            let _ = rx.changed().await;
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    });
    Ok(Mock {
        addrs,
        stop,
        thread: Some(thread),
    })
}

async fn serve(sock: TcpStream, site: Arc<Site>, tls: Arc<Tls>) {
    match site.transport {
        Transport::Plain => http(sock, &site).await,
        Transport::Tls | Transport::TlsExpired => {
            let acc = if site.transport == Transport::Tls {
                &tls.valid
            } else {
                &tls.expired
            };
            if let Ok(s) = acc.accept(sock).await {
                http(s, &site).await;
            }
        }
        Transport::TlsGarbage => {
            let mut sock = sock;
            let mut buf = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
            let _ = sock.write_all(&garbage(300)).await;
            let _ = sock.shutdown().await;
        }
    }
}

fn garbage(n: usize) -> Vec<u8> {
    // Deterministic bytes that are neither a TLS record type nor printable HTTP.
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Avoid 0x14..=0x18 (TLS record types) as the first byte.
            (x as u8) | 0x80
        })
        .collect()
}

/// A connection that can be dropped with a reset, as IIS does for a URL Rewrite `AbortRequest`.
trait Conn: AsyncRead + AsyncWrite + Unpin {
    fn abort(self);
}

impl Conn for TcpStream {
    #[allow(deprecated)]
    fn abort(self) {
        let _ = self.set_linger(Some(Duration::ZERO));
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    #[allow(deprecated)]
    fn abort(self) {
        let _ = self.get_ref().0.set_linger(Some(Duration::ZERO));
    }
}

async fn http<S: Conn>(mut s: S, site: &Site) {
    let mut buf = Vec::with_capacity(2048);
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 16 * 1024 {
                return;
            }
            let mut chunk = [0u8; 2048];
            match tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut cookie = String::new();
        let mut close = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("cookie") {
                    cookie = v.trim().to_string();
                } else if k.eq_ignore_ascii_case("connection")
                    && v.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        let reply = match &site.profile {
            Profile::Exchange(x) => exchange(x, &path, &cookie),
            Profile::NotExchange => Reply::Send(not_exchange(&path)),
            Profile::Reset => Reply::Abort,
            Profile::Garbage => {
                let _ = s.write_all(&garbage(200)).await;
                return;
            }
            Profile::Silent => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Profile::EndlessHeaders => {
                if s.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                    return;
                }
                for i in 0u64.. {
                    let h = format!("X-Endless-{i}: {}\r\n", "a".repeat(40));
                    if s.write_all(h.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return;
            }
            Profile::GiantHeaders => {
                let mut r = b"HTTP/1.1 200 OK\r\nX-Giant: ".to_vec();
                r.extend(std::iter::repeat_n(b'g', 1 << 20));
                r.extend_from_slice(b"\r\n\r\n");
                let _ = s.write_all(&r).await;
                return;
            }
        };
        match reply {
            Reply::Abort => {
                s.abort();
                return;
            }
            Reply::Send(bytes) => {
                if s.write_all(&bytes).await.is_err() || close {
                    let _ = s.shutdown().await;
                    return;
                }
            }
        }
    }
}

enum Reply {
    Send(Vec<u8>),
    Abort,
}

fn response(status: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r.into_bytes()
}

fn percent_decode_lower(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten();
        if let Some(v) = pair {
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

fn exchange(x: &ExchangeSite, path: &str, cookie: &str) -> Reply {
    let fe = ("X-FEServer", "MOCKFE01".to_string());
    let server = ("Server", "Microsoft-IIS/10.0".to_string());
    let lower = percent_decode_lower(path);
    let (stem, _query) = lower.split_once('?').unwrap_or((&lower, ""));
    // Microsoft's URL Rewrite mitigations abort before anything else answers.
    if x.pns_mitigated && lower.contains("autodiscover") && lower.contains("powershell") {
        return Reply::Abort;
    }
    if cookie.contains("X-AnonResource=true") {
        return match x.proxylogon {
            Behaviour::Mitigated => Reply::Abort,
            Behaviour::Vulnerable => Reply::Send(response(
                "500 Internal Server Error",
                &[
                    server,
                    fe,
                    ("X-CalculatedBETarget", "localhost".to_string()),
                ],
                "NegotiateSecurityContext failed",
            )),
            Behaviour::Patched => Reply::Send(response("404 Not Found", &[server, fe], "")),
        };
    }
    if stem.starts_with("/autodiscover/autodiscover.json") {
        if lower.contains("email=autodiscover/autodiscover.json") {
            return match x.proxyshell {
                Behaviour::Mitigated => Reply::Abort,
                Behaviour::Vulnerable => Reply::Send(response(
                    "302 Found",
                    &[server, fe, ("Location", "/owa/".to_string())],
                    "",
                )),
                Behaviour::Patched => Reply::Send(response("400 Bad Request", &[server, fe], "")),
            };
        }
        return Reply::Send(response("400 Bad Request", &[server, fe], ""));
    }
    if stem == "/owa" || stem == "/owa/" {
        return Reply::Send(response(
            "302 Found",
            &[
                server,
                fe,
                (
                    "Location",
                    "/owa/auth/logon.aspx?replaceCurrent=1&url=%2fowa%2f".to_string(),
                ),
            ],
            "",
        ));
    }
    if stem == "/owa/auth/logon.aspx" {
        let mut headers = vec![
            server,
            fe,
            ("Content-Type", "text/html; charset=utf-8".to_string()),
        ];
        if x.owa_version_header {
            headers.push(("X-OWA-Version", x.build.clone()));
        }
        let res = if x.owa_path {
            format!(
                "<link rel=\"shortcut icon\" href=\"/owa/auth/{}/themes/resources/favicon.ico\" type=\"image/x-icon\">",
                x.three_part()
            )
        } else {
            String::new()
        };
        let body = format!(
            "<!DOCTYPE html><html><head><title>Outlook</title>{res}</head><body><form action=\"/owa/auth.owa\"><input name=\"username\"></form></body></html>"
        );
        return Reply::Send(response("200 OK", &headers, &body));
    }
    let manifest = stem
        .strip_prefix("/ecp/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, file)| {
            *file == "exporttool/microsoft.exchange.ediscovery.exporttool.application"
        })
        .map(|(folder, _)| folder);
    if let Some(folder) = manifest {
        let ok = (folder == "current" && x.exporttool_current)
            || (folder == x.build && x.exporttool_by_build);
        if ok {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><asmv1:assembly xsi:schemaLocation=\"urn:schemas-microsoft-com:asm.v1 assembly.adaptive.xsd\" manifestVersion=\"1.0\" xmlns:asmv1=\"urn:schemas-microsoft-com:asm.v1\"><assemblyIdentity name=\"microsoft.exchange.ediscovery.exporttool.application\" version=\"{}\" publicKeyToken=\"b1d1a6c45aa418ce\" language=\"neutral\" processorArchitecture=\"msil\" xmlns=\"urn:schemas-microsoft-com:asm.v1\" /></asmv1:assembly>",
                x.build
            );
            return Reply::Send(response(
                "200 OK",
                &[
                    server,
                    fe,
                    ("Content-Type", "application/x-ms-application".to_string()),
                ],
                &body,
            ));
        }
    }
    Reply::Send(response("404 Not Found", &[server, fe], ""))
}

fn not_exchange(path: &str) -> Vec<u8> {
    let server = ("Server", "nginx/1.24.0".to_string());
    if path == "/" {
        response(
            "200 OK",
            &[server],
            "<html><head><title>Welcome to nginx!</title></head></html>",
        )
    } else {
        response(
            "404 Not Found",
            &[server],
            "<html><head><title>404 Not Found</title></head></html>",
        )
    }
}
