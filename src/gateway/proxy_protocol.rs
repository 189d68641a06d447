//! PROXY protocol (HAProxy's v1 text and v2 binary headers) on the main listener, for a
//! gateway behind a TCP load balancer: `proxy_protocol: true` in scopegate.yaml.
//!
//! Every connection must start with one header, read before anything else (before the
//! TLS handshake on a TLS listener), within `timeouts.header_read` and at most
//! [`MAX_HEADER_BYTES`] long. The source address it carries becomes the connection's
//! peer address. A connection without a valid header is closed: with the option on, a
//! header-less connection is either a misconfigured balancer or someone bypassing it.
//! Parsing is the `ppp` crate's; v2 TLVs are skipped (their length is part of the header).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ppp::v2;
use ppp::{HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest header accepted: a v1 header is at most 107 bytes; a v2 header is 16 bytes
/// plus addresses (at most 216) plus TLVs, which balancers keep to a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Why a connection's PROXY header was refused (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection closed before a complete PROXY protocol header")]
    Closed,
    #[error("no complete PROXY protocol header within the header read timeout")]
    Timeout,
    #[error("the connection did not start with a valid PROXY protocol header")]
    Invalid,
    #[error("PROXY protocol header longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("PROXY protocol header for a protocol other than TCP")]
    NotStream,
    #[error("the peer is not in trusted_proxies")]
    UntrustedPeer,
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(#[from] io::Error),
}

impl ProxyHeaderError {
    /// The `reason` label of `scopegate_proxy_protocol_rejected_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyHeaderError::Closed | ProxyHeaderError::Io(_) => "closed",
            ProxyHeaderError::Timeout => "timeout",
            ProxyHeaderError::Invalid | ProxyHeaderError::NotStream => "invalid",
            ProxyHeaderError::TooLong => "too_long",
            ProxyHeaderError::UntrustedPeer => "untrusted_peer",
        }
    }

    pub const LABELS: [&'static str; 5] =
        ["closed", "timeout", "invalid", "too_long", "untrusted_peer"];
}

/// A complete header: its length and the client's address (`None`: use the connection's
/// own peer, as the protocol requires for v1 `UNKNOWN`, v2 `LOCAL` health checks and
/// address families without an IP address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub len: usize,
    pub source: Option<SocketAddr>,
}

/// The longest v1 header, `\r\n` included (HAProxy's specification).
const V1_MAX: usize = 107;

/// Parses the start of a connection: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, ProxyHeaderError> {
    // A v1 line is judged whole: cut inside a field (`... 51000 4` of `... 51000 443`)
    // it may look complete and wrong, or wrong and complete.
    if buf.first() == Some(&b'P') && !buf.iter().take(V1_MAX).any(|&b| b == b'\n') {
        let n = buf.len().min(6);
        if buf[..n] != b"PROXY "[..n] {
            return Err(ProxyHeaderError::Invalid);
        }
        if buf.len() >= V1_MAX {
            return Err(ProxyHeaderError::TooLong);
        }
        return Ok(None);
    }
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        if let HeaderResult::V2(Err(v2::ParseError::Partial(_, length))) = &result {
            if 16 + length > MAX_HEADER_BYTES {
                return Err(ProxyHeaderError::TooLong);
            }
        }
        if buf.len() >= MAX_HEADER_BYTES {
            return Err(ProxyHeaderError::TooLong);
        }
        return Ok(None);
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Ok(Some(Parsed {
                len: h.header.len(),
                source,
            }))
        }
        HeaderResult::V2(Ok(h)) => {
            if h.len() > MAX_HEADER_BYTES {
                return Err(ProxyHeaderError::TooLong);
            }
            let source = match h.command {
                v2::Command::Local => None,
                v2::Command::Proxy => match h.addresses {
                    v2::Addresses::IPv4(a) if h.protocol == v2::Protocol::Stream => {
                        Some(SocketAddr::from((a.source_address, a.source_port)))
                    }
                    v2::Addresses::IPv6(a) if h.protocol == v2::Protocol::Stream => {
                        Some(SocketAddr::from((a.source_address, a.source_port)))
                    }
                    v2::Addresses::IPv4(_) | v2::Addresses::IPv6(_) => {
                        return Err(ProxyHeaderError::NotStream)
                    }
                    v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
                },
            };
            Ok(Some(Parsed {
                len: h.len(),
                source,
            }))
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Err(ProxyHeaderError::Invalid),
    }
}

/// Reads the header from the start of `stream`, bounded in time and size. Returns the
/// bytes read past the header (replay them with [`Prefixed`]) and the source address.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Vec<u8>, Option<SocketAddr>), ProxyHeaderError> {
    let read = async {
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 512];
        loop {
            let want = chunk.len().min(MAX_HEADER_BYTES - buf.len()).max(1);
            let n = stream.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Err(ProxyHeaderError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(parsed) = parse(&buf)? {
                buf.drain(..parsed.len);
                return Ok((buf, parsed.source));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyHeaderError::Timeout)?
}

/// A stream that first yields bytes already read past the PROXY header (usually the
/// start of the HTTP request or the TLS ClientHello), then reads from `inner`.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_SIG: &[u8; 12] = b"\r\n\r\n\x00\r\nQUIT\n";

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn v2_tcp4(src: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut p = src.to_vec();
        p.extend_from_slice(&[10, 0, 0, 1]);
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&443u16.to_be_bytes());
        p.extend_from_slice(tlvs);
        v2(1, 0x11, &p)
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let buf = b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let p = parse(buf).unwrap().unwrap();
        assert_eq!(p.source, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(&buf[p.len..], b"GET / HTTP/1.1\r\n");
        let buf = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        let p = parse(buf).unwrap().unwrap();
        assert_eq!(p.source, Some("[2001:db8::7]:51000".parse().unwrap()));
        assert_eq!(p.len, buf.len());
    }

    #[test]
    fn v1_unknown_uses_the_connection_peer() {
        let p = parse(b"PROXY UNKNOWN\r\nGET").unwrap().unwrap();
        assert_eq!(
            p,
            Parsed {
                len: 15,
                source: None
            }
        );
    }

    #[test]
    fn v2_with_tlvs_skips_them() {
        // PP2_TYPE_AUTHORITY ("api.example") and PP2_TYPE_NOOP.
        let mut tlvs = vec![0x02, 0, 11];
        tlvs.extend_from_slice(b"api.example");
        tlvs.extend_from_slice(&[0x04, 0, 3, 0, 0, 0]);
        let mut buf = v2_tcp4([198, 51, 100, 7], 40000, &tlvs);
        let header_len = buf.len();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let p = parse(&buf).unwrap().unwrap();
        assert_eq!(p.source, Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(p.len, header_len);
    }

    #[test]
    fn v2_ipv6_local_and_unspecified() {
        let mut p6 = Vec::new();
        p6.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p6.extend_from_slice(&[0; 16]);
        p6.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        let p = parse(&v2(1, 0x21, &p6)).unwrap().unwrap();
        assert_eq!(p.source, Some("[2001:db8::7]:40000".parse().unwrap()));
        // LOCAL (a balancer's health check): the real connection endpoints apply.
        let p = parse(&v2(0, 0x00, &[])).unwrap().unwrap();
        assert_eq!(p.source, None);
        let p = parse(&v2(0, 0x11, &[0; 12])).unwrap().unwrap();
        assert_eq!(p.source, None);
        let p = parse(&v2(1, 0x00, &[])).unwrap().unwrap();
        assert_eq!(p.source, None);
    }

    #[test]
    fn partial_headers_ask_for_more_wherever_they_are_cut() {
        for full in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n"[..],
            b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n",
            b"PROXY UNKNOWN\r\n",
        ] {
            for cut in 1..full.len() {
                assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
            }
            assert_eq!(parse(full).unwrap().unwrap().len, full.len());
        }
        let v2 = v2_tcp4([198, 51, 100, 7], 40000, &[0x04, 0, 1, 0]);
        for cut in 1..v2.len() {
            assert_eq!(parse(&v2[..cut]).unwrap(), None, "cut at {cut}");
        }
        // Early refusal of what can never become a header.
        assert!(matches!(parse(b"PRX"), Err(ProxyHeaderError::Invalid)));
        assert!(matches!(
            parse(b"POST / HTTP/1.1"),
            Err(ProxyHeaderError::Invalid)
        ));
    }

    #[test]
    fn invalid_starts_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PROXY TCP4 999.0.2.7 10.0.0.1 51000 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 051000 443\r\n",
            b"PROXY TCP9 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyHeaderError::Invalid)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Version 1 in a v2 signature, and an unknown command.
        let mut wrong_version = v2_tcp4([1, 2, 3, 4], 1, &[]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            parse(&wrong_version),
            Err(ProxyHeaderError::Invalid)
        ));
        let mut wrong_command = v2_tcp4([1, 2, 3, 4], 1, &[]);
        wrong_command[12] = 0x2f;
        assert!(matches!(
            parse(&wrong_command),
            Err(ProxyHeaderError::Invalid)
        ));
    }

    #[test]
    fn datagram_headers_are_refused() {
        let mut udp = v2_tcp4([1, 2, 3, 4], 1, &[]);
        udp[13] = 0x12;
        assert!(matches!(parse(&udp), Err(ProxyHeaderError::NotStream)));
    }

    #[test]
    fn oversized_headers_are_refused_early() {
        // A v2 header announcing 60000 bytes of TLVs is refused on its first 16 bytes.
        let mut big = V2_SIG.to_vec();
        big.extend_from_slice(&[0x21, 0x11]);
        big.extend_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(parse(&big), Err(ProxyHeaderError::TooLong)));
        // A v1 line without an end.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(parse(&long).is_err());
    }

    proptest::proptest! {
        /// Whatever a peer sends, parsing answers (never panics), and a complete header
        /// never claims more bytes than were given.
        #[test]
        fn parse_never_panics(
            kind in 0u8..3,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut buf = match kind {
                0 => Vec::new(),
                1 => V2_SIG.to_vec(),
                _ => b"PROXY ".to_vec(),
            };
            buf.extend_from_slice(&tail);
            if let Ok(Some(p)) = parse(&buf) {
                proptest::prop_assert!(p.len <= buf.len());
            }
        }
    }

    #[tokio::test]
    async fn read_header_replays_what_follows() {
        let (mut client, server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        let task = tokio::spawn(async move {
            // Written in pieces: the reader must wait for the rest.
            client.write_all(b"PROXY TCP4 192.0.2.7 10.").await.unwrap();
            client.write_all(b"0.0.1 51000 443\r\nhello").await.unwrap();
            client
        });
        let mut server = server;
        let (rest, source) = read_header(&mut server, Duration::from_secs(5))
            .await
            .unwrap();
        let mut stream = Prefixed::new(rest, server);
        assert_eq!(source, Some("192.0.2.7:51000".parse().unwrap()));
        let _client = task.await.unwrap();
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[tokio::test]
    async fn read_header_times_out() {
        let (_client, mut server) = tokio::io::duplex(64);
        let err = read_header(&mut server, Duration::from_millis(50))
            .await
            .err();
        assert!(matches!(err, Some(ProxyHeaderError::Timeout)));
    }
}
