//! Relations between patterns, for `scopegate catalog diff`: whether one pattern matches every
//! path another one does (`covers`), and whether two may match a common path (`overlaps`).
//!
//! `covers` is exact for one pattern against one pattern (a path covered only by the union of
//! several patterns is reported as not covered); `overlaps` errs towards "yes" where the
//! answer depends on the caller's account, so a drift report never invents a missing link.

use super::pattern::{Pattern, Segment};

/// Whether every path `inner` matches is also matched by `outer` (for every account).
pub fn covers(outer: &Pattern, inner: &Pattern) -> bool {
    let (o, i) = (outer.segments(), inner.segments());
    let shape = if outer.ends_with_globstar() {
        i.len() >= o.len()
    } else {
        !inner.ends_with_globstar() && i.len() == o.len()
    };
    shape && o.iter().zip(i).all(|(o, i)| segment_covers(o, i))
}

fn segment_covers(outer: &Segment, inner: &Segment) -> bool {
    match (outer, inner) {
        (Segment::Star, _) => true,
        (Segment::Literal(a), Segment::Literal(b)) => a == b,
        (Segment::Account, Segment::Account) => true,
        (Segment::AffixedAccount(a), Segment::AffixedAccount(b)) => a == b,
        (Segment::AffixedStar(a), Segment::Literal(text)) => a.matches_star(text),
        (Segment::AffixedStar(a), Segment::AffixedStar(b) | Segment::AffixedAccount(b)) => {
            b.prefix.starts_with(&*a.prefix) && b.suffix.ends_with(&*a.suffix)
        }
        _ => false,
    }
}

/// Whether some path (for some account) may be matched by both patterns.
pub fn overlaps(a: &Pattern, b: &Pattern) -> bool {
    let (x, y) = (a.segments(), b.segments());
    let shape = match (a.ends_with_globstar(), b.ends_with_globstar()) {
        (false, false) => x.len() == y.len(),
        (true, false) => y.len() >= x.len(),
        (false, true) => x.len() >= y.len(),
        (true, true) => true,
    };
    shape && x.iter().zip(y).all(|(s, t)| segments_overlap(s, t))
}

fn segments_overlap(a: &Segment, b: &Segment) -> bool {
    match (a, b) {
        (Segment::Literal(x), Segment::Literal(y)) => x == y,
        (Segment::Literal(text), Segment::AffixedStar(f))
        | (Segment::AffixedStar(f), Segment::Literal(text)) => f.matches_star(text),
        (Segment::Literal(text), Segment::AffixedAccount(f))
        | (Segment::AffixedAccount(f), Segment::Literal(text)) => {
            text.len() > f.prefix.len() + f.suffix.len()
                && text.starts_with(&*f.prefix)
                && text.ends_with(&*f.suffix)
        }
        (Segment::AffixedStar(f), Segment::AffixedStar(g)) => {
            (f.prefix.starts_with(&*g.prefix) || g.prefix.starts_with(&*f.prefix))
                && (f.suffix.ends_with(&*g.suffix) || g.suffix.ends_with(&*f.suffix))
        }
        // `*`, `{account}` (any account) and the mixed affixed cases: possibly.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scope::parse_pattern;

    fn p(s: &str) -> Pattern {
        parse_pattern(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn covering() {
        for (outer, inner) in [
            ("/a/*", "/a/b"),
            ("/a/*", "/a/*.json"),
            ("/a/*", "/a/{account}"),
            ("/a/**", "/a"),
            ("/a/**", "/a/b/c"),
            ("/a/**", "/a/**"),
            ("/a/*.json", "/a/x.json"),
            ("/a/*.json", "/a/v*.json"),
            ("/a/{account}", "/a/{account}"),
            ("/a/{account}.json", "/a/{account}.json"),
            ("/**", "/"),
        ] {
            assert!(covers(&p(outer), &p(inner)), "{outer} covers {inner}");
        }
        for (outer, inner) in [
            ("/a/b", "/a/*"),
            ("/a/*", "/a"),
            ("/a/*", "/a/**"),
            ("/a/*.json", "/a/.json"),
            ("/a/*.json", "/a/*"),
            ("/a/*.json", "/a/{account}"),
            ("/a/{account}", "/a/*"),
            ("/a/{account}", "/a/acme"),
            ("/a", "/a/b"),
            ("/a/b/**", "/a"),
        ] {
            assert!(
                !covers(&p(outer), &p(inner)),
                "{outer} does not cover {inner}"
            );
        }
    }

    #[test]
    fn overlapping() {
        for (a, b) in [
            ("/a/*", "/a/b"),
            ("/a/**", "/a/b/c"),
            ("/a/*.json", "/a/x.json"),
            ("/a/*.json", "/a/v*"),
            ("/a/{account}", "/a/x"),
            ("/**", "/x"),
        ] {
            assert!(overlaps(&p(a), &p(b)), "{a} / {b}");
            assert!(overlaps(&p(b), &p(a)), "{b} / {a}");
        }
        for (a, b) in [
            ("/a/b", "/a/c"),
            ("/a/*", "/a"),
            ("/a/*.json", "/a/x.xml"),
            ("/a/*.json", "/a/*.xml"),
            ("/b/**", "/a/x"),
        ] {
            assert!(!overlaps(&p(a), &p(b)), "{a} / {b}");
            assert!(!overlaps(&p(b), &p(a)), "{b} / {a}");
        }
    }
}
