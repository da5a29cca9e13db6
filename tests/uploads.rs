//! Media uploads against the embedded S3-compatible store over real HTTP: the presigned POST
//! flow from a plain HTTP client, the store's own refusals, the checks at completion, and
//! download URLs for members only.

mod common;

use std::time::Duration;

use common::{Session, TestServer, friends_with_chat};
use serde_json::{Value, json};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89 pixels";

async fn start_upload(who: &Session, body: Value) -> common::Reply {
    who.client.post_auth("/api/v1/media/uploads", &who.access, &body).await
}

/// POSTs the form's fields, then the file, straight to the store, as a browser would.
async fn post_to_store(ticket: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in ticket["form"]["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_string());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("upload"));
    reqwest::Client::new()
        .post(ticket["form"]["url"].as_str().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn complete(who: &Session, ticket: &Value) -> common::Reply {
    let id = ticket["_id"].as_str().unwrap();
    who.client
        .post_auth(&format!("/api/v1/media/uploads/{id}/complete"), &who.access, &json!({}))
        .await
}

#[tokio::test]
async fn an_attachment_goes_straight_to_the_store_and_members_download_it() {
    let server = TestServer::start_with(|c| c.download_url_ttl_secs = 2).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;

    let r = start_upload(
        &ada,
        json!({ "kind": "attachment", "chatId": chat, "fileName": "dot.png", "contentType": "image/png", "size": PNG.len() }),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let ticket = r.body.clone();
    let key = ticket["form"]["fields"]["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("attachments/{}/", ada.user_id)),
        "the server picks the key: {key}"
    );
    assert!(!key.contains("dot.png"));

    let stored = post_to_store(&ticket, PNG.to_vec()).await;
    assert!(stored.status().is_success(), "{:?}", stored.text().await);
    let r = complete(&ada, &ticket).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        (r.body["type"].as_str(), r.body["size"].as_u64()),
        (Some("image"), Some(PNG.len() as u64))
    );
    let media = r.body["_id"].as_str().unwrap().to_string();
    // Completing again returns the same media.
    assert_eq!(complete(&ada, &ticket).await.body["_id"], media.as_str());

    // The attachment travels in a message.
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/messages"),
            &ada.access,
            &json!({ "type": "image", "attachments": [media] }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["attachments"], json!([media]));

    // Bob, a member, downloads it byte for byte; Eve, an outsider, is told it does not exist.
    let r = bob
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&bob.access))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let url = r.body["url"].as_str().unwrap().to_string();
    let got = reqwest::get(&url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
    let r = eve
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&eve.access))
        .await;
    assert_eq!(r.status, 404, "{r:?}");

    // The URL stops working once it expires.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = reqwest::get(&url).await.unwrap();
    assert_eq!(expired.status(), 403, "an expired URL is refused by the store");
    server.stop().await;
}

#[tokio::test]
async fn the_store_and_the_server_refuse_what_was_not_declared() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let declare = |size: usize, content_type: &str| json!({ "kind": "attachment", "chatId": chat, "fileName": "x", "contentType": content_type, "size": size });

    // One byte over the declared size: the store refuses it.
    let ticket = start_upload(&ada, declare(PNG.len(), "image/png")).await.body;
    let mut longer = PNG.to_vec();
    longer.push(0);
    let r = post_to_store(&ticket, longer).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = complete(&ada, &ticket).await;
    assert_eq!((r.status, r.code()), (409, "not_uploaded"), "{r:?}");

    // A declared image whose bytes are not an image: refused at completion, and gone.
    let fake = b"MZ\x90\0\x03\0\0\0 this is a program, not a picture".to_vec();
    let ticket = start_upload(&ada, declare(fake.len(), "image/png")).await.body;
    assert!(post_to_store(&ticket, fake).await.status().is_success());
    let r = complete(&ada, &ticket).await;
    assert_eq!((r.status, r.code()), (409, "type_mismatch"), "{r:?}");
    let r = complete(&ada, &ticket).await;
    assert_eq!(r.code(), "not_uploaded", "the refused object was deleted: {r:?}");

    // Someone else's upload cannot be completed; outsiders cannot upload into a chat.
    let ticket = start_upload(&ada, declare(PNG.len(), "image/png")).await.body;
    assert_eq!(complete(&bob, &ticket).await.status, 404);
    assert_eq!(start_upload(&eve, declare(10, "image/png")).await.status, 404);

    // Limits per type, avatars must be images, names and types must be sane.
    let r = start_upload(&ada, declare(10 * 1024 * 1024 + 1, "image/jpeg")).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(
        start_upload(&ada, declare(20 * 1024 * 1024, "application/pdf"))
            .await
            .status,
        201
    );
    let r = start_upload(
        &ada,
        json!({ "kind": "avatar", "fileName": "me.pdf", "contentType": "application/pdf", "size": 10 }),
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    for bad in [
        declare(0, "image/png"),
        declare(10, "png"),
        json!({ "kind": "attachment", "fileName": "x", "contentType": "image/png", "size": 3 }),
    ] {
        assert_eq!(start_upload(&ada, bad.clone()).await.status, 400, "{bad}");
    }
    // A message cannot carry media that is not an attachment of its chat.
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/messages"),
            &ada.access,
            &json!({ "type": "image", "attachments": [mongodb::bson::oid::ObjectId::new().to_hex()] }),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    server.stop().await;
}

/// The process's resident memory, bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// `n` MiB of bytes that depend on their position, made as they are sent.
fn generated(mib: usize) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter((0..mib).map(|i| {
        let chunk: Vec<u8> = (0..1024 * 1024).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        Ok(chunk)
    }))
}

#[tokio::test]
async fn a_200_mb_upload_streams_through_the_server_in_bounded_memory() {
    const MIB: usize = 200;
    let server = TestServer::start_with(|c| c.media_max_file_bytes = 300 * 1024 * 1024).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let upload = |stream: reqwest::Body, len: u64| {
        let form = reqwest::multipart::Form::new()
            .text("kind", "attachment")
            .text("chatId", chat.clone())
            .part(
                "file",
                reqwest::multipart::Part::stream_with_length(stream, len)
                    .file_name("big.bin")
                    .mime_str("application/octet-stream")
                    .unwrap(),
            );
        reqwest::Client::new()
            .post(server.url("/api/v1/media"))
            .bearer_auth(&ada.access)
            .multipart(form)
            .send()
    };
    // A first small upload puts every lazily built buffer and connection in place.
    let warm = upload(reqwest::Body::wrap_stream(generated(1)), 1024 * 1024)
        .await
        .unwrap();
    assert_eq!(warm.status(), 201);

    let baseline = rss_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let response = upload(reqwest::Body::wrap_stream(generated(MIB)), (MIB * 1024 * 1024) as u64)
        .await
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"].as_u64(), Some((MIB * 1024 * 1024) as u64));
    let growth = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "resident memory grew by {} KiB while streaming {MIB} MiB",
        growth / 1024
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "resident memory grew by {} MiB while streaming {MIB} MiB",
        growth / (1024 * 1024)
    );

    // What the store holds is what was sent (compared chunk by chunk as it downloads).
    let media = body["_id"].as_str().unwrap();
    let r = ada
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&ada.access))
        .await;
    let mut download = reqwest::get(r.body["url"].as_str().unwrap()).await.unwrap();
    assert!(
        download
            .headers()
            .get("content-disposition")
            .is_some_and(|v| v.to_str().unwrap().starts_with("attachment")),
        "files download as attachments"
    );
    let mut offset = 0usize;
    while let Some(chunk) = download.chunk().await.unwrap() {
        for (k, byte) in chunk.iter().enumerate() {
            let at = offset + k;
            let (i, j) = (at / (1024 * 1024), at % (1024 * 1024));
            assert_eq!(*byte, ((i * 31 + j * 7) % 251) as u8, "byte {at}");
        }
        offset += chunk.len();
    }
    assert_eq!(offset, MIB * 1024 * 1024);
    server.stop().await;
}

#[tokio::test]
async fn the_streamed_route_checks_like_the_presigned_one_and_sets_avatars() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let post = |fields: Vec<(&str, String)>, name: &str, mime: &str, bytes: Vec<u8>| {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v);
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str(mime)
                .unwrap(),
        );
        reqwest::Client::new()
            .post(server.url("/api/v1/media"))
            .bearer_auth(&ada.access)
            .multipart(form)
            .send()
    };
    let attachment = || vec![("kind", "attachment".to_string()), ("chatId", chat.clone())];

    let r = post(
        attachment(),
        "evil.png",
        "image/png",
        b"MZ\x90\0 not a picture at all, a program".repeat(4),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "type_mismatch");
    let mut big = PNG.to_vec();
    big.resize(10 * 1024 * 1024 + 1, 0);
    let r = post(attachment(), "big.png", "image/png", big).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = post(
        vec![("kind", "avatar".into())],
        "me.txt",
        "text/plain",
        b"hello".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 415, "avatars are images");
    let r = post(vec![("kind", "x".repeat(10_000))], "a.png", "image/png", PNG.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "fields before the file are short");

    // An avatar: uploaded through the server, then set on the profile.
    let r = post(vec![("kind", "avatar".into())], "me.png", "image/png", PNG.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let avatar = r.json::<Value>().await.unwrap()["_id"].as_str().unwrap().to_string();
    let r = ada
        .client
        .patch_auth("/api/v1/users/me", &ada.access, &json!({ "avatar": avatar }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["avatarUrl"], format!("/api/v1/media/{avatar}"));
    // Anyone signed in may fetch it; nobody else may claim it as theirs.
    let r = bob
        .client
        .get(&format!("/api/v1/media/{avatar}"), Some(&bob.access))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        reqwest::get(r.body["url"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        PNG
    );
    let r = bob
        .client
        .patch_auth("/api/v1/users/me", &bob.access, &json!({ "avatar": avatar }))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    server.stop().await;
}
