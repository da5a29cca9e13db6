//! Messages: sending, editing, deleting, starring and reading them, typing, catching up
//! after a reconnect, and the message events sent to a chat.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CallKind, CallStatus, SocketEvent};

/// What a message carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Image,
    File,
    Link,
    Emoji,
    Video,
    Audio,
    /// A call record, written by the server only.
    Call,
}

/// The type of a message sent without one.
pub fn text_type() -> MessageType {
    MessageType::Text
}

/// `message:send`: post a message in a chat. `clientMsgId` is the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    pub chat_id: String,
    pub client_msg_id: String,
    #[serde(rename = "type", default = "text_type")]
    pub kind: MessageType,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl SocketEvent for SendMessage {
    const EVENT: &'static str = "message:send";
}

/// `message:edit`: new content for one's own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessage {
    pub message_id: String,
    pub content: String,
}

impl SocketEvent for EditMessage {
    const EVENT: &'static str = "message:edit";
}

/// `message:delete` and `ai:cancel`: requests that name one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageRef {
    pub message_id: String,
}

/// `message:star`: star (or, with `starred: false`, unstar) a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StarMessage {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starred: Option<bool>,
}

impl SocketEvent for StarMessage {
    const EVENT: &'static str = "message:star";
}

/// `message:read`: move one's read position in a chat up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadRequest {
    pub chat_id: String,
    pub seq: i64,
}

/// `typing:start`, `typing:stop` and `ai:summarize`: requests that name one chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatRef {
    pub chat_id: String,
}

/// Where a client stands in one chat: the highest `seq` it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncCursor {
    pub chat_id: String,
    pub last_seq: i64,
}

/// `chat:sync`: replay what was missed, per chat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    #[serde(default)]
    pub chats: Vec<SyncCursor>,
}

impl SocketEvent for SyncRequest {
    const EVENT: &'static str = "chat:sync";
}

/// The ack of `chat:sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncReply {
    pub chats: Vec<SyncedChat>,
}

/// What one chat missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncedChat {
    pub chat_id: String,
    /// The chat's current highest `seq`.
    pub last_seq: i64,
    /// The missed messages, in `seq` order.
    pub messages: Vec<MessageView>,
    /// More were missed than one reply carries: sync again from the last `seq` here.
    pub has_more: bool,
}

/// A message as clients see it: the payload of `message:new` and `message:updated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    #[serde(rename = "_id")]
    pub id: String,
    pub chat_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub seq: i64,
    pub sender: String,
    pub client_msg_id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub attachments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Whether the viewer starred it (others' stars stay private).
    pub starred: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    /// For `type: call`: the record of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRecordView>,
}

/// A call's record in the chat history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRecordView {
    pub call_id: String,
    #[serde(rename = "type")]
    pub kind: CallKind,
    pub participants: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_secs: i64,
    /// `ended` or `missed`.
    pub status: CallStatus,
}

/// `message:deleted`: a message became a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageDeleted {
    #[serde(rename = "_id")]
    pub id: String,
    pub chat_id: String,
    pub seq: i64,
}

impl SocketEvent for MessageDeleted {
    const EVENT: &'static str = "message:deleted";
}

/// Someone's read position in a chat: the ack of `message:read` and the payload of the
/// `message:read` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub chat_id: String,
    pub user_id: String,
    pub seq: i64,
}

/// `typing`: someone started or stopped typing in a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Typing {
    pub chat_id: String,
    pub user_id: String,
    pub typing: bool,
}

impl SocketEvent for Typing {
    const EVENT: &'static str = "typing";
}
