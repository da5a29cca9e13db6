//! `/api/v1/media`: presigned uploads straight to S3, their completion, and download URLs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser, parse_id};
use crate::error::{AppResult, ErrorBody};
use crate::service::media::{self, DownloadUrl, MediaView, UploadRequest, UploadTicket};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_upload))
        .routes(routes!(complete_upload))
        .routes(routes!(download))
}

/// Starts an upload: a presigned POST form for one object, of exactly `size` bytes and the
/// declared type, under a key the server chooses, valid for `HUDDLE_UPLOAD_URL_TTL` seconds.
/// Limits per type: `HUDDLE_MEDIA_MAX_IMAGE` / `_AUDIO` / `_VIDEO` / `_FILE`.
#[utoipa::path(post, path = "/uploads", tag = "media", request_body = UploadRequest, security(("bearer" = [])),
    responses((status = 201, body = UploadTicket), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such chat among the caller's"),
              (status = 413, body = ErrorBody, description = "Over the limit for its type"),
              (status = 415, body = ErrorBody, description = "An avatar that is not an image")))]
async fn create_upload(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<UploadRequest>,
) -> AppResult<(StatusCode, axum::Json<UploadTicket>)> {
    let (upload, form) = media::create_upload(&state, auth.id, req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadTicket {
            id: upload.id.to_hex(),
            expires_at: upload.expires_at.to_chrono(),
            form,
        }),
    ))
}

/// Completes an upload: checks the object exists, its size, and its first bytes against the
/// declared type, then records the media. Refused objects are deleted.
#[utoipa::path(post, path = "/uploads/{id}/complete", tag = "media", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 201, body = MediaView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`not_uploaded`, `size_mismatch` or `type_mismatch`")))]
async fn complete_upload(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, axum::Json<MediaView>)> {
    let media = media::complete(&state, auth.id, parse_id(&id)?).await?;
    Ok((StatusCode::CREATED, axum::Json(MediaView::from(&media))))
}

/// A short-lived download URL (`HUDDLE_DOWNLOAD_URL_TTL`), for members of the media's chat
/// (anyone signed in, for avatars). Files download as attachments under their name.
#[utoipa::path(get, path = "/{id}", tag = "media", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = DownloadUrl), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<axum::Json<DownloadUrl>> {
    Ok(axum::Json(media::download_url(&state, auth.id, parse_id(&id)?).await?))
}
