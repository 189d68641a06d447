//! Compiled catalog matcher: owns the segment trie built from every API's grant patterns and
//! the per-request walk that reports which (API, pattern) pairs match a canonical path.
//!
//! Why a trie: the walk costs O(trie nodes reachable from the path), independent of how many
//! tokens or patterns exist, and it allocates nothing per request. The catalog is immutable once
//! built and shared behind an `Arc`, so a reload swaps in a whole new catalog.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::pattern::{Affix, Pattern, Segment};
use super::MAX_SEGMENTS;

/// Identifies an upstream API in the catalog.
pub type ApiId = u16;

/// One matching (API, pattern) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Match {
    pub api: ApiId,
    /// The index the caller gave the pattern in [`CatalogBuilder::add`].
    pub pattern_index: u16,
    /// [`Pattern::specificity`] of the matching pattern, to pick the best among overlaps.
    pub specificity: u32,
}

/// Accumulates patterns; [`CatalogBuilder::build`] freezes them into a [`Catalog`].
#[derive(Debug)]
pub struct CatalogBuilder {
    nodes: Vec<BuildNode>,
    patterns: usize,
}

#[derive(Debug, Default)]
struct BuildNode {
    literals: BTreeMap<Box<str>, usize>,
    account: Option<usize>,
    star: Option<usize>,
    affixed: BTreeMap<(bool, Affix), usize>,
    exact: Vec<Match>,
    globstar: Vec<Match>,
}

impl Default for CatalogBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CatalogBuilder {
    pub fn new() -> Self {
        Self {
            nodes: vec![BuildNode::default()],
            patterns: 0,
        }
    }

    /// Adds `pattern` for `api`. Adding the same triple twice reports it twice.
    pub fn add(&mut self, api: ApiId, pattern_index: u16, pattern: &Pattern) -> &mut Self {
        let mut node = 0;
        for segment in pattern.segments() {
            node = self.child(node, segment);
        }
        let found = Match {
            api,
            pattern_index,
            specificity: pattern.specificity(),
        };
        if let Some(node) = self.nodes.get_mut(node) {
            if pattern.ends_with_globstar() {
                node.globstar.push(found);
            } else {
                node.exact.push(found);
            }
            self.patterns += 1;
        }
        self
    }

    /// The child of `parent` for `segment`, created if missing.
    fn child(&mut self, parent: usize, segment: &Segment) -> usize {
        let next = self.nodes.len();
        let Some(node) = self.nodes.get_mut(parent) else {
            return parent;
        };
        let slot = match segment {
            Segment::Literal(text) => {
                if let Some(&existing) = node.literals.get(text) {
                    return existing;
                }
                node.literals.insert(text.clone(), next);
                return self.push_node(next);
            }
            Segment::Account => &mut node.account,
            Segment::Star => &mut node.star,
            Segment::AffixedStar(affix) | Segment::AffixedAccount(affix) => {
                let key = (matches!(segment, Segment::AffixedAccount(_)), affix.clone());
                if let Some(&existing) = node.affixed.get(&key) {
                    return existing;
                }
                node.affixed.insert(key, next);
                return self.push_node(next);
            }
        };
        match *slot {
            Some(existing) => existing,
            None => {
                *slot = Some(next);
                self.push_node(next)
            }
        }
    }

    fn push_node(&mut self, id: usize) -> usize {
        self.nodes.push(BuildNode::default());
        id
    }

    pub fn build(self) -> Catalog {
        let nodes = self
            .nodes
            .into_iter()
            .map(|node| Node {
                // BTreeMap iterates in byte order, which is what the walk binary-searches.
                literals: node.literals.into_iter().collect(),
                account: node.account,
                star: node.star,
                affixed: node
                    .affixed
                    .into_iter()
                    .map(|((account, affix), child)| AffixedChild {
                        account,
                        affix,
                        child,
                    })
                    .collect(),
                exact: node.exact.into_boxed_slice(),
                globstar: node.globstar.into_boxed_slice(),
            })
            .collect();
        Catalog {
            inner: Arc::new(Inner {
                nodes,
                patterns: self.patterns,
            }),
        }
    }
}

/// Immutable compiled catalog. `Send + Sync`; `clone` is a reference-count increment.
#[derive(Debug, Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Node 0 is the root (no segment consumed).
    nodes: Box<[Node]>,
    patterns: usize,
}

#[derive(Debug)]
struct Node {
    /// Sorted by key for binary search.
    literals: Box<[(Box<str>, usize)]>,
    account: Option<usize>,
    star: Option<usize>,
    /// `prefix*suffix` and `prefix{account}suffix` children, each checked with two
    /// comparisons; real catalogs have one or two per node (`*.json`).
    affixed: Box<[AffixedChild]>,
    /// Patterns ending exactly at this node.
    exact: Box<[Match]>,
    /// Patterns ending with `**` at this node: they match whatever remains, including nothing.
    globstar: Box<[Match]>,
}

#[derive(Debug)]
struct AffixedChild {
    /// `{account}` between the affixes rather than `*`.
    account: bool,
    affix: Affix,
    child: usize,
}

impl Default for Catalog {
    fn default() -> Self {
        CatalogBuilder::new().build()
    }
}

impl Catalog {
    /// Calls `f` once for every (api, pattern) that matches `path` (a canonical path from
    /// [`canonicalize`](super::canonicalize)); order is unspecified.
    ///
    /// A single trailing slash is ignored (`/a/` is matched like `/a`). An empty `account`
    /// matches no `{account}` segment. Paths deeper than [`MAX_SEGMENTS`] match nothing.
    /// On a non-canonical path the result is meaningless (but safe): callers must canonicalize
    /// first, since e.g. `/pub/../admin` would be matched segment by segment.
    pub fn for_each_match(&self, path: &str, account: &str, mut f: impl FnMut(Match)) {
        let Some(rest) = path.strip_prefix('/') else {
            return;
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // Bounds the recursion below by the input, whatever the trie depth.
        let separators = rest.bytes().filter(|&b| b == b'/').count();
        if separators >= MAX_SEGMENTS {
            return;
        }
        let rest = (!rest.is_empty()).then_some(rest);
        self.walk(0, rest, account, &mut f);
    }

    /// `rest` holds the unconsumed segments (`"seg/seg"`), `None` once all are consumed. Every
    /// trie node has one parent, so each node is visited at most once per call.
    fn walk<F: FnMut(Match)>(&self, node: usize, rest: Option<&str>, account: &str, f: &mut F) {
        let Some(node) = self.inner.nodes.get(node) else {
            return;
        };
        for &found in node.globstar.iter() {
            f(found);
        }
        let Some(rest) = rest else {
            for &found in node.exact.iter() {
                f(found);
            }
            return;
        };
        // A byte loop, not `split_once`: segments are short, and the generic searcher's
        // set-up costs more than the scan.
        let (segment, next) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if segment.is_empty() {
            return;
        }
        if let Ok(i) = node
            .literals
            .binary_search_by(|(key, _)| (**key).cmp(segment))
        {
            if let Some(&(_, child)) = node.literals.get(i) {
                self.walk(child, next, account, f);
            }
        }
        if let Some(child) = node.account {
            if segment == account {
                self.walk(child, next, account, f);
            }
        }
        if let Some(child) = node.star {
            self.walk(child, next, account, f);
        }
        for affixed in node.affixed.iter() {
            let hit = if affixed.account {
                affixed.affix.matches_account(segment, account)
            } else {
                affixed.affix.matches_star(segment)
            };
            if hit {
                self.walk(affixed.child, next, account, f);
            }
        }
    }

    /// Number of patterns added.
    pub fn len(&self) -> usize {
        self.inner.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.inner.patterns == 0
    }

    /// Number of trie nodes (root included); for metrics and tests.
    pub fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scope::parse_pattern;

    fn catalog(patterns: &[(ApiId, &str)]) -> Catalog {
        let mut builder = CatalogBuilder::new();
        for (index, &(api, text)) in patterns.iter().enumerate() {
            let pattern = parse_pattern(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            builder.add(api, index, &pattern);
        }
        builder.build()
    }

    fn matches(c: &Catalog, path: &str, account: &str) -> Vec<(ApiId, u16, u32)> {
        let mut found = Vec::new();
        c.for_each_match(path, account, |m| {
            found.push((m.api, m.pattern_index, m.specificity))
        });
        found.sort_unstable();
        found
    }

    fn apis(c: &Catalog, path: &str, account: &str) -> Vec<ApiId> {
        matches(c, path, account).into_iter().map(|m| m.0).collect()
    }

    /// (pattern, path, matches?) for account `acme`.
    const SEMANTICS: &[(&str, &str, bool)] = &[
        ("/", "/", true),
        ("/", "/a", false),
        ("/a", "/a", true),
        ("/a", "/a/", true),
        ("/a", "/A", false),
        ("/a", "/ab", false),
        ("/a", "/a/b", false),
        ("/a", "/", false),
        ("/a/b", "/a/b", true),
        ("/a/b", "/a/b/", true),
        ("/a/b", "/a", false),
        ("/a/*", "/a/x", true),
        ("/a/*", "/a/x/", true),
        ("/a/*", "/a", false),
        ("/a/*", "/a/", false),
        ("/a/*", "/a/x/y", false),
        ("/*", "/", false),
        ("/*", "/x", true),
        ("/*/b", "/a/b", true),
        ("/*/b", "/a/c", false),
        ("/a/**", "/a", true),
        ("/a/**", "/a/", true),
        ("/a/**", "/a/b", true),
        ("/a/**", "/a/b/c", true),
        ("/a/**", "/a/b/c/", true),
        ("/a/**", "/ab", false),
        ("/a/**", "/ab/c", false),
        ("/a/**", "/", false),
        ("/a/**", "/b/a", false),
        ("/**", "/", true),
        ("/**", "/x/y/z", true),
        ("/v1/{account}", "/v1/acme", true),
        ("/v1/{account}", "/v1/acme/", true),
        ("/v1/{account}", "/v1/other", false),
        ("/v1/{account}", "/v1/ACME", false),
        ("/v1/{account}", "/v1/acmex", false),
        ("/v1/{account}", "/v1", false),
        ("/v1/{account}/**", "/v1/acme", true),
        ("/v1/{account}/**", "/v1/acme/r/1", true),
        ("/v1/{account}/**", "/v1/evil/r/1", false),
        ("/v1/{account}/**", "/v1/acmeevil/r", false),
        ("/{account}/*/x", "/acme/q/x", true),
        ("/%C3%A9/x", "/%C3%A9/x", true),
        ("/%C3%A9/x", "/%c3%a9/x", false),
        ("/c/*.json", "/c/x.json", true),
        ("/c/*.json", "/c/x.json/", true),
        ("/c/*.json", "/c/.json", false),
        ("/c/*.json", "/c/x.jso", false),
        ("/c/*.json", "/c/x.json.bak", false),
        ("/c/*.json", "/c/x/y.json", false),
        ("/c/*.json", "/c/x.json/y", false),
        ("/c/*.json", "/c/%C3%A9.json", true),
        ("/c/*A9", "/c/x%C3%A9", false),
        ("/c/*A9", "/c/xA9", true),
        ("/c/v*", "/c/v1", true),
        ("/c/v*", "/c/v", false),
        ("/c/v*", "/c/w1", false),
        ("/c/a*a", "/c/a", false),
        ("/c/a*a", "/c/aa", false),
        ("/c/a*a", "/c/aba", true),
        ("/a/{account}.json", "/a/acme.json", true),
        ("/a/{account}.json", "/a/acme.json/", true),
        ("/a/{account}.json", "/a/acme", false),
        ("/a/{account}.json", "/a/other.json", false),
        ("/a/{account}.json", "/a/acmex.json", false),
        ("/a/{account}.json", "/a/.json", false),
        ("/a/x{account}", "/a/xacme", true),
        ("/a/x{account}", "/a/acme", false),
    ];

    #[test]
    fn single_pattern_semantics() {
        for &(pattern, path, expected) in SEMANTICS {
            let c = catalog(&[(1, pattern)]);
            assert_eq!(
                !apis(&c, path, "acme").is_empty(),
                expected,
                "{pattern} vs {path}"
            );
        }
    }

    #[test]
    fn all_patterns_in_one_trie_agree_with_single_pattern_semantics() {
        let patterns: Vec<(ApiId, &str)> = SEMANTICS
            .iter()
            .enumerate()
            .map(|(i, &(p, _, _))| (u16::try_from(i).unwrap_or(u16::MAX), p))
            .collect();
        let c = catalog(&patterns);
        for (i, &(pattern, path, expected)) in SEMANTICS.iter().enumerate() {
            let api = u16::try_from(i).unwrap_or(u16::MAX);
            assert_eq!(
                apis(&c, path, "acme").contains(&api),
                expected,
                "{pattern} vs {path}"
            );
        }
    }

    #[test]
    fn overlaps_report_every_api_with_specificity() {
        let c = catalog(&[
            (1, "/v1/{account}/**"),
            (2, "/v1/*/reports"),
            (3, "/v1/acme/reports"),
            (4, "/v1/{account}/reports"),
            (5, "/**"),
            (6, "/v2/**"),
        ]);
        assert_eq!(
            matches(&c, "/v1/acme/reports", "acme"),
            vec![(1, 0, 28), (2, 1, 41), (3, 2, 49), (4, 3, 45), (5, 4, 0)]
        );
        // {account} mismatch drops the account patterns only.
        assert_eq!(
            matches(&c, "/v1/acme/reports/", "globex"),
            vec![(2, 1, 41), (3, 2, 49), (5, 4, 0)]
        );
        assert_eq!(apis(&c, "/v1/globex/x", "acme"), vec![5]);
        assert_eq!(apis(&c, "/v2", "acme"), vec![5, 6]);
    }

    #[test]
    fn same_pattern_for_several_apis() {
        let c = catalog(&[(1, "/shared/*"), (2, "/shared/*"), (1, "/shared/**")]);
        assert_eq!(apis(&c, "/shared/x", "a"), vec![1, 1, 2]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.node_count(), 3);
    }

    #[test]
    fn empty_account_never_matches() {
        let c = catalog(&[(1, "/v1/{account}/**")]);
        assert!(apis(&c, "/v1/x", "").is_empty());
        assert!(apis(&c, "/v1//x", "").is_empty());
    }

    #[test]
    fn depth_limit() {
        let c = catalog(&[(1, "/**"), (2, &"/a".repeat(MAX_SEGMENTS))]);
        let at_limit = "/a".repeat(MAX_SEGMENTS);
        assert_eq!(apis(&c, &at_limit, "x"), vec![1, 2]);
        assert_eq!(apis(&c, &format!("{at_limit}/"), "x"), vec![1, 2]);
        assert!(apis(&c, &format!("{at_limit}/a"), "x").is_empty());
        assert!(apis(&c, &"/a".repeat(100_000), "x").is_empty());
    }

    #[test]
    fn garbage_paths_are_safe() {
        let c = catalog(&[(1, "/a/*"), (2, "/{account}"), (3, "/**")]);
        for path in ["", "a", "//", "///", "/a//", "/a//b", "?", "/\u{e9}"] {
            let _ = matches(&c, path, "");
            let _ = matches(&c, path, "a");
        }
        assert!(apis(&c, "", "a").is_empty());
        assert!(apis(&c, "a", "a").is_empty());
    }

    #[test]
    fn empty_catalog() {
        let c = Catalog::default();
        assert!(c.is_empty());
        assert!(apis(&c, "/", "a").is_empty());
    }

    #[test]
    fn catalog_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Catalog>();
        let c = catalog(&[(1, "/a")]);
        let d = c.clone();
        assert!(Arc::ptr_eq(&c.inner, &d.inner));
    }
}
