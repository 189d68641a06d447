//! The gateway's rules, free of I/O: tokens and their secrets, scopes and canonical
//! targets, request classification, decisions, rate-limit and throttle arithmetic.

pub mod admin;
pub mod auth;
pub mod backends;
pub mod body_override;
pub mod bruteforce;
pub mod classify;
pub mod client_addr;
pub mod cpu_affinity;
pub mod decision;
pub mod duration;
pub mod labels;
pub mod model;
pub mod netaddr;
pub mod notify;
pub mod owned_headers;
pub mod policy;
pub mod ratelimit;
pub mod request;
pub mod scope;
pub mod secret_format;
pub mod settings;
pub mod shorthand;
pub mod token_policy;
pub mod two_threads;
