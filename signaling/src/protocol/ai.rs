//! The AI chat: asking, cancelling and summarizing, and the answer streaming back to every
//! socket of the asker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SocketEvent;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AiRole {
    User,
    Assistant,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AiStatus {
    /// A question, or an answer that streamed to its end.
    Complete,
    /// An answer stopped by the user: what had arrived until then.
    Cancelled,
}

/// `ai:ask`: a question for the assistant. `clientMsgId` makes a retry safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiAsk {
    pub client_msg_id: String,
    pub content: String,
}

impl SocketEvent for AiAsk {
    const EVENT: &'static str = "ai:ask";
}

/// The ack of `ai:ask`: the stored question, and the answer that streams next (`messageId`)
/// or, when this question was answered before, that stored `answer` (then nothing streams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiAsked {
    pub question: AiMessageView,
    pub message_id: String,
    pub answer: Option<AiMessageView>,
}

/// The ack of `ai:summarize`: how many messages were unread, and, when there were any, the
/// question asked for their summary and the answer that streams next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiSummarized {
    pub unread: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<AiMessageView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// A question or an answer in the AI chat; the payload of `ai:done`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiMessageView {
    #[serde(rename = "_id")]
    pub id: String,
    pub chat_id: String,
    pub seq: i64,
    pub role: AiRole,
    pub content: String,
    pub status: AiStatus,
    /// The asker's id for questions; `answer-<question id>` for answers.
    pub client_msg_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_chat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `ai:delta`: the next piece of an answer. `index` counts from 0; the pieces in order are
/// the stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiDelta {
    pub message_id: String,
    pub question_id: String,
    pub index: u64,
    pub text: String,
}

impl SocketEvent for AiDelta {
    const EVENT: &'static str = "ai:delta";
}

/// `ai:error`: no answer was stored for a question; asking again with its `clientMsgId`
/// retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiError {
    pub message_id: String,
    pub question_id: String,
    pub client_msg_id: String,
    pub code: super::ErrorCode,
    pub message: String,
}

impl SocketEvent for AiError {
    const EVENT: &'static str = "ai:error";
}
