//! Access tokens are short-lived JWTs (HS256 pinned, `typ: at+jwt`, every registered claim
//! checked); refresh tokens are opaque random secrets named by their family id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The JOSE `typ` of access tokens (RFC 9068), so no other JWT passes as one.
pub const ACCESS_TYP: &str = "at+jwt";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: String,
    /// The session (refresh-token family) this token was minted for.
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("wrong token type")]
    WrongType,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            access_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Mints an access token for `user` in `session`.
    pub fn issue_access(&self, user: ObjectId, session: ObjectId) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = AccessClaims {
            sub: user.to_hex(),
            sid: session.to_hex(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.as_secs(),
            jti: ObjectId::new().to_hex(),
        };
        self.sign(&claims, ACCESS_TYP)
    }

    /// Signs any claims with our key; tests use it to forge tokens of the wrong shape.
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(typ.to_string());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        if data.header.typ.as_deref() != Some(ACCESS_TYP) {
            return Err(TokenError::WrongType);
        }
        if data.claims.iat > unix_now() + LEEWAY_SECS {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

/// A refresh token as given to the client (`<family id>.<secret>`) and the hash we keep.
pub struct RefreshToken {
    pub token: String,
    pub hash: String,
}

/// A fresh refresh secret for `family`.
pub fn new_refresh(family: ObjectId) -> RefreshToken {
    let secret: [u8; 32] = rand::random();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    RefreshToken {
        token: format!("{}.{secret}", family.to_hex()),
        hash: hash_secret(&secret),
    }
}

/// Splits a presented refresh token into its family id and the hash of its secret.
pub fn parse_refresh(token: &str) -> Option<(ObjectId, String)> {
    let (family, secret) = token.split_once('.')?;
    if secret.len() != 43
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let family = ObjectId::parse_str(family).ok()?;
    Some((family, hash_secret(secret)))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            b"0123456789abcdef0123456789abcdef",
            "huddle",
            "huddle-api",
            Duration::from_secs(900),
        )
    }

    #[test]
    fn access_tokens_round_trip() {
        let t = tokens();
        let (user, session) = (ObjectId::new(), ObjectId::new());
        let claims = t.verify_access(&t.issue_access(user, session).unwrap()).unwrap();
        assert_eq!(claims.sub, user.to_hex());
        assert_eq!(claims.sid, session.to_hex());
    }

    #[test]
    fn refresh_tokens_parse_to_the_stored_hash() {
        let family = ObjectId::new();
        let fresh = new_refresh(family);
        assert_eq!(parse_refresh(&fresh.token), Some((family, fresh.hash.clone())));
        assert!(!fresh.token.contains(&fresh.hash), "the stored hash is not the token");
        assert_eq!(parse_refresh("garbage"), None);
        assert_eq!(parse_refresh(&format!("{}.short", family.to_hex())), None);
    }

    #[test]
    fn forged_and_mistyped_tokens_are_rejected() {
        let t = tokens();
        let now = unix_now();
        let mut claims = AccessClaims {
            sub: ObjectId::new().to_hex(),
            sid: ObjectId::new().to_hex(),
            iss: "huddle".into(),
            aud: "huddle-api".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "x".into(),
        };
        assert_eq!(
            t.verify_access(&t.sign(&claims, "JWT").unwrap()),
            Err(TokenError::WrongType)
        );
        let other = Tokens::new(
            b"another-key-another-key-another-k",
            "huddle",
            "huddle-api",
            Duration::from_secs(60),
        );
        assert_eq!(
            t.verify_access(&other.issue_access(ObjectId::new(), ObjectId::new()).unwrap()),
            Err(TokenError::Invalid)
        );
        claims.aud = "someone-else".into();
        assert_eq!(
            t.verify_access(&t.sign(&claims, ACCESS_TYP).unwrap()),
            Err(TokenError::Invalid)
        );
        claims.aud = "huddle-api".into();
        claims.nbf = now + 3600;
        assert_eq!(
            t.verify_access(&t.sign(&claims, ACCESS_TYP).unwrap()),
            Err(TokenError::Invalid)
        );
        claims.nbf = now;
        claims.exp = now - 60;
        assert_eq!(
            t.verify_access(&t.sign(&claims, ACCESS_TYP).unwrap()),
            Err(TokenError::Expired)
        );
    }
}
