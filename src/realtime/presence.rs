//! Who is online, across nodes. Each node counts its own sockets per user in Redis
//! (`huddle:presence:<user>`, a field per node), so a user with sockets on two nodes is
//! online until the last of them closes. Each node also keeps a heartbeat key; a node whose
//! heartbeat expired (it died) has its counts removed by whichever node holds the janitor's
//! lock, and its users who are then on no node go offline.

use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use redis::aio::ConnectionManager;

/// How often a node renews its heartbeat, and how long one lasts: a node that stops is
/// counted out within `NODE_TTL` plus one janitor round.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
pub const NODE_TTL: Duration = Duration::from_secs(6);

const NODES: &str = "huddle:nodes";
const JANITOR_LOCK: &str = "huddle:lock:presence-janitor";

/// A socket opened on node `ARGV[1]` for user `ARGV[2]`: returns the user's sockets on every
/// node. KEYS: the user's counts, the node's users.
const OPEN: &str = r"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total
";

/// A socket closed: as [`OPEN`], the other way.
const CLOSE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total
";

/// Removes node `ARGV[2]`'s counts (key prefix `ARGV[1]`): returns the users it leaves on no
/// node. KEYS: the node's users, the node list.
const DROP_NODE: &str = r"
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. user
  redis.call('HDEL', key, ARGV[2])
  if redis.call('HLEN', key) == 0 then table.insert(gone, user) end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return gone
";

const PRESENCE_PREFIX: &str = "huddle:presence:";

fn presence_key(user: ObjectId) -> String {
    format!("{PRESENCE_PREFIX}{}", user.to_hex())
}

fn node_users_key(node: &str) -> String {
    format!("huddle:node-users:{node}")
}

fn heartbeat_key(node: &str) -> String {
    format!("huddle:node:{node}")
}

/// This node's view of the shared counts.
#[derive(Clone)]
pub struct SharedPresence {
    redis: ConnectionManager,
    node: String,
    /// The scripts, hashed once (each open and close runs one).
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    open: redis::Script,
    close: redis::Script,
    drop_node: redis::Script,
}

impl std::fmt::Debug for SharedPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPresence")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl SharedPresence {
    pub fn new(redis: ConnectionManager, node: String) -> Self {
        let scripts = Scripts {
            open: redis::Script::new(OPEN),
            close: redis::Script::new(CLOSE),
            drop_node: redis::Script::new(DROP_NODE),
        };
        Self {
            redis,
            node,
            scripts: std::sync::Arc::new(scripts),
        }
    }

    /// Counts a socket of `user` in (`opened`) or out; returns their sockets on every node.
    pub async fn count(&self, user: ObjectId, opened: bool) -> redis::RedisResult<u64> {
        let script = if opened {
            &self.scripts.open
        } else {
            &self.scripts.close
        };
        script
            .key(presence_key(user))
            .key(node_users_key(&self.node))
            .arg(&self.node)
            .arg(user.to_hex())
            .invoke_async(&mut self.redis.clone())
            .await
    }

    /// Whether `user` has a socket open on any node.
    pub async fn is_online(&self, user: ObjectId) -> redis::RedisResult<bool> {
        let fields: u64 = redis::cmd("HLEN")
            .arg(presence_key(user))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(fields > 0)
    }

    /// Renews this node's heartbeat.
    pub async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis::pipe()
            .cmd("SET")
            .arg(heartbeat_key(&self.node))
            .arg(1)
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(NODES)
            .arg(&self.node)
            .ignore()
            .query_async::<()>(&mut redis)
            .await
    }

    /// Removes `node`'s counts; returns the users left on no node.
    pub async fn drop_node(&self, node: &str) -> redis::RedisResult<Vec<ObjectId>> {
        let gone: Vec<String> = self
            .scripts
            .drop_node
            .key(node_users_key(node))
            .key(NODES)
            .arg(PRESENCE_PREFIX)
            .arg(node)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(gone.iter().filter_map(|u| ObjectId::parse_str(u).ok()).collect())
    }

    /// The nodes whose heartbeat expired, if this node holds the janitor's lock for this round.
    pub async fn dead_nodes(&self) -> redis::RedisResult<Vec<String>> {
        let mut redis = self.redis.clone();
        let locked: Option<String> = redis::cmd("SET")
            .arg(JANITOR_LOCK)
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(HEARTBEAT.as_millis() as u64)
            .query_async(&mut redis)
            .await?;
        if locked.is_none() {
            return Ok(Vec::new());
        }
        let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(&mut redis).await?;
        let mut dead = Vec::new();
        for node in nodes.into_iter().filter(|n| *n != self.node) {
            let alive: bool = redis::cmd("EXISTS")
                .arg(heartbeat_key(&node))
                .query_async(&mut redis)
                .await?;
            if !alive {
                dead.push(node);
            }
        }
        Ok(dead)
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}
