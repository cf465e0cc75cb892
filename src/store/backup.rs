//! A consistent copy of a live store (`tributary backup`): `VACUUM INTO` on a read connection
//! copies one snapshot of the database, compacted, while the daemon goes on fetching and
//! serving (readers and the writer never wait for it). The copy is checked before it takes its
//! name. The search index is not copied: a store opened from the copy rebuilds it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError};

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
        let _ = std::fs::remove_file(&partial);
        let conn = self.reader()?;
        conn.execute("VACUUM main INTO ?1", [partial.to_string_lossy()])
            .map_err(|e| StoreError::Backup(format!("{shown}: {e}")))?;
        drop(conn);
        let checked = check_copy(&partial);
        let report = match checked {
            Ok(report) => report,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, dest).map_err(|e| StoreError::Backup(format!("{shown}: {e}")))?;
        Ok(report)
    }
}

/// Opens the copy read-only: SQLite's own integrity check, and what it holds.
fn check_copy(path: &Path) -> Result<Backup, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(StoreError::Backup(format!(
            "the copy failed its integrity check: {integrity}"
        )));
    }
    let count = |table: &str| -> Result<u64, StoreError> {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    };
    Ok(Backup {
        entries: count("entries")?,
        sources: count("sources")?,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    })
}
