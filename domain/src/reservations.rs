//! The availability service: a site states its reservation status and how to book; a
//! municipality keeps the bookable slots of its non-medical venues, whose status is derived from
//! them in the same transaction. Every call takes the acting [`Actor`] and applies
//! [`crate::authz`].
//!
//! Must not: know about GraphQL, HTTP, caches or events — the API invalidates and announces
//! after a call here returns (i.e. after the commit).

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{self, Actor};
use crate::availability::{
    self, AvailabilityDraft, AvailabilitySource, BookingInfo, SiteAvailability, SlotDraft, TimeOfDay, VenueSlot,
};
use crate::codes::{MunicipalityCode, SiteCode};
use crate::entities::{site, site_availability, venue_slot};
use crate::error::{DomainError, DomainResult};
use crate::site::{Site, SiteStatus};
use crate::sites::{facts, site_from_model};
use crate::store::{Store, fixed};

/// The result of a change: the site it concerns and its availability after the commit.
#[derive(Debug, Clone)]
pub struct AvailabilityChange {
    pub site: Site,
    pub availability: SiteAvailability,
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("availability of {key}: {e}"))
}

pub(crate) fn availability_from_model(m: site_availability::Model) -> DomainResult<SiteAvailability> {
    let count = |v: Option<i32>| {
        v.map(|n| u32::try_from(n).map_err(|e| corrupt(&m.site_code, e)))
            .transpose()
    };
    Ok(SiteAvailability {
        status: m.status.parse().map_err(|e| corrupt(&m.site_code, e))?,
        source: m.source.parse().map_err(|e| corrupt(&m.site_code, e))?,
        remaining: count(m.remaining)?,
        capacity: count(m.capacity)?,
        booking: BookingInfo {
            phone: m.booking_phone,
            url: m.booking_url,
            notes: m.booking_notes,
        },
        updated_at: m.updated_at,
        updated_by: m.updated_by,
    })
}

pub(crate) fn slot_from_model(m: &venue_slot::Model) -> DomainResult<VenueSlot> {
    let bad = |e: &dyn std::fmt::Display| DomainError::Corrupt(format!("slot {} of {}: {e}", m.id, m.site_code));
    Ok(VenueSlot {
        date: m.slot_date,
        start: TimeOfDay::parse(&m.start_time, "start_time").map_err(|e| bad(&e))?,
        end: TimeOfDay::parse(&m.end_time, "end_time").map_err(|e| bad(&e))?,
        capacity: u32::try_from(m.capacity).map_err(|e| bad(&e))?,
        booked: u32::try_from(m.booked).map_err(|e| bad(&e))?,
    })
}

async fn load_availability<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<Option<SiteAvailability>> {
    site_availability::Entity::find()
        .filter(Expr::col(site_availability::Column::SiteCode).eq(fixed(code.as_str())))
        .one(db)
        .await?
        .map(availability_from_model)
        .transpose()
}

/// Loads the site a change is about and locks its row until commit (PostgreSQL), so two
/// changes to one venue's slots never derive its status from each other's stale view. SQLite
/// needs no row lock: its writer lock already serialises writers.
async fn load_for_change<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<Site> {
    let site = site::Entity::find()
        .filter(Expr::col(site::Column::Code).eq(fixed(code.as_str())))
        .lock_exclusive()
        .one(db)
        .await?
        .map(site_from_model)
        .transpose()?
        .ok_or_else(|| DomainError::not_found("site", code))?;
    Ok(site)
}

fn refuse_withdrawn(site: &Site) -> DomainResult<()> {
    if site.status == SiteStatus::Withdrawn {
        return Err(DomainError::Conflict(format!(
            "site {} is withdrawn; it is no longer shown to the public",
            site.code
        )));
    }
    Ok(())
}

async fn save<C: ConnectionTrait>(db: &C, code: &SiteCode, a: &SiteAvailability) -> DomainResult<()> {
    use site_availability::Column as C;
    let count = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let row = site_availability::ActiveModel {
        site_code: Set(code.as_str().to_owned()),
        status: Set(a.status.as_str().to_owned()),
        source: Set(a.source.as_str().to_owned()),
        booking_phone: Set(a.booking.phone.clone()),
        booking_url: Set(a.booking.url.clone()),
        booking_notes: Set(a.booking.notes.clone()),
        remaining: Set(count(a.remaining)),
        capacity: Set(count(a.capacity)),
        updated_at: Set(a.updated_at),
        updated_by: Set(a.updated_by.clone()),
    };
    site_availability::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::SiteCode)
                .update_columns([
                    C::Status,
                    C::Source,
                    C::BookingPhone,
                    C::BookingUrl,
                    C::BookingNotes,
                    C::Remaining,
                    C::Capacity,
                    C::UpdatedAt,
                    C::UpdatedBy,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// 予約受付状況を更新: sets a site's status and/or how to book. Fields left out of the draft keep
/// their value; the last-updated time is set even when nothing else changes (a site confirming
/// its status is news to the public). A venue whose status is derived from slots refuses a
/// typed-in status.
pub async fn set_availability(
    store: &Store,
    actor: &Actor,
    code: &SiteCode,
    draft: &AvailabilityDraft,
) -> DomainResult<AvailabilityChange> {
    let tx = store.write().await?;
    let site = load_for_change(&*tx, code).await?;
    authz::can_set_availability(actor, &facts(&site))?;
    refuse_withdrawn(&site)?;
    let current = load_availability(&*tx, code).await?;
    let derived = current.as_ref().is_some_and(|a| a.source == AvailabilitySource::Slots);
    if derived && draft.status.is_some() {
        return Err(DomainError::invalid(
            "input.status",
            "this venue's status is derived from its slots; change the slots (setVenueSlot) instead",
        ));
    }
    let booking = current
        .as_ref()
        .map(|a| a.booking.clone())
        .unwrap_or_default()
        .apply(draft, "input")?;
    let status = draft.status.or(current.as_ref().map(|a| a.status)).ok_or_else(|| {
        DomainError::invalid(
            "input.status",
            "is required the first time a site states its availability",
        )
    })?;
    let availability = SiteAvailability {
        status,
        source: if derived {
            AvailabilitySource::Slots
        } else {
            AvailabilitySource::Manual
        },
        booking,
        remaining: current.as_ref().and_then(|a| a.remaining).filter(|_| derived),
        capacity: current.as_ref().and_then(|a| a.capacity).filter(|_| derived),
        updated_at: Utc::now(),
        updated_by: actor.label(),
    };
    save(&*tx, code, &availability).await?;
    tx.commit().await?;
    tracing::info!(site = %code, actor = %actor.label(), status = %availability.status, "availability set");
    Ok(AvailabilityChange { site, availability })
}

async fn slots_of<C: ConnectionTrait>(
    db: &C,
    code: &SiteCode,
    from: Option<NaiveDate>,
) -> DomainResult<Vec<VenueSlot>> {
    let mut q = venue_slot::Entity::find().filter(Expr::col(venue_slot::Column::SiteCode).eq(fixed(code.as_str())));
    if let Some(from) = from {
        q = q.filter(venue_slot::Column::SlotDate.gte(from));
    }
    q.order_by_asc(venue_slot::Column::SlotDate)
        .order_by_asc(venue_slot::Column::StartTime)
        .all(db)
        .await?
        .iter()
        .map(slot_from_model)
        .collect()
}

/// Re-derives a venue's status from its slots inside the caller's transaction. A venue left
/// with no slots at all goes back to a hand-set status (its last derived one, ×), so the
/// municipality can state one again.
async fn rederive<C: ConnectionTrait>(
    db: &C,
    code: &SiteCode,
    today: NaiveDate,
    actor_label: &str,
) -> DomainResult<SiteAvailability> {
    let all_slots = slots_of(db, code, None).await?;
    let d = availability::derive(&all_slots, today);
    let current = load_availability(db, code).await?;
    let has_slots = !all_slots.is_empty();
    let a = SiteAvailability {
        status: d.status,
        source: if has_slots {
            AvailabilitySource::Slots
        } else {
            AvailabilitySource::Manual
        },
        booking: current.map(|c| c.booking).unwrap_or_default(),
        remaining: has_slots.then_some(d.remaining),
        capacity: has_slots.then_some(d.capacity),
        updated_at: Utc::now(),
        updated_by: actor_label.to_owned(),
    };
    save(db, code, &a).await?;
    Ok(a)
}

fn require_venue(site: &Site) -> DomainResult<()> {
    if !site.details.kind.is_non_medical_venue() {
        return Err(DomainError::invalid(
            "code",
            "only mass, workplace and health-centre venues have slots; a medical site states its status directly",
        ));
    }
    Ok(())
}

/// 接種枠を登録・更新: adds a slot to a venue, or changes the one with the same date and start
/// time (its end, capacity and booked count), and re-derives the venue's status — all in one
/// transaction, so the status a caller reads back is the one the public sees.
pub async fn set_venue_slot(
    store: &Store,
    actor: &Actor,
    code: &SiteCode,
    draft: &SlotDraft,
) -> DomainResult<AvailabilityChange> {
    let today = availability::jst_today(Utc::now());
    let slot = VenueSlot::validate(draft, today, "input")?;
    let tx = store.write().await?;
    let site = load_for_change(&*tx, code).await?;
    authz::can_manage_slots(actor, &facts(&site))?;
    refuse_withdrawn(&site)?;
    require_venue(&site)?;
    use venue_slot::Column as C;
    let row = venue_slot::ActiveModel {
        site_code: Set(code.as_str().to_owned()),
        slot_date: Set(slot.date),
        start_time: Set(slot.start.to_string()),
        end_time: Set(slot.end.to_string()),
        capacity: Set(slot.capacity as i32),
        booked: Set(slot.booked as i32),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    venue_slot::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([C::SiteCode, C::SlotDate, C::StartTime])
                .update_columns([C::EndTime, C::Capacity, C::Booked, C::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&*tx)
        .await?;
    let availability = rederive(&*tx, code, today, &actor.label()).await?;
    tx.commit().await?;
    tracing::info!(site = %code, actor = %actor.label(), status = %availability.status, "venue slot set");
    Ok(AvailabilityChange { site, availability })
}

/// 接種枠を削除: removes a venue's slot and re-derives its status.
pub async fn remove_venue_slot(
    store: &Store,
    actor: &Actor,
    code: &SiteCode,
    date: NaiveDate,
    start_time: &str,
) -> DomainResult<AvailabilityChange> {
    let start = TimeOfDay::parse(start_time.trim(), "startTime")?;
    let today = availability::jst_today(Utc::now());
    let tx = store.write().await?;
    let site = load_for_change(&*tx, code).await?;
    authz::can_manage_slots(actor, &facts(&site))?;
    refuse_withdrawn(&site)?;
    require_venue(&site)?;
    let res = venue_slot::Entity::delete_many()
        .filter(Expr::col(venue_slot::Column::SiteCode).eq(fixed(code.as_str())))
        .filter(venue_slot::Column::SlotDate.eq(date))
        .filter(venue_slot::Column::StartTime.eq(start.to_string()))
        .exec(&*tx)
        .await?;
    if res.rows_affected == 0 {
        return Err(DomainError::not_found("slot", format!("{date} {start} of site {code}")));
    }
    let availability = rederive(&*tx, code, today, &actor.label()).await?;
    tx.commit().await?;
    tracing::info!(site = %code, actor = %actor.label(), status = %availability.status, "venue slot removed");
    Ok(AvailabilityChange { site, availability })
}

/// A venue's slots from `from` on (all when `None`), by date and start time, for those who may
/// read the site.
pub async fn venue_slots(
    store: &Store,
    actor: &Actor,
    code: &SiteCode,
    from: Option<NaiveDate>,
) -> DomainResult<Vec<VenueSlot>> {
    crate::sites::get(store, actor, code).await?;
    slots_of(store.db(), code, from).await
}

/// A site's availability, for those who may read the site; `None` until first stated.
pub async fn availability(store: &Store, actor: &Actor, code: &SiteCode) -> DomainResult<Option<SiteAvailability>> {
    crate::sites::get(store, actor, code).await?;
    load_availability(store.db(), code).await
}

/// The availability of several sites in one query. Only for sites the caller has already been
/// allowed to read (a loader behind a `Site` the service returned).
pub async fn availability_of_sites(
    store: &Store,
    codes: &[SiteCode],
) -> DomainResult<HashMap<SiteCode, SiteAvailability>> {
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    site_availability::Entity::find()
        .filter(Expr::col(site_availability::Column::SiteCode).is_in(codes.iter().map(|c| fixed(c.as_str()))))
        .all(store.db())
        .await?
        .into_iter()
        .map(|m| {
            let code: SiteCode = m.site_code.parse().map_err(|e| corrupt(&m.site_code, e))?;
            Ok((code, availability_from_model(m)?))
        })
        .collect()
}

/// Re-derives every slot-derived status for `today` (run when Japan's date changes: yesterday's
/// slots stop counting). Returns the municipalities where a status changed.
pub async fn refresh_derived(store: &Store, today: NaiveDate) -> DomainResult<Vec<MunicipalityCode>> {
    let derived = site_availability::Entity::find()
        .filter(site_availability::Column::Source.eq(AvailabilitySource::Slots.as_str()))
        .all(store.db())
        .await?;
    let mut changed = Vec::new();
    for row in derived {
        let code: SiteCode = row.site_code.parse().map_err(|e| corrupt(&row.site_code, e))?;
        let tx = store.write().await?;
        let site = match load_for_change(&*tx, &code).await {
            Ok(site) => site,
            Err(DomainError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let before = availability_from_model(row)?;
        let slots = slots_of(&*tx, &code, None).await?;
        let d = availability::derive(&slots, today);
        if d.status == before.status && Some(d.remaining) == before.remaining && Some(d.capacity) == before.capacity {
            continue;
        }
        let after = SiteAvailability {
            status: d.status,
            remaining: Some(d.remaining),
            capacity: Some(d.capacity),
            updated_at: Utc::now(),
            updated_by: "SYSTEM (date change)".to_owned(),
            ..before
        };
        save(&*tx, &code, &after).await?;
        tx.commit().await?;
        if !changed.contains(&site.details.municipality) {
            changed.push(site.details.municipality);
        }
    }
    Ok(changed)
}

/// Slots rows → domain values for the public feed (pub(crate) for `public`).
pub(crate) fn slots_by_site(rows: Vec<venue_slot::Model>) -> DomainResult<Vec<(SiteCode, VenueSlot)>> {
    rows.iter()
        .map(|m| {
            let code: SiteCode = m
                .site_code
                .parse()
                .map_err(|e| DomainError::Corrupt(format!("slot {}: {e}", m.id)))?;
            Ok((code, slot_from_model(m)?))
        })
        .collect()
}
