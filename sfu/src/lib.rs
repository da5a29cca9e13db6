//! Sans-IO selective forwarding for Huddle calls. `Room` is the bookkeeping (participants,
//! published tracks, who receives what); `Sfu` runs every participant's WebRTC connection
//! (webrtc-rs `rtc`) behind one UDP port and forwards media between them: keyframe requests to
//! publishers, NACK/RTX per leg, simulcast layers per subscriber, active speaker. No sockets, no
//! clock, no runtime: the server's media task owns the `Sfu` and drives it through `&mut self`.

#![forbid(unsafe_code)]

pub mod bwe;
#[cfg(feature = "test-client")]
pub mod client;
pub mod codec;
pub mod demux;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod layer;
pub mod link;
pub mod munger;
pub mod room;
pub mod speaker;

/// A datagram received on UDP, as `rtc` takes it.
pub(crate) fn udp_datagram(
    now: std::time::Instant,
    local_addr: std::net::SocketAddr,
    peer_addr: std::net::SocketAddr,
    payload: bytes::BytesMut,
) -> rtc::shared::TaggedBytesMut {
    rtc::shared::TaggedBytesMut {
        now,
        transport: rtc::shared::TransportContext {
            local_addr,
            peer_addr,
            ecn: None,
            transport_protocol: rtc::shared::TransportProtocol::UDP,
        },
        message: payload,
    }
}

pub use engine::{NegotiationReply, PeerKey, RoomId, Sfu, SfuConfig, SfuEvent, SfuStats, Transmit};
pub use error::SfuError;
pub use room::{
    MAX_PARTICIPANTS, MAX_TRACKS_PER_PARTICIPANT, ParticipantId, Room, RoomConfig, RoomEvent, Subscribers, TrackId,
    TrackInfo, TrackKind,
};
