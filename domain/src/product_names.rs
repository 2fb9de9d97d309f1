//! The vaccine products a site can offer: their names for the public and their CVX codes for
//! the open feed. A site's products are the `ProductCode`s of its site-master record; a code not
//! listed here is still valid and is shown by its code.

use crate::codes::ProductCode;

/// A product known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownProduct {
    pub code: &'static str,
    /// Brand name and maker, as the public knows them.
    pub name: &'static str,
    /// CDC CVX code used by SMART Scheduling Links' `vaccine-product` extension, if one exists.
    pub cvx: Option<(&'static str, &'static str)>,
}

/// COVID-19 vaccines approved in Japan (brand name, maker).
pub const KNOWN_PRODUCTS: &[KnownProduct] = &[
    KnownProduct {
        code: "comirnaty",
        name: "コミナティ（ファイザー）",
        cvx: Some(("208", "Pfizer-BioNTech COVID-19 Vaccine")),
    },
    KnownProduct {
        code: "spikevax",
        name: "スパイクバックス（モデルナ）",
        cvx: Some(("207", "Moderna COVID-19 Vaccine")),
    },
    KnownProduct {
        code: "nuvaxovid",
        name: "ヌバキソビッド（武田／ノババックス）",
        cvx: Some(("211", "Novavax COVID-19 Vaccine")),
    },
    KnownProduct {
        code: "vaxzevria",
        name: "バキスゼブリア（アストラゼネカ）",
        cvx: Some(("210", "AstraZeneca COVID-19 Vaccine")),
    },
    KnownProduct {
        code: "daichirona",
        name: "ダイチロナ（第一三共）",
        cvx: None,
    },
    KnownProduct {
        code: "kostaive",
        name: "コスタイベ（Meiji Seika ファルマ）",
        cvx: None,
    },
];

pub fn known(code: &ProductCode) -> Option<&'static KnownProduct> {
    KNOWN_PRODUCTS.iter().find(|p| p.code == code.as_str())
}

/// The name shown to the public: the known name, else the code itself.
pub fn display_name(code: &ProductCode) -> String {
    known(code).map_or_else(|| code.as_str().to_owned(), |p| p.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_valid_product_codes_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in KNOWN_PRODUCTS {
            let code: ProductCode = p.code.parse().expect(p.code);
            assert!(seen.insert(p.code), "duplicate {}", p.code);
            assert_eq!(display_name(&code), p.name);
        }
        let other: ProductCode = "newvax".parse().expect("code");
        assert_eq!(display_name(&other), "newvax");
        assert_eq!(
            known(&"comirnaty".parse().expect("code"))
                .and_then(|p| p.cvx)
                .map(|c| c.0),
            Some("208")
        );
    }
}
