//! `PostalCode`: Japanese seven-digit postal codes (郵便番号).

use super::{CodeError, ascii_str};

/// A Japanese postal code: seven digits, written `1000001` or `100-0001`.
///
/// [`Self::as_str`] and serde serialization give the canonical seven digits;
/// `Display` gives the conventional `100-0001` form. Parsing accepts both
/// forms, exactly (no trimming, no full-width digits, no 〒 mark).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostalCode([u8; 7]);

impl PostalCode {
    /// Parses `"1000001"` or `"100-0001"`.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let b = s.as_bytes();
        let digits: [u8; 7] = match b.len() {
            7 => b.try_into().map_err(|_| CodeError::PostalFormat)?,
            8 if b[3] == b'-' => [b[0], b[1], b[2], b[4], b[5], b[6], b[7]],
            _ => return Err(CodeError::PostalFormat),
        };
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(Self(digits))
        } else {
            Err(CodeError::PostalFormat)
        }
    }

    /// The seven digits, e.g. `"1000001"`.
    pub fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }
}

impl std::fmt::Display for PostalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.as_str();
        write!(f, "{}-{}", &s[..3], &s[3..])
    }
}

impl_code_traits!(PostalCode, "postal code", custom_display);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        for (input, digits) in [
            ("1000001", "1000001"),
            ("100-0001", "1000001"),
            ("0600000", "0600000"),
            ("900-0000", "9000000"),
        ] {
            let p = PostalCode::parse(input).unwrap();
            assert_eq!(p.as_str(), digits);
        }
        for bad in [
            "",
            "100001",
            "10000011",
            "100-001",
            "1000-001",
            "10-00001",
            "100--0001",
            "100 0001",
            "100-000a",
            "10a0001",
            " 1000001",
            "1000001 ",
            "〒100-0001",
            "１００-０００１",
            "１000001",
            "100ー0001",
            "+100001",
        ] {
            assert_eq!(PostalCode::parse(bad), Err(CodeError::PostalFormat), "{bad:?}");
        }
    }

    #[test]
    fn display_serde_debug() {
        let p = PostalCode::parse("1000001").unwrap();
        assert_eq!(p.to_string(), "100-0001");
        assert_eq!(format!("{p:?}"), "PostalCode(\"1000001\")");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"1000001\"");
        assert_eq!(serde_json::from_str::<PostalCode>("\"100-0001\"").unwrap(), p);
        assert_eq!(serde_json::from_str::<PostalCode>("\"1000001\"").unwrap(), p);
        assert!(serde_json::from_str::<PostalCode>("\"100\"").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(digits in "[0-9]{7}") {
            let p = PostalCode::parse(&digits).unwrap();
            prop_assert_eq!(p.as_str(), digits.as_str());
            let shown = p.to_string();
            prop_assert_eq!(shown.len(), 8);
            prop_assert_eq!(PostalCode::parse(&shown), Ok(p));
            prop_assert_eq!(p.as_str().parse::<PostalCode>(), Ok(p));
        }
    }
}
