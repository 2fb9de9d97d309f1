//! The public side (コロナワクチンナビ): everything an anonymous person or aggregator can reach.
//!
//! - [`schema`]: the public GraphQL schema, served at `POST /public/graphql` and
//!   `/public/graphql/ws` (subscriptions). It is a separate schema made only of public types,
//!   so no private field is reachable anonymously by construction; it has stricter depth and
//!   complexity limits than the private one, and no mutations.
//! - [`page`]: the web page at `/` (plain HTML/CSS/JS embedded in the binary).
//! - [`feed`]: the SMART Scheduling Links feed (`/$bulk-publish`, NDJSON files).
//! - [`limit`]: per-client rate limiting of all of the above (and of anonymous `/graphql`).
//! - [`cache`] + [`generations`]: the response cache and how changes invalidate it.
//! - [`bus`]: the availability-change event anonymous subscribers hear (on the server's event
//!   bus, so across instances with Redis).
//!
//! Must not: reach private data except through `domain::public` (whose `PublicSite` is the
//! only shape a site has here), or accept a token — the public side has no notion of a caller.

pub mod bus;
pub mod cache;
pub mod feed;
pub mod generations;
pub mod limit;
pub mod page;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Variables;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use domain::reservations::AvailabilityChange;
use domain::site::Site;
use domain::store::Store;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use self::bus::AvailabilityChanged;
use self::cache::{Deps, Outcome, ResponseCache};
use self::generations::{GenKey, Generations};
use self::limit::RateLimit;
use self::schema::PublicSchema;
use crate::events::Events;
use crate::graphql::RefData;

/// Settings of the public side; every one has a flag and an environment variable (see
/// `config::ServeArgs`).
#[derive(Debug, Clone)]
pub struct PublicSettings {
    /// Requests per second each client may make to public routes (and anonymously to
    /// `/graphql`); 0 turns limiting off.
    pub rate_per_second: f64,
    /// How many requests a client may make at once before the rate applies.
    pub rate_burst: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Memory for cached public answers, in bytes; 0 turns the cache off.
    pub cache_bytes: usize,
    /// Longest life of a cached answer (a safety net for writes made outside the API).
    pub cache_ttl: Duration,
    /// Absolute base URL used in the feed's manifest (default: from the request's Host).
    pub base_url: Option<String>,
    /// Most concurrent anonymous subscription connections.
    pub max_subscriptions: usize,
}

impl Default for PublicSettings {
    fn default() -> Self {
        PublicSettings {
            rate_per_second: 20.0,
            rate_burst: 60,
            trust_forwarded_for: false,
            cache_bytes: 64 * 1024 * 1024,
            cache_ttl: Duration::from_secs(300),
            base_url: None,
            max_subscriptions: 10_000,
        }
    }
}

/// Public query limits: its documents are small and flat, so anything deeper or costlier is
/// abuse, refused at validation — before any resolver or database work.
pub const MAX_DEPTH: usize = 10;
pub const MAX_COMPLEXITY: usize = 2_000;
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What private mutations call once their change committed, before they answer: public answers
/// that could predate the change stop being served, and anonymous subscribers hear of it.
#[derive(Clone)]
pub struct PublicChanges {
    gens: Generations,
    events: Events,
}

impl PublicChanges {
    pub fn new(gens: Generations, events: Events) -> PublicChanges {
        PublicChanges { gens, events }
    }

    pub async fn availability_changed(&self, change: &AvailabilityChange) {
        self.gens
            .bump(&generations::availability_change(change.site.details.municipality))
            .await;
        if let Some(view) = domain::public::public_view(&change.site, Some(&change.availability)) {
            self.events.publish(AvailabilityChanged(view));
        }
    }

    pub async fn site_changed(&self, site: &Site) {
        self.gens
            .bump(&generations::site_change(site.details.municipality))
            .await;
    }

    pub async fn everything_changed(&self) {
        self.gens.bump(&[GenKey::Epoch]).await;
    }
}

/// The state of the public routes.
#[derive(Clone)]
pub struct PublicApi {
    schema: PublicSchema,
    cache: ResponseCache,
    gens: Generations,
    store: Store,
    refdata: Arc<RefData>,
    base_url: Option<String>,
    subscriptions: Arc<Semaphore>,
    /// Interval of the server's WebSocket pings (see `crate::ws`).
    websocket_ping: Duration,
    /// Parsed documents by query text: the page and aggregators send the same few queries, and
    /// parsing is a sizeable share of an uncached request. Bounded; a flood of distinct
    /// queries only evicts.
    parsed: crate::server::ParsedQueries,
}

impl PublicApi {
    pub fn new(
        store: Store,
        refdata: Arc<RefData>,
        gens: Generations,
        events: Events,
        settings: &PublicSettings,
        websocket_ping: Duration,
    ) -> PublicApi {
        let schema = schema::builder()
            .data(store.clone())
            .data(refdata.clone())
            .data(gens.clone())
            .data(events)
            .extension(crate::metrics::GraphqlObservability)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .limit_recursive_depth(32)
            .limit_directives(4)
            .finish();
        PublicApi {
            schema,
            cache: ResponseCache::new(settings.cache_bytes, settings.cache_ttl),
            gens,
            store,
            refdata,
            base_url: settings.base_url.clone(),
            subscriptions: Arc::new(Semaphore::new(settings.max_subscriptions)),
            websocket_ping,
            parsed: crate::server::ParsedQueries::default(),
        }
    }
}

/// The public routes, rate limited per client.
pub fn router(api: PublicApi, limit: RateLimit) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/app.js", get(page::script))
        .route("/assets/app.css", get(page::style))
        .route(
            "/public/graphql",
            get(graphiql)
                .post(graphql_post)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/public/graphql/ws", get(graphql_ws))
        .route("/$bulk-publish", get(feed::manifest))
        .route("/feed/{prefecture}/{file}", get(feed::file))
        .with_state(api)
        .layer(axum::middleware::from_fn_with_state(
            (limit, limit::Scope::All),
            limit::limit_requests,
        ))
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/public/graphql")
            .subscription_endpoint("/public/graphql/ws")
            .finish(),
    )
}

/// A GraphQL request body (`extensions` are ignored).
#[derive(Deserialize)]
struct Body {
    query: String,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
}

fn bad_request(message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": crate::error::code::BAD_USER_INPUT } }] });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The cache key of a request: its normalized document, operation, variables (keys sorted)
/// and Japan's date (slot-derived statuses are per day).
fn cache_key(body: &Body) -> String {
    let mut key = cache::normalize_query(&body.query);
    key.push('\0');
    key.push_str(body.operation_name.as_deref().unwrap_or(""));
    key.push('\0');
    if let Some(v) = &body.variables {
        cache::canonical_json(v, &mut key);
    }
    key.push('\0');
    key.push_str(&domain::public::today().to_string());
    key
}

async fn graphql_post(State(api): State<PublicApi>, raw: Bytes) -> Response {
    let body: Body = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(_) => {
            return bad_request(
                "expected a JSON body {\"query\": \"…\", \"variables\": {…}} (one operation, not a batch)",
            );
        }
    };
    let key = cache_key(&body);
    let (bytes, outcome) = match api.cache.get(&api.gens, &key).await {
        Some(hit) => (hit, Outcome::Hit),
        None => {
            let deps = Deps::default();
            let mut req = async_graphql::Request::new(body.query);
            api.parsed.prepare(&mut req);
            if let Some(op) = body.operation_name {
                req = req.operation_name(op);
            }
            if let Some(v) = body.variables {
                req = req.variables(Variables::from_json(v));
            }
            let resp = api.schema.execute(req.data(deps.clone())).await;
            let ok = resp.errors.is_empty();
            let bytes = match serde_json::to_vec(&resp) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialize a public response");
                    return bad_request("internal error");
                }
            };
            let stored = ok && api.cache.put(key, bytes.clone(), &deps);
            (bytes, if stored { Outcome::Miss } else { Outcome::Bypass })
        }
    };
    metrics::counter!("vsys_public_cache_total", "outcome" => outcome.as_str()).increment(1);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                HeaderName::from_static("x-vsys-cache"),
                HeaderValue::from_static(outcome.as_str()),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// graphql-transport-ws for anonymous subscribers; no `connection_init` payload is needed.
async fn graphql_ws(State(api): State<PublicApi>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let requested = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let Some(protocol) = crate::ws::protocol(requested) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Protocol: graphql-transport-ws").into_response();
    };
    let Ok(permit) = api.subscriptions.clone().try_acquire_owned() else {
        let body = serde_json::json!({ "errors": [{ "message": "too many subscribers right now; try again later", "extensions": { "code": crate::error::code::RATE_LIMITED } }] });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    };
    // Liveness as on `/graphql/ws` (see `crate::ws`): the server pings, so a browser that
    // only listens is kept and a vanished one is dropped, freeing its permit.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let accept = |_| async { Ok(async_graphql::Data::default()) };
            crate::ws::serve(socket, api.schema.clone(), protocol, api.websocket_ping, accept).await;
            drop(permit);
        })
}

/// Re-derives slot-based statuses for today and, if any changed, invalidates every cached
/// answer. Run at start (the server may have been down at midnight) before serving.
pub async fn refresh_derived(store: &Store, changes: &PublicChanges) {
    let today = domain::public::today();
    match domain::reservations::refresh_derived(store, today).await {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => {
            tracing::info!(
                municipalities = changed.len(),
                "slot-derived statuses refreshed for {today}"
            );
            changes.everything_changed().await;
        }
        Err(e) => {
            // Logged by the mapping; the next run tries again.
            let _ = crate::error::from_domain(e);
        }
    }
}

/// When Japan's date changes, yesterday's slots stop counting: re-derive just after midnight.
pub fn spawn_daily_refresh(store: Store, changes: PublicChanges) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let tomorrow = domain::public::today() + chrono::Duration::days(1);
            let next = tomorrow
                .and_hms_opt(0, 0, 1)
                .and_then(|t| t.and_local_timezone(domain::availability::jst()).single())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or(now + chrono::Duration::hours(1));
            tokio::time::sleep((next - now).to_std().unwrap_or(Duration::from_secs(60))).await;
            refresh_derived(&store, &changes).await;
        }
    })
}

/// Forgets quiet rate-limit clients every minute.
pub fn spawn_limit_sweeper(limit: RateLimit) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limit.sweep();
        }
    })
}
