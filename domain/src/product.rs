//! Products: vaccines (with packaging and storage class) and the ancillaries shipped with them.
//! Reading is open to every caller; the catalogue is reference data maintained by NATIONAL.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::codes::ProductCode;
use crate::entities::{product, product_ancillary};
use crate::error::{DomainError, DomainResult};
use crate::quantity::{Packaging, PerVial};
use crate::site::FreezerClass;
use crate::store::Store;

vocabulary! {
    /// The temperature a product must be kept at.
    StorageClass {
        /// −75 °C (Comirnaty as shipped).
        UltraCold = "ULTRA_COLD",
        /// −20 °C (Spikevax).
        Frozen = "FROZEN",
        /// 2–8 °C.
        Refrigerated = "REFRIGERATED",
        /// Room temperature (needles, syringes).
        Ambient = "AMBIENT",
    }
}

impl StorageClass {
    /// Whether a base site's freezer can hold this product: colder freezers hold warmer
    /// products, never the reverse.
    pub fn fits(self, freezer: FreezerClass) -> bool {
        match self {
            StorageClass::UltraCold => freezer == FreezerClass::UltraCold,
            StorageClass::Frozen => matches!(freezer, FreezerClass::UltraCold | FreezerClass::Frozen),
            StorageClass::Refrigerated | StorageClass::Ambient => true,
        }
    }
}

/// How many of an ancillary go with each vial of a vaccine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AncillaryRatio {
    pub ancillary: ProductCode,
    pub per_vial: PerVial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductKind {
    Vaccine {
        packaging: Packaging,
        ancillaries: Vec<AncillaryRatio>,
    },
    Ancillary {
        pieces_per_box: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub code: ProductCode,
    pub name: String,
    pub manufacturer: String,
    pub storage: StorageClass,
    pub kind: ProductKind,
}

impl Product {
    pub fn packaging(&self) -> Option<Packaging> {
        match &self.kind {
            ProductKind::Vaccine { packaging, .. } => Some(*packaging),
            ProductKind::Ancillary { .. } => None,
        }
    }
}

fn corrupt(code: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("product {code}: {e}"))
}

fn positive(v: Option<i32>, code: &str, what: &str) -> DomainResult<u32> {
    v.and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| corrupt(code, format!("{what} missing")))
}

fn from_rows(m: product::Model, ratios: &[product_ancillary::Model]) -> DomainResult<Product> {
    let code = &m.code;
    let kind = match m.kind.as_str() {
        "VACCINE" => ProductKind::Vaccine {
            packaging: Packaging::new(
                positive(m.doses_per_vial, code, "doses_per_vial")?,
                positive(m.vials_per_box, code, "vials_per_box")?,
            )
            .map_err(|e| corrupt(code, e))?,
            ancillaries: {
                let mut v = ratios
                    .iter()
                    .filter(|r| &r.product_code == code)
                    .map(|r| {
                        Ok(AncillaryRatio {
                            ancillary: r.ancillary_code.parse().map_err(|e| corrupt(code, e))?,
                            per_vial: PerVial::new(u32::try_from(r.per_vial).unwrap_or(0))
                                .map_err(|e| corrupt(code, e))?,
                        })
                    })
                    .collect::<DomainResult<Vec<_>>>()?;
                v.sort_by(|a, b| a.ancillary.cmp(&b.ancillary));
                v
            },
        },
        "ANCILLARY" => ProductKind::Ancillary {
            pieces_per_box: positive(m.pieces_per_box, code, "pieces_per_box")?,
        },
        other => return Err(corrupt(code, format!("unknown kind {other}"))),
    };
    Ok(Product {
        code: m.code.parse().map_err(|e| corrupt(code, e))?,
        storage: m.storage_class.parse().map_err(|e| corrupt(code, e))?,
        name: m.name,
        manufacturer: m.manufacturer,
        kind,
    })
}

/// The whole catalogue, ordered by code.
pub async fn list(store: &Store) -> DomainResult<Vec<Product>> {
    let ratios = product_ancillary::Entity::find().all(store.db()).await?;
    product::Entity::find()
        .order_by_asc(product::Column::Code)
        .all(store.db())
        .await?
        .into_iter()
        .map(|m| from_rows(m, &ratios))
        .collect()
}

/// One product, or NOT_FOUND.
pub async fn get(store: &Store, code: &ProductCode) -> DomainResult<Product> {
    get_in(store.db(), code).await
}

/// As [`get`], on a given connection or transaction.
pub async fn get_in<C: ConnectionTrait>(db: &C, code: &ProductCode) -> DomainResult<Product> {
    let m = product::Entity::find_by_id(code.as_str())
        .one(db)
        .await?
        .ok_or_else(|| DomainError::not_found("product", code))?;
    let ratios = product_ancillary::Entity::find()
        .filter(product_ancillary::Column::ProductCode.eq(code.as_str()))
        .all(db)
        .await?;
    from_rows(m, &ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_fits_freezers() {
        use FreezerClass::*;
        let table = [
            (StorageClass::UltraCold, UltraCold, true),
            (StorageClass::UltraCold, Frozen, false),
            (StorageClass::UltraCold, Refrigerated, false),
            (StorageClass::Frozen, UltraCold, true),
            (StorageClass::Frozen, Frozen, true),
            (StorageClass::Frozen, Refrigerated, false),
            (StorageClass::Refrigerated, Refrigerated, true),
            (StorageClass::Ambient, Refrigerated, true),
        ];
        for (storage, freezer, fits) in table {
            assert_eq!(storage.fits(freezer), fits, "{storage} in {freezer}");
        }
    }
}
