//! Sending, editing, deleting, starring and reading messages, and replaying what a client
//! missed. REST and Socket.IO both call these, so both store and emit the same way.

use mongodb::bson::{self, oid::ObjectId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::chats::member_chat;
use crate::domain::chat::{self as rules, MessageType};
use crate::domain::id::parse_id;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::append::AppendError;

use crate::store::messages::{Message, Page};
use huddle_signaling::protocol::ErrorCode;
use huddle_signaling::protocol::events;
pub use huddle_signaling::protocol::{
    CallRecordView, MessageDeleted, MessageView, ReadReceipt, SyncCursor, SyncRequest, SyncedChat,
};

/// Most messages one history page or one replay returns.
pub const PAGE_MAX: i64 = 200;

/// A message as `viewer` sees it (its `starred` is theirs).
pub fn message_view(m: &Message, viewer: Option<ObjectId>) -> MessageView {
    MessageView {
        id: m.id.to_hex(),
        chat_id: m.chat_id.to_hex(),
        group_id: m.group_id.map(|g| g.to_hex()),
        seq: m.seq,
        sender: m.sender.to_hex(),
        client_msg_id: m.client_msg_id.clone(),
        content: m.content.clone(),
        kind: m.kind,
        attachments: m.attachments.iter().map(|a| a.to_hex()).collect(),
        reply_to: m.reply_to.map(|r| r.to_hex()),
        starred: viewer.is_some_and(|v| m.starred_by.contains(&v)),
        created_at: m.created_at.to_chrono(),
        updated_at: m.updated_at.to_chrono(),
        edited_at: m.edited_at.map(|t| t.to_chrono()),
        deleted: m.deleted,
        call: m.call.as_ref().map(|c| CallRecordView {
            call_id: c.call_id.to_hex(),
            kind: c.kind,
            participants: c.participants.iter().map(|p| p.to_hex()).collect(),
            started_at: c.started_at.to_chrono(),
            ended_at: c.ended_at.to_chrono(),
            duration_secs: c.duration_secs,
            status: c.status,
        }),
    }
}

/// A new message, from `POST /chats/{id}/messages` or `message:send`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    /// Required on Socket.IO; on REST the server makes one when absent.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    #[serde(rename = "type", default = "huddle_signaling::protocol::text_type")]
    pub kind: MessageType,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
}

fn rule(e: rules::MessageRuleError) -> AppError {
    AppError::bad_request(e.to_string())
}

/// Stores a message and tells the chat. Returns the stored message; a retry with the same
/// `clientMsgId` returns the first one unchanged and emits nothing new.
///
/// A plain text send reads nothing before its write: membership is checked by the append
/// against the stored chat (per batch), and idempotency by the unique index.
pub async fn send(state: &AppState, sender: ObjectId, chat_id: ObjectId, req: SendMessage) -> AppResult<Message> {
    let client_msg_id = req.client_msg_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    rules::check_client_msg_id(&client_msg_id).map_err(rule)?;
    rules::check_content(req.kind, &req.content, req.attachments.len()).map_err(rule)?;
    let attachments = req
        .attachments
        .iter()
        .map(|a| parse_id(a))
        .collect::<AppResult<Vec<_>>>()?;
    let reply_to = req.reply_to.as_deref().map(parse_id).transpose()?;

    if !attachments.is_empty() || reply_to.is_some() {
        // What the message points at is checked against the chat, for members only.
        member_chat(state, chat_id, sender).await?;
    }
    if let Some(reply) = reply_to {
        let parent = state.store.messages.by_id(reply).await?;
        if parent.is_none_or(|p| p.chat_id != chat_id) {
            return Err(AppError::bad_request("replyTo: no such message in this chat"));
        }
    }

    let id = ObjectId::new();
    if !attachments.is_empty() && !state.store.media.claim(&attachments, chat_id, sender, id).await? {
        // A retry of a send whose message already carries them gets that message back.
        if let Some(sent) = state
            .store
            .messages
            .by_client_id(chat_id, sender, &client_msg_id)
            .await?
            && sent.attachments == attachments
        {
            return Ok(sent);
        }
        return Err(AppError::bad_request(
            "attachments: each must be your own upload to this chat, not yet sent in a message",
        ));
    }
    let now = bson::DateTime::now();
    let draft = Message {
        id,
        chat_id,
        group_id: None,
        seq: 0,
        sender,
        client_msg_id,
        content: req.content,
        kind: req.kind,
        attachments,
        reply_to,
        starred_by: Vec::new(),
        created_at: now,
        updated_at: now,
        edited_at: None,
        deleted: false,
        call: None,
        notify_pending: false,
    };
    let claimed = !draft.attachments.is_empty();
    let stored = append(state, draft).await;
    if claimed && !stored.as_ref().is_ok_and(|m| m.id == id) {
        // Not stored, or a retry that raced this send stored another: give them back.
        state.store.media.release(id).await?;
    }
    stored
}

/// How long a client refused as overloaded should wait before it sends again.
pub const OVERLOADED_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// The service's answer to a refused append.
pub fn append_error(e: AppendError) -> AppError {
    match e {
        AppendError::NotAdmitted => AppError::NotFound,
        AppendError::Overloaded => AppError::Overloaded {
            retry_after: OVERLOADED_RETRY,
        },
        AppendError::Db(e) if database_unreachable(&e) => AppError::Unavailable,
        AppendError::Db(e) => e.into(),
    }
}

/// A database that cannot be reached (down, restarting, failing over), as opposed to one
/// that refused the write: the client may try again shortly.
fn database_unreachable(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_) | ErrorKind::ServerSelection { .. } | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
}

/// Appends a message to its chat under the next `seq` (see [`crate::store::append`]), then
/// tells the chat and, off the acknowledgement's path, notifies members who are away. A
/// message whose sender already stored its `clientMsgId` comes back unchanged, with no
/// second event. The sender must be a participant, else `NotFound`.
pub async fn append(state: &AppState, draft: Message) -> AppResult<Message> {
    let away = state.clone();
    let prepare: crate::store::append::Prepare<Message> = Box::new(move |message, chat| {
        message.notify_pending =
            !super::notifications::maybe_away(&away, &chat.participants, message.sender).is_empty();
    });
    let appended = state
        .store
        .messages
        .append(draft, Some(prepare))
        .await
        .map_err(append_error)?;
    let message = appended.entry;
    if !appended.fresh {
        return Ok(message);
    }
    metrics::counter!("huddle_messages_sent_total").increment(1);
    state
        .realtime
        .to_chat(message.chat_id, events::MESSAGE_NEW, &message_view(&message, None))
        .await;
    super::notifications::message_sent(state, appended.head.participants, &message);
    Ok(message)
}

/// A page of a chat's history for a member, oldest first.
pub async fn history(
    state: &AppState,
    user: ObjectId,
    chat: ObjectId,
    page: Page,
    limit: i64,
) -> AppResult<Vec<Message>> {
    let current = member_chat(state, chat, user).await?;
    Ok(state
        .store
        .messages
        .page(chat, page, limit.clamp(1, PAGE_MAX), current.last_seq)
        .await?)
}

/// Loads a message the caller may see (a member of its chat), else 404.
async fn visible(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Message> {
    let message = state.store.messages.by_id(id).await?.ok_or(AppError::NotFound)?;
    member_chat(state, message.chat_id, user).await?;
    Ok(message)
}

/// Edits the caller's own message.
pub async fn edit(state: &AppState, user: ObjectId, id: ObjectId, content: String) -> AppResult<Message> {
    let current = visible(state, user, id).await?;
    if current.sender != user {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotSender,
            message: "only the sender can edit a message",
        });
    }
    rules::check_content(current.kind, &content, current.attachments.len()).map_err(rule)?;
    let edited = state
        .store
        .messages
        .edit(id, user, &content)
        .await?
        .ok_or(AppError::NotFound)?;
    state
        .realtime
        .to_chat(edited.chat_id, events::MESSAGE_UPDATED, &message_view(&edited, None))
        .await;
    Ok(edited)
}

/// Deletes the caller's own message, leaving a tombstone.
pub async fn delete(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Message> {
    let current = visible(state, user, id).await?;
    if current.sender != user {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotSender,
            message: "only the sender can delete a message",
        });
    }
    let deleted = state.store.messages.delete(id, user).await?.ok_or(AppError::NotFound)?;
    super::media::remove_attachments(state, deleted.id).await?;
    let event = MessageDeleted {
        id: deleted.id.to_hex(),
        chat_id: deleted.chat_id.to_hex(),
        seq: deleted.seq,
    };
    state.realtime.send_to_chat(deleted.chat_id, &event).await;
    Ok(deleted)
}

/// Stars or unstars a message for the caller only.
pub async fn star(state: &AppState, user: ObjectId, id: ObjectId, starred: bool) -> AppResult<Message> {
    visible(state, user, id).await?;
    let message = state
        .store
        .messages
        .set_star(id, user, starred)
        .await?
        .ok_or(AppError::NotFound)?;
    // Stars are personal: only the caller's own devices hear about it.
    state
        .realtime
        .to_user(user, events::MESSAGE_UPDATED, &message_view(&message, Some(user)))
        .await;
    Ok(message)
}

/// Moves the caller's read position up to `seq` and tells the chat.
pub async fn read(state: &AppState, user: ObjectId, chat: ObjectId, seq: i64) -> AppResult<ReadReceipt> {
    if seq < 0 {
        return Err(AppError::bad_request("seq: must not be negative"));
    }
    let current = member_chat(state, chat, user).await?;
    let newest = state.store.messages.newest(chat, current.last_seq).await?;
    let seq = seq.min(newest.map_or(current.last_seq, |m| m.seq));
    let updated = state
        .store
        .chats
        .mark_read(chat, user, seq)
        .await?
        .ok_or(AppError::NotFound)?;
    let receipt = ReadReceipt {
        chat_id: chat.to_hex(),
        user_id: user.to_hex(),
        seq: updated.read_seq(user),
    };
    if updated.read_seq(user) > current.read_seq(user) {
        state.realtime.to_chat(chat, events::MESSAGE_READ, &receipt).await;
    }
    Ok(receipt)
}

/// Replays, for each of the caller's chats, the messages after what the client last saw.
/// Chats the client did not list are replayed from the start; chats the caller is not in
/// are skipped without a trace.
pub async fn sync(state: &AppState, user: ObjectId, req: SyncRequest) -> AppResult<Vec<SyncedChat>> {
    if req.chats.len() > 1000 {
        return Err(AppError::bad_request("chats: at most 1000 cursors"));
    }
    let mut seen = std::collections::HashMap::new();
    for cursor in &req.chats {
        seen.insert(parse_id(&cursor.chat_id)?, cursor.last_seq.max(0));
    }
    let mut out = Vec::new();
    for chat in state.store.chats.of_member(user).await? {
        // The chat's `lastSeq` may trail its newest message, so even a client level with
        // it looks for what came after (a short, usually empty, range of the index).
        let after = seen.get(&chat.id).copied().unwrap_or(0);
        let mut messages = state
            .store
            .messages
            .page(chat.id, Page::After(after), PAGE_MAX + 1, chat.last_seq)
            .await?;
        if messages.is_empty() {
            continue;
        }
        let has_more = messages.len() as i64 > PAGE_MAX;
        messages.truncate(PAGE_MAX as usize);
        let last_seq = match has_more {
            true => state
                .store
                .messages
                .newest(chat.id, chat.last_seq)
                .await?
                .map_or(chat.last_seq, |m| m.seq),
            false => messages.last().map_or(chat.last_seq, |m| m.seq),
        };
        out.push(SyncedChat {
            chat_id: chat.id.to_hex(),
            last_seq,
            messages: messages.iter().map(|m| message_view(m, Some(user))).collect(),
            has_more,
        });
    }
    Ok(out)
}
