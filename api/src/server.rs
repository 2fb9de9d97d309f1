//! The HTTP server: routes, authentication of each request, and the lifecycle (start, graceful
//! shutdown). `start` returns once the socket is bound and the database migrated, so tests and
//! the binary share the exact same path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::dataloader::DataLoader;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use domain::authz::Actor;
use domain::store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{AuthError, AuthSettings, Authenticator, bearer_token};
use crate::error::code;
use crate::events::Events;
use crate::graphql::availability::AvailabilityLoader;
use crate::graphql::deliveries::{DeliveriesLoader, FulfilmentLoader};
use crate::graphql::{self, Caller, Principal, RefData, VsysSchema};
use crate::public::generations::Generations;
use crate::public::limit::{self, RateLimit};
use crate::public::{self, PublicApi, PublicChanges, PublicSettings};

/// Everything `start` needs; the binary fills it from flags and environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Prefix of this deployment's Redis keys and channels: cache generations (`<prefix>g:…`)
    /// and events (`<prefix>events:<topic>`). Instances of one deployment share it;
    /// deployments (and test servers) sharing one Redis do not.
    pub redis_prefix: String,
    pub auth: AuthSettings,
    pub max_body_bytes: usize,
    /// The public side: rate limits, response cache, feed URL.
    pub public: PublicSettings,
    /// Run an outbox worker in the background (`None`: messages wait for another instance or
    /// for `vsys outbox drain`; tests drive workers themselves).
    pub outbox_worker: Option<integrations::WorkerConfig>,
    /// Interval of the server's WebSocket pings; a peer silent for 3 of them is dropped.
    pub websocket_ping: Duration,
    /// Where the personal-data (My Number) keys come from; see `personal_keys`.
    pub personal_keys: crate::personal_keys::PersonalKeySettings,
}

/// The default [`ServerConfig::redis_prefix`].
pub const DEFAULT_REDIS_PREFIX: &str = "vsys:";

#[derive(Clone)]
struct AppState {
    schema: VsysSchema,
    parsed: ParsedQueries,
    auth: Authenticator,
    store: Store,
    redis: Option<redis::aio::ConnectionManager>,
    events: Events,
    websockets: Arc<AtomicI64>,
    websocket_ping: Duration,
    limit: RateLimit,
}

/// Parsed documents of `POST /graphql` (and of the public API's `POST`) by their exact text: clients send the same few queries
/// over and over (a site's app books every dose with one mutation), and parsing is a sizeable
/// share of a small request's CPU. Only parsing is skipped: validation (which depends on the
/// variables), depth and complexity limits and execution run for every request as before. A
/// document that does not parse is never stored, so its error comes from async-graphql's own
/// parse each time. Bounded by text size; long documents (an inline CSV import) are not kept,
/// and a flood of distinct queries only evicts.
#[derive(Clone)]
pub struct ParsedQueries(Arc<quick_cache::sync::Cache<String, ExecutableDocument, QueryWeight>>);

/// Longest query text kept in [`ParsedQueries`], in bytes.
pub const MAX_PARSED_QUERY_BYTES: usize = 16 * 1024;
/// Total query text kept in [`ParsedQueries`], in bytes.
const PARSED_QUERIES_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct QueryWeight;

impl quick_cache::Weighter<String, ExecutableDocument> for QueryWeight {
    fn weight(&self, key: &String, _: &ExecutableDocument) -> u64 {
        // The parsed tree grows with the text; the text's length is a fair relative weight.
        key.len() as u64 + 64
    }
}

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries(Arc::new(quick_cache::sync::Cache::with_weighter(
            1_000,
            PARSED_QUERIES_BYTES,
            QueryWeight,
        )))
    }
}

impl ParsedQueries {
    /// Gives `request` its parsed document from the cache, or parses it and keeps the result
    /// when it parsed and is short enough.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > MAX_PARSED_QUERY_BYTES {
            return;
        }
        if let Some(doc) = self.0.get(request.query.as_str()) {
            request.set_parsed_query(doc);
        } else if let Ok(doc) = request.parsed_query() {
            let doc = doc.clone();
            self.0.insert(request.query.clone(), doc);
        }
    }
}

/// Counts an open WebSocket for as long as it lives.
struct Open(Arc<AtomicI64>);

impl Open {
    fn new(n: &Arc<AtomicI64>) -> Open {
        n.fetch_add(1, Ordering::Relaxed);
        Open(n.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Store,
    shutdown: oneshot::Sender<()>,
    join: JoinHandle<std::io::Result<()>>,
    /// Tasks that live as long as the server (event relay, daily refresh, limiter sweeps).
    background: Vec<JoinHandle<()>>,
    /// The outbox worker, stopped between rounds (a round in flight is finished and recorded).
    worker: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.join.await??;
        if let Some((stop, task)) = self.worker {
            let _ = stop.send(true);
            let _ = task.await;
        }
        for task in &self.background {
            task.abort();
        }
        Ok(())
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// Connects, migrates, binds and serves in the background.
pub async fn start(cfg: ServerConfig) -> anyhow::Result<Running> {
    // Keys first: a PostgreSQL deployment without them refuses before touching the database.
    let keys = crate::personal_keys::load_and_announce(&cfg.personal_keys, &cfg.database_url)?;
    let db = crate::db::connect(&cfg.database_url).await?;
    let store = Store::new(db);
    start_with_keys(cfg, store, Arc::new(keys)).await
}

/// As [`start`], on an already-connected store (the demo fills it first).
pub async fn start_with_store(cfg: ServerConfig, store: Store) -> anyhow::Result<Running> {
    let keys = crate::personal_keys::load_and_announce(&cfg.personal_keys, &cfg.database_url)?;
    start_with_keys(cfg, store, Arc::new(keys)).await
}

/// As [`start_with_store`], with the personal-data keys already loaded.
pub async fn start_with_keys(
    cfg: ServerConfig,
    store: Store,
    personal_keys: Arc<domain::personal::crypto::PersonalKeys>,
) -> anyhow::Result<Running> {
    let auth = Authenticator::new(&cfg.auth).await?;
    if auth.uses_development_secret() {
        tracing::warn!(
            "VSYS_JWT_SECRET is not set: accepting tokens signed with the public DEVELOPMENT secret. \
             Never run like this in production."
        );
    }
    let (redis, events) = match &cfg.redis_url {
        None => (None, Events::default()),
        Some(url) => {
            let client = redis::Client::open(url.as_str())?;
            let bus = crate::events::redis::RedisBus::connect(url, &format!("{}events:", cfg.redis_prefix)).await?;
            (
                Some(redis::aio::ConnectionManager::new(client).await?),
                Events::new(Arc::new(bus)),
            )
        }
    };
    let refdata = RefData::load(&store)
        .await
        .map_err(|e| anyhow::anyhow!("loading reference data: {e}"))?;
    let mut background = Vec::new();
    // With Redis, cache generations (like events) are shared by every instance; without it
    // they stay in this process (one instance).
    let gens = match &redis {
        None => Generations::local(),
        Some(conn) => Generations::redis(conn.clone(), &cfg.redis_prefix),
    };
    let changes = PublicChanges::new(gens.clone(), events.clone());
    public::refresh_derived(&store, &changes).await;
    background.push(public::spawn_daily_refresh(store.clone(), changes.clone()));
    let schema = graphql::builder()
        .data(store.clone())
        .data(refdata.clone())
        .data(events.clone())
        .data(changes)
        .data(personal_keys)
        .data(DataLoader::new(AvailabilityLoader(store.clone()), tokio::spawn))
        .data(DataLoader::new(FulfilmentLoader(store.clone()), tokio::spawn))
        .data(DataLoader::new(DeliveriesLoader(store.clone()), tokio::spawn))
        .extension(crate::metrics::GraphqlObservability)
        .limit_depth(12)
        .limit_complexity(5_000)
        .finish();
    crate::metrics::handle();
    let limit = RateLimit::new(
        cfg.public.rate_per_second,
        cfg.public.rate_burst,
        cfg.public.trust_forwarded_for,
    );
    background.push(public::spawn_limit_sweeper(limit.clone()));
    let public_api = PublicApi::new(
        store.clone(),
        refdata,
        gens,
        events.clone(),
        &cfg.public,
        cfg.websocket_ping,
    );
    let state = AppState {
        schema,
        parsed: ParsedQueries::default(),
        auth,
        store: store.clone(),
        redis,
        events,
        websockets: Arc::new(AtomicI64::new(0)),
        websocket_ping: cfg.websocket_ping,
        limit: limit.clone(),
    };
    let anonymous_limit =
        axum::middleware::from_fn_with_state((limit.clone(), limit::Scope::Anonymous), limit::limit_requests);
    let app = Router::new()
        .route(
            "/graphql",
            get(graphiql).post(graphql_http).layer(anonymous_limit.clone()),
        )
        // Not per request: the token comes after the upgrade (see `limit::RateLimit::charge`).
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(public::router(public_api, limit))
        .layer(axum::middleware::from_fn(crate::metrics::http_layer))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes));
    let worker = cfg.outbox_worker.clone().map(|wc| {
        let (stop, rx) = tokio::sync::watch::channel(false);
        (stop, integrations::Worker::new(store.clone(), wc).spawn(rx))
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        // No Nagle delay: responses and subscription events are small and latency matters.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "listening; public site at http://{addr}/ , GraphiQL at http://{addr}/graphql");
    Ok(Running {
        addr,
        store,
        shutdown: tx,
        join,
        background,
        worker,
    })
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

/// A GraphQL-shaped error body for requests refused before GraphQL runs.
fn refusal(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// Turns claims into a caller. The error message says what was wrong with the token, never the
/// token itself.
async fn authenticate(auth: &Authenticator, token: Option<&str>) -> Result<Caller, (StatusCode, String)> {
    let Some(token) = token else { return Ok(Caller(None)) };
    let claims = auth.verify(token).await.map_err(|e| {
        let status = if e.is_credential_error() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, format!("invalid token: {e}"))
    })?;
    let actor = Actor::from_claims(&claims.role, claims.scope.as_deref())
        .map_err(|e| (StatusCode::UNAUTHORIZED, format!("invalid token: {e}")))?;
    Ok(Caller(Some(Principal {
        subject: claims.sub,
        actor,
    })))
}

/// `POST /graphql`. The body is read as bytes so the configured body limit applies (the
/// async-graphql extractor reads the stream itself and would bypass it).
async fn graphql_http(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return refusal(
                e.status(),
                &format!("request body refused: {}", e.body_text()),
                code::BAD_USER_INPUT,
            );
        }
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let token = match bearer_token(header) {
        Ok(t) => t,
        Err(e) => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                &format!("invalid token: {e}"),
                code::UNAUTHENTICATED,
            );
        }
    };
    let caller = match authenticate(&state.auth, token).await {
        Ok(caller) => caller,
        Err((status, message)) => return refusal(status, &message, code::UNAUTHENTICATED),
    };
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("the body must be a JSON GraphQL request: {e}");
            return refusal(StatusCode::BAD_REQUEST, &message, code::BAD_USER_INPUT);
        }
    };
    state.parsed.prepare(&mut request);
    GraphQLResponse::from(state.schema.execute(request.data(caller)).await).into_response()
}

/// graphql-transport-ws (and the legacy protocol). The token comes in `connection_init`'s
/// payload as `{"Authorization": "Bearer …"}` (or `{"token": "…"}`) and is checked once there;
/// a bad token closes the connection before any subscription starts. Liveness: see [`crate::ws`].
///
/// Rate limiting: an anonymous or failed `connection_init` counts against the address's
/// anonymous budget and is closed with RATE_LIMITED when over it; signed-in subscribers are
/// never throttled, however many share an address.
async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = state.limit.client(&headers, peer);
    let requested = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let Some(protocol) = crate::ws::protocol(requested) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Protocol: graphql-transport-ws").into_response();
    };
    // Subscription traffic is small JSON; tungstenite's default 128 KiB buffers per socket
    // would dominate memory at tens of thousands of subscribers.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| async move {
            let _open = Open::new(&state.websockets);
            let auth = state.auth.clone();
            let limit = state.limit.clone();
            let on_init = move |payload: serde_json::Value| async move {
                let header = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                let raw = payload.get("token").and_then(|v| v.as_str()).map(str::to_owned);
                let token = match (&header, &raw) {
                    (Some(h), _) => bearer_token(Some(h))
                        .map_err(|e: AuthError| crate::error::unauthenticated(format!("invalid token: {e}"))),
                    (None, Some(t)) => Ok(Some(t.as_str())),
                    (None, None) => Ok(None),
                };
                let caller = match token {
                    Ok(token) => authenticate(&auth, token)
                        .await
                        .map_err(|(_, m)| crate::error::unauthenticated(m)),
                    Err(e) => Err(e),
                };
                let signed_in = matches!(&caller, Ok(Caller(Some(_))));
                if !signed_in
                    && let Some(c) = client
                    && let Err(wait) = limit.charge(c)
                {
                    return Err(crate::error::coded(
                        format!(
                            "too many anonymous or failed connections from your address; retry after {} s",
                            wait.as_secs().max(1)
                        ),
                        code::RATE_LIMITED,
                    ));
                }
                let caller = caller?;
                let mut data = Data::default();
                data.insert(caller);
                Ok(data)
            };
            crate::ws::serve(socket, state.schema.clone(), protocol, state.websocket_ping, on_init).await
        })
}

async fn readyz(State(state): State<AppState>) -> Response {
    let db = state.store.db().ping().await.is_ok();
    let redis = match &state.redis {
        None => None,
        Some(conn) => {
            let mut conn = conn.clone();
            let pong: redis::RedisResult<String> =
                tokio::time::timeout(Duration::from_secs(2), redis::cmd("PING").query_async(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timeout"))));
            Some(pong.is_ok())
        }
    };
    let ready = db && redis.unwrap_or(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "database": db, "redis": redis })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state.store) + &state.events.render_gauges(state.websockets.load(Ordering::Relaxed)),
    )
        .into_response()
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// For tests and the demo: the shared reference data.
pub type SharedRefData = Arc<RefData>;
