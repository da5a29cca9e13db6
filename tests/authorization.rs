//! SECURITY.md's authorization matrix for the chat routes and events: every route x {no
//! token, bad token}, and each resource route x {outsider, removed member, non-admin} gets
//! the documented refusal. Forbidden and nonexistent resources answer alike.

mod common;

use common::sio;
use common::{Reply, Session, TestServer};
use serde_json::{Value, json};

struct World {
    server: TestServer,
    ada: Session,
    bob: Session,
    eve: Session,
    rex: Session,
    direct: String,
    group: String,
    group_chat: String,
    message: String,
    group_message: String,
    request: String,
    notification: String,
}

async fn call(who: &Session, token: Option<&str>, method: &str, path: &str, body: &Value) -> Reply {
    let c = &who.client;
    let url = c.url(path);
    let mut request = match method {
        "GET" => c.http.get(url),
        "POST" => c.http.post(url).json(body),
        "PATCH" => c.http.patch(url).json(body),
        "DELETE" => c.http.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    c.send(request).await
}

async fn ok(who: &Session, method: &str, path: &str, body: Value) -> Value {
    let r = call(who, Some(&who.access), method, path, &body).await;
    assert!((200..300).contains(&r.status), "{method} {path}: {r:?}");
    r.body
}

async fn world() -> World {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let rex = server.signed_up("rex").await;
    let cat = server.signed_up("cat").await;

    let fr = ok(
        &ada,
        "POST",
        "/api/v1/friends/requests",
        json!({ "userId": bob.user_id }),
    )
    .await;
    ok(
        &bob,
        "POST",
        &format!("/api/v1/friends/requests/{}/accept", fr["_id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let direct = ok(&ada, "POST", "/api/v1/chats", json!({ "userId": bob.user_id })).await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = ok(
        &ada,
        "POST",
        "/api/v1/groups",
        json!({ "name": "G", "members": [bob.user_id, rex.user_id] }),
    )
    .await;
    let group = g["_id"].as_str().unwrap().to_string();
    let group_chat = g["chatId"].as_str().unwrap().to_string();
    ok(&bob, "POST", &format!("/api/v1/groups/{group}/accept"), json!({})).await;
    ok(&rex, "POST", &format!("/api/v1/groups/{group}/accept"), json!({})).await;
    let message = ok(
        &ada,
        "POST",
        &format!("/api/v1/chats/{direct}/messages"),
        json!({ "content": "m" }),
    )
    .await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let group_message = ok(
        &ada,
        "POST",
        &format!("/api/v1/chats/{group_chat}/messages"),
        json!({ "content": "g" }),
    )
    .await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &ada,
        "DELETE",
        &format!("/api/v1/groups/{group}/members/{}", rex.user_id),
        json!({}),
    )
    .await;
    let request = ok(
        &ada,
        "POST",
        "/api/v1/friends/requests",
        json!({ "userId": cat.user_id }),
    )
    .await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let notes = ok(&bob, "GET", "/api/v1/notifications", json!({})).await;
    let notification = notes["data"][0]["_id"]
        .as_str()
        .expect("bob has a notification")
        .to_string();
    World {
        server,
        ada,
        bob,
        eve,
        rex,
        direct,
        group,
        group_chat,
        message,
        group_message,
        request,
        notification,
    }
}

/// Every authenticated route, with a body that would succeed for the right caller.
fn routes(w: &World) -> Vec<(&'static str, String, Value)> {
    let (d, g, gc, m, gm, fr, n) = (
        &w.direct,
        &w.group,
        &w.group_chat,
        &w.message,
        &w.group_message,
        &w.request,
        &w.notification,
    );
    let bob = &w.bob.user_id;
    vec![
        (
            "POST",
            "/api/v1/friends/requests".into(),
            json!({ "userId": w.eve.user_id }),
        ),
        ("POST", format!("/api/v1/friends/requests/{fr}/accept"), json!({})),
        ("POST", format!("/api/v1/friends/requests/{fr}/reject"), json!({})),
        ("DELETE", format!("/api/v1/friends/requests/{fr}"), json!({})),
        ("GET", "/api/v1/friends".into(), json!({})),
        ("GET", "/api/v1/friends/requests".into(), json!({})),
        ("DELETE", format!("/api/v1/friends/{bob}"), json!({})),
        ("GET", "/api/v1/users/non-friends".into(), json!({})),
        ("GET", "/api/v1/chats".into(), json!({})),
        ("POST", "/api/v1/chats".into(), json!({ "userId": bob })),
        ("GET", format!("/api/v1/chats/{d}"), json!({})),
        ("GET", "/api/v1/chats/search?q=a".into(), json!({})),
        ("POST", format!("/api/v1/chats/{d}/pin"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/unpin"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/read"), json!({ "seq": 1 })),
        ("GET", format!("/api/v1/chats/{d}/starred-messages"), json!({})),
        ("GET", format!("/api/v1/chats/{d}/messages"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/messages"), json!({ "content": "x" })),
        ("GET", format!("/api/v1/chats/{gc}/messages"), json!({})),
        (
            "POST",
            format!("/api/v1/chats/{gc}/messages"),
            json!({ "content": "x" }),
        ),
        ("PATCH", format!("/api/v1/messages/{m}"), json!({ "content": "x" })),
        ("DELETE", format!("/api/v1/messages/{m}"), json!({})),
        ("POST", format!("/api/v1/messages/{m}/star"), json!({})),
        ("POST", format!("/api/v1/messages/{gm}/unstar"), json!({})),
        ("POST", "/api/v1/groups".into(), json!({ "name": "x" })),
        ("GET", "/api/v1/groups".into(), json!({})),
        ("GET", format!("/api/v1/groups/{g}"), json!({})),
        ("PATCH", format!("/api/v1/groups/{g}"), json!({ "name": "x" })),
        (
            "POST",
            format!("/api/v1/groups/{g}/invite"),
            json!({ "userId": w.eve.user_id }),
        ),
        ("POST", format!("/api/v1/groups/{g}/accept"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/reject"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/leave"), json!({})),
        ("DELETE", format!("/api/v1/groups/{g}/members/{bob}"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/admins/{bob}"), json!({})),
        ("DELETE", format!("/api/v1/groups/{g}/admins/{bob}"), json!({})),
        ("GET", "/api/v1/notifications".into(), json!({})),
        ("POST", format!("/api/v1/notifications/{n}/read"), json!({})),
        ("POST", "/api/v1/notifications/read-all".into(), json!({})),
        ("POST", "/api/v1/calls".into(), json!({ "chatId": d, "type": "audio" })),
        ("GET", "/api/v1/calls".into(), json!({})),
        ("GET", "/api/v1/calls/ice-servers".into(), json!({})),
        ("GET", format!("/api/v1/calls/{m}"), json!({})),
        ("POST", format!("/api/v1/calls/{m}/end"), json!({})),
        (
            "POST",
            "/api/v1/media/uploads".into(),
            json!({ "kind": "attachment", "chatId": d, "fileName": "a.png", "contentType": "image/png", "size": 9 }),
        ),
        ("POST", format!("/api/v1/media/uploads/{m}/complete"), json!({})),
        ("GET", format!("/api/v1/media/{m}"), json!({})),
        ("GET", "/api/v1/chats/ai".into(), json!({})),
        ("GET", "/api/v1/chats/ai/messages".into(), json!({})),
        ("POST", "/api/v1/chats/ai/messages".into(), json!({ "content": "hi" })),
        ("POST", "/api/v1/chats/ai/cancel".into(), json!({ "messageId": m })),
        ("POST", format!("/api/v1/chats/{d}/summarize"), json!({})),
    ]
}

#[tokio::test]
async fn every_route_refuses_missing_and_bad_tokens() {
    let w = world().await;
    for (method, path, body) in routes(&w) {
        for token in [None, Some("not-a-token"), Some(w.ada.refresh.as_str())] {
            let r = call(&w.eve, token, method, &path, &body).await;
            assert_eq!(
                (r.status, r.code()),
                (401, "unauthorized"),
                "{method} {path} with {token:?}: {r:?}"
            );
        }
    }
    w.server.stop().await;
}

#[tokio::test]
async fn outsiders_and_removed_members_get_not_found_like_a_missing_resource() {
    let w = world().await;
    let (d, g, gc, m, gm, fr, n) = (
        &w.direct,
        &w.group,
        &w.group_chat,
        &w.message,
        &w.group_message,
        &w.request,
        &w.notification,
    );
    let missing = "0123456789abcdef01234567";
    let bob = &w.bob.user_id;
    // Routes on someone else's resources, for the outsider eve.
    let eve_routes: Vec<(&str, String, Value)> = vec![
        ("POST", format!("/api/v1/friends/requests/{fr}/accept"), json!({})),
        ("POST", format!("/api/v1/friends/requests/{fr}/reject"), json!({})),
        ("DELETE", format!("/api/v1/friends/requests/{fr}"), json!({})),
        ("DELETE", format!("/api/v1/friends/{bob}"), json!({})),
        ("GET", format!("/api/v1/chats/{d}"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/pin"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/unpin"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/read"), json!({ "seq": 1 })),
        ("GET", format!("/api/v1/chats/{d}/starred-messages"), json!({})),
        ("GET", format!("/api/v1/chats/{d}/messages"), json!({})),
        ("POST", format!("/api/v1/chats/{d}/messages"), json!({ "content": "x" })),
        ("POST", format!("/api/v1/chats/{d}/summarize"), json!({})),
        ("PATCH", format!("/api/v1/messages/{m}"), json!({ "content": "x" })),
        ("DELETE", format!("/api/v1/messages/{m}"), json!({})),
        ("POST", format!("/api/v1/messages/{m}/star"), json!({})),
        ("POST", format!("/api/v1/messages/{m}/unstar"), json!({})),
        ("GET", format!("/api/v1/groups/{g}"), json!({})),
        ("PATCH", format!("/api/v1/groups/{g}"), json!({ "name": "x" })),
        (
            "POST",
            format!("/api/v1/groups/{g}/invite"),
            json!({ "userId": w.eve.user_id }),
        ),
        ("POST", format!("/api/v1/groups/{g}/accept"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/reject"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/leave"), json!({})),
        ("DELETE", format!("/api/v1/groups/{g}/members/{bob}"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/admins/{bob}"), json!({})),
        ("DELETE", format!("/api/v1/groups/{g}/admins/{bob}"), json!({})),
        ("POST", format!("/api/v1/notifications/{n}/read"), json!({})),
    ];
    for (method, path, body) in &eve_routes {
        let r = call(&w.eve, Some(&w.eve.access), method, path, body).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "eve {method} {path}: {r:?}");
        // The same route on an id that exists nowhere answers exactly alike.
        let ghost = path
            .replacen(d, missing, 1)
            .replacen(g, missing, 1)
            .replacen(m, missing, 1)
            .replacen(fr, missing, 1)
            .replacen(n, missing, 1);
        if ghost != *path {
            let r2 = call(&w.eve, Some(&w.eve.access), method, &ghost, body).await;
            assert_eq!((r2.status, &r2.body), (r.status, &r.body), "{method} {ghost}");
        }
    }
    // The removed member rex: the group's chat and messages are closed to him now.
    for (method, path, body) in [
        ("GET", format!("/api/v1/chats/{gc}"), json!({})),
        ("GET", format!("/api/v1/chats/{gc}/messages"), json!({})),
        (
            "POST",
            format!("/api/v1/chats/{gc}/messages"),
            json!({ "content": "x" }),
        ),
        ("POST", format!("/api/v1/chats/{gc}/read"), json!({ "seq": 1 })),
        ("POST", format!("/api/v1/messages/{gm}/star"), json!({})),
        ("GET", format!("/api/v1/groups/{g}"), json!({})),
        ("POST", format!("/api/v1/groups/{g}/leave"), json!({})),
    ] {
        let r = call(&w.rex, Some(&w.rex.access), method, &path, &body).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "rex {method} {path}: {r:?}");
    }
    let chats = ok(&w.rex, "GET", "/api/v1/chats", json!({})).await;
    assert_eq!(
        chats["data"],
        json!([]),
        "a removed member's list no longer shows the chat"
    );
    w.server.stop().await;
}

#[tokio::test]
async fn non_admins_cannot_manage_a_group_and_members_cannot_touch_others_messages() {
    let w = world().await;
    let (g, gm) = (&w.group, &w.group_message);
    let ada = &w.ada.user_id;
    for (method, path, body) in [
        ("PATCH", format!("/api/v1/groups/{g}"), json!({ "name": "x" })),
        (
            "POST",
            format!("/api/v1/groups/{g}/invite"),
            json!({ "userId": w.eve.user_id }),
        ),
        ("DELETE", format!("/api/v1/groups/{g}/members/{ada}"), json!({})),
        (
            "POST",
            format!("/api/v1/groups/{g}/admins/{}", w.bob.user_id),
            json!({}),
        ),
        ("DELETE", format!("/api/v1/groups/{g}/admins/{ada}"), json!({})),
    ] {
        let r = call(&w.bob, Some(&w.bob.access), method, &path, &body).await;
        assert_eq!((r.status, r.code()), (403, "not_admin"), "bob {method} {path}: {r:?}");
    }
    for (method, path, body) in [
        ("PATCH", format!("/api/v1/messages/{gm}"), json!({ "content": "x" })),
        ("DELETE", format!("/api/v1/messages/{gm}"), json!({})),
    ] {
        let r = call(&w.bob, Some(&w.bob.access), method, &path, &body).await;
        assert_eq!((r.status, r.code()), (403, "not_sender"), "bob {method} {path}: {r:?}");
    }
    // Mass assignment: clients cannot set sender, seq or timestamps.
    let r = call(
        &w.bob,
        Some(&w.bob.access),
        "POST",
        &format!("/api/v1/chats/{}/messages", w.group_chat),
        &json!({ "content": "x", "sender": ada, "seq": 99, "createdAt": "2020-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    w.server.stop().await;
}

#[tokio::test]
async fn socket_events_refuse_outsiders_and_removed_members() {
    let w = world().await;
    let url = w.server.url("");
    let stale = w.rex.access.clone();
    for (who, chat) in [(&w.eve, &w.direct), (&w.rex, &w.group_chat)] {
        let mut s = sio::connect(&url, Some(&who.access)).await.expect("connects");
        for (event, data) in [
            (
                "message:send",
                json!({ "chatId": chat, "clientMsgId": "x", "content": "x" }),
            ),
            ("message:read", json!({ "chatId": chat, "seq": 1 })),
            ("typing:start", json!({ "chatId": chat })),
            ("typing:stop", json!({ "chatId": chat })),
            ("message:edit", json!({ "messageId": w.group_message, "content": "x" })),
            ("message:delete", json!({ "messageId": w.message })),
            ("message:star", json!({ "messageId": w.group_message })),
        ] {
            let ack = s.emit(event, data).await;
            assert_eq!(ack["error"]["code"], "not_found", "{event}: {ack}");
        }
        let ack = s
            .emit("chat:sync", json!({ "chats": [{ "chatId": chat, "lastSeq": 0 }] }))
            .await;
        assert_eq!(ack["data"]["chats"], json!([]), "{ack}");
        ok(
            &w.ada,
            "POST",
            &format!("/api/v1/chats/{chat}/messages"),
            json!({ "content": "secret" }),
        )
        .await;
        s.expect_none("message:new").await;
    }
    // Tokens of ended sessions are refused at the handshake.
    ok(&w.rex, "POST", "/api/v1/auth/logout", json!({})).await;
    let refused = sio::connect(&url, Some(&stale)).await.expect_err("revoked session");
    assert!(
        refused["message"].as_str().unwrap().starts_with("unauthorized"),
        "{refused}"
    );
    w.server.stop().await;
}
