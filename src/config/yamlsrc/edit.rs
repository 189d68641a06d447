//! Comment-preserving edits of `tokens.yaml` (the CLI's `scopegate token ...` writes), plus safe one-line YAML rendering helpers.
//!
//! Operators hand-edit the tokens file and annotate it with comments; re-serialising it through
//! serde_yaml would drop every comment and blank line. So edits here are text
//! splices located with [`SpanIndex`]: only the lines an edit is about are touched.
//!
//! Every edit is verified before it is kept: the new text must parse (with both yaml-rust2 and
//! serde_yaml) and must deserialize to exactly the old document with the intended change
//! applied. If it does not — an unusual layout this module does not understand — the edit is
//! refused with an error and the document is left unchanged. A refused edit is recoverable; a
//! silently corrupted credentials file is not.
#![forbid(unsafe_code)]

use serde_yaml::{Mapping, Value};

use super::spans::{Kind, ScalarForm, SpanIndex, SyntaxError};

/// Why an edit of the tokens file could not be made.
#[derive(thiserror::Error, Debug)]
pub enum EditError {
    /// The file (or the result of an edit) is not valid YAML.
    #[error("{0}")]
    Syntax(SyntaxError),
    /// The token, account or field the edit needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The file is laid out in a way this editor cannot change safely (for example a token
    /// written as a flow mapping `- {sid: ..}`), or the requested value is unusable.
    #[error("unsupported edit: {0}")]
    Unsupported(String),
}

impl From<SyntaxError> for EditError {
    fn from(e: SyntaxError) -> Self {
        EditError::Syntax(e)
    }
}

/// A parsed `tokens.yaml` that can be edited without losing comments or ordering.
///
/// Owns the source text, its [`SpanIndex`] and its serde_yaml value; all three are rebuilt
/// after every successful edit, so positions never go stale.
#[derive(Debug, Clone)]
pub struct TokensDoc {
    text: String,
    index: SpanIndex,
    value: Value,
    /// Line break used for inserted lines (the file's own: `\r\n` files stay `\r\n`).
    newline: &'static str,
}

/// Where a token sits in the document (node ids are [`SpanIndex`] nodes).
#[derive(Debug, Clone, Copy)]
struct TokenLoc {
    account: usize,
    token: usize,
    account_node: usize,
    tokens_seq: usize,
    node: usize,
}

/// One text replacement: `start..end` becomes `text`.
#[derive(Debug, Clone)]
struct Splice {
    start: usize,
    end: usize,
    text: String,
}

/// Indentation conventions detected from the file, so inserted lines look like their
/// neighbours instead of like this program's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Style {
    /// Column of a block sequence's `-` minus the column of its key (2 in `key:\n  - x`,
    /// 0 in `key:\n- x`).
    seq_offset: usize,
    /// Column of an item's first key minus the column of its `-` (2 in `- key: v`).
    dash_gap: usize,
}

/// Shape of a value that should be a list of tokens / accounts / SIDs.
enum SeqShape<'a> {
    /// A non-empty block sequence we can append lines to.
    Block(&'a [usize]),
    /// A bracketed sequence (`[a, b]`, or `[]` when empty).
    Flow(&'a [usize]),
    /// Nothing there yet (`key:`, `key: ~`, `key: null`).
    Null,
    /// Something else (a mapping, a string, an alias ...).
    Other,
}

impl TokensDoc {
    /// Parses a tokens file. Empty or comment-only text is a valid empty document.
    ///
    /// The top level must be a mapping (or empty). Files with bare-CR line breaks or more than
    /// one YAML document are refused: edits could not be placed safely in them.
    pub fn parse(src: &str) -> Result<Self, EditError> {
        let b = src.as_bytes();
        if b.iter()
            .enumerate()
            .any(|(i, &c)| c == b'\r' && b.get(i + 1) != Some(&b'\n'))
        {
            return Err(EditError::Unsupported(
                "the file uses bare CR line breaks; convert it to LF or CRLF".to_string(),
            ));
        }
        let index = SpanIndex::build(src)?;
        let value: Value = serde_yaml::from_str(src).map_err(|e| {
            let (line, column) = e
                .location()
                .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
            EditError::Syntax(SyntaxError {
                line,
                column,
                message: e.to_string(),
            })
        })?;
        if let Some(root) = index.root {
            let is_map = matches!(index.node(root).map(|n| &n.kind), Some(Kind::Map(_)));
            if !is_map || !value.is_mapping() {
                return Err(EditError::Unsupported(
                    "the top level of the tokens file must be a mapping (`accounts: ...`)"
                        .to_string(),
                ));
            }
        }
        let newline = if src.contains("\r\n") { "\r\n" } else { "\n" };
        Ok(TokensDoc {
            text: src.to_string(),
            index,
            value,
            newline,
        })
    }

    /// The current source text (write this back to the file).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line index of the current text, for error messages that point into the tokens file.
    pub fn spans(&self) -> &SpanIndex {
        &self.index
    }

    /// The current document as a serde_yaml value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Locates a token by SID: (account index, token index).
    pub fn find_token(&self, sid: &str) -> Option<(usize, usize)> {
        self.locate_token(sid).map(|l| (l.account, l.token))
    }

    /// Sets (replaces or inserts) one field of a token mapping.
    ///
    /// `value` is one line of YAML already rendered by the caller (flow style or a plain /
    /// quoted scalar, see [`quote_scalar`], [`flow_seq`], [`flow_map`]). Replacing keeps the
    /// key where it is and keeps a trailing `# comment` on the key's line; a multi-line block
    /// value (e.g. a block sequence under `scopes:`) is replaced entirely by the one-line value.
    /// Inserting appends the key as the token's last field, at the token's indentation.
    pub fn set_token_field(&mut self, sid: &str, key: &str, value: &str) -> Result<(), EditError> {
        check_key(key)?;
        let value = value.trim();
        let parsed = parse_one_line(value, key)?;
        let loc = self.token_or_not_found(sid)?;
        self.require_block_map(loc.node, &format!("token {sid}"))?;

        let mut expected = self.value.clone();
        token_value_mut(&mut expected, loc.account, loc.token)?
            .insert(Value::String(key.to_string()), parsed);

        let splices = match self.index.map_get(loc.node, key) {
            Some((k, v)) => self.replace_value(k, v, value)?.0,
            None => {
                let col = self.col_of_node(loc.node);
                let line = format!("{}{}", spaces(col), field_line(key, value));
                vec![self.insert_after_line(self.index.end_line(loc.node), &[line])]
            }
        };
        self.commit(splices, expected)
    }

    /// Removes one field of a token mapping; does nothing when the field is absent.
    pub fn remove_token_field(&mut self, sid: &str, key: &str) -> Result<(), EditError> {
        let loc = self.token_or_not_found(sid)?;
        self.require_block_map(loc.node, &format!("token {sid}"))?;
        let Some((k, v)) = self.index.map_get(loc.node, key) else {
            return Ok(());
        };
        let mut expected = self.value.clone();
        token_value_mut(&mut expected, loc.account, loc.token)?.remove(key);

        let key_start = self.node_start(k);
        let splices = if self.dash_before(key_start).is_some() {
            // `- key: v` — the key shares the item's dash line, so the next key moves up onto
            // it instead of deleting the dash.
            let entries = self.index.map_entries(loc.node).unwrap_or(&[]);
            let Some(&(next_key, _)) = entries.get(1) else {
                return Err(EditError::Unsupported(format!(
                    "`{key}` is the only field of token {sid}; remove the token instead"
                )));
            };
            let next_start = self.node_start(next_key);
            if self.col_of(next_start) != self.col_of(key_start) {
                return Err(EditError::Unsupported(format!(
                    "token {sid} has irregular indentation; edit it by hand"
                )));
            }
            vec![Splice {
                start: key_start,
                end: next_start,
                text: String::new(),
            }]
        } else {
            let first = self.index.lines.line_of(key_start);
            let last = self.index.end_line(v).max(first);
            vec![self.delete_lines(first, last)]
        };
        self.commit(splices, expected)
    }

    /// Appends a token at the end of an account's `tokens:` list.
    ///
    /// `fields` are ordered (key, one-line value) pairs and the first key must be `sid`. The
    /// `tokens:` key, the whole account entry (`- id: ..`, `name: ..`, `tokens:`) or the
    /// top-level `accounts:` key are created when missing, indented like the rest of the file
    /// (default: 2 spaces, sequences indented under their key). An existing account's name is
    /// left as it is. A SID that already exists anywhere in the file is refused.
    pub fn append_token(
        &mut self,
        account_id: &str,
        account_name: Option<&str>,
        fields: &[(&str, String)],
    ) -> Result<(), EditError> {
        let (token_lines, token_value) = self.prepare_token(fields)?;
        let style = self.detect_style();
        let mut expected = self.value.clone();

        // Renders `- sid: ..` + the other fields for a sequence whose dashes are at `dash`.
        let render_token = |dash: usize, gap: usize| render_item(dash, gap, &token_lines);
        let new_account = |dash: usize, gap: usize| -> Vec<String> {
            let key_col = dash + gap;
            let mut pairs = vec![format!("id: {}", quote_scalar(account_id))];
            if let Some(name) = account_name {
                pairs.push(format!("name: {}", quote_scalar(name)));
            }
            pairs.push("tokens:".to_string());
            let mut lines = render_item(dash, gap, &pairs);
            lines.extend(render_token(key_col + style.seq_offset, style.dash_gap));
            lines
        };
        let mut account_value = Mapping::new();
        account_value.insert("id".into(), Value::String(account_id.to_string()));
        if let Some(name) = account_name {
            account_value.insert("name".into(), Value::String(name.to_string()));
        }
        account_value.insert("tokens".into(), Value::Sequence(vec![token_value.clone()]));

        let Some(root) = self.index.root else {
            // Empty document: write the whole structure.
            let mut lines = vec!["accounts:".to_string()];
            lines.extend(new_account(style.seq_offset, style.dash_gap));
            let mut m = Mapping::new();
            m.insert(
                "accounts".into(),
                Value::Sequence(vec![Value::Mapping(account_value)]),
            );
            return self.commit(vec![self.append_at_end(&lines)], Value::Mapping(m));
        };
        self.require_block_map(root, "the top level")?;
        let root_col = self.col_of_node(root);
        let root_map = expected
            .as_mapping_mut()
            .ok_or_else(|| structure_mismatch("top level"))?;

        let Some((acc_key, acc_val)) = self.index.map_get(root, "accounts") else {
            let mut lines = vec![format!("{}accounts:", spaces(root_col))];
            lines.extend(new_account(root_col + style.seq_offset, style.dash_gap));
            root_map.insert(
                "accounts".into(),
                Value::Sequence(vec![Value::Mapping(account_value)]),
            );
            let splice = self.insert_after_line(self.index.end_line(root), &lines);
            return self.commit(vec![splice], expected);
        };

        let accounts_value = root_map
            .get_mut("accounts")
            .ok_or_else(|| structure_mismatch("accounts"))?;
        let (acc_dash, acc_gap, acc_items) = match self.seq_shape(acc_val) {
            SeqShape::Block(items) => (
                self.col_of_node(acc_val),
                self.seq_gap(acc_val).unwrap_or(style.dash_gap),
                items,
            ),
            SeqShape::Null | SeqShape::Flow(&[]) => {
                let dash = self.col_of_node(acc_key) + style.seq_offset;
                let (mut splices, last_line) = self.replace_value(acc_key, acc_val, "")?;
                splices.push(self.insert_after_line(last_line, &new_account(dash, style.dash_gap)));
                *accounts_value = Value::Sequence(vec![Value::Mapping(account_value)]);
                return self.commit(splices, expected);
            }
            _ => return Err(EditError::Unsupported(
                "`accounts` is not a block sequence (`accounts:` followed by `- id: ...` items)"
                    .to_string(),
            )),
        };

        let found = acc_items
            .iter()
            .enumerate()
            .find(|&(_, &a)| self.account_id_of(a) == Some(account_id));
        let Some((ai, &acct)) = found else {
            accounts_value
                .as_sequence_mut()
                .ok_or_else(|| structure_mismatch("accounts"))?
                .push(Value::Mapping(account_value));
            let splice = self.insert_after_line(
                self.index.end_line(acc_val),
                &new_account(acc_dash, acc_gap),
            );
            return self.commit(vec![splice], expected);
        };

        self.require_block_map(acct, &format!("account {account_id}"))?;
        let acct_map = accounts_value
            .as_sequence_mut()
            .and_then(|s| s.get_mut(ai))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| structure_mismatch("account"))?;
        let key_col = self.col_of_node(acct);
        let splices = match self.index.map_get(acct, "tokens") {
            None => {
                let mut lines = vec![format!("{}tokens:", spaces(key_col))];
                lines.extend(render_token(key_col + style.seq_offset, style.dash_gap));
                acct_map.insert("tokens".into(), Value::Sequence(vec![token_value]));
                vec![self.insert_after_line(self.index.end_line(acct), &lines)]
            }
            Some((tk, tv)) => match self.seq_shape(tv) {
                SeqShape::Block(_) => {
                    acct_map
                        .get_mut("tokens")
                        .and_then(Value::as_sequence_mut)
                        .ok_or_else(|| structure_mismatch("tokens"))?
                        .push(token_value);
                    let lines = render_token(
                        self.col_of_node(tv),
                        self.seq_gap(tv).unwrap_or(style.dash_gap),
                    );
                    vec![self.insert_after_line(self.index.end_line(tv), &lines)]
                }
                SeqShape::Null | SeqShape::Flow(&[]) => {
                    let dash = self.col_of_node(tk) + style.seq_offset;
                    let (mut splices, last_line) = self.replace_value(tk, tv, "")?;
                    splices.push(
                        self.insert_after_line(last_line, &render_token(dash, style.dash_gap)),
                    );
                    acct_map.insert("tokens".into(), Value::Sequence(vec![token_value]));
                    splices
                }
                _ => {
                    return Err(EditError::Unsupported(format!(
                        "`tokens` of account {account_id} is not a block sequence; edit it by hand"
                    )))
                }
            },
        };
        self.commit(splices, expected)
    }

    /// Removes a token's whole sequence item (exactly the item's lines; comment lines above
    /// it stay). Removing an account's last token leaves `tokens: []`, which keeps the account
    /// well-typed.
    pub fn remove_token(&mut self, sid: &str) -> Result<(), EditError> {
        let loc = self.token_or_not_found(sid)?;
        let mut expected = self.value.clone();
        {
            let tokens = account_value_mut(&mut expected, loc.account)?
                .get_mut("tokens")
                .and_then(Value::as_sequence_mut)
                .ok_or_else(|| structure_mismatch("tokens"))?;
            if loc.token >= tokens.len() {
                return Err(structure_mismatch("tokens"));
            }
            tokens.remove(loc.token);
        }
        if self.index.node(loc.tokens_seq).is_none_or(|n| n.flow) {
            return Err(EditError::Unsupported(format!(
                "the tokens of the account holding {sid} are a flow sequence `[...]`; edit it by hand"
            )));
        }
        let start = self.node_start(loc.node);
        if self.dash_before(start).is_none() {
            return Err(EditError::Unsupported(format!(
                "token {sid} does not start on its `- ` line; remove it by hand"
            )));
        }
        let first = self.index.lines.line_of(start);
        let last = self.index.end_line(loc.node).max(first);
        let mut splices = vec![self.delete_lines(first, last)];
        if self.index.seq_items(loc.tokens_seq).unwrap_or(&[]).len() == 1 {
            // Last token: `tokens:` becomes `tokens: []` (comments on its line and between
            // the key and the item stay where they are).
            let (k, _) = self
                .index
                .map_get(loc.account_node, "tokens")
                .ok_or_else(|| structure_mismatch("tokens"))?;
            let colon = self.colon_after(k)?;
            let key_line = self.index.lines.line_of(colon);
            if key_line >= first {
                return Err(structure_mismatch("tokens"));
            }
            let line_end = self
                .index
                .lines
                .get(key_line)
                .map_or(colon + 1, |s| s.content_end);
            let value_end = self.comment_in(colon + 1, line_end).unwrap_or(line_end);
            splices.push(Splice {
                start: colon + 1,
                end: value_end,
                text: " []".to_string(),
            });
        }
        self.commit(splices, expected)
    }

    /// Adds a SID to the top-level `deleted_sids` list (created as a block sequence at the
    /// end of the top-level mapping when missing). Does nothing if the SID is already listed.
    pub fn add_tombstone(&mut self, sid: &str) -> Result<(), EditError> {
        let rendered = quote_scalar(sid);
        let style = self.detect_style();
        let sid_value = Value::String(sid.to_string());
        let Some(root) = self.index.root else {
            let lines = vec![
                "deleted_sids:".to_string(),
                format!("{}- {rendered}", spaces(style.seq_offset)),
            ];
            let mut m = Mapping::new();
            m.insert("deleted_sids".into(), Value::Sequence(vec![sid_value]));
            return self.commit(vec![self.append_at_end(&lines)], Value::Mapping(m));
        };
        self.require_block_map(root, "the top level")?;
        let root_col = self.col_of_node(root);
        let mut expected = self.value.clone();
        let root_map = expected
            .as_mapping_mut()
            .ok_or_else(|| structure_mismatch("top level"))?;

        let Some((k, v)) = self.index.map_get(root, "deleted_sids") else {
            let lines = vec![
                format!("{}deleted_sids:", spaces(root_col)),
                format!("{}- {rendered}", spaces(root_col + style.seq_offset)),
            ];
            root_map.insert("deleted_sids".into(), Value::Sequence(vec![sid_value]));
            let splice = self.insert_after_line(self.index.end_line(root), &lines);
            return self.commit(vec![splice], expected);
        };
        let list = root_map
            .get_mut("deleted_sids")
            .ok_or_else(|| structure_mismatch("deleted_sids"))?;
        let shape = self.seq_shape(v);
        if let SeqShape::Block(items) | SeqShape::Flow(items) = shape {
            if items.iter().any(|&i| self.index.scalar_str(i) == Some(sid)) {
                return Ok(());
            }
        }
        let splices = match shape {
            SeqShape::Block(_) => {
                let dash = self.col_of_node(v);
                let gap = self.seq_gap(v).unwrap_or(2);
                vec![self.insert_after_line(
                    self.index.end_line(v),
                    &[format!(
                        "{}-{}{rendered}",
                        spaces(dash),
                        spaces(gap.max(2) - 1)
                    )],
                )]
            }
            SeqShape::Flow(items) => {
                let node = self
                    .index
                    .node(v)
                    .ok_or_else(|| structure_mismatch("deleted_sids"))?;
                match items.last().and_then(|&i| self.index.node(i)) {
                    None => vec![Splice {
                        start: node.start + 1,
                        end: node.start + 1,
                        text: rendered,
                    }],
                    Some(last) => vec![Splice {
                        start: last.end,
                        end: last.end,
                        text: format!(", {rendered}"),
                    }],
                }
            }
            SeqShape::Null => {
                let dash = self.col_of_node(k) + style.seq_offset;
                let (mut splices, last_line) = self.replace_value(k, v, "")?;
                splices.push(
                    self.insert_after_line(last_line, &[format!("{}- {rendered}", spaces(dash))]),
                );
                splices
            }
            SeqShape::Other => {
                return Err(EditError::Unsupported(
                    "`deleted_sids` is not a list; fix it by hand".to_string(),
                ))
            }
        };
        match list {
            Value::Sequence(s) => s.push(sid_value),
            other => *other = Value::Sequence(vec![sid_value]),
        }
        self.commit(splices, expected)
    }

    // ---- locating -------------------------------------------------------------------------

    fn locate_token(&self, sid: &str) -> Option<TokenLoc> {
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

    fn token_or_not_found(&self, sid: &str) -> Result<TokenLoc, EditError> {
        self.locate_token(sid)
            .ok_or_else(|| EditError::NotFound(format!("token {sid}")))
    }

    fn account_id_of(&self, acct: usize) -> Option<&str> {
        let (_, v) = self.index.map_get(acct, "id")?;
        self.index.scalar_str(v)
    }

    fn require_block_map(&self, node: usize, what: &str) -> Result<(), EditError> {
        match self.index.node(node) {
            Some(n) if matches!(n.kind, Kind::Map(_)) && !n.flow => Ok(()),
            Some(n) if matches!(n.kind, Kind::Map(_)) => Err(EditError::Unsupported(format!(
                "{what} is written in flow style (`{{...}}`); rewrite it in block style to edit it"
            ))),
            _ => Err(EditError::Unsupported(format!("{what} is not a mapping"))),
        }
    }

    fn seq_shape(&self, node: usize) -> SeqShape<'_> {
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

    fn node_start(&self, node: usize) -> usize {
        self.index.node(node).map_or(0, |n| n.start)
    }

    /// Column (in characters) of byte `pos` within its line.
    fn col_of(&self, pos: usize) -> usize {
        let line = self.index.lines.line_of(pos);
        let start = self.index.lines.get(line).map_or(0, |s| s.start);
        self.text.get(start..pos).map_or(0, |s| s.chars().count())
    }

    fn col_of_node(&self, node: usize) -> usize {
        self.col_of(self.node_start(node))
    }

    /// If `pos` is preceded on its line by exactly `<spaces>-<spaces>`, the dash's position.
    fn dash_before(&self, pos: usize) -> Option<usize> {
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
    fn seq_gap(&self, seq: usize) -> Option<usize> {
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
    fn detect_style(&self) -> Style {
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
    fn replace_value(
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
    fn colon_after(&self, key: usize) -> Result<usize, EditError> {
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
    fn comment_in(&self, from: usize, to: usize) -> Option<usize> {
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

    fn delete_lines(&self, first: usize, last: usize) -> Splice {
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
    fn insert_after_line(&self, line: usize, new_lines: &[String]) -> Splice {
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
    fn append_at_end(&self, new_lines: &[String]) -> Splice {
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
    fn prepare_token(&self, fields: &[(&str, String)]) -> Result<(Vec<String>, Value), EditError> {
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
    fn commit(&mut self, splices: Vec<Splice>, expected: Value) -> Result<(), EditError> {
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

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// `key: value` (or `key:` for an empty value), with the key quoted when needed.
fn field_line(key: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{}:", quote_scalar(key))
    } else {
        format!("{}: {value}", quote_scalar(key))
    }
}

/// Renders a block-sequence item of `key: value` lines: the first on the dash line.
fn render_item(dash: usize, gap: usize, pairs: &[String]) -> Vec<String> {
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

fn check_key(key: &str) -> Result<(), EditError> {
    if key.is_empty() {
        return Err(EditError::Unsupported("field name is empty".to_string()));
    }
    Ok(())
}

/// Parses a caller-rendered one-line value; the parse is also the expected result of the edit.
fn parse_one_line(value: &str, key: &str) -> Result<Value, EditError> {
    if value.contains(['\n', '\r']) {
        return Err(EditError::Unsupported(format!(
            "the value for `{key}` must be a single line of YAML"
        )));
    }
    serde_yaml::from_str(value).map_err(|e| {
        EditError::Unsupported(format!("the value for `{key}` is not valid YAML: {e}"))
    })
}

fn structure_mismatch(what: &str) -> EditError {
    EditError::Unsupported(format!(
        "the document structure around `{what}` is not understood; edit it by hand"
    ))
}

fn account_value_mut(root: &mut Value, account: usize) -> Result<&mut Mapping, EditError> {
    root.get_mut("accounts")
        .and_then(Value::as_sequence_mut)
        .and_then(|s| s.get_mut(account))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| structure_mismatch("accounts"))
}

fn token_value_mut(
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

fn apply_splices(src: &str, mut splices: Vec<Splice>) -> Result<String, EditError> {
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

/// Renders any string as a one-line YAML scalar that reads back as exactly that string.
///
/// Plain when that is unambiguous (letters, digits and `_ - . / @ + =` with inner spaces,
/// not starting with a digit or indicator, not a YAML 1.1/1.2 keyword such as `yes`, `null`,
/// `on`); otherwise double-quoted with escapes. Being conservative costs a pair of quotes;
/// being clever risks `no` turning into `false` in someone's token file. The output is also
/// safe inside flow collections.
pub fn quote_scalar(s: &str) -> String {
    if is_plain_safe(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            // Not "printable" for YAML (or a BOM that some readers strip): escape.
            '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic()
        || first == '_'
        || first == '/'
        || (!first.is_ascii() && first.is_alphanumeric()))
    {
        return false;
    }
    if s.ends_with(' ') {
        return false;
    }
    let chars_ok = s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '/' | '@' | '+' | '=' | ' ')
            || (!c.is_ascii() && c.is_alphanumeric())
    });
    if !chars_ok {
        return false;
    }
    const RESERVED: &[&str] = &[
        "null", "true", "false", "yes", "no", "y", "n", "on", "off", "inf", "infinity", "nan",
    ];
    !RESERVED.iter().any(|r| s.eq_ignore_ascii_case(r))
}

/// Renders raw strings as a one-line flow sequence, quoting each as needed:
/// `["GET", "POST"]` → `[GET, POST]`.
pub fn flow_seq<S: AsRef<str>>(items: &[S]) -> String {
    let rendered: Vec<String> = items.iter().map(|s| quote_scalar(s.as_ref())).collect();
    flow_seq_rendered(&rendered)
}

/// Joins already-rendered one-line YAML values into a flow sequence (e.g. a list of
/// [`flow_map`] results for `scopes`).
pub fn flow_seq_rendered<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", parts.join(", "))
}

/// Renders a one-line flow mapping; keys are quoted as needed, values are already rendered:
/// `[("api", quote_scalar("campaigns")), ("methods", flow_seq(&["GET"]))]` →
/// `{api: campaigns, methods: [GET]}`.
pub fn flow_map<K: AsRef<str>, V: AsRef<str>>(entries: &[(K, V)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}: {}", quote_scalar(k.as_ref()), v.as_ref()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::spans::tests::TOKENS;
    use super::*;
    use proptest::prelude::*;

    const SID: &str = "SG5f2a0000000000000000000000000000";

    fn doc(src: &str) -> TokensDoc {
        match TokensDoc::parse(src) {
            Ok(d) => d,
            Err(e) => panic!("parse failed: {e}\n{src}"),
        }
    }

    fn ok(r: Result<(), EditError>) {
        if let Err(e) = r {
            panic!("edit failed: {e}");
        }
    }

    fn yaml(src: &str) -> Value {
        match serde_yaml::from_str(src) {
            Ok(v) => v,
            Err(e) => panic!("serde_yaml rejected the text: {e}\n{src}"),
        }
    }

    fn fields(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
    }

    /// Every `# comment` in `src`, in order (good enough for test fixtures: no `#` in strings).
    fn comments(src: &str) -> Vec<String> {
        src.lines()
            .filter_map(|l| {
                let t = l.trim_start();
                if t.starts_with('#') {
                    Some(t.to_string())
                } else {
                    l.find(" #").map(|i| l[i + 1..].to_string())
                }
            })
            .collect()
    }

    fn assert_subsequence(needles: &[String], hay: &[String]) {
        let mut it = hay.iter();
        for n in needles {
            assert!(
                it.any(|h| h == n),
                "comment lost or reordered: {n:?}\nhave: {hay:?}"
            );
        }
    }

    #[test]
    fn parses_example_and_finds_tokens() {
        let d = doc(TOKENS);
        assert_eq!(d.text(), TOKENS);
        assert_eq!(d.find_token(SID), Some((0, 0)));
        assert_eq!(d.find_token("SGnope"), None);
        assert_eq!(d.spans().line_of("accounts[0].tokens[0].kind"), 14);
    }

    #[test]
    fn empty_and_comment_only_docs_are_valid() {
        for src in ["", "# just a comment\n", "\n\n# two\n# comments", "---\n"] {
            let d = doc(src);
            assert_eq!(d.find_token(SID), None);
        }
        assert!(matches!(
            TokensDoc::parse("- a\n- b\n"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            TokensDoc::parse("a: [1\n"),
            Err(EditError::Syntax(_))
        ));
        assert!(matches!(
            TokensDoc::parse("a: 1\n---\nb: 2\n"),
            Err(EditError::Syntax(_))
        ));
        assert!(matches!(
            TokensDoc::parse("a: 1\rb: 2\r"),
            Err(EditError::Unsupported(_))
        ));
    }

    #[test]
    fn set_field_replaces_scalar_keeping_comment() {
        let mut d = doc(TOKENS);
        ok(d.set_token_field(SID, "status", "disabled"));
        assert!(d
            .text()
            .contains("\n        status: disabled                # or disabled\n"));
        // Only that line changed.
        let before: Vec<&str> = TOKENS.lines().collect();
        let after: Vec<&str> = d.text().lines().collect();
        assert_eq!(before.len(), after.len());
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        assert_eq!(changed, vec![12]);

        ok(d.set_token_field(SID, "auth_token_hash", &quote_scalar("sha256:00ff")));
        assert!(d
            .text()
            .contains("\n        auth_token_hash: \"sha256:00ff\"\n"));
        ok(d.set_token_field(
            SID,
            "developer_emails",
            &flow_seq(&["a@x.example", "b@x.example"]),
        ));
        assert!(d
            .text()
            .contains("developer_emails: [a@x.example, b@x.example]\n"));
        let v = yaml(d.text());
        let tok = &v["accounts"][0]["tokens"][0];
        assert_eq!(tok["status"], Value::from("disabled"));
        assert_eq!(tok["auth_token_hash"], Value::from("sha256:00ff"));
        assert_eq!(tok["developer_emails"][1], Value::from("b@x.example"));
        assert_eq!(d.value(), &v);
    }

    #[test]
    fn set_field_replaces_block_sequence_with_one_line() {
        let mut d = doc(TOKENS);
        let scopes = flow_seq_rendered(&[
            flow_map(&[
                ("api", quote_scalar("campaigns")),
                ("methods", flow_seq(&["GET", "POST"])),
            ]),
            flow_map(&[
                ("api", quote_scalar("reports")),
                ("methods", flow_seq(&["GET"])),
            ]),
        ]);
        ok(d.set_token_field(SID, "scopes", &scopes));
        assert!(d.text().contains(
            "\n        scopes: [{api: campaigns, methods: [GET, POST]}, {api: reports, methods: [GET]}]\n        rate_limit:"
        ));
        assert!(!d.text().contains("- {api: campaigns"));
        let v = yaml(d.text());
        assert_eq!(v["accounts"][0]["tokens"][0]["scopes"], yaml(&scopes));
        assert_eq!(TOKENS.lines().count() - 1, d.text().lines().count());
    }

    #[test]
    fn set_field_inserts_at_end_of_token() {
        let mut d = doc(TOKENS);
        ok(d.set_token_field(SID, "expires_at", "2027-01-01T00:00:00Z"));
        assert!(d.text().contains(
            "rate_limit: {requests_per_second: 20, burst: 40}\n        expires_at: 2027-01-01T00:00:00Z\ndeleted_sids:"
        ));
        assert_eq!(
            yaml(d.text())["accounts"][0]["tokens"][0]["expires_at"],
            Value::from("2027-01-01T00:00:00Z")
        );
        // Empty value renders as a bare key (null).
        ok(d.set_token_field(SID, "note", ""));
        assert!(d.text().contains("\n        note:\n"));
        assert_eq!(
            yaml(d.text())["accounts"][0]["tokens"][0]["note"],
            Value::Null
        );
        // And a null value can be replaced again.
        ok(d.set_token_field(SID, "note", "hello"));
        assert!(d.text().contains("\n        note: hello\n"));
    }

    #[test]
    fn set_field_multiline_values_and_key_line_comment() {
        let src = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n        description: |   # why\n          line one\n          line two\n        # about q\n        q: \"multi\n          line\"\n        scopes:   # the scopes\n          # first\n          - {api: x}\n          - {api: y}\n        last: 1\n";
        let mut d = doc(src);
        ok(d.set_token_field("S1", "description", "short"));
        ok(d.set_token_field("S1", "q", "single"));
        ok(d.set_token_field("S1", "scopes", "[{api: z}]"));
        let want = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n        description: short   # why\n        # about q\n        q: single\n        scopes: [{api: z}]   # the scopes\n        last: 1\n";
        assert_eq!(d.text(), want);
    }

    #[test]
    fn remove_field_variants() {
        let mut d = doc(TOKENS);
        ok(d.remove_token_field(SID, "description"));
        assert!(!d.text().contains("description:"));
        assert_eq!(d.text().lines().count(), TOKENS.lines().count() - 1);
        // Absent: no-op.
        let before = d.text().to_string();
        ok(d.remove_token_field(SID, "nope"));
        assert_eq!(d.text(), before);
        // A multi-line value goes with all its lines.
        ok(d.remove_token_field(SID, "scopes"));
        assert!(!d.text().contains("api: campaigns"));
        assert!(d
            .text()
            .contains("rotated_at: 2026-08-01T00:00:00Z\n        rate_limit:"));
        // The first key shares the dash line: the next key moves up.
        ok(d.remove_token_field(SID, "sid"));
        assert!(d.text().contains(
            "      # nightly export\n      - name: reporting-sync\n        primary_contact:"
        ));
        let v = yaml(d.text());
        assert!(v["accounts"][0]["tokens"][0].get("sid").is_none());
        assert!(v["accounts"][0]["tokens"][0].get("description").is_none());
        assert_eq!(d.value(), &v);
    }

    #[test]
    fn remove_only_field_is_refused() {
        let src = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n";
        let mut d = doc(src);
        assert!(matches!(
            d.remove_token_field("S1", "sid"),
            Err(EditError::Unsupported(_))
        ));
        assert_eq!(d.text(), src);
    }

    #[test]
    fn append_token_to_existing_account() {
        let mut d = doc(TOKENS);
        let f = fields(&[
            ("sid", "SGbbbb"),
            ("name", "ci-bot"),
            ("status", "active"),
            ("scopes", "[{api: campaigns, methods: [GET]}]"),
        ]);
        ok(d.append_token("IRacme", Some("ignored"), &f));
        assert!(d.text().contains(
            "burst: 40}\n      - sid: SGbbbb\n        name: ci-bot\n        status: active\n        scopes: [{api: campaigns, methods: [GET]}]\ndeleted_sids:"
        ));
        assert_eq!(d.find_token("SGbbbb"), Some((0, 1)));
        let v = yaml(d.text());
        assert_eq!(v["accounts"][0]["name"], Value::from("Acme Corp"));
        assert_eq!(v["accounts"][0]["tokens"][1]["name"], Value::from("ci-bot"));
        // Duplicate SIDs are refused.
        assert!(matches!(
            d.append_token("IRacme", None, &f),
            Err(EditError::Unsupported(_))
        ));
        // First field must be the sid.
        let bad = fields(&[("name", "x"), ("sid", "SGc")]);
        assert!(matches!(
            d.append_token("IRacme", None, &bad),
            Err(EditError::Unsupported(_))
        ));
    }

    #[test]
    fn append_token_creates_account() {
        let mut d = doc(TOKENS);
        ok(d.append_token(
            "IRnew",
            Some("New: Co"),
            &fields(&[("sid", "SGn1"), ("name", "n1")]),
        ));
        assert!(d.text().contains(
            "burst: 40}\n  - id: IRnew\n    name: \"New: Co\"\n    tokens:\n      - sid: SGn1\n        name: n1\ndeleted_sids:"
        ));
        assert_eq!(d.find_token("SGn1"), Some((1, 0)));
        // Without a name.
        ok(d.append_token("IRnameless", None, &fields(&[("sid", "SGn2")])));
        assert!(d
            .text()
            .contains("  - id: IRnameless\n    tokens:\n      - sid: SGn2\n"));
    }

    #[test]
    fn append_to_account_without_tokens_key() {
        let src = "accounts:\n  - id: IRa   # first\n    name: A\n  # between\n  - id: IRb\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", None, &fields(&[("sid", "SG1"), ("name", "one")])));
        assert_eq!(
            d.text(),
            "accounts:\n  - id: IRa   # first\n    name: A\n    tokens:\n      - sid: SG1\n        name: one\n  # between\n  - id: IRb\n"
        );
        ok(d.append_token("IRb", None, &fields(&[("sid", "SG2")])));
        assert!(d
            .text()
            .ends_with("  - id: IRb\n    tokens:\n      - sid: SG2\n"));
    }

    #[test]
    fn append_to_empty_and_null_lists() {
        let src = "accounts:\n  - id: IRa\n    tokens: []   # none yet\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", None, &fields(&[("sid", "SG1")])));
        assert_eq!(
            d.text(),
            "accounts:\n  - id: IRa\n    tokens:   # none yet\n      - sid: SG1\n"
        );

        let src = "accounts:   # all of them\nother: 1\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", Some("A"), &fields(&[("sid", "SG1")])));
        assert_eq!(
            d.text(),
            "accounts:   # all of them\n  - id: IRa\n    name: A\n    tokens:\n      - sid: SG1\nother: 1\n"
        );
    }

    #[test]
    fn append_to_empty_and_comment_only_files() {
        let mut d = doc("");
        ok(d.append_token(
            "IR1",
            Some("One"),
            &fields(&[("sid", "SG1"), ("name", "x")]),
        ));
        assert_eq!(
            d.text(),
            "accounts:\n  - id: IR1\n    name: One\n    tokens:\n      - sid: SG1\n        name: x\n"
        );
        let mut d = doc("# tokens file\n# keep me");
        ok(d.append_token("IR1", None, &fields(&[("sid", "SG1")])));
        assert_eq!(
            d.text(),
            "# tokens file\n# keep me\naccounts:\n  - id: IR1\n    tokens:\n      - sid: SG1\n"
        );
        // Top-level mapping without `accounts`.
        let mut d = doc("version: 1   # schema\n");
        ok(d.append_token("IR1", None, &fields(&[("sid", "SG1")])));
        assert_eq!(
            d.text(),
            "version: 1   # schema\naccounts:\n  - id: IR1\n    tokens:\n      - sid: SG1\n"
        );
        // No trailing newline.
        let mut d = doc("version: 1");
        ok(d.add_tombstone("SGx"));
        assert_eq!(d.text(), "version: 1\ndeleted_sids:\n  - SGx\n");
    }

    #[test]
    fn four_space_indentation_is_detected() {
        let src = "accounts:\n    - id: IRa\n      tokens:\n          - sid: SG1\n            name: one\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", None, &fields(&[("sid", "SG2"), ("name", "two")])));
        ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
        assert_eq!(
            d.text(),
            "accounts:\n    - id: IRa\n      tokens:\n          - sid: SG1\n            name: one\n          - sid: SG2\n            name: two\n    - id: IRb\n      tokens:\n          - sid: SG3\n"
        );

        let src = "accounts:\n    -   id: IRa\n        tokens:\n            -   sid: SG1\n                name: one\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", None, &fields(&[("sid", "SG2"), ("name", "two")])));
        ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
        ok(d.set_token_field("SG3", "name", "three"));
        assert_eq!(
            d.text(),
            "accounts:\n    -   id: IRa\n        tokens:\n            -   sid: SG1\n                name: one\n            -   sid: SG2\n                name: two\n    -   id: IRb\n        tokens:\n            -   sid: SG3\n                name: three\n"
        );

        // A 4-space file whose only hint is a nested mapping.
        let mut d = doc("settings:\n    owner: ops\n");
        ok(d.add_tombstone("SGx"));
        assert_eq!(
            d.text(),
            "settings:\n    owner: ops\ndeleted_sids:\n    - SGx\n"
        );
    }

    #[test]
    fn unindented_sequences_are_detected() {
        let src = "accounts:\n- id: IRa\n  tokens:\n  - sid: SG1\n    name: one\n";
        let mut d = doc(src);
        ok(d.append_token("IRa", None, &fields(&[("sid", "SG2")])));
        ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
        ok(d.add_tombstone("SGdead"));
        assert_eq!(
            d.text(),
            "accounts:\n- id: IRa\n  tokens:\n  - sid: SG1\n    name: one\n  - sid: SG2\n- id: IRb\n  tokens:\n  - sid: SG3\ndeleted_sids:\n- SGdead\n"
        );
    }

    #[test]
    fn remove_token_variants() {
        let mut d = doc(TOKENS);
        ok(d.append_token("IRacme", None, &fields(&[("sid", "SG2"), ("name", "two")])));
        ok(d.remove_token(SID));
        // Exactly the item's lines went; the comment above it stays.
        assert!(d.text().contains("    tokens:\n      # nightly export\n      - sid: SG2\n        name: two\ndeleted_sids:"));
        ok(d.remove_token("SG2"));
        assert!(d
            .text()
            .contains("    tokens: []\n      # nightly export\ndeleted_sids:"));
        let v = yaml(d.text());
        assert_eq!(v["accounts"][0]["tokens"], Value::Sequence(vec![]));
        assert!(matches!(d.remove_token("SG2"), Err(EditError::NotFound(_))));
    }

    #[test]
    fn tombstones() {
        let mut d = doc(TOKENS);
        ok(d.add_tombstone("SGnew"));
        assert!(d
            .text()
            .ends_with("deleted_sids: [SGdead..., SGnew]   # optional top-level tombstone list\n"));
        let before = d.text().to_string();
        ok(d.add_tombstone("SGnew"));
        ok(d.add_tombstone("SGdead..."));
        assert_eq!(d.text(), before);

        let mut d = doc("accounts: []\ndeleted_sids: []\n");
        ok(d.add_tombstone("a b"));
        assert_eq!(d.text(), "accounts: []\ndeleted_sids: [a b]\n");
        ok(d.add_tombstone("yes"));
        assert_eq!(d.text(), "accounts: []\ndeleted_sids: [a b, \"yes\"]\n");

        let mut d = doc("accounts: []\ndeleted_sids:\n  - SG1   # old\n# trailing\n");
        ok(d.add_tombstone("SG2"));
        assert_eq!(
            d.text(),
            "accounts: []\ndeleted_sids:\n  - SG1   # old\n  - SG2\n# trailing\n"
        );

        let mut d = doc("accounts: []\ndeleted_sids:\nz: 1\n");
        ok(d.add_tombstone("SG2"));
        assert_eq!(d.text(), "accounts: []\ndeleted_sids:\n  - SG2\nz: 1\n");

        let mut d = doc("accounts: []   # none\n# end\n");
        ok(d.add_tombstone("SG2"));
        assert_eq!(
            d.text(),
            "accounts: []   # none\ndeleted_sids:\n  - SG2\n# end\n"
        );
        let v = yaml(d.text());
        assert_eq!(v["deleted_sids"][0], Value::from("SG2"));
    }

    #[test]
    fn all_comments_survive_every_operation() {
        let mut d = doc(TOKENS);
        let original = comments(TOKENS);
        ok(d.append_token(
            "IRacme",
            None,
            &fields(&[("sid", "SGcc"), ("name", "two"), ("kind", "legacy")]),
        ));
        ok(d.append_token("IRother", Some("Other"), &fields(&[("sid", "SGdd")])));
        ok(d.set_token_field(SID, "status", "disabled"));
        ok(d.set_token_field(SID, "kind", "legacy"));
        ok(d.set_token_field(SID, "scopes", "[{api: reports, methods: [GET]}]"));
        ok(d.set_token_field(SID, "expires_at", "never"));
        ok(d.set_token_field("SGcc", "rate_limit", "{requests_per_second: 1, burst: 1}"));
        ok(d.remove_token_field(SID, "description"));
        ok(d.remove_token_field(SID, "developer_emails"));
        ok(d.remove_token_field("SGcc", "kind"));
        ok(d.add_tombstone("SGold"));
        assert_subsequence(&original, &comments(d.text()));

        let expected = yaml(
            r#"
accounts:
  - id: IRacme
    name: Acme Corp
    tokens:
      - sid: SG5f2a0000000000000000000000000000
        name: reporting-sync
        primary_contact: data-eng@acme.example
        api_version: v15
        status: disabled
        kind: legacy
        auth_token_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        created_at: 2026-08-01T00:00:00Z
        rotated_at: 2026-08-01T00:00:00Z
        scopes: [{api: reports, methods: [GET]}]
        rate_limit: {requests_per_second: 20, burst: 40}
        expires_at: never
      - sid: SGcc
        name: two
        rate_limit: {requests_per_second: 1, burst: 1}
  - id: IRother
    name: Other
    tokens:
      - sid: SGdd
deleted_sids: [SGdead..., SGold]
"#,
        );
        assert_eq!(yaml(d.text()), expected);
    }

    #[test]
    fn flow_style_tokens_are_refused_not_corrupted() {
        let src =
            "accounts:\n  - id: A\n    tokens:\n      - {sid: S1, name: x}\n      - sid: S2\n";
        let mut d = doc(src);
        assert_eq!(d.find_token("S1"), Some((0, 0)));
        assert!(matches!(
            d.set_token_field("S1", "name", "y"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            d.remove_token_field("S1", "name"),
            Err(EditError::Unsupported(_))
        ));
        assert_eq!(d.text(), src);
        // Deleting the whole one-line item is still safe.
        ok(d.remove_token("S1"));
        assert_eq!(
            d.text(),
            "accounts:\n  - id: A\n    tokens:\n      - sid: S2\n"
        );

        let src = "accounts: [{id: A, tokens: [{sid: S1}]}]\n";
        let mut d = doc(src);
        assert_eq!(d.find_token("S1"), Some((0, 0)));
        assert!(matches!(
            d.append_token("A", None, &fields(&[("sid", "S2")])),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            d.remove_token("S1"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            d.set_token_field("S1", "x", "1"),
            Err(EditError::Unsupported(_))
        ));
        assert_eq!(d.text(), src);

        let mut d = doc("{accounts: []}\n");
        assert!(matches!(
            d.add_tombstone("S"),
            Err(EditError::Unsupported(_))
        ));
    }

    #[test]
    fn bad_values_are_refused_and_doc_unchanged() {
        let mut d = doc(TOKENS);
        for v in ["a: b", "[unclosed", "x\ny", "- a", "*nope", "} x"] {
            let r = d.set_token_field(SID, "name", v);
            assert!(
                matches!(r, Err(EditError::Unsupported(_))),
                "{v:?} -> {r:?}"
            );
            assert_eq!(d.text(), TOKENS);
        }
        assert!(matches!(
            d.set_token_field("SGmissing", "name", "x"),
            Err(EditError::NotFound(_))
        ));
        assert!(matches!(
            d.set_token_field(SID, "", "x"),
            Err(EditError::Unsupported(_))
        ));
        // Odd but valid keys are quoted.
        ok(d.set_token_field(SID, "x: y", "1"));
        assert!(d.text().contains("\n        \"x: y\": 1\n"));
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let src = TOKENS.replace('\n', "\r\n");
        let mut d = doc(&src);
        ok(d.set_token_field(SID, "status", "disabled"));
        ok(d.append_token("IRacme", None, &fields(&[("sid", "SGz"), ("name", "z")])));
        ok(d.add_tombstone("SGq"));
        ok(d.remove_token_field(SID, "description"));
        assert!(!d.text().replace("\r\n", "").contains('\n'));
        assert!(d
            .text()
            .contains("\r\n      - sid: SGz\r\n        name: z\r\n"));
    }

    #[test]
    fn anchors_and_block_scalars_in_tokens() {
        let src = "defaults: &rl {requests_per_second: 5, burst: 10}\naccounts:\n  - id: A\n    tokens:\n      - sid: S1\n        rate_limit: *rl\n        description: >-\n          folded\n          text\n      # next token\n      - sid: S2\n";
        let mut d = doc(src);
        ok(d.set_token_field("S1", "rate_limit", "{requests_per_second: 1, burst: 2}"));
        ok(d.remove_token_field("S1", "description"));
        assert_eq!(
            d.text(),
            "defaults: &rl {requests_per_second: 5, burst: 10}\naccounts:\n  - id: A\n    tokens:\n      - sid: S1\n        rate_limit: {requests_per_second: 1, burst: 2}\n      # next token\n      - sid: S2\n"
        );
    }

    const EXOTIC: &str = r#"%YAML 1.2
---
# header
accounts:   # list


  - id: "IRacme"   # quoted id
    name: 'Acme'
    tokens:

      - sid: SGaaaa
        description: >
          folded text
          # still text

        # comment between
        scopes:
          - api: campaigns   # c
            methods:
              - GET
              - POST
        rate_limit: &rl
          requests_per_second: 20
          burst: 40
      -   sid: SGbbbb
          name: "multi
            line"
          rate_limit: *rl
          note: plain
            continued  # trailing

  # comment at account level
  - id: IRbeta
    tokens:
    - sid: SGcc
      x: [1,
        2]   # after
      y: !!str 5
      z: |+
        keep

    # dedented comment
deleted_sids:
- SGold
...
"#;

    #[test]
    fn exotic_layouts_edit_cleanly() {
        let mut d = doc(EXOTIC);
        ok(d.set_token_field("SGbbbb", "note", "short"));
        ok(d.set_token_field("SGbbbb", "name", "n"));
        ok(d.set_token_field("SGaaaa", "description", "\"d\""));
        ok(d.set_token_field("SGaaaa", "scopes", "[]"));
        ok(d.set_token_field("SGcc", "x", "[3]"));
        ok(d.set_token_field("SGcc", "after_keep", "1"));
        ok(d.append_token("IRgamma", None, &fields(&[("sid", "SGg")])));
        ok(d.add_tombstone("SGt"));
        let want = r#"%YAML 1.2
---
# header
accounts:   # list


  - id: "IRacme"   # quoted id
    name: 'Acme'
    tokens:

      - sid: SGaaaa
        description: "d"

        # comment between
        scopes: []
        rate_limit: &rl
          requests_per_second: 20
          burst: 40
      -   sid: SGbbbb
          name: n
          rate_limit: *rl
          note: short  # trailing

  # comment at account level
  - id: IRbeta
    tokens:
    - sid: SGcc
      x: [3]   # after
      y: !!str 5
      z: |+
        keep

      after_keep: 1
  - id: IRgamma
    tokens:
      - sid: SGg
    # dedented comment
deleted_sids:
- SGold
- SGt
...
"#;
        assert_eq!(d.text(), want);
        assert_eq!(
            d.value()["accounts"][1]["tokens"][0]["z"],
            Value::from("keep\n\n")
        );

        // Edits that would orphan the `*rl` alias are refused, leaving the file alone.
        let before = d.text().to_string();
        assert!(matches!(
            d.remove_token_field("SGaaaa", "rate_limit"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            d.set_token_field("SGaaaa", "rate_limit", "{burst: 1}"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            d.remove_token("SGaaaa"),
            Err(EditError::Unsupported(_))
        ));
        assert_eq!(d.text(), before);
        // The alias user can be edited freely.
        ok(d.set_token_field("SGbbbb", "rate_limit", "{burst: 1}"));
        ok(d.remove_token("SGbbbb"));
        assert_eq!(d.find_token("SGbbbb"), None);
    }

    #[test]
    fn file_round_trip_through_disk() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let path = dir.path().join("tokens.yaml");
        let write = |p: &std::path::Path, s: &str| {
            if let Err(e) = std::fs::write(p, s) {
                panic!("write: {e}");
            }
        };
        let read = |p: &std::path::Path| match std::fs::read_to_string(p) {
            Ok(s) => s,
            Err(e) => panic!("read: {e}"),
        };
        write(&path, TOKENS);
        let mut d = doc(&read(&path));
        ok(d.set_token_field(SID, "rotated_at", "2026-09-01T00:00:00Z"));
        write(&path, d.text());
        let again = doc(&read(&path));
        assert_eq!(
            again.value()["accounts"][0]["tokens"][0]["rotated_at"],
            Value::from("2026-09-01T00:00:00Z")
        );
        assert_eq!(comments(&read(&path)), comments(TOKENS));
    }

    #[test]
    fn quote_scalar_examples() {
        let plain = [
            "campaigns",
            "GET",
            "Acme Corp",
            "data-eng@acme.example",
            "/v15/x",
            "SGdead...",
            "Ünïcödé",
            "a-b_c.d",
        ];
        for s in plain {
            assert_eq!(quote_scalar(s), s);
        }
        let quoted = [
            ("", "\"\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("123", "\"123\""),
            ("-", "\"-\""),
            (": x", "\": x\""),
            ("#x", "\"#x\""),
            (" pad ", "\" pad \""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("tab\there\n", "\"tab\\there\\n\""),
            (
                "\u{1}\u{7f}\u{85}\u{2028}\u{feff}",
                "\"\\x01\\x7F\\N\\L\\uFEFF\"",
            ),
            ("sha256:ab", "\"sha256:ab\""),
            ("a, b", "\"a, b\""),
            (".inf", "\".inf\""),
        ];
        for (s, q) in quoted {
            assert_eq!(quote_scalar(s), q, "{s:?}");
        }
        assert_eq!(
            flow_seq(&["GET".to_string(), "no".to_string()]),
            "[GET, \"no\"]"
        );
        assert_eq!(flow_seq::<&str>(&[]), "[]");
        assert_eq!(
            flow_map(&[
                ("api", quote_scalar("campaigns")),
                ("methods", flow_seq(&["GET"]))
            ]),
            "{api: campaigns, methods: [GET]}"
        );
    }

    fn tricky_string() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "~",
            "null",
            "Null",
            "true",
            "FALSE",
            "123",
            "0x1F",
            "0o17",
            "1e3",
            "-1.5",
            ".5",
            ".inf",
            "-.Inf",
            ".NaN",
            "nan",
            "inf",
            "1_000",
            "2026-08-01",
            "2026-08-01T00:00:00Z",
            "12:30:00",
            "-",
            "--",
            "---",
            "...",
            "?",
            ":",
            ": x",
            "x:",
            "#",
            "#x",
            " #x",
            "a #b",
            "&a",
            "*a",
            "!t",
            "!!str",
            "%YAML",
            "@",
            "`",
            "|",
            ">",
            "'",
            "\"",
            "[",
            "]",
            "{",
            "}",
            ",",
            "<<",
            "=",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\\",
            "\u{85}",
            "\u{2028}",
            "\u{2029}",
            "\u{feff}",
            "\u{a0}",
            "\u{0}",
            "\u{1b}",
            "\u{7f}",
            "\u{9f}",
            "é",
            "日本",
            "🙂",
            "a",
            "Z",
            "_",
            "/",
            ".",
            "+",
            "0",
        ]);
        prop::collection::vec(atoms, 0..6).prop_map(|v| v.concat())
    }

    fn check_round_trip(s: &str) -> Result<(), TestCaseError> {
        let q = quote_scalar(s);
        prop_assert!(!q.contains(['\n', '\r']), "not one line: {q:?}");
        let want = Value::String(s.to_string());
        let alone: Result<Value, _> = serde_yaml::from_str(&q);
        prop_assert_eq!(alone.ok(), Some(want.clone()), "alone: {:?}", q);
        let in_map: Result<Value, _> = serde_yaml::from_str(&format!("k: {q}   # c\n"));
        prop_assert_eq!(
            in_map.ok().map(|v| v["k"].clone()),
            Some(want.clone()),
            "in map: {:?}",
            q
        );
        let in_flow: Result<Value, _> = serde_yaml::from_str(&format!("k: [{q}, {q}]\n"));
        prop_assert_eq!(
            in_flow.ok().map(|v| v["k"][1].clone()),
            Some(want.clone()),
            "in flow: {:?}",
            q
        );
        let in_fmap: Result<Value, _> = serde_yaml::from_str(&format!("k: {{{q}: {q}}}\n"));
        prop_assert_eq!(
            in_fmap
                .ok()
                .and_then(|v| v["k"].as_mapping().and_then(|m| m.get(&want).cloned())),
            Some(want),
            "in flow map: {:?}",
            q
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2500))]

        #[test]
        fn quote_scalar_round_trips_arbitrary(s in any::<String>()) {
            check_round_trip(&s)?;
        }

        #[test]
        fn quote_scalar_round_trips_tricky(s in tricky_string()) {
            check_round_trip(&s)?;
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, usize, String),
        Remove(usize, usize),
        Append(usize, usize, Vec<(usize, String)>),
        RemoveToken(usize),
        Tombstone(usize),
    }

    const SIDS: [&str; 5] = [SID, "SGaaaa", "SGbbbb", "yes", "SG cc"];
    const KEYS: [&str; 8] = [
        "sid",
        "name",
        "status",
        "scopes",
        "rate_limit",
        "description",
        "new_field",
        "kind",
    ];
    const ACCOUNTS: [&str; 3] = ["IRacme", "IRbeta", "123"];

    fn value_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            tricky_string().prop_map(|s| quote_scalar(&s)),
            prop::collection::vec(tricky_string(), 0..3).prop_map(|v| flow_seq(&v)),
            (
                tricky_string(),
                prop::collection::vec(tricky_string(), 0..3)
            )
                .prop_map(|(a, m)| flow_seq_rendered(&[flow_map(&[
                    ("api", quote_scalar(&a)),
                    ("methods", flow_seq(&m))
                ])])),
            any::<i32>().prop_map(|n| n.to_string()),
            // Arbitrary junk: must be refused or applied, never corrupt.
            "[ -~]{0,12}",
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..SIDS.len(), 0..KEYS.len(), value_strategy()).prop_map(|(s, k, v)| Op::Set(s, k, v)),
            (0..SIDS.len(), 0..KEYS.len()).prop_map(|(s, k)| Op::Remove(s, k)),
            (
                0..ACCOUNTS.len(),
                0..SIDS.len(),
                prop::collection::vec((1..KEYS.len(), value_strategy()), 0..3)
            )
                .prop_map(|(a, s, f)| Op::Append(a, s, f)),
            (0..SIDS.len()).prop_map(Op::RemoveToken),
            (0..SIDS.len()).prop_map(Op::Tombstone),
        ]
    }

    fn start_docs() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            TOKENS.to_string(),
            String::new(),
            "# only a comment\n".to_string(),
            "accounts:\n- id: IRbeta\n  tokens:\n  - sid: SGaaaa   # a\n    name: |\n      multi\n      # line\n    scopes:\n    - api: x\n".to_string(),
            "accounts:\n    - id: IRacme\n      tokens: []\ndeleted_sids:\n    - SGold\n".to_string(),
            TOKENS.replace('\n', "\r\n"),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_edits_never_break_the_file(start in start_docs(), ops in prop::collection::vec(op_strategy(), 1..8)) {
            let mut d = doc(&start);
            let original_comments = comments(&start);
            for op in ops {
                let before = d.text().to_string();
                let result = match &op {
                    Op::Set(s, k, v) => d.set_token_field(SIDS[*s], KEYS[*k], v),
                    Op::Remove(s, k) => d.remove_token_field(SIDS[*s], KEYS[*k]),
                    Op::Append(a, s, f) => {
                        let mut fs: Vec<(&str, String)> = vec![("sid", quote_scalar(SIDS[*s]))];
                        for (k, v) in f {
                            if fs.iter().all(|(kk, _)| kk != &KEYS[*k]) {
                                fs.push((KEYS[*k], v.clone()));
                            }
                        }
                        d.append_token(ACCOUNTS[*a], Some("Some Name"), &fs)
                    }
                    Op::RemoveToken(s) => d.remove_token(SIDS[*s]),
                    Op::Tombstone(s) => d.add_tombstone(SIDS[*s]),
                };
                // Whatever happened, the text is a valid tokens file.
                let reparsed: Result<Value, _> = serde_yaml::from_str(d.text());
                prop_assert!(reparsed.is_ok(), "broken after {:?}:\n{}", op, d.text());
                prop_assert!(TokensDoc::parse(d.text()).is_ok());
                match result {
                    Err(_) => prop_assert_eq!(d.text(), before.as_str()),
                    Ok(()) => {
                        let v = d.value().clone();
                        match &op {
                            Op::Set(s, k, val) => {
                                let loc = d.find_token(SIDS[*s]);
                                prop_assert!(loc.is_some() || KEYS[*k] == "sid");
                                if let Some((a, t)) = loc {
                                    let want: Value = serde_yaml::from_str(val.trim()).unwrap_or(Value::Null);
                                    prop_assert_eq!(&v["accounts"][a]["tokens"][t][KEYS[*k]], &want);
                                }
                            }
                            Op::Remove(s, k) => {
                                if let Some((a, t)) = d.find_token(SIDS[*s]) {
                                    prop_assert!(v["accounts"][a]["tokens"][t].get(KEYS[*k]).is_none());
                                }
                            }
                            Op::Append(_, s, _) => prop_assert!(d.find_token(SIDS[*s]).is_some()),
                            Op::RemoveToken(s) => prop_assert!(d.find_token(SIDS[*s]).is_none()),
                            Op::Tombstone(s) => {
                                let listed = v["deleted_sids"]
                                    .as_sequence()
                                    .is_some_and(|l| l.contains(&Value::from(SIDS[*s])));
                                prop_assert!(listed);
                            }
                        }
                    }
                }
            }
            // Edits only touch what they are about; comment-free ops keep the rest. At least
            // the file-level comment of the example must always survive.
            if let Some(first) = original_comments.first() {
                if first.starts_with("# Tokens") || first.starts_with("# only") {
                    prop_assert!(d.text().contains(first.as_str()));
                }
            }
        }
    }

    /// Tiny deterministic generator so a proptest seed maps to one token file.
    struct Gen(u64);

    impl Gen {
        fn n(&mut self, k: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % k as u64) as usize
        }
    }

    /// A random but valid tokens file in one of many hand-written styles.
    fn gen_doc(seed: u64) -> String {
        let mut g = Gen(seed | 1);
        let off = [0, 2, 4][g.n(3)];
        let gap = [2, 2, 3, 4][g.n(4)];
        let ind = [2, 4][g.n(2)];
        let sp = spaces;
        let mut out = String::new();
        if g.n(2) == 0 {
            out.push_str("# header comment\n\n");
        }
        out.push_str(if g.n(2) == 0 {
            "accounts:\n"
        } else {
            "accounts:   # all accounts\n"
        });
        for a in 0..1 + g.n(2) {
            let dash = off;
            let key = dash + gap;
            if g.n(3) == 0 {
                out.push_str(&format!("{}# account {a}\n", sp(dash)));
            }
            out.push_str(&format!("{}-{}id: IR{a}\n", sp(dash), sp(gap - 1)));
            if g.n(2) == 0 {
                out.push_str(&format!("{}name: Account {a}   # display name\n", sp(key)));
            }
            let ntok = g.n(3);
            if ntok == 0 {
                out.push_str(&format!("{}tokens: []\n", sp(key)));
                continue;
            }
            out.push_str(&format!(
                "{}tokens:{}\n",
                sp(key),
                if g.n(2) == 0 { "" } else { "  # list" }
            ));
            for t in 0..ntok {
                let tdash = key + off;
                let tkey = tdash + gap;
                if g.n(3) == 0 {
                    out.push_str(&format!("{}# token {a}{t}\n", sp(tdash)));
                }
                out.push_str(&format!("{}-{}sid: SG{a}{t}\n", sp(tdash), sp(gap - 1)));
                for f in 0..g.n(6) {
                    let k = sp(tkey);
                    let deeper = sp(tkey + 2);
                    let line = match g.n(14) {
                        0 => format!("{k}f{f}: plain value\n"),
                        1 => format!("{k}f{f}: \"quoted\"   # c{f}\n"),
                        2 => format!("{k}f{f}: [a,\n{deeper}b]\n"),
                        3 => format!("{k}f{f}: |\n{deeper}line\n{deeper}# text\n"),
                        4 => format!("{k}f{f}: >-   # folded\n{deeper}one\n\n{deeper}two\n"),
                        5 => format!(
                            "{k}f{f}:\n{o}- {{api: x}}\n{o}- {{api: y}}   # y\n",
                            o = sp(tkey + off)
                        ),
                        6 => format!("{k}f{f}:\n{m}a: 1\n{m}b:\n{m}  - 2\n", m = sp(tkey + ind)),
                        7 => format!("{k}f{f}:\n"),
                        8 => format!("{k}f{f}: plain\n{deeper}continued   # tail\n"),
                        9 => format!("{k}f{f}: 'single ''q'''\n"),
                        10 => format!("{k}# comment in token\n"),
                        11 => "\n".to_string(),
                        12 => format!("{k}f{f}: {{a: 1,\n{deeper}b: 2}}\n"),
                        _ => format!("{k}f{f}: \"multi\n{deeper}line\"\n"),
                    };
                    out.push_str(&line);
                }
            }
        }
        match g.n(4) {
            0 => out.push_str("deleted_sids: [SGold]   # tombstones\n"),
            1 => out.push_str(&format!("deleted_sids:\n{}- SGold\n", sp(off))),
            2 => out.push_str("deleted_sids:\n"),
            _ => {}
        }
        if g.n(3) == 0 {
            out.push_str("# trailing comment\n");
        }
        if g.n(4) == 0 {
            out = out.replace('\n', "\r\n");
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        #[test]
        fn generated_layouts_are_never_refused_or_broken(
            seed in any::<u64>(),
            ops in prop::collection::vec((0..5usize, 0..4usize, 0..8usize, 0..8usize), 1..10),
        ) {
            let src = gen_doc(seed);
            let mut d = doc(&src);
            let sids = ["SG00", "SG01", "SG10", "SGnew"];
            let keys = ["f0", "f1", "f2", "f3", "f4", "name", "new", "sid"];
            let vals = ["x", "\"q\"", "[a, b]", "{a: 1}", "", "[{api: c, methods: [GET]}]", "'s'", "123"];
            for (op, s, k, v) in ops {
                let (sid, key, val) = (sids[s], keys[k], vals[v]);
                let before = d.text().to_string();
                let r = match op {
                    0 => d.set_token_field(sid, key, val),
                    1 => d.remove_token_field(sid, key),
                    2 => d.append_token(["IR0", "IR1", "IR9"][k % 3], Some("N"), &[("sid", quote_scalar(sid)), ("f0", val.to_string())]),
                    3 => d.remove_token(sid),
                    _ => d.add_tombstone(sid),
                };
                let reparsed: Result<Value, _> = serde_yaml::from_str(d.text());
                prop_assert!(reparsed.is_ok(), "broken:\n{}", d.text());
                if let Err(e) = r {
                    prop_assert_eq!(d.text(), before.as_str());
                    let msg = e.to_string();
                    prop_assert!(
                        !msg.contains("refusing") && !msg.contains("internal"),
                        "op {} {} {} {:?} refused: {}\n{}", op, sid, key, val, msg, before
                    );
                }
            }
        }
    }
}
