//! The admin API (`/api/v1/...`) and the web console (`/console/...`) on the admin
//! listener (SPEC §10). Both are off (404) until `admin.users` names a user.
//!
//! - [`auth`]: argon2id checks, the verified-credential cache, sessions, CSRF tokens.
//! - [`api`]: the JSON API; [`pages`]: the console's pages and form posts; [`data`]: reads and writes
//!   through the token operations shared with the CLI, on the blocking pool.
//!
//! Every answer here carries a strict `Content-Security-Policy` (scripts and styles only
//! from the embedded files), `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: same-origin` (a form post must carry its real `Origin`), and
//! `Cache-Control: no-store` (every page and API answer shows token data; the ones with a
//! secret most of all). Only the embedded assets may be cached.

pub mod api;
pub mod assets;
pub mod auth;
pub mod data;
pub mod demo;
pub mod pages;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::gateway::proxy::Shared;

/// The largest request body the admin API and console read.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// State of the admin API and console for one admin listener.
#[derive(Default)]
pub struct Console {
    pub auth: auth::AdminAuth,
    /// Serializes admin writes, so each one's reload puts exactly its change in force.
    pub write_lock: tokio::sync::Mutex<()>,
}

/// An answer before the common headers are added.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Holds a secret (informational; every answer here is `no-store` anyway).
    pub secret: bool,
    /// Cacheable (embedded assets only).
    pub cacheable: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            secret: false,
            cacheable: false,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// 303 to a path of ours.
    pub fn redirect(to: &str) -> Reply {
        Reply::new(
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            Vec::new(),
        )
        .header(http::header::LOCATION, to)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.body)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static(if self.cacheable {
                "public, max-age=3600"
            } else {
                "no-store"
            }),
        );
        h.insert(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        );
        h.insert(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        );
        h.insert(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        );
        for (name, value) in self.headers {
            h.append(name, value);
        }
        resp
    }
}

/// Whether a path belongs to the admin API or the console.
pub fn owns(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/console"
        || path.starts_with("/console/")
}

/// One admin request the parts of which the handlers need, body read and bounded.
pub struct Incoming2 {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub peer: IpAddr,
}

/// Answers a request under `/api/` or `/console/`.
pub async fn handle(
    console: &Console,
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: IpAddr,
) -> Response<Full<Bytes>> {
    serve(console, shared, req, peer).await.into_response()
}

async fn serve(
    console: &Console,
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: IpAddr,
) -> Reply {
    let is_api = req.uri().path() == "/api" || req.uri().path().starts_with("/api/");
    if shared.policy.load().settings.admin_users.is_empty() {
        return if is_api {
            api::error_reply(
                StatusCode::NOT_FOUND,
                "not_found",
                "the admin API is off: add `admin.users` to the gateway config",
            )
        } else {
            Reply::new(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                b"not found\n".to_vec(),
            )
        };
    }
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large(is_api);
    }
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large(is_api)
            }
            _ => {
                return Reply::new(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    b"the request body could not be read\n".to_vec(),
                )
            }
        };
    let req = Incoming2 {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        peer,
    };
    if is_api {
        api_request(console, shared, req).await
    } else {
        pages::route(console, shared, req).await
    }
}

fn too_large(is_api: bool) -> Reply {
    let msg = format!("the request body is larger than {MAX_BODY} bytes");
    if is_api {
        api::error_reply(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &msg)
    } else {
        Reply::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain; charset=utf-8",
            msg.into_bytes(),
        )
    }
}

/// The API: HTTP Basic with an admin user on every request.
/// Why a write to the API is refused before its credentials are even checked: it comes
/// from a web page. Once an admin has typed the API's Basic credentials into a browser, the
/// browser sends them with any page's form post to it (a CSRF that could create or enable
/// tokens); API clients (curl, scripts) send no `Origin`, no `Sec-Fetch-Site` of another
/// site, and JSON or nothing as their body's type, which a form cannot.
fn refused_browser_write(req: &Incoming2) -> Option<Reply> {
    if matches!(req.method, Method::GET | Method::HEAD) {
        return None;
    }
    let from_another_site = req
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    if pages::cross_origin(req) || from_another_site {
        return Some(api::error_reply(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "API writes from another origin are refused",
        ));
    }
    let json = req.headers.get(CONTENT_TYPE).is_none_or(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    });
    (!json).then(|| {
        api::error_reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "API writes take Content-Type: application/json (or no body)",
        )
    })
}

async fn api_request(console: &Console, shared: &Arc<Shared>, req: Incoming2) -> Reply {
    if let Some(refused) = refused_browser_write(&req) {
        return refused;
    }
    let unauthorized = |msg: &str| {
        api::error_reply(StatusCode::UNAUTHORIZED, "unauthorized", msg).header(
            WWW_AUTHENTICATE,
            "Basic realm=\"scopegate admin\", charset=\"UTF-8\"",
        )
    };
    let creds = match crate::domain::auth::parse_basic(&req.headers) {
        Ok(c) => c,
        Err(_) => return unauthorized("admin credentials required (HTTP Basic)"),
    };
    let (users, bruteforce) = {
        let p = shared.policy.load();
        (
            p.settings.admin_users.clone(),
            p.settings.bruteforce.clone(),
        )
    };
    let password = zeroize::Zeroizing::new(String::from_utf8_lossy(creds.secret()).into_owned());
    match console
        .auth
        .check(&users, &bruteforce, req.peer, creds.sid(), password)
        .await
    {
        auth::Check::Ok(who) => {
            api::route(
                console,
                shared,
                &req.method,
                &req.path,
                req.query.as_deref(),
                &req.body,
                who,
            )
            .await
        }
        auth::Check::Bad => unauthorized("wrong admin user name or password"),
        auth::Check::Throttled => throttled(true, &bruteforce),
    }
}

/// 429 for a throttled admin login.
pub fn throttled(is_api: bool, s: &crate::domain::bruteforce::BruteForceSettings) -> Reply {
    let msg = "too many failed admin logins; try again later";
    let reply = if is_api {
        api::error_reply(StatusCode::TOO_MANY_REQUESTS, "throttled", msg)
    } else {
        Reply::new(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            format!("{msg}\n").into_bytes(),
        )
    };
    reply.header(RETRY_AFTER, &s.cooloff.as_secs().max(1).to_string())
}
