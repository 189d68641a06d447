//! Holds a request body to the method overrides it carries
//! ([`crate::domain::body_override`]). A body up to [`WHOLE_BYTES`] is read whole and
//! judged before anything is sent: a refused one never reaches the upstream. A longer one
//! is judged as it streams, one frame behind (and held back entirely while an override's
//! value is open): the last frame is held back until the body has ended and its scan is
//! done, so a refused body never reaches the upstream whole (the exchange is cut and the
//! upstream drops the incomplete request, as every framework does before it reads a
//! parameter), and a body cut short never ends inside an override's value.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::domain::body_override::BodyOverrideScan;
use crate::domain::model::MethodSet;
use crate::gateway::body::BodyError;

/// Bodies up to this size are judged before the upstream is contacted.
pub const WHOLE_BYTES: usize = 64 * 1024;
/// The most a streaming body may hold back while an override's value is open.
const HELD_BYTES: usize = 64 * 1024;
/// Past this many held frames, they are joined into one.
const HELD_FRAMES: usize = 8;

/// Why a body was refused while its start was read.
#[derive(Debug)]
pub enum Refusal {
    /// It names a method outside the grants; `whole`: the body was read to its end.
    Override { whole: bool },
    /// Longer than `limits.max_body_bytes`.
    TooLarge,
    /// The client did not send the start of it (or all of a short one) in time.
    Stalled,
    /// hyper could not read it (malformed chunked framing, cut short).
    Unreadable,
}

/// A body being judged: what was read ahead (replayed first), then the rest.
#[derive(Debug)]
pub struct Inspection {
    replay: VecDeque<Frame<Bytes>>,
    /// `None` once the body was judged whole.
    scan: Option<BodyOverrideScan>,
    granted: MethodSet,
    /// Frames held back: the last one until the next one (or the end) shows it is not
    /// the last, and all of them while an override's value is open.
    held: VecDeque<Frame<Bytes>>,
    /// The client's body has ended (and was judged).
    ended: bool,
}

/// Reads the start of `body` (up to [`WHOLE_BYTES`], all of it within `deadline`) and
/// judges it; the [`Inspection`] replays what was read and judges the rest as it streams.
/// What was read is copied into one buffer: hyper's frames each keep the read buffer they
/// were cut from alive, so a client sending one byte per packet would otherwise pin a
/// buffer per byte.
/// `grants` gives the methods an override may name; it is asked only once the body names
/// one (the catalog walk it costs is saved for every other body).
pub async fn read_start(
    body: &mut Incoming,
    scan: BodyOverrideScan,
    grants: impl FnOnce() -> MethodSet,
    max_body: Option<u64>,
    deadline: Duration,
) -> Result<Box<Inspection>, Refusal> {
    let mut ahead = ReadAhead {
        scan,
        grants: Grants {
            compute: Some(grants),
            known: MethodSet::EMPTY,
        },
        data: BytesMut::new(),
        trailers: None,
        refused: false,
        read: 0,
    };
    // The timer is made only when the body has to be waited for: a small body usually
    // came with the head.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let ended = std::future::poll_fn(|cx| loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(done) = ahead.take(frame, max_body) {
                    return Poll::Ready(done);
                }
            }
            Poll::Pending => {
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(Refusal::Stalled));
                }
                return Poll::Pending;
            }
        }
    })
    .await?;
    let ReadAhead {
        mut scan,
        mut grants,
        data,
        trailers,
        refused,
        ..
    } = ahead;
    if ended {
        scan.finish();
    }
    if refused || grants.violated_by(&scan) {
        return Err(Refusal::Override { whole: ended });
    }
    // Streaming on, each frame is judged: the grants are needed from here.
    let granted = grants.get();
    let mut frames = VecDeque::new();
    if !data.is_empty() {
        frames.push_back(Frame::data(data.freeze()));
    }
    frames.extend(trailers.map(Frame::trailers));
    // A body still streaming keeps what was read held back, like any frame.
    let (replay, held) = if ended {
        (frames, VecDeque::new())
    } else {
        (VecDeque::new(), frames)
    };
    Ok(Box::new(Inspection {
        replay,
        scan: (!ended).then_some(scan),
        granted,
        held,
        ended,
    }))
}

/// The methods an override may name, computed when first needed.
struct Grants<F> {
    compute: Option<F>,
    known: MethodSet,
}

impl<F: FnOnce() -> MethodSet> Grants<F> {
    fn get(&mut self) -> MethodSet {
        if let Some(compute) = self.compute.take() {
            self.known = compute();
        }
        self.known
    }

    /// Whether `scan` found an override outside the grants (asked only once it found one).
    fn violated_by(&mut self, scan: &BodyOverrideScan) -> bool {
        scan.names_any() && scan.violates(self.get())
    }
}

/// The start of a body, as it is read.
struct ReadAhead<F> {
    scan: BodyOverrideScan,
    grants: Grants<F>,
    data: BytesMut,
    trailers: Option<http::HeaderMap>,
    /// An override outside the grants was found: the rest of a short body is still read
    /// (not kept), so the connection can serve the client's next request.
    refused: bool,
    read: usize,
}

impl<F: FnOnce() -> MethodSet> ReadAhead<F> {
    /// Takes what the body yielded; `Some` once the body ended (`true`) or
    /// [`WHOLE_BYTES`] were read (`false`), or it is refused.
    fn take(
        &mut self,
        frame: Option<Result<Frame<Bytes>, hyper::Error>>,
        max_body: Option<u64>,
    ) -> Option<Result<bool, Refusal>> {
        let frame = match frame {
            None => return Some(Ok(true)),
            Some(Err(_)) => return Some(Err(Refusal::Unreadable)),
            Some(Ok(frame)) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                // Trailers end the body.
                self.trailers = frame.into_trailers().ok();
                return None;
            }
        };
        self.read += data.len();
        if max_body.is_some_and(|max| self.read as u64 > max) {
            return Some(Err(Refusal::TooLarge));
        }
        if !self.refused {
            self.scan.feed(&data);
            self.refused = self.grants.violated_by(&self.scan);
            self.data.extend_from_slice(&data);
            if !self.refused && self.scan.exhausted() {
                // Nothing more to find: the rest streams (an NDJSON upload need not
                // reach 64 KiB first).
                return Some(Ok(false));
            }
        }
        (self.read >= WHOLE_BYTES).then_some(Ok(false))
    }
}

impl Inspection {
    /// The next frame to forward: the replayed ones, then the client's, always one behind
    /// (the last frame waits for the next one or the end), and none while an override's
    /// value is open.
    pub fn poll_next<B>(
        &mut self,
        mut inner: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>>
    where
        B: Body<Data = Bytes>,
        BodyError: From<B::Error>,
    {
        if let Some(frame) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        loop {
            let Some(scan) = self.scan.as_mut().filter(|_| !self.ended) else {
                self.ended = true;
                return Poll::Ready(self.held.pop_front().map(Ok));
            };
            if self.held.len() > 1 && !scan.override_open() {
                return Poll::Ready(self.held.pop_front().map(Ok));
            }
            if scan.exhausted() && !scan.violates(self.granted) {
                // Nothing more to find: what is held goes, and the rest streams through.
                if let Some(frame) = self.held.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                return inner
                    .as_mut()
                    .poll_frame(cx)
                    .map(|frame| frame.map(|r| r.map_err(BodyError::from)));
            }
            match ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    match frame.data_ref() {
                        Some(data) => scan.feed(data),
                        None => scan.finish(),
                    }
                    if scan.violates(self.granted) {
                        return Poll::Ready(Some(Err(BodyError::OverrideNotGranted)));
                    }
                    let open = scan.override_open();
                    if let Err(e) = self.hold(frame, open) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    scan.finish();
                    if scan.violates(self.granted) {
                        return Poll::Ready(Some(Err(BodyError::OverrideNotGranted)));
                    }
                    self.ended = true;
                }
            }
        }
    }

    /// Holds `frame` back. What is held is bounded: an override's value open over more
    /// than [`HELD_BYTES`] (JSON white space after `"_method":`, say) names no method
    /// (otherwise one frame is held, however large), and many small frames are joined so
    /// that none keeps a read buffer of its own alive.
    fn hold(&mut self, frame: Frame<Bytes>, override_open: bool) -> Result<(), BodyError> {
        let held: usize = self
            .held
            .iter()
            .filter_map(|f| f.data_ref())
            .map(Bytes::len)
            .sum();
        if override_open && held + frame.data_ref().map_or(0, Bytes::len) > HELD_BYTES {
            return Err(BodyError::OverrideNotGranted);
        }
        self.held.push_back(frame);
        if self.held.len() > HELD_FRAMES && self.held.iter().all(|f| f.is_data()) {
            let mut joined = BytesMut::with_capacity(held + 64);
            for f in self.held.drain(..) {
                if let Ok(data) = f.into_data() {
                    joined.extend_from_slice(&data);
                }
            }
            self.held.push_back(Frame::data(joined.freeze()));
        }
        Ok(())
    }

    /// True only once everything was handed on: a held frame is still to come.
    pub fn is_end_stream(&self) -> bool {
        self.ended && self.replay.is_empty() && self.held.is_empty()
    }

    /// `inner`'s hint plus what is read ahead.
    pub fn size_hint(&self, inner: SizeHint) -> SizeHint {
        let ahead: u64 = self
            .replay
            .iter()
            .chain(&self.held)
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + ahead);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(methods: &[&str]) -> MethodSet {
        let mut set = MethodSet::EMPTY;
        for m in methods {
            set.grant(crate::domain::model::method_index(m).unwrap());
        }
        set
    }

    /// An inspection past the read-ahead (still held), on a form body.
    fn streaming(granted: MethodSet) -> Inspection {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        Inspection {
            replay: VecDeque::new(),
            scan: BodyOverrideScan::for_headers(&headers),
            granted,
            held: VecDeque::from([Frame::data(Bytes::from_static(b"read=ahead&"))]),
            ended: false,
        }
    }

    /// A client body that yields `frames` (an empty one: the client fails), then ends.
    struct Frames(VecDeque<&'static [u8]>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BodyError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            Poll::Ready(self.0.pop_front().map(|f| match f {
                b"" => Err(BodyError::Deadline),
                f => Ok(Frame::data(Bytes::from_static(f))),
            }))
        }
    }

    /// Every frame `inspection` hands on from `frames`, then its end or error.
    async fn forwarded(
        mut inspection: Inspection,
        frames: &[&'static [u8]],
    ) -> (Vec<Bytes>, Result<(), ()>) {
        let mut body = Frames(frames.iter().copied().collect());
        let mut out = Vec::new();
        loop {
            let next =
                std::future::poll_fn(|cx| inspection.poll_next(Pin::new(&mut body), cx)).await;
            match next {
                None => return (out, Ok(())),
                Some(Ok(frame)) => out.push(frame.into_data().unwrap()),
                Some(Err(_)) => return (out, Err(())),
            }
        }
    }

    #[tokio::test]
    async fn the_frame_that_completes_a_refused_override_is_never_handed_on() {
        // The last pair is only complete at the end of the body: the frame holding it is
        // still held back when the scan refuses it.
        let (out, end) = forwarded(streaming(granted(&["POST"])), &[b"a=1&", b"_method=PUT"]).await;
        assert_eq!(out, vec![Bytes::from_static(b"read=ahead&")]);
        assert_eq!(end, Err(()));
    }

    #[tokio::test]
    async fn a_clean_body_is_handed_on_whole_and_in_order() {
        let (out, end) = forwarded(
            streaming(granted(&["POST", "PUT"])),
            &[b"a=1&", b"_method=PUT", b"&b=2"],
        )
        .await;
        assert_eq!(end, Ok(()));
        assert_eq!(out.concat(), b"read=ahead&a=1&_method=PUT&b=2");
    }

    #[tokio::test]
    async fn nothing_of_an_open_override_value_is_handed_on() {
        // `_method=PUT` then `X`: cut short by the client there, the upstream would read
        // PUT; nothing held when the value began (`a=1&`) or after is handed on while it
        // is open.
        let (out, end) = forwarded(
            streaming(granted(&["POST", "PUT"])),
            &[b"a=1&", b"_method=PUT", b"X", b""],
        )
        .await;
        assert_eq!(out, vec![Bytes::from_static(b"read=ahead&")]);
        assert_eq!(end, Err(()));
    }

    #[tokio::test]
    async fn an_override_value_left_open_cannot_hold_more_than_its_bound() {
        let spaces: &'static [u8] = Box::leak(vec![b' '; 16 * 1024].into_boxed_slice());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        let inspection = Inspection {
            replay: VecDeque::new(),
            scan: BodyOverrideScan::for_headers(&headers),
            granted: granted(&["POST"]),
            held: VecDeque::new(),
            ended: false,
        };
        let mut frames: Vec<&'static [u8]> = vec![br#"{"_method":"#];
        frames.extend(std::iter::repeat_n(spaces, 8));
        let (out, end) = forwarded(inspection, &frames).await;
        assert!(out.is_empty(), "nothing of the open value was handed on");
        assert_eq!(end, Err(()));
    }

    #[tokio::test]
    async fn after_a_json_body_s_top_level_value_the_rest_streams_untouched() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/x-ndjson".parse().unwrap(),
        );
        let mut scan = BodyOverrideScan::for_headers(&headers).unwrap();
        scan.feed(b"{\"a\":1}\n");
        assert!(scan.exhausted());
        let inspection = Inspection {
            replay: VecDeque::new(),
            scan: Some(scan),
            granted: granted(&["POST"]),
            held: VecDeque::new(),
            ended: false,
        };
        let (out, end) = forwarded(inspection, &[b"{\"b\":2}\n", b"{\"_method\":\"PUT\"}"]).await;
        assert_eq!(end, Ok(()));
        assert_eq!(out.concat(), b"{\"b\":2}\n{\"_method\":\"PUT\"}");
    }
}
