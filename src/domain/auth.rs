//! HTTP Basic credentials: strict parsing of the `Authorization` header.
//!
//! Pure: takes a `HeaderMap`, returns a typed result. The secret is held in zeroizing
//! memory and never printed by `Debug`, so a stray `{:?}` cannot leak it into a log.

use std::fmt;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use zeroize::Zeroizing;

/// Longest `Authorization` value accepted. Generated credentials are about 110 bytes;
/// the bound keeps a client from making the gateway decode megabytes per request.
pub const MAX_AUTHORIZATION_LEN: usize = 1024;

/// Credentials presented by a client: the decoded `sid:secret` text, kept whole in one
/// zeroizing buffer (one allocation per request, wiped on drop) and split at `colon`.
pub struct Credentials {
    text: Zeroizing<String>,
    colon: usize,
}

impl Credentials {
    pub fn sid(&self) -> &str {
        &self.text[..self.colon]
    }

    pub fn secret(&self) -> &[u8] {
        &self.text.as_bytes()[self.colon + 1..]
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("sid", &self.sid())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why no credentials could be read. Every variant but `Ambiguous` answers 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization scheme is not Basic")]
    NotBasic,
    #[error("Authorization value is malformed")]
    Malformed,
    #[error("Authorization value is too long")]
    TooLong,
    /// Several `Authorization` headers: the gateway and an upstream could pick different
    /// ones, so the request is refused as a whole (400).
    #[error("several Authorization headers")]
    Ambiguous,
}

/// Reads Basic credentials from the headers (RFC 7617).
///
/// Strict on purpose: scheme name case-insensitive, one or more spaces, standard base64
/// with padding, UTF-8 without control characters, split at the first `:`. Only the
/// `Authorization` header is a source: never `Proxy-Authorization`, URL userinfo or trailers.
pub fn parse_basic(headers: &HeaderMap) -> Result<Credentials, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Ambiguous);
    }
    parse_basic_value(value.as_bytes())
}

/// Parses one `Authorization` field value.
pub fn parse_basic_value(value: &[u8]) -> Result<Credentials, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthError::TooLong);
    }
    // Whitespace around a field value is not part of it (RFC 9110 §5.5).
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(AuthError::NotBasic);
    }
    // RFC 7235 §2.1: `credentials = auth-scheme [ 1*SP token68 ]`, so any run of spaces.
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let rest = &rest[start..];
    if rest.is_empty() || rest.contains(&b' ') {
        return Err(AuthError::Malformed);
    }
    // `base64-simd`'s strict standard engine: the same acceptance as the `base64` crate's
    // (padding required, no stray bits; a property test compares them), in a fraction of
    // its instructions (BENCHMARKS.md, round 9).
    let decoded = base64_simd::STANDARD
        .decode_to_vec(rest)
        .map_err(|_| AuthError::Malformed)?;
    let text = match String::from_utf8(decoded) {
        Ok(text) => Zeroizing::new(text),
        Err(e) => {
            // Not UTF-8, but it may still hold most of a secret: wiped like the rest.
            drop(Zeroizing::new(e.into_bytes()));
            return Err(AuthError::Malformed);
        }
    };
    // The usual credentials are ASCII, where a control character is one byte.
    let has_control = if text.is_ascii() {
        text.bytes().any(|b| b.is_ascii_control())
    } else {
        text.chars().any(char::is_control)
    };
    if has_control {
        return Err(AuthError::Malformed);
    }
    let colon = text
        .bytes()
        .position(|b| b == b':')
        .ok_or(AuthError::Malformed)?;
    Ok(Credentials { text, colon })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use http::HeaderValue;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn parses_standard_credentials() {
        let c = parse_basic(&header(&basic("SGabc:s3cr:et"))).unwrap();
        assert_eq!(c.sid(), "SGabc");
        assert_eq!(c.secret(), b"s3cr:et", "split at the first colon only");
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let v = basic("a:b").replacen("Basic", "bAsIc", 1);
        assert!(parse_basic(&header(&v)).is_ok());
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, AuthError)] = &[
            ("Bearer abc", AuthError::NotBasic),
            ("Basic", AuthError::Malformed),
            ("Basic ", AuthError::Malformed),
            ("Basic\tYTpi", AuthError::NotBasic), // only SP separates (RFC 7235)
            ("Basic YT pi", AuthError::Malformed),
            ("Basic YTpi", AuthError::Malformed), // "a:b" needs padding: YTpi is fine? no: see below
            ("Basic YQ", AuthError::Malformed),   // missing padding
            ("Basic YQ==extra", AuthError::Malformed),
            ("Basic YTp=", AuthError::Malformed), // "a:" with stray bits in its last char
            ("Basic YTo", AuthError::Malformed),  // "a:" without its padding
            ("Basic !!!!", AuthError::Malformed),
            ("Basic YWJj", AuthError::Malformed), // "abc": no colon
        ];
        for (value, want) in cases {
            if *value == "Basic YTpi" {
                // "a:b" encodes to YTpi without padding needed: valid.
                assert!(parse_basic(&header(value)).is_ok());
                continue;
            }
            assert_eq!(
                parse_basic(&header(value)).err(),
                Some(*want),
                "value {value:?}"
            );
        }
    }

    #[test]
    fn one_or_more_spaces_after_the_scheme() {
        for spaces in [" ", "  ", "     "] {
            let v = format!(" Basic{spaces}{} ", STANDARD.encode("SGabc:s"));
            let c = parse_basic(&header(&v)).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(c.sid(), "SGabc");
        }
    }

    #[test]
    fn control_characters_and_bad_utf8_are_refused() {
        let v = format!("Basic {}", STANDARD.encode("a:b\u{1}"));
        assert_eq!(parse_basic(&header(&v)).err(), Some(AuthError::Malformed));
        let v = format!("Basic {}", STANDARD.encode([b'a', b':', 0xC0, 0xAF]));
        assert_eq!(parse_basic(&header(&v)).err(), Some(AuthError::Malformed));
    }

    #[test]
    fn missing_several_and_long() {
        assert_eq!(
            parse_basic(&HeaderMap::new()).err(),
            Some(AuthError::Missing)
        );
        let mut h = header(&basic("a:b"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic YTpj"));
        assert_eq!(parse_basic(&h).err(), Some(AuthError::Ambiguous));
        let long = basic(&format!("a:{}", "x".repeat(2000)));
        assert_eq!(parse_basic(&header(&long)).err(), Some(AuthError::TooLong));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = parse_basic(&header(&basic("SGabc:hunter2"))).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("SGabc"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// The decoder on the request path accepts exactly what the `base64` crate's strict
        /// standard engine accepts (padding required, no stray bits, no other alphabet), and
        /// decodes it the same.
        #[test]
        fn the_fast_decoder_agrees_with_the_strict_reference(
            text in "[A-Za-z0-9+/=_ -]{0,24}|([A-Za-z0-9+/]{4}){0,6}[A-Za-z0-9+/]{2}[A-Za-z0-9+/=]{2}"
        ) {
            let reference = STANDARD.decode(&text).ok();
            let fast = base64_simd::STANDARD.decode_to_vec(&text).ok();
            proptest::prop_assert_eq!(fast, reference, "{:?}", text);
        }
    }
}
