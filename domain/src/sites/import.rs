//! Bulk import of the site master from CSV (`vsys sites import`, `importSites`).
//!
//! Valid rows are kept and rejected rows reported (line, column, reason); one bad line never
//! sinks the file. The import compares each row with what is stored: an identical row changes
//! nothing and writes no history, a changed row writes one history entry, a new row registers
//! the site. All writes happen in one transaction, so a failure part-way leaves nothing behind.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;

use super::{check_code_fits, rows};
use crate::authz::{self, Actor};
use crate::codes::SiteCode;
use crate::entities::{assigned_code_serial, municipality, site, site_history};
use crate::error::{DomainError, DomainResult};
use crate::site::{ColdChainRole, FieldChange, HistoryAction, Site, SiteDetails, SiteDraft, SiteStatus};
use crate::store::{Store, fixed};

/// The columns of the import file, in the documented order (the header may order them freely).
pub const CSV_COLUMNS: [&str; 19] = [
    "code",
    "name",
    "name_kana",
    "kind",
    "municipality_code",
    "postal_code",
    "address",
    "phone",
    "latitude",
    "longitude",
    "cold_chain_role",
    "freezer_class",
    "base_site_code",
    "receiving_days",
    "receiving_hours",
    "delivery_notes",
    "wholesaler_id",
    "products",
    "status",
];

/// More rows than this is not a site master (Japan has ~70,000 sites): refused whole.
pub const MAX_IMPORT_ROWS: usize = 200_000;

/// Rows per INSERT statement: 24 columns × 500 stays far below SQLite's and PostgreSQL's
/// bind-parameter limits.
const CHUNK: usize = 500;

/// How `rows::active_model` stores [`crate::codes::SiteCodeKind::Assigned`].
const ASSIGNED_KIND: &str = "Assigned";

/// One rejected line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: Vec<Rejection>,
}

/// Maps a rule's field path to the CSV column it came from.
fn column_of(field: &str) -> &str {
    match field {
        "nameKana" => "name_kana",
        "municipality" => "municipality_code",
        "postalCode" => "postal_code",
        "coordinates" | "coordinates.latitude" => "latitude",
        "coordinates.longitude" => "longitude",
        "coldChain.role" => "cold_chain_role",
        "coldChain.freezerClass" => "freezer_class",
        "coldChain.baseSite" => "base_site_code",
        "delivery.receivingDays" => "receiving_days",
        "delivery.receivingHours" => "receiving_hours",
        "delivery.notes" => "delivery_notes",
        "wholesaler" => "wholesaler_id",
        other => other,
    }
}

struct Row {
    line: u64,
    site: Site,
}

/// Reads, checks and applies a site-master CSV. `progress(done, total)` is called as rows are
/// written (for a terminal progress bar); it must be cheap.
pub async fn import_csv(
    store: &Store,
    actor: &Actor,
    input: impl Read,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> DomainResult<ImportReport> {
    authz::can_import_sites(actor)?;
    let mut report = ImportReport::default();
    let municipalities: HashSet<String> = municipality::Entity::find()
        .all(store.db())
        .await?
        .into_iter()
        .map(|m| m.code)
        .collect();
    let mut rows = parse(input, &municipalities, &mut report)?;

    let tx = store.write().await?;
    let existing: HashMap<String, site::Model> = site::Entity::find()
        .all(&*tx)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect();

    // Satellites must name a base site that is, after this import, an active base site.
    let file_bases: HashSet<SiteCode> = rows
        .iter()
        .filter(|r| {
            r.site.status == SiteStatus::Active && matches!(r.site.details.cold_chain, ColdChainRole::Base { .. })
        })
        .map(|r| r.site.code)
        .collect();
    let file_codes: HashSet<&SiteCode> = rows.iter().map(|r| &r.site.code).collect();
    let stored_base = |code: &SiteCode| {
        existing
            .get(code.as_str())
            .is_some_and(|m| m.cold_chain_role == "BASE" && m.status == "ACTIVE")
    };
    let mut bad_base = HashSet::new();
    for r in &rows {
        if let ColdChainRole::Satellite { base } = &r.site.details.cold_chain {
            let ok = if file_codes.contains(base) {
                file_bases.contains(base)
            } else {
                stored_base(base)
            };
            if !ok || *base == r.site.code {
                bad_base.insert(r.line);
                report.rejected.push(Rejection {
                    line: r.line,
                    column: "base_site_code".into(),
                    reason: format!("{base} is not an active base site"),
                });
            }
        }
    }
    rows.retain(|r| !bad_base.contains(&r.line));

    let now = Utc::now();
    let label = format!("{} (import)", actor.label());
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut history = Vec::new();
    for r in rows {
        match existing.get(r.site.code.as_str()) {
            None => {
                let site = Site {
                    created_at: now,
                    updated_at: now,
                    ..r.site
                };
                history.push(history_row(
                    &site,
                    HistoryAction::Registered,
                    &label,
                    site.details.as_registration(),
                ));
                inserts.push(rows::active_model(&site));
                report.inserted += 1;
            }
            Some(model) => {
                let old = rows::site_from_model(model.clone())?;
                let changes = old.details.diff(&r.site.details);
                if changes.is_empty() && old.status == r.site.status {
                    report.unchanged += 1;
                    continue;
                }
                let action = match (old.status, r.site.status) {
                    (SiteStatus::Active, SiteStatus::Withdrawn) => HistoryAction::Withdrawn,
                    _ => HistoryAction::Changed,
                };
                let site = Site {
                    version: old.version + 1,
                    created_at: old.created_at,
                    updated_at: now,
                    ..r.site
                };
                history.push(history_row(&site, action, &label, changes));
                updates.push(site);
                report.updated += 1;
            }
        }
    }

    let total = (inserts.len() + updates.len()) as u64;
    let mut done = 0u64;
    progress(0, total);
    while !inserts.is_empty() {
        let chunk: Vec<_> = inserts.drain(..inserts.len().min(CHUNK)).collect();
        done += chunk.len() as u64;
        site::Entity::insert_many(chunk).exec(&*tx).await?;
        progress(done, total);
    }
    for site in &updates {
        site::Entity::update_many()
            .set(rows::active_model(site))
            .filter(Expr::col(site::Column::Code).eq(fixed(site.code.as_str())))
            .exec(&*tx)
            .await?;
        done += 1;
        if done.is_multiple_of(CHUNK as u64) {
            progress(done, total);
        }
    }
    while !history.is_empty() {
        let chunk: Vec<_> = history.drain(..history.len().min(CHUNK)).collect();
        site_history::Entity::insert_many(chunk).exec(&*tx).await?;
    }
    raise_assigned_counters(&tx).await?;
    tx.commit().await?;
    progress(total, total);
    report.rejected.sort_by_key(|r| r.line);
    tracing::info!(
        inserted = report.inserted,
        updated = report.updated,
        unchanged = report.unchanged,
        rejected = report.rejected.len(),
        "site import finished"
    );
    Ok(report)
}

fn history_row(
    site: &Site,
    action: HistoryAction,
    actor: &str,
    changes: Vec<FieldChange>,
) -> site_history::ActiveModel {
    site_history::ActiveModel {
        site_code: Set(site.code.as_str().to_owned()),
        version: Set(site.version),
        action: Set(action.as_str().to_owned()),
        actor: Set(actor.to_owned()),
        changed_at: Set(site.updated_at),
        changes: Set(serde_json::to_string(&changes).unwrap_or_else(|_| "[]".into())),
        ..Default::default()
    }
}

/// After an import that carried assigned codes, the per-prefecture counter must not be behind
/// the highest serial now stored, or a later registration would draw a taken code.
async fn raise_assigned_counters(tx: &crate::store::WriteTx) -> DomainResult<()> {
    let mut max: HashMap<String, u32> = HashMap::new();
    let assigned = site::Entity::find()
        .filter(site::Column::CodeKind.eq(ASSIGNED_KIND))
        .all(&**tx)
        .await?;
    for c in assigned.iter().filter_map(|m| m.code.parse::<SiteCode>().ok()) {
        if let Some(serial) = c.assigned_serial() {
            let e = max.entry(c.prefecture().as_str().to_owned()).or_default();
            *e = Ord::max(*e, serial);
        }
    }
    for (pref, serial) in max {
        let serial = i32::try_from(serial).unwrap_or(i32::MAX);
        match assigned_code_serial::Entity::find_by_id(pref.clone())
            .one(&**tx)
            .await?
        {
            Some(m) if m.last_serial >= serial => {}
            Some(_) => {
                assigned_code_serial::Entity::update_many()
                    .col_expr(assigned_code_serial::Column::LastSerial, serial.into())
                    .filter(assigned_code_serial::Column::PrefectureCode.eq(pref))
                    .exec(&**tx)
                    .await?;
            }
            None => {
                assigned_code_serial::Entity::insert(assigned_code_serial::ActiveModel {
                    prefecture_code: Set(pref),
                    last_serial: Set(serial),
                })
                .exec(&**tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// Parses every line; valid ones become rows, the rest rejections.
fn parse(input: impl Read, municipalities: &HashSet<String>, report: &mut ImportReport) -> DomainResult<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| DomainError::invalid("csv", format!("unreadable header: {e}")))?
        .clone();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let missing: Vec<_> = CSV_COLUMNS
        .iter()
        .filter(|c| **c != "status" && !index.contains_key(**c))
        .collect();
    if !missing.is_empty() {
        return Err(DomainError::invalid(
            "csv",
            format!(
                "header lacks column(s) {}",
                missing.iter().map(|c| **c).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut seen: HashMap<SiteCode, u64> = HashMap::new();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut count = 0usize;
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                report.rejected.push(Rejection {
                    line,
                    column: "-".into(),
                    reason: format!("unreadable line: {e}"),
                });
                continue;
            }
        }
        count += 1;
        if count > MAX_IMPORT_ROWS {
            return Err(DomainError::invalid("csv", format!("more than {MAX_IMPORT_ROWS} rows")));
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.len() != headers.len() {
            report.rejected.push(Rejection {
                line,
                column: "-".into(),
                reason: format!("has {} fields, the header has {}", record.len(), headers.len()),
            });
            continue;
        }
        match parse_row(&record, &index, municipalities) {
            Ok(site) => {
                if let Some(first) = seen.get(&site.code) {
                    report.rejected.push(Rejection {
                        line,
                        column: "code".into(),
                        reason: format!("duplicate of line {first}"),
                    });
                    continue;
                }
                seen.insert(site.code, line);
                rows.push(Row { line, site });
            }
            Err((column, reason)) => report.rejected.push(Rejection { line, column, reason }),
        }
    }
    Ok(rows)
}

fn parse_row(
    record: &csv::StringRecord,
    index: &HashMap<&str, usize>,
    municipalities: &HashSet<String>,
) -> Result<Site, (String, String)> {
    let get = |c: &str| index.get(c).and_then(|i| record.get(*i)).unwrap_or("");
    let opt = |c: &str| Some(get(c).to_owned()).filter(|s| !s.is_empty());
    let number = |c: &str| -> Result<Option<f64>, (String, String)> {
        match get(c) {
            "" => Ok(None),
            s => s
                .parse::<f64>()
                .map(Some)
                .map_err(|_| (c.to_owned(), "must be a number".to_owned())),
        }
    };
    let code: SiteCode = get("code").parse().map_err(|e| ("code".to_owned(), format!("{e}")))?;
    let draft = SiteDraft {
        name: get("name").into(),
        name_kana: get("name_kana").into(),
        kind: get("kind").into(),
        municipality: get("municipality_code").into(),
        postal_code: get("postal_code").into(),
        address: get("address").into(),
        phone: get("phone").into(),
        latitude: number("latitude")?,
        longitude: number("longitude")?,
        cold_chain_role: get("cold_chain_role").into(),
        freezer_class: opt("freezer_class"),
        base_site: opt("base_site_code"),
        receiving_days: get("receiving_days").into(),
        receiving_hours: get("receiving_hours").into(),
        delivery_notes: get("delivery_notes").into(),
        wholesaler: opt("wholesaler_id"),
        products: get("products").into(),
    };
    let as_column = |e: DomainError| match e {
        DomainError::Invalid { field, reason } => (column_of(&field).to_owned(), reason),
        other => ("-".to_owned(), other.to_string()),
    };
    let details = SiteDetails::validate(&draft, "").map_err(as_column)?;
    if !municipalities.contains(details.municipality.as_str()) {
        return Err(("municipality_code".into(), "no such municipality".into()));
    }
    check_code_fits(&code, &details, "code").map_err(as_column)?;
    let status = match get("status") {
        "" => SiteStatus::Active,
        s => s.parse().map_err(|r| ("status".to_owned(), r))?,
    };
    let now = Utc::now();
    Ok(Site {
        code,
        details,
        status,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}
