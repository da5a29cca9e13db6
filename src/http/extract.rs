//! Request extractors: typed JSON and query bodies whose rejections use our error body,
//! the authenticated user (verified by `auth::session`), and the client IP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use serde::de::DeserializeOwned;

use crate::auth::session::bearer;
pub use crate::auth::session::{AuthUser, authenticate};
pub use crate::domain::id::parse_id;
use crate::error::AppError;
use crate::state::AppState;

/// A JSON body. Unknown fields, wrong types (an object such as `{"$ne": null}` where a
/// string belongs) and bad syntax are 400; an oversized body is 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => AppError::bad_request(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => AppError::bad_request(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        other => AppError::bad_request(other.body_text()),
    }
}

/// A JSON body that may be absent: an empty body yields `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|len| len.trim() != "0")
            && req.headers().contains_key(header::CONTENT_TYPE);
        if !has_body {
            return Ok(Self(T::default()));
        }
        ApiJson::<T>::from_request(req, state).await.map(|ApiJson(v)| Self(v))
    }
}

/// A query string; unknown keys such as `q[$ne]` are 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(AppError::bad_request(e.body_text())),
            Err(other) => Err(AppError::bad_request(other.body_text())),
        }
    }
}

/// A page size from a query: `default` when absent, otherwise 1..=`max`.
pub fn page_limit(value: Option<i64>, default: i64, max: i64) -> Result<i64, AppError> {
    let limit = value.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(AppError::bad_request(format!("limit: must be between 1 and {max}")));
    }
    Ok(limit)
}

/// The caller's IP: the socket peer, or the last `X-Forwarded-For` hop behind a trusted
/// proxy.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.trust_proxy
            && let Some(ip) = forwarded_for(&parts.headers)
        {
            return Ok(Self(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(Self(peer))
    }
}

/// The address our trusted proxy saw: the last `X-Forwarded-For` hop (earlier hops are
/// whatever the client wrote).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_of(&parts.headers).ok_or(AppError::Unauthorized("missing bearer token"))?;
        authenticate(state, token).await
    }
}

/// The bearer token of a request's `Authorization` header, if any.
pub fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_appended_hop_is_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        assert_eq!(forwarded_for(&headers), Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_of(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_of(&headers), None);
    }
}
