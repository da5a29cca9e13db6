//! Sans-IO selective forwarding for Huddle calls. `Room` is the bookkeeping (participants,
//! published tracks, who receives what); `Sfu` runs every participant's WebRTC connection
//! (webrtc-rs `rtc`) behind one UDP port and forwards media between them: keyframe requests to
//! publishers, NACK/RTX per leg, simulcast layers per subscriber, active speaker. No sockets, no
//! clock, no runtime: the server's media task owns the `Sfu` and drives it through `&mut self`.
//!
//! Inside `Sfu`, each participant is a `peer` (its connection), each published track a
//! `publication`, and each track on its way to one subscriber a `downtrack`.

#![forbid(unsafe_code)]

pub mod bwe;
#[cfg(feature = "test-client")]
pub mod client;
pub mod codec;
mod config;
mod connection;
pub mod demux;
mod downtrack;
pub mod error;
mod event;
pub mod feedback;
pub mod layer;
pub mod link;
pub mod munger;
mod pacer;
mod peer;
mod publication;
pub mod room;
pub mod sfu;
pub mod speaker;
mod srtp;
mod timers;
#[cfg(feature = "udp")]
pub mod udp;

/// The [`sfu`] module under its former name, for callers of `huddle_sfu::engine::…`.
pub use sfu as engine;

pub use error::SfuError;
pub use room::{
    MAX_PARTICIPANTS, MAX_TRACKS_PER_PARTICIPANT, ParticipantId, Room, RoomConfig, RoomEvent, Subscribers, TrackId,
    TrackInfo, TrackKind,
};
pub use sfu::{
    NegotiationReply, PeerKey, RoomId, Sfu, SfuConfig, SfuEvent, SfuStats, Transmit, stream_id, track_label,
};
