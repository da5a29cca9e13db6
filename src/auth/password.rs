//! argon2id password hashing (OWASP parameters: 19 MiB, 2 passes, 1 lane), run on the
//! blocking pool so a burst of logins never stalls the async workers.

use std::sync::Arc;

use anyhow::anyhow;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Hashes and verifies passwords. At most `max_parallel` hashes run at once, which bounds
/// memory (19 MiB each) under a flood of logins.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against for unknown accounts so that they
    /// cost the same time as known ones.
    dummy_hash: Arc<str>,
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> anyhow::Result<String> {
    hasher()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("argon2 hash failed: {e}"))
}

fn verify_blocking(password: &[u8], hash: &str) -> bool {
    PasswordHash::new(hash)
        .ok()
        .is_some_and(|parsed| hasher().verify_password(password, &parsed).is_ok())
}

impl Passwords {
    pub fn new(max_parallel: usize) -> anyhow::Result<Self> {
        let random: [u8; 32] = rand::random();
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            dummy_hash: hash_blocking(&random)?.into(),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes())).await?
    }

    /// Verifies against `hash`, or against the dummy hash when there is no account, so
    /// both cases take the same time. Always false without an account.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(password.as_bytes(), &hash)).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let pw = Passwords::new(2).unwrap();
        let long = "p".repeat(100);
        let hash = pw.hash(long.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(pw.verify(long.clone(), Some(hash.clone())).await.unwrap());
        // No truncation: a different 100th character fails.
        let mut other = "p".repeat(99);
        other.push('q');
        assert!(!pw.verify(other, Some(hash)).await.unwrap());
        assert!(!pw.verify(long, None).await.unwrap());
    }
}
