//! Fixed-window attempt counters keyed by IP or account. A full window answers with the time
//! until it resets, which becomes `Retry-After`. Windows expire on their own, so no one can
//! lock an account for longer than one window.
//!
//! On several nodes the counters live in Redis, so attempts spread over the nodes count as
//! one; a node that cannot reach Redis counts on its own until it can again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prune expired windows once the table grows past this many keys.
const PRUNE_AT: usize = 10_000;

/// Longest a shared count may take before this node counts on its own: a Redis that is away
/// must not hold up sign-ins while its client reconnects.
const SHARED_TIMEOUT: Duration = Duration::from_millis(300);

/// One attempt on a shared counter: its count, and how long its window has left (ms). The
/// window starts with the first attempt and is never extended.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
";

#[derive(Clone)]
pub struct RateLimiter {
    window: Duration,
    counters: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    shared: Option<SharedCounters>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("window", &self.window)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Counters in Redis, under `prefix`, shared by every node.
#[derive(Clone)]
pub struct SharedCounters {
    redis: redis::aio::ConnectionManager,
    script: Arc<redis::Script>,
    prefix: String,
}

impl SharedCounters {
    /// Counters named `huddle:rl:<name>:<key>` in `redis`.
    pub fn new(redis: redis::aio::ConnectionManager, name: &str) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(HIT)),
            prefix: format!("huddle:rl:{name}:"),
        }
    }

    async fn hit(&self, key: &str, limit: u32, window: Duration) -> redis::RedisResult<Result<(), Duration>> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (count, left_ms): (u64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(window_ms)
            .invoke_async(&mut self.redis.clone())
            .await?;
        if count > u64::from(limit) {
            return Ok(Err(Duration::from_millis(left_ms.max(0).unsigned_abs())));
        }
        Ok(Ok(()))
    }
}

impl RateLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            counters: Arc::default(),
            shared: None,
        }
    }

    /// Counts in Redis from now on, with this node's own counters as the fallback.
    pub fn shared(mut self, counters: SharedCounters) -> Self {
        self.shared = Some(counters);
        self
    }

    /// Counts one attempt for `key`; `Err(retry_after)` when `limit` is already used up.
    pub async fn hit(&self, key: &str, limit: u32, now: Instant) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            match tokio::time::timeout(SHARED_TIMEOUT, shared.hit(key, limit, self.window)).await {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(e)) => tracing::warn!(error = %e, "rate limit: Redis unavailable; counting on this node"),
                Err(_) => tracing::warn!("rate limit: Redis did not answer in time; counting on this node"),
            }
        }
        self.hit_local(key, limit, now)
    }

    fn hit_local(&self, key: &str, limit: u32, now: Instant) -> Result<(), Duration> {
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counters.len() > PRUNE_AT {
            counters.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counters.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_then_retry_after_then_reset() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.hit_local("ip:1", 3, t0).unwrap();
        }
        let wait = limiter.hit_local("ip:1", 3, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        limiter.hit_local("ip:2", 3, t0).expect("keys are independent");
        limiter
            .hit_local("ip:1", 3, t0 + Duration::from_secs(61))
            .expect("window resets");
    }
}
