//! The console's form posts: update (only what changed), clear all, narrow to used,
//! disable/enable, delete, reset; each answers with a redirect and a note for the next page,
//! except reset, whose answer is the secret page.

use super::*;

/// Stores the outcome as a note for the next page and redirects there.
pub(super) fn back(ctx: &Ctx<'_>, to: &str, outcome: Result<Vec<String>, Fail>) -> Reply {
    let notes = match outcome {
        Ok(notes) => notes,
        Err(f) => vec![format!("error: {}", f.message)],
    };
    ctx.flash(notes);
    Reply::redirect(to)
}

pub(super) fn with_warnings(done: String, warnings: Vec<String>) -> Vec<String> {
    let mut notes = vec![done];
    notes.extend(warnings.into_iter().map(|w| format!("warning: {w}")));
    notes
}

pub(super) async fn post(ctx: &Ctx<'_>, path: &str, form: &Form) -> Reply {
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
pub(super) struct Wanted {
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) contact: Option<String>,
    pub(super) developers: Option<Vec<String>>,
    pub(super) api_version: Option<String>,
    pub(super) scopes: Vec<ScopeArg>,
}

impl Wanted {
    pub(super) fn diff(self, t: &TokenView) -> Option<ops::Change> {
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
pub(super) fn used_scopes(
    shared: &Shared,
    store: &crate::gateway::manage::store::Store,
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
