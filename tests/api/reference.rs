//! Reference data: 47 prefectures and 1,741 municipalities, loaded by a migration.

use serde_json::json;
use tests::{TestApp, token};

#[tokio::test]
async fn prefectures_and_municipalities_are_loaded() {
    let app = TestApp::spawn().await;
    let t = token("NATIONAL", None);
    let data = app
        .ok(
            &t,
            "{ prefectures { code name nameKana } municipalities { code } }",
            json!({}),
        )
        .await;
    let prefs = data["prefectures"].as_array().expect("list");
    assert_eq!(prefs.len(), 47);
    assert_eq!(
        prefs[0],
        json!({ "code": "01", "name": "北海道", "nameKana": "ﾎｯｶｲﾄﾞｳ" })
    );
    assert_eq!(prefs[46]["name"], "沖縄県");
    assert_eq!(data["municipalities"].as_array().expect("list").len(), 1741);

    let tokyo = app
        .ok(
            &t,
            r#"{ municipalities(prefecture: "13") { code name prefecture } }"#,
            json!({}),
        )
        .await;
    let tokyo = tokyo["municipalities"].as_array().expect("list");
    assert_eq!(tokyo.len(), 62, "Tokyo has 23 wards, 26 cities, 5 towns and 8 villages");
    assert!(tokyo.iter().all(|m| m["prefecture"] == "13"));
    assert!(tokyo.contains(&json!({ "code": "131016", "name": "千代田区", "prefecture": "13" })));
}

#[tokio::test]
async fn a_bad_prefecture_code_is_refused_before_any_resolver() {
    let app = TestApp::spawn().await;
    let (code, message) = app
        .err(
            Some(&token("NATIONAL", None)),
            r#"{ municipalities(prefecture: "48") { code } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("prefecture") && message.contains("01-47"), "{message}");
}

#[tokio::test]
async fn the_product_catalogue_carries_packaging_and_ancillaries() {
    let app = TestApp::spawn().await;
    let q = "{ products { code kind storageClass dosesPerVial vialsPerBox piecesPerBox ancillaries { ancillary perVial } } }";
    let (status, body) = app.post(None, q, json!({})).await;
    assert_eq!(status, 200, "anyone may read the catalogue: {body}");
    let products = body["data"]["products"].as_array().expect("list").clone();
    let comirnaty = products.iter().find(|p| p["code"] == "comirnaty").expect("comirnaty");
    assert_eq!(
        comirnaty,
        &json!({ "code": "comirnaty", "kind": "VACCINE", "storageClass": "ULTRA_COLD", "dosesPerVial": 6,
                 "vialsPerBox": 195, "piecesPerBox": null,
                 "ancillaries": [{ "ancillary": "needle-25g", "perVial": 6 }, { "ancillary": "syringe-lds", "perVial": 6 }] })
    );
    let spikevax = products.iter().find(|p| p["code"] == "spikevax").expect("spikevax");
    assert_eq!(
        (spikevax["storageClass"].as_str(), spikevax["dosesPerVial"].as_u64()),
        (Some("FROZEN"), Some(10))
    );
    let needle = products.iter().find(|p| p["code"] == "needle-25g").expect("needle");
    assert_eq!(
        (needle["kind"].as_str(), needle["dosesPerVial"].is_null()),
        (Some("ANCILLARY"), true)
    );

    let (code, _) = app
        .err(None, r#"{ product(code: "unknown") { code } }"#, json!({}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(None, r#"{ product(code: "Bad Code") { code } }"#, json!({}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}
