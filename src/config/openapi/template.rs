//! OpenAPI path templates to catalog patterns: `/Accounts/{AccountSid}/Calls/{Sid}.json`
//! becomes `/Accounts/{account}/Calls/*.json`.
//!
//! The rule is that a pattern never matches a path the template does not: each parameter
//! becomes exactly one segment (`*`, or `{account}` for the account parameter), with the
//! literal text around it kept (`*.json`). What cannot be written that way (two parameters in
//! one segment, a literal `*`, bytes the gateway refuses in request paths) is refused with a
//! reason, never widened.
//!
//! gRPC transcoding templates (`/v1/{name=projects/*/locations/*}:cancel`, Google APIs) say
//! exactly which segments a parameter spans: they become the pattern they describe
//! (`/v1/projects/*/locations/*:cancel`).

use crate::domain::scope::{canonicalize, parse_pattern, Pattern, TargetError};

/// A template converted to a pattern.
#[derive(Debug, Clone)]
pub struct Converted {
    pub text: String,
    pub pattern: Pattern,
    /// Something the operator should know (a query part that was dropped).
    pub note: Option<String>,
}

/// Converts a full path template (base path already joined) to a pattern.
pub fn to_pattern(template: &str, account_param: Option<&str>) -> Result<Converted, String> {
    let mut note = None;
    // A query or fragment in a path key (`/search?q={q}`, `/cookies#formExploded`, used to
    // tell operations on one path apart) is never part of the request path.
    let path = match template.split_once(['?', '#']) {
        Some((path, _)) => {
            note = Some(format!(
                "`{template}`: the part from `?`/`#` on was dropped (grants match the path only)"
            ));
            path
        }
        None => template,
    };
    if !path.starts_with('/') {
        return Err("the path does not start with `/`".into());
    }
    let expanded = expand_bindings(path)?;
    let path = expanded.as_str();
    // A single trailing slash: the gateway matches `/a/` like `/a`.
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let mut text = String::with_capacity(path.len());
    if path == "/" {
        text.push('/');
    } else {
        for segment in path[1..].split('/') {
            text.push('/');
            text.push_str(&segment_pattern(segment, account_param)?);
        }
    }
    let pattern =
        parse_pattern(&text).map_err(|e| format!("the pattern `{text}` would be refused: {e}"))?;
    Ok(Converted {
        text,
        pattern,
        note,
    })
}

/// The names of a template's parameters, in order (`{name=projects/*}` bindings left out:
/// they say which segments they span).
pub fn param_names(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.contains('='))
}

/// Writes each gRPC transcoding binding out as the segments it spans:
/// `{name=projects/*/locations/*}` -> `projects/{name.1}/locations/{name.3}` (each `*` one
/// segment, which then becomes `*` like any parameter). A `**` (any number of segments) has
/// no exact pattern and is refused.
fn expand_bindings(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break; // reported with its segment below
        };
        out.push_str(&rest[..open]);
        let inner = &rest[open + 1..close];
        match inner.split_once('=') {
            None => out.push_str(&rest[open..=close]),
            Some((var, binding)) => {
                for (i, segment) in binding.split('/').enumerate() {
                    if i > 0 {
                        out.push('/');
                    }
                    match segment {
                        "*" => out.push_str(&format!("{{{var}.{i}}}")),
                        "**" => {
                            return Err(format!(
                                "`{{{inner}}}` spans any number of segments (`**`), which a \
                                 pattern can only grant wider, at its end: add one by hand"
                            ))
                        }
                        _ if segment.is_empty() || segment.contains('*') => {
                            return Err(format!("`{{{inner}}}` is not a valid gRPC path binding"))
                        }
                        literal => out.push_str(literal),
                    }
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One template segment to one pattern segment.
fn segment_pattern(segment: &str, account_param: Option<&str>) -> Result<String, String> {
    if segment.is_empty() {
        return Err("empty segment (`//`): the gateway refuses such request paths".into());
    }
    let (prefix, param, suffix) = split_params(segment)?;
    let Some(param) = param else {
        return literal(segment, false);
    };
    let wildcard = if Some(param) == account_param {
        "{account}"
    } else {
        "*"
    };
    Ok(format!(
        "{}{wildcard}{}",
        literal(prefix, true)?,
        literal(suffix, true)?
    ))
}

/// Splits `pre{name}post`; a segment with no parameter comes back as (segment, None, "").
fn split_params(segment: &str) -> Result<(&str, Option<&str>, &str), String> {
    let Some(open) = segment.find('{') else {
        if segment.contains('}') {
            return Err(format!("segment `{segment}` has a `}}` without `{{`"));
        }
        return Ok((segment, None, ""));
    };
    let (prefix, rest) = segment.split_at(open);
    let Some(close) = rest.find('}') else {
        return Err(format!("segment `{segment}` has a `{{` without `}}`"));
    };
    let name = &rest[1..close];
    let suffix = &rest[close + 1..];
    if name.is_empty() || name.contains('{') || prefix.contains('}') {
        return Err(format!("segment `{segment}` is not a valid path template"));
    }
    if suffix.contains(['{', '}']) {
        return Err(format!(
            "segment `{segment}` holds more than one parameter: a pattern segment holds one \
             wildcard, and a wider one would match paths the document does not have \
             (write a pattern by hand if that is acceptable)"
        ));
    }
    Ok((prefix, Some(name), suffix))
}

/// The canonical spelling of literal template text, percent-encoding what a client must
/// encode anyway (space, non-ASCII, `"<>^`{|}`), or why it cannot be matched. `piece` is
/// text beside a parameter (where `.` and `..` are ordinary text).
fn literal(text: &str, piece: bool) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    if text.contains('*') {
        return Err(format!(
            "segment text `{text}` holds a literal `*`, which a pattern would read as a wildcard"
        ));
    }
    let mut encoded = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b >= 0x80 || b" \"<>^`{|}".contains(&b) {
            encoded.push_str(&format!("%{b:02X}"));
        } else {
            encoded.push(char::from(b));
        }
    }
    // Text beside a parameter is checked between two `_`, so its own dots are not taken for a
    // dot segment or a segment's trailing dot (the parameter's text surrounds it).
    let (guard, end) = if piece { ("/_", "_") } else { ("/", "") };
    let as_path = format!("{guard}{encoded}{end}");
    match canonicalize(&as_path) {
        Ok(target) => Ok(target.path[guard.len()..target.path.len() - end.len()].to_owned()),
        Err(TargetError::DotSegment) => Err(format!(
            "segment `{text}` is a dot segment, which the gateway refuses in request paths"
        )),
        Err(reason) => Err(format!(
            "segment text `{text}`: {reason}, which the gateway refuses in request paths"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(t: &str, account: Option<&str>) -> Result<String, String> {
        to_pattern(t, account).map(|c| c.text)
    }

    #[test]
    fn parameters_become_one_segment() {
        let a = Some("AccountSid");
        let cases = [
            ("/", "/"),
            ("/pets", "/pets"),
            ("/pets/", "/pets"),
            ("/pets/{petId}", "/pets/*"),
            (
                "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
                "/2010-04-01/Accounts/{account}/Calls/*.json",
            ),
            (
                "/2010-04-01/Accounts/{AccountSid}.json",
                "/2010-04-01/Accounts/{account}.json",
            ),
            ("/v{version}/x", "/v*/x"),
            ("/files/{name}..", "/files/*.."),
            ("/caf\u{e9} au lait", "/caf%C3%A9%20au%20lait"),
            ("/%7euser/{id}", "/~user/*"),
            ("/search?q={q}", "/search"),
            ("/cookies#formExploded", "/cookies"),
            ("/a:b/@c", "/a:b/@c"),
            (
                "/v1/{name=projects/*/locations/*}:cancel",
                "/v1/projects/*/locations/*:cancel",
            ),
            ("/v1/{parent=projects/*}/topics", "/v1/projects/*/topics"),
            ("/v1/{name=operations}", "/v1/operations"),
        ];
        for (template, pattern) in cases {
            assert_eq!(conv(template, a).as_deref(), Ok(pattern), "{template}");
        }
    }

    #[test]
    fn unrepresentable_templates_are_refused_with_a_reason() {
        let cases = [
            ("pets", "start with `/`"),
            ("/a//b", "empty segment"),
            ("/a/{x}.{y}", "more than one parameter"),
            ("/a/{x}{y}", "more than one parameter"),
            ("/a/{x", "without `}`"),
            ("/a/x}", "without `{`"),
            ("/a/{}", "not a valid path template"),
            ("/a/*", "literal `*`"),
            ("/a/b*{id}", "literal `*`"),
            ("/a/..", "dot segment"),
            ("/a/.", "dot segment"),
            ("/a;v=1/b", "raw `;`"),
            ("/a\\b", "raw `\\`"),
            ("/a/%2F", "encoded slash"),
            ("/a/%zz", "two hex digits"),
            ("/a/\u{1}", "control byte"),
            ("/v1/{name=files/**}", "spans any number of segments"),
            ("/v1/{name=a/*x}", "not a valid gRPC path binding"),
            ("/v1/{name=}", "not a valid gRPC path binding"),
        ];
        for (template, reason) in cases {
            match conv(template, None) {
                Ok(p) => panic!("{template:?} gave {p}"),
                Err(e) => assert!(e.contains(reason), "{template:?}: {e}"),
            }
        }
    }

    #[test]
    fn param_names_leave_bindings_out() {
        let names: Vec<&str> = param_names("/v1/{name=projects/*}/x/{id}.{ext}/{+rest}").collect();
        assert_eq!(names, ["id", "ext", "+rest"]);
    }

    #[test]
    fn query_part_is_noted() {
        let c = to_pattern("/search?q={q}", None).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.note.unwrap_or_default().contains("was dropped"));
    }
}
