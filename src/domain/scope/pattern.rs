//! Catalog path patterns: owns the grammar of grant patterns (`/v1/{account}/reports/**`), their
//! validation at load time and their specificity ranking.
//!
//! Grammar (segments separated by `/`, pattern starts with `/`):
//! - a literal segment, which must already be in the canonical form produced by
//!   [`canonicalize`] (so the matcher can compare bytes and an operator sees in the config the
//!   exact spelling that is matched);
//! - `{account}`: exactly one segment equal to the token's account;
//! - `*`: exactly one non-empty segment;
//! - `*` or `{account}` with literal text before and/or after it, inside one segment
//!   (`*.json`, `v*`, `{account}.json`): the literal text must be there and, for `*`, a
//!   non-empty middle between it (real APIs such as Twilio's write `/Calls/{Sid}.json`);
//! - `**`: only as the last segment, any number of remaining segments including none.
//!
//! `/` alone is the pattern matching only the root.

use std::fmt;
use std::str::FromStr;

use super::target::{canonicalize, TargetError};
use super::MAX_SEGMENTS;

/// One non-final-globstar segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches a path segment byte-for-byte (canonical spelling, case-sensitive).
    Literal(Box<str>),
    /// `{account}`: matches a path segment equal to the caller's account.
    Account,
    /// `*`: matches any single non-empty path segment.
    Star,
    /// `prefix*suffix`: a segment that starts with `prefix`, ends with `suffix` and has a
    /// non-empty middle that does not split a percent-encoding.
    AffixedStar(Affix),
    /// `prefix{account}suffix`: a segment equal to `prefix` + the caller's account + `suffix`.
    AffixedAccount(Affix),
}

/// The literal text around a `*` or `{account}` inside one segment; at least one side is
/// non-empty, and both are held to the canonical form of request paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Affix {
    pub prefix: Box<str>,
    pub suffix: Box<str>,
}

impl Affix {
    /// Whether `segment` (canonical, one segment) is `prefix` + a non-empty middle +
    /// `suffix`, where the middle does not start or end inside a `%XX` (so `*A9` never
    /// matches the tail of `%C3%A9`). Length checks first: no allocation, no regex.
    pub fn matches_star(&self, segment: &str) -> bool {
        let (p, s) = (self.prefix.len(), self.suffix.len());
        if segment.len() <= p + s || !segment.starts_with(&*self.prefix) {
            return false;
        }
        if !segment.ends_with(&*self.suffix) {
            return false;
        }
        // The middle is non-empty (length checked above); `get` keeps this panic-free on
        // request input regardless.
        let middle = segment
            .as_bytes()
            .get(p..segment.len() - s)
            .unwrap_or_default();
        match middle {
            [.., b'%'] | [.., b'%', _] => false,
            [_, ..] => true,
            [] => false,
        }
    }

    /// Whether `segment` is exactly `prefix` + `account` + `suffix` (an empty account never
    /// matches).
    pub fn matches_account(&self, segment: &str, account: &str) -> bool {
        !account.is_empty()
            && segment.len() == self.prefix.len() + account.len() + self.suffix.len()
            && segment.starts_with(&*self.prefix)
            && segment.ends_with(&*self.suffix)
            && segment
                .get(self.prefix.len()..self.prefix.len() + account.len())
                .is_some_and(|middle| middle == account)
    }
}

/// A parsed, validated grant path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    segments: Box<[Segment]>,
    globstar: bool,
}

/// Why a pattern was refused. Patterns come from operator config, not from requests, so the
/// messages quote the offending segment and say how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern does not start with `/`.
    MissingLeadingSlash,
    /// The pattern contains `?`.
    QueryNotAllowed,
    /// `//` or a trailing `/`.
    EmptySegment,
    /// `**` somewhere other than the last segment.
    GlobstarNotLast,
    /// More than one `*` or `{account}` in one segment (`a*b*`, `***`, `{account}*`).
    PartialWildcard { segment: String },
    /// A `{name}` segment other than `{account}`.
    UnknownPlaceholder { name: String },
    /// `{` or `}` that does not form a placeholder (`{x`, `a}`, `{{a}}`).
    MalformedPlaceholder { segment: String },
    /// A literal segment that no canonical request path could contain.
    InvalidLiteral {
        segment: String,
        reason: TargetError,
    },
    /// A literal segment that is valid but not spelled canonically (`%7e`, `%3a`).
    NonCanonicalLiteral { segment: String, canonical: String },
    /// More than [`MAX_SEGMENTS`] segments: the matcher would never reach the end.
    TooManySegments,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingLeadingSlash => {
                f.write_str("pattern must start with `/` (e.g. `/v1/{account}/**`)")
            }
            Self::QueryNotAllowed => f.write_str(
                "`?` is not allowed in a pattern: grants match the path only, never the query",
            ),
            Self::EmptySegment => f.write_str(
                "empty segment (`//` or a trailing `/`): remove it; \
                 a trailing slash on the request path is ignored when matching",
            ),
            Self::GlobstarNotLast => f.write_str(
                "`**` may only be the last segment (use `*` to match exactly one segment)",
            ),
            Self::PartialWildcard { segment } => write!(
                f,
                "segment `{segment}` holds more than one wildcard: a segment may hold one `*` \
                 or one `{{account}}`, with literal text around it (e.g. `*.json`)"
            ),
            Self::UnknownPlaceholder { name } => write!(
                f,
                "unknown placeholder `{{{name}}}`: only `{{account}}` is supported"
            ),
            Self::MalformedPlaceholder { segment } => write!(
                f,
                "`{{`/`}}` in segment `{segment}` do not form a placeholder: write \
                 `{{account}}`, e.g. `/v1/{{account}}/...` or `/v1/{{account}}.json`"
            ),
            Self::InvalidLiteral { segment, reason } => write!(
                f,
                "segment `{segment}` can never match a request path: {reason}"
            ),
            Self::NonCanonicalLiteral { segment, canonical } => write!(
                f,
                "segment `{segment}` is not in canonical form: write it as `{canonical}`"
            ),
            Self::TooManySegments => write!(
                f,
                "pattern has more than {MAX_SEGMENTS} segments and could never match"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

/// Parses and validates a grant path pattern (see the module docs for the grammar).
pub fn parse_pattern(s: &str) -> Result<Pattern, PatternError> {
    let rest = s
        .strip_prefix('/')
        .ok_or(PatternError::MissingLeadingSlash)?;
    if s.contains('?') {
        return Err(PatternError::QueryNotAllowed);
    }
    let mut segments = Vec::new();
    let mut globstar = false;
    if !rest.is_empty() {
        let mut parts = rest.split('/').peekable();
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            match part {
                "" => return Err(PatternError::EmptySegment),
                "**" if last => globstar = true,
                "**" => return Err(PatternError::GlobstarNotLast),
                "*" => segments.push(Segment::Star),
                "{account}" => segments.push(Segment::Account),
                _ => segments.push(parse_literal(part)?),
            }
            if segments.len() > MAX_SEGMENTS {
                return Err(PatternError::TooManySegments);
            }
        }
    }
    Ok(Pattern {
        segments: segments.into_boxed_slice(),
        globstar,
    })
}

fn parse_literal(part: &str) -> Result<Segment, PatternError> {
    let several = || PatternError::PartialWildcard {
        segment: part.to_owned(),
    };
    if part.contains(['{', '}']) {
        let Some((prefix, rest)) = part.split_once('{') else {
            return Err(malformed(part));
        };
        let Some((name, suffix)) = rest.split_once('}') else {
            return Err(malformed(part));
        };
        if prefix.contains('}') || name.contains('{') {
            return Err(malformed(part));
        }
        if suffix.contains(['{', '}']) {
            return Err(if suffix.contains('{') && !suffix.contains("}{") {
                several()
            } else {
                malformed(part)
            });
        }
        if name != "account" {
            return Err(PatternError::UnknownPlaceholder {
                name: name.to_owned(),
            });
        }
        if prefix.contains('*') || suffix.contains('*') {
            return Err(several());
        }
        let affix = Affix {
            prefix: affix_piece(prefix)?.into(),
            suffix: affix_piece(suffix)?.into(),
        };
        return Ok(Segment::AffixedAccount(affix));
    }
    if let Some((prefix, suffix)) = part.split_once('*') {
        if suffix.contains('*') {
            return Err(several());
        }
        let affix = Affix {
            prefix: affix_piece(prefix)?.into(),
            suffix: affix_piece(suffix)?.into(),
        };
        return Ok(Segment::AffixedStar(affix));
    }
    canonical_literal(part)
}

fn malformed(part: &str) -> PatternError {
    PatternError::MalformedPlaceholder {
        segment: part.to_owned(),
    }
}

/// Checks the literal text beside a `*` or `{account}`: the same byte rules and canonical
/// spelling as a literal segment. It is checked between two `_` so that `.` or `..` (fine as
/// part of a longer segment) are not taken for dot segments, nor a prefix's last `.` for a
/// segment's trailing dot.
fn affix_piece(piece: &str) -> Result<&str, PatternError> {
    if piece.is_empty() {
        return Ok(piece);
    }
    let as_path = format!("/_{piece}_");
    match canonicalize(&as_path) {
        Err(reason) => Err(PatternError::InvalidLiteral {
            segment: piece.to_owned(),
            reason,
        }),
        Ok(target) if target.path != as_path => Err(PatternError::NonCanonicalLiteral {
            segment: piece.to_owned(),
            canonical: target
                .path
                .get(2..target.path.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned(),
        }),
        Ok(_) => Ok(piece),
    }
}

fn canonical_literal(part: &str) -> Result<Segment, PatternError> {
    // A literal is held to exactly the rules of a request path segment: anything a request path
    // could not contain would be a dead (or, worse, a differently read) grant.
    let as_path = format!("/{part}");
    match canonicalize(&as_path) {
        Err(reason) => Err(PatternError::InvalidLiteral {
            segment: part.to_owned(),
            reason,
        }),
        Ok(target) if target.path != as_path => Err(PatternError::NonCanonicalLiteral {
            segment: part.to_owned(),
            canonical: target.path.get(1..).unwrap_or_default().to_owned(),
        }),
        Ok(_) => Ok(Segment::Literal(part.into())),
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_pattern(s)
    }
}

impl Pattern {
    /// The segments before an optional trailing `**`.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the pattern ends with `**` (matches any remaining segments, including none).
    pub fn ends_with_globstar(&self) -> bool {
        self.globstar
    }

    /// Ranks overlapping patterns; higher is more specific.
    ///
    /// Each segment scores by how much it constrains: literal 8, `{account}` with literal
    /// text around it 7, `{account}` 6, `*` with literal text around it 5, `*` 4 (a trailing
    /// `**` scores 0). The sum is doubled and 1 is added when the pattern has no `**`, so
    /// between equal sums the pattern fixing the segment count wins:
    /// `specificity = 2 * sum + (no trailing ** as u32)`.
    /// E.g. `/a` = 17, `/a/**` = 16, `/a/*` = 25, `/a/*.json` = 27, `/a/{account}` = 29,
    /// `/a/b` = 33, `/` = 1, `/**` = 0. At most `2 * 8 * MAX_SEGMENTS + 1`, so it never
    /// overflows.
    pub fn specificity(&self) -> u32 {
        let sum: u32 = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => 8,
                Segment::AffixedAccount(_) => 7,
                Segment::Account => 6,
                Segment::AffixedStar(_) => 5,
                Segment::Star => 4,
            })
            .sum();
        sum * 2 + u32::from(!self.globstar)
    }
}

/// Writes the pattern back in its (canonical) source syntax.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() && !self.globstar {
            return f.write_str("/");
        }
        for segment in self.segments.iter() {
            f.write_str("/")?;
            match segment {
                Segment::Literal(text) => f.write_str(text)?,
                Segment::Account => f.write_str("{account}")?,
                Segment::Star => f.write_str("*")?,
                Segment::AffixedStar(a) => write!(f, "{}*{}", a.prefix, a.suffix)?,
                Segment::AffixedAccount(a) => write!(f, "{}{{account}}{}", a.prefix, a.suffix)?,
            }
        }
        if self.globstar {
            f.write_str("/**")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Pattern {
        parse_pattern(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn valid_patterns_round_trip() {
        for s in [
            "/",
            "/**",
            "/*",
            "/a",
            "/a/b/c",
            "/v1/{account}/reports/**",
            "/v1/*/x/*",
            "/pub/*",
            "/%C3%A9/%3A/a-b_c~.d",
            "/a/..b",
            "/\"|!$&'()+,=:@",
            "/a*",
            "/*.json",
            "/v*x/b",
            "/2010-04-01/Accounts/{account}/Calls/*.json",
            "/{account}.json",
            "/x{account}",
            "/..*",
            "/*..",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn structure() {
        let p = ok("/v1/{account}/*/**");
        assert_eq!(
            p.segments(),
            &[
                Segment::Literal("v1".into()),
                Segment::Account,
                Segment::Star
            ]
        );
        assert!(p.ends_with_globstar());
        let root = ok("/");
        assert!(root.segments().is_empty());
        assert!(!root.ends_with_globstar());
    }

    #[test]
    fn refused_patterns() {
        use PatternError::*;
        let cases: &[(&str, PatternError)] = &[
            ("", MissingLeadingSlash),
            ("a/b", MissingLeadingSlash),
            ("*", MissingLeadingSlash),
            ("/a?b", QueryNotAllowed),
            ("/a?", QueryNotAllowed),
            ("//", EmptySegment),
            ("/a//b", EmptySegment),
            ("/a/", EmptySegment),
            ("/**/a", GlobstarNotLast),
            ("/a/**/**", GlobstarNotLast),
            (
                "/a*b*",
                PartialWildcard {
                    segment: "a*b*".into(),
                },
            ),
            (
                "/{account}*",
                PartialWildcard {
                    segment: "{account}*".into(),
                },
            ),
            (
                "/{account}{account}",
                PartialWildcard {
                    segment: "{account}{account}".into(),
                },
            ),
            (
                "/x{user}.json",
                UnknownPlaceholder {
                    name: "user".into(),
                },
            ),
            (
                "/%7e*",
                NonCanonicalLiteral {
                    segment: "%7e".into(),
                    canonical: "~".into(),
                },
            ),
            (
                "/*%2e",
                NonCanonicalLiteral {
                    segment: "%2e".into(),
                    canonical: ".".into(),
                },
            ),
            (
                "/a;*",
                InvalidLiteral {
                    segment: "a;".into(),
                    reason: TargetError::RawSemicolon,
                },
            ),
            (
                "/*%C3",
                InvalidLiteral {
                    segment: "%C3".into(),
                    reason: TargetError::InvalidUtf8,
                },
            ),
            (
                "/***",
                PartialWildcard {
                    segment: "***".into(),
                },
            ),
            (
                "/a/**b",
                PartialWildcard {
                    segment: "**b".into(),
                },
            ),
            (
                "/{user}",
                UnknownPlaceholder {
                    name: "user".into(),
                },
            ),
            (
                "/{}",
                UnknownPlaceholder {
                    name: String::new(),
                },
            ),
            (
                "/{Account}",
                UnknownPlaceholder {
                    name: "Account".into(),
                },
            ),
            (
                "/{account",
                MalformedPlaceholder {
                    segment: "{account".into(),
                },
            ),
            (
                "/a}",
                MalformedPlaceholder {
                    segment: "a}".into(),
                },
            ),
            (
                "/{{a}}",
                MalformedPlaceholder {
                    segment: "{{a}}".into(),
                },
            ),
            (
                "/.",
                InvalidLiteral {
                    segment: ".".into(),
                    reason: TargetError::DotSegment,
                },
            ),
            (
                "/a/..",
                InvalidLiteral {
                    segment: "..".into(),
                    reason: TargetError::DotSegment,
                },
            ),
            (
                "/%2e",
                InvalidLiteral {
                    segment: "%2e".into(),
                    reason: TargetError::DotSegment,
                },
            ),
            (
                "/a%2Fb",
                InvalidLiteral {
                    segment: "a%2Fb".into(),
                    reason: TargetError::EncodedSlash,
                },
            ),
            (
                "/a;b",
                InvalidLiteral {
                    segment: "a;b".into(),
                    reason: TargetError::RawSemicolon,
                },
            ),
            (
                "/a\\b",
                InvalidLiteral {
                    segment: "a\\b".into(),
                    reason: TargetError::RawBackslash,
                },
            ),
            (
                "/\u{e9}",
                InvalidLiteral {
                    segment: "\u{e9}".into(),
                    reason: TargetError::NonAscii,
                },
            ),
            (
                "/a#",
                InvalidLiteral {
                    segment: "a#".into(),
                    reason: TargetError::RawHash,
                },
            ),
            (
                "/a b",
                InvalidLiteral {
                    segment: "a b".into(),
                    reason: TargetError::DisallowedByte,
                },
            ),
            (
                "/%zz",
                InvalidLiteral {
                    segment: "%zz".into(),
                    reason: TargetError::BadPercentEncoding,
                },
            ),
            (
                "/%7e",
                NonCanonicalLiteral {
                    segment: "%7e".into(),
                    canonical: "~".into(),
                },
            ),
            (
                "/a%3ab",
                NonCanonicalLiteral {
                    segment: "a%3ab".into(),
                    canonical: "a%3Ab".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_pattern(input).as_ref(), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn error_messages_explain_and_hint() {
        let msg = |s: &str| {
            parse_pattern(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg("/**/a").contains("`**` may only be the last segment"));
        assert!(msg("/{user}").contains("`{user}`"));
        assert!(msg("/{user}").contains("`{account}`"));
        assert!(msg("/%7e").contains("write it as `~`"));
        assert!(msg("/a%2Fb").contains("encoded slash"));
        assert!(msg("/a*b*").contains("one `*`"));
    }

    #[test]
    fn segment_limit() {
        let at_limit = "/a".repeat(MAX_SEGMENTS);
        assert!(parse_pattern(&at_limit).is_ok());
        assert!(parse_pattern(&(at_limit.clone() + "/**")).is_ok());
        assert_eq!(
            parse_pattern(&(at_limit + "/a")),
            Err(PatternError::TooManySegments)
        );
    }

    #[test]
    fn specificity_ranks_constraint() {
        let s = |p: &str| ok(p).specificity();
        assert_eq!(s("/**"), 0);
        assert_eq!(s("/"), 1);
        assert_eq!(s("/a/**"), 16);
        assert_eq!(s("/a"), 17);
        assert_eq!(s("/a/*"), 25);
        assert_eq!(s("/a/*.json"), 27);
        assert_eq!(s("/a/{account}"), 29);
        assert_eq!(s("/a/{account}.json"), 31);
        assert_eq!(s("/a/b"), 33);
        assert!(s("/v1/x.json") > s("/v1/*.json"));
        assert!(s("/v1/*.json") > s("/v1/*"));
        assert!(s("/v1/{account}.json") > s("/v1/{account}"));
        // same segments: literal > {account} > * ; no globstar beats globstar
        assert!(s("/v1/acme/x") > s("/v1/{account}/x"));
        assert!(s("/v1/{account}/x") > s("/v1/*/x"));
        assert!(s("/v1/a") > s("/v1/a/**"));
        assert!(s("/v1/a/*") > s("/v1/a/**"));
        assert_eq!(
            ok(&("/a".repeat(MAX_SEGMENTS))).specificity(),
            2 * 8 * MAX_SEGMENTS as u32 + 1
        );
    }
}
