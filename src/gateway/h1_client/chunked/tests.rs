use super::*;

/// Decodes `wire` fed in pieces of `piece` bytes: the body, or the first error.
fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<(Vec<u8>, bool), Error> {
    let mut decoder = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut pieces = wire.chunks(piece.max(1));
    loop {
        match decoder.step(&mut buf)? {
            Step::Data(data) => body.extend_from_slice(&data),
            Step::End => return Ok((body, buf.is_empty())),
            Step::NeedMore => match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => return Ok((body, false)),
            },
        }
    }
}

fn decode(wire: &[u8]) -> Result<Vec<u8>, Error> {
    let whole = decode_in_pieces(wire, wire.len())?;
    // Byte by byte gives the same result: no state is lost between reads.
    let bytewise = decode_in_pieces(wire, 1)?;
    assert_eq!(whole, bytewise);
    assert!(whole.1, "the body did not end cleanly: {wire:?}");
    Ok(whole.0)
}

#[test]
fn plain_chunks_extensions_spaces_and_trailers() {
    assert_eq!(decode(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), b"hello");
    assert_eq!(
        decode(b"5;name=val\r\nhello\r\n6 \t;x\r\n world\r\n0\r\n\r\n").unwrap(),
        b"hello world"
    );
    assert_eq!(
        decode(b"A\r\n0123456789\r\n0\r\nx-sum: 1\r\nx-other: two\r\n\r\n").unwrap(),
        b"0123456789"
    );
    assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
    assert_eq!(decode(b"00000003\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
}

#[test]
fn the_end_is_reported_with_nothing_after_it_consumed() {
    let mut decoder = Chunked::default();
    let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1"[..]);
    assert_eq!(
        decoder.step(&mut buf).unwrap(),
        Step::Data(Bytes::from("a"))
    );
    assert_eq!(decoder.step(&mut buf).unwrap(), Step::End);
    assert_eq!(decoder.step(&mut buf).unwrap(), Step::End);
    assert_eq!(&buf[..], b"HTTP/1.1");
}

#[test]
fn malformed_framing_is_an_error() {
    for wire in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"10000000000000000\r\n",
        b"0\r\n\r\r",
        b"0\r\nbad trailer\r\n\r\n",
        b"0\r\nx-a: 1\rX",
    ] {
        assert!(
            matches!(
                decode_in_pieces(wire, wire.len()),
                Err(Error::InvalidBody(_))
            ),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
        assert!(decode_in_pieces(wire, 1).is_err());
    }
}

#[test]
fn limits_hold_extensions_and_trailers() {
    let mut long_extension = b"1;".to_vec();
    long_extension.extend(std::iter::repeat_n(b'x', 16 * 1024));
    long_extension.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert!(decode_in_pieces(&long_extension, 4096).is_err());

    let mut many_trailers = b"0\r\n".to_vec();
    for i in 0..100 {
        many_trailers.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many_trailers.extend_from_slice(b"\r\n");
    assert!(decode_in_pieces(&many_trailers, 4096).is_err());

    let mut big_trailer = b"0\r\nx-big: ".to_vec();
    big_trailer.extend(std::iter::repeat_n(b'v', 16 * 1024));
    big_trailer.extend_from_slice(b"\r\n\r\n");
    assert!(decode_in_pieces(&big_trailer, 4096).is_err());

    // Under the limits, the same shapes pass.
    let mut fine = b"1;".to_vec();
    fine.extend(std::iter::repeat_n(b'x', 1000));
    fine.extend_from_slice(b"\r\na\r\n0\r\nx-a: 1\r\n\r\n");
    assert_eq!(decode(&fine).unwrap(), b"a");
}

#[test]
fn a_body_cut_short_needs_more_and_never_ends() {
    for wire in [&b"5\r\nhel"[..], b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n"] {
        let (_, ended) = decode_in_pieces(wire, wire.len()).unwrap();
        assert!(!ended, "{wire:?}");
    }
}
