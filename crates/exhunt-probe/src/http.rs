//! A small HTTP/1.1 client made for probing servers that may be hostile or broken.
//!
//! A general client (hyper, reqwest) hides what a probe needs to see: whether the connection
//! was reset before any byte (Microsoft's URL Rewrite mitigations abort the request), the raw
//! header set, and the certificate of a server whose certificate is self-signed. It also
//! makes limits hard to enforce on a server that sends headers forever. This one sends one
//! GET at a time on a keep-alive connection and reads the answer under hard limits: a time
//! limit for the whole response, a size limit for the head and for the body. Every failure is
//! a variant of [`HttpError`] that the caller turns into a reported state.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::targets::Scheme;

/// Size limits of one response.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Status line and headers.
    pub head: usize,
    /// Body kept (the rest is not read).
    pub body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head: 64 * 1024,
            body: 256 * 1024,
        }
    }
}

/// Timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// TLS handshake.
    pub tls: Duration,
    /// One whole response, from sending the request to the last byte kept.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            tls: Duration::from_secs(5),
            read: Duration::from_secs(10),
        }
    }
}

/// Why a request gave no usable response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(String),
    /// TCP connect timed out.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The peer does not speak TLS (sent other bytes).
    #[error("not a TLS service: {0}")]
    NotTls(String),
    /// TLS handshake failed otherwise.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// TLS handshake timed out.
    #[error("TLS handshake timed out after {0:?}")]
    TlsTimeout(Duration),
    /// The connection was closed or reset before any byte of a response: what an
    /// `AbortRequest` rewrite rule does.
    #[error("connection closed without a response ({0})")]
    Aborted(String),
    /// The bytes are not an HTTP response.
    #[error("not an HTTP response: {0}")]
    NotHttp(String),
    /// The head exceeded the limit.
    #[error("response head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// No complete response head in time.
    #[error("no complete response within {0:?}")]
    ReadTimeout(Duration),
    /// Other I/O error mid-response.
    #[error("I/O error: {0}")]
    Io(String),
}

/// A response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body, at most the limit, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body was cut at the limit or at the time limit.
    pub body_truncated: bool,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

impl Response {
    /// A header's value (case-insensitive name); the first when repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a server's certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// Whether `not_after` is in the past at probe time.
    pub expired: bool,
    /// Whether subject and issuer are the same.
    pub self_signed: bool,
    /// DNS names of the subject alternative name extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
}

impl CertInfo {
    /// Reads a DER certificate; `None` when it does not parse (still recorded by hash).
    pub fn from_der(der: &[u8]) -> CertInfo {
        let sha256 = hex::encode(sha2::Sha256::digest(der));
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return CertInfo {
                subject: "(certificate does not parse)".into(),
                issuer: String::new(),
                not_before: String::new(),
                not_after: String::new(),
                expired: false,
                self_signed: false,
                dns_names: vec![],
                sha256,
            };
        };
        let time = |t: x509_parser::time::ASN1Time| {
            chrono::DateTime::from_timestamp(t.timestamp(), 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let v = cert.validity();
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(n) => Some((*n).to_string()),
                        _ => None,
                    })
                    .take(20)
                    .collect()
            })
            .unwrap_or_default();
        CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(v.not_before),
            not_after: time(v.not_after),
            expired: v.not_after.timestamp() < chrono::Utc::now().timestamp(),
            self_signed: cert.subject() == cert.issuer(),
            dns_names,
            sha256,
        }
    }
}

/// Accepts any certificate (Exchange servers commonly present self-signed ones) while still
/// checking that the server holds the key of the certificate it presents. The certificate is
/// recorded, not trusted: nothing but the probe's own reading is sent over the connection.
#[derive(Debug)]
struct RecordOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection.
pub struct Conn {
    io: Box<dyn Io>,
    /// The server certificate (TLS only).
    pub cert: Option<CertInfo>,
    /// TLS version and cipher suite (TLS only).
    pub tls: Option<String>,
    /// Requests sent on this connection.
    pub used: u32,
    buf: Vec<u8>,
}

/// The client: TLS configuration, limits and the User-Agent.
#[derive(Clone)]
pub struct Client {
    tls: tokio_rustls::TlsConnector,
    user_agent: String,
    /// Limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl Client {
    /// A client that identifies itself with `user_agent`.
    pub fn new(user_agent: String, limits: Limits, timeouts: Timeouts) -> Result<Client, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordOnly(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            user_agent,
            limits,
            timeouts,
        })
    }

    /// Connects (and, for HTTPS, shakes hands; SNI carries `host` when it is a name).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        host: &str,
        scheme: Scheme,
    ) -> Result<Conn, HttpError> {
        let t = self.timeouts;
        let tcp = match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
            Err(_) => return Err(HttpError::ConnectTimeout(t.connect)),
            Ok(Err(e)) => return Err(HttpError::Connect(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        if scheme == Scheme::Http {
            return Ok(Conn {
                io: Box::new(tcp),
                cert: None,
                tls: None,
                used: 0,
                buf: Vec::new(),
            });
        }
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string())
                .map_err(|e| HttpError::Tls(format!("bad server name: {e}")))?,
        };
        let tls = match tokio::time::timeout(t.tls, self.tls.connect(name, tcp)).await {
            Err(_) => return Err(HttpError::TlsTimeout(t.tls)),
            Ok(Err(e)) => return Err(tls_error(&e)),
            Ok(Ok(s)) => s,
        };
        let (_, session) = tls.get_ref();
        let cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| CertInfo::from_der(c.as_ref()));
        let version = session
            .protocol_version()
            .map(|v| format!("{v:?}").replace('_', "."))
            .unwrap_or_default();
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        Ok(Conn {
            io: Box::new(tls),
            cert,
            tls: Some(format!("{version} {suite}").trim().to_string()),
            used: 0,
            buf: Vec::new(),
        })
    }

    /// Sends `GET path` with the extra headers and reads the response under the limits.
    pub async fn get(
        &self,
        conn: &mut Conn,
        host: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: keep-alive\r\n",
            self.user_agent
        );
        for (k, v) in extra {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        conn.used += 1;
        let deadline = Instant::now() + self.timeouts.read;
        match timeout_at(deadline, conn.io.write_all(req.as_bytes())).await {
            Err(_) => return Err(HttpError::ReadTimeout(self.timeouts.read)),
            Ok(Err(e)) => return Err(abort_or_io(&e)),
            Ok(Ok(())) => {}
        }
        read_response(conn, self.limits, deadline, self.timeouts.read).await
    }
}

fn tls_error(e: &std::io::Error) -> HttpError {
    let text = e.to_string();
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                HttpError::NotTls(text)
            }
            _ => HttpError::Tls(text),
        };
    }
    if matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
    ) {
        return HttpError::Tls(format!("connection closed during the handshake ({text})"));
    }
    HttpError::Tls(text)
}

fn abort_or_io(e: &std::io::Error) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::UnexpectedEof => HttpError::Aborted(e.kind().to_string()),
        _ => HttpError::Io(e.to_string()),
    }
}

/// Reads more bytes into the connection buffer; `Ok(0)` at end of stream.
async fn fill(
    conn: &mut Conn,
    deadline: Instant,
    limit: std::time::Duration,
) -> Result<usize, HttpError> {
    let mut chunk = [0u8; 8192];
    match timeout_at(deadline, conn.io.read(&mut chunk)).await {
        Err(_) => Err(HttpError::ReadTimeout(limit)),
        Ok(Err(e)) => Err(abort_or_io(&e)),
        Ok(Ok(n)) => {
            conn.buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
    }
}

async fn read_response(
    conn: &mut Conn,
    limits: Limits,
    deadline: Instant,
    limit: Duration,
) -> Result<Response, HttpError> {
    // The head.
    let (mut resp, head_len, length, chunked) = loop {
        if !conn.buf.is_empty() {
            let n = conn.buf.len().min(5);
            if conn.buf[..n] != b"HTTP/"[..n] {
                return Err(HttpError::NotHttp(format!(
                    "starts with {:?}",
                    String::from_utf8_lossy(&conn.buf[..conn.buf.len().min(16)])
                )));
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(&conn.buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = r.code.unwrap_or(0);
                let mut out = Response {
                    status,
                    ..Response::default()
                };
                let mut length = None;
                let mut chunked = false;
                let mut close = r.version == Some(0);
                for h in r.headers.iter() {
                    let v = String::from_utf8_lossy(h.value).trim().to_string();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = v.parse::<u64>().ok();
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = v.to_ascii_lowercase().contains("chunked");
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = v.eq_ignore_ascii_case("close");
                    }
                    out.headers.push((h.name.to_string(), v));
                }
                out.reusable = !close;
                break (out, n, length, chunked);
            }
            Ok(httparse::Status::Partial) => {
                if conn.buf.len() > limits.head {
                    return Err(HttpError::HeadTooLarge(limits.head));
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::HeadTooLarge(limits.head));
            }
            Err(e) => return Err(HttpError::NotHttp(e.to_string())),
        }
        let before = conn.buf.len();
        match fill(conn, deadline, limit).await {
            Ok(0) if before == 0 => return Err(HttpError::Aborted("closed".into())),
            Ok(0) => return Err(HttpError::NotHttp("closed inside the response head".into())),
            Ok(_) => {}
            Err(HttpError::Aborted(k)) if before == 0 => return Err(HttpError::Aborted(k)),
            Err(HttpError::Aborted(k)) => {
                return Err(HttpError::NotHttp(format!("{k} inside the response head")));
            }
            Err(e) => return Err(e),
        }
    };
    conn.buf.drain(..head_len);
    let no_body = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if no_body {
        return Ok(resp);
    }
    // The body: errors here keep the head, which is what the probe reads.
    let r = if chunked {
        read_chunked(conn, &mut resp, limits, deadline, limit).await
    } else if let Some(len) = length {
        read_length(conn, &mut resp, len, limits, deadline, limit).await
    } else {
        resp.reusable = false;
        read_to_end(conn, &mut resp, limits, deadline, limit).await
    };
    if r.is_err() {
        resp.body_truncated = true;
        resp.reusable = false;
    }
    Ok(resp)
}

async fn read_length(
    conn: &mut Conn,
    resp: &mut Response,
    len: u64,
    limits: Limits,
    deadline: Instant,
    limit: Duration,
) -> Result<(), HttpError> {
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    let keep = want.min(limits.body);
    while conn.buf.len() < keep {
        if fill(conn, deadline, limit).await? == 0 {
            return Err(HttpError::Io("closed inside the body".into()));
        }
    }
    resp.body = conn.buf.drain(..keep).collect();
    if want > keep {
        resp.body_truncated = true;
        resp.reusable = false;
        conn.buf.clear();
    }
    Ok(())
}

async fn read_to_end(
    conn: &mut Conn,
    resp: &mut Response,
    limits: Limits,
    deadline: Instant,
    limit: Duration,
) -> Result<(), HttpError> {
    while conn.buf.len() < limits.body {
        if fill(conn, deadline, limit).await? == 0 {
            break;
        }
    }
    let keep = conn.buf.len().min(limits.body);
    resp.body_truncated = conn.buf.len() > keep;
    resp.body = conn.buf.drain(..keep).collect();
    conn.buf.clear();
    Ok(())
}

async fn read_chunked(
    conn: &mut Conn,
    resp: &mut Response,
    limits: Limits,
    deadline: Instant,
    limit: Duration,
) -> Result<(), HttpError> {
    loop {
        // Chunk-size line.
        let line_end = loop {
            if let Some(p) = memchr::memmem::find(&conn.buf, b"\r\n") {
                break p;
            }
            if conn.buf.len() > 1024 {
                return Err(HttpError::NotHttp("chunk size line too long".into()));
            }
            if fill(conn, deadline, limit).await? == 0 {
                return Err(HttpError::Io("closed inside a chunked body".into()));
            }
        };
        let line = String::from_utf8_lossy(&conn.buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::NotHttp(format!("bad chunk size {size_text:?}")))?;
        conn.buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(p) = memchr::memmem::find(&conn.buf, b"\r\n") {
                    let empty = p == 0;
                    conn.buf.drain(..p + 2);
                    if empty {
                        return Ok(());
                    }
                    continue;
                }
                if conn.buf.len() > 8192 || fill(conn, deadline, limit).await? == 0 {
                    resp.reusable = false;
                    return Ok(());
                }
            }
        }
        if resp.body.len() + size > limits.body {
            resp.body_truncated = true;
            resp.reusable = false;
            let room = limits.body - resp.body.len();
            while conn.buf.len() < room {
                if fill(conn, deadline, limit).await? == 0 {
                    break;
                }
            }
            let take = room.min(conn.buf.len());
            resp.body.extend(conn.buf.drain(..take));
            conn.buf.clear();
            return Ok(());
        }
        while conn.buf.len() < size + 2 {
            if fill(conn, deadline, limit).await? == 0 {
                return Err(HttpError::Io("closed inside a chunk".into()));
            }
        }
        resp.body.extend(conn.buf.drain(..size));
        conn.buf.drain(..2);
    }
}

/// Reads one response from bytes, as from a server that sent exactly them and closed: the
/// parser on its own, for tests and fuzzing.
pub fn parse_response_bytes(bytes: &[u8], limits: Limits) -> Result<Response, HttpError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| HttpError::Io(e.to_string()))?;
    rt.block_on(async {
        let mut conn = Conn {
            io: Box::new(std::io::Cursor::new(bytes.to_vec())),
            cert: None,
            tls: None,
            used: 1,
            buf: Vec::new(),
        };
        let limit = Duration::from_secs(5);
        read_response(&mut conn, limits, Instant::now() + limit, limit).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Response, HttpError> {
        parse_response_bytes(
            b,
            Limits {
                head: 1024,
                body: 64,
            },
        )
    }

    #[test]
    fn responses_with_length_chunks_and_eof() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nX-OWA-Version: 15.2.1118.20\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.reusable),
            (200, &b"hello"[..], true)
        );
        assert_eq!(r.header("x-owa-version"), Some("15.2.1118.20"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(r.reusable);
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").unwrap();
        assert_eq!(r.body, b"until the end");
        assert!(!r.reusable);
        let r = parse(b"HTTP/1.1 302 Found\r\nLocation: /owa/\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(
            (r.status, r.header("location"), r.reusable),
            (302, Some("/owa/"), false)
        );
    }

    #[test]
    fn limits_and_broken_responses() {
        // Body larger than the limit: kept up to it, connection not reused.
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 1000));
        let r = parse(&big).unwrap();
        assert_eq!(r.body.len(), 64);
        assert!(r.body_truncated && !r.reusable);
        let mut chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..10 {
            chunks.extend_from_slice(b"10\r\n0123456789abcdef\r\n");
        }
        chunks.extend_from_slice(b"0\r\n\r\n");
        let r = parse(&chunks).unwrap();
        assert_eq!(r.body.len(), 64);
        assert!(r.body_truncated);
        // A declared length the server never delivers: the head is still read.
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort").unwrap();
        assert!(r.body_truncated && !r.reusable);
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend(std::iter::repeat_n(b'h', 2000));
        assert_eq!(parse(&head).unwrap_err(), HttpError::HeadTooLarge(1024));
        assert!(matches!(
            parse(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Err(HttpError::NotHttp(_))
        ));
        assert!(matches!(parse(b""), Err(HttpError::Aborted(_))));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nX: y"),
            Err(HttpError::NotHttp(_))
        ));
        assert!(
            matches!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), Ok(r) if r.body_truncated)
        );
        assert!(matches!(
            parse(b"HTTP/1.1 99999 Weird\r\n\r\n"),
            Err(HttpError::NotHttp(_))
        ));
    }

    #[test]
    fn certificates_are_read_or_named_unreadable() {
        let c = CertInfo::from_der(b"not a certificate");
        assert!(c.subject.contains("does not parse"));
        assert_eq!(c.sha256.len(), 64);
    }
}
