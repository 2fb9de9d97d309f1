//! Coupons (接種券): the 10-digit coupon number and the 18-digit OCR/QR line printed on them.
//!
//! The line reads 券種 (1 digit) + 回数 (1 digit) + 市町村コード (6 digits, JIS X 0402 with its
//! check digit) + 券番号 (10 digits, leading zeros kept) — domain-facts §2.1. The code values
//! of 券種 and 回数 are not confirmed by the sources: any digit is accepted as a kind, and the
//! dose number must be 1-9 (a dose "0" means nothing); what each kind means is configuration,
//! not a parser rule.

use super::{CodeError, MunicipalityCode, ascii_digits, ascii_str, digit_value};

/// A coupon number (券番号): exactly 10 digits, unique within its municipality. Leading zeros
/// are part of the number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CouponNumber([u8; 10]);

impl CouponNumber {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        ascii_digits::<10>(s).map(Self)
    }

    /// The coupon number `n` with leading zeros (`n` must be below 10¹⁰).
    pub fn from_serial(n: u64) -> Result<Self, CodeError> {
        if n >= 10_000_000_000 {
            return Err(CodeError::Length {
                expected: 10,
                actual: n.to_string().len(),
                unit: "digits",
            });
        }
        Self::parse(&format!("{n:010}"))
    }

    pub fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }
}

impl_code_traits!(CouponNumber, "coupon number");

/// The 18 digits of a coupon's OCR line (and of its QR code).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CouponLine {
    digits: [u8; 18],
    municipality: MunicipalityCode,
    coupon: CouponNumber,
}

impl CouponLine {
    /// Builds the line for a coupon.
    pub fn new(kind: u8, dose: u8, municipality: MunicipalityCode, coupon: CouponNumber) -> Result<Self, CodeError> {
        if kind > 9 {
            return Err(CodeError::CouponKind);
        }
        if !(1..=9).contains(&dose) {
            return Err(CodeError::CouponDose);
        }
        Self::parse(&format!("{kind}{dose}{}{}", municipality.as_str(), coupon.as_str()))
    }

    /// Parses a scanned line: 18 ASCII digits, a dose number 1-9 and a municipality code whose
    /// check digit holds. Errors name the part and the reason, never the input.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let digits = ascii_digits::<18>(s)?;
        if digit_value(digits[1]) == 0 {
            return Err(CodeError::CouponDose);
        }
        let municipality = MunicipalityCode::parse(ascii_str(&digits[2..8])).map_err(|e| match e {
            CodeError::CheckDigit { found, expected } => CodeError::CouponMunicipalityCheckDigit { found, expected },
            _ => CodeError::CouponMunicipality,
        })?;
        let coupon = CouponNumber::parse(ascii_str(&digits[8..18]))?;
        Ok(Self {
            digits,
            municipality,
            coupon,
        })
    }

    /// 券種, 0-9.
    pub fn kind(&self) -> u8 {
        digit_value(self.digits[0])
    }

    /// 回数, 1-9.
    pub fn dose(&self) -> u8 {
        digit_value(self.digits[1])
    }

    pub fn municipality(&self) -> MunicipalityCode {
        self.municipality
    }

    pub fn coupon(&self) -> CouponNumber {
        self.coupon
    }

    pub fn as_str(&self) -> &str {
        ascii_str(&self.digits)
    }
}

impl_code_traits!(CouponLine, "coupon line");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chiyoda() -> MunicipalityCode {
        "131016".parse().expect("valid")
    }

    #[test]
    fn coupon_numbers_keep_leading_zeros() {
        let c = CouponNumber::parse("0000012345").expect("valid");
        assert_eq!(c.as_str(), "0000012345");
        assert_eq!(CouponNumber::from_serial(12_345), Ok(c));
        assert!(CouponNumber::from_serial(10_000_000_000).is_err());
        assert_eq!(
            CouponNumber::parse("123456789"),
            Err(CodeError::Length {
                expected: 10,
                actual: 9,
                unit: "digits"
            })
        );
        assert_eq!(
            CouponNumber::parse("12345-7890"),
            Err(CodeError::NotDigit { position: 6 })
        );
    }

    #[test]
    fn a_line_is_built_and_read_back() {
        let coupon = CouponNumber::parse("0000012345").expect("valid");
        let line = CouponLine::new(1, 3, chiyoda(), coupon).expect("valid");
        assert_eq!(line.as_str(), "131310160000012345");
        let read = CouponLine::parse(line.as_str()).expect("parses");
        assert_eq!((read.kind(), read.dose()), (1, 3));
        assert_eq!(read.municipality(), chiyoda());
        assert_eq!(read.coupon(), coupon);
        assert_eq!(read, line);
    }

    #[test]
    fn bad_lines_are_refused_with_the_part_and_the_reason() {
        let len = |actual| CodeError::Length {
            expected: 18,
            actual,
            unit: "digits",
        };
        let cases: &[(&str, CodeError)] = &[
            ("", len(0)),
            ("13131016000001234", len(17)),
            ("1313101600000123456", len(19)),
            ("13131016000001234X", CodeError::NotDigit { position: 18 }),
            // dose 0
            ("101310160000012345", CodeError::CouponDose),
            // 131017: check digit 7, expected 6
            (
                "131310170000012345",
                CodeError::CouponMunicipalityCheckDigit { found: 7, expected: 6 },
            ),
            // prefecture 99
            ("139910160000012345", CodeError::CouponMunicipality),
        ];
        for (input, expected) in cases {
            assert_eq!(&CouponLine::parse(input).expect_err(input), expected, "{input}");
        }
        assert_eq!(
            CouponLine::new(10, 1, chiyoda(), CouponNumber::parse("0000000001").expect("valid")),
            Err(CodeError::CouponKind)
        );
        assert_eq!(
            CouponLine::new(1, 0, chiyoda(), CouponNumber::parse("0000000001").expect("valid")),
            Err(CodeError::CouponDose)
        );
    }

    proptest! {
        #[test]
        fn every_built_line_parses_to_its_parts(kind in 0u8..10, dose in 1u8..10, serial in 0u64..10_000_000_000) {
            let coupon = CouponNumber::from_serial(serial).expect("in range");
            let line = CouponLine::new(kind, dose, chiyoda(), coupon).expect("valid");
            let read = CouponLine::parse(line.as_str()).expect("parses");
            prop_assert_eq!(read.as_str().len(), 18);
            prop_assert_eq!((read.kind(), read.dose(), read.coupon()), (kind, dose, coupon));
        }
    }
}
