//! The one error type at the signaling crate's boundary, with a stable machine-readable code
//! per variant for the server's `{ "error": { "code", "message" } }` body.

/// Everything signaling can refuse. Messages never include SDP, secrets or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    #[error("`{field}` must not be empty")]
    EmptyField { field: &'static str },
    #[error("`{field}` is not a valid id")]
    InvalidId { field: &'static str },
    #[error("SDP is {len} bytes; at most {max} are allowed")]
    SdpTooLarge { len: usize, max: usize },
    #[error("SDP must start with `v=0`")]
    MalformedSdp,
    #[error("ICE candidate is {len} bytes; at most {max} are allowed")]
    CandidateTooLarge { len: usize, max: usize },
    #[error("a call needs at least one invitee besides its initiator")]
    NoInvitees,
    #[error("only an invitee can answer this call")]
    NotInvitee,
    #[error("only the initiator can cancel this call")]
    NotInitiator,
    #[error("not a member of this call")]
    NotMember,
    #[error("this invitation was already answered")]
    AlreadyAnswered,
    #[error("already in this call")]
    AlreadyJoined,
    #[error("not in this call")]
    NotJoined,
    #[error("this call or invitation is no longer ringing")]
    NotRinging,
    #[error("this call has ended")]
    CallEnded,
    #[error("at most {max} tracks may be described")]
    TooManyTracks { max: usize },
    #[error("no offer {offer_id} is awaiting an answer")]
    UnexpectedAnswer { offer_id: u64 },
    #[error("invalid signaling configuration: {0}")]
    InvalidConfig(&'static str),
}

impl SignalingError {
    /// A stable snake_case code clients can match on; the display text may change.
    pub fn code(&self) -> crate::protocol::ErrorCode {
        use crate::protocol::ErrorCode as C;
        match self {
            Self::EmptyField { .. } => C::EmptyField,
            Self::InvalidId { .. } => C::InvalidId,
            Self::SdpTooLarge { .. } => C::SdpTooLarge,
            Self::MalformedSdp => C::MalformedSdp,
            Self::CandidateTooLarge { .. } => C::CandidateTooLarge,
            Self::NoInvitees => C::NoInvitees,
            Self::NotInvitee => C::NotInvitee,
            Self::NotInitiator => C::NotInitiator,
            Self::NotMember => C::NotMember,
            Self::AlreadyAnswered => C::AlreadyAnswered,
            Self::AlreadyJoined => C::AlreadyJoined,
            Self::NotJoined => C::NotJoined,
            Self::NotRinging => C::NotRinging,
            Self::CallEnded => C::CallEnded,
            Self::TooManyTracks { .. } => C::TooManyTracks,
            Self::UnexpectedAnswer { .. } => C::UnexpectedAnswer,
            Self::InvalidConfig(_) => C::InvalidConfig,
        }
    }

    /// True when the request itself was at fault (a 4xx); false for server misconfiguration.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::InvalidConfig(_))
    }
}
