//! Deliveries through GraphQL: a wholesaler delivers against an order in parts, the site
//! confirms receipt with accepted and rejected vials (which enter its stock and reach
//! `stockChanged` subscribers), the order shows ordered / delivered / accepted, re-sends are
//! idempotent, and every refusal changes nothing. Runs on both storage modes.

use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token};

use crate::stock::{CHIYODA, SHINJUKU, assert_reconciled, code, day};
use crate::subscriptions_stock::SUBSCRIBE;

/// Comirnaty: 195 vials to a box.
const BOX: u64 = 195;
const FAR: &str = "2099-12-31";

struct World {
    round: i64,
    /// Chiyoda site supplied by suzuken; its order has 1 box.
    a: String,
    /// Chiyoda site supplied by medipal; its order has 1 box.
    b: String,
}

impl World {
    fn order_a(&self) -> String {
        format!("{}-{}", self.round, self.a)
    }
    fn order_b(&self) -> String {
        format!("{}-{}", self.round, self.b)
    }
}

fn suzuken() -> String {
    token("WHOLESALER", Some("suzuken"))
}
fn medipal() -> String {
    token("WHOLESALER", Some("medipal"))
}
fn site(code: &str) -> String {
    token("SITE", Some(code))
}

/// Two Chiyoda clinics with orders of one box each (round walked down from the nation).
async fn seed(app: &TestApp) -> World {
    let n = token("NATIONAL", None);
    let a = code("131203001");
    let b = code("131203002");
    for (c, name, w) in [(&a, "さくら内科", "suzuken"), (&b, "中央病院", "medipal")] {
        let mut i = clinic_input(c, CHIYODA, name);
        i["wholesaler"] = json!(w);
        app.ok(&n, REGISTER, json!({ "input": i })).await;
    }
    let round = app
        .ok(
            &n,
            "mutation($input: CreateRoundInput!) { createRound(input: $input) { id } }",
            json!({ "input": { "product": "comirnaty", "number": 9, "startsOn": "2021-07-05", "supply": 10 } }),
        )
        .await["createRound"]["id"]
        .as_i64()
        .expect("round");
    let set = "mutation($round: Int!, $owner: AllocationOwner, $lines: [AllocationLineInput!]!) { setAllocationLines(round: $round, owner: $owner, lines: $lines) { id } }";
    let confirm = "mutation($round: Int!, $owner: AllocationOwner) { confirmAllocation(round: $round, owner: $owner) { status } }";
    let steps = [
        (n.clone(), "NATIONAL", json!([{ "child": "13", "boxes": 10 }])),
        (
            token("PREFECTURE", Some("13")),
            "13",
            json!([{ "child": CHIYODA, "boxes": 10 }]),
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            CHIYODA,
            json!([{ "child": a, "boxes": 1 }, { "child": b, "boxes": 1 }]),
        ),
    ];
    for (t, owner, lines) in steps {
        app.ok(&t, set, json!({ "round": round, "owner": owner, "lines": lines }))
            .await;
        app.ok(&t, confirm, json!({ "round": round, "owner": owner })).await;
    }
    World { round, a, b }
}

const DELIVERY: &str = "id order wholesaler site municipality product idempotencyKey deliveredOn vials overDeliveryReason note registeredBy lots { lot expiryDate vials accepted rejected } receipt { receivedOn accepted rejected rejectionReason rejectionNote confirmedBy }";

fn register_doc() -> String {
    format!(
        "mutation($input: RegisterDeliveryInput!) {{ registerDelivery(input: $input) {{ created delivery {{ {DELIVERY} }} }} }}"
    )
}

fn confirm_doc() -> String {
    format!(
        "mutation($input: ConfirmDeliveryReceiptInput!) {{ confirmDeliveryReceipt(input: $input) {{ delivery {{ {DELIVERY} }} stockChanges {{ site lot kind quantity onHand }} }} }}"
    )
}

const FULFILMENT: &str = "query($id: String!) { order(id: $id) { vials fulfilment { ordered delivered awaitingReceipt accepted rejected outstanding deliveries } deliveries { id } } }";
const DELIVERIES: &str = "query($filter: DeliveryFilterInput) { deliveries(first: 100, filter: $filter) { edges { node { id order vials } } } }";
const ONE: &str = "query($id: ID!) { delivery(id: $id) { id order vials } }";
const STOCK: &str = "query($site: SiteCode!) { stock(site: $site) { lot onHand received } }";

/// A delivery input with (lot, expiry, vials) lines.
fn delivery(order: &str, key: &str, lots: &[(&str, &str, u64)]) -> Value {
    json!({
        "order": order,
        "idempotencyKey": key,
        "deliveredOn": day(-1),
        "lots": lots.iter().map(|(l, e, v)| json!({ "lot": l, "expiryDate": e, "vials": v })).collect::<Vec<_>>(),
    })
}

async fn register(app: &TestApp, t: &str, input: Value) -> Value {
    app.ok(t, &register_doc(), json!({ "input": input })).await["registerDelivery"].clone()
}

fn fulfilment(ordered: u64, delivered: u64, awaiting: u64, accepted: u64, rejected: u64, n: u64) -> Value {
    json!({
        "ordered": ordered,
        "delivered": delivered,
        "awaitingReceipt": awaiting,
        "accepted": accepted,
        "rejected": rejected,
        "outstanding": ordered.saturating_sub(delivered - rejected),
        "deliveries": n,
    })
}

async fn order_view(app: &TestApp, t: &str, id: &str) -> Value {
    app.ok(t, FULFILMENT, json!({ "id": id })).await["order"].clone()
}

/// Everything a refused request could have changed: every delivery (with lots and receipt),
/// both orders' sums, both sites' stock.
async fn snapshot(app: &TestApp, w: &World) -> Value {
    let n = token("NATIONAL", None);
    let all = app
        .ok(
            &n,
            &format!("query {{ deliveries(first: 200) {{ edges {{ node {{ {DELIVERY} }} }} }} }}"),
            json!({}),
        )
        .await;
    json!({
        "deliveries": all,
        "a": order_view(app, &n, &w.order_a()).await,
        "b": order_view(app, &n, &w.order_b()).await,
        "stockA": app.ok(&n, STOCK, json!({ "site": w.a })).await,
        "stockB": app.ok(&n, STOCK, json!({ "site": w.b })).await,
    })
}

/// Expects a refusal: returns (code, extensions.field, message).
async fn refused(app: &TestApp, t: &str, query: &str, vars: Value) -> (String, Option<String>, String) {
    let (_, body) = app.post(Some(t), query, vars).await;
    let (code, message) = tests::error_of(&body);
    let field = body["errors"][0]["extensions"]["field"].as_str().map(str::to_owned);
    (code, field, message)
}

#[tokio::test]
async fn partial_deliveries_and_a_partial_receipt_reach_the_order_and_the_stock() {
    let app = TestApp::spawn().await;
    let w = seed(&app).await;
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    assert_eq!(
        order_view(&app, &chiyoda, &w.order_a()).await,
        json!({ "vials": BOX, "fulfilment": fulfilment(BOX, 0, 0, 0, 0, 0), "deliveries": [] })
    );

    // First part: two lots, 150 of 195 vials.
    let first = register(
        &app,
        &suzuken(),
        delivery(
            &w.order_a(),
            "suzuken-0001",
            &[("FF3620", FAR, 100), ("FF4204", FAR, 50)],
        ),
    )
    .await;
    assert_eq!(first["created"], true);
    let d1 = first["delivery"].clone();
    let d1_id = d1["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (
            &d1["order"],
            &d1["wholesaler"],
            &d1["site"],
            &d1["product"],
            &d1["vials"],
            &d1["registeredBy"]
        ),
        (
            &json!(w.order_a()),
            &json!("suzuken"),
            &json!(w.a),
            &json!("comirnaty"),
            &json!(150),
            &json!("WHOLESALER:suzuken")
        )
    );
    assert_eq!(
        d1["lots"],
        json!([
            { "lot": "FF3620", "expiryDate": FAR, "vials": 100, "accepted": null, "rejected": null },
            { "lot": "FF4204", "expiryDate": FAR, "vials": 50, "accepted": null, "rejected": null },
        ])
    );
    assert_eq!(d1["receipt"], Value::Null);
    assert_eq!(
        order_view(&app, &chiyoda, &w.order_a()).await["fulfilment"],
        fulfilment(BOX, 150, 150, 0, 0, 1)
    );
    // Delivered is not in stock until the site confirms it.
    let n = token("NATIONAL", None);
    assert_eq!(app.ok(&n, STOCK, json!({ "site": w.a })).await["stock"], json!([]));

    // The site's subscriber hears of the receipt once it committed.
    let mut ws = app.ws(&site(&w.a)).await;
    let sub = ws.subscribe(SUBSCRIBE, json!({ "site": w.a })).await;
    app.wait_for_metric(crate::subscriptions_stock::SUBSCRIPTIONS, 1.0)
        .await;

    // Partial receipt: 10 vials of FF3620 arrived broken.
    let confirmed = app
        .ok(
            &site(&w.a),
            &confirm_doc(),
            json!({ "input": {
                "delivery": d1_id,
                "lots": [
                    { "lot": "FF4204", "accepted": 50, "rejected": 0 },
                    { "lot": "FF3620", "accepted": 90, "rejected": 10 },
                ],
                "rejectionReason": "DAMAGED",
                "rejectionNote": "two trays cracked",
            } }),
        )
        .await["confirmDeliveryReceipt"]
        .clone();
    assert_eq!(
        confirmed["stockChanges"],
        json!([
            { "site": w.a, "lot": "FF3620", "kind": "RECEIVED", "quantity": 90, "onHand": 90 },
            { "site": w.a, "lot": "FF4204", "kind": "RECEIVED", "quantity": 50, "onHand": 50 },
        ])
    );
    let receipt = &confirmed["delivery"]["receipt"];
    assert_eq!(
        (
            &receipt["receivedOn"],
            &receipt["accepted"],
            &receipt["rejected"],
            &receipt["rejectionReason"],
            &receipt["rejectionNote"],
            &receipt["confirmedBy"]
        ),
        (
            &json!(day(0)),
            &json!(140),
            &json!(10),
            &json!("DAMAGED"),
            &json!("two trays cracked"),
            &json!(format!("SITE:{}", w.a))
        )
    );
    assert_eq!(confirmed["delivery"]["lots"][0]["accepted"], 90);
    assert_eq!(confirmed["delivery"]["lots"][0]["rejected"], 10);
    for (lot, on_hand) in [("FF3620", 90), ("FF4204", 50)] {
        let e = ws.next_data(&sub).await["stockChanged"].clone();
        assert_eq!(
            (e["lot"].as_str(), e["kind"].as_str(), e["onHand"].as_u64()),
            (Some(lot), Some("RECEIVED"), Some(on_hand))
        );
    }
    assert_eq!(
        app.ok(&n, STOCK, json!({ "site": w.a })).await["stock"],
        json!([
            { "lot": "FF3620", "onHand": 90, "received": 90 },
            { "lot": "FF4204", "onHand": 50, "received": 50 },
        ])
    );
    assert_eq!(
        order_view(&app, &chiyoda, &w.order_a()).await["fulfilment"],
        fulfilment(BOX, 150, 0, 140, 10, 1)
    );
    // A receipt booked from a delivery is corrected on the delivery, never reversed.
    let history = app
        .ok(
            &n,
            "query($site: SiteCode!) { stockHistory(site: $site, first: 10) { edges { node { id delivery } } } }",
            json!({ "site": w.a }),
        )
        .await;
    let entry = history["stockHistory"]["edges"][0]["node"].clone();
    assert_eq!(entry["delivery"], json!(d1_id));
    let (code, _, message) = refused(
        &app,
        &site(&w.a),
        "mutation($site: SiteCode!, $entry: ID!) { reverseStockEntry(site: $site, entry: $entry, reason: \"typo\") { entryId } }",
        json!({ "site": w.a, "entry": entry["id"] }),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");

    // Second part: the 10 rejected vials are replaced and the last 45 sent — 195 kept, exactly
    // what was ordered, so no reason is needed.
    let second = register(
        &app,
        &suzuken(),
        delivery(&w.order_a(), "suzuken-0002", &[("FF4204", FAR, 55)]),
    )
    .await;
    assert_eq!(second["created"], true);
    assert_eq!(
        order_view(&app, &chiyoda, &w.order_a()).await["fulfilment"],
        fulfilment(BOX, 205, 55, 140, 10, 2)
    );
    // One vial more is over-delivery: refused without a reason, accepted with one.
    let over = delivery(&w.order_a(), "suzuken-0003", &[("FF4204", FAR, 1)]);
    let (code, field, _) = refused(&app, &suzuken(), &register_doc(), json!({ "input": over })).await;
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("BAD_USER_INPUT", Some("input.overDeliveryReason"))
    );
    let mut over = over;
    over["overDeliveryReason"] = json!("spare vial for breakage agreed with the municipality");
    let third = register(&app, &suzuken(), over).await;
    assert_eq!(
        third["delivery"]["overDeliveryReason"],
        "spare vial for breakage agreed with the municipality"
    );
    let view = order_view(&app, &chiyoda, &w.order_a()).await;
    assert_eq!(view["fulfilment"], fulfilment(BOX, 206, 56, 140, 10, 3));
    assert_eq!(view["deliveries"].as_array().map(Vec::len), Some(3));
    // The second delivery's FF4204 joins the same lot at the site.
    let d2 = second["delivery"]["id"].clone();
    app.ok(
        &site(&w.a),
        &confirm_doc(),
        json!({ "input": { "delivery": d2, "lots": [{ "lot": "FF4204", "accepted": 55, "rejected": 0 }] } }),
    )
    .await;
    let e = ws.next_data(&sub).await["stockChanged"].clone();
    assert_eq!((e["quantity"].as_i64(), e["onHand"].as_u64()), (Some(55), Some(105)));
    ws.close().await;
    assert_eq!(
        order_view(&app, &chiyoda, &w.order_a()).await["fulfilment"],
        fulfilment(BOX, 206, 1, 195, 10, 3)
    );
    assert_reconciled(&app).await;

    // Who reads deliveries: the addressee, the site, its municipality and above.
    let d1_query = json!({ "id": d1_id });
    for t in [
        suzuken(),
        site(&w.a),
        chiyoda.clone(),
        token("PREFECTURE", Some("13")),
        n.clone(),
    ] {
        assert_eq!(
            app.ok(&t, ONE, d1_query.clone()).await["delivery"]["order"],
            json!(w.order_a())
        );
        let listed = app.ok(&t, DELIVERIES, json!({})).await["deliveries"]["edges"].clone();
        assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    }
    for t in [
        medipal(),
        site(&w.b),
        token("MUNICIPALITY", Some(SHINJUKU)),
        token("PREFECTURE", Some("27")),
    ] {
        let (code, _, _) = refused(&app, &t, ONE, d1_query.clone()).await;
        assert_eq!(code, "NOT_FOUND");
        let listed = app.ok(&t, DELIVERIES, json!({})).await["deliveries"]["edges"].clone();
        assert_eq!(listed, json!([]));
    }
    for t in [
        token("MEDICAL_ASSOCIATION", Some(CHIYODA)),
        token("FEDERATION", Some("13")),
    ] {
        let (code, _, _) = refused(&app, &t, DELIVERIES, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
    }
    let pending = app
        .ok(&n, DELIVERIES, json!({ "filter": { "confirmed": false } }))
        .await;
    assert_eq!(
        pending["deliveries"]["edges"][0]["node"]["id"], third["delivery"]["id"],
        "only the third awaits receipt"
    );
    assert_eq!(pending["deliveries"]["edges"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_resent_delivery_changes_nothing_and_a_reused_key_conflicts() {
    let app = TestApp::spawn().await;
    let w = seed(&app).await;
    let input = delivery(
        &w.order_a(),
        "wms-2026-11-0042",
        &[("FF3620", FAR, 60), ("FF4204", FAR, 40)],
    );
    let first = register(&app, &suzuken(), input.clone()).await;
    assert_eq!(first["created"], true);
    let before = snapshot(&app, &w).await;

    // The same delivery again (lots in another order): the original, nothing new.
    let mut again = input.clone();
    again["lots"] = json!([input["lots"][1], input["lots"][0]]);
    let resent = register(&app, &suzuken(), again).await;
    assert_eq!(resent["created"], false);
    assert_eq!(resent["delivery"], first["delivery"]);
    assert_eq!(snapshot(&app, &w).await, before);

    // The same key with other content: CONFLICT, nothing changed.
    let mut other = input.clone();
    other["lots"][0]["vials"] = json!(61);
    let (code, _, message) = refused(&app, &suzuken(), &register_doc(), json!({ "input": other })).await;
    assert_eq!(code, "CONFLICT", "{message}");
    assert!(message.contains("wms-2026-11-0042"), "{message}");
    assert_eq!(snapshot(&app, &w).await, before);

    // Keys belong to a wholesaler: medipal may use the same one for its own order.
    let theirs = register(
        &app,
        &medipal(),
        delivery(&w.order_b(), "wms-2026-11-0042", &[("EX0001", FAR, 20)]),
    )
    .await;
    assert_eq!(theirs["created"], true);

    // Six identical requests at once with a fresh key: one delivery, the same for everyone.
    let body = json!({ "query": register_doc(), "variables": { "input": delivery(&w.order_a(), "burst-1", &[("FF3620", FAR, 5)]) } });
    let t = suzuken();
    let sends = (0..6).map(|_| {
        let (client, url, t, body) = (app.client.clone(), app.url("/graphql"), t.clone(), body.clone());
        tokio::spawn(async move {
            let resp = client.post(url).bearer_auth(t).json(&body).send().await.expect("send");
            resp.json::<Value>().await.expect("json")
        })
    });
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for s in sends {
        let b = s.await.expect("task");
        assert!(b.get("errors").is_none(), "{b}");
        let r = &b["data"]["registerDelivery"];
        created += usize::from(r["created"] == true);
        ids.insert(r["delivery"]["id"].as_str().expect("id").to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(
        order_view(&app, &token("NATIONAL", None), &w.order_a()).await["fulfilment"],
        fulfilment(BOX, 105, 105, 0, 0, 2)
    );
}

#[tokio::test]
async fn refused_deliveries_and_receipts_change_nothing() {
    let app = TestApp::spawn().await;
    let w = seed(&app).await;
    let d = register(
        &app,
        &suzuken(),
        delivery(&w.order_a(), "k-1", &[("FF3620", FAR, 100), ("FF4204", FAR, 50)]),
    )
    .await["delivery"]["id"]
        .clone();
    let before = snapshot(&app, &w).await;
    let doc = register_doc();

    let with = |f: &dyn Fn(&mut Value)| {
        let mut i = delivery(&w.order_a(), "k-2", &[("FF5555", FAR, 10)]);
        f(&mut i);
        json!({ "input": i })
    };
    let cases: Vec<(String, Value, &str, Option<&str>)> = vec![
        // Another wholesaler's order; roles that do not deliver.
        (medipal(), with(&|_| {}), "FORBIDDEN", None),
        (site(&w.a), with(&|_| {}), "FORBIDDEN", None),
        (token("MUNICIPALITY", Some(CHIYODA)), with(&|_| {}), "FORBIDDEN", None),
        (token("NATIONAL", None), with(&|_| {}), "FORBIDDEN", None),
        (
            suzuken(),
            with(&|i| i["order"] = json!("999-1312030018")),
            "NOT_FOUND",
            None,
        ),
        // An expired lot (expired the day before it was delivered).
        (
            suzuken(),
            with(&|i| i["lots"][0]["expiryDate"] = json!(day(-2))),
            "BAD_USER_INPUT",
            Some("input.lots[0].expiryDate"),
        ),
        // A lot on record with another expiry date.
        (
            suzuken(),
            with(&|i| {
                i["lots"][0]["lot"] = json!("FF3620");
                i["lots"][0]["expiryDate"] = json!("2099-12-30");
            }),
            "BAD_USER_INPUT",
            Some("input.lots[0].expiryDate"),
        ),
        (
            suzuken(),
            with(&|i| i["deliveredOn"] = json!(day(1))),
            "BAD_USER_INPUT",
            Some("input.deliveredOn"),
        ),
        (
            suzuken(),
            with(&|i| i["lots"] = json!([])),
            "BAD_USER_INPUT",
            Some("input.lots"),
        ),
        (
            suzuken(),
            with(
                &|i| i["lots"] = json!([{ "lot": "FF1", "expiryDate": FAR, "vials": 1 }, { "lot": "FF1", "expiryDate": FAR, "vials": 1 }]),
            ),
            "BAD_USER_INPUT",
            Some("input.lots[1].lot"),
        ),
        (
            suzuken(),
            with(&|i| i["lots"][0]["vials"] = json!(0)),
            "BAD_USER_INPUT",
            Some("input.lots[0].vials"),
        ),
        (
            suzuken(),
            with(&|i| i["lots"][0]["vials"] = json!(-3)),
            "BAD_USER_INPUT",
            None,
        ),
        (
            suzuken(),
            with(&|i| i["lots"][0]["lot"] = json!("bad lot!")),
            "BAD_USER_INPUT",
            None,
        ),
        (
            suzuken(),
            with(&|i| i["idempotencyKey"] = json!("  ")),
            "BAD_USER_INPUT",
            Some("input.idempotencyKey"),
        ),
        // More than ordered (150 delivered, 46 more would make 196 of 195) without a reason.
        (
            suzuken(),
            with(&|i| i["lots"][0]["vials"] = json!(46)),
            "BAD_USER_INPUT",
            Some("input.overDeliveryReason"),
        ),
    ];
    for (i, (t, vars, want, field)) in cases.into_iter().enumerate() {
        let (code, got_field, message) = refused(&app, &t, &doc, vars).await;
        assert_eq!(code, want, "case {i}: {message}");
        if let Some(f) = field {
            assert_eq!(got_field.as_deref(), Some(f), "case {i}: {message}");
        }
        assert_eq!(snapshot(&app, &w).await, before, "case {i} changed something");
    }
    // Exactly the ordered remainder is fine (and keeps the later cases honest).
    let ok = register(&app, &suzuken(), delivery(&w.order_a(), "k-3", &[("FF5555", FAR, 45)])).await;
    let before = snapshot(&app, &w).await;

    let confirm = confirm_doc();
    let receipt = |lots: Value, extra: Value| {
        let mut i = json!({ "delivery": d, "lots": lots });
        if let (Some(i), Some(e)) = (i.as_object_mut(), extra.as_object()) {
            i.extend(e.clone());
        }
        json!({ "input": i })
    };
    let full = json!([{ "lot": "FF3620", "accepted": 100, "rejected": 0 }, { "lot": "FF4204", "accepted": 50, "rejected": 0 }]);
    let cases: Vec<(String, Value, &str, Option<&str>)> = vec![
        (site(&w.b), receipt(full.clone(), json!({})), "FORBIDDEN", None),
        (suzuken(), receipt(full.clone(), json!({})), "FORBIDDEN", None),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            receipt(full.clone(), json!({})),
            "FORBIDDEN",
            None,
        ),
        (
            site(&w.a),
            receipt(full.clone(), json!({ "delivery": "987654" })),
            "NOT_FOUND",
            None,
        ),
        (
            site(&w.a),
            receipt(full.clone(), json!({ "delivery": "abc" })),
            "BAD_USER_INPUT",
            None,
        ),
        (
            site(&w.a),
            receipt(json!([{ "lot": "FF3620", "accepted": 100, "rejected": 0 }]), json!({})),
            "BAD_USER_INPUT",
            Some("input.lots"),
        ),
        (
            site(&w.a),
            receipt(
                json!([{ "lot": "FF3620", "accepted": 99, "rejected": 0 }, { "lot": "FF4204", "accepted": 50, "rejected": 0 }]),
                json!({}),
            ),
            "BAD_USER_INPUT",
            Some("input.lots[0].accepted"),
        ),
        (
            site(&w.a),
            receipt(
                json!([{ "lot": "FF3620", "accepted": 95, "rejected": 5 }, { "lot": "FF4204", "accepted": 50, "rejected": 0 }]),
                json!({}),
            ),
            "BAD_USER_INPUT",
            Some("input.rejectionReason"),
        ),
        (
            site(&w.a),
            receipt(
                json!([{ "lot": "FF3620", "accepted": 95, "rejected": 5 }, { "lot": "FF4204", "accepted": 50, "rejected": 0 }]),
                json!({ "rejectionReason": "OTHER" }),
            ),
            "BAD_USER_INPUT",
            Some("input.rejectionNote"),
        ),
        (
            site(&w.a),
            receipt(full.clone(), json!({ "receivedOn": day(-2) })),
            "BAD_USER_INPUT",
            Some("input.receivedOn"),
        ),
        (
            site(&w.a),
            receipt(
                json!([{ "lot": "FF3620", "accepted": 100, "rejected": 0 }, { "lot": "FF4204", "accepted": 50, "rejected": 0 }, { "lot": "FF5555", "accepted": 1, "rejected": 0 }]),
                json!({}),
            ),
            "BAD_USER_INPUT",
            Some("input.lots[2].lot"),
        ),
    ];
    for (i, (t, vars, want, field)) in cases.into_iter().enumerate() {
        let (code, got_field, message) = refused(&app, &t, &confirm, vars).await;
        assert_eq!(code, want, "receipt case {i}: {message}");
        if let Some(f) = field {
            assert_eq!(got_field.as_deref(), Some(f), "receipt case {i}: {message}");
        }
        assert_eq!(snapshot(&app, &w).await, before, "receipt case {i} changed something");
    }

    // Confirmed once; a second confirmation is CONFLICT and books nothing more.
    app.ok(&site(&w.a), &confirm, receipt(full.clone(), json!({}))).await;
    let after = snapshot(&app, &w).await;
    let (code, _, _) = refused(&app, &site(&w.a), &confirm, receipt(full, json!({}))).await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(snapshot(&app, &w).await, after);
    assert_eq!(after["stockA"]["stock"].as_array().map(Vec::len), Some(2));
    assert_eq!(ok["created"], true);
    assert_reconciled(&app).await;
}
