//! `/api/v1/friends` and `/api/v1/notifications`: friend requests, friendships, and the
//! caller's notifications.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser, page_limit, parse_id};
use super::users::UserView;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::service::friends::{self, InvitationView};
use crate::service::notifications::NotificationView;
use crate::state::AppState;
use crate::store::friends::InvitationStatus;

pub fn friend_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_friends))
        .routes(routes!(list_requests, send_request))
        .routes(routes!(accept))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(unfriend))
}

pub fn notification_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(read_notification))
        .routes(routes!(read_all))
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    data: Vec<UserView>,
}

/// The caller's friends.
#[utoipa::path(get, path = "/", tag = "friends", security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody)))]
async fn list_friends(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<UserList>> {
    let mut data = Vec::new();
    for id in state.store.friends.friend_ids(auth.id).await? {
        if let Some(user) = state.store.users.by_id(id).await? {
            data.push(UserView::public(&user));
        }
    }
    Ok(axum::Json(UserList { data }))
}

#[derive(Serialize, ToSchema)]
pub struct RequestLists {
    incoming: Vec<InvitationView>,
    outgoing: Vec<InvitationView>,
}

/// Pending friend requests, incoming and outgoing.
#[utoipa::path(get, path = "/requests", tag = "friends", security(("bearer" = [])),
    responses((status = 200, body = RequestLists), (status = 401, body = ErrorBody)))]
async fn list_requests(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<RequestLists>> {
    let pending = state.store.friends.pending_of(auth.id).await?;
    let (incoming, outgoing): (Vec<_>, Vec<_>) = pending.iter().partition(|i| i.receiver == auth.id);
    Ok(axum::Json(RequestLists {
        incoming: incoming.into_iter().map(InvitationView::from).collect(),
        outgoing: outgoing.into_iter().map(InvitationView::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FriendRequest {
    user_id: String,
    #[serde(default)]
    content: String,
}

/// Sends a friend request; the receiver gets `friend:request` and a notification.
#[utoipa::path(post, path = "/requests", tag = "friends", request_body = FriendRequest, security(("bearer" = [])),
    responses((status = 201, body = InvitationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn send_request(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<FriendRequest>,
) -> AppResult<(StatusCode, axum::Json<InvitationView>)> {
    let invitation = friends::request(&state, auth.id, parse_id(&req.user_id)?, req.content).await?;
    Ok((StatusCode::CREATED, axum::Json(InvitationView::from(&invitation))))
}

/// Accepts a request sent to the caller.
#[utoipa::path(post, path = "/requests/{id}/accept", tag = "friends", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = InvitationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn accept(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<InvitationView>> {
    Ok(axum::Json(InvitationView::from(
        &friends::accept(&state, auth.id, parse_id(&id)?).await?,
    )))
}

/// Rejects a request sent to the caller.
#[utoipa::path(post, path = "/requests/{id}/reject", tag = "friends", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = InvitationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reject(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<InvitationView>> {
    let closed = friends::close(&state, auth.id, parse_id(&id)?, InvitationStatus::Rejected).await?;
    Ok(axum::Json(InvitationView::from(&closed)))
}

/// Cancels a request the caller sent.
#[utoipa::path(delete, path = "/requests/{id}", tag = "friends", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = InvitationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<InvitationView>> {
    let closed = friends::close(&state, auth.id, parse_id(&id)?, InvitationStatus::Cancelled).await?;
    Ok(axum::Json(InvitationView::from(&closed)))
}

/// Ends a friendship.
#[utoipa::path(delete, path = "/{user_id}", tag = "friends", params(("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unfriend(State(state): State<AppState>, auth: AuthUser, Path(user_id): Path<String>) -> AppResult<StatusCode> {
    friends::unfriend(&state, auth.id, parse_id(&user_id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// 1-100, default 50.
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    data: Vec<NotificationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/", tag = "notifications", params(NotificationQuery), security(("bearer" = [])),
    responses((status = 200, body = NotificationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_notifications(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> AppResult<axum::Json<NotificationPage>> {
    let limit = page_limit(q.limit, 50, 100)?;
    let before = q.cursor.as_deref().map(parse_id).transpose()?;
    let found = state.store.notifications.of_user(auth.id, before, limit).await?;
    let next_cursor = (found.len() as i64 == limit)
        .then(|| found.last().map(|n| n.id.to_hex()))
        .flatten();
    Ok(axum::Json(NotificationPage {
        data: found.iter().map(NotificationView::from).collect(),
        next_cursor,
    }))
}

/// Marks one notification read.
#[utoipa::path(post, path = "/{id}/read", tag = "notifications", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_notification(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    if !state.store.notifications.mark_read(parse_id(&id)?, auth.id).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct Marked {
    updated: u64,
}

/// Marks every notification read.
#[utoipa::path(post, path = "/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Marked), (status = 401, body = ErrorBody)))]
async fn read_all(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<Marked>> {
    Ok(axum::Json(Marked {
        updated: state.store.notifications.mark_all_read(auth.id).await?,
    }))
}
