//! Validation of the tokens file: accounts, tokens, their scopes, limits and quotas.

use super::*;
use crate::config::ConfigError;

/// Validates `tokens.yaml` against the validated gateway settings.
///
/// Each token's own checks (the bulk of the work at 100,000 tokens) depend on nothing but
/// the token, so they run on two threads for a large file ([`PARALLEL_MIN_TOKENS`]); the
/// checks across tokens (duplicate SIDs and accounts, the active-token limit) and the
/// errors' order and lines then come from one pass in file order, the same errors
/// whichever way the checks ran.
pub fn tokens(
    inputs: Vec<AccountInput>,
    deleted_sids: Vec<String>,
    settings: &Settings,
    sink: &mut ErrorSink<'_>,
) -> (Vec<AccountSpec>, Vec<TokenSpec>, Vec<String>) {
    let threads = if inputs.iter().map(|i| i.tokens.count()).sum::<usize>() >= PARALLEL_MIN_TOKENS {
        2
    } else {
        1
    };
    tokens_on(inputs, deleted_sids, settings, sink, threads)
}

/// From this many tokens on, the per-token checks run on two threads.
const PARALLEL_MIN_TOKENS: usize = 2_000;

/// [`tokens`] with the per-token checks split over `threads` (1 or 2).
pub(super) fn tokens_on(
    inputs: Vec<AccountInput>,
    deleted_sids: Vec<String>,
    settings: &Settings,
    sink: &mut ErrorSink<'_>,
    threads: usize,
) -> (Vec<AccountSpec>, Vec<TokenSpec>, Vec<String>) {
    // Sized up front: at 100,000 tokens, growing these by doubling copies (and faults in)
    // tens of megabytes.
    let token_count = inputs.iter().map(|i| i.tokens.count()).sum();
    let account_count = inputs.len();
    let checked = {
        let deleted: HashSet<&str> = deleted_sids.iter().map(String::as_str).collect();
        let file = sink.file();
        let check = |inputs: Vec<AccountInput>, first: usize| -> Vec<CheckedAccount> {
            inputs
                .into_iter()
                .enumerate()
                .map(|(i, input)| check_account(input, first + i, &deleted, settings, file))
                .collect()
        };
        if threads > 1 && inputs.len() > 1 {
            let cut = half_of_tokens(&inputs);
            crate::domain::two_threads::map_halves(inputs, cut, check)
        } else {
            check(inputs, 0)
        }
    };

    // Where each SID was first seen, as (account, token) indexes (the field path is only
    // spelled out for a duplicate), borrowed from the checked tokens.
    let mut first_seen: HashMap<&str, (usize, usize)> = HashMap::with_capacity(token_count);
    let mut duplicates: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    for (ai, account) in checked.iter().enumerate() {
        for (ti, token) in account.tokens.iter().enumerate() {
            if let Some(sid) = token.sid() {
                if let Some(first) = first_seen.insert(sid, (ai, ti)) {
                    duplicates.insert((ai, ti), first);
                }
            }
        }
    }
    drop(first_seen);

    let mut accounts = Vec::with_capacity(account_count);
    let mut tokens = Vec::with_capacity(token_count);
    let mut account_seen = HashSet::with_capacity(account_count);
    for (ai, checked) in checked.into_iter().enumerate() {
        let afield = format!("accounts[{ai}]");
        let account = match checked.header {
            Ok(header) => header,
            Err(e) => {
                sink.push_serde(&afield, &e);
                continue;
            }
        };
        if !valid_account_id(&account.id) {
            sink.push(
                &format!("{afield}.id"),
                format!("invalid account id `{}`", account.id),
                "use letters, digits, `-`, `_` and `.` (it appears in paths and metrics)",
            );
        }
        if !account_seen.insert(account.id.clone()) {
            sink.push(
                &format!("{afield}.id"),
                format!("duplicate account `{}`", account.id),
                "list each account once and put all its tokens under it",
            );
        }
        let mut active_scoped = 0usize;
        for (ti, token) in checked.tokens.into_iter().enumerate() {
            let tfield = || format!("{afield}.tokens[{ti}]");
            let (result, deleted, errors) = match token {
                CheckedToken::Unparsed(e) => {
                    sink.push_serde(&tfield(), &e);
                    continue;
                }
                CheckedToken::Parsed {
                    result,
                    deleted,
                    errors,
                } => (result, deleted, errors),
            };
            let sid = sid_of(&result);
            if let Some((oa, ot)) = duplicates.get(&(ai, ti)) {
                sink.push(
                    &format!("{}.sid", tfield()),
                    format!("duplicate SID `{sid}` (also at accounts[{oa}].tokens[{ot}])"),
                    "every token needs its own SID; create new tokens with `scopegate token create`",
                );
            }
            if deleted {
                sink.push(
                    &format!("{}.sid", tfield()),
                    format!("SID `{sid}` was deleted and can never be used again"),
                    "create a new token with `scopegate token create`",
                );
            }
            sink.replay(errors);
            if let Ok(t) = result {
                if t.status == TokenStatus::Active && t.kind == TokenKind::Scoped {
                    active_scoped += 1;
                    if active_scoped == settings.max_active_tokens_per_account + 1 {
                        sink.push(
                            &tfield(),
                            format!(
                                "account `{}` has more than {} active scoped tokens",
                                account.id, settings.max_active_tokens_per_account
                            ),
                            "disable or delete tokens the account no longer needs",
                        );
                    }
                }
                tokens.push(t);
            }
        }
        accounts.push(AccountSpec {
            name: account.name.unwrap_or_else(|| account.id.clone()),
            id: account.id,
        });
    }
    (accounts, tokens, deleted_sids)
}

/// The index that splits `inputs` into two runs of about as many tokens each.
fn half_of_tokens(inputs: &[AccountInput]) -> usize {
    let total: usize = inputs.iter().map(|i| i.tokens.count()).sum();
    let mut seen = 0;
    for (i, input) in inputs.iter().enumerate() {
        if seen * 2 >= total {
            return i.max(1);
        }
        seen += input.tokens.count();
    }
    inputs.len() - 1
}

pub(super) struct AccountHeader {
    id: String,
    name: Option<String>,
}

/// One account after the checks that need nothing but the account itself.
struct CheckedAccount {
    header: Result<AccountHeader, serde_yaml::Error>,
    tokens: Vec<CheckedToken>,
}

/// One token after its own checks: the validated spec (or its SID when it had errors),
/// whether its SID is a deleted one, and its errors, without lines yet (see
/// [`ErrorSink::detached`]).
// The large variant is the common one (every token of a valid file): boxing it would
// cost an allocation per token to shrink the rare one.
#[allow(clippy::large_enum_variant)]
enum CheckedToken {
    Unparsed(serde_yaml::Error),
    Parsed {
        result: Result<TokenSpec, String>,
        deleted: bool,
        errors: Vec<ConfigError>,
    },
}

impl CheckedToken {
    fn sid(&self) -> Option<&str> {
        match self {
            CheckedToken::Unparsed(_) => None,
            CheckedToken::Parsed { result, .. } => Some(sid_of(result)),
        }
    }
}

/// The SID of a checked token, valid or not.
fn sid_of(result: &Result<TokenSpec, String>) -> &str {
    match result {
        Ok(spec) => &spec.sid,
        Err(sid) => sid,
    }
}

/// The checks of one account's tokens that depend on nothing else (runs on any thread).
fn check_account(
    input: AccountInput,
    ai: usize,
    deleted: &HashSet<&str>,
    settings: &Settings,
    file: &Path,
) -> CheckedAccount {
    let header = match input.header {
        Ok((id, name)) => AccountHeader { id, name },
        // Its tokens are not checked: they would only repeat the account's error.
        Err(e) => {
            return CheckedAccount {
                header: Err(e),
                tokens: Vec::new(),
            }
        }
    };
    let mut tokens = Vec::with_capacity(input.tokens.count());
    for (ti, parsed) in input.tokens.into_results().enumerate() {
        let raw_token: RawToken = match parsed {
            Ok(t) => t,
            Err(e) => {
                tokens.push(CheckedToken::Unparsed(e));
                continue;
            }
        };
        let field = format!("accounts[{ai}].tokens[{ti}]");
        let is_deleted = deleted.contains(raw_token.sid.as_str());
        let mut sink = ErrorSink::detached(file);
        let result = token(raw_token, &header.id, &field, settings, &mut sink);
        tokens.push(CheckedToken::Parsed {
            result,
            deleted: is_deleted,
            errors: sink.errors,
        });
    }
    CheckedAccount {
        header: Ok(header),
        tokens,
    }
}

pub(super) fn token(
    raw: RawToken,
    account: &str,
    field: &str,
    settings: &Settings,
    sink: &mut ErrorSink<'_>,
) -> Result<TokenSpec, String> {
    let errors_before = sink.errors.len();
    if !valid_sid(&raw.sid) {
        sink.push(
            &format!("{field}.sid"),
            "a SID must be non-empty, without `:`, whitespace or control characters",
            "generated SIDs look like SG followed by 32 letters and digits",
        );
    }
    let name = raw.name.unwrap_or_default();
    if name.trim().is_empty() {
        sink.push(
            &format!("{field}.name"),
            "a token needs a name",
            "name it after the integration that uses it",
        );
    }
    if let Some(contact) = &raw.primary_contact {
        if !valid_email(contact) {
            sink.push(
                &format!("{field}.primary_contact"),
                format!("`{contact}` is not an email address"),
                "write it as name@example.com",
            );
        }
    }
    for (i, email) in raw.developer_emails.iter().enumerate() {
        if !valid_email(email) {
            sink.push(
                &format!("{field}.developer_emails[{i}]"),
                format!("`{email}` is not an email address"),
                "write it as name@example.com",
            );
        }
    }
    if let Some(v) = &raw.api_version {
        if !settings.api_versions.contains(v) {
            sink.push(
                &format!("{field}.api_version"),
                format!("unknown API version `{v}`"),
                format!(
                    "use one of the catalog's api_versions: {}",
                    names(settings.api_versions.iter())
                ),
            );
        }
    }
    let hash = match raw.auth_token_hash.as_deref() {
        None => {
            sink.push(
                &format!("{field}.auth_token_hash"),
                "missing auth_token_hash",
                "create tokens with `scopegate token create`, or hash a secret with `scopegate hash`",
            );
            None
        }
        Some(h) => SecretHash::parse(h)
            .map_err(|e| {
                sink.push(
                    &format!("{field}.auth_token_hash"),
                    format!("malformed hash: {e}"),
                    "produce it with `scopegate hash`",
                )
            })
            .ok(),
    };
    let previous = match (&raw.previous_auth_token_hash, &raw.previous_valid_until) {
        (None, None) => None,
        (Some(h), Some(until)) => {
            let hash = SecretHash::parse(h)
                .map_err(|e| {
                    sink.push(
                        &format!("{field}.previous_auth_token_hash"),
                        format!("malformed hash: {e}"),
                        "produce it with `scopegate hash`",
                    )
                })
                .ok();
            let until = timestamp(sink, &format!("{field}.previous_valid_until"), until);
            hash.zip(until)
        }
        _ => {
            sink.push(
                field,
                "previous_auth_token_hash and previous_valid_until go together",
                "set both (as `token reset --grace` does) or neither",
            );
            None
        }
    };
    let created_at = raw
        .created_at
        .as_deref()
        .and_then(|s| token_time(sink, field, "created_at", s));
    let rotated_at = raw
        .rotated_at
        .as_deref()
        .and_then(|s| token_time(sink, field, "rotated_at", s));
    let expires_at = raw
        .expires_at
        .as_deref()
        .and_then(|s| token_time(sink, field, "expires_at", s));
    let kind = raw.kind.unwrap_or_default();
    let scopes_field = format!("{field}.scopes");
    let granted = scopes(sink, &scopes_field, &raw.scopes, settings);
    let shadow_scopes = raw
        .shadow_scopes
        .as_ref()
        .map(|s| scopes(sink, &format!("{field}.shadow_scopes"), s, settings));
    let rate_limit = raw
        .rate_limit
        .map(|r| rate_limit(sink, &format!("{field}.rate_limit"), r));
    let allowed_ips = raw.allowed_ips.as_deref().map(|list| {
        let afield = format!("{field}.allowed_ips");
        if list.is_empty() {
            // It would refuse every request, which `status: disabled` says more clearly.
            sink.push(
                &afield,
                "an empty allowed_ips list would refuse every request",
                "list CIDRs such as 203.0.113.0/24 or 2001:db8::/48, remove the field to \
                 allow any address, or disable the token",
            );
        }
        address_list(sink, &afield, list)
    });
    let quota = raw
        .quota
        .map(|q| quota(sink, &format!("{field}.quota"), q, settings));
    let scope_limits = scope_limits(sink, &scopes_field, &raw.scopes, settings);
    for (i, s) in raw.shadow_scopes.iter().flatten().enumerate() {
        if s.rate_limit.is_some() || s.quota.is_some() {
            sink.push(
                &format!("{field}.shadow_scopes[{i}]"),
                "rate_limit and quota are not used on shadow_scopes",
                "put limits on the scopes entry; shadow_scopes only count what they would deny",
            );
        }
    }

    let (Some(hash), false) = (hash, sink.errors.len() > errors_before) else {
        return Err(raw.sid);
    };
    Ok(TokenSpec {
        sid: raw.sid,
        account: account.to_owned(),
        name,
        description: raw.description.unwrap_or_default(),
        primary_contact: raw.primary_contact.unwrap_or_default(),
        developer_emails: raw.developer_emails,
        api_version: raw.api_version,
        status: raw.status.unwrap_or(TokenStatus::Active),
        kind,
        hash,
        previous,
        environment: raw.environment,
        created_at,
        rotated_at,
        expires_at,
        scopes: granted,
        shadow_scopes,
        rate_limit,
        allowed_ips,
        quota,
        scope_limits,
    })
}

/// A token's timestamp field `name`; its field path is only spelled out for an error
/// (100,000 tokens each have one or more).
fn token_time(
    sink: &mut ErrorSink<'_>,
    token_field: &str,
    name: &str,
    value: &str,
) -> Option<OffsetDateTime> {
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(t) => Some(t),
        Err(_) => timestamp(sink, &format!("{token_field}.{name}"), value),
    }
}

/// An `allowed_ips` or `trusted_proxies` list: CIDRs or bare addresses (see
/// [`crate::domain::netaddr::parse_cidr`]), every bad entry reported.
pub(super) fn address_list(
    sink: &mut ErrorSink<'_>,
    field: &str,
    list: &[String],
) -> crate::domain::netaddr::CidrSet {
    let mut nets = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        match crate::domain::netaddr::parse_cidr(entry) {
            Ok(net) => nets.push(net),
            Err(why) => sink.push(
                &format!("{field}[{i}]"),
                why,
                "write an address (203.0.113.7, 2001:db8::7) or a CIDR with a clean network \
                 part (203.0.113.0/24, 2001:db8::/48)",
            ),
        }
    }
    crate::domain::netaddr::CidrSet::new(nets)
}

/// The `rate_limit` and `quota` written on scope entries, by API. Two entries for one API
/// may not both carry the same kind of limit (which one would apply?).
pub(super) fn scope_limits(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: &[RawScope],
    settings: &Settings,
) -> Vec<ScopeLimits> {
    let mut out: Vec<ScopeLimits> = Vec::new();
    for (i, scope) in raw.iter().enumerate() {
        if scope.rate_limit.is_none() && scope.quota.is_none() {
            continue;
        }
        let sfield = format!("{field}[{i}]");
        // An unknown API is reported by `scopes`.
        let Some(api) = settings.api_id(&scope.api) else {
            continue;
        };
        let rate = scope
            .rate_limit
            .map(|r| rate_limit(sink, &format!("{sfield}.rate_limit"), r));
        let quota = scope
            .quota
            .map(|q| quota(sink, &format!("{sfield}.quota"), q, settings));
        match out.iter_mut().find(|l| l.api == api) {
            Some(existing) => {
                if (rate.is_some() && existing.rate_limit.is_some())
                    || (quota.is_some() && existing.quota.is_some())
                {
                    sink.push(
                        &sfield,
                        format!("a second rate_limit or quota for API `{}`", scope.api),
                        "write each API's limits on one of its scope entries",
                    );
                }
                existing.rate_limit = existing.rate_limit.or(rate);
                existing.quota = existing.quota.or(quota);
            }
            None => out.push(ScopeLimits {
                api,
                rate_limit: rate,
                quota,
            }),
        }
    }
    out.sort_by_key(|l| l.api);
    out
}

pub(super) fn quota(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: RawQuota,
    settings: &Settings,
) -> crate::domain::backends::Quota {
    if raw.requests == 0 {
        sink.push(
            &format!("{field}.requests"),
            "must be at least 1",
            "a token that may send nothing should be disabled instead",
        );
    }
    if settings.redis_rate_limit.is_none() {
        sink.push(
            field,
            "a quota needs the shared Redis backend",
            "set rate_limit.backend: redis (with redis_url) in scopegate.yaml: quotas are \
             counted across replicas in Redis; a per-replica count would multiply the quota \
             by the number of replicas",
        );
    }
    crate::domain::backends::Quota {
        requests: raw.requests,
        per: raw.per,
    }
}

/// Parses a scope list; several entries for one API are merged.
pub(crate) fn scopes(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: &[RawScope],
    settings: &Settings,
) -> Vec<ScopeGrant> {
    let mut grants: Vec<ScopeGrant> = Vec::new();
    for (i, scope) in raw.iter().enumerate() {
        // Spelled out only for an error.
        let sfield = || format!("{field}[{i}]");
        let Some(api) = settings.api_id(&scope.api) else {
            sink.push(
                &format!("{}.api", sfield()),
                format!("unknown API `{}`", scope.api),
                format!(
                    "use an API of the catalog in scopegate.yaml: {}",
                    names(settings.apis.iter().map(|a| &a.name))
                ),
            );
            continue;
        };
        if scope.methods.is_empty() {
            sink.push(
                &format!("{}.methods", sfield()),
                "a scope needs at least one method",
                "e.g. methods: [GET]",
            );
        }
        let mut methods = MethodSet::EMPTY;
        for (j, m) in scope.methods.iter().enumerate() {
            match crate::domain::shorthand::expand(m) {
                Some(names) => {
                    for idx in names.iter().filter_map(|n| method_index(n)) {
                        methods.grant(idx);
                    }
                }
                None => sink.push(
                    &format!("{}.methods[{j}]", sfield()),
                    format!("unknown method `{m}`"),
                    crate::domain::shorthand::HINT,
                ),
            }
        }
        match grants.iter_mut().find(|g| g.api == api) {
            Some(g) => {
                for name in methods.names() {
                    if let Some(idx) = method_index(name) {
                        g.methods.grant(idx);
                    }
                }
            }
            None => grants.push(ScopeGrant { api, methods }),
        }
    }
    grants.sort_by_key(|g| g.api);
    grants
}

#[cfg(test)]
mod tests;
