//! Socket.IO across nodes. Every node runs the same adapter: with Redis configured, emits to a
//! room and room changes go to the other nodes over Redis pub/sub (`socketioxide-redis`);
//! without it, the adapter's driver has no one to talk to, and the node serves its own sockets
//! alone, with nothing more to run.

use socketioxide_redis::drivers::redis::{RedisDriver, RedisError};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

/// The adapter every Socket.IO handle of this server uses.
pub type NodeAdapter = CustomRedisAdapter<socketioxide::adapter::Emitter, NodeDriver>;

/// The adapter's link to the other nodes.
#[derive(Clone)]
pub enum NodeDriver {
    /// One node: nothing is published, no other node answers.
    Alone,
    /// Nodes sharing one Redis.
    Redis(RedisDriver),
}

impl std::fmt::Debug for NodeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Alone => "NodeDriver::Alone",
            Self::Redis(_) => "NodeDriver::Redis",
        })
    }
}

impl NodeDriver {
    /// Connects to Redis at `url` (RESP3, which the adapter's driver needs, is asked for
    /// when the URL does not say).
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let url = with_resp3(url);
        let client = redis::Client::open(url.as_str())?;
        Ok(Self::Redis(RedisDriver::new(&client).await?))
    }

    pub fn adapter(self) -> RedisAdapterCtr<Self> {
        RedisAdapterCtr::new_with_driver(self, RedisAdapterConfig::default())
    }
}

/// `url` with `protocol=resp3` in its query, unless it names a protocol.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

impl Driver for NodeDriver {
    type Error = RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        match self {
            Self::Alone => Ok(()),
            Self::Redis(driver) => driver.publish(chan, val).await,
        }
    }

    async fn subscribe(&self, chan: String, size: usize) -> Result<MessageStream<ChanItem>, Self::Error> {
        match self {
            Self::Alone => Ok(MessageStream::new_empty()),
            Self::Redis(driver) => driver.subscribe(chan, size).await,
        }
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        match self {
            Self::Alone => Ok(()),
            Self::Redis(driver) => driver.unsubscribe(chan).await,
        }
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        match self {
            // This node is the only one.
            Self::Alone => Ok(1),
            Self::Redis(driver) => driver.num_serv(chan).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_is_asked_for_unless_the_url_names_a_protocol() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(with_resp3("redis://h:1/0?x=1"), "redis://h:1/0?x=1&protocol=resp3");
        assert_eq!(with_resp3("redis://h:1?protocol=resp3"), "redis://h:1?protocol=resp3");
    }
}
