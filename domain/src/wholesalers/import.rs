//! Customer codes imported from CSV (`importCustomerCodes`, NATIONAL).
//!
//! Like the site import: valid rows are kept and rejected rows reported (line, column, reason);
//! one bad line never sinks the file. A row identical to the stored version changes nothing;
//! everything is written in one transaction, which also releases the held orders of every
//! wholesaler the file names.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{EntityTrait, QueryFilter};

use super::{NewCustomerCode, Written, check_version, write_version};
use crate::authz::{self, Actor};
use crate::codes::SiteCode;
use crate::entities::{customer_code, site, wholesaler as wholesaler_e};
use crate::error::{DomainError, DomainResult};
use crate::sites::{ImportReport, Rejection};
use crate::store::{Store, fixed};

/// The columns of the file (any order; `effective_to` may be left out).
pub const CUSTOMER_CODE_COLUMNS: [&str; 5] = [
    "wholesaler_id",
    "site_code",
    "customer_code",
    "effective_from",
    "effective_to",
];

/// More rows than this is refused whole.
const MAX_ROWS: usize = 500_000;

fn column_of(field: &str) -> &'static str {
    match field {
        "customerCode" => "customer_code",
        "effectiveTo" => "effective_to",
        _ => "-",
    }
}

struct Row {
    line: u64,
    v: NewCustomerCode,
}

fn date(s: &str, column: &str) -> Result<NaiveDate, (String, String)> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| (column.to_owned(), "must be a date like 2021-07-01".into()))
}

fn parse_row(record: &csv::StringRecord, index: &HashMap<&str, usize>) -> Result<NewCustomerCode, (String, String)> {
    let get = |c: &str| index.get(c).and_then(|i| record.get(*i)).unwrap_or("");
    let v = NewCustomerCode {
        wholesaler: get("wholesaler_id")
            .parse()
            .map_err(|e| ("wholesaler_id".to_owned(), format!("{e}")))?,
        site: get("site_code")
            .parse()
            .map_err(|e| ("site_code".to_owned(), format!("{e}")))?,
        customer_code: get("customer_code").to_owned(),
        effective_from: date(get("effective_from"), "effective_from")?,
        effective_to: match get("effective_to") {
            "" => None,
            s => Some(date(s, "effective_to")?),
        },
    };
    check_version(&v).map_err(|(f, r)| (column_of(f).to_owned(), r))?;
    Ok(v)
}

fn parse(input: impl Read, report: &mut ImportReport) -> DomainResult<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| DomainError::invalid("csv", format!("unreadable header: {e}")))?
        .clone();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let missing: Vec<&str> = CUSTOMER_CODE_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "effective_to" && !index.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(DomainError::invalid(
            "csv",
            format!("header lacks column(s) {}", missing.join(", ")),
        ));
    }
    let mut rows = Vec::new();
    let mut seen: HashMap<(String, SiteCode, NaiveDate), u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
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
        if rows.len() + report.rejected.len() >= MAX_ROWS {
            return Err(DomainError::invalid("csv", format!("more than {MAX_ROWS} rows")));
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
        match parse_row(&record, &index) {
            Ok(v) => {
                let key = (v.wholesaler.as_str().to_owned(), v.site, v.effective_from);
                if let Some(first) = seen.get(&key) {
                    report.rejected.push(Rejection {
                        line,
                        column: "effective_from".into(),
                        reason: format!("duplicate of line {first}"),
                    });
                    continue;
                }
                seen.insert(key, line);
                rows.push(Row { line, v });
            }
            Err((column, reason)) => report.rejected.push(Rejection { line, column, reason }),
        }
    }
    Ok(rows)
}

/// Reads, checks and applies a customer-code CSV (NATIONAL).
pub async fn import_customer_codes(
    store: &Store,
    actor: &Actor,
    input: impl Read,
    now: DateTime<Utc>,
) -> DomainResult<ImportReport> {
    authz::can_manage_wholesalers(actor)?;
    let mut report = ImportReport::default();
    let rows = parse(input, &mut report)?;
    let tx = store.write().await?;
    let wholesalers: HashSet<String> = wholesaler_e::Entity::find()
        .all(&*tx)
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    let site_codes: Vec<String> = rows
        .iter()
        .map(|r| r.v.site.as_str().to_owned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut sites = HashSet::new();
    let mut existing: HashMap<(String, String, NaiveDate), customer_code::Model> = HashMap::new();
    for chunk in crate::bulk::in_chunks(&site_codes) {
        for s in site::Entity::find()
            .filter(Expr::col(site::Column::Code).is_in(chunk.iter().map(|c| fixed(c))))
            .all(&*tx)
            .await?
        {
            sites.insert(s.code);
        }
        for m in customer_code::Entity::find()
            .filter(Expr::col(customer_code::Column::SiteCode).is_in(chunk.iter().map(|c| fixed(c))))
            .all(&*tx)
            .await?
        {
            existing.insert((m.wholesaler_id.clone(), m.site_code.clone(), m.effective_from), m);
        }
    }
    let label = format!("{} (import)", actor.label());
    let mut touched = HashSet::new();
    for r in rows {
        if !wholesalers.contains(r.v.wholesaler.as_str()) {
            report.rejected.push(Rejection {
                line: r.line,
                column: "wholesaler_id".into(),
                reason: "no such wholesaler".into(),
            });
            continue;
        }
        if !sites.contains(r.v.site.as_str()) {
            report.rejected.push(Rejection {
                line: r.line,
                column: "site_code".into(),
                reason: "no such site".into(),
            });
            continue;
        }
        let code = check_version(&r.v).map_err(|(f, e)| DomainError::invalid(f, e))?;
        let key = (
            r.v.wholesaler.as_str().to_owned(),
            r.v.site.as_str().to_owned(),
            r.v.effective_from,
        );
        match write_version(&*tx, &r.v, &code, existing.get(&key), &label, now).await? {
            Written::Inserted => report.inserted += 1,
            Written::Updated => report.updated += 1,
            Written::Unchanged => report.unchanged += 1,
        }
        touched.insert(key.0);
    }
    let touched: Vec<String> = touched.into_iter().collect();
    let released = crate::dispatch::release_held(&*tx, &touched, now).await?;
    tx.commit().await?;
    report.rejected.sort_by_key(|r| r.line);
    tracing::info!(
        inserted = report.inserted,
        updated = report.updated,
        unchanged = report.unchanged,
        rejected = report.rejected.len(),
        released,
        "customer-code import finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_column_by_column() {
        let csv = "wholesaler_id,site_code,customer_code,effective_from,effective_to\n\
                   suzuken,1312020017,C-001,2021-04-01,\n\
                   Suzuken,1312020017,C-001,2021-04-01,\n\
                   suzuken,1312020018,C-001,2021-04-01,\n\
                   suzuken,1312020017,C 001,2021-04-01,\n\
                   suzuken,1312020017,C-001,2021/04/01,\n\
                   suzuken,1312020017,C-002,2021-04-01,2021-03-01\n\
                   suzuken,1312020017,C-003,2021-04-01,\n\
                   suzuken,1312020017\n";
        let mut report = ImportReport::default();
        let rows = parse(csv.as_bytes(), &mut report).expect("parsed");
        assert_eq!(rows.len(), 1);
        let got: Vec<(u64, &str)> = report.rejected.iter().map(|r| (r.line, r.column.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, "wholesaler_id"),
                (4, "site_code"),
                (5, "customer_code"),
                (6, "effective_from"),
                (7, "effective_to"),
                (8, "effective_from"),
                (9, "-"),
            ]
        );
        assert!(
            report.rejected[1].reason.contains("check digit"),
            "{:?}",
            report.rejected[1]
        );
        assert_eq!(report.rejected[5].reason, "duplicate of line 2");
    }

    #[test]
    fn a_header_without_the_needed_columns_is_refused_whole() {
        let mut report = ImportReport::default();
        match parse("wholesaler_id,site_code\n".as_bytes(), &mut report) {
            Err(DomainError::Invalid { field, reason }) => {
                assert_eq!(field, "csv");
                assert!(reason.contains("customer_code, effective_from"), "{reason}");
            }
            other => panic!("{:?}", other.map(|r| r.len())),
        }
    }
}
