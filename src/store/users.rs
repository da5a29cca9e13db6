//! The `users` collection. Field names follow the product spec's User model; the password
//! hash never leaves this layer except to the verifier.

use futures::TryStreamExt;
use mongodb::bson::{self, DateTime, Document, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub first_name: String,
    pub last_name: String,
    pub username: String,
    pub email: String,
    /// The argon2id PHC string.
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub about: String,
    pub email_verified: bool,
    pub status: Presence,
    #[serde(default)]
    pub friends: Vec<ObjectId>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// Profile fields a user may change about themselves.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub about: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct UserStore {
    coll: Collection<User>,
    holds: Collection<Document>,
}

impl UserStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("users"),
            holds: db.collection("username_holds"),
        }
    }

    /// Holds `username` for a registration of `email`, an address that already has a
    /// verified account, exactly as a registration of a new address holds its username
    /// in the pending account: a newer registration of the address moves the hold, and a
    /// username held by another address is taken. So whether a username ends up taken says
    /// nothing about whether the address has an account.
    pub async fn hold_username(&self, email: &str, username: &str) -> mongodb::error::Result<()> {
        self.holds
            .replace_one(
                doc! { "_id": email },
                doc! { "_id": email, "username": username, "heldAt": super::now() },
            )
            .upsert(true)
            .await
            .map(|_| ())
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let unique = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).name(name.to_string()).build())
                .build()
        };
        self.coll
            .create_indexes([
                unique(doc! { "email": 1 }, "email_unique"),
                unique(doc! { "username": 1 }, "username_unique"),
            ])
            .await?;
        self.holds
            .create_indexes([unique(doc! { "username": 1 }, "username_unique")])
            .await?;
        Ok(())
    }

    pub async fn insert(&self, user: &User, session: &mut ClientSession) -> mongodb::error::Result<()> {
        self.coll.insert_one(user).session(session).await.map(|_| ())
    }

    pub async fn by_id(&self, id: ObjectId) -> mongodb::error::Result<Option<User>> {
        self.coll.find_one(doc! { "_id": id }).await
    }

    pub async fn by_email(&self, email: &str) -> mongodb::error::Result<Option<User>> {
        self.coll.find_one(doc! { "email": email }).await
    }

    pub async fn username_taken(&self, username: &str) -> mongodb::error::Result<bool> {
        let filter = doc! { "username": username };
        Ok(self.coll.find_one(filter.clone()).await?.is_some() || self.holds.find_one(filter).await?.is_some())
    }

    pub async fn mark_verified(&self, id: ObjectId, session: &mut ClientSession) -> mongodb::error::Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "emailVerified": true, "updatedAt": super::now() } },
            )
            .session(session)
            .await
            .map(|_| ())
    }

    pub async fn set_password(
        &self,
        id: ObjectId,
        hash: &str,
        session: &mut ClientSession,
    ) -> mongodb::error::Result<()> {
        let now = super::now();
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "password": hash, "passwordChangedAt": now, "updatedAt": now } },
            )
            .session(session)
            .await
            .map(|_| ())
    }

    /// Replaces the profile and password of a still-unverified account (a newer registration
    /// for its address); `Ok(None)` when it is verified or gone.
    pub async fn replace_pending(
        &self,
        id: ObjectId,
        patch: ProfilePatch,
        hash: &str,
    ) -> mongodb::error::Result<Option<User>> {
        let mut set = doc! { "password": hash, "updatedAt": super::now() };
        for (key, value) in [
            ("firstName", patch.first_name),
            ("lastName", patch.last_name),
            ("username", patch.username),
        ] {
            if let Some(value) = value {
                set.insert(key, value);
            }
        }
        self.coll
            .find_one_and_update(doc! { "_id": id, "emailVerified": false }, doc! { "$set": set })
            .return_document(mongodb::options::ReturnDocument::After)
            .await
    }

    /// Applies a profile change; `Ok(None)` when the user no longer exists.
    pub async fn update_profile(&self, id: ObjectId, patch: ProfilePatch) -> mongodb::error::Result<Option<User>> {
        let mut set = doc! { "updatedAt": super::now() };
        let fields = [
            ("firstName", patch.first_name),
            ("lastName", patch.last_name),
            ("username", patch.username),
            ("about", patch.about),
            ("avatarUrl", patch.avatar_url),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                set.insert(key, value);
            }
        }
        self.coll
            .find_one_and_update(doc! { "_id": id }, doc! { "$set": set })
            .return_document(mongodb::options::ReturnDocument::After)
            .await
    }

    /// Verified users whose username or names start with `prefix` (case-insensitive),
    /// excluding `exclude`, ordered by username, after the `after` username cursor.
    pub async fn search(
        &self,
        prefix: Option<&str>,
        exclude: &[ObjectId],
        after: Option<&str>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<User>> {
        let mut filter = doc! { "_id": { "$nin": exclude }, "emailVerified": true };
        if let Some(prefix) = prefix {
            let pattern = format!("^{}", escape_regex(prefix));
            let regex = bson::Regex {
                pattern,
                options: "i".into(),
            };
            filter.insert(
                "$or",
                vec![
                    doc! { "username": regex.clone() },
                    doc! { "firstName": regex.clone() },
                    doc! { "lastName": regex },
                ],
            );
        }
        if let Some(after) = after {
            filter.insert("username", doc! { "$gt": after });
        }
        self.coll
            .find(filter)
            .sort(doc! { "username": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await
    }
}

/// Escapes every regex metacharacter so user text only ever matches itself.
pub fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_regex;

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(escape_regex("a.b*c"), r"a\.b\*c");
        assert_eq!(escape_regex("(.*)$"), r"\(\.\*\)\$");
        assert_eq!(escape_regex("ada"), "ada");
    }
}
