//! The stock ledger service: receipts, use, waste, expiry, transfers from a base site to its
//! satellites, reversals, stock reports (physical counts), and the reads over them. Every call
//! takes the acting [`Actor`] and applies [`crate::authz`]; every write appends its entries and
//! moves their balance rows in one transaction, and returns the committed changes so the caller
//! can announce them after the commit.
//!
//! Never negative, on both backends: a withdrawal is a conditional update of the site × product
//! × lot balance row (`sql::move_balance`), so of two concurrent withdrawals that together
//! exceed the stock, the second finds the condition false once the first commits and books
//! nothing. Operations touching two rows (transfers, their reversals) move them in site-code
//! order, so two transactions never wait on each other's rows in opposite orders.
//!
//! Must not: know about GraphQL, HTTP or the event bus.

pub(crate) mod combine;
mod query;
pub(crate) mod sql;

use chrono::{NaiveDate, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};

pub use query::{
    EntryFilter, EntryPage, Mismatch, ProductSummary, StockBalance, StockEntry, StockFilter, StockReport,
    StockReportLine, balances, expiring, history, reconcile, reports, resolve_area, summary,
};

use crate::authz::{self, Actor};
use crate::codes::{LotNumber, MunicipalityCode, ProductCode, SiteCode};
use crate::entities::{site, stock_entry};
use crate::error::{DomainError, DomainResult};
use crate::product::ProductKind;
use crate::quantity::Vials;
use crate::site::{SiteStatus, bounded_text};
use crate::stock::{
    self, Effect, EntryKind, ReversalFacts, StockChange, TransferParty, WasteReason, check_reversal, today_in_japan,
};
use crate::store::Store;
use sql::{ExpiryGuard, Key, NewEntry};

/// Longest free-text note on an entry, in characters.
const MAX_NOTE: usize = 500;

/// Vials a site records as arrived by itself (an opening balance, or a delivery made outside
/// this system). Deliveries registered here are booked by `deliveries::confirm_receipt`
/// through [`receive_delivered`] instead; `delivery` stays `None` on this path.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub quantity: Vials,
    /// The day the vials arrived (V-SYS records it); today when not given.
    pub received_on: Option<NaiveDate>,
    pub note: String,
    pub delivery: Option<i64>,
}

/// What vials leaving a site's stock were used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Administered,
    Wasted(WasteReason),
    Expired,
}

/// Vials leaving a site's stock (not to another site).
#[derive(Debug, Clone)]
pub struct Withdrawal {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub quantity: Vials,
    pub use_: Use,
    pub note: String,
}

/// Vials a base site passes to one of its satellites.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub from: SiteCode,
    pub to: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub quantity: Vials,
    pub note: String,
}

/// One counted lot of a stock report.
#[derive(Debug, Clone)]
pub struct Count {
    pub product: ProductCode,
    pub lot: LotNumber,
    pub counted: Vials,
    /// Why this lot differs, when it has its own reason; the report's otherwise.
    pub reason: Option<String>,
}

/// A physical count (在庫報告) of some of a site's lots.
#[derive(Debug, Clone)]
pub struct ReportDraft {
    pub site: SiteCode,
    /// The day of the count; today when not given.
    pub counted_on: Option<NaiveDate>,
    /// Why the count differs from the ledger (e.g. "monthly count"), used for every adjusted lot
    /// without its own reason.
    pub reason: String,
    pub lines: Vec<Count>,
}

/// Most lots in one stock report.
pub const MAX_REPORT_LINES: usize = 500;

/// The municipality of a site, or NOT_FOUND.
async fn site_municipality<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<MunicipalityCode> {
    let m: Option<String> = site::Entity::find_by_id(code.as_str())
        .select_only()
        .column(site::Column::MunicipalityCode)
        .into_tuple()
        .one(db)
        .await?;
    let m = m.ok_or_else(|| DomainError::not_found("site", code))?;
    m.parse()
        .map_err(|e| DomainError::Corrupt(format!("site {code} municipality: {e}")))
}

async fn load_site<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<Option<crate::site::Site>> {
    site::Entity::find_by_id(code.as_str())
        .one(db)
        .await?
        .map(crate::sites::site_from_model)
        .transpose()
}

fn note(s: &str, field: &str) -> DomainResult<String> {
    bounded_text(s, 0, MAX_NOTE, field)
}

/// Why a conditional move found nothing to change: no such lot at the site, the expiry guard,
/// or not enough on hand.
async fn refusal<C: ConnectionTrait>(db: &C, key: Key<'_>, wanted: u64, guard: ExpiryGuard) -> DomainError {
    match sql::balance_of(db, key, false).await {
        Err(e) => e,
        Ok(None) => DomainError::invalid(
            "input.lot",
            format!("site {} holds no lot {} of {}", key.site, key.lot, key.product),
        ),
        Ok(Some(b)) => {
            let dated = match guard {
                ExpiryGuard::None => Ok(()),
                ExpiryGuard::Unexpired(today) => stock::check_not_expired(b.expiry_date, today, "input.lot"),
                ExpiryGuard::Expired(today) => stock::check_expired(b.expiry_date, today),
            };
            match dated {
                Err(e) => e,
                Ok(()) => DomainError::Conflict(format!(
                    "only {} of lot {} of {} on hand at site {}; {wanted} asked",
                    b.on_hand, key.lot, key.product, key.site
                )),
            }
        }
    }
}

fn change(key: Key<'_>, municipality: MunicipalityCode, e: &NewEntry<'_>, id: i64, expiry: NaiveDate) -> StockChange {
    StockChange {
        entry_id: id,
        site: *key.site,
        municipality,
        product: key.product.clone(),
        lot: key.lot.clone(),
        expiry_date: expiry,
        kind: e.kind,
        quantity: e.quantity,
        on_hand: e.balance_after,
        recorded_at: e.recorded_at,
    }
}

/// Books vials arriving at a site (RECEIVED). The lot is registered with its expiry date on
/// first sight; a lot already known with another expiry date is refused, as is a lot that had
/// expired when it arrived, a product that is not a vaccine, or one the site does not handle.
#[tracing::instrument(skip_all, fields(site = %r.site))]
pub async fn receive(store: &Store, actor: &Actor, r: &Receipt) -> DomainResult<StockChange> {
    authz::can_write_stock(actor, &r.site)?;
    let quantity = stock::movement_quantity(r.quantity, "input.quantity")?;
    let note = note(&r.note, "input.note")?;
    let today = today_in_japan();
    let received_on = r.received_on.unwrap_or(today);
    stock::check_receipt(r.expiry_date, received_on, today)?;
    let product = match crate::product::get(store, &r.product).await {
        Err(DomainError::NotFound { .. }) => return Err(DomainError::invalid("input.product", "no such product")),
        other => other?,
    };
    if !matches!(product.kind, ProductKind::Vaccine { .. }) {
        return Err(DomainError::invalid(
            "input.product",
            "stock is kept for vaccines; ancillaries are not counted per lot",
        ));
    }
    let site = load_site(store.db(), &r.site)
        .await?
        .ok_or_else(|| DomainError::not_found("site", r.site))?;
    if site.status != SiteStatus::Active {
        return Err(DomainError::invalid(
            "input.site",
            format!("site {} is withdrawn", r.site),
        ));
    }
    if !site.details.products.contains(&r.product) {
        return Err(DomainError::invalid(
            "input.product",
            format!("site {} does not handle {}", r.site, r.product),
        ));
    }
    let key = Key {
        site: &r.site,
        product: &r.product,
        lot: &r.lot,
    };
    let tx = store.write().await?;
    // Taken once the writer lock is held, so it is the moment of recording, not of queueing.
    let now = Utc::now();
    let expiry = sql::ensure_lot(&*tx, &r.product, &r.lot, r.expiry_date, now).await?;
    if expiry != r.expiry_date {
        return Err(DomainError::invalid(
            "input.expiryDate",
            format!("lot {} of {} is on record with expiry date {expiry}", r.lot, r.product),
        ));
    }
    let effect =
        Effect::of(EntryKind::Received, quantity).ok_or_else(|| DomainError::invalid("input.quantity", "too large"))?;
    let moved = sql::move_balance(&*tx, key, effect, expiry, ExpiryGuard::None, now)
        .await?
        .ok_or_else(|| DomainError::Corrupt("an inflow changed no balance".into()))?;
    let label = actor.label();
    let entry = NewEntry {
        key,
        kind: EntryKind::Received,
        quantity: effect.on_hand,
        balance_after: moved.on_hand,
        waste_reason: None,
        note: &note,
        occurred_on: received_on,
        recorded_at: now,
        actor: &label,
        counterpart: None,
        paired_entry: None,
        reverses: None,
        delivery: r.delivery,
        report: None,
    };
    let id = sql::insert_entry(&*tx, &entry).await?;
    tx.commit().await?;
    Ok(change(key, site.details.municipality, &entry, id, expiry))
}

/// A RECEIVED entry for vials a site accepted from a delivery, inside the caller's transaction
/// (`deliveries::confirm_receipt`, which has checked the site, the lot and the date). The lot
/// is on record already: its delivery registered it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn receive_delivered<C: ConnectionTrait>(
    tx: &C,
    site: &SiteCode,
    municipality: MunicipalityCode,
    product: &ProductCode,
    lot: &LotNumber,
    expiry: NaiveDate,
    quantity: Vials,
    received_on: NaiveDate,
    now: chrono::DateTime<Utc>,
    actor: &str,
    delivery: i64,
) -> DomainResult<StockChange> {
    let quantity = stock::movement_quantity(quantity, "input.lots.accepted")?;
    let key = Key { site, product, lot };
    let effect = Effect::of(EntryKind::Received, quantity)
        .ok_or_else(|| DomainError::invalid("input.lots.accepted", "too large"))?;
    let moved = sql::move_balance(tx, key, effect, expiry, ExpiryGuard::None, now)
        .await?
        .ok_or_else(|| DomainError::Corrupt("an inflow changed no balance".into()))?;
    let note = format!("delivery {delivery}");
    let entry = NewEntry {
        key,
        kind: EntryKind::Received,
        quantity: effect.on_hand,
        balance_after: moved.on_hand,
        waste_reason: None,
        note: &note,
        occurred_on: received_on,
        recorded_at: now,
        actor,
        counterpart: None,
        paired_entry: None,
        reverses: None,
        delivery: Some(delivery),
        report: None,
    };
    let id = sql::insert_entry(tx, &entry).await?;
    Ok(change(key, municipality, &entry, id, expiry))
}

/// Books vials leaving a site's stock: ADMINISTERED or WASTED (from a lot that has not expired)
/// or EXPIRED (from a lot past its date). Refused, with nothing changed, when the site holds no
/// such lot or fewer vials than asked.
#[tracing::instrument(skip_all, fields(site = %w.site))]
pub async fn withdraw(store: &Store, actor: &Actor, w: &Withdrawal) -> DomainResult<StockChange> {
    authz::can_write_stock(actor, &w.site)?;
    let quantity = stock::movement_quantity(w.quantity, "input.quantity")?;
    let note = note(&w.note, "input.note")?;
    let today = today_in_japan();
    if w.use_ == Use::Wasted(WasteReason::LeftoverDoses) {
        crate::doses::check_vial_leftover_write_off(store.db(), &w.site, &w.product, &w.lot).await?;
    }
    let (kind, waste_reason, guard) = match w.use_ {
        Use::Administered => (EntryKind::Administered, None, ExpiryGuard::Unexpired(today)),
        Use::Wasted(reason) => {
            stock::check_waste(reason, &note)?;
            (EntryKind::Wasted, Some(reason), ExpiryGuard::None)
        }
        Use::Expired => (EntryKind::Expired, None, ExpiryGuard::Expired(today)),
    };
    let key = Key {
        site: &w.site,
        product: &w.product,
        lot: &w.lot,
    };
    let effect = Effect::of(kind, quantity).ok_or_else(|| DomainError::invalid("input.quantity", "too large"))?;
    let label = actor.label();
    let mut entry = NewEntry {
        key,
        kind,
        quantity: effect.on_hand,
        balance_after: Vials::ZERO,
        waste_reason,
        note: &note,
        occurred_on: today,
        recorded_at: Utc::now(),
        actor: &label,
        counterpart: None,
        paired_entry: None,
        reverses: None,
        delivery: None,
        report: None,
    };
    if store.backend() == DbBackend::Postgres {
        // The hot path (every dose): one statement, shared with whatever other withdrawals
        // are waiting at the same moment; see `combine`.
        let request = combine::Request {
            site: w.site,
            product: w.product.clone(),
            lot: w.lot.clone(),
            kind,
            effect,
            guard,
            waste_reason,
            note: note.clone(),
            occurred_on: today,
            recorded_at: entry.recorded_at,
            actor: label.clone(),
        };
        return match store.withdrawals().withdraw(store.db(), request).await? {
            Some((id, moved, municipality)) => {
                let municipality = municipality
                    .parse()
                    .map_err(|e| DomainError::Corrupt(format!("site {} municipality: {e}", w.site)))?;
                entry.balance_after = moved.on_hand;
                Ok(change(key, municipality, &entry, id, moved.expiry_date))
            }
            None => Err(refusal(store.db(), key, quantity.get(), guard).await),
        };
    }
    // SQLite: the same statements in one transaction under the writer lock (it has no
    // data-modifying WITH).
    let municipality = site_municipality(store.db(), &w.site).await?;
    let tx = store.write().await?;
    entry.recorded_at = Utc::now();
    // The expiry date is only needed to create a row, which an outflow never does.
    let Some(moved) = sql::move_balance(&*tx, key, effect, today, guard, entry.recorded_at).await? else {
        return Err(refusal(&*tx, key, quantity.get(), guard).await);
    };
    entry.balance_after = moved.on_hand;
    let id = sql::insert_entry(&*tx, &entry).await?;
    tx.commit().await?;
    Ok(change(key, municipality, &entry, id, moved.expiry_date))
}

/// A base site passes vials to one of its satellites: TRANSFERRED_OUT at the base and
/// TRANSFERRED_IN at the satellite, both in one transaction. Returns (out, in).
#[tracing::instrument(skip_all, fields(from = %t.from, to = %t.to))]
pub async fn transfer(store: &Store, actor: &Actor, t: &Transfer) -> DomainResult<(StockChange, StockChange)> {
    authz::can_write_stock(actor, &t.from)?;
    let quantity = stock::movement_quantity(t.quantity, "input.quantity")?;
    let note = note(&t.note, "input.note")?;
    let today = today_in_japan();
    let from = load_site(store.db(), &t.from)
        .await?
        .ok_or_else(|| DomainError::not_found("site", t.from))?;
    let to = load_site(store.db(), &t.to)
        .await?
        .ok_or_else(|| DomainError::invalid("input.to", "no such site"))?;
    let out_key = Key {
        site: &t.from,
        product: &t.product,
        lot: &t.lot,
    };
    let in_key = Key { site: &t.to, ..out_key };
    stock::check_transfer_parties(&party(&from), &party(&to), &t.product)?;
    let expiry = match sql::balance_of(store.db(), out_key, false).await? {
        Some(b) => b.expiry_date,
        None => return Err(refusal(store.db(), out_key, quantity.get(), ExpiryGuard::None).await),
    };
    stock::check_transfer(&party(&from), &party(&to), &t.product, expiry, today)?;
    let out = Effect::of(EntryKind::TransferredOut, quantity)
        .ok_or_else(|| DomainError::invalid("input.quantity", "too large"))?;
    let inflow = Effect::of(EntryKind::TransferredIn, quantity)
        .ok_or_else(|| DomainError::invalid("input.quantity", "too large"))?;
    let guard = ExpiryGuard::Unexpired(today);
    let tx = store.write().await?;
    // Taken once the writer lock is held, so it is the moment of recording, not of queueing.
    let now = Utc::now();
    // Rows in site-code order (see the module comment).
    let (out_moved, in_moved) = if t.from < t.to {
        let Some(o) = sql::move_balance(&*tx, out_key, out, expiry, guard, now).await? else {
            return Err(refusal(&*tx, out_key, quantity.get(), guard).await);
        };
        let i = sql::move_balance(&*tx, in_key, inflow, expiry, ExpiryGuard::None, now).await?;
        (o, i)
    } else {
        let i = sql::move_balance(&*tx, in_key, inflow, expiry, ExpiryGuard::None, now).await?;
        let Some(o) = sql::move_balance(&*tx, out_key, out, expiry, guard, now).await? else {
            return Err(refusal(&*tx, out_key, quantity.get(), guard).await);
        };
        (o, i)
    };
    let in_moved = in_moved.ok_or_else(|| DomainError::Corrupt("an inflow changed no balance".into()))?;
    let label = actor.label();
    let out_entry = NewEntry {
        key: out_key,
        kind: EntryKind::TransferredOut,
        quantity: out.on_hand,
        balance_after: out_moved.on_hand,
        waste_reason: None,
        note: &note,
        occurred_on: today,
        recorded_at: now,
        actor: &label,
        counterpart: Some(&t.to),
        paired_entry: None,
        reverses: None,
        delivery: None,
        report: None,
    };
    let out_id = sql::insert_entry(&*tx, &out_entry).await?;
    let in_entry = NewEntry {
        key: in_key,
        kind: EntryKind::TransferredIn,
        quantity: inflow.on_hand,
        balance_after: in_moved.on_hand,
        counterpart: Some(&t.from),
        paired_entry: Some(out_id),
        ..out_entry.clone()
    };
    let in_id = sql::insert_entry(&*tx, &in_entry).await?;
    tx.commit().await?;
    Ok((
        change(out_key, from.details.municipality, &out_entry, out_id, expiry),
        change(in_key, to.details.municipality, &in_entry, in_id, expiry),
    ))
}

fn party(s: &crate::site::Site) -> TransferParty<'_> {
    TransferParty {
        code: &s.code,
        cold_chain: &s.details.cold_chain,
        status: s.status,
        products: &s.details.products,
    }
}

fn facts(m: &stock_entry::Model, reversed_by: Option<i64>) -> DomainResult<ReversalFacts> {
    Ok(ReversalFacts {
        id: m.id,
        kind: m
            .kind
            .parse()
            .map_err(|e| DomainError::Corrupt(format!("entry {}: {e}", m.id)))?,
        quantity: m.quantity,
        delivery: m.delivery_id,
        reversed_by,
    })
}

async fn reversal_of<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Option<i64>> {
    Ok(stock_entry::Entity::find()
        .select_only()
        .column(stock_entry::Column::Id)
        .filter(stock_entry::Column::ReversesEntryId.eq(id))
        .into_tuple::<i64>()
        .one(db)
        .await?)
}

/// Cancels an earlier entry of `site` with a REVERSED entry (and, for a transfer, the
/// satellite's side too, in the same transaction). `reason` is required. Refused when the entry
/// is itself a reversal, was already reversed, is the satellite's side of a transfer, or when
/// undoing it would take stock below zero.
#[tracing::instrument(skip_all, fields(site = %site, entry = entry_id))]
pub async fn reverse(
    store: &Store,
    actor: &Actor,
    site: &SiteCode,
    entry_id: i64,
    reason: &str,
) -> DomainResult<Vec<StockChange>> {
    authz::can_write_stock(actor, site)?;
    let reason = bounded_text(reason, 1, MAX_NOTE, "reason")?;
    let today = today_in_japan();
    let tx = store.write().await?;
    // Taken once the writer lock is held, so it is the moment of recording, not of queueing.
    let now = Utc::now();
    let original = stock_entry::Entity::find_by_id(entry_id)
        .filter(stock_entry::Column::SiteCode.eq(site.as_str()))
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("stock entry", entry_id))?;
    crate::doses::check_entry_reversal(&*tx, entry_id).await?;
    let effect = check_reversal(&facts(&original, reversal_of(&*tx, entry_id).await?)?)?;
    let mut targets = vec![(original, effect)];
    if targets[0].0.kind == EntryKind::TransferredOut.as_str() {
        let paired = stock_entry::Entity::find()
            .filter(stock_entry::Column::PairedEntryId.eq(entry_id))
            .one(&*tx)
            .await?
            .ok_or_else(|| DomainError::Corrupt(format!("transfer entry {entry_id} has no TRANSFERRED_IN side")))?;
        let f = facts(&paired, reversal_of(&*tx, paired.id).await?)?;
        if let Some(by) = f.reversed_by {
            return Err(DomainError::Conflict(format!(
                "entry {} is already reversed by entry {by}",
                paired.id
            )));
        }
        let e = Effect::reversal(f.kind, f.quantity)
            .ok_or_else(|| DomainError::Corrupt("transfer side without counter".into()))?;
        targets.push((paired, e));
    }
    // Parse the keys once; move the rows in site-code order.
    let mut parsed = Vec::with_capacity(targets.len());
    for (m, e) in targets {
        let corrupt = |x: crate::codes::CodeError| DomainError::Corrupt(format!("entry {}: {x}", m.id));
        let site: SiteCode = m.site_code.parse().map_err(corrupt)?;
        let product: ProductCode = m.product_code.parse().map_err(corrupt)?;
        let lot: LotNumber = m.lot_number.parse().map_err(corrupt)?;
        let counterpart: Option<SiteCode> = m
            .counterpart_site
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(corrupt)?;
        parsed.push((m, e, site, product, lot, counterpart));
    }
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by(|a, b| parsed[*a].2.cmp(&parsed[*b].2));
    let mut moved = vec![None; parsed.len()];
    for i in order {
        let (m, e, site, product, lot, _) = &parsed[i];
        let key = Key { site, product, lot };
        let expiry = sql::lot_expiry(&*tx, product, lot)
            .await?
            .ok_or_else(|| DomainError::Corrupt(format!("entry {} names an unknown lot", m.id)))?;
        match sql::move_balance(&*tx, key, *e, expiry, ExpiryGuard::None, now).await? {
            Some(x) => moved[i] = Some(x),
            None => {
                let err = refusal(&*tx, key, e.on_hand.unsigned_abs(), ExpiryGuard::None).await;
                return Err(match err {
                    DomainError::Conflict(msg) => {
                        DomainError::Conflict(format!("cannot reverse entry {}: {msg}", m.id))
                    }
                    other => other,
                });
            }
        }
    }
    let label = actor.label();
    let mut changes = Vec::with_capacity(parsed.len());
    let mut first_id = None;
    for (i, (m, e, site, product, lot, counterpart)) in parsed.iter().enumerate() {
        let key = Key { site, product, lot };
        let x = moved[i].ok_or_else(|| DomainError::Corrupt("unmoved reversal".into()))?;
        let original_kind: EntryKind = m
            .kind
            .parse()
            .map_err(|err| DomainError::Corrupt(format!("entry {}: {err}", m.id)))?;
        let entry = NewEntry {
            key,
            kind: EntryKind::Reversed,
            quantity: e.on_hand,
            balance_after: x.on_hand,
            waste_reason: None,
            note: &reason,
            occurred_on: today,
            recorded_at: now,
            actor: &label,
            counterpart: counterpart.as_ref(),
            paired_entry: first_id,
            reverses: Some((m.id, original_kind)),
            delivery: None,
            report: None,
        };
        let id = match sql::insert_entry(&*tx, &entry).await {
            Err(DomainError::Database(db))
                if db
                    .sql_err()
                    .is_some_and(|s| matches!(s, sea_orm::SqlErr::UniqueConstraintViolation(_))) =>
            {
                return Err(DomainError::Conflict(format!("entry {} is already reversed", m.id)));
            }
            other => other?,
        };
        first_id.get_or_insert(id);
        let municipality = site_municipality(&*tx, site).await?;
        changes.push(change(key, municipality, &entry, id, x.expiry_date));
    }
    tx.commit().await?;
    Ok(changes)
}

/// Records a physical count. For every counted lot whose count differs from the ledger, an
/// ADJUSTED entry books the difference with the report's (or the line's) reason. Lots not listed
/// are left as they are. Returns the stored report and the adjustments.
#[tracing::instrument(skip_all, fields(site = %r.site, lines = r.lines.len()))]
pub async fn report(store: &Store, actor: &Actor, r: &ReportDraft) -> DomainResult<(StockReport, Vec<StockChange>)> {
    authz::can_write_stock(actor, &r.site)?;
    let reason = bounded_text(&r.reason, 1, MAX_NOTE, "input.reason")?;
    if r.lines.is_empty() {
        return Err(DomainError::invalid("input.lines", "count at least one lot"));
    }
    if r.lines.len() > MAX_REPORT_LINES {
        return Err(DomainError::invalid(
            "input.lines",
            format!("at most {MAX_REPORT_LINES} lots per report"),
        ));
    }
    let today = today_in_japan();
    let counted_on = r.counted_on.unwrap_or(today);
    if counted_on > today {
        return Err(DomainError::invalid("input.countedOn", "must not be in the future"));
    }
    let mut lines = Vec::with_capacity(r.lines.len());
    for (i, l) in r.lines.iter().enumerate() {
        if l.counted.get() > stock::MAX_ENTRY_VIALS {
            return Err(DomainError::invalid(
                format!("input.lines[{i}].counted"),
                format!("must be at most {} vials", stock::MAX_ENTRY_VIALS),
            ));
        }
        let own = match &l.reason {
            Some(x) if !x.trim().is_empty() => bounded_text(x, 1, MAX_NOTE, &format!("input.lines[{i}].reason"))?,
            _ => reason.clone(),
        };
        lines.push((i, l, own));
    }
    lines.sort_by(|a, b| (&a.1.product, &a.1.lot).cmp(&(&b.1.product, &b.1.lot)));
    if let Some(w) = lines
        .windows(2)
        .find(|w| w[0].1.product == w[1].1.product && w[0].1.lot == w[1].1.lot)
    {
        return Err(DomainError::invalid(
            format!("input.lines[{}]", w[1].0),
            format!("lot {} of {} is listed twice", w[1].1.lot, w[1].1.product),
        ));
    }
    let municipality = site_municipality(store.db(), &r.site).await?;
    let label = actor.label();
    let tx = store.write().await?;
    // Taken once the writer lock is held, so it is the moment of recording, not of queueing.
    let now = Utc::now();
    let report_id = query::insert_report(&*tx, &r.site, counted_on, &reason, &label, now).await?;
    let mut changes = Vec::new();
    let mut stored = Vec::with_capacity(lines.len());
    for (i, l, line_reason) in &lines {
        let key = Key {
            site: &r.site,
            product: &l.product,
            lot: &l.lot,
        };
        let Some(expiry) = sql::lot_expiry(&*tx, &l.product, &l.lot).await? else {
            return Err(DomainError::invalid(
                format!("input.lines[{i}].lot"),
                format!("no lot {} of {} is known", l.lot, l.product),
            ));
        };
        if !l.counted.is_zero() {
            sql::ensure_balance_row(&*tx, key, expiry, now).await?;
        }
        let ledger = sql::balance_of(&*tx, key, true)
            .await?
            .map_or(Vials::ZERO, |b| b.on_hand);
        let mut entry_id = None;
        if let Some(effect) = Effect::adjustment(ledger, l.counted) {
            let moved = sql::move_balance(&*tx, key, effect, expiry, ExpiryGuard::None, now)
                .await?
                .ok_or_else(|| DomainError::Corrupt("a locked balance refused its own count".into()))?;
            let entry = NewEntry {
                key,
                kind: EntryKind::Adjusted,
                quantity: effect.on_hand,
                balance_after: moved.on_hand,
                waste_reason: None,
                note: line_reason,
                occurred_on: counted_on,
                recorded_at: now,
                actor: &label,
                counterpart: None,
                paired_entry: None,
                reverses: None,
                delivery: None,
                report: Some(report_id),
            };
            let id = sql::insert_entry(&*tx, &entry).await?;
            entry_id = Some(id);
            changes.push(change(key, municipality, &entry, id, expiry));
        }
        let line = StockReportLine {
            product: l.product.clone(),
            lot: l.lot.clone(),
            expiry_date: expiry,
            counted: l.counted,
            ledger_before: ledger,
            difference: i64::try_from(l.counted.get()).unwrap_or(i64::MAX)
                - i64::try_from(ledger.get()).unwrap_or(i64::MAX),
            reason: line_reason.clone(),
            adjustment_entry: entry_id,
        };
        query::insert_report_line(&*tx, report_id, &line).await?;
        stored.push(line);
    }
    tx.commit().await?;
    let report = StockReport {
        id: report_id,
        site: r.site,
        municipality,
        counted_on,
        reason,
        actor: label,
        recorded_at: now,
        lines: stored,
    };
    Ok((report, changes))
}
