//! Proposing, editing and confirming one owner's allocation. Each runs in one transaction that
//! first locks the allocation's row; the invariants (DRAFT only, never more than received,
//! children in the owner's area and eligible) are checked under that lock.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Value};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::rows::{self, StoredProposal, boxes, stored};
use super::{Allocation, assemble, confirmed_already, load_round, lock_header, not_received};
use crate::allocation::{
    self, AllocationOwner, AllocationStatus, ChildCode, Claim, DEFAULT_ADJUSTMENT_PERCENT, Ineligible, Level, Params,
    Round, WeightSource, site_eligibility,
};
use crate::authz::{self, Actor, AllocationAccess};
use crate::codes::{MunicipalityCode, SiteCode};
use crate::entities::target_population;
use crate::entities::{allocation as allocation_e, allocation_line, allocation_request, municipality, site};
use crate::error::{DomainError, DomainResult};
use crate::product::{self, Product};
use crate::quantity::Boxes;
use crate::site::{Site, SiteStatus};
use crate::sites::site_from_model;
use crate::store::Store;

/// How to propose.
#[derive(Debug, Clone, Default)]
pub struct ProposeOptions {
    /// The adjustment share in percent (default 20).
    pub adjustment_percent: Option<u8>,
    /// Cap each child that made a request at its request.
    pub cap_at_request: bool,
    /// A child's code and the most it may get.
    pub caps: Vec<(String, Boxes)>,
}

/// One line to set: a child's code and its boxes (0 takes everything away from it).
#[derive(Debug, Clone)]
pub struct LineEdit {
    pub child: String,
    pub boxes: Boxes,
}

/// The allocation row, locked, and checked to be editable by `actor`.
async fn editable<C: ConnectionTrait>(
    db: &C,
    round_id: i32,
    owner: &AllocationOwner,
    expected_version: Option<i32>,
) -> DomainResult<allocation_e::Model> {
    let h = lock_header(db, round_id, owner)
        .await?
        .ok_or_else(|| not_received(owner, round_id))?;
    if rows::status_of(&h)? == AllocationStatus::Confirmed {
        return Err(confirmed_already(owner, round_id));
    }
    if let Some(v) = expected_version.filter(|v| *v != h.version) {
        return Err(DomainError::Conflict(format!(
            "the allocation of {owner} changed since you read it (your version {v}, now {})",
            h.version
        )));
    }
    Ok(h)
}

async fn product_of<C: ConnectionTrait>(db: &C, round: &Round) -> DomainResult<Product> {
    product::get_in(db, &round.product).await
}

/// Sites of a municipality, by code.
async fn sites_in<C: ConnectionTrait>(db: &C, m: &MunicipalityCode) -> DomainResult<Vec<Site>> {
    site::Entity::find()
        .filter(site::Column::MunicipalityCode.eq(m.as_str()))
        .order_by_asc(site::Column::Code)
        .all(db)
        .await?
        .into_iter()
        .map(site_from_model)
        .collect()
}

/// Requests for the children of `owner` in a round, by requester code.
async fn child_requests<C: ConnectionTrait>(
    db: &C,
    round_id: i32,
    owner: &AllocationOwner,
) -> DomainResult<HashMap<String, Boxes>> {
    let mut q = allocation_request::Entity::find().filter(allocation_request::Column::RoundId.eq(round_id));
    q = match owner {
        AllocationOwner::National => q.filter(allocation_request::Column::Level.eq(Level::Prefecture.as_str())),
        AllocationOwner::Prefecture(p) => q
            .filter(allocation_request::Column::Level.eq(Level::Municipality.as_str()))
            .filter(allocation_request::Column::PrefectureCode.eq(p.as_str())),
        AllocationOwner::Municipality(m) => q
            .filter(allocation_request::Column::Level.eq(Level::Site.as_str()))
            .filter(allocation_request::Column::MunicipalityCode.eq(m.as_str())),
    };
    q.all(db)
        .await?
        .into_iter()
        .map(|r| Ok((r.requester_code.clone(), boxes(r.boxes, "request", &r.requester_code)?)))
        .collect()
}

/// Target population per municipality code.
async fn populations<C: ConnectionTrait>(db: &C) -> DomainResult<HashMap<String, u64>> {
    Ok(target_population::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.municipality_code, u64::try_from(t.population).unwrap_or(0)))
        .collect())
}

async fn municipalities_of<C: ConnectionTrait>(
    db: &C,
    prefecture: crate::codes::PrefectureCode,
) -> DomainResult<Vec<String>> {
    Ok(municipality::Entity::find()
        .filter(municipality::Column::PrefectureCode.eq(prefecture.as_str()))
        .order_by_asc(municipality::Column::Code)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.code)
        .collect())
}

/// The children of an allocation with their weights, requests and eligibility.
async fn claims<C: ConnectionTrait>(
    db: &C,
    round_id: i32,
    owner: &AllocationOwner,
    product: &Product,
) -> DomainResult<(Vec<Claim>, WeightSource)> {
    let requests = child_requests(db, round_id, owner).await?;
    let claim = |code: String, weight: u64, ineligible: Option<Ineligible>| Claim {
        request: requests.get(&code).copied(),
        code,
        weight,
        cap: None,
        ineligible,
    };
    Ok(match owner {
        AllocationOwner::National => {
            let pops = populations(db).await?;
            let mut by_prefecture: BTreeMap<&str, u64> = BTreeMap::new();
            for (m, p) in &pops {
                *by_prefecture.entry(&m[..2]).or_default() += p;
            }
            let claims = crate::codes::PrefectureCode::all()
                .map(|p| {
                    claim(
                        p.as_str().to_owned(),
                        by_prefecture.get(p.as_str()).copied().unwrap_or(0),
                        None,
                    )
                })
                .collect();
            (claims, WeightSource::TargetPopulation)
        }
        AllocationOwner::Prefecture(p) => {
            let pops = populations(db).await?;
            let claims = municipalities_of(db, *p)
                .await?
                .into_iter()
                .map(|m| {
                    let w = pops.get(&m).copied().unwrap_or(0);
                    claim(m, w, None)
                })
                .collect();
            (claims, WeightSource::TargetPopulation)
        }
        AllocationOwner::Municipality(m) => {
            // Sites weigh by their request (past consumption joins once the stock ledger
            // exists); withdrawn sites appear only if they had asked, to show why they get 0.
            let claims = sites_in(db, m)
                .await?
                .into_iter()
                .filter(|s| s.status == SiteStatus::Active || requests.contains_key(s.code.as_str()))
                .map(|s| {
                    let code = s.code.as_str().to_owned();
                    let w = requests.get(&code).map_or(0, |b| b.get());
                    claim(code, w, site_eligibility(product, &s, m).err())
                })
                .collect();
            (claims, WeightSource::Request)
        }
    })
}

const LINE_COLUMNS: [&str; 7] = [
    "allocation_id",
    "child_code",
    "boxes",
    "proposed",
    "reason",
    "edited_by",
    "edited_at",
];

/// Computes a proposal for every child of the owner's allocation and stores it as the lines
/// (replacing the current ones); users may edit lines afterwards, until they confirm.
pub async fn propose(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    owner: &AllocationOwner,
    options: &ProposeOptions,
) -> DomainResult<Allocation> {
    authz::can_edit_allocation(actor, owner)?;
    let level = owner.level();
    let pct = options.adjustment_percent.unwrap_or(DEFAULT_ADJUSTMENT_PERCENT);
    if pct > 100 {
        return Err(DomainError::invalid(
            "options.adjustmentPercent",
            "must be between 0 and 100",
        ));
    }
    let mut caps: HashMap<String, Boxes> = HashMap::new();
    for (i, (child, cap)) in options.caps.iter().enumerate() {
        let field = format!("options.caps[{i}]");
        let c = ChildCode::parse_for(level, child).map_err(|e| DomainError::invalid(format!("{field}.child"), e))?;
        allocation::bounded_boxes(*cap, &format!("{field}.max"))?;
        if caps.insert(c.as_str().to_owned(), *cap).is_some() {
            return Err(DomainError::invalid(format!("{field}.child"), "appears twice"));
        }
    }
    let tx = store.write().await?;
    let round = load_round(&*tx, round_id).await?;
    let h = editable(&*tx, round_id, owner, None).await?;
    let product = product_of(&*tx, &round).await?;
    let (mut claims, source) = claims(&*tx, round_id, owner, &product).await?;
    let known: HashSet<&str> = claims.iter().map(|c| c.code.as_str()).collect();
    if let Some((i, _)) = options
        .caps
        .iter()
        .enumerate()
        .find(|(_, (c, _))| !known.contains(c.as_str()))
    {
        return Err(DomainError::invalid(
            format!("options.caps[{i}].child"),
            format!("is not a child of {owner}"),
        ));
    }
    for c in &mut claims {
        c.cap = caps.get(&c.code).copied();
    }
    let params = Params {
        total: boxes(h.received, "allocation", h.id)?,
        adjustment_percent: pct,
        weight_source: source,
        cap_at_request: options.cap_at_request,
    };
    let proposal = allocation::propose(&params, &claims).map_err(|e| DomainError::invalid("options", e))?;
    let now = Utc::now();
    allocation_line::Entity::delete_many()
        .filter(allocation_line::Column::AllocationId.eq(h.id))
        .exec(&*tx)
        .await?;
    let mut values = Vec::with_capacity(proposal.lines.len());
    for (c, l) in claims.iter().zip(&proposal.lines) {
        let reason = serde_json::to_string(&l.reason).map_err(|e| DomainError::Corrupt(e.to_string()))?;
        values.push(vec![
            Value::from(h.id),
            c.code.clone().into(),
            stored(l.boxes).into(),
            Some(stored(l.boxes)).into(),
            Some(reason).into(),
            Option::<String>::None.into(),
            Option::<chrono::DateTime<Utc>>::None.into(),
        ]);
    }
    crate::bulk::insert(&*tx, "allocation_lines", &LINE_COLUMNS, values, None).await?;
    let stored_proposal = StoredProposal {
        summary: proposal.summary.clone(),
        proposed_at: now,
        proposed_by: actor.label(),
    };
    allocation_e::Entity::update_many()
        .col_expr(
            allocation_e::Column::Allocated,
            Expr::value(stored(proposal.summary.allocated)),
        )
        .col_expr(
            allocation_e::Column::Proposal,
            Expr::value(serde_json::to_string(&stored_proposal).map_err(|e| DomainError::Corrupt(e.to_string()))?),
        )
        .col_expr(
            allocation_e::Column::Version,
            Expr::col(allocation_e::Column::Version).add(1),
        )
        .col_expr(allocation_e::Column::UpdatedAt, Expr::value(now))
        .filter(allocation_e::Column::Id.eq(h.id))
        .exec(&*tx)
        .await?;
    let fresh = lock_header(&*tx, round_id, owner)
        .await?
        .ok_or_else(|| not_received(owner, round_id))?;
    let allocation = assemble(&*tx, fresh, &AllocationAccess::Full).await?;
    tx.commit().await?;
    tracing::info!(round = round_id, owner = %owner, allocated = proposal.summary.allocated.get(), actor = %actor.label(), "allocation proposed");
    Ok(allocation)
}

/// Checks the edited children against the owner's area and, for sites, that they exist, are in
/// the municipality and may receive the product. Returns the parsed children.
async fn check_children<C: ConnectionTrait>(
    db: &C,
    owner: &AllocationOwner,
    product: &Product,
    edits: &[(ChildCode, Boxes)],
) -> DomainResult<()> {
    match owner {
        AllocationOwner::National => Ok(()),
        AllocationOwner::Prefecture(p) => {
            for (i, (c, _)) in edits.iter().enumerate() {
                if !allocation::in_area(owner, c) {
                    return Err(DomainError::Forbidden(format!(
                        "lines[{i}].child: municipality {c} is outside prefecture {p}"
                    )));
                }
            }
            let codes: Vec<String> = edits.iter().map(|(c, _)| c.as_str().to_owned()).collect();
            let known: HashSet<String> = municipality::Entity::find()
                .filter(municipality::Column::Code.is_in(codes))
                .all(db)
                .await?
                .into_iter()
                .map(|m| m.code)
                .collect();
            match edits.iter().enumerate().find(|(_, (c, _))| !known.contains(c.as_str())) {
                Some((i, _)) => Err(DomainError::invalid(
                    format!("lines[{i}].child"),
                    "no such municipality",
                )),
                None => Ok(()),
            }
        }
        AllocationOwner::Municipality(m) => {
            let codes: Vec<String> = edits.iter().map(|(c, _)| c.as_str().to_owned()).collect();
            let sites: HashMap<SiteCode, Site> = site::Entity::find()
                .filter(site::Column::Code.is_in(codes))
                .all(db)
                .await?
                .into_iter()
                .map(|r| site_from_model(r).map(|s| (s.code, s)))
                .collect::<DomainResult<_>>()?;
            for (i, (c, b)) in edits.iter().enumerate() {
                let field = format!("lines[{i}].child");
                let ChildCode::Site(code) = c else {
                    return Err(DomainError::invalid(field, "must be a site code"));
                };
                let Some(s) = sites.get(code) else {
                    return Err(DomainError::invalid(field, format!("no site {code} is registered")));
                };
                if s.details.municipality != *m {
                    return Err(DomainError::Forbidden(format!(
                        "{field}: site {code} is outside municipality {m}"
                    )));
                }
                if b.is_zero() {
                    continue;
                }
                if let Err(why) = site_eligibility(product, s, m) {
                    return Err(DomainError::invalid(field, format!("site {code}: {}", why.explain())));
                }
            }
            Ok(())
        }
    }
}

/// Sets the boxes of some lines by hand (other lines stay). Refused when the lines would hand
/// out more than the owner received, or name a child outside its area, a withdrawn site, or a
/// site that may not receive the product. `expected_version` refuses a stale edit.
pub async fn set_lines(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    owner: &AllocationOwner,
    edits: &[LineEdit],
    expected_version: Option<i32>,
) -> DomainResult<Allocation> {
    authz::can_edit_allocation(actor, owner)?;
    if edits.is_empty() {
        return Err(DomainError::invalid("lines", "give at least one line"));
    }
    let level = owner.level();
    let mut parsed: Vec<(ChildCode, Boxes)> = Vec::with_capacity(edits.len());
    let mut seen = HashSet::new();
    for (i, e) in edits.iter().enumerate() {
        let c =
            ChildCode::parse_for(level, &e.child).map_err(|r| DomainError::invalid(format!("lines[{i}].child"), r))?;
        allocation::bounded_boxes(e.boxes, &format!("lines[{i}].boxes"))?;
        if !seen.insert(c) {
            return Err(DomainError::invalid(format!("lines[{i}].child"), "appears twice"));
        }
        parsed.push((c, e.boxes));
    }
    let tx = store.write().await?;
    let round = load_round(&*tx, round_id).await?;
    let h = editable(&*tx, round_id, owner, expected_version).await?;
    let product = product_of(&*tx, &round).await?;
    check_children(&*tx, owner, &product, &parsed).await?;

    let current: HashMap<String, i64> = allocation_line::Entity::find()
        .filter(allocation_line::Column::AllocationId.eq(h.id))
        .all(&*tx)
        .await?
        .into_iter()
        .map(|l| (l.child_code, l.boxes))
        .collect();
    let edited: HashSet<&str> = parsed.iter().map(|(c, _)| c.as_str()).collect();
    let kept: u128 = current
        .iter()
        .filter(|(c, _)| !edited.contains(c.as_str()))
        .map(|(_, b)| u128::try_from(*b).unwrap_or(0))
        .sum();
    let total = kept + parsed.iter().map(|(_, b)| u128::from(b.get())).sum::<u128>();
    let received = boxes(h.received, "allocation", h.id)?;
    if total > u128::from(received.get()) {
        return Err(DomainError::invalid(
            "lines",
            format!(
                "would hand out {total} boxes, but {owner} received only {} in round {round_id}",
                received.get()
            ),
        ));
    }
    let now = Utc::now();
    let label = actor.label();
    let values = parsed
        .iter()
        .map(|(c, b)| {
            vec![
                Value::from(h.id),
                c.as_str().to_owned().into(),
                stored(*b).into(),
                Option::<i64>::None.into(),
                Option::<String>::None.into(),
                Some(label.clone()).into(),
                Some(now).into(),
            ]
        })
        .collect();
    crate::bulk::insert(
        &*tx,
        "allocation_lines",
        &LINE_COLUMNS,
        values,
        Some(
            OnConflict::columns([
                allocation_line::Column::AllocationId,
                allocation_line::Column::ChildCode,
            ])
            .update_columns([
                allocation_line::Column::Boxes,
                allocation_line::Column::EditedBy,
                allocation_line::Column::EditedAt,
            ])
            .to_owned(),
        ),
    )
    .await?;
    allocation_e::Entity::update_many()
        .col_expr(
            allocation_e::Column::Allocated,
            Expr::value(i64::try_from(total).unwrap_or(i64::MAX)),
        )
        .col_expr(
            allocation_e::Column::Version,
            Expr::col(allocation_e::Column::Version).add(1),
        )
        .col_expr(allocation_e::Column::UpdatedAt, Expr::value(now))
        .filter(allocation_e::Column::Id.eq(h.id))
        .exec(&*tx)
        .await?;
    let fresh = lock_header(&*tx, round_id, owner)
        .await?
        .ok_or_else(|| not_received(owner, round_id))?;
    let allocation = assemble(&*tx, fresh, &AllocationAccess::Full).await?;
    tx.commit().await?;
    tracing::info!(round = round_id, owner = %owner, lines = parsed.len(), actor = %actor.label(), "allocation lines set");
    Ok(allocation)
}

/// Confirms the owner's allocation. Allowed only once the level above has confirmed (before
/// that the owner has received nothing). Confirming hands the boxes down: NATIONAL and a
/// PREFECTURE open a DRAFT allocation for each child with what its line says; a MUNICIPALITY
/// creates one order per site with boxes, each with an outbox entry, in the same transaction —
/// or, if any site cannot be ordered for (no wholesaler, withdrawn, not eligible), nothing at
/// all and a report listing every such site.
pub async fn confirm(
    store: &Store,
    actor: &Actor,
    round_id: i32,
    owner: &AllocationOwner,
    expected_version: Option<i32>,
) -> DomainResult<Allocation> {
    authz::can_edit_allocation(actor, owner)?;
    let tx = store.write().await?;
    let round = load_round(&*tx, round_id).await?;
    let h = editable(&*tx, round_id, owner, expected_version).await?;
    if let Some(parent) = h.parent_id {
        let p = allocation_e::Entity::find_by_id(parent)
            .one(&*tx)
            .await?
            .ok_or_else(|| rows::corrupt("allocation", h.id, "parent missing"))?;
        if rows::status_of(&p)? != AllocationStatus::Confirmed {
            return Err(not_received(owner, round_id));
        }
    }
    let now = Utc::now();
    match owner {
        AllocationOwner::National | AllocationOwner::Prefecture(_) => {
            let children: Vec<String> = match owner {
                AllocationOwner::National => crate::codes::PrefectureCode::all()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
                AllocationOwner::Prefecture(p) => municipalities_of(&*tx, *p).await?,
                AllocationOwner::Municipality(_) => Vec::new(),
            };
            let lines: HashMap<String, i64> = allocation_line::Entity::find()
                .filter(allocation_line::Column::AllocationId.eq(h.id))
                .all(&*tx)
                .await?
                .into_iter()
                .map(|l| (l.child_code, l.boxes))
                .collect();
            let child_level = owner
                .level()
                .child()
                .ok_or_else(|| rows::corrupt("allocation", h.id, "no child level"))?;
            let values = children
                .into_iter()
                .map(|c| {
                    let received = lines.get(&c).copied().unwrap_or(0);
                    vec![
                        Value::from(round_id),
                        child_level.as_str().into(),
                        c.into(),
                        Some(h.id).into(),
                        received.into(),
                        0i64.into(),
                        AllocationStatus::Draft.as_str().into(),
                        1i32.into(),
                        now.into(),
                    ]
                })
                .collect();
            crate::bulk::insert(
                &*tx,
                "allocations",
                &[
                    "round_id",
                    "level",
                    "owner_code",
                    "parent_id",
                    "received",
                    "allocated",
                    "status",
                    "version",
                    "updated_at",
                ],
                values,
                None,
            )
            .await?;
            super::orders::mark_confirmed(&*tx, &[h.id], actor, now).await?;
        }
        AllocationOwner::Municipality(_) => {
            let product = product_of(&*tx, &round).await?;
            super::orders::write_orders(&*tx, actor, &round, &product, vec![h], true, now).await?;
        }
    }
    let fresh = lock_header(&*tx, round_id, owner)
        .await?
        .ok_or_else(|| not_received(owner, round_id))?;
    let allocation = assemble(&*tx, fresh, &AllocationAccess::Full).await?;
    tx.commit().await?;
    tracing::info!(round = round_id, owner = %owner, actor = %actor.label(), "allocation confirmed");
    Ok(allocation)
}
