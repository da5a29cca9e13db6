//! Time as the caller tells it: milliseconds since an epoch the caller picks, so sessions can be
//! stepped on a virtual clock in tests and on the wall clock in the server.

use std::time::Duration;

/// Milliseconds since the caller's epoch (the server uses the Unix epoch). Arithmetic saturates,
/// so a hostile or buggy timestamp can never panic the state machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs.saturating_mul(1000))
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn saturating_add(self, duration: Duration) -> Millis {
        let add = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(add))
    }

    /// How long after `earlier` this instant is; zero if it is not later.
    pub fn saturating_since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        assert_eq!(
            Millis(u64::MAX - 1).saturating_add(Duration::from_secs(5)),
            Millis(u64::MAX)
        );
        assert_eq!(Millis(10).saturating_since(Millis(20)), Duration::ZERO);
        assert_eq!(
            Millis::from_secs(3).saturating_since(Millis(500)),
            Duration::from_millis(2500)
        );
        assert_eq!(Millis::from_secs(u64::MAX), Millis(u64::MAX));
    }
}
