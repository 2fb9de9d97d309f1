//! Allocation through GraphQL: a round walked from the national supply down to site orders and
//! their outbox entries, every refusal on the way, row scope, and concurrent edits.

use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token, venue_input};

const CHIYODA: &str = "131016";
const SHINJUKU: &str = "131041";
const SAPPORO: &str = "011002";
const OSAKA: &str = "271004";

/// Tokyo medical code 13-1-20-number with its check digit.
fn tokyo_code(number: u32) -> String {
    domain::codes::SiteCode::with_check_digit(&format!("13120{number:04}"))
        .expect("code")
        .to_string()
}

/// The sites of the walk, all in Chiyoda unless said otherwise.
struct Sites {
    /// Base, ultra-cold freezer, wholesaler suzuken.
    a: String,
    /// Base, ultra-cold freezer, wholesaler medipal.
    b: String,
    /// Satellite of `a` (no freezer).
    satellite: String,
    /// Base with a −20 °C freezer only.
    frozen: String,
    /// Base, ultra-cold, no designated wholesaler.
    no_wholesaler: String,
    /// Withdrawn.
    withdrawn: String,
    /// A mass venue registered by the municipality (assigned code), wholesaler alfresa.
    venue: String,
    /// In Shinjuku.
    shinjuku: String,
}

async fn register(app: &TestApp, input: Value) -> String {
    let t = token("NATIONAL", None);
    app.ok(&t, REGISTER, json!({ "input": input })).await["registerSite"]["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

async fn seed_sites(app: &TestApp) -> Sites {
    let with = |code: &str, name: &str, wholesaler: Option<&str>| {
        let mut i = clinic_input(code, CHIYODA, name);
        if let Some(w) = wholesaler {
            i["wholesaler"] = json!(w);
        }
        i
    };
    let a = register(app, with(&tokyo_code(2001), "さくら内科", Some("suzuken"))).await;
    let b = register(app, with(&tokyo_code(2002), "中央病院", Some("medipal"))).await;
    let mut sat = with(&tokyo_code(2003), "みどり小児科", Some("suzuken"));
    sat["coldChain"] = json!({ "role": "SATELLITE", "baseSite": a });
    let satellite = register(app, sat).await;
    let mut fr = with(&tokyo_code(2004), "ひかり医院", Some("suzuken"));
    fr["coldChain"] = json!({ "role": "BASE", "freezerClass": "FROZEN" });
    let frozen = register(app, fr).await;
    let no_wholesaler = register(app, with(&tokyo_code(2005), "駅前クリニック", None)).await;
    let withdrawn = register(app, with(&tokyo_code(2006), "閉院医院", Some("suzuken"))).await;
    app.ok(
        &token("NATIONAL", None),
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { status } }",
        json!({ "c": withdrawn }),
    )
    .await;
    let mut v = venue_input(CHIYODA, "千代田区集団接種会場");
    v["wholesaler"] = json!("alfresa");
    let venue = app
        .ok(&token("MUNICIPALITY", Some(CHIYODA)), REGISTER, json!({ "input": v }))
        .await["registerSite"]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let mut s = clinic_input(&tokyo_code(2007), SHINJUKU, "新宿クリニック");
    s["wholesaler"] = json!("suzuken");
    let shinjuku = register(app, s).await;
    Sites {
        a,
        b,
        satellite,
        frozen,
        no_wholesaler,
        withdrawn,
        venue,
        shinjuku,
    }
}

const IMPORT_POPULATION: &str = "mutation($csv: String!) { importTargetPopulation(csv: $csv) { imported } }";
const CREATE_ROUND: &str = "mutation($input: CreateRoundInput!) { createRound(input: $input) { id number startsOn endsOn supply status product { code storageClass } } }";
const SET_SUPPLY: &str = "mutation($round: Int!, $product: ProductCode!, $supply: Boxes!) { setRoundSupply(round: $round, product: $product, supply: $supply) { id supply status } }";
const REQUEST: &str = "mutation($round: Int!, $boxes: Boxes!, $note: String) { submitAllocationRequest(round: $round, boxes: $boxes, note: $note) { level requester prefecture municipality boxes note submittedBy } }";
const REQUESTS: &str = "query($round: Int!) { allocationRequests(round: $round) { level requester boxes } }";

fn fields() -> &'static str {
    "id owner ownerName level status received allocated unallocated version linesComplete confirmedBy \
     lines { child childName childLevel boxes proposed edited editedBy reason { weight request cap eligible \
     ineligible baseShare adjustmentShare idealShare capped shareAfterCaps roundedUp boxes explanation } } \
     proposal { total adjustmentPercent basePool adjustmentPool baseBy adjustmentBy capAtRequest weightTotal \
     requestTotal eligibleChildren cappedChildren allocated unallocated proposedBy }"
}

fn propose_q() -> String {
    format!(
        "mutation($round: Int!, $owner: AllocationOwner, $options: ProposeOptionsInput) {{ proposeAllocation(round: $round, owner: $owner, options: $options) {{ {} }} }}",
        fields()
    )
}

fn set_lines_q() -> String {
    format!(
        "mutation($round: Int!, $owner: AllocationOwner, $lines: [AllocationLineInput!]!, $v: Int) {{ setAllocationLines(round: $round, owner: $owner, lines: $lines, expectedVersion: $v) {{ {} }} }}",
        fields()
    )
}

fn get_q() -> String {
    format!(
        "query($round: Int!, $owner: AllocationOwner) {{ allocation(round: $round, owner: $owner) {{ {} }} }}",
        fields()
    )
}

const CONFIRM: &str = "mutation($round: Int!, $owner: AllocationOwner, $v: Int) { confirmAllocation(round: $round, owner: $owner, expectedVersion: $v) { id status version confirmedBy received allocated } }";
const ORDERS: &str = "query($filter: OrderFilterInput) { orders(first: 100, filter: $filter) { edges { node { id roundId product site municipality wholesaler boxes vials doses status createdBy ancillaries { product perVial pieces } } } } }";
const OUTBOX: &str = "query { outbox(first: 100) { id topic aggregateType aggregateKey destination idempotencyKey status attempts lastError payload } }";

fn line<'a>(alloc: &'a Value, child: &str) -> &'a Value {
    alloc["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["child"] == child)
        .unwrap_or_else(|| panic!("no line for {child} in {alloc}"))
}

fn boxes_of(alloc: &Value, child: &str) -> u64 {
    line(alloc, child)["boxes"].as_u64().expect("boxes")
}

fn sum_lines(alloc: &Value) -> u64 {
    alloc["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["boxes"].as_u64().expect("boxes"))
        .sum()
}

fn order_ids(data: &Value) -> Vec<String> {
    let mut ids: Vec<String> = data["orders"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn create_round(app: &TestApp, supply: Option<u64>) -> i64 {
    let r = app
        .ok(
            &token("NATIONAL", None),
            CREATE_ROUND,
            json!({ "input": { "product": "comirnaty", "number": 9, "startsOn": "2021-07-05", "supply": supply } }),
        )
        .await;
    r["createRound"]["id"].as_i64().expect("id")
}

async fn import_population(app: &TestApp) {
    let csv = format!(
        "municipality_code,population\n{CHIYODA},60000\n{SHINJUKU},340000\n{SAPPORO},1600000\n{OSAKA},2000000\n"
    );
    let r = app
        .ok(&token("NATIONAL", None), IMPORT_POPULATION, json!({ "csv": csv }))
        .await;
    assert_eq!(r["importTargetPopulation"]["imported"], 4);
}

/// Expects a refusal with `code` whose message contains `text`, and that the allocation of
/// `owner` kept its version (nothing changed).
async fn refused(app: &TestApp, t: &str, query: &str, vars: Value, code: &str, text: &str) {
    let (got, message) = app.err(Some(t), query, vars.clone()).await;
    assert_eq!(got, code, "{vars}: {message}");
    assert!(message.contains(text), "{text:?} not in {message:?}");
}

async fn version(app: &TestApp, round: i64, owner: &str) -> i64 {
    app.ok(
        &token("NATIONAL", None),
        "query($round: Int!, $owner: AllocationOwner) { allocation(round: $round, owner: $owner) { version } }",
        json!({ "round": round, "owner": owner }),
    )
    .await["allocation"]["version"]
        .as_i64()
        .expect("version")
}

#[tokio::test]
async fn a_round_walks_from_supply_to_site_orders_and_outbox_entries() {
    let app = TestApp::spawn().await;
    let sites = seed_sites(&app).await;
    let n = token("NATIONAL", None);
    let tokyo = token("PREFECTURE", Some("13"));
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));

    // ❶ the round and its national supply
    import_population(&app).await;
    let round = create_round(&app, None).await;
    let r = app
        .ok(
            &n,
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": 1000 }),
        )
        .await;
    assert_eq!(
        r["setRoundSupply"],
        json!({ "id": round, "supply": 1000, "status": "DRAFT" })
    );

    // requests (希望量), each to the level above
    for (t, boxes) in [
        (tokyo.clone(), 300),
        (chiyoda.clone(), 50),
        (token("SITE", Some(&sites.a)), 10),
        (token("SITE", Some(&sites.b)), 30),
    ] {
        app.ok(&t, REQUEST, json!({ "round": round, "boxes": boxes, "note": "" }))
            .await;
    }

    // ❷ NATIONAL → prefectures: base 800 by population (Tokyo 400,000 of 4,000,000), the
    // adjustment 200 by request (only Tokyo asked)
    let p = app.ok(&n, &propose_q(), json!({ "round": round })).await["proposeAllocation"].clone();
    assert_eq!(p["lines"].as_array().expect("lines").len(), 47);
    assert_eq!(
        (
            boxes_of(&p, "13"),
            boxes_of(&p, "01"),
            boxes_of(&p, "27"),
            boxes_of(&p, "47")
        ),
        (280, 320, 400, 0)
    );
    assert_eq!(sum_lines(&p), 1000);
    assert_eq!(p["proposal"]["basePool"], 800);
    assert_eq!(p["proposal"]["adjustmentBy"], "REQUEST");
    assert_eq!(p["proposal"]["weightTotal"], 4_000_000);
    assert_eq!(line(&p, "13")["childName"], "東京都");
    assert_eq!(
        line(&p, "13")["reason"]["explanation"],
        "base share 80.00 of 800 boxes by target population 400000 of 4000000; adjustment share 200.00 of 200 \
         boxes by request 300 of 300; together 280.00 → 280 boxes"
    );

    // editing: over-allocation is refused and changes nothing; a balanced edit is kept
    let v = p["version"].as_i64().expect("version");
    refused(
        &app,
        &n,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": "13", "boxes": 300 }] }),
        "BAD_USER_INPUT",
        "would hand out 1020 boxes",
    )
    .await;
    refused(
        &app,
        &n,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": "13", "boxes": -1 }] }),
        "BAD_USER_INPUT",
        "must not be negative",
    )
    .await;
    assert_eq!(version(&app, round, "NATIONAL").await, v, "refusals changed nothing");
    let e = app
        .ok(
            &n,
            &set_lines_q(),
            json!({ "round": round, "v": v, "lines": [{ "child": "13", "boxes": 300 }, { "child": "27", "boxes": 380 }] }),
        )
        .await["setAllocationLines"]
        .clone();
    assert_eq!(
        (boxes_of(&e, "13"), boxes_of(&e, "27"), sum_lines(&e)),
        (300, 380, 1000)
    );
    assert_eq!(line(&e, "13")["proposed"], 280);
    assert_eq!(line(&e, "13")["edited"], true);
    assert_eq!(line(&e, "13")["editedBy"], "NATIONAL");
    refused(
        &app,
        &n,
        &set_lines_q(),
        json!({ "round": round, "v": v, "lines": [{ "child": "01", "boxes": 0 }] }),
        "CONFLICT",
        "changed since you read it",
    )
    .await;

    // a prefecture cannot act before the level above confirmed
    refused(
        &app,
        &tokyo,
        &propose_q(),
        json!({ "round": round }),
        "CONFLICT",
        "has not confirmed",
    )
    .await;
    refused(
        &app,
        &tokyo,
        CONFIRM,
        json!({ "round": round }),
        "CONFLICT",
        "has not confirmed",
    )
    .await;
    // only the owner edits
    refused(
        &app,
        &tokyo,
        &propose_q(),
        json!({ "round": round, "owner": "NATIONAL" }),
        "FORBIDDEN",
        "only NATIONAL edits",
    )
    .await;

    let c = app.ok(&n, CONFIRM, json!({ "round": round })).await["confirmAllocation"].clone();
    assert_eq!(
        (c["status"].as_str(), c["confirmedBy"].as_str()),
        (Some("CONFIRMED"), Some("NATIONAL"))
    );

    // a confirmed level is final
    refused(
        &app,
        &n,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": "01", "boxes": 0 }] }),
        "CONFLICT",
        "is confirmed",
    )
    .await;
    refused(
        &app,
        &n,
        SET_SUPPLY,
        json!({ "round": round, "product": "comirnaty", "supply": 2000 }),
        "CONFLICT",
        "is confirmed",
    )
    .await;
    refused(&app, &n, CONFIRM, json!({ "round": round }), "CONFLICT", "is confirmed").await;
    refused(
        &app,
        &tokyo,
        REQUEST,
        json!({ "round": round, "boxes": 5 }),
        "CONFLICT",
        "requests for round",
    )
    .await;

    // ❸ Tokyo received 300: its own line of the national allocation, and its own allocation
    let seen = app
        .ok(&tokyo, &get_q(), json!({ "round": round, "owner": "NATIONAL" }))
        .await["allocation"]
        .clone();
    assert_eq!(seen["linesComplete"], false);
    assert_eq!(seen["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(boxes_of(&seen, "13"), 300);
    refused(
        &app,
        &token("PREFECTURE", Some("27")),
        &get_q(),
        json!({ "round": round, "owner": "13" }),
        "FORBIDDEN",
        "outside your scope",
    )
    .await;
    let own = app.ok(&tokyo, &get_q(), json!({ "round": round })).await["allocation"].clone();
    assert_eq!(
        (own["received"].as_u64(), own["status"].as_str()),
        (Some(300), Some("DRAFT"))
    );

    // Tokyo → municipalities: base 240 (Chiyoda 60,000 and Shinjuku 340,000 of 400,000), the
    // adjustment 60 to Chiyoda, the only municipality that asked
    let tp = app.ok(&tokyo, &propose_q(), json!({ "round": round })).await["proposeAllocation"].clone();
    assert_eq!(
        (boxes_of(&tp, CHIYODA), boxes_of(&tp, SHINJUKU), sum_lines(&tp)),
        (96, 204, 300)
    );
    assert_eq!(line(&tp, CHIYODA)["childName"], "千代田区");
    refused(
        &app,
        &tokyo,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": SAPPORO, "boxes": 1 }] }),
        "FORBIDDEN",
        "outside prefecture 13",
    )
    .await;
    app.ok(&tokyo, CONFIRM, json!({ "round": round })).await;

    // ❹ Chiyoda → sites: weights are the sites' requests (a 10, b 30); satellites, too-warm
    // freezers and withdrawn sites get nothing, with the reason
    let cp = app.ok(&chiyoda, &propose_q(), json!({ "round": round })).await["proposeAllocation"].clone();
    assert_eq!(cp["received"], 96);
    assert_eq!((boxes_of(&cp, &sites.a), boxes_of(&cp, &sites.b)), (24, 72));
    for (code, why) in [(&sites.satellite, "NO_FREEZER"), (&sites.frozen, "FREEZER_TOO_WARM")] {
        assert_eq!(boxes_of(&cp, code), 0);
        assert_eq!(line(&cp, code)["reason"]["ineligible"], why);
        assert!(
            line(&cp, code)["reason"]["explanation"]
                .as_str()
                .is_some_and(|e| e.starts_with("0 boxes: ")),
            "{cp}"
        );
    }
    assert!(
        cp["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .all(|l| l["child"] != sites.withdrawn.as_str() && l["child"] != sites.shinjuku.as_str()),
        "withdrawn and out-of-area sites are not children: {cp}"
    );

    // caps: a per-site maximum, and capping at requests (the rest stays unallocated)
    let capped = app
        .ok(
            &chiyoda,
            &propose_q(),
            json!({ "round": round, "options": { "caps": [{ "child": sites.a, "max": 20 }] } }),
        )
        .await["proposeAllocation"]
        .clone();
    assert_eq!((boxes_of(&capped, &sites.a), boxes_of(&capped, &sites.b)), (20, 76));
    assert_eq!(line(&capped, &sites.a)["reason"]["capped"], true);
    let at_request = app
        .ok(
            &chiyoda,
            &propose_q(),
            json!({ "round": round, "options": { "capAtRequest": true } }),
        )
        .await["proposeAllocation"]
        .clone();
    assert_eq!(
        (
            boxes_of(&at_request, &sites.a),
            boxes_of(&at_request, &sites.b),
            at_request["unallocated"].as_u64()
        ),
        (10, 30, Some(56))
    );
    app.ok(&chiyoda, &propose_q(), json!({ "round": round })).await;

    // refusals at site level, each changing nothing
    let v = version(&app, round, CHIYODA).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!([{ "child": sites.satellite, "boxes": 1 }]),
            "BAD_USER_INPUT",
            "satellite",
        ),
        (
            json!([{ "child": sites.frozen, "boxes": 1 }]),
            "BAD_USER_INPUT",
            "not cold enough",
        ),
        (
            json!([{ "child": sites.withdrawn, "boxes": 1 }]),
            "BAD_USER_INPUT",
            "withdrawn",
        ),
        (
            json!([{ "child": sites.shinjuku, "boxes": 1 }]),
            "FORBIDDEN",
            "outside municipality 131016",
        ),
        (
            json!([{ "child": tokyo_code(2099), "boxes": 1 }]),
            "BAD_USER_INPUT",
            "no site",
        ),
        (
            json!([{ "child": "131016", "boxes": 1 }]),
            "BAD_USER_INPUT",
            "lines[0].child",
        ),
        (
            json!([{ "child": sites.venue, "boxes": 1 }]),
            "BAD_USER_INPUT",
            "would hand out 97 boxes",
        ),
        (
            json!([{ "child": sites.a, "boxes": 1 }, { "child": sites.a, "boxes": 2 }]),
            "BAD_USER_INPUT",
            "appears twice",
        ),
    ];
    for (lines, code, text) in cases {
        refused(
            &app,
            &chiyoda,
            &set_lines_q(),
            json!({ "round": round, "lines": lines }),
            code,
            text,
        )
        .await;
    }
    assert_eq!(version(&app, round, CHIYODA).await, v, "refusals changed nothing");

    // a site with boxes but no wholesaler blocks the confirmation: listed, nothing written
    app.ok(
        &chiyoda,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.b, "boxes": 67 }, { "child": sites.no_wholesaler, "boxes": 5 }] }),
    )
    .await;
    let problems = app
        .ok(
            &chiyoda,
            "query($round: Int!) { allocation(round: $round) { problems { subject reason message } } }",
            json!({ "round": round }),
        )
        .await;
    assert_eq!(
        problems["allocation"]["problems"][0]["subject"].as_str(),
        Some(sites.no_wholesaler.as_str())
    );
    let (_, body) = app.post(Some(&chiyoda), CONFIRM, json!({ "round": round })).await;
    let err = &body["errors"][0];
    assert_eq!(err["extensions"]["code"], "CONFLICT", "{body}");
    assert_eq!(
        err["extensions"]["blocking"],
        json!([{
            "subject": sites.no_wholesaler,
            "reason": "NO_WHOLESALER",
            "message": format!("site {} has boxes but no designated wholesaler; designate one or set its line to 0 before confirming", sites.no_wholesaler)
        }])
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains(&sites.no_wholesaler) && m.contains("nothing was confirmed")),
        "{body}"
    );
    let none = app.ok(&n, OUTBOX, json!({})).await;
    assert_eq!(none["outbox"], json!([]), "nothing written on refusal");
    assert_eq!(order_ids(&app.ok(&n, ORDERS, json!({})).await), Vec::<String>::new());

    // the municipality designates a wholesaler, then confirms: one order per site with boxes
    app.ok(
        &chiyoda,
        "mutation($c: SiteCode!) { updateSite(code: $c, input: { wholesaler: \"toho\" }) { wholesaler } }",
        json!({ "c": sites.no_wholesaler }),
    )
    .await;
    let done = app.ok(&chiyoda, CONFIRM, json!({ "round": round })).await["confirmAllocation"].clone();
    assert_eq!(done["status"], "CONFIRMED");
    assert_eq!(done["confirmedBy"], format!("MUNICIPALITY:{CHIYODA}"));

    let orders = app.ok(&n, ORDERS, json!({ "filter": { "round": round } })).await;
    let mut want: Vec<String> = [&sites.a, &sites.b, &sites.no_wholesaler]
        .iter()
        .map(|s| format!("{round}-{s}"))
        .collect();
    want.sort();
    assert_eq!(order_ids(&orders), want);
    let order_a = orders["orders"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .find(|o| o["site"] == sites.a.as_str())
        .expect("order of a");
    assert_eq!(
        *order_a,
        json!({
            "id": format!("{round}-{}", sites.a), "roundId": round, "product": "comirnaty", "site": sites.a,
            "municipality": CHIYODA, "wholesaler": "suzuken", "boxes": 24, "vials": 4680, "doses": 28080,
            "status": "CREATED", "createdBy": "MUNICIPALITY:131016",
            "ancillaries": [
                { "product": "needle-25g", "perVial": 6, "pieces": 28080 },
                { "product": "syringe-lds", "perVial": 6, "pieces": 28080 }
            ]
        })
    );

    // one outbox entry per order, written with it
    let outbox = app.ok(&n, OUTBOX, json!({})).await["outbox"].clone();
    let entries = outbox.as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    let entry = entries
        .iter()
        .find(|e| e["aggregateKey"] == format!("{round}-{}", sites.a))
        .expect("entry of a");
    assert_eq!(
        (
            &entry["topic"],
            &entry["aggregateType"],
            &entry["destination"],
            &entry["idempotencyKey"],
            &entry["status"],
            &entry["attempts"],
            &entry["lastError"]
        ),
        (
            &json!("order.created"),
            &json!("order"),
            &json!("wholesaler:suzuken"),
            &json!(format!("order.created:{round}-{}", sites.a)),
            &json!("PENDING"),
            &json!(0),
            &Value::Null
        )
    );
    let payload = &entry["payload"];
    assert_eq!(payload["schemaVersion"], 1);
    assert_eq!(payload["orderId"], format!("{round}-{}", sites.a));
    assert_eq!(
        payload["round"],
        json!({ "id": round, "product": "comirnaty", "number": 9, "startsOn": "2021-07-05", "endsOn": "2021-07-18" })
    );
    assert_eq!(payload["wholesaler"], "suzuken");
    assert_eq!(payload["site"]["code"], sites.a.as_str());
    assert_eq!(payload["site"]["municipality"], CHIYODA);
    assert_eq!(payload["site"]["receivingDays"], json!(["MON", "WED"]));
    assert_eq!(
        payload["items"],
        json!([
            { "kind": "VACCINE", "product": "comirnaty", "boxes": 24, "vials": 4680, "doses": 28080 },
            { "kind": "ANCILLARY", "product": "needle-25g", "perVial": 6, "pieces": 28080 },
            { "kind": "ANCILLARY", "product": "syringe-lds", "perVial": 6, "pieces": 28080 }
        ])
    );
    assert_eq!(payload["instructedBy"], "MUNICIPALITY:131016");

    // confirmed is final, and site requests are closed
    refused(
        &app,
        &chiyoda,
        CONFIRM,
        json!({ "round": round }),
        "CONFLICT",
        "is confirmed",
    )
    .await;
    refused(
        &app,
        &chiyoda,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.a, "boxes": 0 }] }),
        "CONFLICT",
        "is confirmed",
    )
    .await;
    refused(
        &app,
        &token("SITE", Some(&sites.a)),
        REQUEST,
        json!({ "round": round, "boxes": 1 }),
        "CONFLICT",
        "closed",
    )
    .await;

    // row scope of orders
    let scoped: Vec<(String, Vec<String>)> = vec![
        (token("PREFECTURE", Some("13")), want.clone()),
        (token("PREFECTURE", Some("27")), vec![]),
        (chiyoda.clone(), want.clone()),
        (token("MUNICIPALITY", Some(SHINJUKU)), vec![]),
        (token("SITE", Some(&sites.a)), vec![format!("{round}-{}", sites.a)]),
        (token("SITE", Some(&sites.shinjuku)), vec![]),
        (
            token("WHOLESALER", Some("suzuken")),
            vec![format!("{round}-{}", sites.a)],
        ),
        (
            token("WHOLESALER", Some("medipal")),
            vec![format!("{round}-{}", sites.b)],
        ),
        (
            token("WHOLESALER", Some("toho")),
            vec![format!("{round}-{}", sites.no_wholesaler)],
        ),
        (token("WHOLESALER", Some("alfresa")), vec![]),
    ];
    for (t, ids) in scoped {
        assert_eq!(order_ids(&app.ok(&t, ORDERS, json!({})).await), ids);
    }
    let (code, _) = app
        .err(Some(&token("MEDICAL_ASSOCIATION", Some(CHIYODA))), ORDERS, json!({}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    for t in [tokyo.clone(), chiyoda.clone(), token("WHOLESALER", Some("suzuken"))] {
        let (code, _) = app.err(Some(&t), OUTBOX, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
    }
    // a site sees its own line of its municipality's allocation, nothing else
    let mine = app
        .ok(
            &token("SITE", Some(&sites.a)),
            &get_q(),
            json!({ "round": round, "owner": CHIYODA }),
        )
        .await["allocation"]
        .clone();
    assert_eq!(mine["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(boxes_of(&mine, &sites.a), 24);
    let (code, _) = app
        .err(
            Some(&token("WHOLESALER", Some("suzuken"))),
            &get_q(),
            json!({ "round": round, "owner": CHIYODA }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    // overview: NATIONAL sees every municipality allocation of Tokyo; a prefecture its own ones
    let q = "query($round: Int!, $p: PrefectureCode) { allocations(round: $round, level: MUNICIPALITY, prefecture: $p) { owner status received } }";
    let all = app.ok(&n, q, json!({ "round": round, "p": "13" })).await;
    let list = all["allocations"].as_array().expect("list");
    assert_eq!(list.len(), 62, "one per Tokyo municipality");
    assert!(list.contains(&json!({ "owner": CHIYODA, "status": "CONFIRMED", "received": 96 })));
    assert!(list.contains(&json!({ "owner": SHINJUKU, "status": "DRAFT", "received": 204 })));
    assert_eq!(
        app.ok(
            &token("PREFECTURE", Some("27")),
            q,
            json!({ "round": round, "p": "13" })
        )
        .await["allocations"],
        json!([])
    );
    assert_eq!(
        app.ok(&chiyoda, q, json!({ "round": round })).await["allocations"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn rounds_and_supply_refuse_bad_input_and_change_nothing() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let input = |product: &str, number: i64, starts: &str| json!({ "input": { "product": product, "number": number, "startsOn": starts, "supply": 10 } });
    let r = app.ok(&n, CREATE_ROUND, input("comirnaty", 9, "2021-07-05")).await["createRound"].clone();
    assert_eq!(
        r,
        json!({ "id": r["id"], "number": 9, "startsOn": "2021-07-05", "endsOn": "2021-07-18", "supply": 10,
                "status": "DRAFT", "product": { "code": "comirnaty", "storageClass": "ULTRA_COLD" } })
    );
    let round = r["id"].as_i64().expect("id");
    let cases: Vec<(Option<String>, &str, Value, &str, &str)> = vec![
        (
            None,
            CREATE_ROUND,
            input("comirnaty", 10, "2021-07-19"),
            "UNAUTHENTICATED",
            "token",
        ),
        (
            Some(token("PREFECTURE", Some("13"))),
            CREATE_ROUND,
            input("comirnaty", 10, "2021-07-19"),
            "FORBIDDEN",
            "only NATIONAL",
        ),
        (
            Some(n.clone()),
            CREATE_ROUND,
            input("comirnaty", 10, "2021-07-20"),
            "BAD_USER_INPUT",
            "Monday",
        ),
        (
            Some(n.clone()),
            CREATE_ROUND,
            input("comirnaty", 0, "2021-07-19"),
            "BAD_USER_INPUT",
            "input.number",
        ),
        (
            Some(n.clone()),
            CREATE_ROUND,
            input("needle-25g", 1, "2021-07-19"),
            "BAD_USER_INPUT",
            "ancillary",
        ),
        (
            Some(n.clone()),
            CREATE_ROUND,
            input("novavax", 1, "2021-07-19"),
            "BAD_USER_INPUT",
            "no such product",
        ),
        (
            Some(n.clone()),
            CREATE_ROUND,
            input("comirnaty", 9, "2021-07-19"),
            "CONFLICT",
            "already exists",
        ),
        (
            Some(n.clone()),
            SET_SUPPLY,
            json!({ "round": round, "product": "spikevax", "supply": 500 }),
            "BAD_USER_INPUT",
            "is a round of comirnaty, not of spikevax",
        ),
        (
            Some(n.clone()),
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": 0 }),
            "BAD_USER_INPUT",
            "supply: must be at least 1 box",
        ),
        (
            Some(n.clone()),
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": -5 }),
            "BAD_USER_INPUT",
            "must not be negative",
        ),
        (
            Some(n.clone()),
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": 1.5 }),
            "BAD_USER_INPUT",
            "whole number",
        ),
        (
            Some(n.clone()),
            SET_SUPPLY,
            json!({ "round": 9999, "product": "comirnaty", "supply": 5 }),
            "NOT_FOUND",
            "round 9999",
        ),
        (
            Some(token("MUNICIPALITY", Some(CHIYODA))),
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": 500 }),
            "FORBIDDEN",
            "only NATIONAL",
        ),
    ];
    for (t, q, vars, code, text) in cases {
        let (got, message) = app.err(t.as_deref(), q, vars.clone()).await;
        assert_eq!(got, code, "{vars}: {message}");
        assert!(message.contains(text), "{text:?} not in {message:?}");
    }
    let rounds = app.ok(&n, "{ rounds { id number supply } }", json!({})).await;
    assert_eq!(
        rounds["rounds"],
        json!([{ "id": round, "number": 9, "supply": 10 }]),
        "nothing changed"
    );

    // the supply can never go below what the national lines already hand out
    app.ok(
        &n,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": "13", "boxes": 8 }] }),
    )
    .await;
    refused(
        &app,
        &n,
        SET_SUPPLY,
        json!({ "round": round, "product": "comirnaty", "supply": 7 }),
        "BAD_USER_INPUT",
        "already hand out 8 boxes",
    )
    .await;
    let r = app
        .ok(
            &n,
            SET_SUPPLY,
            json!({ "round": round, "product": "comirnaty", "supply": 8 }),
        )
        .await;
    assert_eq!(r["setRoundSupply"]["supply"], 8);
}

#[tokio::test]
async fn target_populations_are_imported_in_scope_all_or_nothing() {
    let app = TestApp::spawn().await;
    import_population(&app).await;
    let q = "query($p: PrefectureCode) { targetPopulations(prefecture: $p) { municipality population updatedBy } }";
    let tokyo = token("PREFECTURE", Some("13"));
    let r = app
        .ok(
            &tokyo,
            IMPORT_POPULATION,
            json!({ "csv": format!("population,municipality_code\n65000,{CHIYODA}\n") }),
        )
        .await;
    assert_eq!(r["importTargetPopulation"]["imported"], 1);
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            tokyo.clone(),
            format!("municipality_code,population\n{CHIYODA},1\n{OSAKA},2\n"),
            "FORBIDDEN",
            "line 3",
        ),
        (
            tokyo.clone(),
            format!("municipality_code,population\n{CHIYODA},-4\n"),
            "BAD_USER_INPUT",
            "line 2, population",
        ),
        (
            tokyo.clone(),
            "municipality_code,population\n131017,4\n".into(),
            "BAD_USER_INPUT",
            "line 2, municipality_code",
        ),
        (
            tokyo.clone(),
            format!("municipality_code,population\n{CHIYODA},1\n{CHIYODA},2\n"),
            "BAD_USER_INPUT",
            "appears twice",
        ),
        (
            tokyo.clone(),
            "code,population\n".into(),
            "BAD_USER_INPUT",
            "municipality_code",
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            format!("municipality_code,population\n{CHIYODA},1\n"),
            "FORBIDDEN",
            "only NATIONAL or the prefecture",
        ),
        (
            token("NATIONAL", None),
            "municipality_code,population\n139998,4\n".into(),
            "BAD_USER_INPUT",
            "line 2",
        ),
    ];
    for (t, csv, code, text) in cases {
        refused(&app, &t, IMPORT_POPULATION, json!({ "csv": csv }), code, text).await;
    }
    let got = app.ok(&tokyo, q, json!({ "p": "13" })).await;
    assert_eq!(
        got["targetPopulations"],
        json!([
            { "municipality": CHIYODA, "population": 65000, "updatedBy": "PREFECTURE:13" },
            { "municipality": SHINJUKU, "population": 340000, "updatedBy": "NATIONAL" }
        ]),
        "refused imports changed nothing"
    );
}

#[tokio::test]
async fn requests_go_to_the_level_above_and_are_read_in_scope() {
    let app = TestApp::spawn().await;
    let sites = seed_sites(&app).await;
    let round = create_round(&app, Some(100)).await;
    let submitted = app
        .ok(
            &token("SITE", Some(&sites.a)),
            REQUEST,
            json!({ "round": round, "boxes": 4, "note": "高齢者施設の分を含む" }),
        )
        .await;
    assert_eq!(
        submitted["submitAllocationRequest"],
        json!({ "level": "SITE", "requester": sites.a, "prefecture": "13", "municipality": CHIYODA, "boxes": 4,
                "note": "高齢者施設の分を含む", "submittedBy": format!("SITE:{}", sites.a) })
    );
    for (t, boxes) in [
        (token("SITE", Some(&sites.shinjuku)), 3),
        (token("MUNICIPALITY", Some(CHIYODA)), 20),
        (token("MUNICIPALITY", Some(SAPPORO)), 30),
        (token("PREFECTURE", Some("13")), 50),
        (token("SITE", Some(&sites.a)), 6),
    ] {
        app.ok(&t, REQUEST, json!({ "round": round, "boxes": boxes })).await;
    }
    let requesters = |data: &Value| -> Vec<(String, u64)> {
        data["allocationRequests"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| {
                (
                    r["requester"].as_str().expect("code").to_owned(),
                    r["boxes"].as_u64().expect("boxes"),
                )
            })
            .collect()
    };
    let everyone = requesters(
        &app.ok(&token("NATIONAL", None), REQUESTS, json!({ "round": round }))
            .await,
    );
    assert_eq!(
        everyone.len(),
        5,
        "a changed request replaces the earlier one: {everyone:?}"
    );
    assert!(everyone.contains(&(sites.a.clone(), 6)));
    let scoped: Vec<(String, Vec<&str>)> = vec![
        (
            token("PREFECTURE", Some("13")),
            vec!["13", CHIYODA, &sites.a, &sites.shinjuku],
        ),
        (token("PREFECTURE", Some("01")), vec![SAPPORO]),
        (token("MUNICIPALITY", Some(CHIYODA)), vec![CHIYODA, &sites.a]),
        (token("SITE", Some(&sites.a)), vec![&sites.a]),
    ];
    for (t, want) in scoped {
        let mut got: Vec<String> = requesters(&app.ok(&t, REQUESTS, json!({ "round": round })).await)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(got, want);
    }
    let cases: Vec<(String, Value, &str, &str)> = vec![
        (
            token("NATIONAL", None),
            json!({ "round": round, "boxes": 1 }),
            "FORBIDDEN",
            "for itself",
        ),
        (
            token("WHOLESALER", Some("suzuken")),
            json!({ "round": round, "boxes": 1 }),
            "FORBIDDEN",
            "for itself",
        ),
        (
            token("SITE", Some(&sites.a)),
            json!({ "round": round, "boxes": 0 }),
            "BAD_USER_INPUT",
            "boxes: must be at least 1",
        ),
        (
            token("SITE", Some(&sites.a)),
            json!({ "round": round, "boxes": -2 }),
            "BAD_USER_INPUT",
            "negative",
        ),
        (
            token("SITE", Some(&sites.withdrawn)),
            json!({ "round": round, "boxes": 2 }),
            "CONFLICT",
            "withdrawn",
        ),
        (
            token("SITE", Some(&sites.a)),
            json!({ "round": 999, "boxes": 2 }),
            "NOT_FOUND",
            "round 999",
        ),
    ];
    for (t, vars, code, text) in cases {
        refused(&app, &t, REQUEST, vars, code, text).await;
    }
    let (code, _) = app
        .err(
            Some(&token("WHOLESALER", Some("suzuken"))),
            REQUESTS,
            json!({ "round": round }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let after = requesters(
        &app.ok(&token("NATIONAL", None), REQUESTS, json!({ "round": round }))
            .await,
    );
    assert_eq!(after, everyone, "refusals stored nothing");
}

/// Runs `n` copies of a request at once and returns the response bodies.
async fn concurrently(app: &TestApp, t: &str, bodies: Vec<Value>) -> Vec<Value> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (client, url, t) = (app.client.clone(), app.url("/graphql"), t.to_owned());
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(t)
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .json::<Value>()
                    .await
                    .expect("json")
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn concurrent_edits_never_hand_out_more_than_received() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let round = create_round(&app, Some(10)).await;
    // Eight editors each give a different prefecture 3 boxes; only three fit into 10.
    let bodies = (1..=8)
        .map(|p| {
            json!({ "query": set_lines_q(), "variables": { "round": round, "lines": [{ "child": format!("{p:02}"), "boxes": 3 }] } })
        })
        .collect();
    let results = concurrently(&app, &n, bodies).await;
    let ok = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(ok, 3, "{results:?}");
    for b in results.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(b["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{b}");
    }
    let a = app
        .ok(&n, &get_q(), json!({ "round": round, "owner": "NATIONAL" }))
        .await["allocation"]
        .clone();
    assert_eq!((sum_lines(&a), a["allocated"].as_u64()), (9, Some(9)));
    assert_eq!(a["version"], 4, "three edits after creation");
}

/// A server with the seeded sites and a round of 1,000 boxes confirmed by NATIONAL and by Tokyo
/// (prefecture 13), so that every Tokyo municipality holds a draft allocation to give to sites.
async fn round_for_municipalities() -> (TestApp, Sites, i64) {
    let app = TestApp::spawn().await;
    let sites = seed_sites(&app).await;
    import_population(&app).await;
    let round = create_round(&app, Some(1000)).await;
    for (t, owner) in [
        (token("NATIONAL", None), "NATIONAL"),
        (token("PREFECTURE", Some("13")), "13"),
    ] {
        app.ok(&t, &propose_q(), json!({ "round": round, "owner": owner }))
            .await;
        app.ok(&t, CONFIRM, json!({ "round": round, "owner": owner })).await;
    }
    (app, sites, round)
}

#[tokio::test]
async fn concurrent_confirmations_write_orders_exactly_once() {
    let (app, sites, round) = round_for_municipalities().await;
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    app.ok(
        &chiyoda,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.a, "boxes": 2 }, { "child": sites.b, "boxes": 3 }, { "child": sites.venue, "boxes": 1 }] }),
    )
    .await;
    let bodies = (0..6)
        .map(|_| json!({ "query": CONFIRM, "variables": { "round": round } }))
        .collect();
    let results = concurrently(&app, &chiyoda, bodies).await;
    let ok = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{results:?}");
    for b in results.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(b["errors"][0]["extensions"]["code"], "CONFLICT", "{b}");
    }
    let n = token("NATIONAL", None);
    assert_eq!(order_ids(&app.ok(&n, ORDERS, json!({})).await).len(), 3);
    let outbox = app.ok(&n, OUTBOX, json!({})).await;
    assert_eq!(outbox["outbox"].as_array().map(Vec::len), Some(3));
    let venue_order = app
        .ok(
            &token("WHOLESALER", Some("alfresa")),
            "query($id: String!) { order(id: $id) { site boxes wholesaler } }",
            json!({ "id": format!("{round}-{}", sites.venue) }),
        )
        .await;
    assert_eq!(
        venue_order["order"],
        json!({ "site": sites.venue, "boxes": 1, "wholesaler": "alfresa" })
    );
    let (code, _) = app
        .err(
            Some(&token("WHOLESALER", Some("suzuken"))),
            "query($id: String!) { order(id: $id) { site } }",
            json!({ "id": format!("{round}-{}", sites.venue) }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "another wholesaler's order is not revealed");
}

/// `vsys allocations confirm-all --round <round>`, run by the operator next to the running
/// server.
async fn deadline_run(app: &TestApp, round: i64) -> Result<(), String> {
    use api::config::{AllocationsCommand, Cli, Command, DbArgs};
    api::cli::run(Cli {
        command: Command::Allocations(AllocationsCommand::ConfirmAll {
            round: i32::try_from(round).expect("round id"),
            db: DbArgs {
                database_url: app.db.url.clone(),
            },
        }),
    })
    .await
    .map_err(|e| format!("{e:#}"))
}

/// The status of each Tokyo municipality's allocation of `round`, by owner, as NATIONAL sees it.
async fn tokyo_statuses(app: &TestApp, round: i64) -> std::collections::BTreeMap<String, String> {
    let q =
        "query($round: Int!) { allocations(round: $round, level: MUNICIPALITY, prefecture: \"13\") { owner status } }";
    let list = app.ok(&token("NATIONAL", None), q, json!({ "round": round })).await["allocations"].clone();
    list.as_array()
        .expect("list")
        .iter()
        .map(|a| {
            let text = |v: &Value| v.as_str().expect("text").to_owned();
            (text(&a["owner"]), text(&a["status"]))
        })
        .collect()
}

#[tokio::test]
async fn the_deadline_run_confirms_every_draft_municipality_and_reports_the_blocked() {
    let (app, sites, round) = round_for_municipalities().await;
    // Shinjuku's only site can be ordered for; Chiyoda gives a box to a site without a
    // wholesaler and is blocked.
    let shinjuku = token("MUNICIPALITY", Some(SHINJUKU));
    app.ok(
        &shinjuku,
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.shinjuku, "boxes": 4 }] }),
    )
    .await;
    app.ok(
        &token("MUNICIPALITY", Some(CHIYODA)),
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.a, "boxes": 2 }, { "child": sites.no_wholesaler, "boxes": 1 }] }),
    )
    .await;
    deadline_run(&app, round).await.expect("deadline run");
    let n = token("NATIONAL", None);
    let statuses = tokyo_statuses(&app, round).await;
    assert_eq!(statuses[SHINJUKU], "CONFIRMED");
    assert_eq!(statuses[CHIYODA], "DRAFT", "blocked: left in draft");
    assert_eq!(
        statuses.values().filter(|s| *s == "CONFIRMED").count(),
        61,
        "every other Tokyo municipality (nothing to order) confirmed"
    );
    assert_eq!(
        order_ids(&app.ok(&n, ORDERS, json!({})).await),
        vec![format!("{round}-{}", sites.shinjuku)]
    );
    let outbox = app.ok(&n, OUTBOX, json!({})).await["outbox"].clone();
    assert_eq!(outbox.as_array().map(Vec::len), Some(1));
    assert_eq!(outbox[0]["payload"]["items"][0]["boxes"], 4);
}

/// A site moved to another municipality after its first municipality gave it boxes: both
/// allocations name it. The deadline run (on PostgreSQL split over several builders, which may
/// each hold one of the two lines) blocks the municipality the site left and orders for the
/// one it joined.
#[tokio::test]
async fn the_deadline_run_orders_a_moved_site_only_for_its_new_municipality() {
    let (app, sites, round) = round_for_municipalities().await;
    app.ok(
        &token("MUNICIPALITY", Some(CHIYODA)),
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.a, "boxes": 2 }] }),
    )
    .await;
    let n = token("NATIONAL", None);
    app.ok(
        &n,
        "mutation($c: SiteCode!, $m: MunicipalityCode!) { updateSite(code: $c, input: { municipality: $m }) { code } }",
        json!({ "c": sites.a, "m": SHINJUKU }),
    )
    .await;
    app.ok(
        &token("MUNICIPALITY", Some(SHINJUKU)),
        &set_lines_q(),
        json!({ "round": round, "lines": [{ "child": sites.a, "boxes": 3 }, { "child": sites.shinjuku, "boxes": 1 }] }),
    )
    .await;

    deadline_run(&app, round).await.expect("deadline run");
    let statuses = tokyo_statuses(&app, round).await;
    assert_eq!(statuses[CHIYODA], "DRAFT", "the site left Chiyoda: blocked");
    assert_eq!(statuses[SHINJUKU], "CONFIRMED");
    let orders = app.ok(&n, ORDERS, json!({ "filter": { "round": round } })).await;
    let mut want = vec![format!("{round}-{}", sites.a), format!("{round}-{}", sites.shinjuku)];
    want.sort();
    assert_eq!(order_ids(&orders), want);
    let moved = orders["orders"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .find(|o| o["site"] == json!(sites.a))
        .expect("the moved site's order")
        .clone();
    assert_eq!(moved["municipality"], SHINJUKU);
    assert_eq!(moved["boxes"], 3);
    let outbox = app.ok(&n, OUTBOX, json!({})).await["outbox"].clone();
    assert_eq!(outbox.as_array().map(Vec::len), Some(2), "one message per order");
}

#[tokio::test]
async fn the_demo_data_set_leaves_a_round_for_chiyoda_to_confirm() {
    let db = tests::TestDb::new().await;
    let store = domain::store::Store::new(api::db::connect(&db.url).await.expect("connect"));
    assert!(api::demo::seed(&store).await.expect("demo") > 0);
    let app = TestApp::spawn_on(db).await;
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let rounds = app.ok(&chiyoda, "{ rounds { id number status } }", json!({})).await;
    let round = rounds["rounds"][0]["id"].as_i64().expect("round");
    assert_eq!(rounds["rounds"][0]["status"], "CONFIRMED");
    let mine = app.ok(&chiyoda, &get_q(), json!({ "round": round })).await["allocation"].clone();
    assert_eq!(mine["status"], "DRAFT");
    assert!(mine["received"].as_u64().is_some_and(|r| r > 0), "{mine}");
    assert_eq!(sum_lines(&mine), mine["received"].as_u64().expect("received"));
    app.ok(&chiyoda, CONFIRM, json!({ "round": round })).await;
    let orders = app.ok(&chiyoda, ORDERS, json!({})).await;
    assert!(!order_ids(&orders).is_empty());
}

/// Round 9 confirmed by each municipality itself (batch INSERT) and round 10 by the deadline
/// run (on PostgreSQL binary COPY on a connection of its own) must store the same rows: every
/// column of the orders (their ancillaries included), and the outbox entries with byte-for-byte the
/// same message, once the round, the actor and the time are set aside. An order's outbox entry
/// and message must carry its exact time (a wrong COPY encoding of `timestamptz` would show).
#[tokio::test]
async fn the_deadline_run_stores_the_same_rows_as_municipalities_confirming_their_own() {
    use domain::entities::{order, outbox};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

    let app = TestApp::spawn().await;
    let sites = seed_sites(&app).await;
    import_population(&app).await;
    let n = token("NATIONAL", None);
    let mut rounds = Vec::new();
    for number in [9, 10] {
        let r = app
            .ok(
                &n,
                CREATE_ROUND,
                json!({ "input": { "product": "comirnaty", "number": number, "startsOn": "2021-07-05", "supply": 1000 } }),
            )
            .await["createRound"]["id"]
            .as_i64()
            .expect("id");
        for (t, owner) in [(n.clone(), "NATIONAL"), (token("PREFECTURE", Some("13")), "13")] {
            app.ok(&t, &propose_q(), json!({ "round": r, "owner": owner })).await;
            app.ok(&t, CONFIRM, json!({ "round": r, "owner": owner })).await;
        }
        for (m, lines) in [
            (
                CHIYODA,
                json!([{ "child": sites.a, "boxes": 2 }, { "child": sites.b, "boxes": 3 }, { "child": sites.venue, "boxes": 1 }]),
            ),
            (SHINJUKU, json!([{ "child": sites.shinjuku, "boxes": 4 }])),
        ] {
            app.ok(
                &token("MUNICIPALITY", Some(m)),
                &set_lines_q(),
                json!({ "round": r, "lines": lines }),
            )
            .await;
        }
        rounds.push(r);
    }
    for m in [CHIYODA, SHINJUKU] {
        app.ok(&token("MUNICIPALITY", Some(m)), CONFIRM, json!({ "round": rounds[0] }))
            .await;
    }
    deadline_run(&app, rounds[1]).await.expect("deadline run");

    let db = api::db::connect(&app.db.url).await.expect("connect");
    // Per round: (orders, outbox entries) with the round, actor and time set aside.
    let mut stored = Vec::new();
    for r in &rounds {
        let r = i32::try_from(*r).expect("round id");
        let prefix = format!("{r}-");
        let plain = |id: &str| id.replacen(&prefix, "R-", 1);
        let orders = order::Entity::find()
            .filter(order::Column::RoundId.eq(r))
            .order_by_asc(order::Column::Id)
            .all(&db)
            .await
            .expect("orders");
        assert_eq!(orders.len(), 4, "one order per site with boxes");
        let at: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
            orders.iter().map(|o| (o.id.clone(), o.created_at)).collect();
        let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
        let orders: Vec<order::Model> = orders
            .into_iter()
            .map(|o| order::Model {
                id: plain(&o.id),
                round_id: 0,
                allocation_id: 0,
                created_at: chrono::DateTime::UNIX_EPOCH,
                created_by: String::new(),
                ..o
            })
            .collect();
        for o in &orders {
            let stored: Value = serde_json::from_str(o.ancillaries.as_deref().expect("ancillaries")).expect("json");
            assert_eq!(
                stored,
                json!([
                    { "product": "needle-25g", "perVial": 6, "pieces": o.doses },
                    { "product": "syringe-lds", "perVial": 6, "pieces": o.doses }
                ]),
                "needle and syringe for each vial, with the order"
            );
        }
        let entries: Vec<outbox::Model> = outbox::Entity::find()
            .filter(outbox::Column::AggregateKey.is_in(ids))
            .order_by_asc(outbox::Column::AggregateKey)
            .all(&db)
            .await
            .expect("outbox")
            .into_iter()
            .map(|e| {
                // Written with its order, in the same instant.
                let at = at[&e.aggregate_key];
                assert_eq!((e.created_at, e.next_attempt_at), (at, at), "{}", e.aggregate_key);
                let mut payload: Value = serde_json::from_str(&e.payload).expect("json");
                let instructed: chrono::DateTime<chrono::Utc> =
                    serde_json::from_value(payload["instructedAt"].clone()).expect("instructedAt");
                assert_eq!(instructed.timestamp_micros(), at.timestamp_micros());
                assert_eq!(payload["round"]["id"], json!(r));
                payload["orderId"] = json!(plain(payload["orderId"].as_str().expect("orderId")));
                for key in ["instructedAt", "instructedBy"] {
                    payload[key] = Value::Null;
                }
                for key in ["id", "number"] {
                    payload["round"][key] = Value::Null;
                }
                outbox::Model {
                    id: 0,
                    aggregate_key: plain(&e.aggregate_key),
                    idempotency_key: e.idempotency_key.replacen(&prefix, "R-", 1),
                    payload: payload.to_string(),
                    created_at: chrono::DateTime::UNIX_EPOCH,
                    next_attempt_at: chrono::DateTime::UNIX_EPOCH,
                    ..e
                }
            })
            .collect();
        assert_eq!(entries.len(), 4);
        stored.push((orders, entries));
    }
    assert_eq!(stored[0], stored[1]);
    let mut expected = vec![sites.a, sites.b, sites.venue, sites.shinjuku];
    expected.sort();
    let got: Vec<&str> = stored[1].0.iter().map(|o| o.site_code.as_str()).collect();
    assert_eq!(got, expected);
}

/// Orders written before `orders.ancillaries` existed keep their ancillaries as
/// `order_ancillaries` rows (column NULL); readers still show them, next to new orders.
#[tokio::test]
async fn orders_from_before_the_ancillaries_column_still_show_their_ancillary_rows() {
    use domain::entities::{order, order_ancillary};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};

    let app = TestApp::spawn().await;
    let sites = seed_sites(&app).await;
    let db = api::db::connect(&app.db.url).await.expect("connect");
    let id = format!("1-{}", sites.a);
    order::ActiveModel {
        id: Set(id.clone()),
        round_id: Set(1),
        allocation_id: Set(1),
        product_code: Set("comirnaty".into()),
        site_code: Set(sites.a.clone()),
        prefecture_code: Set("13".into()),
        municipality_code: Set(CHIYODA.into()),
        wholesaler_id: Set("suzuken".into()),
        boxes: Set(1),
        vials: Set(195),
        doses: Set(1170),
        status: Set("CREATED".into()),
        created_at: Set(chrono::Utc::now()),
        created_by: Set("MUNICIPALITY:131016".into()),
        customer_code: Set(None),
        sent_at: Set(None),
        acknowledged_at: Set(None),
        ack_reference: Set(None),
        hold_reason: Set(None),
        ancillaries: Set(None),
    }
    .insert(&db)
    .await
    .expect("legacy order");
    for product in ["syringe-lds", "needle-25g"] {
        order_ancillary::ActiveModel {
            order_id: Set(id.clone()),
            product_code: Set(product.into()),
            per_vial: Set(6),
            pieces: Set(1170),
        }
        .insert(&db)
        .await
        .expect("legacy ancillary");
    }
    let got = app
        .ok(
            &token("NATIONAL", None),
            "query($id: String!) { order(id: $id) { id ancillaries { product perVial pieces } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        got["order"]["ancillaries"],
        json!([
            { "product": "needle-25g", "perVial": 6, "pieces": 1170 },
            { "product": "syringe-lds", "perVial": 6, "pieces": 1170 }
        ])
    );
}

/// A deadline run that fails midway (here: a site row that no longer passes the site rules,
/// found while its municipality's orders are being built) stores nothing: no order, no outbox
/// entry, every municipality still in draft — also on PostgreSQL, where rows already streamed
/// by COPY belong to the same transaction and are rolled back with it.
#[tokio::test]
async fn a_deadline_run_that_fails_midway_stores_nothing() {
    use sea_orm::ConnectionTrait;

    let (app, sites, round) = round_for_municipalities().await;
    let n = token("NATIONAL", None);
    for (m, lines) in [
        (
            CHIYODA,
            json!([{ "child": sites.a, "boxes": 2 }, { "child": sites.b, "boxes": 3 }]),
        ),
        (SHINJUKU, json!([{ "child": sites.shinjuku, "boxes": 4 }])),
    ] {
        app.ok(
            &token("MUNICIPALITY", Some(m)),
            &set_lines_q(),
            json!({ "round": round, "lines": lines }),
        )
        .await;
    }
    let db = api::db::connect(&app.db.url).await.expect("connect");
    db.execute_unprepared(&format!(
        "UPDATE sites SET kind = 'NOT_A_KIND' WHERE code = '{}'",
        sites.b
    ))
    .await
    .expect("corrupt a site");

    let run = deadline_run(&app, round).await;
    assert!(run.is_err(), "the run reports the failure");
    assert_eq!(order_ids(&app.ok(&n, ORDERS, json!({})).await), Vec::<String>::new());
    assert_eq!(app.ok(&n, OUTBOX, json!({})).await["outbox"], json!([]));
    let statuses = tokyo_statuses(&app, round).await;
    assert_eq!(statuses.len(), 62);
    assert!(statuses.values().all(|s| s == "DRAFT"), "{statuses:?}");
}
