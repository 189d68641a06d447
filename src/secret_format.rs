//! The identifiable secret format (SPEC §12): `sgs_` + 40 base62 random characters + 6
//! base62 characters of CRC32, so that leaked secrets can be found by pattern and told
//! apart from look-alikes without any lookup. Pure: no I/O besides the CSPRNG.
//!
//! Exactly: `secret = "sgs_" R C` where `R` is 40 characters from
//! `[0-9A-Za-z]` drawn uniformly from the OS CSPRNG (about 238 bits), and `C` is
//! CRC-32 (IEEE 802.3, the polynomial of zlib and `crc32fast`) over the ASCII bytes of
//! `"sgs_" R` (the first 44 characters), written in base62 with the alphabet
//! `0-9A-Za-z`, most significant digit first, zero-padded to 6 characters. A secret
//! scanner matches `\bsgs_[0-9A-Za-z]{46}\b` and then checks `C`.

use zeroize::Zeroizing;

/// The prefix every generated secret starts with.
pub const PREFIX: &str = "sgs_";
/// Random characters after the prefix.
pub const RANDOM_LEN: usize = 40;
/// Checksum characters at the end.
pub const CHECKSUM_LEN: usize = 6;
/// The whole secret: 4 + 40 + 6 = 50 characters.
pub const SECRET_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` base62 characters from the OS CSPRNG, appended to `out`. Rejection sampling keeps
/// every character equally likely (bytes 248..=255 are dropped so `b % 62` is uniform).
pub fn push_random_base62(out: &mut String, n: usize) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < n {
        let mut buf = Zeroizing::new([0u8; 64]);
        getrandom::fill(buf.as_mut()).map_err(|e| std::io::Error::other(e.to_string()))?;
        for &b in buf.iter() {
            if b < 248 && filled < n {
                out.push(char::from(BASE62[usize::from(b % 62)]));
                filled += 1;
            }
        }
    }
    Ok(())
}

/// A new identifiable secret, in zeroizing memory.
pub fn generate() -> std::io::Result<Zeroizing<String>> {
    // Reserved up front so that pushing never reallocates (and leaves a copy behind).
    let mut s = Zeroizing::new(String::with_capacity(SECRET_LEN));
    s.push_str(PREFIX);
    push_random_base62(&mut s, RANDOM_LEN)?;
    let sum = checksum(s.as_bytes());
    s.push_str(std::str::from_utf8(&sum).expect("base62 digits are ASCII"));
    Ok(s)
}

/// The 6-character checksum of `body` (`"sgs_"` + the random part).
pub fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut v = crc32fast::hash(body);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// What a presented password looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Not an identifiable secret (an older secret, or anything else): checked as usual.
    Unprefixed,
    /// `sgs_` with the right length, alphabet and checksum.
    Valid,
    /// `sgs_` but the wrong length, a character outside base62, or a bad checksum: it
    /// cannot be a secret scopegate issued, so it is refused without a hash lookup.
    Corrupt,
}

/// Classifies a presented password. Timing depends only on the (public) shape, never on
/// a stored secret, so no constant-time care is needed here.
pub fn shape(secret: &[u8]) -> Shape {
    if !secret.starts_with(PREFIX.as_bytes()) {
        return Shape::Unprefixed;
    }
    if is_valid(secret) {
        Shape::Valid
    } else {
        Shape::Corrupt
    }
}

/// True for a well-formed `sgs_` secret with a matching checksum.
pub fn is_valid(secret: &[u8]) -> bool {
    secret.len() == SECRET_LEN
        && secret.starts_with(PREFIX.as_bytes())
        && secret[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric)
        && checksum(&secret[..SECRET_LEN - CHECKSUM_LEN]) == secret[SECRET_LEN - CHECKSUM_LEN..]
}

/// A candidate found in text: byte offset and whether its checksum holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub start: usize,
    pub valid: bool,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every match of `\bsgs_[0-9A-Za-z]{46}\b` in `text` (the documented scanner regex),
/// each with its checksum verdict.
pub fn find_all(text: &[u8]) -> Vec<Candidate> {
    let mut out = Vec::new();
    let prefix = PREFIX.as_bytes();
    let mut i = 0;
    while i + SECRET_LEN <= text.len() {
        let Some(pos) = text[i..].windows(prefix.len()).position(|w| w == prefix) else {
            break;
        };
        let start = i + pos;
        i = start + 1;
        if start > 0 && is_word(text[start - 1]) {
            continue;
        }
        let end = start + SECRET_LEN;
        if end > text.len()
            || !text[start + prefix.len()..end]
                .iter()
                .all(u8::is_ascii_alphanumeric)
            || text.get(end).is_some_and(|&b| is_word(b))
        {
            continue;
        }
        out.push(Candidate {
            start,
            valid: is_valid(&text[start..end]),
        });
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        let s = generate().unwrap();
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.starts_with("sgs_"));
        assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(shape(s.as_bytes()), Shape::Valid);
        assert_ne!(*s, *generate().unwrap());
    }

    #[test]
    fn checksum_is_crc32_in_padded_base62() {
        // Decoding the six digits gives back the CRC-32 of the body.
        let body = b"sgs_0000000000000000000000000000000000000000";
        let sum = checksum(body);
        let decoded = sum.iter().fold(0u64, |acc, &c| {
            acc * 62 + BASE62.iter().position(|&x| x == c).unwrap() as u64
        });
        assert_eq!(decoded, u64::from(crc32fast::hash(body)));
        // A small value is zero-padded to six digits.
        let mut v = 61u32;
        let mut digits = [b'0'; 6];
        for slot in digits.iter_mut().rev() {
            *slot = BASE62[(v % 62) as usize];
            v /= 62;
        }
        assert_eq!(&digits, b"00000z");
    }

    #[test]
    fn corrupt_prefixed_secrets_are_told_apart() {
        let s = generate().unwrap();
        let mut flipped = s.as_bytes().to_vec();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(shape(&flipped), Shape::Corrupt);
        assert_eq!(shape(&s.as_bytes()[..49]), Shape::Corrupt);
        let mut long = s.as_bytes().to_vec();
        long.push(b'x');
        assert_eq!(shape(&long), Shape::Corrupt);
        let mut bad_char = s.as_bytes().to_vec();
        bad_char[20] = b'-';
        assert_eq!(shape(&bad_char), Shape::Corrupt);
        assert_eq!(shape(b"sgs_"), Shape::Corrupt);
        assert_eq!(shape(b"hunter2"), Shape::Unprefixed);
        assert_eq!(shape(b"SGS_abc"), Shape::Unprefixed);
    }

    #[test]
    fn find_all_follows_the_documented_regex() {
        let good = generate().unwrap();
        let mut bad = good.as_bytes().to_vec();
        bad[30] = if bad[30] == b'Q' { b'R' } else { b'Q' };
        let bad = String::from_utf8(bad).unwrap();
        let text = format!(
            "a={} b=\"{}\" x{} {}Z {}\n",
            &*good, bad, &*good, &*good, &*good
        );
        let found = find_all(text.as_bytes());
        // `x<secret>` and `<secret>Z` are not on word boundaries.
        assert_eq!(found.len(), 3);
        assert!(found[0].valid);
        assert!(!found[1].valid);
        assert!(found[2].valid);
        assert_eq!(&text[found[0].start..found[0].start + SECRET_LEN], &*good);
        assert!(find_all(b"sgs_short").is_empty());
    }
}
