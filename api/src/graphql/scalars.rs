//! GraphQL scalars for the domain's codes. Each one calls the domain parser, so a malformed code
//! is refused before any resolver runs, with the parser's reason in the message.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use domain::codes;

macro_rules! code_scalar {
    ($(#[$doc:meta])* $wrapper:ident, $inner:ty, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $wrapper(pub $inner);

        $(#[$doc])*
        #[Scalar(name = $name)]
        impl ScalarType for $wrapper {
            fn parse(value: Value) -> InputValueResult<Self> {
                match value {
                    Value::String(s) => s.parse::<$inner>().map($wrapper).map_err(|e| InputValueError::custom(e.to_string())),
                    other => Err(InputValueError::expected_type(other)),
                }
            }

            fn to_value(&self) -> Value {
                Value::String(self.0.to_string())
            }
        }

        impl From<$inner> for $wrapper {
            fn from(v: $inner) -> Self {
                $wrapper(v)
            }
        }
    };
}

code_scalar!(
    /// A 10-character site code: an insurance medical institution code, a long-term-care provider
    /// number, or a code assigned by this system (third character `2`), each with its check digit.
    SiteCode, codes::SiteCode, "SiteCode"
);
code_scalar!(
    /// A 6-digit local government code (JIS X 0402) with its check digit, e.g. 131016.
    MunicipalityCode, codes::MunicipalityCode, "MunicipalityCode"
);
code_scalar!(
    /// A 2-digit prefecture code, 01–47.
    PrefectureCode, codes::PrefectureCode, "PrefectureCode"
);
code_scalar!(
    /// A wholesaler's id: 2–32 characters of a-z, 0-9 and '-', starting with a letter.
    WholesalerId, codes::WholesalerId, "WholesalerId"
);
code_scalar!(
    /// A product's code, e.g. comirnaty: 2–32 characters of a-z, 0-9 and '-'.
    ProductCode, codes::ProductCode, "ProductCode"
);
code_scalar!(
    /// A Japanese postal code: 7 digits, written 1000001 or 100-0001 (output: 100-0001).
    PostalCode, codes::PostalCode, "PostalCode"
);
code_scalar!(
    /// A vaccine lot number as printed on the vial, e.g. FF3620: 2–20 characters of A-Z, 0-9
    /// and '-', not starting with '-'.
    LotNumber, codes::LotNumber, "LotNumber"
);
