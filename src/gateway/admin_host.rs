//! Which `Host` the admin listener answers for: the defence against DNS rebinding.
//!
//! A web page on any site can point its own host name at the admin listener's address
//! (DNS rebinding). A browser then sends the page's requests there and treats the answers
//! as the page's own: the page could read `/metrics` (every token's usage) or the
//! console's pages. Such a request carries the page's host name in `Host`. A `Host` that
//! is an IP address or `localhost` cannot have been rebound, so it is always answered. Any
//! other name must be listed in `admin.allowed_hosts`; that includes `*.localhost` names,
//! which not every resolver keeps on loopback. The health and readiness probes,
//! which tell a page nothing, are answered for any name.
//!
//! The check applies whenever `allowed_hosts` is set. It also applies when the listener is
//! on a loopback address (the default `127.0.0.1:9901`), which only this machine reaches,
//! by IP address or `localhost`. A listener on another address without `allowed_hosts`
//! answers every name, so upgrading never stops a scrape that reaches the gateway by its
//! host name. The start-up log says so.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::HeaderMap;

use crate::domain::request::valid_port;

/// The health and readiness probes, answered whatever the `Host`: they tell a page
/// nothing, and health checkers send all kinds of `Host` values.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/generation")
}

/// Whether `ip` is a loopback address, an IPv4 one written as IPv6 (`::ffff:127.0.0.1`)
/// included.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether the admin listener answers a request with these `headers`. `loopback`: the
/// listener is on a loopback address. `allowed`: `admin.allowed_hosts`, lowercase.
pub fn answers(headers: &HeaderMap, loopback: bool, allowed: Option<&[String]>) -> bool {
    if !loopback && allowed.is_none() {
        return true;
    }
    let mut hosts = headers.get_all(HOST).iter();
    let Some(host) = hosts.next() else {
        // Browsers always send `Host`: a request without one is no rebound page's.
        return true;
    };
    if hosts.next().is_some() {
        return false;
    }
    let Ok(host) = host.to_str() else {
        return false;
    };
    match parse_host(host) {
        Some(Host::Address) => true,
        Some(Host::Name(name)) if name.eq_ignore_ascii_case("localhost") => true,
        Some(Host::Name(name)) => allowed
            .unwrap_or_default()
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(name)),
        None => false,
    }
}

/// What a `host[:port]` value names.
enum Host<'a> {
    /// An IPv4 address or a bracketed IPv6 one.
    Address,
    /// A name, without port or trailing dot.
    Name(&'a str),
}

/// `None` for a value that is not `host[:port]`.
fn parse_host(value: &str) -> Option<Host<'_>> {
    if let Some(rest) = value.strip_prefix('[') {
        let (literal, after) = rest.split_once(']')?;
        literal.parse::<Ipv6Addr>().ok()?;
        let port_ok = after.is_empty() || valid_port(after.strip_prefix(':')?);
        return port_ok.then_some(Host::Address);
    }
    let name = match value.rsplit_once(':') {
        Some((name, port)) if valid_port(port) => name,
        Some(_) => return None,
        None => value,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.parse::<Ipv4Addr>().is_ok() || ends_in_a_number(name) {
        return Some(Host::Address);
    }
    (!name.is_empty()).then_some(Host::Name(name))
}

/// A name whose last label is a number (`127.1`, `0x7f.1`) is an IPv4 address to a URL
/// parser (WHATWG URL, "ends in a number"), never a name DNS could rebind: no top-level
/// domain is numeric.
fn ends_in_a_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    let digits = match last.get(..2) {
        Some(prefix) if prefix.eq_ignore_ascii_case("0x") => &last[2..],
        _ => last,
    };
    let hex = digits.len() < last.len();
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()))
}

/// At most one log line per `every` about refused host names: a rebinding page retries
/// in a loop, and each refusal must not cost a line.
pub struct RefusalLog {
    started: Instant,
    every: Duration,
    /// Milliseconds after `started` before which no line is written.
    quiet_until_ms: AtomicU64,
    /// Refusals since the last line.
    unlogged: AtomicU64,
}

impl RefusalLog {
    pub fn new(every: Duration) -> RefusalLog {
        RefusalLog {
            started: Instant::now(),
            every,
            quiet_until_ms: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Counts a refusal; `Some(refusals since the last line, this one included)` when
    /// this one is to be logged.
    pub fn note(&self) -> Option<u64> {
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let quiet_until = self.quiet_until_ms.load(Ordering::Relaxed);
        let next = now + self.every.as_millis() as u64;
        let claimed = now >= quiet_until
            && self
                .quiet_until_ms
                .compare_exchange(quiet_until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        claimed.then(|| self.unlogged.swap(0, Ordering::Relaxed))
    }
}

/// The request's `Host` fields for a log line: escaped, and cut at 100 characters so a
/// client cannot fill the log.
pub fn for_log(headers: &HeaderMap) -> String {
    let joined = headers
        .get_all(HOST)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect::<Vec<_>>()
        .join(", ");
    let cut: String = joined.chars().take(100).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_host(hosts: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for h in hosts {
            map.append(HOST, HeaderValue::from_str(h).unwrap());
        }
        map
    }

    fn loopback_answers(host: &str) -> bool {
        answers(&with_host(&[host]), true, None)
    }

    #[test]
    fn a_loopback_listener_answers_addresses_and_localhost_only() {
        for host in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "10.1.2.3:80",
            "127.1:9901",
            "0x7f.1",
            "2130706433",
            "[::1]:9901",
            "[::1]",
            "[fe80::1]",
            "localhost:9901",
            "LOCALHOST",
            "localhost.",
        ] {
            assert!(loopback_answers(host), "{host}");
        }
        for host in [
            "evil.example:9901",
            "evil.example",
            "127.0.0.1.evil.example",
            "notlocalhost",
            "console.localhost:9901",
            "localhost.evil.example",
            "evil.example.0x",
            "1.evil.example",
            "[::1",
            "[not-v6]:9901",
            "[::1]x",
            "127.0.0.1:99x",
            "127.0.0.1:",
            ":9901",
            "",
        ] {
            assert!(!loopback_answers(host), "{host}");
        }
    }

    #[test]
    fn listed_names_and_the_wildcard_are_answered() {
        let allowed = vec!["gw.internal".to_owned()];
        let h = with_host(&["GW.internal.:9901"]);
        assert!(answers(&h, false, Some(&allowed)));
        assert!(!answers(&with_host(&["gw.other"]), false, Some(&allowed)));
        assert!(answers(&with_host(&["127.0.0.1"]), false, Some(&allowed)));
        let any = vec!["*".to_owned()];
        assert!(answers(&with_host(&["anything.example"]), true, Some(&any)));
    }

    #[test]
    fn a_listener_elsewhere_without_a_list_answers_every_name() {
        assert!(answers(&with_host(&["gw-1:9901"]), false, None));
    }

    #[test]
    fn refusals_are_logged_once_per_period_with_a_count() {
        let log = RefusalLog::new(Duration::from_secs(3600));
        assert_eq!(log.note(), Some(1));
        assert_eq!(log.note(), None);
        assert_eq!(log.note(), None);
        let log = RefusalLog::new(Duration::ZERO);
        assert_eq!(log.note(), Some(1));
        assert_eq!(log.note(), Some(1));
    }

    #[test]
    fn an_ipv4_loopback_written_as_ipv6_is_loopback() {
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn several_hosts_are_refused_and_none_is_answered() {
        assert!(!answers(
            &with_host(&["127.0.0.1", "evil.example"]),
            true,
            None
        ));
        assert!(answers(&HeaderMap::new(), true, None));
    }
}
