//! Notification templates: a subject and a body with `{placeholders}`, kept in the database by
//! operators; [`default_template`] ships with the server and is used when a notification names none.
//!
//! Rendering escapes each value for where it lands ([`Dest`]): in an e-mail header every line
//! break and other control or separator character becomes a space and non-ASCII text becomes
//! an RFC 2047 encoded word, so an organisation's name cannot add a header (`Bcc:`) or end the
//! headers; in the plain-text body line breaks are normalised to CRLF; in the dashboard's HTML
//! everything (the template's own text too) is HTML-escaped.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::store::{Store, get_i, get_s};
use crate::tenancy::{Caller, OrgScope, Role};

/// The placeholders a template may use.
pub const PLACEHOLDERS: [(&str, &str); 8] = [
    ("organisation", "the organisation's name"),
    ("ticket", "the ticket number"),
    ("count", "how many servers need action"),
    (
        "servers",
        "one line per server: name, state, scan verdict, exposure",
    ),
    ("seen", "what was seen, per server, with when"),
    (
        "deadline",
        "the date by which an acknowledgement is expected",
    ),
    ("contacts", "the organisation's contacts"),
    ("created", "when the notification was made"),
];

/// A template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Id (0: the built-in default, not stored).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Subject (one line).
    pub subject: String,
    /// Body (plain text).
    pub body: String,
    /// Created.
    pub created: String,
    /// Last changed.
    pub updated: String,
}

/// A new template or a change to one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// Name.
    pub name: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// The subject of the built-in template.
pub const DEFAULT_SUBJECT: &str =
    "[{ticket}] Microsoft Exchange servers of {organisation}: {count} need action";

/// The body of the built-in template.
pub const DEFAULT_BODY: &str = "Hello,

This is notification {ticket} about Microsoft Exchange servers of {organisation}.
{count} server(s) need action: compromised (evidence that an attack succeeded),
attempted (exploitation attempts) or exposed (a vulnerable build reachable from the
Internet). The attached CSV lists each with what was seen and when.

{servers}

What was seen:
{seen}

Please reply with the ticket number {ticket} in the subject by {deadline} when you have
acted; we will rescan and close the ticket when the servers are patched and clean.
";

/// The built-in template.
pub fn default_template() -> Template {
    Template {
        id: 0,
        name: "default (built in)".into(),
        subject: DEFAULT_SUBJECT.into(),
        body: DEFAULT_BODY.into(),
        created: String::new(),
        updated: String::new(),
    }
}

/// Where a rendered value lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// An e-mail header (the subject).
    Header,
    /// The plain-text body of an e-mail.
    Text,
    /// The dashboard's HTML.
    Html,
}

/// `s` safe inside an e-mail header: no control or line/paragraph separator (each becomes a
/// space), and as an RFC 2047 encoded word (UTF-8, base64) when it is not plain ASCII.
pub fn header_value(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if flat.is_ascii() && !flat.contains("=?") {
        return flat;
    }
    // Encoded words of at most 45 bytes of text each (60 base64 characters), never splitting
    // a character, separated by a space (RFC 2047 §2, §5).
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in flat.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", crate::web::base64(w.as_bytes())))
        .collect::<Vec<_>>()
        // Folded: each encoded word (at most 75 characters) on a line of its own, so a long
        // value never makes a line over the limit of RFC 5322.
        .join("\r\n ")
}

/// Text with every line break as CRLF (bare CR, bare LF, NEL, U+2028/9).
pub fn crlf(s: &str) -> String {
    let norm = s
        .replace("\r\n", "\n")
        .replace(['\r', '\u{85}', '\u{2028}', '\u{2029}'], "\n");
    norm.replace('\n', "\r\n")
}

/// The values of the placeholders, by name.
pub type Values = Vec<(&'static str, String)>;

/// Fills `template` with `values`, each escaped for `dest`; the template's own text is escaped
/// for HTML too. An unknown `{name}` stays as written.
pub fn render(template: &str, values: &Values, dest: Dest) -> String {
    let esc = |s: &str| match dest {
        Dest::Html => exhunt_report::html::esc(s),
        _ => s.to_string(),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&esc(&rest[..i]));
        let after = &rest[i + 1..];
        let name = after.split('}').next().unwrap_or("");
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) if after.len() > name.len() => {
                out.push_str(&match dest {
                    // Encoded as a whole below, with the template's own text.
                    Dest::Header => v.clone(),
                    Dest::Text => v.clone(),
                    Dest::Html => exhunt_report::html::esc(v),
                });
                rest = &after[name.len() + 1..];
            }
            _ => {
                out.push_str(&esc("{"));
                rest = after;
            }
        }
    }
    out.push_str(&esc(rest));
    match dest {
        // The whole subject, the template's own text with the values, is one header value:
        // flattened, and encoded as a whole when any of it is not plain ASCII, so that no
        // encoded word sits against other text (RFC 2047 §5) and none is left raw 8-bit.
        Dest::Header => header_value(&out),
        Dest::Text => crlf(&out),
        Dest::Html => out,
    }
}

/// The input as stored: line ends of the body as `\n` (a browser's textarea sends CRLF, and a
/// CR kept in the template would be drawn as `\x0d` on pages and grow on each edit).
fn normalised(input: &TemplateInput) -> TemplateInput {
    TemplateInput {
        body: input.body.replace("\r\n", "\n").replace('\r', "\n"),
        ..input.clone()
    }
}

fn check(input: &TemplateInput) -> Result<()> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "a template needs a name of 1 to 100 characters, without control characters".into(),
        ));
    }
    if input.subject.trim().is_empty()
        || input.subject.len() > 500
        || input.subject.chars().any(char::is_control)
    {
        return Err(Error::BadRequest(
            "a template's subject is one line of 1 to 500 bytes".into(),
        ));
    }
    if input.body.trim().is_empty() || input.body.len() > 64 * 1024 {
        return Err(Error::BadRequest(
            "a template's body has 1 byte to 64 KiB".into(),
        ));
    }
    for text in [&input.subject, &input.body] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find('{') {
            let after = &rest[i + 1..];
            let name = after.split('}').next().unwrap_or("");
            if after.len() > name.len()
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !PLACEHOLDERS.iter().any(|(k, _)| *k == name)
            {
                return Err(Error::BadRequest(format!(
                    "unknown placeholder {{{name}}}: one of {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|(k, _)| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            rest = after;
        }
    }
    Ok(())
}

const COLS: &str = "SELECT t.id, t.name, t.subject, t.body, t.created, t.updated FROM notification_templates t WHERE 1 = 1";

fn from_row(r: &AnyRow) -> Result<Template> {
    Ok(Template {
        id: get_i(r, "id")?,
        name: get_s(r, "name")?,
        subject: get_s(r, "subject")?,
        body: get_s(r, "body")?,
        created: get_s(r, "created")?,
        updated: get_s(r, "updated")?,
    })
}

impl Store {
    /// Every template, the built-in one first (operators only).
    pub async fn list_templates(&self, c: &Caller) -> Result<Vec<Template>> {
        c.require(Role::Operator)?;
        let rows = Q::new(COLS)
            .sql(" ORDER BY t.id")
            .fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?;
        let mut out = vec![default_template()];
        for r in &rows {
            out.push(from_row(r)?);
        }
        Ok(out)
    }

    /// One template (operators only); id 0 is the built-in one.
    pub async fn get_template(&self, c: &Caller, id: i64) -> Result<Template> {
        c.require(Role::Operator)?;
        self.template(id).await
    }

    /// The template a notification is drawn with: the server's own lookup (the notification
    /// was already read through the caller's scope); a missing one is the default.
    pub(crate) async fn template(&self, id: i64) -> Result<Template> {
        if id == 0 {
            return Ok(default_template());
        }
        let r = Q::new(COLS)
            .sql(" AND t.id = ")
            .arg(id)
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?
            .ok_or(Error::NotFound("template"))?;
        from_row(&r)
    }

    /// Creates a template (operators only).
    pub async fn create_template(&self, c: &Caller, input: &TemplateInput) -> Result<Template> {
        c.require(Role::Operator)?;
        let input = &normalised(input);
        check(input)?;
        let now = db::now();
        let mut tx = self.begin_write(c.org_scope()).await?;
        let taken = Q::new("SELECT id FROM notification_templates WHERE name = ")
            .arg(input.name.trim())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "a template named {:?} exists",
                input.name.trim()
            )));
        }
        let r = Q::new(
            "INSERT INTO notification_templates (name, subject, body, created, updated) VALUES (",
        )
        .arg(input.name.trim())
        .sql(", ")
        .arg(input.subject.clone())
        .sql(", ")
        .arg(input.body.clone())
        .sql(", ")
        .arg(now.clone())
        .sql(", ")
        .arg(now)
        .sql(") RETURNING id")
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("template"))?;
        let id = get_i(&r, "id")?;
        self.audit(
            &mut *tx,
            Some(c),
            None,
            "template.create",
            format!("template #{id} {:?}", input.name.trim()),
        )
        .await?;
        tx.commit().await?;
        self.template(id).await
    }

    /// Replaces a template's name, subject and body (operators only; not the built-in one).
    pub async fn update_template(
        &self,
        c: &Caller,
        id: i64,
        input: &TemplateInput,
    ) -> Result<Template> {
        c.require(Role::Operator)?;
        let input = &normalised(input);
        check(input)?;
        let mut tx = self.begin_write(c.org_scope()).await?;
        let taken = Q::new("SELECT id FROM notification_templates WHERE name = ")
            .arg(input.name.trim())
            .sql(" AND id <> ")
            .arg(id)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "a template named {:?} exists",
                input.name.trim()
            )));
        }
        let n = Q::new("UPDATE notification_templates SET name = ")
            .arg(input.name.trim())
            .sql(", subject = ")
            .arg(input.subject.clone())
            .sql(", body = ")
            .arg(input.body.clone())
            .sql(", updated = ")
            .arg(db::now())
            .sql(" WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("template"));
        }
        self.audit(
            &mut *tx,
            Some(c),
            None,
            "template.update",
            format!("template #{id} {:?}", input.name.trim()),
        )
        .await?;
        tx.commit().await?;
        self.template(id).await
    }

    /// Deletes a template (operators only); notifications drawn with it fall back to the
    /// built-in one.
    pub async fn delete_template(&self, c: &Caller, id: i64) -> Result<()> {
        c.require(Role::Operator)?;
        let mut tx = self.begin_write(c.org_scope()).await?;
        Q::new("UPDATE notifications SET template_id = NULL WHERE template_id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        let n = Q::new("DELETE FROM notification_templates WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("template"));
        }
        self.audit(
            &mut *tx,
            Some(c),
            None,
            "template.delete",
            format!("template #{id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(org: &str) -> Values {
        vec![
            ("organisation", org.to_string()),
            ("ticket", "EXH-1".into()),
        ]
    }

    #[test]
    fn header_values_cannot_add_headers() {
        let v = values("Evil Corp\r\nBcc: victim@example.org\r\n\r\nbody");
        let s = render(DEFAULT_SUBJECT, &v, Dest::Header);
        assert!(!s.contains('\r') && !s.contains('\n'), "{s:?}");
        assert!(
            s.starts_with("[EXH-1] Microsoft Exchange servers of Evil Corp  Bcc:"),
            "{s}"
        );
        // NEL, line and paragraph separators are no line break either, and come out encoded.
        let s = render(
            "{organisation}",
            &values("A\u{85}B\u{2028}C\u{2029}D"),
            Dest::Header,
        );
        assert_eq!(s, "A B C D");
        let s = render("{organisation}", &values("Société Générale"), Dest::Header);
        assert!(s.starts_with("=?utf-8?B?") && s.is_ascii(), "{s}");
        // A name that looks like an encoded word is encoded itself.
        let s = render(
            "{organisation}",
            &values("=?utf-8?B?QmNjOg==?="),
            Dest::Header,
        );
        assert!(s.starts_with("=?utf-8?B?PT91"), "{s}");
        // The template's own non-ASCII text is encoded too, with the value, as one header
        // value: no encoded word glued to a colon, no raw 8-bit.
        let s = render(
            "Serveurs de {organisation}: à traiter",
            &values("Société Générale"),
            Dest::Header,
        );
        assert!(s.is_ascii() && s.starts_with("=?utf-8?B?"), "{s}");
        assert!(!s.contains("?=:"), "{s}");
        // A long one is folded into lines of at most 78 characters.
        let long = "é".repeat(400);
        let s = render("{organisation}", &values(&long), Dest::Header);
        assert!(s.split("\r\n").all(|l| l.len() <= 78), "{s}");
        assert!(s.split("\r\n").skip(1).all(|l| l.starts_with(' ')), "{s}");
        // The near miss: a plain name stays as it is.
        assert_eq!(
            render("{organisation}", &values("Alpha Corp"), Dest::Header),
            "Alpha Corp"
        );
    }

    #[test]
    fn html_and_text_are_escaped_for_their_place() {
        let v = values("<script>alert(1)</script>");
        let h = render("<b>{organisation}</b> {unknown}", &v, Dest::Html);
        assert_eq!(
            h,
            "&lt;b&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;/b&gt; {unknown}"
        );
        let t = render("a\n{organisation}\rb", &values("x\ny"), Dest::Text);
        assert_eq!(t, "a\r\nx\r\ny\r\nb");
        assert_eq!(render("{ticket", &v, Dest::Text), "{ticket");
    }

    #[test]
    fn templates_are_checked() {
        let ok = TemplateInput {
            name: "short".into(),
            subject: "[{ticket}] {organisation}".into(),
            body: "{servers}\n{seen}".into(),
        };
        assert!(check(&ok).is_ok());
        let mut bad = ok.clone();
        bad.subject = "two\r\nlines".into();
        assert!(check(&bad).is_err());
        let mut bad = ok.clone();
        bad.body = "{password}".into();
        assert!(check(&bad).is_err());
        let mut braces = ok;
        braces.body = "JSON: {\"a\": 1} and {Name}".into();
        assert!(check(&braces).is_ok());
    }
}
