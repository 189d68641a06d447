//! Keys of the name-keyed sections of `scopegate.yaml` (`apis`, `upstreams`) that YAML reads
//! as something other than text: `2:`, `1.10:`, `true:`, `no:` in YAML 1.1 readers, `~:`.
//!
//! Why a check of its own: serde stops at the first such key with "invalid type: integer
//! `2`, expected a string" and no line of its own, so an operator fixes one name per run.
//! Here every such key gets an error at its line, spelled as written (serde_yaml has the
//! float `1.1` for `1.10`), with the quoting that fixes it.

use std::path::Path;

use serde_yaml::Value;

use super::yamlsrc::spans::SpanIndex;
use super::ConfigError;

/// The sections whose keys are names.
const SECTIONS: [(&str, &str); 2] = [("apis", "API"), ("upstreams", "upstream")];

/// One error per key of a name-keyed section that is not read as text.
pub fn not_text(value: &Value, src: &str, file: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut index: Option<Option<SpanIndex>> = None;
    for (section, what) in SECTIONS {
        let Some(map) = value.get(section).and_then(Value::as_mapping) else {
            continue;
        };
        if map.keys().all(Value::is_string) {
            continue;
        }
        let index = index.get_or_insert_with(|| SpanIndex::build(src).ok());
        let written = written_keys(index.as_ref(), section);
        // The index lists the keys in the same (source) order as the parsed mapping.
        for (i, key) in map.keys().enumerate() {
            if key.is_string() {
                continue;
            }
            let (text, line) = written
                .get(i)
                .cloned()
                .unwrap_or_else(|| (format!("{key:?}"), 0));
            let kind = match key {
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                _ => "a collection",
            };
            let field = if text.contains(['.', '[', '"']) || text.is_empty() {
                format!("{section}[{text:?}]")
            } else {
                format!("{section}.{text}")
            };
            errors.push(ConfigError {
                file: file.to_path_buf(),
                line,
                field,
                message: format!("the {what} name `{text}` is read as {kind}, not as text"),
                hint: format!("quote it: \"{text}\":"),
            });
        }
    }
    errors
}

/// The keys of `section` as written, with their lines.
fn written_keys(index: Option<&SpanIndex>, section: &str) -> Vec<(String, usize)> {
    let Some(index) = index else {
        return Vec::new();
    };
    let entries = index
        .root
        .and_then(|root| index.map_get(root, section))
        .and_then(|(_, map)| index.map_entries(map));
    entries.map_or_else(Vec::new, |entries| {
        entries
            .iter()
            .map(|&(key, _)| {
                let text = index.scalar_str(key).unwrap_or_default().to_owned();
                (text, index.node(key).map_or(0, |n| n.line))
            })
            .collect()
    })
}
