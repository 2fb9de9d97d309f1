//! Conversions between stored rows and domain values. A row that does not parse is reported as
//! corrupt (an internal error), never passed on half-valid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Allocation, AllocationLine};
use crate::allocation::{
    AllocationOwner, AllocationRequest, AllocationStatus, ChildCode, Level, ProposalSummary, Round,
};
use crate::entities::{allocation, allocation_line, allocation_request, order, order_ancillary, round};
use crate::error::{DomainError, DomainResult};
use crate::order::{Order, OrderAncillary};
use crate::quantity::{Boxes, Doses, PerVial, Pieces, Vials};

pub(super) fn corrupt(what: &str, key: impl std::fmt::Display, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("{what} {key}: {e}"))
}

pub(super) fn boxes(n: i64, what: &str, key: impl std::fmt::Display) -> DomainResult<Boxes> {
    u64::try_from(n)
        .map(Boxes::new)
        .map_err(|_| corrupt(what, key, "negative quantity"))
}

pub(super) fn stored(b: Boxes) -> i64 {
    i64::try_from(b.get()).unwrap_or(i64::MAX)
}

/// The last proposal of an allocation, as stored in `allocations.proposal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProposal {
    #[serde(flatten)]
    pub summary: ProposalSummary,
    pub proposed_at: DateTime<Utc>,
    pub proposed_by: String,
}

pub(super) fn round_from_model(m: round::Model, supply: Boxes, status: AllocationStatus) -> DomainResult<Round> {
    Ok(Round {
        product: m.product_code.parse().map_err(|e| corrupt("round", m.id, e))?,
        id: m.id,
        number: m.number,
        starts_on: m.starts_on,
        ends_on: m.ends_on,
        supply,
        status,
        created_at: m.created_at,
    })
}

pub(super) fn owner_of(m: &allocation::Model) -> DomainResult<AllocationOwner> {
    AllocationOwner::from_key(&m.owner_code).map_err(|e| corrupt("allocation", m.id, e))
}

pub(super) fn status_of(m: &allocation::Model) -> DomainResult<AllocationStatus> {
    m.status.parse().map_err(|e| corrupt("allocation", m.id, e))
}

pub(super) fn line_from_model(level: Level, m: allocation_line::Model) -> DomainResult<AllocationLine> {
    let key = format!("{}/{}", m.allocation_id, m.child_code);
    Ok(AllocationLine {
        child: ChildCode::parse_for(level, &m.child_code).map_err(|e| corrupt("allocation line", &key, e))?,
        boxes: boxes(m.boxes, "allocation line", &key)?,
        proposed: m.proposed.map(|p| boxes(p, "allocation line", &key)).transpose()?,
        reason: m
            .reason
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("allocation line", &key, e))?,
        edited_by: m.edited_by,
        edited_at: m.edited_at,
    })
}

pub(super) fn allocation_from_model(
    m: allocation::Model,
    lines: Vec<AllocationLine>,
    complete: bool,
) -> DomainResult<Allocation> {
    Ok(Allocation {
        owner: owner_of(&m)?,
        status: status_of(&m)?,
        received: boxes(m.received, "allocation", m.id)?,
        allocated: boxes(m.allocated, "allocation", m.id)?,
        proposal: m
            .proposal
            .as_deref()
            .map(serde_json::from_str::<StoredProposal>)
            .transpose()
            .map_err(|e| corrupt("allocation", m.id, e))?,
        id: m.id,
        round: m.round_id,
        version: m.version,
        confirmed_at: m.confirmed_at,
        confirmed_by: m.confirmed_by,
        updated_at: m.updated_at,
        lines,
        lines_complete: complete,
    })
}

pub(super) fn request_from_model(m: allocation_request::Model) -> DomainResult<AllocationRequest> {
    let key = format!("{}/{}", m.round_id, m.requester_code);
    let level: Level = m.level.parse().map_err(|e| corrupt("request", &key, e))?;
    let parent = match level {
        Level::Prefecture => Level::National,
        Level::Municipality => Level::Prefecture,
        Level::Site => Level::Municipality,
        Level::National => return Err(corrupt("request", &key, "a request from NATIONAL")),
    };
    Ok(AllocationRequest {
        round: m.round_id,
        requester: ChildCode::parse_for(parent, &m.requester_code).map_err(|e| corrupt("request", &key, e))?,
        prefecture: m.prefecture_code.parse().map_err(|e| corrupt("request", &key, e))?,
        municipality: m
            .municipality_code
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("request", &key, e))?,
        boxes: boxes(m.boxes, "request", &key)?,
        note: m.note,
        submitted_by: m.submitted_by,
        submitted_at: m.submitted_at,
        updated_at: m.updated_at,
    })
}

/// One ancillary of an order as stored in `orders.ancillaries` (JSON).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAncillary<'a> {
    product: std::borrow::Cow<'a, str>,
    per_vial: u32,
    pieces: u64,
}

/// `orders.ancillaries` for an order's ancillaries, in product-code order (the order readers
/// always listed them in).
pub(super) fn ancillaries_column(ancillaries: &[OrderAncillary]) -> String {
    let mut stored: Vec<StoredAncillary<'_>> = ancillaries
        .iter()
        .map(|a| StoredAncillary {
            product: a.product.as_str().into(),
            per_vial: a.per_vial.get(),
            pieces: a.pieces.get(),
        })
        .collect();
    stored.sort_by(|x, y| x.product.cmp(&y.product));
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// An order from its row; `legacy`: its `order_ancillaries` rows, read only for orders written
/// before `orders.ancillaries` existed (column NULL).
pub(super) fn order_from_model(m: order::Model, legacy: Vec<order_ancillary::Model>) -> DomainResult<Order> {
    let id = m.id.clone();
    let c = |e: &dyn std::fmt::Display| corrupt("order", &id, e);
    let n = |x: i64| u64::try_from(x).map_err(|_| corrupt("order", &id, "negative quantity"));
    let ancillaries = match &m.ancillaries {
        Some(json) => serde_json::from_str::<Vec<StoredAncillary<'_>>>(json)
            .map_err(|e| c(&e))?
            .into_iter()
            .map(|a| {
                Ok(OrderAncillary {
                    product: a.product.parse().map_err(|e| c(&e))?,
                    per_vial: PerVial::new(a.per_vial).map_err(|e| c(&e))?,
                    pieces: Pieces::new(a.pieces),
                })
            })
            .collect::<DomainResult<_>>()?,
        None => legacy
            .into_iter()
            .map(|a| {
                Ok(OrderAncillary {
                    product: a.product_code.parse().map_err(|e| c(&e))?,
                    per_vial: PerVial::new(u32::try_from(a.per_vial).unwrap_or(0)).map_err(|e| c(&e))?,
                    pieces: Pieces::new(n(a.pieces)?),
                })
            })
            .collect::<DomainResult<_>>()?,
    };
    Ok(Order {
        round: m.round_id,
        allocation: m.allocation_id,
        product: m.product_code.parse().map_err(|e| c(&e))?,
        site: m.site_code.parse().map_err(|e| c(&e))?,
        municipality: m.municipality_code.parse().map_err(|e| c(&e))?,
        wholesaler: m.wholesaler_id.parse().map_err(|e| c(&e))?,
        boxes: Boxes::new(n(m.boxes)?),
        vials: Vials::new(n(m.vials)?),
        doses: Doses::new(n(m.doses)?),
        ancillaries,
        status: m.status.parse().map_err(|e: String| c(&e))?,
        created_at: m.created_at,
        created_by: m.created_by,
        progress: crate::order::OrderProgress {
            customer_code: m.customer_code,
            sent_at: m.sent_at,
            acknowledged_at: m.acknowledged_at,
            ack_reference: m.ack_reference,
            hold_reason: m.hold_reason,
        },
        id: m.id,
    })
}
