//! Media signaling between a call participant and the SFU: SDP offers and answers, ICE
//! candidates, simulcast layer requests, mute state, and the SFU's track events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{MAX_ICE_CANDIDATE_BYTES, SocketEvent, Validate, validate_id, validate_sdp};
use crate::SignalingError;

/// Where a published track comes from; decides how subscribers see and size it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

/// `rtc:offer` from a client: an SDP offer to publish (or stop publishing) tracks. (The SFU's
/// own offers travel as [`SfuOffer`].) `sources` names
/// the source of each published track by its `MediaStreamTrack.id` (as in the SDP's `msid`);
/// unnamed audio is a microphone and unnamed video a camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SdpOffer {
    pub call_id: String,
    pub sdp: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TrackSourceEntry>,
}

/// One `sources` entry of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Low,
    Medium,
    High,
}

/// `rtc:layer`: the highest simulcast layer a subscriber wants of one track (a thumbnail asks
/// for `low`); the SFU sends at most that, less when the subscriber's link cannot carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// `rtc:offer` from the SFU: what the participant receives changed; answer with
/// `rtc:answer` naming `offerId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SfuOffer {
    pub call_id: String,
    pub offer_id: u64,
    pub sdp: String,
}

impl SocketEvent for SfuOffer {
    const EVENT: &'static str = "rtc:offer";
}

/// The SFU's offer inside an ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfferRef {
    pub offer_id: u64,
    pub sdp: String,
}

/// The ack of `rtc:offer`: the SFU's answer, its own offer when what the client receives
/// changed meanwhile, and the SFU offer this one crossed and withdrew.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NegotiationAck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_offer_id: Option<u64>,
}

/// The ack of `rtc:answer`: the SFU's next offer, when what the client receives changed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerAck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferRef>,
}

/// `track:published`: a participant's track is now forwarded to everyone else in the call.
/// `trackId` is the track's id in the SDP the SFU sends (`msid`), `streamId` its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

/// `participant:muted`: someone's mute state for one source changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActiveSpeaker {
    pub call_id: String,
    pub user_id: Option<String>,
}

impl SocketEvent for ActiveSpeaker {
    const EVENT: &'static str = "call:speaker";
}
