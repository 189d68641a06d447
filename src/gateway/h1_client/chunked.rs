//! The chunked transfer coding of a response body (RFC 9112 §7.1), decoded from the bytes
//! a connection has read so far. A step never waits: it hands out the data it can, or says
//! it needs more bytes.
//!
//! It accepts what hyper's client accepted, byte for byte (this decoder replaced it on the
//! owned upstream connections): hex sizes without overflow, spaces or tabs after the size,
//! extensions (ignored, at most 16 KiB over the body), strict CRLF line ends, and trailer
//! fields (checked as header fields, at most 16 KiB and 100 lines, then dropped: the
//! client side never announces them, as `Trailer` is hop-by-hop).

use bytes::{Buf, Bytes, BytesMut};

use super::Error;

/// Chunk extensions read over one body, at most (hyper's limit).
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// Trailer section bytes, at most (hyper's limit).
const TRAILERS_LIMIT: usize = 16 * 1024;
/// Trailer fields, at most (as header fields).
const TRAILER_FIELDS_LIMIT: usize = 100;

/// What a step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes, taken from the buffer without a copy.
    Data(Bytes),
    /// The buffer holds no complete next element: read more.
    NeedMore,
    /// The last chunk and the trailer section were read: the body is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first hex digit of a chunk size.
    Start,
    Size,
    /// Spaces or tabs after the size.
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk's size line: CR of the empty line, or a trailer field.
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
    End,
}

/// The decoder of one chunked body.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    /// The current chunk size while its line is read, then the bytes of it still to come.
    size: u64,
    extension_bytes: u64,
    trailers: Vec<u8>,
    trailer_lines: usize,
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked {
            state: State::Start,
            size: 0,
            extension_bytes: 0,
            trailers: Vec::new(),
            trailer_lines: 0,
        }
    }
}

impl Chunked {
    /// Decodes from the front of `buf`, consuming what it reads.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        loop {
            match self.state {
                State::End => return Ok(Step::End),
                State::Data => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(self.size).map_or(buf.len(), |s| s.min(buf.len()));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                _ => {}
            }
            let Some(&byte) = buf.first() else {
                return Ok(Step::NeedMore);
            };
            buf.advance(1);
            self.state = self.next(byte)?;
        }
    }

    /// The state after `byte` in a framing line.
    fn next(&mut self, byte: u8) -> Result<State, Error> {
        use State::*;
        let invalid = |what| Err(Error::InvalidBody(what));
        Ok(match (self.state, byte) {
            (Start | Size, _) if byte.is_ascii_hexdigit() => {
                let digit = (byte as char).to_digit(16).map_or(0, u64::from);
                self.size = match self.size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(size) => size,
                    None => return invalid("chunk size overflows"),
                };
                Size
            }
            (Start, _) => return invalid("chunk size line without a size"),
            (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
            (Size | SizeSpace, b';') => Extension,
            (Size | SizeSpace, b'\r') => SizeLf,
            (Size | SizeSpace, _) => return invalid("invalid chunk size line"),
            (Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return invalid("chunk extension contains a newline"),
            (Extension, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes >= EXTENSIONS_LIMIT {
                    return invalid("chunk extensions over 16 KiB");
                }
                Extension
            }
            (SizeLf, b'\n') if self.size == 0 => EndCr,
            (SizeLf, b'\n') => Data,
            (SizeLf, _) => return invalid("chunk size line without LF"),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return invalid("chunk data without CR"),
            (DataLf, b'\n') => Start,
            (DataLf, _) => return invalid("chunk data without LF"),
            (EndCr, b'\r') => EndLf,
            (EndCr | Trailer, _) => {
                self.keep_trailer_byte(byte)?;
                if byte == b'\r' {
                    TrailerLf
                } else {
                    Trailer
                }
            }
            (TrailerLf, b'\n') => {
                self.keep_trailer_byte(byte)?;
                self.trailer_lines += 1;
                if self.trailer_lines >= TRAILER_FIELDS_LIMIT {
                    return invalid("more than 100 trailer fields");
                }
                EndCr
            }
            (TrailerLf, _) => return invalid("trailer field without LF"),
            (EndLf, b'\n') => {
                self.check_trailers()?;
                End
            }
            (EndLf, _) => return invalid("chunked body end without LF"),
            // `step` hands these states out before reading a framing byte.
            (Data | End, _) => return invalid("framing byte inside chunk data"),
        })
    }

    fn keep_trailer_byte(&mut self, byte: u8) -> Result<(), Error> {
        if self.trailers.len() >= TRAILERS_LIMIT {
            return Err(Error::InvalidBody("trailer section over 16 KiB"));
        }
        self.trailers.push(byte);
        Ok(())
    }

    /// Trailer fields must be well-formed header fields; they are dropped after the check.
    fn check_trailers(&mut self) -> Result<(), Error> {
        if self.trailers.is_empty() {
            return Ok(());
        }
        self.trailers.extend_from_slice(b"\r\n");
        let mut fields = [httparse::EMPTY_HEADER; TRAILER_FIELDS_LIMIT];
        match httparse::parse_headers(&self.trailers, &mut fields) {
            Ok(httparse::Status::Complete(_)) => {
                self.trailers = Vec::new();
                Ok(())
            }
            _ => Err(Error::InvalidBody("invalid trailer fields")),
        }
    }
}

#[cfg(test)]
mod tests;
