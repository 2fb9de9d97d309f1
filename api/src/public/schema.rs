//! The public GraphQL schema (`/public/graphql`): read-only, anonymous, and made only of public
//! types — there is no private field in it to reach, whatever the query. Every resolver that
//! reads changing data records the cache counters it depends on first ([`Deps::depend`]).

use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, InputObject, Object, Schema, SchemaBuilder, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use domain::availability::{self as av, Availability};
use domain::public::{self as public, Area, PublicSite};
use futures_util::Stream;
use tokio_stream::StreamExt;

use super::bus::AvailabilityChanged;
use super::cache::Deps;
use super::generations::{self, GenKey, Generations};
use crate::error::IntoGql;
use crate::events::Events;
use crate::graphql::RefData;
use crate::graphql::scalars::{MunicipalityCode, PostalCode, PrefectureCode, ProductCode, SiteCode};
use crate::graphql::types::{AvailabilityStatus, SiteKind};

pub type PublicSchema = Schema<PublicQuery, EmptyMutation, PublicSubscription>;

#[derive(SimpleObject, Clone)]
#[graphql(name = "Prefecture")]
pub struct PublicPrefecture {
    pub code: PrefectureCode,
    pub name: String,
    pub name_kana: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Municipality")]
pub struct PublicMunicipality {
    pub code: MunicipalityCode,
    pub name: String,
    pub name_kana: String,
    pub prefecture: PrefectureCode,
}

/// A vaccine product.
#[derive(SimpleObject, Clone)]
pub struct Product {
    pub code: ProductCode,
    /// Brand name and maker, e.g. コミナティ（ファイザー）; the code when unknown.
    pub name: String,
}

impl From<&domain::codes::ProductCode> for Product {
    fn from(p: &domain::codes::ProductCode) -> Self {
        Product {
            code: p.clone().into(),
            name: domain::product_names::display_name(p),
        }
    }
}

/// A site's availability as shown: the status, its symbol and its meaning in words.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Availability")]
pub struct PublicAvailability {
    /// Null until the site states its availability.
    pub status: Option<AvailabilityStatus>,
    /// ○ △ × ◎, or － when unknown.
    pub symbol: String,
    /// The symbol's meaning: 予約可能, 残りわずか, 予約不可, 予約不要, or 情報なし.
    pub label: String,
    /// Places left in a venue's upcoming slots (venues with slots only).
    pub remaining: Option<u32>,
    /// When the status was last stated or derived.
    pub updated_at: Option<DateTime<Utc>>,
}

/// How to book.
#[derive(SimpleObject, Clone)]
pub struct Booking {
    pub phone: Option<String>,
    pub url: Option<String>,
    pub notes: Option<String>,
}

#[derive(SimpleObject, Clone)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

/// A vaccination site as the public sees it.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Site")]
pub struct PublicSiteView {
    pub code: SiteCode,
    pub name: String,
    pub name_kana: String,
    pub kind: SiteKind,
    /// The kind in words: 病院, 診療所, 集団接種会場, …
    pub kind_label: String,
    pub prefecture: PublicPrefecture,
    pub municipality: PublicMunicipality,
    pub postal_code: PostalCode,
    pub address: String,
    pub phone: String,
    pub coordinates: Option<Coordinates>,
    pub products: Vec<Product>,
    pub availability: PublicAvailability,
    /// Null until the site states how to book.
    pub booking: Option<Booking>,
}

impl PublicSiteView {
    pub fn new(s: PublicSite, refdata: &RefData) -> PublicSiteView {
        let prefecture = s.prefecture();
        let pref_name = refdata.name_of(prefecture.as_str()).unwrap_or_default();
        let municipality = match refdata.municipality(&s.municipality) {
            Some(m) => PublicMunicipality {
                code: m.code.clone(),
                name: m.name.clone(),
                name_kana: m.name_kana.clone(),
                prefecture: m.prefecture.clone(),
            },
            None => PublicMunicipality {
                code: s.municipality.into(),
                name: String::new(),
                name_kana: String::new(),
                prefecture: prefecture.into(),
            },
        };
        let pref_kana = refdata
            .prefectures
            .iter()
            .find(|p| p.code == prefecture)
            .map(|p| p.name_kana.clone())
            .unwrap_or_default();
        let (availability, booking) = match s.availability {
            Some(a) => (
                PublicAvailability {
                    status: Some(a.status.into()),
                    symbol: a.status.symbol().to_owned(),
                    label: a.status.label().to_owned(),
                    remaining: a.remaining,
                    updated_at: Some(a.updated_at),
                },
                Some(Booking {
                    phone: a.booking.phone,
                    url: a.booking.url,
                    notes: a.booking.notes,
                }),
            ),
            None => (
                PublicAvailability {
                    status: None,
                    symbol: av::UNKNOWN_SYMBOL.to_owned(),
                    label: av::UNKNOWN_LABEL.to_owned(),
                    remaining: None,
                    updated_at: None,
                },
                None,
            ),
        };
        PublicSiteView {
            code: s.code.into(),
            kind_label: public::kind_label(s.kind).to_owned(),
            kind: s.kind.into(),
            prefecture: PublicPrefecture {
                code: prefecture.into(),
                name: pref_name,
                name_kana: pref_kana,
            },
            municipality,
            postal_code: s.postal_code.into(),
            coordinates: s.coordinates.map(|c| Coordinates {
                latitude: c.latitude(),
                longitude: c.longitude(),
            }),
            products: s.products.iter().map(Product::from).collect(),
            name: s.name,
            name_kana: s.name_kana,
            address: s.address,
            phone: s.phone,
            availability,
            booking,
        }
    }
}

/// One entry of the symbol legend.
#[derive(SimpleObject)]
pub struct LegendEntry {
    pub status: AvailabilityStatus,
    pub symbol: String,
    pub label: String,
    pub description: String,
}

/// What to search for. Give at least a prefecture, a municipality, a postal code or words.
#[derive(InputObject, Default)]
pub struct SiteSearchInput {
    pub prefecture: Option<PrefectureCode>,
    pub municipality: Option<MunicipalityCode>,
    /// The start of a postal code: 1–7 digits, e.g. "100" or "100-00".
    pub postal_code: Option<String>,
    /// Words that must all appear in the name, kana name or address.
    pub text: Option<String>,
    pub product: Option<ProductCode>,
    /// Only sites where a vaccination can be had now (○ △ ◎).
    #[graphql(default)]
    pub available_only: bool,
}

#[derive(SimpleObject)]
pub struct SitePage {
    pub items: Vec<PublicSiteView>,
    pub total_count: u64,
    pub page: u32,
    pub page_size: u32,
    pub has_next_page: bool,
}

fn refdata<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<RefData>> {
    ctx.data::<Arc<RefData>>()
}

/// Records the counters `keys` for the response cache (no-op for subscriptions).
async fn depend(ctx: &Context<'_>, keys: &[GenKey]) -> async_graphql::Result<()> {
    if let Some(deps) = ctx.data_opt::<Deps>() {
        deps.depend(ctx.data::<Generations>()?, keys).await;
    }
    Ok(())
}

#[derive(Default)]
pub struct PublicQuery;

#[Object(name = "Query")]
impl PublicQuery {
    /// The 47 prefectures.
    async fn prefectures(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PublicPrefecture>> {
        Ok(refdata(ctx)?
            .prefectures
            .iter()
            .map(|p| PublicPrefecture {
                code: p.code.into(),
                name: p.name.clone(),
                name_kana: p.name_kana.clone(),
            })
            .collect())
    }

    /// The municipalities of a prefecture.
    async fn municipalities(
        &self,
        ctx: &Context<'_>,
        prefecture: PrefectureCode,
    ) -> async_graphql::Result<Vec<PublicMunicipality>> {
        Ok(refdata(ctx)?
            .municipalities_of(&prefecture.0)
            .map(|m| PublicMunicipality {
                code: m.code.clone(),
                name: m.name.clone(),
                name_kana: m.name_kana.clone(),
                prefecture: m.prefecture.clone(),
            })
            .collect())
    }

    /// Vaccine products known by name (for a product filter).
    async fn products(&self) -> Vec<Product> {
        domain::product_names::KNOWN_PRODUCTS
            .iter()
            .filter_map(|p| p.code.parse::<domain::codes::ProductCode>().ok())
            .map(|p| Product::from(&p))
            .collect()
    }

    /// What each symbol means.
    async fn availability_legend(&self) -> Vec<LegendEntry> {
        Availability::ALL
            .iter()
            .map(|a| LegendEntry {
                status: (*a).into(),
                symbol: a.symbol().to_owned(),
                label: a.label().to_owned(),
                description: a.description().to_owned(),
            })
            .collect()
    }

    /// Active sites matching the search, ordered by site code, a page at a time: `page` from 1
    /// (default 1), `pageSize` up to 50 (default 20).
    #[graphql(complexity = "100 + (page_size.unwrap_or(20).max(0) as usize) * child_complexity")]
    async fn sites(
        &self,
        ctx: &Context<'_>,
        filter: SiteSearchInput,
        page: Option<i32>,
        page_size: Option<i32>,
    ) -> async_graphql::Result<SitePage> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(public::DEFAULT_PAGE_SIZE as i32);
        let search = public::PublicSearch::new(public::SearchDraft {
            prefecture: filter.prefecture.map(|p| p.0),
            municipality: filter.municipality.map(|m| m.0),
            postal_code: filter.postal_code,
            text: filter.text,
            product: filter.product.map(|p| p.0),
            available_only: filter.available_only,
            page: i64::from(page),
            page_size: i64::from(page_size),
        })
        .gql()?;
        depend(ctx, &generations::reads(search.area())).await?;
        let store = ctx.data::<domain::store::Store>()?;
        let found = public::search(store, &search).await.gql()?;
        let refdata = refdata(ctx)?;
        Ok(SitePage {
            has_next_page: found.has_next(),
            total_count: found.total,
            page: found.page,
            page_size: found.page_size,
            items: found
                .items
                .into_iter()
                .map(|s| PublicSiteView::new(s, refdata))
                .collect(),
        })
    }

    /// One active site, or null.
    #[graphql(complexity = "20 + child_complexity")]
    async fn site(&self, ctx: &Context<'_>, code: SiteCode) -> async_graphql::Result<Option<PublicSiteView>> {
        depend(ctx, &generations::reads(Area::Prefecture(code.0.prefecture()))).await?;
        let store = ctx.data::<domain::store::Store>()?;
        let found = public::site(store, &code.0).await.gql()?;
        let refdata = refdata(ctx)?;
        Ok(found.map(|s| PublicSiteView::new(s, refdata)))
    }
}

#[derive(Default)]
pub struct PublicSubscription;

#[Subscription(name = "Subscription")]
impl PublicSubscription {
    /// A site's public card each time its availability changes in this municipality. If the
    /// connection falls behind, an error tells you to refetch and the stream goes on.
    async fn availability_changed(
        &self,
        ctx: &Context<'_>,
        municipality: MunicipalityCode,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PublicSiteView>> + use<>> {
        let refdata = refdata(ctx)?.clone();
        let wanted = municipality.0;
        let stream = ctx
            .data::<Events>()?
            .subscribe::<AvailabilityChanged>(&AvailabilityChanged::key(&wanted));
        Ok(stream.filter_map(move |event| match event {
            Ok(changed) => {
                (changed.0.municipality == wanted).then(|| Ok(PublicSiteView::new(changed.0.clone(), &refdata)))
            }
            Err(missed) => Some(Err(crate::error::missed(missed))),
        }))
    }
}

/// The public schema's types only (SDL export); the server adds data and limits.
pub fn builder() -> SchemaBuilder<PublicQuery, EmptyMutation, PublicSubscription> {
    Schema::build(PublicQuery, EmptyMutation, PublicSubscription)
}

/// The SDL that `public-schema.graphql` must equal.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_enum_items(),
    )
}
