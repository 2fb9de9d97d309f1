//! Delivery resolvers: a wholesaler registers a delivery against an order (`registerDelivery`),
//! the receiving site confirms receipt (`confirmDeliveryReceipt`, whose accepted vials enter the
//! stock ledger; the stock changes are published after the commit), scoped reads
//! (`deliveries`, `delivery`), and an order's delivered / accepted sums (`Order.fulfilment`,
//! batched by [`FulfilmentLoader`] and [`DeliveriesLoader`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::deliveries as svc;
use domain::delivery as rules;
use domain::quantity::Vials as DVials;
use domain::store::Store;

use super::scalars::{LotNumber, MunicipalityCode, ProductCode, SiteCode, Vials, WholesalerId};
use super::stock_types::StockChange;
use super::{caller_actor, gql, store};
use crate::error::{code, coded};

const MAX_PAGE: usize = 200;
const DEFAULT_PAGE: usize = 50;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::delivery::RejectionReason")]
pub enum DeliveryRejectionReason {
    /// Broken or damaged on arrival.
    Damaged,
    /// The cold chain was broken in transport.
    TemperatureExcursion,
    /// Not the product that was ordered.
    WrongProduct,
    /// Expired, or too close to expiry to be used.
    Expired,
    /// Fewer vials arrived than the wholesaler registered.
    Shortage,
    /// Anything else; say what in `rejectionNote`.
    Other,
}

/// A delivery (納品) a wholesaler made against an order.
pub struct Delivery(pub svc::Delivery);

#[Object]
impl Delivery {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The order delivered against (`{roundId}-{siteCode}`).
    async fn order(&self) -> &str {
        &self.0.order
    }
    async fn wholesaler(&self) -> WholesalerId {
        self.0.wholesaler.clone().into()
    }
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    /// The wholesaler's key for this delivery (re-sending with it changes nothing).
    async fn idempotency_key(&self) -> &str {
        &self.0.idempotency_key
    }
    async fn delivered_on(&self) -> NaiveDate {
        self.0.delivered_on
    }
    /// Σ of the lots' vials.
    async fn vials(&self) -> Vials {
        self.0.vials.into()
    }
    /// Why more than ordered was delivered, when it was.
    async fn over_delivery_reason(&self) -> Option<&str> {
        self.0.over_delivery_reason.as_deref()
    }
    async fn note(&self) -> &str {
        &self.0.note
    }
    async fn registered_at(&self) -> DateTime<Utc> {
        self.0.registered_at
    }
    async fn registered_by(&self) -> &str {
        &self.0.registered_by
    }
    async fn lots(&self) -> Vec<DeliveryLot> {
        self.0
            .lots
            .iter()
            .map(|l| DeliveryLot {
                lot: l.lot.clone().into(),
                expiry_date: l.expiry_date,
                vials: l.vials.into(),
                accepted: l.accepted.map(Into::into),
                rejected: l.rejected.map(Into::into),
            })
            .collect()
    }
    /// The site's confirmation; null until it confirmed receipt.
    async fn receipt(&self) -> Option<DeliveryReceipt> {
        self.0.receipt.as_ref().map(|r| DeliveryReceipt {
            received_on: r.received_on,
            accepted: r.accepted.into(),
            rejected: r.rejected.into(),
            rejection_reason: r.rejection_reason.map(Into::into),
            rejection_note: r.rejection_note.clone(),
            confirmed_at: r.confirmed_at,
            confirmed_by: r.confirmed_by.clone(),
        })
    }
}

/// One lot of a delivery.
#[derive(SimpleObject)]
pub struct DeliveryLot {
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub vials: Vials,
    /// Once the site confirmed: vials it took into stock.
    pub accepted: Option<Vials>,
    /// Once the site confirmed: vials it refused.
    pub rejected: Option<Vials>,
}

/// The receiving site's confirmation of a delivery.
#[derive(SimpleObject)]
pub struct DeliveryReceipt {
    pub received_on: NaiveDate,
    pub accepted: Vials,
    pub rejected: Vials,
    pub rejection_reason: Option<DeliveryRejectionReason>,
    pub rejection_note: Option<String>,
    pub confirmed_at: DateTime<Utc>,
    pub confirmed_by: String,
}

/// What `registerDelivery` did.
#[derive(SimpleObject)]
pub struct DeliveryRegistration {
    pub delivery: Delivery,
    /// False when this was a re-send of a delivery stored before under the same key: nothing
    /// changed, and `delivery` is the original.
    pub created: bool,
}

/// What `confirmDeliveryReceipt` did: the confirmed delivery and the RECEIVED stock changes
/// its accepted vials made (one per lot with accepted vials).
#[derive(SimpleObject)]
pub struct DeliveryReceiptOutcome {
    pub delivery: Delivery,
    pub stock_changes: Vec<StockChange>,
}

/// What an order has received so far: sums over its deliveries, in vials.
#[derive(SimpleObject)]
pub struct OrderFulfilment {
    /// As ordered (the order's `vials`).
    pub ordered: Vials,
    /// Σ vials of its deliveries.
    pub delivered: Vials,
    /// Of those, vials in deliveries the site has not confirmed yet.
    pub awaiting_receipt: Vials,
    /// Vials the site accepted into stock.
    pub accepted: Vials,
    /// Vials the site refused at receipt.
    pub rejected: Vials,
    /// Still to deliver: ordered − (delivered − rejected), never below 0.
    pub outstanding: Vials,
    /// Deliveries registered against the order.
    pub deliveries: u64,
}

impl OrderFulfilment {
    pub fn new(ordered: DVials, f: svc::Fulfilment) -> Self {
        let kept = f.delivered.checked_sub(f.rejected).unwrap_or(DVials::ZERO);
        OrderFulfilment {
            ordered: ordered.into(),
            delivered: f.delivered.into(),
            awaiting_receipt: f.awaiting_receipt.into(),
            accepted: f.accepted.into(),
            rejected: f.rejected.into(),
            outstanding: ordered.checked_sub(kept).unwrap_or(DVials::ZERO).into(),
            deliveries: f.deliveries,
        }
    }
}

/// Batches `Order.fulfilment` over a page of orders into one query. Orders reach it only after
/// the service returned them to the caller, i.e. after their read was authorized.
pub struct FulfilmentLoader(pub Store);

impl Loader<String> for FulfilmentLoader {
    type Value = svc::Fulfilment;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        svc::fulfilment(&self.0, keys)
            .await
            .map_err(|e| Arc::new(crate::error::from_domain(e)))
    }
}

/// `Order.fulfilment`, for the order resolver.
pub async fn fulfilment_of(ctx: &Context<'_>, order: &domain::order::Order) -> async_graphql::Result<OrderFulfilment> {
    let loader = ctx.data::<DataLoader<FulfilmentLoader>>()?;
    let f = loader
        .load_one(order.id.clone())
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or_default();
    Ok(OrderFulfilment::new(order.vials, f))
}

/// Batches `Order.deliveries` over the orders of a page (see `svc::of_orders`).
pub struct DeliveriesLoader(pub Store);

impl Loader<String> for DeliveriesLoader {
    type Value = Vec<svc::Delivery>;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        svc::of_orders(&self.0, keys)
            .await
            .map_err(|e| Arc::new(crate::error::from_domain(e)))
    }
}

/// `Order.deliveries`, for the order resolver: the order's deliveries, newest first (the
/// caller has read the order, and deliveries are read in the orders' scope).
pub async fn deliveries_of(ctx: &Context<'_>, order: &str) -> async_graphql::Result<Vec<Delivery>> {
    let loader = ctx.data::<DataLoader<DeliveriesLoader>>()?;
    let found = loader
        .load_one(order.to_owned())
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or_default();
    Ok(found.into_iter().take(MAX_PAGE).map(Delivery).collect())
}

fn delivery_id(id: &ID, field: &str) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| coded(format!("{field}: not a delivery id"), code::BAD_USER_INPUT))
}

/// One lot as delivered.
#[derive(InputObject)]
pub struct DeliveryLotInput {
    pub lot: LotNumber,
    pub expiry_date: NaiveDate,
    pub vials: Vials,
}

/// A delivery made against an order addressed to you.
#[derive(InputObject)]
pub struct RegisterDeliveryInput {
    /// The order's id (`{roundId}-{siteCode}`).
    pub order: String,
    /// Your key for this delivery, 1–100 printable ASCII characters, unique among your
    /// deliveries: sending the same delivery again with it changes nothing.
    pub idempotency_key: String,
    /// The day it was delivered (not in the future).
    pub delivered_on: NaiveDate,
    /// Each lot once, with its expiry date and vials (none expired on the day delivered).
    pub lots: Vec<DeliveryLotInput>,
    /// Required to deliver more than ordered (counting what the site kept: rejected vials may
    /// be replaced without one).
    pub over_delivery_reason: Option<String>,
    #[graphql(default)]
    pub note: String,
}

/// Of one delivered lot, the vials accepted into stock and refused.
#[derive(InputObject)]
pub struct DeliveryReceiptLotInput {
    pub lot: LotNumber,
    pub accepted: Vials,
    pub rejected: Vials,
}

/// Your site's confirmation of a delivery made to it.
#[derive(InputObject)]
pub struct ConfirmDeliveryReceiptInput {
    pub delivery: ID,
    /// The day the boxes were checked; today (Japan) when omitted.
    pub received_on: Option<NaiveDate>,
    /// Every lot of the delivery once: accepted + rejected = its delivered vials.
    pub lots: Vec<DeliveryReceiptLotInput>,
    /// Required when any vial is rejected (and only then).
    pub rejection_reason: Option<DeliveryRejectionReason>,
    /// Required with reason OTHER.
    pub rejection_note: Option<String>,
}

#[derive(InputObject, Default)]
pub struct DeliveryFilterInput {
    pub order: Option<String>,
    pub site: Option<SiteCode>,
    pub municipality: Option<MunicipalityCode>,
    pub wholesaler: Option<WholesalerId>,
    /// Only deliveries the site has confirmed (true) or not yet (false).
    pub confirmed: Option<bool>,
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    /// Deliveries in your scope (as for orders: a wholesaler its own, a site those made to it,
    /// a municipality or prefecture those to its sites, NATIONAL all), newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<DeliveryFilterInput>,
    ) -> async_graphql::Result<Connection<String, Delivery, EmptyFields, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = svc::DeliveryFilter {
            order: f.order,
            site: f.site.map(|s| s.0),
            municipality: f.municipality.map(|m| m.0),
            wholesaler: f.wholesaler.map(|w| w.0),
            confirmed: f.confirmed,
        };
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _, first, _| async move {
                let first = first.unwrap_or(DEFAULT_PAGE);
                if first > MAX_PAGE {
                    return Err(coded(format!("first: at most {MAX_PAGE}"), code::BAD_USER_INPUT));
                }
                let after = after
                    .map(|c| {
                        c.parse::<i64>()
                            .map_err(|_| coded("after: not a cursor from this list", code::BAD_USER_INPUT))
                    })
                    .transpose()?;
                let page = gql(svc::deliveries(store, actor, &filter, after, first as u64).await)?;
                let mut conn = Connection::new(after.is_some(), page.has_next);
                conn.edges.extend(
                    page.deliveries
                        .into_iter()
                        .map(|d| Edge::new(d.id.to_string(), Delivery(d))),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One delivery in your scope.
    async fn delivery(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Delivery> {
        let actor = caller_actor(ctx)?;
        let id = delivery_id(&id, "id")?;
        Ok(Delivery(gql(svc::delivery(store(ctx)?, actor, id).await)?))
    }
}

#[derive(Default)]
pub struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Registers a delivery against an order addressed to you (WHOLESALER). Partial deliveries
    /// and several per order are fine; more than ordered needs `overDeliveryReason`. Sending the
    /// same delivery again with its `idempotencyKey` returns the original (`created: false`);
    /// the same key with other content is CONFLICT.
    async fn register_delivery(
        &self,
        ctx: &Context<'_>,
        input: RegisterDeliveryInput,
    ) -> async_graphql::Result<DeliveryRegistration> {
        let actor = caller_actor(ctx)?;
        let draft = rules::DeliveryDraft {
            order: input.order,
            idempotency_key: input.idempotency_key,
            delivered_on: input.delivered_on,
            lots: input
                .lots
                .into_iter()
                .map(|l| rules::DeliveredLot {
                    lot: l.lot.0,
                    expiry_date: l.expiry_date,
                    vials: l.vials.0,
                })
                .collect(),
            over_delivery_reason: input.over_delivery_reason,
            note: input.note,
        };
        let r = gql(svc::register(store(ctx)?, actor, &draft).await)?;
        Ok(DeliveryRegistration {
            delivery: Delivery(r.delivery),
            created: r.created,
        })
    }

    /// Confirms receipt of a delivery made to your site (SITE): per lot, the vials accepted and
    /// rejected. Accepted vials enter your stock (RECEIVED entries naming the delivery) in the
    /// same transaction; `stockChanged` subscribers hear of them after it committed. Once only.
    async fn confirm_delivery_receipt(
        &self,
        ctx: &Context<'_>,
        input: ConfirmDeliveryReceiptInput,
    ) -> async_graphql::Result<DeliveryReceiptOutcome> {
        let actor = caller_actor(ctx)?;
        let draft = rules::ReceiptDraft {
            delivery: delivery_id(&input.delivery, "input.delivery")?,
            received_on: input.received_on,
            lots: input
                .lots
                .into_iter()
                .map(|l| rules::LotReceipt {
                    lot: l.lot.0,
                    accepted: l.accepted.0,
                    rejected: l.rejected.0,
                })
                .collect(),
            rejection_reason: input.rejection_reason.map(Into::into),
            rejection_note: input.rejection_note,
        };
        let (delivery, changes) = gql(svc::confirm_receipt(store(ctx)?, actor, &draft).await)?;
        let changes: Vec<_> = changes.into_iter().map(Arc::new).collect();
        super::stock::publish(ctx, &changes)?;
        Ok(DeliveryReceiptOutcome {
            delivery: Delivery(delivery),
            stock_changes: changes.into_iter().map(StockChange).collect(),
        })
    }
}
