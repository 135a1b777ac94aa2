//! The dashboard's tables at scale: counts from `org_stats`, and pages of organisations and
//! servers filtered and sorted in SQL (migration 8). Every query is narrowed by the caller in
//! [`Q::scoped`] (or [`Q::scoped_counts`] for the count tables); the work is bounded by the
//! page asked for, not by the fleet, except where a filter on a name has to look at every name.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{CAMPAIGNS, SERVER_COLS, STATES, Server, Store, get_i, get_s, server_from};
use crate::db::Q;
use crate::error::{Error, Result};
use crate::tenancy::{Caller, OrgScope};

/// Rows of a dashboard table per page.
pub const PAGE_ROWS: i64 = 50;

/// Rows of one export at most.
pub const EXPORT_ROWS: i64 = 100_000;

/// Servers by state: overall, and per campaign of [`CAMPAIGNS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Organisations (the fleet's count for an operator; 1 for an organisation).
    pub orgs: i64,
    /// Servers.
    pub servers: i64,
    /// Per state of [`STATES`], in that order.
    pub states: Vec<i64>,
    /// Per campaign of [`CAMPAIGNS`], per state of [`STATES`].
    pub campaigns: Vec<Vec<i64>>,
}

/// One organisation's row of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Servers.
    pub servers: i64,
    /// Servers per state of [`STATES`] (CSV: one column each).
    #[serde(flatten)]
    pub states: std::collections::BTreeMap<String, i64>,
}

/// What a table shows: a filter, a sort, a page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TableQuery {
    /// Name contains (case-insensitive).
    pub q: Option<String>,
    /// A state of [`STATES`]: organisations with a server in it, servers in it.
    pub state: Option<String>,
    /// Column to sort by (each table names its own).
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// Page, from 1.
    pub page: Option<i64>,
    /// `csv` or `json`: the whole filtered table as a file.
    pub format: Option<String>,
}

impl TableQuery {
    /// The state filter, checked.
    pub fn state(&self) -> Result<Option<&'static str>> {
        match self.state.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => STATES
                .iter()
                .find(|x| **x == s)
                .map(|x| Some(*x))
                .ok_or_else(|| {
                    Error::BadRequest(format!("state {s:?}: one of {}", STATES.join(", ")))
                }),
        }
    }

    /// The name filter as a `LIKE` pattern (lower case; `%`, `_` and `\` escaped).
    pub fn like(&self) -> Option<String> {
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())?;
        let mut p = String::from("%");
        for ch in q.to_lowercase().chars().take(200) {
            if matches!(ch, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(ch);
        }
        p.push('%');
        Some(p)
    }

    /// Descending?
    pub fn desc(&self, default: bool) -> bool {
        match self.dir.as_deref() {
            Some("asc") => false,
            Some("desc") => true,
            _ => default,
        }
    }

    /// `(LIMIT, OFFSET)` of the page, or of the export.
    pub fn window(&self) -> (i64, i64) {
        if self.format.is_some() {
            return (EXPORT_ROWS, 0);
        }
        let page = self.page.unwrap_or(1).clamp(1, 1_000_000);
        (PAGE_ROWS, (page - 1) * PAGE_ROWS)
    }
}

fn counts_from(r: &AnyRow) -> Result<Counts> {
    let states = STATES
        .iter()
        .map(|s| get_i(r, &format!("s_{s}")))
        .collect::<Result<Vec<_>>>()?;
    let mut campaigns = Vec::new();
    for p in ["pl", "ps", "pns", "post"] {
        campaigns.push(
            STATES
                .iter()
                .map(|s| get_i(r, &format!("{p}_{s}")))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    Ok(Counts {
        orgs: get_i(r, "orgs")?,
        servers: get_i(r, "servers")?,
        states,
        campaigns,
    })
}

fn state_columns() -> String {
    let mut cols = vec!["servers".to_string(), "orgs".to_string()];
    cols.extend(super::latest::state_counts().into_iter().map(|(c, _, _)| c));
    cols.join(", ")
}

impl Store {
    /// On PostgreSQL, a page's query reads its rows in an index's order and stops at the page:
    /// the planner, which cannot estimate the row-level security filter (it guesses that 1.5 %
    /// of the rows pass), would otherwise read and sort every organisation. For this
    /// transaction only.
    async fn index_order(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<()> {
        if self.engine() == crate::db::Engine::Postgres {
            // Both in one round trip (SET LOCAL, for the transaction).
            Q::new(
                "SELECT set_config('enable_seqscan', 'off', true), \
                 set_config('enable_sort', 'off', true)",
            )
            .fetch_optional(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Servers by state of the caller's organisations (an operator: the fleet), or of one of
    /// them: one row of `org_stats`.
    pub async fn counts(&self, c: &Caller, org: Option<i64>) -> Result<Counts> {
        let q = Q::new(&format!(
            "SELECT {} FROM org_stats st WHERE 1 = 1",
            state_columns()
        ))
        .scoped_counts(c, "st.org_id", org);
        let row = q
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?;
        let mut counts = match row {
            Some(r) => counts_from(&r)?,
            None => Counts {
                states: vec![0; STATES.len()],
                campaigns: vec![vec![0; STATES.len()]; CAMPAIGNS.len()],
                ..Counts::default()
            },
        };
        if matches!(c.org_scope(), OrgScope::One(_)) || org.is_some() {
            counts.orgs = 1;
        }
        Ok(counts)
    }

    /// A page of the organisations the caller may see, with their servers by state, filtered
    /// and sorted (`sort`: name, servers, compromised, exposed; default name), and how many
    /// match in all.
    pub async fn org_page(&self, c: &Caller, t: &TableQuery) -> Result<(i64, Vec<OrgRow>)> {
        let state = t.state()?;
        let like = t.like();
        let filter = |q: Q| -> Q {
            let mut q = q.scoped(c, "o.id");
            if let Some(p) = &like {
                q = q
                    .sql(" AND lower(o.name) LIKE ")
                    .arg(p.clone())
                    .sql(" ESCAPE '\\'");
            }
            if let Some(s) = state {
                q = q.sql(&format!(" AND st.s_{s} > 0"));
            }
            q
        };
        let all = if like.is_none() && state.is_none() {
            Some(self.counts(c, None).await?.orgs)
        } else {
            None
        };
        let mut tx = self.begin(c.org_scope()).await?;
        let total = if let Some(n) = all {
            n
        } else {
            let r = filter(Q::new(
                "SELECT COUNT(*) AS n FROM orgs o JOIN org_stats st ON st.org_id = o.id WHERE 1 = 1",
            ))
            .fetch_optional(&mut *tx)
            .await?;
            r.map(|r| get_i(&r, "n")).transpose()?.unwrap_or(0)
        };
        // Each order is an index's (names are unique; counts tie-break on the id in their index).
        let (col, tie, default_desc) = match t.sort.as_deref() {
            Some("servers") => ("st.servers", Some("st.org_id"), true),
            Some("compromised") => ("st.s_compromised", Some("st.org_id"), true),
            Some("exposed") => ("st.s_exposed", Some("st.org_id"), true),
            Some("id") => ("o.id", None, false),
            _ => ("o.name", None, false),
        };
        let dir = if t.desc(default_desc) { "DESC" } else { "ASC" };
        let order = match tie {
            Some(t) => format!("{col} {dir}, {t} {dir}"),
            None => format!("{col} {dir}"),
        };
        self.index_order(&mut tx).await?;
        let (limit, offset) = t.window();
        let sql = format!(
            "SELECT o.id, o.name, st.servers, {} FROM orgs o JOIN org_stats st ON st.org_id = o.id WHERE 1 = 1",
            STATES
                .iter()
                .map(|s| format!("st.s_{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let q = filter(Q::new(&sql))
            .sql(&format!(" ORDER BY {order} LIMIT "))
            .arg(limit)
            .sql(" OFFSET ")
            .arg(offset);
        let mut out = Vec::new();
        for r in q.fetch_all(&mut *tx).await? {
            let mut states = std::collections::BTreeMap::new();
            for s in STATES {
                states.insert(s.to_string(), get_i(&r, &format!("s_{s}"))?);
            }
            out.push(OrgRow {
                id: get_i(&r, "id")?,
                name: get_s(&r, "name")?,
                servers: get_i(&r, "servers")?,
                states,
            });
        }
        Ok((total, out))
    }

    /// A page of one organisation's servers, filtered and sorted (`sort`: name, state,
    /// scanned, observed; default name), and how many match in all. Unfiltered, that is the
    /// organisation's count of servers: taken from `counted` (its [`Store::counts`], when the
    /// caller has read them already, as the organisation page has) or read.
    pub async fn server_page(
        &self,
        c: &Caller,
        org: i64,
        t: &TableQuery,
        counted: Option<&Counts>,
    ) -> Result<(i64, Vec<Server>)> {
        let state = t.state()?;
        let like = t.like();
        let filter = |q: Q| -> Q {
            let mut q = q.scoped(c, "s.org_id").sql(" AND s.org_id = ").arg(org);
            if let Some(p) = &like {
                q = q
                    .sql(" AND s.name LIKE ")
                    .arg(p.clone())
                    .sql(" ESCAPE '\\'");
            }
            if let Some(s) = state {
                q = q.sql(" AND s.state = ").arg(s);
            }
            q
        };
        let all = match (like.is_none() && state.is_none(), counted) {
            (true, Some(k)) => Some(k.servers),
            (true, None) => Some(self.counts(c, Some(org)).await?.servers),
            (false, _) => None,
        };
        let mut tx = self.begin(c.org_scope()).await?;
        let total = match all {
            Some(n) => n,
            None => {
                let r = filter(Q::new("SELECT COUNT(*) AS n FROM servers s WHERE 1 = 1"))
                    .fetch_optional(&mut *tx)
                    .await?;
                r.map(|r| get_i(&r, "n")).transpose()?.unwrap_or(0)
            }
        };
        let (col, default_desc) = match t.sort.as_deref() {
            Some("state") => ("s.state", false),
            Some("scanned") => ("s.last_scanned", true),
            Some("observed") => ("s.last_observed", true),
            Some("id") => ("s.id", false),
            _ => ("s.name", false),
        };
        let dir = if t.desc(default_desc) { "DESC" } else { "ASC" };
        let (limit, offset) = t.window();
        // NULLs (never scanned, never observed) last either way, as both engines agree; names
        // are unique within an organisation (the order of its index).
        let order = match col {
            "s.name" => format!("s.name {dir}"),
            "s.id" => format!("s.id {dir}"),
            _ => format!("CASE WHEN {col} IS NULL THEN 1 ELSE 0 END, {col} {dir}, s.id {dir}"),
        };
        self.index_order(&mut tx).await?;
        let q = filter(Q::new(SERVER_COLS))
            .sql(&format!(" ORDER BY {order} LIMIT "))
            .arg(limit)
            .sql(" OFFSET ")
            .arg(offset);
        let rows = q.fetch_all(&mut *tx).await?;
        Ok((total, rows.iter().map(server_from).collect::<Result<_>>()?))
    }
}

impl Store {
    /// A page of one server's scan records (newest first unless `dir=asc`), `q` narrowing the
    /// verdict, and how many match.
    pub async fn result_page(
        &self,
        c: &Caller,
        server: i64,
        t: &TableQuery,
    ) -> Result<(i64, Vec<super::ScanRecord>)> {
        let like = t.like();
        let filter = |q: Q| -> Q {
            let mut q = q
                .scoped(c, "r.org_id")
                .sql(" AND r.server_id = ")
                .arg(server);
            if let Some(p) = &like {
                q = q
                    .sql(" AND r.verdict LIKE ")
                    .arg(p.clone())
                    .sql(" ESCAPE '\\'");
            }
            q
        };
        let mut tx = self.begin(c.org_scope()).await?;
        let r = filter(Q::new(
            "SELECT COUNT(*) AS n FROM scan_results r WHERE 1 = 1",
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let total = r.map(|r| get_i(&r, "n")).transpose()?.unwrap_or(0);
        let dir = if t.desc(true) { "DESC" } else { "ASC" };
        let (limit, offset) = t.window();
        let q = filter(Q::new(super::RESULT_COLS))
            .sql(&format!(" ORDER BY r.finished {dir}, r.id {dir} LIMIT "))
            .arg(limit)
            .sql(" OFFSET ")
            .arg(offset);
        let rows = q.fetch_all(&mut *tx).await?;
        Ok((
            total,
            rows.iter().map(super::result_from).collect::<Result<_>>()?,
        ))
    }

    /// A page of one server's observations (newest first unless `dir=asc`), `q` narrowing
    /// state, source or detail, and how many match.
    pub async fn observation_page(
        &self,
        c: &Caller,
        server: i64,
        t: &TableQuery,
    ) -> Result<(i64, Vec<super::ObservationRecord>)> {
        let like = t.like();
        let filter = |q: Q| -> Q {
            let mut q = q
                .scoped(c, "o.org_id")
                .sql(" AND o.server_id = ")
                .arg(server);
            if let Some(p) = &like {
                q = q
                    .sql(" AND lower(o.state || ' ' || o.source || ' ' || o.detail) LIKE ")
                    .arg(p.clone())
                    .sql(" ESCAPE '\\'");
            }
            q
        };
        let mut tx = self.begin(c.org_scope()).await?;
        let r = filter(Q::new(
            "SELECT COUNT(*) AS n FROM observations o WHERE 1 = 1",
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let total = r.map(|r| get_i(&r, "n")).transpose()?.unwrap_or(0);
        let dir = if t.desc(true) { "DESC" } else { "ASC" };
        let (limit, offset) = t.window();
        let q = filter(Q::new(super::OBS_COLS))
            .sql(&format!(" ORDER BY o.seen {dir}, o.id {dir} LIMIT "))
            .arg(limit)
            .sql(" OFFSET ")
            .arg(offset);
        let rows = q.fetch_all(&mut *tx).await?;
        Ok((
            total,
            rows.iter().map(super::obs_from).collect::<Result<_>>()?,
        ))
    }
}
