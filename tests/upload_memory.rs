//! Uploading through the server streams: a 200 MB file reaches the store while the process's
//! resident memory grows by far less. Alone in its test binary, so no other test's
//! allocations count against it.

mod common;

use std::time::Duration;

use common::{TestServer, friends_with_chat, post_media, rss_bytes};
use serde_json::Value;

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
        let fields = vec![("kind", "attachment".to_string()), ("chatId", chat.clone())];
        let file = reqwest::multipart::Part::stream_with_length(stream, len)
            .file_name("big.bin")
            .mime_str("application/octet-stream")
            .unwrap();
        post_media(&server, &ada, fields, file)
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
    assert_eq!(download.headers()["content-type"], "application/octet-stream");
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
