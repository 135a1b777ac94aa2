//! One HTTP/1.1 POST to `exhunt serve`, over TLS that verifies the server (rustls with the
//! ring provider, already in the binary for the probe) or plain HTTP to loopback.
//!
//! Blocking on purpose: uploads are sequential, and a blocking socket with read and write
//! timeouts is the whole client (no runtime, no connection pool, nothing the responder build
//! has to carry). The request asks `Expect: 100-continue`, so that a refusal the server decides
//! from the head (401, 403, 413 on the declared length) comes back before the body is sent. The
//! answer is read until the server closes (`Connection: close`) and parsed by the probe's
//! response parser, which is tested and fuzzed against hostile servers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::Token;
use super::proxy::Proxy;
use super::url::BaseUrl;

/// Time to connect to one address.
const CONNECT: Duration = Duration::from_secs(10);
/// Time one read or write may block (inactivity, not a bound on the whole upload).
const IDLE: Duration = Duration::from_secs(120);
/// Time to wait for `100 Continue` before sending the body anyway (a server or proxy that
/// ignores `Expect`).
const CONTINUE_WAIT: Duration = Duration::from_secs(3);
/// Largest answer read.
const ANSWER_LIMIT: usize = 1024 * 1024;
/// Time the whole answer may take once the request is sent (exhunt serve's own limit for a
/// whole request is 300 s): a server that trickles bytes cannot hold the upload forever.
const ANSWER_TIME: Duration = Duration::from_secs(330);

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Could not reach the server; worth trying again (refused, reset, timed out, name not
    /// resolved right now).
    Transient(String),
    /// Will fail the same way again (certificate not trusted, plain HTTP refused).
    Permanent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(s) | Failure::Permanent(s) => f.write_str(s),
        }
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Body (at most [`ANSWER_LIMIT`]).
    pub(crate) body: Vec<u8>,
    /// `Retry-After` in seconds, when given as a number.
    pub(crate) retry_after: Option<u64>,
}

/// Where and how to send.
pub(crate) struct Client {
    pub(crate) url: BaseUrl,
    /// TLS configuration (`https://` only).
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) token: Token,
    /// Plain HTTP allowed to other hosts than loopback.
    pub(crate) insecure_http: bool,
    /// The HTTP proxy to tunnel through (`CONNECT`), if any.
    pub(crate) proxy: Option<Proxy>,
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Client {
    /// `POST {prefix}{path}` with `body`; the answer whatever its status.
    pub(crate) fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let tcp = self.connect()?;
        let mut stream = match &self.tls {
            Some(cfg) => Conn::Tls(Box::new(self.handshake(cfg.clone(), tcp)?)),
            None => Conn::Plain(tcp),
        };
        let head = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: exhunt/{}\r\nAccept: application/json\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
            self.url.prefix,
            self.url.host_header(),
            env!("CARGO_PKG_VERSION"),
            body.len(),
            self.token.secret(),
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| io_failure("sending the request", &e))?;
        let mut answer = Vec::new();
        // The server's first word: `100 Continue`, a final answer (a refusal), or nothing yet.
        let _ = stream.socket().set_read_timeout(Some(CONTINUE_WAIT));
        let early = read_head_within(&mut stream, &mut answer)?;
        let _ = stream.socket().set_read_timeout(Some(IDLE));
        let refused_early = early && !strip_interim(&mut answer);
        if !refused_early && let Err(e) = stream.write_all(body).and_then(|()| stream.flush()) {
            // The server may have answered and closed while we were sending (413 once it
            // counted the bytes): its answer is worth more than the write error.
            if read_to_close(&mut stream, &mut answer).is_err() || answer.is_empty() {
                return Err(io_failure("sending the body", &e));
            }
        }
        read_to_close(&mut stream, &mut answer)
            .map_err(|e| io_failure("reading the answer", &e))?;
        parse(answer)
    }

    /// `GET {prefix}{path}`: the answer whatever its status.
    pub(crate) fn get(&self, path: &str) -> Result<Reply, Failure> {
        let tcp = self.connect()?;
        let mut stream = match &self.tls {
            Some(cfg) => Conn::Tls(Box::new(self.handshake(cfg.clone(), tcp)?)),
            None => Conn::Plain(tcp),
        };
        let head = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: exhunt/{}\r\nAccept: application/json\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
            self.url.prefix,
            self.url.host_header(),
            env!("CARGO_PKG_VERSION"),
            self.token.secret(),
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| io_failure("sending the request", &e))?;
        let mut answer = Vec::new();
        read_to_close(&mut stream, &mut answer)
            .map_err(|e| io_failure("reading the answer", &e))?;
        parse(answer)
    }

    /// A connection to the server: straight, or a tunnel through the proxy (the server's name
    /// is then resolved by the proxy).
    fn connect(&self) -> Result<TcpStream, Failure> {
        if let Some(p) = &self.proxy {
            let mut tcp = open(
                &p.host,
                p.port,
                &format!("the proxy {} ({})", p.authority(), p.from),
            )?;
            p.tunnel(&mut tcp, &self.url)?;
            let _ = tcp.set_read_timeout(Some(IDLE));
            return Ok(tcp);
        }
        let addrs = resolve(&self.url.host, self.url.port)?;
        if !self.url.tls && !self.insecure_http && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Failure::Permanent(format!(
                "{} resolves to an address that is not loopback: plain http:// would send the token and the evidence readable on the network (use https://, or --upload-insecure-http on a network you trust)",
                self.url.host
            )));
        }
        connect_any(
            &addrs,
            &format!(
                "{} (is exhunt serve running and reachable there?)",
                self.url.host_header()
            ),
            &self.url.host,
        )
    }

    fn handshake(
        &self,
        cfg: Arc<rustls::ClientConfig>,
        mut tcp: TcpStream,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Failure> {
        let name = match self.url.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.url.host.clone())
                .map_err(|e| Failure::Permanent(format!("TLS: bad server name: {e}")))?,
        };
        let mut conn = rustls::ClientConnection::new(cfg, name)
            .map_err(|e| Failure::Permanent(format!("TLS: {e}")))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                return Err(tls_failure(&e));
            }
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    Ok((host, port)
        .to_socket_addrs()
        .map_err(|e| Failure::Transient(format!("cannot resolve {host}: {e}")))?
        .collect())
}

/// A connection to `host`, described as `what` in errors.
fn open(host: &str, port: u16, what: &str) -> Result<TcpStream, Failure> {
    connect_any(&resolve(host, port)?, what, host)
}

/// The first of `addrs` that takes a connection (with the client's timeouts set).
fn connect_any(addrs: &[SocketAddr], what: &str, host: &str) -> Result<TcpStream, Failure> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, CONNECT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(IDLE));
                let _ = s.set_write_timeout(Some(IDLE));
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_failure(&format!("cannot connect to {what}"), &e),
        None => Failure::Transient(format!("{host} has no address")),
    })
}

/// The answer read until the server closed, as a [`Reply`] (interim answers skipped).
fn parse(mut answer: Vec<u8>) -> Result<Reply, Failure> {
    strip_interim(&mut answer);
    if answer.is_empty() {
        return Err(Failure::Transient(
            "the server closed the connection without an answer".into(),
        ));
    }
    let r = exhunt_probe::http::parse_response_bytes(
        &answer,
        exhunt_probe::http::Limits {
            head: 64 * 1024,
            body: ANSWER_LIMIT,
        },
    )
    .map_err(|e| Failure::Transient(format!("the answer is not HTTP: {e}")))?;
    Ok(Reply {
        status: r.status,
        retry_after: r.header("retry-after").and_then(|v| v.trim().parse().ok()),
        body: r.body,
    })
}

/// Reads into `buf` until a whole response head is there (true), or [`CONTINUE_WAIT`] passes
/// without one (false; what was read stays in `buf`). The socket's read timeout is that wait.
fn read_head_within(stream: &mut Conn, buf: &mut Vec<u8>) -> Result<bool, Failure> {
    let deadline = std::time::Instant::now() + CONTINUE_WAIT;
    let mut chunk = [0u8; 4096];
    loop {
        if memchr_head_end(buf).is_some() {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err(Failure::Transient(
                    "the server closed the connection without an answer".into(),
                ));
            }
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure("waiting for the server", &e)),
        }
        if buf.len() > ANSWER_LIMIT {
            return Ok(true);
        }
    }
}

fn memchr_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Removes leading interim (1xx) responses from `buf`; false when what is left starts a final
/// response (or is empty after a complete interim one: the body is wanted).
fn strip_interim(buf: &mut Vec<u8>) -> bool {
    let mut had = false;
    while buf.starts_with(b"HTTP/1.1 1") || buf.starts_with(b"HTTP/1.0 1") {
        match memchr_head_end(buf) {
            Some(end) => {
                buf.drain(..end);
                had = true;
            }
            None => break,
        }
    }
    had && buf.is_empty()
}

/// Reads until the server closes (or the size or time limit).
fn read_to_close(stream: &mut Conn, buf: &mut Vec<u8>) -> io::Result<()> {
    let deadline = std::time::Instant::now() + ANSWER_TIME;
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() <= ANSWER_LIMIT {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no whole answer within {} s", ANSWER_TIME.as_secs()),
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify, after a whole answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !buf.is_empty() => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn io_failure(what: &str, e: &io::Error) -> Failure {
    Failure::Transient(format!("{what}: {e}"))
}

fn tls_failure(e: &io::Error) -> Failure {
    use rustls::CertificateError as C;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let why = match c {
                C::UnknownIssuer => {
                    "it is not signed by a trusted CA (for a private CA, give its certificate with --upload-ca FILE)".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it is not issued for this host name (use the name the certificate names)"
                        .to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "it is not valid yet (check this machine's clock)".to_string()
                }
                other => format!("{other:?}"),
            };
            Failure::Permanent(format!("TLS: the server's certificate is refused: {why}"))
        }
        Some(other) => Failure::Permanent(format!("TLS: {other}")),
        None => Failure::Transient(format!("TLS handshake: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interim_answers_are_skipped_and_final_ones_kept() {
        let mut b = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        assert!(strip_interim(&mut b), "a lone 100: the body is wanted");
        assert!(b.is_empty());
        let mut b = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\n".to_vec();
        assert!(!strip_interim(&mut b));
        assert!(b.starts_with(b"HTTP/1.1 201"));
        let mut b = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n".to_vec();
        assert!(!strip_interim(&mut b), "a refusal before the body");
        assert!(b.starts_with(b"HTTP/1.1 401"));
        let mut b = b"HTTP/1.1 100 Contin".to_vec();
        assert!(
            !strip_interim(&mut b),
            "an incomplete interim answer is not skipped"
        );
    }
}
