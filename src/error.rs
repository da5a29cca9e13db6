//! The one error type of the HTTP boundary and its stable JSON body
//! `{ "error": { "code": "...", "message": "..." } }`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub use huddle_signaling::protocol::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: &'static str },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    /// A state-machine refusal with its own stable code (409).
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type: send application/json")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    /// A per-user quota is used up until `retry_after` (429 `quota_exceeded`).
    #[error("{message}")]
    QuotaExceeded {
        message: &'static str,
        retry_after: Duration,
    },
    #[error("service unavailable")]
    Unavailable,
    /// The server is at its limit of work in flight: refused at once, nothing stored; the
    /// client retries after `retry_after` (503 `overloaded`).
    #[error("server busy: retry shortly")]
    Overloaded { retry_after: Duration },
    /// A service the request needs is off (503) or failed (502), with its own code.
    #[error("{message}")]
    Dependency {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: ErrorCode,
    pub message: String,
    /// With `overloaded`, `rate_limited` and `quota_exceeded`: how long to wait before
    /// trying again, in milliseconds.
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// When the client may try again, for refusals that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after }
            | Self::QuotaExceeded { retry_after, .. }
            | Self::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The body's `error` object; internal causes are logged, never sent.
    pub fn detail(&self) -> ErrorDetail {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        ErrorDetail {
            code: self.code(),
            message,
            retry_after_ms: self.retry_after().map(|d| d.as_millis() as u64),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::Rejected { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Dependency { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::BadRequest(_) => C::BadRequest,
            Self::Unauthorized(_) => C::Unauthorized,
            Self::Forbidden { code, .. } => *code,
            Self::NotFound => C::NotFound,
            Self::Conflict(_) => C::Conflict,
            Self::Rejected { code, .. } => *code,
            Self::PayloadTooLarge => C::PayloadTooLarge,
            Self::UnsupportedMediaType => C::UnsupportedMediaType,
            Self::TooManyRequests { .. } => C::RateLimited,
            Self::QuotaExceeded { .. } => C::QuotaExceeded,
            Self::Unavailable => C::Unavailable,
            Self::Overloaded { .. } => C::Overloaded,
            Self::Dependency { code, .. } => *code,
            Self::Internal(_) => C::Internal,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody { error: self.detail() };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(retry_after) = self.retry_after() {
            let secs = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<mongodb::error::Error> for AppError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Internal(e.into())
    }
}

pub type AppResult<T> = Result<T, AppError>;
