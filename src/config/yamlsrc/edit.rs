//! Comment-preserving edits of `tokens.yaml` (the CLI's `scopegate token ...` writes).
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

use super::spans::{Kind, SpanIndex, SyntaxError};
use locate::{
    account_value_mut, check_key, field_line, parse_one_line, render_item, spaces,
    structure_mismatch, token_value_mut,
};

pub use super::render::{flow_map, flow_seq, flow_seq_rendered, flow_value, quote_scalar};

mod locate;

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

    /// Line index of the current text (the unit tests check it).
    #[cfg(test)]
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
}

#[cfg(test)]
mod tests;
