//! TURN REST credentials (coturn's `use-auth-secret` scheme): the username is
//! `"{expiry_unix}:{user_id}"` and the password is base64(HMAC-SHA1(secret, username)), so
//! coturn can check them with the shared secret alone and refuses them after `expiry_unix`.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

use crate::SignalingError;
use crate::protocol::validate_id;

/// Longest credential lifetime handed out; credentials are for one call, not a login.
pub const MAX_TURN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The secret shared with coturn's `static-auth-secret`. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl TurnSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SignalingError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(SignalingError::InvalidConfig("TURN secret must not be empty"));
        }
        Ok(Self(secret))
    }
}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// What a participant puts in its `RTCIceServer` entry for our coturn. Serializes as
/// `{ "username", "credential", "ttl", "expiresAt" }`; its `Debug` hides the credential.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCredentials {
    pub username: String,
    pub credential: String,
    /// Lifetime in seconds.
    pub ttl: u64,
    /// Unix seconds after which coturn refuses these credentials.
    pub expires_at: u64,
}

impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Mints credentials for `user_id` valid from `now_unix_secs` for `ttl` (whole seconds,
/// 1 s to [`MAX_TURN_TTL`]).
pub fn turn_credentials(
    secret: &TurnSecret,
    user_id: &str,
    now_unix_secs: u64,
    ttl: Duration,
) -> Result<TurnCredentials, SignalingError> {
    validate_id("userId", user_id)?;
    let ttl = ttl.as_secs();
    if ttl == 0 || ttl > MAX_TURN_TTL.as_secs() {
        return Err(SignalingError::InvalidConfig("TURN credential TTL must be 1 s to 24 h"));
    }
    let expires_at = now_unix_secs
        .checked_add(ttl)
        .ok_or(SignalingError::InvalidConfig("TURN credential expiry overflows"))?;
    let username = format!("{expires_at}:{user_id}");
    // HMAC accepts keys of any length; the error arm is unreachable but costs nothing to map.
    let mut mac = Hmac::<Sha1>::new_from_slice(&secret.0)
        .map_err(|_| SignalingError::InvalidConfig("TURN secret rejected by HMAC"))?;
    mac.update(username.as_bytes());
    let credential = STANDARD.encode(mac.finalize().into_bytes());
    Ok(TurnCredentials {
        username,
        credential,
        ttl,
        expires_at,
    })
}
