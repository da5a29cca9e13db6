//! What comes out of the SFU: datagrams to send, events for the signaling side, replies to a
//! client's offer or answer, and counters.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use huddle_signaling::TrackSource;

use crate::{ParticipantId, PeerKey, RoomId, TrackId, TrackKind};

/// A datagram to send from the shared socket.
#[derive(Debug)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: BytesMut,
}

/// What the signaling side must pass on, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// Send this offer to the participant (`rtc:offer`); its answer must name `offer_id`.
    Offer { peer: PeerKey, offer_id: u64, sdp: String },
    /// The participant's media connection is up.
    Connected { peer: PeerKey },
    /// `to` now receives `owner`'s track: one event per subscriber, when its down track is
    /// added (for a new track, and for every track already there when `to` joins).
    TrackPublished {
        room: RoomId,
        to: ParticipantId,
        owner: ParticipantId,
        track: TrackId,
        /// The ids subscribers see in the SFU's SDP (`msid`).
        stream_id: String,
        track_id: String,
        kind: TrackKind,
        source: TrackSource,
    },
    TrackUnpublished {
        room: RoomId,
        owner: ParticipantId,
        track: TrackId,
        kind: TrackKind,
        source: TrackSource,
    },
    /// The participant's connection failed (ICE consent lost, DTLS failed); it was removed and
    /// its tracks unpublished.
    PeerFailed { peer: PeerKey },
    /// The active speaker changed (`None`: nobody is speaking).
    Speaker {
        room: RoomId,
        participant: Option<ParticipantId>,
    },
    /// The first keyframe of `track` reached `peer`, `after_answer` the subscriber's answer
    /// for it was applied: how long a new subscription waits for its first picture.
    FirstKeyframe {
        peer: PeerKey,
        track: TrackId,
        after_answer: Duration,
    },
}

/// What the SFU answers to a client's offer or answer: the answer SDP (for an offer), then an
/// offer of its own when the tracks the client receives changed meanwhile. Returning that
/// offer here, rather than as an event, keeps it behind the answer on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiationReply {
    pub answer: Option<String>,
    pub offer: Option<(u64, String)>,
    /// The SFU's own offer this client offer crossed and withdrew: the client must not answer
    /// it (any later offer of the SFU still stands).
    pub withdrawn: Option<u64>,
}

/// Counters for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// RTP copies handed to subscribers' connections.
    pub forwarded_packets: u64,
    /// Datagrams from an unknown source, or that their connection refused.
    pub dropped_datagrams: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Simulcast layer switches on down tracks.
    pub layer_switches: u64,
}
