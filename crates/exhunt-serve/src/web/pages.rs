//! The dashboard's overview, organisation and server pages at scale: every table paged,
//! filtered and sorted in SQL ([`crate::store::agg`]), its counts read from the kept counts
//! (migration 8), and exported whole as CSV or JSON (`?format=csv|json`, the filter and sort of
//! the page; audited as exports like the API's). No script: the filters are GET forms, the
//! sorts and pages links.

use std::fmt::Write as _;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use exhunt_report::html::esc;
use serde::Serialize;

use super::{Shared, Signed, error_page, html, opt, page};
use crate::error::Error;
use crate::store::agg::{Counts, PAGE_ROWS, TableQuery};
use crate::store::{CAMPAIGNS, Filter, STATES, TrendPoint};
use crate::tenancy::Role;

fn query(q: Result<Query<TableQuery>, QueryRejection>) -> Result<TableQuery, Error> {
    q.map(|Query(t)| t)
        .map_err(|e| Error::BadRequest(format!("query parameters: {}", e.body_text())))
}

fn id(p: Result<Path<i64>, PathRejection>) -> Result<i64, Error> {
    p.map(|Path(i)| i)
        .map_err(|_| Error::BadRequest("the id in the path is not a number".into()))
}

/// The rows as a file: CSV (cells that a spreadsheet would run as formulas are quoted, as the
/// API's) or JSON.
fn export<T: Serialize>(format: &str, name: &str, rows: &[T]) -> Response {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let (body, ctype, ext) = match format {
        "json" => (
            serde_json::to_vec(&values).unwrap_or_default(),
            "application/json",
            "json",
        ),
        "csv" => {
            let mut cols: Vec<String> = Vec::new();
            for v in &values {
                if let serde_json::Value::Object(m) = v {
                    for k in m.keys() {
                        if !cols.contains(k) {
                            cols.push(k.clone());
                        }
                    }
                }
            }
            let write =
                || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    w.write_record(&cols)?;
                    for v in &values {
                        w.write_record(cols.iter().map(|c| {
                            crate::api::cell(v.get(c).unwrap_or(&serde_json::Value::Null))
                        }))?;
                    }
                    Ok(w.into_inner()?)
                };
            match write() {
                Ok(b) => (b, "text/csv; charset=utf-8", "csv"),
                Err(e) => return error_page(&Error::BadRequest(format!("CSV export: {e}"))),
            }
        }
        other => {
            return error_page(&Error::BadRequest(format!("format {other:?}: csv or json")));
        }
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response();
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    r
}

/// A URL of this page with `t`'s parameters, `set` replacing some.
fn link(base: &str, t: &TableQuery, set: &[(&str, String)]) -> String {
    let mut params: Vec<(&str, String)> = Vec::new();
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = set
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .or(v)
            && !v.is_empty()
        {
            params.push((k, v));
        }
    };
    put("q", t.q.clone());
    put("state", t.state.clone());
    put("sort", t.sort.clone());
    put("dir", t.dir.clone());
    put("page", t.page.map(|p| p.to_string()));
    put("format", None);
    put("table", None);
    if params.is_empty() {
        return base.to_string();
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{base}?{}", q.join("&"))
}

fn encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(char::from(b));
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// A column head that sorts by `key` (again: the other way).
fn head(base: &str, t: &TableQuery, key: &str, label: &str) -> String {
    let now = t.sort.as_deref() == Some(key);
    let dir = if now && t.dir.as_deref() != Some("asc") {
        "asc"
    } else if now {
        "desc"
    } else {
        ""
    };
    let mark = if now {
        if t.dir.as_deref() == Some("asc") {
            " ▲"
        } else {
            " ▼"
        }
    } else {
        ""
    };
    format!(
        "<th><a href=\"{}\">{}{mark}</a></th>",
        esc(&link(
            base,
            t,
            &[
                ("sort", key.to_string()),
                ("dir", dir.to_string()),
                ("page", String::new())
            ]
        )),
        esc(label)
    )
}

/// The filter form (name contains, state), and the export links.
fn filters(base: &str, t: &TableQuery, what: &str, states: bool, table: Option<&str>) -> String {
    let mut s = format!(
        "<form method=get action=\"{}\" class=filters><label>{} <input name=q value=\"{}\" size=24></label>",
        esc(base),
        esc(what),
        esc(t.q.as_deref().unwrap_or(""))
    );
    if states {
        s.push_str(" <label>state <select name=state><option value=\"\">any</option>");
        for st in STATES {
            let sel = if t.state.as_deref() == Some(st) {
                " selected"
            } else {
                ""
            };
            let _ = write!(s, "<option{sel}>{st}</option>");
        }
        s.push_str("</select></label>");
    }
    for (k, v) in [("sort", &t.sort), ("dir", &t.dir)] {
        if let Some(v) = v {
            let _ = write!(s, "<input type=hidden name={k} value=\"{}\">", esc(v));
        }
    }
    let table_param = table.map(|x| ("table", x.to_string()));
    let ex = |f: &str| {
        let mut set = vec![("format", f.to_string()), ("page", String::new())];
        set.extend(table_param.clone());
        esc(&link_all(base, t, &set))
    };
    let _ = write!(
        s,
        " <button>Filter</button> <a href=\"{}\">clear</a> · export <a class=export href=\"{}\">CSV</a> <a class=export href=\"{}\">JSON</a></form>",
        esc(base),
        ex("csv"),
        ex("json")
    );
    s
}

/// [`link`], keeping `format` and `table` when `set` gives them.
fn link_all(base: &str, t: &TableQuery, set: &[(&str, String)]) -> String {
    let mut url = link(base, t, set);
    for k in ["format", "table"] {
        if let Some((_, v)) = set.iter().find(|(n, _)| *n == k) {
            url.push(if url.contains('?') { '&' } else { '?' });
            let _ = write!(url, "{k}={}", encode(v));
        }
    }
    url
}

/// "Page 2 of 7", with links to the previous and next pages.
fn pager(base: &str, t: &TableQuery, total: i64) -> String {
    let pages = ((total + PAGE_ROWS - 1) / PAGE_ROWS).max(1);
    let p = t.page.unwrap_or(1).clamp(1, pages);
    let mut s = format!("<p class=pager>{total} row(s); page {p} of {pages}");
    if p > 1 {
        let _ = write!(
            s,
            " · <a rel=prev href=\"{}\">previous</a>",
            esc(&link(base, t, &[("page", (p - 1).to_string())]))
        );
    }
    if p < pages {
        let _ = write!(
            s,
            " · <a rel=next href=\"{}\">next</a>",
            esc(&link(base, t, &[("page", (p + 1).to_string())]))
        );
    }
    s.push_str("</p>");
    s
}

fn state_cells(counts: &[i64]) -> String {
    STATES
        .iter()
        .zip(counts)
        .map(|(s, n)| {
            if *n > 0 {
                format!("<td class={s}>{n}</td>")
            } else {
                "<td>0</td>".to_string()
            }
        })
        .collect()
}

/// The exposure curve as an inline SVG (no script, no external asset).
fn curve(points: &[TrendPoint]) -> String {
    if points.is_empty() {
        return "<p>No exposure or compromise observed yet.</p>".into();
    }
    let (w, h, pad) = (640.0_f64, 160.0_f64, 24.0_f64);
    let max = points
        .iter()
        .map(|p| p.exposed.max(p.compromised))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = points.len();
    let x = |i: usize| {
        if n == 1 {
            w / 2.0
        } else {
            pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: i64| h - pad - (h - 2.0 * pad) * v as f64 / max;
    let line = |f: &dyn Fn(&TrendPoint) -> i64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg role=img aria-label=\"exposed and compromised servers per day\" width={w} height={h} viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\"><rect width={w} height={h} fill=\"#fff\" stroke=\"#ccc\"/>\
<polyline fill=none stroke=\"#ca8a04\" stroke-width=2 points=\"{}\"/><polyline fill=none stroke=\"#dc2626\" stroke-width=2 points=\"{}\"/>\
<text x={pad} y=14 font-size=11>max {max}</text>",
        line(&|p| p.exposed),
        line(&|p| p.compromised)
    );
    for (i, p) in points.iter().enumerate() {
        if i == 0 || i + 1 == n {
            let _ = write!(
                svg,
                "<text x={:.1} y={} font-size=11 text-anchor=middle>{}</text>",
                x(i),
                h - 6.0,
                esc(&p.day)
            );
        }
    }
    svg.push_str("</svg><p><span style=\"color:#ca8a04\">■ exposed</span> <span style=\"color:#dc2626\">■ compromised</span> servers per day</p>");
    svg
}

fn campaign_table(counts: &Counts, head: &str) -> String {
    let mut s = format!("<h2>By campaign</h2><table><tr><th>Campaign</th>{head}</tr>");
    for (k, row) in CAMPAIGNS.iter().zip(&counts.campaigns) {
        let _ = write!(s, "<tr><td>{k}</td>{}</tr>", state_cells(row));
    }
    s.push_str("</table>");
    s
}

/// `/`: the organisations (a page of them), their servers by state, the fleet's totals, the
/// curve, the counts per campaign.
pub(super) async fn overview(
    State(web): Shared,
    Signed(c, csrf): Signed,
    q: Result<Query<TableQuery>, QueryRejection>,
) -> Response {
    let t = match query(q) {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let (total, orgs) = match web.org_page(&c, &t).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    if let Some(f) = &t.format {
        return export(f, "organisations", &orgs);
    }
    let counts = match web.counts(&c, None).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let states_head: String = STATES.iter().map(|s| format!("<th>{s}</th>")).collect();
    let mut body = format!(
        "<p>{} organisation(s), {} server(s). A server's state: a scan's compromise or attempt first, else its latest observation's exposure.</p>{}{}<table id=orgs><tr>{}{}",
        counts.orgs,
        counts.servers,
        filters("/", &t, "organisation", true, None),
        pager("/", &t, total),
        head("/", &t, "name", "Organisation"),
        head("/", &t, "servers", "Servers"),
    );
    for s in STATES {
        if matches!(s, "compromised" | "exposed") {
            body.push_str(&head("/", &t, s, s));
        } else {
            let _ = write!(body, "<th>{s}</th>");
        }
    }
    body.push_str("</tr>");
    for o in &orgs {
        let n: Vec<i64> = STATES
            .iter()
            .map(|s| o.states.get(*s).copied().unwrap_or(0))
            .collect();
        let _ = write!(
            body,
            "<tr><td><a href=\"/orgs/{}\">{}</a></td><td>{}</td>{}</tr>",
            o.id,
            esc(&o.name),
            o.servers,
            state_cells(&n)
        );
    }
    let _ = write!(
        body,
        "<tr><th>All</th><th>{}</th>{}</tr></table>",
        counts.servers,
        state_cells(&counts.states)
    );
    match web.trend(&c, None).await {
        Ok(p) => {
            let _ = write!(body, "<h2>Exposure over time</h2>{}", curve(&p));
        }
        Err(e) => return error_page(&e),
    }
    body.push_str(&campaign_table(&counts, &states_head));
    match super::notify_pages::escalations(&web, &c, None).await {
        Ok(s) => body.push_str(&s),
        Err(e) => return error_page(&e),
    }
    if c.role == Role::Operator {
        match web
            .list_unassigned(
                &c,
                &Filter {
                    limit: Some(1),
                    ..Filter::default()
                },
            )
            .await
        {
            Ok(q) if !q.is_empty() => body.push_str("<p>Observations wait in the unassigned queue (<code>GET /api/v1/unassigned</code>).</p>"),
            Ok(_) => {}
            Err(e) => return error_page(&e),
        }
    }
    html(StatusCode::OK, page("Overview", Some((&c, &csrf)), &body))
}

/// `/orgs/{id}`: an organisation, a page of its servers, its counts and its curve.
pub(super) async fn org_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    p: Result<Path<i64>, PathRejection>,
    q: Result<Query<TableQuery>, QueryRejection>,
) -> Response {
    let (id, t) = match (id(p), query(q)) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => return error_page(&e),
    };
    let org = match web.get_org(&c, id).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let counts = match web.counts(&c, Some(id)).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let (total, servers) = match web.server_page(&c, id, &t, Some(&counts)).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    if let Some(f) = &t.format {
        return export(f, &format!("servers-of-organisation-{id}"), &servers);
    }
    let base = format!("/orgs/{id}");
    let states_head: String = STATES.iter().map(|s| format!("<th>{s}</th>")).collect();
    let mut body = format!(
        "<p>Contacts: {}</p><p>Scope: {}</p><table><tr><th>Servers</th>{states_head}</tr><tr><td>{}</td>{}</tr></table>{}{}<table id=servers><tr>{}{}{}{}{}{}</tr>",
        esc(&org.contacts.join(", ")),
        esc(&[
            org.scope.cidrs.join(" "),
            org.scope
                .asns
                .iter()
                .map(|a| format!("AS{a}"))
                .collect::<Vec<_>>()
                .join(" "),
            org.scope.domains.join(" ")
        ]
        .join(" ")),
        counts.servers,
        state_cells(&counts.states),
        filters(&base, &t, "server", true, None),
        pager(&base, &t, total),
        head(&base, &t, "name", "Server"),
        head(&base, &t, "state", "State"),
        CAMPAIGNS
            .iter()
            .map(|k| format!("<th>{k}</th>"))
            .collect::<String>(),
        "<th>Latest scan verdict</th>",
        head(&base, &t, "scanned", "Scanned"),
        "<th>Latest observation</th>".to_string() + &head(&base, &t, "observed", "Observed"),
    );
    for s in &servers {
        let st = s.state.as_str();
        let _ = write!(
            body,
            "<tr><td><a href=\"/servers/{}\">{}</a></td><td class={st}>{st}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.id,
            esc(&s.name),
            CAMPAIGNS
                .iter()
                .map(|k| {
                    let c = s.states.get(*k).map(String::as_str).unwrap_or("unknown");
                    format!("<td class={c}>{c}</td>")
                })
                .collect::<String>(),
            opt(&s.last_verdict),
            opt(&s.last_scanned),
            opt(&s.last_state),
            opt(&s.last_observed)
        );
    }
    body.push_str("</table>");
    match web.trend(&c, Some(id)).await {
        Ok(p) => {
            let _ = write!(body, "<h2>Exposure over time</h2>{}", curve(&p));
        }
        Err(e) => return error_page(&e),
    }
    body.push_str(&campaign_table(&counts, &states_head));
    match super::notify_pages::escalations(&web, &c, Some(id)).await {
        Ok(s) => body.push_str(&s),
        Err(e) => return error_page(&e),
    }
    let _ = write!(
        body,
        "<p><a href=\"/notifications?org={id}\">Notifications</a> · <a href=\"/sheet?org={id}\">Status sheet</a></p>"
    );
    html(StatusCode::OK, page(&org.name, Some((&c, &csrf)), &body))
}

/// `/servers/{id}`: a server's scans and a page of its observations (`table=scans` or
/// `table=observations` chooses what `format` exports).
pub(super) async fn server_page(
    State(web): Shared,
    Signed(c, csrf): Signed,
    p: Result<Path<i64>, PathRejection>,
    q: Result<Query<std::collections::HashMap<String, String>>, QueryRejection>,
) -> Response {
    let id = match id(p) {
        Ok(i) => i,
        Err(e) => return error_page(&e),
    };
    let Ok(Query(params)) = q else {
        return error_page(&Error::BadRequest("query parameters".into()));
    };
    let t = TableQuery {
        q: params.get("q").cloned(),
        state: None,
        sort: None,
        dir: params.get("dir").cloned(),
        page: params.get("page").and_then(|p| p.parse().ok()),
        format: params.get("format").cloned(),
    };
    let server = match web.get_server(&c, id).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    let table = params
        .get("table")
        .map(String::as_str)
        .unwrap_or("observations");
    let scans_t = TableQuery {
        page: None,
        ..t.clone()
    };
    if let Some(f) = &t.format {
        return match table {
            "scans" => match web.result_page(&c, id, &scans_t).await {
                Ok((_, r)) => export(f, &format!("scans-of-server-{id}"), &r),
                Err(e) => error_page(&e),
            },
            "observations" => match web.observation_page(&c, id, &t).await {
                Ok((_, o)) => export(f, &format!("observations-of-server-{id}"), &o),
                Err(e) => error_page(&e),
            },
            other => error_page(&Error::BadRequest(format!(
                "table {other:?}: scans or observations"
            ))),
        };
    }
    let (results, (total, obs)) = match (
        web.result_page(&c, id, &TableQuery { q: None, ..scans_t })
            .await,
        web.observation_page(&c, id, &t).await,
    ) {
        (Ok((_, r)), Ok(o)) => (r, o),
        (Err(e), _) | (_, Err(e)) => return error_page(&e),
    };
    let base = format!("/servers/{id}");
    let mut body = format!(
        "<p>Organisation <a href=\"/orgs/{0}\">#{0}</a>; state <span class={1}>{1}</span>.</p><h2>Scans</h2><p>export <a class=export href=\"{2}?table=scans&amp;format=csv\">CSV</a> <a class=export href=\"{2}?table=scans&amp;format=json\">JSON</a></p><table id=scans><tr><th>Finished</th><th>Verdict</th><th>Per campaign</th><th>Findings</th><th>Report</th></tr>",
        server.org_id, server.state, base
    );
    for r in &results {
        let per: String = r
            .verdicts
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/results/{}/report\">report</a></td></tr>",
            esc(&r.finished),
            esc(&r.verdict),
            esc(&per),
            r.findings,
            r.id
        );
    }
    let _ = write!(
        body,
        "</table><h2>Observations</h2>{}{}<table id=observations><tr><th><a href=\"{}\">Seen{}</a></th><th>Source</th><th>Address</th><th>State</th><th>Decided by</th><th>Build</th><th>Detail</th></tr>",
        filters(
            &base,
            &t,
            "state, source or detail",
            false,
            Some("observations")
        ),
        pager(&base, &t, total),
        esc(&link(
            &base,
            &t,
            &[("dir", if t.desc(true) { "asc" } else { "desc" }.to_string())]
        )),
        if t.desc(true) { " ▼" } else { " ▲" }
    );
    for o in &obs {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.seen),
            esc(&o.source),
            opt(&o.ip),
            o.port.map(|p| format!(":{p}")).unwrap_or_default(),
            esc(&o.state),
            esc(&o.decided_by),
            opt(&o.build),
            esc(&o.detail)
        );
    }
    body.push_str("</table>");
    html(StatusCode::OK, page(&server.name, Some((&c, &csrf)), &body))
}
