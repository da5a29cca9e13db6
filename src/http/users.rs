//! `/api/v1/users`: the caller's profile, other users' public profiles, and search.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser, page_limit, parse_id};
use crate::domain::user as rules;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::state::AppState;
use crate::store::is_duplicate_key;
use crate::store::users::{Presence, ProfilePatch, User};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(search))
        .routes(routes!(non_friends))
        .routes(routes!(by_id))
}

/// A user as clients see it. Password, code and reset fields never appear; `email` only
/// in the caller's own profile.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[serde(rename = "_id")]
    id: String,
    first_name: String,
    last_name: String,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
    about: String,
    email_verified: bool,
    /// `online` or `offline`.
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserView {
    /// The caller's own view, with email.
    pub fn private(user: &User) -> Self {
        let mut view = Self::public(user);
        view.email = Some(user.email.clone());
        view
    }

    pub fn public(user: &User) -> Self {
        Self {
            id: user.id.to_hex(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            username: user.username.clone(),
            email: None,
            avatar_url: user.avatar_url.clone(),
            about: user.about.clone(),
            email_verified: user.email_verified,
            status: match user.status {
                Presence::Online => "online",
                Presence::Offline => "offline",
            }
            .into(),
            created_at: user.created_at.to_chrono(),
            updated_at: user.updated_at.to_chrono(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMe {
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    about: Option<String>,
    /// The id of an avatar the caller uploaded (`kind: avatar`); sets `avatarUrl`.
    avatar: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Prefix of a username, first or last name (1-64 characters).
    q: String,
    /// Page size, 1-50 (default 20).
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    data: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

async fn load(state: &AppState, id: mongodb::bson::oid::ObjectId) -> AppResult<User> {
    state.store.users.by_id(id).await?.ok_or(AppError::NotFound)
}

/// The caller's profile.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, auth: AuthUser) -> AppResult<axum::Json<UserView>> {
    Ok(axum::Json(UserView::private(&load(&state, auth.id).await?)))
}

/// Change names, username, about text or avatar.
#[utoipa::path(patch, path = "/me", tag = "users", request_body = UpdateMe, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Username taken")))]
async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<UpdateMe>,
) -> AppResult<axum::Json<UserView>> {
    let bad = |e: rules::RuleError| AppError::bad_request(e.to_string());
    let patch = ProfilePatch {
        first_name: req
            .first_name
            .map(|v| rules::normalize_name("firstName", &v))
            .transpose()
            .map_err(bad)?,
        last_name: req
            .last_name
            .map(|v| rules::normalize_name("lastName", &v))
            .transpose()
            .map_err(bad)?,
        username: req
            .username
            .map(|v| rules::normalize_username(&v))
            .transpose()
            .map_err(bad)?,
        about: req.about.map(|v| rules::check_about(&v)).transpose().map_err(bad)?,
        avatar_url: match req.avatar {
            Some(id) => Some(crate::service::media::avatar_url(&state, auth.id, parse_id(&id)?).await?),
            None => None,
        },
    };
    match state.store.users.update_profile(auth.id, patch).await {
        Ok(Some(user)) => Ok(axum::Json(UserView::private(&user))),
        Ok(None) => Err(AppError::NotFound),
        Err(e) if is_duplicate_key(&e) => Err(AppError::Conflict("username is taken")),
        Err(e) => Err(e.into()),
    }
}

/// Another user's public profile.
#[utoipa::path(get, path = "/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (24 hex characters)")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn by_id(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<UserView>> {
    let user = load(&state, parse_id(&id)?).await?;
    if !user.email_verified {
        return Err(AppError::NotFound);
    }
    Ok(axum::Json(UserView::public(&user)))
}

/// Find users by the start of their username or names.
#[utoipa::path(get, path = "/search", tag = "users", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> AppResult<axum::Json<UserPage>> {
    let q = query.q.trim();
    if q.is_empty() || q.chars().count() > 64 {
        return Err(AppError::bad_request("q: must be 1-64 characters"));
    }
    let (limit, cursor) = user_page(query.limit, query.cursor.as_deref())?;
    let users = state
        .store
        .users
        .search(Some(q), &[auth.id], cursor.as_deref(), limit + 1)
        .await?;
    Ok(axum::Json(UserPage::new(users, limit)))
}

/// Validates a page size and username cursor.
fn user_page(limit: Option<i64>, cursor: Option<&str>) -> AppResult<(i64, Option<String>)> {
    let limit = page_limit(limit, 20, 50)?;
    let cursor = cursor
        .map(rules::normalize_username)
        .transpose()
        .map_err(|_| AppError::bad_request("cursor: invalid"))?;
    Ok((limit, cursor))
}

impl UserPage {
    /// One page from `limit + 1` users fetched: the extra one only says there is more.
    fn new(mut users: Vec<User>, limit: i64) -> Self {
        let next_cursor = if users.len() as i64 > limit {
            users.truncate(limit as usize);
            users.last().map(|u| u.username.clone())
        } else {
            None
        };
        Self {
            data: users.iter().map(UserView::public).collect(),
            next_cursor,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-50 (default 20).
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// Verified users who are not the caller's friends (people to invite), by username.
#[utoipa::path(get, path = "/non-friends", tag = "users", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn non_friends(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<UserPage>> {
    let (limit, cursor) = user_page(query.limit, query.cursor.as_deref())?;
    let mut exclude = state.store.friends.friend_ids(auth.id).await?;
    exclude.push(auth.id);
    let users = state
        .store
        .users
        .search(None, &exclude, cursor.as_deref(), limit + 1)
        .await?;
    Ok(axum::Json(UserPage::new(users, limit)))
}
