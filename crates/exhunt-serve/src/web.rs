//! The dashboard: server-rendered HTML, no script, no external asset (works offline).
//!
//! Login is with an API token (pasted once) and gives a session cookie (`HttpOnly`,
//! `SameSite=Strict`, and `Secure` with the `__Host-` prefix unless serving plain HTTP on
//! loopback or the demo; only its hash is stored; it dies with its token). Every form carries a
//! CSRF token: the session's for logout, a double-submit cookie for login. Pages read through
//! the same [`Store`] functions as the API, with the session's [`Caller`], so a page shows
//! exactly what the API would show that caller; scan reports are drawn by `exhunt-report`'s
//! HTML renderer, as `exhunt report` draws them.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use exhunt_model::ScanResult;
use exhunt_report::html::esc;
use serde::Deserialize;

use crate::error::Error;
// Filter and Role are for the page modules below (`use super::*`).
use crate::store::{Filter, Store};
use crate::tenancy::{self, Caller, Role};

mod pages;

mod auth;
mod notify_pages;
mod sheet_pages;
mod table;
mod template_pages;

/// The dashboard's state: the store, and whether cookies are `Secure`.
struct Web {
    store: Store,
    /// `Secure` cookies with the `__Host-` prefix: the browser sends them over
    /// HTTPS only (the server behind a TLS proxy). Off only for plain HTTP on loopback or the
    /// demo ([`crate::api::Config::secure_cookies`]).
    secure: bool,
}

impl std::ops::Deref for Web {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Web {
    fn session_cookie(&self) -> &'static str {
        session_cookie(self.secure)
    }

    fn csrf_cookie(&self) -> &'static str {
        if self.secure {
            // `__Host-`: only this host, over HTTPS, may set it (a sibling subdomain cannot
            // plant a login CSRF token of its own), which needs `Path=/`.
            "__Host-exhunt_login_csrf"
        } else {
            "exhunt_login_csrf"
        }
    }

    fn attrs(&self) -> &'static str {
        if self.secure {
            "HttpOnly; Secure; SameSite=Strict"
        } else {
            "HttpOnly; SameSite=Strict"
        }
    }
}
const SESSION_HOURS: i64 = 12;

pub(crate) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sha256_source(s: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("'sha256-{}'", base64(&Sha256::digest(s.as_bytes())))
}

/// The hash of the one script `exhunt-report`'s renderer emits (a constant of that crate):
/// taken once from a rendering of a document without servers, where it is the only
/// `<script>`. `None` when the renderer no longer looks so (the report then runs no script).
fn renderer_script(doc: &ScanResult) -> Option<String> {
    static HASH: OnceLock<Option<String>> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut bare = doc.clone();
        bare.servers.clear();
        let mut out = Vec::new();
        exhunt_report::html::render_html(&bare, &mut out).ok()?;
        let text = String::from_utf8(out).ok()?;
        if text.matches("<script").count() != 1 {
            return None;
        }
        let start = text.find("<script>")? + "<script>".len();
        let len = text[start..].find("</script>")?;
        Some(sha256_source(&text[start..start + len]))
    })
    .clone()
}

/// The inline event handlers `exhunt-report` writes for server `i`'s findings table: the
/// filter box's `oninput` and each column head's `onclick` (html.rs `findings_table`).
fn renderer_handlers(i: usize) -> impl Iterator<Item = (String, String)> {
    std::iter::once((format!("oninput=\"exf({i})\""), format!("exf({i})")))
        .chain((0..7).map(move |c| (format!("onclick=\"exs({i},{c})\""), format!("exs({i},{c})"))))
}

/// The Content-Security-Policy of a scan report drawn by `exhunt-report` from `doc`: nothing
/// from outside; the renderer's own script, by its hash (not every `<script>` of the page: one
/// injected through the data would not run); and, with `'unsafe-hashes'`, the exact inline
/// handlers the renderer writes for the filter and the sorting (built from its templates for
/// each server of `doc`, kept when the page holds them).
pub fn report_csp(html: &str, doc: &ScanResult) -> String {
    let mut sources = Vec::new();
    if let Some(h) = renderer_script(doc) {
        sources.push(h);
        let mut handlers = Vec::new();
        for i in 0..doc.servers.len() {
            for (attr, code) in renderer_handlers(i) {
                if html.contains(&attr) {
                    handlers.push(sha256_source(&code));
                }
            }
        }
        if !handlers.is_empty() {
            sources.push("'unsafe-hashes'".to_string());
            sources.extend(handlers);
        }
    }
    let scripts = if sources.is_empty() {
        String::new()
    } else {
        format!("; script-src {}", sources.join(" "))
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'{scripts}"
    )
}

/// An optional value for a table cell, escaped ("—" when absent).
fn opt(s: &Option<String>) -> String {
    esc(s.as_deref().unwrap_or("—"))
}

/// The dashboard's router.
pub fn router(store: Store, secure_cookies: bool) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/orgs/{id}", get(pages::org_page))
        .route("/servers/{id}", get(pages::server_page))
        .route("/results/{id}/report", get(report_page))
        .merge(auth::routes())
        .merge(notify_pages::routes())
        .merge(template_pages::routes())
        .merge(sheet_pages::routes())
        // The bodies the dashboard reads are small forms: a few hundred bytes.
        .layer(axum::extract::DefaultBodyLimit::max(auth::FORM_LIMIT))
        .with_state(Arc::new(Web {
            store,
            secure: secure_cookies,
        }))
}

type Shared = State<Arc<Web>>;

/// The session cookie's name.
pub(crate) fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-exhunt_session"
    } else {
        "exhunt_session"
    }
}

pub(crate) fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn html(status: StatusCode, body: String) -> Response {
    secure_headers(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}header{background:#1f2937;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}header a{color:#fff}main{padding:16px}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f4f6}.compromised{background:#fecaca}.attempted{background:#fed7aa}.exposed{background:#fef08a}.mitigated{background:#e0e7ff}.patched{background:#bbf7d0}.unknown{background:#e5e7eb}form.inline{display:inline;margin-left:auto}";

fn page(title: &str, who: Option<(&Caller, &str)>, body: &str) -> String {
    let mut s = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{} — exhunt serve</title><style>{STYLE}</style></head><body><header><strong>exhunt serve</strong><a href=\"/\">Overview</a>",
        esc(title)
    );
    if let Some((c, csrf)) = who {
        s.push_str("<a href=\"/notifications\">Notifications</a><a href=\"/sheet\">Status sheet</a><a href=\"/rollup\">By version</a><a href=\"/account\">Account</a>");
        if c.role == Role::Operator {
            s.push_str("<a href=\"/templates\">Templates</a><a href=\"/users\">Users</a>");
        }
        let _ = write!(
            s,
            "<span>{}{}</span><form class=inline method=post action=\"/logout\"><input type=hidden name=csrf value=\"{}\"><button>Log out</button></form>",
            c.role.as_str(),
            c.org
                .map(|o| format!(" of organisation #{o}"))
                .unwrap_or_default(),
            esc(csrf)
        );
    }
    let _ = write!(
        s,
        "</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    s
}

/// The session's caller, or the response to send instead (to the login page; an error page).
async fn session(store: &Web, h: &HeaderMap) -> Result<(Caller, String), Response> {
    let Some(secret) = cookie(h, store.session_cookie()) else {
        return Err(Redirect::to("/login").into_response());
    };
    store.session(&secret).await.map_err(|e| match e {
        Error::Unauthorized => Redirect::to("/login").into_response(),
        e => error_page(&e),
    })
}

/// The signed-in caller of a dashboard page and its session's CSRF token, as an extractor: a
/// request without a valid session is sent to the login page (or gets the error page).
struct Signed(Caller, String);

impl axum::extract::FromRequestParts<Arc<Web>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        web: &Arc<Web>,
    ) -> Result<Self, Response> {
        let (c, csrf) = session(web, &parts.headers).await?;
        crate::server::Seen::note(&parts.extensions, &c);
        Ok(Signed(c, csrf))
    }
}

fn error_page(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let msg = match e {
        Error::Db(_) | Error::Migrate(_) => {
            tracing::error!("{e}");
            "internal error (see the server's log)".to_string()
        }
        e => e.to_string(),
    };
    html(
        status,
        page("Error", None, &format!("<p>{}</p>", esc(&msg))),
    )
}

async fn login_form(State(web): Shared) -> Response {
    let csrf = match tenancy::new_secret() {
        Ok(c) => c,
        Err(e) => return error_page(&e),
    };
    let body = format!(
        "<form method=post action=\"/login\" id=password-login><p><label>User <input name=user autocomplete=username required maxlength=100></label></p><p><label>Password <input type=password name=password autocomplete=current-password required></label></p><input type=hidden name=csrf value=\"{0}\"><p><button>Log in</button></p></form>\
<h2>With an API token</h2><form method=post action=\"/login\" id=token-login><p><label>API token <input type=password name=token autocomplete=off size=70 required></label></p><input type=hidden name=csrf value=\"{0}\"><p><button>Log in with the token</button></p></form><p>Users are made by an operator (the Users page, <code>POST /api/v1/users</code>, or <code>exhunt serve --add-user</code>); a token by an operator (<code>POST /api/v1/tokens</code>); the first operator token is printed when the server starts on an empty database.</p>",
        esc(&csrf)
    );
    let mut r = html(StatusCode::OK, page("Log in", None, &body));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={csrf}; {}; Path=/; Max-Age=3600",
        web.csrf_cookie(),
        web.attrs()
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A query's or form's optional number, such as `org`: absent, or empty (the "all" choice of a
/// drop-down, a number field left empty), is none; anything else must be a number.
pub(super) fn optional_id<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_report_csp() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // sha256("") in base64.
        assert_eq!(
            sha256_source(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn report_csp_allows_the_renderers_script_and_handlers_only() {
        let doc = include_str!("../../exhunt/tests/snapshots/compromised.json")
            .replace("\"STARTED\"", "\"2026-11-30T09:00:00Z\"")
            .replace("\"FINISHED\"", "\"2026-11-30T09:05:00Z\"");
        let Ok(doc) = serde_json::from_str::<ScanResult>(&doc) else {
            panic!("snapshot")
        };
        let mut out = Vec::new();
        assert!(exhunt_report::html::render_html(&doc, &mut out).is_ok());
        let html = String::from_utf8_lossy(&out).into_owned();
        let csp = report_csp(&html, &doc);
        // The page's one script, and the filter and sort handlers of its table.
        let start = html.rfind("<script>").unwrap_or(0) + "<script>".len();
        let end = start + html[start..].find("</script>").unwrap_or(0);
        assert!(csp.contains(&sha256_source(&html[start..end])), "{csp}");
        assert!(html.contains("oninput=\"exf(0)\""));
        assert!(csp.contains("'unsafe-hashes'"), "{csp}");
        assert!(csp.contains(&sha256_source("exf(0)")), "{csp}");
        assert!(csp.contains(&sha256_source("exs(0,6)")), "{csp}");
        // Another script in the page (were the data to carry one) is not allowed.
        let injected = html.replace("<h1>", "<script>alert(1)</script><h1>");
        let csp2 = report_csp(&injected, &doc);
        assert!(!csp2.contains(&sha256_source("alert(1)")), "{csp2}");
        assert_eq!(csp, csp2);
    }
}

/// The login form: a user name and password, or an API token.
#[derive(Deserialize)]
struct LoginForm {
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
    csrf: String,
}

async fn login(
    State(store): Shared,
    h: HeaderMap,
    ext: axum::http::Extensions,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_page(&Error::TooLarge(auth::FORM_LIMIT));
        }
        Err(_) => {
            return error_page(&Error::BadRequest("the login form is incomplete".into()));
        }
    };
    if cookie(&h, store.csrf_cookie())
        .is_none_or(|c| c.is_empty() || !tenancy::same_secret(&c, &f.csrf))
    {
        return error_page(&Error::Forbidden(
            "the login form expired or came from another site: reload it".into(),
        ));
    }
    let by_password = f.user.as_deref().is_some_and(|u| !u.trim().is_empty());
    let opened = match (f.user.as_deref().map(str::trim), f.token.as_deref()) {
        (Some(u), _) if !u.is_empty() => {
            store
                .password_login(
                    u,
                    f.password.as_deref().unwrap_or(""),
                    &auth::client(&ext),
                    SESSION_HOURS,
                )
                .await
        }
        (_, Some(t)) => store.open_session(t, SESSION_HOURS).await,
        _ => Err(Error::Unauthorized),
    };
    match opened {
        Ok((secret, _)) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={secret}; {}; Path=/; Max-Age={}",
                store.session_cookie(),
                store.attrs(),
                SESSION_HOURS * 3600
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            secure_headers(r)
        }
        Err(e) => {
            let mut r = match e {
                Error::Unauthorized => html(
                    StatusCode::UNAUTHORIZED,
                    page(
                        "Log in",
                        None,
                        "<p>Unknown user or wrong password, or an unknown or revoked token. <a href=\"/login\">Try again</a>.</p>",
                    ),
                ),
                e => error_page(&e),
            };
            if by_password {
                // The store logged this failure (or the throttling) with the account and the
                // client: the access log need not write a second, vaguer row.
                r.extensions_mut().insert(crate::server::Audited);
            }
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(store): Shared,
    h: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, csrf) = match session(&store, &h).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Form(f)) = form else {
        return error_page(&Error::Forbidden("missing CSRF token".into()));
    };
    if !tenancy::same_secret(&f.csrf, &csrf) {
        return error_page(&Error::Forbidden("bad CSRF token".into()));
    }
    if let Some(secret) = cookie(&h, store.session_cookie())
        && let Err(e) = store.close_session(&secret).await
    {
        return error_page(&e);
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; {}; Path=/; Max-Age=0",
        store.session_cookie(),
        store.attrs()
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    secure_headers(r)
}

async fn report_page(
    State(store): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let (c, _) = match session(&store, &h).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Path(id)) = p else {
        return error_page(&Error::BadRequest(
            "the id in the path is not a number".into(),
        ));
    };
    let doc = match store.result_document(&c, id).await {
        Ok(d) => d,
        Err(e) => return error_page(&e),
    };
    let mut out = Vec::new();
    if let Err(e) = exhunt_report::html::render_html(&doc, &mut out) {
        return error_page(&Error::BadRequest(format!("rendering the report: {e}")));
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let csp = report_csp(&text, &doc);
    let mut r = html(StatusCode::OK, text);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}
