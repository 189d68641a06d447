//! The console's stylesheet and script, embedded in the binary (no CDN, no inline code, so
//! the Content-Security-Policy can forbid everything else).

use http::StatusCode;

use super::Reply;

pub const CSS_PATH: &str = "/console/assets/app.css";
pub const JS_PATH: &str = "/console/assets/app.js";

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// The asset at `path`, if it is one.
pub fn get(path: &str) -> Option<Reply> {
    let (body, content_type) = match path {
        CSS_PATH => (CSS, "text/css; charset=utf-8"),
        JS_PATH => (JS, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut reply = Reply::new(StatusCode::OK, content_type, body.as_bytes().to_vec());
    reply.cacheable = true;
    Some(reply)
}
