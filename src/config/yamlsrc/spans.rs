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

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

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

/// An open collection while the event stream is being consumed.
struct Frame {
    node: usize,
    /// Key node waiting for its value (mappings only).
    key: Option<usize>,
    /// Column of the collection's keys / dashes: continuation lines of a plain scalar must be
    /// indented deeper than this.
    col: Option<usize>,
    /// Written with brackets, so its end is the closing bracket.
    bracketed: bool,
}

/// A scalar whose end can only be found once the next event's position is known.
enum Pending {
    Plain {
        node: usize,
        parent_col: Option<usize>,
        flow: bool,
    },
    Block {
        node: usize,
        header_line: usize,
        header_end: usize,
        content_col: usize,
        /// `|+` / `>+`: trailing blank lines belong to the value.
        keep: bool,
    },
}

struct Builder<'a> {
    src: &'a str,
    /// Byte offset of every char index (yaml-rust2 markers count chars), plus the end.
    char_bytes: Vec<usize>,
    lines: Lines,
    nodes: Vec<Node>,
    frames: Vec<Frame>,
    anchors: HashMap<usize, usize>,
    pending: Vec<Pending>,
    /// End of the last token consumed; empty scalars and block headers are found after it.
    cursor: usize,
    root: Option<usize>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        let mut char_bytes: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        char_bytes.push(src.len());
        Builder {
            src,
            char_bytes,
            lines: Lines::new(src),
            nodes: Vec::new(),
            frames: Vec::new(),
            anchors: HashMap::new(),
            pending: Vec::new(),
            cursor: 0,
            root: None,
        }
    }

    fn run(mut self) -> Result<SpanIndex, SyntaxError> {
        let mut parser = Parser::new_from_str(self.src);
        loop {
            let (ev, mark) = parser
                .next_token()
                .map_err(|e| SyntaxError::from_scan(&e))?;
            let pos = self.byte_at(&mark);
            self.flush_pending(pos);
            match ev {
                // Only the first document is indexed: config files are single documents.
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart => {}
                Event::Scalar(value, style, anchor, _) => {
                    self.scalar(value, style, anchor, pos, &mark)
                }
                Event::Alias(id) => {
                    let target = self.anchors.get(&id).copied();
                    let end = self.alias_end(pos);
                    self.cursor = end;
                    let line = self.lines.line_of(pos);
                    let flow = self.in_flow();
                    self.push_node(
                        Node {
                            kind: Kind::Alias { target },
                            flow,
                            start: pos,
                            end,
                            line,
                        },
                        0,
                    );
                }
                Event::SequenceStart(anchor, _) => self.open(false, anchor, pos),
                Event::MappingStart(anchor, _) => self.open(true, anchor, pos),
                Event::SequenceEnd | Event::MappingEnd => self.close(pos),
            }
        }
        self.flush_pending(self.src.len());
        // `---` with nothing after it is an empty document, not a document holding a value.
        let empty_root = self.root.and_then(|r| self.nodes.get(r)).is_some_and(|n| {
            matches!(
                n.kind,
                Kind::Scalar {
                    form: ScalarForm::Empty,
                    ..
                }
            )
        });
        if empty_root {
            self.root = None;
        }
        Ok(SpanIndex {
            nodes: self.nodes,
            root: self.root,
            lines: self.lines,
        })
    }

    fn byte_at(&self, mark: &Marker) -> usize {
        self.char_bytes
            .get(mark.index())
            .copied()
            .unwrap_or(self.src.len())
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn col_of(&self, pos: usize) -> usize {
        let line = self.lines.line_of(pos);
        let start = self.lines.get(line).map_or(0, |s| s.start);
        self.src.get(start..pos).map_or(0, |s| s.chars().count())
    }

    fn in_flow(&self) -> bool {
        self.frames
            .last()
            .is_some_and(|f| self.nodes.get(f.node).is_some_and(|n| n.flow))
    }

    fn parent_col(&self) -> Option<usize> {
        self.frames.last().and_then(|f| f.col)
    }

    /// Resolves the ends that needed to know where the next token starts (`bound`).
    fn flush_pending(&mut self, bound: usize) {
        for p in std::mem::take(&mut self.pending) {
            let (node, end) = match p {
                Pending::Plain {
                    node,
                    parent_col,
                    flow,
                } => {
                    let start = self.nodes.get(node).map_or(bound, |n| n.start);
                    (node, self.plain_end(start, bound, flow, parent_col))
                }
                Pending::Block {
                    node,
                    header_line,
                    header_end,
                    content_col,
                    keep,
                } => (
                    node,
                    self.block_end(header_line, header_end, content_col, keep, bound),
                ),
            };
            if let Some(n) = self.nodes.get_mut(node) {
                n.end = end.max(n.start);
                self.cursor = n.end;
            }
        }
    }

    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        anchor: usize,
        pos: usize,
        mark: &Marker,
    ) {
        let flow = self.in_flow();
        match style {
            TScalarStyle::Plain if value.is_empty() => {
                let end = self.empty_end(pos);
                self.cursor = end;
                let line = self
                    .lines
                    .line_of(end.saturating_sub(1).max(self.line_start_of(end)));
                self.push_node(
                    Node {
                        kind: Kind::Scalar {
                            value,
                            form: ScalarForm::Empty,
                        },
                        flow,
                        start: end,
                        end,
                        line,
                    },
                    anchor,
                );
            }
            TScalarStyle::Plain => {
                let parent_col = self.parent_col();
                let idx = self.push_node(
                    Node {
                        kind: Kind::Scalar {
                            value,
                            form: ScalarForm::Plain,
                        },
                        flow,
                        start: pos,
                        end: pos,
                        line: self.lines.line_of(pos),
                    },
                    anchor,
                );
                self.pending.push(Pending::Plain {
                    node: idx,
                    parent_col,
                    flow,
                });
            }
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let end = self.quoted_end(pos).unwrap_or(pos);
                let idx = self.push_node(
                    Node {
                        kind: Kind::Scalar {
                            value,
                            form: ScalarForm::Quoted,
                        },
                        flow,
                        start: pos,
                        end,
                        line: self.lines.line_of(pos),
                    },
                    anchor,
                );
                if end > pos {
                    self.cursor = end;
                } else {
                    // No closing quote found (should not happen for parsed input): fall back
                    // to the plain-scalar rules, which stop before the next token.
                    self.pending.push(Pending::Plain {
                        node: idx,
                        parent_col: self.parent_col(),
                        flow,
                    });
                }
            }
            _ => {
                // Literal / folded block scalar: the marker points at the content; the header
                // (`|`, `>-`, ...) is what an operator sees on the key's line.
                let (header, header_end) = self.block_header(pos);
                let header_line = self.lines.line_of(header);
                let content_col = if self.lines.line_of(pos) > header_line {
                    mark.col()
                } else {
                    usize::MAX
                };
                let idx = self.push_node(
                    Node {
                        kind: Kind::Scalar {
                            value,
                            form: ScalarForm::Block,
                        },
                        flow,
                        start: header,
                        end: header_end,
                        line: header_line,
                    },
                    anchor,
                );
                self.cursor = header_end;
                let keep = self
                    .src
                    .get(header..header_end)
                    .is_some_and(|h| h.contains('+'));
                self.pending.push(Pending::Block {
                    node: idx,
                    header_line,
                    header_end,
                    content_col,
                    keep,
                });
            }
        }
    }

    fn line_start_of(&self, pos: usize) -> usize {
        self.lines
            .get(self.lines.line_of(pos))
            .map_or(0, |s| s.start)
    }

    fn open(&mut self, is_map: bool, anchor: usize, pos: usize) {
        let mut pos = pos;
        let ch = self.char_at(pos);
        if !is_map && ch != Some('[') && ch != Some('-') {
            // An indentless sequence (`key:` then `- x` at the key's column) is marked at its
            // first item's content; the sequence really starts at the dash before it.
            if let Some(dash) = self.dash_before(pos) {
                pos = dash;
            }
        }
        let bracketed = if is_map {
            ch == Some('{')
        } else {
            ch == Some('[')
        };
        let flow = bracketed || self.in_flow();
        let col = if !is_map && !bracketed {
            // Block sequence: the marker is its first `-`.
            self.cursor = pos;
            Some(self.col_of(pos))
        } else {
            if bracketed {
                self.cursor = pos + 1;
            }
            None
        };
        let node = self.push_node(
            Node {
                kind: if is_map {
                    Kind::Map(Vec::new())
                } else {
                    Kind::Seq(Vec::new())
                },
                flow,
                start: pos,
                end: pos,
                line: self.lines.line_of(pos),
            },
            anchor,
        );
        self.frames.push(Frame {
            node,
            key: None,
            col,
            bracketed,
        });
    }

    fn close(&mut self, pos: usize) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let Some(node) = self.nodes.get(frame.node) else {
            return;
        };
        let closer = match node.kind {
            Kind::Map(_) => '}',
            _ => ']',
        };
        let last_child_end = match &node.kind {
            Kind::Seq(items) => items.last().and_then(|&i| self.nodes.get(i)).map(|n| n.end),
            Kind::Map(entries) => entries.last().map(|&(k, v)| {
                let ke = self.nodes.get(k).map_or(0, |n| n.end);
                let ve = self.nodes.get(v).map_or(0, |n| n.end);
                ke.max(ve)
            }),
            _ => None,
        };
        let end = if frame.bracketed && self.char_at(pos) == Some(closer) {
            self.cursor = pos + 1;
            pos + 1
        } else {
            last_child_end
                .or(frame.key.and_then(|k| self.nodes.get(k)).map(|n| n.end))
                .unwrap_or(node.start)
                .max(node.start)
        };
        if let Some(n) = self.nodes.get_mut(frame.node) {
            n.end = end;
        }
    }

    /// Adds a node, registers its anchor and attaches it to the open collection.
    fn push_node(&mut self, node: Node, anchor: usize) -> usize {
        let idx = self.nodes.len();
        let (start, line) = (node.start, node.line);
        self.nodes.push(node);
        if anchor > 0 {
            self.anchors.insert(anchor, idx);
        }
        let Some(frame) = self.frames.last_mut() else {
            if self.root.is_none() {
                self.root = Some(idx);
            }
            return idx;
        };
        let mut first_key = false;
        match self.nodes.get_mut(frame.node).map(|n| &mut n.kind) {
            Some(Kind::Seq(items)) => items.push(idx),
            Some(Kind::Map(entries)) => match frame.key.take() {
                Some(k) => entries.push((k, idx)),
                None => {
                    first_key = entries.is_empty() && !frame.bracketed;
                    frame.key = Some(idx);
                }
            },
            _ => {}
        }
        if first_key {
            // A block mapping's marker is its first `:`; the mapping really starts at its
            // first key, and that is the line (and indentation) that matters.
            let map = frame.node;
            let col = self.col_of(self.key_props_start(start));
            if let Some(f) = self.frames.last_mut() {
                f.col = Some(col);
            }
            if let Some(m) = self.nodes.get_mut(map) {
                m.start = start;
                m.line = line;
                m.end = m.end.max(start);
            }
        }
        idx
    }

    /// Where a mapping's first key really begins: properties (`&a`, `!t`) or a `?` before it
    /// on the same line belong to the key, and set the mapping's indentation.
    fn key_props_start(&self, key: usize) -> usize {
        let ls = self.line_start_of(key);
        let prefix = self.src.get(ls..key).unwrap_or("");
        let mut start = key;
        let mut end = prefix.len();
        while let Some(head) = prefix.get(..end) {
            let trimmed = head.trim_end_matches([' ', '\t']);
            let word_start = trimmed.rfind([' ', '\t']).map_or(0, |i| i + 1);
            let word = trimmed.get(word_start..).unwrap_or("");
            if word.starts_with(['&', '!']) || word == "?" {
                start = ls + word_start;
                end = word_start;
            } else {
                break;
            }
        }
        start
    }

    /// The `-` preceding `pos` on the same line, with only blanks between.
    fn dash_before(&self, pos: usize) -> Option<usize> {
        let b = self.src.as_bytes();
        let mut p = pos.min(b.len());
        while p > 0 && matches!(b[p - 1], b' ' | b'\t') {
            p -= 1;
        }
        (p > 0 && b[p - 1] == b'-').then(|| p - 1)
    }

    /// Skips blanks, line breaks and comments from `pos` (never past `bound`).
    fn skip_gap(&self, mut pos: usize, bound: usize) -> usize {
        let b = self.src.as_bytes();
        while pos < bound && pos < b.len() {
            match b[pos] {
                b' ' | b'\t' | b'\n' | b'\r' => pos += 1,
                b'#' if pos == 0 || matches!(b[pos - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                    while pos < b.len() && b[pos] != b'\n' && b[pos] != b'\r' {
                        pos += 1;
                    }
                }
                _ => break,
            }
        }
        pos.min(bound.max(pos.min(b.len())))
    }

    /// Skips spaces and tabs on the current line.
    fn skip_blanks(&self, mut pos: usize, bound: usize) -> usize {
        let b = self.src.as_bytes();
        while pos < bound && pos < b.len() && matches!(b[pos], b' ' | b'\t') {
            pos += 1;
        }
        pos
    }

    /// Skips one non-blank word (an anchor `&a` or a tag `!t`).
    fn skip_word(&self, mut pos: usize, bound: usize) -> usize {
        let b = self.src.as_bytes();
        while pos < bound && pos < b.len() && !matches!(b[pos], b' ' | b'\t' | b'\n' | b'\r') {
            pos += 1;
        }
        pos
    }

    /// After the last token: skip the gap, one `:`/`-`/`?` indicator and any properties on that
    /// line. Returns (position reached, end of the last thing consumed).
    fn after_indicator(&self, bound: usize) -> (usize, usize) {
        let b = self.src.as_bytes();
        let mut last = self.cursor;
        let mut pos = self.skip_gap(self.cursor, bound);
        if pos < bound && pos < b.len() && matches!(b[pos], b':' | b'-' | b'?') {
            pos += 1;
            last = pos;
            loop {
                let p = self.skip_blanks(pos, bound);
                if p < bound && p < b.len() && matches!(b[p], b'&' | b'!') {
                    pos = self.skip_word(p, bound);
                    last = pos;
                } else {
                    pos = p;
                    break;
                }
            }
        }
        (pos, last)
    }

    /// End of an empty scalar: just after its `:` / `-` indicator (and properties), so that
    /// `key:` ends on the key's line even though the parser marks the *next* token.
    fn empty_end(&self, mark_pos: usize) -> usize {
        let (_, last) = self.after_indicator(mark_pos);
        last.min(self.src.len())
    }

    /// Finds a block scalar's header (`|`, `>+2`, ...) between the previous token and the
    /// content. Returns (header start, header end).
    fn block_header(&self, mark_pos: usize) -> (usize, usize) {
        let b = self.src.as_bytes();
        let (mut pos, _) = self.after_indicator(mark_pos);
        pos = self.skip_gap(pos, mark_pos);
        // Properties on their own (`key: !tag |`) were consumed above; allow them here too.
        while pos < mark_pos && pos < b.len() && matches!(b[pos], b'&' | b'!') {
            pos = self.skip_gap(self.skip_word(pos, mark_pos), mark_pos);
        }
        if pos < b.len() && matches!(b[pos], b'|' | b'>') {
            let mut end = pos + 1;
            while end < b.len() && matches!(b[end], b'+' | b'-' | b'0'..=b'9') {
                end += 1;
            }
            (pos, end)
        } else {
            (mark_pos.min(b.len()), mark_pos.min(b.len()))
        }
    }

    /// End of a block scalar: the last non-blank line after the header that is indented at
    /// least as deep as the content. Less-indented `#` lines after it are trailing comments.
    /// With keep chomping (`|+`) the blank lines after the content are part of the value too.
    fn block_end(
        &self,
        header_line: usize,
        header_end: usize,
        content_col: usize,
        keep: bool,
        bound: usize,
    ) -> usize {
        let mut end = header_end;
        let mut line = header_line + 1;
        while let Some(span) = self.lines.get(line) {
            let text = self.src.get(span.start..span.content_end).unwrap_or("");
            let indent = text.len() - text.trim_start_matches(' ').len();
            if text.trim().is_empty() {
                if span.start >= bound || span.end == span.start {
                    break;
                }
                if keep {
                    // Include the line break so the blank line counts as the value's last line.
                    end = span.end;
                }
                line += 1;
                continue;
            }
            if span.start + indent >= bound || indent < content_col {
                break;
            }
            end = span.content_end;
            line += 1;
        }
        end
    }

    /// End of a quoted scalar starting at `start` (the opening quote).
    fn quoted_end(&self, start: usize) -> Option<usize> {
        let s = self.src.get(start..)?;
        let mut it = s.char_indices();
        let (_, quote) = it.next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        while let Some((i, c)) = it.next() {
            if quote == '"' {
                if c == '\\' {
                    it.next();
                } else if c == '"' {
                    return Some(start + i + 1);
                }
            } else if c == '\'' {
                if s.get(i + 1..).is_some_and(|r| r.starts_with('\'')) {
                    it.next();
                } else {
                    return Some(start + i + 1);
                }
            }
        }
        None
    }

    /// End of an alias `*name` starting at `start`.
    fn alias_end(&self, start: usize) -> usize {
        let b = self.src.as_bytes();
        let mut end = (start + 1).min(b.len());
        while end < b.len()
            && !matches!(
                b[end],
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}'
            )
        {
            end += 1;
        }
        end
    }

    /// End of a plain scalar starting at `start`: its last content character, stopping at a
    /// comment, a `: ` indicator, a flow indicator (in flow context), a line that is not a
    /// continuation (not indented deeper than `parent_col`, a comment, a document marker),
    /// or the next token (`bound`).
    fn plain_end(
        &self,
        start: usize,
        bound: usize,
        flow: bool,
        parent_col: Option<usize>,
    ) -> usize {
        let b = self.src.as_bytes();
        let limit = bound.min(b.len());
        let mut pos = start;
        let mut last = start;
        while pos < limit {
            let c = b[pos];
            match c {
                b'\n' | b'\r' => {
                    let mut q = pos;
                    while q < b.len() && matches!(b[q], b' ' | b'\t' | b'\n' | b'\r') {
                        q += 1;
                    }
                    if q >= limit || b[q] == b'#' {
                        break;
                    }
                    let ls = self.line_start_of(q);
                    let indent = q - ls;
                    if !flow && parent_col.is_some_and(|pc| indent <= pc) {
                        break;
                    }
                    if indent == 0 {
                        let rest = &b[q..];
                        let marker = rest.starts_with(b"---") || rest.starts_with(b"...");
                        if marker
                            && rest
                                .get(3)
                                .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                        {
                            break;
                        }
                    }
                    pos = q;
                }
                b'#' if pos > start && matches!(b[pos - 1], b' ' | b'\t') => break,
                b':' => {
                    let next = b.get(pos + 1).copied();
                    let ends = match next {
                        None => true,
                        Some(n) => {
                            matches!(n, b' ' | b'\t' | b'\n' | b'\r')
                                || (flow && matches!(n, b',' | b'[' | b']' | b'{' | b'}'))
                        }
                    };
                    if ends && pos > start {
                        break;
                    }
                    pos += 1;
                    last = pos;
                }
                b',' | b'[' | b']' | b'{' | b'}' if flow && pos > start => break,
                b' ' | b'\t' => pos += 1,
                _ => {
                    // Step over a whole UTF-8 character.
                    let len = self
                        .src
                        .get(pos..)
                        .and_then(|s| s.chars().next())
                        .map_or(1, char::len_utf8);
                    pos += len;
                    last = pos;
                }
            }
        }
        last.max(start)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The tokens file example from the design notes (also used by `edit`'s tests).
    pub(crate) const TOKENS: &str = r#"# Tokens for scopegate (managed by `scopegate token ...`; comments are kept)
accounts:
  - id: IRacme            # the Acme account
    name: Acme Corp
    tokens:
      # nightly export
      - sid: SG5f2a0000000000000000000000000000
        name: reporting-sync
        description: Nightly export of campaign stats to the data warehouse (live)
        primary_contact: data-eng@acme.example
        developer_emails: [alice@acme.example]
        api_version: v15
        status: active                # or disabled
        kind: scoped                  # or legacy
        auth_token_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        created_at: 2026-08-01T00:00:00Z
        rotated_at: 2026-08-01T00:00:00Z
        scopes:
          - {api: campaigns, methods: [GET]}
        rate_limit: {requests_per_second: 20, burst: 40}
deleted_sids: [SGdead...]   # optional top-level tombstone list
"#;

    const GATEWAY: &str = r#"# scopegate gateway config
listen: 0.0.0.0:8080
tokens_file: /etc/scopegate/tokens.yaml

upstreams:
  main:
    url: https://api.example.com   # production
    timeout_ms: 5000
apis:
  campaigns:
    upstream: main
    paths:
      - /v15/campaigns
      - "/v15/campaigns/*"
  reports: {upstream: main,
            paths: [/v15/reports, "/v15/reports/*"]}
"#;

    fn idx(src: &str) -> SpanIndex {
        match SpanIndex::build(src) {
            Ok(i) => i,
            Err(e) => panic!("unexpected syntax error: {e}"),
        }
    }

    #[test]
    fn tokens_example_lines() {
        let i = idx(TOKENS);
        let cases = [
            ("accounts", 2),
            ("accounts[0]", 3),
            ("accounts[0].id", 3),
            ("accounts[0].name", 4),
            ("accounts[0].tokens", 5),
            ("accounts[0].tokens[0]", 7),
            ("accounts[0].tokens[0].sid", 7),
            ("accounts[0].tokens[0].description", 9),
            ("accounts[0].tokens[0].developer_emails[0]", 11),
            ("accounts[0].tokens[0].status", 13),
            ("accounts[0].tokens[0].auth_token_hash", 15),
            ("accounts[0].tokens[0].scopes", 18),
            ("accounts[0].tokens[0].scopes[0]", 19),
            ("accounts[0].tokens[0].scopes[0].api", 19),
            ("accounts[0].tokens[0].scopes[0].methods[0]", 19),
            ("accounts[0].tokens[0].rate_limit", 20),
            ("accounts[0].tokens[0].rate_limit.burst", 20),
            ("deleted_sids", 21),
            ("deleted_sids[0]", 21),
        ];
        for (path, line) in cases {
            assert_eq!(i.exact_line(path), Some(line), "{path}");
            assert_eq!(i.line_of(path), line, "{path}");
        }
    }

    #[test]
    fn gateway_config_lines() {
        let i = idx(GATEWAY);
        assert_eq!(i.line_of("listen"), 2);
        assert_eq!(i.line_of("tokens_file"), 3);
        assert_eq!(i.line_of("upstreams"), 5);
        assert_eq!(i.line_of("upstreams.main"), 6);
        assert_eq!(i.line_of("upstreams.main.url"), 7);
        assert_eq!(i.line_of("upstreams.main.timeout_ms"), 8);
        assert_eq!(i.line_of("apis.campaigns.paths"), 12);
        assert_eq!(i.line_of("apis.campaigns.paths[0]"), 13);
        assert_eq!(i.line_of("apis.campaigns.paths[1]"), 14);
        assert_eq!(i.line_of("apis.reports"), 15);
        assert_eq!(i.line_of("apis.reports.upstream"), 15);
        assert_eq!(i.line_of("apis.reports.paths"), 16);
        assert_eq!(i.line_of("apis.reports.paths[1]"), 16);
    }

    #[test]
    fn missing_paths_fall_back_to_nearest_ancestor() {
        let i = idx(TOKENS);
        // Missing field of a token -> the token mapping's line.
        assert_eq!(i.exact_line("accounts[0].tokens[0].enabled"), None);
        assert_eq!(i.line_of("accounts[0].tokens[0].enabled"), 7);
        // Index past the end -> the sequence's key.
        assert_eq!(i.line_of("accounts[0].tokens[3].sid"), 5);
        assert_eq!(i.line_of("accounts[9]"), 2);
        // Indexing a scalar / keying a sequence.
        assert_eq!(i.line_of("accounts[0].name.first"), 4);
        assert_eq!(i.line_of("accounts.x"), 2);
        // Unknown top-level key -> the root mapping (its first key).
        assert_eq!(i.line_of("listen"), 2);
        assert_eq!(i.exact_line("listen"), None);
        // Malformed paths: nearest well-formed prefix.
        assert_eq!(i.exact_line("accounts[0"), None);
        assert_eq!(i.line_of("accounts[0].tokens[x].sid"), 5);
        assert_eq!(i.exact_line("accounts..id"), None);
        assert_eq!(i.exact_line(""), Some(2));

        let g = idx(GATEWAY);
        assert_eq!(g.line_of("upstreams.main.retries"), 6);
        assert_eq!(g.line_of("apis.campaigns.paths[7]"), 12);
    }

    #[test]
    fn quoted_keys_in_paths() {
        let src = "routes:\n  \"a.b\":\n    x: 1\n  'c[0]': 2\n  plain: {\"d.e\": [10, 20]}\n";
        let i = idx(src);
        assert_eq!(i.exact_line("routes[\"a.b\"].x"), Some(3));
        assert_eq!(i.exact_line("routes.[\"a.b\"]"), Some(2));
        assert_eq!(i.exact_line("routes[\"c[0]\"]"), Some(4));
        assert_eq!(i.exact_line("routes.plain[\"d.e\"][1]"), Some(5));
        assert_eq!(i.exact_line("routes[\"a\\\".b\"]"), None);
    }

    #[test]
    fn flow_collections_spanning_lines() {
        let src = "a: [1,\n  2,\n  {b: 3,\n   c: [4]}]\nd: {e: f}\n";
        let i = idx(src);
        assert_eq!(i.exact_line("a[1]"), Some(2));
        assert_eq!(i.exact_line("a[2]"), Some(3));
        assert_eq!(i.exact_line("a[2].c[0]"), Some(4));
        assert_eq!(i.exact_line("d.e"), Some(5));
        let a = i.map_get(i.root.unwrap_or(0), "a").map(|(_, v)| v);
        assert_eq!(a.map(|v| i.end_line(v)), Some(4));
    }

    #[test]
    fn anchors_and_aliases() {
        let src = "defaults: &d\n  timeout: 5\n  retries: 2\nmain:\n  settings: *d\nlist: &l [x, y]\nother: *l\n";
        let i = idx(src);
        assert_eq!(i.exact_line("defaults.retries"), Some(3));
        // The alias use gets its own line ...
        assert_eq!(i.exact_line("main.settings"), Some(5));
        // ... and steps through it land in the anchored definition.
        assert_eq!(i.exact_line("main.settings.retries"), Some(3));
        assert_eq!(i.exact_line("other[1]"), Some(6));
        assert_eq!(i.exact_line("main.settings.nope"), None);
        assert_eq!(i.line_of("main.settings.nope"), 5);
    }

    #[test]
    fn only_first_document_is_indexed() {
        let src = "a: 1\nb:\n  c: 2\n---\nz: 9\n";
        let i = idx(src);
        assert_eq!(i.exact_line("b.c"), Some(3));
        assert_eq!(i.exact_line("z"), None);
        let src = "---\n# comment\nx: [1]\n...\n---\ny: 2\n";
        let i = idx(src);
        assert_eq!(i.exact_line("x[0]"), Some(3));
        assert_eq!(i.exact_line("y"), None);
    }

    #[test]
    fn empty_and_comment_only_documents() {
        for src in ["", "\n\n", "# nothing here\n", "---\n", "# a\n# b"] {
            let i = idx(src);
            assert!(i.is_empty(), "{src:?}");
            assert_eq!(i.line_of("listen"), 1);
            assert_eq!(i.exact_line("listen"), None);
            assert_eq!(i.exact_line(""), None);
        }
    }

    #[test]
    fn block_scalars_and_multiline_plain() {
        let src = "a: |\n  line one\n  # not a comment\n# a real comment\nb: >-\n  folded\n  text\nc: plain\n  continued\nd:\n  - |\n    x\n  - e\n";
        let i = idx(src);
        let root = i.root.unwrap_or(0);
        let end = |k: &str| i.map_get(root, k).map(|(_, v)| i.end_line(v));
        assert_eq!(i.exact_line("a"), Some(1));
        assert_eq!(end("a"), Some(3));
        assert_eq!(i.exact_line("b"), Some(5));
        assert_eq!(end("b"), Some(7));
        assert_eq!(end("c"), Some(9));
        assert_eq!(i.exact_line("d[0]"), Some(11));
        assert_eq!(i.exact_line("d[1]"), Some(13));
        assert_eq!(end("d"), Some(13));
    }

    #[test]
    fn properties_before_first_key_set_the_indentation() {
        // The anchor belongs to the key `a`, so the mapping is indented at column 0 and the
        // second line continues the plain scalar.
        let src = "&x a: first\n  second\nb: 2\n";
        let i = idx(src);
        let root = i.root.unwrap_or(0);
        let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
        let n = i.node(a).cloned();
        assert_eq!(
            n.map(|n| src[n.start..n.end].to_string()).as_deref(),
            Some("first\n  second")
        );
        assert_eq!(i.exact_line("b"), Some(3));
        let src = " &a a: ---\n  &a \n";
        let i = idx(src);
        let root = i.root.unwrap_or(0);
        let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
        assert_eq!(i.end_line(a), 2);
    }

    #[test]
    fn empty_values_end_on_their_own_line() {
        let src = "a:\n# c\nb: &x\nc:\n  -\n  - 2\n";
        let i = idx(src);
        let root = i.root.unwrap_or(0);
        assert_eq!(i.exact_line("a"), Some(1));
        let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
        assert_eq!(i.end_line(a), 1);
        let (_, b) = i.map_get(root, "b").unwrap_or((0, 0));
        assert_eq!(i.end_line(b), 3);
        assert_eq!(i.exact_line("c[0]"), Some(5));
        assert_eq!(i.exact_line("c[1]"), Some(6));
    }

    #[test]
    fn crlf_and_unicode() {
        let src = "a: \"☃ snow\"\r\nb:\r\n  - é\r\n  - x\r\n";
        let i = idx(src);
        assert_eq!(i.exact_line("b[1]"), Some(4));
        let root = i.root.unwrap_or(0);
        let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
        let n = i.node(a).cloned();
        assert_eq!(n.map(|n| &src[n.start..n.end] == "\"☃ snow\""), Some(true));
    }

    #[test]
    fn syntax_errors_have_line_numbers() {
        let cases: &[(&str, usize)] = &[
            ("a: [1\nb: 2\n", 2),
            // An unterminated quote is reported where the quoted scalar starts.
            ("a: 1\nb: \"open\n", 2),
            ("a:\n  b: 1\n c: 2\n", 3),
            ("a: 1\nb:\n\t- x\n", 3),
            ("a: 1\n  b: 2\n", 2),
            ("ok: 1\nlist:\n  - a\n  b: 2\n", 4),
            ("x: *nope\n", 1),
        ];
        for (src, line) in cases {
            match SpanIndex::build(src) {
                Ok(_) => panic!("expected an error for {src:?}"),
                Err(e) => {
                    assert_eq!(e.line, *line, "{src:?}: {e}");
                    assert!(e.column >= 1);
                    assert!(e.to_string().contains(&format!("line {line}")));
                }
            }
        }
    }

    #[test]
    fn syntax_error_column_is_one_based() {
        let e = SpanIndex::build("key: value: x\n").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((1, 11)));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 20_000;
        let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // yaml-rust2 caps flow depth; either answer is fine as long as nothing crashes.
        let _ = SpanIndex::build(&src);
        let mut block = String::new();
        for d in 0..2_000 {
            block.push_str(&" ".repeat(d));
            block.push_str("k:\n");
        }
        let i = SpanIndex::build(&block);
        assert!(i.is_ok());
        let path = vec!["k"; 2_000].join(".");
        assert_eq!(i.map(|i| i.line_of(&path)).ok(), Some(2_000));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn never_panics_on_arbitrary_input(src in "[ -~\\n\\t\u{e9}\u{2603}]{0,80}", path in "[a-z.\\[\\]0-9\"]{0,12}") {
            if let Ok(i) = SpanIndex::build(&src) {
                let _ = i.line_of(&path);
                let _ = i.exact_line(&path);
                for n in &i.nodes {
                    proptest::prop_assert!(n.start <= n.end && n.end <= src.len());
                    proptest::prop_assert!(src.is_char_boundary(n.start) && src.is_char_boundary(n.end));
                }
            }
        }

        #[test]
        fn never_panics_on_yamlish_input(src in "([ ]{0,4}(- |[a-c]: |\\? |# c|&a |\\*a|!t |\\||>|\"x\"|'y'|\\[|\\]|\\{|\\}|, |---|\\.\\.\\.|z)){0,6}(\\n[ ]{0,4}(- |[a-c]: |# c|&a |\\*a|\\||\"x\\n|'y|\\[|\\]|\\{|\\}|, |z)){0,10}") {
            if let Ok(i) = SpanIndex::build(&src) {
                for n in &i.nodes {
                    proptest::prop_assert!(n.start <= n.end && n.end <= src.len());
                    let text = &src[n.start..n.end];
                    match &n.kind {
                        // A one-line plain scalar's extent is exactly its value.
                        Kind::Scalar { value, form: ScalarForm::Plain } if !text.contains('\n') => {
                            proptest::prop_assert_eq!(text, value.as_str(), "{:?}", src);
                        }
                        Kind::Scalar { form: ScalarForm::Quoted, .. } => {
                            let q = text.chars().next();
                            proptest::prop_assert!(text.len() >= 2 && q.is_some_and(|q| text.ends_with(q)), "{:?} {:?}", src, text);
                        }
                        _ => {}
                    }
                }
                let _ = i.line_of("a.b[0].c");
            }
        }
    }
}
