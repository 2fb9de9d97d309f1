//! Multi-row INSERTs in chunks: the one way services write many rows. One statement per chunk
//! instead of one round trip per row; chunks stay under both backends' bind-parameter limits
//! (SQLite 32,766, PostgreSQL 65,535).

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, OnConflict, Query, SimpleExpr};

use crate::error::DomainResult;

/// Bind parameters per statement.
const MAX_PARAMS: usize = 30_000;

/// Inserts `rows` (each with one value per column, in order) into `table`, in as few statements
/// as the parameter limit allows. `on_conflict` turns each statement into an upsert.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<SimpleExpr>>,
    on_conflict: Option<OnConflict>,
) -> DomainResult<()> {
    let per_chunk = (MAX_PARAMS / columns.len().max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut stmt = Query::insert();
        stmt.into_table(Alias::new(table))
            .columns(columns.iter().map(|c| Alias::new(*c)));
        for row in rows.by_ref().take(per_chunk) {
            stmt.values_panic(row);
        }
        if let Some(c) = &on_conflict {
            stmt.on_conflict(c.clone());
        }
        db.execute(&stmt).await?;
    }
    Ok(())
}

/// Splits `items` into chunks small enough for an `IN (…)` list.
pub(crate) fn in_chunks<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    items.chunks(MAX_PARAMS / 2)
}
