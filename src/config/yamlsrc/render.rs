//! Safe one-line YAML rendering: scalars that read back as exactly the string given, and
//! flow sequences and maps built from them.

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

/// Renders a parsed YAML value back as one line of flow YAML that reads back as the same
/// value: for fields a command carries through without knowing them (the other fields of
/// a scope entry). Strings go through [`quote_scalar`]; numbers keep their kind (`5` stays
/// an integer, `2.5` a float); comments and the original spelling are not kept.
pub fn flow_value(v: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote_scalar(s),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow_value).collect();
            flow_seq_rendered(&items)
        }
        Value::Mapping(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", flow_value(k), flow_value(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Tagged(t) => format!("{} {}", t.tag, flow_value(&t.value)),
    }
}
