//! Builds a [`SpanIndex`] from yaml-rust2's marked event stream: opens and closes
//! collections on an explicit stack (hostile nesting cannot overflow the call stack) and
//! recovers where each node ends from the source text.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::*;

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

pub(super) struct Builder<'a> {
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
    pub(super) fn new(src: &'a str) -> Self {
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

    pub(super) fn run(mut self) -> Result<SpanIndex, SyntaxError> {
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
