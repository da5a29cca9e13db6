//! A Socket.IO client for whole-server tests that is the official npm `socket.io-client` (v4):
//! each [`SioClient`] is one `node tests/js/sio-driver.mjs <base>` child process spoken to in
//! JSON lines (commands on its stdin, acks and server events on its stdout).
//!
//! Needs `node` and `tests/js/node_modules` (`npm ci --prefix tests/js`, which
//! `scripts/bootstrap.sh` runs).
//!
//! ```ignore
//! let mut alice = sio::connect(&base, Some(&token)).await.expect("alice connects");
//! let ack = alice.emit("chat:sync", json!({ "chats": [] })).await;
//! let msg = alice.next("message:new").await;
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long [`connect`] waits for the handshake to succeed or be refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`SioClient::emit`] waits for an ack (the driver gives up after 10 s itself).
const ACK_TIMEOUT: Duration = Duration::from_secs(35);
/// How long [`SioClient::next`] waits for an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`SioClient::disconnect`] waits for the driver to exit before killing it.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One Socket.IO connection held by a `socket.io-client` driver process (killed on drop).
pub struct SioClient {
    sid: String,
    child: Child,
    stdin: ChildStdin,
    /// Lines from the driver's stdout, parsed; closed when the driver exits.
    lines: mpsc::UnboundedReceiver<Value>,
    /// Whether `lines` has closed (the driver exited).
    closed: bool,
    /// Received server events not yet consumed, in arrival order: `(event, data)`.
    events: VecDeque<(String, Value)>,
    /// Names of every server event received so far, consumed or not (for failure messages).
    seen: Vec<String>,
    /// Acks (`ack` or `ack_error` lines) not yet claimed, by emit id.
    acks: HashMap<u64, Value>,
    /// The reason of a server-side disconnect, once the driver reported one.
    disconnect_reason: Option<String>,
    next_id: u64,
}

impl fmt::Debug for SioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SioClient")
            .field("sid", &self.sid)
            .field("buffered_events", &self.events)
            .field("disconnect_reason", &self.disconnect_reason)
            .finish_non_exhaustive()
    }
}

/// Connects to the Socket.IO endpoint at `base_url` (e.g. `http://127.0.0.1:1234`) over the
/// websocket transport, with `auth: { token }` (or `auth: {}` for `None`), no reconnection.
///
/// `Err` carries the driver's `connect_error` line,
/// `{"type":"connect_error","message":..,"data":..}`, so a test can assert why it was refused.
/// Panics when neither outcome arrives within 10 s or the driver cannot start.
pub async fn connect(base_url: &str, token: Option<&str>) -> Result<SioClient, Value> {
    connect_with(base_url, json!({ "op": "connect", "token": token })).await
}

/// Like [`connect`], with the token in an `Authorization: Bearer` header of the connection
/// request instead of the handshake's `auth`.
pub async fn connect_with_header(base_url: &str, token: &str) -> Result<SioClient, Value> {
    connect_with(
        base_url,
        json!({ "op": "connect", "token": null, "headerToken": token }),
    )
    .await
}

async fn connect_with(base_url: &str, command: Value) -> Result<SioClient, Value> {
    let mut client = SioClient::spawn(base_url);
    client.send(&command).await;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        // Server events sent right on connection are buffered by `pump` like any other.
        match client.pump_until(deadline).await {
            Some(line) => match line["type"].as_str() {
                Some("connected") => {
                    client.sid = line["sid"].as_str().unwrap_or_default().to_owned();
                    return Ok(client);
                }
                Some("connect_error") => return Err(line),
                _ => {}
            },
            None if client.closed => {
                panic!("sio driver exited before connecting to {base_url} (see its stderr above)")
            }
            None => {
                panic!("sio connect to {base_url} timed out after {CONNECT_TIMEOUT:?}: neither connected nor refused")
            }
        }
    }
}

impl SioClient {
    /// Starts the driver process for `base_url` and the task that reads its stdout.
    fn spawn(base_url: &str) -> SioClient {
        let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
        let script = js.join("sio-driver.mjs");
        assert!(
            js.join("node_modules/socket.io-client").is_dir(),
            "{} is missing: run `npm ci --prefix tests/js` (scripts/bootstrap.sh does)",
            js.join("node_modules/socket.io-client").display()
        );
        let mut child = Command::new("node")
            .arg(&script)
            .arg(base_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node {}`: {e} (is Node.js installed?)", script.display()));
        let stdin = child.stdin.take().expect("driver stdin is piped");
        let stdout = child.stdout.take().expect("driver stdout is piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "type": "garbage", "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        SioClient {
            sid: String::new(),
            child,
            stdin,
            lines,
            closed: false,
            events: VecDeque::new(),
            seen: Vec::new(),
            acks: HashMap::new(),
            disconnect_reason: None,
            next_id: 0,
        }
    }

    /// The Socket.IO session id (`socket.id`) the server gave this connection.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Emits `event` with `data` and returns the server's ack value (its first argument).
    /// Panics, naming the event, on a driver ack error or no ack within 10 s.
    pub async fn emit(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let cmd = json!({ "op": "emit", "id": id, "event": event, "data": data });
        self.send(&cmd).await;
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            if let Some(line) = self.acks.remove(&id) {
                if line["type"] == "ack" {
                    return line["data"].clone();
                }
                panic!("sio emit `{event}`: no ack: {}", line["message"]);
            }
            if self.pump_until(deadline).await.is_none() {
                panic!(
                    "sio emit `{event}`: no ack {} (server disconnect reason: {:?})",
                    if self.closed {
                        "before the driver exited".to_owned()
                    } else {
                        format!("within {ACK_TIMEOUT:?}")
                    },
                    self.disconnect_reason
                );
            }
        }
    }

    /// Emits `event` once per item of `data`, all at once (none waits for an ack), and
    /// returns the acks in the order of `data`. Panics like [`SioClient::emit`].
    pub async fn emit_all(&mut self, event: &str, data: Vec<Value>) -> Vec<Value> {
        let first = self.next_id + 1;
        for item in data {
            self.next_id += 1;
            let cmd = json!({ "op": "emit", "id": self.next_id, "event": event, "data": item });
            self.send(&cmd).await;
        }
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut acks = Vec::new();
        for id in first..=self.next_id {
            loop {
                if let Some(line) = self.acks.remove(&id) {
                    assert_eq!(line["type"], "ack", "sio emit `{event}`: no ack: {}", line["message"]);
                    acks.push(line["data"].clone());
                    break;
                }
                if self.pump_until(deadline).await.is_none() {
                    panic!("sio emit_all `{event}`: no ack for emit {id} within {ACK_TIMEOUT:?}");
                }
            }
        }
        acks
    }

    /// Emits `event` with `data` without asking for an ack.
    pub async fn emit_no_ack(&mut self, event: &str, data: Value) {
        let cmd = json!({ "op": "emit_raw", "event": event, "data": data });
        self.send(&cmd).await;
    }

    /// Emits `event` with `count` binary attachments of `size` bytes each, without an ack.
    pub async fn emit_binary(&mut self, event: &str, count: usize, size: usize) {
        let cmd = json!({ "op": "emit_binary", "event": event, "count": count, "size": size });
        self.send(&cmd).await;
    }

    /// Stops reading from the connection (a client that never reads), without closing it.
    pub async fn stall(&mut self) {
        self.send(&json!({ "op": "stall" })).await;
    }

    /// The data of the next not-yet-consumed `event` from the server; events of other names stay
    /// buffered in order. Panics after 5 s, listing what was received.
    pub async fn next(&mut self, event: &str) -> Value {
        self.next_within(event, EVENT_TIMEOUT).await
    }

    /// [`next`](Self::next) with a chosen timeout.
    pub async fn next_within(&mut self, event: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.events.iter().position(|(name, _)| name == event) {
                let (_, data) = self.events.remove(pos).expect("position is in range");
                return data;
            }
            if self.pump_until(deadline).await.is_none() {
                panic!(
                    "sio: no `{event}` event {}; received so far (all): {:?}; unconsumed: {:?}; \
                     server disconnect reason: {:?}",
                    if self.closed {
                        "before the driver exited".to_owned()
                    } else {
                        format!("within {timeout:?}")
                    },
                    self.seen,
                    self.events,
                    self.disconnect_reason
                );
            }
        }
    }

    /// Waits `wait`, then panics if an `event` arrived (already buffered or new).
    /// Asserts that no `event` reached this socket before now, with a request's ack as the
    /// barrier: the server emits to a socket in order, so anything an action emitted before it
    /// completed arrives before the ack of a request sent after it. (A request that can only
    /// fail: `typing:stop` for a chat that does not exist.)
    pub async fn expect_none(&mut self, event: &str) {
        let ack = self
            .emit("typing:stop", json!({ "chatId": "000000000000000000000000" }))
            .await;
        assert_eq!(ack["error"]["code"], "not_found", "barrier request: {ack}");
        if let Some((_, data)) = self.events.iter().find(|(name, _)| name == event) {
            panic!("sio: expected no `{event}` event, got one: {data}");
        }
    }

    /// Asserts that no `event` arrives within `wait`: only for events that follow an action
    /// later than its completion (presence after a disconnect), where no barrier orders them.
    pub async fn expect_none_within(&mut self, event: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.pump_until(deadline).await.is_some() {}
        if let Some((_, data)) = self.events.iter().find(|(name, _)| name == event) {
            panic!("sio: expected no `{event}` event within {wait:?}, got one: {data}");
        }
    }

    /// Drains and returns the data of every `event` received so far (reading whatever the driver
    /// has already written, without waiting), in arrival order.
    pub fn take_all(&mut self, event: &str) -> Vec<Value> {
        loop {
            match self.lines.try_recv() {
                Ok(line) => self.absorb(line),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let mut taken = Vec::new();
        self.events.retain(|(name, data)| {
            if name == event {
                taken.push(data.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// The reason of a server-side disconnect (`"io server disconnect"`, `"transport close"`,
    /// ...), once it happens; `None` if none happened within `timeout`.
    pub async fn wait_disconnect(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while self.disconnect_reason.is_none() && self.pump_until(deadline).await.is_some() {}
        self.disconnect_reason.clone()
    }

    /// Disconnects from the client side and waits for the driver to exit (killing it after 5 s).
    pub async fn disconnect(mut self) {
        if !self.closed && self.try_send(&json!({ "op": "disconnect" })).await.is_ok() {
            let _ = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await;
        }
        let _ = self.child.start_kill();
    }

    /// Writes one command line to the driver; panics if the driver is gone.
    async fn send(&mut self, cmd: &Value) {
        if let Err(e) = self.try_send(cmd).await {
            panic!(
                "sio driver is gone (server disconnect reason: {:?}); cannot send {cmd}: {e}",
                self.disconnect_reason
            );
        }
    }

    async fn try_send(&mut self, cmd: &Value) -> std::io::Result<()> {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await
    }

    /// Takes the next driver line (already sorted into the buffers) before `deadline`; `None` on
    /// timeout or when the driver has exited (then `self.closed` is set).
    async fn pump_until(&mut self, deadline: Instant) -> Option<Value> {
        if self.closed {
            return None;
        }
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => {
                self.absorb(line.clone());
                Some(line)
            }
            Ok(None) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Sorts one driver line into the event buffer, the ack map or the disconnect reason.
    fn absorb(&mut self, line: Value) {
        match line["type"].as_str() {
            Some("event") => {
                let name = line["event"].as_str().unwrap_or_default().to_owned();
                self.seen.push(name.clone());
                self.events.push_back((name, line["data"].clone()));
            }
            Some("ack" | "ack_error") => {
                let id = line["id"].as_u64().expect("driver ack lines carry a numeric id");
                self.acks.insert(id, line);
            }
            Some("disconnect") => {
                self.disconnect_reason = line["reason"].as_str().map(str::to_owned);
            }
            Some("connected" | "connect_error" | "stalled") => {}
            _ => panic!("sio driver wrote an unexpected line: {line}"),
        }
    }
}
