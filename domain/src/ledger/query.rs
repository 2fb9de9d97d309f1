//! Reads over the ledger: a site's balances and history, area aggregates with days of supply,
//! lots expiring soon, stock reports, and the reconciliation of balance rows against entries.
//! Every read resolves the caller's area first and checks it with `authz::can_read_stock_area`;
//! the area then becomes the WHERE clause, so a query can never return rows outside it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, Value,
};

use super::sql::stmt;
use crate::authz::{self, Actor, SiteScope};
use crate::codes::{LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use crate::entities::{lot, municipality, stock_entry, stock_report, stock_report_line};
use crate::error::{DomainError, DomainResult};
use crate::quantity::{Doses, Packaging, Vials};
use crate::stock::{self, Balance, Counter, Effect, EntryKind, StockArea, WasteReason};
use crate::store::Store;

/// Which area to read; at most one of the three. None: the caller's own area (a site itself, a
/// municipality or prefecture its own, NATIONAL the nation).
#[derive(Debug, Clone, Default)]
pub struct StockFilter {
    pub site: Option<SiteCode>,
    pub municipality: Option<MunicipalityCode>,
    pub prefecture: Option<PrefectureCode>,
}

/// Resolves a filter to an area the actor may read, or why not.
pub async fn resolve_area(store: &Store, actor: &Actor, f: &StockFilter) -> DomainResult<StockArea> {
    let given =
        usize::from(f.site.is_some()) + usize::from(f.municipality.is_some()) + usize::from(f.prefecture.is_some());
    if given > 1 {
        return Err(DomainError::invalid(
            "site",
            "give at most one of site, municipality and prefecture",
        ));
    }
    let area = if let Some(code) = f.site {
        StockArea::Site {
            code,
            municipality: super::site_municipality(store.db(), &code).await?,
        }
    } else if let Some(m) = f.municipality {
        if m.is_prefecture_level() {
            return Err(DomainError::invalid(
                "municipality",
                "is a prefecture's code; pass it as prefecture",
            ));
        }
        if municipality::Entity::find_by_id(m.as_str())
            .one(store.db())
            .await?
            .is_none()
        {
            return Err(DomainError::not_found("municipality", m));
        }
        StockArea::Municipality(m)
    } else if let Some(p) = f.prefecture {
        StockArea::Prefecture(p)
    } else {
        match authz::stock_read_scope(actor)? {
            SiteScope::All => StockArea::Nation,
            SiteScope::Prefecture(p) => StockArea::Prefecture(p),
            SiteScope::Municipalities(ms) if ms.len() == 1 => StockArea::Municipality(ms[0]),
            SiteScope::Site(code) => StockArea::Site {
                code,
                municipality: super::site_municipality(store.db(), &code).await?,
            },
            _ => return Err(DomainError::invalid("municipality", "name the area to read")),
        }
    };
    authz::can_read_stock_area(actor, &area)?;
    Ok(area)
}

/// The area as a condition on `sites s` (and the site code column `site_col`).
fn area_sql(area: &StockArea, site_col: &str) -> (String, Vec<Value>) {
    match area {
        StockArea::Site { code, .. } => (format!("{site_col} = CAST(? AS bpchar)"), vec![code.as_str().into()]),
        StockArea::Municipality(m) => (
            "s.municipality_code = CAST(? AS bpchar)".into(),
            vec![m.as_str().into()],
        ),
        StockArea::Prefecture(p) => ("s.prefecture_code = CAST(? AS bpchar)".into(), vec![p.as_str().into()]),
        StockArea::Nation => ("1 = 1".into(), vec![]),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("{what}: {e}"))
}

fn vials(n: i64, what: &str) -> DomainResult<Vials> {
    u64::try_from(n).map(Vials::new).map_err(|_| corrupt(what, "negative"))
}

/// Packaging of every vaccine, to show doses next to vials.
async fn packagings(store: &Store) -> DomainResult<HashMap<ProductCode, Packaging>> {
    Ok(crate::product::list(store)
        .await?
        .into_iter()
        .filter_map(|p| p.packaging().map(|pk| (p.code, pk)))
        .collect())
}

fn doses(pk: &HashMap<ProductCode, Packaging>, product: &ProductCode, v: Vials) -> Option<Doses> {
    pk.get(product).and_then(|p| p.doses_in(v).ok())
}

/// One site × product × lot balance.
#[derive(Debug, Clone, PartialEq)]
pub struct StockBalance {
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub balance: Balance,
    /// On hand in doses (via the product's packaging).
    pub on_hand_doses: Option<Doses>,
    pub updated_at: DateTime<Utc>,
}

const BALANCE_COLUMNS: &str = "b.site_code, s.municipality_code, b.product_code, b.lot_number, b.expiry_date, b.on_hand, \
     b.received, b.administered, b.wasted, b.expired, b.transferred_in, b.transferred_out, b.adjusted, b.updated_at";

fn balance_row(r: &QueryResult, pk: &HashMap<ProductCode, Packaging>) -> DomainResult<StockBalance> {
    let s = |c: &str| -> DomainResult<String> { Ok(r.try_get::<String>("", c)?) };
    let n = |c: &str| -> DomainResult<Vials> { vials(r.try_get::<i64>("", c)?, c) };
    let site: SiteCode = s("site_code")?.parse().map_err(|e| corrupt("balance site", e))?;
    let product: ProductCode = s("product_code")?.parse().map_err(|e| corrupt("balance product", e))?;
    let balance = Balance {
        on_hand: n("on_hand")?,
        received: n("received")?,
        administered: n("administered")?,
        wasted: n("wasted")?,
        expired: n("expired")?,
        transferred_in: n("transferred_in")?,
        transferred_out: n("transferred_out")?,
        adjusted: r.try_get("", "adjusted")?,
    };
    Ok(StockBalance {
        site,
        municipality: s("municipality_code")?
            .parse()
            .map_err(|e| corrupt("balance municipality", e))?,
        on_hand_doses: doses(pk, &product, balance.on_hand),
        product,
        lot: s("lot_number")?.parse().map_err(|e| corrupt("balance lot", e))?,
        expiry_date: r.try_get("", "expiry_date")?,
        balance,
        updated_at: r.try_get("", "updated_at")?,
    })
}

/// A site's balances by product, expiry and lot; lots used up are left out unless
/// `include_empty`.
pub async fn balances(
    store: &Store,
    actor: &Actor,
    site: &SiteCode,
    product: Option<&ProductCode>,
    include_empty: bool,
) -> DomainResult<Vec<StockBalance>> {
    let area = resolve_area(
        store,
        actor,
        &StockFilter {
            site: Some(*site),
            ..Default::default()
        },
    )
    .await?;
    let (cond, mut values) = area_sql(&area, "b.site_code");
    let mut sql =
        format!("SELECT {BALANCE_COLUMNS} FROM stock_balances b JOIN sites s ON s.code = b.site_code WHERE {cond}");
    if let Some(p) = product {
        sql.push_str(" AND b.product_code = ?");
        values.push(p.as_str().into());
    }
    if !include_empty {
        sql.push_str(" AND b.on_hand > 0");
    }
    sql.push_str(" ORDER BY b.product_code, b.expiry_date, b.lot_number");
    let pk = packagings(store).await?;
    store
        .db()
        .query_all_raw(stmt(store.backend(), &sql, values))
        .await?
        .iter()
        .map(|r| balance_row(r, &pk))
        .collect()
}

/// Longest window for lots expiring soon, in days.
pub const MAX_EXPIRY_WINDOW: i64 = 365;

/// Lots with stock on hand in the area that expire within `within_days` days from today
/// (expired ones still on hand included), soonest first, at most `limit`.
pub async fn expiring(
    store: &Store,
    actor: &Actor,
    filter: &StockFilter,
    product: Option<&ProductCode>,
    within_days: i64,
    limit: u64,
) -> DomainResult<Vec<StockBalance>> {
    if !(0..=MAX_EXPIRY_WINDOW).contains(&within_days) {
        return Err(DomainError::invalid(
            "withinDays",
            format!("must be 0-{MAX_EXPIRY_WINDOW} days"),
        ));
    }
    let area = resolve_area(store, actor, filter).await?;
    let until = stock::today_in_japan() + Duration::days(within_days);
    let (cond, mut values) = area_sql(&area, "b.site_code");
    let mut sql = format!(
        "SELECT {BALANCE_COLUMNS} FROM stock_balances b JOIN sites s ON s.code = b.site_code \
         WHERE {cond} AND b.on_hand > 0 AND b.expiry_date <= ?"
    );
    values.push(until.into());
    if let Some(p) = product {
        sql.push_str(" AND b.product_code = ?");
        values.push(p.as_str().into());
    }
    sql.push_str(" ORDER BY b.expiry_date, b.site_code, b.product_code, b.lot_number LIMIT ?");
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let pk = packagings(store).await?;
    store
        .db()
        .query_all_raw(stmt(store.backend(), &sql, values))
        .await?
        .iter()
        .map(|r| balance_row(r, &pk))
        .collect()
}

/// Stock of one product in an area.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSummary {
    pub product: ProductCode,
    /// Sums over the area's balance rows.
    pub totals: Balance,
    pub on_hand_doses: Option<Doses>,
    /// Sites of the area holding any of it.
    pub sites_with_stock: u64,
    /// Vials administered in the recent window (net of reversals).
    pub recent_administered: Vials,
    pub recent_days: u32,
    /// Whole days the stock lasts at the recent rate; `None` when nothing was used recently.
    pub days_of_supply: Option<u64>,
}

/// Per-product stock of an area (a site, a municipality, a prefecture, the nation): on hand,
/// received, administered, wasted, and days of supply at the use of the last `recent_days` days.
pub async fn summary(
    store: &Store,
    actor: &Actor,
    filter: &StockFilter,
    product: Option<&ProductCode>,
    recent_days: i64,
) -> DomainResult<(StockArea, Vec<ProductSummary>)> {
    let window = stock::recent_window(recent_days, "recentDays")?;
    let area = resolve_area(store, actor, filter).await?;
    let db = store.db();
    let backend = store.backend();
    let sum = |c: &str| format!("CAST(COALESCE(SUM(b.{c}), 0) AS BIGINT) AS {c}");
    let (cond, mut values) = area_sql(&area, "b.site_code");
    let mut sql = format!(
        "SELECT b.product_code, {}, {}, {}, {}, {}, {}, {}, {}, \
         COUNT(DISTINCT CASE WHEN b.on_hand > 0 THEN b.site_code END) AS sites_with_stock \
         FROM stock_balances b JOIN sites s ON s.code = b.site_code WHERE {cond}",
        sum("on_hand"),
        sum("received"),
        sum("administered"),
        sum("wasted"),
        sum("expired"),
        sum("transferred_in"),
        sum("transferred_out"),
        sum("adjusted"),
    );
    if let Some(p) = product {
        sql.push_str(" AND b.product_code = ?");
        values.push(p.as_str().into());
    }
    sql.push_str(" GROUP BY b.product_code ORDER BY b.product_code");
    let rows = db.query_all_raw(stmt(backend, &sql, values)).await?;

    let (cond, mut values) = area_sql(&area, "e.site_code");
    let mut recent_sql = format!(
        "SELECT e.product_code, CAST(COALESCE(SUM(-e.quantity), 0) AS BIGINT) AS used \
         FROM stock_entries e JOIN sites s ON s.code = e.site_code \
         WHERE {cond} AND e.occurred_on >= ? AND (e.kind = 'ADMINISTERED' OR e.original_kind = 'ADMINISTERED')"
    );
    values.push(stock::window_start(stock::today_in_japan(), window).into());
    if let Some(p) = product {
        recent_sql.push_str(" AND e.product_code = ?");
        values.push(p.as_str().into());
    }
    recent_sql.push_str(" GROUP BY e.product_code");
    let mut used: HashMap<String, i64> = HashMap::new();
    for r in db.query_all_raw(stmt(backend, &recent_sql, values)).await? {
        used.insert(r.try_get("", "product_code")?, r.try_get("", "used")?);
    }

    let pk = packagings(store).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let code: String = r.try_get("", "product_code")?;
        let product: ProductCode = code.parse().map_err(|e| corrupt("summary product", e))?;
        let n = |c: &str| -> DomainResult<Vials> { vials(r.try_get::<i64>("", c)?, c) };
        let totals = Balance {
            on_hand: n("on_hand")?,
            received: n("received")?,
            administered: n("administered")?,
            wasted: n("wasted")?,
            expired: n("expired")?,
            transferred_in: n("transferred_in")?,
            transferred_out: n("transferred_out")?,
            adjusted: r.try_get("", "adjusted")?,
        };
        // Reversals dated in the window of uses before it can make the window's net negative.
        let recent = Vials::new(u64::try_from(used.get(&code).copied().unwrap_or(0)).unwrap_or(0));
        out.push(ProductSummary {
            on_hand_doses: doses(&pk, &product, totals.on_hand),
            sites_with_stock: u64::try_from(r.try_get::<i64>("", "sites_with_stock")?).unwrap_or(0),
            days_of_supply: stock::days_of_supply(totals.on_hand, recent, window),
            recent_administered: recent,
            recent_days: window,
            product,
            totals,
        });
    }
    Ok((area, out))
}

/// Filters of a site's history; all optional.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub product: Option<ProductCode>,
    pub lot: Option<LotNumber>,
    pub kind: Option<EntryKind>,
}

/// One ledger entry as shown to callers.
#[derive(Debug, Clone, PartialEq)]
pub struct StockEntry {
    pub id: i64,
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub kind: EntryKind,
    /// Signed vials: positive in, negative out.
    pub quantity: i64,
    pub balance_after: Vials,
    pub waste_reason: Option<WasteReason>,
    pub note: String,
    pub occurred_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    /// The other site of a transfer.
    pub counterpart: Option<SiteCode>,
    /// TRANSFERRED_IN: its TRANSFERRED_OUT entry (and for a reversed transfer, the base's
    /// reversal).
    pub paired_entry: Option<i64>,
    /// REVERSED: the entry it cancels, and that entry's kind.
    pub reverses: Option<(i64, EntryKind)>,
    /// The entry that cancelled this one.
    pub reversed_by: Option<i64>,
    pub delivery: Option<i64>,
    pub report: Option<i64>,
}

/// A page of history, newest first.
#[derive(Debug, Clone)]
pub struct EntryPage {
    pub entries: Vec<StockEntry>,
    pub has_next: bool,
}

fn entry_from(m: stock_entry::Model, expiry: NaiveDate, reversed_by: Option<i64>) -> DomainResult<StockEntry> {
    let id = m.id;
    let c = |e: &dyn std::fmt::Display| corrupt(&format!("entry {id}"), e);
    Ok(StockEntry {
        id,
        site: m.site_code.parse().map_err(|e| c(&e))?,
        product: m.product_code.parse().map_err(|e| c(&e))?,
        lot: m.lot_number.parse().map_err(|e| c(&e))?,
        expiry_date: expiry,
        kind: m.kind.parse().map_err(|e: String| c(&e))?,
        quantity: m.quantity,
        balance_after: vials(m.balance_after, "balance_after")?,
        waste_reason: m
            .waste_reason
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: String| c(&e))?,
        note: m.note,
        occurred_on: m.occurred_on,
        recorded_at: m.recorded_at,
        actor: m.actor,
        counterpart: m
            .counterpart_site
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| c(&e))?,
        paired_entry: m.paired_entry_id,
        reverses: match (m.reverses_entry_id, m.original_kind.as_deref()) {
            (Some(id), Some(k)) => Some((id, k.parse().map_err(|e: String| c(&e))?)),
            _ => None,
        },
        reversed_by,
        delivery: m.delivery_id,
        report: m.report_id,
    })
}

/// Expiry dates of the lots a set of rows names.
async fn expiries<C: ConnectionTrait>(
    db: &C,
    pairs: impl Iterator<Item = (String, String)>,
) -> DomainResult<HashMap<(String, String), NaiveDate>> {
    let pairs: Vec<(String, String)> = pairs.collect();
    let mut products: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    products.sort_unstable();
    products.dedup();
    let mut lots: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    lots.sort_unstable();
    lots.dedup();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(lot::Entity::find()
        .filter(lot::Column::ProductCode.is_in(products))
        .filter(lot::Column::LotNumber.is_in(lots))
        .all(db)
        .await?
        .into_iter()
        .map(|l| ((l.product_code, l.lot_number), l.expiry_date))
        .collect())
}

/// A site's ledger, newest first, before the entry id `before`.
pub async fn history(
    store: &Store,
    actor: &Actor,
    site: &SiteCode,
    filter: &EntryFilter,
    before: Option<i64>,
    first: u64,
) -> DomainResult<EntryPage> {
    resolve_area(
        store,
        actor,
        &StockFilter {
            site: Some(*site),
            ..Default::default()
        },
    )
    .await?;
    let db = store.db();
    let mut q = stock_entry::Entity::find()
        .filter(Expr::col(stock_entry::Column::SiteCode).eq(crate::store::fixed(site.as_str())));
    if let Some(p) = &filter.product {
        q = q.filter(stock_entry::Column::ProductCode.eq(p.as_str()));
    }
    if let Some(l) = &filter.lot {
        q = q.filter(stock_entry::Column::LotNumber.eq(l.as_str()));
    }
    if let Some(k) = filter.kind {
        q = q.filter(stock_entry::Column::Kind.eq(k.as_str()));
    }
    if let Some(b) = before {
        q = q.filter(stock_entry::Column::Id.lt(b));
    }
    let mut rows = q
        .order_by_desc(stock_entry::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let reversed: HashMap<i64, i64> = if ids.is_empty() {
        HashMap::new()
    } else {
        stock_entry::Entity::find()
            .select_only()
            .column(stock_entry::Column::ReversesEntryId)
            .column(stock_entry::Column::Id)
            .filter(stock_entry::Column::ReversesEntryId.is_in(ids))
            .into_tuple::<(i64, i64)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let exp = expiries(db, rows.iter().map(|r| (r.product_code.clone(), r.lot_number.clone()))).await?;
    let entries = rows
        .into_iter()
        .map(|m| {
            let expiry = exp
                .get(&(m.product_code.clone(), m.lot_number.clone()))
                .copied()
                .ok_or_else(|| corrupt("entry", format!("{} names an unknown lot", m.id)))?;
            let by = reversed.get(&m.id).copied();
            entry_from(m, expiry, by)
        })
        .collect::<DomainResult<_>>()?;
    Ok(EntryPage { entries, has_next })
}

/// A stock report: who counted what, when, and how it compared to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct StockReport {
    pub id: i64,
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub counted_on: NaiveDate,
    pub reason: String,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub lines: Vec<StockReportLine>,
}

/// One counted lot of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct StockReportLine {
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub counted: Vials,
    /// What the ledger said just before the count was booked.
    pub ledger_before: Vials,
    /// Counted minus ledger (vials).
    pub difference: i64,
    pub reason: String,
    /// The ADJUSTED entry that booked the difference, if any.
    pub adjustment_entry: Option<i64>,
}

pub(super) async fn insert_report<C: ConnectionTrait>(
    db: &C,
    site: &SiteCode,
    counted_on: NaiveDate,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> DomainResult<i64> {
    Ok(stock_report::ActiveModel {
        site_code: Set(site.as_str().to_owned()),
        counted_on: Set(counted_on),
        reason: Set(reason.to_owned()),
        actor: Set(actor.to_owned()),
        recorded_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?
    .id)
}

pub(super) async fn insert_report_line<C: ConnectionTrait>(
    db: &C,
    report: i64,
    l: &StockReportLine,
) -> DomainResult<()> {
    let as_i64 = |v: Vials| i64::try_from(v.get()).map_err(|_| corrupt("report line", "too large"));
    stock_report_line::Entity::insert(stock_report_line::ActiveModel {
        report_id: Set(report),
        product_code: Set(l.product.as_str().to_owned()),
        lot_number: Set(l.lot.as_str().to_owned()),
        counted: Set(as_i64(l.counted)?),
        ledger_before: Set(as_i64(l.ledger_before)?),
        difference: Set(l.difference),
        reason: Set(l.reason.clone()),
        adjustment_entry_id: Set(l.adjustment_entry),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Stock reports of an area, newest first, before the report id `before`.
pub async fn reports(
    store: &Store,
    actor: &Actor,
    filter: &StockFilter,
    before: Option<i64>,
    first: u64,
) -> DomainResult<(Vec<StockReport>, bool)> {
    let area = resolve_area(store, actor, filter).await?;
    let db = store.db();
    let (cond, mut values) = area_sql(&area, "r.site_code");
    let mut sql = format!(
        "SELECT r.id, r.site_code, s.municipality_code, r.counted_on, r.reason, r.actor, r.recorded_at \
         FROM stock_reports r JOIN sites s ON s.code = r.site_code WHERE {cond}"
    );
    if let Some(b) = before {
        sql.push_str(" AND r.id < ?");
        values.push(b.into());
    }
    sql.push_str(" ORDER BY r.id DESC LIMIT ?");
    values.push(i64::try_from(first + 1).unwrap_or(i64::MAX).into());
    let rows = db.query_all_raw(stmt(store.backend(), &sql, values)).await?;
    let has_next = rows.len() as u64 > first;
    let mut reports = Vec::with_capacity(rows.len());
    for r in rows.iter().take(first as usize) {
        let site: String = r.try_get("", "site_code")?;
        let municipality: String = r.try_get("", "municipality_code")?;
        reports.push(StockReport {
            id: r.try_get("", "id")?,
            site: site.parse().map_err(|e| corrupt("report site", e))?,
            municipality: municipality.parse().map_err(|e| corrupt("report municipality", e))?,
            counted_on: r.try_get("", "counted_on")?,
            reason: r.try_get("", "reason")?,
            actor: r.try_get("", "actor")?,
            recorded_at: r.try_get("", "recorded_at")?,
            lines: Vec::new(),
        });
    }
    if reports.is_empty() {
        return Ok((reports, has_next));
    }
    let lines = stock_report_line::Entity::find()
        .filter(stock_report_line::Column::ReportId.is_in(reports.iter().map(|r| r.id)))
        .order_by_asc(stock_report_line::Column::ProductCode)
        .order_by_asc(stock_report_line::Column::LotNumber)
        .all(db)
        .await?;
    let exp = expiries(db, lines.iter().map(|l| (l.product_code.clone(), l.lot_number.clone()))).await?;
    let mut by_report: BTreeMap<i64, Vec<StockReportLine>> = BTreeMap::new();
    for l in lines {
        let expiry_date = exp
            .get(&(l.product_code.clone(), l.lot_number.clone()))
            .copied()
            .ok_or_else(|| corrupt("report line", "unknown lot"))?;
        by_report.entry(l.report_id).or_default().push(StockReportLine {
            product: l.product_code.parse().map_err(|e| corrupt("report line", e))?,
            lot: l.lot_number.parse().map_err(|e| corrupt("report line", e))?,
            expiry_date,
            counted: vials(l.counted, "counted")?,
            ledger_before: vials(l.ledger_before, "ledger_before")?,
            difference: l.difference,
            reason: l.reason,
            adjustment_entry: l.adjustment_entry_id,
        });
    }
    for r in &mut reports {
        r.lines = by_report.remove(&r.id).unwrap_or_default();
    }
    Ok((reports, has_next))
}

/// A balance row that disagrees with its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub site: String,
    pub product: String,
    pub lot: String,
    /// `on_hand` or a counter column.
    pub column: &'static str,
    pub stored: i128,
    pub from_entries: i128,
}

/// Recomputes every balance row from its entries through the pure model
/// ([`Effect`]: the sum of quantities for on hand, and each kind's counter) and lists every
/// disagreement, then each lot's open doses against the dose records
/// ([`crate::doses::open_dose_mismatches`]). Empty means the balance table equals the ledger.
/// An operator's check, run by `vsys stock reconcile` and by the tests after concurrent writers.
pub async fn reconcile(store: &Store) -> DomainResult<Vec<Mismatch>> {
    let db = store.db();
    type Key3 = (String, String, String);
    let sums = "SELECT site_code, product_code, lot_number, kind, original_kind, \
                CAST(SUM(quantity) AS BIGINT) AS total FROM stock_entries \
                GROUP BY site_code, product_code, lot_number, kind, original_kind";
    let mut expected: HashMap<Key3, [i128; 8]> = HashMap::new();
    let slot = |c: Counter| match c {
        Counter::Received => 1,
        Counter::Administered => 2,
        Counter::Wasted => 3,
        Counter::Expired => 4,
        Counter::TransferredIn => 5,
        Counter::TransferredOut => 6,
        Counter::Adjusted => 7,
    };
    for r in db.query_all_raw(stmt(store.backend(), sums, vec![])).await? {
        let key: Key3 = (
            r.try_get("", "site_code")?,
            r.try_get("", "product_code")?,
            r.try_get("", "lot_number")?,
        );
        let kind: EntryKind = r
            .try_get::<String>("", "kind")?
            .parse()
            .map_err(|e: String| corrupt("entry kind", e))?;
        let original: Option<String> = r.try_get("", "original_kind")?;
        let total: i64 = r.try_get("", "total")?;
        let effect = match (kind, original) {
            (EntryKind::Reversed, Some(o)) => {
                let o: EntryKind = o.parse().map_err(|e: String| corrupt("original kind", e))?;
                // The reversed entries together moved −total; undo that.
                Effect::reversal(o, -total)
            }
            (EntryKind::Adjusted, _) => Some(Effect {
                on_hand: total,
                counter: Counter::Adjusted,
                counter_delta: total,
            }),
            (k, _) => Effect::of(k, Vials::new(total.unsigned_abs())),
        }
        .ok_or_else(|| corrupt("entry group", "no effect"))?;
        let e = expected.entry(key).or_insert([0; 8]);
        e[0] += i128::from(effect.on_hand);
        e[slot(effect.counter)] += i128::from(effect.counter_delta);
    }
    let columns = [
        "on_hand",
        "received",
        "administered",
        "wasted",
        "expired",
        "transferred_in",
        "transferred_out",
        "adjusted",
    ];
    let select = format!(
        "SELECT site_code, product_code, lot_number, {} FROM stock_balances",
        columns.join(", ")
    );
    let mut mismatches = Vec::new();
    for r in db.query_all_raw(stmt(store.backend(), &select, vec![])).await? {
        let key: Key3 = (
            r.try_get("", "site_code")?,
            r.try_get("", "product_code")?,
            r.try_get("", "lot_number")?,
        );
        let want = expected.remove(&key).unwrap_or([0; 8]);
        for (i, c) in columns.iter().enumerate() {
            let stored = i128::from(r.try_get::<i64>("", c)?);
            if stored != want[i] {
                mismatches.push(Mismatch {
                    site: key.0.clone(),
                    product: key.1.clone(),
                    lot: key.2.clone(),
                    column: c,
                    stored,
                    from_entries: want[i],
                });
            }
        }
    }
    // Entries whose balance row is missing cannot exist (foreign key), but say so if they do.
    for (key, want) in expected {
        mismatches.push(Mismatch {
            site: key.0,
            product: key.1,
            lot: key.2,
            column: "on_hand",
            stored: 0,
            from_entries: want[0],
        });
    }
    mismatches.extend(crate::doses::open_dose_mismatches(store).await?);
    Ok(mismatches)
}
