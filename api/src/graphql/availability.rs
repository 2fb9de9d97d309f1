//! Reservation availability resolvers (signed-in callers): a site states its status and how to
//! book; a municipality keeps its venues' slots. After each committed change the public side is
//! told ([`PublicChanges`]) before the mutation answers, so no public answer given after the
//! acknowledgement predates the change.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::availability::{self as av, AvailabilityDraft, Patch, SlotDraft};
use domain::store::Store;

use super::scalars::SiteCode;
use super::types::{AvailabilitySource, AvailabilityStatus};
use super::{caller_actor, gql, store};
use crate::public::PublicChanges;

/// A site's availability as its managers see it (the public sees less: no author).
pub struct SiteAvailability(pub av::SiteAvailability);

#[derive(SimpleObject)]
pub struct BookingInfo {
    pub phone: Option<String>,
    pub url: Option<String>,
    pub notes: Option<String>,
}

#[Object]
impl SiteAvailability {
    async fn status(&self) -> AvailabilityStatus {
        self.0.status.into()
    }
    /// ○ △ × ◎
    async fn symbol(&self) -> &'static str {
        self.0.status.symbol()
    }
    /// 予約可能, 残りわずか, 予約不可, 予約不要
    async fn label(&self) -> &'static str {
        self.0.status.label()
    }
    /// MANUAL (stated) or SLOTS (derived from the venue's slots).
    async fn source(&self) -> AvailabilitySource {
        self.0.source.into()
    }
    /// Places left in the venue's upcoming slots (slot-derived only).
    async fn remaining(&self) -> Option<u32> {
        self.0.remaining
    }
    /// Places in the venue's upcoming slots (slot-derived only).
    async fn capacity(&self) -> Option<u32> {
        self.0.capacity
    }
    async fn booking(&self) -> BookingInfo {
        let b = &self.0.booking;
        BookingInfo {
            phone: b.phone.clone(),
            url: b.url.clone(),
            notes: b.notes.clone(),
        }
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// `ROLE:scope` of whoever changed it last.
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
}

/// One bookable slot of a venue.
#[derive(SimpleObject)]
pub struct VenueSlot {
    pub date: NaiveDate,
    /// "HH:MM"
    pub start_time: String,
    /// "HH:MM" (24:00 is midnight at the end of the day)
    pub end_time: String,
    pub capacity: u32,
    pub booked: u32,
    pub remaining: u32,
}

impl From<av::VenueSlot> for VenueSlot {
    fn from(s: av::VenueSlot) -> Self {
        VenueSlot {
            date: s.date,
            start_time: s.start.to_string(),
            end_time: s.end.to_string(),
            capacity: s.capacity,
            booked: s.booked,
            remaining: s.remaining(),
        }
    }
}

/// 予約受付状況の更新. Leave a field out to keep it; `null` (or "") clears a booking field.
#[derive(InputObject, Default)]
pub struct SiteAvailabilityInput {
    /// Required the first time; refused for a venue whose status comes from its slots.
    pub status: Option<AvailabilityStatus>,
    pub booking_phone: MaybeUndefined<String>,
    /// An https:// (or http://) address of the booking page.
    pub booking_url: MaybeUndefined<String>,
    /// Parking, what to bring, … (at most 500 characters).
    pub booking_notes: MaybeUndefined<String>,
}

fn patch(v: &MaybeUndefined<String>) -> Patch {
    match v {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(s) => Patch::Set(s.clone()),
    }
}

/// A venue's slot, identified by its date and start time.
#[derive(InputObject)]
pub struct VenueSlotInput {
    pub date: NaiveDate,
    /// "HH:MM"
    pub start_time: String,
    /// "HH:MM", after the start (24:00 allowed)
    pub end_time: String,
    pub capacity: i32,
    #[graphql(default)]
    pub booked: i32,
}

#[derive(Default)]
pub struct AvailabilityQuery;

#[Object]
impl AvailabilityQuery {
    /// A venue's slots from `from` on (all when omitted), by date and time.
    async fn venue_slots(
        &self,
        ctx: &Context<'_>,
        code: SiteCode,
        from: Option<NaiveDate>,
    ) -> async_graphql::Result<Vec<VenueSlot>> {
        let actor = caller_actor(ctx)?;
        let slots = gql(domain::reservations::venue_slots(store(ctx)?, actor, &code.0, from).await)?;
        Ok(slots.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct AvailabilityMutation;

#[Object]
impl AvailabilityMutation {
    /// 予約受付状況を更新: a site states its status and how to book (a municipality for its own
    /// venues). The last-updated time is set even when nothing else changes.
    async fn set_site_availability(
        &self,
        ctx: &Context<'_>,
        code: SiteCode,
        input: SiteAvailabilityInput,
    ) -> async_graphql::Result<SiteAvailability> {
        let actor = caller_actor(ctx)?;
        let draft = AvailabilityDraft {
            status: input.status.map(Into::into),
            booking_phone: patch(&input.booking_phone),
            booking_url: patch(&input.booking_url),
            booking_notes: patch(&input.booking_notes),
        };
        let change = gql(domain::reservations::set_availability(store(ctx)?, actor, &code.0, &draft).await)?;
        ctx.data::<PublicChanges>()?.availability_changed(&change).await;
        Ok(SiteAvailability(change.availability))
    }

    /// 接種枠の登録・更新: adds a venue's slot, or changes the one with the same date and start
    /// time; the venue's status is derived again from its upcoming slots.
    async fn set_venue_slot(
        &self,
        ctx: &Context<'_>,
        code: SiteCode,
        input: VenueSlotInput,
    ) -> async_graphql::Result<SiteAvailability> {
        let actor = caller_actor(ctx)?;
        let draft = SlotDraft {
            date: input.date,
            start_time: input.start_time,
            end_time: input.end_time,
            capacity: i64::from(input.capacity),
            booked: i64::from(input.booked),
        };
        let change = gql(domain::reservations::set_venue_slot(store(ctx)?, actor, &code.0, &draft).await)?;
        ctx.data::<PublicChanges>()?.availability_changed(&change).await;
        Ok(SiteAvailability(change.availability))
    }

    /// 接種枠の削除: removes a venue's slot; its status is derived again.
    async fn remove_venue_slot(
        &self,
        ctx: &Context<'_>,
        code: SiteCode,
        date: NaiveDate,
        start_time: String,
    ) -> async_graphql::Result<SiteAvailability> {
        let actor = caller_actor(ctx)?;
        let change =
            gql(domain::reservations::remove_venue_slot(store(ctx)?, actor, &code.0, date, &start_time).await)?;
        ctx.data::<PublicChanges>()?.availability_changed(&change).await;
        Ok(SiteAvailability(change.availability))
    }
}

/// Batches `Site.availability` over a list of sites into one query. Sites reach it only after
/// the service returned them to the caller, i.e. after their read was authorized.
pub struct AvailabilityLoader(pub Store);

impl Loader<domain::codes::SiteCode> for AvailabilityLoader {
    type Value = av::SiteAvailability;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[domain::codes::SiteCode],
    ) -> Result<HashMap<domain::codes::SiteCode, Self::Value>, Self::Error> {
        domain::reservations::availability_of_sites(&self.0, keys)
            .await
            .map_err(|e| Arc::new(crate::error::from_domain(e)))
    }
}

pub type AvailabilityLoaderHandle = DataLoader<AvailabilityLoader>;
