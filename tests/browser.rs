//! Real-browser tests: the web client served at `/`, driven in Debian's Chromium (headless,
//! fake camera and microphone) by Playwright (`playwright-core` from npm) through the scripts
//! in `tests/js/browser/`. Each script signs its users up through the UI, reading their codes
//! from this server's outbox, and saves screenshots under `target/screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use common::openai::{FakeOpenAi, Scripted};

/// One browser test at a time: a video call of three Chromium windows already fills two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `tests/js/browser/<script>` against `server`; fails with the script's output.
async fn run_script(server: &TestServer, script: &str, env: &[(&str, &str)]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target").join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let child = tokio::process::Command::new("node")
        .arg(root.join("tests/js/browser").join(script))
        .current_dir(root.join("tests/js"))
        .env("HUDDLE_URL", server.url(""))
        .env("HUDDLE_OUTBOX", server.data_dir.join("outbox"))
        .env("HUDDLE_SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (installed by `make test`'s bootstrap)");
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran for more than 300 s"))
        .expect("the script's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    println!("{stdout}");
}

#[tokio::test]
async fn two_users_sign_up_and_chat_live_in_chromium() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The assistant is a local server speaking the Chat Completions streaming format.
    let assistant = FakeOpenAi::start().await;
    assistant
        .then(Scripted::Status(500))
        .then(Scripted::stream(&["The answer ", "is ", "forty-two."]));
    let base_url = assistant.base_url.clone();
    let server = TestServer::start_for_browsers(|c| {
        c.openai_base_url = Some(base_url);
        c.ai_retries = 0;
    })
    .await;
    run_script(&server, "chat.mjs", &[("HUDDLE_AI_ANSWER", "The answer is forty-two.")]).await;
    let asked = assistant.seen();
    assert!(asked.len() >= 2, "asked, failed, asked again: {asked:?}");
    for request in &asked[..2] {
        let messages = request.body["messages"].as_array().expect("messages");
        assert_eq!(messages.last().unwrap()["content"], "What is the answer?");
    }
    // The retry reused the question: it is stored once, and answered once.
    let stored = server
        .state
        .store
        .db
        .collection::<mongodb::bson::Document>("ai_messages");
    let count = |filter| {
        let stored = stored.clone();
        async move { stored.count_documents(filter).await.expect("count") }
    };
    assert_eq!(count(mongodb::bson::doc! { "content": "What is the answer?" }).await, 1);
    assert_eq!(
        count(mongodb::bson::doc! { "content": "The answer is forty-two." }).await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn three_chromium_windows_hold_a_video_call_and_every_remote_video_decodes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_for_browsers(|c| c.call_media_timeout_secs = 3).await;
    run_script(&server, "call.mjs", &[]).await;
    // The SFU's own measure of set-up: each subscriber's answer to its first keyframe.
    let metrics = server.client().get("/metrics", None).await.body;
    let setup: Vec<&str> = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("huddle_call_first_keyframe_seconds_"))
        .filter(|l| l.contains("_sum") || l.contains("_count"))
        .collect();
    println!("answer to first keyframe: {setup:?}");
    assert!(!setup.is_empty(), "the set-up histogram is in /metrics");
    let stats = server.state.sfu.stats().await.expect("sfu stats");
    assert!(stats.forwarded_packets > 0, "the media went through the SFU: {stats:?}");
    // The windows are closed now: their connections lapse and the SFU lets everyone go.
    let mut stats = stats;
    for _ in 0..100 {
        if (stats.rooms, stats.peers) == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stats = server.state.sfu.stats().await.expect("sfu stats");
    }
    assert_eq!((stats.rooms, stats.peers), (0, 0), "{stats:?}");
    server.stop().await;
}
