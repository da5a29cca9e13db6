//! Friend requests (the spec's InvitationRequest, collection `invitations`) and friendships,
//! kept as the `friends` array on both users' documents and changed together in a
//! transaction.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

pub use huddle_signaling::protocol::InvitationStatus;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub sender: ObjectId,
    pub receiver: ObjectId,
    #[serde(default)]
    pub content: String,
    pub status: InvitationStatus,
    /// `"<smaller id>:<larger id>"` while pending, so a pair has one open request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_key: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Clone, Debug)]
pub struct FriendStore {
    invitations: Collection<Invitation>,
    users: Collection<mongodb::bson::Document>,
}

impl FriendStore {
    pub fn new(db: &Database) -> Self {
        Self {
            invitations: db.collection("invitations"),
            users: db.collection("users"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.invitations
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "pendingKey": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("pending_pair".to_string())
                            .unique(true)
                            .sparse(true)
                            .build(),
                    )
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "receiver": 1, "status": 1 })
                    .options(IndexOptions::builder().name("incoming".to_string()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "sender": 1, "status": 1 })
                    .options(IndexOptions::builder().name("outgoing".to_string()).build())
                    .build(),
            ])
            .await?;
        Ok(())
    }

    pub async fn insert(&self, invitation: &Invitation) -> mongodb::error::Result<()> {
        self.invitations.insert_one(invitation).await.map(|_| ())
    }

    pub async fn by_id(&self, id: ObjectId) -> mongodb::error::Result<Option<Invitation>> {
        self.invitations.find_one(doc! { "_id": id }).await
    }

    /// Pending requests `user` sent or received.
    pub async fn pending_of(&self, user: ObjectId) -> mongodb::error::Result<Vec<Invitation>> {
        self.invitations
            .find(doc! { "status": "pending", "$or": [{ "sender": user }, { "receiver": user }] })
            .sort(doc! { "createdAt": -1 })
            .await?
            .try_collect()
            .await
    }

    /// Closes a pending request; `None` when it was not pending (or not `party`'s to close).
    pub async fn close(
        &self,
        id: ObjectId,
        party_filter: mongodb::bson::Document,
        status: InvitationStatus,
        tx: Option<&mut ClientSession>,
    ) -> mongodb::error::Result<Option<Invitation>> {
        let mut filter = doc! { "_id": id, "status": "pending" };
        filter.extend(party_filter);
        let status = mongodb::bson::to_bson(&status)?;
        let update = self
            .invitations
            .find_one_and_update(
                filter,
                doc! { "$set": { "status": status, "updatedAt": DateTime::now() }, "$unset": { "pendingKey": "" } },
            )
            .return_document(ReturnDocument::After);
        match tx {
            Some(tx) => update.session(tx).await,
            None => update.await,
        }
    }

    pub async fn befriend(&self, a: ObjectId, b: ObjectId, tx: &mut ClientSession) -> mongodb::error::Result<()> {
        for (me, other) in [(a, b), (b, a)] {
            self.users
                .update_one(doc! { "_id": me }, doc! { "$addToSet": { "friends": other } })
                .session(&mut *tx)
                .await?;
        }
        Ok(())
    }

    pub async fn unfriend(&self, a: ObjectId, b: ObjectId, tx: &mut ClientSession) -> mongodb::error::Result<bool> {
        let mut removed = false;
        for (me, other) in [(a, b), (b, a)] {
            let r = self
                .users
                .update_one(doc! { "_id": me }, doc! { "$pull": { "friends": other } })
                .session(&mut *tx)
                .await?;
            removed |= r.modified_count > 0;
        }
        Ok(removed)
    }

    pub async fn friend_ids(&self, user: ObjectId) -> mongodb::error::Result<Vec<ObjectId>> {
        let found = self
            .users
            .find_one(doc! { "_id": user })
            .projection(doc! { "friends": 1 })
            .await?;
        Ok(found
            .and_then(|d| d.get_array("friends").ok().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_object_id())
            .collect())
    }

    pub async fn are_friends(&self, a: ObjectId, b: ObjectId) -> mongodb::error::Result<bool> {
        Ok(self.users.find_one(doc! { "_id": a, "friends": b }).await?.is_some())
    }
}
