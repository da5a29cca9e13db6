//! Every error code a client can see, in a REST error body or a socket ack's `error`:
//! `{ "code": "not_found", "message": "…" }`. The message may change; the code is stable.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, )*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[serde(rename = $code)] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order they are declared.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The code named `code`, if there is one.
            pub fn from_code(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// The request is malformed: a missing or unknown field, a wrong type, a broken rule.
    BadRequest = "bad_request",
    Unauthorized = "unauthorized",
    /// Does not exist, or the caller may not know it exists.
    NotFound = "not_found",
    Conflict = "conflict",
    PayloadTooLarge = "payload_too_large",
    UnsupportedMediaType = "unsupported_media_type",
    /// Too many attempts: wait `retryAfterMs`.
    RateLimited = "rate_limited",
    /// A per-user quota is used up until `retryAfterMs`.
    QuotaExceeded = "quota_exceeded",
    /// A store the request needs cannot be reached right now.
    Unavailable = "unavailable",
    /// The server is at its limit of work in flight; nothing was done. Retry after `retryAfterMs`.
    Overloaded = "overloaded",
    Internal = "internal",
    InvalidCredentials = "invalid_credentials",
    InvalidCode = "invalid_code",
    EmailNotVerified = "email_not_verified",
    OriginNotAllowed = "origin_not_allowed",
    NotSender = "not_sender",
    NotFriends = "not_friends",
    NotAdmin = "not_admin",
    TypeMismatch = "type_mismatch",
    ClientMsgIdReused = "client_msg_id_reused",
    CallInProgress = "call_in_progress",
    NotInCall = "not_in_call",
    AiBusy = "ai_busy",
    AiNotConfigured = "ai_not_configured",
    AiUnavailable = "ai_unavailable",
    AiTimeout = "ai_timeout",
    EmptyField = "empty_field",
    InvalidId = "invalid_id",
    SdpTooLarge = "sdp_too_large",
    MalformedSdp = "malformed_sdp",
    CandidateTooLarge = "candidate_too_large",
    NoInvitees = "no_invitees",
    NotInvitee = "not_invitee",
    NotInitiator = "not_initiator",
    NotMember = "not_member",
    AlreadyAnswered = "already_answered",
    AlreadyJoined = "already_joined",
    NotJoined = "not_joined",
    NotRinging = "not_ringing",
    CallEnded = "call_ended",
    TooManyTracks = "too_many_tracks",
    UnexpectedAnswer = "unexpected_answer",
    InvalidConfig = "invalid_config",
    UnknownParticipant = "unknown_participant",
    UnknownTrack = "unknown_track",
    NotTrackOwner = "not_track_owner",
    RoomFull = "room_full",
    NegotiationFailed = "negotiation_failed",
    MediaSetupFailed = "media_setup_failed",
    UnknownSource = "unknown_source",
    DatagramRefused = "datagram_refused",
    /// `/complete` before anything was uploaded.
    NotUploaded = "not_uploaded",
    /// The upload's size differs from what was declared.
    SizeMismatch = "size_mismatch",
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn each_code_reads_back_and_serializes_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(*code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
