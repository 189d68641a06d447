//! The tokens cache's binary form of validated accounts, tokens and deleted SIDs.
//!
//! Little-endian integers, length-prefixed strings and lists, a flag byte before each
//! optional value. Decoding checks every length and every enum tag and gives up (`None`)
//! on anything out of place, never panics: the file is not trusted to be whole (its
//! checksum is checked as it is read, see [`super`]).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::{OffsetDateTime, UtcOffset};

use crate::config::{AccountSpec, RateLimit, ScopeGrant, ScopeLimits, TokenSpec};
use crate::domain::backends::{Quota, QuotaPeriod};
use crate::domain::model::{MethodSet, SecretHash, TokenKind, TokenStatus};
use crate::domain::netaddr::CidrSet;

/// What the cache holds: the tokens file, validated.
#[derive(Debug, PartialEq)]
pub struct Tokens {
    pub accounts: Vec<AccountSpec>,
    pub tokens: Vec<TokenSpec>,
    pub deleted_sids: Vec<String>,
}

/// Appends `tokens` to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    accounts: &[AccountSpec],
    tokens: &[TokenSpec],
    deleted: &[String],
) {
    let mut e = Enc(out);
    e.seq(accounts, |e, a| {
        e.str(&a.id);
        e.str(&a.name);
    });
    e.seq(tokens, Enc::token);
    e.seq(deleted, |e, s| e.str(s));
}

/// Reads what [`encode`] wrote; `None` when `bytes` is not exactly that.
#[cfg(test)]
pub fn decode(mut bytes: &[u8]) -> Option<Tokens> {
    decode_from(&mut bytes)
}

/// Reads what [`encode`] wrote from `source`, a piece at a time (the whole payload is
/// never in memory at once); `None` when the source does not hold exactly that.
pub fn decode_from(source: &mut impl Read) -> Option<Tokens> {
    let mut d = Dec {
        source,
        buf: Vec::new(),
        pos: 0,
        end: 0,
    };
    let accounts = d.seq(|d| {
        Some(AccountSpec {
            id: d.string()?,
            name: d.string()?,
        })
    })?;
    let tokens = d.seq(Dec::token)?;
    let deleted_sids = d.seq(Dec::string)?;
    d.at_end().then_some(Tokens {
        accounts,
        tokens,
        deleted_sids,
    })
}

/// How much [`decode_from`] reads at a time.
const CHUNK: usize = 256 * 1024;

struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        // A tokens file never holds 4 billion of anything; saturating keeps the writer
        // total, and a count that does not match makes the reader give up.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt<T: ?Sized>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn seq<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.len(items.len());
        for item in items {
            f(self, item);
        }
    }

    fn time(&mut self, t: &OffsetDateTime) {
        self.0
            .extend_from_slice(&t.unix_timestamp_nanos().to_le_bytes());
        self.0
            .extend_from_slice(&t.offset().whole_seconds().to_le_bytes());
    }

    fn rate(&mut self, r: &RateLimit) {
        self.u64(r.requests_per_second.to_bits());
        self.u32(r.burst);
    }

    fn quota(&mut self, q: &Quota) {
        self.u64(q.requests);
        self.u8(match q.per {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Month => 1,
        });
    }

    fn grants(&mut self, grants: &[ScopeGrant]) {
        self.seq(grants, |e, g| {
            e.u16(g.api);
            e.u16(g.methods.bits());
        });
    }

    fn token(&mut self, t: &TokenSpec) {
        // Every field by name: a field added to `TokenSpec` does not compile here until
        // the cache carries it (and `FORMAT` in `super` is raised).
        let TokenSpec {
            sid,
            account,
            name,
            description,
            primary_contact,
            developer_emails,
            api_version,
            status,
            kind,
            hash,
            previous,
            environment,
            created_at,
            rotated_at,
            expires_at,
            scopes,
            shadow_scopes,
            rate_limit,
            allowed_ips,
            quota,
            scope_limits,
        } = t;
        self.str(sid);
        self.str(account);
        self.str(name);
        self.str(description);
        self.str(primary_contact);
        self.seq(developer_emails, |e, s| e.str(s));
        self.opt(api_version.as_ref(), |e, s| e.str(s));
        self.u8(match status {
            TokenStatus::Active => 0,
            TokenStatus::Disabled => 1,
        });
        self.u8(match kind {
            TokenKind::Scoped => 0,
            TokenKind::Legacy => 1,
        });
        self.0.extend_from_slice(hash.digest());
        self.opt(previous.as_ref(), |e, (h, until)| {
            e.0.extend_from_slice(h.digest());
            e.time(until);
        });
        self.opt(environment.as_ref(), |e, s| e.str(s));
        for t in [created_at, rotated_at, expires_at] {
            self.opt(t.as_ref(), Enc::time);
        }
        self.grants(scopes);
        self.opt(shadow_scopes.as_deref(), Enc::grants);
        self.opt(rate_limit.as_ref(), Enc::rate);
        self.opt(allowed_ips.as_ref(), |e, set| {
            let nets: Vec<_> = set.nets().collect();
            e.seq(&nets, |e, net| {
                match net.addr() {
                    IpAddr::V4(a) => {
                        e.u8(4);
                        e.0.extend_from_slice(&a.octets());
                    }
                    IpAddr::V6(a) => {
                        e.u8(6);
                        e.0.extend_from_slice(&a.octets());
                    }
                }
                e.u8(net.prefix_len());
            });
        });
        self.opt(quota.as_ref(), Enc::quota);
        self.seq(scope_limits, |e, l| {
            e.u16(l.api);
            e.opt(l.rate_limit.as_ref(), Enc::rate);
            e.opt(l.quota.as_ref(), Enc::quota);
        });
    }
}

/// A cursor over the source with a window of its bytes: `buf[pos..end]` is read, not yet
/// consumed.
struct Dec<'a, R> {
    source: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<R: Read> Dec<'_, R> {
    /// Makes `n` bytes available in the window; false at the end of the source.
    fn fill(&mut self, n: usize) -> bool {
        if self.end - self.pos >= n {
            return true;
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n.max(CHUNK), 0);
        }
        while self.end < n {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => return false,
                Ok(got) => self.end += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if !self.fill(n) {
            return None;
        }
        let start = self.pos;
        self.pos += n;
        Some(&self.buf[start..self.pos])
    }

    /// True when everything was consumed.
    fn at_end(&mut self) -> bool {
        !self.fill(1)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u32()?).ok()
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok().map(str::to_owned)
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }

    fn seq<T>(&mut self, mut f: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let n = self.len()?;
        // A corrupt count cannot reserve much before the source runs out.
        let mut items = Vec::with_capacity(n.min(CHUNK));
        for _ in 0..n {
            items.push(f(self)?);
        }
        Some(items)
    }

    fn time(&mut self) -> Option<OffsetDateTime> {
        let nanos = i128::from_le_bytes(self.array()?);
        let offset = UtcOffset::from_whole_seconds(i32::from_le_bytes(self.array()?)).ok()?;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()?
            .checked_to_offset(offset)
    }

    fn rate(&mut self) -> Option<RateLimit> {
        Some(RateLimit {
            requests_per_second: f64::from_bits(self.u64()?),
            burst: self.u32()?,
        })
    }

    fn quota(&mut self) -> Option<Quota> {
        Some(Quota {
            requests: self.u64()?,
            per: match self.u8()? {
                0 => QuotaPeriod::Day,
                1 => QuotaPeriod::Month,
                _ => return None,
            },
        })
    }

    fn grants(&mut self) -> Option<Vec<ScopeGrant>> {
        self.seq(|d| {
            Some(ScopeGrant {
                api: d.u16()?,
                methods: MethodSet::from_bits(d.u16()?)?,
            })
        })
    }

    fn net(&mut self) -> Option<ipnet::IpNet> {
        let addr = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return None,
        };
        ipnet::IpNet::new(addr, self.u8()?).ok()
    }

    fn token(&mut self) -> Option<TokenSpec> {
        Some(TokenSpec {
            sid: self.string()?,
            account: self.string()?,
            name: self.string()?,
            description: self.string()?,
            primary_contact: self.string()?,
            developer_emails: self.seq(Dec::string)?,
            api_version: self.opt(Dec::string)?,
            status: match self.u8()? {
                0 => TokenStatus::Active,
                1 => TokenStatus::Disabled,
                _ => return None,
            },
            kind: match self.u8()? {
                0 => TokenKind::Scoped,
                1 => TokenKind::Legacy,
                _ => return None,
            },
            hash: SecretHash::from_digest(self.array()?),
            previous: self.opt(|d| Some((SecretHash::from_digest(d.array()?), d.time()?)))?,
            environment: self.opt(Dec::string)?,
            created_at: self.opt(Dec::time)?,
            rotated_at: self.opt(Dec::time)?,
            expires_at: self.opt(Dec::time)?,
            scopes: self.grants()?,
            shadow_scopes: self.opt(Dec::grants)?,
            rate_limit: self.opt(Dec::rate)?,
            allowed_ips: self.opt(|d| Some(CidrSet::new(d.seq(Dec::net)?)))?,
            quota: self.opt(Dec::quota)?,
            scope_limits: self.seq(|d| {
                Some(ScopeLimits {
                    api: d.u16()?,
                    rate_limit: d.opt(Dec::rate)?,
                    quota: d.opt(Dec::quota)?,
                })
            })?,
        })
    }
}
