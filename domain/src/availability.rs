//! Reservation availability (予約受付状況) and bookable venue slots: the vocabulary and the pure
//! rules. No I/O here; `reservations` stores and `public` reads.
//!
//! - A site states its own status (○ 予約可能, △ 残りわずか, × 予約不可, ◎ 予約不要) with how to book.
//! - A municipality keeps bookable slots (date, time, capacity, booked) for its non-medical
//!   venues; such a venue's status is *derived* from the remaining capacity of its upcoming
//!   slots by [`derive`], never typed in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::site::{bounded_text, parse_phone};

/// 予約受付状況: what a person looking for a vaccination sees for a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Availability {
    /// ○ 予約可能: bookings are open.
    #[serde(rename = "OPEN")]
    Open,
    /// △ 残りわずか: few places left.
    #[serde(rename = "FEW")]
    Few,
    /// × 予約不可: no places (full, or not taking bookings now).
    #[serde(rename = "FULL")]
    Full,
    /// ◎ 予約不要: walk in, no booking needed.
    #[serde(rename = "NO_BOOKING_NEEDED")]
    NoBookingNeeded,
}

/// Shown for a site that has not stated its availability yet.
pub const UNKNOWN_SYMBOL: &str = "－";
/// The words for [`UNKNOWN_SYMBOL`].
pub const UNKNOWN_LABEL: &str = "情報なし";

impl Availability {
    pub const ALL: [Availability; 4] = [
        Availability::Open,
        Availability::Few,
        Availability::Full,
        Availability::NoBookingNeeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Open => "OPEN",
            Availability::Few => "FEW",
            Availability::Full => "FULL",
            Availability::NoBookingNeeded => "NO_BOOKING_NEEDED",
        }
    }

    /// The symbol of the public site. ○ △ × are the usual Japanese triad; 予約不要 has no
    /// official symbol, and ◎ ("even better than ○") is used because a walk-in site is the
    /// most available of all — never "－", which reads as "no information".
    pub fn symbol(self) -> &'static str {
        match self {
            Availability::Open => "○",
            Availability::Few => "△",
            Availability::Full => "×",
            Availability::NoBookingNeeded => "◎",
        }
    }

    /// The symbol's meaning in words, shown next to it (a symbol alone is not accessible).
    pub fn label(self) -> &'static str {
        match self {
            Availability::Open => "予約可能",
            Availability::Few => "残りわずか",
            Availability::Full => "予約不可",
            Availability::NoBookingNeeded => "予約不要",
        }
    }

    /// A sentence for the legend.
    pub fn description(self) -> &'static str {
        match self {
            Availability::Open => "予約を受け付けています。",
            Availability::Few => "予約を受け付けていますが、空きはわずかです。",
            Availability::Full => "現在、予約を受け付けていません（満員を含む）。",
            Availability::NoBookingNeeded => "予約なしで接種を受けられます。",
        }
    }

    /// Whether a person can get a vaccination here now ("available only" keeps these).
    pub fn is_available(self) -> bool {
        !matches!(self, Availability::Full)
    }

    /// Order from most to least available, for comparisons in rules and tests.
    pub fn rank(self) -> u8 {
        match self {
            Availability::NoBookingNeeded => 3,
            Availability::Open => 2,
            Availability::Few => 1,
            Availability::Full => 0,
        }
    }
}

impl FromStr for Availability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Availability::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| "unknown value; expected one of OPEN, FEW, FULL, NO_BOOKING_NEEDED".to_owned())
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a site's status comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AvailabilitySource {
    /// Stated by the site (or, for a venue without slots, by its municipality).
    #[serde(rename = "MANUAL")]
    Manual,
    /// Derived from the venue's slots; cannot be set by hand while the venue has slots.
    #[serde(rename = "SLOTS")]
    Slots,
}

impl AvailabilitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilitySource::Manual => "MANUAL",
            AvailabilitySource::Slots => "SLOTS",
        }
    }
}

impl FromStr for AvailabilitySource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "MANUAL" => Ok(AvailabilitySource::Manual),
            "SLOTS" => Ok(AvailabilitySource::Slots),
            _ => Err("unknown value; expected MANUAL or SLOTS".to_owned()),
        }
    }
}

/// How to book: all optional, each validated. Shown publicly, so it holds the site's booking
/// line and page, never a person's details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingInfo {
    /// A Japanese phone number (see [`parse_phone`]).
    pub phone: Option<String>,
    /// An `https://` or `http://` address, at most [`MAX_URL_CHARS`] characters.
    pub url: Option<String>,
    /// Free text (parking, what to bring); at most 500 characters.
    pub notes: Option<String>,
}

pub const MAX_URL_CHARS: usize = 300;

/// A change to one optional field: leave it, clear it, or set it (raw, to be validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch {
    #[default]
    Keep,
    Clear,
    Set(String),
}

/// Raw changes to a site's availability as they arrive from a caller.
#[derive(Debug, Clone, Default)]
pub struct AvailabilityDraft {
    /// `None` keeps the current status.
    pub status: Option<Availability>,
    pub booking_phone: Patch,
    pub booking_url: Patch,
    pub booking_notes: Patch,
}

/// Checks a booking address: http(s), no spaces or control characters, bounded length.
pub fn parse_booking_url(s: &str, field: &str) -> Result<String, DomainError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| DomainError::invalid(field, "must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(DomainError::invalid(field, "must name a host after the scheme"));
    }
    if t.chars().count() > MAX_URL_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    if t.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>')
    {
        return Err(DomainError::invalid(
            field,
            "must not contain spaces, quotes, angle brackets or control characters",
        ));
    }
    Ok(t.to_owned())
}

impl BookingInfo {
    /// Applies a draft's patches to `self`, validating every field that is set. `prefix` is the
    /// caller's field path (e.g. `input`).
    pub fn apply(&self, d: &AvailabilityDraft, prefix: &str) -> Result<BookingInfo, DomainError> {
        let f = |name: &str| format!("{prefix}.{name}");
        let patch = |p: &Patch,
                     current: &Option<String>,
                     check: &dyn Fn(&str) -> Result<String, DomainError>|
         -> Result<Option<String>, DomainError> {
            Ok(match p {
                Patch::Keep => current.clone(),
                Patch::Clear => None,
                Patch::Set(s) if s.trim().is_empty() => None,
                Patch::Set(s) => Some(check(s)?),
            })
        };
        Ok(BookingInfo {
            phone: patch(&d.booking_phone, &self.phone, &|s| parse_phone(s, &f("bookingPhone")))?,
            url: patch(&d.booking_url, &self.url, &|s| parse_booking_url(s, &f("bookingUrl")))?,
            notes: patch(&d.booking_notes, &self.notes, &|s| {
                bounded_text(s, 0, 500, &f("bookingNotes"))
            })?,
        })
    }
}

/// A site's stated or derived availability, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteAvailability {
    pub status: Availability,
    pub source: AvailabilitySource,
    pub booking: BookingInfo,
    /// For a venue with slots: places left in its upcoming slots.
    pub remaining: Option<u32>,
    /// For a venue with slots: places in its upcoming slots.
    pub capacity: Option<u32>,
    pub updated_at: DateTime<Utc>,
    /// `ROLE:scope` of whoever changed it last (not shown publicly).
    pub updated_by: String,
}

/// Japan has one time zone and no daylight saving: UTC+9.
pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset")
}

/// Today's date in Japan: the day the public sees.
pub fn jst_today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&jst()).date_naive()
}

/// A time of day as minutes after midnight, written "HH:MM" (00:00–24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn parse(s: &str, field: &str) -> Result<TimeOfDay, DomainError> {
        const HINT: &str = "must be a time written HH:MM between 00:00 and 24:00";
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
            return Err(DomainError::invalid(field, HINT));
        }
        let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
        let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
        if m > 59 || h > 24 || (h == 24 && m > 0) {
            return Err(DomainError::invalid(field, HINT));
        }
        Ok(TimeOfDay(h * 60 + m))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// How far back and ahead slots may be dated: a municipality may still correct yesterday's
/// bookings, and plans at most a year ahead.
pub const SLOT_PAST_DAYS: i64 = 31;
pub const SLOT_FUTURE_DAYS: i64 = 366;
pub const MAX_SLOT_CAPACITY: u32 = 10_000;

/// Raw slot fields as they arrive from a caller.
#[derive(Debug, Clone)]
pub struct SlotDraft {
    pub date: NaiveDate,
    pub start_time: String,
    pub end_time: String,
    pub capacity: i64,
    pub booked: i64,
}

/// One bookable slot of a venue: valid by construction ([`VenueSlot::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueSlot {
    pub date: NaiveDate,
    #[serde(with = "time_text")]
    pub start: TimeOfDay,
    #[serde(with = "time_text")]
    pub end: TimeOfDay,
    pub capacity: u32,
    pub booked: u32,
}

mod time_text {
    use super::TimeOfDay;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TimeOfDay, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeOfDay, D::Error> {
        let s = String::deserialize(d)?;
        TimeOfDay::parse(&s, "time").map_err(serde::de::Error::custom)
    }
}

impl VenueSlot {
    /// Applies the slot rules; `today` is Japan's date, `prefix` the caller's field path.
    pub fn validate(d: &SlotDraft, today: NaiveDate, prefix: &str) -> Result<VenueSlot, DomainError> {
        let f = |name: &str| format!("{prefix}.{name}");
        if d.date < today - Duration::days(SLOT_PAST_DAYS) {
            return Err(DomainError::invalid(
                f("date"),
                format!("must be at most {SLOT_PAST_DAYS} days in the past"),
            ));
        }
        if d.date > today + Duration::days(SLOT_FUTURE_DAYS) {
            return Err(DomainError::invalid(
                f("date"),
                format!("must be at most {SLOT_FUTURE_DAYS} days ahead"),
            ));
        }
        let start = TimeOfDay::parse(d.start_time.trim(), &f("startTime"))?;
        let end = TimeOfDay::parse(d.end_time.trim(), &f("endTime"))?;
        if start >= end {
            return Err(DomainError::invalid(f("endTime"), "must be after startTime"));
        }
        let capacity = u32::try_from(d.capacity)
            .ok()
            .filter(|c| (1..=MAX_SLOT_CAPACITY).contains(c))
            .ok_or_else(|| DomainError::invalid(f("capacity"), format!("must be 1-{MAX_SLOT_CAPACITY}")))?;
        let booked = u32::try_from(d.booked)
            .ok()
            .filter(|b| *b <= capacity)
            .ok_or_else(|| DomainError::invalid(f("booked"), "must be between 0 and capacity"))?;
        Ok(VenueSlot {
            date: d.date,
            start,
            end,
            capacity,
            booked,
        })
    }

    pub fn remaining(&self) -> u32 {
        self.capacity - self.booked
    }

    /// A slot counts for the public until the end of its day (Japan time).
    pub fn is_upcoming(&self, today: NaiveDate) -> bool {
        self.date >= today
    }
}

/// △ when at most this many places remain …
pub const FEW_MAX_REMAINING: u32 = 10;
/// … or at most this share (percent) of the upcoming capacity.
pub const FEW_MAX_PERCENT: u32 = 20;

/// The derived status of a venue and the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derived {
    pub status: Availability,
    pub remaining: u32,
    pub capacity: u32,
}

/// A venue's status from its slots: only upcoming slots (today or later, Japan time) count.
/// × when nothing remains (or no slot is upcoming); △ when at most [`FEW_MAX_REMAINING`]
/// places or at most [`FEW_MAX_PERCENT`]% of the upcoming capacity remain; ○ otherwise.
pub fn derive(slots: &[VenueSlot], today: NaiveDate) -> Derived {
    let (remaining, capacity) = slots
        .iter()
        .filter(|s| s.is_upcoming(today))
        .fold((0u64, 0u64), |(r, c), s| {
            (r + u64::from(s.remaining()), c + u64::from(s.capacity))
        });
    let status = if remaining == 0 {
        Availability::Full
    } else if remaining <= u64::from(FEW_MAX_REMAINING) || remaining * 100 <= capacity * u64::from(FEW_MAX_PERCENT) {
        Availability::Few
    } else {
        Availability::Open
    };
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Derived {
        status,
        remaining: clamp(remaining),
        capacity: clamp(capacity),
    }
}

/// A postal-code prefix typed by a person: 1–7 digits, full-width digits and a hyphen after the
/// third digit accepted (〒 and spaces ignored). Searches match every code starting with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PostalPrefix(String);

impl PostalPrefix {
    pub fn parse_human(s: &str, field: &str) -> Result<PostalPrefix, DomainError> {
        let mut digits = String::new();
        let mut hyphen_at = None;
        for c in s.trim().trim_start_matches('〒').trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                '０'..='９' => digits.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
                '-' | '－' | 'ー' | '‐' if hyphen_at.is_none() => hyphen_at = Some(digits.len()),
                _ => {
                    return Err(DomainError::invalid(
                        field,
                        "must be the start of a postal code: 1-7 digits, e.g. 100 or 100-00",
                    ));
                }
            }
        }
        if digits.is_empty() || digits.len() > 7 || hyphen_at.is_some_and(|i| i != 3) {
            return Err(DomainError::invalid(
                field,
                "must be the start of a postal code: 1-7 digits, e.g. 100 or 100-00",
            ));
        }
        Ok(PostalPrefix(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The codes starting with this prefix are exactly those in `[lower, upper)` (`upper` is
    /// `None` for a prefix of nines): a range an ordinary index answers, whatever the collation.
    pub fn range(&self) -> (String, Option<String>) {
        let mut upper = self.0.clone().into_bytes();
        while let Some(last) = upper.pop() {
            if last != b'9' {
                upper.push(last + 1);
                return (self.0.clone(), Some(String::from_utf8(upper).expect("ASCII digits")));
            }
        }
        (self.0.clone(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn slot(date: &str, capacity: u32, booked: u32) -> VenueSlot {
        VenueSlot {
            date: day(date),
            start: TimeOfDay(9 * 60),
            end: TimeOfDay(10 * 60),
            capacity,
            booked,
        }
    }

    #[test]
    fn symbols_and_words() {
        let table = [
            (Availability::Open, "OPEN", "○", "予約可能", true),
            (Availability::Few, "FEW", "△", "残りわずか", true),
            (Availability::Full, "FULL", "×", "予約不可", false),
            (
                Availability::NoBookingNeeded,
                "NO_BOOKING_NEEDED",
                "◎",
                "予約不要",
                true,
            ),
        ];
        for (a, text, symbol, label, available) in table {
            assert_eq!(a.as_str(), text);
            assert_eq!(text.parse::<Availability>(), Ok(a));
            assert_eq!((a.symbol(), a.label(), a.is_available()), (symbol, label, available));
            assert_eq!(serde_json::to_string(&a).expect("json"), format!("\"{text}\""));
        }
        let symbols: std::collections::HashSet<_> = Availability::ALL.iter().map(|a| a.symbol()).collect();
        assert_eq!(symbols.len(), 4, "every status has its own symbol");
        assert!(!symbols.contains(UNKNOWN_SYMBOL));
        assert!("open".parse::<Availability>().is_err());
    }

    #[test]
    fn derivation_table() {
        let today = day("2026-11-27");
        let cases: &[(&[VenueSlot], Availability, u32, u32)] = &[
            (&[], Availability::Full, 0, 0),
            (&[slot("2026-11-27", 100, 100)], Availability::Full, 0, 100),
            (&[slot("2026-11-27", 100, 50)], Availability::Open, 50, 100),
            // 20% of 100 remain: few.
            (&[slot("2026-11-27", 100, 80)], Availability::Few, 20, 100),
            (&[slot("2026-11-27", 100, 79)], Availability::Open, 21, 100),
            // 10 remain: few even though that is 50%.
            (&[slot("2026-11-28", 20, 10)], Availability::Few, 10, 20),
            (&[slot("2026-11-28", 22, 11)], Availability::Open, 11, 22),
            // Yesterday's empty slot does not count.
            (
                &[slot("2026-11-26", 500, 0), slot("2026-11-27", 10, 10)],
                Availability::Full,
                0,
                10,
            ),
            // Several slots add up.
            (
                &[slot("2026-11-27", 30, 30), slot("2026-11-30", 30, 10)],
                Availability::Open,
                20,
                60,
            ),
        ];
        for (slots, status, remaining, capacity) in cases {
            let d = derive(slots, today);
            assert_eq!(
                (d.status, d.remaining, d.capacity),
                (*status, *remaining, *capacity),
                "{slots:?}"
            );
        }
    }

    fn slots_strategy() -> impl Strategy<Value = Vec<VenueSlot>> {
        prop::collection::vec((0i64..6, 1u32..200, 0u32..=100), 0..8).prop_map(|v| {
            v.into_iter()
                .map(|(d, cap, pct)| VenueSlot {
                    date: day("2026-11-25") + Duration::days(d),
                    start: TimeOfDay(540),
                    end: TimeOfDay(600),
                    capacity: cap,
                    booked: cap * pct / 100,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn full_exactly_when_nothing_remains(slots in slots_strategy()) {
            let d = derive(&slots, day("2026-11-27"));
            prop_assert_eq!(d.status == Availability::Full, d.remaining == 0);
            prop_assert!(d.remaining <= d.capacity);
            prop_assert!(d.status != Availability::NoBookingNeeded);
        }

        #[test]
        fn one_more_booking_never_makes_a_venue_more_available(slots in slots_strategy(), pick in 0usize..8) {
            let today = day("2026-11-27");
            let before = derive(&slots, today);
            let mut after = slots.clone();
            if let Some(s) = after.get_mut(pick % slots.len().max(1)).filter(|s| s.booked < s.capacity) {
                s.booked += 1;
            }
            prop_assert!(derive(&after, today).status.rank() <= before.status.rank());
        }

        #[test]
        fn past_slots_change_nothing(slots in slots_strategy(), cap in 1u32..1000) {
            let today = day("2026-11-27");
            let mut with_past = slots.clone();
            with_past.push(slot("2026-11-01", cap, 0));
            prop_assert_eq!(derive(&with_past, today), derive(&slots, today));
        }
    }

    #[test]
    fn slot_rules_name_the_field() {
        let today = day("2026-11-27");
        let ok = SlotDraft {
            date: today,
            start_time: "09:00".into(),
            end_time: "12:30".into(),
            capacity: 100,
            booked: 0,
        };
        let s = VenueSlot::validate(&ok, today, "input").expect("valid");
        assert_eq!(
            (s.start.to_string(), s.end.to_string(), s.remaining()),
            ("09:00".into(), "12:30".into(), 100)
        );
        type Edit = fn(&mut SlotDraft);
        let cases: &[(Edit, &str)] = &[
            (|d| d.start_time = "9:00".into(), "input.startTime"),
            (|d| d.end_time = "24:01".into(), "input.endTime"),
            (|d| d.end_time = "08:00".into(), "input.endTime"),
            (|d| d.capacity = 0, "input.capacity"),
            (|d| d.capacity = 10_001, "input.capacity"),
            (|d| d.booked = 101, "input.booked"),
            (|d| d.booked = -1, "input.booked"),
            (|d| d.date = day("2026-10-01"), "input.date"),
            (|d| d.date = day("2028-01-01"), "input.date"),
        ];
        for (edit, field) in cases {
            let mut d = ok.clone();
            edit(&mut d);
            match VenueSlot::validate(&d, today, "input") {
                Err(DomainError::Invalid { field: got, .. }) => assert_eq!(&got, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn booking_patches() {
        let current = BookingInfo {
            phone: Some("03-1111-2222".into()),
            url: None,
            notes: Some("駐車場あり".into()),
        };
        let d = AvailabilityDraft {
            status: None,
            booking_phone: Patch::Keep,
            booking_url: Patch::Set("https://example.jp/yoyaku".into()),
            booking_notes: Patch::Clear,
        };
        let got = current.apply(&d, "input").expect("valid");
        assert_eq!(got.phone.as_deref(), Some("03-1111-2222"));
        assert_eq!(got.url.as_deref(), Some("https://example.jp/yoyaku"));
        assert_eq!(got.notes, None);
        let blank = AvailabilityDraft {
            booking_phone: Patch::Set("  ".into()),
            ..Default::default()
        };
        assert_eq!(current.apply(&blank, "input").expect("valid").phone, None);
        for (url, ok) in [
            ("https://a.jp/x?y=1", true),
            ("HTTP://A.JP", true),
            ("javascript:alert(1)", false),
            ("https://", false),
            ("https:///path", false),
            ("https://a.jp/\"onmouseover", false),
            ("https://a.jp/ x", false),
            ("ftp://a.jp", false),
        ] {
            assert_eq!(parse_booking_url(url, "u").is_ok(), ok, "{url}");
        }
        let bad_phone = AvailabilityDraft {
            booking_phone: Patch::Set("12".into()),
            ..Default::default()
        };
        match current.apply(&bad_phone, "input") {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "input.bookingPhone"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postal_prefixes() {
        for (input, digits, lower, upper) in [
            ("100", "100", "100", Some("101")),
            ("100-00", "10000", "10000", Some("10001")),
            ("〒１００－０００１", "1000001", "1000001", Some("1000002")),
            ("199", "199", "199", Some("2")),
            ("0", "0", "0", Some("1")),
            ("999", "999", "999", None),
        ] {
            let p = PostalPrefix::parse_human(input, "postalCode").expect(input);
            assert_eq!(p.as_str(), digits);
            assert_eq!(p.range(), (lower.to_owned(), upper.map(str::to_owned)), "{input}");
        }
        for bad in ["", "abc", "12345678", "1-00", "100-00-1", "１００a"] {
            assert!(PostalPrefix::parse_human(bad, "postalCode").is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_prefix_range_holds_exactly_the_codes_that_start_with_it(prefix in "[0-9]{1,7}", code in "[0-9]{7}") {
            let p = PostalPrefix::parse_human(&prefix, "p").expect("digits");
            let (lower, upper) = p.range();
            let in_range = code.as_str() >= lower.as_str() && upper.as_deref().is_none_or(|u| code.as_str() < u);
            prop_assert_eq!(in_range, code.starts_with(&prefix));
        }
    }

    #[test]
    fn japan_time() {
        let late = "2026-11-26T15:30:00Z".parse::<DateTime<Utc>>().expect("time");
        assert_eq!(
            jst_today(late),
            day("2026-11-27"),
            "00:30 in Tokyo is already the next day"
        );
        let early = "2026-11-26T14:59:59Z".parse::<DateTime<Utc>>().expect("time");
        assert_eq!(jst_today(early), day("2026-11-26"));
    }
}
