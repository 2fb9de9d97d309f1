//! Input types for the site master mutations. They convert to the domain's raw draft, which
//! the domain validates (so GraphQL and CSV go through the same rules).

use async_graphql::{InputObject, MaybeUndefined};
use domain::site::SiteDraft;

use super::scalars::{MunicipalityCode, PostalCode, ProductCode, SiteCode, WholesalerId};
use super::types::{ColdChainKind, FreezerClass, SiteKind, Weekday};

#[derive(InputObject)]
pub struct CoordinatesInput {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(InputObject)]
pub struct ColdChainInput {
    pub role: ColdChainKind,
    /// Required for a base site.
    pub freezer_class: Option<FreezerClass>,
    /// Required for a satellite: its base site.
    pub base_site: Option<SiteCode>,
}

#[derive(InputObject)]
pub struct DeliveryInput {
    pub receiving_days: Vec<Weekday>,
    /// "HH:MM-HH:MM"; omit for any time.
    #[graphql(default)]
    pub receiving_hours: String,
    #[graphql(default)]
    pub notes: String,
}

fn days(d: &[Weekday]) -> String {
    d.iter()
        .map(|w| domain::site::Weekday::from(*w).as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn products(p: &[ProductCode]) -> String {
    p.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(",")
}

fn apply_cold_chain(d: &mut SiteDraft, c: &ColdChainInput) {
    d.cold_chain_role = domain::site::ColdChainKind::from(c.role).as_str().into();
    d.freezer_class = c
        .freezer_class
        .map(|f| domain::site::FreezerClass::from(f).as_str().into());
    d.base_site = c.base_site.as_ref().map(|b| b.0.to_string());
}

/// 追加: a new site. Leave `code` empty for a venue that has no insurance or care code; the
/// system assigns one.
#[derive(InputObject)]
pub struct RegisterSiteInput {
    pub code: Option<SiteCode>,
    pub name: String,
    #[graphql(default)]
    pub name_kana: String,
    pub kind: SiteKind,
    pub municipality: MunicipalityCode,
    pub postal_code: PostalCode,
    pub address: String,
    pub phone: String,
    pub coordinates: Option<CoordinatesInput>,
    pub cold_chain: ColdChainInput,
    pub delivery: DeliveryInput,
    pub wholesaler: Option<WholesalerId>,
    #[graphql(default)]
    pub products: Vec<ProductCode>,
}

impl RegisterSiteInput {
    pub fn draft(&self) -> SiteDraft {
        let mut d = SiteDraft {
            name: self.name.clone(),
            name_kana: self.name_kana.clone(),
            kind: domain::site::SiteKind::from(self.kind).as_str().into(),
            municipality: self.municipality.0.to_string(),
            postal_code: self.postal_code.0.as_str().into(),
            address: self.address.clone(),
            phone: self.phone.clone(),
            latitude: self.coordinates.as_ref().map(|c| c.latitude),
            longitude: self.coordinates.as_ref().map(|c| c.longitude),
            receiving_days: days(&self.delivery.receiving_days),
            receiving_hours: self.delivery.receiving_hours.clone(),
            delivery_notes: self.delivery.notes.clone(),
            wholesaler: self.wholesaler.as_ref().map(|w| w.0.to_string()),
            products: products(&self.products),
            ..SiteDraft::default()
        };
        apply_cold_chain(&mut d, &self.cold_chain);
        d
    }
}

/// 変更: only the fields given change. `coordinates: null` and `wholesaler: null` clear them.
#[derive(InputObject, Default)]
pub struct UpdateSiteInput {
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub kind: Option<SiteKind>,
    pub municipality: Option<MunicipalityCode>,
    pub postal_code: Option<PostalCode>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub coordinates: MaybeUndefined<CoordinatesInput>,
    pub cold_chain: Option<ColdChainInput>,
    pub delivery: Option<DeliveryInput>,
    pub wholesaler: MaybeUndefined<WholesalerId>,
    pub products: Option<Vec<ProductCode>>,
}

impl UpdateSiteInput {
    pub fn apply(&self, d: &mut SiteDraft) {
        if let Some(v) = &self.name {
            d.name = v.clone();
        }
        if let Some(v) = &self.name_kana {
            d.name_kana = v.clone();
        }
        if let Some(v) = self.kind {
            d.kind = domain::site::SiteKind::from(v).as_str().into();
        }
        if let Some(v) = &self.municipality {
            d.municipality = v.0.to_string();
        }
        if let Some(v) = &self.postal_code {
            d.postal_code = v.0.as_str().into();
        }
        if let Some(v) = &self.address {
            d.address = v.clone();
        }
        if let Some(v) = &self.phone {
            d.phone = v.clone();
        }
        match &self.coordinates {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => (d.latitude, d.longitude) = (None, None),
            MaybeUndefined::Value(c) => (d.latitude, d.longitude) = (Some(c.latitude), Some(c.longitude)),
        }
        if let Some(c) = &self.cold_chain {
            apply_cold_chain(d, c);
        }
        if let Some(v) = &self.delivery {
            d.receiving_days = days(&v.receiving_days);
            d.receiving_hours = v.receiving_hours.clone();
            d.delivery_notes = v.notes.clone();
        }
        match &self.wholesaler {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => d.wholesaler = None,
            MaybeUndefined::Value(w) => d.wholesaler = Some(w.0.to_string()),
        }
        if let Some(p) = &self.products {
            d.products = products(p);
        }
    }
}

#[derive(InputObject, Default)]
pub struct SiteFilterInput {
    pub prefecture: Option<super::scalars::PrefectureCode>,
    pub municipality: Option<MunicipalityCode>,
    pub kind: Option<SiteKind>,
    pub status: Option<super::types::SiteStatus>,
    /// Part of the name or kana name.
    pub name: Option<String>,
}
