//! The `sessions` collection: one document per refresh-token family (one sign-in on one
//! device). Only SHA-256 hashes of refresh secrets are stored; a spent hash presented again
//! revokes the family.

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// How many spent hashes a family remembers for reuse detection.
const SPENT_KEPT: i32 = 64;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub user_id: ObjectId,
    pub token_hash: String,
    #[serde(default)]
    pub spent_hashes: Vec<String>,
    pub created_at: DateTime,
    pub last_used_at: DateTime,
    /// Absolute end of the family: rotation never extends it.
    pub expires_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

/// What presenting a refresh secret led to.
#[derive(Debug)]
pub enum Rotation {
    Rotated(Session),
    /// A spent secret came back: the whole family is now revoked.
    ReuseDetected,
    Invalid,
}

#[derive(Clone, Debug)]
pub struct SessionStore {
    coll: Collection<Session>,
}

impl SessionStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("sessions"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.coll
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "userId": 1 })
                    .options(IndexOptions::builder().name("user".to_string()).build())
                    .build(),
                super::expiry_index("expiresAt"),
            ])
            .await?;
        Ok(())
    }

    pub async fn insert(&self, session: &Session, tx: Option<&mut ClientSession>) -> mongodb::error::Result<()> {
        let insert = self.coll.insert_one(session);
        match tx {
            Some(tx) => insert.session(tx).await,
            None => insert.await,
        }
        .map(|_| ())
    }

    /// True while the family is neither revoked nor past its absolute expiry.
    pub async fn is_active(&self, id: ObjectId) -> mongodb::error::Result<bool> {
        let found = self
            .coll
            .clone_with_type::<mongodb::bson::Document>()
            .find_one(doc! { "_id": id, "revokedAt": null, "expiresAt": { "$gt": super::now() } })
            .projection(doc! { "_id": 1 })
            .await?;
        Ok(found.is_some())
    }

    /// Swaps `old_hash` for `new_hash` atomically; tells reuse of a spent secret apart from
    /// garbage.
    pub async fn rotate(&self, id: ObjectId, old_hash: &str, new_hash: &str) -> mongodb::error::Result<Rotation> {
        let now = super::now();
        let rotated = self
            .coll
            .find_one_and_update(
                doc! { "_id": id, "tokenHash": old_hash, "revokedAt": null, "expiresAt": { "$gt": now } },
                doc! {
                    "$set": { "tokenHash": new_hash, "lastUsedAt": now },
                    "$push": { "spentHashes": { "$each": [old_hash], "$slice": -SPENT_KEPT } },
                },
            )
            .return_document(ReturnDocument::After)
            .await?;
        if let Some(session) = rotated {
            return Ok(Rotation::Rotated(session));
        }
        let reused = self
            .coll
            .update_one(
                doc! { "_id": id, "spentHashes": old_hash, "revokedAt": null },
                doc! { "$set": { "revokedAt": now, "revokedReason": "reuse" } },
            )
            .await?;
        Ok(if reused.matched_count > 0 {
            Rotation::ReuseDetected
        } else {
            Rotation::Invalid
        })
    }

    /// Finds the live family a current refresh secret belongs to.
    pub async fn find_current(&self, id: ObjectId, hash: &str) -> mongodb::error::Result<Option<Session>> {
        self.coll
            .find_one(doc! { "_id": id, "tokenHash": hash, "revokedAt": null })
            .await
    }

    pub async fn revoke(&self, id: ObjectId, reason: &str) -> mongodb::error::Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id, "revokedAt": null },
                doc! { "$set": { "revokedAt": super::now(), "revokedReason": reason } },
            )
            .await
            .map(|_| ())
    }

    /// Revokes every live family of a user (password change or reset).
    pub async fn revoke_all(
        &self,
        user_id: ObjectId,
        reason: &str,
        tx: &mut ClientSession,
    ) -> mongodb::error::Result<()> {
        self.coll
            .update_many(
                doc! { "userId": user_id, "revokedAt": null },
                doc! { "$set": { "revokedAt": super::now(), "revokedReason": reason } },
            )
            .session(tx)
            .await
            .map(|_| ())
    }
}
