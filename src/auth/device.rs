//! Device cookies: after a successful sign-in the browser keeps a random device id signed
//! together with the account's email (which the cookie does not reveal). Attempts from a device that holds one for the account
//! are counted per device, apart from the account-wide ceiling that anonymous clients
//! share, so a guessing campaign against an account cannot lock its owner out of the
//! devices they already use (OWASP's "device cookies" defence against lockout).

use hmac::{Hmac, Mac};
use mongodb::bson::oid::ObjectId;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const DEVICE_COOKIE: &str = "huddle_device";
/// How long a device stays trusted after its last sign-in.
pub const DEVICE_TTL_DAYS: i64 = 365;

#[derive(Clone)]
pub struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(***)")
    }
}

impl DeviceKey {
    /// Derives the device-cookie key from the server's master secret.
    pub fn derive(master: &[u8]) -> Self {
        Self(super::derive_key(master, b"huddle device cookie key v1"))
    }

    fn tag(&self, email: &str, device: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(email.as_bytes());
        mac.update(b"\0");
        mac.update(device.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A new cookie value for the account of `email` (normalized) on a new device:
    /// `device.tag`. Checking it needs no lookup, so it costs the same for any address.
    pub fn issue(&self, email: &str) -> String {
        let device = ObjectId::new().to_hex();
        let tag = hex::encode(self.tag(email, &device));
        format!("{device}.{tag}")
    }

    /// The device id, when `value` is a cookie this server issued for `email`'s account.
    pub fn trusted(&self, value: &str, email: &str) -> Option<String> {
        let (device, tag) = value.split_once('.')?;
        if device.len() != 24 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        bool::from(self.tag(email, device).ct_eq(&tag)).then(|| device.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_trusted_for_its_own_account_only() {
        let key = DeviceKey::derive(b"master");
        let (ada, bob) = ("ada@example.com", "bob@example.com");
        let cookie = key.issue(ada);
        assert!(key.trusted(&cookie, ada).is_some());
        assert!(key.trusted(&cookie, bob).is_none());
        let forged = format!("{}.{}", &cookie[..cookie.len() - 1], "0");
        assert!(key.trusted(&forged, ada).is_none());
        assert!(DeviceKey::derive(b"other").trusted(&cookie, ada).is_none());
    }
}
