//! The `calls` collection: the spec's Call model, one document per call, written when it
//! starts, is answered and ends.

use huddle_signaling::protocol::CallView;
use huddle_signaling::{CallKind, CallStatus, EndReason};
use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "type")]
    pub kind: CallKind,
    pub chat_id: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    pub initiator: ObjectId,
    /// Everyone who was in the call, in the order they first joined.
    pub participants: Vec<ObjectId>,
    /// Everyone who was rung.
    pub invited: Vec<ObjectId>,
    pub started_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime>,
    pub status: CallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
}

#[derive(Clone, Debug)]
pub struct CallStore {
    coll: Collection<Call>,
}

impl CallStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("calls"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.coll
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "chatId": 1, "startedAt": -1 })
                    .options(IndexOptions::builder().name("chat_recent".to_string()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "status": 1 })
                    .options(IndexOptions::builder().name("status".to_string()).build())
                    .build(),
            ])
            .await?;
        Ok(())
    }

    pub async fn insert(&self, call: &Call) -> mongodb::error::Result<()> {
        self.coll.insert_one(call).await.map(|_| ())
    }

    /// Removes a call the hub refused to open (its document was written first).
    pub async fn delete(&self, id: ObjectId) -> mongodb::error::Result<()> {
        self.coll.delete_one(doc! { "_id": id }).await.map(|_| ())
    }

    pub async fn by_id(&self, id: ObjectId) -> mongodb::error::Result<Option<Call>> {
        self.coll.find_one(doc! { "_id": id }).await
    }

    pub async fn save(&self, call: &Call) -> mongodb::error::Result<()> {
        self.coll.replace_one(doc! { "_id": call.id }, call).await.map(|_| ())
    }

    /// Calls in any of `chats`, newest first, before the `before` id when paging.
    pub async fn in_chats(
        &self,
        chats: &[ObjectId],
        before: Option<ObjectId>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Call>> {
        super::newest_first(&self.coll, doc! { "chatId": { "$in": chats } }, before, limit).await
    }

    /// Calls a previous run left ringing or ongoing can no longer be live: end them.
    pub async fn end_stale(&self) -> mongodb::error::Result<u64> {
        let r = self
            .coll
            .update_many(
                doc! { "status": { "$in": ["ringing", "ongoing"] } },
                doc! { "$set": { "status": "ended", "endReason": "terminated", "endedAt": DateTime::now() } },
            )
            .await?;
        Ok(r.modified_count)
    }
}

/// A call as clients see it.
impl From<&Call> for CallView {
    fn from(c: &Call) -> Self {
        let hex = |ids: &[ObjectId]| ids.iter().map(|i| i.to_hex()).collect();
        Self {
            id: c.id.to_hex(),
            kind: c.kind,
            chat_id: c.chat_id.to_hex(),
            initiator: c.initiator.to_hex(),
            participants: hex(&c.participants),
            invited: hex(&c.invited),
            status: c.status,
            end_reason: c.end_reason,
            started_at: c.started_at.to_chrono(),
            answered_at: c.answered_at.map(|t| t.to_chrono()),
            ended_at: c.ended_at.map(|t| t.to_chrono()),
        }
    }
}
