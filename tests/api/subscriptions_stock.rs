//! `stockChanged` over graphql-transport-ws: what each subscriber sees, who may subscribe, a slow
//! subscriber, and sockets that close.

use serde_json::{Value, json};
use tests::{TestApp, WsClient, token};

use crate::stock::{CHIYODA, SAPPORO, SHINJUKU, Sites, administer_doc, day, receive, seed, transfer_doc, use_input};

pub const SUBSCRIBE: &str = "subscription($site: SiteCode, $m: MunicipalityCode, $p: PrefectureCode, $product: ProductCode) { stockChanged(site: $site, municipality: $m, prefecture: $p, product: $product) { entryId site municipality prefecture product lot kind quantity onHand } }";
pub const SUBSCRIPTIONS: &str = "vsys_event_subscriptions{topic=\"stock\"}";

/// (site, kind, quantity, onHand) of an event.
fn brief(data: &Value) -> (String, String, i64, u64) {
    let c = &data["stockChanged"];
    (
        c["site"].as_str().expect("site").to_owned(),
        c["kind"].as_str().expect("kind").to_owned(),
        c["quantity"].as_i64().expect("quantity"),
        c["onHand"].as_u64().expect("onHand"),
    )
}

fn ev(site: &str, kind: &str, quantity: i64, on_hand: u64) -> (String, String, i64, u64) {
    (site.to_owned(), kind.to_owned(), quantity, on_hand)
}

#[tokio::test]
async fn subscribers_see_committed_changes_of_their_area_only() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 10).await;

    let mut chiyoda = app.ws(&token("MUNICIPALITY", Some(CHIYODA))).await;
    let c = chiyoda.subscribe(SUBSCRIBE, json!({})).await;
    let mut satellite = app.ws(&Sites::token(&s.sat)).await;
    let sat = satellite.subscribe(SUBSCRIBE, json!({ "site": s.sat })).await;
    let mut sapporo = app.ws(&token("MUNICIPALITY", Some(SAPPORO))).await;
    let far = sapporo.subscribe(SUBSCRIBE, json!({})).await;
    let mut tokyo = app.ws(&token("PREFECTURE", Some("13"))).await;
    let spikevax_only = tokyo.subscribe(SUBSCRIBE, json!({ "product": "spikevax" })).await;
    let whole = tokyo.subscribe(SUBSCRIBE, json!({ "p": "13" })).await;
    let mut nation = app.ws(&token("NATIONAL", None)).await;
    let n = nation.subscribe(SUBSCRIBE, json!({ "m": SHINJUKU })).await;
    app.wait_for_metric(SUBSCRIPTIONS, 6.0).await;

    let t = Sites::token(&s.base);
    app.ok(
        &t,
        &transfer_doc(),
        json!({ "input": { "from": s.base, "to": s.sat, "product": "comirnaty", "lot": "FF3620", "quantity": 2 } }),
    )
    .await;
    // Refused: nothing may be announced for it.
    app.err(Some(&t), &administer_doc(), use_input(&s.base, "FF3620", 9))
        .await;
    app.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 1)).await;
    receive(&app, &s.far, "FF7777", &day(30), 3).await;
    receive(&app, &s.other, "FF8888", &day(30), 4).await;

    let expected_chiyoda = [
        ev(&s.base, "TRANSFERRED_OUT", -2, 8),
        ev(&s.sat, "TRANSFERRED_IN", 2, 2),
        ev(&s.base, "ADMINISTERED", -1, 7),
    ];
    for want in &expected_chiyoda {
        assert_eq!(&brief(&chiyoda.next_data(&c).await), want);
    }
    let first = tokyo.next_data(&whole).await;
    assert_eq!(first["stockChanged"]["municipality"], CHIYODA);
    assert_eq!(first["stockChanged"]["prefecture"], "13");
    for want in &expected_chiyoda[1..] {
        assert_eq!(&brief(&tokyo.next_data(&whole).await), want);
    }
    assert_eq!(brief(&tokyo.next_data(&whole).await), ev(&s.other, "RECEIVED", 4, 4));
    assert_eq!(
        brief(&satellite.next_data(&sat).await),
        ev(&s.sat, "TRANSFERRED_IN", 2, 2)
    );
    // Each of these saw nothing before its own area's change.
    assert_eq!(brief(&sapporo.next_data(&far).await), ev(&s.far, "RECEIVED", 3, 3));
    assert_eq!(brief(&nation.next_data(&n).await), ev(&s.other, "RECEIVED", 4, 4));

    // The product filter: the first spikevax change is the first thing that subscriber sees.
    let mut spike = use_input(&s.base, "3002183", 5);
    spike["input"]["product"] = json!("spikevax");
    spike["input"]["expiryDate"] = json!(day(30));
    app.ok(&t, &crate::stock::receive_doc(), spike).await;
    let got = tokyo.next_data(&spikevax_only).await;
    assert_eq!(
        (
            got["stockChanged"]["product"].as_str(),
            got["stockChanged"]["lot"].as_str()
        ),
        (Some("spikevax"), Some("3002183"))
    );
}

/// The code of the error a refused subscription ends with: a protocol `error` (the document
/// did not validate) or a `next` carrying the resolver's error followed by `complete`.
async fn refused(client: &mut WsClient, vars: Value) -> String {
    let id = client.subscribe(SUBSCRIBE, vars.clone()).await;
    let m = client.next_for(&id).await;
    let error = match m["type"].as_str() {
        Some("error") => m["payload"][0].clone(),
        Some("next") => {
            assert_eq!(m["payload"]["data"], Value::Null, "{vars}: {m}");
            let end = client.next_for(&id).await;
            assert_eq!(
                end["type"], "complete",
                "{vars}: the refused subscription must end: {end}"
            );
            m["payload"]["errors"][0].clone()
        }
        _ => panic!("{vars}: {m}"),
    };
    error["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{m}"))
        .to_owned()
}

#[tokio::test]
async fn subscriptions_are_authorized_like_queries() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    for (who, vars, want) in [
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            json!({ "site": s.far }),
            "FORBIDDEN",
        ),
        (
            token("MUNICIPALITY", Some(CHIYODA)),
            json!({ "m": SHINJUKU }),
            "FORBIDDEN",
        ),
        (token("MUNICIPALITY", Some(CHIYODA)), json!({ "p": "13" }), "FORBIDDEN"),
        (token("PREFECTURE", Some("01")), json!({ "p": "13" }), "FORBIDDEN"),
        (token("PREFECTURE", Some("13")), json!({}), "OK"),
        (Sites::token(&s.sat), json!({ "site": s.base }), "FORBIDDEN"),
        (Sites::token(&s.sat), json!({ "m": CHIYODA }), "FORBIDDEN"),
        (token("WHOLESALER", Some("suzuken")), json!({}), "FORBIDDEN"),
        (token("FEDERATION", Some("13")), json!({ "p": "13" }), "FORBIDDEN"),
        (
            token("NATIONAL", None),
            json!({ "site": crate::stock::code("131202009") }),
            "NOT_FOUND",
        ),
        (
            token("NATIONAL", None),
            json!({ "site": s.base, "m": CHIYODA }),
            "BAD_USER_INPUT",
        ),
        (token("NATIONAL", None), json!({ "m": "12345" }), "BAD_USER_INPUT"),
    ] {
        let mut client = app.ws(&who).await;
        if want == "OK" {
            let id = client.subscribe(SUBSCRIBE, vars).await;
            app.wait_for_metric(SUBSCRIPTIONS, 1.0).await;
            client.complete(&id).await;
            app.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
        } else {
            assert_eq!(refused(&mut client, vars.clone()).await, want, "{vars}");
        }
        client.close().await;
    }
    // Without a token the connection is accepted (the public site needs it) but stock is not.
    let mut anonymous = WsClient::connect(app.addr, None).await.expect("ack");
    assert_eq!(refused(&mut anonymous, json!({})).await, "UNAUTHENTICATED");
    // A bad token is refused at connection_init, before any subscription.
    let forged = tests::token("NATIONAL", None).replace('.', ".x");
    let err = WsClient::connect(app.addr, Some(&forged)).await.err().expect("refused");
    let close: Value = serde_json::from_str(&err).expect("a close frame");
    assert_eq!(close["type"], "close", "{err}");
    assert!(
        close["reason"].as_str().is_some_and(|r| r.contains("invalid token")),
        "{err}"
    );
    app.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
}

#[tokio::test]
async fn a_slow_subscriber_is_told_it_fell_behind_and_holds_nobody_up() {
    const WRITES: u64 = 400;
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), WRITES).await;
    // A big selection (each event ~45 KB) and a tiny receive buffer: this client backs up after
    // a few dozen events once it stops reading.
    let fields: String = (0..1000).map(|i| format!(" a{i}: recordedAt")).collect();
    let heavy = format!("subscription($site: SiteCode) {{ stockChanged(site: $site) {{ onHand{fields} }} }}");
    let mut slow = WsClient::connect_with(app.addr, Some(&Sites::token(&s.base)), Some(4096))
        .await
        .expect("ack");
    let slow_id = slow.subscribe(&heavy, json!({ "site": s.base })).await;
    let mut fast = app.ws(&token("MUNICIPALITY", Some(CHIYODA))).await;
    let fast_id = fast.subscribe(SUBSCRIBE, json!({ "site": s.base })).await;
    app.wait_for_metric(SUBSCRIPTIONS, 2.0).await;

    // With PostgreSQL and Redis the writes go through a second instance, so the events reach
    // these subscribers through the Redis relay: the slow one must not hold that up either
    // (an interrupted link would show up as `missed` notices at the fast subscriber).
    let redis = std::env::var("TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    let second = if redis && app.db.is_postgres() {
        Some(TestApp::spawn_on_shared(&app).await)
    } else {
        None
    };
    let writes_to = second.as_ref().unwrap_or(&app);
    let t = Sites::token(&s.base);
    let writer = {
        let (client, url, base) = (writes_to.client.clone(), writes_to.url("/graphql"), s.base.clone());
        tokio::spawn(async move {
            for _ in 0..WRITES {
                let body = json!({ "query": administer_doc(), "variables": use_input(&base, "FF3620", 1) });
                let v: Value = client
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                assert!(v.get("errors").is_none(), "{v}");
            }
        })
    };
    // The fast subscriber sees every change, in order, while the slow one reads nothing.
    for expected in (0..WRITES).rev() {
        let got = fast.next_data(&fast_id).await;
        assert_eq!(got["stockChanged"]["onHand"], expected);
    }
    writer
        .await
        .expect("every write went through while a subscriber was stuck");

    // Now the slow subscriber reads: it is told it missed changes, and goes on to the last one.
    let mut seen = 0;
    let mut missed = 0;
    loop {
        let m = slow.next_for(&slow_id).await;
        assert_eq!(m["type"], "next", "{m}");
        if let Some(errors) = m["payload"].get("errors") {
            assert_eq!(errors[0]["extensions"]["code"], "CONFLICT", "{m}");
            assert!(
                errors[0]["message"].as_str().is_some_and(|s| s.contains("refetch")),
                "{m}"
            );
            missed += errors[0]["extensions"]["missed"].as_u64().expect("missed count");
            continue;
        }
        seen += 1;
        if m["payload"]["data"]["stockChanged"]["onHand"] == 0 {
            break;
        }
    }
    assert!(missed > 0, "the slow subscriber was not told it fell behind");
    assert_eq!(
        seen + missed,
        WRITES,
        "seen or reported missed, nothing vanished silently"
    );
}

#[tokio::test]
async fn closing_sockets_frees_everything_they_held() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let m = app.metrics().await;
    assert_eq!(tests::metric_value(&m, "vsys_websocket_connections"), Some(0.0), "{m}");
    assert_eq!(tests::metric_value(&m, "vsys_event_channels"), Some(0.0));

    let mut clients = Vec::new();
    for i in 0..20 {
        let mut c = app.ws(&token("NATIONAL", None)).await;
        let site = if i % 2 == 0 { &s.base } else { &s.far };
        c.subscribe(SUBSCRIBE, json!({ "site": site })).await;
        c.subscribe(SUBSCRIBE, json!({})).await;
        clients.push(c);
    }
    app.wait_for_metric(SUBSCRIPTIONS, 40.0).await;
    app.wait_for_metric("vsys_websocket_connections", 20.0).await;
    app.wait_for_metric("vsys_event_channels", 3.0).await;
    // One subscription ended by the client, the connection kept.
    clients[0].complete("1").await;
    app.wait_for_metric(SUBSCRIPTIONS, 39.0).await;
    for (i, c) in clients.into_iter().enumerate() {
        if i % 2 == 0 { c.close().await } else { c.abandon() }
    }
    app.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
    app.wait_for_metric("vsys_websocket_connections", 0.0).await;
    app.wait_for_metric("vsys_event_channels", 0.0).await;
}

#[tokio::test]
async fn the_server_pings_listeners_and_drops_silent_peers() {
    let ping = std::time::Duration::from_millis(100);
    let app = TestApp::spawn_with_ping(ping).await;
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 5).await;
    // A only listens (reading, so its WebSocket library answers the server's pings); B stops
    // reading altogether, as a client whose network vanished.
    let mut a = app.ws(&token("MUNICIPALITY", Some(CHIYODA))).await;
    let a_id = a.subscribe(SUBSCRIBE, json!({})).await;
    let mut b = app.ws(&token("NATIONAL", None)).await;
    b.subscribe(SUBSCRIBE, json!({})).await;
    app.wait_for_metric(SUBSCRIPTIONS, 2.0).await;
    let listening_since = std::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(m) = a.recv().await {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    app.wait_for_metric("vsys_websocket_connections", 1.0).await;
    app.wait_for_metric(SUBSCRIPTIONS, 1.0).await;
    assert!(
        listening_since.elapsed() >= ping * api::ws::SILENT_PINGS,
        "B was dropped for its silence"
    );
    app.ok(
        &Sites::token(&s.base),
        &administer_doc(),
        use_input(&s.base, "FF3620", 1),
    )
    .await;
    let m = tokio::time::timeout(tests::DEADLINE, rx.recv())
        .await
        .expect("an event within the deadline")
        .expect("A is still connected");
    assert_eq!((&m["id"], &m["type"]), (&json!(a_id), &json!("next")), "{m}");
    assert_eq!(m["payload"]["data"]["stockChanged"]["onHand"], 4);
    drop(b);
    reader.abort();
}

#[tokio::test]
async fn signed_in_subscribers_share_an_address_unthrottled_while_anonymous_ones_are_limited() {
    // The token arrives after the upgrade, so upgrades are free; anonymous or failed
    // connection_inits spend the address's anonymous budget (here 2, refilling once a minute).
    let app = TestApp::spawn_with(tests::TestDb::new().await, |c| {
        c.public.rate_per_second = 1.0 / 60.0;
        c.public.rate_burst = 2;
    })
    .await;
    let s = seed(&app).await;
    let mut signed_in = Vec::new();
    for _ in 0..12 {
        let c = WsClient::connect(app.addr, Some(&Sites::token(&s.base))).await;
        signed_in.push(c.expect("a signed-in subscriber is never throttled"));
    }
    WsClient::connect(app.addr, None)
        .await
        .expect("first anonymous within the burst");
    let forged = tests::token("NATIONAL", None).replace('.', ".x");
    let err = WsClient::connect(app.addr, Some(&forged)).await.err().expect("refused");
    assert!(
        err.contains("invalid token"),
        "a failed init within the budget says why: {err}"
    );
    let err = WsClient::connect(app.addr, None).await.err().expect("over the budget");
    let close: Value = serde_json::from_str(&err).expect("a close frame");
    assert!(
        close["reason"].as_str().is_some_and(|r| r.contains("too many")),
        "{err}"
    );
    // Signed-in callers on the same address still get in, and their subscriptions work.
    let mut late = WsClient::connect(app.addr, Some(&Sites::token(&s.base)))
        .await
        .expect("ack");
    let id = late.subscribe(SUBSCRIBE, json!({ "site": s.base })).await;
    app.wait_for_metric(SUBSCRIPTIONS, 1.0).await;
    receive(&app, &s.base, "FF3620", &day(30), 5).await;
    assert_eq!(brief(&late.next_data(&id).await), ev(&s.base, "RECEIVED", 5, 5));
    for c in signed_in {
        c.close().await;
    }
}
