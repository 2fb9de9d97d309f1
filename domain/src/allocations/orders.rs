//! Turning confirmed site allocations into order instructions (発注指示) and outbox entries, and
//! reading orders. One code path serves a municipality confirming its own allocation (strict:
//! any problem blocks it, with a report) and the operator's deadline run over every municipality
//! still in draft (blocked municipalities are left in draft and reported; the rest confirm).
//! Rows go in as batch INSERTs (or, in the deadline run on PostgreSQL, binary COPY), never one
//! round trip per order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait,
};

use super::rows::{self, boxes};
use super::{load_round, not_received};
use crate::allocation::{AllocationOwner, AllocationStatus, Level, Round};
use crate::authz::{self, Actor, AllocationAccess, OrderScope};
use crate::bulk::{Cell, CopyTx, Pieces, Rows, Target};
use crate::codes::{MunicipalityCode, SiteCode, WholesalerId};
use crate::entities::{allocation as allocation_e, allocation_line, order as order_e, order_ancillary, site};
use crate::error::{BlockingItem, DomainError, DomainResult};
use crate::order::{
    self, AGGREGATE_ORDER, Order, OrderProblem, TOPIC_ORDER_CREATED, build_order, destination, idempotency_key,
};
use crate::outbox::{self, NewOutboxEntry};
use crate::product::{self, Product};
use crate::site::Site;
use crate::sites::site_from_model;
use crate::store::Store;

/// What the deadline run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkConfirmReport {
    pub confirmed: u64,
    pub orders: u64,
    /// Municipalities left in draft, each with the problems that blocked it.
    pub blocked: Vec<(MunicipalityCode, Vec<BlockingItem>)>,
    /// Where the time went: (phase, duration), in order — for operators and the benchmark.
    pub phases: Vec<(&'static str, Duration)>,
}

/// What writing orders did.
pub(super) struct Written {
    pub confirmed: u64,
    pub orders: u64,
    pub blocked: Vec<(MunicipalityCode, Vec<BlockingItem>)>,
    pub phases: Vec<(&'static str, Duration)>,
}

pub(super) async fn mark_confirmed<C: ConnectionTrait>(
    db: &C,
    ids: &[i32],
    actor: &Actor,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for chunk in crate::bulk::in_chunks(ids) {
        allocation_e::Entity::update_many()
            .col_expr(
                allocation_e::Column::Status,
                Expr::value(AllocationStatus::Confirmed.as_str()),
            )
            .col_expr(allocation_e::Column::ConfirmedAt, Expr::value(now))
            .col_expr(allocation_e::Column::ConfirmedBy, Expr::value(actor.label()))
            .col_expr(
                allocation_e::Column::Version,
                Expr::col(allocation_e::Column::Version).add(1),
            )
            .col_expr(allocation_e::Column::UpdatedAt, Expr::value(now))
            .filter(allocation_e::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// A line with boxes: (allocation id, site code, boxes).
type BoxLine = (i32, String, i64);

/// The lines with boxes of the given allocations (only the columns orders need), by allocation
/// id, and the rows of the sites they name — one query each, the sites by a semi-join on the
/// same lines. Sites are checked and converted where they are used ([`Sites::get`]).
async fn lines_and_sites<C: ConnectionTrait>(db: &C, ids: &[i32]) -> DomainResult<(HashMap<i32, Vec<BoxLine>>, Sites)> {
    let mut lines: HashMap<i32, Vec<BoxLine>> = HashMap::new();
    let mut sites = Sites::default();
    for chunk in crate::bulk::in_chunks(ids) {
        let rows: Vec<BoxLine> = allocation_line::Entity::find()
            .select_only()
            .columns([
                allocation_line::Column::AllocationId,
                allocation_line::Column::ChildCode,
                allocation_line::Column::Boxes,
            ])
            .filter(allocation_line::Column::AllocationId.is_in(chunk.to_vec()))
            .filter(allocation_line::Column::Boxes.gt(0))
            .order_by_asc(allocation_line::Column::ChildCode)
            .into_tuple()
            .all(db)
            .await?;
        for l in rows {
            lines.entry(l.0).or_default().push(l);
        }
        let named = Query::select()
            .column(allocation_line::Column::ChildCode)
            .from(allocation_line::Entity)
            .and_where(allocation_line::Column::AllocationId.is_in(chunk.to_vec()))
            .and_where(allocation_line::Column::Boxes.gt(0))
            .to_owned();
        // Rows as the driver returns them: decoding into models (and checking) waits until the
        // builder needs each site, so in the deadline run it overlaps the COPY.
        let query = site::Entity::find()
            .filter(site::Column::Code.in_subquery(named))
            .build(db.get_database_backend());
        for row in db.query_all_raw(query).await? {
            let code: String = row.try_get("", site::Column::Code.as_str())?;
            sites.rows.insert(code, row);
        }
    }
    Ok((lines, sites))
}

/// Site rows as read, decoded and converted (and so checked) on first use.
#[derive(Default)]
struct Sites {
    rows: HashMap<String, QueryResult>,
    checked: HashMap<String, Site>,
}

impl Sites {
    fn get(&mut self, code: &str) -> DomainResult<&Site> {
        if let Some(row) = self.rows.remove(code) {
            let model = site::Model::from_query_result(&row, "")?;
            self.checked.insert(code.to_owned(), site_from_model(model)?);
        }
        self.checked
            .get(code)
            .ok_or_else(|| rows::corrupt("allocation line", code, "site missing"))
    }
}

fn blocking(site: &str, p: OrderProblem) -> BlockingItem {
    BlockingItem {
        subject: site.to_owned(),
        reason: p.code().to_owned(),
        message: format!("site {site} {}", p.explain()),
    }
}

/// Orders for the lines of municipality allocations, or the problems that prevent them.
struct Planned {
    orders: Vec<(Order, String)>,
    blocked: Vec<(MunicipalityCode, Vec<BlockingItem>)>,
    confirmable: Vec<i32>,
    phases: Vec<(&'static str, Duration)>,
}

/// What one municipality's lines become: its orders, or every problem that blocks it.
type MunicipalityPlan = Result<Vec<Order>, (MunicipalityCode, Vec<BlockingItem>)>;

/// What is fixed for a whole run of planning.
struct Planner<'a> {
    round: &'a Round,
    product: &'a Product,
    now: DateTime<Utc>,
    label: String,
}

impl Planner<'_> {
    fn municipality(
        &self,
        h: &allocation_e::Model,
        lines: Vec<BoxLine>,
        sites: &mut Sites,
    ) -> DomainResult<MunicipalityPlan> {
        let AllocationOwner::Municipality(m) = rows::owner_of(h)? else {
            return Err(rows::corrupt("allocation", h.id, "not a municipality's"));
        };
        let mut orders = Vec::with_capacity(lines.len());
        let mut problems = Vec::new();
        for (_, code, n) in lines {
            let n = boxes(n, "allocation line", &code)?;
            let site = sites.get(&code)?;
            match build_order(self.round, h.id, self.product, site, &m, n, self.now, &self.label) {
                Ok(o) => orders.push(o),
                Err(p) => problems.push(blocking(&code, p)),
            }
        }
        Ok(if problems.is_empty() {
            Ok(orders)
        } else {
            Err((m, problems))
        })
    }

    /// The `order.created` message of an order built by [`Planner::municipality`].
    fn message(&self, o: &Order, sites: &mut Sites) -> DomainResult<String> {
        let site = sites.get(o.site.as_str())?;
        serde_json::to_string(&order::order_created(o, self.round, site))
            .map_err(|e| DomainError::Corrupt(e.to_string()))
    }
}

async fn plan<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    round: &Round,
    product: &Product,
    headers: &[allocation_e::Model],
    now: DateTime<Utc>,
) -> DomainResult<Planned> {
    let start = Instant::now();
    let ids: Vec<i32> = headers.iter().map(|h| h.id).collect();
    let (mut lines, mut sites) = lines_and_sites(db, &ids).await?;
    let loaded = start.elapsed();
    let planner = Planner {
        round,
        product,
        now,
        label: actor.label(),
    };
    let mut planned = Planned {
        orders: Vec::with_capacity(sites.rows.len()),
        blocked: Vec::new(),
        confirmable: Vec::with_capacity(headers.len()),
        phases: vec![("loading lines and sites", loaded)],
    };
    for h in headers {
        match planner.municipality(h, lines.remove(&h.id).unwrap_or_default(), &mut sites)? {
            Ok(orders) => {
                for o in orders {
                    let message = planner.message(&o, &mut sites)?;
                    planned.orders.push((o, message));
                }
                planned.confirmable.push(h.id);
            }
            Err(blocked) => planned.blocked.push(blocked),
        }
    }
    planned.phases.push((
        "checking sites and building orders and messages",
        start.elapsed() - loaded,
    ));
    Ok(planned)
}

const ORDER_COLUMNS: [&str; 15] = [
    "id",
    "round_id",
    "allocation_id",
    "product_code",
    "site_code",
    "prefecture_code",
    "municipality_code",
    "wholesaler_id",
    "boxes",
    "vials",
    "doses",
    "status",
    "created_at",
    "created_by",
    "ancillaries",
];

fn n(x: u64) -> Cell<'static> {
    Cell::Int8(i64::try_from(x).unwrap_or(i64::MAX))
}

/// Adds an order's row to `orders`.
fn push_order(orders: &mut Rows<'_>, o: &Order) {
    orders.push(&[
        Cell::Text(&o.id),
        Cell::Int4(o.round),
        Cell::Int4(o.allocation),
        Cell::Text(o.product.as_str()),
        Cell::Text(o.site.as_str()),
        Cell::Text(o.municipality.prefecture().as_str()),
        Cell::Text(o.municipality.as_str()),
        Cell::Text(o.wholesaler.as_str()),
        n(o.boxes.get()),
        n(o.vials.get()),
        n(o.doses.get()),
        Cell::Text(o.status.as_str()),
        Cell::Time(o.created_at),
        Cell::Text(&o.created_by),
        Cell::Text(&rows::ancillaries_column(&o.ancillaries)),
    ]);
}

/// Adds an order's `order.created` message to `outbox`.
fn push_message(outbox: &mut outbox::Appended<'_>, o: Order, payload: String) {
    outbox.push(&NewOutboxEntry {
        topic: TOPIC_ORDER_CREATED.to_owned(),
        aggregate_type: AGGREGATE_ORDER.to_owned(),
        idempotency_key: idempotency_key(&o.id),
        destination: destination(&o.wholesaler),
        aggregate_key: o.id,
        payload,
    });
}

/// Writes the orders (their ancillaries in a column of each) and their outbox entries, then marks the allocations
/// confirmed — all inside the caller's transaction (by COPY when it is the deadline run's
/// [`CopyTx`], by INSERT otherwise: the same rows either way). `strict`: any problem fails the
/// whole call with a report (a municipality confirming its own); otherwise blocked
/// municipalities are left in draft and returned.
pub(super) async fn write_orders<C: Target>(
    db: &C,
    actor: &Actor,
    round: &Round,
    product: &Product,
    headers: Vec<allocation_e::Model>,
    strict: bool,
    now: DateTime<Utc>,
) -> DomainResult<Written> {
    let mut planned = plan(db, actor, round, product, &headers, now).await?;
    if strict && let Some((m, items)) = planned.blocked.first() {
        let sites: Vec<&str> = items.iter().map(|i| i.subject.as_str()).collect();
        return Err(DomainError::Blocked {
            message: format!(
                "municipality {m} cannot confirm round {}: {} site(s) cannot be ordered for ({}); nothing was confirmed",
                round.id,
                items.len(),
                sites.join(", ")
            ),
            items: items.clone(),
        });
    }
    let start = Instant::now();
    let count = planned.orders.len() as u64;
    let mut order_rows = Rows::new(db, &ORDER_COLUMNS);
    let mut outbox_rows = outbox::Appended::new(db, now);
    for (o, payload) in std::mem::take(&mut planned.orders) {
        push_order(&mut order_rows, &o);
        push_message(&mut outbox_rows, o, payload);
    }
    planned.phases.push(("preparing rows", start.elapsed()));
    let mut lap = Instant::now();
    let mut phase = |name: &'static str, phases: &mut Vec<(&'static str, Duration)>| {
        phases.push((name, lap.elapsed()));
        lap = Instant::now();
    };
    crate::bulk::write(db, "orders", order_rows).await?;
    phase("inserting orders", &mut planned.phases);
    outbox_rows.write(db).await?;
    phase("inserting outbox entries", &mut planned.phases);
    mark_confirmed(db, &planned.confirmable, actor, now).await?;
    phase("marking allocations confirmed", &mut planned.phases);
    Ok(Written {
        confirmed: planned.confirmable.len() as u64,
        orders: count,
        blocked: planned.blocked,
        phases: planned.phases,
    })
}

/// The draft municipality allocations of the round, locked for this transaction (as a
/// municipality's own confirmation or edit locks its header): nobody edits or confirms them
/// until the run commits or rolls back.
async fn draft_headers<C: ConnectionTrait>(db: &C, round_id: i32) -> DomainResult<Vec<allocation_e::Model>> {
    Ok(allocation_e::Entity::find()
        .filter(allocation_e::Column::RoundId.eq(round_id))
        .filter(allocation_e::Column::Level.eq(Level::Municipality.as_str()))
        .filter(allocation_e::Column::Status.eq(AllocationStatus::Draft.as_str()))
        .order_by_asc(allocation_e::Column::Id)
        .lock_exclusive()
        .all(db)
        .await?)
}

/// The deadline run inside an ordinary write transaction (SQLite): everything but the commit.
async fn confirm_all_in<C: Target>(tx: &C, actor: &Actor, round_id: i32) -> DomainResult<Written> {
    let round = load_round(tx, round_id).await?;
    let product = product::get_in(tx, &round.product).await?;
    let headers = draft_headers(tx, round_id).await?;
    write_orders(tx, actor, &round, &product, headers, false, Utc::now()).await
}

/// What the deadline run's row builder found.
#[derive(Default)]
struct Built {
    orders: u64,
    confirmable: Vec<i32>,
    blocked: Vec<(MunicipalityCode, Vec<BlockingItem>)>,
}

/// The deadline run on a [`CopyTx`] (PostgreSQL): everything but the commit. The same plan and
/// rows as [`write_orders`], but pipelined: a blocking task checks sites and builds orders and
/// their COPY rows municipality by municipality, then the `order.created` messages and theirs,
/// while this task streams them to the server — orders, then outbox entries — so building
/// overlaps storing on the machine's other core. Only complete municipalities reach the stream
/// (a blocked one is decided before any of its rows is encoded). The messages are built after
/// the orders rather than beside them, so they need not wait in memory for the orders' COPY
/// to end.
async fn confirm_all_by_copy(tx: &CopyTx, actor: &Actor, round_id: i32) -> DomainResult<Written> {
    let start = Instant::now();
    let round = load_round(tx, round_id).await?;
    let product = product::get_in(tx, &round.product).await?;
    let headers = draft_headers(tx, round_id).await?;
    let now = Utc::now();
    let ids: Vec<i32> = headers.iter().map(|h| h.id).collect();
    let (mut lines, mut sites) = lines_and_sites(tx, &ids).await?;
    let mut phases = vec![("loading lines and sites", start.elapsed())];
    let mut lap = Instant::now();

    let (orders_out, orders_in) = Pieces::channel();
    let (outbox_out, outbox_in) = Pieces::channel();
    let label = actor.label();
    let builder = tokio::task::spawn_blocking(move || -> DomainResult<Built> {
        let planner = Planner {
            round: &round,
            product: &product,
            now,
            label,
        };
        let mut built = Built::default();
        let mut orders = Vec::with_capacity(lines.values().map(Vec::len).sum());
        let mut order_rows = Rows::for_copy(&ORDER_COLUMNS);
        for h in &headers {
            match planner.municipality(h, lines.remove(&h.id).unwrap_or_default(), &mut sites)? {
                Ok(planned) => {
                    for o in planned {
                        push_order(&mut order_rows, &o);
                        orders.push(o);
                    }
                    built.confirmable.push(h.id);
                }
                Err(blocked) => built.blocked.push(blocked),
            }
            if let Some(piece) = order_rows.take_piece(&orders_out)
                && !orders_out.send(piece)
            {
                return Ok(built); // the COPY failed; its error is the one reported
            }
        }
        if !orders_out.send(order_rows.last_piece()) {
            return Ok(built);
        }
        drop(orders_out);
        built.orders = orders.len() as u64;
        let mut outbox_rows = outbox::Appended::for_copy(now);
        for o in orders {
            let message = planner.message(&o, &mut sites)?;
            push_message(&mut outbox_rows, o, message);
            if let Some(piece) = outbox_rows.take_piece(&outbox_out)
                && !outbox_out.send(piece)
            {
                return Ok(built);
            }
        }
        outbox_out.send(outbox_rows.last_piece());
        Ok(built)
    });
    let orders = tx
        .copy_stream(&crate::bulk::copy_sql("orders", &ORDER_COLUMNS), orders_in)
        .await;
    phases.push((
        "checking sites, building and copying orders (overlapped)",
        lap.elapsed(),
    ));
    lap = Instant::now();
    let copied = match orders {
        Ok(()) => {
            tx.copy_stream(&crate::bulk::copy_sql("outbox", &outbox::COLUMNS), outbox_in)
                .await
        }
        Err(e) => {
            drop(outbox_in); // so a builder waiting to send outbox pieces stops
            Err(e)
        }
    };
    // The builder's own error first: a stream it cut short is not a complete one.
    let built = builder
        .await
        .map_err(|e| DomainError::Corrupt(format!("building the deadline run's rows failed: {e}")))??;
    copied?;
    phases.push((
        "building messages and copying outbox entries (overlapped)",
        lap.elapsed(),
    ));
    lap = Instant::now();
    mark_confirmed(tx, &built.confirmable, actor, now).await?;
    phases.push(("marking allocations confirmed", lap.elapsed()));
    Ok(Written {
        confirmed: built.confirmable.len() as u64,
        orders: built.orders,
        blocked: built.blocked,
        phases,
    })
}

/// The deadline run (operator only): confirms every municipality allocation of the round that
/// is still in draft, as if each municipality had confirmed it, in one transaction. A
/// municipality with a problem stays in draft and is reported; the others confirm. On
/// PostgreSQL the transaction runs on a connection of its own so its rows go in by COPY
/// ([`CopyTx`]); on SQLite it is an ordinary write transaction.
pub async fn confirm_all_municipalities(
    store: &Store,
    actor: &Actor,
    round_id: i32,
) -> DomainResult<BulkConfirmReport> {
    authz::can_confirm_in_bulk(actor)?;
    let (mut w, start) = match CopyTx::begin(store).await? {
        Some(tx) => {
            let w = confirm_all_by_copy(&tx, actor, round_id).await?;
            let start = Instant::now();
            tx.commit().await?;
            (w, start)
        }
        None => {
            let tx = store.write().await?;
            let w = confirm_all_in(&*tx, actor, round_id).await?;
            let start = Instant::now();
            tx.commit().await?;
            (w, start)
        }
    };
    w.phases.push(("commit", start.elapsed()));
    tracing::info!(round = round_id, confirmed = w.confirmed, orders = w.orders, blocked = w.blocked.len(), actor = %actor.label(), "municipality allocations confirmed in bulk");
    Ok(BulkConfirmReport {
        confirmed: w.confirmed,
        orders: w.orders,
        blocked: w.blocked,
        phases: w.phases,
    })
}

/// What would block confirming a municipality's allocation now: every site with boxes that
/// cannot be ordered for (no wholesaler, withdrawn, not eligible). Empty for other levels and
/// for confirmed allocations.
pub async fn problems(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    owner: &AllocationOwner,
) -> DomainResult<Vec<BlockingItem>> {
    if authz::allocation_access(actor, owner)? != AllocationAccess::Full {
        return Err(DomainError::Forbidden(format!(
            "the problems of {owner}'s allocation are for its owner and the levels above"
        )));
    }
    if !matches!(owner, AllocationOwner::Municipality(_)) {
        return Ok(Vec::new());
    }
    let db = store.db();
    let round = load_round(db, round_id).await?;
    let h = super::header(db, round_id, owner)
        .await?
        .ok_or_else(|| not_received(owner, round_id))?;
    if rows::status_of(&h)? == AllocationStatus::Confirmed {
        return Ok(Vec::new());
    }
    let product = product::get_in(db, &round.product).await?;
    let planned = plan(db, actor, &round, &product, &[h], Utc::now()).await?;
    Ok(planned.blocked.into_iter().flat_map(|(_, items)| items).collect())
}

/// Filters for listing orders; combined with AND and with the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub round: Option<i32>,
    pub municipality: Option<MunicipalityCode>,
    pub site: Option<SiteCode>,
    pub wholesaler: Option<WholesalerId>,
    /// e.g. SENT: what a pulling wholesaler has not acknowledged yet.
    pub status: Option<crate::order::OrderStatus>,
}

#[derive(Debug, Clone)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub has_next: bool,
}

fn scope_condition(scope: &OrderScope) -> Condition {
    let c = Condition::all();
    match scope {
        OrderScope::All => c,
        OrderScope::Prefecture(p) => c.add(order_e::Column::PrefectureCode.eq(p.as_str())),
        OrderScope::Municipality(m) => c.add(order_e::Column::MunicipalityCode.eq(m.as_str())),
        OrderScope::Site(s) => c.add(order_e::Column::SiteCode.eq(s.as_str())),
        OrderScope::Wholesaler(w) => c.add(order_e::Column::WholesalerId.eq(w.as_str())),
    }
}

/// Orders from their rows, with the `order_ancillaries` rows of those written before
/// `orders.ancillaries` existed (none for newer orders, so no query).
async fn with_ancillaries<C: ConnectionTrait>(db: &C, models: Vec<order_e::Model>) -> DomainResult<Vec<Order>> {
    let ids: Vec<String> = models
        .iter()
        .filter(|m| m.ancillaries.is_none())
        .map(|m| m.id.clone())
        .collect();
    let mut anc: BTreeMap<String, Vec<order_ancillary::Model>> = BTreeMap::new();
    for chunk in crate::bulk::in_chunks(&ids) {
        for a in order_ancillary::Entity::find()
            .filter(order_ancillary::Column::OrderId.is_in(chunk.to_vec()))
            .order_by_asc(order_ancillary::Column::ProductCode)
            .all(db)
            .await?
        {
            anc.entry(a.order_id.clone()).or_default().push(a);
        }
    }
    models
        .into_iter()
        .map(|m| {
            let a = anc.remove(&m.id).unwrap_or_default();
            rows::order_from_model(m, a)
        })
        .collect()
}

/// A page of the orders the caller may see (NATIONAL all; a prefecture or municipality those
/// of its sites; a site its own; a wholesaler those addressed to it), ordered by id.
pub async fn orders(
    store: &Store,
    actor: &Actor,
    filter: &OrderFilter,
    after: Option<&str>,
    first: u64,
) -> DomainResult<OrderPage> {
    let mut cond = scope_condition(&authz::order_read_scope(actor)?);
    if let Some(r) = filter.round {
        cond = cond.add(order_e::Column::RoundId.eq(r));
    }
    if let Some(m) = &filter.municipality {
        cond = cond.add(order_e::Column::MunicipalityCode.eq(m.as_str()));
    }
    if let Some(s) = &filter.site {
        cond = cond.add(order_e::Column::SiteCode.eq(s.as_str()));
    }
    if let Some(w) = &filter.wholesaler {
        cond = cond.add(order_e::Column::WholesalerId.eq(w.as_str()));
    }
    if let Some(s) = filter.status {
        cond = cond.add(order_e::Column::Status.eq(s.as_str()));
    }
    if let Some(a) = after {
        cond = cond.add(order_e::Column::Id.gt(a));
    }
    let rows = order_e::Entity::find()
        .filter(cond)
        .order_by_asc(order_e::Column::Id)
        .limit(first + 1)
        .all(store.db())
        .await?;
    let has_next = rows.len() as u64 > first;
    let rows: Vec<_> = rows.into_iter().take(first as usize).collect();
    Ok(OrderPage {
        orders: with_ancillaries(store.db(), rows).await?,
        has_next,
    })
}

/// One order, if the caller may see it.
pub async fn order(store: &Store, actor: &Actor, id: &str) -> DomainResult<Order> {
    let cond = scope_condition(&authz::order_read_scope(actor)?).add(order_e::Column::Id.eq(id));
    let m = order_e::Entity::find()
        .filter(cond)
        .one(store.db())
        .await?
        .ok_or_else(|| DomainError::not_found("order", id))?;
    with_ancillaries(store.db(), vec![m])
        .await?
        .pop()
        .ok_or_else(|| DomainError::not_found("order", id))
}
