//! The body of an upstream response, read from the connection when the client side polls
//! it, in the client connection's task. When it has been read to its end, the connection
//! goes back to its parking place for the next request (if the upstream keeps it open).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::request::Sender;
use super::response::Framing;
use super::{Connection, Error, Parking};
use crate::gateway::body::RequestBody;

/// An upstream response body on an owned connection.
#[derive(Debug)]
pub struct ResponseBody {
    /// `None` once the body has ended (or failed): the connection is parked or closed.
    reading: Option<Reading>,
}

#[derive(Debug)]
struct Reading {
    conn: Box<Connection>,
    /// The rest of a request the upstream answered before it was all sent: still written
    /// while the response is read (an upstream may stream its answer as it reads). Boxed:
    /// rare, and every response body would carry it otherwise.
    sending: Option<Box<Sender<RequestBody>>>,
    decoder: Decoder,
    keep_alive: bool,
    parking: Parking,
}

#[derive(Debug)]
enum Decoder {
    /// Bytes still to come.
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl ResponseBody {
    /// The body after a head framed by `framing`; a body with no bytes parks the connection
    /// at once.
    pub(super) fn new(
        conn: Box<Connection>,
        framing: Framing,
        keep_alive: bool,
        sending: Option<Box<Sender<RequestBody>>>,
        parking: &Parking,
    ) -> ResponseBody {
        let decoder = match framing {
            Framing::Length(0) => {
                conn.park_if(keep_alive, parking);
                return ResponseBody { reading: None };
            }
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunked::default()),
            Framing::UntilClose => Decoder::UntilClose,
        };
        ResponseBody {
            reading: Some(Reading {
                conn,
                sending,
                decoder,
                keep_alive,
                parking: parking.clone(),
            }),
        }
    }

    /// Ends the body: the connection is parked if it can carry another request.
    fn finish(&mut self, clean: bool) {
        if let Some(r) = self.reading.take() {
            let reusable = clean && !matches!(r.decoder, Decoder::UntilClose);
            r.conn.park_if(r.keep_alive && reusable, &r.parking);
        }
    }
}

/// What the buffered bytes yield next.
enum Next {
    Data(Bytes),
    /// The body is complete with this data, or without any.
    Last(Option<Bytes>),
    NeedMore,
}

impl Reading {
    fn next(&mut self) -> Result<Next, Error> {
        let buf = &mut self.conn.buf;
        match &mut self.decoder {
            Decoder::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Next::NeedMore);
                }
                let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                *remaining -= n as u64;
                let data = buf.split_to(n).freeze();
                Ok(if *remaining == 0 {
                    Next::Last(Some(data))
                } else {
                    Next::Data(data)
                })
            }
            Decoder::Chunked(chunked) => match chunked.step(buf)? {
                Step::Data(data) => Ok(Next::Data(data)),
                Step::NeedMore => Ok(Next::NeedMore),
                Step::End => Ok(Next::Last(None)),
            },
            Decoder::UntilClose if buf.is_empty() => Ok(Next::NeedMore),
            Decoder::UntilClose => Ok(Next::Data(buf.split().freeze())),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            let Some(reading) = this.reading.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(sender) = reading.sending.as_mut() {
                let conn = &mut reading.conn;
                // Sent, or failed (the upstream stopped reading, or the client's body
                // failed): either way the response is still read to its end.
                if sender
                    .poll_send(cx, &mut conn.stream, &mut conn.out)
                    .is_ready()
                {
                    reading.sending = None;
                }
            }
            let next = match reading.next() {
                Ok(next) => next,
                Err(e) => {
                    this.finish(false);
                    return Poll::Ready(Some(Err(e)));
                }
            };
            match next {
                Next::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Next::Last(data) => {
                    // Parked before the last frame is handed out: the client side may not
                    // poll again once it has seen the stated length.
                    this.finish(true);
                    return Poll::Ready(data.map(|d| Ok(Frame::data(d))));
                }
                Next::NeedMore => {}
            }
            match ready!(reading.conn.poll_read_more(cx)) {
                Ok(true) => {}
                Ok(false) if matches!(reading.decoder, Decoder::UntilClose) => {
                    this.finish(false);
                    return Poll::Ready(None);
                }
                Ok(false) => {
                    this.finish(false);
                    return Poll::Ready(Some(Err(Error::ClosedInBody)));
                }
                Err(e) => {
                    this.finish(false);
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.reading {
            None => SizeHint::with_exact(0),
            Some(Reading {
                decoder: Decoder::Length(n),
                ..
            }) => SizeHint::with_exact(*n),
            Some(_) => SizeHint::default(),
        }
    }
}
