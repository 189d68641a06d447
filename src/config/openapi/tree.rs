//! A document's text to a `serde_yaml::Value` tree, built so that content the importer never
//! reads (schemas, examples, descriptions) cannot make the whole document unreadable.
//!
//! Why not `serde_yaml::from_str::<Value>`: it refuses a whole document for an integer outside
//! i64/u64 (JavaScript generators write int64 bounds as `-9223372036854776000`), for a
//! duplicate mapping key, and for nesting deeper than 128, wherever they are; and it reads a
//! tag written `1.10` as the float `1.1`. Here YAML comes from yaml-rust2's event stream and
//! JSON from serde_json through a visitor of our own, with these rules:
//! - a plain YAML scalar stays text (`1.10`, `2024`, `0x1F`, `-9223372036854776000`) unless it
//!   is null or a boolean: everything the importer reads (paths, tags, names, URLs) is text,
//!   and text keeps what the author wrote;
//! - a duplicate key keeps its last value and is recorded (the importer notes the ones it
//!   reads);
//! - collections deeper than [`MAX_DEPTH`] become null (the importer reads a dozen levels);
//! - `<<` merge keys are applied, and a malformed one stays an ordinary key;
//! - aliases may add at most [`MAX_ALIAS_NODES`] nodes, or as many as the document has
//!   (an alias bomb is refused).

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// Collections nested deeper than this become null. Below serde_json's own limit (128), so
/// JSON deeper than this is skipped by serde_json's non-recursive skipper, never refused.
pub const MAX_DEPTH: usize = 64;

/// Nodes that aliases may add beyond the document's own (more when the document is larger).
const MAX_ALIAS_NODES: usize = 1_000_000;

/// A document read into a tree.
#[derive(Debug)]
pub struct Tree {
    pub root: Value,
    /// Where a mapping key was written twice: the key's path from the root (the last value
    /// was kept).
    pub duplicates: Vec<Vec<String>>,
}

/// Reads YAML or JSON text. Text that starts with `{` is read as JSON first (JSON's error is
/// the one shown); YAML written in flow style, or JSON that serde_json refuses (a number
/// beyond f64), is then read as YAML.
pub fn read(text: &str) -> Result<Tree, String> {
    if text.trim_start().starts_with('{') {
        return match read_json(text) {
            Ok(tree) => Ok(tree),
            Err(json_error) => read_yaml(text).map_err(|_| format!("not valid JSON: {json_error}")),
        };
    }
    read_yaml(text).map_err(|e| format!("not valid YAML: {e}"))
}

/// JSON text to a tree.
fn read_json(text: &str) -> Result<Tree, serde_json::Error> {
    let mut state = JsonState::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let root = JsonSeed { state: &mut state }.deserialize(&mut de)?;
    de.end()?;
    Ok(Tree {
        root,
        duplicates: state.duplicates,
    })
}

#[derive(Default)]
struct JsonState {
    /// Keys and indexes from the root to the value being read.
    path: Vec<String>,
    duplicates: Vec<Vec<String>>,
}

struct JsonSeed<'a> {
    state: &'a mut JsonState,
}

impl<'de> DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        if self.state.path.len() >= MAX_DEPTH {
            de.deserialize_ignored_any(IgnoredAny)?;
            return Ok(Value::Null);
        }
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        self.deserialize(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.state.path.push(items.len().to_string());
            let item = seq.next_element_seed(JsonSeed { state: self.state });
            self.state.path.pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(Value::Sequence(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::new();
        while let Some(key) = map.next_key::<String>()? {
            self.state.path.push(key.clone());
            let value = map.next_value_seed(JsonSeed { state: self.state });
            let path = self.state.path.clone();
            self.state.path.pop();
            if out.insert(Value::String(key), value?).is_some() {
                self.state.duplicates.push(path);
            }
        }
        Ok(Value::Mapping(out))
    }
}

/// YAML text (its first document) to a tree.
fn read_yaml(text: &str) -> Result<Tree, String> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = YamlBuilder::default();
    let mut documents = 0;
    loop {
        let (event, _) = parser.next_token().map_err(|e| e.to_string())?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err("the file holds more than one YAML document".into());
                }
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(text, style, anchor, tag.as_ref())
            }
            Event::Alias(id) => builder.alias(id)?,
            Event::SequenceStart(anchor, _) => builder.open(anchor, false),
            Event::MappingStart(anchor, _) => builder.open(anchor, true),
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
        }
    }
    Ok(Tree {
        root: builder.root.unwrap_or(Value::Null),
        duplicates: builder.duplicates,
    })
}

/// A collection being read.
struct Open {
    items: Items,
    /// Its anchor id (0: none).
    anchor: usize,
    /// [`YamlBuilder::nodes`] when it opened: its size when it closes, for aliases.
    nodes_before: usize,
    /// The key or index under which its parent holds it.
    step: String,
}

enum Items {
    Sequence(Vec<Value>),
    /// The mapping and the key waiting for its value.
    Mapping(Mapping, Option<Value>),
}

#[derive(Default)]
struct YamlBuilder {
    open: Vec<Open>,
    /// Collections opened below [`MAX_DEPTH`] and not closed yet: their content is skipped.
    skipping: usize,
    /// Anchored values and their node counts.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes built, aliases' copies included.
    nodes: usize,
    /// Nodes built by aliases.
    alias_nodes: usize,
    root: Option<Value>,
    duplicates: Vec<Vec<String>>,
}

impl YamlBuilder {
    fn scalar(&mut self, text: String, style: TScalarStyle, anchor: usize, tag: Option<&Tag>) {
        if self.skipping > 0 {
            return;
        }
        self.nodes += 1;
        let value = resolve_scalar(text, style, tag);
        self.finish(value, anchor, 1);
    }

    fn alias(&mut self, id: usize) -> Result<(), String> {
        if self.skipping > 0 {
            return Ok(());
        }
        // An anchor inside a skipped (too deep) part, or one still open, reads as null.
        let (value, size) = self.anchors.get(&id).cloned().unwrap_or((Value::Null, 1));
        self.alias_nodes += size;
        self.nodes += size;
        if self.alias_nodes > MAX_ALIAS_NODES.max(self.nodes - self.alias_nodes) {
            return Err(format!(
                "aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)"
            ));
        }
        self.finish(value, 0, size);
        Ok(())
    }

    fn open(&mut self, anchor: usize, mapping: bool) {
        if self.skipping > 0 || self.open.len() >= MAX_DEPTH {
            self.skipping += 1;
            return;
        }
        self.nodes += 1;
        let step = match self.open.last() {
            Some(Open {
                items: Items::Sequence(items),
                ..
            }) => items.len().to_string(),
            Some(Open {
                items: Items::Mapping(_, Some(key)),
                ..
            }) => key_text(key),
            _ => String::new(),
        };
        self.open.push(Open {
            items: if mapping {
                Items::Mapping(Mapping::new(), None)
            } else {
                Items::Sequence(Vec::new())
            },
            anchor,
            nodes_before: self.nodes - 1,
            step,
        });
    }

    fn close(&mut self) {
        if self.skipping > 0 {
            self.skipping -= 1;
            if self.skipping == 0 {
                // The skipped collection itself: null in its parent.
                self.nodes += 1;
                self.finish(Value::Null, 0, 1);
            }
            return;
        }
        let Some(open) = self.open.pop() else {
            return;
        };
        let value = match open.items {
            Items::Sequence(items) => Value::Sequence(items),
            Items::Mapping(map, _) => Value::Mapping(merge(map)),
        };
        let size = self.nodes - open.nodes_before;
        self.finish(value, open.anchor, size);
    }

    /// A complete value: remembered under its anchor, then placed in its parent.
    fn finish(&mut self, value: Value, anchor: usize, size: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        let duplicate = match self.open.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
                None
            }
            Some(Open {
                items: Items::Sequence(items),
                ..
            }) => {
                items.push(value);
                None
            }
            Some(Open {
                items: Items::Mapping(map, pending),
                ..
            }) => match pending.take() {
                None => {
                    *pending = Some(value);
                    None
                }
                Some(key) => {
                    let duplicate = map.contains_key(&key).then(|| key_text(&key));
                    map.insert(key, value);
                    duplicate
                }
            },
        };
        if let Some(key) = duplicate {
            let mut path: Vec<String> = self.open.iter().skip(1).map(|o| o.step.clone()).collect();
            path.push(key);
            self.duplicates.push(path);
        }
    }
}

/// A plain scalar is null, a boolean, or text (numbers included: see the module doc); a quoted
/// or block scalar, or one tagged `!!str`, is text.
fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let tagged_str = tag.is_some_and(|t| t.suffix == "str");
    if style != TScalarStyle::Plain || tagged_str {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => Value::String(text),
    }
}

/// A key as one step of a path (for duplicate reports).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Applies a `<<` merge key: the keys of the merged mapping (or of each mapping of a list,
/// the first one winning) that the mapping does not set itself. A `<<` whose value is not a
/// mapping or a list of mappings stays an ordinary key.
fn merge(mut map: Mapping) -> Mapping {
    let merge_key = Value::String("<<".into());
    let sources = match map.get(&merge_key) {
        Some(Value::Mapping(m)) => vec![m.clone()],
        Some(Value::Sequence(list)) if list.iter().all(Value::is_mapping) => {
            list.iter().filter_map(Value::as_mapping).cloned().collect()
        }
        _ => return map,
    };
    map.remove(&merge_key);
    for source in sources {
        for (k, v) in source {
            if !map.contains_key(&k) {
                map.insert(k, v);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Tree {
        read(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn out_of_range_numbers_stay_text_in_yaml_and_json() {
        let tree = yaml("a: -9223372036854776000\nb: 18446744073709551616\nc: 1.10\nd: 0x1F\n");
        for (key, text) in [
            ("a", "-9223372036854776000"),
            ("b", "18446744073709551616"),
            ("c", "1.10"),
            ("d", "0x1F"),
        ] {
            assert_eq!(tree.root.get(key).and_then(Value::as_str), Some(text));
        }
        let tree = yaml("{\"a\": -9223372036854776000, \"b\": 18446744073709551616}");
        assert!(tree.root.get("a").is_some_and(Value::is_number));
        assert!(tree.root.get("b").is_some_and(Value::is_number));
        // 1e400 is beyond f64: serde_json refuses it, the YAML reader keeps it as text.
        let tree = yaml("{\"a\": \"x\", \"c\": 1e400}");
        assert_eq!(tree.root.get("c").and_then(Value::as_str), Some("1e400"));
    }

    #[test]
    fn null_and_booleans_and_quoted_text() {
        let tree = yaml("a: ~\nb:\nc: true\nd: 'true'\ne: !!str null\nf: yes\n");
        assert!(tree.root.get("a").is_some_and(Value::is_null));
        assert!(tree.root.get("b").is_some_and(Value::is_null));
        assert_eq!(tree.root.get("c"), Some(&Value::Bool(true)));
        assert_eq!(tree.root.get("d").and_then(Value::as_str), Some("true"));
        assert_eq!(tree.root.get("e").and_then(Value::as_str), Some("null"));
        assert_eq!(tree.root.get("f").and_then(Value::as_str), Some("yes"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_are_recorded() {
        let tree = yaml("a:\n  - x: 1\n    x: 2\nb: 1\nb: 2\n");
        assert_eq!(tree.root.get("b").and_then(Value::as_str), Some("2"));
        assert_eq!(
            tree.duplicates,
            [
                vec!["a".to_owned(), "0".into(), "x".into()],
                vec!["b".into()]
            ]
        );
        let tree = yaml("{\"p\": {\"get\": 1, \"get\": 2}}");
        assert_eq!(tree.duplicates, [vec!["p".to_owned(), "get".into()]]);
        assert_eq!(
            tree.root.get("p").and_then(|p| p.get("get")),
            Some(&Value::from(2))
        );
    }

    #[test]
    fn deep_nesting_is_cut_not_refused() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for text in [
            format!("a: {deep}\nb: ok\n"),
            format!("{{\"a\": {deep}, \"b\": \"ok\"}}"),
        ] {
            let tree = yaml(&text);
            assert_eq!(tree.root.get("b").and_then(Value::as_str), Some("ok"));
            let mut node = tree.root.get("a");
            let mut depth = 1;
            while let Some(Value::Sequence(items)) = node {
                node = items.first();
                depth += 1;
            }
            assert_eq!(depth, MAX_DEPTH, "{text}");
            assert!(node.is_some_and(Value::is_null));
        }
    }

    #[test]
    fn anchors_merges_and_alias_bombs() {
        let tree = yaml("x: &c {tags: [a], k: 1}\ny: {<<: *c, k: 2}\nz: *c\nw: {<<: 5}\n");
        assert_eq!(
            tree.root
                .get("y")
                .and_then(|y| y.get("k"))
                .and_then(Value::as_str),
            Some("2")
        );
        assert!(tree.root.get("y").and_then(|y| y.get("tags")).is_some());
        assert_eq!(tree.root.get("z"), tree.root.get("x"));
        assert!(tree.root.get("w").and_then(|w| w.get("<<")).is_some());
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert!(read(&bomb).unwrap_err().contains("alias bomb"));
    }

    #[test]
    fn one_document_only() {
        assert!(read("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .contains("more than one YAML document"));
        assert!(read("").is_ok_and(|t| t.root.is_null()));
    }
}
