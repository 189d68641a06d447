//! The client address a request is judged by (`allowed_ips`, the per-address brute-force
//! throttle) and reported upstream in `X-Forwarded-For`.
//!
//! It is the connection's peer (the TCP peer, or the source a PROXY protocol header
//! carried) unless that peer is in `trusted_proxies`. Then `X-Forwarded-For` is walked
//! from the right, the end the trusted proxy itself appended to, skipping entries that
//! are trusted proxies too; the first entry that is not is the client. Everything left
//! of it was written by the client and is ignored. A peer that is not trusted cannot
//! choose its address: its `X-Forwarded-For` is never read.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::domain::netaddr::{canonical, CidrSet};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// More trusted hops than any real proxy chain has; a longer run of trusted entries is
/// treated like a malformed one.
const MAX_HOPS: usize = 32;

/// The outcome of resolving a request's client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client; when `established` is false, the nearest hop that could be read.
    pub ip: IpAddr,
    /// False when a trusted proxy's `X-Forwarded-For` held an entry that is not an
    /// address (or too many hops): the client is then unknown, and tokens with
    /// `allowed_ips` are refused rather than judged by a proxy's address.
    pub established: bool,
    /// The `X-Forwarded-For` to send upstream when it is more than the peer alone: the
    /// client, then each trusted hop in order, ending with the peer.
    pub forwarded_for: Option<HeaderValue>,
}

impl ClientAddr {
    /// The access log's `client`: `ip:port` when the client is the connection's peer
    /// (its port is known), the bare address when it came from `X-Forwarded-For`.
    pub fn log_text(&self, peer: SocketAddr) -> String {
        if self.established && self.forwarded_for.is_none() {
            SocketAddr::new(self.ip, peer.port()).to_string()
        } else {
            self.ip.to_string()
        }
    }

    /// The address for an allowlist: `None` when it could not be established.
    pub fn for_allowlist(&self) -> Option<IpAddr> {
        self.established.then_some(self.ip)
    }
}

/// Resolves the client address of a request that arrived from `peer`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &CidrSet) -> ClientAddr {
    let peer = canonical(peer);
    let direct = ClientAddr {
        ip: peer,
        established: true,
        forwarded_for: None,
    };
    if trusted.is_empty() || !trusted.contains(peer) {
        return direct;
    }
    // Hops from the gateway outwards: the peer first.
    let mut hops = vec![peer];
    let mut established = true;
    'walk: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            established = false;
            break;
        };
        for entry in text.rsplit(',') {
            let entry = entry.trim_matches([' ', '\t']);
            if entry.is_empty() {
                // RFC 9110 §5.6.1: empty list elements are allowed and carry nothing.
                continue;
            }
            let Some(ip) = parse_entry(entry) else {
                established = false;
                break 'walk;
            };
            if hops.len() > MAX_HOPS {
                established = false;
                break 'walk;
            }
            let ip = canonical(ip);
            hops.push(ip);
            if !trusted.contains(ip) {
                break 'walk;
            }
        }
    }
    let ip = *hops.last().unwrap_or(&peer);
    let forwarded_for = (hops.len() > 1)
        .then(|| {
            let rendered: Vec<String> = hops.iter().rev().map(IpAddr::to_string).collect();
            HeaderValue::from_str(&rendered.join(", ")).ok()
        })
        .flatten();
    ClientAddr {
        ip,
        established,
        forwarded_for,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or in brackets. Anything else (`unknown`, obfuscated
/// identifiers, host names) is not an address.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::netaddr::parse_cidr;

    fn trusted(list: &[&str]) -> CidrSet {
        CidrSet::new(list.iter().map(|e| parse_cidr(e).unwrap()))
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sent(c: &ClientAddr) -> Option<&str> {
        c.forwarded_for.as_ref().map(|v| v.to_str().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(ip("192.0.2.9"), &xff(&["10.0.0.1, 198.51.100.1"]), &t);
        assert_eq!(c.ip, ip("192.0.2.9"));
        assert!(c.established);
        assert_eq!(c.forwarded_for, None);
        let none = resolve(ip("10.0.0.5"), &xff(&["198.51.100.1"]), &CidrSet::default());
        assert_eq!(
            none.ip,
            ip("10.0.0.5"),
            "no trusted proxies: XFF is never read"
        );
    }

    #[test]
    fn a_trusted_peer_gives_the_right_most_untrusted_entry() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(
            ip("10.0.0.2"),
            &xff(&["203.0.113.66, 198.51.100.7, 10.0.0.1"]),
            &t,
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert!(c.established);
        // The spoofable left part is dropped; the hops are appended in order.
        assert_eq!(sent(&c), Some("198.51.100.7, 10.0.0.1, 10.0.0.2"));
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(ip("10.0.0.2"), &xff(&["198.51.100.7", "10.0.0.1,"]), &t);
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(sent(&c), Some("198.51.100.7, 10.0.0.1, 10.0.0.2"));
    }

    #[test]
    fn without_forwarded_for_the_trusted_peer_is_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(ip("10.0.0.2"), &HeaderMap::new(), &t);
        assert_eq!(c.ip, ip("10.0.0.2"));
        assert!(c.established);
        assert_eq!(c.forwarded_for, None);
    }

    #[test]
    fn an_all_trusted_chain_gives_its_left_most_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(ip("10.0.0.2"), &xff(&["10.9.9.9, 10.0.0.1"]), &t);
        assert_eq!(c.ip, ip("10.9.9.9"));
        assert!(c.established);
    }

    #[test]
    fn ports_and_brackets_are_read() {
        let t = trusted(&["10.0.0.0/8"]);
        for (entry, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
        ] {
            let c = resolve(ip("10.0.0.2"), &xff(&[entry]), &t);
            assert_eq!(c.ip, ip(want), "{entry}");
            assert!(c.established, "{entry}");
        }
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_and_leaves_the_client_unknown() {
        let t = trusted(&["10.0.0.0/8"]);
        for value in [
            "198.51.100.7, unknown",
            "198.51.100.7, _hidden",
            "198.51.100.7, proxy.example",
            "198.51.100.7, 10.0.0.1 10.0.0.3",
            "198.51.100.7, 999.0.0.1",
        ] {
            let c = resolve(ip("10.0.0.2"), &xff(&[value]), &t);
            assert!(!c.established, "{value}");
            assert_eq!(c.for_allowlist(), None, "{value}");
            assert_eq!(c.ip, ip("10.0.0.2"), "{value}: the nearest known hop");
        }
        // Left of the first untrusted entry, garbage is the client's and is ignored.
        let c = resolve(ip("10.0.0.2"), &xff(&["garbage, 198.51.100.7"]), &t);
        assert!(c.established);
        assert_eq!(c.ip, ip("198.51.100.7"));
    }

    #[test]
    fn a_long_run_of_trusted_hops_is_not_established() {
        let t = trusted(&["10.0.0.0/8"]);
        let chain = vec!["10.1.1.1"; MAX_HOPS + 5].join(", ");
        let c = resolve(ip("10.0.0.2"), &xff(&[&chain]), &t);
        assert!(!c.established);
    }

    #[test]
    fn ipv4_mapped_peers_and_entries_are_ipv4() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(ip("::ffff:10.0.0.2"), &xff(&["::ffff:198.51.100.7"]), &t);
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(sent(&c), Some("198.51.100.7, 10.0.0.2"));
        let direct = resolve(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &t);
        assert_eq!(direct.ip, ip("192.0.2.1"));
    }

    proptest::proptest! {
        /// Any header text from a trusted peer resolves (never panics); the address it
        /// yields is the peer or one of the entries, and what is sent upstream starts
        /// with it.
        #[test]
        fn resolve_never_panics(value in "[ -~]{0,200}") {
            let t = trusted(&["10.0.0.0/8"]);
            let Ok(v) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(X_FORWARDED_FOR, v);
            let c = resolve(ip("10.0.0.2"), &h, &t);
            if let Some(sent) = sent(&c) {
                let first = sent.split(", ").next().map(str::to_owned);
                proptest::prop_assert_eq!(first, Some(c.ip.to_string()));
            }
        }
    }

    #[test]
    fn the_log_text_has_a_port_only_for_the_peer() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer: SocketAddr = "10.0.0.2:4711".parse().unwrap();
        let direct = resolve(peer.ip(), &HeaderMap::new(), &t);
        assert_eq!(direct.log_text(peer), "10.0.0.2:4711");
        let forwarded = resolve(peer.ip(), &xff(&["198.51.100.7"]), &t);
        assert_eq!(forwarded.log_text(peer), "198.51.100.7");
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        let t = trusted(&["2001:db8:ffff::/48"]);
        let c = resolve(
            ip("2001:db8:ffff::1"),
            &xff(&["2001:db8:1::5, 2001:db8:ffff::2"]),
            &t,
        );
        assert_eq!(c.ip, ip("2001:db8:1::5"));
        assert_eq!(
            sent(&c),
            Some("2001:db8:1::5, 2001:db8:ffff::2, 2001:db8:ffff::1")
        );
    }
}
