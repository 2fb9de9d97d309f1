//! Reservation availability through the private API: a site states its status and how to book,
//! a municipality keeps its venues' slots and their status follows from them; who may do which,
//! and nothing is stored on refusal.

use serde_json::{Value, json};
use tests::{REGISTER, TestApp, clinic_input, token, venue_input};

use crate::public::{CHIYODA, SHINJUKU, code, days_from_today};

pub const SET: &str = "mutation($code: SiteCode!, $input: SiteAvailabilityInput!) { setSiteAvailability(code: $code, input: $input) { status symbol label source remaining capacity booking { phone url notes } updatedAt updatedBy } }";
pub const SET_SLOT: &str = "mutation($code: SiteCode!, $input: VenueSlotInput!) { setVenueSlot(code: $code, input: $input) { status symbol label source remaining capacity updatedBy } }";
const REMOVE_SLOT: &str = "mutation($code: SiteCode!, $date: NaiveDate!, $start: String!) { removeVenueSlot(code: $code, date: $date, startTime: $start) { status source remaining capacity } }";
const READ: &str = "query($code: SiteCode!) { site(code: $code) { code availability { status symbol source remaining booking { phone url notes } updatedAt updatedBy } } }";
const SLOTS: &str =
    "query($code: SiteCode!) { venueSlots(code: $code) { date startTime endTime capacity booked remaining } }";

async fn register(app: &TestApp, t: &str, input: Value) -> String {
    app.ok(t, REGISTER, json!({ "input": input })).await["registerSite"]["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

async fn read(app: &TestApp, site: &str) -> Value {
    app.ok(&token("NATIONAL", None), READ, json!({ "code": site })).await["site"]["availability"].clone()
}

fn slot(date: &str, start: &str, end: &str, capacity: i64, booked: i64) -> Value {
    json!({ "date": date, "startTime": start, "endTime": end, "capacity": capacity, "booked": booked })
}

#[tokio::test]
async fn a_site_states_its_status_and_how_to_book() {
    let app = TestApp::spawn().await;
    let clinic = code("131202001");
    register(
        &app,
        &token("NATIONAL", None),
        clinic_input(&clinic, CHIYODA, "さくら内科クリニック"),
    )
    .await;
    assert_eq!(read(&app, &clinic).await, Value::Null, "no availability until stated");
    let me = token("SITE", Some(&clinic));

    // The first statement needs a status; refused, it stores nothing.
    let (c, m) = app
        .err(
            Some(&me),
            SET,
            json!({ "code": clinic, "input": { "bookingPhone": "03-1111-2222" } }),
        )
        .await;
    assert_eq!(
        (c.as_str(), m.starts_with("input.status")),
        ("BAD_USER_INPUT", true),
        "{m}"
    );
    assert_eq!(read(&app, &clinic).await, Value::Null);

    let d = app
        .ok(
            &me,
            SET,
            json!({ "code": clinic, "input": { "status": "OPEN", "bookingPhone": "03-1111-2222",
                    "bookingUrl": "https://yoyaku.example.jp/sakura", "bookingNotes": "駐車場あり" } }),
        )
        .await;
    let a = &d["setSiteAvailability"];
    assert_eq!(
        (&a["status"], &a["symbol"], &a["label"], &a["source"]),
        (&json!("OPEN"), &json!("○"), &json!("予約可能"), &json!("MANUAL"))
    );
    assert_eq!(
        a["booking"],
        json!({ "phone": "03-1111-2222", "url": "https://yoyaku.example.jp/sakura", "notes": "駐車場あり" })
    );
    assert_eq!(a["updatedBy"], format!("SITE:{clinic}"));
    assert_eq!(read(&app, &clinic).await["status"], "OPEN");
    let first_update = a["updatedAt"].as_str().expect("time").to_owned();

    // A later statement changes only what it names; null clears a booking field.
    let d = app
        .ok(
            &me,
            SET,
            json!({ "code": clinic, "input": { "status": "FEW", "bookingNotes": null } }),
        )
        .await;
    let a = &d["setSiteAvailability"];
    assert_eq!(
        (&a["status"], &a["symbol"], &a["label"]),
        (&json!("FEW"), &json!("△"), &json!("残りわずか"))
    );
    assert_eq!(
        a["booking"],
        json!({ "phone": "03-1111-2222", "url": "https://yoyaku.example.jp/sakura", "notes": null })
    );
    // Confirming the same status still moves the last-updated time (news to the public).
    let again = app
        .ok(&me, SET, json!({ "code": clinic, "input": { "status": "FEW" } }))
        .await;
    let time = |v: &Value| {
        v.as_str()
            .expect("time")
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("RFC 3339")
    };
    assert!(time(&again["setSiteAvailability"]["updatedAt"]) > time(&json!(first_update)));
    for (status, symbol, label) in [("FULL", "×", "予約不可"), ("NO_BOOKING_NEEDED", "◎", "予約不要")] {
        let d = app
            .ok(&me, SET, json!({ "code": clinic, "input": { "status": status } }))
            .await;
        assert_eq!(
            (&d["setSiteAvailability"]["symbol"], &d["setSiteAvailability"]["label"]),
            (&json!(symbol), &json!(label))
        );
    }

    // Bad booking details are refused naming the field, and change nothing.
    let before = read(&app, &clinic).await;
    for (input, field) in [
        (json!({ "bookingUrl": "javascript:alert(1)" }), "input.bookingUrl"),
        (json!({ "bookingPhone": "12-34" }), "input.bookingPhone"),
        (json!({ "bookingNotes": "x".repeat(501) }), "input.bookingNotes"),
    ] {
        let (c, m) = app.err(Some(&me), SET, json!({ "code": clinic, "input": input })).await;
        assert_eq!(c, "BAD_USER_INPUT", "{m}");
        assert!(m.starts_with(field), "{field} not named in {m}");
    }
    let (c, _) = app
        .err(
            Some(&me),
            SET,
            json!({ "code": clinic, "input": { "status": "MAYBE" } }),
        )
        .await;
    assert_eq!(c, "BAD_USER_INPUT");
    assert_eq!(read(&app, &clinic).await, before, "refusals stored nothing");
}

#[tokio::test]
async fn who_may_state_availability_and_keep_slots() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let clinic = code("131202001");
    let other = code("131202002");
    register(&app, &n, clinic_input(&clinic, CHIYODA, "さくら内科クリニック")).await;
    register(&app, &n, clinic_input(&other, CHIYODA, "みどり小児科")).await;
    let venue = register(
        &app,
        &token("MUNICIPALITY", Some(CHIYODA)),
        venue_input(CHIYODA, "千代田区集団接種会場"),
    )
    .await;
    let status = |s: &str| json!({ "status": s });
    let a_slot = slot(&days_from_today(1), "09:00", "12:00", 50, 0);
    let unregistered = code("131202003");

    let cases: Vec<(Option<String>, &str, Value, &str, &str)> = vec![
        // (caller, site, what, expected code or "OK", mutation)
        (Some(token("SITE", Some(&clinic))), &clinic, status("OPEN"), "OK", SET),
        (
            Some(token("SITE", Some(&clinic))),
            &other,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (
            Some(token("MUNICIPALITY", Some(CHIYODA))),
            &clinic,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (
            Some(token("MUNICIPALITY", Some(CHIYODA))),
            &venue,
            status("OPEN"),
            "OK",
            SET,
        ),
        (
            Some(token("MUNICIPALITY", Some(SHINJUKU))),
            &venue,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (
            Some(token("PREFECTURE", Some("13"))),
            &clinic,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (
            Some(token("WHOLESALER", Some("suzuken"))),
            &clinic,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (
            Some(token("MEDICAL_ASSOCIATION", Some(CHIYODA))),
            &clinic,
            status("OPEN"),
            "FORBIDDEN",
            SET,
        ),
        (Some(n.clone()), &other, status("FULL"), "OK", SET),
        (None, &clinic, status("OPEN"), "UNAUTHENTICATED", SET),
        (Some(n.clone()), &unregistered, status("OPEN"), "NOT_FOUND", SET),
        (
            Some(token("MUNICIPALITY", Some(CHIYODA))),
            &venue,
            a_slot.clone(),
            "OK",
            SET_SLOT,
        ),
        (
            Some(token("SITE", Some(&venue))),
            &venue,
            a_slot.clone(),
            "FORBIDDEN",
            SET_SLOT,
        ),
        (
            Some(token("MUNICIPALITY", Some(SHINJUKU))),
            &venue,
            a_slot.clone(),
            "FORBIDDEN",
            SET_SLOT,
        ),
        (
            Some(token("MUNICIPALITY", Some(CHIYODA))),
            &clinic,
            a_slot.clone(),
            "FORBIDDEN",
            SET_SLOT,
        ),
        (Some(n.clone()), &clinic, a_slot.clone(), "BAD_USER_INPUT", SET_SLOT),
        (None, &venue, a_slot.clone(), "UNAUTHENTICATED", SET_SLOT),
    ];
    for (caller, site, input, want, mutation) in cases {
        let vars = json!({ "code": site, "input": input });
        if want == "OK" {
            app.ok(caller.as_deref().expect("a caller"), mutation, vars).await;
        } else {
            let (got, message) = app.err(caller.as_deref(), mutation, vars).await;
            assert_eq!(got, want, "{caller:?} on {site}: {message}");
        }
    }
    assert_eq!(read(&app, &clinic).await["status"], "OPEN");
    assert_eq!(read(&app, &other).await["status"], "FULL");

    // A withdrawn site is gone from the public and cannot state anything.
    app.ok(
        &n,
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { status } }",
        json!({ "c": other }),
    )
    .await;
    let (c, m) = app
        .err(Some(&n), SET, json!({ "code": other, "input": status("OPEN") }))
        .await;
    assert_eq!(c, "CONFLICT", "{m}");
    assert_eq!(read(&app, &other).await["status"], "FULL", "unchanged by the refusal");
}

#[tokio::test]
async fn a_venue_status_follows_its_slots() {
    let app = TestApp::spawn().await;
    let m = token("MUNICIPALITY", Some(CHIYODA));
    let venue = register(&app, &m, venue_input(CHIYODA, "千代田区集団接種会場")).await;
    let (d1, d2) = (days_from_today(1), days_from_today(2));
    let set = |input: Value| json!({ "code": venue, "input": input });

    // Booking details first, while its status is still stated by hand.
    app.ok(
        &m,
        SET,
        set(json!({ "status": "FULL", "bookingUrl": "https://city.example.jp/yoyaku" })),
    )
    .await;

    let steps: &[(Value, &str, i64, i64)] = &[
        // slot, status, remaining, capacity after it
        (slot(&d1, "09:00", "12:00", 100, 40), "OPEN", 60, 100),
        // 15 of 100 left: at most 20% → few.
        (slot(&d1, "09:00", "12:00", 100, 85), "FEW", 15, 100),
        // Another day adds capacity: 115 of 200 left.
        (slot(&d2, "13:00", "16:00", 100, 0), "OPEN", 115, 200),
        (slot(&d2, "13:00", "16:00", 100, 95), "FEW", 20, 200),
        (slot(&d1, "09:00", "12:00", 100, 100), "FEW", 5, 200),
        (slot(&d2, "13:00", "16:00", 100, 100), "FULL", 0, 200),
        // An empty slot two days ago does not count.
        (slot(&days_from_today(-2), "09:00", "12:00", 100, 0), "FULL", 0, 200),
    ];
    for (s, status, remaining, capacity) in steps {
        let d = app.ok(&m, SET_SLOT, set(s.clone())).await;
        let a = &d["setVenueSlot"];
        assert_eq!(
            (&a["status"], &a["source"], &a["remaining"], &a["capacity"]),
            (&json!(status), &json!("SLOTS"), &json!(remaining), &json!(capacity)),
            "after {s}"
        );
    }
    let a = read(&app, &venue).await;
    assert_eq!(a["symbol"], "×");
    assert_eq!(
        a["booking"]["url"], "https://city.example.jp/yoyaku",
        "slots keep the booking details"
    );
    assert_eq!(a["updatedBy"], format!("MUNICIPALITY:{CHIYODA}"));

    // The derived status cannot be typed over; booking details still can be changed.
    let (c, msg) = app.err(Some(&m), SET, set(json!({ "status": "OPEN" }))).await;
    assert_eq!(c, "BAD_USER_INPUT");
    assert!(msg.contains("slots"), "{msg}");
    let d = app.ok(&m, SET, set(json!({ "bookingPhone": "03-5555-0000" }))).await;
    assert_eq!(d["setSiteAvailability"]["source"], "SLOTS");
    assert_eq!(d["setSiteAvailability"]["status"], "FULL");

    // Bad slots name the field and store nothing.
    for (s, field) in [
        (slot(&d1, "12:00", "09:00", 10, 0), "input.endTime"),
        (slot(&d1, "9:00", "12:00", 10, 0), "input.startTime"),
        (slot(&d1, "09:00", "12:00", 0, 0), "input.capacity"),
        (slot(&d1, "09:00", "12:00", 10, 11), "input.booked"),
        (slot(&days_from_today(400), "09:00", "12:00", 10, 0), "input.date"),
    ] {
        let (c, msg) = app.err(Some(&m), SET_SLOT, set(s)).await;
        assert_eq!(c, "BAD_USER_INPUT", "{msg}");
        assert!(msg.starts_with(field), "{field} not named in {msg}");
    }
    let listed = app.ok(&m, SLOTS, json!({ "code": venue })).await;
    assert_eq!(
        listed["venueSlots"],
        json!([
            { "date": days_from_today(-2), "startTime": "09:00", "endTime": "12:00", "capacity": 100, "booked": 0, "remaining": 100 },
            { "date": d1, "startTime": "09:00", "endTime": "12:00", "capacity": 100, "booked": 100, "remaining": 0 },
            { "date": d2, "startTime": "13:00", "endTime": "16:00", "capacity": 100, "booked": 100, "remaining": 0 },
        ])
    );

    // Removing slots derives again; with none left the status is the municipality's to state.
    let rm = |date: &str, start: &str| json!({ "code": venue, "date": date, "start": start });
    let d = app.ok(&m, REMOVE_SLOT, rm(&d2, "13:00")).await;
    assert_eq!(d["removeVenueSlot"]["capacity"], 100);
    let (c, _) = app.err(Some(&m), REMOVE_SLOT, rm(&d2, "13:00")).await;
    assert_eq!(c, "NOT_FOUND");
    app.ok(&m, REMOVE_SLOT, rm(&d1, "09:00")).await;
    let d = app.ok(&m, REMOVE_SLOT, rm(&days_from_today(-2), "09:00")).await;
    assert_eq!(
        d["removeVenueSlot"],
        json!({ "status": "FULL", "source": "MANUAL", "remaining": null, "capacity": null })
    );
    let d = app.ok(&m, SET, set(json!({ "status": "NO_BOOKING_NEEDED" }))).await;
    assert_eq!(d["setSiteAvailability"]["symbol"], "◎");
}

#[tokio::test]
async fn a_list_of_sites_reads_their_availability() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let codes: Vec<String> = (1..=4).map(|i| code(&format!("13120200{i}"))).collect();
    for (i, c) in codes.iter().enumerate() {
        register(&app, &n, clinic_input(c, CHIYODA, &format!("クリニック{i}"))).await;
    }
    for (c, s) in codes.iter().zip(["OPEN", "FEW", "FULL"]) {
        app.ok(
            &token("SITE", Some(c)),
            SET,
            json!({ "code": c, "input": { "status": s } }),
        )
        .await;
    }
    let d = app
        .ok(
            &token("MUNICIPALITY", Some(CHIYODA)),
            "{ sites(first: 10) { edges { node { code availability { symbol } } } } }",
            json!({}),
        )
        .await;
    let got: Vec<(String, Value)> = d["sites"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["code"].as_str().expect("code").to_owned(),
                e["node"]["availability"]["symbol"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, Value)> = codes
        .iter()
        .cloned()
        .zip([json!("○"), json!("△"), json!("×"), Value::Null])
        .collect();
    assert_eq!(got, want);
}
