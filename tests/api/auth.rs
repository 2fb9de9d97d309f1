//! Authentication through real HTTP: which tokens are accepted, how refusals look (401, a
//! GraphQL-shaped body, no data, no token echoed), production mode with a JWKS, and the line
//! between UNAUTHENTICATED and FORBIDDEN.

use api::auth::AuthSettings;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tests::{TEST_SECRET, TestApp, TestDb, clinic_input, fixture, token};

const ME: &str = "{ me { role scope scopeName } }";
const CHIYODA: &str = "131016";

/// Valid claims for MUNICIPALITY 131016, with `changes` merged in (`null` removes a claim).
fn claims(changes: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "sub": "tester", "role": "MUNICIPALITY", "scope": CHIYODA,
        "iss": "vsys", "aud": "vsys", "iat": now, "exp": now + 3600
    });
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(secret), None, claims)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("jwt/{name}"))).expect("fixture")
}

fn rs256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).expect("rsa key");
    sign(Algorithm::RS256, &key, kid, claims)
}

fn es256(file: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&pem(file)).expect("ec key");
    sign(Algorithm::ES256, &key, kid, claims)
}

/// A hand-made `alg: none` token: header and payload, empty signature.
fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!("{}.{}.", part(&json!({ "alg": "none", "typ": "JWT" })), part(claims))
}

/// POSTs `{ me }` with a raw Authorization header value.
async fn post_with_header(app: &TestApp, authorization: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", authorization)
        .json(&json!({ "query": ME }))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// A refusal: 401, a GraphQL-shaped body with UNAUTHENTICATED and no `data`, and nothing of
/// the presented credential in the message. Returns the message.
fn assert_refused(what: &str, status: u16, body: &Value, credential: &str) -> String {
    assert_eq!(status, 401, "{what}: {body}");
    assert!(body.get("data").is_none(), "{what}: a refusal carries no data: {body}");
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{what}: {body}"));
    assert_eq!(errors.len(), 1, "{what}: {body}");
    assert_eq!(errors[0]["extensions"]["code"], "UNAUTHENTICATED", "{what}: {body}");
    let message = errors[0]["message"].as_str().expect("message").to_owned();
    assert!(!message.is_empty(), "{what}");
    let text = body.to_string();
    for part in credential.split(['.', ' ']).filter(|p| p.len() >= 8) {
        assert!(!text.contains(part), "{what}: the body echoes the credential: {text}");
    }
    message
}

#[tokio::test]
async fn a_valid_token_names_the_caller_and_anonymous_is_null() {
    let app = TestApp::spawn().await;
    let d = app.ok(&token("MUNICIPALITY", Some(CHIYODA)), ME, json!({})).await;
    assert_eq!(
        d["me"],
        json!({ "role": "MUNICIPALITY", "scope": CHIYODA, "scopeName": "千代田区" })
    );
    let d = app.ok(&token("PREFECTURE", Some("13")), ME, json!({})).await;
    assert_eq!(
        d["me"],
        json!({ "role": "PREFECTURE", "scope": "13", "scopeName": "東京都" })
    );
    let d = app.ok(&token("NATIONAL", None), ME, json!({})).await;
    assert_eq!(d["me"], json!({ "role": "NATIONAL", "scope": null, "scopeName": null }));

    // A token built by hand with the same claims is as good as one from `issue_hs256`, and an
    // `exp` a few seconds past is inside the 30 s clock-skew leeway.
    let now = chrono::Utc::now().timestamp();
    let t = hs256(TEST_SECRET.as_bytes(), &claims(json!({ "exp": now - 5 })));
    assert_eq!(app.ok(&t, ME, json!({})).await["me"]["scope"], CHIYODA);

    let (status, body) = app.post(None, ME, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "data": { "me": null } }));
}

#[tokio::test]
async fn refused_tokens_get_401_unauthenticated_without_data_or_echo() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    let secret = TEST_SECRET.as_bytes();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong signature",
            hs256(b"another-secret-entirely", &claims(json!({}))),
            "signature",
        ),
        (
            "expired beyond the leeway",
            hs256(secret, &claims(json!({ "iat": now - 7200, "exp": now - 120 }))),
            "expired",
        ),
        (
            "wrong aud",
            hs256(secret, &claims(json!({ "aud": "other-app" }))),
            "aud",
        ),
        ("wrong iss", hs256(secret, &claims(json!({ "iss": "evil" }))), "iss"),
        ("alg none", unsigned(&claims(json!({}))), "algorithm none"),
        (
            "RS256 on an HS256 server",
            rs256(Some("rsa-1"), &claims(json!({}))),
            "algorithm RS256",
        ),
        (
            "unknown role",
            hs256(secret, &claims(json!({ "role": "ADMIN", "scope": null }))),
            "role",
        ),
        (
            "municipality scope with a bad check digit",
            hs256(secret, &claims(json!({ "scope": "131017" }))),
            "check digit",
        ),
        ("missing role", hs256(secret, &claims(json!({ "role": null }))), "role"),
        ("not a JWT", "abcdefghijkl.mnopqrstuvwx".to_owned(), "malformed"),
    ];
    for (what, t, want) in &cases {
        let (status, body) = app.post(Some(t), ME, json!({})).await;
        let message = assert_refused(what, status, &body, t);
        assert!(message.contains(want), "{what}: {want:?} not in {message:?}");
    }

    let headers: &[(&str, &str)] = &[
        ("Basic credentials", "Basic dXNlcm5hbWU6cGFzc3dvcmQ="),
        ("Bearer with nothing", "Bearer"),
        ("empty header", ""),
        ("two tokens", "Bearer abcdefghij klmnopqrst"),
    ];
    let good = token("NATIONAL", None);
    let bare = [good.as_str()];
    for (what, value) in headers
        .iter()
        .copied()
        .chain(bare.iter().map(|t| ("token without scheme", *t)))
    {
        let (status, body) = post_with_header(&app, value).await;
        let message = assert_refused(what, status, &body, value);
        assert!(message.contains("Authorization"), "{what}: {message}");
    }
}

#[tokio::test]
async fn production_mode_accepts_jwks_keys_and_refuses_hs256() {
    let auth = AuthSettings {
        jwt_secret: None,
        jwks: Some(fixture("jwt/jwks.json").display().to_string()),
        issuer: "vsys".into(),
        audience: "vsys".into(),
    };
    let app = TestApp::spawn_with(TestDb::new().await, |cfg| cfg.auth = auth).await;
    let c = claims(json!({}));

    let accepted = [
        ("ES256 kid ec-1", es256("ec-private.pem", Some("ec-1"), &c)),
        ("RS256 kid rsa-1", rs256(Some("rsa-1"), &c)),
        ("RS256 without kid (the set's only RSA key)", rs256(None, &c)),
    ];
    for (what, t) in &accepted {
        let (status, body) = app.post(Some(t), ME, json!({})).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(
            body["data"]["me"],
            json!({ "role": "MUNICIPALITY", "scope": CHIYODA, "scopeName": "千代田区" }),
            "{what}"
        );
    }
    // An `aud` array that includes this server is fine.
    let t = rs256(Some("rsa-1"), &claims(json!({ "aud": ["other", "vsys"] })));
    assert_eq!(app.ok(&t, ME, json!({})).await["me"]["role"], "MUNICIPALITY");

    let rsa_public = pem("rsa-public.pem");
    let refused = [
        ("HS256 with the development secret", token("NATIONAL", None), "HS256"),
        ("HS256 with the test secret", hs256(TEST_SECRET.as_bytes(), &c), "HS256"),
        ("HS256 keyed with the RSA public key", hs256(&rsa_public, &c), "HS256"),
        (
            "ES256 signed by a key not in the set",
            es256("ec-wrong-private.pem", Some("ec-1"), &c),
            "signature",
        ),
        ("unknown kid", es256("ec-private.pem", Some("ec-9"), &c), "kid"),
        ("RS256 kid naming the EC key", rs256(Some("ec-1"), &c), "RS256"),
        (
            "expired RS256",
            rs256(
                Some("rsa-1"),
                &claims(json!({ "exp": chrono::Utc::now().timestamp() - 300 })),
            ),
            "expired",
        ),
        ("alg none", unsigned(&c), "none"),
    ];
    for (what, t, want) in &refused {
        let (status, body) = app.post(Some(t), ME, json!({})).await;
        let message = assert_refused(what, status, &body, t);
        assert!(message.contains(want), "{what}: {want:?} not in {message:?}");
    }
}

#[tokio::test]
async fn forbidden_needs_a_valid_token_unauthenticated_needs_none() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let clinic = "1312020017";
    let other = "1312020025";
    for code in [clinic, other] {
        app.ok(
            &n,
            tests::REGISTER,
            json!({ "input": clinic_input(code, CHIYODA, "さくら内科クリニック") }),
        )
        .await;
    }
    let q = "query($c: SiteCode!) { site(code: $c) { code name } }";
    let site_t = token("SITE", Some(clinic));

    let d = app.ok(&site_t, q, json!({ "c": clinic })).await;
    assert_eq!(d["site"]["code"], clinic);

    let (status, body) = app.post(Some(&site_t), q, json!({ "c": other })).await;
    assert_eq!(
        status, 200,
        "a refused call with a valid token is a GraphQL error: {body}"
    );
    assert_eq!(tests::error_of(&body).0, "FORBIDDEN");

    let (status, body) = app.post(None, q, json!({ "c": clinic })).await;
    assert_eq!(status, 200, "{body}");
    let (code, message) = tests::error_of(&body);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(message.contains("token"), "{message}");

    // A valid token that may not import is FORBIDDEN too, not UNAUTHENTICATED.
    let (code, _) = app
        .err(
            Some(&token("MUNICIPALITY", Some(CHIYODA))),
            "mutation($c: String!) { importSites(csv: $c) { inserted } }",
            json!({ "c": tests::csv_header() }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
}
