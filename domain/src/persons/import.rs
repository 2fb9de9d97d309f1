//! Import of a municipality's residents from its resident register (住民基本台帳) as CSV
//! (`vsys persons import --municipality M FILE`, `importPersons(municipality, csv)`).
//!
//! The file: UTF-8 (a BOM is ignored), a header row naming the columns in any order —
//! required `coupon_number`, `name`, `name_kana`, `birth_date` (`YYYY-MM-DD` or `YYYYMMDD`),
//! `sex` (`M`/`F`, ISO 5218 `0`/`1`/`2`/`9`, or 男/女), `address`; optional `resident_id`
//! (個別宛名番号, the municipality's own person number), `my_number` (12 digits with the check
//! digit; empty: none given, a stored one is kept) and `municipality_code` (if present it must
//! be the importing municipality, check digit included). Unknown columns refuse the file
//! (a misspelt `my_numbr` must not be silently ignored).
//!
//! Per row: valid rows are kept, refused rows are reported as (row = line number in the file,
//! the header being 1; field = column; a stable [`FieldCode`]; the rule in words) — never the
//! value. Rows are matched to stored persons by coupon number within the municipality: an
//! identical row changes nothing (`unchanged`), a changed one is updated with `version + 1`, a
//! new one inserted with version 1; persons not in the file are not touched. Everything is
//! written in one transaction.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, QueryFilter};
use serde::Serialize;

use super::{corrupt, from_model, key_error, seal_context};
use crate::authz::{self, Actor};
use crate::codes::{CouponNumber, MunicipalityCode, MyNumber};
use crate::entities::person;
use crate::error::{DomainError, DomainResult};
use crate::personal::crypto::PersonalKeys;
use crate::personal::person::{self as rules, FieldCode, FieldError, MAX_ADDRESS, MAX_NAME, PersonDetails, Sex};
use crate::stock::today_in_japan;
use crate::store::{Store, fixed};

/// Columns every file must have.
pub const REQUIRED_COLUMNS: [&str; 6] = ["coupon_number", "name", "name_kana", "birth_date", "sex", "address"];
/// Columns a file may have.
pub const OPTIONAL_COLUMNS: [&str; 3] = ["resident_id", "my_number", "municipality_code"];
/// More rows than this is not one municipality's register (Yokohama has ~3.8 million
/// residents): refused whole.
pub const MAX_IMPORT_ROWS: usize = 5_000_000;

/// One refused field of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowRejection {
    /// The line in the file (the header is line 1).
    pub row: u64,
    /// The column.
    pub field: String,
    pub code: FieldCode,
    /// The rule, in words; never the value.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows refused (a row may be listed once per refused field).
    pub rejected: Vec<RowRejection>,
}

impl ImportReport {
    /// How many distinct rows were refused.
    pub fn rejected_rows(&self) -> usize {
        self.rejected.iter().map(|r| r.row).collect::<HashSet<_>>().len()
    }
}

struct Row {
    coupon: CouponNumber,
    details: PersonDetails,
    my_number: Option<MyNumber>,
}

const INSERT_COLUMNS: [&str; 16] = [
    "municipality_code",
    "coupon_number",
    "resident_id",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address",
    "my_number_key_id",
    "my_number_sealed",
    "my_number_hash",
    "moved_out_on",
    "version",
    "created_at",
    "updated_at",
    "updated_by",
];

fn header_index(headers: &csv::StringRecord) -> DomainResult<HashMap<&'static str, usize>> {
    let mut index = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim_start_matches('\u{feff}').trim();
        let known = REQUIRED_COLUMNS.iter().chain(&OPTIONAL_COLUMNS).find(|c| **c == h);
        match known {
            Some(c) => {
                if index.insert(*c, i).is_some() {
                    return Err(DomainError::invalid(
                        "csv",
                        format!("the header names column {c} twice"),
                    ));
                }
            }
            None => {
                return Err(DomainError::invalid(
                    "csv",
                    format!(
                        "the header has an unknown column {}; known columns: {}, {}",
                        i + 1,
                        REQUIRED_COLUMNS.join(", "),
                        OPTIONAL_COLUMNS.join(", ")
                    ),
                ));
            }
        }
    }
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .filter(|c| !index.contains_key(*c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(DomainError::invalid(
            "csv",
            format!("the header lacks the column(s) {}", missing.join(", ")),
        ));
    }
    Ok(index)
}

/// Checks one record; the refused fields are returned (all of them, not just the first).
fn check_row(
    rec: &csv::StringRecord,
    index: &HashMap<&'static str, usize>,
    municipality: &MunicipalityCode,
    today: chrono::NaiveDate,
) -> Result<Row, Vec<FieldError>> {
    let get = |c: &str| index.get(c).and_then(|i| rec.get(*i)).unwrap_or("");
    let mut errors = Vec::new();
    let mut ok = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    ok(rules::row_municipality(
        "municipality_code",
        get("municipality_code"),
        municipality,
    ));
    let coupon = rules::coupon_number("coupon_number", get("coupon_number"));
    let resident_id = rules::resident_id("resident_id", Some(get("resident_id")));
    let name = rules::text("name", get("name"), MAX_NAME);
    let name_kana = rules::text("name_kana", get("name_kana"), MAX_NAME);
    let birth_date = rules::birth_date("birth_date", get("birth_date"), today);
    let sex = Sex::parse_register(get("sex"))
        .ok_or_else(|| FieldError::new("sex", FieldCode::Invalid, "must be M, F, 0, 1, 2, 9, 男 or 女"));
    let address = rules::text("address", get("address"), MAX_ADDRESS);
    let my_number = rules::my_number("my_number", get("my_number"));
    match (
        coupon,
        resident_id,
        name,
        name_kana,
        birth_date,
        sex,
        address,
        my_number,
    ) {
        (Ok(coupon), Ok(resident_id), Ok(name), Ok(name_kana), Ok(birth_date), Ok(sex), Ok(address), Ok(my_number))
            if errors.is_empty() =>
        {
            Ok(Row {
                coupon,
                details: PersonDetails {
                    resident_id,
                    name,
                    name_kana,
                    birth_date,
                    sex,
                    address,
                },
                my_number,
            })
        }
        (coupon, resident_id, name, name_kana, birth_date, sex, address, my_number) => {
            errors.extend(coupon.err());
            errors.extend(resident_id.err());
            errors.extend(name.err());
            errors.extend(name_kana.err());
            errors.extend(birth_date.err());
            errors.extend(sex.err());
            errors.extend(address.err());
            errors.extend(my_number.err());
            Err(errors)
        }
    }
}

/// Reads, checks and applies a resident-register CSV for `municipality`. `progress(done,
/// total)` is called as rows are written (for a terminal progress bar); it must be cheap.
pub async fn import_csv(
    store: &Store,
    keys: &PersonalKeys,
    actor: &Actor,
    municipality: &MunicipalityCode,
    input: impl Read,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> DomainResult<ImportReport> {
    authz::can_manage_persons(actor, municipality)?;
    let mut report = ImportReport::default();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|_| DomainError::invalid("csv", "the header row is not readable UTF-8 CSV"))?
        .clone();
    let index = header_index(&headers)?;
    let today = today_in_japan();
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: HashSet<CouponNumber> = HashSet::new();
    let mut record = csv::StringRecord::new();
    let mut line: u64 = 1;
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // A broken record (bad UTF-8, an unclosed quote): report its line and go on
                // when the reader can, stop otherwise.
                let at = e.position().map_or(line + 1, |p| p.line());
                report.rejected.push(RowRejection {
                    row: at,
                    field: "csv".into(),
                    code: FieldCode::Invalid,
                    reason: "the line is not valid UTF-8 CSV".into(),
                });
                if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    line = at;
                    continue;
                }
                break;
            }
        };
        if !more {
            break;
        }
        line = record.position().map_or(line + 1, |p| p.line());
        if rows.len() + report.rejected.len() >= MAX_IMPORT_ROWS {
            return Err(DomainError::invalid(
                "csv",
                format!("more than {MAX_IMPORT_ROWS} rows: not one municipality's register"),
            ));
        }
        if record.len() != headers.len() {
            report.rejected.push(RowRejection {
                row: line,
                field: "csv".into(),
                code: FieldCode::RowShape,
                reason: format!("has {} fields, the header {}", record.len(), headers.len()),
            });
            continue;
        }
        match check_row(&record, &index, municipality, today) {
            Ok(row) => {
                if !seen.insert(row.coupon) {
                    report.rejected.push(RowRejection {
                        row: line,
                        field: "coupon_number".into(),
                        code: FieldCode::DuplicateInFile,
                        reason: "the coupon number appeared on an earlier row".into(),
                    });
                    continue;
                }
                rows.push(row);
            }
            Err(errors) => report.rejected.extend(errors.into_iter().map(|e| RowRejection {
                row: line,
                field: e.field,
                code: e.code,
                reason: e.reason,
            })),
        }
    }

    let tx = store.write().await?;
    let existing: HashMap<String, person::Model> = person::Entity::find()
        .filter(Expr::col(person::Column::MunicipalityCode).eq(fixed(municipality.as_str())))
        .all(&*tx)
        .await?
        .into_iter()
        .map(|m| (m.coupon_number.trim().to_owned(), m))
        .collect();
    let now = Utc::now();
    let label = format!("{} (import)", actor.label());
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for r in rows {
        match existing.get(r.coupon.as_str()) {
            None => {
                let (key_id, sealed, hash) = match &r.my_number {
                    Some(n) => {
                        let s = keys
                            .seal_my_number(n, &seal_context(municipality, &r.coupon))
                            .map_err(key_error)?;
                        (Some(s.key_id), Some(s.blob), Some(keys.lookup_hash(n)))
                    }
                    None => (None, None, None),
                };
                let d = r.details;
                inserts.push(vec![
                    municipality.to_string().into(),
                    r.coupon.to_string().into(),
                    d.resident_id.into(),
                    d.name.into(),
                    d.name_kana.into(),
                    d.birth_date.into(),
                    d.sex.code().into(),
                    d.address.into(),
                    key_id.into(),
                    sealed.into(),
                    hash.into(),
                    Option::<chrono::NaiveDate>::None.into(),
                    1i32.into(),
                    now.into(),
                    now.into(),
                    label.clone().into(),
                ]);
            }
            Some(old) => {
                let current = from_model(old.clone())?;
                let new_hash = r.my_number.as_ref().map(|n| keys.lookup_hash(n));
                let number_changed = new_hash.is_some() && new_hash != old.my_number_hash;
                if current.details == r.details && !number_changed {
                    report.unchanged += 1;
                    continue;
                }
                let mut m: person::ActiveModel = old.clone().into();
                if number_changed && let Some(n) = &r.my_number {
                    let s = keys
                        .seal_my_number(n, &seal_context(municipality, &r.coupon))
                        .map_err(key_error)?;
                    m.my_number_key_id = Set(Some(s.key_id));
                    m.my_number_sealed = Set(Some(s.blob));
                    m.my_number_hash = Set(new_hash);
                }
                let d = r.details;
                m.resident_id = Set(d.resident_id);
                m.name = Set(d.name);
                m.name_kana = Set(d.name_kana);
                m.birth_date = Set(d.birth_date);
                m.sex = Set(d.sex.code());
                m.address = Set(d.address);
                m.version = Set(old.version + 1);
                m.updated_at = Set(now);
                m.updated_by = Set(label.clone());
                updates.push(m);
            }
        }
    }
    let total = (inserts.len() + updates.len()) as u64;
    progress(0, total);
    report.inserted = inserts.len() as u64;
    report.updated = updates.len() as u64;
    let mut done = 0u64;
    for chunk in inserts.chunks(1_000) {
        crate::bulk::insert(&*tx, "persons", &INSERT_COLUMNS, chunk.to_vec(), None).await?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    for m in updates {
        let id = match &m.id {
            Set(id) | sea_orm::ActiveValue::Unchanged(id) => *id,
            _ => return Err(corrupt(0, "update without id")),
        };
        m.update(&*tx).await.map_err(|e| {
            tracing::error!(person = id, error = %e, "person import update failed");
            DomainError::Database(e)
        })?;
        done += 1;
        if done.is_multiple_of(1_000) || done == total {
            progress(done, total);
        }
    }
    tx.commit().await?;
    tracing::info!(
        municipality = %municipality,
        inserted = report.inserted,
        updated = report.updated,
        unchanged = report.unchanged,
        rejected = report.rejected.len(),
        actor = %actor.label(),
        "persons imported"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(s: &str) -> csv::StringRecord {
        csv::StringRecord::from(s.split(',').collect::<Vec<_>>())
    }

    #[test]
    fn header_needs_the_required_columns_and_refuses_unknown_ones() {
        let full =
            "\u{feff}coupon_number,name,name_kana,birth_date,sex,address,my_number,resident_id,municipality_code";
        assert_eq!(header_index(&headers(full)).expect("valid").len(), 9);
        let cases = [
            (
                "coupon_number,name,name_kana,birth_date,sex",
                "lacks the column(s) address",
            ),
            (
                "coupon_number,name,name_kana,birth_date,sex,address,my_numbr",
                "unknown column 7",
            ),
            (
                "coupon_number,name,name_kana,birth_date,sex,address,name",
                "names column name twice",
            ),
        ];
        for (h, why) in cases {
            let e = header_index(&headers(h)).expect_err(h);
            assert!(e.to_string().contains(why), "{h}: {e}");
        }
    }

    #[test]
    fn a_row_reports_every_refused_field_by_name_and_code_without_values() {
        let index = header_index(&headers(
            "municipality_code,coupon_number,name,name_kana,birth_date,sex,address,my_number",
        ))
        .expect("valid");
        let rec = csv::StringRecord::from(vec![
            "131017",
            "12345",
            "山田　太郎",
            "ﾔﾏﾀﾞ ﾀﾛｳ",
            "2099-01-01",
            "X",
            "",
            "123456789017",
        ]);
        let chiyoda: MunicipalityCode = "131016".parse().expect("m");
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).expect("d");
        let errors = match check_row(&rec, &index, &chiyoda, today) {
            Ok(_) => panic!("a bad row passed"),
            Err(e) => e,
        };
        let got: Vec<(&str, FieldCode)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            vec![
                ("municipality_code", FieldCode::CheckDigit),
                ("coupon_number", FieldCode::Length),
                ("birth_date", FieldCode::FutureDate),
                ("sex", FieldCode::Invalid),
                ("address", FieldCode::Required),
                ("my_number", FieldCode::CheckDigit),
            ]
        );
        for e in &errors {
            let text = e.to_string();
            assert!(
                !text.contains("12345678901") && !text.contains("山田") && !text.contains("2099"),
                "{text}"
            );
        }
    }
}
