//! The assistant's line to OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp):
//! a streamed Chat Completions request through `async-openai`, retried with backoff on 429,
//! 5xx, broken connections and silence until the first token arrives, then read piece by
//! piece with a limit on how long any one piece may take.

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
    #[error("the assistant's server failed: {0}")]
    Upstream(String),
    #[error("the assistant's server did not answer in time")]
    Timeout,
}

impl AiFailure {
    /// The stable code clients see in `ai:error` and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "ai_not_configured",
            Self::Upstream(_) => "ai_unavailable",
            Self::Timeout => "ai_timeout",
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
            let failure = AiFailure::Upstream(format!("{status} {}", response.api_error.message));
            if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry(failure)
            } else {
                Attempt::Fatal(failure)
            }
        }
        OpenAIError::Reqwest(e) => Attempt::Retry(AiFailure::Upstream(format!("connection: {e}"))),
        OpenAIError::StreamError(e) => Attempt::Retry(AiFailure::Upstream(format!("stream: {e}"))),
        other => Attempt::Fatal(AiFailure::Upstream(other.to_string())),
    }
}

/// The text a stream chunk adds (the first choice's content; empty for role-only chunks).
fn text_of(chunk: &CreateChatCompletionStreamResponse) -> &str {
    chunk
        .choices
        .first()
        .and_then(|c| c.delta.content.as_deref())
        .unwrap_or("")
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
            .map_err(|e| AiFailure::Upstream(format!("request: {e}")))
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
                    tracing::warn!(attempt, error = %failure, "assistant request failed; retrying");
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
                    let text = text_of(&chunk);
                    if !text.is_empty() {
                        return Ok(AnswerStream {
                            stream,
                            pending: Some(text.to_string()),
                            idle: self.first_token_timeout,
                        });
                    }
                }
                Some(Err(e)) => return Err(classify(e)),
                None => {
                    return Ok(AnswerStream {
                        stream,
                        pending: None,
                        idle: self.first_token_timeout,
                    });
                }
            }
        }
    }
}

/// An answer arriving piece by piece.
pub struct AnswerStream {
    stream: ChatCompletionResponseStream,
    pending: Option<String>,
    idle: Duration,
}

impl AnswerStream {
    /// The next piece of text; `None` once the answer is complete.
    pub async fn next(&mut self) -> Result<Option<String>, AiFailure> {
        if let Some(text) = self.pending.take() {
            return Ok(Some(text));
        }
        loop {
            match tokio::time::timeout(self.idle, self.stream.next()).await {
                Err(_) => return Err(AiFailure::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    let (Attempt::Retry(failure) | Attempt::Fatal(failure)) = classify(e);
                    return Err(failure);
                }
                Ok(Some(Ok(chunk))) => {
                    let text = text_of(&chunk);
                    if !text.is_empty() {
                        return Ok(Some(text.to_string()));
                    }
                }
            }
        }
    }
}
