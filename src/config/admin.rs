//! `admin:` in `scopegate.yaml`: the users of the admin API and console (SPEC §10). Only
//! argon2id PHC strings are accepted as password hashes (`scopegate hash --argon2` makes
//! one); the plain password never appears in the configuration.

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

/// Validates `admin:`: a mapping with `users`, each user a name usable as a Basic-auth user
/// name (unique) and an argon2id hash that parses. Every user's errors are reported.
pub fn users(sink: &mut ErrorSink<'_>, raw: Option<Value>) -> Vec<AdminUser> {
    let mut out: Vec<AdminUser> = Vec::new();
    let list = match raw {
        None | Some(Value::Null) => return out,
        Some(Value::Mapping(m)) => {
            for (k, _) in m.iter() {
                if k.as_str() != Some("users") {
                    sink.push(
                        &format!("admin.{}", k.as_str().unwrap_or("?")),
                        "unknown field in `admin`",
                        "`admin` has only `users: [{name, password_hash}]`",
                    );
                }
            }
            match m.get("users") {
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
            }
        }
        Some(_) => {
            sink.push(
                "admin",
                "`admin` must be a mapping",
                "write admin: {users: [{name: ops, password_hash: \"$argon2id$...\"}]}",
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
