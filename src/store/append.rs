//! Appends to a `seq`-ordered log (a chat's messages, a user's AI chat) without
//! multi-document transactions, and in batches.
//!
//! Each log is a *head* document (the chat, with `lastSeq`) and its *entries* (the messages,
//! with a unique `(log, seq)` index and a unique idempotency index). An append goes to one
//! of a few *lanes* (chosen by log id, so one log always uses the same lane). A lane takes
//! whatever sends are waiting, up to [`MAX_BATCH`], and commits them together:
//!
//! 1. one `find` of the heads: membership is checked against the stored chat, per batch;
//! 2. `seq`s are taken from the lane's memory of each log's newest `seq`, loaded from the
//!    entries themselves the first time a log is seen;
//! 3. one ordered `insertMany` of the entries: an entry exists only if its insert
//!    succeeded, so a `seq` is never reserved and lost, and there is never a gap;
//! 4. each send is answered once its entry is durable (majority write concern).
//!
//! The heads' `lastSeq` is a checkpoint, not the truth: a lane moves the heads it wrote to
//! forward at most once per [`HEAD_FLUSH`] (one conditional `update` command, never back),
//! since a per-document update costs the database several times what an entry in a batched
//! insert does. The newest entry of a log is its entry with the highest `seq`, at or after
//! the head's `lastSeq` ([`Appender::newest`]): a short, bounded range of the index.
//!
//! Nothing in memory is an authority over `seq`: the unique `(log, seq)` index is. When
//! several nodes share one database, a lane whose memory is stale loses the insert on
//! that index, reloads the log's newest `seq` and tries again. An insert that fails on the
//! idempotency index is a retried send: it is answered with the stored entry. Entries after
//! a failed one in the same batch were not written (the insert is ordered) and are retried
//! with fresh `seq`s, so no failure leaves a hole. Each lane's queue is bounded: a send that
//! finds it full is refused at once ([`AppendError::Overloaded`]) instead of queueing.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use futures::future::join_all;
use mongodb::bson::{self, Bson, DateTime, Document, doc, oid::ObjectId};
use mongodb::error::ErrorKind;
use mongodb::{Collection, Database};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

/// Most entries one lane writes with one `insertMany`.
pub const MAX_BATCH: usize = 256;
/// Sends waiting per lane before further ones are refused as overloaded.
pub const LANE_QUEUE: usize = 256;
/// Lanes per log kind: batches of different lanes are written concurrently, so one slow
/// commit (a checkpoint, an fsync) does not hold up every chat.
pub const LANES: usize = 2;
/// `seq` conflicts (another node took a `seq` first) one batch retries before it gives up.
const MAX_CONFLICTS: usize = 8;
/// Logs whose newest `seq` a lane remembers before it forgets them all and reloads.
const MAX_REMEMBERED: usize = 100_000;
/// Shortest time between the starts of two batches of one lane (group commit): at 1,000
/// sends a second, two lanes write batches of about four instead of one or two, for about
/// half the database's CPU per message; a lane that was idle does not wait.
pub const BATCH_GAP: std::time::Duration = std::time::Duration::from_millis(4);
/// Longest a lane keeps the heads it wrote to behind their newest entry.
pub const HEAD_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// A document appended to a log.
pub trait Entry: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    /// The log's head document.
    type Head: DeserializeOwned + Clone + Send + Sync + Unpin + 'static;
    /// The entry field that names its log.
    const LOG_FIELD: &'static str;

    /// The fields of the head a batch reads (all of it when `None`).
    fn head_projection() -> Option<Document> {
        None
    }
    fn log(&self) -> ObjectId;
    fn seq(&self) -> i64;
    fn set_seq(&mut self, seq: i64);
    fn head_seq(head: &Self::Head) -> i64;
    /// Whether the head admits this entry (the sender is a member), filling in what the
    /// entry takes from its head.
    fn admit(&mut self, head: &Self::Head) -> bool;
    /// The filter that finds the stored copy of this entry: its idempotency key.
    fn key(&self) -> Document;
}

/// A stored entry, with the head it was admitted by.
#[derive(Clone, Debug)]
pub struct Appended<T: Entry> {
    pub entry: T,
    pub head: T::Head,
    /// False when the send was a retry answered with the entry stored before.
    pub fresh: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log does not exist or does not admit the sender.
    #[error("not admitted")]
    NotAdmitted,
    /// The lane's queue is full: refused without being written.
    #[error("overloaded")]
    Overloaded,
    /// The database failed; the entry may or may not be stored (a retry with the same key
    /// finds out), but it was not acknowledged.
    #[error(transparent)]
    Db(#[from] mongodb::error::Error),
}

type Reply<T> = oneshot::Sender<Result<Appended<T>, AppendError>>;

/// Runs on an admitted entry with its head, just before it is written: what a caller
/// decides from the stored head (who is away, for notifications).
pub type Prepare<T> = Box<dyn FnOnce(&mut T, &<T as Entry>::Head) + Send>;

struct Job<T: Entry> {
    entry: T,
    prepare: Option<Prepare<T>>,
    reply: Reply<T>,
    /// Sends with the same key in the same batch, answered with this one's result.
    followers: Vec<Reply<T>>,
}

/// The writer of one log kind; cheap to clone. Lanes start on first use.
pub struct Appender<T: Entry> {
    inner: Arc<Inner<T>>,
}

impl<T: Entry> Clone for Appender<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Entry> std::fmt::Debug for Appender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("entries", &self.inner.entries.name())
            .finish_non_exhaustive()
    }
}

struct Inner<T: Entry> {
    db: Database,
    entries: Collection<T>,
    heads: String,
    lanes: OnceLock<Vec<mpsc::Sender<Job<T>>>>,
}

impl<T: Entry> Appender<T> {
    pub fn new(db: &Database, entries: &str, heads: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                entries: db.collection(entries),
                heads: heads.to_string(),
                lanes: OnceLock::new(),
            }),
        }
    }

    fn lane(&self, log: ObjectId) -> &mpsc::Sender<Job<T>> {
        let lanes = self.inner.lanes.get_or_init(|| {
            (0..LANES)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(LANE_QUEUE);
                    tokio::spawn(run_lane(self.inner.clone(), rx));
                    tx
                })
                .collect()
        });
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        log.hash(&mut hasher);
        &lanes[(hasher.finish() as usize) % lanes.len()]
    }

    /// The log's newest entry: the one with the highest `seq` at or after `head_seq`, the
    /// `lastSeq` its head was read with (heads are never ahead of their entries).
    pub async fn newest(&self, log: ObjectId, head_seq: i64) -> mongodb::error::Result<Option<T>> {
        newest_entry(&self.inner, log, head_seq).await
    }

    /// Appends `entry` under its log's next `seq` (set here) and returns it once durable.
    pub async fn append(&self, entry: T) -> Result<Appended<T>, AppendError> {
        self.append_with(entry, None).await
    }

    /// Like [`Appender::append`], with `prepare` run on the entry once its head is read.
    pub async fn append_with(&self, entry: T, prepare: Option<Prepare<T>>) -> Result<Appended<T>, AppendError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            entry,
            prepare,
            reply,
            followers: Vec::new(),
        };
        self.lane(job.entry.log()).try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("huddle_append_overloaded_total").increment(1);
                AppendError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => {
                AppendError::Db(mongodb::error::Error::custom("the append lane stopped"))
            }
        })?;
        answer.await.unwrap_or_else(|_| {
            Err(AppendError::Db(mongodb::error::Error::custom(
                "the append lane stopped",
            )))
        })
    }
}

/// One lane: waits for a send, takes every other one already waiting, commits them as one
/// batch, and so on. While a batch is being written the next one gathers. The heads it
/// wrote to move forward once [`HEAD_FLUSH`] has passed since they last did, and when the
/// lane stops.
async fn run_lane<T: Entry>(inner: Arc<Inner<T>>, mut rx: mpsc::Receiver<Job<T>>) {
    let mut newest: HashMap<ObjectId, i64> = HashMap::new();
    let mut heads = HeadMoves::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_start: Option<tokio::time::Instant> = None;
    loop {
        let received = match heads.due() {
            Some(due) => tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                () = tokio::time::sleep_until(due) => {
                    heads.flush(&inner).await;
                    continue;
                }
            },
            None => rx.recv_many(&mut batch, MAX_BATCH).await,
        };
        if received == 0 {
            break;
        }
        // Group commit: a lane that wrote a batch moments ago lets the next one gather for
        // the rest of [`BATCH_GAP`]: each command costs the database far more than each
        // entry in it. A lane that was idle writes at once.
        let since = last_start.map_or(BATCH_GAP, |at| at.elapsed());
        if since < BATCH_GAP && batch.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_GAP - since).await;
            while batch.len() < MAX_BATCH {
                let Ok(job) = rx.try_recv() else { break };
                batch.push(job);
            }
        }
        last_start = Some(tokio::time::Instant::now());
        if newest.len() > MAX_REMEMBERED {
            newest.clear();
        }
        metrics::histogram!("huddle_append_batch_size").record(batch.len() as f64);
        // A bug that panics in one batch fails that batch's sends (their answers are
        // dropped, so they are refused, never acked); the lane goes on with the next, and
        // forgets what it remembered, since the batch may have stopped half way.
        let batch = std::mem::take(&mut batch);
        let committed = std::panic::AssertUnwindSafe(commit(&inner, &mut newest, &mut heads, batch)).catch_unwind();
        if committed.await.is_err() {
            metrics::counter!("huddle_append_panics_total").increment(1);
            tracing::error!("append: a batch panicked; its sends were refused");
            newest.clear();
        }
        if heads.due().is_some_and(|due| due <= tokio::time::Instant::now()) {
            heads.flush(&inner).await;
        }
    }
    heads.finish(&inner).await;
}

/// Heads a lane has written entries past: log -> its newest `seq` stored. Their update is
/// written beside the lane, not in its way: a lane never waits for it, except when it
/// stops.
struct HeadMoves {
    moves: HashMap<ObjectId, i64>,
    /// When the oldest unflushed move must be written.
    due: Option<tokio::time::Instant>,
    /// The update being written; it hands back the moves it could not write.
    writing: Option<tokio::task::JoinHandle<Option<HashMap<ObjectId, i64>>>>,
}

impl HeadMoves {
    fn new() -> Self {
        Self {
            moves: HashMap::new(),
            due: None,
            writing: None,
        }
    }

    fn due(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    fn record(&mut self, log: ObjectId, seq: i64) {
        let newest = self.moves.entry(log).or_insert(seq);
        *newest = (*newest).max(seq);
        self.due.get_or_insert_with(|| tokio::time::Instant::now() + HEAD_FLUSH);
    }

    /// Starts writing every pending move, unless the previous write is still running (then
    /// it looks again a little later). Moves a failed write hands back go with the next
    /// write, a [`HEAD_FLUSH`] later; readers never depend on them (see
    /// [`Appender::newest`]).
    async fn flush<T: Entry>(&mut self, inner: &Arc<Inner<T>>) {
        if let Some(writing) = self.writing.take_if(|w| w.is_finished()) {
            self.take_back(writing.await);
        }
        if self.writing.is_some() {
            self.due = Some(tokio::time::Instant::now() + HEAD_FLUSH / 10);
            return;
        }
        if self.moves.is_empty() {
            self.due = None;
            return;
        }
        let (inner, moves) = (inner.clone(), std::mem::take(&mut self.moves));
        self.writing = Some(tokio::spawn(async move {
            match move_heads(&inner, &moves).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "append: heads not moved forward; will retry");
                    Some(moves)
                }
            }
        }));
        // Looks back then: to hand a failed write's moves to the next one.
        self.due = Some(tokio::time::Instant::now() + HEAD_FLUSH);
    }

    /// Waits for the write in progress and writes what is left: the lane is stopping.
    async fn finish<T: Entry>(&mut self, inner: &Arc<Inner<T>>) {
        if let Some(writing) = self.writing.take() {
            self.take_back(writing.await);
        }
        if !self.moves.is_empty()
            && let Err(e) = move_heads(inner, &self.moves).await
        {
            tracing::warn!(error = %e, "append: heads not moved forward at stop");
        }
    }

    fn take_back(&mut self, unwritten: Result<Option<HashMap<ObjectId, i64>>, tokio::task::JoinError>) {
        let Ok(Some(unwritten)) = unwritten else { return };
        for (log, seq) in unwritten {
            self.record(log, seq);
        }
    }
}

/// Answers a job and its followers; followers get the same entry as a retry.
fn answer<T: Entry>(job: Job<T>, result: Result<Appended<T>, AppendError>) {
    for follower in job.followers {
        let copy = match &result {
            Ok(done) => Ok(Appended {
                fresh: false,
                ..done.clone()
            }),
            Err(AppendError::NotAdmitted) => Err(AppendError::NotAdmitted),
            Err(AppendError::Overloaded) => Err(AppendError::Overloaded),
            Err(AppendError::Db(e)) => Err(AppendError::Db(e.clone())),
        };
        let _ = follower.send(copy);
    }
    let _ = job.reply.send(result);
}

fn fail_all<T: Entry>(jobs: Vec<Job<T>>, error: &mongodb::error::Error) {
    for job in jobs {
        answer(job, Err(AppendError::Db(error.clone())));
    }
}

/// Merges sends with the same key into one job (a client that retried before its first
/// send was answered), keeping batch order.
fn coalesce<T: Entry>(batch: Vec<Job<T>>) -> Vec<Job<T>> {
    let mut out: Vec<Job<T>> = Vec::with_capacity(batch.len());
    let mut by_key: HashMap<Vec<u8>, usize> = HashMap::new();
    for job in batch {
        let key = bson::to_vec(&job.entry.key()).unwrap_or_default();
        match by_key.get(&key) {
            Some(&i) => out[i].followers.push(job.reply),
            None => {
                by_key.insert(key, out.len());
                out.push(job);
            }
        }
    }
    out
}

async fn commit<T: Entry>(
    inner: &Inner<T>,
    newest: &mut HashMap<ObjectId, i64>,
    heads_to_move: &mut HeadMoves,
    batch: Vec<Job<T>>,
) {
    let mut jobs = coalesce(batch);

    // 1. The heads, once per batch: membership and what entries take from their head.
    let logs: Vec<ObjectId> = jobs
        .iter()
        .map(|j| j.entry.log())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let heads = match load_heads(inner, &logs).await {
        Ok(heads) => heads,
        Err(e) => return fail_all(jobs, &e),
    };
    let mut admitted = Vec::with_capacity(jobs.len());
    for mut job in jobs.drain(..) {
        match heads.get(&job.entry.log()) {
            Some(head) if job.entry.admit(head) => {
                if let Some(prepare) = job.prepare.take() {
                    prepare(&mut job.entry, head);
                }
                admitted.push(job);
            }
            _ => answer(job, Err(AppendError::NotAdmitted)),
        }
    }
    let mut pending = admitted;
    let mut done: Vec<(Job<T>, T, bool)> = Vec::with_capacity(pending.len());

    // Each round stores the entries before the first failure and settles that failure; only
    // `seq` conflicts (another node wrote first) may repeat without settling a send.
    let mut conflicts = 0;
    while !pending.is_empty() && conflicts <= MAX_CONFLICTS {
        // 2. Newest `seq` of logs this lane has not seen (or forgot after a conflict).
        let unknown: Vec<ObjectId> = pending
            .iter()
            .map(|j| j.entry.log())
            .filter(|log| !newest.contains_key(log))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let loaded = join_all(unknown.iter().map(|log| {
            let head_seq = heads.get(log).map(T::head_seq).unwrap_or(0);
            newest_entry(inner, *log, head_seq)
        }))
        .await;
        for (log, found) in unknown.iter().zip(loaded) {
            match found {
                Ok(found) => {
                    let head_seq = heads.get(log).map(T::head_seq).unwrap_or(0);
                    let stored = found.as_ref().map(T::seq).unwrap_or(0);
                    newest.insert(*log, stored.max(head_seq));
                    // A head left behind (a node that stopped between insert and head
                    // update) is brought forward with this batch.
                    if stored > head_seq {
                        heads_to_move.record(*log, stored);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "append: cannot read a log's newest seq");
                    for job in pending.extract_if(.., |j| j.entry.log() == *log) {
                        answer(job, Err(AppendError::Db(e.clone())));
                    }
                }
            }
        }
        if pending.is_empty() {
            break;
        }

        // 3. Take `seq`s in batch order and insert, ordered: entries before a failure are
        // stored, the failed one and those after it are not.
        for job in &mut pending {
            let seq = newest.get(&job.entry.log()).copied().unwrap_or(0) + 1;
            newest.insert(job.entry.log(), seq);
            job.entry.set_seq(seq);
        }
        let docs: Vec<&T> = pending.iter().map(|j| &j.entry).collect();
        let result = inner.entries.insert_many(docs).ordered(true).await;
        let stored_count = match &result {
            Ok(_) => pending.len(),
            Err(e) => first_failure(e).unwrap_or(0),
        };
        let rest = pending.split_off(stored_count);
        for job in pending.drain(..) {
            let entry = job.entry.clone();
            heads_to_move.record(entry.log(), entry.seq());
            done.push((job, entry, true));
        }
        let Err(error) = result else { break };
        // Every log with unwritten entries is reloaded next round: the lane's memory of
        // them ran ahead of what was stored.
        for job in &rest {
            newest.remove(&job.entry.log());
        }
        pending = rest;
        match first_failure(&error) {
            Some(_) if crate::store::is_duplicate_key(&error) => {
                // The failed entry: a retried send (its key is stored), or a `seq` another
                // node took first (retried next round).
                let job = pending.remove(0);
                match inner.entries.find_one(job.entry.key()).await {
                    Ok(Some(stored)) => done.push((job, stored, false)),
                    Ok(None) => {
                        metrics::counter!("huddle_append_seq_conflicts_total").increment(1);
                        conflicts += 1;
                        pending.insert(0, job);
                    }
                    Err(e) => answer(job, Err(AppendError::Db(e))),
                }
            }
            Some(_) => {
                // The database refused this one entry: it alone is refused, the rest of the
                // batch goes on under fresh `seq`s.
                tracing::warn!(error = %error, "append: an entry was refused by the database");
                answer(pending.remove(0), Err(AppendError::Db(error)));
            }
            None => {
                // A failure of the database itself: nothing after the stored ones is known
                // to be written, so the rest are refused (never acknowledged).
                tracing::warn!(error = %error, "append: insert failed");
                fail_all(std::mem::take(&mut pending), &error);
            }
        }
    }
    if !pending.is_empty() {
        let e = mongodb::error::Error::custom("append: too many seq conflicts");
        fail_all(pending, &e);
    }

    // 4. Answer.
    for (job, entry, fresh) in done {
        let head = heads.get(&entry.log()).cloned();
        match head {
            Some(head) => answer(job, Ok(Appended { entry, head, fresh })),
            None => answer(job, Err(AppendError::NotAdmitted)),
        }
    }
}

/// The index of the entry an ordered `insertMany` stopped at, when the server said.
fn first_failure(error: &mongodb::error::Error) -> Option<usize> {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(e) if e.write_concern_error.is_none() => {
            e.write_errors.as_ref()?.iter().map(|w| w.index).min()
        }
        _ => None,
    }
}

async fn load_heads<T: Entry>(
    inner: &Inner<T>,
    logs: &[ObjectId],
) -> mongodb::error::Result<HashMap<ObjectId, T::Head>> {
    use futures::TryStreamExt;
    let raw: Collection<Document> = inner.db.collection(&inner.heads);
    let docs: Vec<Document> = raw
        .find(doc! { "_id": { "$in": logs } })
        .with_options(T::head_projection().map(|p| mongodb::options::FindOptions::builder().projection(p).build()))
        .await?
        .try_collect()
        .await?;
    let mut heads = HashMap::with_capacity(docs.len());
    for d in docs {
        let id = d
            .get_object_id("_id")
            .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
        heads.insert(id, bson::from_document(d)?);
    }
    Ok(heads)
}

/// The log's newest entry. The head's `lastSeq` is never ahead of the entries, so the
/// search starts there: a bounded range of the `(log, seq)` index, not a scan of the log.
async fn newest_entry<T: Entry>(inner: &Inner<T>, log: ObjectId, head_seq: i64) -> mongodb::error::Result<Option<T>> {
    inner
        .entries
        .find_one(doc! { T::LOG_FIELD: log, "seq": { "$gte": head_seq } })
        .sort(doc! { "seq": -1 })
        .await
}

async fn move_heads<T: Entry>(inner: &Inner<T>, moves: &HashMap<ObjectId, i64>) -> mongodb::error::Result<()> {
    let now = DateTime::now();
    let updates: Vec<Bson> = moves
        .iter()
        .map(|(log, seq)| {
            Bson::Document(doc! {
                "q": { "_id": log, "lastSeq": { "$lt": seq } },
                "u": { "$set": { "lastSeq": seq, "updatedAt": now } },
            })
        })
        .collect();
    metrics::histogram!("huddle_append_head_flush_size").record(updates.len() as f64);
    let reply = inner
        .db
        .run_command(doc! {
            "update": inner.heads.as_str(),
            "updates": updates,
            "ordered": false,
            "writeConcern": { "w": "majority" },
        })
        .await?;
    if let Ok(errors) = reply.get_array("writeErrors")
        && !errors.is_empty()
    {
        return Err(mongodb::error::Error::custom(format!("head update: {errors:?}")));
    }
    Ok(())
}
