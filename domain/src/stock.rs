//! Site stock: the vocabulary of the ledger and its pure rules. No I/O here; `ledger` does that.
//!
//! Stock is an append-only ledger per site × product × lot. Every movement is an entry whose
//! signed quantity (vials; positive in, negative out) is fixed by its kind; the balance is the
//! sum of the entries and can never go negative. A mistake is corrected by a REVERSED entry that
//! cancels an earlier one, never by editing it. [`Balance::apply`] is the model the storage
//! mirrors: the balance row's on-hand figure and its per-kind counters change exactly as it says,
//! and it refuses what the storage refuses (a withdrawal beyond what is on hand).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::codes::{LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use crate::error::DomainError;
use crate::quantity::Vials;
use crate::site::{ColdChainRole, SiteStatus};

vocabulary! {
    /// What a ledger entry records.
    EntryKind {
        /// Vials arrived at the site (from a delivery, or recorded without one).
        Received = "RECEIVED",
        /// Vials used for vaccination.
        Administered = "ADMINISTERED",
        /// Vials discarded, with a [`WasteReason`].
        Wasted = "WASTED",
        /// Vials discarded because the lot passed its expiry date.
        Expired = "EXPIRED",
        /// Vials a base site passed to one of its satellites.
        TransferredOut = "TRANSFERRED_OUT",
        /// Vials a satellite received from its base site.
        TransferredIn = "TRANSFERRED_IN",
        /// The difference a physical count (stock report) found against the ledger.
        Adjusted = "ADJUSTED",
        /// Cancels an earlier entry.
        Reversed = "REVERSED",
    }
}

vocabulary! {
    /// Why vials were discarded (廃棄理由).
    WasteReason {
        /// Dropped, cracked or otherwise damaged.
        BrokenVial = "BROKEN_VIAL",
        /// Kept outside its temperature range (freezer failure, transport).
        TemperatureExcursion = "TEMPERATURE_EXCURSION",
        /// Doses left in an opened vial at the end of the day.
        LeftoverDoses = "LEFTOVER_DOSES",
        /// Diluted or drawn up wrongly.
        PreparationError = "PREPARATION_ERROR",
        /// Anything else; a note is required.
        Other = "OTHER",
    }
}

/// The running totals a balance row keeps next to its on-hand figure, one per kind of movement
/// (a reversal counts against the kind it reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    Received,
    Administered,
    Wasted,
    Expired,
    TransferredIn,
    TransferredOut,
    /// Signed: net of all adjustments.
    Adjusted,
}

impl EntryKind {
    /// The sign of a kind with a fixed direction: +1 in, −1 out; `None` for ADJUSTED and
    /// REVERSED, whose sign comes from the count and from the reversed entry.
    pub fn sign(self) -> Option<i64> {
        match self {
            EntryKind::Received | EntryKind::TransferredIn => Some(1),
            EntryKind::Administered | EntryKind::Wasted | EntryKind::Expired | EntryKind::TransferredOut => Some(-1),
            EntryKind::Adjusted | EntryKind::Reversed => None,
        }
    }

    /// The counter an entry of this kind moves; `None` for REVERSED (it moves its original's).
    pub fn counter(self) -> Option<Counter> {
        Some(match self {
            EntryKind::Received => Counter::Received,
            EntryKind::Administered => Counter::Administered,
            EntryKind::Wasted => Counter::Wasted,
            EntryKind::Expired => Counter::Expired,
            EntryKind::TransferredIn => Counter::TransferredIn,
            EntryKind::TransferredOut => Counter::TransferredOut,
            EntryKind::Adjusted => Counter::Adjusted,
            EntryKind::Reversed => return None,
        })
    }
}

/// The most vials one entry may move: about 5,000 boxes of Comirnaty, far beyond any real
/// delivery to one site, so a typo of a few extra digits is refused instead of booked.
pub const MAX_ENTRY_VIALS: u64 = 1_000_000;

/// A quantity of one movement: 1 to [`MAX_ENTRY_VIALS`] vials.
pub fn movement_quantity(vials: Vials, field: &str) -> Result<Vials, DomainError> {
    match vials.get() {
        0 => Err(DomainError::invalid(field, "must be at least 1 vial")),
        n if n > MAX_ENTRY_VIALS => Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_ENTRY_VIALS} vials"),
        )),
        _ => Ok(vials),
    }
}

/// How an entry changes its balance row: the on-hand delta and one counter's delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// Signed vials: the entry's quantity.
    pub on_hand: i64,
    pub counter: Counter,
    /// How much the counter moves (signed; a reversal moves its original's counter back).
    pub counter_delta: i64,
}

impl Effect {
    /// The effect of a movement of a fixed-direction kind.
    pub fn of(kind: EntryKind, vials: Vials) -> Option<Effect> {
        let sign = kind.sign()?;
        let n = i64::try_from(vials.get()).ok()?;
        Some(Effect {
            on_hand: sign * n,
            counter: kind.counter()?,
            counter_delta: n,
        })
    }

    /// The ADJUSTED effect of a count: counted minus what the ledger says; `None` when equal.
    pub fn adjustment(ledger: Vials, counted: Vials) -> Option<Effect> {
        let diff = i64::try_from(counted.get()).ok()? - i64::try_from(ledger.get()).ok()?;
        (diff != 0).then_some(Effect {
            on_hand: diff,
            counter: Counter::Adjusted,
            counter_delta: diff,
        })
    }

    /// The effect of reversing an entry of `kind` with signed `quantity`: everything it did,
    /// undone.
    pub fn reversal(kind: EntryKind, quantity: i64) -> Option<Effect> {
        let counter = kind.counter()?;
        let counter_delta = match counter {
            Counter::Adjusted => -quantity,
            _ => -quantity.abs(),
        };
        Some(Effect {
            on_hand: -quantity,
            counter,
            counter_delta,
        })
    }
}

/// A balance of one site × product × lot: what is on hand and the running totals. The model of
/// a `stock_balances` row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub on_hand: Vials,
    pub received: Vials,
    pub administered: Vials,
    pub wasted: Vials,
    pub expired: Vials,
    pub transferred_in: Vials,
    pub transferred_out: Vials,
    /// Net of all adjustments, in vials (negative when counts found less than the ledger).
    pub adjusted: i64,
}

/// Why a movement cannot be applied to a balance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    #[error("only {on_hand} on hand")]
    Insufficient { on_hand: Vials },
    #[error("a running total would go negative")]
    CounterUnderflow,
}

impl Balance {
    /// The balance after an entry, or why not: on hand never goes below zero.
    pub fn apply(self, e: Effect) -> Result<Balance, BalanceError> {
        let on_hand =
            add_signed(self.on_hand, e.on_hand).ok_or(BalanceError::Insufficient { on_hand: self.on_hand })?;
        let mut next = Balance { on_hand, ..self };
        if e.counter == Counter::Adjusted {
            next.adjusted = self
                .adjusted
                .checked_add(e.counter_delta)
                .ok_or(BalanceError::CounterUnderflow)?;
            return Ok(next);
        }
        let slot = match e.counter {
            Counter::Received => &mut next.received,
            Counter::Administered => &mut next.administered,
            Counter::Wasted => &mut next.wasted,
            Counter::Expired => &mut next.expired,
            Counter::TransferredIn => &mut next.transferred_in,
            Counter::TransferredOut => &mut next.transferred_out,
            Counter::Adjusted => unreachable!("handled above"),
        };
        *slot = add_signed(*slot, e.counter_delta).ok_or(BalanceError::CounterUnderflow)?;
        Ok(next)
    }

    /// The identity every balance satisfies: on hand = in − out, counted per kind.
    pub fn is_consistent(&self) -> bool {
        let inflow = i128::from(self.received.get()) + i128::from(self.transferred_in.get());
        let outflow = i128::from(self.administered.get())
            + i128::from(self.wasted.get())
            + i128::from(self.expired.get())
            + i128::from(self.transferred_out.get());
        inflow - outflow + i128::from(self.adjusted) == i128::from(self.on_hand.get())
    }
}

fn add_signed(v: Vials, delta: i64) -> Option<Vials> {
    if delta >= 0 {
        v.checked_add(Vials::new(delta.unsigned_abs()))
    } else {
        v.checked_sub(Vials::new(delta.unsigned_abs()))
    }
}

/// What the reversal rule looks at in the entry to be reversed.
#[derive(Debug, Clone, Copy)]
pub struct ReversalFacts {
    pub id: i64,
    pub kind: EntryKind,
    pub quantity: i64,
    /// The delivery a RECEIVED entry booked, if any.
    pub delivery: Option<i64>,
    /// The entry that already reversed this one, if any.
    pub reversed_by: Option<i64>,
}

/// Whether an entry may be reversed, and the effect of its reversal. A reversal is never
/// reversed (record the movement again instead); an entry is reversed at most once; a transfer
/// is reversed from its TRANSFERRED_OUT side (both sides go together); a receipt booked from a
/// delivery is corrected on the delivery, so the delivery's accepted figure stays true.
pub fn check_reversal(e: &ReversalFacts) -> Result<Effect, DomainError> {
    if let Some(by) = e.reversed_by {
        return Err(DomainError::Conflict(format!(
            "entry {} is already reversed by entry {by}",
            e.id
        )));
    }
    match e.kind {
        EntryKind::Reversed => Err(DomainError::invalid(
            "entry",
            "a reversal cannot be reversed; record the movement again instead",
        )),
        EntryKind::TransferredIn => Err(DomainError::invalid(
            "entry",
            "a transfer is reversed by its base site, from the TRANSFERRED_OUT entry",
        )),
        EntryKind::Received if e.delivery.is_some() => Err(DomainError::invalid(
            "entry",
            "a receipt booked from a delivery is corrected on the delivery, not reversed",
        )),
        kind => Effect::reversal(kind, e.quantity)
            .ok_or_else(|| DomainError::Corrupt(format!("entry {} has no counter", e.id))),
    }
}

/// What the transfer rule looks at in each site.
#[derive(Debug, Clone, Copy)]
pub struct TransferParty<'a> {
    pub code: &'a SiteCode,
    pub cold_chain: &'a ColdChainRole,
    pub status: SiteStatus,
    pub products: &'a BTreeSet<ProductCode>,
}

/// A base site (基本型) passes vials only to its own satellites (サテライト型), both active,
/// of a product the satellite handles, from a lot that has not expired.
pub fn check_transfer(
    from: &TransferParty<'_>,
    to: &TransferParty<'_>,
    product: &ProductCode,
    expiry: NaiveDate,
    today: NaiveDate,
) -> Result<(), DomainError> {
    check_transfer_parties(from, to, product)?;
    check_not_expired(expiry, today, "input.lot")
}

/// The part of [`check_transfer`] about the two sites (checked before the lot is looked at, so
/// a transfer between the wrong sites is refused for that reason).
pub fn check_transfer_parties(
    from: &TransferParty<'_>,
    to: &TransferParty<'_>,
    product: &ProductCode,
) -> Result<(), DomainError> {
    if from.code == to.code {
        return Err(DomainError::invalid("input.to", "a site cannot transfer to itself"));
    }
    if !matches!(from.cold_chain, ColdChainRole::Base { .. }) {
        return Err(DomainError::invalid(
            "input.from",
            format!(
                "site {} is not a base site; only base sites transfer to satellites",
                from.code
            ),
        ));
    }
    if from.status != SiteStatus::Active {
        return Err(DomainError::invalid(
            "input.from",
            format!("site {} is withdrawn", from.code),
        ));
    }
    if to.cold_chain.base_site() != Some(from.code) {
        return Err(DomainError::invalid(
            "input.to",
            format!("site {} is not a satellite of {}", to.code, from.code),
        ));
    }
    if to.status != SiteStatus::Active {
        return Err(DomainError::invalid(
            "input.to",
            format!("site {} is withdrawn", to.code),
        ));
    }
    if !to.products.contains(product) {
        return Err(DomainError::invalid(
            "input.product",
            format!("site {} does not handle {product}", to.code),
        ));
    }
    Ok(())
}

/// A lot may be used or passed on through its expiry date, not after.
pub fn check_not_expired(expiry: NaiveDate, today: NaiveDate, field: &str) -> Result<(), DomainError> {
    if expiry < today {
        Err(DomainError::invalid(
            field,
            format!("the lot expired on {expiry}; record it as EXPIRED instead"),
        ))
    } else {
        Ok(())
    }
}

/// A receipt is dated on or before today, of a lot that had not expired when it arrived.
pub fn check_receipt(expiry: NaiveDate, received_on: NaiveDate, today: NaiveDate) -> Result<(), DomainError> {
    if received_on > today {
        return Err(DomainError::invalid("input.receivedOn", "must not be in the future"));
    }
    if expiry < received_on {
        return Err(DomainError::invalid(
            "input.expiryDate",
            format!("the lot had expired ({expiry}) when it was received"),
        ));
    }
    Ok(())
}

/// An EXPIRED entry is for a lot past its expiry date; vials spoiled earlier are WASTED.
pub fn check_expired(expiry: NaiveDate, today: NaiveDate) -> Result<(), DomainError> {
    if expiry < today {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "input.lot",
            format!("the lot is good through {expiry}; record spoiled vials as WASTED"),
        ))
    }
}

/// A waste record says why; OTHER needs a note saying what happened.
pub fn check_waste(reason: WasteReason, note: &str) -> Result<(), DomainError> {
    if reason == WasteReason::Other && note.trim().is_empty() {
        Err(DomainError::invalid(
            "input.note",
            "say what happened when the reason is OTHER",
        ))
    } else {
        Ok(())
    }
}

/// Whole days the stock on hand lasts at the average daily use over the last `window_days`
/// days (rounded down); `None` when nothing was used, i.e. it lasts indefinitely at that rate.
pub fn days_of_supply(on_hand: Vials, used: Vials, window_days: u32) -> Option<u64> {
    if used.is_zero() || window_days == 0 {
        return None;
    }
    let days = u128::from(on_hand.get()) * u128::from(window_days) / u128::from(used.get());
    Some(u64::try_from(days).unwrap_or(u64::MAX))
}

/// The longest recent-use window a caller may ask for, in days.
pub const MAX_RECENT_DAYS: u32 = 90;

/// A recent-use window: 1 to [`MAX_RECENT_DAYS`] days ending today.
pub fn recent_window(days: i64, field: &str) -> Result<u32, DomainError> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_RECENT_DAYS).contains(d))
        .ok_or_else(|| DomainError::invalid(field, format!("must be 1-{MAX_RECENT_DAYS} days")))
}

/// Today's date in Japan (Asia/Tokyo is UTC+9 all year: no daylight saving).
pub fn today_in_japan() -> NaiveDate {
    japan_date(Utc::now())
}

pub fn japan_date(t: DateTime<Utc>) -> NaiveDate {
    let jst = FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset");
    t.with_timezone(&jst).date_naive()
}

/// The first day of a window of `days` days ending `today` (inclusive).
pub fn window_start(today: NaiveDate, days: u32) -> NaiveDate {
    today - Duration::days(i64::from(days) - 1)
}

/// One committed change of a balance: what subscribers and callers are told after the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    pub entry_id: i64,
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub kind: EntryKind,
    /// Signed vials: positive in, negative out.
    pub quantity: i64,
    /// The site × product × lot balance right after this entry.
    pub on_hand: Vials,
    pub recorded_at: DateTime<Utc>,
}

impl StockChange {
    pub fn prefecture(&self) -> PrefectureCode {
        self.municipality.prefecture()
    }
}

/// An area stock figures are read for: one site, a municipality, a prefecture or the nation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockArea {
    Site {
        code: SiteCode,
        municipality: MunicipalityCode,
    },
    Municipality(MunicipalityCode),
    Prefecture(PrefectureCode),
    Nation,
}

impl StockArea {
    /// Whether a site (by code and municipality) lies in this area.
    pub fn covers(&self, site: &SiteCode, municipality: &MunicipalityCode) -> bool {
        match self {
            StockArea::Site { code, .. } => code == site,
            StockArea::Municipality(m) => m == municipality,
            StockArea::Prefecture(p) => municipality.prefecture() == *p,
            StockArea::Nation => true,
        }
    }

    /// How the area is written in messages and routing keys: `site:…`, `municipality:…`, …
    pub fn key(&self) -> String {
        match self {
            StockArea::Site { code, .. } => format!("site:{code}"),
            StockArea::Municipality(m) => format!("municipality:{m}"),
            StockArea::Prefecture(p) => format!("prefecture:{p}"),
            StockArea::Nation => "nation".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn each_kind_has_its_sign_and_counter() {
        use EntryKind::*;
        let table = [
            (Received, Some(1), Some(Counter::Received)),
            (Administered, Some(-1), Some(Counter::Administered)),
            (Wasted, Some(-1), Some(Counter::Wasted)),
            (Expired, Some(-1), Some(Counter::Expired)),
            (TransferredOut, Some(-1), Some(Counter::TransferredOut)),
            (TransferredIn, Some(1), Some(Counter::TransferredIn)),
            (Adjusted, None, Some(Counter::Adjusted)),
            (Reversed, None, None),
        ];
        assert_eq!(table.len(), EntryKind::ALL.len(), "every kind is in the table");
        for (kind, sign, counter) in table {
            assert_eq!(kind.sign(), sign, "{kind}");
            assert_eq!(kind.counter(), counter, "{kind}");
        }
        assert_eq!(
            Effect::of(Administered, Vials::new(3)),
            Some(Effect {
                on_hand: -3,
                counter: Counter::Administered,
                counter_delta: 3
            })
        );
        assert_eq!(Effect::of(Adjusted, Vials::new(3)), None);
        assert_eq!(Effect::adjustment(Vials::new(10), Vials::new(10)), None);
        assert_eq!(
            Effect::adjustment(Vials::new(10), Vials::new(7)),
            Some(Effect {
                on_hand: -3,
                counter: Counter::Adjusted,
                counter_delta: -3
            })
        );
    }

    #[test]
    fn a_reversal_undoes_exactly_its_entry() {
        for kind in EntryKind::ALL.iter().copied().filter(|k| *k != EntryKind::Reversed) {
            for q in [1u64, 7] {
                let effect = match kind {
                    EntryKind::Adjusted => Effect {
                        on_hand: -(q as i64),
                        counter: Counter::Adjusted,
                        counter_delta: -(q as i64),
                    },
                    _ => Effect::of(kind, Vials::new(q)).expect("fixed kind"),
                };
                let start = Balance {
                    on_hand: Vials::new(100),
                    received: Vials::new(100),
                    ..Balance::default()
                };
                let after = start.apply(effect).expect("applies");
                let back = after
                    .apply(Effect::reversal(kind, effect.on_hand).expect("reversible"))
                    .expect("reverses");
                assert_eq!(back, start, "{kind} {q}");
            }
        }
    }

    #[test]
    fn reversal_rules() {
        let base = ReversalFacts {
            id: 7,
            kind: EntryKind::Administered,
            quantity: -2,
            delivery: None,
            reversed_by: None,
        };
        assert_eq!(
            check_reversal(&base).expect("ok"),
            Effect {
                on_hand: 2,
                counter: Counter::Administered,
                counter_delta: -2
            }
        );
        let refused: &[(ReversalFacts, &str)] = &[
            (
                ReversalFacts {
                    reversed_by: Some(9),
                    ..base
                },
                "already reversed by entry 9",
            ),
            (
                ReversalFacts {
                    kind: EntryKind::Reversed,
                    quantity: 2,
                    ..base
                },
                "cannot be reversed",
            ),
            (
                ReversalFacts {
                    kind: EntryKind::TransferredIn,
                    quantity: 2,
                    ..base
                },
                "base site",
            ),
            (
                ReversalFacts {
                    kind: EntryKind::Received,
                    quantity: 2,
                    delivery: Some(3),
                    ..base
                },
                "delivery",
            ),
        ];
        for (facts, words) in refused {
            let e = check_reversal(facts).expect_err(words);
            assert!(e.to_string().contains(words), "{e} should say {words}");
        }
        assert!(
            check_reversal(&ReversalFacts {
                kind: EntryKind::Received,
                quantity: 5,
                ..base
            })
            .is_ok(),
            "a receipt recorded without a delivery can be reversed"
        );
    }

    #[test]
    fn transfer_eligibility() {
        let base: SiteCode = "1312020017".parse().expect("code");
        let sat: SiteCode = "1312020025".parse().expect("code");
        let other_base: SiteCode = "0111010013".parse().expect("code");
        let comirnaty: ProductCode = "comirnaty".parse().expect("p");
        let spikevax: ProductCode = "spikevax".parse().expect("p");
        let handles: BTreeSet<ProductCode> = [comirnaty.clone()].into();
        let freezer = ColdChainRole::Base {
            freezer: crate::site::FreezerClass::UltraCold,
        };
        let of_base = ColdChainRole::Satellite { base };
        let of_other = ColdChainRole::Satellite { base: other_base };
        let party = |code, cold_chain, status| TransferParty {
            code,
            cold_chain,
            status,
            products: &handles,
        };
        let (active, gone) = (SiteStatus::Active, SiteStatus::Withdrawn);
        let today = d("2026-11-27");
        let good = d("2026-12-31");
        type Case<'a> = (
            TransferParty<'a>,
            TransferParty<'a>,
            &'a ProductCode,
            NaiveDate,
            Option<&'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                party(&base, &freezer, active),
                party(&sat, &of_base, active),
                &comirnaty,
                good,
                None,
            ),
            (
                party(&base, &freezer, active),
                party(&sat, &of_base, active),
                &comirnaty,
                today,
                None,
            ),
            (
                party(&base, &freezer, active),
                party(&base, &freezer, active),
                &comirnaty,
                good,
                Some("input.to"),
            ),
            (
                party(&sat, &of_base, active),
                party(&base, &freezer, active),
                &comirnaty,
                good,
                Some("input.from"),
            ),
            (
                party(&base, &freezer, active),
                party(&sat, &of_other, active),
                &comirnaty,
                good,
                Some("input.to"),
            ),
            (
                party(&base, &freezer, active),
                party(&other_base, &freezer, active),
                &comirnaty,
                good,
                Some("input.to"),
            ),
            (
                party(&base, &freezer, active),
                party(&sat, &of_base, gone),
                &comirnaty,
                good,
                Some("input.to"),
            ),
            (
                party(&base, &freezer, gone),
                party(&sat, &of_base, active),
                &comirnaty,
                good,
                Some("input.from"),
            ),
            (
                party(&base, &freezer, active),
                party(&sat, &of_base, active),
                &spikevax,
                good,
                Some("input.product"),
            ),
            (
                party(&base, &freezer, active),
                party(&sat, &of_base, active),
                &comirnaty,
                d("2026-11-26"),
                Some("input.lot"),
            ),
        ];
        for (i, (from, to, product, expiry, refused_on)) in cases.iter().enumerate() {
            match (check_transfer(from, to, product, *expiry, today), refused_on) {
                (Ok(()), None) => {}
                (Err(DomainError::Invalid { field, .. }), Some(want)) => assert_eq!(&field, want, "case {i}"),
                (got, want) => panic!("case {i}: got {got:?}, expected refusal on {want:?}"),
            }
        }
    }

    #[test]
    fn dated_rules() {
        let today = d("2026-11-27");
        assert!(check_receipt(d("2026-12-01"), today, today).is_ok());
        assert!(
            check_receipt(today, today, today).is_ok(),
            "good through its expiry day"
        );
        assert!(check_receipt(d("2026-11-26"), today, today).is_err(), "expired lot");
        assert!(
            check_receipt(d("2026-11-20"), d("2026-11-10"), today).is_ok(),
            "late entry"
        );
        assert!(
            check_receipt(d("2026-12-20"), d("2026-11-28"), today).is_err(),
            "future"
        );
        assert!(check_expired(d("2026-11-26"), today).is_ok());
        assert!(check_expired(today, today).is_err());
        assert!(check_not_expired(today, today, "x").is_ok());
        assert!(check_not_expired(d("2026-11-26"), today, "x").is_err());
        assert!(check_waste(WasteReason::Other, " ").is_err());
        assert!(check_waste(WasteReason::Other, "dropped in transit").is_ok());
        assert!(check_waste(WasteReason::BrokenVial, "").is_ok());
        assert_eq!(window_start(today, 7), d("2026-11-21"));
        assert_eq!(window_start(today, 1), today);
        // 15:00 UTC is midnight in Tokyo.
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        assert_eq!(japan_date(t("2026-11-26T14:59:59Z")), d("2026-11-26"));
        assert_eq!(japan_date(t("2026-11-26T15:00:00Z")), d("2026-11-27"));
    }

    #[test]
    fn quantities_and_windows() {
        assert!(movement_quantity(Vials::ZERO, "q").is_err());
        assert!(movement_quantity(Vials::new(1), "q").is_ok());
        assert!(movement_quantity(Vials::new(MAX_ENTRY_VIALS), "q").is_ok());
        assert!(movement_quantity(Vials::new(MAX_ENTRY_VIALS + 1), "q").is_err());
        assert_eq!(recent_window(7, "d").expect("ok"), 7);
        for bad in [0, -1, 91, i64::MAX] {
            assert!(recent_window(bad, "d").is_err(), "{bad}");
        }
    }

    #[test]
    fn days_of_supply_table() {
        let table = [
            (100, 14, 7, Some(50)),
            (5, 14, 7, Some(2)),
            (0, 14, 7, Some(0)),
            (100, 0, 7, None),
            (u64::MAX, 1, 90, Some(u64::MAX)),
        ];
        for (on_hand, used, window, want) in table {
            assert_eq!(
                days_of_supply(Vials::new(on_hand), Vials::new(used), window),
                want,
                "{on_hand} {used} {window}"
            );
        }
    }

    /// A movement a property test throws at a balance.
    #[derive(Debug, Clone)]
    enum Op {
        Fixed(EntryKind, u64),
        Count(u64),
        ReverseNth(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let fixed = prop::sample::select(vec![
            EntryKind::Received,
            EntryKind::Administered,
            EntryKind::Wasted,
            EntryKind::Expired,
            EntryKind::TransferredOut,
            EntryKind::TransferredIn,
        ]);
        prop_oneof![
            (fixed, 1u64..50).prop_map(|(k, n)| Op::Fixed(k, n)),
            (0u64..100).prop_map(Op::Count),
            (0usize..40).prop_map(Op::ReverseNth),
        ]
    }

    proptest! {
        /// Whatever sequence of movements is tried, the balance never goes negative, equals the
        /// sum of the entries that were accepted, and keeps its counters consistent.
        #[test]
        fn the_ledger_model_holds(ops in proptest::collection::vec(op(), 0..60)) {
            let mut balance = Balance::default();
            // (kind, quantity, reversed?)
            let mut entries: Vec<(EntryKind, i64, bool)> = Vec::new();
            for op in ops {
                let (kind, effect, reverses) = match op {
                    Op::Fixed(kind, n) => (kind, Effect::of(kind, Vials::new(n)).expect("fixed"), None),
                    Op::Count(counted) => match Effect::adjustment(balance.on_hand, Vials::new(counted)) {
                        Some(e) => (EntryKind::Adjusted, e, None),
                        None => continue,
                    },
                    Op::ReverseNth(i) => {
                        let Some((kind, quantity, reversed)) = entries.get(i).copied() else { continue };
                        let facts = ReversalFacts {
                            id: i as i64,
                            kind,
                            quantity,
                            delivery: None,
                            reversed_by: reversed.then_some(0),
                        };
                        match check_reversal(&facts) {
                            Ok(e) => (EntryKind::Reversed, e, Some(i)),
                            Err(_) => continue,
                        }
                    }
                };
                match balance.apply(effect) {
                    Ok(next) => {
                        balance = next;
                        entries.push((kind, effect.on_hand, false));
                        if let Some(i) = reverses {
                            entries[i].2 = true;
                        }
                    }
                    Err(BalanceError::Insufficient { on_hand }) => {
                        prop_assert!(effect.on_hand < 0);
                        prop_assert!(on_hand.get() < effect.on_hand.unsigned_abs());
                    }
                    Err(BalanceError::CounterUnderflow) => prop_assert!(false, "counters never underflow"),
                }
                prop_assert!(balance.is_consistent(), "{balance:?}");
            }
            let sum: i64 = entries.iter().map(|e| e.1).sum();
            prop_assert_eq!(sum, balance.on_hand.get() as i64);
        }

        #[test]
        fn more_stock_lasts_longer(a in 0u64..1_000_000, b in 0u64..1_000_000, used in 1u64..10_000, w in 1u32..=90) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (x, y) = (
                days_of_supply(Vials::new(lo), Vials::new(used), w).expect("used"),
                days_of_supply(Vials::new(hi), Vials::new(used), w).expect("used"),
            );
            prop_assert!(x <= y);
            // The figure is the whole days the stock lasts at the average rate.
            prop_assert!(u128::from(x) * u128::from(used) <= u128::from(lo) * u128::from(w));
            prop_assert!(u128::from(x + 1) * u128::from(used) > u128::from(lo) * u128::from(w));
        }
    }
}
