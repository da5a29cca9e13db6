//! The `one_time_codes` collection: at most one live code per user and purpose, stored as a
//! keyed hash, with an expiry and an attempt counter.

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// How many wrong guesses a code survives (ASVS 6.5: the sixth try fails even if right).
pub const MAX_ATTEMPTS: i32 = 5;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtpPurpose {
    VerifyEmail,
    ResetPassword,
}

impl OtpPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Otp {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub user_id: ObjectId,
    pub purpose: OtpPurpose,
    pub code_hash: String,
    pub attempts: i32,
    pub created_at: DateTime,
    pub expires_at: DateTime,
}

#[derive(Clone, Debug)]
pub struct OtpStore {
    coll: Collection<Otp>,
}

impl OtpStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("one_time_codes"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.coll
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "userId": 1, "purpose": 1 })
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .name("user_purpose".to_string())
                            .build(),
                    )
                    .build(),
                super::expiry_index("expiresAt"),
            ])
            .await?;
        Ok(())
    }

    /// Replaces any earlier code of the same purpose: only the newest code works, and its
    /// attempt count starts again.
    pub async fn replace(&self, otp: &Otp, tx: Option<&mut ClientSession>) -> mongodb::error::Result<()> {
        let update = self
            .coll
            .update_one(
                doc! { "userId": otp.user_id, "purpose": otp.purpose.as_str() },
                doc! {
                    "$set": {
                        "codeHash": &otp.code_hash,
                        "attempts": 0,
                        "createdAt": otp.created_at,
                        "expiresAt": otp.expires_at,
                    },
                    "$setOnInsert": { "_id": otp.id },
                },
            )
            .upsert(true);
        match tx {
            Some(tx) => update.session(tx).await,
            None => update.await,
        }
        .map(|_| ())
    }

    /// Counts one attempt against the live code and returns it, or `None` when there is no
    /// code, it expired, or its attempts are used up. The count is taken before the caller
    /// compares, so parallel guesses cannot exceed the limit.
    pub async fn take_attempt(&self, user_id: ObjectId, purpose: OtpPurpose) -> mongodb::error::Result<Option<Otp>> {
        self.coll
            .find_one_and_update(
                doc! {
                    "userId": user_id,
                    "purpose": purpose.as_str(),
                    "expiresAt": { "$gt": super::now() },
                    "attempts": { "$lt": MAX_ATTEMPTS },
                },
                doc! { "$inc": { "attempts": 1 } },
            )
            .return_document(ReturnDocument::After)
            .await
    }

    /// Consumes a code (single use); false when it was already consumed.
    pub async fn consume(&self, id: ObjectId, tx: &mut ClientSession) -> mongodb::error::Result<bool> {
        let deleted = self.coll.delete_one(doc! { "_id": id }).session(tx).await?;
        Ok(deleted.deleted_count == 1)
    }
}
