//! A local OpenAI-compatible server for the assistant tests: it answers
//! `POST /v1/chat/completions` with the Chat Completions streaming wire format (server-sent
//! events of `chat.completion.chunk` objects, then `data: [DONE]`), or with an OpenAI error
//! body and status, following a script; it records every request body it receives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// An error status with OpenAI's error body.
    Status(u16),
    /// The pieces as chunks, `gap` apart, then the end of the stream.
    Stream { pieces: Vec<String>, gap: Duration },
    /// The pieces, then silence with the connection held open (until the client leaves).
    StreamThenHang { pieces: Vec<String>, gap: Duration },
    /// The pieces, then the connection closes without a finish reason or `[DONE]`: a server
    /// that broke off mid-answer.
    StreamThenClose { pieces: Vec<String> },
}

impl Scripted {
    pub fn stream(pieces: &[&str]) -> Self {
        Self::Stream {
            pieces: pieces.iter().map(|p| p.to_string()).collect(),
            gap: Duration::from_millis(15),
        }
    }
}

/// A recorded request: its headers (lowercased names) and JSON body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
pub struct FakeOpenAi {
    /// The base URL to configure as `OPENAI_BASE_URL` (ends in `/v1`).
    pub base_url: String,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let fake = Self {
            base_url,
            script: Arc::default(),
            seen: Arc::default(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        fake
    }

    /// Queues what the next requests get, in order; when the queue is empty, a request
    /// gets a short answer, "ok".
    pub fn then(&self, reply: Scripted) -> &Self {
        self.script.lock().unwrap().push_back(reply);
        self
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(&self, mut stream: TcpStream) {
        let Some((path, authorization, body)) = read_request(&mut stream).await else {
            return;
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.seen.lock().unwrap().push(Seen {
            path: path.clone(),
            authorization,
            body: body.clone(),
        });
        if path != "/v1/chat/completions" {
            respond_error(&mut stream, 404, "unknown path").await;
            return;
        }
        let next = self.script.lock().unwrap().pop_front();
        let model = body["model"].as_str().unwrap_or("unknown").to_string();
        match next.unwrap_or_else(|| Scripted::stream(&["ok"])) {
            Scripted::Status(status) => respond_error(&mut stream, status, "scripted failure").await,
            Scripted::Stream { pieces, gap } => {
                if send_pieces(&mut stream, &model, &pieces, gap).await.is_ok() {
                    let finish = chunk(&model, json!({}), Some("stop"));
                    let _ = stream
                        .write_all(format!("data: {finish}\n\ndata: [DONE]\n\n").as_bytes())
                        .await;
                }
                let _ = stream.shutdown().await;
            }
            Scripted::StreamThenClose { pieces } => {
                let _ = send_pieces(&mut stream, &model, &pieces, Duration::from_millis(10)).await;
                let _ = stream.shutdown().await;
            }
            Scripted::StreamThenHang { pieces, gap } => {
                if send_pieces(&mut stream, &model, &pieces, gap).await.is_ok() {
                    // Hold the connection until the client drops it (or a minute passes).
                    let mut buf = [0u8; 64];
                    let _ = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await;
                }
            }
        }
    }
}

/// Reads one HTTP/1.1 request: its path, `Authorization` header and body.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Option<String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let mut length = 0usize;
    let mut authorization = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, authorization, body))
}

async fn respond_error(stream: &mut TcpStream, status: u16, message: &str) {
    let body =
        json!({ "error": { "message": message, "type": "server_error", "param": null, "code": null } }).to_string();
    let head = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_764_000_000,
        "model": model,
        "system_fingerprint": null,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
    })
}

/// The response head, a role-only first chunk, then one chunk per piece.
async fn send_pieces(stream: &mut TcpStream, model: &str, pieces: &[String], gap: Duration) -> std::io::Result<()> {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    let first = chunk(model, json!({ "role": "assistant", "content": "" }), None);
    stream.write_all(format!("data: {first}\n\n").as_bytes()).await?;
    for piece in pieces {
        tokio::time::sleep(gap).await;
        let data = chunk(model, json!({ "content": piece }), None);
        stream.write_all(format!("data: {data}\n\n").as_bytes()).await?;
        stream.flush().await?;
    }
    Ok(())
}
