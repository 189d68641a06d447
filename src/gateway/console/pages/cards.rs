//! The card list: one card per token, grouped by account.

use super::*;

pub(super) struct Listing {
    pub(super) tokens: Vec<TokenView>,
    pub(super) report: Option<Report>,
    pub(super) writable: bool,
    pub(super) tokens_path: String,
}

pub(super) async fn listing(shared: &Arc<Shared>) -> Result<Listing, Fail> {
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

pub(super) async fn cards_page(ctx: &Ctx<'_>, account: Option<String>) -> Reply {
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
