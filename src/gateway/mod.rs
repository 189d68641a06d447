//! The running process: listeners, the per-request service, forwarding, TLS, the admin
//! listener and metrics, reloads, Redis-backed limits and quotas, the usage record, the
//! token management the console shares with the command line ([`manage`]) and the
//! contacts' notifications ([`notifier`]).

pub mod access_log;
pub mod admin;
pub mod admin_host;
pub mod adminlog;
pub mod balance;
pub mod body;
pub mod body_inspection;
pub mod clock;
pub mod console;
pub mod cpu_affinity;
pub mod drain;
pub mod first_bytes;
pub mod forward;
pub mod framing;
pub mod h1_client;
pub mod h2_idle;
pub mod logging;
pub mod manage;
pub mod metrics;
pub mod notifier;
pub mod proxy;
pub mod proxy_protocol;
pub mod quota;
pub(crate) mod quota_gate;
pub mod redis_limit;
pub mod refused;
pub mod reload;
pub mod response;
pub mod runtime;
pub mod server;
pub mod shared;
pub mod signals;
pub mod snapshot;
pub mod tls;
pub mod upstream_conn;
pub mod upstream_error;
pub mod usage;
pub mod usage_redis;
