//! The read connections: a few, opened as they are first needed, so that readers asking at
//! once each run on their own connection (WAL lets them all read while the writer writes)
//! instead of queueing behind one.

use std::ops::Deref;
use std::sync::{Condvar, Mutex};

use rusqlite::Connection;

use super::StoreError;

/// At most this many reads run at once; more wait for a connection. Each keeps its own page
/// cache (SQLite's default, 2 MiB at most), so the bound is also one on memory.
pub(super) const MAX_READERS: usize = 4;

pub(super) struct Readers {
    open: Box<dyn Fn() -> Result<Connection, StoreError> + Send + Sync>,
    pool: Mutex<Pool>,
    returned: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    /// Connections opened, idle or lent out.
    opened: usize,
}

/// A connection lent out; it goes back to the pool when dropped.
pub(super) struct Reader<'a> {
    conn: Option<Connection>,
    readers: &'a Readers,
}

impl Readers {
    pub(super) fn new(
        first: Connection,
        open: impl Fn() -> Result<Connection, StoreError> + Send + Sync + 'static,
    ) -> Readers {
        Readers {
            open: Box::new(open),
            pool: Mutex::new(Pool {
                idle: vec![first],
                opened: 1,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, a new one while fewer than [`MAX_READERS`] are open, or the first
    /// one given back.
    pub(super) fn get(&self) -> Result<Reader<'_>, StoreError> {
        let mut pool = self.pool.lock().map_err(|_| StoreError::Poisoned)?;
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(self.lend(conn));
            }
            if pool.opened < MAX_READERS {
                pool.opened += 1;
                drop(pool);
                return match (self.open)() {
                    Ok(conn) => Ok(self.lend(conn)),
                    Err(e) => {
                        if let Ok(mut pool) = self.pool.lock() {
                            pool.opened -= 1;
                        }
                        Err(e)
                    }
                };
            }
            pool = self.returned.wait(pool).map_err(|_| StoreError::Poisoned)?;
        }
    }

    fn lend(&self, conn: Connection) -> Reader<'_> {
        Reader {
            conn: Some(conn),
            readers: self,
        }
    }
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Present from `lend` until `drop` takes it.
        self.conn.as_ref().expect("a lent connection")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A read that failed mid-transaction would leave it open; a connection is only
        // reused in autocommit mode.
        let usable = conn.is_autocommit();
        if let Ok(mut pool) = self.readers.pool.lock() {
            if usable {
                pool.idle.push(conn);
            } else {
                pool.opened -= 1;
            }
        }
        self.readers.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// Each connection a database of its own, numbered in its `user_version`.
    fn readers() -> Readers {
        let opened = AtomicI64::new(0);
        let open = move || {
            let conn = Connection::open_in_memory()?;
            let n = opened.fetch_add(1, Ordering::SeqCst) + 1;
            conn.pragma_update(None, "user_version", n)?;
            Ok(conn)
        };
        Readers::new(open().expect("first"), open)
    }

    fn number(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn readers_at_once_get_connections_of_their_own_up_to_the_bound() {
        let r = readers();
        let mut lent: Vec<Reader<'_>> = (0..MAX_READERS)
            .map(|_| r.get().expect("a reader"))
            .collect();
        let numbers: std::collections::HashSet<i64> = lent.iter().map(|c| number(c)).collect();
        assert_eq!(numbers.len(), MAX_READERS);
        // One more waits until one is given back, and gets that one.
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| number(&r.get().expect("after a return")));
            let first = lent.remove(0);
            let given_back = number(&first);
            drop(first);
            assert_eq!(waiting.join().expect("waiter"), given_back);
        });
        drop(lent);
        assert_eq!(r.pool.lock().expect("pool").opened, MAX_READERS);
        assert_eq!(r.pool.lock().expect("pool").idle.len(), MAX_READERS);
    }

    /// A connection left inside a transaction is closed, not lent to the next reader.
    #[test]
    fn a_connection_left_in_a_transaction_is_not_reused() {
        let r = readers();
        let conn = r.get().expect("a reader");
        conn.execute_batch("BEGIN").expect("begin");
        drop(conn);
        assert_eq!(r.pool.lock().expect("pool").opened, 0);
        let next = r.get().expect("a new one");
        assert!(next.is_autocommit());
    }
}
