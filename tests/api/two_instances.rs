//! Two real `vsys serve` processes on one PostgreSQL and one Redis: a change made through one
//! reaches a subscriber on the other, and each instance's own subscribers see it exactly once.
//! Runs in the PostgreSQL + Redis mode of the suite (TEST_DATABASE_URL and TEST_REDIS_URL);
//! the SQLite mode has neither a shared database nor Redis, so there it returns at once.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tests::{DEADLINE, TestApp, WsClient, metric_value, token};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::stock::{Sites, administer_doc, day, receive, seed, use_input};
use crate::subscriptions_stock::{SUBSCRIBE, SUBSCRIPTIONS};

/// `<target>/debug/vsys`, built if it is missing or older than this test binary (so the
/// processes run the code under test).
fn vsys_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/debug/deps/api-<hash>
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/debug");
    let bin = profile_dir.join("vsys");
    let stale = match (std::fs::metadata(&bin), std::fs::metadata(&exe)) {
        (Ok(b), Ok(e)) => match (b.modified(), e.modified()) {
            (Ok(b), Ok(e)) => b < e,
            _ => true,
        },
        _ => true,
    };
    if stale {
        let target = profile_dir.parent().expect("target dir");
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "api", "--bin", "vsys"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building vsys failed");
    }
    bin
}

/// A `vsys serve` child process, killed when dropped.
struct Instance {
    addr: std::net::SocketAddr,
    child: tokio::process::Child,
    http: reqwest::Client,
}

impl Instance {
    async fn start(bin: &PathBuf, database_url: &str, redis_url: &str, prefix: &str) -> Instance {
        let keys = tests::test_personal_keys();
        let mut child = tokio::process::Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("VSYS_REDIS_PREFIX", prefix)
            .env("VSYS_JWT_SECRET", tests::TEST_SECRET)
            .env("VSYS_PERSONAL_KEYS", keys.encryption.as_deref().unwrap_or_default())
            .env("VSYS_PERSONAL_LOOKUP_KEY", keys.lookup.as_deref().unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn vsys serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.strip_prefix("vsys listening on http://") {
                    let addr = rest.split_whitespace().next().expect("address");
                    return addr.parse().expect("socket address");
                }
            }
            panic!("vsys serve exited before listening");
        })
        .await
        .expect("vsys serve listening within the deadline");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Instance {
            addr,
            child,
            http: reqwest::Client::new(),
        }
    }

    async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body: Value = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    async fn wait_for_subscriptions(&self, n: f64) {
        let start = std::time::Instant::now();
        loop {
            let text = self
                .http
                .get(format!("http://{}/metrics", self.addr))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            if metric_value(&text, SUBSCRIPTIONS) == Some(n) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "subscriptions never reached {n}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn on_hand(data: &Value) -> u64 {
    data["stockChanged"]["onHand"].as_u64().expect("onHand")
}

#[tokio::test]
async fn a_change_through_one_instance_reaches_subscribers_on_the_other() {
    let redis = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    let app = TestApp::spawn().await;
    let Some(redis) = redis.filter(|_| app.db.is_postgres()) else {
        return;
    };
    let s = seed(&app).await;
    receive(&app, &s.base, "FF3620", &day(30), 10).await;
    let bin = vsys_binary();
    let prefix = tests::unique_redis_prefix();
    let mut one = Instance::start(&bin, &app.db.url, &redis, &prefix).await;
    let mut two = Instance::start(&bin, &app.db.url, &redis, &prefix).await;

    let mut on_two = WsClient::connect(two.addr, Some(&token("MUNICIPALITY", Some(crate::stock::CHIYODA))))
        .await
        .expect("ack");
    let sub_two = on_two.subscribe(SUBSCRIBE, json!({ "site": s.base })).await;
    let mut on_one = WsClient::connect(one.addr, Some(&token("NATIONAL", None)))
        .await
        .expect("ack");
    let sub_one = on_one.subscribe(SUBSCRIBE, json!({ "site": s.base })).await;
    one.wait_for_subscriptions(1.0).await;
    two.wait_for_subscriptions(1.0).await;

    let t = Sites::token(&s.base);
    // Through instance one: its own subscriber and instance two's both see it.
    one.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 1)).await;
    assert_eq!(on_hand(&on_two.next_data(&sub_two).await), 9);
    assert_eq!(on_hand(&on_one.next_data(&sub_one).await), 9);
    // Through instance two, then one again: each subscriber sees each change once, in order
    // (the publishing instance skips its own echo from Redis).
    two.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 2)).await;
    one.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 3)).await;
    for client in [(&mut on_one, &sub_one), (&mut on_two, &sub_two)] {
        assert_eq!(on_hand(&client.0.next_data(client.1).await), 7);
        assert_eq!(on_hand(&client.0.next_data(client.1).await), 4);
    }
    // A change made by the in-process test server on another prefix stays in its deployment.
    receive(&app, &s.base, "FF9999", &day(30), 1).await;
    two.ok(&t, &administer_doc(), use_input(&s.base, "FF3620", 4)).await;
    assert_eq!(on_hand(&on_one.next_data(&sub_one).await), 0);
    assert_eq!(on_hand(&on_two.next_data(&sub_two).await), 0);

    on_one.close().await;
    on_two.close().await;
    let _ = one.child.kill().await;
    let _ = two.child.kill().await;
}
