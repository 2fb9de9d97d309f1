//! The GraphQL schema: query, mutation and subscription roots, and the per-request context
//! (who is calling). Resolvers are thin: caller + input → one domain call → view type.

pub mod allocation;
pub mod availability;
pub mod deliveries;
pub mod doses;
mod inputs;
pub mod persons;
pub mod products;
pub mod scalars;
mod sites;
mod stock;
mod stock_types;
pub mod types;
pub mod wholesalers;

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, MergedObject, MergedSubscription, Object, Schema, SchemaBuilder};
use domain::authz::Actor;
use domain::codes;
use domain::store::Store;

use crate::error::{IntoGql, unauthenticated};
use scalars::PrefectureCode;
use types::{Me, Municipality, Prefecture};

pub type VsysSchema = Schema<Query, Mutation, Subscription>;

/// Who is calling this request: `None` for anonymous. Put into every request's data by the
/// HTTP handler and the WebSocket connection-init handler after the token is verified.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

/// A verified caller: token subject (for logs and audit, never shown to others) and actor.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub actor: Actor,
}

/// The authenticated actor, or UNAUTHENTICATED.
pub fn caller_actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    match ctx.data_opt::<Caller>() {
        Some(Caller(Some(p))) => Ok(&p.actor),
        _ => Err(unauthenticated("sign in: this needs a bearer token")),
    }
}

pub fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Store> {
    ctx.data::<Store>()
}

/// Prefectures and municipalities never change while the server runs (they ship in a
/// migration), so they are read once at start and served from memory.
pub struct RefData {
    pub prefectures: Vec<domain::sites::Prefecture>,
    municipalities: Vec<Municipality>,
    by_code: HashMap<String, usize>,
    prefecture_names: HashMap<String, String>,
}

impl RefData {
    pub async fn load(store: &Store) -> domain::DomainResult<Arc<RefData>> {
        let prefectures = domain::sites::prefectures(store).await?;
        let municipalities: Vec<Municipality> = domain::sites::municipalities(store, None)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        let by_code = municipalities
            .iter()
            .enumerate()
            .map(|(i, m)| (m.code.0.as_str().to_owned(), i))
            .collect();
        let prefecture_names = prefectures
            .iter()
            .map(|p| (p.code.as_str().to_owned(), p.name.clone()))
            .collect();
        Ok(Arc::new(RefData {
            prefectures,
            municipalities,
            by_code,
            prefecture_names,
        }))
    }

    /// The municipalities of one prefecture, by code.
    pub fn municipalities_of<'a>(
        &'a self,
        p: &'a codes::PrefectureCode,
    ) -> impl Iterator<Item = &'a Municipality> + 'a {
        self.municipalities.iter().filter(move |m| m.prefecture.0 == *p)
    }

    pub fn municipality(&self, code: &codes::MunicipalityCode) -> Option<&Municipality> {
        self.by_code.get(code.as_str()).map(|i| &self.municipalities[*i])
    }

    /// The name of a prefecture or municipality code, if it is one.
    pub fn name_of(&self, code: &str) -> Option<String> {
        self.prefecture_names
            .get(code)
            .cloned()
            .or_else(|| self.by_code.get(code).map(|i| self.municipalities[*i].name.clone()))
    }
}

#[derive(Default)]
pub struct ReferenceQuery;

#[Object]
impl ReferenceQuery {
    /// The 47 prefectures.
    async fn prefectures(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Prefecture>> {
        Ok(ctx
            .data::<Arc<RefData>>()?
            .prefectures
            .iter()
            .cloned()
            .map(Into::into)
            .collect())
    }

    /// Municipalities (1,741), optionally of one prefecture.
    async fn municipalities(
        &self,
        ctx: &Context<'_>,
        prefecture: Option<PrefectureCode>,
    ) -> async_graphql::Result<Vec<Municipality>> {
        let r = ctx.data::<Arc<RefData>>()?;
        Ok(r.municipalities
            .iter()
            .filter(|m| prefecture.as_ref().is_none_or(|p| m.prefecture == *p))
            .cloned()
            .collect())
    }

    /// The caller, or null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> Option<Me> {
        match ctx.data_opt::<Caller>() {
            Some(Caller(Some(p))) => p.actor.role().map(|role| Me {
                role: role.into(),
                scope: p.actor.scope_string(),
            }),
            _ => None,
        }
    }
}

#[derive(MergedObject, Default)]
pub struct Query(
    ReferenceQuery,
    sites::SiteQuery,
    products::ProductQuery,
    availability::AvailabilityQuery,
    allocation::AllocationQuery,
    wholesalers::WholesalerQuery,
    stock::StockQuery,
    deliveries::DeliveryQuery,
    persons::PersonQuery,
    doses::DoseQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    sites::SiteMutation,
    availability::AvailabilityMutation,
    allocation::AllocationMutation,
    wholesalers::WholesalerMutation,
    stock::StockMutation,
    deliveries::DeliveryMutation,
    persons::PersonMutation,
    doses::DoseMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(sites::SiteSubscription, stock::StockSubscription);

/// The schema's types only, no runtime data: used for the SDL export and by the server, which
/// adds the store, reference data, limits and extensions.
pub fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_enum_items(),
    )
}

/// Used by resolvers that need the domain result mapped.
pub(crate) fn gql<T>(r: domain::DomainResult<T>) -> async_graphql::Result<T> {
    r.gql()
}
