//! Anonymous reads for the public site (コロナワクチンナビ) and the open feed: search active sites
//! with their availability, one site's public card, a prefecture's feed data.
//!
//! Owns: [`PublicSite`], the only shape in which a site leaves the system anonymously. It has
//! no wholesaler, cold chain, delivery profile, version, history or who-changed-what: a field
//! that is not here cannot be shown to the public by mistake. Withdrawn sites never appear.
//!
//! Must not: take an actor (there is none), or write anything. Each page is one query (sites
//! left-joined to their availability by primary key, with the total as a window count).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryResult};
use serde::{Deserialize, Serialize};

use crate::availability::{self, Availability, BookingInfo, PostalPrefix, SiteAvailability, VenueSlot};
use crate::codes::{MunicipalityCode, PostalCode, PrefectureCode, ProductCode, SiteCode};
use crate::entities::{site, site_availability, venue_slot};
use crate::error::{DomainError, DomainResult};
use crate::site::{Coordinates, Site, SiteKind, SiteStatus};
use crate::sites::like_contains;
use crate::store::{Store, fixed};

/// What the public sees of a site's availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAvailability {
    pub status: Availability,
    /// Places left in a venue's upcoming slots (venues with slots only).
    pub remaining: Option<u32>,
    pub booking: BookingInfo,
    pub updated_at: DateTime<Utc>,
}

/// A site as the public sees it. Built only here, from an active site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicSite {
    pub code: SiteCode,
    pub name: String,
    pub name_kana: String,
    pub kind: SiteKind,
    pub municipality: MunicipalityCode,
    pub postal_code: PostalCode,
    pub address: String,
    pub phone: String,
    pub coordinates: Option<Coordinates>,
    pub products: Vec<ProductCode>,
    /// `None` until the site states its availability.
    pub availability: Option<PublicAvailability>,
}

impl PublicSite {
    pub fn prefecture(&self) -> PrefectureCode {
        self.municipality.prefecture()
    }
}

/// A site kind in the words of the public site.
pub fn kind_label(kind: SiteKind) -> &'static str {
    match kind {
        SiteKind::Hospital => "病院",
        SiteKind::Clinic => "診療所",
        SiteKind::Pharmacy => "薬局",
        SiteKind::CareFacility => "介護施設",
        SiteKind::MassVenue => "集団接種会場",
        SiteKind::WorkplaceVenue => "職域接種会場",
        SiteKind::HealthCentre => "保健所",
    }
}

/// The public view of a stored site and its availability; `None` for a withdrawn site, which
/// is never shown.
pub fn public_view(site: &Site, availability: Option<&SiteAvailability>) -> Option<PublicSite> {
    if site.status != SiteStatus::Active {
        return None;
    }
    let d = &site.details;
    Some(PublicSite {
        code: site.code,
        name: d.name.clone(),
        name_kana: d.name_kana.clone(),
        kind: d.kind,
        municipality: d.municipality,
        postal_code: d.postal_code,
        address: d.address.clone(),
        phone: d.phone.clone(),
        coordinates: d.coordinates,
        products: d.products.iter().cloned().collect(),
        availability: availability.map(|a| PublicAvailability {
            status: a.status,
            remaining: a.remaining,
            booking: a.booking.clone(),
            updated_at: a.updated_at,
        }),
    })
}

/// The area a search covers: what a change must touch to make a cached answer stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    Nation,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
}

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
pub const MAX_TEXT_CHARS: usize = 50;
pub const MAX_TEXT_WORDS: usize = 5;

/// A public search as typed by a person, before the rules.
#[derive(Debug, Clone, Default)]
pub struct SearchDraft {
    pub prefecture: Option<PrefectureCode>,
    pub municipality: Option<MunicipalityCode>,
    pub postal_code: Option<String>,
    pub text: Option<String>,
    pub product: Option<ProductCode>,
    pub available_only: bool,
    pub page: i64,
    pub page_size: i64,
}

/// A valid public search. At least one of prefecture, municipality, postal code or text narrows
/// it: the whole country page by page is what the open feed is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSearch {
    prefecture: Option<PrefectureCode>,
    municipality: Option<MunicipalityCode>,
    postal: Option<PostalPrefix>,
    words: Vec<String>,
    product: Option<ProductCode>,
    available_only: bool,
    page: u32,
    page_size: u32,
}

impl PublicSearch {
    /// Applies the rules; field names are those of the public schema (`filter.…`, `page`).
    pub fn new(d: SearchDraft) -> DomainResult<PublicSearch> {
        if let (Some(p), Some(m)) = (d.prefecture, d.municipality)
            && m.prefecture() != p
        {
            return Err(DomainError::invalid(
                "filter.municipality",
                format!("is not in prefecture {p}"),
            ));
        }
        if d.municipality.is_some_and(|m| m.is_prefecture_level()) {
            return Err(DomainError::invalid(
                "filter.municipality",
                "is a prefecture's code; use filter.prefecture",
            ));
        }
        let postal = d
            .postal_code
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| PostalPrefix::parse_human(s, "filter.postalCode"))
            .transpose()?;
        let text = d.text.as_deref().unwrap_or("");
        let words: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == '\u{3000}')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        if text.trim().chars().count() > MAX_TEXT_CHARS {
            return Err(DomainError::invalid(
                "filter.text",
                format!("must be at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        if words.len() > MAX_TEXT_WORDS {
            return Err(DomainError::invalid(
                "filter.text",
                format!("must be at most {MAX_TEXT_WORDS} words"),
            ));
        }
        if words.iter().any(|w| w.chars().any(char::is_control)) {
            return Err(DomainError::invalid(
                "filter.text",
                "must not contain control characters",
            ));
        }
        if d.prefecture.is_none() && d.municipality.is_none() && postal.is_none() && words.is_empty() {
            return Err(DomainError::invalid(
                "filter",
                "give a prefecture, a municipality, a postal code or words to search for",
            ));
        }
        let page = u32::try_from(d.page)
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .ok_or_else(|| DomainError::invalid("page", format!("must be 1-{MAX_PAGE}")))?;
        let page_size = u32::try_from(d.page_size)
            .ok()
            .filter(|p| (1..=MAX_PAGE_SIZE).contains(p))
            .ok_or_else(|| DomainError::invalid("pageSize", format!("must be 1-{MAX_PAGE_SIZE}")))?;
        Ok(PublicSearch {
            prefecture: d.prefecture,
            municipality: d.municipality,
            postal,
            words,
            product: d.product,
            available_only: d.available_only,
            page,
            page_size,
        })
    }

    /// The narrowest area that holds every possible result.
    pub fn area(&self) -> Area {
        match (self.municipality, self.prefecture) {
            (Some(m), _) => Area::Municipality(m),
            (None, Some(p)) => Area::Prefecture(p),
            (None, None) => Area::Nation,
        }
    }

    pub fn page(&self) -> u32 {
        self.page
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }
}

/// One page of a public search, ordered by site code.
#[derive(Debug, Clone)]
pub struct PublicPage {
    pub items: Vec<PublicSite>,
    /// All matches, over every page.
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

impl PublicPage {
    pub fn has_next(&self) -> bool {
        u64::from(self.page) * u64::from(self.page_size) < self.total
    }
}

/// Active sites left-joined to their availability; callers add conditions and order.
fn select_public() -> SelectStatement {
    use site::Column as S;
    use site_availability::Column as A;
    let mut q = Query::select();
    q.columns(
        [
            S::Code,
            S::Name,
            S::NameKana,
            S::Kind,
            S::MunicipalityCode,
            S::PostalCode,
            S::Address,
            S::Phone,
            S::Latitude,
            S::Longitude,
            S::Products,
        ]
        .map(|c| (site::Entity, c)),
    )
    .columns(
        [
            A::Status,
            A::Remaining,
            A::BookingPhone,
            A::BookingUrl,
            A::BookingNotes,
            A::UpdatedAt,
        ]
        .map(|c| (site_availability::Entity, c)),
    )
    .from(site::Entity)
    .left_join(
        site_availability::Entity,
        Expr::col((site_availability::Entity, A::SiteCode)).equals((site::Entity, S::Code)),
    )
    .and_where(Expr::col((site::Entity, S::Status)).eq(SiteStatus::Active.as_str()));
    q
}

fn from_row(r: &QueryResult) -> DomainResult<PublicSite> {
    let code: String = r.try_get("", "code")?;
    let bad = |e: &dyn std::fmt::Display| DomainError::Corrupt(format!("site {code}: {e}"));
    let status: Option<String> = r.try_get("", "status")?;
    let availability = match status {
        None => None,
        Some(s) => {
            let remaining: Option<i32> = r.try_get("", "remaining")?;
            Some(PublicAvailability {
                status: s.parse().map_err(|e| bad(&e))?,
                remaining: remaining.map(|n| u32::try_from(n).map_err(|e| bad(&e))).transpose()?,
                booking: BookingInfo {
                    phone: r.try_get("", "booking_phone")?,
                    url: r.try_get("", "booking_url")?,
                    notes: r.try_get("", "booking_notes")?,
                },
                updated_at: r.try_get("", "updated_at")?,
            })
        }
    };
    let kind: String = r.try_get("", "kind")?;
    let municipality: String = r.try_get("", "municipality_code")?;
    let postal: String = r.try_get("", "postal_code")?;
    let products: String = r.try_get("", "products")?;
    let lat: Option<f64> = r.try_get("", "latitude")?;
    let lon: Option<f64> = r.try_get("", "longitude")?;
    Ok(PublicSite {
        code: code.parse().map_err(|e| bad(&e))?,
        name: r.try_get("", "name")?,
        name_kana: r.try_get("", "name_kana")?,
        kind: kind.parse().map_err(|e| bad(&e))?,
        municipality: municipality.parse().map_err(|e| bad(&e))?,
        postal_code: postal.parse().map_err(|e| bad(&e))?,
        address: r.try_get("", "address")?,
        phone: r.try_get("", "phone")?,
        coordinates: match (lat, lon) {
            (Some(la), Some(lo)) => Some(Coordinates::new(la, lo, "coordinates").map_err(|e| bad(&e))?),
            _ => None,
        },
        products: products
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|e| bad(&e)))
            .collect::<DomainResult<_>>()?,
        availability,
    })
}

fn conditions(q: &PublicSearch) -> Condition {
    use site::Column as S;
    let col = |c: S| Expr::col((site::Entity, c));
    let mut cond = Condition::all();
    if let Some(m) = q.municipality {
        cond = cond.add(col(S::MunicipalityCode).eq(fixed(m.as_str())));
    }
    if let Some(p) = q.prefecture {
        cond = cond.add(col(S::PrefectureCode).eq(fixed(p.as_str())));
    }
    if let Some(postal) = &q.postal {
        let (lower, upper) = postal.range();
        cond = cond.add(col(S::PostalCode).gte(fixed(&lower)));
        if let Some(upper) = upper {
            cond = cond.add(col(S::PostalCode).lt(fixed(&upper)));
        }
    }
    for w in &q.words {
        cond = cond.add(
            Condition::any()
                .add(col(S::Name).like(like_contains(w)))
                .add(col(S::NameKana).like(like_contains(w)))
                .add(col(S::Address).like(like_contains(w))),
        );
    }
    if let Some(p) = &q.product {
        // Products are stored comma-separated ("comirnaty,spikevax"); a product code holds no
        // comma or LIKE wildcard, so these patterns match whole codes only.
        let p = p.as_str();
        cond = cond.add(
            Condition::any()
                .add(col(S::Products).eq(p))
                .add(col(S::Products).like(format!("{p},%")))
                .add(col(S::Products).like(format!("%,{p}")))
                .add(col(S::Products).like(format!("%,{p},%"))),
        );
    }
    if q.available_only {
        let open: Vec<&str> = Availability::ALL
            .iter()
            .filter(|a| a.is_available())
            .map(|a| a.as_str())
            .collect();
        cond = cond.add(Expr::col((site_availability::Entity, site_availability::Column::Status)).is_in(open));
    }
    cond
}

/// One page of active sites matching the search, with their availability, in one query.
pub async fn search(store: &Store, q: &PublicSearch) -> DomainResult<PublicPage> {
    let offset = u64::from(q.page - 1) * u64::from(q.page_size);
    let mut stmt = select_public();
    stmt.cond_where(conditions(q))
        .expr_as(Expr::cust("COUNT(*) OVER ()"), Alias::new("total"))
        .order_by((site::Entity, site::Column::Code), sea_orm::Order::Asc)
        .limit(u64::from(q.page_size))
        .offset(offset);
    let rows = store.db().query_all(&stmt).await?;
    let total = match rows.first() {
        Some(r) => u64::try_from(r.try_get::<i64>("", "total")?).unwrap_or(0),
        // Past the last page the window count has no row to ride on: count separately.
        None if offset > 0 => {
            let mut count = select_public();
            count
                .clear_selects()
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("total"))
                .cond_where(conditions(q));
            match store.db().query_one(&count).await? {
                Some(r) => u64::try_from(r.try_get::<i64>("", "total")?).unwrap_or(0),
                None => 0,
            }
        }
        None => 0,
    };
    Ok(PublicPage {
        items: rows.iter().map(from_row).collect::<DomainResult<_>>()?,
        total,
        page: q.page,
        page_size: q.page_size,
    })
}

/// One active site's public card, or `None` (unknown or withdrawn: the public cannot tell).
pub async fn site(store: &Store, code: &SiteCode) -> DomainResult<Option<PublicSite>> {
    let mut stmt = select_public();
    stmt.and_where(Expr::col((site::Entity, site::Column::Code)).eq(fixed(code.as_str())));
    store.db().query_one(&stmt).await?.as_ref().map(from_row).transpose()
}

/// Everything the open feed publishes for one prefecture: its active sites with their
/// availability, and the upcoming slots of its venues.
#[derive(Debug, Clone)]
pub struct FeedData {
    pub sites: Vec<PublicSite>,
    pub slots: Vec<(SiteCode, VenueSlot)>,
}

pub async fn feed(store: &Store, prefecture: PrefectureCode, today: NaiveDate) -> DomainResult<FeedData> {
    let mut stmt = select_public();
    stmt.and_where(Expr::col((site::Entity, site::Column::PrefectureCode)).eq(fixed(prefecture.as_str())))
        .order_by((site::Entity, site::Column::Code), sea_orm::Order::Asc);
    let sites: Vec<PublicSite> = store
        .db()
        .query_all(&stmt)
        .await?
        .iter()
        .map(from_row)
        .collect::<DomainResult<_>>()?;
    // A site code starts with its prefecture, so the slot index's leading column answers this
    // as a range.
    let next = PrefectureCode::from_number(prefecture.number() + 1)
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|_| "99".to_owned());
    let rows = venue_slot::Entity::find()
        .filter(Expr::col(venue_slot::Column::SiteCode).gte(fixed(prefecture.as_str())))
        .filter(Expr::col(venue_slot::Column::SiteCode).lt(fixed(&next)))
        .filter(venue_slot::Column::SlotDate.gte(today))
        .order_by_asc(venue_slot::Column::SiteCode)
        .order_by_asc(venue_slot::Column::SlotDate)
        .order_by_asc(venue_slot::Column::StartTime)
        .all(store.db())
        .await?;
    let active: std::collections::HashSet<SiteCode> = sites.iter().map(|s| s.code).collect();
    let slots = crate::reservations::slots_by_site(rows)?
        .into_iter()
        .filter(|(code, _)| active.contains(code))
        .collect();
    Ok(FeedData { sites, slots })
}

/// Today in Japan, as the feed and the slot rules see it.
pub fn today() -> NaiveDate {
    availability::jst_today(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> SearchDraft {
        SearchDraft {
            page: 1,
            page_size: 20,
            ..Default::default()
        }
    }

    #[test]
    fn a_search_must_be_narrowed_and_bounded() {
        let m: MunicipalityCode = "131016".parse().expect("m");
        let p13: PrefectureCode = "13".parse().expect("p");
        let p01: PrefectureCode = "01".parse().expect("p");
        let ok = PublicSearch::new(SearchDraft {
            municipality: Some(m),
            ..draft()
        })
        .expect("valid");
        assert_eq!(ok.area(), Area::Municipality(m));
        let pref = PublicSearch::new(SearchDraft {
            prefecture: Some(p13),
            ..draft()
        })
        .expect("valid");
        assert_eq!(pref.area(), Area::Prefecture(p13));
        let text = PublicSearch::new(SearchDraft {
            text: Some(" さくら\u{3000}クリニック ".into()),
            ..draft()
        })
        .expect("valid");
        assert_eq!(text.area(), Area::Nation);
        assert_eq!(text.words, vec!["さくら", "クリニック"]);

        type Edit = fn(&mut SearchDraft);
        let bad: &[(Edit, &str)] = &[
            (|_| {}, "filter"),
            (|d| d.text = Some("   ".into()), "filter"),
            (
                |d| {
                    d.municipality = Some("131016".parse().expect("m"));
                    d.prefecture = Some("01".parse().expect("p"));
                },
                "filter.municipality",
            ),
            (
                |d| d.municipality = Some("130001".parse().expect("m")),
                "filter.municipality",
            ),
            (|d| d.postal_code = Some("1x".into()), "filter.postalCode"),
            (|d| d.text = Some("あ".repeat(51)), "filter.text"),
            (|d| d.text = Some("a b c d e f".into()), "filter.text"),
            (
                |d| {
                    d.prefecture = Some("13".parse().expect("p"));
                    d.page = 0;
                },
                "page",
            ),
            (
                |d| {
                    d.prefecture = Some("13".parse().expect("p"));
                    d.page_size = 51;
                },
                "pageSize",
            ),
        ];
        for (edit, field) in bad {
            let mut d = draft();
            edit(&mut d);
            match PublicSearch::new(d) {
                Err(DomainError::Invalid { field: got, .. }) => assert_eq!(&got, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
        let _ = p01;
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let page = |page, total| PublicPage {
            items: vec![],
            total,
            page,
            page_size: 20,
        };
        assert!(page(1, 21).has_next());
        assert!(!page(1, 20).has_next());
        assert!(!page(2, 40).has_next());
        assert!(!page(1, 0).has_next());
    }
}
