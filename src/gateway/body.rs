//! Body wrappers: the request body forwarded upstream (with an optional size limit), and
//! the response body sent to the client (an upstream stream, with an optional total
//! deadline, or a small synthetic body). Enums rather than boxed trait objects, so the
//! common case costs no allocation.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::gateway::body_inspection::Inspection;
use crate::gateway::h1_client::ResponseBody;

/// Why a forwarded body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than limits.max_body_bytes")]
    TooLarge,
    #[error("request deadline (timeouts.request) reached while streaming the response")]
    Deadline,
    /// The upstream sent nothing of the response body for its `response_timeout`.
    #[error("the upstream's response body stalled for longer than its response_timeout")]
    UpstreamStalled,
    /// The request body names a method override outside the token's grants.
    #[error("the request body names a method override the token is not granted")]
    OverrideNotGranted,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The owned upstream connection's response body failed (boxed: the client's error
    /// holds a `BodyError` of its own for the request body).
    #[error("upstream response body")]
    Upstream(#[source] Box<crate::gateway::h1_client::Error>),
}

impl BodyError {
    /// True when `err` (from the upstream client) was caused by the request body limit.
    pub fn is_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
        Self::cause_in(err).is_some_and(|e| matches!(e, BodyError::TooLarge))
    }

    /// True when `err` (from the upstream client) was caused by a method override found in
    /// the request body as it streamed.
    pub fn is_override_not_granted(err: &(dyn std::error::Error + 'static)) -> bool {
        Self::cause_in(err).is_some_and(|e| matches!(e, BodyError::OverrideNotGranted))
    }

    /// True when `err` (from the upstream client) was caused by the client's request body
    /// itself (hyper could not read it: malformed chunked framing, or cut short), so the
    /// answer is the client's 400, not the upstream's 502.
    pub fn is_client_body_failure(err: &(dyn std::error::Error + 'static)) -> bool {
        Self::cause_in(err).is_some_and(|e| matches!(e, BodyError::Hyper(_)))
    }

    /// The first `BodyError` in `err`'s source chain.
    fn cause_in<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e BodyError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(body) = e.downcast_ref::<BodyError>() {
                return Some(body);
            }
            cur = e.source();
        }
        None
    }
}

pin_project! {
    /// The client's request body on its way upstream, cut off past `limit` bytes.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        remaining: Option<u64>,
        // What only some requests need, behind one pointer: every request's body is moved
        // into its exchange's future, and a few bytes more there cost memory copies on
        // every request (callgrind: a field added here cost ~300 instructions a request).
        extras: Option<Box<Extras>>,
    }
}

/// A request body's rarer needs.
#[derive(Default)]
struct Extras {
    /// Bytes forwarded so far, for the access log.
    counted: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Judges the body for method overrides, when it may carry some.
    inspection: Option<Box<Inspection>>,
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: Option<u64>) -> RequestBody {
        RequestBody {
            inner,
            remaining: limit,
            extras: None,
        }
    }

    /// Forwards the body through `inspection` (which replays what it read ahead).
    pub fn inspected(mut self, inspection: Option<Box<Inspection>>) -> RequestBody {
        if inspection.is_some() {
            self.extras.get_or_insert_with(Box::default).inspection = inspection;
        }
        self
    }

    /// Adds the size of every data frame forwarded to `counter`.
    pub fn counting(
        mut self,
        counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> RequestBody {
        if counter.is_some() {
            self.extras.get_or_insert_with(Box::default).counted = counter;
        }
        self
    }

    fn inspection(&self) -> Option<&Inspection> {
        self.extras.as_ref().and_then(|e| e.inspection.as_deref())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let extras = this.extras.as_deref_mut();
        let polled = match extras.and_then(|e| e.inspection.as_deref_mut()) {
            Some(inspection) => inspection.poll_next(this.inner, cx),
            None => this
                .inner
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(BodyError::from))),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(remaining), Some(data)) = (this.remaining.as_mut(), frame.data_ref()) {
                    let n = data.len() as u64;
                    if n > *remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    *remaining -= n;
                }
                let counted = this.extras.as_ref().and_then(|e| e.counted.as_ref());
                if let (Some(counted), Some(data)) = (counted, frame.data_ref()) {
                    counted.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.inspection() {
            Some(inspection) => inspection.is_end_stream(),
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.inspection() {
            Some(inspection) => inspection.size_hint(self.inner.size_hint()),
            None => self.inner.size_hint(),
        }
    }
}

/// An upstream's response body: from hyper's pooled client, or from the client
/// connection's own upstream connection (`h1_client`).
#[derive(Debug)]
pub enum UpstreamBody {
    Pooled(Incoming),
    Owned(ResponseBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Pooled(body) => Pin::new(body).poll_frame(cx).map_err(BodyError::from),
            UpstreamBody::Owned(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| BodyError::Upstream(Box::new(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Pooled(body) => body.is_end_stream(),
            UpstreamBody::Owned(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Pooled(body) => body.size_hint(),
            UpstreamBody::Owned(body) => body.size_hint(),
        }
    }
}

/// Bounds how long an upstream's response body may send nothing: its `response_timeout`,
/// as nginx's `proxy_read_timeout` and HAProxy's `timeout server` bound a stalled server;
/// without it a body that stops mid-way holds the client connection (and the upstream's)
/// forever. The timer is made the first time the body has to wait, so a body that came
/// with its head (most of them) never makes one; when it fires after progress it is
/// re-armed rather than reset on every frame, so a stall is cut off between one and two
/// timeouts after the last bytes.
#[derive(Debug)]
pub struct StallWatch {
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the body yielded anything since the timer was last armed.
    progressed: bool,
}

impl StallWatch {
    pub fn new(limit: Duration) -> StallWatch {
        StallWatch {
            limit,
            timer: None,
            progressed: false,
        }
    }

    /// Takes note of what the body's poll gave; `Some` once it has stalled too long.
    fn observe<T>(&mut self, polled: &Poll<T>, cx: &mut Context<'_>) -> Option<BodyError> {
        if polled.is_ready() {
            self.progressed = true;
            return None;
        }
        let timer = match &mut self.timer {
            Some(timer) => timer,
            None => {
                self.progressed = false;
                self.timer.insert(Box::pin(tokio::time::sleep(self.limit)))
            }
        };
        while std::future::Future::poll(timer.as_mut(), cx).is_ready() {
            if !std::mem::take(&mut self.progressed) {
                return Some(BodyError::UpstreamStalled);
            }
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + self.limit);
        }
        None
    }
}

pin_project! {
    /// What the gateway sends back to a client.
    #[project = GatewayBodyProj]
    pub enum GatewayBody {
        Upstream { #[pin] body: UpstreamBody, stall: StallWatch },
        UpstreamWithDeadline {
            #[pin] body: UpstreamBody,
            stall: StallWatch,
            #[pin] deadline: tokio::time::Sleep,
        },
        Synthetic { #[pin] body: Full<Bytes> },
    }
}

impl GatewayBody {
    /// An upstream's body, cut off when it stalls for `stall_limit` (the upstream's
    /// `response_timeout`) or, when set, past `deadline` (`timeouts.request`).
    pub fn upstream(
        body: UpstreamBody,
        stall_limit: Duration,
        deadline: Option<Duration>,
    ) -> GatewayBody {
        let stall = StallWatch::new(stall_limit);
        match deadline {
            None => GatewayBody::Upstream { body, stall },
            Some(d) => GatewayBody::UpstreamWithDeadline {
                body,
                stall,
                deadline: tokio::time::sleep(d),
            },
        }
    }

    pub fn synthetic(bytes: Bytes) -> GatewayBody {
        GatewayBody::Synthetic {
            body: Full::new(bytes),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            // A stream cut off is aborted, so the client sees an incomplete response
            // rather than one that looks whole.
            GatewayBodyProj::Upstream { body, stall } => watched(body, stall, cx),
            GatewayBodyProj::UpstreamWithDeadline {
                body,
                stall,
                deadline,
            } => {
                if std::future::Future::poll(deadline, cx).is_ready() {
                    return Poll::Ready(Some(Err(BodyError::Deadline)));
                }
                watched(body, stall, cx)
            }
            GatewayBodyProj::Synthetic { body } => {
                body.poll_frame(cx).map_err(|never| match never {})
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Upstream { body, .. } | GatewayBody::UpstreamWithDeadline { body, .. } => {
                body.is_end_stream()
            }
            GatewayBody::Synthetic { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Upstream { body, .. } | GatewayBody::UpstreamWithDeadline { body, .. } => {
                body.size_hint()
            }
            GatewayBody::Synthetic { body } => body.size_hint(),
        }
    }
}

/// Polls an upstream body under its stall watch.
fn watched(
    body: Pin<&mut UpstreamBody>,
    stall: &mut StallWatch,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    let polled = body.poll_frame(cx);
    match stall.observe(&polled, cx) {
        Some(stalled) => Poll::Ready(Some(Err(stalled))),
        None => polled,
    }
}

#[cfg(test)]
mod size_tests {
    /// Every request's body is moved into its exchange's future: its size is a cost on
    /// every request (memory copies), so growing it should be a decision.
    #[test]
    fn a_request_body_stays_small() {
        let size = std::mem::size_of::<super::RequestBody>();
        assert!(size <= 64, "RequestBody is {size} bytes");
    }
}
