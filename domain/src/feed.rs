//! The open feed's shape: SMART Scheduling Links (a `$bulk-publish` manifest pointing at NDJSON
//! files of FHIR R4 Location, Schedule and Slot resources), built from public values only.
//! Pure functions; serving the files is the API's job.
//!
//! Mapping:
//! - one Location and one Schedule (COVID-19 immunization, with the products as CVX codings)
//!   per active site, both with the site code as id;
//! - a venue with slots: one Slot per upcoming slot (`free` while places remain, with the
//!   places left as `slot-capacity`);
//! - any other site that stated its status: one coarse Slot covering the next
//!   [`COARSE_SLOT_DAYS`] days from today 00:00 in Japan (`free` unless ×), as the spec allows
//!   for publishers without slot-level data;
//! - a site that has not stated its status: no Slot (unknown is not "busy").

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use serde_json::{Value, json};

use crate::availability::{Availability, VenueSlot, jst};
use crate::codes::PrefectureCode;
use crate::product_names;
use crate::public::PublicSite;

pub const BOOKING_DEEP_LINK: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link";
pub const BOOKING_PHONE: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone";
pub const SLOT_CAPACITY: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/slot-capacity";
pub const VACCINE_PRODUCT: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/vaccine-product";
/// The identifier system of a site code in this feed.
pub const SITE_CODE_SYSTEM: &str = "urn:jp:vsys:site-code";
/// How far a coarse (status-only) Slot reaches.
pub const COARSE_SLOT_DAYS: i64 = 14;

/// The three kinds of NDJSON file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Location,
    Schedule,
    Slot,
}

impl ResourceType {
    pub const ALL: [ResourceType; 3] = [ResourceType::Location, ResourceType::Schedule, ResourceType::Slot];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Location => "Location",
            ResourceType::Schedule => "Schedule",
            ResourceType::Slot => "Slot",
        }
    }

    /// The file name used under a prefecture's folder.
    pub fn file_name(self) -> &'static str {
        match self {
            ResourceType::Location => "locations.ndjson",
            ResourceType::Schedule => "schedules.ndjson",
            ResourceType::Slot => "slots.ndjson",
        }
    }

    pub fn from_file_name(name: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.file_name() == name)
    }
}

/// ISO 3166-2 code of a prefecture (`JP-13`), used as the manifest's `state` extension.
pub fn iso_region(p: PrefectureCode) -> String {
    format!("JP-{}", p.as_str())
}

/// The manifest: `files` are (type, absolute URL, prefecture) in the order to list them.
pub fn manifest(transaction_time: &str, request: &str, files: &[(ResourceType, String, PrefectureCode)]) -> Value {
    let output: Vec<Value> = files
        .iter()
        .map(|(t, url, p)| json!({ "type": t.as_str(), "url": url, "extension": { "state": [iso_region(*p)] } }))
        .collect();
    json!({ "transactionTime": transaction_time, "request": request, "output": output, "error": [] })
}

/// A FHIR Location for a site. `city` and `state` are the municipality's and prefecture's names.
pub fn location(site: &PublicSite, city: &str, state: &str) -> Value {
    let mut telecom = vec![json!({ "system": "phone", "value": site.phone })];
    if let Some(url) = site.availability.as_ref().and_then(|a| a.booking.url.as_ref()) {
        telecom.push(json!({ "system": "url", "value": url }));
    }
    let mut v = json!({
        "resourceType": "Location",
        "id": site.code.as_str(),
        "identifier": [{ "system": SITE_CODE_SYSTEM, "value": site.code.as_str() }],
        "name": site.name,
        "telecom": telecom,
        "address": {
            "line": [site.address],
            "city": city,
            "state": state,
            "postalCode": site.postal_code.to_string(),
            "country": "JP",
        },
    });
    if let Some(c) = site.coordinates {
        v["position"] = json!({ "latitude": c.latitude(), "longitude": c.longitude() });
    }
    if let Some(notes) = site.availability.as_ref().and_then(|a| a.booking.notes.as_ref()) {
        v["description"] = json!(notes);
    }
    v
}

/// A FHIR Schedule: the site's COVID-19 immunization service, with its products.
pub fn schedule(site: &PublicSite) -> Value {
    let extension: Vec<Value> = site
        .products
        .iter()
        .filter_map(|p| product_names::known(p).and_then(|k| k.cvx))
        .map(|(code, display)| {
            json!({ "url": VACCINE_PRODUCT, "valueCoding": { "system": "http://hl7.org/fhir/sid/cvx", "code": code, "display": display } })
        })
        .collect();
    let mut v = json!({
        "resourceType": "Schedule",
        "id": site.code.as_str(),
        "serviceType": [{ "coding": [
            { "system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "57", "display": "Immunization" },
            { "system": "http://fhir-registry.smarthealthit.org/CodeSystem/service-type", "code": "covid19-immunization", "display": "COVID-19 Immunization Appointment" }
        ] }],
        "actor": [{ "reference": format!("Location/{}", site.code) }],
    });
    if !extension.is_empty() {
        v["extension"] = Value::Array(extension);
    }
    v
}

/// A date and time of day in Japan as RFC 3339 (24:00 is the next day's midnight).
fn at(date: NaiveDate, minutes: u16) -> String {
    let (date, minutes) = if minutes >= 24 * 60 {
        (date.succ_opt().unwrap_or(date), minutes - 24 * 60)
    } else {
        (date, minutes)
    };
    let naive = date.and_time(NaiveTime::MIN + Duration::minutes(i64::from(minutes)));
    jst()
        .from_local_datetime(&naive)
        .single()
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

fn booking_extensions(site: &PublicSite) -> Vec<Value> {
    let mut ext = Vec::new();
    if let Some(a) = &site.availability {
        if let Some(url) = &a.booking.url {
            ext.push(json!({ "url": BOOKING_DEEP_LINK, "valueUrl": url }));
        }
        if let Some(phone) = &a.booking.phone {
            ext.push(json!({ "url": BOOKING_PHONE, "valueString": phone }));
        }
    }
    ext
}

/// The Slots of a site: one per upcoming venue slot (`slots` are the site's own), else one
/// coarse Slot from its stated status, else none.
pub fn slots(site: &PublicSite, venue_slots: &[VenueSlot], today: NaiveDate) -> Vec<Value> {
    let schedule = json!({ "reference": format!("Schedule/{}", site.code) });
    let upcoming: Vec<&VenueSlot> = venue_slots.iter().filter(|s| s.is_upcoming(today)).collect();
    if !upcoming.is_empty() {
        return upcoming
            .into_iter()
            .map(|s| {
                let mut ext = booking_extensions(site);
                ext.push(json!({ "url": SLOT_CAPACITY, "valueInteger": s.remaining() }));
                json!({
                    "resourceType": "Slot",
                    "id": format!("{}.{}.{:04}", site.code, s.date.format("%Y%m%d"), s.start.minutes() / 60 * 100 + s.start.minutes() % 60),
                    "schedule": schedule,
                    "status": if s.remaining() > 0 { "free" } else { "busy" },
                    "start": at(s.date, s.start.minutes()),
                    "end": at(s.date, s.end.minutes()),
                    "extension": ext,
                })
            })
            .collect();
    }
    let Some(a) = &site.availability else { return Vec::new() };
    let mut v = json!({
        "resourceType": "Slot",
        "id": format!("{}.status", site.code),
        "schedule": schedule,
        "status": if a.status == Availability::Full { "busy" } else { "free" },
        "start": at(today, 0),
        "end": at(today + Duration::days(COARSE_SLOT_DAYS), 0),
    });
    let ext = booking_extensions(site);
    if !ext.is_empty() {
        v["extension"] = Value::Array(ext);
    }
    vec![v]
}

/// Resources as NDJSON: one minified JSON object per line.
pub fn ndjson(resources: impl IntoIterator<Item = Value>) -> String {
    let mut out = String::new();
    for r in resources {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::{BookingInfo, TimeOfDay};
    use crate::public::PublicAvailability;
    use crate::site::{Coordinates, SiteKind};

    fn site(status: Option<Availability>) -> PublicSite {
        PublicSite {
            code: "1312020017".parse().expect("code"),
            name: "さくら内科クリニック".into(),
            name_kana: "ｻｸﾗ".into(),
            kind: SiteKind::Clinic,
            municipality: "131016".parse().expect("m"),
            postal_code: "1000001".parse().expect("postal"),
            address: "東京都千代田区千代田1-1".into(),
            phone: "03-1234-5678".into(),
            coordinates: Some(Coordinates::new(35.68, 139.75, "c").expect("coords")),
            products: vec!["comirnaty".parse().expect("p"), "newvax".parse().expect("p")],
            availability: status.map(|status| PublicAvailability {
                status,
                remaining: None,
                booking: BookingInfo {
                    phone: Some("03-9999-0000".into()),
                    url: Some("https://example.jp/book".into()),
                    notes: Some("駐車場あり".into()),
                },
                updated_at: "2026-11-27T00:00:00Z".parse().expect("t"),
            }),
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn location_and_schedule() {
        let s = site(Some(Availability::Open));
        let l = location(&s, "千代田区", "東京都");
        assert_eq!(l["resourceType"], "Location");
        assert_eq!(l["id"], "1312020017");
        assert_eq!(l["telecom"][0], json!({ "system": "phone", "value": "03-1234-5678" }));
        assert_eq!(l["telecom"][1]["system"], "url");
        assert_eq!(
            l["address"],
            json!({ "line": ["東京都千代田区千代田1-1"], "city": "千代田区", "state": "東京都", "postalCode": "100-0001", "country": "JP" })
        );
        assert_eq!(l["position"]["latitude"], 35.68);
        assert_eq!(l["description"], "駐車場あり");
        let sc = schedule(&s);
        assert_eq!(sc["actor"][0]["reference"], "Location/1312020017");
        assert_eq!(sc["serviceType"][0]["coding"][1]["code"], "covid19-immunization");
        // Only known products have CVX codes.
        assert_eq!(sc["extension"].as_array().expect("ext").len(), 1);
        assert_eq!(sc["extension"][0]["valueCoding"]["code"], "208");
    }

    #[test]
    fn slots_from_status_or_venue_slots() {
        let today = day("2026-11-27");
        assert!(slots(&site(None), &[], today).is_empty(), "unknown is not busy");
        for (status, want) in [
            (Availability::Open, "free"),
            (Availability::Few, "free"),
            (Availability::NoBookingNeeded, "free"),
            (Availability::Full, "busy"),
        ] {
            let v = slots(&site(Some(status)), &[], today);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0]["status"], want, "{status}");
            assert_eq!(v[0]["id"], "1312020017.status");
            assert_eq!(v[0]["start"], "2026-11-27T00:00:00+09:00");
            assert_eq!(v[0]["end"], "2026-12-11T00:00:00+09:00");
            assert_eq!(v[0]["extension"][0]["url"], BOOKING_DEEP_LINK);
            assert_eq!(v[0]["extension"][1]["valueString"], "03-9999-0000");
        }
        let slot = |date: &str, start: u16, end: u16, capacity: u32, booked: u32| VenueSlot {
            date: day(date),
            start: TimeOfDay::parse(&format!("{:02}:{:02}", start / 60, start % 60), "s").expect("t"),
            end: TimeOfDay::parse(&format!("{:02}:{:02}", end / 60, end % 60), "e").expect("t"),
            capacity,
            booked,
        };
        let v = slots(
            &site(Some(Availability::Few)),
            &[
                slot("2026-11-26", 540, 600, 10, 0),
                slot("2026-11-27", 540, 600, 10, 10),
                slot("2026-11-28", 780, 1440, 50, 20),
            ],
            today,
        );
        assert_eq!(v.len(), 2, "yesterday's slot is not published");
        assert_eq!(v[0]["id"], "1312020017.20261127.0900");
        assert_eq!(v[0]["status"], "busy");
        assert_eq!(v[0]["start"], "2026-11-27T09:00:00+09:00");
        assert_eq!(v[1]["status"], "free");
        assert_eq!(v[1]["end"], "2026-11-29T00:00:00+09:00", "24:00 is the next midnight");
        assert_eq!(
            v[1]["extension"][2],
            json!({ "url": SLOT_CAPACITY, "valueInteger": 30 })
        );
        for s in &v {
            let id = s["id"].as_str().expect("id");
            assert!(id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
        }
    }

    #[test]
    fn manifest_lists_files_with_their_region() {
        let p: PrefectureCode = "13".parse().expect("p");
        let m = manifest(
            "2026-11-27T00:00:00Z",
            "http://h/$bulk-publish",
            &[(ResourceType::Slot, "http://h/feed/13/slots.ndjson".into(), p)],
        );
        assert_eq!(
            m,
            json!({ "transactionTime": "2026-11-27T00:00:00Z", "request": "http://h/$bulk-publish",
                    "output": [{ "type": "Slot", "url": "http://h/feed/13/slots.ndjson", "extension": { "state": ["JP-13"] } }],
                    "error": [] })
        );
        assert_eq!(ResourceType::from_file_name("slots.ndjson"), Some(ResourceType::Slot));
        assert_eq!(ResourceType::from_file_name("x.ndjson"), None);
        assert_eq!(ndjson([json!({"a":1}), json!({"b":2})]), "{\"a\":1}\n{\"b\":2}\n");
    }
}
