//! Ingest of observations in bulk: one transaction per upload, servers named from memory,
//! rows sent to the database as JSON, state folded in SQL.
//!
//! Per upload: the scope matcher ([`Store::matcher`]: every organisation's, kept between
//! uploads while the scopes do not change, for an operator; the uploader's own for an
//! uploader) assigns the rows; the named servers of the organisations the rows go to are read
//! once, each row's server is found (or made) in memory with the rules of
//! [`Store::server_id`]; the new servers and the observations are written [`BATCH`] rows per
//! statement, each batch one JSON text the database takes apart ([`insert_sql`]). What the
//! upload touched is then brought up to date in the database ([`latest::apply`]: the new rows
//! folded into their servers' latest state and counted into the curve), and the counts by
//! state are recounted once for the organisations the rows went to, instead of by the count
//! triggers per row (SQLite) or per statement (PostgreSQL) ([`latest::pause_counts`]). Each
//! batch's JSON is made on a thread of its own while the database takes the batch before.

use std::collections::{BTreeSet, HashMap};

use super::latest::{self, Touched};
use super::{ObservationUpload, Store, get_i, get_oi, get_s};
use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::ingest::{Observation, Parsed};
use crate::scope::{Assignment, Locator};
use crate::tenancy::{Caller, OrgScope, Role};

/// Rows per `INSERT`: one JSON array of arrays bound to one placeholder, which the database
/// takes apart itself ([`insert_sql`]), instead of 17 placeholders per row (each a value to
/// convert and bind through the driver: most of the time of an upload, measured).
const BATCH: usize = 5000;

/// One observation row as the JSON an `INSERT` of [`insert_sql`] reads: the columns of
/// [`OBSERVATION_COLUMNS`], in order, as an array.
#[derive(serde::Serialize)]
struct Row<'a>(
    Option<i64>,
    Option<i64>,
    &'a str,
    Option<String>,
    Option<i64>,
    Option<&'a str>,
    Option<i64>,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a str,
);

/// The columns a [`Row`] fills, in its order, and their PostgreSQL types.
const OBSERVATION_COLUMNS: [(&str, &str); 17] = [
    ("org_id", "bigint"),
    ("server_id", "bigint"),
    ("source", "text"),
    ("ip", "text"),
    ("port", "bigint"),
    ("host", "text"),
    ("asn", "bigint"),
    ("state", "text"),
    ("decided_by", "text"),
    ("build", "text"),
    ("detail", "text"),
    ("seen", "text"),
    ("uploaded", "text"),
    ("unassigned_reason", "text"),
    ("dedup", "text"),
    ("raw", "text"),
    ("campaigns", "text"),
];

/// Around a placeholder bound to a JSON array (PostgreSQL): its elements as rows `t(e, n)` in
/// the array's order, `e` a `jsonb` value, `n` its position.
const PG_ELEMENTS: (&str, &str) = (
    "jsonb_array_elements((",
    ")::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n",
);

/// The `INSERT` of a batch of [`Row`]s bound as one JSON text, around its placeholder: each
/// element of the array, in order, becomes a row, its members reached by index in binary JSON
/// parsed once per row (text JSON would be parsed again for each of the 17 columns: on SQLite
/// that was a fifth of an upload's time, measured): on SQLite `json_each` and `jsonb()` of each
/// element into a materialized CTE (SQLite 3.46 has no `jsonb_each`; a plain subquery would be
/// flattened into the 17 reads), on PostgreSQL `jsonb_array_elements … WITH ORDINALITY`. A
/// row whose `dedup` is stored already is skipped. SQLite returns the new rows' ids and
/// organisations; PostgreSQL one row: their number `n`, how many are `assigned`, and their ids
/// from `lo` to `hi`.
fn insert_sql(engine: db::Engine) -> (&'static str, &'static str) {
    static SQLITE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let names: Vec<&str> = OBSERVATION_COLUMNS.iter().map(|c| c.0).collect();
    let head = format!("INSERT INTO observations ({}) SELECT ", names.join(", "));
    let tail = " ON CONFLICT (dedup) DO NOTHING RETURNING id, org_id";
    let sql = match engine {
        db::Engine::Sqlite => SQLITE.get_or_init(|| {
            let cols: Vec<String> = (0..names.len()).map(|i| format!("b ->> {i}")).collect();
            (
                "WITH r AS MATERIALIZED (SELECT jsonb(value) AS b FROM json_each(".to_string(),
                format!(")) {head}{} FROM r WHERE true{tail}", cols.join(", ")),
            )
        }),
        db::Engine::Postgres => POSTGRES.get_or_init(|| {
            let cols: Vec<String> = OBSERVATION_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("(e ->> {i})::{ty}"))
                .collect();
            // One row back per batch instead of one per row: the new rows' id range and how
            // many of them are assigned (SQLite cannot put an INSERT in a WITH).
            (
                format!(
                    "WITH i AS ({head}{} FROM {}",
                    cols.join(", "),
                    PG_ELEMENTS.0
                ),
                format!(
                    "{}{tail}) SELECT COUNT(*) AS n, COUNT(org_id) AS assigned, \
                     MIN(id) AS lo, MAX(id) AS hi FROM i",
                    PG_ELEMENTS.1
                ),
            )
        }),
    };
    (sql.0.as_str(), sql.1.as_str())
}

/// One organisation's servers by name, with the look-ups of [`Store::server_id`]: exact name;
/// a host name `ex01.corp.example` joins the server named `ex01`; a short name `ex01` joins the
/// one server whose name's first label it is (none or two: no guess).
#[derive(Debug, Default)]
struct Names {
    exact: HashMap<String, i64>,
    first_label: HashMap<String, Vec<i64>>,
}

impl Names {
    fn add(&mut self, name: &str, id: i64) {
        self.exact.insert(name.to_string(), id);
        if let Some((first, _)) = name.split_once('.') {
            self.first_label
                .entry(first.to_string())
                .or_default()
                .push(id);
        }
    }

    /// The server of `name` (already normalised), if one is found.
    fn find(&self, name: &str) -> Option<i64> {
        if let Some(id) = self.exact.get(name) {
            return Some(*id);
        }
        if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        match name.split_once('.') {
            Some((short, _)) => self.exact.get(short).copied(),
            None => match self.first_label.get(name).map(Vec::as_slice) {
                Some([one]) => Some(*one),
                _ => None,
            },
        }
    }
}

/// A server's stored name.
pub(crate) fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_lowercase()
}

/// The JSON text of one batch for [`insert_sql`]: the `kept` rows ((index in `rows`,
/// organisation, why unassigned)) with their `servers`, uploaded at `uploaded`.
fn batch_json(
    rows: &[Observation],
    kept: &[(usize, Option<i64>, Option<String>)],
    servers: &[Option<i64>],
    uploaded: &str,
) -> Result<String> {
    let keys: Vec<String> = kept
        .iter()
        .map(|(i, org, _)| Store::dedup_key(*org, &rows[*i].sha256))
        .collect();
    let campaigns: Vec<String> = kept
        .iter()
        .map(|(i, _, _)| serde_json::to_string(&rows[*i].campaigns).unwrap_or_else(|_| "{}".into()))
        .collect();
    let batch: Vec<Row<'_>> = kept
        .iter()
        .zip(servers)
        .enumerate()
        .map(|(k, ((i, org, reason), server))| {
            let o = &rows[*i];
            Row(
                *org,
                *server,
                o.source,
                o.ip.map(|i| i.to_string()),
                o.port,
                o.host.as_deref(),
                o.asn.map(i64::from),
                &o.state,
                &o.decided_by,
                o.build.as_deref(),
                &o.detail,
                &o.seen,
                uploaded,
                reason.as_deref(),
                &keys[k],
                &o.raw,
                &campaigns[k],
            )
        })
        .collect();
    serde_json::to_string(&batch).map_err(|e| Error::BadRequest(format!("observations: {e}")))
}

impl Store {
    /// Stores parsed observations. An operator's rows go to the organisation whose scope
    /// matches best, or to the unassigned queue; an uploader's rows are kept only when they
    /// match its own organisation's scope (it cannot put rows into another organisation or the
    /// queue), judged by that scope alone ([`Store::matcher`]: no scope oracle).
    pub async fn store_observations(
        &self,
        c: &Caller,
        parsed: Parsed,
    ) -> Result<ObservationUpload> {
        c.require(Role::Uploader)?;
        let matcher = self.matcher(c.org_scope()).await?;
        let mut out = ObservationUpload {
            rows: parsed.rows.len() as u64 + parsed.ignored,
            ignored: parsed.ignored,
            ..Default::default()
        };
        let uploaded = db::now();
        // Where each row goes: (row's index, organisation, why unassigned).
        let rows = std::sync::Arc::new(parsed.rows);
        let mut kept = Vec::with_capacity(rows.len());
        for (i, o) in rows.iter().enumerate() {
            let loc = Locator {
                ip: o.ip,
                host: o.host.as_deref(),
                asn: o.asn,
            };
            let (org, reason) = match (matcher.assign(&loc), c.org_scope()) {
                (Assignment::Org(org, _), OrgScope::All) => (Some(org), None),
                (Assignment::Unassigned(why), OrgScope::All) => (None, Some(why)),
                (Assignment::Org(org, _), OrgScope::One(mine)) if org == mine => (Some(org), None),
                (_, OrgScope::One(_)) => {
                    out.outside_scope += 1;
                    continue;
                }
            };
            kept.push((i, org, reason));
        }
        let mut tx = self.begin_counted(c.org_scope()).await?;
        // Counted once at the end, for the organisations the rows go to.
        latest::pause_counts(&mut tx, self.engine).await?;
        if self.engine == db::Engine::Postgres {
            // Room in memory for a batch (its JSON taken apart, and the new rows the reference
            // check reads: 5-6 MB each) and for the fold's sorts of the upload's rows: at the
            // default 4 MB each went to a temporary file and back, every batch.
            Q::new("SELECT set_config('work_mem', '32MB', true)")
                .execute(&mut *tx)
                .await?;
        }
        // The named servers of the organisations the rows go to, read once.
        let orgs: Vec<i64> = kept
            .iter()
            .filter_map(|k| k.1)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut names: HashMap<i64, Names> = HashMap::new();
        if !orgs.is_empty() {
            let rows = Q::new("SELECT id, org_id, name FROM servers WHERE org_id")
                .in_ids(self.engine, &orgs)
                .sql(" ORDER BY id")
                .for_engine(self.engine)
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                names
                    .entry(get_i(&r, "org_id")?)
                    .or_default()
                    .add(&get_s(&r, "name")?, get_i(&r, "id")?);
            }
        }
        // Each row's server, in row order (a server made by an earlier row is found by a later
        // one, as when rows were stored one by one); new servers get ids below zero until made.
        let mut fresh: Vec<(i64, String)> = Vec::new();
        let mut server_of: Vec<Option<i64>> = Vec::with_capacity(kept.len());
        for (i, org, _) in &kept {
            let o = &rows[*i];
            let Some(org) = *org else {
                server_of.push(None);
                continue;
            };
            let name = match (&o.host, o.ip) {
                (Some(h), _) => normalise(h),
                (None, Some(ip)) => normalise(&ip.to_string()),
                (None, None) => {
                    server_of.push(None);
                    continue;
                }
            };
            let n = names.entry(org).or_default();
            let id = match n.find(&name) {
                Some(id) => id,
                None => {
                    let id = -(fresh.len() as i64) - 1;
                    n.add(&name, id);
                    fresh.push((org, name));
                    id
                }
            };
            server_of.push(Some(id));
        }
        let made = self.make_servers(&mut tx, &fresh).await?;
        for s in server_of.iter_mut().flatten() {
            if *s < 0 {
                *s = made[(-*s - 1) as usize];
            }
        }
        // The observations, BATCH rows per statement; RETURNING says which were new. Each
        // batch's JSON is made on a thread of its own while the database takes the one before
        // (0.15-0.2 s of a 50,000-row upload, measured, no longer between the statements).
        let mut touched = Touched::default();
        let insert = insert_sql(self.engine);
        let (send, mut batches) = tokio::sync::mpsc::channel::<Result<(String, usize)>>(2);
        let maker = tokio::task::spawn_blocking(move || {
            for (chunk, servers) in kept.chunks(BATCH).zip(server_of.chunks(BATCH)) {
                let json = batch_json(&rows, chunk, servers, &uploaded).map(|j| (j, chunk.len()));
                if send.blocking_send(json).is_err() {
                    return;
                }
            }
        });
        while let Some(batch) = batches.recv().await {
            let (json, sent) = batch?;
            let q = Q::new(insert.0).arg(json).sql(insert.1);
            let inserted = q.for_engine(self.engine).fetch_all(&mut *tx).await?;
            // The new rows (a row whose key is stored, or came earlier, is not returned): each
            // (SQLite), or their count and id range (PostgreSQL).
            let mut new = 0;
            for r in &inserted {
                let (n, assigned, ids) = match self.engine {
                    db::Engine::Sqlite => {
                        let id = get_i(r, "id")?;
                        (1, u64::from(get_oi(r, "org_id")?.is_some()), Some((id, id)))
                    }
                    db::Engine::Postgres => {
                        let n = get_i(r, "n")? as u64;
                        let ids = match (get_oi(r, "lo")?, get_oi(r, "hi")?) {
                            (Some(lo), Some(hi)) => Some((lo, hi)),
                            _ => None,
                        };
                        (n, get_i(r, "assigned")? as u64, ids)
                    }
                };
                new += n;
                out.assigned += assigned;
                out.unassigned += n - assigned;
                if let Some((lo, hi)) = ids {
                    touched.added_observation(lo);
                    touched.added_observation(hi);
                }
            }
            out.duplicates += sent as u64 - new;
        }
        // Every batch was made (a failed maker closes the channel early).
        maker.await.map_err(|_| {
            Error::Db(sqlx::Error::Protocol(
                "observations: the thread making the batches stopped".into(),
            ))
        })?;
        latest::apply(&mut tx, self.engine, c.org_scope(), &touched).await?;
        latest::resume_counts(&mut tx, self.engine, c.org_scope(), &orgs).await?;
        let owner = match c.org_scope() {
            OrgScope::One(o) => Some(o),
            OrgScope::All => None,
        };
        self.audit(
            &mut *tx,
            Some(c),
            owner,
            "observations.upload",
            format!(
                "{} rows: {} assigned, {} unassigned, {} duplicates, {} outside scope",
                out.rows, out.assigned, out.unassigned, out.duplicates, out.outside_scope
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Makes the servers `fresh` ((organisation, normalised name), none stored when read) and
    /// returns their ids in that order. One made meanwhile by a concurrent upload (PostgreSQL)
    /// is found instead of made twice.
    async fn make_servers(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        fresh: &[(i64, String)],
    ) -> Result<Vec<i64>> {
        let mut ids: HashMap<(i64, &str), i64> = HashMap::with_capacity(fresh.len());
        let created = db::now();
        for chunk in fresh.chunks(BATCH) {
            // A new server has no scans nor observations: its latest state (none) is computed.
            // The batch goes as one JSON text of [organisation, name] pairs (see insert_sql).
            let json = serde_json::to_string(chunk)
                .map_err(|e| Error::BadRequest(format!("servers: {e}")))?;
            let (select, from) = match self.engine {
                db::Engine::Sqlite => ("value ->> 0, value ->> 1", "json_each("),
                db::Engine::Postgres => ("(e ->> 0)::bigint, e ->> 1", PG_ELEMENTS.0),
            };
            let q = Q::new(&format!(
                "INSERT INTO servers (org_id, name, created, latest_v) SELECT {select}, "
            ))
            .arg(created.as_str())
            .sql(&format!(", 1 FROM {from}"))
            .arg(json)
            .sql(match self.engine {
                db::Engine::Sqlite => ") WHERE true",
                db::Engine::Postgres => PG_ELEMENTS.1,
            });
            let rows = q
                .sql(" ON CONFLICT (org_id, name) DO NOTHING RETURNING id, org_id, name")
                .for_engine(self.engine)
                .fetch_all(&mut **tx)
                .await?;
            let mut got: HashMap<(i64, String), i64> = HashMap::new();
            for r in rows {
                got.insert((get_i(&r, "org_id")?, get_s(&r, "name")?), get_i(&r, "id")?);
            }
            for (org, name) in chunk {
                let id = match got.get(&(*org, name.clone())) {
                    Some(id) => *id,
                    None => {
                        let r = Q::new("SELECT id FROM servers WHERE org_id = ")
                            .arg(*org)
                            .sql(" AND name = ")
                            .arg(name.as_str())
                            .fetch_optional(&mut **tx)
                            .await?
                            .ok_or(Error::NotFound("server"))?;
                        get_i(&r, "id")?
                    }
                };
                ids.insert((*org, name.as_str()), id);
            }
        }
        Ok(fresh
            .iter()
            .map(|(o, n)| ids.get(&(*o, n.as_str())).copied().unwrap_or(0))
            .collect())
    }
}
