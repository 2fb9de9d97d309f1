//! The person's vocabulary and its pure rules: which fields are personal, sex codes, the checks
//! a person's details must pass (from a form or a resident-register CSV row), stated purposes,
//! and the stable codes a refused field is reported with.
//!
//! Must not: do I/O, or put a personal value into an error, a `Debug` output or a code. A
//! refused field is reported as (field name, [`FieldCode`], a sentence about the rule) — the
//! value itself never appears, so a report can be logged, shown and stored safely.

use std::fmt;

use chrono::NaiveDate;

use crate::codes::{CodeError, CouponNumber, MunicipalityCode, MyNumber};

vocabulary! {
    /// The fields of a person that are personal data. Every read of one is audited
    /// (`person_access_log.fields` holds these names, never values); `authz` decides who may
    /// read which.
    PersonField {
        Name = "name",
        NameKana = "nameKana",
        BirthDate = "birthDate",
        Sex = "sex",
        Address = "address",
        ResidentId = "residentId",
        MyNumber = "myNumber",
        /// Looking up the person's rows in other municipalities by My Number (転入).
        EarlierRecordLookup = "earlierRecordLookup",
    }
}

vocabulary! {
    /// Why a field of a person was refused: stable codes for reports and `extensions`.
    FieldCode {
        /// Empty, but needed.
        Required = "REQUIRED",
        /// Longer than the field allows.
        TooLong = "TOO_LONG",
        /// Wrong number of digits or characters.
        Length = "LENGTH",
        /// A character that must be a digit is not.
        NotDigit = "NOT_DIGIT",
        /// The check digit does not match.
        CheckDigit = "CHECK_DIGIT",
        /// Not a value of the field's vocabulary, or malformed.
        Invalid = "INVALID",
        /// Not a date written YYYY-MM-DD or YYYYMMDD.
        InvalidDate = "INVALID_DATE",
        /// A date after today (Japan).
        FutureDate = "FUTURE_DATE",
        /// A date before 1900-01-01.
        TooOld = "TOO_OLD",
        /// A control character (line break, tab …) inside a text.
        ControlCharacter = "CONTROL_CHARACTER",
        /// The row names another municipality than the one importing.
        WrongMunicipality = "WRONG_MUNICIPALITY",
        /// The coupon number appears twice in the file; the later row is refused.
        DuplicateInFile = "DUPLICATE_IN_FILE",
        /// The row has more or fewer fields than the header.
        RowShape = "ROW_SHAPE",
    }
}

/// Sex as ISO/IEC 5218 (the code stored in `persons.sex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    NotKnown,
    Male,
    Female,
    NotApplicable,
}

impl Sex {
    pub fn code(self) -> i16 {
        match self {
            Sex::NotKnown => 0,
            Sex::Male => 1,
            Sex::Female => 2,
            Sex::NotApplicable => 9,
        }
    }

    pub fn from_code(code: i16) -> Option<Sex> {
        Some(match code {
            0 => Sex::NotKnown,
            1 => Sex::Male,
            2 => Sex::Female,
            9 => Sex::NotApplicable,
            _ => return None,
        })
    }

    /// As written in a register file: `M`/`F` (as in the VRS open data), the ISO digits, or
    /// 男/女.
    pub fn parse_register(s: &str) -> Option<Sex> {
        Some(match s.trim() {
            "M" | "m" | "1" | "男" => Sex::Male,
            "F" | "f" | "2" | "女" => Sex::Female,
            "0" | "" => Sex::NotKnown,
            "9" => Sex::NotApplicable,
            _ => return None,
        })
    }
}

/// A refused field: which one, the stable code, and the rule in words (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the caller wrote it (GraphQL input name or CSV column).
    pub field: String,
    pub code: FieldCode,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: FieldCode, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            reason: reason.into(),
        }
    }

    /// A code parser's refusal (its messages never repeat the input).
    pub fn from_code(field: impl Into<String>, e: &CodeError) -> Self {
        let code = match e {
            CodeError::Length { .. } => FieldCode::Length,
            CodeError::NotDigit { .. } => FieldCode::NotDigit,
            CodeError::CheckDigit { .. } | CodeError::CouponMunicipalityCheckDigit { .. } => FieldCode::CheckDigit,
            _ => FieldCode::Invalid,
        };
        FieldError::new(field, code, e.to_string())
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.reason, self.code)
    }
}

/// Longest name, kana name and address accepted (characters).
pub const MAX_NAME: usize = 100;
pub const MAX_ADDRESS: usize = 200;
/// Longest 個別宛名番号 (the municipality's own person number), as the column allows.
pub const MAX_RESIDENT_ID: usize = 32;
/// Longest stated purpose.
pub const MAX_PURPOSE: usize = 200;

/// A person's details as the municipality keeps them. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonDetails {
    pub resident_id: Option<String>,
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub address: String,
}

impl fmt::Debug for PersonDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonDetails(<redacted>)")
    }
}

/// Checks a text field: trimmed, not empty, at most `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, FieldCode::Required, "must not be empty"));
    }
    let n = v.chars().count();
    if n > max {
        return Err(FieldError::new(
            field,
            FieldCode::TooLong,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            FieldCode::ControlCharacter,
            "must not contain control characters (line breaks, tabs)",
        ));
    }
    Ok(v.to_owned())
}

/// 個別宛名番号: optional; 1-32 ASCII letters, digits or hyphens.
pub fn resident_id(field: &str, value: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_RESIDENT_ID {
        return Err(FieldError::new(
            field,
            FieldCode::TooLong,
            format!("must be at most {MAX_RESIDENT_ID} characters"),
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(FieldError::new(
            field,
            FieldCode::Invalid,
            "must be ASCII letters, digits or hyphens",
        ));
    }
    Ok(Some(v.to_owned()))
}

/// A date of birth: `YYYY-MM-DD` or `YYYYMMDD`, from 1900-01-01 up to `today`.
pub fn birth_date(field: &str, value: &str, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, FieldCode::Required, "must not be empty"));
    }
    let compact = v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit());
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .or_else(|| compact.then(|| NaiveDate::parse_from_str(v, "%Y%m%d").ok()).flatten())
        .ok_or_else(|| {
            FieldError::new(
                field,
                FieldCode::InvalidDate,
                "must be a date written YYYY-MM-DD or YYYYMMDD",
            )
        })?;
    check_birth_date(field, d, today)
}

/// A date of birth must not be after today (Japan) nor before 1900.
pub fn check_birth_date(field: &str, d: NaiveDate, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    if d > today {
        return Err(FieldError::new(
            field,
            FieldCode::FutureDate,
            "must not be in the future",
        ));
    }
    if d < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
        return Err(FieldError::new(
            field,
            FieldCode::TooOld,
            "must not be before 1900-01-01",
        ));
    }
    Ok(d)
}

pub fn coupon_number(field: &str, value: &str) -> Result<CouponNumber, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, FieldCode::Required, "must not be empty"));
    }
    CouponNumber::parse(v).map_err(|e| FieldError::from_code(field, &e))
}

/// An optional My Number: empty means none given. The refusal never carries the digits.
pub fn my_number(field: &str, value: &str) -> Result<Option<MyNumber>, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    MyNumber::parse(v)
        .map(Some)
        .map_err(|e| FieldError::from_code(field, &e))
}

/// The row's municipality, when the file has the column: it must be a valid code and the
/// importing municipality.
pub fn row_municipality(field: &str, value: &str, importing: &MunicipalityCode) -> Result<(), FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(());
    }
    let m = MunicipalityCode::parse(v).map_err(|e| FieldError::from_code(field, &e))?;
    if m != *importing {
        return Err(FieldError::new(
            field,
            FieldCode::WrongMunicipality,
            format!("the row belongs to {m}; this import is for {importing}"),
        ));
    }
    Ok(())
}

/// A stated purpose for reading protected data (My Number, earlier records): 1-200 characters
/// of text, recorded in the audit log as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(String);

impl Purpose {
    pub fn parse(field: &str, value: &str) -> Result<Purpose, FieldError> {
        text(field, value, MAX_PURPOSE).map(Purpose)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).expect("date")
    }

    #[test]
    fn sex_codes_round_trip_and_register_spellings() {
        for s in [Sex::NotKnown, Sex::Male, Sex::Female, Sex::NotApplicable] {
            assert_eq!(Sex::from_code(s.code()), Some(s));
        }
        assert_eq!(Sex::from_code(3), None);
        let cases = [
            ("M", Some(Sex::Male)),
            ("F", Some(Sex::Female)),
            ("1", Some(Sex::Male)),
            ("2", Some(Sex::Female)),
            ("女", Some(Sex::Female)),
            ("9", Some(Sex::NotApplicable)),
            ("", Some(Sex::NotKnown)),
            ("X", None),
        ];
        for (s, want) in cases {
            assert_eq!(Sex::parse_register(s), want, "{s}");
        }
    }

    #[test]
    fn field_checks_give_the_field_and_a_stable_code() {
        type Case = (Result<(), FieldError>, &'static str, FieldCode);
        let cases: Vec<Case> = vec![
            (text("name", "  ", MAX_NAME).map(drop), "name", FieldCode::Required),
            (
                text("name", &"あ".repeat(101), MAX_NAME).map(drop),
                "name",
                FieldCode::TooLong,
            ),
            (
                text("address", "a\nb", MAX_ADDRESS).map(drop),
                "address",
                FieldCode::ControlCharacter,
            ),
            (
                birth_date("birth_date", "2026-02-30", today()).map(drop),
                "birth_date",
                FieldCode::InvalidDate,
            ),
            (
                birth_date("birth_date", "27/11/2000", today()).map(drop),
                "birth_date",
                FieldCode::InvalidDate,
            ),
            (
                birth_date("birth_date", "2026-11-28", today()).map(drop),
                "birth_date",
                FieldCode::FutureDate,
            ),
            (
                birth_date("birth_date", "1899-12-31", today()).map(drop),
                "birth_date",
                FieldCode::TooOld,
            ),
            (
                birth_date("birth_date", "", today()).map(drop),
                "birth_date",
                FieldCode::Required,
            ),
            (
                coupon_number("coupon_number", "12345").map(drop),
                "coupon_number",
                FieldCode::Length,
            ),
            (
                coupon_number("coupon_number", "12345abcde").map(drop),
                "coupon_number",
                FieldCode::NotDigit,
            ),
            (
                coupon_number("coupon_number", "").map(drop),
                "coupon_number",
                FieldCode::Required,
            ),
            (
                my_number("my_number", "123456789017").map(drop),
                "my_number",
                FieldCode::CheckDigit,
            ),
            (
                my_number("my_number", "12345678901").map(drop),
                "my_number",
                FieldCode::Length,
            ),
            (
                row_municipality("municipality_code", "131017", &m("131016")),
                "municipality_code",
                FieldCode::CheckDigit,
            ),
            (
                row_municipality("municipality_code", "131041", &m("131016")),
                "municipality_code",
                FieldCode::WrongMunicipality,
            ),
            (
                resident_id("resident_id", Some("a b")).map(drop),
                "resident_id",
                FieldCode::Invalid,
            ),
            (Purpose::parse("purpose", " ").map(drop), "purpose", FieldCode::Required),
        ];
        for (i, (r, field, code)) in cases.into_iter().enumerate() {
            let e = r.expect_err(&format!("case {i}"));
            assert_eq!((e.field.as_str(), e.code), (field, code), "case {i}: {e}");
        }
    }

    fn m(s: &str) -> MunicipalityCode {
        s.parse().expect("municipality")
    }

    #[test]
    fn valid_values_pass() {
        assert_eq!(
            birth_date("b", "19800102", today()),
            Ok(NaiveDate::from_ymd_opt(1980, 1, 2).expect("d"))
        );
        assert_eq!(birth_date("b", "2026-11-27", today()), Ok(today()));
        assert!(my_number("n", "").expect("empty is none").is_none());
        assert!(my_number("n", "123456789018").expect("valid").is_some());
        assert_eq!(row_municipality("m", "", &m("131016")), Ok(()));
        assert_eq!(row_municipality("m", "131016", &m("131016")), Ok(()));
        assert_eq!(resident_id("r", Some(" ")), Ok(None));
        assert_eq!(text("n", " 山田　太郎 ", MAX_NAME), Ok("山田　太郎".to_owned()));
    }

    #[test]
    fn details_debug_is_redacted() {
        let d = PersonDetails {
            resident_id: Some("R1".into()),
            name: "山田　太郎".into(),
            name_kana: "ﾔﾏﾀﾞ ﾀﾛｳ".into(),
            birth_date: today(),
            sex: Sex::Male,
            address: "東京都千代田区".into(),
        };
        let s = format!("{d:?}");
        assert!(!s.contains("山田") && !s.contains("R1") && !s.contains("2026"), "{s}");
    }

    proptest! {
        /// A refusal of a My Number never carries any run of its digits.
        #[test]
        fn my_number_refusals_never_carry_the_value(digits in "[0-9]{12}") {
            if let Err(e) = my_number("my_number", &digits) {
                prop_assert!(!e.to_string().contains(&digits[..6]));
                prop_assert!(!e.reason.contains(&digits[6..]));
            }
        }
    }
}
