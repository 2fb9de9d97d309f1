//! Dose records (接種記録): the vocabulary and the pure rules — what a dose input must look like,
//! the interval between doses, the conflicts a new dose can have with a person's earlier ones,
//! and how a dose is taken from a site's open vial. No I/O here; `doses` does that.
//!
//! Stock unit. The ledger counts vials; a dose takes one dose. Each balance row keeps
//! `open_doses`, the doses left in the vial opened last. A dose that finds no open dose opens a
//! vial: the vial leaves the stock as one ADMINISTERED entry (linked to the dose record) and
//! `open_doses` becomes doses-per-vial − 1; otherwise it draws from the open vial and notes the
//! entry that opened it. So the ledger's administered vials are the vials opened for doses, and
//! the doses left over at the end of a day are discarded with `open_doses` → 0, taking no vial
//! (the vial was booked when opened). [`LotDoses`] is the model the storage mirrors.
//!
//! Must not: read or write storage, or decide who may do what (`authz`).

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::codes::{CouponLine, CouponNumber, LotNumber, MunicipalityCode, ProductCode};
use crate::error::DomainError;
use crate::site::bounded_text;

vocabulary! {
    /// How a dose reached the system.
    Capture {
        /// The coupon's 18-digit line read by a tablet's camera or a QR reader.
        Scan = "SCAN",
        /// Typed in by hand.
        Manual = "MANUAL",
        /// Uploaded in a file.
        Csv = "CSV",
    }
}

vocabulary! {
    /// Whether a record counts.
    DoseStatus {
        /// A dose given.
        Active = "ACTIVE",
        /// Entered in error: kept, but counts nowhere and its dose went back to the stock.
        Voided = "VOIDED",
    }
}

/// Most records in one `recordDoses` call.
pub const MAX_BATCH: usize = 1_000;
/// Longest idempotency key, in characters.
pub const MAX_KEY: usize = 100;
/// Longest doctor's name (VRS's 接種医師名 is 20 characters).
pub const MAX_DOCTOR: usize = 20;
/// Longest reason or note, in characters.
pub const MAX_REASON: usize = 500;
/// Dose numbers run 1–9 (the coupon line's 回数 is one digit).
pub const MAX_DOSE_NUMBER: u8 = 9;

/// Stable reasons for refused doses (`extensions.reason`, and `reason` of a batch result).
pub mod reason {
    pub const DUPLICATE_DOSE: &str = "DUPLICATE_DOSE";
    pub const BEFORE_PREVIOUS_DOSE: &str = "BEFORE_PREVIOUS_DOSE";
    pub const INTERVAL_TOO_SHORT: &str = "INTERVAL_TOO_SHORT";
    pub const PERSON_NOT_FOUND: &str = "PERSON_NOT_FOUND";
    pub const PERSON_MOVED_OUT: &str = "PERSON_MOVED_OUT";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    pub const LOT_NOT_HELD: &str = "LOT_NOT_HELD";
    pub const LOT_EXPIRED: &str = "LOT_EXPIRED";
    pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    pub const ALREADY_VOIDED: &str = "ALREADY_VOIDED";
}

/// Whose dose: the scanned line, or the municipality and coupon number typed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonRef {
    Line(CouponLine),
    Coupon {
        municipality: MunicipalityCode,
        coupon: CouponNumber,
    },
}

impl PersonRef {
    pub fn municipality(&self) -> MunicipalityCode {
        match self {
            PersonRef::Line(l) => l.municipality(),
            PersonRef::Coupon { municipality, .. } => *municipality,
        }
    }
    pub fn coupon(&self) -> CouponNumber {
        match self {
            PersonRef::Line(l) => l.coupon(),
            PersonRef::Coupon { coupon, .. } => *coupon,
        }
    }
}

/// One dose as a site submits it (codes already parsed).
#[derive(Debug, Clone)]
pub struct DoseDraft {
    pub person: PersonRef,
    /// Required unless the coupon line carries it (回数); when both are given they must agree.
    pub dose_number: Option<u8>,
    pub administered_on: NaiveDate,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub doctor_name: String,
    pub capture: Capture,
    pub idempotency_key: String,
    /// The site's note on a dose given under the municipality's interval override.
    pub override_reason: Option<String>,
}

/// A draft that passed every check needing no stored data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedDose {
    pub municipality: MunicipalityCode,
    pub coupon: CouponNumber,
    pub dose_number: u8,
    pub administered_on: NaiveDate,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub doctor_name: String,
    pub capture: Capture,
    pub idempotency_key: String,
    pub override_reason: Option<String>,
    /// SHA-256 (hex) of the content, so a retry can be told from a reused key.
    pub request_hash: String,
}

/// Checks everything about a dose that needs no stored data; `field` is the input's path
/// (e.g. `records[3]`). The day must not be in the future (Japan's date).
pub fn check_draft(d: &DoseDraft, today: NaiveDate, field: &str) -> Result<CheckedDose, DomainError> {
    let f = |name: &str| format!("{field}.{name}");
    let key = d.idempotency_key.trim();
    if key.is_empty() || key.chars().count() > MAX_KEY || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            f("idempotencyKey"),
            format!("must be 1 to {MAX_KEY} printable ASCII characters without spaces"),
        ));
    }
    let dose_number = match (&d.person, d.dose_number) {
        (PersonRef::Line(l), Some(n)) if n != l.dose() => {
            return Err(DomainError::invalid(
                f("doseNumber"),
                format!("the coupon is for dose {}, not dose {n}", l.dose()),
            ));
        }
        (PersonRef::Line(l), _) => l.dose(),
        (PersonRef::Coupon { .. }, Some(n)) => n,
        (PersonRef::Coupon { .. }, None) => {
            return Err(DomainError::invalid(
                f("doseNumber"),
                "required when no coupon line is given",
            ));
        }
    };
    if !(1..=MAX_DOSE_NUMBER).contains(&dose_number) {
        return Err(DomainError::invalid(
            f("doseNumber"),
            format!("must be 1 to {MAX_DOSE_NUMBER}"),
        ));
    }
    if d.administered_on > today {
        return Err(DomainError::invalid(
            f("administeredOn"),
            "is in the future; record a dose once it has been given",
        ));
    }
    let doctor_name = bounded_text(&d.doctor_name, 1, MAX_DOCTOR, &f("doctorName"))?;
    let override_reason = match &d.override_reason {
        Some(r) if !r.trim().is_empty() => Some(bounded_text(r, 1, MAX_REASON, &f("overrideReason"))?),
        _ => None,
    };
    let mut c = CheckedDose {
        municipality: d.person.municipality(),
        coupon: d.person.coupon(),
        dose_number,
        administered_on: d.administered_on,
        product: d.product.clone(),
        lot: d.lot.clone(),
        doctor_name,
        capture: d.capture,
        idempotency_key: key.to_owned(),
        override_reason,
        request_hash: String::new(),
    };
    c.request_hash = request_hash(&c);
    Ok(c)
}

/// The content a retry must repeat exactly: everything but the key itself (which finds the
/// original). Fields are separated by a byte no field can hold.
fn request_hash(c: &CheckedDose) -> String {
    let content = [
        c.municipality.as_str(),
        c.coupon.as_str(),
        &c.dose_number.to_string(),
        &c.administered_on.to_string(),
        c.product.as_str(),
        c.lot.as_str(),
        &c.doctor_name,
        c.capture.as_str(),
        c.override_reason.as_deref().unwrap_or(""),
    ]
    .join("\u{1f}");
    let digest = ring::digest::digest(&ring::digest::SHA256, content.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The minimum interval before a dose: calendar months (same day of month, or the 1st of the
/// next month when that day does not exist), then days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalRule {
    pub min_days: u32,
    pub min_months: u32,
}

/// `months` calendar months after `from`, the way municipalities count "3 months after": the
/// same day of the month, or the 1st of the following month when that day does not exist
/// (domain-facts §7, Kyoto city), e.g. 2022-11-30 + 3 months = 2023-03-01.
pub fn add_months(from: NaiveDate, months: u32) -> Option<NaiveDate> {
    let first = from.with_day(1)?.checked_add_months(Months::new(months))?;
    match first.with_day(from.day()) {
        Some(d) => Some(d),
        None => first.checked_add_months(Months::new(1)),
    }
}

impl IntervalRule {
    /// The earliest day a dose may follow one given on `previous`.
    pub fn earliest_after(&self, previous: NaiveDate) -> Option<NaiveDate> {
        add_months(previous, self.min_months)?.checked_add_days(Days::new(u64::from(self.min_days)))
    }
}

/// An earlier (ACTIVE) dose of the same person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierDose {
    pub dose_number: u8,
    pub administered_on: NaiveDate,
}

/// Checks a new dose against the person's earlier ACTIVE doses: the same dose number twice, a
/// date before the previous dose (the highest dose number below this one), and — unless the
/// municipality recorded an override for this person and dose (`override_id`) — an interval
/// shorter than the product's minimum (`rule`: none means no minimum is known). Returns the
/// override the dose actually needed (`None` when its interval was long enough without one),
/// which is what its record notes.
pub fn check_conflicts(
    dose_number: u8,
    administered_on: NaiveDate,
    earlier: &[EarlierDose],
    rule: Option<IntervalRule>,
    override_id: Option<i64>,
) -> Result<Option<i64>, DomainError> {
    if earlier.iter().any(|e| e.dose_number == dose_number) {
        return Err(DomainError::Refused {
            reason: reason::DUPLICATE_DOSE,
            message: format!("dose {dose_number} of this person is already recorded"),
        });
    }
    if let Some(later) = earlier
        .iter()
        .filter(|e| e.dose_number > dose_number)
        .min_by_key(|e| e.dose_number)
        && later.administered_on < administered_on
    {
        return Err(DomainError::Refused {
            reason: reason::BEFORE_PREVIOUS_DOSE,
            message: format!(
                "dose {dose_number} would come after dose {} ({}) of this person",
                later.dose_number, later.administered_on
            ),
        });
    }
    let Some(previous) = earlier
        .iter()
        .filter(|e| e.dose_number < dose_number)
        .max_by_key(|e| e.dose_number)
    else {
        return Ok(None);
    };
    if administered_on < previous.administered_on {
        return Err(DomainError::Refused {
            reason: reason::BEFORE_PREVIOUS_DOSE,
            message: format!(
                "{administered_on} is before dose {} of this person ({})",
                previous.dose_number, previous.administered_on
            ),
        });
    }
    if let Some(rule) = rule
        && let Some(earliest) = rule.earliest_after(previous.administered_on)
        && administered_on < earliest
    {
        if override_id.is_some() {
            return Ok(override_id);
        }
        return Err(DomainError::Refused {
            reason: reason::INTERVAL_TOO_SHORT,
            message: format!(
                "dose {dose_number} may be given from {earliest} (the minimum interval after dose {} on {}); \
                 the person's municipality can allow an earlier dose with a recorded reason",
                previous.dose_number, previous.administered_on
            ),
        });
    }
    Ok(None)
}

/// The doses of one site × product × lot: whole vials on hand and the doses left in the open
/// vial. The model of a balance row's `on_hand` and `open_doses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotDoses {
    pub on_hand: u64,
    pub open_doses: u64,
    pub doses_per_vial: u64,
}

/// What taking one dose did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// From the open vial.
    FromOpenVial,
    /// A vial was opened (one vial ADMINISTERED).
    OpenedVial,
}

/// What giving one dose back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveBack {
    /// Into the open vial.
    IntoOpenVial,
    /// The open vial is whole again: its opening is reversed, the vial is back on hand.
    VialBack,
}

impl LotDoses {
    /// Doses that can still be given: the open vial's and every whole vial's.
    pub fn available(&self) -> u64 {
        self.open_doses + self.on_hand * self.doses_per_vial
    }

    /// Takes one dose, or `None` when nothing is left.
    pub fn take(&mut self) -> Option<Draw> {
        if self.open_doses > 0 {
            self.open_doses -= 1;
            Some(Draw::FromOpenVial)
        } else if self.on_hand > 0 && self.doses_per_vial > 0 {
            self.on_hand -= 1;
            self.open_doses = self.doses_per_vial - 1;
            Some(Draw::OpenedVial)
        } else {
            None
        }
    }

    /// Gives a dose back (a voided record). When the open vial holds all its doses again and
    /// `can_close` (its opening entry is known and not yet reversed), the vial goes back on hand.
    pub fn give_back(&mut self, can_close: bool) -> GiveBack {
        self.open_doses += 1;
        if can_close && self.open_doses >= self.doses_per_vial {
            self.open_doses -= self.doses_per_vial;
            self.on_hand += 1;
            GiveBack::VialBack
        } else {
            GiveBack::IntoOpenVial
        }
    }

    /// The end-of-day write-off: the open vial's doses are discarded; no vial is taken.
    pub fn discard_open(&mut self) -> u64 {
        std::mem::take(&mut self.open_doses)
    }
}

/// A lot may be used through its expiry date: a dose given on a day after it is refused.
pub fn check_lot_date(expiry: NaiveDate, administered_on: NaiveDate, lot: &LotNumber) -> Result<(), DomainError> {
    if expiry < administered_on {
        Err(DomainError::Refused {
            reason: reason::LOT_EXPIRED,
            message: format!("lot {lot} expired on {expiry}, before the dose was given"),
        })
    } else {
        Ok(())
    }
}

/// The longest window of a count query, in days.
pub const MAX_COUNT_DAYS: i64 = 366;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn draft() -> DoseDraft {
        DoseDraft {
            person: PersonRef::Line("121310160000012345".parse().expect("line")),
            dose_number: None,
            administered_on: d("2026-11-20"),
            product: "comirnaty".parse().expect("p"),
            lot: "FF3620".parse().expect("lot"),
            doctor_name: " 山田太郎 ".into(),
            capture: Capture::Scan,
            idempotency_key: "tab-1-0001".into(),
            override_reason: None,
        }
    }

    #[test]
    fn a_draft_takes_its_dose_number_from_the_line() {
        let c = check_draft(&draft(), d("2026-11-27"), "input").expect("valid");
        assert_eq!(c.dose_number, 2);
        assert_eq!(c.municipality.as_str(), "131016");
        assert_eq!(c.coupon.as_str(), "0000012345");
        assert_eq!(c.doctor_name, "山田太郎");
        assert_eq!(c.request_hash.len(), 64);
    }

    #[test]
    fn bad_drafts_name_the_field() {
        type Change = fn(&mut DoseDraft);
        let cases: &[(Change, &str)] = &[
            (|x| x.idempotency_key = "".into(), "input.idempotencyKey"),
            (|x| x.idempotency_key = "has space".into(), "input.idempotencyKey"),
            (|x| x.idempotency_key = "k".repeat(101), "input.idempotencyKey"),
            (|x| x.dose_number = Some(3), "input.doseNumber"),
            (
                |x| {
                    x.person = PersonRef::Coupon {
                        municipality: "131016".parse().expect("m"),
                        coupon: "0000012345".parse().expect("c"),
                    }
                },
                "input.doseNumber",
            ),
            (
                |x| {
                    x.person = PersonRef::Coupon {
                        municipality: "131016".parse().expect("m"),
                        coupon: "0000012345".parse().expect("c"),
                    };
                    x.dose_number = Some(0);
                },
                "input.doseNumber",
            ),
            (|x| x.administered_on = d("2026-11-28"), "input.administeredOn"),
            (|x| x.doctor_name = "  ".into(), "input.doctorName"),
            (|x| x.doctor_name = "あ".repeat(21), "input.doctorName"),
            (|x| x.override_reason = Some("x".repeat(501)), "input.overrideReason"),
        ];
        for (change, field) in cases {
            let mut x = draft();
            change(&mut x);
            match check_draft(&x, d("2026-11-27"), "input") {
                Err(DomainError::Invalid { field: f, .. }) => assert_eq!(&f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_hash_changes_with_the_content_not_the_key() {
        let a = check_draft(&draft(), d("2026-11-27"), "input").expect("valid");
        let mut other_key = draft();
        other_key.idempotency_key = "tab-1-0002".into();
        let b = check_draft(&other_key, d("2026-11-27"), "input").expect("valid");
        assert_eq!(a.request_hash, b.request_hash);
        let mut other_lot = draft();
        other_lot.lot = "FF3621".parse().expect("lot");
        let c = check_draft(&other_lot, d("2026-11-27"), "input").expect("valid");
        assert_ne!(a.request_hash, c.request_hash);
    }

    #[test]
    fn months_follow_the_calendar() {
        for (from, n, want) in [
            ("2022-01-15", 3, "2022-04-15"),
            ("2022-11-30", 3, "2023-03-01"),
            ("2023-11-29", 3, "2024-02-29"),
            ("2022-11-29", 3, "2023-03-01"),
            ("2022-08-31", 1, "2022-10-01"),
            ("2022-05-31", 0, "2022-05-31"),
        ] {
            assert_eq!(add_months(d(from), n), Some(d(want)), "{from} + {n}");
        }
    }

    #[test]
    fn interval_rules_in_days_and_months() {
        // Comirnaty: Thursday → Tuesday three weeks later (day 19) is the earliest.
        let pfizer = IntervalRule {
            min_days: 19,
            min_months: 0,
        };
        assert_eq!(pfizer.earliest_after(d("2021-05-06")), Some(d("2021-05-25")));
        let booster = IntervalRule {
            min_days: 0,
            min_months: 3,
        };
        assert_eq!(booster.earliest_after(d("2022-11-30")), Some(d("2023-03-01")));
    }

    fn e(n: u8, on: &str) -> EarlierDose {
        EarlierDose {
            dose_number: n,
            administered_on: d(on),
        }
    }

    fn reason_of<T>(r: Result<T, DomainError>) -> Option<&'static str> {
        match r {
            Ok(_) => None,
            Err(DomainError::Refused { reason, .. }) => Some(reason),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn conflicts_table() {
        let rule = Some(IntervalRule {
            min_days: 19,
            min_months: 0,
        });
        let one = [e(1, "2021-05-06")];
        // (dose number, day, earlier doses, overridden, refusal reason)
        type Case<'a> = (u8, &'a str, &'a [EarlierDose], bool, Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (1, "2021-05-06", &[], false, None),
            (1, "2021-05-07", &one, false, Some(reason::DUPLICATE_DOSE)),
            (2, "2021-05-25", &one, false, None),
            (2, "2021-05-25", &one, true, None),
            (2, "2021-05-24", &one, false, Some(reason::INTERVAL_TOO_SHORT)),
            (2, "2021-05-24", &one, true, None),
            (2, "2021-05-01", &one, true, Some(reason::BEFORE_PREVIOUS_DOSE)),
            // A dose 1 recorded late, after dose 2 is on record, must come before it.
            (
                1,
                "2021-05-30",
                &[e(2, "2021-05-25")],
                false,
                Some(reason::BEFORE_PREVIOUS_DOSE),
            ),
            (1, "2021-05-01", &[e(2, "2021-05-25")], false, None),
            // Dose 3 follows dose 2, not dose 1.
            (
                3,
                "2021-06-01",
                &[e(1, "2021-05-06"), e(2, "2021-05-25")],
                false,
                Some(reason::INTERVAL_TOO_SHORT),
            ),
            (3, "2021-06-13", &[e(1, "2021-05-06"), e(2, "2021-05-25")], false, None),
        ];
        const OVERRIDE: i64 = 7;
        for (n, on, earlier, overridden, want) in cases {
            match check_conflicts(*n, d(on), earlier, rule, overridden.then_some(OVERRIDE)) {
                Err(e) => assert_eq!(reason_of::<()>(Err(e)), *want, "dose {n} on {on}"),
                Ok(used) => {
                    assert_eq!(*want, None, "dose {n} on {on}");
                    // The override counts as used exactly when the interval alone is too short.
                    let short_alone =
                        reason_of(check_conflicts(*n, d(on), earlier, rule, None)) == Some(reason::INTERVAL_TOO_SHORT);
                    assert_eq!(used, short_alone.then_some(OVERRIDE), "dose {n} on {on}");
                }
            }
        }
        assert!(matches!(
            check_conflicts(2, d("2021-05-07"), &one, None, Some(OVERRIDE)),
            Ok(None)
        ));
    }

    #[test]
    fn a_vial_is_opened_only_when_the_open_one_is_empty() {
        let mut lot = LotDoses {
            on_hand: 2,
            open_doses: 0,
            doses_per_vial: 6,
        };
        assert_eq!(lot.take(), Some(Draw::OpenedVial));
        assert_eq!((lot.on_hand, lot.open_doses), (1, 5));
        for _ in 0..5 {
            assert_eq!(lot.take(), Some(Draw::FromOpenVial));
        }
        assert_eq!(lot.take(), Some(Draw::OpenedVial));
        assert_eq!(lot.discard_open(), 5);
        assert_eq!(lot.take(), None);
        assert_eq!(lot.available(), 0);
    }

    #[test]
    fn giving_every_dose_back_puts_the_vial_back() {
        let mut lot = LotDoses {
            on_hand: 1,
            open_doses: 0,
            doses_per_vial: 6,
        };
        lot.take();
        lot.take();
        assert_eq!(lot.give_back(true), GiveBack::IntoOpenVial);
        assert_eq!(lot.give_back(true), GiveBack::VialBack);
        assert_eq!((lot.on_hand, lot.open_doses), (1, 0));
    }

    proptest! {
        /// Doses are conserved: whatever sequence of takes, give-backs and write-offs, the doses
        /// available plus those given plus those discarded equal what the vials held.
        #[test]
        fn doses_are_conserved(vials in 0u64..20, dpv in 1u64..12, ops in proptest::collection::vec(0u8..10, 0..200)) {
            let mut lot = LotDoses { on_hand: vials, open_doses: 0, doses_per_vial: dpv };
            let (mut given, mut discarded) = (0u64, 0u64);
            for op in ops {
                match op {
                    0..=6 => if lot.take().is_some() { given += 1 },
                    7 | 8 => if given > 0 { lot.give_back(true); given -= 1 },
                    _ => discarded += lot.discard_open(),
                }
                prop_assert!(lot.open_doses < dpv);
                prop_assert_eq!(lot.available() + given + discarded, vials * dpv);
            }
        }
    }
}
