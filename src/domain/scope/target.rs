//! Request-target canonicalization: owns the single spelling of a request path that the scope
//! matcher compares, and the refusal of every target that an upstream could read differently.
//!
//! Why refuse instead of "fixing" a path: the gateway authorizes one reading of the target and
//! the upstream acts on its own reading. Any construct whose reading differs between servers (dot
//! segments, encoded slashes and backslashes, double encoding, path parameters, raw non-ASCII) is
//! a way to be authorized for `/pub/x` and served `/admin`. So such targets are refused (400) and
//! only unambiguous targets are normalized (RFC 3986 §6.2.2: hex case, unreserved characters).

use std::borrow::Cow;
use std::fmt;

/// A canonical origin-form request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Canonical path: starts with `/`, no dot or empty segments (a single trailing slash is
    /// kept), percent-encodings only where needed and with uppercase hex. Borrowed from the input
    /// when it was already canonical, so the common request costs no allocation.
    pub path: Cow<'a, str>,
    /// Everything after the first `?`, byte-for-byte (never decoded: the matcher does not look
    /// at it and the upstream must see exactly what the client sent). `Some("")` for a bare `?`.
    pub query: Option<&'a str>,
}

/// Why a request target was refused.
///
/// One variant per reason so logs and the `explain` command can say precisely what was wrong
/// without ever echoing the target itself (it may carry credentials in its query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetError {
    /// The path does not start with `/` (empty, asterisk-form, absolute-form, query-only...).
    NotOriginForm,
    /// Raw control byte (0x00-0x1F, 0x7F) in the path.
    ControlByte,
    /// Raw space, `<`, `>`, `^` or backtick in the path: never valid in a request target.
    DisallowedByte,
    /// Raw `\` in the path: some servers treat it as a separator.
    RawBackslash,
    /// Raw `#` in the path: a fragment never belongs in a request target.
    RawHash,
    /// Raw `;` in the path: path parameters are stripped by some servers (`..;/` tricks).
    RawSemicolon,
    /// Raw byte >= 0x80 in the path: must be percent-encoded to have one spelling.
    NonAscii,
    /// `%` not followed by two hex digits.
    BadPercentEncoding,
    /// `%2F`: an encoded separator is read as a separator by some servers.
    EncodedSlash,
    /// `%5C`: an encoded backslash is read as a separator by some servers.
    EncodedBackslash,
    /// `%25`: double encoding lets a second decoding pass change the path.
    EncodedPercent,
    /// `%3B`: an upstream that decodes before stripping `;parameters` would read
    /// `/a/..%3B` as `/a/..`.
    EncodedSemicolon,
    /// Encoded control byte (`%00`-`%1F`, `%7F`): truncation and header-injection tricks.
    EncodedControl,
    /// Encoded bytes >= 0x80 that are not valid UTF-8 (stray, truncated, overlong, surrogate).
    InvalidUtf8,
    /// A `.` or `..` segment (literal or encoded), or one made only of dots and spaces (`.. `,
    /// `. .`, which Windows trims to a dot segment): servers disagree on resolving it.
    DotSegment,
    /// An empty segment (`//`), other than a single trailing slash, or one made only of
    /// invisible characters: servers disagree on merging.
    EmptySegment,
    /// A segment ending in `.` or a space: Windows drops them, so `Items.` is read as `Items`.
    TrailingDotOrSpace,
    /// An encoded character that Unicode NFKC or Windows best-fit folds to ASCII (fullwidth
    /// `．／＼`, leaders `‥` `․`, small reverse solidus, no-break spaces, fullwidth letters...).
    CompatibilityCharacter,
    /// An encoded non-ASCII character while the operator accepts ASCII paths only.
    NonAsciiRefused,
    /// Control byte or space in the query: would corrupt the forwarded request line.
    QueryControlByte,
    /// Raw byte >= 0x80 in the query.
    QueryNonAscii,
    /// `#` in the query: a fragment never belongs in a request target.
    QueryHash,
}

impl TargetError {
    /// Short, static reason text; never contains any part of the input.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::NotOriginForm => "request target is not origin-form (path must start with `/`)",
            Self::ControlByte => "control byte in path",
            Self::DisallowedByte => "space, `<`, `>`, `^` or backtick in path",
            Self::RawBackslash => "raw `\\` in path",
            Self::RawHash => "raw `#` in path",
            Self::RawSemicolon => "raw `;` in path",
            Self::NonAscii => "raw non-ASCII byte in path (percent-encode it)",
            Self::BadPercentEncoding => "`%` not followed by two hex digits",
            Self::EncodedSlash => "encoded slash (%2F) in path",
            Self::EncodedBackslash => "encoded backslash (%5C) in path",
            Self::EncodedPercent => "encoded percent sign (%25) in path",
            Self::EncodedSemicolon => "encoded semicolon (%3B) in path",
            Self::EncodedControl => "encoded control byte in path",
            Self::InvalidUtf8 => "percent-encoded bytes are not valid UTF-8",
            Self::DotSegment => "`.` or `..` segment (or one of only dots and spaces) in path",
            Self::EmptySegment => "empty segment (`//`) in path",
            Self::TrailingDotOrSpace => "path segment ends in `.` or a space",
            Self::CompatibilityCharacter => {
                "character that Unicode (NFKC) or Windows best-fit folds to ASCII in path"
            }
            Self::NonAsciiRefused => "non-ASCII character in path (refuse_non_ascii_paths is on)",
            Self::QueryControlByte => "control byte or space in query",
            Self::QueryNonAscii => "raw non-ASCII byte in query",
            Self::QueryHash => "`#` in query",
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TargetError {}

/// Operator choices that make canonicalization stricter than the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// Refuse every percent-encoded non-ASCII character (`refuse_non_ascii_paths: true`), for
    /// upstreams that fold letters in ways no table here covers (case mapping, transliteration).
    pub refuse_non_ascii: bool,
}

/// Canonicalizes with the default options; see [`canonicalize_with`].
pub fn canonicalize(path_and_query: &str) -> Result<Target<'_>, TargetError> {
    canonicalize_with(path_and_query, TargetOptions::default())
}

/// Canonicalizes the path-and-query of an origin-form request target, or says why it must be
/// refused.
///
/// Total on any `&str`: it is fed both by the HTTP parser (which already rejected some bytes)
/// and by the `explain` CLI with user-typed input, so it re-checks everything itself.
/// When several problems are present, the first one found scanning the path left to right is
/// reported; segment problems (dot, empty, Unicode folding) are reported after byte-level ones,
/// the query last.
pub fn canonicalize_with(
    path_and_query: &str,
    options: TargetOptions,
) -> Result<Target<'_>, TargetError> {
    let (path, query) = match path_and_query.bytes().position(|b| b == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    if !path.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let path = if plain_and_simple(path) {
        Cow::Borrowed(path)
    } else {
        let path = normalize_path(path)?;
        check_segments(&path, options)?;
        path
    };
    if let Some(query) = query {
        check_query(query)?;
    }
    Ok(Target { path, query })
}

/// The usual path in one pass: only plain bytes (no `%` to decode) and no segment that is
/// empty (but the last), a dot segment or ends in a dot. Such a path is canonical as it is
/// and passes [`check_segments`]; any other goes through both passes.
fn plain_and_simple(path: &str) -> bool {
    let mut previous = b'/';
    for &b in path.as_bytes().iter().skip(1) {
        if !PLAIN_PATH_BYTE[usize::from(b)] || (b == b'/' && matches!(previous, b'/' | b'.')) {
            return false;
        }
        previous = b;
    }
    previous != b'.'
}

/// Byte-level pass over the path: validates raw bytes and percent-encodings and applies the
/// RFC 3986 normalizations. Allocates only once something actually has to be rewritten.
fn normalize_path(path: &str) -> Result<Cow<'_, str>, TargetError> {
    let bytes = path.as_bytes();
    // The usual path is plain bytes only: one table lookup each, then borrowed as it is.
    // The loop below starts at the first byte that needs a closer look.
    let plain = bytes
        .iter()
        .take_while(|&&b| PLAIN_PATH_BYTE[usize::from(b)])
        .count();
    if plain == bytes.len() {
        return Ok(Cow::Borrowed(path));
    }
    // Lazily created copy of the output; `None` while the output equals the input so far.
    let mut out: Option<String> = None;
    let mut i = plain;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            check_raw_path_byte(b)?;
            if let Some(out) = out.as_mut() {
                out.push(char::from(b));
            }
            i += 1;
            continue;
        }
        let value = decode_at(bytes, i)?;
        match value {
            b'/' => return Err(TargetError::EncodedSlash),
            b'\\' => return Err(TargetError::EncodedBackslash),
            b'%' => return Err(TargetError::EncodedPercent),
            b';' => return Err(TargetError::EncodedSemicolon),
            0x00..=0x1F | 0x7F => return Err(TargetError::EncodedControl),
            v if is_unreserved(v) => {
                // Always a change: the input spelled it encoded.
                output(&mut out, path, i).push(char::from(v));
                i += 3;
            }
            0x80..=0xFF => {
                let (seq, len) = utf8_sequence(bytes, i, value)?;
                let span = 3 * len;
                if out.is_some() || has_lowercase(bytes, i, span) {
                    let out = output(&mut out, path, i);
                    for &byte in seq.iter().take(len) {
                        push_encoded(out, byte);
                    }
                }
                i += span;
            }
            v => {
                if out.is_some() || has_lowercase(bytes, i, 3) {
                    push_encoded(output(&mut out, path, i), v);
                }
                i += 3;
            }
        }
    }
    Ok(match out {
        Some(owned) => Cow::Owned(owned),
        None => Cow::Borrowed(path),
    })
}

/// Path bytes that stand for themselves: every byte [`check_raw_path_byte`] accepts
/// except `%`, which starts an encoding. A table, so the common path costs a lookup a byte.
static PLAIN_PATH_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = !matches!(
            b as u8,
            0x00..=0x1F | 0x7F | 0x80..=0xFF | b' ' | b'<' | b'>' | b'^' | b'`' | b'\\' | b'#' | b';' | b'%'
        );
        b += 1;
    }
    table
};

/// Raw (unencoded) path bytes that are refused. `?` cannot occur: it ends the path.
fn check_raw_path_byte(b: u8) -> Result<(), TargetError> {
    match b {
        0x00..=0x1F | 0x7F => Err(TargetError::ControlByte),
        b' ' | b'<' | b'>' | b'^' | b'`' => Err(TargetError::DisallowedByte),
        b'\\' => Err(TargetError::RawBackslash),
        b'#' => Err(TargetError::RawHash),
        b';' => Err(TargetError::RawSemicolon),
        0x80..=0xFF => Err(TargetError::NonAscii),
        _ => Ok(()),
    }
}

/// The output buffer, created on the first rewrite with the (unchanged) input before `at`.
fn output<'o>(out: &'o mut Option<String>, src: &str, at: usize) -> &'o mut String {
    out.get_or_insert_with(|| {
        let mut s = String::with_capacity(src.len());
        // `at` indexes an ASCII `%`, which is always a char boundary.
        s.push_str(&src[..at]);
        s
    })
}

/// RFC 3986 unreserved characters: the only ones whose encoded and literal forms are
/// equivalent, so decoding them is a pure normalization.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hex digit, either case.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the `%XX` starting at `i` (where `bytes[i] == b'%'`).
fn decode_at(bytes: &[u8], i: usize) -> Result<u8, TargetError> {
    let hi = bytes.get(i + 1).copied().and_then(hex_value);
    let lo = bytes.get(i + 2).copied().and_then(hex_value);
    match (hi, lo) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(TargetError::BadPercentEncoding),
    }
}

/// Whether the already validated encoded span `bytes[i..i + len]` uses lowercase hex.
fn has_lowercase(bytes: &[u8], i: usize, len: usize) -> bool {
    bytes
        .get(i..i + len)
        .is_some_and(|span| span.iter().any(u8::is_ascii_lowercase))
}

fn push_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

/// Reads one encoded UTF-8 character whose lead byte `lead` was encoded at `i`; every byte of
/// it must be percent-encoded. Validity is decided by `str::from_utf8`, which rejects overlong
/// forms, surrogates and values above U+10FFFF, so no hand-written table can drift from std.
fn utf8_sequence(bytes: &[u8], i: usize, lead: u8) -> Result<([u8; 4], usize), TargetError> {
    let len = match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return Err(TargetError::InvalidUtf8),
    };
    let mut seq = [lead, 0, 0, 0];
    for (k, slot) in seq.iter_mut().enumerate().take(len).skip(1) {
        let at = i + 3 * k;
        if bytes.get(at) != Some(&b'%') {
            return Err(TargetError::InvalidUtf8);
        }
        *slot = decode_at(bytes, at)?;
    }
    match std::str::from_utf8(&seq[..len]) {
        Ok(_) => Ok((seq, len)),
        Err(_) => Err(TargetError::InvalidUtf8),
    }
}

/// Segment pass over the canonical path: no `.`/`..` and no empty segment except one trailing,
/// then each segment, percent-decoded, through the Unicode folding rules of [`super::fold`].
fn check_segments(path: &str, options: TargetOptions) -> Result<(), TargetError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(());
    }
    // One pass over the bytes (no per-segment searches): a segment ends at each `/` and at
    // the end, and is looked at closer only when it is empty, dots, or holds a `%`.
    let bytes = rest.as_bytes();
    let mut decoded = String::new();
    let mut start = 0;
    let mut escaped = false;
    for end in 0..=bytes.len() {
        match bytes.get(end) {
            Some(b'%') => escaped = true,
            Some(b'/') | None => {
                let last = end == bytes.len();
                match &bytes[start..end] {
                    b"" if !last => return Err(TargetError::EmptySegment),
                    b"" => {}
                    b"." | b".." => return Err(TargetError::DotSegment),
                    // The common segment: plain ASCII that does not end in a dot (spaces are
                    // encoded, so a raw one cannot occur); only an all-dots one is left to
                    // refuse.
                    segment if !escaped && segment.last() != Some(&b'.') => {}
                    _ => {
                        decode_segment(&rest[start..end], &mut decoded)?;
                        super::fold::check_segment(&decoded, options.refuse_non_ascii)?;
                    }
                }
                start = end + 1;
                escaped = false;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Percent-decodes one canonical segment into `out` (cleared first). The byte-level pass
/// already checked every `%XX` and that encoded bytes form UTF-8, so failure is not expected;
/// it is still reported as invalid rather than trusted.
fn decode_segment(segment: &str, out: &mut String) -> Result<(), TargetError> {
    let bytes = segment.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            raw.push(decode_at(bytes, i)?);
            i += 3;
        } else {
            raw.push(b);
            i += 1;
        }
    }
    out.clear();
    out.push_str(std::str::from_utf8(&raw).map_err(|_| TargetError::InvalidUtf8)?);
    Ok(())
}

/// The query is forwarded verbatim, so only bytes that would corrupt the request line or that
/// have no business in a target are refused.
fn check_query(query: &str) -> Result<(), TargetError> {
    for &b in query.as_bytes() {
        match b {
            0x00..=0x20 | 0x7F => return Err(TargetError::QueryControlByte),
            0x80..=0xFF => return Err(TargetError::QueryNonAscii),
            b'#' => return Err(TargetError::QueryHash),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TargetError::*;
    use super::*;

    #[test]
    fn plain_byte_table_agrees_with_the_byte_check() {
        for b in 0..=255u8 {
            let plain = check_raw_path_byte(b).is_ok() && b != b'%';
            assert_eq!(PLAIN_PATH_BYTE[usize::from(b)], plain, "byte {b:#04x}");
        }
    }

    /// (input, canonical path, query, borrowed)
    const ACCEPTED: &[(&str, &str, Option<&str>, bool)] = &[
        ("/", "/", None, true),
        ("/a/b", "/a/b", None, true),
        ("/a/", "/a/", None, true),
        ("/a/b/", "/a/b/", None, true),
        ("/A/b", "/A/b", None, true),
        ("/a/..b/.c", "/a/..b/.c", None, true),
        ("/.a/a.b/..a", "/.a/a.b/..a", None, true),
        ("/\"{}|!$&'()*+,=:@[]", "/\"{}|!$&'()*+,=:@[]", None, true),
        // query split
        ("/a?x=1", "/a", Some("x=1"), true),
        ("/a?", "/a", Some(""), true),
        ("/?", "/", Some(""), true),
        ("/a?b?c", "/a", Some("b?c"), true),
        (
            "/a?x=%zz&y=%2F&p=;\\",
            "/a",
            Some("x=%zz&y=%2F&p=;\\"),
            true,
        ),
        ("/a?x=..%2e/../", "/a", Some("x=..%2e/../"), true),
        // unreserved characters are decoded
        ("/%61%62", "/ab", None, false),
        ("/%41%5A%7A%30%39", "/AZz09", None, false),
        ("/a%2db%5Fc%7e", "/a-b_c~", None, false),
        ("/a%2Eb", "/a.b", None, false),
        ("/%2e%2e%2ex", "/...x", None, false),
        ("/x/%2E%2Ea", "/x/..a", None, false),
        ("/%61/?q=%61", "/a/", Some("q=%61"), false),
        // other bytes stay encoded with uppercase hex
        ("/a%3Ab", "/a%3Ab", None, true),
        ("/a%3ab", "/a%3Ab", None, false),
        ("/%20%40%3F%23%2B%26", "/%20%40%3F%23%2B%26", None, true),
        ("/%3f%23%2b", "/%3F%23%2B", None, false),
        ("/%7b%7D", "/%7B%7D", None, false),
        // valid UTF-8 stays encoded, uppercase
        ("/%C3%A9", "/%C3%A9", None, true),
        ("/%c3%a9", "/%C3%A9", None, false),
        ("/%e2%82%ac/x", "/%E2%82%AC/x", None, false),
        ("/%F0%9F%98%80", "/%F0%9F%98%80", None, true),
        ("/%f4%8f%bf%bf", "/%F4%8F%BF%BF", None, false),
        ("/%C3%A9%C3%A9a", "/%C3%A9%C3%A9a", None, true),
        // a rewrite before keeps later tokens
        ("/%61%3A%C3%A9b", "/a%3A%C3%A9b", None, false),
        // non-ASCII that no Unicode fold turns into ASCII, spaces inside a segment
        ("/Jos%C3%A9/%E6%97%A5", "/Jos%C3%A9/%E6%97%A5", None, true),
        ("/Jose%CC%81", "/Jose%CC%81", None, true),
        ("/a%20b", "/a%20b", None, true),
        ("/a%E3%80%82b", "/a%E3%80%82b", None, true),
    ];

    const REFUSED: &[(&str, TargetError)] = &[
        ("", NotOriginForm),
        ("a/b", NotOriginForm),
        ("*", NotOriginForm),
        ("?a", NotOriginForm),
        ("#a", NotOriginForm),
        ("http://h/a", NotOriginForm),
        ("%2Fa", NotOriginForm),
        // raw bytes
        ("/a\\b", RawBackslash),
        ("/a#b", RawHash),
        ("/a;b", RawSemicolon),
        ("/..;/a", RawSemicolon),
        ("/\u{e9}", NonAscii),
        ("/a\u{0}", ControlByte),
        ("/a\tb", ControlByte),
        ("/a\r\nb", ControlByte),
        ("/a\u{1f}", ControlByte),
        ("/a\u{7f}", ControlByte),
        ("/a b", DisallowedByte),
        ("/a<b", DisallowedByte),
        ("/a>b", DisallowedByte),
        ("/a^b", DisallowedByte),
        ("/a`b", DisallowedByte),
        // percent syntax
        ("/%", BadPercentEncoding),
        ("/a%2", BadPercentEncoding),
        ("/%zz", BadPercentEncoding),
        ("/%2g", BadPercentEncoding),
        ("/%%41", BadPercentEncoding),
        ("/%\u{e9}", BadPercentEncoding),
        ("/% 1", BadPercentEncoding),
        ("/%+1", BadPercentEncoding),
        // refused encoded bytes
        ("/a%2fb", EncodedSlash),
        ("/a%2Fb", EncodedSlash),
        ("/a%5cb", EncodedBackslash),
        ("/a%5Cb", EncodedBackslash),
        ("/a%25b", EncodedPercent),
        ("/%252e%252e", EncodedPercent),
        ("/x/..%3B/y", EncodedSemicolon),
        ("/a%3bb", EncodedSemicolon),
        ("/%00", EncodedControl),
        ("/%0a", EncodedControl),
        ("/%0D%0A", EncodedControl),
        ("/%1F", EncodedControl),
        ("/%7f", EncodedControl),
        // UTF-8
        ("/%80", InvalidUtf8),
        ("/%BF", InvalidUtf8),
        ("/%c3", InvalidUtf8),
        ("/%c3a", InvalidUtf8),
        ("/%c3%41", InvalidUtf8),
        ("/%C3%A9%A9", InvalidUtf8),
        ("/%C0%AF", InvalidUtf8),
        ("/%C1%81", InvalidUtf8),
        ("/%E0%80%AF", InvalidUtf8),
        ("/%F0%80%80%AF", InvalidUtf8),
        ("/%ED%A0%80", InvalidUtf8),
        ("/%F4%90%80%80", InvalidUtf8),
        ("/%F8%88%80%80%80", InvalidUtf8),
        ("/%FF", InvalidUtf8),
        ("/%E2%82", InvalidUtf8),
        ("/%E2%82/", InvalidUtf8),
        ("/%c3%zz", BadPercentEncoding),
        // dot segments
        ("/.", DotSegment),
        ("/..", DotSegment),
        ("/./a", DotSegment),
        ("/a/.", DotSegment),
        ("/a/./", DotSegment),
        ("/a/../b", DotSegment),
        ("/a/..", DotSegment),
        ("/a/../", DotSegment),
        ("/%2e", DotSegment),
        ("/%2E%2e", DotSegment),
        ("/.%2e/a", DotSegment),
        ("/a/%2e.", DotSegment),
        ("/a/..?x", DotSegment),
        // only dots and spaces (Windows trims trailing ones), or only invisible characters
        ("/...", DotSegment),
        ("/%2e%2e%2e", DotSegment),
        ("/a/..%20/b", DotSegment),
        ("/a/.%20./b", DotSegment),
        ("/a/%20../b", DotSegment),
        ("/a/..%E2%80%8B/b", DotSegment),
        ("/a/%E2%80%8B/b", EmptySegment),
        // trailing dot or space
        ("/a.", TrailingDotOrSpace),
        ("/a/Items./x", TrailingDotOrSpace),
        ("/a/Items%2E", TrailingDotOrSpace),
        ("/a/Items%20", TrailingDotOrSpace),
        ("/a/%20", TrailingDotOrSpace),
        // Unicode compatibility forms (NFKC) and Windows best-fit
        ("/a/%EF%BC%8E%EF%BC%8E/b", CompatibilityCharacter),
        ("/a/%ef%bc%8f", CompatibilityCharacter),
        ("/a/x%EF%BC%BCy", CompatibilityCharacter),
        ("/a/%E2%80%A5/b", CompatibilityCharacter),
        ("/a/%E2%80%A4%E2%80%A4/b", CompatibilityCharacter),
        ("/a/%EF%B9%A8", CompatibilityCharacter),
        ("/a/%EF%BC%85%32%65", CompatibilityCharacter),
        ("/a/..%EF%BC%9B/b", CompatibilityCharacter),
        ("/a/%C2%A5..", CompatibilityCharacter),
        ("/a/..%E2%88%95b", CompatibilityCharacter),
        ("/a/..%C2%A0", CompatibilityCharacter),
        ("/a/%EF%BD%81dmin", CompatibilityCharacter),
        // empty segments
        ("//", EmptySegment),
        ("//a", EmptySegment),
        ("/a//b", EmptySegment),
        ("/a//", EmptySegment),
        ("/a///", EmptySegment),
        ("///", EmptySegment),
        // query
        ("/a?x\u{1}", QueryControlByte),
        ("/a?x y", QueryControlByte),
        ("/a?x\ty", QueryControlByte),
        ("/a?\u{7f}", QueryControlByte),
        ("/a?\u{e9}", QueryNonAscii),
        ("/a?x#y", QueryHash),
        ("/a??#", QueryHash),
    ];

    #[test]
    fn the_one_pass_path_agrees_with_the_two_passes() {
        let extra = [
            "/",
            "/a",
            "/a/",
            "/a//",
            "//",
            "/a/.",
            "/a./b",
            "/a/b.",
            "/.a",
            "/..a/",
            "/a/../b",
            "/a%2e/b",
            "/a/b%41",
            "/a b",
            "/a/\\b",
            "/a;b/c.d/e",
        ];
        let inputs = ACCEPTED
            .iter()
            .map(|a| a.0)
            .chain(REFUSED.iter().map(|r| r.0))
            .chain(extra);
        for input in inputs {
            let path = input.split('?').next().unwrap_or_default();
            if !path.starts_with('/') || !plain_and_simple(path) {
                continue;
            }
            let normalized = normalize_path(path).expect(input);
            assert!(
                matches!(normalized, Cow::Borrowed(p) if p == path),
                "{input}"
            );
            assert_eq!(
                check_segments(path, TargetOptions::default()),
                Ok(()),
                "{input}"
            );
        }
    }

    #[test]
    fn accepted_targets_are_normalized() {
        for &(input, path, query, borrowed) in ACCEPTED {
            let t = canonicalize(input).unwrap_or_else(|e| panic!("{input:?} refused: {e}"));
            assert_eq!(t.path, path, "path of {input:?}");
            assert_eq!(t.query, query, "query of {input:?}");
            assert_eq!(
                matches!(t.path, Cow::Borrowed(_)),
                borrowed,
                "borrowed-ness of {input:?}"
            );
        }
    }

    #[test]
    fn canonical_outputs_are_fixed_points() {
        for &(input, _, _, _) in ACCEPTED {
            let Ok(t) = canonicalize(input) else {
                panic!("{input:?} refused")
            };
            let again = canonicalize(&t.path).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(again.path, t.path);
            assert!(matches!(again.path, Cow::Borrowed(_)), "{input:?}");
        }
    }

    #[test]
    fn refused_targets_name_the_reason() {
        for &(input, expected) in REFUSED {
            assert_eq!(canonicalize(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn every_reason_is_covered_by_the_table() {
        let all = [
            NotOriginForm,
            ControlByte,
            DisallowedByte,
            RawBackslash,
            RawHash,
            RawSemicolon,
            NonAscii,
            BadPercentEncoding,
            EncodedSlash,
            EncodedBackslash,
            EncodedPercent,
            EncodedSemicolon,
            EncodedControl,
            InvalidUtf8,
            DotSegment,
            EmptySegment,
            TrailingDotOrSpace,
            CompatibilityCharacter,
            QueryControlByte,
            QueryNonAscii,
            QueryHash,
        ];
        for reason in all {
            assert!(REFUSED.iter().any(|&(_, r)| r == reason), "{reason:?}");
            assert!(!reason.to_string().is_empty());
        }
    }

    #[test]
    fn display_never_echoes_the_input() {
        for &(input, _) in REFUSED {
            let secret = format!("{input}?token=SECRETSECRET");
            if let Err(e) = canonicalize(&secret) {
                let text = e.to_string();
                assert!(!text.contains("SECRETSECRET"), "{text}");
                assert!(
                    input.len() < 4 || !text.contains(input),
                    "{text} echoes {input:?}"
                );
            }
        }
    }

    #[test]
    fn non_ascii_can_be_refused_altogether() {
        let strict = TargetOptions {
            refuse_non_ascii: true,
        };
        assert_eq!(
            canonicalize_with("/Jos%C3%A9", strict),
            Err(NonAsciiRefused)
        );
        assert!(canonicalize_with("/Jose?q=%C3%A9", strict).is_ok());
        assert!(canonicalize("/Jos%C3%A9").is_ok());
    }

    #[test]
    fn fast_path_does_not_allocate_for_long_canonical_paths() {
        let long = "/seg".repeat(1000) + "/%3A%C3%A9/";
        let t = canonicalize(&long).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(t.path, Cow::Borrowed(_)));
    }
}
