//! The ledger's storage statements: moving a balance row and appending an entry, written once
//! for both backends. The balance statements are plain SQL (so the conditional update that keeps
//! stock non-negative reads exactly as it runs); only the placeholder style differs between
//! SQLite (`?`) and PostgreSQL (`$1`), and [`stmt`] converts it.
//!
//! Must not: decide anything. Rules live in `crate::stock`; this module only does what the
//! service asks and reports what the database did.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use crate::codes::{LotNumber, ProductCode, SiteCode};
use crate::entities::stock_entry;
use crate::error::{DomainError, DomainResult};
use crate::quantity::Vials;
use crate::stock::{Counter, Effect, EntryKind, WasteReason};

/// A statement from SQL written with `?` placeholders, numbered `$n` on PostgreSQL. The SQL
/// here never holds a literal `?`.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            // By pieces, not characters: a group's look-up is ~3 KB of SQL, numbered per call.
            let mut pieces = sql.split('?');
            let mut out = String::with_capacity(sql.len() + 16);
            out.push_str(pieces.next().unwrap_or_default());
            for (n, piece) in pieces.enumerate() {
                let _ = write!(out, "${}{piece}", n + 1);
            }
            out
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The balance column a counter lives in (a fixed name, never input).
pub fn counter_column(c: Counter) -> &'static str {
    match c {
        Counter::Received => "received",
        Counter::Administered => "administered",
        Counter::Wasted => "wasted",
        Counter::Expired => "expired",
        Counter::TransferredIn => "transferred_in",
        Counter::TransferredOut => "transferred_out",
        Counter::Adjusted => "adjusted",
    }
}

/// A condition on the lot's expiry date that a withdrawal must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryGuard {
    None,
    /// Good through `today` (expiry_date >= today): use and transfers.
    Unexpired(NaiveDate),
    /// Past its date (expiry_date < today): EXPIRED entries.
    Expired(NaiveDate),
}

/// One balance row: site × product × lot.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub site: &'a SiteCode,
    pub product: &'a ProductCode,
    pub lot: &'a LotNumber,
}

/// What a balance row holds after a move.
#[derive(Debug, Clone, Copy)]
pub struct Moved {
    pub on_hand: Vials,
    pub expiry_date: NaiveDate,
}

pub(crate) fn moved(row: &QueryResult) -> DomainResult<Moved> {
    let on_hand: i64 = row.try_get("", "on_hand")?;
    Ok(Moved {
        on_hand: Vials::new(
            u64::try_from(on_hand).map_err(|_| DomainError::Corrupt("negative balance returned".into()))?,
        ),
        expiry_date: row.try_get("", "expiry_date")?,
    })
}

/// Moves a balance row by `effect`. An inflow creates the row when the site holds none of the
/// lot yet (`expiry` from the lot master). An outflow is one conditional UPDATE: it changes the
/// row only if it holds enough (and the expiry guard passes), which on PostgreSQL re-checks the
/// condition on the latest committed row after waiting for its lock, so concurrent withdrawals
/// can never take the same vials twice. `None`: the condition failed and nothing changed.
pub async fn move_balance<C: ConnectionTrait>(
    db: &C,
    key: Key<'_>,
    effect: Effect,
    expiry: NaiveDate,
    guard: ExpiryGuard,
    now: DateTime<Utc>,
) -> DomainResult<Option<Moved>> {
    let backend = db.get_database_backend();
    let col = counter_column(effect.counter);
    let row = if effect.on_hand > 0 && guard == ExpiryGuard::None {
        let sql = format!(
            "INSERT INTO stock_balances (site_code, product_code, lot_number, expiry_date, on_hand, {col}, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (site_code, product_code, lot_number) DO UPDATE SET \
             on_hand = stock_balances.on_hand + excluded.on_hand, \
             {col} = stock_balances.{col} + excluded.{col}, updated_at = excluded.updated_at \
             RETURNING on_hand, expiry_date"
        );
        let values = vec![
            key.site.as_str().into(),
            key.product.as_str().into(),
            key.lot.as_str().into(),
            expiry.into(),
            effect.on_hand.into(),
            effect.counter_delta.into(),
            now.into(),
        ];
        db.query_one_raw(stmt(backend, &sql, values)).await?
    } else {
        let (guard_sql, guard_value) = match guard {
            ExpiryGuard::None => ("", None),
            ExpiryGuard::Unexpired(today) => (" AND expiry_date >= ?", Some(today)),
            ExpiryGuard::Expired(today) => (" AND expiry_date < ?", Some(today)),
        };
        let sql = format!(
            "UPDATE stock_balances SET on_hand = on_hand + ?, {col} = {col} + ?, updated_at = ? \
             WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ? AND on_hand + ? >= 0{guard_sql} \
             RETURNING on_hand, expiry_date"
        );
        let mut values: Vec<Value> = vec![
            effect.on_hand.into(),
            effect.counter_delta.into(),
            now.into(),
            key.site.as_str().into(),
            key.product.as_str().into(),
            key.lot.as_str().into(),
            effect.on_hand.into(),
        ];
        values.extend(guard_value.map(Value::from));
        db.query_one_raw(stmt(backend, &sql, values)).await?
    };
    row.as_ref().map(moved).transpose()
}

/// PostgreSQL: a withdrawal (use, waste, expiry) as one statement — the same conditional
/// balance update as [`move_balance`], the entry insert fed by its result, and the site's
/// municipality — so the most frequent write is one round trip and one implicit transaction
/// instead of five (lookup, BEGIN, UPDATE, INSERT, COMMIT). The update's row lock and re-checked
/// condition work exactly as in [`move_balance`]; when the condition fails, nothing is updated
/// or inserted and `None` comes back. `e.balance_after` is ignored (the update decides it).
pub async fn withdraw_in_one_statement<C: ConnectionTrait>(
    db: &C,
    e: &NewEntry<'_>,
    effect: Effect,
    guard: ExpiryGuard,
) -> DomainResult<Option<(i64, Moved, String)>> {
    let col = counter_column(effect.counter);
    let (guard_sql, guard_value) = match guard {
        ExpiryGuard::None => ("", None),
        ExpiryGuard::Unexpired(today) => (" AND expiry_date >= ?", Some(today)),
        ExpiryGuard::Expired(today) => (" AND expiry_date < ?", Some(today)),
    };
    let sql = format!(
        "WITH moved AS ( \
           UPDATE stock_balances SET on_hand = on_hand + ?, {col} = {col} + ?, updated_at = ? \
           WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ? AND on_hand + ? >= 0{guard_sql} \
           RETURNING on_hand, expiry_date \
         ), entry AS ( \
           INSERT INTO stock_entries (site_code, product_code, lot_number, kind, quantity, balance_after, \
             waste_reason, note, occurred_on, recorded_at, actor) \
           SELECT ?, ?, ?, ?, ?, moved.on_hand, ?, ?, ?, ?, ? FROM moved \
           RETURNING id \
         ) \
         SELECT entry.id, moved.on_hand, moved.expiry_date, s.municipality_code \
         FROM entry, moved, sites s WHERE s.code = CAST(? AS bpchar)"
    );
    let (site, product, lot) = (e.key.site.as_str(), e.key.product.as_str(), e.key.lot.as_str());
    let mut values: Vec<Value> = vec![
        effect.on_hand.into(),
        effect.counter_delta.into(),
        e.recorded_at.into(),
        site.into(),
        product.into(),
        lot.into(),
        effect.on_hand.into(),
    ];
    values.extend(guard_value.map(Value::from));
    values.extend([
        site.into(),
        product.into(),
        lot.into(),
        e.kind.as_str().into(),
        e.quantity.into(),
        e.waste_reason.map(|r| r.as_str().to_owned()).into(),
        e.note.into(),
        e.occurred_on.into(),
        e.recorded_at.into(),
        e.actor.into(),
        site.into(),
    ]);
    let Some(row) = db.query_one_raw(stmt(db.get_database_backend(), &sql, values)).await? else {
        return Ok(None);
    };
    Ok(Some((
        row.try_get("", "id")?,
        moved(&row)?,
        row.try_get("", "municipality_code")?,
    )))
}

/// Creates an empty balance row if the site has none for the lot (so it can be locked).
pub async fn ensure_balance_row<C: ConnectionTrait>(
    db: &C,
    key: Key<'_>,
    expiry: NaiveDate,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let sql = "INSERT INTO stock_balances (site_code, product_code, lot_number, expiry_date, on_hand, updated_at) \
               VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (site_code, product_code, lot_number) DO NOTHING";
    let values = vec![
        key.site.as_str().into(),
        key.product.as_str().into(),
        key.lot.as_str().into(),
        expiry.into(),
        now.into(),
    ];
    db.execute_raw(stmt(db.get_database_backend(), sql, values)).await?;
    Ok(())
}

/// Registers a lot in the lot master if it is new; returns the expiry date on record (which
/// differs from `expiry` when the lot was registered before with another date).
pub async fn ensure_lot<C: ConnectionTrait>(
    db: &C,
    product: &ProductCode,
    lot: &LotNumber,
    expiry: NaiveDate,
    now: DateTime<Utc>,
) -> DomainResult<NaiveDate> {
    let backend = db.get_database_backend();
    let insert = "INSERT INTO lots (product_code, lot_number, expiry_date, created_at) VALUES (?, ?, ?, ?) \
                  ON CONFLICT (product_code, lot_number) DO NOTHING";
    db.execute_raw(stmt(
        backend,
        insert,
        vec![product.as_str().into(), lot.as_str().into(), expiry.into(), now.into()],
    ))
    .await?;
    lot_expiry(db, product, lot)
        .await?
        .ok_or_else(|| DomainError::Corrupt(format!("lot {lot} of {product} vanished")))
}

/// The expiry date of a lot in the lot master.
pub async fn lot_expiry<C: ConnectionTrait>(
    db: &C,
    product: &ProductCode,
    lot: &LotNumber,
) -> DomainResult<Option<NaiveDate>> {
    let select = "SELECT expiry_date FROM lots WHERE product_code = ? AND lot_number = ?";
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            select,
            vec![product.as_str().into(), lot.as_str().into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("", "expiry_date")?),
        None => None,
    })
}

/// A balance row's on-hand figure and expiry; `lock` takes the row lock on PostgreSQL (SQLite's
/// writer lock already serialises writers).
pub async fn balance_of<C: ConnectionTrait>(db: &C, key: Key<'_>, lock: bool) -> DomainResult<Option<Moved>> {
    let backend = db.get_database_backend();
    let lock = if lock && backend == DbBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = format!(
        "SELECT on_hand, expiry_date FROM stock_balances WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ?{lock}"
    );
    let row = db
        .query_one_raw(stmt(
            backend,
            &sql,
            vec![
                key.site.as_str().into(),
                key.product.as_str().into(),
                key.lot.as_str().into(),
            ],
        ))
        .await?;
    row.as_ref().map(moved).transpose()
}

/// An entry to append; every field but the id is decided by the service.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub key: Key<'a>,
    pub kind: EntryKind,
    pub quantity: i64,
    pub balance_after: Vials,
    pub waste_reason: Option<WasteReason>,
    pub note: &'a str,
    pub occurred_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub actor: &'a str,
    pub counterpart: Option<&'a SiteCode>,
    pub paired_entry: Option<i64>,
    pub reverses: Option<(i64, EntryKind)>,
    pub delivery: Option<i64>,
    pub report: Option<i64>,
}

/// Appends an entry; returns its id.
pub async fn insert_entry<C: ConnectionTrait>(db: &C, e: &NewEntry<'_>) -> DomainResult<i64> {
    let balance_after =
        i64::try_from(e.balance_after.get()).map_err(|_| DomainError::Corrupt("balance beyond i64".into()))?;
    let model = stock_entry::ActiveModel {
        site_code: Set(e.key.site.as_str().to_owned()),
        product_code: Set(e.key.product.as_str().to_owned()),
        lot_number: Set(e.key.lot.as_str().to_owned()),
        kind: Set(e.kind.as_str().to_owned()),
        quantity: Set(e.quantity),
        balance_after: Set(balance_after),
        waste_reason: Set(e.waste_reason.map(|r| r.as_str().to_owned())),
        note: Set(e.note.to_owned()),
        occurred_on: Set(e.occurred_on),
        recorded_at: Set(e.recorded_at),
        actor: Set(e.actor.to_owned()),
        counterpart_site: Set(e.counterpart.map(|s| s.as_str().to_owned())),
        paired_entry_id: Set(e.paired_entry),
        reverses_entry_id: Set(e.reverses.map(|r| r.0)),
        original_kind: Set(e.reverses.map(|r| r.1.as_str().to_owned())),
        delivery_id: Set(e.delivery),
        report_id: Set(e.report),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(model.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_only() {
        let table: [(&str, &str); 5] = [
            ("SELECT 1", "SELECT 1"),
            ("?", "$1"),
            ("SELECT ?, ?", "SELECT $1, $2"),
            ("x = ? AND y = ?? ", "x = $1 AND y = $2$3 "),
            ("(?,?,?,?,?,?,?,?,?,?,?)", "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"),
        ];
        for (sql, pg) in table {
            assert_eq!(stmt(DbBackend::Postgres, sql, vec![]).sql, pg, "{sql}");
            assert_eq!(stmt(DbBackend::Sqlite, sql, vec![]).sql, sql, "{sql}");
        }
    }
}
