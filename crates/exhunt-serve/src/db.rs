//! The database: one pool over SQLite or PostgreSQL (sqlx's `Any` driver), the versioned
//! migrations of each engine, and a small query builder whose [`Q::scoped`] is where tenancy
//! becomes SQL.
//!
//! Queries are built at run time (no compile-time-checked macros, which would need a database
//! at build time), with `$n` placeholders, which both engines accept. Only portable SQL is used:
//! `BIGINT`/`TEXT` values, `ON CONFLICT … DO NOTHING`, `RETURNING`.

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Arguments};

use crate::error::{Error, Result};
use crate::tenancy::{Caller, OrgScope};

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The migrations of one engine, in version order: (version, description, SQL).
pub fn migrations(engine: Engine) -> &'static [(i64, &'static str, &'static str)] {
    match engine {
        Engine::Sqlite => SQLITE,
        Engine::Postgres => POSTGRES,
    }
}

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../migrations/sqlite/0002_sessions.sql"),
    ),
    (
        3,
        "row level security",
        include_str!("../migrations/sqlite/0003_row_level_security.sql"),
    ),
    (
        4,
        "observation campaigns",
        include_str!("../migrations/sqlite/0004_observation_campaigns.sql"),
    ),
    (
        5,
        "notifications",
        include_str!("../migrations/sqlite/0005_notifications.sql"),
    ),
    (
        6,
        "token creator",
        include_str!("../migrations/sqlite/0006_token_creator.sql"),
    ),
    (
        7,
        "tighter row security",
        include_str!("../migrations/sqlite/0007_tighter_row_security.sql"),
    ),
    (
        8,
        "scale",
        include_str!("../migrations/sqlite/0008_scale.sql"),
    ),
    (
        9,
        "users templates escalation",
        include_str!("../migrations/sqlite/0009_users_templates_escalation.sql"),
    ),
    (
        10,
        "ingest speed",
        include_str!("../migrations/sqlite/0010_ingest_speed.sql"),
    ),
    (
        11,
        "ingest hot",
        include_str!("../migrations/sqlite/0011_ingest_hot.sql"),
    ),
    (
        12,
        "ingest references",
        include_str!("../migrations/sqlite/0012_ingest_refs.sql"),
    ),
    (
        13,
        "reference check plan",
        include_str!("../migrations/sqlite/0013_refs_check_plan.sql"),
    ),
    (
        14,
        "stale statistics",
        include_str!("../migrations/sqlite/0014_stale_statistics.sql"),
    ),
];

const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../migrations/postgres/0002_sessions.sql"),
    ),
    (
        3,
        "row level security",
        include_str!("../migrations/postgres/0003_row_level_security.sql"),
    ),
    (
        4,
        "observation campaigns",
        include_str!("../migrations/postgres/0004_observation_campaigns.sql"),
    ),
    (
        5,
        "notifications",
        include_str!("../migrations/postgres/0005_notifications.sql"),
    ),
    (
        6,
        "token creator",
        include_str!("../migrations/postgres/0006_token_creator.sql"),
    ),
    (
        7,
        "tighter row security",
        include_str!("../migrations/postgres/0007_tighter_row_security.sql"),
    ),
    (
        8,
        "scale",
        include_str!("../migrations/postgres/0008_scale.sql"),
    ),
    (
        9,
        "users templates escalation",
        include_str!("../migrations/postgres/0009_users_templates_escalation.sql"),
    ),
    (
        10,
        "ingest speed",
        include_str!("../migrations/postgres/0010_ingest_speed.sql"),
    ),
    (
        11,
        "ingest hot",
        include_str!("../migrations/postgres/0011_ingest_hot.sql"),
    ),
    (
        12,
        "ingest references",
        include_str!("../migrations/postgres/0012_ingest_refs.sql"),
    ),
    (
        13,
        "reference check plan",
        include_str!("../migrations/postgres/0013_refs_check_plan.sql"),
    ),
    (
        14,
        "stale statistics",
        include_str!("../migrations/postgres/0014_stale_statistics.sql"),
    ),
];

fn migrator(engine: Engine) -> Migrator {
    let list: Vec<Migration> = migrations(engine)
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(list),
        ..Migrator::DEFAULT
    }
}

/// Opens a pool: `sqlite://path` (created when missing), `sqlite::memory:` (one connection, so
/// every query sees the same database) or `postgres://…`; then brings the schema up to date.
pub async fn open(url: &str) -> Result<(AnyPool, Engine)> {
    sqlx::any::install_default_drivers();
    let engine = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Engine::Postgres
    } else if url.starts_with("sqlite:") {
        Engine::Sqlite
    } else {
        return Err(Error::BadRequest(format!(
            "database URL {url:?}: expected sqlite://PATH or postgres://…"
        )));
    };
    let url = if engine == Engine::Sqlite && !url.contains('?') && !url.contains(":memory:") {
        Cow::Owned(format!("{url}?mode=rwc"))
    } else {
        Cow::Borrowed(url)
    };
    let opts = AnyConnectOptions::from_str(&url)?;
    let memory = url.contains(":memory:");
    let mut pool = AnyPoolOptions::new();
    if memory {
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        pool = pool.max_connections(8);
    }
    if engine == Engine::Sqlite {
        // On every connection of the pool (a PRAGMA is per connection): foreign keys on
        // (cascading deletes); a writer that waits up to 30 s for the lock instead of failing
        // at once; and, for a file, write-ahead logging, so readers never block the writer
        // nor the writer the readers. Waiting is not enough alone: a transaction that read
        // before it writes cannot wait (SQLite answers "database is locked" at once, to avoid
        // a deadlock), which is why write transactions begin with `BEGIN IMMEDIATE`
        // ([`begin_write`]).
        pool = pool.after_connect(move |conn, _meta| {
            Box::pin(async move {
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA busy_timeout = 30000")
                    .execute(&mut *conn)
                    .await?;
                if !memory {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        });
    }
    let pool = pool.connect_with(opts).await?;
    if engine == Engine::Postgres {
        refuse_rls_bypass(&pool).await?;
    }
    migrator(engine).run(&pool).await?;
    Ok((pool, engine))
}

/// A pool of one connection to `url`, opened when first used (for reads beside a writing
/// transaction; see [`crate::store::Store`]).
pub fn side_pool(url: &str) -> Result<AnyPool> {
    let opts = AnyConnectOptions::from_str(url)?;
    // A connection that cannot be had soon is read without (bulk.rs falls back to reading in
    // the upload's transaction), rather than waited for with the upload's locks held.
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy_with(opts))
}

/// Set to `1` to serve from PostgreSQL as a role that bypasses row-level security (superuser or
/// `BYPASSRLS`): the application's filter is then the only lock. Refused otherwise.
pub const ALLOW_RLS_BYPASS_ENV: &str = "EXHUNT_SERVE_ALLOW_RLS_BYPASS";

/// A superuser or a `BYPASSRLS` role is not held by row-level security: refused (unless
/// [`ALLOW_RLS_BYPASS_ENV`] is `1`, then a warning).
async fn refuse_rls_bypass(pool: &AnyPool) -> Result<()> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT current_user::text AS who, (rolsuper OR rolbypassrls) AS bypass FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let bypass: bool = row.try_get("bypass")?;
    if !bypass {
        return Ok(());
    }
    let who: String = row.try_get("who")?;
    let msg = format!(
        "PostgreSQL role {who:?} is a superuser or has BYPASSRLS: row-level security would not hold; connect as an ordinary role (NOSUPERUSER NOBYPASSRLS) that owns the database"
    );
    if std::env::var(ALLOW_RLS_BYPASS_ENV).is_ok_and(|v| v == "1") {
        tracing::warn!("{msg} ({ALLOW_RLS_BYPASS_ENV}=1: serving anyway)");
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{msg}, or set {ALLOW_RLS_BYPASS_ENV}=1 to serve anyway"
        )))
    }
}

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
/// taken (waiting for it up to the busy timeout) before the first read, so two concurrent
/// writers queue instead of one failing with "database is locked" when it upgrades its read
/// lock. PostgreSQL needs nothing of the kind (row locks, and `READ COMMITTED` retries a
/// conflicting statement itself).
pub async fn begin_write(
    pool: &AnyPool,
    engine: Engine,
) -> Result<sqlx::Transaction<'static, Any>> {
    Ok(match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => pool.begin().await?,
    })
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Integer.
    I(i64),
    /// Text.
    S(String),
    /// Nullable integer.
    NI(Option<i64>),
    /// Nullable text.
    NS(Option<String>),
    /// Bytes (PostgreSQL `bytea`).
    B(Vec<u8>),
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::B(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::S(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::S(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::NI(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::NS(v)
    }
}

/// SQL text and its arguments, built piece by piece.
#[derive(Debug, Clone, Default)]
pub struct Q {
    sql: String,
    args: Vec<Arg>,
    /// Where each placeholder starts in `sql`.
    marks: Vec<usize>,
}

impl Q {
    /// Starts with a fragment of SQL.
    pub fn new(sql: &str) -> Q {
        Q {
            sql: sql.to_string(),
            args: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Appends SQL.
    pub fn sql(mut self, s: &str) -> Q {
        self.sql.push_str(s);
        self
    }

    /// Binds a value and appends its placeholder.
    pub fn arg(mut self, a: impl Into<Arg>) -> Q {
        self.args.push(a.into());
        let n = self.args.len();
        self.marks.push(self.sql.len());
        self.sql.push_str(&format!("${n}"));
        self
    }

    /// Binds a value whose placeholder the SQL already holds (`$n`, numbered by the order of
    /// binding). PostgreSQL only: SQLite's `?` are placed where [`Q::arg`] marked them.
    pub fn bind(mut self, a: impl Into<Arg>) -> Q {
        self.args.push(a.into());
        self
    }

    /// THE tenancy filter: appends ` AND <column> = <caller's organisation>` unless the caller
    /// is an operator. `column` is a literal of this crate, never user input.
    pub fn scoped(self, caller: &Caller, column: &'static str) -> Q {
        match caller.org_scope() {
            OrgScope::All => self,
            OrgScope::One(org) => self.sql(" AND ").sql(column).sql(" = ").arg(org),
        }
    }

    /// The tenancy filter of the count tables (`org_stats`, `org_days`), whose row 0 is the
    /// whole fleet: [`Q::scoped`], then, for an operator who names no organisation, the fleet
    /// row; `org` narrows to one organisation (within the caller's scope, never widening it).
    pub fn scoped_counts(self, caller: &Caller, column: &'static str, org: Option<i64>) -> Q {
        let q = self.scoped(caller, column);
        match (caller.org_scope(), org) {
            (OrgScope::All, None) => q.sql(" AND ").sql(column).sql(" = 0"),
            (_, Some(o)) => q.sql(" AND ").sql(column).sql(" = ").arg(o),
            (OrgScope::One(_), None) => q,
        }
    }

    /// Appends `(a, b, …)` of integers as placeholders (an `IN` list; `(NULL)` when empty, which
    /// matches nothing).
    pub fn list(mut self, items: &[i64]) -> Q {
        if items.is_empty() {
            return self.sql("(NULL)");
        }
        self = self.sql("(");
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self = self.sql(", ");
            }
            self = self.arg(*v);
        }
        self.sql(")")
    }

    /// Appends ` IN` the integers `items`, bound as one JSON text: one value for the driver to
    /// bind, however many items, where [`Q::list`] binds one each (5,000 placeholders took 50
    /// ms to bind on PostgreSQL, measured). On PostgreSQL the set is an array (`= ANY`), which
    /// an index scans; `IN` a set-returning subquery was planned as a hash join over a whole
    /// table (0.14 s instead of 0.03 s for 4 organisations of 60,000, measured).
    pub fn in_ids(self, engine: Engine, items: &[i64]) -> Q {
        let json = serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
        match engine {
            Engine::Sqlite => self
                .sql(" IN (SELECT value FROM json_each(")
                .arg(json)
                .sql("))"),
            Engine::Postgres => self
                .sql(" = ANY(ARRAY(SELECT jsonb_array_elements_text(")
                .arg(json)
                .sql("::jsonb)::bigint))"),
        }
    }

    /// Appends `(a, b, …)` of texts as placeholders (`(NULL)` when empty).
    pub fn list_s(mut self, items: &[String]) -> Q {
        if items.is_empty() {
            return self.sql("(NULL)");
        }
        self = self.sql("(");
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self = self.sql(", ");
            }
            self = self.arg(v.as_str());
        }
        self.sql(")")
    }

    /// The statement for `engine`, once complete (no `arg` after this). On SQLite the `$n`
    /// placeholders become `?`: SQLite keeps named and numbered parameters in a list it searches
    /// once per parameter when preparing and again when binding, so a statement of thousands of
    /// `$n` (a multi-row `INSERT`) costs time quadratic in its parameters; anonymous `?` are
    /// numbered in order, which is the order `arg` bound them in.
    pub fn for_engine(self, engine: Engine) -> Q {
        if engine != Engine::Sqlite || self.marks.is_empty() {
            return self;
        }
        let mut sql = String::with_capacity(self.sql.len());
        let mut last = 0;
        for (i, &at) in self.marks.iter().enumerate() {
            sql.push_str(&self.sql[last..at]);
            sql.push('?');
            last = at + 1 + (i + 1).to_string().len();
        }
        sql.push_str(&self.sql[last..]);
        Q {
            sql,
            args: self.args,
            marks: Vec::new(),
        }
    }

    fn arguments(&self) -> Result<AnyArguments<'static>> {
        let mut a = AnyArguments::default();
        for arg in &self.args {
            // PostgreSQL cannot hold U+0000 in text (an error of the database, a 500, where the
            // request is at fault); refused alike on both engines, before the statement runs.
            if let Arg::S(v) | Arg::NS(Some(v)) = arg
                && v.contains('\0')
            {
                return Err(Error::BadRequest(
                    "text with a NUL character (U+0000): not accepted".into(),
                ));
            }
            let r = match arg {
                Arg::I(v) => a.add(*v),
                Arg::S(v) => a.add(v.clone()),
                Arg::NI(v) => a.add(*v),
                Arg::NS(v) => a.add(v.clone()),
                Arg::B(v) => a.add(v.clone()),
            };
            r.map_err(|e| Error::Db(sqlx::Error::Encode(e)))?;
        }
        Ok(a)
    }

    /// Runs the query and returns every row.
    pub async fn fetch_all<'e, E>(&self, ex: E) -> Result<Vec<AnyRow>>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let args = self.arguments()?;
        Ok(sqlx::query_with(&self.sql, args).fetch_all(ex).await?)
    }

    /// Runs the query and returns the first row, if any.
    pub async fn fetch_optional<'e, E>(&self, ex: E) -> Result<Option<AnyRow>>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let args = self.arguments()?;
        Ok(sqlx::query_with(&self.sql, args).fetch_optional(ex).await?)
    }

    /// Runs the statement and returns the number of rows it changed.
    pub async fn execute<'e, E>(&self, ex: E) -> Result<u64>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let args = self.arguments()?;
        Ok(sqlx::query_with(&self.sql, args)
            .execute(ex)
            .await?
            .rows_affected())
    }
}

/// Now, as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time as stored.
pub fn fmt_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
