//! The national data-set generator: a site master of ~70,000 sites over Japan's 1,741 real
//! municipalities (and, on request, millions of persons), deterministic for a seed.
//!
//! Owns: the shape of the synthetic data. Every code is built through the `domain` code types
//! (`SiteCode::with_check_digit`, `SiteCode::assigned`), so a generated code is valid by the
//! same rules the importer applies; the unit tests below run every row through those rules.
//! Must not: talk to a database or the `vsys` binary (the `import-70k` scenario does that).
//!
//! Shape, chosen to resemble the real site master:
//! * Sites are spread over municipalities by a deterministic heavy-tailed weight: designated
//!   cities (municipality part 100) and Tokyo's 特別区 (131xx) weigh most, other cities (2xx)
//!   less, towns and villages (3xx+) least, each scaled by a seeded log-normal factor; every
//!   municipality gets at least [`MIN_SITES_PER_MUNICIPALITY`].
//! * Kinds: ~80% clinics, ~8% hospitals, ~3% pharmacies, ~4% care facilities, ~5% venues.
//! * Cold chain: ~15% base sites (real: ~10,000 of 70,000), at least one per municipality;
//!   every satellite names a base site of its own municipality.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{Days, NaiveDate};
use domain::codes::{MunicipalityCode, PrefectureCode, SiteCode};
use domain::sites::CSV_COLUMNS;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::words::{self, Word};

/// Every municipality gets at least this many sites.
pub const MIN_SITES_PER_MUNICIPALITY: usize = 3;

/// Separate random streams, so that e.g. adding persons never changes the sites of a seed.
const STREAM_WEIGHTS: u64 = 0x5745_4947_4854_5300;
const STREAM_SITES: u64 = 0x5349_5445_5300_0000;
const STREAM_PERSONS: u64 = 0x5045_5253_4f4e_5300;

/// Birth dates are computed against a fixed date, not today, so output depends on the seed only.
const REFERENCE_DATE: (i32, u32, u32) = (2025, 4, 1);

/// A prefecture from the shipped reference list.
#[derive(Debug, Clone)]
pub struct Prefecture {
    pub code: PrefectureCode,
    pub name: String,
}

/// How a municipality is classed by its JIS X 0402 number (domain-facts §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MunicipalityClass {
    /// 政令指定都市 (municipality part 100-199 outside Tokyo).
    DesignatedCity,
    /// 東京都の特別区 (131xx).
    SpecialWard,
    /// Other cities (2xx).
    City,
    /// Towns and villages (3xx and up).
    TownOrVillage,
}

/// A municipality from the shipped reference list.
#[derive(Debug, Clone)]
pub struct Municipality {
    pub code: MunicipalityCode,
    pub prefecture: PrefectureCode,
    pub prefecture_name: String,
    pub name: String,
    pub name_kana: String,
    pub class: MunicipalityClass,
}

impl Municipality {
    /// The three-digit municipality part of the code (positions 3-5).
    fn number(&self) -> u32 {
        self.code.as_str()[2..5].parse().unwrap_or(0)
    }
}

/// The reference list: 47 prefectures and 1,741 municipalities.
#[derive(Debug, Clone)]
pub struct Reference {
    pub prefectures: Vec<Prefecture>,
    pub municipalities: Vec<Municipality>,
}

impl Reference {
    /// Parses `migrations::MUNICIPALITIES_CSV` (a prefecture's row has an empty `city`).
    pub fn load() -> Result<Self> {
        let mut reader = csv::Reader::from_reader(migrations::MUNICIPALITIES_CSV.as_bytes());
        let mut prefectures = Vec::new();
        let mut municipalities = Vec::new();
        let mut names: HashMap<PrefectureCode, String> = HashMap::new();
        for record in reader.records() {
            let r = record.context("reading the shipped municipality list")?;
            let (code, pref, city, city_kana) = (&r[0], &r[1], &r[2], &r[4]);
            let code: MunicipalityCode = code.parse().with_context(|| format!("municipality code {code}"))?;
            if city.is_empty() {
                names.insert(code.prefecture(), pref.to_owned());
                prefectures.push(Prefecture {
                    code: code.prefecture(),
                    name: pref.to_owned(),
                });
                continue;
            }
            let part: u32 = code.as_str()[2..5].parse()?;
            let class = match part {
                100..=199 if code.prefecture().number() == 13 => MunicipalityClass::SpecialWard,
                100..=199 => MunicipalityClass::DesignatedCity,
                200..=299 => MunicipalityClass::City,
                _ => MunicipalityClass::TownOrVillage,
            };
            municipalities.push(Municipality {
                code,
                prefecture: code.prefecture(),
                prefecture_name: pref.to_owned(),
                name: city.to_owned(),
                name_kana: city_kana.to_owned(),
                class,
            });
        }
        ensure!(
            prefectures.len() == 47,
            "expected 47 prefectures, found {}",
            prefectures.len()
        );
        ensure!(!municipalities.is_empty(), "no municipalities in the shipped list");
        Ok(Reference {
            prefectures,
            municipalities,
        })
    }

    /// A deterministic heavy-tailed size weight per municipality (no population data ships
    /// with the system): a class weight times a seeded log-normal factor.
    pub fn weights(&self, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed ^ STREAM_WEIGHTS);
        self.municipalities
            .iter()
            .map(|m| {
                let (base, sigma) = match m.class {
                    MunicipalityClass::DesignatedCity => (60.0, 0.4),
                    MunicipalityClass::SpecialWard => (25.0, 0.4),
                    MunicipalityClass::City => (3.0, 0.8),
                    MunicipalityClass::TownOrVillage => (0.5, 0.7),
                };
                base * (sigma * standard_normal(&mut rng)).exp()
            })
            .collect()
    }
}

/// A standard normal deviate (Box–Muller), so no extra crate is needed.
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Splits `total` into integer shares proportional to `weights` with at least `min` each
/// (largest-remainder method, ties by index: deterministic and exact).
pub fn apportion(total: usize, weights: &[f64], min: usize) -> Vec<usize> {
    let floor_total = min * weights.len();
    let rest = total.saturating_sub(floor_total);
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| rest as f64 * w / sum).collect();
    let mut shares: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = rest - shares.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares.iter().map(|s| s + min).collect()
}

/// The kind of a generated site (the importer's `kind` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Clinic,
    Hospital,
    Pharmacy,
    CareFacility,
    MassVenue,
    WorkplaceVenue,
    HealthCentre,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Clinic => "CLINIC",
            Kind::Hospital => "HOSPITAL",
            Kind::Pharmacy => "PHARMACY",
            Kind::CareFacility => "CARE_FACILITY",
            Kind::MassVenue => "MASS_VENUE",
            Kind::WorkplaceVenue => "WORKPLACE_VENUE",
            Kind::HealthCentre => "HEALTH_CENTRE",
        }
    }

    fn is_venue(self) -> bool {
        matches!(self, Kind::MassVenue | Kind::WorkplaceVenue | Kind::HealthCentre)
    }

    /// The mix, in per-mille: 80% clinics, 8% hospitals, 3% pharmacies, 4% care, 5% venues.
    const MIX: [(Kind, u32); 7] = [
        (Kind::Clinic, 800),
        (Kind::Hospital, 80),
        (Kind::Pharmacy, 30),
        (Kind::CareFacility, 40),
        (Kind::MassVenue, 20),
        (Kind::WorkplaceVenue, 20),
        (Kind::HealthCentre, 10),
    ];

    fn draw(rng: &mut impl Rng) -> Kind {
        let mut x = rng.random_range(0..1000u32);
        for (kind, w) in Self::MIX {
            if x < w {
                return kind;
            }
            x -= w;
        }
        Kind::Clinic
    }

    /// Chance of being a base site (holding a freezer); weighted to give ~15% overall.
    fn base_probability(self) -> f64 {
        match self {
            Kind::Clinic => 0.10,
            Kind::Hospital => 0.60,
            Kind::Pharmacy => 0.0,
            Kind::CareFacility => 0.05,
            Kind::MassVenue => 0.70,
            Kind::WorkplaceVenue => 0.10,
            Kind::HealthCentre => 0.50,
        }
    }
}

/// One generated site: the import CSV's fields, plus what the tests need.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    pub code: SiteCode,
    pub kind: Kind,
    /// Index into [`Reference::municipalities`].
    pub municipality: usize,
    pub municipality_code: MunicipalityCode,
    pub name: String,
    pub name_kana: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub latitude: String,
    pub longitude: String,
    pub freezer_class: Option<&'static str>,
    pub base_site: Option<SiteCode>,
    pub receiving_days: &'static str,
    pub receiving_hours: &'static str,
    pub delivery_notes: &'static str,
    pub wholesaler_id: &'static str,
    pub products: &'static str,
}

impl SiteRow {
    pub fn is_base(&self) -> bool {
        self.freezer_class.is_some()
    }

    /// The value of one import column (names from `domain::sites::CSV_COLUMNS`).
    pub fn field(&self, column: &str) -> Option<&str> {
        Some(match column {
            "code" => self.code.as_str(),
            "name" => &self.name,
            "name_kana" => &self.name_kana,
            "kind" => self.kind.as_str(),
            "municipality_code" => self.municipality_code.as_str(),
            "postal_code" => &self.postal_code,
            "address" => &self.address,
            "phone" => &self.phone,
            "latitude" => &self.latitude,
            "longitude" => &self.longitude,
            "cold_chain_role" => {
                if self.is_base() {
                    "BASE"
                } else {
                    "SATELLITE"
                }
            }
            "freezer_class" => self.freezer_class.unwrap_or(""),
            "base_site_code" => self.base_site.as_ref().map_or("", SiteCode::as_str),
            "receiving_days" => self.receiving_days,
            "receiving_hours" => self.receiving_hours,
            "delivery_notes" => self.delivery_notes,
            "wholesaler_id" => self.wholesaler_id,
            "products" => self.products,
            "status" => "ACTIVE",
            _ => return None,
        })
    }
}

/// The first two digits of postal codes per prefecture (01..=47), roughly the real ranges.
const POSTAL_PREFIX: [&str; 47] = [
    "06", "03", "02", "98", "01", "99", "96", "31", "32", "37", "33", "26", "10", "22", "95", "93", "92", "91", "40",
    "38", "50", "42", "46", "51", "52", "60", "53", "65", "63", "64", "68", "69", "70", "73", "75", "77", "76", "79",
    "78", "81", "84", "85", "86", "87", "88", "89", "90",
];

/// Approximate prefectural-office coordinates (latitude, longitude) per prefecture.
const PREFECTURE_CENTRE: [(f64, f64); 47] = [
    (43.06, 141.35),
    (40.82, 140.74),
    (39.70, 141.15),
    (38.27, 140.87),
    (39.72, 140.10),
    (38.24, 140.36),
    (37.75, 140.47),
    (36.34, 140.45),
    (36.57, 139.88),
    (36.39, 139.06),
    (35.86, 139.65),
    (35.61, 140.12),
    (35.69, 139.69),
    (35.45, 139.64),
    (37.90, 139.02),
    (36.70, 137.21),
    (36.59, 136.63),
    (36.07, 136.22),
    (35.66, 138.57),
    (36.65, 138.18),
    (35.39, 136.72),
    (34.98, 138.38),
    (35.18, 136.91),
    (34.73, 136.51),
    (35.00, 135.87),
    (35.02, 135.76),
    (34.69, 135.52),
    (34.69, 135.18),
    (34.69, 135.83),
    (34.23, 135.17),
    (35.50, 134.24),
    (35.47, 133.05),
    (34.66, 133.93),
    (34.40, 132.46),
    (34.19, 131.47),
    (34.07, 134.56),
    (34.34, 134.04),
    (33.84, 132.77),
    (33.56, 133.53),
    (33.61, 130.42),
    (33.25, 130.30),
    (32.74, 129.87),
    (32.79, 130.74),
    (33.24, 131.61),
    (31.91, 131.42),
    (31.56, 130.56),
    (26.21, 127.68),
];

const WHOLESALERS: &[&str] = &["suzuken", "medipal", "alfresa", "toho"];
const WEEKDAYS_ONLY: &str = "MON,TUE,WED,THU,FRI";
const WITH_SATURDAY: &str = "MON,TUE,WED,THU,FRI,SAT";
const HOURS: &[&str] = &[
    "09:00-17:00",
    "09:00-17:00",
    "09:00-17:00",
    "10:00-16:00",
    "09:00-12:00",
];

/// Keeps generated insurance and care codes unique: a counter per (prefecture, class,
/// 郡市区番号). Numbers only ever grow, so a code is never drawn twice.
#[derive(Default)]
struct CodeBook {
    next: HashMap<(u8, char, u8), u32>,
    assigned: HashMap<u8, u32>,
}

impl CodeBook {
    /// A medical (class 0-6 but 2) or care (7-9, letters) code in `district`, moving on to
    /// the next district when one runs out of four-digit numbers.
    fn medical_or_care(
        &mut self,
        rng: &mut impl Rng,
        pref: PrefectureCode,
        class: char,
        district: u8,
    ) -> Result<SiteCode> {
        let mut district = district;
        for _ in 0..100 {
            let slot = self.next.entry((pref.number(), class, district)).or_insert(0);
            let number = *slot + rng.random_range(1..=3);
            if number <= 9999 {
                *slot = number;
                let nine = format!("{}{class}{district:02}{number:04}", pref.as_str());
                return SiteCode::with_check_digit(&nine).with_context(|| format!("building code {nine}"));
            }
            district = (district + 1) % 100;
        }
        bail!("prefecture {pref} ran out of class {class} codes")
    }

    /// The next assigned (類似) code of a prefecture: serials count 1, 2, 3 … per prefecture.
    fn assigned(&mut self, pref: PrefectureCode) -> Result<SiteCode> {
        let serial = self.assigned.entry(pref.number()).or_insert(0);
        *serial += 1;
        SiteCode::assigned(pref, *serial).map_err(|e| anyhow::anyhow!("assigned code for {pref}: {e}"))
    }
}

/// Generates `total` sites over the reference municipalities, deterministically for `seed`.
pub fn generate_sites(reference: &Reference, total: usize, seed: u64) -> Result<Vec<SiteRow>> {
    let n_muni = reference.municipalities.len();
    let min_total = MIN_SITES_PER_MUNICIPALITY * n_muni;
    ensure!(
        total >= min_total,
        "--sites {total} is too few: every one of the {n_muni} municipalities gets at least \
         {MIN_SITES_PER_MUNICIPALITY} sites, so at least {min_total}"
    );
    let counts = apportion(total, &reference.weights(seed), MIN_SITES_PER_MUNICIPALITY);
    let mut rng = StdRng::seed_from_u64(seed ^ STREAM_SITES);
    let mut book = CodeBook::default();
    let mut rows = Vec::with_capacity(total);
    // Position of each municipality within its prefecture: its default 郡市区番号.
    let mut within_pref: HashMap<u8, u8> = HashMap::new();

    for (mi, (m, &count)) in reference.municipalities.iter().zip(&counts).enumerate() {
        let pref = m.prefecture;
        let ordinal = within_pref.entry(pref.number()).or_insert(0);
        *ordinal += 1;
        let district = *ordinal % 100;
        let p = usize::from(pref.number() - 1);
        let (lat0, lon0) = PREFECTURE_CENTRE[p];
        // The municipality's own centre, near its prefecture's.
        let (mlat, mlon) = (
            lat0 + rng.random_range(-0.35..0.35),
            lon0 + rng.random_range(-0.35..0.35),
        );

        let first = rows.len();
        for _ in 0..count {
            let kind = Kind::draw(&mut rng);
            let code = match kind {
                Kind::Clinic | Kind::Hospital => book.medical_or_care(&mut rng, pref, '1', district)?,
                Kind::Pharmacy => book.medical_or_care(&mut rng, pref, '4', district)?,
                Kind::CareFacility => {
                    let class = *['7', '7', '8', '9', 'A'].choose(&mut rng).unwrap_or(&'7');
                    book.medical_or_care(&mut rng, pref, class, district)?
                }
                Kind::MassVenue | Kind::WorkplaceVenue | Kind::HealthCentre => book.assigned(pref)?,
            };
            let (name, name_kana) = site_name(&mut rng, kind, m);
            let freezer = rng
                .random_bool(kind.base_probability())
                .then(|| freezer_class(&mut rng));
            let lat = (mlat + rng.random_range(-0.05..0.05)).clamp(20.0, 46.0);
            let lon = (mlon + rng.random_range(-0.05..0.05)).clamp(122.0, 154.0);
            rows.push(SiteRow {
                code,
                kind,
                municipality: mi,
                municipality_code: m.code,
                name,
                name_kana,
                postal_code: format!("{}{:05}", POSTAL_PREFIX[p], rng.random_range(0..100_000u32)),
                address: format!(
                    "{}{}{}{}-{}-{}",
                    m.prefecture_name,
                    m.name,
                    words::TOWNS.choose(&mut rng).unwrap_or(&"本町"),
                    rng.random_range(1..=9u32),
                    rng.random_range(1..=30u32),
                    rng.random_range(1..=20u32)
                ),
                phone: phone(&mut rng, pref),
                latitude: format!("{lat:.6}"),
                longitude: format!("{lon:.6}"),
                freezer_class: freezer,
                base_site: None,
                receiving_days: if rng.random_bool(0.25) {
                    WITH_SATURDAY
                } else {
                    WEEKDAYS_ONLY
                },
                receiving_hours: HOURS.choose(&mut rng).unwrap_or(&"09:00-17:00"),
                delivery_notes: if rng.random_bool(0.1) {
                    words::NOTES.choose(&mut rng).unwrap_or(&"")
                } else {
                    ""
                },
                wholesaler_id: if rng.random_bool(0.1) {
                    ""
                } else {
                    WHOLESALERS.choose(&mut rng).unwrap_or(&"")
                },
                products: if rng.random_bool(0.6) {
                    "comirnaty"
                } else {
                    "comirnaty,spikevax"
                },
            });
        }

        // At least one base site per municipality: prefer the first that is not a pharmacy.
        let sites = &mut rows[first..];
        if !sites.iter().any(SiteRow::is_base) {
            let pick = sites.iter().position(|s| s.kind != Kind::Pharmacy).unwrap_or(0);
            sites[pick].freezer_class = Some(freezer_class(&mut rng));
        }
        let bases: Vec<SiteCode> = sites.iter().filter(|s| s.is_base()).map(|s| s.code).collect();
        for s in sites.iter_mut().filter(|s| !s.is_base()) {
            s.base_site = bases.choose(&mut rng).copied();
        }
    }
    Ok(rows)
}

fn freezer_class(rng: &mut impl Rng) -> &'static str {
    if rng.random_bool(0.6) { "ULTRA_COLD" } else { "FROZEN" }
}

/// A phone number of 10 digits: 03/06 for Tokyo/Osaka, otherwise a 3-digit area code.
fn phone(rng: &mut impl Rng, pref: PrefectureCode) -> String {
    match pref.number() {
        13 | 27 => format!(
            "0{}-{:04}-{:04}",
            if pref.number() == 13 { 3 } else { 6 },
            rng.random_range(1000..10_000u32),
            rng.random_range(0..10_000u32)
        ),
        _ => format!(
            "0{:02}-{:03}-{:04}",
            rng.random_range(11..100u32),
            rng.random_range(200..1000u32),
            rng.random_range(0..10_000u32)
        ),
    }
}

fn pick(rng: &mut impl Rng, list: &[Word]) -> Word {
    *list.choose(rng).unwrap_or(&("", ""))
}

/// A name and its half-width kana for a site of `kind` in municipality `m`.
fn site_name(rng: &mut impl Rng, kind: Kind, m: &Municipality) -> (String, String) {
    match kind {
        Kind::Clinic => {
            let (a, ak) = if rng.random_bool(0.5) {
                pick(rng, words::PREFIXES)
            } else {
                pick(rng, words::SURNAMES)
            };
            let (b, bk) = pick(rng, words::SPECIALTIES);
            let (c, ck) = pick(rng, words::CLINIC_SUFFIXES);
            (format!("{a}{b}{c}"), format!("{ak}{bk}{ck}"))
        }
        Kind::Hospital => {
            if rng.random_bool(0.15) {
                (format!("{}立病院", m.name), format!("{}ﾘﾂﾋﾞｮｳｲﾝ", m.name_kana))
            } else {
                let (a, ak) = if rng.random_bool(0.5) {
                    pick(rng, words::PREFIXES)
                } else {
                    pick(rng, words::SURNAMES)
                };
                let (b, bk) = pick(rng, words::HOSPITAL_SUFFIXES);
                (format!("{a}{b}"), format!("{ak}{bk}"))
            }
        }
        Kind::Pharmacy => {
            let (a, ak) = pick(rng, words::PREFIXES);
            let (b, bk) = pick(rng, words::PREFIXES);
            (format!("{a}薬局 {b}店"), format!("{ak}ﾔｯｷｮｸ {bk}ﾃﾝ"))
        }
        Kind::CareFacility => {
            let ((pre, prek), (post, postk)) = *words::CARE_PATTERNS.choose(rng).unwrap_or(&words::CARE_PATTERNS[0]);
            let (a, ak) = pick(rng, words::PREFIXES);
            (format!("{pre}{a}{post}"), format!("{prek}{ak}{postk}"))
        }
        Kind::MassVenue => {
            let (a, ak) = pick(rng, words::VENUE_PLACES);
            (
                format!("{}{a}集団接種会場", m.name),
                format!("{}{ak}ｼｭｳﾀﾞﾝｾｯｼｭｶｲｼﾞｮｳ", m.name_kana),
            )
        }
        Kind::WorkplaceVenue => {
            let (a, ak) = pick(rng, words::EMPLOYERS);
            (format!("{a}職域接種会場"), format!("{ak}ｼｮｸｲｷｾｯｼｭｶｲｼﾞｮｳ"))
        }
        Kind::HealthCentre => {
            if rng.random_bool(0.5) {
                (format!("{}保健所", m.name), format!("{}ﾎｹﾝｼﾞｮ", m.name_kana))
            } else {
                (format!("{}保健センター", m.name), format!("{}ﾎｹﾝｾﾝﾀｰ", m.name_kana))
            }
        }
    }
}

/// Writes `rows` as `sites.csv` in the import layout: header `domain::sites::CSV_COLUMNS`,
/// then one line per site.
pub fn write_sites_csv(path: &Path, rows: &[SiteRow]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(file));
    w.write_record(CSV_COLUMNS)?;
    for row in rows {
        let mut fields = Vec::with_capacity(CSV_COLUMNS.len());
        for column in CSV_COLUMNS {
            fields.push(
                row.field(column)
                    .with_context(|| format!("the generator has no value for column {column}"))?,
            );
        }
        w.write_record(&fields)?;
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("flushing {}: {e}", path.display()))?
        .flush()?;
    Ok(())
}

/// Columns of `persons.csv` (for the VRS scenarios of later issues):
///
/// | column | content |
/// |---|---|
/// | `municipality_code` | 6-digit JIS X 0402 code of the municipality of residence |
/// | `coupon_number` | 10-digit 券番号, leading zeros kept, unique within the municipality |
/// | `name` | "姓　名" (full-width space) |
/// | `name_kana` | half-width katakana, "ｾｲ ﾒｲ" |
/// | `birth_date` | `YYYY-MM-DD`; ages 0-99 weighted like Japan's pyramid (~29% 65+) |
/// | `sex` | `M` or `F` (as in the VRS open data) |
/// | `address` | prefecture + municipality + town + block numbers |
pub const PERSON_COLUMNS: [&str; 7] = [
    "municipality_code",
    "coupon_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address",
];

/// Streams `total` persons to `path`, spread over municipalities by the same size weights as
/// the sites; memory use does not grow with `total`.
pub fn write_persons_csv(path: &Path, reference: &Reference, total: u64, seed: u64) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    w.write_record(PERSON_COLUMNS)?;
    let counts = apportion(usize::try_from(total)?, &reference.weights(seed), 0);
    let mut rng = StdRng::seed_from_u64(seed ^ STREAM_PERSONS);
    let (y, mo, d) = REFERENCE_DATE;
    let reference_date = NaiveDate::from_ymd_opt(y, mo, d).context("reference date")?;
    let mut coupon = String::with_capacity(10);
    let mut birth = String::with_capacity(10);
    for (m, &count) in reference.municipalities.iter().zip(&counts) {
        // Ascending numbers from a random start: unique within the municipality, < 10^10.
        let mut number: u64 = rng.random_range(0..1_000_000_000);
        for _ in 0..count {
            number += rng.random_range(1..=9u64);
            coupon.clear();
            write!(coupon, "{number:010}")?;
            let female = rng.random_bool(0.51);
            let (sur, surk) = pick(&mut rng, words::SURNAMES);
            let (given, givenk) = pick(&mut rng, if female { words::GIVEN_FEMALE } else { words::GIVEN_MALE });
            let age_years: u64 = match rng.random_range(0..100u32) {
                0..12 => rng.random_range(0..15),
                12..71 => rng.random_range(15..65),
                _ => rng.random_range(65..100),
            };
            let days = age_years * 365 + rng.random_range(0..365);
            let born = reference_date.checked_sub_days(Days::new(days)).context("birth date")?;
            birth.clear();
            write!(birth, "{}", born.format("%Y-%m-%d"))?;
            let address = format!(
                "{}{}{}{}-{}-{}",
                m.prefecture_name,
                m.name,
                words::TOWNS.choose(&mut rng).unwrap_or(&"本町"),
                rng.random_range(1..=9u32),
                rng.random_range(1..=30u32),
                rng.random_range(1..=20u32)
            );
            w.write_record([
                m.code.as_str(),
                &coupon,
                &format!("{sur}\u{3000}{given}"),
                &format!("{surk} {givenk}"),
                &birth,
                if female { "F" } else { "M" },
                &address,
            ])?;
        }
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("flushing {}: {e}", path.display()))?
        .flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use domain::codes::SiteCodeKind;
    use domain::site::{SiteDetails, SiteDraft, SiteStatus};

    use super::*;

    /// Small enough to be quick in a debug build, big enough to exercise every kind.
    const SITES: usize = 8_000;

    fn sample(seed: u64) -> (Reference, Vec<SiteRow>) {
        let reference = Reference::load().unwrap();
        let rows = generate_sites(&reference, SITES, seed).unwrap();
        (reference, rows)
    }

    #[test]
    fn reference_list_is_complete() {
        let r = Reference::load().unwrap();
        assert_eq!(r.prefectures.len(), 47);
        assert_eq!(r.municipalities.len(), 1741);
        let count = |c| r.municipalities.iter().filter(|m| m.class == c).count();
        assert_eq!(count(MunicipalityClass::SpecialWard), 23);
        assert_eq!(count(MunicipalityClass::DesignatedCity), 20);
    }

    #[test]
    fn apportion_is_exact_and_respects_the_minimum() {
        let shares = apportion(100, &[1.0, 2.0, 7.0], 3);
        assert_eq!(shares.iter().sum::<usize>(), 100);
        assert!(shares.iter().all(|&s| s >= 3));
        assert!(shares[2] > shares[1] && shares[1] > shares[0]);
        assert_eq!(apportion(9, &[1.0, 2.0, 7.0], 3), vec![3, 3, 3]);
    }

    #[test]
    fn codes_parse_and_are_unique() {
        let (_, rows) = sample(42);
        assert_eq!(rows.len(), SITES);
        let mut seen = HashSet::new();
        for r in &rows {
            let parsed = SiteCode::parse(r.code.as_str()).unwrap();
            assert_eq!(parsed, r.code);
            assert!(seen.insert(r.code), "duplicate code {}", r.code);
            assert_eq!(r.code.prefecture(), r.municipality_code.prefecture());
            let class = r.code.as_str().as_bytes()[2];
            match r.kind {
                Kind::Clinic | Kind::Hospital => assert_eq!(class, b'1'),
                Kind::Pharmacy => assert_eq!(class, b'4'),
                Kind::CareFacility => assert_eq!(r.code.kind(), SiteCodeKind::CareProvider),
                _ => assert_eq!(r.code.kind(), SiteCodeKind::Assigned),
            }
        }
    }

    #[test]
    fn assigned_serials_count_per_prefecture() {
        let (_, rows) = sample(7);
        let mut serials: HashMap<PrefectureCode, Vec<u32>> = HashMap::new();
        for r in rows.iter().filter(|r| r.kind.is_venue()) {
            serials
                .entry(r.code.prefecture())
                .or_default()
                .push(r.code.assigned_serial().unwrap());
        }
        for (pref, s) in serials {
            assert_eq!(s, (1..=s.len() as u32).collect::<Vec<_>>(), "prefecture {pref}");
        }
    }

    #[test]
    fn every_municipality_has_three_sites_and_a_base() {
        let (reference, rows) = sample(42);
        let mut sites = vec![0usize; reference.municipalities.len()];
        let mut bases = vec![0usize; reference.municipalities.len()];
        for r in &rows {
            sites[r.municipality] += 1;
            bases[r.municipality] += usize::from(r.is_base());
        }
        for (i, m) in reference.municipalities.iter().enumerate() {
            assert!(
                sites[i] >= MIN_SITES_PER_MUNICIPALITY,
                "{} has {} sites",
                m.name,
                sites[i]
            );
            assert!(bases[i] >= 1, "{} has no base site", m.name);
        }
        // Big places get more: a designated city outweighs the median town.
        let city = reference
            .municipalities
            .iter()
            .position(|m| m.class == MunicipalityClass::DesignatedCity)
            .unwrap();
        let mut sorted = sites.clone();
        sorted.sort_unstable();
        assert!(sites[city] > 5 * sorted[sorted.len() / 2]);
    }

    #[test]
    fn satellites_reference_a_base_in_their_municipality() {
        let (_, rows) = sample(42);
        let by_code: HashMap<SiteCode, &SiteRow> = rows.iter().map(|r| (r.code, r)).collect();
        for r in &rows {
            match (&r.freezer_class, &r.base_site) {
                (Some(_), None) => {}
                (None, Some(base)) => {
                    let b = by_code[base];
                    assert!(b.is_base(), "{} names non-base {}", r.code, base);
                    assert_eq!(b.municipality, r.municipality);
                    assert_ne!(b.code, r.code);
                }
                other => panic!("{} has cold chain {other:?}", r.code),
            }
        }
    }

    #[test]
    fn the_mix_is_close_to_the_target() {
        let (reference, rows) = sample(42);
        let share =
            |pred: &dyn Fn(&SiteRow) -> bool| rows.iter().filter(|r| pred(r)).count() as f64 / rows.len() as f64;
        assert!((share(&|r| r.kind == Kind::Clinic) - 0.80).abs() < 0.03);
        assert!((share(&|r| r.kind == Kind::Hospital) - 0.08).abs() < 0.02);
        assert!((share(&|r| r.kind.is_venue()) - 0.05).abs() < 0.02);
        // ~15% drawn, plus at most one forced base per municipality that drew none: in a sample
        // of 8,000 sites over 1,741 municipalities the forced ones weigh far more than in the
        // national 70,000.
        let forced = reference.municipalities.len() as f64 / rows.len() as f64;
        let bases = share(&|r| r.is_base());
        assert!(bases > 0.15 - 0.04 && bases < 0.15 + forced + 0.04, "{bases}");
    }

    /// Every row passes the importer's own per-row rules (`SiteDetails::validate`,
    /// `check_code_fits`, status) — the same calls `domain::sites::import` makes.
    #[test]
    fn every_row_passes_the_import_rules() {
        let (reference, rows) = sample(3);
        let known: HashSet<MunicipalityCode> = reference.municipalities.iter().map(|m| m.code).collect();
        for r in &rows {
            let f = |c: &str| r.field(c).unwrap().to_owned();
            let opt = |c: &str| Some(f(c)).filter(|s| !s.is_empty());
            let draft = SiteDraft {
                name: f("name"),
                name_kana: f("name_kana"),
                kind: f("kind"),
                municipality: f("municipality_code"),
                postal_code: f("postal_code"),
                address: f("address"),
                phone: f("phone"),
                latitude: Some(f("latitude").parse().unwrap()),
                longitude: Some(f("longitude").parse().unwrap()),
                cold_chain_role: f("cold_chain_role"),
                freezer_class: opt("freezer_class"),
                base_site: opt("base_site_code"),
                receiving_days: f("receiving_days"),
                receiving_hours: f("receiving_hours"),
                delivery_notes: f("delivery_notes"),
                wholesaler: opt("wholesaler_id"),
                products: f("products"),
            };
            let details = SiteDetails::validate(&draft, "").unwrap_or_else(|e| panic!("{}: {e}", r.code));
            assert!(known.contains(&details.municipality));
            domain::sites::check_code_fits(&r.code, &details, "code").unwrap_or_else(|e| panic!("{}: {e}", r.code));
            assert_eq!(f("status").parse::<SiteStatus>(), Ok(SiteStatus::Active));
        }
    }

    #[test]
    fn csv_has_the_import_header_and_round_trips() {
        let (_, rows) = sample(42);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sites.csv");
        write_sites_csv(&path, &rows[..50]).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_COLUMNS.to_vec()
        );
        let records: Vec<_> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 50);
        for (rec, row) in records.iter().zip(&rows) {
            for (i, c) in CSV_COLUMNS.iter().enumerate() {
                assert_eq!(&rec[i], row.field(c).unwrap());
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (_, a) = sample(42);
        let (_, b) = sample(42);
        let (_, c) = sample(43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn too_few_sites_is_refused() {
        let reference = Reference::load().unwrap();
        assert!(generate_sites(&reference, 100, 1).is_err());
    }

    #[test]
    fn persons_are_plausible_and_deterministic() {
        let reference = Reference::load().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_persons_csv(&a, &reference, 5_000, 9).unwrap();
        write_persons_csv(&b, &reference, 5_000, 9).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut reader = csv::Reader::from_path(&a).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            PERSON_COLUMNS.to_vec()
        );
        let mut seen = HashSet::new();
        let mut n = 0;
        for rec in reader.records() {
            let rec = rec.unwrap();
            MunicipalityCode::parse(&rec[0]).unwrap();
            assert!(rec[1].len() == 10 && rec[1].bytes().all(|b| b.is_ascii_digit()));
            assert!(seen.insert((rec[0].to_owned(), rec[1].to_owned())), "duplicate coupon");
            NaiveDate::parse_from_str(&rec[4], "%Y-%m-%d").unwrap();
            assert!(&rec[5] == "M" || &rec[5] == "F");
            n += 1;
        }
        assert_eq!(n, 5_000);
    }
}
