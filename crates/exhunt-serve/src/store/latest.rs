//! What the dashboard counts, kept up to date inside the transaction that changes it
//! (migration 8): each server's latest state, and the exposure curve per organisation and day.
//!
//! A change says what it touched ([`Touched`]). Rows it added are folded into the servers'
//! stored latest state (the latest of a set with rows added is the later of the stored latest
//! and the added rows', by the same order — time, then id); servers that lost or moved a row
//! are recomputed from their stored scans and observations; added rows are counted into the
//! curve row by row ([`count_added_days`]), and the (organisation, day) pairs of removed or
//! moved rows and of scans are recounted ([`recount_days`]). The rules are the dashboard's
//! ([`dashboard_state`], the curve of [`TrendPoint`](super::TrendPoint)), so the counts equal
//! a recount by construction; an upload's work is bounded by its own rows, not by the servers'
//! histories nor by the fleet.
//! The counts by state (`org_stats`) follow the servers' rows through triggers (migration 8).
//!
//! Transactions that change these counts begin with [`Store::begin_counted`](super::Store):
//! on PostgreSQL they take [`COUNTS_LOCK`] first.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{
    CAMPAIGNS, STATES, dashboard_state, dashboard_state_sql, get_i, get_oi, get_os, get_s,
};
use crate::db::{Engine, Q};
use crate::error::Result;
use crate::tenancy::OrgScope;

/// The column of each campaign's state in `servers`, in [`CAMPAIGNS`]' order.
pub(crate) const CAMPAIGN_COLUMNS: [&str; 4] = ["st_pl", "st_ps", "st_pns", "st_post"];

/// Rows per `IN (…)` list.
const CHUNK: usize = 500;

/// Servers per `UPDATE` (17 values each).
const UPDATE_ROWS: usize = 200;

/// A pair of the curve: (organisation, `YYYY-MM-DD`).
pub(crate) type DayKey = (i64, String);

/// The 30 counts by state of a row of `org_stats` (all but `servers`), in order: each
/// (count column, `servers` column, state), the overall state first, then each campaign's.
pub(crate) fn state_counts() -> Vec<(String, &'static str, &'static str)> {
    let mut out = Vec::new();
    for (prefix, col) in [
        ("s", "state"),
        ("pl", "st_pl"),
        ("ps", "st_ps"),
        ("pns", "st_pns"),
        ("post", "st_post"),
    ] {
        for st in STATES {
            out.push((format!("{prefix}_{st}"), col, st));
        }
    }
    out
}

/// How far the fold moved each organisation's counts by state (PostgreSQL): per organisation,
/// one number per column of [`state_counts`], its servers that left a state counted negative.
pub(crate) type Moves = BTreeMap<i64, Vec<i64>>;

/// What one change touched: servers whose latest state is recomputed from their history (a
/// row of theirs was removed or moved), observation rows added (by id range: folded into
/// their servers' stored latest state, see [`fold_added`], and counted into the curve, see
/// [`count_added_days`]), curve days to recount (removed or moved rows, scans).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub servers: BTreeSet<i64>,
    added: Option<(i64, i64)>,
    pub days: BTreeSet<DayKey>,
}

impl Touched {
    /// An observation of `server` in `org` with `state` seen at `seen`, moved or removed: the
    /// server's latest state is recomputed from its history.
    pub fn observation(&mut self, org: Option<i64>, server: Option<i64>, state: &str, seen: &str) {
        if let Some(s) = server {
            self.servers.insert(s);
            self.day(org, state, seen);
        }
    }

    fn day(&mut self, org: Option<i64>, state: &str, seen: &str) {
        if let Some(o) = org
            && matches!(state, "vulnerable" | "compromised")
        {
            self.days.insert((o, day(seen)));
        }
    }

    /// A new observation row `id` (of a server or not): folded into its server's stored
    /// latest state, and counted into the curve ([`count_added_days`]).
    pub fn added_observation(&mut self, id: i64) {
        self.added = Some(match self.added {
            Some((lo, hi)) => (lo.min(id), hi.max(id)),
            None => (id, id),
        });
    }

    /// A scan result of `server` in `org` with `verdict` finished at `finished`.
    pub fn scan(&mut self, org: i64, server: i64, verdict: &str, finished: &str) {
        self.servers.insert(server);
        if verdict == "compromised" {
            self.days.insert((org, day(finished)));
        }
    }
}

fn day(t: &str) -> String {
    t.chars().take(10).collect()
}

fn json_map(s: Option<&str>) -> serde_json::Map<String, Value> {
    s.and_then(|t| serde_json::from_str::<serde_json::Map<String, Value>>(t).ok())
        .unwrap_or_default()
}

/// A server's latest state, as migration 8's columns hold it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Latest {
    result: Option<(i64, String, String, String)>, // id, verdict, verdicts, finished
    obs: Option<(i64, String, String, String)>,    // id, state, campaigns, seen
    build: Option<(i64, String, String)>,          // id, build, seen
}

/// `(time, id)` later than `than`'s (none: anything is later).
fn later(time: &str, id: i64, than: Option<(&str, i64)>) -> bool {
    than.is_none_or(|c| c < (time, id))
}

impl Latest {
    fn fold_result(&mut self, id: i64, verdict: String, verdicts: String, finished: String) {
        if later(
            &finished,
            id,
            self.result.as_ref().map(|c| (c.3.as_str(), c.0)),
        ) {
            self.result = Some((id, verdict, verdicts, finished));
        }
    }

    fn fold_obs(&mut self, id: i64, state: &str, campaigns: &str, seen: &str, build: Option<&str>) {
        if let Some(b) = build
            && later(seen, id, self.build.as_ref().map(|c| (c.2.as_str(), c.0)))
        {
            self.build = Some((id, b.to_string(), seen.to_string()));
        }
        if later(seen, id, self.obs.as_ref().map(|c| (c.3.as_str(), c.0))) {
            self.obs = Some((
                id,
                state.to_string(),
                campaigns.to_string(),
                seen.to_string(),
            ));
        }
    }

    /// The ids the state was computed from.
    fn ids(&self) -> [Option<i64>; 3] {
        [
            self.result.as_ref().map(|x| x.0),
            self.obs.as_ref().map(|x| x.0),
            self.build.as_ref().map(|x| x.0),
        ]
    }

    fn states(&self) -> (String, Vec<String>) {
        let verdicts = json_map(self.result.as_ref().map(|r| r.2.as_str()));
        let exposure = json_map(self.obs.as_ref().map(|o| o.2.as_str()));
        let per = CAMPAIGNS
            .iter()
            .map(|k| {
                dashboard_state(
                    verdicts.get(*k).and_then(Value::as_str),
                    exposure.get(*k).and_then(Value::as_str),
                )
                .to_string()
            })
            .collect();
        let overall = dashboard_state(
            self.result.as_ref().map(|r| r.1.as_str()),
            self.obs.as_ref().map(|o| o.1.as_str()),
        );
        (overall.to_string(), per)
    }
}

/// The PostgreSQL advisory lock taken by every transaction that changes servers' latest state
/// or their counts ("exhunt-c" in ASCII): their triggers all move the fleet's row of
/// `org_stats`, so such transactions run one at a time anyway; taken first, before any row
/// lock, two of them cannot deadlock (one holding the fleet's row and waiting for a server row
/// the other holds), and the second reads what the first committed.
const COUNTS_LOCK: i64 = 0x6578_6875_6e74_2d63;

/// Takes [`COUNTS_LOCK`] (PostgreSQL; SQLite's writers are serialised by `BEGIN IMMEDIATE`).
pub(crate) async fn lock_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
) -> Result<()> {
    if engine == Engine::Postgres {
        Q::new("SELECT pg_advisory_xact_lock(")
            .arg(COUNTS_LOCK)
            .sql(")")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Pauses the count triggers of servers' inserts and updates for the rest of the transaction
/// (SQLite: a row in `counts_paused`, migration 10; PostgreSQL: `exhunt.counts_paused`,
/// migration 12). The caller must end with [`resume_counts`] for every organisation whose
/// servers it made or changed.
pub(crate) async fn pause_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
) -> Result<()> {
    let q = match engine {
        Engine::Sqlite => Q::new("INSERT INTO counts_paused (id) VALUES (1)"),
        Engine::Postgres => Q::new("SELECT set_config('exhunt.counts_paused', '1', true)"),
    };
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Moves each organisation's row of `org_stats` in `moves`, and the fleet's by their sum, in
/// one statement (PostgreSQL; `moves` is empty on SQLite): no server of theirs is read again,
/// where a recount reads every server of each organisation, however many the upload moved.
/// Returns the organisations that have no row to move.
async fn move_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    moves: &Moves,
) -> Result<Vec<i64>> {
    if moves.is_empty() || engine != Engine::Postgres {
        return Ok(Vec::new());
    }
    let counts = state_counts();
    let rows: Vec<Value> = moves
        .iter()
        .map(|(org, by)| {
            let mut row = vec![Value::from(*org)];
            row.extend(by.iter().map(|n| Value::from(*n)));
            Value::Array(row)
        })
        .collect();
    let read: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, (c, _, _))| format!("(e ->> {})::bigint AS {c}", i + 1))
        .collect();
    let moved = |from: &str| -> String {
        counts
            .iter()
            .map(|(c, _, _)| format!("{c} = org_stats.{c} + {from}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sums: Vec<String> = counts
        .iter()
        .map(|(c, _, _)| format!("COALESCE(SUM(d.{c}), 0) AS {c}"))
        .collect();
    let unmoved = Q::new(&format!(
        "WITH d AS MATERIALIZED (SELECT (e ->> 0)::bigint AS org_id, {} \
         FROM jsonb_array_elements(",
        read.join(", ")
    ))
    .arg(Value::Array(rows).to_string())
    .sql(&format!(
        "::jsonb) AS t(e)), \
         u AS (UPDATE org_stats SET {} FROM d WHERE org_stats.org_id = d.org_id \
         AND d.org_id <> 0 RETURNING org_stats.org_id), \
         f AS (UPDATE org_stats SET {} FROM (SELECT {} FROM d JOIN u ON u.org_id = d.org_id) AS m \
         WHERE org_stats.org_id = 0 RETURNING 1) \
         SELECT d.org_id AS org_id FROM d WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.org_id = d.org_id)",
        moved("d"),
        moved("m"),
        sums.join(", ")
    ))
    .fetch_all(&mut **tx)
    .await?;
    unmoved.iter().map(|r| get_i(r, "org_id")).collect()
}

/// Ends [`pause_counts`]: moves the rows of `org_stats` of the organisations in `moves` by as
/// much as the fold moved them (PostgreSQL; no organisation in `orgs`), and recounts `orgs`'
/// servers by state (once per organisation, where the paused triggers would have rewritten its
/// row once per statement), and the fleet's row: on SQLite the sum of the organisations', on
/// PostgreSQL moved by as much as theirs move. The counts are written with the operator's
/// scope (PostgreSQL, as the triggers write them); `scope` is the caller's, put back.
pub(crate) async fn resume_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    scope: OrgScope,
    orgs: &[i64],
    moves: &Moves,
) -> Result<()> {
    match engine {
        Engine::Sqlite => Q::new("DELETE FROM counts_paused"),
        Engine::Postgres => Q::new("SELECT set_config('exhunt.counts_paused', '', true)"),
    }
    .execute(&mut **tx)
    .await?;
    set_scope(tx, engine, OrgScope::All).await?;
    // An organisation without its row (none, normally: it is made with the organisation) is
    // recounted instead.
    let unmoved = move_counts(tx, engine, moves).await?;
    let mut all;
    let orgs = if unmoved.is_empty() {
        orgs
    } else {
        all = orgs.to_vec();
        all.extend(unmoved);
        all.sort_unstable();
        all.dedup();
        &all[..]
    };
    // Counted from the servers grouped by their five states first (a few groups per
    // organisation), each count then a sum over the groups: 31 conditions per group, not per
    // server.
    let mut cols = vec!["servers".to_string()];
    let mut sums = vec!["SUM(n)".to_string()];
    for (count, col, st) in state_counts() {
        cols.push(count);
        sums.push(format!("SUM(CASE WHEN {col} = '{st}' THEN n ELSE 0 END)"));
    }
    let set: Vec<String> = cols.iter().map(|c| format!("{c} = c.{c}")).collect();
    // A row whose counts stay is not rewritten.
    let changed: Vec<String> = cols
        .iter()
        .map(|c| format!("org_stats.{c} <> c.{c}"))
        .collect();
    let counted: Vec<String> = sums
        .iter()
        .zip(&cols)
        .map(|(s, c)| format!("{s} AS {c}"))
        .collect();
    if !orgs.is_empty() {
        // Every organisation has its row (made with it): only a missing one is made.
        Q::new("INSERT INTO org_stats (org_id) SELECT id FROM orgs WHERE id")
            .in_ids(engine, orgs)
            .sql(
                " AND NOT EXISTS (SELECT 1 FROM org_stats s WHERE s.org_id = orgs.id) \
                 ON CONFLICT (org_id) DO NOTHING",
            )
            .for_engine(engine)
            .execute(&mut **tx)
            .await?;
        // `c`: the organisations' counts; then their rows are set from it, and (PostgreSQL)
        // the fleet's row moved by as much as theirs move, in the same statement (each part of
        // it reads the rows as they were before it): no sum over every organisation's row
        // (60,000 of them: 36 ms, measured).
        let update = format!(
            "UPDATE org_stats SET {} FROM c WHERE org_stats.org_id = c.org_id AND ({})",
            set.join(", "),
            changed.join(" OR ")
        );
        let tail = match engine {
            Engine::Sqlite => update,
            Engine::Postgres => {
                let moved: Vec<String> = cols
                    .iter()
                    .map(|c| format!("{c} = org_stats.{c} + d.{c}"))
                    .collect();
                let delta: Vec<String> = cols
                    .iter()
                    .map(|c| format!("COALESCE(SUM(c.{c} - o.{c}), 0) AS {c}"))
                    .collect();
                format!(
                    ", u AS ({update} RETURNING 1) UPDATE org_stats SET {} FROM (SELECT {} \
                     FROM c JOIN org_stats o ON o.org_id = c.org_id) AS d WHERE org_stats.org_id = 0",
                    moved.join(", "),
                    delta.join(", ")
                )
            }
        };
        let materialized = match engine {
            Engine::Sqlite => "",
            Engine::Postgres => "MATERIALIZED ",
        };
        Q::new(&format!(
            "WITH c AS {materialized}(SELECT org_id, {} FROM (SELECT org_id, state, st_pl, st_ps, \
             st_pns, st_post, COUNT(*) AS n FROM servers WHERE org_id",
            counted.join(", ")
        ))
        .in_ids(engine, orgs)
        .sql(" GROUP BY org_id, state, st_pl, st_ps, st_pns, st_post) AS g GROUP BY org_id) ")
        .sql(&tail)
        .for_engine(engine)
        .execute(&mut **tx)
        .await?;
    }
    if engine == Engine::Sqlite {
        // The fleet's row: the sum of the organisations'.
        // (COALESCE: with no organisation there is no row to sum.)
        let fleet: Vec<String> = cols
            .iter()
            .map(|c| format!("COALESCE(SUM({c}), 0) AS {c}"))
            .collect();
        Q::new(&format!(
            "UPDATE org_stats SET {} FROM (SELECT {} FROM org_stats WHERE org_id <> 0) AS c \
             WHERE org_stats.org_id = 0",
            set.join(", "),
            fleet.join(", ")
        ))
        .execute(&mut **tx)
        .await?;
    }
    set_scope(tx, engine, scope).await?;
    Ok(())
}

/// Sets `exhunt.org` of the transaction (PostgreSQL; nothing on SQLite).
pub(crate) async fn set_scope(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    scope: OrgScope,
) -> Result<()> {
    if engine == Engine::Postgres {
        Q::new("SELECT set_config('exhunt.org', ")
            .arg(super::scope_value(scope))
            .sql(", true)")
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Recomputes `ids`' latest state from all their scans and observations.
async fn from_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    ids: &[i64],
) -> Result<BTreeMap<i64, Latest>> {
    let mut latest: BTreeMap<i64, Latest> = ids.iter().map(|i| (*i, Latest::default())).collect();
    if ids.is_empty() {
        return Ok(latest);
    }
    let rows = Q::new(
        "SELECT server_id, id, verdict, verdicts, finished FROM scan_results WHERE server_id IN ",
    )
    .list(ids)
    .for_engine(engine)
    .fetch_all(&mut **tx)
    .await?;
    for r in rows {
        if let Some(l) = latest.get_mut(&get_i(&r, "server_id")?) {
            l.fold_result(
                get_i(&r, "id")?,
                get_s(&r, "verdict")?,
                get_s(&r, "verdicts")?,
                get_s(&r, "finished")?,
            );
        }
    }
    let rows = Q::new(
        "SELECT server_id, id, state, campaigns, seen, build FROM observations WHERE server_id IN ",
    )
    .list(ids)
    .for_engine(engine)
    .fetch_all(&mut **tx)
    .await?;
    for r in rows {
        if let Some(l) = get_oi(&r, "server_id")?.and_then(|s| latest.get_mut(&s)) {
            l.fold_obs(
                get_i(&r, "id")?,
                &get_s(&r, "state")?,
                &get_s(&r, "campaigns")?,
                &get_s(&r, "seen")?,
                get_os(&r, "build")?.as_deref(),
            );
        }
    }
    Ok(latest)
}

/// Recomputes the latest state of `servers` from their scans and observations, and writes the
/// servers whose state changed (the triggers then move their counts). In id order.
async fn refresh_servers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    servers: &BTreeSet<i64>,
) -> Result<()> {
    let ids: Vec<i64> = servers.iter().copied().collect();
    for chunk in ids.chunks(CHUNK) {
        let rows = Q::new(
            "SELECT id, latest_v, last_result_id, last_obs_id, last_build_obs_id FROM servers WHERE id IN ",
        )
        .list(chunk)
        .for_engine(engine)
        .fetch_all(&mut **tx)
        .await?;
        let now = from_history(tx, engine, chunk).await?;
        let mut changed = Vec::new();
        for r in rows {
            let id = get_i(&r, "id")?;
            let Some(l) = now.get(&id) else { continue };
            let stored = [
                get_oi(&r, "last_result_id")?,
                get_oi(&r, "last_obs_id")?,
                get_oi(&r, "last_build_obs_id")?,
            ];
            if get_i(&r, "latest_v")? != 1 || stored != l.ids() {
                changed.push((id, l.clone()));
            }
        }
        write_latest(tx, engine, &changed).await?;
    }
    Ok(())
}

/// Writes servers' latest state, [`UPDATE_ROWS`] servers per statement (PostgreSQL's count
/// trigger runs once per statement).
async fn write_latest(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    changed: &[(i64, Latest)],
) -> Result<()> {
    for part in changed.chunks(UPDATE_ROWS) {
        let mut q = Q::new(
            "UPDATE servers SET latest_v = 1, last_result_id = v.column2, last_verdict = v.column3, \
            last_verdicts = v.column4, last_scanned = v.column5, last_obs_id = v.column6, last_state = v.column7, \
            last_campaigns = v.column8, last_observed = v.column9, last_build_obs_id = v.column10, \
            last_build = v.column11, last_build_seen = v.column12, state = v.column13, st_pl = v.column14, \
            st_ps = v.column15, st_pns = v.column16, st_post = v.column17 FROM (VALUES ",
        );
        for (i, (id, l)) in part.iter().enumerate() {
            let (state, per) = l.states();
            q = q
                .sql(if i > 0 { ", (" } else { "(" })
                .arg(*id)
                .sql(", ")
                .arg(l.result.as_ref().map(|x| x.0))
                .sql(", ")
                .arg(l.result.as_ref().map(|x| x.1.clone()))
                .sql(", ")
                .arg(l.result.as_ref().map(|x| x.2.clone()))
                .sql(", ")
                .arg(l.result.as_ref().map(|x| x.3.clone()))
                .sql(", ")
                .arg(l.obs.as_ref().map(|x| x.0))
                .sql(", ")
                .arg(l.obs.as_ref().map(|x| x.1.clone()))
                .sql(", ")
                .arg(l.obs.as_ref().map(|x| x.2.clone()))
                .sql(", ")
                .arg(l.obs.as_ref().map(|x| x.3.clone()))
                .sql(", ")
                .arg(l.build.as_ref().map(|x| x.0))
                .sql(", ")
                .arg(l.build.as_ref().map(|x| x.1.clone()))
                .sql(", ")
                .arg(l.build.as_ref().map(|x| x.2.clone()))
                .sql(", ")
                .arg(state);
            for st in per {
                q = q.sql(", ").arg(st);
            }
            q = q.sql(")");
        }
        q.sql(") AS v WHERE servers.id = v.column1")
            .for_engine(engine)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A JSON column's member `key`, as text (a string member; NULL when absent): on SQLite of a
/// JSON text, on PostgreSQL of a `jsonb` value (parsed once per row by the caller: `::json`
/// would parse the text again for each member read).
fn member(engine: Engine, col: &str, key: &str) -> String {
    match engine {
        Engine::Sqlite => format!("json_extract({col}, '$.\"{key}\"')"),
        Engine::Postgres => format!("({col} ->> '{key}')"),
    }
}

/// Folds the observations with ids `lo..=hi` into their servers' stored latest state, in the
/// database: per server the latest of those rows (by time, then id) replaces the stored latest
/// observation (and build) when it is later, and the server's states follow
/// ([`dashboard_state_sql`], the rules of [`dashboard_state`]). The latest of a set with rows
/// added is the later of its latest and the added rows', so this equals a recomputation from
/// the whole history, without reading it (any other row in the range is one of the server's
/// rows, so folding it is right too). Returns the servers in the range whose state was never
/// computed (`latest_v = 0`: recomputed from their history by the caller), and on PostgreSQL
/// how far it moved the counts by state of each organisation whose servers' states (overall or
/// of a campaign) it moved (SQLite: not told).
async fn fold_added(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    lo: i64,
    hi: i64,
) -> Result<(BTreeSet<i64>, Option<Moves>)> {
    // Per server, in one statement (each server row rewritten once): its latest added row
    // (r.id, …) and its latest added row with a build (r.b_id, …; none: NULL), both read in
    // one pass over the added rows by two windows (no join of two window subqueries: a
    // planner's guess of one row per side made a nested loop of it). The inner query `n`
    // says once per server whether each part of the stored state moves (`ol`, `bl`: the added
    // row is later) and reads the two JSON columns once (`vj`, `cj`); PostgreSQL keeps it a
    // query of its own (OFFSET 0), as otherwise it copies each expression into every place
    // that reads it (the JSON texts were parsed two dozen times per server, measured).
    let obs_later = "(s.last_obs_id IS NULL OR s.last_observed < r.seen \
        OR (s.last_observed = r.seen AND s.last_obs_id < r.id))";
    let build_later = "(r.b_id IS NOT NULL AND (s.last_build_obs_id IS NULL \
        OR s.last_build_seen < r.b_seen \
        OR (s.last_build_seen = r.b_seen AND s.last_build_obs_id < r.b_id)))";
    let (vj, cj, fence) = match engine {
        Engine::Sqlite => ("s.last_verdicts", "r.campaigns", ""),
        Engine::Postgres => (
            "(s.last_verdicts)::jsonb",
            "(r.campaigns)::jsonb",
            " OFFSET 0",
        ),
    };
    let when = |flag: &str, col: &str, value: String| {
        format!("{col} = CASE WHEN n.{flag} THEN {value} ELSE servers.{col} END")
    };
    let mut set = vec![
        when("ol", "last_obs_id", "n.id".into()),
        when("ol", "last_state", "n.state".into()),
        when("ol", "last_campaigns", "n.campaigns".into()),
        when("ol", "last_observed", "n.seen".into()),
        when("ol", "state", dashboard_state_sql("n.lv", "n.state")),
    ];
    for (k, col) in CAMPAIGNS.iter().zip(CAMPAIGN_COLUMNS) {
        set.push(when(
            "ol",
            col,
            dashboard_state_sql(&member(engine, "n.vj", k), &member(engine, "n.cj", k)),
        ));
    }
    set.push(when("bl", "last_build_obs_id", "n.b_id".into()));
    set.push(when("bl", "last_build", "n.b_build".into()));
    set.push(when("bl", "last_build_seen", "n.b_seen".into()));
    // PostgreSQL: each server's states before (`o_*`, read by `n`) and after the update, in
    // RETURNING; per organisation whose servers' states moved, how far each count by state
    // moves (a server entering a state counts 1, leaving it -1).
    let moves: Vec<String> = state_counts()
        .iter()
        .map(|(c, col, st)| {
            format!(
                "SUM(CASE WHEN f.{col} = '{st}' THEN 1 ELSE 0 END \
                 - CASE WHEN f.o_{col} = '{st}' THEN 1 ELSE 0 END) AS {c}"
            )
        })
        .collect();
    let returning = format!(
        " RETURNING servers.org_id AS org_id, servers.state AS state, servers.st_pl AS st_pl, \
         servers.st_ps AS st_ps, servers.st_pns AS st_pns, servers.st_post AS st_post, \
         n.o_state AS o_state, n.o_st_pl AS o_st_pl, n.o_st_ps AS o_st_ps, \
         n.o_st_pns AS o_st_pns, n.o_st_post AS o_st_post) \
         SELECT f.org_id AS org_id, {} FROM f WHERE (f.state, f.st_pl, f.st_ps, f.st_pns, \
         f.st_post) IS DISTINCT FROM (f.o_state, f.o_st_pl, f.o_st_ps, f.o_st_pns, f.o_st_post) \
         GROUP BY f.org_id",
        moves.join(", ")
    );
    let (with, before, moved) = match engine {
        Engine::Sqlite => ("", "", ""),
        Engine::Postgres => (
            "WITH f AS (",
            "s.state AS o_state, s.st_pl AS o_st_pl, s.st_ps AS o_st_ps, s.st_pns AS o_st_pns, \
             s.st_post AS o_st_post, ",
            returning.as_str(),
        ),
    };
    let folded = Q::new(&format!(
        "{with}UPDATE servers SET {} FROM (SELECT s.id AS sid, r.id, r.seen, r.state, r.campaigns, \
         r.b_id, r.b_build, r.b_seen, s.last_verdict AS lv, {vj} AS vj, {cj} AS cj, {before}\
         {obs_later} AS ol, {build_later} AS bl \
         FROM (SELECT server_id, id, seen, state, campaigns, \
         CASE WHEN b_build IS NULL THEN NULL ELSE b_id END AS b_id, b_build, \
         CASE WHEN b_build IS NULL THEN NULL ELSE b_seen END AS b_seen \
         FROM (SELECT server_id, id, seen, state, campaigns, ROW_NUMBER() OVER w AS rn, \
         FIRST_VALUE(id) OVER b AS b_id, FIRST_VALUE(build) OVER b AS b_build, FIRST_VALUE(seen) OVER b AS b_seen \
         FROM observations WHERE server_id IS NOT NULL AND id >= ",
        set.join(", ")
    ))
    .arg(lo)
    .sql(" AND id <= ")
    .arg(hi)
    .sql(&format!(
        " WINDOW w AS (PARTITION BY server_id ORDER BY seen DESC, id DESC), \
         b AS (PARTITION BY server_id ORDER BY build IS NULL, seen DESC, id DESC)) AS x WHERE rn = 1) AS r \
         JOIN servers s ON s.id = r.server_id WHERE s.latest_v = 1 AND ({obs_later} OR {build_later}){fence}) AS n \
         WHERE servers.id = n.sid{moved}"
    ))
    .for_engine(engine)
    .fetch_all(&mut **tx)
    .await?;
    let moved = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => {
            let counts = state_counts();
            let mut out = Moves::new();
            for r in &folded {
                let by = counts
                    .iter()
                    .map(|(c, _, _)| get_i(r, c))
                    .collect::<Result<Vec<i64>>>()?;
                out.insert(get_i(r, "org_id")?, by);
            }
            Some(out)
        }
    };
    // Such servers are few (none, normally): found by their index (servers_uncomputed,
    // migration 12), each then probed for a row in the range.
    let rows = Q::new(
        "SELECT s.id AS id FROM servers s WHERE s.latest_v = 0 AND EXISTS \
         (SELECT 1 FROM observations o WHERE o.server_id = s.id AND o.id >= ",
    )
    .arg(lo)
    .sql(" AND o.id <= ")
    .arg(hi)
    .sql(")")
    .for_engine(engine)
    .fetch_all(&mut **tx)
    .await?;
    let uncomputed = rows.iter().map(|r| get_i(r, "id")).collect::<Result<_>>()?;
    Ok((uncomputed, moved))
}

/// The curve's counts of `days` as the observations and scans say now.
async fn count_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    days: &BTreeSet<DayKey>,
) -> Result<BTreeMap<DayKey, (i64, i64)>> {
    let mut out: BTreeMap<DayKey, (i64, i64)> = BTreeMap::new();
    let orgs: Vec<i64> = days
        .iter()
        .map(|k| k.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let all_days: Vec<String> = days
        .iter()
        .map(|k| k.1.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in orgs.chunks(CHUNK) {
        for d in all_days.chunks(CHUNK) {
            let rows = Q::new(
                "SELECT o.org_id AS org_id, substr(o.seen, 1, 10) AS day, \
                 COUNT(DISTINCT CASE WHEN o.state = 'vulnerable' THEN o.server_id END) AS exposed, \
                 COUNT(DISTINCT CASE WHEN o.state = 'compromised' THEN o.server_id END) AS compromised \
                 FROM observations o WHERE o.server_id IS NOT NULL AND o.state IN ('vulnerable', 'compromised') AND o.org_id IN ",
            )
            .list(chunk)
            .sql(" AND substr(o.seen, 1, 10) IN ")
            .list_s(d)
            .sql(" GROUP BY o.org_id, substr(o.seen, 1, 10)")
            .for_engine(engine)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                let k = (get_i(&r, "org_id")?, get_s(&r, "day")?);
                if days.contains(&k) {
                    let e = out.entry(k).or_default();
                    e.0 += get_i(&r, "exposed")?;
                    e.1 += get_i(&r, "compromised")?;
                }
            }
            let rows = Q::new(
                "SELECT r.org_id AS org_id, substr(r.finished, 1, 10) AS day, COUNT(DISTINCT r.server_id) AS n \
                 FROM scan_results r WHERE r.verdict = 'compromised' AND r.org_id IN ",
            )
            .list(chunk)
            .sql(" AND substr(r.finished, 1, 10) IN ")
            .list_s(d)
            .sql(" GROUP BY r.org_id, substr(r.finished, 1, 10)")
            .for_engine(engine)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                let k = (get_i(&r, "org_id")?, get_s(&r, "day")?);
                if days.contains(&k) {
                    out.entry(k).or_default().1 += get_i(&r, "n")?;
                }
            }
        }
    }
    Ok(out)
}

/// The stored curve of `days`.
async fn stored_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    days: &BTreeSet<DayKey>,
) -> Result<BTreeMap<DayKey, (i64, i64)>> {
    let mut out = BTreeMap::new();
    let orgs: Vec<i64> = days
        .iter()
        .map(|k| k.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in orgs.chunks(CHUNK) {
        let rows =
            Q::new("SELECT org_id, day, exposed, compromised FROM org_days WHERE org_id IN ")
                .list(chunk)
                .for_engine(engine)
                .fetch_all(&mut **tx)
                .await?;
        for r in rows {
            let k = (get_i(&r, "org_id")?, get_s(&r, "day")?);
            if days.contains(&k) {
                out.insert(k, (get_i(&r, "exposed")?, get_i(&r, "compromised")?));
            }
        }
    }
    Ok(out)
}

/// Counts the observations with ids `lo..=hi` (all added by this transaction) into the curve:
/// a row moves its (organisation, day) by one server when no other row of that server, state
/// and organisation is stored for that day (the curve counts distinct servers), and the
/// fleet's day (organisation 0) by the sum. The same counts as [`recount_days`] of the rows'
/// days, without reading those days' other rows: one look-up per added row in
/// `observations_server` (server, time). An upload spread over 25,000 (organisation, day)
/// pairs spent seconds recounting them (measured). Counts only grow here, so no row goes to 0.
async fn count_added_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    scope: OrgScope,
    lo: i64,
    hi: i64,
) -> Result<()> {
    set_scope(tx, engine, OrgScope::All).await?;
    // The day's rows of a server run from "YYYY-MM-DD" to "YYYY-MM-DD~" ('~' sorts after every
    // character of an RFC 3339 time; `seen` compares bytewise on both engines), found by the
    // index (server_id, seen). `+ 0` keeps the organisation out of the index choice: before
    // the table has statistics, PostgreSQL took (org_id, seen) for it, which for a large
    // organisation reads all its rows of the day per probe (25 s for one upload, measured).
    Q::new(
        "WITH n AS (SELECT org_id, day, \
         SUM(CASE WHEN state = 'vulnerable' THEN 1 ELSE 0 END) AS e, \
         SUM(CASE WHEN state = 'compromised' THEN 1 ELSE 0 END) AS c \
         FROM (SELECT DISTINCT o.org_id AS org_id, substr(o.seen, 1, 10) AS day, o.state AS state, o.server_id AS server_id \
         FROM observations o WHERE o.server_id IS NOT NULL AND o.org_id IS NOT NULL \
         AND o.state IN ('vulnerable', 'compromised') AND o.id >= ",
    )
    .arg(lo)
    .sql(" AND o.id <= ")
    .arg(hi)
    .sql(
        " AND NOT EXISTS (SELECT 1 FROM observations p WHERE p.server_id = o.server_id \
         AND p.seen >= substr(o.seen, 1, 10) AND p.seen < substr(o.seen, 1, 10) || '~' \
         AND p.state = o.state AND p.org_id + 0 = o.org_id AND (p.id < ",
    )
    .arg(lo)
    .sql(" OR p.id > ")
    .arg(hi)
    .sql(
        "))) AS d GROUP BY org_id, day) \
         INSERT INTO org_days (org_id, day, exposed, compromised) \
         SELECT org_id, day, e, c FROM n WHERE true \
         UNION ALL SELECT 0, day, SUM(e), SUM(c) FROM n GROUP BY day \
         ON CONFLICT (org_id, day) DO UPDATE SET exposed = org_days.exposed + excluded.exposed, \
         compromised = org_days.compromised + excluded.compromised",
    )
    .for_engine(engine)
    .execute(&mut **tx)
    .await?;
    set_scope(tx, engine, scope).await
}

/// Recounts the curve for `days` and moves the fleet's rows (organisation 0) by the
/// difference. The rows are written with `*` (the count tables are written by the store only),
/// and the transaction's scope is put back to `scope` afterwards.
pub(crate) async fn recount_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    scope: OrgScope,
    days: &BTreeSet<DayKey>,
) -> Result<()> {
    if days.is_empty() {
        return Ok(());
    }
    let now = count_days(tx, engine, days).await?;
    let before = stored_days(tx, engine, days).await?;
    let mut fleet: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut writes = Vec::new();
    for k in days {
        let n = now.get(k).copied().unwrap_or((0, 0));
        let b = before.get(k).copied().unwrap_or((0, 0));
        if n != b {
            let f = fleet.entry(k.1.clone()).or_default();
            f.0 += n.0 - b.0;
            f.1 += n.1 - b.1;
            writes.push((k.clone(), n));
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    set_scope(tx, engine, OrgScope::All).await?;
    for part in writes.chunks(CHUNK) {
        let mut q = Q::new("INSERT INTO org_days (org_id, day, exposed, compromised) VALUES ");
        for (i, ((org, d), (e, c))) in part.iter().enumerate() {
            q = q
                .sql(if i > 0 { ", (" } else { "(" })
                .arg(*org)
                .sql(", ")
                .arg(d.as_str())
                .sql(", ")
                .arg(*e)
                .sql(", ")
                .arg(*c)
                .sql(")");
        }
        q.sql(" ON CONFLICT (org_id, day) DO UPDATE SET exposed = excluded.exposed, compromised = excluded.compromised")
            .for_engine(engine)
            .execute(&mut **tx)
            .await?;
        let orgs: Vec<i64> = part.iter().map(|((o, _), _)| *o).collect();
        Q::new("DELETE FROM org_days WHERE exposed = 0 AND compromised = 0 AND org_id IN ")
            .list(&orgs)
            .for_engine(engine)
            .execute(&mut **tx)
            .await?;
    }
    for (d, (e, c)) in fleet {
        if (e, c) != (0, 0) {
            write_day(tx, 0, &d, e, c).await?;
        }
    }
    set_scope(tx, engine, scope).await
}

/// Moves one day's counts by (`e`, `c`); a day at zero is removed.
async fn write_day(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: i64,
    d: &str,
    e: i64,
    c: i64,
) -> Result<()> {
    let set = " ON CONFLICT (org_id, day) DO UPDATE SET exposed = org_days.exposed + excluded.exposed, compromised = org_days.compromised + excluded.compromised";
    Q::new("INSERT INTO org_days (org_id, day, exposed, compromised) VALUES (")
        .arg(org)
        .sql(", ")
        .arg(d)
        .sql(", ")
        .arg(e)
        .sql(", ")
        .arg(c)
        .sql(")")
        .sql(set)
        .execute(&mut **tx)
        .await?;
    Q::new("DELETE FROM org_days WHERE exposed = 0 AND compromised = 0 AND org_id = ")
        .arg(org)
        .sql(" AND day = ")
        .arg(d)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Applies what a change touched: servers first (their latest state), then the curve.
/// Returns, when it can tell (PostgreSQL, no server recomputed from its history), how far it
/// moved the counts by state of the organisations some of whose servers' states it moved:
/// with the count triggers paused ([`pause_counts`]), the only ones besides those with new
/// servers whose counts change. `None`: any of the servers' organisations may have moved.
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    scope: OrgScope,
    t: &Touched,
) -> Result<Option<Moves>> {
    let mut full = t.servers.clone();
    let mut moved = Some(Moves::new());
    if let Some((lo, hi)) = t.added {
        let (uncomputed, folded) = fold_added(tx, engine, lo, hi).await?;
        full.extend(uncomputed);
        moved = folded;
        count_added_days(tx, engine, scope, lo, hi).await?;
    }
    if !full.is_empty() {
        moved = None;
    }
    refresh_servers(tx, engine, &full).await?;
    recount_days(tx, engine, scope, &t.days).await?;
    Ok(moved)
}

/// The days of the curve one server's rows count in (before it is deleted).
pub(crate) async fn days_of_server(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    server: i64,
) -> Result<BTreeSet<DayKey>> {
    let mut out = BTreeSet::new();
    let rows = Q::new("SELECT org_id, substr(seen, 1, 10) AS day FROM observations WHERE state IN ('vulnerable', 'compromised') AND org_id IS NOT NULL AND server_id = ")
        .arg(server)
        .fetch_all(&mut **tx)
        .await?;
    for r in rows {
        if let Some(o) = get_oi(&r, "org_id")? {
            out.insert((o, get_s(&r, "day")?));
        }
    }
    let rows = Q::new("SELECT org_id, substr(finished, 1, 10) AS day FROM scan_results WHERE verdict = 'compromised' AND server_id = ")
        .arg(server)
        .fetch_all(&mut **tx)
        .await?;
    for r in rows {
        out.insert((get_i(&r, "org_id")?, get_s(&r, "day")?));
    }
    Ok(out)
}

/// Removes an organisation's curve and takes it out of the fleet's (before the organisation
/// is deleted; in the deleting transaction, which runs with `*`).
pub(crate) async fn drop_org_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: i64,
) -> Result<()> {
    let rows = Q::new("SELECT day, exposed, compromised FROM org_days WHERE org_id = ")
        .arg(org)
        .fetch_all(&mut **tx)
        .await?;
    for r in rows {
        let d = get_s(&r, "day")?;
        write_day(
            tx,
            0,
            &d,
            -get_i(&r, "exposed")?,
            -get_i(&r, "compromised")?,
        )
        .await?;
    }
    Q::new("DELETE FROM org_days WHERE org_id = ")
        .arg(org)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Servers whose latest state was never computed (from before migration 8, or written by
/// hand): computed when the store opens, in pages.
pub(crate) async fn backfill(store: &super::Store) -> Result<()> {
    loop {
        let mut tx = store.begin_counted(OrgScope::All).await?;
        let ids: BTreeSet<i64> = Q::new("SELECT id FROM servers WHERE latest_v = 0 LIMIT 2000")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| get_i(r, "id"))
            .collect::<Result<_>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        refresh_servers(&mut tx, store.engine, &ids).await?;
        // A server with nothing to compute is marked too, so the loop ends.
        Q::new("UPDATE servers SET latest_v = 1 WHERE latest_v = 0 AND id IN ")
            .list(&ids.iter().copied().collect::<Vec<_>>())
            .for_engine(store.engine)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
}
