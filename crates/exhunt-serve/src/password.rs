//! Dashboard passwords: Argon2id (RFC 9106) through RustCrypto's pure-Rust `argon2` crate.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane, a 16-byte random salt and a 32-byte tag —
//! the OWASP Password Storage Cheat Sheet's first Argon2id setting. The database keeps the PHC
//! string (`$argon2id$v=19$m=19456,t=2,p=1$salt$tag`), so stronger parameters later still
//! verify the older hashes. Verification compares the tags in constant time (the crate's
//! `Output` comparison). A login for an account that does not exist is verified against a
//! dummy hash made with the same parameters, so its answer takes as long as a wrong password.
//!
//! Hashing costs ~19 MiB and tens of milliseconds of one core: it runs on tokio's blocking
//! threads, at most [`MAX_PARALLEL`] at once (a burst of logins cannot take the server's
//! memory), and failed logins are throttled before any hashing ([`crate::users`]).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Memory in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const PASSES: u32 = 2;
/// Lanes.
pub const LANES: u32 = 1;
/// Hashes computed at once.
pub const MAX_PARALLEL: usize = 2;
/// Shortest password accepted, in characters.
pub const MIN_LEN: usize = 12;
/// Longest password accepted, in bytes.
pub const MAX_LEN: usize = 1024;

static SLOTS: Semaphore = Semaphore::const_new(MAX_PARALLEL);

fn argon() -> Result<Argon2<'static>> {
    let p = Params::new(MEMORY_KIB, PASSES, LANES, Some(32))
        .map_err(|e| Error::BadRequest(format!("Argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// Refuses a password too short, too long, or equal to the account's name.
pub fn check_new(name: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_LEN {
        return Err(Error::BadRequest(format!(
            "a password needs at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(Error::BadRequest(format!(
            "a password has at most {MAX_LEN} bytes"
        )));
    }
    if password.trim().eq_ignore_ascii_case(name.trim()) {
        return Err(Error::BadRequest(
            "a password must not be the account's name".into(),
        ));
    }
    Ok(())
}

fn hash_now(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::BadRequest(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::BadRequest(format!("password salt: {e}")))?;
    Ok(argon()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::BadRequest(format!("hashing the password: {e}")))?
        .to_string())
}

fn verify_now(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(a) = argon() else {
        return false;
    };
    // The parameters come from the stored string (older settings keep verifying).
    a.verify_password(password.as_bytes(), &parsed).is_ok()
}

/// The hash a missing account is checked against (same parameters as real ones).
fn dummy() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| {
        let mut b = [0u8; 24];
        let _ = getrandom::fill(&mut b);
        hash_now(&hex::encode(b)).unwrap_or_default()
    })
}

/// Runs a hash on a blocking thread, at most [`SLOTS`] at once. The slot goes with the task,
/// not with the request: a client that disconnects (its request future dropped) cannot free
/// the slot while its hash, which cannot be cancelled, still runs and holds its memory.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let slot = SLOTS
        .acquire()
        .await
        .map_err(|e| Error::BadRequest(format!("password hashing: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        f()
    })
    .await
    .map_err(|e| Error::BadRequest(format!("password hashing: {e}")))
}

/// The PHC string of a new password.
pub async fn hash(password: &str) -> Result<String> {
    let p = password.to_string();
    blocking(move || hash_now(&p)).await?
}

/// Whether `password` matches the stored hash; `None` (no such account): checked against the
/// dummy hash, always `false`, in the same time.
pub async fn verify(password: &str, stored: Option<&str>) -> Result<bool> {
    let p = password.to_string();
    let (phc, real) = match stored {
        Some(h) => (h.to_string(), true),
        None => (String::new(), false),
    };
    blocking(move || {
        let phc = if real { phc.as_str() } else { dummy() };
        verify_now(&p, phc) && real
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that disconnects while its hash runs must not free a slot: the hash keeps its
    /// memory until it ends. Callers are dropped after 5 ms while each "hash" runs 150 ms; at
    /// most MAX_PARALLEL may ever run at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_hashes_keep_their_slot() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let mut callers = Vec::new();
        for _ in 0..12 {
            let t = tokio::spawn(blocking(|| {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                MOST.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(150));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
            }));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            t.abort();
            callers.push(t);
        }
        // Every abandoned hash still runs to its end, a slot at a time.
        while SLOTS.available_permits() < MAX_PARALLEL || RUNNING.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let most = MOST.load(Ordering::SeqCst);
        assert!(
            (1..=MAX_PARALLEL).contains(&most),
            "{most} hashes ran at once (limit {MAX_PARALLEL})"
        );
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_now("correct horse battery").unwrap_or_default();
        let b = hash_now("correct horse battery").unwrap_or_default();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_now("correct horse battery", &a));
        assert!(!verify_now("correct horse batterz", &a));
        assert!(!verify_now("correct horse battery", "not a hash"));
        assert!(!dummy().is_empty());
        assert!(!verify_now("", dummy()));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new("alice", "short").is_err());
        assert!(check_new("alice-at-example", "alice-at-example").is_err());
        assert!(check_new("alice", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_new("alice", "a long enough passphrase").is_ok());
    }
}
