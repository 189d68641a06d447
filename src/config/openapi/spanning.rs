//! Path parameters that may hold several segments: Google's resource names (`/v1/{name}` with
//! `name` = `projects/p/locations/l/...`), file paths (`/logs/{logpath}`), AWS greedy
//! parameters (`{proxy+}`), RFC 6570 reserved expansion (`{+name}`).
//!
//! The pattern `*` matches one segment, so such requests are refused: the import stays
//! exact (never wider than the document says) and tells the operator, who may grant them
//! with a wider pattern by hand. Only evidence the document gives counts; a false alarm
//! costs a note, a missed one a grant that silently fails.

use serde_yaml::Value;

/// Why the path parameter `name` (written in `template`, declared by `param` if found) may
/// hold several segments; `None` when nothing says so.
pub fn evidence(name: &str, param: Option<&Value>, template: &str) -> Option<String> {
    if name.starts_with('+') {
        return Some(format!("it is written `{{{name}}}` (reserved expansion)"));
    }
    if name.ends_with('+') || name.ends_with('*') {
        return Some(format!("it is written `{{{name}}}` (greedy)"));
    }
    if let Some(param) = param {
        for marker in [
            "x-reservedExpansion",
            "allowReserved",
            "x-ms-skip-url-encoding",
        ] {
            if param.get(marker).and_then(Value::as_bool) == Some(true) {
                return Some(format!("it is marked `{marker}: true`"));
            }
        }
        let pattern = param
            .get("schema")
            .and_then(|s| s.get("pattern"))
            .or_else(|| param.get("pattern"))
            .and_then(Value::as_str);
        if pattern.is_some_and(|p| p.replace("[^/]", "").contains('/')) {
            return Some("its schema pattern has a `/`".into());
        }
        let description = param.get("description").and_then(Value::as_str);
        if let Some(example) = description.and_then(slashed_format) {
            return Some(format!("its description shows `{example}`"));
        }
    }
    if name.to_ascii_lowercase().ends_with("path") {
        return Some("its name says it is a path".into());
    }
    if matches!(name, "name" | "parent" | "resource") && after_version_segment(name, template) {
        return Some("it is a resource name right after the API version (Google style)".into());
    }
    None
}

/// A `word/{x}` or `word/*` format in a text (`Format: projects/{project}/locations/...`),
/// as written up to the next space or quote.
fn slashed_format(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let at = (1..bytes.len()).find(|&i| {
        bytes[i] == b'/'
            && bytes[i - 1].is_ascii_alphanumeric()
            && matches!(bytes.get(i + 1), Some(b'{' | b'*'))
    })?;
    let is_break = |c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ',' | '(' | ')');
    // After the break character, whatever its width (a no-break space is two bytes).
    let start = text[..at]
        .char_indices()
        .rev()
        .find(|&(_, c)| is_break(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[at..].find(is_break).map_or(text.len(), |i| at + i);
    Some(text[start..end].trim_end_matches('.'))
}

/// Whether `{name}` (alone in its segment, or with a `:verb` after it) directly follows a
/// version segment (`v1`, `v1beta2`): Google's `/v1/{name}`, `/v1/{parent}/executions`.
fn after_version_segment(name: &str, template: &str) -> bool {
    let segments: Vec<&str> = template.split('/').collect();
    let own = format!("{{{name}}}");
    segments.windows(2).any(|pair| {
        let (previous, segment) = (pair[0], pair[1]);
        let is_version = previous.len() > 1
            && previous.starts_with('v')
            && previous[1..].starts_with(|c: char| c.is_ascii_digit());
        is_version && (segment == own || segment.starts_with(&format!("{own}:")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(yaml: &str) -> Value {
        serde_yaml::from_str(yaml).unwrap_or(Value::Null)
    }

    #[test]
    fn a_format_after_a_wide_space_is_read_without_panicking() {
        for text in [
            "Format:\u{a0}projects/{project}",
            "Format:\u{3000}projects/{project}",
        ] {
            assert_eq!(slashed_format(text), Some("projects/{project}"), "{text:?}");
        }
    }

    #[test]
    fn what_counts_as_evidence() {
        let google = param(
            "{name: name, in: path, description: 'Required. Format: projects/{project}/locations/{location}/workflows/{workflow}.'}",
        );
        assert_eq!(
            evidence("name", Some(&google), "/v1/{name}:cancel").as_deref(),
            Some("its description shows `projects/{project}/locations/{location}/workflows/{workflow}`")
        );
        let bare = param("{name: name, in: path}");
        assert!(
            evidence("name", Some(&bare), "/v1/{name}").is_some_and(|e| e.contains("Google style"))
        );
        assert!(evidence("parent", Some(&bare), "/v1beta1/{parent}/topics").is_some());
        assert_eq!(evidence("name", Some(&bare), "/pets/{name}"), None);
        assert_eq!(evidence("id", None, "/pets/{id}"), None);
        assert!(evidence("logpath", None, "/logs/{logpath}").is_some());
        assert!(evidence("filePath", None, "/f/{filePath}").is_some());
        assert!(evidence("proxy+", None, "/{proxy+}").is_some_and(|e| e.contains("greedy")));
        assert!(evidence("+name", None, "/v1/{+name}").is_some());
        let marked = param("{name: scope, in: path, x-ms-skip-url-encoding: true}");
        assert!(evidence("scope", Some(&marked), "/{scope}/providers").is_some());
        let one_segment = param("{name: id, in: path, schema: {pattern: '^[^/]+$'}}");
        assert_eq!(evidence("id", Some(&one_segment), "/x/{id}"), None);
        let several = param("{name: id, in: path, schema: {pattern: '^projects/[^/]+$'}}");
        assert!(evidence("id", Some(&several), "/x/{id}").is_some());
        let plain = param("{name: id, in: path, description: 'The pet id, 1/2 of the key'}");
        assert_eq!(evidence("id", Some(&plain), "/x/{id}"), None);
    }
}
