//! Dose records through the release `vsys serve` on PostgreSQL (issue 6):
//!
//! - `dose-batch`: records/s through `recordDoses`, 1,000 records per call, every record also
//!   taking its dose from the site's stock (vials opened: ADMINISTERED entries), from
//!   [`BATCH_CLIENTS`] closed-loop clients, each its own site. Baseline in the same run: `psql`
//!   `\copy` of the same number of dose rows into a table created `LIKE dose_records
//!   INCLUDING ALL` (its checks and indexes) — the database's raw bulk-load rate.
//! - `dose-single`: records/s through `recordDose` from 8 closed-loop clients (each its own
//!   site) against `pgbench -c 8` inserting one such row per transaction into that table; and
//!   p50/p99 of `recordDose` at a fixed 1,000 requests/s (open loop, latency from when each
//!   request was due).
//!
//! Persons, sites and stock are seeded untimed (persons by SQL; sites and receipts through the
//! API). Each person takes dose 1, 2 and 3 on dates far enough apart for the interval rules,
//! so later passes read earlier doses like a real day does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use super::ledger_writes::pgbench;
use super::stock_common::{self, LOT, MUNICIPALITY, Server};
use crate::process::{psql, run_timed};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

const BATCH: usize = 1_000;
const BATCH_CLIENTS: usize = 4;
const SINGLE_CLIENTS: usize = 8;
const RATE: f64 = 1_000.0;
/// Rows of the `\copy` baseline per run.
const COPY_ROWS: u64 = 200_000;

/// Which person and dose the `n`-th record (from 0) is: persons 1..=`persons` take dose 1,
/// then dose 2, then dose 3.
fn nth(n: u64, persons: u64) -> (u64, u64) {
    (n % persons + 1, n / persons + 1)
}

fn dose_day(dose: u64) -> String {
    // Doses 100 days apart end today: dose 2 after ≥19 days, dose 3 after ≥3 months.
    (domain::stock::today_in_japan() - chrono::Duration::days(100 * (3 - dose as i64))).to_string()
}

fn record_json(out: &mut String, n: u64, persons: u64, site: &str) {
    let (person, dose) = nth(n, persons);
    out.push_str(&format!(
        "{{\"municipality\":\"{MUNICIPALITY}\",\"couponNumber\":\"{person:010}\",\"doseNumber\":{dose},\"administeredOn\":\"{}\",\
         \"product\":\"comirnaty\",\"lot\":\"{LOT}\",\"doctorName\":\"ベンチ医師\",\"capture\":\"CSV\",\"idempotencyKey\":\"{site}-{n}\"}}",
        dose_day(dose)
    ));
}

const RECORD_DOSES: &str = "mutation($r: [DoseInput!]!) { recordDoses(records: $r) { created failed } }";
const RECORD_DOSE: &str = "mutation($i: DoseInput!) { recordDose(input: $i) { created record { id } } }";

fn batch_body(from: u64, persons: u64, site: &str) -> String {
    let mut s = String::with_capacity(BATCH * 260 + 200);
    s.push_str("{\"query\":");
    s.push_str(&serde_json::to_string(RECORD_DOSES).unwrap_or_default());
    s.push_str(",\"variables\":{\"r\":[");
    for i in 0..BATCH as u64 {
        if i > 0 {
            s.push(',');
        }
        record_json(&mut s, from + i, persons, site);
    }
    s.push_str("]}}");
    s
}

fn single_body(n: u64, persons: u64, site: &str) -> String {
    let mut s = String::with_capacity(600);
    s.push_str("{\"query\":");
    s.push_str(&serde_json::to_string(RECORD_DOSE).unwrap_or_default());
    s.push_str(",\"variables\":{\"i\":");
    record_json(&mut s, n, persons, site);
    s.push_str("}}");
    s
}

/// A server with `sites` sites holding a million vials each, `persons` residents, and the
/// baseline's table.
async fn prepare(ctx: &Context, name: &str, sites: usize, persons: u64) -> Result<(Server, Vec<String>)> {
    if !matches!(ctx.storage, Storage::Postgres { .. }) {
        bail!("{name} compares against PostgreSQL baselines: run it with --pg");
    }
    let server = Server::start(ctx, name, &ctx.storage).await?;
    let codes = server.seed_sites(sites, 1_000_000, sites).await?;
    psql(
        &server.database_url,
        &format!(
            "INSERT INTO persons (municipality_code, coupon_number, name, name_kana, birth_date, sex, address, version, \
             created_at, updated_at, updated_by) \
             SELECT '{MUNICIPALITY}', lpad(g::text, 10, '0'), 'ベンチ 太郎', 'ﾍﾞﾝﾁ ﾀﾛｳ', DATE '1960-01-01', 1, '東京都千代田区', 1, \
             now(), now(), 'bench' FROM generate_series(1, {persons}) g; \
             CREATE TABLE bench_dose_records (LIKE dose_records INCLUDING ALL); ANALYZE"
        ),
    )
    .await?;
    Ok((server, codes))
}

/// Closed loop: each client sends its next request as soon as the last one answered; counts
/// the records created in the measured window (a call whose records were not all created, or
/// that failed, counts its records as failed).
async fn closed_loop(
    ctx: &Context,
    server: &Server,
    sites: &[String],
    next: Arc<AtomicU64>,
    persons: u64,
    per_call: u64,
) -> Result<(f64, u64)> {
    let phase = Arc::new(AtomicU8::new(0));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for site in sites {
        let (client, url, site) = (server.http.clone(), server.graphql_url(), site.clone());
        let token = stock_common::token("SITE", Some(&site))?;
        let (phase, ok, failed, next) = (phase.clone(), ok.clone(), failed.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while phase.load(Ordering::Relaxed) != 2 {
                let from = next.fetch_add(per_call, Ordering::Relaxed);
                let body = if per_call == 1 {
                    single_body(from, persons, &site)
                } else {
                    batch_body(from, persons, &site)
                };
                let created = match client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                        Ok(v) if v.get("errors").is_none() => {
                            if per_call == 1 {
                                u64::from(v["data"]["recordDose"]["created"] == true)
                            } else {
                                v["data"]["recordDoses"]["created"].as_u64().unwrap_or(0)
                            }
                        }
                        _ => 0,
                    },
                    _ => 0,
                };
                if phase.load(Ordering::Relaxed) == 1 {
                    ok.fetch_add(created, Ordering::Relaxed);
                    failed.fetch_add(per_call - created, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(ctx.load.warmup).await;
    phase.store(1, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(ctx.load.duration).await;
    phase.store(2, Ordering::Relaxed);
    let window = start.elapsed();
    for w in workers {
        w.await?;
    }
    Ok((
        ok.load(Ordering::Relaxed) as f64 / window.as_secs_f64(),
        failed.load(Ordering::Relaxed),
    ))
}

/// The `\copy` baseline: `rows` dose rows like the ones recorded, loaded into the
/// `dose_records`-shaped table (emptied first); rows/s.
async fn copy_baseline(ctx: &Context, url: &str, run: usize, rows: u64) -> Result<f64> {
    psql(url, "TRUNCATE bench_dose_records").await?;
    let path = ctx.work.join(format!("dose-copy-{run}.csv"));
    let mut csv = String::with_capacity(rows as usize * 220);
    let now = chrono::Utc::now().to_rfc3339();
    let site = stock_common::site_code(0)?;
    for n in 0..rows {
        let (person, dose) = nth(n, rows);
        csv.push_str(&format!(
            "{id},{person},{MUNICIPALITY},13,{person:010},{dose},{day},comirnaty,{LOT},{site},ベンチ医師,CSV,ACTIVE,,,{id},{opened},{site},c{run}-{n},{hash},1,{now},bench,{now},bench,\n",
            id = 100_000_000 * run as u64 + n + 1,
            day = dose_day(dose),
            opened = if n % 6 == 0 { "t" } else { "f" },
            hash = "0".repeat(64),
        ));
    }
    std::fs::write(&path, csv)?;
    let mut cmd = std::process::Command::new("psql");
    cmd.args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"]).arg(format!(
        "\\copy bench_dose_records (id, person_id, municipality_code, prefecture_code, coupon_number, dose_number, \
         administered_on, product_code, lot_number, site_code, doctor_name, capture, status, override_id, override_reason, \
         vial_entry_id, opened_vial, recorded_by_site, idempotency_key, request_hash, version, recorded_at, recorded_by, \
         changed_at, changed_by, change_reason) FROM '{}' CSV",
        path.display()
    ));
    let t = run_timed(cmd, "psql \\copy").await?;
    std::fs::remove_file(&path).ok();
    Ok(rows as f64 / t.elapsed.as_secs_f64())
}

async fn reconcile(ctx: &Context, server: Server) -> Result<()> {
    let mut check = std::process::Command::new(&ctx.vsys);
    check
        .args(["stock", "reconcile"])
        .env("DATABASE_URL", &server.database_url);
    let verdict = run_timed(check, "vsys stock reconcile").await;
    server.stop().await?;
    verdict.map(|_| ())
}

#[derive(Default)]
pub struct DoseBatch {
    server: Option<Server>,
    sites: Vec<String>,
    next: Arc<AtomicU64>,
    persons: u64,
    failures: Vec<String>,
}

impl DoseBatch {
    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let server = self.server.as_ref().context("setup did not run")?;
        let (ours, failed) = if run % 2 == 1 {
            let o = closed_loop(ctx, server, &self.sites, self.next.clone(), self.persons, BATCH as u64).await?;
            let b = copy_baseline(ctx, &server.database_url, run, COPY_ROWS).await?;
            (o, b)
        } else {
            let b = copy_baseline(ctx, &server.database_url, run, COPY_ROWS).await?;
            let o = closed_loop(ctx, server, &self.sites, self.next.clone(), self.persons, BATCH as u64).await?;
            (o, b)
        };
        let ((rate, bad), copy) = (ours, failed);
        if bad > 0 {
            self.failures.push(format!("run {run}: {bad} records not created"));
        }
        ensure!(rate > 0.0, "no records created in run {run}");
        println!(
            "   run {run}: {rate:.0} records/s through recordDoses; \\copy {copy:.0} rows/s; load {}",
            crate::report::load_average()
        );
        Ok(vec![Measurement::new(self.name(), rate, "records/s").against(
            "psql \\copy of dose rows (LIKE dose_records INCLUDING ALL)",
            copy,
        )])
    }
}

impl Scenario for DoseBatch {
    fn name(&self) -> &'static str {
        "dose-batch"
    }

    fn describe(&self) -> &'static str {
        "dose records/s through recordDoses (1,000 per call, stock included) on PostgreSQL; baseline: \\copy of the same rows"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Enough persons for three doses each over every run at well above the target.
            let secs = (ctx.load.warmup + ctx.load.duration).as_secs().max(1) * ctx.runs as u64;
            self.persons = (secs * 80_000 / 3).max(100_000);
            let (server, sites) = prepare(ctx, self.name(), BATCH_CLIENTS, self.persons).await?;
            self.server = Some(server);
            self.sites = sites;
            Ok(())
        })
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.server.take() {
                Some(s) => reconcile(ctx, s).await,
                None => Ok(()),
            }
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let mut notes = vec![format!(
            "dose-batch: {BATCH_CLIENTS} closed-loop clients, one site each, {BATCH} records per recordDoses call ({:?} warm-up + \
             {:?} measured); every record is a distinct person × dose (persons seeded by SQL, each taking doses 1–3 100 days \
             apart, so later records read earlier doses) and takes its dose from the site's lot (a vial opened every 6th: an \
             ADMINISTERED entry); the rate counts records created. Baseline: psql \\copy of {COPY_ROWS} dose rows into a table \
             LIKE dose_records INCLUDING ALL, right before or after; server, PostgreSQL and clients share the machine. \
             `vsys stock reconcile` passes after the runs.",
            ctx.load.warmup, ctx.load.duration
        )];
        notes.extend(self.failures.iter().cloned());
        notes
    }
}

#[derive(Default)]
pub struct DoseSingle {
    server: Option<Server>,
    sites: Vec<String>,
    next: Arc<AtomicU64>,
    persons: u64,
    failures: Vec<String>,
}

/// Sends `recordDose` at a fixed `rate` for `warmup + window`, each request on its own task,
/// rotating over the sites; returns (sent, failed, sorted latencies in seconds) of those due in
/// the window, latency counted from when each was due.
async fn open_loop(
    server: &Server,
    sites: &[String],
    next: Arc<AtomicU64>,
    persons: u64,
    warmup: Duration,
    window: Duration,
) -> Result<(u64, u64, Vec<f64>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(5))
        .build()?;
    let url: Arc<str> = Arc::from(server.graphql_url());
    let tokens: Vec<String> = sites
        .iter()
        .map(|s| stock_common::token("SITE", Some(s)))
        .collect::<Result<_>>()?;
    let period = Duration::from_secs_f64(1.0 / RATE);
    let start = tokio::time::Instant::now();
    let total = ((warmup + window).as_secs_f64() * RATE) as u64;
    let first_measured = (warmup.as_secs_f64() * RATE) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let k = i as usize % sites.len();
        let n = next.fetch_add(1, Ordering::Relaxed);
        let body = single_body(n, persons, &sites[k]);
        let (client, url, token) = (client.clone(), url.clone(), tokens[k].clone());
        tasks.spawn(async move {
            let good = match client
                .post(&*url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status();
                    r.bytes()
                        .await
                        .is_ok_and(|b| status.is_success() && crate::load::body_is_success(&b))
                }
                Err(_) => false,
            };
            (i, good, due.elapsed().as_secs_f64())
        });
    }
    let (mut sent, mut failed, mut lat) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (i, good, l) = done?;
        if i < first_measured {
            continue;
        }
        sent += 1;
        if !good {
            failed += 1;
        }
        lat.push(l);
    }
    lat.sort_by(f64::total_cmp);
    Ok((sent, failed, lat))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl DoseSingle {
    async fn baseline(&self, ctx: &Context) -> Result<f64> {
        let server = self.server.as_ref().context("setup did not run")?;
        psql(
            &server.database_url,
            "TRUNCATE bench_dose_records; CREATE SEQUENCE IF NOT EXISTS bench_person",
        )
        .await?;
        let site = &self.sites[0];
        let script = format!(
            "INSERT INTO bench_dose_records (person_id, municipality_code, prefecture_code, coupon_number, dose_number, \
             administered_on, product_code, lot_number, site_code, doctor_name, capture, status, opened_vial, recorded_by_site, \
             idempotency_key, request_hash, version, recorded_at, recorded_by, changed_at, changed_by) \
             SELECT p, '{MUNICIPALITY}', '13', lpad(p::text, 10, '0'), 1, CURRENT_DATE, 'comirnaty', '{LOT}', '{site}', 'ベンチ医師', \
             'CSV', 'ACTIVE', false, '{site}', 'k' || p, repeat('0', 64), 1, now(), 'bench', now(), 'bench' \
             FROM nextval('bench_person') AS p;\n"
        );
        pgbench(ctx, &server.database_url, &script).await
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let (ours, base) = {
            let server = self.server.as_ref().context("setup did not run")?;
            if run % 2 == 1 {
                let o = closed_loop(ctx, server, &self.sites, self.next.clone(), self.persons, 1).await?;
                (o, self.baseline(ctx).await?)
            } else {
                let b = self.baseline(ctx).await?;
                (
                    closed_loop(ctx, server, &self.sites, self.next.clone(), self.persons, 1).await?,
                    b,
                )
            }
        };
        let (rate, bad) = ours;
        let server = self.server.as_ref().context("setup did not run")?;
        let (sent, failed, lat) = open_loop(
            server,
            &self.sites,
            self.next.clone(),
            self.persons,
            ctx.load.warmup,
            ctx.load.duration,
        )
        .await?;
        let (p50, p99) = (percentile(&lat, 0.5) * 1e3, percentile(&lat, 0.99) * 1e3);
        println!(
            "   run {run}: {rate:.0} recordDose/s at {SINGLE_CLIENTS} clients vs pgbench {base:.0} tps; at {RATE} req/s: sent {sent}, \
             failed {failed}, p50 {p50:.2} ms, p99 {p99:.2} ms; load {}",
            crate::report::load_average()
        );
        if bad > 0 || failed > 0 {
            self.failures.push(format!(
                "run {run}: {bad} closed-loop and {failed} fixed-rate requests failed"
            ));
        }
        ensure!(rate > 0.0, "no records created in run {run}");
        Ok(vec![
            Measurement::new(self.name(), rate, "records/s")
                .against("pgbench single-row insert, dose_records-shaped table, 8 clients", base),
            Measurement::new(format!("{} p50 @1k rps", self.name()), p50, "ms"),
            Measurement::new(format!("{} p99 @1k rps", self.name()), p99, "ms"),
        ])
    }
}

impl Scenario for DoseSingle {
    fn name(&self) -> &'static str {
        "dose-single"
    }

    fn describe(&self) -> &'static str {
        "recordDose/s at 8 clients on PostgreSQL vs pgbench single-row insert at 8 clients; p50/p99 at a fixed 1,000 req/s"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let secs = (ctx.load.warmup + ctx.load.duration).as_secs().max(1) * ctx.runs as u64;
            // Three doses per person, for every second of every run: the closed loop at up to
            // 11,000 records/s (pgbench's own rate here) and the fixed-rate phase's 1,000/s. At
            // 6,000/s in all, a fifth run of a faster server ran out of doses to give.
            self.persons = (secs * 12_000 / 3).max(50_000);
            let (server, sites) = prepare(ctx, self.name(), SINGLE_CLIENTS, self.persons).await?;
            self.server = Some(server);
            self.sites = sites;
            Ok(())
        })
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.server.take() {
                Some(s) => reconcile(ctx, s).await,
                None => Ok(()),
            }
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let mut notes = vec![format!(
            "dose-single: {SINGLE_CLIENTS} closed-loop clients, one site each, one recordDose per request ({:?} warm-up + {:?} \
             measured), each a distinct person × dose taking its dose from the site's lot; baseline pgbench -n -c {SINGLE_CLIENTS} \
             -j 2 inserting one dose row per transaction into a table LIKE dose_records INCLUDING ALL, right before or after. \
             Then recordDose at a fixed {RATE} req/s (open loop, latency from when each request was due), rotating over the \
             sites. `vsys stock reconcile` passes after the runs.",
            ctx.load.warmup, ctx.load.duration
        )];
        notes.extend(self.failures.iter().cloned());
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_walk_persons_then_doses() {
        assert_eq!(nth(0, 10), (1, 1));
        assert_eq!(nth(9, 10), (10, 1));
        assert_eq!(nth(10, 10), (1, 2));
        let body = batch_body(0, 10, "1312000009");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["variables"]["r"].as_array().map(Vec::len), Some(BATCH));
        assert_eq!(v["variables"]["r"][10]["doseNumber"], 2);
        let one: Value = serde_json::from_str(&single_body(3, 10, "1312000009")).expect("json");
        assert_eq!(one["variables"]["i"]["couponNumber"], "0000000004");
    }
}
