//! Person resolvers (VRS): a municipality's residents — look-up by coupon number, lists,
//! registration, changes, the resident-register import, coupons and their lines, moving in
//! (`linkEarlierRecords`), counts for the levels above, and the audit log.
//!
//! Personal fields are protected twice: a field guard ([`PersonFieldGuard`]) asks
//! `domain::authz::can_read_person_field` for each field read (My Number with its `purpose`
//! argument), and a field is only ever served from a [`Person`] whose read of that field was
//! audited by the domain service that loaded it (the resolvers pass the personal fields the
//! query selects, found by look-ahead, so a page of a list is audited as a whole before it is
//! returned). A field that somehow was not audited is refused as INTERNAL, never served.

use std::sync::Arc;

use async_graphql::{Context, Enum, Guard, ID, InputObject, Lookahead, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::authz::Actor;
use domain::codes;
use domain::personal::crypto::PersonalKeys;
use domain::personal::person::{PersonDetails, PersonField};
use domain::persons::{self as svc, MyNumberChange, Reader, coupons};

use super::scalars::{CouponLine, CouponNumber, MunicipalityCode, PrefectureCode};
use super::{Caller, caller_actor, gql, store};
use crate::error::{code, coded};

const MAX_PAGE: u64 = 200;
const DEFAULT_PAGE: u64 = 50;

/// The caller as a reader of personal data: actor and the token's subject (for the audit log).
fn reader<'a>(ctx: &Context<'a>) -> async_graphql::Result<Reader<'a>> {
    let actor = caller_actor(ctx)?;
    let subject = match ctx.data_opt::<Caller>() {
        Some(Caller(Some(p))) => p.subject.as_str(),
        _ => "",
    };
    Ok(Reader { actor, subject })
}

fn keys<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a PersonalKeys> {
    Ok(ctx.data::<Arc<PersonalKeys>>()?.as_ref())
}

fn page_size(first: Option<i32>) -> async_graphql::Result<u64> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n >= 1 && (n as u64) <= MAX_PAGE => Ok(n as u64),
        Some(_) => Err(coded(format!("first: 1 to {MAX_PAGE}"), code::BAD_USER_INPUT)),
    }
}

fn id_of(id: &ID, field: &str) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .map_err(|_| coded(format!("{field}: not a person id"), code::BAD_USER_INPUT))
}

/// The personal fields (other than My Number, which audits itself with its purpose) that a
/// selection of a `Person` reads.
fn selected_fields(look: Lookahead<'_>) -> Vec<PersonField> {
    [
        (PersonField::Name, "name"),
        (PersonField::NameKana, "nameKana"),
        (PersonField::BirthDate, "birthDate"),
        (PersonField::Sex, "sex"),
        (PersonField::Address, "address"),
        (PersonField::ResidentId, "residentId"),
    ]
    .into_iter()
    .filter(|(_, name)| look.field(name).exists())
    .map(|(f, _)| f)
    .collect()
}

/// Field guard: may the caller read `field` of a person held by `municipality`?
pub struct PersonFieldGuard<'a> {
    field: PersonField,
    municipality: &'a codes::MunicipalityCode,
    purpose: Option<&'a str>,
}

impl<'a> PersonFieldGuard<'a> {
    pub fn new(field: PersonField, municipality: &'a codes::MunicipalityCode) -> Self {
        PersonFieldGuard {
            field,
            municipality,
            purpose: None,
        }
    }

    pub fn with_purpose(field: PersonField, municipality: &'a codes::MunicipalityCode, purpose: &'a str) -> Self {
        PersonFieldGuard {
            field,
            municipality,
            purpose: Some(purpose),
        }
    }
}

impl Guard for PersonFieldGuard<'_> {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let actor = caller_actor(ctx)?;
        domain::authz::can_read_person_field(actor, self.municipality, self.field, self.purpose)
            .map_err(|d| coded(d.0, code::FORBIDDEN))
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::personal::person::Sex")]
pub enum Sex {
    NotKnown,
    Male,
    Female,
    NotApplicable,
}

/// A person (接種対象者) held by their municipality of residence. Personal fields are readable
/// only by that municipality, and every read is written to its audit log.
pub struct Person {
    p: svc::Person,
    audited: Vec<PersonField>,
}

impl Person {
    fn new(p: svc::Person, audited: &[PersonField]) -> Self {
        Person {
            p,
            audited: audited.to_vec(),
        }
    }

    fn audited(&self, f: PersonField) -> async_graphql::Result<()> {
        if self.audited.contains(&f) {
            Ok(())
        } else {
            tracing::error!(
                person = self.p.id,
                field = f.as_str(),
                "personal field requested without an audit row"
            );
            Err(coded("internal error", code::INTERNAL))
        }
    }
}

#[Object]
impl Person {
    async fn id(&self) -> ID {
        ID(self.p.id.to_string())
    }
    /// The municipality of residence that holds this row.
    async fn municipality(&self) -> MunicipalityCode {
        self.p.municipality.into()
    }
    /// 券番号, unique within the municipality.
    async fn coupon_number(&self) -> CouponNumber {
        self.p.coupon.into()
    }
    /// Whether a My Number is on record (reading it needs a purpose: `myNumber(purpose:)`).
    async fn has_my_number(&self) -> bool {
        self.p.has_my_number
    }
    /// Set when the municipality recorded the person as moved out (転出).
    async fn moved_out_on(&self) -> Option<NaiveDate> {
        self.p.moved_out_on
    }
    async fn version(&self) -> i32 {
        self.p.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.p.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.p.updated_at
    }
    async fn updated_by(&self) -> &str {
        &self.p.updated_by
    }
    /// Name (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::Name, &self.p.municipality)")]
    async fn name(&self) -> async_graphql::Result<&str> {
        self.audited(PersonField::Name)?;
        Ok(&self.p.details.name)
    }
    /// Name in half-width katakana (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::NameKana, &self.p.municipality)")]
    async fn name_kana(&self) -> async_graphql::Result<&str> {
        self.audited(PersonField::NameKana)?;
        Ok(&self.p.details.name_kana)
    }
    /// Date of birth (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::BirthDate, &self.p.municipality)")]
    async fn birth_date(&self) -> async_graphql::Result<NaiveDate> {
        self.audited(PersonField::BirthDate)?;
        Ok(self.p.details.birth_date)
    }
    /// Sex, ISO/IEC 5218 (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::Sex, &self.p.municipality)")]
    async fn sex(&self) -> async_graphql::Result<Sex> {
        self.audited(PersonField::Sex)?;
        Ok(self.p.details.sex.into())
    }
    /// Address (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::Address, &self.p.municipality)")]
    async fn address(&self) -> async_graphql::Result<&str> {
        self.audited(PersonField::Address)?;
        Ok(&self.p.details.address)
    }
    /// 個別宛名番号: the municipality's own person number (audited).
    #[graphql(guard = "PersonFieldGuard::new(PersonField::ResidentId, &self.p.municipality)")]
    async fn resident_id(&self) -> async_graphql::Result<Option<&str>> {
        self.audited(PersonField::ResidentId)?;
        Ok(self.p.details.resident_id.as_deref())
    }
    /// My Number (12 digits), for the person's municipality only and only with a stated
    /// `purpose`, which is written to the audit log with the read. Null when none is on record.
    #[graphql(guard = "PersonFieldGuard::with_purpose(PersonField::MyNumber, &self.p.municipality, &purpose)")]
    async fn my_number(&self, ctx: &Context<'_>, purpose: String) -> async_graphql::Result<Option<String>> {
        let purpose = gql(svc::purpose("purpose", &purpose))?;
        let n = gql(svc::my_number(store(ctx)?, keys(ctx)?, &reader(ctx)?, self.p.id, &purpose).await)?;
        Ok(n.map(|n| n.expose().to_owned()))
    }
    /// This person's doses, oldest first: their own records and those of the earlier rows
    /// linked by `linkEarlierRecords` (転入), voided ones left out. The person's municipality only.
    async fn dose_history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::doses::DoseRecord>> {
        let records = gql(domain::doses::history(store(ctx)?, caller_actor(ctx)?, self.p.id).await)?;
        Ok(records.into_iter().map(super::doses::DoseRecord).collect())
    }
    /// Rows of this person in other municipalities linked by `linkEarlierRecords` (転入): their
    /// dose records are this person's history. Shows no personal field of those rows.
    async fn earlier_records(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PersonLink>> {
        let links = gql(svc::links(store(ctx)?, caller_actor(ctx)?, self.p.id).await)?;
        Ok(links.into_iter().map(PersonLink).collect())
    }
}

/// A link from a person to an earlier row of the same person elsewhere.
pub struct PersonLink(svc::Link);

#[Object]
impl PersonLink {
    /// The earlier row's person id (in its own municipality).
    async fn earlier_person_id(&self) -> ID {
        ID(self.0.earlier_person.to_string())
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn coupon_number(&self) -> CouponNumber {
        self.0.coupon.into()
    }
    async fn moved_out_on(&self) -> Option<NaiveDate> {
        self.0.moved_out_on
    }
    async fn linked_at(&self) -> DateTime<Utc> {
        self.0.linked_at
    }
    async fn linked_by(&self) -> &str {
        &self.0.linked_by
    }
    async fn purpose(&self) -> &str {
        &self.0.purpose
    }
}

/// A page of persons in coupon-number order.
#[derive(SimpleObject)]
pub struct PersonPage {
    pub nodes: Vec<Person>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

/// Persons of one municipality (no personal data).
#[derive(SimpleObject)]
pub struct PersonCount {
    pub municipality: MunicipalityCode,
    /// Persons not recorded as moved out.
    pub residents: u64,
    pub moved_out: u64,
}

/// One audited read of personal data.
#[derive(SimpleObject)]
pub struct PersonAccess {
    pub id: ID,
    pub person_id: ID,
    pub municipality: MunicipalityCode,
    /// `ROLE:scope` of the reader.
    pub actor: String,
    /// The reader's token subject.
    pub subject: String,
    pub role: String,
    pub at: DateTime<Utc>,
    /// The fields read (names, e.g. `name`, `myNumber`).
    pub fields: Vec<String>,
    /// The purpose stated with the read (My Number, earlier records).
    pub purpose: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(SimpleObject)]
pub struct PersonAccessPage {
    pub nodes: Vec<PersonAccess>,
    /// Pass as `before` for the next (older) page.
    pub end_cursor: Option<ID>,
    pub has_next_page: bool,
}

/// One refused field of one row of a resident-register import.
#[derive(SimpleObject)]
pub struct PersonRowRejection {
    /// Line in the file (the header is line 1).
    pub row: u64,
    /// The column.
    pub field: String,
    /// Stable code: REQUIRED, TOO_LONG, LENGTH, NOT_DIGIT, CHECK_DIGIT, INVALID, INVALID_DATE,
    /// FUTURE_DATE, TOO_OLD, CONTROL_CHARACTER, WRONG_MUNICIPALITY, DUPLICATE_IN_FILE, ROW_SHAPE.
    pub code: String,
    /// The rule in words (never the value).
    pub reason: String,
}

/// What an import did.
#[derive(SimpleObject)]
pub struct PersonImportReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Distinct rows refused.
    pub rejected_rows: u64,
    pub rejected: Vec<PersonRowRejection>,
}

/// A batch of issued coupons.
pub struct CouponBatch(coupons::CouponBatch);

#[Object]
impl CouponBatch {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    /// 券種 (0-9).
    async fn kind(&self) -> i32 {
        i32::from(self.0.kind)
    }
    /// 回数 (1-9).
    async fn dose_number(&self) -> i32 {
        i32::from(self.0.dose_number)
    }
    /// How many coupons the batch holds.
    async fn size(&self) -> u64 {
        self.0.coupons
    }
    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }
    async fn issued_by(&self) -> &str {
        &self.0.issued_by
    }
    /// The coupons in coupon-number order.
    async fn coupons(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<CouponNumber>,
    ) -> async_graphql::Result<CouponPage> {
        let first = page_size(first)?;
        let (page, more) = gql(coupons::lines(
            store(ctx)?,
            caller_actor(ctx)?,
            self.0.id,
            after.as_ref().map(|a| &a.0),
            first,
        )
        .await)?;
        Ok(CouponPage {
            end_cursor: page.last().map(|c| c.coupon.into()),
            nodes: page
                .into_iter()
                .map(|c| IssuedCoupon {
                    person_id: ID(c.person.to_string()),
                    coupon_number: c.coupon.into(),
                    line: c.line.into(),
                })
                .collect(),
            has_next_page: more,
        })
    }
    /// The whole batch as CSV for printing: `person_id,coupon_number,line`.
    async fn csv(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        gql(coupons::batch_csv(store(ctx)?, caller_actor(ctx)?, self.0.id).await)
    }
}

/// One coupon: its person and the 18-digit OCR/QR line.
#[derive(SimpleObject)]
pub struct IssuedCoupon {
    pub person_id: ID,
    pub coupon_number: CouponNumber,
    pub line: CouponLine,
}

#[derive(SimpleObject)]
pub struct CouponPage {
    pub nodes: Vec<IssuedCoupon>,
    pub end_cursor: Option<CouponNumber>,
    pub has_next_page: bool,
}

/// The parts of a scanned coupon line.
#[derive(SimpleObject)]
pub struct CouponLineParts {
    pub line: CouponLine,
    /// 券種 (0-9).
    pub kind: i32,
    /// 回数 (1-9).
    pub dose_number: i32,
    pub municipality: MunicipalityCode,
    pub coupon_number: CouponNumber,
}

/// A person's details. `myNumber`: leave it out to keep the stored one, `null` to remove it,
/// 12 digits (check digit verified) to set it.
#[derive(InputObject)]
pub struct PersonInput {
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub address: String,
    /// 個別宛名番号 (optional).
    pub resident_id: Option<String>,
    pub my_number: MaybeUndefined<String>,
}

impl PersonInput {
    fn split(self) -> async_graphql::Result<(PersonDetails, MyNumberChange)> {
        let number = match self.my_number {
            MaybeUndefined::Undefined => MyNumberChange::Keep,
            MaybeUndefined::Null => MyNumberChange::Clear,
            MaybeUndefined::Value(s) => {
                // The parser's reason never repeats the digits.
                let n = codes::MyNumber::parse(s.trim())
                    .map_err(|e| coded(format!("input.myNumber: {e}"), code::BAD_USER_INPUT))?;
                MyNumberChange::Set(n)
            }
        };
        Ok((
            PersonDetails {
                resident_id: self.resident_id,
                name: self.name,
                name_kana: self.name_kana,
                birth_date: self.birth_date,
                sex: self.sex.into(),
                address: self.address,
            },
            number,
        ))
    }
}

#[derive(InputObject)]
pub struct IssueCouponsInput {
    pub municipality: MunicipalityCode,
    /// 券種 (0-9).
    pub kind: i32,
    /// 回数 (1-9).
    pub dose_number: i32,
    /// The persons to cover; leave out (or set `allResidents`) for every current resident.
    pub persons: Option<Vec<ID>>,
    #[graphql(default)]
    pub all_residents: bool,
}

#[derive(Default)]
pub struct PersonQuery;

#[Object]
impl PersonQuery {
    /// The person with `couponNumber` in `municipality` (what a coupon names); the person's
    /// municipality only. Personal fields read are audited.
    async fn person(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        coupon_number: CouponNumber,
    ) -> async_graphql::Result<Person> {
        let fields = selected_fields(ctx.look_ahead());
        let p = gql(svc::by_coupon(store(ctx)?, &reader(ctx)?, &municipality.0, &coupon_number.0, &fields).await)?;
        Ok(Person::new(p, &fields))
    }

    /// A person by id; the person's municipality only (others: NOT_FOUND).
    async fn person_by_id(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Person> {
        let fields = selected_fields(ctx.look_ahead());
        let id = id_of(&id, "id")?;
        let p = gql(svc::get(store(ctx)?, &reader(ctx)?, id, &fields).await)?;
        Ok(Person::new(p, &fields))
    }

    /// A municipality's persons in coupon-number order (its own only). Every person of the page
    /// is audited for the personal fields selected.
    async fn persons(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        #[graphql(default)] residents_only: bool,
        first: Option<i32>,
        after: Option<CouponNumber>,
    ) -> async_graphql::Result<PersonPage> {
        let fields = selected_fields(ctx.look_ahead().field("nodes"));
        let first = page_size(first)?;
        let (page, more) = gql(svc::list(
            store(ctx)?,
            &reader(ctx)?,
            &municipality.0,
            residents_only,
            after.as_ref().map(|a| &a.0),
            first,
            &fields,
        )
        .await)?;
        Ok(PersonPage {
            end_cursor: page.last().map(|p| p.coupon.to_string()),
            nodes: page.into_iter().map(|p| Person::new(p, &fields)).collect(),
            has_next_page: more,
        })
    }

    /// Persons per municipality: NATIONAL everywhere, a PREFECTURE its municipalities, a
    /// MUNICIPALITY itself. Counts only, never names.
    async fn person_counts(
        &self,
        ctx: &Context<'_>,
        prefecture: Option<PrefectureCode>,
        municipality: Option<MunicipalityCode>,
    ) -> async_graphql::Result<Vec<PersonCount>> {
        let counts = gql(svc::counts(
            store(ctx)?,
            caller_actor(ctx)?,
            prefecture.map(|p| p.0),
            municipality.map(|m| m.0),
        )
        .await)?;
        Ok(counts
            .into_iter()
            .map(|c| PersonCount {
                municipality: c.municipality.into(),
                residents: c.residents,
                moved_out: c.moved_out,
            })
            .collect())
    }

    /// The audit log of reads of `municipality`'s persons (optionally one person), newest
    /// first; that municipality only.
    async fn person_access_log(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        person: Option<ID>,
        first: Option<i32>,
        before: Option<ID>,
    ) -> async_graphql::Result<PersonAccessPage> {
        let first = page_size(first)?;
        let person = person.as_ref().map(|p| id_of(p, "person")).transpose()?;
        let before = before.as_ref().map(|b| id_of(b, "before")).transpose()?;
        let (entries, more) =
            gql(svc::audit::access_log(store(ctx)?, caller_actor(ctx)?, &municipality.0, person, before, first).await)?;
        Ok(PersonAccessPage {
            end_cursor: entries.last().map(|e| ID(e.id.to_string())),
            nodes: entries
                .into_iter()
                .map(|e| PersonAccess {
                    id: ID(e.id.to_string()),
                    person_id: ID(e.person.to_string()),
                    municipality: e.municipality.into(),
                    actor: e.actor,
                    subject: e.subject,
                    role: e.role,
                    at: e.at,
                    fields: e.fields,
                    purpose: e.purpose,
                })
                .collect(),
            has_next_page: more,
        })
    }

    /// A municipality's coupon batches, newest first (its own only).
    async fn coupon_batches(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
    ) -> async_graphql::Result<Vec<CouponBatch>> {
        let b = gql(coupons::batches(store(ctx)?, caller_actor(ctx)?, &municipality.0).await)?;
        Ok(b.into_iter().map(CouponBatch).collect())
    }

    /// One coupon batch with its lines (its municipality only).
    async fn coupon_batch(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<CouponBatch> {
        let id = id_of(&id, "id")?;
        Ok(CouponBatch(gql(
            coupons::batch(store(ctx)?, caller_actor(ctx)?, id).await
        )?))
    }

    /// Reads a scanned coupon line (any signed-in caller; a site before `recordDose`). A bad
    /// line is refused before this runs (the `CouponLine` scalar), naming the part and reason.
    async fn parse_coupon_line(&self, ctx: &Context<'_>, line: CouponLine) -> async_graphql::Result<CouponLineParts> {
        caller_actor(ctx)?;
        let l = line.0;
        Ok(CouponLineParts {
            kind: i32::from(l.kind()),
            dose_number: i32::from(l.dose()),
            municipality: l.municipality().into(),
            coupon_number: l.coupon().into(),
            line: l.into(),
        })
    }
}

#[derive(Default)]
pub struct PersonMutation;

/// The actor for a write, and the audit of the person it returns.
async fn returned(ctx: &Context<'_>, p: svc::Person) -> async_graphql::Result<Person> {
    let fields = selected_fields(ctx.look_ahead());
    gql(svc::audit::record(store(ctx)?, &reader(ctx)?, &[(&p.municipality, p.id)], &fields, None).await)?;
    Ok(Person::new(p, &fields))
}

fn actor_of<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    caller_actor(ctx)
}

#[Object]
impl PersonMutation {
    /// Registers a person in `municipality` (its own; version 1). The coupon number must be
    /// unused there (CONFLICT otherwise).
    async fn create_person(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        coupon_number: CouponNumber,
        input: PersonInput,
    ) -> async_graphql::Result<Person> {
        let (details, number) = input.split()?;
        let my_number = match number {
            MyNumberChange::Set(n) => Some(n),
            MyNumberChange::Keep | MyNumberChange::Clear => None,
        };
        let p = gql(svc::create(
            store(ctx)?,
            keys(ctx)?,
            actor_of(ctx)?,
            municipality.0,
            coupon_number.0,
            details,
            my_number,
        )
        .await)?;
        returned(ctx, p).await
    }

    /// Replaces a person's details (its municipality only); `expectedVersion` refuses a stale
    /// view. An identical change changes nothing (same version).
    async fn update_person(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i32>,
        input: PersonInput,
    ) -> async_graphql::Result<Person> {
        let id = id_of(&id, "id")?;
        let (details, number) = input.split()?;
        let p = gql(svc::update(
            store(ctx)?,
            keys(ctx)?,
            actor_of(ctx)?,
            id,
            expected_version,
            details,
            number,
        )
        .await)?;
        returned(ctx, p).await
    }

    /// Records that a person moved out (転出) on a day (`null` undoes it). The row and its
    /// history stay with the municipality.
    async fn record_move_out(
        &self,
        ctx: &Context<'_>,
        id: ID,
        moved_out_on: Option<NaiveDate>,
    ) -> async_graphql::Result<Person> {
        let id = id_of(&id, "id")?;
        let p = gql(svc::record_move_out(store(ctx)?, actor_of(ctx)?, id, moved_out_on).await)?;
        returned(ctx, p).await
    }

    /// Imports residents from a resident-register CSV (see README) into `municipality` (its
    /// own). Valid rows are kept; each refused field is listed by row, column and code.
    async fn import_persons(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
        csv: String,
    ) -> async_graphql::Result<PersonImportReport> {
        let r = gql(svc::import::import_csv(
            store(ctx)?,
            keys(ctx)?,
            actor_of(ctx)?,
            &municipality.0,
            csv.as_bytes(),
            &|_, _| {},
        )
        .await)?;
        Ok(PersonImportReport {
            rejected_rows: r.rejected_rows() as u64,
            inserted: r.inserted,
            updated: r.updated,
            unchanged: r.unchanged,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| PersonRowRejection {
                    row: x.row,
                    field: x.field,
                    code: x.code.to_string(),
                    reason: x.reason,
                })
                .collect(),
        })
    }

    /// Issues a batch of coupons for a dose series (its own municipality): for the persons
    /// listed, or every current resident.
    async fn issue_coupons(&self, ctx: &Context<'_>, input: IssueCouponsInput) -> async_graphql::Result<CouponBatch> {
        let targets = match (input.persons, input.all_residents) {
            (Some(_), true) => {
                return Err(coded(
                    "input: give either persons or allResidents, not both",
                    code::BAD_USER_INPUT,
                ));
            }
            (Some(ids), false) => coupons::CouponTargets::Persons(
                ids.iter()
                    .map(|i| id_of(i, "input.persons"))
                    .collect::<async_graphql::Result<Vec<_>>>()?,
            ),
            (None, _) => coupons::CouponTargets::AllResidents,
        };
        let kind = u8::try_from(input.kind).unwrap_or(u8::MAX);
        let dose = u8::try_from(input.dose_number).unwrap_or(u8::MAX);
        let b = gql(coupons::issue(store(ctx)?, actor_of(ctx)?, &input.municipality.0, kind, dose, targets).await)?;
        Ok(CouponBatch(b))
    }

    /// Moving in (転入): finds the rows of this person in other municipalities by My Number (the
    /// person must have one on record) and links them, recording who, when and `purpose`; each
    /// row found is audited in its own municipality's log. The earlier rows are not changed.
    async fn link_earlier_records(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
        purpose: String,
    ) -> async_graphql::Result<Vec<PersonLink>> {
        let id = id_of(&person_id, "personId")?;
        let purpose = gql(svc::purpose("purpose", &purpose))?;
        let links = gql(svc::link_earlier_records(store(ctx)?, &reader(ctx)?, id, &purpose).await)?;
        Ok(links.into_iter().map(PersonLink).collect())
    }
}
