//! The allocation vocabulary and its pure rules: rounds (クール), the three levels that hand a
//! round's boxes down (national → prefectures → municipalities → sites), who owns which level,
//! which children a level may give to, which sites may receive a product, and the proposal
//! arithmetic ([`proposal`]). No I/O here; `allocations` does that.

pub mod proposal;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};

use crate::codes::{MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use crate::error::DomainError;
use crate::product::{Product, StorageClass};
use crate::quantity::Boxes;
use crate::site::{ColdChainRole, Site, SiteStatus};

pub use proposal::{
    Claim, DEFAULT_ADJUSTMENT_PERCENT, LineReason, Params, Proposal, ProposalError, ProposalSummary, ProposedLine,
    WeightSource, propose,
};

/// The most boxes any single quantity may name (supply, request, line, cap). Far above any real
/// round (about 10,000 Comirnaty boxes), low enough that the exact arithmetic never overflows
/// for realistic weights.
pub const MAX_BOXES: u64 = 1_000_000_000;

/// The largest target population accepted for one municipality.
pub const MAX_POPULATION: u64 = 1_000_000_000;

vocabulary! {
    /// The levels of the distribution chain. An allocation belongs to one of the first three
    /// and hands boxes to the next one down.
    Level {
        National = "NATIONAL",
        Prefecture = "PREFECTURE",
        Municipality = "MUNICIPALITY",
        Site = "SITE",
    }
}

impl Level {
    /// The level an allocation at this level hands boxes to.
    pub fn child(self) -> Option<Level> {
        match self {
            Level::National => Some(Level::Prefecture),
            Level::Prefecture => Some(Level::Municipality),
            Level::Municipality => Some(Level::Site),
            Level::Site => None,
        }
    }
}

vocabulary! {
    /// An allocation is edited while DRAFT; CONFIRMED is final and hands the boxes down.
    AllocationStatus {
        Draft = "DRAFT",
        Confirmed = "CONFIRMED",
    }
}

vocabulary! {
    /// Why a child gets nothing of a product.
    Ineligible {
        /// The site has withdrawn (脱退).
        Withdrawn = "WITHDRAWN",
        /// The child is not in the allocating owner's area.
        OutsideArea = "OUTSIDE_AREA",
        /// The site does not list the product among those it handles.
        ProductNotHandled = "PRODUCT_NOT_HANDLED",
        /// A satellite site holds no freezer; frozen products go to its base site.
        NoFreezer = "NO_FREEZER",
        /// The base site's freezer is not cold enough for the product.
        FreezerTooWarm = "FREEZER_TOO_WARM",
    }
}

impl Ineligible {
    pub fn explain(self) -> &'static str {
        match self {
            Ineligible::Withdrawn => "the site has withdrawn; withdrawn sites get nothing",
            Ineligible::OutsideArea => "outside the allocating area",
            Ineligible::ProductNotHandled => "the site does not handle this product",
            Ineligible::NoFreezer => {
                "a satellite site holds no freezer; frozen and ultra-cold products go only to base sites"
            }
            Ineligible::FreezerTooWarm => "the base site's freezer is not cold enough for this product",
        }
    }
}

/// Whether a site may receive a product from its municipality's allocation: active, in the
/// municipality, handling the product, and — for frozen and ultra-cold products — a base site
/// whose freezer fits ([`StorageClass::fits`]). Refrigerated and ambient products may go to any
/// active site, satellites included.
pub fn site_eligibility(product: &Product, site: &Site, municipality: &MunicipalityCode) -> Result<(), Ineligible> {
    if site.status == SiteStatus::Withdrawn {
        return Err(Ineligible::Withdrawn);
    }
    if site.details.municipality != *municipality {
        return Err(Ineligible::OutsideArea);
    }
    if !site.details.products.contains(&product.code) {
        return Err(Ineligible::ProductNotHandled);
    }
    match (product.storage, &site.details.cold_chain) {
        (StorageClass::Refrigerated | StorageClass::Ambient, _) => Ok(()),
        (storage, ColdChainRole::Base { freezer }) if storage.fits(*freezer) => Ok(()),
        (_, ColdChainRole::Base { .. }) => Err(Ineligible::FreezerTooWarm),
        (_, ColdChainRole::Satellite { .. }) => Err(Ineligible::NoFreezer),
    }
}

/// Who owns an allocation (and edits it): the nation, a prefecture or a municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocationOwner {
    National,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
}

impl AllocationOwner {
    /// `NATIONAL`, a 2-digit prefecture code or a 6-digit municipality code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.len() {
            _ if s == "NATIONAL" => Ok(AllocationOwner::National),
            2 => s
                .parse()
                .map(AllocationOwner::Prefecture)
                .map_err(|e| format!("not a prefecture code: {e}")),
            6 => {
                let m: MunicipalityCode = s.parse().map_err(|e| format!("not a municipality code: {e}"))?;
                if m.is_prefecture_level() {
                    return Err("a prefecture is written with its 2-digit code".into());
                }
                Ok(AllocationOwner::Municipality(m))
            }
            _ => Err("must be NATIONAL, a 2-digit prefecture code or a 6-digit municipality code".into()),
        }
    }

    pub fn level(&self) -> Level {
        match self {
            AllocationOwner::National => Level::National,
            AllocationOwner::Prefecture(_) => Level::Prefecture,
            AllocationOwner::Municipality(_) => Level::Municipality,
        }
    }

    /// The stored key: empty for the nation, else the code.
    pub fn key(&self) -> &str {
        match self {
            AllocationOwner::National => "",
            AllocationOwner::Prefecture(p) => p.as_str(),
            AllocationOwner::Municipality(m) => m.as_str(),
        }
    }

    /// Rebuilds an owner from its stored key.
    pub fn from_key(key: &str) -> Result<Self, String> {
        if key.is_empty() {
            Ok(AllocationOwner::National)
        } else {
            Self::parse(key)
        }
    }

    /// The owner of the allocation this one receives its boxes from.
    pub fn parent(&self) -> Option<AllocationOwner> {
        match self {
            AllocationOwner::National => None,
            AllocationOwner::Prefecture(_) => Some(AllocationOwner::National),
            AllocationOwner::Municipality(m) => Some(AllocationOwner::Prefecture(m.prefecture())),
        }
    }

    /// How the owner appears as a child in its parent's lines.
    pub fn as_child(&self) -> Option<ChildCode> {
        match self {
            AllocationOwner::National => None,
            AllocationOwner::Prefecture(p) => Some(ChildCode::Prefecture(*p)),
            AllocationOwner::Municipality(m) => Some(ChildCode::Municipality(*m)),
        }
    }
}

impl std::fmt::Display for AllocationOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocationOwner::National => f.write_str("NATIONAL"),
            AllocationOwner::Prefecture(p) => write!(f, "prefecture {p}"),
            AllocationOwner::Municipality(m) => write!(f, "municipality {m}"),
        }
    }
}

/// A child of an allocation: a prefecture (of the national allocation), a municipality (of a
/// prefecture's) or a site (of a municipality's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildCode {
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
    Site(SiteCode),
}

impl ChildCode {
    /// Parses a child of an allocation at `level` (whose children are one level down).
    pub fn parse_for(level: Level, s: &str) -> Result<Self, String> {
        match level {
            Level::National => s
                .parse()
                .map(ChildCode::Prefecture)
                .map_err(|e| format!("must be a prefecture code: {e}")),
            Level::Prefecture => {
                let m: MunicipalityCode = s.parse().map_err(|e| format!("must be a municipality code: {e}"))?;
                if m.is_prefecture_level() {
                    return Err("must be a municipality code, not a prefecture's".into());
                }
                Ok(ChildCode::Municipality(m))
            }
            Level::Municipality => s
                .parse()
                .map(ChildCode::Site)
                .map_err(|e| format!("must be a site code: {e}")),
            Level::Site => Err("a site hands out nothing".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ChildCode::Prefecture(p) => p.as_str(),
            ChildCode::Municipality(m) => m.as_str(),
            ChildCode::Site(s) => s.as_str(),
        }
    }

    pub fn level(&self) -> Level {
        match self {
            ChildCode::Prefecture(_) => Level::Prefecture,
            ChildCode::Municipality(_) => Level::Municipality,
            ChildCode::Site(_) => Level::Site,
        }
    }
}

impl std::fmt::Display for ChildCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a prefecture or municipality child lies in the owner's area. Sites need their
/// stored municipality and are checked by [`site_eligibility`].
pub fn in_area(owner: &AllocationOwner, child: &ChildCode) -> bool {
    match (owner, child) {
        (AllocationOwner::National, ChildCode::Prefecture(_)) => true,
        (AllocationOwner::Prefecture(p), ChildCode::Municipality(m)) => m.prefecture() == *p,
        _ => false,
    }
}

/// A round (クール): two weeks of deliveries of one product. Its supply is what NATIONAL
/// registered for it (step ❶), and its status is the national allocation's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub id: i32,
    pub product: ProductCode,
    pub number: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub supply: Boxes,
    pub status: AllocationStatus,
    pub created_at: DateTime<Utc>,
}

/// A request (希望量) of a prefecture, municipality or site for a round, read by the level above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub round: i32,
    pub requester: ChildCode,
    pub prefecture: PrefectureCode,
    /// The municipality of a municipality's or site's request.
    pub municipality: Option<MunicipalityCode>,
    pub boxes: Boxes,
    pub note: String,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A round runs Monday to the second Sunday (two delivery weeks). Returns the last day.
pub fn round_end(starts_on: NaiveDate) -> Result<NaiveDate, DomainError> {
    if starts_on.weekday() != Weekday::Mon {
        return Err(DomainError::invalid(
            "input.startsOn",
            "a round starts on a Monday (two delivery weeks)",
        ));
    }
    starts_on
        .checked_add_days(Days::new(13))
        .ok_or_else(|| DomainError::invalid("input.startsOn", "too far in the future"))
}

/// A quantity that must be at least one box (supply, request).
pub fn positive_boxes(b: Boxes, field: &str) -> Result<Boxes, DomainError> {
    if b.is_zero() {
        return Err(DomainError::invalid(field, "must be at least 1 box"));
    }
    bounded_boxes(b, field)
}

/// Any quantity of boxes: at most [`MAX_BOXES`].
pub fn bounded_boxes(b: Boxes, field: &str) -> Result<Boxes, DomainError> {
    if b.get() > MAX_BOXES {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_BOXES} boxes"),
        ));
    }
    Ok(b)
}

/// A round's ordinal number: 1 and up.
pub fn round_number(n: i32) -> Result<i32, DomainError> {
    if n < 1 {
        return Err(DomainError::invalid("input.number", "must be 1 or more"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::ProductKind;
    use crate::quantity::Packaging;
    use crate::site::{SiteDetails, SiteDraft};

    fn product(code: &str, storage: StorageClass) -> Product {
        Product {
            code: code.parse().expect("code"),
            name: code.into(),
            manufacturer: "-".into(),
            storage,
            kind: ProductKind::Vaccine {
                packaging: Packaging::new(6, 195).expect("packaging"),
                ancillaries: vec![],
            },
        }
    }

    fn site(role: &str, freezer: Option<&str>, products: &str, status: SiteStatus) -> Site {
        let draft = SiteDraft {
            name: "x".into(),
            kind: "CLINIC".into(),
            municipality: "131016".into(),
            postal_code: "1000001".into(),
            address: "東京都千代田区".into(),
            phone: "03-1234-5678".into(),
            cold_chain_role: role.into(),
            freezer_class: freezer.map(Into::into),
            base_site: (role == "SATELLITE").then(|| "1312020017".into()),
            products: products.into(),
            ..SiteDraft::default()
        };
        Site {
            code: "1312020025".parse().expect("code"),
            details: SiteDetails::validate(&draft, "").expect("valid"),
            status,
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn which_sites_may_receive_a_product() {
        use SiteStatus::*;
        let chiyoda: MunicipalityCode = "131016".parse().expect("m");
        let shinjuku: MunicipalityCode = "131041".parse().expect("m");
        let comirnaty = product("comirnaty", StorageClass::UltraCold);
        let spikevax = product("spikevax", StorageClass::Frozen);
        let fridge = product("fridge", StorageClass::Refrigerated);
        let all = "comirnaty,spikevax,fridge";
        type Case<'a> = (&'a Product, Site, &'a MunicipalityCode, Result<(), Ineligible>);
        let cases: Vec<Case<'_>> = vec![
            (
                &comirnaty,
                site("BASE", Some("ULTRA_COLD"), all, Active),
                &chiyoda,
                Ok(()),
            ),
            (
                &comirnaty,
                site("BASE", Some("FROZEN"), all, Active),
                &chiyoda,
                Err(Ineligible::FreezerTooWarm),
            ),
            (
                &comirnaty,
                site("SATELLITE", None, all, Active),
                &chiyoda,
                Err(Ineligible::NoFreezer),
            ),
            (
                &comirnaty,
                site("BASE", Some("ULTRA_COLD"), all, Withdrawn),
                &chiyoda,
                Err(Ineligible::Withdrawn),
            ),
            (
                &comirnaty,
                site("BASE", Some("ULTRA_COLD"), all, Active),
                &shinjuku,
                Err(Ineligible::OutsideArea),
            ),
            (
                &comirnaty,
                site("BASE", Some("ULTRA_COLD"), "spikevax", Active),
                &chiyoda,
                Err(Ineligible::ProductNotHandled),
            ),
            (
                &spikevax,
                site("BASE", Some("ULTRA_COLD"), all, Active),
                &chiyoda,
                Ok(()),
            ),
            (&spikevax, site("BASE", Some("FROZEN"), all, Active), &chiyoda, Ok(())),
            (
                &spikevax,
                site("BASE", Some("REFRIGERATED"), all, Active),
                &chiyoda,
                Err(Ineligible::FreezerTooWarm),
            ),
            (&fridge, site("SATELLITE", None, all, Active), &chiyoda, Ok(())),
        ];
        for (p, s, m, want) in cases {
            assert_eq!(
                site_eligibility(p, &s, m),
                want,
                "{} to {:?} {:?}",
                p.code,
                s.details.cold_chain,
                s.status
            );
        }
    }

    #[test]
    fn owners_and_children() {
        let tokyo = AllocationOwner::parse("13").expect("prefecture");
        let chiyoda = AllocationOwner::parse("131016").expect("municipality");
        assert_eq!(AllocationOwner::parse("NATIONAL"), Ok(AllocationOwner::National));
        assert_eq!(chiyoda.parent(), Some(tokyo));
        assert_eq!(tokyo.parent(), Some(AllocationOwner::National));
        assert_eq!(AllocationOwner::from_key(""), Ok(AllocationOwner::National));
        assert_eq!(AllocationOwner::from_key(chiyoda.key()), Ok(chiyoda));
        for bad in ["130001", "1", "national", "131017", "1312020017"] {
            assert!(AllocationOwner::parse(bad).is_err(), "{bad}");
        }
        let shinjuku = ChildCode::parse_for(Level::Prefecture, "131041").expect("child");
        let sapporo = ChildCode::parse_for(Level::Prefecture, "011002").expect("child");
        assert!(in_area(&tokyo, &shinjuku));
        assert!(!in_area(&tokyo, &sapporo));
        assert!(in_area(
            &AllocationOwner::National,
            &ChildCode::parse_for(Level::National, "47").expect("p")
        ));
        assert!(ChildCode::parse_for(Level::National, "131016").is_err());
        assert!(ChildCode::parse_for(Level::Prefecture, "130001").is_err());
        assert!(ChildCode::parse_for(Level::Municipality, "131016").is_err());
        assert!(ChildCode::parse_for(Level::Site, "1312020017").is_err());
    }

    #[test]
    fn rounds_start_on_mondays() {
        let monday = NaiveDate::from_ymd_opt(2021, 7, 5).expect("date");
        assert_eq!(round_end(monday).ok(), NaiveDate::from_ymd_opt(2021, 7, 18));
        assert!(round_end(NaiveDate::from_ymd_opt(2021, 7, 6).expect("date")).is_err());
        assert!(positive_boxes(Boxes::ZERO, "supply").is_err());
        assert!(positive_boxes(Boxes::new(MAX_BOXES + 1), "supply").is_err());
        assert!(positive_boxes(Boxes::new(1), "supply").is_ok());
        assert!(round_number(0).is_err());
    }
}
