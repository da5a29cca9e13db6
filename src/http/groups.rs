//! `/api/v1/groups`: group chats with admin roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser, parse_id};
use crate::error::{AppResult, ErrorBody};
use crate::service::groups::{self, GroupView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_group, update))
        .routes(routes!(invite))
        .routes(routes!(accept))
        .routes(routes!(reject))
        .routes(routes!(leave))
        .routes(routes!(remove_member))
        .routes(routes!(promote, demote))
}

type Reply = AppResult<axum::Json<GroupView>>;

fn reply(group: crate::store::groups::Group) -> Reply {
    Ok(axum::Json(GroupView::from(&group)))
}

#[derive(Serialize, ToSchema)]
pub struct GroupList {
    data: Vec<GroupView>,
}

/// Groups the caller is in or invited to.
#[utoipa::path(get, path = "/", tag = "groups", security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<GroupList>> {
    let groups = state.store.groups.of_member(auth.id).await?;
    Ok(axum::Json(GroupList {
        data: groups.iter().map(GroupView::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    name: String,
    #[serde(default)]
    about: String,
    /// Users to invite right away.
    #[serde(default)]
    members: Vec<String>,
}

/// Creates a group; the creator is its first admin.
#[utoipa::path(post, path = "/", tag = "groups", request_body = CreateGroup, security(("bearer" = [])),
    responses((status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateGroup>,
) -> AppResult<(StatusCode, axum::Json<GroupView>)> {
    let invite = req.members.iter().map(|m| parse_id(m)).collect::<AppResult<Vec<_>>>()?;
    let group = groups::create(&state, auth.id, &req.name, &req.about, invite).await?;
    Ok((StatusCode::CREATED, axum::Json(GroupView::from(&group))))
}

/// One group, for its members and invitees.
#[utoipa::path(get, path = "/{id}", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_group(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Reply {
    reply(groups::visible(&state, parse_id(&id)?, auth.id).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGroup {
    name: Option<String>,
    about: Option<String>,
}

/// Renames the group or changes its about text (admins).
#[utoipa::path(patch, path = "/{id}", tag = "groups", params(("id" = String, Path)), request_body = UpdateGroup, security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateGroup>,
) -> Reply {
    reply(groups::update(&state, auth.id, parse_id(&id)?, req.name, req.about).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invite {
    user_id: String,
}

/// Invites a user (admins).
#[utoipa::path(post, path = "/{id}/invite", tag = "groups", params(("id" = String, Path)), request_body = Invite, security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Invite>,
) -> Reply {
    reply(groups::invite(&state, auth.id, parse_id(&id)?, parse_id(&req.user_id)?).await?)
}

/// Accepts the caller's invitation.
#[utoipa::path(post, path = "/{id}/accept", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn accept(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Reply {
    reply(groups::accept(&state, auth.id, parse_id(&id)?).await?)
}

/// Declines the caller's invitation.
#[utoipa::path(post, path = "/{id}/reject", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reject(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Reply {
    reply(groups::reject(&state, auth.id, parse_id(&id)?).await?)
}

/// Leaves the group; the last admin must promote someone first.
#[utoipa::path(post, path = "/{id}/leave", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn leave(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Reply {
    reply(groups::leave(&state, auth.id, parse_id(&id)?).await?)
}

/// Removes a member (admins).
#[utoipa::path(delete, path = "/{id}/members/{user_id}", tag = "groups", params(("id" = String, Path), ("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
) -> Reply {
    reply(groups::remove(&state, auth.id, parse_id(&id)?, parse_id(&user_id)?).await?)
}

/// Makes a member an admin (admins).
#[utoipa::path(post, path = "/{id}/admins/{user_id}", tag = "groups", params(("id" = String, Path), ("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn promote(State(state): State<AppState>, auth: AuthUser, Path((id, user_id)): Path<(String, String)>) -> Reply {
    reply(groups::set_admin(&state, auth.id, parse_id(&id)?, parse_id(&user_id)?, true).await?)
}

/// Takes admin rights away (admins; never from the last admin).
#[utoipa::path(delete, path = "/{id}/admins/{user_id}", tag = "groups", params(("id" = String, Path), ("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn demote(State(state): State<AppState>, auth: AuthUser, Path((id, user_id)): Path<(String, String)>) -> Reply {
    reply(groups::set_admin(&state, auth.id, parse_id(&id)?, parse_id(&user_id)?, false).await?)
}
