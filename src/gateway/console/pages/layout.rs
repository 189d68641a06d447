//! The page frame (top bar, stylesheet, script) and the small pieces every page uses:
//! banners, status pills, relative times, finding lists, error pages.

use super::*;

pub(super) fn layout(title: &str, user: Option<(&str, &str)>, body: Markup) -> Markup {
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

pub(super) fn flash_banners(notes: &[String]) -> Markup {
    html! {
        @for n in notes {
            @if let Some(m) = n.strip_prefix("error: ") { div.banner.error role="alert" { (m) } }
            @else if let Some(m) = n.strip_prefix("warning: ") { div.banner.warn { "Warning: " (m) } }
            @else { div.banner.ok role="status" { (n) } }
        }
    }
}

pub(super) fn read_only_banner(path: &str) -> Markup {
    html! {
        div.banner.warn #read-only {
            strong { "Read-only. " }
            "The tokens file " code { (path) } " cannot be written by the gateway (for example a \
             ConfigMap mount). Change tokens where the file is managed; this console only shows them."
        }
    }
}

pub(super) fn status_pill(t: &TokenView, now: OffsetDateTime) -> Markup {
    let s = t.effective_status(now);
    html! {
        span class={ "pill " (s) } { (s) }
        @if t.is_legacy() { " " span.pill.legacy { "legacy" } }
    }
}

/// "just now", "5 min ago", "3 h ago", "12 days ago".
pub(super) fn ago(t: i64) -> String {
    let ago = (OffsetDateTime::now_utc().unix_timestamp() - t).max(0);
    match ago {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", ago / 60),
        3600..=86_399 => format!("{} h ago", ago / 3600),
        _ => format!("{} days ago", ago / 86_400),
    }
}

pub(super) fn when(unix: Option<i64>) -> Markup {
    html! {
        @match unix {
            Some(t) => span title=(unix_rfc3339(t)) { (ago(t)) },
            None => span.muted { "never" },
        }
    }
}

pub(super) fn finding_list(findings: &[&Finding], at_most: usize) -> Markup {
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

pub(super) fn error_page(ctx: &Ctx<'_>, f: &Fail) -> Reply {
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

pub(super) fn not_found_page(ctx: &Ctx<'_>) -> Reply {
    error_page(
        ctx,
        &fail_kind(FailKind::NotFound, "There is no such console page."),
    )
}
