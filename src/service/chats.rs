//! Chats as a member sees them: the list (pinned first, then by activity, each with its
//! last message and unread count), 1:1 chat creation between friends, pins and reads.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, oid::ObjectId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::chats::{Chat, direct_key};
use crate::store::is_duplicate_key;
use crate::store::messages::Message;
use huddle_signaling::protocol::ErrorCode;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastMessageView {
    #[serde(rename = "_id")]
    pub id: String,
    pub seq: i64,
    pub sender: String,
    #[serde(rename = "type")]
    pub kind: crate::domain::chat::MessageType,
    pub content: String,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Message> for LastMessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_hex(),
            seq: m.seq,
            sender: m.sender.to_hex(),
            kind: m.kind,
            content: m.content.chars().take(200).collect(),
            deleted: m.deleted,
            created_at: m.created_at.to_chrono(),
        }
    }
}

/// A chat as one member sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    #[serde(rename = "_id")]
    pub id: String,
    pub is_group: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub participants: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessageView>,
    pub last_seq: i64,
    /// The caller's read position.
    pub read_seq: i64,
    /// Messages from others after the caller's read position.
    pub unread_count: u64,
    /// Whether the caller pinned it.
    pub pinned: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The chat as `viewer` sees it, with its newest message as stored now (the chat's own
/// `lastSeq` and `updatedAt` may trail it; see [`crate::store::append`]).
pub async fn view(state: &AppState, chat: &Chat, viewer: ObjectId) -> AppResult<ChatView> {
    let newest = state.store.messages.newest(chat.id, chat.last_seq).await?;
    let last_seq = newest.as_ref().map_or(chat.last_seq, |m| m.seq);
    let updated_at = newest
        .as_ref()
        .map_or(chat.updated_at, |m| m.created_at.max(chat.updated_at));
    let read_seq = chat.read_seq(viewer);
    let unread_count = if read_seq >= last_seq {
        0
    } else {
        state.store.messages.unread(chat.id, viewer, read_seq).await?
    };
    Ok(ChatView {
        id: chat.id.to_hex(),
        is_group: chat.is_group,
        name: chat.name.clone(),
        participants: chat.participants.iter().map(|p| p.to_hex()).collect(),
        group_id: chat.group_id.map(|g| g.to_hex()),
        last_message: newest.as_ref().map(LastMessageView::from),
        last_seq,
        read_seq,
        unread_count,
        pinned: chat.pinned_by.contains(&viewer),
        created_at: chat.created_at.to_chrono(),
        updated_at: updated_at.to_chrono(),
    })
}

/// The caller's chats, pinned first, then newest activity first.
pub async fn list(state: &AppState, user: ObjectId) -> AppResult<Vec<Chat>> {
    let mut chats = state.store.chats.of_member(user).await?;
    // Stable: within each half the store's activity order stays.
    chats.sort_by_key(|c| !c.pinned_by.contains(&user));
    Ok(chats)
}

/// The 1:1 chat with a friend, created on first use.
pub async fn open_direct(state: &AppState, user: ObjectId, other: ObjectId) -> AppResult<(Chat, bool)> {
    if user == other {
        return Err(AppError::bad_request("userId: cannot open a chat with yourself"));
    }
    if !state.store.friends.are_friends(user, other).await? {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotFriends,
            message: "you can only start a chat with a friend",
        });
    }
    if let Some(chat) = state.store.chats.direct(user, other).await? {
        return Ok((chat, false));
    }
    let now = bson::DateTime::now();
    let chat = Chat {
        id: ObjectId::new(),
        is_group: false,
        name: None,
        participants: vec![user, other],
        group_id: None,
        direct_key: Some(direct_key(user, other)),
        last_seq: 0,
        pinned_by: Vec::new(),
        reads: bson::Document::new(),
        created_at: now,
        updated_at: now,
    };
    match state.store.chats.insert(&chat, None).await {
        Ok(()) => {}
        Err(e) if is_duplicate_key(&e) => {
            let existing = state
                .store
                .chats
                .direct(user, other)
                .await?
                .ok_or(AppError::Internal(e.into()))?;
            return Ok((existing, false));
        }
        Err(e) => return Err(e.into()),
    }
    for member in [user, other] {
        state.realtime.join_chat(member, chat.id).await;
    }
    Ok((chat, true))
}

/// The chat if `user` is in it; otherwise the same 404 as a chat that does not exist.
pub async fn member_chat(state: &AppState, chat: ObjectId, user: ObjectId) -> AppResult<Chat> {
    state
        .store
        .chats
        .for_member(chat, user)
        .await?
        .ok_or(AppError::NotFound)
}
