//! What one client can make the server hold: each attack runs against a whole server while
//! the process's resident memory (read from `/proc`) is sampled, and must stay within a
//! stated bound. The tests run one at a time (they share the process whose memory they
//! read), alone in this test binary.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Session, TestServer, rss_bytes};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: u64 = 1024 * 1024;

/// One attack at a time: they read the memory of the process they all run in.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples resident memory every 10 ms until dropped; `growth` is the peak over the
/// baseline taken at the start.
struct Sampler {
    baseline: u64,
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl Sampler {
    fn start() -> Self {
        let baseline = rss_bytes();
        let peak = Arc::new(AtomicU64::new(baseline));
        let done = Arc::new(AtomicBool::new(false));
        let (p, d) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { baseline, peak, done }
    }

    fn growth(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).saturating_sub(self.baseline)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// A request whose head and first body bytes were sent, then nothing more: the connection
/// stays open. `status` reports the response's status once one arrives (`None`: the
/// connection closed without one).
struct Stalled {
    status: tokio::task::JoinHandle<Option<u16>>,
    _writer: tokio::task::JoinHandle<Option<tokio::net::tcp::OwnedWriteHalf>>,
}

impl Stalled {
    /// Still waiting: no response and no close.
    fn held(&self) -> bool {
        !self.status.is_finished()
    }
}

/// The file part of a stalled form: of `content_type`, starting with `start`, declared
/// `len` bytes long, of which only `sent` are sent.
struct PartlySent<'a> {
    content_type: &'a str,
    start: &'a [u8],
    len: u64,
    sent: u64,
}

/// POSTs to `addr` + `path` a `multipart/form-data` body of `fields`, then `file`, and
/// stops after the bytes of the file it sends.
async fn stalled_multipart(
    addr: &str,
    path: &str,
    extra_headers: &[(&str, String)],
    fields: &[(String, String)],
    file: PartlySent<'_>,
) -> Stalled {
    let PartlySent {
        content_type: file_type,
        start: file_start,
        len: file_len,
        sent: send_of_file,
    } = file;
    const BOUNDARY: &str = "AttackBoundary7MA4YWxkTrZu0gW";
    let mut prefix = Vec::new();
    for (name, value) in fields {
        prefix.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    prefix.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
             Content-Type: {file_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    let suffix = format!("\r\n--{BOUNDARY}--\r\n");
    let length = prefix.len() as u64 + file_len + suffix.len() as u64;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {length}\r\n"
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let status = tokio::spawn(async move {
        let mut buf = vec![0u8; 256];
        let mut got = 0;
        loop {
            match read.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got += n,
            }
            let text = String::from_utf8_lossy(&buf[..got]);
            if let Some(line) = text.split("\r\n").next().filter(|_| text.contains("\r\n")) {
                return line.split(' ').nth(1).and_then(|s| s.parse().ok());
            }
            if got == buf.len() {
                return None;
            }
        }
    });
    let start = file_start.to_vec();
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await.ok()?;
        write.write_all(&prefix).await.ok()?;
        write.write_all(&start).await.ok()?;
        // The rest is made as it goes, one small chunk reused: the client holds no file.
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = start.len() as u64;
        while sent < send_of_file {
            let n = (send_of_file - sent).min(chunk.len() as u64) as usize;
            write.write_all(&chunk[..n]).await.ok()?;
            sent += n as u64;
        }
        Some(write)
    });
    Stalled {
        status,
        _writer: writer,
    }
}

/// Waits for `stalled`'s attackers to be refused or held; returns how many are still held.
async fn held_after(stalled: &[Stalled], wait: Duration) -> usize {
    tokio::time::sleep(wait).await;
    stalled.iter().filter(|s| s.held()).count()
}

fn host_and_path(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap_or(rest.len());
    let path = if slash == rest.len() {
        "/".to_string()
    } else {
        rest[slash..].to_string()
    };
    (rest[..slash].to_string(), path)
}

async fn start_upload(who: &Session, size: u64) -> Value {
    let r = who
        .client
        .post_auth(
            "/api/v1/media/uploads",
            &who.access,
            &json!({ "kind": "avatar", "fileName": "me.png", "contentType": "image/png", "size": size }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[tokio::test]
async fn stalled_form_uploads_into_the_embedded_store_hold_at_most_its_buffer() {
    let _one = ONE_AT_A_TIME.lock().await;
    const FILE: u64 = 36 * MIB;
    const BUFFER: u64 = 40 * MIB;
    let server = TestServer::start_with(|c| {
        c.media_max_image_bytes = FILE;
        c.media_max_video_bytes = FILE;
        c.media_max_audio_bytes = FILE;
        c.media_max_file_bytes = FILE;
        c.embedded_s3_post_buffer_bytes = BUFFER;
        c.upload_idle_timeout_secs = 12;
    })
    .await;
    let ada = server.signed_up("ada").await;
    let mut tickets = Vec::new();
    for _ in 0..7 {
        tickets.push(start_upload(&ada, FILE).await);
    }
    let legit = tickets.pop().unwrap();

    let memory = Sampler::start();
    let mut attackers = Vec::new();
    for ticket in &tickets {
        let (addr, path) = host_and_path(ticket["form"]["url"].as_str().unwrap());
        let fields: Vec<(String, String)> = ticket["form"]["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let file = PartlySent {
            content_type: "image/png",
            start: PNG,
            len: FILE,
            sent: FILE - MIB,
        };
        attackers.push(stalled_multipart(&addr, &path, &[], &fields, file).await);
    }
    // One form fits the buffer and is read; the others wait, then are told to slow down.
    let held = held_after(&attackers, Duration::from_secs(7)).await;
    let growth = memory.growth();
    eprintln!(
        "6 stalled 36 MiB form uploads: {held} held, memory grew by {} MiB",
        growth / MIB
    );
    assert_eq!(held, 1, "only what fits the store's buffer is taken in");
    assert!(
        growth < BUFFER + 16 * MIB,
        "memory grew by {} MiB with a {} MiB buffer",
        growth / MIB,
        BUFFER / MIB
    );
    let (holder, refused): (Vec<Stalled>, Vec<Stalled>) = attackers.into_iter().partition(Stalled::held);
    for a in refused {
        let status = a.status.await.unwrap();
        assert!(matches!(status, None | Some(503)), "a waiting form got {status:?}");
    }

    // The one it holds stops sending: it is dropped once the idle timeout passes.
    let mut holder = holder.into_iter().next().unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), &mut holder.status).await;
    assert!(
        ended.is_ok(),
        "a form that stopped sending was kept past the idle timeout"
    );

    // Room again: an honest upload goes through and completes.
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in legit["form"]["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_string());
    }
    let mut bytes = PNG.to_vec();
    bytes.resize(FILE as usize, 7);
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("me.png"));
    let r = reqwest::Client::new()
        .post(legit["form"]["url"].as_str().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = legit["_id"].as_str().unwrap();
    let done = ada
        .client
        .post_auth(&format!("/api/v1/media/uploads/{id}/complete"), &ada.access, &json!({}))
        .await;
    assert_eq!(done.status, 201, "{done:?}");
    drop(holder);
    server.stop().await;
}

#[tokio::test]
async fn stalled_streamed_uploads_hold_at_most_their_places() {
    let _one = ONE_AT_A_TIME.lock().await;
    const PLACES: usize = 4;
    let server = TestServer::start_with(|c| {
        c.max_streamed_uploads = PLACES;
        c.max_streamed_uploads_per_user = 2;
        c.upload_idle_timeout_secs = 10;
    })
    .await;
    let mut people = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        people.push(server.signed_up(name).await);
    }
    let addr = server.addr.to_string();
    let fields = [("kind".to_string(), "avatar".to_string())];

    let memory = Sampler::start();
    let mut attackers = Vec::new();
    for who in &people {
        for _ in 0..4 {
            let auth = [("Authorization", format!("Bearer {}", who.access))];
            // Almost a whole 8 MiB part each, of a 9 MiB avatar, then silence.
            let file = PartlySent {
                content_type: "image/png",
                start: PNG,
                len: 9 * MIB,
                sent: 8 * MIB - 64 * 1024,
            };
            attackers.push(stalled_multipart(&addr, "/api/v1/media", &auth, &fields, file).await);
        }
    }
    // Two per user pass the per-user cap; of those six, four get places and two wait,
    // then are refused as overloaded.
    let held = held_after(&attackers, Duration::from_secs(7)).await;
    let growth = memory.growth();
    eprintln!(
        "12 stalled streamed uploads: {held} held, memory grew by {} MiB",
        growth / MIB
    );
    assert_eq!(held, PLACES, "only as many uploads as there are places are taken in");
    assert!(
        growth < PLACES as u64 * 8 * MIB + 16 * MIB,
        "memory grew by {} MiB with {PLACES} places of 8 MiB",
        growth / MIB
    );
    let (holders, refused): (Vec<Stalled>, Vec<Stalled>) = attackers.into_iter().partition(Stalled::held);
    for a in refused {
        let status = a.status.await.unwrap();
        assert!(
            matches!(status, None | Some(429) | Some(503)),
            "a refused upload got {status:?}"
        );
    }
    // The places come back once the silent uploads pass the idle timeout.
    for mut a in holders {
        let ended = tokio::time::timeout(Duration::from_secs(20), &mut a.status).await;
        assert!(ended.is_ok(), "a streamed upload that stopped sending was kept");
    }
    let mut bytes = PNG.to_vec();
    bytes.resize(1024 * 1024, 1);
    let file = reqwest::multipart::Part::bytes(bytes)
        .file_name("me.png")
        .mime_str("image/png")
        .unwrap();
    let r = common::post_media(&server, &people[0], vec![("kind", "avatar".into())], file)
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.stop().await;
}

/// Opens an Engine.IO long-polling session; the response's status.
async fn polling_handshake(http: &reqwest::Client, server: &TestServer) -> u16 {
    http.get(server.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn unauthenticated_polling_handshakes_are_limited_per_address() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(|c| {
        c.socket_handshakes_per_ip = huddle::Config::default().socket_handshakes_per_ip;
    })
    .await;
    let allowed = server.state.config.socket_handshakes_per_ip as usize;
    let http = reqwest::Client::new();
    assert_eq!(polling_handshake(&http, &server).await, 200);

    let memory = Sampler::start();
    let statuses: Vec<u16> = futures::future::join_all((0..32).map(|_| {
        let http = http.clone();
        let server = &server;
        async move {
            let mut seen = Vec::new();
            for _ in 0..150 {
                seen.push(polling_handshake(&http, server).await);
            }
            seen
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let growth = memory.growth();
    let opened = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    eprintln!(
        "4800 unauthenticated handshakes from one address: {opened} opened, {limited} limited, \
         memory grew by {} KiB",
        growth / 1024
    );
    assert_eq!(opened + limited, statuses.len(), "only 200 or 429: {statuses:?}");
    assert!(opened < allowed, "{opened} sessions opened, {allowed} a minute allowed");
    assert!(growth < 16 * MIB, "memory grew by {} MiB", growth / MIB);
    let refused = http
        .get(server.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    // Another address is not held back by this one, and a signed-in socket still connects.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    assert_eq!(polling_handshake(&other, &server).await, 200);
    server.stop().await;
}

/// A signed-in Engine.IO polling session: its `sid`, after the Socket.IO connect.
async fn polling_socket(http: &reqwest::Client, server: &TestServer, token: &str) -> String {
    let open = http
        .get(server.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = handshake["sid"].as_str().unwrap().to_string();
    let url = server.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let r = http
        .post(&url)
        .body(format!("40{}", json!({ "token": token })))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let packets = http.get(&url).send().await.unwrap().text().await.unwrap();
        if packets.split('\u{1e}').any(|p| p.starts_with("40{")) {
            return sid;
        }
        if packets.split('\u{1e}').any(|p| p == "2") {
            let _ = http.post(&url).body("3").send().await;
        }
        seen.push(packets);
    }
    panic!("no Socket.IO connect on a polling session: {seen:?}")
}

#[tokio::test]
async fn unfinished_binary_events_hold_nothing_once_refused() {
    use base64::Engine as _;
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let ada_id = mongodb::bson::oid::ObjectId::parse_str(&ada.user_id).unwrap();
    let http = reqwest::Client::new();
    let mut sids = Vec::new();
    for _ in 0..20 {
        sids.push(polling_socket(&http, &server, &ada.access).await);
    }
    assert_eq!(server.state.realtime.sockets_of(ada_id), 20);
    // One event announcing 150 binary attachments, then 150 frames of 47 KiB each (64 KiB
    // as base64), on each of the 20 sockets.
    let placeholders: Vec<Value> = (0..150).map(|n| json!({ "_placeholder": true, "num": n })).collect();
    let mut event = vec![json!("message:send")];
    event.extend(placeholders);
    let announce = format!("4{}-{}", 5150, serde_json::to_string(&event).unwrap());
    let frame = format!(
        "b{}",
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; 47 * 1024])
    );

    let memory = Sampler::start();
    futures::future::join_all(sids.iter().map(|sid| {
        let http = http.clone();
        let url = server.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
        let (announce, frame) = (announce.clone(), frame.clone());
        async move {
            let _ = http.post(&url).body(announce).send().await;
            for _ in 0..150 {
                let _ = http.post(&url).body(frame.clone()).send().await;
            }
        }
    }))
    .await;
    let growth = memory.growth();
    eprintln!("20 sockets x 150 binary frames: memory grew by {} KiB", growth / 1024);
    assert!(growth < 16 * MIB, "memory grew by {} MiB", growth / MIB);
    // Each socket that announced too many attachments was dropped.
    common::eventually(|| async { (server.state.realtime.sockets_of(ada_id) == 0).then_some(()) }).await;
    server.stop().await;
}
