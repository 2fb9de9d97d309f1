//! The wholesaler integration, black-box: wholesalers and customer codes set over GraphQL,
//! orders made by walking a real round, and outbox workers driven synchronously (run_once /
//! drain, a manual clock for backoff and leases) against a real local HTTP receiver and real
//! temporary directories. Success, retry, parking, replay, a crash between sending and
//! recording, two workers at once, held orders released by a new customer code, file drop,
//! pull with acknowledgements — on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use integrations::{Backoff, ManualClock, Worker, WorkerConfig};
use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token};

const CHIYODA: &str = "131016";
const SECRET: &str = "suzuken-signing-secret-0001";

/// A Chiyoda medical code 13-1-30-number with its check digit.
fn site_code(number: u32) -> String {
    domain::codes::SiteCode::with_check_digit(&format!("13130{number:04}"))
        .expect("code")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// A wholesaler's HTTP endpoint: records every request; answers from a script, then 200.

#[derive(Clone, Debug)]
struct Received {
    key: String,
    signature: String,
    body: Bytes,
}

#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    /// Never answers (the client's timeout ends the attempt).
    Hang,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    in_flight: HashMap<String, u32>,
    /// A key that arrived while a request with the same key was still being handled.
    overlaps: Vec<String>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .route("/orders", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/orders", self.addr)
    }

    fn script(&self, answers: &[Answer]) {
        self.state.lock().expect("lock").script.extend(answers.iter().cloned());
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    fn keys(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.key).collect()
    }

    fn overlaps(&self) -> Vec<String> {
        self.state.lock().expect("lock").overlaps.clone()
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = header("idempotency-key");
    let answer = {
        let mut s = state.lock().expect("lock");
        let n = s.in_flight.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            s.overlaps.push(key.clone());
        }
        s.received.push(Received {
            key: key.clone(),
            signature: header("x-vsys-signature"),
            body: body.clone(),
        });
        s.script.pop_front()
    };
    // Let other requests in while this one is "being handled".
    tokio::task::yield_now().await;
    let done = |state: &Arc<Mutex<ReceiverState>>| {
        if let Some(n) = state.lock().expect("lock").in_flight.get_mut(&key) {
            *n -= 1;
        }
    };
    match answer {
        Some(Answer::Hang) => std::future::pending().await,
        Some(Answer::Status(code, text)) => {
            done(&state);
            (StatusCode::from_u16(code).expect("status"), text.to_owned())
        }
        None => {
            done(&state);
            let reference = format!("R-{}", key.rsplit('-').next().unwrap_or_default());
            (StatusCode::OK, json!({ "reference": reference }).to_string())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setting the scene over GraphQL.

const REGISTER_WHOLESALER: &str = "mutation($id: WholesalerId!, $input: WholesalerInput!) { registerWholesaler(id: $id, input: $input) { id name area adapter endpoint version } }";
const SET_CODE: &str = "mutation($input: CustomerCodeInput!) { setCustomerCode(input: $input) { wholesaler site customerCode effectiveFrom effectiveTo version } }";
const IMPORT_CODES: &str = "mutation($csv: String!) { importCustomerCodes(csv: $csv) { inserted updated unchanged rejected { line column reason } } }";
const ORDERS: &str = "query($filter: OrderFilterInput) { orders(first: 100, filter: $filter) { edges { node { id site wholesaler status customerCode holdReason sentAt acknowledgedAt ackReference } } } }";
const OUTBOX: &str =
    "query { outbox(first: 500) { id aggregateKey idempotencyKey status attempts lastError nextAttemptAt } }";
const PARKED: &str = "query { parkedMessages { id aggregateKey destination status attempts lastError } }";
const REPLAY: &str = "mutation($id: Int!) { replayMessage(id: $id) { id status attempts } }";
const ACK: &str = "mutation($orders: [String!]!, $reference: String) { acknowledgeOrders(orders: $orders, reference: $reference) { acknowledged alreadyAcknowledged } }";

fn national() -> String {
    token("NATIONAL", None)
}

async fn push_wholesaler(app: &TestApp, id: &str, url: &str) {
    app.ok(
        &national(),
        REGISTER_WHOLESALER,
        json!({ "id": id, "input": { "name": format!("{id} 株式会社"), "area": ["13"], "adapter": "HTTP_PUSH", "endpoint": url, "secret": SECRET } }),
    )
    .await;
}

async fn simple_wholesaler(app: &TestApp, id: &str, adapter: &str) {
    app.ok(
        &national(),
        REGISTER_WHOLESALER,
        json!({ "id": id, "input": { "name": format!("{id} 株式会社"), "adapter": adapter } }),
    )
    .await;
}

async fn set_code(app: &TestApp, wholesaler: &str, site: &str, code: &str) {
    app.ok(
        &national(),
        SET_CODE,
        json!({ "input": { "wholesaler": wholesaler, "site": site, "customerCode": code, "effectiveFrom": "2021-01-01" } }),
    )
    .await;
}

/// Registers a Chiyoda clinic per `(number, wholesaler)` and walks a round down to them, one
/// box each: one order (and outbox message) per site. Returns the site codes and the round.
async fn orders_for(app: &TestApp, sites: &[(u32, &str)]) -> (Vec<String>, i64) {
    let n = national();
    let mut codes = Vec::new();
    for (number, wholesaler) in sites {
        let mut input = clinic_input(&site_code(*number), CHIYODA, &format!("クリニック{number}"));
        input["wholesaler"] = json!(wholesaler);
        let r = app.ok(&n, REGISTER, json!({ "input": input })).await;
        codes.push(r["registerSite"]["code"].as_str().expect("code").to_owned());
    }
    app.ok(
        &n,
        "mutation($csv: String!) { importTargetPopulation(csv: $csv) { imported } }",
        json!({ "csv": format!("municipality_code,population\n{CHIYODA},60000\n") }),
    )
    .await;
    let round = app
        .ok(
            &n,
            "mutation($input: CreateRoundInput!) { createRound(input: $input) { id } }",
            json!({ "input": { "product": "comirnaty", "number": 9, "startsOn": "2021-07-05", "supply": 1000 } }),
        )
        .await["createRound"]["id"]
        .as_i64()
        .expect("round");
    let propose =
        "mutation($round: Int!, $owner: AllocationOwner) { proposeAllocation(round: $round, owner: $owner) { id } }";
    let confirm =
        "mutation($round: Int!, $owner: AllocationOwner) { confirmAllocation(round: $round, owner: $owner) { id } }";
    for (t, owner) in [(n.clone(), "NATIONAL"), (token("PREFECTURE", Some("13")), "13")] {
        app.ok(&t, propose, json!({ "round": round, "owner": owner })).await;
        app.ok(&t, confirm, json!({ "round": round, "owner": owner })).await;
    }
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let lines: Vec<Value> = codes.iter().map(|c| json!({ "child": c, "boxes": 1 })).collect();
    app.ok(
        &chiyoda,
        "mutation($round: Int!, $lines: [AllocationLineInput!]!) { setAllocationLines(round: $round, lines: $lines) { id } }",
        json!({ "round": round, "lines": lines }),
    )
    .await;
    app.ok(&chiyoda, confirm, json!({ "round": round })).await;
    (codes, round)
}

fn config(drop_dir: &std::path::Path) -> WorkerConfig {
    WorkerConfig {
        batch: 100,
        lease: Duration::from_secs(60),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(40),
        },
        http_timeout: Duration::from_secs(5),
        concurrency: 8,
        drop_dir: drop_dir.to_owned(),
        poll_interval: Duration::from_millis(50),
        parallel: 2,
    }
}

fn store(app: &TestApp) -> domain::store::Store {
    app.running.as_ref().expect("running").store.clone()
}

/// A worker on a manual clock that starts now (after the orders were written).
fn worker(app: &TestApp, cfg: WorkerConfig) -> (Worker, Arc<ManualClock>) {
    let clock = ManualClock::new(chrono::Utc::now());
    let w = Worker::with_clock(store(app), cfg, clock.clone()).with_jitter(|| 0.5);
    (w, clock)
}

async fn orders(app: &TestApp, t: &str, filter: Value) -> Vec<Value> {
    app.ok(t, ORDERS, json!({ "filter": filter })).await["orders"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn order(app: &TestApp, id: &str) -> Value {
    orders(app, &national(), json!({}))
        .await
        .into_iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("no order {id}"))
}

async fn outbox(app: &TestApp) -> Vec<Value> {
    app.ok(&national(), OUTBOX, json!({})).await["outbox"]
        .as_array()
        .expect("outbox")
        .clone()
}

fn order_id(round: i64, site: &str) -> String {
    format!("{round}-{site}")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pushed_orders_are_translated_signed_and_acknowledged() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    let (sites, round) = orders_for(&app, &[(1, "suzuken"), (2, "suzuken")]).await;
    // Customer codes from CSV: two good rows, and bad ones reported line by line.
    let csv = format!(
        "wholesaler_id,site_code,customer_code,effective_from,effective_to\n\
         suzuken,{a},S-0001,2021-01-01,\n\
         suzuken,{b},S-0002,2021-01-01,\n\
         medipal,{a},M-1,2021-01-01,\n\
         suzuken,1311234560,S-9,2021-01-01,\n\
         suzuken,{c},S-9,2021-01-01,\n\
         suzuken,{a},S 1,2021-01-01,\n\
         suzuken,{b},S-3,2021-06-01,2021-05-01\n",
        a = sites[0],
        b = sites[1],
        c = site_code(99),
    );
    let report = app.ok(&national(), IMPORT_CODES, json!({ "csv": csv })).await["importCustomerCodes"].clone();
    assert_eq!(
        (report["inserted"].as_u64(), report["updated"].as_u64()),
        (Some(2), Some(0))
    );
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["column"].as_str().expect("column").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "wholesaler_id".to_owned()),
            (5, "site_code".to_owned()),
            (6, "site_code".to_owned()),
            (7, "customer_code".to_owned()),
            (8, "effective_to".to_owned()),
        ],
        "{report}"
    );
    let again = app.ok(&national(), IMPORT_CODES, json!({ "csv": csv })).await["importCustomerCodes"].clone();
    assert_eq!(again["unchanged"], 2, "a repeated import changes nothing");

    let tmp = tempfile::tempdir().expect("tmp");
    let (w, _) = worker(&app, config(tmp.path()));
    let r = w.drain().await.expect("drain");
    assert_eq!((r.claimed, r.delivered, r.retried, r.parked, r.held), (2, 2, 0, 0, 0));

    let got = rx.received();
    assert_eq!(got.len(), 2);
    for m in &got {
        let now = chrono::Utc::now().timestamp();
        integrations::signing::verify(SECRET.as_bytes(), &m.signature, &m.body, now, 300).expect("signature verifies");
        assert!(
            integrations::signing::verify(b"not-the-secret-at-all", &m.signature, &m.body, now, 300).is_err(),
            "another key does not verify"
        );
        let body: Value = serde_json::from_slice(&m.body).expect("json body");
        assert_eq!(body["type"], "order.created");
        assert_eq!(body["idempotencyKey"], m.key.as_str());
        let site = body["order"]["site"]["code"].as_str().expect("site");
        let want = if site == sites[0] { "S-0001" } else { "S-0002" };
        assert_eq!(body["customerCode"], want);
        assert_eq!(
            m.key,
            format!("order.created:{}", body["order"]["orderId"].as_str().expect("id"))
        );
        assert_eq!(body["order"]["items"][0]["boxes"], 1);
    }
    let o = order(&app, &order_id(round, &sites[0])).await;
    assert_eq!(o["status"], "ACKNOWLEDGED");
    assert_eq!(o["customerCode"], "S-0001");
    assert!(o["sentAt"].is_string() && o["acknowledgedAt"].is_string(), "{o}");
    assert_eq!(o["ackReference"], format!("R-{}", sites[0]));
    assert!(
        outbox(&app)
            .await
            .iter()
            .all(|m| m["status"] == "DELIVERED" && m["attempts"] == 1)
    );

    // Nothing is due any more: a second drain sends nothing.
    assert!(w.drain().await.expect("drain").is_idle());
    assert_eq!(rx.received().len(), 2);
    // The wholesaler sees its orders, its endpoint; another wholesaler sees neither.
    let own = token("WHOLESALER", Some("suzuken"));
    assert_eq!(orders(&app, &own, json!({ "status": "ACKNOWLEDGED" })).await.len(), 2);
    let q = "query { wholesaler(id: \"suzuken\") { id adapter endpoint area } }";
    assert_eq!(app.ok(&own, q, json!({})).await["wholesaler"]["endpoint"], rx.url());
    let other = app.ok(&token("WHOLESALER", Some("medipal")), q, json!({})).await;
    assert_eq!(other["wholesaler"]["endpoint"], Value::Null);
    assert_eq!(other["wholesaler"]["area"], json!(["13"]));
    // Metrics: deliveries per adapter and the queue gauges.
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("vsys_outbox_deliveries_total{adapter=\"HTTP_PUSH\"}"),
        "{text}"
    );
    assert!(text.contains("vsys_outbox_waiting"), "queue depth gauge");
    assert!(text.contains("vsys_outbox_oldest_age_seconds"), "oldest age gauge");
}

#[tokio::test]
async fn a_500_is_retried_after_the_backoff_and_the_resend_is_identical() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    let (sites, round) = orders_for(&app, &[(1, "suzuken")]).await;
    set_code(&app, "suzuken", &sites[0], "S-1").await;
    rx.script(&[Answer::Status(500, "try later")]);
    let tmp = tempfile::tempdir().expect("tmp");
    let (w, clock) = worker(&app, config(tmp.path()));

    let r = w.drain().await.expect("drain");
    assert_eq!((r.delivered, r.retried), (0, 1));
    let m = &outbox(&app).await[0];
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("PENDING"), Some(1))
    );
    assert_eq!(m["lastError"], "attempt 1: HTTP 500: try later");
    assert_eq!(order(&app, &order_id(round, &sites[0])).await["status"], "CREATED");

    // Not due before its backoff (10 s ceiling, jitter 0.5 → 7.5 s).
    clock.advance(Duration::from_secs(7));
    assert!(w.drain().await.expect("drain").is_idle(), "not due yet");
    clock.advance(Duration::from_secs(1));
    let r = w.drain().await.expect("drain");
    assert_eq!(r.delivered, 1);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].key, got[1].key, "the same idempotency key");
    assert_eq!(got[0].body, got[1].body, "the same body");
    assert_eq!(order(&app, &order_id(round, &sites[0])).await["status"], "ACKNOWLEDGED");
    assert_eq!(outbox(&app).await[0]["attempts"], 2);
}

#[tokio::test]
async fn refusals_and_garbage_are_parked_listed_in_scope_and_replayable() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    let (sites, round) = orders_for(&app, &[(1, "suzuken"), (2, "suzuken")]).await;
    for (i, s) in sites.iter().enumerate() {
        set_code(&app, "suzuken", s, &format!("S-{i}")).await;
    }
    rx.script(&[
        Answer::Status(400, "unknown customer"),
        Answer::Status(200, "<html>oops</html>"),
    ]);
    let tmp = tempfile::tempdir().expect("tmp");
    let (w, _) = worker(&app, config(tmp.path()));
    let r = w.drain().await.expect("drain");
    assert_eq!((r.delivered, r.parked), (0, 2));

    let parked = app.ok(&national(), PARKED, json!({})).await["parkedMessages"].clone();
    let parked = parked.as_array().expect("parked").clone();
    assert_eq!(parked.len(), 2);
    let errors: Vec<&str> = parked.iter().map(|p| p["lastError"].as_str().expect("error")).collect();
    assert!(
        errors.iter().any(|e| e.starts_with("HTTP 400: unknown customer")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("unreadable acknowledgement")),
        "{errors:?}"
    );
    for o in orders(&app, &national(), json!({})).await {
        assert_eq!(o["status"], "CREATED", "a parked order is not sent");
    }
    let own = token("WHOLESALER", Some("suzuken"));
    assert_eq!(
        app.ok(&own, PARKED, json!({})).await["parkedMessages"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let other = token("WHOLESALER", Some("medipal"));
    assert_eq!(app.ok(&other, PARKED, json!({})).await["parkedMessages"], json!([]));
    let (code, _) = app
        .err(Some(&token("MUNICIPALITY", Some(CHIYODA))), PARKED, json!({}))
        .await;
    assert_eq!(code, "FORBIDDEN");

    // The refused one named a wrong customer code: NATIONAL corrects it before the replay.
    let refused = parked
        .iter()
        .find(|p| p["lastError"].as_str().is_some_and(|e| e.starts_with("HTTP 400")))
        .expect("refused");
    let refused_site = refused["aggregateKey"]
        .as_str()
        .expect("key")
        .rsplit('-')
        .next()
        .expect("site")
        .to_owned();
    set_code(&app, "suzuken", &refused_site, "S-FIXED").await;

    // Another wholesaler cannot replay them (not revealed); the owner can, once.
    let id = refused["id"].as_i64().expect("id");
    let (code, _) = app.err(Some(&other), REPLAY, json!({ "id": id })).await;
    assert_eq!(code, "NOT_FOUND");
    let replayed = app.ok(&own, REPLAY, json!({ "id": id })).await["replayMessage"].clone();
    assert_eq!(
        (replayed["status"].as_str(), replayed["attempts"].as_i64()),
        (Some("PENDING"), Some(0))
    );
    let (code, message) = app.err(Some(&own), REPLAY, json!({ "id": id })).await;
    assert_eq!(code, "CONFLICT", "{message}");
    let other_id = parked
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .find(|i| *i != id)
        .expect("other");
    app.ok(&national(), REPLAY, json!({ "id": other_id })).await;

    let r = w.drain().await.expect("drain");
    assert_eq!(r.delivered, 2);
    for s in &sites {
        assert_eq!(order(&app, &order_id(round, s)).await["status"], "ACKNOWLEDGED");
    }
    assert_eq!(
        app.ok(&national(), PARKED, json!({})).await["parkedMessages"],
        json!([])
    );
    let keys = rx.keys();
    assert_eq!(keys.len(), 4, "each sent twice: refused or garbled, then replayed");
    let resent = rx
        .received()
        .into_iter()
        .rev()
        .find(|r| r.key.ends_with(&refused_site))
        .expect("resent");
    let body: Value = serde_json::from_slice(&resent.body).expect("json");
    assert_eq!(body["customerCode"], "S-FIXED", "the replay carries the corrected code");
}

#[tokio::test]
async fn a_partner_that_is_down_or_slow_is_retried_then_parked() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    // A port nobody listens on: bind, note it, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    push_wholesaler(&app, "suzuken", &format!("http://{dead}/orders")).await;
    push_wholesaler(&app, "medipal", &rx.url()).await;
    let (sites, round) = orders_for(&app, &[(1, "suzuken"), (2, "medipal")]).await;
    set_code(&app, "suzuken", &sites[0], "S-1").await;
    set_code(&app, "medipal", &sites[1], "M-1").await;
    rx.script(&[Answer::Hang, Answer::Hang, Answer::Hang]);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config(tmp.path());
    cfg.http_timeout = Duration::from_millis(300);
    let (w, clock) = worker(&app, cfg);
    for attempt in 1..=3 {
        let r = w.drain().await.expect("drain");
        assert_eq!(r.claimed, 2, "attempt {attempt}");
        clock.advance(Duration::from_secs(41));
    }
    let parked = app.ok(&national(), PARKED, json!({})).await["parkedMessages"].clone();
    let errors: Vec<String> = parked
        .as_array()
        .expect("parked")
        .iter()
        .map(|p| p["lastError"].as_str().expect("error").to_owned())
        .collect();
    assert_eq!(errors.len(), 2, "{parked}");
    assert!(
        errors.iter().all(|e| e.starts_with("gave up after 3 attempts")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("could not connect")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("timed out")), "{errors:?}");
    assert!(
        w.drain().await.expect("drain").is_idle(),
        "parked messages are not retried"
    );
    for s in &sites {
        assert_eq!(order(&app, &order_id(round, s)).await["status"], "CREATED");
    }
}

#[tokio::test]
async fn a_crash_between_sending_and_recording_resends_with_the_same_key() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    let (sites, round) = orders_for(&app, &[(1, "suzuken")]).await;
    set_code(&app, "suzuken", &sites[0], "S-1").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (crashing, clock) = worker(&app, config(tmp.path()));
    // The first worker claims and sends, then "dies" before recording the outcome.
    let claim = crashing.claim().await.expect("claim");
    assert_eq!(claim.ready.len(), 1);
    let sent = crashing.send(&claim).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(outbox(&app).await[0]["status"], "PENDING");

    // Another worker on the same clock: nothing due while the lease lasts …
    let survivor = Worker::with_clock(store(&app), config(tmp.path()), clock.clone());
    assert!(survivor.drain().await.expect("drain").is_idle(), "leased");
    // … and after it, the message goes again with the same key and body.
    clock.advance(Duration::from_secs(61));
    assert_eq!(survivor.drain().await.expect("drain").delivered, 1);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!((&got[0].key, &got[0].body), (&got[1].key, &got[1].body));
    assert_eq!(got[0].key, format!("order.created:{}", order_id(round, &sites[0])));
    // The dead worker's late outcome no longer counts: the lease is not its own.
    let late = crashing.record(sent).await.expect("record");
    assert_eq!((late.delivered, late.stale), (0, 1));
    let m = &outbox(&app).await[0];
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("DELIVERED"), Some(2))
    );
    assert_eq!(order(&app, &order_id(round, &sites[0])).await["status"], "ACKNOWLEDGED");
}

#[tokio::test]
async fn two_workers_at_once_never_send_a_message_twice() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    let numbers: Vec<(u32, &str)> = (1..=24).map(|n| (n, "suzuken")).collect();
    let (sites, _) = orders_for(&app, &numbers).await;
    let csv: String = std::iter::once("wholesaler_id,site_code,customer_code,effective_from\n".to_owned())
        .chain(
            sites
                .iter()
                .enumerate()
                .map(|(i, s)| format!("suzuken,{s},S-{i},2021-01-01\n")),
        )
        .collect();
    app.ok(&national(), IMPORT_CODES, json!({ "csv": csv })).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config(tmp.path());
    cfg.batch = 5;
    // On PostgreSQL the second worker has a connection pool of its own, like another instance;
    // SQLite is one process per file, so both share the store (and its writer lock).
    let second_store = if app.db.is_postgres() {
        domain::store::Store::new(api::db::connect(&app.db.url).await.expect("connect"))
    } else {
        store(&app)
    };
    let clock = ManualClock::new(chrono::Utc::now());
    let a = Worker::with_clock(store(&app), cfg.clone(), clock.clone());
    let b = Worker::with_clock(second_store, cfg, clock.clone());
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(ra.delivered + rb.delivered, 24, "{ra:?} {rb:?}");
    let mut keys = rx.keys();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!((before, keys.len()), (24, 24), "every message exactly once");
    assert!(rx.overlaps().is_empty(), "no key was in flight twice");
    assert!(
        outbox(&app)
            .await
            .iter()
            .all(|m| m["status"] == "DELIVERED" && m["attempts"] == 1)
    );
}

#[tokio::test]
async fn held_orders_are_released_by_a_new_customer_code_or_configuration() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    push_wholesaler(&app, "suzuken", &rx.url()).await;
    // alfresa is not registered yet; suzuken knows site 1 but not site 2.
    let (sites, round) = orders_for(&app, &[(1, "suzuken"), (2, "suzuken"), (3, "alfresa")]).await;
    set_code(&app, "suzuken", &sites[0], "S-1").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (w, _) = worker(&app, config(tmp.path()));
    let r = w.drain().await.expect("drain");
    assert_eq!((r.delivered, r.held), (1, 2));
    let held = order(&app, &order_id(round, &sites[1])).await;
    assert_eq!(held["status"], "HELD");
    assert_eq!(
        held["holdReason"],
        format!("NO_CUSTOMER_CODE: suzuken has no customer code for site {}", sites[1])
    );
    let unconfigured = order(&app, &order_id(round, &sites[2])).await;
    assert_eq!(unconfigured["status"], "HELD");
    assert!(
        unconfigured["holdReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("NO_WHOLESALER_CONFIGURATION")),
        "{unconfigured}"
    );
    let statuses: Vec<String> = outbox(&app)
        .await
        .iter()
        .map(|m| m["status"].as_str().expect("status").to_owned())
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "HELD").count(), 2);
    assert!(w.drain().await.expect("drain").is_idle(), "held messages wait");
    assert_eq!(rx.received().len(), 1, "never sent with a guessed code");

    // A customer code that starts later keeps it waiting, with the date in the reason.
    let later = app
        .ok(
            &national(),
            SET_CODE,
            json!({ "input": { "wholesaler": "suzuken", "site": sites[1], "customerCode": "S-2", "effectiveFrom": "2099-01-01" } }),
        )
        .await;
    assert_eq!(later["setCustomerCode"]["version"], 1);
    w.drain().await.expect("drain");
    let waiting = order(&app, &order_id(round, &sites[1])).await;
    assert!(
        waiting["holdReason"]
            .as_str()
            .is_some_and(|r| r.contains("takes effect on 2099-01-01")),
        "{waiting}"
    );
    assert_eq!(rx.received().len(), 1);

    // The code valid today arrives: released and sent with it.
    set_code(&app, "suzuken", &sites[1], "S-2-NOW").await;
    let r = w.drain().await.expect("drain");
    assert_eq!(r.delivered, 1);
    let body: Value = serde_json::from_slice(&rx.received()[1].body).expect("json");
    assert_eq!(body["customerCode"], "S-2-NOW");
    let released = order(&app, &order_id(round, &sites[1])).await;
    assert_eq!(
        (released["status"].as_str(), released["holdReason"].as_str()),
        (Some("ACKNOWLEDGED"), None)
    );

    // Configuring alfresa (as a pull wholesaler) releases its order; it is then held for its
    // customer code, and sent once that arrives.
    simple_wholesaler(&app, "alfresa", "PULL").await;
    let r = w.drain().await.expect("drain");
    assert_eq!(r.held, 1);
    let o = order(&app, &order_id(round, &sites[2])).await;
    assert!(
        o["holdReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("NO_CUSTOMER_CODE")),
        "{o}"
    );
    set_code(&app, "alfresa", &sites[2], "A-3").await;
    assert_eq!(w.drain().await.expect("drain").delivered, 1);
    let o = order(&app, &order_id(round, &sites[2])).await;
    assert_eq!(
        (o["status"].as_str(), o["customerCode"].as_str()),
        (Some("SENT"), Some("A-3"))
    );
}

#[tokio::test]
async fn file_drop_writes_one_csv_per_wholesaler_per_batch_atomically() {
    let app = TestApp::spawn().await;
    simple_wholesaler(&app, "alfresa", "FILE_DROP").await;
    simple_wholesaler(&app, "toho", "FILE_DROP").await;
    let (sites, round) = orders_for(&app, &[(1, "alfresa"), (2, "alfresa"), (3, "toho")]).await;
    for (s, w) in sites.iter().zip(["alfresa", "alfresa", "toho"]) {
        set_code(&app, w, s, &format!("{w}-{s}")).await;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (w, _) = worker(&app, config(tmp.path()));
    let r = w.drain().await.expect("drain");
    assert_eq!(r.delivered, 3);
    let files = |wholesaler: &str| -> Vec<std::path::PathBuf> {
        let mut f: Vec<_> = std::fs::read_dir(tmp.path().join(wholesaler))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        f.sort();
        f
    };
    let alfresa = files("alfresa");
    assert_eq!(
        alfresa.len(),
        1,
        "one file per wholesaler per batch, no temporary left: {alfresa:?}"
    );
    assert_eq!(files("toho").len(), 1);
    let name = alfresa[0].file_name().expect("name").to_string_lossy().into_owned();
    assert!(name.starts_with("orders-") && name.ends_with(".csv"), "{name}");
    let mut reader = csv::Reader::from_path(&alfresa[0]).expect("csv");
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(header, integrations::adapters::file_drop::COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    // Each order: the vaccine line and its two ancillaries (needle, syringe).
    assert_eq!(rows.len(), 6);
    let at = |name: &str| header.iter().position(|h| h == name).expect("column");
    let vaccine: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[at("item_kind")] == "VACCINE").collect();
    assert_eq!(vaccine.len(), 2);
    assert_eq!(&vaccine[0][at("customer_code")], format!("alfresa-{}", sites[0]));
    assert_eq!(&vaccine[0][at("order_id")], order_id(round, &sites[0]));
    assert_eq!(&vaccine[0][at("boxes")], "1");

    // The wholesaler acknowledges what it read; a repeat is harmless; others are refused.
    let alfresa_t = token("WHOLESALER", Some("alfresa"));
    let sent: Vec<String> = orders(&app, &alfresa_t, json!({ "status": "SENT" }))
        .await
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(sent.len(), 2);
    let ack = app
        .ok(&alfresa_t, ACK, json!({ "orders": sent, "reference": "ALF-20261127" }))
        .await["acknowledgeOrders"]
        .clone();
    assert_eq!(ack["acknowledged"].as_array().map(Vec::len), Some(2));
    let again = app.ok(&alfresa_t, ACK, json!({ "orders": [sent[0]] })).await["acknowledgeOrders"].clone();
    assert_eq!(again, json!({ "acknowledged": [], "alreadyAcknowledged": [sent[0]] }));
    let o = order(&app, &sent[0]).await;
    assert_eq!(
        (o["status"].as_str(), o["ackReference"].as_str()),
        (Some("ACKNOWLEDGED"), Some("ALF-20261127"))
    );
    let toho_order = order_id(round, &sites[2]);
    let (code, _) = app.err(Some(&alfresa_t), ACK, json!({ "orders": [toho_order] })).await;
    assert_eq!(code, "NOT_FOUND", "another wholesaler's order is not revealed");
    let (code, _) = app.err(Some(&national()), ACK, json!({ "orders": [toho_order] })).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        order(&app, &toho_order).await["status"],
        "SENT",
        "refusals changed nothing"
    );
}

#[tokio::test]
async fn pull_wholesalers_read_their_pending_orders_and_acknowledge_them() {
    let app = TestApp::spawn().await;
    simple_wholesaler(&app, "alfresa", "PULL").await;
    let (sites, round) = orders_for(&app, &[(1, "alfresa"), (2, "alfresa")]).await;
    set_code(&app, "alfresa", &sites[0], "A-1").await;
    let me = token("WHOLESALER", Some("alfresa"));
    assert!(
        orders(&app, &me, json!({ "status": "SENT" })).await.is_empty(),
        "nothing published yet"
    );
    let (code, message) = app
        .err(Some(&me), ACK, json!({ "orders": [order_id(round, &sites[0])] }))
        .await;
    assert_eq!(code, "CONFLICT", "not sent yet: {message}");

    let tmp = tempfile::tempdir().expect("tmp");
    let (w, _) = worker(&app, config(tmp.path()));
    let r = w.drain().await.expect("drain");
    assert_eq!((r.delivered, r.held), (1, 1));
    let pending = orders(&app, &me, json!({ "status": "SENT" })).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["customerCode"], "A-1");
    let id = pending[0]["id"].as_str().expect("id").to_owned();
    let ack = app.ok(&me, ACK, json!({ "orders": [id] })).await["acknowledgeOrders"].clone();
    assert_eq!(ack["acknowledged"], json!([id]));
    let dup = app.ok(&me, ACK, json!({ "orders": [id, id] })).await["acknowledgeOrders"].clone();
    assert_eq!(dup, json!({ "acknowledged": [], "alreadyAcknowledged": [id] }));
    assert!(orders(&app, &me, json!({ "status": "SENT" })).await.is_empty());
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "ACKNOWLEDGED");
    // All or nothing: one order not yet sent refuses the whole acknowledgement.
    let held = order_id(round, &sites[1]);
    let (code, _) = app.err(Some(&me), ACK, json!({ "orders": [id, held] })).await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(order(&app, &held).await["status"], "HELD");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let n = national();
    let (sites, _) = orders_for(&app, &[(1, "suzuken")]).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "name": "x", "adapter": "HTTP_PUSH", "endpoint": "ftp://x", "secret": SECRET }),
            "input.endpoint",
        ),
        (
            json!({ "name": "x", "adapter": "HTTP_PUSH", "endpoint": "https://x.example" }),
            "input.secret",
        ),
        (
            json!({ "name": "x", "adapter": "HTTP_PUSH", "endpoint": "https://x.example", "secret": "short" }),
            "input.secret",
        ),
        (json!({ "name": "", "adapter": "PULL" }), "input.name"),
        (json!({ "name": "x", "adapter": "PULL", "area": ["99"] }), "input.area"),
        (
            json!({ "name": "x", "adapter": "PULL", "endpoint": "https://x.example" }),
            "input.endpoint",
        ),
    ];
    for (input, field) in cases {
        let (code, message) = app
            .err(
                Some(&n),
                REGISTER_WHOLESALER,
                json!({ "id": "suzuken", "input": input }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{input}: {message}");
        assert!(message.starts_with(field), "{field} not named in {message:?}");
    }
    let (code, message) = app
        .err(
            Some(&n),
            REGISTER_WHOLESALER,
            json!({ "id": "Suzuken", "input": { "name": "x", "adapter": "PULL" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("WholesalerId"), "{message}");
    let (code, _) = app
        .err(
            Some(&token("WHOLESALER", Some("suzuken"))),
            REGISTER_WHOLESALER,
            json!({ "id": "suzuken", "input": { "name": "x", "adapter": "PULL" } }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        app.ok(&n, "{ wholesalers { id } }", json!({})).await["wholesalers"],
        json!([])
    );

    simple_wholesaler(&app, "suzuken", "PULL").await;
    let code_input = |site: &str, code: &str, to: Option<&str>| json!({ "input": { "wholesaler": "suzuken", "site": site, "customerCode": code, "effectiveFrom": "2021-04-01", "effectiveTo": to } });
    let cases = [
        (code_input(&sites[0], "S 1", None), "input.customerCode"),
        (code_input(&sites[0], "S-1", Some("2021-03-01")), "input.effectiveTo"),
        (code_input(&site_code(99), "S-1", None), "input.site"),
    ];
    for (vars, field) in cases {
        let (code, message) = app.err(Some(&n), SET_CODE, vars.clone()).await;
        assert_eq!(code, "BAD_USER_INPUT", "{vars}: {message}");
        assert!(message.starts_with(field), "{field} not named in {message:?}");
    }
    let mut unknown = code_input(&sites[0], "S-1", None);
    unknown["input"]["wholesaler"] = json!("medipal");
    let (_, message) = app.err(Some(&n), SET_CODE, unknown).await;
    assert!(message.starts_with("input.wholesaler"), "{message}");
    let (code, message) = app.err(Some(&n), SET_CODE, code_input("1312020018", "S-1", None)).await;
    assert_eq!(
        code, "BAD_USER_INPUT",
        "a bad check digit is refused by the scalar: {message}"
    );
    let (code, _) = app
        .err(
            Some(&token("WHOLESALER", Some("suzuken"))),
            SET_CODE,
            code_input(&sites[0], "S-1", None),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "only NATIONAL edits customer codes");
    let list = "query { customerCodes(wholesaler: \"suzuken\") { site customerCode } }";
    assert_eq!(
        app.ok(&n, list, json!({})).await["customerCodes"],
        json!([]),
        "nothing stored"
    );
    let (code, _) = app
        .err(Some(&token("WHOLESALER", Some("medipal"))), list, json!({}))
        .await;
    assert_eq!(code, "FORBIDDEN", "another wholesaler's customer codes");
    let (code, message) = app
        .err(
            Some(&n),
            IMPORT_CODES,
            json!({ "csv": "wholesaler_id,site_code\nsuzuken,x\n" }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        message.starts_with("csv: header lacks column(s) customer_code, effective_from"),
        "{message}"
    );
}
