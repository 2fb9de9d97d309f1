//! `importSites(csv:)`: good rows kept, bad lines reported by line and column, idempotent
//! re-imports, one history entry per real change, refusals, and the assigned-code counter.

use domain::codes::{PrefectureCode, SiteCode};
use serde_json::{Value, json};
use tests::{REGISTER, TestApp, csv_fields, csv_header, csv_line, token, tokyo_clinic_code, venue_input};

const IMPORT: &str =
    "mutation($csv: String!) { importSites(csv: $csv) { inserted updated unchanged rejected { line column reason } } }";
const SITE: &str = "query($c: SiteCode!) { site(code: $c) { code name phone kind version status municipality { code } coldChain { role freezerClass baseSite } delivery { receivingDays receivingHours } products wholesaler history { version action actor changes { field from to } } } }";
const COUNT: &str = "{ sites(first: 100) { totalCount edges { node { code } } } }";

fn national() -> String {
    token("NATIONAL", None)
}

fn file(lines: &[String]) -> String {
    let mut s = csv_header();
    for l in lines {
        s.push('\n');
        s.push_str(l);
    }
    s.push('\n');
    s
}

/// Codes of the mixed file's rows.
struct Codes {
    base: String,
    satellite: String,
    hospital: String,
}

fn codes() -> Codes {
    Codes {
        base: tokyo_clinic_code(1),
        satellite: tokyo_clinic_code(2),
        hospital: tokyo_clinic_code(6),
    }
}

/// Three good rows (lines 2, 3, 12) among bad ones; `base_phone` is the first row's phone.
fn mixed_file(base_phone: &str) -> String {
    let c = codes();
    let wrong_check = {
        let nine = &c.base[..9];
        let last = c.base.as_bytes()[9] - b'0';
        format!("{nine}{}", (last + 1) % 10)
    };
    let assigned = SiteCode::assigned(PrefectureCode::from_number(13).expect("13"), 77)
        .expect("code")
        .to_string();
    let missing_base = tokyo_clinic_code(999);
    let sat4 = tokyo_clinic_code(4);
    file(&[
        // 2: a base site.
        csv_line(&c.base, &[("phone", base_phone)]),
        // 3: a satellite of line 2.
        csv_line(
            &c.satellite,
            &[
                ("name", "みどり小児科"),
                ("cold_chain_role", "SATELLITE"),
                ("freezer_class", ""),
                ("base_site_code", &c.base),
            ],
        ),
        // 4: malformed code.
        csv_line("13100A0001", &[]),
        // 5: wrong check digit.
        csv_line(&wrong_check, &[]),
        // 6: a municipality code with a valid check digit that does not exist.
        csv_line(&tokyo_clinic_code(3), &[("municipality_code", "139998")]),
        // 7: the code of line 2 again.
        csv_line(&c.base, &[("name", "二重登録")]),
        // 8: too few fields.
        format!("\"{sat4}\",\"短い行\""),
        // 9: a satellite whose base site does not exist.
        csv_line(
            &sat4,
            &[
                ("cold_chain_role", "SATELLITE"),
                ("freezer_class", ""),
                ("base_site_code", &missing_base),
            ],
        ),
        // 10: an unknown kind.
        csv_line(&tokyo_clinic_code(5), &[("kind", "SPACESHIP")]),
        // 11: a clinic cannot carry a system-assigned code.
        csv_line(&assigned, &[]),
        // 12: a hospital in Shinjuku.
        csv_line(
            &c.hospital,
            &[
                ("name", "中央総合病院"),
                ("kind", "HOSPITAL"),
                ("municipality_code", "131041"),
                ("address", "東京都新宿区西新宿2-8-1"),
                ("wholesaler_id", ""),
                ("products", "comirnaty,spikevax"),
                ("receiving_days", "MON,TUE,FRI"),
            ],
        ),
    ])
}

async fn import(app: &TestApp, csv: &str) -> Value {
    app.ok(&national(), IMPORT, json!({ "csv": csv })).await["importSites"].clone()
}

async fn site(app: &TestApp, code: &str) -> Value {
    app.ok(&national(), SITE, json!({ "c": code })).await["site"].clone()
}

fn lines_and_columns(report: &Value) -> Vec<(u64, String)> {
    report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["column"].as_str().expect("column").to_owned(),
            )
        })
        .collect()
}

fn reason(report: &Value, line: u64) -> String {
    report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .find(|r| r["line"] == line)
        .and_then(|r| r["reason"].as_str())
        .unwrap_or_else(|| panic!("no rejection for line {line}: {report}"))
        .to_owned()
}

fn expected_rejections() -> Vec<(u64, String)> {
    [
        (4, "code"),
        (5, "code"),
        (6, "municipality_code"),
        (7, "code"),
        (8, "-"),
        (9, "base_site_code"),
        (10, "kind"),
        (11, "code"),
    ]
    .into_iter()
    .map(|(l, c)| (l, c.to_owned()))
    .collect()
}

#[tokio::test]
async fn good_rows_are_stored_and_each_bad_line_is_reported_with_line_and_column() {
    let app = TestApp::spawn().await;
    let c = codes();
    let report = import(&app, &mixed_file("03-1234-5678")).await;
    assert_eq!(
        (&report["inserted"], &report["updated"], &report["unchanged"]),
        (&json!(3), &json!(0), &json!(0)),
        "{report}"
    );
    assert_eq!(lines_and_columns(&report), expected_rejections(), "{report}");
    assert!(reason(&report, 4).contains("character 6"), "{report}");
    assert!(reason(&report, 5).contains("check digit"), "{report}");
    assert_eq!(reason(&report, 6), "no such municipality");
    assert_eq!(reason(&report, 7), "duplicate of line 2");
    assert_eq!(reason(&report, 8), "has 2 fields, the header has 19");
    assert!(
        reason(&report, 9).contains(&tokyo_clinic_code(999)),
        "the reason names the missing base: {report}"
    );
    assert!(reason(&report, 10).contains("MASS_VENUE"), "lists the kinds: {report}");
    assert!(reason(&report, 11).contains("assigned"), "{report}");

    let all = app.ok(&national(), COUNT, json!({})).await;
    assert_eq!(all["sites"]["totalCount"], 3, "{all}");
    let listed: Vec<&str> = all["sites"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["code"].as_str().expect("code"))
        .collect();
    assert_eq!(listed, vec![c.base.as_str(), &c.satellite, &c.hospital]);

    let base = site(&app, &c.base).await;
    assert_eq!(
        base["name"], "さくら内科クリニック",
        "line 2 won over its duplicate on line 7"
    );
    assert_eq!(base["version"], 1);
    assert_eq!(base["status"], "ACTIVE");
    assert_eq!(
        base["coldChain"],
        json!({ "role": "BASE", "freezerClass": "ULTRA_COLD", "baseSite": null })
    );
    assert_eq!(
        base["delivery"],
        json!({ "receivingDays": ["MON", "WED"], "receivingHours": "09:00-17:00" })
    );
    let h = base["history"].as_array().expect("history");
    assert_eq!(h.len(), 1, "{base}");
    assert_eq!(h[0]["action"], "REGISTERED");
    assert_eq!(h[0]["actor"], "NATIONAL (import)");

    let sat = site(&app, &c.satellite).await;
    assert_eq!(
        sat["coldChain"],
        json!({ "role": "SATELLITE", "freezerClass": null, "baseSite": c.base })
    );
    let hospital = site(&app, &c.hospital).await;
    assert_eq!(hospital["kind"], "HOSPITAL");
    assert_eq!(hospital["municipality"]["code"], "131041");
    assert_eq!(hospital["wholesaler"], Value::Null);
    assert_eq!(hospital["products"], json!(["comirnaty", "spikevax"]));
}

#[tokio::test]
async fn reimporting_changes_nothing_and_a_changed_row_writes_one_history_entry() {
    let app = TestApp::spawn().await;
    let c = codes();
    let first = import(&app, &mixed_file("03-1234-5678")).await;
    assert_eq!(first["inserted"], 3, "{first}");

    let again = import(&app, &mixed_file("03-1234-5678")).await;
    assert_eq!(
        (&again["inserted"], &again["updated"], &again["unchanged"]),
        (&json!(0), &json!(0), &json!(3)),
        "{again}"
    );
    assert_eq!(lines_and_columns(&again), expected_rejections());
    for code in [&c.base, &c.satellite, &c.hospital] {
        let s = site(&app, code).await;
        assert_eq!(s["version"], 1, "{s}");
        assert_eq!(
            s["history"].as_array().expect("history").len(),
            1,
            "no history written: {s}"
        );
    }

    let changed = import(&app, &mixed_file("03-9999-0000")).await;
    assert_eq!(
        (&changed["inserted"], &changed["updated"], &changed["unchanged"]),
        (&json!(0), &json!(1), &json!(2)),
        "{changed}"
    );
    let base = site(&app, &c.base).await;
    assert_eq!(base["phone"], "03-9999-0000");
    assert_eq!(base["version"], 2);
    let h = base["history"].as_array().expect("history");
    assert_eq!(h.len(), 2, "{base}");
    assert_eq!(
        h[1],
        json!({ "version": 2, "action": "CHANGED", "actor": "NATIONAL (import)",
                "changes": [{ "field": "phone", "from": "03-1234-5678", "to": "03-9999-0000" }] })
    );
    for code in [&c.satellite, &c.hospital] {
        let s = site(&app, code).await;
        assert_eq!(s["history"].as_array().expect("history").len(), 1, "{s}");
    }

    // The same changed file once more: nothing left to change.
    let settled = import(&app, &mixed_file("03-9999-0000")).await;
    assert_eq!((&settled["updated"], &settled["unchanged"]), (&json!(0), &json!(3)));
    assert_eq!(
        site(&app, &c.base).await["history"].as_array().expect("history").len(),
        2
    );
}

#[tokio::test]
async fn a_file_missing_a_required_column_is_refused_whole() {
    let app = TestApp::spawn().await;
    let code = tokyo_clinic_code(1);
    let columns = domain::sites::CSV_COLUMNS;
    let fields = csv_fields(&code, &[]);
    let pick = |keep: &dyn Fn(&str) -> bool, reverse: bool| {
        let mut pairs: Vec<(&str, &str)> = columns
            .iter()
            .zip(&fields)
            .filter(|(c, _)| keep(c))
            .map(|(c, f)| (*c, f.as_str()))
            .collect();
        if reverse {
            pairs.reverse();
        }
        let header: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let row: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        format!("{}\n{}\n", header.join(","), row.join(","))
    };

    let csv = pick(&|c| c != "phone", false);
    let (code_, message) = app.err(Some(&national()), IMPORT, json!({ "csv": csv })).await;
    assert_eq!(code_, "BAD_USER_INPUT", "{message}");
    assert!(message.contains("phone"), "names the missing column: {message}");
    let all = app.ok(&national(), COUNT, json!({})).await;
    assert_eq!(all["sites"]["totalCount"], 0, "nothing stored");

    // The same row with every column, in reverse order and without the optional `status`, is fine.
    let report = import(&app, &pick(&|c| c != "status", true)).await;
    assert_eq!(report["inserted"], 1, "{report}");
    assert_eq!(report["rejected"], json!([]));
    let s = site(&app, &code).await;
    assert_eq!((&s["phone"], &s["status"]), (&json!("03-1234-5678"), &json!("ACTIVE")));
}

#[tokio::test]
async fn only_national_imports() {
    let app = TestApp::spawn().await;
    let csv = mixed_file("03-1234-5678");
    let clinic = tokyo_clinic_code(1);
    let others: &[(&str, Option<&str>)] = &[
        ("PREFECTURE", Some("13")),
        ("MUNICIPALITY", Some("131016")),
        ("SITE", Some(&clinic)),
        ("WHOLESALER", Some("suzuken")),
        ("MEDICAL_ASSOCIATION", Some("131016")),
        ("FEDERATION", Some("13")),
    ];
    for (role, scope) in others {
        let (code, message) = app.err(Some(&token(role, *scope)), IMPORT, json!({ "csv": csv })).await;
        assert_eq!(code, "FORBIDDEN", "{role}: {message}");
    }
    let (code, _) = app.err(None, IMPORT, json!({ "csv": csv })).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let all = app.ok(&national(), COUNT, json!({})).await;
    assert_eq!(all["sites"]["totalCount"], 0, "refused imports stored nothing");
}

#[tokio::test]
async fn imported_assigned_codes_move_the_counter_past_them() {
    let app = TestApp::spawn().await;
    let n = national();
    let pref = |p: u8| PrefectureCode::from_number(p).expect("prefecture");
    let venue_code = |p: u8, serial: u32| SiteCode::assigned(pref(p), serial).expect("code").to_string();
    let register = |m: &'static str| {
        let app = &app;
        let n = n.clone();
        async move {
            let mut input = venue_input(m, "接種会場");
            input["address"] = json!("どこか1-1");
            app.ok(&n, REGISTER, json!({ "input": input })).await["registerSite"]["code"]
                .as_str()
                .expect("code")
                .to_owned()
        }
    };

    // Tokyo already drew serial 1; Osaka never drew one.
    assert_eq!(register("131016").await, venue_code(13, 1));

    let venue = |code: &str, municipality: &str| {
        csv_line(
            code,
            &[
                ("kind", "MASS_VENUE"),
                ("name", "大規模接種会場"),
                ("municipality_code", municipality),
                ("wholesaler_id", ""),
            ],
        )
    };
    let csv = file(&[venue(&venue_code(13, 5), "131016"), venue(&venue_code(27, 5), "271004")]);
    let report = import(&app, &csv).await;
    assert_eq!(report["inserted"], 2, "{report}");
    assert_eq!(report["rejected"], json!([]));
    assert_eq!(site(&app, &venue_code(13, 5)).await["kind"], "MASS_VENUE");

    assert_eq!(register("131041").await, venue_code(13, 6), "Tokyo continues after 5");
    assert_eq!(register("271004").await, venue_code(27, 6), "Osaka continues after 5");
    assert_eq!(register("131016").await, venue_code(13, 7));
}
