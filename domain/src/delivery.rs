//! Deliveries (納品) against orders, as rules: what a wholesaler may register, what counts as
//! delivering more than ordered, and what a site's receipt confirmation must say. Pure: no I/O,
//! table-tested here; `deliveries` stores them and books accepted vials in the stock ledger.
//!
//! Quantities are vials (what the ledger counts and what a wholesaler can split a box into);
//! doses are shown beside them through the product's packaging.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::codes::LotNumber;
use crate::error::DomainError;
use crate::quantity::Vials;
use crate::site::bounded_text;

/// Most lots in one delivery.
pub const MAX_LOTS: usize = 50;
/// Longest idempotency key, in characters.
pub const MAX_KEY: usize = 100;
/// Longest free text (notes, reasons), in characters.
pub const MAX_TEXT: usize = 500;
/// Most vials on one line (far above any real shipment; keeps sums far from overflow).
pub const MAX_LOT_VIALS: u64 = 10_000_000;

vocabulary! {
    /// Why a site refused vials at receipt (受領拒否理由).
    RejectionReason {
        /// Broken or damaged on arrival.
        Damaged = "DAMAGED",
        /// The cold chain was broken in transport (logger out of range, thawed).
        TemperatureExcursion = "TEMPERATURE_EXCURSION",
        /// Not the product that was ordered.
        WrongProduct = "WRONG_PRODUCT",
        /// Expired, or too close to expiry to be used.
        Expired = "EXPIRED",
        /// Fewer vials arrived than the wholesaler registered.
        Shortage = "SHORTAGE",
        /// Anything else; a note is required.
        Other = "OTHER",
    }
}

/// One lot as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredLot {
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub vials: Vials,
}

/// A delivery as a wholesaler registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDraft {
    pub order: String,
    /// Chosen by the wholesaler, unique among its deliveries: re-sending the same delivery with
    /// the same key changes nothing.
    pub idempotency_key: String,
    pub delivered_on: NaiveDate,
    pub lots: Vec<DeliveredLot>,
    /// Required to deliver more than ordered.
    pub over_delivery_reason: Option<String>,
    pub note: String,
}

/// A draft that passed [`check_draft`]: texts trimmed, lots in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedDelivery {
    pub order: String,
    pub idempotency_key: String,
    pub delivered_on: NaiveDate,
    pub lots: Vec<DeliveredLot>,
    pub over_delivery_reason: Option<String>,
    pub note: String,
    /// Σ lots.
    pub vials: Vials,
}

fn lot_field(i: usize, field: &str) -> String {
    format!("input.lots[{i}].{field}")
}

/// Checks everything about a delivery that needs no stored data: the key, the lots (at least
/// one, each named once, 1 to [`MAX_LOT_VIALS`] vials, not expired on the day delivered), the
/// date (not in the future) and the texts.
pub fn check_draft(d: &DeliveryDraft, today: NaiveDate) -> Result<CheckedDelivery, DomainError> {
    let key = d.idempotency_key.trim();
    if key.is_empty() || key.chars().count() > MAX_KEY || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            "input.idempotencyKey",
            format!("must be 1 to {MAX_KEY} printable ASCII characters without spaces"),
        ));
    }
    if d.delivered_on > today {
        return Err(DomainError::invalid(
            "input.deliveredOn",
            format!(
                "{} is in the future; register a delivery once it has been made",
                d.delivered_on
            ),
        ));
    }
    if d.lots.is_empty() {
        return Err(DomainError::invalid("input.lots", "name at least one lot"));
    }
    if d.lots.len() > MAX_LOTS {
        return Err(DomainError::invalid(
            "input.lots",
            format!("at most {MAX_LOTS} lots per delivery"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut total = Vials::ZERO;
    for (i, l) in d.lots.iter().enumerate() {
        if !seen.insert(l.lot.as_str()) {
            return Err(DomainError::invalid(
                lot_field(i, "lot"),
                format!("lot {} is named twice; give each lot once with all its vials", l.lot),
            ));
        }
        if l.vials.is_zero() || l.vials.get() > MAX_LOT_VIALS {
            return Err(DomainError::invalid(
                lot_field(i, "vials"),
                format!("must be 1 to {MAX_LOT_VIALS}"),
            ));
        }
        if l.expiry_date < d.delivered_on {
            return Err(DomainError::invalid(
                lot_field(i, "expiryDate"),
                format!(
                    "lot {} expired on {}, before it was delivered on {}",
                    l.lot, l.expiry_date, d.delivered_on
                ),
            ));
        }
        total = total + l.vials;
    }
    let over_delivery_reason = d
        .over_delivery_reason
        .as_deref()
        .map(|r| bounded_text(r, 1, MAX_TEXT, "input.overDeliveryReason"))
        .transpose()?;
    Ok(CheckedDelivery {
        order: d.order.trim().to_owned(),
        idempotency_key: key.to_owned(),
        delivered_on: d.delivered_on,
        lots: d.lots.clone(),
        over_delivery_reason,
        note: bounded_text(&d.note, 0, MAX_TEXT, "input.note")?,
        vials: total,
    })
}

/// What an order has been sent so far: the vials of its deliveries, and of those the vials a
/// site rejected at receipt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: Vials,
    pub rejected: Vials,
}

/// Delivering more than ordered needs a reason. What counts is what the site keeps or has yet
/// to check — delivered minus rejected — so replacing rejected vials is not over-delivery.
pub fn check_over_delivery(
    ordered: Vials,
    before: Delivered,
    this: Vials,
    reason: Option<&str>,
) -> Result<(), DomainError> {
    let kept = before.delivered.checked_sub(before.rejected).unwrap_or(Vials::ZERO);
    let after = kept + this;
    if after > ordered && reason.is_none() {
        return Err(DomainError::invalid(
            "input.overDeliveryReason",
            format!(
                "this delivery of {} vials brings the order to {} vials of {} ordered ({} delivered before, {} of them \
                 rejected); give an overDeliveryReason to deliver more than ordered",
                this.get(),
                after.get(),
                ordered.get(),
                before.delivered.get(),
                before.rejected.get()
            ),
        ));
    }
    Ok(())
}

/// Whether a re-sent delivery is the one stored under its key (same order, date, lots, reason
/// and note): then the stored one is the answer; otherwise the key was reused — a conflict.
pub fn same_delivery(stored: &CheckedDelivery, resent: &CheckedDelivery) -> bool {
    let lots = |d: &CheckedDelivery| {
        let mut v: Vec<_> = d.lots.iter().map(|l| (l.lot.clone(), l.expiry_date, l.vials)).collect();
        v.sort();
        v
    };
    stored.order == resent.order
        && stored.delivered_on == resent.delivered_on
        && stored.over_delivery_reason == resent.over_delivery_reason
        && stored.note == resent.note
        && lots(stored) == lots(resent)
}

/// One lot of a receipt: of its delivered vials, how many the site accepted and rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotReceipt {
    pub lot: LotNumber,
    pub accepted: Vials,
    pub rejected: Vials,
}

/// A site's confirmation of a delivery (受領確認).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptDraft {
    pub delivery: i64,
    /// The day the boxes were checked; today when not given.
    pub received_on: Option<NaiveDate>,
    pub lots: Vec<LotReceipt>,
    pub rejection_reason: Option<RejectionReason>,
    pub rejection_note: Option<String>,
}

/// A receipt that passed [`check_receipt`]: one line per delivered lot, in the delivery's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReceipt {
    pub received_on: NaiveDate,
    /// (lot, expiry, accepted, rejected) per delivered lot.
    pub lots: Vec<(LotNumber, NaiveDate, Vials, Vials)>,
    pub accepted: Vials,
    pub rejected: Vials,
    pub rejection_reason: Option<RejectionReason>,
    pub rejection_note: Option<String>,
}

/// Checks a receipt against the delivery it confirms: every delivered lot named exactly once
/// (and no other), accepted + rejected = delivered for each, a reason when anything is rejected
/// (and a note for OTHER), the date between delivery and today, and no accepted vial of a lot
/// that had expired on the day received.
pub fn check_receipt(
    delivered_on: NaiveDate,
    delivered: &[DeliveredLot],
    r: &ReceiptDraft,
    today: NaiveDate,
) -> Result<CheckedReceipt, DomainError> {
    let received_on = r.received_on.unwrap_or(today);
    if received_on > today {
        return Err(DomainError::invalid(
            "input.receivedOn",
            format!("{received_on} is in the future"),
        ));
    }
    if received_on < delivered_on {
        return Err(DomainError::invalid(
            "input.receivedOn",
            format!("{received_on} is before the delivery was made ({delivered_on})"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, l) in r.lots.iter().enumerate() {
        if !delivered.iter().any(|d| d.lot == l.lot) {
            return Err(DomainError::invalid(
                lot_field(i, "lot"),
                format!("lot {} is not in this delivery", l.lot),
            ));
        }
        if !seen.insert(l.lot.as_str()) {
            return Err(DomainError::invalid(
                lot_field(i, "lot"),
                format!("lot {} is named twice", l.lot),
            ));
        }
    }
    let mut lots = Vec::with_capacity(delivered.len());
    let (mut accepted, mut rejected) = (Vials::ZERO, Vials::ZERO);
    for d in delivered {
        let Some((i, l)) = r.lots.iter().enumerate().find(|(_, l)| l.lot == d.lot) else {
            return Err(DomainError::invalid(
                "input.lots",
                format!(
                    "lot {} of this delivery is missing: say how many of its vials you accepted and rejected",
                    d.lot
                ),
            ));
        };
        if l.accepted.checked_add(l.rejected) != Some(d.vials) {
            return Err(DomainError::invalid(
                lot_field(i, "accepted"),
                format!(
                    "accepted {} + rejected {} must equal the {} vials delivered of lot {}",
                    l.accepted.get(),
                    l.rejected.get(),
                    d.vials.get(),
                    d.lot
                ),
            ));
        }
        if !l.accepted.is_zero() && d.expiry_date < received_on {
            return Err(DomainError::invalid(
                lot_field(i, "accepted"),
                format!("lot {} expired on {}; reject its vials (EXPIRED)", d.lot, d.expiry_date),
            ));
        }
        accepted = accepted + l.accepted;
        rejected = rejected + l.rejected;
        lots.push((d.lot.clone(), d.expiry_date, l.accepted, l.rejected));
    }
    let rejection_note = r
        .rejection_note
        .as_deref()
        .map(|n| bounded_text(n, 0, MAX_TEXT, "input.rejectionNote"))
        .transpose()?
        .filter(|n| !n.is_empty());
    match (rejected.is_zero(), r.rejection_reason) {
        (false, None) => {
            return Err(DomainError::invalid(
                "input.rejectionReason",
                format!("{} vials rejected: say why", rejected.get()),
            ));
        }
        (true, Some(_)) => {
            return Err(DomainError::invalid(
                "input.rejectionReason",
                "no vial is rejected; leave the reason out",
            ));
        }
        (false, Some(RejectionReason::Other)) if rejection_note.is_none() => {
            return Err(DomainError::invalid(
                "input.rejectionNote",
                "say what was wrong (reason OTHER)",
            ));
        }
        _ => {}
    }
    Ok(CheckedReceipt {
        received_on,
        lots,
        accepted,
        rejected,
        rejection_reason: r.rejection_reason,
        rejection_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }
    fn lot(s: &str) -> LotNumber {
        s.parse().expect("lot")
    }
    fn delivered(l: &str, expiry: &str, vials: u64) -> DeliveredLot {
        DeliveredLot {
            lot: lot(l),
            expiry_date: d(expiry),
            vials: Vials::new(vials),
        }
    }
    fn draft() -> DeliveryDraft {
        DeliveryDraft {
            order: "12-1311010019".into(),
            idempotency_key: " suzuken-0001 ".into(),
            delivered_on: d("2026-11-20"),
            lots: vec![
                delivered("FF3620", "2027-03-31", 100),
                delivered("FF4204", "2027-04-30", 95),
            ],
            over_delivery_reason: None,
            note: "".into(),
        }
    }
    const TODAY: &str = "2026-11-27";

    fn field_of(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_draft_is_trimmed_and_summed() {
        let c = check_draft(&draft(), d(TODAY)).expect("valid");
        assert_eq!(c.idempotency_key, "suzuken-0001");
        assert_eq!(c.vials, Vials::new(195));
        // Delivered on the expiry day itself is still good.
        let mut same_day = draft();
        same_day.lots[0].expiry_date = same_day.delivered_on;
        assert!(check_draft(&same_day, d(TODAY)).is_ok());
    }

    #[test]
    fn each_bad_draft_names_its_field() {
        type Breaker = fn(&mut DeliveryDraft);
        let cases: &[(Breaker, &str)] = &[
            (|x| x.idempotency_key = "".into(), "input.idempotencyKey"),
            (|x| x.idempotency_key = "has space".into(), "input.idempotencyKey"),
            (|x| x.idempotency_key = "k".repeat(101), "input.idempotencyKey"),
            (
                |x| x.delivered_on = "2026-11-28".parse().expect("d"),
                "input.deliveredOn",
            ),
            (|x| x.lots.clear(), "input.lots"),
            (|x| x.lots[1].lot = x.lots[0].lot.clone(), "input.lots[1].lot"),
            (|x| x.lots[0].vials = Vials::ZERO, "input.lots[0].vials"),
            (
                |x| x.lots[1].vials = Vials::new(MAX_LOT_VIALS + 1),
                "input.lots[1].vials",
            ),
            (
                |x| x.lots[1].expiry_date = "2026-11-19".parse().expect("d"),
                "input.lots[1].expiryDate",
            ),
            (
                |x| x.over_delivery_reason = Some("  ".into()),
                "input.overDeliveryReason",
            ),
            (|x| x.note = "n".repeat(501), "input.note"),
        ];
        for (i, (breaker, field)) in cases.iter().enumerate() {
            let mut x = draft();
            breaker(&mut x);
            let e = check_draft(&x, d(TODAY)).expect_err(&format!("case {i} must be refused"));
            assert_eq!(field_of(e), *field, "case {i}");
        }
        let mut many = draft();
        many.lots = (0..=MAX_LOTS)
            .map(|i| delivered(&format!("L{i:03}"), "2027-01-01", 1))
            .collect();
        assert_eq!(
            field_of(check_draft(&many, d(TODAY)).expect_err("too many")),
            "input.lots"
        );
    }

    #[test]
    fn over_delivery_counts_what_the_site_keeps() {
        let ordered = Vials::new(195);
        let none = Delivered::default();
        assert!(check_over_delivery(ordered, none, Vials::new(195), None).is_ok());
        let e = check_over_delivery(ordered, none, Vials::new(196), None).expect_err("over");
        assert_eq!(field_of(e), "input.overDeliveryReason");
        assert!(check_over_delivery(ordered, none, Vials::new(196), Some("spare vials for breakage")).is_ok());
        let partial = Delivered {
            delivered: Vials::new(100),
            rejected: Vials::ZERO,
        };
        assert!(check_over_delivery(ordered, partial, Vials::new(95), None).is_ok());
        assert!(check_over_delivery(ordered, partial, Vials::new(96), None).is_err());
        // 30 of the first 100 were rejected: replacing them is not over-delivery.
        let replaced = Delivered {
            delivered: Vials::new(100),
            rejected: Vials::new(30),
        };
        assert!(check_over_delivery(ordered, replaced, Vials::new(125), None).is_ok());
        assert!(check_over_delivery(ordered, replaced, Vials::new(126), None).is_err());
    }

    #[test]
    fn a_resend_matches_whatever_the_lot_order_and_whitespace() {
        let a = check_draft(&draft(), d(TODAY)).expect("a");
        let mut resent = draft();
        resent.lots.reverse();
        resent.idempotency_key = "suzuken-0001".into();
        assert!(same_delivery(&a, &check_draft(&resent, d(TODAY)).expect("b")));
        let mut changed = draft();
        changed.lots[0].vials = Vials::new(99);
        assert!(!same_delivery(&a, &check_draft(&changed, d(TODAY)).expect("c")));
        let mut other_day = draft();
        other_day.delivered_on = d("2026-11-21");
        assert!(!same_delivery(&a, &check_draft(&other_day, d(TODAY)).expect("d")));
    }

    fn receipt(lots: &[(&str, u64, u64)], reason: Option<RejectionReason>) -> ReceiptDraft {
        ReceiptDraft {
            delivery: 1,
            received_on: Some(d("2026-11-21")),
            lots: lots
                .iter()
                .map(|(l, a, r)| LotReceipt {
                    lot: lot(l),
                    accepted: Vials::new(*a),
                    rejected: Vials::new(*r),
                })
                .collect(),
            rejection_reason: reason,
            rejection_note: None,
        }
    }

    #[test]
    fn a_partial_receipt_splits_each_lot() {
        let lots = draft().lots;
        let r = receipt(&[("FF4204", 95, 0), ("FF3620", 90, 10)], Some(RejectionReason::Damaged));
        let c = check_receipt(d("2026-11-20"), &lots, &r, d(TODAY)).expect("valid");
        assert_eq!((c.accepted, c.rejected), (Vials::new(185), Vials::new(10)));
        // In the delivery's order, not the receipt's.
        assert_eq!(c.lots[0].0, lot("FF3620"));
        assert_eq!((c.lots[0].2, c.lots[0].3), (Vials::new(90), Vials::new(10)));
    }

    #[test]
    fn each_bad_receipt_names_its_field() {
        let lots = draft().lots;
        let on = d("2026-11-20");
        let cases: Vec<(ReceiptDraft, &str)> = vec![
            (receipt(&[("FF3620", 100, 0)], None), "input.lots"),
            (
                receipt(&[("FF3620", 100, 0), ("FF4204", 95, 0), ("XX0001", 1, 0)], None),
                "input.lots[2].lot",
            ),
            (
                receipt(&[("FF3620", 100, 0), ("FF3620", 100, 0)], None),
                "input.lots[1].lot",
            ),
            (
                receipt(&[("FF3620", 100, 0), ("FF4204", 94, 0)], None),
                "input.lots[1].accepted",
            ),
            (
                receipt(&[("FF3620", 100, 1), ("FF4204", 95, 0)], None),
                "input.lots[0].accepted",
            ),
            (
                receipt(&[("FF3620", 90, 10), ("FF4204", 95, 0)], None),
                "input.rejectionReason",
            ),
            (
                receipt(&[("FF3620", 100, 0), ("FF4204", 95, 0)], Some(RejectionReason::Damaged)),
                "input.rejectionReason",
            ),
            (
                receipt(&[("FF3620", 90, 10), ("FF4204", 95, 0)], Some(RejectionReason::Other)),
                "input.rejectionNote",
            ),
            (
                ReceiptDraft {
                    received_on: Some(d("2026-11-19")),
                    ..receipt(&[("FF3620", 100, 0), ("FF4204", 95, 0)], None)
                },
                "input.receivedOn",
            ),
            (
                ReceiptDraft {
                    received_on: Some(d("2026-11-28")),
                    ..receipt(&[("FF3620", 100, 0), ("FF4204", 95, 0)], None)
                },
                "input.receivedOn",
            ),
        ];
        for (i, (r, field)) in cases.into_iter().enumerate() {
            let e = check_receipt(on, &lots, &r, d(TODAY)).expect_err(&format!("case {i} must be refused"));
            assert_eq!(field_of(e), field, "case {i}");
        }
    }

    #[test]
    fn vials_of_a_lot_expired_by_receipt_can_only_be_rejected() {
        let lots = vec![delivered("FF3620", "2026-11-20", 10)];
        let late = ReceiptDraft {
            received_on: Some(d("2026-11-21")),
            ..receipt(&[("FF3620", 10, 0)], None)
        };
        let e = check_receipt(d("2026-11-20"), &lots, &late, d(TODAY)).expect_err("expired");
        assert_eq!(field_of(e), "input.lots[0].accepted");
        let rejected = ReceiptDraft {
            received_on: Some(d("2026-11-21")),
            ..receipt(&[("FF3620", 0, 10)], Some(RejectionReason::Expired))
        };
        assert!(check_receipt(d("2026-11-20"), &lots, &rejected, d(TODAY)).is_ok());
    }
}
