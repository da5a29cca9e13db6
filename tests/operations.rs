//! Operations baseline: health, readiness, metrics, security headers, CORS, body limits,
//! panics, API docs, SendGrid delivery, restarts on the same data dir, and the binary's
//! start-up, logs and graceful shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::routing::get;
use common::{PASSWORD, TestServer, register_body, test_config};
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn health_ready_metrics_and_headers() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c.get("/health", None).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "status": "ok" })));
    let r = c.get("/ready", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({ "status": "ready", "mongodb": "ok", "s3": "ok" }));

    for (name, expected) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(r.headers[name], expected, "{name}");
    }
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        !r.headers.contains_key("strict-transport-security"),
        "HSTS only when configured"
    );

    let r = c.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = r.body.as_str().unwrap();
    assert!(text.contains("huddle_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/ready\""), "{text}");

    let r = c.get("/no/such/route", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    server.stop().await;
}

#[tokio::test]
async fn made_up_http_methods_do_not_grow_the_metrics() {
    let server = TestServer::start().await;
    let c = server.client();
    // Only the series made-up methods could add (as `other`): the other tests in this
    // binary share the process-wide recorder and add series of their own meanwhile.
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("huddle_http_requests_total") && l.contains("method=\"other\""))
            .count()
    };
    let http = reqwest::Client::new();
    let url = c.url("/health");
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{i}Y").as_bytes()).unwrap();
        http.request(method, &url).send().await.unwrap();
    }
    let text = c.get("/metrics", None).await.body.as_str().unwrap().to_string();
    assert!(!text.contains("method=\"X1Y\""), "a made-up method became a label");
    assert!(text.contains("method=\"other\""), "{text}");
    let before = series(&text);
    for i in 300..600 {
        let method = reqwest::Method::from_bytes(format!("X{i}Y").as_bytes()).unwrap();
        http.request(method, &url).send().await.unwrap();
    }
    let text = c.get("/metrics", None).await.body.as_str().unwrap().to_string();
    assert!(series(&text) <= before + 1, "{} series after {before}", series(&text));
    server.stop().await;
}

/// The server's end of the TCP connection whose client end is `client`: one of this
/// process's own descriptors (the server runs in the test process).
fn server_end_of(server_port: u16, client_port: u16) -> Option<i32> {
    use nix::libc;
    let port_of = |fd: i32, peer: bool| -> Option<u16> {
        // SAFETY: the address is written into storage we own, of the length we pass.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let ptr = (&raw mut storage).cast::<libc::sockaddr>();
        let rc = unsafe {
            if peer {
                libc::getpeername(fd, ptr, &mut len)
            } else {
                libc::getsockname(fd, ptr, &mut len)
            }
        };
        if rc != 0 || i32::from(storage.ss_family) != libc::AF_INET {
            return None;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let v4 = unsafe { *(&raw const storage).cast::<libc::sockaddr_in>() };
        Some(u16::from_be(v4.sin_port))
    };
    std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&fd| port_of(fd, false) == Some(server_port) && port_of(fd, true) == Some(client_port))
}

#[tokio::test]
async fn acks_are_not_held_back_by_nagle_every_connection_has_tcp_nodelay() {
    use nix::libc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let mut client = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: huddle\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let fd = server_end_of(server.addr.port(), client.local_addr().unwrap().port())
        .expect("the server's end of the connection is a descriptor of this process");
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `on`.
    let rc = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, (&raw mut on).cast(), &mut len) };
    assert_eq!(rc, 0);
    assert_eq!(on, 1, "the server's connection has Nagle's algorithm on");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn slowloris_half_sent_requests_are_closed_and_shutdown_is_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| {
        c.http_header_timeout_secs = 1;
        c.shutdown_grace_secs = 2;
    })
    .await;
    let addr = server.addr;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: huddle\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // The server still answers others while they dribble.
    let r = server.client().get("/health", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Each half-sent request is closed once its head is overdue.
    let started = std::time::Instant::now();
    for s in &mut slow {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("a half-sent request was still open after {:?}", started.elapsed()),
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // A request whose body never comes does not hold shutdown past the grace period.
    let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: huddle\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .expect("shutdown waited on a stuck request");
    assert!(stopping.elapsed() < Duration::from_secs(8), "{:?}", stopping.elapsed());
    drop(stuck);
}

#[tokio::test]
async fn the_embedded_database_killed_mid_run_comes_back_with_everything_acked() {
    let server = TestServer::start_with(|c| c.mongodb_uri = None).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = common::friends_with_chat(&ada, &bob).await;
    let post = |n: usize| {
        let (client, access, chat) = (ada.client.clone(), ada.access.clone(), chat.clone());
        async move {
            client
                .post_auth(
                    &format!("/api/v1/chats/{chat}/messages"),
                    &access,
                    &json!({ "content": format!("m{n}"), "clientMsgId": format!("c{n}") }),
                )
                .await
        }
    };
    for n in 1..=20 {
        assert_eq!(post(n).await.status, 201);
    }
    let first = server.embedded_db_pid().expect("the server started its own database");
    let killed = Command::new("kill").args(["-9", &first.to_string()]).status().unwrap();
    assert!(killed.success());

    // Within a bounded time the database is back (a new process) and sends succeed again.
    let started = std::time::Instant::now();
    let mut n = 21;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "the database never came back"
        );
        if post(n).await.status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    n += 1;
    assert_eq!(post(n).await.status, 201);
    let second = server.embedded_db_pid().expect("a database runs again");
    assert_ne!(first, second, "a new process");
    let r = server.client().get("/health", None).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "status": "ok" })));

    // Everything acknowledged before the kill is there, in order, with no gap.
    let history = bob
        .client
        .get(&format!("/api/v1/chats/{chat}/messages?limit=100"), Some(&bob.access))
        .await;
    let contents: Vec<&str> = history.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{history:?}"))
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected, "seq order, nothing lost");
    server.stop().await;
}

#[tokio::test]
async fn hsts_cors_allowlist_and_body_limit() {
    let server = TestServer::start_with(|c| c.hsts = true).await;
    let c = server.client();
    let r = c.get("/health", None).await;
    assert!(
        r.headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );

    let preflight = |origin: &'static str| {
        let c = c.clone();
        async move {
            c.send(
                c.http
                    .request(reqwest::Method::OPTIONS, c.url("/api/v1/auth/login"))
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type"),
            )
            .await
        }
    };
    let allowed = preflight("http://localhost:5173").await;
    assert_eq!(allowed.headers["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    let denied = preflight("https://evil.example").await;
    assert!(
        !denied.headers.contains_key("access-control-allow-origin"),
        "{denied:?}"
    );

    let big = "x".repeat(70 * 1024);
    let r = c
        .post("/api/v1/auth/login", &json!({ "email": big, "password": PASSWORD }))
        .await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"), "{r:?}");
    let r = c
        .send(
            c.http
                .post(c.url("/api/v1/auth/login"))
                .header("content-type", "text/plain")
                .body("hi"),
        )
        .await;
    assert_eq!(r.status, 415);
    server.stop().await;
}

async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_and_the_server_lives_on() {
    let server = TestServer::start().await;
    let router = huddle::http::with_middleware(axum::Router::new().route("/boom", get(boom)), server.state.clone());
    let response = router
        .oneshot(
            axum::http::Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({ "error": { "code": "internal", "message": "internal server error" } })
    );
    assert_eq!(server.client().get("/health", None).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn openapi_document_and_offline_docs_page() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        r.body["openapi"]
    );
    let paths = r.body["paths"].as_object().unwrap();
    let expected = [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/verify", "post"),
        ("/api/v1/auth/send-otp", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/forgot-password", "post"),
        ("/api/v1/auth/reset-password", "post"),
        ("/api/v1/auth/password", "patch"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/search", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/users/non-friends", "get"),
        ("/api/v1/friends", "get"),
        ("/api/v1/friends/requests", "get"),
        ("/api/v1/friends/requests", "post"),
        ("/api/v1/friends/requests/{id}/accept", "post"),
        ("/api/v1/friends/requests/{id}/reject", "post"),
        ("/api/v1/friends/requests/{id}", "delete"),
        ("/api/v1/friends/{user_id}", "delete"),
        ("/api/v1/chats", "get"),
        ("/api/v1/chats", "post"),
        ("/api/v1/chats/search", "get"),
        ("/api/v1/chats/{id}", "get"),
        ("/api/v1/chats/{id}/pin", "post"),
        ("/api/v1/chats/{id}/unpin", "post"),
        ("/api/v1/chats/{id}/read", "post"),
        ("/api/v1/chats/{id}/starred-messages", "get"),
        ("/api/v1/chats/{id}/messages", "get"),
        ("/api/v1/chats/{id}/messages", "post"),
        ("/api/v1/messages/{id}", "patch"),
        ("/api/v1/messages/{id}", "delete"),
        ("/api/v1/messages/{id}/star", "post"),
        ("/api/v1/messages/{id}/unstar", "post"),
        ("/api/v1/groups", "get"),
        ("/api/v1/groups", "post"),
        ("/api/v1/groups/{id}", "get"),
        ("/api/v1/groups/{id}", "patch"),
        ("/api/v1/groups/{id}/invite", "post"),
        ("/api/v1/groups/{id}/accept", "post"),
        ("/api/v1/groups/{id}/reject", "post"),
        ("/api/v1/groups/{id}/leave", "post"),
        ("/api/v1/groups/{id}/members/{user_id}", "delete"),
        ("/api/v1/groups/{id}/admins/{user_id}", "post"),
        ("/api/v1/groups/{id}/admins/{user_id}", "delete"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/notifications/{id}/read", "post"),
        ("/api/v1/notifications/read-all", "post"),
        ("/api/v1/calls", "get"),
        ("/api/v1/calls", "post"),
        ("/api/v1/calls/ice-servers", "get"),
        ("/api/v1/calls/{id}", "get"),
        ("/api/v1/calls/{id}/end", "post"),
    ];
    for (p, m) in expected {
        assert!(
            paths.get(p).and_then(|item| item.get(m)).is_some(),
            "{m} {p} missing from OpenAPI"
        );
    }
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());

    let page = c.send(c.http.get(c.url("/docs/"))).await;
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Everything the page loads is served locally.
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let r = c.send(c.http.get(c.url(asset))).await;
        assert_eq!(r.status, 200, "{asset}");
    }
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything remote"
    );
    server.stop().await;
}

#[tokio::test]
async fn sendgrid_receives_the_verification_mail_in_its_wire_format() {
    let sendgrid = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", "Bearer SG.test-key"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&sendgrid)
        .await;
    let uri = sendgrid.uri();
    let server = TestServer::start_with(move |c| {
        c.sendgrid_api_key = Some(huddle::config::Secret::new("SG.test-key"));
        c.sendgrid_base_url = uri;
        c.mail_from = "hello@huddle.example".into();
    })
    .await;
    let c = server.client();
    let email = "sg@example.com";
    assert_eq!(
        c.post("/api/v1/auth/register", &register_body("sguser", email))
            .await
            .status,
        202
    );

    let mut request = None;
    for _ in 0..200 {
        if let Some(r) = sendgrid.received_requests().await.and_then(|r| r.into_iter().next()) {
            request = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let request = request.expect("SendGrid was called");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["personalizations"][0]["to"][0]["email"], email);
    assert_eq!(body["from"]["email"], "hello@huddle.example");
    assert_eq!(body["subject"], "Verify your Huddle email");
    assert_eq!(body["content"][0]["type"], "text/plain");
    assert_eq!(body["content"][1]["type"], "text/html");
    let text = body["content"][0]["value"].as_str().unwrap();
    let otp: String = text
        .split(|ch: char| !ch.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("six-digit code in the text")
        .to_string();
    assert!(
        server.mails_to(email).is_empty(),
        "nothing goes to the outbox when SendGrid is set"
    );

    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": otp }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn accounts_and_sessions_survive_a_restart_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    // The real embedded default: no MONGODB_URI, no S3 bucket, a generated JWT secret.
    let config = huddle::Config {
        data_dir: dir.path().to_path_buf(),
        cookie_secure: false,
        media_udp_addr: ([127, 0, 0, 1], 0).into(),
        ..huddle::Config::default()
    };
    let first = TestServer::start_config(config.clone()).await.expect("first start");
    assert!(dir.path().join("db").is_dir() && dir.path().join("media").is_dir());
    assert!(dir.path().join("jwt-secret").is_file());
    let ada = first.signed_up("ada").await;

    // A second server on the same data dir stops with a clear message.
    let err = TestServer::start_config(config.clone())
        .await
        .err()
        .expect("second server refused");
    assert!(err.to_string().contains("in use by another Huddle server"), "{err}");
    first.stop().await;

    let second = TestServer::start_config(config).await.expect("restart");
    let c = second.client();
    let r = c.get("/ready", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    // The session (and the signing key) survived: the old access token and refresh work.
    assert_eq!(c.get("/api/v1/users/me", Some(&ada.access)).await.status, 200);
    let r = c
        .post("/api/v1/auth/refresh", &json!({ "refreshToken": ada.refresh }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = c
        .post(
            "/api/v1/auth/login",
            &json!({ "email": ada.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user"]["username"], "ada");
    second.stop().await;
}

/// The `huddle` binary set to serve on `port` from `dir`, on the tests' database, with a
/// clean environment; the caller adds what it needs and spawns it.
async fn huddle_binary(dir: &std::path::Path, port: u16) -> Command {
    let config = test_config(dir).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_huddle"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("HUDDLE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("HUDDLE_DATA_DIR", dir)
        .env("MONGODB_URI", config.mongodb_uri.as_ref().unwrap().expose())
        .env("HUDDLE_MONGODB_DB", &config.mongodb_db)
        .env("HUDDLE_COOKIE_SECURE", "false")
        .env("HUDDLE_MEDIA_UDP_ADDR", "127.0.0.1:0");
    command
}

/// Waits (30 s at most) until the server answers `path` with 200.
async fn answers(c: &common::Client, path: &str) {
    for _ in 0..600 {
        if c.http.get(c.url(path)).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never answered {path} with 200");
}

#[tokio::test]
async fn the_binary_logs_json_without_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = huddle::embedded::free_loopback_port().unwrap();
    let mut child = huddle_binary(dir.path(), port)
        .await
        .env("HUDDLE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("huddle starts");
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());

    let c = common::Client::new(format!("http://127.0.0.1:{port}"));
    answers(&c, "/health").await;
    assert_eq!(c.get("/ready", None).await.status, 200);

    let email = "logs@example.com";
    assert_eq!(
        c.post("/api/v1/auth/register", &register_body("logs", email))
            .await
            .status,
        202
    );
    let mail = common::wait_mail_in(&dir.path().join("outbox"), email, 1).await;
    let otp = mail["otp"]
        .as_str()
        .expect("verification mail carries the code")
        .to_string();
    let r = c
        .post(
            "/api/v1/auth/verify",
            &json!({ "email": email, "password": PASSWORD, "otp": otp, "includeRefreshToken": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let access = r.body["accessToken"].as_str().unwrap().to_string();
    let refresh = r.body["refreshToken"].as_str().unwrap().to_string();
    let r = c
        .post("/api/v1/auth/login", &json!({ "email": email, "password": PASSWORD }))
        .await;
    assert_eq!(r.status, 200);
    // Query strings stay out of the request log.
    assert_eq!(
        c.get(&format!("/api/v1/users/me?token={access}"), Some(&access))
            .await
            .status,
        200
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let lines = lines.join().unwrap();
    assert!(!lines.is_empty());
    for line in &lines {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
        for secret in [PASSWORD, otp.as_str(), access.as_str(), refresh.as_str()] {
            assert!(!line.contains(secret), "secret in log line: {line}");
        }
    }
    let components: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["component"].as_str().map(str::to_string))
        .collect();
    for component in ["database", "media", "email", "assistant"] {
        assert!(
            components.iter().any(|c| c == component),
            "no start-up line for {component}: {lines:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("/api/v1/users/me")),
        "requests are logged: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("shutdown requested")), "{lines:?}");
}

/// The server and this test share one runtime thread. A password hash run on that thread
/// would hold up everything else for as long as it runs, so /health could only answer once
/// the hashes ahead of it were done; run off it (as it is), /health answers while nearly all
/// of 50 logins still wait for theirs.
#[tokio::test(flavor = "current_thread")]
async fn health_answers_while_fifty_logins_hash() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let c = server.client();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let (c, email, done) = (c.clone(), ada.email.clone(), done.clone());
            tokio::spawn(async move {
                let r = c
                    .post("/api/v1/auth/login", &json!({ "email": email, "password": PASSWORD }))
                    .await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r.status
            })
        })
        .collect();
    // Let every login reach the server and queue for its hash.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    let before = done.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(c.get("/health", None).await.status, 200);
    let finished_before_health = done.load(std::sync::atomic::Ordering::SeqCst);
    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
    println!("logins done when /health was asked: {before}; when it answered: {finished_before_health} of 50");
    assert!(
        finished_before_health < 10,
        "/health waited for {finished_before_health} of 50 logins: hashing must not block the async workers"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_web_client_and_the_postman_collection_are_served() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c.get("/", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let page = r.body.as_str().expect("html");
    assert!(page.contains("<script type=\"module\" src=\"/js/app.js\">"), "{page}");
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        csp.contains(&server.state.blobs.origin()),
        "uploads may go to the store: {csp}"
    );
    let permissions = r.headers["permissions-policy"].to_str().unwrap();
    assert!(permissions.contains("camera=(self)") && permissions.contains("microphone=(self)"));

    // socket.io-client, built from npm by the bootstrap, is served by the server itself.
    let r = c.get("/vendor/socket.io.esm.min.js", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.as_str().unwrap().contains("Socket.IO v4"));
    for asset in ["/js/app.js", "/js/call.js", "/styles.css"] {
        assert_eq!(c.get(asset, None).await.status, 200, "{asset}");
    }
    // Nothing else is served: unknown paths are the API's JSON 404.
    // An escape from the folder (slashes encoded, so no client normalizes it away; decoded,
    // it would reach the repository's Cargo.toml) finds nothing.
    let r = c.get("/vendor/..%2f..%2f..%2fCargo.toml", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{r:?}");
    let r = c.get("/api/v1/nope", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    let r = c.get("/api/v1/postman.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["info"]["schema"],
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    );
    let folders: Vec<&str> = r.body["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for tag in ["auth", "chats", "messages", "calls", "media", "ai"] {
        assert!(folders.contains(&tag), "{tag} in {folders:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_burst_of_sign_ups_gives_its_hashing_memory_back() {
    // Each sign-up hashes a password with argon2id (19 MiB); a hundred of them must not leave
    // their blocks in the allocator's arenas (it left an idle server at 660 MiB).
    let dir = tempfile::tempdir().unwrap();
    let port = huddle::embedded::free_loopback_port().unwrap();
    let mut child = huddle_binary(dir.path(), port)
        .await
        .env("HUDDLE_RATE_LIMIT_PER_IP", "100000")
        .env("HUDDLE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("huddle starts");
    let c = common::Client::new(format!("http://127.0.0.1:{port}"));
    answers(&c, "/ready").await;
    let before = huddle::allocator::resident_kib(child.id());
    for batch in (0..100).collect::<Vec<_>>().chunks(16) {
        let sign_ups = batch.iter().map(|i| {
            let body = register_body(&format!("burst{i}"), &format!("burst{i}@example.com"));
            let c = &c;
            async move { c.post("/api/v1/auth/register", &body).await.status }
        });
        for status in futures::future::join_all(sign_ups).await {
            assert_eq!(status, 202);
        }
    }
    let after = huddle::allocator::resident_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("RSS before the burst {} MiB, after {} MiB", before / 1024, after / 1024);
    assert!(
        after < before + 64 * 1024,
        "100 sign-ups left the server {} MiB larger ({} -> {} MiB)",
        (after.saturating_sub(before)) / 1024,
        before / 1024,
        after / 1024
    );
}
