//! `/api/v1/media`: presigned uploads straight to S3, their completion, and download URLs.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser, parse_id};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::service::media::{self, DirectUpload, DownloadUrl, MediaView, UploadRequest, UploadTicket};
use crate::state::AppState;
use crate::store::media::UploadKind;

pub fn router() -> OpenApiRouter<AppState> {
    // The streamed route has no overall body limit: the file is bounded by its type's limit
    // as it streams, and the other fields by `small_text`. Every other route keeps the
    // server-wide body limit.
    let streamed = OpenApiRouter::new()
        .routes(routes!(upload_streamed))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(create_upload))
        .routes(routes!(complete_upload))
        .routes(routes!(download))
        .merge(streamed)
}

/// Uploads through the server, for clients that cannot POST to S3 (Postman, scripts):
/// `multipart/form-data` with `kind` (`avatar` or `attachment`), `chatId` for attachments,
/// then `file` last (its filename and content type are the media's). The bytes are streamed
/// to S3 in parts, checked against the declared type and its size limit as they arrive.
#[utoipa::path(post, path = "/", tag = "media", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "kind, chatId?, then file"),
    responses((status = 201, body = MediaView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`type_mismatch`"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn upload_streamed(
    State(state): State<AppState>,
    auth: AuthUser,
    mut form: Multipart,
) -> AppResult<(StatusCode, axum::Json<MediaView>)> {
    let bad = |e: axum::extract::multipart::MultipartError| AppError::bad_request(format!("form: {e}"));
    let mut meta = DirectUpload::default();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "kind" => {
                let text = small_text(field).await?;
                meta.kind = Some(match text.as_str() {
                    "avatar" => UploadKind::Avatar,
                    "attachment" => UploadKind::Attachment,
                    _ => return Err(AppError::bad_request("kind: avatar or attachment")),
                });
            }
            "chatId" => meta.chat_id = Some(small_text(field).await?),
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_string();
                let content_type = field.content_type().unwrap_or("application/octet-stream").to_string();
                let media = media::upload_streamed(&state, auth.id, meta, file_name, content_type, field).await?;
                return Ok((StatusCode::CREATED, axum::Json(MediaView::from(&media))));
            }
            other => return Err(AppError::bad_request(format!("form: unexpected field {other:?}"))),
        }
    }
    Err(AppError::bad_request("form: no file field"))
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

/// A form field that must be short (an id, a keyword); longer is refused, not buffered.
async fn small_text(mut field: axum::extract::multipart::Field<'_>) -> AppResult<String> {
    const MAX: usize = 256;
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| AppError::bad_request(format!("form: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX {
            return Err(AppError::bad_request("form: a field before the file is too long"));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| AppError::bad_request("form: fields must be UTF-8"))
}
