//! The `chats` collection: 1:1 and group chats, their participants, per-chat message
//! checkpoint (`lastSeq`), pins and each member's read position.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub is_group: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub participants: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    /// `"<smaller id>:<larger id>"` for 1:1 chats, so each pair has one chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_key: Option<String>,
    /// A checkpoint of the newest message's `seq` (0 before the first): never ahead of it,
    /// behind it by at most the message writer's head flush interval (the newest message
    /// is `MessageStore::newest` from here).
    pub last_seq: i64,
    #[serde(default)]
    pub pinned_by: Vec<ObjectId>,
    /// Read position per member: user id hex -> highest `seq` read.
    #[serde(default)]
    pub reads: Document,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl Chat {
    pub fn read_seq(&self, user: ObjectId) -> i64 {
        self.reads.get_i64(user.to_hex()).unwrap_or(0)
    }
}

/// What the message writer reads of a chat for each batch: who may post, its group and
/// its newest `seq` (a projection, not the whole chat).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatHead {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub participants: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    #[serde(default)]
    pub last_seq: i64,
}

pub fn direct_key(a: ObjectId, b: ObjectId) -> String {
    let (lo, hi) = if a.bytes() <= b.bytes() { (a, b) } else { (b, a) };
    format!("{}:{}", lo.to_hex(), hi.to_hex())
}

#[derive(Clone, Debug)]
pub struct ChatStore {
    coll: Collection<Chat>,
}

impl ChatStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("chats"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        // Membership only: an index that also held `updatedAt` rewrote one key per member on
        // every message (the writer moves `updatedAt`); a member's chats are few enough to
        // sort after the lookup.
        self.coll
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "participants": 1 })
                    .options(IndexOptions::builder().name("member".to_string()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "directKey": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("direct_unique".to_string())
                            .unique(true)
                            .sparse(true)
                            .build(),
                    )
                    .build(),
            ])
            .await?;
        super::drop_index_if_present(&self.coll, "member_activity").await
    }

    pub async fn insert(&self, chat: &Chat, tx: Option<&mut ClientSession>) -> mongodb::error::Result<()> {
        let insert = self.coll.insert_one(chat);
        match tx {
            Some(tx) => insert.session(tx).await,
            None => insert.await,
        }
        .map(|_| ())
    }

    pub async fn by_id(&self, id: ObjectId) -> mongodb::error::Result<Option<Chat>> {
        self.coll.find_one(doc! { "_id": id }).await
    }

    /// The chat, only if `user` is a participant: non-members cannot tell it exists.
    pub async fn for_member(&self, id: ObjectId, user: ObjectId) -> mongodb::error::Result<Option<Chat>> {
        self.coll.find_one(doc! { "_id": id, "participants": user }).await
    }

    pub async fn direct(&self, a: ObjectId, b: ObjectId) -> mongodb::error::Result<Option<Chat>> {
        self.coll.find_one(doc! { "directKey": direct_key(a, b) }).await
    }

    /// Every chat `user` is in, newest activity first.
    pub async fn of_member(&self, user: ObjectId) -> mongodb::error::Result<Vec<Chat>> {
        self.coll
            .find(doc! { "participants": user })
            .sort(doc! { "updatedAt": -1, "_id": -1 })
            .await?
            .try_collect()
            .await
    }

    /// The ids of every chat `user` is in (what a socket joins at its handshake): only the
    /// ids travel, from the `member` index.
    pub async fn ids_of_member(&self, user: ObjectId) -> mongodb::error::Result<Vec<ObjectId>> {
        let ids: Vec<Document> = self
            .coll
            .clone_with_type::<Document>()
            .find(doc! { "participants": user })
            .projection(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(ids.iter().filter_map(|d| d.get_object_id("_id").ok()).collect())
    }

    /// Moves a member's read position forward (never back); returns the position now.
    pub async fn mark_read(&self, id: ObjectId, user: ObjectId, seq: i64) -> mongodb::error::Result<Option<Chat>> {
        self.coll
            .find_one_and_update(
                doc! { "_id": id, "participants": user },
                doc! { "$max": { format!("reads.{}", user.to_hex()): seq } },
            )
            .return_document(ReturnDocument::After)
            .await
    }

    pub async fn set_pinned(&self, id: ObjectId, user: ObjectId, pinned: bool) -> mongodb::error::Result<Option<Chat>> {
        let update = if pinned {
            doc! { "$addToSet": { "pinnedBy": user } }
        } else {
            doc! { "$pull": { "pinnedBy": user } }
        };
        self.coll
            .find_one_and_update(doc! { "_id": id, "participants": user }, update)
            .return_document(ReturnDocument::After)
            .await
    }

    pub async fn add_participant(
        &self,
        id: ObjectId,
        user: ObjectId,
        tx: &mut ClientSession,
    ) -> mongodb::error::Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$addToSet": { "participants": user }, "$set": { "updatedAt": DateTime::now() } },
            )
            .session(tx)
            .await
            .map(|_| ())
    }

    pub async fn remove_participant(
        &self,
        id: ObjectId,
        user: ObjectId,
        tx: &mut ClientSession,
    ) -> mongodb::error::Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$pull": { "participants": user, "pinnedBy": user }, "$unset": { format!("reads.{}", user.to_hex()): "" } },
            )
            .session(tx)
            .await
            .map(|_| ())
    }

    pub async fn rename(&self, id: ObjectId, name: &str, tx: &mut ClientSession) -> mongodb::error::Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "name": name, "updatedAt": DateTime::now() } },
            )
            .session(tx)
            .await
            .map(|_| ())
    }
}
