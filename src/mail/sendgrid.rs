//! SendGrid's v3 mail-send API (`POST /v3/mail/send`, answered 202).

use serde_json::json;

use super::Email;
use crate::config::Secret;

#[derive(Clone, Debug)]
pub struct SendGrid {
    http: reqwest::Client,
    base_url: String,
    api_key: Secret,
    from: String,
    from_name: String,
}

impl SendGrid {
    pub fn new(base_url: &str, api_key: Secret, from: &str, from_name: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            from: from.to_string(),
            from_name: from_name.to_string(),
        })
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        let body = json!({
            "personalizations": [{ "to": [{ "email": email.to }] }],
            "from": { "email": self.from, "name": self.from_name },
            "subject": email.subject,
            "content": [
                { "type": "text/plain", "value": email.text },
                { "type": "text/html", "value": email.html },
            ],
            "tracking_settings": { "click_tracking": { "enable": false } },
        });
        let response = self
            .http
            .post(format!("{}/v3/mail/send", self.base_url))
            .bearer_auth(self.api_key.expose())
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            let detail: String = detail.chars().take(300).collect();
            anyhow::bail!("SendGrid answered {status}: {detail}");
        }
        Ok(())
    }
}
