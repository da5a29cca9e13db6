//! `/api/v1/chats` and `/api/v1/messages`: chat list, 1:1 chats, pins, read positions,
//! history and message writes. Each write emits the same events as its Socket.IO twin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser, page_limit, parse_id};
use crate::domain::media::MediaType;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::service::chats::{self, ChatView};
use crate::service::messages::{self, MessageView, ReadReceipt, SendMessage, message_view};
use crate::state::AppState;
use crate::store::messages::Page;

pub fn chat_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_chats, open_chat))
        .routes(routes!(search_chats))
        .routes(routes!(get_chat))
        .routes(routes!(pin))
        .routes(routes!(unpin))
        .routes(routes!(read))
        .routes(routes!(starred))
        .routes(routes!(history, send))
        .routes(routes!(chat_media))
        .routes(routes!(chat_files))
        .routes(routes!(chat_links))
        .routes(routes!(collection))
}

pub fn message_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(edit, delete))
        .routes(routes!(star))
        .routes(routes!(unstar))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChatListQuery {
    /// Page size, 1-100 (default 50).
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage {
    /// The caller's AI chat, always pinned above the others (on the first page only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ai: Option<crate::service::ai::AiChatView>,
    data: Vec<ChatView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The caller's chats: pinned first, then by last activity, with last message and unread count.
#[utoipa::path(get, path = "/", tag = "chats", params(ChatListQuery), security(("bearer" = [])),
    responses((status = 200, body = ChatPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_chats(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ChatListQuery>,
) -> AppResult<axum::Json<ChatPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::bad_request("limit: must be between 1 and 100"));
    }
    let all = chats::list(&state, auth.id).await?;
    // The cursor is the id of the last chat of the previous page in this order.
    let start = match q.cursor.as_deref() {
        Some(cursor) => {
            let cursor = parse_id(cursor)?;
            all.iter()
                .position(|c| c.id == cursor)
                .map(|i| i + 1)
                .unwrap_or(all.len())
        }
        None => 0,
    };
    let page: Vec<_> = all.iter().skip(start).take(limit).collect();
    let next_cursor = (start + page.len() < all.len())
        .then(|| page.last().map(|c| c.id.to_hex()))
        .flatten();
    let mut data = Vec::with_capacity(page.len());
    for chat in page {
        data.push(chats::view(&state, chat, auth.id).await?);
    }
    let ai = match q.cursor {
        None => Some(crate::service::ai::chat(&state, auth.id).await?),
        Some(_) => None,
    };
    Ok(axum::Json(ChatPage { ai, data, next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenChat {
    /// The friend to chat with.
    user_id: String,
}

/// Opens the 1:1 chat with a friend (201 when created, 200 when it existed).
#[utoipa::path(post, path = "/", tag = "chats", request_body = OpenChat, security(("bearer" = [])),
    responses((status = 201, body = ChatView), (status = 200, body = ChatView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Not friends")))]
async fn open_chat(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<OpenChat>,
) -> AppResult<(StatusCode, axum::Json<ChatView>)> {
    let other = parse_id(&req.user_id)?;
    let (chat, created) = chats::open_direct(&state, auth.id, other).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(chats::view(&state, &chat, auth.id).await?)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChatSearchQuery {
    /// Text in a group's name or a 1:1 partner's name or username.
    q: String,
}

/// Searches the caller's chats by group name or partner name.
#[utoipa::path(get, path = "/search", tag = "chats", params(ChatSearchQuery), security(("bearer" = [])),
    responses((status = 200, body = ChatPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search_chats(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ChatSearchQuery>,
) -> AppResult<axum::Json<ChatPage>> {
    let needle = q.q.trim().to_lowercase();
    if needle.is_empty() || needle.chars().count() > 64 {
        return Err(AppError::bad_request("q: must be 1-64 characters"));
    }
    let mut data = Vec::new();
    for chat in chats::list(&state, auth.id).await? {
        let mut names: Vec<String> = chat.name.iter().map(|n| n.to_lowercase()).collect();
        if !chat.is_group {
            for other in chat.participants.iter().filter(|p| **p != auth.id) {
                if let Some(user) = state.store.users.by_id(*other).await? {
                    names.extend([
                        user.username,
                        user.first_name.to_lowercase(),
                        user.last_name.to_lowercase(),
                    ]);
                }
            }
        }
        if names.iter().any(|n| n.contains(&needle)) {
            data.push(chats::view(&state, &chat, auth.id).await?);
        }
    }
    Ok(axum::Json(ChatPage {
        ai: None,
        data,
        next_cursor: None,
    }))
}

/// One chat; non-members get the same 404 as for a chat that does not exist.
#[utoipa::path(get, path = "/{id}", tag = "chats", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ChatView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_chat(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ChatView>> {
    let chat = chats::member_chat(&state, parse_id(&id)?, auth.id).await?;
    Ok(axum::Json(chats::view(&state, &chat, auth.id).await?))
}

async fn set_pin(state: &AppState, auth: AuthUser, id: &str, pinned: bool) -> AppResult<axum::Json<ChatView>> {
    let chat = state
        .store
        .chats
        .set_pinned(parse_id(id)?, auth.id, pinned)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(axum::Json(chats::view(state, &chat, auth.id).await?))
}

/// Pins a chat to the top of the caller's list.
#[utoipa::path(post, path = "/{id}/pin", tag = "chats", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ChatView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pin(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> AppResult<axum::Json<ChatView>> {
    set_pin(&state, auth, &id, true).await
}

/// Unpins a chat.
#[utoipa::path(post, path = "/{id}/unpin", tag = "chats", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ChatView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unpin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ChatView>> {
    set_pin(&state, auth, &id, false).await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadUpTo {
    seq: i64,
}

/// Marks the chat read up to `seq`; members get `message:read`.
#[utoipa::path(post, path = "/{id}/read", tag = "chats", params(("id" = String, Path)), request_body = ReadUpTo, security(("bearer" = [])),
    responses((status = 200, body = ReadReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReadUpTo>,
) -> AppResult<axum::Json<ReadReceipt>> {
    Ok(axum::Json(
        messages::read(&state, auth.id, parse_id(&id)?, req.seq).await?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    /// Oldest first.
    data: Vec<MessageView>,
}

/// The messages the caller starred in this chat.
#[utoipa::path(get, path = "/{id}/starred-messages", tag = "chats", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn starred(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<MessageList>> {
    let chat = chats::member_chat(&state, parse_id(&id)?, auth.id).await?;
    let found = state.store.messages.starred(chat.id, auth.id).await?;
    Ok(axum::Json(MessageList {
        data: found.iter().map(|m| message_view(m, Some(auth.id))).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SharedQuery {
    /// `nextCursor` of the previous page.
    before: Option<String>,
    /// 1-100, default 30.
    limit: Option<i64>,
}

impl SharedQuery {
    fn page(&self) -> AppResult<(Option<mongodb::bson::oid::ObjectId>, i64)> {
        Ok((
            self.before.as_deref().map(parse_id).transpose()?,
            page_limit(self.limit, 30, 100)?,
        ))
    }
}

/// Images and videos shared in the chat, newest first (deleted messages' attachments leave).
#[utoipa::path(get, path = "/{id}/media", tag = "media", params(("id" = String, Path), SharedQuery), security(("bearer" = [])),
    responses((status = 200, body = crate::service::media::MediaPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn chat_media(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SharedQuery>,
) -> AppResult<axum::Json<crate::service::media::MediaPage>> {
    shared(&state, &auth, &id, &q, &[MediaType::Image, MediaType::Video]).await
}

/// Files and audio shared in the chat, newest first.
#[utoipa::path(get, path = "/{id}/files", tag = "media", params(("id" = String, Path), SharedQuery), security(("bearer" = [])),
    responses((status = 200, body = crate::service::media::MediaPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn chat_files(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SharedQuery>,
) -> AppResult<axum::Json<crate::service::media::MediaPage>> {
    shared(&state, &auth, &id, &q, &[MediaType::File, MediaType::Audio]).await
}

async fn shared(
    state: &AppState,
    auth: &AuthUser,
    id: &str,
    q: &SharedQuery,
    types: &[MediaType],
) -> AppResult<axum::Json<crate::service::media::MediaPage>> {
    let (before, limit) = q.page()?;
    let page = crate::service::media::chat_media(state, auth.id, parse_id(id)?, types, before, limit).await?;
    Ok(axum::Json(page))
}

/// The caller's Collection for the chat: the messages they starred and the attachments they
/// shared there.
#[utoipa::path(get, path = "/{id}/collection", tag = "media", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::service::media::CollectionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn collection(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<crate::service::media::CollectionView>> {
    Ok(axum::Json(
        crate::service::media::collection(&state, auth.id, parse_id(&id)?).await?,
    ))
}

/// Links shared in the chat's messages, newest message first.
#[utoipa::path(get, path = "/{id}/links", tag = "media", params(("id" = String, Path), SharedQuery), security(("bearer" = [])),
    responses((status = 200, body = crate::service::media::LinkPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn chat_links(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SharedQuery>,
) -> AppResult<axum::Json<crate::service::media::LinkPage>> {
    let (before, limit) = q.page()?;
    Ok(axum::Json(
        crate::service::media::chat_links(&state, auth.id, parse_id(&id)?, before, limit).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages with a smaller `seq` (older), newest of them first in selection.
    before: Option<i64>,
    /// Messages with a larger `seq` (what a client missed), oldest first.
    after: Option<i64>,
    /// 1-200, default 50.
    limit: Option<i64>,
}

/// A page of history, always oldest first.
#[utoipa::path(get, path = "/{id}/messages", tag = "messages", params(("id" = String, Path), HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> AppResult<axum::Json<MessageList>> {
    let page = match (q.before, q.after) {
        (Some(_), Some(_)) => return Err(AppError::bad_request("give before or after, not both")),
        (_, Some(after)) => Page::After(after),
        (before, None) => Page::Before(before),
    };
    let limit = page_limit(q.limit, 50, messages::PAGE_MAX)?;
    let found = messages::history(&state, auth.id, parse_id(&id)?, page, limit).await?;
    Ok(axum::Json(MessageList {
        data: found.iter().map(|m| message_view(m, Some(auth.id))).collect(),
    }))
}

/// Sends a message (REST twin of `message:send`); a repeated `clientMsgId` returns the
/// stored message.
#[utoipa::path(post, path = "/{id}/messages", tag = "messages", params(("id" = String, Path)), request_body = SendMessage, security(("bearer" = [])),
    responses((status = 201, body = MessageView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendMessage>,
) -> AppResult<(StatusCode, axum::Json<MessageView>)> {
    let stored = messages::send(&state, auth.id, parse_id(&id)?, req).await?;
    Ok((StatusCode::CREATED, axum::Json(message_view(&stored, Some(auth.id)))))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessage {
    content: String,
}

/// Edits the caller's own message.
#[utoipa::path(patch, path = "/{id}", tag = "messages", params(("id" = String, Path)), request_body = EditMessage, security(("bearer" = [])),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditMessage>,
) -> AppResult<axum::Json<MessageView>> {
    let edited = messages::edit(&state, auth.id, parse_id(&id)?, req.content).await?;
    Ok(axum::Json(message_view(&edited, Some(auth.id))))
}

/// Deletes the caller's own message; a tombstone keeps its place.
#[utoipa::path(delete, path = "/{id}", tag = "messages", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<MessageView>> {
    let deleted = messages::delete(&state, auth.id, parse_id(&id)?).await?;
    Ok(axum::Json(message_view(&deleted, Some(auth.id))))
}

/// Stars a message for the caller.
#[utoipa::path(post, path = "/{id}/star", tag = "messages", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn star(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<MessageView>> {
    let m = messages::star(&state, auth.id, parse_id(&id)?, true).await?;
    Ok(axum::Json(message_view(&m, Some(auth.id))))
}

/// Removes the caller's star.
#[utoipa::path(post, path = "/{id}/unstar", tag = "messages", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unstar(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<MessageView>> {
    let m = messages::star(&state, auth.id, parse_id(&id)?, false).await?;
    Ok(axum::Json(message_view(&m, Some(auth.id))))
}
