//! The dose-record service (VRS 接種記録): recording doses one at a time or up to 1,000 per call,
//! each together with its stock effect on the recording site's lot; voids and amendments that
//! keep every version; a municipality's interval overrides; the end-of-day write-off of open
//! doses; scoped reads, counts and the consumption figures allocation can weigh by.
//!
//! One recording path. A single `recordDose` is a batch of one (on PostgreSQL, single doses
//! arriving together are written as one batch of several calls: [`combine`]). In one
//! transaction a batch looks up the idempotency keys, the persons, their earlier doses and
//! overrides with one statement (arrays on PostgreSQL), locks the balance rows it draws from (in
//! site/product/lot order, so batches never deadlock on each other), decides every record in memory
//! through the pure rules of [`crate::dose`] (records of the same batch see each other), then
//! appends the opened vials' ADMINISTERED entries and the records with one statement each and
//! moves each balance row once. A refused record changes nothing; the others are kept. Two
//! transactions racing on the same person's dose or the same key meet at a unique index; the
//! loser rolls back and its batch is decided again against what the winner committed.
//!
//! Stock unit: see [`crate::dose`] — a dose draws from the open vial or opens one (an
//! ADMINISTERED entry of 1 vial, linked both ways to the dose record that opened it); a void
//! gives its dose back, and the vial itself once all its doses are back.
//!
//! Must not: know GraphQL or the event bus (callers publish the returned stock changes after the
//! commit), or expose names and addresses (those belong to the person; a record carries only
//! the person's id, municipality and coupon number).

pub(crate) mod combine;
pub(crate) mod sql;

pub use combine::{WRITER_NICE, WRITERS};

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Value};

use crate::authz::{self, Actor, DoseCountScope, DoseScope};
use crate::codes::{CouponNumber, LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use crate::dose::{
    self, Capture, CheckedDose, DoseDraft, DoseStatus, Draw, EarlierDose, GiveBack, LotDoses, MAX_BATCH, MAX_REASON,
    reason,
};
use crate::error::{DomainError, DomainResult};
use crate::ledger::sql::stmt;
use crate::site::bounded_text;
use crate::stock::{EntryKind, StockArea, StockChange, today_in_japan};
use crate::store::Store;

/// A dose record as stored, in its current version.
#[derive(Clone, PartialEq, Eq)]
pub struct DoseRecord {
    pub id: i64,
    pub person_id: i64,
    /// The person's municipality of residence.
    pub municipality: MunicipalityCode,
    pub coupon: CouponNumber,
    pub dose_number: u8,
    pub administered_on: NaiveDate,
    pub product: ProductCode,
    pub lot: LotNumber,
    /// Where the dose was given (its stock effect is on this site's lot).
    pub site: SiteCode,
    pub doctor_name: String,
    pub capture: Capture,
    pub status: DoseStatus,
    /// The municipality's interval override the dose was given under, if it needed one.
    pub override_id: Option<i64>,
    pub override_reason: Option<String>,
    /// The ADMINISTERED entry of the vial the dose came from, and whether this dose opened it.
    pub vial_entry: Option<i64>,
    pub opened_vial: bool,
    pub recorded_by_site: SiteCode,
    pub version: i32,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
    pub change_reason: Option<String>,
}

/// The doctor's name stays out of logs.
impl fmt::Debug for DoseRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoseRecord")
            .field("id", &self.id)
            .field("person_id", &self.person_id)
            .field("dose_number", &self.dose_number)
            .field("site", &self.site)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn corrupt(id: i64, what: impl fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("dose record {id}: {what}"))
}

pub(crate) fn record_from_row(r: &QueryResult) -> DomainResult<DoseRecord> {
    let id: i64 = r.try_get("", "id")?;
    let text = |c: &str| -> DomainResult<String> { Ok(r.try_get::<String>("", c)?.trim().to_owned()) };
    let n: i16 = r.try_get("", "dose_number")?;
    Ok(DoseRecord {
        id,
        person_id: r.try_get("", "person_id")?,
        municipality: text("municipality_code")?.parse().map_err(|e| corrupt(id, e))?,
        coupon: text("coupon_number")?.parse().map_err(|e| corrupt(id, e))?,
        dose_number: u8::try_from(n).map_err(|e| corrupt(id, e))?,
        administered_on: r.try_get("", "administered_on")?,
        product: text("product_code")?.parse().map_err(|e| corrupt(id, e))?,
        lot: text("lot_number")?.parse().map_err(|e| corrupt(id, e))?,
        site: text("site_code")?.parse().map_err(|e| corrupt(id, e))?,
        doctor_name: r.try_get("", "doctor_name")?,
        capture: text("capture")?.parse().map_err(|e| corrupt(id, e))?,
        status: text("status")?.parse().map_err(|e| corrupt(id, e))?,
        override_id: r.try_get("", "override_id")?,
        override_reason: r.try_get("", "override_reason")?,
        vial_entry: r.try_get("", "vial_entry_id")?,
        opened_vial: r.try_get("", "opened_vial")?,
        recorded_by_site: text("recorded_by_site")?.parse().map_err(|e| corrupt(id, e))?,
        version: r.try_get("", "version")?,
        recorded_at: r.try_get("", "recorded_at")?,
        recorded_by: r.try_get("", "recorded_by")?,
        changed_at: r.try_get("", "changed_at")?,
        changed_by: r.try_get("", "changed_by")?,
        change_reason: r.try_get("", "change_reason")?,
    })
}

/// One record's outcome: the record, and whether this call created it (`false`: a retry with
/// the same key and content returned the original).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub record: DoseRecord,
    pub created: bool,
}

/// What a recording call did: one result per submitted record, in order, and the committed
/// stock changes (vials opened) to announce.
#[derive(Debug)]
pub struct Recorded {
    pub results: Vec<Result<Outcome, DomainError>>,
    pub changes: Vec<StockChange>,
}

/// The recording site's facts.
struct SiteRow {
    municipality: MunicipalityCode,
}

async fn recording_site<C: ConnectionTrait>(db: &C, code: &SiteCode) -> DomainResult<SiteRow> {
    let mut found = sql::sites(db, &[code.as_str().to_owned()]).await?;
    site_row(code, found.remove(code.as_str()))
}

/// A site as a recording site: it must exist and be active. `found`: its (municipality,
/// status) as stored.
fn site_row(code: &SiteCode, found: Option<(String, String)>) -> DomainResult<SiteRow> {
    let (m, status) = found.ok_or_else(|| DomainError::not_found("site", code))?;
    if status.trim() != "ACTIVE" {
        return Err(DomainError::Forbidden(format!("site {code} is withdrawn")));
    }
    Ok(SiteRow {
        municipality: m
            .trim()
            .parse()
            .map_err(|e| DomainError::Corrupt(format!("site {code}: {e}")))?,
    })
}

fn is_unique_violation(e: &DomainError) -> bool {
    matches!(e, DomainError::Database(db) if db
        .sql_err()
        .is_some_and(|s| matches!(s, sea_orm::SqlErr::UniqueConstraintViolation(_))))
}

/// Records doses given at the caller's site (a SITE token): up to [`MAX_BATCH`] per call, each
/// with its own result. `drafts` are the submitted records with their codes parsed (a record
/// whose codes did not parse comes as its error). `single` names fields `input.…` instead of
/// `records[i].…`. Refused as a whole: an empty or oversized call, a caller that is not a
/// site, a withdrawn site.
///
/// On PostgreSQL a call of one record joins whatever other single records are waiting
/// ([`combine`]); a batch is written on its own.
#[tracing::instrument(skip_all, fields(records = drafts.len()))]
pub async fn record(
    store: &Store,
    actor: &Actor,
    drafts: Vec<Result<DoseDraft, DomainError>>,
    single: bool,
) -> DomainResult<Recorded> {
    let site = authz::dose_recorder(actor)?;
    if drafts.is_empty() {
        return Err(DomainError::invalid("records", "give at least one record"));
    }
    if drafts.len() > MAX_BATCH {
        return Err(DomainError::invalid(
            "records",
            format!("at most {MAX_BATCH} records per call; {} given", drafts.len()),
        ));
    }
    let today = today_in_japan();
    let checked: Vec<Result<CheckedDose, DomainError>> = drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.and_then(|d| dose::check_draft(&d, today, &field_of(single, i))))
        .collect();
    let mut call = Call {
        site,
        municipality: None,
        label: actor.label(),
        checked,
        single,
    };
    if single && store.backend() == sea_orm::DbBackend::Postgres {
        // The group's look-up checks the site (one statement for the whole group).
        store.doses().record(store, call).await
    } else {
        call.municipality = Some(recording_site(store.db(), &site).await?.municipality);
        record_alone(store, &call).await
    }
}

/// One recording call, checked and ready to be written (alone or with others).
pub(crate) struct Call {
    site: SiteCode,
    /// The recording site's municipality (for the stock changes announced), once the site was
    /// found active; `None`: the group looks the site up and refuses the call as a whole if it
    /// is unknown or withdrawn.
    municipality: Option<MunicipalityCode>,
    /// Who recorded (the actor's label).
    label: String,
    checked: Vec<Result<CheckedDose, DomainError>>,
    single: bool,
}

impl Call {
    fn site(&self) -> &SiteCode {
        &self.site
    }
}

/// Writes one call in its own transaction. Two transactions racing on the same person's dose
/// or the same key meet at a unique index; the loser is decided again against the winner.
pub(crate) async fn record_alone(store: &Store, call: &Call) -> DomainResult<Recorded> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match record_group(store, std::slice::from_ref(call)).await {
            Err(e) if attempt < 4 && is_unique_violation(&e) => continue,
            Err(e) => return Err(e),
            Ok(mut done) => {
                return done
                    .pop()
                    .unwrap_or_else(|| Err(DomainError::Corrupt("no result".into())));
            }
        }
    }
}

fn field_of(single: bool, i: usize) -> String {
    if single {
        "input".into()
    } else {
        format!("records[{i}]")
    }
}

/// Where a record's vial entry comes from: stored already, or one this batch appends.
#[derive(Debug, Clone, Copy)]
enum VialRef {
    None,
    Stored(i64),
    New(usize),
}

struct LotState {
    doses: LotDoses,
    open: VialRef,
    expiry: NaiveDate,
    opened: i64,
    touched: bool,
}

struct Planned {
    /// The call it belongs to.
    call: usize,
    dose: CheckedDose,
    person_id: i64,
    override_id: Option<i64>,
    vial: VialRef,
    opened: bool,
}

/// The balance row (site, product, lot) a dose recorded at `site` draws from. Ordered as the
/// codes' text, the order every writer locks balance rows in.
fn lot_key(site: &SiteCode, c: &CheckedDose) -> sql::LotKey {
    (*site, c.product.clone(), c.lot.clone())
}

enum Slot {
    Failed(DomainError),
    Existing(Box<DoseRecord>),
    New(usize),
    /// The same key and content as an earlier record of the group: (call, index in it).
    SameAs(usize, usize),
}

/// A vial this group opens: (planned index, balance row, balance after, day).
type NewVial = (usize, sql::LotKey, u64, NaiveDate);

/// Writes `calls` in one transaction and answers each. The records of every call are decided
/// together, in call order, as one batch: they see each other (the same person's doses, the
/// same key, the same lot), so the answers are those the calls would get one after the other.
async fn record_group(store: &Store, calls: &[Call]) -> DomainResult<Vec<DomainResult<Recorded>>> {
    let tx = store.write().await?;
    let done = decide_and_write(store, &*tx, calls, Lots::LockFirst)
        .await?
        .ok_or_else(|| DomainError::Corrupt("a write of locked lots found them moved".into()))?;
    tx.commit().await?;
    Ok(done)
}

/// PostgreSQL: writes `calls` as [`record_group`] does, but on `db` (a writer's own
/// connection) in two statements and no transaction: the look-up reads the lots unlocked with
/// everything else, and the write locks them only if each is still as read (see
/// [`sql::Guard::Unchanged`]) — the answers are then those of a group that locked them first.
/// `None`: a lot moved in between (another writer of it committed), nothing was written, and
/// the calls must be written under lock.
pub(crate) async fn record_group_unlocked<C: ConnectionTrait>(
    store: &Store,
    db: &C,
    calls: &[Call],
) -> DomainResult<Option<Vec<DomainResult<Recorded>>>> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Err(DomainError::Corrupt("unlocked groups are PostgreSQL's".into()));
    }
    decide_and_write(store, db, calls, Lots::CheckAtWrite).await
}

/// How a group keeps other writers of its lots out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lots {
    /// Lock them before reading anything (in `db`'s transaction).
    LockFirst,
    /// Read them with everything else and write only if none moved (PostgreSQL, one
    /// statement each, no transaction).
    CheckAtWrite,
}

/// Decides `calls` as one batch on `db` and writes what was decided; `None` when a
/// [`Lots::CheckAtWrite`] write found a lot moved and wrote nothing.
async fn decide_and_write<C: ConnectionTrait>(
    store: &Store,
    db: &C,
    calls: &[Call],
    how: Lots,
) -> DomainResult<Option<Vec<DomainResult<Recorded>>>> {
    let now = Utc::now();
    let plans = if store.generic_plans() {
        sql::Plans::Generic
    } else {
        sql::Plans::Chosen
    };
    let valid = || {
        calls.iter().flat_map(|call| {
            call.checked
                .iter()
                .filter_map(move |c| Some((call.site(), c.as_ref().ok()?)))
        })
    };
    // The lots the group draws from, locked first and in (site, product, lot) order: writers
    // of the same site wait here for each other, so everything read below includes what the
    // one before committed (a retry sent while its original is still being written finds it).
    let wanted: Vec<sql::LotKey> = valid()
        .map(|(site, c)| lot_key(site, c))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Locked first, or read with everything else.
    let (locked, read_lots): (_, &[sql::LotKey]) = match how {
        Lots::LockFirst => (sql::lock_lots(db, &wanted, plans).await?, &[]),
        Lots::CheckAtWrite => (Vec::new(), &wanted),
    };

    let keys: Vec<sql::SiteKey> = {
        let mut k: Vec<sql::SiteKey> = valid()
            .map(|(site, c)| (site.as_str().to_owned(), c.idempotency_key.clone()))
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let refs: Vec<(String, String)> = {
        let mut r: Vec<(String, String)> = valid()
            .map(|(_, c)| (c.municipality.as_str().to_owned(), c.coupon.as_str().to_owned()))
            .collect();
        r.sort();
        r.dedup();
        r
    };
    let unchecked: Vec<String> = {
        let mut u: Vec<String> = calls
            .iter()
            .filter(|c| c.municipality.is_none())
            .map(|c| c.site.as_str().to_owned())
            .collect();
        u.sort();
        u.dedup();
        u
    };
    let (existing, persons, mut earlier, overrides, rules, per_vial, drawn, sites, seen) =
        if store.backend() == sea_orm::DbBackend::Postgres {
            // One round trip for everything but locked lots, the recording sites and new ids
            // included (the hot path of a single dose).
            let l = sql::lookup_pg(db, &keys, &refs, &unchecked, read_lots, valid().count(), plans).await?;
            let existing = if l.keys.is_empty() {
                HashMap::new()
            } else {
                sql::by_keys(db, &l.keys.keys().cloned().collect::<Vec<_>>()).await?
            };
            let drawn = Some((l.entry_ids, l.record_ids));
            (
                existing,
                l.persons,
                l.earlier,
                l.overrides,
                l.rules,
                l.per_vial,
                drawn,
                l.sites,
                l.lots,
            )
        } else {
            let existing = sql::by_keys(db, &keys).await?;
            let persons = sql::persons(db, &refs).await?;
            let ids: Vec<i64> = {
                let mut v: Vec<i64> = persons.values().map(|p| p.id).collect();
                v.sort_unstable();
                v.dedup();
                v
            };
            let earlier = sql::earlier_doses(db, &ids, None).await?;
            let overrides = sql::overrides(db, &ids).await?;
            (
                existing,
                persons,
                earlier,
                overrides,
                sql::interval_rules(db).await?,
                sql::doses_per_vial(db).await?,
                None,
                sql::sites(db, &unchecked).await?,
                Vec::new(),
            )
        };
    let rows = match how {
        Lots::LockFirst => locked,
        Lots::CheckAtWrite => seen.iter().map(|(k, row, _)| (k.clone(), *row)).collect(),
    };
    // The lots found, with their doses per vial (a lot of no vaccine has none: its doses are
    // refused by the rules).
    let mut lots: BTreeMap<sql::LotKey, LotState> = rows
        .into_iter()
        .filter_map(|(key, row)| {
            let dpv = *per_vial.get(key.1.as_str())?;
            let state = LotState {
                doses: LotDoses {
                    on_hand: row.on_hand,
                    open_doses: row.open_doses,
                    doses_per_vial: dpv,
                },
                open: row.open_entry_id.map_or(VialRef::None, VialRef::Stored),
                expiry: row.expiry_date,
                opened: 0,
                touched: false,
            };
            Some((key, state))
        })
        .collect();

    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(calls.len());
    let mut planned: Vec<Planned> = Vec::new();
    let mut vials: Vec<NewVial> = Vec::new();
    let mut first_of_key: HashMap<(&SiteCode, &str), (usize, usize)> = HashMap::new();
    // Each call's recording site, or why the call is refused as a whole.
    let facts: Vec<DomainResult<MunicipalityCode>> = calls
        .iter()
        .map(|c| match c.municipality {
            Some(m) => Ok(m),
            None => site_row(&c.site, sites.get(c.site.as_str()).cloned()).map(|f| f.municipality),
        })
        .collect();
    for (n, call) in calls.iter().enumerate() {
        let mut mine = Vec::with_capacity(call.checked.len());
        if facts[n].is_err() {
            slots.push(mine);
            continue;
        }
        for (i, c) in call.checked.iter().enumerate() {
            let field = field_of(call.single, i);
            let c = match c {
                Err(e) => {
                    mine.push(Slot::Failed(clone_error(e)));
                    continue;
                }
                Ok(c) => c,
            };
            if let Some(&(m, j)) = first_of_key.get(&(call.site(), c.idempotency_key.as_str())) {
                let same = match &calls[m].checked[j] {
                    Ok(first) => first.request_hash == c.request_hash,
                    Err(_) => false,
                };
                mine.push(if same {
                    Slot::SameAs(m, j)
                } else {
                    Slot::Failed(key_reused(&field))
                });
                continue;
            }
            first_of_key.insert((call.site(), &c.idempotency_key), (n, i));
            if let Some((rec, hash)) = existing.get(&(call.site.as_str().to_owned(), c.idempotency_key.clone())) {
                mine.push(if *hash == c.request_hash {
                    Slot::Existing(Box::new(rec.clone()))
                } else {
                    Slot::Failed(key_reused(&field))
                });
                continue;
            }
            let key = lot_key(call.site(), c);
            match plan_one(
                c,
                &field,
                &persons,
                &mut earlier,
                &overrides,
                &rules,
                &per_vial,
                lots.get_mut(&key),
            ) {
                Err(e) => mine.push(Slot::Failed(e)),
                Ok((mut p, draw)) => {
                    let k = planned.len();
                    let state = lots
                        .get_mut(&key)
                        .ok_or_else(|| DomainError::Corrupt("planned without a lot".into()))?;
                    state.touched = true;
                    match draw {
                        Draw::FromOpenVial => p.vial = state.open,
                        Draw::OpenedVial => {
                            state.opened += 1;
                            let v = vials.len();
                            vials.push((k, key, state.doses.on_hand, c.administered_on));
                            state.open = VialRef::New(v);
                            p.vial = VialRef::New(v);
                            p.opened = true;
                        }
                    }
                    p.call = n;
                    planned.push(p);
                    mine.push(Slot::New(k));
                }
            }
        }
        slots.push(mine);
    }

    let (entry_ids, record_ids) = match drawn {
        Some(ids) => ids,
        None => (
            sql::next_ids(db, "stock_entries", vials.len()).await?,
            sql::next_ids(db, "dose_records", planned.len()).await?,
        ),
    };
    if entry_ids.len() < vials.len() || record_ids.len() < planned.len() {
        return Err(DomainError::Corrupt("fewer new ids than records".into()));
    }
    let resolve = |v: VialRef| match v {
        VialRef::None => None,
        VialRef::Stored(id) => Some(id),
        VialRef::New(k) => Some(entry_ids[k]),
    };
    let entries: Vec<sql::VialEntry> = vials
        .iter()
        .enumerate()
        .map(|(k, (p, (site, product, lot), after, day))| sql::VialEntry {
            id: entry_ids[k],
            site: *site,
            actor: calls[planned[*p].call].label.clone(),
            product: product.clone(),
            lot: lot.clone(),
            balance_after: *after,
            occurred_on: *day,
            record_id: record_ids[*p],
        })
        .collect();
    let rows: Vec<sql::NewRecord> = planned
        .iter()
        .enumerate()
        .map(|(k, p)| sql::NewRecord {
            id: record_ids[k],
            site: calls[p.call].site.as_str().to_owned(),
            actor: calls[p.call].label.clone(),
            person_id: p.person_id,
            municipality: p.dose.municipality.as_str().to_owned(),
            prefecture: p.dose.municipality.prefecture().as_str().to_owned(),
            coupon: p.dose.coupon.as_str().to_owned(),
            dose_number: i16::from(p.dose.dose_number),
            administered_on: p.dose.administered_on,
            product: p.dose.product.as_str().to_owned(),
            lot: p.dose.lot.as_str().to_owned(),
            doctor_name: p.dose.doctor_name.clone(),
            capture: p.dose.capture.as_str(),
            override_id: p.override_id,
            override_reason: p.dose.override_reason.clone(),
            vial_entry_id: resolve(p.vial),
            opened_vial: p.opened,
            idempotency_key: p.dose.idempotency_key.clone(),
            request_hash: p.dose.request_hash.clone(),
        })
        .collect();
    let updates: Vec<sql::LotUpdate<'_>> = lots
        .iter()
        .filter(|(_, s)| s.touched)
        .map(|(key, state)| sql::LotUpdate {
            key,
            row: sql::LotRow {
                on_hand: state.doses.on_hand,
                open_doses: state.doses.open_doses,
                open_entry_id: resolve(state.open),
                expiry_date: state.expiry,
            },
            administered_delta: state.opened,
        })
        .collect();
    let guard = match how {
        Lots::LockFirst => sql::Guard::Locked,
        Lots::CheckAtWrite => sql::Guard::Unchanged(&seen),
    };
    if !sql::write_batch(db, &entries, &rows, &updates, now, plans, guard).await? {
        return Ok(None);
    }

    let mut changes: Vec<Vec<StockChange>> = calls.iter().map(|_| Vec::new()).collect();
    for (e, (p, key, _, _)) in entries.iter().zip(&vials) {
        let n = planned[*p].call;
        let municipality = facts[n]
            .as_ref()
            .map_err(|_| DomainError::Corrupt("a refused call planned a dose".into()))?;
        let expiry = lots.get(key).map_or(e.occurred_on, |s| s.expiry);
        changes[n].push(StockChange {
            entry_id: e.id,
            site: calls[n].site,
            municipality: *municipality,
            product: e.product.clone(),
            lot: e.lot.clone(),
            expiry_date: expiry,
            kind: EntryKind::Administered,
            quantity: -1,
            on_hand: crate::quantity::Vials::new(e.balance_after),
            recorded_at: now,
        });
    }
    let built: Vec<DoseRecord> = planned
        .iter()
        .zip(&rows)
        .map(|(p, r)| {
            let site = calls[p.call].site;
            DoseRecord {
                id: r.id,
                person_id: p.person_id,
                municipality: p.dose.municipality,
                coupon: p.dose.coupon,
                dose_number: p.dose.dose_number,
                administered_on: p.dose.administered_on,
                product: p.dose.product.clone(),
                lot: p.dose.lot.clone(),
                site,
                doctor_name: p.dose.doctor_name.clone(),
                capture: p.dose.capture,
                status: DoseStatus::Active,
                override_id: p.override_id,
                override_reason: p.dose.override_reason.clone(),
                vial_entry: r.vial_entry_id,
                opened_vial: p.opened,
                recorded_by_site: site,
                version: 1,
                recorded_at: now,
                recorded_by: r.actor.clone(),
                changed_at: now,
                changed_by: r.actor.clone(),
                change_reason: None,
            }
        })
        .collect();
    let answer = |s: &Slot| match s {
        Slot::Failed(e) => Err(clone_error(e)),
        Slot::Existing(r) => Ok(Outcome {
            record: (**r).clone(),
            created: false,
        }),
        Slot::New(k) => Ok(Outcome {
            record: built[*k].clone(),
            created: true,
        }),
        Slot::SameAs(..) => Err(DomainError::Corrupt("a repeated key points at a repeat".into())),
    };
    Ok(Some(
        slots
            .iter()
            .zip(changes)
            .zip(&facts)
            .map(|((mine, changes), fact)| {
                fact.as_ref().map_err(clone_error)?;
                Ok(Recorded {
                    results: mine
                        .iter()
                        .map(|s| match s {
                            // The first record under a key is never itself a repeat.
                            Slot::SameAs(m, j) => answer(&slots[*m][*j]).map(|o| Outcome {
                                record: o.record,
                                created: false,
                            }),
                            other => answer(other),
                        })
                        .collect(),
                    changes,
                })
            })
            .collect(),
    ))
}

fn key_reused(field: &str) -> DomainError {
    DomainError::Refused {
        reason: reason::IDEMPOTENCY_KEY_REUSED,
        message: format!(
            "{field}.idempotencyKey: this key was used for a different dose; the original is kept (use a new key for a new dose)"
        ),
    }
}

/// Errors of a batch are reported per record; they hold no database error (those abort the
/// call), so this copy loses nothing callers see.
fn clone_error(e: &DomainError) -> DomainError {
    match e {
        DomainError::Invalid { field, reason } => DomainError::Invalid {
            field: field.clone(),
            reason: reason.clone(),
        },
        DomainError::NotFound { what, key } => DomainError::NotFound { what, key: key.clone() },
        DomainError::Conflict(m) => DomainError::Conflict(m.clone()),
        DomainError::Refused { reason, message } => DomainError::Refused {
            reason,
            message: message.clone(),
        },
        DomainError::Forbidden(m) => DomainError::Forbidden(m.clone()),
        DomainError::Blocked { message, items } => DomainError::Blocked {
            message: message.clone(),
            items: items.clone(),
        },
        DomainError::Database(_) | DomainError::Corrupt(_) => DomainError::Corrupt("batch record failed".into()),
    }
}

/// Decides one new record against the person, their earlier doses (including those planned
/// earlier in this batch, which it then joins) and the lot.
#[allow(clippy::too_many_arguments)]
fn plan_one(
    c: &CheckedDose,
    field: &str,
    persons: &HashMap<(String, String), sql::PersonRow>,
    earlier: &mut HashMap<i64, Vec<EarlierDose>>,
    overrides: &HashMap<(i64, u8), i64>,
    rules: &HashMap<(String, u8), dose::IntervalRule>,
    per_vial: &HashMap<String, u64>,
    lot: Option<&mut LotState>,
) -> DomainResult<(Planned, Draw)> {
    let person = persons
        .get(&(c.municipality.as_str().to_owned(), c.coupon.as_str().to_owned()))
        .ok_or_else(|| DomainError::Refused {
            reason: reason::PERSON_NOT_FOUND,
            message: format!(
                "no person holds this coupon number in municipality {}; a coupon is looked up in the municipality printed on it",
                c.municipality
            ),
        })?;
    if let Some(on) = person.moved_out_on {
        return Err(DomainError::Refused {
            reason: reason::PERSON_MOVED_OUT,
            message: format!(
                "the person moved out of municipality {} on {on}; record the dose with the coupon of the municipality they live in now",
                c.municipality
            ),
        });
    }
    if !per_vial.contains_key(c.product.as_str()) {
        return Err(DomainError::invalid(
            format!("{field}.product"),
            format!("{} is not a vaccine", c.product),
        ));
    }
    let rule = if c.dose_number > 1 {
        rules
            .get(&(c.product.as_str().to_owned(), c.dose_number))
            .or_else(|| rules.get(&(c.product.as_str().to_owned(), 0)))
            .copied()
    } else {
        None
    };
    let override_id = overrides.get(&(person.id, c.dose_number)).copied();
    let theirs = earlier.entry(person.id).or_default();
    // Only the override actually used is noted on the record.
    let used = dose::check_conflicts(c.dose_number, c.administered_on, theirs, rule, override_id)?;
    let state = lot.ok_or_else(|| {
        DomainError::invalid(
            format!("{field}.lot"),
            format!("this site holds no lot {} of {}", c.lot, c.product),
        )
    })?;
    dose::check_lot_date(state.expiry, c.administered_on, &c.lot)?;
    let draw = state.doses.take().ok_or_else(|| DomainError::Refused {
        reason: reason::OUT_OF_STOCK,
        message: format!("no doses of lot {} of {} are left at this site", c.lot, c.product),
    })?;
    theirs.push(EarlierDose {
        dose_number: c.dose_number,
        administered_on: c.administered_on,
    });
    Ok((
        Planned {
            call: 0,
            dose: c.clone(),
            person_id: person.id,
            override_id: used,
            vial: VialRef::None,
            opened: false,
        },
        draw,
    ))
}

// ---- corrections ----

/// What an amendment changes (absent: kept).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub dose_number: Option<u8>,
    pub administered_on: Option<NaiveDate>,
    pub product: Option<ProductCode>,
    pub lot: Option<LotNumber>,
    pub site: Option<SiteCode>,
    pub doctor_name: Option<String>,
}

/// A corrected record and the stock changes its correction made.
#[derive(Debug)]
pub struct Corrected {
    pub record: DoseRecord,
    pub changes: Vec<StockChange>,
}

async fn site_municipality<C: ConnectionTrait>(db: &C, site: &SiteCode) -> DomainResult<MunicipalityCode> {
    Ok(recording_site(db, site).await?.municipality)
}

fn lot_change(
    site: &SiteCode,
    municipality: MunicipalityCode,
    product: &ProductCode,
    lot: &LotNumber,
    expiry: NaiveDate,
    (kind, quantity, id, on_hand): (EntryKind, i64, i64, u64),
    now: DateTime<Utc>,
) -> StockChange {
    StockChange {
        entry_id: id,
        site: *site,
        municipality,
        product: product.clone(),
        lot: lot.clone(),
        expiry_date: expiry,
        kind,
        quantity,
        on_hand: crate::quantity::Vials::new(on_hand),
        recorded_at: now,
    }
}

/// Gives one dose back to a lot (a voided or moved record). When the open vial is whole
/// again, its opening entry is reversed and the vial is back on hand.
async fn give_back<C: ConnectionTrait>(
    db: &C,
    r: &DoseRecord,
    per_vial: u64,
    note: &str,
    now: DateTime<Utc>,
    actor: &str,
) -> DomainResult<Option<StockChange>> {
    let row = sql::lock_lot(db, &r.site, &r.product, &r.lot)
        .await?
        .ok_or_else(|| corrupt(r.id, "its lot has no balance row"))?;
    let mut doses = LotDoses {
        on_hand: row.on_hand,
        open_doses: row.open_doses,
        doses_per_vial: per_vial,
    };
    let can_close = match row.open_entry_id {
        Some(id) => !sql::is_reversed(db, id).await?,
        None => false,
    };
    let mut next = row;
    let mut change = None;
    let mut delta = 0;
    match doses.give_back(can_close) {
        GiveBack::IntoOpenVial => {}
        GiveBack::VialBack => {
            let opened = row
                .open_entry_id
                .ok_or_else(|| corrupt(r.id, "vial back without entry"))?;
            let today = today_in_japan();
            let id = sql::insert_vial_back(
                db,
                &r.site,
                &r.product,
                &r.lot,
                doses.on_hand,
                opened,
                today,
                note,
                now,
                actor,
            )
            .await?;
            next.open_entry_id = None;
            delta = -1;
            let m = site_municipality(db, &r.site).await?;
            change = Some(lot_change(
                &r.site,
                m,
                &r.product,
                &r.lot,
                row.expiry_date,
                (EntryKind::Reversed, 1, id, doses.on_hand),
                now,
            ));
        }
    }
    next.on_hand = doses.on_hand;
    next.open_doses = doses.open_doses;
    sql::set_lot(db, &r.site, &r.product, &r.lot, &next, delta, now).await?;
    Ok(change)
}

/// Takes one dose for a record moved to another lot (an amendment).
async fn take_one<C: ConnectionTrait>(
    db: &C,
    r: &mut DoseRecord,
    per_vial: u64,
    now: DateTime<Utc>,
    actor: &str,
    field: &str,
) -> DomainResult<Option<StockChange>> {
    let row = sql::lock_lot(db, &r.site, &r.product, &r.lot).await?.ok_or_else(|| {
        DomainError::invalid(
            format!("{field}.lot"),
            format!("site {} holds no lot {} of {}", r.site, r.lot, r.product),
        )
    })?;
    dose::check_lot_date(row.expiry_date, r.administered_on, &r.lot)?;
    let mut doses = LotDoses {
        on_hand: row.on_hand,
        open_doses: row.open_doses,
        doses_per_vial: per_vial,
    };
    let draw = doses.take().ok_or_else(|| DomainError::Refused {
        reason: reason::OUT_OF_STOCK,
        message: format!("no doses of lot {} of {} are left at site {}", r.lot, r.product, r.site),
    })?;
    let mut next = row;
    next.on_hand = doses.on_hand;
    next.open_doses = doses.open_doses;
    let mut change = None;
    let mut delta = 0;
    match draw {
        Draw::FromOpenVial => {
            r.vial_entry = row.open_entry_id;
            r.opened_vial = false;
        }
        Draw::OpenedVial => {
            let id = sql::next_ids(db, "stock_entries", 1).await?[0];
            let entry = sql::VialEntry {
                id,
                site: r.site,
                actor: actor.to_owned(),
                product: r.product.clone(),
                lot: r.lot.clone(),
                balance_after: doses.on_hand,
                occurred_on: r.administered_on,
                record_id: r.id,
            };
            sql::insert_vials(db, std::slice::from_ref(&entry), now).await?;
            next.open_entry_id = Some(id);
            delta = 1;
            r.vial_entry = Some(id);
            r.opened_vial = true;
            let m = site_municipality(db, &r.site).await?;
            change = Some(lot_change(
                &r.site,
                m,
                &r.product,
                &r.lot,
                row.expiry_date,
                (EntryKind::Administered, -1, id, doses.on_hand),
                now,
            ));
        }
    }
    sql::set_lot(db, &r.site, &r.product, &r.lot, &next, delta, now).await?;
    Ok(change)
}

async fn per_vial_of<C: ConnectionTrait>(db: &C, product: &ProductCode) -> DomainResult<u64> {
    sql::doses_per_vial(db)
        .await?
        .get(product.as_str())
        .copied()
        .ok_or_else(|| DomainError::invalid("changes.product", format!("{product} is not a vaccine")))
}

async fn load_for_correction<C: ConnectionTrait>(db: &C, actor: &Actor, id: i64) -> DomainResult<DoseRecord> {
    let r = sql::record_for_update(db, id)
        .await?
        .ok_or_else(|| DomainError::not_found("dose record", id))?;
    // Outside the caller's reach the record does not exist for them.
    if authz::can_correct_dose(actor, &r.recorded_by_site, &r.municipality).is_err() {
        return match authz::dose_read_scope(actor) {
            Ok(scope) if scope.contains(&r.recorded_by_site, &r.municipality) => {
                Err(authz::can_correct_dose(actor, &r.recorded_by_site, &r.municipality)
                    .map_err(DomainError::from)
                    .err()
                    .unwrap_or_else(|| DomainError::not_found("dose record", id)))
            }
            _ => Err(DomainError::not_found("dose record", id)),
        };
    }
    if r.status == DoseStatus::Voided {
        return Err(DomainError::Refused {
            reason: reason::ALREADY_VOIDED,
            message: format!("dose record {id} is voided; record the dose again instead"),
        });
    }
    Ok(r)
}

/// Voids a record entered in error: it stays, marked VOIDED with who, when and why (its
/// earlier version kept), counts nowhere, and its dose goes back to the lot's stock.
#[tracing::instrument(skip_all, fields(record = id))]
pub async fn void(store: &Store, actor: &Actor, id: i64, why: &str) -> DomainResult<Corrected> {
    let why = bounded_text(why, 1, MAX_REASON, "reason")?;
    let label = actor.label();
    let tx = store.write().await?;
    let now = Utc::now();
    let mut r = load_for_correction(&*tx, actor, id).await?;
    let per_vial = per_vial_of(&*tx, &r.product).await?;
    let change = give_back(&*tx, &r, per_vial, &format!("dose record {id} voided"), now, &label).await?;
    sql::keep_version(&*tx, id).await?;
    r.status = DoseStatus::Voided;
    sql::update_record(&*tx, &r, now, &label, &why).await?;
    tx.commit().await?;
    r.version += 1;
    r.changed_at = now;
    r.changed_by = label;
    r.change_reason = Some(why);
    Ok(Corrected {
        record: r,
        changes: change.into_iter().collect(),
    })
}

/// Amends a record: the changed fields are checked like a new dose (date not in the future,
/// conflicts with the person's other doses, the lot held by the site); a changed site, product
/// or lot moves the dose's stock effect. The previous version is kept with who, when and why.
#[tracing::instrument(skip_all, fields(record = id))]
pub async fn amend(store: &Store, actor: &Actor, id: i64, c: &Changes, why: &str) -> DomainResult<Corrected> {
    let why = bounded_text(why, 1, MAX_REASON, "reason")?;
    let today = today_in_japan();
    if let Some(d) = c.administered_on
        && d > today
    {
        return Err(DomainError::invalid("changes.administeredOn", "is in the future"));
    }
    if let Some(n) = c.dose_number
        && !(1..=dose::MAX_DOSE_NUMBER).contains(&n)
    {
        return Err(DomainError::invalid(
            "changes.doseNumber",
            format!("must be 1 to {}", dose::MAX_DOSE_NUMBER),
        ));
    }
    let doctor = c
        .doctor_name
        .as_deref()
        .map(|d| bounded_text(d, 1, dose::MAX_DOCTOR, "changes.doctorName"))
        .transpose()?;
    let label = actor.label();
    let tx = store.write().await?;
    let now = Utc::now();
    let old = load_for_correction(&*tx, actor, id).await?;
    let mut r = old.clone();
    if let Some(n) = c.dose_number {
        r.dose_number = n;
    }
    if let Some(d) = c.administered_on {
        r.administered_on = d;
    }
    if let Some(p) = &c.product {
        r.product = p.clone();
    }
    if let Some(l) = &c.lot {
        r.lot = l.clone();
    }
    if let Some(s) = c.site {
        r.site = s;
    }
    if let Some(d) = doctor {
        r.doctor_name = d;
    }
    if r == old {
        return Err(DomainError::invalid("changes", "nothing would change"));
    }
    if r.site != old.site {
        recording_site(&*tx, &r.site).await.map_err(|e| match e {
            DomainError::NotFound { .. } | DomainError::Forbidden(_) => {
                DomainError::invalid("changes.site", "no such active site")
            }
            other => other,
        })?;
    }
    // The conflicts, against the person's other ACTIVE doses.
    let earlier = sql::earlier_doses(&*tx, &[r.person_id], Some(id)).await?;
    let rules = sql::interval_rules(&*tx).await?;
    let overrides = sql::overrides(&*tx, &[r.person_id]).await?;
    let rule = if r.dose_number > 1 {
        rules
            .get(&(r.product.as_str().to_owned(), r.dose_number))
            .or_else(|| rules.get(&(r.product.as_str().to_owned(), 0)))
            .copied()
    } else {
        None
    };
    let theirs = earlier.get(&r.person_id).map(Vec::as_slice).unwrap_or(&[]);
    let overridden = overrides.get(&(r.person_id, r.dose_number)).copied();
    // As when recording, the record notes the override only if the amended dose needs it (a
    // date moved later may no longer need it; moved earlier, it may now).
    r.override_id = dose::check_conflicts(r.dose_number, r.administered_on, theirs, rule, overridden)?;
    let mut changes = Vec::new();
    if (r.site, &r.product, &r.lot) != (old.site, &old.product, &old.lot) {
        let old_per_vial = per_vial_of(&*tx, &old.product).await?;
        let new_per_vial = per_vial_of(&*tx, &r.product).await?;
        // Both rows in (site, product, lot) order, so two corrections never wait on each other
        // in opposite orders.
        let note = format!("dose record {id} amended");
        if (old.site, &old.product, &old.lot) < (r.site, &r.product, &r.lot) {
            changes.extend(give_back(&*tx, &old, old_per_vial, &note, now, &label).await?);
            changes.extend(take_one(&*tx, &mut r, new_per_vial, now, &label, "changes").await?);
        } else {
            changes.extend(take_one(&*tx, &mut r, new_per_vial, now, &label, "changes").await?);
            changes.extend(give_back(&*tx, &old, old_per_vial, &note, now, &label).await?);
        }
    } else if r.administered_on != old.administered_on {
        let expiry = sql::lock_lot(&*tx, &r.site, &r.product, &r.lot)
            .await?
            .map(|l| l.expiry_date)
            .ok_or_else(|| corrupt(id, "its lot has no balance row"))?;
        dose::check_lot_date(expiry, r.administered_on, &r.lot)?;
    }
    sql::keep_version(&*tx, id).await?;
    match sql::update_record(&*tx, &r, now, &label, &why).await {
        Err(e) if is_unique_violation(&e) => {
            return Err(DomainError::Refused {
                reason: reason::DUPLICATE_DOSE,
                message: format!("dose {} of this person is already recorded", r.dose_number),
            });
        }
        other => other?,
    }
    tx.commit().await?;
    r.version += 1;
    r.changed_at = now;
    r.changed_by = label;
    r.change_reason = Some(why);
    Ok(Corrected { record: r, changes })
}

/// One version of a record: what it said, who made it, when and why.
#[derive(Clone)]
pub struct DoseVersion {
    pub version: i32,
    pub dose_number: u8,
    pub administered_on: NaiveDate,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub site: SiteCode,
    pub doctor_name: String,
    pub status: DoseStatus,
    pub made_at: DateTime<Utc>,
    pub made_by: String,
    pub reason: Option<String>,
    /// The municipality's interval override this version used (unknown, so `None`, for
    /// versions kept before versions recorded it).
    pub override_id: Option<i64>,
}

/// Every version of a record, oldest first (the last is the current one).
pub async fn versions(store: &Store, actor: &Actor, id: i64) -> DomainResult<Vec<DoseVersion>> {
    let current = get(store, actor, id).await?;
    let rows = store
        .db()
        .query_all_raw(stmt(
            store.backend(),
            "SELECT version, dose_number, administered_on, product_code, lot_number, site_code, doctor_name, status, \
             made_at, made_by, reason, override_id FROM dose_record_versions WHERE record_id = ? ORDER BY version",
            vec![id.into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len() + 1);
    for r in rows {
        let text = |c: &str| -> DomainResult<String> { Ok(r.try_get::<String>("", c)?.trim().to_owned()) };
        let n: i16 = r.try_get("", "dose_number")?;
        out.push(DoseVersion {
            version: r.try_get("", "version")?,
            dose_number: u8::try_from(n).map_err(|e| corrupt(id, e))?,
            administered_on: r.try_get("", "administered_on")?,
            product: text("product_code")?.parse().map_err(|e| corrupt(id, e))?,
            lot: text("lot_number")?.parse().map_err(|e| corrupt(id, e))?,
            site: text("site_code")?.parse().map_err(|e| corrupt(id, e))?,
            doctor_name: r.try_get("", "doctor_name")?,
            status: text("status")?.parse().map_err(|e| corrupt(id, e))?,
            made_at: r.try_get("", "made_at")?,
            made_by: r.try_get("", "made_by")?,
            reason: r.try_get("", "reason")?,
            override_id: r.try_get("", "override_id")?,
        });
    }
    out.push(DoseVersion {
        version: current.version,
        dose_number: current.dose_number,
        administered_on: current.administered_on,
        product: current.product,
        lot: current.lot,
        site: current.site,
        doctor_name: current.doctor_name,
        status: current.status,
        made_at: current.changed_at,
        made_by: current.changed_by,
        reason: current.change_reason,
        override_id: current.override_id,
    });
    Ok(out)
}

// ---- interval overrides and leftovers ----

/// A municipality's permission for one person's dose to come earlier than the minimum interval.
#[derive(Debug, Clone)]
pub struct IntervalOverride {
    pub id: i64,
    pub municipality: MunicipalityCode,
    pub coupon: CouponNumber,
    pub dose_number: u8,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// The person's municipality allows dose `dose_number` earlier than the product's minimum
/// interval, for a recorded reason (a standing override the recording site's dose then uses;
/// recording it again replaces the reason).
pub async fn allow_early_dose(
    store: &Store,
    actor: &Actor,
    municipality: MunicipalityCode,
    coupon: CouponNumber,
    dose_number: u8,
    why: &str,
) -> DomainResult<IntervalOverride> {
    authz::can_override_interval(actor, &municipality)?;
    if !(2..=dose::MAX_DOSE_NUMBER).contains(&dose_number) {
        return Err(DomainError::invalid(
            "doseNumber",
            format!("an interval precedes doses 2 to {}", dose::MAX_DOSE_NUMBER),
        ));
    }
    let why = bounded_text(why, 1, MAX_REASON, "reason")?;
    let label = actor.label();
    let tx = store.write().await?;
    let now = Utc::now();
    let persons = sql::persons(&*tx, &[(municipality.as_str().to_owned(), coupon.as_str().to_owned())]).await?;
    let person = persons.values().next().ok_or_else(|| DomainError::Refused {
        reason: reason::PERSON_NOT_FOUND,
        message: format!("no person holds this coupon number in municipality {municipality}"),
    })?;
    let sql = "INSERT INTO dose_interval_overrides (person_id, dose_number, municipality_code, reason, created_at, created_by) \
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (person_id, dose_number) DO UPDATE SET reason = excluded.reason, \
               created_at = excluded.created_at, created_by = excluded.created_by RETURNING id";
    let values: Vec<Value> = vec![
        person.id.into(),
        i16::from(dose_number).into(),
        municipality.as_str().into(),
        why.as_str().into(),
        now.into(),
        label.as_str().into(),
    ];
    let row = tx
        .query_one_raw(stmt(store.backend(), sql, values))
        .await?
        .ok_or_else(|| DomainError::Corrupt("override insert returned nothing".into()))?;
    let id: i64 = row.try_get("", "id")?;
    tx.commit().await?;
    Ok(IntervalOverride {
        id,
        municipality,
        coupon,
        dose_number,
        reason: why,
        created_at: now,
        created_by: label,
    })
}

/// The doses left in a lot's open vial, discarded at the end of a day.
#[derive(Debug, Clone)]
pub struct LeftoverWriteOff {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub doses: u64,
    pub vial_entry: Option<i64>,
    pub occurred_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// Discards the doses left in the open vial of a lot (end of day). No vial leaves the stock:
/// the vial was booked ADMINISTERED when it was opened; the discarded doses are kept in
/// `dose_leftovers`. Refused when the lot has no open doses.
pub async fn write_off_leftovers(
    store: &Store,
    actor: &Actor,
    site: &SiteCode,
    product: &ProductCode,
    lot: &LotNumber,
) -> DomainResult<LeftoverWriteOff> {
    authz::can_write_stock(actor, site)?;
    let label = actor.label();
    let tx = store.write().await?;
    let now = Utc::now();
    let row = sql::lock_lot(&*tx, site, product, lot)
        .await?
        .ok_or_else(|| DomainError::invalid("lot", format!("site {site} holds no lot {lot} of {product}")))?;
    if row.open_doses == 0 {
        return Err(DomainError::invalid("lot", "no vial of this lot is open"));
    }
    let mut next = row;
    next.open_doses = 0;
    next.open_entry_id = None;
    sql::set_lot(&*tx, site, product, lot, &next, 0, now).await?;
    let sql = "INSERT INTO dose_leftovers (site_code, product_code, lot_number, doses, vial_entry_id, occurred_on, recorded_at, actor) \
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    let today = today_in_japan();
    let values: Vec<Value> = vec![
        site.as_str().into(),
        product.as_str().into(),
        lot.as_str().into(),
        i64::try_from(row.open_doses).unwrap_or(i64::MAX).into(),
        row.open_entry_id.into(),
        today.into(),
        now.into(),
        label.as_str().into(),
    ];
    tx.execute_raw(stmt(store.backend(), sql, values)).await?;
    tx.commit().await?;
    Ok(LeftoverWriteOff {
        site: *site,
        product: product.clone(),
        lot: lot.clone(),
        doses: row.open_doses,
        vial_entry: row.open_entry_id,
        occurred_on: today,
        recorded_at: now,
        recorded_by: label,
    })
}

/// A window of days `from`–`to`: in order and at most [`dose::MAX_COUNT_DAYS`] long.
fn check_days(from: NaiveDate, to: NaiveDate) -> DomainResult<()> {
    if to < from {
        return Err(DomainError::invalid("to", "must not be before from"));
    }
    if (to - from).num_days() >= dose::MAX_COUNT_DAYS {
        return Err(DomainError::invalid(
            "to",
            format!("at most {} days per query", dose::MAX_COUNT_DAYS),
        ));
    }
    Ok(())
}

/// Whether `actor` reads `site`'s stock (the site, its municipality, prefecture, NATIONAL).
async fn may_read_site_stock(store: &Store, actor: &Actor, site: &SiteCode) -> DomainResult<()> {
    let municipality = site_municipality_any(store, site).await?;
    authz::can_read_stock_area(
        actor,
        &StockArea::Site {
            code: *site,
            municipality,
        },
    )?;
    Ok(())
}

/// A site's leftover write-offs on days `from`–`to` (at most [`dose::MAX_COUNT_DAYS`]), oldest
/// first: for the site, its municipality, prefecture and NATIONAL (whoever reads its stock).
pub async fn leftovers(
    store: &Store,
    actor: &Actor,
    site: &SiteCode,
    from: NaiveDate,
    to: NaiveDate,
) -> DomainResult<Vec<LeftoverWriteOff>> {
    check_days(from, to)?;
    may_read_site_stock(store, actor, site).await?;
    let rows = store
        .db()
        .query_all_raw(stmt(
            store.backend(),
            "SELECT product_code, lot_number, doses, vial_entry_id, occurred_on, recorded_at, actor FROM dose_leftovers \
             WHERE site_code = CAST(? AS bpchar) AND occurred_on >= ? AND occurred_on <= ? ORDER BY id",
            vec![site.as_str().into(), from.into(), to.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let bad = |e: crate::codes::CodeError| DomainError::Corrupt(format!("leftovers of {site}: {e}"));
            let doses: i64 = r.try_get("", "doses")?;
            Ok(LeftoverWriteOff {
                site: *site,
                product: r.try_get::<String>("", "product_code")?.parse().map_err(bad)?,
                lot: r.try_get::<String>("", "lot_number")?.parse().map_err(bad)?,
                doses: u64::try_from(doses)
                    .map_err(|_| DomainError::Corrupt(format!("leftovers of {site}: negative")))?,
                vial_entry: r.try_get("", "vial_entry_id")?,
                occurred_on: r.try_get("", "occurred_on")?,
                recorded_at: r.try_get("", "recorded_at")?,
                recorded_by: r.try_get("", "actor")?,
            })
        })
        .collect()
}

/// Refuses a vial-level LEFTOVER_DOSES write-off on a lot whose open vial came from dose
/// records: that vial left the stock when it was opened, so taking another vial for its
/// leftovers would count it twice (`ledger::withdraw` asks this first).
pub(crate) async fn check_vial_leftover_write_off<C: ConnectionTrait>(
    db: &C,
    site: &SiteCode,
    product: &ProductCode,
    lot: &LotNumber,
) -> DomainResult<()> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT open_doses FROM stock_balances WHERE site_code = CAST(? AS bpchar) AND product_code = ? AND lot_number = ?",
            vec![site.as_str().into(), product.as_str().into(), lot.as_str().into()],
        ))
        .await?;
    let open: i64 = match row {
        Some(r) => r.try_get("", "open_doses")?,
        None => 0,
    };
    if open > 0 {
        return Err(DomainError::Conflict(format!(
            "lot {lot} has {open} doses open from dose records; the vial was booked when it was opened, \
             so write its leftover doses off with writeOffLeftoverDoses instead of taking a vial"
        )));
    }
    Ok(())
}

/// Refuses reversing, through the ledger, the ADMINISTERED entry of a vial opened for doses:
/// the dose records are what is corrected (a void gives the doses, and then the vial, back), so
/// the ledger and the records never disagree (`ledger::reverse` asks this first).
pub(crate) async fn check_entry_reversal<C: ConnectionTrait>(db: &C, entry: i64) -> DomainResult<()> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT dose_record_id FROM stock_entries WHERE id = ?",
            vec![entry.into()],
        ))
        .await?;
    let record: Option<i64> = match row {
        Some(r) => r.try_get("", "dose_record_id")?,
        None => None,
    };
    match record {
        Some(id) => Err(DomainError::invalid(
            "entry",
            format!("this vial was opened for dose record {id}; void or amend the dose records instead"),
        )),
        None => Ok(()),
    }
}

// ---- reads ----

/// A lot of a site, in doses.
#[derive(Debug, Clone)]
pub struct LotDoseStock {
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub on_hand: u64,
    pub open_doses: u64,
    pub doses_per_vial: u64,
    pub open_vial_entry: Option<i64>,
}

impl LotDoseStock {
    /// Doses that can still be given from this lot.
    pub fn available(&self) -> u64 {
        LotDoses {
            on_hand: self.on_hand,
            open_doses: self.open_doses,
            doses_per_vial: self.doses_per_vial,
        }
        .available()
    }
}

/// A site's lots in doses: whole vials, the open vial's doses, doses available. Read like stock.
pub async fn lot_doses(store: &Store, actor: &Actor, site: &SiteCode) -> DomainResult<Vec<LotDoseStock>> {
    may_read_site_stock(store, actor, site).await?;
    let rows = store
        .db()
        .query_all_raw(stmt(
            store.backend(),
            "SELECT b.product_code, b.lot_number, b.expiry_date, b.on_hand, b.open_doses, b.open_entry_id, p.doses_per_vial \
             FROM stock_balances b JOIN products p ON p.code = b.product_code \
             WHERE b.site_code = CAST(? AS bpchar) ORDER BY b.product_code, b.lot_number",
            vec![site.as_str().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let bad = |e: crate::codes::CodeError| DomainError::Corrupt(format!("balance of {site}: {e}"));
            let on_hand: i64 = r.try_get("", "on_hand")?;
            let open: i64 = r.try_get("", "open_doses")?;
            let dpv: Option<i32> = r.try_get("", "doses_per_vial")?;
            Ok(LotDoseStock {
                product: r.try_get::<String>("", "product_code")?.parse().map_err(bad)?,
                lot: r.try_get::<String>("", "lot_number")?.parse().map_err(bad)?,
                expiry_date: r.try_get("", "expiry_date")?,
                on_hand: u64::try_from(on_hand).unwrap_or(0),
                open_doses: u64::try_from(open).unwrap_or(0),
                doses_per_vial: dpv.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                open_vial_entry: r.try_get("", "open_entry_id")?,
            })
        })
        .collect()
}

async fn site_municipality_any(store: &Store, site: &SiteCode) -> DomainResult<MunicipalityCode> {
    let row = store
        .db()
        .query_one_raw(stmt(
            store.backend(),
            "SELECT municipality_code FROM sites WHERE code = CAST(? AS bpchar)",
            vec![site.as_str().into()],
        ))
        .await?
        .ok_or_else(|| DomainError::not_found("site", site))?;
    let m: String = row.try_get("", "municipality_code")?;
    m.trim()
        .parse()
        .map_err(|e| DomainError::Corrupt(format!("site {site}: {e}")))
}

/// One record, if the caller may read it (NOT_FOUND otherwise: its existence is not revealed).
pub async fn get(store: &Store, actor: &Actor, id: i64) -> DomainResult<DoseRecord> {
    let scope = authz::dose_read_scope(actor)?;
    let row = store
        .db()
        .query_one_raw(stmt(
            store.backend(),
            &format!("SELECT {} FROM dose_records WHERE id = ?", sql::COLUMNS),
            vec![id.into()],
        ))
        .await?;
    match row.as_ref().map(record_from_row).transpose()? {
        Some(r) if scope.contains(&r.recorded_by_site, &r.municipality) => Ok(r),
        _ => Err(DomainError::not_found("dose record", id)),
    }
}

/// Which records to list (within the caller's scope).
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub coupon: Option<CouponNumber>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub include_voided: bool,
}

/// Records in the caller's scope (a site: those it recorded; a municipality: its residents'),
/// newest first, `first` after the cursor `before` (an id).
pub async fn list(
    store: &Store,
    actor: &Actor,
    f: &RecordFilter,
    before: Option<i64>,
    first: u64,
) -> DomainResult<(Vec<DoseRecord>, bool)> {
    let scope = authz::dose_read_scope(actor)?;
    let mut sql = format!("SELECT {} FROM dose_records WHERE ", sql::COLUMNS);
    let mut values: Vec<Value> = Vec::new();
    match &scope {
        DoseScope::RecordedBy(s) => {
            sql.push_str("recorded_by_site = CAST(? AS bpchar)");
            values.push(s.as_str().into());
        }
        DoseScope::Residents(m) => {
            sql.push_str("municipality_code = CAST(? AS bpchar)");
            values.push(m.as_str().into());
        }
    }
    if let Some(c) = &f.coupon {
        sql.push_str(" AND coupon_number = CAST(? AS bpchar)");
        values.push(c.as_str().into());
    }
    if let Some(d) = f.from {
        sql.push_str(" AND administered_on >= ?");
        values.push(d.into());
    }
    if let Some(d) = f.to {
        sql.push_str(" AND administered_on <= ?");
        values.push(d.into());
    }
    if !f.include_voided {
        sql.push_str(" AND status = 'ACTIVE'");
    }
    if let Some(b) = before {
        sql.push_str(" AND id < ?");
        values.push(b.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::try_from(first + 1).unwrap_or(i64::MAX).into());
    let rows = store.db().query_all_raw(stmt(store.backend(), &sql, values)).await?;
    let mut out = rows.iter().map(record_from_row).collect::<DomainResult<Vec<_>>>()?;
    let more = out.len() as u64 > first;
    out.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    Ok((out, more))
}

/// A person's dose history as their municipality sees it: the records of the person and of
/// every earlier row of theirs linked when they moved in (`persons::link_earlier_records`, which
/// audited that look-up), oldest first, voided records left out. Only the person's own
/// municipality reads it; the earlier municipalities keep their records and scope unchanged.
pub async fn history(store: &Store, actor: &Actor, person_id: i64) -> DomainResult<Vec<DoseRecord>> {
    use sea_orm::{EntityTrait, QuerySelect};
    let DoseScope::Residents(m) = authz::dose_read_scope(actor)? else {
        return Err(DomainError::Forbidden(
            "a person's dose history is read by their municipality".into(),
        ));
    };
    let owner: Option<String> = crate::entities::person::Entity::find_by_id(person_id)
        .select_only()
        .column(crate::entities::person::Column::MunicipalityCode)
        .into_tuple()
        .one(store.db())
        .await?;
    if owner.as_deref() != Some(m.as_str()) {
        return Err(DomainError::not_found("person", person_id));
    }
    let ids = crate::persons::record_owner_ids(store.db(), person_id).await?;
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT {} FROM dose_records WHERE person_id IN ({marks}) AND status = 'ACTIVE' \
         ORDER BY administered_on, dose_number, id",
        sql::COLUMNS
    );
    let values: Vec<Value> = ids.into_iter().map(Value::from).collect();
    let rows = store.db().query_all_raw(stmt(store.backend(), &sql, values)).await?;
    rows.iter().map(record_from_row).collect()
}

/// What counts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CountBy {
    Day,
    Municipality,
    Prefecture,
    Product,
    DoseNumber,
}

impl CountBy {
    fn column(self) -> &'static str {
        match self {
            CountBy::Day => "administered_on",
            CountBy::Municipality => "municipality_code",
            CountBy::Prefecture => "prefecture_code",
            CountBy::Product => "product_code",
            CountBy::DoseNumber => "dose_number",
        }
    }
}

/// A count query: days `from`–`to` (at most [`dose::MAX_COUNT_DAYS`]), optionally one area and
/// product, grouped by any of [`CountBy`].
#[derive(Debug, Clone)]
pub struct CountQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub municipality: Option<MunicipalityCode>,
    pub prefecture: Option<PrefectureCode>,
    pub product: Option<ProductCode>,
    pub by: Vec<CountBy>,
}

/// One group of a count (the grouped-by fields set, the others empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoseCount {
    pub day: Option<NaiveDate>,
    pub municipality: Option<MunicipalityCode>,
    pub prefecture: Option<PrefectureCode>,
    pub product: Option<ProductCode>,
    pub dose_number: Option<u8>,
    pub doses: u64,
}

/// Doses given (ACTIVE records), by the person's municipality of residence. Scoped: a
/// municipality its own residents, a prefecture its municipalities, the nation all, a site the
/// doses it recorded. Asking for an area outside yours is FORBIDDEN.
pub async fn counts(store: &Store, actor: &Actor, q: &CountQuery) -> DomainResult<Vec<DoseCount>> {
    let scope = authz::dose_count_scope(actor)?;
    check_days(q.from, q.to)?;
    if q.municipality.is_some() && q.prefecture.is_some() {
        return Err(DomainError::invalid(
            "municipality",
            "give a municipality or a prefecture, not both",
        ));
    }
    let inside = match (&scope, q.municipality, q.prefecture) {
        (DoseCountScope::All, _, _) => true,
        (DoseCountScope::Prefecture(p), Some(m), _) => m.prefecture() == *p,
        (DoseCountScope::Prefecture(p), None, Some(x)) => x == *p,
        (DoseCountScope::Prefecture(_), None, None) => true,
        (DoseCountScope::Municipality(m), Some(x), _) => x == *m,
        (DoseCountScope::Municipality(_), None, Some(_)) => false,
        (DoseCountScope::Municipality(_), None, None) => true,
        (DoseCountScope::Site(_), None, None) => true,
        (DoseCountScope::Site(_), _, _) => false,
    };
    if !inside {
        return Err(DomainError::Forbidden("that area is outside your scope".into()));
    }
    let mut by = q.by.clone();
    by.sort();
    by.dedup();
    let cols: Vec<&str> = by.iter().map(|b| b.column()).collect();
    let mut sql = String::from("SELECT ");
    for c in &cols {
        sql.push_str(c);
        sql.push_str(", ");
    }
    sql.push_str(
        "COUNT(*) AS doses FROM dose_records WHERE status = 'ACTIVE' AND administered_on >= ? AND administered_on <= ?",
    );
    let mut values: Vec<Value> = vec![q.from.into(), q.to.into()];
    match &scope {
        DoseCountScope::All => {}
        DoseCountScope::Prefecture(p) => {
            sql.push_str(" AND prefecture_code = CAST(? AS bpchar)");
            values.push(p.as_str().into());
        }
        DoseCountScope::Municipality(m) => {
            sql.push_str(" AND municipality_code = CAST(? AS bpchar)");
            values.push(m.as_str().into());
        }
        DoseCountScope::Site(s) => {
            sql.push_str(" AND recorded_by_site = CAST(? AS bpchar)");
            values.push(s.as_str().into());
        }
    }
    if let Some(m) = q.municipality {
        sql.push_str(" AND municipality_code = CAST(? AS bpchar)");
        values.push(m.as_str().into());
    }
    if let Some(p) = q.prefecture {
        sql.push_str(" AND prefecture_code = CAST(? AS bpchar)");
        values.push(p.as_str().into());
    }
    if let Some(p) = &q.product {
        sql.push_str(" AND product_code = ?");
        values.push(p.as_str().into());
    }
    if !cols.is_empty() {
        let list = cols.join(", ");
        sql.push_str(&format!(" GROUP BY {list} ORDER BY {list}"));
    }
    let rows = store.db().query_all_raw(stmt(store.backend(), &sql, values)).await?;
    let bad = |e: crate::codes::CodeError| DomainError::Corrupt(format!("dose count: {e}"));
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n: i64 = r.try_get("", "doses")?;
        let mut c = DoseCount {
            doses: u64::try_from(n).unwrap_or(0),
            ..Default::default()
        };
        for b in &by {
            match b {
                CountBy::Day => c.day = Some(r.try_get("", "administered_on")?),
                CountBy::Municipality => {
                    c.municipality = Some(
                        r.try_get::<String>("", "municipality_code")?
                            .trim()
                            .parse()
                            .map_err(bad)?,
                    )
                }
                CountBy::Prefecture => {
                    c.prefecture = Some(
                        r.try_get::<String>("", "prefecture_code")?
                            .trim()
                            .parse()
                            .map_err(bad)?,
                    )
                }
                CountBy::Product => c.product = Some(r.try_get::<String>("", "product_code")?.parse().map_err(bad)?),
                CountBy::DoseNumber => {
                    let n: i16 = r.try_get("", "dose_number")?;
                    c.dose_number = Some(u8::try_from(n).unwrap_or(0));
                }
            }
        }
        if n > 0 {
            out.push(c);
        }
    }
    Ok(out)
}

/// Doses given at each site of a municipality over a window (ACTIVE records): the consumption
/// weights the allocation proposal can use for a municipality's sites. Read like the
/// municipality's stock (the municipality, its prefecture, the nation).
pub async fn consumption_by_site(
    store: &Store,
    actor: &Actor,
    municipality: &MunicipalityCode,
    from: NaiveDate,
    to: NaiveDate,
) -> DomainResult<Vec<(SiteCode, u64)>> {
    authz::can_read_stock_area(actor, &StockArea::Municipality(*municipality))?;
    if to < from || (to - from).num_days() >= dose::MAX_COUNT_DAYS {
        return Err(DomainError::invalid(
            "to",
            format!(
                "a window of 1 to {} days, not ending before it starts",
                dose::MAX_COUNT_DAYS
            ),
        ));
    }
    consumption_in(store.db(), municipality, from, to).await
}

/// As [`consumption_by_site`], without the caller check (for services that checked already).
pub async fn consumption_in<C: ConnectionTrait>(
    db: &C,
    municipality: &MunicipalityCode,
    from: NaiveDate,
    to: NaiveDate,
) -> DomainResult<Vec<(SiteCode, u64)>> {
    let sql = "SELECT d.site_code, COUNT(*) AS doses FROM dose_records d JOIN sites s ON s.code = d.site_code \
               WHERE s.municipality_code = CAST(? AS bpchar) AND d.status = 'ACTIVE' \
               AND d.administered_on >= ? AND d.administered_on <= ? GROUP BY d.site_code ORDER BY d.site_code";
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            sql,
            vec![municipality.as_str().into(), from.into(), to.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let site: String = r.try_get("", "site_code")?;
            let n: i64 = r.try_get("", "doses")?;
            Ok((
                site.trim()
                    .parse()
                    .map_err(|e| DomainError::Corrupt(format!("dose site: {e}")))?,
                u64::try_from(n).unwrap_or(0),
            ))
        })
        .collect()
}

/// Every lot whose open doses disagree with the dose records and ledger entries behind them.
/// Per site × product × lot: the vials opened for doses (ADMINISTERED entries that name the
/// dose record that opened them) less those given back (reversed), times the product's doses
/// per vial, must equal the ACTIVE doses drawn from the lot plus the doses written off as
/// leftovers plus the doses still open. Run by [`crate::ledger::reconcile`] (so by
/// `vsys stock reconcile` and the tests after concurrent writers).
pub async fn open_dose_mismatches(store: &Store) -> DomainResult<Vec<crate::ledger::Mismatch>> {
    type Key3 = (String, String, String);
    let db = store.db();
    let counts = |sql: &'static str| async move {
        let mut out: HashMap<Key3, i64> = HashMap::new();
        for r in db.query_all_raw(stmt(store.backend(), sql, vec![])).await? {
            let key: Key3 = (
                r.try_get::<String>("", "site_code")?.trim().to_owned(),
                r.try_get::<String>("", "product_code")?,
                r.try_get::<String>("", "lot_number")?,
            );
            out.insert(key, r.try_get::<i64>("", "n")?);
        }
        DomainResult::Ok(out)
    };
    let opened = counts(
        "SELECT site_code, product_code, lot_number, CAST(COUNT(*) AS BIGINT) AS n FROM stock_entries \
         WHERE kind = 'ADMINISTERED' AND dose_record_id IS NOT NULL GROUP BY site_code, product_code, lot_number",
    )
    .await?;
    let returned = counts(
        "SELECT e.site_code, e.product_code, e.lot_number, CAST(COUNT(*) AS BIGINT) AS n FROM stock_entries e \
         JOIN stock_entries o ON o.id = e.reverses_entry_id \
         WHERE e.kind = 'REVERSED' AND o.dose_record_id IS NOT NULL GROUP BY e.site_code, e.product_code, e.lot_number",
    )
    .await?;
    let active = counts(
        "SELECT site_code, product_code, lot_number, CAST(COUNT(*) AS BIGINT) AS n FROM dose_records \
         WHERE status = 'ACTIVE' GROUP BY site_code, product_code, lot_number",
    )
    .await?;
    let left_over = counts(
        "SELECT site_code, product_code, lot_number, CAST(SUM(doses) AS BIGINT) AS n FROM dose_leftovers \
         GROUP BY site_code, product_code, lot_number",
    )
    .await?;
    let balances = db
        .query_all_raw(stmt(
            store.backend(),
            "SELECT b.site_code, b.product_code, b.lot_number, b.open_doses, p.doses_per_vial \
             FROM stock_balances b JOIN products p ON p.code = b.product_code",
            vec![],
        ))
        .await?;
    let mut mismatches = Vec::new();
    for r in balances {
        let key: Key3 = (
            r.try_get::<String>("", "site_code")?.trim().to_owned(),
            r.try_get::<String>("", "product_code")?,
            r.try_get::<String>("", "lot_number")?,
        );
        let stored: i64 = r.try_get("", "open_doses")?;
        let per_vial = i64::from(r.try_get::<Option<i32>>("", "doses_per_vial")?.unwrap_or(0));
        let n = |m: &HashMap<Key3, i64>| i128::from(m.get(&key).copied().unwrap_or(0));
        let expected = (n(&opened) - n(&returned)) * i128::from(per_vial) - n(&active) - n(&left_over);
        if i128::from(stored) != expected {
            mismatches.push(crate::ledger::Mismatch {
                site: key.0,
                product: key.1,
                lot: key.2,
                column: "open_doses",
                stored: i128::from(stored),
                from_entries: expected,
            });
        }
    }
    Ok(mismatches)
}

/// The interval rules in force: (product, dose number (0: any later dose), rule, source).
pub async fn interval_rules(store: &Store) -> DomainResult<Vec<(ProductCode, u8, dose::IntervalRule, String)>> {
    let rows = store
        .db()
        .query_all_raw(stmt(
            store.backend(),
            "SELECT product_code, dose_number, min_days, min_months, source FROM dose_interval_rules ORDER BY product_code, dose_number",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let n: i16 = r.try_get("", "dose_number")?;
            let days: i32 = r.try_get("", "min_days")?;
            let months: i32 = r.try_get("", "min_months")?;
            Ok((
                r.try_get::<String>("", "product_code")?
                    .parse()
                    .map_err(|e| DomainError::Corrupt(format!("interval rule: {e}")))?,
                u8::try_from(n).unwrap_or(0),
                dose::IntervalRule {
                    min_days: u32::try_from(days).unwrap_or(0),
                    min_months: u32::try_from(months).unwrap_or(0),
                },
                r.try_get("", "source")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::authz::{self, Actor, DoseCountScope, DoseScope};
    use crate::codes::{MunicipalityCode, SiteCode};

    fn m(s: &str) -> MunicipalityCode {
        s.parse().expect("municipality")
    }
    fn sc(s: &str) -> SiteCode {
        s.parse().expect("site code")
    }

    /// Role × operation: who records, reads, corrects, overrides and counts dose records.
    #[test]
    fn who_may_do_what_with_dose_records() {
        let site = sc("1311010019");
        let other = sc("1311010027");
        let chiyoda = m("131016");
        let cases: &[(Actor, bool, bool, bool, bool, bool)] = &[
            // actor, records, reads the record, corrects it, overrides the interval, counts
            (Actor::Site(site), true, true, true, false, true),
            (Actor::Site(other), true, false, false, false, true),
            (Actor::Municipality(chiyoda), false, true, true, true, true),
            (Actor::Municipality(m("131041")), false, false, false, false, true),
            (
                Actor::Prefecture("13".parse().expect("p")),
                false,
                false,
                false,
                false,
                true,
            ),
            (Actor::National, false, false, false, false, true),
            (
                Actor::Wholesaler("suzuken".parse().expect("w")),
                false,
                false,
                false,
                false,
                false,
            ),
            (
                Actor::MedicalAssociation(vec![chiyoda]),
                false,
                false,
                false,
                false,
                false,
            ),
            (
                Actor::Federation("13".parse().expect("p")),
                false,
                false,
                false,
                false,
                false,
            ),
        ];
        for (actor, record, read, correct, allow, count) in cases {
            assert_eq!(authz::dose_recorder(actor).is_ok(), *record, "{actor:?} records");
            assert_eq!(
                authz::dose_read_scope(actor).is_ok_and(|s| s.contains(&site, &chiyoda)),
                *read,
                "{actor:?} reads"
            );
            assert_eq!(
                authz::can_correct_dose(actor, &site, &chiyoda).is_ok(),
                *correct,
                "{actor:?} corrects"
            );
            assert_eq!(
                authz::can_override_interval(actor, &chiyoda).is_ok(),
                *allow,
                "{actor:?} overrides"
            );
            assert_eq!(authz::dose_count_scope(actor).is_ok(), *count, "{actor:?} counts");
        }
        assert_eq!(authz::dose_recorder(&Actor::Site(site)), Ok(site));
        assert_eq!(
            authz::dose_read_scope(&Actor::Municipality(chiyoda)),
            Ok(DoseScope::Residents(chiyoda))
        );
        assert_eq!(
            authz::dose_count_scope(&Actor::Prefecture("13".parse().expect("p"))),
            Ok(DoseCountScope::Prefecture("13".parse().expect("p")))
        );
    }
}
