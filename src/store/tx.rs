//! Multi-document transactions with the retry rules MongoDB drivers document: the whole
//! transaction again on `TransientTransactionError`, the commit again on
//! `UnknownTransactionCommitResult`.

use futures::future::BoxFuture;
use mongodb::error::{Result, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::{Client, ClientSession};

/// Attempts before a conflict is reported; with the backoff below this spans a few seconds
/// of contention on one document (a busy chat's counter).
const MAX_ATTEMPTS: usize = 30;

/// Waits a little longer after each conflict, with jitter so rivals spread out.
async fn backoff(attempt: usize) {
    let cap_ms = (2u64 << attempt.min(6)).min(100);
    let wait = rand::random_range(1..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

/// Runs `body` in a transaction. `body` may run more than once, so it clones what it needs.
pub async fn transaction<T, F>(client: &Client, mut body: F) -> Result<T>
where
    F: for<'s> FnMut(&'s mut ClientSession) -> BoxFuture<'s, Result<T>>,
{
    let mut session = client.start_session().await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        session.start_transaction().await?;
        let value = match body(&mut session).await {
            Ok(value) => value,
            Err(e) => {
                let _ = session.abort_transaction().await;
                if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && attempt < MAX_ATTEMPTS {
                    backoff(attempt).await;
                    continue;
                }
                return Err(e);
            }
        };
        let mut commits = 0;
        loop {
            commits += 1;
            match session.commit_transaction().await {
                Ok(()) => return Ok(value),
                Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && commits < MAX_ATTEMPTS => {}
                Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && attempt < MAX_ATTEMPTS => {
                    backoff(attempt).await;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
