//! The Redis URL check validation runs (without connecting).

/// Checks a Redis URL without connecting. `redis://host:port/db` and `redis+unix:///path`
/// are accepted; `rediss://` is not (this build has no TLS to Redis).
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
