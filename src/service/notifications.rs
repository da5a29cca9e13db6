//! Notifications: stored for the recipient and pushed live as `notification:new`.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, oid::ObjectId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::store::chats::Chat;
use crate::store::messages::Message;
use crate::store::notifications::{Notification, NotificationKind};

#[derive(Debug, Serialize, ToSchema)]
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

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id.to_hex(),
            kind: n.kind,
            content: n.content.clone(),
            related_id: n.related_id.to_hex(),
            read: n.read,
            created_at: n.created_at.to_chrono(),
        }
    }
}

/// Stores a notification for `user` and pushes it to their open sockets. Failures are
/// logged: a missed notice must never fail the action that caused it.
pub async fn notify(state: &AppState, user: ObjectId, kind: NotificationKind, content: String, related: ObjectId) {
    let notification = Notification {
        id: ObjectId::new(),
        user_id: user,
        kind,
        content,
        related_id: related,
        read: false,
        created_at: bson::DateTime::now(),
    };
    if let Err(e) = state.store.notifications.insert(&notification).await {
        tracing::error!(error = %e, "notification not stored");
        return;
    }
    state
        .realtime
        .to_user(user, "notification:new", &NotificationView::from(&notification))
        .await;
}

/// A message notifies the members who have no socket open. The notices are written after
/// the message is acknowledged, never on the send's path.
pub fn message_sent(state: &AppState, chat: Chat, message: &Message) {
    let away: Vec<ObjectId> = chat
        .participants
        .iter()
        .copied()
        .filter(|m| *m != message.sender && !state.realtime.is_online(*m))
        .collect();
    if away.is_empty() {
        return;
    }
    let (state, related) = (state.clone(), message.id);
    let preview: String = message.content.chars().take(100).collect();
    tokio::spawn(async move {
        for member in away {
            notify(&state, member, NotificationKind::Message, preview.clone(), related).await;
        }
    });
}
