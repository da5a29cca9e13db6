//! The `notifications` collection: one document per notice to one user, queried by user
//! (never an embedded array, since it grows without bound).

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

pub use huddle_signaling::protocol::NotificationKind;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub user_id: ObjectId,
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub content: String,
    pub related_id: ObjectId,
    pub read: bool,
    pub created_at: DateTime,
}

/// The id of the notice `cause` (a message) gives `user`: the same every time it is
/// computed, so writing it twice stores it once. It sorts by the cause's time, like an id
/// made when the notice was.
pub fn notice_id(cause: ObjectId, user: ObjectId) -> ObjectId {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(cause.bytes());
    hash.update(user.bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&cause.bytes()[..4]);
    bytes[4..].copy_from_slice(&digest[..8]);
    ObjectId::from_bytes(bytes)
}

#[derive(Clone, Debug)]
pub struct NotificationStore {
    coll: Collection<Notification>,
}

impl NotificationStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("notifications"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.coll
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "userId": 1, "createdAt": -1 })
                    .options(IndexOptions::builder().name("user_recent".to_string()).build())
                    .build(),
            )
            .await?;
        Ok(())
    }

    pub async fn insert(&self, notification: &Notification) -> mongodb::error::Result<()> {
        self.coll.insert_one(notification).await.map(|_| ())
    }

    /// Inserts notices whose ids are derived from what caused them ([`notice_id`]); those
    /// already stored (written before a restart) are skipped. Returns the new ones.
    pub async fn insert_once(&self, notices: Vec<Notification>) -> mongodb::error::Result<Vec<Notification>> {
        if notices.is_empty() {
            return Ok(notices);
        }
        match self.coll.insert_many(&notices).ordered(false).await {
            Ok(_) => Ok(notices),
            Err(e) => {
                let mongodb::error::ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                    return Err(e);
                };
                if failure.write_concern_error.is_some() {
                    return Err(e);
                }
                let errors = failure.write_errors.as_deref().unwrap_or_default();
                if errors.iter().any(|w| w.code != 11000) {
                    return Err(e);
                }
                let skipped: std::collections::HashSet<usize> = errors.iter().map(|w| w.index).collect();
                Ok(notices
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !skipped.contains(i))
                    .map(|(_, n)| n)
                    .collect())
            }
        }
    }

    /// Newest first by `createdAt` (then id), after the notice `before` when paging. The
    /// order is the notices' time, not their ids': a message's notice has an id derived
    /// from the message ([`notice_id`]), which sorts by the second only.
    pub async fn of_user(
        &self,
        user: ObjectId,
        before: Option<ObjectId>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Notification>> {
        use futures::TryStreamExt;
        let mut filter = doc! { "userId": user };
        if let Some(before) = before {
            let at = self
                .coll
                .clone_with_type::<mongodb::bson::Document>()
                .find_one(doc! { "_id": before, "userId": user })
                .projection(doc! { "createdAt": 1 })
                .await?
                .and_then(|d| d.get_datetime("createdAt").ok().copied())
                // A cursor that names no notice of this user pages from the second its id
                // was made.
                .unwrap_or_else(|| before.timestamp());
            filter.insert(
                "$or",
                vec![
                    doc! { "createdAt": { "$lt": at } },
                    doc! { "createdAt": at, "_id": { "$lt": before } },
                ],
            );
        }
        self.coll
            .find(filter)
            .sort(doc! { "createdAt": -1, "_id": -1 })
            .limit(limit)
            .await?
            .try_collect()
            .await
    }

    pub async fn mark_read(&self, id: ObjectId, user: ObjectId) -> mongodb::error::Result<bool> {
        let r = self
            .coll
            .update_one(doc! { "_id": id, "userId": user }, doc! { "$set": { "read": true } })
            .await?;
        Ok(r.matched_count > 0)
    }

    pub async fn mark_all_read(&self, user: ObjectId) -> mongodb::error::Result<u64> {
        let r = self
            .coll
            .update_many(
                doc! { "userId": user, "read": false },
                doc! { "$set": { "read": true } },
            )
            .await?;
        Ok(r.modified_count)
    }
}
