//! Operations: health and readiness, Prometheus metrics, GraphiQL, request limits (body size,
//! depth), error codes for broken queries, and graceful shutdown with a request in flight.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{TestApp, TestDb, csv_header, csv_line, token, tokyo_clinic_code};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMPORT: &str =
    "mutation($csv: String!) { importSites(csv: $csv) { inserted updated unchanged rejected { line } } }";
const COUNT: &str = "{ sites(first: 1) { totalCount } }";

/// A valid CSV of `n` Chiyoda clinics.
fn clinics_csv(n: u32) -> String {
    let mut s = csv_header();
    for i in 1..=n {
        s.push('\n');
        s.push_str(&csv_line(&tokyo_clinic_code(i), &[]));
    }
    s.push('\n');
    s
}

async fn total(app: &TestApp) -> u64 {
    app.ok(&token("NATIONAL", None), COUNT, json!({})).await["sites"]["totalCount"]
        .as_u64()
        .expect("count")
}

async fn get(app: &TestApp, path: &str) -> (u16, String, String) {
    let resp = app.client.get(app.url(path)).send().await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.text().await.expect("body"))
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let (status, _, body) = get(&app, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, content_type, body) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    let redis = std::env::var("TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    assert_eq!(
        ready,
        json!({ "ready": true, "database": true, "redis": if redis { json!(true) } else { Value::Null } })
    );
}

/// The value of the sample line starting with `prefix` (labels included), or 0.
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().expect("a number"))
}

#[tokio::test]
async fn metrics_count_named_operations_http_requests_and_the_pool() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let ok_sample = r#"vsys_graphql_requests_total{operation="ListSites",outcome="ok"}"#;
    let (_, _, before) = get(&app, "/metrics").await;
    let was = sample(&before, ok_sample);

    let q = "query ListSites { sites(first: 5) { totalCount } }";
    assert_eq!(app.ok(&n, q, json!({})).await["sites"]["totalCount"], 0);
    assert_eq!(app.ok(&n, q, json!({})).await["sites"]["totalCount"], 0);

    let (status, content_type, text) = get(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        text.contains(r#"vsys_graphql_requests_total{operation="ListSites""#),
        "{text}"
    );
    assert_eq!(
        sample(&text, ok_sample),
        was + 2.0,
        "two ListSites requests counted: {text}"
    );
    for name in [
        r#"vsys_graphql_request_duration_seconds_bucket{operation="ListSites""#,
        r#"vsys_graphql_request_duration_seconds_count{operation="ListSites"}"#,
        r#"vsys_http_requests_total{route="/graphql",status="200"}"#,
        r#"vsys_http_requests_total{route="/metrics",status="200"}"#,
        "vsys_db_pool_connections ",
        "vsys_db_pool_idle_connections ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    assert!(sample(&text, "vsys_db_pool_connections ") >= 1.0, "{text}");
    // Every non-comment line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let value = line.rsplit(' ').next().expect("value");
        assert!(value.parse::<f64>().is_ok(), "not Prometheus text: {line}");
    }

    // Free-text operation names never become labels.
    let q = "query 山田太郎 { sites(first: 1) { totalCount } }";
    let (_, body) = app.post(Some(&n), q, json!({})).await;
    let (_, _, text) = get(&app, "/metrics").await;
    assert!(!text.contains("山田太郎"), "{body}\n{text}");
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    let app = TestApp::spawn().await;
    let (status, content_type, body) = get(&app, "/graphql").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.to_lowercase().contains("graphiql"), "{body}");
    assert!(
        body.contains("/graphql/ws"),
        "points subscriptions at the WebSocket endpoint"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_stores_nothing() {
    const LIMIT: usize = 64 * 1024;
    let app = TestApp::spawn_with(TestDb::new().await, |cfg| cfg.max_body_bytes = LIMIT).await;
    let n = token("NATIONAL", None);

    let small = clinics_csv(20);
    assert!(small.len() < LIMIT / 2);
    assert_eq!(
        app.ok(&n, IMPORT, json!({ "csv": small })).await["importSites"]["inserted"],
        20
    );

    let big = clinics_csv(600);
    assert!(big.len() > 2 * LIMIT, "{}", big.len());
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&n)
        .json(&json!({ "query": IMPORT, "variables": { "csv": big } }))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 413, "{}", &body[..body.len().min(300)]);
    assert_eq!(total(&app).await, 20, "the refused import stored nothing");
}

#[tokio::test]
async fn broken_and_invalid_queries_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let cases = [
        ("{ sites(first: 1 { totalCount } }", "syntax"),
        ("{ me { role }", "unclosed"),
        ("{ nope }", "unknown field"),
        ("{ sites(first: 1) { totalCount bogus } }", "unknown field"),
        ("{ sites(last: 1) { totalCount } }", "unknown argument"),
        ("query($f: Int) { sites(first: $f) { totalCount } }", "bad variable"),
    ];
    for (q, what) in cases {
        let vars = if what == "bad variable" {
            json!({ "f": "ten" })
        } else {
            json!({})
        };
        let (code, message) = app.err(Some(&n), q, vars).await;
        assert_eq!(code, "BAD_USER_INPUT", "{what}: {q}: {message}");
        assert!(!message.is_empty());
    }
}

/// The server keeps parsed documents by their text (`server::ParsedQueries`); every request must
/// still be answered by its own text, operation, variables and token, and a refused document is
/// refused again the same way.
#[tokio::test]
async fn repeated_queries_are_answered_by_their_own_text_variables_and_token() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let site = token("SITE", Some(&tokyo_clinic_code(1)));
    let me = "{ me { role } }";
    for _ in 0..2 {
        assert_eq!(app.ok(&n, me, json!({})).await, json!({ "me": { "role": "NATIONAL" } }));
        // Same text, another caller: the caller is not part of what is kept.
        assert_eq!(app.ok(&site, me, json!({})).await["me"]["role"], "SITE");
        // A text differing by one field gets its own document.
        assert_eq!(
            app.ok(&site, "{ me { role scope } }", json!({})).await["me"],
            json!({ "role": "SITE", "scope": tokyo_clinic_code(1) })
        );
    }
    // A bad token is refused whatever the document.
    let (status, body) = app.post(Some("not-a-token"), me, json!({})).await;
    assert_eq!(status, 401, "{body}");

    // One document, two operations: each request runs the one it names.
    let two = "query Me { me { role } } query Count { sites(first: 1) { totalCount } }";
    let named = |op: &str| json!({ "query": two, "operationName": op });
    for _ in 0..2 {
        for (op, key) in [("Me", "me"), ("Count", "sites"), ("Me", "me")] {
            let body: Value = app
                .client
                .post(app.url("/graphql"))
                .bearer_auth(&n)
                .json(&named(op))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("JSON");
            assert!(body.get("errors").is_none(), "{op}: {body}");
            let data = body["data"].as_object().expect("data");
            assert_eq!(data.keys().collect::<Vec<_>>(), vec![key], "{op}: {body}");
        }
    }

    // Validation runs for every request: the same text with good, bad, then good variables.
    let q = "query($f: Int) { sites(first: $f) { totalCount } }";
    assert_eq!(app.ok(&n, q, json!({ "f": 1 })).await["sites"]["totalCount"], 0);
    let (code, _) = app.err(Some(&n), q, json!({ "f": "ten" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(app.ok(&n, q, json!({ "f": 2 })).await["sites"]["totalCount"], 0);

    // A document that does not parse, or does not validate, is refused each time alike.
    for bad in ["{ me { role }", "{ me { role nope } }"] {
        let first = app.err(Some(&n), bad, json!({})).await;
        assert_eq!(first.0, "BAD_USER_INPUT", "{bad}: {first:?}");
        assert_eq!(app.err(Some(&n), bad, json!({})).await, first, "{bad}");
    }
}

/// `{ __schema { types { fields { type { ofType { … name } } } } } }` nested `depth` fields deep.
fn nested(depth: usize) -> String {
    assert!(depth >= 5);
    let of_type = depth - 5;
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(of_type),
        " }".repeat(of_type)
    )
}

#[tokio::test]
async fn queries_nested_deeper_than_twelve_are_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post(None, &nested(12), json!({})).await;
    assert!(
        status == 200 && body.get("errors").is_none(),
        "depth 12 is allowed: {body}"
    );
    assert!(
        body["data"]["__schema"]["types"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    let (code, message) = app.err(None, &nested(13), json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    assert!(message.contains("nested too deep"), "{message}");
    let (code, _) = app.err(None, &nested(40), json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

/// Reads from `stream` until `\r\n\r\n` and returns the head.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read");
        assert!(n == 1, "connection closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ASCII head")
}

#[tokio::test]
async fn graceful_stop_finishes_an_in_flight_request() {
    const ROWS: u32 = 3000;
    let mut app = TestApp::spawn().await;
    let addr = app.addr;
    let body =
        serde_json::to_vec(&json!({ "query": IMPORT, "variables": { "csv": clinics_csv(ROWS) } })).expect("json");

    // Send the head only, with `Expect: 100-continue`: the `100 Continue` proves the server has
    // the request and its handler is reading the body.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        token("NATIONAL", None),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let interim = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .expect("100 Continue in time");
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    let running = app.running.take().expect("running");
    let stopper = tokio::spawn(running.stop());

    // Shutdown has begun once new connections are refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting after stop()");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!stopper.is_finished(), "stop() returned with a request in flight");

    stream.write_all(&body).await.expect("write body");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, json_body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: Value = serde_json::from_str(json_body).expect("a JSON body (not chunked)");
    assert_eq!(v["data"]["importSites"]["inserted"], ROWS, "{v}");

    tokio::time::timeout(Duration::from_secs(30), stopper)
        .await
        .expect("stop() finishes once the request is done")
        .expect("join")
        .expect("graceful stop");

    // The import was committed: a new server on the same database sees it.
    let again = TestApp::spawn_on(app.db).await;
    assert_eq!(total(&again).await, u64::from(ROWS));
}
