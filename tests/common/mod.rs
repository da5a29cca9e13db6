//! Whole-server test harness: starts Huddle on `127.0.0.1:0` against a real MongoDB-wire
//! server (one `secantusd-rs` per test binary, or `MONGODB_URI`) and the embedded S3 store,
//! each test in its own database and data directory.

#![allow(dead_code)]

pub mod openai;
pub mod sio;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use huddle::embedded::db::{self, EmbeddedDb};
use huddle::{AppState, Backends, Config};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

/// The MongoDB every test of this binary shares: `MONGODB_URI`, or a `secantusd-rs`
/// started once and ended with the test process.
pub async fn mongo_uri() -> String {
    static URI: OnceCell<String> = OnceCell::const_new();
    URI.get_or_init(|| async {
        if let Ok(uri) = std::env::var("MONGODB_URI") {
            return uri;
        }
        let binary = db::find_binary(None).expect("secantusd-rs is installed (run `make bootstrap`)");
        remove_stale_test_dbs();
        let dir = std::env::temp_dir().join(format!("huddle-test-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let db = EmbeddedDb::start(&binary, &dir).expect("secantusd-rs starts");
        db.wait_ready(Duration::from_secs(60))
            .await
            .expect("secantusd-rs answers");
        let uri = db.uri();
        // Lives until the test process ends; the child is tied to its launcher thread,
        // which lives as long as the child does.
        std::mem::forget(db);
        uri
    })
    .await
    .clone()
}

/// Removes the database folders earlier test processes left behind (their process is gone;
/// the database process they started ended with them).
fn remove_stale_test_dbs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("huddle-test-db-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Polls `check` until it yields a value (for what the server does just after it answers,
/// such as notifications written after an ack); panics after 10 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    backends: Option<Backends>,
}

/// A test configuration: its own database, data dir, relaxed limits, no `Secure` cookie
/// (tests speak plain HTTP).
pub async fn test_config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        mongodb_uri: Some(huddle::config::Secret::new(mongo_uri().await)),
        mongodb_db: format!("t{}", mongodb::bson::oid::ObjectId::new().to_hex()),
        jwt_secret: Some(huddle::config::Secret::new("test-secret-test-secret-test-secret-0123")),
        cookie_secure: false,
        media_udp_addr: ([127, 0, 0, 1], 0).into(),
        rate_limit_per_ip: 1000,
        rate_limit_per_account: 1000,
        // Every test client connects from 127.0.0.1; the handshake test sets its own.
        socket_handshakes_per_ip: 100_000,
        web_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web/public")),
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(tmp.path()).await;
        adjust(&mut config);
        let mut server = Self::start_config(config).await.expect("server starts");
        server._tmp = Some(tmp);
        server
    }

    /// Starts with exactly `config` (the data dir is the caller's to keep).
    pub async fn start_config(config: Config) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_listening(listener, config).await
    }

    /// Starts a server whose web origin browsers may use: its own address is an allowed CORS
    /// origin (uploads go from the page straight to the S3 store).
    pub async fn start_for_browsers(adjust: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = test_config(tmp.path()).await;
        config.cors_origins = vec![format!("http://{}", listener.local_addr().expect("addr"))];
        // Media on the wildcard address, as `make run` binds it (advertised as 127.0.0.1).
        config.media_udp_addr = ([0, 0, 0, 0], 0).into();
        adjust(&mut config);
        let mut server = Self::start_listening(listener, config).await.expect("server starts");
        server._tmp = Some(tmp);
        server
    }

    /// Starts with exactly `config`, serving on `listener`.
    pub async fn start_listening(listener: tokio::net::TcpListener, config: Config) -> anyhow::Result<Self> {
        let data_dir = config.data_dir.clone();
        let (state, backends) = AppState::build(config).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            huddle::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Ok(Self {
            addr,
            state,
            data_dir,
            _tmp: None,
            stop: Some(stop),
            task: Some(task),
            backends: Some(backends),
        })
    }

    /// The pid of this server's own embedded database, when it started one.
    pub fn embedded_db_pid(&self) -> Option<u32> {
        self.backends.as_ref().and_then(Backends::embedded_db_pid)
    }

    /// Graceful stop: drain HTTP, then stop the embedded backends.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(backends) = self.backends.take() {
            backends.shutdown().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn client(&self) -> Client {
        Client::new(self.url(""))
    }

    /// Every mail written to the outbox for `to`, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<Value> {
        mails_in(&self.data_dir.join("outbox"), to)
    }

    /// Waits for the `n`th (1-based) mail to `to`.
    pub async fn wait_mail(&self, to: &str, n: usize) -> Value {
        wait_mail_in(&self.data_dir.join("outbox"), to, n).await
    }

    /// The code in the `n`th mail to `to`.
    pub async fn otp(&self, to: &str, n: usize) -> String {
        let mail = self.wait_mail(to, n).await;
        mail["otp"].as_str().expect("mail carries an otp").to_string()
    }

    /// Registers and verifies `username`; returns the signed-in session.
    pub async fn signed_up(&self, username: &str) -> Session {
        sign_up(self.client(), &self.data_dir.join("outbox"), username).await
    }
}

/// Registers and verifies `username` through `client`, with the code from the mail written to
/// `outbox`; returns the signed-in session.
pub async fn sign_up(client: Client, outbox: &Path, username: &str) -> Session {
    let email = format!("{username}@example.com");
    let r = client
        .post("/api/v1/auth/register", &register_body(username, &email))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let mail = wait_mail_in(outbox, &email, 1).await;
    let otp = mail["otp"].as_str().expect("mail carries an otp");
    let r = client
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": otp, "includeRefreshToken": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    Session::from_auth(client, email, &r.body)
}

/// Makes `a` and `b` friends over REST and opens their 1:1 chat; returns its id.
pub async fn friends_with_chat(a: &Session, b: &Session) -> String {
    let r = a
        .client
        .post_auth(
            "/api/v1/friends/requests",
            &a.access,
            &json!({ "userId": b.user_id, "content": "hi" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let request_id = r.body["_id"].as_str().expect("request id").to_string();
    let r = b
        .client
        .post_auth(
            &format!("/api/v1/friends/requests/{request_id}/accept"),
            &b.access,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = a
        .client
        .post_auth("/api/v1/chats", &a.access, &json!({ "userId": b.user_id }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let chat = r.body["_id"].as_str().expect("chat id").to_string();
    // Opening again, from either side, returns the same chat.
    let again = b
        .client
        .post_auth("/api/v1/chats", &b.access, &json!({ "userId": a.user_id }))
        .await;
    assert_eq!((again.status, again.body["_id"].as_str()), (200, Some(chat.as_str())));
    chat
}

/// A group `admin` creates with `members`, who all accept; returns the group and chat ids.
pub async fn group_with(admin: &Session, name: &str, members: &[&Session]) -> (String, String) {
    let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let r = admin
        .client
        .post_auth(
            "/api/v1/groups",
            &admin.access,
            &json!({ "name": name, "members": ids }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let group = r.body["_id"].as_str().expect("group id").to_string();
    let chat = r.body["chatId"].as_str().expect("chat id").to_string();
    for member in members {
        let r = member
            .client
            .post_auth(&format!("/api/v1/groups/{group}/accept"), &member.access, &json!({}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    (group, chat)
}

/// POSTs `fields`, then `file` as the part named `file`, to the streamed upload route
/// `/api/v1/media` (`multipart/form-data`) as `who`.
pub fn post_media(
    server: &TestServer,
    who: &Session,
    fields: Vec<(&str, String)>,
    file: reqwest::multipart::Part,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + use<> {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value);
    }
    reqwest::Client::new()
        .post(server.url("/api/v1/media"))
        .bearer_auth(&who.access)
        .multipart(form.part("file", file))
        .send()
}

/// A Socket.IO client (the official `socket.io-client`) signed in as `who`.
pub async fn socket(server: &TestServer, who: &Session) -> sio::SioClient {
    sio::connect(&server.url(""), Some(&who.access))
        .await
        .expect("socket connects")
}

/// Every mail in `outbox` for `to`, oldest first.
pub fn mails_in(outbox: &Path, to: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).ok()?).ok())
        .filter(|m| m["to"] == to)
        .collect()
}

/// Waits for the `n`th (1-based) mail to `to` in `outbox`.
pub async fn wait_mail_in(outbox: &Path, to: &str, n: usize) -> Value {
    for _ in 0..200 {
        let mails = mails_in(outbox, to);
        if mails.len() >= n {
            return mails[n - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("mail #{n} to {to} never arrived; have {:?}", mails_in(outbox, to));
}

pub fn register_body(username: &str, email: &str) -> Value {
    json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "username": username,
        "email": email,
        "password": PASSWORD,
        "passwordConfirm": PASSWORD,
    })
}

/// A signed-in user of a test.
pub struct Session {
    pub client: Client,
    pub email: String,
    pub user_id: String,
    pub access: String,
    pub refresh: String,
}

impl Session {
    pub fn from_auth(client: Client, email: String, body: &Value) -> Self {
        Self {
            client,
            email,
            user_id: body["user"]["_id"].as_str().expect("user id").to_string(),
            access: body["accessToken"].as_str().expect("access token").to_string(),
            refresh: body["refreshToken"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A small JSON client with a cookie jar, like a browser tab or a mobile app.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("http client");
        Self { http, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body is read");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).bearer_auth(token).json(body))
            .await
    }

    pub async fn patch_auth(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(self.http.patch(self.url(path)).bearer_auth(token).json(body))
            .await
    }
}

/// This test process's resident memory, bytes (Linux `/proc/self/status`). The server runs
/// in the same process, so memory tests read it here.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}
