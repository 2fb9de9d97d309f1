//! The site master's vocabulary: what a site is, which of its fields can change, and the pure
//! rules that turn raw input into a valid [`SiteDetails`]. No I/O here; `sites` does that.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::codes::{MunicipalityCode, PostalCode, PrefectureCode, ProductCode, SiteCode, WholesalerId};
use crate::error::DomainError;

vocabulary! {
    /// What kind of place vaccinates. The first four hold an insurance or care code; venues get
    /// a code assigned by this system.
    SiteKind {
        Hospital = "HOSPITAL",
        Clinic = "CLINIC",
        Pharmacy = "PHARMACY",
        CareFacility = "CARE_FACILITY",
        MassVenue = "MASS_VENUE",
        WorkplaceVenue = "WORKPLACE_VENUE",
        HealthCentre = "HEALTH_CENTRE",
    }
}

impl SiteKind {
    /// Mass, workplace and health-centre venues: registered and run by a municipality, and the
    /// only kinds that get a system-assigned code.
    pub fn is_non_medical_venue(self) -> bool {
        matches!(
            self,
            SiteKind::MassVenue | SiteKind::WorkplaceVenue | SiteKind::HealthCentre
        )
    }
}

vocabulary! {
    /// The freezer a base site (基本型接種施設) holds.
    FreezerClass {
        /// −75 °C deep freezer (e.g. Comirnaty).
        UltraCold = "ULTRA_COLD",
        /// −20 °C freezer (e.g. Spikevax).
        Frozen = "FROZEN",
        /// 2–8 °C refrigerator only.
        Refrigerated = "REFRIGERATED",
    }
}

vocabulary! {
    /// 追加・変更・脱退: a site is active until withdrawn; a withdrawn site is kept, never deleted.
    SiteStatus {
        Active = "ACTIVE",
        Withdrawn = "WITHDRAWN",
    }
}

vocabulary! {
    /// Delivery receiving days.
    Weekday {
        Mon = "MON",
        Tue = "TUE",
        Wed = "WED",
        Thu = "THU",
        Fri = "FRI",
        Sat = "SAT",
        Sun = "SUN",
    }
}

vocabulary! {
    /// Stored names of the cold-chain roles (see [`ColdChainRole`]).
    ColdChainKind {
        Base = "BASE",
        Satellite = "SATELLITE",
    }
}

/// 基本型 (a base site holding a freezer and ordering for itself and its satellites) or
/// サテライト型 (supplied by a named base site).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColdChainRole {
    Base { freezer: FreezerClass },
    Satellite { base: SiteCode },
}

impl ColdChainRole {
    pub fn kind(&self) -> ColdChainKind {
        match self {
            ColdChainRole::Base { .. } => ColdChainKind::Base,
            ColdChainRole::Satellite { .. } => ColdChainKind::Satellite,
        }
    }

    /// Builds a role from its stored or input parts, naming the missing or surplus part.
    pub fn from_parts(
        kind: ColdChainKind,
        freezer: Option<FreezerClass>,
        base: Option<SiteCode>,
        field: &str,
    ) -> Result<Self, DomainError> {
        match (kind, freezer, base) {
            (ColdChainKind::Base, Some(freezer), None) => Ok(ColdChainRole::Base { freezer }),
            (ColdChainKind::Base, None, _) => Err(DomainError::invalid(
                format!("{field}.freezerClass"),
                "a base site needs a freezer class",
            )),
            (ColdChainKind::Base, Some(_), Some(_)) => Err(DomainError::invalid(
                format!("{field}.baseSite"),
                "a base site has no base site",
            )),
            (ColdChainKind::Satellite, None, Some(base)) => Ok(ColdChainRole::Satellite { base }),
            (ColdChainKind::Satellite, _, None) => Err(DomainError::invalid(
                format!("{field}.baseSite"),
                "a satellite site needs its base site",
            )),
            (ColdChainKind::Satellite, Some(_), Some(_)) => Err(DomainError::invalid(
                format!("{field}.freezerClass"),
                "a satellite site holds no freezer of its own",
            )),
        }
    }

    pub fn freezer(&self) -> Option<FreezerClass> {
        match self {
            ColdChainRole::Base { freezer } => Some(*freezer),
            ColdChainRole::Satellite { .. } => None,
        }
    }

    pub fn base_site(&self) -> Option<&SiteCode> {
        match self {
            ColdChainRole::Base { .. } => None,
            ColdChainRole::Satellite { base } => Some(base),
        }
    }
}

/// Latitude/longitude in degrees (WGS 84), within Japan's bounding box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    latitude: f64,
    longitude: f64,
}

impl Coordinates {
    /// Japan spans roughly 20–46 °N and 122–154 °E; anything outside is a typo.
    pub fn new(latitude: f64, longitude: f64, field: &str) -> Result<Self, DomainError> {
        if !(20.0..=46.0).contains(&latitude) {
            return Err(DomainError::invalid(
                format!("{field}.latitude"),
                "must be between 20 and 46 (Japan)",
            ));
        }
        if !(122.0..=154.0).contains(&longitude) {
            return Err(DomainError::invalid(
                format!("{field}.longitude"),
                "must be between 122 and 154 (Japan)",
            ));
        }
        Ok(Coordinates { latitude, longitude })
    }
    pub fn latitude(&self) -> f64 {
        self.latitude
    }
    pub fn longitude(&self) -> f64 {
        self.longitude
    }
}

/// 配送特性: when a site can receive deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryProfile {
    /// Days deliveries are accepted, in week order, no duplicates.
    pub receiving_days: BTreeSet<Weekday>,
    /// A "HH:MM-HH:MM" window, start before end; empty when any time of day is fine.
    pub receiving_hours: String,
    /// Free text for the driver (entrance, contact); at most 500 characters.
    pub notes: String,
}

impl DeliveryProfile {
    pub fn new(
        receiving_days: BTreeSet<Weekday>,
        receiving_hours: &str,
        notes: &str,
        field: &str,
    ) -> Result<Self, DomainError> {
        let hours = receiving_hours.trim();
        if !hours.is_empty() {
            parse_time_window(hours).map_err(|r| DomainError::invalid(format!("{field}.receivingHours"), r))?;
        }
        let notes = bounded_text(notes, 0, 500, &format!("{field}.notes"))?;
        Ok(DeliveryProfile {
            receiving_days,
            receiving_hours: hours.to_owned(),
            notes,
        })
    }

    /// Parses the stored "MON,TUE" form.
    pub fn parse_days(s: &str, field: &str) -> Result<BTreeSet<Weekday>, DomainError> {
        s.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<Weekday>()
                    .map_err(|r| DomainError::invalid(field, format!("{d}: {r}")))
            })
            .collect()
    }

    pub fn days_string(&self) -> String {
        self.receiving_days
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_time_window(s: &str) -> Result<(), String> {
    const HINT: &str = "must look like 09:00-17:00 with the start before the end";
    let (a, b) = s.split_once('-').ok_or(HINT)?;
    let minutes = |t: &str| -> Result<u32, String> {
        let (h, m) = t.split_once(':').ok_or(HINT)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| HINT)?, m.parse().map_err(|_| HINT)?);
        if h > 24 || m > 59 || (h == 24 && m > 0) || t.len() != 5 {
            return Err(HINT.to_owned());
        }
        Ok(h * 60 + m)
    };
    if minutes(a)? >= minutes(b)? {
        return Err(HINT.to_owned());
    }
    Ok(())
}

/// Trims and checks a required or optional text's length (in characters, not bytes) and that
/// it holds no control characters.
pub fn bounded_text(s: &str, min: usize, max: usize, field: &str) -> Result<String, DomainError> {
    let t = s.trim();
    let n = t.chars().count();
    if n < min {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if n > max {
        return Err(DomainError::invalid(field, format!("must be at most {max} characters")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// A Japanese phone number: digits with optional hyphens, starting with 0, 10–11 digits.
pub fn parse_phone(s: &str, field: &str) -> Result<String, DomainError> {
    let t = s.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let ok = t.starts_with('0')
        && t.chars().all(|c| c.is_ascii_digit() || c == '-')
        && (10..=11).contains(&digits)
        && !t.contains("--")
        && !t.ends_with('-');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(DomainError::invalid(
            field,
            "must be a Japanese phone number: 10 or 11 digits starting with 0, hyphens allowed",
        ))
    }
}

/// Everything about a site that can be registered or changed. Built only through
/// [`SiteDetails::validate`], so a value of this type is always valid on its own; rules that
/// need the database (municipality exists, base site is a base) are checked by the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteDetails {
    pub name: String,
    pub name_kana: String,
    pub kind: SiteKind,
    pub municipality: MunicipalityCode,
    pub postal_code: PostalCode,
    pub address: String,
    pub phone: String,
    pub coordinates: Option<Coordinates>,
    pub cold_chain: ColdChainRole,
    pub delivery: DeliveryProfile,
    pub wholesaler: Option<WholesalerId>,
    pub products: BTreeSet<ProductCode>,
}

/// Raw site fields as they arrive from GraphQL or a CSV row, before any rule is applied.
#[derive(Debug, Clone, Default)]
pub struct SiteDraft {
    pub name: String,
    pub name_kana: String,
    pub kind: String,
    pub municipality: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub cold_chain_role: String,
    pub freezer_class: Option<String>,
    pub base_site: Option<String>,
    pub receiving_days: String,
    pub receiving_hours: String,
    pub delivery_notes: String,
    pub wholesaler: Option<String>,
    pub products: String,
}

impl SiteDetails {
    /// Applies every pure rule to a draft. `prefix` is prepended to field names in errors
    /// (e.g. `input`), so the caller's own field path appears in the message.
    pub fn validate(d: &SiteDraft, prefix: &str) -> Result<SiteDetails, DomainError> {
        let f = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let code = |field: &str, r: crate::codes::CodeError| DomainError::invalid(f(field), r);
        let kind: SiteKind = d.kind.trim().parse().map_err(|r| DomainError::invalid(f("kind"), r))?;
        let municipality: MunicipalityCode = d.municipality.trim().parse().map_err(|e| code("municipality", e))?;
        if municipality.is_prefecture_level() {
            return Err(DomainError::invalid(
                f("municipality"),
                "is a prefecture's code, not a municipality's",
            ));
        }
        let coordinates = match (d.latitude, d.longitude) {
            (None, None) => None,
            (Some(lat), Some(lon)) => Some(Coordinates::new(lat, lon, &f("coordinates"))?),
            _ => {
                return Err(DomainError::invalid(
                    f("coordinates"),
                    "give both latitude and longitude, or neither",
                ));
            }
        };
        let role_kind: ColdChainKind = d
            .cold_chain_role
            .trim()
            .parse()
            .map_err(|r| DomainError::invalid(f("coldChain.role"), r))?;
        let freezer = match d.freezer_class.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<FreezerClass>()
                    .map_err(|r| DomainError::invalid(f("coldChain.freezerClass"), r))?,
            ),
        };
        let base = match d.base_site.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<SiteCode>().map_err(|e| code("coldChain.baseSite", e))?),
        };
        let cold_chain = ColdChainRole::from_parts(role_kind, freezer, base, &f("coldChain"))?;
        let delivery = DeliveryProfile::new(
            DeliveryProfile::parse_days(&d.receiving_days, &f("delivery.receivingDays"))?,
            &d.receiving_hours,
            &d.delivery_notes,
            &f("delivery"),
        )?;
        let wholesaler = match d.wholesaler.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<WholesalerId>().map_err(|e| code("wholesaler", e))?),
        };
        let products = d
            .products
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ProductCode>().map_err(|e| code("products", e)))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(SiteDetails {
            name: bounded_text(&d.name, 1, 100, &f("name"))?,
            name_kana: bounded_text(&d.name_kana, 0, 100, &f("nameKana"))?,
            kind,
            municipality,
            postal_code: d.postal_code.trim().parse().map_err(|e| code("postalCode", e))?,
            address: bounded_text(&d.address, 1, 200, &f("address"))?,
            phone: parse_phone(&d.phone, &f("phone"))?,
            coordinates,
            cold_chain,
            delivery,
            wholesaler,
            products,
        })
    }

    /// The draft this value came from (used to apply partial updates through the same rules).
    pub fn to_draft(&self) -> SiteDraft {
        SiteDraft {
            name: self.name.clone(),
            name_kana: self.name_kana.clone(),
            kind: self.kind.as_str().to_owned(),
            municipality: self.municipality.as_str().to_owned(),
            postal_code: self.postal_code.as_str().to_owned(),
            address: self.address.clone(),
            phone: self.phone.clone(),
            latitude: self.coordinates.map(|c| c.latitude()),
            longitude: self.coordinates.map(|c| c.longitude()),
            cold_chain_role: self.cold_chain.kind().as_str().to_owned(),
            freezer_class: self.cold_chain.freezer().map(|f| f.as_str().to_owned()),
            base_site: self.cold_chain.base_site().map(|b| b.as_str().to_owned()),
            receiving_days: self.delivery.days_string(),
            receiving_hours: self.delivery.receiving_hours.clone(),
            delivery_notes: self.delivery.notes.clone(),
            wholesaler: self.wholesaler.as_ref().map(|w| w.as_str().to_owned()),
            products: self.products_string(),
        }
    }

    pub fn products_string(&self) -> String {
        self.products.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
    }

    pub fn prefecture(&self) -> PrefectureCode {
        self.municipality.prefecture()
    }

    /// Each field group's value as written in the history, in a stable order.
    pub fn field_values(&self) -> Vec<(SiteField, String)> {
        let d = self.to_draft();
        let coordinates = match (d.latitude, d.longitude) {
            (Some(la), Some(lo)) => format!("{la},{lo}"),
            _ => String::new(),
        };
        let chain = format!(
            "{}:{}",
            d.cold_chain_role,
            d.freezer_class.or(d.base_site).unwrap_or_default()
        );
        vec![
            (SiteField::Name, d.name),
            (SiteField::NameKana, d.name_kana),
            (SiteField::Kind, d.kind),
            (SiteField::Municipality, d.municipality),
            (SiteField::PostalCode, d.postal_code),
            (SiteField::Address, d.address),
            (SiteField::Phone, d.phone),
            (SiteField::Coordinates, coordinates),
            (SiteField::ColdChain, chain),
            (
                SiteField::Delivery,
                format!("{}|{}|{}", d.receiving_days, d.receiving_hours, d.delivery_notes),
            ),
            (SiteField::Wholesaler, d.wholesaler.unwrap_or_default()),
            (SiteField::Products, d.products),
        ]
    }

    /// Field-by-field differences, in a stable order, as stored in the site history.
    pub fn diff(&self, new: &SiteDetails) -> Vec<FieldChange> {
        self.field_values()
            .into_iter()
            .zip(new.field_values())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((field, from), (_, to))| FieldChange { field, from, to })
            .collect()
    }

    /// Every non-empty field as a change from nothing: the REGISTERED history entry.
    pub fn as_registration(&self) -> Vec<FieldChange> {
        self.field_values()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(field, to)| FieldChange {
                field,
                from: String::new(),
                to,
            })
            .collect()
    }
}

vocabulary! {
    /// The groups of site fields that authorization and history talk about.
    SiteField {
        Name = "name",
        NameKana = "nameKana",
        Kind = "kind",
        Municipality = "municipality",
        PostalCode = "postalCode",
        Address = "address",
        Phone = "phone",
        Coordinates = "coordinates",
        ColdChain = "coldChain",
        Delivery = "delivery",
        Wholesaler = "wholesaler",
        Products = "products",
    }
}

/// One field's change in a history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: SiteField,
    pub from: String,
    pub to: String,
}

/// A site as stored: its code, details and lifecycle. Serialisable so a change can travel
/// between instances on the event bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub code: SiteCode,
    pub details: SiteDetails,
    pub status: SiteStatus,
    /// Incremented on every change; a caller may pass the version it saw to refuse lost updates.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

vocabulary! {
    /// What a history entry records.
    HistoryAction {
        Registered = "REGISTERED",
        Changed = "CHANGED",
        Withdrawn = "WITHDRAWN",
    }
}

/// One entry of a site's history: who did what, when, and which fields changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteHistoryEntry {
    pub version: i32,
    pub action: HistoryAction,
    pub actor: String,
    pub changed_at: DateTime<Utc>,
    pub changes: Vec<FieldChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn draft() -> SiteDraft {
        SiteDraft {
            name: "千代田区集団接種会場".into(),
            name_kana: "ﾁﾖﾀﾞｸｼｭｳﾀﾞﾝｾｯｼｭｶｲｼﾞｮｳ".into(),
            kind: "MASS_VENUE".into(),
            municipality: "131016".into(),
            postal_code: "100-0001".into(),
            address: "東京都千代田区千代田1-1".into(),
            phone: "03-1234-5678".into(),
            latitude: Some(35.68),
            longitude: Some(139.75),
            cold_chain_role: "BASE".into(),
            freezer_class: Some("ULTRA_COLD".into()),
            base_site: None,
            receiving_days: "MON,WED,FRI".into(),
            receiving_hours: "09:00-17:00".into(),
            delivery_notes: "".into(),
            wholesaler: None,
            products: "comirnaty".into(),
        }
    }

    #[test]
    fn a_good_draft_validates() {
        let d = SiteDetails::validate(&draft(), "input").expect("valid");
        assert_eq!(d.municipality.as_str(), "131016");
        assert_eq!(d.delivery.days_string(), "MON,WED,FRI");
        assert_eq!(SiteDetails::validate(&d.to_draft(), "").expect("round trip"), d);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Edit = fn(&mut SiteDraft);
        let cases: &[(Edit, &str)] = &[
            (|d| d.name = "  ".into(), "input.name"),
            (|d| d.kind = "CASTLE".into(), "input.kind"),
            (|d| d.municipality = "131017".into(), "input.municipality"),
            (|d| d.municipality = "130001".into(), "input.municipality"),
            (|d| d.postal_code = "12-34".into(), "input.postalCode"),
            (|d| d.phone = "1234".into(), "input.phone"),
            (|d| d.latitude = None, "input.coordinates"),
            (|d| d.latitude = Some(80.0), "input.coordinates.latitude"),
            (|d| d.freezer_class = None, "input.coldChain.freezerClass"),
            (|d| d.cold_chain_role = "SATELLITE".into(), "input.coldChain.baseSite"),
            (|d| d.receiving_days = "MON,XYZ".into(), "input.delivery.receivingDays"),
            (
                |d| d.receiving_hours = "17:00-09:00".into(),
                "input.delivery.receivingHours",
            ),
            (|d| d.wholesaler = Some("Bad Id".into()), "input.wholesaler"),
            (|d| d.products = "comirnaty,BAD!".into(), "input.products"),
        ];
        for (edit, field) in cases {
            let mut d = draft();
            edit(&mut d);
            match SiteDetails::validate(&d, "input") {
                Err(DomainError::Invalid { field: got, .. }) => assert_eq!(&got, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn diff_lists_only_changed_fields() {
        let a = SiteDetails::validate(&draft(), "").expect("valid");
        let mut d = draft();
        d.phone = "03-9999-0000".into();
        d.products = "comirnaty,spikevax".into();
        let b = SiteDetails::validate(&d, "").expect("valid");
        let fields: Vec<_> = a.diff(&b).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, vec![SiteField::Phone, SiteField::Products]);
        assert!(a.diff(&a).is_empty());
    }

    #[test]
    fn time_windows() {
        for ok in ["09:00-17:00", "00:00-24:00", "08:30-08:31"] {
            assert!(parse_time_window(ok).is_ok(), "{ok}");
        }
        for bad in [
            "9:00-17:00",
            "09:00",
            "17:00-09:00",
            "09:00-09:00",
            "25:00-26:00",
            "09:60-10:00",
        ] {
            assert!(parse_time_window(bad).is_err(), "{bad}");
        }
    }
}
