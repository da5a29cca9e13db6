//! Request extractors: typed JSON and query bodies whose rejections use our error body,
//! the authenticated user, the client IP, and id parsing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use mongodb::bson::oid::ObjectId;
use serde::de::DeserializeOwned;

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

/// Parses a path or body id; anything but 24 hex digits is a 400.
pub fn parse_id(raw: &str) -> Result<ObjectId, AppError> {
    if raw.len() != 24 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::bad_request("invalid id: expected 24 hexadecimal characters"));
    }
    ObjectId::parse_str(raw).map_err(|_| AppError::bad_request("invalid id"))
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

/// The signed-in user, from a valid `Authorization: Bearer` access token whose session is
/// still live. The one place REST authentication happens.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub id: ObjectId,
    pub session: ObjectId,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(AppError::Unauthorized("missing bearer token"))?;
        authenticate(state, token).await
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Verifies an access token and that its session has not been revoked.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, AppError> {
    let claims = state
        .tokens
        .verify_access(token)
        .map_err(|_| AppError::Unauthorized("invalid or expired token"))?;
    let (Ok(id), Ok(session)) = (ObjectId::parse_str(&claims.sub), ObjectId::parse_str(&claims.sid)) else {
        return Err(AppError::Unauthorized("invalid or expired token"));
    };
    if !state.store.sessions.is_active(session).await? {
        return Err(AppError::Unauthorized("session ended"));
    }
    Ok(AuthUser { id, session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_hex() {
        assert!(parse_id("0123456789abcdef01234567").is_ok());
        for bad in [
            "",
            "{\"$ne\":null}",
            "0123456789abcdef0123456z",
            "0123456789abcdef012345678",
        ] {
            assert!(matches!(parse_id(bad), Err(AppError::BadRequest(_))), "{bad}");
        }
    }

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
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
