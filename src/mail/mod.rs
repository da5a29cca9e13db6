//! Outgoing email: SendGrid's v3 API when a key is configured, otherwise one JSON file per
//! message in `<data dir>/outbox/`. Sending happens off the request path.

pub mod outbox;
pub mod sendgrid;
pub mod templates;

use serde::Serialize;

/// One message. `otp` is only for the outbox, where local users and tests read codes from.
#[derive(Clone, Debug, Serialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    #[serde(skip)]
    pub html: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Mailer {
    Outbox(outbox::Outbox),
    SendGrid(sendgrid::SendGrid),
}

impl Mailer {
    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        match self {
            Self::Outbox(outbox) => outbox.write(email).await,
            Self::SendGrid(sendgrid) => sendgrid.send(email).await,
        }
    }

    /// Sends in the background, so a request's timing never depends on whether mail went
    /// out (no account enumeration by timing). Failures are logged without the content.
    pub fn dispatch(&self, email: Email) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&email).await {
                tracing::error!(error = %e, subject = %email.subject, "email not sent");
            } else {
                metrics::counter!("huddle_emails_sent_total").increment(1);
            }
        });
    }
}
