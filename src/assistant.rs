//! The assistant's line to OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp):
//! a streamed Chat Completions request through `async-openai`, retried with backoff on 429,
//! 5xx, broken connections and silence until the first token arrives, then read piece by
//! piece with a limit on how long any one piece may take.

use huddle_signaling::protocol::ErrorCode;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionResponseStream, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs, CreateChatCompletionStreamResponse,
};
use futures::StreamExt;

use crate::config::Config;

/// The public OpenAI endpoint, used when only `OPENAI_API_KEY` is set.
pub const OPENAI_API_BASE: &str = "https://api.openai.com/v1";

/// `url` for the logs: without credentials (`user:password@`), query or fragment. A value
/// that is not a URL is not logged at all.
pub fn loggable_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(not a URL)".into();
    };
    // Both fail only for URLs that cannot carry credentials (`data:` and the like).
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    let mut shown = parsed.to_string();
    // `Url` writes an empty path as `/`; keep what was configured.
    if shown.ends_with('/') && !url.split(['?', '#']).next().unwrap_or_default().ends_with('/') {
        shown.pop();
    }
    shown
}

/// One message of the conversation sent with a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Turn {
    System(String),
    User(String),
    Assistant(String),
}

/// Why there is no answer (or no more of one).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AiFailure {
    #[error("the assistant is not configured on this server (set OPENAI_API_KEY or OPENAI_BASE_URL)")]
    NotConfigured,
    /// The server failed, answered an error status, or broke off. The detail (logged, never
    /// shown to users: it can name internal addresses) says how.
    #[error("the assistant's server failed{}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream { status: Option<u16>, detail: String },
    #[error("the assistant's server did not answer in time")]
    Timeout,
    #[error("the answer could not be stored; ask again")]
    NotStored,
}

impl AiFailure {
    fn upstream(detail: impl Into<String>) -> Self {
        Self::Upstream {
            status: None,
            detail: detail.into(),
        }
    }

    /// What went wrong, in full, for the logs.
    pub fn detail(&self) -> String {
        match self {
            Self::Upstream { detail, .. } => format!("{self}: {detail}"),
            other => other.to_string(),
        }
    }

    /// The stable code clients see in `ai:error` and error bodies.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotConfigured => ErrorCode::AiNotConfigured,
            Self::Upstream { .. } => ErrorCode::AiUnavailable,
            Self::Timeout => ErrorCode::AiTimeout,
            Self::NotStored => ErrorCode::Internal,
        }
    }
}

/// A failed attempt, and whether another may help.
enum Attempt {
    Retry(AiFailure),
    Fatal(AiFailure),
}

fn classify(error: OpenAIError) -> Attempt {
    match error {
        OpenAIError::ApiError(response) => {
            let status = response.status_code;
            let failure = AiFailure::Upstream {
                status: Some(status.as_u16()),
                detail: response.api_error.message,
            };
            if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry(failure)
            } else {
                Attempt::Fatal(failure)
            }
        }
        OpenAIError::Reqwest(e) => Attempt::Retry(AiFailure::upstream(format!("connection: {e}"))),
        OpenAIError::StreamError(e) => Attempt::Retry(AiFailure::upstream(format!("stream: {e}"))),
        other => Attempt::Fatal(AiFailure::upstream(other.to_string())),
    }
}

/// The text a stream chunk adds (the first choice's content; empty for role-only chunks),
/// and whether it ends the answer (it carries a finish reason).
fn text_of(chunk: &CreateChatCompletionStreamResponse) -> (&str, bool) {
    let choice = chunk.choices.first();
    let text = choice.and_then(|c| c.delta.content.as_deref()).unwrap_or("");
    (text, choice.is_some_and(|c| c.finish_reason.is_some()))
}

/// A stream that ended without a finish reason broke off: what came is not the answer.
fn broke_off() -> AiFailure {
    AiFailure::upstream("the stream ended before the answer was finished")
}

/// How the assistant reaches its server; `None` inside when it is not configured.
#[derive(Clone)]
pub struct Assistant {
    client: Option<Client<OpenAIConfig>>,
    model: String,
    max_answer_tokens: u32,
    first_token_timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Assistant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assistant")
            .field("configured", &self.client.is_some())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Assistant {
    /// Configured when `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set (a self-hosted server
    /// may need no key).
    pub fn new(config: &Config) -> Self {
        let configured = config.openai_api_key.is_some() || config.openai_base_url.is_some();
        let client = configured.then(|| {
            let base = config.openai_base_url.as_deref().unwrap_or(OPENAI_API_BASE);
            let key = config.openai_api_key.as_ref().map(|k| k.expose()).unwrap_or_default();
            // The plain transport, without the crate's own retry layer: retries are ours
            // (configurable, and only before the first token).
            Client::with_config(
                OpenAIConfig::new()
                    .with_api_base(base.trim_end_matches('/'))
                    .with_api_key(key)
                    .with_org_id("")
                    .with_project_id(""),
            )
            .with_http_service(ReqwestService::default())
        });
        Self {
            client,
            model: config.ai_model.clone(),
            max_answer_tokens: config.ai_max_answer_tokens,
            first_token_timeout: Duration::from_secs(config.ai_first_token_timeout_secs),
            retries: config.ai_retries,
            backoff: Duration::from_millis(config.ai_retry_backoff_ms),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.client.is_some()
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn request(&self, turns: &[Turn]) -> Result<CreateChatCompletionRequest, AiFailure> {
        let messages: Vec<ChatCompletionRequestMessage> = turns
            .iter()
            .map(|turn| match turn {
                Turn::System(text) => ChatCompletionRequestSystemMessage::from(text.as_str()).into(),
                Turn::User(text) => ChatCompletionRequestUserMessage::from(text.as_str()).into(),
                Turn::Assistant(text) => ChatCompletionRequestAssistantMessage::from(text.as_str()).into(),
            })
            .collect();
        CreateChatCompletionRequestArgs::default()
            .model(&self.model)
            .messages(messages)
            .max_completion_tokens(self.max_answer_tokens)
            .stream(true)
            .build()
            .map_err(|e| AiFailure::upstream(format!("request: {e}")))
    }

    /// Sends the conversation and waits for the answer's first piece, retrying with
    /// exponential backoff (and jitter) while nothing has arrived yet.
    pub async fn open(&self, turns: &[Turn]) -> Result<AnswerStream, AiFailure> {
        let Some(client) = &self.client else {
            return Err(AiFailure::NotConfigured);
        };
        let request = self.request(turns)?;
        let mut attempt = 0;
        loop {
            let tried = tokio::time::timeout(self.first_token_timeout, self.first_piece(client, request.clone()))
                .await
                .unwrap_or(Err(Attempt::Retry(AiFailure::Timeout)));
            match tried {
                Ok(stream) => return Ok(stream),
                Err(Attempt::Retry(failure)) if attempt < self.retries => {
                    let wait = self.backoff * 2u32.pow(attempt.min(16));
                    let jitter = wait.mul_f64(rand::random::<f64>() * 0.25);
                    tracing::warn!(attempt, error = %failure.detail(), "assistant request failed; retrying");
                    tokio::time::sleep(wait + jitter).await;
                    attempt += 1;
                }
                Err(Attempt::Retry(failure) | Attempt::Fatal(failure)) => return Err(failure),
            }
        }
    }

    async fn first_piece(
        &self,
        client: &Client<OpenAIConfig>,
        request: CreateChatCompletionRequest,
    ) -> Result<AnswerStream, Attempt> {
        let mut stream = client.chat().create_stream(request).await.map_err(classify)?;
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let (text, finished) = text_of(&chunk);
                    if !text.is_empty() || finished {
                        return Ok(AnswerStream {
                            stream,
                            pending: (!text.is_empty()).then(|| text.to_string()),
                            finished,
                            idle: self.first_token_timeout,
                        });
                    }
                }
                Some(Err(e)) => return Err(classify(e)),
                None => return Err(Attempt::Retry(broke_off())),
            }
        }
    }
}

/// An answer arriving piece by piece.
pub struct AnswerStream {
    stream: ChatCompletionResponseStream,
    pending: Option<String>,
    /// A chunk with a finish reason arrived: the end of the stream is the end of the answer.
    finished: bool,
    idle: Duration,
}

impl AnswerStream {
    /// The next piece of text; `None` once the answer is complete. A stream that ends
    /// without a finish reason is a failure, never a complete answer.
    pub async fn next(&mut self) -> Result<Option<String>, AiFailure> {
        if let Some(text) = self.pending.take() {
            return Ok(Some(text));
        }
        loop {
            match tokio::time::timeout(self.idle, self.stream.next()).await {
                Err(_) => return Err(AiFailure::Timeout),
                Ok(None) if self.finished => return Ok(None),
                Ok(None) => return Err(broke_off()),
                Ok(Some(Err(e))) => {
                    let (Attempt::Retry(failure) | Attempt::Fatal(failure)) = classify(e);
                    return Err(failure);
                }
                Ok(Some(Ok(chunk))) => {
                    let (text, finished) = text_of(&chunk);
                    self.finished |= finished;
                    if !text.is_empty() {
                        return Ok(Some(text.to_string()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_carry_no_credentials_or_query() {
        assert_eq!(
            loggable_url("https://user:secret@llm.internal:8443/v1?api-key=k"),
            "https://llm.internal:8443/v1"
        );
        assert_eq!(loggable_url("http://localhost:11434/v1"), "http://localhost:11434/v1");
        assert_eq!(loggable_url("https://api.example"), "https://api.example");
        // A password holding `@` or `/` does not leak the rest of itself.
        assert_eq!(
            loggable_url("https://me:p%40ss%2Fword@[::1]:8443/v1#frag"),
            "https://[::1]:8443/v1"
        );
        assert_eq!(loggable_url("not a url"), "(not a URL)");
    }

    #[test]
    fn users_see_the_status_but_not_the_upstream_detail() {
        let failure = AiFailure::Upstream {
            status: Some(500),
            detail: "error sending request for url (http://10.1.2.3/v1)".into(),
        };
        assert_eq!(failure.to_string(), "the assistant's server failed (HTTP 500)");
        assert!(failure.detail().contains("10.1.2.3"));
        assert_eq!(failure.code(), ErrorCode::AiUnavailable);
    }
}
