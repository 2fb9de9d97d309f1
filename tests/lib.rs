//! Test harness: starts the real server on a fresh database and talks to it over HTTP and
//! WebSocket, as a client would.
//!
//! Storage: SQLite in a temporary file by default. With `TEST_DATABASE_URL` set to a
//! PostgreSQL URL (an account that may CREATE DATABASE), each test gets its own database,
//! dropped when the test ends. With `TEST_REDIS_URL` set, servers are started with Redis.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use api::auth::{AuthSettings, issue_hs256};
use api::server::{Running, ServerConfig};
use serde_json::{Value, json};

pub use serde_json;

/// The JWT secret test servers use (not the development default, so tests prove it is applied).
pub const TEST_SECRET: &str = "test-secret-for-black-box-tests";

pub fn test_auth() -> AuthSettings {
    AuthSettings {
        jwt_secret: Some(TEST_SECRET.into()),
        jwks: None,
        issuer: "vsys".into(),
        audience: "vsys".into(),
    }
}

/// A development token for the test servers.
pub fn token(role: &str, scope: Option<&str>) -> String {
    issue_hs256(
        TEST_SECRET,
        "vsys",
        "vsys",
        "tester",
        role,
        scope,
        chrono::Duration::hours(1),
    )
    .expect("token")
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    /// Admin URL and database name to drop at the end (PostgreSQL only).
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static N: AtomicU64 = AtomicU64::new(0);
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(admin) if admin.starts_with("postgres") => {
                let name = format!(
                    "vsys_t_{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_micros() % 1_000_000
                );
                let conn = sea_orm::Database::connect(&admin)
                    .await
                    .expect("TEST_DATABASE_URL reachable");
                use sea_orm::ConnectionTrait;
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let url = replace_db_name(&admin, &name);
                TestDb {
                    url,
                    pg: Some((admin, name)),
                    _dir: None,
                }
            }
            Some(other) => panic!("TEST_DATABASE_URL must be a postgres:// URL, got a different scheme: {other:.10}…"),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("vsys.db").display());
                TestDb {
                    url,
                    pg: None,
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| scheme_end + i);
    let host = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop needs async I/O; do it on a private runtime so it works from any test.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    use sea_orm::ConnectionTrait;
                    let conn = sea_orm::Database::connect(&admin).await.ok()?;
                    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
        }
    }
}

/// A Redis key and channel prefix no other test server (of this run, of another run, or of
/// another engineer's run on the same Redis) uses, so tests never see each other's cache
/// generations or events.
pub fn unique_redis_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "vsys-test:{}:{}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    )
}

/// The configuration test servers start with: port 0, the test secret, Redis when
/// `TEST_REDIS_URL` is set (under a prefix of its own, see [`unique_redis_prefix`]), public
/// rate limiting off (the tests of limiting turn it on) and the default WebSocket pings.
pub fn test_config(db: &TestDb) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: db.url.clone(),
        redis_url: std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()),
        redis_prefix: unique_redis_prefix(),
        auth: test_auth(),
        max_body_bytes: 32 * 1024 * 1024,
        public: api::public::PublicSettings {
            rate_per_second: 0.0,
            ..Default::default()
        },
        // Tests drive outbox workers themselves (synchronously), never in the background.
        outbox_worker: None,
        websocket_ping: api::ws::DEFAULT_PING,
        personal_keys: test_personal_keys(),
    }
}

/// The personal-data keys test servers use: fixed, so a test can restart a server on the same
/// database and still open what it sealed.
pub fn test_personal_keys() -> api::personal_keys::PersonalKeySettings {
    api::personal_keys::PersonalKeySettings::explicit(
        "t1:dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE=",
        "dGVzdC1sb29rdXAta2V5LTMyLWJ5dGVzLWxvbmctISE=",
    )
}

/// A running server on a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub db: TestDb,
    /// The Redis key and channel prefix of this server (shared by servers of one deployment).
    pub redis_prefix: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = TestDb::new().await;
        Self::spawn_on(db).await
    }

    pub async fn spawn_on(db: TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    /// A server pinging WebSocket peers every `ping` (and dropping those silent for three).
    pub async fn spawn_with_ping(ping: std::time::Duration) -> TestApp {
        Self::spawn_with(TestDb::new().await, |cfg| cfg.websocket_ping = ping).await
    }

    /// A second server of the same deployment as `other`: same database and Redis prefix
    /// (PostgreSQL only; the database stays `other`'s to drop).
    pub async fn spawn_on_shared(other: &TestApp) -> TestApp {
        assert!(other.db.is_postgres(), "instances share a database only on PostgreSQL");
        let db = TestDb {
            url: other.db.url.clone(),
            pg: None,
            _dir: None,
        };
        let prefix = other.redis_prefix.clone();
        Self::spawn_with(db, |cfg| cfg.redis_prefix = prefix).await
    }

    /// As [`TestApp::spawn_on`], with the configuration adjusted first (e.g. public limits).
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let mut cfg = test_config(&db);
        adjust(&mut cfg);
        let redis_prefix = cfg.redis_prefix.clone();
        let running = api::server::start(cfg).await.expect("server starts");
        TestApp {
            addr: running.addr,
            client: reqwest::Client::new(),
            running: Some(running),
            db,
            redis_prefix,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL request and returns the status and the JSON body.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// A GraphQL request expected to succeed: returns `data`, panicking with the errors if any.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(Some(token), query, variables).await;
        assert!(
            status == 200 && body.get("errors").is_none(),
            "expected success, got {status}: {body}"
        );
        body["data"].clone()
    }

    /// A GraphQL request expected to fail: returns (code, message) of the first error, and
    /// checks no data leaked with it.
    pub async fn err(&self, token: Option<&str>, query: &str, variables: Value) -> (String, String) {
        let (_, body) = self.post(token, query, variables).await;
        error_of(&body)
    }

    /// Stops the server gracefully (the database stays until the app is dropped).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("graceful stop");
        }
    }
}

/// The first error's code and message; panics if the body has no error or carries data for it.
pub fn error_of(body: &Value) -> (String, String) {
    let e = body["errors"]
        .get(0)
        .unwrap_or_else(|| panic!("expected an error, got {body}"));
    let data_is_empty = match &body["data"] {
        Value::Null => true,
        Value::Object(m) => m.values().all(Value::is_null),
        _ => false,
    };
    assert!(data_is_empty, "an error came with data: {body}");
    (
        e["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error without code: {body}"))
            .to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A valid venue registration input for a municipality; tweak fields per test.
pub fn venue_input(municipality: &str, name: &str) -> Value {
    json!({
        "name": name,
        "nameKana": "ｶｲｼﾞｮｳ",
        "kind": "MASS_VENUE",
        "municipality": municipality,
        "postalCode": "100-0001",
        "address": "東京都千代田区千代田1-1",
        "phone": "03-1234-5678",
        "coordinates": { "latitude": 35.68, "longitude": 139.75 },
        "coldChain": { "role": "BASE", "freezerClass": "ULTRA_COLD" },
        "delivery": { "receivingDays": ["MON", "WED"], "receivingHours": "09:00-17:00" },
        "products": ["comirnaty"]
    })
}

/// A valid medical site registration (NATIONAL registers these with the site's own code).
pub fn clinic_input(code: &str, municipality: &str, name: &str) -> Value {
    let mut v = venue_input(municipality, name);
    v["code"] = json!(code);
    v["kind"] = json!("CLINIC");
    v
}

pub const REGISTER: &str = "mutation($input: RegisterSiteInput!) { registerSite(input: $input) { code codeKind name kind status version municipality { code name } coldChain { role freezerClass baseSite } wholesaler products } }";

/// A file under `tests/fixtures`.
pub fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// The header line of a site-master CSV: `domain::sites::CSV_COLUMNS` in order.
pub fn csv_header() -> String {
    domain::sites::CSV_COLUMNS.join(",")
}

/// One line of a site-master CSV: a valid Chiyoda clinic (base site, ultra-cold freezer) with
/// `overrides` applied by column name. Every field is quoted.
pub fn csv_line(code: &str, overrides: &[(&str, &str)]) -> String {
    csv_fields(code, overrides).join(",")
}

/// The quoted fields of [`csv_line`], one per `domain::sites::CSV_COLUMNS` entry.
pub fn csv_fields(code: &str, overrides: &[(&str, &str)]) -> Vec<String> {
    let default = |column: &str| match column {
        "code" => code,
        "name" => "さくら内科クリニック",
        "name_kana" => "ｻｸﾗﾅｲｶｸﾘﾆｯｸ",
        "kind" => "CLINIC",
        "municipality_code" => "131016",
        "postal_code" => "100-0001",
        "address" => "東京都千代田区千代田1-1",
        "phone" => "03-1234-5678",
        "latitude" => "35.68",
        "longitude" => "139.75",
        "cold_chain_role" => "BASE",
        "freezer_class" => "ULTRA_COLD",
        "receiving_days" => "MON,WED",
        "receiving_hours" => "09:00-17:00",
        "wholesaler_id" => "suzuken",
        "products" => "comirnaty",
        "status" => "ACTIVE",
        _ => "",
    };
    domain::sites::CSV_COLUMNS
        .iter()
        .map(|column| {
            let value = overrides
                .iter()
                .find(|(c, _)| c == column)
                .map_or_else(|| default(column), |(_, v)| *v);
            format!("\"{}\"", value.replace('"', "\"\""))
        })
        .collect()
}

/// A medical (医科) site code in prefecture 13 with a valid check digit, from a serial.
pub fn tokyo_clinic_code(serial: u32) -> String {
    domain::codes::SiteCode::with_check_digit(&format!("131{serial:06}"))
        .expect("valid code")
        .to_string()
}

/// A GraphQL WebSocket client speaking graphql-transport-ws, as a browser would.
pub struct WsClient {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    next_id: u32,
}

/// How long a test waits for something that should happen promptly.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

impl WsClient {
    /// Connects, sends `connection_init` with the token (if any) and waits for the ack. An
    /// `Err` carries what the server said instead (a close frame or an error).
    pub async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<WsClient, String> {
        Self::connect_with(addr, token, None).await
    }

    /// As [`WsClient::connect`], with the client socket's receive buffer set to `recv_buffer`
    /// bytes (a small one makes a client that stops reading back up quickly).
    pub async fn connect_with(
        addr: SocketAddr,
        token: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<WsClient, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
        }
        let stream = socket.connect(addr).await.expect("connect");
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut client = WsClient { ws, next_id: 0 };
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match client.recv().await {
            Some(m) if m["type"] == "connection_ack" => Ok(client),
            Some(m) => Err(m.to_string()),
            None => Err("closed".into()),
        }
    }

    async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The next protocol message (answering pings), or `None` when the server closed; the
    /// close frame's code and reason come back as `{"type": "close", …}`. Panics after
    /// [`DEADLINE`].
    pub async fn recv(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a WebSocket message within the deadline");
            match msg {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON message");
                    if v["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(json!({
                        "type": "close",
                        "code": frame.as_ref().map(|f| u16::from(f.code)),
                        "reason": frame.as_ref().map(|f| f.reason.to_string()),
                    }));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Starts a subscription; returns its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
        id
    }

    /// Ends a subscription.
    pub async fn complete(&mut self, id: &str) {
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    /// The next message for subscription `id` (`next`, `error` or `complete`).
    pub async fn next_for(&mut self, id: &str) -> Value {
        loop {
            let m = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for subscription {id}"));
            if m["id"] == id || m["type"] == "close" {
                return m;
            }
        }
    }

    /// The `data` of the next event of subscription `id`; panics on anything else.
    pub async fn next_data(&mut self, id: &str) -> Value {
        let m = self.next_for(id).await;
        assert!(
            m["type"] == "next" && m["payload"].get("errors").is_none(),
            "expected an event on {id}, got {m}"
        );
        m["payload"]["data"].clone()
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Gives up the TCP connection without a close frame (a client that vanished).
    pub fn abandon(self) {
        drop(self);
    }
}

impl TestApp {
    /// A WebSocket client that passed `connection_init` with `token`.
    pub async fn ws(&self, token: &str) -> WsClient {
        WsClient::connect(self.addr, Some(token)).await.expect("connection_ack")
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Polls `/metrics` until `metric` (the exact series, e.g.
    /// `vsys_event_subscriptions{topic="stock"}`) equals `want`; panics after [`DEADLINE`].
    pub async fn wait_for_metric(&self, metric: &str, want: f64) {
        let start = std::time::Instant::now();
        loop {
            let text = self.metrics().await;
            let value = metric_value(&text, metric).unwrap_or(0.0);
            if value == want {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{metric} stayed at {value}, expected {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The value of one series in Prometheus text, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}
