//! Signed webhooks: one JSON `POST` per event, authenticated with HMAC-SHA256.
//!
//! Headers: `X-Scopegate-Timestamp: <unix seconds>` and
//! `X-Scopegate-Signature: sha256=<hex>`, the HMAC-SHA256 (key: the webhook secret) of
//! `<timestamp>.<body>` (the timestamp's decimal digits, one `.`, the raw body bytes). A
//! receiver recomputes it, compares in constant time and refuses timestamps more than a
//! few minutes old (replays). `X-Scopegate-Event-Id` is stable across retries, for dedup.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

use super::events::Event;
use super::settings::{SecretSource, WebhookSettings};

pub const SIGNATURE_HEADER: &str = "x-scopegate-signature";
pub const TIMESTAMP_HEADER: &str = "x-scopegate-timestamp";
pub const EVENT_ID_HEADER: &str = "x-scopegate-event-id";
/// Response bodies are read (so the connection can be reused) up to this much.
const MAX_RESPONSE: usize = 64 * 1024;

pub type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client for webhook deliveries (system roots for https).
pub fn client() -> Result<WebhookClient, String> {
    let tls = crate::gateway::tls::client_config(&crate::gateway::tls::UpstreamTls::default())
        .map_err(|e| e.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// `sha256=<hex>` for `timestamp` and `body`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks a signature header in constant time (the unit tests check signatures with it).
#[cfg(test)]
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    use subtle::ConstantTimeEq;
    let want = signature(secret, timestamp, body);
    want.len() == header.len() && bool::from(want.as_bytes().ct_eq(header.as_bytes()))
}

fn secret(src: &SecretSource) -> Result<zeroize::Zeroizing<String>, String> {
    match src {
        SecretSource::Inline(s) => Ok(s.clone()),
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(zeroize::Zeroizing::new(v)),
            _ => Err(format!(
                "the webhook secret variable {name} is not set (or empty)"
            )),
        },
    }
}

/// One attempt: `Ok` on a 2xx answer.
pub async fn send(
    client: &WebhookClient,
    settings: &WebhookSettings,
    event: &Event,
    event_id: &str,
    now: i64,
) -> Result<(), String> {
    let key = secret(&settings.secret)?;
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let req = http::Request::post(settings.url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("scopegate/", env!("CARGO_PKG_VERSION")),
        )
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature(key.as_bytes(), now, &body))
        .header(EVENT_ID_HEADER, event_id)
        .header("x-scopegate-event", event.event.as_str())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            // The chain names the cause (connection refused, TLS, ...), never a secret.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        })?;
        let status = resp.status();
        let _ = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    };
    tokio::time::timeout(settings.timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {:?}", settings.timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let s = signature(b"k", 1700000000, b"{}");
        assert!(s.starts_with("sha256="));
        assert_eq!(s.len(), 7 + 64);
        assert!(verify(b"k", 1700000000, b"{}", &s));
        assert!(!verify(b"k", 1700000001, b"{}", &s));
        assert!(!verify(b"k", 1700000000, b"{ }", &s));
        assert!(!verify(b"other", 1700000000, b"{}", &s));
        // RFC 4231 test case 2 shape: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
