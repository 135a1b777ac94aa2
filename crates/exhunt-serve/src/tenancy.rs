//! Who is calling, and the one place where every query is narrowed to the caller's
//! organisations.
//!
//! Tokens are random 256-bit secrets shown once at creation; the database keeps only their
//! SHA-256, so a copy of the database gives no usable token. A token is either bound to one
//! organisation (role *reader* or *uploader*) or an *operator* token bound to none.
//!
//! [`Caller::org_scope`] is the single decision of what a caller may see; [`crate::db::Q::scoped`]
//! is the single place that turns it into SQL. Every read, update and delete of tenant data goes
//! through both, so a query that forgets the scope cannot be written without skipping that
//! function — the cross-tenant tests in `tests/api.rs` try every endpoint as the wrong tenant.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read its organisation's data.
    Reader,
    /// Read, upload scan results and observations, and manage its organisation's servers,
    /// results and reader/uploader tokens.
    Uploader,
    /// Everything, for every organisation: organisations, scopes, the unassigned queue.
    Operator,
}

impl Role {
    /// Stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Uploader => "uploader",
            Role::Operator => "operator",
        }
    }

    /// Parses a stored or given name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "uploader" => Some(Role::Uploader),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id (for the audit log).
    pub token_id: i64,
    /// Role.
    pub role: Role,
    /// The organisation of a reader or uploader; `None` for an operator.
    pub org: Option<i64>,
}

/// Which organisations' rows a caller may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgScope {
    /// Every organisation, and the unassigned queue.
    All,
    /// One organisation.
    One(i64),
}

impl Caller {
    /// The caller's organisations. A reader or uploader token without an organisation cannot
    /// exist (the store refuses to create one), but if the database held one it would see
    /// nothing: organisation ids start at 1.
    pub fn org_scope(&self) -> OrgScope {
        match (self.role, self.org) {
            (Role::Operator, _) => OrgScope::All,
            (_, Some(org)) => OrgScope::One(org),
            (_, None) => OrgScope::One(0),
        }
    }

    /// Refuses unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs a token with role {} (this one is {})",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// Whether this caller may act on organisation `org` with at least `role`.
    pub fn require_org(&self, org: i64, role: Role) -> Result<()> {
        self.require(role)?;
        match self.org_scope() {
            OrgScope::All => Ok(()),
            OrgScope::One(o) if o == org => Ok(()),
            OrgScope::One(_) => Err(Error::NotFound("organisation")),
        }
    }
}

/// Prefix of every token, so a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "exh_";

/// A new random token secret.
pub fn new_secret() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)
        .map_err(|e| Error::BadRequest(format!("no randomness for a token: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(b)))
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the database keeps of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
        assert!(same_secret("", ""));
    }

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let a = new_secret().unwrap_or_default();
        let b = new_secret().unwrap_or_default();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 68);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn roles_and_scopes() {
        let reader = Caller {
            token_id: 1,
            role: Role::Reader,
            org: Some(7),
        };
        assert_eq!(reader.org_scope(), OrgScope::One(7));
        assert!(reader.require(Role::Uploader).is_err());
        assert!(reader.require_org(7, Role::Reader).is_ok());
        assert!(reader.require_org(8, Role::Reader).is_err());
        let op = Caller {
            token_id: 2,
            role: Role::Operator,
            org: None,
        };
        assert_eq!(op.org_scope(), OrgScope::All);
        assert!(op.require_org(8, Role::Uploader).is_ok());
        let broken = Caller {
            token_id: 3,
            role: Role::Uploader,
            org: None,
        };
        assert_eq!(broken.org_scope(), OrgScope::One(0));
    }
}
