//! Notifications: stored for the recipient and pushed live as `notification:new`.

use mongodb::bson::{self, oid::ObjectId};

use crate::state::AppState;
use crate::store::messages::Message;
use crate::store::notifications::{Notification, NotificationKind};
pub use huddle_signaling::protocol::NotificationView;
use huddle_signaling::protocol::events;

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
        .to_user(user, events::NOTIFICATION_NEW, &NotificationView::from(&notification))
        .await;
}

/// Who of `chat` may be away when `message` is posted: the members, other than its sender,
/// with no socket open on this node. On several nodes some of them may be online elsewhere:
/// [`away`] decides, off the send's path.
pub fn maybe_away(state: &AppState, participants: &[ObjectId], sender: ObjectId) -> Vec<ObjectId> {
    participants
        .iter()
        .copied()
        .filter(|m| *m != sender && !state.realtime.is_online_here(*m))
        .collect()
}

/// Who of `chat` is away: the members, other than the sender, with no socket open on any node.
pub async fn away(state: &AppState, participants: &[ObjectId], sender: ObjectId) -> Vec<ObjectId> {
    let mut away = Vec::new();
    for member in maybe_away(state, participants, sender) {
        if !state.realtime.is_online(member).await {
            away.push(member);
        }
    }
    away
}

/// A message notifies the members who have no socket open. The notices are written after
/// the message is acknowledged, off the send's path; a message stored with
/// `notifyPending` keeps that mark until they are, so none is lost if the node stops first
/// ([`resume_pending`] writes them at the next start).
pub fn message_sent(state: &AppState, participants: Vec<ObjectId>, message: &Message) {
    if !message.notify_pending {
        return;
    }
    let (state, message) = (state.clone(), message.clone());
    tokio::spawn(async move {
        if let Err(e) = notify_away(&state, &participants, &message).await {
            tracing::warn!(error = %e, message = %message.id, "message notifications not written yet");
        }
    });
}

/// Writes the notices of one message for its away members, then clears its mark.
async fn notify_away(state: &AppState, participants: &[ObjectId], message: &Message) -> mongodb::error::Result<()> {
    let preview: String = message.content.chars().take(100).collect();
    let notices = away(state, participants, message.sender)
        .await
        .into_iter()
        .map(|member| Notification {
            id: crate::store::notifications::notice_id(message.id, member),
            user_id: member,
            kind: NotificationKind::Message,
            content: preview.clone(),
            related_id: message.id,
            read: false,
            created_at: message.created_at,
        })
        .collect();
    let written = state.store.notifications.insert_once(notices).await?;
    state.store.messages.notified(message.id).await?;
    for notice in &written {
        state
            .realtime
            .to_user(
                notice.user_id,
                events::NOTIFICATION_NEW,
                &NotificationView::from(notice),
            )
            .await;
    }
    Ok(())
}

/// Writes the notifications a stopped node left unwritten (messages still marked
/// `notifyPending`). Runs once at start.
pub async fn resume_pending(state: &AppState) {
    loop {
        let pending = match state.store.messages.notify_pending(500).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for unwritten notifications");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        for message in pending {
            let written = match state.store.chats.by_id(message.chat_id).await {
                Ok(Some(chat)) => notify_away(state, &chat.participants, &message).await,
                // The chat is gone: nobody is left to notify.
                Ok(None) => state.store.messages.notified(message.id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, "unwritten notifications: will retry at the next start");
                return;
            }
        }
    }
}
