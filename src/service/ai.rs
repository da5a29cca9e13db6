//! The AI chat: questions stored before they are sent, answers streamed to the asker's
//! sockets (`ai:delta`, then `ai:done` or `ai:error`) and stored whole once complete (or, when
//! the user stops them, as far as they got, marked cancelled). A failed answer stores nothing:
//! the question stays, to be asked again with the same `clientMsgId`. Summaries of a chat's
//! unread messages stream the same way into the same AI chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mongodb::bson::{self, oid::ObjectId};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use crate::assistant::{AiFailure, Assistant, Turn};
use crate::auth::rate_limit::RateLimiter;
use crate::domain::chat::{self as rules, MessageType};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::ai::{AiChat, AiMessage, AiRole, AiStatus, answer_client_id};
use crate::store::messages::Message;
pub use huddle_signaling::protocol::AiMessageView;
use huddle_signaling::protocol::ErrorCode;
use huddle_signaling::protocol::{AiDelta, AiError, events};

/// Most messages one page of the AI chat returns.
pub const PAGE_MAX: i64 = 100;
/// Most of a chat's unread messages one summary reads (the newest ones).
pub const SUMMARY_MESSAGES_MAX: i64 = 500;
/// Characters per token, for budgeting the conversation without a tokenizer.
const CHARS_PER_TOKEN: usize = 4;
/// What each message costs beyond its text (role and framing), in tokens.
const TOKENS_PER_MESSAGE: usize = 4;

/// An answer in progress: one per user at a time.
struct InFlight {
    question: ObjectId,
    answer: ObjectId,
    cancel: watch::Sender<bool>,
}

/// The assistant and what is being answered right now, shared by every handler.
#[derive(Clone, Debug)]
pub struct AiHub {
    assistant: Assistant,
    inflight: Arc<Mutex<HashMap<ObjectId, InFlight>>>,
    limiter: RateLimiter,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("answer", &self.answer).finish()
    }
}

impl AiHub {
    pub fn new(assistant: Assistant) -> Self {
        Self {
            assistant,
            inflight: Arc::default(),
            limiter: RateLimiter::new(Duration::from_secs(60)),
        }
    }

    /// Counts the per-minute rate with every node (see [`RateLimiter::shared`]).
    pub fn with_shared_limit(mut self, counters: crate::auth::rate_limit::SharedCounters) -> Self {
        self.limiter = self.limiter.shared(counters);
        self
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, InFlight>> {
        self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims the user's answer slot for `question`, unless an answer already holds it.
    fn claim(&self, user: ObjectId, question: ObjectId) -> Result<Claim, Busy> {
        let mut table = self.table();
        if let Some(current) = table.get(&user) {
            return Err(if current.question == question {
                Busy::Same(current.answer)
            } else {
                Busy::Other
            });
        }
        let (cancel, cancelled) = watch::channel(false);
        let answer = ObjectId::new();
        table.insert(
            user,
            InFlight {
                question,
                answer,
                cancel,
            },
        );
        Ok(Claim {
            hub: self.clone(),
            user,
            answer,
            cancelled,
        })
    }
}

/// Why the answer slot is taken: by this very question (its answer's id), or another.
enum Busy {
    Same(ObjectId),
    Other,
}

/// The user's answer slot while an answer streams; freed when dropped, whatever happened.
struct Claim {
    hub: AiHub,
    user: ObjectId,
    answer: ObjectId,
    cancelled: watch::Receiver<bool>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut table = self.hub.table();
        if table.get(&self.user).is_some_and(|f| f.answer == self.answer) {
            table.remove(&self.user);
        }
    }
}

/// The AI chat as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiChatView {
    #[serde(rename = "_id")]
    pub id: String,
    pub user_id: String,
    /// Always true: the AI chat sits at the top of the chat list.
    pub pinned: bool,
    /// Whether this server has an assistant to answer.
    pub configured: bool,
    pub model: String,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&AiMessage> for AiMessageView {
    fn from(m: &AiMessage) -> Self {
        Self {
            id: m.id.to_hex(),
            chat_id: m.ai_chat_id.to_hex(),
            seq: m.seq,
            role: m.role,
            content: m.content.clone(),
            status: m.status,
            client_msg_id: m.client_msg_id.clone(),
            question_id: m.question_id.map(|q| q.to_hex()),
            source_chat_id: m.source_chat_id.map(|c| c.to_hex()),
            model: m.model.clone(),
            created_at: m.created_at.to_chrono(),
        }
    }
}

/// What asking started: either the stored answer (the question was answered before) or an
/// answer streaming now under `answer_id`.
pub struct Asked {
    pub question: AiMessage,
    pub answer_id: ObjectId,
    /// Set when the question had been answered already.
    pub answer: Option<AiMessage>,
    /// The streaming answer's end, for callers that wait (REST); `None` when it was
    /// answered before or another request is streaming this answer.
    pub done: Option<JoinHandle<Result<AiMessage, AiFailure>>>,
}

/// The caller's AI chat, created on first use.
pub async fn chat(state: &AppState, user: ObjectId) -> AppResult<AiChatView> {
    let chat = state.store.ai.chat_of(user).await?;
    let newest = state.store.ai.newest(chat.id, chat.last_seq).await?;
    Ok(AiChatView {
        id: chat.id.to_hex(),
        user_id: chat.user_id.to_hex(),
        pinned: chat.pinned,
        configured: state.ai.assistant.is_configured(),
        model: state.ai.assistant.model().to_string(),
        last_seq: newest.as_ref().map_or(chat.last_seq, |m| m.seq),
        created_at: chat.created_at.to_chrono(),
        updated_at: newest
            .as_ref()
            .map_or(chat.updated_at, |m| m.created_at.max(chat.updated_at))
            .to_chrono(),
    })
}

/// A page of the caller's AI chat, oldest first.
pub async fn history(state: &AppState, user: ObjectId, before: Option<i64>, limit: i64) -> AppResult<Vec<AiMessage>> {
    let chat = state.store.ai.chat_of(user).await?;
    Ok(state.store.ai.page(chat.id, before, limit.clamp(1, PAGE_MAX)).await?)
}

/// Stores the question (once per `clientMsgId`) and starts streaming its answer. A question
/// asked again after its answer failed is answered again; one already answered returns the
/// stored answer and streams nothing.
pub async fn ask(state: &AppState, user: ObjectId, client_msg_id: Option<String>, content: String) -> AppResult<Asked> {
    let client_msg_id = client_msg_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    rules::check_client_msg_id(&client_msg_id).map_err(|e| AppError::bad_request(e.to_string()))?;
    if client_msg_id.starts_with("answer-") || client_msg_id.starts_with("summary-") {
        return Err(AppError::bad_request(
            "clientMsgId: 'answer-' and 'summary-' are reserved for the server's own ids",
        ));
    }
    rules::check_content(MessageType::Text, &content, 0).map_err(|e| AppError::bad_request(e.to_string()))?;
    let chat = state.store.ai.chat_of(user).await?;

    let existing = state.store.ai.by_client_id(chat.id, &client_msg_id).await?;
    if let Some(question) = &existing {
        if question.role != AiRole::User || question.content != content {
            return Err(AppError::Rejected {
                code: ErrorCode::ClientMsgIdReused,
                message: "clientMsgId: already used for another question".into(),
            });
        }
        if let Some(answered) = answered_before(state, question).await? {
            return Ok(answered);
        }
    }
    let question_id = existing.as_ref().map_or_else(ObjectId::new, |q| q.id);
    let claim = match (state.ai.claim(user, question_id), existing.clone()) {
        (Ok(claim), _) => claim,
        // This question is streaming already (asked again while it runs): point at it.
        (Err(Busy::Same(answer_id)), Some(question)) => {
            return Ok(Asked {
                question,
                answer_id,
                answer: None,
                done: None,
            });
        }
        (Err(_), _) => return Err(busy()),
    };
    // An answer may have been stored between the look-up above and the claim.
    if let Some(question) = &existing
        && let Some(answered) = answered_before(state, question).await?
    {
        return Ok(answered);
    }
    check_limits(state, user, existing.is_none()).await?;
    let question = match existing {
        Some(question) => question,
        None => {
            let draft = AiMessage::draft(question_id, chat.id, user, AiRole::User, client_msg_id, content);
            store_question(state, draft).await?
        }
    };
    let turns = conversation(state, &chat, &question).await?;
    Ok(start(state, claim, question, turns))
}

/// The stored answer to `question`, if it has one.
async fn answered_before(state: &AppState, question: &AiMessage) -> AppResult<Option<Asked>> {
    let answer = state
        .store
        .ai
        .by_client_id(question.ai_chat_id, &answer_client_id(question.id))
        .await?;
    Ok(answer.map(|answer| Asked {
        question: question.clone(),
        answer_id: answer.id,
        answer: Some(answer),
        done: None,
    }))
}

/// Stores a question; a concurrent first ask with the same `clientMsgId` wins and this one
/// answers with its question.
async fn store_question(state: &AppState, draft: AiMessage) -> AppResult<AiMessage> {
    let appended = state
        .store
        .ai
        .append(draft)
        .await
        .map_err(crate::service::messages::append_error)?;
    Ok(appended.entry)
}

fn busy() -> AppError {
    AppError::Rejected {
        code: ErrorCode::AiBusy,
        message: "the assistant is still answering your previous question; wait for it or cancel it".into(),
    }
}

/// The per-minute rate (every ask) and the daily quota (new questions), per user.
async fn check_limits(state: &AppState, user: ObjectId, new_question: bool) -> AppResult<()> {
    let config = &state.config;
    state
        .ai
        .limiter
        .hit(&user.to_hex(), config.ai_rate_per_minute, Instant::now())
        .await
        .map_err(|retry_after| AppError::TooManyRequests { retry_after })?;
    if new_question {
        let now = Utc::now();
        let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let asked = state
            .store
            .ai
            .questions_since(user, bson::DateTime::from_chrono(midnight))
            .await?;
        if asked >= u64::from(config.ai_daily_quota) {
            let tomorrow = midnight + chrono::Duration::days(1);
            return Err(AppError::QuotaExceeded {
                message: "the daily number of questions to the assistant is used up; it resets at midnight UTC",
                retry_after: (tomorrow - now).to_std().unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// The system prompt, then the newest messages of the AI chat that fit the budget, ending
/// with `question` (cut to the budget if it alone is larger).
async fn conversation(state: &AppState, chat: &AiChat, question: &AiMessage) -> AppResult<Vec<Turn>> {
    let budget = state.config.ai_context_tokens as usize * CHARS_PER_TOKEN;
    let system = state.config.ai_system_prompt.clone();
    let mut left = budget.saturating_sub(system.chars().count() + TOKENS_PER_MESSAGE * CHARS_PER_TOKEN);
    let recent = state.store.ai.page(chat.id, Some(question.seq), PAGE_MAX).await?;

    let question_text: String = question.content.chars().take(left.max(CHARS_PER_TOKEN * 64)).collect();
    left = left.saturating_sub(question_text.chars().count() + TOKENS_PER_MESSAGE * CHARS_PER_TOKEN);
    let mut earlier = Vec::new();
    for message in recent.iter().rev() {
        if message.content.is_empty() {
            continue;
        }
        let cost = message.content.chars().count() + TOKENS_PER_MESSAGE * CHARS_PER_TOKEN;
        if cost > left {
            break;
        }
        left -= cost;
        earlier.push(match message.role {
            AiRole::User => Turn::User(message.content.clone()),
            AiRole::Assistant => Turn::Assistant(message.content.clone()),
        });
    }
    let mut turns = vec![Turn::System(system)];
    turns.extend(earlier.into_iter().rev());
    turns.push(Turn::User(question_text));
    Ok(turns)
}

/// Starts the answer's stream on its own task; it keeps going if the asker goes away.
fn start(state: &AppState, claim: Claim, question: AiMessage, turns: Vec<Turn>) -> Asked {
    let answer_id = claim.answer;
    let task = tokio::spawn(stream_answer(state.clone(), claim, question.clone(), turns));
    Asked {
        question,
        answer_id,
        answer: None,
        done: Some(task),
    }
}

/// How an answer's stream ended.
enum Ended {
    Complete(String),
    Cancelled(String),
}

async fn stream_answer(
    state: AppState,
    mut claim: Claim,
    question: AiMessage,
    turns: Vec<Turn>,
) -> Result<AiMessage, AiFailure> {
    let (user, answer_id) = (question.user_id, claim.answer);
    let limit = Duration::from_secs(state.config.ai_answer_timeout_secs);
    let ended = tokio::time::timeout(limit, relay(&state, &mut claim, &question, &turns))
        .await
        .unwrap_or(Err(AiFailure::Timeout));
    let (content, status) = match ended {
        Ok(Ended::Complete(text)) => (text, AiStatus::Complete),
        Ok(Ended::Cancelled(text)) => (text, AiStatus::Cancelled),
        Err(failure) => {
            drop(claim);
            metrics::counter!("huddle_ai_answers_total", "outcome" => failure.code().as_str()).increment(1);
            tracing::warn!(user = %user, error = %failure.detail(), "assistant answer failed");
            tell_failure(&state, &question, answer_id, &failure).await;
            return Err(failure);
        }
    };
    let draft = AiMessage {
        status,
        question_id: Some(question.id),
        source_chat_id: question.source_chat_id,
        model: Some(state.ai.assistant.model().to_string()),
        ..AiMessage::draft(
            answer_id,
            question.ai_chat_id,
            user,
            AiRole::Assistant,
            answer_client_id(question.id),
            content,
        )
    };
    let answer = match state.store.ai.append(draft).await {
        Ok(appended) if appended.fresh => appended.entry,
        // Another request answered this question meanwhile: its answer is the one kept.
        Ok(appended) => {
            drop(claim);
            state
                .realtime
                .to_user(user, events::AI_DONE, &AiMessageView::from(&appended.entry))
                .await;
            return Ok(appended.entry);
        }
        Err(e) => {
            drop(claim);
            tracing::error!(error = %e, "cannot store an assistant answer");
            tell_failure(&state, &question, answer_id, &AiFailure::NotStored).await;
            return Err(AiFailure::NotStored);
        }
    };
    let outcome = if status == AiStatus::Complete {
        "complete"
    } else {
        "cancelled"
    };
    metrics::counter!("huddle_ai_answers_total", "outcome" => outcome).increment(1);
    drop(claim);
    state
        .realtime
        .to_user(user, events::AI_DONE, &AiMessageView::from(&answer))
        .await;
    Ok(answer)
}

/// `ai:error` to the asker's sockets: no answer was stored for `question`.
async fn tell_failure(state: &AppState, question: &AiMessage, answer_id: ObjectId, failure: &AiFailure) {
    let event = AiError {
        question_id: question.id.to_hex(),
        client_msg_id: question.client_msg_id.clone(),
        message_id: answer_id.to_hex(),
        code: failure.code(),
        message: failure.to_string(),
    };
    state.realtime.send_to_user(question.user_id, &event).await;
}

/// Opens the stream and relays each piece as `ai:delta` until the end or a cancel.
async fn relay(state: &AppState, claim: &mut Claim, question: &AiMessage, turns: &[Turn]) -> Result<Ended, AiFailure> {
    let cancelled = &mut claim.cancelled;
    let mut stream = tokio::select! {
        opened = state.ai.assistant.open(turns) => opened?,
        Ok(_) = cancelled.wait_for(|c| *c) => return Ok(Ended::Cancelled(String::new())),
    };
    let (user, answer_id) = (question.user_id, claim.answer.to_hex());
    let mut text = String::new();
    let mut index = 0u64;
    loop {
        let piece = tokio::select! {
            biased;
            Ok(_) = cancelled.wait_for(|c| *c) => return Ok(Ended::Cancelled(text)),
            piece = stream.next() => piece?,
        };
        let Some(piece) = piece else {
            return Ok(Ended::Complete(text));
        };
        text.push_str(&piece);
        let delta = AiDelta {
            message_id: answer_id.clone(),
            question_id: question.id.to_hex(),
            index,
            text: piece,
        };
        index += 1;
        state.realtime.send_to_user(user, &delta).await;
    }
}

/// Stops the caller's answer in flight; what arrived so far is stored, marked cancelled.
pub fn cancel(state: &AppState, user: ObjectId, answer: ObjectId) -> AppResult<()> {
    let table = state.ai.table();
    match table.get(&user) {
        Some(flight) if flight.answer == answer => {
            flight.cancel.send_replace(true);
            Ok(())
        }
        _ => Err(AppError::NotFound),
    }
}

/// What a summary request started.
pub struct Summary {
    /// Unread messages from others in the chat.
    pub unread: u64,
    /// `None` when there was nothing unread (and nothing was asked).
    pub asked: Option<Asked>,
}

/// Asks for a summary of what the caller has not read in a chat they belong to.
pub async fn summarize(state: &AppState, user: ObjectId, chat_id: ObjectId) -> AppResult<Summary> {
    let chat = super::chats::member_chat(state, chat_id, user).await?;
    let read = chat.read_seq(user);
    let unread = state.store.messages.unread(chat_id, user, read).await?;
    if unread == 0 {
        return Ok(Summary { unread, asked: None });
    }
    let ai_chat = state.store.ai.chat_of(user).await?;
    let question_id = ObjectId::new();
    let claim = state.ai.claim(user, question_id).map_err(|_| busy())?;
    check_limits(state, user, true).await?;

    let messages = state
        .store
        .messages
        .unread_newest(chat_id, user, read, SUMMARY_MESSAGES_MAX)
        .await?;
    let name = chat_name(state, &chat, user).await?;
    let content = if messages.len() as u64 >= unread {
        format!("Summarize the {unread} unread messages in {name}.")
    } else {
        format!(
            "Summarize the newest {} of the {unread} unread messages in {name}.",
            messages.len()
        )
    };
    let draft = AiMessage {
        source_chat_id: Some(chat_id),
        ..AiMessage::draft(
            question_id,
            ai_chat.id,
            user,
            AiRole::User,
            format!("summary-{}", question_id.to_hex()),
            content,
        )
    };
    let question = store_question(state, draft).await?;
    let transcript = transcript(state, &messages).await?;
    let budget = state.config.ai_context_tokens as usize * CHARS_PER_TOKEN;
    let system = state.config.ai_system_prompt.clone();
    let instruction = format!(
        "Summarize these messages from the chat {name} that I have not read yet. Be brief: the topics, \
         decisions, and anything asked of me. Messages, oldest first, one per line as [time] name: text\n\n"
    );
    let room = budget.saturating_sub(system.chars().count() + instruction.chars().count());
    let turns = vec![
        Turn::System(system),
        Turn::User(format!("{instruction}{}", fit_newest(&transcript, room))),
    ];
    Ok(Summary {
        unread,
        asked: Some(start(state, claim, question, turns)),
    })
}

/// A group's name, or the other person's username in a 1:1 chat.
async fn chat_name(state: &AppState, chat: &crate::store::chats::Chat, user: ObjectId) -> AppResult<String> {
    if let Some(name) = &chat.name {
        return Ok(format!("\"{name}\""));
    }
    let other = chat.participants.iter().find(|p| **p != user).copied();
    let username = match other {
        Some(other) => state.store.users.by_id(other).await?.map(|u| u.username),
        None => None,
    };
    Ok(username.map_or_else(|| "this chat".to_string(), |u| format!("with @{u}")))
}

/// One line per message, oldest first, with the sender's username.
async fn transcript(state: &AppState, messages: &[Message]) -> AppResult<Vec<String>> {
    let mut names: HashMap<ObjectId, String> = HashMap::new();
    let mut lines = Vec::with_capacity(messages.len());
    for message in messages {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(message.sender) {
            let user = state.store.users.by_id(message.sender).await?;
            slot.insert(user.map_or_else(|| "someone".to_string(), |u| u.username));
        }
        let kind = match message.kind {
            MessageType::Text | MessageType::Emoji => "",
            MessageType::Image => "[image] ",
            MessageType::File => "[file] ",
            MessageType::Link => "[link] ",
            MessageType::Video => "[video] ",
            MessageType::Audio => "[audio] ",
            MessageType::Call => "[call] ",
        };
        let time = message.created_at.to_chrono().format("%Y-%m-%d %H:%M");
        let text = message.content.replace('\n', " ");
        lines.push(format!("[{time}] {}: {kind}{text}", names[&message.sender]));
    }
    Ok(lines)
}

/// The newest lines that fit in `room` characters, oldest first; says when older ones
/// were left out.
fn fit_newest(lines: &[String], room: usize) -> String {
    let mut left = room;
    let mut kept = Vec::new();
    for line in lines.iter().rev() {
        let cost = line.chars().count() + 1;
        if cost > left {
            break;
        }
        left -= cost;
        kept.push(line.as_str());
    }
    let mut text = String::new();
    if kept.len() < lines.len() {
        text.push_str(&format!(
            "(the {} earlier messages are left out)\n",
            lines.len() - kept.len()
        ));
    }
    for line in kept.iter().rev() {
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::fit_newest;

    #[test]
    fn the_newest_lines_that_fit_are_kept_in_order() {
        let lines: Vec<String> = ["one", "two", "three"].iter().map(|s| s.to_string()).collect();
        assert_eq!(fit_newest(&lines, 100), "one\ntwo\nthree\n");
        assert_eq!(
            fit_newest(&lines, 10),
            "(the 1 earlier messages are left out)\ntwo\nthree\n"
        );
        assert_eq!(fit_newest(&lines, 0), "(the 3 earlier messages are left out)\n");
    }
}
