//! `siteChanged` over a real WebSocket speaking graphql-transport-ws: the token in
//! `connection_init`, changes made over HTTP arriving in order and in scope only, and refusals.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{REGISTER, TestApp, token, venue_input};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CHIYODA: &str = "131016";
const SHINJUKU: &str = "131041";
const WAIT: Duration = Duration::from_secs(10);

fn changed(municipality: &str) -> String {
    format!("subscription {{ siteChanged(municipality: \"{municipality}\") {{ code name version }} }}")
}

async fn connect(app: &TestApp) -> Ws {
    let mut req = format!("ws://{}/graphql/ws", app.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("WebSocket upgrade");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()),
        Some(&b"graphql-transport-ws"[..])
    );
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into())).await.expect("send");
}

/// What the server sent next (pings are answered by the library and skipped).
#[derive(Debug)]
enum Incoming {
    Json(Value),
    /// A close frame (code, reason), or the connection ended or failed.
    Closed(Option<(u16, String)>),
}

async fn recv(ws: &mut Ws) -> Incoming {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message from the server in time");
        return match msg {
            Some(Ok(Message::Text(t))) => Incoming::Json(serde_json::from_str(&t).expect("JSON message")),
            Some(Ok(Message::Close(frame))) => {
                Incoming::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            Some(Err(_)) | None => Incoming::Closed(None),
        };
    }
}

async fn recv_json(ws: &mut Ws) -> Value {
    match recv(ws).await {
        Incoming::Json(v) => v,
        Incoming::Closed(c) => panic!("connection closed: {c:?}"),
    }
}

/// `connection_init` with `payload`; returns the server's answer.
async fn init(ws: &mut Ws, payload: Option<Value>) -> Incoming {
    let mut msg = json!({ "type": "connection_init" });
    if let Some(p) = payload {
        msg["payload"] = p;
    }
    send(ws, msg).await;
    recv(ws).await
}

fn bearer(t: &str) -> Option<Value> {
    Some(json!({ "Authorization": format!("Bearer {t}") }))
}

async fn connect_as(app: &TestApp, payload: Option<Value>) -> Ws {
    let mut ws = connect(app).await;
    match init(&mut ws, payload).await {
        Incoming::Json(v) => assert_eq!(v, json!({ "type": "connection_ack" })),
        Incoming::Closed(c) => panic!("connection_init refused: {c:?}"),
    }
    ws
}

async fn subscribe(ws: &mut Ws, id: &str, query: &str) {
    send(
        ws,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
}

/// The `siteChanged` payload of a `next` message for `id`.
fn next_site(msg: &Value, id: &str) -> Value {
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["id"], id, "{msg}");
    assert!(msg["payload"].get("errors").is_none(), "{msg}");
    msg["payload"]["data"]["siteChanged"].clone()
}

/// The code of the error that ends operation `id`: graphql-transport-ws `error`, or (as
/// async-graphql reports a failing subscription resolver) a `next` carrying only errors,
/// followed by `complete`.
async fn operation_error(ws: &mut Ws, id: &str) -> (String, String) {
    let msg = recv_json(ws).await;
    assert_eq!(msg["id"], id, "{msg}");
    let errors = match msg["type"].as_str() {
        Some("error") => msg["payload"].clone(),
        Some("next") => {
            assert_eq!(msg["payload"]["data"], Value::Null, "an error came with data: {msg}");
            let done = recv_json(ws).await;
            assert_eq!(done, json!({ "type": "complete", "id": id }));
            msg["payload"]["errors"].clone()
        }
        _ => panic!("expected an error for {id}, got {msg}"),
    };
    let e = &errors[0];
    (
        e["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {msg}"))
            .to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn register_venue(app: &TestApp, t: &str, municipality: &str, name: &str) -> String {
    let mut input = venue_input(municipality, name);
    input["address"] = json!("東京都1-1");
    app.ok(t, REGISTER, json!({ "input": input })).await["registerSite"]["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

/// Waits until subscription `id` delivers events: changes the in-scope `probe` site until one
/// change arrives, then reads up to the last one, so nothing of the probe is left pending.
async fn await_live(ws: &mut Ws, app: &TestApp, id: &str, probe: &str) {
    let n = token("NATIONAL", None);
    let update = "mutation($c: SiteCode!, $n: String!) { updateSite(code: $c, input: { name: $n }) { version } }";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    let first = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription {id} never went live"
        );
        let d = app
            .ok(&n, update, json!({ "c": probe, "n": format!("試験{}", last + 1) }))
            .await;
        last = d["updateSite"]["version"].as_i64().expect("version");
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
            let Some(Ok(Message::Text(t))) = msg else {
                panic!("unexpected {msg:?}")
            };
            break serde_json::from_str::<Value>(&t).expect("JSON");
        }
    };
    let mut site = next_site(&first, id);
    loop {
        assert_eq!(site["code"], probe, "{site}");
        if site["version"].as_i64() == Some(last) {
            return;
        }
        site = next_site(&recv_json(ws).await, id);
    }
}

#[tokio::test]
async fn changes_in_scope_arrive_in_order_and_others_do_not() {
    let app = TestApp::spawn().await;
    let n = token("NATIONAL", None);
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let probe = register_venue(&app, &chiyoda, CHIYODA, "試験会場").await;

    let mut ws = connect_as(&app, bearer(&chiyoda)).await;
    subscribe(&mut ws, "1", &changed(CHIYODA)).await;
    await_live(&mut ws, &app, "1", &probe).await;

    // Out of scope first, then in scope: the first thing to arrive must be the in-scope change.
    let shinjuku_site = register_venue(&app, &n, SHINJUKU, "新宿会場").await;
    let code = register_venue(&app, &chiyoda, CHIYODA, "千代田区第二会場").await;
    let site = next_site(&recv_json(&mut ws).await, "1");
    assert_eq!(
        site,
        json!({ "code": code, "name": "千代田区第二会場", "version": 1 }),
        "{shinjuku_site} (Shinjuku) must not be delivered"
    );

    // Changes and withdrawals arrive too.
    let update = "mutation($c: SiteCode!) { updateSite(code: $c, input: { phone: \"03-5555-0000\" }) { version } }";
    app.ok(&n, update, json!({ "c": shinjuku_site })).await;
    app.ok(&chiyoda, update, json!({ "c": code })).await;
    let site = next_site(&recv_json(&mut ws).await, "1");
    assert_eq!((&site["code"], &site["version"]), (&json!(code), &json!(2)));
    app.ok(
        &chiyoda,
        "mutation($c: SiteCode!) { withdrawSite(code: $c) { version } }",
        json!({ "c": code }),
    )
    .await;
    let site = next_site(&recv_json(&mut ws).await, "1");
    assert_eq!((&site["code"], &site["version"]), (&json!(code), &json!(3)));

    // `complete` from the client ends the subscription.
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    assert_eq!(recv_json(&mut ws).await, json!({ "type": "complete", "id": "1" }));
}

#[tokio::test]
async fn subscribing_outside_the_scope_is_forbidden() {
    let app = TestApp::spawn().await;
    let chiyoda = token("MUNICIPALITY", Some(CHIYODA));
    let probe = register_venue(&app, &chiyoda, CHIYODA, "試験会場").await;

    // The `{"token": …}` form of the init payload works as well as the Authorization one.
    let mut ws = connect_as(&app, Some(json!({ "token": chiyoda }))).await;
    subscribe(&mut ws, "a", &changed(SHINJUKU)).await;
    let (code, message) = operation_error(&mut ws, "a").await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    assert!(message.contains(SHINJUKU), "{message}");

    // The refusal ends that operation only: the connection still serves in-scope subscriptions.
    subscribe(&mut ws, "b", &changed(CHIYODA)).await;
    await_live(&mut ws, &app, "b", &probe).await;
}

#[tokio::test]
async fn a_bad_token_in_connection_init_closes_the_connection() {
    let app = TestApp::spawn().await;
    let wrong_secret = api::auth::issue_hs256(
        "not-the-server-secret",
        "vsys",
        "vsys",
        "x",
        "NATIONAL",
        None,
        chrono::Duration::hours(1),
    )
    .expect("token");
    let expired = api::auth::issue_hs256(
        tests::TEST_SECRET,
        "vsys",
        "vsys",
        "x",
        "NATIONAL",
        None,
        chrono::Duration::hours(-1),
    )
    .expect("token");
    let bad_scope = token("MUNICIPALITY", Some("131017"));
    let payloads = [
        ("wrong signature", bearer(&wrong_secret), wrong_secret.clone()),
        ("expired", bearer(&expired), expired.clone()),
        (
            "token form, wrong signature",
            Some(json!({ "token": wrong_secret })),
            wrong_secret.clone(),
        ),
        ("bad scope", bearer(&bad_scope), bad_scope.clone()),
        (
            "Basic scheme",
            Some(json!({ "Authorization": "Basic dXNlcm5hbWU6cGFzc3dvcmQ=" })),
            "dXNlcm5hbWU6cGFzc3dvcmQ".to_owned(),
        ),
    ];
    for (what, payload, credential) in payloads {
        let mut ws = connect(&app).await;
        match init(&mut ws, payload).await {
            Incoming::Closed(frame) => {
                if let Some((code, reason)) = frame {
                    assert_ne!(code, 1000, "{what}: a refusal is not a normal closure");
                    for part in credential.split('.').filter(|p| p.len() >= 8) {
                        assert!(
                            !reason.contains(part),
                            "{what}: the close reason echoes the token: {reason}"
                        );
                    }
                }
            }
            Incoming::Json(v) => panic!("{what}: expected the connection to close, got {v}"),
        }
        // Nothing more comes, and the connection is over.
        assert!(matches!(recv(&mut ws).await, Incoming::Closed(_)), "{what}");
    }
}

#[tokio::test]
async fn an_anonymous_connection_is_acknowledged_but_cannot_subscribe() {
    let app = TestApp::spawn().await;
    for payload in [None, Some(json!({}))] {
        let mut ws = connect_as(&app, payload).await;
        subscribe(&mut ws, "1", &changed(CHIYODA)).await;
        let (code, message) = operation_error(&mut ws, "1").await;
        assert_eq!(code, "UNAUTHENTICATED", "{message}");
    }
}
