//! View types: what GraphQL shows of domain values. They wrap domain values; storage rows never
//! appear here.

use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::site as d;

use super::scalars::{MunicipalityCode, PostalCode, PrefectureCode, ProductCode, SiteCode, WholesalerId};
use super::{caller_actor, store};
use crate::error::IntoGql;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::SiteKind")]
pub enum SiteKind {
    Hospital,
    Clinic,
    Pharmacy,
    CareFacility,
    MassVenue,
    WorkplaceVenue,
    HealthCentre,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::FreezerClass")]
pub enum FreezerClass {
    /// −75 °C deep freezer.
    UltraCold,
    /// −20 °C freezer.
    Frozen,
    /// 2–8 °C refrigerator only.
    Refrigerated,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::SiteStatus")]
pub enum SiteStatus {
    Active,
    Withdrawn,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::Weekday")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::ColdChainKind")]
pub enum ColdChainKind {
    /// 基本型: holds a freezer, orders for itself and its satellites.
    Base,
    /// サテライト型: supplied by a base site.
    Satellite,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::codes::SiteCodeKind")]
pub enum SiteCodeKind {
    InsuranceMedical,
    CareProvider,
    Assigned,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::site::HistoryAction")]
pub enum HistoryAction {
    Registered,
    Changed,
    Withdrawn,
}

/// 予約受付状況.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::availability::Availability")]
pub enum AvailabilityStatus {
    /// ○ 予約可能
    Open,
    /// △ 残りわずか
    Few,
    /// × 予約不可
    Full,
    /// ◎ 予約不要
    NoBookingNeeded,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::availability::AvailabilitySource")]
pub enum AvailabilitySource {
    /// Stated by the site (or, for a venue without slots, its municipality).
    Manual,
    /// Derived from the venue's slots.
    Slots,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::authz::Role")]
pub enum Role {
    National,
    Prefecture,
    Municipality,
    Site,
    Wholesaler,
    MedicalAssociation,
    Federation,
}

#[derive(SimpleObject)]
pub struct Prefecture {
    pub code: PrefectureCode,
    pub name: String,
    pub name_kana: String,
}

impl From<domain::sites::Prefecture> for Prefecture {
    fn from(p: domain::sites::Prefecture) -> Self {
        Prefecture {
            code: p.code.into(),
            name: p.name,
            name_kana: p.name_kana,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Municipality {
    pub code: MunicipalityCode,
    pub prefecture: PrefectureCode,
    pub name: String,
    pub name_kana: String,
}

impl From<domain::sites::Municipality> for Municipality {
    fn from(m: domain::sites::Municipality) -> Self {
        Municipality {
            code: m.code.into(),
            prefecture: m.prefecture.into(),
            name: m.name,
            name_kana: m.name_kana,
        }
    }
}

#[derive(SimpleObject)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(SimpleObject)]
pub struct ColdChain {
    pub role: ColdChainKind,
    /// For a base site: its freezer.
    pub freezer_class: Option<FreezerClass>,
    /// For a satellite: the base site that supplies it.
    pub base_site: Option<SiteCode>,
}

#[derive(SimpleObject)]
pub struct DeliveryProfile {
    pub receiving_days: Vec<Weekday>,
    /// "HH:MM-HH:MM", empty when any time is fine.
    pub receiving_hours: String,
    pub notes: String,
}

/// A vaccination site of the national site master.
pub struct Site(pub d::Site);

#[Object]
impl Site {
    async fn code(&self) -> SiteCode {
        self.0.code.into()
    }
    async fn code_kind(&self) -> SiteCodeKind {
        self.0.code.kind().into()
    }
    async fn name(&self) -> &str {
        &self.0.details.name
    }
    async fn name_kana(&self) -> &str {
        &self.0.details.name_kana
    }
    async fn kind(&self) -> SiteKind {
        self.0.details.kind.into()
    }
    async fn prefecture(&self) -> PrefectureCode {
        self.0.details.prefecture().into()
    }
    async fn municipality(&self, ctx: &Context<'_>) -> async_graphql::Result<Municipality> {
        let refdata = ctx.data::<std::sync::Arc<super::RefData>>()?;
        refdata
            .municipality(&self.0.details.municipality)
            .cloned()
            .ok_or_else(|| crate::error::coded("internal error", crate::error::code::INTERNAL))
    }
    async fn postal_code(&self) -> PostalCode {
        self.0.details.postal_code.into()
    }
    async fn address(&self) -> &str {
        &self.0.details.address
    }
    async fn phone(&self) -> &str {
        &self.0.details.phone
    }
    async fn coordinates(&self) -> Option<Coordinates> {
        self.0.details.coordinates.map(|c| Coordinates {
            latitude: c.latitude(),
            longitude: c.longitude(),
        })
    }
    async fn cold_chain(&self) -> ColdChain {
        let c = &self.0.details.cold_chain;
        ColdChain {
            role: c.kind().into(),
            freezer_class: c.freezer().map(Into::into),
            base_site: c.base_site().cloned().map(Into::into),
        }
    }
    async fn delivery(&self) -> DeliveryProfile {
        let p = &self.0.details.delivery;
        DeliveryProfile {
            receiving_days: p.receiving_days.iter().map(|d| (*d).into()).collect(),
            receiving_hours: p.receiving_hours.clone(),
            notes: p.notes.clone(),
        }
    }
    /// The designated wholesaler; empty until one is chosen.
    async fn wholesaler(&self) -> Option<WholesalerId> {
        self.0.details.wholesaler.clone().map(Into::into)
    }
    async fn products(&self) -> Vec<ProductCode> {
        self.0.details.products.iter().cloned().map(Into::into).collect()
    }
    async fn status(&self) -> SiteStatus {
        self.0.status.into()
    }
    /// Incremented on every change; pass it as `expectedVersion` to refuse lost updates.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// 予約受付状況 and how to book; null until the site first states it.
    async fn availability(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::availability::SiteAvailability>> {
        let loader = ctx.data::<super::availability::AvailabilityLoaderHandle>()?;
        Ok(loader
            .load_one(self.0.code)
            .await
            .map_err(|e| (*e).clone())?
            .map(super::availability::SiteAvailability))
    }
    /// Who changed what and when (追加・変更・脱退), oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SiteHistoryEntry>> {
        let actor = caller_actor(ctx)?;
        Ok(domain::sites::history(store(ctx)?, actor, &self.0.code)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

#[derive(SimpleObject)]
pub struct SiteHistoryEntry {
    pub version: i32,
    pub action: HistoryAction,
    /// `ROLE:scope` of whoever made the change (`(import)` for bulk imports).
    pub actor: String,
    pub changed_at: DateTime<Utc>,
    pub changes: Vec<FieldChange>,
}

impl From<d::SiteHistoryEntry> for SiteHistoryEntry {
    fn from(h: d::SiteHistoryEntry) -> Self {
        SiteHistoryEntry {
            version: h.version,
            action: h.action.into(),
            actor: h.actor,
            changed_at: h.changed_at,
            changes: h
                .changes
                .into_iter()
                .map(|c| FieldChange {
                    field: c.field.as_str().to_owned(),
                    from: c.from,
                    to: c.to,
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct ImportRejection {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct ImportReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: Vec<ImportRejection>,
}

impl From<domain::sites::ImportReport> for ImportReport {
    fn from(r: domain::sites::ImportReport) -> Self {
        ImportReport {
            inserted: r.inserted,
            updated: r.updated,
            unchanged: r.unchanged,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| ImportRejection {
                    line: x.line,
                    column: x.column,
                    reason: x.reason,
                })
                .collect(),
        }
    }
}

/// The authenticated caller.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Me {
    pub role: Role,
    /// The scope claim: prefecture, municipality or site code, wholesaler id, …
    pub scope: Option<String>,
}

#[ComplexObject]
impl Me {
    /// For a municipality: its name; for a prefecture: its name; otherwise empty.
    async fn scope_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let refdata = ctx.data::<std::sync::Arc<super::RefData>>()?;
        Ok(self.scope.as_deref().and_then(|s| refdata.name_of(s)))
    }
}
