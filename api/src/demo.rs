//! `vsys serve --demo`: a small but real-looking data set for a first look — sites in five
//! municipalities with valid codes, base and satellite sites, venues with assigned codes and
//! bookable slots, reservation availability (○△×◎), a round of Comirnaty allocated down to
//! Chiyoda's proposal — and a development token per role. Runs only on an empty site master; it
//! never touches real data.

use domain::authz::Actor;
use domain::availability::{Availability, AvailabilityDraft, Patch, SlotDraft};
use domain::codes::SiteCode;
use domain::site::SiteDraft;
use domain::store::Store;

use crate::auth::{AuthSettings, DEV_JWT_SECRET, issue_hs256};

/// (municipality, prefecture, city, postal prefix, phone prefix, lat, lon)
type Area = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);
const AREAS: &[Area] = &[
    ("131016", "東京都", "千代田区", "100", "03", 35.694, 139.753),
    ("131041", "東京都", "新宿区", "160", "03", 35.693, 139.703),
    ("011002", "北海道", "札幌市", "060", "011", 43.062, 141.354),
    ("141003", "神奈川県", "横浜市", "231", "045", 35.444, 139.638),
    ("271004", "大阪府", "大阪市", "530", "06", 34.693, 135.502),
];

const CLINIC_NAMES: &[(&str, &str)] = &[
    ("さくら内科クリニック", "ｻｸﾗﾅｲｶｸﾘﾆｯｸ"),
    ("中央総合病院", "ﾁｭｳｵｳｿｳｺﾞｳﾋﾞｮｳｲﾝ"),
    ("みどり小児科", "ﾐﾄﾞﾘｼｮｳﾆｶ"),
    ("駅前ファミリークリニック", "ｴｷﾏｴﾌｧﾐﾘｰｸﾘﾆｯｸ"),
    ("ひかり医院", "ﾋｶﾘｲｲﾝ"),
];

fn draft(area: &Area, i: usize, name: &str, kana: &str, kind: &str) -> SiteDraft {
    let (muni, pref, city, postal, phone, lat, lon) = *area;
    SiteDraft {
        name: name.into(),
        name_kana: kana.into(),
        kind: kind.into(),
        municipality: muni.into(),
        postal_code: format!("{postal}{:04}", 1 + i),
        address: format!("{pref}{city}{}-{}-{}", 1 + i % 5, 1 + i % 9, 1 + i),
        phone: format!("{phone}{:0width$}", 1_234_000 + i, width = 10 - phone.len()),
        latitude: Some(lat + i as f64 * 0.002),
        longitude: Some(lon + i as f64 * 0.002),
        cold_chain_role: "BASE".into(),
        freezer_class: Some("ULTRA_COLD".into()),
        receiving_days: "MON,TUE,WED,THU,FRI".into(),
        receiving_hours: "09:00-17:00".into(),
        wholesaler: Some(["suzuken", "medipal", "alfresa"][i % 3].into()),
        products: "comirnaty".into(),
        ..SiteDraft::default()
    }
}

/// Fills an empty site master; returns how many sites it registered (0 if not empty).
pub async fn seed(store: &Store) -> anyhow::Result<usize> {
    let existing = domain::sites::list(store, &Actor::System, &Default::default(), None, 1).await?;
    if !existing.sites.is_empty() {
        return Ok(0);
    }
    let mut count = 0;
    for (a, area) in AREAS.iter().enumerate() {
        let pref = &area.0[..2];
        let mut base: Option<SiteCode> = None;
        for (i, (name, kana)) in CLINIC_NAMES.iter().enumerate() {
            // A medical code: prefecture, 点数表 1 (医科), district, number, Luhn check digit.
            let code = SiteCode::with_check_digit(&format!("{pref}1{:02}{:04}", 10 + a, 1001 + i))?;
            let kind = if name.contains("病院") { "HOSPITAL" } else { "CLINIC" };
            let mut d = draft(area, i, name, kana, kind);
            if let Some(b) = &base
                && i % 2 == 0
            {
                d.cold_chain_role = "SATELLITE".into();
                d.freezer_class = None;
                d.base_site = Some(b.to_string());
            }
            let site = domain::sites::register(store, &Actor::System, Some(code), &d).await?;
            base.get_or_insert(site.code);
            count += 1;
        }
        let mut venue = draft(
            area,
            9,
            &format!("{}集団接種会場", area.2),
            "ｼｭｳﾀﾞﾝｾｯｼｭｶｲｼﾞｮｳ",
            "MASS_VENUE",
        );
        venue.products = "comirnaty,spikevax".into();
        let venue = domain::sites::register(store, &Actor::System, None, &venue).await?;
        count += 1;
        // Bookable slots for the venue: tomorrow morning and afternoon.
        let tomorrow = domain::public::today() + chrono::Duration::days(1);
        for (start, end, booked) in [("09:00", "12:00", 20 + a as i64 * 15), ("13:00", "16:00", 60)] {
            let slot = SlotDraft {
                date: tomorrow,
                start_time: start.into(),
                end_time: end.into(),
                capacity: 100,
                booked,
            };
            domain::reservations::set_venue_slot(store, &Actor::System, &venue.code, &slot).await?;
        }
    }
    // Every clinic but the last of each area states its availability (○ △ × ◎ in turn).
    let page = domain::sites::list(store, &Actor::System, &Default::default(), None, 100).await?;
    let statuses = [
        Availability::Open,
        Availability::Few,
        Availability::Full,
        Availability::NoBookingNeeded,
    ];
    for (i, site) in page
        .sites
        .iter()
        .filter(|s| !s.details.kind.is_non_medical_venue())
        .enumerate()
    {
        if i % 5 == 4 {
            continue;
        }
        let draft = AvailabilityDraft {
            status: Some(statuses[i % statuses.len()]),
            booking_phone: Patch::Set(site.details.phone.clone()),
            booking_url: Patch::Set(format!("https://yoyaku.example.jp/{}", site.code)),
            booking_notes: Patch::Set("予約は電話またはウェブで受け付けています。".into()),
        };
        domain::reservations::set_availability(store, &Actor::System, &site.code, &draft).await?;
    }
    demo_wholesalers(store, &page.sites).await?;
    demo_round(store).await?;
    Ok(count)
}

/// The three demo wholesalers, all pulling (nothing leaves the laptop), and a customer code for
/// every site except Chiyoda's venue, whose order is held until one is set (`setCustomerCode`).
async fn demo_wholesalers(store: &Store, sites: &[domain::site::Site]) -> anyhow::Result<()> {
    use domain::wholesaler::WholesalerDraft;
    use domain::wholesalers as w;
    let now = chrono::Utc::now();
    for (id, name) in [
        ("suzuken", "株式会社スズケン"),
        ("medipal", "株式会社メディパルホールディングス"),
        ("alfresa", "アルフレッサ株式会社"),
    ] {
        let draft = WholesalerDraft {
            name: name.into(),
            adapter: "PULL".into(),
            ..WholesalerDraft::default()
        };
        w::register(store, &Actor::System, &id.parse()?, &draft, now).await?;
    }
    for (i, site) in sites.iter().enumerate() {
        let Some(wholesaler) = &site.details.wholesaler else {
            continue;
        };
        if site.details.kind.is_non_medical_venue() && site.details.municipality.as_str() == "131016" {
            continue;
        }
        let v = w::NewCustomerCode {
            wholesaler: wholesaler.clone(),
            site: site.code,
            customer_code: format!("{}-{:05}", &wholesaler.as_str()[..2].to_uppercase(), 10_001 + i),
            effective_from: chrono::NaiveDate::from_ymd_opt(2021, 4, 1).ok_or_else(|| anyhow::anyhow!("date"))?,
            effective_to: None,
        };
        w::set_customer_code(store, &Actor::System, &v, now).await?;
    }
    Ok(())
}

/// A round of Comirnaty handed down to Chiyoda: NATIONAL and Tokyo have confirmed, Chiyoda has
/// a proposal to look at, edit and confirm (which writes the orders and outbox entries).
async fn demo_round(store: &Store) -> anyhow::Result<()> {
    use domain::allocation::AllocationOwner;
    use domain::allocations as a;
    use domain::quantity::Boxes;
    let system = Actor::System;
    // Approximate populations, for a plausible split.
    let csv =
        "municipality_code,population\n131016,67000\n131041,349000\n011002,1973000\n141003,3777000\n271004,2752000\n";
    a::import_target_population(store, &system, csv).await?;
    let round = a::create_round(
        store,
        &Actor::National,
        &a::NewRound {
            product: "comirnaty".parse()?,
            number: 9,
            starts_on: chrono::NaiveDate::from_ymd_opt(2021, 7, 5).ok_or_else(|| anyhow::anyhow!("date"))?,
            supply: Some(Boxes::new(100)),
        },
    )
    .await?;
    a::submit_request(store, &Actor::Prefecture("13".parse()?), round.id, Boxes::new(20), "").await?;
    a::submit_request(
        store,
        &Actor::Municipality("131016".parse()?),
        round.id,
        Boxes::new(5),
        "",
    )
    .await?;
    for owner in [AllocationOwner::National, AllocationOwner::Prefecture("13".parse()?)] {
        a::propose(store, &system, round.id, &owner, &a::ProposeOptions::default()).await?;
        a::confirm(store, &system, round.id, &owner, None).await?;
    }
    let chiyoda = AllocationOwner::Municipality("131016".parse()?);
    a::propose(store, &system, round.id, &chiyoda, &a::ProposeOptions::default()).await?;
    Ok(())
}

/// One development token per role, for the demo's printout.
pub fn tokens(settings: &AuthSettings) -> anyhow::Result<Vec<(String, String)>> {
    let secret = settings.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET);
    let roles: [(&str, Option<&str>); 7] = [
        ("NATIONAL", None),
        ("PREFECTURE", Some("13")),
        ("MUNICIPALITY", Some("131016")),
        ("SITE", Some("1311010019")),
        ("WHOLESALER", Some("suzuken")),
        ("MEDICAL_ASSOCIATION", Some("131016 131041")),
        ("FEDERATION", Some("13")),
    ];
    roles
        .iter()
        .map(|(role, scope)| {
            let label = match scope {
                Some(s) => format!("{role} {s}"),
                None => role.to_string(),
            };
            let t = issue_hs256(
                secret,
                &settings.issuer,
                &settings.audience,
                "demo",
                role,
                *scope,
                chrono::Duration::hours(12),
            )?;
            Ok((label, t))
        })
        .collect()
}
