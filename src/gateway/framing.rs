//! Request-framing watch for HTTP/1.1 connections: flags every request head that carries
//! both `Content-Length` and `Transfer-Encoding`, or a raw `#` in its target.
//!
//! hyper resolves such a request itself (RFC 9112 §6.3: the length is dropped, the body
//! read as chunked, the connection closed afterwards), so the service never sees the
//! conflict. SPEC §3 wants these requests refused with 400 and never forwarded, since a
//! peer that reads them the other way is how request smuggling works. This wrapper sits
//! between the socket and hyper, follows the message boundaries of the byte stream
//! (heads, `Content-Length` bodies, chunked bodies) and queues one flag per request head,
//! in order; the service takes one flag per HTTP/1.1 request.
//!
//! It never changes a byte, with one exception below. When it cannot follow the stream
//! (HTTP/2 preface, a head it cannot parse, a framing hyper will reject anyway), it stops
//! watching and queues nothing more: hyper then answers or closes the connection. A head
//! that asks to switch protocols is followed like any other until the service answers it
//! with `101 Switching Protocols` (`FramingFlags::protocol_switched`); then the watch stops.
//!
//! Two things hyper does not do on its own are done here:
//! - h2c prior knowledge: hyper-util's auto builder serves HTTP/2 whenever the connection
//!   starts with the HTTP/2 preface, even when built `http1_only` (its upgrade-capable path
//!   ignores that setting). On a listener where cleartext HTTP/2 is off, the read that would
//!   complete the preface fails instead, and the connection closes unserved.
//! - HTTP/0.9 request lines (`GET /` + CRLF, no version): hyper re-parses a head that arrived
//!   in pieces only once it has seen the blank line that ends a head, which such a client
//!   never sends, so the connection would hang until the header timeout. When a complete
//!   request line without an HTTP version has been seen, the watch appends that blank line
//!   to what hyper reads: hyper then fails the head at the same place it already is invalid
//!   and answers 400 and closes at once. The added bytes can never be read as part of a
//!   request: the head before them is already invalid.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head followed at least; longer ones are hyper's to refuse (431) unless
/// `limits.max_header_bytes` lets hyper take more (see [`HeadLimits`]).
const MAX_HEAD: usize = 64 * 1024;

/// How large a head the watch follows. At least what hyper accepts under the same
/// settings: a head the watch cannot parse makes it stop watching the connection (the
/// module comment), which is safe only when hyper refuses that head too. Were the watch's
/// limits below `limits.max_headers` or `limits.max_header_bytes`, a head with many fields
/// would switch it off, and the heads after it on that connection would go unjudged.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    max_fields: usize,
    max_bytes: usize,
}

impl HeadLimits {
    /// The watch's limits for hyper's `max_headers` and `max_header_bytes`.
    pub fn covering(max_headers: usize, max_header_bytes: usize) -> HeadLimits {
        HeadLimits {
            max_fields: max_headers.max(MAX_HEAD_FIELDS),
            max_bytes: max_header_bytes.max(MAX_HEAD),
        }
    }
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits::covering(0, 0)
    }
}

/// Longest chunk-size or trailer line followed. hyper takes up to 16 KiB of chunk
/// extensions and 16 KiB of trailers per body (its `CHUNKED_EXTENSIONS_LIMIT` and
/// `TRAILER_LIMIT`); a shorter limit here would switch the watch off on a body hyper reads,
/// and leave the heads after it unjudged.
const MAX_CHUNKED_LINE: usize = 64 * 1024;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What ends a head: appended after an HTTP/0.9 request line so hyper parses it now.
const END_OF_HEAD: &[u8] = b"\r\n\r\n";

/// The per-connection queue of "ambiguous framing" flags, one per request head, and
/// whether the connection switched protocols.
#[derive(Debug, Default)]
pub struct FramingFlags {
    queue: Mutex<VecDeque<bool>>,
    switched: AtomicBool,
}

impl FramingFlags {
    /// The flag of the next request, `false` when nothing was queued.
    pub fn next_is_ambiguous(&self) -> bool {
        self.queue
            .lock()
            .map(|mut q| q.pop_front().unwrap_or(false))
            .unwrap_or(false)
    }

    fn push(&self, ambiguous: bool) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(ambiguous);
        }
    }

    /// Told by the service before it answers `101 Switching Protocols`: the watch stops,
    /// since what the client sends next is the new protocol. Until then a head that asks
    /// to switch is followed like any other, so the heads after an upgrade that did not
    /// happen (refused, or `h2c`, which the gateway never passes) are still judged.
    pub fn protocol_switched(&self) {
        self.switched.store(true, Ordering::Release);
    }

    fn switched(&self) -> bool {
        self.switched.load(Ordering::Acquire)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Off,
}

/// Follows HTTP/1.1 message boundaries in the bytes a client sends.
#[derive(Debug)]
struct Tracker {
    state: State,
    /// Bytes of an incomplete head or chunk-size/trailer line.
    partial: Vec<u8>,
    flags: Arc<FramingFlags>,
    seen_any: bool,
    /// Bytes of `END_OF_HEAD` still to hand to hyper (see the module comment).
    inject: usize,
    limits: HeadLimits,
    /// The last head judged asked to switch protocols, and the switch may still come.
    upgrade_pending: bool,
}

impl Tracker {
    /// A tracker at the start of a connection, queueing its flags in `flags`.
    fn new(flags: Arc<FramingFlags>, limits: HeadLimits) -> Tracker {
        Tracker {
            state: State::Head,
            partial: Vec::new(),
            flags,
            seen_any: false,
            inject: 0,
            limits,
            upgrade_pending: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        // After a switch (the service answered 101) the bytes are no longer HTTP/1.1.
        if self.flags.switched() && !matches!(self.state, State::Off) {
            self.state = State::Off;
            self.partial = Vec::new();
        }
        if !self.seen_any && !bytes.is_empty() {
            self.seen_any = true;
            if bytes.starts_with(b"PRI * HTTP/2.0") {
                self.state = State::Off;
            }
        }
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Head => bytes = self.head(bytes),
                State::Body(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if n == take {
                        State::Head
                    } else {
                        State::Body(n - take)
                    };
                }
                State::ChunkSize | State::ChunkDataEnd | State::Trailers => {
                    bytes = self.line(bytes)
                }
                State::ChunkData(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if n == take {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(n - take)
                    };
                }
            }
        }
    }

    /// Consumes bytes of a request head; returns the rest.
    fn head<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        // Blank lines before a request are allowed (RFC 9112 §2.2).
        if self.partial.is_empty() {
            let skip = bytes
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            if skip == bytes.len() {
                return &[];
            }
            // The common case: the whole head arrived in one read. It is judged where it
            // lies; only a head split over reads is copied aside.
            if let Some((len, ambiguous, next, upgrade)) = judge_head(bytes, self.limits.max_fields)
            {
                self.flags.push(ambiguous);
                self.state = next;
                self.upgrade_pending = upgrade;
                return &bytes[len..];
            }
        }
        let start = self.partial.len();
        self.partial.extend_from_slice(bytes);
        if let Some((len, ambiguous, next, upgrade)) =
            judge_head(&self.partial, self.limits.max_fields)
        {
            self.flags.push(ambiguous);
            self.state = next;
            self.upgrade_pending = upgrade;
            let consumed_from_bytes = len.saturating_sub(start);
            self.partial.clear();
            return &bytes[consumed_from_bytes.min(bytes.len())..];
        }
        // Not a complete head: still arriving, or invalid.
        match parse_head(&self.partial, self.limits.max_fields) {
            Ok(httparse::Status::Partial) if self.partial.len() <= self.limits.max_bytes => &[],
            // Not after a head that asked to switch protocols: these bytes may belong to
            // the new protocol, and nothing is added to them.
            Err(_) if !self.upgrade_pending && versionless_request_line(&self.partial) => {
                self.inject = END_OF_HEAD.len();
                self.state = State::Off;
                self.partial.clear();
                &[]
            }
            _ => {
                self.state = State::Off;
                self.partial.clear();
                &[]
            }
        }
    }

    /// Consumes one CRLF-terminated line of chunked framing; returns the rest.
    fn line<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
            self.partial.extend_from_slice(bytes);
            if self.partial.len() > MAX_CHUNKED_LINE {
                self.state = State::Off;
            }
            return &[];
        };
        self.partial.extend_from_slice(&bytes[..end]);
        let line = std::mem::take(&mut self.partial);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        self.state = match self.state {
            State::ChunkSize => {
                let size = line.split(|b| *b == b';').next().unwrap_or(b"");
                match std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                }
            }
            State::ChunkDataEnd if line.is_empty() => State::ChunkSize,
            State::Trailers if line.is_empty() => State::Head,
            State::Trailers => State::Trailers,
            _ => State::Off,
        };
        &bytes[end + 1..]
    }
}

/// Header fields a followed head may have at least; hyper's default limit is lower.
const MAX_HEAD_FIELDS: usize = 128;

/// Runs `parse` with room for `max_fields` fields: on the stack up to [`MAX_HEAD_FIELDS`],
/// on the heap beyond (only when `limits.max_headers` was raised past it).
fn with_field_slots<'b, R>(
    max_fields: usize,
    parse: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max_fields <= MAX_HEAD_FIELDS {
        parse(&mut [const { MaybeUninit::uninit() }; MAX_HEAD_FIELDS])
    } else {
        parse(&mut vec![MaybeUninit::uninit(); max_fields])
    }
}

/// Parses a head that is not complete (leading blank lines allowed), only to tell one still
/// arriving from an invalid one.
fn parse_head(buf: &[u8], max_fields: usize) -> httparse::Result<usize> {
    let leading = leading_blank_lines(buf);
    with_field_slots(max_fields, |fields| {
        httparse::Request::new(&mut []).parse_with_uninit_headers(&buf[leading..], fields)
    })
}

/// Judges a complete head at the start of `buf` (leading blank lines allowed): its length
/// in bytes, whether its framing is ambiguous, and what follows it. `None` when `buf` does
/// not start with a complete, valid head.
fn judge_head(buf: &[u8], max_fields: usize) -> Option<Judged> {
    judge_plain_head(buf).or_else(|| judge_parsed_head(buf, max_fields))
}

/// A complete head as the watch judged it: its length in bytes, whether its framing is
/// ambiguous, what follows it, and whether it asks to switch protocols.
type Judged = (usize, bool, State, bool);

/// Field names that frame a body or switch protocols: a head with any of them is parsed.
const FRAMING_FIELDS: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"upgrade"];

/// The usual head, judged without parsing every field: an HTTP/1.x request line whose
/// target has no `#`, and fields none of which frames a body or switches protocols. Its
/// end is its first empty line (a line ends in LF, with or without CR, as httparse reads
/// it), nothing is ambiguous, and the next head follows at once. `None` for anything else,
/// which [`judge_parsed_head`] then decides.
///
/// It agrees with the full parse on every head the parse accepts (a property test checks
/// this); on a head the parse refuses, hyper refuses it too and closes the connection, so
/// what the watch records after it never matters. One field-name comparison per line
/// instead of httparse's validation of every byte: about 400 fewer instructions per
/// request (BENCHMARKS.md, round 9).
fn judge_plain_head(buf: &[u8]) -> Option<Judged> {
    let leading = leading_blank_lines(buf);
    let head = &buf[leading..];
    // One searcher for all the line ends; a field name is short enough for a plain loop.
    let mut line_ends = memchr::memchr_iter(b'\n', head);
    let first_end = line_ends.next()?;
    let request_line = head[..first_end].strip_suffix(b"\r")?;
    let versioned = request_line.ends_with(b" HTTP/1.1") || request_line.ends_with(b" HTTP/1.0");
    if !versioned || request_line.contains(&b'#') {
        return None;
    }
    let mut start = first_end + 1;
    for end in line_ends {
        let line = &head[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Some((leading + end + 1, false, State::Head, false));
        }
        let name = &line[..line.iter().position(|b| *b == b':')?];
        if FRAMING_FIELDS
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing))
        {
            return None;
        }
        start = end + 1;
    }
    None
}

/// Judges a head by parsing it whole, as hyper will.
fn judge_parsed_head(buf: &[u8], max_fields: usize) -> Option<Judged> {
    with_field_slots(max_fields, |fields| judge_parsed_head_in(buf, fields))
}

fn judge_parsed_head_in<'b>(
    buf: &'b [u8],
    fields: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Option<Judged> {
    let leading = leading_blank_lines(buf);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(&buf[leading..], fields) {
        Ok(httparse::Status::Complete(n)) => n + leading,
        _ => return None,
    };
    let mut content_length = None;
    let mut lengths = 0;
    // Fields that disagree, or one that is not a number: hyper refuses the head. The same
    // length twice it accepts (and reads one body), so that is followed like one field.
    let mut lengths_differ = false;
    let mut chunked = None;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let parsed = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            match (parsed, content_length) {
                (Some(n), None) => content_length = Some(n),
                (Some(n), Some(earlier)) if n == earlier => {}
                _ => lengths_differ = true,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    // A `#` in the target is a fragment the `http` crate drops silently; SPEC §3 refuses
    // it like the other ambiguous spellings.
    let fragment = req.path.is_some_and(|p| p.contains('#'));
    let ambiguous = (lengths > 0 && chunked.is_some()) || fragment;
    // A head asking to switch protocols is followed like any other: whether the switch
    // happens is the service's answer (a 101), which it reports (`protocol_switched`).
    let next = match (chunked, content_length) {
        (Some(true), _) => State::ChunkSize,
        (Some(false), _) => State::Off,            // hyper refuses it
        (None, _) if lengths_differ => State::Off, // hyper refuses it
        (None, Some(n)) if n > 0 => State::Body(n),
        (None, _) => State::Head,
    };
    Some((len, ambiguous, next, upgrade))
}

fn leading_blank_lines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// Whether `head` (leading blank lines allowed) starts with a complete request line that has
/// no HTTP version, the HTTP/0.9 form. No HTTP/1.x parser accepts such a line, so ending the
/// head after it cannot make hyper read a request the client did not send.
fn versionless_request_line(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(head.len());
    let rest = &head[start..];
    let Some(end) = rest.iter().position(|b| *b == b'\n') else {
        return false;
    };
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    let version = line.len() >= 9
        && line[line.len() - 9] == b' '
        && line[line.len() - 8..].starts_with(b"HTTP/");
    !version
}

/// Follows the first bytes of a connection against the HTTP/2 preface.
#[derive(Debug)]
struct PrefaceGuard {
    /// Preface bytes matched so far; `None` once a byte differed (or when HTTP/2 is allowed).
    matched: Option<usize>,
}

impl PrefaceGuard {
    /// Whether `bytes`, the next ones read, complete the preface.
    fn completes_preface(&mut self, bytes: &[u8]) -> bool {
        let Some(mut at) = self.matched else {
            return false;
        };
        for &b in bytes {
            if H2_PREFACE.get(at) != Some(&b) {
                self.matched = None;
                return false;
            }
            at += 1;
            if at == H2_PREFACE.len() {
                return true;
            }
        }
        self.matched = Some(at);
        false
    }
}

pin_project! {
    /// A client connection's byte stream, watched for ambiguous request framing.
    pub struct FramingWatch<IO> {
        #[pin]
        io: IO,
        tracker: Tracker,
        preface: PrefaceGuard,
    }
}

impl<IO> FramingWatch<IO> {
    /// Watches `io`. `http2_allowed` says whether a connection may start with the HTTP/2
    /// preface (TLS listeners, where ALPN picks h2, and `http2_cleartext: true`); `limits`
    /// cover the heads hyper accepts on it.
    pub fn new(
        io: IO,
        http2_allowed: bool,
        limits: HeadLimits,
    ) -> (FramingWatch<IO>, Arc<FramingFlags>) {
        let flags = Arc::new(FramingFlags::default());
        let tracker = Tracker::new(flags.clone(), limits);
        let preface = PrefaceGuard {
            matched: (!http2_allowed).then_some(0),
        };
        (
            FramingWatch {
                io,
                tracker,
                preface,
            },
            flags,
        )
    }
}

impl<IO: AsyncRead> AsyncRead for FramingWatch<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.tracker.inject > 0 {
            push_injection(this.tracker, buf);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if this.preface.completes_preface(&buf.filled()[before..]) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "HTTP/2 prior knowledge on a listener without http2_cleartext",
                )));
            }
            if !matches!(this.tracker.state, State::Off) {
                this.tracker.feed(&buf.filled()[before..]);
                if this.tracker.inject > 0 {
                    push_injection(this.tracker, buf);
                }
            }
        }
        result
    }
}

/// Hands hyper as much of the pending end-of-head as `buf` has room for.
fn push_injection(tracker: &mut Tracker, buf: &mut ReadBuf<'_>) {
    let from = END_OF_HEAD.len() - tracker.inject;
    let n = tracker.inject.min(buf.remaining());
    buf.put_slice(&END_OF_HEAD[from..from + n]);
    tracker.inject -= n;
}

impl<IO: AsyncWrite> AsyncWrite for FramingWatch<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_for(chunks: &[&[u8]]) -> Vec<bool> {
        flags_within(HeadLimits::default(), chunks)
    }

    fn flags_within(limits: HeadLimits, chunks: &[&[u8]]) -> Vec<bool> {
        let flags = Arc::new(FramingFlags::default());
        let mut t = Tracker::new(flags.clone(), limits);
        for c in chunks {
            t.feed(c);
        }
        let q = flags.queue.lock().unwrap();
        q.iter().copied().collect()
    }

    #[test]
    fn flags_only_heads_with_both_framings() {
        let stream: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /e HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(flags_for(&[stream]), vec![false, false, false, true, false]);
        assert_eq!(
            flags_for(&[b"GET /a#/../b HTTP/1.1\r\nHost: x\r\n\r\n"]),
            vec![true]
        );
        // Byte by byte gives the same answer.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(flags_for(&bytes), vec![false, false, false, true, false]);
    }

    #[test]
    fn heads_are_followed_as_far_as_hyper_is_allowed_to_read_them() {
        // 200 fields, then 80 KiB in one field: each past the watch's own floor.
        let many: String = (0..200).map(|i| format!("X-Pad-{i}: v\r\n")).collect();
        let long = format!("X-Pad: {}\r\n", "v".repeat(80 * 1024));
        for padding in [many, long] {
            let stream = format!(
                "POST /a HTTP/1.1\r\nHost: x\r\n{padding}Content-Length: 1\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b#c HTTP/1.1\r\n\r\n"
            );
            // Arriving in pieces, as a slow client sends it.
            let pieces: Vec<&[u8]> = stream.as_bytes().chunks(1000).collect();
            let raised = HeadLimits::covering(300, 128 * 1024);
            assert_eq!(flags_within(raised, &pieces), vec![true, true]);
            // Within the floor alone the watch stops at the long head, as it should when
            // hyper refuses that head anyway (hyper's limits are then the floor's or lower).
            assert!(flags_within(HeadLimits::default(), &pieces).is_empty());
        }
    }

    #[test]
    fn a_head_asking_to_switch_is_followed_until_the_switch_happens() {
        let flags = Arc::new(FramingFlags::default());
        let mut t = Tracker::new(flags.clone(), HeadLimits::default());
        // Not switched (the gateway never passes h2c): the next head is judged.
        t.feed(b"GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
        t.feed(b"GET /b#c HTTP/1.1\r\n\r\n");
        assert!(!flags.next_is_ambiguous());
        assert!(flags.next_is_ambiguous());
        // A WebSocket switch: what follows is no longer HTTP/1.1, and nothing is added to
        // it, even bytes that look like a request line sent before the 101.
        t.feed(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /\r\n");
        assert_eq!(t.inject, 0);
        flags.protocol_switched();
        t.feed(b"\x81\x05hello GET /x#y HTTP/1.1\r\n\r\n");
        assert!(matches!(t.state, State::Off));
        assert_eq!(t.inject, 0);
        let queued: Vec<bool> = flags.queue.lock().unwrap().iter().copied().collect();
        assert_eq!(queued, vec![false], "only the WebSocket head was flagged");
    }

    #[test]
    fn the_same_length_twice_is_followed_as_one() {
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc\
GET /b#c HTTP/1.1\r\n\r\n";
        assert_eq!(flags_for(&[stream]), vec![false, true]);
        // Lengths that differ: hyper refuses the head, and the watch stops.
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
        assert_eq!(flags_for(&[stream]), vec![false]);
    }

    #[test]
    fn long_chunk_extensions_and_trailers_are_followed() {
        // hyper takes up to 16 KiB of chunk extensions and of trailers; the watch must
        // follow lines that long, or the heads after such a body go unjudged.
        let extension = format!(";x={}", "e".repeat(10 * 1024));
        let trailer = format!("X-Trailer: {}\r\n", "t".repeat(10 * 1024));
        let stream = format!(
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
             3{extension}\r\nabc\r\n0\r\n{trailer}\r\n\
             POST /b HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        );
        let pieces: Vec<&[u8]> = stream.as_bytes().chunks(1000).collect();
        assert_eq!(flags_for(&pieces), vec![false, true]);
        assert_eq!(flags_for(&[stream.as_bytes()]), vec![false, true]);
    }

    #[test]
    fn bodies_that_look_like_heads_are_skipped() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(flags_for(&[&stream]), vec![false, false]);
    }

    #[test]
    fn versionless_request_lines_are_recognized() {
        for line in [
            &b"GET /\r\n"[..],
            b"GET /\n",
            b"\r\nGET /admin\r\n",
            b"GET\r\n",
            b"GET / HTTP/1.1x\r\n",
            b"GET /HTTP/1.1\r\n",
        ] {
            assert!(versionless_request_line(line), "{line:?}");
        }
        for line in [
            &b"GET /"[..],
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.0\n",
            b"GET / HTTP/9.9\r\nHost",
            b"PRI * HTTP/2.0\r\n",
        ] {
            assert!(!versionless_request_line(line), "{line:?}");
        }
    }

    #[test]
    fn preface_is_recognized_across_reads() {
        let mut guard = PrefaceGuard { matched: Some(0) };
        assert!(!guard.completes_preface(b"PRI * HT"));
        assert!(guard.completes_preface(b"TP/2.0\r\n\r\nSM\r\n\r\n\0\0"));
        let mut guard = PrefaceGuard { matched: Some(0) };
        assert!(!guard.completes_preface(b"PRI / HTTP/1.1\r\n\r\nSM\r\n\r\n"));
        assert!(
            !guard.completes_preface(H2_PREFACE),
            "stays off after a mismatch"
        );
        let mut allowed = PrefaceGuard { matched: None };
        assert!(!allowed.completes_preface(H2_PREFACE));
    }

    /// Pieces of request heads, valid and not, for the property below.
    fn head_pieces() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let request_line = prop::sample::select(vec![
            &b"GET /a HTTP/1.1"[..],
            b"GET /a HTTP/1.1",
            b"POST /a?b=c HTTP/1.0",
            b"GET /a#/../b HTTP/1.1",
            b"GET /",
            b"GET / HTTP/1.1x",
            b"GET  /a HTTP/1.1",
            b"\x00garbage",
            b"GET /a HTTP/2.0",
        ]);
        let field = prop::sample::select(vec![
            &b"Host: x"[..],
            b"Content-Length: 5",
            b"content-LENGTH: 0",
            b"Content-Length : 5",
            b"Transfer-Encoding: chunked",
            b"TRANSFER-ENCODING: gzip, chunked",
            b"Upgrade: websocket",
            b"X-Content-Length: 5",
            b"Content-Type: text/plain",
            b" folded: line",
            b"No colon here",
            b"X: a\rb",
            b"X: #",
            b"",
        ]);
        let eol = prop::sample::select(vec![&b"\r\n"[..], b"\r\n", b"\n", b"\r"]);
        (
            prop::sample::select(vec![&b""[..], b"\r\n", b"\n\r\n"]),
            request_line,
            eol.clone(),
            prop::collection::vec((field, eol), 0..6),
            prop::sample::select(vec![
                &b"\r\n"[..],
                b"\r\n",
                b"\r\nGET / HTTP/1.1\r\n",
                b"\n",
                b"\nhello",
                b"",
            ]),
        )
            .prop_map(|(blank, line, eol, fields, tail)| {
                let mut head = blank.to_vec();
                head.extend_from_slice(line);
                head.extend_from_slice(eol);
                for (field, eol) in fields {
                    head.extend_from_slice(field);
                    head.extend_from_slice(eol);
                }
                head.extend_from_slice(tail);
                head
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Wherever the quick judgement answers, the full parse answers the same, or
        /// refuses the head outright (then hyper refuses it too and closes the connection).
        #[test]
        fn the_quick_judgement_agrees_with_the_parse(head in head_pieces()) {
            if let Some(quick) = judge_plain_head(&head) {
                match judge_parsed_head(&head, MAX_HEAD_FIELDS) {
                    Some(parsed) => proptest::prop_assert_eq!(quick, parsed),
                    None => {
                        let leading = leading_blank_lines(&head);
                        proptest::prop_assert!(
                            parse_head(&head[..quick.0], MAX_HEAD_FIELDS).is_err(),
                            "{:?} judged {:?}, but the parse has {:?} for its {} head bytes",
                            String::from_utf8_lossy(&head),
                            quick,
                            parse_head(&head[..quick.0], MAX_HEAD_FIELDS),
                            quick.0 - leading
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_quick_judgement_leaves_framing_fields_and_fragments_to_the_parse() {
        for head in [
            &b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello"[..],
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUPGRADE: websocket\r\n\r\n",
            b"GET /a#x HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\n\n",
        ] {
            assert_eq!(
                judge_plain_head(head),
                None,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        let head = b"\r\nGET /a HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\nGET /b";
        assert_eq!(
            judge_plain_head(head),
            Some((head.len() - 6, false, State::Head, false))
        );
    }

    #[test]
    fn http2_and_garbage_stop_the_watch() {
        assert!(flags_for(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).is_empty());
        assert!(flags_for(&[b"\x00\x01garbage\r\n\r\n"]).is_empty());
    }
}
