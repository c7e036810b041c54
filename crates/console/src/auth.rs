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
    /// A village (its head, its PIMPASA officer): reports what it sees for its own village
    /// (identity `desa/<village code>`), and sees nothing of the operations pages.
    Village,
}

impl Role {
    /// The role's name, as the config and the gateway's alert rules spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::Village => "village",
        }
    }
    pub fn may_act(self) -> bool {
        matches!(self, Role::Operator | Role::Supervisor)
    }
    pub fn may_resolve(self) -> bool {
        self == Role::Supervisor
    }
    pub fn may_audit(self) -> bool {
        self == Role::Auditor
    }
    /// Where the role starts after logging in: a village's reporting page, or the alerts.
    pub fn home(self) -> &'static str {
        match self {
            Role::Village => "/desa/",
            _ => "/",
        }
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

/// Sessions by token, and the bounds on logging in.
pub struct Sessions {
    idle: Duration,
    max_age: Duration,
    by_token: Mutex<HashMap<String, Session>>,
    /// Login attempts per username not yet followed by a success: (count, last attempt).
    attempts: Mutex<HashMap<String, (u32, Instant)>>,
    /// Login attempts per client address in the current window: (count, window start).
    by_address: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

/// Attempts allowed for one username before it is locked for [`LOCKOUT`] (counted before the
/// password is checked, so parallel guesses cannot outrun the lock).
pub const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(60);
/// Login attempts one client address may make per [`ADDRESS_WINDOW`].
pub const MAX_PER_ADDRESS: u32 = 30;
const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// Most usernames or addresses remembered; past it the stalest are forgotten first.
pub const MAX_REMEMBERED: usize = 10_000;
/// Longest username considered (characters); longer ones are refused before any work.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest password considered (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a login attempt is not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many attempts for this username lately.
    Locked,
    /// Too many attempts from this address lately.
    Address,
}

/// Keep `map` within [`MAX_REMEMBERED`] before one more entry: what is older than `keep` goes
/// first, then the stalest.
fn bound<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, (u32, Instant)>, keep: Duration) {
    if map.len() < MAX_REMEMBERED {
        return;
    }
    map.retain(|_, (_, at)| at.elapsed() < keep);
    while map.len() >= MAX_REMEMBERED {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (_, at))| *at)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        Self {
            idle,
            max_age,
            by_token: Mutex::default(),
            attempts: Mutex::default(),
            by_address: Mutex::default(),
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

    /// How many sessions are live (the expired ones dropped now).
    pub fn live(&self) -> usize {
        let now = Instant::now();
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| self.alive(s, now));
        map.len()
    }

    pub fn close(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Count a login attempt for `username` from `address` before its password is checked;
    /// refused when the username is locked or the address has made too many attempts.
    pub fn attempt(&self, username: &str, address: std::net::IpAddr) -> Result<(), Refusal> {
        {
            let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
            bound(&mut map, ADDRESS_WINDOW);
            let e = map.entry(address).or_insert((0, Instant::now()));
            if e.1.elapsed() >= ADDRESS_WINDOW {
                *e = (0, Instant::now());
            }
            if e.0 >= MAX_PER_ADDRESS {
                return Err(Refusal::Address);
            }
            e.0 += 1;
        }
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        bound(&mut map, LOCKOUT);
        let e = map
            .entry(username.to_owned())
            .or_insert((0, Instant::now()));
        if e.1.elapsed() >= LOCKOUT {
            e.0 = 0;
        }
        if e.0 >= MAX_FAILURES {
            return Err(Refusal::Locked);
        }
        e.0 += 1;
        e.1 = Instant::now();
        Ok(())
    }

    /// A login succeeded: the username's attempts are forgotten.
    pub fn succeeded(&self, username: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }

    /// Usernames and addresses remembered (for the bound).
    pub fn remembered(&self) -> usize {
        self.attempts.lock().map_or(0, |m| m.len()) + self.by_address.lock().map_or(0, |m| m.len())
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
    fn attempts_are_counted_before_the_check_so_parallel_guesses_cannot_outrun_the_lock() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
        for i in 0..MAX_FAILURES {
            assert_eq!(s.attempt("op", ip(i as u8)), Ok(()));
        }
        assert_eq!(s.attempt("op", ip(9)), Err(Refusal::Locked));
        assert_eq!(s.attempt("other", ip(9)), Ok(()));
        s.succeeded("op");
        assert_eq!(s.attempt("op", ip(9)), Ok(()));
        // Several threads at once: never more than MAX_FAILURES get through.
        let s = std::sync::Arc::new(Sessions::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let through: u32 = (0..40)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || u32::from(s.attempt("target", ip(i)).is_ok()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(through, MAX_FAILURES);
    }

    #[test]
    fn one_address_is_limited_and_the_record_stays_bounded() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        for i in 0..MAX_PER_ADDRESS {
            assert_eq!(s.attempt(&format!("u{i}"), ip), Ok(()));
        }
        assert_eq!(s.attempt("u-last", ip), Err(Refusal::Address));
        // Many usernames from many addresses: the record never grows past its bound.
        for i in 0..(MAX_REMEMBERED as u32 + 500) {
            let addr = std::net::IpAddr::from((i + 1).to_be_bytes());
            let _ = s.attempt(&format!("spray-{i}"), addr);
        }
        assert!(s.remembered() <= 2 * MAX_REMEMBERED, "{}", s.remembered());
    }
}
