//! Calls as members see them: starting one in a chat, answering, joining and leaving (all
//! through the call hub), history, and the ICE servers handed to participants.

use std::time::Duration;

use huddle_signaling::{CallKind, CallStatus, TurnSecret, turn_credentials};
use mongodb::bson::{self, oid::ObjectId};

use super::chats::member_chat;
use crate::auth::tokens::unix_now;
use crate::domain::call::Action;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::calls::Call;
use crate::store::chats::Chat;
use huddle_signaling::protocol::ErrorCode;
pub use huddle_signaling::protocol::{IceServer, IceServers};

/// The chat, if `user` may be in its calls now: a member, and in a 1:1 chat still a friend
/// of the other member.
async fn callable_chat(state: &AppState, chat: ObjectId, user: ObjectId) -> AppResult<Chat> {
    let chat = member_chat(state, chat, user).await?;
    if !chat.is_group {
        let other = chat.participants.iter().copied().find(|p| *p != user).unwrap_or(user);
        if !state.store.friends.are_friends(user, other).await? {
            return Err(AppError::Forbidden {
                code: ErrorCode::NotFriends,
                message: "calls in a 1:1 chat are between friends",
            });
        }
    }
    Ok(chat)
}

/// Rings the chat's other members.
pub async fn start(state: &AppState, user: ObjectId, chat: ObjectId, kind: CallKind) -> AppResult<Call> {
    let chat = callable_chat(state, chat, user).await?;
    let call = Call {
        id: ObjectId::new(),
        kind,
        chat_id: chat.id,
        group_id: chat.group_id,
        initiator: user,
        participants: vec![user],
        invited: chat.participants.iter().copied().filter(|p| *p != user).collect(),
        started_at: bson::DateTime::now(),
        answered_at: None,
        ended_at: None,
        status: CallStatus::Ringing,
        end_reason: None,
    };
    // The document is durable before anyone rings; the hub, which never waits on the
    // database, then opens the call or refuses it (a call already live in the chat).
    state.store.calls.insert(&call).await?;
    let id = call.id;
    let started = state.calls.start(call).await;
    if started.is_err()
        && let Err(e) = state.store.calls.delete(id).await
    {
        tracing::warn!(error = %e, call = %id, "a refused call's document was not removed");
    }
    started
}

/// Acts on a call of one of the caller's chats. Chat membership is checked now, not when
/// the call started, so someone removed from a group meanwhile cannot join its call.
pub async fn act(state: &AppState, user: ObjectId, call: ObjectId, action: Action) -> AppResult<Call> {
    let found = get(state, user, call).await?;
    if matches!(action, Action::Accept | Action::Join) {
        callable_chat(state, found.chat_id, user).await?;
    }
    state.calls.act(call, user, action).await
}

/// A call in one of the caller's chats; any other answers as missing.
pub async fn get(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Call> {
    let call = state.store.calls.by_id(id).await?.ok_or(AppError::NotFound)?;
    member_chat(state, call.chat_id, user).await?;
    Ok(call)
}

pub async fn history(state: &AppState, user: ObjectId, before: Option<ObjectId>, limit: i64) -> AppResult<Vec<Call>> {
    let chats = state.store.chats.ids_of_member(user).await?;
    Ok(state.store.calls.in_chats(&chats, before, limit).await?)
}

/// STUN and TURN servers, with TURN REST credentials minted for this user; only for users
/// who joined a live call of a chat they are still in (`call:join` hands them out too).
pub async fn ice_servers(state: &AppState, user: ObjectId) -> AppResult<IceServers> {
    let mut entitled = false;
    for chat in state.calls.joined_chats_of(user).await? {
        entitled |= state.store.chats.for_member(chat, user).await?.is_some();
    }
    if !entitled {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotInCall,
            message: "ICE servers are for call participants",
        });
    }
    let config = &state.config;
    let mut servers = Vec::new();
    if !config.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: config.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if let (Some(secret), false) = (&config.turn_secret, config.turn_urls.is_empty()) {
        let secret = TurnSecret::new(secret.expose().as_bytes().to_vec()).map_err(|e| AppError::Internal(e.into()))?;
        let ttl = Duration::from_secs(config.turn_ttl_secs);
        let minted =
            turn_credentials(&secret, &user.to_hex(), unix_now(), ttl).map_err(|e| AppError::Internal(e.into()))?;
        servers.push(IceServer {
            urls: config.turn_urls.clone(),
            username: Some(minted.username),
            credential: Some(minted.credential),
        });
    }
    Ok(IceServers {
        ice_servers: servers,
        ttl: config.turn_ttl_secs,
    })
}

/// Media signaling is for participants who joined the call and may still be in it (its
/// chat's membership, and friendship in a 1:1 chat, are checked on every request); anyone
/// else gets the answer of a call that does not exist.
pub async fn check_in_call(state: &AppState, user: ObjectId, call: ObjectId) -> AppResult<()> {
    let chat = state.calls.joined_chat(call, user).await?.ok_or(AppError::NotFound)?;
    match callable_chat(state, chat, user).await {
        Ok(_) => Ok(()),
        Err(AppError::Forbidden { .. }) => Err(AppError::NotFound),
        Err(e) => Err(e),
    }
}

/// `user` lost their place in `chat`: out of its live call at once.
pub async fn left_chat(state: &AppState, chat: ObjectId, user: ObjectId) -> AppResult<()> {
    state.calls.remove(chat, user).await
}
