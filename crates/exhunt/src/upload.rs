//! `--upload URL` on `exhunt scan` and `exhunt probe`: the result also goes to an `exhunt serve`
//! (issue 18), after the local output is written and whatever happens to the upload.
//!
//! - The API token comes from `EXHUNT_UPLOAD_TOKEN` or `--upload-token-file`, never from the
//!   command line (other users read it in the process list, shells keep it in their history):
//!   [`refuse_tokens_in_args`] runs before the command line is parsed, so that not even an
//!   error message repeats one. The token is never printed; answers that quote it are redacted.
//! - TLS verifies the server: Mozilla's roots built in (`webpki-roots`: the host's own store is
//!   not trusted, because the host being scanned may be the attacker's), or only the CA of
//!   `--upload-ca` for a fleet server with a private CA. Plain `http://` only to loopback,
//!   unless `--upload-insecure-http`.
//! - Transient failures (connection refused or reset, 408, 429, 5xx) are tried again, a refusal
//!   (4xx) is not; trying again is safe because the server stores the same content once.
//! - A failed upload adds [`UPLOAD_FAILED`] to the exit code, so the verdict stays readable.

mod batch;
mod client;
mod platform;
mod proxy;
mod url;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use exhunt_model::ScanResult;
use serde_json::Value;

pub(crate) use batch::RowUploader;
use client::{Client, Failure, Reply};
use url::BaseUrl;

/// Added to the exit code when `--upload` failed (the local result was written): 4 + the
/// verdict's code (0, 1 or 3), so `code & 3` is still the verdict.
pub(crate) const UPLOAD_FAILED: u8 = 4;

/// The environment variable holding the API token.
pub(crate) const TOKEN_ENV: &str = "EXHUNT_UPLOAD_TOKEN";

/// Options of `--upload`, shared by `scan` and `probe`.
#[derive(clap::Args, Default)]
#[command(next_help_heading = "Upload to an exhunt serve")]
// The field docs are --help text, where a URL stays bare.
#[allow(rustdoc::bare_urls)]
pub(crate) struct UploadArgs {
    /// Also send the result to the exhunt serve at URL (its base URL, e.g.
    /// https://fleet.example:8443). The API token (an uploader token of the organisation) comes
    /// from the environment variable EXHUNT_UPLOAD_TOKEN or from --upload-token-file, never from
    /// the command line. The local output is written first and is the same as without
    /// --upload; a failed upload is reported on stderr and adds 4 to the exit code.
    #[arg(long, value_name = "URL")]
    pub(crate) upload: Option<String>,
    /// Read the API token from FILE (its first line) instead of EXHUNT_UPLOAD_TOKEN.
    #[arg(long, value_name = "FILE", requires = "upload")]
    pub(crate) upload_token_file: Option<PathBuf>,
    /// Trust only the CA certificates in FILE (PEM) for the server's certificate, instead of
    /// the built-in Mozilla roots: for a fleet server whose certificate a private CA issued.
    #[arg(long, value_name = "FILE", requires = "upload")]
    pub(crate) upload_ca: Option<PathBuf>,
    /// Allow plain http:// to a host that is not loopback. Without TLS the token and the
    /// evidence (server names, findings, paths) cross the network readable, and changeable, by
    /// anyone on the path: only on a network you trust. Loopback (an SSH tunnel, a TLS proxy on
    /// the same host) needs no flag.
    #[arg(long, requires = "upload")]
    pub(crate) upload_insecure_http: bool,
    /// The organisation a scan result is stored under, by id: needed with an operator token (an
    /// uploader token always uploads to its own organisation).
    #[arg(long, value_name = "ID", requires = "upload")]
    pub(crate) upload_org: Option<i64>,
    /// Reach the server through the HTTP proxy at URL (http://HOST:PORT): a tunnel asked for
    /// with CONNECT, inside which TLS goes to the server as without a proxy. `none` ignores the
    /// environment's proxy. Without this option, for an https:// server, HTTPS_PROXY /
    /// https_proxy, ALL_PROXY and NO_PROXY are read; loopback is always reached directly.
    /// Proxy credentials go in HTTPS_PROXY (http://USER:PASSWORD@HOST:PORT), never on the
    /// command line.
    #[arg(long, value_name = "URL", requires = "upload")]
    pub(crate) upload_proxy: Option<String>,
}

/// An API token; its `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

impl Token {
    fn new(raw: &str, from: &str) -> Result<Token> {
        let t = raw.trim();
        if t.is_empty() {
            bail!("{from} holds no API token");
        }
        if t.len() < 16 || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "{from}: not an API token: exhunt serve's tokens are one line, exh_ and 64 hex digits"
            );
        }
        Ok(Token(t.to_string()))
    }

    /// The secret, for the `Authorization` header only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// `text` with the token replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "[token redacted]")
    }
}

/// Whether `s` holds something shaped like an exhunt serve token (`exh_` and 32 or more hex
/// digits).
fn looks_like_token(s: &str) -> bool {
    s.match_indices("exh_")
        .any(|(i, _)| s[i + 4..].bytes().take_while(u8::is_ascii_hexdigit).count() >= 32)
}

/// Refuses a token on the command line, before clap parses it (clap's own errors would repeat
/// the argument): an argument shaped like a token, or a `--upload-token`/`--token` option.
pub(crate) fn refuse_tokens_in_args(args: &[OsString]) -> Result<()> {
    const WHY: &str = "API tokens are never taken from the command line, where other users see them in the process list and the shell keeps them in its history: set the environment variable EXHUNT_UPLOAD_TOKEN or give --upload-token-file FILE";
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy();
        let name = a.split('=').next().unwrap_or_default();
        if matches!(name, "--upload-token" | "--token" | "--api-token") {
            bail!("{name}: {WHY}");
        }
        if looks_like_token(&a) {
            bail!(
                "an argument looks like an exhunt serve API token (exh_…; not repeated here). {WHY}. If it was typed on a shared machine, revoke it on the server"
            );
        }
    }
    Ok(())
}

/// Sends results to one server.
pub(crate) struct Uploader {
    client: Arc<Client>,
    org: Option<i64>,
    /// Tries per request (the first included).
    attempts: u32,
    /// Wait before the second try; doubled each time.
    backoff: Duration,
}

impl Uploader {
    /// The uploader `args` ask for, or `None` without `--upload`. Everything is checked here,
    /// before a scan or probe starts: a missing token must not surface after hours of work.
    pub(crate) fn from_args(args: &UploadArgs) -> Result<Option<Uploader>> {
        let Some(raw) = &args.upload else {
            return Ok(None);
        };
        let url = BaseUrl::parse(raw).map_err(anyhow::Error::msg)?;
        if !url.tls && !url.names_loopback() && !args.upload_insecure_http {
            bail!(
                "--upload {url}: plain http:// is allowed to a loopback address only: without TLS the token and the evidence cross the network readable. Use https://, or --upload-insecure-http on a network you trust"
            );
        }
        let token = match &args.upload_token_file {
            Some(p) => {
                let meta = std::fs::metadata(p)
                    .with_context(|| format!("--upload-token-file {}", p.display()))?;
                if !meta.is_file() || meta.len() > 64 * 1024 {
                    bail!(
                        "--upload-token-file {}: not a small text file holding the token",
                        p.display()
                    );
                }
                if let Some(mode) = platform::open_to_others(&meta) {
                    eprintln!(
                        "exhunt: warning: --upload-token-file {}: users other than its owner have access to it (mode {mode:03o}), and the token lets whoever reads it upload as your organisation: chmod 600 it",
                        p.display()
                    );
                }
                let text = std::fs::read(p)
                    .with_context(|| format!("--upload-token-file {}", p.display()))?;
                let text = String::from_utf8_lossy(&text);
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                Token::new(first, &format!("--upload-token-file {}", p.display()))?
            }
            None => match std::env::var(TOKEN_ENV) {
                Ok(v) => Token::new(&v, TOKEN_ENV)?,
                Err(std::env::VarError::NotUnicode(_)) => {
                    bail!("{TOKEN_ENV} is not valid text")
                }
                Err(std::env::VarError::NotPresent) => bail!(
                    "--upload needs an API token: set the environment variable {TOKEN_ENV} or give --upload-token-file FILE (an uploader token of the organisation, made in exhunt serve)"
                ),
            },
        };
        let tls = if url.tls {
            Some(Arc::new(tls_config(args.upload_ca.as_ref())?))
        } else {
            if args.upload_ca.is_some() {
                bail!("--upload-ca is for an https:// server; {url} is plain http");
            }
            None
        };
        let (mut proxy, warning) = proxy::Proxy::choose(&url, args.upload_proxy.as_deref(), &|k| {
            std::env::var(k).ok()
        })
        .map_err(anyhow::Error::msg)?;
        if let Some(w) = warning {
            eprintln!("exhunt: warning: {}", exhunt_report::safe::terminal(&w));
        }
        // A name that resolves here to loopback only (an SSH tunnel behind a hosts-file entry)
        // is reached directly: a proxy named by the environment cannot reach this machine's
        // loopback. A name that does not resolve here is left to the proxy.
        if proxy.as_ref().is_some_and(|p| p.from != "--upload-proxy") {
            use std::net::ToSocketAddrs;
            let local = (url.host.as_str(), url.port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
                .unwrap_or_default();
            if !local.is_empty() && local.iter().all(|a| a.ip().is_loopback()) {
                proxy = None;
            }
        }
        Ok(Some(Uploader {
            client: Arc::new(Client {
                url,
                tls,
                token,
                insecure_http: args.upload_insecure_http,
                proxy,
            }),
            org: args.upload_org,
            attempts: 3,
            backoff: Duration::from_secs(1),
        }))
    }

    /// Asks the server who the token is before a long scan or probe (`GET /api/v1/whoami`,
    /// one try): what would make the upload fail at the end, said now, on stderr, while the
    /// work goes on either way (the server may be back by then; the local result never waits).
    pub(crate) fn preflight(&self, work: &str, scan: bool) {
        let trouble = match self.client.get("/api/v1/whoami") {
            Ok(r) if (200..300).contains(&r.status) => {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                match v.get("role").and_then(Value::as_str) {
                    Some("uploader") => None,
                    Some("operator") if scan && self.org.is_none() => Some(
                        "this is an operator token: a scan result needs --upload-org ID".to_string(),
                    ),
                    Some("operator") => None,
                    Some("reader") => Some(
                        "this is a reader token: uploads need an uploader token of the organisation"
                            .to_string(),
                    ),
                    _ => Some(format!("is {} an exhunt serve? Its answer has no role", self.url())),
                }
            }
            Ok(r) => Some(self.describe(&r, 0)),
            Err(e) => Some(self.client.token.redact(&e.to_string())),
        };
        if let Some(t) = trouble {
            eprintln!(
                "exhunt: warning: upload check before the {work}: {} ({}); the {work} goes on, its output is written as usual, and the upload is tried at the end",
                exhunt_report::safe::terminal(&t),
                self.url()
            );
        }
    }

    /// The server, for messages.
    pub(crate) fn url(&self) -> String {
        self.client.url.to_string()
    }

    /// POSTs `body` until it is answered with success, refused, or the tries run out. The
    /// error is a sentence for stderr (redacted).
    fn send(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Value, String> {
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            match self.client.post(path, content_type, body) {
                Ok(r) if (200..300).contains(&r.status) => {
                    return serde_json::from_slice(&r.body).map_err(|e| {
                        format!(
                            "the server answered {} but not with JSON ({e}): is {} an exhunt serve?",
                            r.status,
                            self.url()
                        )
                    });
                }
                Ok(r) => {
                    last = self.describe(&r, body.len());
                    if !matches!(r.status, 408 | 429 | 500 | 502 | 503 | 504) {
                        return Err(last);
                    }
                    if let Some(s) = r.retry_after {
                        wait = wait.max(Duration::from_secs(s.min(30)));
                    }
                }
                Err(Failure::Permanent(e)) => return Err(self.client.token.redact(&e)),
                Err(Failure::Transient(e)) => last = self.client.token.redact(&e),
            }
        }
        Err(format!("{last} (tried {} times)", self.attempts))
    }

    /// A refusal as a sentence: the status, the server's own message, and what to do.
    fn describe(&self, r: &Reply, sent: usize) -> String {
        let said = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    .trim()
                    .to_string()
            });
        let hint = match r.status {
            401 => "check EXHUNT_UPLOAD_TOKEN or --upload-token-file",
            403 => {
                "this token may not upload there: an uploader token of the organisation is needed"
            }
            404 => {
                "no such API there: --upload takes exhunt serve's base URL, e.g. https://fleet.example:8443"
            }
            413 => {
                "the server takes smaller uploads (exhunt serve --max-body-mib, or a proxy's limit)"
            }
            400 | 422 => "the server rejected the document; nothing was stored",
            _ => "",
        };
        let mut s = format!("the server answered {}", r.status);
        if !said.is_empty() {
            s.push_str(&format!(": {said}"));
        }
        if r.status == 413 {
            s.push_str(&format!(" ({sent} bytes sent)"));
        }
        if !hint.is_empty() {
            s.push_str(&format!("; {hint}"));
        }
        self.client.token.redact(&s)
    }

    /// Uploads a scan result, one document per server (each server's history on the fleet
    /// server is its own, and one server's refusal does not hide the others). Says what
    /// happened on stderr (successes only without `quiet`); true when every server was stored.
    pub(crate) fn upload_scan(&self, result: &ScanResult, quiet: bool) -> bool {
        let path = match self.org {
            Some(o) => format!("/api/v1/results?org={o}"),
            None => "/api/v1/results".to_string(),
        };
        let mut ok = true;
        for s in &result.servers {
            let name = exhunt_report::safe::terminal(&s.name);
            let one = ScanResult {
                schema_version: result.schema_version.clone(),
                tool: result.tool.clone(),
                started: result.started,
                finished: result.finished,
                settings: result.settings.clone(),
                verdict: s.verdict,
                servers: vec![s.clone()],
                rules: result.rules.clone(),
            };
            let body = match serde_json::to_vec(&one) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("exhunt: upload of {name} failed: {e}");
                    ok = false;
                    continue;
                }
            };
            match self.send(&path, "application/json", &body) {
                Ok(v) => {
                    if !quiet {
                        let ids: Vec<String> = v["results"]
                            .as_array()
                            .map(|a| a.iter().map(Value::to_string).collect())
                            .unwrap_or_default();
                        let how = if v["duplicate"] == true {
                            "was already stored (the same result is kept once)"
                        } else {
                            "stored"
                        };
                        eprintln!(
                            "exhunt: upload: {name} {how} on {} as result {}",
                            self.url(),
                            ids.join(", ")
                        );
                    }
                    for w in v["warnings"].as_array().into_iter().flatten() {
                        if let Some(w) = w.as_str() {
                            eprintln!(
                                "exhunt: upload: server's note: {}",
                                exhunt_report::safe::terminal(w)
                            );
                        }
                    }
                }
                Err(e) => {
                    ok = false;
                    eprintln!(
                        "exhunt: error: upload of {name} to {} failed: {}",
                        self.url(),
                        exhunt_report::safe::terminal(&e)
                    );
                }
            }
        }
        if !ok {
            eprintln!(
                "exhunt: the local result is complete and was written as usual; the exit code has 4 added for the failed upload (uploading the same result again later stores it once)"
            );
        }
        ok
    }
}

/// TLS that verifies the server: the CAs in `ca` (PEM) or Mozilla's roots.
fn tls_config(ca: Option<&PathBuf>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let pem = std::fs::read(p).with_context(|| format!("--upload-ca {}", p.display()))?;
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| {
                    anyhow::anyhow!("--upload-ca {}: not PEM certificates: {e}", p.display())
                })?;
                roots.add(c).map_err(|e| {
                    anyhow::anyhow!("--upload-ca {}: a certificate is refused: {e}", p.display())
                })?;
                n += 1;
            }
            if n == 0 {
                bail!(
                    "--upload-ca {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                    p.display()
                );
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "exh_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_token_on_the_command_line_is_refused_without_being_repeated() {
        for args in [
            vec![
                "exhunt",
                "scan",
                "x",
                "--upload",
                "https://f.example",
                SECRET,
            ],
            vec!["exhunt", "probe", &format!("--upload-token={SECRET}")],
            vec!["exhunt", "scan", "--upload-token", "short"],
            vec!["exhunt", "scan", &format!("https://{SECRET}@f.example")],
        ] {
            let e = refuse_tokens_in_args(&os(&args)).unwrap_err().to_string();
            assert!(e.contains("EXHUNT_UPLOAD_TOKEN"), "{e}");
            assert!(!e.contains(SECRET) && !e.contains("short"), "{e}");
        }
        // Near misses: hex that is not a token, a word with exh_ in it, a short id.
        refuse_tokens_in_args(&os(&[
            "exhunt",
            "scan",
            "d41d8cd98f00b204e9800998ecf8427e",
            "exh_notes/case-12",
            "--upload",
            "https://f.example",
            "exh_0123",
        ]))
        .unwrap();
    }

    #[test]
    fn the_token_never_shows() {
        let t = Token::new(&format!("  {SECRET}\n"), "test").unwrap();
        assert_eq!(t.secret(), SECRET);
        assert!(!format!("{t:?}").contains(SECRET));
        let r = t.redact(&format!("echo: Bearer {SECRET}!"));
        assert_eq!(r, "echo: Bearer [token redacted]!");
        for bad in [
            "",
            "  \n",
            "exh_short",
            "two words and more",
            "a-long-line\r\nX-Injected: 1",
            "tab\there-and-more-text",
        ] {
            let e = Token::new(bad, "test").unwrap_err().to_string();
            assert!(!e.contains("Injected"), "{e}");
        }
    }

    #[test]
    fn upload_options_are_checked_before_any_work() {
        let args = |url: &str| UploadArgs {
            upload: Some(url.to_string()),
            upload_token_file: Some(PathBuf::from("/nonexistent/token")),
            ..Default::default()
        };
        let e = Uploader::from_args(&args("http://fleet.example"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("loopback") && e.contains("--upload-insecure-http"),
            "{e}"
        );
        let e = Uploader::from_args(&args("https://fleet.example"))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("--upload-token-file"), "{e:#}");
        assert!(
            Uploader::from_args(&UploadArgs::default())
                .unwrap()
                .is_none()
        );
    }
}
