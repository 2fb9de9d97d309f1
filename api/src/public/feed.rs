//! The open feed over HTTP: `GET /$bulk-publish` (the SMART Scheduling Links manifest) and
//! `GET /feed/{prefecture}/{locations|schedules|slots}.ndjson`, one set of files per prefecture
//! so an aggregator interested in one region fetches only that. The resources come from
//! `domain::feed`; files are cached like public searches (per prefecture, invalidated by any
//! change there).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::codes::PrefectureCode;
use domain::feed::{self, ResourceType};
use domain::public::{self as public, Area};

use super::PublicApi;
use super::cache::{Deps, Outcome};
use super::generations;

pub const NDJSON: &str = "application/fhir+ndjson";

/// The absolute base URL of this server as clients reach it: the configured one, else the
/// request's Host over http.
fn base_url(api: &PublicApi, headers: &HeaderMap) -> String {
    if let Some(b) = &api.base_url {
        return b.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn error(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

pub async fn manifest(State(api): State<PublicApi>, headers: HeaderMap) -> Response {
    let base = base_url(&api, &headers);
    let files: Vec<(ResourceType, String, PrefectureCode)> = PrefectureCode::all()
        .flat_map(|p| {
            let base = base.clone();
            ResourceType::ALL
                .into_iter()
                .map(move |t| (t, format!("{base}/feed/{p}/{}", t.file_name()), p))
        })
        .collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = feed::manifest(&now, &format!("{base}/$bulk-publish"), &files);
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        axum::Json(body),
    )
        .into_response()
}

pub async fn file(State(api): State<PublicApi>, Path((prefecture, name)): Path<(String, String)>) -> Response {
    let Ok(p) = prefecture.parse::<PrefectureCode>() else {
        return error(
            StatusCode::NOT_FOUND,
            "no such prefecture: use 01-47",
            crate::error::code::NOT_FOUND,
        );
    };
    let Some(kind) = ResourceType::from_file_name(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such file: locations.ndjson, schedules.ndjson or slots.ndjson",
            crate::error::code::NOT_FOUND,
        );
    };
    let today = public::today();
    let key = format!("feed\0{p}\0{}\0{today}", kind.file_name());
    let (body, outcome) = match api.cache.get(&api.gens, &key).await {
        Some(hit) => (hit, Outcome::Hit),
        None => {
            let deps = Deps::default();
            deps.depend(&api.gens, &generations::reads(Area::Prefecture(p))).await;
            let data = match public::feed(&api.store, p, today).await {
                Ok(d) => d,
                Err(e) => {
                    let _ = crate::error::from_domain(e);
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error",
                        crate::error::code::INTERNAL,
                    );
                }
            };
            let text = render(&api, kind, &data, today);
            let body = Bytes::from(text);
            let stored = api.cache.put(key, body.clone(), &deps);
            (body, if stored { Outcome::Miss } else { Outcome::Bypass })
        }
    };
    metrics::counter!("vsys_public_cache_total", "outcome" => outcome.as_str()).increment(1);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                axum::http::HeaderName::from_static("x-vsys-cache"),
                HeaderValue::from_static(outcome.as_str()),
            ),
        ],
        body,
    )
        .into_response()
}

fn render(api: &PublicApi, kind: ResourceType, data: &public::FeedData, today: chrono::NaiveDate) -> String {
    match kind {
        ResourceType::Location => feed::ndjson(data.sites.iter().map(|s| {
            let city = api
                .refdata
                .municipality(&s.municipality)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let state = api.refdata.name_of(s.prefecture().as_str()).unwrap_or_default();
            feed::location(s, &city, &state)
        })),
        ResourceType::Schedule => feed::ndjson(data.sites.iter().map(feed::schedule)),
        ResourceType::Slot => {
            let mut slots = data.slots.iter().peekable();
            let mut out = Vec::new();
            for s in &data.sites {
                // Both lists are ordered by site code: walk them together.
                let mut own = Vec::new();
                while let Some((code, _)) = slots.peek() {
                    if *code < s.code {
                        slots.next();
                    } else if *code == s.code {
                        if let Some((_, slot)) = slots.next() {
                            own.push(*slot);
                        }
                    } else {
                        break;
                    }
                }
                out.extend(feed::slots(s, &own, today));
            }
            feed::ndjson(out)
        }
    }
}
