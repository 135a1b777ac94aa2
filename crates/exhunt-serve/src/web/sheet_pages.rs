//! The directive's per-organisation status sheet and the fleet roll-up by version as pages,
//! with CSV/JSON export of each table (the same rows as `GET /api/v1/status-sheet` and
//! `/api/v1/rollup/versions`, through the same store functions and so the same scope).

use axum::routing::get;

use super::table::{Table, export_links, org_choices, org_field, query};
use super::*;

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/sheet", get(sheet_page))
        .route("/rollup", get(rollup_page))
}

#[derive(Deserialize, Default)]
struct SheetQuery {
    #[serde(default, deserialize_with = "super::optional_id")]
    org: Option<i64>,
    format: Option<String>,
}

async fn org_picker(web: &Web, c: &Caller, action: &str, org: Option<i64>) -> String {
    let (orgs, more) = org_choices(web, c).await.unwrap_or_default();
    format!(
        "<form method=get action=\"{action}\" id=filter><label>Organisation {}</label> <button>Show</button></form>",
        org_field(&orgs, more, org, true)
    )
}

/// Rows drawn on the status sheet's page; the export has them all.
const SHEET_ROWS_SHOWN: usize = 2_000;

async fn sheet_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    q: Result<axum::extract::Query<SheetQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return error_page(&Error::BadRequest("query parameters".into()));
    };
    let f = Filter {
        org: q.org,
        ..Filter::default()
    };
    let rows = match web.status_sheet(&c, &f).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let t = Table {
        head: crate::sheet::COLUMNS.to_vec(),
        numbers: &["org_id"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.org_id.to_string(),
                    r.server.clone(),
                    r.version.clone(),
                    r.internet_facing.clone(),
                    r.updated.clone(),
                    r.disconnected.clone(),
                    r.compromised.clone(),
                    r.evidence_collected.clone(),
                ]
            })
            .collect(),
    };
    if let Some(fmt) = q.format.as_deref() {
        return t.export(fmt, "status-sheet").unwrap_or_else(|| {
            error_page(&Error::BadRequest(format!("format {fmt:?}: csv or json")))
        });
    }
    let mut body = String::from(
        "<p>The columns of the 2021 emergency directive's reporting template (CISA ED 21-02), per server, from what was stored: <em>unknown</em> where nothing was observed, <em>not recorded</em> for what exhunt cannot know.</p>",
    );
    body.push_str(&org_picker(&web, &c, "/sheet", q.org).await);
    let mut t = t;
    body.push_str(&t.count_line("server", SHEET_ROWS_SHOWN));
    body.push_str(&t.html("sheet", |i, r| {
        (i == 0).then(|| format!("<a href=\"/orgs/{0}\">#{0}</a>", esc(&r[0])))
    }));
    body.push_str(&export_links(
        "/sheet",
        &query(&[("org", q.org.map(|o| o.to_string()))]),
    ));
    body.push_str("<p><a href=\"/rollup\">Roll-up by version</a></p>");
    html(
        StatusCode::OK,
        page("Status sheet", Some((&c, &csrf)), &body),
    )
}

async fn rollup_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    q: Result<axum::extract::Query<SheetQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return error_page(&Error::BadRequest("query parameters".into()));
    };
    let f = Filter {
        org: q.org,
        ..Filter::default()
    };
    let rows = match web.version_rollup(&c, &f).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let t = Table {
        head: vec!["version", "servers", "exposed", "compromised"],
        numbers: &["servers", "exposed", "compromised"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.version.clone(),
                    r.servers.to_string(),
                    r.exposed.to_string(),
                    r.compromised.to_string(),
                ]
            })
            .collect(),
    };
    if let Some(fmt) = q.format.as_deref() {
        return t.export(fmt, "rollup-by-version").unwrap_or_else(|| {
            error_page(&Error::BadRequest(format!("format {fmt:?}: csv or json")))
        });
    }
    let mut body = String::from(
        "<p>Servers by the build or version their latest observation read; exposed: that observation found the build vulnerable; compromised: the dashboard state.</p>",
    );
    body.push_str(&org_picker(&web, &c, "/rollup", q.org).await);
    body.push_str(&t.html("rollup", |_, _| None));
    body.push_str(&export_links(
        "/rollup",
        &query(&[("org", q.org.map(|o| o.to_string()))]),
    ));
    html(
        StatusCode::OK,
        page("Roll-up by version", Some((&c, &csrf)), &body),
    )
}
