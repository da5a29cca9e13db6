//! Friend requests and friendships, with their live events and notifications.

use mongodb::bson::{self, doc, oid::ObjectId};

use super::notifications::notify;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::chats::direct_key;
use crate::store::friends::{Invitation, InvitationStatus};
use crate::store::notifications::NotificationKind;
use crate::store::{is_duplicate_key, tx};
pub use huddle_signaling::protocol::InvitationView;
use huddle_signaling::protocol::{FriendRemoved, events};

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id.to_hex(),
            sender: i.sender.to_hex(),
            receiver: i.receiver.to_hex(),
            content: i.content.clone(),
            status: i.status,
            created_at: i.created_at.to_chrono(),
        }
    }
}

/// Sends a friend request to a verified user who is not a friend yet.
pub async fn request(state: &AppState, sender: ObjectId, receiver: ObjectId, content: String) -> AppResult<Invitation> {
    if sender == receiver {
        return Err(AppError::bad_request("userId: you cannot befriend yourself"));
    }
    if content.chars().count() > 500 {
        return Err(AppError::bad_request("content: at most 500 characters"));
    }
    let target = state.store.users.by_id(receiver).await?;
    if !target.is_some_and(|u| u.email_verified) {
        return Err(AppError::NotFound);
    }
    if state.store.friends.are_friends(sender, receiver).await? {
        return Err(AppError::Conflict("already friends"));
    }
    let now = bson::DateTime::now();
    let invitation = Invitation {
        id: ObjectId::new(),
        sender,
        receiver,
        content,
        status: InvitationStatus::Pending,
        pending_key: Some(direct_key(sender, receiver)),
        created_at: now,
        updated_at: now,
    };
    match state.store.friends.insert(&invitation).await {
        Ok(()) => {}
        Err(e) if is_duplicate_key(&e) => return Err(AppError::Conflict("a request between you is already pending")),
        Err(e) => return Err(e.into()),
    }
    let view = InvitationView::from(&invitation);
    state.realtime.to_user(receiver, events::FRIEND_REQUEST, &view).await;
    notify(
        state,
        receiver,
        NotificationKind::FriendRequest,
        "sent you a friend request".into(),
        invitation.id,
    )
    .await;
    Ok(invitation)
}

/// The receiver accepts: both become friends in one transaction.
pub async fn accept(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Invitation> {
    let store = state.store.clone();
    let accepted = tx::transaction(&state.store.client, |s| {
        let store = store.clone();
        Box::pin(async move {
            let Some(invitation) = store
                .friends
                .close(id, doc! { "receiver": user }, InvitationStatus::Accepted, Some(&mut *s))
                .await?
            else {
                return Ok(None);
            };
            store
                .friends
                .befriend(invitation.sender, invitation.receiver, s)
                .await?;
            Ok(Some(invitation))
        })
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let view = InvitationView::from(&accepted);
    for party in [accepted.sender, accepted.receiver] {
        state.realtime.to_user(party, events::FRIEND_ACCEPTED, &view).await;
    }
    notify(
        state,
        accepted.sender,
        NotificationKind::FriendAccepted,
        "accepted your friend request".into(),
        accepted.id,
    )
    .await;
    Ok(accepted)
}

/// The receiver rejects, or the sender cancels.
pub async fn close(state: &AppState, user: ObjectId, id: ObjectId, status: InvitationStatus) -> AppResult<Invitation> {
    let party = match status {
        InvitationStatus::Rejected => doc! { "receiver": user },
        _ => doc! { "sender": user },
    };
    let closed = state
        .store
        .friends
        .close(id, party, status, None)
        .await?
        .ok_or(AppError::NotFound)?;
    let view = InvitationView::from(&closed);
    for party in [closed.sender, closed.receiver] {
        state
            .realtime
            .to_user(party, events::FRIEND_REQUEST_CLOSED, &view)
            .await;
    }
    Ok(closed)
}

/// Ends a friendship (both sides); their 1:1 chat stays readable.
pub async fn unfriend(state: &AppState, user: ObjectId, other: ObjectId) -> AppResult<()> {
    let store = state.store.clone();
    let removed = tx::transaction(&state.store.client, |s| {
        let store = store.clone();
        Box::pin(async move { store.friends.unfriend(user, other, s).await })
    })
    .await?;
    if !removed {
        return Err(AppError::NotFound);
    }
    // Their 1:1 chat stays readable, but its calls are between friends: a live one ends.
    if let Some(chat) = state.store.chats.direct(user, other).await? {
        for party in [user, other] {
            super::calls::left_chat(state, chat.id, party).await?;
        }
    }
    let event = FriendRemoved {
        user_id: user.to_hex(),
        friend_id: other.to_hex(),
    };
    for party in [user, other] {
        state.realtime.send_to_user(party, &event).await;
    }
    Ok(())
}
