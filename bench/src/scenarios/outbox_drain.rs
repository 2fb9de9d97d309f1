//! `outbox-drain-70k`: 70,000 `order.created` messages delivered by the release
//! `vsys outbox drain` (HTTP push: translated, signed, POSTed, recorded) to a local HTTP
//! receiver, against the same receiver fed by a plain HTTP client (same bodies, same
//! concurrency, no database) — the ceiling of the HTTP path alone.
//!
//! Per run: a fresh PostgreSQL database, `vsys migrate` (untimed), then (untimed, one SQL
//! statement each) one push wholesaler pointing at the receiver, 70,000 orders with a customer
//! code each and their outbox messages (the payload shaped like a real `order.created`).
//! Timed: the drain subprocess, spawn to exit. Checked: the receiver counted exactly 70,000
//! distinct idempotency keys and every message is DELIVERED. Then the baseline.
//!
//! SQLite is not measured: the claim there is serialised by the single writer, and the
//! scenario is the production (PostgreSQL) path.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;

use crate::process::{psql, run_timed, with_database};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

const MESSAGES: u64 = 70_000;
const CONCURRENCY: usize = 64;
const SECRET: &str = "bench-signing-secret-000000000000";

#[derive(Default)]
struct Counts {
    requests: u64,
    keys: HashSet<String>,
}

type Shared = Arc<Mutex<Counts>>;

async fn receive(State(counts): State<Shared>, headers: HeaderMap, _body: Bytes) -> &'static str {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    c.requests += 1;
    c.keys.insert(key);
    ""
}

/// The receiver: an axum app in this process counting requests and distinct keys.
async fn start_receiver() -> Result<(SocketAddr, Shared)> {
    let counts: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/orders", axum::routing::post(receive))
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, counts))
}

fn reset(counts: &Shared) -> (u64, usize) {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let seen = (c.requests, c.keys.len());
    *c = Counts::default();
    seen
}

/// The untimed data: a push wholesaler, orders with customer codes, their outbox messages.
fn seed_sql(receiver: SocketAddr) -> String {
    format!(
        "INSERT INTO wholesalers (id, name, area, adapter, endpoint, signing_secret, version, created_at, updated_at, updated_by) \
         VALUES ('suzuken', 'bench', '', 'HTTP_PUSH', 'http://{receiver}/orders', '{SECRET}', 1, now(), now(), 'bench'); \
         INSERT INTO orders (id, round_id, allocation_id, product_code, site_code, prefecture_code, municipality_code, \
           wholesaler_id, boxes, vials, doses, status, created_at, created_by) \
         SELECT '1-' || lpad(g::text, 10, '0'), 1, 1, 'comirnaty', lpad(g::text, 10, '0'), '13', '131016', 'suzuken', \
           2, 390, 2340, 'CREATED', now(), 'bench' FROM generate_series(1, {MESSAGES}) g; \
         INSERT INTO customer_codes (wholesaler_id, site_code, customer_code, effective_from, version, updated_at, updated_by) \
         SELECT 'suzuken', lpad(g::text, 10, '0'), 'C' || g, DATE '2021-01-01', 1, now(), 'bench' \
           FROM generate_series(1, {MESSAGES}) g; \
         INSERT INTO outbox (topic, aggregate_type, aggregate_key, destination, payload, idempotency_key, status, \
           attempts, next_attempt_at, created_at) \
         SELECT 'order.created', 'order', '1-' || lpad(g::text, 10, '0'), 'wholesaler:suzuken', \
           json_build_object('schemaVersion', 1, 'orderId', '1-' || lpad(g::text, 10, '0'), \
             'round', json_build_object('id', 1, 'product', 'comirnaty', 'number', 9, 'startsOn', '2021-07-05', 'endsOn', '2021-07-18'), \
             'wholesaler', 'suzuken', \
             'site', json_build_object('code', lpad(g::text, 10, '0'), 'name', 'さくら内科クリニック', 'prefecture', '13', \
               'municipality', '131016', 'postalCode', '100-0001', 'address', '東京都千代田区千代田1-1', 'phone', '03-1234-5678', \
               'receivingDays', json_build_array('MON', 'WED'), 'receivingHours', '09:00-17:00', 'deliveryNotes', ''), \
             'items', json_build_array( \
               json_build_object('kind', 'VACCINE', 'product', 'comirnaty', 'boxes', 2, 'vials', 390, 'doses', 2340), \
               json_build_object('kind', 'ANCILLARY', 'product', 'needle-25g', 'perVial', 6, 'pieces', 2340), \
               json_build_object('kind', 'ANCILLARY', 'product', 'syringe-lds', 'perVial', 6, 'pieces', 2340)), \
             'instructedAt', '2026-11-27T09:00:00Z', 'instructedBy', 'MUNICIPALITY:131016')::text, \
           'order.created:1-' || lpad(g::text, 10, '0'), 'PENDING', 0, now() - interval '1 second', now() - interval '1 second' \
           FROM generate_series(1, {MESSAGES}) g; \
         ANALYZE;"
    )
}

#[derive(Default)]
pub struct OutboxDrain {
    receiver: Option<(SocketAddr, Shared)>,
    pending_drop: Option<String>,
}

impl OutboxDrain {
    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let Storage::Postgres { admin_url } = &ctx.storage else {
            bail!("outbox-drain-70k runs on PostgreSQL only (pass --database-url postgres://…)");
        };
        let Some((addr, counts)) = self.receiver.clone() else {
            bail!("setup did not run");
        };
        let name = format!("bench_outbox_{run}");
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
        self.pending_drop = Some(name.clone());
        let url = with_database(admin_url, &name)?;
        let mut migrate = Command::new(&ctx.vsys);
        migrate.arg("migrate").env("DATABASE_URL", &url);
        run_timed(migrate, "vsys migrate").await?;
        psql(&url, &seed_sql(addr)).await?;
        reset(&counts);

        let mut drain = Command::new(&ctx.vsys);
        drain
            .args(["outbox", "drain"])
            .env("DATABASE_URL", &url)
            .env("VSYS_OUTBOX_CONCURRENCY", CONCURRENCY.to_string())
            .env("VSYS_OUTBOX_BATCH", "1000");
        let t = run_timed(drain, "vsys outbox drain").await?;
        let (requests, distinct) = reset(&counts);
        ensure!(
            distinct as u64 == MESSAGES,
            "the receiver counted {distinct} distinct idempotency keys ({requests} requests), expected {MESSAGES}; drain said: {}",
            t.stdout.trim()
        );
        let delivered: u64 = psql(&url, "SELECT count(*) FROM outbox WHERE status = 'DELIVERED'")
            .await?
            .trim()
            .parse()?;
        ensure!(delivered == MESSAGES, "{delivered} of {MESSAGES} messages DELIVERED");
        let drain_s = t.elapsed.as_secs_f64();

        // Baseline: the same bodies, the same concurrency, a plain client, no database.
        let bodies = psql(
            &url,
            "SELECT idempotency_key || E'\\t' || payload FROM outbox ORDER BY id",
        )
        .await?;
        let messages: Vec<(String, String)> = bodies
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, p)| (k.to_owned(), p.to_owned()))
            .collect();
        ensure!(messages.len() as u64 == MESSAGES, "read {} bodies", messages.len());
        let client = reqwest::Client::new();
        let target = format!("http://{addr}/orders");
        let start = Instant::now();
        let posts: Vec<_> = messages
            .into_iter()
            .map(|(key, body)| {
                let req = client
                    .post(&target)
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .body(body);
                async move { req.send().await.map(|r| r.status().is_success()).unwrap_or(false) }
            })
            .collect();
        use futures_util::StreamExt;
        let ok = futures_util::stream::iter(posts)
            .buffer_unordered(CONCURRENCY)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        let baseline_s = start.elapsed().as_secs_f64();
        let (_, distinct) = reset(&counts);
        ensure!(
            ok as u64 == MESSAGES && distinct as u64 == MESSAGES,
            "baseline: {ok} ok, {distinct} keys"
        );

        if let Some(name) = self.pending_drop.take() {
            psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        }
        let m = MESSAGES as f64;
        Ok(vec![
            Measurement::new(format!("{} throughput", self.name()), m / drain_s, "msgs/s")
                .against("plain HTTP client", m / baseline_s),
            Measurement::new(self.name(), drain_s, "s").against("plain HTTP client", baseline_s),
        ])
    }
}

impl Scenario for OutboxDrain {
    fn name(&self) -> &'static str {
        "outbox-drain-70k"
    }

    fn describe(&self) -> &'static str {
        "`vsys outbox drain` pushing 70,000 signed order messages to a local HTTP receiver on PostgreSQL; baseline: a plain HTTP client posting the same bodies"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Storage::Postgres { admin_url } = &ctx.storage {
                psql(admin_url, "SELECT 1").await?;
            }
            self.receiver = Some(start_receiver().await?);
            Ok(())
        })
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let (Some(name), Storage::Postgres { admin_url }) = (self.pending_drop.take(), &ctx.storage) {
                psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
            }
            Ok(())
        })
    }

    fn notes(&self, _ctx: &Context) -> Vec<String> {
        vec![format!(
            "outbox-drain-70k: {MESSAGES} messages, one HTTP_PUSH wholesaler, batch 1000, {CONCURRENCY} pushes in flight, \
             the receiver (axum, in the bench process) counting distinct Idempotency-Keys; drain timed from process spawn \
             to exit (connect and migration check included), data seeded by SQL untimed. Baseline: a reqwest client in the \
             bench process posting the same 70,000 bodies with the same concurrency (no database, no signing) — the HTTP \
             ceiling on this machine; the receiver, the drain and PostgreSQL share its cores."
        )]
    }
}
