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

macro_rules! quantity_scalar {
    ($(#[$doc:meta])* $wrapper:ident, $inner:ty, $name:literal, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $wrapper(pub $inner);

        $(#[$doc])*
        #[Scalar(name = $name)]
        impl ScalarType for $wrapper {
            fn parse(value: Value) -> InputValueResult<Self> {
                match &value {
                    Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                        (Some(x), _) => Ok($wrapper(<$inner>::new(x))),
                        (None, Some(_)) => Err(InputValueError::custom(concat!($unit, " must not be negative"))),
                        (None, None) => Err(InputValueError::custom(concat!("must be a whole number of ", $unit))),
                    },
                    _ => Err(InputValueError::expected_type(value)),
                }
            }

            fn to_value(&self) -> Value {
                Value::Number(self.0.get().into())
            }
        }

        impl From<$inner> for $wrapper {
            fn from(v: $inner) -> Self {
                $wrapper(v)
            }
        }
    };
}

quantity_scalar!(
    /// A whole number of boxes (allocation units), 0 or more.
    Boxes, domain::quantity::Boxes, "Boxes", "boxes"
);
quantity_scalar!(
    /// A whole number of vials.
    Vials, domain::quantity::Vials, "Vials", "vials"
);
quantity_scalar!(
    /// A whole number of doses.
    Doses, domain::quantity::Doses, "Doses", "doses"
);
quantity_scalar!(
    /// A whole number of pieces of an ancillary product (needles, syringes).
    Pieces, domain::quantity::Pieces, "Pieces", "pieces"
);

/// Whose allocation: `NATIONAL`, a 2-digit prefecture code or a 6-digit municipality code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationOwner(pub domain::allocation::AllocationOwner);

/// Whose allocation: `NATIONAL`, a 2-digit prefecture code or a 6-digit municipality code.
#[Scalar(name = "AllocationOwner")]
impl ScalarType for AllocationOwner {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => domain::allocation::AllocationOwner::parse(&s)
                .map(AllocationOwner)
                .map_err(InputValueError::custom),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(match self.0 {
            domain::allocation::AllocationOwner::National => "NATIONAL".to_owned(),
            other => other.key().to_owned(),
        })
    }
}

code_scalar!(
    /// A vaccine lot number as printed on the vial, e.g. FF3620: 2–20 characters of A-Z, 0-9
    /// and '-', not starting with '-'.
    LotNumber, codes::LotNumber, "LotNumber"
);

code_scalar!(
    /// A coupon number (券番号): exactly 10 digits, leading zeros kept; unique within its
    /// municipality.
    CouponNumber, codes::CouponNumber, "CouponNumber"
);
code_scalar!(
    /// The 18-digit line printed (OCR-B) and encoded (QR) on a coupon: 券種 (1) + 回数 (1, 1-9) +
    /// municipality code (6, check digit verified) + coupon number (10).
    CouponLine, codes::CouponLine, "CouponLine"
);
