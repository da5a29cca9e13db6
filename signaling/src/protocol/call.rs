//! Calls: starting, answering, joining and leaving, the call as clients see it, and the
//! call events sent to the call's chat.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CallKind, CallStatus, EndReason, SocketEvent, Validate, validate_id};
use crate::SignalingError;

/// `call:start` (and `POST /api/v1/calls`): ring the other members of a chat. The server, not
/// the client, decides who is invited, from the chat's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallStart {
    pub chat_id: String,
    /// `audio` or `video`.
    #[serde(rename = "type")]
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

/// `call:accept`, `call:decline`, `call:cancel`, `call:join` and `call:leave`: requests that
/// carry only the call they act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallRef {
    pub call_id: String,
}

impl Validate for CallRef {
    fn validate(&self) -> Result<(), SignalingError> {
        validate_id("callId", &self.call_id)
    }
}

/// The events a [`CallRef`] travels on, and what each asks for.
pub const CALL_REF_EVENTS: [&str; 5] = ["call:accept", "call:decline", "call:cancel", "call:join", "call:leave"];

/// A call as clients see it: the ack of every `call:*` request, and the payload of
/// `call:incoming` and `call:ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    #[serde(rename = "_id")]
    pub id: String,
    /// `audio` or `video`.
    #[serde(rename = "type")]
    pub kind: CallKind,
    pub chat_id: String,
    pub initiator: String,
    /// Everyone who was in the call, in the order they first joined.
    pub participants: Vec<String>,
    /// Everyone who was rung.
    pub invited: Vec<String>,
    pub status: CallStatus,
    /// Once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// One STUN or TURN server, as `RTCConfiguration.iceServers` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// STUN and TURN servers with credentials minted for one user (`GET /api/v1/calls/ice-servers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid.
    pub ttl: u64,
}

/// The ack of `call:join`: the call, and the ICE servers to open the media connection with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallJoined {
    pub call: CallView,
    pub ice_servers: Vec<IceServer>,
    pub ttl: u64,
}

/// `call:accepted`, `call:declined`, `call:participant-joined` and `call:participant-left`:
/// what one user did in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallUser {
    pub call_id: String,
    pub user_id: String,
}

/// `call:ring-expired`: these invitees stopped ringing unanswered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingExpired {
    pub call_id: String,
    pub user_ids: Vec<String>,
}

impl SocketEvent for RingExpired {
    const EVENT: &'static str = "call:ring-expired";
}
