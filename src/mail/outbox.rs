//! The local mail backend: each message becomes `<outbox>/<time>-<id>.json` with `to`,
//! `subject`, `text` and, for code mails, `otp`. Files appear whole (write, then rename).

use std::path::PathBuf;

use anyhow::Context;

use super::Email;

#[derive(Clone, Debug)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create outbox {}", dir.display()))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub async fn write(&self, email: &Email) -> anyhow::Result<()> {
        let name = format!(
            "{}-{}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let body = serde_json::to_vec_pretty(email)?;
        tokio::fs::write(&tmp, body).await?;
        tokio::fs::rename(&tmp, self.dir.join(name)).await?;
        Ok(())
    }
}
