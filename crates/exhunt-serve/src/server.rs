//! Running the server: open the database, make the first operator token when there is none,
//! listen, serve until told to stop.
//!
//! A request's body must arrive within [`Config::body_timeout`] and fit [`Config::body_limit`];
//! an upload is one transaction, so a process killed in the middle of one leaves nothing of it.
//!
//! Against slow clients (slowloris): a request's headers must arrive within
//! [`Config::header_timeout`] (an idle kept-alive connection is closed after as long), a whole
//! request may take [`Config::request_timeout`], and at most [`Config::max_connections`] are
//! served at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::{self, Config};
use crate::error::{Error, Result};
use crate::store::{NewToken, Store};
use crate::tenancy::Caller;

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: TcpListener,
    /// The store it serves.
    pub store: Store,
    /// The address it listens on (the real port when `:0` was asked).
    pub addr: SocketAddr,
    /// The operator token made at first start (shown once), if this start made one.
    pub first_token: Option<NewToken>,
    cfg: Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens (and migrates) the database at `db_url` and binds `listen` (`127.0.0.1:8080`).
    pub async fn bind(db_url: &str, listen: &str, cfg: Config) -> Result<Server> {
        let store = Store::open(db_url).await?;
        let first_token = store.bootstrap_operator("first operator").await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::BadRequest(format!("listening on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::BadRequest(format!("listening on {listen}: {e}")))?;
        Ok(Server {
            listener,
            store,
            addr,
            first_token,
            cfg,
            tls: None,
        })
    }

    /// Serves HTTPS with this acceptor ([`crate::tls::acceptor`]) instead of plain HTTP.
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Server {
        self.tls = Some(acceptor);
        self
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight (waiting at
    /// most [`Config::request_timeout`] for them).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let cfg = self.cfg.clone();
        let trusted = Arc::new(cfg.trusted_proxies.clone());
        let app = app(self.store, self.cfg);
        let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Some(cfg.header_timeout))
            .max_buf_size(64 * 1024);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                biased;
                () = &mut shutdown => break,
                s = slots.clone().acquire_owned() => match s {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, not spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let app = app.clone();
            let trusted = trusted.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                // Behind a trusted proxy, the client it names (crate::proxy); everything that
                // reads the client's address (throttling, the audit log) reads this.
                let client = crate::proxy::client(peer, req.headers(), &trusted);
                req.extensions_mut().insert(ConnectInfo(client));
                tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
            });
            let http = http.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            let handshake_limit = cfg.header_timeout;
            tokio::spawn(async move {
                let served = match tls {
                    None => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), svc))
                            .await
                    }
                    Some(tls) => {
                        // The handshake is bounded like the headers: a client that connects
                        // and says nothing gives its slot back after the header timeout.
                        match tokio::time::timeout(handshake_limit, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                watcher
                                    .watch(http.serve_connection(TokioIo::new(stream), svc))
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!("TLS handshake with {peer}: {e}");
                                Ok(())
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake with {peer}: timed out");
                                Ok(())
                            }
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::debug!("connection from {peer}: {e}");
                }
                drop(slot);
            });
        }
        drop(self.listener);
        if tokio::time::timeout(cfg.request_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("stopping: requests still in flight after the request timeout");
        }
        Ok(())
    }
}

/// The whole HTTP application: the JSON API under `/api/v1` and the dashboard; every request
/// bounded by [`Config::request_timeout`].
pub fn app(store: Store, cfg: Config) -> axum::Router {
    let store = store.with_escalation(cfg.escalation.after);
    let limit = cfg.request_timeout;
    let secure = cfg.secure_cookies.unwrap_or(true);
    let audit = Arc::new(AuditCtx {
        store: store.clone(),
        session_cookie: crate::web::session_cookie(secure),
        writer: tokio::sync::OnceCell::new(),
    });
    crate::web::router(store.clone(), secure)
        .merge(api::router(store, cfg))
        .layer(axum::middleware::from_fn_with_state(audit, audit_access))
        .layer(axum::middleware::map_response(
            move |mut r: Response| async move {
                // Served over HTTPS (itself or behind a proxy: what Secure cookies mean here):
                // browsers are told to come back over HTTPS only. They ignore the header on
                // plain HTTP, so it is harmless on a misconfigured listener.
                if secure {
                    r.headers_mut().insert(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static("max-age=31536000"),
                    );
                }
                r
            },
        ))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(limit, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => request_timed_out(limit),
                }
            },
        ))
}

/// Marks a response whose request the store has audited already (password logins): the
/// access log skips it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Audited;

struct AuditCtx {
    store: Store,
    session_cookie: &'static str,
    /// The access log's writer ([`group_commit`]), started with the first entry.
    writer: tokio::sync::OnceCell<tokio::sync::mpsc::Sender<Pending>>,
}

/// An access-log entry waiting for its batch, and whom to tell once it is committed.
type Pending = (
    crate::store::AuditEntry,
    tokio::sync::oneshot::Sender<Result<()>>,
);

/// Entries per transaction of the access log, at most.
const AUDIT_BATCH: usize = 512;

impl AuditCtx {
    /// Writes `e` and returns once it is committed. Entries of requests that finish together
    /// share one transaction (group commit): under load, a page view costs a share of one
    /// commit instead of a commit of its own waiting in line for the write lock, and no answer
    /// leaves before its entry is stored (an entry is never lost to a crash after the answer).
    async fn record(&self, e: crate::store::AuditEntry) -> Result<()> {
        let writer = self
            .writer
            .get_or_init(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(4 * AUDIT_BATCH);
                tokio::spawn(group_commit(self.store.clone(), rx));
                tx
            })
            .await;
        let (done, wait) = tokio::sync::oneshot::channel();
        writer
            .send((e, done))
            .await
            .map_err(|_| Error::BadRequest("the access log's writer stopped".into()))?;
        wait.await
            .map_err(|_| Error::BadRequest("the access log's writer stopped".into()))?
    }
}

/// The access log's writer: takes what is waiting (up to [`AUDIT_BATCH`]), stores it in one
/// transaction, tells each request, and again; ends when the application is dropped.
async fn group_commit(store: Store, mut rx: tokio::sync::mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    while rx.recv_many(&mut batch, AUDIT_BATCH).await > 0 {
        let (entries, done): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let result = store.record_many(&entries).await;
        if let Err(e) = &result {
            tracing::error!("audit log: {e}");
        }
        for d in done {
            let _ = d.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::BadRequest(format!("audit log: {e}"))),
            });
        }
    }
}

/// The caller a request's handler authenticated, for the access log (so that it does not
/// authenticate the request a second time).
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<std::sync::Mutex<Option<Caller>>>);

impl Seen {
    /// Remembers `c` in the request's slot, if the access log put one there.
    pub(crate) fn note(ext: &axum::http::Extensions, c: &Caller) {
        if let Some(s) = ext.get::<Seen>()
            && let Ok(mut slot) = s.0.lock()
        {
            *slot = Some(c.clone());
        }
    }

    fn take(&self) -> Option<Caller> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The `format` asked for in `query`, decoded as the handlers' query extractor decodes it
/// (percent escapes and `+`, in names and values): `format=%63sv` is the CSV export it
/// answers, and is logged as one.
fn format_asked(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.into_owned())
}

/// What the audit log calls a request that changes nothing (the store logs its own changes),
/// or `None` when it is not logged.
fn access_action(
    method: &Method,
    path: &str,
    query: &str,
    status: StatusCode,
) -> Option<&'static str> {
    let read = *method == Method::GET || *method == Method::HEAD;
    if read && status.is_success() {
        let format = format_asked(query);
        if path.starts_with("/api/v1/") {
            return Some(if path.ends_with("/report.html") {
                "report.view"
            } else if format.as_deref() == Some("csv") {
                "export.csv"
            } else if path.ends_with("/eml") || path.ends_with("/document") {
                "export.download"
            } else {
                "api.read"
            });
        }
        if path.starts_with("/results/") {
            return Some("report.view");
        }
        // The dashboard's tables exported (web/pages.rs), like the API's.
        let page = path == "/" || path.starts_with("/orgs/") || path.starts_with("/servers/");
        if page && format.as_deref() == Some("csv") {
            return Some("export.csv");
        }
        if page && format.as_deref() == Some("json") {
            return Some("export.json");
        }
        if path.starts_with("/orgs/") || path.starts_with("/servers/") {
            return Some("page.view");
        }
        // The dashboard's notification, status-sheet and roll-up pages and their exports (the
        // .eml and CSV downloads are logged by their handler, with the ticket).
        let table = path == "/notifications" || path == "/sheet" || path == "/rollup";
        if table
            || (path.starts_with("/notifications/")
                && !path.ends_with("/eml")
                && !path.ends_with("/csv"))
        {
            return Some(if format.is_some() && table {
                "export.page"
            } else {
                "page.view"
            });
        }
        return None;
    }
    if *method == Method::POST && path == "/login" && status.is_client_error() {
        return Some("login.failed");
    }
    let upload = path == "/api/v1/results" || path.starts_with("/api/v1/observations/");
    if *method == Method::POST && upload && status.is_client_error() {
        return Some("upload.rejected");
    }
    None
}

/// Logs reads, exports (`format=csv`, e-mails, documents), report and page views, failed
/// logins and refused uploads, with the client's address, once the answer is known (the store
/// logs changes itself).
async fn audit_access(
    axum::extract::State(a): axum::extract::State<Arc<AuditCtx>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_string);
    let session = crate::web::cookie(req.headers(), a.session_cookie);
    let seen = Seen::default();
    let mut req = req;
    req.extensions_mut().insert(seen.clone());
    let resp = next.run(req).await;
    if resp.extensions().get::<Audited>().is_some() {
        return resp;
    }
    let status = resp.status();
    let Some(action) = access_action(&method, &path, &query, status) else {
        return resp;
    };
    let caller = match (seen.take(), &bearer, &session) {
        (Some(c), _, _) => Some(c),
        (None, Some(b), _) => a.store.authenticate(b).await.ok(),
        (None, None, Some(s)) => a.store.session(s).await.ok().map(|(c, _)| c),
        _ => None,
    };
    // The path, not the query: what the client typed in the query (names, addresses of other
    // organisations it tried) is not echoed into its organisation's log.
    let mut object = format!("{method} {path} -> {}", status.as_u16());
    if let Some(ip) = peer {
        object.push_str(&format!(" from {ip}"));
    }
    let object: String = object.chars().take(600).collect();
    if let Err(e) = a
        .record(crate::store::AuditEntry::new(
            caller.as_ref(),
            action,
            object,
        ))
        .await
    {
        tracing::error!("audit log: {e}");
    }
    resp
}

fn request_timed_out(limit: Duration) -> Response {
    let mut r = api::ApiError(Error::RequestTimeout(limit.as_secs())).into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// What `exhunt serve` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Database URL (`sqlite://PATH`, `postgres://…`).
    pub db: String,
    /// Address to listen on.
    pub listen: String,
    /// HTTP limits.
    pub api: Config,
    /// Runtime threads (0: one per core).
    pub threads: usize,
    /// Demo data to load before serving: (example name, scan result JSON). Empty: no demo.
    pub demo: Vec<(String, String)>,
    /// HTTPS: the certificate chain and private key (PEM files). `None`: plain HTTP.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// What `ready` is told when the server listens.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The address.
    pub addr: &'a SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
    /// The first operator token, when this start made one.
    pub operator: Option<&'a NewToken>,
    /// The demo's reader token, when the demo was loaded.
    pub demo_reader: Option<&'a NewToken>,
    /// The demo's dashboard logins, when the demo was loaded.
    pub demo_logins: &'a [crate::demo::DemoLogin],
}

/// Runs the server on its own runtime until Ctrl-C (or SIGTERM on Unix): what the `exhunt`
/// binary calls. `ready` is told the address and the tokens made by this start.
pub fn run_blocking(opts: Options, ready: impl FnOnce(Ready<'_>)) -> Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if opts.threads > 0 {
        rt.worker_threads(opts.threads);
    }
    let rt = rt
        .enable_all()
        .build()
        .map_err(|e| Error::BadRequest(format!("starting the runtime: {e}")))?;
    rt.block_on(async move {
        let demo = !opts.demo.is_empty();
        // Certificate problems are found before the database is touched.
        let acceptor = match &opts.tls {
            Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
            None => None,
        };
        let mut server = Server::bind(&opts.db, &opts.listen, opts.api).await?;
        if let Some(a) = acceptor {
            server = server.with_tls(a);
        }
        if server.cfg.secure_cookies.is_none() {
            // Plain HTTP on loopback (or the demo): a `Secure` cookie would not come back over
            // http:// in every browser. Anywhere else the server is meant to sit behind HTTPS,
            // or to serve it itself.
            let plain = !server.is_tls() && (server.addr.ip().is_loopback() || demo);
            server.cfg.secure_cookies = Some(!plain);
            if !plain {
                tracing::info!("dashboard cookies are Secure: serve it behind HTTPS");
            }
        }
        let mut demo_reader = None;
        let mut demo_logins = Vec::new();
        if !opts.demo.is_empty() {
            let op = match &server.first_token {
                Some(t) => server.store.authenticate(&t.secret).await?,
                None => {
                    return Err(Error::BadRequest(
                        "--demo needs an empty database (this one has an operator already)".into(),
                    ));
                }
            };
            demo_reader = Some(crate::demo::load(&server.store, &op, &opts.demo).await?);
            demo_logins = crate::demo::logins(&server.store, &op).await?;
        }
        // Escalation runs on a timer inside every instance (idempotent: see crate::escalate).
        tokio::spawn(crate::escalate::run(
            server.store.clone(),
            server.cfg.escalation,
        ));
        ready(Ready {
            addr: &server.addr,
            tls: server.is_tls(),
            operator: server.first_token.as_ref(),
            demo_reader: demo_reader.as_ref(),
            demo_logins: &demo_logins,
        });
        server.run(stop_signal()).await
    })
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(path: &str, query: &str) -> Option<&'static str> {
        access_action(&Method::GET, path, query, StatusCode::OK)
    }

    #[test]
    fn exports_are_logged_however_their_format_is_written() {
        // As written by the dashboard's links.
        assert_eq!(action("/", "format=csv"), Some("export.csv"));
        assert_eq!(action("/orgs/7", "q=x&format=json"), Some("export.json"));
        assert_eq!(action("/api/v1/servers", "format=csv"), Some("export.csv"));
        // Percent escapes in the value or the name, and `+`, decode to what the handler reads.
        assert_eq!(action("/", "format=%63sv"), Some("export.csv"));
        assert_eq!(action("/", "%66ormat=%6A%73on"), Some("export.json"));
        assert_eq!(
            action("/servers/3", "table=scans&f%6Frmat=csv"),
            Some("export.csv")
        );
        assert_eq!(
            action("/api/v1/servers", "org=2&%66ormat=csv"),
            Some("export.csv")
        );
        assert_eq!(action("/sheet", "org=&format=%6Ason"), Some("export.page"));
        // Near misses: other names, or no format, are views.
        assert_eq!(action("/", "formats=csv"), None);
        assert_eq!(action("/orgs/7", "q=format%3Dcsv"), Some("page.view"));
        assert_eq!(action("/api/v1/servers", "q=format=csv"), Some("api.read"));
        assert_eq!(action("/sheet", "org=2"), Some("page.view"));
    }
}
