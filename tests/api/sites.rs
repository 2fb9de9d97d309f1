//! The site master through GraphQL: register, change, withdraw, history, listing and scope.

use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token, venue_input};

const CHIYODA: &str = "131016";
const SHINJUKU: &str = "131041";
const SAPPORO: &str = "011002";
const CLINIC: &str = "1312020017"; // Tokyo, 医科, district 20, number 2001
const CLINIC_2: &str = "1312020025";
const SAPPORO_CLINIC: &str = "0111010013";
const UNREGISTERED: &str = "1312020033"; // valid, never registered

const UPDATE: &str = "mutation($code: SiteCode!, $input: UpdateSiteInput!, $v: Int) { updateSite(code: $code, input: $input, expectedVersion: $v) { code version phone name kind wholesaler coordinates { latitude } history { version action actor changes { field from to } } } }";
const WITHDRAW: &str = "mutation($code: SiteCode!) { withdrawSite(code: $code) { code status version } }";
const GET: &str = "query($code: SiteCode!) { site(code: $code) { code name phone status version } }";

async fn register(app: &TestApp, t: &str, input: Value) -> Value {
    app.ok(t, REGISTER, json!({ "input": input })).await["registerSite"].clone()
}

/// Three clinics (two in Chiyoda, one in Sapporo) and a venue in Chiyoda.
async fn seed(app: &TestApp) -> String {
    let n = token("NATIONAL", None);
    let mut c = clinic_input(CLINIC, CHIYODA, "さくら内科クリニック");
    c["wholesaler"] = json!("suzuken");
    register(app, &n, c).await;
    register(app, &n, clinic_input(CLINIC_2, CHIYODA, "みどり小児科")).await;
    let mut far = clinic_input(SAPPORO_CLINIC, SAPPORO, "札幌ひかり医院");
    far["address"] = json!("北海道札幌市中央区1-1");
    register(app, &n, far).await;
    let venue = register(
        app,
        &token("MUNICIPALITY", Some(CHIYODA)),
        venue_input(CHIYODA, "千代田区集団接種会場"),
    )
    .await;
    venue["code"].as_str().expect("code").to_owned()
}

fn codes(data: &Value) -> Vec<String> {
    data["sites"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn a_municipality_registers_a_venue_and_gets_an_assigned_code() {
    let app = TestApp::spawn().await;
    let t = token("MUNICIPALITY", Some(CHIYODA));
    let site = register(&app, &t, venue_input(CHIYODA, "千代田区集団接種会場")).await;
    let code = site["code"].as_str().expect("code");
    assert_eq!(site["codeKind"], "ASSIGNED");
    assert_eq!(&code[..3], "132", "prefecture 13, class digit 2");
    assert_eq!(&code[3..9], "000001", "first serial of the prefecture");
    let parsed: domain::codes::SiteCode = code.parse().expect("the assigned code carries a valid check digit");
    assert_eq!(parsed.kind(), domain::codes::SiteCodeKind::Assigned);
    assert_eq!(site["status"], "ACTIVE");
    assert_eq!(site["version"], 1);
    assert_eq!(site["municipality"], json!({ "code": CHIYODA, "name": "千代田区" }));

    let second = register(&app, &t, venue_input(CHIYODA, "第二会場")).await;
    assert_eq!(&second["code"].as_str().expect("code")[3..9], "000002");
}

#[tokio::test]
async fn concurrent_venue_registrations_never_share_a_code() {
    let app = TestApp::spawn().await;
    let t = token("MUNICIPALITY", Some(CHIYODA));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (client, url, t) = (app.client.clone(), app.url("/graphql"), t.clone());
            tokio::spawn(async move {
                let body =
                    json!({ "query": REGISTER, "variables": { "input": venue_input(CHIYODA, &format!("会場{i}")) } });
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
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        let body = task.await.expect("task");
        let code = body["data"]["registerSite"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"));
        got.push(code.to_owned());
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "duplicate assigned codes: {got:?}");
    assert_eq!(got.len(), 12);
    assert_eq!(
        unique.last().map(|c| &c[3..9]),
        Some("000012"),
        "serials 1..=12, no gaps"
    );
}

#[tokio::test]
async fn registration_rules_are_enforced_and_nothing_is_stored_on_refusal() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let n = token("NATIONAL", None);
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let cases: Vec<(Option<String>, Value, &str, &str)> = vec![
        (None, venue_input(CHIYODA, "x"), "UNAUTHENTICATED", "token"),
        (
            Some(chiyoda.clone()),
            clinic_input(UNREGISTERED, CHIYODA, "x"),
            "FORBIDDEN",
            "venues",
        ),
        (
            Some(chiyoda.clone()),
            venue_input(SHINJUKU, "x"),
            "FORBIDDEN",
            "own area",
        ),
        (
            Some(token("PREFECTURE", Some("13"))),
            venue_input(CHIYODA, "x"),
            "FORBIDDEN",
            "register",
        ),
        (
            Some(token("SITE", Some(CLINIC))),
            venue_input(CHIYODA, "x"),
            "FORBIDDEN",
            "register",
        ),
        (
            Some(n.clone()),
            clinic_input(CLINIC, CHIYODA, "dup"),
            "CONFLICT",
            "already registered",
        ),
        (
            Some(n.clone()),
            clinic_input("1312020018", CHIYODA, "x"),
            "BAD_USER_INPUT",
            "check digit",
        ),
        (
            Some(n.clone()),
            clinic_input("13120200", CHIYODA, "x"),
            "BAD_USER_INPUT",
            "10",
        ),
        (
            Some(n.clone()),
            venue_input("139998", "x"),
            "BAD_USER_INPUT",
            "municipality",
        ),
        (
            Some(n.clone()),
            venue_input("131017", "x"),
            "BAD_USER_INPUT",
            "check digit",
        ),
        (
            Some(n.clone()),
            clinic_input("0111010013", CHIYODA, "x"),
            "BAD_USER_INPUT",
            "prefecture",
        ),
    ];
    for (t, input, want_code, want_text) in cases {
        let (code, message) = app.err(t.as_deref(), REGISTER, json!({ "input": input })).await;
        assert_eq!(code, want_code, "{input}: {message}");
        assert!(message.contains(want_text), "{want_text:?} not in {message:?}");
    }
    let mut bad_phone = venue_input(CHIYODA, "x");
    bad_phone["phone"] = json!("12-34");
    let (code, message) = app.err(Some(&chiyoda), REGISTER, json!({ "input": bad_phone })).await;
    assert_eq!(
        (code.as_str(), message.contains("input.phone")),
        ("BAD_USER_INPUT", true),
        "{message}"
    );
    let mut satellite = venue_input(CHIYODA, "x");
    satellite["coldChain"] = json!({ "role": "SATELLITE", "baseSite": UNREGISTERED });
    let (code, message) = app.err(Some(&chiyoda), REGISTER, json!({ "input": satellite })).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("BAD_USER_INPUT", "input.coldChain.baseSite: no such site")
    );

    let all = app.ok(&n, "{ sites(first: 100) { totalCount } }", json!({})).await;
    assert_eq!(all["sites"]["totalCount"], 4, "refused registrations stored nothing");
}

#[tokio::test]
async fn listing_is_scoped_paged_and_filtered() {
    let app = TestApp::spawn().await;
    let venue = seed(&app).await;
    let q = "query($first: Int, $after: String, $filter: SiteFilterInput) { sites(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { code } } } }";

    let n = token("NATIONAL", None);
    let page1 = app.ok(&n, q, json!({ "first": 2 })).await;
    assert_eq!(codes(&page1), vec![SAPPORO_CLINIC, CLINIC]);
    assert_eq!(page1["sites"]["totalCount"], 4);
    assert_eq!(page1["sites"]["pageInfo"]["hasNextPage"], true);
    let after = page1["sites"]["pageInfo"]["endCursor"].clone();
    let page2 = app.ok(&n, q, json!({ "first": 2, "after": after })).await;
    assert_eq!(codes(&page2), vec![CLINIC_2.to_owned(), venue.clone()]);
    assert_eq!(page2["sites"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(page2["sites"]["pageInfo"]["hasPreviousPage"], true);

    let scoped: &[(&str, Option<&str>, Vec<&str>)] = &[
        ("PREFECTURE", Some("13"), vec![CLINIC, CLINIC_2, &venue]),
        ("PREFECTURE", Some("01"), vec![SAPPORO_CLINIC]),
        ("MUNICIPALITY", Some(CHIYODA), vec![CLINIC, CLINIC_2, &venue]),
        ("MUNICIPALITY", Some(SHINJUKU), vec![]),
        ("SITE", Some(CLINIC), vec![CLINIC]),
        ("WHOLESALER", Some("suzuken"), vec![CLINIC]),
        ("MEDICAL_ASSOCIATION", Some("011002 131041"), vec![SAPPORO_CLINIC]),
        ("FEDERATION", Some("01"), vec![SAPPORO_CLINIC]),
    ];
    for (role, scope, want) in scoped {
        let got = codes(&app.ok(&token(role, *scope), q, json!({ "first": 50 })).await);
        assert_eq!(got, *want, "{role} {scope:?}");
    }

    let filters: &[(Value, Vec<&str>)] = &[
        (json!({ "prefecture": "01" }), vec![SAPPORO_CLINIC]),
        (json!({ "municipality": CHIYODA }), vec![CLINIC, CLINIC_2, &venue]),
        (json!({ "kind": "MASS_VENUE" }), vec![&venue]),
        (json!({ "name": "小児" }), vec![CLINIC_2]),
        (
            json!({ "name": "ｶｲｼﾞｮｳ" }),
            vec![SAPPORO_CLINIC, CLINIC, CLINIC_2, &venue],
        ),
        (json!({ "name": "100%" }), vec![]),
        (json!({ "status": "WITHDRAWN" }), vec![]),
        (
            json!({ "municipality": CHIYODA, "kind": "CLINIC", "name": "さくら" }),
            vec![CLINIC],
        ),
    ];
    for (filter, want) in filters {
        let data = app.ok(&n, q, json!({ "first": 50, "filter": filter })).await;
        assert_eq!(codes(&data), *want, "{filter}");
        assert_eq!(
            data["sites"]["totalCount"],
            want.len(),
            "totalCount counts the same filter: {filter}"
        );
    }

    let (code, _) = app.err(None, q, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED", "anonymous callers see nothing here");
    let (code, _) = app.err(Some(&n), q, json!({ "first": 501 })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.err(Some(&n), q, json!({ "after": "not-a-cursor" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn reading_one_site_follows_scope() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let ok: &[(&str, Option<&str>)] = &[
        ("NATIONAL", None),
        ("PREFECTURE", Some("13")),
        ("MUNICIPALITY", Some(CHIYODA)),
        ("SITE", Some(CLINIC)),
    ];
    for (role, scope) in ok {
        let d = app.ok(&token(role, *scope), GET, json!({ "code": CLINIC })).await;
        assert_eq!(d["site"]["code"], CLINIC, "{role}");
    }
    let refused: &[(&str, Option<&str>)] = &[
        ("PREFECTURE", Some("01")),
        ("MUNICIPALITY", Some(SHINJUKU)),
        ("SITE", Some(CLINIC_2)),
        ("WHOLESALER", Some("medipal")),
    ];
    for (role, scope) in refused {
        let (code, _) = app
            .err(Some(&token(role, *scope)), GET, json!({ "code": CLINIC }))
            .await;
        assert_eq!(code, "FORBIDDEN", "{role} {scope:?}");
    }
    let (code, _) = app.err(None, GET, json!({ "code": CLINIC })).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let (code, _) = app
        .err(Some(&token("NATIONAL", None)), GET, json!({ "code": UNREGISTERED }))
        .await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn changes_are_authorized_versioned_and_recorded() {
    let app = TestApp::spawn().await;
    let venue = seed(&app).await;
    let site_t = token("SITE", Some(CLINIC));

    // A site changes its own phone: one history entry with who, what and the old value.
    let d = app
        .ok(
            &site_t,
            UPDATE,
            json!({ "code": CLINIC, "input": { "phone": "03-9999-0000" } }),
        )
        .await;
    let s = &d["updateSite"];
    assert_eq!(s["phone"], "03-9999-0000");
    assert_eq!(s["version"], 2);
    let h = s["history"].as_array().expect("history");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["action"], "REGISTERED");
    assert_eq!(h[0]["actor"], "NATIONAL");
    assert_eq!(
        h[1],
        json!({ "version": 2, "action": "CHANGED", "actor": format!("SITE:{CLINIC}"),
                "changes": [{ "field": "phone", "from": "03-1234-5678", "to": "03-9999-0000" }] })
    );

    // The same change again changes nothing and writes nothing.
    let d = app
        .ok(
            &site_t,
            UPDATE,
            json!({ "code": CLINIC, "input": { "phone": "03-9999-0000" } }),
        )
        .await;
    assert_eq!(d["updateSite"]["version"], 2);
    assert_eq!(d["updateSite"]["history"].as_array().expect("history").len(), 2);

    // Refusals leave the site as it was.
    let refusals: Vec<(String, &str, Value, Option<i32>, &str)> = vec![
        (
            site_t.clone(),
            CLINIC,
            json!({ "wholesaler": "medipal" }),
            None,
            "FORBIDDEN",
        ),
        (
            site_t.clone(),
            CLINIC,
            json!({ "municipality": SHINJUKU }),
            None,
            "FORBIDDEN",
        ),
        (
            site_t.clone(),
            CLINIC_2,
            json!({ "phone": "03-1111-2222" }),
            None,
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            CLINIC,
            json!({ "phone": "03-1111-2222" }),
            None,
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(SHINJUKU)),
            &venue,
            json!({ "name": "乗っ取り" }),
            None,
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            &venue,
            json!({ "municipality": SHINJUKU }),
            None,
            "FORBIDDEN",
        ),
        (
            token("WHOLESALER", Some("suzuken")),
            CLINIC,
            json!({ "phone": "03-1111-2222" }),
            None,
            "FORBIDDEN",
        ),
        (
            site_t.clone(),
            CLINIC,
            json!({ "phone": "bad" }),
            None,
            "BAD_USER_INPUT",
        ),
        (
            site_t.clone(),
            CLINIC,
            json!({ "phone": "03-1111-2222" }),
            Some(1),
            "CONFLICT",
        ),
    ];
    for (t, code, input, v, want) in refusals {
        let (got, message) = app
            .err(Some(&t), UPDATE, json!({ "code": code, "input": input, "v": v }))
            .await;
        assert_eq!(got, want, "{code} {input}: {message}");
    }
    let n = token("NATIONAL", None);
    let now = app.ok(&n, GET, json!({ "code": CLINIC })).await;
    assert_eq!(now["site"]["phone"], "03-9999-0000");
    assert_eq!(now["site"]["version"], 2);

    // The municipality sets a medical site's wholesaler; it may clear coordinates of its venue.
    let m = token("MUNICIPALITY", Some(CHIYODA));
    let d = app
        .ok(
            &m,
            UPDATE,
            json!({ "code": CLINIC_2, "input": { "wholesaler": "alfresa" } }),
        )
        .await;
    assert_eq!(d["updateSite"]["wholesaler"], "alfresa");
    let d = app
        .ok(
            &m,
            UPDATE,
            json!({ "code": venue, "input": { "coordinates": null, "name": "新会場" }, "v": 1 }),
        )
        .await;
    assert_eq!(d["updateSite"]["coordinates"], Value::Null);
    assert_eq!(d["updateSite"]["name"], "新会場");
}

#[tokio::test]
async fn withdrawal_keeps_the_site_and_blocks_further_changes() {
    let app = TestApp::spawn().await;
    let venue = seed(&app).await;
    let n = token("NATIONAL", None);
    let m = token("MUNICIPALITY", Some(CHIYODA));

    // A base site that still supplies a satellite cannot be withdrawn.
    let mut sat = venue_input(CHIYODA, "サテライト会場");
    sat["coldChain"] = json!({ "role": "SATELLITE", "baseSite": venue });
    let sat = register(&app, &m, sat).await;
    assert_eq!(
        sat["coldChain"],
        json!({ "role": "SATELLITE", "freezerClass": null, "baseSite": venue })
    );
    let (code, message) = app.err(Some(&m), WITHDRAW, json!({ "code": venue })).await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains(sat["code"].as_str().expect("code")), "{message}");

    let (code, _) = app.err(Some(&m), WITHDRAW, json!({ "code": CLINIC })).await;
    assert_eq!(code, "FORBIDDEN", "a municipality does not withdraw medical sites");
    let (code, _) = app
        .err(Some(&token("SITE", Some(CLINIC))), WITHDRAW, json!({ "code": CLINIC }))
        .await;
    assert_eq!(code, "FORBIDDEN");

    let d = app.ok(&n, WITHDRAW, json!({ "code": CLINIC })).await;
    assert_eq!(
        d["withdrawSite"],
        json!({ "code": CLINIC, "status": "WITHDRAWN", "version": 2 })
    );
    let (code, _) = app.err(Some(&n), WITHDRAW, json!({ "code": CLINIC })).await;
    assert_eq!(code, "CONFLICT");
    let (code, message) = app
        .err(Some(&n), UPDATE, json!({ "code": CLINIC, "input": { "name": "復活" } }))
        .await;
    assert_eq!(code, "CONFLICT", "{message}");
    assert!(message.contains("withdrawn"));

    let h = app
        .ok(
            &n,
            "query($c: SiteCode!) { site(code: $c) { status name history { action actor } } }",
            json!({ "c": CLINIC }),
        )
        .await;
    assert_eq!(h["site"]["status"], "WITHDRAWN");
    assert_eq!(h["site"]["name"], "さくら内科クリニック");
    assert_eq!(
        h["site"]["history"],
        json!([{ "action": "REGISTERED", "actor": "NATIONAL" }, { "action": "WITHDRAWN", "actor": "NATIONAL" }])
    );
    let listed = app
        .ok(
            &n,
            r#"{ sites(filter: { status: WITHDRAWN }) { edges { node { code } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(codes(&listed), vec![CLINIC]);
}
