//! The console's pages and form posts: login, token cards per account, the edit page with
//! the vendor model's sections (Overview, API Credentials, API Scopes) plus what only the
//! gateway knows (last use per scope, unused scopes, shadow-scope denials, audit findings,
//! rate-limit headroom), create, and the page that shows a new secret once.
//!
//! Forms post to fixed paths and answer with a redirect (post/redirect/get), except create
//! and reset, whose answer is the one page that ever shows the secret. Every post carries
//! the session's CSRF token and is refused (403) without it; a cross-origin `Origin` is
//! refused too. Login uses a short-lived double-submit token, since there is no session yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::SET_COOKIE;
use http::{Method, StatusCode};
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use super::auth::{self, csrf_matches, Session};
use super::data::{self, blocking, Insight};
use super::{assets, Console, Incoming2, Reply};
use crate::gateway::adminlog::Actor;
use crate::gateway::manage::audit::{Finding, Report};
use crate::gateway::manage::ops::{self, fail_kind};
use crate::gateway::manage::parse::{parse_grace, ScopeArg};
use crate::gateway::manage::store::{fail, Fail, FailKind};
use crate::gateway::manage::view::{unix_rfc3339, ScopeView, TokenView};
use crate::gateway::proxy::Shared;

mod actions;
mod cards;
mod layout;
mod login;
mod token;

use actions::*;
use cards::*;
use layout::*;
use login::*;
use token::*;

const SESSION_COOKIE: &str = "sg_session";
const LOGIN_COOKIE: &str = "sg_login";
/// The methods offered per API in the scope editor (others stay as granted).
const EDITOR_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A parsed form body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A text field, trimmed; `None` when absent.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.trim().to_owned())
    }
}

fn cookie<'h>(req: &'h Incoming2, name: &str) -> Option<&'h str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Secure` when the admin listener is reached through a TLS-terminating proxy.
fn secure(req: &Incoming2) -> &'static str {
    let https = req
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

/// A post from another origin (a page elsewhere submitting into the console, or into the
/// API with credentials the browser remembered).
pub(super) fn cross_origin(req: &Incoming2) -> bool {
    let Some(origin) = req.headers.get(http::header::ORIGIN) else {
        return false;
    };
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    authority.is_empty() || !authority.eq_ignore_ascii_case(host)
}

fn html_reply(status: StatusCode, page: Markup) -> Reply {
    Reply::new(
        status,
        "text/html; charset=utf-8",
        page.into_string().into_bytes(),
    )
}

fn forbidden(message: &str) -> Reply {
    html_reply(
        StatusCode::FORBIDDEN,
        layout(
            "Refused",
            None,
            html! {
                div.banner.error { (message) }
                p { a href="/console/" { "Back to the console" } }
            },
        ),
    )
}

/// Routes `/console/...`.
pub async fn route(console: &Console, shared: &Arc<Shared>, req: Incoming2) -> Reply {
    let path = req.path.clone();
    if req.method == Method::GET || req.method == Method::HEAD {
        if let Some(asset) = assets::get(&path) {
            return asset;
        }
    }
    if req.method == Method::POST && cross_origin(&req) {
        return forbidden("Refused: the form was posted from another site.");
    }
    match (&req.method, path.as_str()) {
        (&Method::GET, "/console") => return Reply::redirect("/console/"),
        (&Method::GET, "/console/login") => return login_page(&req, None, StatusCode::OK),
        (&Method::POST, "/console/login") => return login(console, shared, &req).await,
        _ => {}
    }
    let users = shared.policy.load().settings.admin_users.clone();
    let session = cookie(&req, SESSION_COOKIE)
        .map(str::to_owned)
        .and_then(|id| console.auth.session(&id, &users).map(|s| (id, s)));
    let Some((session_id, session)) = session else {
        return Reply::redirect("/console/login");
    };
    let ctx = Ctx {
        console,
        shared,
        session_id,
        session,
    };
    if req.method == Method::POST {
        let form = Form::parse(&req.body);
        if !csrf_matches(&ctx.session.csrf, form.get("csrf").unwrap_or("")) {
            return forbidden(
                "Refused: this form did not carry the console's CSRF token (it may be stale, or \
                 it was not sent by the console). Reload the page and try again.",
            );
        }
        return post(&ctx, &path, &form).await;
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return Reply::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            b"method not allowed\n".to_vec(),
        );
    }
    let query = Form::parse(req.query.as_deref().unwrap_or("").as_bytes());
    match path.as_str() {
        "/console/" => cards_page(&ctx, query.text("account")).await,
        "/console/new" => new_page(&ctx).await,
        p => match p.strip_prefix("/console/tokens/") {
            Some(sid) if !sid.is_empty() && !sid.contains('/') => edit_page(&ctx, sid).await,
            _ => not_found_page(&ctx),
        },
    }
}

/// A logged-in request.
struct Ctx<'a> {
    console: &'a Console,
    shared: &'a Arc<Shared>,
    session_id: String,
    session: Session,
}

impl Ctx<'_> {
    fn actor(&self) -> Actor {
        Actor {
            who: self.session.user.clone(),
            via: "console",
        }
    }

    fn flash(&self, notes: Vec<String>) {
        self.console.auth.swap_flash(&self.session_id, notes);
    }

    fn take_flash(&self) -> Vec<String> {
        self.console.auth.swap_flash(&self.session_id, Vec::new())
    }

    fn page(&self, title: &str, body: Markup) -> Markup {
        layout(title, Some((&self.session.user, &self.session.csrf)), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes())
    }

    #[test]
    fn the_scope_editor_form_maps_to_scopes() {
        let f = form("api=campaigns&scope=campaigns%3AGET&scope=campaigns%3APOST&scope=reports%3AGET&api=public&scope=public%3Aget");
        let scopes = scopes_from_form(&f).unwrap();
        assert_eq!(
            scopes,
            vec![
                ScopeArg {
                    api: "campaigns".into(),
                    methods: vec!["GET".into(), "POST".into()],
                },
                ScopeArg {
                    api: "public".into(),
                    methods: vec!["GET".into()],
                },
            ],
            "a method of a switched-off API is ignored"
        );
        let err = scopes_from_form(&form("api=reports")).unwrap_err();
        assert!(err
            .message
            .contains("`reports` is switched on but no method"));
        let err = scopes_from_form(&form("api=reports&scope=reports%3ABREW")).unwrap_err();
        assert!(err.message.contains("BREW"));
        assert!(scopes_from_form(&form("")).unwrap().is_empty());
    }

    #[test]
    fn an_unchanged_form_changes_nothing() {
        let t = TokenView {
            sid: "SGx".into(),
            account: "IRacme".into(),
            account_name: None,
            name: "n".into(),
            description: "d".into(),
            primary_contact: "c@x.example".into(),
            developer_emails: vec!["a@x.example".into()],
            api_version: Some("v15".into()),
            status: "active".into(),
            kind: "scoped".into(),
            environment: None,
            secret_scheme: None,
            previous_valid_until: None,
            created_at: None,
            rotated_at: None,
            expires_at: None,
            scopes: vec![ScopeView {
                api: "campaigns".into(),
                methods: vec!["GET".into(), "POST".into()],
                ..ScopeView::default()
            }],
            shadow_scopes: None,
            allowed_ips: None,
            rate_limit: None,
            last_used: None,
            quota: None,
            scope_limits: Vec::new(),
        };
        let same = || Wanted {
            name: Some("n".into()),
            description: Some("d".into()),
            contact: Some("c@x.example".into()),
            developers: Some(vec!["a@x.example".into()]),
            api_version: Some("v15".into()),
            scopes: vec![ScopeArg {
                api: "campaigns".into(),
                methods: vec!["POST".into(), "GET".into()],
            }],
        };
        assert!(same().diff(&t).is_none());
        let mut w = same();
        w.description = Some("new".into());
        let c = w.diff(&t).unwrap();
        assert_eq!(c.description.as_deref(), Some("new"));
        assert!(c.name.is_none() && !c.clear_scopes && c.set_developers.is_none());
        let mut w = same();
        w.scopes.clear();
        let c = w.diff(&t).unwrap();
        assert!(c.clear_scopes && c.scopes.is_empty());
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let req = |origin: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::HOST, "127.0.0.1:9901".parse().unwrap());
            if let Some(o) = origin {
                headers.insert(http::header::ORIGIN, o.parse().unwrap());
            }
            Incoming2 {
                method: Method::POST,
                path: "/console/new".into(),
                query: None,
                headers,
                body: bytes::Bytes::new(),
                peer: "127.0.0.1".parse().unwrap(),
            }
        };
        assert!(!cross_origin(&req(None)));
        assert!(!cross_origin(&req(Some("http://127.0.0.1:9901"))));
        assert!(cross_origin(&req(Some("http://evil.example"))));
        assert!(cross_origin(&req(Some("null"))));
        assert!(cross_origin(&req(Some("http://127.0.0.1:9902"))));
    }
}
