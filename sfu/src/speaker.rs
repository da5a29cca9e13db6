//! Active speaker detection from the RFC 6464 audio-level header extension: each audio packet
//! says how loud its frame was (0 is loudest, 127 silence, in -dBov). Levels are smoothed per
//! participant and a decision is taken at a fixed interval, with a margin so the highlight does
//! not flicker between two people talking at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ParticipantId;

/// How often the active speaker may change.
pub const DECISION_INTERVAL: Duration = Duration::from_millis(400);
/// Levels older than this count as silence (the participant muted or left the mic).
const STALE_AFTER: Duration = Duration::from_millis(1000);
/// Loudness (127 - level) below which a participant is not speaking (about -60 dBov).
const SPEAKING_THRESHOLD: f32 = 67.0;
/// How much louder a challenger must be to take over from someone still speaking.
const SWITCH_MARGIN: f32 = 6.0;
const SMOOTHING: f32 = 0.25;

#[derive(Debug, Clone, Copy)]
struct Loudness {
    smoothed: f32,
    heard: Instant,
}

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: HashMap<ParticipantId, Loudness>,
    current: Option<ParticipantId>,
    next_decision: Option<Instant>,
}

impl SpeakerDetector {
    /// One audio packet's level (`0..=127`, 0 loudest) from `participant`.
    pub fn observe(&mut self, now: Instant, participant: ParticipantId, level: u8) {
        let loudness = 127.0 - f32::from(level.min(127));
        let entry = self.levels.entry(participant).or_insert(Loudness {
            smoothed: 0.0,
            heard: now,
        });
        let carried = if now.saturating_duration_since(entry.heard) > STALE_AFTER {
            0.0
        } else {
            entry.smoothed
        };
        entry.smoothed = carried + SMOOTHING * (loudness - carried);
        entry.heard = now;
        self.next_decision.get_or_insert(now + DECISION_INTERVAL);
    }

    /// Forgets a participant; if it held the floor, a new decision is due at once.
    pub fn remove(&mut self, now: Instant, participant: ParticipantId) {
        self.levels.remove(&participant);
        if self.current == Some(participant) {
            self.next_decision = Some(now);
        }
    }

    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_decision
    }

    /// Takes a decision when one is due; returns the new active speaker (`Some(None)`: nobody)
    /// when it changed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Option<ParticipantId>> {
        if self.next_decision.is_none_or(|at| now < at) {
            return None;
        }
        let speaking =
            |l: &Loudness| now.saturating_duration_since(l.heard) <= STALE_AFTER && l.smoothed >= SPEAKING_THRESHOLD;
        let loudest = self
            .levels
            .iter()
            .filter(|(_, l)| speaking(l))
            .max_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed).then(b.0.cmp(a.0)))
            .map(|(p, l)| (*p, l.smoothed));
        let incumbent = self
            .current
            .and_then(|p| self.levels.get(&p).filter(|l| speaking(l)).map(|l| l.smoothed));
        let next = match (loudest, incumbent) {
            (None, _) => None,
            (Some((p, _)), None) => Some(p),
            (Some((p, loud)), Some(held)) if loud > held + SWITCH_MARGIN => Some(p),
            _ => self.current,
        };
        self.next_decision = if self.levels.values().any(speaking) || next.is_some() {
            Some(now + DECISION_INTERVAL)
        } else {
            None
        };
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real `Instant` as the virtual clock's epoch
mod tests {
    use super::*;

    fn talk(d: &mut SpeakerDetector, start: Instant, ms: std::ops::Range<u64>, who: &[(u64, u8)]) {
        for t in ms.step_by(20) {
            for &(p, level) in who {
                d.observe(start + Duration::from_millis(t), ParticipantId(p.into()), level);
            }
        }
    }

    #[test]
    fn the_loudest_takes_over_with_a_margin_and_silence_clears_it() {
        let start = Instant::now();
        let mut d = SpeakerDetector::default();
        talk(&mut d, start, 0..400, &[(1, 20), (2, 110)]);
        assert_eq!(
            d.handle_timeout(start + Duration::from_millis(400)),
            Some(Some(ParticipantId(1)))
        );
        // Participant 2 gets only slightly louder than 1: no flicker.
        talk(&mut d, start, 400..800, &[(1, 20), (2, 18)]);
        assert_eq!(d.handle_timeout(start + Duration::from_millis(800)), None);
        // Now clearly louder.
        talk(&mut d, start, 800..1200, &[(1, 40), (2, 5)]);
        assert_eq!(
            d.handle_timeout(start + Duration::from_millis(1200)),
            Some(Some(ParticipantId(2)))
        );
        // Everyone goes quiet (packets keep coming at silence level).
        talk(&mut d, start, 1200..2400, &[(1, 127), (2, 127)]);
        assert_eq!(d.handle_timeout(start + Duration::from_millis(2400)), Some(None));
        assert_eq!(d.current(), None);
    }

    #[test]
    fn a_departed_speaker_is_replaced() {
        let start = Instant::now();
        let mut d = SpeakerDetector::default();
        talk(&mut d, start, 0..400, &[(1, 10), (2, 30)]);
        assert_eq!(
            d.handle_timeout(start + Duration::from_millis(400)),
            Some(Some(ParticipantId(1)))
        );
        d.remove(start + Duration::from_millis(400), ParticipantId(1));
        talk(&mut d, start, 400..800, &[(2, 30)]);
        assert_eq!(
            d.handle_timeout(start + Duration::from_millis(800)),
            Some(Some(ParticipantId(2)))
        );
    }
}
