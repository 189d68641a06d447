//! Catalog path patterns: owns the grammar of grant patterns (`/v1/{account}/reports/**`), their
//! validation at load time and their specificity ranking.
//!
//! Grammar (segments separated by `/`, pattern starts with `/`):
//! - a literal segment, which must already be in the canonical form produced by
//!   [`canonicalize`] (so the matcher can compare bytes and an operator sees in the config the
//!   exact spelling that is matched);
//! - `{account}`: exactly one segment equal to the token's account;
//! - `*`: exactly one non-empty segment;
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
    /// `*` inside a longer segment (`a*`, `***`).
    PartialWildcard { segment: String },
    /// A `{name}` segment other than `{account}`.
    UnknownPlaceholder { name: String },
    /// `{` or `}` that does not form a whole-segment placeholder (`a{account}`, `{x`).
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
                "`*` must be a whole segment, found `{segment}`: \
                 partial-segment wildcards are not supported"
            ),
            Self::UnknownPlaceholder { name } => write!(
                f,
                "unknown placeholder `{{{name}}}`: only `{{account}}` is supported"
            ),
            Self::MalformedPlaceholder { segment } => write!(
                f,
                "`{{`/`}}` in segment `{segment}`: a placeholder must be a whole segment, \
                 e.g. `/v1/{{account}}/...`"
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
    if part.contains(['{', '}']) {
        let inner = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
        return Err(match inner {
            Some(name) if !name.contains(['{', '}']) => PatternError::UnknownPlaceholder {
                name: name.to_owned(),
            },
            _ => PatternError::MalformedPlaceholder {
                segment: part.to_owned(),
            },
        });
    }
    if part.contains('*') {
        return Err(PatternError::PartialWildcard {
            segment: part.to_owned(),
        });
    }
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
    /// Each segment scores by how much it constrains: literal 4, `{account}` 3, `*` 2 (a
    /// trailing `**` scores 0). The sum is doubled and 1 is added when the pattern has no `**`,
    /// so between equal sums the pattern fixing the segment count wins:
    /// `specificity = 2 * sum + (no trailing ** as u32)`.
    /// E.g. `/a` = 9, `/a/**` = 8, `/a/*` = 13, `/a/{account}` = 15, `/a/b` = 17, `/` = 1,
    /// `/**` = 0. At most `2 * 4 * MAX_SEGMENTS + 1`, so it never overflows.
    pub fn specificity(&self) -> u32 {
        let sum: u32 = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => 4,
                Segment::Account => 3,
                Segment::Star => 2,
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
                "/a*",
                PartialWildcard {
                    segment: "a*".into(),
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
                "/x{account}",
                MalformedPlaceholder {
                    segment: "x{account}".into(),
                },
            ),
            (
                "/{account}x",
                MalformedPlaceholder {
                    segment: "{account}x".into(),
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
        assert!(msg("/a*").contains("whole segment"));
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
        assert_eq!(s("/a/**"), 8);
        assert_eq!(s("/a"), 9);
        assert_eq!(s("/a/*"), 13);
        assert_eq!(s("/a/{account}"), 15);
        assert_eq!(s("/a/b"), 17);
        // same segments: literal > {account} > * ; no globstar beats globstar
        assert!(s("/v1/acme/x") > s("/v1/{account}/x"));
        assert!(s("/v1/{account}/x") > s("/v1/*/x"));
        assert!(s("/v1/a") > s("/v1/a/**"));
        assert!(s("/v1/a/*") > s("/v1/a/**"));
        assert_eq!(
            ok(&("/a".repeat(MAX_SEGMENTS))).specificity(),
            2 * 4 * MAX_SEGMENTS as u32 + 1
        );
    }
}
