//! Sans-IO selective forwarding for Huddle calls: rooms own participants and their published
//! tracks and say who receives what. No sockets, no clock, no runtime; the server's media task
//! owns each `Room` and drives it through `&mut self`.

pub mod error;
pub mod room;

pub use error::SfuError;
pub use room::{
    MAX_PARTICIPANTS, MAX_TRACKS_PER_PARTICIPANT, ParticipantId, Room, RoomConfig, RoomEvent, Subscribers, TrackId,
    TrackInfo, TrackKind,
};
