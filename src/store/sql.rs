//! Statements both backends run: one store logic, written once, over SQLite or PostgreSQL.
//!
//! The store's SQL is written in the dialect the two share (`?N` placeholders, `ON CONFLICT`,
//! `RETURNING`, `COALESCE`, `CAST(… AS BIGINT)`); a statement that cannot be shared asks
//! [`Conn::is_pg`] and says both. Values cross as SQLite sees them: integers, reals, text,
//! bytes and null, with booleans as 0/1 — PostgreSQL's columns are typed to match
//! (`BIGINT`, `DOUBLE PRECISION`, `TEXT`, `BYTEA`), and [`Value`] converts at the edge so a
//! statement does not care which integer width a column has.

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use super::pg::Session;
use super::StoreError;

/// A connection (or a transaction on one) of either backend.
#[derive(Clone, Copy)]
pub(crate) enum Conn<'a> {
    Lite(&'a rusqlite::Connection),
    Pg(&'a Session),
}

/// One row of a result, read by column index.
pub(crate) enum Row<'a, 'r> {
    Lite(&'a rusqlite::Row<'r>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_, '_> {
    pub(crate) fn get<T: Get>(&self, index: usize) -> Result<T, StoreError> {
        match self {
            Row::Lite(row) => Ok(T::lite(row, index)?),
            Row::Pg(row) => {
                let value: Value = row.try_get(index).map_err(StoreError::from_pg)?;
                T::from_value(value).map_err(|found| {
                    StoreError::Column(format!("column {index}: {found} where {}", T::NAME))
                })
            }
        }
    }
}

impl<'a> Conn<'a> {
    pub(crate) fn is_pg(self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// A subquery of the ids in the JSON array placeholder `p` holds, as column `value`.
    pub(crate) fn id_list(self, p: &str) -> String {
        if self.is_pg() {
            format!(
                "SELECT CAST(j.value AS BIGINT) AS value
                 FROM json_array_elements_text(CAST({p} AS json)) AS j (value)"
            )
        } else {
            format!("SELECT value FROM json_each({p})")
        }
    }

    /// Runs a statement; how many rows it changed.
    pub(crate) fn execute(self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        match self {
            Conn::Lite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params.iter().map(|p| p.lite())))?),
            Conn::Pg(s) => s.execute(sql, values(params)),
        }
    }

    /// Every row of a query, each read by `f`.
    pub(crate) fn query_map<T>(
        self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Conn::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(params.iter().map(|p| p.lite())))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Lite(row))?);
                }
                Ok(out)
            }
            Conn::Pg(s) => s
                .query(sql, values(params))?
                .iter()
                .map(|row| f(&Row::Pg(row)))
                .collect(),
        }
    }

    /// The first row of a query, if there is one.
    pub(crate) fn query_opt<T>(
        self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Conn::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(params.iter().map(|p| p.lite())))?;
                match rows.next()? {
                    Some(row) => Ok(Some(f(&Row::Lite(row))?)),
                    None => Ok(None),
                }
            }
            Conn::Pg(s) => match s.query(sql, values(params))?.first() {
                Some(row) => Ok(Some(f(&Row::Pg(row))?)),
                None => Ok(None),
            },
        }
    }

    /// The one row a query must return.
    pub(crate) fn query_one<T>(
        self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, f)?
            .ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
    }
}

fn values(params: &[&dyn Param]) -> Vec<Value> {
    params.iter().map(|p| p.value()).collect()
}

/// A value as SQLite types it; what PostgreSQL statements are given and read back as.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let text = [
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
        ];
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Text(s), t) if text.contains(t) => s.as_str().to_sql(ty, out),
            // JSON's binary form is its text.
            (Value::Text(s), &Type::JSON) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            // Said, not sent as another type's bytes (a statement then needs a CAST).
            (value, ty) => Err(format!("{} given where {ty} is wanted", value.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked in `to_sql`, by the value and the column's type together.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        // NUMERIC (what SUM gives) is not read: statements cast it.
        *ty != Type::NUMERIC
    }
}

/// What a statement can be given: the value for SQLite as it is, and for PostgreSQL as a
/// [`Value`].
pub(crate) trait Param: Sync {
    fn lite(&self) -> &dyn rusqlite::ToSql;
    fn value(&self) -> Value;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn lite(&self) -> &dyn rusqlite::ToSql {
                self
            }
            fn value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, bool);

impl Param for f64 {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        Value::Real(*self)
    }
}

impl Param for &str {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        Value::Text((*self).to_owned())
    }
}

impl Param for String {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl Param for &[u8] {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl Param for Vec<u8> {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<T: Param + rusqlite::ToSql> Param for Option<T> {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

impl<T: Param> Param for &T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        (**self).lite()
    }
    fn value(&self) -> Value {
        (**self).value()
    }
}

/// What a column can be read as, from either backend.
pub(crate) trait Get: Sized {
    const NAME: &'static str;
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self>;
    /// The value, or what was found instead.
    fn from_value(value: Value) -> Result<Self, &'static str>;
}

macro_rules! int_get {
    ($($t:ty),*) => {$(
        impl Get for $t {
            const NAME: &'static str = stringify!($t);
            fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
                row.get(index)
            }
            fn from_value(value: Value) -> Result<Self, &'static str> {
                match value {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| "an integer out of range"),
                    other => Err(other.kind()),
                }
            }
        }
    )*};
}
int_get!(i64, i32, u32, u64, usize, u8);

impl Get for bool {
    const NAME: &'static str = "bool";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Int(i) => Ok(i != 0),
            other => Err(other.kind()),
        }
    }
}

impl Get for f64 {
    const NAME: &'static str = "f64";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Real(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(other.kind()),
        }
    }
}

impl Get for String {
    const NAME: &'static str = "text";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(other.kind()),
        }
    }
}

impl Get for Vec<u8> {
    const NAME: &'static str = "bytes";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Blob(b) => Ok(b),
            other => Err(other.kind()),
        }
    }
}

/// Any value as the backend gives it (a store copied into another, `store::migrate`).
impl Get for Value {
    const NAME: &'static str = "a value";
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        use rusqlite::types::ValueRef;
        Ok(match row.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        Ok(value)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef;
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl Param for Value {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn value(&self) -> Value {
        self.clone()
    }
}

impl<T: Get + rusqlite::types::FromSql> Get for Option<T> {
    const NAME: &'static str = T::NAME;
    fn lite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        row.get(index)
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// SQLite's numbered placeholders (`?1`, or a bare `?` counted in order) as PostgreSQL's
/// (`$1`). Text in quotes and comments is left as it is.
pub(crate) fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0u32;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '-' && !quoted && chars.peek() == Some(&'-') {
            // A comment, to the end of its line: its words may hold quotes.
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        if digits.is_empty() {
            next += 1;
            digits = next.to_string();
        } else if let Ok(n) = digits.parse::<u32>() {
            next = next.max(n);
        }
        out.push('$');
        out.push_str(&digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(
            pg_placeholders("SELECT ?1, ?12 WHERE a = '?' AND b = ?"),
            "SELECT $1, $12 WHERE a = '?' AND b = $13"
        );
        assert_eq!(pg_placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            pg_placeholders("SET a = ?1, -- the operator's word?\n b = ?2"),
            "SET a = $1, -- the operator's word?\n b = $2"
        );
    }

    /// The same statements give the same answers on SQLite and, when a server is given, on
    /// PostgreSQL: integers of any width, reals, text, bytes, null, and upserts.
    #[test]
    fn both_backends_answer_the_same_statements_alike() {
        let lite = rusqlite::Connection::open_in_memory().expect("sqlite");
        check(Conn::Lite(&lite), "sqlite");
        let pg = super::super::pg::testing::scratch();
        let session = pg.session().expect("session");
        check(Conn::Pg(&session), "postgres");
    }

    fn check(c: Conn<'_>, backend: &str) {
        let ddl = if c.is_pg() {
            "CREATE TABLE t (id BIGINT PRIMARY KEY, small INTEGER, r DOUBLE PRECISION, \
             s TEXT, b BYTEA)"
        } else {
            "CREATE TABLE t (id INTEGER PRIMARY KEY, small INTEGER, r REAL, s TEXT, b BLOB)"
        };
        c.execute(ddl, &[]).expect(backend);
        let blob: &[u8] = b"\x00\xff";
        let n = c
            .execute(
                "INSERT INTO t (id, small, r, s, b) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[&1i64, &7i64, &0.5f64, &"中证网", &blob],
            )
            .expect(backend);
        assert_eq!(n, 1, "{backend}");
        let none: Option<String> = None;
        c.execute(
            "INSERT INTO t (id, small, r, s, b) VALUES (?1, ?2, ?3, ?4, NULL) \
             ON CONFLICT (id) DO UPDATE SET s = excluded.s",
            &[&2i64, &true, &1i64, &none],
        )
        .expect(backend);
        c.execute(
            "INSERT INTO t (id, small, r, s) VALUES (?1, 0, 0, ?2) \
             ON CONFLICT (id) DO UPDATE SET s = excluded.s",
            &[&2i64, &"again"],
        )
        .expect(backend);
        let rows = c
            .query_map("SELECT id, small, r, s, b FROM t ORDER BY id", &[], |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<u32>(1)?,
                    r.get::<f64>(2)?,
                    r.get::<Option<String>>(3)?,
                    r.get::<Option<Vec<u8>>>(4)?,
                ))
            })
            .expect(backend);
        assert_eq!(
            rows,
            [
                (1, 7, 0.5, Some("中证网".into()), Some(blob.to_vec())),
                (2, 1, 1.0, Some("again".into()), None),
            ],
            "{backend}"
        );
        let total = c
            .query_one(
                "SELECT CAST(SUM(small) AS BIGINT), COUNT(*) FROM t WHERE id >= ?1",
                &[&1i64],
                |r| Ok((r.get::<i64>(0)?, r.get::<usize>(1)?)),
            )
            .expect(backend);
        assert_eq!(total, (8, 2), "{backend}");
        let missing = c
            .query_opt("SELECT s FROM t WHERE id = ?1", &[&9i64], |r| {
                r.get::<String>(0)
            })
            .expect(backend);
        assert_eq!(missing, None, "{backend}");
        let wrong = c.query_one("SELECT s FROM t WHERE id = 1", &[], |r| r.get::<i64>(0));
        assert!(wrong.is_err(), "{backend}: text is not read as an integer");
    }
}
