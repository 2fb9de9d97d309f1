//! Allocation resolvers: rounds and supply, target populations, requests, allocations of each
//! level with their lines and reasons, orders and the outbox. Each resolver: caller + input →
//! one domain call → view type.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::allocations as svc;

use super::products::Product;
use super::scalars::{
    AllocationOwner, Boxes, Doses, MunicipalityCode, Pieces, PrefectureCode, ProductCode, SiteCode, Vials, WholesalerId,
};
use super::{RefData, caller_actor, gql, store};
use crate::error::{code, coded};

const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::allocation::Level")]
pub enum Level {
    National,
    Prefecture,
    Municipality,
    Site,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::allocation::AllocationStatus")]
pub enum AllocationStatus {
    /// Being worked on by its owner.
    Draft,
    /// Final: handed down to the level below (orders written for a municipality).
    Confirmed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::allocation::WeightSource")]
pub enum WeightSource {
    TargetPopulation,
    Request,
    Equal,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::allocation::Ineligible")]
pub enum Ineligible {
    Withdrawn,
    OutsideArea,
    ProductNotHandled,
    NoFreezer,
    FreezerTooWarm,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::order::OrderStatus")]
pub enum OrderStatus {
    /// Written with its outbox message; not yet sent.
    Created,
    /// Waiting for a customer code or the wholesaler's configuration (see `holdReason`);
    /// released automatically when it arrives.
    Held,
    /// Handed to the wholesaler; waiting for its acknowledgement.
    Sent,
    /// The wholesaler confirmed receipt.
    Acknowledged,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::outbox::OutboxStatus")]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Parked,
    Held,
}

/// A two-week delivery round (クール) of one vaccine.
pub struct Round(pub domain::allocation::Round);

#[Object]
impl Round {
    async fn id(&self) -> i32 {
        self.0.id
    }
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Product> {
        Ok(Product(gql(domain::product::get(store(ctx)?, &self.0.product).await)?))
    }
    /// The round's ordinal (第9クール: 9).
    async fn number(&self) -> i32 {
        self.0.number
    }
    async fn starts_on(&self) -> NaiveDate {
        self.0.starts_on
    }
    async fn ends_on(&self) -> NaiveDate {
        self.0.ends_on
    }
    /// The national supply registered for the round (❶).
    async fn supply(&self) -> Boxes {
        self.0.supply.into()
    }
    /// The national allocation's status.
    async fn status(&self) -> AllocationStatus {
        self.0.status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Why a child got what it got, step by step (see the README's "Allocation" for the method).
pub struct LineReason {
    reason: domain::allocation::LineReason,
    summary: Option<Arc<domain::allocation::ProposalSummary>>,
}

#[Object]
impl LineReason {
    /// The child's weight for the base share (target population; a site's request).
    async fn weight(&self) -> u64 {
        self.reason.weight
    }
    async fn request(&self) -> Option<Boxes> {
        self.reason.request.map(Into::into)
    }
    /// The cap that applied (its own, or its request with capAtRequest).
    async fn cap(&self) -> Option<Boxes> {
        self.reason.cap.map(Into::into)
    }
    async fn eligible(&self) -> bool {
        self.reason.ineligible.is_none()
    }
    async fn ineligible(&self) -> Option<Ineligible> {
        self.reason.ineligible.map(Into::into)
    }
    async fn base_share(&self) -> f64 {
        self.reason.base_share
    }
    async fn adjustment_share(&self) -> f64 {
        self.reason.adjustment_share
    }
    /// Base + adjustment share, before caps and rounding.
    async fn ideal_share(&self) -> f64 {
        self.reason.ideal_share()
    }
    async fn capped(&self) -> bool {
        self.reason.capped
    }
    async fn share_after_caps(&self) -> f64 {
        self.reason.share_after_caps
    }
    /// Got one of the leftover boxes of the largest-remainder step.
    async fn rounded_up(&self) -> bool {
        self.reason.rounded_up
    }
    /// The proposed boxes.
    async fn boxes(&self) -> Boxes {
        self.reason.boxes.into()
    }
    /// The reason in one sentence.
    async fn explanation(&self) -> String {
        match &self.summary {
            Some(s) => self.reason.explain(s),
            None => String::new(),
        }
    }
}

/// One child's line of an allocation.
pub struct AllocationLine {
    line: svc::AllocationLine,
    summary: Option<Arc<domain::allocation::ProposalSummary>>,
}

#[Object]
impl AllocationLine {
    /// The prefecture, municipality or site code.
    async fn child(&self) -> &str {
        self.line.child.as_str()
    }
    async fn child_level(&self) -> Level {
        self.line.child.level().into()
    }
    /// A prefecture's or municipality's name (sites: null).
    async fn child_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(ctx.data::<Arc<RefData>>()?.name_of(self.line.child.as_str()))
    }
    async fn boxes(&self) -> Boxes {
        self.line.boxes.into()
    }
    /// What the last proposal suggested (null for a line set by hand).
    async fn proposed(&self) -> Option<Boxes> {
        self.line.proposed.map(Into::into)
    }
    /// Changed by hand after the proposal.
    async fn edited(&self) -> bool {
        self.line.edited_by.is_some() && self.line.proposed != Some(self.line.boxes)
    }
    async fn edited_by(&self) -> Option<&str> {
        self.line.edited_by.as_deref()
    }
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.line.edited_at
    }
    /// Why the proposal gave this child what it did.
    async fn reason(&self) -> Option<LineReason> {
        self.line.reason.clone().map(|reason| LineReason {
            reason,
            summary: self.summary.clone(),
        })
    }
}

/// The totals of the last proposal.
pub struct ProposalSummary(svc::StoredProposal);

#[Object]
impl ProposalSummary {
    async fn total(&self) -> Boxes {
        self.0.summary.total.into()
    }
    async fn adjustment_percent(&self) -> u8 {
        self.0.summary.adjustment_percent
    }
    async fn base_pool(&self) -> Boxes {
        self.0.summary.base_pool.into()
    }
    async fn adjustment_pool(&self) -> Boxes {
        self.0.summary.adjustment_pool.into()
    }
    async fn base_by(&self) -> WeightSource {
        self.0.summary.base_by.into()
    }
    async fn adjustment_by(&self) -> WeightSource {
        self.0.summary.adjustment_by.into()
    }
    async fn cap_at_request(&self) -> bool {
        self.0.summary.cap_at_request
    }
    /// Σ weight over eligible children.
    async fn weight_total(&self) -> u64 {
        self.0.summary.weight_total
    }
    /// Σ requests over eligible children.
    async fn request_total(&self) -> u64 {
        self.0.summary.request_total
    }
    async fn eligible_children(&self) -> u32 {
        self.0.summary.eligible
    }
    async fn capped_children(&self) -> u32 {
        self.0.summary.capped
    }
    async fn allocated(&self) -> Boxes {
        self.0.summary.allocated.into()
    }
    async fn unallocated(&self) -> Boxes {
        self.0.summary.unallocated.into()
    }
    async fn proposed_at(&self) -> DateTime<Utc> {
        self.0.proposed_at
    }
    async fn proposed_by(&self) -> &str {
        &self.0.proposed_by
    }
}

/// Something that blocks a confirmation until it is fixed.
#[derive(SimpleObject)]
pub struct BlockingProblem {
    /// The code of what it concerns (a site code).
    pub subject: String,
    /// A stable reason: NO_WHOLESALER, WITHDRAWN, NO_FREEZER, …
    pub reason: String,
    pub message: String,
}

impl From<domain::error::BlockingItem> for BlockingProblem {
    fn from(b: domain::error::BlockingItem) -> Self {
        BlockingProblem {
            subject: b.subject,
            reason: b.reason,
            message: b.message,
        }
    }
}

/// One level's allocation of a round: what its owner received and how it hands it down.
pub struct Allocation(pub svc::Allocation);

#[Object]
impl Allocation {
    async fn id(&self) -> i32 {
        self.0.id
    }
    async fn round_id(&self) -> i32 {
        self.0.round
    }
    async fn round(&self, ctx: &Context<'_>) -> async_graphql::Result<Round> {
        Ok(Round(gql(svc::round(store(ctx)?, self.0.round).await)?))
    }
    async fn owner(&self) -> AllocationOwner {
        AllocationOwner(self.0.owner)
    }
    /// The owner's name (null for the nation).
    async fn owner_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(ctx.data::<Arc<RefData>>()?.name_of(self.0.owner.key()))
    }
    async fn level(&self) -> Level {
        self.0.level().into()
    }
    async fn status(&self) -> AllocationStatus {
        self.0.status.into()
    }
    /// What the owner received from the level above (the national supply for NATIONAL).
    async fn received(&self) -> Boxes {
        self.0.received.into()
    }
    /// Σ of all lines.
    async fn allocated(&self) -> Boxes {
        self.0.allocated.into()
    }
    async fn unallocated(&self) -> Boxes {
        self.0.unallocated().into()
    }
    /// Pass it as `expectedVersion` to refuse acting on a stale view.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn proposal(&self) -> Option<ProposalSummary> {
        self.0.proposal.clone().map(ProposalSummary)
    }
    /// In child-code order. A child reading its parent's allocation sees only its own line.
    async fn lines(&self) -> Vec<AllocationLine> {
        let summary = self.0.proposal.as_ref().map(|p| Arc::new(p.summary.clone()));
        self.0
            .lines
            .iter()
            .cloned()
            .map(|line| AllocationLine {
                line,
                summary: summary.clone(),
            })
            .collect()
    }
    /// False when `lines` shows only the reader's own line.
    async fn lines_complete(&self) -> bool {
        self.0.lines_complete
    }
    async fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.0.confirmed_at
    }
    async fn confirmed_by(&self) -> Option<&str> {
        self.0.confirmed_by.as_deref()
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// What would block confirming now (a municipality's sites with boxes but no wholesaler,
    /// withdrawn or not eligible). Empty when nothing blocks.
    async fn problems(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<BlockingProblem>> {
        let actor = caller_actor(ctx)?;
        Ok(
            gql(svc::problems(store(ctx)?, actor, self.0.round, &self.0.owner).await)?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }
}

/// A request (希望量) for a round.
pub struct AllocationRequest(domain::allocation::AllocationRequest);

#[Object]
impl AllocationRequest {
    async fn round_id(&self) -> i32 {
        self.0.round
    }
    /// The requester's level: PREFECTURE, MUNICIPALITY or SITE.
    async fn level(&self) -> Level {
        self.0.requester.level().into()
    }
    /// The requester's code.
    async fn requester(&self) -> &str {
        self.0.requester.as_str()
    }
    async fn prefecture(&self) -> PrefectureCode {
        self.0.prefecture.into()
    }
    async fn municipality(&self) -> Option<MunicipalityCode> {
        self.0.municipality.map(Into::into)
    }
    async fn boxes(&self) -> Boxes {
        self.0.boxes.into()
    }
    async fn note(&self) -> &str {
        &self.0.note
    }
    async fn submitted_by(&self) -> &str {
        &self.0.submitted_by
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject)]
pub struct TargetPopulation {
    pub municipality: MunicipalityCode,
    pub population: u64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(SimpleObject)]
pub struct TargetPopulationImport {
    /// Municipalities whose target population was set.
    pub imported: u64,
}

#[derive(SimpleObject)]
pub struct OrderAncillary {
    pub product: ProductCode,
    pub per_vial: u32,
    pub pieces: Pieces,
}

/// An order instruction (発注指示) to a wholesaler for one site.
pub struct Order(domain::order::Order);

#[Object]
impl Order {
    /// `{roundId}-{siteCode}`.
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn round_id(&self) -> i32 {
        self.0.round
    }
    async fn product(&self) -> ProductCode {
        self.0.product.clone().into()
    }
    async fn site(&self) -> SiteCode {
        self.0.site.into()
    }
    async fn municipality(&self) -> MunicipalityCode {
        self.0.municipality.into()
    }
    async fn wholesaler(&self) -> WholesalerId {
        self.0.wholesaler.clone().into()
    }
    async fn boxes(&self) -> Boxes {
        self.0.boxes.into()
    }
    async fn vials(&self) -> Vials {
        self.0.vials.into()
    }
    async fn doses(&self) -> Doses {
        self.0.doses.into()
    }
    /// Needles and syringes: so many pieces per vial.
    async fn ancillaries(&self) -> Vec<OrderAncillary> {
        self.0
            .ancillaries
            .iter()
            .map(|a| OrderAncillary {
                product: a.product.clone().into(),
                per_vial: a.per_vial.get(),
                pieces: a.pieces.into(),
            })
            .collect()
    }
    async fn status(&self) -> OrderStatus {
        self.0.status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    /// The wholesaler's customer code for the site the order went out with (set when first
    /// translated; every resend carries the same one).
    async fn customer_code(&self) -> Option<&str> {
        self.0.progress.customer_code.as_deref()
    }
    /// Why the order is held (status HELD), e.g. `NO_CUSTOMER_CODE: …`.
    async fn hold_reason(&self) -> Option<&str> {
        self.0.progress.hold_reason.as_deref()
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.progress.sent_at
    }
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.0.progress.acknowledged_at
    }
    /// The wholesaler's own reference, if it gave one when acknowledging.
    async fn ack_reference(&self) -> Option<&str> {
        self.0.progress.ack_reference.as_deref()
    }
    /// Ordered / delivered / accepted vials: sums over the order's deliveries.
    async fn fulfilment(&self, ctx: &Context<'_>) -> async_graphql::Result<super::deliveries::OrderFulfilment> {
        super::deliveries::fulfilment_of(ctx, &self.0).await
    }
    /// The deliveries registered against this order, newest first.
    async fn deliveries(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::deliveries::Delivery>> {
        super::deliveries::deliveries_of(ctx, &self.0.id).await
    }
}

/// A message waiting for (or delivered to) a partner.
pub struct OutboxEntry(pub domain::outbox::OutboxEntry);

#[Object]
impl OutboxEntry {
    async fn id(&self) -> i64 {
        self.0.id
    }
    /// e.g. order.created
    async fn topic(&self) -> &str {
        &self.0.topic
    }
    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }
    async fn aggregate_key(&self) -> &str {
        &self.0.aggregate_key
    }
    /// e.g. wholesaler:suzuken
    async fn destination(&self) -> &str {
        &self.0.destination
    }
    async fn payload(&self) -> async_graphql::Result<Json<serde_json::Value>> {
        serde_json::from_str(&self.0.payload)
            .map(Json)
            .map_err(|_| coded("internal error", code::INTERNAL))
    }
    async fn idempotency_key(&self) -> &str {
        &self.0.idempotency_key
    }
    async fn status(&self) -> OutboxStatus {
        self.0.status.into()
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
}

#[derive(InputObject, Default)]
pub struct OrderFilterInput {
    pub round: Option<i32>,
    pub municipality: Option<MunicipalityCode>,
    pub site: Option<SiteCode>,
    pub wholesaler: Option<WholesalerId>,
    /// e.g. SENT: the orders a pulling wholesaler has still to acknowledge.
    pub status: Option<OrderStatus>,
}

#[derive(InputObject)]
pub struct CreateRoundInput {
    pub product: ProductCode,
    /// The round's ordinal (1 and up), unique per product.
    pub number: i32,
    /// A Monday; the round runs two weeks.
    pub starts_on: NaiveDate,
    /// The national supply, if already known (or later with setRoundSupply).
    pub supply: Option<Boxes>,
}

#[derive(InputObject)]
pub struct CapInput {
    /// A child's code (prefecture, municipality or site, by level).
    pub child: String,
    pub max: Boxes,
}

#[derive(InputObject, Default)]
pub struct ProposeOptionsInput {
    /// The adjustment share (調整枠) in percent; default 20.
    pub adjustment_percent: Option<u8>,
    /// Never give a child more than it requested.
    #[graphql(default)]
    pub cap_at_request: bool,
    /// Per-child maximums.
    #[graphql(default)]
    pub caps: Vec<CapInput>,
}

#[derive(InputObject)]
pub struct AllocationLineInput {
    /// A prefecture, municipality or site code, by the allocation's level.
    pub child: String,
    /// 0 takes everything away from the child.
    pub boxes: Boxes,
}

fn owner_or_own(
    actor: &domain::authz::Actor,
    owner: Option<AllocationOwner>,
) -> async_graphql::Result<domain::allocation::AllocationOwner> {
    match owner {
        Some(o) => Ok(o.0),
        None => domain::authz::own_allocation(actor).map_err(|d| coded(d.0, code::FORBIDDEN)),
    }
}

#[derive(Default)]
pub struct AllocationQuery;

#[Object]
impl AllocationQuery {
    /// Rounds, newest first, optionally of one product.
    async fn rounds(&self, ctx: &Context<'_>, product: Option<ProductCode>) -> async_graphql::Result<Vec<Round>> {
        caller_actor(ctx)?;
        Ok(gql(svc::rounds(store(ctx)?, product.as_ref().map(|p| &p.0)).await)?
            .into_iter()
            .map(Round)
            .collect())
    }

    async fn round(&self, ctx: &Context<'_>, id: i32) -> async_graphql::Result<Round> {
        caller_actor(ctx)?;
        Ok(Round(gql(svc::round(store(ctx)?, id).await)?))
    }

    /// One allocation: `owner` NATIONAL, a prefecture or a municipality (default: your own).
    /// Its owner and the levels above see every line; a child sees only its own line of its
    /// parent's allocation.
    async fn allocation(
        &self,
        ctx: &Context<'_>,
        round: i32,
        owner: Option<AllocationOwner>,
    ) -> async_graphql::Result<Allocation> {
        let actor = caller_actor(ctx)?;
        let owner = owner_or_own(actor, owner)?;
        Ok(Allocation(gql(svc::get(store(ctx)?, actor, round, &owner).await)?))
    }

    /// The allocations of one level that you see in full (NATIONAL: all; a prefecture: its own
    /// and its municipalities'; a municipality: its own), optionally within a prefecture.
    async fn allocations(
        &self,
        ctx: &Context<'_>,
        round: i32,
        level: Level,
        prefecture: Option<PrefectureCode>,
    ) -> async_graphql::Result<Vec<Allocation>> {
        let actor = caller_actor(ctx)?;
        let with_lines = ctx.look_ahead().field("lines").exists();
        Ok(gql(svc::list(
            store(ctx)?,
            actor,
            round,
            level.into(),
            prefecture.map(|p| p.0),
            with_lines,
        )
        .await)?
        .into_iter()
        .map(Allocation)
        .collect())
    }

    /// Requests (希望量) for a round: yours and those of the levels below you in your area.
    async fn allocation_requests(
        &self,
        ctx: &Context<'_>,
        round: i32,
    ) -> async_graphql::Result<Vec<AllocationRequest>> {
        let actor = caller_actor(ctx)?;
        Ok(gql(svc::requests(store(ctx)?, actor, round).await)?
            .into_iter()
            .map(AllocationRequest)
            .collect())
    }

    /// Target populations per municipality (the base share's weight).
    async fn target_populations(
        &self,
        ctx: &Context<'_>,
        prefecture: Option<PrefectureCode>,
    ) -> async_graphql::Result<Vec<TargetPopulation>> {
        caller_actor(ctx)?;
        Ok(
            gql(svc::target_populations(store(ctx)?, prefecture.map(|p| p.0)).await)?
                .into_iter()
                .map(|t| TargetPopulation {
                    municipality: t.municipality.into(),
                    population: t.population,
                    updated_at: t.updated_at,
                    updated_by: t.updated_by,
                })
                .collect(),
        )
    }

    /// Orders in your scope (a wholesaler: those addressed to it), by id (cursor pagination).
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<OrderFilterInput>,
    ) -> async_graphql::Result<Connection<String, Order, EmptyFields, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = svc::OrderFilter {
            round: f.round,
            municipality: f.municipality.map(|m| m.0),
            site: f.site.map(|s| s.0),
            wholesaler: f.wholesaler.map(|w| w.0),
            status: f.status.map(Into::into),
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
                let page = gql(svc::orders(store, actor, &filter, after.as_deref(), first as u64).await)?;
                let mut conn = Connection::new(after.is_some(), page.has_next);
                conn.edges
                    .extend(page.orders.into_iter().map(|o| Edge::new(o.id.clone(), Order(o))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    async fn order(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Order> {
        let actor = caller_actor(ctx)?;
        Ok(Order(gql(svc::order(store(ctx)?, actor, &id).await)?))
    }

    /// Outbox messages in id order after `after` (NATIONAL).
    async fn outbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<i64>,
        topic: Option<String>,
        aggregate_key: Option<String>,
        status: Option<OutboxStatus>,
    ) -> async_graphql::Result<Vec<OutboxEntry>> {
        let actor = caller_actor(ctx)?;
        if !(1..=MAX_PAGE as i32).contains(&first) {
            return Err(coded(format!("first: between 1 and {MAX_PAGE}"), code::BAD_USER_INPUT));
        }
        let filter = domain::outbox::OutboxFilter {
            topic,
            aggregate_key,
            status: status.map(Into::into),
        };
        Ok(
            gql(domain::outbox::list(store(ctx)?, actor, &filter, after, first as u64).await)?
                .into_iter()
                .map(OutboxEntry)
                .collect(),
        )
    }
}

#[derive(Default)]
pub struct AllocationMutation;

#[Object]
impl AllocationMutation {
    /// A new round of a vaccine (NATIONAL).
    async fn create_round(&self, ctx: &Context<'_>, input: CreateRoundInput) -> async_graphql::Result<Round> {
        let actor = caller_actor(ctx)?;
        let new = svc::NewRound {
            product: input.product.0,
            number: input.number,
            starts_on: input.starts_on,
            supply: input.supply.map(|s| s.0),
        };
        Ok(Round(gql(svc::create_round(store(ctx)?, actor, &new).await)?))
    }

    /// ❶ Registers the national supply of a round (NATIONAL). `product` must be the round's.
    async fn set_round_supply(
        &self,
        ctx: &Context<'_>,
        round: i32,
        product: ProductCode,
        supply: Boxes,
    ) -> async_graphql::Result<Round> {
        let actor = caller_actor(ctx)?;
        Ok(Round(gql(svc::set_supply(
            store(ctx)?,
            actor,
            round,
            &product.0,
            supply.0,
        )
        .await)?))
    }

    /// Imports target populations from CSV text with the columns `municipality_code` and
    /// `population` (NATIONAL any; a PREFECTURE its own municipalities). All or nothing.
    async fn import_target_population(
        &self,
        ctx: &Context<'_>,
        csv: String,
    ) -> async_graphql::Result<TargetPopulationImport> {
        let actor = caller_actor(ctx)?;
        let imported = gql(svc::import_target_population(store(ctx)?, actor, &csv).await)?;
        Ok(TargetPopulationImport { imported })
    }

    /// Submits or changes your request (希望量) for a round: a prefecture, municipality or site,
    /// for itself. Closed once the level above has confirmed.
    async fn submit_allocation_request(
        &self,
        ctx: &Context<'_>,
        round: i32,
        boxes: Boxes,
        note: Option<String>,
    ) -> async_graphql::Result<AllocationRequest> {
        let actor = caller_actor(ctx)?;
        Ok(AllocationRequest(gql(svc::submit_request(
            store(ctx)?,
            actor,
            round,
            boxes.0,
            note.as_deref().unwrap_or(""),
        )
        .await)?))
    }

    /// Computes a proposal for every child and stores it as the lines (your own allocation by
    /// default). Edit lines afterwards with setAllocationLines, then confirm.
    async fn propose_allocation(
        &self,
        ctx: &Context<'_>,
        round: i32,
        owner: Option<AllocationOwner>,
        options: Option<ProposeOptionsInput>,
    ) -> async_graphql::Result<Allocation> {
        let actor = caller_actor(ctx)?;
        let owner = owner_or_own(actor, owner)?;
        let o = options.unwrap_or_default();
        let options = svc::ProposeOptions {
            adjustment_percent: o.adjustment_percent,
            cap_at_request: o.cap_at_request,
            caps: o.caps.into_iter().map(|c| (c.child, c.max.0)).collect(),
        };
        Ok(Allocation(gql(svc::propose(
            store(ctx)?,
            actor,
            round,
            &owner,
            &options,
        )
        .await)?))
    }

    /// Sets some lines by hand (others stay). Pass `expectedVersion` to be refused with
    /// CONFLICT if the allocation changed since you read it.
    async fn set_allocation_lines(
        &self,
        ctx: &Context<'_>,
        round: i32,
        owner: Option<AllocationOwner>,
        lines: Vec<AllocationLineInput>,
        expected_version: Option<i32>,
    ) -> async_graphql::Result<Allocation> {
        let actor = caller_actor(ctx)?;
        let owner = owner_or_own(actor, owner)?;
        let edits: Vec<svc::LineEdit> = lines
            .into_iter()
            .map(|l| svc::LineEdit {
                child: l.child,
                boxes: l.boxes.0,
            })
            .collect();
        Ok(Allocation(gql(svc::set_lines(
            store(ctx)?,
            actor,
            round,
            &owner,
            &edits,
            expected_version,
        )
        .await)?))
    }

    /// Confirms your allocation (after the level above confirmed). A municipality's confirmation
    /// creates one order per site with boxes and its outbox entry; if any site cannot be ordered
    /// for (e.g. no designated wholesaler) nothing is confirmed and the error lists those sites
    /// in `extensions.blocking`.
    async fn confirm_allocation(
        &self,
        ctx: &Context<'_>,
        round: i32,
        owner: Option<AllocationOwner>,
        expected_version: Option<i32>,
    ) -> async_graphql::Result<Allocation> {
        let actor = caller_actor(ctx)?;
        let owner = owner_or_own(actor, owner)?;
        Ok(Allocation(gql(svc::confirm(
            store(ctx)?,
            actor,
            round,
            &owner,
            expected_version,
        )
        .await)?))
    }
}
