//! Huddle's Socket.IO protocol: the one definition of every request a client sends, every
//! acknowledgement it gets back, and every event the server emits, grouped by topic. The
//! server parses requests into these types and emits only these types; `docs/socket-events.md`
//! documents them, and a test checks each payload's fields against that document.
//!
//! Payloads are camelCase JSON. Requests refuse unknown fields, and the ones that carry
//! free-form input are checked by `validate()` before anything acts on them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod ai;
pub mod call;
pub mod chat;
pub mod error;
pub mod media;
pub mod social;

pub use ai::*;
pub use call::*;
pub use chat::*;
pub use error::ErrorCode;
pub use media::*;
pub use social::*;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    Audio,
    Video,
}

/// The Call document's `status`, plus `ringing` for the phase before anyone answered (the
/// server may store that phase as `ongoing` if the spec's three values must be kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

/// An empty object, `{}`: the ack of requests that return nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The name of a server event whose payload type travels on more than one event (see
/// [`events`]). Only this crate makes one, so the server cannot emit an event the protocol
/// does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event(&'static str);

impl Event {
    pub const fn name(self) -> &'static str {
        self.0
    }
}

/// Server events whose payload type is shared with other events or with REST replies. The
/// others are named by their payload type's [`SocketEvent::EVENT`].
pub mod events {
    use super::Event;

    pub const MESSAGE_NEW: Event = Event("message:new");
    pub const MESSAGE_UPDATED: Event = Event("message:updated");
    pub const MESSAGE_READ: Event = Event("message:read");
    pub const CALL_INCOMING: Event = Event("call:incoming");
    pub const CALL_ENDED: Event = Event("call:ended");
    pub const CALL_ACCEPTED: Event = Event("call:accepted");
    pub const CALL_DECLINED: Event = Event("call:declined");
    pub const CALL_PARTICIPANT_JOINED: Event = Event("call:participant-joined");
    pub const CALL_PARTICIPANT_LEFT: Event = Event("call:participant-left");
    pub const FRIEND_REQUEST: Event = Event("friend:request");
    pub const FRIEND_ACCEPTED: Event = Event("friend:accepted");
    pub const FRIEND_REQUEST_CLOSED: Event = Event("friend:request-closed");
    pub const GROUP_INVITED: Event = Event("group:invited");
    pub const GROUP_UPDATED: Event = Event("group:updated");
    pub const GROUP_MEMBER_ADDED: Event = Event("group:member-added");
    pub const GROUP_MEMBER_REMOVED: Event = Event("group:member-removed");
    pub const NOTIFICATION_NEW: Event = Event("notification:new");
    pub const AI_DONE: Event = Event("ai:done");
}

/// Who sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A request from a client, answered by an ack.
    Request,
    /// An event the server emits.
    Server,
}

/// The schema of a payload type, as the OpenAPI document and the protocol test read it.
pub type SchemaOf = fn() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>;

/// One event of the protocol, with the type of its payload (and, for requests, of its ack's
/// `data`).
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    pub name: &'static str,
    pub direction: Direction,
    pub payload: SchemaOf,
    pub ack: Option<SchemaOf>,
}

fn schema<T: utoipa::PartialSchema>() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    T::schema()
}

/// Every event of the protocol: each request a client may send and each event the server
/// emits.
pub fn catalog() -> Vec<EventSpec> {
    fn request<T: utoipa::PartialSchema, A: utoipa::PartialSchema>(name: &'static str) -> EventSpec {
        EventSpec {
            name,
            direction: Direction::Request,
            payload: schema::<T>,
            ack: Some(schema::<A>),
        }
    }
    fn server<T: utoipa::PartialSchema>(name: &'static str) -> EventSpec {
        EventSpec {
            name,
            direction: Direction::Server,
            payload: schema::<T>,
            ack: None,
        }
    }
    let mut all = vec![
        request::<SendMessage, MessageView>(SendMessage::EVENT),
        request::<EditMessage, MessageView>(EditMessage::EVENT),
        request::<MessageRef, MessageView>("message:delete"),
        request::<StarMessage, MessageView>(StarMessage::EVENT),
        request::<ReadRequest, ReadReceipt>("message:read"),
        request::<ChatRef, Empty>("typing:start"),
        request::<ChatRef, Empty>("typing:stop"),
        request::<SyncRequest, SyncReply>(SyncRequest::EVENT),
        request::<CallStart, CallView>(CallStart::EVENT),
        request::<SdpOffer, NegotiationAck>(SdpOffer::EVENT),
        request::<SdpAnswer, AnswerAck>(SdpAnswer::EVENT),
        request::<IceCandidate, Empty>(IceCandidate::EVENT),
        request::<LayerRequest, Empty>(LayerRequest::EVENT),
        request::<MuteRequest, Empty>(MuteRequest::EVENT),
        request::<AiAsk, AiAsked>(AiAsk::EVENT),
        request::<MessageRef, Empty>("ai:cancel"),
        request::<ChatRef, AiSummarized>("ai:summarize"),
    ];
    for name in CALL_REF_EVENTS {
        all.push(if name == "call:join" {
            request::<CallRef, CallJoined>(name)
        } else {
            request::<CallRef, CallView>(name)
        });
    }
    all.extend([
        server::<MessageView>(events::MESSAGE_NEW.name()),
        server::<MessageView>(events::MESSAGE_UPDATED.name()),
        server::<MessageDeleted>(MessageDeleted::EVENT),
        server::<ReadReceipt>(events::MESSAGE_READ.name()),
        server::<Typing>(Typing::EVENT),
        server::<Presence>(Presence::EVENT),
        server::<InvitationView>(events::FRIEND_REQUEST.name()),
        server::<InvitationView>(events::FRIEND_ACCEPTED.name()),
        server::<InvitationView>(events::FRIEND_REQUEST_CLOSED.name()),
        server::<FriendRemoved>(FriendRemoved::EVENT),
        server::<NotificationView>(events::NOTIFICATION_NEW.name()),
        server::<GroupView>(events::GROUP_INVITED.name()),
        server::<GroupView>(events::GROUP_UPDATED.name()),
        server::<GroupMembership>(events::GROUP_MEMBER_ADDED.name()),
        server::<GroupMembership>(events::GROUP_MEMBER_REMOVED.name()),
        server::<CallView>(events::CALL_INCOMING.name()),
        server::<CallUser>(events::CALL_ACCEPTED.name()),
        server::<CallUser>(events::CALL_DECLINED.name()),
        server::<CallUser>(events::CALL_PARTICIPANT_JOINED.name()),
        server::<CallUser>(events::CALL_PARTICIPANT_LEFT.name()),
        server::<RingExpired>(RingExpired::EVENT),
        server::<CallView>(events::CALL_ENDED.name()),
        server::<SfuOffer>(SfuOffer::EVENT),
        server::<TrackPublished>(TrackPublished::EVENT),
        server::<TrackUnpublished>(TrackUnpublished::EVENT),
        server::<ParticipantMuted>(ParticipantMuted::EVENT),
        server::<ActiveSpeaker>(ActiveSpeaker::EVENT),
        server::<AiDelta>(AiDelta::EVENT),
        server::<AiMessageView>(events::AI_DONE.name()),
        server::<AiError>(AiError::EVENT),
    ]);
    all
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
