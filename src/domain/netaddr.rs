//! Address ranges from the configuration (`allowed_ips`, `trusted_proxies`): parsing a
//! CIDR strictly, and matching a client address against a list of them.
//!
//! One rule for IPv4 inside IPv6: an IPv4-mapped address (`::ffff:192.0.2.1`, what a
//! dual-stack socket reports for an IPv4 client) is the IPv4 address it carries, both as a
//! client address and in a rule (`::ffff:192.0.2.0/120` is `192.0.2.0/24`). So a rule
//! written for IPv4 matches the same clients whichever socket family accepted them, and
//! no IPv6 rule silently covers IPv4 clients.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The address a rule or a client really stands for: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses one entry: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (a /32 or
/// /128). Refused, so that a typo never widens or narrows a rule unnoticed: host bits set
/// under the prefix (`10.0.0.1/8`), zone ids, surrounding spaces, prefixes out of range.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net = if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|_| format!("`{text}` is not an address range"))?
    } else {
        let ip = text
            .parse::<IpAddr>()
            .map_err(|_| format!("`{text}` is not an IP address or address range"))?;
        IpNet::from(ip)
    };
    if net.addr() != net.network() {
        return Err(format!(
            "`{text}` has bits set after the /{} prefix (did you mean {}?)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(canonical_net(net))
}

/// An IPv4-mapped IPv6 range of at least /96 is the IPv4 range it carries.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

/// A list of address ranges. Lists are short (a few ranges per token), so a linear scan
/// over the ranges of the client's family is the fastest lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl CidrSet {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> CidrSet {
        let mut set = CidrSet::default();
        for net in nets {
            match canonical_net(net) {
                IpNet::V4(n) => set.v4.push(n),
                IpNet::V6(n) => set.v6.push(n),
            }
        }
        set
    }

    /// The ranges, IPv4 first, as given to [`CidrSet::new`] (canonical form).
    pub fn nets(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self.v4.iter().map(|n| IpNet::V4(*n));
        v4.chain(self.v6.iter().map(|n| IpNet::V6(*n)))
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => self.v4.iter().any(|n| n.contains(&a)),
            IpAddr::V6(a) => self.v6.iter().any(|n| n.contains(&a)),
        }
    }

    /// The ranges as configured (canonical form), for `explain` and logs.
    pub fn to_strings(&self) -> Vec<String> {
        self.v4
            .iter()
            .map(ToString::to_string)
            .chain(self.v6.iter().map(ToString::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> CidrSet {
        CidrSet::new(entries.iter().map(|e| parse_cidr(e).unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(
            parse_cidr("2001:db8::7").unwrap().to_string(),
            "2001:db8::7/128"
        );
        let s = set(&["192.0.2.7", "2001:db8::7"]);
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(s.contains(ip("2001:db8::7")));
        assert!(!s.contains(ip("2001:db8::8")));
    }

    #[test]
    fn ipv6_ranges_match_by_prefix() {
        let s = set(&["2001:db8:1::/48"]);
        assert!(s.contains(ip("2001:db8:1::1")));
        assert!(s.contains(ip("2001:db8:1:ffff:ffff:ffff:ffff:ffff")));
        assert!(!s.contains(ip("2001:db8:2::1")));
        assert!(!s.contains(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_rules() {
        let s = set(&["10.1.0.0/16"]);
        assert!(s.contains(ip("::ffff:10.1.2.3")));
        assert!(!s.contains(ip("::ffff:10.2.2.3")));
        // The IPv4-compatible form (deprecated `::a.b.c.d`) is not a mapped address.
        assert!(!s.contains(ip("::10.1.2.3")));
    }

    #[test]
    fn ipv4_mapped_rules_are_ipv4_rules() {
        let r = parse_cidr("::ffff:10.1.0.0/112").unwrap();
        assert_eq!(r.to_string(), "10.1.0.0/16");
        assert_eq!(
            parse_cidr("::ffff:10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        let s = set(&["::ffff:10.1.0.0/112"]);
        assert!(s.contains(ip("10.1.200.1")));
        assert!(s.contains(ip("::ffff:10.1.200.1")));
    }

    #[test]
    fn ipv6_rules_do_not_cover_ipv4_clients() {
        let s = set(&["::/0"]);
        assert!(s.contains(ip("2001:db8::1")));
        assert!(!s.contains(ip("192.0.2.1")));
        assert!(!s.contains(ip("::ffff:192.0.2.1")));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "2001:db8::1/48",
            "2001:db8::/129",
            " 10.0.0.1",
            "10.0.0.1 ",
            "010.0.0.1",
            "10.0.0",
            "fe80::1%eth0",
            "example.com",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/8/8",
            "[2001:db8::1]",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("10.0.0.0/8"));
    }

    #[test]
    fn an_empty_set_contains_nothing() {
        assert!(!CidrSet::default().contains(ip("127.0.0.1")));
        assert!(CidrSet::default().is_empty());
    }
}
