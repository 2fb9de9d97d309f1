//! Dose records through GraphQL: the stock a dose takes (a vial opened, then doses drawn from
//! it), idempotent retries and reused keys, each conflict, the municipality's interval
//! override, batches with mixed records and oversized batches, voids that give stock back,
//! amendments that keep versions, leftover doses, who sees what, and the counts.
//!
//! Persons are inserted through the domain's entity (the persons import is another helper's
//! work); everything else goes through the real server.

use chrono::NaiveDate;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::{Value, json};
use tests::{TestApp, WsClient, token};

use super::stock::{CHIYODA, SHINJUKU, Sites, assert_reconciled, day, receive, seed, today};

const RECORD: &str = "fragment R on DoseRecord { id personId municipality couponNumber doseNumber administeredOn product lot site doctorName capture status intervalOverride overrideReason vialEntry openedVial recordedBySite recordedAt recordedBy version changedBy changeReason }
mutation($input: DoseInput!) { recordDose(input: $input) { created record { ...R } stockChanges { entryId kind quantity onHand lot } } }";
const BATCH: &str = "mutation($records: [DoseInput!]!) { recordDoses(records: $records) { created failed results { index ok created record { id doseNumber openedVial vialEntry } error { code reason field message } } stockChanges { entryId kind onHand } } }";
const LOTS: &str = "query($site: SiteCode!) { lotDoses(site: $site) { product lot onHand openDoses dosesPerVial availableDoses openVialEntry } }";
const STOCK: &str = "query($site: SiteCode!) { stock(site: $site, includeEmpty: true) { lot onHand administered } }";
const VOID: &str = "mutation($id: ID!, $reason: String!) { voidDoseRecord(id: $id, reason: $reason) { record { id status version changeReason changedBy } stockChanges { kind quantity onHand lot } } }";
const AMEND: &str = "mutation($id: ID!, $changes: AmendDoseInput!, $reason: String!) { amendDoseRecord(id: $id, changes: $changes, reason: $reason) { record { id lot administeredOn version changeReason vialEntry openedVial intervalOverride versions { version lot administeredOn madeBy reason status intervalOverride } } stockChanges { kind quantity onHand lot } } }";
const RECORDS: &str = "query($coupon: String, $voided: Boolean = false) { doseRecords(couponNumber: $coupon, includeVoided: $voided, first: 100) { edges { node { id doseNumber site status } } } }";
const ONE: &str = "query($id: ID!) { doseRecord(id: $id) { id doseNumber lot status version } }";
const RECORD_ONE: &str = "query($id: ID!) { doseRecord(id: $id) { id intervalOverride } }";
const COUNTS: &str = "query($from: NaiveDate!, $to: NaiveDate!, $by: [DoseCountBy!] = [], $m: MunicipalityCode, $p: PrefectureCode) { doseCounts(from: $from, to: $to, by: $by, municipality: $m, prefecture: $p) { day municipality prefecture product doseNumber doses } }";
const ALLOW: &str = "mutation($m: MunicipalityCode!, $c: String!, $n: Int!, $reason: String!) { allowEarlyDose(municipality: $m, couponNumber: $c, doseNumber: $n, reason: $reason) { id doseNumber reason createdBy } }";
const LEFTOVER: &str = "mutation($site: SiteCode!, $lot: LotNumber!) { writeOffLeftoverDoses(site: $site, product: \"comirnaty\", lot: $lot) { doses vialEntry occurredOn recordedBy } }";
const LEFTOVERS: &str = "query($site: SiteCode!, $from: NaiveDate!, $to: NaiveDate!) { doseLeftovers(site: $site, from: $from, to: $to) { site product lot doses vialEntry occurredOn recordedBy } }";

/// Inserts a resident of `municipality` and returns their coupon number.
async fn person(app: &TestApp, municipality: &str, serial: u64, moved_out_on: Option<NaiveDate>) -> String {
    person_row(app, municipality, serial, moved_out_on, None).await.0
}

/// As [`person`], with the My Number lookup hash given (rows of one person in two
/// municipalities share it); returns (coupon number, person id).
async fn person_row(
    app: &TestApp,
    municipality: &str,
    serial: u64,
    moved_out_on: Option<NaiveDate>,
    my_number_hash: Option<&str>,
) -> (String, i64) {
    let store = &app.running.as_ref().expect("running").store;
    let coupon = format!("{serial:010}");
    let now = chrono::Utc::now();
    let row = domain::entities::person::ActiveModel {
        municipality_code: Set(municipality.to_owned()),
        coupon_number: Set(coupon.clone()),
        resident_id: Set(None),
        name: Set("試験 太郎".into()),
        name_kana: Set("ｼｹﾝ ﾀﾛｳ".into()),
        birth_date: Set(NaiveDate::from_ymd_opt(1950, 4, 1).expect("date")),
        sex: Set(1),
        address: Set("東京都千代田区千代田1-1".into()),
        my_number_key_id: Set(None),
        my_number_sealed: Set(None),
        my_number_hash: Set(my_number_hash.map(str::to_owned)),
        moved_out_on: Set(moved_out_on),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        updated_by: Set("test".into()),
        ..Default::default()
    }
    .insert(store.db())
    .await
    .expect("insert person");
    (coupon, row.id)
}

/// The 18-digit coupon line of a Chiyoda coupon for dose `dose`.
fn line(municipality: &str, dose: u8, coupon: &str) -> String {
    format!("1{dose}{municipality}{coupon}")
}

fn scanned(line: &str, on: &str, lot: &str, key: &str) -> Value {
    json!({ "couponLine": line, "administeredOn": on, "product": "comirnaty", "lot": lot, "doctorName": "山田医師", "capture": "SCAN", "idempotencyKey": key })
}

fn manual(municipality: &str, coupon: &str, dose: u8, on: &str, lot: &str, key: &str) -> Value {
    json!({ "municipality": municipality, "couponNumber": coupon, "doseNumber": dose, "administeredOn": on, "product": "comirnaty", "lot": lot, "doctorName": "山田医師", "capture": "MANUAL", "idempotencyKey": key })
}

async fn record(app: &TestApp, site: &str, input: Value) -> Value {
    app.ok(&Sites::token(site), RECORD, json!({ "input": input })).await["recordDose"].clone()
}

/// A refused request: (code, reason, field) of its first error; asserts no data came back.
async fn refused(app: &TestApp, token: &str, query: &str, variables: Value) -> (String, String, String) {
    let (_, body) = app.post(Some(token), query, variables).await;
    let (code, _) = tests::error_of(&body);
    let ext = &body["errors"][0]["extensions"];
    (
        code,
        ext["reason"].as_str().unwrap_or_default().to_owned(),
        ext["field"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn lot_doses(app: &TestApp, site: &str, lot: &str) -> Value {
    app.ok(&Sites::token(site), LOTS, json!({ "site": site })).await["lotDoses"]
        .as_array()
        .expect("lots")
        .iter()
        .find(|l| l["lot"] == lot)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn administered(app: &TestApp, site: &str, lot: &str) -> (u64, u64) {
    let rows = app.ok(&Sites::token(site), STOCK, json!({ "site": site })).await;
    let row = rows["stock"]
        .as_array()
        .expect("stock")
        .iter()
        .find(|r| r["lot"] == lot)
        .cloned()
        .expect("lot row");
    (
        row["onHand"].as_u64().expect("onHand"),
        row["administered"].as_u64().expect("administered"),
    )
}

async fn count_records(app: &TestApp) -> usize {
    app.ok(
        &token("MUNICIPALITY", Some(CHIYODA)),
        RECORDS,
        json!({ "voided": true }),
    )
    .await["doseRecords"]["edges"]
        .as_array()
        .expect("edges")
        .len()
}

#[tokio::test]
async fn a_dose_opens_a_vial_and_the_next_doses_draw_from_it() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let b = person(&app, CHIYODA, 2, None).await;
    let mut ws: WsClient = app.ws(&token("MUNICIPALITY", Some(CHIYODA))).await;
    let sub = ws
        .subscribe(
            "subscription { stockChanged { entryId site kind quantity onHand } }",
            json!({}),
        )
        .await;
    app.wait_for_metric("vsys_event_subscriptions{topic=\"stock\"}", 1.0)
        .await;

    let first = record(
        &app,
        &s.base,
        scanned(&line(CHIYODA, 1, &a), &day(0), "FF3620", "tab-1"),
    )
    .await;
    assert_eq!(first["created"], true);
    let r = &first["record"];
    assert_eq!(r["doseNumber"], 1);
    assert_eq!(r["municipality"], CHIYODA);
    assert_eq!(r["couponNumber"], a);
    assert_eq!(r["site"], s.base);
    assert_eq!(r["capture"], "SCAN");
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["openedVial"], true);
    assert_eq!(r["version"], 1);
    let changes = first["stockChanges"].as_array().expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["kind"], "ADMINISTERED");
    assert_eq!(changes[0]["quantity"], -1);
    assert_eq!(changes[0]["onHand"], 9);
    assert_eq!(r["vialEntry"], changes[0]["entryId"]);
    // The subscriber sees the vial leave the stock.
    let event = ws.next_data(&sub).await;
    assert_eq!(event["stockChanged"]["entryId"], changes[0]["entryId"]);
    assert_eq!(event["stockChanged"]["kind"], "ADMINISTERED");

    let lot = lot_doses(&app, &s.base, "FF3620").await;
    assert_eq!((lot["onHand"].as_u64(), lot["openDoses"].as_u64()), (Some(9), Some(5)));
    assert_eq!(lot["availableDoses"], 59);

    // The second dose draws from the open vial: no vial leaves the stock.
    let second = record(&app, &s.base, manual(CHIYODA, &b, 1, &day(0), "FF3620", "tab-2")).await;
    assert_eq!(second["record"]["openedVial"], false);
    assert_eq!(second["record"]["vialEntry"], r["vialEntry"]);
    assert_eq!(second["stockChanges"], json!([]));
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 4);
    assert_eq!(administered(&app, &s.base, "FF3620").await, (9, 1));
    assert_reconciled(&app).await;
    ws.close().await;
}

#[tokio::test]
async fn a_retry_returns_the_original_and_a_reused_key_is_refused() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    receive(&app, &s.base, "FF3621", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let input = scanned(&line(CHIYODA, 1, &a), &day(-1), "FF3620", "tab-1-0001");
    let first = record(&app, &s.base, input.clone()).await;
    let again = record(&app, &s.base, input.clone()).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["record"]["id"], first["record"]["id"]);
    assert_eq!(again["stockChanges"], json!([]));
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 5);

    // The same key with other content: refused, the original kept.
    let mut other = input.clone();
    other["lot"] = json!("FF3621");
    let (code, reason, _) = refused(&app, &Sites::token(&s.base), RECORD, json!({ "input": other })).await;
    assert_eq!((code.as_str(), reason.as_str()), ("CONFLICT", "IDEMPOTENCY_KEY_REUSED"));
    let kept = app
        .ok(&Sites::token(&s.base), ONE, json!({ "id": first["record"]["id"] }))
        .await;
    assert_eq!(kept["doseRecord"]["lot"], "FF3620");
    assert_eq!(lot_doses(&app, &s.base, "FF3621").await["onHand"], 10);
    assert_eq!(count_records(&app).await, 1);

    // Six copies of a new dose at once: one record.
    let b = person(&app, CHIYODA, 2, None).await;
    let copy = scanned(&line(CHIYODA, 1, &b), &day(0), "FF3620", "tab-1-0002");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (app, site, copy) = (&app, s.base.clone(), copy.clone());
        tasks.push(async move { record(app, &site, copy).await });
    }
    let results = futures_util::future::join_all(tasks).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| r["record"]["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(results.iter().filter(|r| r["created"] == true).count(), 1);
    assert_eq!(count_records(&app).await, 2);
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 4);
}

/// Many tablets of one site at once, on one lot, while a batch draws from that lot and another:
/// every dose is recorded once and every vial opened is counted once (the batches wait for
/// each other at the lots' balance rows, which each locks in product/lot order).
#[tokio::test]
async fn tablets_recording_at_once_share_the_lot_without_losing_a_dose() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    receive(&app, &s.base, "FF3621", &day(60), 10).await;
    let mut coupons = Vec::new();
    for i in 1..=24 {
        coupons.push(person(&app, CHIYODA, i, None).await);
    }
    let singles = coupons[..18].iter().enumerate().map(|(i, c)| {
        let (app, site) = (&app, s.base.clone());
        let input = manual(CHIYODA, c, 1, &day(0), "FF3620", &format!("tab-{i}"));
        async move { vec![record(app, &site, input).await["record"].clone()] }
    });
    let batch = {
        let records: Vec<Value> = coupons[18..]
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let lot = if i % 2 == 0 { "FF3620" } else { "FF3621" };
                manual(CHIYODA, c, 1, &day(0), lot, &format!("desk-{i}"))
            })
            .collect();
        let app = &app;
        let token = Sites::token(&s.base);
        async move {
            let out = app.ok(&token, BATCH, json!({ "records": records })).await;
            out["recordDoses"]["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r["record"].clone())
                .collect::<Vec<Value>>()
        }
    };
    let mut all: Vec<futures_util::future::BoxFuture<'_, Vec<Value>>> = singles
        .map(|f| Box::pin(f) as futures_util::future::BoxFuture<'_, Vec<Value>>)
        .collect();
    all.push(Box::pin(batch));
    let done: Vec<Value> = futures_util::future::join_all(all)
        .await
        .into_iter()
        .flatten()
        .collect();

    assert_eq!(done.len(), 24);
    let ids: std::collections::BTreeSet<&str> = done.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), 24, "every dose recorded once: {done:?}");
    // 21 doses from FF3620 open 4 vials of 6 (3 doses left open); 3 from FF3621 open one.
    let opened = done.iter().filter(|r| r["openedVial"] == true).count();
    assert_eq!(opened, 5);
    assert_eq!(administered(&app, &s.base, "FF3620").await, (6, 4));
    assert_eq!(administered(&app, &s.base, "FF3621").await, (9, 1));
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 3);
    assert_eq!(lot_doses(&app, &s.base, "FF3621").await["openDoses"], 3);
    assert_eq!(count_records(&app).await, 24);
    assert_reconciled(&app).await;
}

/// Sends one `recordDose` on its own task; the body comes back through the handle.
fn send_dose(app: &TestApp, site: &str, input: Value) -> tokio::task::JoinHandle<Value> {
    send(app, site, json!({ "query": RECORD, "variables": { "input": input } }))
}

/// Sends a request of `site` on its own task; the body comes back through the handle.
fn send(app: &TestApp, site: &str, body: Value) -> tokio::task::JoinHandle<Value> {
    let (client, url, t) = (app.client.clone(), app.url("/graphql"), Sites::token(site));
    tokio::spawn(async move {
        let resp = client.post(url).bearer_auth(t).json(&body).send().await.expect("send");
        resp.json().await.expect("json")
    })
}

/// Waits until `done` holds, checking every few milliseconds (panics after 30 s).
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "waited too long for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A transaction holding `site`'s balance rows locked (PostgreSQL) until it commits.
async fn hold_lots(store: &domain::store::Store, site: &str) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    let blocker = store.db().begin().await.expect("begin");
    blocker
        .execute_unprepared(&format!(
            "SELECT 1 FROM stock_balances WHERE site_code = '{site}' FOR UPDATE"
        ))
        .await
        .expect("lock");
    blocker
}

/// Sessions of this test's database waiting for a lock (PostgreSQL).
async fn lock_waiters(store: &domain::store::Store) -> i64 {
    let row = store
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        ))
        .await
        .expect("activity")
        .expect("row");
    row.try_get::<i64>("", "n").expect("n")
}

/// A dose that had to wait for another writer of its lot is decided on what that writer
/// committed. On PostgreSQL a single dose's group reads without locking and writes only if its
/// lots are still as read; here a batch recording dose 1 holds the lot while the single dose 2
/// of the same person, too early, is looked up (no dose 1 yet) and its write waits behind the
/// batch. The batch commits, so the write must find the lot moved and the dose be decided again
/// under lock: refused for its interval, which no unique index would catch. SQLite writes one
/// call at a time: the same calls in the same order get the same answers.
#[tokio::test]
async fn a_dose_that_waited_for_another_writer_sees_what_it_committed() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let p = person(&app, CHIYODA, 1, None).await;
    let batch =
        json!({ "query": BATCH, "variables": { "records": [manual(CHIYODA, &p, 1, &day(-5), "FF3620", "w-1")] } });
    let second = manual(CHIYODA, &p, 2, &day(0), "FF3620", "w-2");
    let store = app.running.as_ref().expect("running").store.clone();
    let (batch, second) = if app.db.is_postgres() {
        let blocker = hold_lots(&store, &s.base).await;
        let batch = send(&app, &s.base, batch);
        until("the batch to wait for the lot", async || {
            lock_waiters(&store).await == 1
        })
        .await;
        let second = send_dose(&app, &s.base, second);
        until("the single dose to wait behind it", async || {
            lock_waiters(&store).await == 2
        })
        .await;
        blocker.commit().await.expect("release");
        (batch.await.expect("batch"), second.await.expect("second"))
    } else {
        let batch = send(&app, &s.base, batch).await.expect("batch");
        (batch, send_dose(&app, &s.base, second).await.expect("second"))
    };
    assert_eq!(batch["data"]["recordDoses"]["created"], 1, "{batch}");
    let ext = &second["errors"][0]["extensions"];
    assert_eq!(
        (ext["code"].as_str(), ext["reason"].as_str()),
        (Some("CONFLICT"), Some("INTERVAL_TOO_SHORT")),
        "{second}"
    );
    assert_eq!(count_records(&app).await, 1);
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 5);
    assert_reconciled(&app).await;
}

/// Two tablets of one site whose doses are held up together: on PostgreSQL the first dose's
/// group reads its lot and then waits to write it (a transaction holds the lot). With another
/// writer free, the second's group sees the site being written and goes straight to the locked
/// path, on a writer that kept its connection from the doses before (it must give it back to
/// the pool to lock); with one writer, it waits in the queue. Both doses are recorded, in
/// order, from the lot; SQLite writes one call at a time.
#[tokio::test]
async fn two_tablets_of_one_site_held_up_together_both_record() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let mut coupons = Vec::new();
    for i in 1..=6 {
        coupons.push(person(&app, CHIYODA, i, None).await);
    }
    // One after the other: the writers take turns, so each has written a group (and kept its
    // connection).
    for (i, c) in coupons[..4].iter().enumerate() {
        let r = record(
            &app,
            &s.base,
            manual(CHIYODA, c, 1, &day(0), "FF3620", &format!("warm-{i}")),
        )
        .await;
        assert_eq!(r["created"], true, "{r}");
    }
    let first = manual(CHIYODA, &coupons[4], 1, &day(0), "FF3620", "tab-a");
    let second = manual(CHIYODA, &coupons[5], 1, &day(0), "FF3620", "tab-b");
    let store = app.running.as_ref().expect("running").store.clone();
    let (first, second) = if app.db.is_postgres() {
        let blocker = hold_lots(&store, &s.base).await;
        let first = send_dose(&app, &s.base, first);
        until("the first dose to wait for the lot", async || {
            lock_waiters(&store).await == 1
        })
        .await;
        let second = send_dose(&app, &s.base, second);
        if domain::doses::WRITERS > 1 {
            until("the second dose to wait for the lot under lock", async || {
                lock_waiters(&store).await == 2
            })
            .await;
        } else {
            until("the second dose to queue", async || store.doses_waiting() == 1).await;
        }
        blocker.commit().await.expect("release");
        (first.await.expect("first"), second.await.expect("second"))
    } else {
        let first = send_dose(&app, &s.base, first).await.expect("first");
        (first, send_dose(&app, &s.base, second).await.expect("second"))
    };
    for (done, coupon) in [(&first, &coupons[4]), (&second, &coupons[5])] {
        let r = &done["data"]["recordDose"];
        assert_eq!(r["created"], true, "{done}");
        assert_eq!(r["record"]["couponNumber"], coupon.as_str(), "{done}");
    }
    // Six doses from one lot: one vial, all six of its doses given.
    assert_eq!(administered(&app, &s.base, "FF3620").await, (9, 1));
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 0);
    assert_eq!(count_records(&app).await, 6);
    assert_reconciled(&app).await;
}

/// PostgreSQL: the single-dose writer's thread runs at a higher priority than the request
/// workers where the system allows it (`CAP_SYS_NICE`, or an `RLIMIT_NICE` that permits it),
/// and `/metrics` tells the nice value it really runs at: one of this process's writer threads
/// (the server runs in the test process) is read from `/proc`. SQLite has no writer, and no
/// such metric.
#[tokio::test]
async fn the_dose_writer_runs_ahead_of_the_request_workers_where_allowed() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let c = person(&app, CHIYODA, 1, None).await;
    let r = record(&app, &s.base, manual(CHIYODA, &c, 1, &day(0), "FF3620", "tab-1")).await;
    assert_eq!(r["created"], true, "{r}");
    let reported = tests::metric_value(&app.metrics().await, "vsys_dose_writer_nice");
    if !app.db.is_postgres() {
        assert_eq!(reported, None);
        return;
    }
    let reported = reported.expect("vsys_dose_writer_nice after a single dose");
    let proc = |path: &str| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // A stat line's fields after the command name; the nice value is the 19th field in all.
    let nice_of = |stat: &str| -> f64 {
        let (_, rest) = stat.rsplit_once(')').expect("stat");
        rest.split_whitespace()
            .nth(16)
            .expect("nice")
            .parse()
            .expect("a number")
    };
    let writers: Vec<f64> = std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|t| {
            let dir = t.ok()?.path();
            // Another test's writer may end between the two reads: skip it, as if never seen.
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            (comm.trim() == "vsys-dose-write").then(|| nice_of(&stat))
        })
        .collect();
    assert!(
        writers.contains(&reported),
        "writer threads at {writers:?}, reported {reported}"
    );
    let status = proc("/proc/self/status");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
        .expect("CapEff");
    const CAP_SYS_NICE: u32 = 23;
    let want = domain::doses::WRITER_NICE;
    // RLIMIT_NICE lets a thread go down to 20 - limit (any value when unlimited).
    let limit_allows = proc("/proc/self/limits")
        .lines()
        .find_map(|l| l.strip_prefix("Max nice priority"))
        .and_then(|v| v.split_whitespace().next())
        .is_some_and(|limit| limit == "unlimited" || limit.parse::<i32>().is_ok_and(|l| 20 - l <= want));
    let expected = if cap_eff & (1 << CAP_SYS_NICE) != 0 || limit_allows {
        f64::from(want)
    } else {
        nice_of(&proc("/proc/self/stat"))
    };
    assert_eq!(reported, expected);
}

/// Single doses from several sites that wait for the writer together are written together
/// (PostgreSQL, `doses::combine`) and still get the answers they would one after the other: a
/// retry gets the original, a reused key and a second dose 1 of the same person are refused
/// (even when the first is in the same group), a lot the site does not hold is refused, each
/// site's vial leaves that site's stock and is announced to that call only, and each record
/// names who recorded it; a call from a withdrawn site is refused as a whole (the group checks
/// its sites in its look-up) without touching the others. On PostgreSQL every writer is held up
/// at a lot's row lock (the first call and a dose of its own for each other writer) so the
/// group forms for certain: its records share one commit time. SQLite writes one call at a
/// time: the same calls, sent in the same order, get the same answers.
#[tokio::test]
async fn single_doses_waiting_together_are_written_together_each_with_its_own_answer() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    for site in [&s.base, &s.other, &s.far] {
        receive(&app, site, "FF3620", &day(60), 10).await;
    }
    app.ok(
        &token("NATIONAL", None),
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { status } }",
        json!({ "c": s.other_sat }),
    )
    .await;
    let mut p = Vec::new();
    for i in 0..6 {
        p.push(person(&app, CHIYODA, i + 1, None).await);
    }
    // A dose of its own for every writer but the first, so that the calls below queue.
    let extra = domain::doses::WRITERS - 1;
    let mut occupy = Vec::new();
    for w in 0..extra {
        let coupon = person(&app, CHIYODA, 7 + w as u64, None).await;
        occupy.push(manual(CHIYODA, &coupon, 1, &day(0), "FF3620", &format!("w-{w}")));
    }
    let calls: Vec<(&str, Value)> = vec![
        (&s.base, manual(CHIYODA, &p[1], 1, &day(0), "FF3620", "g-1")),
        (&s.base, manual(CHIYODA, &p[1], 1, &day(0), "FF3620", "g-1")),
        (&s.base, manual(CHIYODA, &p[2], 1, &day(0), "FF3620", "g-1")),
        (&s.other, manual(CHIYODA, &p[3], 1, &day(0), "FF3620", "g-1")),
        (&s.far, manual(CHIYODA, &p[1], 1, &day(0), "FF3620", "g-2")),
        (&s.base, manual(CHIYODA, &p[4], 1, &day(0), "FF9999", "g-3")),
        (&s.far, manual(CHIYODA, &p[5], 1, &day(0), "FF3620", "g-4")),
        (&s.other_sat, manual(CHIYODA, &p[4], 1, &day(0), "FF3620", "g-5")),
    ];
    let first_input = manual(CHIYODA, &p[0], 1, &day(0), "FF3620", "g-0");
    let store = app.running.as_ref().expect("running").store.clone();
    let (first, occupied, answers): (Value, Vec<Value>, Vec<Value>) = if app.db.is_postgres() {
        // Hold the base site's lot: the first call takes it to a writer and waits there, and
        // so does a dose of its own for every other writer.
        let blocker = hold_lots(&store, &s.base).await;
        let first = send_dose(&app, &s.base, first_input);
        until("the first dose to wait for the lot", async || {
            lock_waiters(&store).await == 1
        })
        .await;
        let mut busy = Vec::new();
        for (w, input) in occupy.iter().enumerate() {
            busy.push(send_dose(&app, &s.base, input.clone()));
            until("every writer to wait for the lot", async || {
                lock_waiters(&store).await == w as i64 + 2
            })
            .await;
        }
        // The others queue behind them, in this order.
        let mut pending = Vec::new();
        for (k, (site, input)) in calls.iter().enumerate() {
            pending.push(send_dose(&app, site, input.clone()));
            until("the call to queue", async || store.doses_waiting() == k + 1).await;
        }
        blocker.commit().await.expect("release");
        let first = first.await.expect("first");
        let mut occupied = Vec::new();
        for t in busy {
            occupied.push(t.await.expect("occupying dose"));
        }
        let mut answers = Vec::new();
        for t in pending {
            answers.push(t.await.expect("call"));
        }
        (first, occupied, answers)
    } else {
        let first = send_dose(&app, &s.base, first_input).await.expect("first");
        let mut occupied = Vec::new();
        for input in &occupy {
            occupied.push(send_dose(&app, &s.base, input.clone()).await.expect("occupying dose"));
        }
        let mut answers = Vec::new();
        for (site, input) in &calls {
            answers.push(send_dose(&app, site, input.clone()).await.expect("call"));
        }
        (first, occupied, answers)
    };
    let ok = |b: &Value| b["data"]["recordDose"].clone();
    let reason = |b: &Value| {
        let ext = &b["errors"][0]["extensions"];
        (
            ext["code"].as_str().unwrap_or_default().to_owned(),
            ext["reason"].as_str().unwrap_or_default().to_owned(),
            ext["field"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let first = ok(&first);
    assert_eq!(first["created"], true, "{first}");
    assert_eq!(first["record"]["openedVial"], true);
    for o in &occupied {
        assert_eq!(ok(o)["created"], true, "{o}");
        assert_eq!(ok(o)["record"]["openedVial"], false, "{o}");
    }
    let [b, c, d, e, f, g, h, w] = answers.as_slice() else {
        panic!("eight answers: {answers:?}")
    };
    assert_eq!(reason(w).0, "FORBIDDEN", "{w}");
    assert_eq!(w["data"], Value::Null);
    // The base site's dose draws from the vial the first one opened.
    let (b, c, e, h) = (ok(b), ok(c), ok(e), ok(h));
    assert_eq!(b["created"], true, "{b}");
    assert_eq!(b["record"]["openedVial"], false);
    assert_eq!(b["record"]["vialEntry"], first["record"]["vialEntry"]);
    assert_eq!(b["stockChanges"], json!([]));
    assert_eq!(b["record"]["recordedBy"], format!("SITE:{}", s.base));
    // The same key and content: the original.
    assert_eq!(c["created"], false, "{c}");
    assert_eq!(c["record"]["id"], b["record"]["id"]);
    assert_eq!(c["stockChanges"], json!([]));
    // The same key with other content at the same site: refused.
    assert_eq!(
        reason(d),
        ("CONFLICT".into(), "IDEMPOTENCY_KEY_REUSED".into(), String::new())
    );
    // The same key at another site is another dose; its vial leaves that site's stock.
    assert_eq!(e["created"], true, "{e}");
    assert_eq!(
        (e["record"]["site"].as_str(), e["record"]["recordedBySite"].as_str()),
        (Some(s.other.as_str()), Some(s.other.as_str()))
    );
    assert_eq!(e["record"]["recordedBy"], format!("SITE:{}", s.other));
    assert_eq!(e["record"]["openedVial"], true);
    let changes = e["stockChanges"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{e}");
    assert_eq!(
        (changes[0]["lot"].as_str(), changes[0]["onHand"].as_u64()),
        (Some("FF3620"), Some(9))
    );
    assert_eq!(changes[0]["entryId"], e["record"]["vialEntry"]);
    // A second dose 1 of the person whose dose 1 is in the same group.
    assert_eq!(reason(f), ("CONFLICT".into(), "DUPLICATE_DOSE".into(), String::new()));
    assert_eq!(reason(g), ("BAD_USER_INPUT".into(), String::new(), "input.lot".into()));
    assert_eq!(h["created"], true, "{h}");
    assert_eq!(h["record"]["recordedBy"], format!("SITE:{}", s.far));
    assert_eq!(h["stockChanges"][0]["entryId"], h["record"]["vialEntry"]);
    assert_ne!(h["record"]["vialEntry"], e["record"]["vialEntry"]);
    if app.db.is_postgres() {
        // One group: one commit time for all three, after the first call's.
        assert_eq!(b["record"]["recordedAt"], e["record"]["recordedAt"]);
        assert_eq!(b["record"]["recordedAt"], h["record"]["recordedAt"]);
        assert_ne!(b["record"]["recordedAt"], first["record"]["recordedAt"]);
    }
    assert_eq!(administered(&app, &s.base, "FF3620").await, (9, 1));
    assert_eq!(administered(&app, &s.other, "FF3620").await, (9, 1));
    assert_eq!(administered(&app, &s.far, "FF3620").await, (9, 1));
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 4 - extra);
    assert_eq!(count_records(&app).await, 4 + extra);
    assert_eq!(store.doses_waiting(), 0);
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn conflicts_and_bad_input_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let moved = person(&app, CHIYODA, 2, Some(today() - chrono::Duration::days(3))).await;
    let site = Sites::token(&s.base);
    record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-30), "FF3620", "k1")).await;
    let before = (lot_doses(&app, &s.base, "FF3620").await, count_records(&app).await);

    let try_ = |input: Value| {
        let site = site.clone();
        let app = &app;
        async move { refused(app, &site, RECORD, json!({ "input": input })).await }
    };
    let conflict = |reason: &str| ("CONFLICT".to_owned(), reason.to_owned(), String::new());
    let bad = |field: &str| ("BAD_USER_INPUT".to_owned(), String::new(), field.to_owned());
    // Same dose twice.
    assert_eq!(
        try_(scanned(&line(CHIYODA, 1, &a), &day(-2), "FF3620", "k2")).await,
        conflict("DUPLICATE_DOSE")
    );
    // Dose 2 before dose 1.
    assert_eq!(
        try_(scanned(&line(CHIYODA, 2, &a), &day(-31), "FF3620", "k3")).await,
        conflict("BEFORE_PREVIOUS_DOSE")
    );
    // Dose 2 18 days after dose 1 (Comirnaty's earliest is day 19).
    assert_eq!(
        try_(scanned(&line(CHIYODA, 2, &a), &day(-12), "FF3620", "k4")).await,
        conflict("INTERVAL_TOO_SHORT")
    );
    // A person of another municipality: looked up in the coupon's municipality, not found.
    assert_eq!(
        try_(scanned(&line(SHINJUKU, 2, &a), &day(0), "FF3620", "k5")).await,
        conflict("PERSON_NOT_FOUND")
    );
    assert_eq!(
        try_(scanned(&line(CHIYODA, 1, &moved), &day(0), "FF3620", "k6")).await,
        conflict("PERSON_MOVED_OUT")
    );
    assert_eq!(
        try_(scanned(&line(CHIYODA, 2, &a), &day(1), "FF3620", "k7")).await,
        bad("input.administeredOn")
    );
    assert_eq!(
        try_(scanned(&line(CHIYODA, 2, &a), &day(0), "FF9999", "k8")).await,
        bad("input.lot")
    );
    // 131017: wrong check digit in the line's municipality code — refused before any query.
    assert_eq!(
        try_(scanned(&format!("12131017{a}"), &day(0), "FF3620", "k9")).await,
        bad("input.couponLine")
    );
    assert_eq!(
        try_(scanned("1213101600001", &day(0), "FF3620", "k10")).await,
        bad("input.couponLine")
    );
    let mut mismatch = scanned(&line(CHIYODA, 2, &a), &day(0), "FF3620", "k11");
    mismatch["doseNumber"] = json!(3);
    assert_eq!(try_(mismatch).await, bad("input.doseNumber"));
    // Not a site: forbidden.
    let (code, _, _) = refused(
        &app,
        &token("MUNICIPALITY", Some(CHIYODA)),
        RECORD,
        json!({ "input": scanned(&line(CHIYODA, 2, &a), &day(0), "FF3620", "k12") }),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        (lot_doses(&app, &s.base, "FF3620").await, count_records(&app).await),
        before
    );

    // The same dose, on time, is accepted.
    let ok = record(
        &app,
        &s.base,
        scanned(&line(CHIYODA, 2, &a), &day(-11), "FF3620", "k13"),
    )
    .await;
    assert_eq!(ok["record"]["doseNumber"], 2);
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn the_municipality_can_allow_an_earlier_dose_with_a_reason() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-10), "FF3620", "k1")).await;
    let early = scanned(&line(CHIYODA, 2, &a), &day(0), "FF3620", "k2");
    let site = Sites::token(&s.base);
    let (_, reason, _) = refused(&app, &site, RECORD, json!({ "input": early.clone() })).await;
    assert_eq!(reason, "INTERVAL_TOO_SHORT");

    let allow = json!({ "m": CHIYODA, "c": a, "n": 2, "reason": "departure abroad on a fixed date" });
    for who in [
        site.clone(),
        token("MUNICIPALITY", Some(SHINJUKU)),
        token("NATIONAL", None),
    ] {
        let (code, _, _) = refused(&app, &who, ALLOW, allow.clone()).await;
        assert_eq!(code, "FORBIDDEN");
    }
    let (code, _, field) = refused(
        &app,
        &token("MUNICIPALITY", Some(CHIYODA)),
        ALLOW,
        json!({ "m": CHIYODA, "c": a, "n": 2, "reason": " " }),
    )
    .await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "reason"));
    let o = app.ok(&token("MUNICIPALITY", Some(CHIYODA)), ALLOW, allow).await["allowEarlyDose"].clone();
    assert_eq!(o["createdBy"], format!("MUNICIPALITY:{CHIYODA}"));

    let mut noted = early;
    noted["overrideReason"] = json!("municipality allowed by phone");
    let done = record(&app, &s.base, noted).await;
    assert_eq!(done["record"]["intervalOverride"], o["id"]);
    assert_eq!(done["record"]["overrideReason"], "municipality allowed by phone");
}

/// An amendment that moves a dose's date notes the municipality's override only while the
/// dose needs it.
#[tokio::test]
async fn an_amended_date_notes_the_override_only_while_it_is_needed() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-40), "FF3620", "k1")).await;
    let allow = json!({ "m": CHIYODA, "c": a, "n": 2, "reason": "departure abroad on a fixed date" });
    let o = app.ok(&token("MUNICIPALITY", Some(CHIYODA)), ALLOW, allow).await["allowEarlyDose"].clone();
    // Five days after the first dose: only with the override.
    let early = record(&app, &s.base, scanned(&line(CHIYODA, 2, &a), &day(-35), "FF3620", "k2")).await;
    assert_eq!(early["record"]["intervalOverride"], o["id"]);
    let id = early["record"]["id"].clone();
    let municipality = token("MUNICIPALITY", Some(CHIYODA));
    let amend = |on: String| json!({ "id": id, "changes": { "administeredOn": on }, "reason": "date typed wrong" });

    let later = app.ok(&municipality, AMEND, amend(day(0))).await["amendDoseRecord"]["record"].clone();
    assert_eq!(later["administeredOn"], day(0));
    assert_eq!(later["intervalOverride"], Value::Null);
    let stored = app.ok(&Sites::token(&s.base), RECORD_ONE, json!({ "id": id })).await;
    assert_eq!(stored["doseRecord"]["intervalOverride"], Value::Null);

    let back = app.ok(&municipality, AMEND, amend(day(-35))).await["amendDoseRecord"]["record"].clone();
    assert_eq!(back["intervalOverride"], o["id"]);
    // Every version says which override it used.
    let used: Vec<(Value, Value)> = back["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["administeredOn"].clone(), v["intervalOverride"].clone()))
        .collect();
    assert_eq!(
        used,
        vec![
            (json!(day(-35)), o["id"].clone()),
            (json!(day(0)), Value::Null),
            (json!(day(-35)), o["id"].clone()),
        ]
    );
    let stored = app.ok(&Sites::token(&s.base), RECORD_ONE, json!({ "id": id })).await;
    assert_eq!(stored["doseRecord"]["intervalOverride"], o["id"]);
}

/// A batch past the size where the look-up stops probing per key and joins instead (on
/// PostgreSQL, `doses::sql::PROBES_UP_TO`): retries, reused keys, earlier doses and the interval
/// rule are decided exactly as in a small one.
#[tokio::test]
async fn a_large_batch_finds_keys_and_earlier_doses_like_a_small_one() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 20).await;
    let mut coupons = Vec::new();
    for i in 1..=80 {
        coupons.push(person(&app, CHIYODA, i, None).await);
    }
    let site = Sites::token(&s.base);
    let first: Vec<Value> = (0..6)
        .map(|i| manual(CHIYODA, &coupons[i], 1, &day(-30), "FF3620", &format!("early-{i}")))
        .collect();
    app.ok(&site, BATCH, json!({ "records": first.clone() })).await;
    let mut records = vec![
        // A retry of an earlier call's record, and its key reused for another dose.
        first[0].clone(),
        manual(CHIYODA, &coupons[40], 1, &day(0), "FF3620", "early-1"),
        // Dose 1 again, and dose 2 too soon after dose 1 (Comirnaty: day 19 at the earliest).
        manual(CHIYODA, &coupons[2], 1, &day(0), "FF3620", "again-2"),
        manual(CHIYODA, &coupons[3], 2, &day(-20), "FF3620", "soon-3"),
    ];
    // Dose 2 for the two others of the first call, dose 1 for everyone else.
    records.push(manual(CHIYODA, &coupons[4], 2, &day(0), "FF3620", "second-4"));
    records.push(manual(CHIYODA, &coupons[5], 2, &day(0), "FF3620", "second-5"));
    for (i, c) in coupons.iter().enumerate().skip(6) {
        records.push(manual(CHIYODA, c, 1, &day(0), "FF3620", &format!("big-{i}")));
    }
    assert!(records.len() > 64);
    let out = app.ok(&site, BATCH, json!({ "records": records.clone() })).await["recordDoses"].clone();
    let results = out["results"].as_array().expect("results");
    let reason = |i: usize| results[i]["error"]["reason"].as_str().unwrap_or_default().to_owned();
    assert_eq!(results[0]["created"], false);
    assert_eq!(results[0]["ok"], true);
    assert_eq!(reason(1), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(reason(2), "DUPLICATE_DOSE");
    assert_eq!(reason(3), "INTERVAL_TOO_SHORT");
    assert_eq!(results[4]["record"]["doseNumber"], 2);
    assert_eq!(results[5]["record"]["doseNumber"], 2);
    let created = results.iter().filter(|r| r["created"] == true).count();
    assert_eq!(created, records.len() - 4);
    assert_eq!(out["created"].as_u64(), Some(created as u64));
    assert_eq!(count_records(&app).await, 6 + created);
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn a_batch_keeps_valid_records_and_reports_each_refusal() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 1).await;
    let coupons = [
        person(&app, CHIYODA, 1, None).await,
        person(&app, CHIYODA, 2, None).await,
        person(&app, CHIYODA, 3, None).await,
    ];
    let records = json!([
        scanned(&line(CHIYODA, 1, &coupons[0]), &day(0), "FF3620", "b0"),
        scanned(&format!("11131017{}", coupons[1]), &day(0), "FF3620", "b1"),
        // The same person and dose twice in one batch: the second is a duplicate.
        scanned(&line(CHIYODA, 1, &coupons[0]), &day(0), "FF3620", "b2"),
        manual(CHIYODA, "0000009999", 1, &day(0), "FF3620", "b3"),
        manual(CHIYODA, &coupons[1], 1, &day(0), "FF3620", "b4"),
        // A retry of b0 inside the same batch.
        scanned(&line(CHIYODA, 1, &coupons[0]), &day(0), "FF3620", "b0"),
        manual(CHIYODA, &coupons[2], 1, &day(0), "FF9999", "b6"),
    ]);
    let out = app
        .ok(&Sites::token(&s.base), BATCH, json!({ "records": records }))
        .await["recordDoses"]
        .clone();
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 7);
    let summary: Vec<(bool, Value, Value)> = results
        .iter()
        .map(|r| {
            (
                r["ok"] == true,
                r["error"]["reason"].clone(),
                r["error"]["field"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (true, Value::Null, Value::Null),
            (false, Value::Null, json!("records[1].couponLine")),
            (false, json!("DUPLICATE_DOSE"), Value::Null),
            (false, json!("PERSON_NOT_FOUND"), Value::Null),
            (true, Value::Null, Value::Null),
            (true, Value::Null, Value::Null),
            (false, Value::Null, json!("records[6].lot")),
        ]
    );
    assert_eq!(results[5]["created"], false);
    assert_eq!(results[5]["record"]["id"], results[0]["record"]["id"]);
    assert_eq!((out["created"].as_i64(), out["failed"].as_i64()), (Some(2), Some(4)));
    // One vial of 6 doses served both: opened by the first, drawn by the second.
    assert_eq!(results[0]["record"]["openedVial"], true);
    assert_eq!(results[4]["record"]["vialEntry"], results[0]["record"]["vialEntry"]);
    assert_eq!(out["stockChanges"].as_array().map(Vec::len), Some(1));
    assert_eq!(count_records(&app).await, 2);
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["availableDoses"], 4);

    // Out of stock within a batch: records past the last dose are refused alone.
    let more: Vec<Value> = (10..16)
        .map(|i| {
            let c = format!("{i:010}");
            json!({ "municipality": CHIYODA, "couponNumber": c, "doseNumber": 1, "administeredOn": day(0), "product": "comirnaty", "lot": "FF3620", "doctorName": "山田医師", "capture": "CSV", "idempotencyKey": format!("m{i}") })
        })
        .collect();
    for i in 10..16 {
        person(&app, CHIYODA, i, None).await;
    }
    let out = app.ok(&Sites::token(&s.base), BATCH, json!({ "records": more })).await["recordDoses"].clone();
    assert_eq!((out["created"].as_i64(), out["failed"].as_i64()), (Some(4), Some(2)));
    assert_eq!(out["results"][5]["error"]["reason"], "OUT_OF_STOCK");
    assert_reconciled(&app).await;

    // More than 1,000 records: refused as a whole, nothing stored.
    let big: Vec<Value> = (0..1001)
        .map(|i| manual(CHIYODA, &coupons[2], 1, &day(0), "FF3620", &format!("big{i}")))
        .collect();
    let (code, _, field) = refused(&app, &Sites::token(&s.base), BATCH, json!({ "records": big })).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "records"));
    assert_eq!(count_records(&app).await, 6);
}

#[tokio::test]
async fn voids_give_the_dose_back_and_amendments_keep_every_version() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    receive(&app, &s.base, "FF3621", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let b = person(&app, CHIYODA, 2, None).await;
    let site = Sites::token(&s.base);
    let first = record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-1), "FF3620", "k1")).await;
    let id = first["record"]["id"].clone();

    // Another site and another municipality cannot see it, so cannot void it.
    for who in [Sites::token(&s.other), token("MUNICIPALITY", Some(SHINJUKU))] {
        let (code, _, _) = refused(&app, &who, VOID, json!({ "id": id, "reason": "x" })).await;
        assert_eq!(code, "NOT_FOUND");
    }
    let voided = app
        .ok(
            &site,
            VOID,
            json!({ "id": id, "reason": "entered for the wrong person" }),
        )
        .await["voidDoseRecord"]
        .clone();
    assert_eq!(voided["record"]["status"], "VOIDED");
    assert_eq!(voided["record"]["version"], 2);
    assert_eq!(voided["record"]["changeReason"], "entered for the wrong person");
    // Its dose is back, and with it the whole vial (no other dose came from it).
    assert_eq!(voided["stockChanges"][0]["kind"], "REVERSED");
    assert_eq!(voided["stockChanges"][0]["onHand"], 10);
    let lot = lot_doses(&app, &s.base, "FF3620").await;
    assert_eq!((lot["onHand"].as_u64(), lot["openDoses"].as_u64()), (Some(10), Some(0)));
    assert_eq!(administered(&app, &s.base, "FF3620").await, (10, 0));
    let (_, reason, _) = refused(&app, &site, VOID, json!({ "id": id, "reason": "again" })).await;
    assert_eq!(reason, "ALREADY_VOIDED");
    // The voided dose no longer blocks recording it properly.
    let redo = record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-1), "FF3620", "k2")).await;
    assert_eq!(redo["created"], true);

    // Amend the lot: the dose moves from FF3620 to FF3621.
    let other = record(&app, &s.base, manual(CHIYODA, &b, 1, &day(-1), "FF3620", "k3")).await;
    let oid = other["record"]["id"].clone();
    let amended = app
        .ok(
            &token("MUNICIPALITY", Some(CHIYODA)),
            AMEND,
            json!({ "id": oid, "changes": { "lot": "FF3621", "administeredOn": day(-2) }, "reason": "lot misread" }),
        )
        .await["amendDoseRecord"]
        .clone();
    let r = &amended["record"];
    assert_eq!((r["lot"].as_str(), r["version"].as_i64()), (Some("FF3621"), Some(2)));
    assert_eq!(r["openedVial"], true);
    let versions = r["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["lot"], "FF3620");
    assert_eq!(versions[0]["madeBy"], format!("SITE:{}", s.base));
    assert_eq!(versions[0]["reason"], Value::Null);
    assert_eq!(versions[1]["lot"], "FF3621");
    assert_eq!(versions[1]["administeredOn"], day(-2));
    assert_eq!(versions[1]["madeBy"], format!("MUNICIPALITY:{CHIYODA}"));
    assert_eq!(versions[1]["reason"], "lot misread");
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 5);
    let moved = lot_doses(&app, &s.base, "FF3621").await;
    assert_eq!(
        (moved["onHand"].as_u64(), moved["openDoses"].as_u64()),
        (Some(9), Some(5))
    );
    // A bad amendment is refused.
    let (code, _, field) = refused(
        &app,
        &site,
        AMEND,
        json!({ "id": oid, "changes": { "administeredOn": day(1) }, "reason": "x" }),
    )
    .await;
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("BAD_USER_INPUT", "changes.administeredOn")
    );
    let (code, _, _) = refused(
        &app,
        &Sites::token(&s.other),
        AMEND,
        json!({ "id": oid, "changes": { "doctorName": "別医師" }, "reason": "x" }),
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
    // A ledger reversal of a vial opened for doses is refused: correct the records instead.
    let entry = r["vialEntry"].clone();
    let (code, _, field) = refused(
        &app,
        &site,
        "mutation($site: SiteCode!, $entry: ID!) { reverseStockEntry(site: $site, entry: $entry, reason: \"x\") { entryId } }",
        json!({ "site": s.base, "entry": entry }),
    )
    .await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "entry"));
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn leftover_doses_are_written_off_without_taking_a_vial() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 3).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let given = record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(0), "FF3620", "k1")).await;
    let site = Sites::token(&s.base);
    // Taking a vial for the leftovers would count the open vial twice.
    let (code, _, _) = refused(
        &app,
        &site,
        "mutation($input: RecordWasteInput!) { recordWaste(input: $input) { entryId } }",
        json!({ "input": { "site": s.base, "product": "comirnaty", "lot": "FF3620", "quantity": 1, "reason": "LEFTOVER_DOSES" } }),
    )
    .await;
    assert_eq!(code, "CONFLICT");
    let w = app
        .ok(&site, LEFTOVER, json!({ "site": s.base, "lot": "FF3620" }))
        .await["writeOffLeftoverDoses"]
        .clone();
    assert_eq!(w["doses"], 5);
    assert_eq!(w["vialEntry"], given["record"]["vialEntry"]);
    assert_eq!(w["occurredOn"], day(0));
    assert_eq!(w["recordedBy"], format!("SITE:{}", s.base));
    // The write-off is kept: the site and its municipality read it back; another site may not.
    let window = json!({ "site": s.base, "from": day(-1), "to": day(0) });
    for who in [site.clone(), token("MUNICIPALITY", Some(CHIYODA))] {
        let kept = app.ok(&who, LEFTOVERS, window.clone()).await["doseLeftovers"].clone();
        assert_eq!(kept.as_array().map(Vec::len), Some(1));
        assert_eq!(kept[0]["doses"], 5);
        assert_eq!(kept[0]["lot"], "FF3620");
        assert_eq!(kept[0]["vialEntry"], w["vialEntry"]);
        assert_eq!(kept[0]["recordedBy"], w["recordedBy"]);
    }
    let earlier = json!({ "site": s.base, "from": day(-9), "to": day(-1) });
    assert_eq!(app.ok(&site, LEFTOVERS, earlier).await["doseLeftovers"], json!([]));
    let (code, _, _) = refused(&app, &Sites::token(&s.other), LEFTOVERS, window).await;
    assert_eq!(code, "FORBIDDEN");
    let backwards = json!({ "site": s.base, "from": day(0), "to": day(-1) });
    let (code, _, field) = refused(&app, &site, LEFTOVERS, backwards).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "to"));
    let lot = lot_doses(&app, &s.base, "FF3620").await;
    assert_eq!((lot["onHand"].as_u64(), lot["openDoses"].as_u64()), (Some(2), Some(0)));
    let (code, _, _) = refused(&app, &site, LEFTOVER, json!({ "site": s.base, "lot": "FF3620" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _, _) = refused(
        &app,
        &Sites::token(&s.other),
        LEFTOVER,
        json!({ "site": s.base, "lot": "FF3620" }),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
    assert_reconciled(&app).await;

    // A void after the write-off gives its dose back as an open dose of no vial; the
    // reconciliation accounts for it, and catches an open-doses counter that drifted.
    let id = given["record"]["id"].clone();
    app.ok(&site, VOID, json!({ "id": id, "reason": "wrong person" })).await;
    assert_eq!(lot_doses(&app, &s.base, "FF3620").await["openDoses"], 1);
    assert_reconciled(&app).await;
    let store = &app.running.as_ref().expect("running").store;
    store
        .db()
        .execute_unprepared("UPDATE stock_balances SET open_doses = open_doses + 2")
        .await
        .expect("tamper");
    let found = domain::ledger::reconcile(store).await.expect("reconcile");
    let drift: Vec<(&str, i128, i128)> = found.iter().map(|m| (m.column, m.stored, m.from_entries)).collect();
    assert_eq!(drift, vec![("open_doses", 3, 1)]);
}

#[tokio::test]
async fn who_sees_which_records_and_counts() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 10).await;
    receive(&app, &s.other, "FF7000", &day(60), 10).await;
    let a = person(&app, CHIYODA, 1, None).await;
    let b = person(&app, CHIYODA, 2, None).await;
    let c = person(&app, SHINJUKU, 3, None).await;
    record(&app, &s.base, scanned(&line(CHIYODA, 1, &a), &day(-30), "FF3620", "k1")).await;
    record(&app, &s.base, scanned(&line(CHIYODA, 2, &a), &day(-5), "FF3620", "k2")).await;
    // A Chiyoda resident vaccinated at a Shinjuku site.
    let mut at_other = scanned(&line(CHIYODA, 1, &b), &day(-5), "FF7000", "k3");
    at_other["product"] = json!("comirnaty");
    let theirs = record(&app, &s.other, at_other).await;
    record(
        &app,
        &s.other,
        scanned(&line(SHINJUKU, 1, &c), &day(-5), "FF7000", "k4"),
    )
    .await;

    let ids = |v: Value| -> Vec<i64> {
        v["doseRecords"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["doseNumber"].as_i64().expect("n"))
            .collect()
    };
    assert_eq!(
        ids(app.ok(&Sites::token(&s.base), RECORDS, json!({})).await),
        vec![2, 1]
    );
    assert_eq!(ids(app.ok(&Sites::token(&s.other), RECORDS, json!({})).await).len(), 2);
    assert_eq!(
        ids(app.ok(&token("MUNICIPALITY", Some(CHIYODA)), RECORDS, json!({})).await).len(),
        3
    );
    assert_eq!(
        ids(app
            .ok(&token("MUNICIPALITY", Some(CHIYODA)), RECORDS, json!({ "coupon": a }))
            .await)
        .len(),
        2
    );
    assert_eq!(
        ids(app.ok(&token("MUNICIPALITY", Some(SHINJUKU)), RECORDS, json!({})).await).len(),
        1
    );
    let (code, _, _) = refused(
        &app,
        &Sites::token(&s.base),
        ONE,
        json!({ "id": theirs["record"]["id"] }),
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
    for who in [
        token("PREFECTURE", Some("13")),
        token("NATIONAL", None),
        token("WHOLESALER", Some("suzuken")),
    ] {
        let (code, _, _) = refused(&app, &who, RECORDS, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
    }

    // Counts: by dose number and day for the nation; per municipality for Tokyo.
    let window = json!({ "from": day(-40), "to": day(0) });
    let mut q = window.clone();
    q["by"] = json!(["DOSE_NUMBER"]);
    let national = app.ok(&token("NATIONAL", None), COUNTS, q.clone()).await["doseCounts"].clone();
    assert_eq!(
        national,
        json!([
            { "day": null, "municipality": null, "prefecture": null, "product": null, "doseNumber": 1, "doses": 3 },
            { "day": null, "municipality": null, "prefecture": null, "product": null, "doseNumber": 2, "doses": 1 },
        ])
    );
    let mut q = window.clone();
    q["by"] = json!(["MUNICIPALITY", "DAY"]);
    let tokyo = app.ok(&token("PREFECTURE", Some("13")), COUNTS, q.clone()).await["doseCounts"].clone();
    let rows: Vec<(String, String, u64)> = tokyo
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["day"].as_str().expect("day").to_owned(),
                r["municipality"].as_str().expect("m").to_owned(),
                r["doses"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (day(-30), CHIYODA.to_owned(), 1),
            (day(-5), CHIYODA.to_owned(), 2),
            (day(-5), SHINJUKU.to_owned(), 1),
        ]
    );
    let own = app
        .ok(&token("MUNICIPALITY", Some(CHIYODA)), COUNTS, window.clone())
        .await["doseCounts"]
        .clone();
    assert_eq!(own[0]["doses"], 3);
    let site_counts = app.ok(&Sites::token(&s.other), COUNTS, window.clone()).await["doseCounts"].clone();
    assert_eq!(site_counts[0]["doses"], 2);
    let mut elsewhere = window.clone();
    elsewhere["m"] = json!(SHINJUKU);
    let (code, _, _) = refused(&app, &token("MUNICIPALITY", Some(CHIYODA)), COUNTS, elsewhere).await;
    assert_eq!(code, "FORBIDDEN");
    let mut osaka = window.clone();
    osaka["p"] = json!("27");
    let (code, _, _) = refused(&app, &token("PREFECTURE", Some("13")), COUNTS, osaka).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _, _) = refused(&app, &token("WHOLESALER", Some("suzuken")), COUNTS, window.clone()).await;
    assert_eq!(code, "FORBIDDEN");

    // Consumption weights per site of a municipality (where the doses were given).
    let consumption = "query($m: MunicipalityCode!, $from: NaiveDate!, $to: NaiveDate!) { doseConsumption(municipality: $m, from: $from, to: $to) { site doses } }";
    let got = app
        .ok(
            &token("MUNICIPALITY", Some(SHINJUKU)),
            consumption,
            json!({ "m": SHINJUKU, "from": day(-40), "to": day(0) }),
        )
        .await["doseConsumption"]
        .clone();
    assert_eq!(got, json!([{ "site": s.other, "doses": 2 }]));
    let (code, _, _) = refused(
        &app,
        &token("MUNICIPALITY", Some(CHIYODA)),
        consumption,
        json!({ "m": SHINJUKU, "from": day(-40), "to": day(0) }),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
}

#[tokio::test]
async fn a_person_who_moved_in_brings_their_earlier_doses_along() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(60), 2).await;
    // One person: a Chiyoda row (dose 1 given there) and, after moving, a Shinjuku row; the
    // rows share the My Number lookup hash.
    let hash = "ab".repeat(32);
    let (old_coupon, old_id) = person_row(&app, CHIYODA, 11, None, Some(&hash)).await;
    let (new_coupon, new_id) = person_row(&app, SHINJUKU, 12, None, Some(&hash)).await;
    let first = record(
        &app,
        &s.base,
        manual(CHIYODA, &old_coupon, 1, &day(-30), "FF3620", "old-1"),
    )
    .await;
    let dose_one = first["record"]["id"].clone();
    const HISTORY: &str =
        "query($id: ID!) { personById(id: $id) { doseHistory { id personId municipality doseNumber site } } }";
    let shinjuku = token("MUNICIPALITY", Some(SHINJUKU));
    let before = app.ok(&shinjuku, HISTORY, json!({ "id": new_id.to_string() })).await;
    assert_eq!(before["personById"]["doseHistory"], json!([]), "not linked yet");

    app.ok(
        &shinjuku,
        "mutation($id: ID!) { linkEarlierRecords(personId: $id, purpose: \"転入: 接種歴の確認\") { earlierPersonId } }",
        json!({ "id": new_id.to_string() }),
    )
    .await;
    let after = app.ok(&shinjuku, HISTORY, json!({ "id": new_id.to_string() })).await;
    assert_eq!(
        after["personById"]["doseHistory"],
        json!([{ "id": dose_one, "personId": old_id.to_string(), "municipality": CHIYODA, "doseNumber": 1, "site": s.base }])
    );
    // Dose 1 from the old municipality counts at the new one: a second dose 1 is a duplicate,
    // and dose 2 keeps the interval from it.
    let again = manual(SHINJUKU, &new_coupon, 1, &day(0), "FF3620", "new-1");
    let (_, reason, _) = refused(&app, &Sites::token(&s.base), RECORD, json!({ "input": again })).await;
    assert_eq!(reason, "DUPLICATE_DOSE");
    let early = manual(SHINJUKU, &new_coupon, 2, &day(-25), "FF3620", "new-2-early");
    let (_, reason, _) = refused(&app, &Sites::token(&s.base), RECORD, json!({ "input": early })).await;
    assert_eq!(reason, "INTERVAL_TOO_SHORT");
    let second = record(
        &app,
        &s.base,
        manual(SHINJUKU, &new_coupon, 2, &day(-5), "FF3620", "new-2"),
    )
    .await;
    assert_eq!(second["record"]["doseNumber"], 2);
    let both = app.ok(&shinjuku, HISTORY, json!({ "id": new_id.to_string() })).await;
    let numbers: Vec<u64> = both["personById"]["doseHistory"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| r["doseNumber"].as_u64().expect("n"))
        .collect();
    assert_eq!(numbers, [1, 2]);
    // The old municipality keeps its record; the new one does not list it among its residents'.
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let kept = app.ok(&chiyoda, RECORDS, json!({ "coupon": old_coupon })).await;
    assert_eq!(kept["doseRecords"]["edges"][0]["node"]["id"], dose_one);
    let listed = app.ok(&shinjuku, RECORDS, json!({})).await;
    let listed: Vec<&Value> = listed["doseRecords"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"]["id"])
        .collect();
    assert_eq!(listed, [&second["record"]["id"]], "only the dose given to its resident");
    // Nobody else reads the new row's history.
    let (code, _, _) = refused(&app, &chiyoda, HISTORY, json!({ "id": new_id.to_string() })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _, _) = refused(
        &app,
        &Sites::token(&s.base),
        HISTORY,
        json!({ "id": new_id.to_string() }),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
}
