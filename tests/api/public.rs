//! The public side through HTTP and WebSocket as an anonymous client: the public schema and what
//! it exposes, search, the response cache and its invalidation, subscriptions, rate limiting,
//! query limits, the open feed and the page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{REGISTER, TestApp, TestDb, clinic_input, token, venue_input};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::availability::{SET, SET_SLOT};

pub const CHIYODA: &str = "131016";
pub const SHINJUKU: &str = "131041";
pub const SAPPORO: &str = "011002";

/// A valid site code from its first nine characters (the check digit computed).
pub fn code(nine: &str) -> String {
    domain::codes::SiteCode::with_check_digit(nine)
        .expect("nine digits")
        .to_string()
}

/// A date relative to today in Japan, as GraphQL writes it.
pub fn days_from_today(days: i64) -> String {
    (domain::availability::jst_today(chrono::Utc::now()) + chrono::Duration::days(days)).to_string()
}

/// One public GraphQL request (optionally as a given client address behind a trusted proxy).
pub async fn public_as(
    app: &TestApp,
    client: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .client
        .post(app.url("/public/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(ip) = client {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.expect("JSON body"))
}

pub async fn public(app: &TestApp, query: &str, variables: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    public_as(app, None, query, variables).await
}

/// Public data, or a panic with the errors.
pub async fn public_ok(app: &TestApp, query: &str, variables: Value) -> Value {
    let (status, _, body) = public(app, query, variables).await;
    assert!(
        status == 200 && body.get("errors").is_none(),
        "expected success, got {status}: {body}"
    );
    body["data"].clone()
}

/// The sites of the public-site tests (codes), with their stated availability.
pub struct Seed {
    /// Chiyoda clinic, ○, booking phone/URL/notes, comirnaty, 〒100-0001.
    pub sakura: String,
    /// Chiyoda clinic, △, comirnaty + spikevax, 〒100-0005.
    pub midori: String,
    /// Chiyoda clinic, ×, spikevax, 〒101-0021 外神田.
    pub hikari: String,
    /// Chiyoda hospital, no availability stated, 〒102-0072.
    pub chuo: String,
    /// Chiyoda mass venue with one slot tomorrow (100 places, 40 booked): ○, 60 left.
    pub venue: String,
    /// Chiyoda clinic, ○ then withdrawn: never public.
    pub closed: String,
    /// Shinjuku clinic, ◎, 〒160-0022.
    pub shinjuku: String,
    /// Sapporo clinic, ○, 〒060-0001.
    pub sapporo: String,
}

async fn register(app: &TestApp, t: &str, input: Value) -> String {
    app.ok(t, REGISTER, json!({ "input": input })).await["registerSite"]["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

pub async fn set_status(app: &TestApp, site: &str, status: &str) {
    app.ok(
        &token("SITE", Some(site)),
        SET,
        json!({ "code": site, "input": { "status": status } }),
    )
    .await;
}

pub async fn seed(app: &TestApp) -> Seed {
    let n = token("NATIONAL", None);
    let clinic = |nine: &str, m: &str, name: &str, postal: &str, address: &str, products: Value| {
        let mut v = clinic_input(&code(nine), m, name);
        v["postalCode"] = json!(postal);
        v["address"] = json!(address);
        v["products"] = products;
        v
    };
    let sakura = register(
        app,
        &n,
        clinic(
            "131202001",
            CHIYODA,
            "さくら内科クリニック",
            "100-0001",
            "東京都千代田区千代田1-1",
            json!(["comirnaty"]),
        ),
    )
    .await;
    let midori = register(
        app,
        &n,
        clinic(
            "131202002",
            CHIYODA,
            "みどり小児科",
            "100-0005",
            "東京都千代田区丸の内1-5",
            json!(["comirnaty", "spikevax"]),
        ),
    )
    .await;
    let hikari = register(
        app,
        &n,
        clinic(
            "131202003",
            CHIYODA,
            "ひかり医院",
            "101-0021",
            "東京都千代田区外神田1-1",
            json!(["spikevax"]),
        ),
    )
    .await;
    let mut chuo = clinic(
        "131202004",
        CHIYODA,
        "中央総合病院",
        "102-0072",
        "東京都千代田区飯田橋2-2",
        json!(["comirnaty"]),
    );
    chuo["kind"] = json!("HOSPITAL");
    let chuo = register(app, &n, chuo).await;
    let closed = register(
        app,
        &n,
        clinic(
            "131202005",
            CHIYODA,
            "閉院クリニック",
            "100-0001",
            "東京都千代田区千代田9-9",
            json!(["comirnaty"]),
        ),
    )
    .await;
    let shinjuku = register(
        app,
        &n,
        clinic(
            "131202006",
            SHINJUKU,
            "新宿駅前クリニック",
            "160-0022",
            "東京都新宿区新宿3-1",
            json!(["comirnaty"]),
        ),
    )
    .await;
    let sapporo = register(
        app,
        &n,
        clinic(
            "011101001",
            SAPPORO,
            "札幌ひかり医院",
            "060-0001",
            "北海道札幌市中央区北1条西1",
            json!(["comirnaty"]),
        ),
    )
    .await;
    let m = token("MUNICIPALITY", Some(CHIYODA));
    let venue = register(app, &m, venue_input(CHIYODA, "千代田区集団接種会場")).await;

    app.ok(
        &token("SITE", Some(&sakura)),
        SET,
        json!({ "code": sakura, "input": { "status": "OPEN", "bookingPhone": "03-1111-2222",
                "bookingUrl": "https://yoyaku.example.jp/sakura", "bookingNotes": "駐車場あり" } }),
    )
    .await;
    set_status(app, &midori, "FEW").await;
    set_status(app, &hikari, "FULL").await;
    set_status(app, &closed, "OPEN").await;
    set_status(app, &shinjuku, "NO_BOOKING_NEEDED").await;
    set_status(app, &sapporo, "OPEN").await;
    app.ok(
        &m,
        SET_SLOT,
        json!({ "code": venue, "input": { "date": days_from_today(1), "startTime": "09:00", "endTime": "12:00", "capacity": 100, "booked": 40 } }),
    )
    .await;
    app.ok(
        &n,
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { status } }",
        json!({ "c": closed }),
    )
    .await;
    Seed {
        sakura,
        midori,
        hikari,
        chuo,
        venue,
        closed,
        shinjuku,
        sapporo,
    }
}

const SEARCH: &str = "query($filter: SiteSearchInput!, $page: Int, $size: Int) { sites(filter: $filter, page: $page, pageSize: $size) { totalCount page pageSize hasNextPage items { code availability { symbol } } } }";

const CARD: &str = "code name nameKana kind kindLabel address postalCode phone prefecture { code name } municipality { code name } coordinates { latitude longitude } products { code name } availability { status symbol label remaining updatedAt } booking { phone url notes }";

fn codes_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["code"].as_str().expect("code").to_owned())
        .collect()
}

async fn search(app: &TestApp, filter: Value) -> Vec<String> {
    let d = public_ok(app, SEARCH, json!({ "filter": filter, "size": 50 })).await;
    codes_of(&d["sites"])
}

#[test]
fn public_schema_graphql_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public-schema.graphql");
    let sdl = api::public::schema::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &sdl).expect("write public-schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "public-schema.graphql is out of date with the code. Refresh it with:\n\n    UPDATE_SCHEMA=1 cargo test -p tests --test api schema\n\n(or: cargo run -p api -- schema --public > public-schema.graphql)"
    );
}

#[tokio::test]
async fn anonymous_callers_reach_only_public_fields() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;

    // The whole public schema, by introspection: exactly these types and fields.
    let d = public_ok(
        &app,
        "{ __schema { mutationType { name } subscriptionType { name } types { name kind fields { name } inputFields { name } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        d["__schema"]["mutationType"],
        Value::Null,
        "the public schema writes nothing"
    );
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in d["__schema"]["types"].as_array().expect("types") {
        let name = t["name"].as_str().expect("name");
        if name.starts_with("__") || !["OBJECT", "INPUT_OBJECT"].contains(&t["kind"].as_str().expect("kind")) {
            continue;
        }
        let fields = t["fields"].as_array().or(t["inputFields"].as_array()).expect("fields");
        got.insert(
            name.to_owned(),
            fields
                .iter()
                .map(|f| f["name"].as_str().expect("field").to_owned())
                .collect(),
        );
    }
    let want: BTreeMap<String, BTreeSet<String>> = [
        (
            "Query",
            &[
                "availabilityLegend",
                "municipalities",
                "prefectures",
                "products",
                "site",
                "sites",
            ][..],
        ),
        ("Subscription", &["availabilityChanged"][..]),
        (
            "Site",
            &[
                "address",
                "availability",
                "booking",
                "code",
                "coordinates",
                "kind",
                "kindLabel",
                "municipality",
                "name",
                "nameKana",
                "phone",
                "postalCode",
                "prefecture",
                "products",
            ][..],
        ),
        (
            "Availability",
            &["label", "remaining", "status", "symbol", "updatedAt"][..],
        ),
        ("Booking", &["notes", "phone", "url"][..]),
        ("Coordinates", &["latitude", "longitude"][..]),
        ("LegendEntry", &["description", "label", "status", "symbol"][..]),
        ("Municipality", &["code", "name", "nameKana", "prefecture"][..]),
        ("Prefecture", &["code", "name", "nameKana"][..]),
        ("Product", &["code", "name"][..]),
        (
            "SitePage",
            &["hasNextPage", "items", "page", "pageSize", "totalCount"][..],
        ),
        (
            "SiteSearchInput",
            &[
                "availableOnly",
                "municipality",
                "postalCode",
                "prefecture",
                "product",
                "text",
            ][..],
        ),
    ]
    .into_iter()
    .map(|(t, fs)| (t.to_owned(), fs.iter().map(|f| (*f).to_owned()).collect()))
    .collect();
    assert_eq!(got, want, "a field was added to the public schema: is it public?");

    // Private fields cannot even be asked for; the query is refused before it runs.
    let site = &s.sakura;
    for (query, field) in [
        (
            "{ sites(filter: { municipality: \"131016\" }) { items { code wholesaler } } }".to_owned(),
            "wholesaler",
        ),
        (
            format!("{{ site(code: \"{site}\") {{ coldChain {{ role }} }} }}"),
            "coldChain",
        ),
        (
            format!("{{ site(code: \"{site}\") {{ delivery {{ notes }} }} }}"),
            "delivery",
        ),
        (
            format!("{{ site(code: \"{site}\") {{ history {{ actor }} }} }}"),
            "history",
        ),
        (format!("{{ site(code: \"{site}\") {{ version }} }}"), "version"),
        (
            format!("{{ site(code: \"{site}\") {{ availability {{ updatedBy }} }} }}"),
            "updatedBy",
        ),
        ("{ me { role } }".to_owned(), "me"),
        (
            format!("{{ venueSlots(code: \"{}\") {{ booked }} }}", s.venue),
            "venueSlots",
        ),
    ] {
        let (status, _, body) = public(&app, &query, json!({})).await;
        assert_eq!(status, 200);
        let (c, m) = tests::error_of(&body);
        assert_eq!(c, "BAD_USER_INPUT", "{query}: {m}");
        assert!(m.contains(field), "{field} not named in {m}");
    }
    let (_, _, body) = public(
        &app,
        &format!("mutation {{ setSiteAvailability(code: \"{site}\", input: {{ status: FULL }}) {{ status }} }}"),
        json!({}),
    )
    .await;
    tests::error_of(&body);
    // A token changes nothing on the public endpoint.
    let resp = app
        .client
        .post(app.url("/public/graphql"))
        .bearer_auth(token("NATIONAL", None))
        .json(&json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(tests::error_of(&body).0, "BAD_USER_INPUT");

    // An answer carries exactly the public fields asked for.
    let d = public_ok(
        &app,
        &format!("query($c: SiteCode!) {{ site(code: $c) {{ {CARD} }} }}"),
        json!({ "c": site }),
    )
    .await;
    let keys: BTreeSet<&str> = d["site"]
        .as_object()
        .expect("site")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, want["Site"].iter().map(String::as_str).collect());

    // The private endpoint still refuses anonymous callers everything private.
    for (query, vars) in [
        ("query($c: SiteCode!) { site(code: $c) { name } }", json!({ "c": site })),
        (
            "{ sites { edges { node { code availability { status } } } } }",
            json!({}),
        ),
        (
            "query($c: SiteCode!) { venueSlots(code: $c) { booked } }",
            json!({ "c": s.venue }),
        ),
    ] {
        let (c, _) = app.err(None, query, vars).await;
        assert_eq!(c, "UNAUTHENTICATED", "{query}");
    }
}

#[tokio::test]
async fn search_by_area_postal_code_words_product_and_availability() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let chiyoda = vec![
        s.sakura.clone(),
        s.midori.clone(),
        s.hikari.clone(),
        s.chuo.clone(),
        s.venue.clone(),
    ];

    let d = public_ok(&app, SEARCH, json!({ "filter": { "municipality": CHIYODA } })).await;
    assert_eq!(codes_of(&d["sites"]), chiyoda, "ordered by code; withdrawn never shown");
    let symbols: Vec<&str> = d["sites"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["availability"]["symbol"].as_str().expect("symbol"))
        .collect();
    assert_eq!(symbols, ["○", "△", "×", "－", "○"]);
    assert_eq!(
        (
            &d["sites"]["totalCount"],
            &d["sites"]["page"],
            &d["sites"]["pageSize"],
            &d["sites"]["hasNextPage"]
        ),
        (&json!(5), &json!(1), &json!(20), &json!(false))
    );

    let cases: Vec<(Value, Vec<&String>)> = vec![
        (
            json!({ "prefecture": "13" }),
            vec![&s.sakura, &s.midori, &s.hikari, &s.chuo, &s.shinjuku, &s.venue],
        ),
        (
            json!({ "municipality": CHIYODA, "availableOnly": true }),
            vec![&s.sakura, &s.midori, &s.venue],
        ),
        (
            json!({ "prefecture": "13", "availableOnly": true }),
            vec![&s.sakura, &s.midori, &s.shinjuku, &s.venue],
        ),
        (json!({ "postalCode": "100" }), vec![&s.sakura, &s.midori, &s.venue]),
        (json!({ "postalCode": "101-00" }), vec![&s.hikari]),
        (json!({ "postalCode": "〒０６０" }), vec![&s.sapporo]),
        (json!({ "postalCode": "1000001" }), vec![&s.sakura, &s.venue]),
        (json!({ "text": "クリニック" }), vec![&s.sakura, &s.shinjuku]),
        (json!({ "text": "ひかり" }), vec![&s.sapporo, &s.hikari]),
        (json!({ "text": "外神田" }), vec![&s.hikari]),
        (json!({ "text": "千代田　病院" }), vec![&s.chuo]),
        (json!({ "text": "100%" }), vec![]),
        (
            json!({ "prefecture": "13", "product": "spikevax" }),
            vec![&s.midori, &s.hikari],
        ),
        (json!({ "prefecture": "13", "product": "spike" }), vec![]),
        (
            json!({ "municipality": CHIYODA, "prefecture": "13", "text": "小児" }),
            vec![&s.midori],
        ),
        (json!({ "prefecture": "01" }), vec![&s.sapporo]),
    ];
    for (filter, want) in cases {
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(search(&app, filter.clone()).await, want, "{filter}");
    }

    // Pages.
    let page = |p: i64| json!({ "filter": { "municipality": CHIYODA }, "page": p, "size": 2 });
    let p1 = public_ok(&app, SEARCH, page(1)).await;
    assert_eq!(codes_of(&p1["sites"]), chiyoda[..2]);
    assert_eq!(
        (&p1["sites"]["totalCount"], &p1["sites"]["hasNextPage"]),
        (&json!(5), &json!(true))
    );
    let p3 = public_ok(&app, SEARCH, page(3)).await;
    assert_eq!(codes_of(&p3["sites"]), chiyoda[4..]);
    assert_eq!(p3["sites"]["hasNextPage"], false);
    let p4 = public_ok(&app, SEARCH, page(4)).await;
    assert_eq!(
        (codes_of(&p4["sites"]).len(), &p4["sites"]["totalCount"]),
        (0, &json!(5))
    );

    // Cards: everything a person needs, in Japanese.
    let card = |c: &str| {
        let app = &app;
        let c = c.to_owned();
        async move {
            public_ok(
                app,
                &format!("query($c: SiteCode!) {{ site(code: $c) {{ {CARD} }} }}"),
                json!({ "c": c }),
            )
            .await["site"]
                .clone()
        }
    };
    let sakura = card(&s.sakura).await;
    assert_eq!(
        (
            &sakura["name"],
            &sakura["kindLabel"],
            &sakura["address"],
            &sakura["postalCode"],
            &sakura["phone"]
        ),
        (
            &json!("さくら内科クリニック"),
            &json!("診療所"),
            &json!("東京都千代田区千代田1-1"),
            &json!("100-0001"),
            &json!("03-1234-5678")
        )
    );
    assert_eq!(sakura["prefecture"], json!({ "code": "13", "name": "東京都" }));
    assert_eq!(sakura["municipality"], json!({ "code": CHIYODA, "name": "千代田区" }));
    assert_eq!(
        sakura["products"],
        json!([{ "code": "comirnaty", "name": "コミナティ（ファイザー）" }])
    );
    assert_eq!(
        (
            &sakura["availability"]["status"],
            &sakura["availability"]["symbol"],
            &sakura["availability"]["label"]
        ),
        (&json!("OPEN"), &json!("○"), &json!("予約可能"))
    );
    assert!(sakura["availability"]["updatedAt"].is_string());
    assert_eq!(
        sakura["booking"],
        json!({ "phone": "03-1111-2222", "url": "https://yoyaku.example.jp/sakura", "notes": "駐車場あり" })
    );
    let chuo = card(&s.chuo).await;
    assert_eq!(
        chuo["availability"],
        json!({ "status": null, "symbol": "－", "label": "情報なし", "remaining": null, "updatedAt": null })
    );
    assert_eq!((&chuo["booking"], &chuo["kindLabel"]), (&Value::Null, &json!("病院")));
    let venue = card(&s.venue).await;
    assert_eq!(
        (
            &venue["availability"]["symbol"],
            &venue["availability"]["remaining"],
            &venue["kindLabel"]
        ),
        (&json!("○"), &json!(60), &json!("集団接種会場"))
    );
    assert_eq!(card(&s.closed).await, Value::Null, "a withdrawn site is not public");
    assert_eq!(card(&code("131202009")).await, Value::Null);

    // The legend and the lists the page's selects need.
    let d = public_ok(
        &app,
        "{ availabilityLegend { status symbol label } products { code } prefectures { code } municipalities(prefecture: \"13\") { code name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        d["availabilityLegend"],
        json!([
            { "status": "OPEN", "symbol": "○", "label": "予約可能" },
            { "status": "FEW", "symbol": "△", "label": "残りわずか" },
            { "status": "FULL", "symbol": "×", "label": "予約不可" },
            { "status": "NO_BOOKING_NEEDED", "symbol": "◎", "label": "予約不要" },
        ])
    );
    assert!(
        d["products"]
            .as_array()
            .expect("products")
            .contains(&json!({ "code": "spikevax" }))
    );
    assert_eq!(d["prefectures"].as_array().expect("prefectures").len(), 47);
    assert_eq!(d["municipalities"].as_array().expect("municipalities").len(), 62);

    // Refusals name the field.
    for (vars, field) in [
        (json!({ "filter": {} }), "filter"),
        (
            json!({ "filter": { "municipality": CHIYODA, "prefecture": "01" } }),
            "filter.municipality",
        ),
        (json!({ "filter": { "postalCode": "abc" } }), "filter.postalCode"),
        (json!({ "filter": { "prefecture": "13" }, "size": 51 }), "pageSize"),
        (json!({ "filter": { "prefecture": "13" }, "page": 0 }), "page"),
        (json!({ "filter": { "municipality": "131017" } }), "check digit"),
    ] {
        let (_, _, body) = public(&app, SEARCH, vars.clone()).await;
        let (c, m) = tests::error_of(&body);
        assert_eq!(c, "BAD_USER_INPUT", "{vars}: {m}");
        assert!(m.contains(field), "{field} not in {m}");
    }
}

fn cache_header(h: &reqwest::header::HeaderMap) -> String {
    h.get("x-vsys-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

fn symbol_of(body: &Value, site: &str) -> String {
    body["data"]["sites"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["code"] == site)
        .map(|i| i["availability"]["symbol"].as_str().expect("symbol").to_owned())
        .unwrap_or_else(|| panic!("{site} not in {body}"))
}

#[tokio::test]
async fn no_cached_answer_outlives_an_acknowledged_change() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let chiyoda = json!({ "filter": { "municipality": CHIYODA } });

    let (_, h1, b1) = public(&app, SEARCH, chiyoda.clone()).await;
    assert_eq!(cache_header(&h1), "miss");
    let (_, h2, b2) = public(&app, SEARCH, chiyoda.clone()).await;
    assert_eq!((cache_header(&h2), &b2), ("hit".to_owned(), &b1));
    // The same request typed differently shares the entry.
    let respaced = SEARCH
        .replace(' ', "  \n ")
        .replace("{  \n totalCount", "{ # comment\n totalCount");
    let (_, h3, b3) = public(&app, &respaced, chiyoda.clone()).await;
    assert_eq!((cache_header(&h3), &b3), ("hit".to_owned(), &b1));

    // A change in another municipality leaves Chiyoda's answer cached.
    set_status(&app, &s.shinjuku, "FULL").await;
    let (_, h, _) = public(&app, SEARCH, chiyoda.clone()).await;
    assert_eq!(cache_header(&h), "hit");

    // Every acknowledged change is visible to the very next read, cached or not.
    for (i, status) in ["FULL", "OPEN", "FEW", "NO_BOOKING_NEEDED", "FULL", "OPEN"]
        .into_iter()
        .enumerate()
    {
        set_status(&app, &s.sakura, status).await;
        let want = domain::availability::Availability::ALL
            .into_iter()
            .find(|a| a.as_str() == status)
            .expect("status")
            .symbol();
        let (_, h, body) = public(&app, SEARCH, chiyoda.clone()).await;
        assert_eq!(symbol_of(&body, &s.sakura), want, "round {i}");
        assert_eq!(cache_header(&h), "miss", "round {i}");
        let (_, h, body) = public(&app, SEARCH, chiyoda.clone()).await;
        assert_eq!(
            (cache_header(&h), symbol_of(&body, &s.sakura)),
            ("hit".to_owned(), want.to_owned())
        );
    }

    // Slot changes, prefecture-wide answers and single-site cards follow too.
    let tokyo = json!({ "filter": { "prefecture": "13" } });
    let one = format!(
        "{{ site(code: \"{}\") {{ availability {{ symbol remaining }} }} }}",
        s.venue
    );
    public(&app, SEARCH, tokyo.clone()).await;
    public(&app, &one, json!({})).await;
    let (_, h, _) = public(&app, &one, json!({})).await;
    assert_eq!(cache_header(&h), "hit");
    app.ok(
        &token("MUNICIPALITY", Some(CHIYODA)),
        SET_SLOT,
        json!({ "code": s.venue, "input": { "date": days_from_today(1), "startTime": "09:00", "endTime": "12:00", "capacity": 100, "booked": 100 } }),
    )
    .await;
    let (_, _, body) = public(&app, SEARCH, tokyo.clone()).await;
    assert_eq!(symbol_of(&body, &s.venue), "×");
    let (_, h, body) = public(&app, &one, json!({})).await;
    assert_eq!(cache_header(&h), "miss");
    assert_eq!(
        body["data"]["site"]["availability"],
        json!({ "symbol": "×", "remaining": 0 })
    );

    // Site-master changes (a new name, a withdrawal) reach cached answers as well.
    let n = token("NATIONAL", None);
    app.ok(
        &n,
        "mutation($c: SiteCode!) { updateSite(code: $c, input: { name: \"新さくら内科\" }) { name } }",
        json!({ "c": s.sakura }),
    )
    .await;
    let d = public_ok(
        &app,
        "query($f: SiteSearchInput!) { sites(filter: $f) { items { code name } } }",
        json!({ "f": { "municipality": CHIYODA } }),
    )
    .await;
    assert_eq!(
        d["sites"]["items"][0],
        json!({ "code": s.sakura, "name": "新さくら内科" })
    );
    app.ok(
        &n,
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { status } }",
        json!({ "c": s.hikari }),
    )
    .await;
    let (_, _, body) = public(&app, SEARCH, chiyoda.clone()).await;
    assert!(
        !codes_of(&body["data"]["sites"]).contains(&s.hikari),
        "withdrawn: gone at once"
    );

    // Answers with errors are never cached.
    let (_, h, _) = public(&app, SEARCH, json!({ "filter": {} })).await;
    assert_eq!(cache_header(&h), "bypass");
}

/// Two servers of one deployment (same database, same Redis prefix): a change acknowledged by
/// one is what the other answers next, cached or not, and the other's anonymous subscribers
/// hear of it. Without Redis a deployment is one instance (the SQLite mode), so then both
/// roles are played by one server.
#[tokio::test]
async fn every_instance_of_a_deployment_sees_an_acknowledged_change() {
    let db = TestDb::new().await;
    let cfg = tests::test_config(&db);
    let shared = cfg.redis_url.is_some();
    let a = TestApp::spawn_with(db, |c| *c = cfg.clone()).await;
    let other = if shared {
        Some(api::server::start(cfg.clone()).await.expect("second instance starts"))
    } else {
        None
    };
    let b_addr = other.as_ref().map_or(a.addr, |r| r.addr);
    let s = seed(&a).await;
    let chiyoda = json!({ "filter": { "municipality": CHIYODA } });
    let ask_b = |vars: Value| {
        let client = a.client.clone();
        async move {
            let resp = client
                .post(format!("http://{b_addr}/public/graphql"))
                .json(&json!({ "query": SEARCH, "variables": vars }))
                .send()
                .await
                .expect("request");
            let cache = cache_header(resp.headers());
            (cache, resp.json::<Value>().await.expect("json"))
        }
    };
    ask_b(chiyoda.clone()).await;
    let (cache, _) = ask_b(chiyoda.clone()).await;
    assert_eq!(cache, "hit");

    let mut sub = Subscriber::connect(b_addr, CHIYODA).await;
    sub.wait_live(&a, &s.midori).await;
    for status in ["FULL", "OPEN", "FEW"] {
        set_status(&a, &s.sakura, status).await;
        let (_, body) = ask_b(chiyoda.clone()).await;
        let want = ["FULL", "OPEN", "FEW"]
            .iter()
            .zip(["×", "○", "△"])
            .find(|(x, _)| **x == status)
            .map(|(_, y)| y)
            .expect("symbol");
        assert_eq!(symbol_of(&body, &s.sakura), *want, "after {status}");
        let event = sub.next_for(&s.sakura).await;
        assert_eq!(event["availability"]["symbol"], *want);
    }
    if let Some(r) = other {
        r.stop().await.expect("stop");
    }
}

/// A graphql-transport-ws client of the public subscription.
struct Subscriber {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

const DEADLINE: Duration = Duration::from_secs(15);

impl Subscriber {
    async fn open(addr: std::net::SocketAddr) -> Subscriber {
        let mut req = format!("ws://{addr}/public/graphql/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket");
        ws.send(Message::text(json!({ "type": "connection_init" }).to_string()))
            .await
            .expect("send");
        let mut sub = Subscriber { ws };
        let ack = sub.next_message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        sub
    }

    async fn connect(addr: std::net::SocketAddr, municipality: &str) -> Subscriber {
        let mut sub = Subscriber::open(addr).await;
        sub.subscribe(
            "subscription($m: MunicipalityCode!) { availabilityChanged(municipality: $m) { code availability { status symbol } } }",
            json!({ "m": municipality }),
        )
        .await;
        sub
    }

    async fn subscribe(&mut self, query: &str, variables: Value) {
        self.ws
            .send(Message::text(
                json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } })
                    .to_string(),
            ))
            .await
            .expect("send");
    }

    async fn next_message(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a message before the deadline")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "ping" {
                    continue;
                }
                return v;
            }
        }
    }

    /// Waits for an event about `site`, skipping others.
    async fn next_for(&mut self, site: &str) -> Value {
        loop {
            let m = self.next_message().await;
            assert_eq!(m["type"], "next", "{m}");
            let e = &m["payload"]["data"]["availabilityChanged"];
            if e["code"] == site {
                return e.clone();
            }
        }
    }

    /// The server sets a subscription up after the `subscribe` message arrives, with no answer;
    /// change `site` until an event shows the subscription is live (polling with a deadline).
    async fn wait_live(&mut self, app: &TestApp, site: &str) {
        let start = Instant::now();
        let statuses = ["OPEN", "FEW"];
        let mut i = 0;
        loop {
            set_status(app, site, statuses[i % 2]).await;
            i += 1;
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(300), self.ws.next()).await
            {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "next" {
                    return;
                }
            }
            assert!(start.elapsed() < DEADLINE, "the subscription never went live");
        }
    }
}

#[tokio::test]
async fn anonymous_subscribers_hear_their_municipality_only() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let mut sub = Subscriber::connect(app.addr, CHIYODA).await;
    sub.wait_live(&app, &s.midori).await;
    // A change elsewhere is not sent; the next message is Chiyoda's.
    set_status(&app, &s.shinjuku, "FULL").await;
    set_status(&app, &s.sakura, "FULL").await;
    let m = sub.next_message().await;
    assert_eq!(m["type"], "next");
    let e = &m["payload"]["data"]["availabilityChanged"];
    if e["code"] == s.midori {
        // A late event of the liveness probe; the next one must be sakura's.
        let e = sub.next_for(&s.sakura).await;
        assert_eq!(e["availability"], json!({ "status": "FULL", "symbol": "×" }));
    } else {
        assert_eq!(e["code"], s.sakura.as_str(), "{m}");
        assert_eq!(e["availability"], json!({ "status": "FULL", "symbol": "×" }));
    }
    // Venue slot changes are availability changes too.
    app.ok(
        &token("MUNICIPALITY", Some(CHIYODA)),
        SET_SLOT,
        json!({ "code": s.venue, "input": { "date": days_from_today(1), "startTime": "09:00", "endTime": "12:00", "capacity": 100, "booked": 95 } }),
    )
    .await;
    let e = sub.next_for(&s.venue).await;
    assert_eq!(e["availability"], json!({ "status": "FEW", "symbol": "△" }));

    // Private fields cannot be subscribed to either.
    let mut bad = Subscriber::open(app.addr).await;
    bad.subscribe(
        "subscription { availabilityChanged(municipality: \"131016\") { code wholesaler } }",
        json!({}),
    )
    .await;
    let m = bad.next_message().await;
    // Refused at validation: errors and no data, whichever message type carries them.
    assert!(m["type"] == "error" || m["payload"]["data"].is_null(), "{m}");
    assert!(m.to_string().contains("Unknown field \\\"wholesaler\\\""), "{m}");
}

#[tokio::test]
async fn clients_over_their_rate_get_429_with_retry_after() {
    let app = TestApp::spawn_with(TestDb::new().await, |c| {
        c.public.rate_per_second = 1.0 / 60.0;
        c.public.rate_burst = 3;
        c.public.trust_forwarded_for = true;
    })
    .await;
    let q = "{ prefectures { code } }";
    for _ in 0..3 {
        let (status, _, _) = public_as(&app, Some("198.51.100.1"), q, json!({})).await;
        assert_eq!(status, 200);
    }
    let (status, headers, body) = public_as(&app, Some("198.51.100.1"), q, json!({})).await;
    assert_eq!(status, 429);
    let wait: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("retry after")
    );

    // Another client has its own budget.
    let (status, _, _) = public_as(&app, Some("198.51.100.2"), q, json!({})).await;
    assert_eq!(status, 200);
    // The limited client is limited everywhere anonymous: page, feed, anonymous /graphql …
    for path in ["/", "/$bulk-publish", "/feed/13/locations.ndjson"] {
        let resp = app
            .client
            .get(app.url(path))
            .header("x-forwarded-for", "198.51.100.1")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 429, "{path}");
        assert!(resp.headers().contains_key("retry-after"));
    }
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 429);
    // … but a signed-in caller is identified and not throttled by this limit.
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "198.51.100.1")
        .bearer_auth(token("NATIONAL", None))
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn abusive_queries_are_refused_before_they_run() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let run = |query: String, op: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.url("/public/graphql"))
                .json(&json!({ "query": query, "operationName": op }))
                .send()
                .await
                .expect("request");
            (resp.status().as_u16(), resp.json::<Value>().await.expect("json"))
        }
    };
    // Too deep (introspection is the only place cycles exist).
    let deep = "query PubAbuseDeep { __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }".to_owned();
    let (_, body) = run(deep, "PubAbuseDeep").await;
    let (c, m) = tests::error_of(&body);
    assert_eq!(c, "BAD_USER_INPUT");
    assert!(m.contains("nested too deep"), "{m}");
    // Too costly: many large searches in one document.
    let aliases: String = (0..12)
        .map(|i| format!("a{i}: sites(filter: {{ prefecture: \"13\" }}, pageSize: 50) {{ items {{ code name }} }} "))
        .collect();
    let (_, body) = run(format!("query PubAbuseWide {{ {aliases} }}"), "PubAbuseWide").await;
    let (c, m) = tests::error_of(&body);
    assert_eq!(c, "BAD_USER_INPUT");
    assert!(m.contains("too complex"), "{m}");
    // A normal search runs.
    let (status, body) = run(
        "query PubAbuseFine { sites(filter: { municipality: \"131016\" }) { totalCount } }".to_owned(),
        "PubAbuseFine",
    )
    .await;
    assert_eq!((status, &body["data"]["sites"]["totalCount"]), (200, &json!(5)));
    // Refused documents never reached execution: only the fine one was counted.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("operation=\"PubAbuseFine\""),
        "the control operation ran"
    );
    assert!(!metrics.contains("PubAbuseDeep") && !metrics.contains("PubAbuseWide"));

    // Oversized and batched bodies are refused before GraphQL.
    let big = format!("{{ prefectures {{ code }} }} #{}", "x".repeat(20_000));
    let (status, _) = {
        let resp = app
            .client
            .post(app.url("/public/graphql"))
            .json(&json!({ "query": big }))
            .send()
            .await
            .expect("request");
        (resp.status().as_u16(), ())
    };
    assert_eq!(status, 413);
    let resp = app
        .client
        .post(app.url("/public/graphql"))
        .json(&json!([{ "query": "{ prefectures { code } }" }]))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String, String) {
    let resp = app.client.get(app.url(path)).send().await.expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.text().await.expect("text"))
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn the_feed_publishes_locations_schedules_and_slots() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;

    let (status, ct, text) = get_text(&app, "/$bulk-publish").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    let manifest: Value = serde_json::from_str(&text).expect("json");
    let base = format!("http://{}", app.addr);
    assert_eq!(manifest["request"], format!("{base}/$bulk-publish"));
    assert!(
        manifest["transactionTime"]
            .as_str()
            .expect("time")
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );
    assert_eq!(manifest["error"], json!([]));
    let output = manifest["output"].as_array().expect("output");
    assert_eq!(output.len(), 47 * 3);
    for (t, file) in [("Location", "locations"), ("Schedule", "schedules"), ("Slot", "slots")] {
        assert!(
            output.contains(&json!({ "type": t, "url": format!("{base}/feed/13/{file}.ndjson"), "extension": { "state": ["JP-13"] } })),
            "{t}"
        );
    }

    let (status, ct, text) = get_text(&app, "/feed/13/locations.ndjson").await;
    assert_eq!((status, ct.as_str()), (200, "application/fhir+ndjson"));
    let locations = ndjson(&text);
    let ids: Vec<&str> = locations.iter().map(|l| l["id"].as_str().expect("id")).collect();
    assert_eq!(
        ids,
        [&s.sakura, &s.midori, &s.hikari, &s.chuo, &s.shinjuku, &s.venue].map(String::as_str),
        "Tokyo's active sites, by code (withdrawn and Hokkaido ones left out)"
    );
    let sakura = &locations[0];
    assert_eq!(sakura["resourceType"], "Location");
    assert_eq!(sakura["name"], "さくら内科クリニック");
    assert_eq!(
        sakura["address"],
        json!({ "line": ["東京都千代田区千代田1-1"], "city": "千代田区", "state": "東京都", "postalCode": "100-0001", "country": "JP" })
    );
    assert_eq!(
        sakura["telecom"][0],
        json!({ "system": "phone", "value": "03-1234-5678" })
    );
    assert_eq!(sakura["position"], json!({ "latitude": 35.68, "longitude": 139.75 }));

    let (_, _, text) = get_text(&app, "/feed/13/schedules.ndjson").await;
    let schedules = ndjson(&text);
    assert_eq!(schedules.len(), 6);
    for (sc, l) in schedules.iter().zip(&locations) {
        assert_eq!(sc["resourceType"], "Schedule");
        assert_eq!(
            sc["actor"][0]["reference"],
            format!("Location/{}", l["id"].as_str().expect("id"))
        );
        assert_eq!(sc["serviceType"][0]["coding"][1]["code"], "covid19-immunization");
    }
    let midori = schedules.iter().find(|x| x["id"] == s.midori).expect("midori");
    let cvx: Vec<&str> = midori["extension"]
        .as_array()
        .expect("products")
        .iter()
        .map(|e| e["valueCoding"]["code"].as_str().expect("cvx"))
        .collect();
    assert_eq!(cvx, ["208", "207"], "comirnaty and spikevax");

    let (_, _, text) = get_text(&app, "/feed/13/slots.ndjson").await;
    let slots = ndjson(&text);
    let by_schedule = |site: &str| -> Vec<&Value> {
        slots
            .iter()
            .filter(|x| x["schedule"]["reference"] == format!("Schedule/{site}"))
            .collect()
    };
    let one = |site: &str| -> &Value {
        let v = by_schedule(site);
        assert_eq!(v.len(), 1, "{site}: {v:?}");
        v[0]
    };
    assert_eq!(one(&s.sakura)["status"], "free");
    assert_eq!(
        one(&s.sakura)["extension"][0],
        json!({ "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link", "valueUrl": "https://yoyaku.example.jp/sakura" })
    );
    assert_eq!(one(&s.midori)["status"], "free");
    assert_eq!(one(&s.hikari)["status"], "busy");
    assert_eq!(one(&s.shinjuku)["status"], "free");
    assert!(
        by_schedule(&s.chuo).is_empty(),
        "unknown availability publishes no slot"
    );
    let venue = one(&s.venue);
    let tomorrow = days_from_today(1);
    assert_eq!(venue["start"], format!("{tomorrow}T09:00:00+09:00"));
    assert_eq!(venue["end"], format!("{tomorrow}T12:00:00+09:00"));
    assert_eq!(venue["status"], "free");
    assert!(venue["extension"].as_array().expect("ext").contains(
        &json!({ "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/slot-capacity", "valueInteger": 60 })
    ));
    for sl in &slots {
        let id = sl["id"].as_str().expect("id");
        assert!(
            id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'),
            "{id}"
        );
    }

    // A change shows in the feed at once (the files are cached like searches).
    let (_, _, again) = get_text(&app, "/feed/13/slots.ndjson").await;
    assert_eq!(again, text);
    set_status(&app, &s.sakura, "FULL").await;
    let (_, _, text) = get_text(&app, "/feed/13/slots.ndjson").await;
    let sakura = ndjson(&text)
        .into_iter()
        .find(|x| x["schedule"]["reference"] == format!("Schedule/{}", s.sakura))
        .expect("sakura");
    assert_eq!(sakura["status"], "busy");

    let (_, _, text) = get_text(&app, "/feed/01/locations.ndjson").await;
    assert_eq!(ndjson(&text).len(), 1, "Hokkaido: the Sapporo clinic");
    let (_, _, text) = get_text(&app, "/feed/47/slots.ndjson").await;
    assert_eq!(text, "", "an empty prefecture has empty files");
    for path in ["/feed/48/locations.ndjson", "/feed/13/patients.ndjson"] {
        let (status, _, _) = get_text(&app, path).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_page_is_served_in_japanese_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/")).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let html = resp.text().await.expect("html");
    assert!(html.contains("<html lang=\"ja\">"));
    for id in ["prefecture", "municipality", "postal", "text", "product", "available"] {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "a label for #{id}");
    }
    assert!(!html.contains("<script>"), "no inline script (the policy forbids it)");
    let (status, ct, js) = get_text(&app, "/assets/app.js").await;
    assert_eq!((status, ct.starts_with("text/javascript")), (200, true));
    assert!(js.contains("/public/graphql"));
    let (status, ct, _) = get_text(&app, "/assets/app.css").await;
    assert_eq!((status, ct.starts_with("text/css")), (200, true));
}
