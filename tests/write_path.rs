//! Whole-server tests of the message write path under contention, driven with the official
//! `socket.io-client`: many members of one chat sending at once, retries inside the storm,
//! a write the database refuses, a member removed mid-storm, two nodes on one database,
//! and a client that sends more than it may have in flight.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::sio::SioClient;
use common::{Session, TestServer, group_with, socket};
use serde_json::{Value, json};

fn send(chat: &str, client_msg_id: &str, content: &str) -> Value {
    json!({ "chatId": chat, "clientMsgId": client_msg_id, "type": "text", "content": content })
}

/// Signs up `n` users `<prefix>0..n` and puts them in one group chat (the first is admin).
async fn group_of(server: &TestServer, prefix: &str, n: usize) -> (Vec<Session>, String, String) {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(server.signed_up(&format!("{prefix}user{i}")).await);
    }
    let others: Vec<&Session> = users[1..].iter().collect();
    let (group, chat) = group_with(&users[0], "Storm", &others).await;
    (users, group, chat)
}

/// One connected socket per user, in order.
async fn sockets_of(server: &TestServer, users: &[Session]) -> Vec<SioClient> {
    let mut sockets = Vec::new();
    for user in users {
        sockets.push(socket(server, user).await);
    }
    sockets
}

/// Every socket sends its batch at once, all sockets together; returns each socket with its
/// acks, in the order of its batch.
async fn storm(sockets: Vec<SioClient>, batches: Vec<Vec<Value>>) -> Vec<(SioClient, Vec<Value>)> {
    let tasks: Vec<_> = sockets
        .into_iter()
        .zip(batches)
        .map(|(mut socket, batch)| {
            tokio::spawn(async move {
                let acks = socket.emit_all("message:send", batch).await;
                (socket, acks)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("storm task"));
    }
    out
}

/// The chat's whole history, oldest first, as `seq -> message`.
async fn history(who: &Session, chat: &str) -> BTreeMap<i64, Value> {
    let mut all = BTreeMap::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(seq) => format!("/api/v1/chats/{chat}/messages?limit=200&before={seq}"),
            None => format!("/api/v1/chats/{chat}/messages?limit=200"),
        };
        let page = who.client.get(&path, Some(&who.access)).await;
        assert_eq!(page.status, 200, "{page:?}");
        let messages = page.body["data"].as_array().expect("a page").clone();
        if messages.is_empty() {
            return all;
        }
        before = messages[0]["seq"].as_i64();
        for m in messages {
            all.insert(m["seq"].as_i64().expect("seq"), m);
        }
    }
}

/// Asserts the stored seqs are exactly 1..=n and that every successful ack is the stored
/// message under its seq; returns the acks' ids.
fn assert_gapless_and_acked(stored: &BTreeMap<i64, Value>, acks: &[&Value], n: usize) -> HashSet<String> {
    let seqs: Vec<i64> = stored.keys().copied().collect();
    assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>(), "stored seqs are gapless");
    let mut ids = HashSet::new();
    for ack in acks {
        let data = &ack["data"];
        let seq = data["seq"].as_i64().unwrap_or_else(|| panic!("a stored ack: {ack}"));
        let kept = &stored[&seq];
        assert_eq!(kept["_id"], data["_id"], "ack {ack} is the stored message {kept}");
        assert_eq!(kept["clientMsgId"], data["clientMsgId"]);
        ids.insert(data["_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn members_sending_at_once_get_gapless_seqs_one_message_per_retry_and_each_delivery_once() {
    const MEMBERS: usize = 8;
    const EACH: usize = 24;
    let server = TestServer::start().await;
    let (users, _group, chat) = group_of(&server, "s", MEMBERS).await;
    let sockets = sockets_of(&server, &users).await;
    // Each member sends EACH messages at once; the first also retries one clientMsgId in
    // the middle of its burst, as a client whose ack was slow would.
    let batches: Vec<Vec<Value>> = (0..MEMBERS)
        .map(|m| {
            let mut batch: Vec<Value> = (0..EACH)
                .map(|i| send(&chat, &format!("m{m}-{i}"), &format!("from {m}: {i}")))
                .collect();
            if m == 0 {
                batch.insert(EACH / 2, send(&chat, "m0-3", "from 0: 3"));
            }
            batch
        })
        .collect();
    let results = storm(sockets, batches).await;

    let all_acks: Vec<&Value> = results.iter().flat_map(|(_, acks)| acks.iter()).collect();
    for ack in &all_acks {
        assert!(ack.get("data").is_some(), "every send is acked with its message: {ack}");
    }
    let first = results[0].1.clone();
    assert_eq!(
        first[3]["data"]["_id"],
        first[EACH / 2]["data"]["_id"],
        "a retry is the same message"
    );
    let total = MEMBERS * EACH;
    let stored = history(&users[0], &chat).await;
    let ids = assert_gapless_and_acked(&stored, &all_acks, total);
    assert_eq!(ids.len(), total, "one message per clientMsgId");

    // A retry after the storm answers with the stored message and stores nothing.
    let (mut first_socket, _) = results.into_iter().next().unwrap();
    let again = first_socket
        .emit("message:send", send(&chat, "m0-3", "from 0: 3"))
        .await;
    assert_eq!(again["data"]["_id"], first[3]["data"]["_id"], "{again}");
    assert_eq!(history(&users[0], &chat).await.len(), total);

    // The chat's summary moved to the newest message.
    let list = users[1].client.get("/api/v1/chats", Some(&users[1].access)).await;
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["_id"] == chat.as_str())
        .expect("the chat is listed")
        .clone();
    assert_eq!(listed["lastMessage"]["seq"], total as i64, "{listed}");
    server.stop().await;
}

/// The chat's own `lastSeq` is a checkpoint the writer moves at most once a second: what
/// clients read (chat list, replay, read receipts) must come from the messages themselves.
#[tokio::test]
async fn readers_see_the_newest_message_while_the_chat_checkpoint_trails_it() {
    let server = TestServer::start().await;
    let (users, _group, chat) = group_of(&server, "trail", 2).await;
    let mut sockets = sockets_of(&server, &users).await;
    let listed = |who: &Session| {
        let (client, access, chat) = (who.client.clone(), who.access.clone(), chat.clone());
        async move {
            let list = client.get("/api/v1/chats", Some(&access)).await;
            list.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["_id"] == chat.as_str())
                .expect("the chat is listed")
                .clone()
        }
    };
    for i in 1..=2 {
        let ack = sockets[0]
            .emit("message:send", send(&chat, &format!("t{i}"), &format!("m{i}")))
            .await;
        assert_eq!(ack["data"]["seq"], i, "{ack}");
    }
    // Past the checkpoint interval: the chat's `lastSeq` is 2 in the database now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ack = sockets[0].emit("message:send", send(&chat, "t3", "m3")).await;
    assert_eq!(ack["data"]["seq"], 3, "{ack}");
    let newest_id = ack["data"]["_id"].as_str().unwrap().to_string();

    // At once, before the checkpoint moves: the list, a replay from 2, and a read of 3.
    let seen = listed(&users[1]).await;
    assert_eq!(
        (
            seen["lastSeq"].as_i64(),
            seen["lastMessage"]["content"].as_str(),
            seen["unreadCount"].as_i64()
        ),
        (Some(3), Some("m3"), Some(3)),
        "{seen}"
    );
    let ack = sockets[1]
        .emit("chat:sync", json!({ "chats": [{ "chatId": chat, "lastSeq": 2 }] }))
        .await;
    let synced = &ack["data"]["chats"][0];
    assert_eq!(synced["lastSeq"], 3, "{ack}");
    let replayed: Vec<&str> = synced["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(replayed, ["m3"], "{ack}");
    let ack = sockets[1]
        .emit("message:read", json!({ "chatId": chat, "seq": 3 }))
        .await;
    assert_eq!(ack["data"]["seq"], 3, "{ack}");

    // The newest message deleted: its content never comes back in the list, not even
    // after the checkpoint has moved past it.
    let ack = sockets[0]
        .emit("message:delete", json!({ "messageId": newest_id }))
        .await;
    assert_eq!(ack["data"]["deleted"], true, "{ack}");
    for wait in [0, 1500] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let seen = listed(&users[1]).await;
        assert_eq!(
            (
                seen["lastMessage"]["deleted"].as_bool(),
                seen["lastMessage"]["content"].as_str()
            ),
            (Some(true), Some("")),
            "{seen}"
        );
        assert_eq!(seen["lastSeq"], 3, "{seen}");
    }
    server.stop().await;
}

#[tokio::test]
async fn every_member_receives_each_stored_message_exactly_once() {
    const MEMBERS: usize = 5;
    const EACH: usize = 20;
    let server = TestServer::start().await;
    let (users, _group, chat) = group_of(&server, "d", MEMBERS).await;
    let sockets = sockets_of(&server, &users).await;
    let batches = (0..MEMBERS)
        .map(|m| (0..EACH).map(|i| send(&chat, &format!("d{m}-{i}"), "hi")).collect())
        .collect();
    let results = storm(sockets, batches).await;
    let total = MEMBERS * EACH;
    for (mut socket, _) in results {
        let mut seen = HashMap::new();
        for _ in 0..total {
            let event = socket.next("message:new").await;
            *seen.entry(event["seq"].as_i64().unwrap()).or_insert(0) += 1;
        }
        socket.expect_none("message:new").await;
        assert_eq!(seen.len(), total, "every message arrived");
        assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_send_the_database_refuses_is_never_acked_and_leaves_no_gap() {
    let server = TestServer::start().await;
    let (users, _group, chat) = group_of(&server, "f", 4).await;
    // The database refuses one kind of document: those writes fail inside the storm's batches.
    server
        .state
        .store
        .db
        .run_command(mongodb::bson::doc! {
            "collMod": "messages",
            "validator": { "content": { "$ne": "refuse me" } },
        })
        .await
        .expect("the database takes a validator");
    let sockets = sockets_of(&server, &users).await;
    let batches = (0..users.len())
        .map(|m| {
            (0..20)
                .map(|i| {
                    let content = if i % 5 == 2 { "refuse me" } else { "fine" };
                    send(&chat, &format!("f{m}-{i}"), content)
                })
                .collect()
        })
        .collect();
    let results = storm(sockets, batches).await;
    let (mut refused, mut acked) = (0, Vec::new());
    for (_, acks) in &results {
        for (i, ack) in acks.iter().enumerate() {
            if i % 5 == 2 {
                assert!(ack.get("error").is_some(), "a refused write is not acked: {ack}");
                refused += 1;
            } else {
                acked.push(ack);
            }
        }
    }
    assert_eq!(refused, 16);
    let stored = history(&users[0], &chat).await;
    assert_gapless_and_acked(&stored, &acked, acked.len());
    assert!(stored.values().all(|m| m["content"] == "fine"));
    server.stop().await;
}

#[tokio::test]
async fn a_member_removed_mid_storm_gets_nothing_more_and_cannot_send() {
    let server = TestServer::start().await;
    let (users, group, chat) = group_of(&server, "r", 4).await;
    let removed = &users[3];
    let mut removed_socket = socket(&server, removed).await;
    let sockets = sockets_of(&server, &users[1..3]).await;
    let batches = (1..3)
        .map(|m| (0..20).map(|i| send(&chat, &format!("r{m}-{i}"), "before")).collect())
        .collect();
    let storming = tokio::spawn(storm(sockets, batches));
    tokio::time::sleep(Duration::from_millis(30)).await;
    let admin = &users[0];
    let r = admin
        .client
        .send(
            admin
                .client
                .http
                .delete(
                    admin
                        .client
                        .url(&format!("/api/v1/groups/{group}/members/{}", removed.user_id)),
                )
                .bearer_auth(&admin.access),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Everything sent from here on happens after the removal.
    let results = storming.await.unwrap();
    let (mut after_socket, _) = results.into_iter().next().unwrap();
    let after = after_socket.emit("message:send", send(&chat, "after-1", "after")).await;
    let after_seq = after["data"]["seq"].as_i64().expect("members still send");

    let own = removed_socket
        .emit("message:send", send(&chat, "x-1", "still here?"))
        .await;
    assert_eq!(own["error"]["code"], "not_found", "{own}");
    removed_socket
        .expect_none_within("__settle__", Duration::from_millis(500))
        .await;
    let received = removed_socket.take_all("message:new");
    assert!(
        received.iter().all(|m| m["seq"].as_i64().unwrap() < after_seq),
        "nothing sent after the removal reached the removed member: {received:?}"
    );
    let stored = history(admin, &chat).await;
    assert!(stored.values().all(|m| m["clientMsgId"] != "x-1"));
    server.stop().await;
}

#[tokio::test]
async fn two_nodes_on_one_database_share_one_gapless_seq() {
    let first = TestServer::start().await;
    let db = first.state.config.mongodb_db.clone();
    let second = TestServer::start_with(|c| c.mongodb_db = db).await;
    let (users, _group, chat) = group_of(&first, "n", 4).await;
    let mut sockets = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let node = if i % 2 == 0 { &first } else { &second };
        sockets.push(socket(node, user).await);
    }
    let batches = (0..users.len())
        .map(|m| (0..25).map(|i| send(&chat, &format!("n{m}-{i}"), "hi")).collect())
        .collect();
    let results = storm(sockets, batches).await;
    let acks: Vec<&Value> = results.iter().flat_map(|(_, acks)| acks.iter()).collect();
    for ack in &acks {
        assert!(ack.get("data").is_some(), "{ack}");
    }
    let stored = history(&users[0], &chat).await;
    assert_gapless_and_acked(&stored, &acks, 100);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_socket_past_its_in_flight_limit_is_refused_as_overloaded_never_internal() {
    let server = TestServer::start().await;
    let (users, _group, chat) = group_of(&server, "o", 2).await;
    let mut sender = socket(&server, &users[0]).await;
    let burst = (0..200).map(|i| send(&chat, &format!("o-{i}"), "flood")).collect();
    let acks = sender.emit_all("message:send", burst).await;
    let mut acked = Vec::new();
    let mut overloaded = 0;
    for ack in &acks {
        if ack.get("data").is_some() {
            acked.push(ack);
        } else {
            assert_eq!(ack["error"]["code"], "overloaded", "{ack}");
            assert!(ack["error"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{ack}");
            overloaded += 1;
        }
    }
    assert!(overloaded > 0, "200 sends at once exceed one socket's in-flight limit");
    let stored = history(&users[0], &chat).await;
    assert_gapless_and_acked(&stored, &acked, acked.len());
    // Once the burst is answered the socket sends again.
    let ack = sender.emit("message:send", send(&chat, "o-after", "calm")).await;
    assert!(ack.get("data").is_some(), "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn notifications_a_stopped_node_left_unwritten_are_written_once_at_the_next_start() {
    use mongodb::bson::{Document, doc, oid::ObjectId};
    let server = TestServer::start().await;
    let ada = server.signed_up("adauser").await;
    let bob = server.signed_up("bobuser").await;
    let chat = common::friends_with_chat(&ada, &bob).await;
    let notices = || async {
        let r = bob.client.get("/api/v1/notifications", Some(&bob.access)).await;
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "message")
            .cloned()
            .collect::<Vec<_>>()
    };
    // Bob is away: the message is acked, then his notice is written and the mark cleared.
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/messages"),
            &ada.access,
            &json!({ "content": "ping" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = ObjectId::parse_str(r.body["_id"].as_str().unwrap()).unwrap();
    let first = common::eventually(|| async { notices().await.into_iter().next() }).await;
    assert_eq!(first["relatedId"], id.to_hex());
    let messages = server.state.store.db.collection::<Document>("messages");
    let pending = || async {
        messages
            .count_documents(doc! { "_id": id, "notifyPending": true })
            .await
            .unwrap()
    };
    common::eventually(|| async { (pending().await == 0).then_some(()) }).await;

    // A node that stopped after the ack, before writing the notice, leaves the mark set.
    messages
        .update_one(doc! { "_id": id }, doc! { "$set": { "notifyPending": true } })
        .await
        .unwrap();
    server
        .state
        .store
        .db
        .collection::<Document>("notifications")
        .delete_many(doc! { "relatedId": id })
        .await
        .unwrap();
    assert!(notices().await.is_empty());
    huddle::service::notifications::resume_pending(&server.state).await;
    let again = notices().await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["_id"], first["_id"], "the same notice, under the same id");
    assert_eq!(pending().await, 0);

    // Writing it twice (a node that stopped between the notice and the mark) stores one.
    messages
        .update_one(doc! { "_id": id }, doc! { "$set": { "notifyPending": true } })
        .await
        .unwrap();
    huddle::service::notifications::resume_pending(&server.state).await;
    assert_eq!(notices().await.len(), 1);
    server.stop().await;
}
