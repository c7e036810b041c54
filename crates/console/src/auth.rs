//! Console accounts (from config, passwords hashed with argon2) and sessions (in memory, with an
//! idle timeout and a maximum age).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What an account may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches alerts; acknowledges, assigns and escalates them.
    Operator,
    /// An operator who may also resolve alerts (confirmed or false positive).
    Supervisor,
    /// Reads alerts and the access records; changes nothing.
    Auditor,
}

impl Role {
    pub fn may_act(self) -> bool {
        matches!(self, Role::Operator | Role::Supervisor)
    }
    pub fn may_resolve(self) -> bool {
        self == Role::Supervisor
    }
    pub fn may_audit(self) -> bool {
        self == Role::Auditor
    }
}

/// One console account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub username: String,
    /// Shown to other operators next to every action.
    pub display_name: String,
    pub role: Role,
    /// The gateway identity (`agency/unit`) the console reads and acts as for this account:
    /// the gateway's read rights for that agency apply.
    pub identity: String,
    /// Argon2 PHC string (`timpora console hash-password`).
    pub password_hash: String,
}

/// Hash a password for the config (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Hash(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Hash(e.to_string()))?
        .to_string())
}

/// A hash no password is known for: checked against when a username is unknown.
pub static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let secret = timpora_client::random_hex(16).unwrap_or_else(|_| "decoy".into());
    hash_password(&secret).unwrap_or_default()
});

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A logged-in account.
#[derive(Debug, Clone)]
struct Session {
    account: usize,
    created: Instant,
    seen: Instant,
}

/// Sessions by token.
pub struct Sessions {
    idle: Duration,
    max_age: Duration,
    by_token: Mutex<HashMap<String, Session>>,
    /// Failed logins per username: (count, last failure).
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Failed logins allowed before a username is locked for [`LOCKOUT`].
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(60);

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        Self {
            idle,
            max_age,
            by_token: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// A new session for account number `account`; its token.
    pub fn open(&self, account: usize) -> Result<String, Error> {
        let token = timpora_client::random_hex(32)?;
        let now = Instant::now();
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        // Expired sessions are dropped as new ones are made.
        map.retain(|_, s| self.alive(s, now));
        map.insert(
            token.clone(),
            Session {
                account,
                created: now,
                seen: now,
            },
        );
        Ok(token)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.seen) < self.idle && now.duration_since(s.created) < self.max_age
    }

    /// The account of a live session (and mark it used); `None` if unknown or expired.
    pub fn account(&self, token: &str) -> Option<usize> {
        let now = Instant::now();
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(token) {
            Some(s) if self.alive(s, now) => {
                s.seen = now;
                Some(s.account)
            }
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Whether `username` is locked after too many failed logins.
    pub fn locked(&self, username: &str) -> bool {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(username)
            .is_some_and(|(n, at)| *n >= MAX_FAILURES && at.elapsed() < LOCKOUT)
    }

    pub fn failed(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Guessing at many usernames must not grow the table without bound.
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < LOCKOUT);
        }
        let e = map
            .entry(username.to_owned())
            .or_insert((0, Instant::now()));
        if e.1.elapsed() >= LOCKOUT {
            e.0 = 0;
        }
        e.0 += 1;
        e.1 = Instant::now();
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
        // The decoy for unknown usernames is a real hash that nothing matches.
        assert!(DECOY_HASH.starts_with("$argon2id$"));
        assert!(!verify_password("", &DECOY_HASH) && !verify_password("decoy", &DECOY_HASH));
    }

    #[test]
    fn sessions_expire_when_idle_and_when_old() {
        let s = Sessions::new(Duration::from_millis(50), Duration::from_secs(60));
        let t = s.open(2).unwrap();
        assert_eq!(s.account(&t), Some(2));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(s.account(&t), None, "idle too long");
        let s = Sessions::new(Duration::from_secs(60), Duration::from_millis(50));
        let t = s.open(0).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(s.account(&t), None, "older than the maximum age");
        let t = s.open(1).unwrap();
        s.close(&t);
        assert_eq!(s.account(&t), None);
        assert_eq!(s.account("made-up"), None);
    }

    #[test]
    fn repeated_failures_lock_the_username_for_a_while() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        for _ in 0..MAX_FAILURES - 1 {
            s.failed("op");
        }
        assert!(!s.locked("op"));
        s.failed("op");
        assert!(s.locked("op"));
        assert!(!s.locked("other"));
        s.succeeded("op");
        assert!(!s.locked("op"));
    }
}
