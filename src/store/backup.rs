//! A consistent copy of a live store (`tributary backup`): `VACUUM INTO` on a read connection
//! copies one snapshot of the database, compacted, while the daemon goes on fetching and
//! serving (readers and the writer never wait for it). The copy is checked before it takes its
//! name. The search index is not copied: a store opened from the copy rebuilds it.
//!
//! Putting a copy back (`tributary restore`) needs the store closed: every open store holds
//! `<store>.lock` shared (an advisory `flock`), and a restore takes it alone or not at all.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{schema, Store, StoreError};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub entries: u64,
    pub sources: u64,
    pub bytes: u64,
}

impl Store {
    /// Writes a copy of the database to `dest`, which must not exist yet.
    pub fn backup(&self, dest: &Path) -> Result<Backup, StoreError> {
        let shown = dest.display().to_string();
        if dest.exists() {
            return Err(StoreError::Backup(format!("{shown} already exists")));
        }
        let partial = dest.with_file_name(format!(
            ".{}.partial",
            dest.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        if matches!(self.engine, super::Engine::Pg(_)) {
            return Err(StoreError::Backup(
                "a PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump)".into(),
            ));
        }
        let _ = std::fs::remove_file(&partial);
        let conn = self.reader()?;
        conn.execute("VACUUM main INTO ?1", [partial.to_string_lossy()])
            .map_err(|e| StoreError::Backup(format!("{shown}: {e}")))?;
        drop(conn);
        let checked = check_copy(&partial);
        let report = match checked {
            Ok((report, _)) => report,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, dest).map_err(|e| StoreError::Backup(format!("{shown}: {e}")))?;
        Ok(report)
    }
}

/// What a restore put back, and where the store it replaced was kept.
#[derive(Debug, Clone)]
pub struct Restored {
    pub copy: Backup,
    pub schema_version: i64,
    /// The replaced store's files, renamed (`<store>.before-restore`); None when there was no
    /// store.
    pub kept: Option<PathBuf>,
}

/// Held for as long as a store is open: `<store>.lock`, locked shared.
pub(super) struct InUse {
    _file: File,
}

fn lock_path(store: &Path) -> PathBuf {
    sibling(store, ".lock")
}

/// `<store><suffix>`, beside it.
fn sibling(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// How [`flock`] takes the lock.
#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Alone,
}

/// `flock(2)` on `file`, without waiting: false when another process holds a conflicting lock.
#[cfg(unix)]
fn flock(file: &File, how: Lock) -> Result<bool, StoreError> {
    use std::os::fd::AsRawFd;
    let op = match how {
        Lock::Shared => libc::LOCK_SH,
        Lock::Alone => libc::LOCK_EX,
    };
    // SAFETY: the descriptor belongs to `file`, open for the whole call; flock takes no memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(StoreError::Backup(format!("cannot lock the store: {e}")))
}

/// Elsewhere there is no advisory lock: a restore cannot tell that the store is open.
#[cfg(not(unix))]
fn flock(_file: &File, _how: Lock) -> Result<bool, StoreError> {
    Ok(true)
}

fn open_lock(store: &Path) -> Result<File, StoreError> {
    let path = lock_path(store);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Backup(format!("{}: {e}", path.display())))
}

/// Marks the store at `path` open (see [`InUse`]); refused while a restore replaces it.
pub(super) fn in_use(path: &Path) -> Result<InUse, StoreError> {
    let file = open_lock(path)?;
    if !flock(&file, Lock::Shared)? {
        return Err(StoreError::Backup(
            "the store is being restored; try again when that is done".into(),
        ));
    }
    Ok(InUse { _file: file })
}

impl Store {
    /// Replaces the store at `store` with the copy at `copy`, once the copy passes SQLite's
    /// integrity check and its schema is one this build reads. Refused while any process has
    /// the store open. The replaced files are kept beside it (`.before-restore`); the search
    /// index is built again at the next start.
    pub fn restore(store: &Path, copy: &Path) -> Result<Restored, StoreError> {
        let shown = copy.display().to_string();
        let (checked, schema_version) = check_copy(copy)?;
        if schema_version > schema::current_version() {
            return Err(StoreError::TooNew {
                found: schema_version,
                known: schema::current_version(),
            });
        }
        let lock = open_lock(store)?;
        if !flock(&lock, Lock::Alone)? {
            return Err(StoreError::Backup(format!(
                "{} is open (the daemon, or another tributary command): stop it first",
                store.display()
            )));
        }
        let incoming = sibling(store, ".restoring");
        let _ = std::fs::remove_file(&incoming);
        let fail = |e: std::io::Error| StoreError::Backup(format!("{shown}: {e}"));
        std::fs::copy(copy, &incoming).map_err(fail)?;
        {
            // A copy names the search index of the store it was taken from: forgetting it has
            // the index built again for what the copy holds.
            let conn = Connection::open(&incoming)?;
            conn.execute("DELETE FROM search_index", [])?;
        }
        File::open(&incoming)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
        let kept = set_aside(store).map_err(fail)?;
        std::fs::rename(&incoming, store).map_err(fail)?;
        if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        drop(lock);
        Ok(Restored {
            copy: checked,
            schema_version,
            kept,
        })
    }
}

/// Renames the store's files (its WAL and shared memory too, as they are: a damaged store is
/// kept as found) and drops its search index, which a restored store builds again.
fn set_aside(store: &Path) -> std::io::Result<Option<PathBuf>> {
    let kept = sibling(store, ".before-restore");
    let mut any = false;
    for suffix in ["", "-wal", "-shm"] {
        let from = sibling(store, suffix);
        let to = sibling(&kept, suffix);
        let _ = std::fs::remove_file(&to);
        match std::fs::rename(&from, &to) {
            Ok(()) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for suffix in [".search", ".search-wal", ".search-shm"] {
        match std::fs::remove_file(sibling(store, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(any.then_some(kept))
}

/// Opens the copy read-only: SQLite's own integrity check, what it holds, and its schema
/// version.
fn check_copy(path: &Path) -> Result<(Backup, i64), StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Backup(format!("{}: {e}", path.display())))?;
    let not_a_database = |e: rusqlite::Error| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            StoreError::NotADatabase
        }
        e => StoreError::Sql(e),
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(not_a_database)?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(not_a_database)?;
    if integrity != "ok" {
        return Err(StoreError::Backup(format!(
            "the copy failed its integrity check: {integrity}"
        )));
    }
    let count = |table: &str| -> Result<u64, StoreError> {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    };
    if version == 0 {
        return Err(StoreError::Backup(format!(
            "{}: not a tributary store (no schema version)",
            path.display()
        )));
    }
    let backup = Backup {
        entries: count("entries")?,
        sources: count("sources")?,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    };
    Ok((backup, version))
}
