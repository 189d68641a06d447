//! Where the audit's usage comes from: the fleet (Prometheus or the Redis record) or the
//! replica's own record.

use super::*;

/// The fleet's usage, from Prometheus (`--prometheus`) or from the Redis usage record
/// (`usage.backend: redis`, unless `--state` names a file): the source's label, the
/// record and a note saying what it covers. `None`: read a local record.
pub(super) fn fleet_usage(
    args: &AuditArgs,
    config: &Config,
    now_unix: i64,
) -> Result<Option<(String, UsageState, String)>, String> {
    if let Some(url) = &args.prometheus {
        // Without --now, Prometheus' own clock (a scrape a moment ago is then inside).
        let at = args.now.is_some().then_some(now_unix);
        let (mut state, since) =
            crate::cli::promql::usage_blocking(url, at, args.stale_after.as_secs())?;
        cover_configured(&mut state, config, since);
        return Ok(Some((
            url.clone(),
            state,
            format!(
                "usage comes from Prometheus at {url}: last use per scope on any replica it \
                 scrapes (uses after a replica's last scrape are not seen)"
            ),
        )));
    }
    let Some(redis) = config
        .settings
        .usage_redis
        .as_ref()
        .filter(|_| args.state.is_none())
    else {
        return Ok(None);
    };
    let (mut state, since) = crate::gateway::usage_redis::read_fleet_blocking(redis, now_unix)
        .map_err(|e| format!("{e} (the fleet usage record; --state FILE reads a replica's own)"))?;
    cover_configured(&mut state, config, since);
    let target = redis::Client::open(redis.url.as_str())
        .map(|c| c.get_connection_info().addr().to_string())
        .unwrap_or_default();
    Ok(Some((
        format!("redis://{target}"),
        state,
        format!(
            "usage comes from the fleet record in Redis ({target}), written by every replica \
             at most once per {} per token",
            human(redis.interval)
        ),
    )))
}

/// A fleet source only lists tokens that were used; every other configured token was
/// observed, unused, since the source's data begins (a replica's own record lists every
/// token it serves, so the audit treats both alike).
pub(super) fn cover_configured(state: &mut UsageState, config: &Config, since: i64) {
    for t in &config.tokens {
        state
            .tokens
            .entry(t.sid.clone())
            .or_insert_with(|| usage::TokenRecord {
                since,
                scopes: Vec::new(),
            });
    }
}

/// The replica's own record: `--state`, else `<state_dir>/usage.json`.
pub(super) fn local_usage(
    args: &AuditArgs,
    config: &Config,
    notes: &mut Vec<String>,
) -> Result<Option<(PathBuf, UsageState)>, StateError> {
    let (path, explicit) = match (&args.state, &config.settings.state_dir) {
        (Some(p), _) => (Some(p.clone()), true),
        (None, Some(dir)) => (Some(usage::state_path(dir)), false),
        (None, None) => (None, false),
    };
    let state = match &path {
        None => {
            notes.push(
                "no usage record: `state_dir` is not set in the config and --state was not given; \
                 unused-scope and stale-token findings are skipped"
                    .to_owned(),
            );
            None
        }
        Some(p) => match usage::read_state(p) {
            Ok(s) => Some((p.clone(), s)),
            Err(StateError::Missing(_)) if !explicit => {
                notes.push(format!(
                    "no usage record at {} yet (the gateway writes it every minute and on \
                     shutdown); unused-scope and stale-token findings are skipped",
                    p.display()
                ));
                None
            }
            Err(e) => return Err(e),
        },
    };
    if state.is_some() {
        notes.push(
            "usage comes from this replica's own record; on a fleet use --prometheus or \
             usage.backend: redis"
                .to_owned(),
        );
    }
    Ok(state)
}
