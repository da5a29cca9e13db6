//! The `uploads` collection (an upload the server handed a presigned form for, until it is
//! completed or expires) and the `media` collection (the seed's Media model: metadata and the
//! object key; the bytes are in S3).

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::media::MediaType;

/// What an upload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    Avatar,
    Attachment,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub owner: ObjectId,
    pub kind: UploadKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    pub key: String,
    pub file_name: String,
    pub content_type: String,
    #[serde(rename = "type")]
    pub media_type: MediaType,
    pub size: u64,
    pub created_at: DateTime,
    /// The presigned form stops working at this time.
    pub expires_at: DateTime,
    #[serde(default)]
    pub completed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub uploader: ObjectId,
    pub kind: UploadKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    #[serde(rename = "type")]
    pub media_type: MediaType,
    /// `s3://bucket/key`: where the bytes are (downloads go through short-lived URLs).
    pub url: String,
    pub key: String,
    pub file_type: String,
    pub name: String,
    pub size: u64,
    pub uploaded_at: DateTime,
    /// The message that carries it, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<ObjectId>,
    /// Its message was deleted: gone from the chat.
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Clone, Debug)]
pub struct UploadStore {
    uploads: Collection<Upload>,
    media: Collection<Media>,
}

impl UploadStore {
    pub fn new(db: &Database) -> Self {
        Self {
            uploads: db.collection("uploads"),
            media: db.collection("media"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.uploads
            .create_indexes([IndexModel::builder()
                .keys(doc! { "completed": 1, "expiresAt": 1 })
                .options(IndexOptions::builder().name("pending_by_expiry".to_string()).build())
                .build()])
            .await?;
        self.media
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "chatId": 1, "type": 1, "_id": -1 })
                    .options(IndexOptions::builder().name("chat_type_recent".to_string()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "key": 1 })
                    .options(IndexOptions::builder().name("key".to_string()).unique(true).build())
                    .build(),
            ])
            .await?;
        Ok(())
    }

    pub async fn insert_upload(&self, upload: &Upload) -> mongodb::error::Result<()> {
        self.uploads.insert_one(upload).await.map(|_| ())
    }

    pub async fn upload(&self, id: ObjectId) -> mongodb::error::Result<Option<Upload>> {
        self.uploads.find_one(doc! { "_id": id }).await
    }

    /// Marks an upload completed, once: `false` when it already was (a concurrent complete).
    pub async fn mark_completed(&self, id: ObjectId) -> mongodb::error::Result<bool> {
        let result = self
            .uploads
            .update_one(
                doc! { "_id": id, "completed": false },
                doc! { "$set": { "completed": true } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    pub async fn insert_media(&self, media: &Media) -> mongodb::error::Result<()> {
        self.media.insert_one(media).await.map(|_| ())
    }

    pub async fn media(&self, id: ObjectId) -> mongodb::error::Result<Option<Media>> {
        self.media.find_one(doc! { "_id": id }).await
    }

    pub async fn media_by_key(&self, key: &str) -> mongodb::error::Result<Option<Media>> {
        self.media.find_one(doc! { "key": key }).await
    }

    /// Gives `message` these attachments, if each is `sender`'s own upload to `chat` that no
    /// message carries yet; true when all of them were free. Only one message can ever
    /// claim an upload, so a deletion always hides everything that message showed.
    pub async fn claim(
        &self,
        ids: &[ObjectId],
        chat: ObjectId,
        sender: ObjectId,
        message: ObjectId,
    ) -> mongodb::error::Result<bool> {
        let claimed = self
            .media
            .update_many(
                doc! {
                    "_id": { "$in": ids },
                    "kind": "attachment",
                    "chatId": chat,
                    "uploader": sender,
                    "messageId": { "$exists": false },
                    "hidden": { "$ne": true },
                },
                doc! { "$set": { "messageId": message } },
            )
            .await?;
        if claimed.modified_count == ids.len() as u64 {
            return Ok(true);
        }
        self.release(message).await?;
        Ok(false)
    }

    /// Frees what a message that was never stored had claimed.
    pub async fn release(&self, message: ObjectId) -> mongodb::error::Result<()> {
        self.media
            .update_many(doc! { "messageId": message }, doc! { "$unset": { "messageId": "" } })
            .await
            .map(|_| ())
    }

    /// The attachments `message` carries.
    pub async fn of_message(&self, message: ObjectId) -> mongodb::error::Result<Vec<Media>> {
        use futures::TryStreamExt;
        self.media
            .find(doc! { "messageId": message })
            .await?
            .try_collect()
            .await
    }

    /// A deleted message's attachments leave the chat.
    pub async fn hide_for_message(&self, message: ObjectId) -> mongodb::error::Result<()> {
        self.media
            .update_many(doc! { "messageId": message }, doc! { "$set": { "hidden": true } })
            .await
            .map(|_| ())
    }

    /// A chat's shared media of `types`, newest first, before the `before` id.
    pub async fn in_chat(
        &self,
        chat: ObjectId,
        types: &[MediaType],
        before: Option<ObjectId>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Media>> {
        let types: Vec<_> = types
            .iter()
            .map(|t| mongodb::bson::to_bson(t).unwrap_or_default())
            .collect();
        let filter = doc! {
            "chatId": chat,
            "type": { "$in": types },
            "messageId": { "$exists": true },
            "hidden": { "$ne": true },
        };
        super::newest_first(&self.media, filter, before, limit).await
    }

    /// Attachments `owner` shared in `chat` (still in it), oldest first.
    pub async fn shared_by(&self, chat: ObjectId, owner: ObjectId) -> mongodb::error::Result<Vec<ObjectId>> {
        use futures::TryStreamExt;
        let found: Vec<Media> = self
            .media
            .find(
                doc! { "chatId": chat, "uploader": owner, "messageId": { "$exists": true }, "hidden": { "$ne": true } },
            )
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found.into_iter().map(|m| m.id).collect())
    }

    /// Uploads whose forms expired before `cutoff`, completed or not: what is left at their
    /// key is never served (a completed upload is served from its sealed copy).
    pub async fn stale_uploads(&self, cutoff: DateTime, limit: i64) -> mongodb::error::Result<Vec<Upload>> {
        use futures::TryStreamExt;
        self.uploads
            .find(doc! { "completed": { "$in": [false, true] }, "expiresAt": { "$lt": cutoff } })
            .limit(limit)
            .await?
            .try_collect()
            .await
    }

    pub async fn delete_upload(&self, id: ObjectId) -> mongodb::error::Result<()> {
        self.uploads.delete_one(doc! { "_id": id }).await.map(|_| ())
    }
}
