//! The dose records' storage statements, for both backends. Lookups and inserts take a whole
//! batch at once: on PostgreSQL as arrays (`= ANY($1)`, `UNNEST`), so a call of 1,000 records
//! costs a fixed number of round trips; SQLite (in-process, one writer) loops over the rows.
//!
//! Must not: decide anything. Rules live in `crate::dose`; the service in `super`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};

use crate::codes::{LotNumber, ProductCode, SiteCode};
use crate::dose::{EarlierDose, IntervalRule};
use crate::error::{DomainError, DomainResult};
use crate::ledger::sql::stmt;

use super::DoseRecord;

/// The columns [`super::record_from_row`] reads, in a SELECT of `dose_records`.
pub const COLUMNS: &str = "id, person_id, municipality_code, coupon_number, dose_number, administered_on, \
    product_code, lot_number, site_code, doctor_name, capture, status, override_id, override_reason, \
    vial_entry_id, opened_vial, recorded_by_site, version, recorded_at, recorded_by, changed_at, changed_by, \
    change_reason";

fn pg<C: ConnectionTrait>(db: &C) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// One column of `items` as a PostgreSQL array parameter (for `UNNEST`).
fn array<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Value
where
    Vec<U>: Into<Value>,
{
    items.iter().map(f).collect::<Vec<U>>().into()
}

/// How the PostgreSQL session a group's statements run on caches plans, which decides how
/// their parameters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL chooses between a custom and the generic plan at each execution (the
    /// pool's sessions). Arrays and counts are written as sub-selects
    /// (`(SELECT CAST(? AS …[]))`) so that both cost the same and the cached generic plan is
    /// kept (see [`PROBES_UP_TO`]).
    Chosen,
    /// The session sets `plan_cache_mode = force_generic_plan` (the dose writers' own
    /// connections): parameters are written directly (`CAST(? AS …[])`). Each sub-select is
    /// an InitPlan started, run and ended at every execution — ~45 of them per group — and
    /// starting plan nodes was a fifth of the database's CPU for single doses.
    Generic,
}

/// `sql` as written for `plans`: with [`Plans::Generic`], every `(SELECT CAST(? AS t))`
/// becomes `CAST(? AS t)`.
pub fn shaped(sql: &str, plans: Plans) -> std::borrow::Cow<'_, str> {
    const OPEN: &str = "(SELECT CAST(? AS ";
    if plans == Plans::Chosen || !sql.contains(OPEN) {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        // A type name holds no parentheses: the cast ends at the first `)`, the sub-select
        // at the next.
        match after.find("))") {
            Some(end) if !after[..end].contains('(') => {
                out.push_str(&rest[..at]);
                out.push_str("CAST(? AS ");
                out.push_str(&after[..end]);
                out.push(')');
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str(&rest[..at + OPEN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// A site's idempotency key: (recording site, key).
pub type SiteKey = (String, String);

/// Records stored under any of `keys` (each a recording site and its key), with their request
/// hashes.
pub async fn by_keys<C: ConnectionTrait>(
    db: &C,
    keys: &[SiteKey],
) -> DomainResult<HashMap<SiteKey, (DoseRecord, String)>> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let rows: Vec<QueryResult> = if pg(db) {
        // One index probe per key, whatever plan is cached (see `lookup_pg`).
        let sql = format!(
            "SELECT d.* FROM UNNEST(CAST(? AS bpchar[]), CAST(? AS text[])) AS k(s, key) \
             CROSS JOIN LATERAL (SELECT {COLUMNS}, idempotency_key, request_hash FROM dose_records \
             WHERE recorded_by_site = k.s AND idempotency_key = k.key OFFSET 0) d"
        );
        let (sites, ks): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
        db.query_all_raw(stmt(backend, &sql, vec![sites.into(), ks.into()]))
            .await?
    } else {
        let sql = format!(
            "SELECT {COLUMNS}, idempotency_key, request_hash FROM dose_records \
             WHERE recorded_by_site = ? AND idempotency_key = ?"
        );
        let mut rows = Vec::new();
        for (site, k) in keys {
            rows.extend(
                db.query_all_raw(stmt(backend, &sql, vec![site.as_str().into(), k.as_str().into()]))
                    .await?,
            );
        }
        rows
    };
    for r in rows {
        let site: String = r.try_get("", "recorded_by_site")?;
        let key: String = r.try_get("", "idempotency_key")?;
        let hash: String = r.try_get("", "request_hash")?;
        out.insert(
            (site.trim().to_owned(), key),
            (super::record_from_row(&r)?, hash.trim().to_owned()),
        );
    }
    Ok(out)
}

/// Recording sites by code: code → (municipality, status), for those that exist.
pub async fn sites<C: ConnectionTrait>(db: &C, codes: &[String]) -> DomainResult<HashMap<String, (String, String)>> {
    let mut out = HashMap::new();
    for code in codes {
        let row = db
            .query_one_raw(stmt(
                db.get_database_backend(),
                "SELECT municipality_code, status FROM sites WHERE code = CAST(? AS bpchar)",
                vec![code.as_str().into()],
            ))
            .await?;
        if let Some(r) = row {
            let m: String = r.try_get("", "municipality_code")?;
            let status: String = r.try_get("", "status")?;
            out.insert(code.clone(), (m.trim().to_owned(), status.trim().to_owned()));
        }
    }
    Ok(out)
}

/// A person as a dose needs them.
#[derive(Debug, Clone, Copy)]
pub struct PersonRow {
    pub id: i64,
    pub moved_out_on: Option<NaiveDate>,
}

/// Persons by (municipality, coupon number).
pub async fn persons<C: ConnectionTrait>(
    db: &C,
    refs: &[(String, String)],
) -> DomainResult<HashMap<(String, String), PersonRow>> {
    let mut out = HashMap::new();
    if refs.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let rows: Vec<QueryResult> = if pg(db) {
        let (ms, cs): (Vec<String>, Vec<String>) = refs.iter().cloned().unzip();
        let sql = "SELECT p.id, p.municipality_code, p.coupon_number, p.moved_out_on \
                   FROM UNNEST(CAST(? AS bpchar[]), CAST(? AS bpchar[])) AS k(m, c) \
                   JOIN persons p ON p.municipality_code = k.m AND p.coupon_number = k.c";
        db.query_all_raw(stmt(backend, sql, vec![ms.into(), cs.into()])).await?
    } else {
        let sql = "SELECT id, municipality_code, coupon_number, moved_out_on FROM persons \
                   WHERE municipality_code = ? AND coupon_number = ?";
        let mut rows = Vec::new();
        for (m, c) in refs {
            rows.extend(
                db.query_all_raw(stmt(backend, sql, vec![m.as_str().into(), c.as_str().into()]))
                    .await?,
            );
        }
        rows
    };
    for r in rows {
        let m: String = r.try_get("", "municipality_code")?;
        let c: String = r.try_get("", "coupon_number")?;
        out.insert(
            (m.trim().to_owned(), c.trim().to_owned()),
            PersonRow {
                id: r.try_get("", "id")?,
                moved_out_on: r.try_get("", "moved_out_on")?,
            },
        );
    }
    Ok(out)
}

/// The ACTIVE doses of these persons (optionally leaving one record out: the one being amended),
/// including those recorded on the earlier rows linked to them when they moved in
/// (`person_links`): a dose given in the old municipality counts for duplicates and intervals.
pub async fn earlier_doses<C: ConnectionTrait>(
    db: &C,
    persons: &[i64],
    except: Option<i64>,
) -> DomainResult<HashMap<i64, Vec<EarlierDose>>> {
    let mut out: HashMap<i64, Vec<EarlierDose>> = HashMap::new();
    if persons.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let except = except.unwrap_or(0);
    let rows: Vec<QueryResult> = if pg(db) {
        let sql = "WITH q AS (SELECT UNNEST(CAST(? AS int8[])) AS pid), \
                   o AS (SELECT pid, pid AS owner FROM q \
                         UNION ALL SELECT l.person_id, l.earlier_person_id FROM person_links l JOIN q ON l.person_id = q.pid) \
                   SELECT d.id, o.pid AS person_id, d.dose_number, d.administered_on \
                   FROM o JOIN dose_records d ON d.person_id = o.owner AND d.status = 'ACTIVE'";
        db.query_all_raw(stmt(backend, sql, vec![persons.to_vec().into()]))
            .await?
    } else {
        let sql = "SELECT d.id, CAST(? AS INTEGER) AS person_id, d.dose_number, d.administered_on FROM dose_records d \
                   WHERE d.status = 'ACTIVE' AND (d.person_id = ? \
                     OR d.person_id IN (SELECT earlier_person_id FROM person_links WHERE person_id = ?))";
        let mut rows = Vec::new();
        for p in persons {
            let values = vec![(*p).into(), (*p).into(), (*p).into()];
            rows.extend(db.query_all_raw(stmt(backend, sql, values)).await?);
        }
        rows
    };
    for r in rows {
        let id: i64 = r.try_get("", "id")?;
        if id == except {
            continue;
        }
        let n: i16 = r.try_get("", "dose_number")?;
        out.entry(r.try_get("", "person_id")?).or_default().push(EarlierDose {
            dose_number: u8::try_from(n).map_err(|_| DomainError::Corrupt(format!("dose record {id}: dose number")))?,
            administered_on: r.try_get("", "administered_on")?,
        });
    }
    Ok(out)
}

/// The municipalities' interval overrides of these persons: (person, dose number) → override id.
pub async fn overrides<C: ConnectionTrait>(db: &C, persons: &[i64]) -> DomainResult<HashMap<(i64, u8), i64>> {
    let mut out = HashMap::new();
    if persons.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let rows: Vec<QueryResult> = if pg(db) {
        let sql = "SELECT id, person_id, dose_number FROM dose_interval_overrides WHERE person_id = ANY(?)";
        db.query_all_raw(stmt(backend, sql, vec![persons.to_vec().into()]))
            .await?
    } else {
        let sql = "SELECT id, person_id, dose_number FROM dose_interval_overrides WHERE person_id = ?";
        let mut rows = Vec::new();
        for p in persons {
            rows.extend(db.query_all_raw(stmt(backend, sql, vec![(*p).into()])).await?);
        }
        rows
    };
    for r in rows {
        let n: i16 = r.try_get("", "dose_number")?;
        out.insert(
            (r.try_get("", "person_id")?, u8::try_from(n).unwrap_or(0)),
            r.try_get("", "id")?,
        );
    }
    Ok(out)
}

/// Every interval rule: (product, dose number) → rule (dose number 0: any later dose not listed).
pub async fn interval_rules<C: ConnectionTrait>(db: &C) -> DomainResult<HashMap<(String, u8), IntervalRule>> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT product_code, dose_number, min_days, min_months FROM dose_interval_rules",
            vec![],
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let n: i16 = r.try_get("", "dose_number")?;
        let days: i32 = r.try_get("", "min_days")?;
        let months: i32 = r.try_get("", "min_months")?;
        out.insert(
            (r.try_get("", "product_code")?, u8::try_from(n).unwrap_or(0)),
            IntervalRule {
                min_days: u32::try_from(days).unwrap_or(0),
                min_months: u32::try_from(months).unwrap_or(0),
            },
        );
    }
    Ok(out)
}

/// Doses per vial of every vaccine.
pub async fn doses_per_vial<C: ConnectionTrait>(db: &C) -> DomainResult<HashMap<String, u64>> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT code, doses_per_vial FROM products WHERE kind = 'VACCINE' AND doses_per_vial > 0",
            vec![],
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let n: i32 = r.try_get("", "doses_per_vial")?;
        out.insert(r.try_get("", "code")?, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// A balance row as doses see it.
#[derive(Debug, Clone, Copy)]
pub struct LotRow {
    pub on_hand: u64,
    pub open_doses: u64,
    pub open_entry_id: Option<i64>,
    pub expiry_date: NaiveDate,
}

/// One balance row, locked for the transaction on PostgreSQL (SQLite's writer lock serialises).
pub async fn lock_lot<C: ConnectionTrait>(
    db: &C,
    site: &SiteCode,
    product: &ProductCode,
    lot: &LotNumber,
) -> DomainResult<Option<LotRow>> {
    let lock = if pg(db) { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT on_hand, open_doses, open_entry_id, expiry_date FROM stock_balances \
         WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ?{lock}"
    );
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            &sql,
            vec![site.as_str().into(), product.as_str().into(), lot.as_str().into()],
        ))
        .await?;
    row.as_ref().map(lot_row).transpose()
}

/// Sets a balance row after doses moved it: on hand, the administered counter's change (vials
/// opened minus vials given back), the open doses and the entry of the open vial.
#[allow(clippy::too_many_arguments)]
pub async fn set_lot<C: ConnectionTrait>(
    db: &C,
    site: &SiteCode,
    product: &ProductCode,
    lot: &LotNumber,
    row: &LotRow,
    administered_delta: i64,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let sql = "UPDATE stock_balances SET on_hand = ?, administered = administered + ?, open_doses = ?, \
               open_entry_id = ?, updated_at = ? \
               WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ?";
    let values: Vec<Value> = vec![
        i64::try_from(row.on_hand).unwrap_or(i64::MAX).into(),
        administered_delta.into(),
        i64::try_from(row.open_doses).unwrap_or(i64::MAX).into(),
        row.open_entry_id.into(),
        now.into(),
        site.as_str().into(),
        product.as_str().into(),
        lot.as_str().into(),
    ];
    db.execute_raw(stmt(db.get_database_backend(), sql, values)).await?;
    Ok(())
}

/// A balance row's key: (site, product, lot).
pub type LotKey = (SiteCode, ProductCode, LotNumber);

fn lot_row(r: &QueryResult) -> DomainResult<LotRow> {
    let on_hand: i64 = r.try_get("", "on_hand")?;
    let open: i64 = r.try_get("", "open_doses")?;
    Ok(LotRow {
        on_hand: u64::try_from(on_hand).map_err(|_| DomainError::Corrupt("negative balance".into()))?,
        open_doses: u64::try_from(open).map_err(|_| DomainError::Corrupt("negative open doses".into()))?,
        open_entry_id: r.try_get("", "open_entry_id")?,
        expiry_date: r.try_get("", "expiry_date")?,
    })
}

const LOCK_LOTS: &str = "SELECT k.n, b.on_hand, b.open_doses, b.open_entry_id, b.expiry_date \
     FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[]))) WITH ORDINALITY AS k(s, p, l, n) \
     CROSS JOIN LATERAL (SELECT on_hand, open_doses, open_entry_id, expiry_date FROM stock_balances \
       WHERE site_code = k.s AND product_code = k.p AND lot_number = k.l FOR UPDATE) b \
     ORDER BY k.n";

/// The balance rows of `keys` that exist, locked for the transaction in the order given
/// (callers sort them, so writers never wait on each other in a circle). PostgreSQL: one
/// statement, one index probe per key; SQLite: one query per key under the writer lock.
pub async fn lock_lots<C: ConnectionTrait>(
    db: &C,
    keys: &[LotKey],
    plans: Plans,
) -> DomainResult<Vec<(LotKey, LotRow)>> {
    if !pg(db) {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(row) = lock_lot(db, &k.0, &k.1, &k.2).await? {
                out.push((k.clone(), row));
            }
        }
        return Ok(out);
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = vec![
        array(keys, |k| k.0.as_str().to_owned()),
        array(keys, |k| k.1.as_str().to_owned()),
        array(keys, |k| k.2.as_str().to_owned()),
    ];
    let rows = db
        .query_all_raw(stmt(db.get_database_backend(), &shaped(LOCK_LOTS, plans), values))
        .await?;
    rows.iter()
        .map(|r| {
            let n: i64 = r.try_get("", "n")?;
            let key = usize::try_from(n - 1)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or_else(|| DomainError::Corrupt("lot lock: key out of range".into()))?;
            Ok((key.clone(), lot_row(r)?))
        })
        .collect()
}

/// A balance row after doses moved it, and its administered counter's change.
pub struct LotUpdate<'a> {
    pub key: &'a LotKey,
    pub row: LotRow,
    pub administered_delta: i64,
}

/// PostgreSQL: balance rows moved by doses as one UPDATE.
fn lots_pg(updates: &[LotUpdate<'_>], now: DateTime<Utc>) -> (&'static str, Vec<Value>) {
    let sql = "UPDATE stock_balances b SET on_hand = u.on_hand, administered = b.administered + u.delta, \
               open_doses = u.open_doses, open_entry_id = NULLIF(u.entry, 0), updated_at = ? \
               FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS bigint[])), \
               (SELECT CAST(? AS bigint[])), (SELECT CAST(? AS bigint[])), (SELECT CAST(? AS bigint[]))) AS u(s, p, l, on_hand, delta, open_doses, entry) \
               WHERE b.site_code = u.s AND b.product_code = u.p AND b.lot_number = u.l";
    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let values: Vec<Value> = vec![
        now.into(),
        array(updates, |u| u.key.0.as_str().to_owned()),
        array(updates, |u| u.key.1.as_str().to_owned()),
        array(updates, |u| u.key.2.as_str().to_owned()),
        array(updates, |u| big(u.row.on_hand)),
        array(updates, |u| u.administered_delta),
        array(updates, |u| big(u.row.open_doses)),
        array(updates, |u| u.row.open_entry_id.unwrap_or(0)),
    ];
    (sql, values)
}

/// A PostgreSQL query giving `?` new ids (column `id`) from `table`'s id sequence. The
/// sequence is looked up once per statement: `pg_get_serial_sequence` reads the catalog, and
/// called for every row it took ~4 % of the database's time in a batch of 1,000 doses.
fn new_ids_pg(table: &str) -> String {
    format!(
        "SELECT nextval(s.seq) AS id FROM (SELECT CAST(pg_get_serial_sequence('{table}', 'id') AS regclass) AS seq \
         OFFSET 0) AS s CROSS JOIN generate_series(1, ?)"
    )
}

/// `n` new ids for `table` (its primary key `id`), ascending. PostgreSQL draws them from the
/// table's sequence; SQLite counts on from the highest id (safe under its writer lock, and ids
/// are never deleted).
pub async fn next_ids<C: ConnectionTrait>(db: &C, table: &'static str, n: usize) -> DomainResult<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    if pg(db) {
        let sql = new_ids_pg(table);
        let rows = db.query_all_raw(stmt(backend, &sql, vec![count.into()])).await?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get::<i64>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    } else {
        let sql = format!("SELECT COALESCE(MAX(id), 0) AS id FROM {table}");
        let row = db
            .query_one_raw(stmt(backend, &sql, vec![]))
            .await?
            .ok_or_else(|| DomainError::Corrupt("no max id".into()))?;
        let max: i64 = row.try_get("", "id")?;
        Ok((1..=count).map(|i| max + i).collect())
    }
}

/// A vial opened for a dose: one ADMINISTERED entry of 1 vial.
#[derive(Debug, Clone)]
pub struct VialEntry {
    pub id: i64,
    pub site: SiteCode,
    /// Who recorded the dose that opened it.
    pub actor: String,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub balance_after: u64,
    pub occurred_on: NaiveDate,
    pub record_id: i64,
}

/// Note on the entry of a vial opened for doses.
pub const VIAL_NOTE: &str = "vial opened for doses";

/// PostgreSQL: the ADMINISTERED entries of opened vials as one INSERT.
fn vials_pg(entries: &[VialEntry], now: DateTime<Utc>) -> (&'static str, Vec<Value>) {
    let sql = "INSERT INTO stock_entries (id, site_code, product_code, lot_number, kind, quantity, balance_after, \
               note, occurred_on, recorded_at, actor, dose_record_id) \
               SELECT u.id, u.site, u.product, u.lot, 'ADMINISTERED', -1, u.balance_after, ?, u.occurred_on, ?, u.actor, \
               u.record_id \
               FROM UNNEST((SELECT CAST(? AS bigint[])), (SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), \
               (SELECT CAST(? AS bigint[])), (SELECT CAST(? AS date[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS bigint[]))) \
               AS u(id, site, product, lot, balance_after, occurred_on, actor, record_id)";
    let values: Vec<Value> = vec![
        VIAL_NOTE.into(),
        now.into(),
        array(entries, |e| e.id),
        array(entries, |e| e.site.as_str().to_owned()),
        array(entries, |e| e.product.as_str().to_owned()),
        array(entries, |e| e.lot.as_str().to_owned()),
        array(entries, |e| i64::try_from(e.balance_after).unwrap_or(i64::MAX)),
        array(entries, |e| e.occurred_on),
        array(entries, |e| e.actor.clone()),
        array(entries, |e| e.record_id),
    ];
    (sql, values)
}

/// Appends the ADMINISTERED entries of opened vials (one statement on PostgreSQL).
pub async fn insert_vials<C: ConnectionTrait>(db: &C, entries: &[VialEntry], now: DateTime<Utc>) -> DomainResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    if pg(db) {
        let (sql, values) = vials_pg(entries, now);
        db.execute_raw(stmt(backend, sql, values)).await?;
    } else {
        let sql = "INSERT INTO stock_entries (id, site_code, product_code, lot_number, kind, quantity, balance_after, \
                   note, occurred_on, recorded_at, actor, dose_record_id) \
                   VALUES (?, ?, ?, ?, 'ADMINISTERED', -1, ?, ?, ?, ?, ?, ?)";
        for e in entries {
            let values: Vec<Value> = vec![
                e.id.into(),
                e.site.as_str().into(),
                e.product.as_str().into(),
                e.lot.as_str().into(),
                i64::try_from(e.balance_after).unwrap_or(i64::MAX).into(),
                VIAL_NOTE.into(),
                e.occurred_on.into(),
                now.into(),
                e.actor.as_str().into(),
                e.record_id.into(),
            ];
            db.execute_raw(stmt(backend, sql, values)).await?;
        }
    }
    Ok(())
}

/// A REVERSED entry giving back a vial whose doses all came back (voids), cancelling the
/// ADMINISTERED entry that opened it. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn insert_vial_back<C: ConnectionTrait>(
    db: &C,
    site: &SiteCode,
    product: &ProductCode,
    lot: &LotNumber,
    balance_after: u64,
    reverses: i64,
    occurred_on: NaiveDate,
    note: &str,
    now: DateTime<Utc>,
    actor: &str,
) -> DomainResult<i64> {
    let sql = "INSERT INTO stock_entries (site_code, product_code, lot_number, kind, quantity, balance_after, note, \
               occurred_on, recorded_at, actor, reverses_entry_id, original_kind) \
               VALUES (?, ?, ?, 'REVERSED', 1, ?, ?, ?, ?, ?, ?, 'ADMINISTERED') RETURNING id";
    let values: Vec<Value> = vec![
        site.as_str().into(),
        product.as_str().into(),
        lot.as_str().into(),
        i64::try_from(balance_after).unwrap_or(i64::MAX).into(),
        note.into(),
        occurred_on.into(),
        now.into(),
        actor.into(),
        reverses.into(),
    ];
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), sql, values))
        .await?
        .ok_or_else(|| DomainError::Corrupt("insert returned no id".into()))?;
    Ok(row.try_get("", "id")?)
}

/// Whether an entry has been reversed already.
pub async fn is_reversed<C: ConnectionTrait>(db: &C, entry: i64) -> DomainResult<bool> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT id FROM stock_entries WHERE reverses_entry_id = ?",
            vec![entry.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// A dose record to insert (its first version).
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub id: i64,
    /// The recording site (where the dose was given).
    pub site: String,
    /// Who recorded it.
    pub actor: String,
    pub person_id: i64,
    pub municipality: String,
    pub prefecture: String,
    pub coupon: String,
    pub dose_number: i16,
    pub administered_on: NaiveDate,
    pub product: String,
    pub lot: String,
    pub doctor_name: String,
    pub capture: &'static str,
    pub override_id: Option<i64>,
    pub override_reason: Option<String>,
    pub vial_entry_id: Option<i64>,
    pub opened_vial: bool,
    pub idempotency_key: String,
    pub request_hash: String,
}

/// PostgreSQL: dose records as one INSERT.
fn records_pg(rows: &[NewRecord], now: DateTime<Utc>) -> (&'static str, Vec<Value>) {
    let sql = "INSERT INTO dose_records (id, person_id, municipality_code, prefecture_code, coupon_number, dose_number, \
               administered_on, product_code, lot_number, site_code, doctor_name, capture, status, override_id, \
               override_reason, vial_entry_id, opened_vial, recorded_by_site, idempotency_key, request_hash, version, \
               recorded_at, recorded_by, changed_at, changed_by) \
               SELECT u.id, u.person_id, u.m, u.p, u.c, u.n, u.d, u.product, u.lot, u.site, u.doctor, u.capture, \
               'ACTIVE', NULLIF(u.override_id, 0), NULLIF(u.override_reason, ''), NULLIF(u.vial, 0), u.opened, u.site, \
               u.k, u.h, 1, ?, u.actor, ?, u.actor \
               FROM UNNEST((SELECT CAST(? AS bigint[])), (SELECT CAST(? AS bigint[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), \
               (SELECT CAST(? AS text[])), (SELECT CAST(? AS smallint[])), (SELECT CAST(? AS date[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), \
               (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS bigint[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS bigint[])), \
               (SELECT CAST(? AS boolean[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[]))) \
               AS u(id, person_id, m, p, c, n, d, product, lot, doctor, capture, override_id, override_reason, vial, \
               opened, k, h, site, actor)";
    let values: Vec<Value> = vec![
        now.into(),
        now.into(),
        array(rows, |r| r.id),
        array(rows, |r| r.person_id),
        array(rows, |r| r.municipality.clone()),
        array(rows, |r| r.prefecture.clone()),
        array(rows, |r| r.coupon.clone()),
        array(rows, |r| r.dose_number),
        array(rows, |r| r.administered_on),
        array(rows, |r| r.product.clone()),
        array(rows, |r| r.lot.clone()),
        array(rows, |r| r.doctor_name.clone()),
        array(rows, |r| r.capture.to_owned()),
        array(rows, |r| r.override_id.unwrap_or(0)),
        array(rows, |r| r.override_reason.clone().unwrap_or_default()),
        array(rows, |r| r.vial_entry_id.unwrap_or(0)),
        array(rows, |r| r.opened_vial),
        array(rows, |r| r.idempotency_key.clone()),
        array(rows, |r| r.request_hash.clone()),
        array(rows, |r| r.site.clone()),
        array(rows, |r| r.actor.clone()),
    ];
    (sql, values)
}

/// SQLite: appends dose records one by one, each recorded by its own site (PostgreSQL writes
/// them in [`write_batch`]).
async fn insert_records_one_by_one<C: ConnectionTrait>(
    db: &C,
    rows: &[NewRecord],
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let sql = "INSERT INTO dose_records (id, person_id, municipality_code, prefecture_code, coupon_number, dose_number, \
               administered_on, product_code, lot_number, site_code, doctor_name, capture, status, override_id, \
               override_reason, vial_entry_id, opened_vial, recorded_by_site, idempotency_key, request_hash, version, \
               recorded_at, recorded_by, changed_at, changed_by) \
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)";
    for r in rows {
        let values: Vec<Value> = vec![
            r.id.into(),
            r.person_id.into(),
            r.municipality.as_str().into(),
            r.prefecture.as_str().into(),
            r.coupon.as_str().into(),
            r.dose_number.into(),
            r.administered_on.into(),
            r.product.as_str().into(),
            r.lot.as_str().into(),
            r.site.as_str().into(),
            r.doctor_name.as_str().into(),
            r.capture.into(),
            r.override_id.into(),
            r.override_reason.clone().into(),
            r.vial_entry_id.into(),
            r.opened_vial.into(),
            r.site.as_str().into(),
            r.idempotency_key.as_str().into(),
            r.request_hash.as_str().into(),
            now.into(),
            r.actor.as_str().into(),
            now.into(),
            r.actor.as_str().into(),
        ];
        db.execute_raw(stmt(backend, sql, values)).await?;
    }
    Ok(())
}

/// One record, locked for the transaction on PostgreSQL.
pub async fn record_for_update<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Option<DoseRecord>> {
    let lock = if pg(db) { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM dose_records WHERE id = ?{lock}");
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), &sql, vec![id.into()]))
        .await?;
    row.as_ref().map(super::record_from_row).transpose()
}

/// Copies a record's current version into `dose_record_versions` before it changes.
pub async fn keep_version<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<()> {
    let sql = "INSERT INTO dose_record_versions (record_id, version, person_id, dose_number, administered_on, \
               product_code, lot_number, site_code, doctor_name, capture, status, vial_entry_id, opened_vial, made_at, \
               made_by, reason, override_id) \
               SELECT id, version, person_id, dose_number, administered_on, product_code, lot_number, site_code, \
               doctor_name, capture, status, vial_entry_id, opened_vial, changed_at, changed_by, change_reason, override_id \
               FROM dose_records WHERE id = ?";
    db.execute_raw(stmt(db.get_database_backend(), sql, vec![id.into()]))
        .await?;
    Ok(())
}

/// Writes a record's new version (everything a correction can change).
pub async fn update_record<C: ConnectionTrait>(
    db: &C,
    r: &DoseRecord,
    now: DateTime<Utc>,
    actor: &str,
    reason: &str,
) -> DomainResult<()> {
    let sql = "UPDATE dose_records SET dose_number = ?, administered_on = ?, product_code = ?, lot_number = ?, \
               site_code = ?, doctor_name = ?, status = ?, vial_entry_id = ?, opened_vial = ?, override_id = ?, \
               version = version + 1, changed_at = ?, changed_by = ?, change_reason = ? WHERE id = ?";
    let values: Vec<Value> = vec![
        i16::from(r.dose_number).into(),
        r.administered_on.into(),
        r.product.as_str().into(),
        r.lot.as_str().into(),
        r.site.as_str().into(),
        r.doctor_name.as_str().into(),
        r.status.as_str().into(),
        r.vial_entry.into(),
        r.opened_vial.into(),
        r.override_id.into(),
        now.into(),
        actor.into(),
        reason.into(),
        r.id.into(),
    ];
    db.execute_raw(stmt(db.get_database_backend(), sql, values)).await?;
    Ok(())
}

/// Everything a batch reads besides its lots, in one round trip on PostgreSQL: which keys are
/// taken (key → request hash), the persons, their ACTIVE doses and overrides, the interval
/// rules and the doses per vial. Every part is an index lookup by key (or a small reference
/// table), aggregated to JSON so the parts can differ in shape.
pub struct Lookup {
    pub keys: HashMap<SiteKey, String>,
    pub persons: HashMap<(String, String), PersonRow>,
    pub earlier: HashMap<i64, Vec<EarlierDose>>,
    pub overrides: HashMap<(i64, u8), i64>,
    pub rules: HashMap<(String, u8), IntervalRule>,
    pub per_vial: HashMap<String, u64>,
    /// New ids drawn for the batch: as many records and vial entries as it could write (each
    /// record opens at most one vial); those not used are gaps in the sequences.
    pub record_ids: Vec<i64>,
    pub entry_ids: Vec<i64>,
    /// The recording sites asked for that exist: code → (municipality, status).
    pub sites: HashMap<String, (String, String)>,
    /// The balance rows asked for that exist, unlocked, each with the version read (its
    /// `xmin`) for [`Guard::Unchanged`].
    pub lots: Vec<(LotKey, LotRow, String)>,
}

/// Up to this many keys (or persons) a look-up probes an index per key; above it, it joins.
///
/// Probes (`LATERAL (… OFFSET 0)`) keep the planner from turning a probe into a join, so the
/// plan PostgreSQL caches for the statement (a generic one, made from whatever statistics it
/// had, possibly of an empty `dose_records` at the start of a day) cannot become a scan of the
/// table that grows all day. Measured with plain joins for single doses and groups of a few:
/// the cached plan hashed the keys and read all of `dose_records` per call, and single doses
/// fell from ~930/s to ~360/s within a minute. But a probe re-runs a sub-plan per key, so
/// 1,000-record batches keep the joins they were measured with (probes for them too measured
/// 59,499–65,580 records/s, joins 64,190–70,105 — close to noise on this machine, never
/// better). Each form is its own statement with its own cached plan, so the two sizes never
/// share one.
///
/// Every array and count of a group's statements is a sub-select (`(SELECT CAST(? AS …[]))`),
/// here, in the lot locks and in the writes: given a constant array, PostgreSQL estimates
/// `UNNEST` (and `generate_series`) from its length, so each custom plan looked cheaper than
/// the generic one (100 rows) and every execution was planned again — a third of the
/// database's CPU for single doses (perf, 2 cores). Behind a sub-select, custom and generic
/// plans cost the same and the cached generic plan is used.
const PROBES_UP_TO: usize = 64;

const LOOKUP_PROBES: &str = "WITH p AS (SELECT p.id, p.municipality_code, p.coupon_number, p.moved_out_on \
     FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS bpchar[]))) AS k(m, c) \
     CROSS JOIN LATERAL (SELECT p.id, p.municipality_code, p.coupon_number, p.moved_out_on FROM persons p \
       WHERE p.municipality_code = k.m AND p.coupon_number = k.c OFFSET 0) p) \
   SELECT \
    (SELECT COALESCE(json_agg(json_build_array(d.recorded_by_site, d.idempotency_key, d.request_hash)), '[]'::json) \
      FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[]))) AS k(s, key) \
      CROSS JOIN LATERAL (SELECT d.recorded_by_site, d.idempotency_key, d.request_hash FROM dose_records d \
        WHERE d.recorded_by_site = k.s AND d.idempotency_key = k.key OFFSET 0) d) AS keys, \
    (SELECT COALESCE(json_agg(json_build_array(p.id, p.municipality_code, p.coupon_number, p.moved_out_on)), '[]'::json) \
      FROM p) AS persons, \
    (SELECT COALESCE(json_agg(json_build_array(o.pid, d.dose_number, d.administered_on)), '[]'::json) \
      FROM (SELECT id AS pid, id AS owner FROM p UNION ALL \
            SELECT p.id, l.earlier_person_id FROM p CROSS JOIN LATERAL \
              (SELECT l.earlier_person_id FROM person_links l WHERE l.person_id = p.id OFFSET 0) l) o \
      CROSS JOIN LATERAL (SELECT d.dose_number, d.administered_on FROM dose_records d \
        WHERE d.person_id = o.owner AND d.status = 'ACTIVE' OFFSET 0) d) AS earlier, \
    (SELECT COALESCE(json_agg(json_build_array(p.id, o.dose_number, o.id)), '[]'::json) \
      FROM p CROSS JOIN LATERAL (SELECT o.dose_number, o.id FROM dose_interval_overrides o \
        WHERE o.person_id = p.id OFFSET 0) o) AS overrides, ";

const LOOKUP_JOINS: &str = "WITH p AS (SELECT p.id, p.municipality_code, p.coupon_number, p.moved_out_on \
     FROM UNNEST(CAST(? AS bpchar[]), CAST(? AS bpchar[])) AS k(m, c) \
     JOIN persons p ON p.municipality_code = k.m AND p.coupon_number = k.c) \
   SELECT \
    (SELECT COALESCE(json_agg(json_build_array(d.recorded_by_site, d.idempotency_key, d.request_hash)), '[]'::json) \
      FROM dose_records d WHERE d.recorded_by_site = ANY(CAST(? AS bpchar[])) \
      AND d.idempotency_key = ANY(CAST(? AS text[]))) AS keys, \
    (SELECT COALESCE(json_agg(json_build_array(p.id, p.municipality_code, p.coupon_number, p.moved_out_on)), '[]'::json) \
      FROM p) AS persons, \
    (SELECT COALESCE(json_agg(json_build_array(o.pid, d.dose_number, d.administered_on)), '[]'::json) \
      FROM (SELECT id AS pid, id AS owner FROM p UNION ALL \
            SELECT l.person_id, l.earlier_person_id FROM person_links l WHERE l.person_id IN (SELECT id FROM p)) o \
      JOIN dose_records d ON d.person_id = o.owner AND d.status = 'ACTIVE') AS earlier, \
    (SELECT COALESCE(json_agg(json_build_array(o.person_id, o.dose_number, o.id)), '[]'::json) \
      FROM dose_interval_overrides o WHERE o.person_id = ANY(ARRAY(SELECT id FROM p))) AS overrides, ";

/// The rest of a look-up. The id sequences are named as literals (those of the tables'
/// `bigserial` ids), which PostgreSQL resolves once when it prepares the statement;
/// `pg_get_serial_sequence` would read the catalog at every execution.
const LOOKUP_REST: &str = "(SELECT COALESCE(json_agg(json_build_array(r.product_code, r.dose_number, r.min_days, r.min_months)), '[]'::json) \
      FROM dose_interval_rules r) AS rules, \
    (SELECT COALESCE(json_agg(json_build_array(x.code, x.doses_per_vial)), '[]'::json) FROM products x \
      WHERE x.kind = 'VACCINE' AND x.doses_per_vial > 0) AS vials, \
    ARRAY(SELECT nextval('dose_records_id_seq') FROM generate_series(1, (SELECT CAST(? AS bigint)))) AS record_ids, \
    ARRAY(SELECT nextval('stock_entries_id_seq') FROM generate_series(1, (SELECT CAST(? AS bigint)))) AS entry_ids, \
    (SELECT COALESCE(json_agg(json_build_array(s.code, s.municipality_code, s.status)), '[]'::json) \
      FROM UNNEST((SELECT CAST(? AS bpchar[]))) AS k(c) \
      CROSS JOIN LATERAL (SELECT code, municipality_code, status FROM sites WHERE code = k.c OFFSET 0) s) AS sites, \
    (SELECT COALESCE(json_agg(json_build_array(k.n, b.on_hand, b.open_doses, b.open_entry_id, b.expiry_date, \
        CAST(b.xmin AS text))), '[]'::json) \
      FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[]))) WITH ORDINALITY AS k(s, p, l, n) \
      CROSS JOIN LATERAL (SELECT on_hand, open_doses, open_entry_id, expiry_date, xmin FROM stock_balances \
        WHERE site_code = k.s AND product_code = k.p AND lot_number = k.l OFFSET 0) b) AS lots";

fn json_err(what: &str) -> DomainError {
    DomainError::Corrupt(format!("batch lookup: {what}"))
}

fn rows_of(v: &serde_json::Value, what: &str) -> DomainResult<Vec<Vec<serde_json::Value>>> {
    v.as_array()
        .ok_or_else(|| json_err(what))?
        .iter()
        .map(|r| r.as_array().cloned().ok_or_else(|| json_err(what)))
        .collect()
}

fn s(v: &serde_json::Value, what: &str) -> DomainResult<String> {
    v.as_str().map(|x| x.trim().to_owned()).ok_or_else(|| json_err(what))
}

fn i(v: &serde_json::Value, what: &str) -> DomainResult<i64> {
    v.as_i64().ok_or_else(|| json_err(what))
}

fn date(v: &serde_json::Value, what: &str) -> DomainResult<NaiveDate> {
    s(v, what)?.parse().map_err(|_| json_err(what))
}

pub async fn lookup_pg<C: ConnectionTrait>(
    db: &C,
    keys: &[SiteKey],
    refs: &[(String, String)],
    sites: &[String],
    lots: &[LotKey],
    new_ids: usize,
    plans: Plans,
) -> DomainResult<Lookup> {
    let (ms, cs): (Vec<String>, Vec<String>) = refs.iter().cloned().unzip();
    let (ss, ks): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
    let head = if refs.len().max(keys.len()) <= PROBES_UP_TO {
        LOOKUP_PROBES
    } else {
        LOOKUP_JOINS
    };
    let sql = format!("{head}{LOOKUP_REST}");
    let n = i64::try_from(new_ids).unwrap_or(i64::MAX);
    let values: Vec<Value> = vec![
        ms.into(),
        cs.into(),
        ss.into(),
        ks.into(),
        n.into(),
        n.into(),
        sites.to_vec().into(),
        array(lots, |k| k.0.as_str().to_owned()),
        array(lots, |k| k.1.as_str().to_owned()),
        array(lots, |k| k.2.as_str().to_owned()),
    ];
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), &shaped(&sql, plans), values))
        .await?
        .ok_or_else(|| json_err("no row"))?;
    let get = |c: &str| -> DomainResult<serde_json::Value> { Ok(row.try_get::<serde_json::Value>("", c)?) };
    let mut out = Lookup {
        keys: HashMap::new(),
        persons: HashMap::new(),
        earlier: HashMap::new(),
        overrides: HashMap::new(),
        rules: HashMap::new(),
        per_vial: HashMap::new(),
        record_ids: row.try_get("", "record_ids")?,
        entry_ids: row.try_get("", "entry_ids")?,
        sites: HashMap::new(),
        lots: Vec::new(),
    };
    for r in rows_of(&get("lots")?, "lots")? {
        let key = usize::try_from(i(&r[0], "lot")? - 1)
            .ok()
            .and_then(|n| lots.get(n))
            .ok_or_else(|| json_err("lot out of range"))?;
        let count = |v: &serde_json::Value, what| u64::try_from(i(v, what)?).map_err(|_| json_err(what));
        let row = LotRow {
            on_hand: count(&r[1], "on_hand")?,
            open_doses: count(&r[2], "open_doses")?,
            open_entry_id: r[3].as_i64(),
            expiry_date: date(&r[4], "expiry_date")?,
        };
        out.lots.push((key.clone(), row, s(&r[5], "xmin")?));
    }
    // In key order, the order every writer locks balance rows in (a guarded write locks them
    // in this order).
    out.lots.sort_by(|a, b| a.0.cmp(&b.0));
    for r in rows_of(&get("sites")?, "sites")? {
        out.sites
            .insert(s(&r[0], "site")?, (s(&r[1], "municipality")?, s(&r[2], "status")?));
    }
    out.record_ids.sort_unstable();
    out.entry_ids.sort_unstable();
    // The joined form matches every site with every key: keep the pairs asked for.
    let asked: std::collections::HashSet<&SiteKey> = keys.iter().collect();
    for r in rows_of(&get("keys")?, "keys")? {
        let key = (
            s(&r[0], "site")?,
            r[1].as_str().ok_or_else(|| json_err("key"))?.to_owned(),
        );
        if asked.contains(&key) {
            out.keys.insert(key, s(&r[2], "hash")?);
        }
    }
    for r in rows_of(&get("persons")?, "persons")? {
        let moved = match &r[3] {
            serde_json::Value::Null => None,
            v => Some(date(v, "moved_out_on")?),
        };
        out.persons.insert(
            (s(&r[1], "municipality")?, s(&r[2], "coupon")?),
            PersonRow {
                id: i(&r[0], "person id")?,
                moved_out_on: moved,
            },
        );
    }
    for r in rows_of(&get("earlier")?, "earlier")? {
        out.earlier.entry(i(&r[0], "person")?).or_default().push(EarlierDose {
            dose_number: u8::try_from(i(&r[1], "dose")?).map_err(|_| json_err("dose"))?,
            administered_on: date(&r[2], "administered_on")?,
        });
    }
    for r in rows_of(&get("overrides")?, "overrides")? {
        out.overrides.insert(
            (i(&r[0], "person")?, u8::try_from(i(&r[1], "dose")?).unwrap_or(0)),
            i(&r[2], "override")?,
        );
    }
    for r in rows_of(&get("rules")?, "rules")? {
        out.rules.insert(
            (s(&r[0], "product")?, u8::try_from(i(&r[1], "dose")?).unwrap_or(0)),
            IntervalRule {
                min_days: u32::try_from(i(&r[2], "days")?).unwrap_or(0),
                min_months: u32::try_from(i(&r[3], "months")?).unwrap_or(0),
            },
        );
    }
    for r in rows_of(&get("vials")?, "vials")? {
        out.per_vial.insert(
            s(&r[0], "product")?,
            u64::try_from(i(&r[1], "doses per vial")?).unwrap_or(0),
        );
    }
    Ok(out)
}

/// What a batch's write relies on to be the only writer of its lots.
#[derive(Debug, Clone, Copy)]
pub enum Guard<'a> {
    /// The lots were locked before anything was read (the transaction's first statement).
    Locked,
    /// Nothing is locked and there is no transaction (PostgreSQL): the write is one statement
    /// that first locks these balance rows, each only if it is still the version the look-up
    /// read (`xmin`, which every writer of a lot changes), and writes nothing unless all are.
    Unchanged(&'a [(LotKey, LotRow, String)]),
}

/// The guard's part of a write: lock the lots still as read, and `ok` if all were.
const UNCHANGED: &str = "l AS (SELECT 1 FROM UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[])), \
     (SELECT CAST(? AS text[])), (SELECT CAST(? AS text[]))) AS k(s, p, l, seen) \
     CROSS JOIN LATERAL (SELECT 1 FROM stock_balances b WHERE b.site_code = k.s AND b.product_code = k.p \
       AND b.lot_number = k.l AND b.xmin = CAST(k.seen AS xid) FOR UPDATE) b), \
   ok AS (SELECT count(*) = (SELECT CAST(? AS bigint)) AS ok FROM l), ";

/// Writes what a batch decided: the opened vials' entries, the records and the balance rows.
/// PostgreSQL: ONE statement (the inserts as data-modifying `WITH` parts of the update), so a
/// batch costs the same round trips whether it opened a vial or not. `false`: a
/// [`Guard::Unchanged`] write found a lot moved since its look-up and wrote nothing.
pub async fn write_batch<C: ConnectionTrait>(
    db: &C,
    entries: &[VialEntry],
    rows: &[NewRecord],
    updates: &[LotUpdate<'_>],
    now: DateTime<Utc>,
    plans: Plans,
    guard: Guard<'_>,
) -> DomainResult<bool> {
    if rows.is_empty() {
        // Nothing was decided, so no vial opened and no lot moved.
        return Ok(true);
    }
    if !pg(db) {
        insert_vials(db, entries, now).await?;
        insert_records_one_by_one(db, rows, now).await?;
        for u in updates {
            set_lot(db, &u.key.0, &u.key.1, &u.key.2, &u.row, u.administered_delta, now).await?;
        }
        return Ok(true);
    }
    let mut sql = String::from("WITH ");
    let mut values = Vec::new();
    // Each part of a guarded write runs only if every lot is as read: the inserts' and the
    // update's conditions.
    let (where_ok, and_ok) = match guard {
        Guard::Locked => ("", ""),
        Guard::Unchanged(lots) => {
            sql.push_str(UNCHANGED);
            values.extend([
                array(lots, |(k, _, _)| k.0.as_str().to_owned()),
                array(lots, |(k, _, _)| k.1.as_str().to_owned()),
                array(lots, |(k, _, _)| k.2.as_str().to_owned()),
                array(lots, |(_, _, seen)| seen.clone()),
                i64::try_from(lots.len()).unwrap_or(i64::MAX).into(),
            ]);
            (" WHERE (SELECT ok FROM ok)", " AND (SELECT ok FROM ok)")
        }
    };
    if !entries.is_empty() {
        let (v, vv) = vials_pg(entries, now);
        sql.push_str(&format!("v AS ({v}{where_ok}), "));
        values.extend(vv);
    }
    let (r, rv) = records_pg(rows, now);
    let (l, lv) = lots_pg(updates, now);
    values.extend(rv);
    values.extend(lv);
    let backend = db.get_database_backend();
    match guard {
        Guard::Locked => {
            sql.push_str(&format!("r AS ({r}) {l}"));
            db.execute_raw(stmt(backend, &shaped(&sql, plans), values)).await?;
            Ok(true)
        }
        Guard::Unchanged(_) => {
            sql.push_str(&format!(
                "r AS ({r}{where_ok}), u AS ({l}{and_ok}) SELECT (SELECT ok FROM ok) AS ok"
            ));
            let row = db
                .query_one_raw(stmt(backend, &shaped(&sql, plans), values))
                .await?
                .ok_or_else(|| DomainError::Corrupt("guarded write: no row".into()))?;
            Ok(row.try_get("", "ok")?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_plans_take_parameters_directly() {
        let cases = [
            // (written, for a generic plan)
            (
                "UNNEST((SELECT CAST(? AS bpchar[])), (SELECT CAST(? AS text[]))) AS k(s, l)",
                "UNNEST(CAST(? AS bpchar[]), CAST(? AS text[])) AS k(s, l)",
            ),
            (
                "generate_series(1, (SELECT CAST(? AS bigint)))) AS ids",
                "generate_series(1, CAST(? AS bigint))) AS ids",
            ),
            (
                "UNNEST(CAST(? AS bpchar[])) AS k(c)",
                "UNNEST(CAST(? AS bpchar[])) AS k(c)",
            ),
            // Not a parameter's sub-select: kept.
            ("(SELECT CAST(? AS numeric(5, 2)))", "(SELECT CAST(? AS numeric(5, 2)))"),
            ("(SELECT CAST(? AS text) FROM t)", "(SELECT CAST(? AS text) FROM t)"),
            ("", ""),
        ];
        for (written, generic) in cases {
            assert_eq!(shaped(written, Plans::Generic), generic, "{written}");
            assert_eq!(shaped(written, Plans::Chosen), written, "{written}");
        }
    }

    #[test]
    fn every_statement_of_a_group_loses_its_sub_selects() {
        let now = Utc::now();
        let (records, _) = records_pg(&[], now);
        let (vials, _) = vials_pg(&[], now);
        let (lots, _) = lots_pg(&[], now);
        for sql in [
            LOCK_LOTS,
            UNCHANGED,
            records,
            vials,
            lots,
            &format!("{LOOKUP_PROBES}{LOOKUP_REST}"),
            &format!("{LOOKUP_JOINS}{LOOKUP_REST}"),
        ] {
            let generic = shaped(sql, Plans::Generic);
            assert!(!generic.contains("(SELECT CAST(?"), "{generic}");
            assert_eq!(generic.matches('?').count(), sql.matches('?').count(), "{sql}");
        }
    }
}
