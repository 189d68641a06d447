//! Log output: `tracing` set up for people (text, coloured only on a terminal and never
//! with `NO_COLOR`) or for machines (one JSON object per line, with real numbers, real
//! arrays for list fields and always a `message`).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Fields whose value is a list: written as `["a", "b"]` in text and as a JSON array in
/// JSON lines. A field gets here only when its value is rendered by [`List`].
pub const LIST_FIELDS: &[&str] = &[
    "added",
    "removed",
    "disabled",
    "enabled",
    "scopes_changed",
    "secret_rotated",
    "other_changed",
    "settings",
];

/// Sets up `tracing` on stderr: human-readable by default, JSON on request. `RUST_LOG`
/// filters (default `info`). A second call does nothing (tests start several gateways).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal()));
    let _ = match format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Colour only for a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A list rendered as a JSON array of strings (`["a", "b"]`), at most `cap` items and a
/// last `"... N more"`: readable in text lines, and turned into a real array in JSON lines
/// for the fields of [`LIST_FIELDS`].
pub struct List<I>(pub I, pub usize);

impl<I, T> fmt::Display for List<I>
where
    I: Iterator<Item = T> + Clone,
    T: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (n, item) in self.0.clone().enumerate() {
            if n == self.1 {
                let more = self.0.clone().count() - n;
                if n > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&json_string(&format!("... {more} more")))?;
                break;
            }
            if n > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&json_string(&item.to_string()))?;
        }
        f.write_char(']')
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// One JSON object per event: `timestamp`, `level`, `target`, `message`, then the event's
/// fields with their own types (numbers stay numbers).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let message = fields.message.unwrap_or_else(|| meta.name().to_owned());
        let fixed: [(&str, serde_json::Value); 4] = [
            ("timestamp", timestamp.into()),
            ("level", meta.level().as_str().into()),
            ("target", meta.target().into()),
            ("message", message.into()),
        ];
        // Written by hand: the fixed keys first, then the event's fields in their order
        // (serde_json's map would sort them).
        let mut out = String::from("{");
        for (i, (k, v)) in fixed.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}:{v}", json_string(k));
        }
        for (k, v) in &fields.fields {
            let _ = write!(out, ",{}:{v}", json_string(k));
        }
        out.push('}');
        writeln!(writer, "{out}")
    }
}

#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        self.fields.push((field.name(), value));
    }
}

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.put(field, value.into());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
            return;
        }
        if LIST_FIELDS.contains(&field.name()) {
            if let Ok(list @ serde_json::Value::Array(_)) = serde_json::from_str(&text) {
                self.put(field, list);
                return;
            }
        }
        self.put(field, text.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal() {
        assert!(!colour(false));
    }

    #[test]
    fn lists_are_json_arrays_capped() {
        let items = ["a", "b\"c", "d"];
        assert_eq!(List(items.iter(), 5).to_string(), r#"["a", "b\"c", "d"]"#);
        assert_eq!(
            List(items.iter(), 2).to_string(),
            r#"["a", "b\"c", "... 1 more"]"#
        );
        assert_eq!(List(items[..0].iter(), 2).to_string(), "[]");
        assert_eq!(List(items.iter(), 0).to_string(), r#"["... 3 more"]"#);
        let parsed: serde_json::Value =
            serde_json::from_str(&List(items.iter(), 1).to_string()).unwrap();
        assert_eq!(parsed[1], "... 2 more");
    }
}
