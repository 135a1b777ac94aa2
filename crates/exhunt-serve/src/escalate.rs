//! Escalation: a notification sent to an organisation that has not acknowledged it rises to
//! level 1 after [`Policy::after`], and to level 2 after twice that. The level is kept on the
//! notification (with the time it rose), shown on the overview, the organisation's page and
//! in the API, and each rise is audited under the organisation.
//!
//! How it runs: `exhunt serve` runs [`Store::escalate`] on a timer ([`Policy::every`], and once
//! at start), on every instance; the update is idempotent (a level only rises, guarded in the
//! `UPDATE`), so several instances behind one load balancer do no harm. An operator can also
//! run it at once (`POST /api/v1/notifications/escalate`). It never runs inside a request of a
//! tenant, so a page view costs nothing and an idle server still escalates. Tests call
//! [`Store::escalate`] with a chosen "now".

use std::time::Duration;

use crate::db::{self, Q};
use crate::error::Result;
use crate::store::{Store, get_i};
use crate::tenancy::OrgScope;

/// When notifications escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Time a sent notification may stay unacknowledged before level 1 (level 2: twice this).
    pub after: Duration,
    /// How often the server looks.
    pub every: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            after: Duration::from_secs(crate::notify::ESCALATE_DAYS as u64 * 24 * 3600),
            every: Duration::from_secs(600),
        }
    }
}

/// The PostgreSQL advisory lock that serialises escalation passes ("exhunt-e" in ASCII).
const ESCALATION_LOCK: i64 = 0x6578_6875_6e74_2d65;

impl Store {
    /// Raises the level of every sent, unacknowledged notification past its time, as of `now`;
    /// returns how many rose. The server's own job: it reads every organisation.
    pub async fn escalate(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        after: Duration,
    ) -> Result<u64> {
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(7));
        let mut risen = 0;
        let mut tx = self.begin_write(OrgScope::All).await?;
        if self.engine() == db::Engine::Postgres {
            // Instances whose timers fire together take turns: two passes locking rows in
            // different orders would deadlock (PostgreSQL would abort one).
            Q::new("SELECT pg_advisory_xact_lock(")
                .arg(ESCALATION_LOCK)
                .sql(")")
                .execute(&mut *tx)
                .await?;
        }
        for level in [2_i64, 1] {
            let before = db::fmt_time(&(now - after * level as i32));
            let rows = Q::new(
                "SELECT id, org_id, ticket FROM notifications WHERE state = 'sent' AND escalation < ",
            )
            .arg(level)
            .sql(" AND updated < ")
            .arg(before.clone())
            .sql(" ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                let id = get_i(r, "id")?;
                let n = Q::new("UPDATE notifications SET escalation = ")
                    .arg(level)
                    .sql(", escalated = ")
                    .arg(db::fmt_time(&now))
                    .sql(" WHERE state = 'sent' AND escalation < ")
                    .arg(level)
                    .sql(" AND id = ")
                    .arg(id)
                    .execute(&mut *tx)
                    .await?;
                if n == 0 {
                    continue;
                }
                risen += n;
                self.audit(
                    &mut *tx,
                    None,
                    Some(get_i(r, "org_id")?),
                    "notification.escalate",
                    format!(
                        "notification #{id} {} escalated to level {level}: sent and not acknowledged for {} day(s)",
                        crate::store::get_s(r, "ticket")?,
                        (after * level as i32).num_days()
                    ),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(risen)
    }
}

/// The timer of `exhunt serve`: escalates at start and then every [`Policy::every`], for ever
/// (errors are logged, never fatal).
pub async fn run(store: Store, policy: Policy) {
    let mut tick = tokio::time::interval(policy.every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.escalate(chrono::Utc::now(), policy.after).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("escalated {n} notification(s)"),
            Err(e) => tracing::error!("escalating notifications: {e}"),
        }
    }
}
