//! `MyNumber`: the 12-digit individual number (個人番号) with its official check digit.
//!
//! Personal data: the type has no `Display`, no `Serialize`, and its `Debug` prints only
//! `MyNumber(<redacted>)`, so it cannot reach a log line, an error message or a metric label
//! by accident. The digits are read on purpose with [`MyNumber::expose`] — by the code that
//! encrypts them, hashes them for lookup, or shows them to a caller allowed to read them.

use super::{CodeError, ascii_digits, ascii_str, digit_value};

/// The check digit of 11 base digit *values* (each 0..=9), by 総務省令第八十五号 第五条:
/// with Pₙ the n-th base digit counted from the right (n = 1 … 11) and Qₙ = n + 1 for n ≤ 6,
/// n − 5 for n ≥ 7 (weights 2,3,4,5,6,7,2,3,4,5,6 from the right), r = Σ Pₙ·Qₙ mod 11 and the
/// check digit is 0 when r ≤ 1, else 11 − r.
pub fn my_number_check_digit(base: &[u8; 11]) -> u8 {
    match weighted_remainder(base) {
        0 | 1 => 0,
        r => (11 - r) as u8,
    }
}

/// r = Σ Pₙ·Qₙ mod 11 of [`my_number_check_digit`].
fn weighted_remainder(base: &[u8; 11]) -> u32 {
    let sum: u32 = base
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &p)| {
            let n = i as u32 + 1;
            let q = if n <= 6 { n + 1 } else { n - 5 };
            u32::from(p) * q
        })
        .sum();
    sum % 11
}

/// A well-formed My Number: 12 ASCII digits whose last is the check digit of the first 11.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MyNumber([u8; 12]);

impl MyNumber {
    /// Parses 12 digits and verifies the check digit. Errors never repeat the input.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let d = ascii_digits::<12>(s)?;
        let mut base = [0u8; 11];
        for (slot, b) in base.iter_mut().zip(&d) {
            *slot = digit_value(*b);
        }
        let expected = my_number_check_digit(&base);
        let found = digit_value(d[11]);
        if found != expected {
            return Err(CodeError::CheckDigit { found, expected });
        }
        Ok(Self(d))
    }

    /// The 12 digits. Named so every use of the personal value is easy to find and review.
    pub fn expose(&self) -> &str {
        ascii_str(&self.0)
    }
}

impl std::fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MyNumber(<redacted>)")
    }
}

impl std::str::FromStr for MyNumber {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base_of(s: &str) -> [u8; 11] {
        let mut b = [0u8; 11];
        for (slot, c) in b.iter_mut().zip(s.bytes()) {
            *slot = c - b'0';
        }
        b
    }

    #[test]
    fn check_digit_table() {
        // (11 base digits, check digit); the first is the worked vector of domain-facts §10:
        // sum 212, r = 3 → 8.
        let cases = [
            ("12345678901", 8),
            // all zeros: sum 0, r = 0 → 0
            ("00000000000", 0),
            // 1 in the rightmost place: weight 2, r = 2 → 9
            ("00000000001", 9),
            // 1 in the leftmost place: weight 6, r = 6 → 5
            ("10000000000", 5),
            // 5 in the rightmost place: 10, r = 10 → 1
            ("00000000005", 1),
            // weight 7 (6th from the right) × 8 = 56, r = 1 → 0
            ("00000800000", 0),
            // weight 3 × 4 = 12, r = 1 → 0 (r ≤ 1 gives 0)
            ("00000000040", 0),
        ];
        for (base, check) in cases {
            assert_eq!(my_number_check_digit(&base_of(base)), check, "{base}");
            let full = format!("{base}{check}");
            assert_eq!(MyNumber::parse(&full).map(|m| m.expose().to_owned()), Ok(full.clone()));
        }
    }

    #[test]
    fn parse_refuses_with_a_reason_and_never_the_input() {
        let len = |actual| CodeError::Length {
            expected: 12,
            actual,
            unit: "digits",
        };
        let cases: &[(&str, CodeError)] = &[
            ("", len(0)),
            ("12345678901", len(11)),
            ("1234567890180", len(13)),
            ("12345678901a", CodeError::NotDigit { position: 12 }),
            ("１23456789018", CodeError::NotDigit { position: 1 }),
            ("123456789017", CodeError::CheckDigit { found: 7, expected: 8 }),
        ];
        for (input, expected) in cases {
            let e = MyNumber::parse(input).expect_err(input);
            assert_eq!(&e, expected, "{input}");
            if input.len() >= 6 {
                assert!(!e.to_string().contains(&input[..6]), "{e} repeats the input");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let m = MyNumber::parse("123456789018").expect("valid");
        assert_eq!(format!("{m:?}"), "MyNumber(<redacted>)");
        assert_eq!(format!("{:?}", Some(m)), "Some(MyNumber(<redacted>))");
    }

    proptest! {
        #[test]
        fn exactly_one_check_digit_fits(base in proptest::array::uniform11(0u8..10)) {
            let s: String = base.iter().map(|d| char::from(b'0' + d)).collect();
            let fits: Vec<u8> = (0..10).filter(|c| MyNumber::parse(&format!("{s}{c}")).is_ok()).collect();
            prop_assert_eq!(fits, vec![my_number_check_digit(&base)]);
        }

        #[test]
        fn a_changed_digit_is_caught_unless_the_sum_is_unchanged_mod_11(
            base in proptest::array::uniform11(0u8..10),
            pos in 0usize..11,
            delta in 1u8..10,
        ) {
            let check = my_number_check_digit(&base);
            let mut changed = base;
            changed[pos] = (base[pos] + delta) % 10;
            // Weights are 2..=7 and coprime to 11, so a single changed digit always changes
            // the sum mod 11; the check digit differs unless both remainders map to 0 (r ≤ 1).
            if !(weighted_remainder(&base) <= 1 && weighted_remainder(&changed) <= 1) {
                prop_assert_ne!(my_number_check_digit(&changed), check);
            }
        }
    }
}
