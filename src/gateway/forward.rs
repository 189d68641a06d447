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

use crate::config::UpstreamSpec;
use crate::domain::owned_headers::{self, StripList};
use crate::gateway::body::RequestBody;
use crate::gateway::h1_client::HeadFields;
use crate::gateway::tls::{TlsError, UpstreamTls};

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
        .with_tls_config(crate::gateway::tls::client_config(tls)?)
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

/// Fields that are hop-by-hop by definition (RFC 9110 §7.6.1, and `HTTP2-Settings`, RFC 7540
/// §3.2.1) or that only a proxy should read, removed in both directions. A `static`, not a
/// `const`: a const array of names is built and dropped again at every use, which made this
/// check cost more than the rest of the header rewrite.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("http2-settings"),
];

pub const X_SCOPEGATE_TOKEN: HeaderName = HeaderName::from_static("x-scopegate-token");
pub const X_SCOPEGATE_ACCOUNT: HeaderName = HeaderName::from_static("x-scopegate-account");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The RFC 7239 `Forwarded` value the gateway asserts: `for` (an IPv6 address quoted and
/// bracketed, §6), `proto`, and `host` when known (quoted: a port's `:` is not a token char).
pub fn forwarded_value(
    client: std::net::IpAddr,
    tls: bool,
    host: Option<&HeaderValue>,
) -> Option<HeaderValue> {
    let mut v = match client {
        std::net::IpAddr::V4(ip) => format!("for={ip}"),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    v.push_str(if tls { ";proto=https" } else { ";proto=http" });
    if let Some(host) = host.and_then(|h| h.to_str().ok()) {
        if !host.contains(['"', '\\']) {
            v.push_str(&format!(";host=\"{host}\""));
        }
    }
    HeaderValue::from_str(&v).ok()
}

/// The comma-separated tokens of every `Connection` field, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The position of `name` in [`HOP_BY_HOP`]. A `match` on the lowercase text (a name is
/// stored lowercase) dispatches on the length first, so most names cost one integer
/// compare instead of nine name comparisons.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "te" => Some(3),
        "trailer" => Some(4),
        "transfer-encoding" => Some(5),
        "upgrade" => Some(6),
        "proxy-authenticate" => Some(7),
        "http2-settings" => Some(8),
        _ => None,
    }
}

/// Removes `Connection` and the fields it names, then the fixed hop-by-hop set.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the message's few names (comparing standard names is an integer
    // compare) notes which of the fixed set are present; only those are removed, and only
    // the `Connection` options naming other fields are parsed into names. A response's
    // usual `Connection: keep-alive` thus costs one removal, no allocation.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|token| {
            !HOP_BY_HOP
                .iter()
                .any(|h| token.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
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
    /// The operator's additions to the gateway-owned header table.
    pub strip: &'a StripList,
    /// `Forwarded` to set (`set_forwarded: true`), already rendered.
    pub forwarded: Option<HeaderValue>,
    /// `X-Real-IP` to set (`set_x_real_ip: true`): the resolved client address alone (see
    /// `client_addr`), never the whole `X-Forwarded-For` chain.
    pub real_ip: Option<HeaderValue>,
}

/// The one protocol a client may switch to through the gateway.
const WEBSOCKET: &str = "websocket";

/// The `Upgrade` of an HTTP/1.1 WebSocket handshake (`GET`, `Connection: upgrade`, exactly one
/// `Upgrade: websocket`, RFC 6455 §4.1): the only upgrade passed through. Any other protocol,
/// notably `h2c` (whose 101 would open an HTTP/2 connection whose later streams reach the
/// upstream with no credentials and no decision), gets `None`: its `Upgrade`, `Connection` and
/// `HTTP2-Settings` are then dropped as hop-by-hop and the upstream sees a plain request.
pub fn upgrade_request<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 || req.method() != http::Method::GET {
        return None;
    }
    if !connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    let mut values = req.headers().get_all(header::UPGRADE).iter();
    let only = values.next().filter(|_| values.next().is_none())?;
    let protocol = only.to_str().ok()?.trim();
    protocol
        .eq_ignore_ascii_case(WEBSOCKET)
        .then(|| HeaderValue::from_static(WEBSOCKET))
}

/// Whether an upstream's `101 Switching Protocols` switches to WebSocket, the only protocol
/// the gateway asked for. Any other 101 is never passed to the client.
pub fn is_websocket_switch<B>(resp: &Response<B>) -> bool {
    resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
        && resp
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(WEBSOCKET))
}

/// How the request goes to the upstream, which decides the form of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Through the pooled client, which wants an absolute URI and sets `Host` from it.
    Pooled,
    /// Over the client connection's own upstream connection (`upstream_conn`): the target
    /// is written as it goes on the wire (origin form), and `Host` and the asserted fields
    /// are [`HeadFields`].
    Owned,
}

/// Rewrites an authorized request for the upstream, in place: the target becomes exactly
/// the canonical path that was authorized, plus the untouched query. The fields the gateway
/// asserts go into the map on the pooled route; on the owned route they come back as
/// [`HeadFields`], written by the encoder around the map's fields (`Host` and, unless kept,
/// `Authorization` left out), which saves inserting them.
pub fn prepare(
    req: &mut Request<Incoming>,
    upstream: &UpstreamSpec,
    route: Route,
    canonical_path: &str,
    query: Option<&str>,
    identity: &Identity<'_>,
) -> Result<HeadFields, http::Error> {
    // Most requests arrive canonical: then the target the client sent is already the one
    // to forward, byte for byte, and is kept rather than built and parsed again.
    let original = req.uri();
    let unchanged = upstream.base_path.is_empty()
        && original.path() == canonical_path
        && original.query() == query;
    let path_and_query = match original.path_and_query() {
        Some(pq) if unchanged => pq.clone(),
        _ => PathAndQuery::try_from(upstream_target(&upstream.base_path, canonical_path, query))?,
    };
    let origin_form = original.scheme().is_none() && original.authority().is_none();
    match route {
        Route::Pooled => {
            *req.uri_mut() = Uri::builder()
                .scheme(upstream.scheme.clone())
                .authority(upstream.authority.clone())
                .path_and_query(path_and_query)
                .build()?;
        }
        Route::Owned if unchanged && origin_form => {}
        Route::Owned => *req.uri_mut() = Uri::from(path_and_query),
    }
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    // Routing and identity fields are the gateway's to assert (`owned_headers` has the table).
    owned_headers::strip(headers, identity.strip);
    match route {
        Route::Owned => {
            let mut fields = HeadFields::with_host(&upstream.host, !identity.keep_authorization);
            asserted_fields(identity, |name, value| fields.push(&name, value));
            Ok(fields)
        }
        Route::Pooled => {
            // The pooled client sets `Host` from the upstream URI.
            headers.remove(header::HOST);
            if !identity.keep_authorization {
                headers.remove(header::AUTHORIZATION);
            }
            // Room for the identity fields at once, instead of growing the map midway.
            headers.reserve(8);
            asserted_fields(identity, |name, value| {
                headers.insert(name, value.clone());
            });
            Ok(HeadFields::default())
        }
    }
}

/// The fields the gateway asserts to the upstream, in order: one list for both routes.
fn asserted_fields(identity: &Identity<'_>, mut put: impl FnMut(HeaderName, &HeaderValue)) {
    if let Some(v) = identity.sid {
        put(X_SCOPEGATE_TOKEN, v);
    }
    if let Some(v) = identity.account {
        put(X_SCOPEGATE_ACCOUNT, v);
    }
    // The gateway asserts X-Forwarded-For: what the client sent is replaced by the chain
    // `client_addr` resolved (only trusted proxies' entries survive).
    put(X_FORWARDED_FOR, identity.client_addr);
    put(
        X_FORWARDED_PROTO,
        &HeaderValue::from_static(if identity.tls { "https" } else { "http" }),
    );
    if let Some(host) = &identity.host {
        put(X_FORWARDED_HOST, host);
    }
    if let Some(forwarded) = &identity.forwarded {
        put(header::FORWARDED, forwarded);
    }
    if let Some(real_ip) = &identity.real_ip {
        put(X_REAL_IP, real_ip);
    }
    if let Some(protocol) = &identity.upgrade {
        put(header::CONNECTION, &HeaderValue::from_static("upgrade"));
        put(header::UPGRADE, protocol);
    }
}

/// The upstream's target: its base path, the canonical path, and the untouched query.
fn upstream_target(base_path: &str, canonical_path: &str, query: Option<&str>) -> String {
    let mut target = String::with_capacity(
        base_path.len() + canonical_path.len() + query.map_or(0, |q| q.len() + 1),
    );
    target.push_str(base_path);
    target.push_str(canonical_path);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// Cleans an upstream response before it goes back to the client. A `101 Switching
/// Protocols` keeps its `Upgrade` and says `Connection: upgrade`.
pub fn clean_response<B>(resp: &mut Response<B>) {
    // The gateway speaks its own HTTP version to the client, whatever the upstream's
    // (RFC 9110 §2.5); hyper lowers it for an HTTP/1.0 client.
    *resp.version_mut() = Version::HTTP_11;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_index_agrees_with_the_table() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        for name in [
            "host",
            "authorization",
            "x-connection",
            "tee",
            "upgrade-insecure-requests",
        ] {
            assert_eq!(
                hop_by_hop_index(&HeaderName::from_static(name)),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn forwarded_follows_rfc_7239() {
        let host = HeaderValue::from_static("api.example:8443");
        let v4 = forwarded_value("203.0.113.7".parse().unwrap(), true, Some(&host));
        assert_eq!(
            v4.unwrap(),
            "for=203.0.113.7;proto=https;host=\"api.example:8443\""
        );
        let v6 = forwarded_value("2001:db8::1".parse().unwrap(), false, None);
        assert_eq!(v6.unwrap(), "for=\"[2001:db8::1]\";proto=http");
    }

    #[test]
    fn only_a_websocket_get_is_an_upgrade() {
        let req = |method: &str, upgrade: &[&str]| {
            let mut b = Request::builder()
                .method(method)
                .header(header::CONNECTION, "keep-alive, Upgrade");
            for u in upgrade {
                b = b.header(header::UPGRADE, *u);
            }
            b.body(()).unwrap()
        };
        assert_eq!(
            upgrade_request(&req("GET", &["WebSocket"])).unwrap(),
            "websocket"
        );
        for (method, upgrade) in [
            ("GET", &["h2c"][..]),
            ("GET", &["h2c, websocket"]),
            ("GET", &["websocket", "h2c"]),
            ("GET", &["websocket/13"]),
            ("POST", &["websocket"]),
            ("GET", &[]),
        ] {
            assert!(
                upgrade_request(&req(method, upgrade)).is_none(),
                "{method} {upgrade:?}"
            );
        }
    }
}
