//! Batch INSERTs: the one way services write many rows — one statement per chunk, never one
//! round trip per row.
//!
//! SQLite: multi-row `INSERT … VALUES (…), (…)` in chunks under its bind-parameter limit.
//! PostgreSQL: for plain inserts of non-null values, `INSERT … SELECT * FROM UNNEST($1::text[],
//! $2::int8[], …)` — one array parameter per column, so a chunk of 20,000 rows is one small
//! statement. Measured on the national confirmation (70,000 orders, 140,000 ancillary lines,
//! 70,000 outbox entries): PostgreSQL spends about 3× longer parsing and planning the same rows
//! as multi-row VALUES (see BENCHMARKS.md), and the statement text no longer depends on the row
//! count, so it is prepared once. Upserts and rows with NULLs take the multi-row path on both
//! backends.
//!
//! PostgreSQL, the deadline run: [`CopyTx`] is a transaction on a connection of its own, so it
//! can `COPY … FROM STDIN (FORMAT binary)`, which batches heap and WAL writes the way no INSERT
//! does (the national confirmation spent ~2× the time of `\copy` in INSERT … UNNEST). Writers
//! fill [`Rows`] once; [`write`] sends them by COPY when the transaction can, by INSERT
//! otherwise, so both paths store exactly the same rows.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, ArrayType, OnConflict, Query, Value};
use sea_orm::sqlx::{self, Postgres};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};

use crate::error::DomainResult;
use crate::held::{Held, exec_err};
use crate::store::Store;

/// Bind parameters per multi-row statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;
/// Rows per UNNEST statement.
const UNNEST_ROWS: usize = 20_000;

/// Inserts `rows` (each with one value per column, in order) into `table`. `on_conflict`
/// turns each statement into an upsert.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
    on_conflict: Option<OnConflict>,
) -> DomainResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres
        && on_conflict.is_none()
        && let Some(types) = array_types(&rows)
    {
        return unnest(db, table, columns, &types, rows).await;
    }
    let per_chunk = (MAX_PARAMS / columns.len().max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut stmt = Query::insert();
        stmt.into_table(Alias::new(table))
            .columns(columns.iter().map(|c| Alias::new(*c)));
        for row in rows.by_ref().take(per_chunk) {
            stmt.values_panic(row.into_iter().map(Into::into));
        }
        if let Some(c) = &on_conflict {
            stmt.on_conflict(c.clone());
        }
        db.execute(&stmt).await?;
    }
    Ok(())
}

/// The PostgreSQL array type of each column, if every row has a non-null value of the same
/// supported type in it.
fn array_types(rows: &[Vec<Value>]) -> Option<Vec<(ArrayType, &'static str)>> {
    let of = |v: &Value| -> Option<(ArrayType, &'static str)> {
        Some(match v {
            Value::String(Some(_)) => (ArrayType::String, "text"),
            Value::Int(Some(_)) => (ArrayType::Int, "int4"),
            Value::BigInt(Some(_)) => (ArrayType::BigInt, "int8"),
            Value::ChronoDateTimeUtc(Some(_)) => (ArrayType::ChronoDateTimeUtc, "timestamptz"),
            _ => return None,
        })
    };
    let types: Vec<_> = rows[0].iter().map(of).collect::<Option<_>>()?;
    let same = rows.iter().all(|r| {
        r.len() == types.len()
            && r.iter()
                .zip(&types)
                .all(|(v, (t, _))| of(v).is_some_and(|(u, _)| u == *t))
    });
    same.then_some(types)
}

async fn unnest<C: ConnectionTrait>(
    db: &C,
    table: &str,
    columns: &[&str],
    types: &[(ArrayType, &'static str)],
    rows: Vec<Vec<Value>>,
) -> DomainResult<()> {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{t}[]", i + 1))
        .collect();
    let sql = format!(
        "INSERT INTO \"{table}\" ({}) SELECT * FROM UNNEST({})",
        quoted.join(", "),
        arrays.join(", ")
    );
    // UNNEST in FROM materialises its rows; give it room so a 20,000-row chunk does not spill
    // to a temporary file (for this transaction only).
    db.execute_unprepared("SET LOCAL work_mem = '64MB'").await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(UNNEST_ROWS); types.len()];
        for row in rows.by_ref().take(UNNEST_ROWS) {
            for (col, v) in cols.iter_mut().zip(row) {
                col.push(v);
            }
        }
        let values: Vec<Value> = cols
            .into_iter()
            .zip(types)
            .map(|(col, (t, _))| Value::Array(t.clone(), Some(Box::new(col))))
            .collect();
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql.clone(), values))
            .await?;
    }
    Ok(())
}

/// Splits `items` into chunks small enough for an `IN (…)` list.
pub(crate) fn in_chunks<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    items.chunks(MAX_PARAMS / 2)
}

/// One value of a row for [`Rows`]: only the types bulk writers need, none of them NULL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Text(&'a str),
    Int4(i32),
    Int8(i64),
    Time(DateTime<Utc>),
}

impl Cell<'_> {
    fn value(self) -> Value {
        match self {
            Cell::Text(s) => s.to_owned().into(),
            Cell::Int4(n) => n.into(),
            Cell::Int8(n) => n.into(),
            Cell::Time(t) => t.into(),
        }
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Binary COPY data is sent in pieces of about this size while rows are still being added, so
/// the server parses one piece while the next is encoded.
const COPY_PIECE: usize = 1 << 20;

/// Rows for one table, in the form the transaction takes them: values for INSERT, or the
/// binary COPY stream (PostgreSQL's `PGCOPY` format: a header, per row the field count and each
/// field as length + network-order bytes, a trailer).
pub(crate) struct Rows<'c> {
    columns: &'c [&'c str],
    values: Vec<Vec<Value>>,
    binary: Option<Vec<u8>>,
    count: usize,
}

impl<'c> Rows<'c> {
    /// Empty rows for `columns`, in the form `db` takes.
    pub(crate) fn new<C: Target>(db: &C, columns: &'c [&'c str]) -> Self {
        match db.copy() {
            Some(_) => Rows::for_copy(columns),
            None => Rows {
                columns,
                values: Vec::new(),
                binary: None,
                count: 0,
            },
        }
    }

    /// Empty rows for `columns` as a binary COPY stream, to be sent with
    /// [`CopyTx::copy_stream`] piece by piece ([`Rows::take_piece`], [`Rows::last_piece`]).
    pub(crate) fn for_copy(columns: &'c [&'c str]) -> Self {
        let mut b = Vec::with_capacity(COPY_PIECE + 4096);
        b.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        b.extend_from_slice(&0i32.to_be_bytes()); // flags
        b.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Rows {
            columns,
            values: Vec::new(),
            binary: Some(b),
            count: 0,
        }
    }

    /// The binary data encoded so far, once it is worth sending (about [`COPY_PIECE`]). Encoding
    /// goes on in a buffer the stream has sent already ([`Pieces::spare`]) when there is one,
    /// so a large write reuses a few buffers instead of touching fresh memory for every piece.
    pub(crate) fn take_piece(&mut self, pieces: &Pieces) -> Option<Vec<u8>> {
        let b = self.binary.as_mut().filter(|b| b.len() >= COPY_PIECE)?;
        Some(std::mem::replace(b, pieces.spare()))
    }

    /// The rest of the binary data, with the trailer that ends the stream.
    pub(crate) fn last_piece(self) -> Vec<u8> {
        let mut b = self.binary.unwrap_or_default();
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    /// Adds one row: one cell per column, in order.
    pub(crate) fn push(&mut self, row: &[Cell<'_>]) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.count += 1;
        let Some(b) = &mut self.binary else {
            self.values.push(row.iter().map(|c| c.value()).collect());
            return;
        };
        b.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for cell in row {
            match *cell {
                Cell::Text(s) => {
                    b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
                Cell::Int4(n) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&n.to_be_bytes());
                }
                Cell::Int8(n) => {
                    b.extend_from_slice(&8i32.to_be_bytes());
                    b.extend_from_slice(&n.to_be_bytes());
                }
                Cell::Time(t) => {
                    b.extend_from_slice(&8i32.to_be_bytes());
                    b.extend_from_slice(&(t.timestamp_micros() - PG_EPOCH_MICROS).to_be_bytes());
                }
            }
        }
    }
}

/// Writes `rows` into `table` inside `db`'s transaction: by binary COPY on a [`CopyTx`], by
/// batch INSERT otherwise.
pub(crate) async fn write<C: Target>(db: &C, table: &str, rows: Rows<'_>) -> DomainResult<()> {
    if rows.count == 0 {
        return Ok(());
    }
    match db.copy() {
        Some(copy) if rows.binary.is_some() => {
            let sql = copy_sql(table, rows.columns);
            copy.copy_in(&sql, &rows.last_piece()).await
        }
        _ => insert(db, table, rows.columns, rows.values, None).await,
    }
}

/// Pieces of binary COPY data on their way from an encoding thread to [`CopyTx::copy_stream`]:
/// at most [`PIECES_AHEAD`] wait (the encoder blocks when the server falls behind, so memory
/// stays bounded), and sent buffers come back to be encoded into again.
pub(crate) struct Pieces {
    out: tokio::sync::mpsc::Sender<Vec<u8>>,
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
}

/// The receiving end of [`Pieces`], for [`CopyTx::copy_stream`].
pub(crate) struct PieceStream {
    pieces: tokio::sync::mpsc::Receiver<Vec<u8>>,
    spares: std::sync::mpsc::Sender<Vec<u8>>,
}

/// Encoded pieces that may wait for the server at once (about 1 MiB each).
const PIECES_AHEAD: usize = 8;

impl Pieces {
    pub(crate) fn channel() -> (Pieces, PieceStream) {
        let (out, pieces) = tokio::sync::mpsc::channel(PIECES_AHEAD);
        let (give_back, spares) = std::sync::mpsc::channel();
        (
            Pieces { out, spares },
            PieceStream {
                pieces,
                spares: give_back,
            },
        )
    }

    /// Sends a piece, waiting while [`PIECES_AHEAD`] are queued (from a blocking thread only).
    /// `false` when the stream is gone: the COPY failed, and its error is the one to report.
    pub(crate) fn send(&self, piece: Vec<u8>) -> bool {
        self.out.blocking_send(piece).is_ok()
    }

    /// An empty buffer for the next piece: one the stream has sent, or a new one.
    fn spare(&self) -> Vec<u8> {
        match self.spares.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(COPY_PIECE + 4096),
        }
    }
}

/// `COPY table (columns) FROM STDIN` for the binary rows of [`Rows`].
pub(crate) fn copy_sql(table: &str, columns: &[&str]) -> String {
    let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    format!("COPY \"{table}\" ({}) FROM STDIN (FORMAT binary)", columns.join(", "))
}

/// A transaction that takes many rows at once: [`CopyTx`] by COPY, any other by INSERT.
pub(crate) trait Target: ConnectionTrait {
    fn copy(&self) -> Option<&CopyTx> {
        None
    }
}

impl Target for DatabaseTransaction {}
impl Target for DatabaseConnection {}
impl Target for CopyTx {
    fn copy(&self) -> Option<&CopyTx> {
        Some(self)
    }
}

/// A PostgreSQL write transaction on a pooled connection of its own (sea-orm does not lend a
/// transaction's connection), so it can COPY. It runs sea-orm statements like any other
/// transaction (`ConnectionTrait`, see [`Held`]); dropped without [`CopyTx::commit`] it rolls
/// back, like a `WriteTx`.
pub(crate) type CopyTx = Held<sqlx::Transaction<'static, Postgres>>;

impl CopyTx {
    /// Begins one on PostgreSQL; `None` on SQLite (which has no COPY: callers use `Store::write`).
    pub(crate) async fn begin(store: &Store) -> DomainResult<Option<CopyTx>> {
        if store.backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let tx = store
            .db()
            .get_postgres_connection_pool()
            .begin()
            .await
            .map_err(exec_err)?;
        Ok(Some(Held::new(tx)))
    }

    pub(crate) async fn commit(self) -> DomainResult<()> {
        self.into_inner().commit().await.map_err(exec_err)?;
        Ok(())
    }

    async fn copy_in(&self, sql: &str, data: &[u8]) -> DomainResult<()> {
        let mut tx = self.conn.lock().await;
        let mut copy = tx.copy_in_raw(sql).await.map_err(exec_err)?;
        for piece in data.chunks(COPY_PIECE) {
            copy.send(piece).await.map_err(exec_err)?;
        }
        copy.finish().await.map_err(exec_err)?;
        Ok(())
    }

    /// Runs `sql` (from [`copy_sql`]) with the pieces `data` yields as they come, so the server
    /// stores rows while the sender is still encoding the next ones; finishes when the sender
    /// is gone. A sender that fails midway must make the caller roll back: the server accepts a
    /// stream cut short.
    pub(crate) async fn copy_stream(&self, sql: &str, mut data: PieceStream) -> DomainResult<()> {
        let mut tx = self.conn.lock().await;
        let mut copy = tx.copy_in_raw(sql).await.map_err(exec_err)?;
        while let Some(piece) = data.pieces.recv().await {
            copy.send(piece.as_slice()).await.map_err(exec_err)?;
            // The encoder may have finished and gone: then nobody needs the buffer.
            let _ = data.spares.send(piece);
        }
        copy.finish().await.map_err(exec_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_rows_follow_the_pgcopy_layout() {
        let columns = ["a", "b", "c", "d"];
        let mut rows = Rows {
            columns: &columns,
            values: Vec::new(),
            binary: Some(Vec::new()),
            count: 0,
        };
        let t = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002Z")
            .expect("time")
            .with_timezone(&Utc);
        rows.push(&[Cell::Text("é"), Cell::Int4(-2), Cell::Int8(3), Cell::Time(t)]);
        let expected: Vec<u8> = [
            &4i16.to_be_bytes()[..],
            &2i32.to_be_bytes(),
            "é".as_bytes(),
            &4i32.to_be_bytes(),
            &(-2i32).to_be_bytes(),
            &8i32.to_be_bytes(),
            &3i64.to_be_bytes(),
            &8i32.to_be_bytes(),
            &1_000_002i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(rows.binary.as_deref(), Some(&expected[..]));
        assert_eq!(rows.count, 1);
    }
}
