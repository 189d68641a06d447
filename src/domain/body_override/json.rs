//! JSON bodies, tokenized as they arrive: the top-level object's keys that read as
//! `_method` (Laravel reads a JSON body's parameters where Symfony looks for it), each
//! judged by its value. Only the top level is parameters; nested objects are skipped.

use crate::domain::request::{names_method_override, upper_method};

/// A key longer than this (escapes included) cannot be `_method`.
const KEY_CAP: usize = 256;
/// A value longer than this (escapes included) is no method.
const VALUE_CAP: usize = 128;

#[derive(Debug, Default)]
pub(super) struct JsonScan {
    /// Nesting depth; the top-level object's members are at depth 1.
    depth: u32,
    /// Set by the first byte that is not white space: only an object has parameters.
    started: bool,
    /// Bytes of a leading UTF-8 byte-order mark seen.
    bom: usize,
    /// The body is not an object, or its top-level object ended: nothing more to read.
    done: bool,
    in_string: bool,
    escaped: bool,
    /// At depth 1, the next string is a key (after `{` or `,`).
    expect_key: bool,
    /// At depth 1, after a key's `:`.
    awaiting_value: bool,
    /// The last key read as `_method`: its value is judged.
    override_key: bool,
    capture: Capture,
    text: Vec<u8>,
    cut: bool,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum Capture {
    #[default]
    Nothing,
    Key,
    Value,
}

impl JsonScan {
    pub(super) fn feed(&mut self, bytes: &[u8], found: &mut Vec<Option<u8>>) {
        for &b in bytes {
            if self.done {
                return;
            }
            if self.in_string {
                self.string_byte(b, found);
            } else {
                self.structural(b, found);
            }
        }
    }

    fn string_byte(&mut self, b: u8, found: &mut Vec<Option<u8>>) {
        if !self.escaped && b == b'"' {
            self.in_string = false;
            self.end_string(found);
            return;
        }
        self.escaped = !self.escaped && b == b'\\';
        if self.capture != Capture::Nothing {
            let cap = if self.capture == Capture::Key {
                KEY_CAP
            } else {
                VALUE_CAP
            };
            if self.text.len() < cap {
                self.text.push(b);
            } else if self.capture == Capture::Value {
                // No method is this long: judged now, so the override is not left open.
                found.push(None);
                self.capture = Capture::Nothing;
                self.override_key = false;
            } else {
                self.cut = true;
            }
        }
    }

    fn structural(&mut self, b: u8, found: &mut Vec<Option<u8>>) {
        if b.is_ascii_whitespace() {
            return;
        }
        if !self.started {
            // A UTF-8 byte-order mark, which Express's body-parser drops, is skipped.
            if self.bom < 3 && b == [0xEF, 0xBB, 0xBF][self.bom] {
                self.bom += 1;
                return;
            }
            self.started = true;
            if b != b'{' {
                self.done = true;
                return;
            }
            self.depth = 1;
            self.expect_key = true;
            return;
        }
        let top = self.depth == 1;
        match b {
            b'"' => {
                self.in_string = true;
                self.text.clear();
                self.cut = false;
                self.capture = if top && self.expect_key {
                    Capture::Key
                } else if top && self.awaiting_value && self.override_key {
                    Capture::Value
                } else {
                    Capture::Nothing
                };
            }
            b':' if top => {
                self.awaiting_value = true;
                self.expect_key = false;
            }
            b',' if top => {
                self.expect_key = true;
                self.awaiting_value = false;
                self.override_key = false;
            }
            b'{' | b'[' => {
                self.non_string_value(found);
                self.depth += 1;
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.done = true;
                }
            }
            _ => self.non_string_value(found),
        }
    }

    /// A value that is not a string (an object, array, number, literal) for an override
    /// key: no method, so an unknown verb.
    fn non_string_value(&mut self, found: &mut Vec<Option<u8>>) {
        if self.depth == 1 && self.awaiting_value {
            if self.override_key {
                found.push(None);
            }
            self.awaiting_value = false;
            self.override_key = false;
        }
    }

    /// The top-level value ended (or is not an object): nothing more can be found.
    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// A `_method` member's value is being read.
    pub(super) fn override_open(&self) -> bool {
        self.capture == Capture::Value || (self.awaiting_value && self.override_key)
    }

    fn end_string(&mut self, found: &mut Vec<Option<u8>>) {
        match self.capture {
            Capture::Key => {
                self.override_key = !self.cut && names_method_override(&decoded(&self.text));
                self.expect_key = false;
            }
            Capture::Value => {
                let method = if self.cut {
                    None
                } else {
                    upper_method(decoded(&self.text).as_bytes())
                };
                found.push(method);
                self.override_key = false;
                self.awaiting_value = false;
            }
            Capture::Nothing => {
                if self.depth == 1 {
                    self.awaiting_value = false;
                }
            }
        }
        self.capture = Capture::Nothing;
    }
}

/// A JSON string's content with its escapes undone (`\u005f` is `_`); read as it stands
/// when its escapes are invalid. Most keys have no escape: read in place.
fn decoded(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    match serde_json::from_slice::<String>(&quoted) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::method_index;

    fn scan(body: &str) -> Vec<Option<u8>> {
        let mut found = Vec::new();
        // Byte by byte: every token split across frames.
        let mut s = JsonScan::default();
        for b in body.as_bytes() {
            s.feed(std::slice::from_ref(b), &mut found);
        }
        let mut whole = Vec::new();
        JsonScan::default().feed(body.as_bytes(), &mut whole);
        assert_eq!(found, whole, "{body}");
        found
    }

    #[test]
    fn top_level_method_keys_are_found() {
        let delete = method_index("DELETE");
        for body in [
            r#"{"_method":"DELETE"}"#,
            r#" { "a" : {"_method":"GET"}, "_method" : "delete" } "#,
            r#"{"\u005fmethod":"DEL\u0045TE"}"#,
            r#"{"x":"\"_method\":\"GET\"","_method":"DELETE"}"#,
            r#"{"list":[1,{"_method":"PUT"}],"_method":"DELETE"}"#,
            "\u{feff}{\"_method\":\"DELETE\"}",
        ] {
            assert_eq!(scan(body), vec![delete], "{body}");
        }
    }

    #[test]
    fn nested_quoted_and_non_object_bodies_carry_none() {
        for body in [
            r#"{"a":{"_method":"DELETE"}}"#,
            r#"{"a":"_method"}"#,
            r#"[{"_method":"DELETE"}]"#,
            r#""_method""#,
            r#"{"_method_x":"DELETE"}"#,
            r#"{}{"_method":"DELETE"}"#,
        ] {
            assert_eq!(scan(body), vec![], "{body}");
        }
    }

    #[test]
    fn values_that_are_no_method_are_unknown_verbs() {
        for body in [
            r#"{"_method":["DELETE"]}"#,
            r#"{"_method":{"a":1}}"#,
            r#"{"_method":1}"#,
            r#"{"_method":true}"#,
            r#"{"_method":"DELETE "}"#,
        ] {
            assert_eq!(scan(body), vec![None], "{body}");
        }
        assert_eq!(
            scan(&format!(r#"{{"_method":"{}"}}"#, "A".repeat(300))),
            vec![None]
        );
    }
}
