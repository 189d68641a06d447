//! Telling a token's contacts (SPEC §12): before `expires_at`, when rotation falls due,
//! when a token goes stale, and when a command disables, resets or deletes it. By email
//! (SMTP, [`email`]) and signed webhook ([`webhook`]); each event once ([`state`]); failed
//! deliveries retried with exponential backoff, within a pass and across passes.
//!
//! The notifier runs on a thread of its own with a single-threaded runtime
//! ([`spawn_periodic`] in `serve`, [`run_blocking`] for `scopegate notify` and the CLI), so
//! its file I/O and slow servers never hold up the gateway's workers.

pub mod email;
pub mod events;
pub use crate::config::notify as settings;
pub mod state;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};

pub use events::{Event, EventKind, TokenRef};
use settings::NotifySettings;
use state::{Delivery, StateFile, Status};

use crate::config::{Config, Settings};

/// A delivery channel; also the `channel` metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// `scopegate_notifications_total{channel,event,result}`: every label from a fixed set.
/// `result` is `sent`, `retried` (an attempt failed, another follows in the same pass) or
/// `failed` (the pass gave up on it; a later pass tries again until it gives up for good).
#[derive(Clone)]
pub struct NotifyMetrics {
    total: IntCounterVec,
}

impl NotifyMetrics {
    pub fn register(registry: &Registry) -> NotifyMetrics {
        let total = IntCounterVec::new(
            Opts::new(
                "scopegate_notifications_total",
                "Notification deliveries by channel, event and result.",
            ),
            &["channel", "event", "result"],
        )
        .expect("static metric definition is valid");
        // A second registration (a test building two) keeps the first; counting still works.
        let _ = registry.register(Box::new(total.clone()));
        NotifyMetrics { total }
    }

    fn count(&self, channel: Channel, event: EventKind, result: &str) {
        self.total
            .with_label_values(&[channel.as_str(), event.as_str(), result])
            .inc();
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub sent: usize,
    pub failed: usize,
}

/// A stable, header-safe id for an event: the receiver's dedup key (webhook
/// `X-Scopegate-Event-Id`, email `Message-ID`).
pub fn delivery_id(event: &Event) -> String {
    let digest = Sha256::digest(event.id.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn wall_clock() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The channels configured, and the ones that apply to `event` (email needs a contact).
fn channels(settings: &NotifySettings, event: &Event) -> Vec<Channel> {
    let mut out = Vec::new();
    if settings.smtp.is_some() && !event.recipients.is_empty() {
        out.push(Channel::Email);
    }
    if settings.webhook.is_some() {
        out.push(Channel::Webhook);
    }
    out
}

/// The wait before retry `n` (0-based) inside a pass: `base * 2^n`, at most a minute.
fn in_pass_backoff(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.min(16))
        .min(Duration::from_secs(60))
}

/// The wait before the next pass may try a delivery that failed `rounds` passes:
/// 5 minutes doubling, at most 6 hours.
fn across_pass_backoff(rounds: u32) -> i64 {
    (300i64 << rounds.min(10)).min(6 * 3600)
}

/// Delivers `events` (and whatever waits in the outbox) once each per channel.
struct Pass<'a> {
    settings: &'a NotifySettings,
    file: StateFile,
    metrics: &'a NotifyMetrics,
    now: i64,
    mailer: Option<Result<email::Mailer, String>>,
    hook_client: Option<Result<webhook::WebhookClient, String>>,
}

impl Pass<'_> {
    async fn attempt(&mut self, channel: Channel, event: &Event) -> Result<(), String> {
        let id = delivery_id(event);
        match channel {
            Channel::Email => {
                let smtp = self.settings.smtp.as_ref().ok_or("no smtp settings")?;
                let mailer = self
                    .mailer
                    .get_or_insert_with(|| email::mailer(smtp))
                    .as_ref()
                    .map_err(Clone::clone)?;
                let msg = email::message(smtp, event, &id)?;
                email::send(mailer, msg).await
            }
            Channel::Webhook => {
                let hook = self
                    .settings
                    .webhook
                    .as_ref()
                    .ok_or("no webhook settings")?;
                let client = self
                    .hook_client
                    .get_or_insert_with(webhook::client)
                    .as_ref()
                    .map_err(Clone::clone)?;
                webhook::send(client, hook, event, &id, wall_clock()).await
            }
        }
    }

    /// Claim, deliver with retries, record. Returns `None` when the pair was not due.
    async fn deliver(&mut self, channel: Channel, event: &Event) -> std::io::Result<Option<bool>> {
        let key = state::key(&event.id, channel.as_str());
        let now = self.now;
        // BEFORE: claim it, durably, so a concurrent notifier skips it and a restart knows.
        let claimed = self.file.transact(now, |s| {
            if !s.may_attempt(&key, now) {
                return None;
            }
            let d = s.deliveries.entry(key.clone()).or_insert(Delivery {
                status: Status::Sending,
                attempts: 0,
                rounds: 0,
                updated: now,
                next_attempt: 0,
            });
            d.status = Status::Sending;
            d.updated = now;
            Some(d.rounds)
        })?;
        let Some(rounds) = claimed else {
            return Ok(None);
        };
        let mut attempts = 0u32;
        let mut last_error = String::new();
        let mut ok = false;
        for n in 0..=self.settings.retries {
            attempts += 1;
            match self.attempt(channel, event).await {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => {
                    last_error = e;
                    if n < self.settings.retries {
                        self.metrics.count(channel, event.event, "retried");
                        tokio::time::sleep(in_pass_backoff(self.settings.retry_backoff, n)).await;
                    }
                }
            }
        }
        // AFTER: record the result.
        let gave_up = !ok && rounds + 1 >= state::MAX_ROUNDS;
        self.file.transact(now, |s| {
            let d = s.deliveries.entry(key.clone()).or_insert(Delivery {
                status: Status::Sending,
                attempts: 0,
                rounds: 0,
                updated: now,
                next_attempt: 0,
            });
            d.attempts += attempts;
            d.updated = now;
            if ok {
                d.status = Status::Sent;
            } else {
                d.rounds += 1;
                d.status = if gave_up {
                    Status::GaveUp
                } else {
                    Status::Failed
                };
                d.next_attempt = now + across_pass_backoff(d.rounds - 1);
            }
        })?;
        if ok {
            self.metrics.count(channel, event.event, "sent");
            tracing::info!(
                target: "scopegate::notify",
                channel = channel.as_str(),
                event = event.event.as_str(),
                token = event.sid.as_str(),
                "notification sent"
            );
        } else {
            self.metrics.count(channel, event.event, "failed");
            tracing::warn!(
                target: "scopegate::notify",
                channel = channel.as_str(),
                event = event.event.as_str(),
                token = event.sid.as_str(),
                attempts,
                gave_up,
                error = last_error.as_str(),
                "notification not delivered"
            );
        }
        Ok(Some(ok))
    }
}

/// One pass: the outbox, plus (unless `outbox_only`) the time-based events due at `now`.
pub async fn run_pass(
    config: &Config,
    metrics: &NotifyMetrics,
    now: i64,
    outbox_only: bool,
) -> Result<PassReport, String> {
    let Some(settings) = &config.settings.notifications else {
        return Ok(PassReport::default());
    };
    let dir = config
        .settings
        .state_dir
        .as_deref()
        .ok_or("notifications need state_dir")?;
    let file = StateFile::new(dir);
    let mut events = file.read().map_err(|e| e.to_string())?.outbox;
    if !outbox_only {
        let usage_path = crate::gateway::usage::state_path(dir);
        let usage = crate::gateway::usage::read_state(&usage_path).ok();
        let due = events::due(
            config,
            usage.as_ref().map(|u| (usage_path.as_path(), u)),
            settings,
            now,
        );
        events.extend(due);
    }
    let mut pass = Pass {
        settings,
        file,
        metrics,
        now,
        mailer: None,
        hook_client: None,
    };
    let mut report = PassReport::default();
    for event in &events {
        for channel in channels(settings, event) {
            match pass
                .deliver(channel, event)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(true) => report.sent += 1,
                Some(false) => report.failed += 1,
                None => {}
            }
        }
    }
    // Outbox entries leave once every channel is done with them.
    pass.file
        .transact(now, |s| {
            let done = |e: &Event| {
                channels(settings, e)
                    .iter()
                    .all(|c| s.is_done(&state::key(&e.id, c.as_str())))
            };
            let keep: Vec<Event> = s.outbox.iter().filter(|e| !done(e)).cloned().collect();
            s.outbox = keep;
        })
        .map_err(|e| e.to_string())?;
    Ok(report)
}

/// Runs `fut` on a fresh single-threaded runtime (for commands, which have none).
pub fn run_blocking<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

/// Queues a lifecycle event durably in `<state_dir>/notifications.json`; the next pass
/// delivers it (`run_pass(.., outbox_only: true)` delivers just the queue). Returns
/// `Ok(false)` when notifications are not configured. Small blocking file I/O.
pub fn queue(settings: &Settings, kind: EventKind, token: &TokenRef<'_>) -> Result<bool, String> {
    if settings.notifications.is_none() {
        return Ok(false);
    }
    let dir = settings
        .state_dir
        .as_deref()
        .ok_or("notifications need state_dir")?;
    let now = wall_clock();
    let event = events::lifecycle(kind, token, now);
    StateFile::new(dir)
        .transact(now, |s| s.outbox.push(event))
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// A command changed a token: queue the event durably and try to deliver it now, one
/// attempt per channel. What is not delivered stays queued for the next pass of `serve` or
/// `scopegate notify`.
///
/// Returns `Ok(None)` when notifications are not configured. (The commands queue through
/// `manage::ops` and deliver the outbox; `tests/notify.rs` calls this.)
#[cfg(any(test, feature = "test-util"))]
pub fn token_changed(
    config_path: &Path,
    settings: &Settings,
    kind: EventKind,
    token: &TokenRef<'_>,
) -> Result<Option<PassReport>, String> {
    if !queue(settings, kind, token)? {
        return Ok(None);
    }
    deliver_outbox(config_path).map(Some)
}

/// Delivers what [`queue`] left in the outbox now, one attempt per channel (blocking; an
/// async caller runs it with `spawn_blocking`). The token operations shared by the CLI and
/// the admin API queue their events inside the operation; the front end calls this after
/// answering, so a slow mail server never delays a secret being shown.
pub fn deliver_outbox(config_path: &Path) -> Result<PassReport, String> {
    let mut config = crate::config::load(config_path).map_err(|e| e.to_string())?;
    // One attempt per channel: the command's user should not wait out retries against a
    // server that is down; the periodic pass retries with backoff.
    if let Some(n) = config.settings.notifications.as_mut() {
        n.retries = 0;
    }
    let metrics = NotifyMetrics::register(&Registry::new());
    run_blocking(run_pass(&config, &metrics, wall_clock(), true))?
}

/// `serve`'s notifier: a pass at start-up, then one every `notifications.interval`, on
/// its own thread. It reloads the configuration from disk each time (what the gateway
/// serves is validated the same way), so changes need no restart.
pub fn spawn_periodic(config_path: PathBuf, metrics: NotifyMetrics) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("scopegate-notify".into())
        .spawn(move || {
            let _ = run_blocking(async move {
                loop {
                    let interval = match crate::config::load(&config_path) {
                        Ok(config) => {
                            let Some(s) = config.settings.notifications.clone() else {
                                // Not configured: look again later, it may be added.
                                tokio::time::sleep(Duration::from_secs(300)).await;
                                continue;
                            };
                            if let Err(e) = run_pass(&config, &metrics, wall_clock(), false).await
                            {
                                tracing::warn!(target: "scopegate::notify", error = e.as_str(), "notification pass failed");
                            }
                            s.interval
                        }
                        Err(_) => Duration::from_secs(300),
                    };
                    tokio::time::sleep(interval).await;
                }
            });
        })
        .map(drop)
}
