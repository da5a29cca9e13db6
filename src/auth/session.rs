//! Who is calling: an access token verified, and its session still live. Both transports
//! authenticate through here.

use mongodb::bson::oid::ObjectId;

use crate::error::AppError;
use crate::state::AppState;

/// The signed-in user, from a valid `Authorization: Bearer` access token whose session is
/// still live. REST (its extractor in `http::extract`) and the Socket.IO handshake both
/// verify with [`authenticate`].
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub id: ObjectId,
    pub session: ObjectId,
}

/// The token of an `Authorization` header's value, when its scheme is `Bearer` (in any case).
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
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
