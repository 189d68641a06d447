//! Where things are in the tokens file and how an edit is spliced in: locating a token,
//! reading the file's indentation style, replacing, deleting and inserting lines, and the
//! verify-then-keep commit every edit ends with.

use serde_yaml::{Mapping, Value};

use super::super::spans::{Kind, ScalarForm};
use super::{quote_scalar, EditError, SeqShape, Splice, Style, TokenLoc, TokensDoc};

impl TokensDoc {
    // ---- locating -------------------------------------------------------------------------

    pub(super) fn locate_token(&self, sid: &str) -> Option<TokenLoc> {
        let ix = &self.index;
        let (_, accounts) = ix.map_get(ix.root?, "accounts")?;
        for (ai, &acct) in ix.seq_items(accounts)?.iter().enumerate() {
            let Some((_, tokens)) = ix.map_get(acct, "tokens") else {
                continue;
            };
            for (ti, &tok) in ix.seq_items(tokens).unwrap_or(&[]).iter().enumerate() {
                let hit = ix
                    .map_get(tok, "sid")
                    .is_some_and(|(_, v)| ix.scalar_str(v) == Some(sid));
                if hit {
                    return Some(TokenLoc {
                        account: ai,
                        token: ti,
                        account_node: acct,
                        tokens_seq: tokens,
                        node: tok,
                    });
                }
            }
        }
        None
    }

    pub(super) fn token_or_not_found(&self, sid: &str) -> Result<TokenLoc, EditError> {
        self.locate_token(sid)
            .ok_or_else(|| EditError::NotFound(format!("token {sid}")))
    }

    pub(super) fn account_id_of(&self, acct: usize) -> Option<&str> {
        let (_, v) = self.index.map_get(acct, "id")?;
        self.index.scalar_str(v)
    }

    pub(super) fn require_block_map(&self, node: usize, what: &str) -> Result<(), EditError> {
        match self.index.node(node) {
            Some(n) if matches!(n.kind, Kind::Map(_)) && !n.flow => Ok(()),
            Some(n) if matches!(n.kind, Kind::Map(_)) => Err(EditError::Unsupported(format!(
                "{what} is written in flow style (`{{...}}`); rewrite it in block style to edit it"
            ))),
            _ => Err(EditError::Unsupported(format!("{what} is not a mapping"))),
        }
    }

    pub(super) fn seq_shape(&self, node: usize) -> SeqShape<'_> {
        let Some(n) = self.index.node(node) else {
            return SeqShape::Other;
        };
        match &n.kind {
            Kind::Seq(items) if n.flow => {
                // Only a bracketed sequence in block context can be extended in place.
                if self.text.as_bytes().get(n.start) == Some(&b'[') {
                    SeqShape::Flow(items)
                } else {
                    SeqShape::Other
                }
            }
            Kind::Seq(items) if !items.is_empty() => SeqShape::Block(items),
            Kind::Scalar { value, form } => {
                let null = match form {
                    ScalarForm::Empty => true,
                    ScalarForm::Plain => matches!(value.as_str(), "~" | "null" | "Null" | "NULL"),
                    _ => false,
                };
                if null {
                    SeqShape::Null
                } else {
                    SeqShape::Other
                }
            }
            _ => SeqShape::Other,
        }
    }

    // ---- layout ---------------------------------------------------------------------------

    pub(super) fn node_start(&self, node: usize) -> usize {
        self.index.node(node).map_or(0, |n| n.start)
    }

    /// Column (in characters) of byte `pos` within its line.
    pub(super) fn col_of(&self, pos: usize) -> usize {
        let line = self.index.lines.line_of(pos);
        let start = self.index.lines.get(line).map_or(0, |s| s.start);
        self.text.get(start..pos).map_or(0, |s| s.chars().count())
    }

    pub(super) fn col_of_node(&self, node: usize) -> usize {
        self.col_of(self.node_start(node))
    }

    /// If `pos` is preceded on its line by exactly `<spaces>-<spaces>`, the dash's position.
    pub(super) fn dash_before(&self, pos: usize) -> Option<usize> {
        let line = self.index.lines.line_of(pos);
        let start = self.index.lines.get(line)?.start;
        let prefix = self.text.get(start..pos)?;
        let rest = prefix.trim_start_matches(' ');
        let after = rest.strip_prefix('-')?;
        if after.is_empty() || !after.chars().all(|c| c == ' ') {
            return None;
        }
        Some(start + prefix.len() - rest.len())
    }

    /// Column gap between a block sequence's `-` and its first item's first key, when the
    /// first item is a block mapping starting on the dash line.
    pub(super) fn seq_gap(&self, seq: usize) -> Option<usize> {
        let seq_node = self.index.node(seq)?;
        let first = *self.index.seq_items(seq)?.first()?;
        let item = self.index.node(first)?;
        let same_line =
            self.index.lines.line_of(item.start) == self.index.lines.line_of(seq_node.start);
        if !same_line || item.flow || item.start <= seq_node.start {
            return None;
        }
        Some(self.col_of(item.start) - self.col_of(seq_node.start))
    }

    /// Detects the file's indentation conventions from its existing block collections.
    pub(super) fn detect_style(&self) -> Style {
        let ix = &self.index;
        let mut seq_offset = None;
        let mut map_indent = None;
        let mut dash_gap = None;
        for (i, node) in ix.nodes.iter().enumerate() {
            if node.flow {
                continue;
            }
            match &node.kind {
                Kind::Map(entries) => {
                    for &(k, v) in entries {
                        let (Some(kn), Some(vn)) = (ix.node(k), ix.node(v)) else {
                            continue;
                        };
                        if vn.flow || ix.lines.line_of(vn.start) <= ix.lines.line_of(kn.start) {
                            continue;
                        }
                        let (kc, vc) = (self.col_of(kn.start), self.col_of(vn.start));
                        match vn.kind {
                            Kind::Seq(_) if seq_offset.is_none() && vc >= kc => {
                                seq_offset = Some(vc - kc)
                            }
                            Kind::Map(_) if map_indent.is_none() && vc > kc => {
                                map_indent = Some(vc - kc)
                            }
                            _ => {}
                        }
                    }
                }
                Kind::Seq(_) if dash_gap.is_none() => dash_gap = self.seq_gap(i),
                _ => {}
            }
        }
        Style {
            seq_offset: seq_offset.or(map_indent).unwrap_or(2),
            dash_gap: dash_gap.filter(|&g| g >= 2).unwrap_or(2),
        }
    }

    // ---- splices --------------------------------------------------------------------------

    /// Splices that replace the value of entry `key` → `val` with `inline` (one line, may be
    /// empty). Returns the splices and the last line the old value occupied (new lines for a
    /// block value go after it).
    ///
    /// The key stays on its line. A value ending on the key's line is replaced in place, so
    /// whatever follows it (a `# comment`) survives. A value spanning several lines is
    /// collapsed onto the key's line; a comment on the key's line is kept when the old value
    /// started below it (or was a block scalar header).
    pub(super) fn replace_value(
        &self,
        key: usize,
        val: usize,
        inline: &str,
    ) -> Result<(Vec<Splice>, usize), EditError> {
        let colon = self.colon_after(key)?;
        let key_line = self.index.lines.line_of(colon);
        let v = self
            .index
            .node(val)
            .ok_or_else(|| structure_mismatch("value"))?;
        let new_text = if inline.is_empty() {
            String::new()
        } else {
            format!(" {inline}")
        };
        let end_line = self.index.end_line(val).max(key_line);
        if end_line == key_line {
            if v.end < colon + 1 {
                return Err(EditError::Unsupported(
                    "unexpected value layout".to_string(),
                ));
            }
            let splice = Splice {
                start: colon + 1,
                end: v.end,
                text: new_text,
            };
            return Ok((vec![splice], key_line));
        }
        let starts_below = self.index.lines.line_of(v.start) > key_line;
        let is_block_scalar = matches!(
            v.kind,
            Kind::Scalar {
                form: ScalarForm::Block,
                ..
            }
        );
        let key_span = self
            .index
            .lines
            .get(key_line)
            .ok_or_else(|| structure_mismatch("line"))?;
        let last = self
            .index
            .lines
            .get(end_line)
            .ok_or_else(|| structure_mismatch("line"))?;
        let comment = if starts_below || is_block_scalar {
            // `key:   # note` above a block value, or `key: |  # note`: the key's comment.
            self.comment_in(colon + 1, key_span.content_end)
                .and_then(|c| self.text.get(c..key_span.content_end))
                .unwrap_or("")
        } else {
            // A flow / quoted / plain value continued over several lines: the comment after
            // its end is the collapsed line's trailing comment.
            self.text
                .get(v.end.min(last.content_end)..last.content_end)
                .filter(|rest| rest.trim_start().starts_with('#'))
                .unwrap_or("")
        };
        let splice = Splice {
            start: colon + 1,
            end: last.content_end,
            text: format!("{new_text}{comment}"),
        };
        Ok((vec![splice], end_line))
    }

    /// Position of the `:` that follows a single-line scalar key.
    pub(super) fn colon_after(&self, key: usize) -> Result<usize, EditError> {
        let unsupported = || {
            EditError::Unsupported(
                "a key in this entry is not a simple `key: value` pair; edit it by hand"
                    .to_string(),
            )
        };
        let k = self.index.node(key).ok_or_else(unsupported)?;
        if !matches!(k.kind, Kind::Scalar { .. }) || k.flow {
            return Err(unsupported());
        }
        let b = self.text.as_bytes();
        let mut p = k.end;
        while p < b.len() && matches!(b[p], b' ' | b'\t') {
            p += 1;
        }
        if b.get(p) == Some(&b':')
            && self.index.lines.line_of(p) == self.index.lines.line_of(k.start)
        {
            Ok(p)
        } else {
            Err(unsupported())
        }
    }

    /// Start (including the blanks before the `#`) of a comment in `from..to`, if any.
    pub(super) fn comment_in(&self, from: usize, to: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        let to = to.min(b.len());
        (from + 1..to)
            .find(|&i| b[i] == b'#' && matches!(b[i - 1], b' ' | b'\t'))
            .map(|hash| {
                let mut s = hash;
                while s > from && matches!(b[s - 1], b' ' | b'\t') {
                    s -= 1;
                }
                s
            })
    }

    pub(super) fn delete_lines(&self, first: usize, last: usize) -> Splice {
        let lines = &self.index.lines;
        let start = lines.get(first).map_or(self.text.len(), |s| s.start);
        let end = lines.get(last).map_or(self.text.len(), |s| s.end);
        Splice {
            start,
            end: end.max(start),
            text: String::new(),
        }
    }

    /// Inserts whole lines after 1-based line `line`.
    pub(super) fn insert_after_line(&self, line: usize, new_lines: &[String]) -> Splice {
        let span = self.index.lines.get(line);
        let pos = span.map_or(self.text.len(), |s| s.end);
        let mut text = String::new();
        // A last line without a line break needs one before the new lines.
        if span.is_some_and(|s| s.end == s.content_end && s.content_end > s.start) {
            text.push_str(self.newline);
        }
        for l in new_lines {
            text.push_str(l);
            text.push_str(self.newline);
        }
        Splice {
            start: pos,
            end: pos,
            text,
        }
    }

    /// Appends whole lines at the end of the text (used for an empty document).
    pub(super) fn append_at_end(&self, new_lines: &[String]) -> Splice {
        let len = self.text.len();
        let mut text = String::new();
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            text.push_str(self.newline);
        }
        for l in new_lines {
            text.push_str(l);
            text.push_str(self.newline);
        }
        Splice {
            start: len,
            end: len,
            text,
        }
    }

    /// Validates a token's fields and renders them as `key: value` strings.
    pub(super) fn prepare_token(
        &self,
        fields: &[(&str, String)],
    ) -> Result<(Vec<String>, Value), EditError> {
        match fields.first() {
            Some(("sid", _)) => {}
            _ => {
                return Err(EditError::Unsupported(
                    "a new token's first field must be `sid`".to_string(),
                ))
            }
        }
        let mut map = Mapping::new();
        let mut lines = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            check_key(key)?;
            let value = value.trim();
            let parsed = parse_one_line(value, key)?;
            if map
                .insert(Value::String((*key).to_string()), parsed)
                .is_some()
            {
                return Err(EditError::Unsupported(format!(
                    "field `{key}` is given twice"
                )));
            }
            lines.push(field_line(key, value));
        }
        if let Some(Value::String(sid)) = map.get("sid") {
            if self.locate_token(sid).is_some() {
                return Err(EditError::Unsupported(format!(
                    "a token with sid {sid} already exists"
                )));
            }
        }
        Ok((lines, Value::Mapping(map)))
    }

    /// Applies `splices`, re-parses, and keeps the result only if it is exactly `expected`.
    pub(super) fn commit(
        &mut self,
        splices: Vec<Splice>,
        expected: Value,
    ) -> Result<(), EditError> {
        let text = apply_splices(&self.text, splices)?;
        let doc = TokensDoc::parse(&text).map_err(|e| {
            EditError::Unsupported(format!(
                "refusing the edit: the result would not be a valid tokens file ({e}); nothing was changed"
            ))
        })?;
        if doc.value != expected {
            return Err(EditError::Unsupported(
                "refusing the edit: the file's layout is not understood well enough to change it \
                 safely (the result did not match the intended change); nothing was changed"
                    .to_string(),
            ));
        }
        *self = doc;
        Ok(())
    }
}

pub(super) fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// `key: value` (or `key:` for an empty value), with the key quoted when needed.
pub(super) fn field_line(key: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{}:", quote_scalar(key))
    } else {
        format!("{}: {value}", quote_scalar(key))
    }
}

/// Renders a block-sequence item of `key: value` lines: the first on the dash line.
pub(super) fn render_item(dash: usize, gap: usize, pairs: &[String]) -> Vec<String> {
    let gap = gap.max(2);
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                format!("{}-{}{p}", spaces(dash), spaces(gap - 1))
            } else {
                format!("{}{p}", spaces(dash + gap))
            }
        })
        .collect()
}

pub(super) fn check_key(key: &str) -> Result<(), EditError> {
    if key.is_empty() {
        return Err(EditError::Unsupported("field name is empty".to_string()));
    }
    Ok(())
}

/// Parses a caller-rendered one-line value; the parse is also the expected result of the edit.
pub(super) fn parse_one_line(value: &str, key: &str) -> Result<Value, EditError> {
    if value.contains(['\n', '\r']) {
        return Err(EditError::Unsupported(format!(
            "the value for `{key}` must be a single line of YAML"
        )));
    }
    serde_yaml::from_str(value).map_err(|e| {
        EditError::Unsupported(format!("the value for `{key}` is not valid YAML: {e}"))
    })
}

pub(super) fn structure_mismatch(what: &str) -> EditError {
    EditError::Unsupported(format!(
        "the document structure around `{what}` is not understood; edit it by hand"
    ))
}

pub(super) fn account_value_mut(
    root: &mut Value,
    account: usize,
) -> Result<&mut Mapping, EditError> {
    root.get_mut("accounts")
        .and_then(Value::as_sequence_mut)
        .and_then(|s| s.get_mut(account))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| structure_mismatch("accounts"))
}

pub(super) fn token_value_mut(
    root: &mut Value,
    account: usize,
    token: usize,
) -> Result<&mut Mapping, EditError> {
    account_value_mut(root, account)?
        .get_mut("tokens")
        .and_then(Value::as_sequence_mut)
        .and_then(|s| s.get_mut(token))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| structure_mismatch("tokens"))
}

pub(super) fn apply_splices(src: &str, mut splices: Vec<Splice>) -> Result<String, EditError> {
    splices.sort_by_key(|s| (s.start, s.end));
    let mut out = String::with_capacity(src.len() + 256);
    let mut pos = 0;
    for s in &splices {
        let ok = s.start >= pos
            && s.start <= s.end
            && s.end <= src.len()
            && src.is_char_boundary(s.start)
            && src.is_char_boundary(s.end);
        if !ok {
            return Err(EditError::Unsupported(
                "internal error: overlapping edit; nothing was changed".to_string(),
            ));
        }
        out.push_str(src.get(pos..s.start).unwrap_or(""));
        out.push_str(&s.text);
        pos = s.end;
    }
    out.push_str(src.get(pos..).unwrap_or(""));
    Ok(out)
}

// ---- rendering helpers ----------------------------------------------------------------------
