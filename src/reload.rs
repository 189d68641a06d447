//! Reloading: read and validate both files off the async workers, then swap one new
//! snapshot in atomically. An invalid configuration leaves the old one serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, Config, ConfigErrors};
use crate::policy::Policy;
use crate::proxy::Shared;

pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Installs a validated configuration as the next generation and returns its number.
pub fn apply(shared: &Shared, config: Config) -> u64 {
    let current = shared.policy.load();
    let generation = current.generation + 1;
    let policy = Policy::build(config, generation, &shared.registry, &shared.metrics);
    shared.policy.store(Arc::new(policy));
    shared.metrics.generation.set(generation as i64);
    shared.metrics.count_reload(true);
    shared.metrics.last_reload_success.set(unix_now_f64());
    generation
}

/// Reads, validates and applies the configuration at `path`. File I/O and validation run
/// on the blocking pool.
pub async fn reload_from(shared: &Shared, path: &Path) -> Result<u64, ConfigErrors> {
    let path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors::single(config::ConfigError {
                file: Default::default(),
                line: 0,
                field: String::new(),
                message: format!("configuration loader failed: {e}"),
                hint: String::new(),
            }))
        });
    match loaded {
        Ok(config) => Ok(apply(shared, config)),
        Err(errors) => {
            shared.metrics.count_reload(false);
            Err(errors)
        }
    }
}

/// Starts the reload triggers: SIGHUP now; file watching joins it in `watch`.
pub fn spawn_watchers(
    shared: Arc<Shared>,
    config_path: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; reload by signal is off");
                return;
            };
            while hup.recv().await.is_some() {
                run_reload(&shared, &config_path, "SIGHUP").await;
            }
        }
    })
}

/// One reload attempt, logged either way.
pub async fn run_reload(shared: &Shared, config_path: &Path, trigger: &str) {
    match reload_from(shared, config_path).await {
        Ok(generation) => tracing::info!(generation, trigger, "configuration reloaded"),
        Err(errors) => tracing::error!(
            trigger,
            errors = %errors.to_string().trim_end(),
            "configuration rejected; the previous configuration keeps serving"
        ),
    }
}
