//! The audit log of personal data (`person_access_log`): one row per person whose personal
//! fields a caller read — who (actor label, token subject, role), when, which person, which
//! fields (names only, never values) and the stated purpose. Rows are only ever appended.
//!
//! The services in this module's parent write them *before* handing the data out, for a single
//! person and for every person of a list page alike; if the write fails, the read fails.
//! The person's municipality reads its log (`access_log`), including reads by another
//! municipality that looked up its persons as earlier records of someone who moved.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{self, Actor};
use crate::codes::MunicipalityCode;
use crate::entities::person_access;
use crate::error::{DomainError, DomainResult};
use crate::personal::person::{PersonField, Purpose};
use crate::store::{Store, fixed};

/// Who is reading: the actor (role and scope) and the verified token's subject, recorded in
/// the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub actor: &'a Actor,
    pub subject: &'a str,
}

/// One audited read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub id: i64,
    pub person: i64,
    pub municipality: MunicipalityCode,
    pub actor: String,
    pub subject: String,
    pub role: String,
    pub at: DateTime<Utc>,
    pub fields: Vec<String>,
    pub purpose: Option<String>,
}

const COLUMNS: [&str; 8] = [
    "person_id",
    "municipality_code",
    "actor",
    "subject",
    "role",
    "accessed_at",
    "fields",
    "purpose",
];

/// Writes one audit row per person for `fields` (nothing when no personal field is read),
/// after checking the reader may read each of them.
pub async fn record(
    store: &Store,
    reader: &Reader<'_>,
    persons: &[(&MunicipalityCode, i64)],
    fields: &[PersonField],
    purpose: Option<&Purpose>,
) -> DomainResult<()> {
    if fields.is_empty() || persons.is_empty() {
        return Ok(());
    }
    // One INSERT (a page holds at most a few hundred persons). PostgreSQL runs it as its own
    // atomic statement; SQLite needs the writer lock, which comes with a write transaction.
    if store.backend() == sea_orm::DbBackend::Postgres {
        return record_in(store.db(), reader, persons, fields, purpose).await;
    }
    let tx = store.write().await?;
    record_in(&*tx, reader, persons, fields, purpose).await?;
    tx.commit().await
}

/// As [`record`], inside the caller's transaction.
pub(crate) async fn record_in<C: ConnectionTrait>(
    db: &C,
    reader: &Reader<'_>,
    persons: &[(&MunicipalityCode, i64)],
    fields: &[PersonField],
    purpose: Option<&Purpose>,
) -> DomainResult<()> {
    if fields.is_empty() || persons.is_empty() {
        return Ok(());
    }
    for (m, _) in persons {
        authorize(reader, m, fields, purpose)?;
    }
    write_rows(db, reader, persons, fields, purpose).await
}

/// Checks that `reader` may read each of `fields` of persons of `municipality` (with
/// `purpose`), without writing anything: for a read whose audit row is written by the same
/// statement as the read ([`by_coupon_audited_pg`]).
pub(crate) fn authorize(
    reader: &Reader<'_>,
    municipality: &MunicipalityCode,
    fields: &[PersonField],
    purpose: Option<&Purpose>,
) -> DomainResult<()> {
    for f in fields {
        authz::can_read_person_field(reader.actor, municipality, *f, purpose.map(Purpose::as_str))?;
    }
    Ok(())
}

/// The columns of an audit row after the person and municipality, as values: actor label,
/// token subject, role, when, the fields read, the purpose.
fn row_values(reader: &Reader<'_>, fields: &[PersonField], purpose: Option<&Purpose>) -> [sea_orm::Value; 6] {
    [
        reader.actor.label().into(),
        reader.subject.to_owned().into(),
        reader.actor.role().map_or("SYSTEM", |r| r.as_str()).to_owned().into(),
        Utc::now().into(),
        fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",").into(),
        purpose.map(|p| p.as_str().to_owned()).into(),
    ]
}

/// Appends the rows without deciding anything: for reads the caller authorised on other
/// grounds (a municipality's look-up of earlier rows of its own resident, `authz`-checked
/// against that resident, writes rows for persons of other municipalities).
pub(crate) async fn write_rows<C: ConnectionTrait>(
    db: &C,
    reader: &Reader<'_>,
    persons: &[(&MunicipalityCode, i64)],
    fields: &[PersonField],
    purpose: Option<&Purpose>,
) -> DomainResult<()> {
    if fields.is_empty() || persons.is_empty() {
        return Ok(());
    }
    let values = row_values(reader, fields, purpose);
    let rows = persons
        .iter()
        .map(|(m, id)| {
            let mut row = vec![(*id).into(), m.to_string().into()];
            row.extend(values.iter().cloned());
            row
        })
        .collect();
    crate::bulk::insert(db, "person_access_log", &COLUMNS, rows, None).await
}

/// PostgreSQL: the person with `coupon` in `municipality`, read and audited for `fields` by one
/// statement (a data-modifying `WITH`), so the audit row commits with the read in one round
/// trip — the hot path of a site scanning a coupon. The caller has [`authorize`]d the read;
/// `fields` is not empty.
pub(crate) async fn by_coupon_audited_pg<C: ConnectionTrait>(
    db: &C,
    reader: &Reader<'_>,
    municipality: &MunicipalityCode,
    coupon: &crate::codes::CouponNumber,
    fields: &[PersonField],
) -> DomainResult<Option<crate::entities::person::Model>> {
    use sea_orm::FromQueryResult;
    const SQL: &str = "WITH p AS (SELECT * FROM persons WHERE municipality_code = CAST($1 AS bpchar) \
                       AND coupon_number = CAST($2 AS bpchar)), \
                       a AS (INSERT INTO person_access_log (person_id, municipality_code, actor, subject, role, \
                       accessed_at, fields, purpose) SELECT id, municipality_code, $3, $4, $5, $6, $7, $8 FROM p) \
                       SELECT * FROM p";
    let mut values: Vec<sea_orm::Value> = vec![municipality.as_str().into(), coupon.as_str().into()];
    values.extend(row_values(reader, fields, None));
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            SQL,
            values,
        ))
        .await?;
    Ok(row
        .map(|r| crate::entities::person::Model::from_query_result(&r, ""))
        .transpose()?)
}

/// A page of the audit log of `municipality`'s persons (optionally one person), newest first,
/// before entry `before`; its municipality only.
pub async fn access_log(
    store: &Store,
    actor: &Actor,
    municipality: &MunicipalityCode,
    person: Option<i64>,
    before: Option<i64>,
    first: u64,
) -> DomainResult<(Vec<AccessEntry>, bool)> {
    authz::can_manage_persons(actor, municipality)?;
    let mut q = person_access::Entity::find()
        .filter(Expr::col(person_access::Column::MunicipalityCode).eq(fixed(municipality.as_str())))
        .order_by_desc(person_access::Column::Id)
        .limit(first + 1);
    if let Some(p) = person {
        q = q.filter(Expr::col(person_access::Column::PersonId).eq(p));
    }
    if let Some(b) = before {
        q = q.filter(Expr::col(person_access::Column::Id).lt(b));
    }
    let mut rows = q.all(store.db()).await?;
    let more = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let entries = rows
        .into_iter()
        .map(|r| {
            Ok(AccessEntry {
                id: r.id,
                person: r.person_id,
                municipality: r
                    .municipality_code
                    .parse()
                    .map_err(|_| DomainError::Corrupt(format!("access log {}: bad municipality", r.id)))?,
                actor: r.actor,
                subject: r.subject,
                role: r.role,
                at: r.accessed_at,
                fields: r
                    .fields
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                purpose: r.purpose,
            })
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok((entries, more))
}
