//! What a subscriber's downlink can carry: the SFU's own send-side estimate (GCC over the
//! subscriber's transport-wide feedback), REMB estimates when the subscriber sends them, and
//! the loss fraction in its receiver reports. The most cautious of them caps the simulcast
//! layer it is sent.

use std::time::{Duration, Instant};

use huddle_signaling::Layer;

/// Loss above this steps the subscriber one layer down...
const LOSSY: f32 = 0.10;
/// ...and below this for `RECOVERY` steps it back up.
const CLEAN: f32 = 0.02;
const RECOVERY: Duration = Duration::from_secs(5);
/// Between two steps down, so one burst does not drop two layers.
const STEP_DOWN_GAP: Duration = Duration::from_secs(2);
/// REMB below these rates caps the layer (bits per second).
const LOW_BELOW: u64 = 250_000;
const MEDIUM_BELOW: u64 = 800_000;

#[derive(Debug, Clone)]
pub struct LinkEstimate {
    loss_cap: Layer,
    remb_cap: Layer,
    estimate_cap: Layer,
    clean_since: Option<Instant>,
    stepped_down: Option<Instant>,
}

impl Default for LinkEstimate {
    fn default() -> Self {
        Self {
            loss_cap: Layer::High,
            remb_cap: Layer::High,
            estimate_cap: Layer::High,
            clean_since: None,
            stepped_down: None,
        }
    }
}

impl LinkEstimate {
    pub fn max_layer(&self, _now: Instant) -> Layer {
        self.loss_cap.min(self.remb_cap).min(self.estimate_cap)
    }

    /// A receiver report's loss fraction (RFC 3550: lost/256). Returns true when the cap moved.
    pub fn observe_loss(&mut self, now: Instant, fraction_lost: u8) -> bool {
        let loss = f32::from(fraction_lost) / 256.0;
        let before = self.loss_cap;
        if loss > LOSSY {
            self.clean_since = None;
            if self
                .stepped_down
                .is_none_or(|at| now.saturating_duration_since(at) >= STEP_DOWN_GAP)
            {
                self.loss_cap = down(self.loss_cap);
                self.stepped_down = Some(now);
            }
        } else if loss < CLEAN {
            let since = *self.clean_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= RECOVERY {
                self.loss_cap = up(self.loss_cap);
                self.clean_since = Some(now);
            }
        } else {
            self.clean_since = None;
        }
        before != self.loss_cap
    }

    /// A REMB estimate. Returns true when the cap moved.
    pub fn observe_remb(&mut self, _now: Instant, bits_per_second: u64) -> bool {
        let before = self.remb_cap;
        self.remb_cap = layer_for(bits_per_second);
        before != self.remb_cap
    }

    /// The SFU's own send-side estimate. Returns true when the cap moved.
    pub fn observe_estimate(&mut self, _now: Instant, bits_per_second: u64) -> bool {
        let before = self.estimate_cap;
        self.estimate_cap = layer_for(bits_per_second);
        before != self.estimate_cap
    }
}

fn layer_for(bits_per_second: u64) -> Layer {
    match bits_per_second {
        b if b < LOW_BELOW => Layer::Low,
        b if b < MEDIUM_BELOW => Layer::Medium,
        _ => Layer::High,
    }
}

fn down(layer: Layer) -> Layer {
    match layer {
        Layer::High => Layer::Medium,
        _ => Layer::Low,
    }
}

fn up(layer: Layer) -> Layer {
    match layer {
        Layer::Low => Layer::Medium,
        _ => Layer::High,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real `Instant` as the virtual clock's epoch
mod tests {
    use super::*;

    #[test]
    fn loss_steps_down_once_per_gap_and_clean_reports_recover() {
        let t0 = Instant::now();
        let mut link = LinkEstimate::default();
        assert!(link.observe_loss(t0, 64), "25% loss");
        assert_eq!(link.max_layer(t0), Layer::Medium);
        assert!(!link.observe_loss(t0 + Duration::from_secs(1), 64), "within the gap");
        assert!(link.observe_loss(t0 + Duration::from_secs(3), 64));
        assert_eq!(link.max_layer(t0), Layer::Low);
        assert!(!link.observe_loss(t0 + Duration::from_secs(4), 0));
        assert!(!link.observe_loss(t0 + Duration::from_secs(8), 0));
        assert!(link.observe_loss(t0 + Duration::from_secs(9), 0), "5 s clean");
        assert_eq!(link.max_layer(t0), Layer::Medium);
    }

    #[test]
    fn remb_caps_the_layer() {
        let t0 = Instant::now();
        let mut link = LinkEstimate::default();
        assert!(link.observe_remb(t0, 100_000));
        assert_eq!(link.max_layer(t0), Layer::Low);
        assert!(link.observe_remb(t0, 500_000));
        assert_eq!(link.max_layer(t0), Layer::Medium);
        assert!(!link.observe_remb(t0, 600_000));
        assert!(link.observe_remb(t0, 3_000_000));
        assert_eq!(link.max_layer(t0), Layer::High);
    }

    #[test]
    fn the_most_cautious_source_wins() {
        let t0 = Instant::now();
        let mut link = LinkEstimate::default();
        assert!(link.observe_estimate(t0, 400_000));
        assert!(!link.observe_remb(t0, 5_000_000));
        assert_eq!(link.max_layer(t0), Layer::Medium);
        assert!(link.observe_loss(t0, 128));
        assert_eq!(link.max_layer(t0), Layer::Medium, "loss steps High down to Medium");
        assert!(link.observe_estimate(t0, 200_000));
        assert_eq!(link.max_layer(t0), Layer::Low);
    }
}
