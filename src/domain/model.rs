//! The token domain's small value types: methods, statuses, kinds and stored secret hashes.
//!
//! Kept free of I/O and of HTTP types beyond `http::Method`, so the config loader, the
//! request path and the CLI all speak the same vocabulary.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::scope::target::hex_value;

/// The HTTP methods a scope may grant. Extension methods cannot be granted: least privilege
/// means an unknown verb is never allowed by accident.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// Index of a standard method in [`KNOWN_METHODS`], `None` for anything else.
pub fn method_index(method: &str) -> Option<u8> {
    KNOWN_METHODS
        .iter()
        .position(|m| *m == method)
        .map(|i| i as u8)
}

/// The metrics label for a method: the method itself when standard, `other` otherwise,
/// so that a client inventing verbs cannot create label values.
pub fn method_label(method: &http::Method) -> &'static str {
    method_index(method.as_str())
        .map(|i| KNOWN_METHODS[i as usize])
        .unwrap_or("other")
}

/// A set of standard methods, one bit per entry of [`KNOWN_METHODS`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MethodSet(u16);

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);
    pub const ALL: MethodSet = MethodSet((1 << KNOWN_METHODS.len()) - 1);

    /// Adds a method; a GET grant also allows HEAD (SPEC §1: HEAD is a body-less GET).
    pub fn grant(&mut self, index: u8) {
        self.0 |= 1 << index;
        if KNOWN_METHODS[index as usize] == "GET" {
            self.0 |= 1 << 1;
        }
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn contains(self, index: u8) -> bool {
        self.0 & (1 << index) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as bits (one per entry of [`KNOWN_METHODS`]), for the tokens cache.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// The set of [`MethodSet::bits`]; `None` for a bit no known method has.
    pub fn from_bits(bits: u16) -> Option<MethodSet> {
        (bits & !MethodSet::ALL.0 == 0).then_some(MethodSet(bits))
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        KNOWN_METHODS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, m)| *m)
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Disabled,
}

impl TokenStatus {
    /// Every status, in [`TokenStatus::index`] order.
    pub const ALL: [TokenStatus; 2] = [TokenStatus::Active, TokenStatus::Disabled];

    /// The position in [`TokenStatus::ALL`], for per-status counts.
    pub fn index(self) -> usize {
        match self {
            TokenStatus::Active => 0,
            TokenStatus::Disabled => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Disabled => "disabled",
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    #[default]
    Scoped,
    Legacy,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Scoped => "scoped",
            TokenKind::Legacy => "legacy",
        }
    }
}

/// A stored secret: only the SHA-256 digest of the secret is ever kept.
///
/// `Debug` prints nothing of the digest: a hash of a low-entropy secret is still worth
/// keeping out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

/// Why a stored hash string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    #[error("unsupported hash scheme (expected `sha256:` followed by 64 hex digits)")]
    UnknownScheme,
    #[error("`sha256:` must be followed by exactly 64 hex digits")]
    BadDigest,
}

impl SecretHash {
    /// Parses the stored form `sha256:<64 hex>`.
    pub fn parse(stored: &str) -> Result<SecretHash, HashFormatError> {
        let hex = stored
            .strip_prefix("sha256:")
            .ok_or(HashFormatError::UnknownScheme)?;
        if hex.len() != 64 {
            return Err(HashFormatError::BadDigest);
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(HashFormatError::BadDigest)?;
            let lo = hex_value(pair[1]).ok_or(HashFormatError::BadDigest)?;
            out[i] = hi << 4 | lo;
        }
        Ok(SecretHash(out))
    }

    /// The SHA-256 digest itself, for the tokens cache (never for display: see `Debug`).
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash whose digest is `digest` (as [`SecretHash::digest`] gave it).
    pub fn from_digest(digest: [u8; 32]) -> SecretHash {
        SecretHash(digest)
    }

    /// Hashes a presented or freshly generated secret.
    pub fn of_secret(secret: &[u8]) -> SecretHash {
        SecretHash(Sha256::digest(secret).into())
    }

    /// Compares a presented secret with this hash in constant time, so that response
    /// timing tells an attacker nothing about how close a guess was.
    pub fn verify(&self, secret: &[u8]) -> bool {
        let presented = Sha256::digest(secret);
        presented.as_slice().ct_eq(&self.0).into()
    }

    /// The stored form, `sha256:<hex>`.
    pub fn to_stored(&self) -> String {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
            s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
        }
        s
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_grant_implies_head() {
        let mut set = MethodSet::default();
        set.grant(method_index("GET").unwrap());
        assert!(set.contains(method_index("HEAD").unwrap()));
        assert!(!set.contains(method_index("POST").unwrap()));
    }

    #[test]
    fn hash_round_trip_and_verify() {
        let h = SecretHash::of_secret(b"test");
        let stored = h.to_stored();
        assert_eq!(
            stored,
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        let parsed = SecretHash::parse(&stored).unwrap();
        assert!(parsed.verify(b"test"));
        assert!(!parsed.verify(b"tesu"));
        assert_eq!(format!("{parsed:?}"), "SecretHash(..)");
    }

    #[test]
    fn malformed_hashes_are_refused() {
        assert_eq!(
            SecretHash::parse("md5:abc"),
            Err(HashFormatError::UnknownScheme)
        );
        assert_eq!(
            SecretHash::parse("sha256:abc"),
            Err(HashFormatError::BadDigest)
        );
        let bad = format!("sha256:{}", "g".repeat(64));
        assert_eq!(SecretHash::parse(&bad), Err(HashFormatError::BadDigest));
    }

    #[test]
    fn other_methods_get_one_label() {
        let m = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&m), "other");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
    }
}
