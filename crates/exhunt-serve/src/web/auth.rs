//! Dashboard pages of users and passwords: the operators' user list (create, disable) and
//! each user's own password change. Every form carries the session's CSRF token, checked by
//! [`form_session`] before anything is read or changed.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::http::Extensions;
use axum::routing::{get, post};

use super::*;
use crate::users::UserInput;

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/users", get(users_page).post(create_user))
        .route("/users/{id}/disable", post(disable_user))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
}

/// The client's address as the listener saw it, as the login throttle counts it: an IPv4
/// address, or the /64 of an IPv6 one (one host is given a whole /64, and could otherwise
/// step through it to escape the per-client limit). "unknown" without one, as in tests.
pub(super) fn client(ext: &Extensions) -> String {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| client_key(c.0.ip()))
        .unwrap_or_else(|| "unknown".into())
}

fn client_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V6(a) => {
            let net = u128::from(a) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
        v4 => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let k = |s: &str| super::client_key(s.parse().expect("address"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2::1"));
        assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        // An IPv4 client seen through an IPv6 socket is its IPv4 address.
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
    }
}

/// The session of a form post whose `csrf` field is the session's token; otherwise the
/// response to send (to the login page; 403).
pub(super) async fn form_session(
    web: &Web,
    h: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(Caller, String), Response> {
    let (c, token) = session(web, h).await?;
    match csrf {
        Some(f) if !f.is_empty() && tenancy::same_secret(f, &token) => Ok((c, token)),
        _ => Err(error_page(&Error::Forbidden(
            "the form expired or came from another site (CSRF token missing or wrong): reload the page"
                .into(),
        ))),
    }
}

/// A hidden CSRF field.
pub(super) fn csrf_field(csrf: &str) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(csrf))
}

/// The largest form body the dashboard reads (its forms are a few hundred bytes), but for the
/// template pages' ([`TEMPLATE_FORM_LIMIT`]).
pub(super) const FORM_LIMIT: usize = 16 * 1024;

/// The largest form body of the template pages: a template's body may be 64 KiB, and a
/// browser sends it URL-encoded, up to 9 bytes for each byte of non-ASCII text.
pub(super) const TEMPLATE_FORM_LIMIT: usize = 640 * 1024;

/// A form body (of at most [`FORM_LIMIT`] bytes), or why it cannot be read.
pub(super) fn read_form<T>(
    form: Result<Form<T>, axum::extract::rejection::FormRejection>,
) -> Result<T, Error> {
    read_form_within(form, FORM_LIMIT)
}

/// A form body of at most `limit` bytes (the route's body limit, said when it is exceeded), or
/// why it cannot be read.
pub(super) fn read_form_within<T>(
    form: Result<Form<T>, axum::extract::rejection::FormRejection>,
    limit: usize,
) -> Result<T, Error> {
    match form {
        Ok(Form(f)) => Ok(f),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Error::TooLarge(limit)),
        Err(e) => Err(Error::BadRequest(format!(
            "the form is incomplete: {}",
            e.body_text()
        ))),
    }
}

async fn users_page(State(web): Shared, Signed(c, csrf): Signed) -> Response {
    users_body(&web, &c, &csrf, StatusCode::OK, "").await
}

async fn users_body(web: &Web, c: &Caller, csrf: &str, status: StatusCode, note: &str) -> Response {
    let users = match web.list_users(c, &Filter::default()).await {
        Ok(u) => u,
        Err(e) => return error_page(&e),
    };
    let mut body = String::from(note);
    body.push_str("<table id=users><tr><th>Name</th><th>Role</th><th>Organisation</th><th>Created</th><th>Password changed</th><th>Disabled</th><th></th></tr>");
    for u in &users {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.name),
            u.role.as_str(),
            u.org_id
                .map(|o| format!("<a href=\"/orgs/{o}\">#{o}</a>"))
                .unwrap_or_else(|| "all".into()),
            esc(&u.created),
            esc(&u.password_changed),
            opt(&u.disabled),
            if u.disabled.is_none() {
                format!(
                    "<form method=post action=\"/users/{}/disable\">{}<button>Disable</button></form>",
                    u.id,
                    csrf_field(csrf)
                )
            } else {
                String::new()
            }
        );
    }
    let _ = write!(
        body,
        "</table><h2>New user</h2><form method=post action=\"/users\" id=new-user>{}\
<p><label>Name <input name=name required maxlength=100 autocomplete=off></label></p>\
<p><label>Role <select name=role><option>reader</option><option>uploader</option><option>operator</option></select></label></p>\
<p><label>Organisation id (not for operators) <input name=org inputmode=numeric></label></p>\
<p><label>Password (at least {} characters) <input type=password name=password required autocomplete=new-password></label></p>\
<p><button>Create</button></p></form>",
        csrf_field(csrf),
        crate::password::MIN_LEN
    );
    html(status, page("Users", Some((c, csrf)), &body))
}

#[derive(Deserialize)]
struct NewUserForm {
    csrf: Option<String>,
    name: String,
    role: String,
    org: Option<String>,
    password: String,
}

async fn create_user(
    State(web): Shared,
    h: HeaderMap,
    form: Result<Form<NewUserForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form(form) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, csrf) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(f.role.trim()) else {
        return error_page(&Error::BadRequest(format!("role {:?}", f.role)));
    };
    let org = match f.org.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(o) => Some(o),
            Err(_) => {
                return error_page(&Error::BadRequest(
                    "the organisation is an id (a number)".into(),
                ));
            }
        },
    };
    let input = UserInput {
        name: f.name,
        role,
        org,
        password: f.password,
    };
    match web.create_user(&c, &input).await {
        Ok(u) => {
            let note = format!("<p class=note>User {} created.</p>", esc(&u.name));
            users_body(&web, &c, &csrf, StatusCode::CREATED, &note).await
        }
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn disable_user(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form(form) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Path(id)) = p else {
        return error_page(&Error::BadRequest(
            "the id in the path is not a number".into(),
        ));
    };
    match web.disable_user(&c, id).await {
        Ok(_) => secure_headers(Redirect::to("/users").into_response()),
        Err(e) => error_page(&e),
    }
}

async fn account_page(State(web): Shared, Signed(c, csrf): Signed) -> Response {
    let body = match web.user_of(&c).await {
        Ok(u) => format!(
            "<p>Signed in as <strong>{}</strong> ({}{}); password last changed {}.</p>\
<h2>Change password</h2><form method=post action=\"/account/password\" id=password>{}\
<p><label>Current password <input type=password name=current required autocomplete=current-password></label></p>\
<p><label>New password (at least {} characters) <input type=password name=new required autocomplete=new-password></label></p>\
<p><button>Change</button></p></form>",
            esc(&u.name),
            u.role.as_str(),
            u.org_id
                .map(|o| format!(" of organisation #{o}"))
                .unwrap_or_default(),
            esc(&u.password_changed),
            csrf_field(&csrf),
            crate::password::MIN_LEN
        ),
        Err(_) => "<p>This session was opened with an API token: it has no password.</p>".into(),
    };
    html(StatusCode::OK, page("Account", Some((&c, &csrf)), &body))
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: Option<String>,
    current: String,
    new: String,
}

async fn change_password(
    State(web): Shared,
    h: HeaderMap,
    ext: Extensions,
    form: Result<Form<PasswordForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form(form) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, csrf) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let current = cookie(&h, web.session_cookie()).unwrap_or_default();
    match web
        .change_password(&c, &current, &f.current, &f.new, &client(&ext))
        .await
    {
        Ok(()) => html(
            StatusCode::OK,
            page(
                "Account",
                Some((&c, &csrf)),
                "<p class=note>Password changed; your other sessions have ended.</p><p><a href=\"/account\">Back</a></p>",
            ),
        ),
        Err(e) => error_page(&e),
    }
}
