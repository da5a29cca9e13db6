//! Groups with admin roles: creation, invitations, membership and admin changes. Each
//! change is decided on a loaded version and applied only if the group is still at it, so
//! rules such as "the last admin cannot leave" hold under concurrent requests.

use mongodb::bson::{self, Document, doc, oid::ObjectId};

use super::notifications::notify;
use crate::domain::chat::{self as rules, GROUP_MEMBERS_MAX};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::chats::Chat;
use crate::store::groups::Group;
use crate::store::notifications::NotificationKind;
use crate::store::tx;
use huddle_signaling::protocol::ErrorCode;
pub use huddle_signaling::protocol::GroupView;
use huddle_signaling::protocol::{GroupMembership, events};

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        let hex = |ids: &[ObjectId]| ids.iter().map(|i| i.to_hex()).collect();
        Self {
            id: g.id.to_hex(),
            name: g.name.clone(),
            about: g.about.clone(),
            members: hex(&g.members),
            admins: hex(&g.admins),
            invited: hex(&g.invited),
            chat_id: g.chat_id.to_hex(),
            created_at: g.created_at.to_chrono(),
            updated_at: g.updated_at.to_chrono(),
        }
    }
}

fn conflict_retry() -> AppError {
    AppError::Conflict("the group changed meanwhile; try again")
}

fn not_admin() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::NotAdmin,
        message: "only group admins can do this",
    }
}

/// The group as a member sees it; non-members get the 404 of a missing group.
async fn as_member(state: &AppState, id: ObjectId, user: ObjectId) -> AppResult<Group> {
    let group = state
        .store
        .groups
        .visible_to(id, user)
        .await?
        .ok_or(AppError::NotFound)?;
    if !group.members.contains(&user) {
        return Err(AppError::NotFound);
    }
    Ok(group)
}

async fn as_admin(state: &AppState, id: ObjectId, user: ObjectId) -> AppResult<Group> {
    let group = as_member(state, id, user).await?;
    if !group.admins.contains(&user) {
        return Err(not_admin());
    }
    Ok(group)
}

/// Any group the caller belongs to or is invited to.
pub async fn visible(state: &AppState, id: ObjectId, user: ObjectId) -> AppResult<Group> {
    state.store.groups.visible_to(id, user).await?.ok_or(AppError::NotFound)
}

/// Applies a membership change to the group and its chat in one transaction.
async fn change_members(
    state: &AppState,
    group: &Group,
    update: Document,
    add: Option<ObjectId>,
    remove: Option<ObjectId>,
) -> AppResult<Group> {
    let store = state.store.clone();
    let (id, version, chat) = (group.id, group.version, group.chat_id);
    let changed = tx::transaction(&state.store.client, |s| {
        let (store, update) = (store.clone(), update.clone());
        Box::pin(async move {
            let Some(group) = store.groups.update_at(id, version, update, Some(&mut *s)).await? else {
                return Ok(None);
            };
            if let Some(user) = add {
                store.chats.add_participant(chat, user, s).await?;
            }
            if let Some(user) = remove {
                store.chats.remove_participant(chat, user, s).await?;
            }
            Ok(Some(group))
        })
    })
    .await?;
    changed.ok_or_else(conflict_retry)
}

pub async fn create(
    state: &AppState,
    creator: ObjectId,
    name: &str,
    about: &str,
    invite: Vec<ObjectId>,
) -> AppResult<Group> {
    let name = rules::normalize_group_name(name).map_err(|e| AppError::bad_request(e.to_string()))?;
    let about = crate::domain::user::check_about(about).map_err(|e| AppError::bad_request(e.to_string()))?;
    let mut invite = invite;
    invite.sort_by_key(|id| id.bytes());
    invite.dedup();
    invite.retain(|id| *id != creator);
    if invite.len() >= GROUP_MEMBERS_MAX {
        return Err(AppError::bad_request("members: too many"));
    }
    // Check every invitee before anything is written, so a bad id creates no group.
    for user in &invite {
        if !state.store.users.by_id(*user).await?.is_some_and(|u| u.email_verified) {
            return Err(AppError::bad_request(format!(
                "members: no such user {}",
                user.to_hex()
            )));
        }
    }
    let now = bson::DateTime::now();
    let chat = Chat {
        id: ObjectId::new(),
        is_group: true,
        name: Some(name.clone()),
        participants: vec![creator],
        group_id: None,
        direct_key: None,
        last_seq: 0,
        pinned_by: Vec::new(),
        reads: Document::new(),
        created_at: now,
        updated_at: now,
    };
    let group = Group {
        id: ObjectId::new(),
        name,
        about,
        members: vec![creator],
        admins: vec![creator],
        invited: Vec::new(),
        chat_id: chat.id,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    let chat = Chat {
        group_id: Some(group.id),
        ..chat
    };
    let store = state.store.clone();
    tx::transaction(&state.store.client, |s| {
        let (store, chat, group) = (store.clone(), chat.clone(), group.clone());
        Box::pin(async move {
            store.chats.insert(&chat, Some(&mut *s)).await?;
            store.groups.insert(&group, s).await
        })
    })
    .await?;
    state.realtime.join_chat(creator, chat.id).await;
    let mut group = group;
    for user in invite {
        group = self::invite(state, creator, group.id, user).await?;
    }
    Ok(group)
}

pub async fn update(
    state: &AppState,
    admin: ObjectId,
    id: ObjectId,
    name: Option<String>,
    about: Option<String>,
) -> AppResult<Group> {
    let group = as_admin(state, id, admin).await?;
    let mut set = Document::new();
    if let Some(name) = name {
        set.insert(
            "name",
            rules::normalize_group_name(&name).map_err(|e| AppError::bad_request(e.to_string()))?,
        );
    }
    if let Some(about) = about {
        set.insert(
            "about",
            crate::domain::user::check_about(&about).map_err(|e| AppError::bad_request(e.to_string()))?,
        );
    }
    let new_name = set.get_str("name").ok().map(str::to_string);
    let store = state.store.clone();
    let (version, chat) = (group.version, group.chat_id);
    let updated = tx::transaction(&state.store.client, |s| {
        let (store, set, new_name) = (store.clone(), set.clone(), new_name.clone());
        Box::pin(async move {
            let Some(group) = store
                .groups
                .update_at(id, version, doc! { "$set": set }, Some(&mut *s))
                .await?
            else {
                return Ok(None);
            };
            if let Some(name) = new_name {
                store.chats.rename(chat, &name, s).await?;
            }
            Ok(Some(group))
        })
    })
    .await?
    .ok_or_else(conflict_retry)?;
    state
        .realtime
        .to_chat(updated.chat_id, events::GROUP_UPDATED, &GroupView::from(&updated))
        .await;
    Ok(updated)
}

/// An admin invites a verified user; they join when they accept.
pub async fn invite(state: &AppState, admin: ObjectId, id: ObjectId, user: ObjectId) -> AppResult<Group> {
    let group = as_admin(state, id, admin).await?;
    if group.members.contains(&user) || group.invited.contains(&user) {
        return Err(AppError::Conflict("already a member or invited"));
    }
    if group.members.len() + group.invited.len() >= GROUP_MEMBERS_MAX {
        return Err(AppError::Conflict("the group is full"));
    }
    if !state.store.users.by_id(user).await?.is_some_and(|u| u.email_verified) {
        return Err(AppError::NotFound);
    }
    let updated = state
        .store
        .groups
        .update_at(id, group.version, doc! { "$addToSet": { "invited": user } }, None)
        .await?
        .ok_or_else(conflict_retry)?;
    let view = GroupView::from(&updated);
    state.realtime.to_user(user, events::GROUP_INVITED, &view).await;
    notify(
        state,
        user,
        NotificationKind::GroupInvite,
        format!("invited you to {}", updated.name),
        updated.id,
    )
    .await;
    Ok(updated)
}

fn membership_event(group: &Group, user: ObjectId) -> GroupMembership {
    GroupMembership {
        group_id: group.id.to_hex(),
        chat_id: group.chat_id.to_hex(),
        user_id: user.to_hex(),
    }
}

/// The invited user joins: they enter the group and its chat.
pub async fn accept(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Group> {
    let group = visible(state, id, user).await?;
    if !group.invited.contains(&user) {
        return Err(AppError::NotFound);
    }
    let update = doc! { "$pull": { "invited": user }, "$addToSet": { "members": user } };
    let joined = change_members(state, &group, update, Some(user), None).await?;
    state.realtime.join_chat(user, joined.chat_id).await;
    state
        .realtime
        .to_chat(
            joined.chat_id,
            events::GROUP_MEMBER_ADDED,
            &membership_event(&joined, user),
        )
        .await;
    Ok(joined)
}

pub async fn reject(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Group> {
    let group = visible(state, id, user).await?;
    if !group.invited.contains(&user) {
        return Err(AppError::NotFound);
    }
    state
        .store
        .groups
        .update_at(id, group.version, doc! { "$pull": { "invited": user } }, None)
        .await?
        .ok_or_else(conflict_retry)
}

/// Takes `user` out of the group and its chat; their sockets leave the chat room before
/// anyone is told, so they hear nothing more of it.
async fn drop_member(state: &AppState, group: &Group, user: ObjectId) -> AppResult<Group> {
    let update = doc! { "$pull": { "members": user, "admins": user } };
    let changed = change_members(state, group, update, None, Some(user)).await?;
    state.realtime.leave_chat(user, changed.chat_id).await;
    super::calls::left_chat(state, changed.chat_id, user).await?;
    let event = membership_event(&changed, user);
    state
        .realtime
        .to_chat(changed.chat_id, events::GROUP_MEMBER_REMOVED, &event)
        .await;
    state.realtime.to_user(user, events::GROUP_MEMBER_REMOVED, &event).await;
    Ok(changed)
}

/// A member leaves. The last admin must hand over first while others remain.
pub async fn leave(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Group> {
    let group = as_member(state, id, user).await?;
    if group.admins == [user] && group.members.len() > 1 {
        return Err(AppError::Conflict(
            "the last admin cannot leave: promote another member first",
        ));
    }
    drop_member(state, &group, user).await
}

/// An admin removes another member.
pub async fn remove(state: &AppState, admin: ObjectId, id: ObjectId, user: ObjectId) -> AppResult<Group> {
    let group = as_admin(state, id, admin).await?;
    if user == admin {
        return Err(AppError::bad_request("userId: use leave to remove yourself"));
    }
    if !group.members.contains(&user) {
        return Err(AppError::NotFound);
    }
    drop_member(state, &group, user).await
}

/// Promotes a member to admin, or demotes an admin (never the last one).
pub async fn set_admin(
    state: &AppState,
    admin: ObjectId,
    id: ObjectId,
    user: ObjectId,
    promote: bool,
) -> AppResult<Group> {
    let group = as_admin(state, id, admin).await?;
    if !group.members.contains(&user) {
        return Err(AppError::NotFound);
    }
    let update = if promote {
        doc! { "$addToSet": { "admins": user } }
    } else {
        if !group.admins.contains(&user) {
            return Err(AppError::NotFound);
        }
        if group.admins.len() == 1 {
            return Err(AppError::Conflict("a group needs at least one admin"));
        }
        doc! { "$pull": { "admins": user } }
    };
    let updated = state
        .store
        .groups
        .update_at(id, group.version, update, None)
        .await?
        .ok_or_else(conflict_retry)?;
    state
        .realtime
        .to_chat(updated.chat_id, events::GROUP_UPDATED, &GroupView::from(&updated))
        .await;
    Ok(updated)
}
