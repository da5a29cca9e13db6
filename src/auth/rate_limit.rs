//! Fixed-window attempt counters keyed by IP or account. A full window answers with the time
//! until it resets, which becomes `Retry-After`. Windows expire on their own, so no one can
//! lock an account for longer than one window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prune expired windows once the table grows past this many keys.
const PRUNE_AT: usize = 10_000;

#[derive(Clone, Debug)]
pub struct RateLimiter {
    window: Duration,
    counters: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            counters: Arc::default(),
        }
    }

    /// Counts one attempt for `key`; `Err(retry_after)` when `limit` is already used up.
    pub fn hit(&self, key: &str, limit: u32, now: Instant) -> Result<(), Duration> {
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
            limiter.hit("ip:1", 3, t0).unwrap();
        }
        let wait = limiter.hit("ip:1", 3, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        limiter.hit("ip:2", 3, t0).expect("keys are independent");
        limiter
            .hit("ip:1", 3, t0 + Duration::from_secs(61))
            .expect("window resets");
    }
}
