//! A fast reader for the tokens file in the shape `scopegate token` writes it: a strict
//! subset of YAML read straight into the typed shapes of [`super::raw`].
//!
//! At 100,000 tokens a general YAML parser spends seconds on a file that only ever uses
//! block mappings and sequences, one-line flow collections and simple scalars. This
//! reader handles that subset and nothing else: anything outside it (tabs, anchors,
//! tags, escapes, multi-line scalars, a number it would have to guess about, ...) makes
//! it give up, and the caller hands the file to the full parser. It never reads a value
//! differently from the full parser; it only declines.
//!
//! What it reads:
//! - block mappings whose keys are plain `[A-Za-z0-9_]+`, block sequences (also at the
//!   same indentation as their key), comment and blank lines anywhere;
//! - one-line flow sequences and mappings (`[GET, POST]`, `{api: x, methods: [GET]}`);
//! - plain scalars, and quoted ones without escapes (`"..."` without `\`, `'...'`
//!   without `''`);
//! - numbers only as plain decimals (`0`, `12`, `-3`, `2.5`): no signs, exponents,
//!   leading zeros, underscores or other bases, where YAML schemas disagree.
//!
//! Serde's derived visitors do the rest (unknown and duplicate fields are their errors,
//! which also make this reader give up).

mod split;

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

pub use split::read_split;

/// Reads `src` as `T`, or `None` when the file is outside the subset (or not a valid `T`):
/// the caller then parses it with the full YAML parser, which also reports the errors.
pub fn read<T: DeserializeOwned>(src: &str) -> Option<T> {
    if !plain_text(src) {
        return None;
    }
    let mut reader = Reader::new(src);
    let root = reader.peek()?;
    if root.indent != 0 {
        return None;
    }
    let value = T::deserialize(BlockDe {
        reader: &mut reader,
        value: Value::Map {
            indent: 0,
            first: None,
        },
    })
    .ok()?;
    // Anything left over (a second document, a stray line) is for the full parser.
    reader.peek().is_none().then_some(value)
}

/// True when every character is one this reader may pass on as it is: printable, no
/// tab, no carriage return, no byte-order mark, no character that YAML 1.1 takes as a
/// line break.
fn plain_text(src: &str) -> bool {
    // Without short-circuits inside a chunk, so that the check vectorizes (52 MB at
    // 100,000 tokens).
    let control = |b: u8| ((b < 0x20) & (b != b'\n')) | (b == 0x7f);
    if src
        .as_bytes()
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |found, &b| found | control(b)))
    {
        return false;
    }
    src.is_ascii()
        || !src.chars().any(|c| {
            matches!(
                c,
                '\u{80}'
                    ..='\u{a0}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
        })
}

/// Why the reader gave up; never shown (the full parser reports the real error).
#[derive(Debug)]
pub struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the tokens file's YAML subset")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveUp
    }
}

type Result<T> = std::result::Result<T, GiveUp>;

/// One line with content: its indentation and its text after the indentation.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// A cursor over the lines of the file.
struct Reader<'a> {
    src: &'a str,
    /// Start of the next line not yet consumed.
    pos: usize,
    /// End (after its newline) of the line [`Reader::peek`] returned last.
    peeked_end: usize,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str) -> Reader<'a> {
        Reader {
            src,
            pos: 0,
            peeked_end: 0,
        }
    }

    /// The next line with content, skipping blank and comment-only lines; not consumed.
    fn peek(&mut self) -> Option<Line<'a>> {
        loop {
            let rest = self.src.get(self.pos..).filter(|r| !r.is_empty())?;
            let (line, end) = match rest.find('\n') {
                Some(i) => (&rest[..i], self.pos + i + 1),
                None => (rest, self.src.len()),
            };
            let text = line.trim_start_matches(' ');
            if text.is_empty() || text.starts_with('#') {
                self.pos = end;
                continue;
            }
            self.peeked_end = end;
            return Some(Line {
                indent: line.len() - text.len(),
                text,
            });
        }
    }

    /// Consumes the line [`Reader::peek`] returned last.
    fn advance(&mut self) {
        self.pos = self.peeked_end;
    }

    /// The value after `key:` (whose line is consumed), `rest` being what followed the
    /// colon on that line and `indent` the indentation of the mapping holding the key.
    fn value_after(&mut self, rest: &'a str, indent: usize) -> Result<Value<'a>> {
        let inline = rest.trim_start_matches(' ');
        if !inline.is_empty() && !inline.starts_with('#') {
            return Ok(Value::Inline(node(inline)?));
        }
        Ok(match self.peek() {
            Some(line) if is_item(line.text) && line.indent >= indent => Value::Seq {
                indent: line.indent,
            },
            Some(line) if line.indent > indent => Value::Map {
                indent: line.indent,
                first: None,
            },
            // Nothing nested: the empty (null) scalar.
            _ => Value::Inline(Node::Plain("")),
        })
    }
}

/// A block sequence item: `-` then a space or the end of the line.
fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Splits `key: rest` (or `key:` at the end of the line); `None` when the text does not
/// start with a plain key this reader accepts.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let len = text
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))?;
    let rest = text[len..].strip_prefix(':')?;
    (len > 0 && (rest.is_empty() || rest.starts_with(' '))).then(|| (&text[..len], rest))
}

/// A value in the file, as far as the reader has looked at it.
enum Value<'a> {
    /// A scalar or flow collection on the line of its key or dash.
    Inline(Node<'a>),
    /// A block mapping at `indent`; `first` holds its first entry when that entry sits on
    /// a sequence item's line (`- sid: ...`), still unconsumed.
    Map {
        indent: usize,
        first: Option<&'a str>,
    },
    /// A block sequence whose dashes sit at `indent`.
    Seq { indent: usize },
}

/// A scalar or a one-line flow collection.
enum Node<'a> {
    Plain(&'a str),
    Quoted(&'a str),
    Seq(Vec<Node<'a>>),
    Map(Vec<(&'a str, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// YAML's null: an empty or null-like plain scalar (quoted `"null"` is a string).
    fn is_null(&self) -> bool {
        matches!(self, Node::Plain("" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a non-null scalar.
    fn text(&self) -> Result<&'a str> {
        match self {
            _ if self.is_null() => Err(GiveUp),
            Node::Plain(s) | Node::Quoted(s) => Ok(s),
            _ => Err(GiveUp),
        }
    }

    /// The text of a plain scalar that matches `pattern` (numbers are never quoted here).
    fn number(&self, pattern: fn(&str) -> bool) -> Result<&'a str> {
        match self {
            Node::Plain(s) if pattern(s) => Ok(s),
            _ => Err(GiveUp),
        }
    }
}

/// `0` or digits without a leading zero.
fn unsigned(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

fn signed(s: &str) -> bool {
    unsigned(s.strip_prefix('-').unwrap_or(s))
}

/// A signed decimal with an optional fraction: `2`, `-2`, `2.5`.
fn decimal(s: &str) -> bool {
    match s.split_once('.') {
        Some((int, frac)) => {
            signed(int) && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => signed(s),
    }
}

/// Characters that may not start a plain scalar (YAML's indicators).
fn indicator(c: u8) -> bool {
    b"-?:,[]{}#&*!|>'\"%@`".contains(&c)
}

/// Parses the rest of a line after `key: ` or `- `: a scalar or a flow collection, then
/// at most a comment.
fn node(text: &str) -> Result<Node<'_>> {
    let mut rest = text;
    let node = match text.as_bytes()[0] {
        b'[' | b'{' | b'"' | b'\'' => {
            let node = flow_node(&mut rest)?;
            // After a quoted scalar or a collection: spaces, then nothing or a comment.
            let after = rest.trim_start_matches(' ');
            if !(after.is_empty() || (after.starts_with('#') && after.len() < rest.len())) {
                return Err(GiveUp);
            }
            node
        }
        c if indicator(c) => return Err(GiveUp),
        _ => {
            let plain = match text.find(" #") {
                Some(i) => &text[..i],
                None => text,
            }
            .trim_end_matches(' ');
            if plain.contains(": ") || plain.ends_with(':') {
                return Err(GiveUp);
            }
            Node::Plain(plain)
        }
    };
    Ok(node)
}

/// One flow element at the start of `rest` (leading spaces skipped), advancing `rest`
/// past it.
fn flow_node<'a>(rest: &mut &'a str) -> Result<Node<'a>> {
    *rest = rest.trim_start_matches(' ');
    let s = *rest;
    match s.as_bytes().first().copied().ok_or(GiveUp)? {
        b'"' | b'\'' => {
            let quote = s.as_bytes()[0] as char;
            let close = s[1..].find(quote).ok_or(GiveUp)? + 1;
            let inner = &s[1..close];
            *rest = &s[close + 1..];
            // Escapes (`\` in double quotes, `''` in single quotes) are the full parser's.
            if (quote == '"' && inner.contains('\\')) || rest.starts_with(quote) {
                return Err(GiveUp);
            }
            Ok(Node::Quoted(inner))
        }
        b'[' => {
            *rest = &s[1..];
            let mut items = Vec::new();
            if !flow_empty(rest, b']') {
                loop {
                    items.push(flow_node(rest)?);
                    if flow_end(rest, b']')? {
                        break;
                    }
                }
            }
            Ok(Node::Seq(items))
        }
        b'{' => {
            *rest = &s[1..];
            let mut entries = Vec::new();
            if !flow_empty(rest, b'}') {
                loop {
                    let (key, after) = split_key(rest.trim_start_matches(' ')).ok_or(GiveUp)?;
                    if after.is_empty() {
                        return Err(GiveUp);
                    }
                    *rest = after;
                    entries.push((key, flow_node(rest)?));
                    if flow_end(rest, b'}')? {
                        break;
                    }
                }
            }
            Ok(Node::Map(entries))
        }
        c if indicator(c) => Err(GiveUp),
        _ => {
            let len = s.find([',', ']', '}']).unwrap_or(s.len());
            let plain = s[..len].trim_end_matches(' ');
            // `:` and `#` inside a flow plain scalar are where the YAML versions differ.
            if plain.is_empty() || plain.contains([':', '#', '[', '{', '"', '\'']) {
                return Err(GiveUp);
            }
            *rest = &s[len..];
            Ok(Node::Plain(plain))
        }
    }
}

/// At the start of a flow collection: true (and consumed) when it closes at once.
fn flow_empty(rest: &mut &str, close: u8) -> bool {
    let s = rest.trim_start_matches(' ');
    let empty = s.as_bytes().first() == Some(&close);
    if empty {
        *rest = &s[1..];
    }
    empty
}

/// After a flow element: true at the closing `close` (consumed), false after a `,`
/// (consumed; another element must follow), anything else gives up.
fn flow_end(rest: &mut &str, close: u8) -> Result<bool> {
    let s = rest.trim_start_matches(' ');
    match s.as_bytes().first() {
        Some(&c) if c == close => {
            *rest = &s[1..];
            Ok(true)
        }
        Some(b',') => {
            let next = s[1..].trim_start_matches(' ');
            // A trailing comma (`[a, ]`) is left to the full parser.
            if next.starts_with([']', '}', ',']) || next.is_empty() {
                return Err(GiveUp);
            }
            *rest = &s[1..];
            Ok(false)
        }
        _ => Err(GiveUp),
    }
}

/// Deserializes a scalar or flow collection.
struct NodeDe<'a>(Node<'a>);

macro_rules! give_up {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
            Err(GiveUp)
        })*
    };
}

/// The shapes no tokens-file field has (booleans, bytes, units, tuples, newtypes): both
/// deserializers give up on them, so the full parser decides.
macro_rules! give_up_on_other_shapes {
    () => {
        give_up! {
            deserialize_bool deserialize_char deserialize_bytes deserialize_byte_buf
            deserialize_unit deserialize_ignored_any deserialize_i128 deserialize_u128
        }

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: V,
        ) -> Result<V::Value> {
            Err(GiveUp)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: V,
        ) -> Result<V::Value> {
            Err(GiveUp)
        }

        fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
            Err(GiveUp)
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: usize,
            _: V,
        ) -> Result<V::Value> {
            Err(GiveUp)
        }
    };
}

macro_rules! integer {
    ($($method:ident => $pattern:ident, $parse:ty, $visit:ident;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let text = self.0.number($pattern)?;
            visitor.$visit(text.parse::<$parse>().map_err(|_| GiveUp)?)
        })*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = GiveUp;

    /// Only collections: a scalar's type is never guessed.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            Node::Seq(items) => visitor.visit_seq(NodeSeq(items.into_iter())),
            Node::Map(entries) => visitor.visit_map(NodeMap {
                entries: entries.into_iter(),
                value: None,
            }),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.0.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    integer! {
        deserialize_u8 => unsigned, u64, visit_u64;
        deserialize_u16 => unsigned, u64, visit_u64;
        deserialize_u32 => unsigned, u64, visit_u64;
        deserialize_u64 => unsigned, u64, visit_u64;
        deserialize_i8 => signed, i64, visit_i64;
        deserialize_i16 => signed, i64, visit_i64;
        deserialize_i32 => signed, i64, visit_i64;
        deserialize_i64 => signed, i64, visit_i64;
        deserialize_f32 => decimal, f64, visit_f64;
        deserialize_f64 => decimal, f64, visit_f64;
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        // Unit variants written as plain words (`active`, `scoped`, `day`).
        match self.0 {
            Node::Plain(_) => visitor.visit_enum(BorrowedStrDeserializer::new(self.0.text()?)),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            Node::Seq(_) => self.deserialize_any(visitor),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            Node::Map(_) => self.deserialize_any(visitor),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    give_up_on_other_shapes!();
}

struct NodeSeq<'a>(std::vec::IntoIter<Node<'a>>);

impl<'de> SeqAccess<'de> for NodeSeq<'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        self.0
            .next()
            .map(|node| seed.deserialize(NodeDe(node)))
            .transpose()
    }
}

struct NodeMap<'a> {
    entries: std::vec::IntoIter<(&'a str, Node<'a>)>,
    value: Option<Node<'a>>,
}

impl<'de> MapAccess<'de> for NodeMap<'de> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(NodeDe(self.value.take().ok_or(GiveUp)?))
    }
}

/// Deserializes a value that may be a block collection, read line by line as serde asks
/// for it (no tree of the whole file is built).
struct BlockDe<'r, 'a> {
    reader: &'r mut Reader<'a>,
    value: Value<'a>,
}

/// Methods that only an inline value can answer.
macro_rules! inline_only {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.value {
                Value::Inline(node) => NodeDe(node).$method(visitor),
                _ => Err(GiveUp),
            }
        })*
    };
}

impl<'de> Deserializer<'de> for BlockDe<'_, 'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Inline(node) => NodeDe(node).deserialize_any(visitor),
            Value::Map { indent, first } => visitor.visit_map(BlockMap {
                reader: self.reader,
                indent,
                first,
                value: None,
            }),
            Value::Seq { indent } => visitor.visit_seq(BlockSeq {
                reader: self.reader,
                indent,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Inline(node) => NodeDe(node).deserialize_option(visitor),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Map { .. } => Err(GiveUp),
            Value::Inline(node) => NodeDe(node).deserialize_seq(visitor),
            Value::Seq { .. } => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Seq { .. } => Err(GiveUp),
            Value::Inline(node) => NodeDe(node).deserialize_map(visitor),
            Value::Map { .. } => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.value {
            Value::Inline(node) => NodeDe(node).deserialize_enum(name, variants, visitor),
            _ => Err(GiveUp),
        }
    }

    inline_only! {
        deserialize_str deserialize_string deserialize_identifier
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_f32 deserialize_f64
    }

    give_up_on_other_shapes!();
}

/// The entries of a block mapping: lines at exactly its indentation that start with a
/// key. A shallower line ends it; a deeper one is outside the subset.
struct BlockMap<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    first: Option<&'a str>,
    value: Option<Value<'a>>,
}

impl<'de> MapAccess<'de> for BlockMap<'_, 'de> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let text = match self.first.take() {
            Some(text) => text,
            None => match self.reader.peek() {
                Some(line) if line.indent == self.indent => line.text,
                Some(line) if line.indent > self.indent => return Err(GiveUp),
                _ => return Ok(None),
            },
        };
        let (key, rest) = split_key(text).ok_or(GiveUp)?;
        self.reader.advance();
        self.value = Some(self.reader.value_after(rest, self.indent)?);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let value = self.value.take().ok_or(GiveUp)?;
        seed.deserialize(BlockDe {
            reader: self.reader,
            value,
        })
    }
}

/// The items of a block sequence: lines at its indentation that start with `- `.
struct BlockSeq<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
}

impl<'de> SeqAccess<'de> for BlockSeq<'_, 'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let line = match self.reader.peek() {
            Some(line) if line.indent == self.indent && is_item(line.text) => line,
            Some(line) if line.indent > self.indent => return Err(GiveUp),
            // A shallower line, or the next key of a mapping at this indentation.
            _ => return Ok(None),
        };
        let rest = line.text[1..].trim_start_matches(' ');
        let value = if rest.is_empty() || rest.starts_with('#') {
            // An item whose content starts on the next line.
            return Err(GiveUp);
        } else if split_key(rest).is_some() {
            // `- key: ...`: a mapping whose first entry is on this line (consumed by it).
            Value::Map {
                indent: line.indent + line.text.len() - rest.len(),
                first: Some(rest),
            }
        } else {
            self.reader.advance();
            Value::Inline(node(rest)?)
        };
        seed.deserialize(BlockDe {
            reader: self.reader,
            value,
        })
        .map(Some)
    }
}

#[cfg(test)]
mod tests;
