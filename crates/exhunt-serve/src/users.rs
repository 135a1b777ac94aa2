//! Dashboard users: a name, an Argon2id password hash ([`crate::password`]) and a role bound
//! like a token's (reader or uploader of one organisation, operator of all).
//!
//! Each user acts through a token row of its own whose secret is never shown (so nobody can
//! use it on the API): the session, the audit log, the tenancy filter and revocation work for
//! a user exactly as for a token, and disabling a user revokes that token, which ends its
//! sessions. Operators create and disable users; a user changes its own password.
//!
//! Failed password logins are throttled before any hash is computed: at most
//! [`MAX_ACCOUNT_FAILURES`] per account name and [`MAX_CLIENT_FAILURES`] per client address in
//! [`WINDOW_MINUTES`] minutes (counted in the database, so several `exhunt serve` behind one
//! load balancer share them). An attempt is counted when it starts and forgotten when it
//! succeeds, so parallel guesses cannot overrun the limit. Every login, failure, refusal,
//! creation, change and disabling is audited.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{self, Q};
use crate::error::{Error, Result};
use crate::password;
use crate::store::{Filter, Store, get_i, get_oi, get_os, get_s};
use crate::tenancy::{self, Caller, OrgScope, Role};

/// Minutes a failed login counts.
pub const WINDOW_MINUTES: i64 = 15;
/// Failed logins of one account name within the window before further tries are refused.
pub const MAX_ACCOUNT_FAILURES: i64 = 5;
/// Failed logins from one client address within the window before further tries are refused.
pub const MAX_CLIENT_FAILURES: i64 = 20;
/// The PostgreSQL advisory lock that serialises login throttling ("exhunt-l" in ASCII).
const LOGIN_LOCK: i64 = 0x6578_6875_6e74_2d6c;

/// A dashboard user as the API shows it (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login name (lower case).
    pub name: String,
    /// Organisation of a reader or uploader; `None` for an operator.
    pub org_id: Option<i64>,
    /// Role.
    pub role: Role,
    /// Created.
    pub created: String,
    /// Last change of password.
    pub password_changed: String,
    /// When an operator disabled it.
    pub disabled: Option<String>,
}

/// A new user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Login name: 1 to 100 of `a-z 0-9 . _ @ -` (stored in lower case).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Organisation (readers and uploaders only).
    pub org: Option<i64>,
    /// Password (at least [`password::MIN_LEN`] characters).
    pub password: String,
}

const USER_COLS: &str = "SELECT u.id, u.name, u.org_id, u.role, u.created, u.password_changed, u.disabled FROM users u WHERE 1 = 1";

fn user_from(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: get_i(r, "id")?,
        name: get_s(r, "name")?,
        org_id: get_oi(r, "org_id")?,
        role: Role::parse(&get_s(r, "role")?).ok_or(Error::NotFound("user"))?,
        created: get_s(r, "created")?,
        password_changed: get_s(r, "password_changed")?,
        disabled: get_os(r, "disabled")?,
    })
}

/// A login name as stored, or why it cannot be one.
pub fn login_name(name: &str) -> Result<String> {
    let n = name.trim().to_lowercase();
    if n.is_empty()
        || n.chars().count() > 100
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
    {
        return Err(Error::BadRequest(
            "a user name has 1 to 100 characters among a-z, 0-9, '.', '_', '@' and '-'".into(),
        ));
    }
    Ok(n)
}

/// The account key failures are counted under: the name as typed, bounded (never an error).
fn account_key(name: &str) -> String {
    name.trim().to_lowercase().chars().take(100).collect()
}

/// An address or name for the audit log: printable, bounded.
fn shown(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Store {
    async fn insert_user(&self, by: Option<&Caller>, input: &UserInput) -> Result<User> {
        let name = login_name(&input.name)?;
        match (input.role, input.org) {
            (Role::Operator, None) => {}
            (Role::Operator, Some(_)) => {
                return Err(Error::BadRequest(
                    "an operator belongs to no organisation".into(),
                ));
            }
            (r, None) => {
                return Err(Error::BadRequest(format!(
                    "a {} needs an organisation",
                    r.as_str()
                )));
            }
            (_, Some(o)) => {
                let found = Q::new("SELECT id FROM orgs WHERE id = ")
                    .arg(o)
                    .fetch_optional(&mut *self.begin(OrgScope::All).await?)
                    .await?;
                if found.is_none() {
                    return Err(Error::NotFound("organisation"));
                }
            }
        }
        password::check_new(&name, &input.password)?;
        let hash = password::hash(&input.password).await?;
        let now = db::now();
        let mut tx = self.begin_write(OrgScope::All).await?;
        let taken = Q::new("SELECT id FROM users WHERE name = ")
            .arg(name.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!("user name {name:?} is taken")));
        }
        // The user's own token: its secret is made and forgotten (only the hash is stored).
        let t = Q::new(
            "INSERT INTO tokens (org_id, role, name, secret_sha256, created, created_by) VALUES (",
        )
        .arg(input.org)
        .sql(", ")
        .arg(input.role.as_str())
        .sql(", ")
        .arg(format!("dashboard login of user {name}"))
        .sql(", ")
        .arg(tenancy::hash_secret(&tenancy::new_secret()?))
        .sql(", ")
        .arg(now.clone())
        .sql(", ")
        .arg(by.map(|c| c.token_id))
        .sql(") RETURNING id")
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("token"))?;
        let token_id = get_i(&t, "id")?;
        let r = Q::new("INSERT INTO users (name, org_id, role, password_hash, token_id, created, password_changed) VALUES (")
            .arg(name.clone())
            .sql(", ")
            .arg(input.org)
            .sql(", ")
            .arg(input.role.as_str())
            .sql(", ")
            .arg(hash)
            .sql(", ")
            .arg(token_id)
            .sql(", ")
            .arg(now.clone())
            .sql(", ")
            .arg(now)
            .sql(") RETURNING id")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let id = get_i(&r, "id")?;
        self.audit(
            &mut *tx,
            by,
            input.org,
            "user.create",
            format!(
                "user #{id} {name:?} ({}){}",
                input.role.as_str(),
                if by.is_none() {
                    " from the command line"
                } else {
                    ""
                }
            ),
        )
        .await?;
        let u = Q::new(USER_COLS)
            .sql(" AND u.id = ")
            .arg(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let u = user_from(&u)?;
        tx.commit().await?;
        Ok(u)
    }

    /// Creates a dashboard user (operators only).
    pub async fn create_user(&self, c: &Caller, input: &UserInput) -> Result<User> {
        c.require(Role::Operator)?;
        self.insert_user(Some(c), input).await
    }

    /// Creates a user from the server's command line (`exhunt serve --add-user`): whoever can
    /// run it holds the database already. Audited as made from the command line.
    pub async fn add_user_locally(&self, input: &UserInput) -> Result<User> {
        self.insert_user(None, input).await
    }

    /// Users the caller may manage (operators: every one; others: none).
    pub async fn list_users(&self, c: &Caller, f: &Filter) -> Result<Vec<User>> {
        c.require(Role::Operator)?;
        let mut q = Q::new(USER_COLS).scoped(c, "u.org_id");
        if let Some(o) = f.org {
            q = q.sql(" AND u.org_id = ").arg(o);
        }
        if let Some(a) = f.after {
            q = q.sql(" AND u.id > ").arg(a);
        }
        q.sql(" ORDER BY u.id LIMIT ")
            .arg(f.limit.unwrap_or(1000).clamp(1, 10_000))
            .fetch_all(&mut *self.begin(c.org_scope()).await?)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    /// One user (operators only).
    pub async fn get_user(&self, c: &Caller, id: i64) -> Result<User> {
        c.require(Role::Operator)?;
        let r = Q::new(USER_COLS)
            .sql(" AND u.id = ")
            .arg(id)
            .scoped(c, "u.org_id")
            .fetch_optional(&mut *self.begin(c.org_scope()).await?)
            .await?
            .ok_or(Error::NotFound("user"))?;
        user_from(&r)
    }

    /// Disables a user (operators only): its token is revoked, which ends its sessions.
    pub async fn disable_user(&self, c: &Caller, id: i64) -> Result<User> {
        c.require(Role::Operator)?;
        let u = self.get_user(c, id).await?;
        let now = db::now();
        let mut tx = self.begin_write(c.org_scope()).await?;
        Q::new("UPDATE users SET disabled = ")
            .arg(now.clone())
            .sql(" WHERE disabled IS NULL AND id = ")
            .arg(id)
            .scoped(c, "org_id")
            .execute(&mut *tx)
            .await?;
        Q::new("UPDATE tokens SET revoked = ")
            .arg(now)
            .sql(" WHERE revoked IS NULL AND id = (SELECT token_id FROM users WHERE id = ")
            .arg(id)
            .sql(")")
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut *tx,
            Some(c),
            u.org_id,
            "user.disable",
            format!("user #{id} {:?}", u.name),
        )
        .await?;
        tx.commit().await?;
        self.get_user(c, id).await
    }

    /// The user behind a session's caller; `NotFound` for a session opened with an API token.
    pub async fn user_of(&self, c: &Caller) -> Result<User> {
        let r = Q::new(USER_COLS)
            .sql(" AND u.disabled IS NULL AND u.token_id = ")
            .arg(c.token_id)
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?
            .ok_or(Error::NotFound(
                "user (this session was opened with an API token)",
            ))?;
        user_from(&r)
    }

    /// Counts an attempt for `account` from `client`, unless either is over its limit
    /// (`TooManyAttempts`, audited). Returns the attempt's id, to forget it on success.
    async fn count_attempt(&self, account: &str, client: &str) -> Result<i64> {
        let now = chrono::Utc::now();
        let since = db::fmt_time(&(now - chrono::Duration::minutes(WINDOW_MINUTES)));
        let mut tx = self.begin_write(OrgScope::All).await?;
        if self.engine() == db::Engine::Postgres {
            // Count-then-insert must not interleave: under READ COMMITTED two attempts would
            // each count the other's row as absent and both pass. One transaction-scoped lock
            // serialises them across every instance on the database (SQLite's `BEGIN
            // IMMEDIATE` already does).
            Q::new("SELECT pg_advisory_xact_lock(")
                .arg(LOGIN_LOCK)
                .sql(")")
                .execute(&mut *tx)
                .await?;
        }
        Q::new("DELETE FROM login_failures WHERE at < ")
            .arg(since.clone())
            .execute(&mut *tx)
            .await?;
        let n = |col: &'static str, v: &str| {
            Q::new("SELECT COUNT(*) AS n FROM login_failures WHERE ")
                .sql(col)
                .sql(" = ")
                .arg(v)
                .sql(" AND at >= ")
                .arg(since.clone())
        };
        let by_account = get_i(
            &n("account", account)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("count"))?,
            "n",
        )?;
        let by_client = get_i(
            &n("client", client)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("count"))?,
            "n",
        )?;
        if by_account >= MAX_ACCOUNT_FAILURES || by_client >= MAX_CLIENT_FAILURES {
            let which = if by_account >= MAX_ACCOUNT_FAILURES {
                "account"
            } else {
                "client address"
            };
            self.audit(
                &mut *tx,
                None,
                None,
                "login.throttled",
                format!(
                    "password login of account {:?} from {} refused: too many failures of this {which} in {WINDOW_MINUTES} minutes",
                    shown(account),
                    shown(client)
                ),
            )
            .await?;
            tx.commit().await?;
            return Err(Error::TooManyAttempts(WINDOW_MINUTES * 60));
        }
        let r = Q::new("INSERT INTO login_failures (account, client, at) VALUES (")
            .arg(account)
            .sql(", ")
            .arg(client)
            .sql(", ")
            .arg(db::fmt_time(&now))
            .sql(") RETURNING id")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("attempt"))?;
        let id = get_i(&r, "id")?;
        tx.commit().await?;
        Ok(id)
    }

    /// Logs a user in with its password: returns the session cookie's secret and its CSRF
    /// token. Unknown name, disabled user and wrong password are the same `Unauthorized`, in
    /// the same time; too many failures are `TooManyAttempts` before any hash is computed.
    pub async fn password_login(
        &self,
        name: &str,
        password: &str,
        client: &str,
        hours: i64,
    ) -> Result<(String, String)> {
        let account = account_key(name);
        let attempt = self.count_attempt(&account, client).await?;
        let row = Q::new("SELECT u.id, u.name, u.password_hash, u.token_id, u.org_id, u.role FROM users u JOIN tokens t ON t.id = u.token_id WHERE u.disabled IS NULL AND t.revoked IS NULL AND u.name = ")
            .arg(account.clone())
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?;
        let stored = match &row {
            Some(r) => Some(get_s(r, "password_hash")?),
            None => None,
        };
        let ok = password.len() <= password::MAX_LEN
            && password::verify(password, stored.as_deref()).await?;
        let (Some(r), true) = (row, ok) else {
            self.record(
                None,
                "login.failed",
                format!(
                    "password login of account {:?} from {}: unknown account, disabled user or wrong password",
                    shown(&account),
                    shown(client)
                ),
            )
            .await?;
            return Err(Error::Unauthorized);
        };
        let c = Caller {
            token_id: get_i(&r, "token_id")?,
            role: Role::parse(&get_s(&r, "role")?).ok_or(Error::Unauthorized)?,
            org: get_oi(&r, "org_id")?,
        };
        let secret = tenancy::new_secret()?;
        let csrf = tenancy::new_secret()?;
        let now = chrono::Utc::now();
        let mut tx = self.begin_write(OrgScope::All).await?;
        Q::new("DELETE FROM login_failures WHERE id = ")
            .arg(attempt)
            .execute(&mut *tx)
            .await?;
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
            .arg(db::fmt_time(&(now + chrono::Duration::hours(hours))))
            .sql(")")
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut *tx,
            Some(&c),
            c.org,
            "login.password",
            format!(
                "dashboard session of user #{} {:?} from {}",
                get_i(&r, "id")?,
                get_s(&r, "name")?,
                shown(client)
            ),
        )
        .await?;
        tx.commit().await?;
        Ok((secret, csrf))
    }

    /// Changes the session user's own password, after checking the current one (a wrong one
    /// counts as a failed login of that account); the user's other sessions end.
    pub async fn change_password(
        &self,
        c: &Caller,
        current_session: &str,
        old: &str,
        new: &str,
        client: &str,
    ) -> Result<()> {
        let u = self.user_of(c).await?;
        // The new password's rules depend on no secret: checked before the attempt is counted,
        // so five too-short passwords do not lock the user out.
        password::check_new(&u.name, new)?;
        let attempt = self.count_attempt(&u.name, client).await?;
        let stored = Q::new("SELECT password_hash FROM users WHERE id = ")
            .arg(u.id)
            .fetch_optional(&mut *self.begin(OrgScope::All).await?)
            .await?
            .map(|r| get_s(&r, "password_hash"))
            .transpose()?;
        if !(old.len() <= password::MAX_LEN && password::verify(old, stored.as_deref()).await?) {
            self.record(
                Some(c),
                "user.password.failed",
                format!(
                    "password change of user #{} {:?} from {}: wrong current password",
                    u.id,
                    u.name,
                    shown(client)
                ),
            )
            .await?;
            return Err(Error::Forbidden("the current password is wrong".into()));
        }
        let hash = password::hash(new).await?;
        let mut tx = self.begin_write(OrgScope::All).await?;
        Q::new("DELETE FROM login_failures WHERE id = ")
            .arg(attempt)
            .execute(&mut *tx)
            .await?;
        Q::new("UPDATE users SET password_hash = ")
            .arg(hash)
            .sql(", password_changed = ")
            .arg(db::now())
            .sql(" WHERE id = ")
            .arg(u.id)
            .execute(&mut *tx)
            .await?;
        Q::new("DELETE FROM sessions WHERE token_id = ")
            .arg(c.token_id)
            .sql(" AND secret_sha256 <> ")
            .arg(tenancy::hash_secret(current_session.trim()))
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut *tx,
            Some(c),
            c.org,
            "user.password",
            format!(
                "user #{} {:?} changed its password from {}; its other sessions ended",
                u.id,
                u.name,
                shown(client)
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `exhunt serve --add-user`: opens (and migrates) the database at `db_url` and creates the
/// user, on a runtime of its own.
pub fn add_user_blocking(db_url: &str, input: &UserInput) -> Result<User> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::BadRequest(format!("starting the runtime: {e}")))?;
    rt.block_on(async {
        let store = Store::open(db_url).await?;
        store.add_user_locally(input).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        assert_eq!(
            login_name(" Alice@Example.org ").ok().as_deref(),
            Some("alice@example.org")
        );
        assert!(login_name("").is_err());
        assert!(login_name("a b").is_err());
        assert!(login_name("evil\r\nname").is_err());
        assert!(login_name("<script>").is_err());
        assert!(login_name(&"a".repeat(101)).is_err());
        assert_eq!(account_key(&"B".repeat(300)).len(), 100);
        assert_eq!(shown("a\r\nb"), "a??b");
    }
}
