//! The per-organisation status sheet with the columns of the 2021 emergency directive's
//! reporting template (CISA ED 21-02: version, internet-facing, updated, disconnected,
//! compromised, evidence collected), and the fleet's roll-up by version.
//!
//! Each cell says what the stored data shows and no more: "unknown" where nothing was observed,
//! "not recorded" for what exhunt cannot know (whether a server was disconnected).

use serde::{Deserialize, Serialize};

use crate::db::Q;
use crate::error::Result;
use crate::store::{Filter, Server, Store, get_i, get_s};
use crate::tenancy::Caller;

/// The sheet's columns in the template's order (CSV export).
pub const COLUMNS: [&str; 8] = [
    "org_id",
    "server",
    "version",
    "internet_facing",
    "updated",
    "disconnected",
    "compromised",
    "evidence_collected",
];

/// One row of the status sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetRow {
    /// Organisation.
    pub org_id: i64,
    /// Server.
    pub server: String,
    /// Build or version read by the latest observation that read one.
    pub version: String,
    /// Seen answering as Exchange from the network: yes, or unknown.
    pub internet_facing: String,
    /// Patched per the latest observation: yes, no (vulnerable), mitigated, or unknown.
    pub updated: String,
    /// Not something exhunt observes.
    pub disconnected: String,
    /// From the latest scan: yes, attempted, no, inconclusive, or not scanned.
    pub compromised: String,
    /// A scan result is stored (its time), or no.
    pub evidence_collected: String,
}

fn row(s: &Server) -> SheetRow {
    let exchange = matches!(
        s.last_state.as_deref(),
        Some("vulnerable" | "mitigated" | "patched" | "indeterminate" | "compromised")
    );
    SheetRow {
        org_id: s.org_id,
        server: s.name.clone(),
        version: s.last_build.clone().unwrap_or_else(|| "unknown".into()),
        internet_facing: if exchange { "yes" } else { "unknown" }.into(),
        updated: match s.last_state.as_deref() {
            Some("patched") => "yes",
            Some("vulnerable") => "no",
            Some("mitigated") => "mitigated",
            _ => "unknown",
        }
        .into(),
        disconnected: "not recorded".into(),
        compromised: match s.last_verdict.as_deref() {
            Some("compromised") => "yes",
            Some("attempted") => "attempted",
            Some("no-evidence") => "no",
            Some("inconclusive") => "inconclusive",
            _ => "not scanned",
        }
        .into(),
        evidence_collected: match &s.last_scanned {
            Some(t) => format!("scan of {t}"),
            None => "no".into(),
        },
    }
}

/// One version of the fleet roll-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCount {
    /// Build or version ("unknown" when none was read).
    pub version: String,
    /// Servers.
    pub servers: i64,
    /// Of which exposed (latest observation vulnerable).
    pub exposed: i64,
    /// Of which compromised (dashboard state).
    pub compromised: i64,
}

impl Store {
    /// The status sheet of the caller's organisations (or one of them, `f.org`).
    pub async fn status_sheet(&self, c: &Caller, f: &Filter) -> Result<Vec<SheetRow>> {
        let servers = self.every_server(c, f.org).await?;
        Ok(servers.iter().map(row).collect())
    }

    /// Servers by version across the caller's organisations (or one of them, `f.org`): one
    /// `GROUP BY` over the servers' latest state (migration 8).
    pub async fn version_rollup(&self, c: &Caller, f: &Filter) -> Result<Vec<VersionCount>> {
        let mut q = Q::new(
            "SELECT COALESCE(s.last_build, 'unknown') AS version, COUNT(*) AS servers, \
             SUM(CASE WHEN s.last_state = 'vulnerable' THEN 1 ELSE 0 END) AS exposed, \
             SUM(CASE WHEN s.state = 'compromised' THEN 1 ELSE 0 END) AS compromised \
             FROM servers s WHERE 1 = 1",
        )
        .scoped(c, "s.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND s.org_id = ").arg(o);
        }
        let q = q.sql(" GROUP BY COALESCE(s.last_build, 'unknown')");
        let rows = q.fetch_all(&mut *self.begin(c.org_scope()).await?).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(VersionCount {
                version: get_s(&r, "version")?,
                servers: get_i(&r, "servers")?,
                exposed: get_i(&r, "exposed")?,
                compromised: get_i(&r, "compromised")?,
            });
        }
        // In byte order, as before (not the database's collation).
        out.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(out)
    }
}
