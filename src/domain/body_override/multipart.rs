//! `multipart/*` bodies, read line by line as they arrive: each part whose headers name it
//! `_method` (in any spelling [`names_method_override`] reads as it) has its content judged
//! as the method. Where PHP's parser (which accepts a bare LF) and Rack's (which ends a
//! header block only at CRLF CRLF) would read a part's header block differently, the part
//! cannot be read (an unknown verb).

use crate::domain::request::{names_method_override, upper_method};

/// A part's header block past this is not read further, and the part counts as an
/// override that cannot be read (an unknown verb).
const HEADERS_CAP: usize = 8 * 1024;
/// An override's content longer than this is no method.
const VALUE_CAP: usize = 64;
/// A header block with more `name` candidates than this cannot be read.
const NAMES_CAP: usize = 32;

/// The boundary of a `Content-Type` field, when it is beyond doubt: one `boundary=`
/// parameter (the word appears once in the field), quoted or not, of 1 to 70 of RFC 2046's
/// characters without space or comma. Parsers disagree about everything else (Rack takes
/// the last `boundary=` and keeps a leading space, PHP the text after the first
/// `boundary`, both cut at a comma; Go reads `boundary*=`): `None` then, and the body
/// cannot be read.
pub(super) fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"boundary";
    let at = |i: usize| {
        content_type[i..].len() >= KEY.len()
            && content_type[i..i + KEY.len()].eq_ignore_ascii_case(KEY)
    };
    let mut hits = (0..content_type.len()).filter(|&i| at(i));
    let first = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    let rest = content_type[first + KEY.len()..].strip_prefix(b"=")?;
    let (value, after) = match rest.strip_prefix(b"\"") {
        Some(quoted) => {
            let end = quoted.iter().position(|&b| b == b'"')?;
            (&quoted[..end], &quoted[end + 1..])
        }
        None => {
            let end = rest
                .iter()
                .position(|&b| b == b';' || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            rest.split_at(end)
        }
    };
    let clean = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_-./:=?".contains(b);
    let after = after.trim_ascii_start();
    let ends_well = after.is_empty() || after.starts_with(b";");
    (ends_well && (1..=70).contains(&value.len()) && value.iter().all(clean))
        .then(|| value.to_vec())
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
    /// `None`: the field's boundary is in doubt; the body cannot be read.
    boundary: Option<Vec<u8>>,
    state: State,
    /// The current line's first bytes (up to [`HEADERS_CAP`]), without its LF.
    line: Vec<u8>,
    /// The current line's full length so far.
    line_len: usize,
    /// The current line was already taken as a delimiter (decided as soon as it began
    /// with `--` and the boundary, before its end arrived).
    line_was_delimiter: bool,
    headers: Vec<u8>,
    headers_cut: bool,
    /// An override part's content so far (at most [`VALUE_CAP`] + 2 bytes).
    value: Vec<u8>,
    /// An unreadable body was reported (once).
    reported: bool,
    /// The line before the current one ended with CRLF.
    last_line_cr: bool,
}

impl MultipartScan {
    pub(super) fn new(boundary: Option<Vec<u8>>) -> MultipartScan {
        MultipartScan {
            boundary,
            state: State::Preamble,
            line: Vec::new(),
            line_len: 0,
            line_was_delimiter: false,
            headers: Vec::new(),
            headers_cut: false,
            value: Vec::new(),
            reported: false,
            last_line_cr: false,
        }
    }

    pub(super) fn feed(&mut self, mut bytes: &[u8], found: &mut Vec<Option<u8>>) {
        if self.boundary.is_none() {
            // Nothing the gateway can read, though a lenient parser might.
            if !self.reported && !bytes.is_empty() {
                self.reported = true;
                found.push(None);
            }
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
            self.delimiter_early(found);
            self.value_overflow(found);
            match ended {
                Some(next) => {
                    self.end_line(true, found);
                    bytes = &bytes[next..];
                }
                None => break,
            }
        }
    }

    pub(super) fn finish(&mut self, found: &mut Vec<Option<u8>>) {
        if self.boundary.is_none() {
            return;
        }
        if self.line_len > 0 {
            self.end_line(false, found);
        }
        if let State::Content { is_override: true } = self.state {
            self.push_value(found);
        }
        self.state = State::Preamble;
    }

    /// Whether the current line begins with `--` and the boundary.
    fn line_is_delimiter(&self) -> bool {
        let Some(b) = self.boundary.as_deref() else {
            return false;
        };
        // Rack strips a preamble line (Ruby's `strip`: white space and NUL) before
        // comparing it with the boundary.
        let start = self
            .line
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c | 0))
            .unwrap_or(self.line.len());
        let line = &self.line[start..];
        line.len() >= b.len() + 2 && line.starts_with(b"--") && line[2..].starts_with(b)
    }

    /// A delimiter ends the part before it as soon as its start has arrived: Rack stops
    /// reading at `--boundary--`, so a part must be judged before the bytes after it
    /// (which may come much later, or never) are waited for.
    fn delimiter_early(&mut self, found: &mut Vec<Option<u8>>) {
        if self.line_was_delimiter
            || matches!(self.state, State::Headers)
            || !self.line_is_delimiter()
        {
            return;
        }
        self.line_was_delimiter = true;
        if let State::Content { is_override: true } = self.state {
            self.push_value(found);
        }
        self.start_part();
    }

    /// An override's content longer than any method is judged at once, not at the next
    /// delimiter, so the override is not left open.
    fn value_overflow(&mut self, found: &mut Vec<Option<u8>>) {
        if let State::Content { is_override: true } = self.state {
            if !self.line_was_delimiter && self.value.len() + self.line_len > VALUE_CAP + 2 {
                found.push(None);
                self.value.clear();
                self.state = State::Content { is_override: false };
            }
        }
    }

    /// Inside the content of a part named `_method`.
    pub(super) fn override_open(&self) -> bool {
        matches!(self.state, State::Content { is_override: true })
    }

    fn end_line(&mut self, with_lf: bool, found: &mut Vec<Option<u8>>) {
        let line = std::mem::take(&mut self.line);
        let whole = self.line_len == line.len();
        self.line_len = 0;
        let after_crlf = std::mem::replace(&mut self.last_line_cr, line.ends_with(b"\r"));
        if std::mem::take(&mut self.line_was_delimiter) {
            self.line = line;
            self.line.clear();
            return;
        }
        match self.state {
            // A delimiter is taken as soon as it began (`delimiter_early`).
            State::Preamble => {}
            State::Headers => {
                let blank = line.is_empty() && with_lf || line.as_slice() == b"\r";
                // Rack ends a block only at CRLF CRLF after the delimiter's CRLF: a blank
                // first line does not end an empty block there, it starts the block.
                let empty_block = self.headers.is_empty() && !self.headers_cut;
                // PHP reads lines as C strings: one starting with a NUL is blank to it.
                let blank_to_php = line.first() == Some(&0);
                if blank_to_php
                    || blank && (empty_block || !(line.as_slice() == b"\r" && after_crlf))
                {
                    // A bare LF ends the block for PHP; Rack reads on to `\r\n\r\n`.
                    found.push(None);
                    self.state = State::Content { is_override: false };
                } else if blank {
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
                if is_override {
                    self.value.extend_from_slice(&line);
                    if with_lf {
                        self.value.push(b'\n');
                    }
                    self.value_overflow(found);
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
    }

    /// The line break before a delimiter belongs to it, not to the content.
    fn push_value(&mut self, found: &mut Vec<Option<u8>>) {
        let mut value = &self.value[..];
        value = value.strip_suffix(b"\n").unwrap_or(value);
        value = value.strip_suffix(b"\r").unwrap_or(value);
        found.push(upper_method(value));
        self.value.clear();
    }

    /// Whether the part's header block names it `_method`, read as loosely as any parser
    /// does: every `name`/`name*` parameter anywhere in the block (PHP reads the first
    /// word of `Content-Disposition` as a parameter too, and joins a line without a colon
    /// to the one before; Rack's pattern runs across lines), and `Content-ID` (Rack names a
    /// part without `Content-Disposition` by it). A block too large to read, or with too
    /// many names, counts as naming it.
    fn names_override(&self) -> bool {
        if self.headers_cut {
            return true;
        }
        let names = block_names(&self.headers);
        names.len() > 2 * NAMES_CAP
            || names
                .iter()
                .any(|name| names_method_override(&String::from_utf8_lossy(name)))
    }
}

/// Every `name` or `name*` parameter in a part's header block (after `;`, `:`, a line
/// start or the block start, even inside another parameter's quotes), and every
/// `Content-ID` value; at most [`NAMES_CAP`] + 1. `name*=charset'lang'value` gives
/// `value`, still percent-encoded (which [`names_method_override`] decodes).
fn block_names(block: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    names_in(block, &mut names);
    // PHP joins a line without a colon to the one before with nothing between: a name
    // split by a line break reads whole.
    let joined: Vec<u8> = block
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    names_in(&joined, &mut names);
    names
}

/// [`block_names`] of `block` as it is, added to `names`.
fn names_in(block: &[u8], names: &mut Vec<Vec<u8>>) {
    // Rack's `Content-ID:` pattern is not anchored to a line start; its value ends at
    // the line's end.
    const ID: &[u8] = b"content-id:";
    for at in (0..block.len().saturating_sub(ID.len() - 1))
        .filter(|&i| block[i..i + ID.len()].eq_ignore_ascii_case(ID))
        .take(NAMES_CAP + 1)
    {
        let rest = &block[at + ID.len()..];
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let id = rest[..end].trim_ascii();
        names.push(id.to_vec());
        if let Some(inner) = id.strip_prefix(b"<").and_then(|i| i.strip_suffix(b">")) {
            names.push(inner.to_vec());
        }
    }
    let mut i = 0;
    while i + 4 <= block.len() && names.len() <= 2 * NAMES_CAP {
        let here = i;
        i += 1;
        if !block[here..here + 4].eq_ignore_ascii_case(b"name") {
            continue;
        }
        let before = block[..here].trim_ascii_end_spaces();
        if !matches!(before.last(), None | Some(b';' | b':' | b'\n')) {
            continue;
        }
        let rest = &block[here + 4..];
        let (extended, rest) = match rest.strip_prefix(b"*") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(rest) = rest.trim_spaces_start().strip_prefix(b"=") else {
            continue;
        };
        // PHP reads `name==_method` as `_method`.
        let skip = rest
            .iter()
            .take_while(|&&b| matches!(b, b'=' | b' ' | b'\t'))
            .count();
        let rest = &rest[skip..];
        if !extended {
            // Rack's token ends at any separator (`name=_method:` is `_method`).
            let token = rest
                .iter()
                .position(|&b| b"()<>@,;:\\\"/[]?={} \t\r\n".contains(&b))
                .unwrap_or(rest.len());
            names.push(rest[..token].to_vec());
        }
        let mut value = match rest.first() {
            // `name*=UTF-8''...` is no quoted string.
            Some(&quote @ (b'"' | b'\'')) if !extended => unquoted(&rest[1..], quote),
            _ => {
                let end = rest
                    .iter()
                    .position(|&b| {
                        matches!(b, b';' | b'"')
                            || (b == b'\'' && !extended)
                            || b.is_ascii_whitespace()
                    })
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
}

/// Trimming of spaces and tabs only (a line break ends a header line).
trait SpaceTrim {
    fn trim_spaces_start(&self) -> &[u8];
    fn trim_ascii_end_spaces(&self) -> &[u8];
}

impl SpaceTrim for [u8] {
    fn trim_spaces_start(&self) -> &[u8] {
        let start = self
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(self.len());
        &self[start..]
    }

    fn trim_ascii_end_spaces(&self) -> &[u8] {
        let end = self
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |i| i + 1);
        &self[..end]
    }
}

/// A quoted string's content (after its opening `quote`), with backslash escapes undone;
/// an unterminated one runs to the end of its line.
fn unquoted(quoted: &[u8], quote: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = quoted.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\n' => break,
            b'\\' => out.extend(bytes.next()),
            _ if b == quote => break,
            _ => out.push(b),
        }
    }
    out
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
        s.finish(&mut found);
        found
    }

    fn part(headers: &str, content: &str) -> String {
        format!("--XyZ\r\n{headers}\r\n\r\n{content}\r\n")
    }

    fn disposition(params: &str) -> String {
        part(&format!("Content-Disposition: {params}"), "delete")
    }

    const CT: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn a_part_named_method_is_an_override_however_the_name_is_written() {
        let delete = method_index("DELETE");
        for named in [
            disposition(r#"form-data; name="_method""#),
            disposition("form-data; name=_method"),
            disposition(r#"form-data;name="_METHOD""#),
            disposition(r#"form-data; NAME = "_method""#),
            disposition(r#"form-data; name="_%6dethod""#),
            disposition(r#"form-data; name="_me\thod""#),
            disposition("form-data; name*=UTF-8''%5Fmethod"),
            disposition(r#"form-data; name="_method[]""#),
            disposition(r#"form-data; filename="a;name=_method""#),
            // PHP: the first word is a parameter too, and single quotes quote.
            disposition("name=_method"),
            disposition("form-data; name='_method'"),
            // PHP joins a line without a colon to the one before; Rack's pattern runs on.
            part(
                "Content-Disposition: form-data\r\n; name=\"_method\"",
                "delete",
            ),
            part(
                "Content-Disposition: form-data\r\nX; name=_method",
                "delete",
            ),
            // Rack names a part without Content-Disposition by its Content-ID.
            part("Content-ID: _method", "delete"),
            part("Content-ID: <_method>", "delete"),
        ] {
            let body = format!(
                "{}{named}--XyZ--\r\n",
                disposition(r#"form-data; name="a""#)
            );
            for cut in [0, 7, 30, body.len() - 5] {
                assert_eq!(
                    scan(CT, body.as_bytes(), cut),
                    vec![delete],
                    "{named:?} / {cut}"
                );
            }
        }
        for other in [
            disposition(r#"form-data; name="x_method""#),
            disposition(r#"form-data; filename="_method""#),
        ] {
            let body = format!("{other}--XyZ--\r\n");
            assert_eq!(scan(CT, body.as_bytes(), 0), vec![], "{other}");
        }
    }

    #[test]
    fn only_one_clean_boundary_is_read() {
        assert_eq!(
            boundary(b"multipart/form-data; boundary=XyZ"),
            Some(b"XyZ".to_vec())
        );
        assert_eq!(
            boundary(b"multipart/form-data; BOUNDARY=\"a'b(c)\""),
            Some(b"a'b(c)".to_vec())
        );
        for doubtful in [
            &b"multipart/form-data"[..],
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=Z; boundary= A",
            b"multipart/form-data; boundaryX=A; boundary=B",
            b"multipart/form-data; boundary*=utf-8''A",
            b"multipart/form-data; boundary=a,b",
            b"multipart/form-data; boundary=\"a b\"",
            b"multipart/form-data; boundary=\"ab",
        ] {
            assert_eq!(
                boundary(doubtful),
                None,
                "{}",
                String::from_utf8_lossy(doubtful)
            );
        }
        let body = disposition("form-data; name=a");
        assert_eq!(
            scan("multipart/form-data; boundary=a,b", body.as_bytes(), 0),
            vec![None]
        );
    }

    #[test]
    fn header_blocks_the_parsers_would_end_differently_cannot_be_read() {
        // PHP ends the block at the bare LF, Rack at CRLF CRLF.
        let bare = "--XyZ\r\nX: y\n\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--XyZ--";
        assert!(scan(CT, bare.as_bytes(), 0).contains(&None));
        let mixed = "--XyZ\r\nX: y\n\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--XyZ--";
        assert!(scan(CT, mixed.as_bytes(), 0).contains(&None));
    }

    #[test]
    fn what_php_or_rack_read_as_another_block_cannot_be_read() {
        for body in [
            // PHP: a line starting with a NUL is blank, so PATCH is the content.
            "--XyZ\r\nContent-Disposition: form-data; name=_method\r\n\0\r\nPATCH\r\n--XyZ--",
            // Rack: a blank first line starts the block rather than ending it.
            "--XyZ\r\n\r\nContent-ID: _method\r\n\r\nPUT\r\n--XyZ--\r\n",
        ] {
            assert!(scan(CT, body.as_bytes(), 0).contains(&None), "{body:?}");
        }
        let delete = method_index("DELETE");
        for body in [
            // Rack: `Content-ID:` anywhere, its value to the line's end.
            "--XyZ\r\n; Content-ID: _method\r\n\r\nDELETE\r\n--XyZ--\r\n",
            "--XyZ\r\nContent-ID: _method\r-ID: x\r\n\r\nDELETE\r\n--XyZ--\r\n",
            // PHP joins a line without a colon to the one before with nothing between.
            "--XyZ\r\nContent-Disposition: form-data; name=_meth\nod\r\n\r\nDELETE\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data; name=\"_met\r\nhod\"\r\n\r\nDELETE\r\n--XyZ--",
            // Rack strips a preamble line before comparing it with the boundary.
            "\r--XyZ\r\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--XyZ--",
            "\0--XyZ\r\nContent-ID: _method\r\n\r\nDELETE\r\n--XyZ--",
            // Rack's token ends at any separator; PHP skips `=` before a value.
            "--XyZ\r\nContent-Disposition: form-data; name=_method:\r\n\r\nDELETE\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data; name=_method=PUT\r\n\r\nDELETE\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data; name==_method\r\n\r\nDELETE\r\n--XyZ--",
        ] {
            assert_eq!(scan(CT, body.as_bytes(), 0), vec![delete], "{body:?}");
        }
    }

    #[test]
    fn a_part_is_judged_as_soon_as_the_next_delimiter_begins() {
        // Rack stops at `--XyZ--`: the override is found before anything after it arrives.
        let mut s = MultipartScan::new(boundary(CT.as_bytes()));
        let mut found = Vec::new();
        s.feed(
            part(r#"Content-Disposition: form-data; name="_method""#, "PUT").as_bytes(),
            &mut found,
        );
        assert_eq!(found, vec![]);
        s.feed(b"--Xy", &mut found);
        assert_eq!(found, vec![]);
        s.feed(b"Z--xxxxxxxx", &mut found);
        assert_eq!(found, vec![method_index("PUT")]);
        s.feed(&[b'x'; 1000], &mut found);
        s.finish(&mut found);
        assert_eq!(found, vec![method_index("PUT")]);
    }

    #[test]
    fn long_values_and_crowded_blocks_are_unknown_verbs() {
        let long = part(
            r#"Content-Disposition: form-data; name="_method""#,
            &"A".repeat(200),
        );
        assert_eq!(scan(CT, long.as_bytes(), 0), vec![None]);
        let two_lines = part(
            r#"Content-Disposition: form-data; name="_method""#,
            "DEL\r\nETE",
        );
        assert_eq!(
            scan(CT, format!("{two_lines}--XyZ--").as_bytes(), 0),
            vec![None]
        );
        let huge_headers = part(
            &format!(
                "X-Pad: {}\r\nContent-Disposition: form-data; name=\"a\"",
                "p".repeat(HEADERS_CAP)
            ),
            "DELETE",
        );
        assert_eq!(
            scan(CT, huge_headers.as_bytes(), 0),
            vec![method_index("DELETE")]
        );
        let crowded = part(&"Content-Disposition: x; name=a".repeat(40), "DELETE");
        assert_eq!(
            scan(CT, crowded.as_bytes(), 0),
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
            part(
                r#"Content-Disposition: form-data; name="file"; filename="a.bin""#,
                &file
            )
        );
        assert_eq!(scan(CT, body.as_bytes(), 100_000), vec![]);
    }
}
