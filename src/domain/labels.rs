//! The closed vocabularies a request's outcome is reported in: the `decision` label of
//! the metrics and access log, and the placeholders for an unknown token or API. Kept
//! here, not in the metrics module, so the decision can name them without a registry.

/// Label used for the token and account of requests that named no configured token.
pub const UNKNOWN: &str = "unknown";
/// Label used for requests that matched no catalog API.
pub const NO_API: &str = "none";

/// What happened to a request, as counted in `scopegate_requests_total{decision}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionLabel {
    Allowed,
    DeniedScope,
    DeniedCredentials,
    DeniedDisabled,
    Unauthenticated,
    RateLimited,
    BadRequest,
    /// Right secret from a client address outside the token's `allowed_ips`.
    DeniedIp,
}

impl DecisionLabel {
    pub const ALL: [DecisionLabel; 8] = [
        DecisionLabel::Allowed,
        DecisionLabel::DeniedScope,
        DecisionLabel::DeniedCredentials,
        DecisionLabel::DeniedDisabled,
        DecisionLabel::Unauthenticated,
        DecisionLabel::RateLimited,
        DecisionLabel::BadRequest,
        DecisionLabel::DeniedIp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionLabel::Allowed => "allowed",
            DecisionLabel::DeniedScope => "denied_scope",
            DecisionLabel::DeniedCredentials => "denied_credentials",
            DecisionLabel::DeniedDisabled => "denied_disabled",
            DecisionLabel::Unauthenticated => "unauthenticated",
            DecisionLabel::RateLimited => "rate_limited",
            DecisionLabel::BadRequest => "bad_request",
            DecisionLabel::DeniedIp => "denied_ip",
        }
    }
}
