//! The store's operations. Every function that touches tenant data takes the [`Caller`] and
//! narrows its SQL with [`Q::scoped`]; an object outside the caller's organisations is
//! `NotFound`, exactly like one that does not exist.
//!
//! Writes of an upload run in one transaction: an error (or a killed process) leaves nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::db::{self, Engine, Q};
use crate::error::{Error, Result};
use crate::ingest;
use crate::scope::{Matcher, Scope};
use crate::tenancy::{self, Caller, OrgScope, Role};

pub mod agg;
mod bulk;
pub(crate) mod latest;

use latest::Touched;

/// The fleet database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// PostgreSQL: a pool of one connection of its own, for reads of committed rows beside an
    /// upload's transaction (its named servers, read while it writes: see `store/bulk.rs`).
    /// Only the holder of the counts lock uses it, so it cannot be waited for by a transaction
    /// that holds the lock's waiters' connections.
    side: Option<AnyPool>,
    /// Every organisation's scopes as a matcher, with the scopes' revision it was built at
    /// (migration 10): rebuilt only when the revision moved.
    scopes: KeptMatcher,
    /// When a new or sent notification is overdue, and the `{deadline}` of its e-mail: the
    /// server's escalation period (`--escalate-days`; [`Store::with_escalation`]).
    escalate_after: std::time::Duration,
}

/// The matcher of every organisation's scopes and the scopes' revision it was built at.
type KeptMatcher = std::sync::Arc<tokio::sync::Mutex<Option<(i64, std::sync::Arc<Matcher>)>>>;

/// An organisation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Id.
    pub id: i64,
    /// Name (unique).
    pub name: String,
    /// Contacts (e-mail addresses, phone numbers, as given).
    pub contacts: Vec<String>,
    /// Scope.
    pub scope: Scope,
    /// Creation time.
    pub created: String,
}

/// A new organisation, or a change to one (every field given replaces the stored one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgInput {
    /// Name.
    pub name: Option<String>,
    /// Contacts.
    pub contacts: Option<Vec<String>>,
    /// Scope.
    pub scope: Option<Scope>,
}

/// A server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Id.
    pub id: i64,
    /// Organisation.
    pub org_id: i64,
    /// Name (lower case: a host name or the name a scan read from the logs).
    pub name: String,
    /// Creation time.
    pub created: String,
    /// Verdict of the latest scan, if scanned.
    pub last_verdict: Option<String>,
    /// When that scan finished.
    pub last_scanned: Option<String>,
    /// State of the latest observation, if observed.
    pub last_state: Option<String>,
    /// When it was observed.
    pub last_observed: Option<String>,
    /// The build (or version string) of the latest observation that read one.
    pub last_build: Option<String>,
    /// Dashboard state (see [`dashboard_state`]).
    pub state: String,
    /// Dashboard state per campaign of [`CAMPAIGNS`], from the latest scan's campaign verdicts
    /// and the latest observation's campaign states.
    pub states: BTreeMap<String, String>,
}

/// The campaigns the dashboard counts, as the scan result names them.
pub const CAMPAIGNS: [&str; 4] = [
    "proxy-logon",
    "proxy-shell",
    "proxy-not-shell",
    "post-exploitation",
];

/// The dashboard states, worst first.
pub const STATES: [&str; 6] = [
    "compromised",
    "attempted",
    "exposed",
    "mitigated",
    "patched",
    "unknown",
];

/// A server's dashboard state from a scan verdict and an observed exposure: a scan's compromise
/// or attempt first (evidence beats exposure), then the exposure, else unknown.
pub fn dashboard_state(verdict: Option<&str>, exposure: Option<&str>) -> &'static str {
    match verdict {
        Some("compromised") => return "compromised",
        Some("attempted") => return "attempted",
        _ => {}
    }
    match exposure {
        Some("compromised") => "compromised",
        Some("vulnerable") => "exposed",
        Some("mitigated") => "mitigated",
        Some("patched") => "patched",
        _ => "unknown",
    }
}

/// [`dashboard_state`] as an SQL expression of the verdict `v` and the exposure `e` (both SQL
/// expressions): the same rules, for statements that move servers' state in the database
/// (`store/latest.rs`).
pub(crate) fn dashboard_state_sql(v: &str, e: &str) -> String {
    format!(
        "CASE WHEN {v} = 'compromised' THEN 'compromised' WHEN {v} = 'attempted' THEN 'attempted' \
         WHEN {e} = 'compromised' THEN 'compromised' WHEN {e} = 'vulnerable' THEN 'exposed' \
         WHEN {e} = 'mitigated' THEN 'mitigated' WHEN {e} = 'patched' THEN 'patched' ELSE 'unknown' END"
    )
}

/// An audit entry made when the request was answered, waiting to be written
/// ([`Store::record_many`]).
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    at: String,
    token: Option<i64>,
    org: Option<i64>,
    action: &'static str,
    object: String,
}

impl AuditEntry {
    /// `action` on `object` by `c` (its organisation's entry), now.
    pub(crate) fn new(c: Option<&Caller>, action: &'static str, object: String) -> AuditEntry {
        AuditEntry {
            at: db::now(),
            token: c.map(|c| c.token_id),
            org: c.and_then(|c| c.org),
            action,
            object,
        }
    }
}

/// One server's part of an uploaded scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Id.
    pub id: i64,
    /// Organisation.
    pub org_id: i64,
    /// Server.
    pub server_id: i64,
    /// Server name.
    pub server: String,
    /// The uploaded document.
    pub doc_id: i64,
    /// Overall verdict.
    pub verdict: String,
    /// Verdict per campaign.
    pub verdicts: Value,
    /// Findings stored.
    pub findings: i64,
    /// Scan start.
    pub started: String,
    /// Scan end.
    pub finished: String,
    /// Upload time.
    pub uploaded: String,
}

/// A stored observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationRecord {
    /// Id.
    pub id: i64,
    /// Organisation; `None` in the unassigned queue.
    pub org_id: Option<i64>,
    /// Server, when the host is known.
    pub server_id: Option<i64>,
    /// `exhunt-probe` or `shadowserver`.
    pub source: String,
    /// Address.
    pub ip: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Host.
    pub host: Option<String>,
    /// AS number.
    pub asn: Option<i64>,
    /// State.
    pub state: String,
    /// How exposure was decided.
    pub decided_by: String,
    /// Build or version.
    pub build: Option<String>,
    /// Details.
    pub detail: String,
    /// Observation time.
    pub seen: String,
    /// Upload time.
    pub uploaded: String,
    /// Why it is unassigned.
    pub unassigned_reason: Option<String>,
    /// State per campaign, as far as the observation tells.
    pub campaigns: Value,
}

/// One day of the exposure curve: servers seen exposed and compromised that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Distinct servers with an observation saying vulnerable that day.
    pub exposed: i64,
    /// Distinct servers with a compromise that day (a scan that finished with the verdict
    /// compromised, or a third-party compromise observation).
    pub compromised: i64,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Id.
    pub id: i64,
    /// Organisation (`None` for an operator).
    pub org_id: Option<i64>,
    /// Role.
    pub role: Role,
    /// A label.
    pub name: String,
    /// Creation time.
    pub created: String,
    /// Revocation time.
    pub revoked: Option<String>,
}

/// A new token: the secret is in here and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    /// The token.
    #[serde(flatten)]
    pub token: Token,
    /// The secret, shown once.
    pub secret: String,
}

/// What a scan upload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanUpload {
    /// The stored document.
    pub doc_id: i64,
    /// True when the same document was already stored for this organisation (nothing new).
    pub duplicate: bool,
    /// The per-server records.
    pub results: Vec<i64>,
    /// Notes.
    pub warnings: Vec<String>,
}

/// What an observation upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservationUpload {
    /// Rows read.
    pub rows: u64,
    /// Stored under an organisation.
    pub assigned: u64,
    /// Stored in the unassigned queue (operator uploads only).
    pub unassigned: u64,
    /// Already stored.
    pub duplicates: u64,
    /// Not stored: outside the uploading organisation's scope.
    pub outside_scope: u64,
    /// Not stored: rows that say nothing about a server (probe `invalid`, `skipped`).
    pub ignored: u64,
}

/// Filters of list endpoints; each narrows within the caller's scope, never widens it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    /// Organisation.
    pub org: Option<i64>,
    /// Server.
    pub server: Option<i64>,
    /// Name (servers: exact, case-insensitive).
    pub name: Option<String>,
    /// Verdict (results) or state (observations).
    pub state: Option<String>,
    /// Source of observations.
    pub source: Option<String>,
    /// Address of observations.
    pub ip: Option<String>,
    /// Only ids greater than this (paging).
    pub after: Option<i64>,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<i64>,
    /// Output format of the HTTP API (`json` or `csv`); ignored by the store.
    pub format: Option<String>,
}

impl Filter {
    /// The page asked for: 1,000 unless said, at most [`PAGE`].
    pub(crate) fn limit(&self) -> i64 {
        self.limit.unwrap_or(1000).clamp(1, PAGE)
    }
}

/// The largest page a list answers; aggregates read every page ([`Store::every_server`]).
pub(crate) const PAGE: i64 = 10_000;

pub(crate) fn get_i(r: &AnyRow, c: &str) -> Result<i64> {
    Ok(r.try_get::<i64, _>(c)?)
}
pub(crate) fn get_s(r: &AnyRow, c: &str) -> Result<String> {
    Ok(r.try_get::<String, _>(c)?)
}
pub(crate) fn get_oi(r: &AnyRow, c: &str) -> Result<Option<i64>> {
    Ok(r.try_get::<Option<i64>, _>(c)?)
}
pub(crate) fn get_os(r: &AnyRow, c: &str) -> Result<Option<String>> {
    Ok(r.try_get::<Option<String>, _>(c)?)
}

const SERVER_COLS: &str = "SELECT s.id, s.org_id, s.name, s.created, s.last_verdict, s.last_scanned, \
 s.last_state, s.last_observed, s.last_build, s.state, s.st_pl, s.st_ps, s.st_pns, s.st_post \
 FROM servers s WHERE 1 = 1";

const RESULT_COLS: &str = "SELECT r.id, r.org_id, r.server_id, s.name AS server, r.doc_id, r.verdict, r.verdicts, \
 r.findings, r.started, r.finished, r.uploaded FROM scan_results r JOIN servers s ON s.id = r.server_id WHERE 1 = 1";

const OBS_COLS: &str = "SELECT o.id, o.org_id, o.server_id, o.source, o.ip, o.port, o.host, o.asn, o.state, \
 o.decided_by, o.build, o.detail, o.seen, o.uploaded, o.unassigned_reason, o.campaigns FROM observations o WHERE 1 = 1";

/// The unassigned queue's rows, in id order (the caller appends its bounds, `ORDER BY o.id`
/// and `LIMIT`): read by the index of queued rows (migration 14) whatever the statistics say.
/// SQLite, with statistics taken while most rows were queued, walked the whole table in id
/// order for the first queued row; it is told the index (`INDEXED BY`). PostgreSQL chooses it.
#[doc(hidden)]
pub fn unassigned_sql(engine: Engine) -> String {
    let from = match engine {
        Engine::Sqlite => "FROM observations o INDEXED BY observations_unassigned",
        Engine::Postgres => "FROM observations o",
    };
    format!(
        "{} AND o.org_id IS NULL",
        OBS_COLS.replace("FROM observations o", from)
    )
}

const TOKEN_COLS: &str =
    "SELECT t.id, t.org_id, t.role, t.name, t.created, t.revoked FROM tokens t WHERE 1 = 1";

fn server_from(r: &AnyRow) -> Result<Server> {
    let mut states = BTreeMap::new();
    for (k, col) in CAMPAIGNS.iter().zip(latest::CAMPAIGN_COLUMNS) {
        states.insert(k.to_string(), get_s(r, col)?);
    }
    Ok(Server {
        state: get_s(r, "state")?,
        states,
        id: get_i(r, "id")?,
        org_id: get_i(r, "org_id")?,
        name: get_s(r, "name")?,
        created: get_s(r, "created")?,
        last_verdict: get_os(r, "last_verdict")?,
        last_scanned: get_os(r, "last_scanned")?,
        last_state: get_os(r, "last_state")?,
        last_observed: get_os(r, "last_observed")?,
        last_build: get_os(r, "last_build")?,
    })
}

fn result_from(r: &AnyRow) -> Result<ScanRecord> {
    Ok(ScanRecord {
        id: get_i(r, "id")?,
        org_id: get_i(r, "org_id")?,
        server_id: get_i(r, "server_id")?,
        server: get_s(r, "server")?,
        doc_id: get_i(r, "doc_id")?,
        verdict: get_s(r, "verdict")?,
        verdicts: serde_json::from_str(&get_s(r, "verdicts")?).unwrap_or(Value::Null),
        findings: get_i(r, "findings")?,
        started: get_s(r, "started")?,
        finished: get_s(r, "finished")?,
        uploaded: get_s(r, "uploaded")?,
    })
}

fn obs_from(r: &AnyRow) -> Result<ObservationRecord> {
    Ok(ObservationRecord {
        id: get_i(r, "id")?,
        org_id: get_oi(r, "org_id")?,
        server_id: get_oi(r, "server_id")?,
        source: get_s(r, "source")?,
        ip: get_os(r, "ip")?,
        port: get_oi(r, "port")?,
        host: get_os(r, "host")?,
        asn: get_oi(r, "asn")?,
        state: get_s(r, "state")?,
        decided_by: get_s(r, "decided_by")?,
        build: get_os(r, "build")?,
        detail: get_s(r, "detail")?,
        seen: get_s(r, "seen")?,
        uploaded: get_s(r, "uploaded")?,
        unassigned_reason: get_os(r, "unassigned_reason")?,
        campaigns: serde_json::from_str(&get_s(r, "campaigns")?).unwrap_or(Value::Null),
    })
}

fn token_from(r: &AnyRow) -> Result<Token> {
    let role = get_s(r, "role")?;
    Ok(Token {
        id: get_i(r, "id")?,
        org_id: get_oi(r, "org_id")?,
        role: Role::parse(&role).unwrap_or(Role::Reader),
        name: get_s(r, "name")?,
        created: get_s(r, "created")?,
        revoked: get_os(r, "revoked")?,
    })
}

/// PostgreSQL: `BEGIN` and the transaction's scope in one simple-protocol round trip. The
/// value is this crate's own (`*` or an organisation's number), never a caller's text.
fn scoped_begin(scope: OrgScope) -> String {
    format!(
        "BEGIN; SELECT set_config('exhunt.org', '{}', true)",
        scope_value(scope)
    )
}

/// `exhunt.org` for `scope`: `*` for every organisation, else the organisation's number.
pub(crate) fn scope_value(scope: OrgScope) -> String {
    match scope {
        OrgScope::All => "*".to_string(),
        OrgScope::One(o) => o.to_string(),
    }
}

impl Store {
    /// Opens (and migrates) the database at `url` (see [`db::open`]).
    pub async fn open(url: &str) -> Result<Store> {
        let (pool, engine) = db::open(url).await?;
        let side = match engine {
            Engine::Postgres => Some(db::side_pool(url)?),
            Engine::Sqlite => None,
        };
        let store = Store {
            pool,
            engine,
            side,
            scopes: Default::default(),
            escalate_after: crate::escalate::Policy::default().after,
        };
        latest::backfill(&store).await?;
        Ok(store)
    }

    /// This store with notifications overdue, and their e-mail's `{deadline}`, `after` they were
    /// made or last changed (the server's `--escalate-days`; 7 days unless set).
    pub fn with_escalation(mut self, after: std::time::Duration) -> Store {
        self.escalate_after = after;
        self
    }

    /// The escalation period ([`Store::with_escalation`]).
    pub(crate) fn escalate_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.escalate_after).unwrap_or(chrono::Duration::days(7))
    }

    /// A transaction in which the database itself narrows tenant rows to `scope`: on
    /// PostgreSQL it sets `exhunt.org` for the transaction, which the row-level security
    /// policies of migration 3 read (`*` for every organisation; unset, a session sees no
    /// tenant row). SQLite has no such mechanism: there the application filter
    /// ([`Q::scoped`]) is the only lock. Reads use a transaction too, dropped (rolled back)
    /// after the query.
    pub(crate) async fn begin(
        &self,
        scope: OrgScope,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.engine {
            // One round trip: the transaction begins with its scope set (a page makes several
            // of these; each round trip is a statement the server parses and answers).
            Engine::Postgres => Ok(self.pool.begin_with(scoped_begin(scope)).await?),
            Engine::Sqlite => Ok(self.pool.begin().await?),
        }
    }

    /// The organisation scope the database holds in a transaction begun for `c` (a read one,
    /// or a writing one): `*`, an organisation's number, or `None` on SQLite. For tests: row
    /// security holds only if every transaction says whom it serves.
    #[doc(hidden)]
    pub async fn db_scope_of(&self, c: &Caller, write: bool) -> Result<Option<String>> {
        if self.engine != Engine::Postgres {
            return Ok(None);
        }
        let mut tx = if write {
            self.begin_write(c.org_scope()).await?
        } else {
            self.begin(c.org_scope()).await?
        };
        let r = Q::new("SELECT current_setting('exhunt.org', true) AS v")
            .fetch_optional(&mut *tx)
            .await?;
        Ok(r.map(|r| get_os(&r, "v")).transpose()?.flatten())
    }

    /// As [`Store::begin`], for a transaction that writes (or reads, then writes): on SQLite it
    /// takes the write lock at once ([`db::begin_write`]).
    pub(crate) async fn begin_write(
        &self,
        scope: OrgScope,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.engine {
            Engine::Postgres => Ok(self.pool.begin_with(scoped_begin(scope)).await?),
            Engine::Sqlite => Ok(db::begin_write(&self.pool, self.engine).await?),
        }
    }

    /// As [`Store::begin_write`], for a transaction that changes servers, their scans or
    /// observations, or organisations (and so the counts of `store/latest.rs`): on PostgreSQL
    /// it first takes the counts' advisory lock ([`latest::lock_counts`]).
    pub(crate) async fn begin_counted(
        &self,
        scope: OrgScope,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.begin_write(scope).await?;
        latest::lock_counts(&mut tx, self.engine).await?;
        Ok(tx)
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn audit<'e, E>(
        &self,
        ex: E,
        c: Option<&Caller>,
        org: Option<i64>,
        action: &str,
        object: String,
    ) -> Result<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        Q::new("INSERT INTO audit (at, token_id, org_id, action, object) VALUES (")
            .arg(db::now())
            .sql(", ")
            .arg(c.map(|c| c.token_id))
            .sql(", ")
            .arg(org)
            .sql(", ")
            .arg(action)
            .sql(", ")
            .arg(object)
            .sql(")")
            .execute(ex)
            .await?;
        Ok(())
    }

    /// Writes access-log entries in one transaction (the server's group commit), with every
    /// organisation's scope: each row names its own organisation.
    pub(crate) async fn record_many(&self, entries: &[AuditEntry]) -> Result<()> {
        let mut tx = self.begin_write(OrgScope::All).await?;
        for part in entries.chunks(200) {
            let mut q = Q::new("INSERT INTO audit (at, token_id, org_id, action, object) VALUES ");
            for (i, e) in part.iter().enumerate() {
                q = q
                    .sql(if i > 0 { ", (" } else { "(" })
                    .arg(e.at.as_str())
                    .sql(", ")
                    .arg(e.token)
                    .sql(", ")
                    .arg(e.org)
                    .sql(", ")
                    .arg(e.action)
                    .sql(", ")
                    .arg(e.object.as_str())
                    .sql(")");
            }
            q.for_engine(self.engine).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes one audit entry in its own transaction (reads, exports, page views, failed
    /// logins, refused uploads): under the caller's organisation, or none.
    pub async fn record(&self, c: Option<&Caller>, action: &str, object: String) -> Result<()> {
        let scope = c.map(|c| c.org_scope()).unwrap_or(OrgScope::All);
        let mut tx = self.begin_write(scope).await?;
        self.audit(&mut *tx, c, c.and_then(|c| c.org), action, object)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- tokens -------------------------------------------------------------------------

    /// Resolves a secret to its caller; unknown and revoked tokens are `Unauthorized`.
    pub async fn authenticate(&self, secret: &str) -> Result<Caller> {
        let row = Q::new(
            "SELECT id, org_id, role FROM tokens WHERE revoked IS NULL AND secret_sha256 = ",
        )
        .arg(tenancy::hash_secret(secret.trim()))
        .fetch_optional(&mut *self.begin(OrgScope::All).await?)
        .await?
        .ok_or(Error::Unauthorized)?;
        let role = Role::parse(&get_s(&row, "role")?).ok_or(Error::Unauthorized)?;
        Ok(Caller {
            token_id: get_i(&row, "id")?,
            role,
            org: get_oi(&row, "org_id")?,
        })
    }

    /// Opens a dashboard session with an API token: returns the cookie secret and the session's
    /// CSRF token. Sessions end after `hours`, and with their token.
    pub async fn open_session(&self, token_secret: &str, hours: i64) -> Result<(String, String)> {
        let c = self.authenticate(token_secret).await?;
        let secret = tenancy::new_secret()?;
        let csrf = tenancy::new_secret()?;
        let now = chrono::Utc::now();
        let expires = db::fmt_time(&(now + chrono::Duration::hours(hours)));
        let mut tx = self.begin_write(OrgScope::All).await?;
        Q::new("DELETE FROM sessions WHERE expires < ")
            .arg(db::fmt_time(&now))
            .execute(&mut *tx)
            .await?;
        Q::new("INSERT INTO sessions (token_id, secret_sha256, csrf, created, expires) VALUES (")
            .arg(c.token_id)
            .sql(", ")
            .arg(tenancy::hash_secret(&secret))
            .sql(", ")
            .arg(csrf.clone())
            .sql(", ")
            .arg(db::fmt_time(&now))
            .sql(", ")
            .arg(expires)
            .sql(")")
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut *tx,
            Some(&c),
            c.org,
            "session.open",
            format!("dashboard session of token #{}", c.token_id),
        )
        .await?;
        tx.commit().await?;
        Ok((secret, csrf))
    }

    /// The caller of a live session, and its CSRF token.
    pub async fn session(&self, secret: &str) -> Result<(Caller, String)> {
        let row = Q::new("SELECT t.id, t.org_id, t.role, s.csrf FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE t.revoked IS NULL AND s.expires > ")
            .arg(db::now())
            .sql(" AND s.secret_sha256 = ")
            .arg(tenancy::hash_secret(secret.trim()))
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?
            .ok_or(Error::Unauthorized)?;
        let role = Role::parse(&get_s(&row, "role")?).ok_or(Error::Unauthorized)?;
        Ok((
            Caller {
                token_id: get_i(&row, "id")?,
                role,
                org: get_oi(&row, "org_id")?,
            },
            get_s(&row, "csrf")?,
        ))
    }

    /// Ends a session.
    pub async fn close_session(&self, secret: &str) -> Result<()> {
        let mut tx = self.begin_write(OrgScope::All).await?;
        Q::new("DELETE FROM sessions WHERE secret_sha256 = ")
            .arg(tenancy::hash_secret(secret.trim()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates the first operator token when there is no live operator token; `None` when one
    /// exists. This is how a new server is bootstrapped (`exhunt serve` prints it once).
    pub async fn bootstrap_operator(&self, name: &str) -> Result<Option<NewToken>> {
        let n =
            Q::new("SELECT COUNT(*) AS n FROM tokens WHERE role = 'operator' AND revoked IS NULL")
                .fetch_optional(&mut *self.begin(OrgScope::All).await?)
                .await?
                .map(|r| get_i(&r, "n"))
                .transpose()?
                .unwrap_or(0);
        if n > 0 {
            return Ok(None);
        }
        self.insert_token(None, None, Role::Operator, name)
            .await
            .map(Some)
    }

    async fn insert_token(
        &self,
        by: Option<&Caller>,
        org: Option<i64>,
        role: Role,
        name: &str,
    ) -> Result<NewToken> {
        let secret = tenancy::new_secret()?;
        let created = db::now();
        let mut tx = self
            .begin_write(by.map(|c| c.org_scope()).unwrap_or(OrgScope::All))
            .await?;
        let row = Q::new(
            "INSERT INTO tokens (org_id, role, name, secret_sha256, created, created_by) VALUES (",
        )
        .arg(org)
        .sql(", ")
        .arg(role.as_str())
        .sql(", ")
        .arg(name)
        .sql(", ")
        .arg(tenancy::hash_secret(&secret))
        .sql(", ")
        .arg(created.clone())
        .sql(", ")
        .arg(by.map(|c| c.token_id))
        .sql(") RETURNING id")
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("token"))?;
        let id = get_i(&row, "id")?;
        self.audit(
            &mut *tx,
            by,
            org,
            "token.create",
            format!("token #{id} ({}) {name:?}", role.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(NewToken {
            token: Token {
                id,
                org_id: org,
                role,
                name: name.to_string(),
                created,
                revoked: None,
            },
            secret,
        })
    }

    /// Creates a token. Operators create any; an uploader creates reader or uploader tokens of
    /// its own organisation; readers create none.
    pub async fn create_token(
        &self,
        c: &Caller,
        org: Option<i64>,
        role: Role,
        name: &str,
    ) -> Result<NewToken> {
        c.require(Role::Uploader)?;
        match (role, org) {
            (Role::Operator, None) => c.require(Role::Operator)?,
            (Role::Operator, Some(_)) => {
                return Err(Error::BadRequest(
                    "an operator token belongs to no organisation".into(),
                ));
            }
            (_, None) => {
                return Err(Error::BadRequest(format!(
                    "a {} token needs an organisation",
                    role.as_str()
                )));
            }
            (_, Some(o)) => {
                c.require_org(o, Role::Uploader)?;
                self.get_org(c, o).await?;
            }
        }
        if name.trim().is_empty() || name.len() > 200 {
            return Err(Error::BadRequest(
                "a token needs a name of 1 to 200 characters".into(),
            ));
        }
        self.insert_token(Some(c), org, role, name.trim()).await
    }

    /// Tokens the caller may see (never secrets).
    pub async fn list_tokens(&self, c: &Caller, f: &Filter) -> Result<Vec<Token>> {
        let mut q = Q::new(TOKEN_COLS).scoped(c, "t.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND t.org_id = ").arg(o);
        }
        if let Some(a) = f.after {
            q = q.sql(" AND t.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY t.id LIMIT ").arg(f.limit());
        q.fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(token_from)
            .collect()
    }

    /// One token the caller may see.
    async fn token_seen(&self, c: &Caller, id: i64) -> Result<Token> {
        let row = Q::new(TOKEN_COLS)
            .sql(" AND t.id = ")
            .arg(id)
            .scoped(c, "t.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("token"))?;
        token_from(&row)
    }

    /// Revokes a token (uploader: of its own organisation, not an operator's).
    pub async fn revoke_token(&self, c: &Caller, id: i64) -> Result<Token> {
        c.require(Role::Uploader)?;
        // A dashboard user's own token: revoking it would lock the user out for good while
        // the user still showed as enabled. Only an operator disables users (which revokes
        // the token); an uploader is told so. Looked up with '*': users are operators' rows.
        let user = Q::new("SELECT id FROM users WHERE disabled IS NULL AND token_id = ")
            .arg(id)
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?
            .map(|r| get_i(&r, "id"))
            .transpose()?;
        if let Some(u) = user {
            if c.org_scope() != OrgScope::All {
                // Not revealed when the token is not the caller's organisation's.
                self.token_seen(c, id).await?;
                return Err(Error::Conflict(format!(
                    "token {id} is the dashboard login of user #{u}: an operator disables the user instead"
                )));
            }
            self.disable_user(c, u).await?;
            return self.token_seen(c, id).await;
        }
        let mut tx = self.begin_write(c.org_scope()).await?;
        let n = Q::new("UPDATE tokens SET revoked = ")
            .arg(db::now())
            .sql(" WHERE revoked IS NULL AND id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        let row = Q::new(TOKEN_COLS)
            .sql(" AND t.id = ")
            .arg(id)
            .scoped(c, "t.org_id")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("token"))?;
        let t = token_from(&row)?;
        if n > 0 {
            // The tokens this one made, and theirs, go with it: an uploader (or a reader) can
            // leave nothing behind. An operator's are kept: operators make every organisation's
            // tokens, and rotating an operator token must not revoke the fleet's.
            let mut made = 0;
            if t.role != Role::Operator {
                let now = db::now();
                made = Q::new("UPDATE tokens SET revoked = ")
                    .arg(now)
                    .sql(
                        " WHERE revoked IS NULL AND role <> 'operator' AND id IN (\
                         WITH RECURSIVE made(id) AS (SELECT id FROM tokens WHERE created_by = ",
                    )
                    .arg(id)
                    .sql(
                        " UNION SELECT t.id FROM tokens t JOIN made m ON t.created_by = m.id) \
                         SELECT id FROM made)",
                    )
                    .scoped(c, "org_id")
                    .execute(&mut *tx)
                    .await?;
            }
            self.audit(
                &mut *tx,
                Some(c),
                t.org_id,
                "token.revoke",
                if made > 0 {
                    format!("token #{id} and {made} token(s) it made")
                } else {
                    format!("token #{id}")
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(t)
    }

    // ----- organisations ------------------------------------------------------------------

    async fn scope_of(&self, scope: OrgScope, org: i64) -> Result<Scope> {
        let rows = Q::new("SELECT kind, value FROM org_scopes WHERE org_id = ")
            .arg(org)
            .sql(" ORDER BY kind, value")
            .fetch_all(&mut *self.begin(scope).await?)
            .await?;
        let mut s = Scope::default();
        for r in rows {
            let v = get_s(&r, "value")?;
            match get_s(&r, "kind")?.as_str() {
                "cidr" => s.cidrs.push(v),
                "asn" => s.asns.push(v.parse().unwrap_or(0)),
                _ => s.domains.push(v),
            }
        }
        Ok(s)
    }

    async fn org_from(&self, c: &Caller, r: &AnyRow) -> Result<Org> {
        let id = get_i(r, "id")?;
        Ok(Org {
            id,
            name: get_s(r, "name")?,
            contacts: serde_json::from_str(&get_s(r, "contacts")?).unwrap_or_default(),
            scope: self.scope_of(c.org_scope(), id).await?,
            created: get_s(r, "created")?,
        })
    }

    /// Organisations the caller may see.
    pub async fn list_orgs(&self, c: &Caller, f: &Filter) -> Result<Vec<Org>> {
        let mut q = Q::new("SELECT o.id, o.name, o.contacts, o.created FROM orgs o WHERE 1 = 1")
            .scoped(c, "o.id");
        if let Some(a) = f.after {
            q = q.sql(" AND o.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY o.id LIMIT ").arg(f.limit());
        let mut out = Vec::new();
        let rows = q.fetch_all(&mut *self.begin(c.org_scope()).await?).await?;
        for r in rows {
            out.push(self.org_from(c, &r).await?);
        }
        Ok(out)
    }

    /// One organisation.
    pub async fn get_org(&self, c: &Caller, id: i64) -> Result<Org> {
        let r = Q::new("SELECT o.id, o.name, o.contacts, o.created FROM orgs o WHERE o.id = ")
            .arg(id)
            .scoped(c, "o.id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("organisation"))?;
        self.org_from(c, &r).await
    }

    async fn write_scope<'c>(
        &self,
        tx: &mut sqlx::Transaction<'c, sqlx::Any>,
        org: i64,
        scope: &Scope,
    ) -> Result<()> {
        let entries = scope.entries()?;
        Q::new("DELETE FROM org_scopes WHERE org_id = ")
            .arg(org)
            .execute(&mut **tx)
            .await?;
        for e in entries {
            Q::new("INSERT INTO org_scopes (org_id, kind, value, family, prefix_len, net_hex) VALUES (")
                .arg(org)
                .sql(", ")
                .arg(e.kind)
                .sql(", ")
                .arg(e.value)
                .sql(", ")
                .arg(e.family)
                .sql(", ")
                .arg(e.prefix_len)
                .sql(", ")
                .arg(e.net_hex)
                .sql(")")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    fn check_name(name: &str) -> Result<String> {
        let n = name.trim();
        if n.is_empty() || n.len() > 200 || n.chars().any(char::is_control) {
            return Err(Error::BadRequest(
                "an organisation needs a name of 1 to 200 printable characters".into(),
            ));
        }
        Ok(n.to_string())
    }

    /// Creates an organisation (operators only).
    pub async fn create_org(&self, c: &Caller, input: &OrgInput) -> Result<Org> {
        c.require(Role::Operator)?;
        let name = Self::check_name(input.name.as_deref().unwrap_or(""))?;
        let contacts = serde_json::to_string(&input.contacts.clone().unwrap_or_default())
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let scope = input.scope.clone().unwrap_or_default();
        scope.entries()?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let row = Q::new("INSERT INTO orgs (name, contacts, created) VALUES (")
            .arg(name.clone())
            .sql(", ")
            .arg(contacts)
            .sql(", ")
            .arg(db::now())
            .sql(") ON CONFLICT (name) DO NOTHING RETURNING id")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::Conflict(format!("an organisation named {name:?} exists")))?;
        let id = get_i(&row, "id")?;
        self.write_scope(&mut tx, id, &scope).await?;
        self.audit(
            &mut *tx,
            Some(c),
            Some(id),
            "org.create",
            format!("organisation #{id} {name:?}"),
        )
        .await?;
        tx.commit().await?;
        self.get_org(c, id).await
    }

    /// Changes an organisation (operators only).
    pub async fn update_org(&self, c: &Caller, id: i64, input: &OrgInput) -> Result<Org> {
        c.require(Role::Operator)?;
        self.get_org(c, id).await?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        if let Some(n) = &input.name {
            let name = Self::check_name(n)?;
            let taken = Q::new("SELECT id FROM orgs WHERE name = ")
                .arg(name.clone())
                .sql(" AND id <> ")
                .arg(id)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(Error::Conflict(format!(
                    "an organisation named {name:?} exists"
                )));
            }
            Q::new("UPDATE orgs SET name = ")
                .arg(name)
                .sql(" WHERE id = ")
                .arg(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(ct) = &input.contacts {
            let j = serde_json::to_string(ct).map_err(|e| Error::BadRequest(e.to_string()))?;
            Q::new("UPDATE orgs SET contacts = ")
                .arg(j)
                .sql(" WHERE id = ")
                .arg(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(s) = &input.scope {
            self.write_scope(&mut tx, id, s).await?;
        }
        self.audit(
            &mut *tx,
            Some(c),
            Some(id),
            "org.update",
            format!("organisation #{id}"),
        )
        .await?;
        tx.commit().await?;
        self.get_org(c, id).await
    }

    /// Deletes an organisation and everything it owns (operators only).
    pub async fn delete_org(&self, c: &Caller, id: i64) -> Result<()> {
        c.require(Role::Operator)?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        // Children first: SQLite enforces foreign keys per connection, PostgreSQL always.
        Q::new("DELETE FROM sessions WHERE token_id IN (SELECT id FROM tokens WHERE org_id = ")
            .arg(id)
            .sql(")")
            .execute(&mut *tx)
            .await?;
        latest::drop_org_days(&mut tx, id).await?;
        for t in [
            "notifications",
            "observations",
            "scan_results",
            "scan_docs",
            "servers",
            "tokens",
            "org_scopes",
        ] {
            Q::new(&format!("DELETE FROM {t} WHERE org_id = "))
                .arg(id)
                .execute(&mut *tx)
                .await?;
        }
        let n = Q::new("DELETE FROM orgs WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("organisation"));
        }
        self.audit(
            &mut *tx,
            Some(c),
            Some(id),
            "org.delete",
            format!("organisation #{id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- servers ------------------------------------------------------------------------

    /// Servers the caller may see.
    pub async fn list_servers(&self, c: &Caller, f: &Filter) -> Result<Vec<Server>> {
        let mut q = Q::new(SERVER_COLS).scoped(c, "s.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND s.org_id = ").arg(o);
        }
        if let Some(n) = &f.name {
            q = q.sql(" AND s.name = ").arg(n.trim().to_lowercase());
        }
        if let Some(a) = f.after {
            q = q.sql(" AND s.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY s.id LIMIT ").arg(f.limit());
        q.fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(server_from)
            .collect()
    }

    /// Every server the caller may see (of one organisation, `org`), page by page: what the
    /// aggregates (overview, status sheet, roll-up, notifications) count, never cut at a page.
    pub async fn every_server(&self, c: &Caller, org: Option<i64>) -> Result<Vec<Server>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_servers(
                    c,
                    &Filter {
                        org,
                        after,
                        limit: Some(PAGE),
                        ..Filter::default()
                    },
                )
                .await?;
            let full = page.len() as i64 >= PAGE;
            after = page.last().map(|s| s.id);
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Every organisation the caller may see, page by page.
    pub async fn every_org(&self, c: &Caller) -> Result<Vec<Org>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .list_orgs(
                    c,
                    &Filter {
                        after,
                        limit: Some(PAGE),
                        ..Filter::default()
                    },
                )
                .await?;
            let full = page.len() as i64 >= PAGE;
            after = page.last().map(|o| o.id);
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// One server.
    pub async fn get_server(&self, c: &Caller, id: i64) -> Result<Server> {
        let r = Q::new(SERVER_COLS)
            .sql(" AND s.id = ")
            .arg(id)
            .scoped(c, "s.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("server"))?;
        server_from(&r)
    }

    /// Deletes a server with its results; its observations stay, detached (uploader of its
    /// organisation, or operator).
    pub async fn delete_server(&self, c: &Caller, id: i64) -> Result<()> {
        c.require(Role::Uploader)?;
        let s = self.get_server(c, id).await?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let days = latest::days_of_server(&mut tx, id).await?;
        Q::new("UPDATE observations SET server_id = NULL WHERE server_id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        Q::new("DELETE FROM scan_results WHERE server_id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        let n = Q::new("DELETE FROM servers WHERE id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("server"));
        }
        latest::recount_days(&mut tx, self.engine, c.org_scope(), &days).await?;
        self.audit(
            &mut *tx,
            Some(c),
            Some(s.org_id),
            "server.delete",
            format!("server #{id} {:?}", s.name),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The server of an organisation for a name, made when missing. A scan names a server by
    /// its NetBIOS name (`EX01`), a probe by its host name (`ex01.corp.example`): when the name
    /// matches no server exactly, a host name joins the one server of that short name, and a
    /// short name joins the one server whose host name starts with it. Two candidates: no
    /// guess, a server of its own.
    async fn server_id<'c>(
        tx: &mut sqlx::Transaction<'c, sqlx::Any>,
        org: i64,
        name: &str,
    ) -> Result<i64> {
        let name = name.trim().trim_end_matches('.').to_lowercase();
        let exact = Q::new("SELECT id FROM servers WHERE org_id = ")
            .arg(org)
            .sql(" AND name = ")
            .arg(name.clone())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(r) = exact {
            return get_i(&r, "id");
        }
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        if !is_ip && !name.is_empty() {
            let candidates = match name.split_once('.') {
                Some((short, _)) => {
                    Q::new("SELECT id FROM servers WHERE org_id = ")
                        .arg(org)
                        .sql(" AND name = ")
                        .arg(short)
                        .sql(" LIMIT 2")
                        .fetch_all(&mut **tx)
                        .await?
                }
                None => {
                    let prefix = format!("{name}.");
                    Q::new("SELECT id FROM servers WHERE org_id = ")
                        .arg(org)
                        .sql(" AND substr(name, 1, CAST(")
                        .arg(prefix.len() as i64)
                        .sql(" AS INTEGER)) = ")
                        .arg(prefix)
                        .sql(" LIMIT 2")
                        .fetch_all(&mut **tx)
                        .await?
                }
            };
            if let [one] = candidates.as_slice() {
                return get_i(one, "id");
            }
        }
        Q::new("INSERT INTO servers (org_id, name, created) VALUES (")
            .arg(org)
            .sql(", ")
            .arg(name.clone())
            .sql(", ")
            .arg(db::now())
            .sql(") ON CONFLICT (org_id, name) DO NOTHING")
            .execute(&mut **tx)
            .await?;
        let r = Q::new("SELECT id FROM servers WHERE org_id = ")
            .arg(org)
            .sql(" AND name = ")
            .arg(name)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(Error::NotFound("server"))?;
        get_i(&r, "id")
    }

    // ----- scan results -------------------------------------------------------------------

    fn upload_org(c: &Caller, org: Option<i64>) -> Result<i64> {
        c.require(Role::Uploader)?;
        match (c.org_scope(), org) {
            (OrgScope::One(mine), None) => Ok(mine),
            (OrgScope::One(mine), Some(o)) if o == mine => Ok(mine),
            (OrgScope::One(_), Some(_)) => Err(Error::Forbidden(
                "this token uploads to its own organisation only".into(),
            )),
            (OrgScope::All, Some(o)) => Ok(o),
            (OrgScope::All, None) => Err(Error::BadRequest(
                "an operator names the organisation of a scan upload (?org=ID)".into(),
            )),
        }
    }

    /// Stores an `exhunt scan --format json` document for an organisation (the caller's own,
    /// or `org` for an operator): validated, in one transaction, once per content.
    pub async fn upload_scan(
        &self,
        c: &Caller,
        org: Option<i64>,
        body: &[u8],
    ) -> Result<ScanUpload> {
        let org = Self::upload_org(c, org)?;
        self.get_org(c, org).await?;
        let v = ingest::validate_scan(body)?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let uploaded = db::now();
        let inserted = Q::new("INSERT INTO scan_docs (org_id, sha256, schema_version, body, uploaded, token_id) VALUES (")
            .arg(org)
            .sql(", ")
            .arg(v.sha256.clone())
            .sql(", ")
            .arg(v.result.schema_version.clone())
            .sql(", ")
            .arg(v.canonical.clone())
            .sql(", ")
            .arg(uploaded.clone())
            .sql(", ")
            .arg(c.token_id)
            .sql(") ON CONFLICT (org_id, sha256) DO NOTHING RETURNING id")
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = inserted else {
            let r = Q::new("SELECT id FROM scan_docs WHERE org_id = ")
                .arg(org)
                .sql(" AND sha256 = ")
                .arg(v.sha256)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("scan"))?;
            let doc_id = get_i(&r, "id")?;
            let ids = Q::new("SELECT id FROM scan_results WHERE doc_id = ")
                .arg(doc_id)
                .sql(" ORDER BY server_index")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| get_i(r, "id"))
                .collect::<Result<Vec<_>>>()?;
            tx.commit().await?;
            return Ok(ScanUpload {
                doc_id,
                duplicate: true,
                results: ids,
                warnings: v.warnings,
            });
        };
        let doc_id = get_i(&row, "id")?;
        let mut ids = Vec::new();
        let mut touched = Touched::default();
        let finished = db::fmt_time(&v.result.finished);
        for (i, s) in v.result.servers.iter().enumerate() {
            let server = Self::server_id(&mut tx, org, &s.name).await?;
            let verdicts: serde_json::Map<String, Value> = s
                .verdicts
                .iter()
                .map(|x| {
                    (
                        serde_json::to_value(x.campaign)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        serde_json::to_value(x.verdict).unwrap_or(Value::Null),
                    )
                })
                .collect();
            let verdict = serde_json::to_value(s.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            touched.scan(org, server, &verdict, &finished);
            let r = Q::new("INSERT INTO scan_results (org_id, doc_id, server_id, server_index, verdict, verdicts, findings, started, finished, uploaded) VALUES (")
                .arg(org)
                .sql(", ")
                .arg(doc_id)
                .sql(", ")
                .arg(server)
                .sql(", ")
                .arg(i as i64)
                .sql(", ")
                .arg(verdict)
                .sql(", ")
                .arg(Value::Object(verdicts).to_string())
                .sql(", ")
                .arg(s.findings.len() as i64)
                .sql(", ")
                .arg(db::fmt_time(&v.result.started))
                .sql(", ")
                .arg(finished.clone())
                .sql(", ")
                .arg(uploaded.clone())
                .sql(") RETURNING id")
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("scan result"))?;
            ids.push(get_i(&r, "id")?);
        }
        latest::apply(&mut tx, self.engine, c.org_scope(), &touched).await?;
        self.audit(
            &mut *tx,
            Some(c),
            Some(org),
            "scan.upload",
            format!("scan document #{doc_id}, {} server(s)", ids.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(ScanUpload {
            doc_id,
            duplicate: false,
            results: ids,
            warnings: v.warnings,
        })
    }

    /// Scan records the caller may see.
    pub async fn list_results(&self, c: &Caller, f: &Filter) -> Result<Vec<ScanRecord>> {
        let mut q = Q::new(RESULT_COLS).scoped(c, "r.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND r.org_id = ").arg(o);
        }
        if let Some(s) = f.server {
            q = q.sql(" AND r.server_id = ").arg(s);
        }
        if let Some(v) = &f.state {
            q = q.sql(" AND r.verdict = ").arg(v.as_str());
        }
        if let Some(a) = f.after {
            q = q.sql(" AND r.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY r.id LIMIT ").arg(f.limit());
        q.fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(result_from)
            .collect()
    }

    /// One scan record.
    pub async fn get_result(&self, c: &Caller, id: i64) -> Result<ScanRecord> {
        let r = Q::new(RESULT_COLS)
            .sql(" AND r.id = ")
            .arg(id)
            .scoped(c, "r.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("scan result"))?;
        result_from(&r)
    }

    /// The scan document of one record, narrowed to that record's server: what `exhunt report`
    /// would draw for it.
    pub async fn result_document(&self, c: &Caller, id: i64) -> Result<exhunt_model::ScanResult> {
        let rec = self.get_result(c, id).await?;
        let r = Q::new("SELECT d.body, r.server_index FROM scan_results r JOIN scan_docs d ON d.id = r.doc_id WHERE r.id = ")
            .arg(id)
            .scoped(c, "r.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("scan result"))?;
        let mut doc: exhunt_model::ScanResult = serde_json::from_str(&get_s(&r, "body")?)
            .map_err(|e| Error::Invalid(format!("stored document of result #{}: {e}", rec.id)))?;
        let i = usize::try_from(get_i(&r, "server_index")?).unwrap_or(usize::MAX);
        if i >= doc.servers.len() {
            return Err(Error::NotFound("scan result"));
        }
        let server = doc.servers.swap_remove(i);
        doc.verdict = server.verdict;
        doc.servers = vec![server];
        Ok(doc)
    }

    /// Deletes one scan record (uploader of its organisation, or operator); the document goes
    /// when its last record goes.
    pub async fn delete_result(&self, c: &Caller, id: i64) -> Result<()> {
        c.require(Role::Uploader)?;
        let rec = self.get_result(c, id).await?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let n = Q::new("DELETE FROM scan_results WHERE id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("scan result"));
        }
        let mut t = Touched::default();
        t.scan(rec.org_id, rec.server_id, &rec.verdict, &rec.finished);
        latest::apply(&mut tx, self.engine, c.org_scope(), &t).await?;
        Q::new("DELETE FROM scan_docs WHERE id = ")
            .arg(rec.doc_id)
            .sql(" AND NOT EXISTS (SELECT 1 FROM scan_results r WHERE r.doc_id = ")
            .arg(rec.doc_id)
            .sql(")")
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut *tx,
            Some(c),
            Some(rec.org_id),
            "result.delete",
            format!("scan result #{id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- observations -------------------------------------------------------------------

    /// The scopes an upload is assigned by. An operator's (feeds of a whole constituency): every
    /// organisation's, so that the longest prefix wins. An uploader's: its own organisation's
    /// only, so that the answer to an upload (kept, or outside its scope) depends on nothing
    /// but what the uploader already knows: with every scope, a row inside its own range that
    /// another organisation holds a longer prefix of would be refused, and the uploader would
    /// learn that the other organisation exists there (the "scope oracle"). Its rows inside its
    /// own range are its own scan data and stay in its organisation; they never reach another.
    /// Nothing of the scopes is returned to a caller.
    async fn matcher(&self, who: OrgScope) -> Result<std::sync::Arc<Matcher>> {
        let mut tx = self.begin(OrgScope::All).await?;
        if let OrgScope::One(org) = who {
            let rows = Q::new("SELECT org_id, kind, value FROM org_scopes WHERE org_id = ")
                .arg(org)
                .fetch_all(&mut *tx)
                .await?;
            return Ok(std::sync::Arc::new(Self::matcher_of(&rows)?));
        }
        // Every organisation's: the one kept, unless the scopes changed since it was built.
        // The revision and the scopes are read in one transaction (one snapshot on SQLite;
        // on PostgreSQL the revision is read first, so a change committed in between only
        // makes the next upload build it again).
        let rev = match Q::new("SELECT rev FROM scope_revision WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => get_i(&r, "rev")?,
            None => return Err(Error::NotFound("scope revision")),
        };
        let mut kept = self.scopes.lock().await;
        if let Some((at, m)) = kept.as_ref()
            && *at == rev
        {
            return Ok(m.clone());
        }
        let rows = Q::new("SELECT org_id, kind, value FROM org_scopes")
            .fetch_all(&mut *tx)
            .await?;
        let m = std::sync::Arc::new(Self::matcher_of(&rows)?);
        *kept = Some((rev, m.clone()));
        Ok(m)
    }

    fn matcher_of(rows: &[sqlx::any::AnyRow]) -> Result<Matcher> {
        let mut m = Matcher::default();
        for r in rows {
            m.add(get_i(r, "org_id")?, &get_s(r, "kind")?, &get_s(r, "value")?);
        }
        Ok(m)
    }

    fn dedup_key(org: Option<i64>, sha: &str) -> String {
        match org {
            Some(o) => format!("{o}:{sha}"),
            None => format!("-:{sha}"),
        }
    }

    /// Observations the caller may see (operators: also the unassigned ones).
    pub async fn list_observations(
        &self,
        c: &Caller,
        f: &Filter,
    ) -> Result<Vec<ObservationRecord>> {
        let mut q = Q::new(OBS_COLS).scoped(c, "o.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND o.org_id = ").arg(o);
        }
        if let Some(s) = f.server {
            q = q.sql(" AND o.server_id = ").arg(s);
        }
        if let Some(v) = &f.state {
            q = q.sql(" AND o.state = ").arg(v.as_str());
        }
        if let Some(v) = &f.source {
            q = q.sql(" AND o.source = ").arg(v.as_str());
        }
        if let Some(v) = &f.ip {
            q = q.sql(" AND o.ip = ").arg(v.trim());
        }
        if let Some(a) = f.after {
            q = q.sql(" AND o.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY o.id LIMIT ").arg(f.limit());
        q.fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(obs_from)
            .collect()
    }

    /// One observation.
    pub async fn get_observation(&self, c: &Caller, id: i64) -> Result<ObservationRecord> {
        let r = Q::new(OBS_COLS)
            .sql(" AND o.id = ")
            .arg(id)
            .scoped(c, "o.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("observation"))?;
        obs_from(&r)
    }

    /// Deletes an observation (uploader of its organisation, or operator).
    pub async fn delete_observation(&self, c: &Caller, id: i64) -> Result<()> {
        c.require(Role::Uploader)?;
        let o = self.get_observation(c, id).await?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let n = Q::new("DELETE FROM observations WHERE id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            return Err(Error::NotFound("observation"));
        }
        let mut t = Touched::default();
        t.observation(o.org_id, o.server_id, &o.state, &o.seen);
        latest::apply(&mut tx, self.engine, c.org_scope(), &t).await?;
        self.audit(
            &mut *tx,
            Some(c),
            o.org_id,
            "observation.delete",
            format!("observation #{id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The unassigned queue (operators only).
    pub async fn list_unassigned(&self, c: &Caller, f: &Filter) -> Result<Vec<ObservationRecord>> {
        c.require(Role::Operator)?;
        let mut q = Q::new(&unassigned_sql(self.engine));
        if let Some(a) = f.after {
            q = q.sql(" AND o.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY o.id LIMIT ").arg(f.limit());
        q.fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(obs_from)
            .collect()
    }

    /// Moves an unassigned observation to an organisation (operators only). When that
    /// organisation already has the same row, the queued copy is dropped.
    pub async fn assign(&self, c: &Caller, id: i64, org: i64) -> Result<ObservationRecord> {
        c.require(Role::Operator)?;
        self.get_org(c, org).await?;
        let mut tx = self.begin_counted(c.org_scope()).await?;
        let r =
            Q::new("SELECT raw, host, ip, dedup, state, seen FROM observations WHERE org_id IS NULL AND id = ")
                .arg(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("unassigned observation"))?;
        let sha = get_s(&r, "dedup")?
            .split_once(':')
            .map(|(_, s)| s.to_string())
            .unwrap_or_default();
        let key = Self::dedup_key(Some(org), &sha);
        let existing = Q::new("SELECT id FROM observations WHERE dedup = ")
            .arg(key.clone())
            .fetch_optional(&mut *tx)
            .await?;
        let kept = if let Some(e) = existing {
            Q::new("DELETE FROM observations WHERE id = ")
                .arg(id)
                .execute(&mut *tx)
                .await?;
            get_i(&e, "id")?
        } else {
            let name = get_os(&r, "host")?.or(get_os(&r, "ip")?);
            let server = match name {
                Some(n) => Some(Self::server_id(&mut tx, org, &n).await?),
                None => None,
            };
            Q::new("UPDATE observations SET org_id = ")
                .arg(org)
                .sql(", server_id = ")
                .arg(server)
                .sql(", unassigned_reason = NULL, dedup = ")
                .arg(key)
                .sql(" WHERE id = ")
                .arg(id)
                .execute(&mut *tx)
                .await?;
            let mut t = Touched::default();
            t.observation(Some(org), server, &get_s(&r, "state")?, &get_s(&r, "seen")?);
            latest::apply(&mut tx, self.engine, c.org_scope(), &t).await?;
            id
        };
        self.audit(
            &mut *tx,
            Some(c),
            Some(org),
            "observation.assign",
            format!("observation #{id} to organisation #{org}"),
        )
        .await?;
        tx.commit().await?;
        self.get_observation(c, kept).await
    }

    /// The curve of exposed and compromised servers over time, per day (the remediation curve
    /// CERTs watched across rescans), for the caller's organisations or one of them: the counts
    /// kept per organisation and day (module `store::latest`), the fleet's in row 0.
    pub async fn trend(&self, c: &Caller, org: Option<i64>) -> Result<Vec<TrendPoint>> {
        let q = Q::new("SELECT d.day, d.exposed, d.compromised FROM org_days d WHERE 1 = 1")
            .scoped_counts(c, "d.org_id", org)
            .sql(" ORDER BY d.day");
        let rows = q.fetch_all(&mut *self.begin(c.org_scope()).await?).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(TrendPoint {
                day: get_s(&r, "day")?,
                exposed: get_i(&r, "exposed")?,
                compromised: get_i(&r, "compromised")?,
            });
        }
        // As text, in byte order (PostgreSQL's collation might order otherwise).
        out.sort_by(|a, b| a.day.cmp(&b.day));
        Ok(out)
    }

    /// Audit entries the caller may see.
    pub async fn list_audit(&self, c: &Caller, f: &Filter) -> Result<Vec<Value>> {
        let mut q = Q::new(
            "SELECT a.id, a.at, a.token_id, a.org_id, a.action, a.object FROM audit a WHERE 1 = 1",
        )
        .scoped(c, "a.org_id");
        if let Some(a) = f.after {
            q = q.sql(" AND a.id > ").arg(a);
        }
        let q = q.sql(" ORDER BY a.id LIMIT ").arg(f.limit());
        let mut out = Vec::new();
        let rows = q.fetch_all(&mut *self.begin(c.org_scope()).await?).await?;
        for r in rows {
            out.push(serde_json::json!({
                "id": get_i(&r, "id")?,
                "at": get_s(&r, "at")?,
                "token_id": get_oi(&r, "token_id")?,
                "org_id": get_oi(&r, "org_id")?,
                "action": get_s(&r, "action")?,
                "object": get_s(&r, "object")?,
            }));
        }
        Ok(out)
    }
}
