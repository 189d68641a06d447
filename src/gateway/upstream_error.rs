//! Why an upstream request failed, in our words: the client library's errors
//! (`client error (Connect)`) name neither the cause nor what to check.

use std::error::Error as StdError;
use std::io::ErrorKind;

/// The cause when the upstream hung up mid-response, whichever client was reading.
const CLOSED_EARLY: &str = "the upstream closed the connection before sending a complete response";

/// A short cause for a failed upstream exchange, for the log line of a 502.
pub fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut io_kind = None;
    let mut hyper_error: Option<&hyper::Error> = None;
    let mut tls: Option<&rustls::Error> = None;
    let mut owned: Option<&crate::gateway::h1_client::Error> = None;
    let mut innermost = error.to_string();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(error);
    let mut dns = false;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
            if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                tls.get_or_insert(inner);
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            hyper_error.get_or_insert(h);
        }
        if let Some(o) = e.downcast_ref::<crate::gateway::h1_client::Error>() {
            owned.get_or_insert(o);
        }
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            tls.get_or_insert(t);
        }
        // hyper-util's connector names its failures in its message only.
        dns |= e.to_string() == "dns error";
        innermost = e.to_string();
        cur = e.source();
    }
    if let Some(t) = tls {
        return format!("TLS handshake with the upstream failed: {t}");
    }
    if dns {
        return format!("cannot resolve the upstream's host name ({innermost})");
    }
    if let Some(kind) = io_kind {
        let known = match kind {
            ErrorKind::ConnectionRefused => Some(
                "connection refused: nothing listens at that address (is the upstream running?)",
            ),
            ErrorKind::TimedOut => {
                Some("connect timed out (timeouts.upstream_connect): the host does not answer")
            }
            ErrorKind::ConnectionReset => Some("the upstream reset the connection"),
            ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
                Some("the upstream closed the connection before answering")
            }
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                Some("the upstream's network is unreachable")
            }
            ErrorKind::AddrNotAvailable => Some("the upstream address cannot be used from here"),
            _ => None,
        };
        if let Some(text) = known {
            return text.to_owned();
        }
    }
    if let Some(o) = owned {
        use crate::gateway::h1_client::Error as Owned;
        match o {
            Owned::ClosedBeforeHead | Owned::ClosedInBody => return CLOSED_EARLY.to_owned(),
            Owned::InvalidHead(what) | Owned::InvalidBody(what) => {
                return format!("the upstream's response is not valid HTTP ({what})");
            }
            Owned::HeadTooLarge => {
                return format!("the upstream's response head is too large ({o})");
            }
            Owned::Io(_) | Owned::RequestBody(_) | Owned::RequestLength(_) => {}
        }
    }
    if let Some(h) = hyper_error {
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return CLOSED_EARLY.to_owned();
        }
        if h.is_parse() {
            return "the upstream's response is not valid HTTP".to_owned();
        }
        if h.is_timeout() {
            return "the upstream connection timed out".to_owned();
        }
    }
    format!("upstream exchange failed: {innermost}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_cause_of_an_io_error() {
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        assert!(describe(&refused).starts_with("connection refused"));
        let timeout = std::io::Error::from(ErrorKind::TimedOut);
        assert!(describe(&timeout).contains("timed out"));
        let other = std::io::Error::other("strange");
        assert_eq!(describe(&other), "upstream exchange failed: strange");
    }

    #[test]
    fn names_the_cause_of_an_owned_connection_error() {
        use crate::gateway::h1_client::Error as Owned;
        use crate::gateway::upstream_conn::ExchangeError;
        let closed = ExchangeError::Exchange(Owned::ClosedBeforeHead);
        assert_eq!(
            describe(&closed),
            "the upstream closed the connection before sending a complete response"
        );
        let invalid = ExchangeError::Exchange(Owned::InvalidHead("invalid Content-Length"));
        assert_eq!(
            describe(&invalid),
            "the upstream's response is not valid HTTP (invalid Content-Length)"
        );
        let large = ExchangeError::Exchange(Owned::HeadTooLarge);
        assert!(describe(&large).starts_with("the upstream's response head is too large"));
        let reset = ExchangeError::Exchange(Owned::Io(ErrorKind::ConnectionReset.into()));
        assert_eq!(describe(&reset), "the upstream reset the connection");
    }
}
