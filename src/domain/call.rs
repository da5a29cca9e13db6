//! Calls: what a member may ask of a live call.

/// What a member asks of a live call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Accept,
    Decline,
    Cancel,
    Join,
    Leave,
    /// Hang up for everyone.
    End,
}
