//! Site master resolvers.

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, Object, SimpleObject, Subscription};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::inputs::{RegisterSiteInput, SiteFilterInput, UpdateSiteInput};
use super::scalars::{MunicipalityCode, SiteCode};
use super::types::{ImportReport, Site};
use super::{caller_actor, gql, store};
use crate::error::{code, coded};
use crate::events::{Event, Events};
use crate::public::PublicChanges;

/// A committed change of the site master, as it travels on the event bus (`siteChanged`).
#[derive(Serialize, Deserialize)]
pub struct SiteChanged(pub domain::site::Site);

impl Event for SiteChanged {
    const TOPIC: &'static str = "site";

    fn keys(&self) -> Vec<String> {
        vec![format!("municipality:{}", self.0.details.municipality)]
    }
}

/// Largest page a caller may ask for.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 20;

#[derive(SimpleObject)]
pub struct SiteConnectionInfo {
    /// All sites in scope matching the filter, across pages.
    total_count: Option<u64>,
}

#[derive(Default)]
pub struct SiteQuery;

#[Object]
impl SiteQuery {
    /// One site by its 10-character code.
    async fn site(&self, ctx: &Context<'_>, code: SiteCode) -> async_graphql::Result<Site> {
        let actor = caller_actor(ctx)?;
        Ok(Site(gql(domain::sites::get(store(ctx)?, actor, &code.0).await)?))
    }

    /// Sites in the caller's scope, ordered by code (Relay cursor pagination).
    async fn sites(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<SiteFilterInput>,
    ) -> async_graphql::Result<Connection<String, Site, SiteConnectionInfo, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = domain::sites::SiteFilter {
            prefecture: f.prefecture.map(|p| p.0),
            municipality: f.municipality.map(|m| m.0),
            kind: f.kind.map(Into::into),
            status: f.status.map(Into::into),
            name: f.name,
        };
        let want_total = ctx.look_ahead().field("totalCount").exists();
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
                let after = match after {
                    None => None,
                    Some(c) => Some(
                        c.parse::<domain::codes::SiteCode>()
                            .map_err(|_| coded("after: not a cursor from this list", code::BAD_USER_INPUT))?,
                    ),
                };
                let page = gql(domain::sites::list(store, actor, &filter, after.as_ref(), first as u64).await)?;
                let total_count = if want_total {
                    Some(gql(domain::sites::count(store, actor, &filter).await)?)
                } else {
                    None
                };
                let mut conn = Connection::with_additional_fields(
                    after.is_some(),
                    page.has_next,
                    SiteConnectionInfo { total_count },
                );
                conn.edges
                    .extend(page.sites.into_iter().map(|s| Edge::new(s.code.to_string(), Site(s))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }
}

#[derive(Default)]
pub struct SiteMutation;

#[Object]
impl SiteMutation {
    /// 追加: registers a site. A municipality registers its own mass, workplace and
    /// health-centre venues (leave `code` empty: one is assigned); NATIONAL registers any site.
    async fn register_site(&self, ctx: &Context<'_>, input: RegisterSiteInput) -> async_graphql::Result<Site> {
        let actor = caller_actor(ctx)?;
        let draft = input.draft();
        let site = gql(domain::sites::register(store(ctx)?, actor, input.code.map(|c| c.0), &draft).await)?;
        ctx.data::<PublicChanges>()?.site_changed(&site).await;
        ctx.data::<Events>()?.publish(SiteChanged(site.clone()));
        Ok(Site(site))
    }

    /// 変更: changes the given fields. Pass `expectedVersion` (the `version` you read) to be
    /// refused with CONFLICT instead of overwriting a change made meanwhile.
    async fn update_site(
        &self,
        ctx: &Context<'_>,
        code: SiteCode,
        input: UpdateSiteInput,
        expected_version: Option<i32>,
    ) -> async_graphql::Result<Site> {
        let actor = caller_actor(ctx)?;
        let site = gql(domain::sites::update(store(ctx)?, actor, &code.0, expected_version, |d| input.apply(d)).await)?;
        ctx.data::<PublicChanges>()?.site_changed(&site).await;
        ctx.data::<Events>()?.publish(SiteChanged(site.clone()));
        Ok(Site(site))
    }

    /// 脱退: withdraws a site; it and its history are kept.
    async fn withdraw_site(&self, ctx: &Context<'_>, code: SiteCode) -> async_graphql::Result<Site> {
        let actor = caller_actor(ctx)?;
        let site = gql(domain::sites::withdraw(store(ctx)?, actor, &code.0).await)?;
        ctx.data::<PublicChanges>()?.site_changed(&site).await;
        ctx.data::<Events>()?.publish(SiteChanged(site.clone()));
        Ok(Site(site))
    }

    /// Bulk import of the site master (NATIONAL), the same as `vsys sites import`: valid rows
    /// are kept, rejected lines reported. Columns are listed in the README.
    async fn import_sites(&self, ctx: &Context<'_>, csv: String) -> async_graphql::Result<ImportReport> {
        let actor = caller_actor(ctx)?;
        let report = gql(domain::sites::import_csv(store(ctx)?, actor, csv.as_bytes(), &|_, _| {}).await)?;
        ctx.data::<PublicChanges>()?.everything_changed().await;
        Ok(report.into())
    }
}

#[derive(Default)]
pub struct SiteSubscription;

#[Subscription]
impl SiteSubscription {
    /// Site master changes in a municipality you can see, as they commit. If the connection
    /// falls behind, an error tells you to refetch and the stream goes on.
    async fn site_changed(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Site>> + use<>> {
        let actor = caller_actor(ctx)?.clone();
        let scope = domain::authz::site_read_scope(&actor);
        let visible = match &scope {
            domain::authz::SiteScope::All => true,
            domain::authz::SiteScope::Prefecture(p) => municipality.0.prefecture() == *p,
            domain::authz::SiteScope::Municipalities(ms) => ms.contains(&municipality.0),
            // Sites and wholesalers see single sites; they may still listen, filtered per event.
            domain::authz::SiteScope::Site(_) | domain::authz::SiteScope::Wholesaler(_) => true,
        };
        if !visible {
            return Err(coded(
                format!("municipality {} is outside your scope", municipality.0),
                code::FORBIDDEN,
            ));
        }
        let wanted = municipality.0;
        let stream = ctx
            .data::<Events>()?
            .subscribe::<SiteChanged>(&format!("municipality:{wanted}"));
        Ok(stream.filter_map(move |event| match event {
            Ok(changed) => {
                let site = &changed.0;
                let facts = domain::authz::SiteFacts {
                    code: &site.code,
                    municipality: &site.details.municipality,
                    kind: site.details.kind,
                    wholesaler: site.details.wholesaler.as_ref(),
                };
                (site.details.municipality == wanted && scope.contains(&facts)).then(|| Ok(Site(site.clone())))
            }
            Err(missed) => Some(Err(crate::error::missed(missed))),
        }))
    }
}
