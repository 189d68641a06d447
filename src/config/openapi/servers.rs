//! What the catalog takes from a `servers` list: the base path prepended to every path, the
//! host (operations on another host need another upstream), and whether the servers disagree
//! on the base path (only the first one's is used).

use serde_yaml::Value;

use super::document::scalar_text;

/// The catalog's reading of one `servers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// The first server's URL path with server variables replaced by their defaults, without
    /// a trailing slash (`/api/v3`; empty for none). `Err` says why it could not be read.
    pub base: Result<String, String>,
    /// The first server's host (`api.box.com`, lower-case, with its port if any); `None` for a
    /// relative URL (served by the document's own host) or no servers.
    pub host: Option<String>,
    /// When the servers' base paths differ: which one was used and how to pick another.
    pub disagreement: Option<String>,
}

/// Reads a `servers` list (`None`, or anything but a list: no servers).
pub fn read(servers: Option<&Value>) -> Servers {
    let list: &[Value] = servers
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice);
    let Some(first) = list.first() else {
        return Servers {
            base: Ok(String::new()),
            host: None,
            disagreement: None,
        };
    };
    let first_url = expand(first);
    let (host, base) = match &first_url {
        Ok(url) => {
            let (host, path) = split_url(url);
            (host, Ok(base_path(path)))
        }
        Err(e) => (None, Err(e.clone())),
    };
    Servers {
        disagreement: disagreement(list, &base),
        base,
        host,
    }
}

/// A note when the servers' base paths differ (`http://localhost:8080` and
/// `https://api.example.com/v1`): the first one's was used.
fn disagreement(list: &[Value], used: &Result<String, String>) -> Option<String> {
    let Ok(used) = used else {
        return None;
    };
    let readable: Vec<(String, String)> = list
        .iter()
        .filter_map(|s| {
            let url = expand(s).ok()?;
            let base = base_path(split_url(&url).1);
            Some((url, base))
        })
        .collect();
    let other = readable.iter().find(|(_, base)| base != used)?;
    let shown: Vec<String> = readable
        .iter()
        .map(|(url, base)| {
            let base = if base.is_empty() { "none" } else { base };
            format!("`{url}` (base path {base})")
        })
        .collect();
    let other = if other.1.is_empty() { "/" } else { &other.1 };
    Some(format!(
        "the servers disagree on the base path: {}; the first one's is used, pass --base-path \
         to choose (e.g. --base-path {other})",
        shown.join(", ")
    ))
}

/// A server's URL with its variables replaced by their defaults.
fn expand(server: &Value) -> Result<String, String> {
    let Some(url) = server.get("url").and_then(Value::as_str) else {
        return Ok(String::new());
    };
    let mut expanded = String::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        expanded.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("server URL `{url}` has an unclosed `{{`"));
        };
        let name = &rest[open + 1..open + close];
        let default = server
            .get("variables")
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(scalar_text)
            .ok_or_else(|| format!("server URL `{url}`: variable `{name}` has no default value"))?;
        expanded.push_str(&default);
        rest = &rest[open + close + 1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// A URL's host (lower-case, without user info) and path: `https://h/v1` and the
/// scheme-relative `//h/v1` have host `h`; `/v1` and `v1` are relative (no host).
fn split_url(url: &str) -> (Option<String>, &str) {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let after_scheme = match url.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => Some(rest),
        _ => url.strip_prefix("//"),
    };
    let Some(rest) = after_scheme else {
        return (None, url.trim_start_matches('.'));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = (!host.is_empty()).then(|| host.to_ascii_lowercase());
    (host, path)
}

/// A URL path as a base path: no trailing slash, a leading one added (`v1` -> `/v1`).
fn base_path(path: &str) -> String {
    let path = path.trim_end_matches('/');
    if path.is_empty() || path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(yaml: &str) -> Servers {
        let v: Value = serde_yaml::from_str(yaml).unwrap_or(Value::Null);
        read(Some(&v))
    }

    #[test]
    fn base_paths_and_hosts() {
        for (yaml, base, host) in [
            (
                "[{url: 'https://api.example.com'}]",
                "",
                Some("api.example.com"),
            ),
            (
                "[{url: 'https://API.example.com:8443/'}]",
                "",
                Some("api.example.com:8443"),
            ),
            ("[{url: 'https://x.io/v2/'}]", "/v2", Some("x.io")),
            (
                "[{url: '//api.example.com/v1'}]",
                "/v1",
                Some("api.example.com"),
            ),
            ("[{url: 'https://u@h/v1?x=1'}]", "/v1", Some("h")),
            ("[{url: '/api/v3'}]", "/api/v3", None),
            ("[{url: 'v1'}]", "/v1", None),
            ("[{url: './v1'}]", "/v1", None),
            (
                "[{url: '{scheme}://h/ds-api', variables: {scheme: {default: https}}}]",
                "/ds-api",
                Some("h"),
            ),
            (
                "[{url: 'https://h/{v}', variables: {v: {default: v9}}}]",
                "/v9",
                Some("h"),
            ),
            ("[]", "", None),
        ] {
            let got = servers(yaml);
            assert_eq!(got.base, Ok(base.to_owned()), "{yaml}");
            assert_eq!(got.host.as_deref(), host, "{yaml}");
            assert_eq!(got.disagreement, None, "{yaml}");
        }
        assert!(servers("[{url: 'https://h/{v}'}]").base.is_err());
    }

    #[test]
    fn disagreeing_servers_are_noted() {
        let got = servers(
            "[{url: 'http://localhost:8080'}, {url: 'https://api.example.com/v1'}, \
             {url: 'https://api.example.com/v1/'}]",
        );
        assert_eq!(got.base, Ok(String::new()));
        assert_eq!(
            got.disagreement.as_deref(),
            Some(
                "the servers disagree on the base path: `http://localhost:8080` (base path \
                 none), `https://api.example.com/v1` (base path /v1), \
                 `https://api.example.com/v1/` (base path /v1); the first one's is used, pass \
                 --base-path to choose (e.g. --base-path /v1)"
            )
        );
        // Same base path on two hosts: nothing to choose.
        let got = servers("[{url: 'https://a.io/v1'}, {url: 'https://b.io/v1'}]");
        assert_eq!(got.disagreement, None);
    }
}
