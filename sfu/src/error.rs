//! The one error type at the SFU crate's boundary.

use huddle_signaling::protocol::ErrorCode;

use crate::{ParticipantId, TrackId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    #[error("participant {0} is already in the room")]
    AlreadyJoined(ParticipantId),
    #[error("participant {0} is not in the room")]
    UnknownParticipant(ParticipantId),
    #[error("track {0} does not exist in the room")]
    UnknownTrack(TrackId),
    #[error("no track is named {0:?}")]
    UnknownTrackName(String),
    #[error("track {track} is not published by participant {participant}")]
    NotTrackOwner { track: TrackId, participant: ParticipantId },
    #[error("the room is full ({max} participants)")]
    RoomFull { max: usize },
    #[error("participant {participant} already publishes {max} tracks")]
    TooManyTracks { participant: ParticipantId, max: usize },
    #[error("invalid room configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("SDP is {len} bytes; at most {max} are allowed")]
    SdpTooLarge { len: usize, max: usize },
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("media connection setup failed: {0}")]
    Setup(String),
    #[error("datagram from an unknown source")]
    UnknownSource,
    /// The datagram's connection refused it (the reason is logged at trace level; a refusal
    /// allocates nothing).
    #[error("datagram refused")]
    Refused,
}

impl SfuError {
    /// A stable snake_case code clients can match on; the display text may change.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::AlreadyJoined(_) => C::AlreadyJoined,
            Self::UnknownParticipant(_) => C::UnknownParticipant,
            Self::UnknownTrack(_) | Self::UnknownTrackName(_) => C::UnknownTrack,
            Self::NotTrackOwner { .. } => C::NotTrackOwner,
            Self::RoomFull { .. } => C::RoomFull,
            Self::TooManyTracks { .. } => C::TooManyTracks,
            Self::InvalidConfig(_) => C::InvalidConfig,
            Self::SdpTooLarge { .. } => C::SdpTooLarge,
            Self::Negotiation(_) => C::NegotiationFailed,
            Self::Setup(_) => C::MediaSetupFailed,
            Self::UnknownSource => C::UnknownSource,
            Self::Refused => C::DatagramRefused,
        }
    }
}
