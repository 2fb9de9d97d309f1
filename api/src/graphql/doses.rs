//! Dose-record resolvers (VRS): recording doses one at a time or in batches (each dose also
//! takes its stock; the vials opened are published on `stockChanged` after the commit), voids
//! and amendments, a municipality's interval overrides, the end-of-day leftover write-off, and
//! the scoped reads and counts.
//!
//! Codes inside a dose input are strings parsed here, not scalars: in a batch, a record whose
//! coupon line has a bad check digit must fail alone (with its field and reason) while the
//! other records are kept, which a scalar failing at validation would not allow.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::DomainError;
use domain::codes::{CouponLine, CouponNumber};
use domain::dose::{self as d, DoseDraft, PersonRef};
use domain::doses;
use domain::stock::StockChange as Change;

use super::scalars::{LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use super::stock::publish;
use super::stock_types::StockChange;
use super::{caller_actor, gql, store};
use crate::error::{code, coded};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::dose::Capture")]
pub enum DoseCapture {
    /// The coupon's 18-digit line read by camera or QR reader.
    Scan,
    /// Typed in by hand.
    Manual,
    /// Uploaded in a file.
    Csv,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::dose::DoseStatus")]
pub enum DoseStatus {
    /// A dose given.
    Active,
    /// Entered in error: kept, counts nowhere, its dose went back to the stock.
    Voided,
}

/// One dose given at your site. Name the person by the coupon's scanned 18-digit line
/// (`couponLine`), or by `municipality` + `couponNumber`; the person is looked up in that
/// municipality.
#[derive(InputObject)]
pub struct DoseInput {
    /// The 18 digits of the coupon's OCR line or QR code (券種, 回数, municipality code, coupon
    /// number). Its dose digit is the dose number unless `doseNumber` is given (then they must
    /// agree).
    pub coupon_line: Option<String>,
    /// The person's municipality (6 digits), with `couponNumber`, when no line is scanned.
    pub municipality: Option<String>,
    /// The 10-digit coupon number (券番号), with `municipality`.
    pub coupon_number: Option<String>,
    /// 1–9; required without a coupon line.
    pub dose_number: Option<i32>,
    /// The day the dose was given (not in the future).
    pub administered_on: NaiveDate,
    /// The vaccine's product code, e.g. comirnaty.
    pub product: String,
    /// The lot number as printed; your site must hold this lot.
    pub lot: String,
    /// 接種医師名, 1–20 characters.
    pub doctor_name: String,
    pub capture: DoseCapture,
    /// Your client's key for this dose (1–100 printable ASCII characters): sending it again
    /// with the same content returns the original record, never a second one.
    pub idempotency_key: String,
    /// Your note when the dose comes earlier than the product's minimum interval under the
    /// municipality's override (`allowEarlyDose`); it does not replace that override.
    pub override_reason: Option<String>,
}

fn parse_code<T>(v: &str, field: String) -> Result<T, DomainError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    v.trim().parse().map_err(|e| DomainError::invalid(field, e))
}

fn to_draft(i: DoseInput, field: &str) -> Result<DoseDraft, DomainError> {
    let f = |n: &str| format!("{field}.{n}");
    let person = match (&i.coupon_line, &i.municipality, &i.coupon_number) {
        (Some(line), None, None) => PersonRef::Line(parse_code::<CouponLine>(line, f("couponLine"))?),
        (None, Some(m), Some(c)) => PersonRef::Coupon {
            municipality: parse_code(m, f("municipality"))?,
            coupon: parse_code::<CouponNumber>(c, f("couponNumber"))?,
        },
        (Some(_), _, _) => {
            return Err(DomainError::invalid(
                f("couponLine"),
                "give the coupon line or municipality and coupon number, not both",
            ));
        }
        _ => {
            return Err(DomainError::invalid(
                f("couponLine"),
                "give the coupon line, or municipality and coupon number",
            ));
        }
    };
    let dose_number = i
        .dose_number
        .map(|n| {
            u8::try_from(n)
                .ok()
                .filter(|n| (1..=d::MAX_DOSE_NUMBER).contains(n))
                .ok_or_else(|| DomainError::invalid(f("doseNumber"), format!("must be 1 to {}", d::MAX_DOSE_NUMBER)))
        })
        .transpose()?;
    Ok(DoseDraft {
        person,
        dose_number,
        administered_on: i.administered_on,
        product: parse_code(&i.product, f("product"))?,
        lot: parse_code(&i.lot, f("lot"))?,
        doctor_name: i.doctor_name,
        capture: i.capture.into(),
        idempotency_key: i.idempotency_key,
        override_reason: i.override_reason,
    })
}

/// A dose record: who (by person id, municipality and coupon number — names and addresses
/// belong to the person), which dose, when, what, where, and its history.
pub struct DoseRecord(pub doses::DoseRecord);

#[Object]
impl DoseRecord {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn person_id(&self) -> ID {
        ID(self.0.person_id.to_string())
    }
    /// The person's municipality of residence.
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn coupon_number(&self) -> String {
        self.0.coupon.as_str().to_owned()
    }
    async fn dose_number(&self) -> i32 {
        i32::from(self.0.dose_number)
    }
    async fn administered_on(&self) -> NaiveDate {
        self.0.administered_on
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn lot(&self) -> LotNumber {
        self.0.lot.clone().into()
    }
    /// Where it was given; the dose came out of this site's stock.
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn doctor_name(&self) -> &str {
        &self.0.doctor_name
    }
    async fn capture(&self) -> DoseCapture {
        self.0.capture.into()
    }
    async fn status(&self) -> DoseStatus {
        self.0.status.into()
    }
    /// The municipality's interval override this dose needed and used.
    async fn interval_override(&self) -> Option<ID> {
        self.0.override_id.map(|i| ID(i.to_string()))
    }
    async fn override_reason(&self) -> Option<&str> {
        self.0.override_reason.as_deref()
    }
    /// The ADMINISTERED stock entry of the vial this dose came from.
    async fn vial_entry(&self) -> Option<ID> {
        self.0.vial_entry.map(|i| ID(i.to_string()))
    }
    /// Whether this dose opened that vial.
    async fn opened_vial(&self) -> bool {
        self.0.opened_vial
    }
    async fn recorded_by_site(&self) -> SiteCode {
        self.0.recorded_by_site.into()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    async fn recorded_by(&self) -> &str {
        &self.0.recorded_by
    }
    async fn changed_at(&self) -> DateTime<Utc> {
        self.0.changed_at
    }
    async fn changed_by(&self) -> &str {
        &self.0.changed_by
    }
    /// Why the current version was made (none for the first recording).
    async fn change_reason(&self) -> Option<&str> {
        self.0.change_reason.as_deref()
    }
    /// Every version, oldest first; the last is the current one.
    async fn versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DoseRecordVersion>> {
        let actor = caller_actor(ctx)?;
        Ok(gql(doses::versions(store(ctx)?, actor, self.0.id).await)?
            .into_iter()
            .map(DoseRecordVersion)
            .collect())
    }
}

/// One version of a dose record, with who made it, when and why.
pub struct DoseRecordVersion(doses::DoseVersion);

#[Object]
impl DoseRecordVersion {
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn dose_number(&self) -> i32 {
        i32::from(self.0.dose_number)
    }
    async fn administered_on(&self) -> NaiveDate {
        self.0.administered_on
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn lot(&self) -> LotNumber {
        self.0.lot.clone().into()
    }
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn doctor_name(&self) -> &str {
        &self.0.doctor_name
    }
    async fn status(&self) -> DoseStatus {
        self.0.status.into()
    }
    async fn made_at(&self) -> DateTime<Utc> {
        self.0.made_at
    }
    async fn made_by(&self) -> &str {
        &self.0.made_by
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// The municipality's interval override this version used (null also for versions kept
    /// before versions recorded it).
    async fn interval_override(&self) -> Option<ID> {
        self.0.override_id.map(|i| ID(i.to_string()))
    }
}

/// What `recordDose` did.
#[derive(SimpleObject)]
pub struct RecordDoseResult {
    pub record: DoseRecord,
    /// False when this was a retry: the original record is returned and nothing changed.
    pub created: bool,
    /// The vial opened for this dose, if it opened one.
    pub stock_changes: Vec<StockChange>,
}

/// Why one record of a batch was refused.
#[derive(SimpleObject)]
pub struct DoseError {
    /// BAD_USER_INPUT, NOT_FOUND, CONFLICT or FORBIDDEN.
    pub code: String,
    /// A stable reason for CONFLICTs, e.g. DUPLICATE_DOSE, INTERVAL_TOO_SHORT.
    pub reason: Option<String>,
    /// The input path for BAD_USER_INPUT, e.g. records[3].couponLine.
    pub field: Option<String>,
    pub message: String,
}

fn dose_error(e: DomainError) -> DoseError {
    let (code, reason, field) = match &e {
        DomainError::Invalid { field, .. } => (code::BAD_USER_INPUT, None, Some(field.clone())),
        DomainError::NotFound { .. } => (code::NOT_FOUND, None, None),
        DomainError::Refused { reason, .. } => (code::CONFLICT, Some((*reason).to_owned()), None),
        DomainError::Conflict(_) | DomainError::Blocked { .. } => (code::CONFLICT, None, None),
        DomainError::Forbidden(_) => (code::FORBIDDEN, None, None),
        DomainError::Database(_) | DomainError::Corrupt(_) => (code::INTERNAL, None, None),
    };
    DoseError {
        code: code.to_owned(),
        reason,
        field,
        message: e.to_string(),
    }
}

/// One record's result in a batch, in the order submitted.
#[derive(SimpleObject)]
pub struct DoseResult {
    pub index: i32,
    pub ok: bool,
    /// False for a retry of a record already stored (same key and content).
    pub created: bool,
    pub record: Option<DoseRecord>,
    pub error: Option<DoseError>,
}

/// What `recordDoses` did.
#[derive(SimpleObject)]
pub struct RecordDosesResult {
    pub results: Vec<DoseResult>,
    /// Records stored by this call (retries of stored ones not counted).
    pub created: i32,
    pub failed: i32,
    /// The vials opened by this call.
    pub stock_changes: Vec<StockChange>,
}

/// A corrected record and the stock changes (vials given back or opened) of its correction.
#[derive(SimpleObject)]
pub struct CorrectedDoseRecord {
    pub record: DoseRecord,
    pub stock_changes: Vec<StockChange>,
}

/// What an amendment changes; leave out what stays.
#[derive(InputObject, Default)]
pub struct AmendDoseInput {
    pub dose_number: Option<i32>,
    pub administered_on: Option<NaiveDate>,
    pub product: Option<ProductCode>,
    pub lot: Option<LotNumber>,
    /// Another site, when the dose was given elsewhere (its stock effect moves there).
    pub site: Option<SiteCode>,
    pub doctor_name: Option<String>,
}

/// A municipality's permission for one person's dose to come earlier than the minimum interval.
#[derive(SimpleObject)]
pub struct DoseIntervalOverride {
    pub id: ID,
    pub municipality: MunicipalityCode,
    pub coupon_number: String,
    pub dose_number: i32,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Doses left in an open vial and discarded.
#[derive(SimpleObject)]
pub struct LeftoverWriteOff {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub doses: u64,
    /// The ADMINISTERED entry of the vial they were left in.
    pub vial_entry: Option<ID>,
    /// The day (Japan) they were written off.
    pub occurred_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

impl From<doses::LeftoverWriteOff> for LeftoverWriteOff {
    fn from(w: doses::LeftoverWriteOff) -> Self {
        LeftoverWriteOff {
            site: w.site.into(),
            product: w.product.into(),
            lot: w.lot.into(),
            doses: w.doses,
            vial_entry: w.vial_entry.map(|i| ID(i.to_string())),
            occurred_on: w.occurred_on,
            recorded_at: w.recorded_at,
            recorded_by: w.recorded_by,
        }
    }
}

/// A lot of a site counted in doses.
#[derive(SimpleObject)]
pub struct LotDoses {
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    /// Whole vials on hand.
    pub on_hand: u64,
    /// Doses left in the open vial.
    pub open_doses: u64,
    pub doses_per_vial: u64,
    /// Doses that can still be given: the open vial's and every whole vial's.
    pub available_doses: u64,
    /// The ADMINISTERED entry of the open vial.
    pub open_vial_entry: Option<ID>,
}

/// What dose counts are grouped by.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DoseCountBy {
    Day,
    /// The person's municipality of residence.
    Municipality,
    Prefecture,
    Product,
    DoseNumber,
}

impl From<DoseCountBy> for doses::CountBy {
    fn from(b: DoseCountBy) -> Self {
        match b {
            DoseCountBy::Day => doses::CountBy::Day,
            DoseCountBy::Municipality => doses::CountBy::Municipality,
            DoseCountBy::Prefecture => doses::CountBy::Prefecture,
            DoseCountBy::Product => doses::CountBy::Product,
            DoseCountBy::DoseNumber => doses::CountBy::DoseNumber,
        }
    }
}

/// One group of doses given; the fields not grouped by are null.
#[derive(SimpleObject)]
pub struct DoseCount {
    pub day: Option<NaiveDate>,
    pub municipality: Option<MunicipalityCode>,
    pub prefecture: Option<PrefectureCode>,
    pub product: Option<ProductCode>,
    pub dose_number: Option<i32>,
    pub doses: u64,
}

/// Doses given at one site over a window.
#[derive(SimpleObject)]
pub struct SiteDoses {
    pub site: SiteCode,
    pub doses: u64,
}

/// The minimum interval before a dose of a product (editable policy; see `source`).
#[derive(SimpleObject)]
pub struct DoseIntervalRule {
    pub product: ProductCode,
    /// The dose it precedes; 0: any later dose not listed.
    pub dose_number: i32,
    pub min_days: u32,
    pub min_months: u32,
    pub source: String,
}

const MAX_PAGE: usize = 500;

fn record_id(id: &ID, field: &str) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| coded(format!("{field}: not a dose record id"), code::BAD_USER_INPUT))
}

fn publish_all(ctx: &Context<'_>, changes: Vec<Change>) -> async_graphql::Result<Vec<StockChange>> {
    let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
    publish(ctx, &changes)?;
    Ok(changes.into_iter().map(StockChange).collect())
}

#[derive(Default)]
pub struct DoseMutation;

#[Object]
impl DoseMutation {
    /// Records a dose given at your site (SITE token) and takes it from the lot's stock in the
    /// same transaction (a dose draws from the open vial, or opens one: an ADMINISTERED entry
    /// of 1 vial). Refused with a stable `extensions.reason`: DUPLICATE_DOSE,
    /// BEFORE_PREVIOUS_DOSE, INTERVAL_TOO_SHORT (unless the municipality allowed it),
    /// PERSON_NOT_FOUND, PERSON_MOVED_OUT, IDEMPOTENCY_KEY_REUSED, LOT_EXPIRED, OUT_OF_STOCK.
    async fn record_dose(&self, ctx: &Context<'_>, input: DoseInput) -> async_graphql::Result<RecordDoseResult> {
        let actor = caller_actor(ctx)?;
        let draft = to_draft(input, "input");
        let done = gql(doses::record(store(ctx)?, actor, vec![draft], true).await)?;
        let stock_changes = publish_all(ctx, done.changes)?;
        let outcome = gql(done
            .results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(DomainError::Corrupt("no result".into()))))?;
        Ok(RecordDoseResult {
            record: DoseRecord(outcome.record),
            created: outcome.created,
            stock_changes,
        })
    }

    /// Records up to 1,000 doses given at your site, each as `recordDose` would, with one
    /// result per record in the order given: valid records are stored with their stock effect,
    /// refused ones change nothing. More than 1,000 is refused as a whole.
    async fn record_doses(
        &self,
        ctx: &Context<'_>,
        records: Vec<DoseInput>,
    ) -> async_graphql::Result<RecordDosesResult> {
        let actor = caller_actor(ctx)?;
        let drafts = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| to_draft(r, &format!("records[{i}]")))
            .collect();
        let done = gql(doses::record(store(ctx)?, actor, drafts, false).await)?;
        let stock_changes = publish_all(ctx, done.changes)?;
        let (mut created, mut failed) = (0, 0);
        let results = done
            .results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let index = i32::try_from(i).unwrap_or(i32::MAX);
                match r {
                    Ok(o) => {
                        created += i32::from(o.created);
                        DoseResult {
                            index,
                            ok: true,
                            created: o.created,
                            record: Some(DoseRecord(o.record)),
                            error: None,
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        DoseResult {
                            index,
                            ok: false,
                            created: false,
                            record: None,
                            error: Some(dose_error(e)),
                        }
                    }
                }
            })
            .collect();
        Ok(RecordDosesResult {
            results,
            created,
            failed,
            stock_changes,
        })
    }

    /// Voids a record entered in error (the recording site, or the person's municipality): it
    /// is kept as VOIDED with your reason, counts nowhere, and its dose goes back to the stock
    /// (the vial too, once all its doses are back).
    async fn void_dose_record(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> async_graphql::Result<CorrectedDoseRecord> {
        let actor = caller_actor(ctx)?;
        let id = record_id(&id, "id")?;
        let done = gql(doses::void(store(ctx)?, actor, id, &reason).await)?;
        Ok(CorrectedDoseRecord {
            record: DoseRecord(done.record),
            stock_changes: publish_all(ctx, done.changes)?,
        })
    }

    /// Amends a record (the recording site, or the person's municipality), keeping the
    /// previous version with who, when and why. A changed site, product or lot moves the
    /// dose's stock effect.
    async fn amend_dose_record(
        &self,
        ctx: &Context<'_>,
        id: ID,
        changes: AmendDoseInput,
        reason: String,
    ) -> async_graphql::Result<CorrectedDoseRecord> {
        let actor = caller_actor(ctx)?;
        let id = record_id(&id, "id")?;
        let dose_number = changes
            .dose_number
            .map(|n| u8::try_from(n).map_err(|_| coded("changes.doseNumber: must be 1 to 9", code::BAD_USER_INPUT)))
            .transpose()?;
        let c = doses::Changes {
            dose_number,
            administered_on: changes.administered_on,
            product: changes.product.map(|p| p.0),
            lot: changes.lot.map(|l| l.0),
            site: changes.site.map(|s| s.0),
            doctor_name: changes.doctor_name,
        };
        let done = gql(doses::amend(store(ctx)?, actor, id, &c, &reason).await)?;
        Ok(CorrectedDoseRecord {
            record: DoseRecord(done.record),
            stock_changes: publish_all(ctx, done.changes)?,
        })
    }

    /// As the person's municipality, allows their dose `doseNumber` earlier than the product's
    /// minimum interval, for a recorded reason. The site's `recordDose` then accepts it and
    /// the record names this override.
    async fn allow_early_dose(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        coupon_number: String,
        dose_number: i32,
        reason: String,
    ) -> async_graphql::Result<DoseIntervalOverride> {
        let actor = caller_actor(ctx)?;
        let coupon: CouponNumber = gql(parse_code(&coupon_number, "couponNumber".into()))?;
        let n = u8::try_from(dose_number).map_err(|_| coded("doseNumber: must be 2 to 9", code::BAD_USER_INPUT))?;
        let o = gql(doses::allow_early_dose(store(ctx)?, actor, municipality.0, coupon, n, &reason).await)?;
        Ok(DoseIntervalOverride {
            id: ID(o.id.to_string()),
            municipality: o.municipality.into(),
            coupon_number: o.coupon.as_str().to_owned(),
            dose_number: i32::from(o.dose_number),
            reason: o.reason,
            created_at: o.created_at,
            created_by: o.created_by,
        })
    }

    /// End of day at your site: discards the doses left in a lot's open vial. No vial leaves
    /// the stock (it did when it was opened).
    async fn write_off_leftover_doses(
        &self,
        ctx: &Context<'_>,
        site: SiteCode,
        product: ProductCode,
        lot: LotNumber,
    ) -> async_graphql::Result<LeftoverWriteOff> {
        let actor = caller_actor(ctx)?;
        Ok(gql(doses::write_off_leftovers(store(ctx)?, actor, &site.0, &product.0, &lot.0).await)?.into())
    }
}

#[derive(Default)]
pub struct DoseQuery;

#[Object]
impl DoseQuery {
    /// Dose records you may read, newest first: a site those it recorded, a municipality its
    /// residents'. Prefectures and the nation read `doseCounts` instead.
    #[allow(clippy::too_many_arguments)]
    async fn dose_records(
        &self,
        ctx: &Context<'_>,
        coupon_number: Option<String>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        #[graphql(default)] include_voided: bool,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, DoseRecord, EmptyFields, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = doses::RecordFilter {
            coupon: coupon_number
                .map(|c| gql(parse_code::<CouponNumber>(&c, "couponNumber".into())))
                .transpose()?,
            from,
            to,
            include_voided,
        };
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _, first: Option<usize>, _| async move {
                let first = first.unwrap_or(50);
                if first > MAX_PAGE {
                    return Err(coded(format!("first: at most {MAX_PAGE}"), code::BAD_USER_INPUT));
                }
                let before = after
                    .map(|c| {
                        c.parse::<i64>()
                            .map_err(|_| coded("after: not a cursor from this list", code::BAD_USER_INPUT))
                    })
                    .transpose()?;
                let (rows, more) = gql(doses::list(store, actor, &f, before, first as u64).await)?;
                let mut conn = Connection::new(before.is_some(), more);
                conn.edges
                    .extend(rows.into_iter().map(|r| Edge::new(r.id.to_string(), DoseRecord(r))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One dose record you may read.
    async fn dose_record(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DoseRecord> {
        let actor = caller_actor(ctx)?;
        let id = record_id(&id, "id")?;
        Ok(DoseRecord(gql(doses::get(store(ctx)?, actor, id).await)?))
    }

    /// Doses given (voided records left out) from `from` to `to` (at most 366 days), by the
    /// person's municipality of residence, grouped by any of `by`. Scoped: a municipality its
    /// residents, a prefecture its municipalities, the nation all, a site what it recorded.
    #[allow(clippy::too_many_arguments)]
    async fn dose_counts(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        municipality: Option<MunicipalityCode>,
        prefecture: Option<PrefectureCode>,
        product: Option<ProductCode>,
        #[graphql(default)] by: Vec<DoseCountBy>,
    ) -> async_graphql::Result<Vec<DoseCount>> {
        let actor = caller_actor(ctx)?;
        let q = doses::CountQuery {
            from,
            to,
            municipality: municipality.map(|m| m.0),
            prefecture: prefecture.map(|p| p.0),
            product: product.map(|p| p.0),
            by: by.into_iter().map(Into::into).collect(),
        };
        Ok(gql(doses::counts(store(ctx)?, actor, &q).await)?
            .into_iter()
            .map(|c| DoseCount {
                day: c.day,
                municipality: c.municipality.map(Into::into),
                prefecture: c.prefecture.map(Into::into),
                product: c.product.map(Into::into),
                dose_number: c.dose_number.map(i32::from),
                doses: c.doses,
            })
            .collect())
    }

    /// Doses given at each site of a municipality from `from` to `to`: the consumption the
    /// municipality's allocation can weigh its sites by. Read like the municipality's stock.
    async fn dose_consumption(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        from: NaiveDate,
        to: NaiveDate,
    ) -> async_graphql::Result<Vec<SiteDoses>> {
        let actor = caller_actor(ctx)?;
        Ok(
            gql(doses::consumption_by_site(store(ctx)?, actor, &municipality.0, from, to).await)?
                .into_iter()
                .map(|(site, doses)| SiteDoses {
                    site: site.into(),
                    doses,
                })
                .collect(),
        )
    }

    /// A site's lots in doses: whole vials, the open vial's doses, doses available.
    async fn lot_doses(&self, ctx: &Context<'_>, site: SiteCode) -> async_graphql::Result<Vec<LotDoses>> {
        let actor = caller_actor(ctx)?;
        Ok(gql(doses::lot_doses(store(ctx)?, actor, &site.0).await)?
            .into_iter()
            .map(|l| LotDoses {
                available_doses: l.available(),
                product: l.product.into(),
                lot: l.lot.into(),
                expiry_date: l.expiry_date,
                on_hand: l.on_hand,
                open_doses: l.open_doses,
                doses_per_vial: l.doses_per_vial,
                open_vial_entry: l.open_vial_entry.map(|i| ID(i.to_string())),
            })
            .collect())
    }

    /// A site's end-of-day write-offs of open doses on days `from`–`to` (at most 366 days),
    /// oldest first: for whoever reads the site's stock.
    async fn dose_leftovers(
        &self,
        ctx: &Context<'_>,
        site: SiteCode,
        from: NaiveDate,
        to: NaiveDate,
    ) -> async_graphql::Result<Vec<LeftoverWriteOff>> {
        let actor = caller_actor(ctx)?;
        Ok(gql(doses::leftovers(store(ctx)?, actor, &site.0, from, to).await)?
            .into_iter()
            .map(LeftoverWriteOff::from)
            .collect())
    }

    /// The minimum intervals between doses in force (policy data: see each rule's source).
    async fn dose_interval_rules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DoseIntervalRule>> {
        caller_actor(ctx)?;
        Ok(gql(doses::interval_rules(store(ctx)?).await)?
            .into_iter()
            .map(|(product, n, rule, source)| DoseIntervalRule {
                product: product.into(),
                dose_number: i32::from(n),
                min_days: rule.min_days,
                min_months: rule.min_months,
                source,
            })
            .collect())
    }
}
