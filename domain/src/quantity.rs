//! Typed quantities: boxes (the allocation unit), vials and doses can never be mixed up, and
//! every conversion between them goes through a product's [`Packaging`] — here, and nowhere
//! else. Arithmetic is checked: a subtraction that would go negative is an error, not a wrap.

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

use serde::{Deserialize, Serialize};

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            pub const ZERO: $name = $name(0);

            pub const fn new(n: u64) -> Self {
                $name(n)
            }

            pub const fn get(self) -> u64 {
                self.0
            }

            /// `None` when the result would be negative.
            pub fn checked_sub(self, other: $name) -> Option<$name> {
                self.0.checked_sub(other.0).map($name)
            }

            pub fn checked_add(self, other: $name) -> Option<$name> {
                self.0.checked_add(other.0).map($name)
            }

            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
        }

        impl Add for $name {
            type Output = $name;
            /// Saturates instead of overflowing (no real stock reaches u64::MAX).
            fn add(self, other: $name) -> $name {
                $name(self.0.saturating_add(other.0))
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                iter.fold($name::ZERO, Add::add)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
    };
}

quantity!(
    /// Allocation units (boxes): what the state allocates and wholesalers ship.
    Boxes,
    "boxes"
);
quantity!(
    /// Vials: what a site holds, transfers to satellites and counts in stock.
    Vials,
    "vials"
);
quantity!(
    /// Doses: what is administered to people.
    Doses,
    "doses"
);
quantity!(
    /// Pieces of an ancillary product (needles, syringes).
    Pieces,
    "pieces"
);

/// How a vaccine is packed. Both factors are at least 1 (built only by [`Packaging::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packaging {
    doses_per_vial: u32,
    vials_per_box: u32,
}

/// Why a packaging or conversion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("must be at least 1")]
    Zero,
    #[error("too large")]
    Overflow,
}

impl Packaging {
    pub fn new(doses_per_vial: u32, vials_per_box: u32) -> Result<Self, QuantityError> {
        if doses_per_vial == 0 || vials_per_box == 0 {
            return Err(QuantityError::Zero);
        }
        Ok(Packaging {
            doses_per_vial,
            vials_per_box,
        })
    }

    pub fn doses_per_vial(&self) -> u32 {
        self.doses_per_vial
    }

    pub fn vials_per_box(&self) -> u32 {
        self.vials_per_box
    }

    pub fn vials_in(&self, boxes: Boxes) -> Result<Vials, QuantityError> {
        boxes
            .0
            .checked_mul(u64::from(self.vials_per_box))
            .map(Vials)
            .ok_or(QuantityError::Overflow)
    }

    pub fn doses_in(&self, vials: Vials) -> Result<Doses, QuantityError> {
        vials
            .0
            .checked_mul(u64::from(self.doses_per_vial))
            .map(Doses)
            .ok_or(QuantityError::Overflow)
    }

    pub fn doses_in_boxes(&self, boxes: Boxes) -> Result<Doses, QuantityError> {
        self.doses_in(self.vials_in(boxes)?)
    }

    /// Whole boxes in a number of vials, and the vials left over.
    pub fn whole_boxes(&self, vials: Vials) -> (Boxes, Vials) {
        let per = u64::from(self.vials_per_box);
        (Boxes(vials.0 / per), Vials(vials.0 % per))
    }

    /// Vials that must be opened to give a number of doses (a started vial counts whole).
    pub fn vials_for(&self, doses: Doses) -> Vials {
        Vials(doses.0.div_ceil(u64::from(self.doses_per_vial)))
    }
}

/// An ancillary product's count per vial of a vaccine (e.g. 6 low-dead-space syringes per
/// Comirnaty vial).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerVial(u32);

impl PerVial {
    pub fn new(n: u32) -> Result<Self, QuantityError> {
        if n == 0 {
            Err(QuantityError::Zero)
        } else {
            Ok(PerVial(n))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn pieces_for(self, vials: Vials) -> Result<Pieces, QuantityError> {
        vials
            .0
            .checked_mul(u64::from(self.0))
            .map(Pieces)
            .ok_or(QuantityError::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comirnaty_box_is_1170_doses() {
        let p = Packaging::new(6, 195).expect("packaging");
        assert_eq!(p.vials_in(Boxes::new(1)), Ok(Vials::new(195)));
        assert_eq!(p.doses_in_boxes(Boxes::new(10_000)), Ok(Doses::new(11_700_000)));
        assert_eq!(p.whole_boxes(Vials::new(400)), (Boxes::new(2), Vials::new(10)));
        assert_eq!(p.vials_for(Doses::new(7)), Vials::new(2));
        assert_eq!(p.vials_for(Doses::new(6)), Vials::new(1));
        assert_eq!(p.vials_for(Doses::ZERO), Vials::ZERO);
        assert_eq!(
            PerVial::new(6).and_then(|n| n.pieces_for(Vials::new(195))),
            Ok(Pieces::new(1170))
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(Packaging::new(0, 195), Err(QuantityError::Zero));
        assert_eq!(Packaging::new(6, 0), Err(QuantityError::Zero));
        assert_eq!(PerVial::new(0), Err(QuantityError::Zero));
        let p = Packaging::new(u32::MAX, u32::MAX).expect("packaging");
        assert_eq!(p.doses_in_boxes(Boxes::new(u64::MAX)), Err(QuantityError::Overflow));
        assert_eq!(Vials::new(3).checked_sub(Vials::new(4)), None);
        assert_eq!(Vials::new(3).checked_sub(Vials::new(3)), Some(Vials::ZERO));
        assert_eq!(Doses::new(2).to_string(), "2 doses");
    }

    proptest! {
        #[test]
        fn boxes_round_trip_through_vials(dpv in 1u32..20, vpb in 1u32..500, boxes in 0u64..1_000_000) {
            let p = Packaging::new(dpv, vpb).expect("packaging");
            let vials = p.vials_in(Boxes::new(boxes)).expect("fits");
            prop_assert_eq!(p.whole_boxes(vials), (Boxes::new(boxes), Vials::ZERO));
        }

        #[test]
        fn opened_vials_cover_the_doses(dpv in 1u32..20, doses in 0u64..10_000_000) {
            let p = Packaging::new(dpv, 1).expect("packaging");
            let vials = p.vials_for(Doses::new(doses));
            let covered = p.doses_in(vials).expect("fits").get();
            prop_assert!(covered >= doses);
            prop_assert!(covered - doses < u64::from(dpv));
        }

        #[test]
        fn sum_matches_u64_sum(xs in proptest::collection::vec(0u64..1_000_000, 0..50)) {
            let total: Vials = xs.iter().map(|x| Vials::new(*x)).sum();
            prop_assert_eq!(total.get(), xs.iter().sum::<u64>());
        }
    }
}
