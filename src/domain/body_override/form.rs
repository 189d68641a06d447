//! `application/x-www-form-urlencoded` bodies, read pair by pair as they arrive: names as
//! [`names_method_override`] reads them, values as [`override_value`] does.

use crate::domain::request::{names_method_override, override_value};

/// Names longer than this are judged on their first bytes: `_method` in any spelling is
/// far shorter, and whatever a parser cuts from its end (`[...]`, from a NUL on) or rewrites
/// there still leaves `_method` at the start. Leading spaces, which PHP drops, are dropped
/// before the cap is reached.
const NAME_CAP: usize = 1024;
/// A value longer than this is no method (kept whole only up to here).
const VALUE_CAP: usize = 64;

#[derive(Debug, Default)]
pub(super) struct FormScan {
    /// The current name, or its first [`NAME_CAP`] bytes.
    name: Vec<u8>,
    /// Inside the value of the current pair (after its `=`).
    in_value: bool,
    /// The current pair's name reads as `_method`: its value is kept.
    is_override: bool,
    value: Vec<u8>,
}

impl FormScan {
    pub(super) fn feed(&mut self, bytes: &[u8], found: &mut Vec<Option<u8>>) {
        for &b in bytes {
            match b {
                // `;` as well: older Rack and Python split form bodies there too.
                b'&' | b';' => self.end_pair(found),
                b'=' if !self.in_value => {
                    self.in_value = true;
                    self.is_override = self.name_reads_as_override();
                }
                _ if self.in_value => {
                    if self.is_override {
                        if self.value.len() < VALUE_CAP {
                            self.value.push(b);
                        } else {
                            // No method is this long: judged now, not at the pair's end,
                            // so the override is not left open.
                            found.push(None);
                            self.is_override = false;
                            self.value.clear();
                        }
                    }
                }
                _ => self.push_name_byte(b),
            }
        }
    }

    pub(super) fn finish(&mut self, found: &mut Vec<Option<u8>>) {
        self.end_pair(found);
    }

    fn push_name_byte(&mut self, b: u8) {
        if self.name.len() == NAME_CAP {
            self.drop_leading_spaces();
        }
        if self.name.len() < NAME_CAP {
            self.name.push(b);
        }
    }

    /// Drops the spaces a name starts with (`+`, ` `, `%20`), which PHP ignores.
    fn drop_leading_spaces(&mut self) {
        let mut start = 0;
        loop {
            match &self.name[start..] {
                [b'+' | b' ', ..] => start += 1,
                [b'%', b'2', b'0', ..] => start += 3,
                _ => break,
            }
        }
        self.name.drain(..start);
    }

    fn name_reads_as_override(&self) -> bool {
        // Not UTF-8: read with invalid sequences replaced, which cannot hide `_method`.
        let name = String::from_utf8_lossy(&self.name);
        names_method_override(&name)
    }

    fn end_pair(&mut self, found: &mut Vec<Option<u8>>) {
        // A name without `=` is a parameter with an empty value: still an override (an
        // unknown verb), as for the query.
        if !self.in_value && !self.name.is_empty() && self.name_reads_as_override() {
            found.push(None);
        }
        if self.is_override {
            found.push(override_value(&self.value));
        }
        self.name.clear();
        self.in_value = false;
        self.is_override = false;
        self.value.clear();
    }

    /// Inside the value of a pair named `_method`: the bytes so far must not reach the
    /// upstream as a complete body (a cut-short `_method=PUTX` reads as PUT).
    pub(super) fn override_open(&self) -> bool {
        self.in_value && self.is_override
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::method_index;

    fn scan(chunks: &[&[u8]]) -> Vec<Option<u8>> {
        let mut s = FormScan::default();
        let mut found = Vec::new();
        for c in chunks {
            s.feed(c, &mut found);
        }
        s.finish(&mut found);
        found
    }

    #[test]
    fn override_names_in_every_spelling_are_found() {
        let delete = method_index("DELETE");
        for body in [
            "_method=DELETE",
            "a=1&_method=delete&b=2",
            "_%6dethod=DELETE",
            "%255fmethod=DELETE",
            "+_method=DELETE",
            "_method[]=DELETE",
            "_method%00x=DELETE",
            ".method=DELETE",
            "a=1;_METHOD=DELETE",
            "_method=%44ELETE",
            // Rack drops leading brackets and cuts at the next one.
            "]_method=DELETE",
            "[_method]=DELETE",
            "[[_method=DELETE",
            "_method]=DELETE",
        ] {
            assert_eq!(scan(&[body.as_bytes()]), vec![delete], "{body}");
        }
        for body in [
            "x_method=DELETE",
            "_methods=DELETE",
            "a=_method",
            "note=_method=DELETE",
        ] {
            assert_eq!(scan(&[body.as_bytes()]), vec![], "{body}");
        }
    }

    #[test]
    fn values_that_are_no_method_are_unknown_verbs() {
        for body in ["_method=DELETE+", "_method=", "_method", "_method=DE LETE"] {
            assert_eq!(scan(&[body.as_bytes()]), vec![None], "{body}");
        }
        let long = format!("_method={}", "A".repeat(100));
        assert_eq!(scan(&[long.as_bytes()]), vec![None]);
    }

    #[test]
    fn long_names_are_judged_on_their_head_after_leading_spaces() {
        let delete = method_index("DELETE");
        let spaced = format!("{}_method=DELETE", "+".repeat(5000));
        assert_eq!(scan(&[spaced.as_bytes()]), vec![delete]);
        let encoded = format!("{}_method=DELETE", "%20".repeat(2000));
        assert_eq!(scan(&[encoded.as_bytes()]), vec![delete]);
        let suffixed = format!("_method[{}]=DELETE", "x".repeat(5000));
        assert_eq!(scan(&[suffixed.as_bytes()]), vec![delete]);
        let other = format!("{}=DELETE", "x".repeat(5000));
        assert_eq!(scan(&[other.as_bytes()]), vec![]);
    }
}
