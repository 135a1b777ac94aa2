//! Notification pages: the list of the caller's organisations' notifications (filter by
//! organisation and state, sort, CSV/JSON export), a notification with its e-mail drawn from
//! its template, its state buttons (those the caller's role may use, as the API allows) and
//! its `.eml` and CSV downloads; the operators' creation form; and the escalation table of the
//! overview and organisation pages. Templates have pages of their own (`template_pages.rs`).

use axum::routing::{get, post};

use super::auth::{csrf_field, form_session, read_form};
use super::table::{Table, export_links, org_choices, org_field, query};
use super::*;
use crate::notify::{Notification, STATES as NSTATES, transition_allowed};

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/notifications", get(list_page).post(create))
        .route("/notifications/{id}", get(detail))
        .route("/notifications/{id}/state", post(set_state))
        .route("/notifications/{id}/eml", get(eml))
        .route("/notifications/{id}/csv", get(csv_download))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default, deserialize_with = "super::optional_id")]
    org: Option<i64>,
    state: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    format: Option<String>,
}

const SORTS: [&str; 6] = ["id", "org", "state", "created", "updated", "escalation"];

/// Rows drawn on the notification list's page; the export has them all.
const ROWS_SHOWN: usize = 2_000;

fn escalation_text(n: &Notification) -> String {
    match (n.escalation, n.state.as_str()) {
        (0, _) => String::new(),
        (l, "sent") => format!("level {l}"),
        (l, _) => format!("was level {l}"),
    }
}

fn table(rows: &[Notification]) -> Table {
    Table {
        head: vec![
            "id",
            "org",
            "ticket",
            "state",
            "servers",
            "created",
            "updated",
            "escalation",
            "overdue",
        ],
        numbers: &["id", "org", "servers"],
        rows: rows
            .iter()
            .map(|n| {
                vec![
                    n.id.to_string(),
                    n.org_id.to_string(),
                    n.ticket.clone(),
                    n.state.clone(),
                    n.servers.as_array().map(Vec::len).unwrap_or(0).to_string(),
                    n.created.clone(),
                    n.updated.clone(),
                    escalation_text(n),
                    if n.overdue { "yes" } else { "" }.to_string(),
                ]
            })
            .collect(),
    }
}

pub(super) fn id_or_error(
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, Error> {
    p.map(|Path(i)| i)
        .map_err(|_| Error::BadRequest("the id in the path is not a number".into()))
}

async fn list_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    q: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return error_page(&Error::BadRequest("query parameters".into()));
    };
    if let Some(s) = q.state.as_deref().filter(|s| !s.is_empty())
        && !NSTATES.contains(&s)
    {
        return error_page(&Error::BadRequest(format!(
            "state {s:?}: one of {}",
            NSTATES.join(", ")
        )));
    }
    let sort = q.sort.clone().unwrap_or_else(|| "id".into());
    if !SORTS.contains(&sort.as_str()) {
        return error_page(&Error::BadRequest(format!(
            "sort {sort:?}: one of {}",
            SORTS.join(", ")
        )));
    }
    let desc = q.dir.as_deref() == Some("desc");
    let f = Filter {
        org: q.org,
        state: q.state.clone().filter(|s| !s.is_empty()),
        ..Filter::default()
    };
    let mut rows = match web.every_notification(&c, &f).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    rows.sort_by(|a, b| {
        let o = match sort.as_str() {
            "org" => a.org_id.cmp(&b.org_id),
            "state" => {
                let i = |s: &str| NSTATES.iter().position(|x| *x == s);
                i(&a.state).cmp(&i(&b.state))
            }
            "created" => a.created.cmp(&b.created),
            "updated" => a.updated.cmp(&b.updated),
            "escalation" => a.escalation.cmp(&b.escalation),
            _ => std::cmp::Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        if desc { o.reverse() } else { o }
    });
    let t = table(&rows);
    if let Some(fmt) = q.format.as_deref() {
        return t.export(fmt, "notifications").unwrap_or_else(|| {
            error_page(&Error::BadRequest(format!("format {fmt:?}: csv or json")))
        });
    }
    let (orgs, more) = match org_choices(&web, &c).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let org_name = |id: &str| {
        orgs.iter()
            .find(|o| o.id.to_string() == id)
            .map(|o| o.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let qs = query(&[
        ("org", q.org.map(|o| o.to_string())),
        ("state", q.state.clone()),
        ("sort", q.sort.clone()),
        ("dir", q.dir.clone()),
    ]);
    let mut body = format!(
        "<form method=get action=\"/notifications\" id=filter><label>Organisation {}</label> <label>State <select name=state><option value=\"\">any</option>",
        org_field(&orgs, more, q.org, true)
    );
    for s in NSTATES {
        let _ = write!(
            body,
            "<option{}>{s}</option>",
            if q.state.as_deref() == Some(s) {
                " selected"
            } else {
                ""
            }
        );
    }
    body.push_str("</select></label> <label>Sort by <select name=sort>");
    for s in SORTS {
        let _ = write!(
            body,
            "<option{}>{s}</option>",
            if sort == s { " selected" } else { "" }
        );
    }
    let _ = write!(
        body,
        "</select></label> <label><input type=checkbox name=dir value=desc{}> descending</label> <button>Show</button></form>",
        if desc { " checked" } else { "" }
    );
    let mut t = t;
    body.push_str(&t.count_line("notification", ROWS_SHOWN));
    body.push_str(&t.html("notifications", |i, r| match i {
        0 => Some(format!(
            "<a href=\"/notifications/{0}\">#{0}</a>",
            esc(&r[0])
        )),
        1 => Some(format!(
            "<a href=\"/orgs/{}\">{}</a>",
            esc(&r[1]),
            esc(&org_name(&r[1]))
        )),
        2 => Some(format!(
            "<a href=\"/notifications/{}\">{}</a>",
            esc(&r[0]),
            esc(&r[2])
        )),
        _ => None,
    }));
    body.push_str(&export_links("/notifications", &qs));
    if c.role == Role::Operator {
        let templates = web.list_templates(&c).await.unwrap_or_default();
        let _ = write!(
            body,
            "<h2>New notification</h2><p>For the organisation's compromised, attempted and exposed servers as they stand now.</p><form method=post action=\"/notifications\" id=new-notification>{}<label>Organisation {}</label> <label>Template <select name=template>",
            csrf_field(&csrf),
            org_field(&orgs, more, None, false)
        );
        for t in &templates {
            let _ = write!(body, "<option value={}>{}</option>", t.id, esc(&t.name));
        }
        body.push_str("</select></label> <button>Create</button></form><p><a href=\"/templates\">Templates</a></p>");
    }
    html(
        StatusCode::OK,
        page("Notifications", Some((&c, &csrf)), &body),
    )
}

#[derive(Deserialize)]
struct CreateForm {
    csrf: Option<String>,
    org: i64,
    template: Option<i64>,
}

async fn create(
    State(web): Shared,
    h: HeaderMap,
    form: Result<Form<CreateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form(form) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match web.create_notification_from(&c, f.org, f.template).await {
        Ok(n) => secure_headers(Redirect::to(&format!("/notifications/{}", n.id)).into_response()),
        Err(e) => error_page(&e),
    }
}

async fn detail(
    State(web): Shared,
    Signed(c, csrf): Signed,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    let (n, (subject, text)) = match (
        web.get_notification(&c, id).await,
        web.notification_preview(&c, id).await,
    ) {
        (Ok(n), Ok(p)) => (n, p),
        (Err(e), _) | (_, Err(e)) => return error_page(&e),
    };
    let mut body = format!(
        "<table id=notification><tr><th>Ticket</th><td>{}</td></tr><tr><th>Organisation</th><td><a href=\"/orgs/{o}\">#{o}</a></td></tr><tr><th>State</th><td class=state>{}</td></tr><tr><th>Escalation</th><td>{}</td></tr><tr><th>Made</th><td>{}</td></tr><tr><th>Changed</th><td>{}</td></tr></table>",
        esc(&n.ticket),
        esc(&n.state),
        match escalation_text(&n) {
            t if t.is_empty() => "none".to_string(),
            t => format!("{t} (since {})", opt(&n.escalated)),
        },
        esc(&n.created),
        esc(&n.updated),
        o = n.org_id
    );
    let moves: Vec<&str> = NSTATES
        .iter()
        .copied()
        .filter(|to| transition_allowed(c.role, &n.state, to))
        .collect();
    if !moves.is_empty() {
        body.push_str("<p>Move to: ");
        for to in moves {
            let _ = write!(
                body,
                "<form class=state method=post action=\"/notifications/{id}/state\" style=\"display:inline\">{}<input type=hidden name=state value=\"{to}\"><button>{to}</button></form> ",
                csrf_field(&csrf)
            );
        }
        body.push_str("</p>");
    }
    let _ = write!(
        body,
        "<p>Download: <a id=eml href=\"/notifications/{id}/eml\" download>e-mail (.eml)</a> · <a id=csv href=\"/notifications/{id}/csv\" download>servers (CSV)</a></p><h2>E-mail</h2><p><strong>Subject:</strong> <span id=subject>{subject}</span></p><pre id=body style=\"white-space:pre-wrap\">{text}</pre><h2>Servers</h2><table><tr><th>Server</th><th>State</th><th>Scan verdict</th><th>Scanned</th><th>Exposure</th><th>Observed</th></tr>"
    );
    for s in n.servers.as_array().cloned().unwrap_or_default() {
        let f = |k: &str| esc(s[k].as_str().unwrap_or("—"));
        let _ = write!(
            body,
            "<tr><td><a href=\"/servers/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s["server_id"].as_i64().unwrap_or(0),
            f("name"),
            f("state"),
            f("last_verdict"),
            f("last_scanned"),
            f("last_state"),
            f("last_observed")
        );
    }
    body.push_str("</table>");
    html(
        StatusCode::OK,
        page(
            &format!("Notification {}", n.ticket),
            Some((&c, &csrf)),
            &body,
        ),
    )
}

#[derive(Deserialize)]
struct StateForm {
    csrf: Option<String>,
    state: String,
}

async fn set_state(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    form: Result<Form<StateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match read_form(form) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (c, _) = match form_session(&web, &h, f.csrf.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    match web.set_notification_state(&c, id, f.state.trim()).await {
        Ok(_) => secure_headers(Redirect::to(&format!("/notifications/{id}")).into_response()),
        Err(e) => error_page(&e),
    }
}

async fn download(
    web: &Web,
    h: &HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    eml: bool,
) -> Response {
    let (c, _) = match session(web, h).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = match id_or_error(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    let n = match web.get_notification(&c, id).await {
        Ok(n) => n,
        Err(e) => return error_page(&e),
    };
    let made = if eml {
        web.notification_eml(&c, id, "exhunt serve <noreply@exhunt.invalid>")
            .await
    } else {
        web.notification_csv(&c, id).await
    };
    let text = match made {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let (kind, ext) = if eml {
        ("message/rfc822", "eml")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    if let Err(e) = web
        .record(
            Some(&c),
            "export.download",
            format!("notification #{id} {} as .{ext} (dashboard)", n.ticket),
        )
        .await
    {
        return error_page(&e);
    }
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, kind)], text).into_response();
    // The ticket is ours (EXH-date-hex): safe in a header.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.{ext}\"", n.ticket)) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    secure_headers(r)
}

async fn eml(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    download(&web, &h, p, true).await
}

async fn csv_download(
    State(web): Shared,
    h: HeaderMap,
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    download(&web, &h, p, false).await
}

/// The escalated notifications of the caller's organisations (or of `org`), as a section of
/// the overview and organisation pages; empty when there are none.
pub(super) async fn escalations(web: &Web, c: &Caller, org: Option<i64>) -> Result<String, Error> {
    const SHOWN: i64 = 100;
    let (total, rows) = web.escalated_notifications(c, org, SHOWN).await?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    let more = if total > SHOWN {
        format!(" The {SHOWN} most escalated are listed.")
    } else {
        String::new()
    };
    let mut s = format!(
        "<h2>Escalated notifications</h2><p>{total} sent notification(s) not acknowledged in time.{more}</p><table id=escalations><tr><th>Ticket</th><th>Organisation</th><th>Level</th><th>Since</th><th>Sent</th></tr>"
    );
    for n in &rows {
        let _ = write!(
            s,
            "<tr class=escalated><td><a href=\"/notifications/{}\">{}</a></td><td><a href=\"/orgs/{o}\">#{o}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            n.id,
            esc(&n.ticket),
            n.escalation,
            opt(&n.escalated),
            esc(&n.updated),
            o = n.org_id
        );
    }
    s.push_str("</table>");
    Ok(s)
}
