//! Tables of the dashboard's pages and their exports: the same rows as HTML, CSV (cells a
//! spreadsheet would run as a formula get a leading `'`) or JSON (an array of objects, ids and
//! counts as JSON numbers).

use super::*;

/// A table: column names and rows of cell texts; `numbers` names the columns whose cells are
/// integers (ids, counts): numbers in the JSON export, as in the API's.
pub(super) struct Table {
    pub(super) head: Vec<&'static str>,
    pub(super) numbers: &'static [&'static str],
    pub(super) rows: Vec<Vec<String>>,
}

/// A cell of `column` as a JSON value: a number where the column holds numbers and the text is
/// one; else the text.
fn json_cell(numbers: &[&str], column: &str, text: &str) -> serde_json::Value {
    if numbers.contains(&column)
        && let Ok(n) = text.parse::<i64>()
    {
        return serde_json::Value::from(n);
    }
    serde_json::Value::String(text.to_string())
}

fn safe(s: &str) -> String {
    exhunt_report::safe::csv_cell(s).into_owned()
}

impl Table {
    /// The rows as CSV or JSON (`format`), for download as `name`.csv/.json; `None` for
    /// another format (the caller answers 400).
    pub(super) fn export(&self, format: &str, name: &str) -> Option<Response> {
        let (body, kind) = match format {
            "csv" => {
                let mut w = csv::Writer::from_writer(Vec::new());
                let mut ok = w.write_record(&self.head).is_ok();
                for r in &self.rows {
                    ok &= w.write_record(r.iter().map(|c| safe(c))).is_ok();
                }
                let bytes = w.into_inner().ok().filter(|_| ok)?;
                (bytes, "text/csv; charset=utf-8")
            }
            "json" => {
                let rows: Vec<serde_json::Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        serde_json::Value::Object(
                            self.head
                                .iter()
                                .zip(r)
                                .map(|(k, v)| (k.to_string(), json_cell(self.numbers, k, v)))
                                .collect(),
                        )
                    })
                    .collect();
                (serde_json::to_vec(&rows).ok()?, "application/json")
            }
            _ => return None,
        };
        let disposition = format!("attachment; filename=\"{name}.{format}\"");
        let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, kind)], body).into_response();
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Some(secure_headers(r))
    }

    /// The line above the drawn table: how many `noun`s it has, and, when there are more
    /// than `shown`, that only the first `shown` are drawn (the rows are cut to them here) and
    /// the export has them all.
    pub(super) fn count_line(&mut self, noun: &str, shown: usize) -> String {
        let mut line = format!("<p>{} {noun}(s).", self.rows.len());
        if self.rows.len() > shown {
            self.rows.truncate(shown);
            let _ = write!(
                line,
                " The first {shown} are shown; the export has them all."
            );
        }
        line.push_str("</p>");
        line
    }

    /// The table as HTML; `cell` may turn a cell's (escaped) text into markup (a link).
    pub(super) fn html(
        &self,
        id: &str,
        cell: impl Fn(usize, &[String]) -> Option<String>,
    ) -> String {
        let mut s = format!("<table id={id}><tr>");
        for h in &self.head {
            let _ = write!(s, "<th>{h}</th>");
        }
        s.push_str("</tr>");
        for r in &self.rows {
            s.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let inner = cell(i, r).unwrap_or_else(|| esc(c));
                let _ = write!(s, "<td>{inner}</td>");
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
        s
    }
}

/// Links to the exports of the page at `path` with its query `query` (without `format`).
pub(super) fn export_links(path: &str, query: &str) -> String {
    let sep = if query.is_empty() { "" } else { "&" };
    format!(
        "<p class=exports>Export: <a href=\"{p}?{q}{sep}format=csv\" download>CSV</a> · <a href=\"{p}?{q}{sep}format=json\" download>JSON</a></p>",
        p = esc(path),
        q = esc(query)
    )
}

/// A query string of the given pairs (empty values left out), percent-encoded.
pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// At most this many organisations are offered in a drop-down; a fleet with more gets a
/// number field (a CERT's 60,000 organisations would make every page several megabytes).
pub(super) const ORG_CHOICES: usize = 300;

/// The organisations a form may offer: the first [`ORG_CHOICES`] the caller sees, and whether
/// there are more (then the form asks for a number).
pub(super) async fn org_choices(
    web: &Web,
    c: &Caller,
) -> Result<(Vec<crate::store::Org>, bool), Error> {
    let mut orgs = web
        .list_orgs(
            c,
            &Filter {
                limit: Some(ORG_CHOICES as i64 + 1),
                ..Filter::default()
            },
        )
        .await?;
    let more = orgs.len() > ORG_CHOICES;
    orgs.truncate(ORG_CHOICES);
    Ok((orgs, more))
}

/// A form field `org`: a drop-down of `orgs` (with "all" first when `all`), or a number field
/// when there are more than a drop-down should hold.
pub(super) fn org_field(
    orgs: &[crate::store::Org],
    more: bool,
    selected: Option<i64>,
    all: bool,
) -> String {
    if more {
        return format!(
            "<input name=org type=number min=1 placeholder=\"{}\" value=\"{}\">",
            if all { "all" } else { "organisation id" },
            selected.map(|o| o.to_string()).unwrap_or_default()
        );
    }
    let mut s = String::from("<select name=org>");
    if all {
        s.push_str("<option value=\"\">all</option>");
    }
    for o in orgs {
        let _ = write!(
            s,
            "<option value={}{}>{}</option>",
            o.id,
            if selected == Some(o.id) {
                " selected"
            } else {
                ""
            },
            esc(&o.name)
        );
    }
    s.push_str("</select>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_spreadsheet_safe_and_queries_encoded() {
        assert_eq!(safe("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(safe("ex01"), "ex01");
        assert_eq!(
            query(&[
                ("state", Some("sent".into())),
                ("org", None),
                ("q", Some("a&b=c".into()))
            ]),
            "state=sent&q=a%26b%3Dc"
        );
    }
}
