//! A token's pages: the scope editor (a switch per API, a checkbox per method), the create
//! form, the edit page with the vendor model's sections and the gateway's own insight, and
//! the page that shows a new secret once.

use super::*;

// ---- scope editor ---------------------------------------------------------------------------

pub(super) struct CatalogApi {
    pub(super) name: String,
    pub(super) description: String,
}

pub(super) fn catalog(shared: &Shared) -> (Vec<CatalogApi>, Vec<String>) {
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

/// The last use of a granted method (a GET grant covers HEAD; a shorthand such as `read`
/// covers the methods it expands to).
pub(super) fn used_at(insight: Option<&Insight>, api: &str, method: &str) -> Option<i64> {
    let covered = crate::domain::shorthand::expand(method).unwrap_or(&[]);
    insight?
        .usage
        .iter()
        .filter(|u| {
            u.api == api
                && (u.method == method
                    || covered.contains(&u.method.as_str())
                    || (method == "GET" && u.method == "HEAD"))
        })
        .map(|u| u.last_used)
        .max()
}

pub(super) fn scope_editor(
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
pub(super) fn editor_methods(grant: Option<&ScopeView>) -> Vec<String> {
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
pub(super) fn scopes_from_form(form: &Form) -> Result<Vec<ScopeArg>, Fail> {
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
            crate::gateway::manage::parse::parse_scope(&format!("{api}:{}", methods.join(",")))
                .map_err(|e| fail(format!("{e}; nothing was written")))?,
        );
    }
    Ok(out)
}

pub(super) fn emails(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn none_if_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

// ---- create ---------------------------------------------------------------------------------

pub(super) async fn new_page(ctx: &Ctx<'_>) -> Reply {
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

pub(super) async fn create(ctx: &Ctx<'_>, form: &Form) -> Reply {
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
pub(super) fn secret_page(
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

pub(super) struct Detail {
    pub(super) token: TokenView,
    pub(super) insight: Insight,
    pub(super) writable: bool,
    pub(super) tokens_path: String,
    pub(super) observed_since: Option<i64>,
}

pub(super) async fn edit_page(ctx: &Ctx<'_>, sid: &str) -> Reply {
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
