//! Wholesalers (卸業者) and the translation of national site codes to their customer codes —
//! pure rules, table-tested here; `wholesalers` stores them.
//!
//! A wholesaler knows a site by its own customer code, not by the national 10-digit code. The
//! mapping (wholesaler, site) → customer code is versioned by effective dates: each version is
//! valid from a Japan date up to (excluding) the next version's start or its own end. An order is
//! sent with the code valid on the (Japan) day it goes out; without one it is held, never sent
//! with a guessed code.

use chrono::{DateTime, NaiveDate, Utc};

use crate::codes::{PrefectureCode, WholesalerId};
use crate::error::{DomainError, DomainResult};

vocabulary! {
    /// How orders reach a wholesaler; each is an adapter in `integrations`.
    AdapterKind {
        /// JSON POSTed to the wholesaler's endpoint, signed with HMAC-SHA256.
        HttpPush = "HTTP_PUSH",
        /// One CSV file per batch in the wholesaler's drop directory.
        FileDrop = "FILE_DROP",
        /// The wholesaler reads its pending orders over GraphQL and acknowledges them.
        Pull = "PULL",
    }
}

/// Longest customer code accepted (the column's width).
pub const CUSTOMER_CODE_MAX: usize = 32;
/// Shortest HMAC signing secret accepted, in bytes.
pub const SECRET_MIN: usize = 16;

/// A wholesaler's own code for a site (得意先コード): 1–32 printable ASCII characters without
/// spaces or commas, taken exactly as given (leading zeros matter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerCode(String);

impl CustomerCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > CUSTOMER_CODE_MAX {
            return Err(format!("must be 1-{CUSTOMER_CODE_MAX} characters"));
        }
        match s.chars().position(|c| !c.is_ascii_graphic() || c == ',' || c == '"') {
            Some(i) => Err(format!(
                "character {} is not allowed (ASCII letters, digits and symbols other than , and \")",
                i + 1
            )),
            None => Ok(CustomerCode(s.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CustomerCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to reach a wholesaler, checked: a push endpoint always has its URL and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterConfig {
    HttpPush { endpoint: String, secret: String },
    FileDrop,
    Pull,
}

impl AdapterConfig {
    pub fn kind(&self) -> AdapterKind {
        match self {
            AdapterConfig::HttpPush { .. } => AdapterKind::HttpPush,
            AdapterConfig::FileDrop => AdapterKind::FileDrop,
            AdapterConfig::Pull => AdapterKind::Pull,
        }
    }
}

/// A wholesaler organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wholesaler {
    pub id: WholesalerId,
    pub name: String,
    /// Prefectures served; empty: nationwide.
    pub area: Vec<PrefectureCode>,
    pub adapter: AdapterConfig,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl Wholesaler {
    /// The push endpoint, if it has one (shown to NATIONAL and the wholesaler only).
    pub fn endpoint(&self) -> Option<&str> {
        match &self.adapter {
            AdapterConfig::HttpPush { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }
}

/// A wholesaler as entered, before the rules.
#[derive(Debug, Clone, Default)]
pub struct WholesalerDraft {
    pub name: String,
    pub area: Vec<String>,
    pub adapter: String,
    pub endpoint: Option<String>,
    pub secret: Option<String>,
}

/// The checked parts of a [`WholesalerDraft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholesalerDetails {
    pub name: String,
    pub area: Vec<PrefectureCode>,
    pub adapter: AdapterConfig,
}

/// Checks a draft. `previous_secret` keeps a push wholesaler's secret when an edit leaves it
/// out (secrets are never read back, so an edit cannot repeat it). Errors name the input field.
pub fn validate(d: &WholesalerDraft, previous_secret: Option<&str>) -> DomainResult<WholesalerDetails> {
    let name = d.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DomainError::invalid("input.name", "must be 1-100 characters"));
    }
    let mut area = d
        .area
        .iter()
        .map(|p| {
            p.parse::<PrefectureCode>()
                .map_err(|e| DomainError::invalid("input.area", e))
        })
        .collect::<DomainResult<Vec<_>>>()?;
    area.sort();
    area.dedup();
    let kind: AdapterKind = d
        .adapter
        .parse()
        .map_err(|e: String| DomainError::invalid("input.adapter", e))?;
    let endpoint = d.endpoint.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let secret = d.secret.as_deref().filter(|s| !s.is_empty());
    let adapter = match kind {
        AdapterKind::HttpPush => {
            let endpoint = endpoint
                .ok_or_else(|| DomainError::invalid("input.endpoint", "an HTTP_PUSH wholesaler needs an endpoint"))?;
            check_url(endpoint)?;
            let secret = secret.or(previous_secret).ok_or_else(|| {
                DomainError::invalid("input.secret", "an HTTP_PUSH wholesaler needs a signing secret")
            })?;
            if secret.len() < SECRET_MIN {
                return Err(DomainError::invalid(
                    "input.secret",
                    format!("must be at least {SECRET_MIN} bytes"),
                ));
            }
            AdapterConfig::HttpPush {
                endpoint: endpoint.to_owned(),
                secret: secret.to_owned(),
            }
        }
        other => {
            if endpoint.is_some() || secret.is_some() {
                return Err(DomainError::invalid(
                    "input.endpoint",
                    format!("only an HTTP_PUSH wholesaler has an endpoint and secret, not {other}"),
                ));
            }
            if other == AdapterKind::FileDrop {
                AdapterConfig::FileDrop
            } else {
                AdapterConfig::Pull
            }
        }
    };
    Ok(WholesalerDetails {
        name: name.to_owned(),
        area,
        adapter,
    })
}

fn check_url(url: &str) -> DomainResult<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| DomainError::invalid("input.endpoint", "must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid("input.endpoint", "is not a valid URL"));
    }
    Ok(())
}

/// One version of a site's customer code at a wholesaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub customer_code: CustomerCode,
    pub effective_from: NaiveDate,
    /// Exclusive; `None`: until a later version starts.
    pub effective_to: Option<NaiveDate>,
}

/// Why an order cannot be translated (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untranslated {
    /// No version at all for this site at this wholesaler.
    NoMapping,
    /// A version exists but only from this later date: wait for it.
    NotYet(NaiveDate),
    /// Every version has ended.
    Ended,
}

impl Untranslated {
    /// A stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Untranslated::NoMapping => "NO_CUSTOMER_CODE",
            Untranslated::NotYet(_) => "CUSTOMER_CODE_NOT_YET_EFFECTIVE",
            Untranslated::Ended => "CUSTOMER_CODE_ENDED",
        }
    }

    /// The hold reason shown on the order (no personal data: codes and dates only).
    pub fn explain(&self, wholesaler: &WholesalerId, site: &str) -> String {
        match self {
            Untranslated::NoMapping => {
                format!("{}: {wholesaler} has no customer code for site {site}", self.code())
            }
            Untranslated::NotYet(d) => format!(
                "{}: {wholesaler}'s customer code for site {site} takes effect on {d}",
                self.code()
            ),
            Untranslated::Ended => format!(
                "{}: every customer code of {wholesaler} for site {site} has ended",
                self.code()
            ),
        }
    }
}

/// The customer code valid on `on` among one site's versions at one wholesaler (in any order).
/// A version ends at its `effective_to` or where the next version starts, whichever is earlier.
pub fn translate(versions: &[Mapping], on: NaiveDate) -> Result<&CustomerCode, Untranslated> {
    if versions.is_empty() {
        return Err(Untranslated::NoMapping);
    }
    let mut sorted: Vec<&Mapping> = versions.iter().collect();
    sorted.sort_by_key(|m| m.effective_from);
    let current = sorted.iter().enumerate().rev().find(|(_, m)| m.effective_from <= on);
    match current {
        Some((i, m)) => {
            let next_start = sorted.get(i + 1).map(|n| n.effective_from);
            let end = match (m.effective_to, next_start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if end.is_none_or(|e| on < e) {
                Ok(&m.customer_code)
            } else {
                match sorted.get(i + 1) {
                    Some(n) if n.effective_from > on => Err(Untranslated::NotYet(n.effective_from)),
                    _ => Err(Untranslated::Ended),
                }
            }
        }
        None => Err(Untranslated::NotYet(sorted[0].effective_from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn v(code: &str, from: &str, to: Option<&str>) -> Mapping {
        Mapping {
            customer_code: CustomerCode::parse(code).expect("code"),
            effective_from: d(from),
            effective_to: to.map(d),
        }
    }

    #[test]
    fn translation_table() {
        let one = [v("A001", "2021-04-01", None)];
        let two = [v("B002", "2021-07-01", None), v("A001", "2021-04-01", None)];
        let bounded = [v("A001", "2021-04-01", Some("2021-06-01"))];
        let gap = [
            v("A001", "2021-04-01", Some("2021-05-01")),
            v("C003", "2021-06-01", None),
        ];
        let ok = |code: &str| Ok::<_, Untranslated>(code.to_owned());
        let cases: &[(&[Mapping], &str, Result<String, Untranslated>)] = &[
            (&[], "2021-05-01", Err(Untranslated::NoMapping)),
            (&one, "2021-03-31", Err(Untranslated::NotYet(d("2021-04-01")))),
            (&one, "2021-04-01", ok("A001")),
            (&one, "2030-01-01", ok("A001")),
            (&two, "2021-06-30", ok("A001")),
            (&two, "2021-07-01", ok("B002")),
            (&bounded, "2021-05-31", ok("A001")),
            (&bounded, "2021-06-01", Err(Untranslated::Ended)),
            (&gap, "2021-04-30", ok("A001")),
            (&gap, "2021-05-15", Err(Untranslated::NotYet(d("2021-06-01")))),
            (&gap, "2021-06-01", ok("C003")),
        ];
        for (versions, on, want) in cases {
            let got = translate(versions, d(on)).map(|c| c.as_str().to_owned());
            assert_eq!(&got, want, "{versions:?} on {on}");
        }
    }

    #[test]
    fn hold_reasons_name_codes_and_dates_only() {
        let w: WholesalerId = "suzuken".parse().expect("w");
        assert_eq!(
            Untranslated::NoMapping.explain(&w, "1312020017"),
            "NO_CUSTOMER_CODE: suzuken has no customer code for site 1312020017"
        );
        assert!(
            Untranslated::NotYet(d("2021-07-01"))
                .explain(&w, "1312020017")
                .contains("takes effect on 2021-07-01")
        );
    }

    #[test]
    fn customer_codes_are_parsed() {
        for ok in ["0012345", "S-123/4", "A", &"9".repeat(32)] {
            assert_eq!(CustomerCode::parse(ok).expect(ok).as_str(), ok);
        }
        for bad in ["", " 12", "12 3", "a,b", "コード", &"9".repeat(33), "x\"y"] {
            assert!(CustomerCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wholesaler_drafts_are_checked_field_by_field() {
        let base = WholesalerDraft {
            name: "株式会社スズケン".into(),
            area: vec!["13".into(), "01".into(), "13".into()],
            adapter: "HTTP_PUSH".into(),
            endpoint: Some("https://orders.example.jp/vsys".into()),
            secret: Some("0123456789abcdef".into()),
        };
        let ok = validate(&base, None).expect("valid");
        assert_eq!(ok.area.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["01", "13"]);
        assert_eq!(ok.adapter.kind(), AdapterKind::HttpPush);
        let no_secret = WholesalerDraft {
            secret: None,
            ..base.clone()
        };
        assert!(
            validate(&no_secret, Some("kept-secret-0123456")).is_ok(),
            "an edit keeps the secret"
        );
        type Edit = fn(&mut WholesalerDraft);
        let cases: &[(Edit, &str)] = &[
            (|d| d.name = " ".into(), "input.name"),
            (|d| d.area = vec!["48".into()], "input.area"),
            (|d| d.adapter = "EMAIL".into(), "input.adapter"),
            (|d| d.endpoint = None, "input.endpoint"),
            (|d| d.endpoint = Some("ftp://x".into()), "input.endpoint"),
            (|d| d.endpoint = Some("https://".into()), "input.endpoint"),
            (|d| d.secret = None, "input.secret"),
            (|d| d.secret = Some("short".into()), "input.secret"),
            (|d| d.adapter = "PULL".into(), "input.endpoint"),
        ];
        for (edit, field) in cases {
            let mut draft = base.clone();
            edit(&mut draft);
            match validate(&draft, None) {
                Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, *field, "{draft:?}"),
                other => panic!("{draft:?}: expected an error on {field}, got {other:?}"),
            }
        }
        let pull = WholesalerDraft {
            adapter: "PULL".into(),
            endpoint: None,
            secret: None,
            ..base
        };
        assert_eq!(validate(&pull, None).expect("pull").adapter, AdapterConfig::Pull);
    }
}
