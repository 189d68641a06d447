//! Method sets as the audit reads and writes them: used methods per API, proposed
//! `scopes:` lists, and the commands that apply them.

use super::*;
use crate::config::yamlsrc::flow_map;
use crate::domain::settings::ScopeLimits;
use crate::gateway::manage::ops::render_rate;

/// Per API, the methods (bit per `KNOWN_METHODS` index) used at or after the window start.
pub(super) struct UsedScopes {
    /// Sorted by catalog name for stable output.
    pub(super) by_api: BTreeMap<String, u16>,
    /// Requests recorded outside the catalog (legacy tokens).
    pub(super) out_of_catalog: u64,
}

impl UsedScopes {
    pub(super) fn in_window(record: Option<&usage::TokenRecord>, window_start: i64) -> UsedScopes {
        let mut by_api: BTreeMap<String, u16> = BTreeMap::new();
        let mut out_of_catalog = 0;
        for s in record.map_or(&[][..], |r| &r.scopes) {
            if s.last_used < window_start {
                continue;
            }
            if s.api == NO_API {
                // Counts are totals, not per window; a request outside the catalog in the
                // window is reported with the total seen.
                out_of_catalog += s.count;
                continue;
            }
            if let Some(i) = method_index(&s.method) {
                *by_api.entry(s.api.clone()).or_default() |= 1 << i;
            }
        }
        UsedScopes {
            by_api,
            out_of_catalog,
        }
    }

    pub(super) fn methods(&self, api: &str) -> u16 {
        self.by_api.get(api).copied().unwrap_or(0)
    }
}

pub(super) const GET: u16 = 1 << 0;
pub(super) const HEAD: u16 = 1 << 1;

pub(super) fn bits_of(set: MethodSet) -> u16 {
    set.names()
        .filter_map(method_index)
        .fold(0, |acc, i| acc | 1 << i)
}

/// The methods as one would write them: a GET grant implies HEAD, so HEAD is not repeated.
pub(super) fn written_methods(set: MethodSet) -> u16 {
    let bits = bits_of(set);
    if bits & GET != 0 {
        bits & !HEAD
    } else {
        bits
    }
}

/// A HEAD request is allowed by a GET grant: it counts as use of GET when GET is granted
/// (or for a proposal).
pub(super) fn normalize_used(used: u16, granted: MethodSet) -> u16 {
    if used & HEAD != 0 && bits_of(granted) & GET != 0 {
        (used | GET) & !HEAD
    } else {
        used
    }
}

pub(super) fn scope_out(api: &str, bits: u16) -> ScopeOut {
    ScopeOut {
        api: api.to_owned(),
        methods: KNOWN_METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect(),
        own_fields: Vec::new(),
    }
}

impl ScopeOut {
    /// Carries the limits written on the token's scope entry for this API.
    pub(super) fn with_limits(mut self, limits: Option<&ScopeLimits>) -> ScopeOut {
        let Some(limits) = limits else {
            return self;
        };
        if let Some(rate) = limits.rate_limit {
            self.own_fields.push((
                "rate_limit",
                render_rate(rate.requests_per_second, Some(rate.burst)),
            ));
        }
        if let Some(quota) = limits.quota {
            self.own_fields.push((
                "quota",
                flow_map(&[
                    ("requests", quota.requests.to_string().as_str()),
                    ("per", quota.per.as_str()),
                ]),
            ));
        }
        self
    }
}

pub(super) fn scopes_inline(scopes: &[ScopeOut]) -> String {
    scopes
        .iter()
        .map(|s| format!("{} [{}]", s.api, s.methods.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `scopes:` block for `tokens.yaml`, in the flow style the docs use.
pub fn scopes_yaml(scopes: &[ScopeOut]) -> String {
    if scopes.is_empty() {
        return "scopes: []\n".into();
    }
    let mut s = String::from("scopes:\n");
    for scope in scopes {
        let own: String = scope
            .own_fields
            .iter()
            .map(|(k, v)| format!(", {k}: {v}"))
            .collect();
        s.push_str(&format!(
            "  - {{api: {}, methods: [{}]{own}}}\n",
            scope.api,
            scope.methods.join(", ")
        ));
    }
    s
}

pub(super) fn update_command(sid: &str, scopes: &[ScopeOut]) -> String {
    let mut cmd = format!("scopegate token update {sid} --clear-scopes");
    for s in scopes {
        cmd.push_str(&format!(" --scope {}:{}", s.api, s.methods.join(",")));
    }
    cmd
}

pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@/:".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `30d`, `12h`, `90s`: the way the options are written.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::backends::{Quota, QuotaPeriod};
    use crate::domain::settings::RateLimit;

    #[test]
    fn the_block_to_paste_keeps_a_scopes_own_limits() {
        let limits = ScopeLimits {
            api: 0,
            rate_limit: Some(RateLimit {
                requests_per_second: 2.5,
                burst: 5,
            }),
            quota: Some(Quota {
                requests: 1000,
                per: QuotaPeriod::Month,
            }),
        };
        let scopes = [
            scope_out("reports", GET).with_limits(Some(&limits)),
            scope_out("public", GET).with_limits(None),
        ];
        let yaml = scopes_yaml(&scopes);
        assert_eq!(
            yaml,
            "scopes:\n  - {api: reports, methods: [GET], rate_limit: {requests_per_second: 2.5, burst: 5}, quota: {requests: 1000, per: month}}\n  - {api: public, methods: [GET]}\n"
        );
        let read: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(read["scopes"][0]["quota"]["requests"], 1000);
        assert_eq!(read["scopes"][0]["rate_limit"]["requests_per_second"], 2.5);
    }
}
