//! Configuration errors: each names the file, the line, the field path and what to do.
//!
//! Validation collects every error before reporting, so an operator fixes a file in one
//! pass instead of one error per restart.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::yamlsrc::spans::SpanIndex;

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when no line applies (the file could not be read at all), and then
    /// none is printed.
    pub line: usize,
    /// Field path such as `accounts[0].tokens[2].scopes[1].api`; empty for the whole file.
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", shown_path(&self.file).display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

/// A file as an error names it: relative to the current folder when it is inside it (as
/// the user most likely typed it), else as it is.
fn shown_path(file: &Path) -> &Path {
    let Ok(cwd) = std::env::current_dir() else {
        return file;
    };
    if cwd.parent().is_none() {
        return file;
    }
    match file.strip_prefix(&cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel,
        _ => file,
    }
}

/// All the errors found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn single(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

/// Collects errors for one file, resolving field paths to line numbers.
pub struct ErrorSink<'a> {
    file: &'a Path,
    src: &'a str,
    /// Built on the first error only: indexing every node of a 100,000-token file costs
    /// seconds and hundreds of megabytes that a valid file never needs.
    spans: std::cell::OnceCell<Option<SpanIndex>>,
    pub errors: Vec<ConfigError>,
}

impl<'a> ErrorSink<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        ErrorSink {
            file,
            src,
            spans: std::cell::OnceCell::new(),
            errors: Vec::new(),
        }
    }

    /// A sink for checks run away from the file's own sink (on another thread): it finds
    /// no lines (every error has line 0). Its errors go to the file's sink with
    /// [`ErrorSink::replay`], in order, which finds their lines there.
    pub fn detached(file: &'a Path) -> Self {
        let spans = std::cell::OnceCell::new();
        let _ = spans.set(None);
        ErrorSink {
            file,
            src: "",
            spans,
            errors: Vec::new(),
        }
    }

    /// The file this sink reports on.
    pub fn file(&self) -> &'a Path {
        self.file
    }

    /// Pushes errors found with a [`ErrorSink::detached`] sink as if they were found here.
    pub fn replay(&mut self, errors: Vec<ConfigError>) {
        for e in errors {
            self.push(&e.field, e.message, e.hint);
        }
    }

    /// Every key named `key` under `field`, with its path and line (none when the file's
    /// YAML could not be indexed).
    fn keys_named(&self, field: &str, key: &str) -> Vec<(String, usize)> {
        self.spans
            .get_or_init(|| SpanIndex::build(self.src).ok())
            .as_ref()
            .map_or_else(Vec::new, |s| s.keys_named(field, key))
    }

    /// The line of a field path; 0 when the file's YAML could not be indexed (its syntax
    /// error is reported on its own).
    fn line_of(&self, field: &str) -> usize {
        self.spans
            .get_or_init(|| SpanIndex::build(self.src).ok())
            .as_ref()
            .map_or(0, |s| s.line_of(field))
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: self.line_of(field),
            field: field.to_owned(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// Reports a serde error for the value at `field`. serde names the offending key in
    /// backticks for unknown or missing fields; point at that key's line when it exists.
    pub fn push_serde(&mut self, field: &str, error: &serde_yaml::Error) {
        let message = error.to_string();
        let mut path = field.to_owned();
        if message.starts_with("unknown field") {
            if let Some(key) = message.split('`').nth(1) {
                // A path from serde_path_to_error already ends with the unknown key.
                let named = field == key || field.ends_with(&format!(".{key}"));
                path = if named {
                    field.to_owned()
                } else if field.is_empty() {
                    key.to_owned()
                } else {
                    format!("{field}.{key}")
                };
            }
        }
        let hint = if message.starts_with("unknown field") {
            "remove the field or fix its spelling"
        } else if message.starts_with("missing field") {
            "add the field"
        } else {
            "fix the value's type"
        };
        // serde_yaml's own message may carry a position relative to a sub-document; the
        // line we report comes from the span index of the whole file instead.
        // A parse of the whole file knows where it failed; errors from a sub-document
        // (one account or token) do not, and get the line of their field path instead.
        let mut line = error.location().map(|l| l.line());
        // An unknown key deeper than `field` (serde names only the key, and its location
        // can be the start of the document): when the file has exactly one key of that
        // name under `field`, that is the one, with its whole path and line.
        if message.starts_with("unknown field") {
            if let Some(key) = message.split('`').nth(1) {
                if let [(found, found_line)] = self.keys_named(field, key).as_slice() {
                    path = found.clone();
                    line = Some(*found_line);
                }
            }
        }
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        self.push(&path, message, hint);
        if let (Some(line), Some(last)) = (line, self.errors.last_mut()) {
            last.line = line;
        }
    }
}
