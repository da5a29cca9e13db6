//! The `messages` collection: one document per message, ordered within its chat by `seq`,
//! unique per sender and `clientMsgId` so a retried send finds the stored message.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::chat::MessageType;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub chat_id: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<ObjectId>,
    pub seq: i64,
    pub sender: ObjectId,
    pub client_msg_id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default)]
    pub attachments: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ObjectId>,
    /// Left out while empty, so that only starred messages are in the `starred` index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starred_by: Vec<ObjectId>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime>,
    #[serde(default)]
    pub deleted: bool,
    /// For `type: call`: the record of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRecord>,
    /// Set when the message was stored while a member was away: their notifications are
    /// still to be written. Cleared once they are; a node that stops before that leaves it
    /// set, and the next start writes them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_pending: bool,
}

/// What a call leaves in its chat's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub call_id: ObjectId,
    #[serde(rename = "type")]
    pub kind: huddle_signaling::CallKind,
    pub participants: Vec<ObjectId>,
    pub started_at: DateTime,
    pub ended_at: DateTime,
    pub duration_secs: i64,
    pub status: huddle_signaling::CallStatus,
}

/// Which slice of a chat's history to read.
#[derive(Clone, Copy, Debug)]
pub enum Page {
    /// The newest `limit` messages before `seq` (or the newest overall).
    Before(Option<i64>),
    /// The oldest `limit` messages after `seq`, in order: what a client missed.
    After(i64),
}

impl super::append::Entry for Message {
    type Head = super::chats::ChatHead;
    const LOG_FIELD: &'static str = "chatId";

    fn head_projection() -> Option<mongodb::bson::Document> {
        Some(doc! { "participants": 1, "groupId": 1, "lastSeq": 1 })
    }

    fn log(&self) -> ObjectId {
        self.chat_id
    }

    fn seq(&self) -> i64 {
        self.seq
    }

    fn set_seq(&mut self, seq: i64) {
        self.seq = seq;
    }

    fn head_seq(head: &Self::Head) -> i64 {
        head.last_seq
    }

    /// Only a participant may post; the message takes the chat's group.
    fn admit(&mut self, chat: &Self::Head) -> bool {
        self.group_id = chat.group_id;
        chat.participants.contains(&self.sender)
    }

    fn key(&self) -> mongodb::bson::Document {
        doc! { "chatId": self.chat_id, "sender": self.sender, "clientMsgId": &self.client_msg_id }
    }
}

#[derive(Clone, Debug)]
pub struct MessageStore {
    coll: Collection<Message>,
    appender: super::append::Appender<Message>,
}

impl MessageStore {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection("messages"),
            appender: super::append::Appender::new(db, "messages", "chats"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        use super::unique_index as unique;
        self.coll
            .create_indexes([
                unique(doc! { "chatId": 1, "seq": 1 }, "chat_seq"),
                unique(doc! { "chatId": 1, "sender": 1, "clientMsgId": 1 }, "client_msg_id"),
                // Sparse, on `starredBy` alone: a message nobody starred has no entry (the
                // compound index this replaces had one for every message). A user's starred
                // messages are few; the chat is filtered after.
                IndexModel::builder()
                    .keys(doc! { "starredBy": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("starred_by".to_string())
                            .sparse(true)
                            .build(),
                    )
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "notifyPending": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("notify_pending".to_string())
                            .sparse(true)
                            .build(),
                    )
                    .build(),
            ])
            .await?;
        super::drop_index_if_present(&self.coll, "starred").await
    }

    /// Stores `message` under its chat's next `seq`, if its sender is a participant; a
    /// retry of a stored `clientMsgId` returns the stored message (`fresh: false`).
    /// `prepare` runs on the message once its chat is read, before it is written.
    pub async fn append(
        &self,
        message: Message,
        prepare: Option<super::append::Prepare<Message>>,
    ) -> Result<super::append::Appended<Message>, super::append::AppendError> {
        self.appender.append_with(message, prepare).await
    }

    /// Messages whose away members' notifications are still to be written.
    pub async fn notify_pending(&self, limit: i64) -> mongodb::error::Result<Vec<Message>> {
        self.coll
            .find(doc! { "notifyPending": true })
            .limit(limit)
            .await?
            .try_collect()
            .await
    }

    /// Marks a message's notifications as written.
    pub async fn notified(&self, id: ObjectId) -> mongodb::error::Result<()> {
        self.coll
            .update_one(doc! { "_id": id }, doc! { "$unset": { "notifyPending": "" } })
            .await
            .map(|_| ())
    }

    pub async fn by_id(&self, id: ObjectId) -> mongodb::error::Result<Option<Message>> {
        self.coll.find_one(doc! { "_id": id }).await
    }

    pub async fn by_client_id(
        &self,
        chat: ObjectId,
        sender: ObjectId,
        client_msg_id: &str,
    ) -> mongodb::error::Result<Option<Message>> {
        self.coll
            .find_one(doc! { "chatId": chat, "sender": sender, "clientMsgId": client_msg_id })
            .await
    }

    /// The chat's newest message, found from `head_seq`, the `lastSeq` its chat was read
    /// with (see [`super::append`]: a chat's `lastSeq` may trail its newest message).
    pub async fn newest(&self, chat: ObjectId, head_seq: i64) -> mongodb::error::Result<Option<Message>> {
        self.appender.newest(chat, head_seq).await
    }

    /// A page of history, always returned oldest first. `newest` is the chat's `lastSeq`:
    /// `seq`s have no gaps, so a page is a bounded range of the `(chatId, seq)` index
    /// (an unbounded scan from the end of a long chat is slow). Messages newer than `newest`
    /// (written since it was read) still come with `Before(None)`.
    pub async fn page(
        &self,
        chat: ObjectId,
        page: Page,
        limit: i64,
        newest: i64,
    ) -> mongodb::error::Result<Vec<Message>> {
        let (filter, order) = match page {
            Page::Before(Some(seq)) => (doc! { "chatId": chat, "seq": { "$lt": seq, "$gte": seq - limit } }, -1),
            Page::Before(None) => (doc! { "chatId": chat, "seq": { "$gt": newest - limit } }, -1),
            Page::After(seq) => (doc! { "chatId": chat, "seq": { "$gt": seq } }, 1),
        };
        let mut messages: Vec<Message> = self
            .coll
            .find(filter)
            .sort(doc! { "seq": order })
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        if order == -1 {
            messages.reverse();
        }
        Ok(messages)
    }

    /// Messages from others after `seq`: the member's unread count.
    pub async fn unread(&self, chat: ObjectId, user: ObjectId, after: i64) -> mongodb::error::Result<u64> {
        self.coll
            .count_documents(
                doc! { "chatId": chat, "seq": { "$gt": after }, "sender": { "$ne": user }, "deleted": false },
            )
            .await
    }

    /// The newest `limit` messages from others after `after`, oldest first: what a member
    /// has not read.
    pub async fn unread_newest(
        &self,
        chat: ObjectId,
        user: ObjectId,
        after: i64,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Message>> {
        let filter = doc! { "chatId": chat, "seq": { "$gt": after }, "sender": { "$ne": user }, "deleted": false };
        super::newest_by_seq(&self.coll, filter, limit).await
    }

    pub async fn edit(&self, id: ObjectId, sender: ObjectId, content: &str) -> mongodb::error::Result<Option<Message>> {
        let now = DateTime::now();
        self.coll
            .find_one_and_update(
                doc! { "_id": id, "sender": sender, "deleted": false },
                doc! { "$set": { "content": content, "editedAt": now, "updatedAt": now } },
            )
            .return_document(ReturnDocument::After)
            .await
    }

    /// A chat's messages that contain a link, newest first, before the `before` id.
    pub async fn with_links(
        &self,
        chat: ObjectId,
        before: Option<ObjectId>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<Message>> {
        let filter = doc! {
            "chatId": chat,
            "deleted": false,
            "content": { "$regex": "https?://" },
        };
        super::newest_first(&self.coll, filter, before, limit).await
    }

    /// Soft delete: the content and attachments go, the tombstone (and its `seq`) stays.
    pub async fn delete(&self, id: ObjectId, sender: ObjectId) -> mongodb::error::Result<Option<Message>> {
        self.coll
            .find_one_and_update(
                doc! { "_id": id, "sender": sender },
                doc! { "$set": { "content": "", "attachments": [], "deleted": true, "updatedAt": DateTime::now() } },
            )
            .return_document(ReturnDocument::After)
            .await
    }

    pub async fn set_star(
        &self,
        id: ObjectId,
        user: ObjectId,
        starred: bool,
    ) -> mongodb::error::Result<Option<Message>> {
        let update = if starred {
            doc! { "$addToSet": { "starredBy": user } }
        } else {
            doc! { "$pull": { "starredBy": user } }
        };
        self.coll
            .find_one_and_update(doc! { "_id": id }, update)
            .return_document(ReturnDocument::After)
            .await
    }

    /// The messages `user` starred in `chat`, oldest first: the spec's Collection of
    /// starred messages.
    pub async fn starred(&self, chat: ObjectId, user: ObjectId) -> mongodb::error::Result<Vec<Message>> {
        self.coll
            .find(doc! { "chatId": chat, "starredBy": user })
            .sort(doc! { "seq": 1 })
            .await?
            .try_collect()
            .await
    }
}
