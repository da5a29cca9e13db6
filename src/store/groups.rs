//! The `groups` collection: a group's name, about text, members, admins and pending
//! invitations (bounded sets, kept embedded). Its chat is a `chats` document whose
//! participants mirror `members`; both change together in a transaction.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub name: String,
    #[serde(default)]
    pub about: String,
    pub members: Vec<ObjectId>,
    pub admins: Vec<ObjectId>,
    #[serde(default)]
    pub invited: Vec<ObjectId>,
    pub chat_id: ObjectId,
    /// Bumped by every change, so a change can require the version it was decided on.
    #[serde(default)]
    pub version: i64,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Clone, Debug)]
pub struct GroupStore {
    coll: Collection<Group>,
}

impl GroupStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("groups"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.coll
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "members": 1 })
                    .options(IndexOptions::builder().name("members".to_string()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "invited": 1 })
                    .options(IndexOptions::builder().name("invited".to_string()).build())
                    .build(),
            ])
            .await?;
        Ok(())
    }

    pub async fn insert(&self, group: &Group, tx: &mut ClientSession) -> mongodb::error::Result<()> {
        self.coll.insert_one(group).session(tx).await.map(|_| ())
    }

    /// The group if `user` is a member or has a pending invitation; else `None`, exactly as
    /// for a group that does not exist.
    pub async fn visible_to(&self, id: ObjectId, user: ObjectId) -> mongodb::error::Result<Option<Group>> {
        self.coll
            .find_one(doc! { "_id": id, "$or": [{ "members": user }, { "invited": user }] })
            .await
    }

    pub async fn of_member(&self, user: ObjectId) -> mongodb::error::Result<Vec<Group>> {
        self.coll
            .find(doc! { "$or": [{ "members": user }, { "invited": user }] })
            .sort(doc! { "updatedAt": -1 })
            .await?
            .try_collect()
            .await
    }

    /// Applies `update` if the group is still at `version` (the state the change was decided
    /// on); returns the group after the change, or `None` if someone changed it first.
    pub async fn update_at(
        &self,
        id: ObjectId,
        version: i64,
        mut update: Document,
        tx: Option<&mut ClientSession>,
    ) -> mongodb::error::Result<Option<Group>> {
        let full = doc! { "_id": id, "version": version };
        update.insert("$inc", doc! { "version": 1_i64 });
        let set = update.get_document_mut("$set").ok();
        match set {
            Some(set) => {
                set.insert("updatedAt", DateTime::now());
            }
            None => {
                update.insert("$set", doc! { "updatedAt": DateTime::now() });
            }
        }
        let action = self
            .coll
            .find_one_and_update(full, update)
            .return_document(ReturnDocument::After);
        match tx {
            Some(tx) => action.session(tx).await,
            None => action.await,
        }
    }
}
