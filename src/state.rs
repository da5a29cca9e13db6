//! `AppState`: a `Clone` struct of handles every handler receives, and how it is built from
//! the configuration (starting the embedded backends when nothing else is configured).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::otp::OtpKey;
use crate::auth::password::Passwords;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::tokens::Tokens;
use crate::calls::hub::{self, CallHub};
use crate::calls::sfu::MediaServer;
use crate::config::{Config, Secret};
use crate::embedded::db::{self, EmbeddedDb};
use crate::embedded::lock::DataDirLock;
use crate::embedded::s3::EmbeddedS3;
use crate::mail::{Mailer, outbox::Outbox, sendgrid::SendGrid};
use crate::realtime::Realtime;
use crate::store::Store;
use crate::store::s3::MediaStore;

#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// The object store for uploaded bytes (S3, or the embedded store).
    pub blobs: MediaStore,
    pub mailer: Mailer,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub otp_key: OtpKey,
    pub device_key: crate::auth::device::DeviceKey,
    pub limiter: RateLimiter,
    /// New Socket.IO sessions per client IP, over one minute.
    pub handshakes: RateLimiter,
    pub metrics: PrometheusHandle,
    pub realtime: Realtime,
    pub calls: CallHub,
    pub sfu: MediaServer,
    pub ai: crate::service::ai::AiHub,
    pub upload_slots: crate::service::media::UploadSlots,
}

/// What the server started for itself; stopped when this is shut down or dropped.
#[derive(Debug)]
pub struct Backends {
    db: Option<EmbeddedDb>,
    s3: Option<EmbeddedS3>,
    _lock: DataDirLock,
}

impl Backends {
    /// The pid of the embedded database process running now, if the server started one.
    pub fn embedded_db_pid(&self) -> Option<u32> {
        self.db.as_ref().and_then(EmbeddedDb::pid)
    }

    /// Stops the embedded S3 endpoint and database (cleanly, with SIGTERM).
    pub async fn shutdown(mut self) {
        if let Some(s3) = self.s3.take() {
            s3.stop().await;
        }
        if let Some(mut db) = self.db.take() {
            tokio::task::spawn_blocking(move || db.stop(Duration::from_secs(10)))
                .await
                .ok();
        }
    }
}

impl AppState {
    /// What a stopping server does before it closes connections, each step within `within`:
    /// every live call ends as ended by the server (its record in the chat, `call:ended` to
    /// its members), then every Socket.IO connection is closed with an Engine.IO close
    /// packet, so clients see the transport close and reconnect (to this server once it is
    /// back, or to another node).
    pub async fn drain(&self, within: Duration) {
        match tokio::time::timeout(within, self.calls.end_all()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(calls = n, "shutdown: ended the live calls"),
            Ok(Err(e)) => tracing::warn!(error = %e, "shutdown: could not end the live calls"),
            Err(_) => tracing::warn!("shutdown: ending the live calls took too long"),
        }
        if tokio::time::timeout(within, self.realtime.io.close()).await.is_err() {
            tracing::warn!("shutdown: closing the Socket.IO connections took too long");
        }
    }

    /// Builds every handle. Starts the embedded database and S3 store when the
    /// configuration names none, and logs one line per component saying which it uses.
    pub async fn build(config: Config) -> anyhow::Result<(Self, Backends)> {
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let data_dir = config.data_dir.clone();

        let mut embedded_db = None;
        let store = match &config.mongodb_uri {
            Some(uri) => {
                let store = Store::connect(uri.expose(), &config.mongodb_db).await?;
                tracing::info!(component = "database", backend = "mongodb", db = %config.mongodb_db, "database: external MongoDB (MONGODB_URI)");
                store
            }
            None => {
                let binary = db::find_binary(config.secantusd_bin.as_deref())?;
                let started = EmbeddedDb::start(&binary, &data_dir)?;
                let client = started.wait_ready(Duration::from_secs(60)).await?;
                let uri = started.uri();
                drop(client);
                let store = Store::connect(&uri, &config.mongodb_db).await?;
                tracing::info!(component = "database", backend = "embedded", binary = %binary.display(), %uri, storage = %data_dir.join("db").display(), "database: embedded secantusd-rs");
                embedded_db = Some(started);
                store
            }
        };
        store.ensure_indexes().await.context("cannot create database indexes")?;

        let mut embedded_s3 = None;
        let media = match &config.s3_bucket {
            Some(bucket) => {
                let media = MediaStore::external(&config, bucket).await;
                tracing::info!(component = "media", backend = "s3", %bucket, endpoint = config.s3_endpoint.as_deref().unwrap_or("aws"), "media: external S3");
                media
            }
            None => {
                let s3 = EmbeddedS3::start(
                    &data_dir,
                    &config.cors_origins,
                    crate::embedded::s3::PostLimits {
                        buffer_bytes: config.embedded_s3_post_buffer_bytes,
                        idle: Duration::from_secs(config.upload_idle_timeout_secs),
                    },
                )
                .await?;
                let media = MediaStore::embedded(&config, &s3).await?;
                tracing::info!(component = "media", backend = "embedded", endpoint = %s3.endpoint, storage = %data_dir.join("media").display(), "media: embedded S3-compatible store (s3s-fs)");
                embedded_s3 = Some(s3);
                media
            }
        };

        let mailer = match &config.sendgrid_api_key {
            Some(key) => {
                let mailer = Mailer::SendGrid(SendGrid::new(
                    &config.sendgrid_base_url,
                    key.clone(),
                    &config.mail_from,
                    &config.mail_from_name,
                )?);
                tracing::info!(component = "email", backend = "sendgrid", base_url = %config.sendgrid_base_url, "email: SendGrid");
                mailer
            }
            None => {
                let outbox = Outbox::new(data_dir.join("outbox"))?;
                tracing::info!(component = "email", backend = "outbox", dir = %outbox.dir().display(), "email: written to the outbox folder");
                Mailer::Outbox(outbox)
            }
        };
        let master = match &config.jwt_secret {
            Some(secret) => secret.clone(),
            None => load_or_create_secret(&data_dir.join("jwt-secret"))?,
        };
        let tokens = Tokens::new(
            master.expose().as_bytes(),
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl(),
        );
        let assistant = crate::assistant::Assistant::new(&config);
        if assistant.is_configured() {
            let base_url = crate::assistant::loggable_url(
                config
                    .openai_base_url
                    .as_deref()
                    .unwrap_or(crate::assistant::OPENAI_API_BASE),
            );
            tracing::info!(component = "assistant", backend = "openai", %base_url, model = %config.ai_model, "assistant: OpenAI-compatible server");
        } else {
            tracing::info!(
                component = "assistant",
                backend = "disabled",
                "assistant: off (set OPENAI_API_KEY or OPENAI_BASE_URL)"
            );
        }
        let (driver, redis) = match &config.redis_url {
            Some(url) => {
                let driver = crate::realtime::NodeDriver::connect(url.expose())
                    .await
                    .context("HUDDLE_REDIS_URL: connecting to Redis")?;
                let client = redis::Client::open(url.expose()).context("HUDDLE_REDIS_URL")?;
                let redis = redis::aio::ConnectionManager::new(client)
                    .await
                    .context("HUDDLE_REDIS_URL: connecting to Redis")?;
                tracing::info!(
                    component = "realtime",
                    backend = "redis",
                    node = config.node_id.as_deref().unwrap_or(""),
                    "Socket.IO and rate limits across nodes through Redis"
                );
                (driver, Some(redis))
            }
            None => (crate::realtime::NodeDriver::Alone, None),
        };
        let shared = |name: &str| {
            redis
                .clone()
                .map(|redis| crate::auth::rate_limit::SharedCounters::new(redis, name))
        };
        let with_shared = |limiter: RateLimiter, name: &str| match shared(name) {
            Some(counters) => limiter.shared(counters),
            None => limiter,
        };
        let mut ai = crate::service::ai::AiHub::new(assistant);
        if let Some(counters) = shared("ai") {
            ai = ai.with_shared_limit(counters);
        }
        let (hub, inbox) = CallHub::channel();
        let (sfu, media_inbox) = MediaServer::bind(&config)?;
        let state = Self {
            store,
            blobs: media,
            mailer,
            passwords: Passwords::new(hash_parallelism())?,
            tokens,
            otp_key: OtpKey::derive(master.expose().as_bytes()),
            device_key: crate::auth::device::DeviceKey::derive(master.expose().as_bytes()),
            limiter: with_shared(
                RateLimiter::new(Duration::from_secs(config.rate_limit_window_secs)),
                "auth",
            ),
            handshakes: with_shared(RateLimiter::new(Duration::from_secs(60)), "handshakes"),
            metrics: crate::telemetry::metrics_handle(),
            realtime: match (&redis, &config.node_id) {
                (Some(redis), Some(node)) => Realtime::new(driver).with_presence(
                    crate::realtime::presence::SharedPresence::new(redis.clone(), node.clone()),
                ),
                _ => Realtime::new(driver),
            },
            calls: hub,
            sfu,
            ai,
            upload_slots: crate::service::media::UploadSlots::new(
                config.max_streamed_uploads,
                config.max_streamed_uploads_per_user,
            ),
            config: Arc::new(config),
        };
        crate::realtime::register(state.clone())
            .await
            .context("starting Socket.IO's adapter")?;
        supervise("call_hub", hub::run(state.clone(), inbox));
        crate::realtime::start_presence(&state).await;
        supervise("presence", crate::realtime::run_presence(state.clone()));
        supervise("upload_sweeper", crate::service::media::sweep_uploads(state.clone()));
        let resumed = state.clone();
        supervise("notifications_resume", async move {
            crate::service::notifications::resume_pending(&resumed).await
        });
        crate::calls::sfu::start(
            state.config.clone(),
            state.realtime.io.clone(),
            state.calls.reports(),
            &state.sfu,
            media_inbox,
        );
        let backends = Backends {
            db: embedded_db,
            s3: embedded_s3,
            _lock: lock,
        };
        Ok((state, backends))
    }
}

/// Concurrent password hashes allowed: two per core, each takes 19 MiB.
/// Spawns one of the server's long-lived tasks and watches it: a task that panics is logged
/// and counted (`huddle_task_failures_total`), never lost in silence. (The media task also
/// catches a fault in one call's media itself and ends that call alone.)
fn supervise(name: &'static str, task: impl std::future::Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(task);
    tokio::spawn(async move {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            metrics::counter!("huddle_task_failures_total", "task" => name).increment(1);
            tracing::error!(task = name, "a server task panicked and stopped");
        }
    });
}

fn hash_parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get() * 2).unwrap_or(4)
}

/// Reads the generated signing secret, creating it (mode 0600) on first start so tokens
/// survive restarts.
fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        anyhow::ensure!(
            existing.len() >= 32,
            "{} is too short; delete it to generate a new one",
            path.display()
        );
        return Ok(Secret::new(existing));
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(Secret::new(secret))
}
