//! Coupons (接種券): a municipality issues them in batches for a dose series — one batch per
//! run (券種, 回数, when, by whom) covering a list of its persons or all its current residents —
//! and each coupon carries the 18-digit OCR/QR line ([`CouponLine`]) a site scans. Lines are
//! built from the stored coupon numbers, so a line always parses back to its person's
//! municipality and coupon number.
//!
//! Must not: print personal data on a coupon line (it holds codes only), or issue a coupon for
//! a person of another municipality.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{self, Actor};
use crate::codes::{CouponLine, CouponNumber, MunicipalityCode};
use crate::entities::{coupon, coupon_batch, person};
use crate::error::{DomainError, DomainResult};
use crate::store::{Store, fixed};

/// Most persons one batch covers (a large city issues in several batches).
pub const MAX_BATCH: usize = 500_000;

/// Whom a batch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponTargets {
    /// These persons (ids) of the municipality.
    Persons(Vec<i64>),
    /// Every person of the municipality not recorded as moved out.
    AllResidents,
}

/// A batch of issued coupons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponBatch {
    pub id: i64,
    pub municipality: MunicipalityCode,
    pub kind: u8,
    pub dose_number: u8,
    pub coupons: u64,
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
}

/// One coupon of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub person: i64,
    pub coupon: CouponNumber,
    pub line: CouponLine,
}

fn batch_from(m: coupon_batch::Model) -> DomainResult<CouponBatch> {
    let bad = |what: &str| DomainError::Corrupt(format!("coupon batch {}: {what}", m.id));
    Ok(CouponBatch {
        id: m.id,
        municipality: m.municipality_code.parse().map_err(|_| bad("municipality"))?,
        kind: u8::try_from(m.kind).map_err(|_| bad("kind"))?,
        dose_number: u8::try_from(m.dose_number).map_err(|_| bad("dose number"))?,
        coupons: u64::try_from(m.coupons).map_err(|_| bad("count"))?,
        issued_at: m.issued_at,
        issued_by: m.issued_by.clone(),
    })
}

/// Issues a batch: checks 券種 0-9 and 回数 1-9, that every named person is the municipality's
/// (unknown or another municipality's: NOT_FOUND, naming the first), and writes the batch with
/// one coupon line per person in one transaction.
pub async fn issue(
    store: &Store,
    actor: &Actor,
    municipality: &MunicipalityCode,
    kind: u8,
    dose_number: u8,
    targets: CouponTargets,
) -> DomainResult<CouponBatch> {
    authz::can_manage_persons(actor, municipality)?;
    if kind > 9 {
        return Err(DomainError::invalid("input.kind", "the coupon kind (券種) must be 0-9"));
    }
    if !(1..=9).contains(&dose_number) {
        return Err(DomainError::invalid(
            "input.doseNumber",
            "the dose number (回数) must be 1-9",
        ));
    }
    let tx = store.write().await?;
    let base = person::Entity::find()
        .select_only()
        .column(person::Column::Id)
        .column(person::Column::CouponNumber)
        .filter(Expr::col(person::Column::MunicipalityCode).eq(fixed(municipality.as_str())));
    let persons: Vec<(i64, String)> = match &targets {
        CouponTargets::AllResidents => {
            base.filter(person::Column::MovedOutOn.is_null())
                .order_by_asc(person::Column::CouponNumber)
                .into_tuple()
                .all(&*tx)
                .await?
        }
        CouponTargets::Persons(ids) => {
            if ids.is_empty() {
                return Err(DomainError::invalid("input.persons", "name at least one person"));
            }
            if ids.len() > MAX_BATCH {
                return Err(DomainError::invalid(
                    "input.persons",
                    format!("at most {MAX_BATCH} persons per batch"),
                ));
            }
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            if unique.len() != ids.len() {
                return Err(DomainError::invalid("input.persons", "a person is named twice"));
            }
            let mut found: Vec<(i64, String)> = Vec::with_capacity(ids.len());
            for chunk in crate::bulk::in_chunks(&unique) {
                found.extend(
                    base.clone()
                        .filter(person::Column::Id.is_in(chunk.to_vec()))
                        .into_tuple::<(i64, String)>()
                        .all(&*tx)
                        .await?,
                );
            }
            if found.len() != unique.len() {
                let have: std::collections::HashSet<i64> = found.iter().map(|(id, _)| *id).collect();
                let missing = ids.iter().find(|id| !have.contains(id)).copied().unwrap_or_default();
                return Err(DomainError::not_found("person", format!("{missing} in {municipality}")));
            }
            found.sort_by(|a, b| a.1.cmp(&b.1));
            found
        }
    };
    if persons.is_empty() {
        return Err(DomainError::invalid("input", "the batch covers no person"));
    }
    if persons.len() > MAX_BATCH {
        return Err(DomainError::invalid(
            "input",
            format!("at most {MAX_BATCH} persons per batch; issue by list"),
        ));
    }
    let now = Utc::now();
    let batch = coupon_batch::ActiveModel {
        municipality_code: Set(municipality.to_string()),
        kind: Set(i16::from(kind)),
        dose_number: Set(i16::from(dose_number)),
        coupons: Set(i32::try_from(persons.len()).unwrap_or(i32::MAX)),
        issued_at: Set(now),
        issued_by: Set(actor.label()),
        ..Default::default()
    }
    .insert(&*tx)
    .await?;
    let mut rows = Vec::with_capacity(persons.len());
    for (id, number) in &persons {
        let coupon: CouponNumber = number
            .trim()
            .parse()
            .map_err(|_| DomainError::Corrupt(format!("person {id}: bad coupon number")))?;
        let line = CouponLine::new(kind, dose_number, *municipality, coupon)
            .map_err(|e| DomainError::Corrupt(format!("person {id}: coupon line: {e}")))?;
        rows.push(vec![
            batch.id.into(),
            (*id).into(),
            coupon.to_string().into(),
            line.to_string().into(),
        ]);
    }
    crate::bulk::insert(
        &*tx,
        "coupons",
        &["batch_id", "person_id", "coupon_number", "line"],
        rows,
        None,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(batch = batch.id, municipality = %municipality, coupons = persons.len(), actor = %actor.label(), "coupons issued");
    batch_from(batch)
}

async fn batch_in_scope(store: &Store, actor: &Actor, id: i64) -> DomainResult<CouponBatch> {
    let m = coupon_batch::Entity::find_by_id(id)
        .one(store.db())
        .await?
        .ok_or_else(|| DomainError::not_found("coupon batch", id))?;
    let b = batch_from(m)?;
    if authz::can_manage_persons(actor, &b.municipality).is_err() {
        return Err(DomainError::not_found("coupon batch", id));
    }
    Ok(b)
}

/// One batch (its municipality only).
pub async fn batch(store: &Store, actor: &Actor, id: i64) -> DomainResult<CouponBatch> {
    batch_in_scope(store, actor, id).await
}

/// The municipality's batches, newest first.
pub async fn batches(store: &Store, actor: &Actor, municipality: &MunicipalityCode) -> DomainResult<Vec<CouponBatch>> {
    authz::can_manage_persons(actor, municipality)?;
    coupon_batch::Entity::find()
        .filter(Expr::col(coupon_batch::Column::MunicipalityCode).eq(fixed(municipality.as_str())))
        .order_by_desc(coupon_batch::Column::Id)
        .all(store.db())
        .await?
        .into_iter()
        .map(batch_from)
        .collect()
}

/// A page of a batch's coupons in coupon-number order, after `after`; whether more follow.
pub async fn lines(
    store: &Store,
    actor: &Actor,
    batch: i64,
    after: Option<&CouponNumber>,
    first: u64,
) -> DomainResult<(Vec<Coupon>, bool)> {
    batch_in_scope(store, actor, batch).await?;
    let mut q = coupon::Entity::find()
        .filter(coupon::Column::BatchId.eq(batch))
        .order_by_asc(coupon::Column::CouponNumber)
        .limit(first + 1);
    if let Some(a) = after {
        q = q.filter(Expr::col(coupon::Column::CouponNumber).gt(fixed(a.as_str())));
    }
    let mut rows = q.all(store.db()).await?;
    let more = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let coupons = rows
        .into_iter()
        .map(|c| {
            let bad = |what: &str| DomainError::Corrupt(format!("coupon {batch}/{}: {what}", c.person_id));
            Ok(Coupon {
                person: c.person_id,
                coupon: c.coupon_number.trim().parse().map_err(|_| bad("coupon number"))?,
                line: c.line.trim().parse().map_err(|_| bad("line"))?,
            })
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok((coupons, more))
}

/// The whole batch as CSV for the printer: `person_id,coupon_number,line` (header first).
pub async fn batch_csv(store: &Store, actor: &Actor, batch: i64) -> DomainResult<String> {
    let mut out = String::from("person_id,coupon_number,line\n");
    let mut after: Option<CouponNumber> = None;
    loop {
        let (page, more) = lines(store, actor, batch, after.as_ref(), 10_000).await?;
        for c in &page {
            out.push_str(&format!("{},{},{}\n", c.person, c.coupon, c.line));
        }
        after = page.last().map(|c| c.coupon);
        if !more {
            return Ok(out);
        }
    }
}
