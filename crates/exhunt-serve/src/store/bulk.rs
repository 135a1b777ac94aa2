//! Ingest of observations in bulk: one transaction per upload, servers named from memory,
//! multi-row `INSERT`s.
//!
//! Per upload: the scope matcher ([`Store::matcher`]: every organisation's for an operator,
//! the uploader's own for an uploader) is built once, the named servers of
//! the organisations the rows go to are read once, each row's server is found (or made) in
//! memory with the rules of [`Store::server_id`], and then the new servers and the
//! observations are written [`BATCH`] rows per statement. What the upload touched is then
//! brought up to date ([`latest::apply`]).

use std::collections::{BTreeSet, HashMap};

use super::latest::{self, ObsRow, Touched};
use super::{ObservationUpload, Store, get_i, get_s};
use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::ingest::Parsed;
use crate::scope::{Assignment, Locator};
use crate::tenancy::{Caller, OrgScope, Role};

/// Rows per `INSERT` (17 values each: within SQLite's 32,766 and PostgreSQL's 65,535
/// placeholders).
const BATCH: usize = 1000;

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
        // Where each row goes: (row, organisation, why unassigned).
        let mut kept = Vec::with_capacity(parsed.rows.len());
        for o in &parsed.rows {
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
            kept.push((o, org, reason));
        }
        let mut tx = self.begin_counted(c.org_scope()).await?;
        // The named servers of the organisations the rows go to, read once.
        let orgs: Vec<i64> = kept
            .iter()
            .filter_map(|k| k.1)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut names: HashMap<i64, Names> = HashMap::new();
        for chunk in orgs.chunks(BATCH) {
            let rows = Q::new("SELECT id, org_id, name FROM servers WHERE org_id IN ")
                .list(chunk)
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
        for (o, org, _) in &kept {
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
        // The observations, BATCH rows per statement; RETURNING says which were new.
        let mut touched = Touched::default();
        let rows: Vec<_> = kept.iter().zip(&server_of).collect();
        for chunk in rows.chunks(BATCH) {
            let mut q = Q::new(
                "INSERT INTO observations (org_id, server_id, source, ip, port, host, asn, state, decided_by, build, detail, seen, uploaded, unassigned_reason, dedup, raw, campaigns) VALUES ",
            );
            let mut by_key: HashMap<String, usize> = HashMap::with_capacity(chunk.len());
            let mut campaigns = Vec::with_capacity(chunk.len());
            for (i, ((o, org, reason), server)) in chunk.iter().enumerate() {
                let key = Self::dedup_key(*org, &o.sha256);
                by_key.entry(key.clone()).or_insert(i);
                campaigns.push(serde_json::to_string(&o.campaigns).unwrap_or_else(|_| "{}".into()));
                if i > 0 {
                    q = q.sql(", ");
                }
                q = q
                    .sql("(")
                    .arg(*org)
                    .sql(", ")
                    .arg(**server)
                    .sql(", ")
                    .arg(o.source)
                    .sql(", ")
                    .arg(o.ip.map(|i| i.to_string()))
                    .sql(", ")
                    .arg(o.port)
                    .sql(", ")
                    .arg(o.host.clone())
                    .sql(", ")
                    .arg(o.asn.map(i64::from))
                    .sql(", ")
                    .arg(o.state.clone())
                    .sql(", ")
                    .arg(o.decided_by.clone())
                    .sql(", ")
                    .arg(o.build.clone())
                    .sql(", ")
                    .arg(o.detail.clone())
                    .sql(", ")
                    .arg(o.seen.clone())
                    .sql(", ")
                    .arg(uploaded.as_str())
                    .sql(", ")
                    .arg(reason.clone())
                    .sql(", ")
                    .arg(key)
                    .sql(", ")
                    .arg(o.raw.clone())
                    .sql(", ")
                    .arg(campaigns[i].as_str())
                    .sql(")");
            }
            let inserted = q
                .sql(" ON CONFLICT (dedup) DO NOTHING RETURNING id, dedup")
                .for_engine(self.engine)
                .fetch_all(&mut *tx)
                .await?;
            for r in &inserted {
                let Some(&i) = by_key.get(&get_s(r, "dedup")?) else {
                    continue;
                };
                let ((o, org, _), server) = chunk[i];
                if org.is_some() {
                    out.assigned += 1;
                } else {
                    out.unassigned += 1;
                }
                touched.added_observation(ObsRow {
                    org: *org,
                    server: *server,
                    id: get_i(r, "id")?,
                    state: &o.state,
                    campaigns: &campaigns[i],
                    seen: &o.seen,
                    build: o.build.as_deref(),
                });
            }
            out.duplicates += (chunk.len() - inserted.len()) as u64;
        }
        latest::apply(&mut tx, self.engine, c.org_scope(), &touched).await?;
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
            let mut q = Q::new("INSERT INTO servers (org_id, name, created, latest_v) VALUES ");
            for (i, (org, name)) in chunk.iter().enumerate() {
                if i > 0 {
                    q = q.sql(", ");
                }
                q = q
                    .sql("(")
                    .arg(*org)
                    .sql(", ")
                    .arg(name.as_str())
                    .sql(", ")
                    .arg(created.as_str())
                    .sql(", 1)");
            }
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
