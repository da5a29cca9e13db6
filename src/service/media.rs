//! Uploads and downloads of media. Browsers send the bytes straight to S3 with a presigned
//! POST form the server issues for a key it chooses; completing the upload checks what
//! arrived (size, and the first bytes against the declared type) before a Media document
//! exists. Downloads are short-lived presigned URLs, for those who may see the media.

use std::time::Duration;

use mongodb::bson::{self, oid::ObjectId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::chats::member_chat;
use crate::domain::media::{
    MediaType, SNIFF_BYTES, matches_declared, normalize_content_type, served_disposition, served_type,
};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::media::{Media, Upload, UploadKind};
use crate::store::s3::PresignedPost;
use huddle_signaling::protocol::ErrorCode;

/// Uploads streamed through the server at once: each holds one S3 part in memory, so their
/// number bounds that memory (`HUDDLE_MAX_STREAMED_UPLOADS`), and no one user may take
/// more than `HUDDLE_MAX_STREAMED_UPLOADS_PER_USER` of them.
#[derive(Clone, Debug)]
pub struct UploadSlots {
    free: std::sync::Arc<tokio::sync::Semaphore>,
    per_user: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ObjectId, usize>>>,
    per_user_max: usize,
}

/// One streamed upload's place; given back when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    user: ObjectId,
    per_user: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ObjectId, usize>>>,
}

/// How long a streamed upload waits for a free place before it is refused as `overloaded`.
const SLOT_WAIT: Duration = Duration::from_secs(5);

impl UploadSlots {
    pub fn new(total: usize, per_user_max: usize) -> Self {
        Self {
            free: std::sync::Arc::new(tokio::sync::Semaphore::new(total)),
            per_user: std::sync::Arc::default(),
            per_user_max,
        }
    }

    /// A place for one more upload by `user`: `rate_limited` when they already hold their
    /// share, `overloaded` when the server's places stay taken for a few seconds.
    pub async fn take(&self, user: ObjectId) -> AppResult<UploadSlot> {
        {
            let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
            let held = per_user.entry(user).or_insert(0);
            if *held >= self.per_user_max {
                return Err(AppError::TooManyRequests {
                    retry_after: Duration::from_secs(5),
                });
            }
            *held += 1;
        }
        let slot = |permit| UploadSlot {
            _permit: permit,
            user,
            per_user: self.per_user.clone(),
        };
        match tokio::time::timeout(SLOT_WAIT, self.free.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(slot(permit)),
            _ => {
                release(&self.per_user, user);
                metrics::counter!("huddle_uploads_refused_total", "reason" => "busy").increment(1);
                Err(AppError::Overloaded {
                    retry_after: Duration::from_secs(5),
                })
            }
        }
    }
}

fn release(per_user: &std::sync::Mutex<std::collections::HashMap<ObjectId, usize>>, user: ObjectId) {
    let mut per_user = per_user.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(held) = per_user.get_mut(&user) {
        *held -= 1;
        if *held == 0 {
            per_user.remove(&user);
        }
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        release(&self.per_user, self.user);
    }
}

/// `POST /media/uploads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadRequest {
    /// `avatar` or `attachment`.
    #[schema(value_type = String)]
    pub kind: UploadKind,
    /// The chat an attachment is for; members only.
    #[serde(default)]
    pub chat_id: Option<String>,
    pub file_name: String,
    pub content_type: String,
    /// Exact size in bytes; the store refuses any other.
    pub size: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// The upload's id, for `POST /media/uploads/{id}/complete`.
    #[serde(rename = "_id")]
    pub id: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// POST these fields, then the file as the last field `file`, as `multipart/form-data`.
    pub form: PresignedPost,
}

/// A Media document as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    #[serde(rename = "_id")]
    pub id: String,
    /// `image`, `audio`, `video` or `file`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub media_type: MediaType,
    /// `avatar` or `attachment`.
    #[schema(value_type = String)]
    pub kind: UploadKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    pub uploader: String,
    pub name: String,
    pub file_type: String,
    pub size: u64,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

impl From<&Media> for MediaView {
    fn from(m: &Media) -> Self {
        Self {
            id: m.id.to_hex(),
            media_type: m.media_type,
            kind: m.kind,
            chat_id: m.chat_id.map(|c| c.to_hex()),
            uploader: m.uploader.to_hex(),
            name: m.name.clone(),
            file_type: m.file_type.clone(),
            size: m.size,
            uploaded_at: m.uploaded_at.to_chrono(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The most a type of media may weigh.
pub fn limit_for(state: &AppState, media_type: MediaType) -> u64 {
    let c = &state.config;
    match media_type {
        MediaType::Image => c.media_max_image_bytes,
        MediaType::Audio => c.media_max_audio_bytes,
        MediaType::Video => c.media_max_video_bytes,
        MediaType::File => c.media_max_file_bytes,
    }
}

fn check_file_name(name: &str) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "fileName: 1-255 characters, no control characters",
        ));
    }
    Ok(())
}

/// The declared type, normalized: one exact `type/subtype`, nothing more.
fn check_content_type(content_type: &str) -> AppResult<String> {
    normalize_content_type(content_type).ok_or_else(|| {
        AppError::bad_request("contentType: one media type like image/png, without parameters or a second type")
    })
}

/// Where a checked object lives: a key no presigned form names, so what was checked is what
/// is served.
fn sealed_key(upload_key: &str) -> String {
    format!("sealed/{upload_key}")
}

/// Issues a presigned form for one object of exactly the declared size and type.
pub async fn create_upload(state: &AppState, user: ObjectId, req: UploadRequest) -> AppResult<(Upload, PresignedPost)> {
    check_file_name(&req.file_name)?;
    let content_type = check_content_type(&req.content_type)?;
    let media_type = MediaType::of_content_type(&content_type);
    if req.size == 0 {
        return Err(AppError::bad_request("size: at least 1 byte"));
    }
    if req.size > limit_for(state, media_type) {
        return Err(AppError::PayloadTooLarge);
    }
    let id = ObjectId::new();
    let (chat_id, group_id, key) = destination(state, user, req.kind, req.chat_id.as_deref(), media_type, id).await?;
    let ttl = Duration::from_secs(state.config.upload_url_ttl_secs);
    let form = state
        .blobs
        .presign_post(&key, &content_type, req.size, ttl)
        .await
        .map_err(AppError::Internal)?;
    let now = bson::DateTime::now();
    let upload = Upload {
        id,
        owner: user,
        kind: req.kind,
        chat_id,
        group_id,
        key,
        file_name: req.file_name,
        content_type,
        media_type,
        size: req.size,
        created_at: now,
        expires_at: bson::DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64),
        completed: false,
    };
    state.store.media.insert_upload(&upload).await?;
    Ok((upload, form))
}

/// Checks what arrived for an upload and records it as media. Someone else's upload answers
/// as missing; completing twice returns the same media.
pub async fn complete(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Media> {
    let upload = state
        .store
        .media
        .upload(id)
        .await?
        .filter(|u| u.owner == user)
        .ok_or(AppError::NotFound)?;
    if upload.completed {
        return state
            .store
            .media
            .media_by_key(&sealed_key(&upload.key))
            .await?
            .ok_or(AppError::Conflict("this upload is being completed"));
    }
    if let Some(chat) = upload.chat_id {
        member_chat(state, chat, user).await?;
    }
    let reject = |code: ErrorCode, message: String| AppError::Rejected { code, message };
    if state
        .blobs
        .size_of(&upload.key)
        .await
        .map_err(AppError::Internal)?
        .is_none()
    {
        return Err(reject(
            ErrorCode::NotUploaded,
            "nothing has been uploaded for this upload yet".into(),
        ));
    }
    // The form stays valid until it expires: the copy is what gets checked and served.
    let sealed = sealed_key(&upload.key);
    let (content_type, disposition) = served_headers(upload.media_type, &upload.content_type, &upload.file_name);
    state
        .blobs
        .seal(&upload.key, &sealed, &content_type, &disposition)
        .await
        .map_err(AppError::Internal)?;
    discard(state, &upload.key).await;
    let size = state
        .blobs
        .size_of(&sealed)
        .await
        .map_err(AppError::Internal)?
        .unwrap_or(0);
    if size != upload.size {
        discard(state, &sealed).await;
        return Err(reject(
            ErrorCode::SizeMismatch,
            format!("{size} bytes arrived; {} were declared", upload.size),
        ));
    }
    let head = state
        .blobs
        .head_bytes(&sealed, SNIFF_BYTES)
        .await
        .map_err(AppError::Internal)?;
    if !matches_declared(upload.media_type, &head) {
        discard(state, &sealed).await;
        return Err(type_mismatch(&upload.content_type));
    }
    if !state.store.media.mark_completed(upload.id).await? {
        return Err(AppError::Conflict("this upload is being completed"));
    }
    let upload = Upload { key: sealed, ..upload };
    record(state, ObjectId::new(), upload, size).await
}

/// The `Content-Type` and `Content-Disposition` an object is stored and served with.
fn served_headers(media_type: MediaType, content_type: &str, name: &str) -> (String, String) {
    (
        served_type(media_type, content_type).to_string(),
        served_disposition(media_type, content_type, name),
    )
}

/// Saves the Media document for an object that passed its checks.
async fn record(state: &AppState, id: ObjectId, upload: Upload, size: u64) -> AppResult<Media> {
    let media = Media {
        id,
        uploader: upload.owner,
        kind: upload.kind,
        chat_id: upload.chat_id,
        group_id: upload.group_id,
        media_type: upload.media_type,
        url: format!("s3://{}/{}", state.blobs.bucket, upload.key),
        key: upload.key,
        file_type: upload.content_type,
        name: upload.file_name,
        size,
        uploaded_at: bson::DateTime::now(),
        message_id: None,
        hidden: false,
    };
    state.store.media.insert_media(&media).await?;
    Ok(media)
}

/// The metadata that comes before the file in `POST /media`.
#[derive(Debug, Default)]
pub struct DirectUpload {
    pub kind: Option<UploadKind>,
    pub chat_id: Option<String>,
}

/// Where an upload may go and under which key; the checks shared by both upload paths.
async fn destination(
    state: &AppState,
    user: ObjectId,
    kind: UploadKind,
    chat: Option<&str>,
    media_type: MediaType,
    id: ObjectId,
) -> AppResult<(Option<ObjectId>, Option<ObjectId>, String)> {
    let (chat_id, group_id) = match (kind, chat) {
        (UploadKind::Attachment, Some(chat)) => {
            let chat = member_chat(state, crate::domain::id::parse_id(chat)?, user).await?;
            (Some(chat.id), chat.group_id)
        }
        (UploadKind::Attachment, None) => return Err(AppError::bad_request("chatId: required for attachments")),
        (UploadKind::Avatar, Some(_)) => return Err(AppError::bad_request("chatId: avatars belong to no chat")),
        (UploadKind::Avatar, None) if media_type != MediaType::Image => {
            return Err(AppError::UnsupportedMediaType);
        }
        (UploadKind::Avatar, None) => (None, None),
    };
    let folder = match kind {
        UploadKind::Avatar => "avatars",
        UploadKind::Attachment => "attachments",
    };
    // The key is the server's: nothing the client wrote becomes a path.
    Ok((chat_id, group_id, format!("{folder}/{}/{}", user.to_hex(), id.to_hex())))
}

/// `POST /media` for clients that cannot upload to S3 themselves: the file is streamed to
/// the store as a multipart upload (one part in memory at a time), checked against its
/// declared type from its first bytes and against its type's limit as it arrives.
pub async fn upload_streamed<S, E>(
    state: &AppState,
    user: ObjectId,
    meta: DirectUpload,
    file_name: String,
    content_type: String,
    mut chunks: S,
) -> AppResult<Media>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    check_file_name(&file_name)?;
    let content_type = check_content_type(&content_type)?;
    let media_type = MediaType::of_content_type(&content_type);
    let kind = meta
        .kind
        .ok_or_else(|| AppError::bad_request("kind: required before the file"))?;
    let id = ObjectId::new();
    let (chat_id, group_id, key) = destination(state, user, kind, meta.chat_id.as_deref(), media_type, id).await?;
    let _slot = state.upload_slots.take(user).await?;
    let idle = Duration::from_secs(state.config.upload_idle_timeout_secs);
    // The server writes this object itself, where no form can: it is sealed as it is written.
    let key = sealed_key(&key);
    let limit = limit_for(state, media_type);
    let (served, disposition) = served_headers(media_type, &content_type, &file_name);
    let mut writer = crate::store::s3::PartWriter::start(&state.blobs, &key, &served, &disposition)
        .await
        .map_err(AppError::Internal)?;
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let outcome: AppResult<()> = async {
        loop {
            let Ok(next) = tokio::time::timeout(idle, chunks.next()).await else {
                return Err(AppError::bad_request(format!(
                    "file: nothing arrived for {} s; the upload is dropped",
                    idle.as_secs()
                )));
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| AppError::bad_request(format!("file: {e}")))?;
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() == SNIFF_BYTES && !matches_declared(media_type, &head) {
                    return Err(type_mismatch(&content_type));
                }
            }
            if writer.written() + chunk.len() as u64 > limit {
                return Err(AppError::PayloadTooLarge);
            }
            writer.write(&chunk).await.map_err(AppError::Internal)?;
        }
        if head.is_empty() {
            return Err(AppError::bad_request("file: empty"));
        }
        if !matches_declared(media_type, &head) {
            return Err(type_mismatch(&content_type));
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        writer.abort().await;
        return Err(e);
    }
    let size = writer.finish().await.map_err(AppError::Internal)?;
    let now = bson::DateTime::now();
    let upload = Upload {
        id,
        owner: user,
        kind,
        chat_id,
        group_id,
        key,
        file_name,
        content_type,
        media_type,
        size,
        created_at: now,
        expires_at: now,
        completed: true,
    };
    record(state, id, upload, size).await
}

fn type_mismatch(content_type: &str) -> AppError {
    AppError::Rejected {
        code: ErrorCode::TypeMismatch,
        message: format!("the bytes are not {content_type}"),
    }
}

/// Removes an object that failed its checks, so it never becomes reachable.
async fn discard(state: &AppState, key: &str) {
    if let Err(e) = state.blobs.delete(key).await {
        tracing::warn!(error = %e, "a refused upload could not be deleted");
    }
}

/// Media the caller may see: attachments of their chats, and avatars.
pub async fn visible(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<Media> {
    let media = state
        .store
        .media
        .media(id)
        .await?
        .filter(|m| !m.hidden)
        .ok_or(AppError::NotFound)?;
    if let Some(chat) = media.chat_id {
        member_chat(state, chat, user).await?;
    }
    Ok(media)
}

/// A short-lived download URL. Media is served inline as its exact type; files download as
/// attachments under their name, as bytes, whatever they claim to be.
pub async fn download_url(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<DownloadUrl> {
    let media = visible(state, user, id).await?;
    let ttl = Duration::from_secs(state.config.download_url_ttl_secs);
    let (content_type, disposition) = served_headers(media.media_type, &media.file_type, &media.name);
    let url = state
        .blobs
        .presign_get(&media.key, ttl, &content_type, &disposition)
        .await
        .map_err(AppError::Internal)?;
    Ok(DownloadUrl {
        url,
        expires_at: chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
    })
}

/// The `avatarUrl` for one of the caller's own avatar uploads: the API path that hands out a
/// short-lived URL for it (avatars are visible to every signed-in user).
pub async fn avatar_url(state: &AppState, user: ObjectId, id: ObjectId) -> AppResult<String> {
    let media = state.store.media.media(id).await?;
    match media {
        Some(m) if m.kind == UploadKind::Avatar && m.uploader == user => Ok(format!("/api/v1/media/{}", m.id.to_hex())),
        _ => Err(AppError::bad_request("avatar: not an avatar you uploaded")),
    }
}

/// A deleted message's attachments: they leave the chat's lists and downloads at once,
/// and their bytes leave the store (a failure there is logged; nothing can reach them).
pub async fn remove_attachments(state: &AppState, message: ObjectId) -> AppResult<()> {
    let carried = state.store.media.of_message(message).await?;
    if carried.is_empty() {
        return Ok(());
    }
    state.store.media.hide_for_message(message).await?;
    for media in carried {
        if let Err(e) = state.blobs.delete(&media.key).await {
            metrics::counter!("huddle_media_delete_failures_total").increment(1);
            tracing::warn!(error = %e, media = %media.id, "a deleted message's attachment could not be removed from the store");
        }
    }
    Ok(())
}

/// One page of a chat's media (`image`, `video`), files (`file`, `audio`) or links.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaPage {
    pub data: Vec<MediaView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A chat's shared media of `types`, newest first, for members.
pub async fn chat_media(
    state: &AppState,
    user: ObjectId,
    chat: ObjectId,
    types: &[MediaType],
    before: Option<ObjectId>,
    limit: i64,
) -> AppResult<MediaPage> {
    member_chat(state, chat, user).await?;
    let items = state.store.media.in_chat(chat, types, before, limit).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.to_hex()))
        .flatten();
    Ok(MediaPage {
        data: items.iter().map(MediaView::from).collect(),
        next_cursor,
    })
}

/// A link someone shared in a chat.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    pub url: String,
    pub message_id: String,
    pub sender: String,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkPage {
    pub data: Vec<LinkView>,
    /// The message id to pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `http(s)://` links in a text, in order, without trailing punctuation.
pub fn links_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| {
            w.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '"', '\''])
                .to_string()
        })
        .filter(|w| w.len() > "https://".len())
        .collect()
}

/// Links shared in a chat's (not deleted) messages, newest message first, for members.
pub async fn chat_links(
    state: &AppState,
    user: ObjectId,
    chat: ObjectId,
    before: Option<ObjectId>,
    limit: i64,
) -> AppResult<LinkPage> {
    member_chat(state, chat, user).await?;
    let messages = state.store.messages.with_links(chat, before, limit).await?;
    let next_cursor = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|m| m.id.to_hex()))
        .flatten();
    let data = messages
        .iter()
        .flat_map(|m| {
            links_in(&m.content).into_iter().map(|url| LinkView {
                url,
                message_id: m.id.to_hex(),
                sender: m.sender.to_hex(),
                sent_at: m.created_at.to_chrono(),
            })
        })
        .collect();
    Ok(LinkPage { data, next_cursor })
}

/// Removes uploads never completed: their objects (if anything arrived) and their records,
/// once their forms expired more than `HUDDLE_UPLOAD_RETENTION` seconds ago. Returns how many.
pub async fn remove_stale_uploads(state: &AppState) -> AppResult<usize> {
    let retention = state.config.upload_retention_secs as i64 * 1000;
    let cutoff = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - retention);
    let stale = state.store.media.stale_uploads(cutoff, 500).await?;
    for upload in &stale {
        state.blobs.delete(&upload.key).await.map_err(AppError::Internal)?;
        state.store.media.delete_upload(upload.id).await?;
    }
    Ok(stale.len())
}

/// Runs [`remove_stale_uploads`] every few minutes until the server stops.
pub async fn sweep_uploads(state: AppState) {
    let every = Duration::from_secs(state.config.upload_retention_secs.clamp(1, 600));
    loop {
        tokio::time::sleep(every).await;
        match remove_stale_uploads(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "removed uploads never completed"),
            Err(e) => tracing::warn!(error = %e, "stale uploads not removed"),
        }
    }
}

/// The seed's Collection for one member of one chat: the messages they starred and the
/// attachments they shared there. Built from indexed queries, not stored arrays.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionView {
    pub chat_id: String,
    pub owner: String,
    pub starred_messages: Vec<String>,
    pub attachments: Vec<String>,
}

pub async fn collection(state: &AppState, user: ObjectId, chat: ObjectId) -> AppResult<CollectionView> {
    member_chat(state, chat, user).await?;
    let starred = state.store.messages.starred(chat, user).await?;
    let attachments = state.store.media.shared_by(chat, user).await?;
    Ok(CollectionView {
        chat_id: chat.to_hex(),
        owner: user.to_hex(),
        starred_messages: starred.iter().map(|m| m.id.to_hex()).collect(),
        attachments: attachments.iter().map(|a| a.to_hex()).collect(),
    })
}
