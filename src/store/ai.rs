//! The assistant's collections: `ai_chats`, one per user (the spec's AI Chat, created on first
//! use and always pinned), and `ai_messages`, its questions and answers ordered by `seq`.
//! The spec's `messages` array is this query, not an embedded list that grows forever.

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use super::is_duplicate_key;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiChat {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub user_id: ObjectId,
    pub pinned: bool,
    /// The `seq` of the newest message; 0 before the first.
    pub last_seq: i64,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

pub use huddle_signaling::protocol::{AiRole, AiStatus};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiMessage {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub ai_chat_id: ObjectId,
    pub user_id: ObjectId,
    pub seq: i64,
    pub role: AiRole,
    /// The sender's id for questions; `answer-<question id>` for answers, so a question
    /// has at most one answer.
    pub client_msg_id: String,
    pub content: String,
    pub status: AiStatus,
    /// For answers: the question answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<ObjectId>,
    /// For summaries: the chat summarized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_chat_id: Option<ObjectId>,
    /// For answers: the model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl AiMessage {
    /// A complete message to append (its `seq` is taken then); set the optional fields after.
    pub fn draft(
        id: ObjectId,
        ai_chat_id: ObjectId,
        user_id: ObjectId,
        role: AiRole,
        client_msg_id: String,
        content: String,
    ) -> Self {
        let now = DateTime::now();
        Self {
            id,
            ai_chat_id,
            user_id,
            seq: 0,
            role,
            client_msg_id,
            content,
            status: AiStatus::Complete,
            question_id: None,
            source_chat_id: None,
            model: None,
            created_at: now,
            updated_at: now,
        }
    }
}

pub fn answer_client_id(question: ObjectId) -> String {
    format!("answer-{}", question.to_hex())
}

impl super::append::Entry for AiMessage {
    type Head = AiChat;
    const LOG_FIELD: &'static str = "aiChatId";

    fn log(&self) -> ObjectId {
        self.ai_chat_id
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

    /// An AI chat holds its own user's messages only.
    fn admit(&mut self, chat: &Self::Head) -> bool {
        chat.user_id == self.user_id
    }

    fn key(&self) -> mongodb::bson::Document {
        doc! { "aiChatId": self.ai_chat_id, "clientMsgId": &self.client_msg_id }
    }
}

#[derive(Clone, Debug)]
pub struct AiStore {
    chats: Collection<AiChat>,
    messages: Collection<AiMessage>,
    appender: super::append::Appender<AiMessage>,
}

impl AiStore {
    pub fn new(db: &Database) -> Self {
        Self {
            chats: db.collection("ai_chats"),
            messages: db.collection("ai_messages"),
            appender: super::append::Appender::new(db, "ai_messages", "ai_chats"),
        }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let unique = |keys, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).name(name.to_string()).build())
                .build()
        };
        self.chats
            .create_index(unique(doc! { "userId": 1 }, "user_unique"))
            .await?;
        self.messages
            .create_indexes([
                unique(doc! { "aiChatId": 1, "seq": 1 }, "chat_seq"),
                unique(doc! { "aiChatId": 1, "clientMsgId": 1 }, "client_msg_id"),
                IndexModel::builder()
                    .keys(doc! { "userId": 1, "role": 1, "createdAt": 1 })
                    .options(IndexOptions::builder().name("daily_quota".to_string()).build())
                    .build(),
            ])
            .await?;
        Ok(())
    }

    /// The user's AI chat, created on first use.
    pub async fn chat_of(&self, user: ObjectId) -> mongodb::error::Result<AiChat> {
        if let Some(chat) = self.existing_chat(user).await? {
            return Ok(chat);
        }
        let now = DateTime::now();
        let chat = AiChat {
            id: ObjectId::new(),
            user_id: user,
            pinned: true,
            last_seq: 0,
            created_at: now,
            updated_at: now,
        };
        match self.chats.insert_one(&chat).await {
            Ok(_) => Ok(chat),
            // Another request created it first.
            Err(e) if is_duplicate_key(&e) => self.existing_chat(user).await?.ok_or(e),
            Err(e) => Err(e),
        }
    }

    pub async fn existing_chat(&self, user: ObjectId) -> mongodb::error::Result<Option<AiChat>> {
        self.chats.find_one(doc! { "userId": user }).await
    }

    /// Stores `message` under the chat's next `seq` (filled in here) and returns it; a
    /// message whose `clientMsgId` is stored comes back as stored (`fresh: false`).
    pub async fn append(
        &self,
        message: AiMessage,
    ) -> Result<super::append::Appended<AiMessage>, super::append::AppendError> {
        self.appender.append(message).await
    }

    pub async fn by_client_id(&self, chat: ObjectId, client_msg_id: &str) -> mongodb::error::Result<Option<AiMessage>> {
        self.messages
            .find_one(doc! { "aiChatId": chat, "clientMsgId": client_msg_id })
            .await
    }

    /// The newest `limit` messages before `seq` (or the newest overall), oldest first.
    /// The AI chat's newest message, found from `head_seq`, the `lastSeq` the chat was read
    /// with (which may trail it; see [`super::append`]).
    pub async fn newest(&self, chat: ObjectId, head_seq: i64) -> mongodb::error::Result<Option<AiMessage>> {
        self.appender.newest(chat, head_seq).await
    }

    pub async fn page(
        &self,
        chat: ObjectId,
        before: Option<i64>,
        limit: i64,
    ) -> mongodb::error::Result<Vec<AiMessage>> {
        let filter = match before {
            Some(seq) => doc! { "aiChatId": chat, "seq": { "$lt": seq } },
            None => doc! { "aiChatId": chat },
        };
        super::newest_by_seq(&self.messages, filter, limit).await
    }

    /// Questions `user` asked since `since`: what the daily quota counts.
    pub async fn questions_since(&self, user: ObjectId, since: DateTime) -> mongodb::error::Result<u64> {
        self.messages
            .count_documents(doc! { "userId": user, "role": "user", "createdAt": { "$gte": since } })
            .await
    }
}
