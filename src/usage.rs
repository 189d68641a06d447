//! Usage record: per token and scope (API + method), the last use and a count.
//! (Being implemented: persistence and audit read it.)

/// One token's usage; lives on the token's runtime state, so it survives reloads.
#[derive(Default)]
pub struct TokenUsage {}

impl TokenUsage {
    /// Called on every allowed request: must stay cheap.
    pub fn record(&self, _api: &str, _method: &'static str, _now_unix: i64) {}
}
