//! Parsed identifier codes ("parse, don't validate").
//!
//! This module owns every short identifier code that crosses the V-SYS
//! boundary: prefecture codes (JIS X 0401), municipality codes (JIS X 0402,
//! with their check digit), site codes (保険医療機関コード, 介護保険事業所番号
//! and the codes this system assigns to venues that have neither), the slugs
//! that name wholesalers and products, postal codes, and vaccine lot
//! numbers.
//!
//! Each code is a newtype with a private field that can only be obtained
//! from a parser (or from a constructor that computes the check digit), so a
//! value of one of these types is valid by construction. All of them
//! implement `FromStr`, `Display`, serde `Serialize` (as a string) and serde
//! `Deserialize` (through the same parser).
//!
//! Parsers take their input exactly as given: they do not trim whitespace
//! and do not convert full-width digits. Callers that accept human input
//! should normalise it first.
//!
//! Errors are a single [`CodeError`] enum whose messages state the reason
//! only ("must be 6 digits", "check digit is 3, expected 7"); they never
//! repeat the offending input, and the caller is expected to prefix the
//! field name.

/// Implements `Debug`, `FromStr`, `AsRef<str>`, serde `Serialize` and
/// `Deserialize` (and, unless `custom_display` is given, `Display`) for a
/// code type with `parse(&str)` and `as_str(&self)`.
macro_rules! impl_code_traits {
    ($ty:ident, $what:literal) => {
        impl ::core::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl_code_traits!($ty, $what, custom_display);
    };
    ($ty:ident, $what:literal, custom_display) => {
        impl ::core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple(stringify!($ty)).field(&self.as_str()).finish()
            }
        }

        impl ::core::str::FromStr for $ty {
            type Err = $crate::codes::CodeError;

            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl ::core::convert::AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                struct CodeVisitor;

                impl ::serde::de::Visitor<'_> for CodeVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str($what)
                    }

                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> ::core::result::Result<$ty, E> {
                        $ty::parse(v).map_err(|e| E::custom(format_args!("invalid {}: {}", $what, e)))
                    }
                }

                deserializer.deserialize_str(CodeVisitor)
            }
        }
    };
}

mod coupon;
mod lot;
mod municipality;
mod my_number;
mod postal;
mod prefecture;
mod site;
mod slug;

pub use coupon::{CouponLine, CouponNumber};
pub use lot::LotNumber;
pub use municipality::{MunicipalityCode, jis_x0402_check_digit};
pub use my_number::{MyNumber, my_number_check_digit};
pub use postal::PostalCode;
pub use prefecture::PrefectureCode;
pub use site::{SiteCode, SiteCodeKind, mod10_w21_check_digit};
pub use slug::{ProductCode, WholesalerId};

/// Why a string is not a valid code. Messages state the reason only and
/// never repeat the input; positions are 1-based character positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The input has the wrong number of characters (`unit` is "digits" or
    /// "characters"; `actual` counts Unicode scalar values).
    #[error("must be {expected} {unit}, got {actual}")]
    Length {
        /// Required number of characters.
        expected: usize,
        /// Number of characters in the input.
        actual: usize,
        /// What the characters are called in the message.
        unit: &'static str,
    },
    /// A character where an ASCII digit 0-9 is required is something else
    /// (full-width digits included).
    #[error("character {position} must be a digit 0-9")]
    NotDigit {
        /// 1-based position of the offending character.
        position: usize,
    },
    /// The prefecture part is not a JIS X 0401 prefecture code 01-47.
    #[error("prefecture must be 01-47")]
    Prefecture,
    /// The check digit does not match the one computed from the other
    /// characters.
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit {
        /// The check digit in the input.
        found: u8,
        /// The check digit computed from the rest of the code.
        expected: u8,
    },
    /// Position 3 of a site code is not a known class: a digit 0-9 or an
    /// uppercase ASCII letter other than I, O and Q.
    #[error("character 3 must be a site class: a digit 0-9 or an uppercase letter other than I, O and Q")]
    SiteClass,
    /// The serial of an assigned site code (class `2`) is outside
    /// 000001-999999.
    #[error("assigned serial must be 1-999999")]
    AssignedSerial,
    /// A slug (wholesaler id, product code) is not 2-32 characters long.
    #[error("must be 2-32 characters, got {actual}")]
    SlugLength {
        /// Number of characters in the input.
        actual: usize,
    },
    /// A slug does not start with a lowercase ASCII letter.
    #[error("must start with a lowercase letter a-z")]
    SlugStart,
    /// A slug contains a character other than `a-z`, `0-9` and `-`.
    #[error("character {position} must be a lowercase letter a-z, a digit 0-9 or a hyphen")]
    SlugChar {
        /// 1-based position of the offending character.
        position: usize,
    },
    /// A postal code is not 7 digits, written either `1234567` or
    /// `123-4567`.
    #[error("must be 7 digits, written 1234567 or 123-4567")]
    PostalFormat,
    /// Character 1 of a coupon line (券種) is not a digit 0-9.
    #[error("the coupon kind (character 1) must be a digit 0-9")]
    CouponKind,
    /// Character 2 of a coupon line (回数) is not 1-9.
    #[error("the dose number (character 2) must be 1-9")]
    CouponDose,
    /// Characters 3-8 of a coupon line are not a municipality code.
    #[error("characters 3-8 must be a municipality code (prefecture 01-47)")]
    CouponMunicipality,
    /// The municipality code in a coupon line has the wrong check digit.
    #[error("the municipality code (characters 3-8) has check digit {found}, expected {expected}")]
    CouponMunicipalityCheckDigit {
        /// The check digit in the input.
        found: u8,
        /// The check digit computed from the rest of the code.
        expected: u8,
    },
    /// A lot number is not 2-20 characters long.
    #[error("must be 2-20 characters, got {actual}")]
    LotLength {
        /// Number of characters in the input.
        actual: usize,
    },
    /// A lot number holds a character other than `A-Z`, `0-9` and `-`, or starts with `-`.
    #[error("character {position} must be an uppercase letter A-Z, a digit 0-9 or (not first) a hyphen")]
    LotChar {
        /// 1-based position of the offending character.
        position: usize,
    },
}

/// Fails with [`CodeError::Length`] unless `s` has exactly `expected`
/// characters.
fn check_len(s: &str, expected: usize, unit: &'static str) -> Result<(), CodeError> {
    let actual = s.chars().count();
    if actual == expected {
        Ok(())
    } else {
        Err(CodeError::Length { expected, actual, unit })
    }
}

/// Checks that `s` is exactly `N` ASCII digits and returns them as ASCII
/// bytes.
fn ascii_digits<const N: usize>(s: &str) -> Result<[u8; N], CodeError> {
    check_len(s, N, "digits")?;
    let mut out = [0u8; N];
    for ((i, c), slot) in s.chars().enumerate().zip(out.iter_mut()) {
        if !c.is_ascii_digit() {
            return Err(CodeError::NotDigit { position: i + 1 });
        }
        *slot = c as u8;
    }
    Ok(out)
}

/// The numeric value of an ASCII digit byte.
const fn digit_value(b: u8) -> u8 {
    b - b'0'
}

/// The ASCII string of bytes that were validated as ASCII at construction.
fn ascii_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("codes hold ASCII by construction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_state_the_reason_without_the_input() {
        let cases = [
            (
                CodeError::Length {
                    expected: 6,
                    actual: 5,
                    unit: "digits",
                },
                "must be 6 digits, got 5",
            ),
            (CodeError::NotDigit { position: 2 }, "character 2 must be a digit 0-9"),
            (CodeError::Prefecture, "prefecture must be 01-47"),
            (
                CodeError::CheckDigit { found: 3, expected: 7 },
                "check digit is 3, expected 7",
            ),
            (CodeError::AssignedSerial, "assigned serial must be 1-999999"),
            (CodeError::SlugLength { actual: 1 }, "must be 2-32 characters, got 1"),
            (CodeError::SlugStart, "must start with a lowercase letter a-z"),
            (
                CodeError::SlugChar { position: 3 },
                "character 3 must be a lowercase letter a-z, a digit 0-9 or a hyphen",
            ),
            (CodeError::PostalFormat, "must be 7 digits, written 1234567 or 123-4567"),
            (CodeError::LotLength { actual: 21 }, "must be 2-20 characters, got 21"),
        ];
        for (err, msg) in cases {
            assert_eq!(err.to_string(), msg);
        }
        assert!(CodeError::SiteClass.to_string().starts_with("character 3 must be"));
    }

    #[test]
    fn ascii_digits_reports_first_bad_position() {
        assert_eq!(ascii_digits::<3>("123"), Ok(*b"123"));
        assert_eq!(ascii_digits::<3>("1x3"), Err(CodeError::NotDigit { position: 2 }));
        // Full-width digits are not digits; length counts characters.
        assert_eq!(ascii_digits::<3>("1２3"), Err(CodeError::NotDigit { position: 2 }));
        assert_eq!(
            ascii_digits::<3>("12"),
            Err(CodeError::Length {
                expected: 3,
                actual: 2,
                unit: "digits"
            })
        );
    }
}
