//! Method names a scope may hold: the standard methods and the shorthands `read`, `write`
//! and `all` (SPEC §11). One expansion, used by `tokens.yaml` validation, the `--scope`
//! flag, `token show` and the admin API, so a name means the same thing everywhere.

use crate::domain::model::{method_index, MethodSet, KNOWN_METHODS};

/// The shorthands, lower-case so they never clash with a method (methods are upper-case).
pub const SHORTHANDS: [(&str, &[&str]); 3] = [
    ("read", &["GET", "HEAD"]),
    ("write", &["POST", "PUT", "PATCH", "DELETE"]),
    ("all", &KNOWN_METHODS),
];

/// What to write instead of an unknown name; quoted by every error about one.
pub const HINT: &str = "use upper-case standard methods (GET, HEAD, POST, PUT, PATCH, DELETE, \
     OPTIONS, TRACE, CONNECT) or a shorthand: read (GET, HEAD), write (POST, PUT, PATCH, \
     DELETE), all (every method)";

/// The standard methods a scope entry names, in [`KNOWN_METHODS`] order: itself for an
/// upper-case standard method, the expansion for a shorthand, `None` for anything else
/// (`get`, `Read`, `BREW`: a typo must never grant by accident).
pub fn expand(name: &str) -> Option<&'static [&'static str]> {
    if let Some(i) = method_index(name) {
        return KNOWN_METHODS.get(usize::from(i)..=usize::from(i));
    }
    SHORTHANDS
        .iter()
        .find(|(short, _)| *short == name)
        .map(|(_, methods)| *methods)
}

/// The set a scope entry grants (a GET grant also allows HEAD, as everywhere).
pub fn method_set(name: &str) -> Option<MethodSet> {
    let mut set = MethodSet::EMPTY;
    for method in expand(name)? {
        set.grant(method_index(method)?);
    }
    Some(set)
}

/// Whether `name` is one of the shorthands.
pub fn is_shorthand(name: &str) -> bool {
    SHORTHANDS.iter().any(|(short, _)| *short == name)
}

/// The standard methods a list of names grants, in [`KNOWN_METHODS`] order, each once (GET
/// brings HEAD, as in every grant); unknown names are left out (validation reports them).
pub fn expand_all<S: AsRef<str>>(names: &[S]) -> Vec<&'static str> {
    let mut set = MethodSet::EMPTY;
    for granted in names.iter().filter_map(|n| method_set(n.as_ref())) {
        for idx in granted.names().filter_map(method_index) {
            set.grant(idx);
        }
    }
    set.names().collect()
}

/// A scope's methods for people: `GET, POST`, or with shorthands the expansion followed by
/// what was written, `GET, HEAD, POST (written: read, POST)`.
pub fn describe<S: AsRef<str>>(names: &[S]) -> String {
    let written: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    if written.iter().any(|n| is_shorthand(n)) {
        let expanded = expand_all(names).join(", ");
        format!("{expanded} (written: {})", written.join(", "))
    } else {
        written.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_expand() {
        assert_eq!(expand("read"), Some(&["GET", "HEAD"][..]));
        assert_eq!(
            expand("write"),
            Some(&["POST", "PUT", "PATCH", "DELETE"][..])
        );
        assert_eq!(expand("all"), Some(&KNOWN_METHODS[..]));
        assert_eq!(expand("PATCH"), Some(&["PATCH"][..]));
        for bad in ["get", "Read", "READ", "ALL", "", "BREW", "read ", "reads"] {
            assert_eq!(expand(bad), None, "{bad:?}");
            assert!(method_set(bad).is_none());
        }
    }

    #[test]
    fn method_sets() {
        let idx = |m| method_index(m).unwrap_or(u8::MAX);
        let read = method_set("read").unwrap_or_default();
        assert!(read.contains(idx("GET")) && read.contains(idx("HEAD")));
        assert!(!read.contains(idx("POST")));
        let write = method_set("write").unwrap_or_default();
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(write.contains(idx(m)));
        }
        assert!(!write.contains(idx("GET")) && !write.contains(idx("OPTIONS")));
        assert_eq!(method_set("all"), Some(MethodSet::ALL));
    }

    #[test]
    fn expansion_is_ordered_and_deduplicated() {
        assert_eq!(
            expand_all(&["DELETE", "read", "GET", "write"]),
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        );
        assert_eq!(expand_all(&["GET", "BREW"]), ["GET", "HEAD"]);
        assert_eq!(describe(&["GET", "POST"]), "GET, POST");
        assert_eq!(
            describe(&["read", "POST"]),
            "GET, HEAD, POST (written: read, POST)"
        );
    }
}
