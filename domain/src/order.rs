//! Order instructions (発注指示): what a confirmed site allocation asks a wholesaler to deliver,
//! and the `order.created` message the outbox carries to it. Pure: building an order and its
//! message needs no I/O, so it is table-tested here; `allocations` stores them.
//!
//! The message is a contract with the wholesaler integration (and a snapshot: the site's address
//! and delivery window as they were when the order was instructed). Its shape is documented in
//! the README ("Orders and the outbox"); add fields, never change or remove one without bumping
//! `schemaVersion`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::allocation::{Ineligible, Round, site_eligibility};
use crate::codes::{MunicipalityCode, ProductCode, SiteCode, WholesalerId};
use crate::product::{Product, ProductKind};
use crate::quantity::{Boxes, Doses, PerVial, Pieces, Vials};
use crate::site::Site;

/// The outbox topic of a new order.
pub const TOPIC_ORDER_CREATED: &str = "order.created";
/// The outbox aggregate type of orders.
pub const AGGREGATE_ORDER: &str = "order";
/// The version of the `order.created` payload.
pub const ORDER_CREATED_SCHEMA_VERSION: u32 = 1;

vocabulary! {
    /// Where an order stands with its wholesaler. Created here; the outbox worker and the
    /// wholesaler move it on (deliveries are derived by the stock ledger, not stored here).
    OrderStatus {
        /// Written with its outbox message; not yet sent.
        Created = "CREATED",
        /// Waiting for something before it can be sent (see `hold_reason`): no customer code for
        /// the site at this wholesaler, or the wholesaler is not configured. Released
        /// automatically when that arrives.
        Held = "HELD",
        /// Handed to the wholesaler (pushed, dropped as a file, or published for its pull);
        /// waiting for its acknowledgement.
        Sent = "SENT",
        /// The wholesaler confirmed receipt (a push answer, or `acknowledgeOrders`).
        Acknowledged = "ACKNOWLEDGED",
    }
}

/// Where an order stands with its wholesaler, beyond its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderProgress {
    /// The wholesaler's customer code the order went out with.
    pub customer_code: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The wholesaler's own reference for the order, if it gave one when acknowledging.
    pub ack_reference: Option<String>,
    /// Why the order is held (status HELD).
    pub hold_reason: Option<String>,
}

/// An ancillary shipped with an order: so many pieces per vial of the vaccine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAncillary {
    pub product: ProductCode,
    pub per_vial: PerVial,
    pub pieces: Pieces,
}

/// One order instruction: one site, one round, one wholesaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub round: i32,
    pub allocation: i32,
    pub product: ProductCode,
    pub site: SiteCode,
    pub municipality: MunicipalityCode,
    pub wholesaler: WholesalerId,
    pub boxes: Boxes,
    pub vials: Vials,
    pub doses: Doses,
    pub ancillaries: Vec<OrderAncillary>,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub progress: OrderProgress,
}

/// `{round}-{site}`: one order per site and round, so a retried confirmation can never create a
/// second one (the key is unique) and the id says what it is.
pub fn order_id(round: i32, site: &SiteCode) -> String {
    format!("{round}-{site}")
}

/// The outbox idempotency key of an order's creation message.
pub fn idempotency_key(order_id: &str) -> String {
    format!("{TOPIC_ORDER_CREATED}:{order_id}")
}

/// The outbox destination of a wholesaler.
pub fn destination(wholesaler: &WholesalerId) -> String {
    format!("wholesaler:{wholesaler}")
}

/// Why a site's line cannot become an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderProblem {
    /// The site has no designated wholesaler (卸業者) to send the order to.
    NoWholesaler,
    /// The site may not receive the product (withdrawn, satellite, freezer, …).
    Ineligible(Ineligible),
    /// The product is not a vaccine or the quantities overflow: a data error.
    NotOrderable,
}

impl OrderProblem {
    /// A stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            OrderProblem::NoWholesaler => "NO_WHOLESALER",
            OrderProblem::Ineligible(i) => i.as_str(),
            OrderProblem::NotOrderable => "NOT_ORDERABLE",
        }
    }

    pub fn explain(&self) -> &'static str {
        match self {
            OrderProblem::NoWholesaler => {
                "has boxes but no designated wholesaler; designate one or set its line to 0 before confirming"
            }
            OrderProblem::Ineligible(i) => i.explain(),
            OrderProblem::NotOrderable => "the product cannot be ordered in these quantities",
        }
    }
}

/// Builds the order for `boxes` of the round's product to `site`, with the ancillaries that go
/// with each vial. Checks that the site may still receive the product and has a wholesaler.
#[allow(clippy::too_many_arguments)]
pub fn build_order(
    round: &Round,
    allocation: i32,
    product: &Product,
    site: &Site,
    municipality: &MunicipalityCode,
    boxes: Boxes,
    at: DateTime<Utc>,
    by: &str,
) -> Result<Order, OrderProblem> {
    site_eligibility(product, site, municipality).map_err(OrderProblem::Ineligible)?;
    let wholesaler = site.details.wholesaler.clone().ok_or(OrderProblem::NoWholesaler)?;
    let ProductKind::Vaccine { packaging, ancillaries } = &product.kind else {
        return Err(OrderProblem::NotOrderable);
    };
    let vials = packaging.vials_in(boxes).map_err(|_| OrderProblem::NotOrderable)?;
    let doses = packaging.doses_in(vials).map_err(|_| OrderProblem::NotOrderable)?;
    let ancillaries = ancillaries
        .iter()
        .map(|a| {
            Ok(OrderAncillary {
                product: a.ancillary.clone(),
                per_vial: a.per_vial,
                pieces: a.per_vial.pieces_for(vials).map_err(|_| OrderProblem::NotOrderable)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Order {
        id: order_id(round.id, &site.code),
        round: round.id,
        allocation,
        product: product.code.clone(),
        site: site.code,
        municipality: *municipality,
        wholesaler,
        boxes,
        vials,
        doses,
        ancillaries,
        status: OrderStatus::Created,
        created_at: at,
        created_by: by.to_owned(),
        progress: OrderProgress::default(),
    })
}

/// The `order.created` outbox payload (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub schema_version: u32,
    pub order_id: String,
    pub round: RoundRef,
    pub wholesaler: String,
    pub site: SiteRef,
    pub items: Vec<OrderItem>,
    pub instructed_at: DateTime<Utc>,
    pub instructed_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundRef {
    pub id: i32,
    pub product: String,
    pub number: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
}

/// Where and when to deliver, as the site master said when the order was instructed. The site
/// code is the national 10-digit code; translating it to a wholesaler's customer code is the
/// wholesaler adapter's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteRef {
    pub code: String,
    pub name: String,
    pub prefecture: String,
    pub municipality: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub receiving_days: Vec<String>,
    pub receiving_hours: String,
    pub delivery_notes: String,
}

/// One line of an order: the vaccine (boxes, and the vials and doses they hold) or an ancillary
/// (pieces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderItem {
    Vaccine {
        product: String,
        boxes: u64,
        vials: u64,
        doses: u64,
    },
    Ancillary {
        product: String,
        #[serde(rename = "perVial")]
        per_vial: u32,
        pieces: u64,
    },
}

/// The message announcing `order` to its wholesaler.
pub fn order_created(order: &Order, round: &Round, site: &Site) -> OrderCreated {
    let d = &site.details;
    let mut items = Vec::with_capacity(1 + order.ancillaries.len());
    items.push(OrderItem::Vaccine {
        product: order.product.to_string(),
        boxes: order.boxes.get(),
        vials: order.vials.get(),
        doses: order.doses.get(),
    });
    items.extend(order.ancillaries.iter().map(|a| OrderItem::Ancillary {
        product: a.product.to_string(),
        per_vial: a.per_vial.get(),
        pieces: a.pieces.get(),
    }));
    OrderCreated {
        schema_version: ORDER_CREATED_SCHEMA_VERSION,
        order_id: order.id.clone(),
        round: RoundRef {
            id: round.id,
            product: round.product.to_string(),
            number: round.number,
            starts_on: round.starts_on,
            ends_on: round.ends_on,
        },
        wholesaler: order.wholesaler.to_string(),
        site: SiteRef {
            code: site.code.to_string(),
            name: d.name.clone(),
            prefecture: d.prefecture().to_string(),
            municipality: d.municipality.to_string(),
            postal_code: d.postal_code.to_string(),
            address: d.address.clone(),
            phone: d.phone.clone(),
            receiving_days: d
                .delivery
                .receiving_days
                .iter()
                .map(|w| w.as_str().to_owned())
                .collect(),
            receiving_hours: d.delivery.receiving_hours.clone(),
            delivery_notes: d.delivery.notes.clone(),
        },
        items,
        instructed_at: order.created_at,
        instructed_by: order.created_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::AllocationStatus;
    use crate::product::{AncillaryRatio, StorageClass};
    use crate::quantity::Packaging;
    use crate::site::{SiteDetails, SiteDraft, SiteStatus};

    fn comirnaty() -> Product {
        Product {
            code: "comirnaty".parse().expect("code"),
            name: "コミナティ筋注".into(),
            manufacturer: "ファイザー".into(),
            storage: StorageClass::UltraCold,
            kind: ProductKind::Vaccine {
                packaging: Packaging::new(6, 195).expect("packaging"),
                ancillaries: vec![
                    AncillaryRatio {
                        ancillary: "needle-25g".parse().expect("code"),
                        per_vial: PerVial::new(6).expect("ratio"),
                    },
                    AncillaryRatio {
                        ancillary: "syringe-lds".parse().expect("code"),
                        per_vial: PerVial::new(6).expect("ratio"),
                    },
                ],
            },
        }
    }

    fn round() -> Round {
        Round {
            id: 7,
            product: "comirnaty".parse().expect("code"),
            number: 9,
            starts_on: NaiveDate::from_ymd_opt(2021, 7, 5).expect("date"),
            ends_on: NaiveDate::from_ymd_opt(2021, 7, 18).expect("date"),
            supply: Boxes::new(10_000),
            status: AllocationStatus::Confirmed,
            created_at: Utc::now(),
        }
    }

    fn site(wholesaler: Option<&str>) -> Site {
        let draft = SiteDraft {
            name: "さくら内科".into(),
            kind: "CLINIC".into(),
            municipality: "131016".into(),
            postal_code: "1000001".into(),
            address: "東京都千代田区千代田1-1".into(),
            phone: "03-1234-5678".into(),
            cold_chain_role: "BASE".into(),
            freezer_class: Some("ULTRA_COLD".into()),
            receiving_days: "MON,WED".into(),
            receiving_hours: "09:00-17:00".into(),
            wholesaler: wholesaler.map(Into::into),
            products: "comirnaty".into(),
            ..SiteDraft::default()
        };
        Site {
            code: "1312020017".parse().expect("code"),
            details: SiteDetails::validate(&draft, "").expect("valid"),
            status: SiteStatus::Active,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn an_order_carries_the_vaccine_and_its_ancillaries_per_vial() {
        let m: MunicipalityCode = "131016".parse().expect("m");
        let at = Utc::now();
        let o = build_order(
            &round(),
            3,
            &comirnaty(),
            &site(Some("suzuken")),
            &m,
            Boxes::new(2),
            at,
            "MUNICIPALITY:131016",
        )
        .expect("order");
        assert_eq!(o.id, "7-1312020017");
        assert_eq!((o.boxes.get(), o.vials.get(), o.doses.get()), (2, 390, 2340));
        assert_eq!(o.ancillaries.len(), 2);
        assert!(o.ancillaries.iter().all(|a| a.pieces == Pieces::new(2340)));
        assert_eq!(o.wholesaler.as_str(), "suzuken");

        let msg = serde_json::to_value(order_created(&o, &round(), &site(Some("suzuken")))).expect("json");
        assert_eq!(msg["schemaVersion"], 1);
        assert_eq!(msg["orderId"], "7-1312020017");
        assert_eq!(msg["round"]["startsOn"], "2021-07-05");
        assert_eq!(msg["site"]["receivingDays"], serde_json::json!(["MON", "WED"]));
        assert_eq!(
            msg["items"][0],
            serde_json::json!({"kind": "VACCINE", "product": "comirnaty", "boxes": 2, "vials": 390, "doses": 2340})
        );
        assert_eq!(
            msg["items"][1],
            serde_json::json!({"kind": "ANCILLARY", "product": "needle-25g", "perVial": 6, "pieces": 2340})
        );
        let back: OrderCreated = serde_json::from_value(msg).expect("round trip");
        assert_eq!(back.items.len(), 3);
        assert_eq!(idempotency_key(&o.id), "order.created:7-1312020017");
    }

    #[test]
    fn problems_block_an_order() {
        let m: MunicipalityCode = "131016".parse().expect("m");
        let build = |s: &Site, muni: &MunicipalityCode| {
            build_order(&round(), 3, &comirnaty(), s, muni, Boxes::new(1), Utc::now(), "x").map(|_| ())
        };
        assert_eq!(build(&site(None), &m), Err(OrderProblem::NoWholesaler));
        let mut withdrawn = site(Some("suzuken"));
        withdrawn.status = SiteStatus::Withdrawn;
        assert_eq!(
            build(&withdrawn, &m),
            Err(OrderProblem::Ineligible(Ineligible::Withdrawn))
        );
        let shinjuku: MunicipalityCode = "131041".parse().expect("m");
        assert_eq!(
            build(&site(Some("suzuken")), &shinjuku),
            Err(OrderProblem::Ineligible(Ineligible::OutsideArea))
        );
        assert_eq!(OrderProblem::NoWholesaler.code(), "NO_WHOLESALER");
    }
}
