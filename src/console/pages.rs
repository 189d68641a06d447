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
use crate::adminlog::Actor;
use crate::cli::audit::{Finding, Report};
use crate::cli::token::ops::{self, fail_kind};
use crate::cli::token::store::{fail, Fail, FailKind};
use crate::cli::token::view::{unix_rfc3339, ScopeView, TokenView};
use crate::cli::token::{parse_grace, ScopeArg};
use crate::proxy::Shared;

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

/// A post from another origin (a page elsewhere submitting into the console).
fn cross_origin(req: &Incoming2) -> bool {
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

// ---- login ----------------------------------------------------------------------------------

fn login_page(req: &Incoming2, error: Option<&str>, status: StatusCode) -> Reply {
    let Some(nonce) = auth::random_hex() else {
        return Reply::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            b"no randomness\n".to_vec(),
        );
    };
    let page = layout(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "scopegate" }
                p.sub { "Admin console. Sign in with an admin user from " code { "admin.users" } "." }
                @if let Some(e) = error { div.banner.error { (e) } }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(nonce);
                    label for="user" { "User" }
                    input #user type="text" name="user" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button.btn.primary type="submit" { "Sign in" }
                }
            }
        },
    );
    html_reply(status, page).header(
        SET_COOKIE,
        &format!(
            "{LOGIN_COOKIE}={nonce}; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=900{}",
            secure(req)
        ),
    )
}

async fn login(console: &Console, shared: &Arc<Shared>, req: &Incoming2) -> Reply {
    let form = Form::parse(&req.body);
    let nonce = cookie(req, LOGIN_COOKIE).unwrap_or("");
    if !csrf_matches(nonce, form.get("csrf").unwrap_or("")) {
        return forbidden(
            "Refused: the sign-in form did not carry its CSRF token. Open the sign-in page again.",
        );
    }
    let (users, bruteforce) = {
        let p = shared.policy.load();
        (
            p.settings.admin_users.clone(),
            p.settings.bruteforce.clone(),
        )
    };
    let user = form.get("user").unwrap_or("").to_owned();
    let password = zeroize::Zeroizing::new(form.get("password").unwrap_or("").to_owned());
    match console
        .auth
        .check(
            &users,
            &shared.addresses,
            &bruteforce,
            req.peer,
            &user,
            password,
        )
        .await
    {
        auth::Check::Ok(who) => match console.auth.open_session(&who) {
            Some((id, _)) => Reply::redirect("/console/")
                .header(
                    SET_COOKIE,
                    &format!(
                        "{SESSION_COOKIE}={id}; Path=/console/; HttpOnly; SameSite=Strict; \
                         Max-Age={}{}",
                        auth::SESSION_TTL.as_secs(),
                        secure(req)
                    ),
                )
                .header(
                    SET_COOKIE,
                    &format!(
                        "{LOGIN_COOKIE}=; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=0"
                    ),
                ),
            None => login_page(
                req,
                Some("Could not start a session."),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        },
        auth::Check::Bad => login_page(
            req,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        ),
        auth::Check::Throttled => {
            let mut r = login_page(
                req,
                Some("Too many failed sign-ins from here or for this user; try again later."),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r = r.header(
                http::header::RETRY_AFTER,
                &bruteforce.cooloff.as_secs().max(1).to_string(),
            );
            r
        }
    }
}

// ---- layout ---------------------------------------------------------------------------------

fn layout(title: &str, user: Option<(&str, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · scopegate" }
                link rel="stylesheet" href=(assets::CSS_PATH);
                script src=(assets::JS_PATH) defer {}
            }
            body {
                @if let Some((name, csrf)) = user {
                    header.topbar {
                        a.brand href="/console/" { "scopegate" span { "admin console" } }
                        nav {
                            a href="/console/" { "Tokens" }
                            a href="/console/new" { "Create token" }
                        }
                        div.spacer {}
                        span.who { "Signed in as " strong { (name) } }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button.btn-link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn flash_banners(notes: &[String]) -> Markup {
    html! {
        @for n in notes {
            @if let Some(m) = n.strip_prefix("error: ") { div.banner.error role="alert" { (m) } }
            @else if let Some(m) = n.strip_prefix("warning: ") { div.banner.warn { "Warning: " (m) } }
            @else { div.banner.ok role="status" { (n) } }
        }
    }
}

fn read_only_banner(path: &str) -> Markup {
    html! {
        div.banner.warn #read-only {
            strong { "Read-only. " }
            "The tokens file " code { (path) } " cannot be written by the gateway (for example a \
             ConfigMap mount). Change tokens where the file is managed; this console only shows them."
        }
    }
}

fn status_pill(t: &TokenView, now: OffsetDateTime) -> Markup {
    let s = t.effective_status(now);
    html! {
        span class={ "pill " (s) } { (s) }
        @if t.is_legacy() { " " span.pill.legacy { "legacy" } }
    }
}

/// "just now", "5 min ago", "3 h ago", "12 days ago".
fn ago(t: i64) -> String {
    let ago = (OffsetDateTime::now_utc().unix_timestamp() - t).max(0);
    match ago {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", ago / 60),
        3600..=86_399 => format!("{} h ago", ago / 3600),
        _ => format!("{} days ago", ago / 86_400),
    }
}

fn when(unix: Option<i64>) -> Markup {
    html! {
        @match unix {
            Some(t) => span title=(unix_rfc3339(t)) { (ago(t)) },
            None => span.muted { "never" },
        }
    }
}

fn finding_list(findings: &[&Finding], at_most: usize) -> Markup {
    let mut sorted: Vec<&&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    html! {
        @if findings.is_empty() {
            span.muted { "No findings" }
        } @else {
            @for f in sorted.iter().take(at_most) {
                div.finding { span class=(f.severity.as_str()) { (f.severity.as_str()) } " " (f.message) }
            }
            @if sorted.len() > at_most { div.muted { "+" (sorted.len() - at_most) " more" } }
        }
    }
}

// ---- card list ------------------------------------------------------------------------------

struct Listing {
    tokens: Vec<TokenView>,
    report: Option<Report>,
    writable: bool,
    tokens_path: String,
}

async fn listing(shared: &Arc<Shared>) -> Result<Listing, Fail> {
    let s = shared.clone();
    blocking(move || {
        let store = data::open_store(&s)?;
        let tokens = data::tokens(&s, &store)?;
        Ok(Listing {
            tokens,
            report: data::audit_report(&s).ok(),
            writable: store.writable(),
            tokens_path: store.display(),
        })
    })
    .await
}

fn error_page(ctx: &Ctx<'_>, f: &Fail) -> Reply {
    let status = match f.kind {
        FailKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    html_reply(
        status,
        ctx.page(
            "Error",
            html! { div.banner.error { (f.message) } p { a href="/console/" { "Back to the tokens" } } },
        ),
    )
}

fn not_found_page(ctx: &Ctx<'_>) -> Reply {
    error_page(
        ctx,
        &fail_kind(FailKind::NotFound, "There is no such console page."),
    )
}

async fn cards_page(ctx: &Ctx<'_>, account: Option<String>) -> Reply {
    let l = match listing(ctx.shared).await {
        Ok(l) => l,
        Err(f) => return error_page(ctx, &f),
    };
    let now = OffsetDateTime::now_utc();
    let mut by_account: BTreeMap<&str, Vec<&TokenView>> = BTreeMap::new();
    for t in &l.tokens {
        if account.as_deref().is_none_or(|a| a == t.account) {
            by_account.entry(&t.account).or_default().push(t);
        }
    }
    let findings_of = |sid: &str| -> Vec<&Finding> {
        l.report
            .as_ref()
            .map(|r| {
                r.findings
                    .iter()
                    .filter(|f| f.sid.as_deref() == Some(sid))
                    .collect()
            })
            .unwrap_or_default()
    };
    let flash = ctx.take_flash();
    let body = html! {
        div.page-head {
            div {
                h1 { "API tokens" }
                p.sub { (l.tokens.len()) " tokens in " (by_account.len()) " accounts · " code { (l.tokens_path) } }
            }
            @if l.writable { a.btn.primary href="/console/new" { "+ Create token" } }
        }
        (flash_banners(&flash))
        @if !l.writable { (read_only_banner(&l.tokens_path)) }
        @if by_account.is_empty() {
            div.empty { "No tokens yet. " @if l.writable { a href="/console/new" { "Create the first one." } } }
        }
        @for (acc, tokens) in &by_account {
            section.account {
                div.account-head {
                    h2 { (acc) @if let Some(n) = tokens.first().and_then(|t| t.account_name.as_deref()) { " · " span.muted { (n) } } }
                    span.count { (tokens.len()) @if tokens.len() == 1 { " token" } @else { " tokens" } }
                }
                div.cards {
                    @for t in tokens {
                        @let findings = findings_of(&t.sid);
                        article.card data-sid=(t.sid) {
                            div.card-head {
                                a.card-title href={ "/console/tokens/" (t.sid) } { (t.name) }
                                (status_pill(t, now))
                            }
                            div.desc { @if t.description.is_empty() { span.muted { "No description" } } @else { (t.description) } }
                            dl {
                                dt { "SID" } dd.mono { (t.sid) }
                                dt { "API version" } dd { (t.api_version.as_deref().unwrap_or("-")) }
                                dt { "Scopes" } dd {
                                    @if t.is_legacy() { span.chip { "full access (legacy)" } }
                                    @else if t.scopes.is_empty() { span.muted { "none: every request is refused" } }
                                    @else { @for s in &t.scopes { span.chip { (s.api) ":" (s.methods.join(",")) } } }
                                }
                                dt { "Last used" } dd { (when(t.last_used)) }
                                dt { "Findings" } dd.findings { (finding_list(&findings, 2)) }
                            }
                            div.card-foot {
                                span.muted { (t.primary_contact) }
                                a.btn.small href={ "/console/tokens/" (t.sid) } { "Edit" }
                            }
                        }
                    }
                }
            }
        }
    };
    html_reply(StatusCode::OK, ctx.page("Tokens", body))
}

// ---- scope editor ---------------------------------------------------------------------------

struct CatalogApi {
    name: String,
    description: String,
}

fn catalog(shared: &Shared) -> (Vec<CatalogApi>, Vec<String>) {
    let p = shared.policy.load();
    (
        p.settings
            .apis
            .iter()
            .map(|a| CatalogApi {
                name: a.name.clone(),
                description: a.description.clone(),
            })
            .collect(),
        p.settings.api_versions.clone(),
    )
}

fn used_at(insight: Option<&Insight>, api: &str, method: &str) -> Option<i64> {
    insight?
        .usage
        .iter()
        .filter(|u| u.api == api && (u.method == method || (method == "GET" && u.method == "HEAD")))
        .map(|u| u.last_used)
        .max()
}

fn scope_editor(
    apis: &[CatalogApi],
    granted: &[ScopeView],
    insight: Option<&Insight>,
    enabled: bool,
) -> Markup {
    html! {
        @for api in apis {
            @let grant = granted.iter().find(|g| g.api == api.name);
            @let methods = editor_methods(grant);
            div class={ "scope-row" @if grant.is_some() { " on" } } data-api=(api.name) {
                label.switch title={ "Grant " (api.name) } {
                    input type="checkbox" name="api" value=(api.name) checked[grant.is_some()] disabled[!enabled] aria-label={ "Grant " (api.name) };
                    span.track {}
                }
                div {
                    div.api-name { (api.name) }
                    div.api-desc { (api.description) }
                }
                div.methods {
                    @for m in &methods {
                        @let on = grant.is_some_and(|g| g.methods.iter().any(|x| x == m));
                        label.method {
                            input type="checkbox" name="scope" value={ (api.name) ":" (m) } checked[on] disabled[!enabled];
                            (m)
                            @if let Some(t) = used_at(insight, &api.name, m) {
                                span.used title={ "last used " (unix_rfc3339(t)) } { "● used" }
                            } @else if on && insight.is_some() {
                                span.api-desc { "unused" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The editor's methods for one API: the usual five, plus any other the grant has.
fn editor_methods(grant: Option<&ScopeView>) -> Vec<String> {
    let mut methods: Vec<String> = EDITOR_METHODS.iter().map(|m| (*m).to_owned()).collect();
    if let Some(g) = grant {
        for m in &g.methods {
            if !methods.contains(m) {
                methods.push(m.clone());
            }
        }
    }
    methods
}

/// The scopes a scope-editor form asks for: each API whose toggle is on, with its checked
/// methods. A toggle on with no method is an error (say which API).
fn scopes_from_form(form: &Form) -> Result<Vec<ScopeArg>, Fail> {
    let mut out = Vec::new();
    for api in form.all("api") {
        let prefix = format!("{api}:");
        let methods: Vec<&str> = form
            .all("scope")
            .filter_map(|s| s.strip_prefix(prefix.as_str()))
            .collect();
        if methods.is_empty() {
            return Err(fail(format!(
                "API `{api}` is switched on but no method is checked; check at least one \
                 method or switch it off; nothing was written"
            )));
        }
        out.push(
            crate::cli::token::parse_scope(&format!("{api}:{}", methods.join(",")))
                .map_err(|e| fail(format!("{e}; nothing was written")))?,
        );
    }
    Ok(out)
}

fn emails(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn none_if_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

// ---- create ---------------------------------------------------------------------------------

async fn new_page(ctx: &Ctx<'_>) -> Reply {
    let l = match listing(ctx.shared).await {
        Ok(l) => l,
        Err(f) => return error_page(ctx, &f),
    };
    let (apis, versions) = catalog(ctx.shared);
    let mut accounts: Vec<&str> = l.tokens.iter().map(|t| t.account.as_str()).collect();
    accounts.dedup();
    let flash = ctx.take_flash();
    let csrf = &ctx.session.csrf;
    let body = html! {
        div.page-head { div { h1 { "Create token" } p.sub { "The secret is shown once, right after creation." } } }
        (flash_banners(&flash))
        @if !l.writable { (read_only_banner(&l.tokens_path)) }
        form method="post" action="/console/new" {
            input type="hidden" name="csrf" value=(csrf);
            section.panel {
                header { h2 { "Overview" } }
                div.body {
                    div.field { label for="account" { "Account" } div {
                        input #account type="text" name="account" list="accounts" required;
                        datalist #accounts { @for a in &accounts { option value=(a) {} } }
                        div.hint { "An existing account id, or a new one." }
                    } }
                    div.field { label for="name" { "Name" } input #name type="text" name="name" required; }
                    div.field { label for="description" { "Description" } textarea #description name="description" {} }
                    div.field { label for="api_version" { "API version" } select #api_version name="api_version" {
                        option value="" { "(none)" }
                        @for v in &versions { option value=(v) selected[Some(v) == versions.last()] { (v) } }
                    } }
                }
            }
            section.panel {
                header { h2 { "API Credentials" } }
                div.body {
                    div.field { label for="primary_contact" { "Primary contact" } input #primary_contact type="email" name="primary_contact"; }
                    div.field { label for="developer_emails" { "Developer emails" } div {
                        textarea #developer_emails name="developer_emails" {}
                        div.hint { "Separated by commas or new lines." }
                    } }
                }
            }
            section.panel {
                header { h2 { "API Scopes" } }
                div.body { (scope_editor(&apis, &[], None, l.writable)) }
            }
            div.actions {
                button.btn.primary #create type="submit" disabled[!l.writable] { "Create token" }
                a.btn href="/console/" { "Cancel" }
            }
        }
    };
    html_reply(StatusCode::OK, ctx.page("Create token", body))
}

async fn create(ctx: &Ctx<'_>, form: &Form) -> Reply {
    let scopes = match scopes_from_form(form) {
        Ok(s) => s,
        Err(f) => return back(ctx, "/console/new", Err(f)),
    };
    let new = ops::NewToken {
        account: form.text("account").unwrap_or_default(),
        name: form.text("name").unwrap_or_default(),
        description: none_if_empty(form.text("description")),
        contact: none_if_empty(form.text("primary_contact")),
        developers: emails(form.text("developer_emails")),
        api_version: none_if_empty(form.text("api_version")),
        scopes,
        ..ops::NewToken::default()
    };
    if new.account.is_empty() || new.name.is_empty() {
        return back(
            ctx,
            "/console/new",
            Err(fail(
                "give the token an account and a name; nothing was written",
            )),
        );
    }
    let actor = ctx.actor();
    let (account, name) = (new.account.clone(), new.name.clone());
    match data::write(ctx.shared, &ctx.console.write_lock, move |store| {
        ops::create(store, &new, &actor)
    })
    .await
    {
        Ok(c) => secret_page(
            ctx,
            "Token created",
            &c.sid,
            &account,
            &name,
            &c.secret,
            &c.warnings,
            None,
        ),
        Err(f) => back(ctx, "/console/new", Err(f)),
    }
}

#[allow(clippy::too_many_arguments)]
fn secret_page(
    ctx: &Ctx<'_>,
    title: &str,
    sid: &str,
    account: &str,
    name: &str,
    secret: &str,
    warnings: &[String],
    grace_until: Option<&str>,
) -> Reply {
    let notes: Vec<String> = warnings.iter().map(|w| format!("warning: {w}")).collect();
    let body = html! {
        div.page-head { div { h1 { (title) } p.sub { (name) " · account " (account) } } }
        (flash_banners(&notes))
        div.banner.warn { strong { "Copy the secret now. " } "It is shown only on this page and cannot be recovered: only its hash is stored." }
        @if let Some(until) = grace_until { div.banner.info { "The previous secret keeps working until " (until) "." } }
        section.panel {
            header { h2 { "API Credentials" } }
            div.body {
                div.field { label { "SID (username)" } div.secret-box { code #new-sid { (sid) } button.btn.small type="button" data-copy="new-sid" { "Copy" } } }
                div.field { label { "Secret (password)" } div.secret-box { code #new-secret { (secret) } button.btn.small type="button" data-copy="new-secret" { "Copy" } } }
                div.field { label { "HTTP Basic" } div.secret-box { code #new-basic { (sid) ":" (secret) } button.btn.small type="button" data-copy="new-basic" { "Copy" } } }
            }
        }
        div.actions { a.btn.primary #done href={ "/console/tokens/" (sid) } { "Done: go to the token" } a.btn href="/console/" { "All tokens" } }
    };
    let mut r = html_reply(StatusCode::OK, ctx.page(title, body));
    r.secret = true;
    r
}

// ---- edit -----------------------------------------------------------------------------------

struct Detail {
    token: TokenView,
    insight: Insight,
    writable: bool,
    tokens_path: String,
    observed_since: Option<i64>,
}

async fn edit_page(ctx: &Ctx<'_>, sid: &str) -> Reply {
    let s = ctx.shared.clone();
    let sid_owned = sid.to_owned();
    let detail = blocking(move || {
        let store = data::open_store(&s)?;
        let doc = store.read_doc()?;
        let Some(token) = data::tokens(&s, &store)?
            .into_iter()
            .find(|t| t.sid == sid_owned)
        else {
            return Err(ops::not_found(&store, &doc, &sid_owned));
        };
        let report = data::audit_report(&s).ok();
        let insight = data::insight(&s, &sid_owned, report.as_ref());
        let observed_since = s
            .policy
            .load()
            .tokens
            .get(&sid_owned)
            .map(|t| t.runtime.usage.since());
        Ok(Detail {
            token,
            insight,
            writable: store.writable(),
            tokens_path: store.display(),
            observed_since,
        })
    })
    .await;
    let d = match detail {
        Ok(d) => d,
        Err(f) => return error_page(ctx, &f),
    };
    let (apis, versions) = catalog(ctx.shared);
    let t = &d.token;
    let now = OffsetDateTime::now_utc();
    let flash = ctx.take_flash();
    let csrf = &ctx.session.csrf;
    let w = d.writable;
    let base = format!("/console/tokens/{}", t.sid);
    let unused: Vec<(String, String)> = t
        .scopes
        .iter()
        .flat_map(|g| g.methods.iter().map(move |m| (g.api.clone(), m.clone())))
        .filter(|(api, m)| used_at(Some(&d.insight), api, m).is_none())
        .collect();
    let any_used = t.scopes.iter().any(|g| {
        g.methods
            .iter()
            .any(|m| used_at(Some(&d.insight), &g.api, m).is_some())
    });
    let findings: Vec<&Finding> = d.insight.findings.iter().collect();
    let body = html! {
        div.page-head {
            div {
                h1 { (t.name) " " (status_pill(t, now)) }
                p.sub { "Account " (t.account) @if let Some(n) = &t.account_name { " (" (n) ")" } " · created " (t.created_at.as_deref().unwrap_or("-")) " · secret rotated " (t.rotated_at.as_deref().unwrap_or("-")) }
            }
            a.btn href="/console/" { "← All tokens" }
        }
        (flash_banners(&flash))
        @if !w { (read_only_banner(&d.tokens_path)) }
        div.layout {
            div {
                form #update-form method="post" action={ (base) "/update" } {
                    input type="hidden" name="csrf" value=(csrf);
                    section.panel #overview {
                        header { h2 { "Overview" } }
                        div.body {
                            div.field { label for="name" { "Name" } input #name type="text" name="name" value=(t.name) required disabled[!w]; }
                            div.field { label for="description" { "Description" } textarea #description name="description" disabled[!w] { (t.description) } }
                            div.field { label for="api_version" { "API version" } select #api_version name="api_version" disabled[!w] {
                                @if t.api_version.is_none() { option value="" selected { "(none)" } }
                                @for v in &versions { option value=(v) selected[t.api_version.as_deref() == Some(v.as_str())] { (v) } }
                            } }
                        }
                    }
                    section.panel #credentials {
                        header { h2 { "API Credentials" } }
                        div.body {
                            div.field { label for="primary_contact" { "Primary contact" } input #primary_contact type="email" name="primary_contact" value=(t.primary_contact) disabled[!w]; }
                            div.field { label for="developer_emails" { "Developer emails" } div {
                                textarea #developer_emails name="developer_emails" disabled[!w] { (t.developer_emails.join("\n")) }
                                div.hint { "One per line (or comma-separated)." }
                            } }
                            div.field { label { "SID" } div.secret-box { code #sid { (t.sid) } button.btn.small type="button" data-copy="sid" { "Copy" } } }
                            div.field { label { "Auth token" } div {
                                div.secret-box { span.muted { "Hidden: only a hash is stored (" (t.secret_scheme.as_deref().unwrap_or("none")) ")." } }
                                @if let Some(until) = t.grace_until(now) { div.hint { "The previous secret stays valid until " (until) "." } }
                                div.actions.spaced {
                                    button.btn.danger #reset type="submit" form="reset-form" disabled[!w] data-confirm="Reset the auth token? The current secret stops working immediately and a new one is shown once." { "Reset Token" }
                                }
                            } }
                        }
                    }
                    section.panel #scopes {
                        header {
                            h2 { "API Scopes" }
                            @if t.is_legacy() { span.pill.legacy { "legacy: full access until migrated" } }
                        }
                        div.body { (scope_editor(&apis, &t.scopes, Some(&d.insight), w)) }
                    }
                    div.sticky-actions {
                        div.actions {
                            button.btn.primary #update type="submit" name="op" value="update" disabled[!w] data-confirm="Update this token? The gateway enforces the change as soon as it is saved." { "Update" }
                            button.btn #clear-all type="submit" name="op" value="clear" disabled[!w] data-confirm="Clear all scopes? Every request this token makes will be refused until scopes are granted again." { "Clear All" }
                        }
                        div.actions {
                            @if t.status == "disabled" {
                                button.btn #enable type="submit" form="enable-form" disabled[!w] { "Enable" }
                            } @else {
                                button.btn #disable type="submit" form="disable-form" disabled[!w] data-confirm="Disable this token? It is refused like an invalid token until enabled again." { "Disable" }
                            }
                            button.btn.danger #delete type="submit" form="delete-form" disabled[!w] data-confirm="Delete this token for good? Its SID can never authenticate again." { "Delete" }
                        }
                    }
                }
                @for (id, action) in [("reset-form", "reset"), ("disable-form", "disable"), ("enable-form", "enable"), ("delete-form", "delete"), ("narrow-form", "narrow")] {
                    form id=(id) method="post" action={ (base) "/" (action) } hidden { input type="hidden" name="csrf" value=(csrf); }
                }
            }
            aside {
                section.panel #usage {
                    header { h2 { "Usage" } }
                    div.body {
                        div.stat { span.muted { "Last used" } span { (when(t.last_used)) } }
                        @if let Some(since) = d.observed_since { div.stat { span.muted { "Recorded since" } span { (unix_rfc3339(since)) } } }
                        @if d.insight.usage.is_empty() {
                            p.muted { "No request recorded yet." }
                        } @else {
                            table.data {
                                thead { tr { th { "API" } th { "Method" } th { "Requests" } th { "Last use" } } }
                                tbody { @for u in &d.insight.usage { tr { td { (u.api) } td.mono { (u.method) } td { (u.count) } td title=(unix_rfc3339(u.last_used)) { (ago(u.last_used)) } } } }
                            }
                        }
                    }
                }
                section.panel #unused {
                    header { h2 { "Unused scopes" } }
                    div.body {
                        @if t.is_legacy() {
                            p.muted { "A legacy token has no scopes to narrow; migrate it to scoped first." }
                        } @else if unused.is_empty() {
                            p.muted { "Every granted method has been used." }
                        } @else {
                            div { @for (api, m) in &unused { span.chip.unused { (api) ":" (m) } } }
                            @if any_used {
                                p.muted { "Narrowing keeps only the methods used since recording began." }
                                button.btn.small #narrow type="submit" form="narrow-form" disabled[!w] data-confirm="Narrow this token to the scopes it has used? Unused grants are removed." { "Narrow to used" }
                            } @else {
                                p.muted { "Nothing used yet: nothing to narrow to." }
                            }
                        }
                    }
                }
                section.panel #shadow {
                    header { h2 { "Shadow scopes" } }
                    div.body {
                        @match &t.shadow_scopes {
                            None => p.muted { "No shadow scopes. With the CLI, " code { "token update --shadow-scope" } " proposes a narrower set and this panel counts what it would deny." },
                            Some(s) => {
                                div { @for g in s { span.chip { (g.api) ":" (g.methods.join(",")) } } }
                                @if d.insight.shadow_denied.is_empty() {
                                    p.muted { "No request so far would have been denied." }
                                } @else {
                                    table.data {
                                        thead { tr { th { "Would deny" } th { "Requests" } } }
                                        tbody { @for s in &d.insight.shadow_denied { tr { td.mono { (s.api) " " (s.method) } td { (s.count) } } } }
                                    }
                                }
                            }
                        }
                    }
                }
                section.panel #findings {
                    header { h2 { "Audit findings" } }
                    div.body.findings {
                        @if findings.is_empty() { span.muted { "No findings" } }
                        @for f in &findings {
                            div.finding-block {
                                div { span class=(f.severity.as_str()) { (f.severity.as_str()) } " " (f.message) }
                                @if !f.recommendation.is_empty() { div.muted { (f.recommendation) } }
                                @if let Some(cmd) = &f.command { code.cmd { (cmd) } }
                            }
                        }
                    }
                }
                section.panel #headroom {
                    header { h2 { "Rate limit" } }
                    div.body {
                        @match &d.insight.rate_limit {
                            None => p.muted { "Not loaded by the gateway (disabled, expired or not valid)." },
                            Some(h) => {
                                div.stat { span.muted { "Limit" } span { (h.requests_per_second) " req/s, burst " (h.burst) } }
                                @match h.remaining {
                                    None => p.muted { "No request since the gateway started: full burst available." },
                                    Some(r) => {
                                        @let burst = f64::from(h.burst.max(1));
                                        @let taken = (burst - r as f64).clamp(0.0, burst);
                                        meter.headroom min="0" max=(burst) value=(taken) low=(burst * 0.5) high=(burst * 0.8) optimum="0" title="burst in use" {}
                                        div.stat { span.muted { "Headroom after the last request" } span { (r) " of " (h.burst) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html_reply(StatusCode::OK, ctx.page(&t.name, body))
}

// ---- posts ----------------------------------------------------------------------------------

/// Stores the outcome as a note for the next page and redirects there.
fn back(ctx: &Ctx<'_>, to: &str, outcome: Result<Vec<String>, Fail>) -> Reply {
    let notes = match outcome {
        Ok(notes) => notes,
        Err(f) => vec![format!("error: {}", f.message)],
    };
    ctx.flash(notes);
    Reply::redirect(to)
}

fn with_warnings(done: String, warnings: Vec<String>) -> Vec<String> {
    let mut notes = vec![done];
    notes.extend(warnings.into_iter().map(|w| format!("warning: {w}")));
    notes
}

async fn post(ctx: &Ctx<'_>, path: &str, form: &Form) -> Reply {
    if path == "/console/logout" {
        ctx.console.auth.close_session(&ctx.session_id);
        return Reply::redirect("/console/login").header(
            SET_COOKIE,
            &format!("{SESSION_COOKIE}=; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=0"),
        );
    }
    if path == "/console/new" {
        return create(ctx, form).await;
    }
    let Some((sid, action)) = path
        .strip_prefix("/console/tokens/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return not_found_page(ctx);
    };
    let sid = sid.to_owned();
    let page = format!("/console/tokens/{sid}");
    let actor = ctx.actor();
    let shared = ctx.shared;
    let lock = &ctx.console.write_lock;
    match action {
        "update" => {
            let clear = form.get("op") == Some("clear");
            let scopes = if clear {
                Vec::new()
            } else {
                match scopes_from_form(form) {
                    Ok(s) => s,
                    Err(f) => return back(ctx, &page, Err(f)),
                }
            };
            let wanted = Wanted {
                name: form.text("name"),
                description: form.text("description"),
                contact: form.text("primary_contact"),
                developers: form
                    .get("developer_emails")
                    .map(|e| emails(Some(e.to_owned()))),
                api_version: none_if_empty(form.text("api_version")),
                scopes,
            };
            let s = sid.clone();
            let for_op = shared.clone();
            let r = data::write(shared, lock, move |store| {
                let current = data::tokens(&for_op, store)?
                    .into_iter()
                    .find(|t| t.sid == s);
                let Some(current) = current else {
                    let doc = store.read_doc()?;
                    return Err(ops::not_found(store, &doc, &s));
                };
                match wanted.diff(&current) {
                    Some(change) => ops::update(store, &s, &change, &actor).map(Some),
                    None => Ok(None),
                }
            })
            .await;
            let r = match r {
                Ok(None) => return back(ctx, &page, Ok(vec!["Nothing to change.".into()])),
                Ok(Some(u)) => Ok(u),
                Err(f) => Err(f),
            };
            let done = if clear {
                "Cleared all scopes: the token is refused on every request."
            } else {
                "Updated; the gateway enforces the change now."
            };
            back(
                ctx,
                &page,
                r.map(|u| with_warnings(done.into(), u.warnings)),
            )
        }
        "narrow" => {
            let s = sid.clone();
            let r = data::write(shared, lock, {
                let shared = shared.clone();
                move |store| {
                    let keep = used_scopes(&shared, store, &s)?;
                    let change = ops::Change {
                        clear_scopes: true,
                        scopes: keep,
                        ..ops::Change::default()
                    };
                    ops::update(store, &s, &change, &actor)
                }
            })
            .await;
            back(
                ctx,
                &page,
                r.map(|u| with_warnings("Narrowed to the scopes in use.".into(), u.warnings)),
            )
        }
        "disable" | "enable" => {
            let enable = action == "enable";
            let s = sid.clone();
            let r = data::write(shared, lock, move |store| {
                ops::set_status(store, &s, enable, &actor)
            })
            .await;
            let done = if enable {
                "Enabled."
            } else {
                "Disabled: the token is refused until enabled again."
            };
            back(ctx, &page, r.map(|(_, w)| with_warnings(done.into(), w)))
        }
        "delete" => {
            let s = sid.clone();
            let r = data::write(shared, lock, move |store| ops::delete(store, &s, &actor)).await;
            match r {
                Ok((name, _, w)) => back(
                    ctx,
                    "/console/",
                    Ok(with_warnings(
                        format!("Deleted {name} ({sid}); its SID can never authenticate again."),
                        w,
                    )),
                ),
                Err(f) => back(ctx, &page, Err(f)),
            }
        }
        "reset" => {
            let grace = match form.text("grace").filter(|g| !g.is_empty()) {
                Some(g) => match parse_grace(&g) {
                    Ok(d) => Some(d),
                    Err(e) => return back(ctx, &page, Err(fail(format!("grace: {e}")))),
                },
                None => None,
            };
            let s = sid.clone();
            match data::write(shared, lock, move |store| {
                ops::reset(store, &s, grace, &actor)
            })
            .await
            {
                Ok(r) => secret_page(
                    ctx,
                    "Token reset",
                    &sid,
                    &r.account,
                    &r.name,
                    &r.secret,
                    &r.warnings,
                    r.grace_until.as_deref(),
                ),
                Err(f) => back(ctx, &page, Err(f)),
            }
        }
        _ => not_found_page(ctx),
    }
}

/// What the edit form asks for; [`Wanted::diff`] keeps only what differs from the file, so
/// the admin log and the answer name the fields that really changed.
struct Wanted {
    name: Option<String>,
    description: Option<String>,
    contact: Option<String>,
    developers: Option<Vec<String>>,
    api_version: Option<String>,
    scopes: Vec<ScopeArg>,
}

impl Wanted {
    fn diff(self, t: &TokenView) -> Option<ops::Change> {
        let differs =
            |want: &Option<String>, have: &str| want.as_deref().is_some_and(|w| w != have);
        let mut c = ops::Change::default();
        if differs(&self.name, &t.name) {
            c.name = self.name;
        }
        if differs(&self.description, &t.description) {
            c.description = self.description;
        }
        if differs(&self.contact, &t.primary_contact) {
            c.contact = self.contact;
        }
        if self
            .developers
            .as_ref()
            .is_some_and(|d| *d != t.developer_emails)
        {
            c.set_developers = self.developers;
        }
        if self.api_version.is_some() && self.api_version != t.api_version {
            c.api_version = self.api_version;
        }
        let norm = |list: Vec<(String, Vec<String>)>| {
            let mut list: Vec<(String, Vec<String>)> = list
                .into_iter()
                .map(|(api, mut m)| {
                    m.sort();
                    (api, m)
                })
                .collect();
            list.sort();
            list
        };
        let want = norm(
            self.scopes
                .iter()
                .map(|s| (s.api.clone(), s.methods.clone()))
                .collect(),
        );
        let have = norm(
            t.scopes
                .iter()
                .map(|s| (s.api.clone(), s.methods.clone()))
                .collect(),
        );
        if want != have {
            c.clear_scopes = true;
            c.scopes = self.scopes;
        }
        let unchanged = c.name.is_none()
            && c.description.is_none()
            && c.contact.is_none()
            && c.set_developers.is_none()
            && c.api_version.is_none()
            && !c.clear_scopes;
        (!unchanged).then_some(c)
    }
}

/// The granted (API, method) pairs the usage record shows in use (HEAD counts for GET).
fn used_scopes(
    shared: &Shared,
    store: &crate::cli::token::store::Store,
    sid: &str,
) -> Result<Vec<ScopeArg>, Fail> {
    let token = data::tokens(shared, store)?
        .into_iter()
        .find(|t| t.sid == sid)
        .ok_or_else(|| fail_kind(FailKind::NotFound, format!("no token with SID {sid}")))?;
    let insight = data::insight(shared, sid, None);
    let keep: Vec<ScopeArg> = token
        .scopes
        .iter()
        .filter_map(|g| {
            let methods: Vec<String> = g
                .methods
                .iter()
                .filter(|m| used_at(Some(&insight), &g.api, m).is_some())
                .cloned()
                .collect();
            (!methods.is_empty()).then(|| ScopeArg {
                api: g.api.clone(),
                methods,
            })
        })
        .collect();
    if keep.is_empty() {
        return Err(fail_kind(
            FailKind::Conflict,
            "no granted scope has been used yet: nothing to narrow to; nothing was written",
        ));
    }
    Ok(keep)
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
            }],
            shadow_scopes: None,
            rate_limit: None,
            last_used: None,
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
