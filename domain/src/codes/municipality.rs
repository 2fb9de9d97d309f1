//! `MunicipalityCode`: JIS X 0402 six-digit local government codes.

use super::{CodeError, PrefectureCode, ascii_digits, ascii_str, digit_value};

/// The JIS X 0402 check digit for five digit *values* (each 0..=9, not
/// ASCII): for digits a b c d e, s = 6a + 5b + 4c + 3d + 2e, and the check
/// digit is the last digit of 11 − (s mod 11) (remainder 0 gives 1,
/// remainder 1 gives 0).
pub fn jis_x0402_check_digit(five: &[u8; 5]) -> u8 {
    let s: u32 = five
        .iter()
        .zip([6u32, 5, 4, 3, 2])
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    ((11 - s % 11) % 10) as u8
}

/// A JIS X 0402 全国地方公共団体コード: prefecture (2 digits) + municipality
/// (3 digits) + check digit, e.g. `131016` (千代田区).
///
/// A prefecture's own row (`130001`, 東京都) is a valid code in this format;
/// see [`Self::is_prefecture_level`]. The first two digits must be a valid
/// [`PrefectureCode`]. Ordered as strings (= numerically).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode([u8; 6]);

impl MunicipalityCode {
    /// Parses a six-digit code, verifying the prefecture and check digit.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let d = ascii_digits::<6>(s)?;
        PrefectureCode::from_ascii_pair(d[0], d[1])?;
        let expected = check_digit_of_ascii(&[d[0], d[1], d[2], d[3], d[4]]);
        let found = digit_value(d[5]);
        if found != expected {
            return Err(CodeError::CheckDigit { found, expected });
        }
        Ok(Self(d))
    }

    /// Builds a code from its first five digits, appending the check digit.
    pub fn from_five_digits(s: &str) -> Result<Self, CodeError> {
        let d = ascii_digits::<5>(s)?;
        PrefectureCode::from_ascii_pair(d[0], d[1])?;
        let check = check_digit_of_ascii(&d);
        Ok(Self([d[0], d[1], d[2], d[3], d[4], b'0' + check]))
    }

    /// The prefecture (first two digits).
    pub fn prefecture(&self) -> PrefectureCode {
        PrefectureCode::from_validated_pair(self.0[0], self.0[1])
    }

    /// Whether this is a prefecture's own row (digits 3-5 are `000`).
    pub fn is_prefecture_level(&self) -> bool {
        self.0[2..5] == *b"000"
    }

    /// The six digits, e.g. `"131016"`.
    pub fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }
}

/// [`jis_x0402_check_digit`] over ASCII digit bytes.
fn check_digit_of_ascii(ascii: &[u8; 5]) -> u8 {
    jis_x0402_check_digit(&ascii.map(digit_value))
}

impl_code_traits!(MunicipalityCode, "municipality code");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CSV: &str = include_str!("../../../migrations/src/municipalities.csv");

    const KNOWN_VALID: [&str; 11] = [
        "011002", "011011", "011029", "011037", "131016", "130001", "010006", "270008", "014605", "232131", "261009",
    ];

    #[test]
    fn known_valid_codes_parse() {
        for s in KNOWN_VALID {
            let code = MunicipalityCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(code.prefecture().as_str(), &s[..2]);
            assert_eq!(MunicipalityCode::from_five_digits(&s[..5]), Ok(code));
        }
    }

    #[test]
    fn check_digit_arithmetic() {
        // 011002: 6·0 + 5·1 + 4·1 + 3·0 + 2·0 = 9; 11 − 9 = 2.
        assert_eq!(jis_x0402_check_digit(&[0, 1, 1, 0, 0]), 2);
        // 130001: 6·1 + 5·3 = 21; 21 mod 11 = 10; 11 − 10 = 1.
        assert_eq!(jis_x0402_check_digit(&[1, 3, 0, 0, 0]), 1);
        // Remainder 0 → 11 → 1: 6·0 + 5·0 + 4·1 + 3·1 + 2·2 = 11.
        assert_eq!(jis_x0402_check_digit(&[0, 0, 1, 1, 2]), 1);
        // Remainder 1 → 10 → 0: 6·0 + 5·0 + 4·0 + 3·0 + 2·6 = 12.
        assert_eq!(jis_x0402_check_digit(&[0, 0, 0, 0, 6]), 0);
        // 131016: 6 + 15 + 4 + 0 + 2 = 27; 27 mod 11 = 5; 11 − 5 = 6.
        assert_eq!(jis_x0402_check_digit(&[1, 3, 1, 0, 1]), 6);
    }

    #[test]
    fn parse_table() {
        let len = |actual| CodeError::Length {
            expected: 6,
            actual,
            unit: "digits",
        };
        let cases: &[(&str, CodeError)] = &[
            ("", len(0)),
            ("13101", len(5)),
            ("1310160", len(7)),
            (" 131016", len(7)),
            ("13101a", CodeError::NotDigit { position: 6 }),
            ("１31016", CodeError::NotDigit { position: 1 }),
            ("13-016", CodeError::NotDigit { position: 3 }),
            ("000000", CodeError::Prefecture),
            ("480001", CodeError::Prefecture),
            ("131017", CodeError::CheckDigit { found: 7, expected: 6 }),
            ("011003", CodeError::CheckDigit { found: 3, expected: 2 }),
            ("130000", CodeError::CheckDigit { found: 0, expected: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(
                MunicipalityCode::parse(input).as_ref(),
                Err(expected),
                "input {input:?}"
            );
        }
        // 480002 has the right check digit (6·4 + 5·8 = 64, 64 mod 11 = 9,
        // 11 − 9 = 2) but prefecture 48 does not exist.
        assert_eq!(jis_x0402_check_digit(&[4, 8, 0, 0, 0]), 2);
        assert_eq!(MunicipalityCode::parse("480002"), Err(CodeError::Prefecture));
    }

    #[test]
    fn from_five_digits_table() {
        assert_eq!(MunicipalityCode::from_five_digits("13101").unwrap().as_str(), "131016");
        assert_eq!(
            MunicipalityCode::from_five_digits("1310"),
            Err(CodeError::Length {
                expected: 5,
                actual: 4,
                unit: "digits"
            })
        );
        assert_eq!(MunicipalityCode::from_five_digits("00101"), Err(CodeError::Prefecture));
        assert_eq!(
            MunicipalityCode::from_five_digits("1310x"),
            Err(CodeError::NotDigit { position: 5 })
        );
    }

    #[test]
    fn prefecture_level() {
        let tokyo = MunicipalityCode::parse("130001").unwrap();
        assert!(tokyo.is_prefecture_level());
        assert_eq!(tokyo.prefecture().number(), 13);
        assert!(!MunicipalityCode::parse("131016").unwrap().is_prefecture_level());
        for p in PrefectureCode::all() {
            let row = MunicipalityCode::from_five_digits(&format!("{}000", p.as_str())).unwrap();
            assert!(row.is_prefecture_level());
            assert_eq!(row.prefecture(), p);
        }
    }

    fn csv_codes() -> Vec<&'static str> {
        CSV.lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').next().unwrap())
            .collect()
    }

    #[test]
    fn every_code_in_municipalities_csv_parses() {
        let codes = csv_codes();
        assert_eq!(codes.len(), 1788);
        let parsed: Vec<MunicipalityCode> = codes
            .iter()
            .map(|s| MunicipalityCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect();
        let prefecture_rows: Vec<_> = parsed.iter().filter(|c| c.is_prefecture_level()).collect();
        assert_eq!(prefecture_rows.len(), 47);
        assert_eq!(parsed.len() - prefecture_rows.len(), 1741);
        let mut prefs: Vec<_> = prefecture_rows.iter().map(|c| c.prefecture()).collect();
        prefs.dedup();
        assert_eq!(prefs, PrefectureCode::all().collect::<Vec<_>>());
    }

    #[test]
    fn every_csv_code_with_another_check_digit_fails() {
        for s in csv_codes() {
            let good = s.as_bytes()[5];
            for other in b'0'..=b'9' {
                if other == good {
                    continue;
                }
                let mut bad = s.as_bytes().to_vec();
                bad[5] = other;
                let bad = String::from_utf8(bad).unwrap();
                assert!(
                    matches!(MunicipalityCode::parse(&bad), Err(CodeError::CheckDigit { .. })),
                    "{bad} should fail its check digit"
                );
            }
        }
    }

    #[test]
    fn serde_round_trip() {
        let c = MunicipalityCode::parse("131016").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"131016\"");
        assert_eq!(serde_json::from_str::<MunicipalityCode>(&json).unwrap(), c);
        let err = serde_json::from_str::<MunicipalityCode>("\"131017\"").unwrap_err();
        assert!(err.to_string().contains("check digit is 7, expected 6"));
        assert_eq!(format!("{c:?}"), "MunicipalityCode(\"131016\")");
    }

    proptest! {
        #[test]
        fn from_five_digits_round_trips(pref in 1u8..=47, rest in "[0-9]{3}") {
            let five = format!("{pref:02}{rest}");
            let code = MunicipalityCode::from_five_digits(&five).unwrap();
            prop_assert_eq!(&code.as_str()[..5], five.as_str());
            prop_assert_eq!(code.prefecture().number(), pref);
            prop_assert_eq!(MunicipalityCode::parse(code.as_str()), Ok(code));
            prop_assert_eq!(code.to_string().parse::<MunicipalityCode>(), Ok(code));
        }
    }
}
