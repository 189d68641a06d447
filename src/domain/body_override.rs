//! Method overrides carried in a request body. Rack's `MethodOverride` (Rails), Symfony and
//! Laravel, and Express's `method-override` read `_method` from a POST's parameters: a
//! form-encoded or multipart body, and in Laravel a JSON body's top-level `_method`. A
//! token granted POST but not DELETE could otherwise DELETE by posting `_method=DELETE`,
//! so an override found in a body must be granted like one in the query.
//!
//! The scan is incremental: the gateway feeds it the body as it arrives (whole for a small
//! body, which is decided before anything is forwarded; frame by frame past that, holding
//! back the last frame until the scan is done, so an upstream never receives a complete
//! request that carried an override outside the scopes). It reads every way some framework
//! could: which parsers run is decided from the `Content-Type` fields generously rather
//! than exactly, because a parameter the gateway misses is a bypass and one it reads too
//! many is at worst a refusal.

mod form;
mod json;
mod multipart;

use http::header::CONTENT_TYPE;
use http::HeaderMap;

use crate::domain::model::{method_index, MethodSet};

/// At most this many overrides are kept; more counts as an ungrantable one (as for the
/// query).
const MAX_FOUND: usize = 8;

/// An incremental scan of one request body for method overrides.
#[derive(Debug)]
pub struct BodyOverrideScan {
    form: Option<form::FormScan>,
    multipart: Option<multipart::MultipartScan>,
    json: Option<json::JsonScan>,
    /// Methods named; `None` entries are unknown verbs or parts that could not be read.
    found: Vec<Option<u8>>,
    /// The body ended (`finish` ran).
    finished: bool,
    /// The body is compressed, in a charset other than ASCII's supersets, or under several
    /// `Content-Type` fields: whatever it names is unknown.
    unreadable: bool,
}

impl BodyOverrideScan {
    /// The scan for a body with these header fields; `None` when no framework reads
    /// parameters from it (an octet stream, plain text, an image...).
    ///
    /// - no `Content-Type`: Rack parses a POST body without one as a form;
    /// - `application/x-www-form-urlencoded`: every form parser;
    /// - `multipart/*`: Rack parses any multipart body, PHP `multipart/form-data`;
    /// - `json` anywhere in the field: Laravel treats a `Content-Type` containing `/json` or
    ///   `+json` as JSON, whatever else it says.
    pub fn for_headers(headers: &HeaderMap) -> Option<BodyOverrideScan> {
        let mut scan = BodyOverrideScan {
            form: None,
            multipart: None,
            json: None,
            found: Vec::new(),
            finished: false,
            unreadable: false,
        };
        let mut any_type = false;
        let mut fields = 0;
        for value in headers.get_all(CONTENT_TYPE) {
            fields += 1;
            let text = value.as_bytes().to_ascii_lowercase();
            // Rack and PHP end the media type at `;` or `,` (PHP at a space too).
            let media = text
                .trim_ascii_start()
                .split(|&b| matches!(b, b';' | b',') || b.is_ascii_whitespace())
                .next()
                .unwrap_or(&[]);
            // An empty field is no type: Rack reads the body as a form.
            any_type |= !media.is_empty();
            if media == b"application/x-www-form-urlencoded" {
                scan.form.get_or_insert_with(form::FormScan::default);
            }
            if media.starts_with(b"multipart/") {
                // The boundary keeps its case: it is read from the field as sent.
                scan.multipart = Some(multipart::MultipartScan::new(multipart::boundary(
                    value.as_bytes(),
                )));
            }
            if text.windows(4).any(|w| w == b"json") {
                scan.json.get_or_insert_with(json::JsonScan::default);
            }
        }
        if !any_type {
            scan.form = Some(form::FormScan::default());
        }
        let read = scan.form.is_some() || scan.multipart.is_some() || scan.json.is_some();
        // Some stacks (Apache's input DEFLATE filter) decode a compressed body before the
        // application parses it, and Express's body-parser decodes UTF-16 and other
        // charsets: the gateway cannot read such a body, so it may name any method. With
        // several `Content-Type` fields, Node reads the first, Apache joins them.
        scan.unreadable = read
            && (encoded(headers)
                || fields > 1
                || headers
                    .get_all(CONTENT_TYPE)
                    .iter()
                    .any(|v| !ascii_compatible_charset(v.as_bytes())));
        read.then_some(scan)
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.finished {
            return;
        }
        let found = &mut self.found;
        if let Some(f) = self.form.as_mut() {
            f.feed(bytes, found);
        }
        if let Some(m) = self.multipart.as_mut() {
            m.feed(bytes, found);
        }
        if let Some(j) = self.json.as_mut() {
            j.feed(bytes, found);
        }
        Self::bound(found);
    }

    /// The body ended: whatever was still open (the last form pair, an unterminated part)
    /// is judged as it stands.
    /// Runs once: trailers end a body before its end is polled.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let found = &mut self.found;
        if let Some(f) = self.form.as_mut() {
            f.finish(found);
        }
        if let Some(m) = self.multipart.as_mut() {
            m.finish(found);
        }
        Self::bound(found);
    }

    /// Whether nothing the rest of the body holds can change the verdict: only a JSON
    /// scan ran, and its top-level value has ended (what follows, as in NDJSON, makes the
    /// body invalid JSON to every framework). The rest then streams untouched.
    pub fn exhausted(&self) -> bool {
        self.form.is_none()
            && self.multipart.is_none()
            && self.json.as_ref().is_none_or(|j| j.done())
    }

    /// Whether an override's value is being read: the bytes so far must not reach an
    /// upstream as a whole body, since a body cut short there (`_method=PUTX` ending at
    /// `PUT`) could read as another method. Open for at most a method's length.
    pub fn override_open(&self) -> bool {
        self.form.as_ref().is_some_and(|f| f.override_open())
            || self.multipart.as_ref().is_some_and(|m| m.override_open())
            || self.json.as_ref().is_some_and(|j| j.override_open())
    }

    /// Whether the body cannot be read with certainty (compressed, a charset such as
    /// UTF-16, several `Content-Type` fields): it may name any method.
    pub fn unreadable(&self) -> bool {
        self.unreadable
    }

    /// Whether the body named an override so far, or cannot be read: only then do the
    /// grants matter.
    pub fn names_any(&self) -> bool {
        self.unreadable || !self.found.is_empty()
    }

    /// Whether an override found so far is not in `granted` (unknown verbs never are). A
    /// body that cannot be read may name any method an override can turn a request into
    /// (Rack's list, less its WebDAV verbs): only a token granted all of them may send it.
    pub fn violates(&self, granted: MethodSet) -> bool {
        const ANY_OVERRIDE: [&str; 7] =
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        if self.unreadable
            && !ANY_OVERRIDE
                .iter()
                .filter_map(|m| method_index(m))
                .all(|i| granted.contains(i))
        {
            return true;
        }
        self.found
            .iter()
            .any(|m| !m.is_some_and(|i| granted.contains(i)))
    }

    /// The overrides found so far.
    pub fn found(&self) -> &[Option<u8>] {
        &self.found
    }

    fn bound(found: &mut Vec<Option<u8>>) {
        if found.len() > MAX_FOUND {
            found.truncate(MAX_FOUND);
            found.push(None);
        }
    }
}

/// Whether a `Content-Type` field's `charset` (if any) writes ASCII as ASCII, so that
/// `_method` reads as the gateway reads it: UTF-8, ASCII, Latin-1; not UTF-16, UTF-32 or
/// UTF-7.
fn ascii_compatible_charset(field: &[u8]) -> bool {
    const KEY: &[u8] = b"charset=";
    let lower = field.to_ascii_lowercase();
    let Some(at) = lower.windows(KEY.len()).position(|w| w == KEY) else {
        return true;
    };
    let value = &lower[at + KEY.len()..];
    let value = value.strip_prefix(b"\"").unwrap_or(value);
    let end = value
        .iter()
        .position(|&b| matches!(b, b'"' | b';' | b',') || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    matches!(
        &value[..end],
        b"utf-8" | b"utf8" | b"us-ascii" | b"ascii" | b"iso-8859-1" | b"latin1" | b"windows-1252"
    )
}

/// Whether the body carries a `Content-Encoding` other than `identity`.
fn encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|coding| {
            let coding = coding.trim_ascii();
            !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(content_type: Option<&str>, chunks: &[&[u8]]) -> Option<Vec<Option<u8>>> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, ct.parse().unwrap());
        }
        scan_with(headers, chunks)
    }

    fn scan_with(headers: HeaderMap, chunks: &[&[u8]]) -> Option<Vec<Option<u8>>> {
        let mut s = BodyOverrideScan::for_headers(&headers)?;
        for c in chunks {
            s.feed(c);
        }
        s.finish();
        Some(s.found().to_vec())
    }

    fn m(name: &str) -> Option<u8> {
        method_index(name)
    }

    #[test]
    fn which_parsers_run_follows_the_content_type_generously() {
        assert_eq!(scan(None, &[b"_method=DELETE"]), Some(vec![m("DELETE")]));
        assert_eq!(
            scan(
                Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
                &[b"a=1&_method=put"]
            ),
            Some(vec![m("PUT")])
        );
        assert_eq!(
            scan(
                Some("application/vnd.api+json"),
                &[br#"{"_method":"PATCH"}"#]
            ),
            Some(vec![m("PATCH")])
        );
        // Laravel: `/json` anywhere in the field makes the body JSON.
        assert_eq!(
            scan(Some("text/plain; x=/json"), &[br#"{"_method":"DELETE"}"#]),
            Some(vec![m("DELETE")])
        );
        // Rack and PHP end the media type at `,` and PHP at a space; an empty field is
        // no type.
        for ct in [
            "application/x-www-form-urlencoded,text/plain",
            " application/x-www-form-urlencoded x",
            "",
        ] {
            assert_eq!(
                scan(Some(ct), &[b"_method=PUT"]),
                Some(vec![m("PUT")]),
                "{ct}"
            );
        }
        assert!(scan(Some("application/octet-stream"), &[b"_method=DELETE"]).is_none());
        // A charset that does not write ASCII as ASCII cannot be read.
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=UTF-16LE".parse().unwrap(),
        );
        let mut s = BodyOverrideScan::for_headers(&headers).unwrap();
        s.feed(b"{\0}\0");
        s.finish();
        assert!(s.violates(MethodSet::EMPTY));
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=\"utf-8\"".parse().unwrap(),
        );
        assert!(!BodyOverrideScan::for_headers(&headers)
            .unwrap()
            .violates(MethodSet::EMPTY));
        // Several `Content-Type` fields: parsers pick different ones.
        headers.append(
            CONTENT_TYPE,
            "multipart/form-data; boundary=A".parse().unwrap(),
        );
        assert!(BodyOverrideScan::for_headers(&headers)
            .unwrap()
            .violates(MethodSet::EMPTY));
        assert!(scan(Some("text/plain"), &[b"_method=DELETE"]).is_none());
    }

    #[test]
    fn a_compressed_body_of_parameters_cannot_be_judged() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        headers.insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let mut s = BodyOverrideScan::for_headers(&headers).unwrap();
        s.feed(b"\x1f\x8b");
        s.finish();
        let mut most = MethodSet::EMPTY;
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            most.grant(method_index(m).unwrap());
        }
        assert!(s.violates(most));
        most.grant(method_index("OPTIONS").unwrap());
        assert!(!s.violates(most), "nothing an override could add");
        headers.insert(http::header::CONTENT_ENCODING, "identity".parse().unwrap());
        assert_eq!(scan_with(headers.clone(), &[b"{}"]), Some(vec![]));
        // An octet stream is not parameters, compressed or not.
        headers.insert(CONTENT_TYPE, "application/octet-stream".parse().unwrap());
        headers.insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(scan_with(headers, &[b"\x1f\x8b"]), None);
    }

    #[test]
    fn an_override_split_across_frames_is_found() {
        let body = b"a=1&_met%68od=del";
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                scan(None, &[a, b, b"ete"]),
                Some(vec![m("DELETE")]),
                "{cut}"
            );
        }
    }

    #[test]
    fn many_overrides_count_as_an_ungrantable_one() {
        let body = "_method=GET&".repeat(12);
        let found = scan(None, &[body.as_bytes()]).unwrap();
        assert_eq!(found.len(), MAX_FOUND + 1);
        assert_eq!(found.last(), Some(&None));
    }

    #[test]
    fn violations_are_judged_against_the_granted_methods() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let mut s = BodyOverrideScan::for_headers(&headers).unwrap();
        s.feed(br#"{"_method":"DELETE","_METHOD":"nonsense"}"#);
        s.finish();
        let mut granted = MethodSet::EMPTY;
        granted.grant(m("DELETE").unwrap());
        // `NONSENSE` is no method: never grantable.
        assert!(s.violates(granted));
        assert!(s.violates(MethodSet::ALL));
    }
}
