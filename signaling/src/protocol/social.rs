//! People: presence, friend requests, groups and notifications, as the server pushes them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SocketEvent;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// `presence`: a friend came online or went offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Presence {
    pub user_id: String,
    pub status: PresenceStatus,
    pub last_seen: DateTime<Utc>,
}

impl SocketEvent for Presence {
    const EVENT: &'static str = "presence";
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Rejected,
    Cancelled,
}

/// A friend request: the payload of `friend:request`, `friend:accepted` and
/// `friend:request-closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    #[serde(rename = "_id")]
    pub id: String,
    pub sender: String,
    pub receiver: String,
    /// The request's note.
    pub content: String,
    pub status: InvitationStatus,
    pub created_at: DateTime<Utc>,
}

/// `friend:removed`: two users stopped being friends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FriendRemoved {
    pub user_id: String,
    pub friend_id: String,
}

impl SocketEvent for FriendRemoved {
    const EVENT: &'static str = "friend:removed";
}

/// A group: the payload of `group:invited` and `group:updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub about: String,
    pub members: Vec<String>,
    pub admins: Vec<String>,
    /// Pending invitations.
    pub invited: Vec<String>,
    pub chat_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `group:member-added` and `group:member-removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupMembership {
    pub group_id: String,
    pub chat_id: String,
    pub user_id: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Message,
    FriendRequest,
    FriendAccepted,
    GroupInvite,
}

/// A notification: the payload of `notification:new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub content: String,
    pub related_id: String,
    pub read: bool,
    pub created_at: DateTime<Utc>,
}
