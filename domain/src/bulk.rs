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

use sea_orm::sea_query::{Alias, ArrayType, OnConflict, Query, Value};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::DomainResult;

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
