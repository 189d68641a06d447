//! The parsers of what an operator types, shared by the command line's arguments and the
//! console's forms and API: scopes (`API:METHOD[,METHOD]`), grace periods, RFC 3339 times
//! and rates.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The longest `reset --grace`: an overlap for a rollout, not a second permanent secret.
const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// `API:METHOD[,METHOD]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeArg {
    pub api: String,
    pub methods: Vec<String>,
}

pub fn parse_scope(s: &str) -> Result<ScopeArg, String> {
    let (api, methods) = s
        .split_once(':')
        .ok_or("write a scope as API:METHOD[,METHOD], e.g. campaigns:GET,POST or reports:read")?;
    let api = api.trim();
    if api.is_empty() {
        return Err("the scope names no API (write API:METHOD[,METHOD])".into());
    }
    let mut out: Vec<String> = Vec::new();
    for m in methods.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        // On the command line case does not matter: `get` is GET, `READ` is `read`.
        let lower = m.to_ascii_lowercase();
        let name = if crate::domain::shorthand::is_shorthand(&lower) {
            lower
        } else {
            m.to_ascii_uppercase()
        };
        if crate::domain::shorthand::expand(&name).is_none() {
            return Err(format!(
                "unknown method `{m}` ({})",
                crate::domain::shorthand::HINT
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "the scope for `{api}` names no method (write {api}:GET[,POST])"
        ));
    }
    Ok(ScopeArg {
        api: api.to_owned(),
        methods: out,
    })
}

pub fn parse_grace(s: &str) -> Result<Duration, String> {
    let d = crate::domain::duration::parse(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero (leave --grace out to revoke at once)".into());
    }
    if d > MAX_GRACE {
        return Err("at most 30d: a grace period is a bounded overlap for a rollout".into());
    }
    Ok(d)
}

pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| "not an RFC 3339 timestamp (write e.g. 2027-01-31T00:00:00Z)".to_owned())
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(r.is_finite() && r > 0.0 && r <= 1e9) {
        return Err("must be a positive number of requests per second".into());
    }
    Ok(r)
}
