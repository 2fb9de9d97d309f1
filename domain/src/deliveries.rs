//! The delivery service: a wholesaler registers what it delivered against an order addressed
//! to it; the receiving site confirms receipt (accepted and rejected vials), and the accepted
//! vials enter its stock ledger as RECEIVED entries in the same transaction. Reads follow the
//! orders' scope. Rules live in [`crate::delivery`]; who may do what in [`crate::authz`].
//!
//! Concurrency: registering locks the order's row (`SELECT … FOR UPDATE` on PostgreSQL; the
//! writer lock on SQLite), so two deliveries racing to the same order see each other's vials
//! in the over-delivery check and a re-sent key finds the first. A confirmation changes the
//! delivery only `WHERE accepted IS NULL`, so a delivery is confirmed (and booked) at most once.
//!
//! Must not: change the order row (delivered / accepted are sums over deliveries; the order's
//! status belongs to the wholesaler integration), know GraphQL, or announce anything (the
//! caller publishes the returned stock changes after the commit).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};

use crate::authz::{self, Actor, OrderScope};
use crate::codes::{LotNumber, MunicipalityCode, ProductCode, SiteCode, WholesalerId};
use crate::delivery::{
    CheckedDelivery, Delivered, DeliveredLot, DeliveryDraft, ReceiptDraft, RejectionReason, check_draft,
    check_over_delivery, check_receipt, same_delivery,
};
use crate::entities::{delivery as delivery_e, delivery_lot, order as order_e, site};
use crate::error::{DomainError, DomainResult};
use crate::ledger::{self, sql};
use crate::quantity::Vials;
use crate::site::SiteStatus;
use crate::stock::{StockChange, today_in_japan};
use crate::store::{Store, fixed};

/// A delivery as stored, with its lots and (once confirmed) the site's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub order: String,
    pub wholesaler: WholesalerId,
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub product: ProductCode,
    pub idempotency_key: String,
    pub delivered_on: NaiveDate,
    pub vials: Vials,
    pub over_delivery_reason: Option<String>,
    pub note: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
    pub lots: Vec<DeliveryLot>,
    pub receipt: Option<Receipt>,
}

/// One lot of a delivery; `accepted` / `rejected` once the site confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLot {
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub vials: Vials,
    pub accepted: Option<Vials>,
    pub rejected: Option<Vials>,
}

/// The site's confirmation of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub received_on: NaiveDate,
    pub accepted: Vials,
    pub rejected: Vials,
    pub rejection_reason: Option<RejectionReason>,
    pub rejection_note: Option<String>,
    pub confirmed_at: DateTime<Utc>,
    pub confirmed_by: String,
}

/// What `register` did: stored a new delivery, or found the one sent before with this key.
#[derive(Debug, Clone)]
pub struct Registered {
    pub delivery: Delivery,
    /// False when this was a re-send of a stored delivery (nothing changed).
    pub created: bool,
}

/// What an order has received: sums over its deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fulfilment {
    pub deliveries: u64,
    pub delivered: Vials,
    /// Vials of deliveries the site has not confirmed yet.
    pub awaiting_receipt: Vials,
    pub accepted: Vials,
    pub rejected: Vials,
}

fn corrupt(what: &str, key: impl std::fmt::Display, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("{what} {key}: {e}"))
}

fn vials(n: i64, key: i64) -> DomainResult<Vials> {
    u64::try_from(n)
        .map(Vials::new)
        .map_err(|_| corrupt("delivery", key, "negative quantity"))
}

fn stored(v: Vials) -> i64 {
    i64::try_from(v.get()).unwrap_or(i64::MAX)
}

fn from_rows(m: delivery_e::Model, lots: Vec<delivery_lot::Model>) -> DomainResult<Delivery> {
    let id = m.id;
    let parse_err = |e: String| corrupt("delivery", id, e);
    let lots = lots
        .into_iter()
        .map(|l| {
            Ok(DeliveryLot {
                lot: l.lot_number.parse().map_err(|e| parse_err(format!("{e}")))?,
                expiry_date: l.expiry_date,
                vials: vials(l.vials, id)?,
                accepted: l.accepted.map(|n| vials(n, id)).transpose()?,
                rejected: l.rejected.map(|n| vials(n, id)).transpose()?,
            })
        })
        .collect::<DomainResult<Vec<_>>>()?;
    let receipt = match (m.accepted, m.rejected, m.received_on, m.confirmed_at, m.confirmed_by) {
        (Some(a), Some(r), Some(on), Some(at), Some(by)) => Some(Receipt {
            received_on: on,
            accepted: vials(a, id)?,
            rejected: vials(r, id)?,
            rejection_reason: m
                .rejection_reason
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(parse_err)?,
            rejection_note: m.rejection_note,
            confirmed_at: at,
            confirmed_by: by,
        }),
        (None, None, None, None, None) => None,
        _ => return Err(corrupt("delivery", id, "half-recorded receipt")),
    };
    Ok(Delivery {
        id,
        order: m.order_id,
        wholesaler: m.wholesaler_id.parse().map_err(|e| parse_err(format!("{e}")))?,
        site: m.site_code.parse().map_err(|e| parse_err(format!("{e}")))?,
        municipality: m.municipality_code.parse().map_err(|e| parse_err(format!("{e}")))?,
        product: m.product_code.parse().map_err(|e| parse_err(format!("{e}")))?,
        idempotency_key: m.idempotency_key,
        delivered_on: m.delivered_on,
        vials: vials(m.vials, id)?,
        over_delivery_reason: m.over_delivery_reason,
        note: m.note,
        registered_at: m.registered_at,
        registered_by: m.registered_by,
        lots,
        receipt,
    })
}

async fn lots_of<C: ConnectionTrait>(db: &C, ids: &[i64]) -> DomainResult<HashMap<i64, Vec<delivery_lot::Model>>> {
    let mut out: HashMap<i64, Vec<delivery_lot::Model>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for l in delivery_lot::Entity::find()
        .filter(delivery_lot::Column::DeliveryId.is_in(ids.to_vec()))
        .order_by_asc(delivery_lot::Column::DeliveryId)
        .order_by_asc(delivery_lot::Column::Line)
        .all(db)
        .await?
    {
        out.entry(l.delivery_id).or_default().push(l);
    }
    Ok(out)
}

async fn load<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Option<Delivery>> {
    let Some(m) = delivery_e::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let lots = lots_of(db, &[id]).await?.remove(&id).unwrap_or_default();
    from_rows(m, lots).map(Some)
}

async fn by_key<C: ConnectionTrait>(db: &C, wholesaler: &str, key: &str) -> DomainResult<Option<Delivery>> {
    let Some(m) = delivery_e::Entity::find()
        .filter(delivery_e::Column::WholesalerId.eq(wholesaler))
        .filter(delivery_e::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let lots = lots_of(db, &[m.id]).await?.remove(&m.id).unwrap_or_default();
    from_rows(m, lots).map(Some)
}

/// The stored delivery in the shape of a checked draft, to compare with a re-send.
fn as_checked(d: &Delivery) -> CheckedDelivery {
    CheckedDelivery {
        order: d.order.clone(),
        idempotency_key: d.idempotency_key.clone(),
        delivered_on: d.delivered_on,
        lots: d
            .lots
            .iter()
            .map(|l| DeliveredLot {
                lot: l.lot.clone(),
                expiry_date: l.expiry_date,
                vials: l.vials,
            })
            .collect(),
        over_delivery_reason: d.over_delivery_reason.clone(),
        note: d.note.clone(),
        vials: d.vials,
    }
}

/// The answer to a delivery sent again under a key already stored: the stored delivery if it
/// is the same one, CONFLICT if the key was used for something else.
fn resent(stored: Delivery, checked: &CheckedDelivery) -> DomainResult<Registered> {
    if same_delivery(&as_checked(&stored), checked) {
        Ok(Registered {
            delivery: stored,
            created: false,
        })
    } else {
        Err(DomainError::Conflict(format!(
            "idempotency key {} was already used for delivery {} (order {}, {}) with other content; use a new key \
             for a new delivery",
            checked.idempotency_key, stored.id, stored.order, stored.delivered_on
        )))
    }
}

/// Σ vials and Σ rejected vials of an order's deliveries so far.
async fn delivered_so_far<C: ConnectionTrait>(db: &C, order: &str) -> DomainResult<Delivered> {
    let sql = "SELECT CAST(COALESCE(SUM(vials), 0) AS BIGINT) AS delivered, \
               CAST(COALESCE(SUM(rejected), 0) AS BIGINT) AS rejected FROM deliveries WHERE order_id = ?";
    let row = db
        .query_one_raw(sql::stmt(db.get_database_backend(), sql, vec![order.into()]))
        .await?
        .ok_or_else(|| DomainError::Corrupt("an aggregate returned no row".into()))?;
    let delivered: i64 = row.try_get("", "delivered")?;
    let rejected: i64 = row.try_get("", "rejected")?;
    Ok(Delivered {
        delivered: vials(delivered, 0)?,
        rejected: vials(rejected, 0)?,
    })
}

/// Registers a delivery against an order addressed to the calling wholesaler. Re-sending one
/// with a key used before returns the stored delivery and changes nothing (same content), or
/// is CONFLICT (other content). Refused with nothing stored: another wholesaler's order
/// (FORBIDDEN), an unknown order (NOT_FOUND), a lot expired when delivered, a lot on record with
/// another expiry date, or more than ordered without `over_delivery_reason` (BAD_USER_INPUT).
#[tracing::instrument(skip_all, fields(order = %d.order))]
pub async fn register(store: &Store, actor: &Actor, d: &DeliveryDraft) -> DomainResult<Registered> {
    if !matches!(actor, Actor::Wholesaler(_) | Actor::System) {
        return Err(DomainError::Forbidden(
            "deliveries are registered by the wholesaler the order is addressed to".into(),
        ));
    }
    let today = today_in_japan();
    let checked = check_draft(d, today)?;
    let order = order_e::Entity::find_by_id(checked.order.as_str())
        .one(store.db())
        .await?
        .ok_or_else(|| DomainError::not_found("order", &checked.order))?;
    let wholesaler: WholesalerId = order
        .wholesaler_id
        .parse()
        .map_err(|e| corrupt("order", &order.id, e))?;
    authz::can_register_delivery(actor, &wholesaler)?;
    // A re-send is answered before anything else is checked: what was true when it was first
    // stored (e.g. "not more than ordered") need not be true of the order now.
    if let Some(stored) = by_key(store.db(), wholesaler.as_str(), &checked.idempotency_key).await? {
        return resent(stored, &checked);
    }
    let product: ProductCode = order.product_code.parse().map_err(|e| corrupt("order", &order.id, e))?;
    let ordered = vials(order.vials, 0)?;

    let tx = store.write().await?;
    let now = Utc::now();
    let locked = order_e::Entity::find_by_id(order.id.as_str())
        .lock_exclusive()
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("order", &order.id))?;
    // Another request with this key may have committed while we waited for the order's lock.
    if let Some(stored) = by_key(&*tx, wholesaler.as_str(), &checked.idempotency_key).await? {
        return resent(stored, &checked);
    }
    let before = delivered_so_far(&*tx, &locked.id).await?;
    check_over_delivery(ordered, before, checked.vials, checked.over_delivery_reason.as_deref())?;
    for (i, l) in checked.lots.iter().enumerate() {
        let on_record = sql::ensure_lot(&*tx, &product, &l.lot, l.expiry_date, now).await?;
        if on_record != l.expiry_date {
            return Err(DomainError::invalid(
                format!("input.lots[{i}].expiryDate"),
                format!("lot {} of {product} is on record with expiry date {on_record}", l.lot),
            ));
        }
    }
    let inserted = delivery_e::ActiveModel {
        order_id: Set(locked.id.clone()),
        wholesaler_id: Set(locked.wholesaler_id.clone()),
        site_code: Set(locked.site_code.clone()),
        prefecture_code: Set(locked.prefecture_code.clone()),
        municipality_code: Set(locked.municipality_code.clone()),
        product_code: Set(locked.product_code.clone()),
        idempotency_key: Set(checked.idempotency_key.clone()),
        delivered_on: Set(checked.delivered_on),
        vials: Set(stored(checked.vials)),
        over_delivery_reason: Set(checked.over_delivery_reason.clone()),
        note: Set(checked.note.clone()),
        registered_at: Set(now),
        registered_by: Set(actor.label()),
        ..Default::default()
    }
    .insert(&*tx)
    .await;
    let inserted = match inserted {
        Ok(m) => m,
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            // The same key, sent for another order at the same moment, won the race.
            return Err(DomainError::Conflict(format!(
                "idempotency key {} was used by another delivery at the same moment; send it again to see which",
                checked.idempotency_key
            )));
        }
        Err(e) => return Err(e.into()),
    };
    for (i, l) in checked.lots.iter().enumerate() {
        delivery_lot::ActiveModel {
            delivery_id: Set(inserted.id),
            lot_number: Set(l.lot.as_str().to_owned()),
            line: Set(i16::try_from(i).unwrap_or(i16::MAX)),
            product_code: Set(product.as_str().to_owned()),
            expiry_date: Set(l.expiry_date),
            vials: Set(stored(l.vials)),
            accepted: Set(None),
            rejected: Set(None),
        }
        .insert(&*tx)
        .await?;
    }
    let delivery = load(&*tx, inserted.id)
        .await?
        .ok_or_else(|| DomainError::Corrupt("a delivery vanished in its transaction".into()))?;
    tx.commit().await?;
    Ok(Registered {
        delivery,
        created: true,
    })
}

/// The receiving site confirms a delivery: per lot, how many vials it accepted and rejected
/// (with a reason when any are rejected). Accepted vials are booked as RECEIVED entries (one per
/// lot, naming the delivery) in the same transaction; the changes are returned for the caller
/// to announce after the commit. A delivery is confirmed once: again is CONFLICT.
#[tracing::instrument(skip_all, fields(delivery = r.delivery))]
pub async fn confirm_receipt(
    store: &Store,
    actor: &Actor,
    r: &ReceiptDraft,
) -> DomainResult<(Delivery, Vec<StockChange>)> {
    if !matches!(actor, Actor::Site(_) | Actor::System) {
        return Err(DomainError::Forbidden(
            "receipt is confirmed by the site the delivery was made to".into(),
        ));
    }
    let d = load(store.db(), r.delivery)
        .await?
        .ok_or_else(|| DomainError::not_found("delivery", r.delivery))?;
    authz::can_confirm_receipt(actor, &d.site)?;
    if d.receipt.is_some() {
        return Err(DomainError::Conflict(format!(
            "delivery {} was confirmed already; correct stock with a reversal or a stock report",
            d.id
        )));
    }
    let delivered: Vec<DeliveredLot> = d
        .lots
        .iter()
        .map(|l| DeliveredLot {
            lot: l.lot.clone(),
            expiry_date: l.expiry_date,
            vials: l.vials,
        })
        .collect();
    let today = today_in_japan();
    let checked = check_receipt(d.delivered_on, &delivered, r, today)?;
    let status: Option<String> = site::Entity::find_by_id(d.site.as_str())
        .select_only()
        .column(site::Column::Status)
        .into_tuple()
        .one(store.db())
        .await?;
    if status.as_deref() != Some(SiteStatus::Active.as_str()) {
        return Err(DomainError::Conflict(format!(
            "site {} is withdrawn; its stock cannot receive vials",
            d.site
        )));
    }

    let label = actor.label();
    let tx = store.write().await?;
    let now = Utc::now();
    let updated = delivery_e::Entity::update_many()
        .col_expr(delivery_e::Column::Accepted, Expr::value(stored(checked.accepted)))
        .col_expr(delivery_e::Column::Rejected, Expr::value(stored(checked.rejected)))
        .col_expr(
            delivery_e::Column::RejectionReason,
            Expr::value(Value::from(checked.rejection_reason.map(|x| x.as_str().to_owned()))),
        )
        .col_expr(
            delivery_e::Column::RejectionNote,
            Expr::value(Value::from(checked.rejection_note.clone())),
        )
        .col_expr(delivery_e::Column::ReceivedOn, Expr::value(checked.received_on))
        .col_expr(delivery_e::Column::ConfirmedAt, Expr::value(now))
        .col_expr(delivery_e::Column::ConfirmedBy, Expr::value(label.clone()))
        .filter(delivery_e::Column::Id.eq(d.id))
        .filter(delivery_e::Column::Accepted.is_null())
        .exec(&*tx)
        .await?;
    if updated.rows_affected != 1 {
        return Err(DomainError::Conflict(format!(
            "delivery {} was confirmed already (at the same moment)",
            d.id
        )));
    }
    let mut changes = Vec::new();
    for (lot, expiry, accepted, rejected) in &checked.lots {
        delivery_lot::Entity::update_many()
            .col_expr(delivery_lot::Column::Accepted, Expr::value(stored(*accepted)))
            .col_expr(delivery_lot::Column::Rejected, Expr::value(stored(*rejected)))
            .filter(delivery_lot::Column::DeliveryId.eq(d.id))
            .filter(delivery_lot::Column::LotNumber.eq(lot.as_str()))
            .exec(&*tx)
            .await?;
        if !accepted.is_zero() {
            changes.push(
                ledger::receive_delivered(
                    &*tx,
                    &d.site,
                    d.municipality,
                    &d.product,
                    lot,
                    *expiry,
                    *accepted,
                    checked.received_on,
                    now,
                    &label,
                    d.id,
                )
                .await?,
            );
        }
    }
    let confirmed = load(&*tx, d.id)
        .await?
        .ok_or_else(|| DomainError::Corrupt("a delivery vanished in its transaction".into()))?;
    tx.commit().await?;
    Ok((confirmed, changes))
}

/// Filters for listing deliveries; combined with AND and with the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub order: Option<String>,
    pub site: Option<SiteCode>,
    pub municipality: Option<MunicipalityCode>,
    pub wholesaler: Option<WholesalerId>,
    /// Only deliveries the site has (true) or has not (false) confirmed.
    pub confirmed: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    pub has_next: bool,
}

fn scope_condition(scope: &OrderScope) -> Condition {
    let c = Condition::all();
    match scope {
        OrderScope::All => c,
        OrderScope::Prefecture(p) => c.add(Expr::col(delivery_e::Column::PrefectureCode).eq(fixed(p.as_str()))),
        OrderScope::Municipality(m) => c.add(Expr::col(delivery_e::Column::MunicipalityCode).eq(fixed(m.as_str()))),
        OrderScope::Site(s) => c.add(Expr::col(delivery_e::Column::SiteCode).eq(fixed(s.as_str()))),
        OrderScope::Wholesaler(w) => c.add(delivery_e::Column::WholesalerId.eq(w.as_str())),
    }
}

/// A page of the deliveries the caller may see (as for orders: NATIONAL all; a prefecture or
/// municipality those to its sites; a site its own; a wholesaler its own), newest first.
pub async fn deliveries(
    store: &Store,
    actor: &Actor,
    filter: &DeliveryFilter,
    after: Option<i64>,
    first: u64,
) -> DomainResult<DeliveryPage> {
    let mut cond = scope_condition(&authz::delivery_read_scope(actor)?);
    if let Some(o) = &filter.order {
        cond = cond.add(delivery_e::Column::OrderId.eq(o.as_str()));
    }
    if let Some(s) = &filter.site {
        cond = cond.add(Expr::col(delivery_e::Column::SiteCode).eq(fixed(s.as_str())));
    }
    if let Some(m) = &filter.municipality {
        cond = cond.add(Expr::col(delivery_e::Column::MunicipalityCode).eq(fixed(m.as_str())));
    }
    if let Some(w) = &filter.wholesaler {
        cond = cond.add(delivery_e::Column::WholesalerId.eq(w.as_str()));
    }
    match filter.confirmed {
        Some(true) => cond = cond.add(delivery_e::Column::Accepted.is_not_null()),
        Some(false) => cond = cond.add(delivery_e::Column::Accepted.is_null()),
        None => {}
    }
    if let Some(a) = after {
        cond = cond.add(delivery_e::Column::Id.lt(a));
    }
    let rows = delivery_e::Entity::find()
        .filter(cond)
        .order_by_desc(delivery_e::Column::Id)
        .limit(first + 1)
        .all(store.db())
        .await?;
    let has_next = rows.len() as u64 > first;
    let rows: Vec<_> = rows.into_iter().take(first as usize).collect();
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let mut lots = lots_of(store.db(), &ids).await?;
    let deliveries = rows
        .into_iter()
        .map(|m| {
            let l = lots.remove(&m.id).unwrap_or_default();
            from_rows(m, l)
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(DeliveryPage { deliveries, has_next })
}

/// One delivery, if the caller may see it (NOT_FOUND otherwise, so ids outside the scope are
/// not revealed).
pub async fn delivery(store: &Store, actor: &Actor, id: i64) -> DomainResult<Delivery> {
    let scope = authz::delivery_read_scope(actor)?;
    let m = delivery_e::Entity::find()
        .filter(scope_condition(&scope).add(delivery_e::Column::Id.eq(id)))
        .one(store.db())
        .await?
        .ok_or_else(|| DomainError::not_found("delivery", id))?;
    let lots = lots_of(store.db(), &[id]).await?.remove(&id).unwrap_or_default();
    from_rows(m, lots)
}

/// The deliveries of orders the caller has already been allowed to read (deliveries are read
/// in the orders' scope), newest first per order — the order resolver's batch loader calls
/// this with the ids of the orders it shows, so a page of orders costs two queries, not one
/// per order.
pub async fn of_orders(store: &Store, orders: &[String]) -> DomainResult<HashMap<String, Vec<Delivery>>> {
    let mut out: HashMap<String, Vec<Delivery>> = HashMap::new();
    for chunk in crate::bulk::in_chunks(orders) {
        let rows = delivery_e::Entity::find()
            .filter(delivery_e::Column::OrderId.is_in(chunk.to_vec()))
            .order_by_desc(delivery_e::Column::Id)
            .all(store.db())
            .await?;
        let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
        let mut lots = lots_of(store.db(), &ids).await?;
        for m in rows {
            let l = lots.remove(&m.id).unwrap_or_default();
            let order = m.order_id.clone();
            out.entry(order).or_default().push(from_rows(m, l)?);
        }
    }
    Ok(out)
}

/// Delivered / accepted sums of orders the caller has already been allowed to read (the order
/// resolver's batch loader calls this with the ids of the orders it shows).
pub async fn fulfilment(store: &Store, orders: &[String]) -> DomainResult<HashMap<String, Fulfilment>> {
    let mut out = HashMap::new();
    let db = store.db();
    for chunk in orders.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT order_id, CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM(vials) AS BIGINT) AS delivered, \
             CAST(COALESCE(SUM(accepted), 0) AS BIGINT) AS accepted, \
             CAST(COALESCE(SUM(rejected), 0) AS BIGINT) AS rejected, \
             CAST(COALESCE(SUM(CASE WHEN accepted IS NULL THEN vials ELSE 0 END), 0) AS BIGINT) AS awaiting \
             FROM deliveries WHERE order_id IN ({placeholders}) GROUP BY order_id"
        );
        let values = chunk.iter().map(|o| Value::from(o.as_str())).collect();
        for row in db
            .query_all_raw(sql::stmt(db.get_database_backend(), &sql, values))
            .await?
        {
            let order: String = row.try_get("", "order_id")?;
            let n: i64 = row.try_get("", "n")?;
            let get = |c: &str| -> DomainResult<Vials> { vials(row.try_get::<i64>("", c)?, 0) };
            out.insert(
                order,
                Fulfilment {
                    deliveries: u64::try_from(n).unwrap_or(0),
                    delivered: get("delivered")?,
                    awaiting_receipt: get("awaiting")?,
                    accepted: get("accepted")?,
                    rejected: get("rejected")?,
                },
            );
        }
    }
    Ok(out)
}
