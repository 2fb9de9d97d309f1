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
        for f in fields {
            authz::can_read_person_field(reader.actor, m, *f, purpose.map(Purpose::as_str))?;
        }
    }
    write_rows(db, reader, persons, fields, purpose).await
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
    let now = Utc::now();
    let names = fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",");
    let label = reader.actor.label();
    let role = reader.actor.role().map_or("SYSTEM", |r| r.as_str());
    let rows = persons
        .iter()
        .map(|(m, id)| {
            vec![
                (*id).into(),
                m.to_string().into(),
                label.clone().into(),
                reader.subject.to_owned().into(),
                role.to_owned().into(),
                now.into(),
                names.clone().into(),
                purpose.map(|p| p.as_str().to_owned()).into(),
            ]
        })
        .collect();
    crate::bulk::insert(db, "person_access_log", &COLUMNS, rows, None).await
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
