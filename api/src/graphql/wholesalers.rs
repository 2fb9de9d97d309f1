//! Wholesaler integration resolvers: wholesalers and how orders reach them, customer codes
//! (set, imported, listed), acknowledgements of orders, and parked outbox messages with their
//! replay. Each resolver: caller + input → one domain call → view type.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::wholesalers as svc;

use super::allocation::OutboxEntry;
use super::scalars::{PrefectureCode, SiteCode, WholesalerId};
use super::types::ImportReport;
use super::{caller_actor, gql, store};
use crate::error::{code, coded};

const MAX_PAGE: i32 = 500;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::wholesaler::AdapterKind")]
pub enum AdapterKind {
    /// Orders are POSTed as signed JSON to the wholesaler's endpoint.
    HttpPush,
    /// Orders are written as CSV files into the wholesaler's drop directory.
    FileDrop,
    /// The wholesaler reads its orders over GraphQL and acknowledges them.
    Pull,
}

/// A wholesaler (卸業者): the organisation, the prefectures it serves, how orders reach it.
pub struct Wholesaler {
    w: domain::wholesaler::Wholesaler,
    /// The caller may see its configuration (NATIONAL, or the wholesaler itself).
    configured_by_caller: bool,
}

#[Object]
impl Wholesaler {
    async fn id(&self) -> WholesalerId {
        self.w.id.clone().into()
    }
    async fn name(&self) -> &str {
        &self.w.name
    }
    /// Prefectures served; empty: nationwide.
    async fn area(&self) -> Vec<PrefectureCode> {
        self.w.area.iter().copied().map(Into::into).collect()
    }
    async fn adapter(&self) -> AdapterKind {
        self.w.adapter.kind().into()
    }
    /// The push endpoint (NATIONAL and the wholesaler itself; null for others and for
    /// file-drop and pull wholesalers). The signing secret is never shown.
    async fn endpoint(&self) -> Option<&str> {
        self.w.endpoint().filter(|_| self.configured_by_caller)
    }
    async fn version(&self) -> i32 {
        self.w.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.w.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.w.updated_at
    }
    async fn updated_by(&self) -> &str {
        &self.w.updated_by
    }
}

fn view(actor: &domain::authz::Actor, w: domain::wholesaler::Wholesaler) -> Wholesaler {
    let configured_by_caller = domain::authz::can_read_wholesaler_config(actor, &w.id).is_ok();
    Wholesaler {
        w,
        configured_by_caller,
    }
}

/// One version of a site's customer code (得意先コード) at a wholesaler.
#[derive(SimpleObject)]
pub struct CustomerCode {
    pub wholesaler: WholesalerId,
    pub site: SiteCode,
    pub customer_code: String,
    /// Valid from this Japan date …
    pub effective_from: NaiveDate,
    /// … up to, excluding, this one (or the next version's start).
    pub effective_to: Option<NaiveDate>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl From<svc::CustomerCodeVersion> for CustomerCode {
    fn from(v: svc::CustomerCodeVersion) -> Self {
        CustomerCode {
            wholesaler: v.wholesaler.into(),
            site: v.site.into(),
            customer_code: v.customer_code.as_str().to_owned(),
            effective_from: v.effective_from,
            effective_to: v.effective_to,
            version: v.version,
            updated_at: v.updated_at,
            updated_by: v.updated_by,
        }
    }
}

#[derive(SimpleObject)]
pub struct AcknowledgeResult {
    /// Acknowledged by this call.
    pub acknowledged: Vec<String>,
    /// Acknowledged before; nothing changed for them.
    pub already_acknowledged: Vec<String>,
}

#[derive(InputObject)]
pub struct WholesalerInput {
    pub name: String,
    /// Prefecture codes served; empty or absent: nationwide.
    #[graphql(default)]
    pub area: Vec<String>,
    pub adapter: AdapterKind,
    /// HTTP_PUSH: the http(s) URL orders are POSTed to.
    pub endpoint: Option<String>,
    /// HTTP_PUSH: the HMAC-SHA256 signing secret (at least 16 bytes). Leave out on a change to
    /// keep the current one. Never shown again.
    pub secret: Option<String>,
}

#[derive(InputObject)]
pub struct CustomerCodeInput {
    pub wholesaler: WholesalerId,
    pub site: SiteCode,
    /// 1-32 ASCII letters, digits and symbols (no spaces, commas or quotes).
    pub customer_code: String,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
}

fn page(first: i32) -> async_graphql::Result<u64> {
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(coded(format!("first: between 1 and {MAX_PAGE}"), code::BAD_USER_INPUT));
    }
    Ok(first as u64)
}

#[derive(Default)]
pub struct WholesalerQuery;

#[Object]
impl WholesalerQuery {
    /// Every wholesaler (any signed-in caller; the endpoint only for NATIONAL and itself).
    async fn wholesalers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Wholesaler>> {
        let actor = caller_actor(ctx)?;
        Ok(gql(svc::list(store(ctx)?).await)?
            .into_iter()
            .map(|w| view(actor, w))
            .collect())
    }

    async fn wholesaler(&self, ctx: &Context<'_>, id: WholesalerId) -> async_graphql::Result<Wholesaler> {
        let actor = caller_actor(ctx)?;
        Ok(view(actor, gql(svc::get(store(ctx)?, &id.0).await)?))
    }

    /// A wholesaler's customer codes by site, then effective date (NATIONAL and the wholesaler
    /// itself). Page with `afterSite`: the last site code of the previous page.
    async fn customer_codes(
        &self,
        ctx: &Context<'_>,
        wholesaler: WholesalerId,
        site: Option<SiteCode>,
        after_site: Option<SiteCode>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<CustomerCode>> {
        let actor = caller_actor(ctx)?;
        let first = page(first)?;
        Ok(gql(svc::customer_codes(
            store(ctx)?,
            actor,
            &wholesaler.0,
            site.as_ref().map(|s| &s.0),
            after_site.as_ref().map(|s| &s.0),
            first,
        )
        .await)?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Parked outbox messages (failed permanently or too often), in id order after `after`:
    /// NATIONAL sees all, a wholesaler those addressed to it. `lastError` says why.
    async fn parked_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<i64>,
    ) -> async_graphql::Result<Vec<OutboxEntry>> {
        let actor = caller_actor(ctx)?;
        let first = page(first)?;
        Ok(gql(domain::dispatch::parked(store(ctx)?, actor, after, first).await)?
            .into_iter()
            .map(OutboxEntry)
            .collect())
    }
}

#[derive(Default)]
pub struct WholesalerMutation;

#[Object]
impl WholesalerMutation {
    /// Registers a wholesaler or changes how orders reach it (NATIONAL). Orders held because
    /// it was not configured are released.
    async fn register_wholesaler(
        &self,
        ctx: &Context<'_>,
        id: WholesalerId,
        input: WholesalerInput,
    ) -> async_graphql::Result<Wholesaler> {
        let actor = caller_actor(ctx)?;
        let draft = domain::wholesaler::WholesalerDraft {
            name: input.name,
            area: input.area,
            adapter: domain::wholesaler::AdapterKind::from(input.adapter).as_str().to_owned(),
            endpoint: input.endpoint,
            secret: input.secret,
        };
        let w = gql(svc::register(store(ctx)?, actor, &id.0, &draft, Utc::now()).await)?;
        Ok(view(actor, w))
    }

    /// Sets one version of a site's customer code at a wholesaler (NATIONAL). Orders held for
    /// the lack of it are released.
    async fn set_customer_code(
        &self,
        ctx: &Context<'_>,
        input: CustomerCodeInput,
    ) -> async_graphql::Result<CustomerCode> {
        let actor = caller_actor(ctx)?;
        let v = svc::NewCustomerCode {
            wholesaler: input.wholesaler.0,
            site: input.site.0,
            customer_code: input.customer_code,
            effective_from: input.effective_from,
            effective_to: input.effective_to,
        };
        Ok(gql(svc::set_customer_code(store(ctx)?, actor, &v, Utc::now()).await)?.into())
    }

    /// Imports customer codes from CSV text with the columns `wholesaler_id, site_code,
    /// customer_code, effective_from` and optionally `effective_to` (NATIONAL). Valid rows are
    /// kept; rejected lines are listed with their column and reason.
    async fn import_customer_codes(&self, ctx: &Context<'_>, csv: String) -> async_graphql::Result<ImportReport> {
        let actor = caller_actor(ctx)?;
        Ok(gql(svc::import_customer_codes(store(ctx)?, actor, csv.as_bytes(), Utc::now()).await)?.into())
    }

    /// A wholesaler confirms receipt of its sent orders (all or nothing). Repeating an
    /// acknowledgement is harmless.
    async fn acknowledge_orders(
        &self,
        ctx: &Context<'_>,
        orders: Vec<String>,
        reference: Option<String>,
    ) -> async_graphql::Result<AcknowledgeResult> {
        let actor = caller_actor(ctx)?;
        let r = gql(svc::acknowledge(store(ctx)?, actor, &orders, reference.as_deref(), Utc::now()).await)?;
        Ok(AcknowledgeResult {
            acknowledged: r.acknowledged,
            already_acknowledged: r.already,
        })
    }

    /// Puts a parked message back in the queue, due now (NATIONAL any; a wholesaler its own).
    async fn replay_message(&self, ctx: &Context<'_>, id: i64) -> async_graphql::Result<OutboxEntry> {
        let actor = caller_actor(ctx)?;
        Ok(OutboxEntry(
            gql(domain::dispatch::replay(store(ctx)?, actor, id).await)?,
        ))
    }
}
