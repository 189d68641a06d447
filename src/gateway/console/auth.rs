//! Admin authentication: argon2id password checks (off the async threads), a cache of
//! verified credentials so repeated API calls cost a hash lookup instead of an argon2 run,
//! the brute-force throttle for failed logins, console sessions and CSRF tokens.
//!
//! Nothing here stores a password: the cache keys are SHA-256 digests of (user, password,
//! stored hash), so a changed hash in the config invalidates its entries by construction,
//! and sessions are kept under the digest of their random id.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::admin::AdminUser;
use crate::domain::bruteforce::{AddressThrottle, BruteForceSettings, SidFailures};

/// How long a verified credential is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Verified credentials kept at most (a handful of admin users in practice).
const CACHE_MAX: usize = 256;
/// A console session's lifetime from login (absolute, not sliding).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// User names whose failed logins are counted at most (names are what clients send).
const NAMES_MAX: usize = 1024;
/// Console sessions kept at most; the oldest go first.
const SESSIONS_MAX: usize = 1024;
/// argon2 runs at once at most (each takes 19 MiB and tens of milliseconds of a core): a
/// flood of bad logins from many addresses queues here instead of exhausting the blocking
/// pool and memory.
const MAX_CONCURRENT_CHECKS: usize = 4;

/// Makes an argon2id PHC string for `scopegate hash --argon2` (the crate's defaults,
/// OWASP's minimum: 19 MiB, 2 passes).
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A PHC string to verify against when the user name is unknown, so that a wrong name costs
/// the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(b"scopegate-no-such-user").unwrap_or_default())
}

/// The outcome of a credential check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok(String),
    Bad,
    Throttled,
}

/// A logged-in console user.
#[derive(Clone)]
pub struct Session {
    pub user: String,
    /// Digest of the user's stored password hash at login: a changed password (a new hash
    /// in the config) ends the sessions opened with the old one.
    credential: [u8; 32],
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    expires: Instant,
    /// Notes for the next page (warnings of the last change).
    pub flash: Vec<String>,
}

/// Authentication state of the admin listener.
pub struct AdminAuth {
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// Failed admin logins per client address: the admin listener's own table, so an API
    /// client guessing SIDs on the main listener (often behind the same NAT or TLS proxy as
    /// the operators) cannot lock the admins out, nor admin failures its clients.
    addresses: AddressThrottle,
    /// Failed logins per configured user name.
    failures: Mutex<HashMap<String, Arc<SidFailures>>>,
    /// Failed logins per unknown user name (bounded by [`NAMES_MAX`]).
    unknown_failures: Mutex<HashMap<String, Arc<SidFailures>>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    checks: tokio::sync::Semaphore,
}

impl Default for AdminAuth {
    fn default() -> Self {
        AdminAuth {
            verified: Mutex::default(),
            addresses: AddressThrottle::default(),
            failures: Mutex::default(),
            unknown_failures: Mutex::default(),
            sessions: Mutex::default(),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
        }
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

impl AdminAuth {
    /// Checks a user name and password against the configured users: throttled callers get
    /// [`Check::Throttled`] even with the right password; argon2 runs on the blocking pool.
    pub async fn check(
        &self,
        users: &[AdminUser],
        settings: &BruteForceSettings,
        ip: IpAddr,
        name: &str,
        password: Zeroizing<String>,
    ) -> Check {
        let now = Instant::now();
        let user = users.iter().find(|u| u.name == name);
        // Counted for any name tried, configured or not: a 429 that only real names could
        // earn would tell a guesser which names exist.
        let user_failures = self.user_failures(name, user.is_some(), now);
        let blocked = |now| self.addresses.is_blocked(ip, now) || user_failures.is_blocked(now);
        if blocked(now) {
            return Check::Throttled;
        }
        let stored = user.map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
        let key = digest(&[name.as_bytes(), password.as_bytes(), stored.as_bytes()]);
        let cached = user.is_some()
            && self.verified.lock().is_ok_and(|c| {
                c.get(&key)
                    .is_some_and(|(_, at)| now.duration_since(*at) < CACHE_TTL)
            });
        // The check slot is held until the outcome is recorded: a guess waiting for it must
        // see this one's failure when it asks the throttle again.
        let mut _slot = None;
        let ok = if cached {
            true
        } else {
            let Ok(permit) = self.checks.acquire().await else {
                return Check::Bad;
            };
            _slot = Some(permit);
            // Asked again once a check slot is ours: guesses sent all at once passed the
            // first question together, before any of them had failed.
            if blocked(Instant::now()) {
                return Check::Throttled;
            }
            let verified = tokio::task::spawn_blocking(move || {
                PasswordHash::new(&stored).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false);
            verified && user.is_some()
        };
        let now = Instant::now();
        // A right password that finished while concurrent guesses started a cooling-off
        // is refused like any other attempt during it.
        if ok && !cached && blocked(now) {
            return Check::Throttled;
        }
        if ok {
            user_failures.record_success(now);
            if !cached {
                if let Ok(mut c) = self.verified.lock() {
                    if c.len() >= CACHE_MAX {
                        c.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
                        if c.len() >= CACHE_MAX {
                            c.clear();
                        }
                    }
                    c.insert(key, (name.to_owned(), now));
                }
            }
            Check::Ok(name.to_owned())
        } else {
            let address_cooling = self.addresses.record_failure(ip, now, settings);
            let user_cooling = user_failures.record_failure(now, settings);
            // The name is what the client sent: quoted and escaped, never the password.
            tracing::warn!(
                target: "scopegate::admin",
                user = ?name,
                client = %ip,
                known_user = user.is_some(),
                cooling_off_started = address_cooling || user_cooling,
                "admin login failed"
            );
            Check::Bad
        }
    }

    /// Per-name failure state, for every name tried. Configured users' counts are never
    /// dropped (the config bounds them); unknown names are bounded: past [`NAMES_MAX`] of
    /// them, only those cooling off are kept (then none, if all of them are), so spraying
    /// names can neither grow memory nor wipe a real user's count.
    fn user_failures(&self, name: &str, configured: bool, now: Instant) -> Arc<SidFailures> {
        let table = if configured {
            &self.failures
        } else {
            &self.unknown_failures
        };
        match table.lock() {
            Ok(mut m) => {
                if !configured && m.len() >= NAMES_MAX && !m.contains_key(name) {
                    m.retain(|_, f| f.is_blocked(now));
                    if m.len() >= NAMES_MAX {
                        m.clear();
                    }
                }
                m.entry(name.to_owned()).or_default().clone()
            }
            Err(_) => Arc::default(),
        }
    }

    /// Starts a session; returns its id (for the cookie) and CSRF token.
    pub fn open_session(&self, user: &AdminUser) -> Option<(String, String)> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= SESSIONS_MAX {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            digest(&[id.as_bytes()]),
            Session {
                user: user.name.clone(),
                credential: digest(&[user.password_hash.as_bytes()]),
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
                flash: Vec::new(),
            },
        );
        Some((id, csrf))
    }

    /// The live session for a cookie value, if any, and whether its user still exists.
    pub fn session(&self, id: &str, users: &[AdminUser]) -> Option<Session> {
        let key = digest(&[id.as_bytes()]);
        let mut sessions = self.sessions.lock().ok()?;
        let s = sessions.get(&key)?;
        let still_valid = users
            .iter()
            .any(|u| u.name == s.user && digest(&[u.password_hash.as_bytes()]) == s.credential);
        if s.expires <= Instant::now() || !still_valid {
            sessions.remove(&key);
            return None;
        }
        Some(s.clone())
    }

    /// Replaces the session's notes for the next page; returns the previous ones.
    pub fn swap_flash(&self, id: &str, flash: Vec<String>) -> Vec<String> {
        let key = digest(&[id.as_bytes()]);
        match self.sessions.lock() {
            Ok(mut m) => m
                .get_mut(&key)
                .map(|s| std::mem::replace(&mut s.flash, flash))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    pub fn close_session(&self, id: &str) {
        if let Ok(mut m) = self.sessions.lock() {
            m.remove(&digest(&[id.as_bytes()]));
        }
    }
}

/// Constant-time comparison of a submitted CSRF token with the expected one.
pub fn csrf_matches(expected: &str, got: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(got.as_bytes()))
}

/// 32 random bytes as hex (session ids, CSRF tokens).
pub fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spraying_unknown_names_never_wipes_a_real_users_count() {
        let auth = AdminAuth::default();
        let settings = BruteForceSettings {
            max_failures: 3,
            ..BruteForceSettings::default()
        };
        let now = Instant::now();
        for _ in 0..2 {
            auth.user_failures("admin", true, now)
                .record_failure(now, &settings);
        }
        for i in 0..3 * NAMES_MAX {
            auth.user_failures(&format!("junk{i}"), false, now)
                .record_failure(now, &settings);
        }
        assert!(auth.unknown_failures.lock().unwrap().len() <= NAMES_MAX);
        let admin = auth.user_failures("admin", true, now);
        assert!(!admin.is_blocked(now));
        admin.record_failure(now, &settings);
        assert!(admin.is_blocked(now), "the third failure still counts");
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password(b"hunter2").unwrap();
        let b = hash_password(b"hunter2").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"));
        assert_ne!(a, b);
        let h = PasswordHash::new(&a).unwrap();
        assert!(Argon2::default().verify_password(b"hunter2", &h).is_ok());
        assert!(Argon2::default().verify_password(b"hunter3", &h).is_err());
    }

    #[test]
    fn csrf_needs_an_exact_match() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", ""));
        assert!(!csrf_matches("", ""));
    }
}
