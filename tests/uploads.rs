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
