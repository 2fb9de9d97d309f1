//! The person service (VRS): persons held by their municipality of residence — registered one
//! by one or imported from the resident register ([`import`]), looked up by coupon number,
//! listed, changed; coupons issued in batches ([`coupons`]); a moved person's earlier rows in
//! other municipalities found by My Number and linked (転入); counts for the levels above; and
//! the audit log of every read of personal data ([`audit`]).
//!
//! Who may do what is decided in [`crate::authz`] (`can_manage_persons`, `person_read_scope`,
//! `can_read_person_field`, `person_count_scope`). Every function that hands out personal
//! fields takes the list of fields the caller will read and writes the audit rows *before* it
//! returns them, also for a whole page of a list; if the audit cannot be written, nothing is
//! returned.
//!
//! My Number is stored only sealed (AES-256-GCM, [`crate::personal::crypto`]) with its keyed
//! lookup hash; it is opened only in [`my_number`], for the person's municipality and with a
//! stated purpose. The associated data of a seal is `person:{municipality}:{coupon}`, which
//! never changes for a row, so a sealed value copied to another row does not open.
//!
//! Must not: log, format into an error, or return in `Debug` any personal value (errors name
//! the field and a code; ids and municipality codes are fine); know GraphQL.

pub mod audit;
pub mod coupons;
pub mod import;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::authz::{self, Actor, PersonCountScope};
use crate::codes::{CouponNumber, MunicipalityCode, MyNumber, PrefectureCode};
use crate::entities::{person, person_link};
use crate::error::{DomainError, DomainResult};
use crate::personal::crypto::{PersonalKeys, Sealed};
use crate::personal::person::{FieldError, PersonDetails, PersonField, Purpose, Sex};
use crate::stock::today_in_japan;
use crate::store::{Store, fixed};

pub use audit::{AccessEntry, Reader};

/// A person as the service hands it out. `Debug` shows no personal value (the details redact
/// themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub municipality: MunicipalityCode,
    pub coupon: CouponNumber,
    pub details: PersonDetails,
    /// Whether a (sealed) My Number is on record.
    pub has_my_number: bool,
    pub moved_out_on: Option<NaiveDate>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// What to do with the stored My Number in a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyNumberChange {
    Keep,
    Clear,
    Set(MyNumber),
}

/// The associated data a person's My Number is sealed with.
pub fn seal_context(municipality: &MunicipalityCode, coupon: &CouponNumber) -> String {
    format!("person:{municipality}:{coupon}")
}

pub(crate) fn corrupt(id: i64, what: &str) -> DomainError {
    DomainError::Corrupt(format!("person {id}: {what}"))
}

pub(crate) fn from_model(m: person::Model) -> DomainResult<Person> {
    let id = m.id;
    Ok(Person {
        id,
        municipality: m
            .municipality_code
            .parse()
            .map_err(|_| corrupt(id, "bad municipality code"))?,
        coupon: m.coupon_number.parse().map_err(|_| corrupt(id, "bad coupon number"))?,
        details: PersonDetails {
            resident_id: m.resident_id,
            name: m.name,
            name_kana: m.name_kana,
            birth_date: m.birth_date,
            sex: Sex::from_code(m.sex).ok_or_else(|| corrupt(id, "bad sex code"))?,
            address: m.address,
        },
        has_my_number: m.my_number_sealed.is_some(),
        moved_out_on: m.moved_out_on,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
        updated_by: m.updated_by,
    })
}

fn invalid(e: FieldError) -> DomainError {
    DomainError::invalid(e.field.clone(), format!("{} ({})", e.reason, e.code))
}

/// Checks details given through the API (`field` prefixes, e.g. `input`).
pub fn check_details(prefix: &str, d: PersonDetails) -> DomainResult<PersonDetails> {
    use crate::personal::person::{MAX_ADDRESS, MAX_NAME, check_birth_date, resident_id, text};
    let f = |name: &str| format!("{prefix}.{name}");
    Ok(PersonDetails {
        resident_id: resident_id(&f("residentId"), d.resident_id.as_deref()).map_err(invalid)?,
        name: text(&f("name"), &d.name, MAX_NAME).map_err(invalid)?,
        name_kana: text(&f("nameKana"), &d.name_kana, MAX_NAME).map_err(invalid)?,
        birth_date: check_birth_date(&f("birthDate"), d.birth_date, today_in_japan()).map_err(invalid)?,
        sex: d.sex,
        address: text(&f("address"), &d.address, MAX_ADDRESS).map_err(invalid)?,
    })
}

/// A stated purpose from the API, checked.
pub fn purpose(field: &str, value: &str) -> DomainResult<Purpose> {
    Purpose::parse(field, value).map_err(invalid)
}

fn key_error(e: crate::personal::crypto::KeyError) -> DomainError {
    DomainError::Corrupt(format!("personal data keys: {e}"))
}

async fn find_model<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Option<person::Model>> {
    Ok(person::Entity::find_by_id(id).one(db).await?)
}

/// Person `id`'s row and its municipality (NOT_FOUND if there is no such person).
async fn model_in_municipality<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<(person::Model, MunicipalityCode)> {
    let m = find_model(db, id)
        .await?
        .ok_or_else(|| DomainError::not_found("person", id))?;
    let municipality: MunicipalityCode = m
        .municipality_code
        .parse()
        .map_err(|_| corrupt(id, "bad municipality"))?;
    Ok((m, municipality))
}

/// Person `id`'s row and municipality, if `actor` manages that municipality's persons; another
/// municipality's resident is not revealed to exist (NOT_FOUND either way).
async fn managed_model<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    id: i64,
) -> DomainResult<(person::Model, MunicipalityCode)> {
    let (m, municipality) = model_in_municipality(db, id).await?;
    if authz::can_manage_persons(actor, &municipality).is_err() {
        return Err(DomainError::not_found("person", id));
    }
    Ok((m, municipality))
}

async fn by_coupon_model<C: ConnectionTrait>(
    db: &C,
    municipality: &MunicipalityCode,
    coupon: &CouponNumber,
) -> DomainResult<Option<person::Model>> {
    Ok(person::Entity::find()
        .filter(Expr::col(person::Column::MunicipalityCode).eq(fixed(municipality.as_str())))
        .filter(Expr::col(person::Column::CouponNumber).eq(fixed(coupon.as_str())))
        .one(db)
        .await?)
}

/// Registers a person in `municipality` (version 1). A coupon number already used there is
/// CONFLICT.
pub async fn create(
    store: &Store,
    keys: &PersonalKeys,
    actor: &Actor,
    municipality: MunicipalityCode,
    coupon: CouponNumber,
    details: PersonDetails,
    my_number: Option<MyNumber>,
) -> DomainResult<Person> {
    authz::can_manage_persons(actor, &municipality)?;
    let details = check_details("input", details)?;
    let (key_id, sealed, hash) = match &my_number {
        Some(n) => {
            let s = keys
                .seal_my_number(n, &seal_context(&municipality, &coupon))
                .map_err(key_error)?;
            (Some(s.key_id), Some(s.blob), Some(keys.lookup_hash(n)))
        }
        None => (None, None, None),
    };
    let tx = store.write().await?;
    if by_coupon_model(&*tx, &municipality, &coupon).await?.is_some() {
        return Err(DomainError::Conflict(format!(
            "coupon number {coupon} is already used in {municipality}"
        )));
    }
    let now = Utc::now();
    let m = person::ActiveModel {
        municipality_code: Set(municipality.to_string()),
        coupon_number: Set(coupon.to_string()),
        resident_id: Set(details.resident_id.clone()),
        name: Set(details.name.clone()),
        name_kana: Set(details.name_kana.clone()),
        birth_date: Set(details.birth_date),
        sex: Set(details.sex.code()),
        address: Set(details.address.clone()),
        my_number_key_id: Set(key_id),
        my_number_sealed: Set(sealed),
        my_number_hash: Set(hash),
        moved_out_on: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        updated_by: Set(actor.label()),
        ..Default::default()
    }
    .insert(&*tx)
    .await?;
    tx.commit().await?;
    tracing::info!(person = m.id, municipality = %municipality, actor = %actor.label(), "person registered");
    from_model(m)
}

/// Replaces a person's details (and changes or clears the My Number). `expected_version`, when
/// given, refuses acting on a stale view (CONFLICT). An identical change changes nothing.
pub async fn update(
    store: &Store,
    keys: &PersonalKeys,
    actor: &Actor,
    id: i64,
    expected_version: Option<i32>,
    details: PersonDetails,
    my_number: MyNumberChange,
) -> DomainResult<Person> {
    let details = check_details("input", details)?;
    let tx = store.write().await?;
    let (old, municipality) = managed_model(&*tx, actor, id).await?;
    if let Some(v) = expected_version
        && v != old.version
    {
        return Err(DomainError::Conflict(format!(
            "person {id} is at version {}, not {v}; reload and try again",
            old.version
        )));
    }
    let coupon: CouponNumber = old.coupon_number.parse().map_err(|_| corrupt(id, "bad coupon"))?;
    let current = from_model(old.clone())?;
    let (key_id, sealed, hash) = match my_number {
        MyNumberChange::Keep => (
            old.my_number_key_id.clone(),
            old.my_number_sealed.clone(),
            old.my_number_hash.clone(),
        ),
        MyNumberChange::Clear => (None, None, None),
        MyNumberChange::Set(n) => {
            let h = keys.lookup_hash(&n);
            if old.my_number_hash.as_deref() == Some(h.as_str()) {
                (
                    old.my_number_key_id.clone(),
                    old.my_number_sealed.clone(),
                    old.my_number_hash.clone(),
                )
            } else {
                let s = keys
                    .seal_my_number(&n, &seal_context(&municipality, &coupon))
                    .map_err(key_error)?;
                (Some(s.key_id), Some(s.blob), Some(h))
            }
        }
    };
    if current.details == details && hash == old.my_number_hash {
        return Ok(current);
    }
    let mut m: person::ActiveModel = old.clone().into();
    m.resident_id = Set(details.resident_id.clone());
    m.name = Set(details.name.clone());
    m.name_kana = Set(details.name_kana.clone());
    m.birth_date = Set(details.birth_date);
    m.sex = Set(details.sex.code());
    m.address = Set(details.address.clone());
    m.my_number_key_id = Set(key_id);
    m.my_number_sealed = Set(sealed);
    m.my_number_hash = Set(hash);
    m.version = Set(old.version + 1);
    m.updated_at = Set(Utc::now());
    m.updated_by = Set(actor.label());
    let m = m.update(&*tx).await?;
    tx.commit().await?;
    tracing::info!(person = id, version = m.version, actor = %actor.label(), "person changed");
    from_model(m)
}

/// Records that a person moved out (転出) on `on`: the row stays (with its history) and keeps
/// being the municipality's; it only stops counting as a resident.
pub async fn record_move_out(store: &Store, actor: &Actor, id: i64, on: Option<NaiveDate>) -> DomainResult<Person> {
    if let Some(d) = on
        && d > today_in_japan()
    {
        return Err(DomainError::invalid("movedOutOn", "must not be in the future"));
    }
    let tx = store.write().await?;
    let (old, _) = managed_model(&*tx, actor, id).await?;
    if old.moved_out_on == on {
        return from_model(old);
    }
    let version = old.version;
    let mut m: person::ActiveModel = old.into();
    m.moved_out_on = Set(on);
    m.version = Set(version + 1);
    m.updated_at = Set(Utc::now());
    m.updated_by = Set(actor.label());
    let m = m.update(&*tx).await?;
    tx.commit().await?;
    from_model(m)
}

/// The person's row if the reader may see it; `None` for a person that does not exist or lies
/// outside the reader's scope (not revealed).
fn in_scope(scope: Option<MunicipalityCode>, m: &person::Model) -> bool {
    scope.is_none_or(|s| s.as_str() == m.municipality_code)
}

/// One person by id, auditing `fields` (the personal fields the caller will read).
pub async fn get(store: &Store, reader: &Reader<'_>, id: i64, fields: &[PersonField]) -> DomainResult<Person> {
    let scope = authz::person_read_scope(reader.actor)?;
    let m = find_model(store.db(), id)
        .await?
        .filter(|m| in_scope(scope, m))
        .ok_or_else(|| DomainError::not_found("person", id))?;
    let p = from_model(m)?;
    audit::record(store, reader, &[(&p.municipality, p.id)], fields, None).await?;
    Ok(p)
}

/// The person with `coupon` in `municipality` (what a coupon's line names), auditing `fields`.
pub async fn by_coupon(
    store: &Store,
    reader: &Reader<'_>,
    municipality: &MunicipalityCode,
    coupon: &CouponNumber,
    fields: &[PersonField],
) -> DomainResult<Person> {
    let scope = authz::person_read_scope(reader.actor)?;
    if scope.is_some_and(|s| s != *municipality) {
        return Err(DomainError::Forbidden(format!(
            "persons of {municipality} are read only by that municipality"
        )));
    }
    // Decided before the look-up, so a refused field reveals nothing about who exists.
    audit::authorize(reader, municipality, fields, None)?;
    let not_found = || DomainError::not_found("coupon number", format!("{coupon} in {municipality}"));
    if store.backend() == sea_orm::DbBackend::Postgres && !fields.is_empty() {
        let m = audit::by_coupon_audited_pg(store.db(), reader, municipality, coupon, fields)
            .await?
            .ok_or_else(not_found)?;
        return from_model(m);
    }
    let m = by_coupon_model(store.db(), municipality, coupon)
        .await?
        .ok_or_else(not_found)?;
    let p = from_model(m)?;
    audit::record(store, reader, &[(&p.municipality, p.id)], fields, None).await?;
    Ok(p)
}

/// A page of a municipality's persons in coupon-number order, after `after`; the second value
/// says whether more follow. Every person on the page is audited for `fields`.
pub async fn list(
    store: &Store,
    reader: &Reader<'_>,
    municipality: &MunicipalityCode,
    residents_only: bool,
    after: Option<&CouponNumber>,
    first: u64,
    fields: &[PersonField],
) -> DomainResult<(Vec<Person>, bool)> {
    let scope = authz::person_read_scope(reader.actor)?;
    if scope.is_some_and(|s| s != *municipality) {
        return Err(DomainError::Forbidden(format!(
            "persons of {municipality} are read only by that municipality"
        )));
    }
    let mut q = person::Entity::find()
        .filter(Expr::col(person::Column::MunicipalityCode).eq(fixed(municipality.as_str())))
        .order_by_asc(person::Column::CouponNumber)
        .limit(first + 1);
    if let Some(a) = after {
        q = q.filter(Expr::col(person::Column::CouponNumber).gt(fixed(a.as_str())));
    }
    if residents_only {
        q = q.filter(person::Column::MovedOutOn.is_null());
    }
    let mut rows = q.all(store.db()).await?;
    let more = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let persons = rows.into_iter().map(from_model).collect::<DomainResult<Vec<_>>>()?;
    let audited: Vec<(&MunicipalityCode, i64)> = persons.iter().map(|p| (&p.municipality, p.id)).collect();
    audit::record(store, reader, &audited, fields, None).await?;
    Ok((persons, more))
}

/// A person's My Number, opened for the person's municipality with a stated purpose (audited
/// with the purpose before it is returned). `None` when none is on record.
pub async fn my_number(
    store: &Store,
    keys: &PersonalKeys,
    reader: &Reader<'_>,
    id: i64,
    purpose: &Purpose,
) -> DomainResult<Option<MyNumber>> {
    let (m, municipality) = model_in_municipality(store.db(), id).await?;
    authz::can_read_person_field(
        reader.actor,
        &municipality,
        PersonField::MyNumber,
        Some(purpose.as_str()),
    )?;
    audit::record(
        store,
        reader,
        &[(&municipality, id)],
        &[PersonField::MyNumber],
        Some(purpose),
    )
    .await?;
    let (Some(key_id), Some(blob)) = (m.my_number_key_id, m.my_number_sealed) else {
        return Ok(None);
    };
    let coupon: CouponNumber = m.coupon_number.parse().map_err(|_| corrupt(id, "bad coupon"))?;
    let n = keys
        .open_my_number(&Sealed { key_id, blob }, &seal_context(&municipality, &coupon))
        .map_err(key_error)?;
    Ok(Some(n))
}

/// A link from a person to an earlier row of the same person in another municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub earlier_person: i64,
    pub municipality: MunicipalityCode,
    pub coupon: CouponNumber,
    pub moved_out_on: Option<NaiveDate>,
    pub linked_at: DateTime<Utc>,
    pub linked_by: String,
    pub purpose: String,
}

/// The links of person `id` (its municipality only). No personal field leaves here: an
/// earlier row is shown by its id, municipality, coupon number and move-out date.
pub async fn links(store: &Store, actor: &Actor, id: i64) -> DomainResult<Vec<Link>> {
    managed_model(store.db(), actor, id).await?;
    load_links(store.db(), id).await
}

async fn load_links<C: ConnectionTrait>(db: &C, id: i64) -> DomainResult<Vec<Link>> {
    let rows = person_link::Entity::find()
        .filter(person_link::Column::PersonId.eq(id))
        .order_by_asc(person_link::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|l| l.earlier_person_id).collect();
    let earlier: std::collections::HashMap<i64, person::Model> = if ids.is_empty() {
        Default::default()
    } else {
        person::Entity::find()
            .filter(person::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect()
    };
    rows.into_iter()
        .map(|l| {
            let e = earlier
                .get(&l.earlier_person_id)
                .ok_or_else(|| corrupt(l.earlier_person_id, "linked person missing"))?;
            Ok(Link {
                earlier_person: e.id,
                municipality: e
                    .municipality_code
                    .parse()
                    .map_err(|_| corrupt(e.id, "bad municipality"))?,
                coupon: e.coupon_number.parse().map_err(|_| corrupt(e.id, "bad coupon"))?,
                moved_out_on: e.moved_out_on,
                linked_at: l.linked_at,
                linked_by: l.linked_by,
                purpose: l.purpose,
            })
        })
        .collect()
}

/// 転入: finds the rows of person `id` in other municipalities with the same My Number lookup
/// hash and links them (once; linking again adds only new ones), with who, when and the stated
/// purpose. Each earlier row found is audited as read (`earlierRecordLookup`, with the purpose)
/// in the same transaction, so the old municipality sees in its own log who looked. The earlier
/// rows are not changed. Returns all links of the person.
pub async fn link_earlier_records(
    store: &Store,
    reader: &Reader<'_>,
    id: i64,
    purpose: &Purpose,
) -> DomainResult<Vec<Link>> {
    let tx = store.write().await?;
    let (m, municipality) = managed_model(&*tx, reader.actor, id).await?;
    authz::can_read_person_field(
        reader.actor,
        &municipality,
        PersonField::EarlierRecordLookup,
        Some(purpose.as_str()),
    )?;
    let Some(hash) = m.my_number_hash.clone() else {
        return Err(DomainError::Conflict(format!(
            "person {id} has no My Number on record: register it first (updatePerson) to find earlier records"
        )));
    };
    let earlier = person::Entity::find()
        .filter(
            Expr::col(person::Column::MyNumberHash)
                .eq(Expr::val(hash).cast_as(sea_orm::sea_query::Alias::new("bpchar"))),
        )
        .filter(person::Column::Id.ne(id))
        .filter(Expr::col(person::Column::MunicipalityCode).ne(fixed(municipality.as_str())))
        .order_by_asc(person::Column::Id)
        .all(&*tx)
        .await?;
    let existing: std::collections::HashSet<i64> = person_link::Entity::find()
        .filter(person_link::Column::PersonId.eq(id))
        .all(&*tx)
        .await?
        .into_iter()
        .map(|l| l.earlier_person_id)
        .collect();
    let now = Utc::now();
    let mut audited = Vec::new();
    for e in &earlier {
        let em: MunicipalityCode = e
            .municipality_code
            .parse()
            .map_err(|_| corrupt(e.id, "bad municipality"))?;
        audited.push((em, e.id));
        if existing.contains(&e.id) {
            continue;
        }
        person_link::ActiveModel {
            person_id: Set(id),
            earlier_person_id: Set(e.id),
            linked_at: Set(now),
            linked_by: Set(reader.actor.label()),
            purpose: Set(purpose.as_str().to_owned()),
            ..Default::default()
        }
        .insert(&*tx)
        .await?;
    }
    let refs: Vec<(&MunicipalityCode, i64)> = audited.iter().map(|(m, i)| (m, *i)).collect();
    // Authorised above against the mover's own row; the rows found belong to other municipalities.
    audit::write_rows(&*tx, reader, &refs, &[PersonField::EarlierRecordLookup], Some(purpose)).await?;
    let links = load_links(&*tx, id).await?;
    tx.commit().await?;
    tracing::info!(person = id, found = earlier.len(), actor = %reader.actor.label(), "earlier records linked");
    Ok(links)
}

/// The person and every earlier row linked to it (転入): whose dose records make up this
/// person's history. The caller has already decided the reader may see `person_id`.
pub async fn record_owner_ids<C: ConnectionTrait>(db: &C, person_id: i64) -> DomainResult<Vec<i64>> {
    let mut ids = vec![person_id];
    ids.extend(
        person_link::Entity::find()
            .filter(person_link::Column::PersonId.eq(person_id))
            .order_by_asc(person_link::Column::Id)
            .all(db)
            .await?
            .into_iter()
            .map(|l| l.earlier_person_id),
    );
    ids.dedup();
    Ok(ids)
}

/// Persons of one municipality: residents (not moved out) and moved out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonCount {
    pub municipality: MunicipalityCode,
    pub residents: u64,
    pub moved_out: u64,
}

/// Counts of persons per municipality in the caller's scope, optionally narrowed to a
/// prefecture or one municipality (outside the scope: FORBIDDEN). No personal data.
pub async fn counts(
    store: &Store,
    actor: &Actor,
    prefecture: Option<PrefectureCode>,
    municipality: Option<MunicipalityCode>,
) -> DomainResult<Vec<PersonCount>> {
    let scope = authz::person_count_scope(actor)?;
    let outside = || DomainError::Forbidden("these counts are outside your scope".into());
    let (pref, muni) = match scope {
        PersonCountScope::All => (prefecture, municipality),
        PersonCountScope::Prefecture(p) => {
            if prefecture.is_some_and(|q| q != p) || municipality.is_some_and(|m| m.prefecture() != p) {
                return Err(outside());
            }
            (Some(p), municipality)
        }
        PersonCountScope::Municipality(m) => {
            if prefecture.is_some_and(|q| q != m.prefecture()) || municipality.is_some_and(|x| x != m) {
                return Err(outside());
            }
            (None, Some(m))
        }
    };
    let mut sql = String::from(
        "SELECT municipality_code, \
         CAST(SUM(CASE WHEN moved_out_on IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS residents, \
         CAST(SUM(CASE WHEN moved_out_on IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS moved_out \
         FROM persons WHERE 1 = 1",
    );
    let mut values: Vec<sea_orm::Value> = Vec::new();
    if let Some(m) = muni {
        sql.push_str(" AND municipality_code = CAST(? AS CHAR(6))");
        values.push(m.to_string().into());
    }
    if let Some(p) = pref {
        // Municipality codes start with their prefecture's two digits: a range on the index.
        sql.push_str(" AND municipality_code >= CAST(? AS CHAR(6)) AND municipality_code < CAST(? AS CHAR(6))");
        values.push(format!("{p}0000").into());
        let next = p.as_str().parse::<u8>().unwrap_or(99) + 1;
        values.push(format!("{next:02}0000").into());
    }
    sql.push_str(" GROUP BY municipality_code ORDER BY municipality_code");
    let backend = store.backend();
    let rows = store
        .db()
        .query_all_raw(crate::ledger::sql::stmt(backend, &sql, values))
        .await?;
    rows.into_iter()
        .map(|r| {
            let code: String = r.try_get("", "municipality_code")?;
            let residents: i64 = r.try_get("", "residents")?;
            let moved_out: i64 = r.try_get("", "moved_out")?;
            Ok(PersonCount {
                municipality: code
                    .trim()
                    .parse()
                    .map_err(|_| DomainError::Corrupt("persons: bad municipality code".into()))?,
                residents: u64::try_from(residents).unwrap_or(0),
                moved_out: u64::try_from(moved_out).unwrap_or(0),
            })
        })
        .collect()
}

/// Re-seals every stored My Number that is not sealed with the current key (after a new key was
/// put first in the configuration), in pages of 1,000 rows, each page in its own transaction.
/// The lookup hash is unchanged. Returns how many were re-sealed. Operator only.
pub async fn rekey(store: &Store, keys: &PersonalKeys, actor: &Actor) -> DomainResult<u64> {
    if !matches!(actor, Actor::System) {
        return Err(DomainError::Forbidden(
            "re-sealing is done by the operator on the server".into(),
        ));
    }
    let current = keys.current_key_id().to_owned();
    let mut after = 0i64;
    let mut done = 0u64;
    loop {
        let tx = store.write().await?;
        let page = person::Entity::find()
            .filter(person::Column::Id.gt(after))
            .filter(person::Column::MyNumberKeyId.is_not_null())
            .filter(person::Column::MyNumberKeyId.ne(current.clone()))
            .order_by_asc(person::Column::Id)
            .limit(1_000)
            .all(&*tx)
            .await?;
        let Some(last) = page.last().map(|m| m.id) else {
            return Ok(done);
        };
        for m in page {
            let id = m.id;
            let (Some(key_id), Some(blob)) = (m.my_number_key_id.clone(), m.my_number_sealed.clone()) else {
                continue;
            };
            let municipality: MunicipalityCode = m
                .municipality_code
                .parse()
                .map_err(|_| corrupt(id, "bad municipality"))?;
            let coupon: CouponNumber = m.coupon_number.trim().parse().map_err(|_| corrupt(id, "bad coupon"))?;
            let context = seal_context(&municipality, &coupon);
            let n = keys
                .open_my_number(&Sealed { key_id, blob }, &context)
                .map_err(key_error)?;
            let s = keys.seal_my_number(&n, &context).map_err(key_error)?;
            let mut a: person::ActiveModel = m.into();
            a.my_number_key_id = Set(Some(s.key_id));
            a.my_number_sealed = Set(Some(s.blob));
            a.update(&*tx).await?;
            done += 1;
        }
        tx.commit().await?;
        after = last;
    }
}
