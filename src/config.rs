//! Server configuration: defaults < `huddle.toml` < environment, checked once at start-up.
//!
//! Every setting has one environment name (listed in the README); a bad value stops the
//! server with an error that names that setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A secret string: usable by the code, never printed by `Debug` or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The whole configuration. Field names are the `huddle.toml` keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// External MongoDB; `None` starts the embedded `secantusd-rs`.
    pub mongodb_uri: Option<Secret>,
    pub mongodb_db: String,
    /// Path to the `secantusd-rs` binary for the embedded database; `None` searches PATH.
    pub secantusd_bin: Option<PathBuf>,
    /// External S3 bucket; `None` starts the embedded S3-compatible store.
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_force_path_style: bool,
    pub sendgrid_api_key: Option<Secret>,
    pub sendgrid_base_url: String,
    pub mail_from: String,
    pub mail_from_name: String,
    /// HMAC key for access tokens; `None` generates one kept in the data dir.
    pub jwt_secret: Option<Secret>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub cors_origins: Vec<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub otp_ttl_secs: u64,
    /// Attempts per client IP per window on the sensitive auth routes.
    pub rate_limit_per_ip: u32,
    /// Attempts per account (email) per window on login, OTP and reset routes.
    pub rate_limit_per_account: u32,
    pub rate_limit_window_secs: u64,
    pub cookie_secure: bool,
    pub hsts: bool,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    pub body_limit_bytes: usize,
    /// A connection that has not sent a request's whole head within this long is closed
    /// (slow or idle clients cannot hold connections open).
    pub http_header_timeout_secs: u64,
    /// Longest a graceful shutdown waits for open connections before it closes them.
    pub shutdown_grace_secs: u64,
    /// Most connections served at once; 0: the open-file limit less a reserve.
    pub max_connections: usize,
    /// Most Socket.IO connections one account may hold open on this node.
    pub max_sockets_per_user: usize,
    /// New Socket.IO (Engine.IO) sessions one client IP may open per minute. A session
    /// exists before its token is checked, so this bounds what unauthenticated clients hold.
    pub socket_handshakes_per_ip: u32,
    /// Uploads streamed through `POST /media` at once, server-wide (each holds one S3 part,
    /// 8 MiB, in memory) and per user.
    pub max_streamed_uploads: usize,
    pub max_streamed_uploads_per_user: usize,
    /// Bytes of presigned form uploads the embedded S3 store holds in memory at once (it
    /// reads a form's whole file before writing it); more waits briefly, then gets 503.
    pub embedded_s3_post_buffer_bytes: u64,
    /// An upload (streamed or form) that sends nothing for this long is dropped.
    pub upload_idle_timeout_secs: u64,
    pub log_format: LogFormat,
    pub openai_api_key: Option<Secret>,
    pub openai_base_url: Option<String>,
    /// The assistant's model name, as the OpenAI-compatible server knows it.
    pub ai_model: String,
    /// What the assistant is told before every conversation.
    pub ai_system_prompt: String,
    /// How much of the conversation goes with a question, in tokens (about 4 characters each).
    pub ai_context_tokens: u32,
    /// Longest answer, in tokens.
    pub ai_max_answer_tokens: u32,
    /// Seconds to wait for the first token, and at most between two tokens.
    pub ai_first_token_timeout_secs: u64,
    /// Seconds an answer may take in all.
    pub ai_answer_timeout_secs: u64,
    /// Retries on 429, 5xx and connection failures before the first token.
    pub ai_retries: u32,
    /// The first retry's wait; each later one doubles it.
    pub ai_retry_backoff_ms: u64,
    /// Questions per user per minute.
    pub ai_rate_per_minute: u32,
    /// Questions per user per day (UTC).
    pub ai_daily_quota: u32,
    /// How long a call rings before it counts as missed.
    pub call_ring_timeout_secs: u64,
    /// coturn's `static-auth-secret`; without it no TURN servers are handed out.
    pub turn_secret: Option<Secret>,
    /// TURN URLs handed to call participants, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub turn_urls: Vec<String>,
    pub stun_urls: Vec<String>,
    pub turn_ttl_secs: u64,
    /// The first media worker's UDP port (ICE, DTLS, SRTP muxed); worker `i` binds this
    /// port + `i`, so the workers take a range of `media_workers` ports from here. Port 0:
    /// each worker takes a free port.
    pub media_udp_addr: SocketAddr,
    /// Media workers: threads, each with its own SFU and UDP port; a call is placed on the
    /// least loaded when it starts and stays there. Default: one per core.
    pub media_workers: usize,
    /// The IP participants are told to send media to, when the server is behind 1:1 NAT or
    /// bound to `0.0.0.0` (then `127.0.0.1` is advertised unless this is set).
    pub media_public_ip: Option<std::net::IpAddr>,
    /// Participants per call, and tracks (microphone, camera, screen...) per participant.
    pub call_max_participants: usize,
    pub call_max_tracks_per_participant: usize,
    /// A participant whose media connection hears nothing (ICE consent) for this long is
    /// removed from the call.
    pub call_media_timeout_secs: u64,
    /// Largest upload per media type, bytes.
    pub media_max_image_bytes: u64,
    pub media_max_audio_bytes: u64,
    pub media_max_video_bytes: u64,
    pub media_max_file_bytes: u64,
    /// How long a presigned upload stays valid, and a download URL.
    pub upload_url_ttl_secs: u64,
    pub download_url_ttl_secs: u64,
    /// Uploads never completed are removed this long after their form expired.
    pub upload_retention_secs: u64,
    /// The web client's folder, served at `/`; `None` serves no client.
    pub web_dir: Option<PathBuf>,
    /// Redis, for several nodes serving as one: Socket.IO rooms and emits reach every node's
    /// sockets through it. `None`: this node alone, with nothing more to run.
    pub redis_url: Option<Secret>,
    /// This node's id among the nodes sharing Redis; required with `redis_url`.
    pub node_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("./data"),
            mongodb_uri: None,
            mongodb_db: "huddle".into(),
            secantusd_bin: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_force_path_style: false,
            sendgrid_api_key: None,
            sendgrid_base_url: "https://api.sendgrid.com".into(),
            mail_from: "no-reply@huddle.local".into(),
            mail_from_name: "Huddle".into(),
            jwt_secret: None,
            jwt_issuer: "huddle".into(),
            jwt_audience: "huddle-api".into(),
            cors_origins: vec![
                "http://localhost:3000".into(),
                "http://127.0.0.1:3000".into(),
                "http://localhost:5173".into(),
            ],
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            otp_ttl_secs: 10 * 60,
            rate_limit_per_ip: 30,
            rate_limit_per_account: 10,
            rate_limit_window_secs: 15 * 60,
            cookie_secure: true,
            hsts: false,
            trust_proxy: false,
            body_limit_bytes: 64 * 1024,
            http_header_timeout_secs: 10,
            shutdown_grace_secs: 10,
            max_connections: 0,
            max_sockets_per_user: 32,
            socket_handshakes_per_ip: 120,
            max_streamed_uploads: 8,
            max_streamed_uploads_per_user: 2,
            embedded_s3_post_buffer_bytes: 256 * 1024 * 1024,
            upload_idle_timeout_secs: 30,
            log_format: LogFormat::Text,
            openai_api_key: None,
            openai_base_url: None,
            ai_model: "gpt-4o-mini".into(),
            ai_system_prompt: "You are Huddle's assistant, inside a chat app. Answer clearly and briefly; \
                               use plain text or simple Markdown."
                .into(),
            ai_context_tokens: 4000,
            ai_max_answer_tokens: 1024,
            ai_first_token_timeout_secs: 30,
            ai_answer_timeout_secs: 180,
            ai_retries: 2,
            ai_retry_backoff_ms: 500,
            ai_rate_per_minute: 10,
            ai_daily_quota: 200,
            call_ring_timeout_secs: 30,
            turn_secret: None,
            turn_urls: Vec::new(),
            stun_urls: Vec::new(),
            turn_ttl_secs: 600,
            media_udp_addr: SocketAddr::from(([0, 0, 0, 0], 50_000)),
            media_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            media_public_ip: None,
            call_max_participants: 16,
            call_max_tracks_per_participant: 4,
            call_media_timeout_secs: 15,
            media_max_image_bytes: 10 * 1024 * 1024,
            media_max_audio_bytes: 20 * 1024 * 1024,
            media_max_video_bytes: 100 * 1024 * 1024,
            media_max_file_bytes: 50 * 1024 * 1024,
            upload_url_ttl_secs: 600,
            download_url_ttl_secs: 300,
            upload_retention_secs: 24 * 3600,
            web_dir: Some(PathBuf::from("web/public")),
            redis_url: None,
            node_id: None,
        }
    }
}

/// A configuration error that names the offending setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            setting: setting.into(),
            message: message.to_string(),
        }
    }
}

type Setter = fn(&mut Config, &str) -> Result<(), String>;

fn parse<T: std::str::FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    raw.trim().parse::<T>().map_err(|e| format!("{e} (got {raw:?})"))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false (got {raw:?})")),
    }
}

fn set<T>(slot: &mut T, value: Result<T, String>) -> Result<(), String> {
    *slot = value?;
    Ok(())
}

fn non_empty(raw: &str) -> Option<String> {
    let raw = raw.trim();
    (!raw.is_empty()).then(|| raw.to_string())
}

/// Media workers allowed at most (a port and a thread each).
pub const MAX_MEDIA_WORKERS: usize = 256;

/// Environment names and how each one sets its field. The README's table mirrors this list.
const ENV: &[(&str, Setter)] = &[
    ("HUDDLE_HTTP_ADDR", |c, v| set(&mut c.http_addr, parse(v))),
    ("HUDDLE_DATA_DIR", |c, v| set(&mut c.data_dir, Ok(PathBuf::from(v)))),
    ("MONGODB_URI", |c, v| {
        set(&mut c.mongodb_uri, Ok(non_empty(v).map(Secret)))
    }),
    ("HUDDLE_MONGODB_DB", |c, v| set(&mut c.mongodb_db, Ok(v.trim().into()))),
    ("HUDDLE_SECANTUSD_BIN", |c, v| {
        set(&mut c.secantusd_bin, Ok(non_empty(v).map(PathBuf::from)))
    }),
    ("HUDDLE_S3_BUCKET", |c, v| set(&mut c.s3_bucket, Ok(non_empty(v)))),
    ("HUDDLE_S3_ENDPOINT", |c, v| set(&mut c.s3_endpoint, Ok(non_empty(v)))),
    ("AWS_REGION", |c, v| set(&mut c.s3_region, Ok(v.trim().into()))),
    ("HUDDLE_S3_REGION", |c, v| set(&mut c.s3_region, Ok(v.trim().into()))),
    ("HUDDLE_S3_FORCE_PATH_STYLE", |c, v| {
        set(&mut c.s3_force_path_style, parse_bool(v))
    }),
    ("SENDGRID_API_KEY", |c, v| {
        set(&mut c.sendgrid_api_key, Ok(non_empty(v).map(Secret)))
    }),
    ("SENDGRID_BASE_URL", |c, v| {
        set(&mut c.sendgrid_base_url, Ok(v.trim().into()))
    }),
    ("HUDDLE_MAIL_FROM", |c, v| set(&mut c.mail_from, Ok(v.trim().into()))),
    ("HUDDLE_MAIL_FROM_NAME", |c, v| {
        set(&mut c.mail_from_name, Ok(v.trim().into()))
    }),
    ("HUDDLE_JWT_SECRET", |c, v| {
        set(&mut c.jwt_secret, Ok(non_empty(v).map(Secret)))
    }),
    ("HUDDLE_JWT_ISSUER", |c, v| set(&mut c.jwt_issuer, Ok(v.trim().into()))),
    ("HUDDLE_JWT_AUDIENCE", |c, v| {
        set(&mut c.jwt_audience, Ok(v.trim().into()))
    }),
    ("HUDDLE_CORS_ORIGINS", |c, v| {
        c.cors_origins = v.split(',').filter_map(non_empty).collect();
        Ok(())
    }),
    ("HUDDLE_ACCESS_TOKEN_TTL", |c, v| {
        set(&mut c.access_token_ttl_secs, parse(v))
    }),
    ("HUDDLE_REFRESH_TOKEN_TTL", |c, v| {
        set(&mut c.refresh_token_ttl_secs, parse(v))
    }),
    ("HUDDLE_OTP_TTL", |c, v| set(&mut c.otp_ttl_secs, parse(v))),
    ("HUDDLE_RATE_LIMIT_PER_IP", |c, v| {
        set(&mut c.rate_limit_per_ip, parse(v))
    }),
    ("HUDDLE_RATE_LIMIT_PER_ACCOUNT", |c, v| {
        set(&mut c.rate_limit_per_account, parse(v))
    }),
    ("HUDDLE_RATE_LIMIT_WINDOW", |c, v| {
        set(&mut c.rate_limit_window_secs, parse(v))
    }),
    ("HUDDLE_COOKIE_SECURE", |c, v| set(&mut c.cookie_secure, parse_bool(v))),
    ("HUDDLE_HSTS", |c, v| set(&mut c.hsts, parse_bool(v))),
    ("HUDDLE_TRUST_PROXY", |c, v| set(&mut c.trust_proxy, parse_bool(v))),
    ("HUDDLE_BODY_LIMIT", |c, v| set(&mut c.body_limit_bytes, parse(v))),
    ("HUDDLE_HTTP_HEADER_TIMEOUT", |c, v| {
        set(&mut c.http_header_timeout_secs, parse(v))
    }),
    ("HUDDLE_SHUTDOWN_GRACE", |c, v| {
        set(&mut c.shutdown_grace_secs, parse(v))
    }),
    ("HUDDLE_MAX_CONNECTIONS", |c, v| set(&mut c.max_connections, parse(v))),
    ("HUDDLE_MAX_SOCKETS_PER_USER", |c, v| {
        set(&mut c.max_sockets_per_user, parse(v))
    }),
    ("HUDDLE_SOCKET_HANDSHAKES_PER_IP", |c, v| {
        set(&mut c.socket_handshakes_per_ip, parse(v))
    }),
    ("HUDDLE_MAX_STREAMED_UPLOADS", |c, v| {
        set(&mut c.max_streamed_uploads, parse(v))
    }),
    ("HUDDLE_MAX_STREAMED_UPLOADS_PER_USER", |c, v| {
        set(&mut c.max_streamed_uploads_per_user, parse(v))
    }),
    ("HUDDLE_EMBEDDED_S3_POST_BUFFER", |c, v| {
        set(&mut c.embedded_s3_post_buffer_bytes, parse(v))
    }),
    ("HUDDLE_UPLOAD_IDLE_TIMEOUT", |c, v| {
        set(&mut c.upload_idle_timeout_secs, parse(v))
    }),
    ("HUDDLE_LOG_FORMAT", |c, v| {
        c.log_format = match v.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(format!("expected text or json (got {other:?})")),
        };
        Ok(())
    }),
    ("OPENAI_API_KEY", |c, v| {
        set(&mut c.openai_api_key, Ok(non_empty(v).map(Secret)))
    }),
    ("OPENAI_BASE_URL", |c, v| set(&mut c.openai_base_url, Ok(non_empty(v)))),
    ("HUDDLE_AI_MODEL", |c, v| set(&mut c.ai_model, Ok(v.trim().into()))),
    ("HUDDLE_AI_SYSTEM_PROMPT", |c, v| {
        set(&mut c.ai_system_prompt, Ok(v.trim().into()))
    }),
    ("HUDDLE_AI_CONTEXT_TOKENS", |c, v| {
        set(&mut c.ai_context_tokens, parse(v))
    }),
    ("HUDDLE_AI_MAX_ANSWER_TOKENS", |c, v| {
        set(&mut c.ai_max_answer_tokens, parse(v))
    }),
    ("HUDDLE_AI_FIRST_TOKEN_TIMEOUT", |c, v| {
        set(&mut c.ai_first_token_timeout_secs, parse(v))
    }),
    ("HUDDLE_AI_ANSWER_TIMEOUT", |c, v| {
        set(&mut c.ai_answer_timeout_secs, parse(v))
    }),
    ("HUDDLE_AI_RETRIES", |c, v| set(&mut c.ai_retries, parse(v))),
    ("HUDDLE_AI_RETRY_BACKOFF_MS", |c, v| {
        set(&mut c.ai_retry_backoff_ms, parse(v))
    }),
    ("HUDDLE_AI_RATE_PER_MINUTE", |c, v| {
        set(&mut c.ai_rate_per_minute, parse(v))
    }),
    ("HUDDLE_AI_DAILY_QUOTA", |c, v| set(&mut c.ai_daily_quota, parse(v))),
    ("HUDDLE_CALL_RING_TIMEOUT", |c, v| {
        set(&mut c.call_ring_timeout_secs, parse(v))
    }),
    ("HUDDLE_TURN_SECRET", |c, v| {
        set(&mut c.turn_secret, Ok(non_empty(v).map(Secret)))
    }),
    ("HUDDLE_TURN_URLS", |c, v| {
        set(&mut c.turn_urls, Ok(v.split(',').filter_map(non_empty).collect()))
    }),
    ("HUDDLE_STUN_URLS", |c, v| {
        set(&mut c.stun_urls, Ok(v.split(',').filter_map(non_empty).collect()))
    }),
    ("HUDDLE_TURN_TTL", |c, v| set(&mut c.turn_ttl_secs, parse(v))),
    ("HUDDLE_MEDIA_UDP_ADDR", |c, v| set(&mut c.media_udp_addr, parse(v))),
    ("HUDDLE_MEDIA_WORKERS", |c, v| set(&mut c.media_workers, parse(v))),
    ("HUDDLE_REDIS_URL", |c, v| {
        set(&mut c.redis_url, Ok(non_empty(v).map(Secret)))
    }),
    ("HUDDLE_NODE_ID", |c, v| set(&mut c.node_id, Ok(non_empty(v)))),
    ("HUDDLE_MEDIA_PUBLIC_IP", |c, v| {
        set(&mut c.media_public_ip, non_empty(v).map(|v| parse(&v)).transpose())
    }),
    ("HUDDLE_CALL_MAX_PARTICIPANTS", |c, v| {
        set(&mut c.call_max_participants, parse(v))
    }),
    ("HUDDLE_CALL_MAX_TRACKS", |c, v| {
        set(&mut c.call_max_tracks_per_participant, parse(v))
    }),
    ("HUDDLE_CALL_MEDIA_TIMEOUT", |c, v| {
        set(&mut c.call_media_timeout_secs, parse(v))
    }),
    ("HUDDLE_MEDIA_MAX_IMAGE", |c, v| {
        set(&mut c.media_max_image_bytes, parse(v))
    }),
    ("HUDDLE_MEDIA_MAX_AUDIO", |c, v| {
        set(&mut c.media_max_audio_bytes, parse(v))
    }),
    ("HUDDLE_MEDIA_MAX_VIDEO", |c, v| {
        set(&mut c.media_max_video_bytes, parse(v))
    }),
    ("HUDDLE_MEDIA_MAX_FILE", |c, v| {
        set(&mut c.media_max_file_bytes, parse(v))
    }),
    ("HUDDLE_UPLOAD_URL_TTL", |c, v| {
        set(&mut c.upload_url_ttl_secs, parse(v))
    }),
    ("HUDDLE_DOWNLOAD_URL_TTL", |c, v| {
        set(&mut c.download_url_ttl_secs, parse(v))
    }),
    ("HUDDLE_UPLOAD_RETENTION", |c, v| {
        set(&mut c.upload_retention_secs, parse(v))
    }),
    ("HUDDLE_WEB_DIR", |c, v| {
        set(&mut c.web_dir, Ok(non_empty(v).map(PathBuf::from)))
    }),
];

impl Config {
    /// Loads from the process environment and `HUDDLE_CONFIG` (default `./huddle.toml`).
    pub fn load() -> Result<Self, ConfigError> {
        let explicit = std::env::var_os("HUDDLE_CONFIG").map(PathBuf::from);
        let file = explicit.clone().unwrap_or_else(|| PathBuf::from("huddle.toml"));
        let file = (explicit.is_some() || file.exists()).then_some(file);
        Self::load_from(file.as_deref(), |name| std::env::var(name).ok())
    }

    /// Loads from an optional TOML file and an environment lookup, then validates.
    pub fn load_from(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new("HUDDLE_CONFIG", format!("{}: {e}", path.display())))?;
                toml::from_str::<Config>(&text)
                    .map_err(|e| ConfigError::new(format!("{} (huddle.toml)", path.display()), e.message()))?
            }
            None => Config::default(),
        };
        for (name, set) in ENV {
            if let Some(value) = env(name) {
                set(&mut config, &value).map_err(|m| ConfigError::new(*name, m))?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    /// What several nodes sharing Redis need: each node is told apart by its id and its media
    /// address, and everything a client may reach through another node is shared, never
    /// one node's own (the embedded database and store, a generated signing key).
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.node_id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ConfigError::new(
                "HUDDLE_NODE_ID",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        let Some(url) = &self.redis_url else {
            return Ok(());
        };
        if !(url.0.starts_with("redis://") || url.0.starts_with("rediss://")) {
            return Err(ConfigError::new(
                "HUDDLE_REDIS_URL",
                "must start with redis:// or rediss://",
            ));
        }
        let shared = [
            (
                "HUDDLE_NODE_ID",
                self.node_id.is_some(),
                "is required with HUDDLE_REDIS_URL: each node needs an id of its own",
            ),
            (
                "MONGODB_URI",
                self.mongodb_uri.is_some(),
                "is required with HUDDLE_REDIS_URL: the nodes must share one database (the \
                 embedded one belongs to one node)",
            ),
            (
                "HUDDLE_S3_BUCKET",
                self.s3_bucket.is_some(),
                "is required with HUDDLE_REDIS_URL: the nodes must share one store (the embedded \
                 one belongs to one node)",
            ),
            (
                "HUDDLE_JWT_SECRET",
                self.jwt_secret.is_some(),
                "is required with HUDDLE_REDIS_URL: every node must check the tokens the others \
                 sign (a generated key belongs to one node)",
            ),
            (
                "HUDDLE_MEDIA_PUBLIC_IP",
                self.media_public_ip.is_some() || !self.media_udp_addr.ip().is_unspecified(),
                "is required with HUDDLE_REDIS_URL when HUDDLE_MEDIA_UDP_ADDR binds every \
                 address: each node tells clients its own media address",
            ),
        ];
        match shared.into_iter().find(|(_, given, _)| !given) {
            Some((setting, _, message)) => Err(ConfigError::new(setting, message)),
            None => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        fn err(setting: &str, message: impl fmt::Display) -> ConfigError {
            ConfigError::new(setting, message)
        }
        if self.mongodb_db.is_empty() || self.mongodb_db.contains(['/', '.', ' ', '$']) {
            return Err(err("HUDDLE_MONGODB_DB", "must be a plain database name"));
        }
        if let Some(uri) = &self.mongodb_uri
            && !(uri.0.starts_with("mongodb://") || uri.0.starts_with("mongodb+srv://"))
        {
            return Err(err("MONGODB_URI", "must start with mongodb:// or mongodb+srv://"));
        }
        if let Some(bucket) = &self.s3_bucket
            && !valid_bucket(bucket)
        {
            return Err(err(
                "HUDDLE_S3_BUCKET",
                "must be 3-63 lowercase letters, digits, '-' or '.'",
            ));
        }
        if let Some(endpoint) = &self.s3_endpoint
            && !is_http_url(endpoint)
        {
            return Err(err("HUDDLE_S3_ENDPOINT", "must be an http:// or https:// URL"));
        }
        if self.s3_endpoint.is_some() && self.s3_bucket.is_none() {
            return Err(err("HUDDLE_S3_BUCKET", "is required when HUDDLE_S3_ENDPOINT is set"));
        }
        if !is_http_url(&self.sendgrid_base_url) {
            return Err(err("SENDGRID_BASE_URL", "must be an http:// or https:// URL"));
        }
        if !looks_like_email(&self.mail_from) {
            return Err(err("HUDDLE_MAIL_FROM", "must be an email address"));
        }
        if let Some(secret) = &self.jwt_secret
            && secret.0.len() < 32
        {
            return Err(err("HUDDLE_JWT_SECRET", "must be at least 32 characters"));
        }
        for origin in &self.cors_origins {
            if origin == "*" {
                return Err(err(
                    "HUDDLE_CORS_ORIGINS",
                    "'*' is not allowed: cookies are sent with credentials",
                ));
            }
            if !is_http_url(origin) || origin.ends_with('/') {
                return Err(err(
                    "HUDDLE_CORS_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example.com"),
                ));
            }
        }
        let ttl_checks = [
            ("HUDDLE_ACCESS_TOKEN_TTL", self.access_token_ttl_secs, 30, 24 * 3600),
            (
                "HUDDLE_REFRESH_TOKEN_TTL",
                self.refresh_token_ttl_secs,
                300,
                365 * 24 * 3600,
            ),
            ("HUDDLE_OTP_TTL", self.otp_ttl_secs, 30, 3600),
            ("HUDDLE_RATE_LIMIT_WINDOW", self.rate_limit_window_secs, 1, 24 * 3600),
            ("HUDDLE_CALL_RING_TIMEOUT", self.call_ring_timeout_secs, 1, 600),
            ("HUDDLE_TURN_TTL", self.turn_ttl_secs, 60, 24 * 3600),
            ("HUDDLE_CALL_MEDIA_TIMEOUT", self.call_media_timeout_secs, 2, 300),
            ("HUDDLE_HTTP_HEADER_TIMEOUT", self.http_header_timeout_secs, 1, 300),
            ("HUDDLE_SHUTDOWN_GRACE", self.shutdown_grace_secs, 1, 600),
            ("HUDDLE_UPLOAD_URL_TTL", self.upload_url_ttl_secs, 1, 7 * 24 * 3600),
            ("HUDDLE_DOWNLOAD_URL_TTL", self.download_url_ttl_secs, 1, 7 * 24 * 3600),
            ("HUDDLE_UPLOAD_RETENTION", self.upload_retention_secs, 0, 30 * 24 * 3600),
            (
                "HUDDLE_AI_FIRST_TOKEN_TIMEOUT",
                self.ai_first_token_timeout_secs,
                1,
                600,
            ),
            ("HUDDLE_AI_ANSWER_TIMEOUT", self.ai_answer_timeout_secs, 1, 3600),
        ];
        for (name, value, min, max) in ttl_checks {
            if !(min..=max).contains(&value) {
                return Err(err(
                    name,
                    format!("must be between {min} and {max} seconds (got {value})"),
                ));
            }
        }
        if self.refresh_token_ttl_secs <= self.access_token_ttl_secs {
            return Err(err(
                "HUDDLE_REFRESH_TOKEN_TTL",
                "must be longer than HUDDLE_ACCESS_TOKEN_TTL",
            ));
        }
        if let Some(url) = &self.openai_base_url
            && !is_http_url(url)
        {
            return Err(err("OPENAI_BASE_URL", "must be an http:// or https:// URL"));
        }
        if self.ai_model.is_empty() {
            return Err(err("HUDDLE_AI_MODEL", "must not be empty"));
        }
        if self.ai_system_prompt.chars().count() > 8000 {
            return Err(err("HUDDLE_AI_SYSTEM_PROMPT", "must be at most 8000 characters"));
        }
        if !(1..=100_000).contains(&self.max_sockets_per_user) {
            return Err(err("HUDDLE_MAX_SOCKETS_PER_USER", "must be between 1 and 100000"));
        }
        if self.socket_handshakes_per_ip == 0 {
            return Err(err("HUDDLE_SOCKET_HANDSHAKES_PER_IP", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.max_streamed_uploads) {
            return Err(err("HUDDLE_MAX_STREAMED_UPLOADS", "must be between 1 and 10000"));
        }
        if !(1..=self.max_streamed_uploads).contains(&self.max_streamed_uploads_per_user) {
            return Err(err(
                "HUDDLE_MAX_STREAMED_UPLOADS_PER_USER",
                "must be between 1 and HUDDLE_MAX_STREAMED_UPLOADS",
            ));
        }
        let largest = self
            .media_max_image_bytes
            .max(self.media_max_audio_bytes)
            .max(self.media_max_video_bytes)
            .max(self.media_max_file_bytes);
        if self.s3_bucket.is_none() && self.embedded_s3_post_buffer_bytes < largest + 64 * 1024 {
            return Err(err(
                "HUDDLE_EMBEDDED_S3_POST_BUFFER",
                format!(
                    "must hold the largest upload a form allows and its fields: at least {} bytes",
                    largest + 64 * 1024
                ),
            ));
        }
        if !(1..=3600).contains(&self.upload_idle_timeout_secs) {
            return Err(err("HUDDLE_UPLOAD_IDLE_TIMEOUT", "must be between 1 and 3600 seconds"));
        }
        if !(256..=1_000_000).contains(&self.ai_context_tokens) {
            return Err(err("HUDDLE_AI_CONTEXT_TOKENS", "must be between 256 and 1000000"));
        }
        if !(16..=100_000).contains(&self.ai_max_answer_tokens) {
            return Err(err("HUDDLE_AI_MAX_ANSWER_TOKENS", "must be between 16 and 100000"));
        }
        if self.ai_retries > 10 {
            return Err(err("HUDDLE_AI_RETRIES", "must be at most 10"));
        }
        if self.ai_retry_backoff_ms > 60_000 {
            return Err(err("HUDDLE_AI_RETRY_BACKOFF_MS", "must be at most 60000"));
        }
        if self.ai_rate_per_minute == 0 || self.ai_daily_quota == 0 {
            return Err(err(
                "HUDDLE_AI_RATE_PER_MINUTE",
                "the per-minute rate and HUDDLE_AI_DAILY_QUOTA must be at least 1",
            ));
        }
        if self.rate_limit_per_ip == 0 {
            return Err(err("HUDDLE_RATE_LIMIT_PER_IP", "must be at least 1"));
        }
        if self.rate_limit_per_account == 0 {
            return Err(err("HUDDLE_RATE_LIMIT_PER_ACCOUNT", "must be at least 1"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(err("HUDDLE_BODY_LIMIT", "must be between 1024 and 67108864 bytes"));
        }
        for url in &self.turn_urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) {
                return Err(err(
                    "HUDDLE_TURN_URLS",
                    format!("{url:?} must start with turn: or turns:"),
                ));
            }
        }
        for url in &self.stun_urls {
            if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
                return Err(err(
                    "HUDDLE_STUN_URLS",
                    format!("{url:?} must start with stun: or stuns:"),
                ));
            }
        }
        if !(1..=MAX_MEDIA_WORKERS).contains(&self.media_workers) {
            return Err(err(
                "HUDDLE_MEDIA_WORKERS",
                format!("must be between 1 and {MAX_MEDIA_WORKERS}"),
            ));
        }
        let first_port = usize::from(self.media_udp_addr.port());
        if first_port != 0 && first_port + self.media_workers - 1 > usize::from(u16::MAX) {
            return Err(err(
                "HUDDLE_MEDIA_WORKERS",
                format!(
                    "{} workers need ports {first_port}..{}, past 65535 (lower HUDDLE_MEDIA_UDP_ADDR's port)",
                    self.media_workers,
                    first_port + self.media_workers - 1
                ),
            ));
        }
        if !(2..=huddle_sfu::MAX_PARTICIPANTS).contains(&self.call_max_participants) {
            return Err(err(
                "HUDDLE_CALL_MAX_PARTICIPANTS",
                format!("must be between 2 and {}", huddle_sfu::MAX_PARTICIPANTS),
            ));
        }
        if !(1..=huddle_sfu::MAX_TRACKS_PER_PARTICIPANT).contains(&self.call_max_tracks_per_participant) {
            return Err(err(
                "HUDDLE_CALL_MAX_TRACKS",
                format!("must be between 1 and {}", huddle_sfu::MAX_TRACKS_PER_PARTICIPANT),
            ));
        }
        for (name, value) in [
            ("HUDDLE_MEDIA_MAX_IMAGE", self.media_max_image_bytes),
            ("HUDDLE_MEDIA_MAX_AUDIO", self.media_max_audio_bytes),
            ("HUDDLE_MEDIA_MAX_VIDEO", self.media_max_video_bytes),
            ("HUDDLE_MEDIA_MAX_FILE", self.media_max_file_bytes),
        ] {
            // S3's single-request ceiling is 5 GiB.
            if !(1..=5 * 1024 * 1024 * 1024).contains(&value) {
                return Err(err(name, "must be between 1 byte and 5 GiB"));
            }
        }
        if self.media_public_ip.is_some_and(|ip| ip.is_unspecified()) {
            return Err(err("HUDDLE_MEDIA_PUBLIC_IP", "must be an address clients can reach"));
        }
        self.validate_cluster()?;
        if !self.turn_urls.is_empty() && self.turn_secret.is_none() {
            return Err(err("HUDDLE_TURN_SECRET", "is required when HUDDLE_TURN_URLS is set"));
        }
        if let Some(url) = &self.openai_base_url
            && !is_http_url(url)
        {
            return Err(err("OPENAI_BASE_URL", "must be an http:// or https:// URL"));
        }
        Ok(())
    }

    /// The UDP address media worker `index` binds: the configured port + `index` (0 stays 0).
    pub fn media_worker_addr(&self, index: usize) -> SocketAddr {
        let mut addr = self.media_udp_addr;
        if addr.port() != 0 {
            addr.set_port(addr.port() + index as u16);
        }
        addr
    }

    /// The media address advertised to participants in the SFU's ICE candidate.
    pub fn media_public_addr(&self, bound: SocketAddr) -> SocketAddr {
        let ip = match self.media_public_ip {
            Some(ip) => ip,
            None if bound.ip().is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            None => bound.ip(),
        };
        SocketAddr::new(ip, bound.port())
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    pub fn otp_ttl(&self) -> Duration {
        Duration::from_secs(self.otp_ttl_secs)
    }
}

fn is_http_url(s: &str) -> bool {
    !s.contains(char::is_whitespace)
        && url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn looks_like_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}

fn valid_bucket(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huddle.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        Config::load_from(file.map(|_| path.as_path()), |k| env.get(k).cloned())
    }

    #[test]
    fn several_nodes_refuse_what_only_one_node_has_naming_the_setting_to_give() {
        let cluster = [
            ("HUDDLE_REDIS_URL", "redis://127.0.0.1:6390/"),
            ("HUDDLE_NODE_ID", "n1"),
            ("MONGODB_URI", "mongodb://127.0.0.1:27018/?directConnection=true"),
            ("HUDDLE_S3_BUCKET", "media"),
            ("HUDDLE_S3_ENDPOINT", "http://127.0.0.1:9100"),
            ("HUDDLE_JWT_SECRET", "0123456789abcdef0123456789abcdef-shared"),
            ("HUDDLE_MEDIA_UDP_ADDR", "127.0.0.1:50010"),
        ];
        let c = load(None, &cluster).expect("a whole cluster configuration");
        assert_eq!(c.node_id.as_deref(), Some("n1"));
        for (missing, names) in [
            ("HUDDLE_NODE_ID", "an id of its own"),
            ("MONGODB_URI", "share one database"),
            ("HUDDLE_S3_BUCKET", "share one store"),
            ("HUDDLE_JWT_SECRET", "check the tokens the others sign"),
            ("HUDDLE_MEDIA_UDP_ADDR", "its own media address"),
        ] {
            let without: Vec<(&str, &str)> = cluster
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing && !(missing == "HUDDLE_S3_BUCKET" && *k == "HUDDLE_S3_ENDPOINT"))
                .collect();
            let e = load(None, &without).unwrap_err();
            let expected = if missing == "HUDDLE_MEDIA_UDP_ADDR" {
                "HUDDLE_MEDIA_PUBLIC_IP"
            } else {
                missing
            };
            assert_eq!(e.setting, expected, "without {missing}: {e}");
            assert!(e.to_string().contains(names), "without {missing}: {e}");
            assert!(e.to_string().contains("HUDDLE_REDIS_URL"), "{e}");
        }
        let mut public = cluster.to_vec();
        public.retain(|(k, _)| *k != "HUDDLE_MEDIA_UDP_ADDR");
        public.push(("HUDDLE_MEDIA_PUBLIC_IP", "203.0.113.7"));
        assert!(
            load(None, &public).is_ok(),
            "a public IP names the node's media address"
        );
        let mut bad = cluster.to_vec();
        bad[0] = ("HUDDLE_REDIS_URL", "http://127.0.0.1:6390");
        assert_eq!(load(None, &bad).unwrap_err().setting, "HUDDLE_REDIS_URL");
        let e = load(None, &[("HUDDLE_NODE_ID", "n 1")]).unwrap_err();
        assert_eq!(e.setting, "HUDDLE_NODE_ID");
        assert!(
            load(None, &[]).unwrap().redis_url.is_none(),
            "one node needs none of it"
        );
    }

    #[test]
    fn defaults_are_valid_and_local() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.mongodb_uri.is_none() && c.s3_bucket.is_none() && c.sendgrid_api_key.is_none());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let file = "http_addr = \"127.0.0.1:4000\"\nmongodb_db = \"fromfile\"\n";
        let c = load(Some(file), &[("HUDDLE_HTTP_ADDR", "127.0.0.1:5000")]).unwrap();
        assert_eq!(c.http_addr.port(), 5000);
        assert_eq!(c.mongodb_db, "fromfile");
        assert_eq!(c.access_token_ttl_secs, 900);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = load(None, &[("HUDDLE_HTTP_ADDR", "not an address")]).unwrap_err();
        assert_eq!(e.setting, "HUDDLE_HTTP_ADDR");
        let e = load(None, &[("HUDDLE_CORS_ORIGINS", "*")]).unwrap_err();
        assert_eq!(e.setting, "HUDDLE_CORS_ORIGINS");
        let e = load(None, &[("HUDDLE_JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(e.setting, "HUDDLE_JWT_SECRET");
        let e = load(None, &[("MONGODB_URI", "postgres://x")]).unwrap_err();
        assert_eq!(e.setting, "MONGODB_URI");
        let e = load(None, &[("HUDDLE_HSTS", "maybe")]).unwrap_err();
        assert_eq!(e.setting, "HUDDLE_HSTS");
        for (setting, value) in [
            ("HUDDLE_MAX_SOCKETS_PER_USER", "0"),
            ("HUDDLE_HTTP_HEADER_TIMEOUT", "0"),
            ("HUDDLE_SHUTDOWN_GRACE", "0"),
        ] {
            let e = load(None, &[(setting, value)]).unwrap_err();
            assert_eq!(e.setting, setting);
        }
        let e = load(Some("no_such_key = 1\n"), &[]).unwrap_err();
        assert!(e.setting.ends_with("(huddle.toml)"), "{e}");
        assert!(e.message.contains("no_such_key"), "{e}");
    }

    #[test]
    fn media_workers_take_a_range_of_ports_that_must_fit() {
        let c = load(
            None,
            &[
                ("HUDDLE_MEDIA_UDP_ADDR", "0.0.0.0:50000"),
                ("HUDDLE_MEDIA_WORKERS", "4"),
            ],
        )
        .unwrap();
        let ports: Vec<u16> = (0..c.media_workers).map(|i| c.media_worker_addr(i).port()).collect();
        assert_eq!(ports, [50_000, 50_001, 50_002, 50_003]);
        // Port 0: every worker takes a free port of its own.
        let c = load(
            None,
            &[("HUDDLE_MEDIA_UDP_ADDR", "127.0.0.1:0"), ("HUDDLE_MEDIA_WORKERS", "3")],
        )
        .unwrap();
        assert!((0..3).all(|i| c.media_worker_addr(i).port() == 0));
        for workers in ["0", "257", "many"] {
            let e = load(None, &[("HUDDLE_MEDIA_WORKERS", workers)]).unwrap_err();
            assert_eq!(e.setting, "HUDDLE_MEDIA_WORKERS", "{workers}: {e}");
        }
        let e = load(
            None,
            &[
                ("HUDDLE_MEDIA_UDP_ADDR", "0.0.0.0:65535"),
                ("HUDDLE_MEDIA_WORKERS", "2"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.setting, "HUDDLE_MEDIA_WORKERS");
        assert!(e.message.contains("65535"), "{e}");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = load(
            None,
            &[("HUDDLE_JWT_SECRET", "0123456789abcdef0123456789abcdef-very-secret")],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
