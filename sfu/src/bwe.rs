//! Send-side bandwidth estimation for each subscriber's downlink: Google Congestion Control
//! (`rtc`'s `Gcc`) fed by the subscriber's transport-wide congestion control feedback, with
//! the pacer it drives. The estimate is shared with the SFU through an atomic so it can cap the simulcast layer; the
//! interceptor chain owns the estimator itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

/// Where the estimate starts, and its bounds (bits per second).
pub const INITIAL_BPS: f64 = 1_500_000.0;
pub const MIN_BPS: f64 = 100_000.0;
pub const MAX_BPS: f64 = 20_000_000.0;

/// The latest estimate, readable from outside the interceptor chain.
#[derive(Debug, Clone)]
pub struct SharedEstimate(Arc<AtomicU64>);

impl SharedEstimate {
    pub fn bits_per_second(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// GCC, publishing each new estimate.
pub struct ReportingGcc {
    inner: Gcc,
    out: Arc<AtomicU64>,
}

impl ReportingGcc {
    pub fn new() -> (Self, SharedEstimate) {
        let out = Arc::new(AtomicU64::new(INITIAL_BPS as u64));
        let estimator = Self {
            inner: Gcc::new(INITIAL_BPS, MIN_BPS, MAX_BPS),
            out: out.clone(),
        };
        (estimator, SharedEstimate(out))
    }

    fn publish(&self) {
        self.out.store(self.inner.target_bitrate() as u64, Ordering::Relaxed);
    }
}

impl BandwidthEstimator for ReportingGcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}
