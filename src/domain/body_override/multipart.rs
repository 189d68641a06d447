//! `multipart/*` bodies, read line by line as they arrive (CRLF or a bare LF, as PHP's
//! parser accepts): each part whose `Content-Disposition` names `_method` (in any spelling
//! [`names_method_override`] reads as it) has its content judged as the method.

use crate::domain::request::{names_method_override, upper_method};

/// A part's header block past this is not read further, and the part counts as an
/// override that cannot be read (an unknown verb).
const HEADERS_CAP: usize = 8 * 1024;
/// An override's content longer than this is no method.
const VALUE_CAP: usize = 64;

/// Every `boundary=` value in a `Content-Type` field, cut at `"`, `;`, `,` or white space.
/// Rack's pattern takes the last `boundary=` in the field and PHP's parser the first, both
/// cutting at a comma; delimiter lines are recognized for each candidate.
pub(super) fn boundary(content_type: &[u8]) -> Vec<Vec<u8>> {
    const KEY: &[u8] = b"boundary=";
    let mut found = Vec::new();
    let mut i = 0;
    while i + KEY.len() <= content_type.len() {
        if content_type[i..i + KEY.len()].eq_ignore_ascii_case(KEY) {
            let rest = &content_type[i + KEY.len()..];
            let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'"' | b';' | b',') || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            if end > 0 {
                found.push(rest[..end].to_vec());
            }
            i += KEY.len();
        } else {
            i += 1;
        }
    }
    found
}

#[derive(Debug)]
enum State {
    /// Before the first delimiter line.
    Preamble,
    /// Reading a part's header lines.
    Headers,
    /// Reading a part's content; `is_override` when its name reads as `_method`.
    Content { is_override: bool },
}

#[derive(Debug)]
pub(super) struct MultipartScan {
    boundaries: Vec<Vec<u8>>,
    state: State,
    /// The current line's first bytes (up to [`HEADERS_CAP`]), without its LF.
    line: Vec<u8>,
    /// The current line's full length so far.
    line_len: usize,
    headers: Vec<u8>,
    headers_cut: bool,
    value: Vec<u8>,
    value_cut: bool,
}

impl MultipartScan {
    pub(super) fn new(boundaries: Vec<Vec<u8>>) -> MultipartScan {
        MultipartScan {
            boundaries,
            state: State::Preamble,
            line: Vec::new(),
            line_len: 0,
            headers: Vec::new(),
            headers_cut: false,
            value: Vec::new(),
            value_cut: false,
        }
    }

    pub(super) fn feed(&mut self, mut bytes: &[u8], found: &mut Vec<Option<u8>>) {
        if self.boundaries.is_empty() {
            return;
        }
        while !bytes.is_empty() {
            let (segment, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(lf) => (&bytes[..lf], Some(lf + 1)),
                None => (bytes, None),
            };
            let room = HEADERS_CAP.saturating_sub(self.line.len());
            self.line
                .extend_from_slice(&segment[..segment.len().min(room)]);
            self.line_len += segment.len();
            match ended {
                Some(next) => {
                    self.end_line(true, found);
                    bytes = &bytes[next..];
                }
                None => break,
            }
        }
    }

    /// `fed`: whether the body had any bytes (an empty body carries no parts).
    pub(super) fn finish(&mut self, fed: bool, found: &mut Vec<Option<u8>>) {
        if self.boundaries.is_empty() {
            // No boundary: nothing the gateway can read, though a lenient parser might.
            if fed {
                found.push(None);
            }
            return;
        }
        if self.line_len > 0 {
            self.end_line(false, found);
        }
        if let State::Content { is_override: true } = self.state {
            self.push_value(found);
        }
    }

    fn end_line(&mut self, with_lf: bool, found: &mut Vec<Option<u8>>) {
        let line = std::mem::take(&mut self.line);
        let whole = self.line_len == line.len();
        self.line_len = 0;
        let delimiter = self.boundaries.iter().any(|b| {
            line.len() >= b.len() + 2 && line.starts_with(b"--") && line[2..].starts_with(b)
        });
        match self.state {
            State::Preamble => {
                if delimiter {
                    self.start_part();
                }
            }
            State::Headers => {
                if line.strip_suffix(b"\r").unwrap_or(&line).is_empty() {
                    self.state = State::Content {
                        is_override: self.names_override(),
                    };
                } else if whole && self.headers.len() + line.len() < HEADERS_CAP {
                    self.headers.extend_from_slice(&line);
                    self.headers.push(b'\n');
                } else {
                    self.headers_cut = true;
                }
            }
            State::Content { is_override } => {
                if delimiter {
                    if is_override {
                        self.push_value(found);
                    }
                    self.start_part();
                } else if is_override {
                    if whole && self.value.len() + line.len() <= VALUE_CAP + 2 {
                        self.value.extend_from_slice(&line);
                        if with_lf {
                            self.value.push(b'\n');
                        }
                    } else {
                        self.value_cut = true;
                    }
                }
            }
        }
        self.line = line;
        self.line.clear();
    }

    fn start_part(&mut self) {
        self.state = State::Headers;
        self.headers.clear();
        self.headers_cut = false;
        self.value.clear();
        self.value_cut = false;
    }

    /// The line break before a delimiter belongs to it, not to the content.
    fn push_value(&mut self, found: &mut Vec<Option<u8>>) {
        let mut value = &self.value[..];
        value = value.strip_suffix(b"\n").unwrap_or(value);
        value = value.strip_suffix(b"\r").unwrap_or(value);
        found.push(if self.value_cut {
            None
        } else {
            upper_method(value)
        });
        self.value.clear();
        self.value_cut = false;
    }

    /// Whether the part's headers name it `_method`: every `name` or `name*` parameter
    /// after any `Content-Disposition:` in the block (Rack's pattern is not anchored to a
    /// line), folded lines included. A block too large to read counts as naming it.
    fn names_override(&self) -> bool {
        if self.headers_cut {
            return true;
        }
        const FIELD: &[u8] = b"content-disposition:";
        let block = &self.headers;
        (0..block.len().saturating_sub(FIELD.len() - 1))
            .filter(|&i| block[i..i + FIELD.len()].eq_ignore_ascii_case(FIELD))
            .any(|i| {
                disposition_names(&block[i + FIELD.len()..])
                    .iter()
                    .any(|name| names_method_override(&String::from_utf8_lossy(name)))
            })
    }
}

/// The values of every `name` and `name*` parameter in a `Content-Disposition` value (up
/// to the end of its field, folded lines included), quoted or not, even inside another
/// parameter's quotes: parsers disagree about quoting, and a name found too many times
/// costs nothing. `name*=charset'lang'value` gives `value`, still percent-encoded (which
/// [`names_method_override`] decodes).
fn disposition_names(text: &[u8]) -> Vec<Vec<u8>> {
    let end = field_end(text);
    let text = &text[..end];
    let mut names = Vec::new();
    for (i, _) in text.iter().enumerate().filter(|(_, &b)| b == b';') {
        let rest = text[i + 1..].trim_ascii_start();
        let Some(rest) = strip_prefix_ignore_case(rest, b"name") else {
            continue;
        };
        let (extended, rest) = match rest.strip_prefix(b"*") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(rest) = rest.trim_ascii_start().strip_prefix(b"=") else {
            continue;
        };
        let rest = rest.trim_ascii_start();
        let mut value = match rest.strip_prefix(b"\"") {
            Some(quoted) => unquoted(quoted),
            None => {
                let end = rest
                    .iter()
                    .position(|&b| matches!(b, b';' | b'"') || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                rest[..end].to_vec()
            }
        };
        if extended {
            if let Some(last) = value.iter().rposition(|&b| b == b'\'') {
                value.drain(..=last);
            }
        }
        names.push(value);
    }
    names
}

/// Where a header field that starts at `text` ends: at a line break not followed by a
/// folded line's space or tab.
fn field_end(text: &[u8]) -> usize {
    let mut i = 0;
    while let Some(lf) = text[i..].iter().position(|&b| b == b'\n') {
        let next = i + lf + 1;
        if !matches!(text.get(next), Some(b' ' | b'\t')) {
            return next;
        }
        i = next;
    }
    text.len()
}

/// A quoted string's content (after its opening quote), with backslash escapes undone; an
/// unterminated one runs to the end.
fn unquoted(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = quoted.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => break,
            b'\\' => out.extend(bytes.next()),
            _ => out.push(b),
        }
    }
    out
}

fn strip_prefix_ignore_case<'t>(text: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::method_index;

    fn scan(content_type: &str, body: &[u8], cut: usize) -> Vec<Option<u8>> {
        let mut s = MultipartScan::new(boundary(content_type.as_bytes()));
        let mut found = Vec::new();
        let (a, b) = body.split_at(cut.min(body.len()));
        s.feed(a, &mut found);
        s.feed(b, &mut found);
        s.finish(!body.is_empty(), &mut found);
        found
    }

    fn part(disposition: &str, content: &str) -> String {
        format!("--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{content}\r\n")
    }

    const CT: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn a_part_named_method_is_an_override_however_the_name_is_written() {
        let delete = method_index("DELETE");
        for disposition in [
            r#"form-data; name="_method""#,
            "form-data; name=_method",
            r#"form-data;name="_METHOD""#,
            r#"form-data; NAME = "_method""#,
            r#"form-data; name="_%6dethod""#,
            r#"form-data; name="_me\thod""#,
            "form-data; name*=UTF-8''%5Fmethod",
            r#"form-data; name="_method[]""#,
            r#"form-data; filename="a;name=_method""#,
        ] {
            let body = format!(
                "{}{}--XyZ--\r\n",
                part("form-data; name=\"a\"", "1"),
                part(disposition, "delete")
            );
            for cut in [0, 7, 30, body.len() - 5] {
                assert_eq!(
                    scan(CT, body.as_bytes(), cut),
                    vec![delete],
                    "{disposition} / {cut}"
                );
            }
        }
        for disposition in [
            r#"form-data; name="x_method""#,
            r#"form-data; filename="_method""#,
        ] {
            let body = format!("{}--XyZ--\r\n", part(disposition, "DELETE"));
            assert_eq!(scan(CT, body.as_bytes(), 0), vec![], "{disposition}");
        }
    }

    #[test]
    fn bare_line_feeds_quoted_and_comma_cut_boundaries_are_read() {
        let delete = method_index("DELETE");
        let body = "--b1\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--b1--\n";
        assert_eq!(
            scan("multipart/form-data; boundary=\"b1\"", body.as_bytes(), 9),
            vec![delete]
        );
        // PHP and Rack cut the boundary at a comma.
        assert_eq!(
            scan("multipart/form-data; boundary=b1,x", body.as_bytes(), 0),
            vec![delete]
        );
    }

    #[test]
    fn unreadable_multipart_bodies_and_long_values_are_unknown_verbs() {
        assert_eq!(scan("multipart/form-data", b"--x\r\n", 0), vec![None]);
        let long = part(r#"form-data; name="_method""#, &"A".repeat(200));
        assert_eq!(scan(CT, long.as_bytes(), 0), vec![None]);
        let two_lines = part(r#"form-data; name="_method""#, "DEL\r\nETE");
        assert_eq!(
            scan(CT, format!("{two_lines}--XyZ--").as_bytes(), 0),
            vec![None]
        );
        let huge_headers = format!(
            "--XyZ\r\nX-Pad: {}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nDELETE\r\n--XyZ--",
            "p".repeat(HEADERS_CAP)
        );
        assert_eq!(
            scan(CT, huge_headers.as_bytes(), 0),
            vec![method_index("DELETE")]
        );
        // Unterminated: judged as it stands.
        let open = "--XyZ\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT";
        assert_eq!(scan(CT, open.as_bytes(), 3), vec![method_index("PUT")]);
    }

    #[test]
    fn a_large_upload_without_an_override_finds_nothing() {
        let file = "x".repeat(200_000);
        let body = format!(
            "{}--XyZ--\r\n",
            part(r#"form-data; name="file"; filename="a.bin""#, &file)
        );
        assert_eq!(scan(CT, body.as_bytes(), 100_000), vec![]);
    }
}
