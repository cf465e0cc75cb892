//! Large texts stored compressed: an entry's content and summary (its own and each source's
//! copy) and its fingerprint's body are zstd frames (a BLOB) once they are longer than
//! [`PACK_ABOVE`] bytes, TEXT below that and in rows written before. Half the bytes of an
//! entry, and rows that share pages instead of one row per 4 KiB page with the rest unused
//! (BENCHMARKS.md, "Bytes per entry").
//!
//! Writes bind [`Pack`]; reads take [`Unpacked`]; SQL that needs the text itself (the search
//! view) calls `unpack(x)`, registered on every connection of the store. Packing is
//! deterministic, so SQL that compares a stored value with a bound `Pack` (is this copy the
//! same words?) compares like with like; a zstd that packs differently only makes such a
//! comparison say "different", which costs a copy, never a wrong text.

use std::cell::RefCell;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::sql::{Get, Param, Value};
use super::StoreError;
use crate::model::Entry;

/// Shorter texts stay as they are: a frame's header would eat most of what it saves.
pub(super) const PACK_ABOVE: usize = 256;

/// zstd's default level: a few microseconds for a page of text, about half its size.
const LEVEL: i32 = 3;

/// No stored text unpacks to more than this (the largest a fetch may bring is
/// `[fetch] max_body_bytes`, 10 MiB by default): a damaged frame cannot claim the memory.
const MAX_UNPACKED: usize = 64 << 20;

/// A text as it is written: packed when long, now or already (see [`Packs`]). PostgreSQL is
/// given the text itself (it compresses long values on its own, TOAST).
pub(super) enum Pack<'a> {
    Text(Option<&'a str>),
    /// The text packed beforehand, and the text.
    Frame(&'a [u8], &'a str),
}

impl<'a> Pack<'a> {
    pub(super) fn of(text: &'a Option<String>) -> Self {
        Pack::Text(text.as_deref())
    }

    pub(super) fn text(text: &'a str) -> Self {
        Pack::Text(Some(text))
    }

    /// `text`, as `frame` when it was packed beforehand.
    pub(super) fn ready(text: &'a Option<String>, frame: &'a Option<Vec<u8>>) -> Self {
        match (frame, text) {
            (Some(f), Some(t)) => Pack::Frame(f, t),
            _ => Pack::of(text),
        }
    }
}

impl ToSql for Pack<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Pack::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
            Pack::Text(Some(text)) if text.len() <= PACK_ABOVE => {
                ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
            }
            Pack::Text(Some(text)) => ToSqlOutput::Owned(rusqlite::types::Value::Blob(pack(text)?)),
            Pack::Frame(f, _) => ToSqlOutput::Borrowed(ValueRef::Blob(f)),
        })
    }
}

impl Param for Pack<'_> {
    fn lite(&self) -> &dyn ToSql {
        self
    }
    fn value(&self) -> Value {
        match *self {
            Pack::Text(None) => Value::Null,
            Pack::Text(Some(t)) | Pack::Frame(_, t) => Value::Text(t.to_owned()),
        }
    }
}

/// An entry's long texts packed before it reaches the writer (by the fetch's own thread, while
/// the writer stores other fetches): packing is most of what storing a text costs.
#[derive(Debug, Default, Clone)]
pub(super) struct Packs {
    pub(super) summary: Option<Vec<u8>>,
    pub(super) content: Option<Vec<u8>>,
    /// The fingerprint's body.
    pub(super) body: Option<Vec<u8>>,
}

impl Packs {
    pub(super) fn of(e: &Entry) -> Packs {
        let frame = |text: Option<&str>| {
            text.filter(|t| t.len() > PACK_ABOVE)
                .and_then(|t| pack(t).ok())
        };
        Packs {
            summary: frame(e.summary.as_deref()),
            content: frame(e.content.as_deref()),
            body: frame(Some(&e.fingerprint.body)),
        }
    }
}

thread_local! {
    // A context per thread, kept: making one allocates and sets up about a megabyte of
    // tables, which cost more than packing a page of text.
    static PACKER: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static UNPACKER: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn pack(text: &str) -> rusqlite::Result<Vec<u8>> {
    let fail = |e: std::io::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
    PACKER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let packer = match &mut *cell {
            Some(p) => p,
            slot => slot.insert(zstd::bulk::Compressor::new(LEVEL).map_err(fail)?),
        };
        packer.compress(text.as_bytes()).map_err(fail)
    })
}

fn unpack_frame(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    UNPACKER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let unpacker = match &mut *cell {
            Some(u) => u,
            slot => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        // Every frame written here records its size: exactly that much is allocated.
        let size = zstd::zstd_safe::get_frame_content_size(frame)
            .ok()
            .flatten()
            .filter(|&n| n <= MAX_UNPACKED as u64)
            .ok_or_else(|| std::io::Error::other("a packed text without a valid size"))?;
        unpacker.decompress(frame, size as usize)
    })
}

/// The text a packed frame holds.
pub(super) fn unpack_text(frame: &[u8]) -> Result<String, StoreError> {
    let bytes =
        unpack_frame(frame).map_err(|e| StoreError::Column(format!("a packed text: {e}")))?;
    String::from_utf8(bytes).map_err(|e| StoreError::Column(format!("a packed text: {e}")))
}

/// A stored text, packed or not.
pub(super) struct Unpacked(pub(super) Option<String>);

impl FromSql for Unpacked {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(Unpacked(unpack(value)?))
    }
}

impl Get for Unpacked {
    const NAME: &'static str = "text";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        // PostgreSQL's texts are never packed.
        Ok(Unpacked(Option::<String>::from_value(value)?))
    }
}

fn unpack(value: ValueRef<'_>) -> FromSqlResult<Option<String>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Blob(b) => {
            let bytes = unpack_frame(b).map_err(|e| FromSqlError::Other(Box::new(e)))?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| FromSqlError::Other(Box::new(e)))
        }
        _ => Err(FromSqlError::InvalidType),
    }
}

/// `unpack(x)` in SQL: the text of a stored value, packed or not; `pack(x)`: a text as
/// [`Pack`] stores it (for migrations).
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "pack",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| match ctx.get_raw(0) {
            ValueRef::Text(t) if t.len() > PACK_ABOVE => {
                let text = std::str::from_utf8(t)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                Ok(rusqlite::types::Value::Blob(pack(text)?))
            }
            other => Ok(rusqlite::types::Value::from(other)),
        },
    )?;
    conn.create_scalar_function(
        "unpack",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| unpack(ctx.get_raw(0)).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_packed_short_ones_and_old_rows_read_as_they_are() {
        let conn = Connection::open_in_memory().expect("db");
        register(&conn).expect("unpack");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
            .expect("table");
        let long = "人民币汇率中间价上调 the central parity rose. ".repeat(40);
        let short = "a short summary";
        for (id, text) in [(1, Some(long.as_str())), (2, Some(short)), (3, None)] {
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![id, Pack::Text(text)],
            )
            .expect("insert");
        }
        conn.execute("INSERT INTO t VALUES (4, ?1)", [&long])
            .expect("an old row");
        let row = |id: i64| -> (String, Option<String>, Option<String>) {
            conn.query_row(
                "SELECT typeof(x), x, unpack(x) FROM t WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get::<_, Unpacked>(1)?.0, r.get(2)?)),
            )
            .expect("row")
        };
        let (kind, read, sql) = row(1);
        assert_eq!(kind, "blob");
        assert_eq!(read.as_deref(), Some(long.as_str()));
        assert_eq!(sql, read);
        let stored: usize = conn
            .query_row("SELECT length(x) FROM t WHERE id = 1", [], |r| r.get(0))
            .expect("size");
        assert!(stored * 4 < long.len(), "{stored} of {}", long.len());
        assert_eq!(
            row(2),
            ("text".into(), Some(short.into()), Some(short.into()))
        );
        assert_eq!(row(3), ("null".into(), None, None));
        assert_eq!(row(4).1.as_deref(), Some(long.as_str()));
        // The same text packs to the same bytes: stored and bound values compare equal.
        let same: bool = conn
            .query_row(
                "SELECT x = ?1 FROM t WHERE id = 1",
                [Pack::text(&long)],
                |r| r.get(0),
            )
            .expect("compare");
        assert!(same);
        // A damaged frame is an error, not a panic or a huge allocation.
        conn.execute("INSERT INTO t VALUES (5, x'28b52ffd00ffffffff')", [])
            .expect("junk");
        assert!(conn
            .query_row("SELECT x FROM t WHERE id = 5", [], |r| r
                .get::<_, Unpacked>(0))
            .is_err());
    }
}
