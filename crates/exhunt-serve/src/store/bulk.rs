//! Ingest of observations in bulk: one transaction per upload, servers named from memory,
//! rows sent to the database as JSON, state folded in SQL.
//!
//! Per upload: the scope matcher ([`Store::matcher`]: every organisation's, kept between
//! uploads while the scopes do not change, for an operator; the uploader's own for an
//! uploader) assigns the rows. The rows are read and assigned in chunks of [`BATCH`] on a
//! thread of their own while the database writes the chunks before ([`Store::store_upload`]);
//! the first chunk is read before the transaction begins. Per chunk, the named servers of the
//! organisations met for the first time are read, each row's server is found (or made) in
//! memory with the rules of [`Store::server_id`], the new servers are written in one statement,
//! and the observations in one more: one JSON text the database takes apart ([`insert_sql`]),
//! made on a thread while the database writes the chunk before. What the upload touched is
//! then brought up to date in the database ([`latest::apply`]: the new rows folded into their
//! servers' latest state and counted into the curve), and the counts by state are brought up
//! to date once per organisation, instead of by the count triggers per row (SQLite) or per
//! statement (PostgreSQL) ([`latest::pause_counts`]): on SQLite every organisation the rows
//! went to is recounted; on PostgreSQL those that got new servers are recounted, and those
//! whose servers' states the fold moved are moved by as much as it tells (its states before
//! and after, per server: the work follows the servers the upload moved, not the size of
//! their organisations). A bad line
//! anywhere, or a failure of any step, ends the transaction: nothing of the upload is stored
//! (a bad line late in a large upload is found after the chunks before it were written, under
//! the upload's locks, then rolled back).

use std::collections::{BTreeSet, HashMap};

use super::latest::{self, Touched};
use super::{ObservationUpload, Store, get_i, get_oi, get_s};
use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::ingest::{self, ChunkedParse, Observation, Parsed};
use crate::scope::{Assignment, Locator, Matcher};
use crate::tenancy::{Caller, OrgScope, Role};

/// Rows per `INSERT`: one JSON array of arrays bound to one placeholder, which the database
/// takes apart itself ([`insert_sql`]), instead of 17 placeholders per row (each a value to
/// convert and bind through the driver: most of the time of an upload, measured).
const BATCH: usize = 5000;

/// One observation row as the JSON an `INSERT` of [`insert_sql`] reads: the columns of
/// [`OBSERVATION_COLUMNS`], in order, as an array, then the raw line's length in bytes. `R`
/// is the raw line itself (SQLite), or on PostgreSQL its byte offset into the batch's raw
/// lines, bound apart as one `bytea`: the raw lines are most of a batch's bytes, and as JSON
/// strings they were most of its parsing (measured: 5.7 MB parsed in 57-78 ms, 20 ms without
/// them). SQLite reads the first 17 members only.
#[derive(serde::Serialize)]
struct Row<'a, R>(
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
    R,
    &'a str,
    usize,
);

/// What a [`Row`] is made of besides the upload's time and the raw line: the observation, its
/// organisation and server, why it is unassigned, its key and its campaigns as JSON.
type Parts<'a> = (
    &'a Observation,
    Option<i64>,
    Option<i64>,
    Option<&'a str>,
    &'a str,
    &'a str,
);

/// A [`Row`] of `parts`, its raw line given as `raw`.
fn row<'a, R>(parts: Parts<'a>, uploaded: &'a str, raw: R) -> Row<'a, R> {
    let (o, org, server, reason, key, campaigns) = parts;
    Row(
        org,
        server,
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
        reason,
        key,
        raw,
        campaigns,
        o.raw.len(),
    )
}

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
/// flattened into the 17 reads), on PostgreSQL `jsonb_array_elements … WITH ORDINALITY`,
/// each row's raw line cut from the batch's `bytea`, bound second (`$2`, [`Q::bind`]). A
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
                .map(|(i, (name, ty))| match *name {
                    // The raw line: its bytes in the batch's `bytea` ($2, see Row).
                    "raw" => format!(
                        "convert_from(substring($2 FROM (e ->> {i})::int + 1 FOR (e ->> {})::int), 'UTF8')",
                        OBSERVATION_COLUMNS.len()
                    ),
                    _ => format!("(e ->> {i})::{ty}"),
                })
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

/// One batch for [`insert_sql`]: the `kept` rows ((index in `rows`, organisation, why
/// unassigned)) with their `servers`, uploaded at `uploaded`, as JSON (and, on PostgreSQL,
/// their raw lines apart: [`Row`]).
fn batch_json(
    engine: db::Engine,
    rows: &[Observation],
    kept: &[(usize, Option<i64>, Option<String>)],
    servers: &[Option<i64>],
    uploaded: &str,
) -> Result<Batch> {
    let keys: Vec<String> = kept
        .iter()
        .map(|(i, org, _)| Store::dedup_key(*org, &rows[*i].sha256))
        .collect();
    let campaigns: Vec<String> = kept
        .iter()
        .map(|(i, _, _)| serde_json::to_string(&rows[*i].campaigns).unwrap_or_else(|_| "{}".into()))
        .collect();
    let bad = |e: serde_json::Error| Error::BadRequest(format!("observations: {e}"));
    let sent = kept.len();
    let rows_of = kept
        .iter()
        .zip(servers)
        .enumerate()
        .map(|(k, ((i, org, reason), server))| {
            (
                &rows[*i],
                *org,
                *server,
                reason.as_deref(),
                keys[k].as_str(),
                campaigns[k].as_str(),
            )
        });
    if engine == db::Engine::Postgres {
        let mut raws = Vec::new();
        let mut batch = Vec::with_capacity(sent);
        for parts in rows_of {
            batch.push(row(parts, uploaded, raws.len()));
            raws.extend_from_slice(parts.0.raw.as_bytes());
        }
        // Offsets are PostgreSQL integers (substring's).
        if raws.len() > i32::MAX as usize {
            return Err(Error::BadRequest(
                "observations: a batch's raw lines exceed 2 GiB".into(),
            ));
        }
        let json = serde_json::to_string(&batch).map_err(bad)?;
        return Ok(Batch {
            json,
            raws: Some(raws),
            sent,
        });
    }
    let batch: Vec<Row<'_, &str>> = rows_of
        .map(|parts| row(parts, uploaded, parts.0.raw.as_str()))
        .collect();
    let json = serde_json::to_string(&batch).map_err(bad)?;
    Ok(Batch {
        json,
        raws: None,
        sent,
    })
}

/// A batch ready for [`insert_sql`]: its JSON, PostgreSQL's raw lines, and its row count.
struct Batch {
    json: String,
    raws: Option<Vec<u8>>,
    sent: usize,
}

/// The name a row's server goes by: its host name, else its address (none: neither).
fn server_name(o: &Observation) -> Option<String> {
    match (&o.host, o.ip) {
        (Some(h), _) => Some(normalise(h)),
        (None, Some(ip)) => Some(normalise(&ip.to_string())),
        (None, None) => None,
    }
}

/// A thread of the upload that stopped (a panic): a server error, and nothing is stored.
fn stopped(what: &str) -> Error {
    Error::Db(sqlx::Error::Protocol(format!(
        "observations: the thread {what} stopped"
    )))
}

/// One chunk of an upload's rows as read and assigned: the rows, and the kept ones (index
/// into `rows`, organisation — none: the unassigned queue —, why unassigned).
struct Chunk {
    rows: Vec<Observation>,
    kept: Vec<(usize, Option<i64>, Option<String>)>,
    /// Rows read (ignored ones included).
    read: u64,
    ignored: u64,
    outside_scope: u64,
}

/// Assigns a parsed chunk's rows to organisations by `matcher`, for a caller of `scope`: an
/// operator's rows go to the best match or the unassigned queue, an uploader's only to its own
/// organisation (the others are counted outside its scope).
fn assign(matcher: &Matcher, scope: OrgScope, parsed: Parsed) -> Chunk {
    let mut chunk = Chunk {
        read: parsed.rows.len() as u64 + parsed.ignored,
        ignored: parsed.ignored,
        kept: Vec::with_capacity(parsed.rows.len()),
        rows: parsed.rows,
        outside_scope: 0,
    };
    for (i, o) in chunk.rows.iter().enumerate() {
        let loc = Locator {
            ip: o.ip,
            host: o.host.as_deref(),
            asn: o.asn,
        };
        let (org, reason) = match (matcher.assign(&loc), scope) {
            (Assignment::Org(org, _), OrgScope::All) => (Some(org), None),
            (Assignment::Unassigned(why), OrgScope::All) => (None, Some(why)),
            (Assignment::Org(org, _), OrgScope::One(mine)) if org == mine => (Some(org), None),
            (_, OrgScope::One(_)) => {
                chunk.outside_scope += 1;
                continue;
            }
        };
        chunk.kept.push((i, org, reason));
    }
    chunk
}

/// What an upload has written so far: its counts, the servers named by organisation (each
/// organisation's read once, when its first row comes), what it touched.
#[derive(Default)]
struct Progress {
    out: ObservationUpload,
    names: HashMap<i64, Names>,
    /// The organisations met (their named servers read, or being read).
    met: BTreeSet<i64>,
    /// The servers made, in order (see [`Store::servers_of`]).
    made: Vec<i64>,
    /// The organisations servers were made in.
    made_in: BTreeSet<i64>,
    touched: Touched,
}

impl Progress {
    /// The organisations of `chunk`'s rows met for the first time (now met).
    fn meet(&mut self, chunk: &Chunk) -> Vec<i64> {
        let mut new = Vec::new();
        for o in chunk.kept.iter().filter_map(|k| k.1) {
            if self.met.insert(o) {
                new.push(o);
            }
        }
        new
    }

    /// Takes the named servers `named` of `orgs` (met, and read) into `names`.
    fn learn(&mut self, orgs: &[i64], named: Vec<(i64, String, i64)>) {
        for o in orgs {
            self.names.entry(*o).or_default();
        }
        for (org, name, id) in named {
            self.names.entry(org).or_default().add(&name, id);
        }
    }
}

/// The named servers (organisation, name, id) of `orgs`, read by `ex`.
async fn read_names<'e, E>(
    engine: db::Engine,
    ex: E,
    orgs: &[i64],
) -> Result<Vec<(i64, String, i64)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Q::new("SELECT id, org_id, name FROM servers WHERE org_id")
        .in_ids(engine, orgs)
        .sql(" ORDER BY id")
        .for_engine(engine)
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|r| Ok((get_i(r, "org_id")?, get_s(r, "name")?, get_i(r, "id")?)))
        .collect()
}

impl Store {
    /// Stores parsed observations. An operator's rows go to the organisation whose scope
    /// matches best, or to the unassigned queue; an uploader's rows are kept only when they
    /// match its own organisation's scope (it cannot put rows into another organisation or the
    /// queue), judged by that scope alone (`Store::matcher`: no scope oracle).
    pub async fn store_observations(
        &self,
        c: &Caller,
        parsed: Parsed,
    ) -> Result<ObservationUpload> {
        self.store_chunks(c, move |each| ingest::in_chunks(parsed, BATCH, each))
            .await
    }

    /// Parses an upload with `parse` and stores its observations as
    /// [`store_observations`](Self::store_observations) does, a chunk being written while the
    /// next is read: JSON Lines of 50,000 rows no longer wait for their last line to be read
    /// before the first row goes to the database (a whole document, a CSV report or an array
    /// of events is read whole first). Still one transaction: a bad line anywhere stores
    /// nothing.
    pub async fn store_upload<B>(
        &self,
        c: &Caller,
        body: B,
        parse: ChunkedParse,
    ) -> Result<ObservationUpload>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        self.store_chunks(c, move |each| parse(body.as_ref(), BATCH, each))
            .await
    }

    /// The upload: `read` hands the parsed rows over in chunks on a thread of its own, where
    /// they are also assigned; each chunk's servers are then found or made, its JSON made on a
    /// thread while the database writes the chunk before, and written as one batch.
    async fn store_chunks<R>(&self, c: &Caller, read: R) -> Result<ObservationUpload>
    where
        R: FnOnce(&mut dyn FnMut(Parsed) -> bool) -> Result<()> + Send + 'static,
    {
        c.require(Role::Uploader)?;
        let scope = c.org_scope();
        let matcher = self.matcher(scope).await?;
        let (send, mut chunks) = tokio::sync::mpsc::channel::<Result<Chunk>>(2);
        let reader = tokio::task::spawn_blocking(move || {
            let sent = read(&mut |p| send.blocking_send(Ok(assign(&matcher, scope, p))).is_ok());
            if let Err(e) = sent {
                // Nobody to tell when the upload has already failed.
                let _ = send.blocking_send(Err(e));
            }
        });
        // The first chunk is read before the transaction (and the counts lock) is taken: a
        // document that is bad from its first line never touches the database.
        let mut next = chunks.recv().await.transpose()?;
        let uploaded = db::now();
        let mut tx = self.begin_counted(scope).await?;
        // The count triggers stand still; the organisations are recounted once at the end.
        latest::pause_counts(&mut tx, self.engine).await?;
        if self.engine == db::Engine::Postgres {
            // Room in memory for a batch (its JSON taken apart, and the new rows the reference
            // check reads: 5-6 MB each) and for the fold's sorts of the upload's rows: at the
            // default 4 MB each went to a temporary file and back, every batch.
            Q::new("SELECT set_config('work_mem', '32MB', true)")
                .execute(&mut *tx)
                .await?;
        }
        let mut p = Progress::default();
        let mut writing: Option<tokio::task::JoinHandle<Result<Batch>>> = None;
        // The named servers of the organisations a chunk meets first: for the first chunk read
        // in the transaction; for each next one while an earlier chunk is written (beside the
        // transaction on PostgreSQL, see `write_and_name`).
        let mut orgs = next.as_ref().map(|c| p.meet(c)).unwrap_or_default();
        let mut named = self.read_names(&mut tx, &orgs).await?;
        while let Some(chunk) = next {
            p.out.rows += chunk.read;
            p.out.ignored += chunk.ignored;
            p.out.outside_scope += chunk.outside_scope;
            p.learn(&orgs, named);
            let mut json = None;
            if !chunk.kept.is_empty() {
                let servers = self
                    .servers_of(&mut tx, &chunk, &mut p.names, &mut p.made, &mut p.made_in)
                    .await?;
                let at = uploaded.clone();
                let engine = self.engine;
                json = Some(tokio::task::spawn_blocking(move || {
                    batch_json(engine, &chunk.rows, &chunk.kept, &servers, &at)
                }));
            }
            next = chunks.recv().await.transpose()?;
            orgs = next.as_ref().map(|c| p.meet(c)).unwrap_or_default();
            let before = json.and_then(|j| writing.replace(j));
            named = self
                .write_and_name(&mut tx, before, &mut p, scope, &orgs)
                .await?;
        }
        if let Some(last) = writing {
            self.insert_batch(&mut tx, last, &mut p).await?;
        }
        // The reading thread ended without an error told: it handed every chunk over, unless
        // it stopped (a panic), and then nothing is stored.
        reader.await.map_err(|_| stopped("reading the upload"))?;
        // The organisations whose servers' states the upload moved are moved by as much as
        // the fold tells (PostgreSQL); those it made servers in are recounted; else (SQLite, or
        // a server recomputed from its history) all it met are recounted.
        let moved = latest::apply(&mut tx, self.engine, scope, &p.touched).await?;
        let (orgs, moves): (Vec<i64>, latest::Moves) = match moved {
            Some(mut m) => {
                m.retain(|o, _| !p.made_in.contains(o));
                (p.made_in.iter().copied().collect(), m)
            }
            None => (p.met.iter().copied().collect(), latest::Moves::new()),
        };
        latest::resume_counts(&mut tx, self.engine, scope, &orgs, &moves).await?;
        let owner = match scope {
            OrgScope::One(o) => Some(o),
            OrgScope::All => None,
        };
        let out = p.out;
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

    /// The server of each kept row of `chunk` (none: unassigned, or no name), found among the
    /// named servers of its organisation (in `names`) or made with the rules of
    /// [`Store::server_id`].
    async fn servers_of(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        chunk: &Chunk,
        names: &mut HashMap<i64, Names>,
        made: &mut Vec<i64>,
        made_in: &mut BTreeSet<i64>,
    ) -> Result<Vec<Option<i64>>> {
        // Each row's server, in row order (a server made by an earlier row is found by a later
        // one, as when rows were stored one by one); a new server goes by a number below zero,
        // -1 - its place in `made` (the servers the upload made, in order), in `names` too.
        let mut fresh: Vec<(i64, String)> = Vec::new();
        let mut server_of: Vec<Option<i64>> = Vec::with_capacity(chunk.kept.len());
        for (i, org, _) in &chunk.kept {
            let o = &chunk.rows[*i];
            let (Some(org), Some(name)) = (*org, server_name(o)) else {
                server_of.push(None);
                continue;
            };
            let n = names.entry(org).or_default();
            let id = match n.find(&name) {
                Some(id) => id,
                None => {
                    let id = -((made.len() + fresh.len()) as i64) - 1;
                    n.add(&name, id);
                    fresh.push((org, name));
                    id
                }
            };
            server_of.push(Some(id));
        }
        made_in.extend(fresh.iter().map(|f| f.0));
        made.extend(self.make_servers(tx, &fresh).await?);
        for s in server_of.iter_mut().flatten() {
            if *s < 0 {
                *s = made[(-*s - 1) as usize];
            }
        }
        Ok(server_of)
    }

    /// The named servers (organisation, name, id) of `orgs`, read in `tx`.
    async fn read_names(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        orgs: &[i64],
    ) -> Result<Vec<(i64, String, i64)>> {
        read_names(self.engine, &mut **tx, orgs).await
    }

    /// Writes the batch `before` (if any: the chunk before the one just resolved), and reads
    /// the named servers of `orgs` (met first by the next chunk): on PostgreSQL at the same
    /// time, on a connection of its own (`side`), in a transaction of the caller's `scope`
    /// (when that read fails, in the upload's transaction afterwards). What it reads is what the upload's transaction would: every
    /// writer of servers takes the counts lock this upload holds (migration 12), so none
    /// commits meanwhile, and the upload has not touched these organisations' servers yet (it
    /// meets them now). On SQLite one after the other, in the transaction.
    async fn write_and_name(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        before: Option<tokio::task::JoinHandle<Result<Batch>>>,
        p: &mut Progress,
        scope: OrgScope,
        orgs: &[i64],
    ) -> Result<Vec<(i64, String, i64)>> {
        match &self.side {
            Some(side) if !orgs.is_empty() => {
                let write = async {
                    match before {
                        Some(b) => self.insert_batch(tx, b, p).await,
                        None => Ok(()),
                    }
                };
                let read = async {
                    let beside = async {
                        let mut t = side.begin_with(super::scoped_begin(scope)).await?;
                        // A lock asked for by someone else after this upload's (DDL on
                        // servers, waiting for the upload to end) would hold this read, and
                        // the upload waits for it outside the database, where no deadlock is
                        // seen: the read gives up after a while instead.
                        Q::new("SELECT set_config('lock_timeout', '2s', true)")
                            .execute(&mut *t)
                            .await?;
                        let named = read_names(self.engine, &mut *t, orgs).await?;
                        // Ended here, not when dropped: the connection does not wait idle in
                        // a transaction (holding its table locks) until the next upload.
                        t.rollback().await?;
                        Ok::<_, Error>(named)
                    };
                    Ok::<_, Error>(beside.await.map_err(|e| {
                        tracing::warn!("reading servers beside an upload: {e}; read in it");
                    }))
                };
                let ((), named) = tokio::try_join!(write, read)?;
                // The read beside failed (no connection, a lock): read in the transaction.
                match named {
                    Ok(named) => Ok(named),
                    Err(()) => self.read_names(tx, orgs).await,
                }
            }
            _ => {
                if let Some(b) = before {
                    self.insert_batch(tx, b, p).await?;
                }
                self.read_names(tx, orgs).await
            }
        }
    }

    /// Writes one batch (its JSON being made by `json`) and counts what it stored into `p`.
    async fn insert_batch(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        json: tokio::task::JoinHandle<Result<Batch>>,
        p: &mut Progress,
    ) -> Result<()> {
        let Batch { json, raws, sent } = json.await.map_err(|_| stopped("making a batch"))??;
        let insert = insert_sql(self.engine);
        let mut q = Q::new(insert.0).arg(json).sql(insert.1);
        if let Some(raws) = raws {
            q = q.bind(raws);
        }
        let inserted = q.for_engine(self.engine).fetch_all(&mut **tx).await?;
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
            p.out.assigned += assigned;
            p.out.unassigned += n - assigned;
            if let Some((lo, hi)) = ids {
                p.touched.added_observation(lo);
                p.touched.added_observation(hi);
            }
        }
        p.out.duplicates += sent as u64 - new;
        Ok(())
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
