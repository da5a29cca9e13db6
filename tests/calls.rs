//! Whole-server call lifecycle over Socket.IO and REST: ringing, answering, joining and
//! leaving, missed and declined calls, call records in the chat history, ICE servers.

mod common;

use std::time::Duration;

use common::{Session, TestServer, friends_with_chat, group_with, socket};
use serde_json::{Value, json};

async fn call_record(who: &Session, chat: &str) -> Value {
    let history = who
        .client
        .get(&format!("/api/v1/chats/{chat}/messages"), Some(&who.access))
        .await;
    let messages = history.body["data"].as_array().unwrap();
    messages
        .iter()
        .rev()
        .find(|m| m["type"] == "call")
        .cloned()
        .unwrap_or_else(|| panic!("no call record: {history:?}"))
}

#[tokio::test]
async fn a_call_rings_is_answered_and_leaves_a_record() {
    let server = TestServer::start_with(|c| {
        c.turn_secret = Some(huddle::config::Secret::new("turn-shared-secret"));
        c.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        c.stun_urls = vec!["stun:127.0.0.1:3478".into()];
    })
    .await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;

    // Nobody in a call yet: no TURN credentials.
    let r = bob.client.get("/api/v1/calls/ice-servers", Some(&bob.access)).await;
    assert_eq!((r.status, r.code()), (403, "not_in_call"));

    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "video" }))
        .await;
    let call = ack["data"].clone();
    assert_eq!(call["status"], "ringing", "{ack}");
    assert_eq!(call["type"], "video");
    let call_id = call["_id"].as_str().unwrap().to_string();
    let incoming = bob_socket.next("call:incoming").await;
    assert_eq!(incoming["_id"], call_id.as_str());
    assert_eq!(incoming["initiator"], ada.user_id.as_str());
    // A second call in the same chat is refused while this one is live.
    let ack = bob_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    assert_eq!(ack["error"]["code"], "call_in_progress", "{ack}");

    let ack = bob_socket.emit("call:accept", json!({ "callId": call_id })).await;
    assert_eq!(ack["data"]["status"], "ongoing", "{ack}");
    assert_eq!(ada_socket.next("call:accepted").await["userId"], bob.user_id.as_str());
    // Answering, then entering the call: the join reply carries the ICE servers.
    let ack = bob_socket.emit("call:join", json!({ "callId": call_id })).await;
    assert_eq!(
        ack["data"]["call"]["participants"],
        json!([ada.user_id, bob.user_id]),
        "{ack}"
    );
    assert_eq!(ack["data"]["iceServers"][0]["urls"][0], "stun:127.0.0.1:3478");
    assert_eq!(
        ada_socket.next("call:participant-joined").await["userId"],
        ada.user_id.as_str()
    );
    assert_eq!(
        ada_socket.next("call:participant-joined").await["userId"],
        bob.user_id.as_str()
    );

    // Participants get STUN and TURN with REST credentials `expiry:userId`.
    let r = bob.client.get("/api/v1/calls/ice-servers", Some(&bob.access)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let turn = &r.body["iceServers"][1];
    assert_eq!(turn["urls"][0], "turn:127.0.0.1:3478?transport=udp");
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, bob.user_id);
    let expiry: u64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Ten minutes by default: enough to set up a relay, which then outlives them.
    assert!((now + 590..=now + 610).contains(&expiry), "{expiry} vs {now}");
    assert_eq!(
        turn["credential"].as_str().unwrap().len(),
        28,
        "base64 of a 20-byte HMAC-SHA1"
    );

    let r = ada
        .client
        .get(&format!("/api/v1/calls/{call_id}"), Some(&ada.access))
        .await;
    assert_eq!(r.body["participants"], json!([ada.user_id, bob.user_id]), "{r:?}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ack = ada_socket.emit("call:leave", json!({ "callId": call_id })).await;
    assert!(ack.get("data").is_some(), "{ack}");
    assert_eq!(
        bob_socket.next("call:participant-left").await["userId"],
        ada.user_id.as_str()
    );
    let ack = bob_socket.emit("call:leave", json!({ "callId": call_id })).await;
    assert_eq!(ack["data"]["status"], "ended", "{ack}");
    let ended = ada_socket.next("call:ended").await;
    assert_eq!(
        (ended["status"].as_str(), ended["endReason"].as_str()),
        (Some("ended"), Some("completed"))
    );

    // The record reaches the chat like a message, and the history lists the call.
    let live = bob_socket.next("message:new").await;
    assert_eq!(live["type"], "call");
    let record = call_record(&bob, &chat).await;
    assert_eq!(record["call"]["callId"], call_id.as_str());
    assert_eq!(record["call"]["status"], "ended");
    assert_eq!(record["call"]["participants"], json!([ada.user_id, bob.user_id]));
    assert!(record["call"]["durationSecs"].as_i64().unwrap() >= 1, "{record}");
    let r = bob.client.get("/api/v1/calls", Some(&bob.access)).await;
    assert_eq!(r.body["data"][0]["_id"], call_id.as_str());
    assert!(r.body["data"][0]["endedAt"].is_string());
    // Once over, the call's ICE servers are gone too.
    let r = bob.client.get("/api/v1/calls/ice-servers", Some(&bob.access)).await;
    assert_eq!(r.status, 403);
    server.stop().await;
}

#[tokio::test]
async fn unanswered_calls_are_missed_and_declined_calls_end() {
    let server = TestServer::start_with(|c| c.call_ring_timeout_secs = 1).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;

    let r = ada
        .client
        .post_auth(
            "/api/v1/calls",
            &ada.access,
            &json!({ "chatId": chat, "type": "audio" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let ended = ada_socket.next("call:ended").await;
    assert_eq!(
        (ended["status"].as_str(), ended["endReason"].as_str()),
        (Some("missed"), Some("timeout"))
    );
    let record = call_record(&ada, &chat).await;
    assert_eq!(
        (
            record["call"]["status"].as_str(),
            record["call"]["durationSecs"].as_i64()
        ),
        (Some("missed"), Some(0))
    );

    let mut bob_socket = socket(&server, &bob).await;
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call_id = ack["data"]["_id"].as_str().unwrap().to_string();
    bob_socket.next("call:incoming").await;
    let ack = bob_socket.emit("call:decline", json!({ "callId": call_id })).await;
    assert_eq!(ack["data"]["endReason"], "declined", "{ack}");
    let ended = ada_socket.next("call:ended").await;
    assert_eq!(ended["_id"], call_id.as_str());

    // Cancelling is the initiator's: bob cannot cancel ada's call.
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call_id = ack["data"]["_id"].as_str().unwrap().to_string();
    let ack = bob_socket.emit("call:cancel", json!({ "callId": call_id })).await;
    assert_eq!(ack["error"]["code"], "not_initiator", "{ack}");
    let r = ada
        .client
        .post_auth(&format!("/api/v1/calls/{call_id}/end"), &ada.access, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["endReason"], "cancelled");
    server.stop().await;
}

#[tokio::test]
async fn outsiders_cannot_start_see_or_answer_calls() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let r = ada
        .client
        .post_auth(
            "/api/v1/calls",
            &ada.access,
            &json!({ "chatId": chat, "type": "audio" }),
        )
        .await;
    let call_id = r.body["_id"].as_str().unwrap().to_string();

    let r = eve
        .client
        .post_auth(
            "/api/v1/calls",
            &eve.access,
            &json!({ "chatId": chat, "type": "audio" }),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    for path in [
        format!("/api/v1/calls/{call_id}"),
        "/api/v1/calls/0123456789abcdef01234567".to_string(),
    ] {
        let r = eve.client.get(&path, Some(&eve.access)).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{path}");
    }
    let r = eve
        .client
        .post_auth(&format!("/api/v1/calls/{call_id}/end"), &eve.access, &json!({}))
        .await;
    assert_eq!(r.status, 404);
    let mut eve_socket = socket(&server, &eve).await;
    for event in ["call:accept", "call:decline", "call:join", "call:leave", "call:cancel"] {
        let ack = eve_socket.emit(event, json!({ "callId": call_id })).await;
        assert_eq!(ack["error"]["code"], "not_found", "{event}: {ack}");
    }
    let ack = eve_socket
        .emit("call:start", json!({ "chatId": chat, "type": "screen" }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    let r = eve.client.get("/api/v1/calls", Some(&eve.access)).await;
    assert_eq!(r.body["data"], json!([]));
    for path in ["/api/v1/calls", "/api/v1/calls/ice-servers"] {
        assert_eq!(eve.client.get(path, None).await.status, 401);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_member_removed_during_a_group_call_cannot_join_it() {
    let server = TestServer::start_with(|c| c.stun_urls = vec!["stun:127.0.0.1:3478".into()]).await;
    let ada = server.signed_up("ada").await;
    let rex = server.signed_up("rex").await;
    let bob = server.signed_up("bob").await;
    let (group, chat) = group_with(&ada, "G", &[&rex, &bob]).await;
    let r = ada
        .client
        .post_auth(
            "/api/v1/calls",
            &ada.access,
            &json!({ "chatId": chat, "type": "audio" }),
        )
        .await;
    let call = r.body["_id"].as_str().unwrap().to_string();
    // Rung is not joined: TURN credentials come with joining, not before.
    let r = rex.client.get("/api/v1/calls/ice-servers", Some(&rex.access)).await;
    assert_eq!((r.status, r.code()), (403, "not_in_call"), "{r:?}");

    let kick = ada
        .client
        .http
        .delete(
            ada.client
                .url(&format!("/api/v1/groups/{group}/members/{}", rex.user_id)),
        )
        .bearer_auth(&ada.access);
    assert_eq!(ada.client.send(kick).await.status, 200);
    let mut rex_socket = socket(&server, &rex).await;
    for event in ["call:join", "call:accept"] {
        let ack = rex_socket.emit(event, json!({ "callId": call })).await;
        assert_eq!(ack["error"]["code"], "not_found", "{event}: {ack}");
    }
    let r = rex.client.get("/api/v1/calls/ice-servers", Some(&rex.access)).await;
    assert_eq!(r.status, 403, "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn unfriending_mid_call_ends_the_one_to_one_call_and_no_new_one_starts() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call = ack["data"]["_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{ack}"))
        .to_string();
    bob_socket.next("call:incoming").await;
    let ack = bob_socket.emit("call:join", json!({ "callId": call })).await;
    assert!(ack.get("data").is_some(), "{ack}");

    let unfriend = bob
        .client
        .http
        .delete(bob.client.url(&format!("/api/v1/friends/{}", ada.user_id)))
        .bearer_auth(&bob.access);
    assert_eq!(bob.client.send(unfriend).await.status, 204);
    for s in [&mut ada_socket, &mut bob_socket] {
        let ended = s.next("call:ended").await;
        assert_eq!(
            (ended["_id"].as_str(), ended["status"].as_str()),
            (Some(call.as_str()), Some("ended")),
            "{ended}"
        );
    }
    let ack = bob_socket.emit("call:join", json!({ "callId": call })).await;
    assert!(ack.get("error").is_some(), "{ack}");
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    assert_eq!(ack["error"]["code"], "not_friends", "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_live_calls_with_their_record_and_closes_every_socket() {
    let server = TestServer::start_with(|c| c.shutdown_grace_secs = 10).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call_id = ack["data"]["_id"].as_str().unwrap().to_string();
    bob_socket.next("call:incoming").await;
    let ack = bob_socket.emit("call:accept", json!({ "callId": call_id })).await;
    assert_eq!(ack["data"]["status"], "ongoing", "{ack}");
    let store = server.state.store.clone();

    // What SIGTERM does: the shutdown signal resolves and the server drains.
    let started = std::time::Instant::now();
    server.stop().await;
    let took = started.elapsed();
    let ended = bob_socket.next("call:ended").await;
    assert_eq!(
        (
            ended["_id"].as_str(),
            ended["status"].as_str(),
            ended["endReason"].as_str()
        ),
        (Some(call_id.as_str()), Some("ended"), Some("terminated")),
        "{ended}"
    );
    let record = bob_socket.next("message:new").await;
    assert_eq!(record["type"], "call", "{record}");
    for s in [&mut ada_socket, &mut bob_socket] {
        let reason = s.wait_disconnect(Duration::from_secs(5)).await;
        assert_eq!(
            reason.as_deref(),
            Some("transport close"),
            "the client is told the server went, and reconnects"
        );
    }
    assert!(
        took < Duration::from_secs(5),
        "stopping waited {took:?} for open sockets instead of closing them"
    );
    // The call's document says it ended, and when.
    let id = mongodb::bson::oid::ObjectId::parse_str(&call_id).unwrap();
    let saved = store.calls.by_id(id).await.unwrap().unwrap();
    assert_eq!(saved.status, huddle_signaling::CallStatus::Ended);
    assert!(saved.ended_at.is_some());
}
