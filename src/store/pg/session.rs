//! One pooled connection answering the shared store logic's statements (`store::sql`)
//! synchronously: each statement runs on the pool's runtime while the caller waits, so a
//! transaction is a session's statements between `BEGIN` and `COMMIT`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::PgError;
use crate::store::sql::{pg_placeholders, Conn, Value};
use crate::store::StoreError;

/// A connection taken from the pool; back to it when dropped.
pub struct Session {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) client: Arc<deadpool_postgres::Object>,
    /// A transaction is open (one left so by a panic is rolled back on drop).
    pub(super) open: AtomicBool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open.load(Ordering::Relaxed) {
            // The connection goes back to the pool once this has run: the task holds it.
            let client = self.client.clone();
            self.runtime.spawn(async move {
                let _ = client.batch_execute("ROLLBACK").await;
            });
        }
    }
}

impl Session {
    /// Runs `work` in one transaction: committed when it succeeds, rolled back when it fails.
    pub(crate) fn transaction<T>(
        &self,
        work: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.within("BEGIN", work)
    }

    /// Runs `read` in one read-only transaction that sees the database as of its start.
    pub(crate) fn snapshot<T>(
        &self,
        read: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.within("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", read)
    }

    fn within<T>(
        &self,
        begin: &str,
        work: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.batch(begin)?;
        self.open.store(true, Ordering::Relaxed);
        let done = work(Conn::Pg(self));
        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.batch(end);
        self.open.store(false, Ordering::Relaxed);
        let done = done?;
        ended?;
        Ok(done)
    }

    /// Runs one statement and waits for it.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(
                Arc<deadpool_postgres::Object>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send>,
            > + Send
            + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let client = self.client.clone();
        self.runtime.spawn(async move {
            // The caller waits on the other end; if it is gone, nobody needs the answer.
            let _ = tx.send(work(client).await);
        });
        match rx.recv() {
            Ok(result) => result.map_err(StoreError::from_pg),
            Err(_) => Err(StoreError::Pg(PgError::Runtime(
                "the pool's runtime stopped before the statement answered".into(),
            ))),
        }
    }

    pub(crate) fn execute(&self, sql: &str, params: Vec<Value>) -> Result<usize, StoreError> {
        let sql = pg_placeholders(sql);
        self.call(move |client| {
            Box::pin(async move {
                let stmt = client.prepare_cached(&sql).await?;
                let n = client.execute(&stmt, &refs(&params)).await?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
        })
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let sql = pg_placeholders(sql);
        self.call(move |client| {
            Box::pin(async move {
                let stmt = client.prepare_cached(&sql).await?;
                client.query(&stmt, &refs(&params)).await
            })
        })
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.call(move |client| Box::pin(async move { client.batch_execute(&sql).await }))
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}
