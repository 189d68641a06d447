use super::*;

fn parse_all(wire: &str, method: &Method) -> Result<(Parsed, BytesMut), Error> {
    let mut buf = BytesMut::from(wire.as_bytes());
    let parsed = parse(&mut buf, method)?;
    Ok((parsed, buf))
}

fn final_head(wire: &str) -> Head {
    match parse_all(wire, &Method::GET) {
        Ok((Parsed::Final(head), _)) => head,
        other => panic!("{wire:?}: {other:?}"),
    }
}

#[test]
fn a_sized_response_keeps_its_fields_and_leaves_the_body() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\nx-a: 2\r\n\r\nok"[..]);
    let Ok(Parsed::Final(head)) = parse(&mut buf, &Method::GET) else {
        panic!("not final");
    };
    assert_eq!(head.framing, Framing::Length(2));
    assert!(head.keep_alive);
    assert_eq!(head.response.status(), 200);
    assert_eq!(head.response.version(), Version::HTTP_11);
    let values: Vec<_> = head.response.headers().get_all("x-a").iter().collect();
    assert_eq!(values, ["1", "2"]);
    assert!(head
        .response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .is_none());
    assert_eq!(&buf[..], b"ok");
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    let chunked = final_head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
    assert_eq!(chunked.framing, Framing::Chunked);
    assert!(chunked.keep_alive);
    let not_chunked = final_head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
    assert_eq!(not_chunked.framing, Framing::UntilClose);
    assert!(!not_chunked.keep_alive);
    let bare = final_head("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(bare.framing, Framing::UntilClose);
    assert!(!bare.keep_alive);
    for status in ["204 No Content", "304 Not Modified"] {
        let head = final_head(&format!("HTTP/1.1 {status}\r\ncontent-length: 9\r\n\r\n"));
        assert_eq!(head.framing, Framing::Length(0), "{status}");
        assert!(head.keep_alive);
    }
    let Ok((Parsed::Final(head), _)) = parse_all(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n",
        &Method::HEAD,
    ) else {
        panic!("HEAD");
    };
    assert_eq!(head.framing, Framing::Length(0));
    let switch = final_head("HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n");
    assert_eq!(switch.framing, Framing::Length(0));
    assert!(!switch.keep_alive);
    // A 2xx to CONNECT turns the connection into a tunnel: its length fields mean nothing
    // (RFC 9110 §9.3.6), and the connection never carries another request.
    for wire in [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
    ] {
        let Ok((Parsed::Final(tunnel), _)) = parse_all(wire, &Method::CONNECT) else {
            panic!("CONNECT {wire:?}");
        };
        assert_eq!(tunnel.framing, Framing::Length(0), "{wire:?}");
        assert!(!tunnel.keep_alive, "{wire:?}");
    }
    let refused = parse_all(
        "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno",
        &Method::CONNECT,
    );
    assert!(
        matches!(refused, Ok((Parsed::Final(ref h), _)) if h.framing == Framing::Length(2)),
        "{refused:?}"
    );
}

#[test]
fn a_length_beside_chunked_is_removed_and_the_connection_not_reused() {
    let head =
        final_head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
    assert!(head.response.headers().get("content-length").is_none());
    assert!(!head.keep_alive);
}

#[test]
fn content_length_must_be_one_number() {
    for ok in ["7", "7, 7", " 7 "] {
        let head = final_head(&format!("HTTP/1.1 200 OK\r\ncontent-length: {ok}\r\n\r\n"));
        assert_eq!(head.framing, Framing::Length(7), "{ok:?}");
        let told: Vec<_> = head
            .response
            .headers()
            .get_all("content-length")
            .iter()
            .collect();
        assert_eq!(told, ["7"], "the client is told one length for {ok:?}");
    }
    let twice = final_head("HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 7\r\n\r\n");
    assert_eq!(twice.framing, Framing::Length(7));
    let told: Vec<_> = twice
        .response
        .headers()
        .get_all("content-length")
        .iter()
        .collect();
    assert_eq!(told, ["7"]);
    for bad in [
        "content-length: abc",
        "content-length: -1",
        "content-length: +7",
        "content-length: 1, 2",
        "content-length: 7,",
        "content-length: 1\r\ncontent-length: 2",
        "content-length: 99999999999999999999",
    ] {
        let wire = format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\n");
        assert!(
            matches!(parse_all(&wire, &Method::GET), Err(Error::InvalidHead(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    assert!(
        !final_head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").keep_alive
    );
    assert!(
        !final_head("HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
            .keep_alive
    );
    assert!(!final_head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
    assert!(
        final_head("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n")
            .keep_alive
    );
    assert!(matches!(
        parse_all(
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            &Method::GET
        ),
        Err(Error::InvalidHead(_))
    ));
}

#[test]
fn a_connection_field_is_kept_only_when_it_names_other_fields() {
    let head = final_head("HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n");
    assert!(head.keep_alive);
    assert!(head.response.headers().get("connection").is_none());
    let head = final_head(
        "HTTP/1.1 200 OK\r\nconnection: close, x-trace\r\nx-trace: 1\r\ncontent-length: 0\r\n\r\n",
    );
    assert!(!head.keep_alive);
    assert_eq!(head.response.headers()["connection"], "close, x-trace");
    let options = |v: &'static str| ConnectionOptions::of(&HeaderValue::from_static(v));
    assert_eq!(
        options(" CLOSE ,, keep-alive"),
        ConnectionOptions {
            close: true,
            keep_alive: true,
            names_fields: false
        }
    );
    assert!(options("upgrade").names_fields);
    assert!(!options("").names_fields);
}

#[test]
fn interim_responses_are_skipped_and_partial_heads_wait() {
    let wire = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n";
    let Ok((Parsed::Interim(len), _)) = parse_all(wire, &Method::GET) else {
        panic!("interim");
    };
    assert_eq!(&wire[len..], "HTTP/1.1 200 OK\r\n");
    assert!(matches!(
        parse_all("HTTP/1.1 200 OK\r\ncontent-le", &Method::GET),
        Ok((Parsed::Partial, _))
    ));
    assert!(matches!(
        parse_all("", &Method::GET),
        Ok((Parsed::Partial, _))
    ));
}

#[test]
fn a_non_canonical_reason_is_kept() {
    let head = final_head("HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n");
    let reason = head
        .response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .unwrap();
    assert_eq!(reason.as_bytes(), b"Fine");
}

#[test]
fn malformed_or_oversized_heads_are_errors() {
    for wire in [
        "HELLO\r\n\r\n",
        "HTTP/1.1 2000 X\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx-a : 1\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nbad\0name: 1\r\n\r\n",
    ] {
        assert!(
            matches!(parse_all(wire, &Method::GET), Err(Error::InvalidHead(_))),
            "{wire:?}"
        );
    }
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..101 {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(matches!(
        parse_all(&many, &Method::GET),
        Err(Error::HeadTooLarge)
    ));
    let long = format!("HTTP/1.1 200 OK\r\nx-big: {}", "v".repeat(MAX_HEAD_BYTES));
    assert!(matches!(
        parse_all(&long, &Method::GET),
        Err(Error::HeadTooLarge)
    ));
}
