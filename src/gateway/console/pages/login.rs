//! The sign-in form and its post: a double-submit CSRF token (there is no session yet),
//! the admin credential check with the brute-force throttle, then the session cookie.

use super::*;

pub(super) fn login_page(req: &Incoming2, error: Option<&str>, status: StatusCode) -> Reply {
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

pub(super) async fn login(console: &Console, shared: &Arc<Shared>, req: &Incoming2) -> Reply {
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
        .check(&users, &bruteforce, req.peer, &user, password)
        .await
    {
        auth::Check::Ok(who) => match users
            .iter()
            .find(|u| u.name == who)
            .and_then(|u| console.auth.open_session(u))
        {
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
