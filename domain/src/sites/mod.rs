//! The site master service: register, change, withdraw, read and list sites, keeping a full
//! history of who changed what. Every call takes the acting [`Actor`] and applies the rules of
//! [`crate::authz`]; every write happens in one transaction with its history entry.
//!
//! Must not: know about GraphQL or HTTP, or return storage rows to callers.

mod import;
mod rows;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

pub use import::{CSV_COLUMNS, ImportReport, MAX_IMPORT_ROWS, Rejection, import_csv};
pub use rows::site_from_model;

use crate::authz::{self, Actor, SiteFacts, SiteScope};
use crate::codes::{MunicipalityCode, PrefectureCode, SiteCode, SiteCodeKind};
use crate::entities::{assigned_code_serial, municipality, prefecture, site, site_history};
use crate::error::{DomainError, DomainResult};
use crate::site::{
    ColdChainRole, FieldChange, HistoryAction, Site, SiteDetails, SiteDraft, SiteHistoryEntry, SiteKind, SiteStatus,
};
use crate::store::{Store, fixed};

/// A prefecture of the reference data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefecture {
    pub code: PrefectureCode,
    pub name: String,
    pub name_kana: String,
}

/// A municipality of the reference data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    pub code: MunicipalityCode,
    pub prefecture: PrefectureCode,
    pub name: String,
    pub name_kana: String,
}

/// Filters for listing sites; all optional and combined with AND (and with the caller's scope).
#[derive(Debug, Clone, Default)]
pub struct SiteFilter {
    pub prefecture: Option<PrefectureCode>,
    pub municipality: Option<MunicipalityCode>,
    pub kind: Option<SiteKind>,
    pub status: Option<SiteStatus>,
    /// Substring of the name or kana name.
    pub name: Option<String>,
}

/// One page of sites ordered by code.
#[derive(Debug, Clone)]
pub struct SitePage {
    pub sites: Vec<Site>,
    pub has_next: bool,
}

pub async fn prefectures(store: &Store) -> DomainResult<Vec<Prefecture>> {
    prefecture::Entity::find()
        .order_by_asc(prefecture::Column::Code)
        .all(store.db())
        .await?
        .into_iter()
        .map(|m| {
            Ok(Prefecture {
                code: m
                    .code
                    .parse()
                    .map_err(|e| DomainError::Corrupt(format!("prefecture {}: {e}", m.code)))?,
                name: m.name,
                name_kana: m.name_kana,
            })
        })
        .collect()
}

pub async fn municipalities(store: &Store, prefecture: Option<PrefectureCode>) -> DomainResult<Vec<Municipality>> {
    let mut q = municipality::Entity::find().order_by_asc(municipality::Column::Code);
    if let Some(p) = prefecture {
        q = q.filter(Expr::col(municipality::Column::PrefectureCode).eq(fixed(p.as_str())));
    }
    q.all(store.db())
        .await?
        .into_iter()
        .map(rows::municipality_from_model)
        .collect()
}

pub async fn municipality(store: &Store, code: &MunicipalityCode) -> DomainResult<Option<Municipality>> {
    municipality::Entity::find()
        .filter(Expr::col(municipality::Column::Code).eq(fixed(code.as_str())))
        .one(store.db())
        .await?
        .map(rows::municipality_from_model)
        .transpose()
}

pub(crate) fn facts(site: &Site) -> SiteFacts<'_> {
    SiteFacts {
        code: &site.code,
        municipality: &site.details.municipality,
        kind: site.details.kind,
        wholesaler: site.details.wholesaler.as_ref(),
    }
}

pub(crate) async fn load<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<Option<Site>> {
    site::Entity::find()
        .filter(Expr::col(site::Column::Code).eq(fixed(code.as_str())))
        .one(db)
        .await?
        .map(site_from_model)
        .transpose()
}

/// One site, if the actor may see it.
pub async fn get(store: &Store, actor: &Actor, code: &SiteCode) -> DomainResult<Site> {
    let site = load(store.db(), code)
        .await?
        .ok_or_else(|| DomainError::not_found("site", code))?;
    authz::can_read_site(actor, &facts(&site))?;
    Ok(site)
}

/// Several sites by code, silently leaving out those outside the actor's scope (for loaders).
pub async fn get_many(store: &Store, actor: &Actor, codes: &[SiteCode]) -> DomainResult<Vec<Site>> {
    let keys: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let scope = authz::site_read_scope(actor);
    let rows = site::Entity::find()
        .filter(Expr::col(site::Column::Code).is_in(keys.into_iter().map(fixed)))
        .all(store.db())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let s = site_from_model(row)?;
        if scope.contains(&facts(&s)) {
            out.push(s);
        }
    }
    Ok(out)
}

fn scope_condition(scope: &SiteScope) -> Condition {
    let c = Condition::all();
    match scope {
        SiteScope::All => c,
        SiteScope::Prefecture(p) => c.add(Expr::col(site::Column::PrefectureCode).eq(fixed(p.as_str()))),
        SiteScope::Municipalities(ms) => {
            c.add(Expr::col(site::Column::MunicipalityCode).is_in(ms.iter().map(|m| fixed(m.as_str()))))
        }
        SiteScope::Site(s) => c.add(Expr::col(site::Column::Code).eq(fixed(s.as_str()))),
        SiteScope::Wholesaler(w) => c.add(site::Column::WholesalerId.eq(w.as_str())),
    }
}

/// Escapes LIKE wildcards so a search for "50%" means the text "50%".
pub(crate) fn like_contains(s: &str) -> LikeExpr {
    let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// The caller's row scope AND the filter, as one WHERE condition.
fn filter_condition(actor: &Actor, filter: &SiteFilter) -> Condition {
    let mut cond = scope_condition(&authz::site_read_scope(actor));
    if let Some(p) = &filter.prefecture {
        cond = cond.add(Expr::col(site::Column::PrefectureCode).eq(fixed(p.as_str())));
    }
    if let Some(m) = &filter.municipality {
        cond = cond.add(Expr::col(site::Column::MunicipalityCode).eq(fixed(m.as_str())));
    }
    if let Some(k) = filter.kind {
        cond = cond.add(site::Column::Kind.eq(k.as_str()));
    }
    if let Some(s) = filter.status {
        cond = cond.add(site::Column::Status.eq(s.as_str()));
    }
    if let Some(name) = filter.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        cond = cond.add(
            Condition::any()
                .add(Expr::col(site::Column::Name).like(like_contains(name)))
                .add(Expr::col(site::Column::NameKana).like(like_contains(name))),
        );
    }
    cond
}

/// A page of sites in the actor's scope matching the filter, ordered by code, after `after`.
pub async fn list(
    store: &Store,
    actor: &Actor,
    filter: &SiteFilter,
    after: Option<&SiteCode>,
    first: u64,
) -> DomainResult<SitePage> {
    let mut cond = filter_condition(actor, filter);
    if let Some(a) = after {
        cond = cond.add(Expr::col(site::Column::Code).gt(fixed(a.as_str())));
    }
    let rows = site::Entity::find()
        .filter(cond)
        .order_by_asc(site::Column::Code)
        .limit(first + 1)
        .all(store.db())
        .await?;
    let has_next = rows.len() as u64 > first;
    let sites = rows
        .into_iter()
        .take(first as usize)
        .map(site_from_model)
        .collect::<DomainResult<_>>()?;
    Ok(SitePage { sites, has_next })
}

/// How many sites in the actor's scope match the filter (for `totalCount`).
pub async fn count(store: &Store, actor: &Actor, filter: &SiteFilter) -> DomainResult<u64> {
    Ok(site::Entity::find()
        .filter(filter_condition(actor, filter))
        .count(store.db())
        .await?)
}

/// The pure rule tying a code's kind and prefecture to the site it names.
pub fn check_code_fits(code: &SiteCode, details: &SiteDetails, field: &str) -> DomainResult<()> {
    let venue = details.kind.is_non_medical_venue();
    match code.kind() {
        SiteCodeKind::Assigned if !venue => {
            return Err(DomainError::invalid(
                field,
                "an assigned code belongs to a mass, workplace or health-centre venue",
            ));
        }
        SiteCodeKind::InsuranceMedical | SiteCodeKind::CareProvider if venue => {
            return Err(DomainError::invalid(
                field,
                "a venue without an insurance or care code gets a code assigned by the system",
            ));
        }
        _ => {}
    }
    if code.prefecture() != details.prefecture() {
        return Err(DomainError::invalid(
            field,
            "the code's prefecture differs from the municipality's",
        ));
    }
    Ok(())
}

/// Rules that need the database: the municipality exists; a satellite's base site exists, is
/// active and is a base site; a site is not its own base.
async fn check_references<C: ConnectionTrait>(
    db: &C,
    code: Option<&SiteCode>,
    details: &SiteDetails,
) -> DomainResult<()> {
    if municipality::Entity::find()
        .filter(Expr::col(municipality::Column::Code).eq(fixed(details.municipality.as_str())))
        .one(db)
        .await?
        .is_none()
    {
        return Err(DomainError::invalid("input.municipality", "no such municipality"));
    }
    if let ColdChainRole::Satellite { base } = &details.cold_chain {
        if Some(base) == code {
            return Err(DomainError::invalid(
                "input.coldChain.baseSite",
                "a site cannot be its own base site",
            ));
        }
        let Some(b) = load(db, base).await? else {
            return Err(DomainError::invalid("input.coldChain.baseSite", "no such site"));
        };
        if b.status != SiteStatus::Active {
            return Err(DomainError::invalid(
                "input.coldChain.baseSite",
                "the base site is withdrawn",
            ));
        }
        if !matches!(b.details.cold_chain, ColdChainRole::Base { .. }) {
            return Err(DomainError::invalid(
                "input.coldChain.baseSite",
                "that site is not a base site",
            ));
        }
    }
    Ok(())
}

/// Draws the next assigned code for a prefecture. Runs inside the registering transaction: the
/// counter row is locked by the upsert until commit (on SQLite the writer lock serialises), so
/// two registrations can never draw the same serial, and a rolled-back registration returns
/// its serial because the counter rolls back with it.
async fn next_assigned_code<C: ConnectionTrait>(db: &C, prefecture: PrefectureCode) -> DomainResult<SiteCode> {
    use assigned_code_serial::Column;
    // One atomic upsert: the first registration of a prefecture inserts serial 1, later ones
    // increment. Concurrent first registrations on PostgreSQL wait on the conflicting insert
    // instead of failing, so no caller ever sees a duplicate-key error here.
    let stmt = Query::insert()
        .into_table(assigned_code_serial::Entity)
        .columns([Column::PrefectureCode, Column::LastSerial])
        .values_panic([prefecture.as_str().into(), 1.into()])
        .on_conflict(
            OnConflict::column(Column::PrefectureCode)
                .value(
                    Column::LastSerial,
                    Expr::col((assigned_code_serial::Entity, Column::LastSerial)).add(1),
                )
                .to_owned(),
        )
        .returning_col(Column::LastSerial)
        .to_owned();
    let serial: i32 = db
        .query_one(&stmt)
        .await?
        .ok_or_else(|| DomainError::Corrupt("assigned code counter returned no row".into()))?
        .try_get("", "last_serial")?;
    unused_assigned_code(db, prefecture, serial).await
}

/// A serial can already be taken when an imported file carried assigned codes beyond the
/// counter; the import raises the counter, so this only guards against manual edits.
async fn unused_assigned_code<C: ConnectionTrait>(
    db: &C,
    prefecture: PrefectureCode,
    serial: i32,
) -> DomainResult<SiteCode> {
    let serial = u32::try_from(serial).map_err(|_| DomainError::Corrupt("negative assigned serial".into()))?;
    let code = SiteCode::assigned(prefecture, serial)
        .map_err(|_| DomainError::Conflict(format!("prefecture {prefecture} has used all assigned codes")))?;
    if load(db, &code).await?.is_some() {
        return Err(DomainError::Corrupt(format!(
            "assigned code {code} already taken; counter behind"
        )));
    }
    Ok(code)
}

async fn write_history<C: ConnectionTrait>(
    db: &C,
    code: &SiteCode,
    version: i32,
    action: HistoryAction,
    actor: &Actor,
    changes: &[FieldChange],
) -> DomainResult<()> {
    site_history::ActiveModel {
        site_code: Set(code.as_str().to_owned()),
        version: Set(version),
        action: Set(action.as_str().to_owned()),
        actor: Set(actor.label()),
        changed_at: Set(Utc::now()),
        changes: Set(serde_json::to_string(changes).map_err(|e| DomainError::Corrupt(e.to_string()))?),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Registers a site (追加). Without a code, a venue gets one assigned; with one, it must be a
/// real insurance or care code that fits the site.
pub async fn register(store: &Store, actor: &Actor, code: Option<SiteCode>, draft: &SiteDraft) -> DomainResult<Site> {
    let details = SiteDetails::validate(draft, "input")?;
    authz::can_register_site(actor, details.kind, &details.municipality)?;
    if let Some(c) = &code {
        if c.kind() == SiteCodeKind::Assigned {
            return Err(DomainError::invalid(
                "code",
                "assigned codes are drawn by the system; leave code empty",
            ));
        }
        check_code_fits(c, &details, "code")?;
    } else if !details.kind.is_non_medical_venue() {
        return Err(DomainError::invalid(
            "code",
            "a medical or care site registers with its own 10-digit code",
        ));
    }
    let tx = store.write().await?;
    check_references(&*tx, code.as_ref(), &details).await?;
    let code = match code {
        Some(c) => {
            if load(&*tx, &c).await?.is_some() {
                return Err(DomainError::Conflict(format!("site {c} is already registered")));
            }
            c
        }
        None => next_assigned_code(&*tx, details.prefecture()).await?,
    };
    let now = Utc::now();
    let site = Site {
        code,
        details,
        status: SiteStatus::Active,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    rows::active_model(&site).insert(&*tx).await?;
    write_history(
        &*tx,
        &site.code,
        1,
        HistoryAction::Registered,
        actor,
        &site.details.as_registration(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(site = %site.code, actor = %actor.label(), "site registered");
    Ok(site)
}

/// Changes a site (変更). `edit` applies the caller's partial input to the current draft; the
/// result goes through the same rules as a registration. `expected_version`, when given, must
/// equal the stored version (a stale form is refused instead of overwriting someone's change).
/// A change that changes nothing writes nothing.
pub async fn update(
    store: &Store,
    actor: &Actor,
    code: &SiteCode,
    expected_version: Option<i32>,
    edit: impl FnOnce(&mut SiteDraft),
) -> DomainResult<Site> {
    let tx = store.write().await?;
    let current = load(&*tx, code)
        .await?
        .ok_or_else(|| DomainError::not_found("site", code))?;
    authz::can_read_site(actor, &facts(&current))?;
    if current.status == SiteStatus::Withdrawn {
        return Err(DomainError::Conflict(format!(
            "site {code} is withdrawn and cannot be changed"
        )));
    }
    if let Some(v) = expected_version.filter(|v| *v != current.version) {
        return Err(DomainError::Conflict(format!(
            "site {code} changed since you read it (your version {v}, now {})",
            current.version
        )));
    }
    let mut draft = current.details.to_draft();
    edit(&mut draft);
    let details = SiteDetails::validate(&draft, "input")?;
    let changes = current.details.diff(&details);
    let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
    authz::can_change_site(actor, &facts(&current), details.kind, &details.municipality, &fields)?;
    if changes.is_empty() {
        return Ok(current);
    }
    check_code_fits(code, &details, "input.kind")?;
    check_references(&*tx, Some(code), &details).await?;
    let site = Site {
        details,
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current
    };
    save_version(&*tx, &site, site.version - 1).await?;
    write_history(&*tx, code, site.version, HistoryAction::Changed, actor, &changes).await?;
    tx.commit().await?;
    tracing::info!(site = %code, actor = %actor.label(), fields = changes.len(), "site changed");
    Ok(site)
}

/// Writes a site's row if its stored version is still `previous` (optimistic concurrency on
/// PostgreSQL, where concurrent writers do not share the SQLite writer lock).
async fn save_version<C: ConnectionTrait>(db: &C, site: &Site, previous: i32) -> DomainResult<()> {
    let res = site::Entity::update_many()
        .set(rows::active_model(site))
        .filter(Expr::col(site::Column::Code).eq(fixed(site.code.as_str())))
        .filter(site::Column::Version.eq(previous))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(DomainError::Conflict(format!(
            "site {} was changed concurrently; retry",
            site.code
        )));
    }
    Ok(())
}

/// Withdraws a site (脱退). The site and its history are kept. A base site still supplying
/// active satellites cannot be withdrawn until they are moved to another base.
pub async fn withdraw(store: &Store, actor: &Actor, code: &SiteCode) -> DomainResult<Site> {
    let tx = store.write().await?;
    let current = load(&*tx, code)
        .await?
        .ok_or_else(|| DomainError::not_found("site", code))?;
    authz::can_read_site(actor, &facts(&current))?;
    authz::can_withdraw_site(actor, &facts(&current))?;
    if current.status == SiteStatus::Withdrawn {
        return Err(DomainError::Conflict(format!("site {code} is already withdrawn")));
    }
    let satellites = site::Entity::find()
        .filter(Expr::col(site::Column::BaseSiteCode).eq(fixed(code.as_str())))
        .filter(site::Column::Status.eq(SiteStatus::Active.as_str()))
        .limit(5)
        .all(&*tx)
        .await?;
    if !satellites.is_empty() {
        let list: Vec<_> = satellites.iter().map(|s| s.code.as_str()).collect();
        return Err(DomainError::Conflict(format!(
            "site {code} still supplies satellite sites ({}); move them to another base first",
            list.join(", ")
        )));
    }
    let site = Site {
        status: SiteStatus::Withdrawn,
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current
    };
    save_version(&*tx, &site, site.version - 1).await?;
    write_history(&*tx, code, site.version, HistoryAction::Withdrawn, actor, &[]).await?;
    tx.commit().await?;
    tracing::info!(site = %code, actor = %actor.label(), "site withdrawn");
    Ok(site)
}

/// A site's history, oldest first.
pub async fn history(store: &Store, actor: &Actor, code: &SiteCode) -> DomainResult<Vec<SiteHistoryEntry>> {
    get(store, actor, code).await?;
    site_history::Entity::find()
        .filter(Expr::col(site_history::Column::SiteCode).eq(fixed(code.as_str())))
        .order_by_asc(site_history::Column::Version)
        .all(store.db())
        .await?
        .into_iter()
        .map(rows::history_from_model)
        .collect()
}
