//! Copying a store into an empty one, SQLite into PostgreSQL or back (`tributary migrate`):
//! every table in one transaction of the target, read from one snapshot of the source, row
//! by row in the source's order, so ids, clusters, each entry's sources in the order they
//! came, and every source's schedule state arrive as they were. What a backend keeps on its
//! own is left to it: each source's entry count (its triggers count the links as they
//! arrive), PostgreSQL's link numbers (`seq`, given in the source's order), SQLite's search
//! index (every entry queued for it), and long texts: SQLite's packed frames arrive in
//! PostgreSQL as their text, which it compresses on its own.

use std::collections::HashSet;

use super::sql::{Conn, Param, Value};
use super::{Store, StoreError};

/// The tables copied, in the order their references need.
pub const TABLES: [&str; 10] = [
    "sources",
    "hosts",
    "entries",
    "entry_sources",
    "entry_keys",
    "cluster_merges",
    "dedupe_sigs",
    "fingerprints",
    "dedupe_edges",
    "tombstones",
];

/// Columns the target keeps on its own.
const DERIVED: [(&str, &str); 2] = [("sources", "entry_count"), ("entry_sources", "seq")];

/// Rows read at a time: a large store is copied without holding a table in memory.
const CHUNK: usize = 2_000;

/// Values bound to one insert, far below either backend's limit (SQLite's 32,766).
const MAX_PARAMS: usize = 2_000;

/// The rows each table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCounts(pub Vec<(&'static str, i64)>);

impl Store {
    /// Copies this store into `target`, which must hold no source and no entry yet (a store
    /// just created); returns the rows copied per table.
    pub fn copy_into(&self, target: &Store) -> Result<TableCounts, StoreError> {
        self.snapshot(|from| {
            target.transaction(|to| {
                let held: i64 = to.query_one(
                    "SELECT (SELECT COUNT(*) FROM sources) + (SELECT COUNT(*) FROM entries)",
                    &[],
                    |r| r.get(0),
                )?;
                if held > 0 {
                    return Err(StoreError::Migrate(
                        "the target store is not empty (it has sources or entries)".into(),
                    ));
                }
                let mut copied = Vec::new();
                for table in TABLES {
                    copied.push((table, copy_table(from, to, table)?));
                }
                derive(to)?;
                Ok(TableCounts(copied))
            })
        })
    }

    /// The rows each copied table holds, as one moment of the store saw them.
    pub fn table_counts(&self) -> Result<TableCounts, StoreError> {
        self.snapshot(|c| {
            let mut counts = Vec::new();
            for table in TABLES {
                let n = c.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))?;
                counts.push((table, n));
            }
            Ok(TableCounts(counts))
        })
    }
}

/// A table's columns and their declared types.
fn columns(c: Conn<'_>, table: &str) -> Result<Vec<(String, String)>, StoreError> {
    let sql = if c.is_pg() {
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
    } else {
        "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid"
    };
    c.query_map(sql, &[&table], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The order a table is read in: the order of the links for an entry's sources (the first
/// is the one it was first stored for), the physical or key order for the others, which a
/// snapshot keeps the same from chunk to chunk.
fn order(c: Conn<'_>, table: &str) -> Result<String, StoreError> {
    Ok(match (c.is_pg(), table) {
        (true, "entry_sources") => "seq".into(),
        (true, _) => "ctid".into(),
        (false, "entry_sources") => "rowid".into(),
        (false, _) => {
            let keys: Vec<String> = c.query_map(
                "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                &[&table],
                |r| r.get(0),
            )?;
            if keys.is_empty() {
                "rowid".into()
            } else {
                keys.join(", ")
            }
        }
    })
}

/// Copies one table's rows: the columns both stores have (the target's own left out).
fn copy_table(from: Conn<'_>, to: Conn<'_>, table: &'static str) -> Result<i64, StoreError> {
    let present: HashSet<String> = columns(from, table)?.into_iter().map(|c| c.0).collect();
    let wanted: Vec<(String, String)> = columns(to, table)?
        .into_iter()
        .filter(|(name, _)| present.contains(name) && !DERIVED.contains(&(table, name.as_str())))
        .collect();
    let list = wanted
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT {list} FROM {table} ORDER BY {}",
        order(from, table)?
    );
    let mut copied = 0;
    loop {
        let rows: Vec<Vec<Value>> = from.query_map(
            &format!("{select} LIMIT {CHUNK} OFFSET {copied}"),
            &[],
            |r| (0..wanted.len()).map(|i| r.get(i)).collect(),
        )?;
        // Many rows a statement: on PostgreSQL each statement is a round trip.
        let per_insert = (MAX_PARAMS / wanted.len().max(1)).max(1);
        for batch in rows.chunks(per_insert) {
            let values = batch
                .iter()
                .flat_map(|row| row.iter().zip(&wanted))
                .map(|(value, (_, ty))| as_target_has_it(to, value, ty))
                .collect::<Result<Vec<Value>, StoreError>>()?;
            let params: Vec<&dyn Param> = values.iter().map(|v| v as &dyn Param).collect();
            to.execute(&insert(table, &list, wanted.len(), batch.len()), &params)?;
        }
        copied += rows.len() as i64;
        if rows.len() < CHUNK {
            return Ok(copied);
        }
    }
}

/// `INSERT INTO table (list) VALUES (?1, …), (…)`: `rows` rows of `width` values.
fn insert(table: &str, list: &str, width: usize, rows: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let slots: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", slots.join(", "))
        })
        .collect();
    format!("INSERT INTO {table} ({list}) VALUES {}", tuples.join(", "))
}

/// A value as the target's column takes it: on PostgreSQL a text column holds text, so an
/// SQLite packed frame is unpacked; everything else crosses as it is.
fn as_target_has_it(to: Conn<'_>, value: &Value, ty: &str) -> Result<Value, StoreError> {
    Ok(match value {
        Value::Blob(frame) if to.is_pg() && ty == "text" => {
            Value::Text(super::packed::unpack_text(frame)?)
        }
        other => other.clone(),
    })
}

/// What the target derives from the rows it was given.
fn derive(to: Conn<'_>) -> Result<(), StoreError> {
    if to.is_pg() {
        // Instances lock a source's host row to claim it: every host has one.
        to.execute(
            "INSERT INTO hosts (host) SELECT DISTINCT host FROM sources WHERE host IS NOT NULL
             ON CONFLICT DO NOTHING",
            &[],
        )?;
    } else {
        to.execute(
            "INSERT INTO search_queue (entry_id) SELECT id FROM entries ORDER BY id",
            &[],
        )?;
    }
    Ok(())
}
