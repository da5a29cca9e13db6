//! The AI chat over REST: `/api/v1/chats/ai` (the chat, its messages, asking and stopping)
//! and `/api/v1/chats/{id}/summarize`. Answers stream to the caller's sockets as
//! `ai:delta` events either way; these routes reply once the answer is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser, page_limit, parse_id};
use crate::assistant::AiFailure;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::service::ai::{self, AiChatView, AiMessageView, Asked};
use crate::state::AppState;
use huddle_signaling::protocol::ErrorCode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_chat))
        .routes(routes!(messages, ask))
        .routes(routes!(cancel))
        .routes(routes!(summarize))
}

/// The caller's AI chat (created on first use; always pinned).
#[utoipa::path(get, path = "/api/v1/chats/ai", tag = "ai", security(("bearer" = [])),
    responses((status = 200, body = AiChatView), (status = 401, body = ErrorBody)))]
async fn get_chat(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<AiChatView>> {
    Ok(axum::Json(ai::chat(&state, auth.id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AiPage {
    /// Messages before this `seq` (older pages).
    before: Option<i64>,
    /// 1-100, default 50.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AiMessages {
    /// Oldest first.
    messages: Vec<AiMessageView>,
}

/// A page of the AI chat, oldest first.
#[utoipa::path(get, path = "/api/v1/chats/ai/messages", tag = "ai", params(AiPage), security(("bearer" = [])),
    responses((status = 200, body = AiMessages), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(page): ApiQuery<AiPage>,
) -> AppResult<axum::Json<AiMessages>> {
    let limit = page_limit(page.limit, 50, ai::PAGE_MAX)?;
    let messages = ai::history(&state, auth.id, page.before, limit).await?;
    Ok(axum::Json(AiMessages {
        messages: messages.iter().map(AiMessageView::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskRequest {
    /// Makes a retry safe: asking again with the same id returns the stored answer, or
    /// answers again if the first answer failed. The server makes one when absent.
    #[serde(default)]
    client_msg_id: Option<String>,
    content: String,
}

#[derive(Serialize, ToSchema)]
pub struct AskReply {
    question: AiMessageView,
    answer: AiMessageView,
}

/// Asks the assistant. The answer streams to the caller's sockets (`ai:delta`, `ai:done`);
/// this replies with the question and the stored answer once it is complete. When the
/// assistant is off (503) or its server fails (502, 504), the question stays stored.
#[utoipa::path(post, path = "/api/v1/chats/ai/messages", tag = "ai", request_body = AskRequest, security(("bearer" = [])),
    responses((status = 201, body = AskReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`ai_busy`: an answer is still streaming"),
              (status = 429, body = ErrorBody, description = "`rate_limited` or `quota_exceeded`"),
              (status = 502, body = ErrorBody, description = "`ai_unavailable`"),
              (status = 503, body = ErrorBody, description = "`ai_not_configured`"),
              (status = 504, body = ErrorBody, description = "`ai_timeout`")))]
async fn ask(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<AskRequest>,
) -> AppResult<(StatusCode, axum::Json<AskReply>)> {
    let asked = ai::ask(&state, auth.id, req.client_msg_id, req.content).await?;
    let question = AiMessageView::from(&asked.question);
    let answer = finished(asked).await?;
    Ok((StatusCode::CREATED, axum::Json(AskReply { question, answer })))
}

/// Waits for a started answer to be stored.
async fn finished(asked: Asked) -> AppResult<AiMessageView> {
    if let Some(answer) = &asked.answer {
        return Ok(AiMessageView::from(answer));
    }
    let Some(done) = asked.done else {
        return Err(AppError::Rejected {
            code: ErrorCode::AiBusy,
            message: "this question is being answered on another request; its answer streams to your sockets".into(),
        });
    };
    match done.await {
        Ok(Ok(answer)) => Ok(AiMessageView::from(&answer)),
        Ok(Err(failure)) => Err(failure_error(&failure)),
        Err(e) => Err(AppError::Internal(anyhow::anyhow!("answer task failed: {e}"))),
    }
}

/// An assistant failure as an HTTP error.
pub fn failure_error(failure: &AiFailure) -> AppError {
    let status = match failure {
        AiFailure::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
        AiFailure::Upstream { .. } => StatusCode::BAD_GATEWAY,
        AiFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
        AiFailure::NotStored => StatusCode::INTERNAL_SERVER_ERROR,
    };
    AppError::Dependency {
        status,
        code: failure.code(),
        message: format!("{failure}; your question is kept: ask again with the same clientMsgId"),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// The answer's id (`messageId` of its `ai:delta` events).
    message_id: String,
}

/// Stops the caller's answer in flight; what arrived so far is stored, marked `cancelled`.
#[utoipa::path(post, path = "/api/v1/chats/ai/cancel", tag = "ai", request_body = CancelRequest, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such answer in flight")))]
async fn cancel(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CancelRequest>,
) -> AppResult<StatusCode> {
    ai::cancel(&state, auth.id, parse_id(&req.message_id)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SummaryReply {
    /// Unread messages from others the summary covers.
    unread: u64,
    /// The stored summary (in the AI chat); `null` when nothing was unread.
    message: Option<AiMessageView>,
}

/// Summarizes what the caller has not read in a chat (members only). The summary streams
/// to the caller's sockets like any answer and is stored in their AI chat.
#[utoipa::path(post, path = "/api/v1/chats/{id}/summarize", tag = "ai", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = SummaryReply), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
              (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn summarize(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<SummaryReply>> {
    let summary = ai::summarize(&state, auth.id, parse_id(&id)?).await?;
    let message = match summary.asked {
        Some(asked) => Some(finished(asked).await?),
        None => None,
    };
    Ok(axum::Json(SummaryReply {
        unread: summary.unread,
        message,
    }))
}
