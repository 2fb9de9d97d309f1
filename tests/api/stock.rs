//! The stock ledger through GraphQL: every entry kind, transfers, reversals, stock reports,
//! refusals that change nothing, the non-negative invariant under concurrent writers, and the
//! scoped queries.

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token};

pub const CHIYODA: &str = "131016";
pub const SHINJUKU: &str = "131041";
pub const SAPPORO: &str = "011002";

/// A site code with its check digit, from its first nine digits.
pub fn code(first_nine: &str) -> String {
    domain::codes::SiteCode::with_check_digit(first_nine)
        .expect("valid code")
        .to_string()
}

/// The sites every stock test starts from.
pub struct Sites {
    /// Chiyoda base site (ULTRA_COLD freezer; comirnaty and spikevax).
    pub base: String,
    /// Chiyoda satellite of `base` (comirnaty).
    pub sat: String,
    /// Shinjuku base site.
    pub other: String,
    /// Shinjuku satellite of `other`.
    pub other_sat: String,
    /// Sapporo base site.
    pub far: String,
}

impl Sites {
    pub fn token(site: &str) -> String {
        token("SITE", Some(site))
    }
}

pub async fn seed(app: &TestApp) -> Sites {
    let s = Sites {
        base: code("131202001"),
        sat: code("131202002"),
        other: code("131202003"),
        other_sat: code("131202004"),
        far: code("011101001"),
    };
    let n = token("NATIONAL", None);
    let register = |input: Value| {
        let n = n.clone();
        async move { app.ok(&n, REGISTER, json!({ "input": input })).await }
    };
    let mut base = clinic_input(&s.base, CHIYODA, "千代田基本型クリニック");
    base["products"] = json!(["comirnaty", "spikevax"]);
    register(base).await;
    let mut sat = clinic_input(&s.sat, CHIYODA, "千代田サテライト医院");
    sat["coldChain"] = json!({ "role": "SATELLITE", "baseSite": s.base });
    register(sat).await;
    register(clinic_input(&s.other, SHINJUKU, "新宿基本型病院")).await;
    let mut other_sat = clinic_input(&s.other_sat, SHINJUKU, "新宿サテライト");
    other_sat["coldChain"] = json!({ "role": "SATELLITE", "baseSite": s.other });
    register(other_sat).await;
    let mut far = clinic_input(&s.far, SAPPORO, "札幌基本型クリニック");
    far["address"] = json!("北海道札幌市中央区1-1");
    register(far).await;
    s
}

pub fn today() -> NaiveDate {
    domain::stock::today_in_japan()
}

pub fn day(offset: i64) -> String {
    (today() + Duration::days(offset)).to_string()
}

pub const CHANGE: &str = "entryId site municipality prefecture product lot expiryDate kind quantity onHand recordedAt";

pub fn receive_doc() -> String {
    format!("mutation($input: RecordReceiptInput!) {{ recordReceipt(input: $input) {{ {CHANGE} }} }}")
}
pub fn administer_doc() -> String {
    format!("mutation($input: StockUseInput!) {{ recordAdministered(input: $input) {{ {CHANGE} }} }}")
}
fn waste_doc() -> String {
    format!("mutation($input: RecordWasteInput!) {{ recordWaste(input: $input) {{ {CHANGE} }} }}")
}
fn expired_doc() -> String {
    format!("mutation($input: StockUseInput!) {{ recordExpired(input: $input) {{ {CHANGE} }} }}")
}
pub fn transfer_doc() -> String {
    format!("mutation($input: TransferStockInput!) {{ transferStock(input: $input) {{ {CHANGE} }} }}")
}
fn reverse_doc() -> String {
    format!(
        "mutation($site: SiteCode!, $entry: ID!, $reason: String!) {{ reverseStockEntry(site: $site, entry: $entry, reason: $reason) {{ {CHANGE} }} }}"
    )
}
pub fn report_doc() -> String {
    format!(
        "mutation($input: ReportStockInput!) {{ reportStock(input: $input) {{ report {{ id site countedOn reason actor lines {{ product lot expiryDate counted ledgerBefore difference reason adjustmentEntry }} }} adjustments {{ {CHANGE} }} }} }}"
    )
}
const STOCK: &str = "query($site: SiteCode!, $all: Boolean = false) { stock(site: $site, includeEmpty: $all) { site municipality product lot expiryDate onHand onHandDoses received administered wasted expired transferredIn transferredOut adjusted } }";
const HISTORY: &str = "query($site: SiteCode!, $first: Int, $after: String) { stockHistory(site: $site, first: $first, after: $after) { edges { cursor node { id kind quantity balanceAfter lot wasteReason note occurredOn actor counterpartSite pairedEntry reverses reversesKind reversedBy delivery report } } pageInfo { hasNextPage } } }";

/// Records a receipt through the API and returns the change.
pub async fn receive(app: &TestApp, site: &str, lot: &str, expiry: &str, quantity: u64) -> Value {
    app.ok(
        &Sites::token(site),
        &receive_doc(),
        json!({ "input": { "site": site, "product": "comirnaty", "lot": lot, "expiryDate": expiry, "quantity": quantity } }),
    )
    .await["recordReceipt"]
        .clone()
}

pub fn use_input(site: &str, lot: &str, quantity: u64) -> Value {
    json!({ "input": { "site": site, "product": "comirnaty", "lot": lot, "quantity": quantity } })
}

async fn stock(app: &TestApp, site: &str, all: bool) -> Value {
    app.ok(&token("NATIONAL", None), STOCK, json!({ "site": site, "all": all }))
        .await["stock"]
        .clone()
}

async fn history(app: &TestApp, site: &str) -> Vec<Value> {
    app.ok(&token("NATIONAL", None), HISTORY, json!({ "site": site, "first": 500 }))
        .await["stockHistory"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The balance table equals the sum of the entries (on hand and every per-kind counter).
pub async fn assert_reconciled(app: &TestApp) {
    let store = &app.running.as_ref().expect("running").store;
    let mismatches = domain::ledger::reconcile(store).await.expect("reconcile");
    assert!(mismatches.is_empty(), "balances differ from the ledger: {mismatches:?}");
}

fn id(v: &Value) -> String {
    v["entryId"].as_str().expect("entryId").to_owned()
}

#[tokio::test]
async fn every_entry_kind_books_its_vials_and_stays_in_the_history() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let t = Sites::token(&s.base);

    let got = receive(&app, &s.base, "FF3620", &day(60), 20).await;
    assert_eq!(
        (&got["kind"], &got["quantity"], &got["onHand"]),
        (&json!("RECEIVED"), &json!(20), &json!(20))
    );
    assert_eq!(got["municipality"], CHIYODA);
    assert_eq!(got["prefecture"], "13");
    assert_eq!(got["expiryDate"], day(60));

    let used = app.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 3)).await["recordAdministered"].clone();
    assert_eq!(
        (&used["kind"], &used["quantity"], &used["onHand"]),
        (&json!("ADMINISTERED"), &json!(-3), &json!(17))
    );

    let mut w = use_input(&s.base, "FF3620", 1);
    w["input"]["reason"] = json!("BROKEN_VIAL");
    let wasted = app.ok(&t, &waste_doc(), w).await["recordWaste"].clone();
    assert_eq!(
        (&wasted["kind"], &wasted["quantity"], &wasted["onHand"]),
        (&json!("WASTED"), &json!(-1), &json!(16))
    );

    let moved = app
        .ok(
            &t,
            &transfer_doc(),
            json!({ "input": { "from": s.base, "to": s.sat, "product": "comirnaty", "lot": "FF3620", "quantity": 4, "note": "午後の接種分" } }),
        )
        .await["transferStock"]
        .clone();
    assert_eq!(moved[0]["kind"], "TRANSFERRED_OUT");
    assert_eq!(
        (&moved[0]["site"], &moved[0]["quantity"], &moved[0]["onHand"]),
        (&json!(s.base), &json!(-4), &json!(12))
    );
    assert_eq!(moved[1]["kind"], "TRANSFERRED_IN");
    assert_eq!(
        (&moved[1]["site"], &moved[1]["quantity"], &moved[1]["onHand"]),
        (&json!(s.sat), &json!(4), &json!(4))
    );

    // The count finds 11 where the ledger says 12.
    let report = app
        .ok(
            &t,
            &report_doc(),
            json!({ "input": { "site": s.base, "reason": "月末棚卸", "lines": [{ "product": "comirnaty", "lot": "FF3620", "counted": 11 }] } }),
        )
        .await["reportStock"]
        .clone();
    let adj = &report["adjustments"][0];
    assert_eq!(
        (&adj["kind"], &adj["quantity"], &adj["onHand"]),
        (&json!("ADJUSTED"), &json!(-1), &json!(11))
    );
    assert_eq!(
        report["report"]["lines"][0],
        json!({ "product": "comirnaty", "lot": "FF3620", "expiryDate": day(60), "counted": 11, "ledgerBefore": 12, "difference": -1, "reason": "月末棚卸", "adjustmentEntry": adj["entryId"] })
    );

    // The administration was a mistake: reversed, the vials are back.
    let back = app
        .ok(
            &t,
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&used), "reason": "二重入力" }),
        )
        .await["reverseStockEntry"]
        .clone();
    assert_eq!(back.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (&back[0]["kind"], &back[0]["quantity"], &back[0]["onHand"]),
        (&json!("REVERSED"), &json!(3), &json!(14))
    );

    // A lot received ten days ago that expired two days ago: its vials can only be EXPIRED.
    let mut late = use_input(&s.base, "EP2163", 5);
    late["input"]["expiryDate"] = json!(day(-2));
    late["input"]["receivedOn"] = json!(day(-10));
    let old = app.ok(&t, &receive_doc(), late).await["recordReceipt"].clone();
    assert_eq!(old["onHand"], 5);
    let (c, m) = app
        .err(Some(&t), &administer_doc(), use_input(&s.base, "EP2163", 1))
        .await;
    assert_eq!((c.as_str(), m.contains("expired")), ("BAD_USER_INPUT", true), "{m}");
    let gone = app.ok(&t, &expired_doc(), use_input(&s.base, "EP2163", 5)).await["recordExpired"].clone();
    assert_eq!(
        (&gone["kind"], &gone["quantity"], &gone["onHand"]),
        (&json!("EXPIRED"), &json!(-5), &json!(0))
    );

    let balances = stock(&app, &s.base, true).await;
    let ff = balances
        .as_array()
        .expect("list")
        .iter()
        .find(|b| b["lot"] == "FF3620")
        .expect("FF3620")
        .clone();
    assert_eq!(
        ff,
        json!({ "site": s.base, "municipality": CHIYODA, "product": "comirnaty", "lot": "FF3620", "expiryDate": day(60),
                "onHand": 14, "onHandDoses": 84, "received": 20, "administered": 0, "wasted": 1, "expired": 0,
                "transferredIn": 0, "transferredOut": 4, "adjusted": -1 })
    );
    assert_eq!(
        stock(&app, &s.base, false).await.as_array().map(Vec::len),
        Some(1),
        "the used-up lot is left out unless asked for"
    );

    let entries = history(&app, &s.base).await;
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert_eq!(
        kinds,
        [
            "EXPIRED",
            "RECEIVED",
            "REVERSED",
            "ADJUSTED",
            "TRANSFERRED_OUT",
            "WASTED",
            "ADMINISTERED",
            "RECEIVED"
        ],
        "newest first"
    );
    assert_eq!(entries[2]["reverses"], json!(id(&used)));
    assert_eq!(entries[2]["reversesKind"], "ADMINISTERED");
    assert_eq!(entries[6]["reversedBy"], entries[2]["id"]);
    assert_eq!(entries[5]["wasteReason"], "BROKEN_VIAL");
    assert_eq!(entries[4]["counterpartSite"], json!(s.sat));
    assert_eq!(entries[4]["note"], "午後の接種分");
    assert_eq!(entries[3]["report"], report["report"]["id"]);
    assert_eq!(
        entries[1]["occurredOn"],
        day(-10),
        "a receipt is dated the day the vials arrived"
    );
    assert_eq!(entries[7]["delivery"], Value::Null);
    assert!(entries.iter().all(|e| e["actor"] == format!("SITE:{}", s.base)));
    let sat = history(&app, &s.sat).await;
    assert_eq!(sat.len(), 1);
    assert_eq!(
        (&sat[0]["kind"], &sat[0]["pairedEntry"], &sat[0]["counterpartSite"]),
        (&json!("TRANSFERRED_IN"), &entries[4]["id"], &json!(s.base))
    );
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn a_transfer_is_reversed_on_both_sides_and_only_once() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let t = Sites::token(&s.base);
    receive(&app, &s.base, "FF3620", &day(30), 10).await;
    let moved = app
        .ok(
            &t,
            &transfer_doc(),
            json!({ "input": { "from": s.base, "to": s.sat, "product": "comirnaty", "lot": "FF3620", "quantity": 6 } }),
        )
        .await["transferStock"]
        .clone();
    // The satellite side cannot be reversed on its own.
    let (c, m) = app
        .err(
            Some(&Sites::token(&s.sat)),
            &reverse_doc(),
            json!({ "site": s.sat, "entry": id(&moved[1]), "reason": "x" }),
        )
        .await;
    assert_eq!((c.as_str(), m.contains("base site")), ("BAD_USER_INPUT", true), "{m}");
    // The satellite used two of the six: only four can go back.
    app.ok(&Sites::token(&s.sat), &administer_doc(), use_input(&s.sat, "FF3620", 2))
        .await;
    let (c, m) = app
        .err(
            Some(&t),
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&moved[0]), "reason": "x" }),
        )
        .await;
    assert_eq!((c.as_str(), m.contains("only 4")), ("CONFLICT", true), "{m}");
    receive(&app, &s.sat, "FF3620", &day(30), 2).await;
    let back = app
        .ok(
            &t,
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&moved[0]), "reason": "送り先違い" }),
        )
        .await["reverseStockEntry"]
        .clone();
    let sides: Vec<(Value, Value, Value)> = back
        .as_array()
        .expect("list")
        .iter()
        .map(|c| (c["site"].clone(), c["quantity"].clone(), c["onHand"].clone()))
        .collect();
    assert_eq!(
        sides,
        vec![
            (json!(s.base), json!(6), json!(10)),
            (json!(s.sat), json!(-6), json!(0))
        ]
    );
    let (c, m) = app
        .err(
            Some(&t),
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&moved[0]), "reason": "x" }),
        )
        .await;
    assert_eq!((c.as_str(), m.contains("already reversed")), ("CONFLICT", true), "{m}");
    let (c, m) = app
        .err(
            Some(&t),
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&back[0]), "reason": "x" }),
        )
        .await;
    assert_eq!(
        (c.as_str(), m.contains("cannot be reversed")),
        ("BAD_USER_INPUT", true),
        "{m}"
    );
    assert_reconciled(&app).await;
}

/// Everything the API can see of the ledger: balances (with used-up lots) and histories.
async fn snapshot(app: &TestApp, s: &Sites) -> Value {
    let mut out = json!({});
    for site in [&s.base, &s.sat, &s.other, &s.other_sat, &s.far] {
        out[site] = json!({ "stock": stock(app, site, true).await, "history": history(app, site).await });
    }
    out
}

#[tokio::test]
async fn refused_movements_change_nothing() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let t = Sites::token(&s.base);
    receive(&app, &s.base, "FF3620", &day(30), 5).await;
    let used = app.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 1)).await["recordAdministered"].clone();
    let rev = app
        .ok(
            &t,
            &reverse_doc(),
            json!({ "site": s.base, "entry": id(&used), "reason": "誤入力" }),
        )
        .await["reverseStockEntry"][0]
        .clone();
    let mut expired_lot = use_input(&s.base, "EP2163", 3);
    expired_lot["input"]["expiryDate"] = json!(day(-1));
    expired_lot["input"]["receivedOn"] = json!(day(-5));
    app.ok(&t, &receive_doc(), expired_lot).await;
    let before = snapshot(&app, &s).await;

    let receipt = |site: &str, lot: &str, expiry: String, quantity: i64| json!({ "input": { "site": site, "product": "comirnaty", "lot": lot, "expiryDate": expiry, "quantity": quantity } });
    let transfer = |from: &str, to: &str, quantity: u64| json!({ "input": { "from": from, "to": to, "product": "comirnaty", "lot": "FF3620", "quantity": quantity } });
    let mut other_note = use_input(&s.base, "FF3620", 1);
    other_note["input"]["reason"] = json!("OTHER");
    let mut spikevax_at_sat = receipt(&s.sat, "3002183", day(30), 1);
    spikevax_at_sat["input"]["product"] = json!("spikevax");
    let mut needles = receipt(&s.base, "N123", day(30), 1);
    needles["input"]["product"] = json!("needle-25g");
    let mut future = receipt(&s.base, "FF9999", day(30), 1);
    future["input"]["receivedOn"] = json!(day(1));
    let report = |site: &str, lot: &str| json!({ "input": { "site": site, "reason": "棚卸", "lines": [{ "product": "comirnaty", "lot": lot, "counted": 0 }] } });
    let twice = json!({ "input": { "site": s.base, "reason": "棚卸", "lines": [
        { "product": "comirnaty", "lot": "FF3620", "counted": 1 }, { "product": "comirnaty", "lot": "FF3620", "counted": 2 } ] } });
    let n = token("NATIONAL", None);
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    // (what, token, document, variables, expected code, expected text)
    type Case<'a> = (&'a str, Option<String>, String, Value, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "withdrawal beyond the balance",
            Some(t.clone()),
            administer_doc(),
            use_input(&s.base, "FF3620", 6),
            "CONFLICT",
            "only 5",
        ),
        (
            "unknown lot",
            Some(t.clone()),
            administer_doc(),
            use_input(&s.base, "ZZ0000", 1),
            "BAD_USER_INPUT",
            "input.lot",
        ),
        (
            "lot held elsewhere",
            Some(Sites::token(&s.sat)),
            administer_doc(),
            use_input(&s.sat, "FF3620", 1),
            "BAD_USER_INPUT",
            "holds no lot",
        ),
        (
            "expired lot used",
            Some(t.clone()),
            administer_doc(),
            use_input(&s.base, "EP2163", 1),
            "BAD_USER_INPUT",
            "expired",
        ),
        (
            "expired lot wasted beyond",
            Some(t.clone()),
            expired_doc(),
            use_input(&s.base, "EP2163", 4),
            "CONFLICT",
            "only 3",
        ),
        (
            "good lot recorded as expired",
            Some(t.clone()),
            expired_doc(),
            use_input(&s.base, "FF3620", 1),
            "BAD_USER_INPUT",
            "WASTED",
        ),
        (
            "expired lot received",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "FF1111", day(-1), 1),
            "BAD_USER_INPUT",
            "expired",
        ),
        (
            "known lot, other expiry",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "FF3620", day(31), 1),
            "BAD_USER_INPUT",
            "on record",
        ),
        (
            "receipt dated tomorrow",
            Some(t.clone()),
            receive_doc(),
            future,
            "BAD_USER_INPUT",
            "future",
        ),
        (
            "zero vials",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "FF3620", day(30), 0),
            "BAD_USER_INPUT",
            "at least 1",
        ),
        (
            "negative vials",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "FF3620", day(30), -1),
            "BAD_USER_INPUT",
            "input.quantity",
        ),
        (
            "absurd vials",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "FF3620", day(30), 2_000_000),
            "BAD_USER_INPUT",
            "at most",
        ),
        (
            "malformed lot",
            Some(t.clone()),
            receive_doc(),
            receipt(&s.base, "ff3620", day(30), 1),
            "BAD_USER_INPUT",
            "LotNumber",
        ),
        (
            "product the site does not handle",
            Some(Sites::token(&s.sat)),
            receive_doc(),
            spikevax_at_sat,
            "BAD_USER_INPUT",
            "does not handle",
        ),
        (
            "an ancillary",
            Some(t.clone()),
            receive_doc(),
            needles,
            "BAD_USER_INPUT",
            "vaccines",
        ),
        (
            "waste OTHER without a note",
            Some(t.clone()),
            waste_doc(),
            other_note,
            "BAD_USER_INPUT",
            "input.note",
        ),
        (
            "transfer to a base site",
            Some(t.clone()),
            transfer_doc(),
            transfer(&s.base, &s.other, 1),
            "BAD_USER_INPUT",
            "not a satellite",
        ),
        (
            "transfer to another base's satellite",
            Some(t.clone()),
            transfer_doc(),
            transfer(&s.base, &s.other_sat, 1),
            "BAD_USER_INPUT",
            "not a satellite",
        ),
        (
            "transfer from a satellite",
            Some(Sites::token(&s.sat)),
            transfer_doc(),
            transfer(&s.sat, &s.base, 1),
            "BAD_USER_INPUT",
            "not a base site",
        ),
        (
            "transfer beyond the balance",
            Some(t.clone()),
            transfer_doc(),
            transfer(&s.base, &s.sat, 6),
            "CONFLICT",
            "only 5",
        ),
        (
            "transfer of another site's stock",
            Some(Sites::token(&s.sat)),
            transfer_doc(),
            transfer(&s.base, &s.sat, 1),
            "FORBIDDEN",
            "own stock",
        ),
        (
            "another site's stock",
            Some(Sites::token(&s.other)),
            administer_doc(),
            use_input(&s.base, "FF3620", 1),
            "FORBIDDEN",
            "own stock",
        ),
        (
            "a municipality writing stock",
            Some(chiyoda.clone()),
            administer_doc(),
            use_input(&s.base, "FF3620", 1),
            "FORBIDDEN",
            "site that holds it",
        ),
        (
            "NATIONAL writing stock",
            Some(n.clone()),
            receive_doc(),
            receipt(&s.base, "FF3620", day(30), 1),
            "FORBIDDEN",
            "site that holds it",
        ),
        (
            "anonymous",
            None,
            administer_doc(),
            use_input(&s.base, "FF3620", 1),
            "UNAUTHENTICATED",
            "token",
        ),
        (
            "report for another site",
            Some(Sites::token(&s.other)),
            report_doc(),
            report(&s.base, "FF3620"),
            "FORBIDDEN",
            "own stock",
        ),
        (
            "report of an unknown lot",
            Some(t.clone()),
            report_doc(),
            report(&s.base, "XX0001"),
            "BAD_USER_INPUT",
            "no lot",
        ),
        (
            "report listing a lot twice",
            Some(t.clone()),
            report_doc(),
            twice,
            "BAD_USER_INPUT",
            "twice",
        ),
        (
            "reversing twice",
            Some(t.clone()),
            reverse_doc(),
            json!({ "site": s.base, "entry": id(&used), "reason": "x" }),
            "CONFLICT",
            "already reversed",
        ),
        (
            "reversing a reversal",
            Some(t.clone()),
            reverse_doc(),
            json!({ "site": s.base, "entry": id(&rev), "reason": "x" }),
            "BAD_USER_INPUT",
            "cannot be reversed",
        ),
        (
            "reversing another site's entry",
            Some(Sites::token(&s.other)),
            reverse_doc(),
            json!({ "site": s.other, "entry": id(&used), "reason": "x" }),
            "NOT_FOUND",
            "not found",
        ),
        (
            "reversing without a reason",
            Some(t.clone()),
            reverse_doc(),
            json!({ "site": s.base, "entry": id(&used), "reason": " " }),
            "BAD_USER_INPUT",
            "reason",
        ),
    ];
    for (what, tok, doc, vars, want_code, want_text) in cases {
        let (c, m) = app.err(tok.as_deref(), &doc, vars).await;
        assert_eq!(c, want_code, "{what}: {m}");
        assert!(m.contains(want_text), "{what}: {want_text:?} not in {m:?}");
    }
    assert_eq!(snapshot(&app, &s).await, before, "a refusal changed the ledger");
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn concurrent_writers_never_take_stock_below_zero() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 60).await;
    // 60 vials; 48 administrations of 1 and 12 transfers of 2 to the satellite ask for 72.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), Sites::token(&s.base));
        let body = if i % 5 == 4 {
            json!({ "query": transfer_doc(), "variables": { "input": { "from": s.base, "to": s.sat, "product": "comirnaty", "lot": "FF3620", "quantity": 2 } } })
        } else {
            json!({ "query": administer_doc(), "variables": use_input(&s.base, "FF3620", 1) })
        };
        tasks.push(tokio::spawn(async move {
            let resp: Value = client
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            resp
        }));
    }
    let mut taken = 0u64;
    let mut refused = 0;
    for task in tasks {
        let body = task.await.expect("task");
        if let Some(errors) = body.get("errors") {
            assert_eq!(errors[0]["extensions"]["code"], "CONFLICT", "{body}");
            refused += 1;
        } else if let Some(c) = body["data"]["recordAdministered"].as_object() {
            assert!(c["onHand"].as_u64().is_some());
            taken += 1;
        } else {
            assert_eq!(body["data"]["transferStock"][0]["quantity"], -2, "{body}");
            taken += 2;
        }
    }
    assert_eq!(taken, 60, "every vial was taken exactly once");
    assert!(refused >= 6, "the surplus requests were refused ({refused})");
    let base = stock(&app, &s.base, true).await;
    assert_eq!(base[0]["onHand"], 0);
    let sat = stock(&app, &s.sat, true).await;
    let base_history = history(&app, &s.base).await;
    // Each entry's balance-after is unique and the balances step down to zero: no two writers
    // ever read the same balance.
    let mut after: Vec<u64> = base_history
        .iter()
        .filter(|e| e["kind"] != "RECEIVED")
        .map(|e| e["balanceAfter"].as_u64().expect("n"))
        .collect();
    after.sort_unstable();
    after.dedup();
    assert_eq!(after.len(), base_history.len() - 1);
    assert_eq!(after[0], 0);
    assert_eq!(
        base[0]["administered"].as_u64().expect("n") + sat[0]["onHand"].as_u64().expect("n"),
        60
    );
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn simultaneous_withdrawals_from_many_lots_each_get_their_own_answer() {
    // On PostgreSQL withdrawals arriving together are written as one statement (ledger::combine);
    // every caller must still get its own lot's balance and kind, and counters must split by kind.
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let sites = [&s.base, &s.sat, &s.other, &s.far];
    let lots: Vec<(String, String, u64)> = (0..12)
        .map(|i| (sites[i % sites.len()].clone(), format!("LOT{i:02}"), 4 + i as u64))
        .collect();
    for (site, lot, n) in &lots {
        receive(&app, site, lot, &day(30), *n).await;
    }
    // Each lot gets two more single-vial requests than it holds; every third one is waste.
    let mut tasks = Vec::new();
    for round in 0..16u64 {
        for (site, lot, n) in &lots {
            if round >= n + 2 {
                continue;
            }
            let waste = round % 3 == 2;
            let body = if waste {
                json!({ "query": waste_doc(), "variables": { "input": { "site": site, "product": "comirnaty", "lot": lot, "quantity": 1, "reason": "BROKEN_VIAL" } } })
            } else {
                json!({ "query": administer_doc(), "variables": use_input(site, lot, 1) })
            };
            let (client, url, t) = (app.client.clone(), app.url("/graphql"), Sites::token(site));
            let (site, lot) = (site.clone(), lot.clone());
            tasks.push(tokio::spawn(async move {
                let resp: Value = client
                    .post(url)
                    .bearer_auth(t)
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                (site, lot, waste, resp)
            }));
        }
    }
    let mut done: std::collections::HashMap<String, (u64, u64, Vec<u64>)> = Default::default();
    for task in tasks {
        let (site, lot, waste, body) = task.await.expect("task");
        let slot = done.entry(lot.clone()).or_default();
        if let Some(errors) = body.get("errors") {
            assert_eq!(errors[0]["extensions"]["code"], "CONFLICT", "{body}");
            continue;
        }
        let change = if waste {
            &body["data"]["recordWaste"]
        } else {
            &body["data"]["recordAdministered"]
        };
        assert_eq!(
            (change["site"].as_str(), change["lot"].as_str()),
            (Some(site.as_str()), Some(lot.as_str())),
            "{body}"
        );
        assert_eq!(change["kind"], if waste { "WASTED" } else { "ADMINISTERED" });
        assert_eq!(change["quantity"], -1);
        if waste {
            slot.1 += 1
        } else {
            slot.0 += 1
        }
        slot.2.push(change["onHand"].as_u64().expect("onHand"));
    }
    for (site, lot, n) in &lots {
        let (administered, wasted, mut after) = done.remove(lot).expect("answers");
        assert_eq!(administered + wasted, *n, "lot {lot}: every vial taken exactly once");
        // The answers step the lot down through n-1 … 0, each exactly once.
        after.sort_unstable();
        assert_eq!(after, (0..*n).collect::<Vec<_>>(), "lot {lot}");
        let rows = stock(&app, site, true).await;
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["lot"] == lot.as_str())
            .expect("lot row")
            .clone();
        assert_eq!(
            (
                row["onHand"].as_u64(),
                row["administered"].as_u64(),
                row["wasted"].as_u64()
            ),
            (Some(0), Some(administered), Some(wasted)),
            "lot {lot}"
        );
    }
    assert_reconciled(&app).await;
}

#[tokio::test]
async fn two_servers_on_one_postgres_never_oversell_a_lot() {
    // Two instances share a database only on PostgreSQL; on SQLite the single-writer lock is
    // per process, and one process per file is the rule.
    let first = TestApp::spawn().await;
    if !first.db.is_postgres() {
        return;
    }
    let s = seed(&first).await;
    let second = TestApp::spawn_on_shared(&first).await;
    receive(&first, &s.base, "FF3620", &day(30), 30).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { &first } else { &second };
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), Sites::token(&s.base));
        let body = json!({ "query": administer_doc(), "variables": use_input(&s.base, "FF3620", 1) });
        tasks.push(tokio::spawn(async move {
            let v: Value = client
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            v
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let body = task.await.expect("task");
        match body.get("errors") {
            None => ok += 1,
            Some(e) => assert_eq!(e[0]["extensions"]["code"], "CONFLICT", "{body}"),
        }
    }
    assert_eq!(ok, 30);
    assert_eq!(stock(&second, &s.base, true).await[0]["onHand"], 0);
    assert_reconciled(&first).await;
}

#[tokio::test]
async fn a_count_adjusts_the_ledger_and_reports_are_read_in_their_area() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let t = Sites::token(&s.base);
    receive(&app, &s.base, "FF3620", &day(30), 10).await;
    receive(&app, &s.base, "FF4000", &day(40), 5).await;
    receive(&app, &s.other, "FF5000", &day(40), 5).await;
    // FF5000 is known (received in Shinjuku) but never was at this site: 2 vials found.
    let out = app
        .ok(
            &t,
            &report_doc(),
            json!({ "input": { "site": s.base, "countedOn": day(0), "reason": "月末棚卸", "lines": [
                { "product": "comirnaty", "lot": "FF4000", "counted": 5 },
                { "product": "comirnaty", "lot": "FF3620", "counted": 7, "reason": "破損3本を未記録" },
                { "product": "comirnaty", "lot": "FF5000", "counted": 2 } ] } }),
        )
        .await["reportStock"]
        .clone();
    let lines = &out["report"]["lines"];
    assert_eq!(out["report"]["reason"], "月末棚卸");
    assert_eq!(out["report"]["actor"], format!("SITE:{}", s.base));
    assert_eq!(
        (&lines[0]["lot"], &lines[0]["difference"], &lines[0]["reason"]),
        (&json!("FF3620"), &json!(-3), &json!("破損3本を未記録"))
    );
    assert_eq!(
        (&lines[1]["lot"], &lines[1]["difference"], &lines[1]["adjustmentEntry"]),
        (&json!("FF4000"), &json!(0), &Value::Null),
        "an equal count books nothing"
    );
    assert_eq!(
        (&lines[2]["lot"], &lines[2]["ledgerBefore"], &lines[2]["difference"]),
        (&json!("FF5000"), &json!(0), &json!(2))
    );
    let adjustments: Vec<(Value, Value)> = out["adjustments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| (a["lot"].clone(), a["onHand"].clone()))
        .collect();
    assert_eq!(
        adjustments,
        vec![(json!("FF3620"), json!(7)), (json!("FF5000"), json!(2))]
    );

    const REPORTS: &str = "query($site: SiteCode, $m: MunicipalityCode, $p: PrefectureCode) { stockReports(site: $site, municipality: $m, prefecture: $p) { edges { node { id site lines { lot difference } } } } }";
    let ids = |data: &Value| -> Vec<Value> {
        data["stockReports"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["site"].clone())
            .collect()
    };
    for (who, vars, sites) in [
        (token("MUNICIPALITY", Some(CHIYODA)), json!({}), vec![json!(s.base)]),
        (token("PREFECTURE", Some("13")), json!({}), vec![json!(s.base)]),
        (token("PREFECTURE", Some("13")), json!({ "m": SHINJUKU }), vec![]),
        (token("NATIONAL", None), json!({ "site": s.base }), vec![json!(s.base)]),
        (t.clone(), json!({}), vec![json!(s.base)]),
    ] {
        assert_eq!(ids(&app.ok(&who, REPORTS, vars.clone()).await), sites, "{vars}");
    }
    for (who, vars, want) in [
        (
            token("MUNICIPALITY", Some(SHINJUKU)),
            json!({ "site": s.base }),
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(SHINJUKU)),
            json!({ "m": CHIYODA }),
            "FORBIDDEN",
        ),
        (token("PREFECTURE", Some("01")), json!({ "p": "13" }), "FORBIDDEN"),
        (Sites::token(&s.other), json!({ "site": s.base }), "FORBIDDEN"),
        (token("WHOLESALER", Some("suzuken")), json!({}), "FORBIDDEN"),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            json!({ "m": CHIYODA, "p": "13" }),
            "BAD_USER_INPUT",
        ),
    ] {
        let (c, m) = app.err(Some(&who), REPORTS, vars.clone()).await;
        assert_eq!(c, want, "{vars}: {m}");
    }
    assert_reconciled(&app).await;
}

/// A municipality code with a valid check digit that names no municipality.
fn unknown_municipality() -> String {
    let digit = domain::codes::jis_x0402_check_digit(&[1, 3, 9, 9, 9]);
    format!("13999{digit}")
}

const SUMMARY: &str = "query($site: SiteCode, $m: MunicipalityCode, $p: PrefectureCode, $product: ProductCode) { stockSummary(site: $site, municipality: $m, prefecture: $p, product: $product) { area products { product onHand onHandDoses received administered wasted sitesWithStock recentAdministered recentDays daysOfSupply } } }";

#[tokio::test]
async fn aggregates_sum_their_area_with_days_of_supply() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 100).await;
    receive(&app, &s.other, "FF3620", &day(30), 50).await;
    receive(&app, &s.far, "FF3620", &day(30), 40).await;
    app.ok(
        &Sites::token(&s.base),
        &administer_doc(),
        use_input(&s.base, "FF3620", 14),
    )
    .await;
    app.ok(
        &Sites::token(&s.other),
        &administer_doc(),
        use_input(&s.other, "FF3620", 7),
    )
    .await;
    let mut w = use_input(&s.far, "FF3620", 4);
    w["input"]["reason"] = json!("TEMPERATURE_EXCURSION");
    app.ok(&Sites::token(&s.far), &waste_doc(), w).await;

    let n = token("NATIONAL", None);
    let one = |data: Value| data["stockSummary"].clone();
    let chiyoda = one(app.ok(&token("MUNICIPALITY", Some(CHIYODA)), SUMMARY, json!({})).await);
    assert_eq!(chiyoda["area"], format!("municipality:{CHIYODA}"));
    // 86 on hand, 14 used in the last 7 days = 2 a day: 43 days.
    assert_eq!(
        chiyoda["products"],
        json!([{ "product": "comirnaty", "onHand": 86, "onHandDoses": 516, "received": 100, "administered": 14, "wasted": 0,
                 "sitesWithStock": 1, "recentAdministered": 14, "recentDays": 7, "daysOfSupply": 43 }])
    );
    let tokyo = one(app.ok(&n, SUMMARY, json!({ "p": "13" })).await);
    assert_eq!(tokyo["area"], "prefecture:13");
    assert_eq!(
        (
            &tokyo["products"][0]["onHand"],
            &tokyo["products"][0]["sitesWithStock"],
            &tokyo["products"][0]["daysOfSupply"]
        ),
        (&json!(129), &json!(2), &json!(43))
    );
    let nation = one(app.ok(&n, SUMMARY, json!({})).await);
    assert_eq!(nation["area"], "nation");
    assert_eq!(
        (
            &nation["products"][0]["onHand"],
            &nation["products"][0]["wasted"],
            &nation["products"][0]["recentAdministered"]
        ),
        (&json!(165), &json!(4), &json!(21))
    );
    let sapporo_site = one(app.ok(&Sites::token(&s.far), SUMMARY, json!({})).await);
    assert_eq!(sapporo_site["area"], format!("site:{}", s.far));
    assert_eq!(
        sapporo_site["products"][0]["daysOfSupply"],
        Value::Null,
        "nothing used: no rate"
    );
    assert_eq!(
        one(app.ok(&n, SUMMARY, json!({ "product": "spikevax" })).await)["products"],
        json!([])
    );

    for (who, vars, want) in [
        (token("MUNICIPALITY", Some(CHIYODA)), json!({ "p": "13" }), "FORBIDDEN"),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            json!({ "m": SHINJUKU }),
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            json!({ "site": s.far }),
            "FORBIDDEN",
        ),
        (token("PREFECTURE", Some("13")), json!({ "site": s.far }), "FORBIDDEN"),
        (token("PREFECTURE", Some("01")), json!({ "m": CHIYODA }), "FORBIDDEN"),
        (Sites::token(&s.base), json!({ "m": CHIYODA }), "FORBIDDEN"),
        (token("FEDERATION", Some("13")), json!({}), "FORBIDDEN"),
        (token("MEDICAL_ASSOCIATION", Some(CHIYODA)), json!({}), "FORBIDDEN"),
        (n.clone(), json!({ "m": unknown_municipality() }), "NOT_FOUND"),
        (n.clone(), json!({ "site": code("131202009") }), "NOT_FOUND"),
    ] {
        let (c, m) = app.err(Some(&who), SUMMARY, vars.clone()).await;
        assert_eq!(c, want, "{vars}: {m}");
    }
    let (c, _) = app.err(None, SUMMARY, json!({})).await;
    assert_eq!(c, "UNAUTHENTICATED");
    let (c, m) = app
        .err(Some(&n), "{ stockSummary(recentDays: 0) { area } }", json!({}))
        .await;
    assert_eq!((c.as_str(), m.contains("recentDays")), ("BAD_USER_INPUT", true), "{m}");
}

#[tokio::test]
async fn balances_and_history_are_read_in_scope_only() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 10).await;
    for (who, ok) in [
        (Sites::token(&s.base), true),
        (token("MUNICIPALITY", Some(CHIYODA)), true),
        (token("PREFECTURE", Some("13")), true),
        (token("NATIONAL", None), true),
        (Sites::token(&s.sat), false),
        (token("MUNICIPALITY", Some(SHINJUKU)), false),
        (token("PREFECTURE", Some("01")), false),
        (token("WHOLESALER", Some("suzuken")), false),
    ] {
        for doc in [STOCK, HISTORY] {
            let (_, body) = app.post(Some(&who), doc, json!({ "site": s.base })).await;
            match body.get("errors") {
                None => assert!(ok, "{who} read {doc}"),
                Some(e) => assert!(!ok && e[0]["extensions"]["code"] == "FORBIDDEN", "{body}"),
            }
        }
    }
}

#[tokio::test]
async fn history_pages_newest_first() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 10).await;
    for _ in 0..4 {
        app.ok(
            &Sites::token(&s.base),
            &administer_doc(),
            use_input(&s.base, "FF3620", 1),
        )
        .await;
    }
    let n = token("NATIONAL", None);
    let page1 = app.ok(&n, HISTORY, json!({ "site": s.base, "first": 3 })).await["stockHistory"].clone();
    let after = page1["edges"][2]["cursor"].as_str().expect("cursor").to_owned();
    let page2 = app
        .ok(&n, HISTORY, json!({ "site": s.base, "first": 3, "after": after }))
        .await["stockHistory"]
        .clone();
    let balances = |p: &Value| -> Vec<u64> {
        p["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["balanceAfter"].as_u64().expect("n"))
            .collect()
    };
    assert_eq!(balances(&page1), vec![6, 7, 8]);
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    assert_eq!(balances(&page2), vec![9, 10]);
    assert_eq!(page2["pageInfo"]["hasNextPage"], false);
    let (c, _) = app
        .err(Some(&n), HISTORY, json!({ "site": s.base, "first": 501 }))
        .await;
    assert_eq!(c, "BAD_USER_INPUT");
}

#[tokio::test]
async fn lots_expiring_soon_are_listed_soonest_first_in_scope() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF0003", &day(3), 5).await;
    receive(&app, &s.base, "FF0060", &day(60), 5).await;
    receive(&app, &s.other, "FF0010", &day(10), 5).await;
    receive(&app, &s.far, "FF0001", &day(1), 5).await;
    let mut old = use_input(&s.base, "EP0000", 2);
    old["input"]["expiryDate"] = json!(day(-1));
    old["input"]["receivedOn"] = json!(day(-3));
    app.ok(&Sites::token(&s.base), &receive_doc(), old).await;
    receive(&app, &s.base, "FF0002", &day(2), 1).await;
    app.ok(
        &Sites::token(&s.base),
        &administer_doc(),
        use_input(&s.base, "FF0002", 1),
    )
    .await;
    const EXPIRING: &str = "query($d: Int!, $p: PrefectureCode) { expiringLots(withinDays: $d, prefecture: $p) { site lot expiryDate onHand } }";
    let lots = |data: &Value| -> Vec<String> {
        data["expiringLots"]
            .as_array()
            .expect("list")
            .iter()
            .map(|l| l["lot"].as_str().expect("lot").to_owned())
            .collect()
    };
    let n = token("NATIONAL", None);
    assert_eq!(
        lots(&app.ok(&n, EXPIRING, json!({ "d": 14 })).await),
        vec!["EP0000", "FF0001", "FF0003", "FF0010"],
        "expired-but-on-hand first, used-up lots left out"
    );
    assert_eq!(
        lots(&app.ok(&n, EXPIRING, json!({ "d": 14, "p": "13" })).await),
        vec!["EP0000", "FF0003", "FF0010"]
    );
    assert_eq!(
        lots(
            &app.ok(&token("MUNICIPALITY", Some(CHIYODA)), EXPIRING, json!({ "d": 5 }))
                .await
        ),
        vec!["EP0000", "FF0003"]
    );
    let (c, _) = app
        .err(
            Some(&token("MUNICIPALITY", Some(CHIYODA))),
            EXPIRING,
            json!({ "d": 5, "p": "13" }),
        )
        .await;
    assert_eq!(c, "FORBIDDEN");
    let (c, _) = app.err(Some(&n), EXPIRING, json!({ "d": 400 })).await;
    assert_eq!(c, "BAD_USER_INPUT");
}
