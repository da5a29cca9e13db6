//! Socket.IO on the default namespace: the handshake authenticates with the same token
//! verifier as REST, the server (never the client) joins each socket to its user, session
//! and chat rooms, and every request event answers with an ack `{ data }` or `{ error }`.

mod cluster;
mod handlers;
pub mod presence;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;

use crate::error::{AppError, ErrorDetail};
use huddle_signaling::protocol::{Event, SocketEvent};

pub use cluster::{NodeAdapter, NodeDriver};
pub use handlers::{register, run_presence, start_presence};

/// This server's Socket.IO handle, and a socket of it.
pub type Io = SocketIo<NodeAdapter>;
pub type Socket = socketioxide::extract::SocketRef<NodeAdapter>;

/// Largest Socket.IO packet a client may send.
pub const MAX_PAYLOAD: u64 = 64 * 1024;
/// Packets queued per socket before further emits to it fail (a client that never reads
/// is dropped rather than slowing anyone else).
pub const MAX_BUFFER: usize = 1024;
/// Binary attachments one incoming packet may announce.
pub const MAX_BINARIES: usize = 4;

pub fn user_room(user: ObjectId) -> String {
    format!("user:{}", user.to_hex())
}

pub fn chat_room(chat: ObjectId) -> String {
    format!("chat:{}", chat.to_hex())
}

pub fn session_room(session: ObjectId) -> String {
    format!("session:{}", session.to_hex())
}

/// The Socket.IO handle and layer, plus who is online on this node.
#[derive(Clone)]
pub struct Realtime {
    pub io: Io,
    layer: SocketIoLayer<NodeAdapter>,
    /// No other node: emits skip the adapter's encoding for them.
    alone: bool,
    /// Presence counted with the other nodes (with Redis).
    shared: Option<presence::SharedPresence>,
    /// Open sockets per user: a user is online while this is above zero.
    online: Arc<Mutex<HashMap<ObjectId, usize>>>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").finish_non_exhaustive()
    }
}

impl Realtime {
    /// The Socket.IO layer and handle; `driver` links it to the other nodes, if any.
    pub fn new(driver: NodeDriver) -> Self {
        let alone = matches!(driver, NodeDriver::Alone);
        let (layer, io) = SocketIo::builder()
            .max_payload(MAX_PAYLOAD)
            .ws_max_message_size(MAX_PAYLOAD as usize)
            .ws_max_frame_size(MAX_PAYLOAD as usize)
            .max_buffer_size(MAX_BUFFER)
            // No Huddle event carries binary attachments: a few small ones at most, and a
            // packet whose attachments do not arrive soon is dropped with its connection.
            .with_parser(
                socketioxide::ParserConfig::common()
                    .max_incoming_binary_buf_size(MAX_PAYLOAD as usize)
                    .max_incoming_binaries(MAX_BINARIES)
                    .packet_completion_timeout(Duration::from_secs(5)),
            )
            .ack_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .with_adapter::<NodeAdapter>(driver.adapter())
            .build_layer();
        Self {
            io,
            layer,
            alone,
            shared: None,
            online: Arc::default(),
        }
    }

    /// Counts presence with the other nodes from now on.
    pub fn with_presence(mut self, shared: presence::SharedPresence) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn shared_presence(&self) -> Option<&presence::SharedPresence> {
        self.shared.as_ref()
    }

    pub fn layer(&self) -> SocketIoLayer<NodeAdapter> {
        self.layer.clone()
    }

    /// Sockets in `room`: on every node, or, on a node alone, its own (the adapter then
    /// encodes nothing for other nodes).
    fn room(&self, room: String) -> socketioxide::operators::BroadcastOperators<NodeAdapter> {
        if self.alone {
            self.io.local().to(room)
        } else {
            self.io.to(room)
        }
    }

    /// Emits to a room; failures (a full buffer, a closed socket) are logged, never fatal.
    async fn emit<T: Serialize + ?Sized>(&self, room: String, event: &'static str, data: &T) {
        if let Err(e) = self.room(room).emit(event, data).await {
            emit_failed(event, &e);
        }
    }

    /// Emits `event` (one of the protocol's [`events`]) with a payload it shares with other
    /// events to a chat's room.
    ///
    /// [`events`]: huddle_signaling::protocol::events
    pub async fn to_chat<T: Serialize + ?Sized>(&self, chat: ObjectId, event: Event, data: &T) {
        self.emit(chat_room(chat), event.name(), data).await;
    }

    /// Emits `event` to every socket of a user.
    pub async fn to_user<T: Serialize + ?Sized>(&self, user: ObjectId, event: Event, data: &T) {
        self.emit(user_room(user), event.name(), data).await;
    }

    /// Emits a payload that names its own event to a chat's room.
    pub async fn send_to_chat<E: SocketEvent + Serialize>(&self, chat: ObjectId, payload: &E) {
        self.emit(chat_room(chat), E::EVENT, payload).await;
    }

    /// Emits a payload that names its own event to a chat's room, but not to `user`'s sockets.
    pub async fn send_to_chat_but<E: SocketEvent + Serialize>(&self, chat: ObjectId, user: ObjectId, payload: &E) {
        if let Err(e) = self
            .room(chat_room(chat))
            .except(user_room(user))
            .emit(E::EVENT, payload)
            .await
        {
            emit_failed(E::EVENT, &e);
        }
    }

    /// Emits a payload that names its own event to every socket of a user.
    pub async fn send_to_user<E: SocketEvent + Serialize>(&self, user: ObjectId, payload: &E) {
        self.emit(user_room(user), E::EVENT, payload).await;
    }

    /// Puts every socket of `user` into the chat's room (after a membership change).
    pub async fn join_chat(&self, user: ObjectId, chat: ObjectId) {
        if let Err(e) = self.room(user_room(user)).join(chat_room(chat)).await {
            tracing::warn!(error = %e, "could not join sockets to a chat room");
        }
    }

    /// Takes every socket of `user` out of the chat's room: events stop at once.
    pub async fn leave_chat(&self, user: ObjectId, chat: ObjectId) {
        if let Err(e) = self.room(user_room(user)).leave(chat_room(chat)).await {
            tracing::warn!(error = %e, "could not remove sockets from a chat room");
        }
    }

    /// Disconnects the sockets opened with a session (after logout or a password change).
    pub async fn end_session(&self, session: ObjectId) {
        if let Err(e) = self.room(session_room(session)).disconnect().await {
            tracing::debug!(error = %e, "disconnecting a session's sockets");
        }
    }

    /// Disconnects every socket of a user (all sessions revoked).
    pub async fn end_user(&self, user: ObjectId) {
        if let Err(e) = self.room(user_room(user)).disconnect().await {
            tracing::debug!(error = %e, "disconnecting a user's sockets");
        }
    }

    /// Counts a socket in; true when it is the user's first on every node (they just came
    /// online).
    async fn socket_opened(&self, user: ObjectId) -> bool {
        let first_here = {
            let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
            let count = online.entry(user).or_insert(0);
            *count += 1;
            *count == 1
        };
        self.counted(user, true, first_here).await
    }

    /// Counts a socket out; true when it was the user's last on every node (they just went
    /// offline).
    async fn socket_closed(&self, user: ObjectId) -> bool {
        let last_here = {
            let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
            match online.get_mut(&user) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    online.remove(&user);
                    true
                }
                None => return false,
            }
        };
        self.counted(user, false, last_here).await
    }

    /// Whether this socket made the user's first (`opened`) or took their last on every node;
    /// `here` is this node's answer, which stands while Redis is unreachable.
    async fn counted(&self, user: ObjectId, opened: bool, here: bool) -> bool {
        let Some(shared) = &self.shared else {
            return here;
        };
        match shared.count(user, opened).await {
            Ok(total) => total == u64::from(opened),
            Err(e) => {
                tracing::warn!(error = %e, "presence: Redis unavailable; counting this node's sockets");
                here
            }
        }
    }

    /// How many sockets `user` has open on this node.
    pub fn sockets_of(&self, user: ObjectId) -> usize {
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `user` has a socket open on this node.
    pub fn is_online_here(&self, user: ObjectId) -> bool {
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&user)
    }

    /// Whether `user` has a socket open on any node.
    pub async fn is_online(&self, user: ObjectId) -> bool {
        if self.is_online_here(user) {
            return true;
        }
        let Some(shared) = &self.shared else {
            return false;
        };
        shared.is_online(user).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "presence: Redis unavailable; asking this node only");
            false
        })
    }
}

/// Counts and logs an emit that did not reach every socket (a full buffer, a closed socket):
/// never fatal.
pub fn emit_failed(event: &str, error: &dyn std::fmt::Display) {
    metrics::counter!("huddle_socket_emit_failures_total").increment(1);
    tracing::debug!(event, error = %error, "emit did not reach every socket");
}

/// Gives a Socket.IO request a head of its own (URI and headers copied out of the
/// connection's read buffer). hyper parses them as views into that buffer, and Engine.IO
/// keeps the request head for the socket's whole life, so without the copy every open
/// socket would pin its connection's read buffer (8–16 KiB) for as long as it stays open.
pub fn own_request_head<B>(mut req: http::Request<B>) -> http::Request<B> {
    if !req.uri().path().starts_with("/socket.io") {
        return req;
    }
    let shared = std::mem::take(req.headers_mut());
    let mut owned = http::HeaderMap::with_capacity(shared.len());
    for (name, value) in &shared {
        if let Ok(mut copy) = http::HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            owned.append(name.clone(), copy);
        }
    }
    *req.headers_mut() = owned;
    if let Ok(uri) = http::Uri::try_from(req.uri().to_string()) {
        *req.uri_mut() = uri.clone();
        // The router's copy of the URI is a view into the same buffer.
        if req.extensions().get::<axum::extract::OriginalUri>().is_some() {
            req.extensions_mut().insert(axum::extract::OriginalUri(uri));
        }
    }
    req
}

/// The ack body of a request event: `{ data }` or `{ error: { code, message } }`, the
/// same error shape as REST.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Ack<T: Serialize> {
    Data { data: T },
    Error { error: ErrorDetail },
}

impl<T: Serialize> From<Result<T, AppError>> for Ack<T> {
    fn from(result: Result<T, AppError>) -> Self {
        match result {
            Ok(data) => Self::Data { data },
            Err(e) => Self::Error { error: e.detail() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::own_request_head;

    #[test]
    fn a_socket_request_keeps_its_head_in_copies() {
        let uri: http::Uri = "/socket.io/?EIO=4&transport=websocket".parse().unwrap();
        let mut req = http::Request::builder()
            .uri(uri.clone())
            .header("authorization", "Bearer abc")
            .header("x-many", "1")
            .header("x-many", "2")
            .body(())
            .unwrap();
        req.extensions_mut().insert(axum::extract::OriginalUri(uri.clone()));
        let req = own_request_head(req);
        assert_eq!(req.uri(), &uri);
        assert_eq!(req.headers()["authorization"], "Bearer abc");
        let many: Vec<_> = req.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["1", "2"]);
        assert_eq!(req.extensions().get::<axum::extract::OriginalUri>().unwrap().0, uri);
    }

    #[test]
    fn other_requests_pass_untouched() {
        let req = http::Request::builder()
            .uri("/api/v1/chats")
            .header("a", "b")
            .body(())
            .unwrap();
        let req = own_request_head(req);
        assert_eq!(req.uri(), "/api/v1/chats");
        assert_eq!(req.headers()["a"], "b");
    }
}
