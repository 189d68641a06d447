//! `admin:` in `scopegate.yaml`: the users of the admin API and console (SPEC §10), and the
//! host names the admin listener answers for (`gateway::admin_host`). Only argon2id PHC
//! strings are accepted as password hashes (`scopegate hash --argon2` makes one); the
//! plain password never appears in the configuration.

use serde::Deserialize;
use serde_yaml::Value;

use super::error::ErrorSink;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminUser {
    pub name: String,
    pub password_hash: String,
}

pub use crate::domain::admin::AdminUser;

const HINT_HASH: &str =
    "make one with `scopegate hash --argon2` (it reads the password on stdin) and paste it here";

/// `admin:` once validated.
#[derive(Debug, Default)]
pub struct AdminSection {
    pub users: Vec<AdminUser>,
    /// `admin.allowed_hosts`, lowercase and without a trailing dot; `None` when not set.
    pub allowed_hosts: Option<Vec<String>>,
}

/// Validates `admin:`: a mapping with `users` and `allowed_hosts`. Every error is
/// reported, each under its own field.
pub fn section(sink: &mut ErrorSink<'_>, raw: Option<Value>) -> AdminSection {
    let map = match raw {
        None | Some(Value::Null) => return AdminSection::default(),
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            sink.push(
                "admin",
                "`admin` must be a mapping",
                "write admin: {users: [{name: ops, password_hash: \"$argon2id$...\"}]}",
            );
            return AdminSection::default();
        }
    };
    for (k, _) in map.iter() {
        if !matches!(k.as_str(), Some("users" | "allowed_hosts")) {
            sink.push(
                &format!("admin.{}", k.as_str().unwrap_or("?")),
                "unknown field in `admin`",
                "`admin` has `users: [{name, password_hash}]` and `allowed_hosts: [names]`",
            );
        }
    }
    AdminSection {
        users: users(sink, map.get("users")),
        allowed_hosts: allowed_hosts(sink, map.get("allowed_hosts")),
    }
}

const HINT_HOSTS: &str = "list the host names the admin listener is reached by, without ports \
     (IP addresses and `localhost` are always answered), or `\"*\"` for any";

/// `admin.allowed_hosts`: host names (letters, digits, `-`, `_`, dots) or `*`.
fn allowed_hosts(sink: &mut ErrorSink<'_>, raw: Option<&Value>) -> Option<Vec<String>> {
    let list = match raw {
        None | Some(Value::Null) => return None,
        Some(Value::Sequence(list)) => list,
        Some(_) => {
            sink.push(
                "admin.allowed_hosts",
                "`allowed_hosts` must be a list",
                HINT_HOSTS,
            );
            return None;
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let field = format!("admin.allowed_hosts[{i}]");
        let Some(name) = item.as_str() else {
            sink.push(&field, "a host name must be a string", HINT_HOSTS);
            continue;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let valid = name == "*"
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }));
        if !valid {
            let detail = if name.contains(':') {
                "a host name here has no port (the port is not part of the check)"
            } else {
                "not a host name"
            };
            sink.push(
                &field,
                format!("`{}`: {detail}", name.escape_debug()),
                HINT_HOSTS,
            );
            continue;
        }
        out.push(name);
    }
    Some(out)
}

/// `admin.users`: each user a name usable as a Basic-auth user name (unique) and an
/// argon2id hash that parses. Every user's errors are reported.
fn users(sink: &mut ErrorSink<'_>, raw: Option<&Value>) -> Vec<AdminUser> {
    let mut out: Vec<AdminUser> = Vec::new();
    let list = match raw {
        None | Some(Value::Null) => return out,
        Some(Value::Sequence(list)) => list.clone(),
        Some(_) => {
            sink.push(
                "admin.users",
                "`users` must be a list",
                "write users: [{name: ops, password_hash: \"$argon2id$...\"}]",
            );
            return out;
        }
    };
    for (i, item) in list.into_iter().enumerate() {
        let field = format!("admin.users[{i}]");
        let u: RawAdminUser = match serde_yaml::from_value(item) {
            Ok(u) => u,
            Err(e) => {
                sink.push_serde(&field, &e);
                continue;
            }
        };
        let mut ok = true;
        if u.name.is_empty()
            || u.name.len() > 64
            || u.name.contains(':')
            || u.name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            sink.push(
                &format!("{field}.name"),
                format!("invalid admin user name `{}`", u.name.escape_debug()),
                "use 1 to 64 characters without `:`, spaces or control characters",
            );
            ok = false;
        } else if out.iter().any(|o| o.name == u.name) {
            sink.push(
                &format!("{field}.name"),
                format!("duplicate admin user `{}`", u.name),
                "each admin user name must be unique",
            );
            ok = false;
        }
        match argon2::PasswordHash::new(&u.password_hash) {
            Ok(h) if h.algorithm.as_str() == "argon2id" && h.hash.is_some() => {}
            Ok(h) => {
                sink.push(
                    &format!("{field}.password_hash"),
                    format!(
                        "the password hash uses `{}`, not argon2id",
                        h.algorithm.as_str()
                    ),
                    HINT_HASH,
                );
                ok = false;
            }
            Err(_) => {
                sink.push(
                    &format!("{field}.password_hash"),
                    "the password hash is not an argon2id PHC string ($argon2id$v=19$...)",
                    HINT_HASH,
                );
                ok = false;
            }
        }
        if ok {
            out.push(AdminUser {
                name: u.name,
                password_hash: u.password_hash,
            });
        }
    }
    out
}
