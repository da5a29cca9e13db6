//! MongoDB repositories (one file per collection), index creation, transactions, and the S3
//! media store.

pub mod ai;
pub mod append;
pub mod calls;
pub mod chats;
pub mod friends;
pub mod groups;
pub mod media;
pub mod messages;
pub mod notifications;
pub mod otps;
pub mod s3;
pub mod sessions;
pub mod tx;
pub mod users;

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::{ClientOptions, WriteConcern};
use mongodb::{Client, Database};

pub use otps::{OtpPurpose, OtpStore};
pub use sessions::SessionStore;
pub use users::UserStore;

/// Handles to every repository; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub client: Client,
    pub db: Database,
    pub users: UserStore,
    pub sessions: SessionStore,
    pub otps: OtpStore,
    pub chats: chats::ChatStore,
    pub messages: messages::MessageStore,
    pub friends: friends::FriendStore,
    pub groups: groups::GroupStore,
    pub calls: calls::CallStore,
    pub media: media::UploadStore,
    pub notifications: notifications::NotificationStore,
    pub ai: ai::AiStore,
}

impl Store {
    /// Connects with majority write concern, so an acknowledged write survives failover.
    pub async fn connect(uri: &str, db_name: &str) -> anyhow::Result<Self> {
        let mut options = ClientOptions::parse(uri).await?;
        options.app_name = Some("huddle".into());
        options.write_concern = Some(WriteConcern::majority());
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(10));
        }
        let client = Client::with_options(options)?;
        Ok(Self::from_client(client, db_name))
    }

    pub fn from_client(client: Client, db_name: &str) -> Self {
        let db = client.database(db_name);
        Self {
            users: UserStore::new(&db),
            sessions: SessionStore::new(&db),
            otps: OtpStore::new(&db),
            chats: chats::ChatStore::new(&db),
            messages: messages::MessageStore::new(&db),
            friends: friends::FriendStore::new(&db),
            groups: groups::GroupStore::new(&db),
            calls: calls::CallStore::new(&db),
            media: media::UploadStore::new(&db),
            notifications: notifications::NotificationStore::new(&db),
            ai: ai::AiStore::new(&db),
            client,
            db,
        }
    }

    /// Creates the indexes every query relies on; safe to run at every start.
    pub async fn ensure_indexes(&self) -> anyhow::Result<()> {
        self.users.ensure_indexes().await?;
        self.sessions.ensure_indexes().await?;
        self.otps.ensure_indexes().await?;
        self.chats.ensure_indexes().await?;
        self.messages.ensure_indexes().await?;
        self.friends.ensure_indexes().await?;
        self.groups.ensure_indexes().await?;
        self.calls.ensure_indexes().await?;
        self.media.ensure_indexes().await?;
        self.notifications.ensure_indexes().await?;
        self.ai.ensure_indexes().await?;
        Ok(())
    }

    pub async fn ping(&self) -> mongodb::error::Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map(|_| ())
    }
}

/// Drops an index an earlier version created, if it is still there.
pub async fn drop_index_if_present<T: Send + Sync>(
    coll: &mongodb::Collection<T>,
    name: &str,
) -> mongodb::error::Result<()> {
    if coll.list_index_names().await?.iter().any(|n| n == name) {
        coll.drop_index(name).await?;
    }
    Ok(())
}

/// True when a write failed on a unique index.
pub fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|e| e.code == 11000)),
        _ => error.to_string().contains("E11000"),
    }
}

/// One page of `filter`'s documents, newest first (ids grow with time), older than the
/// `before` id when paging.
pub async fn newest_first<T>(
    coll: &mongodb::Collection<T>,
    mut filter: mongodb::bson::Document,
    before: Option<mongodb::bson::oid::ObjectId>,
    limit: i64,
) -> mongodb::error::Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    use futures::TryStreamExt;
    if let Some(before) = before {
        filter.insert("_id", doc! { "$lt": before });
    }
    coll.find(filter)
        .sort(doc! { "_id": -1 })
        .limit(limit)
        .await?
        .try_collect()
        .await
}

/// The `limit` documents of `filter` with the highest `seq`, returned oldest first: the
/// newest stretch of a conversation, in reading order.
pub async fn newest_by_seq<T>(
    coll: &mongodb::Collection<T>,
    filter: mongodb::bson::Document,
    limit: i64,
) -> mongodb::error::Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    use futures::TryStreamExt;
    let mut found: Vec<T> = coll
        .find(filter)
        .sort(doc! { "seq": -1 })
        .limit(limit)
        .await?
        .try_collect()
        .await?;
    found.reverse();
    Ok(found)
}

/// A unique index on `keys`, named `name`.
pub fn unique_index(keys: mongodb::bson::Document, name: &str) -> mongodb::IndexModel {
    mongodb::IndexModel::builder()
        .keys(keys)
        .options(
            mongodb::options::IndexOptions::builder()
                .unique(true)
                .name(name.to_string())
                .build(),
        )
        .build()
}

/// An index that lets MongoDB delete a document once its `field` date has passed.
pub fn expiry_index(field: &str) -> mongodb::IndexModel {
    mongodb::IndexModel::builder()
        .keys(doc! { field: 1 })
        .options(
            mongodb::options::IndexOptions::builder()
                .name("expiry_ttl".to_string())
                .expire_after(Duration::ZERO)
                .build(),
        )
        .build()
}

/// Now as a BSON date, truncated to milliseconds like everything MongoDB stores.
pub fn now() -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::now()
}
