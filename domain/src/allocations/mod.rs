//! The allocation service: rounds and their supply (❶), target populations, requests (希望量),
//! the allocations of each level with their lines (❷ ❸ ❹), and the orders (発注指示) a
//! municipality's confirmation creates. Every call takes the acting [`Actor`] and applies the
//! rules of [`crate::authz`]; arithmetic and eligibility are the pure functions of
//! [`crate::allocation`] and [`crate::order`].
//!
//! Concurrency: every change to an allocation's lines or status first locks its row
//! (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the store's writer lock already serialises
//! writers) and checks the invariants under that lock, so two concurrent edits can never
//! together hand out more than was received, and a level is confirmed (and its orders written)
//! exactly once.
//!
//! Must not: know about GraphQL or HTTP, or return storage rows to callers.

mod edit;
mod orders;
mod rows;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Value};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

pub use edit::{LineEdit, ProposeOptions, confirm, propose, set_lines};
pub use orders::{BulkConfirmReport, OrderFilter, OrderPage, confirm_all_municipalities, order, orders, problems};
pub use rows::StoredProposal;

use crate::allocation::{
    self, AllocationOwner, AllocationRequest, AllocationStatus, ChildCode, Level, LineReason, MAX_POPULATION, Round,
};
use crate::authz::{self, Actor, AllocationAccess, RequestScope};
use crate::codes::{MunicipalityCode, PrefectureCode, ProductCode};
use crate::entities::target_population;
use crate::entities::{allocation as allocation_e, allocation_line, allocation_request, municipality, round, site};
use crate::error::{DomainError, DomainResult};
use crate::product::{self, ProductKind};
use crate::quantity::Boxes;
use crate::site::SiteStatus;
use crate::store::Store;
use rows::{boxes, stored};

/// One level's allocation of a round: what its owner received and how it hands it down.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub id: i32,
    pub round: i32,
    pub owner: AllocationOwner,
    pub status: AllocationStatus,
    pub received: Boxes,
    /// Σ of all lines (also when the reader sees only its own line).
    pub allocated: Boxes,
    /// Incremented on every change; pass it back to refuse acting on a stale view.
    pub version: i32,
    pub proposal: Option<StoredProposal>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// In child-code order; only the reader's own line when it sees a parent's allocation.
    pub lines: Vec<AllocationLine>,
    /// Whether `lines` are all of them.
    pub lines_complete: bool,
}

impl Allocation {
    pub fn level(&self) -> Level {
        self.owner.level()
    }

    /// Boxes received but not handed to any child.
    pub fn unallocated(&self) -> Boxes {
        self.received.checked_sub(self.allocated).unwrap_or(Boxes::ZERO)
    }
}

/// One child's line: what it gets, what the last proposal suggested and why, and who changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationLine {
    pub child: ChildCode,
    pub boxes: Boxes,
    pub proposed: Option<Boxes>,
    pub reason: Option<LineReason>,
    pub edited_by: Option<String>,
    pub edited_at: Option<DateTime<Utc>>,
}

/// A round to create.
#[derive(Debug, Clone)]
pub struct NewRound {
    pub product: ProductCode,
    pub number: i32,
    pub starts_on: chrono::NaiveDate,
    pub supply: Option<Boxes>,
}

fn not_received(owner: &AllocationOwner, round: i32) -> DomainError {
    let above = owner
        .parent()
        .map_or_else(|| "the level above".to_owned(), |p| p.to_string());
    DomainError::Conflict(format!(
        "{owner} has received nothing to allocate in round {round} yet: {above} has not confirmed its allocation"
    ))
}

fn confirmed_already(owner: &AllocationOwner, round: i32) -> DomainError {
    DomainError::Conflict(format!(
        "the allocation of {owner} in round {round} is confirmed and can no longer change"
    ))
}

async fn round_row<C: ConnectionTrait>(db: &C, id: i32) -> DomainResult<round::Model> {
    round::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::not_found("round", id))
}

/// The header row of an allocation, locked for the rest of the transaction on PostgreSQL.
async fn lock_header<C: ConnectionTrait>(
    db: &C,
    round: i32,
    owner: &AllocationOwner,
) -> DomainResult<Option<allocation_e::Model>> {
    Ok(allocation_e::Entity::find()
        .filter(allocation_e::Column::RoundId.eq(round))
        .filter(allocation_e::Column::OwnerCode.eq(owner.key()))
        .lock_exclusive()
        .one(db)
        .await?)
}

async fn header<C: ConnectionTrait>(
    db: &C,
    round: i32,
    owner: &AllocationOwner,
) -> DomainResult<Option<allocation_e::Model>> {
    Ok(allocation_e::Entity::find()
        .filter(allocation_e::Column::RoundId.eq(round))
        .filter(allocation_e::Column::OwnerCode.eq(owner.key()))
        .one(db)
        .await?)
}

async fn rounds_from<C: ConnectionTrait>(db: &C, models: Vec<round::Model>) -> DomainResult<Vec<Round>> {
    let ids: Vec<i32> = models.iter().map(|m| m.id).collect();
    let national: HashMap<i32, allocation_e::Model> = allocation_e::Entity::find()
        .filter(allocation_e::Column::RoundId.is_in(ids))
        .filter(allocation_e::Column::OwnerCode.eq(""))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.round_id, a))
        .collect();
    models
        .into_iter()
        .map(|m| {
            let n = national
                .get(&m.id)
                .ok_or_else(|| rows::corrupt("round", m.id, "no national allocation"))?;
            let supply = boxes(n.received, "allocation", n.id)?;
            let status = rows::status_of(n)?;
            rows::round_from_model(m, supply, status)
        })
        .collect()
}

pub(crate) async fn load_round<C: ConnectionTrait>(db: &C, id: i32) -> DomainResult<Round> {
    let m = round_row(db, id).await?;
    rounds_from(db, vec![m])
        .await?
        .pop()
        .ok_or_else(|| DomainError::not_found("round", id))
}

/// Rounds, newest first, optionally of one product (readable by every signed-in caller).
pub async fn rounds(store: &Store, product: Option<&ProductCode>) -> DomainResult<Vec<Round>> {
    let mut q = round::Entity::find()
        .order_by_desc(round::Column::StartsOn)
        .order_by_asc(round::Column::ProductCode);
    if let Some(p) = product {
        q = q.filter(round::Column::ProductCode.eq(p.as_str()));
    }
    rounds_from(store.db(), q.all(store.db()).await?).await
}

pub async fn round(store: &Store, id: i32) -> DomainResult<Round> {
    load_round(store.db(), id).await
}

/// Creates a round of a vaccine (NATIONAL), with its national allocation, optionally with the
/// supply already known.
pub async fn create_round(store: &Store, actor: &Actor, input: &NewRound) -> DomainResult<Round> {
    authz::can_manage_rounds(actor)?;
    let number = allocation::round_number(input.number)?;
    let ends_on = allocation::round_end(input.starts_on)?;
    let supply = match input.supply {
        Some(s) => allocation::positive_boxes(s, "input.supply")?,
        None => Boxes::ZERO,
    };
    let tx = store.write().await?;
    let product = match product::get_in(&*tx, &input.product).await {
        Err(DomainError::NotFound { .. }) => return Err(DomainError::invalid("input.product", "no such product")),
        other => other?,
    };
    if !matches!(product.kind, ProductKind::Vaccine { .. }) {
        return Err(DomainError::invalid(
            "input.product",
            "is an ancillary; rounds are for vaccines",
        ));
    }
    let exists = round::Entity::find()
        .filter(round::Column::ProductCode.eq(input.product.as_str()))
        .filter(round::Column::Number.eq(number))
        .one(&*tx)
        .await?;
    if exists.is_some() {
        return Err(DomainError::Conflict(format!(
            "round {number} of {} already exists",
            input.product
        )));
    }
    let now = Utc::now();
    let r = round::ActiveModel {
        product_code: Set(input.product.as_str().to_owned()),
        number: Set(number),
        starts_on: Set(input.starts_on),
        ends_on: Set(ends_on),
        created_at: Set(now),
        created_by: Set(actor.label()),
        ..Default::default()
    }
    .insert(&*tx)
    .await?;
    allocation_e::ActiveModel {
        round_id: Set(r.id),
        level: Set(Level::National.as_str().to_owned()),
        owner_code: Set(String::new()),
        parent_id: Set(None),
        received: Set(stored(supply)),
        allocated: Set(0),
        status: Set(AllocationStatus::Draft.as_str().to_owned()),
        version: Set(1),
        proposal: Set(None),
        confirmed_at: Set(None),
        confirmed_by: Set(None),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tx)
    .await?;
    let round = load_round(&*tx, r.id).await?;
    tx.commit().await?;
    tracing::info!(round = round.id, product = %round.product, number, actor = %actor.label(), "round created");
    Ok(round)
}

/// Registers the national supply of a round (❶, NATIONAL). `product` must be the round's: a
/// supply of one vaccine is never booked against a round of another. Allowed until the
/// national allocation is confirmed, and never below what its lines already hand out.
pub async fn set_supply(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    product: &ProductCode,
    supply: Boxes,
) -> DomainResult<Round> {
    authz::can_manage_rounds(actor)?;
    let supply = allocation::positive_boxes(supply, "supply")?;
    let tx = store.write().await?;
    let r = round_row(&*tx, round_id).await?;
    if r.product_code != product.as_str() {
        return Err(DomainError::invalid(
            "product",
            format!("round {round_id} is a round of {}, not of {product}", r.product_code),
        ));
    }
    let owner = AllocationOwner::National;
    let h = lock_header(&*tx, round_id, &owner)
        .await?
        .ok_or_else(|| rows::corrupt("round", round_id, "no national allocation"))?;
    if rows::status_of(&h)? == AllocationStatus::Confirmed {
        return Err(confirmed_already(&owner, round_id));
    }
    let allocated = boxes(h.allocated, "allocation", h.id)?;
    if supply < allocated {
        return Err(DomainError::invalid(
            "supply",
            format!(
                "the national lines already hand out {} boxes; lower them before the supply",
                allocated.get()
            ),
        ));
    }
    allocation_e::Entity::update_many()
        .col_expr(allocation_e::Column::Received, Expr::value(stored(supply)))
        .col_expr(
            allocation_e::Column::Version,
            Expr::col(allocation_e::Column::Version).add(1),
        )
        .col_expr(allocation_e::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(allocation_e::Column::Id.eq(h.id))
        .exec(&*tx)
        .await?;
    let round = load_round(&*tx, round_id).await?;
    tx.commit().await?;
    tracing::info!(round = round_id, supply = supply.get(), actor = %actor.label(), "national supply registered");
    Ok(round)
}

/// A municipality's target population (the weight of the base share).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPopulation {
    pub municipality: MunicipalityCode,
    pub population: u64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// Imports target populations from CSV text with a header naming `municipality_code` and
/// `population` (other columns are ignored). All or nothing: the first bad row is reported
/// with its line, and nothing is stored. NATIONAL for any municipality, a PREFECTURE for its
/// own. Returns how many municipalities were set.
pub async fn import_target_population(store: &Store, actor: &Actor, csv_text: &str) -> DomainResult<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| DomainError::invalid("csv", format!("unreadable header: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DomainError::invalid("csv", format!("the header has no {name} column")))
    };
    let (mc, pc) = (col("municipality_code")?, col("population")?);
    let mut rows: Vec<(MunicipalityCode, u64)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let bad =
            |column: &str, reason: String| DomainError::invalid("csv", format!("line {line}, {column}: {reason}"));
        let r = record.map_err(|e| bad("row", e.to_string()))?;
        let m: MunicipalityCode = r
            .get(mc)
            .unwrap_or("")
            .parse()
            .map_err(|e| bad("municipality_code", format!("{e}")))?;
        if m.is_prefecture_level() {
            return Err(bad("municipality_code", "is a prefecture's code".into()));
        }
        let population: u64 = r
            .get(pc)
            .unwrap_or("")
            .parse()
            .ok()
            .filter(|p| *p <= MAX_POPULATION)
            .ok_or_else(|| {
                bad(
                    "population",
                    format!("must be a whole number from 0 to {MAX_POPULATION}"),
                )
            })?;
        if !seen.insert(m) {
            return Err(bad("municipality_code", "appears twice".into()));
        }
        authz::can_import_target_population(actor, &m)
            .map_err(|d| DomainError::Forbidden(format!("csv line {line}: {}", d.0)))?;
        rows.push((m, population));
    }
    if rows.is_empty() {
        return Err(DomainError::invalid("csv", "no rows"));
    }
    let tx = store.write().await?;
    let codes: Vec<String> = rows.iter().map(|(m, _)| m.as_str().to_owned()).collect();
    let mut known = std::collections::HashSet::new();
    for chunk in crate::bulk::in_chunks(&codes) {
        for m in municipality::Entity::find()
            .filter(municipality::Column::Code.is_in(chunk.to_vec()))
            .all(&*tx)
            .await?
        {
            known.insert(m.code);
        }
    }
    if let Some((i, (m, _))) = rows.iter().enumerate().find(|(_, (m, _))| !known.contains(m.as_str())) {
        return Err(DomainError::invalid(
            "csv",
            format!("line {}, municipality_code: no such municipality ({m})", i + 2),
        ));
    }
    let now = Utc::now();
    let label = actor.label();
    let n = rows.len() as u64;
    let values = rows
        .into_iter()
        .map(|(m, p)| -> Vec<Value> {
            vec![
                m.as_str().to_owned().into(),
                i64::try_from(p).unwrap_or(i64::MAX).into(),
                now.into(),
                label.clone().into(),
            ]
        })
        .collect();
    crate::bulk::insert(
        &*tx,
        "target_populations",
        &["municipality_code", "population", "updated_at", "updated_by"],
        values,
        Some(
            OnConflict::column(target_population::Column::MunicipalityCode)
                .update_columns([
                    target_population::Column::Population,
                    target_population::Column::UpdatedAt,
                    target_population::Column::UpdatedBy,
                ])
                .to_owned(),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(municipalities = n, actor = %actor.label(), "target populations imported");
    Ok(n)
}

/// Target populations (public statistics), optionally of one prefecture, by municipality code.
pub async fn target_populations(
    store: &Store,
    prefecture: Option<PrefectureCode>,
) -> DomainResult<Vec<TargetPopulation>> {
    let mut q = target_population::Entity::find().order_by_asc(target_population::Column::MunicipalityCode);
    if let Some(p) = prefecture {
        q = q.filter(target_population::Column::MunicipalityCode.starts_with(p.as_str()));
    }
    q.all(store.db())
        .await?
        .into_iter()
        .map(|m| {
            Ok(TargetPopulation {
                municipality: m
                    .municipality_code
                    .parse()
                    .map_err(|e| rows::corrupt("target population", &m.municipality_code, e))?,
                population: u64::try_from(m.population)
                    .map_err(|_| rows::corrupt("target population", &m.municipality_code, "negative"))?,
                updated_at: m.updated_at,
                updated_by: m.updated_by,
            })
        })
        .collect()
}

/// Submits (or changes) the caller's own request for a round: a prefecture to NATIONAL, a
/// municipality to its prefecture, a site to its municipality. Closed once the allocation
/// that would use it is confirmed.
pub async fn submit_request(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    boxes_wanted: Boxes,
    note: &str,
) -> DomainResult<AllocationRequest> {
    let requester = authz::requester(actor)?;
    let boxes_wanted = allocation::positive_boxes(boxes_wanted, "boxes")?;
    let note = crate::site::bounded_text(note, 0, 500, "note")?;
    let tx = store.write().await?;
    round_row(&*tx, round_id).await?;
    let (prefecture, municipality, parent) = match requester {
        ChildCode::Prefecture(p) => (p, None, AllocationOwner::National),
        ChildCode::Municipality(m) => (m.prefecture(), Some(m), AllocationOwner::Prefecture(m.prefecture())),
        ChildCode::Site(s) => {
            let row = site::Entity::find_by_id(s.as_str())
                .one(&*tx)
                .await?
                .ok_or_else(|| DomainError::not_found("site", s))?;
            if row.status != SiteStatus::Active.as_str() {
                return Err(DomainError::Conflict(format!("site {s} has withdrawn")));
            }
            let m: MunicipalityCode = row.municipality_code.parse().map_err(|e| rows::corrupt("site", s, e))?;
            (m.prefecture(), Some(m), AllocationOwner::Municipality(m))
        }
    };
    // Share-lock the allocation that will read the request, so a confirmation cannot slip in
    // between this check and the write.
    let parent_header = allocation_e::Entity::find()
        .filter(allocation_e::Column::RoundId.eq(round_id))
        .filter(allocation_e::Column::OwnerCode.eq(parent.key()))
        .lock_shared()
        .one(&*tx)
        .await?;
    if let Some(h) = &parent_header
        && rows::status_of(h)? == AllocationStatus::Confirmed
    {
        return Err(DomainError::Conflict(format!(
            "requests for round {round_id} are closed: {parent} has confirmed its allocation"
        )));
    }
    let now = Utc::now();
    let level = requester.level();
    crate::bulk::insert(
        &*tx,
        "allocation_requests",
        &[
            "round_id",
            "requester_code",
            "level",
            "prefecture_code",
            "municipality_code",
            "boxes",
            "note",
            "submitted_by",
            "submitted_at",
            "updated_at",
        ],
        vec![vec![
            round_id.into(),
            requester.as_str().to_owned().into(),
            level.as_str().into(),
            prefecture.as_str().into(),
            municipality.map(|m| m.as_str().to_owned()).into(),
            stored(boxes_wanted).into(),
            note.clone().into(),
            actor.label().into(),
            now.into(),
            now.into(),
        ]],
        Some(
            OnConflict::columns([
                allocation_request::Column::RoundId,
                allocation_request::Column::RequesterCode,
            ])
            .update_columns([
                allocation_request::Column::Boxes,
                allocation_request::Column::Note,
                allocation_request::Column::SubmittedBy,
                allocation_request::Column::UpdatedAt,
            ])
            .to_owned(),
        ),
    )
    .await?;
    let row = allocation_request::Entity::find_by_id((round_id, requester.as_str().to_owned()))
        .one(&*tx)
        .await?
        .ok_or_else(|| rows::corrupt("request", requester, "missing after write"))?;
    tx.commit().await?;
    rows::request_from_model(row)
}

/// Requests for a round the caller may see: its own and those of the levels below it in its
/// area (NATIONAL sees all), by requester code.
pub async fn requests(store: &Store, actor: &Actor, round_id: i32) -> DomainResult<Vec<AllocationRequest>> {
    let scope = authz::request_read_scope(actor)?;
    round_row(store.db(), round_id).await?;
    let mut q = allocation_request::Entity::find()
        .filter(allocation_request::Column::RoundId.eq(round_id))
        .order_by_asc(allocation_request::Column::RequesterCode);
    q = match &scope {
        RequestScope::All => q,
        RequestScope::Prefecture(p) => q.filter(allocation_request::Column::PrefectureCode.eq(p.as_str())),
        RequestScope::Municipality(m) => q.filter(allocation_request::Column::MunicipalityCode.eq(m.as_str())),
        RequestScope::Site(s) => q.filter(allocation_request::Column::RequesterCode.eq(s.as_str())),
    };
    q.all(store.db())
        .await?
        .into_iter()
        .map(rows::request_from_model)
        .collect()
}

async fn lines_of<C: ConnectionTrait>(
    db: &C,
    ids: &[i32],
    only: Option<&ChildCode>,
) -> DomainResult<HashMap<i32, Vec<allocation_line::Model>>> {
    let mut out: HashMap<i32, Vec<allocation_line::Model>> = HashMap::new();
    for chunk in crate::bulk::in_chunks(ids) {
        let mut q = allocation_line::Entity::find()
            .filter(allocation_line::Column::AllocationId.is_in(chunk.to_vec()))
            .order_by_asc(allocation_line::Column::AllocationId)
            .order_by_asc(allocation_line::Column::ChildCode);
        if let Some(c) = only {
            q = q.filter(allocation_line::Column::ChildCode.eq(c.as_str()));
        }
        for l in q.all(db).await? {
            out.entry(l.allocation_id).or_default().push(l);
        }
    }
    Ok(out)
}

pub(crate) async fn assemble<C: ConnectionTrait>(
    db: &C,
    header: allocation_e::Model,
    access: &AllocationAccess,
) -> DomainResult<Allocation> {
    let owner = rows::owner_of(&header)?;
    let only = match access {
        AllocationAccess::Full => None,
        AllocationAccess::OwnLine(c) => Some(c),
    };
    let lines = lines_of(db, &[header.id], only)
        .await?
        .remove(&header.id)
        .unwrap_or_default()
        .into_iter()
        .map(|l| rows::line_from_model(owner.level(), l))
        .collect::<DomainResult<Vec<_>>>()?;
    rows::allocation_from_model(header, lines, only.is_none())
}

/// One allocation, as far as the caller may see it (the owner and those above see every line;
/// a child sees its own line). NOT_FOUND until the level above has confirmed (for the national
/// allocation: until the round exists).
pub async fn get(store: &Store, actor: &Actor, round_id: i32, owner: &AllocationOwner) -> DomainResult<Allocation> {
    let access = authz::allocation_access(actor, owner)?;
    round_row(store.db(), round_id).await?;
    let h = header(store.db(), round_id, owner).await?.ok_or_else(|| {
        DomainError::not_found(
            "allocation",
            format!("of {owner} in round {round_id} (the level above has not confirmed yet)"),
        )
    })?;
    assemble(store.db(), h, &access).await
}

/// The allocations of one level in a round that the caller sees in full (NATIONAL: all; a
/// prefecture: its own and its municipalities'; a municipality: its own), optionally within a
/// prefecture, in owner order. `with_lines` false leaves the lines out (for status overviews).
pub async fn list(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    level: Level,
    prefecture: Option<PrefectureCode>,
    with_lines: bool,
) -> DomainResult<Vec<Allocation>> {
    round_row(store.db(), round_id).await?;
    let mut cond = Condition::all()
        .add(allocation_e::Column::RoundId.eq(round_id))
        .add(allocation_e::Column::Level.eq(level.as_str()));
    if let Some(p) = prefecture {
        cond = cond.add(allocation_e::Column::OwnerCode.starts_with(p.as_str()));
    }
    let headers: Vec<allocation_e::Model> = allocation_e::Entity::find()
        .filter(cond)
        .order_by_asc(allocation_e::Column::OwnerCode)
        .all(store.db())
        .await?
        .into_iter()
        .filter(|h| {
            rows::owner_of(h)
                .ok()
                .is_some_and(|o| authz::allocation_access(actor, &o) == Ok(AllocationAccess::Full))
        })
        .collect();
    let mut lines = if with_lines {
        let ids: Vec<i32> = headers.iter().map(|h| h.id).collect();
        lines_of(store.db(), &ids, None).await?
    } else {
        HashMap::new()
    };
    headers
        .into_iter()
        .map(|h| {
            let level = rows::owner_of(&h)?.level();
            let ls = lines
                .remove(&h.id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| rows::line_from_model(level, l))
                .collect::<DomainResult<Vec<_>>>()?;
            rows::allocation_from_model(h, ls, with_lines)
        })
        .collect()
}
