//! The write sequence instances invalidate their rendered feeds by. Every write that may
//! change what a feed shows moves one counter in the database and notifies (`NOTIFY`, which
//! PostgreSQL delivers at commit, so no instance hears of a write it cannot read yet); each
//! instance listens on a connection of its own and keeps the highest value it heard as its
//! generation, which its caches compare as they compare SQLite's. A lost listening connection
//! is made again, and the counter is also read every `POLL` in case a notification was
//! missed meanwhile: an instance's feeds are at most `POLL` (plus a reconnect) behind another
//! instance's write.

use std::time::Duration;

use tokio::sync::watch;

use super::{Pg, PgError};
use crate::store::sql::Conn;

/// How often the counter is read besides the notifications.
pub const POLL: Duration = Duration::from_secs(1);

/// The channel writes are announced on.
pub const CHANNEL: &str = "tributary_writes";

/// Moves the counter and notifies, in the transaction `c` is in (delivered at its commit);
/// the new value.
pub(crate) fn note_write_in(c: Conn<'_>) -> Result<u64, crate::store::StoreError> {
    let seq: i64 = c.query_one(
        "UPDATE write_sequence SET seq = seq + 1 RETURNING seq",
        &[],
        |r| r.get(0),
    )?;
    c.execute("SELECT pg_notify(?1, ?2)", &[&CHANNEL, &seq.to_string()])?;
    Ok(seq as u64)
}

impl Pg {
    /// Records a write every instance must see (their caches are then stale); returns the new
    /// value. A store's writes call it in their own transaction.
    pub fn note_write(&self) -> Result<u64, crate::store::StoreError> {
        self.session()?.transaction(note_write_in)
    }

    /// The highest write this instance has heard of.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits until this instance has heard of a write above `seen`, at most `timeout`; the
    /// generation then.
    pub fn wait_for_generation(&self, seen: u64, timeout: Duration) -> u64 {
        let mut rx = self.generation.clone();
        let waited = self.run(|_| async move {
            let heard = match tokio::time::timeout(timeout, rx.wait_for(|g| *g > seen)).await {
                Ok(Ok(g)) => Some(*g),
                _ => None,
            };
            Ok(heard.unwrap_or_else(|| *rx.borrow()))
        });
        waited.unwrap_or_else(|_| self.generation())
    }

    /// The process-id of the listening connection's server backend once it listens (and has
    /// read the counter), waiting at most `timeout` for it: what the tests end it by.
    pub fn listener_pid(&self, timeout: Duration) -> Option<i32> {
        let mut rx = self.listener_pid.clone();
        self.run(|_| async move {
            match tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await {
                Ok(Ok(pid)) => Ok(*pid),
                _ => Ok(None),
            }
        })
        .unwrap_or(None)
    }
}

/// Where the listener reports: the generation, its connection's backend, how often it reads
/// the counter.
pub(super) struct Listener {
    pub(super) config: tokio_postgres::Config,
    pub(super) generation: watch::Sender<u64>,
    pub(super) pid: watch::Sender<Option<i32>>,
    pub(super) poll: Duration,
}

/// Listens for writes until the runtime stops: the counter read at each (re)connection and
/// every `poll`, the notifications in between.
pub(super) async fn listen(listener: Listener) {
    loop {
        if let Err(e) = listen_once(&listener).await {
            tracing::warn!(error = %e, "PostgreSQL: the write listener lost its connection; connecting again");
        }
        listener.pid.send_replace(None);
        tokio::time::sleep(listener.poll.min(POLL)).await;
    }
}

async fn listen_once(listener: &Listener) -> Result<(), PgError> {
    let Listener {
        config,
        generation,
        pid,
        poll,
    } = listener;
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here; notifications are handed over as they come.
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().parse::<i64>().ok()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let raise = |seq: i64| {
        let seq = seq as u64;
        generation.send_if_modified(|g| {
            let higher = seq > *g;
            *g = (*g).max(seq);
            higher
        })
    };
    // Listening first, then the counter read: no write falls between the two.
    raise(
        client
            .query_one("SELECT seq FROM write_sequence", &[])
            .await?
            .get(0),
    );
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    pid.send_replace(Some(backend));
    let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + *poll, *poll);
    loop {
        tokio::select! {
            note = notes.recv() => match note {
                Some(Some(seq)) => { raise(seq); }
                Some(None) => {}
                None => break,
            },
            _ = poll.tick() => {
                raise(client.query_one("SELECT seq FROM write_sequence", &[]).await?.get(0));
            }
        }
    }
    driver.abort();
    Err(PgError::Runtime("the listening connection closed".into()))
}
