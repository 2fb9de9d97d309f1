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

/// The configuration test servers start with: port 0, the test secret, Redis when
/// `TEST_REDIS_URL` is set (with keys and channels under a prefix of their own, so parallel
/// tests never see each other's cache generations or events), and public rate limiting off
/// (the tests of limiting turn it on).
pub fn test_config(db: &TestDb) -> ServerConfig {
    static N: AtomicU64 = AtomicU64::new(0);
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: db.url.clone(),
        redis_url: std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()),
        auth: test_auth(),
        max_body_bytes: 32 * 1024 * 1024,
        public: api::public::PublicSettings {
            rate_per_second: 0.0,
            redis_prefix: format!(
                "vsys-test:{}:{}:{}:",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                chrono::Utc::now().timestamp_micros()
            ),
            ..Default::default()
        },
        // Tests drive outbox workers themselves (synchronously), never in the background.
        outbox_worker: None,
    }
}

/// A running server on a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = TestDb::new().await;
        Self::spawn_on(db).await
    }

    pub async fn spawn_on(db: TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    /// As [`TestApp::spawn_on`], with the configuration adjusted first (e.g. public limits).
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let mut cfg = test_config(&db);
        adjust(&mut cfg);
        let running = api::server::start(cfg).await.expect("server starts");
        TestApp {
            addr: running.addr,
            client: reqwest::Client::new(),
            running: Some(running),
            db,
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
