//! `/api/v1/auth`: registration with email verification, sign-in, refresh-token rotation,
//! sign-out and password recovery.
//!
//! Unknown and known emails get the same status and body everywhere (no enumeration); mail
//! goes out in the background so timing does not tell them apart either.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::auth::device::{DEVICE_COOKIE, DEVICE_TTL_DAYS};
use huddle_signaling::protocol::ErrorCode;
use mongodb::bson::{DateTime, oid::ObjectId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser, ClientIp, OptionalJson, bearer_of};
use super::users::UserView;
use crate::auth::otp;
use crate::auth::tokens;
use crate::domain::user as rules;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::mail::templates;
use crate::state::AppState;
use crate::store::otps::Otp;
use crate::store::sessions::{Rotation, Session};
use crate::store::users::{Presence, ProfilePatch, User};
use crate::store::{OtpPurpose, is_duplicate_key, tx};

pub const REFRESH_COOKIE: &str = "huddle_refresh";
const COOKIE_PATH: &str = "/api/v1/auth";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify))
        .routes(routes!(send_otp))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    first_name: String,
    last_name: String,
    username: String,
    email: String,
    password: String,
    password_confirm: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    email: String,
    otp: String,
    /// The password chosen at registration: proves the verifier is the registrant, so a
    /// code alone never activates an account someone else pre-registered.
    password: String,
    /// Also return the refresh token in the body (non-browser clients).
    #[serde(default)]
    include_refresh_token: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailRequest {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
    /// Also return the refresh token in the body (non-browser clients).
    #[serde(default)]
    include_refresh_token: bool,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token, for clients that do not keep the cookie. When given here, the
    /// rotated token comes back in the body too.
    refresh_token: Option<String>,
    /// Which session's cookie to use (`sessionId` of the sign-in): a browser keeps one
    /// `HttpOnly` cookie per session, so each tab can be signed in on its own. Without
    /// it, the cookie of the browser's latest sign-in is used.
    session_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPasswordRequest {
    email: String,
    otp: String,
    password: String,
    password_confirm: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    password: String,
    password_confirm: String,
    #[serde(default)]
    include_refresh_token: bool,
}

/// The answer to a signed-in client: a short-lived access token and the user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    user: UserView,
    /// The session these tokens belong to; pass it to `refresh` and `logout` to use this
    /// session's cookie.
    session_id: String,
    /// Present only when asked for; browsers get it as an `HttpOnly` cookie instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    message: &'static str,
}

const CHECK_EMAIL: &str = "If the address can receive a code, one is on its way. Check your email.";
const INVALID_CODE: &str = "invalid or expired code (or, when verifying, wrong password)";

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(Accepted { message: CHECK_EMAIL })).into_response()
}

fn invalid_code() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::InvalidCode,
        message: INVALID_CODE,
    }
}

fn rule_error(e: rules::RuleError) -> AppError {
    AppError::bad_request(e.to_string())
}

/// Counts an attempt against the caller's IP and, when known, the target account. From one
/// of the account's trusted devices (`device`), the attempt counts against that device
/// instead of the account, so others' failures never lock the owner out of it.
async fn limit(
    state: &AppState,
    scope: &str,
    ip: IpAddr,
    account: Option<&str>,
    device: Option<&str>,
) -> AppResult<()> {
    let now = Instant::now();
    let cfg = &state.config;
    let too_many = |retry_after: Duration| AppError::TooManyRequests { retry_after };
    state
        .limiter
        .hit(&format!("{scope}:ip:{ip}"), cfg.rate_limit_per_ip, now)
        .await
        .map_err(too_many)?;
    if let Some(device) = device.filter(|_| account.is_some()) {
        return state
            .limiter
            .hit(&format!("{scope}:device:{device}"), cfg.rate_limit_per_account, now)
            .await
            .map_err(too_many);
    }
    if let Some(account) = account {
        // The tight limit is per account *and* address, so nobody can lock an account from
        // elsewhere with a handful of tries; the per-account ceiling, ten times higher,
        // still stops a guessing campaign spread over many addresses.
        state
            .limiter
            .hit(
                &format!("{scope}:account:{account}:{ip}"),
                cfg.rate_limit_per_account,
                now,
            )
            .await
            .map_err(too_many)?;
        state
            .limiter
            .hit(
                &format!("{scope}:account:{account}"),
                cfg.rate_limit_per_account.saturating_mul(10),
                now,
            )
            .await
            .map_err(too_many)?;
    }
    Ok(())
}

/// Lowercases and trims an email for lookups without rejecting odd shapes, so a malformed
/// address behaves like an unknown one.
fn lookup_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn new_code(state: &AppState, user: ObjectId, purpose: OtpPurpose) -> (Otp, String) {
    let code = otp::generate();
    let now = DateTime::now();
    let ttl = state.config.otp_ttl();
    let record = Otp {
        id: ObjectId::new(),
        user_id: user,
        purpose,
        code_hash: state.otp_key.hash(&user.to_hex(), purpose, &code),
        attempts: 0,
        created_at: now,
        expires_at: DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64),
    };
    (record, code)
}

fn ttl_minutes(state: &AppState) -> u64 {
    state.config.otp_ttl_secs.div_ceil(60)
}

/// The device id when the request carries a device cookie this server issued for the
/// account of `email` (already normalized).
fn trusted_device(state: &AppState, jar: &CookieJar, email: &str) -> Option<String> {
    let cookie = jar.get(DEVICE_COOKIE)?;
    state.device_key.trusted(cookie.value(), email)
}

fn device_cookie(state: &AppState, email: &str) -> Cookie<'static> {
    auth_cookie(
        state,
        DEVICE_COOKIE,
        state.device_key.issue(email),
        time::Duration::days(DEVICE_TTL_DAYS),
    )
}

/// Every cookie the auth routes set: `HttpOnly`, `SameSite=Strict`, scoped to them.
fn auth_cookie(state: &AppState, name: &str, value: String, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build((name.to_string(), value))
        .http_only(true)
        .secure(state.config.cookie_secure)
        .same_site(SameSite::Strict)
        .path(COOKIE_PATH)
        .max_age(max_age)
        .build()
}

/// The cost of a code check for an address with no account: the same database round trips
/// as counting a guess and an attempt (against an id derived from the address), so the
/// answer comes no sooner than for a known address.
async fn check_no_code(state: &AppState, email: &str, purpose: OtpPurpose) -> AppError {
    let mut nobody = [0u8; 12];
    let _ = hex::decode_to_slice(&state.otp_key.hash(email, purpose, "")[..24], &mut nobody);
    let nobody = ObjectId::from_bytes(nobody);
    let checked = async {
        state.store.otps.take_guess(nobody, purpose).await?;
        state.store.otps.take_attempt(nobody, purpose).await
    };
    match checked.await {
        Ok(_) => invalid_code(),
        Err(e) => e.into(),
    }
}

/// Checks a presented code: attempts are counted first (the code's own, and for untrusted
/// clients the account's daily guesses), then the keyed hash compared.
async fn check_code(state: &AppState, user: &User, purpose: OtpPurpose, code: &str, trusted: bool) -> AppResult<Otp> {
    if !trusted && !state.store.otps.take_guess(user.id, purpose).await? {
        return Err(invalid_code());
    }
    let Some(stored) = state.store.otps.take_attempt(user.id, purpose).await? else {
        return Err(invalid_code());
    };
    if !otp::well_formed(code)
        || !state
            .otp_key
            .matches(&user.id.to_hex(), purpose, code, &stored.code_hash)
    {
        return Err(invalid_code());
    }
    Ok(stored)
}

/// A new session (refresh-token family) and its first tokens.
struct Issued {
    session: Session,
    refresh: String,
    access: String,
}

fn new_session(state: &AppState, user: ObjectId) -> AppResult<Issued> {
    let id = ObjectId::new();
    let refresh = tokens::new_refresh(id);
    let now = DateTime::now();
    let ttl = state.config.refresh_token_ttl();
    let session = Session {
        id,
        user_id: user,
        token_hash: refresh.hash,
        spent_hashes: Vec::new(),
        created_at: now,
        last_used_at: now,
        expires_at: DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64),
        revoked_at: None,
        revoked_reason: None,
    };
    let access = state.tokens.issue_access(user, id)?;
    Ok(Issued {
        session,
        refresh: refresh.token,
        access,
    })
}

/// The cookie that holds one session's refresh token.
fn session_cookie(session: ObjectId) -> String {
    format!("{REFRESH_COOKIE}_{}", session.to_hex())
}

fn refresh_cookie(state: &AppState, name: &str, token: String, expires_at: DateTime) -> Cookie<'static> {
    let remaining = (expires_at.timestamp_millis() - DateTime::now().timestamp_millis()).max(0) / 1000;
    auth_cookie(state, name, token, time::Duration::seconds(remaining))
}

fn removal_cookie(state: &AppState, name: &str) -> Cookie<'static> {
    auth_cookie(state, name, String::new(), time::Duration::ZERO)
}

fn signed_in(state: &AppState, jar: CookieJar, user: &User, issued: Issued, in_body: bool) -> Response {
    let body = AuthResponse {
        access_token: issued.access,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl().as_secs(),
        user: UserView::private(user),
        session_id: issued.session.id.to_hex(),
        refresh_token: in_body.then(|| issued.refresh.clone()),
    };
    let jar = jar
        .add(refresh_cookie(
            state,
            &session_cookie(issued.session.id),
            issued.refresh.clone(),
            issued.session.expires_at,
        ))
        .add(refresh_cookie(
            state,
            REFRESH_COOKIE,
            issued.refresh,
            issued.session.expires_at,
        ))
        .add(device_cookie(state, &user.email));
    (jar, axum::Json(body)).into_response()
}

/// Cookie-carried refresh tokens are only honoured from allowed origins (CSRF defence on top
/// of `SameSite=Strict`).
fn check_origin(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    // The server's own pages (the web client it serves) are same-origin: the origin's
    // host is the one the request was sent to.
    let same_origin = |origin: &str| {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        host.is_some() && authority == host
    };
    match headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or("")) {
        Some(origin) if !state.config.cors_origins.iter().any(|allowed| allowed == origin) && !same_origin(origin) => {
            Err(AppError::Forbidden {
                code: ErrorCode::OriginNotAllowed,
                message: "this origin may not use the session cookie",
            })
        }
        _ => Ok(()),
    }
}

/// Create an account; a verification code is emailed.
#[utoipa::path(post, path = "/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 202, body = Accepted, description = "Same answer whether or not the email already has an account"),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "Username taken"),
              (status = 429, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    limit(&state, "register", ip.0, None, None).await?;
    let first_name = rules::normalize_name("firstName", &req.first_name).map_err(rule_error)?;
    let last_name = rules::normalize_name("lastName", &req.last_name).map_err(rule_error)?;
    let username = rules::normalize_username(&req.username).map_err(rule_error)?;
    let email = rules::normalize_email(&req.email).map_err(rule_error)?;
    rules::check_new_password(&req.password, &req.password_confirm).map_err(rule_error)?;

    // Hash first, whoever the email belongs to, so both paths cost the same.
    let hash = state.passwords.hash(req.password).await?;
    // Usernames are public, so a taken one may say so; it is checked before the email so
    // the answer never depends on whether the email has an account.
    if state.store.users.username_taken(&username).await? {
        return Err(AppError::Conflict("username is taken"));
    }
    if let Some(existing) = state.store.users.by_email(&email).await? {
        let pending = ProfilePatch {
            first_name: Some(first_name),
            last_name: Some(last_name),
            username: Some(username),
            about: None,
            avatar_url: None,
        };
        existing_address(&state, &existing, pending, &hash).await?;
        return Ok(accepted());
    }
    let now = DateTime::now();
    let user = User {
        id: ObjectId::new(),
        first_name,
        last_name,
        username,
        email,
        password: hash,
        password_changed_at: None,
        avatar_url: None,
        about: String::new(),
        email_verified: false,
        status: Presence::Offline,
        friends: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    let (record, code) = new_code(&state, user.id, OtpPurpose::VerifyEmail);
    let store = state.store.clone();
    let created = tx::transaction(&state.store.client, |s| {
        let (store, user, record) = (store.clone(), user.clone(), record.clone());
        Box::pin(async move {
            store.users.insert(&user, s).await?;
            store.otps.replace(&record, Some(s)).await
        })
    })
    .await;
    match created {
        Ok(()) => {}
        Err(e) if is_duplicate_key(&e) => {
            // Lost a race: either the email (answer as for a known one) or the username.
            if let Some(existing) = state.store.users.by_email(&user.email).await?
                && existing.email_verified
            {
                state
                    .mailer
                    .dispatch(templates::already_registered(&existing.email, &existing.first_name));
                return Ok(accepted());
            }
            return Err(AppError::Conflict("username is taken"));
        }
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("huddle_accounts_registered_total").increment(1);
    state.mailer.dispatch(templates::verify_email(
        &user.email,
        &user.first_name,
        &code,
        ttl_minutes(&state),
    ));
    Ok(accepted())
}

/// A second registration for an existing address. Verified: the owner gets a notice.
/// Unverified: the newest registration replaces the pending profile and password and a new
/// code goes out, so whoever pre-registered someone else's address loses their password
/// (and `verify` asks for the password, so a code alone activates nothing).
async fn existing_address(state: &AppState, user: &User, pending: ProfilePatch, hash: &str) -> AppResult<()> {
    if user.email_verified {
        let username = pending.username.as_deref().unwrap_or_default();
        match state.store.users.hold_username(&user.email, username).await {
            Ok(()) => {}
            Err(e) if is_duplicate_key(&e) => return Err(AppError::Conflict("username is taken")),
            Err(e) => return Err(e.into()),
        }
        state
            .mailer
            .dispatch(templates::already_registered(&user.email, &user.first_name));
        return Ok(());
    }
    match state.store.users.replace_pending(user.id, pending, hash).await {
        Ok(Some(updated)) => send_code(state, &updated, OtpPurpose::VerifyEmail).await,
        // Verified meanwhile: nothing to replace.
        Ok(None) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Err(AppError::Conflict("username is taken")),
        Err(e) => Err(e.into()),
    }
}

async fn send_code(state: &AppState, user: &User, purpose: OtpPurpose) -> AppResult<()> {
    let (record, code) = new_code(state, user.id, purpose);
    state.store.otps.replace(&record, None).await?;
    let minutes = ttl_minutes(state);
    let mail = match purpose {
        OtpPurpose::VerifyEmail => templates::verify_email(&user.email, &user.first_name, &code, minutes),
        OtpPurpose::ResetPassword => templates::reset_password(&user.email, &user.first_name, &code, minutes),
    };
    state.mailer.dispatch(mail);
    Ok(())
}

/// Verify the email with the emailed code; signs the user in.
#[utoipa::path(post, path = "/verify", tag = "auth", request_body = VerifyRequest,
    responses((status = 200, body = AuthResponse), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "Invalid, expired, used or exhausted code"),
              (status = 429, body = ErrorBody)))]
async fn verify(
    State(state): State<AppState>,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> AppResult<Response> {
    let email = lookup_email(&req.email);
    let device = trusted_device(&state, &jar, &email);
    limit(&state, "otp", ip.0, Some(&email), device.as_deref()).await?;
    let user = state.store.users.by_email(&email).await?;
    let Some(user) = user.filter(|u| !u.email_verified) else {
        return Err(check_no_code(&state, &email, OtpPurpose::VerifyEmail).await);
    };
    let code = check_code(&state, &user, OtpPurpose::VerifyEmail, &req.otp, device.is_some()).await?;
    if !state
        .passwords
        .verify(req.password, Some(user.password.clone()))
        .await?
    {
        return Err(invalid_code());
    }
    let issued = new_session(&state, user.id)?;
    let (store, user_id, code_id) = (state.store.clone(), user.id, code.id);
    let consumed = tx::transaction(&state.store.client, |s| {
        let (store, session) = (store.clone(), issued.session.clone());
        Box::pin(async move {
            if !store.otps.consume(code_id, s).await? {
                return Ok(false);
            }
            store.users.mark_verified(user_id, s).await?;
            store.sessions.insert(&session, Some(s)).await?;
            Ok(true)
        })
    })
    .await?;
    if !consumed {
        return Err(invalid_code());
    }
    let mut user = user;
    user.email_verified = true;
    Ok(signed_in(&state, jar, &user, issued, req.include_refresh_token))
}

/// Send a new verification code to an unverified account.
#[utoipa::path(post, path = "/send-otp", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = 429, body = ErrorBody)))]
async fn send_otp(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<EmailRequest>,
) -> AppResult<Response> {
    let email = lookup_email(&req.email);
    limit(&state, "otp-send", ip.0, Some(&email), None).await?;
    if let Some(user) = state.store.users.by_email(&email).await?
        && !user.email_verified
    {
        send_code(&state, &user, OtpPurpose::VerifyEmail).await?;
    }
    Ok(accepted())
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody, description = "Wrong email or password, alike"),
              (status = 403, body = ErrorBody, description = "Right password, email not verified yet"),
              (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    let email = lookup_email(&req.email);
    let device = trusted_device(&state, &jar, &email);
    limit(&state, "login", ip.0, Some(&email), device.as_deref()).await?;
    let user = state.store.users.by_email(&email).await?;
    let ok = state
        .passwords
        .verify(req.password, user.as_ref().map(|u| u.password.clone()))
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        metrics::counter!("huddle_logins_total", "result" => "failed").increment(1);
        return Err(AppError::Unauthorized("invalid email or password"));
    };
    if !user.email_verified {
        return Err(AppError::Forbidden {
            code: ErrorCode::EmailNotVerified,
            message: "verify your email first",
        });
    }
    let issued = new_session(&state, user.id)?;
    state.store.sessions.insert(&issued.session, None).await?;
    metrics::counter!("huddle_logins_total", "result" => "ok").increment(1);
    Ok(signed_in(&state, jar, &user, issued, req.include_refresh_token))
}

/// Where a presented refresh token came from: the body (`true`), or the cookie of the
/// named session, or the browser's latest.
fn presented_refresh<'a>(body: &'a RefreshRequest, jar: &'a CookieJar) -> Option<(&'a str, bool)> {
    if let Some(token) = &body.refresh_token {
        return Some((token.as_str(), true));
    }
    let name = match body.session_id.as_deref() {
        Some(id) => session_cookie(ObjectId::parse_str(id).ok()?),
        None => REFRESH_COOKIE.to_string(),
    };
    jar.get(&name).map(|c| (c.value(), false))
}

/// Exchange a refresh token (cookie or body) for new tokens. The old one is spent; using it
/// again revokes the whole session.
#[utoipa::path(post, path = "/refresh", tag = "auth", request_body(content = RefreshRequest, description = "Optional: without it the cookie is used"),
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> AppResult<Response> {
    limit(&state, "refresh", ip.0, None, None).await?;
    let Some((token, in_body)) = presented_refresh(&req, &jar) else {
        return Err(AppError::Unauthorized("missing refresh token"));
    };
    if !in_body {
        check_origin(&state, &headers)?;
    }
    let Some((family, hash)) = tokens::parse_refresh(token) else {
        return Err(AppError::Unauthorized("invalid refresh token"));
    };
    let fresh = tokens::new_refresh(family);
    let session = match state.store.sessions.rotate(family, &hash, &fresh.hash).await? {
        Rotation::Rotated(session) => session,
        Rotation::ReuseDetected => {
            tracing::warn!(session = %family, "refresh token reuse: session revoked");
            metrics::counter!("huddle_refresh_reuse_total").increment(1);
            return Err(AppError::Unauthorized("refresh token reused; session revoked"));
        }
        Rotation::Invalid => return Err(AppError::Unauthorized("invalid refresh token")),
    };
    let Some(user) = state.store.users.by_id(session.user_id).await? else {
        return Err(AppError::Unauthorized("invalid refresh token"));
    };
    let access = state.tokens.issue_access(user.id, session.id)?;
    let issued = Issued {
        session,
        refresh: fresh.token,
        access,
    };
    Ok(signed_in(&state, jar, &user, issued, in_body))
}

/// End this session: by access token, or by refresh token (cookie or body). Idempotent.
#[utoipa::path(post, path = "/logout", tag = "auth", request_body(content = RefreshRequest, description = "Optional"),
    responses((status = 204, description = "Signed out; the cookie is cleared"), (status = 403, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> AppResult<Response> {
    let mut session = None;
    if let Some(token) = bearer_of(&headers)
        && let Ok(claims) = state.tokens.verify_access(token)
    {
        session = ObjectId::parse_str(&claims.sid).ok();
    }
    if session.is_none()
        && let Some((token, in_body)) = presented_refresh(&req, &jar)
    {
        if !in_body {
            check_origin(&state, &headers)?;
        }
        if let Some((family, hash)) = tokens::parse_refresh(token)
            && state.store.sessions.find_current(family, &hash).await?.is_some()
        {
            session = Some(family);
        }
    }
    let mut jar = jar.add(removal_cookie(&state, REFRESH_COOKIE));
    if let Some(session) = session {
        state.store.sessions.revoke(session, "logout").await?;
        state.realtime.end_session(session).await;
        jar = jar.add(removal_cookie(&state, &session_cookie(session)));
    }
    Ok((StatusCode::NO_CONTENT, jar).into_response())
}

/// Email a password-reset code.
#[utoipa::path(post, path = "/forgot-password", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted, description = "Same answer for unknown emails"), (status = 429, body = ErrorBody)))]
async fn forgot_password(
    State(state): State<AppState>,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<EmailRequest>,
) -> AppResult<Response> {
    let email = lookup_email(&req.email);
    let device = trusted_device(&state, &jar, &email);
    limit(&state, "reset-send", ip.0, Some(&email), device.as_deref()).await?;
    // The account is looked up, and its code made and mailed, after the answer: a known
    // address is answered exactly as an unknown one, as fast.
    tokio::spawn(async move {
        let sent = async {
            match state.store.users.by_email(&email).await? {
                Some(user) => send_code(&state, &user, OtpPurpose::ResetPassword).await,
                None => Ok(()),
            }
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "a password-reset code could not be sent");
        }
    });
    Ok(accepted())
}

#[derive(Serialize, ToSchema)]
pub struct Done {
    message: &'static str,
}

/// Set a new password with an emailed reset code; every session is signed out.
#[utoipa::path(post, path = "/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> AppResult<Response> {
    let email = lookup_email(&req.email);
    let device = trusted_device(&state, &jar, &email);
    limit(&state, "otp", ip.0, Some(&email), device.as_deref()).await?;
    rules::check_new_password(&req.password, &req.password_confirm).map_err(rule_error)?;
    let Some(user) = state.store.users.by_email(&email).await? else {
        return Err(check_no_code(&state, &email, OtpPurpose::ResetPassword).await);
    };
    let code = check_code(&state, &user, OtpPurpose::ResetPassword, &req.otp, device.is_some()).await?;
    let hash = state.passwords.hash(req.password).await?;
    let (store, user_id, code_id) = (state.store.clone(), user.id, code.id);
    let consumed = tx::transaction(&state.store.client, |s| {
        let (store, hash) = (store.clone(), hash.clone());
        Box::pin(async move {
            if !store.otps.consume(code_id, s).await? {
                return Ok(false);
            }
            store.users.set_password(user_id, &hash, s).await?;
            // Receiving the code proves the mailbox, so this also verifies it.
            store.users.mark_verified(user_id, s).await?;
            store.sessions.revoke_all(user_id, "password_reset", s).await?;
            Ok(true)
        })
    })
    .await?;
    if !consumed {
        return Err(invalid_code());
    }
    state.realtime.end_user(user_id).await;
    Ok(axum::Json(Done {
        message: "password changed; sign in again",
    })
    .into_response())
}

/// Change the password (the current one is required). Every session is signed out and
/// this client gets a fresh one.
#[utoipa::path(patch, path = "/password", tag = "auth", request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses((status = 200, body = AuthResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "Current password wrong"), (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> AppResult<Response> {
    limit(&state, "password", ip.0, Some(&auth.id.to_hex()), None).await?;
    rules::check_new_password(&req.password, &req.password_confirm).map_err(rule_error)?;
    let Some(user) = state.store.users.by_id(auth.id).await? else {
        return Err(AppError::Unauthorized("invalid or expired token"));
    };
    if !state
        .passwords
        .verify(req.current_password, Some(user.password.clone()))
        .await?
    {
        return Err(AppError::Forbidden {
            code: ErrorCode::InvalidCredentials,
            message: "current password is wrong",
        });
    }
    let hash = state.passwords.hash(req.password).await?;
    let issued = new_session(&state, user.id)?;
    let (store, user_id) = (state.store.clone(), user.id);
    tx::transaction(&state.store.client, |s| {
        let (store, hash, session) = (store.clone(), hash.clone(), issued.session.clone());
        Box::pin(async move {
            store.users.set_password(user_id, &hash, s).await?;
            store.sessions.revoke_all(user_id, "password_change", s).await?;
            store.sessions.insert(&session, Some(s)).await
        })
    })
    .await?;
    state.realtime.end_user(user_id).await;
    Ok(signed_in(&state, jar, &user, issued, req.include_refresh_token))
}
