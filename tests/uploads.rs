//! Media uploads against the embedded S3-compatible store over real HTTP: the presigned POST
//! flow from a plain HTTP client, the store's own refusals, the checks at completion, and
//! download URLs for members only.

mod common;

use std::time::Duration;

use common::{Session, TestServer, friends_with_chat, post_media};
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
        .header("origin", "http://localhost:3000")
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

    // A web page on an allowed origin may POST to the store (its preflight is answered).
    let url = ticket["form"]["url"].as_str().unwrap();
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("http://localhost:3000").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:3000");
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let stored = post_to_store(&ticket, PNG.to_vec()).await;
    assert_eq!(stored.headers()["access-control-allow-origin"], "http://localhost:3000");
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

/// Fetches a media's download URL as `who` and GETs it: (content type, disposition, nosniff,
/// bytes).
async fn fetched(who: &Session, media: &str) -> (String, String, String, Vec<u8>) {
    let r = who
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&who.access))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = reqwest::get(r.body["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(got.status(), 200);
    let header = |name: &str| {
        got.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let headers = (
        header("content-type"),
        header("content-disposition"),
        header("x-content-type-options"),
    );
    (headers.0, headers.1, headers.2, got.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn script_dressed_as_an_image_is_refused_or_served_as_bytes_never_rendered() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let declare = |name: &str, content_type: &str, size: usize| json!({ "kind": "attachment", "chatId": chat, "fileName": name, "contentType": content_type, "size": size });
    // A second type, or parameters, after an image type: refused before any form exists.
    for content_type in [
        "image/png, text/html",
        "image/png;text/html",
        "image/png; charset=utf-8",
        "image/png text/html",
    ] {
        let r = start_upload(&ada, declare("x.png", content_type, PNG.len())).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{content_type}: {r:?}");
    }
    // SVG is never an image: no SVG avatar.
    let r = start_upload(
        &ada,
        json!({ "kind": "avatar", "fileName": "me.svg", "contentType": "image/svg+xml", "size": 100 }),
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    // An SVG that starts like an AVIF box is not an AVIF.
    let svg = b"<!--ftypavif--><svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    let ticket = start_upload(&ada, declare("x.avif", "image/avif", svg.len()))
        .await
        .body;
    assert!(post_to_store(&ticket, svg).await.status().is_success());
    let r = complete(&ada, &ticket).await;
    assert_eq!((r.status, r.code()), (409, "type_mismatch"), "{r:?}");

    // HTML (or SVG) uploaded as a file is kept, and downloads as bytes to save.
    let html = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let media = uploaded(&ada, &chat, "page.html", "text/html", &html).await;
    let (content_type, disposition, nosniff, bytes) = fetched(&bob, &media).await;
    assert_eq!(
        (content_type.as_str(), disposition.as_str(), nosniff.as_str()),
        (
            "application/octet-stream",
            "attachment; filename=\"page.html\"",
            "nosniff"
        )
    );
    assert_eq!(bytes, html);
    // A real image is served inline as exactly its type.
    let media = uploaded(&ada, &chat, "dot.png", "image/png", PNG).await;
    let (content_type, disposition, nosniff, bytes) = fetched(&bob, &media).await;
    assert_eq!(
        (content_type.as_str(), disposition.as_str(), nosniff.as_str()),
        ("image/png", "inline; filename=\"dot.png\"", "nosniff")
    );
    assert_eq!(bytes, PNG);
    server.stop().await;
}

#[tokio::test]
async fn a_form_posted_again_after_completion_does_not_change_what_is_served() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let r = start_upload(
        &ada,
        json!({ "kind": "attachment", "chatId": chat, "fileName": "dot.png", "contentType": "image/png", "size": PNG.len() }),
    )
    .await;
    let ticket = r.body.clone();
    assert!(post_to_store(&ticket, PNG.to_vec()).await.status().is_success());
    let r = complete(&ada, &ticket).await;
    assert_eq!(r.status, 201, "{r:?}");
    let media = r.body["_id"].as_str().unwrap().to_string();

    // The form is still valid: the same fields with a program of the same size.
    let mut program = b"MZ\x90\0 a program in place of the picture".to_vec();
    program.resize(PNG.len(), 0);
    let again = post_to_store(&ticket, program).await;
    assert!(again.status().is_success(), "the store takes it: {}", again.status());
    assert_eq!(complete(&ada, &ticket).await.body["_id"], media.as_str());
    let (content_type, _, _, bytes) = fetched(&bob, &media).await;
    assert_eq!(
        (content_type.as_str(), bytes.as_slice()),
        ("image/png", PNG),
        "what was checked is what is served"
    );
    server.stop().await;
}

/// Presigned upload of `bytes` as `content_type` into `chat`, completed; returns the media id.
async fn uploaded(who: &Session, chat: &str, name: &str, content_type: &str, bytes: &[u8]) -> String {
    let ticket = start_upload(
        who,
        json!({ "kind": "attachment", "chatId": chat, "fileName": name, "contentType": content_type, "size": bytes.len() }),
    )
    .await
    .body;
    assert!(post_to_store(&ticket, bytes.to_vec()).await.status().is_success());
    let r = complete(who, &ticket).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn chats_list_their_media_files_and_links_and_deleted_messages_take_theirs_away() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let send = |body: Value| {
        let (ada, chat) = (&ada, chat.clone());
        async move {
            let r = ada
                .client
                .post_auth(&format!("/api/v1/chats/{chat}/messages"), &ada.access, &body)
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body["_id"].as_str().unwrap().to_string()
        }
    };
    let mut images = Vec::new();
    for i in 0..3 {
        let id = uploaded(&ada, &chat, &format!("p{i}.png"), "image/png", PNG).await;
        send(json!({ "type": "image", "attachments": [id] })).await;
        images.push(id);
    }
    let pdf = uploaded(&ada, &chat, "notes.pdf", "application/pdf", b"%PDF-1.7 notes").await;
    let pdf_message = send(json!({ "type": "file", "attachments": [pdf] })).await;
    // Uploaded but never sent: not part of the chat.
    uploaded(&ada, &chat, "draft.png", "image/png", PNG).await;
    send(json!({ "content": "see https://example.com/a, and http://example.org/b." })).await;

    let get = |path: String| {
        let bob = &bob;
        async move { bob.client.get(&path, Some(&bob.access)).await }
    };
    let page = get(format!("/api/v1/chats/{chat}/media?limit=2")).await;
    assert_eq!(page.status, 200, "{page:?}");
    let first: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["_id"].as_str().unwrap())
        .collect();
    assert_eq!(first, [images[2].as_str(), images[1].as_str()], "newest first");
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let rest = get(format!("/api/v1/chats/{chat}/media?limit=2&before={cursor}")).await;
    assert_eq!(rest.body["data"][0]["_id"], images[0].as_str());
    assert!(rest.body.get("nextCursor").is_none());
    let files = get(format!("/api/v1/chats/{chat}/files")).await;
    assert_eq!(files.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(files.body["data"][0]["name"], "notes.pdf");
    let links = get(format!("/api/v1/chats/{chat}/links")).await;
    let urls: Vec<&str> = links.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["https://example.com/a", "http://example.org/b"]);
    // Ada's Collection holds what she shared (the unsent draft is not part of it) and what she
    // starred; Bob's is empty.
    let first_message = send(json!({ "content": "star me" })).await;
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/messages/{first_message}/star"),
            &ada.access,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mine = ada
        .client
        .get(&format!("/api/v1/chats/{chat}/collection"), Some(&ada.access))
        .await;
    assert_eq!(mine.status, 200, "{mine:?}");
    let mut shared = images.clone();
    shared.push(pdf.clone());
    assert_eq!(mine.body["attachments"], json!(shared));
    assert_eq!(mine.body["starredMessages"], json!([first_message]));
    let theirs = get(format!("/api/v1/chats/{chat}/collection")).await;
    assert_eq!(
        (
            theirs.body["attachments"].clone(),
            theirs.body["starredMessages"].clone()
        ),
        (json!([]), json!([]))
    );
    for list in ["media", "files", "links", "collection"] {
        let r = eve
            .client
            .get(&format!("/api/v1/chats/{chat}/{list}"), Some(&eve.access))
            .await;
        assert_eq!(r.status, 404, "{list}: outsiders see nothing");
    }

    // Deleting the message takes its file out of the chat, downloads included.
    let r = ada
        .client
        .send(
            ada.client
                .http
                .delete(ada.client.url(&format!("/api/v1/messages/{pdf_message}")))
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(format!("/api/v1/chats/{chat}/files")).await.body["data"], json!([]));
    assert_eq!(get(format!("/api/v1/media/{pdf}")).await.status, 404);

    server.stop().await;
}

#[tokio::test]
async fn uploads_never_completed_are_swept_with_their_objects() {
    let server = TestServer::start_with(|c| {
        c.upload_url_ttl_secs = 1;
        c.upload_retention_secs = 0;
    })
    .await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let declare = json!({ "kind": "attachment", "chatId": chat, "fileName": "late.png", "contentType": "image/png", "size": PNG.len() });
    let abandoned = start_upload(&ada, declare.clone()).await.body;
    assert!(post_to_store(&abandoned, PNG.to_vec()).await.status().is_success());
    let key = abandoned["form"]["fields"]["key"].as_str().unwrap().to_string();
    assert_eq!(server.state.blobs.size_of(&key).await.unwrap(), Some(PNG.len() as u64));
    // A completed upload is kept.
    let kept = start_upload(&ada, declare).await.body;
    assert!(post_to_store(&kept, PNG.to_vec()).await.status().is_success());
    assert_eq!(complete(&ada, &kept).await.status, 201);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The server's own sweeper (every second with these settings) may get there first; between
    // it and this call the abandoned upload goes exactly once.
    let removed = huddle::service::media::remove_stale_uploads(&server.state)
        .await
        .unwrap();
    // Both forms expired: the abandoned upload goes with its object; the completed one leaves
    // its sealed copy, which is what its media is served from.
    assert!(removed <= 2, "{removed}");
    for _ in 0..50 {
        if server.state.blobs.size_of(&key).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.state.blobs.size_of(&key).await.unwrap(),
        None,
        "the object is gone"
    );
    assert_eq!(
        huddle::service::media::remove_stale_uploads(&server.state)
            .await
            .unwrap(),
        0,
        "nothing is left to sweep"
    );
    assert_eq!(complete(&ada, &abandoned).await.status, 404, "and its record");
    let kept_key = kept["form"]["fields"]["key"].as_str().unwrap();
    assert!(
        server
            .state
            .blobs
            .size_of(&format!("sealed/{kept_key}"))
            .await
            .unwrap()
            .is_some()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_streamed_route_checks_like_the_presigned_one_and_sets_avatars() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let post = |fields: Vec<(&str, String)>, name: &str, mime: &str, bytes: Vec<u8>| {
        let file = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap();
        post_media(&server, &ada, fields, file)
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

#[tokio::test]
async fn a_deleted_messages_attachment_leaves_the_store_and_no_one_can_send_it_again() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let media = uploaded(&ada, &chat, "p.png", "image/png", PNG).await;
    let send = |who: &Session, body: Value| {
        let path = format!("/api/v1/chats/{chat}/messages");
        let (client, access) = (who.client.clone(), who.access.clone());
        async move { client.post_auth(&path, &access, &body).await }
    };
    let first = json!({ "type": "image", "attachments": [media], "clientMsgId": "photo-1" });
    let sent = send(&ada, first.clone()).await;
    assert_eq!(sent.status, 201, "{sent:?}");
    let message = sent.body["_id"].as_str().unwrap().to_string();
    // A retry of the same send is the same message.
    let retried = send(&ada, first).await;
    assert_eq!(retried.body["_id"], message.as_str(), "{retried:?}");

    // Bob, a member who can see it, cannot send it as his own; nor can Ada send it twice.
    let r = send(&bob, json!({ "type": "image", "attachments": [media] })).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{r:?}"
    );
    let r = send(&ada, json!({ "type": "image", "attachments": [media] })).await;
    assert_eq!(r.status, 400, "an attachment already sent went out again: {r:?}");

    let url = bob
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&bob.access))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    let r = ada
        .client
        .send(
            ada.client
                .http
                .delete(ada.client.url(&format!("/api/v1/messages/{message}")))
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Gone for members, and its bytes are gone from the store: a URL handed out before the
    // deletion finds nothing.
    let r = bob
        .client
        .get(&format!("/api/v1/media/{media}"), Some(&bob.access))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        404,
        "the bytes outlived the message"
    );
    let r = send(&ada, json!({ "type": "image", "attachments": [media] })).await;
    assert_eq!(r.status, 400, "a deleted message's attachment came back: {r:?}");
    let listed = bob
        .client
        .get(&format!("/api/v1/chats/{chat}/media"), Some(&bob.access))
        .await;
    assert_eq!(listed.body["data"], json!([]));
    server.stop().await;
}

/// 2 MiB of `byte`, sent over about two seconds.
fn slowly(byte: u8) -> reqwest::Body {
    use futures::StreamExt;
    reqwest::Body::wrap_stream(futures::stream::iter(0..16u8).then(move |_| async move {
        tokio::time::sleep(Duration::from_millis(125)).await;
        Ok::<_, std::io::Error>(vec![byte; 128 * 1024])
    }))
}

#[tokio::test]
async fn an_upload_in_flight_when_the_server_stops_is_finished_not_reset() {
    const SIZE: u64 = 2 * 1024 * 1024;
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    // One through the server, one straight into the embedded store with a form.
    let file = reqwest::multipart::Part::stream_with_length(slowly(1), SIZE)
        .file_name("notes.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let streamed = tokio::spawn(post_media(
        &server,
        &ada,
        vec![("kind", "attachment".into()), ("chatId", chat.clone())],
        file,
    ));
    let ticket = start_upload(
        &ada,
        json!({ "kind": "attachment", "chatId": chat, "fileName": "form.bin", "contentType": "application/octet-stream", "size": SIZE }),
    )
    .await
    .body;
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in ticket["form"]["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_string());
    }
    let form = form.part(
        "file",
        reqwest::multipart::Part::stream_with_length(slowly(2), SIZE).file_name("form.bin"),
    );
    let posted = tokio::spawn(
        reqwest::Client::new()
            .post(ticket["form"]["url"].as_str().unwrap())
            .multipart(form)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = server.url("/health");
    let store = server.state.store.clone();
    let stopping = tokio::spawn(server.stop());
    let response = streamed.await.unwrap().expect("the upload is answered, not reset");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["size"], SIZE);
    let posted = posted.await.unwrap().expect("the form upload is answered, not reset");
    assert!(posted.status().is_success(), "{}", posted.status());
    stopping.await.unwrap();
    let id = mongodb::bson::oid::ObjectId::parse_str(body["_id"].as_str().unwrap()).unwrap();
    assert!(store.media.media(id).await.unwrap().is_some(), "its media was recorded");
    assert!(reqwest::get(&url).await.is_err(), "a stopped server takes no requests");
}

#[tokio::test]
async fn the_embedded_store_budgets_form_uploads_by_their_declared_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.embedded_s3_post_buffer_bytes = 200 * 1024 * 1024).await;
    let ada = server.signed_up("ada").await;
    let ticket = start_upload(
        &ada,
        json!({ "kind": "avatar", "fileName": "me.png", "contentType": "image/png", "size": PNG.len() }),
    )
    .await
    .body;
    let url = ticket["form"]["url"].as_str().unwrap();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    // A raw request head: `chunked` (no length), then a length beyond the whole budget.
    let status_of = |head: String| async move {
        let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let n = conn.read(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer[..n]).to_string()
    };
    let form = "multipart/form-data; boundary=x";
    let no_length = status_of(format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {form}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ))
    .await;
    assert!(
        no_length.starts_with("HTTP/1.1 411") && no_length.contains("MissingContentLength"),
        "{no_length}"
    );
    let huge = status_of(format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {form}\r\nContent-Length: {}\r\n\r\n",
        300 * 1024 * 1024
    ))
    .await;
    assert!(
        huge.starts_with("HTTP/1.1 400") && huge.contains("EntityTooLarge"),
        "{huge}"
    );
    // Within the budget, forms go through as before.
    assert!(post_to_store(&ticket, PNG.to_vec()).await.status().is_success());
    server.stop().await;
}
