//! `PrefectureCode`: JIS X 0401 prefecture codes 01-47.

use super::{CodeError, ascii_digits, digit_value};

/// The two-digit strings of the 47 prefectures, indexed by number - 1.
const PREFECTURE_STRS: [&str; 47] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
    "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37", "38",
    "39", "40", "41", "42", "43", "44", "45", "46", "47",
];

/// A JIS X 0401 prefecture code: two digits `01` (北海道) to `47` (沖縄県).
///
/// Ordered numerically. `parse` requires exactly two ASCII digits ("1" and
/// "001" are rejected).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefectureCode(u8);

impl PrefectureCode {
    /// Number of prefectures.
    pub const COUNT: u8 = 47;

    /// Parses a two-digit prefecture code such as `"13"`.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let [a, b] = ascii_digits::<2>(s)?;
        Self::from_ascii_pair(a, b)
    }

    /// The prefecture with number `n` (1..=47).
    pub fn from_number(n: u8) -> Result<Self, CodeError> {
        if (1..=Self::COUNT).contains(&n) {
            Ok(Self(n))
        } else {
            Err(CodeError::Prefecture)
        }
    }

    /// The prefecture number, 1..=47.
    pub fn number(&self) -> u8 {
        self.0
    }

    /// The two-digit code, e.g. `"13"`.
    pub fn as_str(&self) -> &'static str {
        PREFECTURE_STRS[usize::from(self.0 - 1)]
    }

    /// All 47 prefectures in code order.
    pub fn all() -> impl Iterator<Item = PrefectureCode> {
        (1..=Self::COUNT).map(PrefectureCode)
    }

    /// The prefecture whose code is the two ASCII digits `a`, `b`.
    pub(super) fn from_ascii_pair(a: u8, b: u8) -> Result<Self, CodeError> {
        Self::from_number(digit_value(a) * 10 + digit_value(b))
    }

    /// Like [`Self::from_ascii_pair`] for digits already validated as a
    /// prefecture.
    pub(super) fn from_validated_pair(a: u8, b: u8) -> Self {
        let n = digit_value(a) * 10 + digit_value(b);
        debug_assert!((1..=Self::COUNT).contains(&n));
        Self(n)
    }
}

impl_code_traits!(PrefectureCode, "prefecture code");

#[cfg(test)]
mod tests {
    use super::*;

    fn len_err(actual: usize) -> CodeError {
        CodeError::Length {
            expected: 2,
            actual,
            unit: "digits",
        }
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<u8, CodeError>)] = &[
            ("01", Ok(1)),
            ("13", Ok(13)),
            ("27", Ok(27)),
            ("47", Ok(47)),
            ("00", Err(CodeError::Prefecture)),
            ("48", Err(CodeError::Prefecture)),
            ("99", Err(CodeError::Prefecture)),
            ("1", Err(len_err(1))),
            ("", Err(len_err(0))),
            ("013", Err(len_err(3))),
            (" 1", Err(CodeError::NotDigit { position: 1 })),
            ("1a", Err(CodeError::NotDigit { position: 2 })),
            ("１３", Err(CodeError::NotDigit { position: 1 })),
            ("+1", Err(CodeError::NotDigit { position: 1 })),
        ];
        for (input, expected) in cases {
            let got = PrefectureCode::parse(input).map(|p| p.number());
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn from_number_bounds() {
        assert_eq!(PrefectureCode::from_number(0), Err(CodeError::Prefecture));
        assert_eq!(PrefectureCode::from_number(48), Err(CodeError::Prefecture));
        assert_eq!(PrefectureCode::from_number(255), Err(CodeError::Prefecture));
        assert_eq!(PrefectureCode::from_number(1).unwrap().as_str(), "01");
        assert_eq!(PrefectureCode::from_number(47).unwrap().as_str(), "47");
    }

    #[test]
    fn all_is_the_47_in_order_and_round_trips() {
        let all: Vec<_> = PrefectureCode::all().collect();
        assert_eq!(all.len(), 47);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        for (i, p) in all.iter().enumerate() {
            assert_eq!(usize::from(p.number()), i + 1);
            assert_eq!(p.as_str(), format!("{:02}", i + 1));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(p.as_str().parse::<PrefectureCode>().as_ref(), Ok(p));
        }
    }

    #[test]
    fn serde_and_debug() {
        let p = PrefectureCode::parse("13").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"13\"");
        assert_eq!(serde_json::from_str::<PrefectureCode>("\"13\"").unwrap(), p);
        let err = serde_json::from_str::<PrefectureCode>("\"48\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid prefecture code: prefecture must be 01-47")
        );
        assert!(serde_json::from_str::<PrefectureCode>("13").is_err());
        assert_eq!(format!("{p:?}"), "PrefectureCode(\"13\")");
    }
}
