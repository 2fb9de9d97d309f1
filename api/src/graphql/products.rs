//! The product catalogue: vaccines with packaging and storage class, and their ancillaries.

use async_graphql::{Context, Enum, Object, SimpleObject};

use super::scalars::ProductCode;
use super::{gql, store};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::product::StorageClass")]
pub enum StorageClass {
    /// −75 °C.
    UltraCold,
    /// −20 °C.
    Frozen,
    /// 2–8 °C.
    Refrigerated,
    /// Room temperature.
    Ambient,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ProductKind {
    Vaccine,
    Ancillary,
}

#[derive(SimpleObject)]
pub struct AncillaryRatio {
    pub ancillary: ProductCode,
    /// Pieces of the ancillary shipped with each vial.
    pub per_vial: u32,
}

pub struct Product(pub domain::product::Product);

#[Object]
impl Product {
    async fn code(&self) -> ProductCode {
        self.0.code.clone().into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn manufacturer(&self) -> &str {
        &self.0.manufacturer
    }
    async fn kind(&self) -> ProductKind {
        match self.0.kind {
            domain::product::ProductKind::Vaccine { .. } => ProductKind::Vaccine,
            domain::product::ProductKind::Ancillary { .. } => ProductKind::Ancillary,
        }
    }
    async fn storage_class(&self) -> StorageClass {
        self.0.storage.into()
    }
    /// Vaccines: doses in one vial.
    async fn doses_per_vial(&self) -> Option<u32> {
        self.0.packaging().map(|p| p.doses_per_vial())
    }
    /// Vaccines: vials in one allocation unit (box).
    async fn vials_per_box(&self) -> Option<u32> {
        self.0.packaging().map(|p| p.vials_per_box())
    }
    /// Ancillaries: pieces in one box.
    async fn pieces_per_box(&self) -> Option<u32> {
        match self.0.kind {
            domain::product::ProductKind::Ancillary { pieces_per_box } => Some(pieces_per_box),
            domain::product::ProductKind::Vaccine { .. } => None,
        }
    }
    /// Vaccines: the ancillaries that go with each vial.
    async fn ancillaries(&self) -> Vec<AncillaryRatio> {
        match &self.0.kind {
            domain::product::ProductKind::Vaccine { ancillaries, .. } => ancillaries
                .iter()
                .map(|a| AncillaryRatio {
                    ancillary: a.ancillary.clone().into(),
                    per_vial: a.per_vial.get(),
                })
                .collect(),
            domain::product::ProductKind::Ancillary { .. } => Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct ProductQuery;

#[Object]
impl ProductQuery {
    /// The product catalogue (open to every caller).
    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        Ok(gql(domain::product::list(store(ctx)?).await)?
            .into_iter()
            .map(Product)
            .collect())
    }

    /// One product by code.
    async fn product(&self, ctx: &Context<'_>, code: ProductCode) -> async_graphql::Result<Product> {
        Ok(Product(gql(domain::product::get(store(ctx)?, &code.0).await)?))
    }
}
