//! Persons (VRS) through the real server: the resident-register import with its per-row report
//! and idempotent re-import, refused check digits named per row, My Number only for the
//! person's municipality with a stated purpose (never in errors, never to other roles), audit
//! rows for every read of personal fields (also through lists), moving in (転入) with its
//! audit, coupon batches whose lines parse back, counts for the levels above, and the
//! personal-data key configuration.

use serde_json::{Value, json};
use tests::{TestApp, token};

const CHIYODA: &str = "131016";
const SHINJUKU: &str = "131041";
/// Valid My Numbers (check digit included).
const N1: &str = "123456789018";
const N2: &str = "987654321093";
const N3: &str = "111222333446";

const PERSON_FIELDS: &str = "id municipality couponNumber version hasMyNumber movedOutOn";

fn chiyoda() -> String {
    token("MUNICIPALITY", Some(CHIYODA))
}

fn shinjuku() -> String {
    token("MUNICIPALITY", Some(SHINJUKU))
}

const HEADER: &str = "municipality_code,coupon_number,resident_id,name,name_kana,birth_date,sex,address,my_number";

fn row(coupon: &str, name: &str, address: &str, my_number: &str) -> String {
    format!("{CHIYODA},{coupon},R-{coupon},{name},ﾃｽﾄ ﾀﾛｳ,1980-04-01,M,{address},{my_number}")
}

const IMPORT: &str = "mutation($m: MunicipalityCode!, $csv: String!) { importPersons(municipality: $m, csv: $csv) { inserted updated unchanged rejectedRows rejected { row field code reason } } }";

async fn import(app: &TestApp, tok: &str, municipality: &str, csv: &str) -> Value {
    app.ok(tok, IMPORT, json!({ "m": municipality, "csv": csv })).await["importPersons"].clone()
}

const CREATE: &str = "mutation($m: MunicipalityCode!, $c: CouponNumber!, $input: PersonInput!) { createPerson(municipality: $m, couponNumber: $c, input: $input) { id couponNumber version hasMyNumber } }";

fn person_input(name: &str, my_number: Option<&str>) -> Value {
    let mut v = json!({
        "name": name,
        "nameKana": "ﾃｽﾄ",
        "birthDate": "1990-01-02",
        "sex": "FEMALE",
        "address": "東京都千代田区千代田1-1",
    });
    if let Some(n) = my_number {
        v["myNumber"] = json!(n);
    }
    v
}

async fn create(app: &TestApp, tok: &str, municipality: &str, coupon: &str, name: &str, n: Option<&str>) -> String {
    let d = app
        .ok(
            tok,
            CREATE,
            json!({ "m": municipality, "c": coupon, "input": person_input(name, n) }),
        )
        .await;
    d["createPerson"]["id"].as_str().expect("id").to_owned()
}

const LOG: &str = "query($m: MunicipalityCode!, $p: ID) { personAccessLog(municipality: $m, person: $p, first: 200) { nodes { personId actor role subject fields purpose } } }";

async fn access_log(app: &TestApp, tok: &str, municipality: &str, person: Option<&str>) -> Vec<Value> {
    app.ok(tok, LOG, json!({ "m": municipality, "p": person })).await["personAccessLog"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone()
}

#[tokio::test]
async fn import_reports_refused_fields_per_row_and_reimport_is_idempotent() {
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let csv = [
        HEADER.to_owned(),
        row("0000000001", "山田　太郎", "東京都千代田区千代田1-1", N1),
        row("0000000002", "佐藤　花子", "東京都千代田区丸の内2-2", ""),
        // My Number with a wrong check digit (…017 instead of …018).
        row("0000000003", "鈴木　一郎", "東京都千代田区神田3-3", "123456789017"),
        // 9-digit coupon number.
        row("000000004", "高橋　二郎", "東京都千代田区神田4-4", ""),
        // Municipality code with a wrong check digit.
        row("0000000005", "田中　三郎", "東京都千代田区神田5-5", "").replacen(CHIYODA, "131017", 1),
        // Born in the future.
        row("0000000006", "伊藤　四郎", "東京都千代田区神田6-6", "").replace("1980-04-01", "2999-01-01"),
        row("0000000007", "渡辺　五郎", "東京都千代田区神田7-7", N2),
        // The same coupon number again.
        row("0000000007", "渡辺　六郎", "東京都千代田区神田7-8", ""),
    ]
    .join("\n");
    let r = import(&app, &tok, CHIYODA, &csv).await;
    assert_eq!(
        (r["inserted"].as_u64(), r["updated"].as_u64(), r["unchanged"].as_u64()),
        (Some(3), Some(0), Some(0)),
        "{r}"
    );
    assert_eq!(r["rejectedRows"], 5, "{r}");
    let got: Vec<(u64, String, String)> = r["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|x| {
            (
                x["row"].as_u64().expect("row"),
                x["field"].as_str().expect("field").to_owned(),
                x["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect();
    let want = [
        (4, "my_number", "CHECK_DIGIT"),
        (5, "coupon_number", "LENGTH"),
        (6, "municipality_code", "CHECK_DIGIT"),
        (7, "birth_date", "FUTURE_DATE"),
        (9, "coupon_number", "DUPLICATE_IN_FILE"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(r, f, c)| (*r, (*f).to_owned(), (*c).to_owned()))
            .collect::<Vec<_>>()
    );
    // The report never carries a personal value.
    let text = r.to_string();
    for value in ["123456789017", "鈴木", "高橋", "2999-01-01", "神田"] {
        assert!(!text.contains(value), "the report carries {value}: {text}");
    }

    // The same file again: nothing changes.
    let again = import(&app, &tok, CHIYODA, &csv).await;
    assert_eq!(
        (
            again["inserted"].as_u64(),
            again["updated"].as_u64(),
            again["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(3)),
        "{again}"
    );
    // One row changed (a new address), one row left out: only the changed one moves.
    let changed = [
        HEADER.to_owned(),
        row("0000000001", "山田　太郎", "東京都千代田区永田町9-9", N1),
        row("0000000002", "佐藤　花子", "東京都千代田区丸の内2-2", ""),
    ]
    .join("\n");
    let third = import(&app, &tok, CHIYODA, &changed).await;
    assert_eq!(
        (
            third["inserted"].as_u64(),
            third["updated"].as_u64(),
            third["unchanged"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{third}"
    );
    let list = app
        .ok(
            &tok,
            "query($m: MunicipalityCode!) { persons(municipality: $m) { nodes { couponNumber version address hasMyNumber } hasNextPage } }",
            json!({ "m": CHIYODA }),
        )
        .await;
    let nodes = list["persons"]["nodes"].as_array().expect("nodes");
    let summary: Vec<(&str, i64, &str, bool)> = nodes
        .iter()
        .map(|n| {
            (
                n["couponNumber"].as_str().expect("c"),
                n["version"].as_i64().expect("v"),
                n["address"].as_str().expect("a"),
                n["hasMyNumber"].as_bool().expect("h"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("0000000001", 2, "東京都千代田区永田町9-9", true),
            ("0000000002", 1, "東京都千代田区丸の内2-2", false),
            ("0000000007", 1, "東京都千代田区神田7-7", true),
        ]
    );

    // Only the municipality itself imports its residents.
    for (who, t) in [
        ("other municipality", shinjuku()),
        ("prefecture", token("PREFECTURE", Some("13"))),
        ("national", token("NATIONAL", None)),
    ] {
        let (code, _) = app.err(Some(&t), IMPORT, json!({ "m": CHIYODA, "csv": csv })).await;
        assert_eq!(code, "FORBIDDEN", "{who}");
    }
    // A header without a required column refuses the file.
    let (code, message) = app
        .err(
            Some(&tok),
            IMPORT,
            json!({ "m": CHIYODA, "csv": "coupon_number,name\n0000000009,x" }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("lacks the column(s)"), "{message}");
}

#[tokio::test]
async fn my_number_is_read_only_by_its_municipality_with_a_purpose_and_never_leaks() {
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let id = create(&app, &tok, CHIYODA, "0000000101", "山田　花子", Some(N1)).await;
    let read = "query($p: String!) { person(municipality: \"131016\", couponNumber: \"0000000101\") { id myNumber(purpose: $p) } }";

    // With a purpose: the number, and an audit row with that purpose.
    let d = app.ok(&tok, read, json!({ "p": "接種記録の照会" })).await;
    assert_eq!(d["person"]["myNumber"], N1);
    let log = access_log(&app, &tok, CHIYODA, Some(&id)).await;
    assert!(
        log.iter().any(|e| e["fields"] == json!(["myNumber"])
            && e["purpose"] == "接種記録の照会"
            && e["actor"] == "MUNICIPALITY:131016"
            && e["subject"] == "tester"),
        "{log:?}"
    );

    // An empty purpose: the field guard refuses it (FORBIDDEN), without the number.
    let (status, body) = app.post(Some(&tok), read, json!({ "p": "" })).await;
    assert_eq!(status, 200);
    let err = &body["errors"][0];
    assert_eq!(err["extensions"]["code"], "FORBIDDEN", "{body}");
    assert!(
        err["message"].as_str().unwrap_or_default().contains("purpose"),
        "{body}"
    );
    assert!(body["data"]["person"]["myNumber"].is_null(), "{body}");
    assert!(!body.to_string().contains(N1), "{body}");
    // No purpose at all is not a valid query.
    let (code, _) = app
        .err(
            Some(&tok),
            "{ person(municipality: \"131016\", couponNumber: \"0000000101\") { myNumber } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");

    // Other roles never get the person at all: FORBIDDEN, with no personal data in the answer.
    for (who, t) in [
        ("other municipality", shinjuku()),
        ("prefecture", token("PREFECTURE", Some("13"))),
        ("national", token("NATIONAL", None)),
        ("site", token("SITE", Some("1311234569"))),
        ("wholesaler", token("WHOLESALER", Some("suzuken"))),
        ("medical association", token("MEDICAL_ASSOCIATION", Some(CHIYODA))),
        ("federation", token("FEDERATION", Some("13"))),
    ] {
        let (_, body) = app.post(Some(&t), read, json!({ "p": "見たい" })).await;
        let (code, message) = tests::error_of(&body);
        assert_eq!(code, "FORBIDDEN", "{who}: {body}");
        for value in [N1, "山田", "千代田1-1", "1990-01-02"] {
            assert!(
                !message.contains(value) && !body.to_string().contains(value),
                "{who}: {body}"
            );
        }
        // Nor by id (another municipality's person is not revealed to exist).
        let (code, _) = app
            .err(
                Some(&t),
                "query($id: ID!) { personById(id: $id) { name } }",
                json!({ "id": id }),
            )
            .await;
        assert!(code == "FORBIDDEN" || code == "NOT_FOUND", "{who}: {code}");
    }

    // A bad My Number is refused naming the field, never echoing the digits.
    let (code, message) = app
        .err(
            Some(&tok),
            CREATE,
            json!({ "m": CHIYODA, "c": "0000000102", "input": person_input("x", Some("123456789017")) }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        message.contains("input.myNumber") && message.contains("check digit"),
        "{message}"
    );
    assert!(!message.contains("12345678901"), "{message}");
    // …and nothing was stored.
    let (code, _) = app
        .err(
            Some(&tok),
            "{ person(municipality: \"131016\", couponNumber: \"0000000102\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");

    // The stored form is sealed: neither the digits nor the name's My Number appear in the row.
    use sea_orm::{ConnectionTrait, Statement};
    let store = &app.running.as_ref().expect("running").store;
    let row = store
        .db()
        .query_one_raw(Statement::from_string(
            store.backend(),
            format!("SELECT my_number_sealed, my_number_hash, my_number_key_id FROM persons WHERE id = {id}"),
        ))
        .await
        .expect("query")
        .expect("row");
    let sealed: String = row.try_get("", "my_number_sealed").expect("sealed");
    let hash: String = row.try_get("", "my_number_hash").expect("hash");
    let key: String = row.try_get("", "my_number_key_id").expect("key");
    assert!(!sealed.contains(N1) && !hash.contains(N1), "stored in clear");
    assert_eq!(key, "t1");

    // Clearing and setting through updatePerson.
    let update =
        "mutation($id: ID!, $input: PersonInput!) { updatePerson(id: $id, input: $input) { version hasMyNumber } }";
    let mut input = person_input("山田　花子", None);
    input["myNumber"] = Value::Null;
    let d = app.ok(&tok, update, json!({ "id": id, "input": input })).await;
    assert_eq!(d["updatePerson"], json!({ "version": 2, "hasMyNumber": false }));
    let d = app
        .ok(
            &tok,
            update,
            json!({ "id": id, "input": person_input("山田　花子", Some(N2)) }),
        )
        .await;
    assert_eq!(d["updatePerson"], json!({ "version": 3, "hasMyNumber": true }));
    // Sending the same again changes nothing.
    let d = app
        .ok(
            &tok,
            update,
            json!({ "id": id, "input": person_input("山田　花子", Some(N2)) }),
        )
        .await;
    assert_eq!(d["updatePerson"]["version"], 3);
    let d = app.ok(&tok, read, json!({ "p": "確認" })).await;
    assert_eq!(d["person"]["myNumber"], N2);
}

#[tokio::test]
async fn every_read_of_personal_fields_is_audited_also_through_lists() {
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let a = create(&app, &tok, CHIYODA, "0000000201", "一", None).await;
    let b = create(&app, &tok, CHIYODA, "0000000202", "二", None).await;
    let c = create(&app, &tok, CHIYODA, "0000000203", "三", None).await;
    // Creating returned no personal field: nothing audited yet.
    assert!(access_log(&app, &tok, CHIYODA, None).await.is_empty());

    // A list without personal fields writes nothing.
    let q = format!("query {{ persons(municipality: \"{CHIYODA}\") {{ nodes {{ {PERSON_FIELDS} }} }} }}");
    app.ok(&tok, &q, json!({})).await;
    assert!(access_log(&app, &tok, CHIYODA, None).await.is_empty());

    // A page of two with names and addresses (through a fragment): one row per person.
    let d = app
        .ok(
            &tok,
            "query { persons(municipality: \"131016\", first: 2) { nodes { ...P } endCursor hasNextPage } } fragment P on Person { id name address }",
            json!({}),
        )
        .await;
    assert_eq!(d["persons"]["hasNextPage"], true);
    let log = access_log(&app, &tok, CHIYODA, None).await;
    let mut audited: Vec<(String, Value)> = log
        .iter()
        .map(|e| (e["personId"].as_str().expect("id").to_owned(), e["fields"].clone()))
        .collect();
    audited.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        audited,
        vec![
            (a.clone(), json!(["name", "address"])),
            (b.clone(), json!(["name", "address"]))
        ]
    );
    // The next page audits the third person only.
    let cursor = d["persons"]["endCursor"].as_str().expect("cursor").to_owned();
    app.ok(
        &tok,
        "query($after: CouponNumber) { persons(municipality: \"131016\", after: $after) { nodes { birthDate nameKana } } }",
        json!({ "after": cursor }),
    )
    .await;
    let log = access_log(&app, &tok, CHIYODA, Some(&c)).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["fields"], json!(["nameKana", "birthDate"]));
    assert_eq!(log[0]["role"], "MUNICIPALITY");
    assert!(log[0]["purpose"].is_null());
    // A look-up by coupon number, with an alias, is audited too.
    app.ok(
        &tok,
        "{ p: person(municipality: \"131016\", couponNumber: \"0000000201\") { n: name sex residentId } }",
        json!({}),
    )
    .await;
    let log = access_log(&app, &tok, CHIYODA, Some(&a)).await;
    assert_eq!(log[0]["fields"], json!(["name", "sex", "residentId"]), "{log:?}");

    // The log is the municipality's own: others are refused.
    for t in [shinjuku(), token("PREFECTURE", Some("13")), token("NATIONAL", None)] {
        let (code, _) = app.err(Some(&t), LOG, json!({ "m": CHIYODA, "p": null })).await;
        assert_eq!(code, "FORBIDDEN");
    }
}

/// Reads that arrive together (on PostgreSQL their audit rows share one INSERT and one commit)
/// each get their own row, committed before their answer: right after its answer every reader
/// (its own token subject) finds its row, with its fields and purpose, and in the end the log
/// holds exactly one row per read, also when look-ups and purpose-bearing My Number reads mix.
#[tokio::test]
async fn concurrent_reads_each_get_their_own_audit_row_before_their_answer() {
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let coupons = ["0000000301", "0000000302", "0000000303"];
    let mut ids = Vec::new();
    for (i, c) in coupons.iter().enumerate() {
        ids.push(create(&app, &tok, CHIYODA, c, &format!("並行{i}"), (i == 0).then_some(N1)).await);
    }
    const READERS: usize = 24;
    let mut tasks = Vec::new();
    for k in 0..READERS {
        let (app, ids, tok) = (&app, &ids, &tok);
        tasks.push(async move {
            let subject = format!("reader-{k}");
            let t = api::auth::issue_hs256(
                tests::TEST_SECRET,
                "vsys",
                "vsys",
                &subject,
                "MUNICIPALITY",
                Some(CHIYODA),
                chrono::Duration::hours(1),
            )
            .expect("token");
            let person = k % coupons.len();
            let (query, fields, purpose) = if k % 4 == 3 {
                (
                    format!("{{ person(municipality: \"{CHIYODA}\", couponNumber: \"{}\") {{ id myNumber(purpose: \"照会{k}\") }} }}", coupons[0]),
                    json!(["myNumber"]),
                    json!(format!("照会{k}")),
                )
            } else {
                (
                    format!("{{ person(municipality: \"{CHIYODA}\", couponNumber: \"{}\") {{ id name birthDate }} }}", coupons[person]),
                    json!(["name", "birthDate"]),
                    Value::Null,
                )
            };
            let person = if k % 4 == 3 { 0 } else { person };
            let d = app.ok(&t, &query, json!({})).await;
            assert_eq!(d["person"]["id"].as_str(), Some(ids[person].as_str()));
            // Answered, so its row is committed: the reader's own row is in the log now.
            let log = access_log(app, tok, CHIYODA, Some(&ids[person])).await;
            let mine: Vec<&Value> = log.iter().filter(|e| e["subject"] == subject.as_str()).collect();
            assert_eq!(mine.len(), 1, "reader {k}: {log:?}");
            assert_eq!((&mine[0]["fields"], &mine[0]["purpose"]), (&fields, &purpose), "reader {k}");
            (subject, ids[person].clone())
        });
    }
    let mut expected: Vec<(String, String)> = futures_util::future::join_all(tasks).await;
    expected.sort();
    let mut logged: Vec<(String, String)> = access_log(&app, &tok, CHIYODA, None)
        .await
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().expect("subject").to_owned(),
                e["personId"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    logged.sort();
    assert_eq!(logged, expected);
}

#[tokio::test]
async fn moving_in_links_earlier_records_with_an_audited_purpose() {
    let app = TestApp::spawn().await;
    let (chi, shin) = (chiyoda(), shinjuku());
    let old = create(&app, &chi, CHIYODA, "0000000301", "転出　太郎", Some(N3)).await;
    let unrelated = create(&app, &chi, CHIYODA, "0000000302", "別人", Some(N1)).await;
    // The new municipality registers the person with a coupon number of its own.
    let new = create(&app, &shin, SHINJUKU, "0000009001", "転出　太郎", Some(N3)).await;

    let link = "mutation($id: ID!, $p: String!) { linkEarlierRecords(personId: $id, purpose: $p) { earlierPersonId municipality couponNumber linkedBy purpose } }";
    let d = app
        .ok(&shin, link, json!({ "id": new, "p": "転入者の接種歴確認" }))
        .await;
    assert_eq!(
        d["linkEarlierRecords"],
        json!([{ "earlierPersonId": old, "municipality": CHIYODA, "couponNumber": "0000000301",
                 "linkedBy": "MUNICIPALITY:131041", "purpose": "転入者の接種歴確認" }])
    );
    // Linking again adds nothing.
    let d = app.ok(&shin, link, json!({ "id": new, "p": "再確認" })).await;
    assert_eq!(d["linkEarlierRecords"].as_array().map(Vec::len), Some(1));
    let d = app
        .ok(
            &shin,
            "query($id: ID!) { personById(id: $id) { earlierRecords { earlierPersonId municipality } } }",
            json!({ "id": new }),
        )
        .await;
    assert_eq!(d["personById"]["earlierRecords"][0]["earlierPersonId"], json!(old));

    // The old municipality sees, in its own log, who looked its person up and why.
    let log = access_log(&app, &chi, CHIYODA, Some(&old)).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .all(|e| e["actor"] == "MUNICIPALITY:131041" && e["fields"] == json!(["earlierRecordLookup"]))
    );
    assert_eq!(log[1]["purpose"], "転入者の接種歴確認");
    assert!(access_log(&app, &chi, CHIYODA, Some(&unrelated)).await.is_empty());
    // Its row is untouched and still its own.
    let d = app
        .ok(
            &chi,
            "query($id: ID!) { personById(id: $id) { version name municipality } }",
            json!({ "id": old }),
        )
        .await;
    assert_eq!(
        d["personById"],
        json!({ "version": 1, "name": "転出　太郎", "municipality": CHIYODA })
    );
    // The new municipality cannot read the earlier row's personal fields.
    let (code, _) = app
        .err(
            Some(&shin),
            "query($id: ID!) { personById(id: $id) { name } }",
            json!({ "id": old }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");

    // Whose dose records make up the moved person's history.
    let store = &app.running.as_ref().expect("running").store;
    let ids = domain::persons::record_owner_ids(store.db(), new.parse().expect("id"))
        .await
        .expect("owners");
    assert_eq!(
        ids,
        vec![new.parse::<i64>().expect("id"), old.parse::<i64>().expect("id")]
    );

    // Refusals: without a purpose, by another municipality, for a person without My Number.
    let (code, _) = app.err(Some(&shin), link, json!({ "id": new, "p": " " })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.err(Some(&chi), link, json!({ "id": new, "p": "x" })).await;
    assert_eq!(code, "NOT_FOUND");
    let none = create(&app, &shin, SHINJUKU, "0000009002", "番号なし", None).await;
    let (code, message) = app.err(Some(&shin), link, json!({ "id": none, "p": "x" })).await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("no My Number"), "{message}");

    // Moving out keeps the row; it stops counting as a resident.
    let d = app
        .ok(
            &chi,
            "mutation($id: ID!) { recordMoveOut(id: $id, movedOutOn: \"2026-11-01\") { movedOutOn version } }",
            json!({ "id": old }),
        )
        .await;
    assert_eq!(d["recordMoveOut"], json!({ "movedOutOn": "2026-11-01", "version": 2 }));
    let d = app
        .ok(&chi, "{ personCounts { municipality residents movedOut } }", json!({}))
        .await;
    assert_eq!(
        d["personCounts"],
        json!([{ "municipality": CHIYODA, "residents": 1, "movedOut": 1 }])
    );
}

#[tokio::test]
async fn coupon_batches_carry_lines_that_parse_back() {
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let csv = [
        HEADER.to_owned(),
        row("0000000011", "甲", "東京都千代田区1", ""),
        row("0000000012", "乙", "東京都千代田区2", ""),
        row("0000000013", "丙", "東京都千代田区3", ""),
    ]
    .join("\n");
    import(&app, &tok, CHIYODA, &csv).await;
    let issue = "mutation($input: IssueCouponsInput!) { issueCoupons(input: $input) { id kind doseNumber size issuedBy coupons { nodes { personId couponNumber line } hasNextPage } csv } }";
    let d = app
        .ok(
            &tok,
            issue,
            json!({ "input": { "municipality": CHIYODA, "kind": 1, "doseNumber": 3, "allResidents": true } }),
        )
        .await;
    let batch = &d["issueCoupons"];
    assert_eq!(
        (
            batch["kind"].as_i64(),
            batch["doseNumber"].as_i64(),
            batch["size"].as_u64()
        ),
        (Some(1), Some(3), Some(3))
    );
    let nodes = batch["coupons"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let line = n["line"].as_str().expect("line");
        assert_eq!(line.len(), 18);
        let parsed = app
            .ok(
                &token("SITE", Some("1311234569")),
                "query($l: CouponLine!) { parseCouponLine(line: $l) { kind doseNumber municipality couponNumber } }",
                json!({ "l": line }),
            )
            .await;
        assert_eq!(
            parsed["parseCouponLine"],
            json!({ "kind": 1, "doseNumber": 3, "municipality": CHIYODA, "couponNumber": n["couponNumber"] })
        );
    }
    let text = batch["csv"].as_str().expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "person_id,coupon_number,line");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].ends_with(",0000000011,131310160000000011"), "{text}");

    // A list of persons: only the municipality's own.
    let first = nodes[0]["personId"].as_str().expect("id");
    let d = app
        .ok(
            &tok,
            issue,
            json!({ "input": { "municipality": CHIYODA, "kind": 0, "doseNumber": 1, "persons": [first] } }),
        )
        .await;
    assert_eq!(d["issueCoupons"]["size"], 1);
    let other = create(&app, &shinjuku(), SHINJUKU, "0000000011", "丁", None).await;
    let (code, _) = app
        .err(
            Some(&tok),
            issue,
            json!({ "input": { "municipality": CHIYODA, "kind": 0, "doseNumber": 1, "persons": [other] } }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, message) = app
        .err(
            Some(&tok),
            issue,
            json!({ "input": { "municipality": CHIYODA, "kind": 0, "doseNumber": 0, "allResidents": true } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("input.doseNumber"), "{message}");
    let batches = app
        .ok(
            &tok,
            "{ couponBatches(municipality: \"131016\") { id size } }",
            json!({}),
        )
        .await;
    assert_eq!(batches["couponBatches"].as_array().map(Vec::len), Some(2));
    // Another municipality does not see the batch.
    let id = batch["id"].as_str().expect("id");
    let (code, _) = app
        .err(
            Some(&shinjuku()),
            "query($id: ID!) { couponBatch(id: $id) { size } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");

    // Bad lines are refused by the scalar, naming the reason.
    for (line, why) in [
        ("13131016000000001", "must be 18 digits"),
        ("131310170000000011", "check digit"),
        ("101310160000000011", "dose number"),
    ] {
        let (code, message) = app
            .err(
                Some(&tok),
                "query($l: CouponLine!) { parseCouponLine(line: $l) { kind } }",
                json!({ "l": line }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{line}");
        assert!(message.contains(why), "{line}: {message}");
    }
}

#[tokio::test]
async fn prefecture_and_national_see_counts_never_persons() {
    let app = TestApp::spawn().await;
    create(&app, &chiyoda(), CHIYODA, "0000000401", "甲", None).await;
    create(&app, &chiyoda(), CHIYODA, "0000000402", "乙", None).await;
    create(&app, &shinjuku(), SHINJUKU, "0000000401", "丙", None).await;
    let counts = "query($p: PrefectureCode) { personCounts(prefecture: $p) { municipality residents movedOut } }";
    let want = json!([
        { "municipality": CHIYODA, "residents": 2, "movedOut": 0 },
        { "municipality": SHINJUKU, "residents": 1, "movedOut": 0 }
    ]);
    let d = app.ok(&token("PREFECTURE", Some("13")), counts, json!({})).await;
    assert_eq!(d["personCounts"], want);
    let d = app.ok(&token("NATIONAL", None), counts, json!({ "p": "13" })).await;
    assert_eq!(d["personCounts"], want);
    let (code, _) = app
        .err(Some(&token("PREFECTURE", Some("01"))), counts, json!({ "p": "13" }))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let d = app.ok(&chiyoda(), counts, json!({})).await;
    assert_eq!(d["personCounts"].as_array().map(Vec::len), Some(1));
    for t in [token("SITE", Some("1311234569")), token("WHOLESALER", Some("suzuken"))] {
        let (code, _) = app.err(Some(&t), counts, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
    }
    // Lists are refused with a stable code and no personal data.
    let list = "{ persons(municipality: \"131016\") { nodes { name } } }";
    for t in [
        token("PREFECTURE", Some("13")),
        token("NATIONAL", None),
        token("FEDERATION", Some("13")),
    ] {
        let (code, message) = app.err(Some(&t), list, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
        assert!(!message.contains('甲') && !message.contains('乙'), "{message}");
    }
    // Anonymous callers are not signed in.
    let (code, _) = app.err(None, counts, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
}

#[tokio::test]
async fn personal_data_keys_are_required_on_postgres_and_generated_for_a_sqlite_file() {
    // PostgreSQL without keys: refused before any connection is tried (this address has no
    // server, so a connection attempt would fail differently).
    let db = tests::TestDb::new().await;
    let mut cfg = tests::test_config(&db);
    cfg.database_url = "postgres://postgres@127.0.0.1:1/none".into();
    cfg.personal_keys = Default::default();
    let e = match api::server::start(cfg).await {
        Ok(_) => panic!("started without keys"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("refusing to start"), "{e}");

    // A SQLite file without keys: a key file beside it, readable by its owner only, reused.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("v.db");
    let mut cfg = tests::test_config(&db);
    cfg.database_url = format!("sqlite://{}?mode=rwc", file.display());
    cfg.personal_keys = Default::default();
    let running = api::server::start(cfg.clone()).await.expect("starts");
    let keys = dir.path().join("v.db.keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).expect("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read_to_string(&keys).expect("read");
    running.stop().await.expect("stop");
    let again = api::server::start(cfg).await.expect("restarts");
    assert_eq!(std::fs::read_to_string(&keys).expect("read"), before);
    again.stop().await.expect("stop");
}

#[tokio::test]
async fn rekey_reseals_under_the_current_key_and_old_data_still_opens() {
    use domain::authz::Actor;
    use domain::personal::crypto::PersonalKeys;
    let app = TestApp::spawn().await;
    let tok = chiyoda();
    let id = create(&app, &tok, CHIYODA, "0000000501", "鍵　太郎", Some(N2)).await;
    create(&app, &tok, CHIYODA, "0000000502", "番号なし", None).await;
    let store = &app.running.as_ref().expect("running").store;
    let settings = tests::test_personal_keys();
    let old = settings.encryption.clone().expect("keys");
    let lookup = settings.lookup.clone().expect("lookup");
    // A new current key first, the old one kept for opening.
    let rotated = PersonalKeys::parse(
        &format!("t2:{},{old}", "bmV3LWN1cnJlbnQta2V5LWZvci1yZWtleS10ZXN0ISE="),
        &lookup,
    )
    .expect("rotated keys");
    let n = domain::persons::rekey(store, &rotated, &Actor::System)
        .await
        .expect("rekey");
    assert_eq!(n, 1);
    assert_eq!(
        domain::persons::rekey(store, &rotated, &Actor::System)
            .await
            .expect("again"),
        0
    );
    // Only the operator re-seals.
    let m: domain::codes::MunicipalityCode = CHIYODA.parse().expect("m");
    assert!(
        domain::persons::rekey(store, &rotated, &Actor::Municipality(m))
            .await
            .is_err()
    );
    // The number opens under the new key, and no longer under the old keys alone.
    let purpose = domain::persons::purpose("purpose", "鍵の入替え確認").expect("purpose");
    let reader = domain::persons::Reader {
        actor: &Actor::Municipality(m),
        subject: "tester",
    };
    let id: i64 = id.parse().expect("id");
    let opened = domain::persons::my_number(store, &rotated, &reader, id, &purpose)
        .await
        .expect("opens");
    assert_eq!(opened.map(|n| n.expose().to_owned()), Some(N2.to_owned()));
    let only_old = PersonalKeys::parse(&old, &lookup).expect("old keys");
    let e = domain::persons::my_number(store, &only_old, &reader, id, &purpose)
        .await
        .expect_err("sealed under t2");
    assert!(!e.to_string().contains(N2), "{e}");
}
