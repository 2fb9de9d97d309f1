//! Slug identifiers: `WholesalerId` and `ProductCode`.

use super::CodeError;

/// Shortest allowed slug, in characters.
const SLUG_MIN: usize = 2;
/// Longest allowed slug, in characters.
const SLUG_MAX: usize = 32;

/// Checks the slug rule: 2..=32 characters of `[a-z0-9-]`, the first a
/// lowercase letter.
fn check_slug(s: &str) -> Result<(), CodeError> {
    let actual = s.chars().count();
    if !(SLUG_MIN..=SLUG_MAX).contains(&actual) {
        return Err(CodeError::SlugLength { actual });
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(CodeError::SlugStart);
    }
    match s
        .chars()
        .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        Some(i) => Err(CodeError::SlugChar { position: i + 1 }),
        None => Ok(()),
    }
}

/// Declares a `String`-backed slug newtype.
macro_rules! slug_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Parses a slug: 2-32 characters of `a-z`, `0-9` and `-`,
            /// starting with a letter. Input is taken exactly (no trimming,
            /// no lowercasing).
            pub fn parse(s: &str) -> Result<Self, CodeError> {
                check_slug(s)?;
                Ok(Self(s.to_owned()))
            }

            /// The slug text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl_code_traits!($ty, $what);
    };
}

slug_type!(
    /// The id of a wholesaler organisation (卸売販売業者), a slug such as
    /// `suzuken` or `medipal-east`.
    WholesalerId,
    "wholesaler id"
);

slug_type!(
    /// A vaccine or ancillary product, a slug such as `comirnaty`,
    /// `spikevax` or `needle-25g`.
    ProductCode,
    "product code"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            "suzuken",
            "medipal-east",
            "comirnaty",
            "spikevax",
            "needle-25g",
            "ab",
            "a1",
            "a-",
            "abcdefghijklmnopqrstuvwxyz012345",
        ];
        for s in ok {
            assert_eq!(WholesalerId::parse(s).unwrap().as_str(), s);
            assert_eq!(ProductCode::parse(s).unwrap().as_str(), s);
        }
        let bad: &[(&str, CodeError)] = &[
            ("", CodeError::SlugLength { actual: 0 }),
            ("a", CodeError::SlugLength { actual: 1 }),
            (
                "abcdefghijklmnopqrstuvwxyz0123456",
                CodeError::SlugLength { actual: 33 },
            ),
            ("1abc", CodeError::SlugStart),
            ("-abc", CodeError::SlugStart),
            ("Suzuken", CodeError::SlugStart),
            (" suzuken", CodeError::SlugStart),
            ("ｓｓ", CodeError::SlugStart),
            ("suzuKen", CodeError::SlugChar { position: 5 }),
            ("medipal_east", CodeError::SlugChar { position: 8 }),
            ("medipal east", CodeError::SlugChar { position: 8 }),
            ("suzuken ", CodeError::SlugChar { position: 8 }),
            ("needle.25g", CodeError::SlugChar { position: 7 }),
            ("aé", CodeError::SlugChar { position: 2 }),
        ];
        for (input, expected) in bad {
            assert_eq!(WholesalerId::parse(input).as_ref(), Err(expected), "{input:?}");
            assert_eq!(ProductCode::parse(input).as_ref(), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn traits_and_serde() {
        let w: WholesalerId = "medipal-east".parse().unwrap();
        assert_eq!(w.to_string(), "medipal-east");
        assert_eq!(format!("{w:?}"), "WholesalerId(\"medipal-east\")");
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"medipal-east\"");
        assert_eq!(serde_json::from_str::<WholesalerId>("\"medipal-east\"").unwrap(), w);
        let err = serde_json::from_str::<ProductCode>("\"Comirnaty\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid product code: must start with a lowercase letter a-z")
        );
        let a = ProductCode::parse("comirnaty").unwrap();
        let b = ProductCode::parse("spikevax").unwrap();
        assert!(a < b);
    }
}
