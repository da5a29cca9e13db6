//! The `one_time_codes` collection: at most one live code per user and purpose, stored as a
//! keyed hash, with an expiry and an attempt counter.

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// How many wrong guesses a code survives (ASVS 6.5: the sixth try fails even if right).
pub const MAX_ATTEMPTS: i32 = 5;

/// Guesses at an account's codes of one purpose in a day, across every code it is sent,
/// from clients that are not one of the account's trusted devices. Asking for a new code
/// starts a code's own count again but not this one, so guessing a six-digit code stays
/// at odds of at most 50 in a million a day.
pub const MAX_GUESSES_PER_DAY: i32 = 50;

/// An account's running count of untrusted guesses for one purpose.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Guesses {
    user_id: ObjectId,
    purpose: OtpPurpose,
    guesses: i32,
    window_ends: DateTime,
}

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
    guesses: Collection<Guesses>,
}

impl OtpStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("one_time_codes"),
            guesses: db.collection("code_guesses"),
        }
    }

    /// Counts one untrusted guess at `user`'s `purpose` codes; false once the day's
    /// [`MAX_GUESSES_PER_DAY`] are used (the guess must then fail, right or not).
    pub async fn take_guess(&self, user_id: ObjectId, purpose: OtpPurpose) -> mongodb::error::Result<bool> {
        let now = super::now();
        let day_from_now = DateTime::from_millis(now.timestamp_millis() + 24 * 3600 * 1000);
        let key = doc! { "userId": user_id, "purpose": purpose.as_str() };
        // One round trip whether or not the account has a window yet.
        let window = self
            .guesses
            .find_one_and_update(
                key.clone(),
                doc! { "$inc": { "guesses": 1 }, "$setOnInsert": { "windowEnds": day_from_now } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?;
        match window {
            Some(w) if w.window_ends > now => Ok(w.guesses <= MAX_GUESSES_PER_DAY),
            _ => {
                // A window past its end that the expiry sweep has not removed yet.
                let fresh = Guesses {
                    user_id,
                    purpose,
                    guesses: 1,
                    window_ends: day_from_now,
                };
                self.guesses.replace_one(key, &fresh).upsert(true).await?;
                Ok(true)
            }
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        // One document per user and purpose in each, gone when it expires.
        let per_user = || {
            IndexModel::builder()
                .keys(doc! { "userId": 1, "purpose": 1 })
                .options(
                    IndexOptions::builder()
                        .unique(true)
                        .name("user_purpose".to_string())
                        .build(),
                )
                .build()
        };
        self.coll
            .create_indexes([per_user(), super::expiry_index("expiresAt")])
            .await?;
        self.guesses
            .create_indexes([per_user(), super::expiry_index("windowEnds")])
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
