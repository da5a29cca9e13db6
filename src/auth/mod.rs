//! Credentials and tokens: password hashing, access and refresh tokens, one-time codes and
//! attempt limits. Handlers reach them through `AppState`; nothing here knows HTTP.

pub mod device;
pub mod otp;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod tokens;

/// A 32-byte key for one purpose (`label`), derived from the server's master secret with
/// HMAC-SHA256, so no two purposes share a key.
pub(crate) fn derive_key(master: &[u8], label: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(master).expect("HMAC accepts any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}
