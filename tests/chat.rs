//! Whole-server chat tests: friends, a 1:1 chat driven live with the official
//! `socket.io-client`, replay after a reconnect, idempotent sends, authorization, and
//! durability across a restart.

mod common;

use std::time::Duration;

use common::sio;
use common::{TestServer, friends_with_chat, group_with, socket};
use serde_json::{Value, json};

fn send(chat: &str, client_msg_id: &str, content: &str) -> Value {
    json!({ "chatId": chat, "clientMsgId": client_msg_id, "type": "text", "content": content })
}

#[tokio::test]
async fn friends_chat_live_with_receipts_and_typing() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let mut bob_socket = socket(&server, &bob).await;

    let r = ada
        .client
        .post_auth(
            "/api/v1/friends/requests",
            &ada.access,
            &json!({ "userId": bob.user_id }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let request = bob_socket.next("friend:request").await;
    assert_eq!(request["sender"], ada.user_id.as_str());
    let incoming = bob.client.get("/api/v1/friends/requests", Some(&bob.access)).await;
    assert_eq!(incoming.body["incoming"][0]["_id"], r.body["_id"]);
    let r = bob
        .client
        .post_auth(
            &format!("/api/v1/friends/requests/{}/accept", r.body["_id"].as_str().unwrap()),
            &bob.access,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let friends = ada.client.get("/api/v1/friends", Some(&ada.access)).await;
    assert_eq!(friends.body["data"][0]["_id"], bob.user_id.as_str());

    let mut ada_socket = socket(&server, &ada).await;
    let r = ada
        .client
        .post_auth("/api/v1/chats", &ada.access, &json!({ "userId": bob.user_id }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let chat = r.body["_id"].as_str().unwrap().to_string();

    let ack = ada_socket.emit("message:send", send(&chat, "m-1", "hello bob")).await;
    let stored = &ack["data"];
    assert_eq!(stored["seq"], 1, "{ack}");
    assert_eq!(stored["content"], "hello bob");
    assert_eq!(stored["sender"], ada.user_id.as_str());
    let live = bob_socket.next("message:new").await;
    assert_eq!(live["_id"], stored["_id"]);
    assert_eq!(live["seq"], 1);

    let list = bob.client.get("/api/v1/chats", Some(&bob.access)).await;
    assert_eq!(list.body["data"][0]["unreadCount"], 1, "{list:?}");
    assert_eq!(list.body["data"][0]["lastMessage"]["content"], "hello bob");

    let ack = bob_socket
        .emit("message:read", json!({ "chatId": chat, "seq": 1 }))
        .await;
    assert_eq!(ack["data"]["seq"], 1, "{ack}");
    let receipt = ada_socket.next("message:read").await;
    assert_eq!(
        (receipt["userId"].as_str(), receipt["seq"].as_i64()),
        (Some(bob.user_id.as_str()), Some(1))
    );
    let list = bob.client.get("/api/v1/chats", Some(&bob.access)).await;
    assert_eq!(list.body["data"][0]["unreadCount"], 0);

    let ack = ada_socket.emit("typing:start", json!({ "chatId": chat })).await;
    assert!(ack.get("data").is_some(), "{ack}");
    let typing = bob_socket.next("typing").await;
    assert_eq!(
        (typing["userId"].as_str(), typing["typing"].as_bool()),
        (Some(ada.user_id.as_str()), Some(true))
    );
    ada_socket.expect_none("typing").await;

    // A REST write emits the same event as its socket twin.
    let r = bob
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/messages"),
            &bob.access,
            &json!({ "content": "hi ada" }),
        )
        .await;
    assert_eq!((r.status, r.body["seq"].as_i64()), (201, Some(2)), "{r:?}");
    // The sender's own sockets hear their messages too (other devices stay in step).
    assert_eq!(ada_socket.next("message:new").await["content"], "hello bob");
    let live = ada_socket.next("message:new").await;
    assert_eq!(live["content"], "hi ada");

    // Edit, star and delete.
    let id = stored["_id"].as_str().unwrap();
    let ack = ada_socket
        .emit("message:edit", json!({ "messageId": id, "content": "hello, bob" }))
        .await;
    assert_eq!(ack["data"]["content"], "hello, bob", "{ack}");
    assert_eq!(bob_socket.next("message:updated").await["content"], "hello, bob");
    let ack = bob_socket
        .emit("message:edit", json!({ "messageId": id, "content": "forged" }))
        .await;
    assert_eq!(ack["error"]["code"], "not_sender", "{ack}");
    let r = bob
        .client
        .post_auth(&format!("/api/v1/messages/{id}/star"), &bob.access, &json!({}))
        .await;
    assert_eq!((r.status, r.body["starred"].as_bool()), (200, Some(true)));
    let starred = bob
        .client
        .get(&format!("/api/v1/chats/{chat}/starred-messages"), Some(&bob.access))
        .await;
    assert_eq!(starred.body["data"][0]["_id"], id);
    let ack = ada_socket.emit("message:delete", json!({ "messageId": id })).await;
    assert_eq!(
        (ack["data"]["deleted"].as_bool(), ack["data"]["content"].as_str()),
        (Some(true), Some(""))
    );
    assert_eq!(bob_socket.next("message:deleted").await["_id"], id);
    server.stop().await;
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_what_it_missed_in_order() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    ada_socket
        .emit("message:send", send(&chat, "first", "before the drop"))
        .await;
    let seen = bob_socket.next("message:new").await["seq"].as_i64().unwrap();
    bob_socket.disconnect().await;

    for i in 0..50 {
        let ack = ada_socket
            .emit("message:send", send(&chat, &format!("m{i}"), &format!("missed {i}")))
            .await;
        assert_eq!(ack["data"]["seq"], seen + 1 + i, "{ack}");
    }

    let mut bob_socket = socket(&server, &bob).await;
    let ack = bob_socket
        .emit("chat:sync", json!({ "chats": [{ "chatId": chat, "lastSeq": seen }] }))
        .await;
    let chats = ack["data"]["chats"].as_array().unwrap_or_else(|| panic!("{ack}"));
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0]["hasMore"], false);
    let replay: Vec<(i64, String)> = chats[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_i64().unwrap(), m["content"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(i64, String)> = (0..50).map(|i| (seen + 1 + i, format!("missed {i}"))).collect();
    assert_eq!(replay, expected);
    // Nothing arrives twice: the replay was the only delivery.
    bob_socket.expect_none("message:new").await;
    // A client that is up to date gets nothing.
    let ack = bob_socket
        .emit(
            "chat:sync",
            json!({ "chats": [{ "chatId": chat, "lastSeq": seen + 50 }] }),
        )
        .await;
    assert_eq!(ack["data"]["chats"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn concurrent_sends_with_one_client_msg_id_store_one_message() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let (client, token, chat) = (ada.client.clone(), ada.access.clone(), chat.clone());
            tokio::spawn(async move {
                client
                    .post_auth(
                        &format!("/api/v1/chats/{chat}/messages"),
                        &token,
                        &json!({ "clientMsgId": "same-id", "content": "once" }),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for send in sends {
        let r = send.await.unwrap();
        assert_eq!(r.status, 201, "{r:?}");
        ids.push(r.body["_id"].as_str().unwrap().to_string());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let history = ada
        .client
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&ada.access))
        .await;
    let messages = history.body["data"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{history:?}");
    assert_eq!(messages[0]["seq"], 1, "no seq was burnt by the duplicates");
    server.stop().await;
}

#[tokio::test]
async fn outsiders_cannot_read_send_or_learn_a_chat_exists() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let missing = "0123456789abcdef01234567";

    let e = &eve.client;
    for id in [chat.as_str(), missing] {
        let a = e.get(&format!("/api/v1/chats/{id}"), Some(&eve.access)).await;
        let b = e.get(&format!("/api/v1/chats/{id}/messages"), Some(&eve.access)).await;
        let c = e
            .post_auth(
                &format!("/api/v1/chats/{id}/messages"),
                &eve.access,
                &json!({ "content": "let me in" }),
            )
            .await;
        let d = e
            .post_auth(&format!("/api/v1/chats/{id}/read"), &eve.access, &json!({ "seq": 1 }))
            .await;
        let f = e
            .post_auth(&format!("/api/v1/chats/{id}/pin"), &eve.access, &json!({}))
            .await;
        for r in [a, b, c, d, f] {
            assert_eq!((r.status, r.code()), (404, "not_found"), "{id}: {r:?}");
        }
    }
    // Not friends: no chat can be opened.
    let r = e
        .post_auth("/api/v1/chats", &eve.access, &json!({ "userId": ada.user_id }))
        .await;
    assert_eq!((r.status, r.code()), (403, "not_friends"));
    // No token and bad tokens.
    assert_eq!(e.get("/api/v1/chats", None).await.status, 401);
    assert_eq!(e.get("/api/v1/chats", Some("garbage")).await.status, 401);
    assert_eq!(e.get("/api/v1/friends", None).await.status, 401);
    assert_eq!(e.get("/api/v1/notifications", None).await.status, 401);

    // Socket.IO: refused handshakes, and an outsider's socket hears nothing.
    let refused = sio::connect(&server.url(""), None).await.expect_err("no token");
    assert!(
        refused["message"].as_str().unwrap().contains("unauthorized"),
        "{refused}"
    );
    let refused = sio::connect(&server.url(""), Some("garbage"))
        .await
        .expect_err("bad token");
    assert!(
        refused["message"].as_str().unwrap().contains("unauthorized"),
        "{refused}"
    );
    // The token may come as an `Authorization: Bearer` header instead (Postman); a bad one
    // there is refused alike.
    let refused = sio::connect_with_header(&server.url(""), "garbage")
        .await
        .expect_err("bad header token");
    assert!(
        refused["message"].as_str().unwrap().contains("unauthorized"),
        "{refused}"
    );
    let mut eve_socket = sio::connect_with_header(&server.url(""), &eve.access)
        .await
        .expect("a header token is accepted");
    for id in [chat.as_str(), missing] {
        let ack = eve_socket.emit("message:send", send(id, "x", "let me in")).await;
        assert_eq!(ack["error"]["code"], "not_found", "{ack}");
        let ack = eve_socket.emit("typing:start", json!({ "chatId": id })).await;
        assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    }
    let ack = eve_socket
        .emit("chat:sync", json!({ "chats": [{ "chatId": chat, "lastSeq": 0 }] }))
        .await;
    assert_eq!(ack["data"]["chats"], json!([]), "{ack}");
    let ack = eve_socket
        .emit(
            "message:send",
            json!({ "chatId": { "$ne": null }, "clientMsgId": "x", "content": "x" }),
        )
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");

    let mut ada_socket = socket(&server, &ada).await;
    ada_socket.emit("message:send", send(&chat, "private", "just us")).await;
    eve_socket.expect_none("message:new").await;
    server.stop().await;
}

#[tokio::test]
async fn logout_disconnects_the_sessions_sockets() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let mut ada_socket = socket(&server, &ada).await;
    let r = ada
        .client
        .post_auth("/api/v1/auth/logout", &ada.access, &json!({}))
        .await;
    assert_eq!(r.status, 204);
    let reason = ada_socket.wait_disconnect(Duration::from_secs(5)).await;
    assert_eq!(reason.as_deref(), Some("io server disconnect"));
    server.stop().await;
}

#[tokio::test]
async fn acknowledged_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = huddle::Config {
        data_dir: dir.path().to_path_buf(),
        cookie_secure: false,
        media_udp_addr: ([127, 0, 0, 1], 0).into(),
        ..huddle::Config::default()
    };
    let first = TestServer::start_config(config.clone()).await.expect("start");
    let ada = first.signed_up("ada").await;
    let bob = first.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&first, &ada).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let ack = ada_socket
            .emit("message:send", send(&chat, &format!("d{i}"), &format!("durable {i}")))
            .await;
        acked.push(ack["data"]["_id"].as_str().unwrap().to_string());
    }
    drop(ada_socket);
    first.stop().await;

    let second = TestServer::start_config(config).await.expect("restart");
    let r = bob
        .client
        .send(
            bob.client
                .http
                .get(second.url(&format!("/api/v1/chats/{chat}/messages?limit=200")))
                .bearer_auth(&bob.access),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let stored: Vec<String> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, acked);
    second.stop().await;
}

#[tokio::test]
async fn group_admins_add_and_remove_members_and_the_last_admin_stays() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cid = server.signed_up("cid").await;
    let mut bob_socket = socket(&server, &bob).await;
    let mut cid_socket = socket(&server, &cid).await;

    let r = ada
        .client
        .post_auth(
            "/api/v1/groups",
            &ada.access,
            &json!({ "name": "Team", "members": [bob.user_id, cid.user_id] }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let group = r.body["_id"].as_str().unwrap().to_string();
    let chat = r.body["chatId"].as_str().unwrap().to_string();
    assert_eq!(r.body["admins"], json!([ada.user_id]));
    assert_eq!(bob_socket.next("group:invited").await["_id"], group.as_str());
    assert_eq!(cid_socket.next("group:invited").await["_id"], group.as_str());
    // Invited is not a member yet: the chat stays closed.
    let r = bob
        .client
        .get(&format!("/api/v1/chats/{chat}"), Some(&bob.access))
        .await;
    assert_eq!(r.status, 404);

    let mut ada_socket = socket(&server, &ada).await;
    for who in [&bob, &cid] {
        let r = who
            .client
            .post_auth(&format!("/api/v1/groups/{group}/accept"), &who.access, &json!({}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let added = ada_socket.next("group:member-added").await;
        assert_eq!(added["userId"], who.user_id.as_str());
    }
    ada_socket.emit("message:send", send(&chat, "g1", "welcome")).await;
    assert_eq!(bob_socket.next("message:new").await["content"], "welcome");
    assert_eq!(cid_socket.next("message:new").await["content"], "welcome");

    // Members who are not admins cannot manage the group.
    let r = bob
        .client
        .send(
            bob.client
                .http
                .delete(
                    bob.client
                        .url(&format!("/api/v1/groups/{group}/members/{}", cid.user_id)),
                )
                .bearer_auth(&bob.access),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_admin"), "{r:?}");
    let r = bob
        .client
        .patch_auth(
            &format!("/api/v1/groups/{group}"),
            &bob.access,
            &json!({ "name": "Mine" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_admin"), "{r:?}");
    // An outsider cannot even see it.
    let eve = server.signed_up("eve").await;
    let r = eve
        .client
        .get(&format!("/api/v1/groups/{group}"), Some(&eve.access))
        .await;
    assert_eq!(r.status, 404);

    // The admin removes cid: cid is told, then hears nothing more of the chat.
    let r = ada
        .client
        .send(
            ada.client
                .http
                .delete(
                    ada.client
                        .url(&format!("/api/v1/groups/{group}/members/{}", cid.user_id)),
                )
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        cid_socket.next("group:member-removed").await["userId"],
        cid.user_id.as_str()
    );
    ada_socket
        .emit("message:send", send(&chat, "g2", "after cid left"))
        .await;
    assert_eq!(bob_socket.next("message:new").await["content"], "after cid left");
    cid_socket.expect_none("message:new").await;
    let ack = cid_socket.emit("message:send", send(&chat, "g3", "still here?")).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    let r = cid
        .client
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&cid.access))
        .await;
    assert_eq!(r.status, 404);

    // Renames reach the chat.
    let r = ada
        .client
        .patch_auth(
            &format!("/api/v1/groups/{group}"),
            &ada.access,
            &json!({ "name": "Team 2" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(bob_socket.next("group:updated").await["name"], "Team 2");

    // The last admin cannot leave or be demoted while others remain; after a handover they can.
    let r = ada
        .client
        .post_auth(&format!("/api/v1/groups/{group}/leave"), &ada.access, &json!({}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    let demote = ada
        .client
        .http
        .delete(
            ada.client
                .url(&format!("/api/v1/groups/{group}/admins/{}", ada.user_id)),
        )
        .bearer_auth(&ada.access);
    assert_eq!(ada.client.send(demote).await.status, 409);
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/groups/{group}/admins/{}", bob.user_id),
            &ada.access,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = ada
        .client
        .post_auth(&format!("/api/v1/groups/{group}/leave"), &ada.access, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["admins"], json!([bob.user_id]));
    server.stop().await;
}

#[tokio::test]
async fn presence_follows_the_last_socket_and_offline_members_get_notifications() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;

    // Bob is offline: the message becomes a notification, written just after the ack.
    ada_socket
        .emit("message:send", send(&chat, "n1", "are you there?"))
        .await;
    let notes = common::eventually(|| async {
        let notes = bob.client.get("/api/v1/notifications", Some(&bob.access)).await;
        (notes.body["data"].as_array().map(Vec::len) == Some(2)).then_some(notes)
    })
    .await;
    let kinds: Vec<&str> = notes.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "friend_request"], "{notes:?}");
    assert_eq!(notes.body["data"][0]["content"], "are you there?");
    let first = notes.body["data"][0]["_id"].as_str().unwrap();
    let r = bob
        .client
        .post_auth(&format!("/api/v1/notifications/{first}/read"), &bob.access, &json!({}))
        .await;
    assert_eq!(r.status, 204);
    let r = bob
        .client
        .post_auth("/api/v1/notifications/read-all", &bob.access, &json!({}))
        .await;
    assert_eq!(r.body["updated"], 1);

    // Two devices: online with the first, offline only when the last goes.
    let phone = socket(&server, &bob).await;
    let online = ada_socket.next("presence").await;
    assert_eq!(
        (online["userId"].as_str(), online["status"].as_str()),
        (Some(bob.user_id.as_str()), Some("online"))
    );
    let laptop = socket(&server, &bob).await;
    phone.disconnect().await;
    ada_socket
        .expect_none_within("presence", Duration::from_millis(400))
        .await;
    // Online: no notification, live delivery instead.
    let mut laptop = laptop;
    ada_socket.emit("message:send", send(&chat, "n2", "hi again")).await;
    assert_eq!(laptop.next("message:new").await["content"], "hi again");
    let notes = bob.client.get("/api/v1/notifications", Some(&bob.access)).await;
    assert_eq!(notes.body["data"].as_array().unwrap().len(), 2, "{notes:?}");
    laptop.disconnect().await;
    let offline = ada_socket.next("presence").await;
    assert_eq!(offline["status"], "offline");
    assert!(offline["lastSeen"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn notifications_page_newest_first_within_one_second() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    // Six messages to an offline Bob, most within one second: their notices' ids are
    // derived from the messages, so only their time orders them.
    for i in 1..=6 {
        let ack = ada_socket
            .emit("message:send", send(&chat, &format!("c{i}"), &format!("m{i}")))
            .await;
        assert!(ack["error"].is_null(), "{ack}");
    }
    common::eventually(|| async {
        let notes = bob
            .client
            .get("/api/v1/notifications?limit=100", Some(&bob.access))
            .await;
        (notes.body["data"].as_array().map(Vec::len) == Some(7)).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/notifications?limit=2&cursor={c}"),
            None => "/api/v1/notifications?limit=2".to_string(),
        };
        let page = bob.client.get(&path, Some(&bob.access)).await;
        assert_eq!(page.status, 200, "{page:?}");
        for n in page.body["data"].as_array().unwrap() {
            seen.push(n["content"].as_str().unwrap().to_string());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["m6", "m5", "m4", "m3", "m2", "m1", "sent you a friend request"],
        "newest first, each once"
    );
    server.stop().await;
}

#[tokio::test]
async fn one_account_cannot_hold_unbounded_sockets_or_binary_buffers() {
    let server = TestServer::start_with(|c| c.max_sockets_per_user = 3).await;
    let ada = server.signed_up("ada").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(socket(&server, &ada).await);
    }
    let refused = common::sio::connect(&server.url(""), Some(&ada.access)).await;
    let Err(line) = refused else {
        panic!("a fourth socket of one account was accepted")
    };
    assert!(
        line["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("too_many_sockets"),
        "{line}"
    );
    // One closes: there is room again.
    open.pop().unwrap().disconnect().await;
    let again =
        common::eventually(|| async { common::sio::connect(&server.url(""), Some(&ada.access)).await.ok() }).await;
    open.push(again);

    // More binary attachments than any event carries: the packet and its connection go.
    let s = open.last_mut().unwrap();
    s.emit_binary("message:send", 9, 1024).await;
    assert!(
        s.wait_disconnect(Duration::from_secs(5)).await.is_some(),
        "a packet announcing 9 attachments was kept"
    );
    for s in open {
        s.disconnect().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn oversized_and_malformed_socket_payloads_are_refused() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut s = socket(&server, &ada).await;
    let ack = s.emit("message:send", send(&chat, "long", &"x".repeat(10_001))).await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    let ack = s
        .emit("message:send", json!({ "chatId": chat, "content": "no client id" }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    let ack = s
        .emit(
            "message:send",
            json!({ "chatId": chat, "clientMsgId": "a", "content": "x", "sender": bob.user_id }),
        )
        .await;
    assert_eq!(
        ack["error"]["code"], "bad_request",
        "clients never set the sender: {ack}"
    );
    let ack = s.emit("message:read", json!("not an object")).await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    // An event the server does not know is answered, not left to time out.
    let ack = s.emit("message:sned", send(&chat, "typo", "x")).await;
    assert_eq!(
        (ack["error"]["code"].as_str(), ack["error"]["message"].as_str()),
        (Some("bad_request"), Some("unknown event: message:sned")),
        "{ack}"
    );
    // Past the 64 KiB packet limit the server closes the connection.
    s.emit_no_ack("message:send", send(&chat, "huge", &"x".repeat(100 * 1024)))
        .await;
    assert!(
        s.wait_disconnect(Duration::from_secs(5)).await.is_some(),
        "oversized packet must end the connection"
    );
    let history = ada
        .client
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&ada.access))
        .await;
    assert_eq!(history.body["data"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn a_member_who_never_reads_does_not_hold_up_the_chat() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cid = server.signed_up("cid").await;
    let (_group, chat) = group_with(&ada, "Busy", &[&bob, &cid]).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    let mut cid_socket = socket(&server, &cid).await;
    cid_socket.stall().await;

    // A few megabytes pile up for the stalled member; every send must still be acknowledged
    // and reach bob in order, at the pace of the readers, not of the stalled one.
    let body = "x".repeat(10_000);
    let total = 300;
    for i in 0..total {
        let ack = ada_socket
            .emit("message:send", send(&chat, &format!("bulk{i}"), &body))
            .await;
        assert_eq!(ack["data"]["seq"], i + 1, "{}", ack["error"]);
        let live = bob_socket.next("message:new").await;
        assert_eq!(live["seq"], i + 1);
    }
    assert_eq!(server.client().get("/health", None).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_group_with_a_bad_invitee_is_not_created() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let r = ada
        .client
        .post_auth(
            "/api/v1/groups",
            &ada.access,
            &json!({ "name": "X", "members": [bob.user_id, "0123456789abcdef01234567"] }),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let groups = ada.client.get("/api/v1/groups", Some(&ada.access)).await;
    assert_eq!(groups.body["data"], json!([]), "nothing half-created");
    // Duplicates and the creator in the list are harmless.
    let r = ada
        .client
        .post_auth(
            "/api/v1/groups",
            &ada.access,
            &json!({ "name": "Y", "members": [bob.user_id, bob.user_id, ada.user_id] }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["invited"], json!([bob.user_id]));
    assert_eq!(r.body["members"], json!([ada.user_id]));
    server.stop().await;
}

#[tokio::test]
async fn many_members_sending_at_once_get_gapless_seqs() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let who = if i % 2 == 0 { &ada } else { &bob };
            let (client, token, chat) = (who.client.clone(), who.access.clone(), chat.clone());
            tokio::spawn(async move {
                client
                    .post_auth(
                        &format!("/api/v1/chats/{chat}/messages"),
                        &token,
                        &json!({ "clientMsgId": format!("p{i}"), "content": format!("parallel {i}") }),
                    )
                    .await
            })
        })
        .collect();
    for send in sends {
        let r = send.await.unwrap();
        assert_eq!(r.status, 201, "{r:?}");
    }
    let history = ada
        .client
        .get(&format!("/api/v1/chats/{chat}/messages?limit=100"), Some(&ada.access))
        .await;
    let seqs: Vec<i64> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
    server.stop().await;
}
