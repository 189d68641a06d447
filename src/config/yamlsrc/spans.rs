//! Source positions for YAML documents: maps config paths such as `accounts[0].tokens[2].scopes[1].api` to 1-based file lines, and keeps the byte extents that `edit` splices.
//!
//! Why not serde_yaml: it discards positions, so config validation could only say *what* is
//! wrong. This index is built from yaml-rust2's marked event stream instead. The parser reports
//! where each node *starts*; where it *ends* is recovered here from the source text (quoted
//! scalars are scanned to their closing quote, plain scalars to their last content character,
//! block scalars to their last content line, collections to their last child). Ends are what lets
//! `edit` replace or delete a field without touching neighbouring comments.
//!
//! The builder never recurses (it keeps an explicit stack), so hostile nesting depth cannot
//! overflow the stack, and any panic inside the third-party parser is caught and reported as a
//! syntax error rather than taking the gateway down.
#![forbid(unsafe_code)]

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use yaml_rust2::scanner::ScanError;

use builder::Builder;

/// A YAML syntax error with a 1-based line and column, ready to show to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub column: usize,
    /// The parser's description of the problem.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "YAML syntax error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SyntaxError {}

impl SyntaxError {
    fn from_scan(e: &ScanError) -> Self {
        let m = e.marker();
        SyntaxError {
            line: m.line().max(1),
            // yaml-rust2 markers count columns from 0; editors count from 1.
            column: m.col() + 1,
            message: e.info().to_string(),
        }
    }
}

/// One physical line of the source, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineSpan {
    /// First byte of the line.
    pub start: usize,
    /// End of the line's content (before `\n`, `\r\n` or `\r`).
    pub content_end: usize,
    /// First byte after the line break (equals `content_end` on a last line without a break).
    pub end: usize,
}

/// Line table of a source text.
///
/// Breaks are `\n`, `\r\n` and a lone `\r`, exactly as yaml-rust2 counts them, so the line
/// numbers derived from byte offsets agree with the parser's own markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lines {
    spans: Vec<LineSpan>,
}

impl Lines {
    pub(crate) fn new(src: &str) -> Self {
        let b = src.as_bytes();
        let mut spans = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\n' => {
                    spans.push(LineSpan {
                        start,
                        content_end: i,
                        end: i + 1,
                    });
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    let end = if b.get(i + 1) == Some(&b'\n') {
                        i + 2
                    } else {
                        i + 1
                    };
                    spans.push(LineSpan {
                        start,
                        content_end: i,
                        end,
                    });
                    i = end;
                    start = end;
                }
                _ => i += 1,
            }
        }
        // The (possibly empty) last line; an end-of-file marker lands here.
        spans.push(LineSpan {
            start,
            content_end: b.len(),
            end: b.len(),
        });
        Lines { spans }
    }

    /// 1-based line that contains byte `pos` (a line break belongs to the line it ends).
    pub(crate) fn line_of(&self, pos: usize) -> usize {
        self.spans.partition_point(|s| s.start <= pos).max(1)
    }

    /// The span of 1-based line `line`.
    pub(crate) fn get(&self, line: usize) -> Option<LineSpan> {
        line.checked_sub(1).and_then(|i| self.spans.get(i)).copied()
    }
}

/// How a scalar was written; `edit` needs this to know how far a value reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarForm {
    /// Plain (unquoted) scalar with content.
    Plain,
    /// Single- or double-quoted scalar.
    Quoted,
    /// Literal (`|`) or folded (`>`) block scalar; `start` is its header.
    Block,
    /// No content at all (`key:` with nothing after it); zero width, placed after its indicator.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar {
        value: String,
        form: ScalarForm,
    },
    /// `target` is the anchored node, when the anchor was seen earlier in this document.
    Alias {
        target: Option<usize>,
    },
    Seq(Vec<usize>),
    /// Entries as (key node, value node), in source order.
    Map(Vec<(usize, usize)>),
}

/// One node of the document with its source extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: Kind,
    /// True for a bracketed collection and for anything nested inside one. Such text is not
    /// line-oriented, so `edit` refuses to restructure it.
    pub flow: bool,
    /// First byte of the node: first key of a block mapping, `-` of a block sequence, the
    /// bracket of a flow collection, the quote or first character of a scalar, the header of a
    /// block scalar. Anchors and tags sit before `start`.
    pub start: usize,
    /// Byte just after the node's last content character (trailing comments excluded).
    pub end: usize,
    /// 1-based line reported for the node.
    pub line: usize,
}

/// Where every node of a YAML document (the first one of a stream) sits in the source.
///
/// Built once per file; lookups are a walk from the root, so the index costs O(nodes) memory
/// even for deeply nested input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanIndex {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: Option<usize>,
    pub(crate) lines: Lines,
}

/// One step of a config path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl SpanIndex {
    /// Parses `src` and indexes its first document.
    ///
    /// An empty or comment-only text gives an empty index (every lookup falls back to line 1).
    pub fn build(src: &str) -> Result<SpanIndex, SyntaxError> {
        // yaml-rust2 has internal `unreachable!`/`assert!`s; a hostile file must not be able to
        // turn one of them into a crashed gateway, so a panic becomes a syntax error.
        match catch_unwind(AssertUnwindSafe(|| Builder::new(src).run())) {
            Ok(result) => result,
            Err(_) => Err(SyntaxError {
                line: 1,
                column: 1,
                message: "the YAML parser failed on this input".to_string(),
            }),
        }
    }

    /// True when the document has no content at all (empty or comments only).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// 1-based line of the node at `path`, e.g. `accounts[0].tokens[2].scopes[1].api`,
    /// `listen`, `apis.campaigns.paths[0]`.
    ///
    /// For a mapping-key path the line of the *key* is returned (that is where an operator
    /// looks for a field). When the path does not exist, the line of the nearest existing
    /// ancestor is returned instead (a missing field points at its parent mapping), so an
    /// error message always has a useful line. An empty document gives line 1.
    pub fn line_of(&self, path: &str) -> usize {
        let (segs, _) = parse_path(path);
        self.resolve(&segs).0.unwrap_or(1)
    }

    /// Like [`SpanIndex::line_of`] but `None` when the path does not exist (or is malformed).
    #[cfg(test)]
    pub fn exact_line(&self, path: &str) -> Option<usize> {
        let (segs, well_formed) = parse_path(path);
        match self.resolve(&segs) {
            (Some(line), true) if well_formed => Some(line),
            _ => None,
        }
    }

    /// Walks `segs` from the root. Returns the line of the deepest step that exists and
    /// whether every step existed. Steps through an alias continue inside its anchor target,
    /// so `b.x` with `b: *a` points at `x` where the anchored mapping defines it.
    fn resolve(&self, segs: &[Seg]) -> (Option<usize>, bool) {
        let Some(root) = self.root else {
            return (None, segs.is_empty());
        };
        let mut line = self.nodes.get(root).map(|n| n.line);
        let mut cur = root;
        for seg in segs {
            let node = self.deref_alias(cur);
            let next = match (seg, self.nodes.get(node).map(|n| &n.kind)) {
                (Seg::Key(k), Some(Kind::Map(_))) => self.map_get(node, k),
                (Seg::Index(i), Some(Kind::Seq(items))) => items.get(*i).map(|&it| (it, it)),
                _ => None,
            };
            match next {
                Some((line_node, value)) => {
                    line = self.nodes.get(line_node).map(|n| n.line).or(line);
                    cur = value;
                }
                None => return (line, false),
            }
        }
        (line, true)
    }

    /// Follows alias nodes to their anchor target (bounded, so recursive anchors terminate).
    fn deref_alias(&self, mut node: usize) -> usize {
        for _ in 0..=self.nodes.len() {
            match self.nodes.get(node).map(|n| &n.kind) {
                Some(Kind::Alias { target: Some(t) }) => node = *t,
                _ => break,
            }
        }
        node
    }

    pub(crate) fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    /// String value of a scalar node (any style); `None` for collections and aliases.
    pub(crate) fn scalar_str(&self, i: usize) -> Option<&str> {
        match self.nodes.get(i).map(|n| &n.kind) {
            Some(Kind::Scalar { value, .. }) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn map_entries(&self, i: usize) -> Option<&[(usize, usize)]> {
        match self.nodes.get(i).map(|n| &n.kind) {
            Some(Kind::Map(entries)) => Some(entries),
            _ => None,
        }
    }

    pub(crate) fn seq_items(&self, i: usize) -> Option<&[usize]> {
        match self.nodes.get(i).map(|n| &n.kind) {
            Some(Kind::Seq(items)) => Some(items),
            _ => None,
        }
    }

    /// First entry of mapping `i` whose key is the scalar `key`, as (key node, value node).
    pub(crate) fn map_get(&self, i: usize, key: &str) -> Option<(usize, usize)> {
        self.map_entries(i)?
            .iter()
            .copied()
            .find(|&(k, _)| self.scalar_str(k) == Some(key))
    }

    /// Every mapping key named `key` under the mapping at `under` (a path as for
    /// [`SpanIndex::line_of`]; empty for the whole document), as (path, line), in source
    /// order. Aliases are not followed (each key is found where it is written).
    pub fn keys_named(&self, under: &str, key: &str) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        let (segs, _) = parse_path(under);
        let Some(mut node) = self.root else {
            return found;
        };
        for seg in &segs {
            let next = match (seg, self.nodes.get(node).map(|n| &n.kind)) {
                (Seg::Key(k), Some(Kind::Map(_))) => self.map_get(node, k).map(|(_, v)| v),
                (Seg::Index(i), Some(Kind::Seq(items))) => items.get(*i).copied(),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return found,
            }
        }
        let mut stack = vec![(node, under.to_owned())];
        while let Some((node, path)) = stack.pop() {
            let join = |step: &str| {
                if path.is_empty() {
                    step.to_owned()
                } else {
                    format!("{path}.{step}")
                }
            };
            match self.nodes.get(node).map(|n| &n.kind) {
                Some(Kind::Map(entries)) => {
                    for &(k, v) in entries.iter().rev() {
                        let Some(name) = self.scalar_str(k) else {
                            continue;
                        };
                        if name == key {
                            found.push((join(name), self.nodes.get(k).map_or(1, |n| n.line)));
                        }
                        stack.push((v, join(name)));
                    }
                }
                Some(Kind::Seq(items)) => {
                    for (i, &item) in items.iter().enumerate().rev() {
                        stack.push((item, format!("{path}[{i}]")));
                    }
                }
                _ => {}
            }
        }
        found.sort_by_key(|(_, line)| *line);
        found
    }

    /// 1-based line holding the last content character of node `i`.
    pub(crate) fn end_line(&self, i: usize) -> usize {
        match self.nodes.get(i) {
            Some(n) if n.end > n.start => self.lines.line_of(n.end - 1),
            Some(n) => self.lines.line_of(n.start),
            None => 1,
        }
    }
}

/// Splits a config path into steps. Returns the steps that parsed and whether the whole path
/// was well formed (a malformed tail is dropped, so `line_of` still finds an ancestor).
///
/// Syntax: keys joined by `.`, indexes as `[i]`, and `["a.b"]` for keys containing `.`, `[`,
/// `]` or `"` (with `\"` and `\\` escapes inside the quotes).
fn parse_path(path: &str) -> (Vec<Seg>, bool) {
    let chars: Vec<char> = path.chars().collect();
    let mut segs = Vec::new();
    let mut i = 0;
    let mut need_sep = false;
    while i < chars.len() {
        match chars[i] {
            '[' => {
                if chars.get(i + 1) == Some(&'"') {
                    let mut key = String::new();
                    let mut j = i + 2;
                    let mut closed = false;
                    while j < chars.len() {
                        match chars[j] {
                            '\\' if j + 1 < chars.len() => {
                                key.push(chars[j + 1]);
                                j += 2;
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            c => {
                                key.push(c);
                                j += 1;
                            }
                        }
                    }
                    if !closed || chars.get(j + 1) != Some(&']') {
                        return (segs, false);
                    }
                    segs.push(Seg::Key(key));
                    i = j + 2;
                } else {
                    let mut j = i + 1;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    let digits: String = chars[i + 1..j].iter().collect();
                    match (chars.get(j), digits.parse::<usize>()) {
                        (Some(']'), Ok(n)) => segs.push(Seg::Index(n)),
                        _ => return (segs, false),
                    }
                    i = j + 1;
                }
                need_sep = true;
            }
            '.' => {
                // A dot must separate two steps.
                if !need_sep || i + 1 >= chars.len() {
                    return (segs, false);
                }
                need_sep = false;
                i += 1;
            }
            _ => {
                if need_sep {
                    return (segs, false);
                }
                let mut j = i;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                segs.push(Seg::Key(chars[i..j].iter().collect()));
                need_sep = true;
                i = j;
            }
        }
    }
    (segs, true)
}

mod builder;
#[cfg(test)]
pub(crate) mod tests;
