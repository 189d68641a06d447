//! Email over SMTP (lettre, tokio + rustls): one plain-text message per event to the
//! token's contacts. STARTTLS is required unless `starttls: false` (a local relay).

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::events::Event;
use super::settings::SmtpSettings;

pub type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// The transport for the configured server. The password is read from its variable here,
/// at send time, and never logged.
pub fn mailer(s: &SmtpSettings) -> Result<Mailer, String> {
    let tls = if s.starttls {
        let mut params = TlsParameters::builder(s.host.clone());
        if let Some(ca) = &s.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read smtp.ca {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("smtp.ca {} is not a PEM certificate: {e}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        Tls::Required(params.build_rustls().map_err(|e| e.to_string())?)
    } else {
        Tls::None
    };
    let mut builder = Mailer::builder_dangerous(s.host.clone())
        .port(s.port)
        .tls(tls)
        .timeout(Some(s.timeout));
    if let Some(user) = &s.username {
        let password = match &s.password_env {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("the SMTP password variable {var} is not set"))?,
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

fn subject(e: &Event) -> String {
    let what = match e.event {
        super::EventKind::BeforeExpiry => "expires soon",
        super::EventKind::RotationDue => "is due for rotation",
        super::EventKind::Stale => "looks unused",
        super::EventKind::Disabled => "was disabled",
        super::EventKind::Reset => "had its secret reset",
        super::EventKind::Deleted => "was deleted",
    };
    // Names come from a hand-editable file: no control character may reach a header.
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    format!(
        "[scopegate] token {} ({}) {what}",
        clean(&e.token_name),
        clean(&e.sid)
    )
}

/// The message for `e`. `message_id` is stable across retries, so a mail system can
/// drop a duplicate delivered after a crash (see `state`).
pub fn message(s: &SmtpSettings, e: &Event, message_id: &str) -> Result<Message, String> {
    let from: Mailbox = s
        .from
        .parse()
        .map_err(|err| format!("bad smtp.from: {err}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(e))
        .message_id(Some(format!("<{message_id}@scopegate>")));
    let mut any = false;
    for r in &e.recipients {
        match r.parse::<Mailbox>() {
            Ok(m) => {
                builder = builder.to(m);
                any = true;
            }
            Err(_) => tracing::warn!(
                target: "scopegate::notify",
                token = e.sid.as_str(),
                "skipping a contact that is not an email address"
            ),
        }
    }
    if !any {
        return Err("the token has no usable contact address".into());
    }
    let body = format!(
        "{}\n\nToken:   {} ({})\nAccount: {}\nEvent:   {}\nAt:      {}\n{}\nYou receive this because you are a contact of this token in scopegate. \
         This message never contains a secret.\n",
        e.summary,
        e.token_name,
        e.sid,
        e.account,
        e.event.as_str(),
        e.at,
        e.expires_at
            .as_deref()
            .map(|x| format!("Expires: {x}\n"))
            .unwrap_or_default(),
    );
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|err| err.to_string())
}

/// One attempt.
pub async fn send(mailer: &Mailer, msg: Message) -> Result<(), String> {
    mailer.send(msg).await.map(|_| ()).map_err(|e| {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    })
}
