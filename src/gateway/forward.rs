//! Forwarding: rewriting the authorized request for the upstream, the pooled client, and
//! cleaning the upstream's response.
//!
//! Hop-by-hop handling follows RFC 9110 §7.6.1: `Connection` and every field it names,
//! plus the fields that are hop-by-hop by definition, are removed in both directions.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};

use crate::body::RequestBody;
use crate::config::UpstreamSpec;
use crate::tls::{TlsError, UpstreamTls};

/// The pooled upstream client (http and https), built at start-up and shared.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// Builds a client: one for every upstream with default TLS (system roots), plus one per
/// distinct custom TLS setting (private CA, client certificate).
pub fn client(connect_timeout: Duration, tls: &UpstreamTls) -> Result<UpstreamClient, TlsError> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::client_config(tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // A request the client sent may have had effects upstream: never replay it on
        // another connection (non-idempotent requests must not be retried).
        .retry_canceled_requests(false)
        .build(https))
}

/// Fields that are hop-by-hop by definition (RFC 9110 §7.6.1) or that only a proxy
/// should read, removed in both directions.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Client-sent fields that could make an upstream read a different path, or that carry
/// identity the gateway asserts itself; removed before the gateway sets its own.
const CLIENT_CONTROLLED: [HeaderName; 12] = [
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-override-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-path"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-scopegate-token"),
    HeaderName::from_static("x-scopegate-account"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

pub const X_SCOPEGATE_TOKEN: HeaderName = HeaderName::from_static("x-scopegate-token");
pub const X_SCOPEGATE_ACCOUNT: HeaderName = HeaderName::from_static("x-scopegate-account");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The comma-separated tokens of every `Connection` field, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Removes `Connection` and the fields it names, then the fixed hop-by-hop set.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !HOP_BY_HOP.iter().any(|h| headers.contains_key(h)) {
        return;
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the gateway asserts about the request to the upstream.
pub struct Identity<'a> {
    pub sid: Option<&'a HeaderValue>,
    pub account: Option<&'a HeaderValue>,
    /// The `X-Forwarded-For` value, already rendered: the resolved client address, then
    /// any trusted proxy hops (see `client_addr`).
    pub client_addr: &'a HeaderValue,
    pub tls: bool,
    /// The client's `Host` (or HTTP/2 `:authority`), for `X-Forwarded-Host`.
    pub host: Option<HeaderValue>,
    pub keep_authorization: bool,
    /// The protocol a client asked to upgrade to (WebSocket), kept for the upstream.
    pub upgrade: Option<HeaderValue>,
}

/// The `Upgrade` value of an HTTP/1.1 upgrade request (`Connection: upgrade` + `Upgrade`).
pub fn upgrade_request<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let wants = connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    if wants {
        req.headers().get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Rewrites an authorized request for the upstream, in place: the target becomes exactly
/// the canonical path that was authorized, plus the untouched query.
pub fn prepare(
    req: &mut Request<Incoming>,
    upstream: &UpstreamSpec,
    canonical_path: &str,
    query: Option<&str>,
    identity: &Identity<'_>,
) -> Result<(), http::Error> {
    let mut target = String::with_capacity(
        upstream.base_path.len() + canonical_path.len() + query.map_or(0, |q| q.len() + 1),
    );
    target.push_str(&upstream.base_path);
    target.push_str(canonical_path);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(PathAndQuery::try_from(target)?)
        .build()?;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    // The client sets `Host` from the upstream URI.
    headers.remove(header::HOST);
    if !identity.keep_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    // One pass over the (usually few) request headers instead of one hash probe per
    // name in the removal list; the list rarely matches, so this rarely allocates.
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if CLIENT_CONTROLLED.iter().any(|c| c == name) {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(name);
    }
    if let Some(v) = identity.sid {
        headers.insert(X_SCOPEGATE_TOKEN, v.clone());
    }
    if let Some(v) = identity.account {
        headers.insert(X_SCOPEGATE_ACCOUNT, v.clone());
    }
    // The gateway asserts X-Forwarded-For: what the client sent is replaced by the chain
    // `client_addr` resolved (only trusted proxies' entries survive).
    headers.insert(X_FORWARDED_FOR, identity.client_addr.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if identity.tls { "https" } else { "http" }),
    );
    if let Some(host) = &identity.host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    if let Some(protocol) = &identity.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    Ok(())
}

/// Cleans an upstream response before it goes back to the client. A `101 Switching
/// Protocols` keeps its `Upgrade` and says `Connection: upgrade`.
pub fn clean_response<B>(resp: &mut Response<B>) {
    let upgrade = (resp.status() == http::StatusCode::SWITCHING_PROTOCOLS)
        .then(|| resp.headers().get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(resp.headers_mut());
    if let Some(protocol) = upgrade {
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, protocol);
    }
}
