//! `/api/v1/calls`: starting and ending calls, call history, and ICE servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use huddle_signaling::protocol::CallStart;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser, page_limit, parse_id};
use crate::domain::call::Action;
use crate::error::{AppResult, ErrorBody};
use crate::service::calls::{self, IceServers};
use crate::state::AppState;
use huddle_signaling::protocol::CallView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, start))
        .routes(routes!(ice_servers))
        .routes(routes!(get_call))
        .routes(routes!(end))
}

/// Starts a call in a chat: its other members ring (`call:incoming`).
#[utoipa::path(post, path = "/", tag = "calls", request_body = CallStart, security(("bearer" = [])),
    responses((status = 201, body = CallView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A call is already live in this chat")))]
async fn start(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CallStart>,
) -> AppResult<(StatusCode, axum::Json<CallView>)> {
    let call = calls::start(&state, auth.id, parse_id(&req.chat_id)?, req.kind).await?;
    Ok((StatusCode::CREATED, axum::Json(CallView::from(&call))))
}

/// Hangs up for everyone (a participant who is in the call).
#[utoipa::path(post, path = "/{id}/end", tag = "calls", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = CallView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> AppResult<axum::Json<CallView>> {
    let call = calls::act(&state, auth.id, parse_id(&id)?, Action::End).await?;
    Ok(axum::Json(CallView::from(&call)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1-100, default 50.
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallPage {
    data: Vec<CallView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Calls in the caller's chats, newest first.
#[utoipa::path(get, path = "/", tag = "calls", params(HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = CallPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> AppResult<axum::Json<CallPage>> {
    let limit = page_limit(q.limit, 50, 100)?;
    let before = q.cursor.as_deref().map(parse_id).transpose()?;
    let found = calls::history(&state, auth.id, before, limit).await?;
    let next_cursor = (found.len() as i64 == limit)
        .then(|| found.last().map(|c| c.id.to_hex()))
        .flatten();
    Ok(axum::Json(CallPage {
        data: found.iter().map(CallView::from).collect(),
        next_cursor,
    }))
}

/// One call of the caller's chats.
#[utoipa::path(get, path = "/{id}", tag = "calls", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = CallView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_call(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<CallView>> {
    Ok(axum::Json(CallView::from(
        &calls::get(&state, auth.id, parse_id(&id)?).await?,
    )))
}

/// STUN/TURN servers with short-lived TURN credentials, for users who joined a live call.
#[utoipa::path(get, path = "/ice-servers", tag = "calls", security(("bearer" = [])),
    responses((status = 200, body = IceServers), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn ice_servers(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<IceServers>> {
    Ok(axum::Json(calls::ice_servers(&state, auth.id).await?))
}
