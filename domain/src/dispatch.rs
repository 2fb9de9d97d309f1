//! The worker's side of the outbox: claiming due messages, translating each order's site code
//! to its wholesaler's customer code (or holding it), recording outcomes, and the operator's
//! view (parked messages, replay, queue statistics).
//!
//! Owns the delivery columns of `outbox` and the progress columns of `orders`. Must not: speak
//! any partner's wire format or do network I/O (that is `integrations`), or hold a transaction
//! open while a message is being sent.
//!
//! **Claiming.** One short transaction picks due messages (`status = 'PENDING' AND
//! next_attempt_at <= now`, in id order; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so concurrent
//! workers take disjoint rows; on SQLite under the store's writer lock, so claims are serial),
//! counts the attempt and takes a *lease*: `next_attempt_at = now + lease` and a `claim_token`
//! of the worker's own. Other workers skip the row until the lease runs out. A worker killed
//! between sending and recording leaves the lease to expire; the message is then claimed again
//! and resent with the same idempotency key and the same body (the customer code is pinned on
//! the order when first translated). Outcomes are recorded only while the token is still the
//! worker's, so a worker that overran its lease cannot overwrite a newer attempt.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{self, Actor, OutboxScope};
use crate::availability::{jst, jst_today};
use crate::codes::WholesalerId;
use crate::entities::{customer_code, order as order_e, outbox, wholesaler as wholesaler_e};
use crate::error::{DomainError, DomainResult};
use crate::order::{OrderStatus, TOPIC_ORDER_CREATED};
use crate::outbox::{OutboxEntry, OutboxStatus};
use crate::store::{Store, fixed};
use crate::wholesaler::{AdapterConfig, CustomerCode, Mapping, Untranslated, translate};

/// A message this worker holds the lease of, ready to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub idempotency_key: String,
    /// The `order.created` JSON as written at confirmation.
    pub payload: String,
    pub order_id: String,
    pub wholesaler: WholesalerId,
    pub adapter: AdapterConfig,
    pub customer_code: CustomerCode,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
}

/// What one claim did.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub token: String,
    pub ready: Vec<Claimed>,
    /// Held for a missing customer code or wholesaler configuration.
    pub held: u64,
    /// Parked at once: not a message any adapter can carry (unknown topic or destination).
    pub parked: u64,
}

/// How a delivery attempt ended, as the worker decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The partner has it. `acknowledged`: its answer confirmed receipt (a push's 2xx);
    /// otherwise it acknowledges later (file drop, pull). `reference`: its own id, if given.
    Delivered {
        acknowledged: bool,
        reference: Option<String>,
    },
    /// Try again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// Give up until an operator replays it.
    Park { error: String },
}

/// The longest error text kept (partners' answers can be large).
const ERROR_MAX: usize = 500;

fn clip(s: &str) -> String {
    if s.len() <= ERROR_MAX {
        return s.to_owned();
    }
    let mut end = ERROR_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Where a destination string points.
fn wholesaler_of(destination: &str) -> Option<WholesalerId> {
    destination.strip_prefix("wholesaler:")?.parse().ok()
}

/// Rows per `CASE id WHEN … THEN … END` update (two bind parameters each, plus the IN list).
const CASE_ROWS: usize = 500;

/// `CASE WHEN id = … THEN … END` over `(order id, value)` pairs: one UPDATE sets a different
/// value on each of many orders (no round trip per order). `pairs` must not be empty.
fn by_order_id(pairs: &[(String, String)]) -> Expr {
    let mut pairs = pairs.iter();
    let Some((id, v)) = pairs.next() else {
        return Expr::value(Option::<String>::None);
    };
    let mut case = Expr::case(order_e::Column::Id.eq(id.clone()), v.clone());
    for (id, v) in pairs {
        case = case.case(order_e::Column::Id.eq(id.clone()), v.clone());
    }
    case.into()
}

enum Decision {
    Ready(CustomerCode, bool),
    Hold(String),
    Wait(NaiveDate, String),
    Park(String),
}

/// Claims up to `limit` due messages for the worker `token`, with a lease of `lease`.
/// Messages whose order cannot be translated yet are held (or, when a future customer code
/// exists, scheduled for its first day) inside the same transaction.
pub async fn claim(store: &Store, token: &str, now: DateTime<Utc>, lease: Duration, limit: u64) -> DomainResult<Claim> {
    let tx = store.write().await?;
    let db = &*tx;
    let mut q = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        // Oldest due first, in the order of the `outbox_due (status, next_attempt_at)` index,
        // so a claim reads just its batch. Ordering by id instead made PostgreSQL sort every
        // pending row on each claim (70,000 at a national confirmation). Messages written
        // together share their time and come out in about the order they were written.
        .order_by_asc(outbox::Column::NextAttemptAt)
        .limit(limit);
    if store.backend() == DbBackend::Postgres {
        q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = q.all(db).await?;
    let mut claim = Claim {
        token: token.to_owned(),
        ..Default::default()
    };
    if rows.is_empty() {
        return Ok(claim);
    }
    let configs: HashMap<String, wholesaler_e::Model> = wholesaler_e::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let order_ids: Vec<String> = rows.iter().map(|r| r.aggregate_key.clone()).collect();
    let mut orders: HashMap<String, order_e::Model> = HashMap::new();
    for chunk in crate::bulk::in_chunks(&order_ids) {
        for o in order_e::Entity::find()
            .filter(order_e::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            orders.insert(o.id.clone(), o);
        }
    }
    let untranslated: Vec<String> = orders
        .values()
        .filter(|o| o.customer_code.is_none())
        .map(|o| o.site_code.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let of_wholesalers: Vec<String> = orders
        .values()
        .filter(|o| o.customer_code.is_none())
        .map(|o| o.wholesaler_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut versions: HashMap<(String, String), Vec<Mapping>> = HashMap::new();
    for chunk in crate::bulk::in_chunks(&untranslated) {
        // Codes compared as bpchar so PostgreSQL can use the index (see `store::fixed`).
        for m in customer_code::Entity::find()
            .filter(customer_code::Column::WholesalerId.is_in(of_wholesalers.clone()))
            .filter(Expr::col(customer_code::Column::SiteCode).is_in(chunk.iter().map(|c| fixed(c))))
            .all(db)
            .await?
        {
            let code = CustomerCode::parse(&m.customer_code)
                .map_err(|e| DomainError::Corrupt(format!("customer code {}: {e}", m.id)))?;
            versions
                .entry((m.wholesaler_id, m.site_code))
                .or_default()
                .push(Mapping {
                    customer_code: code,
                    effective_from: m.effective_from,
                    effective_to: m.effective_to,
                });
        }
    }
    let today = jst_today(now);
    let mut pins: Vec<(String, String)> = Vec::new();
    let mut holds: Vec<(i64, String, String)> = Vec::new();
    let mut waits: Vec<(i64, String, DateTime<Utc>, String)> = Vec::new();
    let mut parks: Vec<(i64, String)> = Vec::new();
    for r in rows {
        let decision = decide(&r, &orders, &configs, &versions, today);
        match decision {
            Decision::Park(why) => parks.push((r.id, why)),
            Decision::Hold(why) => holds.push((r.id, r.aggregate_key, why)),
            Decision::Wait(day, why) => {
                let at = day
                    .and_hms_opt(0, 0, 0)
                    .and_then(|t| t.and_local_timezone(jst()).single())
                    .map_or(now + Duration::days(1), |t| t.with_timezone(&Utc));
                waits.push((r.id, r.aggregate_key, at, why));
            }
            Decision::Ready(code, newly) => {
                let Some(w) = wholesaler_of(&r.destination) else {
                    continue;
                };
                let Some(cfg) = configs.get(w.as_str()) else { continue };
                let adapter = adapter_of(cfg)?;
                if newly {
                    pins.push((r.aggregate_key.clone(), code.as_str().to_owned()));
                }
                claim.ready.push(Claimed {
                    id: r.id,
                    idempotency_key: r.idempotency_key,
                    payload: r.payload,
                    order_id: r.aggregate_key,
                    wholesaler: w,
                    adapter,
                    customer_code: code,
                    attempt: r.attempts + 1,
                });
            }
        }
    }
    let ready: Vec<i64> = claim.ready.iter().map(|c| c.id).collect();
    for chunk in crate::bulk::in_chunks(&ready) {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(now + lease))
            .col_expr(outbox::Column::ClaimToken, Expr::value(token))
            .filter(outbox::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    // The customer code is pinned once: every resend of the order carries the same one.
    for chunk in pins.chunks(CASE_ROWS) {
        order_e::Entity::update_many()
            .col_expr(order_e::Column::CustomerCode, by_order_id(chunk))
            .col_expr(order_e::Column::HoldReason, Expr::value(Option::<String>::None))
            .col_expr(order_e::Column::Status, Expr::value(OrderStatus::Created.as_str()))
            .filter(order_e::Column::Id.is_in(chunk.iter().map(|(id, _)| id.clone())))
            .filter(
                order_e::Column::Status
                    .eq(OrderStatus::Held.as_str())
                    .or(order_e::Column::Status.eq(OrderStatus::Created.as_str())),
            )
            .exec(db)
            .await?;
    }
    for (id, order, why) in &holds {
        set_outbox(db, *id, OutboxStatus::Held, None, Some(why)).await?;
        hold_order(db, order, why).await?;
    }
    for (id, order, at, why) in &waits {
        set_outbox(db, *id, OutboxStatus::Pending, Some(*at), Some(why)).await?;
        hold_order(db, order, why).await?;
    }
    for (id, why) in &parks {
        set_outbox(db, *id, OutboxStatus::Parked, None, Some(why)).await?;
    }
    tx.commit().await?;
    claim.held = (holds.len() + waits.len()) as u64;
    claim.parked = parks.len() as u64;
    if claim.held > 0 || claim.parked > 0 {
        tracing::info!(
            held = claim.held,
            parked = claim.parked,
            "outbox messages held (no customer code or configuration) or parked (undeliverable)"
        );
    }
    Ok(claim)
}

fn decide(
    r: &outbox::Model,
    orders: &HashMap<String, order_e::Model>,
    configs: &HashMap<String, wholesaler_e::Model>,
    versions: &HashMap<(String, String), Vec<Mapping>>,
    today: NaiveDate,
) -> Decision {
    if r.topic != TOPIC_ORDER_CREATED {
        return Decision::Park(format!("UNDELIVERABLE: no adapter carries topic {}", clip(&r.topic)));
    }
    let Some(w) = wholesaler_of(&r.destination) else {
        return Decision::Park(format!(
            "UNDELIVERABLE: destination {} is not a wholesaler",
            clip(&r.destination)
        ));
    };
    let Some(order) = orders.get(&r.aggregate_key) else {
        return Decision::Park(format!(
            "UNDELIVERABLE: order {} does not exist",
            clip(&r.aggregate_key)
        ));
    };
    if !configs.contains_key(w.as_str()) {
        return Decision::Hold(format!(
            "NO_WHOLESALER_CONFIGURATION: wholesaler {w} is not registered (registerWholesaler)"
        ));
    }
    if let Some(code) = &order.customer_code {
        return match CustomerCode::parse(code) {
            Ok(c) => Decision::Ready(c, false),
            Err(e) => Decision::Park(format!("UNDELIVERABLE: stored customer code is invalid: {e}")),
        };
    }
    let key = (w.as_str().to_owned(), order.site_code.clone());
    let found = versions.get(&key).map_or(&[][..], Vec::as_slice);
    match translate(found, today) {
        Ok(c) => Decision::Ready(c.clone(), true),
        Err(u @ Untranslated::NotYet(day)) => Decision::Wait(day, u.explain(&w, &order.site_code)),
        Err(u) => Decision::Hold(u.explain(&w, &order.site_code)),
    }
}

pub(crate) fn adapter_of(m: &wholesaler_e::Model) -> DomainResult<AdapterConfig> {
    let corrupt = |what: &str| DomainError::Corrupt(format!("wholesaler {}: {what}", m.id));
    Ok(match m.adapter.as_str() {
        "HTTP_PUSH" => AdapterConfig::HttpPush {
            endpoint: m.endpoint.clone().ok_or_else(|| corrupt("push without endpoint"))?,
            secret: m.signing_secret.clone().ok_or_else(|| corrupt("push without secret"))?,
        },
        "FILE_DROP" => AdapterConfig::FileDrop,
        "PULL" => AdapterConfig::Pull,
        _ => return Err(corrupt("unknown adapter")),
    })
}

async fn set_outbox<C: ConnectionTrait>(
    db: &C,
    id: i64,
    status: OutboxStatus,
    next: Option<DateTime<Utc>>,
    error: Option<&str>,
) -> DomainResult<()> {
    let mut u = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(status.as_str()))
        .col_expr(outbox::Column::LastError, Expr::value(error.map(clip)))
        .col_expr(outbox::Column::ClaimToken, Expr::value(Option::<String>::None));
    if let Some(at) = next {
        u = u.col_expr(outbox::Column::NextAttemptAt, Expr::value(at));
    }
    u.filter(outbox::Column::Id.eq(id)).exec(db).await?;
    Ok(())
}

async fn hold_order<C: ConnectionTrait>(db: &C, order: &str, why: &str) -> DomainResult<()> {
    order_e::Entity::update_many()
        .col_expr(order_e::Column::Status, Expr::value(OrderStatus::Held.as_str()))
        .col_expr(order_e::Column::HoldReason, Expr::value(why))
        .filter(order_e::Column::Id.eq(order))
        .filter(order_e::Column::Status.is_in([OrderStatus::Created.as_str(), OrderStatus::Held.as_str()]))
        .exec(db)
        .await?;
    Ok(())
}

/// What [`record`] applied: outcomes whose lease had passed to another worker are skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub delivered: u64,
    pub retried: u64,
    pub parked: u64,
    /// Outcomes dropped because the lease was no longer this worker's.
    pub stale: u64,
}

/// Records the outcomes of a claim's messages: delivered messages and their orders in a few
/// statements (the common case), failures one by one. Each row is touched only while its
/// `claim_token` is still `token`.
pub async fn record(
    store: &Store,
    token: &str,
    now: DateTime<Utc>,
    outcomes: &[(i64, String, Outcome)],
) -> DomainResult<Recorded> {
    let tx = store.write().await?;
    let db = &*tx;
    let mut rec = Recorded::default();
    let ids: Vec<i64> = outcomes.iter().map(|(id, _, _)| *id).collect();
    let mine: HashSet<i64> = {
        let mut mine = HashSet::new();
        for chunk in crate::bulk::in_chunks(&ids) {
            // Locked until commit (PostgreSQL): a worker whose lease has just expired cannot
            // take one of these rows between this check and the updates below.
            let rows: Vec<i64> = outbox::Entity::find()
                .select_only()
                .column(outbox::Column::Id)
                .filter(outbox::Column::Id.is_in(chunk.to_vec()))
                .filter(outbox::Column::ClaimToken.eq(token))
                .lock_exclusive()
                .into_tuple()
                .all(db)
                .await?;
            mine.extend(rows);
        }
        mine
    };
    let mut delivered = Vec::new();
    let mut acknowledged = Vec::new();
    let mut references = Vec::new();
    for (id, order, outcome) in outcomes {
        if !mine.contains(id) {
            rec.stale += 1;
            continue;
        }
        match outcome {
            Outcome::Delivered {
                acknowledged: ack,
                reference,
            } => {
                delivered.push(*id);
                if *ack {
                    acknowledged.push(order.clone());
                    if let Some(r) = reference {
                        references.push((order.clone(), clip(r)));
                    }
                }
                rec.delivered += 1;
            }
            Outcome::Retry { at, error } => {
                set_outbox(db, *id, OutboxStatus::Pending, Some(*at), Some(error)).await?;
                rec.retried += 1;
            }
            Outcome::Park { error } => {
                set_outbox(db, *id, OutboxStatus::Parked, None, Some(error)).await?;
                rec.parked += 1;
            }
        }
    }
    for chunk in crate::bulk::in_chunks(&delivered) {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Delivered.as_str()))
            .col_expr(outbox::Column::DeliveredAt, Expr::value(now))
            .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(outbox::Column::ClaimToken, Expr::value(Option::<String>::None))
            .filter(outbox::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    let delivered_orders: Vec<String> = outcomes
        .iter()
        .filter(|(id, _, o)| mine.contains(id) && matches!(o, Outcome::Delivered { .. }))
        .map(|(_, order, _)| order.clone())
        .collect();
    for chunk in crate::bulk::in_chunks(&delivered_orders) {
        order_e::Entity::update_many()
            .col_expr(order_e::Column::Status, Expr::value(OrderStatus::Sent.as_str()))
            .col_expr(order_e::Column::SentAt, Expr::value(now))
            .filter(order_e::Column::Id.is_in(chunk.to_vec()))
            .filter(order_e::Column::Status.ne(OrderStatus::Acknowledged.as_str()))
            .exec(db)
            .await?;
    }
    for chunk in crate::bulk::in_chunks(&acknowledged) {
        acknowledge_rows(db, chunk, now).await?;
    }
    for chunk in references.chunks(CASE_ROWS) {
        order_e::Entity::update_many()
            .col_expr(order_e::Column::AckReference, by_order_id(chunk))
            .filter(order_e::Column::Id.is_in(chunk.iter().map(|(id, _)| id.clone())))
            .filter(order_e::Column::AckReference.is_null())
            .exec(db)
            .await?;
    }
    tx.commit().await?;
    Ok(rec)
}

/// Marks orders acknowledged (first acknowledgement wins; a repeat changes nothing).
pub(crate) async fn acknowledge_rows<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
    now: DateTime<Utc>,
) -> DomainResult<()> {
    order_e::Entity::update_many()
        .col_expr(order_e::Column::Status, Expr::value(OrderStatus::Acknowledged.as_str()))
        .col_expr(order_e::Column::AcknowledgedAt, Expr::value(now))
        .col_expr(
            order_e::Column::SentAt,
            Func::coalesce([Expr::col(order_e::Column::SentAt), Expr::value(now)]).into(),
        )
        .filter(order_e::Column::Id.is_in(ids.to_vec()))
        .filter(order_e::Column::Status.ne(OrderStatus::Acknowledged.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Sends held messages of these wholesalers back to the queue (after a customer code or the
/// wholesaler's configuration arrived). The worker translates them again; those still missing
/// something are held again with their reason. Inside the caller's transaction.
pub(crate) async fn release_held<C: ConnectionTrait>(
    db: &C,
    wholesalers: &[String],
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let destinations: Vec<String> = wholesalers.iter().map(|w| format!("wholesaler:{w}")).collect();
    let mut released = 0;
    for chunk in crate::bulk::in_chunks(&destinations) {
        // Due since it was written: independent of any worker's clock.
        let r = outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Pending.as_str()))
            .col_expr(outbox::Column::NextAttemptAt, Expr::col(outbox::Column::CreatedAt))
            .filter(outbox::Column::Destination.is_in(chunk.to_vec()))
            .filter(
                outbox::Column::Status
                    .eq(OutboxStatus::Held.as_str())
                    .or(outbox::Column::Status
                        .eq(OutboxStatus::Pending.as_str())
                        .and(outbox::Column::NextAttemptAt.gt(now))
                        .and(outbox::Column::ClaimToken.is_null())
                        .and(outbox::Column::Attempts.eq(0))),
            )
            .exec(db)
            .await?;
        released += r.rows_affected;
    }
    Ok(released)
}

/// Queue statistics for the metrics: messages waiting (pending or held), the age of the
/// oldest of them, and parked messages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    pub waiting: u64,
    pub oldest_age_seconds: f64,
    pub parked: u64,
}

pub async fn stats(store: &Store, now: DateTime<Utc>) -> DomainResult<QueueStats> {
    let waiting_statuses = [OutboxStatus::Pending.as_str(), OutboxStatus::Held.as_str()];
    let (waiting, oldest): (i64, Option<DateTime<Utc>>) = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.count(), "n")
        .column_as(outbox::Column::CreatedAt.min(), "oldest")
        .filter(outbox::Column::Status.is_in(waiting_statuses))
        .into_tuple()
        .one(store.db())
        .await?
        .unwrap_or((0, None));
    let parked: i64 = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.count(), "n")
        .filter(outbox::Column::Status.eq(OutboxStatus::Parked.as_str()))
        .into_tuple()
        .one(store.db())
        .await?
        .unwrap_or(0);
    Ok(QueueStats {
        waiting: u64::try_from(waiting).unwrap_or(0),
        oldest_age_seconds: oldest.map_or(0.0, |o| Ord::max((now - o).num_milliseconds(), 0) as f64 / 1000.0),
        parked: u64::try_from(parked).unwrap_or(0),
    })
}

fn scope_filter(scope: &OutboxScope) -> Option<String> {
    match scope {
        OutboxScope::All => None,
        OutboxScope::Wholesaler(w) => Some(format!("wholesaler:{w}")),
    }
}

/// Parked messages in id order after `after`: NATIONAL all, a wholesaler its own.
pub async fn parked(store: &Store, actor: &Actor, after: Option<i64>, first: u64) -> DomainResult<Vec<OutboxEntry>> {
    let scope = authz::outbox_scope(actor)?;
    let mut q = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Parked.as_str()))
        .order_by_asc(outbox::Column::Id)
        .limit(first);
    if let Some(d) = scope_filter(&scope) {
        q = q.filter(outbox::Column::Destination.eq(d));
    }
    if let Some(a) = after {
        q = q.filter(outbox::Column::Id.gt(a));
    }
    q.all(store.db())
        .await?
        .into_iter()
        .map(crate::outbox::from_model)
        .collect()
}

/// Puts a parked message back in the queue, due at once, with its attempts counted from zero
/// (NATIONAL any, a wholesaler its own). The message keeps its idempotency key; an order never
/// delivered is translated again (its customer code may have been corrected).
pub async fn replay(store: &Store, actor: &Actor, id: i64) -> DomainResult<OutboxEntry> {
    let scope = authz::outbox_scope(actor)?;
    let tx = store.write().await?;
    let mut q = outbox::Entity::find_by_id(id);
    if let Some(d) = scope_filter(&scope) {
        q = q.filter(outbox::Column::Destination.eq(d));
    }
    let row = q
        .lock_exclusive()
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("outbox message", id))?;
    if row.status != OutboxStatus::Parked.as_str() {
        return Err(DomainError::Conflict(format!(
            "outbox message {id} is {}, only a PARKED message can be replayed",
            row.status
        )));
    }
    // A message parked before its order was ever delivered (e.g. refused for an unknown customer
    // code) is translated again, so a code corrected since then is used. A delivered order keeps
    // its code: what the partner already has must not change.
    if row.aggregate_type == crate::order::AGGREGATE_ORDER {
        order_e::Entity::update_many()
            .col_expr(order_e::Column::CustomerCode, Expr::value(Option::<String>::None))
            .filter(order_e::Column::Id.eq(row.aggregate_key.as_str()))
            .filter(order_e::Column::Status.is_in([OrderStatus::Created.as_str(), OrderStatus::Held.as_str()]))
            .exec(&*tx)
            .await?;
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Pending.as_str()))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::col(outbox::Column::CreatedAt))
        .col_expr(outbox::Column::ClaimToken, Expr::value(Option::<String>::None))
        .filter(outbox::Column::Id.eq(id))
        .exec(&*tx)
        .await?;
    let row = outbox::Entity::find_by_id(id)
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("outbox message", id))?;
    tx.commit().await?;
    tracing::info!(id, actor = %actor.label(), "parked outbox message replayed");
    crate::outbox::from_model(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_clipping() {
        assert_eq!(
            wholesaler_of("wholesaler:suzuken").map(|w| w.to_string()),
            Some("suzuken".into())
        );
        assert!(wholesaler_of("federation:13").is_none());
        assert!(wholesaler_of("wholesaler:Bad").is_none());
        let long = "あ".repeat(400);
        let c = clip(&long);
        assert!(c.len() <= ERROR_MAX + 3 && c.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
