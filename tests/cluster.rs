//! Several Huddle processes serving as one: three nodes on loopback share one Redis
//! (Debian's `redis-server`), one `secantusd-rs` and one S3 endpoint (the embedded store, run
//! on its own), and users connected to different nodes (the official `socket.io-client`) chat
//! as if on one server.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, Session, friends_with_chat, group_with, sign_up, sio};
use huddle::embedded::free_loopback_port;
use huddle::embedded::s3::{EmbeddedS3, PostLimits};
use serde_json::{Value, json};

/// A child process ended (killed) with its owner.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (20 s at most) until something listens on `port`.
fn wait_listening(port: u16, what: &str) {
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} never listened on {port}");
}

fn redis_server(port: u16) -> Process {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (make test installs it)");
    wait_listening(port, "redis-server");
    Process(child)
}

struct Node {
    url: String,
    dir: PathBuf,
    process: Process,
}

struct Cluster {
    nodes: Vec<Node>,
    _s3: EmbeddedS3,
    _redis: Process,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes on one Redis, one database and one store.
    async fn start(n: usize) -> Self {
        Self::start_with(n, &[]).await
    }

    /// [`Cluster::start`], each node with `env` besides.
    async fn start_with(n: usize, env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let redis_port = free_loopback_port().unwrap();
        let redis = redis_server(redis_port);
        let s3 = EmbeddedS3::start(
            &tmp.path().join("s3"),
            &[],
            PostLimits {
                buffer_bytes: 64 << 20,
                idle: Duration::from_secs(30),
            },
        )
        .await
        .expect("the store starts");
        // The nodes' bucket: a folder of the store's root (`<dir>/media`).
        std::fs::create_dir_all(tmp.path().join("s3/media/media")).unwrap();
        let config = common::test_config(tmp.path()).await;
        let mut nodes = Vec::new();
        for i in 1..=n {
            let port = free_loopback_port().unwrap();
            let dir = tmp.path().join(format!("n{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_huddle"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", std::env::var("HOME").unwrap_or_default())
                .env("HUDDLE_NODE_ID", format!("n{i}"))
                .env("HUDDLE_REDIS_URL", format!("redis://127.0.0.1:{redis_port}/"))
                .env("HUDDLE_HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env("HUDDLE_DATA_DIR", &dir)
                .env("MONGODB_URI", config.mongodb_uri.as_ref().unwrap().expose())
                .env("HUDDLE_MONGODB_DB", &config.mongodb_db)
                .env("HUDDLE_JWT_SECRET", config.jwt_secret.as_ref().unwrap().expose())
                .env("HUDDLE_S3_BUCKET", "media")
                .env("HUDDLE_S3_ENDPOINT", &s3.endpoint)
                .env("HUDDLE_S3_FORCE_PATH_STYLE", "true")
                .env("AWS_ACCESS_KEY_ID", &s3.access_key)
                .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
                .env("HUDDLE_COOKIE_SECURE", "false")
                .env("HUDDLE_MEDIA_UDP_ADDR", "127.0.0.1:0")
                .env("HUDDLE_RATE_LIMIT_PER_IP", "1000")
                .env("HUDDLE_RATE_LIMIT_PER_ACCOUNT", "1000")
                .env("HUDDLE_SOCKET_HANDSHAKES_PER_IP", "100000")
                .envs(env.iter().copied())
                .stdout(std::fs::File::create(dir.join("log")).unwrap())
                .stderr(std::fs::File::create(dir.join("err")).unwrap())
                .spawn()
                .expect("huddle starts");
            let node = Node {
                url: format!("http://127.0.0.1:{port}"),
                dir,
                process: Process(child),
            };
            ready(&node).await;
            nodes.push(node);
        }
        Self {
            nodes,
            _s3: s3,
            _redis: redis,
            _tmp: tmp,
        }
    }

    /// Registers and verifies `username` on node `i`.
    async fn signed_up(&self, i: usize, username: &str) -> Session {
        let node = &self.nodes[i];
        sign_up(Client::new(node.url.clone()), &node.dir.join("outbox"), username).await
    }

    /// `who`'s socket on node `i`.
    async fn socket(&self, i: usize, who: &Session) -> sio::SioClient {
        sio::connect(&self.nodes[i].url, Some(&who.access))
            .await
            .expect("socket connects")
    }
}

/// Waits (60 s at most) until `node` is ready.
async fn ready(node: &Node) {
    let http = reqwest::Client::new();
    for _ in 0..1200 {
        if http
            .get(format!("{}/ready", node.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = |name| std::fs::read_to_string(node.dir.join(name)).unwrap_or_default();
    panic!("{} never became ready:\n{}\n{}", node.url, log("log"), log("err"));
}

fn send(chat: &str, client_msg_id: &str, content: &str) -> Value {
    json!({ "chatId": chat, "clientMsgId": client_msg_id, "type": "text", "content": content })
}

#[tokio::test]
async fn users_on_three_nodes_chat_as_on_one_server() {
    let cluster = Cluster::start(3).await;
    let ann = cluster.signed_up(0, "ann").await;
    let ben = cluster.signed_up(1, "ben").await;
    let cal = cluster.signed_up(2, "cal").await;
    let mut ann_socket = cluster.socket(0, &ann).await;
    let mut ben_socket = cluster.socket(1, &ben).await;
    let mut cal_socket = cluster.socket(2, &cal).await;

    // A friend request made on node 1 reaches the socket on node 2.
    friends_with_chat(&ann, &ben).await;
    let request = ben_socket.next("friend:request").await;
    assert_eq!(request["sender"], ann.user_id.as_str(), "{request}");
    friends_with_chat(&ann, &cal).await;

    // The group's chat room is joined by sockets on the other nodes as the members accept.
    let (group, chat) = group_with(&ann, "crew", &[&ben, &cal]).await;
    for i in 1..=5 {
        let ack = ann_socket
            .emit("message:send", send(&chat, &format!("m{i}"), &format!("hello {i}")))
            .await;
        assert_eq!(ack["data"]["seq"], i, "{ack}");
    }
    for (who, socket) in [("ben", &mut ben_socket), ("cal", &mut cal_socket)] {
        let mut seqs = Vec::new();
        while seqs.len() < 5 {
            let message = socket.next("message:new").await;
            if message["chatId"] == chat.as_str() {
                seqs.push(message["seq"].as_i64().unwrap());
            }
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{who} gets each message once, in order");
        socket.expect_none("message:new").await;
    }

    // Typing on node 2 reaches nodes 1 and 3, not its own sender.
    let ack = ben_socket.emit("typing:start", json!({ "chatId": chat })).await;
    assert!(ack.get("data").is_some(), "{ack}");
    for socket in [&mut ann_socket, &mut cal_socket] {
        let typing = socket.next("typing").await;
        assert_eq!(
            (typing["userId"].as_str(), typing["typing"].as_bool()),
            (Some(ben.user_id.as_str()), Some(true))
        );
    }
    ben_socket.expect_none("typing").await;

    // A read receipt on node 3 reaches the sender on node 1.
    let ack = cal_socket
        .emit("message:read", json!({ "chatId": chat, "seq": 5 }))
        .await;
    assert_eq!(ack["data"]["seq"], 5, "{ack}");
    let receipt = ann_socket.next("message:read").await;
    assert_eq!(
        (receipt["userId"].as_str(), receipt["seq"].as_i64()),
        (Some(cal.user_id.as_str()), Some(5))
    );

    // Cal, removed on node 2, no longer gets the group's messages on node 3; Ben still does.
    let on_node_2 = Client::new(cluster.nodes[1].url.clone());
    let path = format!("/api/v1/groups/{group}/members/{}", cal.user_id);
    let r = on_node_2
        .send(on_node_2.http.delete(on_node_2.url(&path)).bearer_auth(&ann.access))
        .await;
    assert!(r.status < 300, "{r:?}");
    let ack = ann_socket
        .emit("message:send", send(&chat, "after", "without cal"))
        .await;
    assert_eq!(ack["data"]["seq"], 6, "{ack}");
    assert_eq!(ben_socket.next("message:new").await["seq"], 6);
    cal_socket.expect_none("message:new").await;

    // Ben signs out on node 1: his session's socket on node 2 is disconnected.
    let on_node_1 = Client::new(cluster.nodes[0].url.clone());
    let r = on_node_1
        .post_auth("/api/v1/auth/logout", &ben.access, &json!({}))
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let reason = ben_socket.wait_disconnect(Duration::from_secs(5)).await;
    assert_eq!(reason.as_deref(), Some("io server disconnect"));
}

#[tokio::test]
async fn a_node_on_redis_refuses_to_start_on_what_only_one_node_has() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huddle"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUDDLE_DATA_DIR", dir.path())
        .env(
            "HUDDLE_HTTP_ADDR",
            format!("127.0.0.1:{}", free_loopback_port().unwrap()),
        )
        .env("HUDDLE_REDIS_URL", "redis://127.0.0.1:1/")
        .env("HUDDLE_NODE_ID", "n1")
        .output()
        .expect("huddle runs");
    assert!(!out.status.success(), "it must not start on the embedded database");
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("MONGODB_URI") && said.contains("HUDDLE_REDIS_URL"),
        "the refusal names the setting to give: {said}"
    );
}

#[tokio::test]
async fn sign_in_attempts_spread_over_the_nodes_count_as_one() {
    let cluster = Cluster::start_with(3, &[("HUDDLE_RATE_LIMIT_PER_ACCOUNT", "4")]).await;
    let ann = cluster.signed_up(0, "ann").await;
    let wrong = json!({ "email": ann.email, "password": "not the password at all" });
    for attempt in 0..4 {
        let node = Client::new(cluster.nodes[attempt % 3].url.clone());
        let r = node.post("/api/v1/auth/login", &wrong).await;
        assert_eq!(r.status, 401, "attempt {attempt} on node {}: {r:?}", attempt % 3 + 1);
    }
    // One node alone would have counted only two of them.
    for node in &cluster.nodes {
        let node = Client::new(node.url.clone());
        let r = node.post("/api/v1/auth/login", &wrong).await;
        assert_eq!(r.status, 429, "the fifth attempt, on any node: {r:?}");
    }
}

#[tokio::test]
async fn shared_counters_fall_back_to_the_nodes_own_while_redis_is_away() {
    use huddle::auth::rate_limit::{RateLimiter, SharedCounters};
    let port = free_loopback_port().unwrap();
    let redis = redis_server(port);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let connection = redis::aio::ConnectionManager::new(client).await.unwrap();
    let window = Duration::from_secs(60);
    let one = RateLimiter::new(window).shared(SharedCounters::new(connection.clone(), "t"));
    let other = RateLimiter::new(window).shared(SharedCounters::new(connection, "t"));
    let now = std::time::Instant::now();
    one.hit("k", 2, now).await.expect("first");
    other.hit("k", 2, now).await.expect("second, on the other limiter");
    let wait = one.hit("k", 2, now).await.expect_err("the third, counted in Redis");
    assert!(wait > Duration::from_secs(50) && wait <= window, "{wait:?}");
    drop(redis);
    // Redis is gone: each limiter counts on its own, from nothing, and still limits.
    one.hit("k", 2, now).await.expect("first on its own");
    one.hit("k", 2, now).await.expect("second on its own");
    assert!(one.hit("k", 2, now).await.is_err(), "the third on its own");
}

/// The next `presence` event `socket` gets: whose, and which status.
async fn presence(socket: &mut sio::SioClient, within: Duration) -> (String, String) {
    let event = socket.next_within("presence", within).await;
    (
        event["userId"].as_str().unwrap_or_default().to_owned(),
        event["status"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_user_on_two_nodes_is_online_until_both_close_and_a_killed_nodes_users_go_offline() {
    let mut cluster = Cluster::start(3).await;
    let ann = cluster.signed_up(0, "ann").await;
    let ben = cluster.signed_up(1, "ben").await;
    friends_with_chat(&ann, &ben).await;
    let mut ann_socket = cluster.socket(0, &ann).await;
    let ben_id = ben.user_id.clone();
    let online = (ben_id.clone(), "online".to_owned());
    let offline = (ben_id.clone(), "offline".to_owned());
    let quiet = Duration::from_millis(600);

    let ben_on_2 = cluster.socket(1, &ben).await;
    assert_eq!(presence(&mut ann_socket, Duration::from_secs(10)).await, online);
    let ben_on_3 = cluster.socket(2, &ben).await;
    ann_socket.expect_none_within("presence", quiet).await;
    ben_on_2.disconnect().await;
    ann_socket.expect_none_within("presence", quiet).await;
    ben_on_3.disconnect().await;
    assert_eq!(
        presence(&mut ann_socket, Duration::from_secs(10)).await,
        offline,
        "offline once his last socket, on another node, closed"
    );

    // Ben on node 3 only; node 3 is killed: the other nodes count him out.
    let _ben_on_3 = cluster.socket(2, &ben).await;
    assert_eq!(presence(&mut ann_socket, Duration::from_secs(10)).await, online);
    cluster.nodes[2].process.0.kill().expect("kill -9 node 3");
    assert_eq!(
        presence(&mut ann_socket, Duration::from_secs(20)).await,
        offline,
        "a dead node's users go offline once its heartbeat expires"
    );
}
