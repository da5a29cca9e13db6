//! Everything in the SFU that waits for a time, earliest first: the next deadline is a look at
//! the top of a heap rather than a walk over every peer, room and track, which matters because
//! the caller asks for it after every datagram.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::{PeerKey, RoomId, TrackId};

/// What waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// A connection's own timers (ICE, DTLS, RTCP reports, the pacer).
    Peer(PeerKey),
    /// A room's next active-speaker decision.
    Speaker(RoomId),
    /// A keyframe request the throttle holds back.
    Keyframe(RoomId, TrackId),
}

/// Deadlines, earliest first. The owner of a timer keeps its current deadline; when it moves,
/// the new one is pushed here and the old entry stays behind. An entry counts only while it is
/// its owner's current deadline (the caller says so through `is_current`), so stale entries are
/// dropped as they reach the top, and all of them when the caller rebuilds the heap from the
/// owners. Pushing allocates nothing once the heap has grown to its working size.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// `timer`'s deadline moved from `before` to `after`.
    pub fn moved(&mut self, timer: Timer, before: Option<Instant>, after: Option<Instant>) {
        if after != before
            && let Some(at) = after
        {
            self.schedule(at, timer);
        }
    }

    /// Entries, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest current deadline; stale entries before it are dropped.
    pub fn next(&mut self, mut is_current: impl FnMut(Instant, Timer) -> bool) -> Option<Instant> {
        while let Some(&Reverse((at, timer))) = self.heap.peek() {
            if is_current(at, timer) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the earliest current timer due at `now` off the heap. Its owner must then clear
    /// or move its deadline, or the next call finds it again.
    pub fn pop_due(&mut self, now: Instant, is_current: impl FnMut(Instant, Timer) -> bool) -> Option<Timer> {
        if self.next(is_current)? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, timer))| timer)
    }

    /// Replaces every entry with the owners' current deadlines.
    pub fn rebuild(&mut self, current: impl IntoIterator<Item = (Instant, Timer)>) {
        self.heap.clear();
        self.heap.extend(current.into_iter().map(Reverse));
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real `Instant` as the virtual clock's epoch
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::ParticipantId;

    fn peer(n: u64) -> Timer {
        Timer::Peer(PeerKey {
            room: RoomId(1),
            participant: ParticipantId(n.into()),
        })
    }

    #[test]
    fn stale_deadlines_never_surface() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut deadlines: HashMap<Timer, Instant> = HashMap::new();
        let mut timers = Timers::default();
        let mut set = |timers: &mut Timers, timer, at| {
            let before = deadlines.insert(timer, at);
            timers.moved(timer, before, Some(at));
        };
        set(&mut timers, peer(1), ms(10));
        set(&mut timers, peer(2), ms(20));
        set(&mut timers, peer(1), ms(30));
        set(&mut timers, peer(1), ms(30));
        assert_eq!(timers.len(), 3, "an unmoved deadline is not pushed again");
        set(&mut timers, Timer::Speaker(RoomId(1)), ms(5));
        deadlines.remove(&Timer::Speaker(RoomId(1)));
        let current = |at, timer| deadlines.get(&timer) == Some(&at);
        assert_eq!(timers.next(current), Some(ms(20)), "10 and 5 went stale");
        assert_eq!(timers.pop_due(ms(19), current), None);
        assert_eq!(timers.pop_due(ms(25), current), Some(peer(2)));
        assert_eq!(timers.next(current), Some(ms(30)));
        timers.rebuild(deadlines.iter().map(|(timer, at)| (*at, *timer)));
        assert_eq!(timers.len(), 2);
    }
}
