//! One-time codes: six digits from a CSPRNG, stored only as an HMAC bound to the user and
//! purpose, so a code for one purpose never passes for another.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::OtpPurpose;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct OtpKey([u8; 32]);

impl std::fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpKey(***)")
    }
}

impl OtpKey {
    /// Derives the code-hashing key from the server's master secret.
    pub fn derive(master: &[u8]) -> Self {
        Self(super::derive_key(master, b"huddle one-time code key v1"))
    }

    pub fn hash(&self, user_id: &str, purpose: OtpPurpose, code: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(purpose.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(user_id.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn matches(&self, user_id: &str, purpose: OtpPurpose, code: &str, stored: &str) -> bool {
        let computed = self.hash(user_id, purpose, code);
        computed.as_bytes().ct_eq(stored.as_bytes()).into()
    }
}

/// A fresh six-digit code. `rand::rng()` is a ChaCha CSPRNG seeded from the OS.
pub fn generate() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// True for exactly six ASCII digits.
pub fn well_formed(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| generate()).collect();
        assert!(codes.iter().all(|c| well_formed(c)));
        assert!(codes.len() > 40, "50 draws gave only {} distinct codes", codes.len());
    }

    #[test]
    fn hash_is_bound_to_user_and_purpose() {
        let key = OtpKey::derive(b"master");
        let stored = key.hash("u1", OtpPurpose::VerifyEmail, "123456");
        assert!(key.matches("u1", OtpPurpose::VerifyEmail, "123456", &stored));
        assert!(!key.matches("u1", OtpPurpose::ResetPassword, "123456", &stored));
        assert!(!key.matches("u2", OtpPurpose::VerifyEmail, "123456", &stored));
        assert!(!key.matches("u1", OtpPurpose::VerifyEmail, "123457", &stored));
        assert!(!OtpKey::derive(b"other").matches("u1", OtpPurpose::VerifyEmail, "123456", &stored));
    }
}
