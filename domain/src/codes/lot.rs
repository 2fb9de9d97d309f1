//! `LotNumber`: the manufacturer's lot (ロット番号) printed on a vial and its box.

use super::CodeError;

/// Shortest and longest lot number accepted, in characters.
const LOT_MIN: usize = 2;
const LOT_MAX: usize = 20;

/// A manufacturer's lot number as printed on the vial, e.g. `FF3620` (Comirnaty) or `3002183`
/// (Spikevax): 2–20 characters of uppercase `A-Z`, digits and `-`, starting with a letter or a
/// digit. Taken exactly as given (no trimming, no upper-casing): a lot sticker is copied, not
/// interpreted, and two spellings of one lot must not become two lots.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LotNumber(String);

impl LotNumber {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let actual = s.chars().count();
        if !(LOT_MIN..=LOT_MAX).contains(&actual) {
            return Err(CodeError::LotLength { actual });
        }
        if s.starts_with('-') {
            return Err(CodeError::LotChar { position: 1 });
        }
        match s
            .chars()
            .position(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'))
        {
            Some(i) => Err(CodeError::LotChar { position: i + 1 }),
            None => Ok(LotNumber(s.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl_code_traits!(LotNumber, "lot number");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        for ok in [
            "FF3620",
            "EP2163",
            "3002183",
            "300042460",
            "AB-12",
            "A1",
            "12345678901234567890",
        ] {
            assert_eq!(LotNumber::parse(ok).expect(ok).as_str(), ok);
        }
        let bad: &[(&str, CodeError)] = &[
            ("", CodeError::LotLength { actual: 0 }),
            ("F", CodeError::LotLength { actual: 1 }),
            ("123456789012345678901", CodeError::LotLength { actual: 21 }),
            ("-F3620", CodeError::LotChar { position: 1 }),
            ("ff3620", CodeError::LotChar { position: 1 }),
            ("FF 3620", CodeError::LotChar { position: 3 }),
            (" FF3620", CodeError::LotChar { position: 1 }),
            ("FF3620 ", CodeError::LotChar { position: 7 }),
            ("ＦＦ3620", CodeError::LotChar { position: 1 }),
            ("FF_3620", CodeError::LotChar { position: 3 }),
        ];
        for (input, want) in bad {
            assert_eq!(LotNumber::parse(input).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(
            serde_json::to_string(&LotNumber::parse("FF3620").expect("lot")).expect("json"),
            "\"FF3620\""
        );
        assert!(serde_json::from_str::<LotNumber>("\"ff3620\"").is_err());
    }

    proptest! {
        #[test]
        fn every_accepted_lot_round_trips(s in "[A-Z0-9][A-Z0-9-]{1,19}") {
            let lot = LotNumber::parse(&s).expect("matches the rule");
            prop_assert_eq!(lot.to_string(), s.clone());
            prop_assert_eq!(s.parse::<LotNumber>().expect("FromStr"), lot);
        }

        #[test]
        fn nothing_outside_the_alphabet_is_accepted(s in "\\PC{2,20}") {
            let fits = s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-');
            prop_assert_eq!(LotNumber::parse(&s).is_ok(), fits);
        }
    }
}
