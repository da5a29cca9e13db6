//! Whole-server tests of the AI chat against a local server speaking the Chat Completions
//! streaming wire format (`common::openai`): answers stream over Socket.IO (the official
//! `socket.io-client`) in order and are stored whole; a cancel keeps the partial answer;
//! upstream failures are retried, then reported with the question kept and no half answer;
//! without configuration the user is told so; summaries are for members and cover only
//! what the caller has not read.

mod common;

use std::time::Duration;

use common::openai::{FakeOpenAi, Scripted};
use common::{TestServer, friends_with_chat, socket};
use huddle::Config;
use serde_json::{Value, json};

/// A server whose assistant is the fake, with quick retries.
async fn server_with(fake: &FakeOpenAi, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let base = fake.base_url.clone();
    TestServer::start_with(move |c| {
        c.openai_base_url = Some(base);
        c.openai_api_key = Some(huddle::config::Secret::new("sk-test-key"));
        c.ai_model = "test-model".into();
        c.ai_system_prompt = "You are a terse test assistant.".into();
        c.ai_retries = 2;
        c.ai_retry_backoff_ms = 10;
        adjust(c);
    })
    .await
}

fn ask(client_msg_id: &str, content: &str) -> Value {
    json!({ "clientMsgId": client_msg_id, "content": content })
}

/// The `messages` of a recorded request as `(role, content)` pairs.
fn roles(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn answers_stream_in_order_and_the_stored_answer_is_their_concatenation() {
    let fake = FakeOpenAi::start().await;
    let pieces = ["Hel", "lo", ", Ada", "! Two ", "plus two ", "is four."];
    fake.then(Scripted::stream(&pieces));
    let server = server_with(&fake, |_| {}).await;
    let ada = server.signed_up("ada").await;
    let mut sock = socket(&server, &ada).await;

    // The chat list carries the AI chat, pinned; it exists from first use on.
    let list = ada.client.get("/api/v1/chats", Some(&ada.access)).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body["ai"]["pinned"], true, "{list:?}");
    assert_eq!(list.body["ai"]["configured"], true);
    assert_eq!(list.body["ai"]["model"], "test-model");

    let ack = sock.emit("ai:ask", ask("q-1", "What is two plus two?")).await;
    let question = &ack["data"]["question"];
    assert_eq!(question["role"], "user", "{ack}");
    assert_eq!(question["content"], "What is two plus two?");
    let answer_id = ack["data"]["messageId"].as_str().expect("answer id").to_string();

    let done = sock.next("ai:done").await;
    let deltas = sock.take_all("ai:delta");
    let texts: Vec<&str> = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    assert_eq!(texts, pieces, "deltas arrive in order, one per piece");
    for (i, delta) in deltas.iter().enumerate() {
        assert_eq!(delta["messageId"], answer_id.as_str());
        assert_eq!(delta["questionId"], question["_id"]);
        assert_eq!(delta["index"], i as u64);
    }
    assert_eq!(done["_id"], answer_id.as_str());
    assert_eq!(done["role"], "assistant");
    assert_eq!(done["status"], "complete");
    assert_eq!(done["questionId"], question["_id"]);
    assert_eq!(done["model"], "test-model");
    assert_eq!(done["content"], pieces.concat());

    // What the assistant's server received: the model, streaming, the key, the system
    // prompt and the question.
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(seen[0].body["model"], "test-model");
    assert_eq!(seen[0].body["stream"], true);
    assert_eq!(
        roles(&seen[0].body),
        [
            ("system".to_string(), "You are a terse test assistant.".to_string()),
            ("user".to_string(), "What is two plus two?".to_string()),
        ]
    );

    // Stored: the question and the whole answer, in order.
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let messages = history.body["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 2, "{history:?}");
    assert_eq!(
        (messages[0]["seq"].as_i64(), messages[1]["seq"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(messages[1]["content"], pieces.concat());

    // Asking again with the same clientMsgId returns the stored answer; nothing is sent.
    let again = sock.emit("ai:ask", ask("q-1", "What is two plus two?")).await;
    assert_eq!(again["data"]["answer"]["content"], pieces.concat(), "{again}");
    assert_eq!(fake.seen().len(), 1);

    // The next question carries the conversation so far; over REST the reply waits for the
    // stored answer, and the deltas still reach the asker's sockets.
    fake.then(Scripted::stream(&["Eight."]));
    let r = ada
        .client
        .post_auth(
            "/api/v1/chats/ai/messages",
            &ada.access,
            &json!({ "clientMsgId": "q-2", "content": "And four plus four?" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["answer"]["content"], "Eight.");
    assert_eq!(sock.next("ai:delta").await["text"], "Eight.");
    let sent = roles(&fake.seen()[1].body);
    let contents: Vec<&str> = sent.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        contents,
        [
            "You are a terse test assistant.",
            "What is two plus two?",
            pieces.concat().as_str(),
            "And four plus four?"
        ]
    );
    assert_eq!(sent[2].0, "assistant");
    server.stop().await;
}

#[tokio::test]
async fn the_conversation_sent_stays_within_the_budget() {
    let fake = FakeOpenAi::start().await;
    // 256 tokens: about 1024 characters for the prompt, the history and the question.
    let server = server_with(&fake, |c| c.ai_context_tokens = 256).await;
    let ada = server.signed_up("ada").await;
    for i in 0..4 {
        let long = format!("{i} {}", "words ".repeat(60));
        let r = ada
            .client
            .post_auth("/api/v1/chats/ai/messages", &ada.access, &json!({ "content": long }))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let last = fake.seen().last().expect("a request").body.clone();
    let sent = roles(&last);
    let chars: usize = sent.iter().map(|(_, c)| c.chars().count()).sum();
    assert!(chars <= 1024, "{chars} characters sent: {sent:?}");
    assert_eq!(sent[0].0, "system");
    assert!(
        sent.last().unwrap().1.starts_with("3 "),
        "the question is last: {sent:?}"
    );
    assert!(sent.len() < 8, "older messages were left out, newest kept: {sent:?}");
    assert!(
        sent.iter().any(|(_, c)| c.starts_with("2 ")),
        "the newest earlier one is kept"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_stream_and_keeps_the_partial_answer_marked_cancelled() {
    let fake = FakeOpenAi::start().await;
    fake.then(Scripted::StreamThenHang {
        pieces: vec!["Once ".into(), "upon ".into(), "a time".into()],
        gap: Duration::from_millis(20),
    });
    let server = server_with(&fake, |_| {}).await;
    let ada = server.signed_up("ada").await;
    let mut sock = socket(&server, &ada).await;

    let ack = sock.emit("ai:ask", ask("story", "Tell me a long story")).await;
    let answer_id = ack["data"]["messageId"].as_str().expect("answer id").to_string();
    for expected in ["Once ", "upon ", "a time"] {
        assert_eq!(sock.next("ai:delta").await["text"], expected);
    }
    // The stream now hangs; a second question meanwhile is refused, not queued.
    let busy = sock.emit("ai:ask", ask("other", "Another question")).await;
    assert_eq!(busy["error"]["code"], "ai_busy", "{busy}");
    // Cancelling someone else's (or an unknown) answer finds nothing.
    let wrong = sock
        .emit("ai:cancel", json!({ "messageId": "0123456789abcdef01234567" }))
        .await;
    assert_eq!(wrong["error"]["code"], "not_found", "{wrong}");

    let ack = sock.emit("ai:cancel", json!({ "messageId": answer_id })).await;
    assert!(ack["error"].is_null(), "{ack}");
    let done = sock.next("ai:done").await;
    assert_eq!(done["_id"], answer_id.as_str());
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["content"], "Once upon a time");

    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let messages = history.body["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 2, "{history:?}");
    assert_eq!(messages[1]["status"], "cancelled");
    assert_eq!(messages[1]["content"], "Once upon a time");

    // The slot is free again: the next question is answered.
    sock.emit("ai:ask", ask("next", "Short one")).await;
    assert_eq!(sock.next("ai:done").await["content"], "ok");
    server.stop().await;
}

#[tokio::test]
async fn upstream_failures_are_retried_then_reported_with_the_question_kept_and_no_half_answer() {
    let fake = FakeOpenAi::start().await;
    for _ in 0..3 {
        fake.then(Scripted::Status(500));
    }
    let server = server_with(&fake, |_| {}).await;
    let ada = server.signed_up("ada").await;
    let mut sock = socket(&server, &ada).await;

    let ack = sock.emit("ai:ask", ask("q-500", "Are you there?")).await;
    let question_id = ack["data"]["question"]["_id"].clone();
    let error = sock.next("ai:error").await;
    assert_eq!(error["code"], "ai_unavailable", "{error}");
    assert_eq!(error["questionId"], question_id);
    assert_eq!(error["clientMsgId"], "q-500");
    assert!(error["message"].as_str().unwrap().contains("500"), "{error}");
    assert_eq!(fake.seen().len(), 3, "one try and two retries");
    sock.expect_none("ai:done").await;
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let messages = history.body["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 1, "the question is kept, no answer stored: {history:?}");
    assert_eq!(messages[0]["content"], "Are you there?");

    // Asking again with the same id retries it: a 429 then a 503 are retried, then it answers.
    fake.then(Scripted::Status(429))
        .then(Scripted::Status(503))
        .then(Scripted::stream(&["Yes, ", "here."]));
    sock.emit("ai:ask", ask("q-500", "Are you there?")).await;
    let done = sock.next("ai:done").await;
    assert_eq!(done["content"], "Yes, here.");
    assert_eq!(done["questionId"], question_id);
    assert_eq!(fake.seen().len(), 6);
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 2, "{history:?}");

    // A client error (400) is not retried; over REST it is a 502 naming the code.
    fake.then(Scripted::Status(400));
    let r = ada
        .client
        .post_auth(
            "/api/v1/chats/ai/messages",
            &ada.access,
            &json!({ "clientMsgId": "q-400", "content": "Bad one" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (502, "ai_unavailable"), "{r:?}");
    assert_eq!(fake.seen().len(), 7);
    assert!(
        !r.body["error"]["message"].as_str().unwrap().contains("127.0.0.1"),
        "upstream details stay in the logs: {r:?}"
    );
    // The asker's sockets heard of it too.
    assert_eq!(sock.next("ai:error").await["clientMsgId"], "q-400");

    // A server that breaks off mid-answer (no finish reason, no [DONE]): the pieces that came
    // streamed, then an error; no half answer is stored as if it were complete.
    fake.then(Scripted::StreamThenClose {
        pieces: vec!["Half of ".into(), "an answer".into()],
    });
    let ack = sock.emit("ai:ask", ask("q-cut", "Tell me everything")).await;
    let cut_question = ack["data"]["question"]["_id"].clone();
    let error = sock.next("ai:error").await;
    assert_eq!(
        (error["code"].as_str(), &error["questionId"]),
        (Some("ai_unavailable"), &cut_question),
        "{error}"
    );
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let answered: Vec<&Value> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["questionId"] == cut_question)
        .collect();
    assert!(answered.is_empty(), "{history:?}");
    server.stop().await;
}

#[tokio::test]
async fn without_configuration_the_user_is_told_and_the_question_is_kept() {
    let server = TestServer::start_with(|c| {
        c.ai_daily_quota = 2;
    })
    .await;
    let ada = server.signed_up("ada").await;
    let mut sock = socket(&server, &ada).await;

    let chat = ada.client.get("/api/v1/chats/ai", Some(&ada.access)).await;
    assert_eq!(chat.body["configured"], false, "{chat:?}");
    let ack = sock.emit("ai:ask", ask("q-1", "Hello?")).await;
    assert_eq!(ack["data"]["question"]["content"], "Hello?", "{ack}");
    let error = sock.next("ai:error").await;
    assert_eq!(error["code"], "ai_not_configured", "{error}");
    assert!(error["message"].as_str().unwrap().contains("OPENAI_API_KEY"), "{error}");

    let r = ada
        .client
        .post_auth(
            "/api/v1/chats/ai/messages",
            &ada.access,
            &json!({ "content": "Anyone?" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "ai_not_configured"), "{r:?}");
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let contents: Vec<&str> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Hello?", "Anyone?"], "both questions kept");

    // The daily quota (2 here) counts questions; the third is refused before it is stored.
    let r = ada
        .client
        .post_auth(
            "/api/v1/chats/ai/messages",
            &ada.access,
            &json!({ "content": "Third?" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "quota_exceeded"), "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    // Bad input is a clear 400, and the server's own id forms are not for clients.
    let r = ada
        .client
        .post_auth(
            "/api/v1/chats/ai/messages",
            &ada.access,
            &json!({ "clientMsgId": "answer-0123456789abcdef01234567", "content": "sneaky" }),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = ada
        .client
        .post_auth("/api/v1/chats/ai/messages", &ada.access, &json!({ "content": "  " }))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn asking_is_rate_limited_per_user() {
    let fake = FakeOpenAi::start().await;
    let server = server_with(&fake, |c| c.ai_rate_per_minute = 2).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    for i in 0..2 {
        let r = ada
            .client
            .post_auth(
                "/api/v1/chats/ai/messages",
                &ada.access,
                &json!({ "content": format!("q{i}") }),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = ada
        .client
        .post_auth("/api/v1/chats/ai/messages", &ada.access, &json!({ "content": "q3" }))
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{r:?}");
    let r = bob
        .client
        .post_auth("/api/v1/chats/ai/messages", &bob.access, &json!({ "content": "mine" }))
        .await;
    assert_eq!(r.status, 201, "another user has their own rate: {r:?}");
    server.stop().await;
}

#[tokio::test]
async fn summaries_are_for_members_and_cover_only_what_the_caller_has_not_read() {
    let fake = FakeOpenAi::start().await;
    let server = server_with(&fake, |_| {}).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let say = |text: &'static str| {
        let (bob, chat) = (&bob, chat.clone());
        async move {
            let r = bob
                .client
                .post_auth(
                    &format!("/api/v1/chats/{chat}/messages"),
                    &bob.access,
                    &json!({ "content": text }),
                )
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body["seq"].as_i64().unwrap()
        }
    };
    say("old news: the venue is booked").await;
    let read_up_to = say("old news: tickets are sold").await;
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/read"),
            &ada.access,
            &json!({ "seq": read_up_to }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    say("fresh: the band cancelled").await;
    say("fresh: can you call the caterer?").await;

    // Not a member: the same 404 as a chat that does not exist; nothing is asked.
    let r = eve
        .client
        .post_auth(&format!("/api/v1/chats/{chat}/summarize"), &eve.access, &json!({}))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(fake.seen().is_empty());

    fake.then(Scripted::stream(&["The band ", "cancelled; ", "call the caterer."]));
    let mut sock = socket(&server, &ada).await;
    let r = ada
        .client
        .post_auth(&format!("/api/v1/chats/{chat}/summarize"), &ada.access, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["unread"], 2);
    assert_eq!(r.body["message"]["content"], "The band cancelled; call the caterer.");
    assert_eq!(r.body["message"]["sourceChatId"], chat.as_str());
    // Streamed the same way as answers.
    assert_eq!(sock.next("ai:delta").await["text"], "The band ");
    assert_eq!(
        sock.next("ai:done").await["content"],
        "The band cancelled; call the caterer."
    );

    let sent = roles(&fake.seen()[0].body);
    let prompt = &sent.last().expect("a user message").1;
    assert!(prompt.contains("fresh: the band cancelled"), "{prompt}");
    assert!(prompt.contains("fresh: can you call the caterer?"), "{prompt}");
    assert!(prompt.contains("bob"), "senders are named: {prompt}");
    assert!(!prompt.contains("old news"), "read messages are left out: {prompt}");

    // Summarizing does not mark anything read, and once all is read there is nothing to ask.
    let r = ada
        .client
        .post_auth(
            &format!("/api/v1/chats/{chat}/read"),
            &ada.access,
            &json!({ "seq": 1000 }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = ada
        .client
        .post_auth(&format!("/api/v1/chats/{chat}/summarize"), &ada.access, &json!({}))
        .await;
    assert_eq!((r.status, r.body["unread"].as_u64()), (200, Some(0)), "{r:?}");
    assert!(r.body["message"].is_null());
    assert_eq!(fake.seen().len(), 1);

    // Over Socket.IO, a non-member is refused the same way.
    let mut eve_sock = socket(&server, &eve).await;
    let ack = eve_sock.emit("ai:summarize", json!({ "chatId": chat })).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_server_times_out_with_a_clear_error_and_no_half_answer() {
    let fake = FakeOpenAi::start().await;
    let hang = |pieces: &[&str]| Scripted::StreamThenHang {
        pieces: pieces.iter().map(|p| p.to_string()).collect(),
        gap: Duration::from_millis(10),
    };
    // Silent before the first token, twice (one try, one retry).
    fake.then(hang(&[])).then(hang(&[]));
    let server = server_with(&fake, |c| {
        c.ai_first_token_timeout_secs = 1;
        c.ai_retries = 1;
    })
    .await;
    let ada = server.signed_up("ada").await;
    let mut sock = socket(&server, &ada).await;
    sock.emit("ai:ask", ask("slow-1", "Hello?")).await;
    let error = sock.next_within("ai:error", Duration::from_secs(10)).await;
    assert_eq!(error["code"], "ai_timeout", "{error}");
    assert_eq!(fake.seen().len(), 2, "silence before the first token is retried");

    // Silent after a first piece: the piece streamed, then the error; nothing stored.
    fake.then(hang(&["Partial "]));
    sock.emit("ai:ask", ask("slow-2", "Hello again?")).await;
    assert_eq!(sock.next("ai:delta").await["text"], "Partial ");
    let error = sock.next_within("ai:error", Duration::from_secs(10)).await;
    assert_eq!(error["code"], "ai_timeout", "{error}");
    let history = ada.client.get("/api/v1/chats/ai/messages", Some(&ada.access)).await;
    let roles: Vec<&str> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "user"], "questions kept, no half answer: {history:?}");
    server.stop().await;
}
