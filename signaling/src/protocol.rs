//! Typed call messages: what clients send (`call:start`, `rtc:offer`, ...) and what the server
//! emits (`call:incoming`, `call:ended`, ...). Payloads are camelCase JSON, unknown fields are
//! refused, and every client request is checked by `validate()` before anything acts on it.

use serde::{Deserialize, Serialize};

use crate::SignalingError;

/// Largest SDP offer or answer accepted from a client. A browser's offer for audio, video and
/// screen share with simulcast is a few KiB; anything far beyond that is abuse.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Largest trickled ICE candidate line accepted from a client (real ones are ~100-200 bytes).
pub const MAX_ICE_CANDIDATE_BYTES: usize = 1024;

/// Largest opaque id accepted (the server's ids are 24-character ObjectId hex).
pub const MAX_ID_BYTES: usize = 64;

/// The Socket.IO event a payload travels on, `entity:verb` style.
pub trait SocketEvent {
    const EVENT: &'static str;
}

/// A client payload that must be checked before use.
pub trait Validate {
    fn validate(&self) -> Result<(), SignalingError>;
}

/// What a call carries, as stored in the Call document's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    Audio,
    Video,
}

/// The Call document's `status`, plus `ringing` for the phase before anyone answered (the
/// server may store that phase as `ongoing` if the spec's three values must be kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Ringing,
    Ongoing,
    Ended,
    Missed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Ongoing => "ongoing",
            Self::Ended => "ended",
            Self::Missed => "missed",
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The last participant left an answered call.
    Completed,
    /// The initiator cancelled (or hung up) before anyone answered.
    Cancelled,
    /// Every invitee declined.
    Declined,
    /// Nobody answered within the ring timeout.
    Timeout,
    /// The server ended it (shutdown, room failure).
    Terminated,
}

/// Checks an opaque id: present, bounded, printable ASCII without spaces.
pub fn validate_id(field: &'static str, id: &str) -> Result<(), SignalingError> {
    if id.is_empty() {
        return Err(SignalingError::EmptyField { field });
    }
    if id.len() > MAX_ID_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignalingError::InvalidId { field });
    }
    Ok(())
}

/// Checks an SDP blob's size and first line; full parsing is the SFU's job.
pub fn validate_sdp(sdp: &str) -> Result<(), SignalingError> {
    if sdp.is_empty() {
        return Err(SignalingError::EmptyField { field: "sdp" });
    }
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SignalingError::SdpTooLarge {
            len: sdp.len(),
            max: MAX_SDP_BYTES,
        });
    }
    if !sdp.starts_with("v=0") {
        return Err(SignalingError::MalformedSdp);
    }
    Ok(())
}

// ---- client requests ----

/// `call:start`: ring the other members of a chat. The server, not the client, decides who is
/// invited, from the chat's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallStart {
    pub chat_id: String,
    pub kind: CallKind,
}

impl SocketEvent for CallStart {
    const EVENT: &'static str = "call:start";
}

impl Validate for CallStart {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("chatId", &self.chat_id)
    }
}

/// Requests that carry only the call they act on.
macro_rules! call_id_request {
    ($(#[$doc:meta])* $name:ident, $event:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            pub call_id: String,
        }

        impl SocketEvent for $name {
            const EVENT: &'static str = $event;
        }

        impl Validate for $name {
            fn validate(&self) -> Result<(), SignalingError> {
                validate_id("callId", &self.call_id)
            }
        }
    };
}

call_id_request!(
    /// `call:accept`: an invitee answers a ringing call.
    CallAccept,
    "call:accept"
);
call_id_request!(
    /// `call:decline`: an invitee refuses a ringing call.
    CallDecline,
    "call:decline"
);
call_id_request!(
    /// `call:cancel`: the initiator stops ringing before anyone answered.
    CallCancel,
    "call:cancel"
);
call_id_request!(
    /// `call:join`: enter the call's media room (after accepting, or late into an ongoing call).
    CallJoin,
    "call:join"
);
call_id_request!(
    /// `call:leave`: hang up.
    CallLeave,
    "call:leave"
);

/// Where a published track comes from; decides how subscribers see and size it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackSource {
    Microphone,
    Camera,
    Screen,
    /// Audio captured with a screen share (tab or system audio).
    ScreenAudio,
}

/// Most tracks one offer may describe (microphone, camera, screen, screen audio).
pub const MAX_TRACK_SOURCES: usize = 4;

/// `rtc:offer`: an SDP offer. A client sends one to publish (or stop publishing) tracks; the SFU
/// sends one, with an `offerId`, when the tracks the client receives change. `sources` names
/// the source of each published track by its `MediaStreamTrack.id` (as in the SDP's `msid`);
/// unnamed audio is a microphone and unnamed video a camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SdpOffer {
    pub call_id: String,
    pub sdp: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TrackSourceEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<u64>,
}

/// One `sources` entry of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackSourceEntry {
    pub track_id: String,
    pub source: TrackSource,
}

impl SocketEvent for SdpOffer {
    const EVENT: &'static str = "rtc:offer";
}

impl Validate for SdpOffer {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)?;
        validate_sdp(&self.sdp)?;
        if self.sources.len() > MAX_TRACK_SOURCES {
            return Err(SignalingError::TooManyTracks { max: MAX_TRACK_SOURCES });
        }
        self.sources
            .iter()
            .try_for_each(|entry| validate_id("sources.trackId", &entry.track_id))
    }
}

/// `rtc:answer`: a client's SDP answer to the SFU's offer `offerId`. An answer to an offer the
/// SFU has since withdrawn is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SdpAnswer {
    pub call_id: String,
    pub sdp: String,
    pub offer_id: u64,
}

impl SocketEvent for SdpAnswer {
    const EVENT: &'static str = "rtc:answer";
}

impl Validate for SdpAnswer {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)?;
        validate_sdp(&self.sdp)
    }
}

/// `rtc:candidate`: a trickled ICE candidate (`RTCIceCandidateInit`). An empty `candidate`
/// means end-of-candidates, as browsers send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceCandidate {
    pub call_id: String,
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
}

impl SocketEvent for IceCandidate {
    const EVENT: &'static str = "rtc:candidate";
}

impl Validate for IceCandidate {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)?;
        let len = self.candidate.len() + self.sdp_mid.as_ref().map_or(0, String::len);
        if len > MAX_ICE_CANDIDATE_BYTES {
            return Err(SignalingError::CandidateTooLarge {
                len,
                max: MAX_ICE_CANDIDATE_BYTES,
            });
        }
        Ok(())
    }
}

/// `participant:mute`: the sender's own mute state for one of its sources; everyone else in
/// the call gets `participant:muted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteRequest {
    pub call_id: String,
    pub source: TrackSource,
    pub muted: bool,
}

impl SocketEvent for MuteRequest {
    const EVENT: &'static str = "participant:mute";
}

impl Validate for MuteRequest {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)
    }
}

/// Simulcast layers, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Low,
    Medium,
    High,
}

/// `rtc:layer`: the highest simulcast layer a subscriber wants of one track (a thumbnail asks
/// for `low`); the SFU sends at most that, less when the subscriber's link cannot carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerRequest {
    pub call_id: String,
    pub track_id: String,
    pub layer: Layer,
}

impl SocketEvent for LayerRequest {
    const EVENT: &'static str = "rtc:layer";
}

impl Validate for LayerRequest {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)?;
        validate_id("trackId", &self.track_id)
    }
}

// ---- server events ----

/// `call:incoming`: sent to each invitee while their device should ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallIncoming {
    pub call_id: String,
    pub chat_id: String,
    pub kind: CallKind,
    pub initiator: String,
}

impl SocketEvent for CallIncoming {
    const EVENT: &'static str = "call:incoming";
}

/// Events that name a call and one user.
macro_rules! call_user_event {
    ($(#[$doc:meta])* $name:ident, $event:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            pub call_id: String,
            pub user_id: String,
        }

        impl SocketEvent for $name {
            const EVENT: &'static str = $event;
        }
    };
}

call_user_event!(
    /// `call:accepted`: an invitee answered.
    CallAccepted,
    "call:accepted"
);
call_user_event!(
    /// `call:declined`: an invitee refused.
    CallDeclined,
    "call:declined"
);
call_user_event!(
    /// `call:joined`: someone entered the call's media room.
    CallParticipantJoined,
    "call:joined"
);
call_user_event!(
    /// `call:left`: someone left the call's media room.
    CallParticipantLeft,
    "call:left"
);

/// `call:ended`: the call is over for everyone; ringing devices stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallEnded {
    pub call_id: String,
    pub status: CallStatus,
    pub reason: EndReason,
}

impl SocketEvent for CallEnded {
    const EVENT: &'static str = "call:ended";
}

/// `track:published`: a participant's track is now forwarded to everyone else in the call.
/// `trackId` is the track's id in the SDP the SFU sends (`msid`), `streamId` its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackPublished {
    pub call_id: String,
    pub user_id: String,
    pub track_id: String,
    pub stream_id: String,
    pub kind: TrackKind,
    pub source: TrackSource,
}

impl SocketEvent for TrackPublished {
    const EVENT: &'static str = "track:published";
}

/// `track:unpublished`: forwarding of a track stopped (its publisher removed it or left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackUnpublished {
    pub call_id: String,
    pub user_id: String,
    pub track_id: String,
    pub kind: TrackKind,
    pub source: TrackSource,
}

impl SocketEvent for TrackUnpublished {
    const EVENT: &'static str = "track:unpublished";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

/// `participant:muted`: someone's mute state for one source changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParticipantMuted {
    pub call_id: String,
    pub user_id: String,
    pub source: TrackSource,
    pub muted: bool,
}

impl SocketEvent for ParticipantMuted {
    const EVENT: &'static str = "participant:muted";
}

/// `call:speaker`: the active speaker changed (`userId` absent: nobody is speaking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActiveSpeaker {
    pub call_id: String,
    pub user_id: Option<String>,
}

impl SocketEvent for ActiveSpeaker {
    const EVENT: &'static str = "call:speaker";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_printable_and_bounded() {
        assert_eq!(validate_id("callId", "65a1f0c2e4b0a1b2c3d4e5f6"), Ok(()));
        assert_eq!(
            validate_id("callId", ""),
            Err(SignalingError::EmptyField { field: "callId" })
        );
        for bad in ["a b", "a\u{0}", "é", &"x".repeat(MAX_ID_BYTES + 1)] {
            assert_eq!(
                validate_id("callId", bad),
                Err(SignalingError::InvalidId { field: "callId" }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_strings_match_serde() {
        for status in [
            CallStatus::Ringing,
            CallStatus::Ongoing,
            CallStatus::Ended,
            CallStatus::Missed,
        ] {
            let json = format!("\"{}\"", status.as_str());
            assert_eq!(serde_json::to_string(&status).unwrap(), json);
        }
    }
}
