//! Memory benchmark: the `huddle` binary on its embedded default, its resident memory idle,
//! right after a burst of sign-ups (each an argon2id hash of 19 MiB) and once idle again.
//!
//! `cargo bench --bench memory` (needs `secantusd-rs` on `PATH`, as `make run` does).
//! Settings: `MEMORY_SIGNUPS` (100), `MEMORY_PARALLEL` (16 requests at once),
//! `MEMORY_JSON` (the workspace's `target/memory.json`).
// A load program: it times its own waits with the real clock.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let signups = env_or("MEMORY_SIGNUPS", 100);
    let parallel = env_or("MEMORY_PARALLEL", 16).max(1);
    let json_path = std::env::var("MEMORY_JSON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/memory.json").into());
    let dir = tempfile::tempdir().expect("a data dir");
    let port = huddle::embedded::free_loopback_port().expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_huddle"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("HUDDLE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("HUDDLE_DATA_DIR", dir.path())
        .env("HUDDLE_COOKIE_SECURE", "false")
        .env("HUDDLE_MEDIA_UDP_ADDR", "127.0.0.1:0")
        .env("HUDDLE_RATE_LIMIT_PER_IP", "100000")
        .env("HUDDLE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("huddle starts");
    let pid = child.id();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = huddle::allocator::resident_kib(pid);
    println!("huddle (embedded default, pid {pid}): idle RSS {:.1} MiB", mib(idle));

    let started = Instant::now();
    let mut peak = idle;
    let mut done = 0;
    let mut refused = 0;
    for batch in (0..signups).collect::<Vec<_>>().chunks(parallel) {
        let requests = batch.iter().map(|i| {
            let http = http.clone();
            let url = format!("{base}/api/v1/auth/register");
            async move {
                let body = serde_json::json!({
                    "firstName": "Load",
                    "lastName": "Test",
                    "username": format!("load{i}"),
                    "email": format!("load{i}@example.com"),
                    "password": "correct horse battery staple 42",
                    "passwordConfirm": "correct horse battery staple 42",
                });
                http.post(url).json(&body).send().await.map(|r| r.status().as_u16())
            }
        });
        for status in futures::future::join_all(requests).await {
            match status {
                Ok(202) => done += 1,
                _ => refused += 1,
            }
        }
        peak = peak.max(huddle::allocator::resident_kib(pid));
    }
    let burst = started.elapsed();
    let after = huddle::allocator::resident_kib(pid);
    println!(
        "{done} sign-ups accepted ({refused} refused) in {:.1} s, {parallel} at a time",
        burst.as_secs_f64()
    );
    println!(
        "  RSS right after the burst: {:.1} MiB (peak seen {:.1} MiB)",
        mib(after),
        mib(peak)
    );
    let mut settled = Vec::new();
    for wait in [5u64, 15] {
        tokio::time::sleep(Duration::from_secs(wait - settled.len() as u64 * 5)).await;
        let rss = huddle::allocator::resident_kib(pid);
        println!("  RSS {wait} s after the burst: {:.1} MiB", mib(rss));
        settled.push((wait, rss));
    }
    let _ = child.kill();
    let _ = child.wait();
    let json = format!(
        "{{\"signups\":{done},\"refused\":{refused},\"parallel\":{parallel},\"burst_seconds\":{:.2},\
         \"rss_kib\":{{\"idle\":{idle},\"peak\":{peak},\"after_burst\":{after},\"after_5s\":{},\"after_15s\":{}}}}}\n",
        burst.as_secs_f64(),
        settled[0].1,
        settled[1].1,
    );
    match std::fs::write(&json_path, json) {
        Ok(()) => println!("figures saved to {json_path}"),
        Err(e) => println!("cannot save {json_path}: {e}"),
    }
}
