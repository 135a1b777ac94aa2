//! The JSON API over HTTP (axum).
//!
//! Every request carries `Authorization: Bearer <token>`. Errors are JSON
//! (`{"error": "...", "code": "..."}`) with the status of [`Error::status`]; an object outside
//! the caller's organisations is a 404 like a missing one. Bodies are read with a size limit
//! (413) and a time limit (408), before anything is parsed or stored. List endpoints take the
//! filters of [`Filter`] and `format=csv` for an export of the same rows.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Error;
use crate::ingest;
use crate::store::{Filter, OrgInput, Store};
use crate::tenancy::{Caller, Role};

mod dash;
mod extract;

use extract::{Auth, Filt, Id, Json, Params, Raw, Uploader};

/// Limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Time a client has to send its whole body.
    pub body_timeout: Duration,
    /// Time a client has to send a request's line and headers, counted from when the
    /// connection is ready for a request (so an idle kept-alive connection is closed too).
    pub header_timeout: Duration,
    /// Time a whole request may take, body and answer included (longer than `body_timeout`).
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen queue.
    pub max_connections: usize,
    /// Dashboard cookies `Secure` (with the `__Host-` prefix), for a server reached over HTTPS
    /// (behind a TLS proxy). `None`: decided when serving ([`crate::server::run_blocking`]):
    /// off when listening on a loopback address or for the demo, on otherwise; [`crate::server::app`]
    /// alone takes `None` as on.
    pub secure_cookies: Option<bool>,
    /// When sent notifications escalate, and how often `exhunt serve` looks.
    pub escalation: crate::escalate::Policy,
    /// Reverse proxies whose `X-Forwarded-For` names the client ([`crate::proxy`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            body_limit: 64 * 1024 * 1024,
            body_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            max_connections: 512,
            secure_cookies: None,
            escalation: crate::escalate::Policy::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

struct App {
    store: Store,
    cfg: Config,
}

type Shared = State<Arc<App>>;

/// An [`Error`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &self.0 {
            // Database details stay in the server's log.
            Error::Db(_) | Error::Migrate(_) => {
                tracing::error!("{}", self.0);
                "internal error (see the server's log)".to_string()
            }
            e => e.to_string(),
        };
        let mut r = (
            status,
            axum::Json(json!({"error": message, "code": self.0.code()})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

/// The API's router, under `/api/v1`.
pub fn router(store: Store, cfg: Config) -> Router {
    let app = Arc::new(App { store, cfg });
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/orgs", get(list_orgs).post(create_org))
        .route(
            "/api/v1/orgs/{id}",
            get(get_org).patch(update_org).delete(delete_org),
        )
        .route("/api/v1/servers", get(list_servers))
        .route(
            "/api/v1/servers/{id}",
            get(get_server).delete(delete_server),
        )
        .route("/api/v1/results", get(list_results).post(upload_scan))
        .route(
            "/api/v1/results/{id}",
            get(get_result).delete(delete_result),
        )
        .route("/api/v1/results/{id}/document", get(result_document))
        .route("/api/v1/results/{id}/report.html", get(result_html))
        .route("/api/v1/observations", get(list_observations))
        .route("/api/v1/observations/probe", post(upload_probe))
        .route("/api/v1/observations/intelmq", post(upload_intelmq))
        .route(
            "/api/v1/observations/shadowserver",
            post(upload_shadowserver),
        )
        .route(
            "/api/v1/observations/{id}",
            get(get_observation).delete(delete_observation),
        )
        .route("/api/v1/unassigned", get(list_unassigned))
        .route("/api/v1/unassigned/{id}/assign", post(assign))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/trend", get(trend))
        .route("/api/v1/status-sheet", get(status_sheet))
        .route("/api/v1/rollup/versions", get(version_rollup))
        .route(
            "/api/v1/notifications",
            get(list_notifications).post(create_notification),
        )
        .route(
            "/api/v1/notifications/{id}",
            get(get_notification).patch(set_notification_state),
        )
        .route("/api/v1/notifications/{id}/eml", get(notification_eml))
        .merge(dash::routes())
        .fallback(|| async { ApiError(Error::NotFound("endpoint")).into_response() })
        // Answers hold one organisation's data: no cache (a proxy's, a browser's) keeps them.
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                let mut r = next.run(req).await;
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("no-store"),
                );
                r
            },
        ))
        .with_state(app)
}

async fn caller(app: &App, h: &HeaderMap) -> Result<Caller, Error> {
    let v = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    let secret = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or(Error::Unauthorized)?;
    app.store.authenticate(secret).await
}

async fn read_body(app: &App, h: &HeaderMap, body: Body) -> Result<Bytes, Error> {
    let limit = app.cfg.body_limit;
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::TooLarge(limit));
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(app.cfg.body_timeout, limited.collect()).await {
        Err(_) => Err(Error::Timeout(app.cfg.body_timeout.as_secs())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Error::TooLarge(limit)),
        Ok(Err(e)) => Err(Error::BadRequest(format!("reading the request body: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn json_body<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(b).map_err(|e| Error::BadRequest(format!("request body: {e}")))
}

fn ok<T: Serialize>(status: StatusCode, v: &T) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

/// A spreadsheet-safe cell: text that a spreadsheet would run as a formula gets a leading `'`.
pub(crate) fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    exhunt_report::safe::csv_cell(&s).into_owned()
}

/// The rows as JSON, or as CSV when the filter asks for it (same rows either way).
fn list<T: Serialize>(f: &Filter, rows: &[T]) -> ApiResult {
    list_in_order(f, rows, &[])
}

/// [`list`], with the CSV columns in `first` leading, in that order (the others follow
/// alphabetically).
fn list_in_order<T: Serialize>(f: &Filter, rows: &[T], first: &[&str]) -> ApiResult {
    match f.format.as_deref() {
        None | Some("json") => ok(StatusCode::OK, &rows),
        Some("csv") => {
            let values: Vec<Value> = rows
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            let mut cols: Vec<String> = first.iter().map(|c| c.to_string()).collect();
            for v in &values {
                if let Value::Object(m) = v {
                    for k in m.keys() {
                        if !cols.contains(k) {
                            cols.push(k.clone());
                        }
                    }
                }
            }
            let write = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&cols)?;
                for v in &values {
                    w.write_record(cols.iter().map(|c| cell(v.get(c).unwrap_or(&Value::Null))))?;
                }
                Ok(w.into_inner()?)
            };
            let bytes = write().map_err(|e| Error::BadRequest(format!("CSV export: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
        }
        Some(other) => Err(Error::BadRequest(format!("format {other:?}: json or csv")).into()),
    }
}

async fn whoami(Auth(c): Auth) -> ApiResult {
    ok(
        StatusCode::OK,
        &json!({"token_id": c.token_id, "role": c.role, "org_id": c.org}),
    )
}

async fn list_orgs(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_orgs(&c, &f).await?)
}

async fn get_org(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_org(&c, i).await?)
}

async fn create_org(State(app): Shared, Auth(c): Auth, Json(input): Json<OrgInput>) -> ApiResult {
    ok(
        StatusCode::CREATED,
        &app.store.create_org(&c, &input).await?,
    )
}

async fn update_org(
    State(app): Shared,
    Auth(c): Auth,
    Id(i): Id,
    Json(input): Json<OrgInput>,
) -> ApiResult {
    ok(StatusCode::OK, &app.store.update_org(&c, i, &input).await?)
}

async fn delete_org(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    app.store.delete_org(&c, i).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_servers(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_servers(&c, &f).await?)
}

async fn get_server(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_server(&c, i).await?)
}

async fn delete_server(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    app.store.delete_server(&c, i).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct OrgParam {
    org: Option<i64>,
}

async fn upload_scan(
    State(app): Shared,
    Uploader(c): Uploader,
    Params(OrgParam { org }): Params<OrgParam>,
    Raw(b): Raw,
) -> ApiResult {
    let r = app.store.upload_scan(&c, org, &b).await?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    ok(status, &r)
}

async fn list_results(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_results(&c, &f).await?)
}

async fn get_result(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_result(&c, i).await?)
}

async fn result_document(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.result_document(&c, i).await?)
}

async fn result_html(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    let doc = app.store.result_document(&c, i).await?;
    let mut out = Vec::new();
    exhunt_report::html::render_html(&doc, &mut out)
        .map_err(|e| Error::BadRequest(format!("rendering the report: {e}")))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let csp = crate::web::report_csp(&text, &doc);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        text,
    )
        .into_response())
}

async fn delete_result(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    app.store.delete_result(&c, i).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_observations(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_observations(&c, &f).await?)
}

async fn get_observation(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_observation(&c, i).await?)
}

async fn delete_observation(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    app.store.delete_observation(&c, i).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn upload_probe(State(app): Shared, Uploader(c): Uploader, Raw(b): Raw) -> ApiResult {
    upload(&app, &c, b, ingest::parse_probe_chunks).await
}

async fn upload_shadowserver(State(app): Shared, Uploader(c): Uploader, Raw(b): Raw) -> ApiResult {
    upload(&app, &c, b, ingest::parse_shadowserver_chunks).await
}

async fn upload_intelmq(State(app): Shared, Uploader(c): Uploader, Raw(b): Raw) -> ApiResult {
    upload(&app, &c, b, ingest::parse_intelmq_chunks).await
}

/// Stores an upload of observations. Parsed on a thread of its own (tens of megabytes of rows
/// would hold a worker of the runtime, and the requests waiting on it, for a good part of a
/// second), while the store writes what is read.
async fn upload(app: &App, c: &Caller, b: Bytes, parse: ingest::ChunkedParse) -> ApiResult {
    ok(StatusCode::OK, &app.store.store_upload(c, b, parse).await?)
}

async fn list_unassigned(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_unassigned(&c, &f).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignInput {
    org: i64,
}

async fn assign(
    State(app): Shared,
    Auth(c): Auth,
    Id(i): Id,
    Json(input): Json<AssignInput>,
) -> ApiResult {
    ok(StatusCode::OK, &app.store.assign(&c, i, input.org).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    org: Option<i64>,
    role: Role,
    name: String,
}

async fn list_tokens(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_tokens(&c, &f).await?)
}

async fn create_token(State(app): Shared, Auth(c): Auth, Json(t): Json<TokenInput>) -> ApiResult {
    ok(
        StatusCode::CREATED,
        &app.store.create_token(&c, t.org, t.role, &t.name).await?,
    )
}

async fn revoke_token(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.revoke_token(&c, i).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationInput {
    org: i64,
    /// The template (absent or 0: the built-in one).
    template: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateInput {
    state: String,
}

async fn list_notifications(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_notifications(&c, &f).await?)
}

async fn create_notification(
    State(app): Shared,
    Auth(c): Auth,
    Json(input): Json<NotificationInput>,
) -> ApiResult {
    ok(
        StatusCode::CREATED,
        &app.store
            .create_notification_from(&c, input.org, input.template)
            .await?,
    )
}

async fn get_notification(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    ok(StatusCode::OK, &app.store.get_notification(&c, i).await?)
}

async fn set_notification_state(
    State(app): Shared,
    Auth(c): Auth,
    Id(i): Id,
    Json(input): Json<StateInput>,
) -> ApiResult {
    ok(
        StatusCode::OK,
        &app.store
            .set_notification_state(&c, i, &input.state)
            .await?,
    )
}

async fn notification_eml(State(app): Shared, Auth(c): Auth, Id(i): Id) -> ApiResult {
    let eml = app
        .store
        .notification_eml(&c, i, "exhunt serve <noreply@exhunt.invalid>")
        .await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], eml).into_response())
}

async fn status_sheet(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list_in_order(
        &f,
        &app.store.status_sheet(&c, &f).await?,
        &crate::sheet::COLUMNS,
    )
}

async fn version_rollup(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.version_rollup(&c, &f).await?)
}

async fn trend(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.trend(&c, f.org).await?)
}

async fn list_audit(State(app): Shared, Auth(c): Auth, Params(f): Filt) -> ApiResult {
    list(&f, &app.store.list_audit(&c, &f).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(cell(&json!("=HYPERLINK(\"x\")")), "'=HYPERLINK(\"x\")");
        assert_eq!(cell(&json!("mail.example.org")), "mail.example.org");
        assert_eq!(cell(&json!(42)), "42");
        assert_eq!(cell(&Value::Null), "");
    }
}
