//! View and input types of the stock ledger. They wrap domain values; no storage row appears
//! here. Quantities are vials (signed on entries: positive in, negative out); doses are shown
//! next to them where the product's packaging converts.

use std::sync::Arc;

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::ledger;
use domain::stock as d;

use super::scalars::{LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::stock::EntryKind")]
pub enum StockEntryKind {
    /// Vials arrived at the site.
    Received,
    /// Vials used for vaccination.
    Administered,
    /// Vials discarded, with a reason.
    Wasted,
    /// Vials discarded because the lot passed its expiry date.
    Expired,
    /// Vials a base site passed to one of its satellites.
    TransferredOut,
    /// Vials a satellite received from its base site.
    TransferredIn,
    /// The difference a stock report's count found against the ledger.
    Adjusted,
    /// Cancels an earlier entry.
    Reversed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::stock::WasteReason")]
pub enum WasteReason {
    BrokenVial,
    TemperatureExcursion,
    LeftoverDoses,
    PreparationError,
    /// Anything else; say what in `note`.
    Other,
}

/// One committed change of a site × product × lot balance: what a mutation returns and what
/// `stockChanged` delivers.
pub struct StockChange(pub Arc<d::StockChange>);

#[Object]
impl StockChange {
    /// The ledger entry that made the change. Entry ids grow in commit order per site × product
    /// × lot, so of two changes of one lot the higher id carries the newer `onHand`.
    async fn entry_id(&self) -> ID {
        ID(self.0.entry_id.to_string())
    }
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn prefecture(&self) -> PrefectureCode {
        self.0.prefecture().into()
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn lot(&self) -> LotNumber {
        self.0.lot.clone().into()
    }
    async fn expiry_date(&self) -> NaiveDate {
        self.0.expiry_date
    }
    async fn kind(&self) -> StockEntryKind {
        self.0.kind.into()
    }
    /// Vials: positive in, negative out.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    /// Vials of this lot on hand at the site right after the change.
    async fn on_hand(&self) -> u64 {
        self.0.on_hand.get()
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
}

/// What a site holds of one lot, and the running totals of its movements (vials).
pub struct StockBalance(pub ledger::StockBalance);

#[Object]
impl StockBalance {
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn lot(&self) -> LotNumber {
        self.0.lot.clone().into()
    }
    async fn expiry_date(&self) -> NaiveDate {
        self.0.expiry_date
    }
    async fn on_hand(&self) -> u64 {
        self.0.balance.on_hand.get()
    }
    /// On hand in doses, at the product's doses per vial.
    async fn on_hand_doses(&self) -> Option<u64> {
        self.0.on_hand_doses.map(|d| d.get())
    }
    async fn received(&self) -> u64 {
        self.0.balance.received.get()
    }
    async fn administered(&self) -> u64 {
        self.0.balance.administered.get()
    }
    async fn wasted(&self) -> u64 {
        self.0.balance.wasted.get()
    }
    async fn expired(&self) -> u64 {
        self.0.balance.expired.get()
    }
    async fn transferred_in(&self) -> u64 {
        self.0.balance.transferred_in.get()
    }
    async fn transferred_out(&self) -> u64 {
        self.0.balance.transferred_out.get()
    }
    /// Net of all count adjustments (negative when counts found fewer vials).
    async fn adjusted(&self) -> i64 {
        self.0.balance.adjusted
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One ledger entry.
pub struct StockEntry(pub ledger::StockEntry);

#[Object]
impl StockEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn lot(&self) -> LotNumber {
        self.0.lot.clone().into()
    }
    async fn expiry_date(&self) -> NaiveDate {
        self.0.expiry_date
    }
    async fn kind(&self) -> StockEntryKind {
        self.0.kind.into()
    }
    /// Vials: positive in, negative out.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    /// Vials of this lot on hand right after this entry.
    async fn balance_after(&self) -> u64 {
        self.0.balance_after.get()
    }
    async fn waste_reason(&self) -> Option<WasteReason> {
        self.0.waste_reason.map(Into::into)
    }
    async fn note(&self) -> &str {
        &self.0.note
    }
    /// The day it happened (Japan): the day received for receipts, the count's day for
    /// adjustments, the day recorded otherwise.
    async fn occurred_on(&self) -> NaiveDate {
        self.0.occurred_on
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    /// `ROLE:scope` of whoever recorded it.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// The other site of a transfer.
    async fn counterpart_site(&self) -> Option<SiteCode> {
        self.0.counterpart.map(Into::into)
    }
    /// TRANSFERRED_IN: its TRANSFERRED_OUT entry at the base site.
    async fn paired_entry(&self) -> Option<ID> {
        self.0.paired_entry.map(|i| ID(i.to_string()))
    }
    /// REVERSED: the entry it cancels.
    async fn reverses(&self) -> Option<ID> {
        self.0.reverses.map(|(i, _)| ID(i.to_string()))
    }
    /// REVERSED: the kind of the entry it cancels.
    async fn reverses_kind(&self) -> Option<StockEntryKind> {
        self.0.reverses.map(|(_, k)| k.into())
    }
    /// The REVERSED entry that cancelled this one, if any.
    async fn reversed_by(&self) -> Option<ID> {
        self.0.reversed_by.map(|i| ID(i.to_string()))
    }
    /// RECEIVED: the delivery it booked (null for receipts recorded by the site).
    async fn delivery(&self) -> Option<ID> {
        self.0.delivery.map(|i| ID(i.to_string()))
    }
    /// ADJUSTED: the stock report whose count it booked.
    async fn report(&self) -> Option<ID> {
        self.0.report.map(|i| ID(i.to_string()))
    }
}

/// Stock of one product in an area (vials unless named otherwise).
pub struct ProductStock(pub ledger::ProductSummary);

#[Object]
impl ProductStock {
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn on_hand(&self) -> u64 {
        self.0.totals.on_hand.get()
    }
    async fn on_hand_doses(&self) -> Option<u64> {
        self.0.on_hand_doses.map(|d| d.get())
    }
    async fn received(&self) -> u64 {
        self.0.totals.received.get()
    }
    async fn administered(&self) -> u64 {
        self.0.totals.administered.get()
    }
    async fn wasted(&self) -> u64 {
        self.0.totals.wasted.get()
    }
    async fn expired(&self) -> u64 {
        self.0.totals.expired.get()
    }
    async fn transferred_in(&self) -> u64 {
        self.0.totals.transferred_in.get()
    }
    async fn transferred_out(&self) -> u64 {
        self.0.totals.transferred_out.get()
    }
    async fn adjusted(&self) -> i64 {
        self.0.totals.adjusted
    }
    /// Sites of the area holding any of it.
    async fn sites_with_stock(&self) -> u64 {
        self.0.sites_with_stock
    }
    /// Administered over the last `recentDays` days (net of reversals).
    async fn recent_administered(&self) -> u64 {
        self.0.recent_administered.get()
    }
    async fn recent_days(&self) -> u32 {
        self.0.recent_days
    }
    /// Whole days the stock on hand lasts at the recent daily use; null when nothing was used
    /// recently.
    async fn days_of_supply(&self) -> Option<u64> {
        self.0.days_of_supply
    }
}

#[derive(SimpleObject)]
pub struct StockSummary {
    /// The area summed: `site:…`, `municipality:…`, `prefecture:…` or `nation`.
    pub area: String,
    pub products: Vec<ProductStock>,
}

#[derive(SimpleObject)]
pub struct StockReportLine {
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub counted: u64,
    /// What the ledger said when the count was booked.
    pub ledger_before: u64,
    /// Counted minus ledger.
    pub difference: i64,
    pub reason: String,
    /// The ADJUSTED entry that booked the difference.
    pub adjustment_entry: Option<ID>,
}

/// A physical count (在庫報告) and how it compared to the ledger.
#[derive(SimpleObject)]
pub struct StockReport {
    pub id: ID,
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub counted_on: NaiveDate,
    pub reason: String,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub lines: Vec<StockReportLine>,
}

impl From<ledger::StockReport> for StockReport {
    fn from(r: ledger::StockReport) -> Self {
        StockReport {
            id: ID(r.id.to_string()),
            site: r.site.into(),
            municipality: r.municipality.into(),
            counted_on: r.counted_on,
            reason: r.reason,
            actor: r.actor,
            recorded_at: r.recorded_at,
            lines: r
                .lines
                .into_iter()
                .map(|l| StockReportLine {
                    product: l.product.into(),
                    lot: l.lot.into(),
                    expiry_date: l.expiry_date,
                    counted: l.counted.get(),
                    ledger_before: l.ledger_before.get(),
                    difference: l.difference,
                    reason: l.reason,
                    adjustment_entry: l.adjustment_entry.map(|i| ID(i.to_string())),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct StockReportOutcome {
    pub report: StockReport,
    /// The ADJUSTED entries the count booked (one per lot that differed).
    pub adjustments: Vec<StockChange>,
}

/// Vials arriving at a site, recorded by the site (receipts of deliveries recorded in this
/// system will be booked by confirming the delivery).
#[derive(InputObject)]
pub struct RecordReceiptInput {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    /// Vials.
    pub quantity: i64,
    /// The day they arrived; today (Japan) when omitted.
    pub received_on: Option<NaiveDate>,
    #[graphql(default)]
    pub note: String,
}

/// Vials used, or discarded because their lot expired.
#[derive(InputObject)]
pub struct StockUseInput {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    /// Vials.
    pub quantity: i64,
    #[graphql(default)]
    pub note: String,
}

/// Vials discarded for a reason other than expiry.
#[derive(InputObject)]
pub struct RecordWasteInput {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    /// Vials.
    pub quantity: i64,
    pub reason: WasteReason,
    /// Required when the reason is OTHER.
    #[graphql(default)]
    pub note: String,
}

/// Vials a base site passes to one of its satellites.
#[derive(InputObject)]
pub struct TransferStockInput {
    /// The base site (基本型) giving the vials.
    pub from: SiteCode,
    /// Its satellite (サテライト型) receiving them.
    pub to: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    /// Vials.
    pub quantity: i64,
    #[graphql(default)]
    pub note: String,
}

#[derive(InputObject)]
pub struct StockCountInput {
    pub product: ProductCode,
    pub lot: LotNumber,
    /// Vials counted.
    pub counted: i64,
    /// Why this lot differs, if not for the report's reason.
    pub reason: Option<String>,
}

/// A physical count of some of a site's lots; each lot that differs from the ledger is
/// adjusted to the count.
#[derive(InputObject)]
pub struct ReportStockInput {
    pub site: SiteCode,
    /// The day counted; today (Japan) when omitted.
    pub counted_on: Option<NaiveDate>,
    /// Why counts differ (e.g. "月末棚卸", broken vials found), for every line without its own.
    pub reason: String,
    pub lines: Vec<StockCountInput>,
}
