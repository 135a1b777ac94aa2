//! Notifications to organisations: what a CERT sends a network owner, with a ticket number,
//! the affected servers and what was seen (frozen when made), exported as an e-mail file
//! (`.eml`, with the servers as a CSV attachment), and followed through its states
//! *new → sent → acknowledged → rescan-requested → resolved*. A notification that stays new or
//! sent longer than the escalation time is `overdue`.
//!
//! Tenancy as everywhere: reads and changes go through [`Q::scoped`] (and, on PostgreSQL, the
//! row-level security policy of migration 5). Operators make and send notifications; an
//! organisation's uploader acknowledges one and asks for a rescan; readers read.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;

use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::store::{Filter, Org, Store, get_i, get_s};
use crate::templates::{Dest, Template, Values, default_template, header_value, render};
use crate::tenancy::{Caller, Role};

/// States of a notification, in order.
pub const STATES: [&str; 5] = [
    "new",
    "sent",
    "acknowledged",
    "rescan-requested",
    "resolved",
];

/// Days after which a notification still new or sent is overdue, unless the server says
/// otherwise (`--escalate-days`, [`Store::with_escalation`]).
pub const ESCALATE_DAYS: i64 = 7;

/// A notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// Organisation.
    pub org_id: i64,
    /// Ticket number (`EXH-20261130-1a2b3c4d`).
    pub ticket: String,
    /// State.
    pub state: String,
    /// The affected servers and what was seen, when it was made.
    pub servers: Value,
    /// Made.
    pub created: String,
    /// Last change of state.
    pub updated: String,
    /// New or sent for longer than the escalation period ([`Store::with_escalation`]).
    pub overdue: bool,
    /// Escalation level: 0, or 1 and 2 as a sent notification stays unacknowledged
    /// ([`crate::escalate`]).
    pub escalation: i64,
    /// When the level last rose.
    pub escalated: Option<String>,
    /// The template it is drawn with (`None`: the built-in one).
    pub template_id: Option<i64>,
}

fn from_row(r: &AnyRow, after: chrono::Duration) -> Result<Notification> {
    let state = get_s(r, "state")?;
    let updated = get_s(r, "updated")?;
    let limit = db::fmt_time(&(chrono::Utc::now() - after));
    Ok(Notification {
        id: get_i(r, "id")?,
        org_id: get_i(r, "org_id")?,
        ticket: get_s(r, "ticket")?,
        overdue: (state == "new" || state == "sent") && updated < limit,
        state,
        servers: serde_json::from_str(&get_s(r, "servers")?).unwrap_or(Value::Null),
        created: get_s(r, "created")?,
        updated,
        escalation: get_i(r, "escalation")?,
        escalated: crate::store::get_os(r, "escalated")?,
        template_id: crate::store::get_oi(r, "template_id")?,
    })
}

const COLS: &str = "SELECT n.id, n.org_id, n.ticket, n.state, n.servers, n.created, n.updated, n.escalation, n.escalated, n.template_id FROM notifications n WHERE 1 = 1";

/// Whether `role` may move a notification from `from` to `to`.
pub fn transition_allowed(role: Role, from: &str, to: &str) -> bool {
    match role {
        Role::Operator => STATES.contains(&to) && from != to,
        Role::Uploader => matches!(
            (from, to),
            ("sent", "acknowledged") | ("acknowledged", "rescan-requested")
        ),
        Role::Reader => false,
    }
}

impl Store {
    /// Makes a notification for an organisation's servers that are compromised, attempted or
    /// exposed now (operators only); `BadRequest` when none is.
    pub async fn create_notification(&self, c: &Caller, org: i64) -> Result<Notification> {
        self.create_notification_from(c, org, None).await
    }

    /// [`Store::create_notification`], drawn with a template (`None` or 0: the built-in one).
    pub async fn create_notification_from(
        &self,
        c: &Caller,
        org: i64,
        template: Option<i64>,
    ) -> Result<Notification> {
        c.require(Role::Operator)?;
        self.get_org(c, org).await?;
        let template = template.filter(|t| *t != 0);
        if let Some(t) = template {
            self.get_template(c, t).await?;
        }
        let servers = self.every_server(c, Some(org)).await?;
        let affected: Vec<Value> = servers
            .iter()
            .filter(|s| matches!(s.state.as_str(), "compromised" | "attempted" | "exposed"))
            .map(|s| {
                serde_json::json!({
                    "server_id": s.id, "name": s.name, "state": s.state, "states": s.states,
                    "last_verdict": s.last_verdict, "last_scanned": s.last_scanned,
                    "last_state": s.last_state, "last_observed": s.last_observed,
                })
            })
            .collect();
        if affected.is_empty() {
            return Err(Error::BadRequest(format!(
                "organisation #{org} has no compromised, attempted or exposed server: nothing to notify"
            )));
        }
        // 64 random bits: a ticket number cannot be guessed (it is what a reply quotes).
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| Error::BadRequest(format!("no randomness: {e}")))?;
        let ticket = format!(
            "EXH-{}-{}",
            chrono::Utc::now().format("%Y%m%d"),
            hex::encode(rnd)
        );
        let now = db::now();
        let mut tx = self.begin_write(c.org_scope()).await?;
        let r = Q::new(
            "INSERT INTO notifications (org_id, ticket, state, servers, created, updated, template_id) VALUES (",
        )
        .arg(org)
        .sql(", ")
        .arg(ticket.clone())
        .sql(", 'new', ")
        .arg(Value::Array(affected).to_string())
        .sql(", ")
        .arg(now.clone())
        .sql(", ")
        .arg(now)
        .sql(", ")
        .arg(template)
        .sql(") RETURNING id")
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("notification"))?;
        let id = get_i(&r, "id")?;
        self.audit(
            &mut *tx,
            Some(c),
            Some(org),
            "notification.create",
            format!("notification #{id} {ticket}"),
        )
        .await?;
        tx.commit().await?;
        self.get_notification(c, id).await
    }

    /// Notifications the caller may see (`state` filters by state).
    pub async fn list_notifications(&self, c: &Caller, f: &Filter) -> Result<Vec<Notification>> {
        let mut q = Q::new(COLS).scoped(c, "n.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND n.org_id = ").arg(o);
        }
        if let Some(s) = &f.state {
            q = q.sql(" AND n.state = ").arg(s.as_str());
        }
        if let Some(a) = f.after {
            q = q.sql(" AND n.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY n.id LIMIT ").arg(f.limit());
        let rows = q.fetch_all(&mut *self.begin(c.org_scope()).await?).await?;
        let after = self.escalate_after();
        rows.iter().map(|r| from_row(r, after)).collect()
    }

    /// Every notification of `f` (its organisation and state) the caller may see, page by
    /// page, as [`Store::every_server`] reads servers: a national CERT notifies tens of
    /// thousands of owners, and the dashboard's list, its order and its exports cover them all.
    pub async fn every_notification(&self, c: &Caller, f: &Filter) -> Result<Vec<Notification>> {
        let mut f = Filter {
            limit: Some(crate::store::PAGE),
            ..f.clone()
        };
        let mut out = Vec::new();
        loop {
            let page = self.list_notifications(c, &f).await?;
            let full = page.len() as i64 >= crate::store::PAGE;
            f.after = page.last().map(|n| n.id);
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Sent notifications that escalated, highest level first: how many there are, and the
    /// first `limit` of them (chosen in SQL, so a fleet with many sent notifications neither
    /// loads them all nor misses escalated ones past a page).
    pub async fn escalated_notifications(
        &self,
        c: &Caller,
        org: Option<i64>,
        limit: i64,
    ) -> Result<(i64, Vec<Notification>)> {
        let narrow = |q: Q| {
            let q = q
                .sql(" AND n.state = 'sent' AND n.escalation > 0")
                .scoped(c, "n.org_id");
            match org {
                Some(o) => q.sql(" AND n.org_id = ").arg(o),
                None => q,
            }
        };
        let mut tx = self.begin(c.org_scope()).await?;
        let total = narrow(Q::new(
            "SELECT COUNT(*) AS n FROM notifications n WHERE 1 = 1",
        ))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| crate::store::get_i(&r, "n"))
        .transpose()?
        .unwrap_or(0);
        let rows = narrow(Q::new(COLS))
            .sql(" ORDER BY n.escalation DESC, n.id LIMIT ")
            .arg(limit.clamp(1, 10_000))
            .fetch_all(&mut *tx)
            .await?;
        let after = self.escalate_after();
        Ok((
            total,
            rows.iter()
                .map(|r| from_row(r, after))
                .collect::<Result<_>>()?,
        ))
    }

    /// One notification.
    pub async fn get_notification(&self, c: &Caller, id: i64) -> Result<Notification> {
        let r = Q::new(COLS)
            .sql(" AND n.id = ")
            .arg(id)
            .scoped(c, "n.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("notification"))?;
        from_row(&r, self.escalate_after())
    }

    /// Moves a notification to another state (see [`transition_allowed`]).
    pub async fn set_notification_state(
        &self,
        c: &Caller,
        id: i64,
        to: &str,
    ) -> Result<Notification> {
        c.require(Role::Uploader)?;
        if !STATES.contains(&to) {
            return Err(Error::BadRequest(format!(
                "state {to:?}: one of {}",
                STATES.join(", ")
            )));
        }
        let n = self.get_notification(c, id).await?;
        if !transition_allowed(c.role, &n.state, to) {
            return Err(Error::Forbidden(format!(
                "a {} token cannot move a notification from {} to {to}",
                c.role.as_str(),
                n.state
            )));
        }
        let mut tx = self.begin_write(c.org_scope()).await?;
        let mut q = Q::new("UPDATE notifications SET state = ")
            .arg(to)
            .sql(", updated = ")
            .arg(db::now());
        if to == "sent" {
            // Sent (again): its clock starts now, so its escalation starts over.
            q = q.sql(", escalation = 0, escalated = NULL");
        }
        let changed = q
            .sql(" WHERE id = ")
            .arg(id)
            .sql(" AND state = ")
            .arg(n.state.clone())
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        if changed == 0 {
            return Err(Error::Conflict(
                "the notification changed meanwhile: reload it".into(),
            ));
        }
        self.audit(
            &mut *tx,
            Some(c),
            Some(n.org_id),
            "notification.state",
            format!("notification #{id}: {} -> {to}", n.state),
        )
        .await?;
        tx.commit().await?;
        self.get_notification(c, id).await
    }

    /// The placeholder values of a notification, and its template.
    async fn drawn(&self, c: &Caller, id: i64) -> Result<(Notification, Org, Template, Values)> {
        let n = self.get_notification(c, id).await?;
        let org = self.get_org(c, n.org_id).await?;
        let template = match n.template_id {
            Some(t) => self
                .template(t)
                .await
                .unwrap_or_else(|_| default_template()),
            None => default_template(),
        };
        let servers = n.servers.as_array().cloned().unwrap_or_default();
        let field = |s: &Value, k: &str, none: &str| s[k].as_str().unwrap_or(none).to_string();
        let mut list = String::new();
        let mut seen = String::new();
        for s in &servers {
            list.push_str(&format!(
                "- {} : {} (scan verdict {}, exposure {})\n",
                field(s, "name", ""),
                field(s, "state", ""),
                field(s, "last_verdict", "none"),
                field(s, "last_state", "not observed")
            ));
            let scanned = match s["last_scanned"].as_str() {
                Some(t) => format!("scan finished {t} gave {}", field(s, "last_verdict", "")),
                None => "not scanned".into(),
            };
            let observed = match s["last_observed"].as_str() {
                Some(t) => format!("observed {} on {t}", field(s, "last_state", "")),
                None => "not observed from the network".into(),
            };
            seen.push_str(&format!(
                "- {}: {scanned}; {observed}\n",
                field(s, "name", "")
            ));
        }
        let created = chrono::DateTime::parse_from_rfc3339(&n.created)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let values: Values = vec![
            ("organisation", org.name.clone()),
            ("ticket", n.ticket.clone()),
            ("count", servers.len().to_string()),
            ("servers", list.trim_end().to_string()),
            ("seen", seen.trim_end().to_string()),
            (
                "deadline",
                (created + self.escalate_after())
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            ("contacts", org.contacts.join(", ")),
            ("created", n.created.clone()),
        ];
        Ok((n, org, template, values))
    }

    /// The notification's subject and body drawn for the dashboard (HTML-escaped).
    pub async fn notification_preview(&self, c: &Caller, id: i64) -> Result<(String, String)> {
        let (_, _, t, v) = self.drawn(c, id).await?;
        Ok((
            render(&t.subject, &v, Dest::Html),
            render(&t.body, &v, Dest::Html),
        ))
    }

    /// The affected servers as CSV (spreadsheet-safe cells, CRLF lines).
    pub async fn notification_csv(&self, c: &Caller, id: i64) -> Result<String> {
        let n = self.get_notification(c, id).await?;
        Ok(servers_csv(&n))
    }

    /// The notification as an e-mail file (RFC 5322, MIME multipart: a text body from the
    /// template and the servers as CSV), addressed to the organisation's contacts. Every
    /// header value is escaped ([`crate::templates::header_value`]).
    pub async fn notification_eml(&self, c: &Caller, id: i64, from: &str) -> Result<String> {
        let (n, org, t, values) = self.drawn(c, id).await?;
        let subject = render(&t.subject, &values, Dest::Header);
        let text = render(&t.body, &values, Dest::Text);
        let csv = servers_csv(&n);
        // A random boundary of its own (not derived from the ticket, which is in the body).
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd).map_err(|e| Error::BadRequest(format!("no randomness: {e}")))?;
        let boundary = format!("=_exhunt_{}", hex::encode(rnd));
        // Only contacts that are one plain e-mail address each (a phone number, or a list
        // smuggled into one contact, is left out of the header).
        let to = org
            .contacts
            .iter()
            .filter_map(|t| mail_address(t))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Date: {date}\r\nMessage-ID: <{ticket}@exhunt.invalid>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
             --{boundary}\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-Disposition: attachment; filename=\"{ticket}.csv\"\r\n\r\n{csv}\r\n\
             --{boundary}--\r\n",
            from = header_value(from),
            ticket = n.ticket,
            date = chrono::Utc::now().to_rfc2822(),
        ))
    }
}

/// `s` when it is one plain address (`local@domain`, printable ASCII, no space, quote, comma,
/// angle bracket or other separator), else `None`.
pub fn mail_address(s: &str) -> Option<String> {
    let s = s.trim();
    let (local, domain) = s.split_once('@')?;
    let plain = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(
                        c,
                        '@' | ',' | ';' | '<' | '>' | '"' | '(' | ')' | '[' | ']' | '\\' | ':'
                    )
            })
    };
    (plain(local) && plain(domain) && s.len() <= 254).then(|| s.to_string())
}

fn servers_csv(n: &Notification) -> String {
    let servers = n.servers.as_array().cloned().unwrap_or_default();
    let mut csv = String::from("name,state,last_verdict,last_scanned,last_state,last_observed\r\n");
    for s in &servers {
        let cells: Vec<String> = [
            "name",
            "state",
            "last_verdict",
            "last_scanned",
            "last_state",
            "last_observed",
        ]
        .iter()
        .map(|k| csv_cell(s[*k].as_str().unwrap_or("")))
        .collect();
        csv.push_str(&cells.join(","));
        csv.push_str("\r\n");
    }
    csv
}

fn csv_cell(s: &str) -> String {
    // One rule for every CSV exhunt writes (a leading tab or CR too: the reviewer found this
    // copy without them).
    let s = exhunt_report::safe::csv_cell(s);
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_by_role() {
        assert!(transition_allowed(Role::Operator, "new", "sent"));
        assert!(transition_allowed(Role::Operator, "sent", "resolved"));
        assert!(transition_allowed(Role::Uploader, "sent", "acknowledged"));
        assert!(transition_allowed(
            Role::Uploader,
            "acknowledged",
            "rescan-requested"
        ));
        assert!(!transition_allowed(Role::Uploader, "new", "resolved"));
        assert!(!transition_allowed(Role::Reader, "sent", "acknowledged"));
        assert!(!transition_allowed(Role::Operator, "sent", "sent"));
    }

    #[test]
    fn headers_and_cells_are_safe() {
        assert_eq!(header_value("Evil\r\nBcc: x@y"), "Evil  Bcc: x@y");
        assert_eq!(
            mail_address(" soc@corp.example ").as_deref(),
            Some("soc@corp.example")
        );
        for bad in [
            "soc@corp.example\r\nBcc: v@x",
            "a@x, b@y",
            "+31 20 123",
            "<a@x>",
            "a@b@c",
            "a @x",
        ] {
            assert_eq!(mail_address(bad), None, "{bad:?}");
        }
        assert_eq!(csv_cell("=cmd"), "'=cmd");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }
}
